"""The verified transcript: the decrypted conversation in chain order, every message with its proof.

Each message carries its signature status, chain status, conversation-key version, signer key
version and findings; reactions, reaction removals and edits are attached to the message they
target (with their own proof), deletions mark the messages they delete and appear as events of
their own, and key changes, group changes and read markers are shown as events. Something that
targets a message the history does not hold stands on its own line.

This is the only place plaintext leaves the participant audit, and only into the output the user
named (``xchat-verify transcript -o PATH``). Formats: ``jsonl`` (JSON Lines, exact values),
``markdown`` and ``html`` (a self-contained page in the report's style, no script at all, a strict
Content-Security-Policy). Every text from the input or the plaintext is made printable
(``sanitize.printable``) and then escaped for its format in the human ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..ids import short_decimal
from ..model import Report
from ..payload import CKEY_PLAINTEXT_SIGNATURE_VERSION, PayloadUnavailable, build_payload, parse_signature_version
from ..report.common import proof_line
from ..report.html import esc, seq_key, when
from ..report.html_assets import CSS
from ..report.machine import _json_safe
from ..report.markdown import md
from ..sanitize import WORKFLOW_V1
from ..semantics import id_key
from .review import Participant

SCHEMA = "xchat-verify/transcript/v1"
FORMATS = ("jsonl", "markdown", "html")
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
_ATTACHED = {"reaction_add": "reactions", "reaction_remove": "reactions", "message_edit": "edits"}


@dataclass
class Entry:
    """One line of the transcript (or one attachment of a message)."""

    index: int
    sequence_id: str | None
    sender_id: str | None
    created_at_msec: str | None
    type: str  # message, reply, reaction, reaction_removed, edit, read, unread, delete, key_change, group_change, ...
    proof: dict[str, Any]
    text: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)  # what the event says besides text (kind-specific)
    reactions: list["Entry"] = field(default_factory=list)
    edits: list["Entry"] = field(default_factory=list)
    deleted: list["Entry"] = field(default_factory=list)
    # a standalone reaction (its target is not an earlier message, or its own proof fails): does the
    # history hold the event it names (``target_held``), and is that a message shown above it, not
    # proven so not shown under it (``target_here``)? Shown by the human formats only
    target_held: bool = False
    target_here: bool = False

    def to_dict(self, attachment: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"sequence_id": self.sequence_id, "sender_id": self.sender_id,
                               "created_at_msec": self.created_at_msec, "type": self.type}
        if self.text is not None:
            out["text"] = self.text
        out.update(self.detail)
        if not attachment:
            for name in ("reactions", "edits", "deleted"):
                items = getattr(self, name)
                if items:
                    out[name] = [item.to_dict(True) for item in items]
        out["proof"] = self.proof
        return out


@dataclass
class ConversationTranscript:
    conversation_id: str
    verdict: str
    entries: list[Entry]


@dataclass
class Transcript:
    verdict: str
    proof: str  # the report's proof line
    participant: str | None
    fingerprint: str
    conversations: list[ConversationTranscript]
    problems: list[dict[str, str]] = field(default_factory=list)  # why the verdict is what it is (below)


# ------------------------------------------------------------------------------------- building
def build_transcript(report: Report, participant: Participant) -> Transcript:
    records = {r.index: r for r in participant.records}
    conversations = []
    for conv in report.conversations:
        entries: list[Entry] = []
        messages: dict[Any, Entry] = {}  # position -> message entry, for attachments
        in_data = {_at(e.sequence_id) for e in conv.events if e.chain.status != "out_of_band"}
        for event in sorted(conv.events, key=seq_key):
            if event.chain.status == "duplicate" or (event.chain.status == "out_of_band" and _at(event.sequence_id) in in_data):
                continue  # repeats (meta copies of key changes, byte-identical duplicates): shown once
            record = records.get(event.index)
            entry = _entry(event, record, participant)
            target = _at(entry.detail.get("target_sequence_id"))
            bucket = _ATTACHED.get(entry.detail.get("content", ""))
            if bucket and target in messages:
                if _attachable(entry):
                    getattr(messages[target], bucket).append(entry)
                    continue
                entry.target_here = True
            entry.target_held = target in in_data
            if entry.type == "delete" and _attachable(entry):
                for seq in entry.detail.get("sequence_ids", []):
                    if _at(seq) in messages:
                        messages[_at(seq)].deleted.append(entry)
            if entry.type in ("message", "reply") and entry.sequence_id is not None:
                messages.setdefault(_at(entry.sequence_id), entry)
            entries.append(entry)
        wholes: dict[int, set[Any]] = {}  # id of a message entry -> its texts (``_mark_cut_quote``)
        for entry in entries:  # a quote is checked as a prefix (previews may be cut): say when it is cut
            _mark_cut_quote(entry, messages, wholes)
        conversations.append(ConversationTranscript(conv.conversation_id, conv.verdict, entries))
    me = participant.me[0] if participant.me else None
    return Transcript(report.verdict, proof_line(report), me, participant.identity.fingerprint(), conversations,
                      verdict_problems(report))


def _at(sequence_id: Any) -> Any:
    """The position a sequence id names, as the review reads it: decimal ids as numbers (round 98: a
    reaction to "0" + a message's id was judged held and earlier by the review, and the transcript,
    matching strings, said it was "not in this history" and left an edit of it apart)."""
    return id_key(sequence_id) if isinstance(sequence_id, str) else sequence_id  # (past 30 digits: review r103)


def _mark_cut_quote(entry: Entry, messages: dict[Any, Entry], wholes: dict[int, set[Any]] | None = None) -> None:
    """``reply_to.cut``: False when the quote is the whole text of the message it names (or of its
    author's edit of it) in this transcript, None when that message is not in it (it may be cut). Why:
    the check takes a prefix, and B's ✅ reply quoted 1111's "I owe you $1,000? No. I owe you nothing."
    as "I owe you $1,000", nothing saying it was cut (review 86)."""
    quoted = entry.detail.get("reply_to")
    if not quoted:
        return
    text = quoted.get("quoted_text")
    original = messages.get(_at(quoted.get("sequence_id") or ""))
    if original is None:  # not in this transcript (older than the window): it may be cut, none can tell
        quoted["cut"] = None if text else False
        return
    wholes = {} if wholes is None else wholes
    whole = wholes.get(id(original))
    if whole is None:  # once a message (round 104: its edits were listed again for every reply quoting it,
        # N * N for N edits and N replies: 10,000 of each, 13 MB, took 26 s in the transcript)
        whole = wholes[id(original)] = {original.text, *(e.text for e in original.edits
                                                         if e.sender_id == original.sender_id)}
    quoted["cut"] = bool(text) and text not in whole


def _attachable(entry: Entry) -> bool:
    """Only a proven edit, reaction or delete is shown under the message it names (round 73: another
    member's edit served as the author's, its signature failing, read "edited by <author>" under a ✅
    message, with no ❌ anywhere); any other stands on its own line, with its own mark."""
    return _mark(entry.proof, entry) in ("✅", "⚠️")


def verdict_problems(report: Report) -> list[dict[str, str]]:
    """The run's and the conversations' own findings and the input errors: what a FAIL of a
    transcript whose every line is ✅ rests on (review 67: `evidence_keys_unauthenticated`,
    `not_a_participant` and `no_trusted_keys` were nowhere in it)."""
    out = [{"code": f.code, "severity": f.severity, "message": f.message} for f in report.findings]
    for conv in report.conversations:
        out += [{"code": f.code, "severity": f.severity, "message": f.message, "conversation_id": conv.conversation_id}
                for f in conv.findings]
    out += [{"code": "input_error", "severity": "error", "message": f"{inp.source}: {err}"}
            for inp in report.inputs for err in inp.errors]
    return out


def _problem_text(problem: dict[str, str]) -> str:
    where = f" ({problem['conversation_id']})" if "conversation_id" in problem else ""
    return f"{problem['severity']} {problem['code']}{where}: {problem['message']}"


def _proof(event: Any, record: Any) -> dict[str, Any]:
    body = record.event.body if record is not None and record.event is not None and record.event.body else {}
    bound = event.event_type != _GROUP_ADD  # an add's key version sits where unsigned fields say (review 60)
    return {"signature": event.signature.status, "chain": event.chain.status,
            "conversation_key_version": body.get("conversation_key_version") if bound else None,
            "signer_key_version": event.key_version,
            "findings": [{"code": f.code, "severity": f.severity, "message": f.message} for f in event.findings]}


def _entry(event: Any, record: Any, participant: Participant) -> Entry:
    entry = Entry(event.index, event.sequence_id, event.sender_id, event.created_at_msec,
                  "other", _proof(event, record))
    kind = event.event_type
    body = record.event.body if record is not None and record.event is not None and record.event.body else {}
    if kind == "MessageCreateEvent":
        _message(entry, participant.opened.get(event.index))
    elif kind == "ConversationKeyChangeEvent":
        entry.type = "key_change"
        outcome = participant.key_changes.get(event.index)
        entry.detail = {"conversation_key_version": body.get("conversation_key_version"),
                        "your_key": "opened" if outcome is not None and outcome.key is not None else
                        "did not open" if outcome is not None and outcome.mine_failed else "not addressed to you"}
        recipients = [p.get("user_id") for p in body.get("conversation_participant_keys") or ()]
        if _signature_version(record) >= CKEY_PLAINTEXT_SIGNATURE_VERSION:  # from v6 the list is not signed
            entry.detail["not_signed"] = {"recipients": recipients}  # (review 56: a ghost showed as proven)
        else:
            entry.detail["recipients"] = recipients
    elif kind == "MessageDeleteEvent":
        entry.type = "delete"
        entry.detail = {"sequence_ids": list(body.get("sequence_ids") or ()),
                        "for_all": body.get("delete_message_action") == 2}
    elif kind in ("MarkConversationReadEvent", "MarkConversationUnreadEvent"):
        entry.type = "read" if kind == "MarkConversationReadEvent" else "unread"
        entry.detail = {"target_sequence_id": body.get("seen_until_sequence_id")}
    elif kind and kind.startswith("GroupChangeEvent."):
        entry.type = "group_change"
        shown = {k: v for k, v in body.items() if k in _GROUP_FIELDS}
        lists = _split_lists(kind, record)  # the ids the signature covers; how they split is the server's
        shown.update({name: _as_served(body.get(name)) for name in lists})
        unsigned = _not_signed(kind, record) | frozenset(lists)
        entry.detail = {"change": kind.partition(".")[2], **{k: v for k, v in shown.items() if k not in unsigned}}
        if kind == _GROUP_ADD:  # what the add signed, in order: which value is an id, a title or a key
            entry.detail["signed_values"] = _signed_values(record)  # version is the server's (review 60)
        elif lists:
            entry.detail["named_ids"] = [i for name in lists for i in body.get(name) or ()]
        if unsigned & shown.keys():
            entry.detail["not_signed"] = {k: v for k, v in shown.items() if k in unsigned}
    else:
        entry.type = "event"
        entry.detail = {"event_type": kind}
    return entry


_GROUP_FIELDS = ("member_ids", "current_member_ids", "admin_ids", "title", "custom_title", "conversation_key_version")


def _signature_version(record: Any) -> int:
    signature = record.event.signature if record is not None and record.event is not None else None
    return parse_signature_version(signature.signature_version if signature is not None else None)[0]


_GROUP_ADD = "GroupChangeEvent.GroupMemberAddChange"


def _signed_values(record: Any) -> list[str] | None:
    """A member add's signed values after its name, message id, sender and conversation, as the
    signature covers them: its lists, title, avatar, ttl, key version and trailers, comma-joined
    with nothing to say where one ends (protocol.md §3.1), and the signature_version and invite
    fields that decide how they are read are unsigned. Review 60: a server moved the invite trailer
    so that the last three list ids read as title, avatar and ttl, the title as the key version;
    the transcript showed those ids gone and the title as the proven key version."""
    event = record.event if record is not None else None
    if event is None:
        return None
    try:
        payload = build_payload(event, _signature_version(record), {})
    except PayloadUnavailable:
        return None
    values = payload.decode("utf-8", "replace").split(",")
    return values[4 if event.conversation_id is not None else 3:]


def _as_served(value: Any) -> Any:
    """A list as a list (absent: empty), anything else exactly as served (review 63: a title came
    out as a list of its characters)."""
    if value is None or isinstance(value, (list, tuple)):
        return list(value or ())
    return value


def _split_lists(kind: str, record: Any) -> tuple[str, ...]:
    """A change's id lists whose boundaries its signature does not bind (protocol.md §3.1: lists are
    spliced in with no count or delimiter, and a create's list ends where an unsigned version says):
    a member add's new, current, admin (and at versions 3 to 6 pending) ids, a create's members.
    Review 56: a server's re-cut of an add (new members 4444, 1111, 2222; current 3333) showed as
    proven; the membership replay knew better."""
    if kind == _GROUP_ADD:
        pending = ("current_pending_member_ids",) if 3 <= _signature_version(record) <= 6 else ()
        return ("member_ids", "current_member_ids", "current_admin_ids", *pending, "current_title",
                "conversation_key_version")
    if kind == "GroupChangeEvent.GroupCreate":
        return ("member_ids",)
    return ()


def _not_signed(kind: str, record: Any) -> frozenset[str]:
    """The fields of ``_GROUP_FIELDS`` a group change's signature does not cover (docs/protocol.md
    §5): a GroupCreate never signs its admins, nor its title below version 4. Shown apart, so the
    transcript never presents a server's rewrite of them as proven (review: a v3 GroupCreate's
    rewritten title and admins showed as signed)."""
    if kind != "GroupChangeEvent.GroupCreate":
        return frozenset()
    return frozenset({"admin_ids"} if _signature_version(record) >= 4 else {"admin_ids", "title"})


def _message(entry: Entry, opened: Any) -> None:
    if opened is None or opened.content is None:
        entry.type = "unread_message"
        entry.detail = {"not_read": opened.status if opened is not None else "not_decrypted"}
        return
    content = opened.content
    kind = content.kind
    entry.detail = {"content": kind}
    if kind == "message":
        entry.text = content.text
        reply = content.reply
        entry.type = "reply" if reply is not None else "message"
        if reply is not None:
            entry.detail["reply_to"] = {"sequence_id": reply.get("replying_to_message_sequence_id"),
                                        "sender_id": None if reply.get("sender_id") is None
                                        else str(reply.get("sender_id")),
                                        "quoted_text": reply.get("message_text")}
        if content.body.get("attachments"):
            entry.detail["attachments"] = len(content.body["attachments"])
    elif kind in ("reaction_add", "reaction_remove"):
        entry.type = "reaction" if kind == "reaction_add" else "reaction_removed"
        entry.detail.update(emoji=content.body.get("emoji"), target_sequence_id=content.target)
    elif kind == "message_edit":
        entry.type = "edit"
        entry.text = content.text
        entry.detail["target_sequence_id"] = content.target
    elif kind in ("mark_conversation_read", "mark_conversation_unread"):
        entry.type = "read" if kind == "mark_conversation_read" else "unread"
        entry.detail["target_sequence_id"] = content.target
    else:
        entry.type = "entry"
        entry.detail["entry"] = kind or "empty"


# ------------------------------------------------------------------------------------- rendering
def render_transcript(transcript: Transcript, fmt: str) -> str:
    # ``-o -`` prints the transcript, and a CI log runs a line holding ``##[`` as a workflow command
    # (review 85: a message text in JSONL, and "#" + a reply's signed preview sequence id "#[add-mask]…"
    # in HTML, printed ``##[``). Escaped as the reports escape it: values unchanged once decoded. (The
    # Markdown escapes every "#"; no line of the three formats starts with "::".)
    if fmt == "jsonl":
        return _json_safe(_jsonl(transcript))  # the reports' JSON escaping (``##[``: ASCII JSON, in strings)
    if fmt == "markdown":
        return _markdown(transcript)
    if fmt == "html":
        return _html(transcript).replace(WORKFLOW_V1, "&#35;#[")  # text and attribute values only (no script)
    raise ValueError(f"unknown transcript format {fmt!r}")


def _jsonl(t: Transcript) -> str:
    lines: list[dict[str, Any]] = [{"record": "transcript", "schema": SCHEMA, "verdict": t.verdict, "proof": t.proof,
              "participant": t.participant, "identity_key_fingerprint": t.fingerprint, "problems": t.problems}]
    for conv in t.conversations:
        lines.append({"record": "conversation", "conversation_id": conv.conversation_id, "verdict": conv.verdict,
                      "entries": len(conv.entries)})
        for entry in conv.entries:
            lines.append({"record": "entry", "conversation_id": conv.conversation_id, **entry.to_dict()})
    return "".join(json.dumps(line, ensure_ascii=True, separators=(",", ":")) + "\n" for line in lines)


def _summary(entry: Entry) -> str:
    """What an entry says, as plain text (escaped by the caller)."""
    d = entry.detail
    if entry.type in ("message", "reply", "edit"):
        return entry.text if entry.text is not None else "(no text)"
    if entry.type in ("reaction", "reaction_removed"):
        verb = "reacted" if entry.type == "reaction" else "removed reaction"
        # rounds 90 and 91: every reaction on its own line read "(not in this history)", also one whose
        # target the history holds (its own proof failed: forged, replayed, a removed member's)
        where = " (in this history; not shown under it: not proven)" if entry.target_here else \
            "" if entry.target_held else " (not in this history)"
        target = d.get("target_sequence_id") or "no message (no target)"  # review 99: "reacted to None"
        return f"{verb} to {target}{where}: “{d.get('emoji') or ''}”"
    if entry.type in ("read", "unread"):
        target = d.get("target_sequence_id") or "no event (no target)"  # review r103: "marked read up to None"
        return f"marked {entry.type} up to {target}"
    if entry.type == "delete":
        scope = "for everyone" if d.get("for_all") else "for themselves"
        return f"deleted {len(d.get('sequence_ids', []))} message(s) {scope}: {', '.join(d.get('sequence_ids', []))}"
    if entry.type == "key_change":
        return f"conversation key changed to version {d.get('conversation_key_version')} ({d.get('your_key')})"
    if entry.type == "group_change":
        parts = [d.get("change", "")]
        if d.get("named_ids") is not None:
            parts.append(f"ids signed, list boundaries not signed: {', '.join(d['named_ids'])}")
        if d.get("signed_values") is not None:
            parts.append("values signed, in order (which are ids, the title or the key version is not signed): "
                         + ", ".join(d["signed_values"]))
        for name in ("member_ids", "current_member_ids", "admin_ids"):
            if d.get(name):
                parts.append(f"{name.replace('_ids', 's').replace('_', ' ')}: {', '.join(d[name])}")
        if d.get("not_signed"):
            parts.append(f"not signed, not shown: {', '.join(d['not_signed'])}")
        return "; ".join(parts)
    if entry.type == "unread_message":
        return f"message not read ({d.get('not_read')})"
    if entry.type == "entry":
        return f"({d.get('entry')})"
    return f"({d.get('event_type') or 'event'})"


def _proof_text(proof: dict[str, Any]) -> str:
    parts = [f"signature {proof['signature']}", f"chain {proof['chain']}"]
    if proof.get("conversation_key_version"):
        parts.append(f"key version {proof['conversation_key_version']}")
    codes = sorted({f["code"] for f in proof["findings"]})
    if codes:
        parts.append("findings: " + ", ".join(codes))
    return " · ".join(parts)


def _ok(proof: dict[str, Any]) -> bool:
    return proof["signature"] in ("valid", "not_signed") and not any(
        f["severity"] == "error" for f in proof["findings"])


UNSIGNED_MARK = "⚪"
_MARK_WORDS = {"❌": "error: not proven", "⚠️": "proven, with a warning", UNSIGNED_MARK: "not signed by design",
               "✅": "proven"}


def _mark(proof: dict[str, Any], entry: Entry | None = None) -> str:
    """❌ an error; ⚠️ proven but with a warning (a quote not checked, a target older than the window:
    review 45, a ✅ read as checked), or an entry whose unsigned time or sequence id cannot be shown
    as given (review 56); ⚪ an event the protocol does not sign (its sender and content are the
    server's word: review 56, shown ✅); ✅ proven and nothing to say."""
    if not _ok(proof):
        return "❌"
    if proof["signature"] == "not_signed":
        return UNSIGNED_MARK
    if any(f["severity"] == "warning" for f in proof["findings"]) or (entry is not None and not _plain(entry)):
        return "⚠️"
    return "✅"


def _plain(entry: Entry) -> bool:
    """Whether the entry's unsigned time and sequence id are what they should be, and shown as given."""
    return _shown_time(entry.created_at_msec) == (when(entry.created_at_msec) or "") and \
        _shown_seq(entry.sequence_id) == (entry.sequence_id or "?")


def _shown_time(msec: str | None) -> str:
    """An entry's time as people read it, only from a millisecond count: the time is not signed, and a
    server wrote a sentence there that read as part of a ✅ line (review 56)."""
    if not msec:
        return ""
    if short_decimal(msec, 16):
        return when(msec) or ""
    return "(time not a millisecond count)"


def _shown_seq(sequence_id: str | None) -> str:
    """A sequence id as shown, only when decimal: it is not signed either (review 56: one that was a
    sentence, "…: 2222 said “I owe you”", read as a quote in a ✅ line)."""
    if not sequence_id:
        return "?"
    if short_decimal(sequence_id):
        return sequence_id
    return "(not a decimal sequence id)"


def _who(entry: Entry) -> str:
    """The sender as shown: an unsigned event's sender is only what the server says."""
    sender = entry.sender_id or "?"
    return f"{sender} (unsigned: the server's word)" if entry.proof.get("signature") == "not_signed" else sender


def _markdown(t: Transcript) -> str:
    icon = "✅" if t.verdict == "pass" else "❌"
    out = [f"# {icon} Verified transcript: {t.verdict.upper()}", "",
           md(t.proof) + ".", "",
           f"Participant {md(t.participant or 'unknown')}, identity key fingerprint `{md(t.fingerprint)}`. "
           "Plaintext: keep this file as private as the conversation.", ""]
    if t.problems:
        out += ["Findings of the run:", "", *(f"- {md(_problem_text(p))}" for p in t.problems), ""]
    for conv in t.conversations:
        out += [f"## Conversation {md(conv.conversation_id)}: {conv.verdict.upper()}", ""]
        for entry in conv.entries:
            mark = _mark(entry.proof, entry)
            head = f"- {mark} {md(_shown_time(entry.created_at_msec))} **{md(_who(entry))}** " \
                   f"\\#{md(_shown_seq(entry.sequence_id))} {md(entry.type)}"
            out.append(f"{head}: {md(_summary(entry))}")
            if entry.detail.get("reply_to"):  # a line of its own, the quote last: never on the text's line,
                # where a text ending in "(replying to #…: “…”)" read as a checked quote (review 82), nor
                # before our words, where the quoted message's author closed the quote and wrote words that
                # read as the replier's in their ✅ line (review 85)
                quoted = entry.detail["reply_to"]
                # its author named, as in HTML (review 86: unnamed, a quote that closed itself, "Will you
                # pay?” — 1111 answered: “Yes. I owe you $1,000", read as the replier's answer)
                out.append(f"  - replying to \\#{md(quoted.get('sequence_id') or '?')} by "
                           f"**{md(quoted.get('sender_id') or '?')}**{_cut_words(quoted)}: "
                           f"“{md(quoted.get('quoted_text') or '')}{'…' if quoted.get('cut') else ''}”")
            out.append(f"  - proof: {md(_proof_text(entry.proof))}")
            # the sender's own text last and quoted, after our words (review 82: a reaction "emoji" of
            # "👍 by <you> #<seq> (signature valid …) and 👍" read as your own reaction)
            for edit in entry.edits:
                out.append(f"  - edited by **{md(edit.sender_id or '?')}** \\#{md(_shown_seq(edit.sequence_id))} "
                           f"({md(_proof_text(edit.proof))}): “{md(edit.text or '')}”")
            for reaction in entry.reactions:
                verb = "reaction" if reaction.type == "reaction" else "reaction removed"
                out.append(f"  - {verb} by **{md(reaction.sender_id or '?')}** \\#{md(_shown_seq(reaction.sequence_id))}"
                           f" ({md(_proof_text(reaction.proof))}): “{md(reaction.detail.get('emoji') or '')}”")
            for delete in entry.deleted:
                scope = "for everyone" if delete.detail.get("for_all") else "for themselves"
                out.append(f"  - deleted {scope} by **{md(delete.sender_id or '?')}** \\#{md(_shown_seq(delete.sequence_id))}"
                           f" ({md(_proof_text(delete.proof))})")
        out.append("")
    out.append(f"xchat-verify {md(__version__)}, {md(SCHEMA)}")
    return "\n".join(out) + "\n"


_TRANSCRIPT_CSS = """
.tx{list-style:none;margin:0;padding:0}
.tx>li{border-left:4px solid var(--ok);background:#fbfcfd;border-radius:0 8px 8px 0;padding:8px 14px;margin:0 0 10px}
.tx>li.sys{border-left-color:var(--neutral);background:#f6f8fb}
.tx>li.bad{border-left-color:var(--err)}
.tx>li.warn{border-left-color:var(--warn)}
.tx .who{font-weight:600}
.tx .text{margin:4px 0;white-space:normal;overflow-wrap:anywhere;font-size:15.5px}
.tx .deleted .text,.tx .text.deleted{text-decoration:line-through;color:var(--muted)}
.tx .quote{border-left:3px solid var(--border);padding:2px 8px;margin:4px 0;color:var(--muted);font-size:13.5px}
.tx .att{list-style:none;margin:6px 0 0;padding:0 0 0 14px;font-size:13.5px}
.tx .att li{margin:2px 0;overflow-wrap:anywhere}
.tx .proof{font-size:12.5px;color:var(--muted);overflow-wrap:anywhere}
"""


def _html(t: Transcript) -> str:
    title = f"xchat-verify transcript: {t.verdict.upper()}"
    body = [f'<header class="banner {"pass" if t.verdict == "pass" else "fail"}"><div class="wrap">'
            '<div class="tool">xchat-verify · verified transcript</div>'
            f"<h1>{esc(t.verdict.upper())}</h1><p class=\"proof\">{esc(t.proof)}</p>"
            f'<ul class="chips"><li>participant {esc(t.participant or "unknown")}</li>'
            f"<li>identity key fingerprint {esc(t.fingerprint)}</li>"
            "<li class=\"alert\">contains plaintext: keep it private</li></ul>"
            + (f'<ul class="problems">{"".join(f"<li>{esc(_problem_text(p))}</li>" for p in t.problems)}</ul>'
               if t.problems else "") + "</div></header>",
            '<main class="wrap">']
    for conv in t.conversations:
        body.append(f'<section class="card"><h2>Conversation <span class="id">{esc(conv.conversation_id)}</span> '
                    f'<span class="sev sev-{"ok" if conv.verdict == "pass" else "error"}">{esc(conv.verdict)}</span>'
                    '</h2><ol class="tx">')
        body += [_html_entry(entry) for entry in conv.entries]
        body.append("</ol></section>")
    body.append("</main>")
    body.append(f'<footer><div class="wrap"><span>xchat-verify {esc(__version__)}</span><span>{esc(SCHEMA)}</span>'
                "<span>all text escaped; this page runs no script and makes no network request</span></div></footer>")
    head = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="referrer" content="no-referrer">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}{_TRANSCRIPT_CSS}</style></head><body>")
    return head + "".join(body) + "</body></html>\n"


def _cut_words(quoted: dict[str, Any]) -> str:
    """Our words before a quote that is not a whole text: only its start is checked (review 86)."""
    cut = quoted.get("cut", False)
    if cut is None:
        return ", a preview (the message is not in this transcript: it may be only its start)"
    return ", only the start of the message (what follows is not shown)" if cut else ""


def _html_entry(entry: Entry) -> str:
    system = entry.type not in ("message", "reply")
    mark = _mark(entry.proof, entry)
    classes = ("sys " if system else "") + {"❌": "bad", "⚠️": "warn"}.get(mark, "")  # as markdown
    text_class = "text deleted" if entry.deleted else "text"
    # the mark itself, as in Markdown, not only a border colour (review 82: a forged message in your
    # name differed from proven ones by colour alone, nothing for a colour-blind reader or a print)
    out = [f'<li class="{classes.strip()}"><div><span class="mark" title="{_MARK_WORDS[mark]}">{mark}</span> '
           f'<span class="who">{esc(_who(entry))}</span> '
           f'<span class="muted small">#{esc(_shown_seq(entry.sequence_id))} · {esc(_shown_time(entry.created_at_msec))}'
           f" · {esc(entry.type)}</span></div>"]
    reply = entry.detail.get("reply_to")
    if reply:
        out.append(f'<div class="quote">replying to #{esc(reply.get("sequence_id") or "?")} '
                   f'({esc(reply.get("sender_id") or "?")}){_cut_words(reply)}: {esc(reply.get("quoted_text") or "")}'
                   f'{"…" if reply.get("cut") else ""}</div>')
    out.append(f'<div class="{text_class}">{esc(_summary(entry))}</div>')
    out.append(f'<div class="proof">{esc(_proof_text(entry.proof))}</div>')
    items = []
    for edit in entry.edits:  # the sender's own text last and quoted, as in Markdown
        items.append(f"<li>edited by <span class=\"who\">{esc(edit.sender_id or '?')}</span> "
                     f"#{esc(_shown_seq(edit.sequence_id))} <span class=\"proof\">{esc(_proof_text(edit.proof))}</span>: "
                     f"<span class=\"text\">“{esc(edit.text or '')}”</span></li>")
    for reaction in entry.reactions:
        verb = "reaction" if reaction.type == "reaction" else "reaction removed"
        items.append(f"<li>{verb} by <span class=\"who\">{esc(reaction.sender_id or '?')}</span> "
                     f"#{esc(_shown_seq(reaction.sequence_id))} <span class=\"proof\">{esc(_proof_text(reaction.proof))}"
                     f"</span>: <span class=\"text\">“{esc(reaction.detail.get('emoji') or '')}”</span></li>")
    for delete in entry.deleted:
        scope = "for everyone" if delete.detail.get("for_all") else "for themselves"
        items.append(f"<li>deleted {scope} by {esc(delete.sender_id or '?')} #{esc(_shown_seq(delete.sequence_id))} "
                     f"<span class=\"proof\">{esc(_proof_text(delete.proof))}</span></li>")
    if items:
        out.append('<ul class="att">' + "".join(items) + "</ul>")
    out.append("</li>")
    return "".join(out)

