"""An output never replaces the ledger the run creates, and two outputs never share a file (r117)."""
from pathlib import Path

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
