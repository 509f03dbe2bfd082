"""Render a ``Report`` for people (text, markdown, html) and machines (json, ndjson, sarif, junit).

Each format's module is imported when first used (``render``, or a ``render_*`` name taken from
here): ``verify --format json`` writes a report without loading the HTML, Markdown or text code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..lazy import lazy_attributes
from ..model import Report
from ..sanitize import printable

if TYPE_CHECKING:
    from .common import ProblemGroup, problem_groups, proof_line, scoped_findings
    from .html import render_html
    from .machine import render_json, render_junit, render_ndjson, render_sarif, summary
    from .markdown import render_markdown
    from .text import render_text

FORMATS = ("text", "json", "ndjson", "sarif", "junit", "markdown", "html")

# each public name: the module (of this package) that defines it
_LAZY = {"render_json": "machine", "render_ndjson": "machine", "render_sarif": "machine", "render_junit": "machine",
         "summary": "machine", "render_markdown": "markdown", "render_html": "html", "render_text": "text",
         "proof_line": "common", "scoped_findings": "common", "problem_groups": "common", "ProblemGroup": "common"}
# the package's modules an ``import verifier.report`` made its attributes before they were lazy (r127)
_SUBMODULES = frozenset({"common", "html", "html_assets", "machine", "markdown", "text"})
_RENDERERS = {"json": "render_json", "ndjson": "render_ndjson", "sarif": "render_sarif",
              "junit": "render_junit", "markdown": "render_markdown", "html": "render_html"}

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
        from .text import render_text
        return render_text(report, color=color, width=width, all_events=all_events)
    renderer: Callable[[Report], str] = __getattr__(_RENDERERS[fmt])
    return renderer(report)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals(), _SUBMODULES)
