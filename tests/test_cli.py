"""End-to-end CLI: every format and exit code, corrupt inputs, stdin and JSON Lines."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest
from helpers import ALICE, REPO, ev, page, run_cli

from verifier.cli import main

EXAMPLES = REPO / "examples"


def run(*args, stdin=None):
    """The CLI in process (helpers.run_cli); test_console_script_entry_point_matches_module runs the
    real console script."""
    proc = run_cli(args, stdin=stdin)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    return proc


@pytest.fixture()
def good(tmp_path):
    p1 = tmp_path / "p1.json"
    p1.write_text(json.dumps(page(ev(seq=3, prev=2), ev(seq=2, prev=1))))
    p2 = tmp_path / "p2.json"
    p2.write_text(json.dumps(page(ev(seq=1))))
    ring = tmp_path / "ring.json"
    ring.write_text(json.dumps({"keys": [ALICE.keyring_entry()]}))
    return p1, p2, ring


def test_examples_pass_and_tampered_fail():
    ok = run("verify", *sorted((EXAMPLES / "conversation").glob("*.json")), "--keys", EXAMPLES / "keyring.json")
    assert ok.returncode == 0 and "verdict: PASS" in ok.stdout
    bad = run("verify", *sorted((EXAMPLES / "tampered").glob("*.json")), "--keys", EXAMPLES / "keyring.json")
    assert bad.returncode == 1 and "invalid" in bad.stdout and "gap" in bad.stdout


def test_json_format_and_output_file(good, tmp_path):
    p1, p2, ring = good
    out = tmp_path / "r.json"
    assert main(["verify", str(p2), str(p1), "--keys", str(ring), "--format", "json", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["verdict"] == "pass" and data["schema"] == "xchat-verify/report/v1"
    assert [e["index"] for e in data["conversations"][0]["events"]] == [0, 1, 2]


def test_ndjson(good, capsys):
    p1, p2, ring = good
    assert main(["verify", str(p1), str(p2), "--keys", str(ring), "--format", "ndjson"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["record"] for x in lines] == ["event"] * 3 + ["summary"]
    assert lines[-1]["verdict"] == "pass"


def test_sarif_and_junit_on_failure(good, tmp_path, capsys):
    p1, _p2, ring = good  # without p2 the oldest event's predecessor is missing -> start, still pass
    tampered = tmp_path / "t.json"
    body = json.loads(p1.read_text())
    body["data"][0]["sender_id"] = "9"
    tampered.write_text(json.dumps(body))
    assert main(["verify", str(tampered), "--keys", str(ring), "--format", "sarif"]) == 1
    sarif = json.loads(capsys.readouterr().out)
    assert sarif["version"] == "2.1.0"
    result = sarif["runs"][0]["results"][0]
    assert result["ruleId"] == "envelope_mismatch" and result["level"] == "error"
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == str(tampered)
    assert main(["verify", str(tampered), "--keys", str(ring), "--format", "junit"]) == 1
    root = ET.fromstring(capsys.readouterr().out)
    assert root.tag == "testsuites" and root.get("failures") == "1" and root.get("tests") == "2"


def test_sarif_uris_are_uri_references(good, tmp_path, capsys):
    """Round 80: SARIF's artifactLocation.uri is a URI reference (RFC 3986), but a file's name was put
    there as it is: a space, a non-ASCII letter or a % made it invalid against the SARIF schema, a #
    turned the rest of the name into a fragment and a colon in the first segment into a scheme."""
    p1, _p2, ring = good
    folder = tmp_path / "my pages"
    folder.mkdir()
    names = [folder / "page #1 100%.json", folder / "pägé.json", tmp_path / "a:b.json"]
    body = json.loads(p1.read_text())
    body["data"][0]["sender_id"] = "9"  # an envelope_mismatch located in each file
    for name in names:
        name.write_text(json.dumps(body))
    assert main(["verify", *map(str, names), "--keys", str(ring), "--format", "sarif"]) == 1
    sarif = json.loads(capsys.readouterr().out)
    uris = {loc["physicalLocation"]["artifactLocation"]["uri"]
            for r in sarif["runs"][0]["results"] for loc in r["locations"]}
    assert uris == {quote(str(name)) for name in names}
    for uri in uris:
        parts = urlsplit(uri)
        assert uri.isascii() and " " not in uri and not parts.scheme and not parts.fragment, uri
        assert unquote(uri) in map(str, names)


def test_an_event_without_ids_is_named_without_python_none(tmp_path, capsys):
    """Round 80: an item that is no event (no sequence id, no type) was "event 0 seq None (None)" in
    JUnit and "(sequence None)", "unknown/None" in SARIF; the other formats show "-" or null."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [5]}')
    assert main(["verify", str(bad), "--allow-embedded-keys", "--format", "junit"]) == 1
    junit = capsys.readouterr().out
    assert 'name="event 0 seq - (-)"' in junit and "None" not in junit
    assert main(["verify", str(bad), "--allow-embedded-keys", "--format", "sarif"]) == 1
    sarif = capsys.readouterr().out
    assert "(sequence -)" in sarif and '"unknown/-"' in sarif and "None" not in sarif


def test_sarif_locates_a_conversation_finding_at_its_own_file(good, tmp_path, capsys):
    """Round 80: findings about a whole conversation (incomplete, nothing_proven, ...) were located at
    the first input file, whichever conversation they were about: here the incomplete history of
    the second file's conversation pointed code scanning at the first file."""
    p1, p2, ring = good
    other = tmp_path / "other.json"  # another conversation, its page not the last one (next_token)
    other.write_text(json.dumps(page(ev(seq=5, conversation_id="1111:3333"), meta={"next_token": "t"})))
    assert main(["verify", str(p1), str(p2), str(other), "--keys", str(ring), "--format", "sarif"]) == 1
    results = json.loads(capsys.readouterr().out)["runs"][0]["results"]
    [incomplete] = [r for r in results if r["ruleId"] == "incomplete"]
    assert incomplete["message"]["text"].startswith("1111:3333: ")
    assert incomplete["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == str(other)


@pytest.mark.parametrize("strict, code, failures", [(True, 1, "1"), (False, 0, "0")])
def test_junit_fails_a_test_for_an_api_error_when_it_fails_the_verdict(strict, code, failures, good, tmp_path, capsys):
    """Review 45: a --strict FAIL caused by an API error showed 0 failures in JUnit."""
    p1, p2, ring = good
    with_error = tmp_path / "p1.json"
    with_error.write_text(json.dumps({**json.loads(p1.read_text()), "errors": [{
        "title": "Field Authorization Error", "type": "https://api.twitter.com/2/problems/not-authorized-for-field"}]}))
    args = ["verify", str(with_error), str(p2), "--keys", str(ring), "--format", "junit", *(["--strict"] if strict else [])]
    assert main(args) == code
    root = ET.fromstring(capsys.readouterr().out)
    assert root.get("failures") == failures
    if strict:
        failure = root.find(".//failure")
        assert failure is not None and failure.get("type") == "api_error" and "Field Authorization Error" in failure.text


def test_markdown_and_text(good, capsys):
    p1, p2, ring = good
    assert main(["verify", str(p1), str(p2), "--keys", str(ring), "--format", "markdown"]) == 0
    assert "xchat-verify: PASS" in capsys.readouterr().out
    assert main(["verify", str(p1), "--format", "text"]) == 1  # no trusted keys: fail closed
    out = capsys.readouterr().out
    assert "verdict: FAIL" in out and "no_trusted_keys" in out
    assert main(["verify", str(p1), "--format", "text", "--allow-embedded-keys"]) == 0
    out = capsys.readouterr().out
    assert "verdict: PASS" in out and "NOT authenticated" in out


def test_strict_turns_warnings_into_failure(tmp_path):
    p = tmp_path / "u.json"
    p.write_text(json.dumps(page(ev(is_trusted=False))))
    ring = tmp_path / "ring.json"
    ring.write_text(json.dumps({"keys": [ALICE.keyring_entry()]}))
    assert main(["verify", str(p), "--keys", str(ring)]) == 0
    assert main(["verify", str(p), "--keys", str(ring), "--strict"]) == 1


def test_stdin_and_json_lines(good):
    p1, p2, ring = good
    lines = p1.read_text().replace("\n", "") + "\n" + p2.read_text().replace("\n", "") + "\n"
    proc = run("verify", "-", "--keys", ring, "--format", "json", stdin=lines)
    assert proc.returncode == 0
    assert len(json.loads(proc.stdout)["inputs"]) == 2


@pytest.mark.parametrize("content", [b"", b"not json at all", b"[1,2,3]", b"\xff\xfe\x00garbage", b"{\"data\": 7}"])
def test_corrupt_page_files_exit_3_with_one_line(tmp_path, content, good):
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    proc = run("verify", bad, good[1], "--format", "json")
    assert proc.returncode == 3
    assert proc.stderr.strip().count("\n") == 0 and str(bad) in proc.stderr
    report = json.loads(proc.stdout)  # partial results are still reported
    assert report["verdict"] == "fail" and report["conversations"][0]["events"]


def test_missing_file_and_bad_keyring_exit_3(tmp_path, good):
    assert run("verify", tmp_path / "nope.json").returncode == 3
    ring = tmp_path / "ring.json"
    ring.write_text("{\"keys\": [{\"user_id\": 5}]}")
    proc = run("verify", good[0], "--keys", ring)
    assert proc.returncode == 3 and "keyring" in proc.stderr


def test_file_size_limit(tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (2 * 1024 * 1024))
    proc = run("verify", big, "--max-file-mb", "1")
    assert proc.returncode == 3 and "larger than the limit" in proc.stderr


@pytest.mark.parametrize("args", [[], ["verify"], ["verify", "x", "--format", "xml"], ["bogus"],
                                  ["verify", "x", "--conversation-key", "nonsense"],
                                  ["verify", "x", "--conversation-key", "1=AAAA"], ["verify", "x", "--workers", "0"]])
def test_usage_errors_exit_2(args):
    proc = run(*args)
    assert proc.returncode == 2


def test_conversation_key_option(tmp_path):
    key = bytes(range(32))
    kc = ev("ConversationKeyChangeEvent", {"conversation_key_version": "42"}, conversation_keys={"42": key})
    p = tmp_path / "kc.json"
    p.write_text(json.dumps(page(kc)))
    import base64
    proc = run("verify", p, "--format", "json", "--conversation-key", "42=" + base64.b64encode(key).decode())
    assert json.loads(proc.stdout)["conversations"][0]["events"][0]["signature"]["status"] == "valid"


def test_console_script_entry_point_matches_module():
    from verifier import cli
    args = ["verify", *sorted(map(str, (EXAMPLES / "conversation").glob("page-*.json"))), "--format", "json",
            "--output", "/dev/null"]
    assert cli.main(args) == 1  # no keyring: fail closed
    assert cli.main(args + ["--keys", str(EXAMPLES / "keyring.json")]) == 0
    script = Path(sys.executable).with_name("xchat-verify")  # the installed console script, a real process
    for command in ([str(script)], [sys.executable, "-m", "verifier"]):
        proc = subprocess.run([*command, *args, "--keys", str(EXAMPLES / "keyring.json")], capture_output=True,
                              text=True, cwd=REPO, timeout=120)
        assert proc.returncode == 0 and proc.stderr == "verdict: pass (report written to /dev/null)\n", proc.stderr


def test_bundled_examples_are_reproducible(tmp_path):
    sys.path.insert(0, str(EXAMPLES))
    import make_examples
    make_examples.main(tmp_path)
    for path in tmp_path.rglob("*.json"):
        assert path.read_bytes() == (EXAMPLES / path.relative_to(tmp_path)).read_bytes(), path


def test_api_errors_reach_every_human_and_ci_format(tmp_path, capsys, good):
    body = page(ev(seq=1), errors=[{"title": "Field Error", "detail": "field hidden",
                                    "type": "https://api.x.com/2/problems/not-authorized-for-field"}])
    p = tmp_path / "p.json"
    p.write_text(json.dumps(body))
    ring = str(good[2])
    for fmt in ("text", "markdown", "sarif"):
        assert main(["verify", str(p), "--keys", ring, "--format", fmt]) == 0
        assert "field hidden" in capsys.readouterr().out, fmt
    assert main(["verify", str(p), "--keys", ring, "--strict", "--format", "json"]) == 1


def test_page_files_that_say_the_history_goes_on_are_incomplete(tmp_path, capsys):
    """Review: ``verify page-1.json`` of the example (``next_token`` set: two older pages exist)
    passed, complete; so did pages whose ``errors[]`` said an event was left out. ``audit`` and a
    saved evidence directory judged both incomplete; page files now do too."""
    ring = str(EXAMPLES / "keyring.json")
    pages = sorted(map(str, (EXAMPLES / "conversation").glob("page-*.json")))
    assert len(pages) == 3 and main(["verify", *pages, "--keys", ring, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["conversations"][0]["complete"] is True
    for given in (pages[:1], pages[:2], pages[1:2]):
        assert main(["verify", *given, "--keys", ring, "--format", "json"]) == 1, given
        report = json.loads(capsys.readouterr().out)
        (conv,) = report["conversations"]
        assert conv["complete"] is False and report["proof"]["complete"] is False
        assert [f["message"] for f in conv["findings"]] == [
            "history not fetched to its end: none of its pages is the last one (each has a next_token): the older "
            "events it leads to were not given"]
        assert main(["verify", *given, "--keys", ring, "--allow-partial", "--format", "json"]) == 0
        capsys.readouterr()
    dropped = json.loads(Path(pages[2]).read_text())
    dropped["errors"] = [{"title": "Not Found Error", "detail": "1 event could not be returned",
                          "type": "https://api.x.com/2/problems/resource-not-found"}]
    (tmp_path / "page-3.json").write_text(json.dumps(dropped))
    assert main(["verify", *pages[:2], str(tmp_path / "page-3.json"), "--keys", ring, "--format", "json"]) == 1
    (conv,) = json.loads(capsys.readouterr().out)["conversations"]
    assert [f["message"] for f in conv["findings"]] == [
        f"history not fetched to its end: {tmp_path / 'page-3.json'}: the API reported events it did not return: "
        "Not Found Error - 1 event could not be returned"]


def test_text_report_of_a_large_history():
    """Problems are grouped (never one line per repeat); --all-events lists every event, ids whole."""
    import verifier
    from verifier.report import render
    from verifier.testing.forge import build_conversation
    conv = build_conversation(1200, realistic_crypto=False)
    pages = conv.pages(page_size=100)
    for page_body in pages:
        page_body["data"][0]["sender_id"] = "9"  # one envelope mismatch a page: 12 of them
    report = verifier.verify_pages(pages, verifier.Keyring.from_json(json.dumps(conv.keyring())),
                                   conversation_keys=conv.conversation_keys)
    text = render(report, "text", width=100)
    assert "envelope_mismatch ×12" in text and "… and 9 more" in text and text.count("\n") < 40
    full = render(report, "text", width=100, all_events=True)
    seqs = [e.sequence_id for e in report.conversations[0].events]
    lines = full.splitlines()
    assert all(any(line.split()[1:2] == [seq] for line in lines) for seq in seqs[:50] + seqs[-50:])
    assert len([line for line in lines if line.strip()[:1].isdigit()]) >= 1200


@pytest.mark.parametrize("fmt", ["text", "json", "ndjson", "sarif", "junit", "markdown", "html"])
def test_one_line_verdict_on_stderr_when_the_report_goes_to_a_file(good, tmp_path, capsys, fmt):
    p1, p2, ring = good
    out = tmp_path / f"report.{fmt}"
    assert main(["verify", str(p1), str(p2), "--keys", str(ring), "--format", fmt, "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"verdict: pass (report written to {out})\n"
    assert out.stat().st_size > 0


def test_no_color_drops_colour_only(good):
    """The same layout with and without colour: NO_COLOR removes the escapes, nothing else."""
    import re

    import verifier
    from verifier.inputs import load_pages
    from verifier.report import render
    p1, p2, ring = good
    report = verifier.verify_pages(load_pages([str(p1), str(p2)], 10**7),
                                   verifier.Keyring.from_json(ring.read_text()))
    coloured = render(report, "text", color=True, width=90)
    plain = render(report, "text", color=False, width=90)
    assert "\x1b[" in coloured and "\x1b[" not in plain
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain
@pytest.mark.parametrize("no_color, coloured", [(None, True), ("1", False), ("", True)])
def test_no_color_set_but_empty_keeps_colour_on_a_terminal(good, no_color, coloured):
    """Round 80: NO_COLOR= (set, empty) turned colour off; no-color.org: only "when present and not an
    empty string"."""
    import pty
    p1, p2, ring = good
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env["TERM"] = "xterm-256color"  # (a dumb terminal gets no colour whatever NO_COLOR says)
    if no_color is not None:
        env["NO_COLOR"] = no_color
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "verifier", "verify", str(p1), str(p2), "--keys", str(ring)],
                                stdout=follower, stderr=subprocess.DEVNULL, env=env)
        os.close(follower)
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(60) == 0
    finally:
        os.close(leader)
    assert b"verdict: " in out and (b"\x1b[" in out) == coloured


def test_output_to_a_device_writes_through_it(tmp_path):
    """``-o /dev/null`` (or any device or FIFO) is written in place: an atomic rename would replace
    the device itself with a regular file (as root, /dev/null)."""
    import stat

    from verifier.outputs import atomic_write_text
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    import threading
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    atomic_write_text(fifo, "through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"] and stat.S_ISFIFO(fifo.stat().st_mode)
    # /dev/null is shared with every other process on the machine (one running an older atomic_write
    # as root may have broken it already): only "a device stays a device" is this test's to check
    was_device = stat.S_ISCHR(os.stat("/dev/null").st_mode)
    atomic_write_text("/dev/null", "nothing")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) or not was_device


def test_archive_on_a_remote_scheduler_warns_about_relative_paths(capsys):
    from verifier.cli import _warn_relative_sources
    _warn_relative_sources(["/abs/ev", "s3://bucket/pages/", "file:///abs/p.json"])
    assert capsys.readouterr().err == ""
    _warn_relative_sources(["/abs/ev", "evidence/2026-11", "more"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "evidence/2026-11 ..." in err and "absolute paths" in err


def test_a_reader_that_stops_early_gets_one_line_and_exit_3(tmp_path):
    """``xchat-verify ... | head``: the closed pipe is an incomplete output (exit 3, one line), not
    an internal error, and nothing is printed at exit about flushing it."""
    from verifier.testing.forge import build_conversation
    conv = build_conversation(1_000, seed="pipe", realistic_crypto=False)  # a report far over a pipe's buffer
    (tmp_path / "pages.jsonl").write_text("\n".join(json.dumps(p) for p in conv.pages(100)))
    (tmp_path / "ring.json").write_text(json.dumps(conv.keyring()))
    proc = subprocess.Popen([sys.executable, "-m", "verifier", "verify", str(tmp_path / "pages.jsonl"), "--keys",
                             str(tmp_path / "ring.json"), "--format", "json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stdout.read(10) == b'{\n  "schem'
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 3
    assert stderr == "xchat-verify: standard output was closed before the report was complete\n"


@pytest.mark.parametrize("stop", ["reader", "file_size_limit"])
def test_a_short_write_to_unbuffered_standard_output_is_not_taken_as_the_whole_report(tmp_path, stop):
    """Round 87: unbuffered (PYTHONUNBUFFERED=1, common in containers and CI), standard output's binary
    layer is the raw file, and a report written in one chunk (html, text, sarif, junit, markdown) lost
    its tail on a short write(2) — the reader of ``| head`` gone mid-write, a file size limit or full
    disk behind ``>`` — with exit 0 and no message. Now every byte is written or the run says so."""
    import resource

    from verifier.testing.forge import build_conversation
    conv = build_conversation(1_000, seed="pipe", realistic_crypto=False)  # an html report of 300 KB
    (tmp_path / "pages.jsonl").write_text("\n".join(json.dumps(p) for p in conv.pages(100)))
    (tmp_path / "ring.json").write_text(json.dumps(conv.keyring()))
    cmd = [sys.executable, "-m", "verifier", "verify", str(tmp_path / "pages.jsonl"), "--keys",
           str(tmp_path / "ring.json"), "--format", "html"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if stop == "reader":
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=env)
        assert proc.stdout.read(10) == b"<!DOCTYPE "
        proc.stdout.close()
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 3
        assert stderr == "xchat-verify: standard output was closed before the report was complete\n"
        return
    limit = 64 * 1024
    with open(tmp_path / "report.html", "wb") as out:
        proc2 = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env, timeout=120,
                               preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert (proc2.returncode, proc2.stderr) == (3, "xchat-verify: cannot write standard output: File too large\n")


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_non_blocking_standard_output_that_fills_says_so_buffered_or_not(tmp_path, unbuffered):
    """Review r102: a non-blocking standard output (O_NONBLOCK on a terminal or pipe shared with
    another program) whose reader falls behind is exit 3 either way; buffered, the line named the
    cause ("write could not complete without blocking"), unbuffered (PYTHONUNBUFFERED=1) it said
    "it took 61440 of 355817 bytes, then no more" (EIO), as if the device had failed."""
    import fcntl

    from verifier.testing.forge import build_conversation
    conv = build_conversation(1_000, seed="pipe", realistic_crypto=False)  # a report far over a pipe's buffer
    (tmp_path / "pages.jsonl").write_text("\n".join(json.dumps(p) for p in conv.pages(100)))
    (tmp_path / "ring.json").write_text(json.dumps(conv.keyring()))
    read, write = os.pipe()
    fcntl.fcntl(write, fcntl.F_SETFL, fcntl.fcntl(write, fcntl.F_GETFL) | os.O_NONBLOCK)
    try:
        proc = subprocess.run([sys.executable, "-m", "verifier", "verify", str(tmp_path / "pages.jsonl"), "--keys",
                               str(tmp_path / "ring.json"), "--format", "json"], stdout=write, stderr=subprocess.PIPE,
                              text=True, cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED=unbuffered), timeout=120)
    finally:
        os.close(write)
        os.close(read)
    assert (proc.returncode, proc.stderr) == \
        (3, "xchat-verify: cannot write standard output: write could not complete without blocking\n")


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_byte_order_mark_encoding_writes_one_mark_not_one_per_chunk(tmp_path, unbuffered):
    """Round 95: PYTHONIOENCODING=utf-8-sig, round 87's standard output encoded each chunk of a JSON
    report on its own, with a byte order mark before each: the report was no longer JSON."""
    from verifier.testing.forge import Identity, build_conversation
    members = [Identity.from_seed(u, "1", u) for u in ("1215441834412953600", "1843439638876491776", "19999")]
    paths = []
    for i in range(3):
        conv = build_conversation(2, members=members, conversation_id=f"g{2010754001234567890 + i}", seed="bom",
                                  realistic_crypto=False)
        paths.append(str(tmp_path / f"c{i}.json"))
        Path(paths[-1]).write_text(json.dumps(conv.pages()[0]))
    (tmp_path / "ring.json").write_text(json.dumps(conv.keyring()))
    env = dict(os.environ, PYTHONIOENCODING="utf-8-sig", PYTHONUNBUFFERED=unbuffered)
    proc = subprocess.run([sys.executable, "-m", "verifier", "verify", *paths, "--keys", str(tmp_path / "ring.json"),
                           "--format", "json"], stdout=subprocess.PIPE, cwd=REPO, env=env, timeout=120)
    assert proc.returncode == 0
    assert proc.stdout.count(b"\xef\xbb\xbf") == 1 and proc.stdout.startswith(b"\xef\xbb\xbf")
    assert len(json.loads(proc.stdout.decode("utf-8-sig"))["conversations"]) == 3


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_an_encoding_that_cannot_write_the_report_is_one_line_not_an_internal_error(unbuffered):
    """Round 95's note: PYTHONIOENCODING=ascii and a report holding ✅ (markdown) ended in an internal
    error (UnicodeEncodeError). It is one line naming the way out, exit 3."""
    env = dict(os.environ, PYTHONIOENCODING="ascii", PYTHONUNBUFFERED=unbuffered)
    pages = sorted(str(p) for p in (REPO / "examples" / "conversation").glob("*.json"))
    proc = subprocess.run([sys.executable, "-m", "verifier", "verify", *pages, "--keys", str(REPO / "examples" / "keyring.json"),
                           "--format", "markdown"], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert proc.returncode == 3 and "internal error" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "set PYTHONIOENCODING=utf-8 or write it with -o FILE" in proc.stderr


def test_buffered_standard_output_coalesces_the_chunks(monkeypatch):
    """Round 95: round 87's standard output flushed before each chunk, one write(2) per chunk even
    buffered: a JSON report of 300 small conversations took 901 write calls to a pipe, not 101."""
    import io

    from verifier.outputs import write_stdout

    class Raw(io.RawIOBase):
        def __init__(self):
            self.calls = 0

        def writable(self):
            return True

        def write(self, data):
            self.calls += 1
            return len(data)

    raw = Raw()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BufferedWriter(raw, 8192), encoding="utf-8"))
    write_stdout("x" * 10 for _ in range(1_000))
    assert raw.calls == 2  # 10,000 bytes: one full buffer, then the rest


def test_a_full_device_behind_standard_output_is_one_line_and_exit_3():
    """Standard output on a full disk (``> /dev/full``): exit 3, one line, no internal error."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "verifier", "verify", str(EXAMPLES / "conversation" / "page-1.json"),
                               "--keys", str(EXAMPLES / "keyring.json"), "--format", "json"], stdout=full,
                              stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 3
    assert proc.stderr == "xchat-verify: cannot write standard output: No space left on device\n"


def test_every_command_output_to_a_full_device_is_the_one_line_input_error():
    """``write_output`` (every command's standard output) shares the report's handling: a full
    device is the ``InputError`` each command reports in one line (exit 3)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    script = ("import sys\nfrom verifier.errors import InputError\nfrom verifier.outputs import write_output\n"
              "try:\n    write_output(None, 'x' * 100_000)\nexcept InputError as exc:\n"
              "    print(exc, file=sys.stderr)\n    sys.exit(3)\n")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-c", script], stdout=full, stderr=subprocess.PIPE, text=True,
                              cwd=REPO, timeout=60)
    assert (proc.returncode, proc.stderr) == (3, "cannot write standard output: No space left on device\n")


def test_output_through_a_link_to_standard_output_is_written_in_place(tmp_path):
    """``-o /dev/stdout`` with standard output redirected to a file: /dev/stdout is a link to a
    regular file, and renaming over it would replace the link itself (as root, for every process).
    Tried through /proc/self/fd/1 (the link /dev/stdout points at), where a rename cannot harm the
    machine; the rule covers both."""
    from verifier.outputs import atomic_write_text, written_in_place
    redirected = tmp_path / "redirected.json"
    redirected.write_text("before\n")
    with open(redirected, "a") as out:
        (tmp_path / "to-stdout").symlink_to("/dev/stdout")
        (tmp_path / "to-link").symlink_to(tmp_path / "to-stdout")
        (tmp_path / "to-file").symlink_to(redirected)
        for path in ("/dev/stdout", "/dev/fd/1", "/proc/self/fd/1", "/dev/../dev/stdout"):
            assert written_in_place(Path(path)), path
        for path in (tmp_path / "report.json", redirected, tmp_path / "to-file", "/dev/shm/report.json",
                     tmp_path / "to-stdout", tmp_path / "to-link"):
            assert not written_in_place(Path(path)), path  # regular files (/dev/shm too), links elsewhere
        planted = tmp_path / "planted.json"  # a link in a directory the tool writes into, to one of
        planted.symlink_to(f"/proc/self/fd/{out.fileno()}")  # its open files: replaced, not followed
        atomic_write_text(planted, "{}")
        assert not planted.is_symlink() and planted.read_text() == "{}"
        assert redirected.read_text() == "before\n"
    redirected.write_text("before\n")
    with open(redirected, "a") as out:  # as a shell's >> opens it: appended to, not truncated
        proc = subprocess.run([sys.executable, "-m", "verifier", "verify", str(EXAMPLES / "conversation" / "page-1.json"),
                               "--format", "json", "-o", "/proc/self/fd/1"], stdout=out, stderr=subprocess.PIPE,
                              text=True, cwd=REPO)
    assert proc.returncode in (0, 1), proc.stderr
    text = redirected.read_text()
    assert text.startswith("before\n{") and json.loads(text[len("before\n"):])["schema"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file anywhere near


def test_a_report_in_dev_shm_is_replaced_atomically_not_appended_to(tmp_path):
    """/dev/shm is a filesystem for regular files: a second report there replaces the first."""
    if not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK):
        pytest.skip("no writable /dev/shm")
    target = Path("/dev/shm") / f"xchat-verify-test-{os.getpid()}.json"
    try:
        for _ in range(2):
            proc = subprocess.run([sys.executable, "-m", "verifier", "verify",
                                   str(EXAMPLES / "conversation" / "page-1.json"), "--format", "json", "-o", str(target)],
                                  capture_output=True, text=True, cwd=REPO)
            assert proc.returncode in (0, 1), proc.stderr
        assert json.loads(target.read_text())["schema"]  # one report, not two end to end
    finally:
        target.unlink(missing_ok=True)


def test_a_mistyped_file_name_is_named_first_in_the_verdict_line(tmp_path, capsys, good):
    """New-user review: ``verify nonexist.json`` said "history incomplete", as if the history were
    the problem; the verdict line now names the inputs not read first (the one-line error stays)."""
    assert main(["verify", str(tmp_path / "nonexist.json"), "--keys", str(good[2])]) == 3
    out, err = capsys.readouterr()
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith("verdict: FAIL — 0 conversation(s), 0 event(s); 1 input(s) not read in full; ")
    assert "history incomplete" not in verdict and "nonexist.json: cannot read it" in err
    first = json.loads(good[0].read_text())
    good[0].write_text(json.dumps({**first, "meta": {"next_token": "t2"}}))  # its older page is not given
    assert main(["verify", str(good[0]), "--keys", str(good[2])]) == 1
    verdict = capsys.readouterr().out.strip().splitlines()[-1]
    assert verdict.endswith("history incomplete") and "not read" not in verdict


@pytest.mark.parametrize("option, value", [
    ("--max-response-mb", "nan"), ("--max-conversation-mb", "nan"), ("--max-conversation-mb", "inf"),
    ("--timeout", "nan"), ("--max-wait", "nan"), ("--max-conversation-seconds", "nan"),
    ("--request-deadline", "inf"), ("--backoff-base", "-1"), ("--backoff-base", "nan"), ("--max-wait", "-5"),
    # third review: finite but huge overflowed where it became bytes or a wait
    ("--max-response-mb", "1e308"), ("--max-conversation-mb", "1e308"), ("--max-wait", "1e12"),
    # code review: counts past a billion were taken (a limit that limits nothing); not numbers at all
    ("--max-pages", "10000000000"), ("--concurrency", "-10000000000"), ("--max-retries", "many"),
    ("--timeout", "soon"),
])
def test_number_options_that_are_not_finite_or_are_negative_are_usage_errors(option, value, capsys, monkeypatch):
    """Second review: ``nan`` ended an audit in an internal error (``int(nan)``), or was taken as a
    limit that never applies (NaN compares false); a negative backoff was taken as given."""
    monkeypatch.setenv("X_BEARER_TOKEN", "Zq9xLk3mPp0aBcDeFgHiJkLmN")
    with pytest.raises(SystemExit) as stopped:
        code = main(["audit", "2222", "--base-url", "http://127.0.0.1:1", f"{option}={value}"])
        raise SystemExit(code)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "internal error" not in err and option in err, err
    assert "unrecognized" not in err and "invalid" not in err  # the value was judged, with a reason


@pytest.mark.parametrize("value, reason", [("99999999999999", "at most 1e+09"), ("0", "at least 1"),
                                           ("lots", "not a whole number")])
def test_max_file_mb_is_a_bounded_count(value, reason, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["verify", str(REPO / "examples" / "keyring.json"), "--max-file-mb", value])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and reason in err and "--max-file-mb" in err, err


def test_dash_as_output_is_standard_output_for_every_command(tmp_path, monkeypatch, capsys):
    """New-user review: ``transcript -o -`` wrote to standard output, ``verify -o -`` (and ``vectors``,
    ``keys fetch``, ``ledger export``) a file named ``-``."""
    monkeypatch.chdir(tmp_path)
    pages = [str(p) for p in sorted((EXAMPLES / "conversation").glob("*.json"))]
    assert main(["verify", *pages, "--keys", str(EXAMPLES / "keyring.json"), "--format", "json", "-o", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "pass"
    assert main(["vectors", str(REPO / "vectors" / "chain"), "--format", "json", "-o", "-"]) == 0
    assert json.loads(capsys.readouterr().out)
    ledger = tmp_path / "l.db"
    assert main(["verify", *pages, "--keys", str(EXAMPLES / "keyring.json"), "--ledger", str(ledger)]) == 0
    capsys.readouterr()
    assert main(["ledger", "export", "--ledger", str(ledger), "-o", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["conversations"]
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("width", [60, 80])
def test_a_narrow_terminal_wraps_what_is_wrong_instead_of_cutting_it(width):
    """Round 80: on an 80-column terminal each problem example was cut with an ellipsis right where
    it said what was wrong ("...2080400077091766277: prede…", "...: ECDSA…"). It wraps under a
    hanging indent; every line but the verdict's fits the width."""
    import verifier
    from verifier.report.text import render_text
    pages = [p.read_bytes() for p in sorted((EXAMPLES / "tampered").glob("*.json"))]
    report = verifier.verify_pages(pages, verifier.Keyring.from_json((EXAMPLES / "keyring.json").read_text()))
    lines = render_text(report, width=width).splitlines()
    flat = " ".join(line.strip() for line in lines)
    assert "predecessor 2080400072897462276 is missing from the input" in flat
    assert "ECDSA mismatch (payload 218 bytes); v7, key 1215441834412953600/1765382634817" in flat
    assert all(len(line) <= width for line in lines if not line.startswith("verdict:"))
    examples = [i for i, line in enumerate(lines) if line.startswith("      1215441834412953600:")]
    assert len(examples) == 2 and all(lines[i + 1].startswith("        ") for i in examples)


def test_the_plain_columns_of_a_long_history_cut_no_finding_in_a_file():
    """Round 80: --all-events on more than 1000 events (plain columns) cut each row's findings at 120
    characters in a file or a pipe ("JSON '99"), where a text report cuts no line; a terminal's width
    still cuts them."""
    import verifier
    from verifier.report.text import BOXED_UP_TO, render_text
    body = page(*[ev(seq=n, prev=n - 1 if n > 1 else None) for n in range(1, BOXED_UP_TO + 3)])
    for item in body["data"]:
        item["sender_id"] = "9" * 19
    report = verifier.verify_pages([body], verifier.Keyring.from_json(json.dumps({"keys": [ALICE.keyring_entry()]})))
    finding = "envelope_mismatch: sender_id differs: JSON '9999999999999999999', event '1111'"
    rows = [line for line in render_text(report, all_events=True).splitlines() if "envelope_mismatch:" in line]
    assert len(rows) == BOXED_UP_TO + 2 and all(row.endswith(finding) for row in rows)
    narrow = [line for line in render_text(report, all_events=True, width=100).splitlines()
              if "envelope_mismatch:" in line]
    assert narrow and all(len(row) <= 100 for row in narrow)


def test_a_text_report_in_a_file_cuts_no_line(tmp_path, capsys):
    """New-user review: messages were cut at 120 columns (``…``) in files too, and the conversation
    line wrapped mid-list; only a terminal's width cuts a line."""
    pages = [str(p) for p in sorted((EXAMPLES / "tampered").glob("*.json"))]
    out = tmp_path / "t.txt"
    assert main(["verify", *pages, "--keys", str(EXAMPLES / "keyring.json"), "-o", str(out)]) == 1
    text = out.read_text()
    assert "…" not in text
    assert any(line.startswith("  1215441834412953600:1843439638876491776  FAIL") and line.endswith("duplicate 2")
               for line in text.splitlines())
    assert "ECDSA mismatch (payload 218 bytes); v7, key 1215441834412953600/" in text


@pytest.mark.parametrize("args", [["verify", "x.json", "--format", "xml"], ["verify", "x.json", "--max-file-mb", "nan"],
                                  ["bogus"], ["receipt", "verify", "r.json"], ["vectors", "--profile", "foo"]])
def test_usage_errors_are_one_line(args):
    """New-user review: argparse printed its whole usage block before the message (docs/cli.md:
    errors are one line)."""
    proc = subprocess.run([sys.executable, "-m", "verifier", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and ": error: " in lines[0] and lines[0].endswith("--help)"), proc.stderr


@pytest.mark.parametrize("args,command", [
    (["audit", "1:2", "--max-results", "0"], "xchat-verify audit"),
    (["audit", "1:2", "--concurrency", "0"], "xchat-verify audit"),
    (["audit", "1:2", "--resume"], "xchat-verify audit"),
    (["keys", "new-receipt-key", "-o", "-"], "xchat-verify keys new-receipt-key")])
def test_usage_errors_found_after_parsing_point_at_the_command_s_help(args, command):
    """Round 100: limits checked after parsing (``UsageError``) said "xchat-verify: error: --max-results
    must be between 1 and 100" with no way to the options, where argparse's own errors name the
    command's --help."""
    proc = subprocess.run([sys.executable, "-m", "verifier", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=60, env={k: v for k, v in os.environ.items() if k != "X_BEARER_TOKEN"})
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xchat-verify: error: ") and \
        lines[0].endswith(f"(see {command} --help)"), proc.stderr


def test_junit_or_markdown_to_standard_output_is_a_usage_error(capsys):
    """Review: ``vectors --junit -`` passed the path check, then wrote the JUnit nowhere (exit 0)."""
    assert main(["vectors", str(REPO / "vectors" / "chain"), "--junit", "-"]) == 2
    assert "--junit -: standard output takes the results" in capsys.readouterr().err


def test_a_receipt_to_standard_output_is_a_usage_error(tmp_path, monkeypatch, capsys):
    """Round 105: ``audit --receipt-key K --receipt -`` wrote the signed receipt to a file named "-"
    in the working directory ("receipt written to -"), where ``-`` is standard output everywhere."""
    from verifier.receipts import new_receipt_key
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("X_BEARER_TOKEN", raising=False)  # no request, whatever happens
    new_receipt_key(tmp_path / "k")
    assert main(["audit", "1:2", "--receipt-key", "k", "--receipt", "-", "--base-url", "http://127.0.0.1:9",
                 "--insecure-http"]) == 2
    assert "--receipt -: standard output takes the results" in capsys.readouterr().err
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("option,target", [("--receipt", "manifest.json"), ("--receipt", "keyring.json"),
                                           ("--receipt", "keys"), ("-o", "manifest.journal"),
                                           ("--receipt", "conversations/1-2/page-00001.json"), ("-o", ".")])
def test_outputs_never_go_onto_the_evidence_an_audit_saves(option, target, tmp_path, monkeypatch, capsys):
    """Round 105: ``audit --save ev --receipt ev/manifest.json`` replaced the manifest the receipt had
    just signed (exit 0, the evidence unusable); a directory there (``ev/keys``) was found only after
    the whole audit. Refused before any request; a file beside the evidence is still fine."""
    from verifier.receipts import new_receipt_key
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("X_BEARER_TOKEN", raising=False)  # no request, whatever happens
    new_receipt_key(tmp_path / "k")
    (tmp_path / "ev" / "keys").mkdir(parents=True)
    base = ["audit", "1:2", "--save", "ev", "--receipt-key", "k", "--base-url", "http://127.0.0.1:9", "--insecure-http"]
    assert main([*base, option, f"ev/{target}"]) == 2
    assert "is inside the evidence the audit saves in --save ev" in capsys.readouterr().err
    assert main([*base, "--receipt", "ev/receipt.json", "-o", "ev/report.json"]) == 2  # beside it: only the token
    assert "no access token" in capsys.readouterr().err


def test_debug_traceback_is_readable_and_a_message_cannot_start_a_line(monkeypatch, capsys):
    """--debug escaped the whole traceback, then turned every ``\\x0a`` back into a line break: a
    newline in an exception's message (or the text ``\\x0a`` itself) printed a line of its own."""
    import verifier.cli as cli

    def boom(args):
        raise RuntimeError("bad \\x0averdict: PASS\nverdict: PASS \x1b[2J")
    monkeypatch.setattr(cli, "cmd_verify", boom)
    assert main(["--debug", "verify", "x.json"]) == 3
    lines = capsys.readouterr().err.splitlines()
    assert "Traceback (most recent call last):" in lines and any(line.startswith("  File ") for line in lines)
    assert not any(line.startswith("verdict") for line in lines) and "\x1b" not in "".join(lines)
    assert lines[-1] == "RuntimeError: bad \\x0averdict: PASS\\x0averdict: PASS \\x1b[2J"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception groups are Python 3.11+")
def test_debug_traceback_of_an_exception_group_keeps_every_message_on_its_line(monkeypatch, capsys):
    """Review 54: a group's members are laid out with a margin on each line, so their messages no
    longer matched the text they were compared with and were split at their newlines."""
    import verifier.cli as cli

    def boom(args):
        try:
            raise ValueError("bad\nverdict: PASS")
        except ValueError as inner:
            raise ExceptionGroup("several\nverdict: PASS", [inner, OSError("k\nverdict: PASS")]) from inner  # noqa: F821
    monkeypatch.setattr(cli, "cmd_verify", boom)
    assert main(["--debug", "verify", "x.json"]) == 3
    lines = capsys.readouterr().err.splitlines()
    assert not any(line.lstrip(" |").startswith("verdict") for line in lines), lines
    assert any(line.endswith("OSError: k\\x0averdict: PASS") for line in lines)


def test_docs_list_every_code_every_audit_option_and_load_identity_keys_signature():
    """Review 51: formats.md's tables lacked four codes (``unused_conversation_key``, ``api_error``,
    ...), cli.md's audit synopsis lacked ``--workers``, api.md gave ``load_identity_key`` another
    signature."""
    import inspect
    import re

    from verifier.model import Code
    from verifier.participant import load_identity_key

    formats = (REPO / "docs" / "formats.md").read_text()
    tabled = {name for row in re.findall(r"^\| ([^|]+) \|", formats, re.M) for name in re.findall(r"`(\w+)`", row)}
    assert sorted(c.value for c in Code if c.value not in tabled) == []
    cli = (REPO / "docs" / "cli.md").read_text()
    synopsis = cli.split("## audit", 1)[1].split("```", 2)[1]
    from test_hostile_text import run_main

    _code, usage, _err = run_main(["audit", "--help"])
    options = set(re.findall(r"\[(--[a-z-]+)", usage)) - {"--help"}
    assert sorted(o for o in options if o not in synopsis) == []
    api = (REPO / "docs" / "api.md").read_text()
    params = ", ".join(f"{p.name}={p.default}" if p.default is not p.empty else p.name
                       for p in inspect.signature(load_identity_key).parameters.values())
    assert f"`load_identity_key({params})" in api


def test_boxed_tables_of_a_report_are_bounded_in_all(monkeypatch):
    """Round 78: every conversation got a boxed table (about 1 ms a row and 1 ms a table), so 40,000
    one-event conversations (2.6 MB of pages) took 80 s to print. Past BOXED_IN_ALL rows and tables in
    all, the rest are plain columns; every event is still listed."""
    import base64

    import verifier
    from verifier.report import text as text_report
    from verifier.testing.forge import encode_event
    from verifier.wire import MessageEvent
    monkeypatch.setattr(text_report, "BOXED_IN_ALL", 20)
    bodies = [{"data": [{"encoded_event": base64.b64encode(encode_event(
        MessageEvent(sequence_id="1", conversation_id=f"g{i}"))).decode()}]} for i in range(30)]
    lines = text_report.render_text(verifier.verify_pages(bodies, None)).splitlines()
    assert sum(line.startswith("┏") for line in lines) == 10  # 10 tables of one row: 20
    assert sum(line.startswith("events of g") for line in lines) == 30
    assert sum("unknown_event_type: event has no detail" in line for line in lines) == 30


@pytest.mark.parametrize("argv, expected", [
    (["verify", "x.json", "--workers", "0"], "xchat-verify verify: error: --workers must be at least 1 "
                                             "(see xchat-verify verify --help)"),
    (["verify", "--wrkers", "2", "x.json"], "xchat-verify verify: error: unrecognized arguments: --wrkers "
                                            "(see xchat-verify verify --help)"),
])
def test_a_usage_error_points_at_the_subcommand_s_help(capsys, argv, expected):
    """Round 80: errors found after parsing, and unknown options, said "see xchat-verify --help",
    whose page does not list the subcommand's options."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2 and capsys.readouterr().err.strip() == expected


def test_a_closed_standard_output_is_one_line_not_an_internal_error():
    """Review 96: started with standard output closed (``>&-``), Python has no ``sys.stdout`` at all,
    and ``verify`` ended in an internal error (AttributeError: 'NoneType' object has no attribute
    'isatty'); it is the one-line "cannot write standard output", exit 3, as a full disk is."""
    pages = sorted(str(p) for p in (REPO / "examples" / "conversation").glob("*.json"))
    proc = subprocess.run([sys.executable, "-m", "verifier", "verify", *pages, "--keys",
                           str(REPO / "examples" / "keyring.json")], stderr=subprocess.PIPE, text=True, cwd=REPO,
                          timeout=120, preexec_fn=lambda: os.close(1))
    assert (proc.returncode, proc.stderr) == (
        3, "xchat-verify: cannot write standard output: it is closed; write the report with -o FILE\n")


def test_every_option_of_every_command_has_help_text():
    """Round 100 (new-user walk): `vectors --format` and the `-o` of `ledger export` and `ledger
    checkpoint` were listed by --help without a word of what they do."""
    import argparse

    from verifier.cli import build_parser

    def bare(parser, name):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, subparser in action.choices.items():
                    yield from bare(subparser, f"{name} {sub}")
            elif action.option_strings and not action.help:
                yield name, action.option_strings

    assert list(bare(build_parser(), "xchat-verify")) == []
    from verifier.testing.server import build_parser as server_parser  # (its --host, --port, --shape had none)
    assert list(bare(server_parser(), "python -m verifier.testing.server")) == []


def test_a_wrong_conversation_key_is_named_in_the_invalid_detail(capsys):
    """Round 100 (new-user walk): a mistyped --conversation-key made the example's genuine v7 key
    changes `invalid` with only "ECDSA mismatch", under a hint that says the event was altered."""
    import base64
    import hashlib
    pages = sorted(str(p) for p in (REPO / "examples" / "conversation").glob("*.json"))
    ring = str(REPO / "examples" / "keyring.json")
    wrong = base64.b64encode(hashlib.sha256(b"not the key").digest()).decode()
    assert main(["verify", *pages, "--keys", ring, "--conversation-key", f"1784840999000={wrong}",
                 "--format", "json"]) == 1
    events = json.loads(capsys.readouterr().out)["conversations"][0]["events"]
    bad = [e["signature"] for e in events if e["event_type"] == "ConversationKeyChangeEvent"]
    assert bad and all(s["status"] == "invalid" for s in bad)
    assert all("holds the conversation key used for version 1784840999000" in s["detail"] for s in bad)
    right = base64.b64encode(hashlib.sha256(b"ckey:example").digest()).decode()  # examples/make_examples.py
    assert main(["verify", *pages, "--keys", ring, "--conversation-key", f"1784840999000={right}",
                 "--format", "json"]) == 0
    events = json.loads(capsys.readouterr().out)["conversations"][0]["events"]
    assert all("conversation key used" not in e["signature"]["detail"] for e in events)


@pytest.mark.parametrize("value", ["1e3", "1e10", "512.0"])
def test_a_count_in_exponent_form_is_refused_for_its_spelling(value, capsys):
    """Round 100 (new-user walk): `--max-file-mb 1e10` said "not a whole number: '1e10'"."""
    with pytest.raises(SystemExit) as stopped:
        main(["verify", "x.json", "--max-file-mb", value])
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert "not a whole number written in decimal digits (such as 512)" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("argv, command", [
    (["archive", "verify", "x", "--receipt-public-key", "k"], "xchat-verify archive verify"),
    (["archive", "verify", "x", "--workers", "0"], "xchat-verify archive verify"),
    (["ledger", "show", "--bogus"], "xchat-verify ledger show"),
    (["keys", "fetch", "1", "--bogus"], "xchat-verify keys fetch"),
    (["verify", "x", "--wrkers", "2"], "xchat-verify verify")])
def test_a_usage_error_of_a_nested_command_points_at_its_own_help(argv, command, capsys):
    """Round 100 (new-user walk): `archive verify DIR --receipt-public-key K` said "see xchat-verify
    archive --help", whose page lists no option of `archive verify`."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.startswith(f"{command}: error: ") and f"(see {command} --help)" in err
    assert len(err.splitlines()) == 1


def test_cli_md_names_every_mode_and_option_of_the_local_server():
    """r126: cli.md's local server section lacked the ``echo-token-shadowed`` mode and the ``--host`` and
    ``--identity-keys`` options (which README uses)."""
    import re

    from verifier.testing.server import HOSTILE_MODES, build_parser
    section = (REPO / "docs" / "cli.md").read_text().split("## Local X API server", 1)[1]
    assert sorted(mode for mode in HOSTILE_MODES if f"`{mode}`" not in section) == []
    synopsis = section.split("```", 2)[1]
    options = {o for action in build_parser()._actions for o in action.option_strings if o.startswith("--")}
    assert sorted(o for o in options - {"--help"} if not re.search(rf"[\[ ]{o}\b", synopsis)) == []
