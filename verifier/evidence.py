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
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ._version import __version__
from .apibodies import token_at_path
from .clock import utc_now_iso
from .engine import PageInput
from .errors import EvidenceError, ManifestError
from .ids import conversation_path_id, is_user_id
from .outputs import atomic_write
from .sanitize import printable

MANIFEST = "manifest.json"
JOURNAL = "manifest.journal"
KEYRING = "keyring.json"
SCHEMA = "xchat-verify/evidence/v2"
READABLE_SCHEMAS = ("xchat-verify/evidence/v1", SCHEMA)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PAGE_FILE = re.compile(r"page-([0-9]{5,9})\.json")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------- names
def page_name(path_id: str, number: int) -> str:
    return f"conversations/{path_id}/page-{number:05d}.json"


def metadata_name(path_id: str) -> str:
    return f"conversations/{path_id}/conversation.json"


def keys_name(user_id: str) -> str:
    return f"keys/{user_id}.json"


def confined(root: Path, name: str) -> Path:
    """``root/name``, refused (``EvidenceError``) if it resolves outside ``root`` (``..``, an
    absolute name, or a symlink anywhere on the way)."""
    base = root.resolve()
    path = (root / name).resolve()
    if path != base and base not in path.parents:
        raise EvidenceError(f"{printable(name)} lies outside the evidence directory {printable(root)}")
    return path


# ------------------------------------------------------------------------------------- journal
def apply(manifest: dict[str, Any], record: dict[str, Any]) -> None:
    """Apply one journal record to a manifest (the writer and every reader share this)."""
    op = record["op"]
    if op == "finding_state":
        manifest["users_not_fetched"] = record["users_not_fetched"]
        return
    if op == "keys_reset":
        manifest["keys"] = []
        return
    if op == "keys":
        entry = record["entry"]
        manifest["keys"] = [k for k in manifest["keys"] if k.get("user_id") != entry["user_id"]] + [entry]
        return
    conv = next((c for c in manifest["conversations"] if c.get("conversation_id") == record["conversation_id"]), None)
    if op == "conversation":
        if conv is None:
            conv = new_conversation(record["conversation_id"], record["path_id"])
            manifest["conversations"].append(conv)
        conv["error"] = None
        return
    if conv is None:
        raise KeyError(f"journal names unknown conversation {record['conversation_id']!r}")
    if op == "page":
        conv["pages"].append(record["entry"])
        conv["next_token"] = record["entry"].get("next_token")
    elif op == "metadata":
        conv["metadata"] = record["entry"]
    elif op == "expected":
        conv["expected_conversation_id"] = record["expected"]
    elif op == "finish":
        conv["complete"] = not record["incomplete"]
        conv["incomplete"] = record["incomplete"]
        conv["error"] = record["error"]
    elif op == "token_seen":
        conv["pages"][record["index"]]["token_at"] = record["token_at"]
    else:
        raise KeyError(f"unknown journal operation {op!r}")


def new_conversation(conversation_id: str, path_id: str) -> dict[str, Any]:
    return {"conversation_id": conversation_id, "path_id": path_id, "complete": False, "incomplete": [],
            "next_token": None, "error": None, "expected_conversation_id": None, "metadata": None, "pages": []}


def _read_journal(path: Path, journal_id: str, after: int) -> list[dict[str, Any]]:
    """Journal records of this snapshot newer than it; a torn last line (a crash mid-append) is
    dropped, any other bad line makes the directory unusable."""
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise EvidenceError(f"cannot read {path}: {exc.strerror or exc}") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            if number == len(lines):  # the last line has no newline: torn write
                break
            raise EvidenceError(f"{path} line {number} is not JSON (altered evidence)") from None
        if not isinstance(record, dict) or record.get("journal") != journal_id:
            continue  # a journal left over from an earlier run of this directory
        if isinstance(record.get("seq"), int) and record["seq"] > after:
            records.append(record)
    return records


def existing_evidence(root: Path) -> list[Path]:
    """The entries of ``root`` an audit writes (manifest, journal, keyring, conversations, keys)."""
    names = (MANIFEST, JOURNAL, KEYRING, "conversations", "keys")
    return [root / name for name in names if (root / name).exists() or (root / name).is_symlink()]


class EvidenceStore:
    """Thread-safe writer (and reader, for resume and offline verify) of an evidence directory."""

    def __init__(self, root: str | Path, base_url: str = "") -> None:
        self.root = Path(root)
        self.lock = threading.Lock()
        self.manifest: dict[str, Any] = {"schema": SCHEMA, "tool": f"xchat-verify {__version__}",
                                         "base_url": base_url, "created_at": utc_now_iso(), "updated_at": utc_now_iso(),
                                         "journal": secrets.token_hex(8), "journal_seq": 0,
                                         "conversations": [], "keys": [], "keyring": KEYRING,
                                         "users_not_fetched": None}
        self._journal: BinaryIO | None = None  # opened by the first write (a snapshot first), closed by close()

    # ------------------------------------------------------------------ reading
    @classmethod
    def open(cls, root: str | Path) -> "EvidenceStore":
        """The directory as last written (snapshot plus journal), validated; nothing written yet."""
        store = cls(root)
        path = store.root / MANIFEST
        try:
            manifest = json.loads(path.read_bytes())
        except OSError as exc:
            raise EvidenceError(f"cannot read {path}: {exc.strerror or exc}") from None
        except (ValueError, RecursionError) as exc:
            raise EvidenceError(f"{path} is not JSON: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("schema") not in READABLE_SCHEMAS:
            raise EvidenceError(f"{path} is not an xchat-verify evidence manifest")
        try:
            manifest.setdefault("users_not_fetched", None)
            for record in _read_journal(store.root / JOURNAL, manifest.get("journal", ""),
                                        manifest.get("journal_seq", 0)):
                apply(manifest, record)
                manifest["journal_seq"] = record["seq"]
            validate_manifest(manifest)
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
            raise ManifestError(f"{path} is malformed ({type(exc).__name__}: {printable(exc)})") from None
        store.manifest = manifest
        return store

    def resume(self) -> None:
        """Write to an opened directory from now on. The first write folds the journal it had into a
        fresh snapshot (a new journal id), so new lines never follow a torn one."""
        self.manifest["schema"] = SCHEMA

    def path_of(self, name: str) -> Path:
        return confined(self.root, name)

    def read_file(self, entry: dict) -> bytes:
        """A saved file, checked against the SHA-256 the manifest recorded."""
        path = self.path_of(entry["file"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise EvidenceError(f"cannot read {path}: {exc.strerror or exc}") from None
        if sha256(data) != entry.get("sha256"):
            raise EvidenceError(f"{path} does not match the SHA-256 in the manifest (altered evidence)")
        return data

    def conversation(self, conversation_id: str) -> dict | None:
        for conv in self.manifest["conversations"]:
            if conv["conversation_id"] == conversation_id:
                return conv
        return None

    def page_inputs(self, conv: dict) -> Iterator[PageInput]:
        """The saved pages, read (and SHA-256 checked) one at a time."""
        for page in conv["pages"]:
            yield PageInput(str(self.root / page["file"]), self.read_file(page), conv.get("expected_conversation_id"))

    def keyring_bodies(self) -> dict[str, bytes]:
        """``{user_id: raw public_keys body}``: the keys exactly as the audit received them."""
        return {e["user_id"]: self.read_file(e) for e in self.manifest["keys"] if e.get("file")}

    # ------------------------------------------------------------------ writing
    def start_conversation(self, conversation_id: str, path_id: str) -> dict:
        self._record({"op": "conversation", "conversation_id": conversation_id, "path_id": path_id})
        conv = self.conversation(conversation_id)
        assert conv is not None  # the record just added it
        return conv

    def _store(self, name: str, fetched, **extra: Any) -> dict[str, Any]:
        """Write a response body byte for byte; the manifest entry that describes it."""
        atomic_write(self.path_of(name), fetched.body)
        entry = {"file": name, "url": fetched.url, "fetched_at": fetched.fetched_at,
                 "sha256": sha256(fetched.body), "bytes": len(fetched.body)}
        entry.update({k: v for k, v in extra.items() if v})
        return entry

    def save_page(self, conv: dict, fetched, next_token: str | None, token_at: list | None = None) -> str:
        name = page_name(conv["path_id"], len(conv["pages"]) + 1)
        entry = self._store(name, fetched, next_token=next_token, token_at=token_at)
        entry.setdefault("next_token", None)
        self._record({"op": "page", "conversation_id": conv["conversation_id"], "entry": entry})
        return str(self.root / name)

    def note_token(self, conv: dict, index: int, token_at: list) -> None:
        """A saved page (replayed by --resume) holds the access token at these offsets."""
        if token_at and conv["pages"][index].get("token_at") != token_at:
            self._record({"op": "token_seen", "conversation_id": conv["conversation_id"], "index": index,
                          "token_at": token_at})

    def save_metadata(self, conv: dict, fetched, token_at: list | None = None) -> None:
        entry = self._store(metadata_name(conv["path_id"]), fetched, token_at=token_at)
        self._record({"op": "metadata", "conversation_id": conv["conversation_id"], "entry": entry})

    def finish_conversation(self, conv: dict, error: str | None, incomplete: list[str] | None = None) -> None:
        reasons = list(incomplete or [])
        if error and not reasons:
            reasons = [f"fetch failed: {error}"]
        self._record({"op": "finish", "conversation_id": conv["conversation_id"], "error": error,
                      "incomplete": reasons})

    def set_expected(self, conv: dict, expected: str | None) -> None:
        self._record({"op": "expected", "conversation_id": conv["conversation_id"], "expected": expected})

    def save_keys(self, user_id: str, fetched, error: str | None = None, token_at: list | None = None) -> None:
        entry: dict[str, Any] = {"user_id": user_id, "file": None, "error": error}
        if fetched is not None:
            entry.update(self._store(keys_name(user_id), fetched, token_at=token_at))
        self._record({"op": "keys", "entry": entry})

    def reset_keys(self) -> None:
        """A run fetches the keys anew: entries of an earlier run of this directory are dropped."""
        if self.manifest["keys"]:
            self._record({"op": "keys_reset"})

    def token_files(self) -> list[str]:
        """Saved bodies in which the access token was found (see ``XChatClient.token_offsets``)."""
        entries = [e for c in self.manifest["conversations"] for e in [*c["pages"], c.get("metadata")] if e]
        entries += [e for e in self.manifest["keys"] if e.get("file")]
        return [e["file"] for e in entries if e.get("token_at")]

    def set_users_not_fetched(self, state: dict | None) -> None:
        if state == self.manifest.get("users_not_fetched"):
            return
        self._record({"op": "finding_state", "users_not_fetched": state})

    def save_keyring(self, text: str) -> None:
        atomic_write(self.path_of(KEYRING), text.encode())

    def close(self) -> None:
        """Fold the journal into the snapshot (the end of a run, finished or not)."""
        with self.lock:
            if self._journal is not None:
                self._snapshot()
                self._journal.close()
                self._journal = None
                self.path_of(JOURNAL).unlink(missing_ok=True)

    def _record(self, record: dict[str, Any]) -> None:
        with self.lock:
            if self._journal is None:
                self._start_journal()
            apply(self.manifest, record)
            self.manifest["journal_seq"] += 1
            line = json.dumps({"journal": self.manifest["journal"], "seq": self.manifest["journal_seq"], **record},
                              separators=(",", ":")) + "\n"
            journal = self._journal
            assert journal is not None  # started above
            journal.write(line.encode())
            journal.flush()
            os.fsync(journal.fileno())

    def _start_journal(self) -> None:
        """(Lock held.) A new journal id, so lines of any older journal no longer apply, and a snapshot."""
        self.manifest["journal"] = secrets.token_hex(8)
        self.manifest["journal_seq"] = 0
        self._snapshot()

    def _snapshot(self) -> None:
        """Write ``manifest.json`` atomically, then start an empty journal after it."""
        self.manifest["updated_at"] = utc_now_iso()
        atomic_write(self.path_of(MANIFEST), json.dumps(self.manifest, indent=2).encode())
        if self._journal is not None:
            self._journal.close()
        journal = self.path_of(JOURNAL)
        self._journal = open(journal, "wb")  # truncates: every line is in the snapshot now


# ------------------------------------------------------------------------------------- validation
def validate_manifest(manifest: dict[str, Any]) -> None:
    """Every id and file name as the writer makes them, every field of the right type; raises
    ``ValueError``/``TypeError``/``KeyError`` (reported as a malformed manifest) otherwise. Runs
    before anything named in the manifest is read or written."""
    paths: set[str] = set()
    for conv in _typed(manifest.get("conversations"), list, "conversations"):
        path_id = _validate_conversation(_typed(conv, dict, "a conversation entry"))
        if path_id in paths:
            raise ValueError(f"conversation {printable(conv['conversation_id'])} is listed twice")
        paths.add(path_id)
    for entry in _typed(manifest.get("keys"), list, "keys"):
        _validate_keys_entry(_typed(entry, dict, "a keys entry"))
    _validate_users_not_fetched(manifest.get("users_not_fetched"))


def _validate_conversation(conv: dict[str, Any]) -> str:
    """Checks one conversation entry; its path id (the only name its files may live under)."""
    cid = _typed(conv["conversation_id"], str, "conversation_id")
    path_id = conversation_path_id(cid)  # ValueError for anything but an id
    if conv.get("path_id") != path_id:
        raise ValueError(f"path_id of {printable(cid)} is not {path_id}")
    for number, page in enumerate(_typed(conv["pages"], list, "pages"), 1):
        _check_entry(page, page_name(path_id, number))
    if conv.get("metadata") is not None:
        _check_entry(conv["metadata"], metadata_name(path_id))
    if not all(isinstance(r, str) for r in _typed(conv.setdefault("incomplete", []), list, "incomplete")):
        raise TypeError("incomplete reasons must be strings")
    if conv.get("error") is not None:
        _typed(conv["error"], str, "error")
    if conv.get("expected_conversation_id") is not None:
        conversation_path_id(_typed(conv["expected_conversation_id"], str, "expected_conversation_id"))
    return path_id


def _validate_keys_entry(entry: dict[str, Any]) -> None:
    user_id = _typed(entry["user_id"], str, "user_id")
    if entry.get("file") is not None:
        if not is_user_id(user_id):
            raise ValueError(f"keys entry for {printable(user_id[:40])} names a file but is not a user id")
        _check_entry(entry, keys_name(user_id))
    if entry.get("error") is not None:
        _typed(entry["error"], str, "error")


def _validate_users_not_fetched(state: Any) -> None:
    if state is None:
        return
    _typed(state.get("count") if isinstance(state, dict) else None, int, "users_not_fetched.count")
    if not all(is_user_id(u) for u in _typed(state.get("sample"), list, "users_not_fetched.sample")):
        raise ValueError("users_not_fetched.sample holds a value that is not a user id")
    if state.get("limit") is not None:
        _typed(state["limit"], int, "users_not_fetched.limit")
    if state.get("why") is not None:
        _typed(state["why"], str, "users_not_fetched.why")


def _check_entry(entry: Any, name: str) -> None:
    _typed(entry, dict, "a file entry")
    if entry.get("file") != name:
        raise ValueError(f"file {printable(str(entry.get('file'))[:80])} is not {name}")
    if not isinstance(entry.get("sha256"), str) or not _SHA256.fullmatch(entry["sha256"]):
        raise ValueError(f"{name} has no valid sha256")
    for location in _typed(entry.get("token_at", []), list, "token_at"):
        if not _token_location(location):
            raise ValueError(f"{name} has a malformed token_at")


def _token_location(location: Any) -> bool:
    """``[offset, length]``, or ``["json"|"json-key", [indices], at, length]`` (see XChatClient.token_offsets)."""
    def count(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0
    if isinstance(location, list) and len(location) == 2:
        return count(location[0]) and count(location[1]) and location[1] > 0
    return bool(isinstance(location, list) and len(location) == 4 and location[0] in ("json", "json-key")
                and isinstance(location[1], list) and all(count(i) for i in location[1])
                and (location[0] == "json" or location[1]) and count(location[2]) and count(location[3])
                and location[3] > 0)


def _typed(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"{what} is a {type(value).__name__}, expected a {kind.__name__}")
    return value


# ------------------------------------------------------------------------------------- offline
@dataclass
class SavedConversation:
    named: str  # as the audit was asked for it
    expected: str | None  # its canonical id, if known
    pages: Iterator[tuple[PageInput, dict]]  # read lazily, SHA-256 checked, with their entries
    incomplete: list[str]  # the reasons the audit recorded ([] when it claimed completeness)
    error: str | None
    metadata: bytes | None
    entries: list[dict] = field(default_factory=list)  # its pages' manifest entries (validated), in order


@dataclass
class SavedAudit:
    conversations: list[SavedConversation]
    keyring_bodies: dict[str, bytes]
    key_errors: list[tuple[str, str]]  # (source, message) for users whose keys could not be fetched
    users_not_fetched: dict | None
    token_files: list[str] = field(default_factory=list)  # filled while the pages are read
    secrets: set[str] = field(default_factory=set)  # the token, recovered from the saved offsets
    # (source, message) for every saved file that is missing or altered: the rest is still verified
    file_errors: list[tuple[str, str]] = field(default_factory=list)
    keys_fetched: bool = True  # False when the audit stopped before its key phase ended


def load_saved_audit(root: str | Path) -> SavedAudit:
    """Everything ``verify DIR`` needs to reproduce the audit's report offline."""
    try:
        return _load_saved_audit(root)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ManifestError(f"{Path(root) / MANIFEST} is malformed ({type(exc).__name__}: {printable(exc)})") from None


def _load_saved_audit(root: str | Path) -> SavedAudit:
    store = EvidenceStore.open(root)
    saved = SavedAudit([], {}, [], store.manifest.get("users_not_fetched"))
    saved.keys_fetched = store.path_of(KEYRING).is_file()  # written when the key phase ends
    for conv in store.manifest["conversations"]:
        metadata = _read_or_note(store, conv["metadata"], saved, f"metadata {conv['conversation_id']}") \
            if conv.get("metadata") else None
        if metadata is not None:
            _collect_secrets(saved, conv["metadata"], metadata)
        saved.conversations.append(SavedConversation(
            conv["conversation_id"], conv.get("expected_conversation_id"), _pages(store, conv, saved),
            list(conv.get("incomplete") or []), conv.get("error"), metadata, list(conv["pages"])))
    for entry in store.manifest["keys"]:
        if entry.get("error"):
            saved.key_errors.append((f"keys {entry['user_id']}", entry["error"]))
        if entry.get("file"):
            body = _read_or_note(store, entry, saved, f"keys {entry['user_id']}",
                                 "this user's keys were not used: resume the audit or pass --keys")
            if body is not None:
                saved.keyring_bodies[entry["user_id"]] = body
                _collect_secrets(saved, entry, body)
    return saved


def _read_or_note(store: EvidenceStore, entry: dict, saved: SavedAudit, source: str, consequence: str = "") -> bytes | None:
    """A saved file, or None with an input error noted: one missing or altered file must not cost
    the report of everything intact (the run then exits 3)."""
    try:
        return store.read_file(entry)
    except EvidenceError as exc:
        saved.file_errors.append((source, f"{exc}" + (f"; {consequence}" if consequence else "")))
        return None


def _pages(store: EvidenceStore, conv: dict, saved: SavedAudit) -> Iterator[tuple[PageInput, dict]]:
    """The intact pages of one conversation; a missing or altered one is skipped and noted (its
    events are then missing from the chain, which the report shows as gaps and an input error)."""
    expected = conv.get("expected_conversation_id")
    for entry in conv["pages"]:
        body = _read_or_note(store, entry, saved, f"page {entry['file']}",
                             "its events were not verified")
        if body is None:
            continue
        _collect_secrets(saved, entry, body)
        yield PageInput(str(store.root / entry["file"]), body, expected), entry


def _collect_secrets(saved: SavedAudit, entry: dict, body: bytes | str | dict[str, Any]) -> None:
    """Where the audit found its access token in a saved body, take it back out, so the offline
    report is scrubbed exactly like the online one (the token itself is never in the manifest)."""
    if not isinstance(body, bytes):  # saved pages are always bytes; anything else has no offsets
        return
    if not entry.get("token_at"):
        return
    saved.token_files.append(entry["file"])
    saved.secrets |= token_secrets(entry, body)


def token_secrets(entry: dict, body: bytes) -> set[str]:
    """The access token, recovered from where the manifest says a saved body holds it."""
    found = set()
    for location in entry.get("token_at") or ():
        if len(location) == 2:
            token = body[location[0]:location[0] + location[1]].decode("utf-8", "replace")
        else:
            token = token_at_path(body, location) or ""
        if len(token) >= 8:  # an edited manifest must not make us blank out every "a"
            found.add(token)
    return found
