"""The coordinator: plan the tasks, run both phases on an executor, assemble one Report.

The Report is the one ``verify`` gives for the same inputs, byte for byte: every group is one
engine run (``sources``), split into parts that are numbered, concluded and assembled by the
engine's own part API (``Verification.check_part`` ... ``finish_parts``), so no rule of the
verification is written twice. Several groups are combined by ``combine`` (documented in
docs/cli.md: conversations in group order, indices continued, run findings once).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from ..audit import (
    EvidenceKeys,
    add_saved_errors,
    finish_saved_report,
    record_conversation,
    saved_conversation_errors,
    scrub_report,
    secret_scrubber,
    served_problems,
)
from ..audit import saved_keyring as keyring_of_saved
from ..engine import Verification, paging_reasons
from ..errors import EvidenceError
from ..evidence import check_secret_count
from ..facts import PageEnds
from ..keys import Keyring
from ..model import REPORT_SCHEMA, ConversationReport, Finding, InputReport, Proof, Report, Verdict, unauthenticated_keys
from ..paging import SavedWalk
from ..sanitize import encodable
from ..signers import KeySlot
from .parts import REPORTS, Shared, TaskFacts, check_task, conclude_task, exported, join_task, reports_of, task_facts
from .sources import Group, Task, plan, task_bytes


class Completed(Protocol):
    """(handle, result) pairs as tasks finish; more handles may be added while iterating."""

    def add(self, handle: Any) -> None: ...

    def __iter__(self) -> Iterator[tuple[Any, Any]]: ...


class Executor(Protocol):
    """Where the tasks run: Dask (``verifier.archive.cluster``) or this process (``InProcess``)."""

    def share(self, value: Any) -> Any: ...

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    def as_completed(self) -> Completed: ...


class _Done:
    """A result computed in process, as a hashable handle (like a Dask future)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _unbox(value: Any) -> Any:
    if isinstance(value, _Done):
        return value.value
    if isinstance(value, list):
        return [_unbox(v) for v in value]
    return value


class InProcess:
    """Runs every task when submitted, in this process: the same code path without a cluster
    (tests, and any caller without Dask)."""

    def share(self, value: Any) -> Any:
        return value

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return _Done(fn(*[_unbox(a) for a in args]))

    def as_completed(self) -> Completed:
        return _Queue()


class _Queue:
    def __init__(self) -> None:
        self.handles: deque[Any] = deque()

    def add(self, handle: Any) -> None:
        self.handles.append(handle)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        while self.handles:
            handle = self.handles.popleft()
            yield handle, handle.value


@dataclass
class Progress:
    """What a display shows: tasks done of known so far, events whose signatures are checked."""

    tasks_done: int = 0
    tasks: int = 0
    events: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _GroupRun:
    """The coordinator's view of one group: its shell Verification and where its parts go."""

    group: Group
    keyring: Keyring | None
    tasks: list[Task]
    keys_given: bool = False  # the caller's keyring (--keys), not the group's saved keys
    saved_keys: EvidenceKeys | None = None  # how far an evidence group's saved keys are trusted (no --keys)
    shell: Verification | None = None
    bases: dict[int, int] = field(default_factory=dict)
    shared_keys: dict[KeySlot, frozenset[bytes]] = field(default_factory=dict)
    used: set[Any] = field(default_factory=set)
    ended: set[str] = field(default_factory=set)  # conversations a page without next_token came for
    spanning: dict[str, list[int]] = field(default_factory=dict)
    local: dict[int, list[str]] = field(default_factory=dict)
    reports: dict[str, ConversationReport] = field(default_factory=dict)
    reviewed: list[tuple[str, str]] = field(default_factory=list)
    facts: list[Any] = field(default_factory=list)  # the events' facts, for a ledger
    failure: str = ""
    waiting: int = 0  # tasks of the current phase not finished yet


@dataclass
class LedgerRecording:
    """``--ledger``: each group is judged against the ledger and recorded as ``verify`` of it would
    be (one ledger audit per group, in order), with the ledger's keys as fallback keys."""

    store: Any
    command: str = "archive verify"
    key_source: str = "evidence"  # "keyring" when the run was given --keys
    fallback: list[Any] = field(default_factory=list)
    secrets: frozenset[str] = frozenset()  # the caller's, kept out of what is recorded (``verify_archive``)


def verify_groups(groups: list[Group], executor: Executor, *, keyring: Keyring | None, options: dict[str, Any],
                  max_bytes: int, workers: int, on_progress: Callable[[Progress], None] | None = None,
                  target_bytes: int | None = None, ledger: LedgerRecording | None = None,
                  trust_evidence_keys: bool = False) -> Report:
    """Both phases over every group; the combined Report."""
    tasks = plan(groups, target_bytes or task_bytes(groups, workers))
    saved_keys = None if keyring is not None else EvidenceKeys("trusted" if trust_evidence_keys else "unauthenticated")
    runs = [_GroupRun(g, keyring if keyring is not None or g.kind != "evidence" else saved_keyring(g), [],
                      keys_given=keyring is not None, saved_keys=saved_keys) for g in groups]
    if ledger is not None and ledger.fallback:  # as verify: the ledger's keys fill slots a keyring lacks
        for run in runs:
            if run.keyring is not None:
                run.keyring.add_fallback(ledger.fallback)
    for task in tasks:
        runs[task.group].tasks.append(task)
    shared = executor.share(Shared({**options, "workers": 1}, [r.keyring for r in runs], max_bytes, ledger is not None))
    progress, started = Progress(tasks=2 * len(tasks)), time.monotonic()

    def tick(events: int = 0) -> None:
        progress.tasks_done += 1
        progress.events += events
        progress.seconds = time.monotonic() - started
        if on_progress is not None:
            on_progress(progress)

    window = _Window(runs, executor, shared, options)
    for result in window.run():
        progress.tasks = 2 * len(tasks) + window.joins
        tick(result.events if isinstance(result, TaskFacts) else 0)
    return combine([_group_report(run, ledger) for run in runs], keyring=keyring, options=options)


GROUPS_IN_FLIGHT = 2


class _Window:
    """Runs the groups through both phases, at most ``GROUPS_IN_FLIGHT`` at a time: a group's
    phase 2 starts as soon as its own phase 1 is done, and its states are freed once it is
    concluded, so workers hold a couple of groups' decoded events, not the whole archive's."""

    def __init__(self, runs: list[_GroupRun], executor: Executor, shared: Any, options: dict[str, Any]) -> None:
        self.runs, self.executor, self.shared, self.options = runs, executor, shared, options
        self.states: dict[int, Any] = {}
        self.facts: dict[int, TaskFacts] = {}
        self.owner: dict[Any, tuple[str, int]] = {}  # handle -> (phase, group)
        self.completed = executor.as_completed()
        self.queue = deque(range(len(runs)))  # groups not started yet
        self.active = 0
        self.joins = 0  # phase-2 tasks beyond one per task

    def run(self) -> Iterator[Any]:
        """Every task's result as it finishes (phase-1 facts, then phase-2 reports)."""
        self._fill()
        for handle, result in self.completed:
            phase, number = self.owner.pop(handle)
            run = self.runs[number]
            if phase == "facts":
                self.facts[result.task] = result
            else:
                run.reports.update(REPORTS.decode(result["reports"]))
                run.reviewed += result["reviewed"]
                run.facts += result["facts"]
            run.waiting -= 1
            yield result
            if run.waiting == 0:
                self._phase2(number) if phase == "facts" else self._done()

    def _fill(self) -> None:
        while self.queue and self.active < GROUPS_IN_FLIGHT:
            self._start(self.queue.popleft())

    def _start(self, number: int) -> None:
        run = self.runs[number]
        if run.group.kind == "failed":
            return
        self.active += 1
        if not run.tasks:  # an evidence directory without pages: reported all the same
            self._phase2(number)
            return
        run.waiting = len(run.tasks)
        for task in run.tasks:
            self.states[task.number] = self.executor.submit(check_task, task, self.shared)
            self._add(self.executor.submit(task_facts, self.states[task.number]), "facts", number)

    def _phase2(self, number: int) -> None:
        run = self.runs[number]
        _place(run, self.facts, self.options)
        states = {t.number: self.states.pop(t.number) for t in run.tasks}  # phase 2 holds them now
        pending = [] if run.failure else _conclude(run, number, states, self.shared, self.executor)
        run.waiting = len(pending)
        self.joins += max(0, len(pending) - len(run.tasks))
        for handle in pending:
            self._add(handle, "report", number)
        if not pending:
            self._done()

    def _add(self, handle: Any, phase: str, number: int) -> None:
        self.owner[handle] = (phase, number)
        self.completed.add(handle)

    def _done(self) -> None:
        self.active -= 1
        self._fill()


def saved_keyring(group: Group) -> Keyring | None:
    """An evidence directory's own keys (as ``verify DIR`` uses them without ``--keys``)."""
    assert group.saved is not None
    return keyring_of_saved(group.saved)


# ------------------------------------------------------------------------------------- placement
def _place(run: _GroupRun, facts: dict[int, TaskFacts], options: dict[str, Any]) -> None:
    """Number the parts, find the conversations held by several, replay what ``verify`` knows
    about the group as a whole (evidence: completeness, input errors) on the shell."""
    shell = Verification(**options)
    owners: dict[str, list[int]] = {}
    total = 0
    for task in run.tasks:
        part = facts[task.number].part
        run.bases[task.number] = total
        shell.adopt_parts([msgspec.structs.replace(i, first_index=i.first_index + total) for i in part.inputs],
                          sum(i.event_count for i in part.inputs))
        total += sum(i.event_count for i in part.inputs)
        for slot, identities in part.key_slots.items():
            run.shared_keys[slot] = run.shared_keys.get(slot, frozenset()) | identities
        run.used |= part.used_key_versions
        run.ended |= part.ended
        for cid in dict.fromkeys(c for c in part.conversations if c is not None):
            owners.setdefault(cid, []).append(task.number)
    run.spanning = {cid: numbers for cid, numbers in owners.items() if len(numbers) > 1}
    for cid, numbers in owners.items():
        if len(numbers) == 1:
            run.local.setdefault(numbers[0], []).append(cid)
    if run.group.kind == "evidence":
        try:
            _replay_evidence(run, shell, [facts[t.number] for t in run.tasks])
        except (KeyError, TypeError, AttributeError) as exc:  # as verify_saved_audit reports it
            run.failure = f"{run.group.source}/manifest.json lists a malformed page entry ({type(exc).__name__}: {exc})"
        except EvidenceError as exc:  # what verify_saved_audit raises for the directory: it is not used
            run.failure = str(exc)
    elif options.get("judge_paging", True):  # page files: what their pages say, as ``verify`` judges it
        ends = PageEnds()
        for task in run.tasks:
            ends.merge(facts[task.number].part.page_ends)
        for cid, reasons in paging_reasons(ends).items():
            for reason in reasons:
                shell.mark_incomplete(cid, reason)
    run.shell = shell


def _replay_evidence(run: _GroupRun, shell: Verification, facts: list[TaskFacts]) -> None:
    """``verify_saved_audit`` without the pages: completeness re-derived from the saved pages' heads,
    every saved conversation reported, the input errors in the same order."""
    saved = run.group.saved
    assert saved is not None
    walks = [SavedWalk() for _ in saved.conversations]
    events = [0] * len(saved.conversations)
    served: list[dict[str, None]] = [{} for _ in saved.conversations]  # as ``conversations_since`` gives them
    for fact in facts:
        for (number, head, url, page_number), page, cid in zip(fact.heads, fact.part.inputs, fact.part.conversations):
            walks[number].see_head(head, url, page_number)
            events[number] += page.event_count
            if cid is not None:
                served[number].setdefault(cid)
    errors: list[tuple[str, str]] = []
    for conv, walk, count, theirs in zip(saved.conversations, walks, events, served):
        reasons = conv.incomplete or walk.reasons(conv.error)
        record_conversation(shell, conv.named, conv.expected, count, reasons, list(theirs),
                            [entry.fetched_at for entry in conv.entries])
        errors += saved_conversation_errors(conv) + served_problems(conv.named, list(theirs))
    run.ended |= shell.ended_conversations()  # walks whose empty oldest page named no conversation
    saved.file_errors += [e for fact in facts for e in fact.file_errors]  # the pages the workers read
    add_saved_errors(shell, saved, errors, keys_given=run.keys_given)
    saved.token_files += [name for fact in facts for name in fact.token_files]
    for fact in facts:
        if fact.unusable:
            raise EvidenceError(fact.unusable)
        saved.secrets |= fact.secrets
    check_secret_count(saved.secrets)  # each task counted its own pages' (round 92: 9 + 9 passed; verify DIR refuses 18)


# ------------------------------------------------------------------------------------- phase 2
def _conclude(run: _GroupRun, number: int, states: dict[int, Any], shared: Any, executor: Executor) -> list[Any]:
    """Submit a group's phase 2: each part concludes its whole conversations; one join per set of
    parts that share conversations. The handles the coordinator gathers."""
    incomplete = run.shell.incomplete if run.shell is not None else {}
    exports: dict[int, list[str]] = {}
    for cid, owners in run.spanning.items():
        for owner in owners:
            exports.setdefault(owner, []).append(cid)
    pending, results = [], {}
    for task in run.tasks:
        results[task.number] = executor.submit(
            conclude_task, states[task.number], shared, number, run.bases[task.number],
            run.local.get(task.number, []), exports.get(task.number, []), run.shared_keys, incomplete)
        pending.append(executor.submit(reports_of, results[task.number]))
    joins: dict[tuple[int, ...], list[str]] = {}
    for cid, owners in run.spanning.items():
        joins.setdefault(tuple(owners), []).append(cid)
    for holders, cids in joins.items():
        parts = [executor.submit(exported, results[owner]) for owner in holders]
        pending.append(executor.submit(join_task, parts, cids, shared, number, run.shared_keys, incomplete))
    return pending


# ------------------------------------------------------------------------------------- the report
def _group_report(run: _GroupRun, ledger: LedgerRecording | None) -> Report | InputReport:
    """One group's Report, as ``verify`` of that group gives it (and records it in a ledger); a
    failed group is one input error."""
    if run.group.kind == "failed" or run.failure or run.shell is None:
        return InputReport(encodable(run.group.source), 0, 0, [encodable(run.failure or run.group.error)])
    ordered = dict(sorted(run.reports.items(), key=lambda item: item[1].events[0].index))
    report = run.shell.finish_parts(run.keyring, ordered, run.reviewed, run.used)
    saved = run.group.saved
    if saved is not None:  # as verify_saved_audit finishes
        report = finish_saved_report(report, saved, run.saved_keys)
    if ledger is not None and not unauthenticated_keys(report):
        from ..ledger import record_audit
        inputs = [run.group.source] if saved is not None else [getattr(u, "path", "") for u in run.group.units]
        secrets = ledger.secrets | (saved.secrets if saved is not None else set())
        scrub = secret_scrubber(set(secrets)) if secrets else None
        if scrub is not None and ledger.secrets:  # r121: a source path holding the token was recorded as it is
            report = scrub_report(report, [scrub])
            inputs = [scrub(source) for source in inputs]
        incomplete = run.shell.incomplete
        record_audit(ledger.store, report, sorted(run.facts, key=lambda f: f.index), run.keyring,
                     command=ledger.command, inputs=inputs, key_source=ledger.key_source,
                     ended={cid for cid in run.ended if cid not in incomplete},
                     scrub=scrub,
                     fetched=saved.earliest_fetch() if saved is not None else None,  # page files: unknown
                     fetched_conversations=run.shell.fetched_conversations())
    return report


def combine(parts: Iterable[Report | InputReport], *, keyring: Keyring | None, options: dict[str, Any]) -> Report:
    """One Report from the groups' reports, in order: one group's report is returned as it is;
    with several, event indices and input ranges continue from one group to the next,
    conversations keep their group's order, identical run findings are given once, and the
    verdict fails if any group's does. A failed group adds its input error."""
    parts = list(parts)
    reports = [p for p in parts if isinstance(p, Report)]
    if len(parts) == 1 and reports:
        return reports[0]
    if not reports:  # nothing could be read: the empty run's report (no_events, trust), plus the errors
        reports_or_empty: list[Report | InputReport] = [Verification(**options).finish(keyring), *parts]
        parts = reports_or_empty
    offset = 0
    conversations: list[ConversationReport] = []
    inputs: list[InputReport] = []
    findings: dict[tuple[str, str, str], Finding] = {}
    for part in parts:
        if isinstance(part, InputReport):
            inputs.append(msgspec.structs.replace(part, first_index=offset))
            continue
        for conv in part.conversations:
            for event in conv.events:
                event.index += offset
        conversations += part.conversations
        inputs += [msgspec.structs.replace(i, first_index=i.first_index + offset) for i in part.inputs]
        for finding in part.findings:
            findings.setdefault((finding.code, finding.severity, finding.message), finding)
        offset += sum(i.event_count for i in part.inputs)
    reports = [p for p in parts if isinstance(p, Report)]
    failed = any(r.verdict == Verdict.FAIL for r in reports) or any(isinstance(p, InputReport) for p in parts)
    key_source = max((r.key_source for r in reports), key=_key_source_weakness)
    return Report(REPORT_SCHEMA, Verdict.FAIL if failed else Verdict.PASS, conversations, strict=bool(options.get("strict")),
                  key_source=key_source,
                  inputs=inputs, findings=list(findings.values()), proof=_proof([r.proof for r in reports]))


# Key sources from the strongest to the weakest claim; the combined report names its weakest group's.
_KEY_SOURCES = ("keyring", "evidence+receipt", "keyring+ledger", "evidence+receipt+ledger", "evidence",
                "evidence+ledger", "embedded")


def _key_source_weakness(source: str) -> int:
    return _KEY_SOURCES.index(source) if source in _KEY_SOURCES else len(_KEY_SOURCES)


def _proof(proofs: list[Proof]) -> Proof:
    total = Proof(keys_authenticated=all(p.keys_authenticated for p in proofs), complete=all(p.complete for p in proofs))
    for name in ("events", "signed", "proven", "needs_conversation_key", "unproven", "not_signed", "embedded_keys"):
        setattr(total, name, sum(getattr(p, name) for p in proofs))
    return total


