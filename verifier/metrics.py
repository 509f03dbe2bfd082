"""A Prometheus textfile (node_exporter's textfile collector format) after each audit or verify.

Counters survive between runs: from the ledger when there is one, else carried over from the
previous file. Written atomically (a scrape never sees half a file).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from .model import VOCABULARY, Code, Report
from .outputs import atomic_write_text

_LINE = re.compile(r'^([a-z_]+)(\{code="([a-z_]+)"\})? ([0-9.eE+-]+)$')


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _previous(path: str) -> dict[tuple[str, str], float]:
    values: dict[tuple[str, str], float] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return values
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m:
            values[(m.group(1), m.group(3) or "")] = float(m.group(4))
    return values


def render_metrics(report: Report, counts: dict[str, int], now: str, *, audits: list | None = None,
                   previous: dict[tuple[str, str], float] | None = None) -> str:
    """The textfile. ``audits``: the ledger's audit rows (totals from them); else ``previous`` values."""
    prev = previous or {}
    passed = report.verdict == "pass" and report.complete
    events = report.proof.events
    if audits is not None:
        total_audits = len(audits)
        total_events = sum(a.events for a in audits)
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
        "# HELP xchat_verify_events_total Events verified, summed over audits.",
        "# TYPE xchat_verify_events_total counter",
        f"xchat_verify_events_total {total_events}",
        "# HELP xchat_verify_last_audit_events Events verified by the last audit.",
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


def write_metrics(path: str, report: Report, counts: dict[str, int], now: str, audits: list | None = None) -> None:
    text = render_metrics(report, counts, now, audits=audits, previous=None if audits is not None else _previous(path))
    atomic_write_text(path, text)
