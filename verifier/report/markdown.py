"""A Markdown report: a CI job summary a person reads in a browser."""

from __future__ import annotations

import html
import re

from ..model import Report, Verdict
from ..sanitize import printable
from .common import count_line, problem_groups, proof_line

_MD_SPECIAL = re.compile(r"[\\`*_{}\[\]()#+!|~<>]")
# GitHub Flavored Markdown links bare URLs (``scheme://``) and ``www.`` names without any markup
# (the autolink extension); the colon or the dot escaped, they stay text (review 82: a signed
# conversation id, or a message in the transcript, became a link in a job summary).
_AUTOLINK = re.compile(r":(?=//)|(?<=[Ww][Ww][Ww])\.")
_EXAMPLES = 3


def md(value: object) -> str:
    """Untrusted text for Markdown (a table cell or a list item): one line, no markup, no HTML, no link."""
    text = _MD_SPECIAL.sub(r"\\\g<0>", html.escape(printable(value), quote=False))
    return _AUTOLINK.sub(r"\\\g<0>", text) if ":" in text or "." in text else text


# In a hint: a `quoted` command, or an option name (--keys, --allow-embedded-keys).
_HINT_CODE = re.compile(r"`([^`|]+)`|(?<![\w-])(--[a-z][a-z0-9-]*)")


def md_hint(hint: str) -> str:
    """A vocabulary hint (``model.VOCABULARY``: our text, never an event's) with its commands and
    options as inline code and the rest escaped by ``md``. Why: escaped whole, `keys fetch` showed
    its backticks instead of reading as a command."""
    out, at = [], 0
    for match in _HINT_CODE.finditer(hint):
        out += [md(hint[at:match.start()]), "`" + printable(match.group(1) or match.group(2)) + "`"]
        at = match.end()
    return "".join(out) + md(hint[at:])


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
            out.append(f"| {g.severity} | `{g.code}` | {g.count} | {examples} | {md_hint(g.hint)} |")
    return "\n".join(out) + "\n"
