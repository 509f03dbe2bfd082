"""The team backend: PostgreSQL through psycopg 3, given a ``postgresql://`` URL.

The same schema and SQL as SQLite. Writers serialise on a transaction-level advisory lock, so two
audits writing one ledger at once both commit, one after the other; connection and lock failures are
retried with backoff. psycopg is an optional dependency (``pip install 'xchat-verify[postgres]'``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from typing import Any

from ..errors import LedgerError
from ..sanitize import printable
from .store import SqlStore

LOCK_KEY = 0x78636876_6C656467 & 0x7FFFFFFFFFFFFFFF  # "xchv" "ledg": one lock per database
CONNECT_RETRIES = 5
LOCK_TIMEOUT_MS = 300_000


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresStore(SqlStore):
    dialect = "postgres"
    placeholder = "%s"

    def __init__(self, url: str, *, create: bool = True) -> None:
        super().__init__()
        self.url = printable(redact(url))
        try:
            import psycopg
        except ImportError:
            raise LedgerError("a postgresql:// ledger needs psycopg 3: pip install 'xchat-verify[postgres]'") from None
        self._psycopg = psycopg
        last: Exception | None = None
        for attempt in range(CONNECT_RETRIES):
            try:
                self.conn = psycopg.connect(url, autocommit=False, connect_timeout=10)
                break
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(min(5.0, 0.1 * 2 ** attempt) * (0.5 + random.random()))
            except psycopg.Error as exc:
                raise self._ledger_error(exc) from None
        else:
            raise self._ledger_error(last or Exception("cannot connect"))
        try:
            self._run("SET lock_timeout = %d" % LOCK_TIMEOUT_MS)
            self.conn.commit()
            self._ensure_schema(create)
        except BaseException:
            self.close()
            raise

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (self._psycopg.Error,)

    def _tables(self) -> set[str]:
        rows = self._query("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        return {r[0] for r in rows}

    def _query(self, text: str, params: Iterable[Any] = ()) -> list[tuple]:
        rows = super()._query(text, params)
        if not self._in_tx:  # reads outside a write transaction must not hold a snapshot open
            self.conn.commit()
        return rows

    def _begin(self) -> None:
        """A transaction holding the ledger's advisory lock: writers run one at a time."""
        try:
            self.conn.rollback()
            cur = self.conn.cursor()
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        except self._psycopg.Error as exc:
            self._rollback()
            raise self._ledger_error(exc) from None

    def _ledger_error(self, exc: BaseException) -> LedgerError:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return LedgerError(f"ledger {self.url}: {printable(text)}")
