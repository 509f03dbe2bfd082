"""The reference: the verification engine as it was before the fast path (issue 11), reading every
event with the generic Thrift reader. The differential tests require the shipped engine to give the
same reports, byte for byte. Do not optimise this file.

The verification engine: pages in, a ``Report`` out. Pure: no file or network I/O.

Orchestration only; each step lives in its own module:

1. decode every event exactly as the SDK does (``wire``) and cross-check its JSON envelope
   (``envelope``), page by page as pages arrive;
2. per event, the SDK's signature steps up to the payload (``signature.prepare``, choosing the key
   with ``signers``), then every ECDSA check in bulk on a thread pool (``cryptography`` releases
   the GIL inside OpenSSL, so they use every core);
3. per conversation, the chain and replays (``chain``);
4. findings about whole conversations and the run, fail closed (``Policy``), and the ``Report``.
"""

from __future__ import annotations

import gc
import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from verifier.chain import ChainNode, ChainResult, analyse_chain, find_replays
from verifier.envelope import envelope_differences
from verifier.errors import MalformedEvent
from verifier.ids import canonical_conversation
from verifier.keys import Keyring, version_key
from verifier.model import (
    ALLOWED_BY,
    FINDING_SEVERITY,
    REPORT_SCHEMA,
    STATUS_SEVERITY,
    ChainStatus,
    Check,
    Code,
    ConversationReport,
    EventReport,
    Finding,
    InputReport,
    Proof,
    Report,
    Severity,
    SigStatus,
    Verdict,
    fails,
)
from verifier.pages import DecodedPage, ItemJson, RawEntry, decode_page
from verifier.payload import must_be_signed
from verifier.semantics import SignedEvent, one_to_one_members, shown, signing_key_regressions, unbound_conversation
from verifier.signature import Job, check, prepare
from verifier.signers import embedded_key_conflicts, embedded_keys
from verifier.wire import DEFAULT_LIMITS, Limits, MessageEvent, b64decode_strict, decode_event_generic

_CHUNK = 256


def default_workers() -> int:
    """Verification threads: one per CPU (at most 8); ECDSA releases the GIL so they run in parallel."""
    return min(8, os.cpu_count() or 1)


@dataclass
class PageInput:
    """A page body with a label for reports (file name, URL, ``stdin:3``) and, when known, the
    conversation it was fetched for (events of any other conversation are then a mismatch)."""

    source: str
    body: bytes | str | dict[str, Any]
    conversation_id: str | None = None


class _Event:
    """Working state of one input event; the identifying fields are resolved once in ``resolve``."""

    __slots__ = ("index", "entry", "raw", "event", "malformed", "conversation", "signature",
                 "findings", "sequence_id", "previous_sequence_id", "message_id", "sender_id",
                 "conversation_id", "trusted", "from_meta", "created_at")

    def __init__(self, index: int, entry: RawEntry) -> None:
        self.index = index
        self.entry: RawEntry | None = entry
        self.raw: bytes | None = None  # SHA-256 of the encoded event: byte-identical repeats compare equal
        self.event: MessageEvent | None = None
        self.malformed = ""
        self.conversation = ""
        self.signature: Check | None = None
        self.findings: list[Finding] = []
        self.from_meta = entry.from_meta

    @property
    def item(self) -> ItemJson | None:
        return self.entry.item if self.entry is not None else None

    def resolve(self) -> None:
        """Identifying fields from the encoded event if it decoded, else from the JSON item."""
        source: Any = self.event
        if source is not None:
            self.sequence_id, self.previous_sequence_id = source.sequence_id, source.previous_sequence_id
        else:
            source = self.item
            self.sequence_id = source.seq if source is not None else None
            self.previous_sequence_id = source.prev if source is not None else None
        self.message_id = getattr(source, "message_id", None)
        self.sender_id = getattr(source, "sender_id", None)
        self.conversation_id = getattr(source, "conversation_id", None)
        self.trusted = getattr(source, "is_trusted", None)
        created = getattr(source, "created_at_msec", None)
        self.created_at = created if isinstance(created, str) or created is None else str(created)

    def release_input(self) -> None:
        """Drop the JSON item and base64 text once decoded and cross-checked (memory)."""
        self.entry = None

    @property
    def checked(self) -> Check:
        """The signature's outcome (set for every event before the report is built)."""
        assert self.signature is not None
        return self.signature

    def add(self, code: str, message: str, severity: str | None = None) -> None:
        sev = severity or FINDING_SEVERITY.get(code) or STATUS_SEVERITY[code]
        self.findings.append(Finding(code, getattr(sev, "value", sev), message))


class Reviewer(Protocol):
    """A check that runs inside a verification, around the signature checks (the hook of the
    participant audit, ``verifier.participant``; the default is ``verifier.semantics.SignedChecks``).

    Both methods receive the engine's per-event records in input order. A reviewer reads their
    ``index``, ``conversation`` (canonical id), ``event`` (the decoded ``MessageEvent``, or None when
    malformed), ``from_meta``, ``sequence_id``, ``sender_id`` and, in ``review``, ``signature`` (the
    ``Check``); it reports a finding on an event with ``record.add(code, message[, severity])`` and
    changes nothing else.

    * ``conversation_keys(records, keyring)`` runs before any signature is checked and returns
      plaintext conversation keys ``{version: 32 bytes}`` it learned (a participant decrypts them);
      they verify v6+ key changes like ``conversation_keys=`` (which wins for a version given both).
    * ``review(records, keyring)`` runs once every signature is known, before the chain and the
      verdicts; it adds event findings and returns run-level ``(code, message)`` findings.
    """

    def conversation_keys(self, records: Sequence[Any], keyring: Keyring | None) -> Mapping[str, bytes]: ...

    def review(self, records: Sequence[Any], keyring: Keyring | None) -> list[tuple[str, str]]: ...


def default_reviewers() -> tuple[Reviewer, ...]:
    """The checks every verification runs: what signed events claim about other events."""
    from verifier.semantics import SignedChecks
    return (SignedChecks(),)


def verify_pages(pages: Iterable[PageInput | DecodedPage | bytes | str | dict[str, Any]], keyring: Keyring | None = None, *,
                 conversation_keys: Mapping[str, bytes] | None = None,
                 allow_embedded_keys: bool = False, allow_empty: bool = False,
                 allow_partial: bool = False, strict: bool = False,
                 expected_conversation_id: str | None = None,
                 limits: Limits = DEFAULT_LIMITS, workers: int | None = None,
                 reviewers: Sequence[Reviewer] | None = None) -> Report:
    """Verify pages of ``GET /2/chat/conversations/{id}/events`` bodies; never raises per event.

    ``pages`` may hold raw bodies (bytes/str), parsed dicts, ``PageInput`` or already decoded pages.
    Fail closed: without a ``keyring`` the verdict is ``fail`` unless ``allow_embedded_keys``; an
    empty history, or one where no signature could be proven, fails unless ``allow_empty``.
    ``reviewers`` replace the default checks (``default_reviewers()``); see ``Reviewer``.
    """
    verification = Verification(conversation_keys=conversation_keys, allow_embedded_keys=allow_embedded_keys,
                                allow_empty=allow_empty, allow_partial=allow_partial,
                                strict=strict, expected_conversation_id=expected_conversation_id,
                                limits=limits, workers=workers, reviewers=reviewers)
    for page in pages:
        verification.add_page(page)
    return verification.finish(keyring)


class Verification:
    """Incremental form of ``verify_pages``: decode pages as they arrive, verify once keys are known.

    The fetcher feeds pages while later pages are still downloading, learns the participants from
    ``user_ids()``, fetches their keys, then calls ``finish(keyring)``.
    """

    def __init__(self, *, conversation_keys: Mapping[str, bytes] | None = None,
                 allow_embedded_keys: bool = False, allow_empty: bool = False,
                 allow_partial: bool = False, strict: bool = False,
                 expected_conversation_id: str | None = None, limits: Limits = DEFAULT_LIMITS,
                 workers: int | None = None, reviewers: Sequence[Reviewer] | None = None,
                 judge_paging: bool = True) -> None:
        policy = Policy(allow_embedded_keys=allow_embedded_keys, allow_empty=allow_empty,
                        allow_partial=allow_partial, strict=strict)
        self._run = _Run(None, conversation_keys or {}, policy,
                         canonical_conversation(expected_conversation_id), limits, workers)
        self._run.reviewers = tuple(default_reviewers() if reviewers is None else reviewers)
        self._run.judge_paging = judge_paging
        self._pages = 0

    def add_page(self, page: Any) -> None:
        with _gc_paused():
            self._run._load_page(_as_decoded(page, self._pages))
        self._pages += 1

    @property
    def event_count(self) -> int:
        return len(self._run.events)

    def user_ids(self) -> list[str]:
        """Every sender and signing-key member named by the decoded events, in first-seen order."""
        seen: dict[str, None] = {}
        for ev in self._run.events:
            if ev.sender_id:
                seen.setdefault(ev.sender_id)
            for member, _version, _key in embedded_keys(ev.event):
                seen.setdefault(member)
        return list(seen)

    def add_input_error(self, source: str, message: str) -> None:
        """Record an input that could not be obtained in full (the report is then incomplete)."""
        self._run.inputs.append(InputReport(source, len(self._run.events), 0, [message]))

    def expect_conversation(self, conversation_id: str) -> None:
        """Name a conversation the caller asked for: it is reported even if it has no events
        (then it fails with ``no_events`` unless ``allow_empty``)."""
        self._run.expected_conversations.setdefault(canonical_conversation(conversation_id) or "unknown")

    def mark_incomplete(self, conversation_id: str | None, reason: str) -> None:
        """The history of ``conversation_id`` was not fetched to its end (a page limit, an interrupted
        or failed fetch): it fails with ``incomplete`` unless ``allow_partial``."""
        cid = canonical_conversation(conversation_id) or self._run.expected or "unknown"
        self._run.incomplete.setdefault(cid, []).append(reason)

    def finish(self, keyring: Keyring | None = None) -> Report:
        self._run.keyring = keyring
        with _gc_paused():
            for reviewer in self._run.reviewers:  # keys learned before any signature is checked
                for slot, key in reviewer.conversation_keys(self._run.events, keyring).items():
                    if isinstance(slot, tuple):  # (conversation, version): that conversation's only
                        self._run.scoped_keys.setdefault(slot[0], {}).setdefault(version_key(slot[1]), key)
                    else:
                        self._run.conversation_keys.setdefault(version_key(slot), key)
            return self._run.execute()


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The engine allocates many small acyclic objects; pausing the cyclic collector meanwhile
    saves ~15% of the Python-side cost. It is re-enabled even on error."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class Policy:
    """The trust choices of a run. Each ``allow_*`` is an explicit opt-in to a weaker claim; the
    report then says so (an info finding and the verdict line) instead of failing."""

    allow_embedded_keys: bool = False  # verify signers with keys carried in the events themselves
    allow_empty: bool = False  # an empty history, or one with no provable signature, may pass
    allow_partial: bool = False  # a history not fetched to its end may pass
    strict: bool = False  # warnings fail too

    def severity(self, code: str) -> str:
        allowed = ALLOWED_BY.get(code)
        if allowed is not None and getattr(self, allowed):
            return Severity.INFO.value
        return (FINDING_SEVERITY.get(code) or STATUS_SEVERITY[code]).value


class _Run:
    def __init__(self, keyring: Keyring | None, conversation_keys: Mapping[str, bytes], policy: Policy,
                 expected: str, limits: Limits, workers: int | None) -> None:
        self.keyring: Keyring | None = keyring
        self.conversation_keys = {version_key(k): v for k, v in conversation_keys.items()}
        self.scoped_keys: dict[str, dict[str, bytes]] = {}
        self.policy = policy
        self.allow_embedded = policy.allow_embedded_keys
        self.strict = policy.strict
        self.expected = expected
        self.limits = limits
        self.workers = workers if workers is not None else default_workers()
        self.events: list[_Event] = []
        self.inputs: list[InputReport] = []
        self.expected_conversations: dict[str, None] = {}  # asked for by the caller, in order
        self.incomplete: dict[str, list[str]] = {}
        self.reviewers: tuple[Reviewer, ...] = ()
        self.judge_paging = True
        self.pages: list[tuple[str, bool, DecodedPage]] = []  # (conversation, has events, page)

    # ---------------------------------------------------------------- orchestration
    def _judge_paging(self) -> None:
        """Page files: a conversation whose pages hold no last page (no next_token), or one of whose
        pages says events are missing, is incomplete. An empty last page naming no conversation
        ends the run's only conversation."""
        conversations = list(dict.fromkeys(cid for cid, has_events, _page in self.pages
                                           if has_events or cid != "unknown"))
        empty_ends = {cid for cid, has_events, page in self.pages  # a last page without data events
                      if not _has_data(page) and page.next_token is None and not page.unfinished and not page.errors}
        claims_first = {ev.conversation for ev in self.events  # an event without a predecessor: the first
                        if ev.sequence_id and ev.previous_sequence_id is None and not ev.from_meta}
        with_data = {ev.conversation for ev in self.events if not ev.from_meta}
        for cid in conversations:
            said = [*dict.fromkeys(f"{page.source}: {why}" for c, _e, page in self.pages if c == cid
                                   for why in page.unfinished)]
            reasons = said[:5] + ([f"and {len(said) - 5} more pages say events are missing"] if len(said) > 5 else [])
            ended = any(c == cid and _has_data(page) and page.next_token is None and not page.errors
                        for c, _e, page in self.pages)
            ends_empty = cid in empty_ends or ("unknown" in empty_ends and len(conversations) == 1)
            if not ended and not (ends_empty and (cid in claims_first or cid not in with_data)):
                reasons.append("none of its pages is the last one (each has a next_token): the older events it "
                               "leads to were not given")
            if reasons:
                self.incomplete[cid] = [*dict.fromkeys([*self.incomplete.get(cid, []), *reasons])]

    def execute(self) -> Report:
        if self.judge_paging:
            self._judge_paging()
        with _SignaturePipeline(self.workers) as pipeline:
            for ev in self.events:
                outcome = self._prepare(ev)
                if isinstance(outcome, Check):
                    ev.signature = outcome
                else:
                    pipeline.submit(ev, outcome)
            for index, message in embedded_key_conflicts(((ev.index, ev.event) for ev in self.events),
                                                         self.keyring):
                self.events[index].add(Code.KEY_CONFLICT, message)
            pipeline.drain()
        for ev in self.events:
            result = ev.checked
            sev = STATUS_SEVERITY.get(result.status)
            if sev is not None:
                ev.add(result.status, result.detail)
        reviewed = [self._finding(code, message) for reviewer in self.reviewers
                    for code, message in reviewer.review(self.events, self.keyring)]
        for ev in self.events:  # a 1:1 conversation's id names its two users; nobody else may sign in it
            pair = one_to_one_members(ev.conversation)
            if pair is not None and must_be_signed(ev.event.kind if ev.event is not None else None) \
                    and ev.sender_id not in pair:
                users = " and ".join(shown(user) for user in sorted(pair))
                ev.add(Code.NON_MEMBER_SENDER, f"sender {shown(ev.sender_id)} is not one of the two users of this "
                                               f"1:1 conversation ({users})")
        by_conversation: dict[str, list[_Event]] = {}
        for ev in self.events:
            by_conversation.setdefault(ev.conversation, []).append(ev)
        for events in by_conversation.values():  # an old signing key in use again
            signed = [SignedEvent(i, ev.sequence_id, ev.previous_sequence_id, ev.sender_id,
                                  ev.event.signature.public_key_version if ev.event is not None and
                                  ev.event.signature is not None else None,
                                  ev.checked.status == SigStatus.VALID and ev.event is not None
                                  and ev.event.signature is not None)
                      for i, ev in enumerate(events) if ev.sequence_id]
            for i, message in signing_key_regressions(signed):
                events[i].add(Code.SIGNING_KEY_REGRESSED, message)
        run_findings = self._run_findings() + reviewed
        run_fails = any(fails(f.severity, self.strict) for f in run_findings)
        conversations = self._conversations(run_fails)
        if not conversations:
            run_findings.append(self._finding(Code.NO_EVENTS, "the input holds no events"))
        failed = any(c.verdict == Verdict.FAIL for c in conversations) or \
            any(fails(f.severity, self.strict) for f in run_findings) or \
            any(i.errors for i in self.inputs) or (self.strict and any(i.api_errors for i in self.inputs))
        return Report(REPORT_SCHEMA, Verdict.FAIL if failed else Verdict.PASS, conversations, strict=self.strict,
                      key_source="keyring" if self.keyring is not None else "embedded",
                      inputs=self.inputs, findings=run_findings, proof=self._proof(conversations))

    def _finding(self, code: str, message: str) -> Finding:
        return Finding(code, self.policy.severity(code), message)

    def _run_findings(self) -> list[Finding]:
        """Findings about the run as a whole: whose keys were trusted, and what the keyring said."""
        out = []
        used = {ev.event.body.get("conversation_key_version") for ev in self.events
                if ev.event is not None and ev.event.kind == "ConversationKeyChangeEvent" and ev.event.body}
        for version in sorted(set(self.conversation_keys) - used):
            out.append(self._finding(Code.UNUSED_CONVERSATION_KEY, f"no key change in the input uses conversation "
                                                                f"key version {version}"))
        if self.keyring is None:
            out.append(self._finding(Code.NO_TRUSTED_KEYS, "no keyring: signer keys were taken from the "
                                                        "events themselves and are not authenticated"))
        else:
            out += [self._finding(code, message) for code, message in self.keyring.run_findings()]
            for message in self.keyring.errors:  # rows the run could not use: it is incomplete
                self.inputs.append(InputReport("keys", len(self.events), 0, [message]))
        return out

    def _conversation_findings(self, cid: str, reports: list[EventReport]) -> list[Finding]:
        out = []
        for reason in self.incomplete.get(cid, []):
            out.append(self._finding(Code.INCOMPLETE, f"history not fetched to its end: {reason}"))
        data = [r for r in reports if not self.events[r.index].from_meta]
        if not reports:
            out.append(self._finding(Code.NO_EVENTS, "the conversation has no events"))
        elif not data:
            out.append(self._finding(Code.NO_EVENTS, f"the conversation has no events: its {len(reports)} key change(s) "
                                                  "came only in meta.conversation_key_events, outside the history"))
        elif not any(r.signature.status == SigStatus.VALID for r in data):
            in_meta = len(reports) - len(data)
            out.append(self._finding(Code.NOTHING_PROVEN, f"none of its {len(data)} events has a proven signature" + (
                f" ({in_meta} key change(s) given only in meta.conversation_key_events prove nothing of the history)"
                if in_meta else "")))
        return out

    def _proof(self, conversations: list[ConversationReport]) -> Proof:
        statuses = Counter(e.signature.status for c in conversations for e in c.events)
        events = sum(statuses.values())
        not_signed = statuses[SigStatus.NOT_SIGNED]
        proven, waiting = statuses[SigStatus.VALID], statuses[SigStatus.NEEDS_CONVERSATION_KEY]
        embedded = 0 if self.keyring is None else sum(
            1 for c in conversations for e in c.events if any(f.code == Code.EMBEDDED_KEY_USED for f in e.findings))
        return Proof(events=events, signed=events - not_signed, proven=proven,
                     needs_conversation_key=waiting, unproven=events - not_signed - proven - waiting,
                     not_signed=not_signed, keys_authenticated=self.keyring is not None and not embedded,
                     complete=not self.incomplete and not any(i.errors for i in self.inputs), embedded_keys=embedded)

    def _load_page(self, page: DecodedPage) -> list[_Event]:
        first = len(self.events)
        page_events = [self._decode(len(self.events) + i, e) for i, e in enumerate(page.entries)]
        self.events += page_events
        self._assign_conversation(page_events, canonical_conversation(page.conversation_id) or self.expected)
        self.pages.append((page_events[0].conversation if page_events else
                           canonical_conversation(page.conversation_id) or self.expected or "unknown",
                           bool(page_events), page))
        self.inputs.append(InputReport(page.source, first, len(page_events), list(page.errors),
                                       list(page.api_errors)))
        return page_events

    def _decode(self, index: int, entry: RawEntry) -> _Event:
        ev = _Event(index, entry)
        if entry.problem:
            ev.add(Code.ENVELOPE_MISMATCH, entry.problem)
        if entry.encoded is None:
            ev.malformed = "encoded_event is missing"
        else:
            try:
                raw, ev.event = _decode_generic_b64(entry.encoded, self.limits)
                ev.raw = _digest(raw)
                _structure_findings(ev, ev.event)
            except MalformedEvent as exc:
                ev.malformed = str(exc)
            except RecursionError:  # defence in depth; the depth limit should stop this first
                ev.malformed = "nesting too deep"
            if ev.raw is None:
                ev.raw = _digest(repr(entry.encoded).encode())
        ev.resolve()
        if entry.from_meta and ev.event is not None and ev.event.kind != "ConversationKeyChangeEvent":
            ev.add(Code.META_NOT_KEY_CHANGE, f"meta.conversation_key_events carries a "
                                          f"{ev.event.kind or 'detail-less event'}, not a key change")
        self._envelope_checks(ev)
        # The JSON item and base64 text are no longer needed (the digest identifies the content):
        # drop them, so memory stays proportional to the decoded events, not to the pages' size.
        ev.release_input()
        return ev

    def _assign_conversation(self, page_events: list[_Event], expected: str) -> None:
        own = [canonical_conversation(e.conversation_id) for e in page_events]
        if not expected:
            counted = Counter(c for c in own if c)
            expected = counted.most_common(1)[0][0] if counted else "unknown"
        for ev, conv in zip(page_events, own):
            ev.conversation = expected
            if conv and conv != expected:
                ev.add(Code.CONVERSATION_MISMATCH,
                       f"event of conversation {conv} delivered in a page of {expected}")
            elif ev.event is not None and ev.event.kind == "GroupChangeEvent.GroupCreate" and \
                    one_to_one_members(expected) is not None:
                ev.add(Code.CONVERSATION_MISMATCH,
                       f"a GroupCreate in the 1:1 conversation {expected}: a GroupCreate's signature does not "
                       "bind the conversation id, and a 1:1 conversation is never created by one, so it is "
                       "another group's")
            elif ev.event is not None:
                unbound = unbound_conversation(ev.event.kind, conv, expected)
                if unbound:
                    ev.add(Code.CONVERSATION_MISMATCH, unbound)

    # ---------------------------------------------------------------- signatures and envelope
    def _prepare(self, ev: _Event) -> Check | Job:
        if ev.event is None:
            return Check(SigStatus.MALFORMED, ev.malformed)
        keys = {**self.scoped_keys.get(ev.conversation, {}), **self.conversation_keys}
        return prepare(ev.event, self.keyring, self.allow_embedded, keys, ev.add)

    def _envelope_checks(self, ev: _Event) -> None:
        event, item = ev.event, ev.item
        if ev.trusted is False or (item is not None and item.is_trusted is False):
            ev.add(Code.UNTRUSTED, "is_trusted is false")
        if event is None or item is None:
            return
        for problem in envelope_differences(item, event):
            ev.add(Code.ENVELOPE_MISMATCH, problem)

    # ---------------------------------------------------------------- chain and report
    def _conversations(self, run_fails: bool) -> list[ConversationReport]:
        """Conversations the caller expected (even with no events) first, then any others seen."""
        groups: dict[str, list[_Event]] = {cid: [] for cid in self.expected_conversations}
        for cid in self.incomplete:
            groups.setdefault(cid, [])
        for ev in self.events:
            groups.setdefault(ev.conversation, []).append(ev)
        return [self._conversation(cid, evs, run_fails) for cid, evs in groups.items()]

    def _conversation(self, cid: str, evs: list[_Event], run_fails: bool) -> ConversationReport:
        nodes = [_chain_node(ev) for ev in evs]
        chain = analyse_chain(nodes)
        for index, detail in find_replays(nodes).items():
            self.events[index].add(Code.REPLAY, detail)
        reports = [self._event_report(ev, chain[ev.index]) for ev in evs]
        counts: dict[str, int] = {s.value: 0 for s in SigStatus}
        counts.update({s.value: 0 for s in ChainStatus})
        findings = self._conversation_findings(cid, reports)
        for r in reports:
            counts[r.signature.status] += 1
            counts[r.chain.status] += 1
            for f in r.findings:
                if f.code not in STATUS_SEVERITY:
                    counts[f.code] = counts.get(f.code, 0) + 1
        for f in findings:
            counts[f.code] = counts.get(f.code, 0) + 1
        # A conversation passes only on its own proof and a sound run (trusted keys, ...).
        failed = run_fails or any(fails(f.severity, self.strict) for f in findings) or \
            any(fails(f.severity, self.strict) for r in reports for f in r.findings)
        return ConversationReport(cid, Verdict.FAIL if failed else Verdict.PASS, counts, reports, findings,
                                  complete=cid not in self.incomplete)

    def _event_report(self, ev: _Event, chain: ChainResult) -> EventReport:
        sev = STATUS_SEVERITY.get(chain.status)
        if sev is not None:
            ev.add(chain.status, chain.detail, Severity.INFO if chain.info_only else sev)
        event = ev.event
        key_version = event.signature.public_key_version if event is not None and event.signature else None
        return EventReport(ev.index, ev.sequence_id, ev.previous_sequence_id, ev.message_id, ev.sender_id,
                           event.kind if event is not None else None, ev.checked,
                           Check(chain.status, chain.detail), ev.trusted, ev.findings, key_version, ev.created_at)


def _structure_findings(ev: _Event, event: MessageEvent) -> None:
    """Bytes the SDK reads past or over: it verifies what it reads, but another reader of the same
    bytes could show something else, so the event fails (its signature status stays the SDK's)."""
    if event.trailing:
        ev.add(Code.TRAILING_BYTES, f"{event.trailing} bytes after the end of the event are ignored "
                                 "by every check")
    if event.shadowed:
        hidden = ", ".join(k for k in event.shadowed)
        ev.add(Code.SHADOWED_DETAIL, f"the event carries its detail {len(event.shadowed) + 1} times; "
                                  f"the SDK reads only the last ({event.kind or 'none'}), hiding {hidden}")


def _as_decoded(page: Any, number: int) -> DecodedPage:
    if isinstance(page, DecodedPage):
        return page
    if isinstance(page, PageInput):
        decoded = decode_page(page.body, page.source)
        decoded.conversation_id = page.conversation_id
        return decoded
    return decode_page(page, f"page {number + 1}")


class _SignaturePipeline:
    """Verify (event, job) pairs in chunks on a thread pool; results land on ``event.signature``.

    Jobs are queued while pages decode and handed to the pool in ``drain``. Overlapping the two
    was measured slower on CPython: the decoding thread holds the GIL for whole switch intervals
    and the verifier threads, which need it briefly between OpenSSL calls, stall (GIL convoy).
    While ``drain`` waits, the main thread releases the GIL and the checks run on all cores.
    """

    def __init__(self, workers: int) -> None:
        self.pool = ThreadPoolExecutor(workers) if workers > 1 else None
        self.pending: list[tuple[_Event, Job]] = []
        self.futures: list[tuple[list[tuple[_Event, Job]], Future[list[Check]] | None]] = []

    def __enter__(self) -> "_SignaturePipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=exc[0] is not None)

    def submit(self, ev: _Event, job: Job) -> None:
        self.pending.append((ev, job))

    def drain(self) -> None:
        jobs, self.pending = self.pending, []
        for start in range(0, len(jobs), _CHUNK):
            batch = jobs[start:start + _CHUNK]
            self.futures.append((batch, self.pool.submit(_check_batch, batch) if self.pool else None))
        for batch, future in self.futures:
            results = future.result() if future is not None else _check_batch(batch)
            for (ev, _job), result in zip(batch, results):
                ev.signature = result
        self.futures = []


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _check_batch(batch: list[tuple[_Event, Job]]) -> list[Check]:
    return [check(job) for _ev, job in batch]


def _chain_node(ev: _Event) -> ChainNode:
    content = ev.raw if ev.raw is not None else b"missing"
    event = ev.event
    signed_id = None
    if event is not None and must_be_signed(event.kind) and event.message_id is not None \
            and event.sender_id is not None:
        signed_id = (event.sender_id, event.message_id)
    return ChainNode(ev.index, ev.sequence_id, ev.previous_sequence_id, content,
                     from_meta=ev.from_meta,
                     is_key_change=event is not None and event.kind == "ConversationKeyChangeEvent",
                     signed_id=signed_id)


def _decode_generic_b64(text: str, limits: Limits) -> tuple[bytes, MessageEvent]:
    """``wire.decode_event_b64`` as it was: strict base64, then the generic reader only."""
    if not isinstance(text, str):
        raise MalformedEvent("encoded_event is not a string")
    if len(text) > limits.max_event_bytes * 4 // 3 + 4:
        raise MalformedEvent(
            f"encoded_event of {len(text)} characters exceeds the limit of "
            f"{limits.max_event_bytes} decoded bytes")
    raw = b64decode_strict(text, "encoded_event")
    return raw, decode_event_generic(raw, limits)


def _has_data(page: DecodedPage) -> bool:
    """A page with a data event (key changes in ``meta`` alone do not make a last page end anything)."""
    return any(not entry.from_meta for entry in page.entries)
