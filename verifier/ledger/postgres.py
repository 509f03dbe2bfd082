"""The team backend: PostgreSQL through psycopg 3, given a ``postgresql://`` URL.

The same schema and SQL as SQLite. Writers serialise on a transaction-level advisory lock, so two
audits writing one ledger at once both commit, one after the other; connection and lock failures are
retried with backoff. psycopg is an optional dependency (``pip install 'xchat-verify[postgres]'``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from typing import Any

from ..errors import LedgerError, UsageError
from ..sanitize import printable
from .store import SqlStore

LOCK_KEY = 0x78636876_6C656467 & 0x7FFFFFFFFFFFFFFF  # "xchv" "ledg": one lock per database
CONNECT_RETRIES = 5
LOCK_TIMEOUT_MS = 300_000


# query parameters whose value is a secret (libpq's password and sslpassword, and anything named like one)
_SECRET_WORDS = ("pass", "secret", "token", "key")


def _secret_name(name: str) -> bool:
    from urllib.parse import unquote
    return any(word in unquote(name).lower() for word in _SECRET_WORDS)


def url_secrets(url: str) -> list[str]:
    """Every secret a URL carries (the password, secret query parameters), raw and percent-decoded,
    longest first: scrubbed from any text that might echo them."""
    from urllib.parse import unquote
    found: set[str] = set()
    rest = url.split("://", 1)[-1]
    netloc, _, tail = rest.partition("/")
    userinfo, at, _host = netloc.rpartition("@")
    if at and ":" in userinfo:
        found.add(userinfo.split(":", 1)[1])
    query = url.partition("?")[2].partition("#")[0]
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if eq and _secret_name(name):
            found.add(value)
    found |= {unquote(v) for v in found}
    return sorted((v for v in found if v), key=len, reverse=True)


def redact(url: str) -> str:
    """The URL without its password or any secret query parameter (``password``, ``sslpassword``,
    anything named like a password, secret, token or key), for messages. Never raises: a URL that
    cannot be parsed is shown as its scheme alone."""
    from urllib.parse import urlsplit, urlunsplit
    try:
        parts = urlsplit(url)
        _ = parts.port  # a bad port raises here
    except ValueError:
        return url.split("://", 1)[0] + "://(unparseable URL)"
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    query = "&".join(f"{name}=***" if eq and _secret_name(name) else name + eq + value
                     for name, eq, value in (p.partition("=") for p in parts.query.split("&")) ) \
        if parts.query else ""
    return urlunsplit(parts._replace(netloc=netloc, query=query, fragment=""))


def scrub(text: str, url: str) -> str:
    """``text`` with every secret of ``url`` replaced by ``***``."""
    for secret in url_secrets(url):
        text = text.replace(secret, "***")
    return text


def check_url(url: str) -> None:
    """A ``postgresql://`` URL that can be used, else a ``UsageError`` (exit 2) that shows no secret."""
    from urllib.parse import urlsplit
    try:
        parts = urlsplit(url)
        _ = parts.port
        _ = parts.hostname
    except ValueError as exc:
        raise UsageError(f"--ledger: not a valid postgresql:// URL ({scrub(str(exc), url)}): "
                         f"{printable(redact(url))}") from None


class PostgresStore(SqlStore):
    dialect = "postgres"
    bytewise = ' COLLATE "C"'
    placeholder = "%s"

    def __init__(self, url: str, *, create: bool = True) -> None:
        super().__init__()
        check_url(url)
        self._secrets = url_secrets(url)
        self.url = printable(redact(url))
        try:
            import psycopg
        except ImportError:
            # a missing extra is a usage error, as archive verify without Dask is (docs/cli.md; r109)
            raise UsageError("a postgresql:// ledger needs psycopg 3: pip install 'xchat-verify[postgres]'") from None
        self._psycopg = psycopg
        self._target = url
        self._connect()
        try:
            self._ensure_schema(create)
        except BaseException:
            self.close()
            raise

    def _connect(self) -> None:
        """A connection, retried with backoff; ``lock_timeout`` set on it."""
        psycopg = self._psycopg
        last: Exception | None = None
        for attempt in range(CONNECT_RETRIES):
            try:
                self.conn = psycopg.connect(self._target, autocommit=False, connect_timeout=10)
                break
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(min(5.0, 0.1 * 2 ** attempt) * (0.5 + random.random()))
            except psycopg.ProgrammingError as exc:  # libpq refused the URL itself: a usage error
                raise UsageError(f"--ledger: not a valid postgresql:// URL ({self._ledger_error(exc)})") from None
            except psycopg.Error as exc:
                raise self._ledger_error(exc) from None
        else:
            raise self._ledger_error(last or Exception("cannot connect"))
        try:
            self._run("SET lock_timeout = %d" % LOCK_TIMEOUT_MS)
            self.conn.commit()
        except BaseException:
            self.close()
            raise

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (self._psycopg.Error,)

    def _tables(self) -> set[str]:
        rows = self._query("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        return {r[0] for r in rows}

    def _run(self, text: str, params: Iterable[Any] = (), *, raw: bool = False) -> Any:
        return super()._run(text, [_escape(value) for value in params], raw=raw)

    def _many(self, text: str, rows: list[tuple]) -> None:
        super()._many(text, [tuple(_escape(value) for value in row) for row in rows])

    def _query(self, text: str, params: Iterable[Any] = ()) -> list[tuple]:
        rows = [_unescape_row(row) for row in super()._query(text, params)]
        if not self._in_tx and not self._in_snapshot:  # reads outside a write transaction or snapshot()
            # must not hold a snapshot open
            self.conn.commit()
        return rows

    def _scan(self, text: str) -> Iterator[tuple]:
        for row in super()._scan(text):
            yield _unescape_row(row)

    def _begin_snapshot(self) -> None:
        self.conn.rollback()
        self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    def _begin(self) -> None:
        """A transaction holding the ledger's advisory lock: writers run one at a time. A connection
        the server dropped since it was opened (a restart, an idle timeout: it sat idle while the
        run verified or fetched, minutes to hours) is opened again, as the first connect is: no
        transaction was open on it, so nothing is lost, and the run is judged against what the
        ledger holds once the lock is taken (round 101: the run ended with exit 3 and was not
        recorded, though the server was back)."""
        for attempt in range(2):
            try:
                self.conn.rollback()
                cur = self.conn.cursor()
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                return
            except self._psycopg.OperationalError as exc:
                if attempt == 0 and (self.conn.closed or self.conn.broken):
                    self.close()
                    self._connect()
                    continue
                self._rollback()
                raise self._ledger_error(exc) from None
            except self._psycopg.Error as exc:
                self._rollback()
                raise self._ledger_error(exc) from None

    def _ledger_error(self, exc: BaseException) -> LedgerError:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        for secret in getattr(self, "_secrets", ()):
            text = text.replace(secret, "***")
        return LedgerError(f"ledger {self.url}: {printable(text)}")


# PostgreSQL text cannot hold NUL, and ids come from the server (sequence ids are not even signed):
# one NUL in an id ended every `audit --ledger postgresql://` of that conversation with no report
# (review). Text holding NUL or ESC is stored escaped: ESC, then the text with ESC doubled and NUL as
# ESC "0". Stored text that begins with ESC is always such an escape (raw text holding ESC is always
# escaped), so reading it back is exact, and what SQLite holds as is comes back the same from here.
_ESC = "\x1b"


def _escape(value: Any) -> Any:
    if type(value) is str and ("\x00" in value or _ESC in value):
        return _ESC + value.replace(_ESC, _ESC + _ESC).replace("\x00", _ESC + "0")
    return value


def _unescape(text: str) -> str:
    out, at = [], 1
    while at < len(text):
        char = text[at]
        if char == _ESC and at + 1 < len(text):
            out.append("\x00" if text[at + 1] == "0" else text[at + 1])
            at += 2
        else:
            out.append(char)
            at += 1
    return "".join(out)


def _unescape_row(row: tuple) -> tuple:
    if any(type(value) is str and value[:1] == _ESC for value in row):
        return tuple(_unescape(value) if type(value) is str and value[:1] == _ESC else value for value in row)
    return row
