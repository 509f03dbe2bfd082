"""The participant audit: a reviewer (``engine.Reviewer``) that holds the participant's identity key.

Before signatures are checked it decrypts every conversation key addressed to the participant from
the key changes (``data`` and ``meta``), so v6+ key changes verify like any other event. Once
signatures are known it opens each message with the key of its version (only keys whose key change
is proven), decodes the contents with the bounded reader, and checks what they claim against the
history: targets of reactions, edits and read markers, who edits whose message, what replies quote,
and how conversation-key versions move. Findings go into the report; plaintext never does: it stays
in this object for ``verifier.participant.transcript`` and nothing else.

Key adoption follows the SDK's ``extract_conversation_keys``: entries for another key version of
the participant's are skipped (when that version is known), an entry that decrypts gives the key,
and for one version the last key change wins. The participant's own entries are tried first (the
SDK tries entries in list order; the two differ only if an entry labelled for someone else also
opens with the participant's key); entries labelled for others are tried, in order, only when none
of the participant's opens, within a budget for the whole run (hostile key changes can carry 10,000
entries each).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import MalformedEvent
from ..keys import Keyring, UnusableKey, decode_signature, parse_public_key, verify_raw
from ..payload import CKEY_PLAINTEXT_SIGNATURE_VERSION, PayloadUnavailable, build_payload, parse_signature_version
from ..semantics import (
    MESSAGE,
    TargetProblems,
    Timeline,
    content_id,
    is_decimal,
    kind_of,
    not_a_signed_message,
    position,
    proven,
    shown,
    timelines,
)
from ..signers import select_key
from ..wire import DEFAULT_LIMITS, Limits, MessageEvent, b64decode_strict
from .content import TARGET_FIELDS, Content, decode_content
from .crypto import secretbox_open
from .identity import IdentityKey

KEY_CHANGE = "ConversationKeyChangeEvent"
_TARGET_WORDS = {"reaction_add": "reacts to", "reaction_remove": "removes a reaction from",
                 "message_edit": "edits", "mark_conversation_read": "marks read up to",
                 "mark_conversation_unread": "marks unread from"}
_MESSAGE_TARGETS = {"reaction_add", "reaction_remove", "message_edit"}
MY_ENTRY_ATTEMPTS = 16  # entries labelled for the participant tried per key change
OTHER_ENTRY_BUDGET = 20_000  # entries labelled for others tried in a whole run (~0.2 ms each)


@dataclass
class KeyChangeOutcome:
    """What the participant's identity key opened in one key change."""

    version: str | None
    key: bytes | None = None  # the key this event gives (its first entry that decrypts)
    tried: list[tuple[str | None, str | None, bool]] = field(default_factory=list)  # (user, version, opened)
    mine_failed: bool = False  # an entry for the participant did not decrypt
    untried: int = 0  # entries left untried because the run's budget for others' entries was spent


@dataclass
class Opened:
    """One message as the participant read it: ``status`` is ``decrypted`` (``content`` set),
    ``undecryptable``, ``malformed``, ``not_decrypted`` or ``unknown_version``."""

    status: str
    content: Content | None = None


class Participant:
    """Audit as a participant: ``verify_pages(..., reviewers=[SignedChecks(), Participant(key)])``,
    or ``participant_reviewers(key)``."""

    def __init__(self, identity: IdentityKey, *, limits: Limits = DEFAULT_LIMITS) -> None:
        self.identity = identity
        self.limits = limits
        self.me: tuple[str, str | None] | None = None  # (user id, key version) of the participant
        # every (user id, key version) the keyring gives the participant's key: a directory may serve
        # the participant's row under a second user id, and entries labelled for any of them are theirs
        self.labels: list[tuple[str, str | None]] = []
        self._labels_indexed: tuple[Any, int, dict[str | None, set[str | None]], set[str | None]] | None = None
        self.key_changes: dict[int, KeyChangeOutcome] = {}  # by record index
        self.keys: dict[tuple[str, str], bytes] = {}  # (conversation, version) -> adopted key
        self.opened: dict[int, Opened] = {}  # by record index, every message
        self.records: Sequence[Any] = ()
        self._edited: dict[tuple[Any, str | None], list[str]] = {}  # sorted texts (``_reply_problems``)
        self.other_attempts = 0  # entries labelled for others tried so far (OTHER_ENTRY_BUDGET)
        # with no keyring row for the participant: the user id of the first entry their key opened,
        # whose entries are then theirs (tried first, outside the budget)
        self.learned: set[str] = set()

    def keys_by_version(self) -> dict[str, bytes]:
        """The conversation keys the identity key opened, by version (the SDK's ``keys`` map; of one
        conversation, or several whose versions differ: the engine keeps them per conversation)."""
        return {version: key for (_conversation, version), key in self.keys.items()}

    # ------------------------------------------------------------------ before signatures
    def conversation_keys(self, records: Sequence[Any], keyring: Keyring | None) -> dict[tuple[str, str], bytes]:
        self.labels = list(self.identity.owners(keyring))
        self.learned = set()
        for record in records:
            event = record.event
            if event is None or event.kind != KEY_CHANGE:
                continue
            outcome = self._open_key_change(event.body or {})
            self.key_changes[record.index] = outcome
            if not self.labels and not self.learned and outcome.key is not None:
                # round 98: the keyring names no row of the participant's (one who never sent in the
                # window), so every entry was someone else's and spent the run's budget: a server's
                # key change of 20,000 junk entries, before a rotation in the page, left the rotation
                # untried, its messages not_decrypted, and a PASS. The user whose entry opened is
                # the participant from now on.
                self.learned = {user for user, _v, ok in outcome.tried[-1:] if ok and user}
            if outcome.key is not None and outcome.version is not None:
                self.keys[(record.conversation, outcome.version)] = outcome.key  # the last one wins
        opened = {user for outcome in self.key_changes.values() for user, _v, ok in outcome.tried if ok and user}
        if not self.labels:  # not in the keyring: the user whose entries the key opens, if only one
            if len(opened) == 1:
                self.labels = [(opened.pop(), None)]
        # shown as the participant: the label whose entries opened, if any (a copy under another id opens none)
        self.me = next((label for label in self.labels if label[0] in opened), self.labels[0] if self.labels else None)
        if self.labels:
            for outcome in self.key_changes.values():
                outcome.mine_failed = any(not ok and self._mine(user, version) for user, version, ok in outcome.tried)
        return dict(self.keys)  # per conversation: another may use the same version for another key

    def _label_index(self) -> tuple[dict[str | None, set[str | None]], set[str | None]]:
        """The participant's labels as {user id: its key versions} and the set of their versions, made
        once per list of labels (round 104: a keyring listing the participant's key under 4,000 user
        ids, what a hostile directory serves, and 20,000 entries for others that did not open took 80
        million label comparisons, 16 s; and every key change listed the labels again)."""
        cached = self._labels_indexed
        if cached is None or cached[0] is not self.labels or cached[1] != len(self.labels):
            by_user: dict[str | None, set[str | None]] = {}
            for user, version in self.labels:
                by_user.setdefault(user, set()).add(version)
            cached = self._labels_indexed = (self.labels, len(self.labels), by_user,
                                             {version for _user, version in self.labels})
        return cached[2], cached[3]

    def _mine(self, user: str | None, version: str | None) -> bool:
        """Is an entry labelled (user, version) one for the participant (any of their labels)?"""
        versions = self._label_index()[0].get(user)
        if not versions:
            return False
        return version is None or None in versions or version in versions

    def _open_key_change(self, body: dict[str, Any]) -> KeyChangeOutcome:
        outcome = KeyChangeOutcome(body.get("conversation_key_version"))
        by_user, my_versions = self._label_index()
        learned = self.learned
        any_version = not my_versions or None in my_versions

        def my_user(user: Any) -> bool:
            return user in by_user or user in learned

        entries = [e for e in body.get("conversation_participant_keys") or ()
                   if any_version or e.get("public_key_version") is None
                   or e.get("public_key_version") in my_versions]  # the SDK skips other versions too
        mine = [at for at, e in enumerate(entries) if my_user(e.get("user_id"))][:MY_ENTRY_ATTEMPTS]
        for at in mine:  # every one of them, to find one that does not open
            self._try(outcome, entries[at])
        # the rest, those labelled the participant's past MY_ENTRY_ATTEMPTS too, within the budget (a
        # server put 16 junk entries under the label learned before the participant's real one: it
        # was never tried, nor counted untried, and the rotation's messages were not_decrypted)
        tried = set(mine)
        others = [e for at, e in enumerate(entries) if at not in tried]
        for at, entry in enumerate(others):  # the SDK adopts whatever opens, whatever its label
            if outcome.key is not None:
                break
            if self.other_attempts >= OTHER_ENTRY_BUDGET:
                outcome.untried = len(others) - at  # said in a warning (``_review_conversation``)
                break
            self.other_attempts += 1
            self._try(outcome, entry)
        return outcome

    def _try(self, outcome: KeyChangeOutcome, entry: dict[str, Any]) -> None:
        key = self._decrypt_entry(entry.get("encrypted_conversation_key"))
        outcome.tried.append((entry.get("user_id"), entry.get("public_key_version"), key is not None))
        if key is not None and outcome.key is None:
            outcome.key = key

    def _decrypt_entry(self, encrypted: str | None) -> bytes | None:
        if encrypted is None:
            return None
        try:
            return self.identity.decrypt_conversation_key(b64decode_strict(encrypted, "encrypted_conversation_key"))
        except (MalformedEvent, ValueError):
            return None

    # ------------------------------------------------------------------ after signatures
    def review(self, records: Sequence[Any], keyring: Keyring | None) -> list[tuple[str, str]]:
        self.records = records
        strangers = []
        for timeline in timelines(records):
            self._review_conversation(timeline, keyring)
            changes = [self.key_changes[r.index] for r in timeline.ordered if r.index in self.key_changes]
            if changes and all(c.key is None for c in changes):
                strangers.append(timeline.conversation)
        if strangers:
            who = f"user {shown(self.me[0])}" if self.me else "a key in no keyring row"
            return [("not_a_participant", f"identity key {self.identity.fingerprint()} ({who}) opens none of the "
                                          f"key changes of {', '.join(shown(c) for c in strangers[:5])}")]
        return []

    def _review_conversation(self, timeline: Timeline, keyring: Keyring | None) -> None:
        conversation = timeline.conversation
        introduced, verified = set(), set()
        keys_of: dict[str | None, set[bytes]] = {}
        for record in timeline.ordered:
            outcome = self.key_changes.get(record.index)
            if outcome is not None and outcome.key is not None:
                keys_of.setdefault(outcome.version, set()).add(outcome.key)
        for record in timeline.ordered:
            outcome = self.key_changes.get(record.index)
            if outcome is None:
                continue
            introduced.add(outcome.version)
            if proven(record) and outcome.key is not None and not self._signs_key(record.event, outcome, keyring):
                # round 98: with --conversation-key V=K1 the engine proved the key change with K1 while
                # the participant's entry gave K2, and V's messages, decrypted with K2, showed proven
                record.add("key_version_conflict", f"its signature covers another key for version "
                                                   f"{shown(outcome.version)} (given with --conversation-key) than "
                                                   "the one your entry gives: your key is not proven")
            elif proven(record):
                verified.add(outcome.version)
            if outcome.mine_failed:
                me = next((user for user, version, ok in outcome.tried if not ok and self._mine(user, version)), None)
                record.add("key_undecryptable", f"its entry for user {shown(me)} does not decrypt with "
                                                f"identity key {self.identity.fingerprint()}")
            if outcome.untried:
                # a server's key changes padded with junk entries spent the budget before a rotation
                # addressed to the participant (its entry relabelled so as not to be taken for theirs),
                # and its messages were not_decrypted with no word of why. A warning, as not_decrypted
                # is: an honest group's rotations after the participant left spend the budget too
                # (review r103: an error failed such a history), and a server can strip a v6+ entry,
                # which no signature covers, to the same effect
                record.add("key_entries_untried", f"{outcome.untried} of its entries labelled for others were not "
                                                  f"tried: the run's budget of {OTHER_ENTRY_BUDGET} such entries was "
                                                  "spent first; a key meant for you may be among them")
            if outcome.key is not None and len(keys_of.get(outcome.version, ())) > 1:
                record.add("key_version_conflict", f"{len(keys_of[outcome.version])} different keys are given for "
                                                   f"version {shown(outcome.version)} in this conversation")
        in_force: dict[str, int] = {}
        for record in timeline.ordered:
            kind = kind_of(record)
            if kind == KEY_CHANGE:  # only proven events move a sender's version: a forgery cannot
                number = position(record.event.body.get("conversation_key_version") if record.event.body else None)
                if number is not None and proven(record):
                    sender = record.sender_id or ""
                    in_force[sender] = max(in_force.get(sender, 0), number)
            elif kind == MESSAGE:
                self._open(record, conversation, introduced, verified, in_force)
        # (the original's position, its author) -> the distinct texts of that author's edits naming it
        # (for replies): once per edit, not once per edit and copy of the original (round 77: 4,000
        # copies of a message and 4,000 of its edit, 5 MB, took 35 s and 16 million list entries)
        edited: dict[tuple[Any, str | None], set[str]] = {}
        for record in timeline.ordered:
            opened = self.opened.get(record.index)
            # only a proven edit is its author's word (round 83: an edit served under the author's
            # name, its signature failing, made a reply quoting its text pass as quoting the author)
            if opened is not None and opened.content is not None and opened.content.kind == "message_edit" and \
                    opened.content.target is not None and proven(record):
                edited.setdefault((timeline.key(opened.content.target), record.sender_id), set()).add(
                    opened.content.text or "")
        # sorted, so a reply's claimed text is looked up, not compared with every edit (round 104: 20,000
        # edits of one message and 20,000 replies quoting the last one, 27 MB, took 112 s)
        self._edited = {key: sorted(texts) for key, texts in edited.items()}
        for record in timeline.ordered:
            opened = self.opened.get(record.index)
            if opened is not None and opened.content is not None:
                self._check_content(timeline, record, opened.content, keyring)

    def _signs_key(self, event: MessageEvent, outcome: KeyChangeOutcome, keyring: Keyring | None) -> bool:
        """Does a proven key change's signature cover the key the participant's entry gives (from
        signature version 6 it signs the plaintext key)? The engine checks it with a key given with
        ``--conversation-key`` where there is one, not with the participant's."""
        sig = event.signature
        if sig is None or sig.signature is None or outcome.key is None:
            return False
        version, _note = parse_signature_version(sig.signature_version)
        if version < CKEY_PLAINTEXT_SIGNATURE_VERSION:
            return True  # the key is not signed: the entries are
        try:
            payload = build_payload(event, version, {outcome.version or "": outcome.key})
        except PayloadUnavailable:
            return False
        # the key the engine proved it with: the keyring's row, else (the engine allowed it, as it
        # proved the event) the event's own key; never both (ECDSA lets a server make an embedded
        # key under which the same signature verifies over another payload)
        signer = select_key(event, keyring, True, lambda _code, _message: None)
        return isinstance(signer, ec.EllipticCurvePublicKey) and verify_raw(signer, decode_signature(sig.signature),
                                                                         payload)[0]

    def _open(self, record: Any, conversation: str, introduced: set[str | None],
              verified: set[str | None], in_force: dict[str, Any]) -> None:
        body = record.event.body or {}
        version, contents = body.get("conversation_key_version"), body.get("contents")
        if version is None or contents is None:
            return  # never signed: the engine already fails it (unverifiable)
        number, sender = position(version), record.sender_id or ""
        high = in_force.get(sender)
        if number is not None and high is not None and number < high:
            record.add("key_version_regressed", f"encrypted under key version {shown(version)} after its sender "
                                                f"already used or introduced {high}")
        if number is not None and proven(record):
            in_force[sender] = max(high or 0, number)
        if version not in introduced:
            record.add("unknown_key_version", f"encrypted under key version {shown(version)}, which no key change "
                                              "in the history introduces")
            self.opened[record.index] = Opened("unknown_version")
            return
        key = self.keys.get((conversation, version))
        if key is None or version not in verified:
            why = "no key change of version {v} gives you its key" if key is None else \
                "the key change of version {v} is not proven, so its key is not used"
            record.add("not_decrypted", why.format(v=shown(version)))
            self.opened[record.index] = Opened("not_decrypted")
            return
        try:
            plaintext = secretbox_open(key, contents)
        except ValueError as exc:
            record.add("undecryptable", f"{exc} of version {shown(version)}")
            self.opened[record.index] = Opened("undecryptable")
            return
        try:
            content = decode_content(plaintext, self.limits)
        except MalformedEvent as exc:
            record.add("content_malformed", f"decrypted contents: {exc}")
            self.opened[record.index] = Opened("malformed")
            return
        finally:
            del plaintext
        self.opened[record.index] = Opened("decrypted", content)

    # ------------------------------------------------------------------ what contents claim
    def _check_content(self, timeline: Timeline, record: Any, content: Content, keyring: Keyring | None) -> None:
        kind = content.kind or ""
        if kind in TARGET_FIELDS:
            problems = TargetProblems(_TARGET_WORDS[kind], show=content_id)
            if kind in _MESSAGE_TARGETS and not content.target:
                # the SDK reads an absent target as "" and its API refuses to build one (review 99: a
                # reaction or an edit, even a non-author's, naming no message had no finding): no
                # unfetched event can be meant, so an error wherever the window starts
                record.add("target_missing", f"{_TARGET_WORDS[kind]} no message: its contents name no target "
                           "sequence id (absent or empty)", "error")
            elif kind in _MESSAGE_TARGETS:
                problems.check(timeline, record, content.target, describe=self._not_a_message)
            else:  # a read marker inside contents, as a signed one
                problems.check_read_up_to(timeline, record, content.target)
            problems.report(record)
        if kind == "message_edit" and content.target is not None:
            authors = _authors(timeline, content.target)
            if authors and record.sender_id not in authors:
                record.add("edit_by_non_author", f"user {shown(record.sender_id)} edits a message of "
                                                 f"{', '.join(shown(a) for a in sorted(authors, key=str))}")
        if content.reply is not None:
            mismatches = self._reply_problems(timeline, record, content.reply, keyring)
            if mismatches:
                record.add("reply_preview_mismatch", "; ".join(mismatches))

    def _not_a_message(self, record: Any) -> str | None:
        """What a reaction or edit target is when it is not a message, else None."""
        problem = not_a_signed_message(record)
        if problem is not None:
            return problem
        opened = self.opened.get(record.index)
        if opened is not None and opened.content is not None and opened.content.kind != "message":
            return f"a {opened.content.kind or 'empty'} message entry, not a message"
        return None

    def _reply_problems(self, timeline: Timeline, record: Any, preview: dict[str, Any], keyring: Keyring | None) -> list[str]:
        problems: list[str] = []
        raw, edit = preview.get("raw_event_message_create"), preview.get("raw_event_edit_message")
        if isinstance(raw, MessageEvent):
            problems += self._embedded_problems(record, preview, raw, edit, keyring)
        anchor = preview.get("replying_to_message_sequence_id")
        if anchor is None and isinstance(raw, MessageEvent):
            anchor = raw.sequence_id
        if anchor is None or anchor == "":
            if not isinstance(raw, MessageEvent):  # review 37: a quote tied to nothing was shown unchecked
                problems.append("it names no sequence id of the original and embeds no original event, so what "
                                "it quotes cannot be tied to the history (the SDK never builds such a reply)")
            return problems
        targets = TargetProblems("replies to", show=content_id)
        targets.check(timeline, record, anchor, describe=self._not_a_message)
        targets.report(record)
        if record.sequence_id and timeline.key(record.sequence_id) == timeline.key(anchor):
            return problems  # it quotes its own position (``target_after_event``)
        originals = _messages_at(timeline, anchor)
        decimal = is_decimal(str(anchor))
        if not originals and not targets.after and not targets.not_message and (not decimal or timeline.reaches_start):
            problems.append(f"no message of the history has sequence id {content_id(anchor)}, "
                            + ("and the history holds its first event: the quote cannot be tied to it" if decimal
                               else "which is not a sequence id"))
        if not originals or targets.after:
            return problems
        original = originals[0]
        if not isinstance(raw, MessageEvent) and not proven(original):
            # round 83: a quote of a forged original (served as its sender's, the signature failing)
            # read as a checked quote of that sender; only a proven message is its sender's word
            status = original.signature.status if original.signature is not None else "not checked"
            problems.append(f"the history's message at sequence id {content_id(anchor)} is not proven (signature "
                            f"{status}): what it says is not its sender's word")
            return problems
        if isinstance(raw, MessageEvent) and not same_signed_message(raw, original.event):
            problems.append(f"the embedded original is not the history's message at sequence id {content_id(anchor)}")
        claimed_sender = preview.get("sender_id")
        if claimed_sender is not None and str(claimed_sender) != original.sender_id:
            problems.append(f"it quotes sender {content_id(claimed_sender)}, the original is from "
                            f"{shown(original.sender_id)}")
        claimed_id = preview.get("replying_to_message_id")
        if claimed_id is not None and claimed_id != original.message_id:
            problems.append("its message id is not the original's")
        claimed_text = preview.get("message_text")
        opened = self.opened.get(original.index)
        if claimed_text is not None and (opened is None or opened.content is None) and not isinstance(raw, MessageEvent):
            # review 45: a quote of a message the viewer cannot open was shown checked, with no word
            record.add("not_decrypted", f"the original it quotes (sequence id {content_id(anchor)}) could not be "
                                        "opened with your keys: the quoted text is not checked")
        if claimed_text is not None and opened is not None and opened.content is not None:
            edits = self._edited.get((timeline.key(original.sequence_id or ""), original.sender_id), [])
            if opened.content.kind != "message" or not ((opened.content.text or "").startswith(claimed_text)
                                                        or _starts_one(edits, claimed_text)):
                problems.append("the quoted text is not the original's text (nor an edit of it by its author)")
        return problems

    def _embedded_problems(self, record: Any, preview: dict[str, Any], raw: MessageEvent, edit: Any,
                           keyring: Keyring | None) -> list[str]:
        """The SDK's reply-preview validation: the embedded original (and edit) must be a signed
        message of this conversation that verifies, and every claim of the preview must match it."""
        outer = record.event
        if raw.conversation_id is None or raw.conversation_id != outer.conversation_id:
            return ["the embedded original belongs to another conversation"]
        if raw.kind != MESSAGE:
            return ["the embedded original is not a message"]
        why = self._verify_embedded(raw, keyring)
        if why:
            return [f"the embedded original's signature does not verify ({why})"]
        extra_keys = self._embedded_keys(preview)
        original = self._decrypt_embedded(record.conversation, raw, extra_keys)
        if original is _NO_KEY:
            # The SDK calls such a preview Invalid; without the key there is no evidence either way.
            record.add("not_decrypted", f"the original it quotes is encrypted under key version "
                                        f"{content_id((raw.body or {}).get('conversation_key_version'))}, which you "
                                        "cannot open: the quote is not checked")
            return []
        if original is None or original.kind != "message":
            return ["the embedded original does not decrypt to a message"]
        problems = []
        claimed_sender = preview.get("sender_id")
        if claimed_sender is not None and str(claimed_sender) != raw.sender_id:
            problems.append("the preview's sender is not the embedded original's")
        claimed_seq = preview.get("replying_to_message_sequence_id")
        if claimed_seq is not None and claimed_seq != raw.sequence_id:
            problems.append("the preview's sequence id is not the embedded original's")
        claimed_id = preview.get("replying_to_message_id")
        if claimed_id is not None and claimed_id != raw.message_id:
            problems.append("the preview's message id is not the embedded original's")
        quoted_text, quoted_entities = original.body.get("message_text"), original.body.get("entities") or []
        if isinstance(edit, MessageEvent):
            if edit.conversation_id is None or edit.conversation_id != outer.conversation_id or \
                    edit.sender_id is None or edit.sender_id != raw.sender_id or edit.kind != MESSAGE:
                return problems + ["the embedded edit is not its author's edit in this conversation"]
            why = self._verify_embedded(edit, keyring)
            if why:
                return problems + [f"the embedded edit's signature does not verify ({why})"]
            edited = self._decrypt_embedded(record.conversation, edit, extra_keys)
            if edited is _NO_KEY or edited is None or edited.kind != "message_edit":
                return problems + ["the embedded edit cannot be decrypted as an edit"]
            if edited.target is None or raw.sequence_id is None:
                # round 83: with the original's (unsigned) sequence id left out, an edit of another
                # message of the author's was quoted as an edit of this one (the SDK builds neither)
                problems.append("the embedded edit cannot be tied to the embedded original (it names no target, "
                                "or the original no sequence id)")
            elif edited.target != raw.sequence_id:
                problems.append("the embedded edit edits another message than the embedded original")
            quoted_text, quoted_entities = edited.body.get("updated_text"), edited.body.get("entities") or []
        claimed_text = preview.get("message_text")
        if claimed_text is not None and not (quoted_text or "").startswith(claimed_text):
            problems.append("the preview's text is not the embedded original's text")
        if not _all_in(preview.get("entities") or (), quoted_entities):
            problems.append("the preview's entities are not the embedded original's")
        if not _all_in(preview.get("attachments") or (), original.body.get("attachments") or []):
            problems.append("the preview's attachments are not the embedded original's")
        return problems

    def _verify_embedded(self, event: MessageEvent, keyring: Keyring | None) -> str | None:
        """Why the embedded event's signature does not verify (None when it does)."""
        sig = event.signature
        if sig is None or sig.signature is None:
            return "no signature"
        version, _note = parse_signature_version(sig.signature_version)
        if version < 2:
            return f"signature_version {version}"
        key = _signer_key(event, keyring)
        if isinstance(key, str):
            return key
        try:
            payload = build_payload(event, version, {})
        except PayloadUnavailable as exc:  # its reason may quote the event's values: plaintext here
            return f"its signed bytes cannot be rebuilt ({exc.status})"
        ok, why = verify_raw(key, decode_signature(sig.signature), payload)
        return None if ok else why

    def _embedded_keys(self, preview: dict[str, Any]) -> dict[str, bytes]:
        """Keys the preview's embedded key changes give the participant (for a quoted original older
        than the participant's own keys)."""
        keys: dict[str, bytes] = {}
        for event in preview.get("raw_event_ckces") or ():
            if isinstance(event, MessageEvent) and event.kind == KEY_CHANGE:
                outcome = self._open_key_change(event.body or {})
                if outcome.key is not None and outcome.version is not None:
                    keys.setdefault(outcome.version, outcome.key)
        return keys

    def _decrypt_embedded(self, conversation: str, event: MessageEvent, extra: dict[str, bytes]) -> Any:
        """The embedded message's contents; None when they do not decrypt or decode, ``_NO_KEY``
        when the participant holds no key of their version."""
        body = event.body or {}
        version, contents = body.get("conversation_key_version"), body.get("contents")
        if contents is None:
            return None
        key = self.keys.get((conversation, version or "")) or extra.get(version or "")
        if key is None:
            return _NO_KEY
        try:
            return decode_content(secretbox_open(key, contents), self.limits)
        except (ValueError, MalformedEvent):
            return None


def _messages_at(timeline: Timeline, sequence_id: str) -> list[Any]:
    """The messages at the position ``sequence_id`` names, found once per position (round 77)."""
    key = ("messages", timeline.key(sequence_id))
    got = timeline.memo.get(key)
    if got is None:
        got = timeline.memo[key] = [r for r in timeline.lookup(sequence_id) if kind_of(r) == MESSAGE]
    return got


def _authors(timeline: Timeline, sequence_id: str) -> set[str | None]:
    """The senders of the messages at the position ``sequence_id`` names, found once per position."""
    key = ("authors", timeline.key(sequence_id))
    got = timeline.memo.get(key)
    if got is None:
        got = timeline.memo[key] = {r.sender_id for r in _messages_at(timeline, sequence_id)}
    return got


_NO_KEY = object()


def _all_in(items: Sequence[Any], pool: Sequence[Any]) -> bool:
    """Is every one of ``items`` equal to one of ``pool`` (decoded contents: dicts, lists, unions)?
    Looked up in a set of their frozen forms, not compared with each (round 104: a preview's 10,000
    entities checked against an embedded original's 10,000 took 10^8 comparisons, 3 s a reply)."""
    if not items:
        return True
    try:
        frozen = {_frozen(value) for value in pool}
        return all(_frozen(value) in frozen for value in items)
    except TypeError:  # defence in depth: a value with no frozen form is compared as before
        return all(value in pool for value in items)


def _frozen(value: Any) -> Any:
    """A hashable form of a decoded value, equal exactly when the values are (``==``)."""
    if isinstance(value, dict):
        return dict, frozenset((key, _frozen(item)) for key, item in value.items())
    if isinstance(value, list):
        return list, tuple(_frozen(item) for item in value)
    if isinstance(value, tuple):
        return tuple, tuple(_frozen(item) for item in value)
    hash(value)
    return value


def _starts_one(texts: list[str], prefix: str) -> bool:
    """Does one of ``texts`` (sorted) start with ``prefix``? Those that do are the ones sorted from
    the first text not less than it on."""
    at = bisect_left(texts, prefix)
    return at < len(texts) and texts[at].startswith(prefix)


def _signer_key(event: MessageEvent, keyring: Keyring | None) -> Any:
    """The signer's key as the engine would choose it, or why there is none (a string)."""
    sig = event.signature
    if sig is None:
        return "not signed"
    if keyring is not None:
        trusted = keyring.lookup(event.sender_id, sig.public_key_version)
        if trusted is None or trusted.key is None:
            return f"no trusted key for user {content_id(event.sender_id)} version {content_id(sig.public_key_version)}"
        return trusted.key
    for info in sig.message_signing_key_info_list or ():  # no keyring: the event's own key, as the engine
        if info.member_id == event.sender_id and (info.public_key_version or "") == (sig.public_key_version or ""):
            encoded = info.signing_public_key
            break
    else:
        encoded = sig.signing_public_key
    if encoded is None:
        return "no signing key"
    try:
        return parse_public_key(encoded)
    except UnusableKey:
        return "unusable embedded signing key"


def same_signed_message(a: MessageEvent, b: MessageEvent | None) -> bool:
    """Do two events carry the same signed message (what the signature covers; signature bytes are
    malleable and not compared)?"""
    if b is None:
        return False
    body_a, body_b = a.body or {}, b.body or {}
    return (a.kind, a.message_id, a.sender_id, a.conversation_id) == (b.kind, b.message_id, b.sender_id,
                                                                      b.conversation_id) and \
        body_a.get("contents") == body_b.get("contents") and \
        body_a.get("conversation_key_version") == body_b.get("conversation_key_version")


def participant_reviewers(identity: IdentityKey, *, limits: Limits = DEFAULT_LIMITS) -> tuple[Any, Participant]:
    """The reviewers of a participant's verification: the signed-only checks and ``Participant``."""
    from ..semantics import SignedChecks
    return SignedChecks(), Participant(identity, limits=limits)

