"""The access token given where an id goes is never printed (docs/cli.md: never printed, logged or saved)."""
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from verifier import cli
from verifier.receipts import load_signing_key, make_receipt, new_receipt_key
from verifier.sanitize import SECRET_PREFIX

ROOT = Path(__file__).resolve().parents[1]

TOKEN = "SeCrEtToKeN0123456789abcdef"


@pytest.mark.parametrize("argv", [["audit", TOKEN], ["keys", "fetch", TOKEN], ["audit", "1:2", TOKEN]])
def test_token_as_id_is_not_printed(argv, monkeypatch, capsys):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    assert cli.main([*argv, "--base-url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert TOKEN not in err
    assert "access token" in err and err.count("\n") == 1


def test_other_bad_id_is_quoted(monkeypatch, capsys):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    assert cli.main(["audit", "xyz", "--base-url", "http://127.0.0.1:9"]) == 2
    assert "'xyz'" in capsys.readouterr().err


def test_transcript_token_as_id_is_not_printed(tmp_path, monkeypatch, capsys):
    key = tmp_path / "identity.key"
    key.write_text("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n")
    key.chmod(0o600)
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    assert cli.main(["transcript", TOKEN, "--identity-key", str(key), "-o", str(tmp_path / "t.jsonl"),
                     "--base-url", "http://127.0.0.1:9"]) == 2
    assert TOKEN not in capsys.readouterr().err


def test_short_token_does_not_mangle_other_messages(monkeypatch, capsys):
    monkeypatch.setenv("X_BEARER_TOKEN", "x")
    assert cli.main(["audit", "nofile.json", "--base-url", "http://127.0.0.1:9"]) == 2
    assert "expected A:B" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["Bearer abcdef123", "bearer abcdef123\n"])
def test_bearer_prefix_is_named(value, monkeypatch, capsys):
    monkeypatch.setenv("X_BEARER_TOKEN", value)
    assert cli.main(["audit", "1:2", "--base-url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "'Bearer '" in err and "abcdef123" not in err


def test_token_in_base_url_is_not_printed(monkeypatch, capsys):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    assert cli.main(["audit", "1:2", "--base-url", f"https://api.x.com/?access_token={TOKEN}"]) == 2
    err = capsys.readouterr().err
    assert TOKEN not in err and "--base-url holds the access token" in err


@pytest.mark.parametrize("argv", [
    ["verify", "examples/conversation/page-1.json", "--keys", TOKEN],
    ["verify", "examples/conversation/page-1.json", "--keys", f"/nonexistent/{TOKEN}.json"],
    ["audit", "1:2", "--max-results", TOKEN],
    ["audit", "1:2", f"--no-such-option={TOKEN}"],
])
def test_token_in_any_argument_is_not_printed(argv, monkeypatch, capsys):
    """r119: usage, input and parse errors quoting an argument that holds the token printed it in full."""
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    monkeypatch.chdir(ROOT)
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code in (2, 3)
    err = capsys.readouterr().err
    assert TOKEN not in err and TOKEN[:SECRET_PREFIX] not in err
    assert "[redacted: access token]" in err and "argument holds the access token" in err
    assert err.count("\n") == 1


def test_token_from_a_token_file_in_an_argument_is_not_printed(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("X_BEARER_TOKEN", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with pytest.raises(SystemExit) as exited:
        cli.main(["audit", "1:2", "--token-file", str(token_file), "--max-results", TOKEN])
    assert exited.value.code == 2
    assert TOKEN not in capsys.readouterr().err


def test_no_argument_holds_the_token_message_unchanged(monkeypatch, capsys):
    monkeypatch.setenv("X_BEARER_TOKEN", "keys-missing-file")
    monkeypatch.chdir(ROOT)
    assert cli.main(["verify", "examples/conversation/page-1.json", "--keys", "nothere/keys-missing-file.json"]) == 3
    err = capsys.readouterr().err
    assert "keys-missing-file.json" not in err  # the argument holds the token: scrubbed
    monkeypatch.setenv("X_BEARER_TOKEN", "another-token-value")
    assert cli.main(["verify", "examples/conversation/page-1.json", "--keys", "nothere/keys-missing-file.json"]) == 3
    err = capsys.readouterr().err
    assert "nothere/keys-missing-file.json" in err and "redacted" not in err


@pytest.mark.parametrize("base_url", [f"http://127.0.0.1:9/{TOKEN}", f"http://127.0.0.1:9/v/{TOKEN[:5]}%{ord(TOKEN[5]):02X}{TOKEN[6:]}",
                                      f"http://{TOKEN}.localhost:9"])
def test_token_in_base_url_path_is_refused(base_url, tmp_path, monkeypatch, capsys):
    """r121: only a query was refused; a token in the path was sent and saved in manifest.json."""
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    assert cli.main(["audit", "1:2", "--base-url", base_url, "--save", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert TOKEN not in err and "--base-url holds the access token" in err and err.count("\n") == 1
    assert not (tmp_path / "ev").exists()


@pytest.mark.parametrize("fmt", ["text", "json", "ndjson", "sarif", "junit", "markdown", "html"])
def test_token_as_a_page_is_not_in_the_report(fmt, monkeypatch, capsys):
    """r121: 'verify $TOKEN' scrubbed its error line, but the report on standard output named the input."""
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    assert cli.main(["verify", TOKEN, "--format", fmt]) == 3
    out, err = capsys.readouterr()
    assert TOKEN not in out and TOKEN not in err and TOKEN[:SECRET_PREFIX] not in out
    assert "redacted" in out


def test_token_in_a_page_path_is_not_recorded(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    monkeypatch.chdir(tmp_path)
    page = tmp_path / f"{TOKEN}.json"
    page.write_bytes((ROOT / "examples/conversation/page-1.json").read_bytes())
    pages = [str(page), *(str(ROOT / f"examples/conversation/page-{n}.json") for n in (2, 3))]
    assert cli.main(["verify", *pages, "--keys", str(ROOT / "examples/keyring.json"), "--ledger", "l.db",
                     "--format", "json"]) == 0
    assert TOKEN not in capsys.readouterr().out
    assert cli.main(["ledger", "export", "--ledger", "l.db"]) == 0
    exported = capsys.readouterr().out
    assert TOKEN not in exported and "page-2.json" in exported


def test_token_as_an_archive_source_is_not_in_the_report(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "X_BEARER_TOKEN": TOKEN}
    done = subprocess.run([sys.executable, "-m", "verifier", "archive", "verify", TOKEN, "--workers", "1", "-q",
                           "--format", "json"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 3 and "Traceback" not in done.stderr
    assert TOKEN not in done.stdout + done.stderr and "redacted" in done.stdout


def test_every_stderr_line_is_scrubbed_when_an_argument_holds_the_token(tmp_path, monkeypatch, capsys):
    """r121 noticed lines quoting a path outside cli.warn: vectors export's, "receipt written to", the
    --metrics warning. All of standard error is scrubbed while an argument holds the token."""
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["vectors", "export", f"{TOKEN}.tar.gz", str(ROOT / "vectors")]) == 0
    err = capsys.readouterr().err
    assert (tmp_path / f"{TOKEN}.tar.gz").is_file() and "files written to" in err and TOKEN not in err
    assert cli.main(["keys", "new-receipt-key", "-o", f"{TOKEN}.key"]) == 0
    err = capsys.readouterr().err
    assert (tmp_path / f"{TOKEN}.key").is_file() and ".pub" in err and TOKEN not in err
    assert sys.stderr is not None and "TokenScrubbed" not in type(sys.stderr).__name__  # put back after the run


def test_token_in_an_archive_source_path_is_not_recorded(tmp_path):
    """r121 noticed: ``archive verify`` recorded each group's source paths in the ledger as given,
    so a page file named with the token put the token in the ledger's rows (its report was scrubbed)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "X_BEARER_TOKEN": TOKEN}
    folder = tmp_path / f"in-{TOKEN}"
    folder.mkdir()
    for n in (1, 2, 3):
        (folder / f"page-{n}.json").write_bytes((ROOT / f"examples/conversation/page-{n}.json").read_bytes())
    run = [sys.executable, "-m", "verifier"]
    done = subprocess.run([*run, "archive", "verify", str(folder), "--workers", "1", "-q", "--keys",
                           str(ROOT / "examples/keyring.json"), "--ledger", "l.db", "--format", "json"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    exported = subprocess.run([*run, "ledger", "export", "--ledger", "l.db"], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=60)
    assert exported.returncode == 0 and "archive verify" in exported.stdout
    assert TOKEN not in exported.stdout and "redacted" in exported.stdout
    with open(tmp_path / "l.db", "rb") as ledger:
        assert TOKEN.encode() not in ledger.read()


@pytest.mark.parametrize("source", [TOKEN, "missing-page.json"])
def test_a_closed_stderr_ends_the_run_as_without_the_token(source, tmp_path):
    """r125: with standard error closed (``2>&-``: Python's sys.stderr is None) the scrubbing wrapper
    wrote to None: a traceback and exit 1, a FAIL, where the run without the token says its line
    where print(file=None) does (standard output) and exits 3."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "X_BEARER_TOKEN": TOKEN}
    done = subprocess.run(["sh", "-c", f'exec "{sys.executable}" -m verifier verify "$1" 2>&-', "sh", source],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert done.returncode == 3, done.stdout
    assert "Traceback" not in done.stdout and TOKEN not in done.stdout
    assert "xchat-verify: " in done.stdout and "cannot read it" in done.stdout


def test_a_line_folded_by_the_status_display_is_scrubbed(monkeypatch):
    """r125: on a terminal, audit's and archive verify's status display (rich) pass the lines written
    meanwhile through its console, which folds a line wider than the terminal inside the token: the
    scrubbing, which looked for the token whole, printed it whole in two pieces."""
    import io

    from rich.console import Console
    written = io.StringIO()
    monkeypatch.setattr(sys, "stderr", cli._TokenScrubbed(written, (TOKEN,)))
    display = cli._Display(True, console=Console(stderr=True, force_terminal=True, width=40))
    with display:
        display.show("working")
        print(f"xchat-verify: receipt written to /tmp/a/long/directory/{TOKEN}/receipt.json", file=sys.stderr)
    text = written.getvalue()
    assert "receipt written to" in text and "redacted" in text
    assert not any(TOKEN[at:at + SECRET_PREFIX] in text for at in range(len(TOKEN) - SECRET_PREFIX + 1)), text


@pytest.mark.parametrize("command", ["audit", "archive"])
@pytest.mark.parametrize("holds_token", [False, True])
def test_a_closed_stderr_does_not_stop_the_status_display(command, holds_token, tmp_path):
    """r125 noticed: audit and archive verify asked a closed standard error (None) whether it is a
    terminal: an internal error, with or without the token in an argument (the scrubbing wrapper on
    a closed standard error is no terminal either), where the run has its own outcome."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "X_BEARER_TOKEN": TOKEN}
    name = f"in-{TOKEN}" if holds_token else "elsewhere"
    argv = (["audit", "1234", "--base-url", "http://127.0.0.1:9", "--max-retries", "0", "--save", name]
            if command == "audit" else ["archive", "verify", name, "--workers", "1"])
    done = subprocess.run(["sh", "-c", 'exec "$0" -m verifier "$@" 2>&-', sys.executable, *argv],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert "internal error" not in done.stdout and "Traceback" not in done.stdout, done.stdout
    assert done.returncode == 3 and "xchat-verify: " in done.stdout and TOKEN not in done.stdout


def test_the_scrubbing_wrapper_of_a_closed_stderr_is_no_terminal(monkeypatch):
    """Its lines go where print(file=None) puts them (standard output), but a status display must not
    draw there because standard output is a terminal."""
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True
    monkeypatch.setattr(sys, "stdout", Terminal())
    wrapper = cli._TokenScrubbed(None, (TOKEN,))
    assert wrapper.isatty() is False
    wrapper.write(f"a line with {TOKEN}\n")
    assert "a line with" in sys.stdout.getvalue() and TOKEN not in sys.stdout.getvalue()
    assert cli._TokenScrubbed(Terminal(), (TOKEN,)).isatty() is True


@pytest.mark.parametrize("action", ["show", "export", "check"])
def test_a_ledger_path_holding_the_token_is_not_printed(action, tmp_path, monkeypatch, capsys):
    """r130: ``ledger show``, ``export`` and ``check`` print the --ledger path as given (their JSON's
    "ledger"): ``--ledger l-$TOKEN.db`` printed the token whole, on standard output or into -o FILE."""
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    monkeypatch.chdir(tmp_path)
    pages = [str(ROOT / f"examples/conversation/page-{n}.json") for n in (1, 2, 3)]
    assert cli.main(["verify", *pages, "--keys", str(ROOT / "examples/keyring.json"), "--ledger", f"l-{TOKEN}.db",
                     "--format", "json"]) == 0
    capsys.readouterr()
    assert cli.main(["ledger", action, "--ledger", f"l-{TOKEN}.db"]) == 0
    out = capsys.readouterr().out
    assert '"ledger": "l-[redacted: access token].db"' in out and TOKEN not in out
    if action == "export":
        assert cli.main(["ledger", action, "--ledger", f"l-{TOKEN}.db", "-o", "export.json"]) == 0
        saved = (tmp_path / "export.json").read_text()
        assert "redacted" in saved and TOKEN not in saved


def test_a_receipt_path_holding_the_token_is_not_printed(tmp_path, monkeypatch, capsys):
    """r130: ``receipt verify`` prints the receipt's path as given (its JSON's "receipt"), so
    ``receipt verify rc-$TOKEN.json`` printed the token whole."""
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    monkeypatch.chdir(tmp_path)
    new_receipt_key(tmp_path / "r.key")
    body = make_receipt(key=load_signing_key(tmp_path / "r.key"), tool_version="t", time="2026-01-01T00:00:00.000Z",
                        verdict="pass", report_digest="0" * 64, checkpoints=[], evidence_dir=None, ledger_audit=1)
    (tmp_path / f"rc-{TOKEN}.json").write_text(json.dumps(body))
    assert cli.main(["receipt", "verify", f"rc-{TOKEN}.json", "--public-key", "r.key.pub"]) == 0
    out = capsys.readouterr().out
    assert '"receipt": "rc-[redacted: access token].json"' in out and TOKEN not in out


@pytest.mark.parametrize("fmt", ["text", "json", "junit", "markdown"])
def test_an_implementation_command_holding_the_token_is_not_in_the_results(fmt, tmp_path, monkeypatch, capsys):
    """r137: ``vectors --impl "CMD $TOKEN"`` named the implementation as given in every format of its
    results (a CI job's published JUnit XML among them), on standard output and in -o, --junit and
    --markdown files; only its error lines were scrubbed."""
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    suite = tmp_path / "suite"
    case = next(path for path in sorted((ROOT / "vectors").rglob("expected.json")))
    shutil.copytree(case.parent, suite / "one" / "case")
    command = f"{sys.executable} -c pass {TOKEN}"
    cli.main(["vectors", str(suite), "--impl", command, "--format", fmt])
    out = capsys.readouterr().out
    assert TOKEN not in out and "redacted" in out
    cli.main(["vectors", str(suite), "--impl", command, "--format", fmt, "-o", str(tmp_path / "out"),
              "--junit", str(tmp_path / "out.xml"), "--markdown", str(tmp_path / "out.md")])
    for name in ("out", "out.xml", "out.md"):
        assert TOKEN not in (tmp_path / name).read_text() and "redacted" in (tmp_path / name).read_text()


# a token of the characters a format escapes (Markdown's \\_ \\~ \\+, XML's &amp; &lt; &quot;)
_ESCAPED_TOKEN = 'SeCr_Et~To+Ke&N<01"23456789'


@pytest.mark.parametrize("printed", ["whole", "cut short"])
@pytest.mark.parametrize("fmt", ["text", "json", "junit", "markdown"])
def test_the_token_an_implementation_prints_is_not_in_the_results(printed, fmt, tmp_path, monkeypatch, capsys):
    """r142: the results were scrubbed of the token once rendered, so a token that the format
    escaped (Markdown, JUnit XML), or that the case's problem cut short (the last 200 characters of
    the implementation's standard error), was printed: here the implementation echoes its argument."""
    monkeypatch.setenv("X_BEARER_TOKEN", _ESCAPED_TOKEN)
    suite = tmp_path / "suite"
    case = next(path for path in sorted((ROOT / "vectors").rglob("expected.json")))
    shutil.copytree(case.parent, suite / "one" / "case")
    lead = "x" * (190 if printed == "cut short" else 10)
    script = tmp_path / "impl.py"
    script.write_text(f"import sys\nprint({lead!r} + sys.argv[1], file=sys.stderr)\nsys.exit(5)\n")
    command = shlex.join([sys.executable, str(script), _ESCAPED_TOKEN])
    outputs = ["-o", str(tmp_path / "out"), "--junit", str(tmp_path / "out.xml"), "--markdown", str(tmp_path / "out.md")]
    assert cli.main(["vectors", str(suite), "--impl", command, "--format", fmt]) == 1
    assert cli.main(["vectors", str(suite), "--impl", command, "--format", fmt, *outputs]) == 1
    texts = [capsys.readouterr().out] + [(tmp_path / name).read_text() for name in ("out", "out.xml", "out.md")]
    for text in texts:
        assert "redacted" in text and "crashed: exit code 5" in text
        assert "SeCr" not in text and "Ke&amp;N" not in text


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_the_token_an_implementation_prints_across_two_lines_is_not_in_the_results(jobs, tmp_path, monkeypatch,
                                                                                  capsys):
    """r142: a case's problem quotes the last line of the implementation's standard error, which held
    the end of a token it printed across two lines (a wrapped error message): the end of the token."""
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    suite = tmp_path / "suite"
    for case in sorted((ROOT / "vectors").rglob("expected.json"))[:2]:
        shutil.copytree(case.parent, suite / "one" / case.parent.name)
    script = tmp_path / "impl.py"
    script.write_text("import sys\nprint('bad token: ' + sys.argv[1][:10] + '\\n' + sys.argv[1][10:], file=sys.stderr)\n"
                      "sys.exit(5)\n")
    command = shlex.join([sys.executable, str(script), TOKEN])
    assert cli.main(["vectors", str(suite), "--impl", command, "--jobs", jobs, "--format", "json"]) == 1
    results = json.loads(capsys.readouterr().out)
    problems = [problem for case in results["cases"] for problem in case["problems"]]
    assert problems == ["crashed: exit code 5: bad token: [redacted: access token]"] * 2
