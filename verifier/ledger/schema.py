"""The ledger's one schema, versioned, for both backends; migrations go from each version to the next.

A ledger is recognised by its ``ledger_meta`` row ``format = xchat-verify-ledger``; the schema version
is the ``schema_version`` row. A database with tables but no such row is foreign and refused; one of a
newer version is refused (it would be misread). Each migration runs in the transaction that bumps the
version, so a ledger is always at one version.
"""

from __future__ import annotations

FORMAT = "xchat-verify-ledger"
SCHEMA_VERSION = 3

# Types spelled per backend: BLOB/BYTEA, and SQLite's WITHOUT ROWID for the big table (its primary key
# is the storage order: no second copy of the key in an index).
_TYPES = {
    "sqlite": {"BLOB": "BLOB", "BIGINT": "INTEGER", "NOROWID": " WITHOUT ROWID"},
    "postgres": {"BLOB": "BYTEA", "BIGINT": "BIGINT", "NOROWID": ""},
}

# version -> statements that take a ledger from version-1 to version. Version 1 is the first schema.
_MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE ledger_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        # one row per audit (or recorded verify): what was asked, what was found
        """CREATE TABLE audits (
            id {BIGINT} PRIMARY KEY, time TEXT NOT NULL, tool_version TEXT NOT NULL, command TEXT NOT NULL,
            inputs TEXT NOT NULL, verdict TEXT NOT NULL, report_digest TEXT NOT NULL,
            events {BIGINT} NOT NULL, findings TEXT NOT NULL)""",
        "CREATE TABLE conversations (id {BIGINT} PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
        # every version of every event seen: (conversation, sequence id, digest of the encoded event)
        """CREATE TABLE events (
            conv {BIGINT} NOT NULL, seq TEXT NOT NULL, digest {BLOB} NOT NULL, prev TEXT, message_id TEXT,
            sender TEXT, kind TEXT, sig_version TEXT, status TEXT NOT NULL, state {BIGINT} NOT NULL,
            first_audit {BIGINT} NOT NULL, last_audit {BIGINT} NOT NULL,
            PRIMARY KEY (conv, seq, digest)){NOROWID}""",
        # every signing key seen per (user, version) and source (directory, keyring, evidence, events)
        """CREATE TABLE keys (
            user_id TEXT NOT NULL, version TEXT NOT NULL, key_digest {BLOB} NOT NULL, source TEXT NOT NULL,
            signing_key TEXT NOT NULL, binding TEXT NOT NULL, first_audit {BIGINT} NOT NULL,
            last_audit {BIGINT} NOT NULL, PRIMARY KEY (user_id, version, key_digest, source))""",
        # per audit and conversation: the chain's tail and head as fetched, and the transcript then
        """CREATE TABLE chains (
            audit {BIGINT} NOT NULL, conv {BIGINT} NOT NULL, tail TEXT, head TEXT, size {BIGINT} NOT NULL,
            root TEXT NOT NULL, complete {BIGINT} NOT NULL, PRIMARY KEY (audit, conv))""",
    ],
    # 2: a retired key is reported once (key_retired), not at every later audit
    2: ["ALTER TABLE keys ADD COLUMN retired_audit {BIGINT}"],
    # 3: when the run's pages were fetched (the earliest page; NULL: unknown), and each conversation's,
    # for the head rule of `ledger compare`: `time` is when the run was recorded, which for `verify`
    # of saved evidence or an `audit --resume` is long after its pages were fetched
    3: ["ALTER TABLE audits ADD COLUMN fetched TEXT", "ALTER TABLE chains ADD COLUMN fetched TEXT"],
}


def migrations(dialect: str, from_version: int) -> list[tuple[int, list[str]]]:
    """(version, statements) to apply after ``from_version``, in order."""
    types = _TYPES[dialect]
    return [(version, [s.format(**types) for s in _MIGRATIONS[version]])
            for version in range(from_version + 1, SCHEMA_VERSION + 1)]


TABLES = ("ledger_meta", "audits", "conversations", "events", "keys", "chains")
