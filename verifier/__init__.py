"""xchat-verify: prove or disprove the integrity of X Chat conversation histories.

Public API (docs/api.md): ``verify_pages`` / ``Verification``, ``PageInput``, ``Keyring``, the
``Report`` and its vocabulary, the error hierarchy (``verifier.errors``), and, imported on first use
so that ``import verifier`` loads no HTTP stack, the X API client and the audit
(``XChatClient``, ``AuditOptions``, ``audit_conversation``, ``audit_conversation_async``: import
them by name; ``from verifier import *`` leaves them out).
"""

from __future__ import annotations

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
from .lazy import lazy_attributes
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


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
