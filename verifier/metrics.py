"""A Prometheus textfile (node_exporter's textfile collector format) after each audit or verify.

Counters survive between runs: from the ledger when there is one, else carried over from the
previous file. Written atomically (a scrape never sees half a file).
"""

from __future__ import annotations

import math
import os
import re
import stat

from .clock import from_iso
from .errors import UsageError
from .model import VOCABULARY, Code, Report
from .outputs import atomic_write_text
from .sanitize import printable

_LINE = re.compile(r'^([a-z_]+)(\{code="([a-z_]+)"\})? ([0-9.eE+-]+)$')
MAX_PREVIOUS_BYTES = 1024 * 1024  # the file this module writes is a few KB
_COUNTERS = {"xchat_verify_audits_total", "xchat_verify_events_total", "xchat_verify_findings_total"}
_MAX_COUNT = 2 ** 53  # integers a float (and Prometheus) holds exactly
_MAX_SECONDS = 1e11  # year 5138: any later "timestamp" is not one


def _epoch(iso: str) -> float:
    return from_iso(iso.replace("Z", "+00:00")).timestamp()


_OURS = re.compile(r"^[ \t]*(?:#[ \t]*(?:HELP|TYPE)[ \t]+)?xchat_verify_", re.MULTILINE)


_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)(?:\s+-?\d+)?")  # name{labels} value [ms]
_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def _other_metric(text: str) -> str:
    """The first well-formed metric of another exporter in ``text`` (a sample, or its ``# TYPE``
    line), "" when there is none: a damaged line of ours is not one (its file is replaced, with a
    warning)."""
    for line in text.splitlines():
        words = line.strip().split()
        if words[:2] == ["#", "TYPE"] and len(words) == 4 and words[3] in _TYPES:
            name = words[2]
        else:
            sample = _SAMPLE.fullmatch(line.strip())
            if sample is None or not _is_number(sample.group(2)):
                continue
            name = sample.group(1)
        if not name.startswith("xchat_verify_"):
            return name
    return ""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class Previous:
    """The values of the previous textfile at ``path`` (counters carry over from it when there is no
    ledger), read defensively: only a regular file of at most 1 MiB is read, and only if every line is
    what ``render_metrics`` writes, with finite, non-negative values in range (counters whole numbers
    below 2**53). Anything else is ignored as a whole: ``warning`` says why, and the counters start
    again from this run (a counter reset, which Prometheus' ``rate()`` handles). A file that holds no
    xchat-verify metric at all (too big, not text, or text of something else) is ``foreign``: the
    caller refuses to replace it (review 38: a mistyped ``--metrics report.json`` overwrote the
    report)."""

    def __init__(self, path: str) -> None:
        self.values: dict[tuple[str, str], float] = {}
        self.warning = ""
        self.foreign = ""  # why the file is not a metrics textfile ("" when it is one, or absent)
        try:
            info = os.stat(path)
        except OSError:
            return  # no previous file (or none readable): counters start here
        if not stat.S_ISREG(info.st_mode):
            self.warning = f"--metrics {path} is not a regular file: no previous values, counters start from this run"
            return
        from .errors import InputError
        from .inputs import read_regular_file
        if info.st_size > MAX_PREVIOUS_BYTES:
            self.foreign = f"it is larger than any metrics textfile (over {MAX_PREVIOUS_BYTES} bytes)"
            return
        try:
            text = read_regular_file(path, MAX_PREVIOUS_BYTES, path).decode("utf-8")
        except UnicodeDecodeError:
            self.foreign = "it is not UTF-8 text"
            return
        except InputError as exc:  # unreadable (or grown meanwhile): no previous values
            self._ignore(path, str(exc))
            return
        if text.strip() and not _OURS.search(text):
            self.foreign = "it holds no xchat-verify metric"
            return
        other = _other_metric(text)
        if other:  # review 62: a textfile shared with another exporter lost that exporter's lines
            self.foreign = f"it holds other metrics too ({printable(other[:60])})"
            return
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            problem = self._take(line)
            if problem:
                self.values = {}
                self._ignore(path, f"line {number}: {problem}")
                return

    def _ignore(self, path: str, why: str) -> None:
        self.warning = f"previous values in --metrics {path} ignored ({why}); counters start again from this run"

    def _take(self, line: str) -> str:
        m = _LINE.match(line)
        if not m or not m.group(1).startswith("xchat_verify_"):
            return "not an xchat-verify metric line"
        try:
            value = float(m.group(4))
        except ValueError:
            return "not a number"
        if not math.isfinite(value) or value < 0:
            return "not a finite, non-negative number"
        if m.group(1) in _COUNTERS and (value != int(value) or value >= _MAX_COUNT):
            return "a counter that is not a whole number below 2**53"
        if m.group(1).endswith("_timestamp_seconds") and value > _MAX_SECONDS:
            return "a timestamp out of range"
        self.values[(m.group(1), m.group(3) or "")] = value
        return ""


def replaceable(path: str, what: str = "metrics file") -> Previous:
    """The previous textfile at ``path``; ``UsageError`` when the file there is not one, which is never
    replaced (review 38: a mistyped ``--metrics report.json``; review 51: the library replaced it).
    The one check of the CLI (before the run) and of ``write_metrics`` (before writing)."""
    previous = Previous(path)
    if previous.foreign:
        raise UsageError(f"{what} {printable(path)} exists and is not an xchat-verify metrics textfile "
                         f"({previous.foreign}): it is not replaced; remove it or name another file")
    return previous


def render_metrics(report: Report, counts: dict[str, int], now: str, *, audits: list | None = None,
                   previous: dict[tuple[str, str], float] | None = None) -> str:
    """The textfile. ``audits``: the ledger's audit rows (totals from them); else ``previous`` values."""
    prev = previous or {}
    passed = report.verdict == "pass" and report.complete
    events = report.proof.events
    if audits is not None:
        total_audits = len(audits)
        total_events = sum(a.events for a in audits)
        if audits:  # the ledger's count (distinct events recorded), so the gauge and the counter agree
            events = audits[-1].events
        totals: dict[str, float] = {}
        for a in audits:
            for code, n in a.findings.items():
                totals[code] = totals.get(code, 0) + n
        successes = [a.time for a in audits if a.verdict == "pass"]
        last_success = _epoch(max(successes)) if successes else 0.0
    else:
        total_audits = int(prev.get(("xchat_verify_audits_total", ""), 0)) + 1
        total_events = int(prev.get(("xchat_verify_events_total", ""), 0)) + events
        totals = {code: prev.get(("xchat_verify_findings_total", code), 0) + counts.get(code, 0)
                  for code in {c for (n, c) in prev if n == "xchat_verify_findings_total"} | set(counts)}
        last_success = _epoch(now) if passed else prev.get(("xchat_verify_last_success_timestamp_seconds", ""), 0.0)
    codes = sorted(set(counts) | set(totals) | {str(c) for c in Code if VOCABULARY[c][0] is not None and
                                                 str(c) in _LEDGER_CODES})
    out = [
        "# HELP xchat_verify_audits_total Audits run (recorded in the ledger when there is one).",
        "# TYPE xchat_verify_audits_total counter",
        f"xchat_verify_audits_total {total_audits}",
        "# HELP xchat_verify_events_total Events verified (with a ledger: distinct events it recorded), summed "
        "over audits.",
        "# TYPE xchat_verify_events_total counter",
        f"xchat_verify_events_total {total_events}",
        "# HELP xchat_verify_last_audit_events Events verified by the last audit (counted as the total is).",
        "# TYPE xchat_verify_last_audit_events gauge",
        f"xchat_verify_last_audit_events {events}",
        "# HELP xchat_verify_findings Findings of the last audit, by code.",
        "# TYPE xchat_verify_findings gauge",
        *[f'xchat_verify_findings{{code="{c}"}} {counts.get(c, 0)}' for c in codes],
        "# HELP xchat_verify_findings_total Findings by code, summed over audits.",
        "# TYPE xchat_verify_findings_total counter",
        *[f'xchat_verify_findings_total{{code="{c}"}} {int(totals.get(c, 0))}' for c in codes],
        "# HELP xchat_verify_last_verdict_pass 1 if the last audit passed, else 0.",
        "# TYPE xchat_verify_last_verdict_pass gauge",
        f"xchat_verify_last_verdict_pass {1 if passed else 0}",
        "# HELP xchat_verify_last_run_timestamp_seconds When the last audit finished.",
        "# TYPE xchat_verify_last_run_timestamp_seconds gauge",
        f"xchat_verify_last_run_timestamp_seconds {_epoch(now):.3f}",
        "# HELP xchat_verify_last_success_timestamp_seconds When an audit last passed (0: never).",
        "# TYPE xchat_verify_last_success_timestamp_seconds gauge",
        f"xchat_verify_last_success_timestamp_seconds {last_success:.3f}",
    ]
    return "\n".join(out) + "\n"


_LEDGER_CODES = {"history_rewritten", "chain_rewritten", "event_vanished", "deleted_by_signed_event",
                 "head_regressed", "key_substituted", "key_version_rollback", "signature_version_downgrade",
                 "key_added", "key_retired"}


def write_metrics(path: str, report: Report, counts: dict[str, int], now: str, audits: list | None = None,
                  previous: dict[tuple[str, str], float] | None = None) -> None:
    """Write the textfile atomically. ``previous``: the values read before the run (``Previous``); None
    reads them now. The directory must exist (it is never created). Raises ``OSError``, and
    ``UsageError`` when ``path`` holds something other than a metrics textfile (``replaceable``)."""
    found = replaceable(path)
    if audits is None and previous is None:
        previous = found.values
    text = render_metrics(report, counts, now, audits=audits, previous=previous)
    atomic_write_text(path, text, create_parents=False)
