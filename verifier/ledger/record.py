"""Recording an audit in the ledger and judging it against what earlier audits saw.

``record_audit`` runs as one transaction: it reads the ledger's state for the audited conversations
and users, turns (previous state, new report) into findings (docs/ledger.md), adds them to the
report (verdicts recomputed with the engine's rule: a conversation passes only if it and the run have
no failing finding), then writes the audit, the events, the keys and the chains. Killed at any point,
the ledger is at the previous audit's state or at this one's, never between.
"""

from __future__ import annotations

import dataclasses
import hashlib
from bisect import bisect_right
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import msgspec

from .._version import __version__
from ..clock import earliest_utc, utc_instant, utc_now_iso
from ..engine import EventFacts, _gc_paused
from ..errors import UsageError
from ..ids import canonical_conversation
from ..keys import Keyring, KeyringEntry, UnusableKey, key_identity, parse_public_key, version_number
from ..model import EventReport, Finding, Report, Severity, fails
from ..sanitize import encodable
from ..semantics import position
from .store import DELETED, PRESENT, VANISHED, AuditRow, ChainRow, EventRow, KeyRow, LedgerStore
from .transcript import Transcript, seq_key

MAX_LISTED = 100  # vanished events named one by one per conversation; the rest in one finding
# Keys a later run may verify with (fallback_entries): what an audit fetched from the key directory
# itself, and keyrings the auditor chose. Not "evidence": an evidence directory's saved key responses,
# replayed by `verify DIR`, can be edited with the evidence and vouch only for themselves (a key
# planted there must not verify a forged event in another run); nor "events" (server-controlled).
FALLBACK_SOURCES = ("directory", "keyring")
# What the directory served, for key_added, key_version_rollback and key_retired: evidence says what
# its audit was served (a planted row can only add findings there, never remove a failing one).
SERVED_SOURCES = ("directory", "keyring", "evidence")


def report_digest(report: Report | dict) -> str:
    """SHA-256 of the report's canonical JSON (keys sorted, no whitespace): the same for the Report
    object and for the ``--format json`` file parsed back."""
    return hashlib.sha256(msgspec.json.encode(report, order="sorted")).hexdigest()


def fallback_entries(store: LedgerStore) -> list[KeyringEntry]:
    """Keys the ledger recorded from the key directory (or a keyring) with a good binding, one per
    (user, version) on which every such row agrees: used for slots the directory no longer serves.
    Rows of any other source (evidence, events) are left out, and do not count against agreement."""
    slots: dict[tuple[str, str], dict[bytes, KeyRow]] = {}
    for row in store.keys():
        if row.source in FALLBACK_SOURCES and row.binding == "ok":
            slots.setdefault((row.user_id, row.version), {})[row.key_digest] = row
    return [KeyringEntry(user, version, next(iter(rows.values())).signing_key)
            for (user, version), rows in sorted(slots.items()) if len(rows) == 1]


@lru_cache(maxsize=8192)
def key_digest(encoded: str) -> bytes | None:
    try:
        return hashlib.sha256(key_identity(parse_public_key(encoded))).digest()
    except UnusableKey:
        return None


@dataclass
class Recorded:
    """What ``record_audit`` did: the audit's id, the findings it added, a checkpoint per conversation."""

    audit_id: int
    time: str
    findings: list[tuple[str, Finding]] = field(default_factory=list)  # (conversation or "", finding)
    checkpoints: list[dict] = field(default_factory=list)


class _Judge:
    """The findings of one audit; each names the earlier audit it contradicts."""

    def __init__(self, audits: dict[int, AuditRow]) -> None:
        self.audits = audits
        self.run: list[Finding] = []
        self.conv: dict[str, list[Finding]] = {}
        self.event: list[tuple[str, EventReport, Finding]] = []

    def since(self, audit_id: int) -> str:
        audit = self.audits.get(audit_id)
        return f"audit {audit_id} at {audit.time}" if audit else f"audit {audit_id}"

    @staticmethod
    def finding(code: str, message: str) -> Finding:
        from ..model import FINDING_SEVERITY
        return Finding(code, FINDING_SEVERITY[code].value, message)


def record_audit(store: LedgerStore, report: Report, facts: Sequence[EventFacts], keyring: Keyring | None, *,
                 command: str, inputs: Sequence[str], key_source: str = "directory",
                 key_users: Sequence[str] | None = None, time: str | None = None,
                 ended: Collection[str] | None = None, scrub: Callable[[str], str] | None = None,
                 fetched: str | None = None, fetched_conversations: Mapping[str, str | None] | None = None
                 ) -> Recorded:
    """Judge ``report`` against the ledger, add the findings to it, and record it: one transaction.

    ``ended``: the conversations fetched to their end (``Verification.ended_conversations()``): their
    whole history is judged, back to the beginning. None: every conversation the report calls
    complete (fail closed: a history given only in part then shows its older events as vanished).
    ``fetched``: when the run's pages were fetched, the earliest page's time (``clock.earliest_utc``;
    None when unknown, as for page files), for the head rule of ``ledger compare``: ``time`` is when
    the run is recorded, long after the fetch for saved evidence or ``audit --resume``.
    ``fetched_conversations``: the same per conversation (``Verification.fetched_conversations()``),
    recorded on its chain row: in a long audit of many conversations, one is fetched long after the
    run's first page."""
    for value in (fetched, *(fetched_conversations or {}).values()):
        if value is not None and utc_instant(value) is None:
            raise UsageError(f"fetched {value!r:.40} is not an ISO-8601 time with its UTC offset")
    fetched_conversations = _by_report_id(fetched_conversations or {})
    facts = list(facts)
    indices = {f.index for f in facts}
    lacking = sum(1 for conv in report.conversations for ev in conv.events if ev.index not in indices)
    if lacking:  # round 88: recorded without them, they were neither kept nor judged (a rewrite went unseen)
        raise UsageError(f"record_audit: the facts lack {lacking} of the report's events: pass the event_facts() "
                         "of the Verification that made the report (every conversation's)")
    if ended is None:
        ended = {c.conversation_id for c in report.conversations if c.complete}
    if scrub is not None:  # review: the token, served in a key version, reached the ledger verbatim
        facts = [_scrubbed_facts(f, scrub) for f in facts]
    with _gc_paused():  # many small acyclic objects, as in the engine: no cyclic collection meanwhile
        return _record_audit(store, report, facts, keyring, command=command, inputs=inputs,
                             key_source=key_source, key_users=key_users, time=time or utc_now_iso(),
                             ended=frozenset(ended), scrub=scrub or _unchanged, fetched=fetched,
                             fetched_conversations=fetched_conversations)


def _by_report_id(fetched: Mapping[str, str | None]) -> dict[str, str | None]:
    """``fetched_conversations`` under the report's conversation ids, whatever form they were given
    in (``B-A`` for ``A:B``; review 94: not found, the conversation was timed by the run's earliest
    page), two forms of one id by the earlier (None, unknown, if either is)."""
    grouped: dict[str, list[str | None]] = {}
    for cid, when in fetched.items():
        grouped.setdefault(canonical_conversation(cid) or "unknown", []).append(when)
    return {cid: times[0] if len(times) == 1 else earliest_utc(times) for cid, times in grouped.items()}


def _unchanged(text: str) -> str:
    return text


def _scrubbed_facts(fact: EventFacts, scrub: Callable[[str], str]) -> EventFacts:
    """``fact`` with the server's text scrubbed (the report's own columns are scrubbed already)."""
    def clean(text: str | None) -> str | None:
        return scrub(text) if text else text
    return dataclasses.replace(
        fact, signature_version=clean(fact.signature_version),
        embedded_keys=tuple((scrub(m), scrub(v), scrub(k)) for m, v, k in fact.embedded_keys),
        deletes=tuple(scrub(d) for d in fact.deletes))


def _record_audit(store: LedgerStore, report: Report, facts: Sequence[EventFacts], keyring: Keyring | None, *,
                  command: str, inputs: Sequence[str], key_source: str, key_users: Sequence[str] | None,
                  time: str, ended: frozenset[str], scrub: Callable[[str], str], fetched: str | None,
                  fetched_conversations: Mapping[str, str | None]) -> Recorded:
    _mark_ledger_keys(report, keyring)
    by_index = {f.index: f for f in facts}
    with store.transaction():
        audit_id = store.next_audit_id()
        judge = _Judge({a.id: a for a in store.audits()})
        recorded = Recorded(audit_id, time)
        chains: list[ChainRow] = []
        touched = 0
        for conv in report.conversations:
            transcript, count = _conversation(store, judge, conv, by_index, audit_id,
                                              conv.conversation_id in ended)
            touched += count
            checkpoint = transcript.checkpoint(time)
            recorded.checkpoints.append(checkpoint)
            chains.append(ChainRow(audit_id, conv.conversation_id, transcript.tail, transcript.head,
                                   transcript.size, transcript.root, conv.complete,
                                   fetched_conversations.get(conv.conversation_id, fetched)))
        _keys(store, judge, keyring, facts, audit_id, key_source, key_users, scrub)
        _apply(report, judge)
        recorded.findings = [("", f) for f in judge.run] + \
            [(cid, f) for cid, fs in judge.conv.items() for f in fs] + [(cid, f) for cid, _e, f in judge.event]
        store.insert_audit(AuditRow(audit_id, time, __version__, command, [encodable(i) for i in inputs], report.verdict,
                                    report_digest(report), touched, finding_counts(report), fetched))
        store.insert_chains(chains)
    return recorded


def finding_counts(report: Report) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in report.findings:
        counts[f.code] = counts.get(f.code, 0) + 1
    for conv in report.conversations:
        for f in conv.findings:
            counts[f.code] = counts.get(f.code, 0) + 1
        for ev in conv.events:
            for f in ev.findings:
                counts[f.code] = counts.get(f.code, 0) + 1
    return counts


# ------------------------------------------------------------------------------------- events
def _conversation(store: LedgerStore, judge: _Judge, conv, by_index: dict[int, EventFacts],
                  audit_id: int, ended: bool) -> tuple[Transcript, int]:
    cid = conv.conversation_id
    now: dict[str, dict[bytes, list[EventReport]]] = {}
    for ev in conv.events:
        fact = by_index.get(ev.index)
        if ev.sequence_id is None or fact is None:
            continue
        now.setdefault(ev.sequence_id, {}).setdefault(fact.digest, []).append(ev)
    old: dict[str, list[EventRow]] = {}
    for row in store.events(cid):
        old.setdefault(row.seq, []).append(row)

    inserts: list[EventRow] = []
    touches: list[tuple[str, bytes, str]] = []
    for seq, versions in now.items():
        rows = old.get(seq, [])
        known = {r.digest for r in rows}
        latest = _Latest(rows)
        for digest, reports in versions.items():
            ev = reports[0]
            if len(rows) == 1 and rows[0].digest == digest and rows[0].prev == ev.previous_sequence_id:
                touches.append((seq, digest, ev.signature.status))  # seen before, unchanged: the usual case
                continue
            fact = by_index[ev.index]
            rewritten = latest.other("digest", digest)
            if rewritten is not None:
                judge.event.append((cid, ev, judge.finding(
                    "history_rewritten", f"sequence id {seq} is a different event than {judge.since(rewritten.last_audit)} "
                    f"saw (encoded event SHA-256 {digest.hex()[:16]}…, then {rewritten.digest.hex()[:16]}…)")))
            moved = latest.other("prev", ev.previous_sequence_id)
            if moved is not None:
                judge.event.append((cid, ev, judge.finding(
                    "chain_rewritten", f"sequence id {seq} now follows {ev.previous_sequence_id or 'nothing'}; "
                    f"{judge.since(moved.last_audit)} saw it follow {moved.prev or 'nothing'}")))
            if digest in known:
                touches.append((seq, digest, ev.signature.status))
            else:
                inserts.append(EventRow(cid, seq, digest, ev.previous_sequence_id, ev.message_id, ev.sender_id,
                                        ev.event_type, fact.signature_version, ev.signature.status, PRESENT,
                                        audit_id, audit_id))
    _moved(judge, cid, now, old)
    _downgrades(judge, cid, now, old, by_index)
    states = _missing(judge, conv, now, old, by_index, ended)
    store.insert_events(inserts)
    store.touch_events(cid, audit_id, touches)
    store.set_states(cid, states)
    entries = [(seq, digest) for seq, versions in now.items() for digest in versions]
    return Transcript.build(cid, entries), len(inserts) + len(touches)


class _Latest:
    """The rows the ledger holds at one sequence id: the one last seen (``max`` by ``last_audit``, the
    first of a tie) among those whose ``field`` is not a value, found from two rows computed once,
    not a pass over them all for each event served there (round 104: 20,000 events served at one
    sequence id, 20,000 others there at the next run, 9 MB, took 41 s to record)."""

    def __init__(self, rows: list[EventRow]) -> None:
        self.rows = rows
        self.best = max(rows, key=lambda r: r.last_audit) if rows else None
        self.runner_up: dict[str, EventRow | None] = {}

    def other(self, field: str, value: Any) -> EventRow | None:
        best = self.best
        if best is None or getattr(best, field) != value:
            return best
        if field not in self.runner_up:  # the last seen of those that differ from the best in ``field``
            self.runner_up[field] = max((r for r in self.rows if getattr(r, field) != value),
                                        key=lambda r: r.last_audit, default=None)
        return self.runner_up[field]


def _moved(judge: _Judge, cid: str, now: dict, old: dict[str, list[EventRow]]) -> None:
    """A signed event the ledger holds at a sequence id no longer served, now served at another:
    sequence ids are not signed, so a server can renumber a history (move it above the old head,
    say), but the signed (sender, message id) pair moves with it. Raised at every run that serves the
    moved history (the old sequence ids stay gone)."""
    signed: dict[tuple[str, str], EventRow] = {}
    for seq, rows in old.items():
        if seq in now:
            continue
        for row in rows:
            if row.status == "valid" and row.sender is not None and row.message_id is not None:
                signed.setdefault((row.sender, row.message_id), row)
    if not signed:
        return
    for seq, versions in now.items():
        for reports in versions.values():
            ev = reports[0]
            if ev.signature.status != "valid" or ev.sender_id is None or ev.message_id is None:
                continue
            was = signed.get((ev.sender_id, ev.message_id))
            if was is None:
                continue
            judge.event.append((cid, ev, judge.finding(
                "history_rewritten", f"this signed event (message id {ev.message_id} from {ev.sender_id}) is now "
                f"at sequence id {seq}; {judge.since(was.last_audit)} saw it at sequence id {was.seq}, which is "
                "gone (sequence ids are not signed: the history was renumbered)")))


def _missing(judge: _Judge, conv, now: dict, old: dict[str, list[EventRow]],
             by_index: dict[int, EventFacts], ended: bool) -> list[tuple[str, bytes, int]]:
    """Events the ledger holds that this audit did not see: vanished, deleted, or above the head."""
    cid = conv.conversation_id
    gone = [seq for seq, rows in old.items() if seq not in now and any(r.state != DELETED for r in rows)]
    if not gone:
        return []
    if not now and not conv.complete:
        return []  # nothing fetched: nothing can be judged (the report says incomplete)
    # the range fetched now is the data chain's: key changes delivered only in meta are older copies
    chained = {seq for seq, versions in now.items()
               if any(r.chain.status != "out_of_band" for reports in versions.values() for r in reports)}
    keys = sorted(chained or now, key=seq_key)
    head = seq_key(keys[-1]) if keys else None
    tail_event = None
    if keys:
        tail_event = next(iter(now[keys[0]].values()))[0]
    # the range reaches back to the beginning when the history was fetched to its end, or when its
    # oldest event claims to be the first (no previous pointer); else older events are not judged
    low = None if ended or tail_event is None or tail_event.previous_sequence_id is None else seq_key(keys[0])
    deleted, clears = _deletes(conv, by_index)
    states: list[tuple[str, bytes, int]] = []
    vanished: list[tuple[str, EventRow]] = []
    above: list[tuple[str, EventRow]] = []
    for seq in sorted(gone, key=seq_key):
        rows = old[seq]
        row = max(rows, key=lambda r: r.last_audit)
        key = seq_key(seq)
        if low is not None and key < low:
            continue  # older than what was fetched now: not judged
        if seq in deleted or clears.covers(seq):
            judge.conv.setdefault(cid, []).append(judge.finding(
                "deleted_by_signed_event", f"sequence id {seq}, seen by {judge.since(row.last_audit)}, is gone; "
                "a verified signed delete event covers it"))
            states += [(seq, r.digest, DELETED) for r in rows]
        elif head is None or key > head:
            above.append((seq, row))
            states += [(seq, r.digest, VANISHED) for r in rows]
        else:
            vanished.append((seq, row))
            states += [(seq, r.digest, VANISHED) for r in rows]
    for seq, row in vanished[:MAX_LISTED]:
        judge.conv.setdefault(cid, []).append(judge.finding(
            "event_vanished", f"sequence id {seq} ({row.kind or 'event'} from {row.sender or 'unknown'}), seen by "
            f"{judge.since(row.last_audit)}, is missing inside the range fetched now"))
    if len(vanished) > MAX_LISTED:
        first_seen = min(r.last_audit for _s, r in vanished[MAX_LISTED:])
        judge.conv.setdefault(cid, []).append(judge.finding(
            "event_vanished", f"{len(vanished) - MAX_LISTED} more events seen by earlier audits (from "
            f"{judge.since(first_seen)}) are missing inside the range fetched now"))
    if above:
        top_seq, top = max(above, key=lambda a: seq_key(a[0]))
        now_head = keys[-1] if keys else "nothing (the history is empty)"
        judge.conv.setdefault(cid, []).append(judge.finding(
            "head_regressed", f"the newest event is now {now_head}, older than head {top_seq} seen by "
            f"{judge.since(top.last_audit)}; {len(above)} events newer than the head are gone"))
    return states


SNOWFLAKE_EPOCH_MS = 1288834974657  # sequence ids are snowflakes: (id >> 22) + this = creation time (ms)


def snowflake_msec(seq: str) -> int | None:
    """The creation time (ms since the Unix epoch) a decimal snowflake sequence id encodes, else None."""
    if not (seq.isascii() and seq.isdigit()) or len(seq) > 19 or int(seq) >= 2 ** 63:
        return None
    return (int(seq) >> 22) + SNOWFLAKE_EPOCH_MS


@dataclass(frozen=True)
class _Clear:
    """What a verified ConversationDeleteEvent covers: only what it signs (docs/ledger.md).

    ``clear_all_messages`` must be true (false or absent covers nothing: the protocol documents the
    option names only, and only that one says messages are removed); the events covered are older
    than the delete's own position and, when ``sort_order_msec`` is signed, created (by their
    snowflake sequence id) at or before it."""

    position: int  # the delete's own sequence id
    until_msec: int | None  # sort_order_msec, when signed

    def covers(self, seq: str) -> bool:
        own = position(seq)
        if own is None or own >= self.position:
            return False
        if self.until_msec is None:
            return True
        created = snowflake_msec(seq)
        return created is not None and created <= self.until_msec


class _Clears:
    """What several clears cover together: ``any(c.covers(seq) for c in clears)`` without a pass over
    them for each sequence id (round 104: 20,000 signed clears served, and the 20,000 messages an
    earlier run recorded gone, 32 MB, took 177 s to record). A clear without ``sort_order_msec``
    covers every position below its own: the highest such position says it for them all. Of the
    others, those above a position cover it when one's ``sort_order_msec`` is at or after its
    creation: the latest of them (sorted by position, the latest above each) says it."""

    def __init__(self, clears: Sequence[_Clear]) -> None:
        self.below = max((c.position for c in clears if c.until_msec is None), default=None)
        timed = sorted((c.position, c.until_msec) for c in clears if c.until_msec is not None)
        self.positions = [at for at, _until in timed]
        self.latest_above: list[int] = [0] * len(timed)  # the latest sort_order_msec from each on
        latest: int | None = None
        for i in range(len(timed) - 1, -1, -1):
            until = timed[i][1]
            assert until is not None
            latest = until if latest is None else max(latest, until)
            self.latest_above[i] = latest

    def covers(self, seq: str) -> bool:
        own = position(seq)
        if own is None:
            return False
        if self.below is not None and own < self.below:
            return True
        at = bisect_right(self.positions, own)  # the clears above ``own``: positions[at:]
        if at == len(self.positions):
            return False
        created = snowflake_msec(seq)
        return created is not None and created <= self.latest_above[at]


def _deletes(conv, by_index: dict[int, EventFacts]) -> tuple[set[str], _Clears]:
    """Sequence ids covered by verified signed deletes in this report, and what its verified
    ConversationDeleteEvents clear. A delete counts only with a valid signature, from a sender proven
    a member of the conversation at that point, in the data chain (not meta)."""
    deleted: set[str] = set()
    clears: list[_Clear] = []
    for ev in conv.events:
        fact = by_index.get(ev.index)
        if fact is None or ev.signature.status != "valid" or fact.member is not True \
                or ev.chain.status == "out_of_band":
            continue
        deleted.update(fact.deletes)
        at = position(ev.sequence_id)
        if fact.clear is not None and fact.clear.clear_all_messages is True and at is not None:
            clears.append(_Clear(at, fact.clear.sort_order_msec))
    return deleted, _Clears(clears)


def _downgrades(judge: _Judge, cid: str, now: dict, old: dict[str, list[EventRow]],
                by_index: dict[int, EventFacts]) -> None:
    """New events (sequence ids newer than any the ledger holds from that sender) signed at a lower
    signature version than the sender used before."""
    best: dict[str, tuple[int, EventRow]] = {}
    newest: dict[str, tuple] = {}
    for rows in old.values():
        for row in rows:
            if row.sender is None:
                continue
            key = seq_key(row.seq)
            if row.sender not in newest or key > newest[row.sender]:
                newest[row.sender] = key
            version = version_number(row.sig_version)
            if version is not None and row.status == "valid" and \
                    (row.sender not in best or version > best[row.sender][0]):
                best[row.sender] = (version, row)
    for seq, versions in now.items():
        if seq in old:
            continue
        for reports in versions.values():
            ev = reports[0]
            sender = ev.sender_id
            if sender not in best or seq_key(seq) <= newest.get(sender, (0, 0, "")):
                continue
            version = version_number(by_index[ev.index].signature_version)
            if version is not None and version < best[sender][0]:
                high, row = best[sender]
                judge.event.append((cid, ev, judge.finding(
                    "signature_version_downgrade", f"user {sender} signs this new event at signature version "
                    f"{version}; {judge.since(row.last_audit)} saw them sign at version {high} "
                    f"(sequence id {row.seq})")))


# ------------------------------------------------------------------------------------- keys
def _slot_version(version: str) -> str:
    """The version a key row fills, for ``key_substituted``: one number however it is spelled (round
    73: version ``01`` served with a new key, beside or instead of version 1, was only
    ``key_added``)."""
    number = version_number(version)
    return version if number is None else str(number)


def _keys(store: LedgerStore, judge: _Judge, keyring: Keyring | None, facts: Sequence[EventFacts],
          audit_id: int, source: str, key_users: Sequence[str] | None, scrub: Callable[[str], str]) -> None:
    now: dict[tuple[str, str, bytes, str], KeyRow] = {}
    if keyring is not None:
        for (raw_user, raw_version), rows in keyring.rows().items():
            if (raw_user, raw_version) in keyring.fallback:
                continue
            user, version = scrub(raw_user), scrub(raw_version)  # served text, recorded as the report shows it
            for trusted in rows:
                if trusted.key is None:
                    continue
                digest = hashlib.sha256(key_identity(trusted.key)).digest()
                now[(user, version, digest, source)] = KeyRow(user, version, digest, source, scrub(trusted.encoded),
                                                              trusted.status, audit_id, audit_id)
    for fact in facts:
        for member, version, encoded in fact.embedded_keys:
            embedded = key_digest(encoded)
            if embedded is not None and (member, version, embedded, "events") not in now:
                now[(member, version, embedded, "events")] = KeyRow(member, version, embedded, "events", encoded,
                                                                    "none", audit_id, audit_id)
    old = store.keys()
    by_slot: dict[tuple[str, str], list[KeyRow]] = {}
    for row in old:
        by_slot.setdefault((row.user_id, _slot_version(row.version)), []).append(row)
    # key_substituted: one finding per (user, version) whose key differs from one recorded before
    flagged: set[tuple[str, str]] = set()
    for (user, version, digest, src), _row in sorted(now.items()):
        slot = (user, _slot_version(version))
        if slot in flagged:
            continue
        other = [r for r in by_slot.get(slot, []) if r.key_digest != digest]
        if other:
            before = max(other, key=lambda r: r.last_audit)
            flagged.add(slot)
            judge.run.append(judge.finding(
                "key_substituted", f"user {user} key version {version} is now key {digest.hex()[:16]}… "
                f"({src}); {judge.since(before.last_audit)} recorded key {before.key_digest.hex()[:16]}… "
                f"({before.source})"))
    served: dict[str, set[str]] = {}
    served_keys: dict[str, list[tuple[str, str, bytes, str]]] = {}  # each user's, in sorted order
    for entry in sorted(now):  # once: sorted again for every user, the server's embedded keys with
        user, version, _d, src = entry  # them, 1,000 users and 40,000 keys took 10 s (round 104)
        if src in SERVED_SOURCES:
            served.setdefault(user, set()).add(version)
            served_keys.setdefault(user, []).append(entry)
    old_served: dict[str, list[KeyRow]] = {}
    for row in old:
        if row.source in SERVED_SOURCES:
            old_served.setdefault(row.user_id, []).append(row)
    for user, versions in sorted(served.items()):
        served_before = old_served.get(user, [])
        numbers = [n for n in (version_number(v) for v in versions) if n is not None]
        earlier = [(n, r) for r in served_before if (n := version_number(r.version)) is not None]
        if numbers and earlier:
            high, row = max(earlier, key=lambda e: (e[0], e[1].last_audit))
            if max(numbers) < high:
                judge.run.append(judge.finding(
                    "key_version_rollback", f"user {user}'s newest key version served is {max(numbers)}, lower "
                    f"than version {row.version} that {judge.since(row.last_audit)} saw served"))
        _flag_old_key_again(judge, user, served_keys[user], served_before)
        if served_before:
            known = {r.version for r in served_before}
            for version in sorted(versions - known, key=lambda v: (version_number(v) or 0, v)):
                judge.run.append(judge.finding(
                    "key_added", f"user {user} has a new key version {version} (the ledger knew "
                    f"{', '.join(sorted(known))} since {judge.since(min(r.first_audit for r in served_before))})"))
    looked_up = set(served) | set(key_users or ())
    retired: list[KeyRow] = []
    for user in sorted(looked_up):
        for row in old_served.get(user, []):
            if row.version not in served.get(user, set()) and row.retired_audit is None:
                retired.append(row)
                judge.run.append(judge.finding(
                    "key_retired", f"user {user} key version {row.version} is no longer served; "
                    f"{judge.since(row.last_audit)} saw it served (the ledger keeps it for old events)"))
    store.upsert_keys(list(now.values()), audit_id)
    store.retire_keys(retired, audit_id)


def _flag_old_key_again(judge: _Judge, user: str, served_now: Sequence[tuple[str, str, bytes, str]],
                        served_before: Sequence[KeyRow]) -> None:
    """A key the ledger saw replaced (another key served under a version newer than the old key's)
    served under a version newer than that replacement's: the old key presented as the newest, a
    rollback whatever the numbers of the newest version say (review 43: a retired key served as
    version 3 signed forged events with only ``key_added``; review 44: also beside its old version;
    review 46: at every audit that serves it). An old key under a version older than its replacement
    is history (directories keep old versions for old events), and so is a key registered again
    before any replacement (review 48). Non-numeric versions are ordered by the audit that first saw
    them (a pair seen now for the first time is the newest). One finding per user."""
    for (_user, version, digest, _source) in served_now:  # the user's (user, version, digest, source), sorted
        since = min((r.first_audit for r in served_before if (r.version, r.key_digest) == (version, digest)),
                    default=None)  # when the ledger first saw this very pair served (None: now)
        for old in sorted((r for r in served_before if r.key_digest == digest and r.version != version),
                          key=lambda r: r.first_audit):
            newer = [r for r in served_before if r.key_digest != digest and _newer(r.version, r.first_audit, old)
                     and _newer(version, since, r)]
            if newer:
                replaced_by = max(newer, key=lambda r: r.last_audit)
                judge.run.append(judge.finding(
                    "key_version_rollback", f"user {user} key version {version} is key {digest.hex()[:16]}…, which "
                    f"{judge.since(old.last_audit)} was served as version {old.version} and then replaced by "
                    f"version {replaced_by.version}: an old key served again as the newest"))
                return


def _newer(version: str, first_audit: int | None, than: KeyRow) -> bool:
    """Is ``version`` (first seen served at ``first_audit``; None: now) newer than ``than``'s version:
    numerically (leading zeros ignored), else first seen by a later audit."""
    a, b = version_number(version), version_number(than.version)
    if a is not None and b is not None:
        return a > b
    return first_audit is None or first_audit > than.first_audit


# ------------------------------------------------------------------------------------- report
def _mark_ledger_keys(report: Report, keyring: Keyring | None) -> None:
    """Events verified with a key only the ledger still had: said on the event, the conversation and
    the report's ``key_source``."""
    fallback = keyring.fallback if keyring is not None else set()
    if not fallback:
        return
    used = False
    for conv in report.conversations:
        count = 0
        for ev in conv.events:
            if ev.signature.status == "valid" and (ev.sender_id or "", ev.key_version or "") in fallback:
                ev.signature.detail += "; key source: ledger"
                count += 1
        if count:
            used = True
            conv.findings.append(Finding("ledger_key_used", Severity.INFO.value,
                                         f"{count} signatures verified with keys the directory no longer "
                                         "serves, kept in the ledger (key source: ledger)"))
            conv.counts["ledger_key_used"] = conv.counts.get("ledger_key_used", 0) + 1
    if used:
        report.key_source = f"{report.key_source}+ledger"


def _apply(report: Report, judge: _Judge) -> None:
    """Add the findings; verdicts follow the engine's rule (a failing finding fails its
    conversation, a failing run-level one every conversation and the run)."""
    strict = report.strict
    by_id = {c.conversation_id: c for c in report.conversations}
    for cid, ev, finding in judge.event:
        ev.findings.append(finding)
        conv = by_id[cid]
        conv.counts[finding.code] = conv.counts.get(finding.code, 0) + 1
        if fails(finding.severity, strict):
            conv.verdict = "fail"
    for cid, findings in judge.conv.items():
        conv = by_id[cid]
        for finding in findings:
            conv.findings.append(finding)
            conv.counts[finding.code] = conv.counts.get(finding.code, 0) + 1
            if fails(finding.severity, strict):
                conv.verdict = "fail"
    report.findings.extend(judge.run)
    if any(fails(f.severity, strict) for f in judge.run):
        for conv in report.conversations:
            conv.verdict = "fail"
    if any(c.verdict == "fail" for c in report.conversations) or any(fails(f.severity, strict) for f in judge.run):
        report.verdict = "fail"
