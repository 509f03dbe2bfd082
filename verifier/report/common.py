"""What every renderer shares: the proof line, findings about whole histories, problems grouped by
kind (with counts, first examples and the hint), and the input's source of each event."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from ..model import HINTS, Code, ConversationReport, EventReport, Finding, Report, Severity, fails
from ..pages import api_error_text

_SEVERITY_RANK: dict[str, int] = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


def event_findings(report: Report) -> Iterator[tuple[ConversationReport, EventReport, Finding]]:
    for conv in report.conversations:
        for event in conv.events:
            for finding in event.findings:
                yield conv, event, finding


def scoped_findings(report: Report) -> Iterator[tuple[str, Finding]]:
    """Findings about the run and about whole conversations (not single events), with their scope."""
    for finding in report.findings:
        yield "run", finding
    for conv in report.conversations:
        for finding in conv.findings:
            yield conv.conversation_id, finding


def proof_line(report: Report) -> str:
    """What the verdict rests on, in one line: "11 of 14 signatures proven; 3 need a conversation key"."""
    p = report.proof
    parts = [f"{p.proven} of {p.signed} signatures proven"]
    if p.needs_conversation_key:
        parts.append(f"{p.needs_conversation_key} need a conversation key")
    if p.unproven:
        parts.append(f"{p.unproven} not proven")
    if p.not_signed:
        parts.append(f"{p.not_signed} unsigned by design")
    if p.keys_authenticated:
        parts.append("signer keys from " + key_source_words(report.key_source))
    elif unvouched_evidence_keys(report):
        taken = f"; {p.embedded_keys} taken from the events" if p.embedded_keys else ""
        parts.append(f"signer keys NOT authenticated (saved in the evidence directory{taken})")
    elif p.embedded_keys and report.key_source != "embedded":
        parts.append(f"{p.embedded_keys} signature(s) checked with a key NOT authenticated (taken from the event), "
                     "the others with keys from " + key_source_words(report.key_source))
    else:
        parts.append("signer keys NOT authenticated (taken from the events)")
    unread = sum(1 for i in report.inputs if i.errors)
    if unread:  # named first: a mistyped file name is the problem, not the history (new-user review)
        parts.insert(0, f"{unread} input(s) not read in full")
    if any(not c.complete for c in report.conversations) or (not p.complete and not unread):
        parts.append("history incomplete")
    # round 100: --allow-empty's weaker claim was stated nowhere but in the counts ("PASS — ...; 0 of 1
    # signatures proven"), where --allow-partial's says "history incomplete" and embedded keys "NOT
    # authenticated" (threat-model.md: every weaker claim is stated)
    # r109: "accepted" only where it passed: a FAIL said a conversation's emptiness was "accepted
    # (--allow-empty)" while that conversation failed for another reason
    accepted = {scope: f.code for scope, f in scoped_findings(report)
                if f.code in ("no_events", "nothing_proven") and f.severity == "info"}
    passed = {c.conversation_id for c in report.conversations if c.verdict == "pass"}
    if "run" in accepted:
        parts.append(("no events" if accepted["run"] == "no_events" else "nothing proven")
                     + (", accepted (--allow-empty)" if report.verdict == "pass" else
                        " (allowed by --allow-empty; the run fails for another reason)"))
    elif accepted:
        ok = sum(1 for scope in accepted if scope in passed)
        if ok:
            parts.append(f"{ok} conversation(s) empty or with nothing proven, accepted (--allow-empty)")
        if len(accepted) > ok:
            parts.append(f"{len(accepted) - ok} conversation(s) empty or with nothing proven (allowed by "
                         "--allow-empty), failing for another reason")
    return "; ".join(parts)


_KEY_SOURCE_WORDS = {"keyring": "the keyring", "evidence": "the evidence directory",
                     "evidence+receipt": "the evidence directory, vouched for by its receipt"}
# What a report's "keyring" was, when it was not a --keys file: `audit` verifies with the keys it
# fetched from the key directory, whose report still says key_source "keyring" (formats.md) but read
# "signer keys from the keyring" when no keyring had been given (r109).
_KEYRING_WORDS: ContextVar[str] = ContextVar("keyring_words", default="the keyring")


@contextmanager
def keyring_described_as(words: str) -> Iterator[None]:
    """Reports rendered inside this block name their keyring's keys as coming from ``words``."""
    token = _KEYRING_WORDS.set(words)
    try:
        yield
    finally:
        _KEYRING_WORDS.reset(token)


def unvouched_evidence_keys(report: Report) -> bool:
    """The signer keys were an evidence directory's saved responses, and nothing vouched for them."""
    return report.key_source.startswith("evidence") and not report.key_source.startswith("evidence+receipt")


def key_source_words(source: str) -> str:
    """A report's ``key_source`` in words ("keyring+ledger" and the like stay as they are, but for
    the keyring's own words when ``keyring_described_as`` gave them)."""
    words = _KEYRING_WORDS.get()
    if source == "keyring":
        return words
    if source == "keyring+ledger" and words != "the keyring":
        return f"{words} and the ledger"
    return _KEY_SOURCE_WORDS.get(source, source)


@dataclass
class Example:
    where: str  # "1111:2222 #12 seq 2080…" or "run" or an input file
    message: str


@dataclass
class ProblemGroup:
    """Every finding of one code: how many, how bad, what it means, and the first few."""

    code: str
    severity: str
    count: int = 0
    fails: bool = False
    hint: str = ""
    examples: list[Example] = field(default_factory=list)


def problem_groups(report: Report, examples: int = 3) -> list[ProblemGroup]:
    """Errors and warnings grouped by code, worst first; repeats are counted, never listed 100,000
    times. Information (expected repeats, allowed weaker claims) is not a problem."""
    groups: dict[str, ProblemGroup] = {}

    def add(code: str, severity: str, where: str, message: str) -> None:
        group = groups.get(code)
        if group is None:
            group = groups[code] = ProblemGroup(code, severity, hint=HINTS.get(code, ""))
        if _SEVERITY_RANK[severity] < _SEVERITY_RANK[group.severity]:
            group.severity = severity
        group.count += 1
        group.fails = group.fails or fails(severity, report.strict)
        if len(group.examples) < examples:
            group.examples.append(Example(where, message))

    for scope, finding in scoped_findings(report):
        if finding.severity != Severity.INFO:
            add(finding.code, finding.severity, scope, finding.message)
    for conv, event, finding in event_findings(report):
        if finding.severity != Severity.INFO:
            add(finding.code, finding.severity, event_label(conv, event), finding.message)
    for inp in report.inputs:
        for error in inp.errors:
            add(Code.INPUT_ERROR, Severity.ERROR, inp.source, error)
        for problem in inp.api_errors:
            add(Code.API_ERROR, Severity.ERROR if report.strict else Severity.WARNING, inp.source, api_error_text(problem))
    return sorted(groups.values(), key=lambda g: (_SEVERITY_RANK[g.severity], -g.count, g.code))


def event_label(conv: ConversationReport, event: EventReport) -> str:
    return f"{conv.conversation_id} #{event.index} seq {event.sequence_id or '-'}"


def source_of(report: Report) -> Callable[[int], str]:
    """Event index -> the input (file, URL) it came from."""
    starts = [i.first_index for i in report.inputs]

    def source(index: int) -> str:
        pos = bisect.bisect_right(starts, index) - 1
        return report.inputs[pos].source if pos >= 0 else "input"
    return source


def count_line(conv: ConversationReport) -> str:
    return ", ".join(f"{k} {v}" for k, v in conv.counts.items() if v)
