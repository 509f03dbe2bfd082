"""The verification engine: pages in, a ``Report`` out. Pure: no file or network I/O.

Per event it decodes, cross-checks the JSON envelope against the encoded event, rebuilds the
signed payload, picks the signer's key and checks the signature, then checks each conversation's
chain. ECDSA checks run in chunks on a thread pool once the pages are decoded (``cryptography``
releases the GIL inside OpenSSL, so they use every core).
"""

from __future__ import annotations

import gc
import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from .chain import ChainNode, ChainResult, analyse_chain, find_replays
from .ids import canonical_conversation
from .keys import (Keyring, UnusableKey, decode_signature, key_identity, parse_public_key,
                   verify_raw, version_key)
from .model import (ALLOWED_BY, FINDING_SEVERITY, REPORT_SCHEMA, STATUS_SEVERITY, ChainStatus, Check,
                    ConversationReport, EventReport, Finding, InputReport, Proof, Report, Severity,
                    SigStatus, fails)
from .pages import DecodedPage, ItemJson, RawEntry, decode_page
from .payload import (UNSIGNED_KINDS, PayloadUnavailable, build_payload, must_be_signed,
                      parse_signature_version)
from .wire import DEFAULT_LIMITS, Limits, MalformedEvent, MessageEvent, decode_event_b64

_CHUNK = 256


def default_workers() -> int:
    """Verification threads: one per CPU (at most 8); ECDSA releases the GIL so they run in parallel."""
    return min(8, os.cpu_count() or 1)


@dataclass
class PageInput:
    """A page body with a label for reports (file name, URL, ``stdin:3``) and, when known, the
    conversation it was fetched for (events of any other conversation are then a mismatch)."""

    source: str
    body: bytes | str | dict
    conversation_id: str | None = None


class _Event:
    """Working state of one input event; the identifying fields are resolved once in ``resolve``."""

    __slots__ = ("index", "entry", "raw", "event", "malformed", "conversation", "signature",
                 "findings", "sequence_id", "previous_sequence_id", "message_id", "sender_id",
                 "conversation_id", "trusted", "from_meta", "created_at")

    def __init__(self, index: int, entry: RawEntry) -> None:
        self.index, self.entry = index, entry
        self.raw: bytes | None = None  # SHA-256 of the encoded event: byte-identical repeats compare equal
        self.event: MessageEvent | None = None
        self.malformed = ""
        self.conversation = ""
        self.signature: Check | None = None
        self.findings: list[Finding] = []
        self.from_meta = entry.from_meta

    @property
    def item(self) -> ItemJson | None:
        return self.entry.item

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

    def add(self, code: str, message: str, severity: str | None = None) -> None:
        sev = severity or FINDING_SEVERITY.get(code) or STATUS_SEVERITY[code]
        self.findings.append(Finding(code, getattr(sev, "value", sev), message))


def verify_pages(pages: Iterable[PageInput | bytes | str | dict], keyring: Keyring | None = None, *,
                 conversation_keys: Mapping[str, bytes] | None = None,
                 allow_embedded_keys: bool = False, allow_empty: bool = False,
                 allow_partial: bool = False, strict: bool = False,
                 expected_conversation_id: str | None = None,
                 limits: Limits = DEFAULT_LIMITS, workers: int | None = None) -> Report:
    """Verify pages of ``GET /2/chat/conversations/{id}/events`` bodies; never raises per event.

    ``pages`` may hold raw bodies (bytes/str), parsed dicts, ``PageInput`` or already decoded pages.
    Fail closed: without a ``keyring`` the verdict is ``fail`` unless ``allow_embedded_keys``; an
    empty history, or one where no signature could be proven, fails unless ``allow_empty``.
    """
    verification = Verification(conversation_keys=conversation_keys, allow_embedded_keys=allow_embedded_keys,
                                allow_empty=allow_empty, allow_partial=allow_partial,
                                strict=strict, expected_conversation_id=expected_conversation_id,
                                limits=limits, workers=workers)
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
                 workers: int | None = None) -> None:
        policy = Policy(allow_embedded_keys=allow_embedded_keys, allow_empty=allow_empty,
                        allow_partial=allow_partial, strict=strict)
        self._run = _Run(None, conversation_keys or {}, policy,
                         canonical_conversation(expected_conversation_id), limits, workers)
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
            for member, _version, _key in _embedded_keys(ev.event):
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
            return self._run.execute()

    @property
    def keyring(self) -> Keyring | None:
        """The keyring ``finish`` verified with."""
        return self._run.keyring

    def event_facts(self) -> list["EventFacts"]:
        """After ``finish``: per event, in report index order, what the report does not carry but a
        ledger records (the event's digest, signature version, embedded keys, what it deletes)."""
        with _gc_paused():
            return [_facts(ev) for ev in self._run.events]


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
    def __init__(self, keyring, conversation_keys, policy: Policy, expected, limits, workers):
        self.keyring: Keyring | None = keyring
        self.conversation_keys = {version_key(k): v for k, v in conversation_keys.items()}
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

    # ---------------------------------------------------------------- orchestration
    def execute(self) -> Report:
        with _SignaturePipeline(self.workers) as pipeline:
            for ev in self.events:
                outcome = self._prepare(ev)
                if isinstance(outcome, Check):
                    ev.signature = outcome
                else:
                    pipeline.submit(ev, outcome)
            self._flag_embedded_key_conflicts()
            pipeline.drain()
        for ev in self.events:
            sev = STATUS_SEVERITY.get(ev.signature.status)
            if sev is not None:
                ev.add(ev.signature.status, ev.signature.detail)
        run_findings = self._run_findings()
        run_fails = any(fails(f.severity, self.strict) for f in run_findings)
        conversations = self._conversations(run_fails)
        if not conversations:
            run_findings.append(self._finding("no_events", "the input holds no events"))
        failed = any(c.verdict == "fail" for c in conversations) or \
            any(fails(f.severity, self.strict) for f in run_findings) or \
            any(i.errors for i in self.inputs) or (self.strict and any(i.api_errors for i in self.inputs))
        return Report(REPORT_SCHEMA, "fail" if failed else "pass", conversations, strict=self.strict,
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
            out.append(self._finding("unused_conversation_key", f"no key change in the input uses conversation "
                                                                f"key version {version}"))
        if self.keyring is None:
            out.append(self._finding("no_trusted_keys", "no keyring: signer keys were taken from the "
                                                        "events themselves and are not authenticated"))
        else:
            out += [self._finding(code, message) for code, message in self.keyring.findings]
            for message in self.keyring.errors:  # rows the run could not use: it is incomplete
                self.inputs.append(InputReport("keys", len(self.events), 0, [message]))
        return out

    def _conversation_findings(self, cid: str, reports: list[EventReport]) -> list[Finding]:
        out = []
        for reason in self.incomplete.get(cid, []):
            out.append(self._finding("incomplete", f"history not fetched to its end: {reason}"))
        if not reports:
            out.append(self._finding("no_events", "the conversation has no events"))
        elif not any(r.signature.status == "valid" for r in reports):
            out.append(self._finding("nothing_proven", f"none of its {len(reports)} events has a "
                                                       "proven signature"))
        return out

    def _proof(self, conversations: list[ConversationReport]) -> Proof:
        statuses = Counter(e.signature.status for c in conversations for e in c.events)
        events = sum(statuses.values())
        not_signed = statuses["not_signed"]
        proven, waiting = statuses["valid"], statuses["needs_conversation_key"]
        return Proof(events=events, signed=events - not_signed, proven=proven,
                     needs_conversation_key=waiting, unproven=events - not_signed - proven - waiting,
                     not_signed=not_signed, keys_authenticated=self.keyring is not None,
                     complete=not self.incomplete and not any(i.errors for i in self.inputs))

    def _load_page(self, page: DecodedPage) -> list[_Event]:
        first = len(self.events)
        page_events = [self._decode(len(self.events) + i, e) for i, e in enumerate(page.entries)]
        self.events += page_events
        self._assign_conversation(page_events, canonical_conversation(page.conversation_id) or self.expected)
        self.inputs.append(InputReport(page.source, first, len(page_events), list(page.errors),
                                       list(page.api_errors)))
        return page_events

    def _decode(self, index: int, entry: RawEntry) -> _Event:
        ev = _Event(index, entry)
        if entry.problem:
            ev.add("envelope_mismatch", entry.problem)
        if entry.encoded is None:
            ev.malformed = "encoded_event is missing"
        else:
            try:
                raw, ev.event = decode_event_b64(entry.encoded, self.limits)
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
            ev.add("meta_not_key_change", f"meta.conversation_key_events carries a "
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
                ev.add("conversation_mismatch",
                       f"event of conversation {conv} delivered in a page of {expected}")

    # ---------------------------------------------------------------- keys
    def _flag_embedded_key_conflicts(self) -> None:
        """Flag events whose embedded key for a (member, version) disagrees with another source."""
        carriers: dict[tuple[str, str, str], list[int]] = {}
        for ev in self.events:
            for triple in _embedded_keys(ev.event):
                carriers.setdefault(triple, []).append(ev.index)
        by_slot: dict[tuple[str, str], dict[bytes, list[int]]] = {}
        for (member, version, encoded), indices in carriers.items():
            by_slot.setdefault((member, version_key(version)), {}).setdefault(
                _identity(encoded), []).extend(indices)
        conflicts: set[tuple[int, str, str]] = set()
        for (member, version), identities in by_slot.items():
            trusted = self.keyring.lookup(member, version) if self.keyring is not None else None
            if trusted is not None and trusted.key is not None:
                reference = key_identity(trusted.key)
                bad = [i for ident, idx in identities.items() if ident != reference for i in idx]
            elif len(identities) > 1:
                bad = [i for idx in identities.values() for i in idx]
            else:
                bad = []
            conflicts.update((i, member, version) for i in bad)
        for index, member, version in sorted(conflicts):
            source = "the keyring" if self.keyring is not None and self.keyring.lookup(member, version) \
                else "other events"
            self.events[index].add("key_conflict", f"embedded key for user {member} version {version} "
                                                   f"differs from {source}")

    def _select_key(self, ev: _Event, event: MessageEvent) -> ec.EllipticCurvePublicKey | Check:
        sig = event.signature
        sender, version = event.sender_id or "", sig.public_key_version or ""
        if self.keyring is not None:
            trusted = self.keyring.lookup(sender, version)
            if trusted is not None:
                if trusted.status == "key_binding_invalid":
                    return Check("key_binding_invalid", trusted.problem)
                if trusted.key is None:
                    if trusted.status == "conflict":
                        ev.add("key_conflict", trusted.problem)
                    return Check("unknown_key", trusted.problem)
                return trusted.key
            if not self.allow_embedded:
                return Check("unknown_key", f"keyring has no key for user {sender} version {version}")
        encoded = _embedded_signer_key(event, sender, version)
        if encoded is None:
            where = "the keyring or the event" if self.keyring is not None else "the event (no keyring given)"
            return Check("unknown_key", f"no signing key for user {sender} version {version} in {where}")
        try:
            key = parse_public_key(encoded)
        except UnusableKey as exc:
            return Check("invalid", f"embedded signing key unusable: {exc}")
        if self.keyring is not None:
            ev.add("embedded_key_used", f"keyring lacks user {sender} version {version}; "
                                        "verified with the event's own key")
        return key

    # ---------------------------------------------------------------- signatures
    def _prepare(self, ev: _Event) -> Check | tuple:
        event = ev.event
        if event is None:
            return Check("malformed", ev.malformed)
        # The steps and their order follow the SDK's verify_event_signature, so every event gets the
        # SDK's verdict: 1. a kind that must be signed; 2. a signature; 3. a version of at least 2;
        # 4. the signer's key; 5. the payload; 6. ECDSA (in the pipeline).
        kind = event.kind
        if not must_be_signed(kind):
            return self._unsigned(ev, kind)
        if kind == "MessageCreateEvent":
            body = event.body or {}
            if body.get("contents") is None:
                # The SDK returns such an event as "Unknown" without checking anything; a signed
                # kind must not pass as unsigned, so it fails here.
                return Check("unverifiable", "MessageCreateEvent without contents: nothing signed can be "
                                             "checked (the SDK shows it as an unknown, unverified event)")
            if body.get("conversation_key_version") is None:
                # Found by the structural fuzzer: the SDK decides this before looking at the
                # signature version, so a downgraded version does not change the verdict.
                return Check("unverifiable", "unencrypted message (no conversation_key_version): never signed")
        sig = event.signature
        if sig is None or sig.signature is None:
            return Check("missing_signature", f"{kind} must be signed but has no signature")
        version, note = parse_signature_version(sig.signature_version)
        if version < 2:
            return Check("unsupported_version",
                         f"signature_version {version} is no longer accepted (minimum: 2)")
        key = self._select_key(ev, event)
        if isinstance(key, Check):
            return key
        try:
            payload = build_payload(event, version, self.conversation_keys)
        except PayloadUnavailable as exc:
            return Check(exc.status, exc.reason)
        detail = f"v{version}" + (f" ({note})" if note else "") + \
            f", key {event.sender_id}/{sig.public_key_version or ''}"
        return key, decode_signature(sig.signature), payload, detail

    def _unsigned(self, ev: _Event, kind: str | None) -> Check:
        if kind in UNSIGNED_KINDS:
            return Check("not_signed", f"{kind} is not signed by the protocol")
        what = "event has no detail" if kind is None else f"unknown event kind {kind}"
        ev.add("unknown_event_type", what)
        return Check("not_signed", what)

    # ---------------------------------------------------------------- envelope
    def _envelope_checks(self, ev: _Event) -> None:
        event, item = ev.event, ev.item
        if ev.trusted is False or (item is not None and item.is_trusted is False):
            ev.add("untrusted", "is_trusted is false")
        if event is None or item is None:
            return
        for problem in envelope_differences(item, event):
            ev.add("envelope_mismatch", problem)

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
            self.events[index].add("replay", detail)
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
        return ConversationReport(cid, "fail" if failed else "pass", counts, reports, findings,
                                  complete=cid not in self.incomplete)

    def _event_report(self, ev: _Event, chain: ChainResult) -> EventReport:
        sev = STATUS_SEVERITY.get(chain.status)
        if sev is not None:
            ev.add(chain.status, chain.detail, "info" if chain.info_only else sev)
        event = ev.event
        key_version = event.signature.public_key_version if event is not None and event.signature else None
        return EventReport(ev.index, ev.sequence_id, ev.previous_sequence_id, ev.message_id, ev.sender_id,
                           event.kind if event is not None else None, ev.signature,
                           Check(chain.status, chain.detail), ev.trusted, ev.findings, key_version, ev.created_at)


def _structure_findings(ev: _Event, event: MessageEvent) -> None:
    """Bytes the SDK reads past or over: it verifies what it reads, but another reader of the same
    bytes could show something else, so the event fails (its signature status stays the SDK's)."""
    if event.trailing:
        ev.add("trailing_bytes", f"{event.trailing} bytes after the end of the event are ignored "
                                 "by every check")
    if event.shadowed:
        hidden = ", ".join(k for k in event.shadowed)
        ev.add("shadowed_detail", f"the event carries its detail {len(event.shadowed) + 1} times; "
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
        self.pending: list = []
        self.futures: list[tuple[list, Future | None]] = []

    def __enter__(self) -> "_SignaturePipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=exc[0] is not None)

    def submit(self, ev: _Event, job: tuple) -> None:
        self.pending.append((ev, *job))

    def drain(self) -> None:
        jobs, self.pending = self.pending, []
        for start in range(0, len(jobs), _CHUNK):
            batch = jobs[start:start + _CHUNK]
            self.futures.append((batch, self.pool.submit(_check_batch, batch) if self.pool else None))
        for batch, future in self.futures:
            results = future.result() if future is not None else _check_batch(batch)
            for (ev, *_rest), check in zip(batch, results):
                ev.signature = check
        self.futures = []


@dataclass(frozen=True)
class EventFacts:
    """What ``Verification.event_facts`` gives per event (``index`` as in the report)."""

    index: int
    digest: bytes  # SHA-256 of the encoded event (of its text when it could not be decoded)
    signature_version: str | None
    embedded_keys: tuple[tuple[str, str, str], ...]  # (member, key version, signing key) carried by the event
    deletes: tuple[str, ...] = ()  # MessageDeleteEvent: the sequence ids it deletes
    clears: bool = False  # ConversationDeleteEvent: clears the history before it


def _facts(ev: _Event) -> EventFacts:
    event = ev.event
    sig = event.signature if event is not None else None
    deletes: tuple[str, ...] = ()
    clears = False
    if event is not None and event.kind == "MessageDeleteEvent":
        ids = (event.body or {}).get("sequence_ids") or ()
        deletes = tuple(i for i in ids if isinstance(i, str))
    elif event is not None and event.kind == "ConversationDeleteEvent":
        clears = True
    return EventFacts(ev.index, ev.raw or b"", sig.signature_version if sig is not None else None,
                      tuple(_embedded_keys(event)), deletes, clears)


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _check_batch(batch: list) -> list[Check]:
    out = []
    for _ev, key, sig, payload, detail in batch:
        ok, why = verify_raw(key, sig, payload)
        out.append(Check("valid", detail) if ok else Check("invalid", f"{why}; {detail}"))
    return out


def _embedded_keys(event: MessageEvent | None) -> list[tuple[str, str, str]]:
    if event is None or event.signature is None:
        return []
    sig = event.signature
    out = [(i.member_id, i.public_key_version or "", i.signing_public_key)
           for i in sig.message_signing_key_info_list or []
           if i.member_id is not None and i.signing_public_key is not None]
    if sig.signing_public_key is not None and event.sender_id is not None:
        out.append((event.sender_id, sig.public_key_version or "", sig.signing_public_key))
    return out


def _embedded_signer_key(event: MessageEvent, sender: str, version: str) -> str | None:
    sig = event.signature
    for info in sig.message_signing_key_info_list or ():
        if info.member_id == sender and info.signing_public_key is not None and \
                version_key(info.public_key_version) == version:
            return info.signing_public_key
    return sig.signing_public_key


@lru_cache(maxsize=4096)
def _identity(encoded: str) -> bytes:
    try:
        return key_identity(parse_public_key(encoded))
    except UnusableKey:
        return b"unparseable:" + encoded.encode()


def _chain_node(ev: _Event) -> ChainNode:
    content = ev.raw if ev.raw is not None else b"missing"
    event = ev.event
    signed = event is not None and must_be_signed(event.kind) and event.message_id is not None \
        and event.sender_id is not None
    return ChainNode(ev.index, ev.sequence_id, ev.previous_sequence_id, content,
                     from_meta=ev.from_meta,
                     is_key_change=event is not None and event.kind == "ConversationKeyChangeEvent",
                     signed_id=(event.sender_id, event.message_id) if signed else None)


def _iso_to_ms(text: str) -> int | None:
    try:
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return round(moment.timestamp() * 1000)


def envelope_differences(item: ItemJson, event: MessageEvent) -> list[str]:
    """Every JSON field with a Thrift twin must equal it; returns one message per difference."""
    problems: list[str] = []

    def same(name: str, json_value: Any, event_value: Any, show: bool = True) -> None:
        if json_value is not None and json_value != event_value:
            shown = f": JSON {json_value!r}, event {event_value!r}" if show else ""
            problems.append(f"{name} differs{shown}")

    same("sender_id", item.sender_id, event.sender_id)
    same("conversation_id", item.conversation_id, event.conversation_id)
    same("conversation_token", item.conversation_token, event.conversation_token, show=False)
    same("sequence_id", item.sequence_id, event.sequence_id)
    same("previous_sequence_id", item.previous_sequence_id, event.previous_sequence_id)
    same("previous_id", item.previous_id, event.previous_sequence_id)
    same("is_trusted", item.is_trusted, event.is_trusted)
    if item.id is not None and item.id not in (event.sequence_id, event.message_id):
        problems.append(f"id {item.id!r} is neither the sequence_id nor the message_id of the event")
    if item.created_at_msec is not None:
        same("created_at_msec", str(item.created_at_msec), event.created_at_msec)
    if item.created_at is not None:
        ms = _iso_to_ms(item.created_at)
        if ms is None or event.created_at_msec is None or str(ms) != event.created_at_msec:
            problems.append(f"created_at {item.created_at!r} does not match created_at_msec "
                            f"{event.created_at_msec!r} of the event")
    problems += _signature_differences(item, event)
    return problems


def _signature_differences(item: ItemJson, event: MessageEvent) -> list[str]:
    js = item.message_event_signature
    if js is None:
        return []
    sig = event.signature
    if sig is None:
        return ["message_event_signature present in JSON but absent from the event"]
    problems = []
    for name in ("signature", "public_key_version", "signature_version", "signing_public_key"):
        value = getattr(js, name)
        if value is not None and value != getattr(sig, name):
            problems.append(f"message_event_signature.{name} differs: JSON {value!r}, "
                            f"event {getattr(sig, name)!r}")
    if js.message_signing_key_info_list is not None:
        as_json = [(i.member_id, i.public_key_version, i.signing_public_key)
                   for i in js.message_signing_key_info_list]
        as_event = [(i.member_id, i.public_key_version, i.signing_public_key)
                    for i in sig.message_signing_key_info_list or []]
        if as_json != as_event:
            problems.append("message_event_signature.message_signing_key_info_list differs from the event")
    return problems
