"""Hostile or damaged ledger inputs: each is a precise one-line error with a defined exit code (a
ledger problem exit 3, a usage error exit 2), never a traceback, an internal error, a hang, unbounded
memory or a printed secret. Stores are exercised on both backends (SQLite file, real PostgreSQL)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, run_cli, write_history

from verifier.ledger.transcript import Transcript
from verifier.testing.forge import build_conversation

CONV = build_conversation(12, seed="hostile", realistic_crypto=False)


def env(**extra):
    out = {k: v for k, v in os.environ.items() if k != "XCHAT_VERIFY_LEDGER"}
    out.update(extra)
    return out


def one_line(proc, code: int, *needles: str, absent: tuple[str, ...] = ()) -> str:
    """The process ended with ``code`` and exactly one stderr line naming every needle."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, (proc.returncode, proc.stdout[-500:], proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("xchat-verify: "), lines
    assert "internal error" not in lines[0] and "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    for secret in absent:
        assert secret not in proc.stderr + proc.stdout, secret
    return lines[0]


def subprocess_run(*args, timeout=60, extra_env=None):
    proc = subprocess.run([sys.executable, "-m", "verifier", *map(str, args)], capture_output=True, text=True,
                          env=env(**(extra_env or {})), cwd=REPO, timeout=timeout)
    assert "Traceback" not in proc.stderr
    return proc


@pytest.fixture()
def pages(tmp_path):
    return write_history(tmp_path, CONV, 5)


def record(ledger: str, pages, *extra) -> object:
    files, ring = pages
    return run_cli(["verify", *files, "--keys", ring, "--ledger", ledger, *extra], env=env())


# ------------------------------------------------------------------------------------- 8: empty --ledger
def test_an_empty_ledger_name_is_a_usage_error(pages):
    files, ring = pages
    one_line(run_cli(["verify", *files, "--keys", ring, "--ledger", ""], env=env()), 2, "--ledger is empty")
    one_line(run_cli(["verify", *files, "--keys", ring], env=env(XCHAT_VERIFY_LEDGER="")), 2,
             "XCHAT_VERIFY_LEDGER is set but empty")
    one_line(run_cli(["ledger", "show", "--ledger", " "], env=env()), 2, "--ledger is empty")
    one_line(run_cli(["ledger", "check"], env=env(XCHAT_VERIFY_LEDGER="")), 2, "XCHAT_VERIFY_LEDGER")


def test_a_dash_is_not_a_ledger(pages, tmp_path, monkeypatch):
    files, ring = pages
    monkeypatch.chdir(tmp_path)
    one_line(run_cli(["verify", *files, "--keys", ring, "--ledger", "-"], env=env()), 2, "not standard input")
    assert not (tmp_path / "-").exists()


# ------------------------------------------------------------------------------------- 4: URL secrets
@pytest.mark.parametrize("url", ["postgresql://bob:pw-s3cret@[::1", "postgresql://bob:pw-s3cret@host:99999/db",
                                 "postgresql://bob:pw-s3cret@[::1]x/db?password=pw-s3cret"])
def test_a_malformed_postgres_url_is_a_usage_error_without_its_password(url, pages):
    for args in (["ledger", "show", "--ledger", url], ["verify", *pages[0], "--keys", pages[1], "--ledger", url]):
        one_line(run_cli(args, env=env()), 2, "not a valid postgresql:// URL", absent=("pw-s3cret",))


def test_a_postgres_ledger_without_psycopg_is_a_usage_error_as_archive_verify_without_dask_is(pages, monkeypatch):
    """r109: a missing optional extra exited 3 for psycopg (as a ledger that cannot be used) and 2
    for Dask (documented: a usage error, docs/cli.md); both are now usage errors."""
    url = "postgresql://bob:pw-s3cret@127.0.0.1:1/ledger"
    for name in ("psycopg", "dask", "distributed"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError: the extra is not installed
    for args in (["ledger", "show", "--ledger", url], ["verify", *pages[0], "--keys", pages[1], "--ledger", url]):
        one_line(run_cli(args, env=env()), 2, "needs psycopg 3", "xchat-verify[postgres]", absent=("pw-s3cret",))
    one_line(run_cli(["archive", "verify", *pages[0], "--keys", pages[1]], env=env()), 2, "needs Dask")


@pytest.mark.slow
def test_secret_query_parameters_are_never_printed(pages):
    from pg import free_port
    url = (f"postgresql://nobody:user-s3cret@127.0.0.1:{free_port()}/none?password=query-s3cret"
           "&sslpassword=ssl-s3cret&sslmode=disable")
    line = one_line(run_cli(["ledger", "show", "--ledger", url], env=env()), 3,
                    absent=("user-s3cret", "query-s3cret", "ssl-s3cret"))
    assert "password=***" in line and "sslpassword=***" in line and "sslmode=disable" in line


def test_redact_and_scrub():
    from verifier.ledger.postgres import redact, scrub
    url = "postgresql://bob:p%40ss@h/db?password=a%26b&application_name=x&sslpassword=zz&api_token=tt"
    assert redact(url) == "postgresql://bob:***@h/db?password=***&application_name=x&sslpassword=***&api_token=***"
    assert scrub("failed for p@ss, a&b, zz and tt", url) == "failed for ***, ***, *** and ***"
    assert redact("postgresql://bob:pw@[::1") == "postgresql://(unparseable URL)"


# ------------------------------------------------------------------------------------- 5: keys
def _signed_checkpoint(tmp_path: Path, name: str, public_key: object) -> Path:
    from verifier.receipts import load_signing_key, new_receipt_key, sign_checkpoint
    key = tmp_path / "k.key"
    if not key.exists():
        new_receipt_key(key)
    cp = sign_checkpoint(Transcript.build("c", [("1", b"\x01" * 32)]).checkpoint("t"), load_signing_key(key))
    cp["public_key"] = public_key
    path = tmp_path / name
    path.write_text(json.dumps(cp))
    return path


@pytest.mark.slow
def test_a_checkpoint_public_key_is_a_value_never_a_path(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    good = _signed_checkpoint(tmp_path, "good.json", None)
    good_cp = json.loads(good.read_text())
    from verifier.receipts import load_signing_key, sign_checkpoint
    good.write_text(json.dumps(sign_checkpoint({k: v for k, v in good_cp.items() if k not in ("public_key",
                                                                                              "signature")},
                                               load_signing_key(tmp_path / "k.key"))))
    for value in ("/dev/zero", str(fifo), "/etc/hostname", str(tmp_path / "k.key.pub")):
        hostile = _signed_checkpoint(tmp_path, "hostile.json", value)
        # a subprocess with a timeout: reading the FIFO would hang, /dev/zero fill memory
        proc = subprocess_run("ledger", "compare", hostile, good, timeout=60)
        one_line(proc, 3, "embedded public key")


@pytest.mark.parametrize("what", ["/dev/zero", "fifo", "big", "directory"])
@pytest.mark.slow
def test_key_files_on_the_command_line_are_read_bounded(what, tmp_path, pages):
    path = {"/dev/zero": Path("/dev/zero"), "fifo": tmp_path / "fifo", "big": tmp_path / "big.pub",
            "directory": tmp_path}[what]
    if what == "fifo":
        os.mkfifo(path)
    if what == "big":
        path.write_bytes(b" " * (1024 * 1024))
    cp = tmp_path / "cp.json"
    cp.write_text(json.dumps(Transcript.build("c", [("1", b"\x01" * 32)]).checkpoint("t")))
    for args in (["ledger", "compare", cp, cp, "--public-key", path],
                 ["ledger", "checkpoint", "c", "--ledger", tmp_path / "none.db", "--key", path],
                 ["audit", CONV.conversation_id, "--base-url", "http://127.0.0.1:9", "--receipt-key", path]):
        one_line(subprocess_run(*args, timeout=60, extra_env={"X_BEARER_TOKEN": "t0ken"}), 3)


# ------------------------------------------------------------------------------------- 3 and 7: checkpoints
def _entries(n: int, changed: int | None = None):
    import hashlib
    return [(str(1000 + i), hashlib.sha256(f"{i}{'x' if i == changed else ''}".encode()).digest())
            for i in range(1, n + 1)]


def test_compare_says_which_side_is_missing_or_a_directory_and_what_a_conversation_does_not_match(tmp_path):
    """New-user review: a missing file or a directory was "compare two checkpoints or two ledgers,
    not one of each" (exit 2), and --conversation was silently ignored for two checkpoints."""
    cp = tmp_path / "cp.json"
    cp.write_text(json.dumps(Transcript.build("1:2", _entries(3)).checkpoint("t")))
    one_line(run_cli(["ledger", "compare", cp, tmp_path / "nope.json"], env=env()), 3, "nope.json does not exist")
    one_line(run_cli(["ledger", "compare", tmp_path, cp], env=env()), 3, "is a directory, not a checkpoint")
    one_line(run_cli(["ledger", "compare", cp, cp, "--conversation", "g7"], env=env()), 2,
             "these checkpoints are of conversation 1:2")
    assert run_cli(["ledger", "compare", cp, cp, "--conversation", "2:1"], env=env()).returncode == 0


@pytest.mark.parametrize("content,why", [(b"", "(it is empty)"), (b"%PDF-1.4\n%\xe2\xe3", "(not JSON, not an SQLite database)"),
                                         ("fifo", "(not a regular file)")])
def test_compare_says_which_file_is_neither_a_checkpoint_nor_a_ledger_and_why(content, why, tmp_path):
    """Review: a checkpoint and a PDF or an empty file was only "compare two checkpoints or two
    ledgers, not one of each" (exit 2), never what is wrong with the file."""
    cp, odd = tmp_path / "cp.json", tmp_path / "odd.pdf"
    cp.write_text(json.dumps(Transcript.build("1:2", _entries(3)).checkpoint("t")))
    if content == "fifo":
        os.mkfifo(odd)
    else:
        odd.write_bytes(content)
    for args in ([cp, odd], [odd, cp]):
        one_line(run_cli(["ledger", "compare", *args], env=env()), 3,
                 f"ledger compare: {odd} is neither a checkpoint nor a ledger {why}")


def test_compare_of_a_checkpoint_and_a_ledger_or_foreign_database_says_which(tmp_path, pages):
    cp, ledger, foreign = tmp_path / "cp.json", tmp_path / "l.db", tmp_path / "foreign.db"
    cp.write_text(json.dumps(Transcript.build("1:2", _entries(3)).checkpoint("t")))
    assert record(str(ledger), pages).returncode == 0
    one_line(run_cli(["ledger", "compare", cp, ledger], env=env()), 2, "not one of each")
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE t (x)")
    one_line(run_cli(["ledger", "compare", cp, foreign], env=env()), 3, "foreign.db is not an xchat-verify ledger")


@pytest.mark.parametrize("short", [599, 511])
def test_compare_of_checkpoints_that_differ_at_the_shorter_head_does_not_agree(short, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(Transcript.build("c", _entries(short, changed=short)).checkpoint("t")))
    b.write_text(json.dumps(Transcript.build("c", _entries(600)).checkpoint("t")))
    proc = run_cli(["ledger", "compare", a, b], env=env())
    one_line(proc, 3, "not compared in full", f"to {short}")
    out = json.loads(proc.stdout)
    assert out["agree"] is False and out["complete"] is False and out["findings"] == []
    compared = short - 1 if short % 2 else short - 2
    assert out["ranges"] == [{"conversation": "c", "kind": "positions", "from": 1, "to": compared,
                              "from_sequence_id": "1001", "to_sequence_id": str(1000 + compared),
                              "common": short}]
    # the same history both ways round still is not "agree" from checkpoints alone
    a.write_text(json.dumps(Transcript.build("c", _entries(short)).checkpoint("t")))
    assert run_cli(["ledger", "compare", b, a], env=env()).returncode == 3
    # equal sizes: the heads are compared, the divergence is found
    a.write_text(json.dumps(Transcript.build("c", _entries(600, changed=599)).checkpoint("t")))
    proc = run_cli(["ledger", "compare", a, b], env=env())
    assert proc.returncode == 1 and json.loads(proc.stdout)["findings"][0]["code"] == "split_view"


def test_public_key_with_two_ledgers_is_a_usage_error(tmp_path, pages):
    """Round 105: --public-key ("accept only signatures by this key") was ignored with two ledgers,
    which carry no signature, not even read (any text passed), and the views agreed, exit 0."""
    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    for ledger in (a, b):
        assert record(ledger, pages).returncode == 0
    from verifier.receipts import new_receipt_key
    key = tmp_path / "k.key"
    new_receipt_key(key)
    for value in (f"{key}.pub", "not a key"):
        one_line(run_cli(["ledger", "compare", a, b, "--public-key", value], env=env()), 2,
                 "--public-key is for checkpoints")
    assert run_cli(["ledger", "compare", a, b], env=env()).returncode == 0  # without it: as before


@pytest.mark.parametrize("changes,field", [
    ({"marks": []}, "$.marks"), ({"marks": [5, 6]}, "$.marks[0]"), ({"marks": [[[1], 2, 3]]}, "$.marks[0][0]"),
    ({"tail": None, "drop": "tail"}, "tail"), ({"signature": 5}, "$.signature"), ({"size": True}, "$.size"),
    ({"size": 10 ** 400}, "$.size"),
])
def test_malformed_checkpoint_files_are_one_line_exit_3(changes, field, tmp_path):
    cp = Transcript.build("c", _entries(3)).checkpoint("t")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(cp))
    drop = changes.pop("drop", None)
    cp.update(changes)
    if drop:
        del cp[drop]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(cp))
    one_line(run_cli(["ledger", "compare", bad, good], env=env()), 3, "bad.json", field)


# ------------------------------------------------------------------------------------- 7: receipts
@pytest.fixture()
def receipt(tmp_path):
    from verifier.receipts import load_signing_key, make_receipt, new_receipt_key
    key = tmp_path / "r.key"
    new_receipt_key(key)
    body = make_receipt(key=load_signing_key(key), tool_version="t", time="2026-01-01T00:00:00.000Z",
                        verdict="pass", report_digest="0" * 64, checkpoints=[], evidence_dir=None, ledger_audit=1)
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(body))
    return path, f"{key}.pub"


@pytest.mark.parametrize("changes,field", [({"signature": 5}, "$.signature"), ({"ledger_audit": "1"}, "$.ledger_audit"),
                                           ({"checkpoints": [5]}, "$.checkpoints[0]"), ({"public_key": None}, "$.public_key")])
def test_malformed_receipts_are_one_line_exit_3(changes, field, receipt):
    path, pub = receipt
    assert run_cli(["receipt", "verify", path, "--public-key", pub], env=env()).returncode == 0
    body = json.loads(path.read_text())
    body.update(changes)
    path.write_text(json.dumps(body))
    one_line(run_cli(["receipt", "verify", path, "--public-key", pub], env=env()), 3, field)


def test_verify_receipt_needs_the_signer_s_key():
    """Round 105: ``verify_receipt(receipt, None)`` checked the signature under the receipt's own
    embedded key, so a receipt anyone signed returned no problem."""
    from nacl.signing import SigningKey

    from verifier.errors import UsageError
    from verifier.receipts import make_receipt, verify_receipt
    forger = SigningKey.generate()
    forged = make_receipt(key=forger, tool_version="1", time="2026-01-01T00:00:00.000Z", verdict="pass",
                          report_digest="0" * 64, checkpoints=[], evidence_dir=None, ledger_audit=None)
    for key in (None, forged["public_key"]):  # nothing, or the receipt's own key as text
        with pytest.raises(UsageError, match="needs the signer's public key"):
            verify_receipt(forged, key)
    assert verify_receipt(forged, forger.verify_key) == []  # with the key given, as before


def test_key_files_nested_too_deep_are_one_line_exit_3(receipt, tmp_path, pages):
    """Round 105: a key file of JSON nested too deep for the decoder (an object whose unknown field
    is deep, well under the 64 KiB cap) ended as "internal error: RecursionError" wherever a public
    or a private receipt key file is read."""
    path, _pub = receipt
    deep = '{"type": "t", "public_key": "x", "private_key": "x", "z": ' + "[" * 5000 + "]" * 5000 + "}"
    key = tmp_path / "deep.key"
    key.write_text(deep)
    ledger = str(tmp_path / "l.db")
    assert record(ledger, pages).returncode == 0
    cp = tmp_path / "cp.json"
    cp.write_text(json.dumps(Transcript.build("c", _entries(3)).checkpoint("t")))
    for args in (["receipt", "verify", path, "--public-key", key], ["ledger", "compare", cp, cp, "--public-key", key]):
        one_line(run_cli(args, env=env()), 3, "deep.key", "not a base64 Ed25519 key")
    conv = json.loads(run_cli(["ledger", "show", "--ledger", ledger], env=env()).stdout)["conversations"][0]
    one_line(run_cli(["ledger", "checkpoint", conv["conversation"], "--ledger", ledger, "--key", key], env=env()), 3,
             "deep.key is not a usable receipt key", "nested too deeply")


@pytest.mark.parametrize("what", ["/dev/zero", "fifo", "directory"])
def test_receipt_verify_reads_regular_files_only(what, receipt, tmp_path):
    _path, pub = receipt
    target = {"/dev/zero": "/dev/zero", "fifo": str(tmp_path / "fifo"), "directory": str(tmp_path)}[what]
    if what == "fifo":
        os.mkfifo(target)
    one_line(subprocess_run("receipt", "verify", target, "--public-key", pub, timeout=60), 3)


# ------------------------------------------------------------------------------------- 6: metrics
def _values(path: Path) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in path.read_text().splitlines()
            if line and not line.startswith("#")}


@pytest.mark.parametrize("previous,why", [
    ("xchat_verify_audits_total 1e400\n", "line 1"),
    ("xchat_verify_audits_total -5\n", "line 1"),
    ("xchat_verify_events_total 1.5\n", "line 1"),
    ("# HELP xchat_verify_audits_total audits\nhello world\n", "line 2"),
])
def test_bad_previous_metrics_are_ignored_with_a_warning(previous, why, tmp_path, pages):
    files, ring = pages
    metrics = tmp_path / "m.prom"
    metrics.write_text(previous)
    proc = run_cli(["verify", *files, "--keys", ring, "--metrics", metrics], env=env())
    assert proc.returncode == 0, proc.stderr
    assert "previous values in --metrics" in proc.stderr and why in proc.stderr and "ignored" in proc.stderr
    assert _values(metrics)["xchat_verify_audits_total"] == 1  # counters start again


@pytest.mark.parametrize("content,why", [
    (b"hello world\n", "it holds no xchat-verify metric"),
    (b'{"schema": "xchat-verify/report/v1", "verdict": "pass"}', "it holds no xchat-verify metric"),
    (b"x" * (2 * 1024 * 1024), "it is larger than any metrics textfile (over 1048576 bytes)"),
    (b"%PDF-1.7\n\xff\xfe", "it is not UTF-8 text"),
])
def test_metrics_never_replace_a_file_that_is_not_a_metrics_textfile(content, why, tmp_path, pages):
    """Review 38: a mistyped ``--metrics report.json`` overwrote the report after a warning."""
    files, ring = pages
    other = tmp_path / "report.json"
    other.write_bytes(content)
    proc = run_cli(["verify", *files, "--keys", ring, "--ledger", tmp_path / "l.db", "--metrics", other], env=env())
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == f"xchat-verify: error: --metrics {other} exists and is not an xchat-verify metrics " \
                                  f"textfile ({why}" + proc.stderr.strip().split(why, 1)[1]
    assert "not replaced" in proc.stderr and other.read_bytes() == content and not (tmp_path / "l.db").exists()


@pytest.mark.parametrize("content,why", [
    (b"hello world\n", "it holds no xchat-verify metric"),
    (b"x" * (2 * 1024 * 1024), "it is larger than any metrics textfile"),
    (b"%PDF-1.7\n\xff\xfe", "it is not UTF-8 text"),
    # review 62: a textfile shared with another exporter lost its lines
    (b"# HELP node_load1 load\n# TYPE node_load1 gauge\nnode_load1 0.5\nxchat_verify_audits_total 3\n",
     "it holds other metrics too \\(node_load1\\)"),
])
@pytest.mark.parametrize("previous", [None, {}])
def test_library_write_metrics_never_replaces_a_file_that_is_not_a_metrics_textfile(content, why, previous, tmp_path):
    """Review 51: ``verifier.metrics.write_metrics`` replaced it, where the CLI refuses (exit 2)."""
    from verifier import UsageError, verify_pages
    from verifier.metrics import write_metrics

    other = tmp_path / "report.json"
    other.write_bytes(content)
    report = verify_pages([], allow_empty=True)
    with pytest.raises(UsageError, match=f"exists and is not an xchat-verify metrics textfile \\({why}.*not replaced"):
        write_metrics(str(other), report, {}, "2026-12-03T09:00:00Z", previous=previous)
    assert other.read_bytes() == content
    write_metrics(str(tmp_path / "m.prom"), report, {}, "2026-12-03T09:00:00Z", previous=previous)
    write_metrics(str(tmp_path / "m.prom"), report, {}, "2026-12-03T09:00:01Z", previous=previous)  # its own file


def test_metrics_to_a_device_never_reads_it(tmp_path, pages):
    files, ring = pages
    ledger = tmp_path / "l.db"
    # /dev/full: nothing is read from it; writing fails after the ledger committed, and says so
    proc = subprocess_run("verify", *files, "--keys", ring, "--ledger", ledger, "--metrics", "/dev/full", timeout=60)
    assert proc.returncode == 3
    last = proc.stderr.strip().splitlines()[-1]
    assert "recorded in ledger" in last and "as audit 1" in last and "--metrics /dev/full" in last
    assert json.loads(run_cli(["ledger", "show", "--ledger", ledger], env=env()).stdout)["audits"] == 1
    # /dev/null: written through; no previous values, a warning says so
    proc = run_cli(["verify", *files, "--keys", ring, "--metrics", "/dev/null"], env=env())
    assert proc.returncode == 0 and "not a regular file" in proc.stderr


def test_metrics_in_a_missing_directory_is_refused_before_anything(tmp_path, pages):
    files, ring = pages
    target = tmp_path / "nope" / "m.prom"
    one_line(run_cli(["verify", *files, "--keys", ring, "--ledger", tmp_path / "l.db", "--metrics", target],
                     env=env()), 3, "does not exist")
    assert not target.parent.exists() and not (tmp_path / "l.db").exists()


# ------------------------------------------------------------------------------------- 7: damaged rows
def _damage(target: str, statement: str) -> None:
    if target.startswith("postgresql://"):
        import psycopg
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(statement)
    else:
        conn = sqlite3.connect(target)
        conn.execute(statement)
        conn.commit()
        conn.close()


@pytest.mark.parametrize("statement,table", [
    ("UPDATE events SET state = 7", "table events"),
    ("UPDATE audits SET inputs = 'not json'", "table audits"),
    ("UPDATE audits SET findings = '{\"a\": \"b\"}'", "table audits"),
    ("UPDATE audits SET time = 'yesterday'", "table audits"),
    ("UPDATE events SET digest = 'abc'", "table events"),
    ("UPDATE keys SET source = 'gossip' WHERE source = 'events'", "table keys"),
    ("UPDATE chains SET complete = 5", "table chains"),
])
def test_damaged_rows_are_ledger_errors_and_check_reports_them(statement, table, ledger_target, pages):
    assert record(ledger_target, pages).returncode == 0
    if "digest = 'abc'" in statement and ledger_target.startswith("postgresql://"):
        statement = "UPDATE events SET digest = 'abc'::bytea"
    _damage(ledger_target, statement)
    files, ring = pages
    readers = {"table events": ("show", "export", "verify"), "table audits": ("show", "export", "history", "verify"),
               "table keys": ("show", "export", "verify"), "table chains": ("history", "export")}[table]
    for args in (["ledger", "show"], ["ledger", "export"], ["ledger", "history", CONV.conversation_id],
                 ["verify", *files, "--keys", ring, "--format", "json"]):
        if args[0] in readers or args[1] in readers:  # the commands that read the damaged table
            one_line(run_cli([*args, "--ledger", ledger_target], env=env()), 3, "is damaged", table)
    proc = run_cli(["ledger", "check", "--ledger", ledger_target], env=env())
    out = json.loads(proc.stdout)
    assert proc.returncode == 3 and out["consistent"] is False and any(table in p for p in out["problems"])
    if table in ("table events", "table chains"):  # named as every other command names it (new-user review)
        assert any(f"conversation '{CONV.conversation_id}'" in p for p in out["problems"]), out["problems"]


def test_a_chain_row_naming_no_audit_is_damaged_for_history_and_compare(ledger_target, tmp_path, pages):
    """Round 90: a chains row naming an audit the ledger does not hold (a hand edit) made ``ledger
    history`` die on a KeyError (an internal error), and ``ledger compare`` left it out of its head
    rule without a word; ``ledger check`` already named it."""
    assert record(ledger_target, pages).returncode == 0
    other = str(tmp_path / "other.db")
    assert record(other, pages).returncode == 0
    _damage(ledger_target, "UPDATE chains SET audit = 7")
    one_line(run_cli(["ledger", "history", CONV.conversation_id, "--ledger", ledger_target], env=env()), 3,
             "is damaged", "table chains", "audit 7")
    one_line(run_cli(["ledger", "compare", ledger_target, other], env=env()), 3, "is damaged", "table chains")
    one_line(run_cli(["ledger", "compare", other, ledger_target], env=env()), 3, "is damaged", "table chains")
    proc = run_cli(["ledger", "check", "--ledger", ledger_target], env=env())
    assert proc.returncode == 3 and json.loads(proc.stdout)["consistent"] is False


def test_an_audit_id_at_the_top_of_the_integer_range_is_damage_not_a_crash(ledger_target, pages):
    """Round 90: ``ledger check`` listed range(1, newest id + 1) to see that audit ids are consecutive
    (memory in proportion to one hand-edited id: "out of memory" at 2^63 - 1, nothing listed), and the
    next recorded run died with an internal error (OverflowError) taking the id after it."""
    top = 2**63 - 1
    assert record(ledger_target, pages).returncode == 0
    for statement in (f"UPDATE audits SET id = {top}", f"UPDATE chains SET audit = {top}",
                      f"UPDATE events SET first_audit = {top}, last_audit = {top}",
                      f"UPDATE keys SET first_audit = {top}, last_audit = {top}"):
        _damage(ledger_target, statement)
    proc = run_cli(["ledger", "check", "--ledger", ledger_target], env=env())
    out = json.loads(proc.stdout)
    assert proc.returncode == 3 and out["problems"] == ["audit ids are not consecutive"], (proc.stderr, out)
    one_line(record(ledger_target, pages), 3, "is damaged", "table audits", "no next one")


def test_a_bare_ledger_meta_table_is_not_a_ledger(tmp_path):
    path = tmp_path / "meta.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE ledger_meta (a)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    one_line(run_cli(["ledger", "show", "--ledger", path], env=env()), 3, "not an xchat-verify ledger")
    assert path.read_bytes() == before


@pytest.mark.slow
def test_a_bare_ledger_meta_table_in_postgres_is_not_a_ledger(postgres_server):
    url = postgres_server.new_database()
    _damage(url, "CREATE TABLE ledger_meta (a INT)")
    one_line(run_cli(["ledger", "show", "--ledger", url], env=env()), 3, "not an xchat-verify ledger")


def test_a_large_sqlite_ledger_is_compared_as_a_ledger_not_read_as_a_checkpoint(tmp_path):
    """Checkpoint files are read bounded (1 MiB); a ledger file of any size is still a ledger."""
    import hashlib

    from verifier.ledger import open_ledger
    from verifier.ledger.store import AuditRow, EventRow
    path = tmp_path / "big.db"
    store = open_ledger(str(path))
    with store.transaction():
        store.insert_audit(AuditRow(1, "2026-01-01T00:00:00.000Z", "t", "verify", [], "pass", "0" * 64, 20_000, {}))
        store.insert_events([EventRow("c", str(10 ** 18 + i), hashlib.sha256(str(i).encode()).digest(), None, f"m{i}",
                                      "1", "MessageCreateEvent", "7", "valid", 0, 1, 1) for i in range(20_000)])
    store.close()
    run_cli(["ledger", "check", "--ledger", path], env=env())  # checkpoint the WAL into the file
    assert path.stat().st_size > 1024 * 1024
    import shutil
    copy = tmp_path / "copy.db"
    shutil.copyfile(path, copy)  # (one ledger given twice is a usage error)
    proc = run_cli(["ledger", "compare", path, copy], env=env())
    assert proc.returncode == 0 and json.loads(proc.stdout)["agree"] is True, proc.stderr


def test_a_receipt_that_cannot_be_written_after_the_commit_says_what_was_recorded(tmp_path):
    from verifier.receipts import new_receipt_key
    from verifier.testing.server import FakeXApi, default_conversations
    key = tmp_path / "r.key"
    new_receipt_key(key)
    convs = default_conversations(6, seed="after-commit")
    ledger = tmp_path / "l.db"
    with FakeXApi(convs) as api:
        proc = run_cli(["audit", *[c.conversation_id for c in convs], "--base-url", api.url, "--quiet",
                        # a file name in a directory that takes none (a directory is now refused before the run)
                        "--ledger", ledger, "--receipt-key", key, "--receipt", "/proc/self/receipt.json"],
                       env=env(X_BEARER_TOKEN=api.state.token))
    line = one_line(proc, 3, "recorded in ledger", "as audit 1", "cannot write")
    assert str(ledger) in line
    assert json.loads(run_cli(["ledger", "show", "--ledger", ledger], env=env()).stdout)["audits"] == 1


@pytest.mark.parametrize("hostile", ["²", "9" * 5000, "٣"])
@pytest.mark.parametrize("where", ["sequence_id", "key_version"])
def test_ids_int_would_read_or_refuse_are_not_numbers_to_the_ledger(hostile, where, tmp_path):
    """Review: a sequence id or key version of ``"²"`` (``isdigit``, but ``int`` reads it) or of 5,000
    digits (past ``int``'s limit) ended a ``--ledger`` run in an internal error with no report; the
    same input verifies without the ledger. The server chooses both."""
    from verifier.testing.forge import Identity, forge_event, item_json
    signer = Identity.from_seed("1111", hostile if where == "key_version" else "1", "a")
    event = forge_event(signer, "MessageDeleteEvent", {"sequence_ids": ["5"], "delete_message_action": 2},
                        conversation_id="1111:2222", sequence_id=hostile if where == "sequence_id" else "10")
    page, keys = tmp_path / "page.json", tmp_path / "keys.json"
    page.write_text(json.dumps({"data": [item_json(event)]}))
    keys.write_text(json.dumps({"keys": [signer.keyring_entry()]}))
    alone = run_cli(["verify", page, "--keys", keys, "--format", "json"])
    for attempt in (1, 2):  # a first audit records the ids, a second one judges against them
        proc = run_cli(["verify", page, "--keys", keys, "--format", "json", "--ledger", tmp_path / "l.db"],
                       env=env())
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode in (0, 1), (attempt, proc.returncode, proc.stderr)
        report = json.loads(proc.stdout)
        assert report["conversations"][0]["events"] == json.loads(alone.stdout)["conversations"][0]["events"]


def _verify_json(page_file: Path, ring: Path, ledger: str) -> tuple[int, dict]:
    import contextlib
    import io

    from verifier.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["verify", str(page_file), "--keys", str(ring), "--ledger", ledger, "--format", "json"])
    return code, json.loads(out.getvalue())


def test_ids_holding_nul_are_recorded_on_every_backend(ledger_target, tmp_path):
    """Review: PostgreSQL text cannot hold NUL, and sequence ids are not even signed: one NUL in an
    id ended every ``--ledger postgresql://`` run of that conversation with exit 3 and no report.
    Both backends record it, read it back exactly, and a second identical run finds nothing."""
    from helpers import ALICE, BOB, page
    from helpers import CONV as ONE_TO_ONE

    from verifier.testing.forge import forge_event
    body = {"contents": b"\x01" * 40 + b"hi", "conversation_key_version": "1001"}
    first = forge_event(ALICE, "MessageCreateEvent", body, conversation_id=ONE_TO_ONE, sequence_id="10\x000",
                        message_id="m\x00id\x1b", created_at_msec="1784841000000")
    ring = tmp_path / "ring.json"
    ring.write_text(json.dumps({"keys": [ALICE.keyring_entry(), BOB.keyring_entry()]}))
    page_file = tmp_path / "p.json"
    page_file.write_text(json.dumps(page(first)))
    code, report = _verify_json(page_file, ring, ledger_target)
    assert report["conversations"][0]["events"][0]["sequence_id"] == "10\x000"
    again_code, again = _verify_json(page_file, ring, ledger_target)
    assert again_code == code and [f["code"] for c in again["conversations"] for f in c["findings"]] == \
        [f["code"] for c in report["conversations"] for f in c["findings"]]
    export = run_cli(["ledger", "export", "--ledger", ledger_target])
    assert export.returncode == 0, export.stderr
    events = json.loads(export.stdout)["conversations"][0]["events"]
    assert [(e["sequence_id"], e["message_id"]) for e in events] == [("10\x000", "m\x00id\x1b")]


def test_both_backends_name_the_same_earlier_row_of_a_tie(ledger_target, tmp_path):
    """Review: the ledger read a conversation's events in storage order, so of two rows last seen in
    the same audit (a conflict at one sequence id), PostgreSQL named the one an UPDATE had moved last
    and SQLite the other. Rows now come back in (sequence id, digest) order everywhere: the vanished
    event named is the one with the smaller digest, on both backends, with statistics gathered."""
    import hashlib

    from helpers import ALICE, BOB, ev, page

    def body(text: str) -> dict:
        return {"contents": b"\x01" * 40 + text.encode(), "conversation_key_version": "1001"}

    one, three = ev(body=body("one"), seq=1), ev(body=body("three"), seq=3, prev=2)
    bob = ev(body=body("bob two"), seq=2, prev=1, sender=BOB)
    digest = lambda forged: hashlib.sha256(forged.raw).digest()  # noqa: E731
    # Alice's row first in key order, and last in PostgreSQL's storage once run 2 updates it
    alice = next(a for i in range(200) if digest(a := ev(body=body(f"alice two {i}"), seq=2, prev=1,
                                                          sender=ALICE)) < digest(bob))
    smaller = alice
    ring = tmp_path / "ring.json"
    ring.write_text(json.dumps({"keys": [ALICE.keyring_entry(), BOB.keyring_entry()]}))
    for number, history in enumerate([page(three, alice, one), page(three, alice, bob, one), page(three, one)]):
        if ledger_target.startswith("postgresql://"):
            import psycopg
            with psycopg.connect(ledger_target, autocommit=True) as conn:
                conn.execute("ANALYZE")  # what autovacuum does on a ledger in use: the planner then scans
        page_file = tmp_path / f"run{number}.json"
        page_file.write_text(json.dumps(history))
        _code, report = _verify_json(page_file, ring, ledger_target)
    vanished = [f["message"] for c in report["conversations"] for e in c["events"] for f in e["findings"]
                if f["code"] == "event_vanished"] + \
        [f["message"] for c in report["conversations"] for f in c["findings"] if f["code"] == "event_vanished"]
    assert vanished and all(f"from {smaller.event.sender_id})" in m for m in vanished), vanished


def test_what_the_ledger_records_beside_the_report_is_scrubbed(tmp_path):
    """Review: the server put the access token into an event's signature version and an embedded
    key version; the report was scrubbed, but the ledger kept both verbatim (``ledger export``,
    ``ledger keys``). The run's scrubber now applies to what the ledger records from its facts."""
    from helpers import ALICE, BOB, ev, page

    from verifier import Keyring, Verification
    from verifier.fetch import REDACTED
    from verifier.ledger import open_ledger, record_audit
    from verifier.sanitize import redact_secret

    token = "Zq9xLk3mPp0aBcDeFgHiJk"
    forged = ev(seq=1, signature_version="7" + token, embed_keys=[ALICE])
    forged.event.signature.message_signing_key_info_list[0].public_key_version = "9" + token
    from helpers import reencode
    forged = reencode(forged)
    ring = Keyring.from_json(json.dumps({"keys": [ALICE.keyring_entry(), BOB.keyring_entry()]}))
    verification = Verification(allow_embedded_keys=True)
    verification.add_page(page(forged))
    report = verification.finish(ring)
    verification.scrub = lambda text: redact_secret(text, token, REDACTED)
    store = open_ledger(str(tmp_path / "l.db"))
    try:
        record_audit(store, report, verification.event_facts(), verification.keyring, command="audit",
                     inputs=["x"], scrub=verification.scrub)
    finally:
        store.close()
    for args in (["ledger", "export"], ["ledger", "keys", ALICE.user_id]):
        proc = run_cli([*args, "--ledger", tmp_path / "l.db"], env=env())
        assert proc.returncode == 0 and token[:8] not in proc.stdout, proc.stdout[:500]
    assert REDACTED in run_cli(["ledger", "export", "--ledger", tmp_path / "l.db"], env=env()).stdout


# ------------------------------------------------------------------------------------- file names not UTF-8
def test_a_file_name_that_is_not_utf8_is_recorded_escaped_the_same_in_every_run(tmp_path):
    """Review: --ledger with such a page file ended as an internal error (UnicodeEncodeError) after
    creating an empty ledger; and a ledger so named was written raw (a 0xff byte) into the JSON of
    ledger show. The name is recorded as the reports show it, the same each run."""
    files, ring = write_history(tmp_path, CONV, 5)
    odd = tmp_path / "page-1\udcff.json"
    os.rename(files[0], odd)
    files[0] = str(odd)
    ledger = tmp_path / "ledger\udcff.db"
    shown = f"{tmp_path}/page-1\\udcff.json"
    for _ in range(2):
        proc = record(str(ledger), (files, ring), "--format", "json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["inputs"][0]["source"] == shown
    for args in (["ledger", "show"], ["ledger", "export"], ["ledger", "check"]):
        proc = run_cli([*args, "--ledger", ledger], env=env())
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout.encode("utf-8"))["ledger"] == f"{tmp_path}/ledger\\udcff.db"  # strict UTF-8
    audits = json.loads(run_cli(["ledger", "export", "--ledger", ledger], env=env()).stdout)["audits"]
    assert [a["inputs"][0] for a in audits] == [shown, shown]


def test_receipts_name_evidence_sources_relative_to_a_directory_that_is_not_utf8(tmp_path):
    """The evidence report digest makes its sources relative to the directory: the same for a
    directory whose name is not UTF-8 (the sources are escaped) as for any other."""
    from verifier.receipts import evidence_report_digest, load_signing_key, make_receipt, new_receipt_key
    from verifier.testing.archive import write_evidence
    plain = write_evidence(tmp_path / "ev", [CONV], page_size=5)
    odd = tmp_path / "ev\udcff"
    shutil.copytree(plain, odd)
    assert evidence_report_digest(odd) == evidence_report_digest(plain)
    key = tmp_path / "r.key"
    new_receipt_key(key)
    receipt = tmp_path / "receipt\udcff.json"
    receipt.write_text(json.dumps(make_receipt(
        key=load_signing_key(key), tool_version="t", time="2026-01-01T00:00:00.000Z", verdict="pass",
        report_digest="0" * 64, checkpoints=[], evidence_dir=str(odd), ledger_audit=1)))
    proc = run_cli(["receipt", "verify", receipt, "--public-key", f"{key}.pub", "--evidence", plain], env=env())
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the receipt of the odd name holds for the copy
    assert json.loads(proc.stdout.encode("utf-8"))["receipt"] == f"{tmp_path}/receipt\\udcff.json"


def test_receipts_hold_however_the_evidence_directory_is_written(tmp_path, monkeypatch):
    """Round 105: the sources were made relative by stripping the directory as written, which the
    engine's sources (``Path(DIR) / name``) never start with for ``./ev`` or ``ev/.``: ``audit --save
    ./ev`` signed a receipt that failed under ``--evidence ev`` and once moved, and an honest receipt
    failed under ``--evidence ./ev``."""
    from verifier.receipts import load_signing_key, make_receipt, new_receipt_key
    from verifier.testing.archive import write_evidence
    monkeypatch.chdir(tmp_path)
    write_evidence(tmp_path / "ev", [CONV], page_size=5)
    key = tmp_path / "r.key"
    new_receipt_key(key)
    for signed in ("ev", "./ev", "ev/."):
        receipt = tmp_path / "receipt.json"
        receipt.write_text(json.dumps(make_receipt(
            key=load_signing_key(key), tool_version="t", time="2026-01-01T00:00:00.000Z", verdict="pass",
            report_digest="0" * 64, checkpoints=[], evidence_dir=signed, ledger_audit=1)))
        for checked in ("ev", "./ev", "ev/.", "ev/", f"{tmp_path}/ev"):
            proc = run_cli(["receipt", "verify", receipt, "--public-key", f"{key}.pub", "--evidence", checked],
                           env=env())
            assert proc.returncode == 0, (signed, checked, proc.stdout)
    shutil.move(tmp_path / "ev", tmp_path / "moved")
    proc = run_cli(["receipt", "verify", receipt, "--public-key", f"{key}.pub", "--evidence", "moved"], env=env())
    assert proc.returncode == 0, proc.stdout
    # what it proves is unchanged: one altered page and the receipt no longer holds, in any form
    page = next((tmp_path / "moved").rglob("page-*.json"))
    page.write_bytes(page.read_bytes().replace(b'"meta"', b'"meta" ', 1))
    for checked in ("moved", "./moved"):
        proc = run_cli(["receipt", "verify", receipt, "--public-key", f"{key}.pub", "--evidence", checked], env=env())
        assert proc.returncode == 1 and "no longer reproduces" in proc.stdout, proc.stdout


@pytest.mark.parametrize("content, why", [
    ("[" * 5000 + "]" * 5000, "is JSON nested too deeply to read: not an xchat-verify checkpoint"),
    ('{"schema": "xchat-verify/checkpoint/v1", "x": ' + "[" * 5000 + "]" * 5000 + "}",
     "is JSON nested too deeply to read: not an xchat-verify checkpoint"),
])
def test_compare_of_json_nested_too_deep_is_one_line(content, why, tmp_path):
    """Review 42: it ended as an internal error (RecursionError)."""
    cp, deep = tmp_path / "cp.json", tmp_path / "deep.json"
    cp.write_text(json.dumps(Transcript.build("1:2", _entries(3)).checkpoint("t")))
    deep.write_text(content)
    for args in ([cp, deep], [deep, deep]):
        one_line(run_cli(["ledger", "compare", *args], env=env()), 3, f"{deep} {why}")


def test_ledger_json_escapes_what_a_terminal_would_act_on(tmp_path, monkeypatch):
    """Review 82: `ledger show`, `history` and `export` printed a server's sequence id with its raw
    U+202E, zero-width space and C1 CSI (json.dumps with ensure_ascii=False); the reports write them
    as \\uXXXX escapes, and so do these now, the values unchanged."""
    import verifier.testing.forge as forge
    evil = "\u202e\u200b\x9b31m"
    monkeypatch.setattr(forge, "snowflake", lambda ms, low=0: f"20804000{low}" + (evil if low == 4 else ""))
    conv = forge.build_conversation(5)
    (tmp_path / "page.json").write_text(json.dumps(conv.pages()[0]))
    (tmp_path / "keys.json").write_text(json.dumps(conv.keyring()))
    ledger = str(tmp_path / "l.db")
    assert run_cli(["verify", str(tmp_path / "page.json"), "--keys", str(tmp_path / "keys.json"), "--ledger", ledger],
                   env=env()).returncode == 0
    for args in (["show"], ["history", conv.conversation_id], ["export"]):
        proc = run_cli(["ledger", *args, "--ledger", ledger], env=env())
        assert proc.returncode == 0 and "\\u202e\\u200b\\u009b31m" in proc.stdout, args
        assert not any(char in proc.stdout for char in "\u202e\u200b\x9b"), args
        assert "208040004" + evil in json.dumps(json.loads(proc.stdout), ensure_ascii=False)


# ------------------------------------------------------------------------------------- round 101
_UNIQUE_DROPPED = {  # table -> (SQLite rebuild without the constraint, PostgreSQL constraint name, row copied)
    "audits": ("audits_pkey", "INSERT INTO audits SELECT * FROM audits"),
    "chains": ("chains_pkey", "INSERT INTO chains SELECT * FROM chains"),
    "conversations": ("conversations_name_key",
                      "INSERT INTO conversations (id, name) SELECT id + 7, name FROM conversations"),
}


@pytest.mark.parametrize("table", sorted(_UNIQUE_DROPPED))
def test_check_finds_a_run_or_row_recorded_twice(table, ledger_target, pages):
    """A key the schema declares unique held twice (the constraint dropped by hand, then an audit's row
    copied): `ledger check` said consistent, exit 0, of a ledger holding audit 1 twice."""
    record(ledger_target, pages)
    constraint, copy = _UNIQUE_DROPPED[table]
    if ledger_target.startswith("postgresql://"):
        import psycopg
        with psycopg.connect(ledger_target, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}")
            conn.execute(copy)
    else:
        conn = sqlite3.connect(ledger_target, isolation_level=None)
        columns = ", ".join(r[1] for r in conn.execute(f"PRAGMA table_info({table})"))
        conn.execute(f"CREATE TABLE copy AS SELECT {columns} FROM {table}")
        conn.execute(f"DROP TABLE {table}")
        conn.execute(f"ALTER TABLE copy RENAME TO {table}")
        conn.execute(copy)
        conn.close()
    proc = subprocess_run("ledger", "check", "--ledger", ledger_target)
    assert proc.returncode == 3, proc.stdout
    out = json.loads(proc.stdout)
    assert out["consistent"] is False and any(p.startswith(f"table {table}: 2 rows share") for p in out["problems"])


def test_an_item_without_an_encoded_event_leaves_a_ledger_the_next_run_reads(tmp_path, ledger_target):
    """r122: such an item is recorded with an empty digest (it has no bytes to hash); ledger check then
    called the ledger inconsistent and the next 'verify --ledger' refused it as damaged (exit 3), so one
    item a server served bare broke every later audit."""
    pages = []
    for number, source in enumerate(sorted((REPO / "examples/conversation").glob("*.json"))):
        body = json.loads(source.read_text())
        if number == 1:
            del body["data"][0]["encoded_event"]
        page = tmp_path / source.name
        page.write_text(json.dumps(body))
        pages.append(str(page))
    ledger = ledger_target
    argv = ["verify", *pages, "--keys", str(REPO / "examples/keyring.json"), "--ledger", ledger, "--format", "json"]
    first = run_cli(argv)
    assert first.returncode == 1 and "Traceback" not in first.stderr  # (the bare item is an error finding)
    exported = run_cli(["ledger", "export", "--ledger", ledger])
    assert exported.returncode == 0 and '"digest": ""' in exported.stdout.replace('"digest":""', '"digest": ""')
    check = run_cli(["ledger", "check", "--ledger", ledger])
    assert check.returncode == 0 and json.loads(check.stdout)["consistent"] is True, check.stdout
    again = run_cli(argv)
    assert again.returncode == 1 and "damaged" not in again.stderr, again.stderr
    assert json.loads(again.stdout)["verdict"] == json.loads(first.stdout)["verdict"]


def _sql(ledger: str, statement: str) -> None:
    """One statement run on the ledger as a hand edit would (either backend)."""
    if ledger.startswith("postgresql://"):
        import psycopg
        with psycopg.connect(ledger, autocommit=True) as conn:
            conn.execute(statement)
    else:
        conn = sqlite3.connect(ledger, isolation_level=None)
        conn.execute(statement)
        conn.close()


def test_an_emptied_digest_of_a_decoded_event_is_a_damaged_row(ledger_target, pages):
    """r125: since r122 an empty digest is sound (an item without an encoded event), so a hand edit
    that emptied the digest of a signed event (kind, message id, signature version, status valid)
    read as consistent, exit 0, which it had not before. Empty is sound only beside what such an
    item records: nothing decoded, status malformed."""
    assert record(ledger_target, pages).returncode == 0
    _sql(ledger_target, "UPDATE events SET digest = '\\x'::bytea WHERE seq = (SELECT MIN(seq) FROM events)"
         if ledger_target.startswith("postgresql://") else
         "UPDATE events SET digest = X'' WHERE seq = (SELECT MIN(seq) FROM events)")
    proc = subprocess_run("ledger", "check", "--ledger", ledger_target)
    assert proc.returncode == 3, proc.stdout
    out = json.loads(proc.stdout)
    assert out["consistent"] is False and any("table events" in p and "the digest is empty" in p
                                              for p in out["problems"]), out["problems"]
    one_line(record(ledger_target, pages), 3, "is damaged", "table events", "the digest is empty")


@pytest.mark.parametrize("table", ["events", "chains"])
def test_check_finds_rows_naming_a_conversation_that_does_not_exist(table, ledger_target, pages):
    """r125: rows moved to a conversation id the table conversations lacks (a hand edit) are read by
    no command, so the next run took a rewritten history for a new one; `ledger check` said
    consistent, exit 0."""
    assert record(ledger_target, pages).returncode == 0
    _sql(ledger_target, f"UPDATE {table} SET conv = conv + 1000")
    proc = subprocess_run("ledger", "check", "--ledger", ledger_target)
    assert proc.returncode == 3, proc.stdout
    problems = json.loads(proc.stdout)["problems"]
    assert any(f"{table[:-1]} rows name a conversation the table conversations does not hold" in p
               for p in problems), problems


def _null_conversations(ledger: str, table: str) -> None:
    """Every row of ``table`` moved to a NULL conversation, its NOT NULL dropped first (in SQLite by
    rebuilding the table, as a hand edit or a foreign writer would)."""
    if ledger.startswith("postgresql://"):
        _sql(ledger, f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
        _sql(ledger, f"ALTER TABLE {table} ALTER COLUMN conv DROP NOT NULL")
        _sql(ledger, f"UPDATE {table} SET conv = NULL")
        return
    conn = sqlite3.connect(ledger, isolation_level=None)
    made = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    conn.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
    conn.execute(made.replace("conv INTEGER NOT NULL", "conv INTEGER").replace(" WITHOUT ROWID", ""))
    conn.execute(f"INSERT INTO {table} SELECT * FROM old_{table}")
    conn.execute(f"DROP TABLE old_{table}")
    conn.execute(f"UPDATE {table} SET conv = NULL")
    conn.close()


@pytest.mark.parametrize("table", ["events", "chains"])
def test_check_finds_rows_naming_no_conversation_at_all(table, ledger_target, pages):
    """r130: rows whose conv is NULL (NOT NULL dropped) name no conversation either, but `conv NOT IN
    (...)` is NULL for them, so `ledger check` said consistent, exit 0."""
    assert record(ledger_target, pages).returncode == 0
    _null_conversations(ledger_target, table)
    proc = subprocess_run("ledger", "check", "--ledger", ledger_target)
    assert proc.returncode == 3, proc.stdout
    problems = json.loads(proc.stdout)["problems"]
    assert any(f"{table[:-1]} rows name a conversation the table conversations does not hold" in p
               for p in problems), problems
