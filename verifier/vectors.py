"""Conformance vector runner: run every ``<group>/<case>/expected.json`` and compare (docs/vectors.md)."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine import verify_pages
from .keys import Keyring
from .model import EXIT_INCOMPLETE, Report, exit_code

CASE_FILE = "expected.json"


@dataclass
class CaseResult:
    case_id: str
    passed: bool
    problems: list[str] = field(default_factory=list)
    xfail: bool = False

    @property
    def ok(self) -> bool:
        """Strict xfail: an expected failure must fail; if it passes, that is a failure too."""
        return self.passed != self.xfail


def discover(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob(CASE_FILE))


def run_case(folder: Path, root: Path) -> CaseResult:
    case_id = folder.relative_to(root).as_posix()
    try:
        spec = json.loads((folder / CASE_FILE).read_text())
        expected = spec["expected"]
    except (OSError, ValueError, KeyError) as exc:
        return CaseResult(case_id, False, [f"unreadable {CASE_FILE}: {exc}"])
    try:
        report, exit_code = _verify(folder, spec)
    except Exception as exc:  # the verifier must never raise; if it does, the case fails loudly
        return CaseResult(case_id, False, [f"verifier raised {type(exc).__name__}: {exc}"])
    return _compare(case_id, expected, report, exit_code)


def _verify(folder: Path, spec: dict) -> tuple[Report | None, int]:
    """Exactly what ``xchat-verify verify`` does with the case's files and options."""
    from .errors import InputError
    from .inputs import DEFAULT_MAX_FILE_MB, load_keyring, load_pages
    options = spec.get("options", {})
    max_bytes = DEFAULT_MAX_FILE_MB * 1024 * 1024
    keyring: Keyring | None = None
    if spec.get("keyring"):
        try:
            keyring = load_keyring(str(folder / spec["keyring"]), max_bytes)
        except InputError:
            return None, EXIT_INCOMPLETE
    pages = load_pages([str(folder / name) for name in spec["pages"]], max_bytes)
    keys = {v: base64.b64decode(k) for v, k in options.get("conversation_keys", {}).items()}
    report = verify_pages(pages, keyring, conversation_keys=keys, strict=options.get("strict", False),
                          allow_embedded_keys=options.get("allow_embedded_keys", False),
                          allow_empty=options.get("allow_empty", False))
    return report, exit_code(report)


def _compare(case_id: str, expected: dict, report: Report | None, code: int) -> CaseResult:
    problems = []
    verdict = report.verdict if report is not None else "fail"
    if verdict != expected["verdict"]:
        problems.append(f"verdict {verdict}, expected {expected['verdict']}")
    if code != expected["exit_code"]:
        problems.append(f"exit code {code}, expected {expected['exit_code']}")
    if report is not None:
        scoped = {f.code for f in report.findings} | {f.code for c in report.conversations for f in c.findings}
        missing = set(expected.get("findings", [])) - scoped
        if missing:
            problems.append(f"missing run or conversation findings {sorted(missing)}")
    events = {e.index: e for c in report.conversations for e in c.events} if report is not None else {}
    if len(events) != len(expected["events"]):
        problems.append(f"{len(events)} events, expected {len(expected['events'])}")
    for want in expected["events"]:
        got = events.get(want["index"])
        if got is None:
            problems.append(f"event {want['index']} missing")
            continue
        if got.signature.status != want["signature"]:
            problems.append(f"event {want['index']}: signature {got.signature.status}, expected "
                            f"{want['signature']} ({got.signature.detail})")
        if got.chain.status != want["chain"]:
            problems.append(f"event {want['index']}: chain {got.chain.status}, expected {want['chain']}")
        missing = set(want.get("findings", [])) - {f.code for f in got.findings}
        if missing:
            problems.append(f"event {want['index']}: missing findings {sorted(missing)}")
    return CaseResult(case_id, not problems, problems)


def run_suite(root: Path, xfail: set[str] | None = None) -> list[CaseResult]:
    results = []
    for folder in discover(root):
        result = run_case(folder, root)
        result.xfail = result.case_id in (xfail or set())
        results.append(result)
    return results


def read_xfail(path: str) -> set[str]:
    """One case id per line; ``#`` starts a comment."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return {line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()}


def render_results(results: list[CaseResult], fmt: str) -> str:
    passed = sum(r.ok for r in results)
    failed = len(results) - passed
    if fmt == "json":
        return json.dumps({"passed": passed, "failed": failed, "cases": [
            {"id": r.case_id, "ok": r.ok, "matched_expectation": r.passed, "xfail": r.xfail, "problems": r.problems}
            for r in results]}, indent=2) + "\n"
    if fmt == "junit":
        return _junit(results, failed)
    lines = []
    for r in results:
        tag = "PASS" if r.ok else "FAIL"
        note = " (xfail)" if r.xfail and r.ok else " (xfail case passed: remove it from the xfail list)" \
            if r.xfail else ""
        lines.append(f"{tag} {r.case_id}{note}" + ("" if r.ok or r.xfail else ": " + "; ".join(r.problems)))
    lines.append(f"{passed} passed, {failed} failed")
    return "\n".join(lines) + "\n"


def _junit(results: list[CaseResult], failed: int) -> str:
    suite = ET.Element("testsuite", name="xchat-verify vectors", tests=str(len(results)), failures=str(failed))
    for r in results:
        group, _, name = r.case_id.partition("/")
        case = ET.SubElement(suite, "testcase", classname=group, name=name or group)
        if not r.ok:
            message = "xfail case passed" if r.xfail else "; ".join(r.problems)
            ET.SubElement(case, "failure", message=message[:500]).text = "\n".join(r.problems) or message
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def summary_ok(results: list[Any]) -> bool:
    return bool(results) and all(r.ok for r in results)
