"""Reports for machines: JSON, NDJSON, SARIF 2.1.0 and JUnit XML."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote

import msgspec

from .. import __version__
from ..model import HINTS, Code, EventReport, Report, Severity, fails
from ..pages import api_error_text
from ..sanitize import (
    IGNORABLE,
    IGNORABLE_ASTRAL,
    INVISIBLE,
    INVISIBLE_ASTRAL,
    NONCHARACTERS,
    NONCHARACTERS_ASTRAL,
    UNASSIGNED_IGNORABLE,
    UNASSIGNED_IGNORABLE_ASTRAL,
    WORKFLOW_V1,
    has_astral,
    printable,
)
from .common import event_findings, scoped_findings, source_of

# Characters JSON may carry raw but a terminal or viewer would act on (DEL, C1 controls, bidi and
# zero-width format characters): written as \uXXXX escapes, which decode to the same string.
# (and ASTRAL, only where needed)
_JSON_INVISIBLE = re.compile(f"[\x7f-\x9f{INVISIBLE}{IGNORABLE}{UNASSIGNED_IGNORABLE}{NONCHARACTERS}]")


# past U+FFFF, in one class (run only on text that has such code points: sanitize.ASTRAL's reason)
_JSON_ASTRAL = re.compile(f"[{INVISIBLE_ASTRAL}{UNASSIGNED_IGNORABLE_ASTRAL}{NONCHARACTERS_ASTRAL}{IGNORABLE_ASTRAL}]")


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON spells a code point past U+FFFF as its UTF-16 surrogate pair
    return f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}"


def _json_safe(text: str) -> str:
    # (a "#" first: one character is searched by memchr, about 13 times faster than the three of
    # "##[" on a report's megabytes of events, where it is almost never found)
    if "#" in text and WORKFLOW_V1 in text:  # only ever inside a string: "\u0023#[" decodes to the same value (review 82:
        text = text.replace(WORKFLOW_V1, "\\u0023#[")  # a JSON report printed in a CI log ran ##[add-mask])
    if text.isascii() and "\x7f" not in text:  # nothing to escape (DEL is the one ASCII case)
        return text
    text = _JSON_INVISIBLE.sub(lambda m: _json_escape(m.group()), text)
    if not has_astral(text):
        return text
    return _JSON_ASTRAL.sub(lambda m: _json_escape(m.group()), text)


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


def render_ndjson(report: Report) -> str:
    encoder = msgspec.json.Encoder()
    lines = [event_lines(encoder, conv.conversation_id, conv.events) for conv in report.conversations if conv.events]
    lines.append(encoder.encode(summary(report)).decode())
    return _json_safe("\n".join(lines)) + "\n"


def event_lines(encoder: msgspec.json.Encoder, conversation_id: str, events: Sequence[EventReport]) -> str:
    """The NDJSON records of ``events`` (at least one), one line each, joined by newlines: each
    event's object with ``record`` and ``conversation_id`` first. Encoded in one ``encode_lines``
    call, the two members then put at the head of each line: a JSON text holds a newline only
    between lines (one inside a string is escaped), and an ``EventReport`` is never an empty object.
    Two thirds of the cost of building a dict per event (``to_builtins``) and encoding that."""
    head = '{"record":"event","conversation_id":' + encoder.encode(conversation_id).decode() + ","
    text = encoder.encode_lines(events).decode()  # '{...}\n{...}\n'
    return head + text[1:-1].replace("\n{", "\n" + head)


_SARIF_LEVEL: dict[str, str] = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def sarif_uri(source: str) -> str:
    """An input's name as the URI reference SARIF's ``artifactLocation.uri`` must be (RFC 3986):
    percent-encoded, so a space, ``%``, ``#`` (else read as a fragment), ``:`` (else read as a scheme)
    or a non-ASCII letter in a file name stays part of the path (round 80). A URL (``s3://...``,
    ``archive verify``) keeps its scheme and authority."""
    scheme = _URL.match(source)
    head, rest = (source[:scheme.end()], source[scheme.end():]) if scheme else ("", source)
    return head + quote(rest, safe="/:@" if scheme else "/", errors="backslashreplace")



def render_sarif(report: Report) -> str:
    source = source_of(report)
    results, used = [], {}
    for conv, event, finding in event_findings(report):
        used[finding.code] = finding.severity
        results.append({
            "ruleId": finding.code,
            "level": "error" if fails(finding.severity, report.strict) else _SARIF_LEVEL[finding.severity],
            "message": {"text": printable(f"{conv.conversation_id} event {event.index} "
                                          f"(sequence {event.sequence_id or '-'}): {finding.message}")},
            "locations": [{
                "physicalLocation": {"artifactLocation": {"uri": sarif_uri(source(event.index))}},
                "logicalLocations": [{"name": f"event[{event.index}]", "kind": "object",  # shown by viewers, decoded:
                                      # escaped as the message is (review 82: raw bidi and ESC in it)
                                      "fullyQualifiedName": printable(f"{conv.conversation_id}/"
                                                                      f"{event.sequence_id or '-'}")}],
            }],
        })
    first_source = report.inputs[0].source if report.inputs else "input"
    # a conversation's findings are located at the file of its first event, the run's at the first
    # input (round 80: an `incomplete` of one conversation pointed at another conversation's file)
    scoped = [("run", finding, first_source) for finding in report.findings] + [
        (conv.conversation_id, finding, source(conv.events[0].index) if conv.events else first_source)
        for conv in report.conversations for finding in conv.findings]
    for scope, finding, where_found in scoped:
        used[finding.code] = finding.severity
        results.append({
            "ruleId": finding.code,
            "level": "error" if fails(finding.severity, report.strict) else _SARIF_LEVEL[finding.severity],
            "message": {"text": printable(f"{scope}: {finding.message}")},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": sarif_uri(where_found)}},
                           "logicalLocations": [{"name": printable(scope), "kind": "module"}]}],
        })
    for inp in report.inputs:
        where = [{"physicalLocation": {"artifactLocation": {"uri": sarif_uri(inp.source)}}}]
        for err in inp.errors:
            used[Code.INPUT_ERROR] = Severity.ERROR
            results.append({"ruleId": Code.INPUT_ERROR, "level": "error", "message": {"text": printable(err)},
                            "locations": where})
        for api_error in inp.api_errors:
            used[Code.API_ERROR] = Severity.WARNING
            results.append({"ruleId": Code.API_ERROR, "level": "error" if report.strict else "warning",
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
    import xml.etree.ElementTree as ET  # (only JUnit's: not loaded by every report)
    root = ET.Element("testsuites", name="xchat-verify")
    total = failures = 0
    for conv in report.conversations:
        conv_id = printable(conv.conversation_id)
        suite = ET.SubElement(root, "testsuite", name=conv_id)
        suite_failures = 0
        for event in conv.events:
            name = f"event {event.index} seq {event.sequence_id or '-'} ({event.event_type or '-'})"
            case = ET.SubElement(suite, "testcase", classname=conv_id, name=printable(name))
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
        # API errors fail the verdict under --strict: then they fail a test too (review 45: a --strict FAIL
        # for an API error showed 0 failures)
        problems = [(Code.INPUT_ERROR, printable(e)) for e in inp.errors] + \
            [(Code.API_ERROR, printable(api_error_text(a))) for a in (inp.api_errors if report.strict else ())]
        if problems:
            source = printable(inp.source)
            suite = ET.SubElement(root, "testsuite", name=f"input {source}", tests="1", failures="1")
            case = ET.SubElement(suite, "testcase", classname="input", name=source)
            ET.SubElement(case, "failure", message=problems[0][1], type=problems[0][0]).text = \
                "\n".join(text for _code, text in problems)
            total, failures = total + 1, failures + 1
    root.set("tests", str(total))
    root.set("failures", str(failures))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


