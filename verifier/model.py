"""Report vocabulary, written once: every status and finding code with its severity and the hint
a person reads; the report structure (``xchat-verify/report/v1``); the verdict and exit codes."""

from __future__ import annotations

from enum import Enum
from typing import Any

import msgspec

REPORT_SCHEMA = "xchat-verify/report/v1"


class StrEnum(str, Enum):
    """A string enum whose members print as their value (``enum.StrEnum`` needs Python 3.11)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class SigStatus(StrEnum):
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


class ChainStatus(StrEnum):
    LINKED = "linked"
    START = "start"
    GAP = "gap"
    FORK = "fork"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    NON_MONOTONIC = "non_monotonic"
    CYCLE = "cycle"
    OUT_OF_BAND = "out_of_band"


class Code(StrEnum):
    """Finding codes beyond the statuses (docs/formats.md)."""

    ENVELOPE_MISMATCH = "envelope_mismatch"
    KEY_CONFLICT = "key_conflict"
    CONVERSATION_MISMATCH = "conversation_mismatch"
    UNTRUSTED = "untrusted"
    EMBEDDED_KEY_USED = "embedded_key_used"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    REPLAY = "replay"
    META_NOT_KEY_CHANGE = "meta_not_key_change"
    TRAILING_BYTES = "trailing_bytes"
    SHADOWED_DETAIL = "shadowed_detail"
    NO_EVENTS = "no_events"
    NOTHING_PROVEN = "nothing_proven"
    INCOMPLETE = "incomplete"
    NO_TRUSTED_KEYS = "no_trusted_keys"
    KEY_ROW_FOREIGN_USER = "key_row_foreign_user"
    UNUSED_CONVERSATION_KEY = "unused_conversation_key"
    EVIDENCE_CONTAINS_TOKEN = "evidence_contains_token"
    EVIDENCE_KEYS_UNAUTHENTICATED = "evidence_keys_unauthenticated"
    EVIDENCE_KEYS_VOUCHED = "evidence_keys_vouched"
    USERS_NOT_FETCHED = "users_not_fetched"
    API_ERROR = "api_error"
    INPUT_ERROR = "input_error"
    # What signed events claim about other events (verifier.semantics, for everyone) and what a
    # participant's decrypted contents claim (verifier.participant, with --identity-key).
    TARGET_MISSING = "target_missing"
    TARGET_AFTER_EVENT = "target_after_event"
    NON_MEMBER_SENDER = "non_member_sender"
    SIGNING_KEY_REGRESSED = "signing_key_regressed"
    REPEATED_GROUP_CREATE = "repeated_group_create"
    REPLY_PREVIEW_MISMATCH = "reply_preview_mismatch"
    EDIT_BY_NON_AUTHOR = "edit_by_non_author"
    KEY_VERSION_REGRESSED = "key_version_regressed"
    UNKNOWN_KEY_VERSION = "unknown_key_version"
    UNDECRYPTABLE = "undecryptable"
    CONTENT_MALFORMED = "content_malformed"
    NOT_DECRYPTED = "not_decrypted"
    KEY_UNDECRYPTABLE = "key_undecryptable"
    KEY_VERSION_CONFLICT = "key_version_conflict"
    KEY_ENTRIES_UNTRIED = "key_entries_untried"
    NOT_A_PARTICIPANT = "not_a_participant"
    # the audit ledger (docs/ledger.md): what a later audit finds against what earlier ones saw
    HISTORY_REWRITTEN = "history_rewritten"
    CHAIN_REWRITTEN = "chain_rewritten"
    EVENT_VANISHED = "event_vanished"
    DELETED_BY_SIGNED_EVENT = "deleted_by_signed_event"
    HEAD_REGRESSED = "head_regressed"
    KEY_SUBSTITUTED = "key_substituted"
    KEY_VERSION_ROLLBACK = "key_version_rollback"
    SIGNATURE_VERSION_DOWNGRADE = "signature_version_downgrade"
    KEY_ADDED = "key_added"
    KEY_RETIRED = "key_retired"
    LEDGER_KEY_USED = "ledger_key_used"
    SPLIT_VIEW = "split_view"
    STALE_VIEW = "stale_view"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"


_E, _W, _I = Severity.ERROR, Severity.WARNING, Severity.INFO

# code -> (severity, or None for a clean status; the one-line hint for people reading a report)
VOCABULARY: dict[str, tuple[Severity | None, str]] = {
    SigStatus.VALID: (None, "The signature verifies over the rebuilt payload with the selected key."),
    SigStatus.INVALID: (_E, "The signature does not match the event: the event or its signature was altered, "
                            "or it was signed with another key."),
    SigStatus.UNSUPPORTED_VERSION: (_E, "Signature versions below 2 are refused: a downgrade to a weaker payload."),
    SigStatus.UNKNOWN_KEY: (_E, "No trusted signing key for this sender and key version; supply it with --keys "
                                "(or the sender's key was revoked/departed)."),
    SigStatus.KEY_BINDING_INVALID: (_E, "The keyring's identity-key binding signature does not verify for this key."),
    SigStatus.MISSING_SIGNATURE: (_E, "This event kind must be signed but carries no signature."),
    SigStatus.NOT_SIGNED: (None, "The protocol does not sign this kind of event."),
    SigStatus.NEEDS_CONVERSATION_KEY: (_I, "v6+ key changes sign the plaintext conversation key; pass "
                                           "--conversation-key VERSION=BASE64 to verify."),
    SigStatus.UNVERIFIABLE: (_E, "The signed payload cannot be rebuilt (missing field, comma in a component, or a "
                                 "signed kind that carries nothing the protocol signs)."),
    SigStatus.MALFORMED: (_E, "The event could not be decoded; see the detail for the exact reason."),
    ChainStatus.LINKED: (None, "Its predecessor is in the input."),
    ChainStatus.START: (None, "The oldest event of the window."),
    ChainStatus.GAP: (_E, "The event points at a predecessor that is missing from the input: history is "
                          "incomplete."),
    ChainStatus.FORK: (_E, "Several events claim the same predecessor: the history branches."),
    ChainStatus.DUPLICATE: (_W, "The same event appears more than once."),
    ChainStatus.CONFLICT: (_E, "Two different events share one sequence id."),
    ChainStatus.NON_MONOTONIC: (_W, "Sequence ids decrease along the chain."),
    ChainStatus.CYCLE: (_E, "previous_sequence_id pointers form a loop."),
    ChainStatus.OUT_OF_BAND: (None, "Delivered only in meta.conversation_key_events: outside the data chain."),
    Code.ENVELOPE_MISMATCH: (_E, "The JSON envelope disagrees with the encoded (signed) event."),
    Code.KEY_CONFLICT: (_E, "One (user, key version) maps to different keys in the input or keyring (one version "
                          "number spelled two ways, 1 and 01, is one version)."),
    Code.CONVERSATION_MISMATCH: (_E, "The event belongs to another conversation than its page, or names none."),
    Code.UNTRUSTED: (_W, "The API marks this event is_trusted=false."),
    Code.EMBEDDED_KEY_USED: (_W, "Verified with a key carried in the event itself (--allow-embedded-keys): "
                                 "not authenticated by the keyring."),
    Code.UNKNOWN_EVENT_TYPE: (_W, "Unknown event kind: nothing to verify, content not understood."),
    Code.REPLAY: (_E, "The same signed message id from the same sender appears at another position: a replayed "
                      "event."),
    Code.META_NOT_KEY_CHANGE: (_E, "meta.conversation_key_events must only carry key-change events."),
    Code.TRAILING_BYTES: (_E, "Bytes follow the end of the encoded event: ignored by the SDK and by every "
                              "check, they could carry content another reader would show."),
    Code.SHADOWED_DETAIL: (_E, "The encoded event repeats its detail: the SDK verifies only the last copy, "
                               "the earlier ones are hidden from it."),
    Code.NO_EVENTS: (_E, "Nothing to verify: the history is empty. Pass --allow-empty if that is expected."),
    Code.NOTHING_PROVEN: (_E, "No signature in this history could be proven, so a PASS would prove nothing. "
                              "Supply the missing keys (--keys, --conversation-key) or pass --allow-empty."),
    Code.INCOMPLETE: (_E, "The history was not fetched to its end; what is missing was not verified. Resume "
                          "the audit, or pass --allow-partial to accept a partial verdict."),
    Code.NO_TRUSTED_KEYS: (_E, "Signatures were checked only against keys carried in the events, which the "
                               "server controls. Pass --keys (e.g. from `keys fetch`) or --allow-embedded-keys "
                               "to accept that weaker claim."),
    Code.KEY_ROW_FOREIGN_USER: (_E, "A public-keys response for one user named another user; the row was ignored."),
    Code.UNUSED_CONVERSATION_KEY: (_I, "A --conversation-key was given for a version no key change uses: check "
                                       "the version."),
    Code.EVIDENCE_KEYS_UNAUTHENTICATED: (_E, "Signatures were checked against the key responses saved in the evidence "
                                             "directory, which whoever wrote or holds it controls. Pass --keys "
                                             "(keys you fetched yourself), --receipt-public-key (the key of the "
                                             "auditor whose receipt.json vouches for the directory) or, for your "
                                             "own evidence, --trust-evidence-keys."),
    Code.EVIDENCE_KEYS_VOUCHED: (_I, "Signatures were checked against the key responses saved in the evidence "
                                     "directory, which its receipt.json (verified with the given receipt key) "
                                     "covers: they are what that audit fetched from the API it names."),
    Code.EVIDENCE_CONTAINS_TOKEN: (_W, "A saved response body contains the access token (the server echoed it): "
                                       "the evidence stays byte-exact, so keep the directory private."),
    Code.USERS_NOT_FETCHED: (_W, "Keys were fetched for at most --max-users users; signatures of the others "
                                 "could not be checked against the directory."),
    Code.API_ERROR: (_W, "The API returned a partial error with this page: the page may be incomplete."),
    Code.INPUT_ERROR: (_E, "The input could not be read in full."),
    Code.TARGET_MISSING: (_W, "The event names a target (a deleted, reacted-to, edited, quoted or read-up-to "
                              "message) that is not in the fetched history. A warning when the target lies "
                              "before a window of the history; an error when the fetched range covers it, when "
                              "the history holds its first event (events were cut), or when the sequence id "
                              "holds something it cannot name (not a signed message, not a signed event)."),
    Code.TARGET_AFTER_EVENT: (_E, "The event targets an event that comes after it (or itself): a delete, "
                                  "reaction, edit, reply or read marker can only refer to the past."),
    Code.NON_MEMBER_SENDER: (_E, "A message, key change, delete or settings change from a user who is not a member: "
                                 "in a 1:1 conversation, anyone but the two users its id names; in a group, anyone "
                                 "not a member at that point, by replaying the proven group changes (create, add, "
                                 "remove, leave) in chain order."),
    Code.SIGNING_KEY_REGRESSED: (_W, "Signed with an older signing-key version than its sender used earlier in the "
                                     "history: after a rotation, an old key is in use again (a retired or stolen "
                                     "key, or a second device that missed the rotation: ask the sender; --strict "
                                     "fails it)."),
    Code.REPEATED_GROUP_CREATE: (_E, "A GroupCreate in a group whose earlier proven changes already made it. A "
                                     "GroupCreate's signature does not bind the conversation id, so a member's "
                                     "creation of another group can be replayed into this one: it changes no "
                                     "membership here."),
    Code.REPLY_PREVIEW_MISMATCH: (_E, "A reply quotes something the history does not hold: its embedded original "
                                      "(raw event, sender, text, sequence id) differs from the original event, or "
                                      "the embedded event's signature fails."),
    Code.EDIT_BY_NON_AUTHOR: (_E, "An edit of a message sent by someone else."),
    Code.KEY_VERSION_REGRESSED: (_E, "A message encrypted under a conversation-key version older than one its "
                                     "sender already used or introduced: the signed version never moves back."),
    Code.UNKNOWN_KEY_VERSION: (_E, "A message encrypted under a conversation-key version that no key change in "
                                   "the history introduced."),
    Code.UNDECRYPTABLE: (_E, "The message contents fail authentication under the conversation key of their "
                             "version: altered ciphertext, or encrypted under another key."),
    Code.CONTENT_MALFORMED: (_E, "The decrypted contents are not a well-formed MessageEntryHolder (read with "
                                 "the same bounds as events)."),
    Code.NOT_DECRYPTED: (_W, "The participant could not read this message: no proven key change of its version "
                             "gave them the key. Its signature is still checked; what it says is not."),
    Code.KEY_UNDECRYPTABLE: (_E, "A key change carries an entry for you that your identity key cannot decrypt: "
                                 "you were handed a key you cannot open (or the wrong identity key was given)."),
    Code.KEY_VERSION_CONFLICT: (_E, "Two key changes of one conversation give different keys for the same "
                                    "version; only one can be the key the version's signatures were made with."),
    Code.KEY_ENTRIES_UNTRIED: (_W, "A key change's entries were not all tried: the run's budget for entries "
                                   "labelled for others was spent first (a long history after you left, or junk "
                                   "entries padded in), so a key meant for you may be among those left, and what "
                                   "it encrypts unread (its messages are not_decrypted)."),
    Code.NOT_A_PARTICIPANT: (_E, "The identity key opened no conversation key and matches no identity key in "
                                 "the keyring: it is not the key of a participant, so nothing could be "
                                 "decrypted or checked."),
    Code.HISTORY_REWRITTEN: (_E, "An earlier audit saw a different event at this sequence id: the history was "
                                 "rewritten after the fact."),
    Code.CHAIN_REWRITTEN: (_E, "An earlier audit saw this sequence id with another previous_sequence_id: the "
                               "chain was re-linked."),
    Code.EVENT_VANISHED: (_E, "An event an earlier audit saw, inside the range fetched now, is gone and no "
                              "verified signed delete covers it."),
    Code.DELETED_BY_SIGNED_EVENT: (_I, "An event an earlier audit saw is gone, and a verified signed "
                                       "MessageDelete/ConversationDelete event covers it."),
    Code.HEAD_REGRESSED: (_E, "The newest event is older than a head an earlier audit saw: the history was "
                              "truncated or rolled back."),
    Code.KEY_SUBSTITUTED: (_E, "The same user and key version now map to a different signing key than an "
                               "earlier audit recorded."),
    Code.KEY_VERSION_ROLLBACK: (_E, "A user's current key version is lower than one an earlier audit saw "
                                    "served, or a key an earlier audit saw replaced by a newer version's key "
                                    "is served under a version newer than its replacement's."),
    Code.SIGNATURE_VERSION_DOWNGRADE: (_W, "A sender signs new events at a lower signature version than in "
                                           "events an earlier audit saw."),
    Code.KEY_ADDED: (_I, "The key directory serves a new key version for a user the ledger knew."),
    Code.KEY_RETIRED: (_I, "A key version an earlier audit saw served is no longer served; the ledger keeps "
                           "it to verify old events."),
    Code.LEDGER_KEY_USED: (_I, "Signatures were verified with keys the directory no longer serves, kept in "
                               "the ledger from an earlier audit (key source: ledger)."),
    Code.SPLIT_VIEW: (_E, "Two views of one conversation (two ledgers or checkpoints) disagree over the range "
                          "both saw: the server showed different histories."),
    Code.STALE_VIEW: (_E, "An audit that fetched a conversation to its end, recorded well after another "
                          "participant's audit saw a newer head, was served an older head (ledger compare)."),
}

# Derived views of the vocabulary.
STATUS_SEVERITY: dict[str, Severity] = {code: sev for code, (sev, _h) in VOCABULARY.items()
                                        if sev is not None and not isinstance(code, Code)}
FINDING_SEVERITY: dict[str, Severity] = {code: sev for code, (sev, _h) in VOCABULARY.items()
                                         if sev is not None and isinstance(code, Code)}
HINTS: dict[str, str] = {code: hint for code, (sev, hint) in VOCABULARY.items() if sev is not None}

# Signature statuses that fail the event.
ERROR_SIG: frozenset[str] = frozenset(code for code, sev in STATUS_SEVERITY.items()
                                      if sev is Severity.ERROR and isinstance(code, SigStatus))

# The explicit opt-in that turns a fail-closed finding into information, and the option's name.
ALLOWED_BY: dict[str, str] = {
    Code.NO_EVENTS: "allow_empty",
    Code.NOTHING_PROVEN: "allow_empty",
    Code.INCOMPLETE: "allow_partial",
    Code.NO_TRUSTED_KEYS: "allow_embedded_keys",
}

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3


# The per-event records hold no reference cycles: the cyclic collector need not track them (a report
# of a million events would otherwise be walked by every full collection).
class Finding(msgspec.Struct, gc=False):
    code: str
    severity: str
    message: str


class Check(msgspec.Struct, gc=False):
    status: str
    detail: str


class EventReport(msgspec.Struct, gc=False):
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
    api_errors: list[dict[str, Any]] = []


class Proof(msgspec.Struct):
    """What a verdict rests on, for the verdict line: "11 of 14 signatures proven; 3 need a
    conversation key"."""

    events: int = 0
    signed: int = 0  # events of a kind that must be signed
    proven: int = 0  # of those, the signature verified
    needs_conversation_key: int = 0
    unproven: int = 0  # signed, neither proven nor waiting for a conversation key
    not_signed: int = 0
    keys_authenticated: bool = False  # every signer key came from a keyring, the key directory or a verified receipt
    complete: bool = True  # every history was fetched to its end
    embedded_keys: int = 0  # events whose signature was checked with a key the event carried (--allow-embedded-keys)


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

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


def fails(severity: str, strict: bool) -> bool:
    """Does a finding of this severity make the verdict ``fail``?"""
    return severity == Severity.ERROR or (strict and severity == Severity.WARNING)


def exit_code(report: Report) -> int:
    """0 pass, 1 fail, 3 when an input could not be read in full (whatever the verdict)."""
    if not report.complete:
        return EXIT_INCOMPLETE
    return EXIT_PASS if report.verdict == Verdict.PASS else EXIT_FAIL


_UNAUTHENTICATED_KEYS = frozenset({Code.EVIDENCE_KEYS_UNAUTHENTICATED.value, Code.NO_TRUSTED_KEYS.value})


def unauthenticated_keys(report: Report) -> bool:
    """The run failed because nothing authenticates its signer keys (an evidence directory's saved
    keys, or the events' own without --keys), and the caller did not take them on trust: its events
    and keys are nobody's word, so no ledger records them (reviews 66, 69: a forged directory, or
    its pages, verified with ``--ledger`` made the next honest audit read as rewritten history)."""
    return any(f.code in _UNAUTHENTICATED_KEYS and f.severity == Severity.ERROR for f in report.findings)
