"""xchat-verify: prove or disprove the integrity of X Chat conversation histories.

Public API (see docs/api.md): ``verify_pages``, ``PageInput``, ``Keyring``, ``Report`` and the
status enums. Fetching from the X API lives in ``verifier.fetch`` / ``verifier.audit``.
"""

__version__ = "0.1.0"

from .engine import PageInput, Verification, canonical_conversation, verify_pages
from .keys import Keyring, KeyringEntry
from .model import ChainStatus, Report, Severity, SigStatus
from .wire import Limits
from .audit import AuditOptions, audit_conversation, audit_conversation_async
from .fetch import FetchError, XChatClient

__all__ = ["verify_pages", "Verification", "PageInput", "Keyring", "KeyringEntry", "Report", "SigStatus",
           "ChainStatus", "Severity", "Limits", "canonical_conversation", "XChatClient", "FetchError",
           "audit_conversation", "audit_conversation_async", "AuditOptions"]
