"""Atomic writes: durable when the command says written."""
from __future__ import annotations

import os
import stat

from verifier import outputs


def _synced_directories(monkeypatch) -> list[str]:
    """The directories ``os.fsync`` is called on (the real call runs too)."""
    synced: list[str] = []
    real = os.fsync

    def watched(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)
    monkeypatch.setattr(os, "fsync", watched)
    return synced


def test_a_report_s_rename_is_synced_with_its_directory(tmp_path, monkeypatch):
    """r124 noticed: the file was synced, then renamed over the target, and the rename reached the
    disk at the next journal commit (about 5 s on ext4) after the command said "written"."""
    synced = _synced_directories(monkeypatch)
    (tmp_path / "sub").mkdir()
    outputs.write_file(tmp_path / "sub" / "report.json", ["{", "}"])
    outputs.atomic_write_text(tmp_path / "keyring.json", "{}")
    assert (tmp_path / "sub" / "report.json").read_text() == "{}"
    assert synced == [str(tmp_path / "sub"), str(tmp_path)]


def test_evidence_pages_leave_their_directory_to_the_journal_s_sync(tmp_path, monkeypatch):
    synced = _synced_directories(monkeypatch)
    outputs.atomic_write(tmp_path / "page.json", b"{}", in_place=False, sync_directory=False)
    assert synced == [] and (tmp_path / "page.json").read_bytes() == b"{}"


def test_a_directory_that_refuses_fsync_leaves_the_write_done(tmp_path, monkeypatch):
    real = os.fsync

    def refusing(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(22, "Invalid argument")
        real(fd)
    monkeypatch.setattr(os, "fsync", refusing)
    outputs.atomic_write_text(tmp_path / "r.txt", "x")
    assert (tmp_path / "r.txt").read_text() == "x"
