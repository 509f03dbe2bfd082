"""Wire decoding: strict base64 and a bounded Thrift *binary* reader for ``MessageEvent``.

Written by hand on purpose: the available Thrift libraries either need generated code or an IDL
at runtime, recurse without a depth bound when skipping unknown fields, and raise generic errors.
An auditor needs the opposite: hostile input must end in a precise, bounded ``MalformedEvent``
reason (sizes, list lengths, cumulative elements, nesting), never a crash. Layouts follow
``protocol.md`` §1.
"""

from __future__ import annotations

import binascii
import re
import struct
from dataclasses import dataclass
from typing import Any

import msgspec

# Thrift binary type codes.
T_STOP, T_BOOL, T_BYTE, T_DOUBLE, T_I16, T_I32, T_I64 = 0, 2, 3, 4, 6, 8, 10
T_STRING, T_STRUCT, T_MAP, T_SET, T_LIST = 11, 12, 13, 14, 15
TYPE_NAMES = {0: "stop", 2: "bool", 3: "byte", 4: "double", 6: "i16", 8: "i32", 10: "i64",
              11: "string", 12: "struct", 13: "map", 14: "set", 15: "list"}
_FIXED_SIZES = {T_BOOL: 1, T_BYTE: 1, T_DOUBLE: 8, T_I16: 2, T_I32: 4, T_I64: 8}

_HEADER = struct.Struct(">bh")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_LIST_HEADER = struct.Struct(">bi")
_MAP_HEADER = struct.Struct(">bbi")


class MalformedEvent(Exception):
    """Raised inside the decoder; callers turn it into a ``malformed`` result."""


@dataclass(frozen=True)
class Limits:
    """Bounds on hostile input; the container limits mirror the official SDK's safe reader."""

    max_event_bytes: int = 16 * 1024 * 1024
    max_container_elements: int = 10_000
    max_total_elements: int = 100_000
    max_depth: int = 64


DEFAULT_LIMITS = Limits()

# --------------------------------------------------------------------------------------------
# Base64
# --------------------------------------------------------------------------------------------
_B64_RE = re.compile(r"[A-Za-z0-9+/]*")
try:
    binascii.a2b_base64(b"", strict_mode=True)
    _HAS_STRICT_MODE = True
except TypeError:  # Python 3.10
    _HAS_STRICT_MODE = False


def b64decode_strict(text: str, what: str = "value") -> bytes:
    """Standard-alphabet base64, padding optional, canonical; anything else is an error.

    Mirrors the SDK's padding-indifferent decoder: URL-safe characters, whitespace, partial
    padding and non-zero trailing bits are rejected with a precise reason.
    """
    if not isinstance(text, str):
        raise MalformedEvent(f"{what} is not a string")
    if _HAS_STRICT_MODE and text.isascii():
        try:  # fast path; any failure is re-diagnosed below for a precise reason
            if len(text) % 4 and "=" in text:
                raise binascii.Error("partial padding")
            padded = text if len(text) % 4 == 0 else text + "=" * (-len(text) % 4)
            raw = binascii.a2b_base64(padded, strict_mode=True)
            if _canonical_tail(raw, text):
                return raw
        except binascii.Error:
            pass
    return _b64decode_diagnose(text, what)


_B64_VALUE = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
_UNUSED_BITS = {1: 0x0F, 2: 0x03}  # bytes in the last group -> bits of the last character that must be 0


def _canonical_tail(raw: bytes, text: str) -> bool:
    """Non-zero trailing bits would make two strings decode to the same bytes: refuse them."""
    tail = len(raw) % 3
    if tail == 0:
        return True
    last = text.rstrip("=")[-1]
    return _B64_VALUE[last] & _UNUSED_BITS[tail] == 0


def _b64decode_diagnose(text: str, what: str) -> bytes:
    body = text.rstrip("=")
    pad = len(text) - len(body)
    match = _B64_RE.fullmatch(body)
    if match is None:
        bad = next(i for i, ch in enumerate(body) if not _B64_RE.fullmatch(ch))
        raise MalformedEvent(f"{what}: invalid base64 character {body[bad]!r} at offset {bad}")
    if len(body) % 4 == 1:
        raise MalformedEvent(f"{what}: invalid base64 length {len(body)}")
    expected_pad = (-len(body)) % 4
    if pad and pad != expected_pad:
        raise MalformedEvent(f"{what}: invalid base64 padding")
    try:
        raw = binascii.a2b_base64(body + "=" * expected_pad)
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - regex pre-checks
        raise MalformedEvent(f"{what}: {exc}") from None
    if not _canonical_tail(raw, body):
        raise MalformedEvent(f"{what}: non-canonical base64 (trailing bits set)")
    return raw


def b64encode_nopad(raw: bytes) -> str:
    """Standard base64 without padding, the form embedded in signed payloads."""
    return binascii.b2a_base64(raw, newline=False).decode().rstrip("=")


# --------------------------------------------------------------------------------------------
# Typed structures (protocol.md §1.2). Every field is optional on the wire.
# --------------------------------------------------------------------------------------------
class SigningKeyInfo(msgspec.Struct, omit_defaults=True):
    member_id: str | None = None
    public_key_version: str | None = None
    signing_public_key: str | None = None


class EventSignature(msgspec.Struct, omit_defaults=True):
    signature: str | None = None
    public_key_version: str | None = None
    signature_version: str | None = None
    signing_public_key: str | None = None
    message_signing_key_info_list: list[SigningKeyInfo] | None = None


class MessageEvent(msgspec.Struct):
    """A decoded ``MessageEvent``; ``kind`` names the detail variant (e.g. ``GroupChangeEvent.GroupCreate``)."""

    sequence_id: str | None = None
    message_id: str | None = None
    sender_id: str | None = None
    conversation_id: str | None = None
    conversation_token: str | None = None
    created_at_msec: str | None = None
    kind: str | None = None
    body: dict[str, Any] | None = None
    relay_source: int | None = None
    signature: EventSignature | None = None
    previous_sequence_id: str | None = None
    is_trusted: bool | None = None


# Schema tables: field id -> (name, wire type, sub). For strings sub is "utf8" or "bin"; for
# structs a schema; for lists (element type, element sub).
Schema = dict[int, tuple[str, int, Any]]

_UTF8, _BIN = "utf8", "bin"
_STR_LIST = (T_STRING, _UTF8)
_PLACEHOLDER: Schema = {1: ("placeholder", T_STRING, _UTF8)}

SIGNING_KEY_INFO: Schema = {
    1: ("member_id", T_STRING, _UTF8),
    2: ("public_key_version", T_STRING, _UTF8),
    3: ("signing_public_key", T_STRING, _UTF8),
}
EVENT_SIGNATURE: Schema = {
    1: ("signature", T_STRING, _UTF8),
    2: ("public_key_version", T_STRING, _UTF8),
    3: ("signature_version", T_STRING, _UTF8),
    4: ("signing_public_key", T_STRING, _UTF8),
    5: ("message_signing_key_info_list", T_LIST, (T_STRUCT, SIGNING_KEY_INFO)),
}
FRANKING: Schema = {
    1: ("franking_tag", T_STRING, _BIN),
    2: ("encrypted_nonce", T_STRING, _BIN),
    4: ("encrypted_media_hashes", T_LIST, (T_STRING, _BIN)),
}
MESSAGE_CREATE: Schema = {
    100: ("contents", T_STRING, _BIN),
    101: ("conversation_key_version", T_STRING, _UTF8),
    102: ("should_notify", T_BOOL, None),
    103: ("ttl_msec", T_I64, None),
    104: ("delivered_at_msec", T_I64, None),
    105: ("is_pending_public_key", T_BOOL, None),
    106: ("priority", T_I32, None),
    107: ("additional_actions", T_LIST, (T_I32, None)),
    108: ("franking_data", T_STRUCT, FRANKING),
    109: ("is_message_request", T_BOOL, None),
}
PARTICIPANT_KEY: Schema = {
    1: ("user_id", T_STRING, _UTF8),
    2: ("encrypted_conversation_key", T_STRING, _UTF8),
    3: ("public_key_version", T_STRING, _UTF8),
}
KEY_CHANGE: Schema = {
    1: ("conversation_key_version", T_STRING, _UTF8),
    2: ("conversation_participant_keys", T_LIST, (T_STRUCT, PARTICIPANT_KEY)),
    5: ("for_key_rotation", T_BOOL, None),
}  # field 4 (ratchet tree) is never signed nor read: skipped as unknown.
INVITE_ENABLE: Schema = {
    1: ("expires_at_msec", T_I64, None),
    2: ("invite_url", T_STRING, _UTF8),
    3: ("affiliate_id", T_STRING, _UTF8),
}
ADMIN_SETTINGS: Schema = {i: (n, T_BOOL, None) for i, n in enumerate(
    ["edit_group_info", "edit_message_ttl", "block_screen_capture", "add_member", "send_message",
     "start_call"], start=1)}
GROUP_CHANGE_VARIANTS: dict[int, tuple[str, Schema]] = {
    1: ("GroupCreate", {
        1: ("member_ids", T_LIST, _STR_LIST), 2: ("admin_ids", T_LIST, _STR_LIST),
        3: ("title", T_STRING, _UTF8), 4: ("avatar_url", T_STRING, _UTF8),
        5: ("conversation_key_version", T_STRING, _UTF8),
        6: ("is_legacy_group_upgrade", T_BOOL, None), 7: ("ttl_msec", T_I64, None)}),
    2: ("GroupTitleChange", {1: ("custom_title", T_STRING, _UTF8),
                             2: ("conversation_key_version", T_STRING, _UTF8)}),
    3: ("GroupAvatarUrlChange", {1: ("custom_avatar_url", T_STRING, _UTF8),
                                 2: ("conversation_key_version", T_STRING, _UTF8)}),
    4: ("GroupAdminAddChange", {1: ("admin_ids", T_LIST, _STR_LIST)}),
    5: ("GroupMemberAddChange", {
        1: ("member_ids", T_LIST, _STR_LIST), 2: ("current_member_ids", T_LIST, _STR_LIST),
        3: ("current_admin_ids", T_LIST, _STR_LIST), 4: ("current_title", T_STRING, _UTF8),
        5: ("current_avatar_url", T_STRING, _UTF8),
        6: ("conversation_key_version", T_STRING, _UTF8), 7: ("current_ttl_msec", T_I64, None),
        8: ("current_pending_member_ids", T_LIST, _STR_LIST),
        9: ("screen_capture_blocking_enabled", T_BOOL, None),
        11: ("group_invite_enable", T_STRUCT, INVITE_ENABLE),
        12: ("admin_settings", T_STRUCT, ADMIN_SETTINGS)}),
    6: ("GroupAdminRemoveChange", {1: ("admin_ids", T_LIST, _STR_LIST)}),
    7: ("GroupMemberRemoveChange", {1: ("member_ids", T_LIST, _STR_LIST)}),
    8: ("GroupInviteEnable", INVITE_ENABLE),
    9: ("GroupInviteDisable", {1: ("disabled_by_member_id", T_STRING, _UTF8)}),
    10: ("GroupJoinRequest", {1: ("requesting_user_id", T_STRING, _UTF8)}),
    11: ("GroupJoinReject", {1: ("rejected_user_ids", T_LIST, _STR_LIST)}),
    12: ("GroupAdminSettingsChange", ADMIN_SETTINGS),
}
METADATA_VARIANTS: dict[int, tuple[str, Schema]] = {
    1: ("MessageDurationChange", {1: ("ttl_msec", T_I64, None),
                                  2: ("apply_to_all_messages", T_BOOL, None)}),
    2: ("MessageDurationRemove", {1: ("current_ttl_msec", T_I64, None)}),
    3: ("MuteConversation", {1: ("muted_conversation_ids", T_LIST, _STR_LIST)}),
    4: ("UnmuteConversation", {1: ("unmuted_conversation_ids", T_LIST, _STR_LIST)}),
    5: ("EnableScreenCaptureDetection", _PLACEHOLDER),
    6: ("DisableScreenCaptureDetection", _PLACEHOLDER),
    7: ("EnableScreenCaptureBlocking", _PLACEHOLDER),
    8: ("DisableScreenCaptureBlocking", _PLACEHOLDER),
}
# MessageEventDetail union: id -> (kind, schema, nested union variants or None).
DETAIL_VARIANTS: dict[int, tuple[str, Schema | None, dict[int, tuple[str, Schema]] | None]] = {
    1: ("MessageCreateEvent", MESSAGE_CREATE, None),
    3: ("ConversationKeyChangeEvent", KEY_CHANGE, None),
    4: ("GroupChangeEvent", None, GROUP_CHANGE_VARIANTS),
    5: ("MessageFailureEvent", {1: ("failure_type", T_I32, None),
                                2: ("rate_limit_tier", T_I32, None)}, None),
    6: ("MessageTypingEvent", {1: ("conversation_id", T_STRING, _UTF8)}, None),
    7: ("MessageDeleteEvent", {1: ("sequence_ids", T_LIST, _STR_LIST),
                               2: ("delete_message_action", T_I32, None)}, None),
    8: ("ConversationDeleteEvent", {
        1: ("conversation_id", T_STRING, _UTF8),
        2: ("options", T_STRUCT, {1: ("clear_all_messages", T_BOOL, None),
                                  2: ("sort_order_msec", T_I64, None)})}, None),
    9: ("ConversationMetadataChangeEvent", None, METADATA_VARIANTS),
    10: ("GrokSearchResponseEvent", {1: ("search_response_id", T_STRING, _UTF8)}, None),
    12: ("MarkConversationReadEvent", {1: ("seen_until_sequence_id", T_STRING, _UTF8),
                                       2: ("seen_at_millis", T_I64, None)}, None),
    13: ("MarkConversationUnreadEvent", {1: ("seen_until_sequence_id", T_STRING, _UTF8)}, None),
    14: ("MemberAccountDeleteEvent", {1: ("member_id", T_STRING, _UTF8)}, None),
}
_DETAIL = "detail-union"
ENVELOPE: Schema = {
    1: ("sequence_id", T_STRING, _UTF8),
    2: ("message_id", T_STRING, _UTF8),
    3: ("sender_id", T_STRING, _UTF8),
    4: ("conversation_id", T_STRING, _UTF8),
    5: ("conversation_token", T_STRING, _UTF8),
    6: ("created_at_msec", T_STRING, _UTF8),
    7: ("detail", T_STRUCT, _DETAIL),
    8: ("relay_source", T_I32, None),
    9: ("signature", T_STRUCT, EVENT_SIGNATURE),
    10: ("previous_sequence_id", T_STRING, _UTF8),
    11: ("is_trusted", T_BOOL, None),
}


_FAST_UTF8, _FAST_BIN, _FAST_BOOL, _FAST_STRUCT = 0, 1, 2, 3
_FAST_TABLES: dict[int, dict[bytes, tuple[str, int]]] = {}


def _fast_table(schema: Schema) -> dict[bytes, tuple[str, int]]:
    """Field headers (type byte + big-endian id) of a schema's common fields -> (name, kind), so the
    reader recognises a well-typed field with one dictionary lookup."""
    table = {}
    for fid, (name, ttype, sub) in schema.items():
        header = bytes([ttype]) + fid.to_bytes(2, "big")
        if ttype == T_STRING:
            table[header] = (name, _FAST_BIN if sub == _BIN else _FAST_UTF8)
        elif ttype == T_BOOL:
            table[header] = (name, _FAST_BOOL)
        elif ttype == T_STRUCT:
            table[header] = (name, _FAST_STRUCT)
    _FAST_TABLES[id(schema)] = table
    return table


class _Reader:
    """Cursor over one buffer with element and depth budgets."""

    __slots__ = ("buf", "pos", "end", "limits", "elements")

    def __init__(self, buf: bytes, limits: Limits) -> None:
        self.buf = buf
        self.pos = 0
        self.end = len(buf)
        self.limits = limits
        self.elements = 0

    def need(self, n: int, what: str) -> None:
        if self.pos + n > self.end:
            raise MalformedEvent(
                f"truncated Thrift: {what} needs {n} bytes at offset {self.pos}, "
                f"{self.end - self.pos} left")

    def field_header(self) -> tuple[int, int]:
        if self.pos >= self.end:
            raise MalformedEvent(f"truncated Thrift: missing field header or STOP at offset {self.pos}")
        ttype = self.buf[self.pos]
        if ttype == T_STOP:
            self.pos += 1
            return T_STOP, 0
        self.need(3, "field header")
        ttype, fid = _HEADER.unpack_from(self.buf, self.pos)
        self.pos += 3
        return ttype, fid

    def length(self, what: str) -> int:
        self.need(4, what + " length")
        (n,) = _I32.unpack_from(self.buf, self.pos)
        self.pos += 4
        if n < 0:
            raise MalformedEvent(f"negative {what} length {n} at offset {self.pos - 4}")
        return n

    def raw_string(self) -> bytes:
        n = self.length("string")
        if self.pos + n > self.end:
            raise MalformedEvent(
                f"string length {n} at offset {self.pos - 4} exceeds the {self.end - self.pos} "
                "bytes left")
        start = self.pos
        self.pos += n
        return self.buf[start:self.pos]

    def list_header(self) -> tuple[int, int]:
        self.need(5, "list header")
        etype, n = _LIST_HEADER.unpack_from(self.buf, self.pos)
        self.pos += 5
        return etype, n

    def count(self, n: int, what: str) -> None:
        if n > self.limits.max_container_elements:
            raise MalformedEvent(
                f"{what} of {n} elements exceeds the limit of {self.limits.max_container_elements}")
        self.elements += n
        if self.elements > self.limits.max_total_elements:
            raise MalformedEvent(
                f"more than {self.limits.max_total_elements} container elements in one event")

    def scalar(self, ttype: int) -> Any:
        if ttype == T_BOOL:
            self.need(1, "bool")
            value = self.buf[self.pos]
            self.pos += 1
            return value != 0
        if ttype == T_I32:
            self.need(4, "i32")
            (v,) = _I32.unpack_from(self.buf, self.pos)
            self.pos += 4
            return v
        if ttype == T_I64:
            self.need(8, "i64")
            (v,) = _I64.unpack_from(self.buf, self.pos)
            self.pos += 8
            return v
        size = _FIXED_SIZES.get(ttype)
        if size is None:  # pragma: no cover - callers only pass scalar codes
            raise MalformedEvent(f"unexpected type {ttype}")
        self.need(size, TYPE_NAMES[ttype])
        start = self.pos
        self.pos += size
        return self.buf[start:self.pos]

    def skip(self, ttype: int, depth: int) -> None:
        """Skip a value of an unknown field, bounded like every other read."""
        if depth > self.limits.max_depth:
            raise MalformedEvent(f"nesting deeper than {self.limits.max_depth} levels")
        if ttype in _FIXED_SIZES:
            self.need(_FIXED_SIZES[ttype], TYPE_NAMES[ttype])
            self.pos += _FIXED_SIZES[ttype]
        elif ttype == T_STRING:
            self.raw_string()
        elif ttype == T_STRUCT:
            while True:
                ftype, _ = self.field_header()
                if ftype == T_STOP:
                    return
                self.skip(ftype, depth + 1)
        elif ttype in (T_LIST, T_SET):
            etype, n = self.list_header()
            self.check_container(etype, n, "list")
            for _ in range(n):
                self.skip(etype, depth + 1)
        elif ttype == T_MAP:
            self.need(6, "map header")
            ktype, vtype, n = _MAP_HEADER.unpack_from(self.buf, self.pos)
            self.pos += 6
            if n:
                self.check_type(ktype, "map key")
                self.check_type(vtype, "map value")
            self.check_container(T_BOOL, n, "map")
            for _ in range(n):
                self.skip(ktype, depth + 1)
                self.skip(vtype, depth + 1)
        else:
            raise MalformedEvent(f"unknown Thrift type code {ttype} at offset {self.pos - 3}")

    def check_type(self, ttype: int, what: str) -> None:
        if ttype not in TYPE_NAMES or ttype == T_STOP:
            raise MalformedEvent(f"unknown Thrift {what} type code {ttype}")

    def check_container(self, etype: int, n: int, what: str) -> None:
        if n < 0:
            raise MalformedEvent(f"negative {what} size {n}")
        if n:
            self.check_type(etype, what + " element")
        self.count(n, what)
        min_size = _FIXED_SIZES.get(etype, 1 if etype == T_STRUCT else 4)
        if n * min_size > self.end - self.pos:
            raise MalformedEvent(
                f"{what} of {n} elements cannot fit in the {self.end - self.pos} bytes left")

    def value(self, name: str, ttype: int, sub: Any, depth: int) -> Any:
        if ttype == T_STRING:
            raw = self.raw_string()
            if sub == _BIN:
                return raw
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedEvent(f"field {name} is not valid UTF-8") from None
        if ttype == T_STRUCT:
            if sub is _DETAIL:
                value, unknown = self.union(DETAIL_VARIANTS, depth + 1, "MessageEventDetail")
                if value is None:
                    return None if unknown is None else (f"#{unknown}", {})
                return value
            return self.struct(sub, depth + 1, name)
        if ttype == T_LIST:
            etype, n = self.list_header()
            want, esub = sub
            if n and etype != want:
                raise MalformedEvent(
                    f"list {name} has {TYPE_NAMES.get(etype, etype)} elements, expected "
                    f"{TYPE_NAMES[want]}")
            self.check_container(want, n, f"list {name}")
            return [self.value(name, want, esub, depth + 1) for _ in range(n)]
        return self.scalar(ttype)

    def struct(self, schema: Schema, depth: int, name: str) -> dict[str, Any]:
        """Read a struct. Well-formed string and bool fields (nearly all of an event) take an inlined
        fast path; anything else, including every error, goes through the checked slow path, which
        re-reads the field and produces the precise reason."""
        if depth > self.limits.max_depth:
            raise MalformedEvent(f"nesting deeper than {self.limits.max_depth} levels")
        out: dict[str, Any] = {}
        buf, end = self.buf, self.end
        pos = self.pos
        fast = _FAST_TABLES.get(id(schema)) or _fast_table(schema)
        while True:
            if pos < end and buf[pos] == T_STOP:
                self.pos = pos + 1
                return out
            spec = fast.get(buf[pos:pos + 3])
            if spec is not None:
                fname, kind = spec
                if kind <= _FAST_BIN:
                    if pos + 7 <= end:
                        n = _I32.unpack_from(buf, pos + 3)[0]
                        start = pos + 7
                        if 0 <= n <= end - start:
                            pos = start + n
                            if kind == _FAST_BIN:
                                out[fname] = buf[start:pos]
                                continue
                            try:
                                out[fname] = buf[start:pos].decode("utf-8")
                                continue
                            except UnicodeDecodeError:
                                raise MalformedEvent(f"field {name}.{fname} is not valid UTF-8") from None
                elif kind == _FAST_BOOL:
                    if pos + 3 < end:
                        out[fname] = buf[pos + 3] != 0
                        pos += 4
                        continue
                else:
                    self.pos = pos + 3
                    out[fname] = self.value(fname, T_STRUCT, schema[(buf[pos + 1] << 8) | buf[pos + 2]][2], depth)
                    pos = self.pos
                    continue
            self.pos = pos
            ttype, fid = self.field_header()
            if ttype == T_STOP:
                return out
            spec = schema.get(fid)
            if spec is None:
                self.skip(ttype, depth + 1)
            else:
                fname, want, sub = spec
                if ttype != want:
                    raise MalformedEvent(
                        f"field {name}.{fname} (id {fid}) has wire type "
                        f"{TYPE_NAMES.get(ttype, ttype)}, expected {TYPE_NAMES[want]}")
                out[fname] = self.value(f"{name}.{fname}", ttype, sub, depth)
            pos = self.pos

    def union(self, variants: dict[int, tuple], depth: int, name: str) -> tuple[Any, int | None]:
        """Read a union (a struct with one field set).

        Returns ``((kind, body), None)`` for a known member, ``(None, field_id)`` when only unknown
        members were present and ``(None, None)`` for an empty union.
        """
        if depth > self.limits.max_depth:
            raise MalformedEvent(f"nesting deeper than {self.limits.max_depth} levels")
        chosen: Any = None
        unknown: int | None = None
        while True:
            ttype, fid = self.field_header()
            if ttype == T_STOP:
                return chosen, (None if chosen is not None else unknown)
            if fid not in variants:
                unknown = fid if unknown is None else unknown
                self.skip(ttype, depth + 1)
                continue
            if chosen is not None:
                raise MalformedEvent(f"union {name} has more than one field set")
            if ttype != T_STRUCT:
                raise MalformedEvent(
                    f"union {name} member {fid} has wire type {TYPE_NAMES.get(ttype, ttype)}, "
                    "expected struct")
            chosen = self._variant(variants[fid], depth + 1, name)

    def _variant(self, variant: tuple, depth: int, name: str) -> tuple[str, dict[str, Any]]:
        if len(variant) == 2:  # member of a nested union: (kind, schema)
            kind, schema = variant
            return kind, self.struct(schema, depth, f"{name}.{kind}")
        kind, schema, nested = variant
        if nested is None:
            return kind, self.struct(schema, depth, kind)
        return self._wrapped_union(kind, nested, depth)

    def _wrapped_union(self, kind: str, nested: dict, depth: int) -> tuple[str, dict[str, Any]]:
        """GroupChangeEvent / ConversationMetadataChangeEvent: a struct whose field 1 is a union."""
        sub_kind, body, extra = "?", {}, {}
        while True:
            ttype, fid = self.field_header()
            if ttype == T_STOP:
                return f"{kind}.{sub_kind}", {**body, **extra}
            if fid == 1:
                if ttype != T_STRUCT:
                    raise MalformedEvent(
                        f"field {kind}.1 has wire type {TYPE_NAMES.get(ttype, ttype)}, expected struct")
                value, unknown = self.union(nested, depth + 1, kind)
                if value is not None:
                    sub_kind, body = value
                elif unknown is not None:
                    sub_kind = f"#{unknown}"
            elif fid == 2 and kind == "GroupChangeEvent" and ttype == T_BOOL:
                extra["for_key_rotation"] = self.scalar(T_BOOL)
            else:
                self.skip(ttype, depth + 1)


def decode_event_bytes(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> MessageEvent:
    """Decode a TBinary ``MessageEvent``; bytes after the top-level STOP are ignored (as the SDK does)."""
    if len(raw) > limits.max_event_bytes:
        raise MalformedEvent(
            f"event of {len(raw)} bytes exceeds the limit of {limits.max_event_bytes}")
    reader = _Reader(raw, limits)
    fields = reader.struct(ENVELOPE, 1, "MessageEvent")
    detail = fields.pop("detail", None)
    kind, body = detail if detail is not None else (None, None)
    signature = fields.pop("signature", None)
    if signature is not None:
        infos = signature.get("message_signing_key_info_list")
        if infos is not None:
            signature["message_signing_key_info_list"] = [SigningKeyInfo(**i) for i in infos]
        fields["signature"] = EventSignature(**signature)
    return MessageEvent(kind=kind, body=body, **fields)


def decode_event_b64(text: str, limits: Limits = DEFAULT_LIMITS) -> tuple[bytes, MessageEvent]:
    """Base64 text -> (raw bytes, event); raises ``MalformedEvent`` with a precise reason."""
    if not isinstance(text, str):
        raise MalformedEvent("encoded_event is not a string")
    if len(text) > limits.max_event_bytes * 4 // 3 + 4:
        raise MalformedEvent(
            f"encoded_event of {len(text)} characters exceeds the limit of "
            f"{limits.max_event_bytes} decoded bytes")
    raw = b64decode_strict(text, "encoded_event")
    return raw, decode_event_bytes(raw, limits)
