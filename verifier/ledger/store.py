"""The ledger's store interface (``LedgerStore``) and the SQL both backends share.

The ledger logic (``record``, ``transcript``) talks to a store only through this interface; the
backends (``sqlite.SQLiteStore``, ``postgres.PostgresStore``) differ in connecting, locking, the
placeholder style and the error types they translate into ``LedgerError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from ..clock import from_iso, utc_instant
from ..errors import LedgerError
from ..model import SigStatus
from ..sanitize import printable
from . import schema


@dataclass(slots=True)
class EventRow:
    conversation: str
    seq: str
    digest: bytes
    prev: str | None
    message_id: str | None
    sender: str | None
    kind: str | None
    sig_version: str | None
    status: str  # signature status when last seen
    state: int  # PRESENT, VANISHED or DELETED at the last audit that judged it
    first_audit: int
    last_audit: int


PRESENT, VANISHED, DELETED = 0, 1, 2
STATE_NAMES = {PRESENT: "present", VANISHED: "vanished", DELETED: "deleted"}
KEY_SOURCES = ("directory", "keyring", "evidence", "events")
MAX_PROBLEMS = 20  # damaged rows named one by one by check(); the rest are counted
_MAX_AUDIT_ID = 2**63 - 1  # the largest BIGINT: an audit id there leaves no next one


# ------------------------------------------------------------------------------------- row checks
# Rows read back are checked before use: a damaged row (a hand edit, a foreign writer) is a
# LedgerError naming table and row, and `ledger check` lists them, instead of a KeyError or a
# TypeError somewhere later. Each returns '' for a sound row, else what is wrong.
def _opt_str(value: Any) -> bool:
    return value is None or type(value) is str


def _int(value: Any) -> bool:
    return type(value) is int


def _blob(value: Any) -> bool:
    return isinstance(value, (bytes, memoryview)) and len(value) == 32


def _event_digest(value: Any) -> bool:
    """An event's digest: the SHA-256 of its encoded event, or empty for an item served without one
    (no bytes to hash: ``EventFacts.digest``). Why empty too: such a run recorded it, and the next
    run then refused the ledger as damaged (r122), so one item a server left bare broke every later audit."""
    return _blob(value) or (isinstance(value, (bytes, memoryview)) and len(value) == 0)


def _bare(message_id: str | None, kind: str | None, sig_version: str | None, status: str) -> bool:
    """What a run records of an item without an encoded event: nothing decoded (no message id, kind or
    signature version) and the status malformed. Why: an empty digest is sound only for such an
    item (r122); a hand edit that emptied the digest of an event that had one read as consistent (r125)."""
    return message_id is None and kind is None and sig_version is None and status == SigStatus.MALFORMED


def event_problem(r: tuple) -> str:
    seq, digest, prev, message_id, sender, kind, sig_version, status, state, first, last = r
    if type(seq) is not str or not seq:
        return "seq is not a sequence id"
    if not _event_digest(digest):
        return "digest is not a 32-byte SHA-256 (nor empty, as for an item without an encoded event)"
    if not (_opt_str(prev) and _opt_str(message_id) and _opt_str(sender) and _opt_str(kind)
            and _opt_str(sig_version) and type(status) is str):
        return "a text column holds something else"
    if not len(digest) and not _bare(message_id, kind, sig_version, status):
        return ("the digest is empty (an item without an encoded event) but the row holds what only a decoded "
                "event gives (a message id, kind or signature version, or a status other than malformed)")
    if type(state) is not int or state not in STATE_NAMES:
        return f"state {state!r:.20} is not 0, 1 or 2"
    if not (_int(first) and _int(last)):
        return "first_audit or last_audit is not an audit id"
    return ""


def key_problem(r: tuple) -> str:
    user_id, version, key_digest, source, signing_key, binding, first, last, retired = r
    if not (type(user_id) is str and type(version) is str and type(signing_key) is str and type(binding) is str):
        return "a text column holds something else"
    if not _blob(key_digest):
        return "key_digest is not a 32-byte SHA-256"
    if source not in KEY_SOURCES:
        return f"source {source!r:.20} is not directory, keyring, evidence or events"
    if not (_int(first) and _int(last) and (retired is None or _int(retired))):
        return "an audit column is not an audit id"
    return ""


def _json(text: Any, kind: type) -> Any:
    if type(text) is not str:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, kind) else None


def audit_problem(r: tuple) -> str:
    ident, time, tool_version, command, inputs, verdict, digest, events, findings, fetched = r
    if not _int(ident) or ident < 1:
        return "id is not an audit id"
    if type(time) is not str:
        return "time is not text"
    try:
        from_iso(time.replace("Z", "+00:00"))
    except ValueError:
        return "time is not an ISO-8601 time"
    if not (type(tool_version) is str and type(command) is str and type(verdict) is str and type(digest) is str):
        return "a text column holds something else"
    parsed = _json(inputs, list)
    if parsed is None or not all(type(i) is str for i in parsed):
        return "inputs is not a JSON list of text"
    if not _int(events) or events < 0:
        return "events is not a count"
    counts = _json(findings, dict)
    if counts is None or not all(type(n) is int and n >= 0 for n in counts.values()):
        return "findings is not a JSON object of counts"
    if fetched is not None and utc_instant(fetched) is None:
        return "fetched is neither empty nor an ISO-8601 time with its UTC offset"
    return ""


def chain_problem(r: tuple) -> str:
    audit, _name, tail, head, size, root, complete, fetched = r
    if not _int(audit):
        return "audit is not an audit id"
    if not (_opt_str(tail) and _opt_str(head) and type(root) is str):
        return "a text column holds something else"
    if not _int(size) or size < 0:
        return "size is not a count"
    if complete not in (0, 1) or type(complete) is not int:
        return "complete is not 0 or 1"
    if fetched is not None and utc_instant(fetched) is None:
        return "fetched is neither empty nor an ISO-8601 time with its UTC offset"
    return ""


@dataclass
class KeyRow:
    user_id: str
    version: str
    key_digest: bytes
    source: str  # directory | keyring | events
    signing_key: str
    binding: str  # ok | key_binding_invalid | conflict | none (event key lists carry no binding)
    first_audit: int
    last_audit: int
    retired_audit: int | None = None


@dataclass
class AuditRow:
    id: int
    time: str
    tool_version: str
    command: str
    inputs: list[str]
    verdict: str
    report_digest: str
    events: int
    findings: dict[str, int]
    # when the run's pages were fetched: the earliest page's fetch time, None when unknown (page
    # files; rows from before schema 3). ``time`` is when the run was recorded.
    fetched: str | None = None

    def label(self) -> str:
        return f"audit {self.id} at {self.time}"


@dataclass
class ChainRow:
    audit: int
    conversation: str
    tail: str | None
    head: str | None
    size: int
    root: str
    complete: bool
    fetched: str | None = None  # when this conversation's pages were fetched (the earliest); None: unknown


class LedgerStore(Protocol):
    """What the ledger logic needs from a backend. Reads may run outside a transaction; every write
    runs inside ``transaction()``, which also serialises writers (one audit at a time)."""

    url: str

    def transaction(self) -> Any: ...  # context manager: exclusive write transaction, commit on exit
    def conversations(self) -> list[str]: ...
    def events(self, conversation: str) -> list[EventRow]: ...
    def keys(self, user_id: str | None = None) -> list[KeyRow]: ...
    def audits(self) -> list[AuditRow]: ...
    def chains(self, conversation: str | None = None) -> list[ChainRow]: ...
    def next_audit_id(self) -> int: ...
    def audit_count(self) -> int: ...
    def insert_audit(self, audit: AuditRow) -> None: ...
    def insert_events(self, rows: list[EventRow]) -> None: ...
    def touch_events(self, conversation: str, audit: int, rows: list[tuple[str, bytes, str]]) -> None: ...
    def set_states(self, conversation: str, rows: list[tuple[str, bytes, int]]) -> None: ...
    def upsert_keys(self, rows: list[KeyRow], audit: int) -> None: ...
    def retire_keys(self, rows: list[KeyRow], audit: int) -> None: ...
    def insert_chains(self, rows: list[ChainRow]) -> None: ...
    def check(self) -> list[str]: ...
    def snapshot(self) -> None: ...  # every later read (until close) sees one committed state
    def close(self) -> None: ...


class SqlStore:
    """The shared SQL over a DB-API connection. Subclasses set ``dialect``, ``placeholder``, open
    ``self.conn`` and implement ``_begin`` (take the write lock), ``_errors`` (driver exceptions)."""

    dialect = "sqlite"
    # Text ordered by code point on every backend (SQLite's BINARY; PostgreSQL's "C", not the
    # database's locale): rows that tie on what a finding looks at come back in one order, so both
    # backends name the same earlier row (review: PostgreSQL returned events in storage order).
    bytewise = ""
    placeholder = "?"
    url = ""
    read_only = False  # opened where it cannot be written (SQLite: ``SQLiteStore._connect``)

    def __init__(self) -> None:
        self.conn: Any = None
        self._conv_ids: dict[str, int] = {}
        self._in_tx = False
        self._in_snapshot = False
        self._chains_by_name: dict[Any, list[tuple]] | None = None  # ``chains(name)`` in a snapshot
        self._chains_one_pass = True  # False once that one pass failed to read: by name, as before it

    # ------------------------------------------------------------------ plumbing
    def _sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def _errors(self) -> tuple[type[BaseException], ...]:
        raise NotImplementedError

    def _run(self, text: str, params: Iterable[Any] = (), *, raw: bool = False) -> Any:
        """The executed cursor; a driver's error is the ledger's, or, with ``raw``, left as it is (for
        ``_query`` and ``_scan``, which read again leniently at a row the driver cannot decode: before
        Python 3.11, sqlite3's ``execute`` already decoded the first row, so such a first row failed
        here, and ``ledger check`` ended with the driver's message instead of listing it)."""
        try:
            cur = self.conn.cursor()
            cur.execute(self._sql(text), tuple(params))
            return cur
        except self._errors() as exc:
            if raw:
                raise
            raise self._ledger_error(exc) from None

    def _many(self, text: str, rows: list[tuple]) -> None:
        if not rows:
            return
        try:
            self.conn.cursor().executemany(self._sql(text), rows)
        except self._errors() as exc:
            raise self._ledger_error(exc) from None

    def _ledger_error(self, exc: BaseException) -> LedgerError:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return LedgerError(f"ledger {self.url}: {first}")

    def _query(self, text: str, params: Iterable[Any] = ()) -> list[tuple]:
        try:  # rows are read here: a row the driver cannot read (SQLite text that is not UTF-8, a hand
            return list(self._run(text, params, raw=True).fetchall())  # edit) is the ledger's error, not
            # an internal one (review 107)
        except self._errors() as exc:
            if not self._undecodable(exc):
                raise self._ledger_error(exc) from None
        # review 108: read again with such text as a value of its own type (SQLite: ``UndecodableText``,
        # not its bytes, which a BLOB column takes: r115), which the row checks name as damaged
        # (table and row, and ``check`` lists it) as they do a BLOB written there; the driver's
        # message named neither, ``check`` stopped at it, and in ledger_meta (a row of any name) it
        # read as "not an xchat-verify ledger"
        self._lenient(True)
        try:
            cursor = self._run(text, params)
            try:
                return list(cursor.fetchall())
            except self._errors() as exc:
                raise self._ledger_error(exc) from None
        finally:
            self._lenient(False)

    def _scan(self, text: str) -> Iterator[tuple]:
        """The rows of a query, one at a time (a whole table: never all in memory). At a row the driver
        cannot decode, the query runs again leniently (as ``_query``) and the rows already given are
        skipped. Why not read on with the same cursor: before Python 3.11, sqlite3's cursor fetched
        the next row ahead and, when that failed, ended the iteration without it, so the rest of the
        table would have gone unchecked: a false "consistent" (r115)."""
        given = 0
        try:
            for row in self._run(text, raw=True):
                yield row
                given += 1
            return
        except self._errors() as exc:
            if not self._undecodable(exc):
                raise self._ledger_error(exc) from None
        self._lenient(True)
        try:
            for at, row in enumerate(self._run(text)):
                if at >= given:
                    yield row
        except self._errors() as exc:
            raise self._ledger_error(exc) from None
        finally:
            self._lenient(False)

    def _undecodable(self, exc: BaseException) -> bool:
        """``exc`` says the driver could not decode a text value of a row it fetched."""
        return False

    def _lenient(self, on: bool) -> None:
        """While on, text the driver cannot decode is read as a value no row check takes for text or
        for a BLOB (``_undecodable``)."""

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One exclusive write transaction: committed on success, rolled back on any error."""
        self._begin()
        self._in_tx = True
        self._chains_by_name = None
        try:
            yield
        except BaseException:
            self._in_tx = False
            self._rollback()
            self._conv_ids = {}
            raise
        self._in_tx = False
        self._commit()

    def _begin(self) -> None:
        raise NotImplementedError

    def snapshot(self) -> None:
        """From now until ``close()``, every read sees one committed state of the ledger (a read-only
        transaction: SQLite's deferred ``BEGIN`` in WAL mode, PostgreSQL's ``REPEATABLE READ``). For
        the reading commands, which read the ledger in several statements (audits, then chains,
        then counts): each in its own snapshot, a run another process committed between two of them
        made a sound ledger read as damaged (``history``: a chain row naming an audit the audits
        read did not hold) or inconsistent (``check``: "audit N recorded E events but 0 rows say it
        saw them"), exit 3 (round 101)."""
        if self._in_tx or self._in_snapshot:
            return
        try:
            self._begin_snapshot()
        except self._errors() as exc:
            raise self._ledger_error(exc) from None
        self._in_snapshot = True

    def _begin_snapshot(self) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        try:
            self.conn.commit() if self.dialect == "postgres" else self._run("COMMIT")
        except self._errors() as exc:
            raise self._ledger_error(exc) from None

    def _rollback(self) -> None:
        try:
            self.conn.rollback() if self.dialect == "postgres" else self.conn.execute("ROLLBACK")
        except Exception:  # the connection may be gone; the database rolls back on its own
            pass

    # ------------------------------------------------------------------ schema
    def _tables(self) -> set[str]:
        raise NotImplementedError

    def _ensure_schema(self, create: bool) -> None:
        """Check the ledger is ours and current; create it when empty and ``create``; migrate an
        older one. A foreign or newer database is a ``LedgerError``: never recreated."""
        tables = self._tables()
        if not tables:
            if not create:
                raise LedgerError(f"ledger {self.url} is empty (no ledger tables)")
            with self.transaction():
                if not self._tables():  # another process may have created it meanwhile
                    self._migrate(0)
            return
        if "ledger_meta" not in tables:
            raise LedgerError(f"{self.url} is not an xchat-verify ledger (foreign tables: "
                              f"{', '.join(sorted(tables)[:5])})")
        meta = self._meta()
        if meta.get("format") != schema.FORMAT:
            raise LedgerError(f"{self.url} is not an xchat-verify ledger (format {meta.get('format')!r})")
        try:
            version = int(str(meta.get("schema_version", "")))
        except ValueError:
            raise LedgerError(f"ledger {self.url} has an unreadable schema version") from None
        if version > schema.SCHEMA_VERSION:
            raise LedgerError(f"ledger {self.url} has schema version {version}, newer than this "
                              f"xchat-verify understands ({schema.SCHEMA_VERSION}); upgrade xchat-verify")
        if version < schema.SCHEMA_VERSION:
            if self.read_only:
                raise LedgerError(f"ledger {self.url} has schema version {version}, which this xchat-verify "
                                  f"upgrades to {schema.SCHEMA_VERSION} when it opens it, but it is read-only "
                                  "here: copy it to a writable place")
            with self.transaction():
                current = int(dict(self._query("SELECT name, value FROM ledger_meta"))["schema_version"])
                if current < schema.SCHEMA_VERSION:
                    self._migrate(current)
        missing = set(schema.TABLES) - self._tables()
        if missing:
            raise LedgerError(f"ledger {self.url} is damaged: missing tables {', '.join(sorted(missing))}")

    def _meta(self) -> dict[Any, Any]:
        """``ledger_meta`` as a dict; a table of that name without the (name, value) columns is not a
        ledger."""
        try:
            return dict((r[0], r[1]) for r in self._query("SELECT name, value FROM ledger_meta"))
        except LedgerError:
            self._rollback()
            raise LedgerError(f"{self.url} is not an xchat-verify ledger (its ledger_meta table is not "
                              "a ledger's)") from None

    def _migrate(self, current: int) -> None:
        for version, statements in schema.migrations(self.dialect, current):
            for statement in statements:
                self._run(statement)
            if version == 1:
                self._run("INSERT INTO ledger_meta (name, value) VALUES (?, ?)", ("format", schema.FORMAT))
                self._run("INSERT INTO ledger_meta (name, value) VALUES (?, ?)", ("schema_version", "1"))
            self._run("UPDATE ledger_meta SET value = ? WHERE name = 'schema_version'", (str(version),))

    def schema_version(self) -> int:
        return int(dict(self._query("SELECT name, value FROM ledger_meta"))["schema_version"])

    # ------------------------------------------------------------------ reads
    def _conv_id(self, name: str, create: bool = False) -> int | None:
        if name in self._conv_ids:
            return self._conv_ids[name]
        rows = self._query("SELECT id FROM conversations WHERE name = ?", (name,))
        if rows:
            self._conv_ids[name] = int(rows[0][0])
            return self._conv_ids[name]
        if not create:
            return None
        new = int(self._query("SELECT COALESCE(MAX(id), 0) + 1 FROM conversations")[0][0])
        self._run("INSERT INTO conversations (id, name) VALUES (?, ?)", (new, name))
        self._conv_ids[name] = new
        return new

    def damaged(self, table: str, where: str, problem: str) -> LedgerError:
        """The error for a row this version would never write (the CLI names rows it finds damaged too)."""
        return LedgerError(f"ledger {self.url} is damaged: table {table}, {printable(where)}: {printable(problem)} "
                           "(xchat-verify ledger check lists every damaged row)")

    def conversations(self) -> list[str]:
        names = [r[0] for r in self._query("SELECT name FROM conversations ORDER BY id")]
        for name in names:
            if type(name) is not str:
                raise self.damaged("conversations", f"name {name!r:.40}", "the name is not text")
        return names

    def events(self, conversation: str) -> list[EventRow]:
        cid = self._conv_id(conversation)
        if cid is None:
            return []
        rows = self._query("SELECT seq, digest, prev, message_id, sender, kind, sig_version, status, state, "
                           f"first_audit, last_audit FROM events WHERE conv = ? ORDER BY seq{self.bytewise}, digest",
                           (cid,))
        out = []
        for r in rows:
            # the usual row, checked inline (this runs for every event of every audit); else in full
            if not (type(r[0]) is str and type(r[1]) is bytes and len(r[1]) == 32 and type(r[7]) is str
                    and r[8] in (0, 1, 2) and type(r[8]) is int and type(r[9]) is int and type(r[10]) is int
                    and (r[2] is None or type(r[2]) is str) and (r[3] is None or type(r[3]) is str)
                    and (r[4] is None or type(r[4]) is str) and (r[5] is None or type(r[5]) is str)
                    and (r[6] is None or type(r[6]) is str)):
                problem = event_problem(r)
                if problem:
                    raise self.damaged("events", f"conversation {conversation}, sequence id {r[0]!r:.40}", problem)
            out.append(EventRow(conversation, r[0], bytes(r[1]), *r[2:]))
        return out

    def keys(self, user_id: str | None = None) -> list[KeyRow]:
        text = ("SELECT user_id, version, key_digest, source, signing_key, binding, first_audit, last_audit, "
                "retired_audit FROM keys")
        c = self.bytewise
        rows = self._query(text + f" WHERE user_id = ? ORDER BY version{c}, source{c}, key_digest", (user_id,)) \
            if user_id else self._query(text + f" ORDER BY user_id{c}, version{c}, source{c}, key_digest")
        for r in rows:
            problem = key_problem(r)
            if problem:
                raise self.damaged("keys", f"user {r[0]!r:.40} key version {r[1]!r:.40}", problem)
        return [KeyRow(r[0], r[1], bytes(r[2]), *r[3:]) for r in rows]

    def audits(self) -> list[AuditRow]:
        rows = self._query("SELECT id, time, tool_version, command, inputs, verdict, report_digest, events, "
                           "findings, fetched FROM audits ORDER BY id")
        for r in rows:
            problem = audit_problem(r)
            if problem:
                raise self.damaged("audits", f"audit {r[0]!r:.40}", problem)
        return [AuditRow(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7], json.loads(r[8]), r[9])
                for r in rows]

    def chains(self, conversation: str | None = None) -> list[ChainRow]:
        text = ("SELECT c.audit, v.name, c.tail, c.head, c.size, c.root, c.complete, c.fetched FROM chains c "
                "JOIN conversations v ON v.id = c.conv")
        if conversation and self._in_snapshot and self._chains_one_pass:
            # round 104: the table's key (audit, conv) leaves a conversation's rows unindexed, so each
            # call scanned every row: ledger export of 20,000 conversations took 76 s. Read once, by
            # name, in the order the query gives (by audit); a damaged row fails its conversation only.
            # Only in a snapshot (``snapshot()``, what the reading commands take): one committed state,
            # which a later run of another process cannot change under the cache.
            if self._chains_by_name is None:
                grouped: dict[Any, list[tuple]] = {}
                try:
                    for r in self._query(text + " ORDER BY c.audit, v.id"):
                        grouped.setdefault(r[1], []).append(r)
                except LedgerError:  # (``_query`` says a driver's error so)
                    # review 107: a row the driver cannot read (SQLite text that is not UTF-8) in ANOTHER
                    # conversation failed this one ("internal error: OperationalError"), which the query
                    # by name did not read: read by name again, as before round 104
                    self._chains_one_pass = False
                    return self.chains(conversation)
                self._chains_by_name = grouped
            rows = self._chains_by_name.get(conversation, [])
        else:
            rows = self._query(text + " WHERE v.name = ? ORDER BY c.audit", (conversation,)) if conversation \
                else self._query(text + " ORDER BY c.audit, v.id")
        for r in rows:
            problem = chain_problem(r)
            if problem:
                raise self.damaged("chains", f"audit {r[0]!r:.40}, conversation {r[1]!r:.40}", problem)
        return [ChainRow(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7]) for r in rows]

    # ------------------------------------------------------------------ writes (inside transaction())
    def _need_tx(self) -> None:
        if not self._in_tx:
            raise LedgerError("internal: ledger write outside a transaction")

    def audit_count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM audits")[0][0])

    def next_audit_id(self) -> int:
        newest = self._query("SELECT MAX(id) FROM audits")[0][0]
        if newest is None:
            return 1
        if type(newest) is not int or newest >= _MAX_AUDIT_ID:  # round 90: an OverflowError (internal error)
            raise self.damaged("audits", f"audit {newest!r:.40}", "the newest audit id leaves no next one")
        return newest + 1

    def insert_audit(self, audit: AuditRow) -> None:
        self._need_tx()
        self._run("INSERT INTO audits (id, time, tool_version, command, inputs, verdict, report_digest, events, "
                  "findings, fetched) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (audit.id, audit.time, audit.tool_version, audit.command, json.dumps(audit.inputs),
                   audit.verdict, audit.report_digest, audit.events, json.dumps(audit.findings, sort_keys=True),
                   audit.fetched))

    def insert_events(self, rows: list[EventRow]) -> None:
        self._need_tx()
        self._many("INSERT INTO events (conv, seq, digest, prev, message_id, sender, kind, sig_version, status, "
                   "state, first_audit, last_audit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [(self._conv_id(r.conversation, True), r.seq, r.digest, r.prev, r.message_id, r.sender, r.kind,
                     r.sig_version, r.status, r.state, r.first_audit, r.last_audit) for r in rows])

    def touch_events(self, conversation: str, audit: int, rows: list[tuple[str, bytes, str]]) -> None:
        """Events seen again: (seq, digest, status) get ``last_audit`` and are present."""
        self._need_tx()
        cid = self._conv_id(conversation, True)
        self._many("UPDATE events SET last_audit = ?, status = ?, state = 0 WHERE conv = ? AND seq = ? "
                   "AND digest = ?", [(audit, status, cid, seq, digest) for seq, digest, status in rows])

    def set_states(self, conversation: str, rows: list[tuple[str, bytes, int]]) -> None:
        self._need_tx()
        cid = self._conv_id(conversation, True)
        self._many("UPDATE events SET state = ? WHERE conv = ? AND seq = ? AND digest = ?",
                   [(state, cid, seq, digest) for seq, digest, state in rows])

    def upsert_keys(self, rows: list[KeyRow], audit: int) -> None:
        self._need_tx()
        self._many("INSERT INTO keys (user_id, version, key_digest, source, signing_key, binding, first_audit, "
                   "last_audit) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, version, key_digest, source) "
                   "DO UPDATE SET last_audit = excluded.last_audit, binding = excluded.binding, retired_audit = NULL",
                   [(r.user_id, r.version, r.key_digest, r.source, r.signing_key, r.binding, audit, audit)
                    for r in rows])

    def retire_keys(self, rows: list[KeyRow], audit: int) -> None:
        self._need_tx()
        self._many("UPDATE keys SET retired_audit = ? WHERE user_id = ? AND version = ? AND key_digest = ? "
                   "AND source = ?", [(audit, r.user_id, r.version, r.key_digest, r.source) for r in rows])

    def insert_chains(self, rows: list[ChainRow]) -> None:
        self._need_tx()
        self._many("INSERT INTO chains (audit, conv, tail, head, size, root, complete, fetched) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   [(r.audit, self._conv_id(r.conversation, True), r.tail, r.head, r.size, r.root, int(r.complete),
                     r.fetched) for r in rows])

    # ------------------------------------------------------------------ consistency
    def damaged_rows(self) -> list[str]:
        """Every row whose columns are not what this version writes (a hand edit, a foreign writer):
        the first ``MAX_PROBLEMS`` named, the rest counted."""
        found: list[str] = []
        more = 0
        c = self.bytewise  # listed in one order on every backend
        try:  # rows name their conversation as every other command does (new-user review: "conversation 1")
            names = {r[1]: r[0] for r in self._query("SELECT name, id FROM conversations")}
        except LedgerError:
            names = {}

        def conversation(conv_id: object) -> str:
            name = names.get(conv_id) if isinstance(conv_id, int) else None
            return f"conversation {name!r:.60}" if isinstance(name, str) else f"conversation row {conv_id!r:.40}"

        scans: list[tuple[str, str, Callable[[tuple], str], Callable[[tuple], str]]] = [
            ("audits", "SELECT id, time, tool_version, command, inputs, verdict, report_digest, events, findings, "
                       "fetched FROM audits ORDER BY id", audit_problem, lambda r: f"audit {r[0]!r:.40}"),
            ("events", "SELECT seq, digest, prev, message_id, sender, kind, sig_version, status, state, first_audit, "
                       f"last_audit, conv FROM events ORDER BY conv, seq{c}, digest", lambda r: event_problem(r[:11]),
             lambda r: f"{conversation(r[11])}, sequence id {r[0]!r:.40}"),
            ("keys", "SELECT user_id, version, key_digest, source, signing_key, binding, first_audit, last_audit, "
                     f"retired_audit FROM keys ORDER BY user_id{c}, version{c}, source{c}, key_digest", key_problem,
             lambda r: f"user {r[0]!r:.40} key version {r[1]!r:.40}"),
            ("chains", "SELECT audit, conv, tail, head, size, root, complete, fetched FROM chains ORDER BY audit, conv",
             chain_problem,
             lambda r: f"audit {r[0]!r:.40}, {conversation(r[1])}"),
            ("conversations", "SELECT name, id FROM conversations ORDER BY id",
             lambda r: "" if type(r[0]) is str and type(r[1]) is int else "name or id of the wrong type",
             lambda r: f"conversation row {r[1]!r:.40}"),
        ]
        for table, text, problem_of, where in scans:
            for r in self._scan(text):
                problem = problem_of(r)
                if problem:
                    if len(found) < MAX_PROBLEMS:
                        found.append(f"table {table}, {printable(where(r))}: {printable(problem)}")
                    else:
                        more += 1
        return found + ([f"{more} more damaged rows"] if more else [])

    # every key the schema declares unique (primary keys, conversations.name)
    UNIQUE_KEYS = (("ledger_meta", "name"), ("audits", "id"), ("conversations", "id"), ("conversations", "name"),
                   ("events", "conv, seq, digest"), ("keys", "user_id, version, key_digest, source"),
                   ("chains", "audit, conv"))

    def duplicate_rows(self) -> list[str]:
        """Rows that share a key the schema declares unique: the constraint was dropped (a table
        rebuilt by hand, a foreign writer) and a run, an audit's chain or a conversation is there
        twice. Round 101: ``check`` said consistent of a ledger holding audit 1 twice (ids were taken
        to be distinct, ``len`` of a dict by id), and of one naming a conversation twice, whose
        second id hides the history the first holds from every later run."""
        found = []
        for table, key in self.UNIQUE_KEYS:
            shared = self._query(f"SELECT COUNT(*), COALESCE(SUM(n), 0) FROM (SELECT COUNT(*) AS n FROM {table} "
                                 f"GROUP BY {key} HAVING COUNT(*) > 1) d")[0]
            if shared[0]:
                found.append(f"table {table}: {shared[1]} rows share {shared[0]} values of ({key}), which is "
                             "unique in a ledger (a run or row recorded twice: the constraint was removed)")
        return found

    def _orphans(self) -> list[str]:
        """Event and chain rows naming a conversation row that does not exist. Why: every command reads
        a conversation's rows by its id, so such rows are forgotten, and the next run took a rewritten
        history for a new one; ``check`` said consistent, exit 0 (r125). NOT EXISTS, not NOT IN: a
        NULL conv (its NOT NULL dropped with the table rebuilt) is in no conversation either (r130)."""
        found = []
        for table, rows in (("events", "event"), ("chains", "chain")):
            bad = self._query(f"SELECT COUNT(*) FROM {table} t WHERE NOT EXISTS "
                              "(SELECT 1 FROM conversations c WHERE c.id = t.conv)")[0][0]
            if bad:
                found.append(f"{bad} {rows} rows name a conversation the table conversations does not hold")
        return found

    def check(self) -> list[str]:
        """Consistency of what the ledger holds (what a transaction guarantees): every row is what this
        version writes, every event and key names audits that exist, every event and chain a conversation
        that exists, and the newest audit's event count is what it recorded. No two rows share a key
        the schema declares unique."""
        problems = self.duplicate_rows() + self.damaged_rows()
        if problems:
            return problems  # the rest reads rows that are not sound
        audits = {a.id: a for a in self.audits()}
        for table in ("events", "keys"):
            bad = self._query(f"SELECT COUNT(*) FROM {table} WHERE first_audit NOT IN (SELECT id FROM audits) "
                              "OR last_audit NOT IN (SELECT id FROM audits) OR first_audit > last_audit")[0][0]
            if bad:
                problems.append(f"{bad} {table} rows name audits that do not exist")
        bad = self._query("SELECT COUNT(*) FROM chains WHERE audit NOT IN (SELECT id FROM audits)")[0][0]
        if bad:
            problems.append(f"{bad} chain rows name audits that do not exist")
        problems += self._orphans()
        if audits:
            newest = max(audits)
            seen = self._query("SELECT COUNT(*) FROM events WHERE last_audit = ?", (newest,))[0][0]
            if seen != audits[newest].events:
                problems.append(f"audit {newest} recorded {audits[newest].events} events but {seen} rows say "
                                "it saw them")
            # ids are distinct (``duplicate_rows``) whole numbers from 1 (``audit_problem``): 1..newest exactly when there are
            # newest of them (round 90: a list of range(1, newest + 1) took memory in proportion to one
            # hand-edited id, "out of memory" at 2^63 - 1)
            if len(audits) != newest:
                problems.append("audit ids are not consecutive")
        return problems

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None
