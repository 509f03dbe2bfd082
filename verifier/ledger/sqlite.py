"""The default backend: one SQLite file (stdlib ``sqlite3``) in WAL mode.

Writers take the write lock first (``BEGIN IMMEDIATE``) and wait for it (busy timeout, then retries
with backoff), so two audits writing one ledger at once both commit, one after the other. Readers
never block. A file that is not an SQLite database, or a database that is not a ledger, is a
``LedgerError``: it is never recreated.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import sqlite3
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from ..errors import LedgerError
from ..sanitize import encodable
from .store import SqlStore

BUSY_TIMEOUT_S = 30.0
LOCK_RETRIES = 8  # after the busy timeout: up to ~4 more minutes of waiting in all


@dataclass(frozen=True, slots=True)
class UndecodableText:
    """SQLite text that is not UTF-8 (a hand edit), as a lenient read gives it: neither ``str`` nor
    ``bytes``, so the row checks name its row as damaged whatever the column. r115: read as bytes, such
    text in a BLOB column (``events.digest``, ``keys.key_digest``) passed as a sound digest: ``ledger
    check`` said consistent, and a run's updates of that row, whose key a TEXT value never equals,
    silently matched nothing."""

    data: bytes

    def __repr__(self) -> str:  # rows are named by repr: as the bytes
        return repr(self.data)

    def __str__(self) -> str:
        return self.data.decode("utf-8", "backslashreplace")


def _text_or_undecodable(data: bytes) -> str | UndecodableText:
    """SQLite text as ``str``, or ``UndecodableText`` when it is not UTF-8 (a hand edit): the row
    checks then name the row as damaged, as they do a BLOB stored in a text column."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return UndecodableText(bytes(data))


class SQLiteStore(SqlStore):
    dialect = "sqlite"
    placeholder = "?"

    def __init__(self, path: str | os.PathLike, *, create: bool = True, busy_timeout: float = BUSY_TIMEOUT_S,
                 retries: int = LOCK_RETRIES) -> None:
        super().__init__()
        self.path = Path(path)
        self.url = encodable(str(path))  # a display name, as postgres.py's: shown in JSON, never opened
        self.busy_timeout, self.retries = busy_timeout, retries
        if self.path.is_dir():
            raise LedgerError(f"ledger {self.url} is a directory, not a ledger file")
        if not self.path.exists():
            if not create:
                raise LedgerError(f"ledger {self.url} does not exist")
            if not self.path.parent.is_dir():
                raise LedgerError(f"ledger {self.url}: directory {self.path.parent} does not exist")
            self._create(busy_timeout)
        exists = self.path.exists()
        if exists and self.path.stat().st_size == 0:
            raise LedgerError(f"ledger {self.url} exists but is empty: not a ledger (remove it to start a new one)")
        if exists:
            with open(self.path, "rb") as handle:
                if handle.read(16) != b"SQLite format 3\x00":
                    raise LedgerError(f"{self.url} is not an xchat-verify ledger (not an SQLite database)")
        self.read_only = False
        self._unchanged: tuple[int, ...] | None = None  # the file as an immutable read found it
        self._real = self.path
        try:
            self.conn = self._connect(busy_timeout, reading=not create)
            if exists:  # a foreign database is refused before anything (even the journal mode) changes
                tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if tables and "ledger_meta" not in tables:
                    raise LedgerError(f"{self.url} is not an xchat-verify ledger (foreign tables: "
                                      f"{', '.join(sorted(tables)[:5])})")
                if tables:
                    columns = {r[1] for r in self.conn.execute("PRAGMA table_info(ledger_meta)")}
                    if not {"name", "value"} <= columns:
                        raise LedgerError(f"{self.url} is not an xchat-verify ledger (its ledger_meta table "
                                          "is not a ledger's)")
            if not self.read_only and not create and not _writable(self.path):
                # read where it cannot be written (through a read-only -shm, or in rollback mode: a VACUUM
                # INTO copy): read as it is, never turned to WAL mode nor upgraded
                self.read_only = True
            if not self.read_only:
                mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise LedgerError(f"ledger {self.url}: cannot use WAL mode (journal mode {mode})")
                self.conn.execute("PRAGMA synchronous = FULL")
            self.conn.execute("PRAGMA foreign_keys = OFF")
        except sqlite3.Error as exc:
            self.close()
            raise self._ledger_error(exc) from None
        except LedgerError:
            self.close()
            raise
        try:
            self._ensure_schema(create=not exists)
        except BaseException:
            self.close()
            raise

    def _connect(self, busy_timeout: float, reading: bool) -> sqlite3.Connection:
        """The connection. For a reader (``reading``) of a ledger in a place it cannot write (a
        read-only mount, a directory of another user's), where WAL mode cannot create the ``-shm``
        file even to read (round 101: such a ledger could not be read at all), a read-only one:
        SQLite's ``mode=ro`` where the ``-shm`` and ``-wal`` files are there, else, when no
        write-ahead log holds commits the file lacks and no rollback journal may hold a half-written
        transaction (a hot journal, which SQLite must roll back first), ``immutable=1`` (no locks),
        whose reads are checked at ``close`` against a change of the file meanwhile."""
        conn = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = %d" % int(busy_timeout * 1000))
        if not reading:
            return conn
        real = Path(os.path.realpath(self.path))  # SQLite keeps -wal and -shm beside the file a link names
        if _readable(conn) or os.access(real.parent, os.W_OK):  # a -shm could be made: not a read-only place
            return conn  # (one it cannot read there: the ledger's first read says why, as before)
        conn.close()
        uri = "file:" + urllib.parse.quote(os.fsencode(real)) + "?mode=ro"  # its bytes: a name need not be UTF-8
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        if not _readable(conn):
            conn.close()
            wal = Path(f"{real}-wal")
            if _file_state(wal)[1:2] not in ((), (0,)):  # a log that holds commits
                raise LedgerError(f"ledger {self.url}: cannot be read where it is: its write-ahead log "
                                  f"({wal.name}) holds commits that SQLite reads only with a shared-memory "
                                  f"file ({real.name}-shm), which cannot be created in this read-only "
                                  "place; copy the ledger and its -wal file to a writable directory")
            journal = Path(f"{real}-journal")  # immutable=1 ignores a hot journal: it would read the torn pages
            if _file_state(journal)[1:2] not in ((), (0,)):
                raise LedgerError(f"ledger {self.url}: cannot be read where it is: its rollback journal "
                                  f"({journal.name}) may hold a transaction that never completed, which SQLite "
                                  "must roll back before the ledger is read, and cannot in this read-only place; "
                                  "copy the ledger and its -journal file to a writable directory")
            self._unchanged = _file_state(real)
            self._real = real
            conn = sqlite3.connect(uri + "&immutable=1", uri=True, timeout=busy_timeout, isolation_level=None,
                                   check_same_thread=False)
        self.read_only = True
        return conn

    def close(self) -> None:
        """Close; a ledger read as immutable that changed meanwhile (a writer elsewhere) is an error:
        what was read from it may mix two states."""
        super().close()
        if self._unchanged is not None:
            before, self._unchanged = self._unchanged, None
            if _file_state(self._real) != before:
                raise LedgerError(f"ledger {self.url} changed while it was read (read-only, without locks): "
                                  "what was read may mix two states; read it again")

    def _create(self, busy_timeout: float) -> None:
        """A new ledger, built whole under a temporary name beside it and linked into place (link(2)
        takes the name only while it is free: a ledger another run created meanwhile is kept and
        opened). Why: created in place, a run killed between SQLite creating the file and the schema's
        commit left an empty file or a database without tables, which every later run refuses
        ("exists but is empty", "no ledger tables") until someone removes it (round 87). The name is
        resolved first: a dangling link named as the ledger gets the new ledger at the path it names,
        linked there whole too (round 95: it was created in place, through the link, as before round
        87). The temporary name is short whatever the ledger's (round 95: ``.NAME.new<pid>.<thread>``
        of a 240-character NAME was too long a file name, an internal error)."""
        target = Path(os.path.realpath(self.path))
        tmp = target.with_name(f".ledger.new{os.getpid()}.{secrets.token_hex(6)}")
        try:
            self.conn = sqlite3.connect(tmp, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = FULL")
            with self.transaction():
                self._migrate(0)
            self.conn.close()  # the last connection: the WAL is checkpointed into the file and removed
            self.conn = None
            try:
                os.link(tmp, target)
            except FileExistsError:
                pass  # another run created it meanwhile: that one is opened
            except OSError:  # a file system without hard links: renamed, if the name is still free
                if not target.exists():
                    os.rename(tmp, target)
        except sqlite3.Error as exc:
            raise self._ledger_error(exc) from None
        except OSError as exc:
            raise LedgerError(f"ledger {self.url}: cannot create it: {exc.strerror or exc}") from None
        finally:
            if self.conn is not None:
                self.conn.close()
                self.conn = None
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    Path(f"{tmp}{suffix}").unlink(missing_ok=True)

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)

    def _undecodable(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and str(exc).startswith("Could not decode to UTF-8")

    def _lenient(self, on: bool) -> None:
        if self.conn is not None:
            self.conn.text_factory = _text_or_undecodable if on else str

    def _tables(self) -> set[str]:
        return {r[0] for r in self._query("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _begin(self) -> None:
        """Take the write lock: wait ``busy_timeout``, then retry with jittered backoff."""
        for attempt in range(self.retries + 1):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                text = str(exc).lower()
                if ("locked" not in text and "busy" not in text) or attempt == self.retries:
                    raise LedgerError(f"ledger {self.url}: {exc} (another writer held it through "
                                      f"{self.retries} retries)") from None
                time.sleep(min(30.0, 0.05 * 2 ** attempt) * (0.5 + random.random()))
            except sqlite3.Error as exc:
                raise self._ledger_error(exc) from None

    def _begin_snapshot(self) -> None:
        self.conn.execute("BEGIN")  # deferred: the snapshot is taken by the first read, kept until close
        self.conn.execute("SELECT COUNT(*) FROM ledger_meta").fetchall()

    def check(self) -> list[str]:
        # as text: SQLite's words may quote a name that is not UTF-8, read leniently (r115: an index's,
        # which JSON could not write: "internal error: TypeError")
        problems = [str(r[0]) for r in self._query("PRAGMA integrity_check") if r[0] != "ok"]
        return problems + super().check()


def _readable(conn: sqlite3.Connection) -> bool:
    """Whether the connection can open and read the database (another error, such as a file that is
    not a database, is raised by the ledger's first read, as before)."""
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
        return True
    except sqlite3.OperationalError:
        return False


def _file_state(path: Path) -> tuple[int, ...]:
    """What changes when the file is written or replaced (a missing file: an empty tuple)."""
    try:
        info = path.stat()
    except OSError:
        return ()
    return info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def _writable(path: Path) -> bool:
    """Whether the ledger, and the directory its ``-wal`` and ``-shm`` files go in, can be written."""
    real = os.path.realpath(path)
    return os.access(real, os.W_OK) and os.access(os.path.dirname(real), os.W_OK)
