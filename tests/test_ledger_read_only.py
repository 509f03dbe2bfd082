"""A ledger kept where it cannot be written (a read-only mount, another user's directory) can be
read by every reading command (round 101: WAL mode could not create its ``-shm`` file, so not even
``ledger check`` could open it: exit 3, "unable to open database file").

The read-only place is real: a read-only bind mount in a mount namespace of its own (``unshare``;
as root, which CI is). A writer outside that namespace still sees the directory writable, which is
how a second process changes the ledger under a reader here."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(str(p) for p in (ROOT / "examples" / "conversation").glob("*.json"))
KEYRING = str(ROOT / "examples" / "keyring.json")
CONVERSATION = "1215441834412953600:1843439638876491776"
# mount the directory ($1) read-only over itself, then run the rest of the arguments there
_READ_ONLY = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"'


def _in_read_only(directory: Path, *argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "-m", "sh", "-c", _READ_ONLY, "sh", str(directory), *argv],
                          capture_output=True, text=True, timeout=120, **kwargs)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "verifier", *args]


@pytest.fixture()
def place(tmp_path):
    """A directory with a ledger of one audit, which ``_in_read_only`` shows read-only."""
    if shutil.which("unshare") is None or _in_read_only(tmp_path, "touch", str(tmp_path / "probe")).returncode == 0 \
            or (tmp_path / "probe").exists():
        pytest.skip("needs unshare and mount (root) for a read-only bind mount")
    _record(tmp_path / "l.db")
    return tmp_path


def _record(ledger: Path) -> None:
    done = subprocess.run(_cli("verify", *EXAMPLES, "--keys", KEYRING, "--ledger", str(ledger), "-o",
                               str(ledger.parent / "report.json")), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def _reading_commands(ledger: Path) -> list[list[str]]:
    conn = sqlite3.connect(ledger)  # (a reader, outside any read-only place)
    try:
        user = conn.execute("SELECT user_id FROM keys ORDER BY user_id LIMIT 1").fetchone()[0]
    finally:
        conn.close()
    twin = ledger.with_name("twin.db")
    shutil.copyfile(ledger, twin)
    at = ["--ledger", str(ledger)]
    return [["check", *at], ["show", *at], ["export", *at], ["keys", user, *at], ["history", CONVERSATION, *at],
            ["checkpoint", CONVERSATION, *at], ["compare", str(ledger), str(twin), "--conversation", CONVERSATION]]


def _timeless(output: str) -> object:
    """The output, less the time a checkpoint is made at."""
    if not output:
        return output
    shown = json.loads(output)
    if isinstance(shown, dict) and shown.get("schema") == "xchat-verify/checkpoint/v1":
        shown.pop("time")
    return shown


def test_every_reading_command_reads_a_ledger_on_a_read_only_mount_as_it_reads_it_elsewhere(place):
    ledger = place / "l.db"
    for command in _reading_commands(ledger):
        writable = subprocess.run(_cli("ledger", *command), capture_output=True, text=True, timeout=120)
        read_only = _in_read_only(place, *_cli("ledger", *command))
        assert (read_only.returncode, _timeless(read_only.stdout)) == (writable.returncode, _timeless(writable.stdout)), \
            (command, read_only.stderr)
        assert read_only.returncode == 0 and "Traceback" not in read_only.stderr


def test_commits_in_a_write_ahead_log_beside_it_are_read_with_its_shared_memory_file(place):
    ledger = place / "l.db"
    holder = sqlite3.connect(ledger)  # an open connection: the second run's commit stays in the -wal file
    try:
        holder.execute("SELECT COUNT(*) FROM audits").fetchall()
        _record(ledger)
        assert Path(f"{ledger}-wal").stat().st_size and Path(f"{ledger}-shm").exists()
        shown = _in_read_only(place, *_cli("ledger", "show", "--ledger", str(ledger)))
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["audits"] == 2
        # the log without its shared-memory file cannot be read there: said, never read without it
        alone = place / "alone"
        alone.mkdir()
        for name in ("l.db", "l.db-wal"):
            shutil.copyfile(place / name, alone / name)
        done = _in_read_only(alone, *_cli("ledger", "show", "--ledger", str(alone / "l.db")))
        assert done.returncode == 3 and done.stdout == ""
        assert "write-ahead log (l.db-wal)" in done.stderr and "Traceback" not in done.stderr
    finally:
        holder.close()


_READER = """
import sys
from verifier.errors import LedgerError
from verifier.ledger import open_ledger
store = open_ledger(sys.argv[1], create=False)
store.snapshot()
print(store.read_only, len(store.audits()), flush=True)
sys.stdin.readline()
try:
    store.close()
    print("closed")
except LedgerError as exc:
    print("error:", exc)
"""


def test_a_ledger_changed_under_an_immutable_read_is_an_error_when_the_read_ends(place):
    ledger = place / "l.db"
    reader = subprocess.Popen(["unshare", "-m", "sh", "-c", _READ_ONLY, "sh", str(place), sys.executable, "-c",
                               _READER, str(ledger)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdin is not None
        assert reader.stdout.readline().split() == ["True", "1"]
        _record(ledger)  # written outside the namespace, where the directory is writable
        out, _ = reader.communicate("\n", timeout=60)
    finally:
        reader.kill()
        reader.wait()
    assert out.startswith("error: ") and "changed while it was read" in out


def test_an_untouched_immutable_read_closes_quietly(place):
    done = _in_read_only(place, sys.executable, "-c", _READER, str(place / "l.db"), input="\n")
    assert done.stdout.split("\n")[:2] == ["True 1", "closed"], done.stderr


def test_a_ledger_that_needs_upgrading_says_it_cannot_be_upgraded_read_only(place):
    ledger = place / "l.db"
    conn = sqlite3.connect(ledger)
    with conn:
        conn.execute("UPDATE ledger_meta SET value = '2' WHERE name = 'schema_version'")
    conn.close()
    done = _in_read_only(place, *_cli("ledger", "show", "--ledger", str(ledger)))
    assert done.returncode == 3 and "read-only here" in done.stderr and "Traceback" not in done.stderr


def test_recording_into_a_read_only_ledger_fails_in_one_line(place):
    ledger = place / "l.db"
    done = _in_read_only(place, *_cli("verify", *EXAMPLES, "--keys", KEYRING, "--ledger", str(ledger)))
    assert done.returncode == 3 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if "ledger" in line], done.stderr


def test_a_link_to_a_ledger_in_a_read_only_place_is_read_there(place, tmp_path_factory):
    """SQLite keeps ``-wal`` and ``-shm`` beside the file a link names: the place that decides is
    the file's, not the link's (a writable one)."""
    link = tmp_path_factory.mktemp("links") / "ledger.db"
    link.symlink_to(place / "l.db")
    done = _in_read_only(place, *_cli("ledger", "check", "--ledger", str(link)))
    assert done.returncode == 0 and json.loads(done.stdout)["consistent"] is True, done.stderr


_PAUSED = """
import sys
from verifier.cli import main
from verifier.ledger.sqlite import SQLiteStore
closing = SQLiteStore.close
def close(self):
    print("READ", file=sys.stderr, flush=True)
    sys.stdin.readline()  # a writer elsewhere changes the ledger now
    closing(self)
SQLiteStore.close = close
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", [["show"], ["history", CONVERSATION], ["keys", "1215441834412953600"]])
def test_a_ledger_changed_under_an_immutable_read_prints_nothing(place, command):
    """The change is found at close: a command that printed what it read before closing printed a
    state that may mix two (``keys``: a key last seen in an audit whose time it had not read), then
    exit 3 (r111). Each prints after it closed, as ``check`` and ``export`` do."""
    ledger = place / "l.db"
    reader = subprocess.Popen(["unshare", "-m", "sh", "-c", _READ_ONLY, "sh", str(place), sys.executable, "-c",
                               _PAUSED, "ledger", *command, "--ledger", str(ledger)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert reader.stderr is not None
        assert reader.stderr.readline().strip() == "READ"
        _record(ledger)
        out, err = reader.communicate("\n", timeout=60)
    finally:
        reader.kill()
        reader.wait()
    assert reader.returncode == 3 and "changed while it was read" in err
    assert out == ""


_DIES_MID_TRANSACTION = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA cache_size = 1")  # its changes spill into the file before any commit
conn.execute("BEGIN")
conn.execute("UPDATE audits SET command = 'never committed'")
conn.execute("CREATE TABLE filler(x)")
conn.execute("INSERT INTO filler SELECT zeroblob(4000) FROM events")
os._exit(9)
"""


def test_a_hot_rollback_journal_is_not_read_past_as_immutable(place, tmp_path_factory):
    """A ledger in rollback-journal mode (a copy made by ``VACUUM INTO``) whose writer died mid-
    transaction: its file holds pages never committed, which its ``-journal`` rolls back. Read as
    immutable, which ignores the journal, ``ledger show`` printed the uncommitted rows, exit 0, and
    ``ledger check`` found it consistent (r111)."""
    copy = tmp_path_factory.mktemp("copy")
    conn = sqlite3.connect(place / "l.db")
    conn.execute("VACUUM INTO ?", (str(copy / "l.db"),))
    conn.close()
    subprocess.run([sys.executable, "-c", _DIES_MID_TRANSACTION, str(copy / "l.db")], timeout=60)
    assert (copy / "l.db-journal").stat().st_size
    for command in ("show", "check"):
        done = _in_read_only(copy, *_cli("ledger", command, "--ledger", str(copy / "l.db")))
        assert done.returncode == 3 and done.stdout == "", (command, done.stdout)
        assert "rollback journal (l.db-journal)" in done.stderr and "Traceback" not in done.stderr


def test_a_ledger_in_rollback_mode_is_read_in_a_read_only_place(place, tmp_path_factory):
    """A copy made by ``VACUUM INTO`` (SQLite's way to copy a live database) is in rollback-journal
    mode: the reading commands read it there as they read it elsewhere, without turning it to WAL
    mode, which cannot be written there (r111: exit 3, "attempt to write a readonly database")."""
    copy = tmp_path_factory.mktemp("copy")
    conn = sqlite3.connect(place / "l.db")
    conn.execute("VACUUM INTO ?", (str(copy / "l.db"),))
    conn.close()
    done = _in_read_only(copy, *_cli("ledger", "show", "--ledger", str(copy / "l.db")))
    assert done.returncode == 0 and json.loads(done.stdout)["audits"] == 1, done.stderr
    assert sorted(p.name for p in copy.iterdir()) == ["l.db"]


def test_a_ledger_of_an_older_schema_read_through_its_shared_memory_file_says_it_cannot_be_upgraded(place):
    """With its ``-wal`` and ``-shm`` files beside it, SQLite reads it through the read-only
    ``-shm``: the store was not taken as read-only, so the upgrade was tried and failed with SQLite's
    "attempt to write a readonly database" (r111), not the one line a ledger without them gets."""
    ledger = place / "l.db"
    conn = sqlite3.connect(ledger)  # a schema-2 ledger: 2 -> 3 added the two fetched columns
    conn.execute("ALTER TABLE audits DROP COLUMN fetched")
    conn.execute("ALTER TABLE chains DROP COLUMN fetched")
    conn.execute("UPDATE ledger_meta SET value = '2' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()
    holder = sqlite3.connect(ledger)  # open: its commit stays in the -wal file
    try:
        holder.execute("INSERT INTO ledger_meta(name, value) VALUES ('note', 'x')")
        holder.commit()
        assert Path(f"{ledger}-wal").stat().st_size and Path(f"{ledger}-shm").exists()
        done = _in_read_only(place, *_cli("ledger", "show", "--ledger", str(ledger)))
    finally:
        holder.close()
    assert done.returncode == 3 and "read-only here" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_ledger_whose_name_is_not_utf8_is_read_in_a_read_only_place(place, tmp_path_factory):
    """The read-only connection is opened by a ``file:`` URI: the name's bytes are quoted, not its
    text (r111: a byte that is not UTF-8, a legal name, was "internal error: UnicodeEncodeError")."""
    odd = tmp_path_factory.mktemp("odd")
    name = os.fsdecode(b"ledger-\xff.db")
    shutil.copyfile(place / "l.db", odd / name)
    done = _in_read_only(odd, *_cli("ledger", "show", "--ledger", str(odd / name)))
    assert done.returncode == 0 and json.loads(done.stdout)["audits"] == 1, done.stderr
