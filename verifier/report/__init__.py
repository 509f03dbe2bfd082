"""Render a ``Report`` for people (text, markdown, html) and machines (json, ndjson, sarif, junit)."""

from __future__ import annotations

from ..errors import UsageError
from ..model import Report
from ..sanitize import printable
from .common import ProblemGroup, problem_groups, proof_line, scoped_findings
from .html import render_html
from .machine import render_json, render_junit, render_ndjson, render_sarif, summary
from .markdown import render_markdown
from .text import render_text

FORMATS = ("text", "json", "ndjson", "sarif", "junit", "markdown", "html")

__all__ = ["FORMATS", "render", "render_json", "render_ndjson", "render_sarif", "render_junit",
           "render_markdown", "render_html", "render_text", "summary", "proof_line", "scoped_findings",
           "problem_groups", "ProblemGroup"]


def render(report: Report, fmt: str, *, color: bool = False, width: int | None = None,
           all_events: bool = False) -> str:
    """The report in ``fmt`` (one of ``FORMATS``). ``color``, ``width`` and ``all_events`` shape the
    text format only. ``UsageError`` for another format."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown report format {printable(repr(fmt))[:60]}: one of {', '.join(FORMATS)}")
    if fmt == "text":
        return render_text(report, color=color, width=width, all_events=all_events)
    return {"json": render_json, "ndjson": render_ndjson, "sarif": render_sarif, "junit": render_junit,
            "markdown": render_markdown, "html": render_html}[fmt](report)
