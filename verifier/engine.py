"""The verification engine: pages in, a ``Report`` out. Pure: no file or network I/O.

Orchestration only; each step lives in its own module:

1. decode every event exactly as the SDK does (``wire``: a fast path for the common shape, the
   generic reader for anything else) and cross-check its JSON envelope (``envelope``), page by page
   as pages arrive, into compact columns (``columns``: about 100 bytes an event, whatever the
   event's size);
2. per event, the SDK's signature steps up to the payload (``signature.prepare``, choosing the key
   with ``signers``), then the ECDSA checks in chunks on a thread pool (``cryptography`` releases
   the GIL inside OpenSSL). When the keys are known from the start (``verify_pages``) a chunk is
   checked as soon as its pages are decoded and nothing of the event is kept; otherwise (the
   audit learns its keys last) the encoded event waits, and is decoded again by ``finish``;
3. per conversation, the chain and replays (``chain``: one pass over sorted positions for the usual
   single linked chain, the full analysis for anything else);
4. findings about whole conversations and the run, fail closed (``Policy``), and the ``Report``:
   its events are built from the columns on access (``EventList``), so a renderer can stream a
   report of millions of events.

The cyclic garbage collector is off for a whole verification: the engine makes no reference
cycles, and a collector walking the growing heap after every page cost as much as the decoding.
"""

from __future__ import annotations

import gc
import hashlib
import os
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, overload

from .chain import ChainNode, ChainResult, analyse_chain, find_replays
from .columns import Ids, Interned
from .envelope import envelope_differences
from .errors import MalformedEvent
from .ids import canonical_conversation
from .keys import Keyring, version_key
from .model import (
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
from .pages import DecodedPage, RawEntry, decode_page
from .payload import must_be_signed
from .signature import Job, check, prepare
from .signers import conflicts_by_slot, embedded_keys
from .wire import DEFAULT_LIMITS, Limits, MessageEvent, decode_event_b64, decode_event_bytes

_CHUNK = 256  # ECDSA checks per pool task
_FLUSH = 2048  # checks gathered before they are handed to the pool (eager mode)
KEY_CHANGE = "ConversationKeyChangeEvent"

# Finding stages: an event's findings are reported in the order the steps that raise them run.
_DECODED, _KEY_CONFLICTS, _REVIEWED, _REPLAYED = 0, 1, 3, 4
# flags
_DECODED_OK, _FROM_META, _IS_KEY_CHANGE, _SIGNED_KIND, _NOT_ENCODED = 1, 2, 4, 8, 16
_TRUSTED = {None: 0, False: 1, True: 2}
_TRUSTED_VALUE = (None, False, True)
_CHAIN_CODES = list(ChainStatus)
_CHAIN_INDEX = {status: code for code, status in enumerate(_CHAIN_CODES)}
_LINKED = ChainStatus.LINKED
_INFO = Severity.INFO.value


def default_workers() -> int:
    """Verification threads: one per CPU this process may run on (at most 8); ECDSA releases the GIL."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


@dataclass
class PageInput:
    """A page body with a label for reports (file name, URL, ``stdin:3``) and, when known, the
    conversation it was fetched for (events of any other conversation are then a mismatch)."""

    source: str
    body: bytes | str | dict[str, Any]
    conversation_id: str | None = None


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

    A reviewer may declare ``reads_kinds`` (a set of event kinds): then only events of those kinds
    keep their decoded ``MessageEvent`` (the others show a stand-in with the kind alone) and it
    promises ``conversation_keys`` returns nothing, so signatures can be checked as pages arrive.
    """

    def conversation_keys(self, records: Sequence[Any], keyring: Keyring | None) -> Mapping[str, bytes]: ...

    def review(self, records: Sequence[Any], keyring: Keyring | None) -> list[tuple[str, str]]: ...


def default_reviewers() -> tuple[Reviewer, ...]:
    """The checks every verification runs: what signed events claim about other events."""
    from .semantics import SignedChecks
    return (SignedChecks(),)


def verify_pages(pages: Iterable[PageInput | DecodedPage | bytes | str | dict[str, Any]], keyring: Keyring | None = None, *,
                 conversation_keys: Mapping[str, bytes] | None = None,
                 allow_embedded_keys: bool = False, allow_empty: bool = False,
                 allow_partial: bool = False, strict: bool = False,
                 expected_conversation_id: str | None = None,
                 limits: Limits = DEFAULT_LIMITS, workers: int | None = None,
                 reviewers: Sequence[Reviewer] | None = None, lazy: bool = False) -> Report:
    """Verify pages of ``GET /2/chat/conversations/{id}/events`` bodies; never raises per event.

    ``pages`` may hold raw bodies (bytes/str), parsed dicts, ``PageInput`` or already decoded pages.
    Fail closed: without a ``keyring`` the verdict is ``fail`` unless ``allow_embedded_keys``; an
    empty history, or one where no signature could be proven, fails unless ``allow_empty``.
    ``reviewers`` replace the default checks (``default_reviewers()``); see ``Reviewer``.
    ``lazy``: each conversation's ``events`` is an ``EventList`` that builds its ``EventReport``s on
    access (constant memory per event; what the CLI uses) instead of a list.
    """
    verification = Verification(conversation_keys=conversation_keys, allow_embedded_keys=allow_embedded_keys,
                                allow_empty=allow_empty, allow_partial=allow_partial,
                                strict=strict, expected_conversation_id=expected_conversation_id,
                                limits=limits, workers=workers, reviewers=reviewers)
    verification._run.keep_facts = False  # this Verification is never returned: no event_facts
    with gc_paused():
        verification._run.know_keyring(keyring)
        try:
            for page in pages:
                verification._add(page)
        except BaseException:  # an interrupt or a failing page source: no idle threads left behind
            verification._run.close()
            raise
        return verification._finish(keyring, lazy)


class Verification:
    """Incremental form of ``verify_pages``: decode pages as they arrive, verify once keys are known.

    The fetcher feeds pages while later pages are still downloading, learns the participants from
    ``user_ids()``, fetches their keys, then calls ``finish(keyring)``.
    """

    def __init__(self, *, conversation_keys: Mapping[str, bytes] | None = None,
                 allow_embedded_keys: bool = False, allow_empty: bool = False,
                 allow_partial: bool = False, strict: bool = False,
                 expected_conversation_id: str | None = None, limits: Limits = DEFAULT_LIMITS,
                 workers: int | None = None, reviewers: Sequence[Reviewer] | None = None) -> None:
        policy = Policy(allow_embedded_keys=allow_embedded_keys, allow_empty=allow_empty,
                        allow_partial=allow_partial, strict=strict)
        self._run = _Run(conversation_keys or {}, policy, canonical_conversation(expected_conversation_id), limits,
                         workers, tuple(default_reviewers() if reviewers is None else reviewers))
        self._pages = 0

    def add_page(self, page: Any) -> None:
        with gc_paused():
            self._add(page)

    def _add(self, page: Any) -> None:
        self._run.load_page(_as_decoded(page, self._pages))
        self._pages += 1

    @property
    def event_count(self) -> int:
        return self._run.count

    def user_ids(self) -> list[str]:
        """Every sender and signing-key member named by the decoded events, in first-seen order."""
        return list(self._run.users)

    def add_input_error(self, source: str, message: str) -> None:
        """Record an input that could not be obtained in full (the report is then incomplete)."""
        self._run.inputs.append(InputReport(source, self._run.count, 0, [message]))

    def expect_conversation(self, conversation_id: str) -> None:
        """Name a conversation the caller asked for: it is reported even if it has no events
        (then it fails with ``no_events`` unless ``allow_empty``)."""
        self._run.expected_conversations.setdefault(canonical_conversation(conversation_id) or "unknown")

    def mark_incomplete(self, conversation_id: str | None, reason: str) -> None:
        """The history of ``conversation_id`` was not fetched to its end (a page limit, an interrupted
        or failed fetch): it fails with ``incomplete`` unless ``allow_partial``."""
        cid = canonical_conversation(conversation_id) or self._run.expected or "unknown"
        self._run.incomplete.setdefault(cid, []).append(reason)

    def finish(self, keyring: Keyring | None = None, *, lazy: bool = False) -> Report:
        with gc_paused():
            return self._finish(keyring, lazy)

    @property
    def keyring(self) -> Keyring | None:
        """The keyring ``finish`` verified with."""
        return self._run.keyring

    def event_facts(self) -> list[EventFacts]:
        """After ``finish``: per event, in report index order, what the report does not carry but a
        ledger records (the event's digest, signature version, embedded keys, what it deletes)."""
        with gc_paused():
            return [self._run.facts(index) for index in range(self._run.count)]

    def _finish(self, keyring: Keyring | None, lazy: bool) -> Report:
        run = self._run
        run.keyring = keyring
        if not run.eager:
            for reviewer in run.reviewers:  # keys learned before any signature is checked
                for version, key in reviewer.conversation_keys(run.records, keyring).items():
                    run.conversation_keys.setdefault(version_key(version), key)
        return run.execute(lazy)


@contextmanager
def gc_paused() -> Iterator[None]:
    """The engine allocates many small acyclic objects: the cyclic collector is paused while it
    runs (for a whole ``verify_pages``, not page by page). It is re-enabled even on error."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_gc_paused = gc_paused  # the name the ledger imports


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


def _severity(code: str, severity: str | None) -> str:
    sev = severity or FINDING_SEVERITY.get(code) or STATUS_SEVERITY[code]
    return str(getattr(sev, "value", sev))


class Record:
    """One event as a reviewer sees it (``Reviewer``): a view of the engine's columns."""

    __slots__ = ("_run", "index")

    def __init__(self, run: _Run, index: int) -> None:
        self._run = run
        self.index = index

    @property
    def conversation(self) -> str:
        return self._run.conversation[self.index]

    @property
    def event(self) -> MessageEvent | None:
        return self._run.event_of(self.index)

    @property
    def from_meta(self) -> bool:
        return bool(self._run.flags[self.index] & _FROM_META)

    @property
    def sequence_id(self) -> str | None:
        return self._run.seq[self.index]

    @property
    def sender_id(self) -> str | None:
        return self._run.sender[self.index]

    @property
    def previous_sequence_id(self) -> str | None:
        return self._run.prev[self.index]

    @property
    def message_id(self) -> str | None:
        return self._run.message_id[self.index]

    @property
    def trusted(self) -> bool | None:
        return _TRUSTED_VALUE[self._run.trusted[self.index]]

    @property
    def created_at(self) -> str | None:
        return self._run.created[self.index]

    @property
    def signature(self) -> Check | None:
        code = self._run.sig_codes[self.index]
        return self._run.check_objects[code - 1] if code else None

    def add(self, code: str, message: str, severity: str | None = None) -> None:
        self._run.add(self.index, _REVIEWED, code, message, severity)


class _Records(Sequence[Record]):
    """Every event's ``Record`` in input order; the views are made once, when first read."""

    def __init__(self, run: _Run) -> None:
        self._run = run
        self._list: list[Record] | None = None

    @property
    def kinds_present(self) -> set[str | None]:
        """The event kinds of the run (a reviewer can tell it has nothing to do without reading)."""
        return {self._run.kind.value_of(code) for code in set(self._run.kind.codes())}

    def _views(self) -> list[Record]:
        if self._list is None:
            self._list = [Record(self._run, i) for i in range(self._run.count)]
        return self._list

    def __len__(self) -> int:
        return self._run.count

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Record]: ...

    def __getitem__(self, index: int | slice) -> Record | Sequence[Record]:
        return self._views()[index]

    def __iter__(self) -> Iterator[Record]:
        return iter(self._views())


class _Run:
    """The state of one verification, in columns (``verifier.columns``)."""

    def __init__(self, conversation_keys: Mapping[str, bytes], policy: Policy, expected: str, limits: Limits,
                 workers: int | None, reviewers: tuple[Reviewer, ...]) -> None:
        self.keyring: Keyring | None = None
        self.conversation_keys = {version_key(k): v for k, v in conversation_keys.items()}
        self.policy = policy
        self.allow_embedded = policy.allow_embedded_keys
        self.strict = policy.strict
        self.expected = expected
        self.limits = limits
        self.workers = workers if workers is not None else default_workers()
        self.reviewers = reviewers
        kinds = [getattr(r, "reads_kinds", None) for r in reviewers]
        self.kept_kinds: frozenset[str | None] | None = None
        if all(k is not None for k in kinds):  # only these kinds are read: keep only them
            always = {"MessageDeleteEvent", *([KEY_CHANGE] if conversation_keys else [])}  # deletes: event_facts
            self.kept_kinds = frozenset(always).union(*kinds)  # type: ignore[arg-type]
        self.eager = False  # signatures checked as pages arrive (keyring known, no reviewer learns keys)
        self.records = _Records(self)
        self.inputs: list[InputReport] = []
        self.expected_conversations: dict[str, None] = {}  # asked for by the caller, in order
        self.incomplete: dict[str, list[str]] = {}
        self.users: dict[str, None] = {}
        # columns, one entry per event
        self.count = 0
        self.seq, self.prev, self.message_id, self.created = Ids(), Ids(), Ids(uuids=True), Ids()
        self.sender: Interned[str | None] = Interned()
        self.conversation: Interned[str] = Interned()
        self.kind: Interned[str | None] = Interned()
        self.key_version: Interned[str | None] = Interned()
        self.keep_facts = True  # keep what event_facts gives the ledger (not needed by verify_pages)
        self.signature_version: Interned[str | None] = Interned()
        self.embedded: Interned[tuple[tuple[str, str, str], ...]] = Interned()
        self.check_codes: dict[tuple[str, str], int] = {}  # one Check object per distinct outcome
        self.check_objects: list[Check] = []
        self.sig_codes = array("I")  # 1 + the check's code; 0 while pending
        self.trusted = bytearray()
        self.flags = bytearray()
        self.digests = bytearray()  # SHA-256 of each encoded event (32 bytes each)
        self.findings: dict[int, list[tuple[int, Finding]]] = {}
        self.kept: dict[int, MessageEvent] = {}  # decoded events a reviewer reads
        self.waiting: dict[int, bytes] = {}  # encoded events whose signature waits for the keys
        self.carriers: dict[tuple[str, str, str], array[int]] = {}  # embedded key -> events carrying it
        self.jobs: list[tuple[int, Job]] = []
        self.pool: ThreadPoolExecutor | None = None

    def know_keyring(self, keyring: Keyring | None) -> None:
        """The keys are known before the first page: check signatures as pages arrive."""
        self.keyring = keyring
        self.eager = self.kept_kinds is not None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def add(self, index: int, stage: int, code: str, message: str, severity: str | None = None) -> None:
        self.findings.setdefault(index, []).append((stage, Finding(code, _severity(code, severity), message)))

    def event_of(self, index: int) -> MessageEvent | None:
        event = self.kept.get(index)
        if event is not None or not self.flags[index] & _DECODED_OK:
            return event
        return MessageEvent(kind=self.kind[index])  # a kind no reviewer reads: the kind alone

    # ---------------------------------------------------------------- pages
    def load_page(self, page: DecodedPage) -> None:
        first = self.count
        events = [self._decode(entry) for entry in page.entries]
        self._assign_conversation(first, canonical_conversation(page.conversation_id) or self.expected)
        if self.eager:
            for index, event in enumerate(events, first):
                self._prepare(index, event)
            if len(self.jobs) >= _FLUSH:
                self._check_jobs()
        self.inputs.append(InputReport(page.source, first, self.count - first, list(page.errors),
                                       list(page.api_errors)))

    def _decode(self, entry: RawEntry) -> MessageEvent | None:
        index = self.count
        self.count += 1
        if entry.problem:
            self.add(index, _DECODED, Code.ENVELOPE_MISMATCH, entry.problem)
        event: MessageEvent | None = None
        malformed = ""
        raw: bytes | None = None
        if entry.encoded is None:
            malformed = "encoded_event is missing"
        else:
            try:
                raw, event = decode_event_b64(entry.encoded, self.limits)
            except MalformedEvent as exc:
                malformed = str(exc)
            except RecursionError:  # defence in depth; the depth limit should stop this first
                malformed = "nesting too deep"
        self.digests += hashlib.sha256(raw if raw is not None else repr(entry.encoded).encode()).digest()
        item = entry.item
        source: Any = event if event is not None else item
        if event is not None:
            seq, prev = event.sequence_id, event.previous_sequence_id
            sender, trusted, kind = event.sender_id, event.is_trusted, event.kind
            self._structure_findings(index, event)
        else:
            seq = item.seq if item is not None else None
            prev = item.prev if item is not None else None
            sender, trusted, kind = getattr(source, "sender_id", None), getattr(source, "is_trusted", None), None
        if sender:
            self.users.setdefault(sender)
        self.seq.append(seq)
        self.prev.append(prev)
        self.message_id.append(getattr(source, "message_id", None))
        created = getattr(source, "created_at_msec", None)
        self.created.append(created if isinstance(created, str) or created is None else str(created))
        self.sender.append(sender)
        self.trusted.append(_TRUSTED[trusted])
        self.kind.append(kind)
        self.conversation.append(getattr(source, "conversation_id", None) or "")  # replaced by the page's below
        signature = event.signature if event is not None else None
        self.key_version.append(signature.public_key_version if signature is not None else None)
        if self.keep_facts:
            self.signature_version.append(signature.signature_version if signature is not None else None)
        flags = (_FROM_META if entry.from_meta else 0) | (_NOT_ENCODED if entry.encoded is None else 0)
        if event is not None:
            flags |= _DECODED_OK
            if kind == KEY_CHANGE:
                flags |= _IS_KEY_CHANGE
            if must_be_signed(kind):
                flags |= _SIGNED_KIND
            if entry.from_meta and kind != KEY_CHANGE:
                self.add(index, _DECODED, Code.META_NOT_KEY_CHANGE, f"meta.conversation_key_events carries a "
                                                                   f"{kind or 'detail-less event'}, not a key change")
        self._note_keys(index, event)
        self.flags.append(flags)
        if trusted is False or (item is not None and item.is_trusted is False):
            self.add(index, _DECODED, Code.UNTRUSTED, "is_trusted is false")
        if event is not None and item is not None:
            for problem in envelope_differences(item, event):
                self.add(index, _DECODED, Code.ENVELOPE_MISMATCH, problem)
        self.sig_codes.append(0)
        if event is None:
            self._set_check(index, Check(SigStatus.MALFORMED, malformed))
        elif self.kept_kinds is None or kind in self.kept_kinds:
            self.kept[index] = event
        elif not self.eager and raw is not None:
            self.waiting[index] = raw  # decoded again once the keys are known
        return event

    def _note_keys(self, index: int, event: MessageEvent | None) -> None:
        triples = embedded_keys(event)
        if self.keep_facts:
            self.embedded.append(tuple(triples))
        for triple in triples:
            self.users.setdefault(triple[0])
            self.carriers.setdefault(triple, array("I")).append(index)

    def facts(self, index: int) -> EventFacts:
        kind, event = self.kind[index], self.kept.get(index)
        deletes: tuple[str, ...] = ()
        if kind == "MessageDeleteEvent" and event is not None:
            deletes = tuple(i for i in (event.body or {}).get("sequence_ids") or () if isinstance(i, str))
        digest = b"" if self.flags[index] & _NOT_ENCODED else bytes(self.digests[32 * index:32 * index + 32])
        return EventFacts(index, digest, self.signature_version[index], self.embedded[index], deletes,
                          kind == "ConversationDeleteEvent")

    def _structure_findings(self, index: int, event: MessageEvent) -> None:
        """Bytes the SDK reads past or over: it verifies what it reads, but another reader of the same
        bytes could show something else, so the event fails (its signature status stays the SDK's)."""
        if event.trailing:
            self.add(index, _DECODED, Code.TRAILING_BYTES, f"{event.trailing} bytes after the end of the event are "
                                                          "ignored by every check")
        if event.shadowed:
            hidden = ", ".join(k for k in event.shadowed)
            self.add(index, _DECODED, Code.SHADOWED_DETAIL, f"the event carries its detail {len(event.shadowed) + 1} "
                                                           f"times; the SDK reads only the last "
                                                           f"({event.kind or 'none'}), hiding {hidden}")

    def _assign_conversation(self, first: int, expected: str) -> None:
        own = [canonical_conversation(self.conversation[i]) for i in range(first, self.count)]
        if not expected:
            counted = Counter(c for c in own if c)
            expected = counted.most_common(1)[0][0] if counted else "unknown"
        for index, conv in enumerate(own, first):
            self.conversation.set(index, expected)
            if conv and conv != expected:
                self.add(index, _DECODED, Code.CONVERSATION_MISMATCH,
                         f"event of conversation {conv} delivered in a page of {expected}")

    # ---------------------------------------------------------------- signatures
    def _set_check(self, index: int, result: Check) -> None:
        key = (result.status, result.detail)
        code = self.check_codes.get(key)
        if code is None:
            code = self.check_codes[key] = len(self.check_objects)
            self.check_objects.append(result)
        self.sig_codes[index] = 1 + code

    def _prepare(self, index: int, event: MessageEvent | None) -> None:
        if event is None:  # malformed: its check is set
            return
        outcome = prepare(event, self.keyring, self.allow_embedded, self.conversation_keys,
                          lambda code, message: self.add(index, _DECODED, code, message))
        if isinstance(outcome, Check):
            self._set_check(index, outcome)
        else:
            self.jobs.append((index, outcome))

    def _check_jobs(self) -> None:
        jobs, self.jobs = self.jobs, []
        batches = [jobs[start:start + _CHUNK] for start in range(0, len(jobs), _CHUNK)]
        if self.workers > 1 and len(batches) > 1:
            if self.pool is None:
                self.pool = ThreadPoolExecutor(self.workers)
            results = list(self.pool.map(_check_batch, batches))
        else:
            results = [_check_batch(batch) for batch in batches]
        for batch, checks in zip(batches, results):
            for (index, _job), result in zip(batch, checks):
                self._set_check(index, result)

    def _check_waiting(self) -> None:
        """Keys are known now: every event not checked yet, in input order (waiting ones are decoded
        again, on the fast path)."""
        if self.eager:
            return
        waiting, self.waiting = self.waiting, {}
        codes = self.sig_codes
        for index in range(self.count):
            if codes[index] == 0:
                event = self.kept.get(index)
                self._prepare(index, event if event is not None else decode_event_bytes(waiting.pop(index), self.limits))
                if len(self.jobs) >= _FLUSH:
                    self._check_jobs()

    # ---------------------------------------------------------------- orchestration
    def execute(self, lazy: bool) -> Report:
        try:
            self._check_waiting()
            self._check_jobs()
        finally:
            self.close()
        for index, message in conflicts_by_slot(self.carriers, self.keyring):
            self.add(index, _KEY_CONFLICTS, Code.KEY_CONFLICT, message)
        self.carriers = {}
        reviewed = [self._finding(code, message) for reviewer in self.reviewers
                    for code, message in reviewer.review(self.records, self.keyring)]
        run_findings = self._run_findings() + reviewed
        run_fails = any(fails(f.severity, self.strict) for f in run_findings)
        conversations = self._conversations(run_fails, lazy)
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
        used = {e.body.get("conversation_key_version") for e in self._key_changes() if e.body}
        for version in sorted(set(self.conversation_keys) - used):
            out.append(self._finding(Code.UNUSED_CONVERSATION_KEY, f"no key change in the input uses conversation "
                                                                f"key version {version}"))
        if self.keyring is None:
            out.append(self._finding(Code.NO_TRUSTED_KEYS, "no keyring: signer keys were taken from the "
                                                        "events themselves and are not authenticated"))
        else:
            out += [self._finding(code, message) for code, message in self.keyring.findings]
            for message in self.keyring.errors:  # rows the run could not use: it is incomplete
                self.inputs.append(InputReport("keys", self.count, 0, [message]))
        return out

    def _key_changes(self) -> Iterator[MessageEvent]:
        if not self.conversation_keys:
            return
        for index in range(self.count):
            if self.flags[index] & _IS_KEY_CHANGE:
                event = self.kept.get(index)  # key changes are kept whenever conversation keys are given
                if event is not None:
                    yield event

    def _proof(self, conversations: list[ConversationReport]) -> Proof:
        statuses = self.sig_tally
        events = sum(len(c.events) for c in conversations)
        not_signed = statuses[SigStatus.NOT_SIGNED]
        proven, waiting = statuses[SigStatus.VALID], statuses[SigStatus.NEEDS_CONVERSATION_KEY]
        return Proof(events=events, signed=events - not_signed, proven=proven,
                     needs_conversation_key=waiting, unproven=events - not_signed - proven - waiting,
                     not_signed=not_signed, keys_authenticated=self.keyring is not None,
                     complete=not self.incomplete and not any(i.errors for i in self.inputs))

    # ---------------------------------------------------------------- chain and report
    def _conversations(self, run_fails: bool, lazy: bool) -> list[ConversationReport]:
        """Conversations the caller expected (even with no events) first, then any others seen."""
        groups: dict[str, array[int]] = {cid: array("I") for cid in self.expected_conversations}
        for cid in self.incomplete:
            groups.setdefault(cid, array("I"))
        codes = self.conversation.codes()
        by_code: dict[int, array[int]] = {}
        for index in range(self.count):
            code = codes[index]
            members = by_code.get(code)
            if members is None:
                members = by_code[code] = groups.setdefault(self.conversation.value_of(code), array("I"))
            members.append(index)
        self.chain_codes = bytearray(self.count)
        self.chain_details: dict[int, tuple[str, bool]] = {}
        self.sig_tally: Counter[str] = Counter()
        return [self._conversation(cid, members, run_fails, lazy) for cid, members in groups.items()]

    def _conversation(self, cid: str, members: array[int], run_fails: bool, lazy: bool) -> ConversationReport:
        self._chain(members)
        counts: dict[str, int] = {s.value: 0 for s in SigStatus}
        counts.update({s.value: 0 for s in ChainStatus})
        events = EventList(self, members)
        failed_event = False
        sig_status = [c.status for c in self.check_objects]
        sig_tally = Counter(self.sig_codes[i] for i in members)
        chain_tally = Counter(self.chain_codes[i] for i in members)
        for code, n in sig_tally.items():
            counts[sig_status[code - 1]] += n
            self.sig_tally[sig_status[code - 1]] += n
        for code, n in chain_tally.items():
            counts[_CHAIN_CODES[code]] += n
        quiet_sig = {code for code in sig_tally if sig_status[code - 1] not in STATUS_SEVERITY}
        quiet_chain = {code for code in chain_tally if _CHAIN_CODES[code] not in STATUS_SEVERITY}
        staged, sig_codes, chain_codes = self.findings, self.sig_codes, self.chain_codes
        reports = None if lazy else list(events)  # built once; their findings are counted below
        for position, index in enumerate(members):
            if index not in staged and sig_codes[index] in quiet_sig and chain_codes[index] in quiet_chain:
                continue  # no finding
            for f in self.event_findings(index) if reports is None else reports[position].findings:
                if f.code not in STATUS_SEVERITY:
                    counts[f.code] = counts.get(f.code, 0) + 1
                failed_event = failed_event or fails(f.severity, self.strict)
        findings = self._conversation_findings(cid, members)
        for f in findings:
            counts[f.code] = counts.get(f.code, 0) + 1
        # A conversation passes only on its own proof and a sound run (trusted keys, ...).
        failed = run_fails or any(fails(f.severity, self.strict) for f in findings) or failed_event
        return ConversationReport(cid, Verdict.FAIL if failed else Verdict.PASS, counts,
                                  events if reports is None else reports, findings,  # type: ignore[arg-type]
                                  complete=cid not in self.incomplete)

    def _conversation_findings(self, cid: str, members: array[int]) -> list[Finding]:
        out = []
        for reason in self.incomplete.get(cid, []):
            out.append(self._finding(Code.INCOMPLETE, f"history not fetched to its end: {reason}"))
        if not members:
            out.append(self._finding(Code.NO_EVENTS, "the conversation has no events"))
        elif not any(self.check_objects[self.sig_codes[i] - 1].status == SigStatus.VALID for i in members):
            out.append(self._finding(Code.NOTHING_PROVEN, f"none of its {len(members)} events has a "
                                                       "proven signature"))
        return out

    def _chain(self, members: array[int]) -> None:
        from .fastchain import linear_chain
        results = linear_chain(self, members)
        if results is None:
            nodes = [self._chain_node(i) for i in members]
            chain = analyse_chain(nodes)
            for index, detail in find_replays(nodes).items():
                self.add(index, _REPLAYED, Code.REPLAY, detail)
            del nodes
            for index, result in chain.items():
                self._set_chain(index, result)
        else:
            for index, detail in results.items():
                self.add(index, _REPLAYED, Code.REPLAY, detail)

    def _set_chain(self, index: int, result: ChainResult) -> None:
        self.chain_codes[index] = _CHAIN_INDEX[result.status]
        if result.status != _LINKED or result.info_only or result.detail != f"follows {self.prev[index]}":
            self.chain_details[index] = (result.detail, result.info_only)

    def chain_of(self, index: int) -> ChainResult:
        status = _CHAIN_CODES[self.chain_codes[index]]
        detail = self.chain_details.get(index)
        if detail is None:
            return ChainResult(status, f"follows {self.prev[index]}")
        return ChainResult(status, detail[0], detail[1])

    def _chain_node(self, index: int) -> ChainNode:
        flags = self.flags[index]
        content = bytes(self.digests[32 * index:32 * index + 32])
        signed_id = None
        if flags & _SIGNED_KIND:
            sender, message_id = self.sender[index], self.message_id[index]
            if sender is not None and message_id is not None:
                signed_id = (sender, message_id)
        return ChainNode(index, self.seq[index], self.prev[index], content, from_meta=bool(flags & _FROM_META),
                         is_key_change=bool(flags & _IS_KEY_CHANGE), signed_id=signed_id)

    def event_findings(self, index: int) -> list[Finding]:
        """An event's findings in report order: decoding and envelope, key conflicts, the signature's
        status, reviewers, replays, the chain's status."""
        staged = self.findings.get(index)
        out = []
        result = self.check_objects[self.sig_codes[index] - 1]
        sig_sev = STATUS_SEVERITY.get(result.status)
        if staged:
            staged = sorted(staged, key=lambda sf: sf[0])
            out = [f for stage, f in staged if stage < _REVIEWED]
        if sig_sev is not None:
            out.append(Finding(result.status, sig_sev.value, result.detail))
        if staged:
            out += [f for stage, f in staged if stage >= _REVIEWED]
        chain = _CHAIN_CODES[self.chain_codes[index]]
        chain_sev = STATUS_SEVERITY.get(chain)
        if chain_sev is not None:
            result_chain = self.chain_of(index)
            out.append(Finding(chain, _INFO if result_chain.info_only else chain_sev.value,
                               result_chain.detail))
        return out

    def event_report(self, index: int) -> EventReport:
        chain = self.chain_of(index)
        return EventReport(index, self.seq[index], self.prev[index], self.message_id[index], self.sender[index],
                           self.kind[index], self.check_objects[self.sig_codes[index] - 1],
                           Check(chain.status, chain.detail), _TRUSTED_VALUE[self.trusted[index]],
                           self.event_findings(index), self.key_version[index], self.created[index])


class EventList(Sequence[EventReport]):
    """A conversation's events, each ``EventReport`` built from the engine's columns when read
    (``verify_pages(..., lazy=True)``): what a report of millions of events is rendered from."""

    def __init__(self, run: _Run, indices: array[int]) -> None:
        self._run = run
        self._indices = indices

    def __len__(self) -> int:
        return len(self._indices)

    @overload
    def __getitem__(self, index: int) -> EventReport: ...

    @overload
    def __getitem__(self, index: slice) -> list[EventReport]: ...

    def __getitem__(self, index: int | slice) -> EventReport | list[EventReport]:
        if isinstance(index, slice):
            return [self._run.event_report(i) for i in self._indices[index]]
        return self._run.event_report(self._indices[index])

    def __iter__(self) -> Iterator[EventReport]:
        report = self._run.event_report
        for index in self._indices:
            yield report(index)


def _as_decoded(page: Any, number: int) -> DecodedPage:
    if isinstance(page, DecodedPage):
        return page
    if isinstance(page, PageInput):
        decoded = decode_page(page.body, page.source)
        decoded.conversation_id = page.conversation_id
        return decoded
    return decode_page(page, f"page {number + 1}")


def _check_batch(batch: list[tuple[int, Job]]) -> list[Check]:
    return [check(job) for _index, job in batch]


@dataclass(frozen=True)
class EventFacts:
    """What ``Verification.event_facts`` gives per event (``index`` as in the report)."""

    index: int
    digest: bytes  # SHA-256 of the encoded event (of its text when it could not be decoded)
    signature_version: str | None
    embedded_keys: tuple[tuple[str, str, str], ...]  # (member, key version, signing key) carried by the event
    deletes: tuple[str, ...] = ()  # MessageDeleteEvent: the sequence ids it deletes
    clears: bool = False  # ConversationDeleteEvent: clears the history before it


__all__ = ["PageInput", "Reviewer", "Record", "EventList", "EventFacts", "Verification", "verify_pages",
           "default_reviewers", "default_workers", "Policy", "gc_paused"]
