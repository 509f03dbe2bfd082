"""Every error xchat-verify raises on purpose, under one root a library user can catch.

``str(error)`` is always one line, escaped, and free of secrets (tokens, proxy passwords), so it can
be printed or logged as is. Each family carries the exit code the command line gives it.

    XChatVerifyError
    ├── UsageError            a bad option, argument or id (exit 2)
    │   ├── ConfigError       a client setting that cannot work: base URL, proxy, TLS files
    │   └── ResumeRefused     --resume against another server without --force
    ├── InputError            an input that could not be read in full (exit 3)
    │   ├── KeyringError      a keyring file or entry that cannot be used
    │   ├── IdentityKeyError  an --identity-key file that cannot be used (never quotes the key)
    │   ├── EvidenceError     an evidence directory that cannot be used
    │   │   └── ManifestError its manifest is not what the writer wrote
    │   ├── MalformedEvent    an encoded event that cannot be decoded (becomes a ``malformed`` status)
    │   └── LedgerError       a ledger that cannot be opened, read or written (corrupt, foreign, newer)
    └── FetchError            the X API could not be read (exit 3); ``status`` is the HTTP status or None
        ├── HTTPStatusError   a final HTTP error status (4xx other than 429, after the fallbacks)
        │   └── AuthError     401 or 403
        ├── RateLimitError    still rate limited, or the window resets later than --max-wait
        └── NetworkError      timeouts, connection and TLS failures after the retries

Internal signals (``PayloadUnavailable``, the transport's refusals) also derive from the root.
"""

from __future__ import annotations


class XChatVerifyError(Exception):
    """The root: anything xchat-verify raises on purpose."""

    exit_code = 3

    def __str__(self) -> str:
        """One line, escaped (``sanitize.printable``), whatever text the message quotes: a key
        row's version or user id, a path (round 88: a KeyringError quoted a directory's
        ``"1\\nverdict: PASS"`` raw into the caller's log)."""
        from .sanitize import printable
        return printable(super().__str__())


class UsageError(XChatVerifyError, ValueError):
    """A bad option value, argument or id; nothing was read or fetched (exit 2). Also a
    ``ValueError`` for callers that validate input that way."""

    exit_code = 2


class ConfigError(UsageError):
    """A client setting that cannot work (base URL, proxy, TLS files): one line, no secrets."""


class ResumeRefused(UsageError):
    """``--resume`` would mix evidence from two servers (refused unless ``--force``)."""


class InputError(XChatVerifyError):
    """An input (page file, keyring, evidence) could not be read in full (exit 3)."""


class KeyringError(InputError, ValueError):
    """A keyring that cannot be used; the message names the entry. Also a ``ValueError``."""


class IdentityKeyError(InputError, ValueError):
    """An identity key file that cannot be read or is not a private key blob (exit 3, as a keyring
    or receipt key file that cannot be used: the same kind of problem gets the same code). The
    message names the file and the reason, never any of its content. Also a ``ValueError``."""


class EvidenceError(InputError):
    """An evidence directory that cannot be used (unreadable, altered, outside its root)."""


class ManifestError(EvidenceError):
    """The evidence manifest is not what the writer wrote."""


class MalformedEvent(InputError):
    """An encoded event that cannot be decoded; the engine turns it into a ``malformed`` status."""


class LedgerError(InputError):
    """An audit ledger (``--ledger``) that cannot be used: not a ledger, corrupt, written by a newer
    version, unreachable or still locked after the retries. Never recreated silently (exit 3)."""


class ClusterError(XChatVerifyError):
    """``archive verify``: the Dask cluster could not be reached or kept losing the workers of a task."""


class FetchError(XChatVerifyError):
    """A one-line, token-free reason the X API could not be read; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class HTTPStatusError(FetchError):
    """The API answered with a final error status (after the documented fallbacks)."""


class AuthError(HTTPStatusError):
    """401 or 403: the token is missing, expired, lacks a scope, or is not a participant."""


class RateLimitError(FetchError):
    """Still rate limited after the retries, or the window resets later than ``--max-wait``."""


class NetworkError(FetchError):
    """Timeouts, refused or dropped connections and TLS failures, after the retries."""


def http_error(message: str, status: int) -> HTTPStatusError:
    """The right ``FetchError`` subclass for a final HTTP status."""
    if status in (401, 403):
        return AuthError(message, status)
    return HTTPStatusError(message, status)
