"""The GitHub Action (action.yml), tested without GitHub: its metadata, and each mode's shell steps
run in temporary directories with the environment a runner gives them (tests/gha.py); the steps
that would call GitHub (`uses:`) are checked for what they would be given, never run."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml  # noqa: E402  (in the test extra: missing it must fail, not skip)
from gha import ExpressionError, condition, evaluate, interpolate, read_outputs, run_composite
from helpers import REPO

pytestmark = pytest.mark.slow  # the GitHub Action's steps run for real: CI and `pytest --slow`

ACTION = yaml.safe_load((REPO / "action.yml").read_text())
BIN = Path(sys.executable).parent
XCHAT_VERIFY = BIN / "xchat-verify"
INPUTS = {"mode", "pages", "keys", "verify-args", "sarif", "upload-sarif", "category", "impl", "profile", "vectors",
          "timeout", "jobs", "xfail", "junit", "artifact-name", "python"}
OUTPUTS = {"verdict", "exit-code", "sarif", "junit", "passed", "failed", "out-of-profile", "xfail", "suite-version",
           "suite-release"}


# ------------------------------------------------------------------------------------ metadata
def expressions(node) -> list[str]:
    if isinstance(node, dict):
        return [e for value in node.values() for e in expressions(value)]
    if isinstance(node, list):
        return [e for value in node for e in expressions(value)]
    return re.findall(r"\$\{\{(.*?)\}\}", node) if isinstance(node, str) else []


def test_action_metadata_inputs_outputs_and_steps():
    assert ACTION["name"] == "xchat-verify" and ACTION["description"]
    assert ACTION["runs"]["using"] == "composite"
    inputs, outputs, steps = ACTION["inputs"], ACTION["outputs"], ACTION["runs"]["steps"]
    assert set(inputs) == INPUTS and set(outputs) == OUTPUTS
    assert [n for n, spec in inputs.items() if spec.get("required")] == ["mode"]
    for name, spec in inputs.items():
        assert spec["description"].strip(), name
        assert name == "mode" or isinstance(spec["default"], str), name  # GitHub hands inputs over as strings
    ids = [s.get("id") for s in steps]
    for name, spec in outputs.items():
        assert spec["description"].strip() and "steps." in spec["value"], name
    contexts = {"inputs": {n: "" for n in inputs}, "steps": {}, "github": {}, "runner": {}}
    for position, step in enumerate(steps):
        for text in expressions({k: v for k, v in step.items() if k != "run"}) + \
                ([step["if"]] if "if" in step and "${{" not in str(step["if"]) else []):
            evaluate(text, contexts)  # every expression parses, and names only declared inputs
            for used in re.findall(r"inputs\.([A-Za-z0-9_-]+)", text):
                assert used in inputs, used
            for used in re.findall(r"steps\.([A-Za-z0-9_-]+)\.", text):
                assert used in ids[:position], f"step {position} reads {used} before it runs"
        if "run" in step:
            assert step["shell"] == "bash"
            assert "${{" not in step["run"], "inputs reach scripts through env only (no script injection)"
        else:
            assert re.fullmatch(r"(github/codeql-action/upload-sarif|actions/upload-artifact)@v[0-9]+", step["uses"])
    for spec in outputs.values():
        for text in expressions(spec["value"]):
            for used in re.findall(r"steps\.([A-Za-z0-9_-]+)\.", text):
                assert used in ids
    sarif_upload = next(s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif"))
    assert "!cancelled()" in sarif_upload["if"], "the SARIF of a FAIL verdict must still be uploaded"


# ----------------------------------------------------------------------------------- evaluator
CONTEXTS = {"inputs": {"mode": "audit", "upload-sarif": "true", "empty": ""},
            "steps": {"a": {"outputs": {"x": "1", "sarif": "/t/x.sarif"}}}, "github": {}, "runner": {"temp": "/t"}}


@pytest.mark.parametrize("text, value", [
    ("inputs.mode == 'audit'", True), ("inputs.mode == 'AUDIT'", True), ("inputs.mode != 'audit'", False),
    ("inputs.empty || 'fallback'", "fallback"), ("steps.a.outputs.x || steps.b.outputs.x", "1"),
    ("steps.missing.outputs.x", None), ("inputs['upload-sarif'] == 'true' && steps.a.outputs.sarif != ''", True),
    ("!cancelled() && (inputs.mode == 'conformance' || false)", False), ("'it''s'", "it's"), ("!inputs.empty", True),
    ("inputs.empty == null", True), ("1 == '1'", True), ("always()", True), ("failure()", False)])
def test_the_evaluator(text, value):
    assert evaluate(text, CONTEXTS) == value


@pytest.mark.parametrize("text", ["toJSON(inputs)", "input.mode", "inputs.mode ==", "inputs.mode = 'a'", "env.X",
                                  "contains(inputs.mode, 'a')", "inputs.mode == 'a' ~"])
def test_the_evaluator_refuses_what_it_does_not_implement(text):
    with pytest.raises(ExpressionError):
        evaluate(text, CONTEXTS)


def test_conditions_interpolation_and_outputs(tmp_path):
    status = {"failed": True}
    assert not condition("inputs.mode == 'audit'", CONTEXTS, status)  # implied success()
    assert condition("${{ !cancelled() && inputs.mode == 'audit' }}", CONTEXTS, status)
    assert not condition(None, CONTEXTS, status)
    assert interpolate("${{ runner.temp }}/a-${{ steps.a.outputs.x }}", CONTEXTS) == "/t/a-1"
    out = tmp_path / "out"
    out.write_text("a=1\nb<<EOF\nline 1\nline 2\nEOF\nc=x=y\n")
    assert read_outputs(out) == {"a": "1", "b": "line 1\nline 2", "c": "x=y"}


# ------------------------------------------------------------------------------ running modes
@pytest.fixture()
def gh(tmp_path):
    if not XCHAT_VERIFY.exists():
        pytest.skip("xchat-verify is not installed next to this Python")
    workspace, temp = tmp_path / "workspace", tmp_path / "runner-temp"
    workspace.mkdir()
    temp.mkdir()

    def run(inputs: dict[str, str], action_path: Path = REPO):
        return run_composite(ACTION, inputs, action_path=action_path, workspace=workspace, runner_temp=temp,
                             env={"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})

    run.workspace, run.temp = workspace, temp
    return run


def examples(workspace: Path) -> None:
    for name in ("conversation", "tampered"):
        shutil.copytree(REPO / "examples" / name, workspace / name)
    shutil.copy(REPO / "examples" / "keyring.json", workspace / "keyring.json")


def test_audit_passes_writes_sarif_and_uploads_it(gh):
    examples(gh.workspace)
    result = gh({"mode": "audit", "pages": "conversation/page-*.json\n", "keys": "keyring.json"})
    install, audit = result.step("install"), result.step("audit")
    assert install.exit_code == 0 and install.outputs["bin"] == str(XCHAT_VERIFY)  # already installed: reused
    assert audit.exit_code == 0, audit.stderr
    sarif = gh.temp / "xchat-verify.sarif"
    assert audit.outputs == {"verdict": "pass", "exit-code": "0", "sarif": str(sarif)}
    doc = json.loads(sarif.read_text())
    assert doc["version"] == "2.1.0" and doc["runs"][0]["tool"]["driver"]["name"] == "xchat-verify"
    upload = result.uses("github/codeql-action/upload-sarif@")
    assert upload.ran and upload.with_ == {"sarif_file": str(sarif), "category": "xchat-verify"}
    assert not result.step("conformance").ran and not result.uses("actions/upload-artifact@").ran
    assert result.outputs["verdict"] == "pass" and result.outputs["exit-code"] == "0" and not result.failed
    assert (gh.temp / "step-summary.md").read_text().startswith("### xchat-verify audit: PASS")


def test_a_fail_verdict_fails_the_step_and_the_sarif_is_still_uploaded(gh):
    examples(gh.workspace)
    result = gh({"mode": "audit", "pages": "tampered/*.json", "keys": "keyring.json", "verify-args": "--strict",
                 "sarif": "out/audit.sarif", "category": "dm-audit"})
    audit = result.step("audit")
    assert audit.exit_code == 1 and result.failed
    assert "::error title=xchat-verify::verdict FAIL" in audit.stdout
    sarif = gh.workspace / "out" / "audit.sarif"
    assert audit.outputs == {"verdict": "fail", "exit-code": "1", "sarif": "out/audit.sarif"}
    levels = {r["level"] for r in json.loads(sarif.read_text())["runs"][0]["results"]}
    assert "error" in levels
    upload = result.uses("github/codeql-action/upload-sarif@")
    assert upload.ran and upload.with_ == {"sarif_file": "out/audit.sarif", "category": "dm-audit"}
    assert result.outputs["verdict"] == "fail"


def test_verify_args_on_several_lines_are_all_passed(gh):
    """Review 45: a YAML block of verify-args kept its first line only (a --strict on the second was
    dropped and the FAIL became a PASS)."""
    examples(gh.workspace)
    result = gh({"mode": "audit", "pages": "conversation/*.json", "keys": "keyring.json",
                 "verify-args": "--allow-partial\n--no-such-option\n"})
    assert result.step("audit").exit_code == 2 and result.failed


@pytest.mark.parametrize("inputs, code, verdict, uploaded", [
    ({"pages": "missing/*.json", "keys": "keyring.json"}, 3, "error", True),  # unreadable: SARIF says so
    ({"pages": "conversation/*.json", "keys": "no-such-keyring.json"}, 3, "error", False),
    ({"pages": "conversation/*.json", "verify-args": "--no-such-option"}, 2, "error", False),
    ({"pages": " \n \n"}, 2, "error", False),
    ({"pages": "conversation/*.json", "upload-sarif": "false"}, 1, "fail", False),  # no keyring: no PASS
])
def test_audit_inputs_that_cannot_pass(gh, inputs, code, verdict, uploaded):
    examples(gh.workspace)
    result = gh({"mode": "audit", **inputs})
    audit = result.step("audit")
    assert audit.exit_code == code and audit.outputs["verdict"] == verdict and result.failed
    assert result.uses("github/codeql-action/upload-sarif@").ran == uploaded
    assert ("sarif" in audit.outputs) == (uploaded or inputs.get("upload-sarif") == "false")


SMALL = ("chain/gap", "chain/linked", "malformed/page-not-json", "proof/no-keyring")


def small_suite(root: Path, version: str | None = None) -> Path:
    for case_id in SMALL:
        shutil.copytree(REPO / "vectors" / case_id, root / case_id)
    if version:
        (root / "index.json").write_text(json.dumps({"suite_version": version, "cases": list(SMALL)}))
    return root


def test_conformance_runs_the_suite_against_the_impl_and_publishes_junit(gh):
    small_suite(gh.workspace / "suite")
    impl = f"{XCHAT_VERIFY} verify --format json"
    result = gh({"mode": "conformance", "impl": impl, "vectors": "suite"})
    step = result.step("conformance")
    assert step.exit_code == 0, step.stdout + step.stderr
    junit = gh.temp / "xchat-verify-conformance.xml"
    assert step.outputs == {"exit-code": "0", "junit": str(junit), "passed": "4", "failed": "0",
                            "out-of-profile": "0", "xfail": "0", "suite-version": "", "suite-release": ""}
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("4", "0")
    assert "4 passed, 0 failed" in step.stdout
    artifact = result.uses("actions/upload-artifact@")
    assert artifact.ran and artifact.with_ == {"name": "xchat-verify-conformance", "path": str(junit)}
    assert not result.step("audit").ran and not result.uses("github/codeql-action/upload-sarif@").ran
    summary = (gh.temp / "step-summary.md").read_text()
    assert "### xchat-verify conformance: passed" in summary and "| **total** | **4** | **0** | **0** |" in summary
    assert result.outputs["passed"] == "4" and not result.failed


def test_conformance_uses_the_bundled_suite_and_fails_a_failing_impl(gh, tmp_path):
    """Without the vectors input the suite shipped with the action runs (here a small stand-in)."""
    action = tmp_path / "action"
    (action / "verifier").mkdir(parents=True)
    shutil.copy(REPO / "verifier" / "_version.py", action / "verifier" / "_version.py")
    small_suite(action / "vectors", version="2099.1.1")
    result = gh({"mode": "conformance", "impl": "false", "profile": "signatures", "junit": "results/junit.xml",
                 "artifact-name": "conformance-results"}, action_path=action)
    step = result.step("conformance")
    assert step.exit_code == 1 and result.failed
    assert step.outputs == {"exit-code": "1", "junit": "results/junit.xml", "passed": "0", "failed": "3",
                            "out-of-profile": "1", "xfail": "0", "suite-version": "2099.1.1",
                            "suite-release": ""}
    assert "FAIL chain/gap: no report on stdout (exit code 1)" in step.stdout
    suite = ET.parse(gh.workspace / "results" / "junit.xml").getroot()
    assert (suite.get("failures"), suite.get("skipped")) == ("3", "1")
    artifact = result.uses("actions/upload-artifact@")
    assert artifact.ran and artifact.with_ == {"name": "conformance-results", "path": "results/junit.xml"}


def test_conformance_counts_excused_cases_apart_from_those_out_of_profile(gh):
    """Review 61: the xfail cases, JUnit-skipped like those out of profile, were counted as out of
    profile, and no output said how many were excused."""
    small_suite(gh.workspace / "suite")
    (gh.workspace / "xfail.txt").write_text("chain/gap\nchain/linked\n")
    result = gh({"mode": "conformance", "impl": "false", "profile": "signatures", "vectors": "suite",
                 "xfail": "xfail.txt"})
    step = result.step("conformance")
    assert step.outputs["xfail"] == "2" and step.outputs["out-of-profile"] == "1", step.stdout + step.stderr
    assert (step.outputs["passed"], step.outputs["failed"]) == ("0", "1")


@pytest.mark.parametrize("inputs, failing_step, message", [
    ({"mode": "conformance"}, "conformance", "the impl input is required in conformance mode"),
    ({"mode": "verify"}, "install", "the mode input must be audit or conformance"),
])
def test_misconfigured_modes_fail_with_a_usage_error(gh, inputs, failing_step, message):
    result = gh(inputs)
    step = result.step(failing_step)
    assert step.exit_code == 2 and message in step.stdout and result.failed
    assert not any(s.ran for s in result.steps if s.uses)
    assert result.outputs["exit-code"] in ("", "2")


def test_conformance_does_not_count_a_suite_changed_during_the_run_as_a_passed_case(gh):
    """Round 110: the JUnit file of a run whose suite an implementation rewrote has one errored
    testcase saying so; it is no case, and not counted as passed."""
    suite = small_suite(gh.workspace / "suite")
    impl = gh.workspace / "impl.py"
    impl.write_text(f"import subprocess, sys\nopen({str(suite / 'note.txt')!r}, 'a').write('x')\n"
                    f"r = subprocess.run([{str(XCHAT_VERIFY)!r}, 'verify', '--format', 'json', *sys.argv[1:]], "
                    "capture_output=True)\nsys.stdout.buffer.write(r.stdout)\nsys.exit(r.returncode)\n")
    result = gh({"mode": "conformance", "impl": f"{sys.executable} {impl}", "vectors": "suite"})
    step = result.step("conformance")
    assert step.exit_code == 1 and result.failed
    assert (step.outputs["passed"], step.outputs["failed"]) == ("4", "0"), step.stdout + step.stderr


def test_conformance_outputs_say_an_edited_copy_of_a_release_is_no_release(gh):
    """Round 113: a copy of a release with a case removed (index.json's cases edited to match) ran
    to exit 0, and the outputs read suite-version 2026.12.16 with no word that the files are not that
    release. suite-release says what the files are: none."""
    suite = gh.workspace / "vendored"
    shutil.copytree(REPO / "vectors", suite, ignore=shutil.ignore_patterns("generate.py", "__pycache__"))
    for group in [p for p in suite.iterdir() if p.is_dir() and p.name != "chain"]:
        shutil.rmtree(group)
    shutil.rmtree(suite / "chain" / "gap")
    index = json.loads((suite / "index.json").read_text())
    index["cases"] = sorted(p.parent.relative_to(suite).as_posix() for p in suite.rglob("expected.json"))
    (suite / "index.json").write_text(json.dumps(index))
    result = gh({"mode": "conformance", "impl": f"{XCHAT_VERIFY} verify --format json", "vectors": "vendored"})
    step = result.step("conformance")
    assert step.exit_code == 0, step.stdout + step.stderr
    assert (step.outputs["suite-version"], step.outputs["suite-release"]) == (index["suite_version"], "")
    assert result.outputs["suite-release"] == ""
