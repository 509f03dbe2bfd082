"""Reference copy (issue 11): the report renderers as they were before streaming. Do not change.

Only what issue 11 rewrote is frozen here (``machine``: json, ndjson, sarif, junit). The people's
formats (text, markdown, html) and their shared helpers were not changed by it and are the shipped
ones: before optimising one of them, freeze a copy of it here first."""

from __future__ import annotations

from reference.report.machine import render_json, render_junit, render_ndjson, render_sarif, summary
from verifier.model import Report
from verifier.report.common import ProblemGroup, problem_groups, proof_line, scoped_findings
from verifier.report.html import render_html
from verifier.report.markdown import render_markdown
from verifier.report.text import render_text

FORMATS = ("text", "json", "ndjson", "sarif", "junit", "markdown", "html")

__all__ = ["FORMATS", "render", "render_json", "render_ndjson", "render_sarif", "render_junit",
           "render_markdown", "render_html", "render_text", "summary", "proof_line", "scoped_findings",
           "problem_groups", "ProblemGroup"]


def render(report: Report, fmt: str, *, color: bool = False, width: int | None = None,
           all_events: bool = False) -> str:
    """The report in ``fmt`` (one of ``FORMATS``). ``color``, ``width`` and ``all_events`` shape the
    text format only."""
    if fmt == "text":
        return render_text(report, color=color, width=width, all_events=all_events)
    return {"json": render_json, "ndjson": render_ndjson, "sarif": render_sarif, "junit": render_junit,
            "markdown": render_markdown, "html": render_html}[fmt](report)
