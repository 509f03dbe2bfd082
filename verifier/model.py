"""Report vocabulary: statuses, findings and the report structure (``xchat-verify/report/v1``)."""

from __future__ import annotations

from enum import Enum

import msgspec

REPORT_SCHEMA = "xchat-verify/report/v1"


class SigStatus(str, Enum):
    VALID = "valid"
    INVALID = "invalid"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_KEY = "unknown_key"
    KEY_BINDING_INVALID = "key_binding_invalid"
    MISSING_SIGNATURE = "missing_signature"
    NOT_SIGNED = "not_signed"
    NEEDS_CONVERSATION_KEY = "needs_conversation_key"
    UNVERIFIABLE = "unverifiable"
    MALFORMED = "malformed"


class ChainStatus(str, Enum):
    LINKED = "linked"
    START = "start"
    GAP = "gap"
    FORK = "fork"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    NON_MONOTONIC = "non_monotonic"
    CYCLE = "cycle"
    OUT_OF_BAND = "out_of_band"


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


# Severity of a non-clean status; statuses absent here (valid, not_signed, linked, start, out_of_band)
# add no finding.
STATUS_SEVERITY: dict[str, Severity] = {
    "invalid": Severity.ERROR,
    "unsupported_version": Severity.ERROR,
    "unknown_key": Severity.ERROR,
    "key_binding_invalid": Severity.ERROR,
    "missing_signature": Severity.ERROR,
    "unverifiable": Severity.ERROR,
    "malformed": Severity.ERROR,
    "needs_conversation_key": Severity.INFO,
    "gap": Severity.ERROR,
    "fork": Severity.ERROR,
    "conflict": Severity.ERROR,
    "cycle": Severity.ERROR,
    "duplicate": Severity.WARNING,
    "non_monotonic": Severity.WARNING,
}

# Finding codes beyond the statuses, with their fixed severity.
FINDING_SEVERITY: dict[str, Severity] = {
    "envelope_mismatch": Severity.ERROR,
    "key_conflict": Severity.ERROR,
    "conversation_mismatch": Severity.ERROR,
    "untrusted": Severity.WARNING,
    "embedded_key_used": Severity.WARNING,
    "unknown_event_type": Severity.WARNING,
    "replay": Severity.ERROR,
    "trailing_bytes": Severity.ERROR,
    "shadowed_detail": Severity.ERROR,
    "meta_not_key_change": Severity.ERROR,
    # Conversation- and run-level findings (fail closed: a PASS must rest on proof).
    "no_events": Severity.ERROR,
    "nothing_proven": Severity.ERROR,
    "incomplete": Severity.ERROR,
    "no_trusted_keys": Severity.ERROR,
    "key_row_foreign_user": Severity.ERROR,
    "unused_conversation_key": Severity.INFO,
}

# The explicit opt-in that turns a fail-closed finding into information, and the option's name.
ALLOWED_BY: dict[str, str] = {
    "no_events": "allow_empty",
    "nothing_proven": "allow_empty",
    "incomplete": "allow_partial",
    "no_trusted_keys": "allow_embedded_keys",
}

# One-line hints for people reading a report (text, markdown, SARIF help).
HINTS: dict[str, str] = {
    "invalid": "The signature does not match the event: the event or its signature was altered, "
               "or it was signed with another key.",
    "unsupported_version": "Signature versions below 2 are refused: a downgrade to a weaker payload.",
    "unknown_key": "No trusted signing key for this sender and key version; supply it with --keys "
                   "(or the sender's key was revoked/departed).",
    "key_binding_invalid": "The keyring's identity-key binding signature does not verify for this key.",
    "missing_signature": "This event kind must be signed but carries no signature.",
    "unverifiable": "The signed payload cannot be rebuilt (missing field or comma in a component).",
    "malformed": "The event could not be decoded; see the detail for the exact reason.",
    "needs_conversation_key": "v6+ key changes sign the plaintext conversation key; pass "
                              "--conversation-key VERSION=BASE64 to verify.",
    "gap": "The event points at a predecessor that is missing from the input: history is incomplete.",
    "fork": "Several events claim the same predecessor: the history branches.",
    "conflict": "Two different events share one sequence id.",
    "cycle": "previous_sequence_id pointers form a loop.",
    "out_of_band": "Delivered only in meta.conversation_key_events: outside the data chain.",
    "duplicate": "The same event appears more than once.",
    "non_monotonic": "Sequence ids decrease along the chain.",
    "envelope_mismatch": "The JSON envelope disagrees with the encoded (signed) event.",
    "key_conflict": "One (user, key version) maps to different keys in the input or keyring.",
    "conversation_mismatch": "The event belongs to another conversation than its page.",
    "untrusted": "The API marks this event is_trusted=false.",
    "embedded_key_used": "Verified with a key carried in the event itself (--allow-embedded-keys): "
                         "not authenticated by the keyring.",
    "unknown_event_type": "Unknown event kind: nothing to verify, content not understood.",
    "api_error": "The API returned a partial error with this page: the page may be incomplete.",
    "replay": "The same signed message id from the same sender appears at another position: a replayed "
              "event.",
    "meta_not_key_change": "meta.conversation_key_events must only carry key-change events.",
    "trailing_bytes": "Bytes follow the end of the encoded event: ignored by the SDK and by every "
                      "check, they could carry content another reader would show.",
    "shadowed_detail": "The encoded event repeats its detail: the SDK verifies only the last copy, "
                       "the earlier ones are hidden from it.",
    "no_events": "Nothing to verify: the history is empty. Pass --allow-empty if that is expected.",
    "nothing_proven": "No signature in this history could be proven, so a PASS would prove nothing. "
                      "Supply the missing keys (--keys, --conversation-key) or pass --allow-empty.",
    "incomplete": "The history was not fetched to its end; what is missing was not verified. Resume "
                  "the audit, or pass --allow-partial to accept a partial verdict.",
    "no_trusted_keys": "Signatures were checked only against keys carried in the events, which the "
                       "server controls. Pass --keys (e.g. from `keys fetch`) or --allow-embedded-keys "
                       "to accept that weaker claim.",
    "key_row_foreign_user": "A public-keys response for one user named another user; the row was "
                            "ignored.",
    "unused_conversation_key": "A --conversation-key was given for a version no key change uses: check "
                               "the version.",
}

ERROR_SIG = {s for s, sev in STATUS_SEVERITY.items() if sev is Severity.ERROR}


class Finding(msgspec.Struct):
    code: str
    severity: str
    message: str


class Check(msgspec.Struct):
    status: str
    detail: str


class EventReport(msgspec.Struct):
    index: int
    sequence_id: str | None
    previous_sequence_id: str | None
    message_id: str | None
    sender_id: str | None
    event_type: str | None
    signature: Check
    chain: Check
    trusted: bool | None
    findings: list[Finding]
    key_version: str | None = None  # the signer's public_key_version named by the event
    created_at_msec: str | None = None  # unsigned server time, for timelines


class ConversationReport(msgspec.Struct):
    conversation_id: str
    verdict: str
    counts: dict[str, int]
    events: list[EventReport]
    findings: list[Finding] = []  # about the conversation as a whole (no_events, incomplete, ...)
    complete: bool = True  # False when the history was not fetched to its end


class InputReport(msgspec.Struct):
    """One input page: where it came from, which report indices it produced, and its problems."""

    source: str
    first_index: int
    event_count: int
    errors: list[str] = []
    api_errors: list[dict] = []


class Proof(msgspec.Struct):
    """What a verdict rests on, for the verdict line: "11 of 14 signatures proven; 3 need a
    conversation key"."""

    events: int = 0
    signed: int = 0  # events of a kind that must be signed
    proven: int = 0  # of those, the signature verified
    needs_conversation_key: int = 0
    unproven: int = 0  # signed, neither proven nor waiting for a conversation key
    not_signed: int = 0
    keys_authenticated: bool = False  # signer keys came from a keyring or the key directory
    complete: bool = True  # every history was fetched to its end


class Report(msgspec.Struct):
    schema: str
    verdict: str
    conversations: list[ConversationReport]
    strict: bool = False
    key_source: str = "embedded"
    inputs: list[InputReport] = []
    findings: list[Finding] = []  # about the run as a whole (no_trusted_keys, keyring problems, ...)
    proof: Proof = msgspec.field(default_factory=Proof)

    @property
    def complete(self) -> bool:
        """False when an input could not be read in full (the CLI exits 3)."""
        return not any(i.errors for i in self.inputs)

    def to_dict(self) -> dict:
        return msgspec.to_builtins(self)


def fails(severity: str, strict: bool) -> bool:
    """Does a finding of this severity make the verdict ``fail``?"""
    return severity == "error" or (strict and severity == "warning")
