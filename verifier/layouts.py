"""Remembered byte layouts: the pure-Python decoder's shortcut for a ``MessageCreateEvent`` laid out
like a recent one.

Why: in a history nearly every event has the layout of many before it (the same fields, the same
string lengths), and differs only in the bytes inside its strings and in the length of its
ciphertext. Once ``fastwire``'s straight-line reader has read an event, its layout is remembered
as two ``struct`` formats (before and after the ciphertext) and the event's frame: every field
header, length and STOP. A later event whose frame is byte for byte the same is unpacked by two
``struct`` calls in C instead of a Python step per field (about half the pure decoder's time).

Exactly the events the straight-line reader returns come out, field for field: the frame fixes
every position that reader looks at and every decision it takes, and what it leaves to the data
(UTF-8 validity, the bool bytes, the i32, the ciphertext's length) is decided here the same way. A
frame that differs anywhere, or invalid UTF-8, sends the event to the reader itself.
``tests/test_layouts.py`` checks both on mutations of every byte of real events. Only the
pure-Python path uses this: the compiled decoder (``_cfastwire``) is faster still.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from itertools import repeat
from operator import getitem, itemgetter, sub
from typing import Any, cast

from . import fastwire
from .fastwire import (
    _CONTENTS,
    _CREATE_DETAIL,
    _ENVELOPE_HEAD,
    _KEY_INFO_LIST,
    _KEY_INFO_STRINGS,
    _KEY_VERSION,
    _LENGTH,
    _NOTIFY,
    _PREVIOUS,
    _RELAY,
    _SIGNATURE,
    _SIGNATURE_STRINGS,
    _TRUSTED,
)
from .wire import EventSignature, Limits, MessageEvent, SigningKeyInfo

_MAX_LAYOUTS = 8  # a group's members' ids of a few lengths: one layout per length
_FREE_LEARNING = 16  # layouts learnt before learning must be paid for (see _may_learn)
_HITS_PER_LAYOUT = 8
_MISSES_PER_LAYOUT = 256

_FRAME, _TEXT, _SCALAR, _LENGTH_OF_CONTENTS = range(4)
_utf8 = bytes.decode  # UTF-8, strict: what the reader's .decode("utf-8") does

Getter = Callable[[tuple[Any, ...]], tuple[Any, ...]]


def _getter(indices: list[int]) -> Getter:
    """A tuple of the items at ``indices`` (itemgetter returns a bare item for one index)."""
    if len(indices) >= 2:
        return itemgetter(*indices)
    if len(indices) == 1:
        only = indices[0]
        return lambda values: (values[only],)
    return lambda values: ()


def _where(items: list[tuple[str, int, Any]], role: int) -> list[int]:
    """The positions of the items of ``role`` (in the tuple ``struct`` unpacks them into)."""
    return [at for at, (_, item_role, _) in enumerate(items) if item_role == role]


class _Walk:
    """The layout of an event, walked as the straight-line reader reads it: each item a ``struct``
    format, its role and, for a value, the field it fills."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0
        self.items: list[tuple[str, int, Any]] = []
        self.split = 0  # items before it: up to the ciphertext's length; after it: from the ciphertext's end
        self.contents_length = 0
        self.signed = False
        self.key_infos: int | None = None

    def at(self, header: bytes) -> bool:
        return self.buf[self.pos:self.pos + len(header)] == header

    def frame(self, size: int) -> None:
        self.items.append((f"{size}s", _FRAME, None))
        self.pos += size

    def text(self, name: tuple[Any, ...]) -> None:
        size = _LENGTH(self.buf, self.pos + 3)[0]
        self.frame(7)
        self.items.append((f"{size}s", _TEXT, name))
        self.pos += size

    def optional_texts(self, headers: tuple[bytes, ...], name: tuple[Any, ...]) -> None:
        for index, header in enumerate(headers):
            if self.at(header):
                self.text((*name, index))

    def scalar(self, header_size: int, fmt: str, size: int, name: tuple[Any, ...]) -> None:
        self.frame(header_size)
        self.items.append((fmt, _SCALAR, name))
        self.pos += size


def _walk(buf: bytes) -> _Walk | None:
    """The layout of ``buf``, a ``MessageCreateEvent`` with contents and nothing after its STOP that
    the straight-line reader accepted; None for any other shape (never remembered)."""
    walk = _Walk(buf)
    walk.optional_texts(_ENVELOPE_HEAD, ("envelope",))
    if not walk.at(_CREATE_DETAIL + _CONTENTS):
        return None
    walk.frame(len(_CREATE_DETAIL + _CONTENTS))
    walk.contents_length = _LENGTH(buf, walk.pos)[0]
    walk.items.append(("i", _LENGTH_OF_CONTENTS, None))
    walk.split = len(walk.items)
    walk.pos += 4 + walk.contents_length
    if walk.at(_KEY_VERSION):
        walk.text(("body", "conversation_key_version"))
    if walk.at(_NOTIFY):
        walk.scalar(3, "?", 1, ("body", "should_notify"))
    walk.frame(2)  # the MessageCreateEvent's STOP, then the union's
    if walk.at(_RELAY):
        walk.scalar(3, "i", 4, ("relay",))
    if walk.at(_SIGNATURE):
        walk.signed = True
        walk.frame(3)
        walk.optional_texts(_SIGNATURE_STRINGS, ("signature",))
        if walk.at(_KEY_INFO_LIST):
            walk.key_infos = _LENGTH(buf, walk.pos + 4)[0]
            walk.frame(8)  # header, element type and count
            for index in range(walk.key_infos):
                walk.optional_texts(_KEY_INFO_STRINGS, ("key_info", index))
                walk.frame(1)
        walk.frame(1)
    if walk.at(_PREVIOUS):
        walk.text(("previous",))
    if walk.at(_TRUSTED):
        walk.scalar(3, "?", 1, ("trusted",))
    walk.frame(1)
    return walk if walk.pos == len(buf) else None


class _Layout:
    """One event's layout: what to unpack, the frame to compare, where each field's value is.

    The frame is checked by filling the layout's template (its frame bytes, ``%s``/``%c`` where the
    values go) with the values unpacked and comparing the result with the event's bytes: one
    ``%`` and one comparison in C, where a ``bytes`` object per frame item and a tuple comparison
    cost more. The texts are decoded as one (joined) and, when that is ASCII, sliced at the places
    the layout fixes: one decode instead of one per text; UTF-8 is valid in the whole exactly when
    it is in each text (a text's bytes decode alone as they do within the whole)."""

    __slots__ = ("limits", "head", "head_size", "head_template", "tail", "tail_size", "tail_template", "tail_texts",
                 "tail_scalars", "i32s", "text_bytes", "slices", "envelope", "body_extra", "relay", "previous", "trusted",
                 "signature", "key_infos", "usual_texts", "usual_trusted", "page")

    def __init__(self, walk: _Walk, limits: Limits) -> None:
        self.limits = limits  # the bounds the reader accepted this layout under (frozen; compared by identity)
        head, tail = walk.items[:walk.split], walk.items[walk.split:]
        self.head, head_template = _unpacker(head, walk.buf, 0)
        self.head_size = self.head.size
        self.head_template = head_template[:-4]  # the ciphertext's length is not frame: it is read (the last item)
        self.tail, self.tail_template = _unpacker(tail, walk.buf, self.head_size + walk.contents_length)
        self.tail_size = self.tail.size
        values = [item for item in tail if item[1] != _FRAME]  # what ``self.tail`` unpacks, in order
        tail_texts, tail_scalars = _where(values, _TEXT), _where(values, _SCALAR)
        self.tail_texts, self.tail_scalars = _getter(tail_texts), _getter(tail_scalars)
        self.i32s = any(values[i][0] == _I32 for i in tail_scalars)
        lengths = [struct.calcsize(fmt) for fmt, role, _ in head if role == _TEXT] + \
            [struct.calcsize(values[i][0]) for i in tail_texts]
        self.text_bytes = sum(lengths)
        self.slices = _slicer(lengths)
        # the values come as (head texts, tail texts, tail scalars, None): a field left out is the None
        names = [name for _, role, name in head if role == _TEXT] + [values[i][2] for i in tail_texts] + \
            [values[i][2] for i in tail_scalars]
        where = {name: i for i, name in enumerate(names)}
        absent = len(names)
        self.envelope = itemgetter(*[where.get(("envelope", i), absent) for i in range(len(_ENVELOPE_HEAD))])
        self.body_extra = tuple((key, where[("body", key)]) for key in ("conversation_key_version", "should_notify")
                                if ("body", key) in where)
        self.relay = where.get(("relay",), absent)
        self.previous = where.get(("previous",), absent)
        self.trusted = where.get(("trusted",), absent)
        self.signature = (itemgetter(*[where.get(("signature", i), absent) for i in range(len(_SIGNATURE_STRINGS))])
                          if walk.signed else None)
        # USUAL_FIELDS of a signed layout, in that order (``usual``)
        at = {**{name: where.get(("envelope", i), absent) for i, name in enumerate(_ENVELOPE_NAMES)},
              "previous_sequence_id": self.previous, "is_trusted": self.trusted,
              "conversation_key_version": where.get(("body", "conversation_key_version"), absent),
              **{name: where.get(("signature", i), absent) for i, name in enumerate(_SIGNATURE_NAMES)}}
        info = ([where.get(("key_info", 0, i), absent) for i in range(len(_KEY_INFO_STRINGS))]
                if walk.key_infos == 1 else [])  # (the usual: one key info)
        self.usual_texts, self.usual_trusted = _usual_getters([at[name] for name in USUAL_FIELDS] + info,
                                                              _bounds(lengths), tail_scalars)
        self.key_infos = None if walk.key_infos is None else tuple(
            itemgetter(*[where.get(("key_info", index, i), absent) for i in range(len(_KEY_INFO_STRINGS))])
            for index in range(walk.key_infos))
        usual_places = [at[name] for name in USUAL_FIELDS if name != "is_trusted"] + info
        self.page = _PageShape(walk, usual_places, len(lengths) - len(tail_texts)) \
            if self.usual_texts is not None else None

    def read(self, buf: bytes) -> MessageEvent | None:
        """The event if ``buf`` has this layout, else None; UnicodeDecodeError and struct.error pass."""
        found = self.values(buf)
        if found is None:
            return None
        values, contents = found
        body = {"contents": contents}
        for key, at in self.body_extra:
            body[key] = values[at]
        signature = None
        if self.signature is not None:
            infos = None if self.key_infos is None else [SigningKeyInfo(*self.key_infos[0](values))] \
                if len(self.key_infos) == 1 else [SigningKeyInfo(*info(values)) for info in self.key_infos]  # (the usual: one)
            signature = EventSignature(*self.signature(values), infos)  # type: ignore[call-arg]
        return MessageEvent(*self.envelope(values), "MessageCreateEvent", body,  # type: ignore[call-arg]
                            values[self.relay], signature, values[self.previous], values[self.trusted], 0, [])

    def values(self, buf: bytes) -> tuple[tuple[Any, ...], bytes] | None:
        """The values unpacked (texts decoded, scalars, None last for a field left out) and the
        contents, if ``buf`` has this layout, else None; UnicodeDecodeError and struct.error pass."""
        framed = self._framed(buf)
        if framed is None:
            return None
        texts, tail, tail_at = framed
        joined = b"".join(texts).decode()  # UnicodeDecodeError: the reader refuses it too
        decoded = self.slices(joined) if len(joined) == self.text_bytes else tuple(map(_utf8, texts))  # else: not ASCII
        scalars = self.tail_scalars(tail)
        if self.i32s:
            scalars = tuple(int.from_bytes(v, "big", signed=True) if v.__class__ is bytes else v for v in scalars)
        return (*decoded, *scalars, None), buf[self.head_size:tail_at]

    def _framed(self, buf: bytes) -> tuple[tuple[bytes, ...], tuple[Any, ...], int] | None:
        """The texts (as bytes), the tail's values and where the tail begins, if ``buf``'s frame is
        this layout's, else None; struct.error passes."""
        head = self.head.unpack_from(buf, 0)
        head_texts = head[:-1]
        if not buf.startswith(self.head_template % head_texts):
            return None
        contents_length = head[-1]
        tail_at = self.head_size + contents_length
        # (a negative length could not match a frame either: the tail would begin in the head's own
        # frame or length; refused here so that no reader of this code has to work that out)
        if contents_length < 0 or len(buf) != tail_at + self.tail_size:
            return None
        tail = self.tail.unpack_from(buf, tail_at)
        if not buf.endswith(self.tail_template % tail):
            return None
        return head_texts + self.tail_texts(tail), tail, tail_at


_I32 = "i"
# what ``usual`` gives first, in this order (then the key info's three): the engine's usual path reads these alone
USUAL_FIELDS = ("sequence_id", "message_id", "sender_id", "conversation_id", "created_at_msec", "previous_sequence_id",
                "is_trusted", "conversation_key_version", "signature", "public_key_version", "signature_version",
                "signing_public_key")
_ENVELOPE_NAMES = ("sequence_id", "message_id", "sender_id", "conversation_id", "conversation_token", "created_at_msec")
_SIGNATURE_NAMES = ("signature", "public_key_version", "signature_version", "signing_public_key")


def _unpacker(items: list[tuple[str, int, Any]], buf: bytes, at: int) -> tuple[struct.Struct, bytes]:
    """The ``struct`` that unpacks ``items`` (read from ``buf`` at ``at``) less their frame, and the
    template of their bytes: the frame as it is in ``buf``, ``%s`` for a text or an i32 (read as
    its 4 bytes), ``%c`` for a bool (read as a bool: a byte other than 0 or 1 then fails the
    template, and the reader reads the event)."""
    formats, template = [], []
    for fmt, role, _ in items:
        size = struct.calcsize(">" + fmt)
        if role == _FRAME:
            formats.append(f"{size}x")
            template.append(buf[at:at + size].replace(b"%", b"%%"))
        elif role == _LENGTH_OF_CONTENTS:  # last in the head: read, and left out of the template
            formats.append(fmt)
            template.append(b"????")
        else:
            formats.append("4s" if fmt == _I32 else fmt)
            template.append(b"%c" if fmt == "?" else b"%s")
        at += size
    return struct.Struct(">" + "".join(formats)), b"".join(template)


def _usual_getters(places: list[int], bounds: list[slice],
                   scalars: list[int]) -> tuple[Callable[[str], tuple[str, ...]] | None, int]:
    """``usual``'s: the slices of the joined texts that are ``USUAL_FIELDS`` but is_trusted
    then the key info's three, in that order, and where is_trusted is among the tail's values;
    (None, 0) where the layout lacks one of them. ``places``: each one's place among the values
    (the texts, whose ``bounds`` these are, then the tail's ``scalars``)."""
    places = list(places)
    texts = len(bounds)
    trusted = places.pop(USUAL_FIELDS.index("is_trusted"))
    if len(places) != len(USUAL_FIELDS) + 2 or any(place >= texts for place in places) or \
            not texts <= trusted < texts + len(scalars):
        return None, 0
    return itemgetter(*[bounds[place] for place in places]), scalars[trusted - texts]


def _bounds(lengths: list[int]) -> list[slice]:
    """The slices of texts of these lengths, in order, in the text of them all joined."""
    bounds, at = [], 0
    for length in lengths:
        bounds.append(slice(at, at + length))
        at += length
    return bounds


def _slicer(lengths: list[int]) -> Callable[[str], tuple[str, ...]]:
    """The texts of these lengths, in order, from the text of them all joined."""
    bounds = _bounds(lengths)
    if len(bounds) >= 2:
        return itemgetter(*bounds)
    if bounds:
        only = bounds[0]
        return lambda text: (text[only],)
    return lambda text: ()


# The layouts remembered in this process, most recently learnt first. A tuple, replaced whole, so a
# thread reading it sees one consistent set.
_recent: tuple[_Layout, ...] = ()
_learnt = 0
_hits = 0
_misses = 0


def forget() -> None:
    """Drop every remembered layout (tests; a process that changes its limits need not)."""
    global _recent, _learnt, _hits, _misses
    _recent, _learnt, _hits, _misses = (), 0, 0, 0


def decode_event_fast(raw: bytes, limits: Limits) -> MessageEvent | None:
    """``fastwire.decode_event_fast``, the same event or None, through a remembered layout when one fits."""
    global _hits, _misses
    if type(raw) is not bytes:  # a bytearray or a memoryview: its slices are not bytes; the reader decides
        return fastwire.decode_event_fast(raw, limits)
    for layout in _recent:
        if layout.limits is limits:
            try:
                event = layout.read(raw)
            except struct.error:  # shorter than the layout: another may fit
                continue
            except UnicodeDecodeError:  # the reader refuses it too; it says so
                break
            if event is not None:
                _hits += 1
                return event
    event = fastwire.decode_event_fast(raw, limits)
    _misses += 1
    if event is not None and event.kind == "MessageCreateEvent" and _may_learn():
        _learn(raw, limits, event)
    return event


def usual(raw: bytes, limits: Limits) -> tuple[tuple[str, ...], bool, bytes] | None:
    """What the engine's usual path reads of a signed event with one key info, without the objects
    ``_Layout.read`` builds (they cost about a third of it): the texts of its ``USUAL_FIELDS`` but
    is_trusted, then its key info's member, key version and key; its is_trusted; its contents;
    through the remembered layout that reads ``raw``, found as ``decode_event_fast`` finds it. None
    where no layout does, or where its event is not of that shape: every one of those fields
    present, its texts ASCII (``decode_event_fast`` then reads it: the same layout, or the reader).

    ``_Layout._framed``'s frame check inline, and the texts sliced straight in ``USUAL_FIELDS``
    order, without the tuple of every value and the scalars' that ``values`` makes: this runs once
    an event, and each Python call it saves is about a tenth of the rest."""
    global _hits
    for layout in _recent:
        if layout.limits is not limits:
            continue
        try:
            head = layout.head.unpack_from(raw, 0)
            texts = head[:-1]
            if not raw.startswith(layout.head_template % texts):
                continue  # another layout: a later one may fit
            contents_length = head[-1]
            tail_at = layout.head_size + contents_length
            if contents_length < 0 or len(raw) != tail_at + layout.tail_size:  # (as ``_framed``)
                continue
            tail = layout.tail.unpack_from(raw, tail_at)
            if not raw.endswith(layout.tail_template % tail):
                continue
            if layout.usual_texts is None:  # this layout, not the usual shape
                return None
            joined = b"".join(texts + layout.tail_texts(tail)).decode()
        except struct.error:  # shorter than the layout: another may fit
            continue
        except UnicodeDecodeError:
            return None
        if len(joined) != layout.text_bytes:  # not ASCII: ``values`` decodes each text
            return None
        _hits += 1
        return layout.usual_texts(joined), tail[layout.usual_trusted], raw[layout.head_size:tail_at]
    return None


class _PageShape:
    """A usual layout as ``usual_page`` reads a page of its events at once: where its frame bytes,
    bools and texts are in the head (before the contents) and in the tail (after them). Why: a
    page's events are checked a column at a time (one strided slice of every event's head for each
    frame byte) and their texts sliced by one ``itemgetter`` call a page, not a dozen calls an event."""

    __slots__ = ("head_size", "tail_size", "head_frame", "tail_frame", "head_spans", "tail_spans", "bools",
                 "trusted", "fields", "plans")

    def __init__(self, walk: _Walk, places: list[int], head_texts: int) -> None:
        head, tail = walk.items[:walk.split], walk.items[walk.split:]
        self.head_size = struct.calcsize(">" + "".join(fmt for fmt, _, _ in head))
        self.tail_size = struct.calcsize(">" + "".join(fmt for fmt, _, _ in tail))
        self.head_frame, self.head_spans, head_bools = _positions(head, walk.buf, 0)
        self.tail_frame, self.tail_spans, bools = _positions(tail, walk.buf, self.head_size + walk.contents_length)
        self.bools = [at for at, _ in bools]
        trusted = [at for at, name in bools if name == ("trusted",)]
        self.trusted = trusted[0] if len(trusted) == 1 and not head_bools else -1
        # each of ``usual``'s texts: (0, its index among the head's texts) or (1, among the tail's)
        self.fields = [(0, place) if place < head_texts else (1, place - head_texts) for place in places]
        self.plans: dict[int, _PagePlan] = {}

    def plan(self, count: int) -> _PagePlan:
        """The plan for pages of ``count`` events, kept for pages up to ``PLAN_KEPT`` events only:
        a plan holds some fifteen slices an event (about the page's own JSON in size), and hostile
        pages of ever other large sizes kept eight of them a layout after their run."""
        plan = self.plans.get(count)
        if plan is None:
            plan = _PagePlan(self, count)
            if count <= PLAN_KEPT:
                if len(self.plans) >= 8:  # a few page sizes recur (full pages, the last one): no growth
                    self.plans = {}
                self.plans[count] = plan
        return plan


PLAN_KEPT = 1000  # the API serves 100 events a page at most; a larger page's plan is made for it alone


class _PagePlan:
    """A ``_PageShape`` for pages of ``count`` events: each frame byte's column as it must be, and
    the slices of every event's texts in the page's heads and tails."""

    __slots__ = ("head_frame", "tail_frame", "ones", "head_texts", "tail_texts")

    def __init__(self, shape: _PageShape, count: int) -> None:
        self.head_frame = [(at, bytes((byte,)) * count) for at, byte in shape.head_frame]
        self.tail_frame = [(at, bytes((byte,)) * count) for at, byte in shape.tail_frame]
        self.ones = b"\x01" * count
        self.head_texts = _texts_getter(shape.head_spans, shape.head_size, count)
        self.tail_texts = _texts_getter(shape.tail_spans, shape.tail_size, count)


def _texts_getter(spans: list[tuple[int, int]], size: int, count: int) -> Callable[[str], tuple[str, ...]]:
    """Every event's texts, event after event, from ``count`` records of ``size`` joined."""
    bounds = [slice(i * size + at, i * size + at + length) for i in range(count) for at, length in spans]
    return itemgetter(*bounds) if len(bounds) >= 2 else _slicer([length for _, length in spans] * count)


def _positions(items: list[tuple[str, int, Any]], buf: bytes,
               at: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, Any]]]:
    """Of ``items`` read from ``buf`` at ``at``, offsets from there: each frame byte and its value,
    each text's span, each bool (and its name); an i32 and the contents' length are neither."""
    frame: list[tuple[int, int]] = []
    spans: list[tuple[int, int]] = []
    bools: list[tuple[int, Any]] = []
    start = at
    for fmt, role, name in items:
        size = struct.calcsize(">" + fmt)
        if role == _FRAME:
            frame.extend((at - start + i, buf[at + i]) for i in range(size))
        elif role == _TEXT:
            spans.append((at - start, size))
        elif role == _SCALAR and fmt == "?":
            bools.append((at - start, name))
        at += size
    return frame, spans, bools


def _layout_of(raw: bytes, limits: Limits) -> _Layout | None:
    """The remembered layout ``usual`` reads ``raw`` through (the first whose frame it has)."""
    for layout in _recent:
        if layout.limits is limits:
            try:
                if layout._framed(raw) is not None:
                    return layout
            except struct.error:
                continue
    return None


_cut = cast(Callable[[bytes, slice], bytes], getitem)  # (a slice of bytes is bytes: what mypy cannot tell)
PageFields = tuple[tuple[tuple[str, ...], ...], bytes, list[bytes]]


def usual_page(raws: list[bytes], limits: Limits) -> PageFields | None:
    """``usual`` of a page of events at once, as columns: each of its texts' (one tuple of the page's
    values per text, in ``usual``'s order), the is_trusted bytes (0 or 1 each), the contents. None
    unless ``usual`` would give every one of them its fields through one layout (the first event's):
    each event's frame that layout's, byte for byte, its bools 0 or 1, its texts ASCII.

    Why: ``usual`` costs a dozen C calls and as many bytecodes an event; here the page's heads and
    tails are joined and each frame byte checked as one strided slice of them all, and the texts
    sliced by one call, so the calls are a page's, not an event's (``tests/test_usual.py`` compares
    the reports). The caller takes the events one by one where this says None."""
    global _hits
    layout = _layout_of(raws[0], limits) if raws else None
    shape = layout.page if layout is not None else None
    if shape is None or shape.trusted < 0 or not shape.tail_size:
        return None
    count, head_size, tail_size = len(raws), shape.head_size, shape.tail_size
    lengths = list(map(len, raws))
    if min(lengths) < head_size + tail_size:
        return None
    try:
        contents_lengths = struct.pack(f">{count}i", *map(sub, lengths, repeat(head_size + tail_size)))
    except struct.error:  # a length past an i32: no layout reads it
        return None
    heads = b"".join(map(_cut, raws, repeat(slice(0, head_size))))
    tails = b"".join(map(_cut, raws, repeat(slice(-tail_size, None))))  # (a tail holds a STOP at least)
    plan = shape.plan(count)
    for at, column in plan.head_frame:
        if heads[at::head_size] != column:
            return None
    for at, column in plan.tail_frame:
        if tails[at::tail_size] != column:
            return None
    for i in range(4):  # the contents' length, the last 4 bytes of the head: what is left between head and tail
        if heads[head_size - 4 + i::head_size] != contents_lengths[i::4]:
            return None
    for at in shape.bools:  # ``%c`` of a bool in the template: a byte other than 0 or 1 fails the frame
        if tails[at::tail_size].translate(None, b"\x00\x01"):
            return None
    head_texts = plan.head_texts(heads.decode("latin-1"))
    tail_texts = plan.tail_texts(tails.decode("latin-1"))
    if not ("".join(head_texts).isascii() and "".join(tail_texts).isascii()):
        return None  # (``usual`` leaves non-ASCII texts to ``decode_event_fast``)
    per_head, per_tail = len(shape.head_spans), len(shape.tail_spans)
    columns = tuple(head_texts[i::per_head] if region == 0 else tail_texts[i::per_tail] for region, i in shape.fields)
    contents = list(map(_cut, raws, map(slice, repeat(head_size), map(sub, lengths, repeat(tail_size)))))
    _hits += count
    return columns, tails[shape.trusted::tail_size], contents


def _may_learn() -> bool:
    """Why a budget: events of ever new layouts would each pay for a layout nobody reuses. The first
    few are free; after that each one is paid for by a few hits, or by many events read without a
    layout (so a process whose first layouts were all one-offs still learns the usual one: at most
    one layout per 256 such events, a small share of what the reader costs them)."""
    return _learnt < _FREE_LEARNING + _hits // _HITS_PER_LAYOUT + _misses // _MISSES_PER_LAYOUT


def _learn(raw: bytes, limits: Limits, event: MessageEvent) -> None:
    global _recent, _learnt
    try:
        walk = _walk(raw)
        layout = _Layout(walk, limits) if walk is not None else None
        # never remember a layout that does not give back its own event
        if layout is None or layout.read(raw) != event:
            return
    except (struct.error, UnicodeDecodeError):  # a shape the walk does not follow (the reader's other path)
        return
    _learnt += 1
    _recent = (layout, *_recent[:_MAX_LAYOUTS - 1])
