"""The conformance suite: reproducible, all cases pass, runner semantics, and the SDK agrees."""

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import REPO, run_cli

from verifier import vectors

VECTORS = REPO / "vectors"
sys.path.insert(0, str(VECTORS))


def committed_files() -> dict[str, bytes]:
    return {p.relative_to(VECTORS).as_posix(): p.read_bytes() for p in VECTORS.rglob("*")
            if p.is_file() and p.name != "generate.py" and "__pycache__" not in p.parts}


def test_regenerating_reproduces_every_committed_vector(tmp_path):
    import generate
    generate.generate(tmp_path)
    fresh = {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    committed = committed_files()
    assert sorted(fresh) == sorted(committed)
    changed = [name for name in fresh if fresh[name] != committed[name]]
    assert changed == [], f"regenerated vectors differ: {changed[:5]}"


def test_suite_covers_the_required_ground():
    ids = json.loads((VECTORS / "index.json").read_text())["cases"]
    groups = {i.split("/")[0] for i in ids}
    assert groups == {"kinds", "versions", "signatures", "encoding", "keys", "payload", "chain", "envelope",
                      "malformed", "structure", "proof", "fixture", "semantics"}
    for version in range(2, 8):
        assert sum(i.endswith(f"-v{version}-valid") for i in ids) == 25
        assert sum(i.endswith(f"-v{version}-tampered") for i in ids) == 25
    statuses = set()
    for case in VECTORS.rglob("expected.json"):
        expected = json.loads(case.read_text())["expected"]
        statuses |= set(expected["findings"])
        for e in expected["events"]:
            statuses |= {e["signature"], e["chain"], *e["findings"]}
    assert statuses >= {"valid", "invalid", "unsupported_version", "unknown_key", "key_binding_invalid",
                        "missing_signature", "not_signed", "needs_conversation_key", "unverifiable", "malformed",
                        "linked", "start", "gap", "fork", "duplicate", "conflict", "non_monotonic", "cycle",
                        "out_of_band", "envelope_mismatch", "key_conflict", "conversation_mismatch", "untrusted",
                        "replay", "meta_not_key_change", "trailing_bytes", "shadowed_detail", "no_trusted_keys",
                        "no_events", "nothing_proven", "target_missing", "target_after_event", "non_member_sender"}


def run(*args):
    proc = run_cli(["vectors", *args])  # in process: the same entry point as the console script
    assert "Traceback" not in proc.stderr
    return proc


def test_runner_passes_the_committed_suite():
    proc = run(VECTORS)
    assert proc.returncode == 0, proc.stdout[-2000:]
    lines = proc.stdout.strip().splitlines()
    ids = json.loads((VECTORS / "index.json").read_text())["cases"]
    case_lines = [line for line in lines if line.split(" ", 1)[0] in ("PASS", "FAIL", "SKIP")]
    assert sorted(line.split()[1] for line in case_lines) == sorted(ids)
    assert all(line.startswith("PASS ") for line in case_lines)
    assert f"suite {generate_module().SUITE_VERSION}, profile full, implementation: xchat-verify (in-process)" in lines
    assert lines[-2].split() == ["total", str(len(ids)), "0", "0"]
    assert lines[-1] == f"{len(ids)} passed, 0 failed"


def generate_module():
    import generate
    return generate


def test_suite_version_is_bumped_on_any_change():
    """index.json carries the suite version and the digest of the content; a content change without
    a new version in generate.RELEASES fails here (the regeneration test keeps the digest honest)."""
    from verifier.vectors import suite_digest
    generate = generate_module()
    index = json.loads((VECTORS / "index.json").read_text())
    assert index["suite_version"] == generate.SUITE_VERSION
    assert index["digest"] == suite_digest(VECTORS)
    assert generate.RELEASES.get(generate.SUITE_VERSION) == index["digest"], (
        f"the suite changed without a version bump: add a new SUITE_VERSION to RELEASES with {index['digest']}")
    versions = list(generate.RELEASES)
    assert all(re.fullmatch(r"20[0-9]{2}\.[0-9]{1,2}\.[0-9]+", v) for v in versions)
    assert versions == sorted(versions, key=lambda v: tuple(map(int, v.split(".")))), "append new versions"
    assert versions[-1] == generate.SUITE_VERSION
    assert len(set(generate.RELEASES.values())) == len(versions), "each version has its own content"


@pytest.mark.slow
def test_any_change_to_a_case_or_schema_changes_the_digest(tmp_path):
    from verifier.vectors import load_suite, suite_digest
    copy = tmp_path / "suite"
    shutil.copytree(VECTORS, copy, ignore=shutil.ignore_patterns("generate.py", "__pycache__"))
    assert not load_suite(copy).modified
    original = suite_digest(copy)
    for name in ("chain/gap/expected.json", "report.schema.json", "kinds/MessageCreateEvent-v2-valid/page-1.json"):
        target = copy / name
        raw = target.read_bytes()
        target.write_bytes(raw.replace(b"}", b" }", 1))
        assert suite_digest(copy) != original, name
        assert load_suite(copy).modified
        target.write_bytes(raw)
    (copy / "chain" / "new-case").mkdir()
    (copy / "chain" / "new-case" / "expected.json").write_text("{}")
    assert suite_digest(copy) != original
    one = tmp_path / "one"  # the runner says so (a one-case suite whose index records another digest)
    shutil.copytree(VECTORS / "chain" / "gap", one / "chain" / "gap")
    (one / "index.json").write_text(json.dumps({"suite_version": "2026.12.1", "digest": original}))
    proc = run(one)
    assert proc.returncode == 0 and "differ from the digest in its index.json" in proc.stderr
    assert "suite 2026.12.1 (MODIFIED: its files differ from the digest in index.json)" in proc.stdout


@pytest.fixture()
def small_suite(tmp_path):
    root = tmp_path / "suite"
    for case in ("chain/linked", "versions/1", "signatures/high-s-twin"):
        shutil.copytree(VECTORS / case, root / case)
    broken = root / "versions" / "1" / "expected.json"
    spec = json.loads(broken.read_text())
    spec["expected"]["events"][0]["signature"] = "valid"
    broken.write_text(json.dumps(spec))
    return root


def test_runner_reports_failures_and_formats(small_suite, tmp_path):
    proc = run(small_suite)
    assert proc.returncode == 1
    assert "FAIL versions/1: " in proc.stdout and "signature unsupported_version, expected valid" in proc.stdout
    assert proc.stdout.strip().endswith("2 passed, 1 failed")
    data = json.loads(run(small_suite, "--format", "json").stdout)
    assert (data["passed"], data["failed"]) == (2, 1)
    root = ET.fromstring(run(small_suite, "--format", "junit").stdout)
    assert root.get("failures") == "1" and len(root.findall("testcase")) == 3


def test_xfail_is_strict(small_suite, tmp_path):
    xfail = tmp_path / "xfail.txt"
    xfail.write_text("versions/1  # known\n")
    assert run(small_suite, "--xfail", xfail).returncode == 0
    xfail.write_text("versions/1\nchain/linked\n")
    proc = run(small_suite, "--xfail", xfail)
    assert proc.returncode == 1 and "xfail case passed" in proc.stdout
    xfail.write_text("no/such-case\n")
    assert run(small_suite, "--xfail", xfail).returncode == 2


@pytest.mark.parametrize("profile", ["full", "chain"])
@pytest.mark.parametrize("mutate, where", [
    (lambda spec: spec["expected"].update(events=[5]), "$.expected.events[0]"),
    (lambda spec: spec["expected"].update(findings=5), "$.expected.findings"),
    (lambda spec: spec.update(options=[1]), "$.options"),
    (lambda spec: spec["expected"].pop("verdict"), "verdict"),
    (lambda spec: spec["expected"]["events"][0].pop("chain"), "chain"),
    (lambda spec: spec.update(pages="page-1.json"), "$.pages"),
    (lambda spec: spec["options"].update(conversation_keys={"1": "not base64!"}), "$.options.conversation_keys"),
])
def test_a_malformed_expected_json_fails_its_case_only(small_suite, mutate, where, profile):
    """Review: one such case stopped the whole run with an internal error (exit 3, the code of
    "no cases"); it is that case's failure, and the others still run."""
    target = small_suite / "chain" / "linked" / "expected.json"
    spec = json.loads(target.read_text())
    mutate(spec)
    target.write_text(json.dumps(spec))
    proc = run(small_suite, "--profile", profile)
    assert proc.returncode == 1 and "internal error" not in proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("FAIL chain/linked: "))
    assert "unreadable expected.json: not an expected.json of schema xchat-verify/vector/v1" in line and where in line
    assert proc.stdout.strip().endswith("1 passed, 2 failed")  # versions/1 is the fixture's other broken case


def test_runner_errors(tmp_path):
    assert run(tmp_path / "missing").returncode == 3
    assert run(tmp_path).returncode == 3  # no cases


# ------------------------------------------------------------------ the official SDK as a second judge
import chat_xdk  # noqa: E402  (the official SDK is in the test extra: missing it is an error, not a skip)


def _sdk_keys(ring) -> list[dict] | None:
    rows = ring["keys"] if isinstance(ring, dict) and "keys" in ring else ring if isinstance(ring, list) else None
    if rows is None:
        return None
    return [{"user_id": r["user_id"], "public_key_version": r["public_key_version"], "public_key": r["signing_public_key"],
             "identity_public_key": r.get("public_key", ""), "identity_public_key_signature":
                 r.get("identity_public_key_signature", "")} for r in rows]


def _sdk_verdict(chat, b64: str, keys: dict, signing: list[dict]) -> str:
    try:
        out = chat.decrypt_event(b64, conversation_keys=keys, signing_keys=signing)
    except ValueError as exc:
        text = str(exc).lower()
        if text.startswith(("parse error", "serialization error")):
            return "unreadable"
        if "signature could not be verified" in text:
            return "unverifiable"  # the SDK's Ok(false): no signature, no key, or no payload
        return "failed" if "signature" in text else "error"  # Err: the signature was checked and refused
    if "verified" not in out:
        # A message without contents comes back as an unverified "Unknown" (type id 1): a signed
        # kind that proves nothing, which fails here as unverifiable.
        return "unverifiable" if out.get("event_type_id") == 1 else "not_signed"
    return "valid" if out["verified"] else "unverifiable"


# Our status -> the SDK outcome that means the same thing (protocol.md §5.1).
SDK_AGREES = {"valid": {"valid"}, "not_signed": {"not_signed"}, "invalid": {"failed"},
              "unsupported_version": {"failed"}, "unknown_key": {"unverifiable"},
              "key_binding_invalid": {"unverifiable"}, "missing_signature": {"unverifiable"},
              "unverifiable": {"unverifiable"}, "malformed": {"unreadable"}}


# Cases where xchat-verify departs from the SDK on purpose (docs/threat-model.md): with two different
# keys for one (user, version) the SDK takes the first row, so its verdict depends on row order.
DELIBERATE = {"keys/duplicate-rows-good-first", "keys/duplicate-rows-good-last"}


def test_sdk_agrees_with_every_signature_status_it_can_judge():
    import generate
    chat = chat_xdk.Chat()
    chat.set_reject_unverified(True)
    judged, by_status = 0, {}
    for case in sorted(VECTORS.rglob("expected.json")):
        spec = json.loads(case.read_text())
        if not spec["keyring"] or spec["options"]["allow_embedded_keys"] or spec["id"].startswith("keys/keyring-") \
                or spec["id"] in DELIBERATE or spec["expected"]["exit_code"] == 3:
            continue  # the SDK only uses caller-supplied keys in the SDK's own row shape
        signing = _sdk_keys(json.loads((case.parent / spec["keyring"]).read_text()))
        keys = {generate.CKV: generate.CKEY}  # lets the SDK decrypt messages after judging them
        keys.update({v: base64.b64decode(k) for v, k in spec["options"]["conversation_keys"].items()})
        index = 0
        for name in spec["pages"]:
            try:
                body = json.loads((case.parent / name).read_text())
            except ValueError:
                break
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                break
            items = [i.get("encoded_event") if isinstance(i, dict) else None for i in body["data"]]
            items += (body.get("meta") or {}).get("conversation_key_events", [])
            for encoded in items:
                want = spec["expected"]["events"][index]["signature"]
                index += 1
                if want not in SDK_AGREES or not isinstance(encoded, str):
                    continue
                sdk = _sdk_verdict(chat, encoded, keys, signing)
                if sdk == "error":  # e.g. content it cannot decrypt: not a signature judgement
                    continue
                assert sdk in SDK_AGREES[want], (spec["id"], want, sdk)
                judged += 1
                by_status[want] = by_status.get(want, 0) + 1
    assert judged >= 350
    assert {"valid", "invalid", "unsupported_version", "unknown_key", "key_binding_invalid", "missing_signature",
            "not_signed", "unverifiable", "malformed"} <= set(by_status), by_status


def test_a_missing_suite_directory_says_where_the_default_was_looked_for(tmp_path, monkeypatch):
    """Review 38: run outside the repository, `vectors` said only "vectors is not a directory"."""
    monkeypatch.chdir(tmp_path)
    for args in (["vectors"], ["vectors", "export", str(tmp_path / "out.tar.gz")]):
        result = run_cli(args)
        assert result.returncode == 3
        assert result.stderr.strip() == f"xchat-verify: vectors is not a directory (no suite directory was named; " \
                                         f"the default is ./vectors in {tmp_path})"
    named = run_cli(["vectors", str(tmp_path / "none")])
    assert named.returncode == 3 and named.stderr.strip() == f"xchat-verify: {tmp_path / 'none'} is not a directory"


def test_a_removed_working_directory_is_one_line(tmp_path):
    """Review 44: the message's os.getcwd() raised (internal error) in a directory that was removed."""
    import os
    import subprocess
    gone = tmp_path / "gone"
    gone.mkdir()
    script = (f"import os, sys; os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); "
              "from verifier.cli import main; sys.exit(main(['vectors']))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 3
    assert result.stderr.strip() == "xchat-verify: vectors is not a directory (no suite directory was named; the default " \
                                    "is ./vectors in the current directory, which no longer exists)"


@pytest.mark.parametrize("where", ["../../../outside.json", "/etc/passwd", "./page-1.json"])
@pytest.mark.parametrize("field", ["pages", "keyring"])
def test_an_input_path_outside_the_case_directory_fails_its_case(small_suite, where, field):
    """Review 47 #11: ``../`` and absolute page or keyring paths were read (and handed to --impl)."""
    (small_suite.parent / "outside.json").write_text("{}")
    target = small_suite / "chain" / "linked" / "expected.json"
    spec = json.loads(target.read_text())
    spec[field] = [where] if field == "pages" else where
    target.write_text(json.dumps(spec))
    proc = run(small_suite)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("FAIL chain/linked: "))
    assert f"input path {where} is not a plain path inside the case directory" in line
    assert proc.returncode == 1 and proc.stdout.strip().endswith("1 passed, 2 failed")


ECHO_EXPECTED = r'''
import json, os, sys
pages = [a for a in sys.argv[1:] if a.startswith("/")]
try:
    want = json.load(open(os.path.join(os.path.dirname(pages[0]), "expected.json")))["expected"]
except OSError:
    sys.exit(70)
if want["exit_code"] == 3:
    sys.exit(3)
events = [{"index": e["index"], "signature": {"status": e["signature"]}, "chain": {"status": e["chain"]},
           "findings": [{"code": c} for c in e["findings"]]} for e in want["events"]]
print(json.dumps({"verdict": want["verdict"], "findings": [{"code": c} for c in want["findings"]],
                  "conversations": [{"events": events}]}))
sys.exit(want["exit_code"])
'''
REWRITE_SUITE = r'''
import json, os, sys
for folder, _, files in os.walk(os.environ["SUITE"]):
    if "expected.json" in files:
        path = os.path.join(folder, "expected.json")
        spec = json.load(open(path))
        spec["expected"] = {"verdict": "fail", "exit_code": 3, "findings": [], "events": []}
        json.dump(spec, open(path, "w"))
sys.exit(3)
'''


def impl(tmp_path, source: str) -> str:
    script = tmp_path / "impl.py"
    script.write_text(source)
    return f"{sys.executable} -I {script}"


def test_an_implementation_gets_copies_of_the_inputs_never_expected_json(small_suite, tmp_path):
    """Review 47 #1: handed the case directory, an implementation echoed expected.json (451 passed)."""
    proc = run(small_suite, "--impl", impl(tmp_path, ECHO_EXPECTED), "--timeout", "20")
    assert proc.returncode == 1 and proc.stdout.strip().endswith("0 passed, 3 failed")
    assert proc.stdout.count("crashed: exit code 70") == 3


def test_an_implementation_that_rewrites_the_suite_changes_no_expectation_and_is_reported(small_suite, tmp_path,
                                                                                        monkeypatch):
    """Review 47 #2: each expected.json was read just before its case, so the first case's run could
    rewrite what every later case expects; the heading still called the suite unmodified."""
    monkeypatch.setenv("SUITE", str(small_suite))
    proc = run(small_suite, "--impl", impl(tmp_path, REWRITE_SUITE), "--timeout", "20")
    assert proc.returncode == 1 and proc.stdout.strip().endswith("0 passed, 3 failed")
    assert "(CHANGED DURING THE RUN: its files differ from before the run)" in proc.stdout
    assert "changed during the run (an implementation wrote to the suite?)" in proc.stderr


NESTED = "[" * 100_000 + "]" * 100_000


def test_deeply_nested_json_in_a_suite_is_a_case_or_suite_error(small_suite, tmp_path):
    """Review 47 #6: RecursionError in expected.json or index.json was an internal error (exit 3,
    every result and the JUnit file lost)."""
    (small_suite / "chain" / "linked" / "expected.json").write_text(NESTED)
    junit = tmp_path / "out.xml"
    proc = run(small_suite, "--junit", junit)
    assert proc.returncode == 1 and "FAIL chain/linked: unreadable expected.json: JSON nested too deeply" in proc.stdout
    assert proc.stdout.strip().endswith("1 passed, 2 failed") and ET.parse(junit).getroot().get("failures") == "2"
    (small_suite / "index.json").write_text(NESTED)
    proc = run(small_suite)
    assert proc.returncode == 3
    assert proc.stderr.strip() == f"xchat-verify: index.json of {small_suite} is not readable JSON: nested too deeply"


def test_a_deeply_nested_value_in_a_report_is_a_protocol_problem():
    from verifier.vectors import report_problems
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert report_problems({"verdict": deep, "conversations": []}) == ["verdict: a value nested too deeply is not pass or fail"]


HOSTILE_NAMES = [b"bad\xffname", b"x\n\x1b[1A\x1b[2K\rPASS all-good\n\n451 passed, 0 failed\x1b[8m"]


def test_hostile_case_names_are_escaped_in_every_output(tmp_path):
    """Review 47 #7, #8: a non-UTF-8 case directory name ended -o/--junit/--markdown as an internal
    error; newlines and ANSI escapes in a name printed fake PASS lines and broke the JUnit XML."""
    import os
    root = tmp_path / "suite"
    for name in HOSTILE_NAMES:
        shutil.copytree(VECTORS / "chain" / "gap", os.fsdecode(os.fsencode(root / "g") + b"/" + name))
    out, junit, md = tmp_path / "out.txt", tmp_path / "out.xml", tmp_path / "out.md"
    proc = run(root, "-o", out, "--junit", junit, "--markdown", md)
    assert proc.returncode == 0 and "internal error" not in proc.stderr
    text = out.read_text(encoding="utf-8")
    assert "PASS g/bad\\udcffname\n" in text
    assert "PASS g/x\\x0a\\x1b[1A\\x1b[2K\\x0dPASS all-good\\x0a\\x0a451 passed, 0 failed\\x1b[8m\n" in text
    assert "\x1b" not in text and "\r" not in text and not any(line.startswith("PASS all-good") for line in text.splitlines())
    names = sorted(case.get("name") for case in ET.parse(junit).getroot().iter("testcase"))
    assert names == ["bad\\udcffname", "x\\x0a\\x1b[1A\\x1b[2K\\x0dPASS all-good\\x0a\\x0a451 passed, 0 failed\\x1b[8m"]
    markdown = md.read_text(encoding="utf-8")
    assert "\x1b" not in markdown and "| g | 2 | 0 | 0 |" in markdown
    for fmt in ("text", "json", "junit", "markdown"):
        shown = run(root, "--format", fmt)
        assert shown.returncode == 0 and "\x1b" not in shown.stdout and "\udcff" not in shown.stdout, fmt


def test_excused_cases_never_read_as_passed(small_suite, tmp_path):
    """Review 47 #9: an xfail list covering every failure gave "N passed, 0 failed", markdown
    "conformance: passed" and a JUnit file of plain passes. The run still exits 0 (docs/vectors.md)."""
    xfail = tmp_path / "xfail.txt"
    xfail.write_text("versions/1\n")
    junit, md = tmp_path / "out.xml", tmp_path / "out.md"
    proc = run(small_suite, "--xfail", xfail, "--junit", junit, "--markdown", md)
    assert proc.returncode == 0
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == "2 passed, 1 expected failures (xfail), 0 failed"
    assert lines[-2].split() == ["total", "2", "1", "0", "0"]
    assert any(line.startswith("XFAIL versions/1 (expected failure, excused): event 0: signature") for line in lines)
    markdown = md.read_text()
    assert markdown.startswith("### xchat-verify conformance: passed with 1 expected failure (xfail) excused\n")
    assert "| **total** | **2** | **1** | **0** | **0** |" in markdown and "Expected failures, excused by --xfail (1)" in markdown
    root = ET.parse(junit).getroot()
    assert (root.get("failures"), root.get("skipped")) == ("0", "1")
    assert root.find("properties/property[@name='xfail']").get("value") == "1"
    skipped = [c.get("name") for c in root.iter("testcase") if c.find("skipped") is not None]
    assert skipped == ["1"]
    data = json.loads(run(small_suite, "--xfail", xfail, "--format", "json").stdout)
    assert (data["passed"], data["xfail"], data["failed"]) == (2, 1, 0)
    assert {c["id"]: c["status"] for c in data["cases"]}["versions/1"] == "xfail"


def test_an_unhashable_status_is_a_protocol_problem_not_a_verifier_crash():
    """Review 47 #12: ``{"status": []}`` failed the case as "verifier raised TypeError"."""
    from verifier.vectors import report_problems
    doc = {"verdict": "pass", "conversations": [{"events": [{"index": 0, "signature": {"status": []},
                                                              "chain": {"status": {}}}]}]}
    assert report_problems(doc) == ["conversations[0].events[0].signature.status: [] is not a signature status",
                                    "conversations[0].events[0].chain.status: {} is not a chain status"]


def test_the_usage_shows_one_suite_directory_or_export(capsys):
    """``[DIR ...]`` read as if several suites could be run; ``vectors a b`` is a usage error."""
    from verifier.cli import main
    with pytest.raises(SystemExit):
        main(["vectors", "--help"])
    usage = capsys.readouterr().out.split("\n\n")[0]
    assert "[DIR ...]" not in usage and "[DIR | export OUT.tar.gz [DIR]]" in usage
    assert run("a", "b").returncode == 2


def test_a_suite_that_matches_no_release_is_run_with_a_warning(small_suite, tmp_path):
    """The runner compared a suite with its own index.json only: an edited copy with a regenerated
    index read as a released suite. Now its digest is compared with every release (a warning)."""
    from verifier.vectors import RELEASES, load_suite
    assert load_suite(VECTORS).release == generate_module().SUITE_VERSION
    assert generate_module().RELEASES is RELEASES  # one list of releases, which the installed runner has
    small_suite.joinpath("versions", "1", "expected.json").unlink()  # the rest passes
    out = tmp_path / "results.json"
    proc = run(small_suite, "--format", "json", "-o", out)
    assert proc.returncode == 0 and "match no released suite" in proc.stderr
    assert json.loads(out.read_text())["suite_release"] is None
    assert "(UNRELEASED: its files match no released suite)" in run(small_suite).stdout


def test_cases_index_json_lists_and_the_suite_holds_are_compared(tmp_path):
    """A listed case missing from the suite fails (it was not run: the run must not read as
    conformance); a case present but not listed is run, with a warning (docs/vectors.md)."""
    root = tmp_path / "suite"
    for case in ("chain/gap", "chain/linked"):
        shutil.copytree(VECTORS / case, root / case)
    (root / "index.json").write_text(json.dumps({"suite_version": "mine", "cases": ["chain/gap", "chain/fork"]}))
    proc = run(root)
    assert proc.returncode == 1
    assert "FAIL chain/fork: listed in index.json but missing from the suite" in proc.stdout
    assert "PASS chain/linked" in proc.stdout and "PASS chain/gap" in proc.stdout
    assert "1 case(s) of" in proc.stderr and "not listed in its index.json (run all the same): chain/linked" in proc.stderr
    shutil.copytree(VECTORS / "chain" / "fork", root / "chain" / "fork")
    assert run(root).returncode == 0


def test_a_release_under_another_version_name_is_called_mislabelled_and_not_exported(tmp_path, capsys):
    """Review 54: a release's files under an index naming another version were neither modified nor
    unreleased: the run said "suite <the other version>" without a word, and the export was named
    after it. Both now say what the files are; the export refuses."""
    from verifier.cli import _warn_about_suite
    from verifier.errors import InputError
    from verifier.vectors import RunInfo, _heading, export_suite, load_suite, mislabelled
    root = tmp_path / "suite"
    shutil.copytree(VECTORS, root)
    index = json.loads((root / "index.json").read_text())
    released = index["suite_version"]
    (root / "index.json").write_text(json.dumps({**index, "suite_version": "2099.1.1"}))
    suite = load_suite(root)
    assert suite.release == released and mislabelled(suite) and not mislabelled(load_suite(VECTORS))
    assert f"suite 2099.1.1 (MISLABELLED: its files are release {released})" in _heading(RunInfo(suite))
    _warn_about_suite(root, suite, [])
    assert f"says suite 2099.1.1, but its files are release {released}" in capsys.readouterr().err
    with pytest.raises(InputError, match="not exported under another release's name"):
        export_suite(root, tmp_path / "out.tar.gz")


def test_a_hostile_suite_version_is_escaped_and_never_names_an_export(tmp_path):
    """Review 54: index.json's suite_version reached the text heading and JUnit raw (a terminal
    escape, a line of its own); as the tarball's top directory it could climb out of it."""
    from verifier.errors import InputError
    from verifier.vectors import RunInfo, _heading, export_suite, load_suite
    root = tmp_path / "suite"
    shutil.copytree(VECTORS / "chain" / "gap", root / "chain" / "gap")
    for version in ("9.9\x1b[2J\nPASS everything", "../../escape"):
        (root / "index.json").write_text(json.dumps({"suite_version": version, "cases": ["chain/gap"]}))
        heading = _heading(RunInfo(load_suite(root)))
        assert "\x1b" not in heading and "\n" not in heading
        junit = run(root, "--format", "junit").stdout
        assert "\x1b" not in junit and "&#10;" not in junit and "\nPASS everything" not in junit
    with pytest.raises(InputError):  # no digest: refused before its name is looked at; then with one
        export_suite(root, tmp_path / "out.tar.gz")
    from verifier.vectors import suite_digest
    (root / "index.json").write_text(json.dumps({"suite_version": "../../escape", "digest": suite_digest(root),
                                                 "cases": ["chain/gap"]}))
    with pytest.raises(InputError, match="not a version name"):
        export_suite(root, tmp_path / "out.tar.gz")


def test_the_markdown_summary_has_no_image_or_link_from_an_implementation(small_suite, tmp_path):
    """Review 82: only backslash, bar, backtick and < were escaped, so an implementation's verdict
    `![t](https://tracker.example/p.png)` was an image (a tracking pixel) in the job summary."""
    impl = tmp_path / "impl.py"
    impl.write_text('import json\nprint(json.dumps({"verdict": "![t](https://t.example/p.png) [x](y)", '
                    '"conversations": []}))\nraise SystemExit(1)\n')
    summary = tmp_path / "summary.md"
    proc = run(small_suite, "--impl", f"{sys.executable} {impl}", "--markdown", summary)
    text = summary.read_text()
    assert proc.returncode == 1 and 'verdict: "\\!\\[t\\]\\(https\\://t.example/p.png\\)' in text
    assert "![" not in text and "](" not in text


def test_a_release_copy_with_a_case_removed_cannot_keep_the_release_digest(tmp_path):
    """Round 110: a case's files replaced by one file whose name held newlines and the case's other
    checksum lines: the checksums hashed were the release's, so the copy ran as the release, without
    the case and without a warning. Names are escaped as GNU sha256sum escapes them."""
    from verifier.vectors import checksums, discover, load_suite, suite_files
    copy = tmp_path / "suite"
    shutil.copytree(VECTORS, copy, ignore=shutil.ignore_patterns("generate.py", "__pycache__"))
    release = load_suite(copy).actual_digest
    names = [n for n in suite_files(copy) if n.startswith("chain/gap/")]
    lines = checksums(copy, names).rstrip("\n").split("\n")
    forged = copy / (lines[0].split("  ", 1)[1] + "\n" + "\n".join(lines[1:]))
    content = (copy / names[0]).read_bytes()
    shutil.rmtree(copy / "chain" / "gap")
    forged.parent.mkdir(parents=True)
    forged.write_bytes(content)
    assert "chain/gap" not in [p.relative_to(copy).as_posix() for p in discover(copy)]
    suite = load_suite(copy)
    assert suite.actual_digest != release and suite.modified and suite.release is None
    line = checksums(copy, [forged.relative_to(copy).as_posix()])
    assert line.startswith("\\") and line.count("\n") == 1  # one line, as sha256sum writes it


def test_the_junit_results_say_the_suite_changed_during_the_run(small_suite, tmp_path, monkeypatch):
    """Round 110: text, JSON and Markdown said CHANGED DURING THE RUN; the JUnit file of the same run
    had failures="0", errors="0" and no word of it (nor of MODIFIED / UNRELEASED)."""
    monkeypatch.setenv("SUITE", str(small_suite))
    junit = tmp_path / "out.xml"
    proc = run(small_suite, "--impl", impl(tmp_path, REWRITE_SUITE), "--timeout", "20", "--junit", junit)
    assert proc.returncode == 1
    root = ET.parse(junit).getroot()
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert "CHANGED DURING THE RUN" in props["heading"] and props["suite_release"] == ""
    assert root.get("errors") == "1" and int(root.get("tests")) == len(list(root.iter("testcase")))
    assert [c.get("name") for c in root.iter("testcase") if c.find("error") is not None] == ["unchanged during the run"]


def test_an_input_reached_through_a_linked_directory_is_refused(tmp_path):
    """Round 110: a page ``sub/page-1.json``, ``sub`` a link to a directory outside the suite, was read
    from there (outside the digest and the fingerprint) and the case passed."""
    case = tmp_path / "suite" / "chain" / "gap"
    shutil.copytree(VECTORS / "chain" / "gap", case)
    (tmp_path / "outside").mkdir()
    (case / "page-1.json").rename(tmp_path / "outside" / "page-1.json")
    (case / "sub").symlink_to(tmp_path / "outside")
    spec = json.loads((case / "expected.json").read_text())
    (case / "expected.json").write_text(json.dumps({**spec, "pages": ["sub/page-1.json"]}))
    proc = run(tmp_path / "suite")
    assert proc.returncode == 1
    assert "FAIL chain/gap: unreadable case input: input path sub/page-1.json goes through a symbolic link (sub)" \
        in proc.stdout


@pytest.mark.parametrize("name", ["expected.json", "sub/expected.json"])
def test_a_case_cannot_hand_an_expected_json_to_the_implementation(tmp_path, name):
    """Round 110: a case naming its expected.json as a page had it copied for the implementation,
    which read the expected answers (docs/vectors.md: never reachable through the paths it gets)."""
    case = tmp_path / "suite" / "chain" / "gap"
    shutil.copytree(VECTORS / "chain" / "gap", case)
    spec = json.loads((case / "expected.json").read_text())
    (case / "expected.json").write_text(json.dumps({**spec, "pages": ["page-1.json", name]}))
    proc = run(tmp_path / "suite")
    assert proc.returncode == 1
    assert f"FAIL chain/gap: unreadable expected.json: input path {name} names a case's expected.json" in proc.stdout


def test_an_event_expected_twice_fails_its_case(tmp_path):
    """Round 110: an expected.json listing one event index twice, and so another not at all, still
    matched the report's event count: one reported event went unchecked."""
    case = tmp_path / "suite" / "chain" / "gap"
    shutil.copytree(VECTORS / "chain" / "gap", case)
    spec = json.loads((case / "expected.json").read_text())
    events = spec["expected"]["events"]
    assert len(events) >= 2
    events[1] = {**events[0]}
    (case / "expected.json").write_text(json.dumps(spec))
    proc = run(tmp_path / "suite")
    assert proc.returncode == 1
    assert (f"FAIL chain/gap: unreadable expected.json: expected.events lists event {events[0]['index']} more "
            "than once") in proc.stdout


@pytest.mark.parametrize("option", ["-o", "--junit", "--markdown"])
def test_results_are_never_written_inside_the_suite(small_suite, option):
    """Round 110: -o, --junit and --markdown inside the suite replaced a suite file after the run (as
    `vectors export` into it did before round 80)."""
    target = next(small_suite.rglob("expected.json"))
    before = target.read_bytes()
    proc = run(small_suite, option, str(target))
    assert proc.returncode == 2 and "is inside the suite" in proc.stderr and proc.stdout == ""
    assert target.read_bytes() == before


@pytest.mark.parametrize("kind", ["leads out", "loop"])
@pytest.mark.parametrize("option", ["-o", "--junit", "--markdown", "export"])
def test_results_never_replace_a_link_inside_the_suite(small_suite, tmp_path, option, kind):
    """Round 113: a link inside the suite leading out of it (or round a loop) passed the check, as it
    resolved outside; the write then replaced the link itself with a file of the suite, exit 0."""
    link = small_suite / "results.txt"
    if kind == "leads out":
        link.symlink_to(tmp_path / "elsewhere.txt")
    else:
        link.symlink_to("loop")
        (small_suite / "loop").symlink_to("results.txt")
    args = ("export", str(link), str(small_suite)) if option == "export" else (str(small_suite), option, str(link))
    proc = run(*args)
    assert proc.returncode == 2 and "is inside the suite" in proc.stderr and proc.stdout == ""
    assert link.is_symlink()


def test_results_beside_the_suite_or_through_a_link_out_of_it_are_written(small_suite, tmp_path):
    """The check of round 113 refuses only what lands inside the suite."""
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "to-out").symlink_to(out)
    proc = run(small_suite, "-o", str(tmp_path / "to-out" / "results.txt"), "--junit", str(tmp_path / "junit.xml"))
    assert proc.returncode == 1 and (out / "results.txt").is_file() and (tmp_path / "junit.xml").is_file()


@pytest.mark.parametrize("hidden", [".extra", "__pycache__", "chain/.more"])
def test_a_case_outside_the_digest_is_not_run(hidden, tmp_path):
    """r125: a case under a dot-folder or ``__pycache__`` was run but was outside the digest, so a copy
    of a release with cases added still read as that release. Such a folder is not part of the suite."""
    from verifier.vectors import discover, load_suite
    copy = tmp_path / "suite"
    shutil.copytree(VECTORS, copy, ignore=shutil.ignore_patterns("generate.py", "__pycache__"))
    before = discover(copy)
    release = load_suite(copy).release
    shutil.copytree(copy / "chain" / "gap", copy / hidden / "added")
    assert discover(copy) == before and (copy / hidden / "added" / "expected.json").is_file()
    assert load_suite(copy).release == release is not None


def _nest(top, name: str, depth: int) -> None:
    """``depth`` folders ``name`` inside each other under ``top`` (made relative to each parent, so
    the whole path may run past PATH_MAX)."""
    import os
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)


def _unnest(top, name: str) -> None:
    """Remove what ``_nest`` made, one level at a time: ``shutil.rmtree`` (and pytest's clean-up of old
    temporary directories with it) recurses once per level."""
    import os
    nest, lifted = top / name, top / "lifted"
    while (nest / name).is_dir():
        os.rename(nest / name, lifted)
        os.rmdir(nest)
        os.rename(lifted, nest)
    os.rmdir(nest)


@pytest.mark.parametrize("name, depth", [("a", 1100), ("b" * 250, 20)])
def test_a_suite_tree_that_cannot_be_walked_is_one_line(small_suite, tmp_path, name, depth):
    """r126: a suite nested past the recursion limit, or holding a path past PATH_MAX (or changing while
    it was walked: ``vectors /tmp``), ended ``vectors`` and ``vectors export`` in an internal error."""
    _nest(small_suite, name, depth)
    try:
        for args in ([str(small_suite)], ["export", str(tmp_path / "out.tar.gz"), str(small_suite)]):
            proc = run(*args)
            assert proc.returncode == 3, proc.stderr
            assert proc.stderr.startswith(f"xchat-verify: cannot read the suite {small_suite}: "), proc.stderr
            assert len(proc.stderr.strip().splitlines()) == 1 and "internal error" not in proc.stderr
    finally:
        _unnest(small_suite, name)


SLEEPER = r'''
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open(os.environ["PIDS"] + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
os.rename(os.environ["PIDS"] + ".tmp", os.environ["PIDS"])
time.sleep(120)
'''


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has ended (its reaper may not have run yet)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_that_ends_the_run_ends_the_implementation_and_its_children(small_suite, tmp_path, signum):
    """r130: each implementation runs in a session of its own, which ``timeout`` or a CI job's cancel
    (SIGTERM to the runner) never reached: the implementation and its children ran on. The runner
    still ends by the signal (its exit status), having killed them first, and removes the case's
    staged copies (the signal skipped their removal: two directories left in /tmp each run)."""
    pids = tmp_path / "pids"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**os.environ, "PIDS": str(pids), "TMPDIR": str(scratch)}
    runner = subprocess.Popen([sys.executable, "-m", "verifier", "vectors", str(small_suite),
                               "--impl", impl(tmp_path, SLEEPER), "--timeout", "100"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not pids.exists() and time.monotonic() < deadline and runner.poll() is None:
            time.sleep(0.05)
        assert pids.exists(), runner.stderr.read() if runner.poll() is not None else "no implementation started"
        started = [int(p) for p in pids.read_text().split()]
        assert all(_alive(pid) for pid in started)
        assert [p.name[:len("xchat-vector-")] for p in scratch.iterdir()] == ["xchat-vector-"]
        runner.send_signal(signum)
        assert runner.wait(timeout=30) == -signum
        assert list(scratch.iterdir()) == []
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in started)
    finally:
        runner.kill()
        runner.wait()
        for pid in [int(p) for p in pids.read_text().split()] if pids.exists() else []:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_a_signal_that_ends_a_run_in_process_removes_the_staged_copies(tmp_path):
    """r142: the signal's end removed the cases' staged copies with --impl only: a run in process
    (``xchat-verify vectors``, a CI job cancelled) left the case's copies in the temp dir."""
    case = tmp_path / "suite" / "slow" / "case"
    case.mkdir(parents=True)
    pages = [f"page-{n}.json" for n in range(1, 4)]
    for name in pages:  # pages of 100,000 items without an event: some seconds to verify
        (case / name).write_text('{"data":[' + "{}," * 99_999 + "{}]}")
    (case / "expected.json").write_text(json.dumps({"pages": pages, "expected": {
        "verdict": "fail", "exit_code": 1, "events": []}}))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    runner = subprocess.Popen([sys.executable, "-m", "verifier", "vectors", str(tmp_path / "suite")],
                              env={**os.environ, "TMPDIR": str(scratch)}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(scratch.iterdir()) and time.monotonic() < deadline and runner.poll() is None:
            time.sleep(0.01)
        assert [p.name[:len("xchat-vector-")] for p in scratch.iterdir()] == ["xchat-vector-"], \
            runner.stderr.read() if runner.poll() is not None else "not staged"
        time.sleep(0.2)
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=30) == -signal.SIGTERM
        assert list(scratch.iterdir()) == []
    finally:
        runner.kill()
        runner.wait()


RECORDER = r'''
import os, sys, time
open(os.path.join(os.environ["PIDS"], str(os.getpid())), "w").close()
time.sleep(120)
'''


def _recording_run(tmp_path: Path, cases: int, jobs: int) -> tuple[subprocess.Popen, Path, Path]:
    """``vectors --jobs JOBS`` of ``cases`` chain cases whose implementation records its pid in PIDS
    and sleeps, temporary files in a scratch TMPDIR; returned once JOBS implementations run."""
    suite = tmp_path / "suite"
    for folder in sorted(VECTORS.glob("chain/*"))[:cases]:
        shutil.copytree(folder, suite / "chain" / folder.name)
    pids, scratch = tmp_path / "pids", tmp_path / "scratch"
    pids.mkdir()
    scratch.mkdir()
    env = {**os.environ, "PIDS": str(pids), "TMPDIR": str(scratch)}
    runner = subprocess.Popen([sys.executable, "-m", "verifier", "vectors", str(suite), "--jobs", str(jobs),
                               "--impl", impl(tmp_path, RECORDER), "--timeout", "100"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(list(pids.iterdir())) < jobs and time.monotonic() < deadline and runner.poll() is None:
        time.sleep(0.02)
    if len(list(pids.iterdir())) != jobs:
        _end_recording_run(runner, pids)
        pytest.fail(runner.stderr.read() if runner.poll() is not None else "not started")
    return runner, pids, scratch


def _end_recording_run(runner: subprocess.Popen, pids: Path) -> None:
    runner.kill()
    runner.wait()
    for pid in [int(p.name) for p in pids.iterdir()]:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def test_a_signal_with_several_jobs_leaves_no_implementation_and_no_staged_copy(tmp_path):
    """r137: with --jobs N the signal's end killed the implementations running, and while it removed
    their staged copies the threads it had freed staged the next cases and started their
    implementations, which ran on after the runner ended (and left their directories in /tmp)."""
    runner, pids, scratch = _recording_run(tmp_path, cases=16, jobs=8)
    try:
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=30) == -signal.SIGTERM
        started = [int(p.name) for p in pids.iterdir()]
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in started if _alive(pid)] == [] and list(scratch.iterdir()) == []
    finally:
        _end_recording_run(runner, pids)


def test_an_interrupt_with_several_jobs_ends_the_run_at_once(tmp_path):
    """r137: Ctrl-C (SIGINT, which the implementations' own sessions never get) with --jobs N stopped
    the runner's thread only: it waited for every running implementation to end, up to --timeout,
    before saying "interrupted". One job's interrupt always killed its implementation at once."""
    runner, pids, scratch = _recording_run(tmp_path, cases=8, jobs=4)
    try:
        runner.send_signal(signal.SIGINT)
        assert runner.wait(timeout=30) == 3
        assert runner.stderr.read().endswith("\nxchat-verify: interrupted\n")  # (after the suite's warning)
        started = [int(p.name) for p in pids.iterdir()]
        assert len(started) == 4 and [pid for pid in started if _alive(pid)] == [] and list(scratch.iterdir()) == []
    finally:
        _end_recording_run(runner, pids)


ESCAPER = r'''
import os, sys, time
if os.fork() == 0:  # a child out of the implementation's process group, holding its stdout and stderr
    os.setsid()
    open(os.path.join(os.environ["PIDS"], str(os.getpid())), "w").close()
    time.sleep(120)
    os._exit(0)
'''


def test_an_interrupt_with_several_jobs_does_not_wait_for_an_output_held_open(tmp_path):
    """r142: an implementation that had exited while a child it left outside its process group (its
    own session) held its output open was waited for up to --timeout after Ctrl-C with --jobs N: the
    interrupt killed what was running, but the case's thread read the open pipes on."""
    suite = tmp_path / "suite"
    for folder in sorted(VECTORS.glob("chain/*"))[:4]:
        shutil.copytree(folder, suite / "chain" / folder.name)
    pids = tmp_path / "pids"
    pids.mkdir()
    runner = subprocess.Popen([sys.executable, "-m", "verifier", "vectors", str(suite), "--jobs", "2",
                               "--impl", impl(tmp_path, ESCAPER), "--timeout", "100"],
                              env={**os.environ, "PIDS": str(pids)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        deadline = time.monotonic() + 60
        while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline and runner.poll() is None:
            time.sleep(0.02)
        assert len(list(pids.iterdir())) == 2, runner.stderr.read() if runner.poll() is not None else "not started"
        time.sleep(0.5)  # the implementations have exited; their children hold the pipes
        runner.send_signal(signal.SIGINT)
        assert runner.wait(timeout=20) == 3
        assert runner.stderr.read().endswith("\nxchat-verify: interrupted\n")
    finally:
        _end_recording_run(runner, pids)


def test_an_interrupt_stops_the_cases_without_waiting_for_a_setup():
    """r142: Ctrl-C with --jobs N waited for a thread staging a case (a large input's copy) before it
    stopped anything, and a second Ctrl-C meanwhile interrupted that wait: no implementation was
    killed, and every case left was run. It stops them at once; a thread's setup under way stays."""
    held, release = threading.Event(), threading.Event()

    def staging() -> None:
        with vectors._SETUP:
            held.set()
            release.wait(20)

    thread = threading.Thread(target=staging)
    thread.start()
    held.wait(10)
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    vectors._RUNNING.add(running)
    timer = threading.Timer(5, release.set)
    timer.start()
    try:
        started = time.monotonic()
        vectors._stop_cases()
        assert time.monotonic() - started < 2 and vectors._STOPPING
        assert running.wait(timeout=10) == -signal.SIGKILL
        with pytest.raises(KeyboardInterrupt):  # no case is set up any more
            with vectors._setting_up():
                pass
    finally:
        timer.cancel()
        release.set()
        thread.join()
        vectors._RUNNING.discard(running)
        vectors._STOPPING.clear()
        running.kill()
        running.wait()


def test_a_signal_the_runner_was_started_ignoring_stays_ignored(tmp_path):
    """r137: under ``nohup`` (SIGHUP ignored) a closed terminal ended the run and killed its
    implementation, as the signal handler replaced the ignoring the runner was started with."""
    pids = tmp_path / "pids"
    pids.mkdir()
    runner = subprocess.Popen([sys.executable, "-m", "verifier", "vectors", str(VECTORS / "chain"),
                               "--impl", impl(tmp_path, RECORDER), "--timeout", "100"],
                              env={**os.environ, "PIDS": str(pids)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # as nohup starts it
    try:
        deadline = time.monotonic() + 60
        while not list(pids.iterdir()) and time.monotonic() < deadline and runner.poll() is None:
            time.sleep(0.02)
        started = [int(p.name) for p in pids.iterdir()]
        assert len(started) == 1, runner.stderr.read() if runner.poll() is not None else "not started"
        runner.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert runner.poll() is None and _alive(started[0])
        runner.send_signal(signal.SIGTERM)  # what is not ignored still ends the run and its implementation
        assert runner.wait(timeout=30) == -signal.SIGTERM
        deadline = time.monotonic() + 10
        while _alive(started[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(started[0])
    finally:
        runner.kill()
        runner.wait()
        for pid in [int(p.name) for p in pids.iterdir()]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
