"""A local X API (chat read routes) serving generated, properly signed conversations.

Started by the tests on 127.0.0.1 (port 0), or by hand:

    python -m verifier.testing.server --port 8080 --events 250 [--shape 2.167] [--legacy]

It follows ../shared/spec/xapi.md: newest-first pages with opaque tokens,
``meta.conversation_key_events``, both item shapes (2.166 / 2.167; 2.159 in legacy mode), rate-limit
headers and 429s, 401 without the token, 400 for bad ids, ``max_results`` and field names, and
injectable faults (5xx, slow responses, truncated bodies, invalid JSON). Every request is recorded so
tests can assert that no write route was called.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .forge import Conversation, Identity, build_conversation, item_json

FIELDS_2166 = {"conversation_id", "conversation_token", "created_at_msec", "encoded_event", "id", "is_trusted",
               "message_event_signature", "previous_id", "sender_id"}
FIELDS_2167 = {"conversation_id", "conversation_token", "created_at", "encoded_event", "id", "is_trusted",
               "message_event_signature", "previous_id", "sender_id"}
_CONV_ID = re.compile(r"[0-9]{1,19}|[0-9]{1,19}-[0-9]{1,19}|g[0-9]{1,19}")
_USER_ID = re.compile(r"[0-9]{1,19}")
PROBLEM = "https://api.x.com/2/problems/"


@dataclass
class Fault:
    """Applied to the next ``times`` requests whose path contains ``match``."""

    kind: str  # "status" | "delay" | "truncate" | "invalid_json" | "close" | "huge"
    match: str = ""
    times: int = 1
    status: int = 503
    delay: float = 0.0


@dataclass
class ServerState:
    conversations: dict[str, Conversation]
    owner_id: str
    token: str
    shape: str = "2.166"  # "2.166" | "2.167"; legacy mode serves 2.159
    legacy: bool = False
    rate_limit: int | None = None  # requests per window and token
    window_s: float = 1.0
    reject_fields: bool = False
    sticky_token: bool = False  # misbehaving server: always the same next_token (clients must stop)
    empty_first_page: bool = False  # first page empty but with a token (not the end)
    users: dict[str, list[Identity]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=dict)
    window_start: float = 0.0
    window_used: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeXApi:
    """Start/stop wrapper; ``url`` is the base URL to give the client."""

    def __init__(self, conversations: list[Conversation] | None = None, *, token: str = "test-token-s3cr3t",
                 owner_id: str | None = None, **options: Any) -> None:
        conversations = conversations or default_conversations()
        users: dict[str, list[Identity]] = {}
        for conv in conversations:
            for member in conv.members:
                if member not in users.setdefault(member.user_id, []):
                    users[member.user_id].append(member)
        self.state = ServerState({canonical(c.conversation_id): c for c in conversations},
                                 owner_id or conversations[0].members[0].user_id, token, users=users, **options)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> "FakeXApi":
        state = self.state

        class Handler(_Handler):
            pass
        Handler.state = state
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> "FakeXApi":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, kind: str, match: str = "", times: int = 1, **kw: Any) -> None:
        with self.state.lock:
            self.state.faults.append(Fault(kind, match, times, **kw))

    @property
    def requests(self) -> list[tuple[str, str]]:
        return list(self.state.requests)


def canonical(conversation_id: str) -> str:
    a, sep, b = conversation_id.replace("-", ":").partition(":")
    if sep and a.isdigit() and b.isdigit():
        lo, hi = sorted((a, b), key=lambda x: (len(x), x))
        return f"{lo}:{hi}"
    return conversation_id


def default_conversations(events: int = 120, seed: str = "server") -> list[Conversation]:
    """A 1:1 conversation and a three-member group, deterministic."""
    alice = Identity.from_seed("1215441834412953600", "1765382634817", seed + "a")
    bob = Identity.from_seed("1843439638876491776", "1736723828667", seed + "b")
    carol = Identity.from_seed("1603419180975409153", "1701234567890", seed + "c")
    direct = build_conversation(events, members=[alice, bob], seed=seed + "1")
    group = build_conversation(max(3, events // 3), members=[alice, bob, carol], seed=seed + "2",
                               start_ms=1_784_900_000_000)
    return [direct, group]


def _problem(status: int, title: str, detail: str, kind: str = "about:blank", **extra: Any) -> tuple[int, dict]:
    return status, {"title": title, "detail": detail, "type": kind, "status": status, **extra}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: ServerState

    def log_message(self, *args: Any) -> None:  # quiet; requests are recorded in state
        return

    def do_POST(self) -> None:  # noqa: N802 - any write is recorded and refused
        self._record()
        self._send(*_problem(405, "Method Not Allowed", "this test server is read-only"))

    do_PUT = do_DELETE = do_PATCH = do_POST

    def do_GET(self) -> None:  # noqa: N802
        self._record()
        fault = self._take_fault()
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay)
            fault = None
        if self.headers.get("Authorization") != f"Bearer {self.state.token}":
            return self._send(*_problem(401, "Unauthorized", "Unauthorized"))
        limited = self._rate_limit()
        if limited:
            return self._send(*_problem(429, "Too Many Requests", "Too Many Requests"))
        if fault is not None and fault.kind == "status":
            return self._send(*_problem(fault.status, "Service Unavailable", "Service Unavailable"))
        status, body = self._route()
        if fault is not None and fault.kind in ("truncate", "invalid_json", "close"):
            return self._broken(fault.kind, body)
        if fault is not None and fault.kind == "huge":
            return self._huge(status, body, int(fault.delay or 8))
        self._send(status, body)

    # ---------------------------------------------------------------- plumbing
    def _record(self) -> None:
        with self.state.lock:
            self.state.requests.append((self.command, self.path))

    def _take_fault(self) -> Fault | None:
        with self.state.lock:
            for fault in self.state.faults:
                if fault.times > 0 and fault.match in self.path:
                    fault.times -= 1
                    return fault
        return None

    def _rate_limit(self) -> bool:
        state = self.state
        if state.rate_limit is None:
            return False
        with state.lock:
            now = time.time()
            if now >= state.window_start + state.window_s:
                state.window_start, state.window_used = now, 0
            state.window_used += 1
            self._limit_headers = {
                "x-rate-limit-limit": str(state.rate_limit),
                "x-rate-limit-remaining": str(max(0, state.rate_limit - state.window_used)),
                "x-rate-limit-reset": str(math.ceil(state.window_start + state.window_s)),
            }
            return state.window_used > state.rate_limit

    def _send(self, status: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json; charset=utf-8")
        self.send_header("content-length", str(len(raw)))
        for name, value in getattr(self, "_limit_headers", {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def _huge(self, status: int, body: Any, megabytes: int) -> None:
        """A valid body padded with megabytes of JSON whitespace, without a Content-Length."""
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("connection", "close")
        self.end_headers()
        chunk = b" " * (1024 * 1024)
        try:
            for _ in range(megabytes):
                self.wfile.write(chunk)
            self.wfile.write(json.dumps(body).encode())
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _broken(self, kind: str, body: Any) -> None:
        raw = json.dumps(body).encode()
        if kind == "invalid_json":
            raw = raw[: max(1, len(raw) // 2)]
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            return
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        if kind == "truncate":
            self.wfile.write(raw[: len(raw) // 2])
        self.wfile.flush()
        self.close_connection = True

    # ---------------------------------------------------------------- routes
    def _route(self) -> tuple[int, Any]:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        path = parts.path.rstrip("/")
        m = re.fullmatch(r"/2/chat/conversations/([^/]+)/events", path)
        if m:
            if self.state.legacy:
                return _problem(404, "Not Found Error", "route not found", PROBLEM + "resource-not-found",
                                resource_type="route")
            return self._events(m.group(1), query)
        m = re.fullmatch(r"/2/chat/conversations/([^/]+)", path)
        if m:
            return self._events(m.group(1), query) if self.state.legacy else self._metadata(m.group(1))
        m = re.fullmatch(r"/2/users/([^/]+)/public_keys", path)
        if m:
            return self._keys(m.group(1))
        if path == "/2/users/public_keys":
            return 403, {"title": "Client Forbidden", "detail": "This app is not enrolled for this route.",
                         "reason": "client-not-enrolled", "type": "https://api.twitter.com/2/problems/client-forbidden",
                         "required_enrollment": "Appropriate Level of API Access"}
        return _problem(404, "Not Found Error", f"no route {path}", PROBLEM + "resource-not-found",
                        resource_type="route")

    def _conversation(self, path_id: str) -> Conversation | tuple[int, Any]:
        if not _CONV_ID.fullmatch(path_id):
            return _invalid("id", path_id, f"The `id` path parameter value [{path_id}] is not valid")
        key = canonical(path_id if not path_id.isdigit() else f"{self.state.owner_id}:{path_id}")
        conv = self.state.conversations.get(key)
        if conv is None:
            return _problem(403, "Forbidden", "You are not permitted to perform this action.")
        return conv

    def _events(self, path_id: str, query: dict[str, str]) -> tuple[int, Any]:
        conv = self._conversation(path_id)
        if isinstance(conv, tuple):
            return conv
        try:
            max_results = int(query.get("max_results", "10"))
        except ValueError:
            max_results = -1
        if not 1 <= max_results <= 100:
            return _invalid("max_results", query.get("max_results"),
                            f"The `max_results` query parameter value [{query.get('max_results')}] is not between 1 and 100")
        fields = query.get("chat_message_event.fields")
        shape = "2.159" if self.state.legacy else self.state.shape
        allowed = FIELDS_2167 if shape == "2.167" else FIELDS_2166
        if fields is not None:
            bad = [f for f in fields.split(",") if f not in allowed]
            if bad or self.state.reject_fields or not fields:
                return _invalid("chat_message_event.fields", fields,
                                f"The `chat_message_event.fields` query parameter value [{','.join(bad) or fields}] "
                                f"is not one of [{','.join(sorted(allowed))}]")
        offset = 0
        token = query.get("pagination_token")
        if token is not None:
            with self.state.lock:
                offset = self.state.tokens.get(token, -1)
            if offset < 0:
                return _invalid("pagination_token", token, "The `pagination_token` query parameter value is invalid")
        elif self.state.empty_first_page:
            with self.state.lock:
                self.state.tokens["start"] = 0
            return 200, {"data": [], "meta": {"result_count": 0, "has_more": True, "next_token": "start"}}
        return 200, self._page(conv, offset, max_results, shape, fields)

    def _page(self, conv: Conversation, offset: int, size: int, shape: str, fields: str | None) -> dict:
        newest_first = list(reversed(conv.events))
        chunk = newest_first[offset:offset + size]
        items = [item_json(f, "2.167" if shape == "2.167" else "2.166") for f in chunk]
        if fields is not None:
            wanted = set(fields.split(",")) | {"id"}
            wanted |= {"sequence_id", "previous_sequence_id"} if "previous_id" in wanted and shape != "2.167" else set()
            items = [{k: v for k, v in item.items() if k in wanted} for item in items]
        body: dict[str, Any] = {"data": items}
        oldest = chunk[-1].event.sequence_id if chunk else None
        older_keys = [f.b64 for f in newest_first[offset + size:]
                      if f.event.kind == "ConversationKeyChangeEvent"] if oldest else []
        meta: dict[str, Any] = {"result_count": len(chunk), "has_more": offset + size < len(newest_first)}
        if older_keys:
            meta["missing_conversation_key_change_events" if shape == "2.159" else "conversation_key_events"] = older_keys
        if meta["has_more"]:
            token = "sticky" if self.state.sticky_token else secrets.token_urlsafe(12)
            with self.state.lock:
                self.state.tokens[token] = offset + size
            meta["next_token"] = token
        body["meta"] = meta
        return body

    def _metadata(self, path_id: str) -> tuple[int, Any]:
        conv = self._conversation(path_id)
        if isinstance(conv, tuple):
            return conv
        ids = [m.user_id for m in conv.members]
        if conv.conversation_id.startswith("g"):
            data = {"id": conv.conversation_id, "type": "group", "member_ids": ids, "admin_ids": ids[:1]}
        else:
            data = {"id": conv.conversation_id.replace(":", "-"), "type": "direct", "participant_ids": ids}
        return 200, {"data": data}

    def _keys(self, user_id: str) -> tuple[int, Any]:
        if not _USER_ID.fullmatch(user_id):
            return _invalid("id", user_id, f"The `id` path parameter value [{user_id}] is not valid")
        rows = []
        for identity in self.state.users.get(user_id, []):
            row = identity.keyring_row()
            if self.state.legacy:
                row["version"] = row.pop("public_key_version")
            rows.append(row)
        return 200, ({"data": rows} if rows else {})


def _invalid(parameter: str, value: Any, message: str) -> tuple[int, dict]:
    return 400, {"errors": [{"parameters": {parameter: [str(value)]}, "message": message}],
                 "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
                 "type": PROBLEM + "invalid-request"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local X API chat server with generated, signed conversations")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--events", type=int, default=120, help="events in the 1:1 conversation")
    parser.add_argument("--shape", choices=("2.166", "2.167"), default="2.166")
    parser.add_argument("--legacy", action="store_true", help="pre-2.163: /events is 404, events at the bare path")
    parser.add_argument("--rate-limit", type=int, default=None, help="requests per window (default: unlimited)")
    parser.add_argument("--window", type=float, default=15.0, help="rate-limit window in seconds")
    args = parser.parse_args(argv)
    token = secrets.token_urlsafe(16)
    api = FakeXApi(default_conversations(args.events), token=token, shape=args.shape, legacy=args.legacy,
                   rate_limit=args.rate_limit, window_s=args.window).start(args.host, args.port)
    print(f"serving {api.url}  token: {token}")
    for cid in api.state.conversations:
        print(f"  conversation {cid}")
    print(f"try: X_BEARER_TOKEN={token} xchat-verify audit --base-url {api.url} "
          + " ".join(api.state.conversations))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main()
