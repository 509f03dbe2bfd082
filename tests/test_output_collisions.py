"""An output never replaces the ledger the run creates, and two outputs never share a file (r117)."""
import json
from pathlib import Path

import pytest

from verifier import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [str(p) for p in sorted((ROOT / "examples/conversation").glob("*.json"))]
RING = str(ROOT / "examples/keyring.json")


def test_output_onto_the_ledger_it_creates_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["verify", *PAGES, "--keys", RING, "--ledger", "new.db", "-o", "new.db"]) == 2
    err = capsys.readouterr().err
    assert "--ledger" in err and err.count("\n") == 1
    assert not (tmp_path / "new.db").exists()  # refused before the run: nothing created


def test_output_and_metrics_on_one_file_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["verify", *PAGES, "--keys", RING, "--metrics", "m.prom", "-o", "./m.prom"]) == 2
    assert "same file" in capsys.readouterr().err
    assert not (tmp_path / "m.prom").exists()


def test_distinct_outputs_still_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["verify", *PAGES, "--keys", RING, "--ledger", "l.db", "--metrics", "m.prom", "-o", "r.txt"]) == 0
    assert (tmp_path / "l.db").read_bytes().startswith(b"SQLite format 3")
    assert "xchat_verify_" in (tmp_path / "m.prom").read_text()
    assert "verdict" in (tmp_path / "r.txt").read_text()


def test_empty_keyring_file_says_it_is_empty(tmp_path, capsys):
    ring = tmp_path / "ring.json"
    ring.write_text("\n")
    assert cli.main(["verify", *PAGES, "--keys", str(ring)]) == 3
    err = capsys.readouterr().err
    assert "empty" in err and "truncated" not in err and err.count("\n") == 1


def test_metrics_onto_the_ledger_is_refused_before_the_run(tmp_path, monkeypatch, capsys):
    """r119: '--ledger n.db --metrics n.db' recorded the run in a new ledger, then refused the metrics."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["verify", *PAGES, "--keys", RING, "--ledger", "n.db", "--metrics", "./n.db"]) == 2
    err = capsys.readouterr().err
    assert "--ledger" in err and "recorded" not in err and err.count("\n") == 1
    assert not (tmp_path / "n.db").exists()


def test_reading_command_does_not_say_it_creates_its_ledger(tmp_path, monkeypatch, capsys):
    """r119: 'ledger export --ledger x.db -o x.db' said x.db was the ledger "this command creates"."""
    monkeypatch.chdir(tmp_path)
    code = cli.main(["ledger", "export", "--ledger", "x.db", "-o", "x.db"])
    err = capsys.readouterr().err
    assert code != 0 and "creates" not in err and err.count("\n") == 1
    assert not (tmp_path / "x.db").exists()


@pytest.fixture(scope="module")
def api():
    from verifier.testing.server import FakeXApi, default_conversations
    with FakeXApi(default_conversations(12)) as server:
        yield server


@pytest.fixture
def receipt_key(tmp_path):
    key = tmp_path / "receipt.key"
    assert cli.main(["keys", "new-receipt-key", "-o", str(key)]) == 0
    return str(key)


@pytest.mark.parametrize("outputs", [["-o", "receipt.json"], ["--metrics", "./receipt.json"],
                                     ["--save", "ev", "-o", "ev/receipt.json"]])
def test_an_output_onto_the_default_receipt_is_refused(outputs, api, receipt_key, tmp_path, monkeypatch, capsys):
    """r121: the receipt goes to receipt.json (in --save DIR, else here) without --receipt; '-o receipt.json'
    replaced it with the report (or the receipt replaced the metrics), exit 0."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("X_BEARER_TOKEN", api.state.token)
    before = len(api.requests)
    conversation = next(iter(api.state.conversations))
    assert cli.main(["audit", conversation, "--base-url", api.url, "--receipt-key", receipt_key, *outputs]) == 2
    err = capsys.readouterr().err
    assert "receipt" in err and "same file" in err and err.count("\n") == 1
    assert len(api.requests) == before and not (tmp_path / "receipt.json").exists()
    assert not (tmp_path / "ev").exists()


def test_receipt_beside_other_outputs_is_written(api, receipt_key, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("X_BEARER_TOKEN", api.state.token)
    conversation = next(iter(api.state.conversations))
    assert cli.main(["audit", conversation, "--base-url", api.url, "--receipt-key", receipt_key, "--save", "ev",
                     "-o", "report.json", "--format", "json"]) == 0
    assert json.loads((tmp_path / "ev/receipt.json").read_text())["schema"].startswith("xchat-verify/receipt")
    assert json.loads((tmp_path / "report.json").read_text())["verdict"] == "pass"


@pytest.mark.parametrize("option, name", [("--ledger", "manifest.json"), ("--ledger", "keyring.json"),
                                          ("--metrics", "manifest.json"), ("--ledger", "keys/l.db")])
def test_ledger_or_metrics_onto_the_evidence_is_refused_before_the_audit(option, name, api, tmp_path, monkeypatch,
                                                                          capsys):
    """r121: '--save ev --ledger ev/manifest.json --force' created the ledger, deleted it as old evidence and
    recorded the run in the deleted file, exit 0; '--metrics ev/manifest.json' was refused after the audit."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("X_BEARER_TOKEN", api.state.token)
    (tmp_path / "ev").mkdir()
    before = len(api.requests)
    assert cli.main(["audit", next(iter(api.state.conversations)), "--base-url", api.url, "--save", "ev", "--force",
                     option, f"ev/{name}"]) == 2
    err = capsys.readouterr().err
    assert option in err and "evidence" in err and err.count("\n") == 1
    assert len(api.requests) == before and list((tmp_path / "ev").iterdir()) == []


def test_ledger_beside_the_evidence_is_used(api, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("X_BEARER_TOKEN", api.state.token)
    (tmp_path / "ev").mkdir()  # (--ledger and --metrics need their directory; only -o may name one --save makes)
    assert cli.main(["audit", next(iter(api.state.conversations)), "--base-url", api.url, "--save", "ev",
                     "--ledger", "ev/ledger.db", "--metrics", "ev/m.prom", "-q"]) == 0
    assert (tmp_path / "ev/ledger.db").read_bytes().startswith(b"SQLite format 3")
    assert "xchat_verify_" in (tmp_path / "ev/m.prom").read_text()


def test_an_output_onto_the_evidence_is_offered_a_name_that_is_free(api, receipt_key, tmp_path, monkeypatch, capsys):
    """r121: '-o ev/manifest.json' was told to name a file 'such as ev/receipt.json', where --receipt-key's
    receipt goes: following the advice was refused next."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("X_BEARER_TOKEN", api.state.token)
    argv = ["audit", next(iter(api.state.conversations)), "--base-url", api.url, "--receipt-key", receipt_key,
            "--save", "ev", "-o"]
    assert cli.main([*argv, "ev/manifest.json"]) == 2
    err = capsys.readouterr().err
    offered = err.split("such as ", 1)[1].split(")", 1)[0]
    assert offered == "ev/report.txt"
    assert cli.main([*argv, offered, "-q"]) == 0
    assert (tmp_path / "ev/receipt.json").is_file() and "verdict" in (tmp_path / offered).read_text().lower()
