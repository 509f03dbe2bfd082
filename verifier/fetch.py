"""Read-only X API client for chat events and public keys (httpx, HTTP/2, connection reuse).

Only GET routes are ever called; write and side-effect routes (``/read``, ``/typing``,
``/messages``, ``/keys``, POST public_keys) are refused by ``_get`` itself. The access token lives in
one request header and is never logged, printed, saved or put in an exception message: every text
the server provides is scrubbed of it and escaped (``sanitize.printable``) before it reaches a
``FetchError``. What a response may cost is bounded in ``transport``; how far a walk over pages
may go is bounded in ``paging``.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlencode, urlsplit

import httpx

from ._version import __version__
from .apibodies import (
    MAX_KEYS_RESPONSE_BYTES,
    MAX_MESSAGE,
    TOO_DEEP,
    _json_problem,
    _problem_text,
    base64_forms,
    json_token_paths,
)
from .clock import Clock, utc_now_iso
from .errors import ConfigError, FetchError, NetworkError, RateLimitError, UsageError, http_error
from .ids import conversation_path_id, validate_user_id
from .pages import json_value_bound
from .paging import Budget, PageHead, PageLimits, follow, page_head
from .sanitize import REDACTED, SECRET_PREFIX, printable, redact_secret
from .settings import DEFAULT_BASE_URL, RetryPolicy
from .transport import (
    ACCEPT_ENCODING,
    Corrupt,
    Refused,
    certificate_failure,
    check_base_url,
    new_http_client,
    read_body,
    request_deadline,
)

EVENT_FIELDS = ("id,conversation_id,conversation_token,created_at,encoded_event,is_trusted,"
                "message_event_signature,previous_id,sender_id")
CONVERSATION_EXPANSIONS = "participant_ids,member_ids,admin_ids"
_FORBIDDEN_PATH = re.compile(r"/(read|typing|messages|keys)(/|$)")
def _unreached(exc: Exception, base_url: str) -> str:
    """What to check when the server could not be reached at all (review 61); a server that was
    reached but answered badly is not given this hint (review 63)."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return f" at {printable(urlsplit(base_url).netloc)} (is --base-url right, and the server reachable?)"
    return ""


# What to check after a final 401/403 (review 61: the message said only "Unauthorized").
_AUTH_HINTS = {
    401: " (check the token in X_BEARER_TOKEN or --token-file: expired, revoked or not a user token)",
    403: " (the token lacks a scope, e.g. dm.read, the app is not enrolled, or the user is not a participant)",
}
MAX_EARLIER_TOKENS = 16  # as evidence.MAX_TOKEN_STRINGS: an audit has one token, a few after resumes


@dataclass
class FetchedBody:
    """One response as received: body bytes verbatim, where and when it came from (no secrets)."""

    url: str
    status: int
    body: bytes
    fetched_at: str


@dataclass
class ClientEvents:
    """Callbacks for progress displays; all optional."""

    on_wait: Callable[[float, str], None] | None = None
    on_retry: Callable[[str, int], None] | None = None


_TOKEN_CHARACTERS = frozenset(map(chr, range(0x21, 0x7F)))  # visible ASCII: what a header value can carry


def checked_token(token: object) -> str:
    """The bearer token without surrounding whitespace (a token file's newline: review 51, it was
    sent, refused, and retried for 23 s as a network error); ``UsageError`` for an empty token or
    one with a control, space or non-ASCII character inside, or a quote or backslash (``scrub_report``
    finds the token in JSON text, where those two are escaped). The message never quotes the token."""
    if not isinstance(token, str):
        raise UsageError(f"the access token must be a string, not {type(token).__name__}")
    token = token.strip()
    if not token:
        raise UsageError("an access token is required")
    if token[:7].lower() == "bearer " and _TOKEN_CHARACTERS.issuperset(token[7:].strip()):
        # r117: "Bearer abc" (copied from a curl line) was "holds a control, space or non-ASCII character"
        raise UsageError("the access token starts with 'Bearer ': give the token alone (the Authorization "
                         "header's scheme is added when it is sent)")
    if not _TOKEN_CHARACTERS.issuperset(token):
        raise UsageError("the access token holds a control, space or non-ASCII character: it cannot be "
                         "sent in an Authorization header (check the token file or variable)")
    if '"' in token or "\\" in token:  # review 79: JSON escapes them, and the report is scrubbed as JSON text
        raise UsageError("the access token holds a quote or a backslash, which no bearer token has (RFC 6750; "
                         "check the token file or variable)")
    return token


def _refuse_token_in_base_url(base_url: object, token: str) -> None:
    """``ConfigError``, quoting nothing, when the base URL holds the token, as it is or percent-encoded:
    it would be sent in every request line and saved as the manifest's ``base_url`` (r121: ``--base-url
    https://host/$TOKEN`` passed, as only a query was refused, and manifest.json held the token in
    clear). A token shorter than ``SECRET_PREFIX`` is not looked for: it would match ordinary text."""
    if isinstance(base_url, str) and len(token) >= SECRET_PREFIX and \
            (token in base_url or token in unquote(base_url)):
        raise ConfigError("--base-url holds the access token: it would be sent in every request line and saved "
                          "in the evidence; the token goes in X_BEARER_TOKEN or --token-file only")


class XChatClient:
    """Read-only client; names follow the official ``xdk`` client (snake_case, ids in any form)."""

    def __init__(self, access_token: str, base_url: str = DEFAULT_BASE_URL, *,
                 policy: RetryPolicy | None = None, events: ClientEvents | None = None,
                 transport: httpx.BaseTransport | None = None, http2: bool = True,
                 insecure_http: bool = False, clock: Clock | None = None) -> None:
        """``UsageError`` for an empty or unsendable token (surrounding whitespace is stripped, as the
        CLI does), ``ConfigError`` for an unusable base URL, proxy or TLS
        setting. ``clock`` is what rate-limit windows and retry backoff wait on (tests pass a
        ``clock.FakeClock``); request deadlines always use real time."""
        access_token = checked_token(access_token)
        _refuse_token_in_base_url(base_url, access_token)  # before check_base_url, whose errors quote the URL
        self.base_url = check_base_url(base_url, insecure_http=insecure_http)
        self.policy = policy or RetryPolicy()
        self.events = events or ClientEvents()
        self.clock = clock or Clock()
        self._cancelled = threading.Event()
        self._token = access_token
        # the token percent-decoded (``urlencode`` writes it back as the token) and percent-encoded (a server
        # quoting a request URL: r121, 'token AbC%2BdEf...' was printed in full); ``token_at`` records
        # them, so ``verify DIR`` scrubs them; a server echoing them must not put them into this run's report
        forms = (unquote_plus(access_token), quote_plus(access_token), quote(access_token))  # (a query; a path)
        self._forms = tuple(dict.fromkeys(f for f in forms if f != access_token and len(f) >= SECRET_PREFIX))
        self._earlier: tuple[str, ...] = ()  # tokens of the evidence a run resumes (``also_scrub``)
        self._rate_lock = threading.Lock()
        self._blocked_until = 0.0
        self._http = new_http_client(http2=http2, transport=transport, timeout=self.policy.timeout,
                                     headers={"User-Agent": f"xchat-verify/{__version__}",
                                              "Accept-Encoding": ACCEPT_ENCODING})

    def __repr__(self) -> str:  # never show the token
        return f"XChatClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def cancel(self) -> None:
        """Make every waiting or future request of this client fail with "interrupted" (Ctrl-C)."""
        self._cancelled.set()

    def _sleep(self, seconds: float) -> None:
        until = getattr(_wait_budget, "until", None)
        if until is not None and seconds > until - time.monotonic():
            raise OverBudget(f"waiting {seconds:.0f} s more (a rate-limit window or a retry) would pass the budget")
        if self.clock.wait(seconds, self._cancelled):
            raise FetchError("interrupted")

    # ------------------------------------------------------------------ secrecy
    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of the access token replaced: for anything the server said."""
        text = redact_secret(text, self._token, REDACTED)
        for form in self._forms:
            text = redact_secret(text, form, REDACTED)
        for secret in self._earlier:
            text = redact_secret(text, secret, REDACTED)
        return text

    def also_scrub(self, secrets: Iterable[str]) -> None:
        """Scrub these too: the access tokens of an earlier run, recovered from where the evidence a
        run resumes says its saved pages hold them (review 79: resumed with a new token, the report
        quoted the old one from the replayed pages, which ``verify DIR`` of the same evidence hides).
        At most ``MAX_EARLIER_TOKENS`` (an edited manifest cannot make every word a secret)."""
        merged = dict.fromkeys([*self._earlier, *(s for s in secrets if s != self._token)])
        self._earlier = tuple(merged)[:MAX_EARLIER_TOKENS]

    def exposes_token(self, value: str) -> bool:
        """Would sending ``value`` as a query parameter put the access token into the request URL
        (saved in the manifest)? Checked on the value and on its URL-encoded form, as ``urlencode``
        writes it: a real bearer token holds ``%2B`` or ``%3D``, so a next_token that is the token
        percent-decoded becomes the token again in the URL (review 79)."""
        return any(self.scrub(form) != form for form in (value, quote_plus(value)))

    def safe(self, text: object, limit: int = MAX_MESSAGE) -> str:
        """Server-provided text made fit for an error line, a log or a report: token scrubbed,
        control and bidi characters escaped, at most ``limit`` characters."""
        clean = printable(self.scrub(str(text)))
        return clean if len(clean) <= limit else clean[:limit] + "…"

    def token_offsets(self, body: bytes) -> list[list]:
        """Where the access token appears in a raw body (the body is evidence and is saved byte for
        byte; these locations let ``verify DIR`` scrub its report too): ``[offset, length]`` for each
        literal occurrence, else, for a token hidden behind JSON escapes, ``["json", path, at,
        length]`` (``"json-key"`` for an object key; ``"b64"`` inside the bytes a base64 string such as
        ``encoded_event`` decodes to), ``path`` holding indices only, never text."""
        out = _offsets(body, self._token.encode())
        if not out and (b"\\" in body or any(form in body for form in base64_forms(self._token))):
            out = json_token_paths(body, self._token)  # behind JSON escapes, or inside base64 (an event)
        # the token percent-decoded too: ``urlencode`` writes it back as the token, so a next_token
        # holding it is the token once sent; recorded, a --resume with a new token recovers it from
        # ``token_at`` and refuses to send it (round 81: it put the old token into manifest.json);
        # and percent-encoded, which a report would show as the server wrote it (r121)
        for form in self._forms:
            out += _offsets(body, form.encode(), 100 - len(out))
        return out

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
                                 max_pages: int | None = None, pagination_token: str | None = None,
                                 limits: PageLimits | None = None, seen_tokens: Iterable[str] = (),
                                 first_page: int = 1, seen_events: set[bytes] | None = None) -> "PageWalk":
        """Every page, newest first, following ``meta.next_token`` until it is absent.

        Iterate it for ``(page, token to follow or None)``; afterwards ``walk.stopped`` says why it
        ended before the history's end (a limit of ``limits``, a repeated, oversized or non-string
        token, ``has_more`` without a token), or is None when the history was read to its end.
        Falls back to the legacy path on 404 and retries once without the fields parameter when the
        API rejects it. An empty page with a token is not the end (twenty in a row are, and so are
        pages that only repeat events already fetched: ``seen_events`` holds their digests).
        """
        limits = limits or PageLimits(max_pages=None, max_bytes=None, max_seconds=None)
        if max_pages is not None:
            limits = PageLimits(**{**limits.__dict__, "max_pages": max_pages})
        walk = PageWalk(self, conversation_id, max_results, limits, pagination_token, set(seen_tokens), first_page)
        if seen_events is not None:
            walk.budget.seen_events = seen_events
        return walk

    def get_conversation(self, conversation_id: str) -> FetchedBody:
        path_id = conversation_path_id(conversation_id)
        return self._get(f"/2/chat/conversations/{quote(path_id)}", {"expansions": CONVERSATION_EXPANSIONS})

    def get_public_keys(self, user_id: str) -> FetchedBody:
        """``GET /2/users/{id}/public_keys``: all registered versions (rows lack ``user_id``)."""
        return self._get(f"/2/users/{quote(validate_user_id(user_id))}/public_keys", {},
                         limit=min(self.policy.max_body_bytes, MAX_KEYS_RESPONSE_BYTES))

    get_public_key = get_public_keys  # the official xdk's name

    # ------------------------------------------------------------------ transport
    def _get(self, path: str, params: dict[str, Any], limit: int | None = None) -> FetchedBody:
        if _FORBIDDEN_PATH.search(path):
            raise FetchError(f"refusing to call a write/side-effect route: {path}")
        url = self.base_url + path + ("?" + urlencode(params) if params else "")
        attempt = 0
        while True:
            if self._cancelled.is_set():
                raise FetchError("interrupted")
            self._respect_rate_limit()
            try:
                response, body = self._fetch(url, path, limit)
            except Refused as exc:  # hostile or oversized: asking again would only cost more
                raise FetchError(self.safe(exc, 500)) from None
            except (httpx.TimeoutException, httpx.TransportError, Corrupt) as exc:
                reason = certificate_failure(exc)
                if reason is not None:  # a retry cannot fix a certificate; say why it failed
                    raise NetworkError(f"TLS certificate of {urlsplit(self.base_url).hostname} not trusted: "
                                       f"{self.safe(reason)} (not retried)") from None
                attempt = self._backoff(attempt, f"{type(exc).__name__} on {path}" + _unreached(exc, self.base_url))
                continue
            self._note_rate_limit(response)
            status = response.status_code
            if status == 200:
                problem = _json_problem(body)
                if problem is None:
                    return FetchedBody(url, status, body, utc_now_iso())
                if problem == TOO_DEEP:  # nesting is the same on every try
                    raise FetchError(f"response from {path} is {problem} (not retried)")
                attempt = self._backoff(attempt, f"{problem} from {path}")
                continue
            if status == 429:
                attempt = self._rate_limited(response, attempt, path)
                continue
            if status >= 500:
                attempt = self._backoff(attempt, f"HTTP {status} on {path}")
                continue
            raise http_error(f"HTTP {status} on GET {path}: {self.safe(_problem_text(body))}{_AUTH_HINTS.get(status, '')}",
                             status)

    def _fetch(self, url: str, path: str, limit: int | None = None) -> tuple[httpx.Response, bytes]:
        """One GET within the request deadline, the body decoded and capped by ``transport.read_body``
        (at ``limit`` bytes when given: a public_keys response) and its JSON bounded in values before
        anything parses it."""
        policy = self.policy
        started = time.monotonic()
        try:
            with request_deadline(policy.request_deadline), \
                    self._http.stream("GET", url, headers={"Authorization": f"Bearer {self._token}"}) as response:
                body = read_body(response, policy.max_body_bytes if limit is None else limit, path,
                                 "--max-response-mb" if limit is None else "a public_keys response's limit")
        except (httpx.TimeoutException, httpx.TransportError):  # the deadline shows as a socket timeout
            if time.monotonic() - started >= policy.request_deadline:
                raise Refused(f"no complete response from {path} within the request deadline of "
                              f"{policy.request_deadline:g} s (--request-deadline)") from None
            raise
        if json_value_bound(body) > policy.max_json_values:
            raise Refused(f"response from {path} holds more than {policy.max_json_values} JSON values "
                          "(--max-json-values)")
        return response, body

    def _backoff(self, attempt: int, why: str) -> int:
        if attempt >= self.policy.max_retries:
            raise NetworkError(f"giving up after {attempt + 1} attempts: {why}")
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
        wait = max(0.0, reset - self.clock.time())
        if wait > self.policy.max_wait:
            raise RateLimitError(f"rate limited on {path}: {self._too_long(response, wait)}", 429)
        if attempt >= self.policy.max_retries:
            raise RateLimitError(f"still rate limited on {path} after {attempt + 1} attempts", 429)
        until = getattr(_wait_budget, "until", None)
        if until is not None and wait > until - time.monotonic():  # known now: not after the wait
            raise OverBudget(f"the rate-limit window of {path} resets in {wait:.0f} s, past the budget")
        self._block_until(reset)
        return attempt + 1

    def _too_long(self, response: httpx.Response, wait: float) -> str:
        """Why the window is not waited for, in words: a reset no wait reaches (``inf``, ``1e400``)
        is quoted, not shown as "infs" or as a number of hundreds of digits (review)."""
        limit = f"--max-wait {self.policy.max_wait:.0f}s"
        if wait < _FAR:
            return f"the window resets in {wait:.0f}s, more than {limit}"
        header = self.safe(response.headers.get("x-rate-limit-reset", ""), 40)
        return f"the window's reset (x-rate-limit-reset: {header}) is no time a run can wait for ({limit})"

    def _note_rate_limit(self, response: httpx.Response) -> None:
        """After the last request of a window, hold every thread until the window resets."""
        if response.headers.get("x-rate-limit-remaining") == "0":
            reset = _reset_at(response)
            if reset is not None and reset - self.clock.time() <= self.policy.max_wait:
                self._block_until(reset)

    def _block_until(self, reset: float) -> None:
        with self._rate_lock:
            self._blocked_until = max(self._blocked_until, reset)

    def _respect_rate_limit(self) -> None:
        with self._rate_lock:
            wait = self._blocked_until - self.clock.time()
        if wait > 0:
            if self.events.on_wait:
                self.events.on_wait(wait, "rate limit")
            self._sleep(wait + 0.05)


class OverBudget(FetchError):
    """A wait (a rate-limit window, a retry's backoff) that would end past the time budget of the
    walk it serves (``spend_waits_within``): the walk stops there, incomplete, instead of waiting."""


_wait_budget = threading.local()


@contextmanager
def spend_waits_within(until: float | None) -> Iterator[None]:
    """This thread's requests may wait (rate limits, retries) only until ``until`` (``time.monotonic``),
    else ``OverBudget``: --max-conversation-seconds is checked between requests, and one request kept
    in rate-limit waits ran on past it (round 97: ``--max-conversation-seconds 1`` fetched for 10 s; by
    default a request may wait --max-retries times --max-wait, an hour and a half)."""
    outer = getattr(_wait_budget, "until", None)  # nested: the nearer deadline holds, and the outer one after
    _wait_budget.until = until if outer is None or (until is not None and until < outer) else outer
    try:
        yield
    finally:
        _wait_budget.until = outer


class PageWalk:
    """The pages of one conversation, newest first, within ``limits``; see
    ``XChatClient.iter_conversation_events``. ``stopped`` is set when the walk ended early."""

    def __init__(self, client: XChatClient, conversation_id: str, max_results: int, limits: PageLimits,
                 token: str | None, seen: set[str], first_page: int) -> None:
        self.client, self.conversation_id, self.max_results = client, conversation_id, max_results
        self.limits, self.token, self.seen, self.first_page = limits, token, seen, first_page
        self.stopped: str | None = None
        self.last_head: PageHead | None = None
        self.budget = Budget(limits)
        self.started = False

    def __iter__(self) -> Iterator[tuple[FetchedBody, str | None]]:
        """The walk, once: a second iteration raises ``UsageError`` (review 51: it fetched the last
        page again, and went on from there with the first pass's budget)."""
        if self.started:
            raise UsageError("a PageWalk is iterated once; to go on, call iter_conversation_events again "
                             "with pagination_token= and seen_tokens=walk.seen")
        self.started = True
        return self._pages()

    def _pages(self) -> Iterator[tuple[FetchedBody, str | None]]:
        fields: str | None = EVENT_FIELDS
        legacy = False
        number = self.first_page - 1
        while True:
            self.stopped = self.budget.exhausted()
            if self.stopped:
                return
            if self.token is not None:
                if self.client.exposes_token(self.token):  # a resume point or a caller's token: review 79
                    self.stopped = f"page {number}: {_TOKEN_IN_NEXT}"
                    return
                self.seen.add(self.token)
            started = time.monotonic()  # time blocked while the consumer is busy is not counted
            seconds = self.limits.max_seconds
            try:
                with spend_waits_within(None if seconds is None else started + seconds - self.budget.seconds):
                    page = self.client.get_conversation_events(self.conversation_id, max_results=self.max_results,
                                                               pagination_token=self.token,
                                                               chat_message_event_fields=fields, legacy=legacy)
            except OverBudget as exc:
                self.stopped = f"page {number + 1}: {exc} of {seconds:g} s (--max-conversation-seconds)"
                return
            except FetchError as exc:
                if exc.status == 404 and not legacy and number < self.first_page:
                    legacy = True
                    continue
                if exc.status == 400 and fields and "chat_message_event.fields" in str(exc):
                    fields = None
                    continue
                raise
            finally:
                self.budget.seconds += time.monotonic() - started
            number += 1
            head = self._checked_head(page, number)
            self.budget.spend(page.body)
            token, self.stopped = follow(head, number, self.seen, self.limits)
            if token is not None and self.client.exposes_token(token):
                token, self.stopped = None, f"page {number}: {_TOKEN_IN_NEXT}"
            self.last_head = head
            yield page, token
            if token is None:
                return
            self.token = token

    def _checked_head(self, page: FetchedBody, number: int) -> PageHead:
        """The page's head; a page with more items than any real page holds is refused before it is
        saved or decoded (the engine would spend memory on every item)."""
        limit = self.limits.max_page_items
        head = page_head(page.body, limit)
        if head.items > limit:
            raise FetchError(f"page {number} holds more than {limit} items, counting data, meta key events and "
                             "errors (--max-page-items)")
        return head


def _offsets(body: bytes, needle: bytes, most: int = 100) -> list[list[Any]]:
    """``[offset, length]`` of each literal occurrence of ``needle`` in ``body``, at most ``most``."""
    out: list[list[Any]] = []
    at = body.find(needle)
    while at >= 0 and len(out) < most:
        out.append([at, len(needle)])
        at = body.find(needle, at + len(needle))
    return out


_TOKEN_IN_NEXT = "next_token contains the access token; not followed"
_FAR = 1e9  # seconds (31 years): as far as any option's wait may be (cli.finite_float)


def _reset_at(response: httpx.Response) -> float | None:
    """``x-rate-limit-reset`` (epoch seconds); None when absent or not a number, NaN included (it
    compares false with every bound: it was retried at once, without backoff)."""
    try:
        value = float(response.headers["x-rate-limit-reset"])
    except (KeyError, ValueError):
        return None
    return None if math.isnan(value) else value


