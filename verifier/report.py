"""Render a ``Report`` for people (text, markdown) and machines (json, ndjson, sarif, junit)."""

from __future__ import annotations

import bisect
import html
import io
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator

import msgspec

from . import __version__
from .pages import api_error_text
from .sanitize import printable
from .model import HINTS, ConversationReport, EventReport, Finding, Report, fails

FORMATS = ("text", "json", "ndjson", "sarif", "junit", "markdown")
_TEXT_ALL_EVENTS_UP_TO = 200
_MARKDOWN_ROWS = 200


def render(report: Report, fmt: str, *, color: bool = False, width: int | None = None) -> str:
    renderer: dict[str, Callable[[Report], str]] = {
        "json": render_json, "ndjson": render_ndjson, "sarif": render_sarif,
        "junit": render_junit, "markdown": render_markdown,
    }
    if fmt == "text":
        return render_text(report, color=color, width=width)
    return renderer[fmt](report)


# Characters JSON may carry raw but a terminal or viewer would act on (DEL, C1 controls, bidi and
# zero-width format characters): written as \uXXXX escapes, which decode to the same string.
_JSON_INVISIBLE = re.compile("[\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]")


def _json_safe(text: str) -> str:
    return _JSON_INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _md(value: object) -> str:
    """Untrusted text for a Markdown table cell: one line, no markup, no HTML."""
    text = html.escape(printable(value), quote=False)
    return _MD_SPECIAL.sub(r"\\\g<0>", text)


_MD_SPECIAL = re.compile(r"[\\`*_{}\[\]()#+!|~]")


def render_json(report: Report) -> str:
    return _json_safe(msgspec.json.format(msgspec.json.encode(report), indent=2).decode()) + "\n"


def summary(report: Report) -> dict:
    return {"record": "summary", "schema": report.schema, "verdict": report.verdict,
            "strict": report.strict, "key_source": report.key_source,
            "proof": msgspec.to_builtins(report.proof),
            "findings": msgspec.to_builtins(report.findings),
            "conversations": [{"conversation_id": c.conversation_id, "verdict": c.verdict,
                               "complete": c.complete, "counts": c.counts,
                               "findings": msgspec.to_builtins(c.findings)} for c in report.conversations],
            "inputs": msgspec.to_builtins(report.inputs)}


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
        parts.append("signer keys from " + ("the keyring" if report.key_source == "keyring" else report.key_source))
    else:
        parts.append("signer keys NOT authenticated (taken from the events)")
    if not p.complete:
        parts.append("history incomplete")
    return "; ".join(parts)


def render_ndjson(report: Report) -> str:
    encoder = msgspec.json.Encoder()
    lines = []
    for conv in report.conversations:
        for event in conv.events:
            record = {"record": "event", "conversation_id": conv.conversation_id,
                      **msgspec.to_builtins(event)}
            lines.append(encoder.encode(record).decode())
    lines.append(encoder.encode(summary(report)).decode())
    return _json_safe("\n".join(lines)) + "\n"


def _problem_findings(report: Report) -> Iterator[tuple[ConversationReport, EventReport, Finding]]:
    for conv in report.conversations:
        for event in conv.events:
            for finding in event.findings:
                yield conv, event, finding


def _source_of(report: Report) -> Callable[[int], str]:
    starts = [i.first_index for i in report.inputs]

    def source(index: int) -> str:
        pos = bisect.bisect_right(starts, index) - 1
        return report.inputs[pos].source if pos >= 0 else "input"
    return source


_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def render_sarif(report: Report) -> str:
    source = _source_of(report)
    results, used = [], {}
    for conv, event, finding in _problem_findings(report):
        used[finding.code] = finding.severity
        results.append({
            "ruleId": finding.code,
            "level": "error" if fails(finding.severity, report.strict) else _SARIF_LEVEL[finding.severity],
            "message": {"text": printable(f"{conv.conversation_id} event {event.index} "
                                          f"(sequence {event.sequence_id}): {finding.message}")},
            "locations": [{
                "physicalLocation": {"artifactLocation": {"uri": source(event.index)}},
                "logicalLocations": [{"name": f"event[{event.index}]", "kind": "object",
                                      "fullyQualifiedName": f"{conv.conversation_id}/{event.sequence_id}"}],
            }],
        })
    first_source = report.inputs[0].source if report.inputs else "input"
    for scope, finding in scoped_findings(report):
        used[finding.code] = finding.severity
        results.append({
            "ruleId": finding.code,
            "level": "error" if fails(finding.severity, report.strict) else _SARIF_LEVEL[finding.severity],
            "message": {"text": printable(f"{scope}: {finding.message}")},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": first_source}},
                           "logicalLocations": [{"name": scope, "kind": "module"}]}],
        })
    for inp in report.inputs:
        where = [{"physicalLocation": {"artifactLocation": {"uri": inp.source}}}]
        for err in inp.errors:
            used["input_error"] = "error"
            results.append({"ruleId": "input_error", "level": "error", "message": {"text": printable(err)},
                            "locations": where})
        for api_error in inp.api_errors:
            used["api_error"] = "warning"
            results.append({"ruleId": "api_error", "level": "error" if report.strict else "warning",
                            "message": {"text": printable(api_error_text(api_error))}, "locations": where})
    rules = [{"id": code, "name": code,
              "shortDescription": {"text": HINTS.get(code, "The input could not be read in full.")},
              "defaultConfiguration": {"level": _SARIF_LEVEL[sev]}} for code, sev in sorted(used.items())]
    doc = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
           "runs": [{"tool": {"driver": {"name": "xchat-verify", "version": __version__,
                                         "rules": rules}},
                     "invocations": [{"executionSuccessful": report.complete}],
                     "properties": {"verdict": report.verdict},
                     "results": results}]}
    return _json_safe(msgspec.json.format(msgspec.json.encode(doc), indent=2).decode()) + "\n"


def render_junit(report: Report) -> str:
    root = ET.Element("testsuites", name="xchat-verify")
    total = failures = 0
    for conv in report.conversations:
        conv_id = printable(conv.conversation_id)
        suite = ET.SubElement(root, "testsuite", name=conv_id)
        suite_failures = 0
        for event in conv.events:
            case = ET.SubElement(suite, "testcase", classname=conv_id,
                                 name=printable(f"event {event.index} seq {event.sequence_id} ({event.event_type})"))
            bad = [f for f in event.findings if fails(f.severity, report.strict)]
            if bad:
                suite_failures += 1
                failure = ET.SubElement(case, "failure", message=printable(bad[0].message), type=bad[0].code)
                failure.text = "\n".join(printable(f"[{f.severity}] {f.code}: {f.message}") for f in event.findings)
        suite.set("tests", str(len(conv.events)))
        suite.set("failures", str(suite_failures))
        total += len(conv.events)
        failures += suite_failures
    scoped = list(scoped_findings(report))
    if scoped:
        suite = ET.SubElement(root, "testsuite", name="whole histories")
        suite_failures = 0
        for scope, finding in scoped:
            case = ET.SubElement(suite, "testcase", classname=printable(scope),
                                 name=printable(f"{scope} {finding.code}"))
            if fails(finding.severity, report.strict):
                suite_failures += 1
                ET.SubElement(case, "failure", message=printable(finding.message), type=finding.code).text = \
                    printable(f"[{finding.severity}] {finding.code}: {finding.message}")
        suite.set("tests", str(len(scoped)))
        suite.set("failures", str(suite_failures))
        total, failures = total + len(scoped), failures + suite_failures
    for inp in report.inputs:
        if inp.errors:
            source = printable(inp.source)
            suite = ET.SubElement(root, "testsuite", name=f"input {source}", tests="1", failures="1")
            case = ET.SubElement(suite, "testcase", classname="input", name=source)
            ET.SubElement(case, "failure", message=printable(inp.errors[0]), type="input_error").text = \
                "\n".join(printable(e) for e in inp.errors)
            total, failures = total + 1, failures + 1
    root.set("tests", str(total))
    root.set("failures", str(failures))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _count_line(conv: ConversationReport) -> str:
    return ", ".join(f"{k} {v}" for k, v in conv.counts.items() if v)


def render_markdown(report: Report) -> str:
    icon = "✅" if report.verdict == "pass" else "❌"
    out = [f"## {icon} xchat-verify: {report.verdict.upper()}", "", proof_line(report) + ".", ""]
    out += ["| conversation | verdict | events | counts |", "|---|---|---|---|"]
    for conv in report.conversations:
        out.append(f"| {_md(conv.conversation_id)} | {conv.verdict} | {len(conv.events)} | {_count_line(conv)} |")
    problems = [(c, e, f) for c, e, f in _problem_findings(report) if f.severity != "info"]
    scoped = [(scope, f) for scope, f in scoped_findings(report)]
    if problems or scoped:
        out += ["", "### Findings", "", "| conversation | event | sequence | severity | code | message |",
                "|---|---|---|---|---|---|"]
        for scope, f in scoped:
            out.append(f"| {_md(scope)} | - | - | {f.severity} | `{f.code}` | {_md(f.message)} |")
        for conv, event, f in problems[:_MARKDOWN_ROWS]:
            out.append(f"| {_md(conv.conversation_id)} | {event.index} | {_md(event.sequence_id)} | {f.severity} "
                       f"| `{f.code}` | {_md(f.message)} |")
        if len(problems) > _MARKDOWN_ROWS:
            out.append(f"\n…and {len(problems) - _MARKDOWN_ROWS} more findings (see the JSON report).")
    out += [_md(line) if line else line for line in _input_problem_lines(report, "")]
    hints = _hints(report)
    if hints:
        out += ["", "### What the codes mean", ""] + [f"- `{c}`: {h}" for c, h in hints]
    return "\n".join(out) + "\n"


def _input_problem_lines(report: Report, bullet: str) -> list[str]:
    lines = []
    for inp in report.inputs:
        lines += [f"{bullet}input {inp.source}: {e}" for e in inp.errors]
        lines += [f"{bullet}API error on {inp.source}: {api_error_text(e)}" for e in inp.api_errors]
    return ([""] + lines) if lines else []




def _hints(report: Report) -> list[tuple[str, str]]:
    codes = Counter(f.code for _c, _e, f in _problem_findings(report))
    codes.update(f.code for _s, f in scoped_findings(report) if f.severity != "info")
    if any(i.api_errors for i in report.inputs):
        codes["api_error"] += 1
    return [(c, HINTS[c]) for c in sorted(codes) if c in HINTS]


_STYLE = {"valid": "green", "not_signed": "dim", "needs_conversation_key": "yellow", "linked": "green",
          "start": "cyan", "duplicate": "yellow", "non_monotonic": "yellow"}


def render_text(report: Report, *, color: bool = False, width: int | None = None) -> str:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, no_color=not color, width=width or 140,
                      highlight=False, soft_wrap=False)
    for conv in report.conversations:
        shown = conv.events if len(conv.events) <= _TEXT_ALL_EVENTS_UP_TO else \
            [e for e in conv.events if any(f.severity != "info" for f in e.findings)]
        table = Table(title=Text(printable(f"conversation {conv.conversation_id} — {conv.verdict.upper()}")),
                      title_justify="left", expand=False)
        for name in ("#", "sequence", "type", "sender", "signature", "chain", "findings"):
            table.add_column(name, overflow="fold")
        for e in shown:  # input text goes in as Text, never as markup
            table.add_row(str(e.index), Text(printable(e.sequence_id or "-")), Text(printable(e.event_type or "-")),
                          Text(printable(e.sender_id or "-")), _styled(e.signature.status), _styled(e.chain.status),
                          Text(printable("; ".join(f"{f.code}: {f.message}" for f in e.findings if f.code not in
                                                   (e.signature.status, e.chain.status) or f.severity != "info"))))
        if shown:
            console.print(table)
        hidden = len(conv.events) - len(shown)
        if hidden:
            console.print(f"({hidden} events without problems not listed; use --format json for all)")
        console.print(Text(printable(f"{conv.conversation_id}: {conv.verdict.upper()} — {len(conv.events)} events: "
                                     f"{_count_line(conv)}")))
        console.print()
    for scope, f in scoped_findings(report):
        console.print(Text(printable(f"! {scope}: [{f.severity}] {f.code}: {f.message}")), soft_wrap=True)
    for line in _input_problem_lines(report, "! "):
        if line:
            console.print(Text(printable(line)), soft_wrap=True)
    for code, hint in _hints(report):
        console.print(Text(f"hint {code}: {hint}"), soft_wrap=True)
    console.print(Text(f"verdict: {report.verdict.upper()} — {len(report.conversations)} conversation(s), "
                       f"{report.proof.events} event(s); {proof_line(report)}"
                       + ("; strict" if report.strict else "")), soft_wrap=True)
    return buffer.getvalue()


def _styled(status: str) -> str:
    style = _STYLE.get(status, "bold red")
    return f"[{style}]{status}[/{style}]"
