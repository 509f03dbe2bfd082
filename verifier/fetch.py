"""Read-only X API client for chat events and public keys (httpx, HTTP/2, connection reuse).

Only GET routes are ever called; write and side-effect routes (``/read``, ``/typing``,
``/messages``, ``/keys``, POST public_keys) are refused by ``_get`` itself. The access token lives in
one request header and is never logged, printed, saved or put in an exception message.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import msgspec

from . import __version__

DEFAULT_BASE_URL = "https://api.x.com"
EVENT_FIELDS = ("id,conversation_id,conversation_token,created_at,encoded_event,is_trusted,"
                "message_event_signature,previous_id,sender_id")
CONVERSATION_EXPANSIONS = "participant_ids,member_ids,admin_ids"
_PATH_ID = re.compile(r"[0-9]{1,19}|[0-9]{1,19}-[0-9]{1,19}|g[0-9]{1,19}")
_USER_ID = re.compile(r"[0-9]{1,19}")
_FORBIDDEN_PATH = re.compile(r"/(read|typing|messages|keys)(/|$)")


class FetchError(Exception):
    """A one-line, token-free reason a fetch could not complete."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def conversation_path_id(conversation_id: str) -> str:
    """Any accepted id form (``A:B``, ``A-B``, bare recipient id, ``g…``) to the path form."""
    path_id = conversation_id.strip().replace(":", "-")
    if not _PATH_ID.fullmatch(path_id):
        raise ValueError(f"not a conversation id: {conversation_id!r} (expected A:B, A-B, a user id or g<digits>)")
    return path_id


def validate_user_id(user_id: str) -> str:
    if not _USER_ID.fullmatch(user_id):
        raise ValueError(f"not a user id: {user_id!r}")
    return user_id


@dataclass
class FetchedBody:
    """One response as received: body bytes verbatim, where and when it came from (no secrets)."""

    url: str
    status: int
    body: bytes
    fetched_at: str


@dataclass
class RetryPolicy:
    max_retries: int = 6
    backoff_base: float = 0.5
    backoff_cap: float = 60.0
    max_wait: float = 900.0  # longest rate-limit wait we accept before giving up
    timeout: float = 30.0
    max_body_bytes: int = 64 * 1024 * 1024  # a hostile or broken server cannot exhaust memory


@dataclass
class ClientEvents:
    """Callbacks for progress displays; all optional."""

    on_wait: Callable[[float, str], None] | None = None
    on_retry: Callable[[str, int], None] | None = None


class _Meta(msgspec.Struct):
    next_token: str | None = None


class _PageHead(msgspec.Struct):
    meta: _Meta | None = None


class _Problem(msgspec.Struct):
    title: str | None = None
    detail: str | None = None
    reason: str | None = None
    type: str | None = None
    errors: list[Any] | None = None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _problem_text(body: bytes) -> str:
    """The API's own words: title, detail, reason (and first error message) of an error body."""
    try:
        problem = msgspec.json.decode(body, type=_Problem)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return body[:200].decode("utf-8", "replace").strip() or "no body"
    parts = [p for p in (problem.title, problem.detail) if p]
    if problem.reason:
        parts.append(f"reason: {problem.reason}")
    if problem.errors:
        first = problem.errors[0]
        if isinstance(first, dict) and first.get("message"):
            parts.append(str(first["message"]))
    return " - ".join(parts) or "no details"


class XChatClient:
    """Read-only client; names follow the official ``xdk`` client (snake_case, ids in any form)."""

    def __init__(self, access_token: str, base_url: str = DEFAULT_BASE_URL, *,
                 policy: RetryPolicy | None = None, events: ClientEvents | None = None,
                 transport: httpx.BaseTransport | None = None, http2: bool = True) -> None:
        if not access_token:
            raise ValueError("an access token is required")
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.events = events or ClientEvents()
        self._cancelled = threading.Event()
        self._token = access_token
        self._rate_lock = threading.Lock()
        self._blocked_until = 0.0
        self._http = httpx.Client(http2=http2, transport=transport, timeout=self.policy.timeout,
                                  headers={"User-Agent": f"xchat-verify/{__version__}"},
                                  follow_redirects=False)

    def __repr__(self) -> str:  # never show the token
        return f"XChatClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def cancel(self) -> None:
        """Make every waiting or future request of this client fail with "interrupted" (Ctrl-C)."""
        self._cancelled.set()

    def _sleep(self, seconds: float) -> None:
        if self._cancelled.wait(seconds):
            raise FetchError("interrupted")

    def __enter__(self) -> "XChatClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ routes
    def get_conversation_events(self, conversation_id: str, *, max_results: int = 100,
                                pagination_token: str | None = None,
                                chat_message_event_fields: str | None = EVENT_FIELDS,
                                legacy: bool = False) -> FetchedBody:
        """One events page (raw). ``legacy`` uses the pre-2.163 path ``/2/chat/conversations/{id}``."""
        path_id = conversation_path_id(conversation_id)
        params: dict[str, Any] = {"max_results": max(1, min(100, max_results))}
        if pagination_token is not None:
            params["pagination_token"] = pagination_token
        if chat_message_event_fields:
            params["chat_message_event.fields"] = chat_message_event_fields
        suffix = "" if legacy else "/events"
        return self._get(f"/2/chat/conversations/{quote(path_id)}{suffix}", params)

    def iter_conversation_events(self, conversation_id: str, *, max_results: int = 100,
                                 max_pages: int | None = None,
                                 pagination_token: str | None = None) -> Iterator[tuple[FetchedBody, str | None]]:
        """Every page, newest first, following ``meta.next_token`` until it is absent or repeats.

        Yields ``(page, next_token)``. Falls back to the legacy path on 404 and retries once without
        the fields parameter when the API rejects it. An empty page with a token is not the end.
        """
        fields: str | None = EVENT_FIELDS
        legacy = False
        token = pagination_token
        seen: set[str] = set()
        pages = 0
        while max_pages is None or pages < max_pages:
            try:
                page = self.get_conversation_events(conversation_id, max_results=max_results,
                                                    pagination_token=token,
                                                    chat_message_event_fields=fields, legacy=legacy)
            except FetchError as exc:
                if exc.status == 404 and not legacy and pages == 0:
                    legacy = True
                    continue
                if exc.status == 400 and fields and "chat_message_event.fields" in str(exc):
                    fields = None
                    continue
                raise
            pages += 1
            token = next_token_of(page.body)
            yield page, token
            if token is None or token in seen:
                return
            seen.add(token)

    def get_conversation(self, conversation_id: str) -> FetchedBody:
        path_id = conversation_path_id(conversation_id)
        return self._get(f"/2/chat/conversations/{quote(path_id)}", {"expansions": CONVERSATION_EXPANSIONS})

    def get_public_keys(self, user_id: str) -> FetchedBody:
        """``GET /2/users/{id}/public_keys``: all registered versions (rows lack ``user_id``)."""
        return self._get(f"/2/users/{quote(validate_user_id(user_id))}/public_keys", {})

    get_public_key = get_public_keys  # the official xdk's name

    # ------------------------------------------------------------------ transport
    def _get(self, path: str, params: dict[str, Any]) -> FetchedBody:
        if _FORBIDDEN_PATH.search(path):
            raise FetchError(f"refusing to call a write/side-effect route: {path}")
        url = self.base_url + path + ("?" + urlencode(params) if params else "")
        attempt = 0
        while True:
            if self._cancelled.is_set():
                raise FetchError("interrupted")
            self._respect_rate_limit()
            try:
                response, body = self._fetch(url)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                attempt = self._backoff(attempt, f"{type(exc).__name__} on {path}")
                continue
            self._note_rate_limit(response)
            status = response.status_code
            if status == 200 and _is_json(body):
                return FetchedBody(url, status, body, _now())
            if status == 200:
                attempt = self._backoff(attempt, f"truncated or invalid JSON from {path}")
                continue
            if status == 429:
                attempt = self._rate_limited(response, attempt, path)
                continue
            if status >= 500:
                attempt = self._backoff(attempt, f"HTTP {status} on {path}")
                continue
            raise FetchError(f"HTTP {status} on GET {path}: {_problem_text(body)}", status)

    def _fetch(self, url: str) -> tuple[httpx.Response, bytes]:
        """GET with the body read in chunks and capped at ``max_body_bytes``."""
        limit = self.policy.max_body_bytes
        with self._http.stream("GET", url, headers={"Authorization": f"Bearer {self._token}"}) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise FetchError(f"response of {int(declared)} bytes from {url.split('?')[0]} exceeds "
                                 f"the limit of {limit} bytes")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise FetchError(f"response from {url.split('?')[0]} exceeds the limit of {limit} bytes")
        return response, bytes(body)

    def _backoff(self, attempt: int, why: str) -> int:
        if attempt >= self.policy.max_retries:
            raise FetchError(f"giving up after {attempt + 1} attempts: {why}")
        delay = min(self.policy.backoff_cap, self.policy.backoff_base * 2 ** attempt)
        delay *= random.uniform(0.5, 1.0)  # jitter, so parallel fetchers do not retry in lockstep
        if self.events.on_retry:
            self.events.on_retry(why, attempt + 1)
        self._sleep(delay)
        return attempt + 1

    def _rate_limited(self, response: httpx.Response, attempt: int, path: str) -> int:
        reset = _reset_at(response)
        if reset is None:
            return self._backoff(attempt, f"HTTP 429 on {path}")
        wait = max(0.0, reset - time.time())
        if wait > self.policy.max_wait:
            raise FetchError(f"rate limited on {path}: the window resets in {wait:.0f}s, more than "
                             f"--max-wait {self.policy.max_wait:.0f}s", 429)
        if attempt >= self.policy.max_retries:
            raise FetchError(f"still rate limited on {path} after {attempt + 1} attempts", 429)
        self._block_until(reset)
        return attempt + 1

    def _note_rate_limit(self, response: httpx.Response) -> None:
        """After the last request of a window, hold every thread until the window resets."""
        if response.headers.get("x-rate-limit-remaining") == "0":
            reset = _reset_at(response)
            if reset is not None and reset - time.time() <= self.policy.max_wait:
                self._block_until(reset)

    def _block_until(self, reset: float) -> None:
        with self._rate_lock:
            self._blocked_until = max(self._blocked_until, reset)

    def _respect_rate_limit(self) -> None:
        with self._rate_lock:
            wait = self._blocked_until - time.time()
        if wait > 0:
            if self.events.on_wait:
                self.events.on_wait(wait, "rate limit")
            self._sleep(wait + 0.05)


def _reset_at(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["x-rate-limit-reset"])
    except (KeyError, ValueError):
        return None


def _is_json(body: bytes) -> bool:
    try:
        msgspec.json.decode(body)
        return True
    except (msgspec.DecodeError, RecursionError):
        return False


def next_token_of(body: bytes) -> str | None:
    try:
        head = msgspec.json.decode(body, type=_PageHead)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    return head.meta.next_token if head.meta else None


def participants_of(metadata: bytes) -> list[str]:
    """``participant_ids ∪ member_ids ∪ admin_ids`` of a conversation metadata body."""
    try:
        data = msgspec.json.decode(metadata)
    except (msgspec.DecodeError, RecursionError):
        return []
    conv = data.get("data") if isinstance(data, dict) else None
    if not isinstance(conv, dict):
        return []
    out: dict[str, None] = {}
    for name in ("participant_ids", "member_ids", "admin_ids"):
        for uid in conv.get(name) or []:
            if isinstance(uid, str) and _USER_ID.fullmatch(uid):
                out.setdefault(uid)
    return list(out)


def key_rows(body: bytes, user_id: str) -> list[dict]:
    """Rows of a public_keys body with the owning ``user_id`` attached; unreadable bodies give none."""
    try:
        data = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return []
    rows = data.get("data") if isinstance(data, dict) else None
    return [{**r, "user_id": r.get("user_id", user_id)} for r in rows or [] if isinstance(r, dict)]
