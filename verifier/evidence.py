"""Saved evidence of an audit: raw bodies byte for byte, key responses and a manifest.

Every file is written to a temporary name and renamed, and the manifest is rewritten the same way
after each file, so an interrupted run always leaves a consistent directory that ``--resume``
continues and ``xchat-verify verify DIR`` re-verifies offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from . import __version__
from .engine import PageInput

MANIFEST = "manifest.json"
KEYRING = "keyring.json"
SCHEMA = "xchat-verify/evidence/v1"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.{threading.get_ident()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class EvidenceError(Exception):
    """The evidence directory is unusable; one line."""


class EvidenceStore:
    """Thread-safe writer (and reader, for resume and offline verify) of an evidence directory."""

    def __init__(self, root: str | Path, base_url: str = "") -> None:
        self.root = Path(root)
        self.lock = threading.Lock()
        self.manifest: dict[str, Any] = {"schema": SCHEMA, "tool": f"xchat-verify {__version__}",
                                         "base_url": base_url, "created_at": _now(), "updated_at": _now(),
                                         "conversations": [], "keys": [], "keyring": KEYRING}

    # ------------------------------------------------------------------ reading
    @classmethod
    def open(cls, root: str | Path) -> "EvidenceStore":
        store = cls(root)
        path = store.root / MANIFEST
        try:
            manifest = json.loads(path.read_bytes())
        except OSError as exc:
            raise EvidenceError(f"cannot read {path}: {exc.strerror or exc}") from None
        except (ValueError, RecursionError) as exc:
            raise EvidenceError(f"{path} is not JSON: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
            raise EvidenceError(f"{path} is not an xchat-verify evidence manifest")
        store.manifest = manifest
        return store

    def read_file(self, entry: dict) -> bytes:
        """A saved file, checked against the SHA-256 the manifest recorded."""
        path = self.root / entry["file"]
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
        with self.lock:
            conv = self.conversation(conversation_id)
            if conv is None:
                conv = {"conversation_id": conversation_id, "path_id": path_id, "complete": False,
                        "next_token": None, "error": None, "expected_conversation_id": None,
                        "metadata": None, "pages": []}
                self.manifest["conversations"].append(conv)
            conv["error"] = None
            self._write_manifest()
            return conv

    def _store(self, name: str, fetched) -> dict[str, Any]:
        """Write a response body byte for byte; the manifest entry that describes it."""
        atomic_write(self.root / name, fetched.body)
        return {"file": name, "url": fetched.url, "fetched_at": fetched.fetched_at,
                "sha256": sha256(fetched.body), "bytes": len(fetched.body)}

    def save_page(self, conv: dict, fetched, next_token: str | None) -> str:
        entry = self._store(f"conversations/{conv['path_id']}/page-{len(conv['pages']) + 1:05d}.json", fetched)
        with self.lock:
            conv["pages"].append(entry)
            conv["next_token"] = next_token
            self._write_manifest()
        return str(self.root / entry["file"])

    def save_metadata(self, conv: dict, fetched) -> None:
        entry = self._store(f"conversations/{conv['path_id']}/conversation.json", fetched)
        with self.lock:
            conv["metadata"] = entry
            self._write_manifest()

    def finish_conversation(self, conv: dict, error: str | None) -> None:
        with self.lock:
            conv["complete"] = error is None
            conv["error"] = error
            self._write_manifest()

    def set_expected(self, conv: dict, expected: str | None) -> None:
        with self.lock:
            conv["expected_conversation_id"] = expected
            self._write_manifest()

    def save_keys(self, user_id: str, fetched, error: str | None = None) -> None:
        entry: dict[str, Any] = {"user_id": user_id, "file": None, "error": error}
        if fetched is not None:
            entry.update(self._store(f"keys/{user_id}.json", fetched))
        with self.lock:
            self.manifest["keys"] = [k for k in self.manifest["keys"] if k["user_id"] != user_id] + [entry]
            self._write_manifest()

    def save_keyring(self, bodies: dict[str, Any]) -> None:
        atomic_write(self.root / KEYRING, json.dumps(bodies, indent=2, sort_keys=True).encode())

    def _write_manifest(self) -> None:
        self.manifest["updated_at"] = _now()
        atomic_write(self.root / MANIFEST, json.dumps(self.manifest, indent=2).encode())


@dataclass
class SavedAudit:
    # (conversation as named, its canonical id if known, its pages read lazily), in audit order
    conversations: list[tuple[str, str | None, Iterator[PageInput]]]
    keyring_bodies: dict[str, bytes]
    errors: list[tuple[str, str]]  # (source, message) for conversations whose fetch did not complete


def load_saved_audit(root: str | Path) -> SavedAudit:
    """Everything ``verify DIR`` needs to reproduce the audit's report offline."""
    try:
        return _load_saved_audit(root)
    except (KeyError, TypeError, AttributeError) as exc:
        raise EvidenceError(f"{Path(root) / MANIFEST} is malformed ({type(exc).__name__}: {exc})") from None


def _load_saved_audit(root: str | Path) -> SavedAudit:
    store = EvidenceStore.open(root)
    conversations = store.manifest["conversations"]
    pages = [(conv["conversation_id"], conv.get("expected_conversation_id"), store.page_inputs(conv))
             for conv in conversations]
    errors = [(f"fetch {conv['conversation_id']}", conv["error"]) for conv in conversations if conv.get("error")]
    key_errors = [(f"keys {k['user_id']}", k["error"]) for k in store.manifest["keys"] if k.get("error")]
    return SavedAudit(pages, store.keyring_bodies(), errors + key_errors)
