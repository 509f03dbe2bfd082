"""A schema-free Thrift binary tree: parse any struct into nodes, edit them, write them back.

Used by the structural differential fuzzer and by tests that build oddly shaped events (repeated
fields, retyped fields, extra union members). It is deliberately independent of ``verifier.wire``:
a mutation tool that shared the decoder's reading could not find the decoder's mistakes. It keeps
everything the bytes say (field order, repeats, wire types, bool bytes other than 0/1), so
``write(parse(b)) == b`` for every well-formed struct.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Union

T_STOP, T_BOOL, T_BYTE, T_DOUBLE, T_I16, T_I32, T_I64 = 0, 2, 3, 4, 6, 8, 10
T_STRING, T_STRUCT, T_MAP, T_SET, T_LIST, T_UUID = 11, 12, 13, 14, 15, 16
_FIXED = {T_BOOL: ">B", T_BYTE: ">b", T_I16: ">h", T_I32: ">i", T_I64: ">q", T_DOUBLE: ">d"}
MAX_DEPTH = 64


@dataclass
class Struct:
    """Fields in wire order; repeats allowed."""

    fields: list["Field"] = field(default_factory=list)

    def get(self, fid: int) -> list["Field"]:
        return [f for f in self.fields if f.fid == fid]

    def first(self, fid: int) -> "Field | None":
        found = self.get(fid)
        return found[0] if found else None


@dataclass
class Seq:
    """A list or set: element type and values."""

    etype: int
    items: list[Any]


@dataclass
class Map:
    ktype: int
    vtype: int
    items: list[tuple[Any, Any]]


@dataclass
class Raw:
    """Bytes written verbatim as a field's value, whatever its header says (to desynchronise)."""

    data: bytes


Value = Union[bytes, int, float, Struct, Seq, Map, Raw]


@dataclass
class Field:
    ttype: int
    fid: int
    value: Value


class TreeError(ValueError):
    """The bytes are not a well-formed Thrift binary struct."""


class _Cursor:
    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise TreeError(f"truncated at {self.pos}")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))


def _read_value(cur: _Cursor, ttype: int, depth: int) -> Value:
    if depth > MAX_DEPTH:
        raise TreeError("too deep")
    if ttype in _FIXED:
        return cur.unpack(_FIXED[ttype])[0]
    if ttype == T_STRING:
        (n,) = cur.unpack(">i")
        return cur.take(n)
    if ttype == T_UUID:
        return cur.take(16)
    if ttype == T_STRUCT:
        return _read_struct(cur, depth + 1)
    if ttype in (T_LIST, T_SET):
        etype, n = cur.unpack(">Bi")
        if n < 0 or n > 100_000:
            raise TreeError("bad list size")
        return Seq(etype, [_read_value(cur, etype, depth + 1) for _ in range(n)])
    if ttype == T_MAP:
        ktype, vtype, n = cur.unpack(">BBi")
        if n < 0 or n > 100_000:
            raise TreeError("bad map size")
        return Map(ktype, vtype, [(_read_value(cur, ktype, depth + 1), _read_value(cur, vtype, depth + 1))
                                  for _ in range(n)])
    raise TreeError(f"unknown type {ttype}")


def _read_struct(cur: _Cursor, depth: int) -> Struct:
    out = Struct()
    while True:
        (ttype,) = cur.unpack(">B")
        if ttype == T_STOP:
            return out
        (fid,) = cur.unpack(">h")
        out.fields.append(Field(ttype, fid, _read_value(cur, ttype, depth)))


def parse(buf: bytes) -> tuple[Struct, bytes]:
    """The top-level struct and any bytes after its STOP."""
    cur = _Cursor(buf)
    top = _read_struct(cur, 1)
    return top, buf[cur.pos:]


def _write_value(out: bytearray, ttype: int, value: Any) -> None:
    """``value`` as the type ``ttype`` names (a mismatch is the caller's intent: a bent event)."""
    if isinstance(value, Raw):
        out += value.data
    elif ttype == T_UUID:
        out += value
    elif ttype in _FIXED:
        out += struct.pack(_FIXED[ttype], value)
    elif ttype == T_STRING:
        out += struct.pack(">i", len(value)) + value
    elif ttype == T_STRUCT:
        write_struct(out, value)
    elif ttype in (T_LIST, T_SET):
        out += struct.pack(">Bi", value.etype, len(value.items))
        for item in value.items:
            _write_value(out, value.etype, item)
    elif ttype == T_MAP:
        out += struct.pack(">BBi", value.ktype, value.vtype, len(value.items))
        for k, v in value.items:
            _write_value(out, value.ktype, k)
            _write_value(out, value.vtype, v)
    else:
        raise TreeError(f"cannot write type {ttype}")


def write_struct(out: bytearray, node: Struct) -> None:
    for f in node.fields:
        out += struct.pack(">Bh", f.ttype, f.fid)
        _write_value(out, f.ttype, f.value)
    out.append(T_STOP)


def encode_value(ttype: int, value: Value) -> bytes:
    """The bytes of one value as a field of wire type ``ttype`` would carry them."""
    out = bytearray()
    _write_value(out, ttype, value)
    return bytes(out)


def write(node: Struct, trailing: bytes = b"") -> bytes:
    out = bytearray()
    write_struct(out, node)
    return bytes(out) + trailing
