"""The HTTP layer under the X API client, hardened against the server it talks to.

The party an audit checks is the API server itself, so nothing it sends may cost more than a fixed
budget: a response is read raw and decoded here, one requested encoding (gzip) at a time and in
bounded steps, so a compression bomb stops at the size cap instead of inflating first; a request
has an overall deadline enforced on every socket operation, so a server that drips one byte at a
time cannot hold a request past it; the JSON a response holds is bounded in values before anything
parses it into objects. The URL policy keeps the token off plain-text links, and a broken proxy or
TLS setting is a one-line error, not a traceback.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx

from .errors import ConfigError, XChatVerifyError
from .sanitize import printable

ACCEPT_ENCODING = "gzip"  # the one encoding we ask for; anything else the server sends is refused
_INFLATE_STEP = 64 * 1024  # decompressed bytes produced per step, so the cap is checked as they appear
_USERINFO = re.compile(r"//[^/@\s]*@")


class Refused(XChatVerifyError):
    """The server sent something hostile or oversized: not retried, the reason is one line."""


class Corrupt(XChatVerifyError):
    """A compressed body that does not decode: treated like a truncated body (retried)."""


# ------------------------------------------------------------------------------------- URLs
def redact_userinfo(text: str) -> str:
    """``scheme://user:pass@host`` -> ``scheme://***@host`` in any text (proxy URLs in errors)."""
    return _USERINFO.sub("//***@", text)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, *, insecure_http: bool = False) -> str:
    """The API base URL, normalised, or ``ConfigError``: https only (plain http to a loopback host
    for local servers, or anywhere with ``insecure_http``), no credentials, no query or fragment.

    The bearer token is sent to this URL and the URL is saved in the evidence manifest, so a
    ``user:password@`` part would leak twice and a plain-http link would carry the token in clear.
    """
    shown = printable(redact_userinfo(url))
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(f"--base-url {shown} is not a valid URL: {printable(exc)}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise ConfigError(f"--base-url must be an https:// URL (http:// only to this machine), got {shown}")
    if "@" in parts.netloc:
        raise ConfigError("--base-url must not contain credentials (user:password@host): they would be "
                          "sent with every request and saved in the evidence")
    if not parts.hostname:
        raise ConfigError(f"--base-url {shown} has no host")
    if parts.query or parts.fragment:
        raise ConfigError(f"--base-url {shown} must not have a query or a fragment")
    if scheme == "http" and not insecure_http and not is_loopback(parts.hostname):
        raise ConfigError(f"refusing plain http:// to {printable(parts.hostname)}: the access token would "
                          "travel in clear (use https://, or pass --insecure-http)")
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc += f":{port}" if port is not None else ""
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


# ------------------------------------------------------------------------------------- client
def new_http_client(*, http2: bool, timeout: float, headers: dict[str, str],
                    transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An ``httpx.Client`` (proxies from the environment, TLS verified, redirects not followed)
    with the per-request deadline installed; configuration problems become ``ConfigError``."""
    try:
        client = httpx.Client(http2=http2, transport=transport, timeout=timeout, headers=headers,
                              follow_redirects=False)
    except ImportError as exc:
        if "socks" in str(exc).lower():
            raise ConfigError("a SOCKS proxy is configured (ALL_PROXY/HTTPS_PROXY/HTTP_PROXY) but SOCKS "
                              "support is not installed: pip install 'httpx[socks]'") from None
        raise ConfigError(f"HTTP support is incomplete: {printable(exc)}") from None
    except (ValueError, TypeError, httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise ConfigError(f"invalid proxy setting (HTTPS_PROXY/HTTP_PROXY/ALL_PROXY/NO_PROXY): "
                          f"{printable(redact_userinfo(str(exc)))}") from None
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"TLS settings (SSL_CERT_FILE/SSL_CERT_DIR) unusable: "
                          f"{printable(getattr(exc, 'strerror', None) or exc)}") from None
    install_deadlines(client)
    return client


# ------------------------------------------------------------------------------------- deadline
_deadline = threading.local()


@contextmanager
def request_deadline(seconds: float) -> Iterator[None]:
    """Every socket operation of this thread's request must finish before ``seconds`` from now."""
    _deadline.at = time.monotonic() + seconds
    try:
        yield
    finally:
        _deadline.at = None


def _clamp(timeout: float | None, error: type[Exception] = httpcore.ReadTimeout) -> float | None:
    """The socket timeout for one operation: the per-read timeout, but never past the deadline."""
    at = getattr(_deadline, "at", None)
    if at is None:
        return timeout
    remaining = at - time.monotonic()
    if remaining <= 0:
        raise error("request deadline passed")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every read, write and TLS handshake respects the thread's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                     _clamp(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_tcp(host, port, _clamp(timeout, httpcore.ConnectTimeout),
                                                       local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(path, _clamp(timeout, httpcore.ConnectTimeout),
                                                               socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def install_deadlines(client: httpx.Client) -> int:
    """Wrap the network backend of every connection pool of ``client`` (direct and proxies).

    httpx has no public hook for this; ``HTTPTransport._pool._network_backend`` is read when each
    connection is created. Returns how many pools were wrapped (a test asserts it is not 0, so an
    httpx upgrade that moves the attribute fails loudly instead of silently losing the deadline).
    """
    wrapped = 0
    mounts = getattr(client, "_mounts", {}) or {}
    for transport in [getattr(client, "_transport", None), *mounts.values()]:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None and not isinstance(backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(backend)
            wrapped += 1
    return wrapped


def certificate_failure(exc: BaseException) -> str | None:
    """The reason a TLS certificate was rejected, if that is what ``exc`` (or its cause) is."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or current.reason or str(current)
        current, seen = current.__cause__ or current.__context__, seen + 1
    return None


# ------------------------------------------------------------------------------------- bodies
def content_encodings(response: httpx.Response) -> list[str]:
    """The codings applied to the body, outermost last, without ``identity``."""
    names = []
    for header in response.headers.get_list("content-encoding"):
        names += [n.strip().lower() for n in header.split(",") if n.strip()]
    return [n for n in names if n != "identity"]


class _GzipInflater:
    """Incremental gzip decoding that never produces more than ``_INFLATE_STEP`` bytes per step
    (``zlib``'s ``max_length``), so the caller checks its cap before any more is inflated."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.done = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while True:
            try:
                out = self._z.decompress(data, _INFLATE_STEP)
            except zlib.error as exc:
                raise Corrupt(f"corrupt gzip body: {exc}") from None
            data = self._z.unconsumed_tail
            if out:
                self.done = False
                yield out
            if self._z.eof:
                self.done = True
                data = self._z.unused_data + data
                if not data:
                    return
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)  # concatenated gzip members
                continue
            if not data and len(out) < _INFLATE_STEP:
                return


def read_body(response: httpx.Response, limit: int, where: str, option: str = "--max-response-mb") -> bytes:
    """The decoded body of a streamed response, refused (``Refused``) beyond ``limit`` decoded bytes,
    for stacked or unrequested encodings, or when the declared length is already too large."""
    encodings = content_encodings(response)
    if len(encodings) > 1:
        raise Refused(f"response from {where} uses stacked content encodings ({printable(', '.join(encodings))}); "
                      f"only one ({ACCEPT_ENCODING}) was asked for")
    if encodings and encodings[0] not in ("gzip", "x-gzip"):
        raise Refused(f"response from {where} uses content encoding {printable(encodings[0])!r}, "
                      f"which was not asked for (only {ACCEPT_ENCODING})")
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        size = int(declared) if len(declared) <= 18 else f"more than {10 ** 18}"
        raise Refused(f"response of {size} bytes from {where} exceeds the limit of {limit} bytes ({option})")
    inflater = _GzipInflater() if encodings else None
    body = bytearray()
    for raw in response.iter_raw():
        for piece in (inflater.feed(raw) if inflater is not None else (raw,)):
            body += piece
            if len(body) > limit:
                raise Refused(f"response from {where} exceeds the limit of {limit} bytes"
                              + (" once decompressed" if inflater is not None else "") + f" ({option})")
    if inflater is not None and not inflater.done:
        raise Corrupt("truncated gzip body")
    return bytes(body)
