"""Saved evidence of an audit: raw bodies byte for byte, key responses and a manifest.

Every body is written to a temporary name and renamed; then one line describing it is appended
(and fsynced) to ``manifest.journal``. ``manifest.json`` is a snapshot rewritten only when a run
starts and ends, so writing evidence costs a constant amount per page instead of a full manifest
rewrite each time (which grew with the square of the page count). An interrupted run leaves the
last snapshot plus the journal lines after it: reading replays them, ignoring a torn last line, so
the directory is always consistent for ``--resume`` and ``xchat-verify verify DIR``.

Nothing read back is trusted: conversation ids, path ids and every file name are checked against
the names the writer uses and confined to the directory (symlinks included), before any file is
read or written.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import msgspec

from ._version import __version__
from .apibodies import token_at_path
from .clock import utc_now_iso
from .engine import PageInput
from .errors import EvidenceError, ManifestError
from .ids import canonical_conversation, is_bare
from .inputs import DEFAULT_MAX_FILE_MB, read_at_most, read_regular_file
from .manifest import (
    KEYRING,
    READABLE_SCHEMAS,
    SCHEMA,
    AddPage,
    Conversation,
    FileEntry,
    FinishConversation,
    KeysEntry,
    Manifest,
    PageEntry,
    Record,
    ResetKeys,
    SetExpected,
    SetKeys,
    SetMetadata,
    SetUsersNotFetched,
    StartConversation,
    TokenLocation,
    TokenSeen,
    UsersNotFetched,
    apply,
    apply_all,
    check_applicable,
    decode_record,
    encode_manifest,
    encode_record,
    keys_name,
    metadata_name,
    page_name,
    stamp,
    validate,
)
from .outputs import atomic_write, write_fully
from .sanitize import printable

if TYPE_CHECKING:
    from .fetch import FetchedBody

MANIFEST = "manifest.json"
JOURNAL = "manifest.journal"
__all__ = ["MANIFEST", "JOURNAL", "KEYRING", "SCHEMA", "READABLE_SCHEMAS", "EvidenceStore", "SavedAudit",
           "SavedConversation", "load_saved_audit", "existing_evidence", "confined", "page_name", "metadata_name",
           "keys_name", "sha256"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def confined(root: Path, name: str) -> Path:
    """``root/name``, refused (``EvidenceError``) if it resolves outside ``root`` (``..``, an
    absolute name, or a symlink anywhere on the way)."""
    base = root.resolve()
    path = (root / name).resolve()
    if path != base and base not in path.parents:
        raise EvidenceError(f"{printable(name)} lies outside the evidence directory {printable(root)}")
    return path


# ------------------------------------------------------------------------------------- journal
MAX_CONTROL_BYTES = 256 * 1024 * 1024  # manifest.json or manifest.journal: far above any real one


def _read_control_file(path: Path) -> bytes:
    """``manifest.json`` or ``manifest.journal``: a regular file in the directory itself (no symlink),
    read without blocking and bounded (review: a FIFO there hung `verify DIR` and `--resume`, a link
    to /dev/zero filled memory). A directory that cannot be searched is an ``EvidenceError``."""
    try:
        link = path.is_symlink()
    except OSError as exc:
        raise EvidenceError(f"cannot read {path}: {exc.strerror or exc}") from None
    if link:
        raise EvidenceError(f"cannot read {path}: a symbolic link (evidence files are regular files)")
    return read_regular_file(path, MAX_CONTROL_BYTES, str(path), EvidenceError)


def control_file_digest(path: Path) -> str:
    """SHA-256 of ``manifest.json`` read as ``verify DIR`` reads it: bounded, no link, no FIFO
    (review 62: `receipt verify --evidence` hashed a 4 GiB sparse manifest for seconds, and would
    for hours at 1 TiB). Raises ``EvidenceError``."""
    return hashlib.sha256(_read_control_file(path)).hexdigest()


def _read_journal(path: Path, journal_id: str, after: int) -> list[Record]:
    """Journal records of this snapshot newer than it; a torn last line (a crash mid-append) is
    dropped, any other bad line makes the directory unusable."""
    if not path.exists() and not path.is_symlink():
        return []
    lines = _read_control_file(path).split(b"\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            journal, seq = stamp(line)
        except msgspec.ValidationError:
            continue  # JSON, but not a record of any journal
        except (msgspec.DecodeError, RecursionError):
            if number == len(lines):  # the last line has no newline: torn write
                break
            raise EvidenceError(f"{path} line {number} is not JSON (altered evidence)") from None
        if journal != journal_id or not isinstance(seq, int) or isinstance(seq, bool) or seq <= after:
            continue  # a journal left over from an earlier run of this directory, or folded in already
        try:
            records.append(decode_record(line))
        except msgspec.ValidationError as exc:
            raise ManifestError(f"{path} line {number} is malformed: {printable(exc)}") from None
    return records


EVIDENCE_ENTRIES = (MANIFEST, JOURNAL, KEYRING, "conversations", "keys")  # what an audit writes in DIR


def existing_evidence(root: Path) -> list[Path]:
    """The entries of ``root`` an audit writes (manifest, journal, keyring, conversations, keys)."""
    return [root / name for name in EVIDENCE_ENTRIES if (root / name).exists() or (root / name).is_symlink()]


def holds_evidence_manifest(root: Path) -> bool:
    """Whether ``root/manifest.json`` is a regular file that reads as an evidence manifest (a JSON
    object whose schema is xchat-verify's evidence). Why: ``audit --save DIR --force`` deletes what
    an audit writes in DIR only when an audit wrote it, and a file merely named manifest.json (a web
    app's, a package's) beside a ``keys/`` folder is no sign of that (r130)."""
    try:
        raw = msgspec.json.decode(_read_control_file(root / MANIFEST))
    except (EvidenceError, msgspec.DecodeError, RecursionError):
        return False
    schema = raw.get("schema") if isinstance(raw, dict) else None
    return isinstance(schema, str) and schema.startswith(_SCHEMA_FAMILY)


_SCHEMA_FAMILY = "xchat-verify/evidence/"  # every version's (a newer tool's evidence is evidence too)
MAX_SAVED_FILE_BYTES = DEFAULT_MAX_FILE_MB * 1024 * 1024  # what verify refuses for any input file


def _check_saved_size(path: Path, size: int, entry: FileEntry | KeysEntry) -> None:
    """A saved file is read only at the size the manifest recorded (and never above the input cap),
    so a swapped or padded file costs nothing to refuse."""
    if size > MAX_SAVED_FILE_BYTES:
        raise EvidenceError(f"{path} is {size} bytes, more than the {DEFAULT_MAX_FILE_MB} MB a saved file may be")
    recorded = getattr(entry, "bytes", 0)
    if recorded and size != recorded:
        raise EvidenceError(f"{path} is {size} bytes, the manifest recorded {recorded} (altered evidence)")


class EvidenceStore:
    """Thread-safe writer (and reader, for resume and offline verify) of an evidence directory."""

    def __init__(self, root: str | Path, base_url: str = "") -> None:
        self.root = Path(root)
        self.lock = threading.Lock()
        now = utc_now_iso()
        self.manifest = Manifest(tool=f"xchat-verify {__version__}", base_url=base_url, created_at=now,
                                 updated_at=now, journal=secrets.token_hex(8))
        self._journal: BinaryIO | None = None  # opened by the first write (a snapshot first), closed by close()
        self.unfolded = 0  # journal records read on top of the snapshot (a run ends by folding them in)
        self.manifest_digest = ""  # SHA-256 of the manifest.json bytes open() read (what a receipt signs)
        self._keyring_dropped = False  # this run's first page or metadata removed an earlier run's keyring.json
        self._journal_uncut = False  # a failed line could not be cut from the journal: close() supersedes it

    # ------------------------------------------------------------------ reading
    @classmethod
    def open(cls, root: str | Path) -> "EvidenceStore":
        """The directory as last written (snapshot plus journal), validated; nothing written yet."""
        store = cls(root)
        path = store.root / MANIFEST
        data = _read_control_file(path)
        store.manifest_digest = hashlib.sha256(data).hexdigest()
        try:
            raw = msgspec.json.decode(data)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise EvidenceError(f"{path} is not JSON: {exc}") from None
        if not isinstance(raw, dict) or raw.get("schema") not in READABLE_SCHEMAS:
            raise EvidenceError(f"{path} is not an xchat-verify evidence manifest")
        try:
            manifest = msgspec.convert(raw, Manifest)
            records = _read_journal(store.root / JOURNAL, manifest.journal, manifest.journal_seq)
            apply_all(manifest, records)
            if records:
                manifest.journal_seq = records[-1].seq
            store.unfolded = len(records)
            validate(manifest)
        except (msgspec.ValidationError, ManifestError) as exc:
            raise ManifestError(f"{path} is malformed ({printable(exc)})") from None
        store.manifest = manifest
        return store

    def resume(self) -> None:
        """Write to an opened directory from now on. The first write folds the journal it had into a
        fresh snapshot (a new journal id), so new lines never follow a torn one."""
        self.manifest.schema = SCHEMA

    def path_of(self, name: str) -> Path:
        return confined(self.root, name)

    def read_file(self, entry: FileEntry | KeysEntry) -> bytes:
        """A saved file, checked against the SHA-256 the manifest recorded."""
        if entry.file is None:
            raise EvidenceError("the manifest names no file here")
        path = self.path_of(entry.file)
        try:  # opened without blocking and read only if regular: a FIFO would hang the run (or a worker)
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    raise EvidenceError(f"cannot read {path}: not a regular file")
                _check_saved_size(path, info.st_size, entry)
                with os.fdopen(os.dup(fd), "rb") as handle:
                    data = read_at_most(handle, MAX_SAVED_FILE_BYTES + 1)  # bounded even if the file grows
                _check_saved_size(path, len(data), entry)
            finally:
                os.close(fd)
        except OSError as exc:
            raise EvidenceError(f"cannot read {path}: {exc.strerror or exc}") from None
        if sha256(data) != entry.sha256:
            raise EvidenceError(f"{path} does not match the SHA-256 in the manifest (altered evidence)")
        return data

    def conversation(self, conversation_id: str) -> Conversation | None:
        return self.manifest.conversation(conversation_id)

    def page_inputs(self, conv: Conversation) -> Iterator[PageInput]:
        """The saved pages, read (and SHA-256 checked) one at a time."""
        for page in conv.pages:
            yield PageInput(str(self.root / page.file), self.read_file(page), conv.expected_conversation_id)

    def keyring_bodies(self) -> dict[str, bytes]:
        """``{user_id: raw public_keys body}``: the keys exactly as the audit received them."""
        return {e.user_id: self.read_file(e) for e in self.manifest.keys if e.file}

    # ------------------------------------------------------------------ writing
    def start_conversation(self, conversation_id: str, path_id: str) -> Conversation:
        self._record(StartConversation(conversation_id=conversation_id, path_id=path_id))
        conv = self.conversation(conversation_id)
        assert conv is not None  # the record just added it
        return conv

    def _store(self, name: str, fetched: FetchedBody) -> dict[str, Any]:
        """Write a response body byte for byte; the fields of the manifest entry that describes it."""
        # (its directory is synced by the journal's record of it: the fsync of that record commits
        # this rename too on a journaling file system; elsewhere a page lost to a crash is an input
        # error of ``verify DIR``, never a PASS; one directory sync a page would slow long audits)
        atomic_write(self.path_of(name), fetched.body, in_place=False, sync_directory=False)
        return {"file": name, "url": fetched.url, "fetched_at": fetched.fetched_at,
                "sha256": sha256(fetched.body), "bytes": len(fetched.body)}

    def _drop_keyring(self) -> None:
        """Before this run's first page or metadata: an earlier run's ``keyring.json`` is removed, the
        mark of a key phase that ended for the pages then saved. Why: a ``--resume`` killed after it
        saved pages, before its key phase, left it beside pages it does not cover, and ``verify DIR``
        read it as all the keys there were — an older page's signer the earlier run never saw (a member
        who left) ``unknown_key``, exit 1, not "keys not fetched", exit 3 (round 95: round 87's defect,
        fixed in ``reset_keys`` for a kill inside the key phase only). The key phase writes it again."""
        if not self._keyring_dropped:
            (self.root / KEYRING).unlink(missing_ok=True)  # the entry itself, never what a link names
            self._keyring_dropped = True

    def save_page(self, conv: Conversation, fetched: FetchedBody, next_token: str | None,
                  token_at: list[TokenLocation] | None = None) -> str:
        self._drop_keyring()
        name = page_name(conv.path_id, len(conv.pages) + 1)
        entry = PageEntry(**self._store(name, fetched), next_token=next_token, token_at=token_at or [])
        self._record(AddPage(conversation_id=conv.conversation_id, entry=entry))
        return str(self.root / name)

    def note_token(self, conv: Conversation, index: int, token_at: list[TokenLocation]) -> None:
        """A saved page (replayed by --resume) holds the access token at these offsets."""
        if token_at and conv.pages[index].token_at != token_at:
            self._record(TokenSeen(conversation_id=conv.conversation_id, index=index, token_at=token_at))

    def save_metadata(self, conv: Conversation, fetched: FetchedBody, token_at: list[TokenLocation] | None = None) -> None:
        self._drop_keyring()
        entry = FileEntry(**self._store(metadata_name(conv.path_id), fetched), token_at=token_at or [])
        self._record(SetMetadata(conversation_id=conv.conversation_id, entry=entry))

    def finish_conversation(self, conv: Conversation, error: str | None, incomplete: list[str] | None = None) -> None:
        reasons = list(incomplete or [])
        if error and not reasons:
            reasons = [f"fetch failed: {error}"]
        self._record(FinishConversation(conversation_id=conv.conversation_id, error=error, incomplete=reasons))

    def set_expected(self, conv: Conversation, expected: str | None) -> None:
        self._record(SetExpected(conversation_id=conv.conversation_id, expected=expected))

    def save_keys(self, user_id: str, fetched: FetchedBody | None, error: str | None = None,
                  token_at: list[TokenLocation] | None = None) -> None:
        entry = KeysEntry(user_id=user_id, error=error)
        if fetched is not None:
            entry = KeysEntry(user_id=user_id, error=error, token_at=token_at or [],
                              **self._store(keys_name(user_id), fetched))
        self._record(SetKeys(entry=entry))

    def reset_keys(self) -> None:
        """A run fetches the keys anew: entries of an earlier run of this directory are dropped, and
        its ``keyring.json`` first, the mark of a key phase that ended (written again when this one
        does): a ``--resume`` killed in its key phase left the earlier run's, and ``verify DIR`` read
        the keys it had saved so far as all there were (round 87: every signature ``unknown_key``,
        exit 1, instead of "keys not fetched", exit 3, as for a first run stopped there)."""
        (self.root / KEYRING).unlink(missing_ok=True)  # the entry itself, never what a link names
        if self.manifest.keys:
            self._record(ResetKeys())

    def token_files(self) -> list[str]:
        """Saved bodies in which the access token was found (see ``XChatClient.token_offsets``)."""
        return [e.file for e in self.manifest.saved_files() if e.token_at and e.file]

    def set_users_not_fetched(self, state: UsersNotFetched | None) -> None:
        if state == self.manifest.users_not_fetched:
            return
        self._record(SetUsersNotFetched(users_not_fetched=state))

    def save_keyring(self, text: str) -> None:
        atomic_write(self.path_of(KEYRING), text.encode(), in_place=False)

    def close(self) -> None:
        """Fold the journal into the snapshot (the end of a run, finished or not)."""
        with self.lock:
            if self._journal is None and self._journal_uncut:
                self._start_journal()  # a new journal id: the failed line left in the old one applies no more
            if self._journal is not None:
                self._snapshot()
                self._journal.close()
                self._journal = None
                self.path_of(JOURNAL).unlink(missing_ok=True)

    def _record(self, record: Record) -> None:
        with self.lock:
            if self._journal is None:
                self._start_journal()
            check_applicable(self.manifest, record)
            seq = self.manifest.journal_seq + 1
            record.journal, record.seq = self.manifest.journal, seq
            journal = self._journal
            assert journal is not None  # started above
            offset = journal.tell()  # the journal's end: unbuffered, every earlier line is in the file
            try:
                write_fully(journal, encode_record(record) + b"\n")
                os.fsync(journal.fileno())
            except OSError:
                self._abandon_journal(offset)
                if isinstance(record, ResetKeys):
                    # a reset only takes away: the next snapshot must not bring back the earlier run's
                    # keys, which this run's audit did not use (review 96: a user it did not fetch kept
                    # them, and verify DIR checked that user's events with them)
                    apply(self.manifest, record)
                raise
            # applied once on disk: a record whose line could not be written (a full disk, a size
            # limit) is not in the manifest either, so the directory says what this run's caller was
            # told was saved (round 87: applied first, the snapshot at close held a page the audit had
            # dropped, and verify DIR read one page more than the audit reported)
            apply(self.manifest, record)
            self.manifest.journal_seq = seq

    def _abandon_journal(self, offset: int) -> None:
        """(Lock held.) After a failed append: the journal is cut back to ``offset``, the end of its
        last good line, so no reader applies the record the caller was told failed — written whole
        but not fsynced (an I/O error, a quota or full disk reported at fsync), or torn (review 96: the
        whole line stayed, and verify DIR and --resume read the page the audit had dropped); the next
        record starts a fresh snapshot, so no line ever follows a torn one. If the cut fails, close()
        writes that snapshot, whose new journal id makes the old lines apply no more."""
        journal, self._journal = self._journal, None
        if journal is None:
            return
        try:
            os.ftruncate(journal.fileno(), offset)  # shrinking needs no space and passes any size limit
        except OSError:
            self._journal_uncut = True
        finally:
            try:
                journal.close()  # unbuffered: nothing of the line is written later
            except OSError:
                pass

    def _start_journal(self) -> None:
        """(Lock held.) A new journal id, so lines of any older journal no longer apply, and a snapshot."""
        self.manifest.journal = secrets.token_hex(8)
        self.manifest.journal_seq = 0
        self._snapshot()

    def _snapshot(self) -> None:
        """Write ``manifest.json`` atomically, then start an empty journal after it."""
        self.manifest.updated_at = utc_now_iso()
        atomic_write(self.path_of(MANIFEST), encode_manifest(self.manifest), in_place=False)
        if self._journal is not None:
            self._journal.close()
        journal = self.path_of(JOURNAL)
        if journal.is_symlink() or (journal.exists() and not journal.is_file()):
            journal.unlink()  # a planted FIFO, device or link: replaced, never written through (review)
        # truncates: every line is in the snapshot now; O_NOFOLLOW: a link planted meanwhile is refused
        fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o666)
        self._journal = os.fdopen(fd, "wb", buffering=0)  # unbuffered: a failed line is never flushed later
        self._journal_uncut = False


# ------------------------------------------------------------------------------------- offline
@dataclass
class SavedConversation:
    named: str  # as the audit was asked for it
    expected: str | None  # its canonical id, if known
    pages: Iterator[tuple[int, PageInput, PageEntry]]  # read lazily, SHA-256 checked: (number, page, entry)
    incomplete: list[str]  # the reasons the audit recorded ([] when it claimed completeness)
    error: str | None
    metadata: bytes | None
    entries: list[PageEntry] = field(default_factory=list)  # its pages' manifest entries (validated), in order


@dataclass
class SavedAudit:
    conversations: list[SavedConversation]
    keyring_bodies: dict[str, bytes]
    key_errors: list[tuple[str, str]]  # (source, message) for users whose keys could not be fetched
    users_not_fetched: UsersNotFetched | None
    token_files: list[str] = field(default_factory=list)  # filled while the pages are read
    secrets: set[str] = field(default_factory=set)  # the token, recovered from the saved offsets
    # (source, message) for every saved file that is missing or altered: the rest is still verified
    file_errors: list[tuple[str, str]] = field(default_factory=list)
    keys_fetched: bool = True  # False when the audit stopped before its key phase ended
    manifest_digest: str = ""  # SHA-256 of the manifest.json read, against which every file was checked
    unfolded: int = 0  # journal records read on top of it
    base_url: str = ""  # the API the audit fetched from (its keys are that server's word)

    def earliest_fetch(self) -> str | None:
        """When the audit fetched its first page: the earliest ``fetched_at`` of the saved pages (None
        when there is none, or one cannot be read)."""
        from .clock import earliest_utc
        return earliest_utc(entry.fetched_at for conv in self.conversations for entry in conv.entries)


def _expected(conv: Conversation) -> str | None:
    """The canonical id the conversation's events must carry. A full id (``A-B``, ``g...``) names it
    itself, as the audit held it: evidence saved before round 106 recorded it only when the metadata
    route answered, and ``verify DIR`` then passed another conversation served for it."""
    if conv.expected_conversation_id or is_bare(conv.conversation_id.strip()):
        return conv.expected_conversation_id
    return canonical_conversation(conv.conversation_id)


def load_saved_audit(root: str | Path) -> SavedAudit:
    """Everything ``verify DIR`` needs to reproduce the audit's report offline (``EvidenceError``,
    ``ManifestError`` when the directory cannot be used)."""
    store = EvidenceStore.open(root)
    saved = SavedAudit([], {}, [], store.manifest.users_not_fetched)
    saved.keys_fetched = store.path_of(KEYRING).is_file()  # written when the key phase ends
    saved.manifest_digest, saved.unfolded = store.manifest_digest, store.unfolded
    saved.base_url = store.manifest.base_url
    for conv in store.manifest.conversations:
        metadata = None
        if conv.metadata is not None:
            metadata = read_or_note(store, conv.metadata, saved, f"metadata {conv.conversation_id}")
            if metadata is not None:
                collect_secrets(saved, conv.metadata, metadata)
        expected = _expected(conv)
        saved.conversations.append(SavedConversation(
            conv.conversation_id, expected, _pages(store, conv, saved, expected),
            list(conv.incomplete), conv.error, metadata, list(conv.pages)))
    for entry in store.manifest.keys:
        if entry.error:
            saved.key_errors.append((f"keys {entry.user_id}", entry.error))
        if entry.file:
            body = read_or_note(store, entry, saved, f"keys {entry.user_id}",
                                 "this user's keys were not used: resume the audit or pass --keys")
            if body is not None:
                saved.keyring_bodies[entry.user_id] = body
                collect_secrets(saved, entry, body)
    return saved


class SavedNotes(Protocol):
    """Where reading saved files leaves its notes: ``SavedAudit`` here, a task's facts in
    ``verifier.archive`` (which reads the same pages on its workers)."""

    file_errors: list[tuple[str, str]]
    token_files: list[str]
    secrets: set[str]


PAGE_NOT_VERIFIED = "its events were not verified"


def read_or_note(store: EvidenceStore, entry: FileEntry | KeysEntry, saved: SavedNotes, source: str,
                 consequence: str = "") -> bytes | None:
    """A saved file, or None with an input error noted: one missing or altered file must not cost
    the report of everything intact (the run then exits 3)."""
    try:
        return store.read_file(entry)
    except EvidenceError as exc:
        saved.file_errors.append((source, f"{exc}" + (f"; {consequence}" if consequence else "")))
        return None


def _pages(store: EvidenceStore, conv: Conversation, saved: SavedAudit,
           expected: str | None) -> Iterator[tuple[int, PageInput, PageEntry]]:
    """The intact pages of one conversation, each with its number (page-NNNNN), held to the
    conversation ``expected`` (``_expected``); a missing or altered one is skipped and noted (its
    events are then missing from the chain, which the report shows as gaps and an input error)."""
    for number, entry in enumerate(conv.pages, 1):
        body = read_or_note(store, entry, saved, f"page {entry.file}", PAGE_NOT_VERIFIED)
        if body is None:
            continue
        collect_secrets(saved, entry, body)
        yield number, PageInput(str(store.root / entry.file), body, expected), entry


def collect_secrets(saved: SavedNotes, entry: FileEntry | KeysEntry, body: bytes) -> None:
    """Where the audit found its access token in a saved body, take it back out, so the offline
    report is scrubbed exactly like the online one (the token itself is never in the manifest)."""
    if not entry.token_at or entry.file is None:
        return
    saved.token_files.append(entry.file)
    saved.secrets |= token_secrets(entry, body)
    check_secret_count(saved.secrets)


def check_secret_count(secrets: set[str]) -> None:
    """``EvidenceError`` if the manifest's ``token_at`` named more strings than an audit has tokens
    (``verifier.archive`` checks the union of its tasks' with it: each task sees only its pages')."""
    if len(secrets) > MAX_TOKEN_STRINGS:  # review 65: one per byte offset made scrubbing quadratic
        raise EvidenceError(f"the manifest's token_at names more than {MAX_TOKEN_STRINGS} different strings: an "
                            "audit has one access token (a few after resumes with new ones)")


MAX_TOKEN_STRINGS = 16


def token_secrets(entry: FileEntry | KeysEntry, body: bytes) -> set[str]:
    """The access token, recovered from where the manifest says a saved body holds it."""
    found = set()
    for location in entry.token_at:
        if len(location) == 2:
            token = body[location[0]:location[0] + location[1]].decode("utf-8", "replace")
        else:
            token = token_at_path(body, location) or ""
        if len(token) >= 8:  # an edited manifest must not make us blank out every "a"
            found.add(token)
    return found
