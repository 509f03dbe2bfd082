"""The fast path of ``wire.decode_event_bytes``: the common shape of every event kind, nothing else.

An event read here is exactly the event the generic reader (``wire._Reader``) returns: the same
``MessageEvent``, field for field. The fast path gives up (returns None) the moment anything is
unusual — a wire type other than the declared one, a repeated or unknown field, a union with
other than one known member, a map, a struct with required fields, a list header naming another
element type, any bound reached, invalid UTF-8, a truncation — and the generic reader then decides
the event, with its precise reason. ``tests/test_same_reports.py`` checks both paths agree on
every vector and on a structural-fuzz corpus, ``tests/test_wire.py`` at every bound.

The envelope, its signature and a ``MessageCreateEvent`` (nearly every event of a history) are
read straight through, fields in increasing id order; the other details by the table-driven
``_Cursor``.
"""

from __future__ import annotations

import struct
from typing import Any

from .wire import (
    _BIN,
    _MIN_SIZES,
    ENVELOPE,
    T_BOOL,
    T_I32,
    T_I64,
    T_LIST,
    T_STRING,
    T_STRUCT,
    EventSignature,
    Limits,
    MessageEvent,
    SigningKeyInfo,
    StructSchema,
    UnionSchema,
    _resolve_detail,
)

_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_UTF8, _BYTES, _BOOL, _INT32, _INT64, _STRUCT, _UNION, _LIST = range(8)

# header (type byte + big-endian id) -> (name, kind, sub); sub: a table, or (element type, element kind, sub)
Table = dict[bytes, tuple[str, int, Any]]


class _Unusual(Exception):
    """Not the common shape: the generic reader decides."""


def _header(ttype: int, fid: int) -> bytes:
    return bytes([ttype]) + fid.to_bytes(2, "big", signed=True)


def _element(etype: int, esub: Any) -> tuple[int, int, Any] | None:
    if etype == T_STRING:
        return etype, (_BYTES if esub == _BIN else _UTF8), None
    if etype == T_I32:
        return etype, _INT32, None
    if etype == T_STRUCT and isinstance(esub, StructSchema):
        sub = _struct_table(esub)
        return (etype, _STRUCT, sub) if sub is not None else None
    return None  # lists of unions, lists of lists, maps: the generic reader


def _struct_table(schema: StructSchema) -> Table | None:
    """The fast table of a struct, or None when the struct is never read fast (required fields)."""
    if schema.required:
        return None
    table: Table = {}
    for fid, (name, ttype, sub) in schema.items():
        spec: tuple[str, int, Any] | None = None
        if ttype == T_STRING:
            spec = (name, _BYTES if sub == _BIN else _UTF8, None)
        elif ttype == T_BOOL:
            spec = (name, _BOOL, None)
        elif ttype == T_I32:
            spec = (name, _INT32, None)
        elif ttype == T_I64:
            spec = (name, _INT64, None)
        elif ttype == T_STRUCT and isinstance(sub, UnionSchema):
            members = _union_table(sub)
            spec = (name, _UNION, members) if members is not None else None
        elif ttype == T_STRUCT:
            inner = _struct_table(sub)
            spec = (name, _STRUCT, inner) if inner is not None else None
        elif ttype == T_LIST:
            element = _element(*sub)
            spec = (name, _LIST, element) if element is not None else None
        if spec is not None:  # a field left out is read by the generic reader when it occurs
            table[_header(ttype, fid)] = spec
    return table


def _union_table(schema: UnionSchema) -> dict[bytes, tuple[str, Table]] | None:
    members = {}
    for fid, (kind, member) in schema.members.items():
        if isinstance(member, UnionSchema):
            return None  # a union of unions (product.thrift): the generic reader
        table = _struct_table(member)
        if table is not None:
            members[_header(T_STRUCT, fid)] = (kind, table)
    return members


_ENVELOPE_TABLE = _struct_table(ENVELOPE)
assert _ENVELOPE_TABLE is not None


class _Cursor:
    """The bounds of one event: buffer end, depth and the cumulative element budget."""

    __slots__ = ("buf", "end", "max_depth", "max_container", "elements_left")

    def __init__(self, buf: bytes, limits: Limits) -> None:
        self.buf = buf
        self.end = len(buf)
        self.max_depth = limits.max_depth
        self.max_container = limits.max_container_elements
        self.elements_left = limits.max_total_elements

    def struct(self, pos: int, table: Table, depth: int) -> tuple[dict[str, Any], int]:
        if depth > self.max_depth:
            raise _Unusual
        buf, end = self.buf, self.end
        lookup, unpack = table.get, _I32.unpack_from
        out: dict[str, Any] = {}
        read = 0
        while True:
            if buf[pos] == 0:  # IndexError past the end: the generic reader reports the truncation
                if read != len(out):
                    raise _Unusual  # a repeated field: last-wins and shadowing are the generic reader's
                return out, pos + 1
            spec = lookup(buf[pos:pos + 3])
            if spec is None:
                raise _Unusual
            name, kind, sub = spec
            read += 1
            if kind <= _BYTES:
                n = unpack(buf, pos + 3)[0]  # struct.error when truncated
                pos += 7
                if n < 0 or n > end - pos:
                    raise _Unusual
                if kind:
                    out[name] = buf[pos:pos + n]
                else:
                    out[name] = buf[pos:pos + n].decode("utf-8")
                pos += n
            elif kind == _BOOL:
                out[name] = buf[pos + 3] != 0
                pos += 4
            elif kind == _INT32:
                out[name] = unpack(buf, pos + 3)[0]
                pos += 7
            elif kind == _INT64:
                out[name] = _I64.unpack_from(buf, pos + 3)[0]
                pos += 11
            elif kind == _STRUCT:
                out[name], pos = self.struct(pos + 3, sub, depth + 1)
            elif kind == _UNION:
                out[name], pos = self.union(pos + 3, sub, depth + 1)
            else:
                out[name], pos = self.list(pos + 3, sub, depth)

    def union(self, pos: int, members: dict[bytes, tuple[str, Table]], depth: int) -> tuple[tuple[str, Any], int]:
        """Exactly one known member, then STOP."""
        if depth > self.max_depth:
            raise _Unusual
        member = members.get(self.buf[pos:pos + 3])
        if member is None:
            raise _Unusual
        kind, table = member
        body, pos = self.struct(pos + 3, table, depth + 1)
        if self.buf[pos] != 0:
            raise _Unusual
        return (kind, body), pos + 1

    def list(self, pos: int, element: tuple[int, int, Any], depth: int) -> tuple[list[Any], int]:
        etype, kind, sub = element
        buf, end = self.buf, self.end
        if pos + 5 > end or buf[pos] != etype:
            raise _Unusual
        n = _I32.unpack_from(buf, pos + 1)[0]
        pos += 5
        self.elements_left -= n
        if n < 0 or n > self.max_container or self.elements_left < 0 or n * _MIN_SIZES[etype] > end - pos:
            raise _Unusual
        items: list[Any] = []
        if kind == _STRUCT:
            for _ in range(n):
                value, pos = self.struct(pos, sub, depth + 1)
                items.append(value)
        elif kind == _INT32:
            items = list(struct.unpack_from(f">{n}i", buf, pos))
            pos += 4 * n
        else:
            for _ in range(n):
                size = _I32.unpack_from(buf, pos)[0]
                pos += 4
                if size < 0 or size > end - pos:
                    raise _Unusual
                raw = buf[pos:pos + size]
                pos += size
                items.append(raw.decode("utf-8") if kind == _UTF8 else raw)
        return items, pos


def decode_event_fast(raw: bytes, limits: Limits) -> MessageEvent | None:
    """The event if it has the common shape, else None (then ``wire.decode_event_generic`` reads it).
    Every bound of ``limits`` is kept but ``max_event_bytes``: the size of the whole event is
    checked by its callers (``wire.decode_event_bytes``, ``decode_event_b64``) before any reader."""
    try:
        return _envelope(raw, limits)
    except (_Unusual, IndexError, struct.error, UnicodeDecodeError):
        return None


_DETAIL_MEMBERS = _ENVELOPE_TABLE[_header(T_STRUCT, 7)][2]
_LENGTH = _I32.unpack_from
# Field headers (type byte + id), in the order the straight-line readers below expect them.
_ENVELOPE_HEAD = tuple(_header(T_STRING, fid) for fid in (1, 2, 3, 4, 5, 6))  # ids ... created_at_msec
_DETAIL, _RELAY, _SIGNATURE = _header(T_STRUCT, 7), _header(T_I32, 8), _header(T_STRUCT, 9)
_PREVIOUS, _TRUSTED = _header(T_STRING, 10), _header(T_BOOL, 11)
_CREATE_DETAIL = _DETAIL + _header(T_STRUCT, 1)  # the detail union's MessageCreateEvent member
_CONTENTS, _KEY_VERSION, _NOTIFY = _header(T_STRING, 100), _header(T_STRING, 101), _header(T_BOOL, 102)
_SIGNATURE_STRINGS = tuple(_header(T_STRING, fid) for fid in (1, 2, 3, 4))
_KEY_INFO_LIST = _header(T_LIST, 5) + bytes([T_STRUCT])
_KEY_INFO_STRINGS = _SIGNATURE_STRINGS[:3]


def _strings(buf: bytes, pos: int, headers: tuple[bytes, ...], out: list[Any]) -> int:
    """The optional string fields ``headers`` in that order (each present or not) appended to ``out``;
    the position after them. A field out of order is left for the caller's next check to refuse."""
    end = len(buf)
    for header in headers:
        if buf[pos:pos + 3] == header:
            n = _LENGTH(buf, pos + 3)[0]
            start = pos + 7
            pos = start + n
            if n < 0 or pos > end:
                raise _Unusual
            out.append(buf[start:pos].decode("utf-8"))
        else:
            out.append(None)
    return pos


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    """The string field at ``pos`` (its header already matched) and the position after it."""
    n = _LENGTH(buf, pos + 3)[0]
    start = pos + 7
    pos = start + n
    if n < 0 or pos > len(buf):
        raise _Unusual
    return buf[start:pos].decode("utf-8"), pos


def _envelope(buf: bytes, limits: Limits) -> MessageEvent:
    """The envelope read straight through, every field optional and in increasing id order (so none
    repeats; any other order or field is unusual). Why straight-line: each field costs one header
    comparison where a loop over the wire costs a lookup and a dispatch (9 µs an event against 12)."""
    depth = limits.max_depth
    if depth < 1:
        raise _Unusual
    head: list[Any] = []
    pos = _strings(buf, 0, _ENVELOPE_HEAD, head)
    cursor: _Cursor | None = None
    kind = body = relay = signature = previous = trusted = None
    if buf[pos:pos + 3] == _DETAIL:
        kind, body, pos, cursor = _detail(buf, pos, limits)
    if buf[pos:pos + 3] == _RELAY:
        relay = _LENGTH(buf, pos + 3)[0]
        pos += 7
    if buf[pos:pos + 3] == _SIGNATURE:
        if depth < 2:
            raise _Unusual
        signature, pos = _signature(buf, pos + 3, limits, cursor)
    if buf[pos:pos + 3] == _PREVIOUS:
        previous, pos = _string(buf, pos)
    if buf[pos:pos + 3] == _TRUSTED:
        trusted = buf[pos + 3] != 0
        pos += 4
    if buf[pos] != 0:
        raise _Unusual
    sequence_id, message_id, sender_id, conversation_id, token, created = head
    return MessageEvent(sequence_id, message_id, sender_id, conversation_id, token, created, kind, body, relay,
                        signature, previous, trusted, len(buf) - pos - 1, [])


def _detail(buf: bytes, pos: int, limits: Limits) -> tuple[str | None, dict[str, Any] | None, int, _Cursor | None]:
    """(kind, body, position after, the cursor if one read it) of the detail union at its header."""
    if buf[pos:pos + 6] == _CREATE_DETAIL and limits.max_depth >= 3:
        body, after = _message_create(buf, pos + 6)
        if body is not None:
            return "MessageCreateEvent", body, after, None
    cursor = _Cursor(buf, limits)  # another kind, or a MessageCreateEvent of another shape
    detail, pos = cursor.union(pos + 3, _DETAIL_MEMBERS, 2)
    kind, body = _resolve_detail(detail)
    return kind, body, pos, cursor


def _message_create(buf: bytes, pos: int) -> tuple[dict[str, Any] | None, int]:
    """A ``MessageCreateEvent`` of the common shape (contents, key version, notify flag, in order,
    each optional) and its union's STOP; (None, pos) for any other shape (the cursor reads it)."""
    body: dict[str, Any] = {}
    end = len(buf)
    if buf[pos:pos + 3] == _CONTENTS:
        n = _LENGTH(buf, pos + 3)[0]
        start = pos + 7
        pos = start + n
        if n < 0 or pos > end:
            return None, pos
        body["contents"] = buf[start:pos]
    if buf[pos:pos + 3] == _KEY_VERSION:
        body["conversation_key_version"], pos = _string(buf, pos)
    if buf[pos:pos + 3] == _NOTIFY:
        body["should_notify"] = buf[pos + 3] != 0
        pos += 4
    if buf[pos:pos + 2] != b"\0\0":  # the struct's STOP, then the union's
        return None, pos
    return body, pos + 2


def _signature(buf: bytes, pos: int, limits: Limits, cursor: _Cursor | None) -> tuple[EventSignature, int]:
    """The signature struct: its four strings, then the key infos, in that order, each optional."""
    values: list[Any] = []
    pos = _strings(buf, pos, _SIGNATURE_STRINGS, values)
    infos = None
    if buf[pos:pos + 4] == _KEY_INFO_LIST:
        infos, pos = _key_infos(buf, pos + 4, limits, cursor)
    if buf[pos] != 0:
        raise _Unusual
    signature, key_version, version, key = values
    return EventSignature(signature, key_version, version, key, infos), pos + 1


def _key_infos(buf: bytes, pos: int, limits: Limits, cursor: _Cursor | None) -> tuple[list[SigningKeyInfo], int]:
    """list<MessageSigningKeyInfo> after its element type: a count, then each element's three
    optional strings in order. The element budget is the one the detail's lists drew on."""
    if limits.max_depth < 3:
        raise _Unusual
    n = _LENGTH(buf, pos)[0]
    pos += 4
    left = (cursor.elements_left if cursor is not None else limits.max_total_elements) - n
    if n < 0 or n > limits.max_container_elements or left < 0 or n > len(buf) - pos:
        raise _Unusual
    if cursor is not None:
        cursor.elements_left = left
    out = []
    for _ in range(n):
        values: list[Any] = []
        pos = _strings(buf, pos, _KEY_INFO_STRINGS, values)
        if buf[pos] != 0:
            raise _Unusual
        pos += 1
        member, key_version, key = values
        out.append(SigningKeyInfo(member, key_version, key))
    return out, pos
