"""The conformance protocol (docs/vectors.md): any implementation run by ``vectors --impl``, judged
under a profile; xchat-verify's own CLI passes every case by it; the official SDK's adapter and
its recorded table; failures of the implementation; the schemas; the exported suite."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import jsonschema  # noqa: E402  (in the test extra: missing it must fail, not skip)
import pytest
from helpers import REPO

from verifier import cli
from verifier import vectors as v

VECTORS = REPO / "vectors"
CASE_IDS = json.loads((VECTORS / "index.json").read_text())["cases"]
REPORT_SCHEMA = jsonschema.Draft202012Validator(json.loads((VECTORS / "report.schema.json").read_text()))
EXPECTED_SCHEMA = jsonschema.Draft202012Validator(json.loads((VECTORS / "expected.schema.json").read_text()))
# Where the SDK and xchat-verify differ on purpose (docs/vectors.md, "Expected differences").
SDK_DIFFERENCES = {"keys/duplicate-rows-good-first", "keys/duplicate-rows-good-last",
                   "structure/message-without-contents"}


def spec_of(case_id: str) -> dict:
    return json.loads((VECTORS / case_id / "expected.json").read_text())


def vectors_cli(*args, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "verifier", "vectors", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=timeout, env={**os.environ, **(env or {})})
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def vectors_main(*args, env: dict | None = None) -> v.Outcome:
    """``xchat-verify vectors ...`` through its entry point in this process (the implementations it
    runs are still real processes, given this process's environment plus ``env``)."""
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        outcome = call(cli.main, ["vectors", *map(str, args)])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert b"Traceback" not in outcome.stderr
    return outcome


def in_process(main) -> v.Runner:
    """A runner that calls ``main(argv)`` in this process with the case's arguments and judges what
    it printed and returned exactly as an ``--impl`` command's output is judged."""

    def run(folder: Path, spec: dict):
        return v.judge_outcome(call(main, v.case_arguments(folder, spec)), spec)

    return run


def call(main, argv: list[str]) -> v.Outcome:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return v.Outcome(code, out.getvalue().encode(), err.getvalue().encode())


def verify_main(argv: list[str]) -> int:
    return cli.main(["verify", "--format", "json", *argv])


def load_adapter():
    spec = importlib.util.spec_from_file_location("chatxdk_verify", REPO / "adapters" / "chatxdk_verify.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def covering_subset() -> list[str]:
    """The first cases (in suite order) that together exercise every group, option flag, page
    count, keyring presence and shape and exit code: what crosses the process boundary (arguments,
    stdout, exit status). Every status is proven case by case by the in-process run."""
    covered: set = set()
    chosen = []
    for case_id in CASE_IDS:
        spec = spec_of(case_id)
        ring = json.loads((VECTORS / case_id / spec["keyring"]).read_text()) if spec["keyring"] else None
        features = {("group", case_id.split("/")[0]), ("exit", spec["expected"]["exit_code"]),
                    ("pages", min(len(spec["pages"]), 2)), ("ring", type(ring).__name__),
                    ("ring-shape", "keys" if isinstance(ring, dict) and "keys" in ring else type(ring).__name__),
                    ("conversation-keys", bool(spec["options"]["conversation_keys"])),
                    *((name, True) for name in ("strict", "allow_embedded_keys", "allow_empty")
                      if spec["options"][name])}
        if features - covered:
            covered |= features
            chosen.append(case_id)
    return chosen


@pytest.fixture(scope="module")
def subset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("subset")
    for case_id in covering_subset():
        shutil.copytree(VECTORS / case_id, root / case_id)
    return root


def test_the_covering_subset_covers_every_group_flag_and_exit_code():
    chosen = covering_subset()
    specs = [spec_of(c) for c in chosen]
    assert {c.split("/")[0] for c in chosen} == {c.split("/")[0] for c in CASE_IDS}
    assert {s["expected"]["exit_code"] for s in specs} == {0, 1, 3}
    for name in ("strict", "allow_embedded_keys", "allow_empty"):
        assert any(s["options"][name] for s in specs), name
    assert any(s["options"]["conversation_keys"] for s in specs) and any(len(s["pages"]) > 1 for s in specs)
    assert any(s["keyring"] is None for s in specs)
    assert len(chosen) < 25


# ------------------------------------------------------------ xchat-verify itself, by the protocol
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_the_cli_passes_every_case_by_the_protocol_and_both_fit_the_schemas(case_id):
    """``xchat-verify verify --format json`` (its entry point, in this process) on every case,
    judged as ``vectors --impl`` judges a command; each JSON report it prints fits the schema, and
    so does the case's expected.json."""
    folder, spec = VECTORS / case_id, spec_of(case_id)
    EXPECTED_SCHEMA.validate(spec)
    outcome = call(verify_main, v.case_arguments(folder, spec))
    doc, code, problems = v.judge_outcome(outcome, spec)
    assert problems == [] and v.compare(spec["expected"], doc, code, "full") == []
    if outcome.stdout.strip():
        REPORT_SCHEMA.validate(json.loads(outcome.stdout))


@pytest.mark.slow
def test_the_cli_as_a_subprocess_impl_passes(subset):
    """The process boundary: real ``xchat-verify verify --format json`` processes, two at a time."""
    script = Path(sys.executable).parent / "xchat-verify"
    impl = shlex.join([str(script), "verify", "--format", "json"]) if script.exists() else \
        shlex.join([sys.executable, "-m", "verifier", "verify", "--format", "json"])
    proc = vectors_cli(subset, "--impl", impl, "--jobs", "2")
    count = len(covering_subset())
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == f"{count} passed, 0 failed"
    assert f"implementation: {impl}" in proc.stdout


# --------------------------------------------------------------------------- the official SDK
@pytest.fixture(scope="module")
def sdk_results() -> list[v.CaseResult]:
    return v.run_suite(VECTORS, profile="signatures", runner=in_process(load_adapter().main))


@pytest.mark.slow
def test_the_sdk_adapter_table_is_the_one_docs_record(sdk_results):
    """The first public conformance table: chatxdk through adapters/chatxdk_verify.py, signatures
    profile, every case. docs/vectors.md must record exactly this run."""
    failed = {r.case_id for r in sdk_results if r.status == "fail"}
    assert failed == SDK_DIFFERENCES, {r.case_id: r.problems for r in sdk_results if r.status == "fail"}
    docs = (REPO / "docs" / "vectors.md").read_text()
    block = re.search(r"<!-- conformance:chatxdk:begin -->\n(.*?)\n<!-- conformance:chatxdk:end -->", docs, re.S)
    assert block, "docs/vectors.md lacks the chatxdk conformance table"
    assert block.group(1).strip().splitlines() == v.markdown_table(sdk_results)
    for case_id in SDK_DIFFERENCES:
        assert f"`{case_id}`" in docs
    skipped = {r.case_id: r.out_of_profile for r in sdk_results if r.out_of_profile}
    assert set(skipped) == {"keys/allow-embedded", "keys/embedded-conflict", "keys/embedded-only", "proof/no-events",
                            "proof/no-events-allowed", "proof/no-keyring", "proof/no-keyring-allowed"}


def test_the_readme_quotes_the_recorded_sdk_table():
    """README's one-line summary of the chatxdk run is the total row of the table docs/vectors.md
    records (round 80: README said 449 of 452 while the table said 454 passed, 3 failed)."""
    docs = (REPO / "docs" / "vectors.md").read_text()
    block = re.search(r"<!-- conformance:chatxdk:begin -->\n(.*?)\n<!-- conformance:chatxdk:end -->", docs, re.S)
    assert block
    total = re.search(r"\| \*\*total\*\* \| \*\*(\d+)\*\* \| \*\*(\d+)\*\* \|", block.group(1))
    assert total
    passed, failed = int(total.group(1)), int(total.group(2))
    readme = " ".join((REPO / "README.md").read_text().split())
    assert f"agrees on {passed} of {passed + failed} signature cases, the {failed} others" in readme
    assert f"({len(v.discover(VECTORS))} cases, suite {v.load_suite(VECTORS).version}," in readme


@pytest.mark.slow
def test_the_sdk_adapter_as_a_subprocess_agrees_with_its_in_process_run(subset, sdk_results):
    impl = shlex.join([sys.executable, str(REPO / "adapters" / "chatxdk_verify.py")])
    proc = vectors_cli(subset, "--profile", "signatures", "--impl", impl, "--jobs", "2", "--format", "json")
    data = json.loads(proc.stdout)
    assert data["profile"] == "signatures" and data["implementation"] == impl
    by_id = {r.case_id: r for r in sdk_results}
    for case in data["cases"]:
        assert (case["status"], case["problems"]) == (by_id[case["id"]].status, by_id[case["id"]].problems), case
    assert proc.returncode == (1 if data["failed"] else 0)


def test_the_sdk_adapter_reads_inputs_like_the_cli(tmp_path):
    """Exit 3 where xchat-verify cannot read an input; embedded keys refused (exit 2)."""
    adapter = load_adapter()
    case = VECTORS / "chain" / "gap"
    for bad in (b"{not json", b"[1]", b'{"errors": [{"title": "Forbidden"}]}', b"{}", b'{"data": "x"}'):
        page = tmp_path / "page.json"
        page.write_bytes(bad)
        assert call(adapter.main, [str(page), "--keys", str(case / "keyring.json")]).code == 3, bad
    ring = tmp_path / "ring.json"
    ring.write_text(json.dumps([{"user_id": "1", "public_key_version": "1", "signing_public_key": "BAAAAAAA"}]))
    assert call(adapter.main, [str(case / "page-1.json"), "--keys", str(ring)]).code == 3
    outcome = call(adapter.main, [str(case / "page-1.json"), "--allow-embedded-keys"])
    assert outcome.code == 2 and b"never uses keys carried in events" in outcome.stderr
    gz = tmp_path / "page.json.gz"
    gz.write_bytes(gzip.compress((case / "page-1.json").read_bytes()))
    outcome = call(adapter.main, [str(gz), "--keys", str(case / "keyring.json")])
    assert outcome.code == 0 and REPORT_SCHEMA.is_valid(json.loads(outcome.stdout))


# ------------------------------------------------------------------ an implementation that fails
ORACLE = r'''
import json, os, signal, subprocess, sys, time
args, pages, i = sys.argv[1:], [], 0
while i < len(args):
    if args[i] in ("--keys", "--conversation-key"):
        i += 2
        continue
    if not args[i].startswith("--"):
        pages.append(args[i])
    i += 1
def inputs(folder, spec):  # the case's files, to find it by content: the runner hands copies only
    names = spec["pages"] + [spec["keyring"] or ""]
    return [open(os.path.join(folder, n), "rb").read() if os.path.isfile(os.path.join(folder, n)) else None
            for n in names]
given = pages + [args[args.index("--keys") + 1] if "--keys" in args else ""]
given = [open(g, "rb").read() if os.path.isfile(g) else None for g in given]
for folder, _, files in os.walk(os.environ["ORACLE_SUITE"]):
    if os.path.isfile(os.path.join(folder, "expected.json")):  # a FIFO would block it
        spec = json.load(open(os.path.join(folder, "expected.json")))
        if inputs(folder, spec) == given:
            break
else:
    sys.exit(70)
want = spec["expected"]
fault = os.environ.get("FAULT", "") if os.environ.get("FAULT_CASE", "\0") in folder else ""
if fault == "signal":
    os.kill(os.getpid(), signal.SIGSEGV)
if fault == "exit70":
    print("first line\nboom: \x1b[31mred", file=sys.stderr)
    sys.exit(70)
if fault == "raise":
    raise RuntimeError("impl bug")
if fault == "usage":
    print("oracle: error: unrecognized arguments: --allow-empty", file=sys.stderr)
    sys.exit(2)
if fault == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    open(os.environ["PID_FILE"], "w").write(str(child.pid))
    time.sleep(60)
if fault == "exit3" or want["exit_code"] == 3:
    sys.exit(3)
if fault == "garbage":
    print("{not json")
    sys.exit(want["exit_code"])
events = [{"index": e["index"], "signature": {"status": e["signature"]}, "chain": {"status": e["chain"]},
           "findings": [{"code": c} for c in e["findings"]]} for e in want["events"]]
verdict, code = want["verdict"], want["exit_code"]
if fault == "shape":
    events[0]["signature"]["status"] = "ok"
if fault == "liar":
    verdict, code = "pass", 1
if fault == "chain-wrong":
    for e in events:
        e["chain"]["status"], e["findings"] = "linked", []
    verdict, code = ("fail", 1) if verdict == "pass" else ("pass", 0)
print(json.dumps({"verdict": verdict, "findings": [{"code": c} for c in want["findings"]],
                  "conversations": [{"events": events}]}))
sys.exit(code)
'''
SMALL = ("chain/gap", "chain/linked", "malformed/page-not-json", "proof/no-keyring")


@pytest.fixture()
def small(tmp_path) -> Path:
    root = tmp_path / "suite"
    for case_id in SMALL:
        shutil.copytree(VECTORS / case_id, root / case_id)
    return root


@pytest.fixture()
def pair(tmp_path) -> Path:
    root = tmp_path / "pair"
    for case_id in SMALL[:2]:
        shutil.copytree(VECTORS / case_id, root / case_id)
    return root


@pytest.fixture()
def oracle(tmp_path, monkeypatch) -> str:
    """An implementation that answers what each case expects (so only the injected fault can fail)."""
    script = tmp_path / "oracle.py"
    script.write_text(ORACLE)
    monkeypatch.setenv("ORACLE_SUITE", str(tmp_path))  # where it finds cases by content (it gets copies)
    return shlex.join([sys.executable, "-I", str(script)])


def test_an_implementation_that_answers_as_expected_passes(small, oracle):
    outcome = vectors_main(small, "--impl", oracle, "--jobs", "2")
    assert outcome.code == 0 and outcome.stdout.strip().endswith(b"4 passed, 0 failed"), outcome.stdout


@pytest.mark.parametrize("fault, reason", [
    ("signal", "crashed: killed by SIGSEGV"),
    ("exit70", "crashed: exit code 70: boom: \\x1b[31mred"),
    ("raise", "no report on stdout (exit code 1): RuntimeError: impl bug"),
    ("garbage", "invalid JSON on stdout (exit code 1): "),
    ("shape", 'report does not follow the protocol: conversations[0].events[0].signature.status: "ok" is not a '
              "signature status"),
    ("usage", "usage error (exit code 2): oracle: error: unrecognized arguments: --allow-empty"),
    ("exit3", "exit code 3, expected 1"),
    ("liar", "exit code 1 contradicts the report's verdict pass"),
])
def test_a_failing_implementation_fails_that_case_with_the_reason_and_the_run_goes_on(pair, oracle, fault, reason):
    outcome = vectors_main(pair, "--impl", oracle, env={"FAULT": fault, "FAULT_CASE": "chain/gap"})
    assert outcome.code == 1
    text = outcome.stdout.decode()
    failed = [line for line in text.splitlines() if line.startswith("FAIL ")]
    assert len(failed) == 1 and failed[0].startswith(f"FAIL chain/gap: {reason}"), failed
    assert "\x1b" not in text  # what the implementation printed is escaped
    assert text.strip().endswith("1 passed, 1 failed")  # chain/linked still ran


def test_a_hanging_implementation_is_killed_with_its_children_at_the_timeout(pair, oracle, tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    started = time.monotonic()
    outcome = vectors_main(pair, "--impl", oracle, "--timeout", "0.5", "--format", "json",
                           env={"FAULT": "hang", "FAULT_CASE": "chain/gap", "PID_FILE": str(pid_file)})
    assert time.monotonic() - started < 20
    cases = {c["id"]: c for c in json.loads(outcome.stdout)["cases"]}
    assert cases["chain/gap"]["problems"] == ["timed out after 0.5 s"]
    assert cases["chain/linked"]["status"] == "pass"
    grandchild = int(pid_file.read_text())
    for _ in range(100):  # killed with the process group; gone once its parent (init) reaps it
        try:
            state = Path(f"/proc/{grandchild}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            break
        if state in ("Z", "X"):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the implementation's child {grandchild} survived the timeout")


def test_output_beyond_the_cap_is_read_and_dropped(monkeypatch):
    monkeypatch.setattr(v, "MAX_REPORT_BYTES", 1_000_000)
    outcome = v.run_command([sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'x' * 3_000_000)"], 30)
    assert outcome.code == 0 and outcome.stdout_truncated and len(outcome.stdout) == 1_000_000
    spec = spec_of("chain/gap")
    assert v.judge_outcome(outcome, spec)[2] == ["report larger than 1,000,000 bytes"]
    exact = v.run_command([sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'x' * 1_000_000)"], 30)
    assert not exact.stdout_truncated


# ------------------------------------------------------------------------------------ profiles
PROFILE_OUTCOMES = {  # chain/gap, chain/linked, malformed/page-not-json, proof/no-keyring
    "signatures": ("pass", "pass", "pass", "out_of_profile"),
    "chain": ("fail", "fail", "pass", "out_of_profile"),
    "full": ("fail", "fail", "pass", "fail")}


@pytest.mark.parametrize("profile", PROFILE_OUTCOMES)
def test_profiles_compare_only_what_they_name(small, oracle, tmp_path, profile, monkeypatch):
    """Right signatures, every chain status `linked`, no findings, verdicts reversed."""
    monkeypatch.setenv("FAULT", "chain-wrong")
    monkeypatch.setenv("FAULT_CASE", "")
    junit, markdown, results = tmp_path / "results.xml", tmp_path / "summary.md", tmp_path / "results.json"
    outcome = vectors_main(small, "--impl", oracle, "--profile", profile, "--format", "json", "-o", results,
                           "--junit", junit, "--markdown", markdown)
    data = json.loads(results.read_text())
    statuses = tuple({c["id"]: c["status"] for c in data["cases"]}[case] for case in SMALL)
    assert statuses == PROFILE_OUTCOMES[profile]  # exit 3 (page-not-json) is compared in every profile
    passed, failed, skipped = (statuses.count(s) for s in ("pass", "fail", "out_of_profile"))
    assert (data["passed"], data["failed"], data["out_of_profile"]) == (passed, failed, skipped)
    full = profile == "full"
    assert data["groups"]["proof"] == {"passed": 0, "xfail": 0, "failed": int(full), "out_of_profile": int(not full)}
    assert outcome.code == (0 if failed == 0 else 1)
    warning, closing = outcome.stderr.decode().strip().splitlines()  # a subset of the suite: no release
    assert outcome.stdout == b"" and "match no released suite" in warning and closing == \
        f"{passed} passed, {failed} failed" + (f", {skipped} out of profile" if skipped else "")
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", str(failed), str(skipped))
    assert len(suite.findall("testcase/skipped")) == skipped
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["profile"] == profile
    assert f"| **total** | **{passed}** | **{failed}** | **{skipped}** |" in markdown.read_text()
    text = v.render_results(v.run_suite(small, profile=profile, runner=v.impl_runner(shlex.split(oracle), 30)),
                            "text", v.RunInfo(v.Suite(small), profile, oracle))
    lines = text.strip().splitlines()
    assert lines[-2].split() == ["total", str(passed), str(failed), str(skipped)]
    if skipped:
        assert "SKIP proof/no-keyring (out of profile " in text


def test_a_run_where_every_case_is_out_of_profile_proves_nothing(tmp_path):
    root = tmp_path / "suite"
    shutil.copytree(VECTORS / "proof" / "no-keyring", root / "proof" / "no-keyring")
    outcome = vectors_main(root, "--profile", "signatures")
    assert outcome.code == 1
    assert outcome.stdout.decode().strip().splitlines()[-1] == "0 passed, 0 failed, 1 out of profile"


@pytest.mark.parametrize("args, message", [
    (["--impl", ""], "--impl is empty"),
    (["--impl", "no-such-command-xyz --flag"], "command not found or not executable: no-such-command-xyz"),
    (["--impl", 'unbalanced "quote'], "--impl cannot be split into words"),
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--impl", "true", "--timeout", "0"], "--timeout must be greater than 0"),
    (["--timeout", "5"], "--timeout applies to --impl only"),
    (["export", "out.tar.gz", "vectors", "--profile", "chain"], "vectors export takes no run options"),
    (["export"], "usage: xchat-verify vectors export OUT.tar.gz [DIR]"),
    (["vectors", "other"], "vectors takes one suite directory"),
])
def test_usage_errors_are_one_line_exit_2(args, message):
    outcome = vectors_main(*args)
    stderr = outcome.stderr.decode().strip()
    assert outcome.code == 2 and outcome.stdout == b""
    assert stderr.splitlines() == [stderr] and message in stderr


# --------------------------------------------------------------------------- the report schema
GOOD = {"verdict": "pass", "conversations": [{"events": [{"index": 0, "signature": {"status": "valid"}}]}]}


def mutated(path: tuple, value) -> dict:
    doc = json.loads(json.dumps(GOOD))
    target = doc
    for step in path[:-1]:
        target = target[step]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


BAD_REPORTS = [
    [], "pass", mutated(("verdict",), "PASS"), mutated(("verdict",), KeyError), mutated(("conversations",), KeyError),
    mutated(("conversations",), {}), mutated(("conversations", 0), []), mutated(("conversations", 0, "events"), KeyError),
    mutated(("conversations", 0, "events", 0), "valid"), mutated(("conversations", 0, "events", 0, "index"), -1),
    mutated(("conversations", 0, "events", 0, "index"), "0"), mutated(("conversations", 0, "events", 0, "index"), True),
    mutated(("conversations", 0, "events", 0, "index"), KeyError),
    mutated(("conversations", 0, "events", 0, "signature"), "valid"),
    mutated(("conversations", 0, "events", 0, "signature"), {}),
    mutated(("conversations", 0, "events", 0, "signature", "status"), "verified"),
    mutated(("conversations", 0, "events", 0, "chain"), {"status": "ok"}),
    mutated(("conversations", 0, "events", 0, "chain"), {}),
    mutated(("conversations", 0, "events", 0, "findings"), [{"code": ""}]),
    mutated(("conversations", 0, "events", 0, "findings"), ["gap"]),
    mutated(("conversations", 0, "findings"), {"code": "x"}), mutated(("findings",), [{"severity": "error"}]),
]
GOOD_REPORTS = [GOOD, mutated(("conversations",), []),
                mutated(("conversations", 0, "events", 0, "chain"), {"status": "start", "detail": "x"}),
                mutated(("findings",), [{"code": "no_trusted_keys", "severity": "error", "message": "m"}]),
                mutated(("conversations", 0, "extra"), {"anything": 1})]


@pytest.mark.parametrize("doc", BAD_REPORTS, ids=range(len(BAD_REPORTS)))
def test_the_runner_and_the_schema_refuse_the_same_reports(doc):
    assert v.report_problems(doc) and not REPORT_SCHEMA.is_valid(doc)


@pytest.mark.parametrize("doc", GOOD_REPORTS, ids=range(len(GOOD_REPORTS)))
def test_the_runner_and_the_schema_accept_the_same_reports(doc):
    assert v.report_problems(doc) == [] and REPORT_SCHEMA.is_valid(doc)


def test_the_schemas_are_valid_json_schemas_and_name_the_whole_vocabulary():
    from verifier.model import ChainStatus, SigStatus
    for validator in (REPORT_SCHEMA, EXPECTED_SCHEMA):
        jsonschema.Draft202012Validator.check_schema(validator.schema)
    event = REPORT_SCHEMA.schema["$defs"]["event"]["properties"]
    assert set(event["signature"]["properties"]["status"]["enum"]) == {str(s) for s in SigStatus}
    assert set(event["chain"]["properties"]["status"]["enum"]) == {str(s) for s in ChainStatus}


# ----------------------------------------------------------------------------------- export
@pytest.mark.slow
def test_export_is_deterministic_complete_and_checksummed(tmp_path):
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    proc = vectors_cli("export", first, VECTORS)
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    v.export_suite(VECTORS, second)
    assert first.read_bytes() == second.read_bytes()
    raw = first.read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # gzip header without a timestamp
    version = json.loads((VECTORS / "index.json").read_text())["suite_version"]
    top = f"xchat-verify-vectors-{version}"
    with tarfile.open(first) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names) and all(n.startswith(top + "/") for n in names)
        assert all(m.isfile() and m.mtime == v.EXPORT_MTIME and (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
                   and m.mode == 0o644 for m in members)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tmp_path / "x", filter="data")
        else:  # Python without extraction filters: the names were checked above
            tar.extractall(tmp_path / "x")
    root = tmp_path / "x" / top
    files = {n[len(top) + 1:] for n in names}
    assert files == set(v.suite_files(VECTORS)) | {"SHA256SUMS"}
    assert {"index.json", "report.schema.json", "expected.schema.json"} <= files
    assert not any(n.endswith(".py") for n in files)
    sums = dict(reversed(line.split("  ", 1)) for line in (root / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == files - {"SHA256SUMS"}
    for name, digest in sums.items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest
    if shutil.which("sha256sum"):
        assert subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=root).returncode == 0
    suite = v.load_suite(root)
    assert suite.version == version and not suite.modified  # the very files the committed suite has
    assert v.summary_ok(v.run_suite(root / "chain"))  # and the unpacked copy runs


def test_export_refuses_a_changed_or_unversioned_suite(tmp_path):
    copy = tmp_path / "suite"
    shutil.copytree(VECTORS, copy, ignore=shutil.ignore_patterns("generate.py", "__pycache__"))
    page = copy / "chain" / "gap" / "page-1.json"
    page.write_bytes(page.read_bytes() + b"\n")
    outcome = vectors_main("export", tmp_path / "out.tar.gz", copy)
    assert outcome.code == 3 and b"was changed" in outcome.stderr and not (tmp_path / "out.tar.gz").exists()
    (copy / "index.json").unlink()
    outcome = vectors_main("export", tmp_path / "out.tar.gz", copy)
    assert outcome.code == 3 and b"no index.json with a suite_version" in outcome.stderr


def test_export_of_a_suite_with_a_name_that_is_not_utf8_keeps_its_bytes(tmp_path):
    """Round 113: the runner hashes and runs a suite holding a file whose name is not UTF-8, but its
    export ended in an internal error (UnicodeEncodeError writing SHA256SUMS). The name is its
    bytes in SHA256SUMS, as in the digest, and the unpacked copy is the same suite."""
    suite = tmp_path / "suite"
    shutil.copytree(VECTORS / "chain" / "gap", suite / "chain" / "gap")
    for name in v.SCHEMA_FILES:
        shutil.copy(VECTORS / name, suite / name)
    odd = os.path.join(os.fsencode(suite / "chain"), b"notes-\xff.txt")
    with open(odd, "wb") as handle:
        handle.write(b"a note\n")
    digest = v.suite_digest(suite)
    (suite / "index.json").write_text(json.dumps({"suite_version": "9.9.9", "digest": digest}))
    outcome = vectors_main("export", tmp_path / "out.tar.gz", suite)
    assert outcome.code == 0, outcome.stderr
    with tarfile.open(tmp_path / "out.tar.gz") as tar:
        sums = tar.extractfile("xchat-verify-vectors-9.9.9/SHA256SUMS").read()  # type: ignore[union-attr]
        assert b"  chain/notes-\xff.txt\n" in sums
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tmp_path / "x", filter="data")
        else:  # Python without extraction filters: the export's own names
            tar.extractall(tmp_path / "x")
    assert v.suite_digest(tmp_path / "x" / "xchat-verify-vectors-9.9.9") == digest


def test_export_never_makes_directories_nor_writes_into_the_suite(tmp_path, monkeypatch):
    """Round 80: `vectors export /typo/x.tar.gz` created /typo (every other output's directory must
    exist), `vectors export vectors/index.json vectors` replaced the suite's own index with the
    tarball, and `vectors export -` wrote a file named "-"."""
    missing = tmp_path / "typo" / "out.tar.gz"
    outcome = vectors_main("export", missing, VECTORS)
    assert outcome.code == 3 and b"does not exist" in outcome.stderr and not missing.parent.exists()
    copy = tmp_path / "suite"
    shutil.copytree(VECTORS, copy, ignore=shutil.ignore_patterns("generate.py", "__pycache__"))
    index = (copy / "index.json").read_bytes()
    for inside in (copy / "index.json", copy / "out.tar.gz"):
        outcome = vectors_main("export", inside, copy)
        assert outcome.code == 2 and b"inside the suite" in outcome.stderr
    assert (copy / "index.json").read_bytes() == index and not (copy / "out.tar.gz").exists()
    monkeypatch.chdir(tmp_path)
    outcome = vectors_main("export", "-", VECTORS)
    assert outcome.code == 2 and not (tmp_path / "-").exists()
    with pytest.raises(OSError):  # the library makes no directory either
        v.export_suite(VECTORS, tmp_path / "typo2" / "out.tar.gz")
    assert not (tmp_path / "typo2").exists()


@pytest.mark.parametrize("fmt", ["text", "junit", "markdown", "json"])
def test_a_lone_surrogate_in_an_implementation_s_output_is_shown_escaped(tmp_path, fmt):
    """Second review: an implementation printing ``"detail": "\\ud800 x"`` (valid JSON) ended the
    run in an internal error when the results were written; it is shown escaped."""
    case = "kinds/MessageCreateEvent-v7-valid"
    shutil.copytree(VECTORS / case, tmp_path / "suite" / case)
    impl = tmp_path / "impl.py"
    output = '{"verdict":"pass","conversations":[{"events":[{"index":0,"signature":{"status":"invalid",' \
             '"detail":"\\ud800 x"},"chain":{"status":"start"}}]}]}'
    impl.write_text(f"import sys\nsys.stdout.write({output!r})\n")
    proc = vectors_cli(tmp_path / "suite", "--impl", f"{sys.executable} {impl}", "--format", fmt)
    assert proc.returncode == 1 and "internal error" not in proc.stderr, proc.stderr
    if fmt != "json":
        assert "\\ud800" in proc.stdout


# ------------------------------------------------------------ what an implementation leaves behind
def _gone(pid: int) -> bool:
    for _ in range(100):  # killed; gone once init reaps it
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] in ("Z", "X"):
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


LEAVES_A_CHILD = r'''
import os, sys, time
ready, told = os.pipe()
pid = os.fork()
if pid == 0:
    if sys.argv[1] == "setsid":
        os.setsid()
    if sys.argv[2] == "close":
        os.close(1); os.close(2)
    os.write(told, b"!")
    time.sleep(20)
    os._exit(0)
os.read(ready, 1)  # exit only once the child has left the group (or not)
open(sys.argv[3], "w").write(str(pid))
print('{"verdict": "fail", "conversations": []}', flush=True)
os._exit(1)
'''


@pytest.mark.parametrize("keeps", ["keep", "close"])
def test_a_child_in_the_group_is_killed_when_the_implementation_exits(tmp_path, keeps):
    """Review 47 #3, #4: the group was killed only on timeout, so a child holding stdout held the
    runner for its whole life, and one that closed it outlived the run."""
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    outcome = v.run_command([sys.executable, "-c", LEAVES_A_CHILD, "group", keeps, str(pid_file)], 10)
    assert time.monotonic() - started < 5
    assert outcome.code == 1 and not outcome.held_open and b'"verdict"' in outcome.stdout
    assert _gone(int(pid_file.read_text()))


def test_a_child_that_escapes_the_group_cannot_hold_the_runner_past_the_timeout(tmp_path):
    """Review 47 #3: ``stream.close()`` waited on the reader thread's lock for as long as the
    escaped child held the pipe (forever, for one that never exits)."""
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    try:
        outcome = v.run_command([sys.executable, "-c", LEAVES_A_CHILD, "setsid", "keep", str(pid_file)], 1.5)
        assert time.monotonic() - started < 5
    finally:
        os.kill(int(pid_file.read_text()), 9)
    assert outcome.code == 1 and outcome.held_open
    problems = v.judge_outcome(outcome, spec_of("chain/gap"), 1.5)[2]
    assert problems == ["its output stayed open 1.5 s after it exited (a process it left behind holds stdout or stderr)"]


@pytest.mark.parametrize("code", [3, 1])
def test_a_process_left_holding_the_output_fails_a_case_whatever_the_exit_code(code):
    """Round 110: on a case that expects exit code 3, an implementation that exited 3 while a process
    it left outside its group held its output (the runner waiting the whole timeout) passed; the
    protocol fails every such case."""
    spec = spec_of("malformed/page-not-json")
    assert spec["expected"]["exit_code"] == 3
    outcome = v.Outcome(code, b"", b"", held_open=True)
    problems = v.judge_outcome(outcome, spec, 1.5)[2]
    assert problems == ["its output stayed open 1.5 s after it exited (a process it left behind holds stdout or stderr)"]


@pytest.mark.parametrize("name", ["chain/gap/expected.json", "chain/gap/page-1.json", "index.json"])
@pytest.mark.parametrize("mode", ["in-process", "impl"])
def test_a_fifo_as_a_suite_file_is_an_error_never_a_blocking_read(pair, oracle, name, mode):
    """Review 47 #5: a FIFO as expected.json (or a page, in-process) blocked the runner forever."""
    target = pair / name
    target.unlink(missing_ok=True)
    os.mkfifo(target)
    args = ["--impl", oracle, "--timeout", "10"] if mode == "impl" else []
    proc = vectors_cli(pair, *args, timeout=60)
    if name == "index.json":
        assert proc.returncode == 3 and proc.stderr.strip() == f"xchat-verify: index.json of {pair} is not readable " \
                                                                "JSON: index.json is not a regular file"
        return
    assert proc.returncode == 1 and proc.stdout.strip().endswith("1 passed, 1 failed")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("FAIL chain/gap: "))
    assert line.endswith(f"{Path(name).name} is not a regular file")
