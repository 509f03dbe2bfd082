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

from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import compress, islice
from operator import gt, lt, not_
from typing import TYPE_CHECKING

from .chain import FIRST_EVENT, ONLY_IN_META, ChainResult, find_replays
from .columns import FROM_META as _FROM_META
from .columns import IS_KEY_CHANGE as _IS_KEY_CHANGE
from .columns import SIGNED_KIND as _SIGNED_KIND
from .columns import consecutive, picker
from .model import ChainStatus

if TYPE_CHECKING:
    from .columns import Ids
    from .engine import _Run

_DECIMAL = 1
_BUCKETS = 16


def linear_chain(run: _Run, members: Sequence[int]) -> dict[int, str] | None:
    """Set the chain status of every event of one conversation (``members``: its rows) and return
    its replays ({report index: detail}), or return None (nothing set) when the history is not a
    single linked chain. Each test is one pass in C over a column (``picker``, ``map``), not a
    Python step per row: a run's tail is this process alone while its other cores wait."""
    flags, seq, prev = run.flags, run.seq, run.prev
    forms, numbers = seq._form, seq.numbers()
    prev_forms, prev_numbers = prev._form, prev.numbers()
    pick = picker(members)
    if pick(forms).count(_DECIMAL) != len(members):
        return None
    in_meta = list(map(_FROM_META.__and__, pick(flags)))
    data = array("I", compress(members, map(not_, in_meta)))
    meta = array("I", compress(members, in_meta))
    if not data:
        return None
    by_data = picker(data)
    data_prev_forms = by_data(prev_forms)
    if data_prev_forms.count(0) + data_prev_forms.count(_DECIMAL) != len(data):
        return None
    order, positions, prev_forms_in_order, previous = _in_order(data, by_data, numbers, prev_forms, data_prev_forms,
                                                                prev_numbers)
    # the oldest event, then every other one must point at its predecessor
    first = order[0]
    first_prev = previous[0] if prev_forms_in_order[0] == _DECIMAL else None
    if first_prev is not None and first_prev >= positions[0]:
        return None
    # (``positions`` and ``previous`` come from one picker: sequences of one type, compared in C)
    if not all(map(lt, positions, islice(positions, 1, None))) or \
            prev_forms_in_order[1:].count(_DECIMAL) != len(order) - 1 or previous[1:] != positions[:-1]:
        return None
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
    return _replays(run, members)


def _code(status: ChainStatus) -> int:
    return list(ChainStatus).index(status)


def _in_order(data: array[int], by_data: Callable[[Sequence[int]], Sequence[int]], numbers: array[int],
              prev_forms: bytearray, data_prev_forms: Sequence[int], prev_numbers: array[int],
              ) -> tuple[array[int], Sequence[int], Sequence[int], Sequence[int]]:
    """The data rows ascending by position, and in that order their positions, their previous
    ids' forms (``data_prev_forms``: in data order) and their previous ids. Pages usually come
    newest first, so a reversal is tried first (the columns read once, in data order, reversed)."""
    positions = by_data(numbers)
    if all(map(gt, positions, islice(positions, 1, None))):
        return array("I", reversed(data)), positions[::-1], data_prev_forms[::-1], by_data(prev_numbers)[::-1]
    if all(map(lt, positions, islice(positions, 1, None))):
        return data, positions, data_prev_forms, by_data(prev_numbers)
    order = array("I", sorted(data, key=numbers.__getitem__))
    by_order = picker(order)
    return order, by_order(numbers), by_order(prev_forms), by_order(prev_numbers)


def _meta_statuses(run: _Run, meta: array[int], order: array[int],
                   ordered: Sequence[int]) -> dict[int, ChainResult] | None:
    """Meta copies: a byte-identical repeat of the data event (or of the first meta copy) at its
    position is a duplicate; the first copy of a position only meta holds is out of band."""
    numbers, flags, digests = run.seq.numbers(), run.flags, run.digests
    positions = array("q", ordered)  # the positions of ``order``, ascending: searched, not hashed (memory)
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
    id that repeats, and perhaps a few more): counted at once in C, where a Python step per row
    cost several times as much; in a history nearly every id is unique (the repeats are the key
    changes ``meta`` carries again)."""
    keys = ids.keys(members)
    counts = Counter(keys)
    if len(counts) == len(keys):
        return ()
    repeated = set(compress(counts, map((1).__lt__, counts.values())))
    return list(compress(members, map(repeated.__contains__, keys)))


def _replays(run: _Run, members: Sequence[int]) -> dict[int, str]:
    """``find_replays`` on the events whose message id is not unique (a replay needs two). Ids are
    bucketed first, so the sets that find repeats stay small however long the history."""
    flags, ids = run.flags, run.message_id
    forms = ids._form
    senders, no_sender = run.sender.codes(), run.sender.code(None)
    buckets: list[array[int]] = [array("I") for _ in range(_BUCKETS)]
    for index in _repeated_ids(ids, members):
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
