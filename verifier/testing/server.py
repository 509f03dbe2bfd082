"""A local X API (chat read routes) serving generated, properly signed conversations.

Started by the tests on 127.0.0.1 (port 0), or by hand:

    python -m verifier.testing.server --port 8080 --events 250 [--shape 2.167] [--legacy]
    python -m verifier.testing.server --hostile gzip-stacked --hostile echo-token

It follows ../shared/spec/xapi.md: newest-first pages with opaque tokens,
``meta.conversation_key_events``, both item shapes (2.166 / 2.167; 2.159 in legacy mode), rate-limit
headers and 429s, 401 without the token, 400 for bad ids, ``max_results`` and field names, and
injectable faults (5xx, slow responses, truncated bodies, invalid JSON). Every request is recorded so
tests can assert that no write route was called.

Hostile modes (``HOSTILE_MODES``) turn it into the adversary an audit must hold against: compression
bombs, endless or looping pagination, drips, token echoes, terminal escapes, malformed values and a
certificate no client should trust. Each is one attack of issue 15, tested end to end.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import math
import os
import random
import re
import secrets
import socket
import ssl
import struct
import tempfile
import threading
import time
import weakref
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..clock import Clock
from ..ids import canonical_conversation
from .forge import Conversation, Identity, build_conversation, item_json

FIELDS_2166 = {"conversation_id", "conversation_token", "created_at_msec", "encoded_event", "id", "is_trusted",
               "message_event_signature", "previous_id", "sender_id"}
FIELDS_2167 = {"conversation_id", "conversation_token", "created_at", "encoded_event", "id", "is_trusted",
               "message_event_signature", "previous_id", "sender_id"}
_CONV_ID = re.compile(r"[0-9]{1,19}|[0-9]{1,19}-[0-9]{1,19}|g[0-9]{1,19}")
_USER_ID = re.compile(r"[0-9]{1,19}")
PROBLEM = "https://api.x.com/2/problems/"
MB = 1024 * 1024
ESCAPES = "\x1b[2J\x1b[H\x1b[32mverdict: PASS\x1b[0m\r\u202e"  # clears the screen, prints a fake verdict

HOSTILE_MODES: dict[str, str] = {
    "gzip-stacked": "events pages as Content-Encoding: gzip, gzip: a few KB that inflate to --bomb-mb MB",
    "deflate-stacked": "the same with Content-Encoding: deflate, deflate",
    "gzip-bomb": "events pages as one gzip layer that inflates to --bomb-mb MB",
    "unknown-encoding": "events pages with Content-Encoding: compress (never asked for)",
    "endless": "every events page repeats the newest page's events with a fresh next_token, forever",
    "endless-empty": "empty events pages, each with a fresh next_token, forever",
    "huge-pages": "endless empty events pages padded with --pad-mb MB of whitespace (no Content-Length)",
    "long-tokens": "every next_token is --token-bytes characters long",
    "token-loop": "next_token cycles: page 3 hands back the token of page 1",
    "token-not-string": "next_token is a number",
    "has-more-no-token": "the first page says has_more: true but carries no next_token",
    "has-more-not-boolean": "the first page says has_more: \"true\" (a string) and carries no next_token",
    "missing-events": "each page leaves one event out and says so in errors[] (resource-unavailable)",
    "many-items": "the first events page holds --items empty objects",
    "many-participants": "conversation metadata names --participants more participants",
    "drip": "events response bodies arrive one byte every --drip-interval seconds",
    "drip-headers": "events response headers arrive one byte every --drip-interval seconds",
    "echo-token": "the Authorization header echoed in a 403 on public keys, in errors[] of every page and in "
                  "the conversation metadata",
    "echo-token-escaped": "echo-token with the token written as JSON \\u escapes in 200 bodies (no literal copy)",
    "echo-token-shadowed": "the token, as JSON \\u escapes, only in a first `meta` member of each events page that "
                           "a second (the real one) shadows",
    "escape": "terminal escapes (clear screen, fake verdict, bidi override) in a 403 on public keys and in "
              "errors[] of every page",
    "malformed-keys": "public keys answer {\"data\": 5}",
    "malformed-participants": "conversation metadata with participant_ids: 5 and member_ids: 5",
    "bad-sender-id": "the first page carries an item whose sender_id is a path with escapes, not a user id",
    "bad-cert": "TLS with a self-signed certificate (https on the same port)",
    "switch-conversation": "a bare user id (the 1:1 conversation with that user) is served the group's metadata and "
                           "events instead",
}

# A server that serves one history, then a rewritten one (switch modes between audits, or start it
# again with them): what an audit --ledger must catch. Every event served stays validly signed, so a
# snapshot audit of the rewritten history alone passes (issue 9, docs/ledger.md).
HISTORY_MODES: dict[str, str] = {
    "rewrite": "the middle event of the 1:1 conversation is another message, re-signed by its sender",
    "vanish": "the middle event of the 1:1 conversation is gone and its successor re-linked over it",
    "truncate": "the newest 5 events of the 1:1 conversation are gone (the head rolls back)",
    "delete": "the newest event of the 1:1 conversation is gone, deleted by a signed MessageDeleteEvent",
    "key-substitution": "the second member's key is replaced at the same key version, their events re-signed",
    "key-alias": "the second member's key is replaced by another key at the same key version spelled with a "
                 "leading zero (round 73), their events re-signed",
    "key-rollback": "the first member's key is an older key version again, their events re-signed with it",
    "key-rotation": "the first member also has a newer key version (nothing re-signed)",
    "member-left": "the group's third member left: the directory no longer serves their keys (404)",
    "downgrade": "two new events of the first member, signed at signature version 4",
    "split-view": "requests with the second token (--second-token) see the history of rewrite; others the "
                  "honest one",
    "clear": "the newest 6 events of the 1:1 conversation are gone; a ConversationDeleteEvent from the first "
             "member signed with clear_all_messages true and sort_order_msec at the newest one's time covers them",
    "clear-nothing": "the newest 6 events of the 1:1 conversation are gone; a ConversationDeleteEvent from the "
                     "first member signed with clear_all_messages false and sort_order_msec 1 (it clears nothing)",
    "clear-stranger": "as clear, but the ConversationDeleteEvent is signed by a user who is not a member (the "
                      "directory serves their key)",
    "drop-oldest": "the oldest 3 events of the 1:1 conversation are gone (the new oldest keeps its previous "
                   "pointer)",
    "renumber": "the 1:1 conversation is renumbered above its old head: every sequence id and previous pointer "
                "moved up (sequence ids are not signed; every event stays validly signed)",
}
HOSTILE_MODES.update(HISTORY_MODES)


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
    gzip: bool = False  # honest compression: one gzip layer when the client accepts it
    hostile: set[str] = field(default_factory=set)  # names from HOSTILE_MODES
    clock: Clock = field(default_factory=Clock)  # rate-limit windows (tests share a FakeClock with the client)
    bomb_mb: int = 4096  # what the compression bombs inflate to
    pad_mb: int = 60  # whitespace before each huge page
    token_bytes: int = 60_000  # length of long-tokens
    participant_count: int = 20_000  # extra participants of many-participants
    item_count: int = 1_000_000  # items of many-items
    drip_interval: float = 2.0  # seconds between the bytes of drip and drip-headers
    connections: int = 0  # TCP connections accepted (a TLS handshake that fails still counts)
    accept_encodings: list[str | None] = field(default_factory=list)  # Accept-Encoding of each GET
    users: dict[str, list[Identity]] = field(default_factory=dict)
    second_token: str | None = None  # a second participant's token (split-view)
    histories: dict = field(default_factory=dict)  # frozenset of history modes -> (conversations, users)
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=dict)
    window_start: float = 0.0
    window_used: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)  # wakes drips and delays at stop()


class FakeXApi:
    """Start/stop wrapper; ``url`` is the base URL to give the client."""

    def __init__(self, conversations: list[Conversation] | None = None, *, token: str = "test-token-s3cr3t",
                 owner_id: str | None = None, **options: Any) -> None:
        conversations = conversations or default_conversations()
        unknown = set(options.get("hostile", ())) - set(HOSTILE_MODES)
        if unknown:
            raise ValueError(f"unknown hostile mode(s): {', '.join(sorted(unknown))}")
        options["hostile"] = set(options.get("hostile", ()))
        users: dict[str, list[Identity]] = {}
        for conv in conversations:
            for member in conv.members:
                if member not in users.setdefault(member.user_id, []):
                    users[member.user_id].append(member)
        self.state = ServerState({canonical_conversation(c.conversation_id): c for c in conversations},
                                 owner_id or conversations[0].members[0].user_id, token, users=users, **options)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> "FakeXApi":
        state = self.state
        state.stopping.clear()  # started again after a stop(): drips and delays are back

        class Handler(_Handler):
            pass
        Handler.state = state
        self._server = _Server((host, port), Handler)
        self._server.state = state
        if "bad-cert" in state.hostile:
            # the handshake happens in the request's thread (``_Server.finish_request``): in accept()
            # a client that never sends its hello would hold the server loop, and stop() with it
            self._server.socket = _self_signed_context().wrap_socket(self._server.socket, server_side=True,
                                                                      do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)  # stop() waits at most one poll
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        scheme = "https" if "bad-cert" in self.state.hostile else "http"
        return f"{scheme}://{host}:{port}"

    def stop(self) -> None:
        """Stop accepting, close every connection, and wait (a few seconds at most) for the request
        threads to end: a stopped server leaves no thread dripping into a closed socket."""
        if self._server:
            self._server.shutdown()
            self._server.end_requests(timeout=5.0)
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._handlers: weakref.WeakSet[threading.Thread] = weakref.WeakSet()

    def get_request(self) -> Any:
        with self.state.lock:
            self.state.connections += 1
        connection, address = super().get_request()
        # headers and body are separate writes: without this, Nagle's algorithm and the client's
        # delayed ACK add ~40 ms to every response on a kept-alive connection
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._open.add(connection)
        return connection, address

    def process_request(self, request: Any, client_address: Any) -> None:
        """``ThreadingMixIn.process_request``, remembering the thread so ``end_requests`` can wait for it."""
        thread = threading.Thread(target=self.process_request_thread, args=(request, client_address), daemon=True)
        self._handlers.add(thread)
        thread.start()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """In the request's thread: the TLS handshake first (``bad-cert``), then the request. A
        handshake the client refuses ends the connection quietly, as a failed accept() did."""
        if isinstance(request, ssl.SSLSocket):
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)

    def end_requests(self, timeout: float) -> None:
        """Wake sleeping handlers, close every connection (an idle kept-alive one too), then join
        the handler threads within ``timeout`` seconds in all."""
        self.state.stopping.set()
        for connection in list(self._open):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in list(self._handlers):
            thread.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: clients hanging up on a hostile response (or a TLS handshake) is the point."""
        return


@lru_cache(maxsize=1)
def _self_signed_context() -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1 (no client trusts it)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="xchat-fake-tls-") as scratch:  # ssl loads a chain from files only
        folder = Path(scratch)
        (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
        context.load_cert_chain(folder / "cert.pem", folder / "key.pem")  # read now: the files can go
    return context


@lru_cache(maxsize=4)
def _deflate_bomb(megabytes: int) -> bytes:
    """Raw deflate data that inflates to ``megabytes`` MB of zeros, built without inflating them:
    a full flush leaves the compressor at a byte boundary with an empty window, so every compressed
    1 MB block is identical and can simply be repeated (about 1 KB per MB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(b"\0" * MB) + compressor.flush(zlib.Z_FULL_FLUSH)
    return block * megabytes + compressor.flush()


def gzip_bomb(megabytes: int) -> bytes:
    """One gzip member inflating to ``megabytes`` MB (its CRC is wrong: no client should get that far)."""
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + _deflate_bomb(megabytes) + \
        struct.pack("<II", 0, (megabytes * MB) & 0xFFFFFFFF)


@lru_cache(maxsize=4)
def stacked_bomb(kind: str, megabytes: int) -> bytes:
    """``gzip, gzip`` or ``deflate, deflate``: the bomb compressed once more (a few KB)."""
    if kind == "gzip":
        return gzip.compress(gzip_bomb(megabytes), 9)
    inner = b"\x78\xda" + _deflate_bomb(megabytes) + b"\0\0\0\0"
    return zlib.compress(inner, 9)


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
            self.state.stopping.wait(fault.delay)
            fault = None
        tokens = {f"Bearer {self.state.token}"} | ({f"Bearer {self.state.second_token}"}
                                                    if self.state.second_token else set())
        if self.headers.get("Authorization") not in tokens:
            return self._send(*_problem(401, "Unauthorized", "Unauthorized"))
        limited = self._rate_limit()
        if limited:
            return self._send(*_problem(429, "Too Many Requests", "Too Many Requests"))
        if fault is not None and fault.kind == "status":
            return self._send(*_problem(fault.status, "Service Unavailable", "Service Unavailable"))
        self._kind = ""
        status, body = self._route()
        if fault is not None and fault.kind in ("truncate", "invalid_json", "close"):
            return self._broken(fault.kind, body)
        if fault is not None and fault.kind == "huge":
            return self._huge(status, body, int(fault.delay or 8))
        if self._kind == "events" and status == 200 and self._hostile_response(body):
            return
        self._send(status, body)

    def _has(self, mode: str) -> bool:
        return mode in self.state.hostile

    def _served(self) -> tuple[dict[str, Conversation], dict[str, list[Identity]]]:
        """The conversations and key directory this request sees under the history modes."""
        modes = {m for m in self.state.hostile if m in HISTORY_MODES}
        if "split-view" in modes:
            modes.discard("split-view")
            if self.state.second_token and \
                    self.headers.get("Authorization") == f"Bearer {self.state.second_token}":
                modes.add("rewrite")
        if not modes:
            return self.state.conversations, self.state.users
        key = frozenset(modes)
        with self.state.lock:
            if key not in self.state.histories:
                self.state.histories[key] = rewritten_history(self.state.conversations, self.state.users, key)
            return self.state.histories[key]

    def _hostile_response(self, body: Any) -> bool:
        """Send an events page the hostile way, if a response-level mode is on; True if sent."""
        state = self.state
        if self._has("gzip-stacked") or self._has("deflate-stacked"):
            kind = "gzip" if self._has("gzip-stacked") else "deflate"
            self._send_raw(200, stacked_bomb(kind, state.bomb_mb), {"content-encoding": f"{kind}, {kind}"})
        elif self._has("gzip-bomb"):
            self._send_raw(200, gzip_bomb(state.bomb_mb), {"content-encoding": "gzip"})
        elif self._has("unknown-encoding"):
            self._send_raw(200, json.dumps(body).encode(), {"content-encoding": "compress"})
        elif self._has("huge-pages"):
            self._huge(200, body, state.pad_mb)
        elif self._has("drip"):
            self._drip(json.dumps(body).encode(), headers_too=False)
        elif self._has("drip-headers"):
            self._drip(json.dumps(body).encode(), headers_too=True)
        else:
            return False
        return True

    def _send_raw(self, status: int, raw: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _drip(self, raw: bytes, headers_too: bool) -> None:
        """The response one byte at a time (headers too, if asked), until the client gives up."""
        head = (f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(raw)}\r\n"
                "connection: close\r\n\r\n").encode()
        self.close_connection = True
        try:
            if not headers_too:
                self.wfile.write(head)
                self.wfile.flush()
            for byte in (head if headers_too else b"") + raw:
                if self.state.stopping.wait(self.state.drip_interval):
                    return  # the server stops: so does the drip
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass

    # ---------------------------------------------------------------- plumbing
    def _record(self) -> None:
        with self.state.lock:
            self.state.requests.append((self.command, self.path))
            self.state.accept_encodings.append(self.headers.get("Accept-Encoding"))

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
            now = state.clock.time()
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
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        if self._has("echo-token-escaped") and status == 200:
            token = self.state.token
            raw = raw.replace(token.encode(), "".join(f"\\u{ord(c):04x}" for c in token).encode())
        if self._has("echo-token-shadowed") and status == 200 and isinstance(body, dict) and "meta" in body:
            escaped = "".join(f"\\u{ord(c):04x}" for c in self.state.token)
            raw = b'{"meta": {"echo": "' + escaped.encode() + b'"}, ' + raw[1:]
        encoding = None
        if self.state.gzip and "gzip" in self.headers.get("Accept-Encoding", ""):
            raw, encoding = gzip.compress(raw), "gzip"
        self.send_response(status)
        self.send_header("content-type", "application/json; charset=utf-8")
        self.send_header("content-length", str(len(raw)))
        if encoding:
            self.send_header("content-encoding", encoding)
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
        except (BrokenPipeError, ConnectionResetError, OSError):
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
            self._kind = "events"
            if self.state.legacy:
                return _problem(404, "Not Found Error", "route not found", PROBLEM + "resource-not-found",
                                resource_type="route")
            return self._events(m.group(1), query)
        m = re.fullmatch(r"/2/chat/conversations/([^/]+)", path)
        if m:
            self._kind = "events" if self.state.legacy else "metadata"
            return self._events(m.group(1), query) if self.state.legacy else self._metadata(m.group(1))
        m = re.fullmatch(r"/2/users/([^/]+)/public_keys", path)
        if m:
            self._kind = "keys"
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
        key = canonical_conversation(path_id if not path_id.isdigit() else f"{self.state.owner_id}:{path_id}")
        if path_id.isdigit() and self._has("switch-conversation"):
            key = next(cid for cid in self._served()[0] if cid.startswith("g"))
        conv = self._served()[0].get(key)
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
        if self._has("endless-empty") or self._has("huge-pages"):
            return 200, {"data": [], "meta": {"result_count": 0, "has_more": True, "next_token": self._token(0)}}
        if self._has("many-items") and token is None:
            return 200, _many_items(self.state.item_count)
        page = self._page(conv, 0 if self._has("endless") else offset, max_results, shape, fields)
        return 200, self._hostile_page(page, token)

    def _token(self, offset: int) -> str:
        """A fresh pagination token for ``offset`` (``--token-bytes`` long with long-tokens)."""
        size = self.state.token_bytes if self._has("long-tokens") else 16
        token = secrets.token_urlsafe(size)[:size]
        with self.state.lock:
            self.state.tokens[token] = offset
        return token

    def _hostile_page(self, page: dict, token: str | None) -> dict:
        """Page-level attacks on a page the honest server built."""
        meta = page["meta"]
        if self._has("endless"):
            meta["has_more"], meta["next_token"] = True, self._token(0)
        elif self._has("long-tokens") and isinstance(meta.get("next_token"), str):
            with self.state.lock:
                offset = self.state.tokens[meta["next_token"]]
            meta["next_token"] = self._token(offset)
        if self._has("token-loop") and ("next_token" in meta or token in ("loop-a", "loop-b")):
            with self.state.lock:
                size = len(page["data"]) or 1
                self.state.tokens.update({"loop-a": size, "loop-b": 2 * size})
            meta["next_token"] = "loop-b" if token == "loop-a" else "loop-a"
        if self._has("token-not-string") and "next_token" in meta:
            meta["next_token"] = 12345
        if self._has("has-more-no-token") and token is None:
            meta.pop("next_token", None)
            meta["has_more"] = True
        if self._has("has-more-not-boolean") and token is None:
            meta.pop("next_token", None)
            meta["has_more"] = "true"
        errors = []
        if self._has("missing-events") and len(page["data"]) > 2:
            del page["data"][1]
            errors.append({"type": PROBLEM + "resource-unavailable", "title": "Resource Unavailable",
                           "detail": "Some events of this page could not be returned.",
                           "resource_type": "chat_message_event"})
        if self._has("echo-token") or self._has("echo-token-escaped"):
            errors.append({"type": PROBLEM + "field-hydration-failure", "title": "Field Hydration Failure",
                           "detail": f"could not hydrate a field for {self.headers.get('Authorization')}",
                           "field": "is_trusted"})
        if self._has("escape"):
            errors.append({"type": PROBLEM + "field-hydration-failure", "title": ESCAPES,
                           "detail": ESCAPES, "field": "is_trusted"})
        if self._has("bad-sender-id") and token is None and page["data"]:
            page["data"].append(_bad_sender_item(page["data"][-1].get("conversation_id")))
        if errors:
            page["errors"] = errors
        return page

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
        if self._has("many-participants"):
            rng = random.Random(path_id)
            ids = ids + [str(rng.randrange(10 ** 17, 10 ** 18)) for _ in range(self.state.participant_count)]
        if conv.conversation_id.startswith("g"):
            data: dict[str, Any] = {"id": conv.conversation_id, "type": "group", "member_ids": ids,
                                    "admin_ids": ids[:1]}
        else:
            data = {"id": conv.conversation_id.replace(":", "-"), "type": "direct", "participant_ids": ids}
        if self._has("malformed-participants"):
            data.update(participant_ids=5, member_ids=5)
        if self._has("echo-token") or self._has("echo-token-escaped"):
            data["debug"] = f"request carried {self.headers.get('Authorization')}"
        return 200, {"data": data}

    def _keys(self, user_id: str) -> tuple[int, Any]:
        if not _USER_ID.fullmatch(user_id):
            return _invalid("id", user_id, f"The `id` path parameter value [{user_id}] is not valid")
        if self._has("malformed-keys"):
            return 200, {"data": 5}
        if self._has("echo-token") or self._has("echo-token-escaped"):
            return _problem(403, "Forbidden", f"{self.headers.get('Authorization')} may not read keys of {user_id}")
        if self._has("escape"):
            return _problem(403, ESCAPES, ESCAPES)
        rows = []
        for identity in self._served()[1].get(user_id, []):
            row = identity.keyring_row()
            if self.state.legacy:
                row["version"] = row.pop("public_key_version")
            rows.append(row)
        return 200, ({"data": rows} if rows else {})


def rewritten_history(conversations: dict[str, Conversation], users: dict[str, list[Identity]],
                      modes: frozenset[str]) -> tuple[dict[str, Conversation], dict[str, list[Identity]]]:
    """The history and key directory under ``modes`` (HISTORY_MODES); every served event stays validly
    signed by the key the directory then serves. The first conversation is the 1:1 one."""
    import copy

    from .forge import encrypt_contents, forge_event
    convs = {cid: Conversation(c.conversation_id, list(c.members), list(c.events), dict(c.conversation_keys))
             for cid, c in conversations.items()}
    served = {uid: list(ids) for uid, ids in users.items()}
    direct = next(iter(convs.values()))
    first, second = direct.members[0], direct.members[1]

    def resign(conv: Conversation, forged, *, sender: Identity | None = None, **changes):
        ev = forged.event
        fields = dict(conversation_id=ev.conversation_id, sequence_id=ev.sequence_id,
                      previous_sequence_id=ev.previous_sequence_id, message_id=ev.message_id,
                      created_at_msec=ev.created_at_msec, signature_version=ev.signature.signature_version,
                      conversation_keys=conv.conversation_keys)
        body = changes.pop("body", ev.body)
        fields.update(changes)
        who = sender or next(m for m in conv.members if m.user_id == ev.sender_id)
        return forge_event(who, ev.kind, copy.deepcopy(body), **fields)

    def replace_identity(old: Identity, new: Identity) -> None:
        for conv in convs.values():
            if old not in conv.members:
                continue
            conv.members = [new if m == old else m for m in conv.members]
            conv.events = [resign(conv, f, sender=new) if f.event.sender_id == old.user_id else f
                           for f in conv.events]
        served[old.user_id] = [new if i == old else i for i in served[old.user_id]]

    events = direct.events
    middle = len(events) // 2
    if "rewrite" in modes:
        forged = events[middle]
        original = forged.event.body or {}  # a message: it has a body
        ckv = original["conversation_key_version"]
        body = dict(original, contents=encrypt_contents(direct.conversation_keys[ckv], "rewritten",
                                                                 b"\x07" * 24))
        events[middle] = resign(direct, forged, body=body)
    if "vanish" in modes:
        gone = events.pop(middle)
        events[middle] = resign(direct, events[middle], previous_sequence_id=gone.event.previous_sequence_id)
    if "truncate" in modes:
        del events[-5:]
    if "delete" in modes:
        gone = events.pop()
        last = events[-1].event
        sender = next(m for m in direct.members if m.user_id == gone.event.sender_id)
        ms = int(gone.event.created_at_msec or 0) + 60_000
        from .forge import snowflake
        events.append(forge_event(sender, "MessageDeleteEvent",
                                  {"sequence_ids": [gone.event.sequence_id], "delete_message_action": 2},
                                  conversation_id=last.conversation_id, sequence_id=snowflake(ms, 4242),
                                  previous_sequence_id=last.sequence_id, created_at_msec=str(ms)))
    if modes & {"clear", "clear-nothing", "clear-stranger"}:
        from .forge import snowflake
        gone_events = events[-6:]
        del events[-6:]
        last = events[-1].event
        newest_ms = int(gone_events[-1].event.created_at_msec or 0)
        ms = newest_ms + 60_000
        options = {"clear_all_messages": False, "sort_order_msec": 1} if "clear-nothing" in modes else \
            {"clear_all_messages": True, "sort_order_msec": newest_ms}
        signer = first
        if "clear-stranger" in modes:
            signer = Identity.from_seed("4242424242", first.version, "stranger")
            served[signer.user_id] = [signer]
        events.append(forge_event(signer, "ConversationDeleteEvent",
                                  {"conversation_id": last.conversation_id, "options": options},
                                  conversation_id=last.conversation_id, sequence_id=snowflake(ms, 777),
                                  previous_sequence_id=last.sequence_id, created_at_msec=str(ms)))
    if "drop-oldest" in modes:
        del events[:3]
    if "renumber" in modes:
        shift = int(events[-1].event.sequence_id or 0) - int(events[0].event.sequence_id or 0) + 1
        moved = []
        for f in events:
            ev = f.event
            moved.append(resign(direct, f, sequence_id=str(int(ev.sequence_id or 0) + shift),
                                previous_sequence_id=None if ev.previous_sequence_id is None else
                                str(int(ev.previous_sequence_id) + shift)))
        events[:] = moved
    if "downgrade" in modes:
        from .forge import snowflake
        for i in range(2):
            last = events[-1].event
            ms = int(last.created_at_msec or 0) + 1000
            ckv = last.body.get("conversation_key_version") if last.body else None
            ckv = ckv or next(iter(direct.conversation_keys))
            events.append(forge_event(first, "MessageCreateEvent",
                                      {"contents": encrypt_contents(direct.conversation_keys[ckv], f"old {i}",
                                                                    bytes([i + 1]) * 24),
                                       "conversation_key_version": ckv},
                                      conversation_id=last.conversation_id, sequence_id=snowflake(ms, 5000 + i),
                                      previous_sequence_id=last.sequence_id, created_at_msec=str(ms),
                                      signature_version="4", conversation_keys=direct.conversation_keys))
    if "key-substitution" in modes:
        replace_identity(second, Identity.from_seed(second.user_id, second.version, "substituted"))
    if "key-alias" in modes:
        replace_identity(second, Identity.from_seed(second.user_id, "0" + second.version, "aliased"))
    if "key-rollback" in modes:
        older = str(int(first.version) - 1000) if first.version.isdigit() else "1"
        replace_identity(first, Identity.from_seed(first.user_id, older, "rolled-back"))
    if "key-rotation" in modes:
        newer = str(int(first.version) + 1000) if first.version.isdigit() else "2"
        served[first.user_id] = served[first.user_id] + [Identity.from_seed(first.user_id, newer, "rotated")]
    if "member-left" in modes:
        group = [c for c in convs.values() if len(c.members) > 2]
        if group:
            served.pop(group[0].members[2].user_id, None)
    return convs, served


@lru_cache(maxsize=4)
def _bad_sender_item(conversation_id: str | None) -> dict:
    """A signed event whose sender id is a path with terminal escapes, not a user id."""
    from .forge import forge_event, item_json, snowflake
    evil = Identity.from_seed("../../etc/passwd" + ESCAPES, "1", "evil")
    forged = forge_event(evil, "MessageCreateEvent", {"contents": b"\x01" * 40, "conversation_key_version": "1"},
                         conversation_id=conversation_id, sequence_id=snowflake(1_700_000_000_000, 7),
                         created_at_msec="1700000000000")
    return item_json(forged)


@lru_cache(maxsize=2)
def _many_items(count: int) -> bytes:
    """An events page with ``count`` empty objects in ``data`` (pre-encoded: it is served as is)."""
    return b'{"data":[' + b"{}," * (count - 1) + b'{}],"meta":{"result_count":' + str(count).encode() + b"}}"


def _invalid(parameter: str, value: Any, message: str) -> tuple[int, dict]:
    return 400, {"errors": [{"parameters": {parameter: [str(value)]}, "message": message}],
                 "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
                 "type": PROBLEM + "invalid-request"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m verifier.testing.server",
                                     description="Local X API chat server with generated, signed conversations")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    parser.add_argument("--events", type=int, default=120, help="events in the 1:1 conversation")
    parser.add_argument("--shape", choices=("2.166", "2.167"), default="2.166",
                        help="event items as API 2.158-2.166 (sequence_id, ...) or 2.167 (id, previous_id, "
                             "created_at) shape them (default 2.166; docs/formats.md)")
    parser.add_argument("--legacy", action="store_true", help="pre-2.163: /events is 404, events at the bare path")
    parser.add_argument("--rate-limit", type=int, default=None, help="requests per window (default: unlimited)")
    parser.add_argument("--window", type=float, default=15.0, help="rate-limit window in seconds")
    parser.add_argument("--gzip", action="store_true", help="gzip responses when the client accepts it")
    parser.add_argument("--hostile", action="append", default=[], choices=sorted(HOSTILE_MODES), metavar="MODE",
                        help="attack the client (repeatable): " + "; ".join(f"{k}: {v}" for k, v in HOSTILE_MODES.items()))
    parser.add_argument("--bomb-mb", type=int, default=4096, help="what the compression bombs inflate to")
    parser.add_argument("--pad-mb", type=int, default=60, help="padding of huge-pages")
    parser.add_argument("--token-bytes", type=int, default=60_000, help="next_token length of long-tokens")
    parser.add_argument("--participants", type=int, default=20_000, help="extra ids of many-participants")
    parser.add_argument("--items", type=int, default=1_000_000, help="items of many-items")
    parser.add_argument("--drip-interval", type=float, default=2.0, help="seconds per byte of drip/drip-headers")
    parser.add_argument("--second-token", default=None, help="a second participant's token (split-view)")
    parser.add_argument("--identity-keys", metavar="DIR", default=None,
                        help="write each participant's private key blob to DIR/USER_ID.key (mode 0600), to try "
                             "the participant audit (--identity-key) and transcript; test keys, never real ones")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("events", "window", "bomb_mb", "pad_mb", "token_bytes", "participants", "items", "drip_interval"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be greater than 0")
    if args.rate_limit is not None and args.rate_limit < 1:
        parser.error("--rate-limit must be at least 1")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    token = secrets.token_urlsafe(16)
    conversations = default_conversations(args.events)
    written = write_identity_keys(conversations, args.identity_keys) if args.identity_keys else []
    api = FakeXApi(conversations, token=token, shape=args.shape, legacy=args.legacy,
                   rate_limit=args.rate_limit, window_s=args.window, gzip=args.gzip, hostile=set(args.hostile),
                   bomb_mb=args.bomb_mb, pad_mb=args.pad_mb, token_bytes=args.token_bytes,
                   participant_count=args.participants, item_count=args.items,
                   drip_interval=args.drip_interval, second_token=args.second_token)
    try:
        api.start(args.host, args.port)
    except OSError as exc:  # a port in use, an address that is not ours: one line, exit 2
        parser.exit(2, f"{parser.prog}: error: cannot listen on {args.host}:{args.port}: "
                       f"{exc.strerror or exc}\n")
    print(f"serving {api.url}  token: {token}" + (f"  hostile: {', '.join(sorted(args.hostile))}" if args.hostile else ""))
    for cid in api.state.conversations:
        print(f"  conversation {cid}")
    print(f"try: X_BEARER_TOKEN={token} xchat-verify audit --base-url {api.url} "
          + " ".join(api.state.conversations))
    if written:
        first = next(iter(api.state.conversations))
        print(f"identity keys: {', '.join(str(p) for p in written)}")
        print(f"try: X_BEARER_TOKEN={token} xchat-verify transcript --base-url {api.url} {first} "
              f"--identity-key {written[0]} -o transcript.md --format markdown")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        api.stop()


def write_identity_keys(conversations: list[Conversation], folder: str) -> list[Path]:
    """Each participant's private key blob in ``folder``/USER_ID.key, readable by its owner only
    (the participant audit refuses a key file others can read)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for conv in conversations:
        for member in conv.members:
            if member.user_id not in written:
                path = written[member.user_id] = out / f"{member.user_id}.key"
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(member.private_key_blob() + "\n")
                os.chmod(path, 0o600)
    return list(written.values())


if __name__ == "__main__":
    main()
