"""The audit ledger: what earlier audits saw, so a later one can tell when the server changed it.

``open_ledger(path_or_url)`` gives a ``LedgerStore``: SQLite for a file path, PostgreSQL for a
``postgresql://`` URL (psycopg 3). ``record_audit`` judges a report against the ledger and records it
in one transaction; ``fallback_entries`` are the keys the ledger keeps for slots the directory no
longer serves; ``transcript`` has the checkpoints and the split-view comparison. docs/ledger.md.

May import the core (engine, keys, model, errors), never cli or report.
"""

from __future__ import annotations

import os

from .record import Recorded, fallback_entries, finding_counts, record_audit, report_digest
from .store import DELETED, PRESENT, VANISHED, AuditRow, ChainRow, EventRow, KeyRow, LedgerStore
from .transcript import Checkpoint, Comparison, Transcript, compare_checkpoints, compare_entries, parse_checkpoint

ENV = "XCHAT_VERIFY_LEDGER"


def is_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def open_ledger(target: str | os.PathLike[str], *, create: bool = True) -> LedgerStore:
    """A store for ``target``: a ``postgresql://`` URL, else an SQLite file path. Raises
    ``LedgerError`` for a ledger that cannot be used (never recreates one). A path may be any
    ``os.PathLike``."""
    target = os.fspath(target)
    if is_url(target):
        from .postgres import PostgresStore
        return PostgresStore(target, create=create)
    from .sqlite import SQLiteStore
    return SQLiteStore(target, create=create)


def ledger_transcript(store: LedgerStore, conversation: str) -> Transcript:
    """The conversation as the ledger last saw it: per sequence id the version seen most recently,
    without events a verified signed delete removed."""
    latest: dict[str, EventRow] = {}
    for row in store.events(conversation):
        if row.state == DELETED:
            continue
        if row.seq not in latest or row.last_audit > latest[row.seq].last_audit:
            latest[row.seq] = row
    return Transcript.build(conversation, [(r.seq, r.digest) for r in latest.values()])


__all__ = ["ENV", "open_ledger", "is_url", "LedgerStore", "record_audit", "Recorded", "fallback_entries",
           "finding_counts", "report_digest", "ledger_transcript", "Transcript", "compare_checkpoints",
           "compare_entries", "Checkpoint", "Comparison", "parse_checkpoint",
           "AuditRow", "ChainRow", "EventRow", "KeyRow", "PRESENT", "VANISHED", "DELETED"]
