"""The fast path of ``wire.decode_event_bytes``: the common shape of every event kind, nothing else.

An event read here is exactly the event the generic reader (``wire._Reader``) returns: the same
``MessageEvent``, field for field. The fast path gives up (returns None) the moment anything is
unusual — a wire type other than the declared one, a repeated or unknown field, a union with
other than one known member, a map, a struct with required fields, a list header naming another
element type, any bound reached, invalid UTF-8, a truncation — and the generic reader then decides
the event, with its precise reason. ``tests/test_same_reports.py`` checks both paths agree on
every vector and on a structural-fuzz corpus.
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
    """The event if it has the common shape, else None (then ``wire.decode_event_generic`` reads it)."""
    try:
        return _envelope(raw, limits)
    except (_Unusual, IndexError, struct.error, UnicodeDecodeError):
        return None


_ENVELOPE_STRINGS = frozenset({1, 2, 3, 4, 5, 6, 10})
_SIGNATURE_STRINGS = frozenset({1, 2, 3, 4})
_KEY_INFO_STRINGS = frozenset({1, 2, 3})
_DETAIL_MEMBERS = _ENVELOPE_TABLE[_header(T_STRUCT, 7)][2]
_KEY_INFO_LIST = (T_STRUCT, 12)


def _envelope(buf: bytes, limits: Limits) -> MessageEvent:
    """The envelope read straight through: string fields by one unpack each, field ids strictly
    increasing (so none repeats), the detail by the table-driven cursor."""
    end = len(buf)
    values: list[Any] = [None] * 12
    pos = last = 0
    cursor: _Cursor | None = None
    if limits.max_depth < 1:
        raise _Unusual
    unpack = _I32.unpack_from
    while True:
        ttype = buf[pos]
        if ttype == 0:
            break
        fid = buf[pos + 1] << 8 | buf[pos + 2]  # a negative id is > 32767: refused below
        if fid <= last:
            raise _Unusual
        last = fid
        if ttype == T_STRING and fid in _ENVELOPE_STRINGS:
            n = unpack(buf, pos + 3)[0]
            pos += 7
            if n < 0 or n > end - pos:
                raise _Unusual
            values[fid] = buf[pos:pos + n].decode("utf-8")
            pos += n
        elif ttype == T_STRUCT and fid == 7:
            cursor = cursor or _Cursor(buf, limits)
            values[7], pos = cursor.union(pos + 3, _DETAIL_MEMBERS, 2)
        elif ttype == T_STRUCT and fid == 9:
            cursor = cursor or _Cursor(buf, limits)
            values[9], pos = _signature(cursor, pos + 3)
        elif ttype == T_I32 and fid == 8:
            values[8] = unpack(buf, pos + 3)[0]
            pos += 7
        elif ttype == T_BOOL and fid == 11:
            values[11] = buf[pos + 3] != 0
            pos += 4
        else:
            raise _Unusual
    detail = values[7]
    kind, body = _resolve_detail(detail) if detail is not None else (None, None)
    return MessageEvent(values[1], values[2], values[3], values[4], values[5], values[6], kind, body, values[8],
                        values[9], values[10], values[11], end - pos - 1, [])


def _signature(cursor: _Cursor, pos: int) -> tuple[EventSignature, int]:
    if cursor.max_depth < 2:
        raise _Unusual
    buf, end = cursor.buf, cursor.end
    values: list[Any] = [None] * 6
    last = 0
    unpack = _I32.unpack_from
    while True:
        ttype = buf[pos]
        if ttype == 0:
            break
        fid = buf[pos + 1] << 8 | buf[pos + 2]
        if fid <= last:
            raise _Unusual
        last = fid
        if ttype == T_STRING and fid in _SIGNATURE_STRINGS:
            n = unpack(buf, pos + 3)[0]
            pos += 7
            if n < 0 or n > end - pos:
                raise _Unusual
            values[fid] = buf[pos:pos + n].decode("utf-8")
            pos += n
        elif ttype == T_LIST and fid == 5:
            values[5], pos = _key_infos(cursor, pos + 3)
        else:
            raise _Unusual
    return EventSignature(values[1], values[2], values[3], values[4], values[5]), pos + 1


def _key_infos(cursor: _Cursor, pos: int) -> tuple[list[SigningKeyInfo], int]:
    """list<MessageSigningKeyInfo> at the list header: each element three optional strings."""
    buf, end = cursor.buf, cursor.end
    if buf[pos] != T_STRUCT or cursor.max_depth < 3:
        raise _Unusual
    n = _I32.unpack_from(buf, pos + 1)[0]
    pos += 5
    cursor.elements_left -= n
    if n < 0 or n > cursor.max_container or cursor.elements_left < 0 or n > end - pos:
        raise _Unusual
    unpack = _I32.unpack_from
    out = []
    for _ in range(n):
        values: list[str | None] = [None, None, None, None]
        last = 0
        while buf[pos] != 0:
            fid = buf[pos + 1] << 8 | buf[pos + 2]
            if buf[pos] != T_STRING or fid <= last or fid not in _KEY_INFO_STRINGS:
                raise _Unusual
            last = fid
            size = unpack(buf, pos + 3)[0]
            pos += 7
            if size < 0 or size > end - pos:
                raise _Unusual
            values[fid] = buf[pos:pos + size].decode("utf-8")
            pos += size
        pos += 1
        out.append(SigningKeyInfo(values[1], values[2], values[3]))
    return out, pos
