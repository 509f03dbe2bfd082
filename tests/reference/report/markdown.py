"""A Markdown report: a CI job summary a person reads in a browser."""

from __future__ import annotations

import html
import re

from reference.report.common import count_line, problem_groups, proof_line
from verifier.model import Report, Verdict
from verifier.sanitize import printable

_MD_SPECIAL = re.compile(r"[\\`*_{}\[\]()#+!|~<>]")
_EXAMPLES = 3


def md(value: object) -> str:
    """Untrusted text for Markdown (a table cell or a list item): one line, no markup, no HTML."""
    text = html.escape(printable(value), quote=False)
    return _MD_SPECIAL.sub(r"\\\g<0>", text)


def render_markdown(report: Report) -> str:
    icon = "✅" if report.verdict == Verdict.PASS else "❌"
    out = [f"## {icon} xchat-verify: {report.verdict.upper()}", "", md(proof_line(report)) + ".", ""]
    out += ["| conversation | verdict | events | counts |", "|---|---|---|---|"]
    for conv in report.conversations:
        out.append(f"| {md(conv.conversation_id)} | {conv.verdict} | {len(conv.events)} | {count_line(conv)} |")
    groups = problem_groups(report, _EXAMPLES)
    if groups:
        out += ["", "### Problems", "", "| severity | code | count | first examples | what it means |",
                "|---|---|---|---|---|"]
        for g in groups:
            examples = "<br>".join(f"{md(e.where)}: {md(e.message)}" for e in g.examples)
            out.append(f"| {g.severity} | `{g.code}` | {g.count} | {examples} | {md(g.hint)} |")
    return "\n".join(out) + "\n"
