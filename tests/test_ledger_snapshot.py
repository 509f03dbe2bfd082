"""The reading commands see one committed state of the ledger (round 101): a run another writer
commits while `ledger check`, `history`, `compare`... read is wholly seen or not at all, never half
(a chain row of an audit the audits table read did not hold; an audit whose events a newer audit
touched since)."""

from __future__ import annotations

import json

import pytest
from helpers import write_history

from verifier.cli import main
from verifier.ledger.store import SqlStore
from verifier.testing.forge import build_conversation

CONV = build_conversation(30, seed="snapshot")


def _record(files, ring, ledger, out):
    assert main(["verify", *files, "--keys", ring, "--ledger", ledger, "--format", "json", "-o", str(out)]) == 0


@pytest.mark.parametrize("command", [["ledger", "check"], ["ledger", "history", CONV.conversation_id],
                                     ["ledger", "show"], ["ledger", "export"]])
def test_a_run_committed_while_a_reader_reads_is_seen_whole_or_not_at_all(command, ledger_target, tmp_path,
                                                                          monkeypatch, capsys):
    files, ring = write_history(tmp_path, CONV, 10)
    for _ in range(2):
        _record(files, ring, ledger_target, tmp_path / "r.json")
    original = SqlStore.audits
    calls = []

    def audits_then_another_run(self):
        rows = original(self)
        if not calls:  # another writer commits a run right after the reader's first read of the audits
            calls.append(1)
            _record(files, ring, ledger_target, tmp_path / "other.json")
        return rows

    capsys.readouterr()
    monkeypatch.setattr(SqlStore, "audits", audits_then_another_run)
    code = main([*command, "--ledger", ledger_target])
    out = capsys.readouterr()
    assert calls, "the other run was not started"
    assert code == 0, out.out + out.err
    if command[1] == "check":
        assert json.loads(out.out)["consistent"] is True
        assert json.loads(out.out)["audits"] == 2  # the run committed meanwhile is not half seen
    monkeypatch.setattr(SqlStore, "audits", original)
    assert main(["ledger", "check", "--ledger", ledger_target]) == 0
    assert json.loads(capsys.readouterr().out)["audits"] == 3
