"""Compact per-event storage for the engine: a few bytes per event instead of objects.

A long history costs what its columns cost (about 100 bytes an event), not what a decoded event
and its report objects cost (3-4 KB): ids are held as 64-bit integers where they are canonical
decimals (the snowflakes the API uses) or canonical UUIDs, repeated strings (senders, kinds, key
versions, signature details) once in a table, anything else exactly as given. Every column gives
back the exact value that was stored.
"""

from __future__ import annotations

import re
import struct
import sys
from array import array
from collections.abc import Hashable, Sequence
from operator import eq, itemgetter, xor
from typing import Any, Callable, Generic, TypeVar, cast

import msgspec

from .wire import compiled_twin

_NONE, _DECIMAL, _UUID_FORM, _OTHER = 0, 1, 2, 3
_MAX_I64 = 2 ** 63 - 1
_OFFSET = 1 << 63
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # canonical: lowercase

T = TypeVar("T", bound=Hashable)
_SMALL_TABLE = 64  # ``Interned.distinct`` gives the whole table up to this size

# the compiled twins of ``Ids.append`` and of the UUID text (tests/test_cfastwire.py compares them)
_id_columns: Callable[[list[str | None], bool], tuple[bytes, bytes, bytes, list[tuple[int, str]]] | None] | None = \
    compiled_twin("id_columns")
_uuid_texts: Callable[[Sequence[int], Sequence[int]], list[str]] | None = compiled_twin("uuid_texts")

# How the engine encodes an event in its columns (``engine``, ``views``, ``fastchain`` read them).
# Flags, one byte an event:
DECODED_OK, FROM_META, IS_KEY_CHANGE, SIGNED_KIND, NOT_ENCODED = 1, 2, 4, 8, 16
# Finding stages: an event's findings are reported in the order of the steps that raise them.
STAGE_DECODED, STAGE_KEY_CONFLICTS, STAGE_REVIEWED, STAGE_REPLAYED = 0, 1, 3, 4
# is_trusted (None, False, True) as one byte:
TRUSTED_CODE = {None: 0, False: 1, True: 2}
TRUSTED_VALUE = (None, False, True)


class Ids:
    """Optional strings that are mostly canonical decimals or canonical lowercase UUIDs."""

    __slots__ = ("_form", "_a", "_b", "_other", "_uuids")

    def __init__(self, uuids: bool = False) -> None:
        self._form = bytearray()
        self._a = array("q")
        self._b = array("q")  # the low half of UUIDs (empty unless ``uuids``)
        self._other: dict[int, str] = {}
        self._uuids = uuids

    def __len__(self) -> int:
        return len(self._form)

    def append(self, value: str | None) -> None:
        index = len(self._form)
        form, a, b = _OTHER, 0, 0
        if value is None:
            form = _NONE
        elif len(value) <= 19 and value.isdigit() and value.isascii() and (value[0] != "0" or value == "0"):
            number = int(value)
            if number <= _MAX_I64:
                form, a = _DECIMAL, number
        elif self._uuids and len(value) == 36 and _UUID.fullmatch(value):
            number = int(value.replace("-", ""), 16)
            form, a, b = _UUID_FORM, (number >> 64) - (1 << 63), (number & ((1 << 64) - 1)) - (1 << 63)
        if form == _OTHER:
            self._other[index] = value  # type: ignore[assignment]  # not None: that is _NONE
        self._form.append(form)
        self._a.append(a)
        if self._uuids:
            self._b.append(b)

    def append_all(self, values: list[str | None]) -> None:
        """``append`` of each value in order (the engine gives a page of them at a time): in one
        compiled pass where the compiled module is built (``_cfastwire.id_columns``), else a page
        of only canonical decimals or only canonical UUIDs at once (``_uniform_columns``)."""
        columns = (_id_columns or _uniform_columns)(values, self._uuids)
        if columns is None:
            for value in values:
                self.append(value)
            return
        forms, first, second, others = columns
        offset = len(self._form)
        self._form += forms
        self._a.frombytes(first)
        self._b.frombytes(second)
        for at, value in others:
            self._other[offset + at] = value

    def append_following(self, values: list[str | None], source: Ids, source_values: list[str | None]) -> None:
        """``append_all(values)``, where ``source_values`` are the values ``source`` ended with: as
        long as each value is the next one of those (a page's previous ids are, newest first, the
        next event's sequence ids), its columns are copied from ``source``'s rows, not read again;
        the rest are appended. Why: reading a page's ids costs about 0.15 µs each."""
        count = len(values)
        same = list(map(eq, values, source_values[1:])) if source._uuids == self._uuids else []
        taken = same.index(False) if False in same else len(same)
        if not taken:
            self.append_all(values)
            return
        start = len(source) - len(source_values) + 1
        offset = len(self._form)
        forms = source._form[start:start + taken]
        self._form += forms
        self._a += source._a[start:start + taken]
        if self._uuids:
            self._b += source._b[start:start + taken]
        if forms.count(_OTHER):
            self._other.update({offset + at: source._other[start + at] for at, form in enumerate(forms) if form == _OTHER})
        if taken < count:
            self.append_all(values[taken:])

    def __getitem__(self, index: int) -> str | None:
        form = self._form[index]
        if form == _DECIMAL:
            return str(self._a[index])
        if form == _NONE:
            return None
        if form == _UUID_FORM:
            return _uuid_text(self._a[index], self._b[index])
        return self._other[index]

    def values(self, rows: Sequence[int]) -> list[str | None]:
        """``[self[row] for row in rows]``, a batch at a time: rendering a report reads every row,
        and one call per column and batch costs a third of one call per row and column. A batch of
        canonical decimals (snowflake ids) or UUIDs (message ids) with a few None among them (a
        key change without a previous id) is rendered at once too, the None put back after."""
        pick = picker(rows)
        forms = pick(self._form)
        missing = forms.count(_NONE)
        texts: list[str | None]
        if forms.count(_DECIMAL) + missing == len(forms):  # the common case: snowflake ids
            texts = cast("list[str | None]", _decimal_texts(pick(self._a)))
        elif self._uuids and forms.count(_UUID_FORM) + missing == len(forms):  # message ids
            texts = (_uuid_texts or _uuid_text_list)(pick(self._a), pick(self._b))  # type: ignore[assignment]
        else:
            return [self[row] for row in rows]
        if missing:  # (a None row holds 0: rendered above, replaced here)
            at = -1
            for _ in range(missing):
                at = forms.index(_NONE, at + 1)
                texts[at] = None
        return texts

    def given(self, rows: Sequence[int]) -> list[str]:
        """The values at ``rows`` stored as given (neither None nor a canonical decimal or UUID,
        whose text is plain ASCII): what a JSON report must look at before writing them unescaped."""
        forms = picker(rows)(self._form)
        if not forms.count(_OTHER):
            return []
        return [self._other[row] for row, form in zip(rows, forms) if form == _OTHER]

    def extend(self, other: Ids) -> None:
        """Append every value of ``other`` (of the same kind), in order, without decoding them."""
        if other._uuids != self._uuids:
            raise ValueError("Ids of different kinds cannot be joined")
        offset = len(self._form)
        self._form += other._form
        self._a += other._a
        self._b += other._b
        self._other.update({index + offset: value for index, value in other._other.items()})

    def decimal(self, index: int) -> int | None:
        """The value as an integer when it was stored as a canonical decimal, else None."""
        return self._a[index] if self._form[index] == _DECIMAL else None

    def numbers(self) -> array[int]:
        return self._a

    def keys(self, rows: Sequence[int]) -> array[int]:
        """For each of ``rows``, what ``key`` gives for a decimal or a UUID (its two halves joined by
        ``^``): equal for equal values (and for None and every text kept as it is, which all store
        0), read a batch at a time. A pre-filter, like ``key``. One int64 each, never a tuple of the
        halves: the hash of a tuple of ints is not salted, and ids chosen so that all their tuples
        share one hash made counting them quadratic (round 78: 40,000 events, 5.5 MB, took a
        minute); at most a few int64 values share a hash. An array: 8 bytes a row, not an int
        object each (``fastchain._repeated_ids`` holds it while it counts)."""
        pick = picker(rows)
        return array("q", map(xor, pick(self._a), pick(self._b)) if self._uuids else pick(self._a))

    def key(self, index: int) -> object:
        """A value equal for equal ids (and rarely for different ones): a pre-filter for duplicates."""
        form = self._form[index]
        if form == _UUID_FORM:
            return self._a[index] ^ self._b[index]
        if form == _OTHER:
            return self._other[index]
        return self._a[index]


class Interned(Generic[T]):
    """Values from a small set (senders, kinds, key versions, checks), stored once each."""

    __slots__ = ("_codes", "_table", "_values")

    def __init__(self) -> None:
        self._codes = array("I")
        self._table: dict[T, int] = {}
        self._values: list[T] = []

    def __len__(self) -> int:
        return len(self._codes)

    def code(self, value: T) -> int:
        code = self._table.get(value)
        if code is None:
            code = self._table[value] = len(self._values)
            self._values.append(value)
        return code

    def append(self, value: T) -> None:
        code = self._table.get(value)  # ``code``, inline: five columns of every event are appended here
        self._codes.append(self.code(value) if code is None else code)

    def append_all(self, values: list[T]) -> None:
        """``append`` of each value in order (the engine gives a page of them at a time). A page of
        one value (its kind, its conversation, often its signature version) is coded once: one C
        ``count`` (equal values are one key of the table too), not a table look-up each."""
        if values and values.count(values[0]) == len(values):
            self._codes.extend(array("I", (self.code(values[0]),)) * len(values))
            return
        known = list(map(self._table.get, values))
        codes: list[int] = list(map(self.code, values)) if None in known else known  # type: ignore[assignment]
        self._codes.extend(codes)  # (a value not seen before: all coded one by one, in order)

    def extend(self, other: Interned[T]) -> None:
        """Append every value of ``other``, in order. New values enter the table in ``other``'s
        order, so joining parts in run order builds the table one run would have built."""
        codes = [self.code(value) for value in other._values]
        if codes == list(range(len(codes))):
            self._codes += other._codes
        else:
            self._codes += array("I", map(codes.__getitem__, other._codes))

    def set(self, index: int, value: T) -> None:
        self._codes[index] = self.code(value)

    def set_range(self, start: int, stop: int, value: T) -> None:
        """``set`` of every index from ``start`` to ``stop`` (a page's rows) to ``value``, at once."""
        if start < stop:
            self._codes[start:stop] = array("I", [self.code(value)]) * (stop - start)

    def __getitem__(self, index: int) -> T:
        return self._values[self._codes[index]]

    def values(self, rows: Sequence[int]) -> list[T]:
        """``[self[row] for row in rows]``, a batch at a time (``Ids.values``)."""
        return list(map(self._values.__getitem__, picker(rows)(self._codes)))

    def holds(self, value: T, start: int, stop: int) -> bool:
        """Is ``value`` among the values of rows ``start`` to ``stop`` (its code looked for in C)?"""
        code = self._table.get(value)
        return code is not None and code in self._codes[start:stop]

    def distinct(self, rows: Sequence[int]) -> list[T]:
        """The values at ``rows``, each once, or more: every value of the table where it is small."""
        if len(self._values) <= _SMALL_TABLE:
            return self._values
        return list(map(self._values.__getitem__, set(picker(rows)(self._codes))))

    def codes(self) -> array[int]:
        return self._codes

    def distinct_count(self) -> int:
        """How many distinct values were stored (their codes are 0 to this, less one)."""
        return len(self._values)

    def value_of(self, code: int) -> T:
        return self._values[code]


_json_ints = msgspec.json.Decoder(list[int]).decode
_json_encode = msgspec.json.encode
_TOP_BIT_FLIP = bytes(value ^ 0x80 for value in range(256))  # a byte with its top bit flipped


def _flip_top_bits(halves: bytes | array[int]) -> bytearray:
    """The bytes of big-endian 64-bit halves, each half's top bit flipped: ``append``'s offset of
    2**63 (a UUID half is stored as unsigned - 2**63) put on or taken off. The first byte of every
    eight translated by one strided copy each way (round 132: through one big ``int`` of them all,
    ``from_bytes``, ``^`` and ``to_bytes`` cost six times as much, ~150 ns a UUID)."""
    flipped = bytearray(halves)
    flipped[0::8] = flipped[0::8].translate(_TOP_BIT_FLIP)
    return flipped


def _uniform_columns(values: Sequence[str | None], uuids: bool) -> tuple[bytes, bytes, bytes, list[tuple[int, str]]] | None:
    """``_cfastwire.id_columns`` in pure Python for the common pages only: every value a canonical
    decimal within int64, or (``uuids``) every value a canonical UUID; else None (appended one by
    one). Why by hand: one regular expression over the comma-joined page, then ``int``,
    ``bytes.fromhex`` and ``array`` do the per-value work in C (a third of ``append``'s cost).
    A few None among them (a key change without a previous id) are put back in their places."""
    missing = values.count(None)
    if missing == len(values):  # nothing to take at once (or an empty page)
        return None
    if missing:
        columns = _uniform_columns([value for value in values if value is not None], uuids)
        return _with_missing(values, columns, uuids) if columns is not None else None
    try:
        text = ",".join(values)  # type: ignore[arg-type]  # TypeError: not all str
    except TypeError:
        return None
    if text.count(",") != len(values) - 1:  # a value holding a comma
        return None
    count = len(values)
    numbers = _canonical_decimals(text, count)
    if numbers is not None:
        return bytes([_DECIMAL]) * count, numbers, bytes(8 * count if uuids else 0), []
    raw = _uuid_bytes(text, count) if uuids else None  # each UUID: high then low 64 bits
    if raw is not None:
        halves = array("q", _flip_top_bits(raw))  # unsigned - 2**63
        if sys.byteorder == "little":
            halves.byteswap()
        return bytes([_UUID_FORM]) * count, halves[0::2].tobytes(), halves[1::2].tobytes(), []
    return None


def _canonical_decimals(text: str, count: int) -> bytes | None:
    """The int64 of each of ``count`` comma-joined canonical decimals (``0|[1-9][0-9]*``, below 2**63),
    packed; None if any is not one. The text is read as a JSON array's items by msgspec (at a third
    of ``int``'s cost, which copies the text first) and is canonical when msgspec writes the numbers
    back as the same text: JSON's integers less a sign and whitespace (round 132: this costs a
    sixth of the regular expression that checked it first, whose repeats cost 200 ns an id)."""
    if not text.isascii() or "-" in text:  # (not ASCII: no decimal, and msgspec would not take surrogates)
        return None
    body = f"[{text}]"
    try:
        numbers = _json_ints(body)
        packed = struct.pack(f"={count}q", *numbers)  # ``struct`` packs each at two thirds of ``array``'s cost
    except (struct.error, msgspec.DecodeError):  # not JSON integers, or above int64 (kept as text by ``append``)
        return None
    return packed if _json_encode(numbers) == body.encode() else None


def _uuid_bytes(text: str, count: int) -> bytes | None:
    """The 16 bytes of each of ``count`` comma-joined canonical UUIDs (``_UUID``: lowercase), None
    if any is not one. Why not a regular expression: its repeats cost about twice these checks,
    done in C a page at a time (strided slices where the dashes and commas must be, then hex)."""
    if len(text) != _UUID_STRIDE * count - 1 or text[_UUID_STRIDE - 1::_UUID_STRIDE] != "," * (count - 1):
        return None  # (with a comma after every 36 characters, each value is 36 long)
    dashes = "-" * count
    if text[8::_UUID_STRIDE] != dashes or text[13::_UUID_STRIDE] != dashes or text[18::_UUID_STRIDE] != dashes \
            or text[23::_UUID_STRIDE] != dashes:
        return None
    digits = text.replace("-", "").replace(",", "")
    if len(digits) != 32 * count:  # a dash where a digit goes
        return None
    try:
        raw = bytes.fromhex(digits)
    except ValueError:  # not hexadecimal (non-ASCII too)
        return None
    return raw if raw.hex() == digits else None  # not uppercase, no whitespace (``fromhex`` takes both)


def _with_missing(values: Sequence[str | None], columns: tuple[bytes, bytes, bytes, list[tuple[int, str]]],
                  uuids: bool) -> tuple[bytes, bytes, bytes, list[tuple[int, str]]]:
    """The columns of ``values`` less its None, with each None put back where it was (as ``append``
    stores it: form none, numbers 0)."""
    forms, first, second, others = columns
    form_column, a, b = bytearray(forms), array("q", first), array("q", second)
    at = values.index(None)
    while True:
        form_column.insert(at, _NONE)
        a.insert(at, 0)
        if uuids:
            b.insert(at, 0)
        try:
            at = values.index(None, at + 1)
        except ValueError:
            return bytes(form_column), a.tobytes(), b.tobytes(), others


def _decimal_texts(numbers: Sequence[int]) -> list[str]:
    """``str`` of each number, written as one JSON array by msgspec and split: about half of what a
    ``str`` call an id costs (a report reads three decimal columns of every event)."""
    if not numbers:
        return []
    return _json_encode(numbers.tolist() if type(numbers) is array else numbers)[1:-1].decode().split(",")


def _uuid_places() -> tuple[tuple[int, int], ...]:
    """(digit of the 32 hex digits, its place in the 36-character canonical text), for each digit."""
    places = [at for at in range(36) if at not in (8, 13, 18, 23)]  # the dashes' places
    return tuple(enumerate(places))


_UUID_PLACES = _uuid_places()
_UUID_STRIDE = 37  # a UUID's text and the separator after it (a newline, a comma)


def _uuid_text_list(highs: Sequence[int], lows: Sequence[int]) -> list[str]:
    """``_uuid_text`` of each (high, low), at once (``_cfastwire.uuid_texts`` in pure Python): the
    16 bytes of every UUID as one hex text, whose digits are moved to their places in the texts of
    all the UUIDs by one strided copy per place (32 copies a batch, each in C), between dashes and
    newlines laid out before; the newlines then split it. A call of ``_uuid_text`` per UUID cost
    most of a report's rendering, and cutting the groups with a regular expression several times
    what this costs."""
    count = len(highs)
    if not count:
        return []
    halves = array("q", bytes(16 * count))  # high, low, high, low ...
    halves[0::2], halves[1::2] = array("q", highs), array("q", lows)
    if sys.byteorder == "little":
        halves.byteswap()
    digits = _flip_top_bits(halves).hex().encode("ascii")  # unsigned = stored + 2**63
    texts = bytearray(b"-" * (_UUID_STRIDE * count - 1))  # the dashes stay where no digit goes
    texts[_UUID_STRIDE - 1::_UUID_STRIDE] = b"\n" * (count - 1)
    for digit, place in _UUID_PLACES:
        texts[place::_UUID_STRIDE] = digits[digit::32]
    return texts.decode("ascii").split("\n")


def _uuid_text(high: int, low: int) -> str:
    text = f"{((high + _OFFSET) << 64) | (low + _OFFSET):032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def picker(rows: Sequence[int]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """A function giving the items at ``rows`` of a sequence, in order: a slice of it where the rows
    are consecutive (one conversation's, or a batch of them: copied in C, no index read per row),
    else a tuple (``operator.itemgetter``, whose one-index form returns the item itself)."""
    if len(rows) == 1:
        row = rows[0]
        return lambda column: (column[row],)
    if not rows:
        return lambda column: ()
    span = consecutive(rows)
    return itemgetter(*rows) if span is None else itemgetter(span)


def consecutive(rows: Sequence[int]) -> slice | None:
    """The slice ``rows`` are when they count up by one (checked in C), else None."""
    if type(rows) is range:  # (an ``EventList``'s batch)
        return slice(rows.start, rows.stop) if rows.step == 1 else None
    first = rows[0]
    stop = first + len(rows)
    if rows[-1] != stop - 1 or not all(map(eq, rows, range(first, stop))):
        return None
    return slice(first, stop)
