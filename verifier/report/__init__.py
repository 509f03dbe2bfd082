"""Render a ``Report`` for people (text, markdown, html) and machines (json, ndjson, sarif, junit).

Each format's module is imported when first used (``render``, or a ``render_*`` name taken from
here): ``verify --format json`` writes a report without loading the HTML, Markdown or text code.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
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


def __getattr__(name: str) -> Any:
    """A format's names, its module imported on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The lazy names are listed too, without being imported."""
    return sorted({*globals(), *_LAZY})
