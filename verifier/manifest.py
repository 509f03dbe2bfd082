"""The evidence manifest and its journal, as typed msgspec Structs (docs/formats.md, "Evidence").

``manifest.json`` and every ``manifest.journal`` line are decoded into these types, so a field of
the wrong type is one precise error ("Expected `str`, got `int` - at `$.keys[0].user_id`") instead
of a ``KeyError`` deep in the audit. What types cannot say (file names exactly as the writer makes
them, path ids, SHA-256 digests, token locations) is checked by ``validate`` before anything named in
the manifest is read or written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from .errors import ManifestError
from .ids import conversation_path_id, is_user_id
from .sanitize import printable

SCHEMA = "xchat-verify/evidence/v2"
READABLE_SCHEMAS = ("xchat-verify/evidence/v1", SCHEMA)
KEYRING = "keyring.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")

# A token location: ``[offset, length]``, or ``["json"|"json-key", [indices], at, length]`` (see
# ``XChatClient.token_offsets``); a heterogeneous list, so its shape is checked by ``_token_location``.
TokenLocation = list[Any]


def page_name(path_id: str, number: int) -> str:
    return f"conversations/{path_id}/page-{number:05d}.json"


def metadata_name(path_id: str) -> str:
    return f"conversations/{path_id}/conversation.json"


def keys_name(user_id: str) -> str:
    return f"keys/{user_id}.json"


# ------------------------------------------------------------------------------------- manifest
class FileEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One saved response body: where it is, what it hashes to, where it came from."""

    file: str
    sha256: str
    url: str = ""
    fetched_at: str = ""
    bytes: int = 0
    token_at: list[TokenLocation] = []  # where the access token was found in the body


class PageEntry(FileEntry, kw_only=True, omit_defaults=True):
    next_token: str | None = None  # the page's pagination token, for --resume


class KeysEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A user's public-keys response (``file`` set) or why it could not be fetched (``error``)."""

    user_id: str
    file: str | None = None
    error: str | None = None
    sha256: str = ""
    url: str = ""
    fetched_at: str = ""
    bytes: int = 0
    token_at: list[TokenLocation] = []


class Conversation(msgspec.Struct, kw_only=True):
    conversation_id: str
    path_id: str
    complete: bool = False
    incomplete: list[str] = []  # why the history is not complete ([] when it claimed completeness)
    next_token: str | None = None
    error: str | None = None
    expected_conversation_id: str | None = None
    metadata: FileEntry | None = None
    pages: list[PageEntry] = []


class UsersNotFetched(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The run-level ``users_not_fetched`` warning: how many, a sample, and why."""

    count: int
    sample: list[str]
    limit: int | None = None
    why: str | None = None


class Manifest(msgspec.Struct, kw_only=True, dict=True):  # dict: the index ``conversation`` keeps
    schema: str = SCHEMA
    tool: str = ""
    base_url: str = ""
    created_at: str = ""
    updated_at: str = ""
    journal: str = ""
    journal_seq: int = 0
    conversations: list[Conversation] = []
    keys: list[KeysEntry] = []
    keyring: str = KEYRING
    users_not_fetched: UsersNotFetched | None = None

    def conversation(self, conversation_id: str) -> Conversation | None:
        """The first conversation of that id, through an index of the list (conversations are only
        ever appended to it), not a scan: every journal record looks one up, so the journal of N
        conversations took N * N steps to read (round 104: 40,000, 9 MB, 50 s)."""
        conversations = self.conversations
        index = self.__dict__.get("_conversation_index")
        if index is None or index[0] is not conversations or index[1] > len(conversations):
            index = self.__dict__["_conversation_index"] = [conversations, 0, {}]
        by_id: dict[str, Conversation] = index[2]
        if index[1] < len(conversations):
            for conv in conversations[index[1]:]:
                by_id.setdefault(conv.conversation_id, conv)
            index[1] = len(conversations)
        found = by_id.get(conversation_id)
        if found is not None and found.conversation_id != conversation_id:  # an id changed in place (never
            del self.__dict__["_conversation_index"]  # done): the scan the index stands in for
            return next((c for c in conversations if c.conversation_id == conversation_id), None)
        return found

    def saved_files(self) -> list[FileEntry | KeysEntry]:
        """Every entry that names a saved body (pages, metadata, keys)."""
        out: list[FileEntry | KeysEntry] = []
        for conv in self.conversations:
            out += conv.pages
            if conv.metadata is not None:
                out.append(conv.metadata)
        return out + [k for k in self.keys if k.file]


# ------------------------------------------------------------------------------------- journal
class _Record(msgspec.Struct, kw_only=True, tag_field="op"):
    journal: str = ""
    seq: int = 0


class StartConversation(_Record, tag="conversation", kw_only=True):
    conversation_id: str
    path_id: str


class AddPage(_Record, tag="page", kw_only=True):
    conversation_id: str
    entry: PageEntry


class SetMetadata(_Record, tag="metadata", kw_only=True):
    conversation_id: str
    entry: FileEntry


class SetExpected(_Record, tag="expected", kw_only=True):
    conversation_id: str
    expected: str | None


class FinishConversation(_Record, tag="finish", kw_only=True):
    conversation_id: str
    error: str | None
    incomplete: list[str]


class TokenSeen(_Record, tag="token_seen", kw_only=True):
    conversation_id: str
    index: int
    token_at: list[TokenLocation]


class SetKeys(_Record, tag="keys", kw_only=True):
    entry: KeysEntry


class ResetKeys(_Record, tag="keys_reset", kw_only=True):
    pass


class SetUsersNotFetched(_Record, tag="finding_state", kw_only=True):
    users_not_fetched: UsersNotFetched | None


Record = (StartConversation | AddPage | SetMetadata | SetExpected | FinishConversation | TokenSeen | SetKeys
          | ResetKeys | SetUsersNotFetched)


class _Stamp(msgspec.Struct):
    """Just the journal id and number of a line, read first: lines of another journal are skipped
    whatever else they hold."""

    journal: Any = None
    seq: Any = None


_MANIFEST_DECODER = msgspec.json.Decoder(Manifest)
_RECORD_DECODER = msgspec.json.Decoder(Record)
_STAMP_DECODER = msgspec.json.Decoder(_Stamp)
_ENCODER = msgspec.json.Encoder()


def decode_manifest(data: bytes) -> Manifest:
    """``manifest.json``, typed; ``msgspec.ValidationError``/``DecodeError`` when it is not one."""
    return _MANIFEST_DECODER.decode(data)


def encode_manifest(manifest: Manifest) -> bytes:
    return msgspec.json.format(_ENCODER.encode(manifest), indent=2)


def stamp(line: bytes) -> tuple[Any, Any]:
    """(journal id, seq) of a journal line; ``msgspec.DecodeError`` when the line is not JSON."""
    head = _STAMP_DECODER.decode(line)
    return head.journal, head.seq


def decode_record(line: bytes) -> Record:
    return _RECORD_DECODER.decode(line)


def encode_record(record: Record) -> bytes:
    return _ENCODER.encode(record)


def check_applicable(manifest: Manifest, record: Record) -> None:
    """``ManifestError`` when ``apply`` would refuse ``record`` (it names a conversation or page the
    manifest does not have); nothing is changed. The writer checks before it journals a record."""
    if isinstance(record, (SetUsersNotFetched, ResetKeys, SetKeys, StartConversation)):
        return
    conv = _named(manifest, record.conversation_id)
    if isinstance(record, TokenSeen) and not 0 <= record.index < len(conv.pages):
        raise ManifestError(f"the journal names page {record.index + 1} of {printable(conv.conversation_id)}, "
                            f"which has {len(conv.pages)}")


def apply(manifest: Manifest, record: Record) -> None:
    """Apply one journal record to a manifest (the writer and every reader share this);
    ``ManifestError`` when it names a conversation or page the manifest does not have."""
    check_applicable(manifest, record)
    if isinstance(record, SetUsersNotFetched):
        manifest.users_not_fetched = record.users_not_fetched
    elif isinstance(record, ResetKeys):
        manifest.keys = []
    elif isinstance(record, SetKeys):
        manifest.keys = [k for k in manifest.keys if k.user_id != record.entry.user_id] + [record.entry]
    elif isinstance(record, StartConversation):
        conv = manifest.conversation(record.conversation_id)
        if conv is None:
            conv = Conversation(conversation_id=record.conversation_id, path_id=record.path_id)
            manifest.conversations.append(conv)
        conv.error = None
    else:
        _apply_to_conversation(_named(manifest, record.conversation_id), record)


def apply_all(manifest: Manifest, records: Iterable[Record]) -> None:
    """``apply`` each record in turn, the key records folded in one pass at the end: applied one
    at a time, each ``SetKeys`` rebuilt the list of keys entries, so a journal setting N users'
    keys took N * N steps to read (round 104: 40,000, 3.6 MB, 34 s). The result is ``apply``'s: the
    entries no key record replaced, in their order, then the last one set for each user, in the
    order they were last set. No other record reads the keys."""
    latest: dict[str, KeysEntry] | None = None  # user -> the last entry set, once a key record is met
    kept: list[KeysEntry] = []  # the entries from before it (none after a ResetKeys)
    for record in records:
        if isinstance(record, ResetKeys):
            latest, kept = {}, []
        elif isinstance(record, SetKeys):
            if latest is None:
                latest, kept = {}, list(manifest.keys)
            latest.pop(record.entry.user_id, None)  # set again: it moves to the end
            latest[record.entry.user_id] = record.entry
        else:
            apply(manifest, record)
    if latest is not None:
        manifest.keys = [k for k in kept if k.user_id not in latest] + list(latest.values())


def _apply_to_conversation(conv: Conversation, record: Record) -> None:
    if isinstance(record, AddPage):
        conv.pages.append(record.entry)
        conv.next_token = record.entry.next_token
    elif isinstance(record, SetMetadata):
        conv.metadata = record.entry
    elif isinstance(record, SetExpected):
        conv.expected_conversation_id = record.expected
    elif isinstance(record, FinishConversation):
        conv.complete = not record.incomplete
        conv.incomplete = list(record.incomplete)
        conv.error = record.error
    elif isinstance(record, TokenSeen):  # (its index is checked by ``check_applicable``)
        conv.pages[record.index].token_at = record.token_at


def _named(manifest: Manifest, conversation_id: str) -> Conversation:
    conv = manifest.conversation(conversation_id)
    if conv is None:
        raise ManifestError(f"the journal names unknown conversation {printable(conversation_id)}")
    return conv


# ------------------------------------------------------------------------------------- validation
def validate(manifest: Manifest) -> None:
    """Every id and file name as the writer makes them (``ManifestError`` otherwise). Runs before
    anything named in the manifest is read or written: a name is never trusted to stay inside the
    directory, and a conversation listed twice would make two histories share files."""
    paths: set[str] = set()
    for conv in manifest.conversations:
        path_id = _validate_conversation(conv)
        if path_id in paths:
            raise ManifestError(f"conversation {printable(conv.conversation_id)} is listed twice")
        paths.add(path_id)
    for entry in manifest.keys:
        _validate_keys_entry(entry)
    state = manifest.users_not_fetched
    if state is not None and not all(is_user_id(u) for u in state.sample):
        raise ManifestError("users_not_fetched.sample holds a value that is not a user id")


def _validate_conversation(conv: Conversation) -> str:
    """Checks one conversation entry; its path id (the only name its files may live under)."""
    path_id = _path_id(conv.conversation_id, "conversation_id")
    if conv.path_id != path_id:
        raise ManifestError(f"path_id of {printable(conv.conversation_id)} is not {path_id}")
    for number, page in enumerate(conv.pages, 1):
        _check_entry(page, page_name(path_id, number))
    if conv.metadata is not None:
        _check_entry(conv.metadata, metadata_name(path_id))
    if conv.expected_conversation_id is not None:
        _path_id(conv.expected_conversation_id, "expected_conversation_id")
    return path_id


def _path_id(conversation_id: str, what: str) -> str:
    try:
        return conversation_path_id(conversation_id)
    except ValueError as exc:  # UsageError (a ValueError) for anything that is not an id
        raise ManifestError(f"{what}: {exc}") from None


def _validate_keys_entry(entry: KeysEntry) -> None:
    if entry.file is None:
        return
    if not is_user_id(entry.user_id):
        raise ManifestError(f"keys entry for {printable(entry.user_id[:40])} names a file but is not a user id")
    _check_entry(entry, keys_name(entry.user_id))


def _check_entry(entry: FileEntry | KeysEntry, name: str) -> None:
    if entry.file != name:
        raise ManifestError(f"file {printable(str(entry.file)[:80])} is not {name}")
    if not _SHA256.fullmatch(entry.sha256):
        raise ManifestError(f"{name} has no valid sha256")
    if len(entry.token_at) > MAX_TOKEN_LOCATIONS:  # review 65: 5,000 of them decoded the body 5,000 times
        raise ManifestError(f"{name} has more than {MAX_TOKEN_LOCATIONS} token_at locations (the writer records "
                            "at most that many)")
    if not all(_token_location(location) for location in entry.token_at):
        raise ManifestError(f"{name} has a malformed token_at")


MAX_TOKEN_LOCATIONS = 100  # what fetch.token_offsets and apibodies.json_token_paths record at most


def _token_location(location: TokenLocation) -> bool:
    def count(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0
    if len(location) == 2:
        return count(location[0]) and count(location[1]) and location[1] > 0
    return bool(len(location) == 4 and location[0] in ("json", "json-key", "b64")
                and isinstance(location[1], list) and all(count(i) for i in location[1])
                and (location[0] == "json" or location[1]) and count(location[2]) and count(location[3])
                and location[3] > 0)

