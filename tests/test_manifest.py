"""The evidence manifest and journal as typed Structs: wrong types are precise one-line errors,
names are checked before use, and the journal replays to exactly what the writer held."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from helpers import REPO

from verifier.errors import EvidenceError, ManifestError
from verifier.evidence import EvidenceStore, load_saved_audit
from verifier.fetch import FetchedBody
from verifier.manifest import Manifest, UsersNotFetched, decode_manifest, decode_record, encode_manifest, page_name, validate

DIRECT = "1111:2222"
SHA = "0" * 64


def _written(tmp_path: Path, pages: int = 2) -> EvidenceStore:
    store = EvidenceStore(tmp_path, "https://api.x.com")
    conv = store.start_conversation(DIRECT, "1111-2222")
    for n in range(pages):
        store.save_page(conv, FetchedBody(f"https://api.x.com/p{n}", 200, b'{"data": []}', "now"), f"t{n}",
                        token_at=[[3, 9]] if n == 0 else None)
    store.save_metadata(conv, FetchedBody("https://api.x.com/c", 200, b"{}", "now"))
    store.set_expected(conv, DIRECT)
    store.save_keys("1111", FetchedBody("https://api.x.com/k", 200, b'{"data": []}', "now"))
    store.save_keys("2222", None, "HTTP 404")
    store.set_users_not_fetched(UsersNotFetched(count=3, sample=["5", "6"], limit=2, why="--max-users 2"))
    store.finish_conversation(conv, None, [])
    return store


def test_the_journal_replays_to_what_the_writer_held(tmp_path):
    store = _written(tmp_path)  # not closed: the state is the snapshot plus the journal
    assert EvidenceStore.open(tmp_path).manifest == store.manifest
    store.close()  # folded into manifest.json, journal removed
    assert not (tmp_path / "manifest.journal").exists()
    reopened = EvidenceStore.open(tmp_path).manifest
    assert reopened == store.manifest
    conv = reopened.conversations[0]
    assert conv.complete and [p.next_token for p in conv.pages] == ["t0", "t1"]
    assert conv.pages[0].token_at == [[3, 9]] and conv.pages[1].token_at == []
    assert [(k.user_id, k.file, k.error) for k in reopened.keys] == [("1111", "keys/1111.json", None),
                                                                   ("2222", None, "HTTP 404")]
    assert decode_manifest(encode_manifest(reopened)) == reopened


def test_the_manifest_on_disk_keeps_its_documented_shape(tmp_path):
    _written(tmp_path).close()
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["schema"] == "xchat-verify/evidence/v2" and data["keyring"] == "keyring.json"
    page = data["conversations"][0]["pages"][0]
    assert page == {"file": page_name("1111-2222", 1), "sha256": page["sha256"], "url": "https://api.x.com/p0",
                    "fetched_at": "now", "bytes": 12, "token_at": [[3, 9]], "next_token": "t0"}
    assert data["keys"][1] == {"user_id": "2222", "error": "HTTP 404"}
    assert data["users_not_fetched"] == {"count": 3, "sample": ["5", "6"], "limit": 2, "why": "--max-users 2"}


@pytest.mark.parametrize("change, where", [
    (lambda m: m["conversations"][0]["pages"][0].__setitem__("sha256", 7), "$.conversations[0].pages[0].sha256"),
    (lambda m: m["conversations"][0].__setitem__("incomplete", [1]), "$.conversations[0].incomplete[0]"),
    (lambda m: m["conversations"][0].__setitem__("complete", "yes"), "$.conversations[0].complete"),
    (lambda m: m["keys"][0].__setitem__("user_id", 1111), "$.keys[0].user_id"),
    (lambda m: m["users_not_fetched"].__setitem__("count", True), "$.users_not_fetched.count"),
    (lambda m: m.__setitem__("conversations", {}), "$.conversations"),
    (lambda m: m["conversations"][0]["pages"][0].pop("file"), "$.conversations[0].pages[0]"),
], ids=["sha256 int", "reason int", "complete str", "user id int", "count bool", "conversations dict", "no file"])
def test_a_field_of_the_wrong_type_is_one_precise_error(tmp_path, change, where):
    _written(tmp_path).close()
    data = json.loads((tmp_path / "manifest.json").read_text())
    change(data)
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError) as caught:
        EvidenceStore.open(tmp_path)
    message = str(caught.value)
    assert "manifest.json is malformed" in message and where in message and "\n" not in message
    with pytest.raises(ManifestError):
        load_saved_audit(tmp_path)


@pytest.mark.parametrize("change, words", [
    (lambda m: m["conversations"][0]["pages"][0].__setitem__("file", "../x.json"), "is not conversations/1111-2222/"),
    (lambda m: m["conversations"][0]["pages"][0].__setitem__("sha256", "abc"), "has no valid sha256"),
    (lambda m: m["conversations"][0]["pages"][0].__setitem__("token_at", [[1, 0]]), "malformed token_at"),
    (lambda m: m["conversations"][0].__setitem__("path_id", "9-9"), "path_id of 1111:2222 is not 1111-2222"),
    (lambda m: m["conversations"].append(m["conversations"][0]), "listed twice"),
    (lambda m: m["conversations"][0].__setitem__("expected_conversation_id", "../x"), "expected_conversation_id"),
    (lambda m: m["users_not_fetched"].__setitem__("sample", ["../x"]), "not a user id"),
    (lambda m: m["keys"][0].__setitem__("user_id", "../x"), "names a file but is not a user id"),
], ids=["page file", "sha256", "token_at", "path_id", "listed twice", "expected id", "sample", "keys user"])
def test_names_are_checked_before_anything_is_read(tmp_path, change, words):
    _written(tmp_path).close()
    data = json.loads((tmp_path / "manifest.json").read_text())
    change(data)
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="manifest.json is malformed") as caught:
        EvidenceStore.open(tmp_path)
    assert words in str(caught.value)


def test_a_journal_line_of_the_wrong_shape_is_a_manifest_error_naming_the_line(tmp_path):
    store = _written(tmp_path)
    journal = tmp_path / "manifest.journal"
    stamp = f'"journal": "{store.manifest.journal}", "seq": 99'
    for bad, words in ((f'{{{stamp}, "op": "page", "conversation_id": "{DIRECT}", "entry": {{"file": 1}}}}',
                        "Expected `str`, got `int` - at `$.entry.file`"),
                       (f'{{{stamp}, "op": "teleport"}}', "Invalid value 'teleport' - at `$.op`"),
                       (f'{{{stamp}, "op": "token_seen", "conversation_id": "{DIRECT}", "index": 5, "token_at": []}}',
                        "names page 6 of 1111:2222, which has 2"),
                       (f'{{{stamp}, "op": "metadata", "conversation_id": "9:9", "entry": {{"file": "x", '
                        f'"sha256": "{SHA}"}}}}', "unknown conversation 9:9")):
        original = journal.read_bytes()
        journal.write_bytes(original + bad.encode() + b"\n")
        with pytest.raises(ManifestError) as caught:
            EvidenceStore.open(tmp_path)
        assert words in str(caught.value), str(caught.value)
        journal.write_bytes(original)
    assert EvidenceStore.open(tmp_path).manifest == store.manifest


def test_journal_lines_of_other_journals_or_not_records_are_skipped(tmp_path):
    store = _written(tmp_path)
    journal = tmp_path / "manifest.journal"
    journal.write_bytes(journal.read_bytes() + b'[1, 2]\n{"journal": "other", "seq": 100, "op": "keys_reset"}\n'
                        + b'{"journal": "' + store.manifest.journal.encode() + b'", "seq": "100", "op": "keys_reset"}\n')
    assert EvidenceStore.open(tmp_path).manifest == store.manifest


def test_not_a_manifest_is_told_apart_from_a_malformed_one(tmp_path):
    path = tmp_path / "manifest.json"
    for body, words in ((b"[]", "is not an xchat-verify evidence manifest"),
                        (b'{"schema": "other"}', "is not an xchat-verify evidence manifest"),
                        (b"{not json", "is not JSON"),
                        (b"[" * 100_000, "is not JSON")):
        path.write_bytes(body)
        with pytest.raises(EvidenceError, match=words):
            EvidenceStore.open(tmp_path)


def test_a_version_1_manifest_is_still_read(tmp_path):
    """v1 manifests (before the journal) had no journal fields and stored every key."""
    (tmp_path / "manifest.json").write_text(json.dumps({
        "schema": "xchat-verify/evidence/v1", "tool": "xchat-verify 0.1.0", "base_url": "https://api.x.com",
        "conversations": [{"conversation_id": DIRECT, "path_id": "1111-2222", "complete": True, "incomplete": [],
                           "next_token": None, "error": None, "expected_conversation_id": None, "metadata": None,
                           "pages": []}],
        "keys": [{"user_id": "2222", "file": None, "error": "HTTP 404"}], "keyring": "keyring.json"}))
    manifest = EvidenceStore.open(tmp_path).manifest
    assert manifest.conversations[0].complete and manifest.keys[0].error == "HTTP 404"
    assert manifest.users_not_fetched is None and manifest.journal == ""


def test_validate_accepts_what_the_writer_makes():
    validate(Manifest())
    record = decode_record(b'{"op": "keys_reset", "journal": "j", "seq": 1}')
    assert type(record).__name__ == "ResetKeys" and record.seq == 1
    with pytest.raises(msgspec.ValidationError):
        decode_record(b'{"op": "keys", "journal": "j", "seq": 1}')


_FILLS_THE_DISK = """
import resource, signal, sys
from pathlib import Path
from verifier.evidence import EvidenceStore
from verifier.fetch import FetchedBody
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
store = EvidenceStore(Path(sys.argv[1]), "https://api.x.com")
conv = store.start_conversation("1111:2222", "1111-2222")
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
resource.setrlimit(resource.RLIMIT_FSIZE, (2048, hard))  # every file, the journal too, at most 2 KB
saved = failed = 0
for n in range(30):
    try:
        store.save_page(conv, FetchedBody(f"https://api.x.com/p{n}", 200, b'{"data": []}', "2026-12-03T00:00:00Z"),
                        f"token-{n}")
        saved += 1
    except OSError:
        failed += 1
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # room again: the run ends and closes the store
store.close()
print(saved, failed, len(store.manifest.conversations[0].pages))
"""


def test_a_record_that_could_not_be_journaled_is_in_no_manifest(tmp_path):
    """Round 87: a record was applied to the manifest before its journal line was written, so a page
    whose line failed (a full disk, a size limit: the audit dropped it and said so) was in the
    snapshot written at close, and ``verify DIR`` read a page the audit never counted; and later
    lines followed a torn one. Every save now either is on disk or is in no manifest."""
    done = subprocess.run([sys.executable, "-c", _FILLS_THE_DISK, str(tmp_path)], capture_output=True, text=True,
                          cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    saved, failed, held = map(int, done.stdout.split())
    assert failed and saved and held == saved
    assert len(EvidenceStore.open(tmp_path).manifest.conversations[0].pages) == saved


def test_a_line_written_whole_whose_fsync_failed_is_read_by_no_one(tmp_path, monkeypatch):
    """Review 96: a journal line written whole whose fsync then failed (an I/O error; a quota or full
    disk that NFS reports at fsync) was left in the journal, though the record was in no manifest
    and the audit said the page was not saved; close() did not fold the abandoned journal, so
    verify DIR and --resume applied the line and read a page the audit had dropped."""
    import errno

    from verifier.fetch import FetchedBody
    store = EvidenceStore(tmp_path, "https://api.x.com")
    conv = store.start_conversation("1111:2222", "1111-2222")
    page = b'{"data": []}'
    store.save_page(conv, FetchedBody("https://api.x.com/p1", 200, page, "2026-12-03T00:00:00Z"), "t1")
    real = os.fsync

    def fsync(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) == "manifest.journal":
            raise OSError(errno.EIO, "Input/output error")
        real(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError):
        store.save_page(conv, FetchedBody("https://api.x.com/p2", 200, page, "2026-12-03T00:00:01Z"), "t2")
    assert len(EvidenceStore.open(tmp_path).manifest.conversations[0].pages) == 1  # read mid-run (verify DIR)
    monkeypatch.setattr(os, "fsync", real)
    store.close()
    assert len(store.manifest.conversations[0].pages) == 1
    assert len(EvidenceStore.open(tmp_path).manifest.conversations[0].pages) == 1


def test_a_key_reset_whose_line_failed_still_drops_the_earlier_runs_keys(tmp_path, monkeypatch):
    """Review 96: since records are applied once on disk, a --resume whose ResetKeys line failed
    (the audit reports 'keys: cannot save' and goes on) kept the earlier run's key entries in memory,
    and the next snapshot wrote them back: a user this run did not fetch (over --max-users) had keys
    in the directory, and verify DIR checked that user's events with keys the audit never used."""
    import errno

    from verifier.fetch import FetchedBody
    first = EvidenceStore(tmp_path, "https://api.x.com")
    first.save_keys("3333", FetchedBody("https://api.x.com/keys/3333", 200, b'{"data": []}', "2026-12-01T00:00:00Z"))
    first.close()
    store = EvidenceStore.open(tmp_path)
    store.resume()
    real, failed = os.fsync, []

    def fsync(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) == "manifest.journal" and not failed:
            failed.append(fd)
            raise OSError(errno.EIO, "Input/output error")
        real(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError):
        store.reset_keys()
    store.save_keys("2222", FetchedBody("https://api.x.com/keys/2222", 200, b'{"data": []}', "2026-12-04T00:00:00Z"))
    store.close()
    assert [k.user_id for k in EvidenceStore.open(tmp_path).manifest.keys] == ["2222"]


def test_a_journal_of_many_conversations_is_replayed_without_a_scan_per_record():
    """Round 104: every journal record found its conversation by a scan of the list, so reading the
    journal of N conversations took N * N steps (40,000, 9 MB: 50 s). An index of the list finds
    them; the first of an id still wins, an unknown one is None, and one added later is found."""
    from verifier.ids import conversation_path_id
    from verifier.manifest import Conversation, FinishConversation, StartConversation, apply

    class Counted(list):
        visits = 0

        def __iter__(self):
            for item in super().__iter__():
                Counted.visits += 1
                yield item

    first = Conversation(conversation_id="1:2", path_id=conversation_path_id("1:2"), error="first")
    manifest = Manifest(journal="j")
    manifest.conversations = Counted([first, Conversation(conversation_id="1:2", path_id=first.path_id)])
    ids = [f"{1000 + i}:{10 ** 9 + i}" for i in range(2000)]
    for cid in ids:
        apply(manifest, StartConversation(conversation_id=cid, path_id=conversation_path_id(cid)))
        apply(manifest, FinishConversation(conversation_id=cid, error=f"error of {cid}", incomplete=[]))
    assert Counted.visits <= 100  # was 4 million
    assert [c.error for c in manifest.conversations[2:]] == [f"error of {cid}" for cid in ids]
    assert manifest.conversation("1:2") is first and manifest.conversation("3:4") is None
    manifest.conversations.append(Conversation(conversation_id="3:4", path_id=conversation_path_id("3:4")))
    assert manifest.conversation("3:4") is manifest.conversations[-1]
    manifest.conversations = [manifest.conversations[-1]]  # a new list: indexed again
    assert manifest.conversation("1:2") is None and manifest.conversation("3:4") is manifest.conversations[0]
    assert msgspec.json.decode(encode_manifest(manifest))["conversations"][0]["conversation_id"] == "3:4"


def test_a_journal_setting_many_users_keys_is_replayed_in_one_pass(tmp_path, monkeypatch):
    """Round 104: each SetKeys record rebuilt the list of keys entries, so reading a journal that sets
    N users' keys took N * N steps (40,000, 3.6 MB: 34 s). The key records are folded in one pass,
    to exactly what applying them one at a time gives (entries set again move to the end; a reset
    empties the list; entries of the snapshot no record names keep their place, duplicates too)."""
    import random

    from verifier import evidence
    from verifier import manifest as manifest_module
    from verifier.ids import conversation_path_id
    from verifier.manifest import KeysEntry, ResetKeys, SetKeys, StartConversation, apply, apply_all, encode_record

    rng = random.Random(104)
    for _ in range(300):
        start = [KeysEntry(user_id=str(rng.randrange(6)), error=f"snapshot {i}") for i in range(rng.randrange(5))]
        records = []
        for i in range(rng.randrange(12)):
            pick = rng.random()
            if pick < 0.1:
                records.append(ResetKeys())
            elif pick < 0.2:
                cid = f"{i + 1}:{i + 100}"
                records.append(StartConversation(conversation_id=cid, path_id=conversation_path_id(cid)))
            else:
                records.append(SetKeys(entry=KeysEntry(user_id=str(rng.randrange(6)), error=f"record {i}")))
        one, folded = Manifest(journal="j", keys=list(start)), Manifest(journal="j", keys=list(start))
        for record in records:
            apply(one, record)
        apply_all(folded, records)
        assert encode_manifest(folded) == encode_manifest(one), records

    work = [0]
    for module in (evidence, manifest_module):
        real = module.apply

        def counting(manifest, record, real=real):
            if isinstance(record, SetKeys):
                work[0] += len(manifest.keys)
            return real(manifest, record)
        monkeypatch.setattr(module, "apply", counting)
    (tmp_path / "manifest.json").write_bytes(encode_manifest(Manifest(journal="j1")))
    lines = [encode_record(SetKeys(entry=KeysEntry(user_id=str(10 ** 6 + i), error="not found"), journal="j1",
                                   seq=i + 1)) for i in range(3000)]
    (tmp_path / "manifest.journal").write_bytes(b"\n".join(lines) + b"\n")
    store = EvidenceStore.open(tmp_path)
    assert [k.user_id for k in store.manifest.keys] == [str(10 ** 6 + i) for i in range(3000)]
    assert store.unfolded == 3000 and store.manifest.journal_seq == 3000
    assert work[0] <= 3000  # was 4.5 million
