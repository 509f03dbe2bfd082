"""The chain of the usual history in one pass over sorted positions, without a node per event.

Applies when every data event has a canonical decimal sequence id (and previous id), the positions
are distinct and each event points at the one before it; meta copies must be byte-identical
repeats or key changes seen only in meta. That history is one chain: the oldest event is the
``start``, every other one ``linked``, the meta copies ``duplicate`` or ``out_of_band``. Anything
else (a gap, fork, conflict, cycle, odd ids) returns None and ``chain.analyse_chain`` decides: the
statuses are exactly the ones it gives (tests/test_same_reports.py).

Replays are found the same way: only events whose message id occurs twice can be replays, so the
full rule (``chain.find_replays``) runs on those alone (found by one count of every stored id).
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from itertools import compress, islice
from operator import gt, itemgetter, lt
from typing import TYPE_CHECKING, TypeVar

from .chain import FIRST_EVENT, ONLY_IN_META, ChainResult, find_replays
from .columns import FROM_META as _FROM_META
from .columns import IS_KEY_CHANGE as _IS_KEY_CHANGE
from .columns import SIGNED_KIND as _SIGNED_KIND
from .columns import consecutive
from .model import ChainStatus
from .wire import compiled_twin

if TYPE_CHECKING:
    from .columns import Ids
    from .engine import _Run

_DECIMAL = 1
_IS_META = bytes(1 if flags & _FROM_META else 0 for flags in range(256))  # a flags byte -> whether in meta
_IS_DATA = bytes(0 if flags & _FROM_META else 1 for flags in range(256))
_BUCKETS = 16


def linear_chain(run: _Run, members: Sequence[int]) -> dict[int, str] | None:
    """Set the chain status of every event of one conversation (``members``: its rows) and return
    its replays ({report index: detail}), or return None (nothing set) when the history is not a
    single linked chain. Each test is one pass in C over a column (``map``, ``compress``, counts),
    not a Python step per row: a run's tail is this process alone while its other cores wait. What
    is read of the rows is kept as compact as the columns (bytes, arrays: a few bytes a row, no
    object per row), so the tail's memory stays what it was at millions of events."""
    flags, seq, prev = run.flags, run.seq, run.prev
    forms, numbers = seq._form, seq.numbers()
    prev_forms, prev_numbers = prev._form, prev.numbers()
    if _bytes_of(forms, members).count(_DECIMAL) != len(members):
        return None
    member_flags = _bytes_of(flags, members)
    data = array("I", compress(members, member_flags.translate(_IS_DATA)))
    meta = array("I", compress(members, member_flags.translate(_IS_META)))
    del member_flags
    if not data:
        return None
    stretches = _stretches(members, meta)
    data_prev_forms = _take(prev_forms, data, stretches, bytearray())
    if data_prev_forms.count(0) + data_prev_forms.count(_DECIMAL) != len(data):
        return None
    ordered = _in_order(data, numbers, prev_forms, data_prev_forms, prev_numbers, stretches)
    if ordered is None:
        return None
    order, positions, prev_forms_in_order, previous = ordered
    del data_prev_forms, ordered
    # the oldest event, then every other one must point at its predecessor
    first = order[0]
    first_prev = previous[0] if prev_forms_in_order[0] == _DECIMAL else None
    if first_prev is not None and first_prev >= positions[0]:
        return None
    if prev_forms_in_order.count(_DECIMAL, 1) != len(order) - 1 or \
            memoryview(previous)[1:] != memoryview(positions)[:-1]:
        return None
    del previous, prev_forms_in_order
    copies = _meta_statuses(run, meta, order, positions) if meta else {}
    if copies is None:
        return None
    # decided: write the statuses
    codes = run.chain_codes
    linked = _code(ChainStatus.LINKED)
    span = consecutive(members)
    if span is not None:  # (the meta copies among them are set below, as the first one is)
        codes[span] = bytes((linked,)) * len(members)
    else:
        for index in order:
            codes[index] = linked
    run._set_chain(first, ChainResult(ChainStatus.START, FIRST_EVENT if first_prev is None else
                                      f"oldest event of the window (predecessor {prev[first]} not fetched)"))
    for index, result in copies.items():
        run._set_chain(index, result)
    return _replays(run, members, (data, meta, stretches))


def _code(status: ChainStatus) -> int:
    return list(ChainStatus).index(status)


def _bytes_of(column: bytearray, rows: Sequence[int]) -> bytes | bytearray:
    """A one-byte column's values at ``rows``: a slice where they are consecutive."""
    span = consecutive(rows) if len(rows) > 1 else None
    return column[span] if span is not None else _gather(column, rows, bytearray())


def _gather(column: Sequence[int], rows: Sequence[int], into: _Compact) -> _Compact:
    """``into`` extended with the column's values at ``rows``, read a chunk of rows at a time by
    ``itemgetter`` (in C, several times faster than a ``map`` of ``__getitem__``): never a tuple of
    the column's size, whose objects cost 40 bytes a row at the tail's peak."""
    for start in range(0, len(rows), _GATHERED):
        chunk = rows[start:start + _GATHERED]
        if len(chunk) == 1:
            into.append(column[chunk[0]])
        else:
            into.extend(itemgetter(*chunk)(column))
    return into


_GATHERED = 4096
_STRETCH_ROWS = 64  # fewest rows a stretch averages for slices to beat ``itemgetter`` (a few slices per chunk)


def _stretches(members: Sequence[int], meta: Sequence[int]) -> list[slice] | None:
    """The data rows of consecutive ``members`` as the slices between their meta rows (``meta``,
    ascending), or None when the members are not consecutive or the meta rows split them into
    stretches too short to pay. Why: the data rows' columns were gathered a row at a time
    (``itemgetter``: an int object each, 15 ms a column at 100,000 rows) where a history's few
    meta copies leave a few hundred stretches that copy in C."""
    span = consecutive(members) if len(members) > 1 else None
    if span is None or len(meta) * _STRETCH_ROWS > len(members):
        return None
    out, start = [], span.start
    for row in meta:
        if row > start:
            out.append(slice(start, row))
        start = row + 1
    if start < span.stop:
        out.append(slice(start, span.stop))
    return out


def _take(column: bytearray | array[int], rows: Sequence[int], stretches: list[slice] | None, into: _Compact) -> _Compact:
    """``_gather``, from ``stretches`` (the same rows as slices: ``_stretches``) when there are some."""
    if stretches is None:
        return _gather(column, rows, into)
    with memoryview(column) as view, view.cast("B") as raw:  # (a slice of a view copies nothing)
        size = view.itemsize
        for stretch in stretches:
            part = raw[stretch.start * size:stretch.stop * size]
            if isinstance(into, bytearray):
                into += part
            else:
                into.frombytes(part)
    return into


_Compact = TypeVar("_Compact", bytearray, "array[int]")


def _in_order(data: array[int], numbers: array[int], prev_forms: bytearray, data_prev_forms: bytes | bytearray,
              prev_numbers: array[int], stretches: list[slice] | None = None,
              ) -> tuple[array[int], array[int], bytes | bytearray, array[int]] | None:
    """The data rows strictly ascending by position, and in that order their positions, their
    previous ids' forms (``data_prev_forms``: in data order) and their previous ids; None where two
    share a position (not one chain). Pages usually come newest first, so a reversal is tried first
    (the columns read once, in data order, reversed; ``stretches``: the data rows as slices)."""
    positions = _take(numbers, data, stretches, array("q"))
    if all(map(gt, positions, islice(positions, 1, None))):
        previous = _take(prev_numbers, data, stretches, array("q"))
        positions.reverse()
        previous.reverse()
        return array("I", reversed(data)), positions, data_prev_forms[::-1], previous
    if all(map(lt, positions, islice(positions, 1, None))):
        return data, positions, data_prev_forms, _take(prev_numbers, data, stretches, array("q"))
    order = array("I", sorted(data, key=numbers.__getitem__))
    positions = _gather(numbers, order, array("q"))
    if not all(map(lt, positions, islice(positions, 1, None))):
        return None
    return order, positions, _bytes_of(prev_forms, order), _gather(prev_numbers, order, array("q"))


def _meta_statuses(run: _Run, meta: array[int], order: array[int],
                   positions: array[int]) -> dict[int, ChainResult] | None:
    """Meta copies: a byte-identical repeat of the data event (or of the first meta copy) at its
    position is a duplicate; the first copy of a position only meta holds is out of band."""
    numbers, flags, digests = run.seq.numbers(), run.flags, run.digests
    # ``positions``: those of ``order``, ascending: searched, not hashed (memory)
    out: dict[int, ChainResult] = {}
    first_meta: dict[int, int] = {}
    for index in sorted(meta):
        number = numbers[index]
        slot = bisect_left(positions, number)
        first = order[slot] if slot < len(positions) and positions[slot] == number else None
        if first is None:
            first = first_meta.get(number)
            if first is None:
                first_meta[number] = index
                out[index] = ChainResult(ChainStatus.OUT_OF_BAND, ONLY_IN_META)
                continue
        if digests[32 * index:32 * index + 32] != digests[32 * first:32 * first + 32]:
            return None  # a conflict
        both_key_changes = bool(flags[first] & _IS_KEY_CHANGE and flags[index] & _IS_KEY_CHANGE)
        out[index] = ChainResult(ChainStatus.DUPLICATE, f"byte-identical repeat of event {run.index_of(first)}",
                                 info_only=both_key_changes)
    return out


def _repeated_ids(ids: Ids, members: Sequence[int]) -> Sequence[int]:
    """The rows among ``members`` whose stored message id occurs more than once (every row of an
    id that repeats, and perhaps a few more): counted in C, where a Python step per row cost several
    times as much; in a history nearly every id is unique (the repeats are the key changes ``meta``
    carries again). Counted a quarter of the keys at a time, those of one value of a key's lowest
    byte (equal keys share it): one count of them all held 120 bytes a row at once (an int object
    and a table entry each), the peak of a 1,000,000-event run's tail (+126 MB, 298 MB in all); a
    quarter's count costs about 4 % more time. Keys chosen to share that byte are counted as before."""
    keys = ids.keys(members)
    repeated: set[int] = set()
    for quarter in _quarters(keys):
        counts = Counter(compress(keys, quarter))
        repeated.update(compress(counts, map((1).__lt__, counts.values())))
        del counts
    if not repeated:
        return ()
    return list(compress(members, map(repeated.__contains__, keys)))


def _quarters(keys: array[int]) -> Iterator[bytes]:
    """For each quarter of ``keys``, one byte a key, 1 where it is in that quarter (by the value of
    its lowest byte: equal keys are in the same one), for ``compress``."""
    lowest = bytes(memoryview(keys).cast("B")[_LOWEST_BYTE::keys.itemsize])
    for quarter in _QUARTERS:
        yield lowest.translate(quarter)


_LOWEST_BYTE = 0 if sys.byteorder == "little" else 7  # (of an int64: the best spread of a snowflake id's bytes)
_QUARTERS = [bytes(1 if value % 4 == quarter else 0 for value in range(256)) for quarter in range(4)]

_repeated_offsets: Callable[[array[int]], bytes] | None = compiled_twin("repeated_offsets")
_FEW_KEYS = 8  # repeated keys found among the data rows by ``index`` (a scan in C each) up to this many


def _repeated_in_chain(ids: Ids, members: Sequence[int], data: array[int], meta: array[int],
                       stretches: list[slice] | None) -> Sequence[int]:
    """The rows whose message id repeats, or a few more (a pre-filter, as ``_repeated_ids``), in
    ``members``' order, for a linear chain's ``data`` and ``meta`` rows. Why: counting every row's
    key was 44 ms of 100,000 events (the serial tail of a two-worker run); here the compiled twin
    (``_cfastwire.repeated_offsets``) counts the keys in one C table, and without it the data rows'
    keys, nearly always distinct, go into sets (a quarter of them at a time: one set of them all held
    70 bytes a row at the tail's peak) and only the few meta rows are counted. The key
    is the stored number's first half (equal ids store equal halves), read from the column in C
    without an ``xor`` per row. Data rows that share a key, in pure Python: the full count."""
    keys = _take(ids.numbers(), data, stretches, array("q"))
    if _repeated_offsets is not None:  # the compiled twin: one C table of the keys, data's then meta's
        count = len(keys)
        keys += _gather(ids.numbers(), meta, array("q"))
        offsets = array("I", _repeated_offsets(keys))
        return sorted(data[at] if at < count else meta[at - count] for at in offsets)
    meta_keys = _gather(ids.numbers(), meta, array("q"))
    meta_counts = Counter(meta_keys)
    in_data: set[int] = set()  # the meta rows' keys a data row has too
    for chosen in _quarters(keys):  # a quarter of the data rows' keys in a set at a time (as ``_repeated_ids``)
        unique = set(compress(keys, chosen))
        if len(unique) != chosen.count(1):
            return _repeated_ids(ids, members)
        in_data.update(filter(unique.__contains__, meta_counts))
        del unique
    repeated = in_data.union(key for key, count in meta_counts.items() if count > 1)
    if not repeated:
        return ()
    if len(in_data) <= _FEW_KEYS:
        rows = [data[keys.index(key)] for key in in_data]
    else:
        rows = list(compress(data, map(in_data.__contains__, keys)))
    rows += compress(meta, map(repeated.__contains__, meta_keys))
    return sorted(rows)


def _replays(run: _Run, members: Sequence[int],
             split: tuple[array[int], array[int], list[slice] | None] | None = None) -> dict[int, str]:
    """``find_replays`` on the events whose message id is not unique (a replay needs two; ``split``:
    the members' data rows, meta rows and stretches, where a linear chain has them, to find those
    rows by ``_repeated_in_chain``). Ids are bucketed first, so the sets that find repeats stay
    small however long the history."""
    flags, ids = run.flags, run.message_id
    forms = ids._form
    senders, no_sender = run.sender.codes(), run.sender.code(None)
    buckets: list[array[int]] = [array("I") for _ in range(_BUCKETS)]
    for index in _repeated_ids(ids, members) if split is None else _repeated_in_chain(ids, members, *split):
        if flags[index] & _SIGNED_KIND and forms[index] and senders[index] != no_sender:
            buckets[hash(ids.key(index)) % _BUCKETS].append(index)
    suspects = []
    for bucket in buckets:
        seen: set[object] = set()
        repeated: set[object] = set()
        for index in bucket:
            key = ids.key(index)
            if key in seen:
                repeated.add(key)
            else:
                seen.add(key)
        if repeated:
            suspects += [run._chain_node(i) for i in bucket if ids.key(i) in repeated]
    return find_replays(suspects) if suspects else {}
