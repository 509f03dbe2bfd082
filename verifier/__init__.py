"""xchat-verify: prove or disprove the integrity of X Chat conversation histories.

Public API (docs/api.md): ``verify_pages`` / ``Verification``, ``PageInput``, ``Keyring``, the
``Report`` and its vocabulary, the error hierarchy (``verifier.errors``), and, imported on first use
so that ``import verifier`` loads no HTTP stack, the X API client and the audit
(``XChatClient``, ``AuditOptions``, ``audit_conversation``, ``audit_conversation_async``: import
them by name; ``from verifier import *`` leaves them out).
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .engine import PageInput, Verification, verify_pages
from .errors import (
    AuthError,
    ClusterError,
    ConfigError,
    EvidenceError,
    FetchError,
    HTTPStatusError,
    IdentityKeyError,
    InputError,
    KeyringError,
    LedgerError,
    MalformedEvent,
    ManifestError,
    NetworkError,
    RateLimitError,
    ResumeRefused,
    UsageError,
    XChatVerifyError,
)
from .ids import canonical_conversation
from .keys import Keyring, KeyringEntry
from .model import ChainStatus, Report, Severity, SigStatus, Verdict
from .wire import Limits

_LAZY = {"XChatClient": "fetch", "AuditOptions": "audit", "audit_conversation": "audit",
         "audit_conversation_async": "audit"}

__all__ = ["__version__", "verify_pages", "Verification", "PageInput", "Keyring", "KeyringEntry", "Report",
           "SigStatus", "ChainStatus", "Severity", "Verdict", "Limits", "canonical_conversation",
           "XChatVerifyError", "UsageError", "ConfigError", "IdentityKeyError", "InputError", "KeyringError", "EvidenceError",
           "ManifestError", "LedgerError", "ClusterError", "ResumeRefused", "MalformedEvent",
           "FetchError", "HTTPStatusError", "AuthError", "RateLimitError", "NetworkError"]
# The lazy names stay out of ``__all__``: ``from verifier import *`` would import them, and with
# them the HTTP stack (review 51). Import them by name: ``from verifier import XChatClient``.


def __getattr__(name: str) -> Any:
    """The network parts are imported when first used (``verifier.XChatClient``)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'verifier' has no attribute {name!r}")
    from importlib import import_module
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The lazy names are listed too, without being imported."""
    return sorted({*globals(), *_LAZY})
