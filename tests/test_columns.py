"""The engine's compact storage (issue 11): exact values back, nothing of a checked event kept, lazy
event lists equal to the materialised ones, and no thread left behind."""

from __future__ import annotations

import array
import base64
import concurrent.futures
import copy
import json
import random
import re
import struct
import sys
import threading
import uuid
from collections import Counter
from typing import Any

import msgspec
import pytest
from helpers import ALICE, BOB, ev, ids_state, keyring, page
from hypothesis import given, settings
from hypothesis import strategies as st

import verifier
from verifier import columns, engine, fastchain
from verifier.columns import Ids, Interned
from verifier.engine import EventList, Verification
from verifier.report import render
from verifier.testing.forge import Identity, build_conversation, encode_event

ODD_IDS = [None, "", "0", "00", "0123", "123", "9223372036854775807", "9223372036854775808", "1" * 40, "-5", "+5",
           " 5", "٣", "²", "12a", "6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6", "6F1C1A2E-3B4D-4C5E-8F90-A1B2C3D4E5F6",
           "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
           "6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5fg", "6f1c1a2e3b4d4c5e8f90a1b2c3d4e5f6abcd", "x" * 36]


@pytest.mark.parametrize("uuids", [False, True])
def test_ids_give_back_exactly_what_was_stored(uuids):
    column = Ids(uuids=uuids)
    for value in ODD_IDS:
        column.append(value)
    assert [column[i] for i in range(len(ODD_IDS))] == ODD_IDS
    assert column.decimal(ODD_IDS.index("123")) == 123 and column.decimal(ODD_IDS.index("0123")) is None


_UUID_LIKE = st.builds(lambda parts, sep: sep.join(parts),
                       st.tuples(*(st.text("0123456789abcdefABCDEFg-", min_size=n, max_size=n) for n in (8, 4, 4, 4, 12))),
                       st.sampled_from(["-", "_", ""]))
_DECIMAL_LIKE = st.one_of(st.integers(-10, 2 ** 64).map(str), st.text("0123456789", max_size=21),
                          st.text("0123456789٣²", max_size=5))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), _UUID_LIKE, _DECIMAL_LIKE, st.text(max_size=40)), max_size=30), st.booleans())
def test_ids_round_trip_any_strings(values, uuids):
    """Whatever is stored comes back exactly, and equal values have equal keys (the replay pre-filter)."""
    column = Ids(uuids=uuids)
    for value in values:
        column.append(value)
    assert [column[i] for i in range(len(values))] == values
    for i, a in enumerate(values):
        for j, b in enumerate(values):
            if a == b:
                assert column.key(i) == column.key(j)


def test_interned_values_are_stored_once():
    column: Interned[str | None] = Interned()
    for value in ["a", None, "a", "b", None]:
        column.append(value)
    assert [column[i] for i in range(5)] == ["a", None, "a", "b", None] and len(column.codes()) == 5
    assert column.code("a") == column.code("a") != column.code("b")


_ANY_ID = st.one_of(st.none(), _UUID_LIKE, _DECIMAL_LIKE, st.text(max_size=40))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_ANY_ID, max_size=12), max_size=5), st.booleans())
def test_joined_ids_are_the_ids_appended_in_order(parts, uuids):
    """``extend`` (a part verified elsewhere joins the run) gives what appending every value would."""
    appended, joined = Ids(uuids=uuids), Ids(uuids=uuids)
    for values in parts:
        part = Ids(uuids=uuids)
        for value in values:
            part.append(value)
            appended.append(value)
        joined.extend(part)
    flat = [v for values in parts for v in values]
    assert [joined[i] for i in range(len(flat))] == flat
    assert [joined.key(i) for i in range(len(flat))] == [appended.key(i) for i in range(len(flat))]
    assert [joined.decimal(i) for i in range(len(flat))] == [appended.decimal(i) for i in range(len(flat))]
    with pytest.raises(ValueError):
        joined.extend(Ids(uuids=not uuids))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), st.sampled_from("abcde")), max_size=10), max_size=5),
       st.lists(st.tuples(st.integers(0, 9), st.sampled_from("xyz")), max_size=4))
def test_joined_interned_columns_are_the_values_appended_in_order(parts, overwrites):
    """Same values, same codes and the same table (first-seen order) as one column appended to,
    also when a part overwrote rows (``set``) and holds values no row uses any more."""
    appended: Interned[str | None] = Interned()
    joined: Interned[str | None] = Interned()
    for values in parts:  # the same steps on one column, and on a part that is then joined
        part: Interned[str | None] = Interned()
        first = len(appended)
        for value in values:
            part.append(value)
            appended.append(value)
        for at, value in overwrites:
            if at < len(values):
                part.set(at, value)
                appended.set(first + at, value)
        joined.extend(part)
    assert [joined[i] for i in range(len(joined))] == [appended[i] for i in range(len(appended))]
    assert list(joined.codes()) == list(appended.codes())
    assert joined._values == appended._values


def history_pages(n: int = 300):
    conv = build_conversation(n, seed="columns", realistic_crypto=False)
    return conv, conv.pages(50), verifier.Keyring.from_json(json.dumps(conv.keyring()))


def test_a_checked_event_keeps_nothing_but_its_columns():
    conv, pages, ring = history_pages()
    verification = Verification(conversation_keys=conv.conversation_keys)
    run = verification._run
    run.keep_facts = False
    run.know_keyring(ring)
    for body in pages:
        verification._add(body)
    assert not run.waiting and not run.jobs or len(run.jobs) < 2048
    assert set(run.kept) <= {i for i in range(run.count) if run.kind[i] == "ConversationKeyChangeEvent"}
    report = verification._finish(ring, lazy=True)
    assert report.verdict == "pass" and isinstance(report.conversations[0].events, EventList)


def test_the_audit_form_keeps_the_encoded_event_until_the_keys_are_known():
    conv, pages, ring = history_pages(60)
    verification = Verification(conversation_keys=conv.conversation_keys)
    for body in pages:
        verification.add_page(body)
    assert len(verification._run.waiting) > 50  # messages wait as bytes, not decoded events
    report = verification.finish(ring)
    assert report.verdict == "pass" and not verification._run.waiting


def test_a_lazy_report_equals_the_materialised_one():
    conv, pages, ring = history_pages(120)
    pages[0]["data"][3]["is_trusted"] = False  # a finding on one event
    eager = verifier.verify_pages(pages, ring, conversation_keys=conv.conversation_keys)
    lazy = verifier.verify_pages(pages, ring, conversation_keys=conv.conversation_keys, lazy=True)
    events = lazy.conversations[0].events
    assert list(events) == eager.conversations[0].events
    assert events[-1] == eager.conversations[0].events[-1] and events[2:5] == eager.conversations[0].events[2:5]
    assert len(events) == len(eager.conversations[0].events)
    assert lazy.proof == eager.proof and lazy.conversations[0].counts == eager.conversations[0].counts


def test_an_interrupted_page_source_leaves_no_thread_behind(monkeypatch):
    from verifier import engine
    monkeypatch.setattr(engine, "_FLUSH", 4)  # checks go to the pool after every page
    monkeypatch.setattr(engine, "_CHUNK", 2)
    before = threading.active_count()
    started = []
    real_pool = concurrent.futures.ThreadPoolExecutor  # (the engine imports it when it starts a pool)
    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", lambda n: started.append(n) or real_pool(n))

    def pages():
        for n in range(1, 4):
            yield page(*[ev(seq=10 * n + i, sender=ALICE if i % 2 else BOB) for i in range(5)])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        verifier.verify_pages(pages(), keyring(ALICE, BOB), workers=4)
    assert started == [4] and threading.active_count() == before


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), _UUID_LIKE, _DECIMAL_LIKE, st.text(max_size=40)), max_size=30), st.booleans(),
       st.data())
def test_ids_read_in_batches_equal_ids_read_one_by_one(values, uuids, data):
    """``values`` (what a report is rendered from) gives ``column[row]`` for any rows: all decimals,
    all UUIDs, mixed, one row, none, repeated and out of order."""
    column = Ids(uuids=uuids)
    for value in values:
        column.append(value)
    rows = data.draw(st.lists(st.integers(0, len(values) - 1), max_size=40)) if values else []
    assert column.values(rows) == [column[row] for row in rows]
    assert column.values(range(len(values))) == values


@pytest.mark.parametrize("values", [["1", "22", "9223372036854775807"], ["6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6",
                                                                        "00000000-0000-0000-0000-000000000000"],
                                    ["1", None], ["ffffffff-ffff-ffff-ffff-ffffffffffff"], ["1"]])
def test_batches_of_one_form_take_the_fast_ways_and_give_the_same_values(values):
    column = Ids(uuids=True)
    for value in values:
        column.append(value)
    assert column.values(range(len(values))) == values and column.values([]) == []
    assert column.values([len(values) - 1, 0]) == [values[-1], values[0]]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", None, "c"]), max_size=30), st.data())
def test_interned_read_in_batches_equal_one_by_one(values, data):
    column: Interned[str | None] = Interned()
    for value in values:
        column.append(value)
    rows = data.draw(st.lists(st.integers(0, len(values) - 1), max_size=40)) if values else []
    assert column.values(rows) == [column[row] for row in rows]


def test_event_reports_in_batches_equal_the_reference_engines():
    """Every row's report, built 500 at a time (across batch boundaries, with findings, a gap, a
    start), alone, or in any order, is the one the reference engine (tests/reference, one object
    per event) gives."""
    from reference import engine as ref_engine
    conv, pages, ring = history_pages(1100)
    pages[0]["data"][3]["is_trusted"] = False
    del pages[4]["data"][7]  # a gap
    pages[12]["data"][9]["sender_id"] = "999"  # an envelope finding
    report = verifier.verify_pages(pages, ring, conversation_keys=conv.conversation_keys, lazy=True)
    reference = ref_engine.verify_pages(pages, ring, conversation_keys=conv.conversation_keys)
    events, expected = report.conversations[0].events, reference.conversations[0].events
    assert len(events) == len(expected) > 1000
    assert msgspec.json.encode(list(events)) == msgspec.json.encode(expected)
    run, indices = events._run, events._indices
    assert [run.event_report(at) for at in indices[495:505]] == list(events)[495:505] == events[495:505]
    assert run.event_reports(list(reversed(indices))) == list(events)[::-1]
    assert any(r.findings for r in expected) and any(not r.findings for r in expected)
    assert {r.chain.status for r in expected} >= {"linked", "gap", "start"}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["a", "b", None, "c", ("k", "1")]), max_size=12), max_size=5))
def test_interned_appended_a_page_at_a_time_equals_one_by_one(pages):
    """The engine appends a page's values at once: the codes and the table's first-seen order are
    the ones appending them one by one gives."""
    one_by_one: Interned[object] = Interned()
    at_once: Interned[object] = Interned()
    for values in pages:
        for value in values:
            one_by_one.append(value)
        at_once.append_all(values)
    assert list(at_once.codes()) == list(one_by_one.codes()) and at_once._values == one_by_one._values
    assert [at_once[i] for i in range(len(at_once))] == [value for values in pages for value in values]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ab", "cd", None, ("k", "1")]), st.integers(1, 9)), max_size=6))
def test_interned_pages_of_one_value_equal_one_by_one(pages):
    """A page of one value (the engine's kind and conversation columns) is coded at once, the value
    new or known, given as one object or as equal copies: as appending them one by one codes them."""
    one_by_one: Interned[object] = Interned()
    at_once: Interned[object] = Interned()
    for value, count in pages:
        copies = [value.encode().decode() if isinstance(value, str) else value for _ in range(count)]  # equal, not one
        for each in copies:
            one_by_one.append(each)
        at_once.append_all(copies)
    assert list(at_once.codes()) == list(one_by_one.codes()) and at_once._values == one_by_one._values
    assert [at_once[i] for i in range(len(at_once))] == [value for value, count in pages for _ in range(count)]


# ----------------------------------------------------------------- a page at once, pure Python
_DECIMAL = st.integers(0, 2 ** 63 + 5).map(str)  # across the int64 bound
_UUID_TEXT = st.uuids().map(str)
_ODD = st.sampled_from([None, "", "01", "-1", "+1", " 1", "1,2", "١", "9" * 20, "x", "-0", "1 ", "\t1", "1\n", "1e2",
                        "1.0", "[1]", "1]", "[1", "\ud800", "1\x00", "0x1", "1_000", "٣",
                        "6F1C1A2E-3B4D-4C5E-8F90-A1B2C3D4E5F6", "6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6,1",
                        "6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5f", "00000000-0000-0000-0000-000000000000"])


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.lists(_DECIMAL, max_size=40), st.lists(_UUID_TEXT, max_size=40)),
       st.lists(st.tuples(st.integers(0, 40), _ODD), max_size=2), st.booleans())
def test_a_page_appended_at_once_in_pure_python_is_stored_as_one_by_one(without_compiled_ids, ids, odd, uuids):
    """Without the compiled module, ``append_all`` takes a page of only canonical decimals (or
    UUIDs) at once and leaves exactly the columns ``append`` leaves; any other page (an odd value
    anywhere) is appended one by one, with the same result."""
    values = list(ids)
    for at, value in odd:
        values.insert(min(at, len(values)), value)
    one_by_one, at_once = Ids(uuids=uuids), Ids(uuids=uuids)
    one_by_one.append("7")
    at_once.append("7")
    for value in values:
        one_by_one.append(value)
    at_once.append_all(values)
    assert ids_state(at_once) == ids_state(one_by_one)
    forms = set(one_by_one._form[1:]) - {0}  # None (form 0) is put back in its place
    taken_at_once = bool(forms) and (forms == {1} or (uuids and forms == {2}))  # all decimal, or all UUID
    assert (columns._uniform_columns(values, uuids) is not None) == taken_at_once


@pytest.fixture(scope="module")
def without_compiled_ids():
    """The compiled twin removed for the module's pure-Python tests."""
    patch = pytest.MonkeyPatch()
    patch.setattr(columns, "_id_columns", None)
    yield patch
    patch.undo()


def test_pages_of_one_canonical_form_are_taken_at_once():
    assert columns._uniform_columns(["0", "1", str(2 ** 63 - 1)], False) is not None
    assert columns._uniform_columns(["6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6"] * 3, True) is not None
    assert columns._uniform_columns(["1", "2"], True) is not None  # decimal message ids too
    assert columns._uniform_columns([None, "1", None, None, "2", None], True) is not None  # None put back
    for values in ([], [None], [None, None], ["1", None, "01"], [str(2 ** 63)], ["1,2"], ["1", "2,3"], ["01"],
                   ["01", "1"], ["١", "1"], ["-0"], ["1", "-2"], ["1 "], ["1", "\t2"], ["1\n"], ["1e2"], ["1.0"],
                   ["1]"], ["[1", "2]"], ["1", "\ud800"], ["\ud800"], ["2\x00"], [""], ["1", ""],
                   ["6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6"],  # a UUID in a decimal-only column
                   ["6F1C1A2E-3B4D-4C5E-8F90-A1B2C3D4E5F6"], ["1", "6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6"]):
        assert columns._uniform_columns(values, False) is None, values


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_DECIMAL, _ODD.filter(lambda v: v is not None and "," not in v)), min_size=1, max_size=12))
def test_canonical_decimals_are_read_as_msgspec_writes_them_back(values):
    """``_canonical_decimals`` (msgspec reads the page's ids as JSON integers, and they are
    canonical when it writes them back as the same text) takes exactly the values that are
    ``0|[1-9][0-9]*`` within int64, the regular expression it replaced."""
    packed = columns._canonical_decimals(",".join(values), len(values))
    canonical = all(re.fullmatch(r"0|[1-9][0-9]{0,18}", v) and int(v) < 2 ** 63 for v in values)
    assert (packed is not None) == canonical
    if canonical:
        assert packed == struct.pack(f"={len(values)}q", *map(int, values))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-2 ** 63, 2 ** 63 - 1), max_size=20))
def test_the_halves_offset_is_a_flip_of_each_top_bit(halves):
    """``_flip_top_bits``: the big-endian bytes of int64 halves (unsigned - 2**63, as a UUID's are
    stored) become those of the unsigned halves, and back."""
    stored = b"".join(h.to_bytes(8, "big", signed=True) for h in halves)
    unsigned = b"".join((h + 2 ** 63).to_bytes(8, "big") for h in halves)
    assert columns._flip_top_bits(stored) == unsigned and columns._flip_top_bits(unsigned) == stored
    native = array.array("q", halves)
    if sys.byteorder == "little":
        native.byteswap()
    assert columns._flip_top_bits(native) == unsigned


_GOOD_UUID = "6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6"


@pytest.mark.parametrize("odd", [
    "6F1C1A2E-3B4D-4C5E-8F90-A1B2C3D4E5F6", "6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5F6",  # uppercase
    "6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5 6", "6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5\t6",  # whitespace (``fromhex`` skips it)
    "6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5g6", "6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5\u0666" + "6",  # not hex, non-ASCII
    "6f1c1a2e-3b4d-4c5e-8f9-0a1b2c3d4e5f6", "6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5f-",  # a dash moved, added
    "6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5f", "6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5f67",  # short, long
    "6f1c1a2e-3b4d-4c5e-8f90a1b2c3d4e5f6-", "6f1c1a2e,3b4d-4c5e-8f90-a1b2c3d4e5f6"])
def test_a_page_of_uuids_with_one_not_canonical_is_appended_one_by_one(without_compiled_ids, odd):
    """``_uuid_bytes`` takes exactly what ``_UUID`` matches: anything else (wherever it is in the page)
    sends the page to ``append``, which keeps that value as text."""
    for at in (0, 1, 2):
        values = [_GOOD_UUID] * 2
        values.insert(at, odd)
        assert columns._uniform_columns(values, True) is None, (odd, at)
        assert not columns._UUID.fullmatch(odd)


def test_uuids_of_shifted_lengths_are_not_taken_at_once(without_compiled_ids):
    """A 35- and a 37-character value side by side have the page's length and, past the first, its
    dashes where the stride puts them: the commas' places refuse them."""
    short, long = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaa", "aaaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
    assert columns._uniform_columns([short, long], True) is None
    assert columns._uniform_columns([_GOOD_UUID, short, long, _GOOD_UUID], True) is None
    stored = Ids(uuids=True)
    stored.append_all([_GOOD_UUID, short, long])
    assert [stored[i] for i in range(3)] == [_GOOD_UUID, short, long]


_INT64 = st.integers(min_value=-2 ** 63, max_value=2 ** 63 - 1)


@given(st.lists(st.tuples(_INT64, _INT64), max_size=40))
def test_uuid_texts_of_a_batch_equal_one_by_one(halves):
    """The pure batch (strided copies of the digits into their places) is ``_uuid_text`` of each."""
    highs, lows = [h for h, _ in halves], [low for _, low in halves]
    assert columns._uuid_text_list(highs, lows) == [columns._uuid_text(h, low) for h, low in halves]


def _tuple_hash_twins(count: int) -> list[tuple[int, int]]:
    """Distinct (high, low) int64 pairs that all have the hash of (1, 0): CPython's tuple hash
    (xxHash's rounds over each item's hash) is not salted, and an int's hash is the int modulo
    2**61 - 1, so the low half that completes any high half to a chosen hash can be solved for."""
    mask, prime = (1 << 64) - 1, (1 << 61) - 1
    p1, p2, p5 = 11400714785074694791, 14029467366897019727, 2870177450012600261

    def rotate(x: int, by: int) -> int:
        return ((x << by) | (x >> (64 - by))) & mask

    goal = hash((1, 0)) & mask
    before = rotate((goal - (2 ^ p5 ^ 3527539)) * pow(p1, -1, 1 << 64) & mask, 33)  # undo the last round
    out, high = [], 1
    while len(out) < count:
        high += 1
        after_high = rotate((p5 + (hash(high) & mask) * p2) & mask, 31) * p1 & mask
        lane = (before - after_high) * pow(p2, -1, 1 << 64) & mask  # the low half's hash this needs
        low = lane if lane < prime else lane - (1 << 64) if lane > (1 << 64) - prime else None
        if low is not None and low != -1 and hash((high, low)) == hash((1, 0)):
            out.append((high, low))
    return out


def test_repeated_message_ids_are_counted_by_keys_no_chosen_ids_can_make_collide(monkeypatch):
    """Round 78: ``fastchain._repeated_ids`` counted ``Ids.keys``, a tuple of a UUID's two stored
    halves, in a ``Counter``; message ids chosen so that every tuple had one hash made that count
    quadratic (40,000 unsigned events, 5.5 MB, took a minute instead of a second). Keys are int64
    now, of which at most a few share a hash; and the replays among such ids are still found."""
    twins = _tuple_hash_twins(3000)
    texts = [columns._uuid_text(high, low) for high, low in twins]
    column = Ids(uuids=True)
    column.append_all(texts)
    assert [column[i] for i in range(len(texts))] == texts
    keys = column.keys(range(len(texts)))
    assert max(Counter(map(hash, keys)).values()) <= 9
    assert list(keys) == [column.key(i) for i in range(len(texts))]  # ``key``'s values, a batch at a time
    # a linked history of such ids with one genuine replay at its end: the one-pass chain finds it
    events = [ev(seq=n, prev=n - 1 if n > 1 else None, message_id=text) for n, text in enumerate(texts[:40], 1)]
    replayed = msgspec.structs.replace(events[5].event, sequence_id=ev(seq=41).event.sequence_id,
                                       previous_sequence_id=events[-1].event.sequence_id)
    body = page(*reversed(events))
    body["data"].insert(0, {"encoded_event": base64.b64encode(encode_event(replayed)).decode()})
    decided = []
    linear = fastchain.linear_chain
    monkeypatch.setattr(fastchain, "linear_chain", lambda run, members: decided.append(linear(run, members)) or
                        decided[-1])
    report = verifier.verify_pages([body], keyring(ALICE))
    assert len(decided) == 1 and decided[0] is not None
    replays = [e for e in report.conversations[0].events if any(f.code == "replay" for f in e.findings)]
    assert [e.message_id for e in replays] == [texts[5]]


@given(st.lists(st.integers(0, 40), max_size=30), st.integers(0, 30), st.integers(0, 12))
def test_picker_gives_the_rows_items_in_order_a_slice_where_they_are_consecutive(rows, start, run):
    """``picker`` reads consecutive rows (a run's one conversation, a batch of it) as a slice of the
    column, and any others one by one: the same items, in order, from every kind of column."""
    from array import array
    for chosen in (rows, list(range(start, start + run)), list(range(start + run, start, -1))):
        columns_ = [array("q", range(-50, 50, 2))[:45], bytearray(range(45)), tuple(range(100, 145))]
        for column in columns_:
            as_range = range(chosen[0], chosen[0] + len(chosen)) if chosen else range(0)
            for rows in (array("I", chosen), chosen, as_range if list(as_range) == chosen else chosen):
                picked = columns.picker(rows)(column)
                assert list(picked) == [column[row] for row in chosen]
        expected = slice(chosen[0], chosen[0] + len(chosen)) if chosen and chosen == list(
            range(chosen[0], chosen[0] + len(chosen))) else None
        assert (columns.consecutive(chosen) if chosen else None) == expected
    assert columns.consecutive(range(start + run, start, -1)) is None  # (an EventList's batch is a range)
    assert columns.consecutive(range(start, start + run + 1)) == slice(start, start + run + 1)


def test_one_conversation_is_concluded_as_a_range_of_rows(monkeypatch):
    """A run's one conversation reaches the chain and its report as a range of rows (each column
    read as a slice, with no test per row that they count up by one); two conversations' rows,
    interleaved, as arrays. The reports are those of the general chain (``linear_chain`` off)."""
    first = build_conversation(12, realistic_crypto=False, seed="range-1")
    second = build_conversation(9, realistic_crypto=False, seed="range-2", start_ms=1_784_900_000_000,
                                members=[Identity.from_seed("3333", "3", "range-c"), Identity.from_seed("4444", "4",
                                                                                                       "range-d")])
    ring = verifier.Keyring.from_json(json.dumps({"keys": first.keyring()["keys"] + second.keyring()["keys"]}))
    keys = {**first.conversation_keys, **second.conversation_keys}
    linear = fastchain.linear_chain
    for pages, kinds in ((first.pages(5), [range]), ([*first.pages(5), *second.pages(4)], [array.array] * 2)):
        seen: list[type] = []
        monkeypatch.setattr(fastchain, "linear_chain", lambda run, rows, seen=seen: seen.append(type(rows)) or
                            linear(run, rows))
        report = verifier.verify_pages(copy.deepcopy(pages), ring, conversation_keys=keys)
        assert seen == kinds and report.verdict == "pass"
        monkeypatch.setattr(fastchain, "linear_chain", lambda run, rows: None)
        general = verifier.verify_pages(copy.deepcopy(pages), ring, conversation_keys=keys)
        assert render(report, "json") == render(general, "json")


@given(st.integers(0, 5), st.integers(2, 300), st.sets(st.integers(0, 299)))
def test_the_data_rows_taken_as_stretches_are_the_rows_gathered(start, size, meta_at):
    """Round 133: the data rows between a conversation's meta rows are copied as slices of each
    column (``fastchain._stretches``/``_take``), the same values ``_gather`` reads row by row, meta
    rows at either end or side by side included; too many meta rows: gathered as before."""
    members = range(start, start + size)
    meta = array.array("I", sorted(start + at for at in meta_at if at < size))
    data = array.array("I", (row for row in members if row not in set(meta)))
    numbers = array.array("q", (7 * row - 1_000_000_007 for row in range(start + size)))
    forms = bytearray(row % 3 for row in range(start + size))
    stretches = fastchain._stretches(members, meta)
    if len(meta) * fastchain._STRETCH_ROWS > size:
        assert stretches is None
    else:
        assert stretches is not None and [row for part in stretches for row in range(part.start, part.stop)] == list(data)
    assert fastchain._take(numbers, data, stretches, array.array("q")) == \
        fastchain._gather(numbers, data, array.array("q"))
    assert fastchain._take(forms, data, stretches, bytearray()) == fastchain._gather(forms, data, bytearray())
    assert fastchain._stretches(array.array("I", [*members][::-1]), meta) is None  # not consecutive


_HALVES = st.integers(0, 11)  # a small pool of first halves: shared halves and whole repeats are common


@given(st.lists(st.one_of(st.none(), st.tuples(_HALVES, st.integers(0, 3)), st.just("x-other")), min_size=1,
                max_size=60), st.sets(st.integers(0, 59)), st.integers(0, 3))
def test_repeated_ids_of_a_chain_are_every_row_whose_id_repeats(values, meta_at, start):
    """Round 140: a linear chain's rows whose message id repeats are found from one set of the data
    rows' keys and a count of the meta rows' (``fastchain._repeated_in_chain``), not a count of
    every row's: every row of a repeated id is among them (a superset, in the members' order: the
    replay rule decides), whether the repeat is in data, in meta or across both, data rows sharing
    a first half included (counted as before), many repeated keys and one; the compiled twin's
    table and the pure-Python sets alike."""
    texts = [v if v is None or isinstance(v, str) else columns._uuid_text(v[0] - 6, v[1]) for v in values]
    column = Ids(uuids=True)
    column.append_all([None] * start + texts)
    members = range(start, start + len(texts))
    meta = array.array("I", sorted(start + at for at in meta_at if at < len(texts)))
    data = array.array("I", (row for row in members if row not in set(meta)))
    stretches = fastchain._stretches(members, meta)
    found = fastchain._repeated_in_chain(column, members, data, meta, stretches)
    compiled, fastchain._repeated_offsets = fastchain._repeated_offsets, None  # the pure-Python search too
    try:
        pure = fastchain._repeated_in_chain(column, members, data, meta, stretches)
    finally:
        fastchain._repeated_offsets = compiled
    if compiled is not None:  # the compiled twin finds exactly the rows whose first half repeats
        first_halves = Counter(column.numbers()[row] for row in members)
        assert list(found) == [row for row in members if first_halves[column.numbers()[row]] > 1]
    counts = Counter(texts)
    halves = Counter(column.numbers()[row] for row in members)  # no more than the pre-filters give
    for rows in (found, pure):
        assert list(rows) == sorted(set(rows)) and set(rows) <= set(members)
        assert {start + at for at, text in enumerate(texts) if counts[text] > 1} <= set(rows)
        assert set(rows) <= {row for row in members if halves[column.numbers()[row]] > 1} | \
            set(fastchain._repeated_ids(column, members))


def _checked_run(seed: str) -> Any:
    """A 12,000-event history's run (its keyring authoritative), every signature checked."""
    conv = build_conversation(12_000, realistic_crypto=False, seed=seed)
    keyring_ = verifier.Keyring.from_json(json.dumps(conv.keyring()))
    verification = Verification(conversation_keys=conv.conversation_keys)
    verification.expect_keyring(keyring_, facts=False)
    for body in conv.pages(100):
        verification.add_page(body)
    run = verification._run
    run.keyring = keyring_
    run.check_signatures()
    return run


def _linear_chain_peak(monkeypatch) -> tuple[Any, int]:
    """A 12,000-event history's run, signatures checked, and the traced peak of its one-pass chain
    (replays left out: their id count is another matter); the chain must decide it."""
    import tracemalloc
    run = _checked_run("compact")
    run.chain_codes = bytearray(run.count)
    monkeypatch.setattr(fastchain, "_replays", lambda run, members, split=None: {})
    tracemalloc.start()
    try:
        decided = fastchain.linear_chain(run, range(run.count))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert decided is not None
    return run, peak


@pytest.mark.slow
def test_the_one_pass_chain_copies_the_data_rows_between_meta_copies(monkeypatch):
    """Round 133: the data rows' positions, previous ids and their forms are copied from the columns
    as the stretches between meta copies, not gathered a row at a time (an int object each, in
    chunks of 4,096): 87 -> 59 ms of a 100,000-event run's serial tail, and the tail's peak down
    from 45 to 28 bytes a row."""
    run, peak = _linear_chain_peak(monkeypatch)
    assert any(flags & columns.FROM_META for flags in run.flags)  # meta copies split the data rows
    assert peak < 32 * run.count + 60_000


@pytest.mark.slow
def test_the_one_pass_chain_reads_its_rows_into_compact_columns(monkeypatch):
    """The one-pass chain reads each column it tests into bytes or an array (a few bytes a row): a
    tuple of the column's values (an object per row) raised the tail's peak by about 130 bytes a
    row, what a two-worker run's parent peaks at (73 -> 87 MB at 100,000 events)."""
    run, peak = _linear_chain_peak(monkeypatch)
    assert peak < 64 * run.count + 200_000


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["", "1:2", "3:4", "g5"]), max_size=8))
def test_a_pages_conversation_is_its_most_common_id(own):
    """``engine._most_common_conversation`` picks what counting every event picked (the most common
    id that is not empty, the first seen among equals, else "unknown"); a page of one id is taken
    without counting (round 135)."""
    counted = Counter(c for c in own if c)
    expected = counted.most_common(1)[0][0] if counted else "unknown"
    assert engine._most_common_conversation(own, dict.fromkeys(own)) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([None, "", "7"]), st.sampled_from([None, "6"]),
                          st.sampled_from([0, columns.FROM_META, columns.DECODED_OK | columns.FROM_META])),
                max_size=8))
def test_a_page_starts_its_history_where_a_data_row_has_no_previous_id(rows):
    """``engine._starts_history`` looks at the rows without a previous id only, and answers what a
    look at every row answered: a data row (not a meta copy) with a sequence id and no previous one
    (round 135)."""
    page_rows = engine._PageRows()
    page_rows.seq, page_rows.prev, page_rows.flags = ([row[i] for row in rows] for i in range(3))
    expected = any(prev is None and seq and not flags & columns.FROM_META for seq, prev, flags in rows)
    assert engine._starts_history(page_rows) is expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 20) | st.sampled_from([255, 256, 65_535, 70_000]), max_size=40),
       st.sampled_from(["bytearray", "B", "H", "I", "Q", "map"]), st.integers(1, 24))
def test_a_columns_codes_are_tallied_as_a_counter_tallies_them(values, kind, codes):
    """``engine._tally`` of a column's slice (one count of its bytes a code) is ``Counter``'s tally,
    whatever the codes' width, codes above the bound or above a byte, or an iterator of rows
    (round 135)."""
    if kind == "bytearray":
        column: Any = bytearray(value for value in values if value < 256)
    elif kind == "map":
        column = map(int, values)
    else:
        limit = 1 << (8 * array.array(kind).itemsize)
        column = array.array(kind, [value for value in values if value < limit])
    expected = Counter(list(column)) if kind != "map" else Counter(values)
    if kind == "map":
        column = map(int, values)
    assert dict(engine._tally(column, codes)) == dict(expected)


def _traced_peak(work: Any) -> tuple[Any, int]:
    """``work()``'s result and the most memory it held at once beyond what was held before."""
    import tracemalloc
    tracemalloc.start()
    try:
        result = work()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak


def _repeated_rows(ids: Ids, members: list[int] | range) -> list[int]:
    """The rows of ``members`` whose batch key (``Ids.keys``) occurs more than once among them,
    counted in one ``Counter`` (as before round 140); they include every row whose id repeats."""
    keys = list(ids.keys(members))
    counts = Counter(keys)
    rows = [row for row, key in zip(members, keys) if counts[key] > 1]
    exact = Counter(ids.key(row) for row in members)
    assert {row for row in members if exact[ids.key(row)] > 1} <= set(rows)
    return rows


def test_repeated_message_ids_are_counted_a_quarter_at_a_time():
    """The replay suspects' count held an int object and a table entry for every row at once:
    120 bytes a row, the peak of a 1,000,000-event run's tail (one worker, pure: 321 MB, over the
    300 MB bound). Counted a quarter of the keys at a time it holds under 50; the rows are the same."""
    rng = random.Random(7)
    texts = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(40_000)]
    for at in range(0, len(texts), 97):  # key changes copied into meta, replays
        texts[rng.randrange(len(texts))] = texts[at]
    column = Ids(uuids=True)
    column.append_all(texts)
    rows, peak = _traced_peak(lambda: fastchain._repeated_ids(column, range(len(texts))))
    assert list(rows) == _repeated_rows(column, range(len(texts))) and len(rows) > 400
    assert peak < 50 * len(texts), peak / len(texts)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["1", "2", "3", "9223372036854775807", "256", "512", "-1", None, "x", "01"]) |
                st.integers(0, 2**63 - 1).map(str), max_size=60),
       st.integers(0, 2**32 - 1))
def test_repeated_message_ids_are_exactly_the_rows_whose_key_repeats(texts, seed):
    """Any ids, any rows (a range or some of them, in order): the rows whose key occurs twice or
    more, each once, in order, as one count of them all gives (keys equal in their lowest byte are
    in one count; a kept text and None share the key 0: a pre-filter)."""
    column = Ids(uuids=False)
    column.append_all(texts)
    rng = random.Random(seed)
    for members in (range(len(texts)), sorted(rng.sample(range(len(texts)), rng.randint(0, len(texts))))):
        assert list(fastchain._repeated_ids(column, members)) == _repeated_rows(column, members)


def test_embedded_key_carriers_are_held_as_arrays():
    """The embedded keys' carriers by slot (``slots_of``, in the run's tail) held an int object
    for each carried key of each event (two in a 1:1 history): 73 bytes an event at the tail's
    peak. They are arrays now, of the same rows."""
    from verifier.signers import slots_of
    pub = base64.b64encode(b"not a key").decode()
    rows = array.array("I", range(0, 200_000, 2))
    carriers = {("1", "7", pub): rows, ("2", "7", pub): array.array("I", range(1, 200_000, 2))}
    slots, peak = _traced_peak(lambda: slots_of(carriers))
    assert [list(indices) for by_key in slots.values() for indices in by_key.values()] == \
        [list(rows), list(range(1, 200_000, 2))]
    assert peak < 10 * 200_000, peak / 200_000


@pytest.mark.slow
@pytest.mark.parametrize("search", ["compiled", "pure"])
def test_the_whole_tail_of_a_long_run_holds_little_beyond_its_columns(search, monkeypatch):
    """A run's conclusion (keys' conflicts, reviews, the chain and its replays, the tallies) on top
    of the columns it reads: its traced peak stays under 64 bytes an event. Counting every message
    id's key at once and holding the carriers as int objects added about 200 (a 1,000,000-event
    run's tail: 321 MB, over issue 11's 300 MB bound); one set of every data row's key, 110. With
    the compiled repeated-key search where it is built, and without it."""
    if search == "pure":
        monkeypatch.setattr(fastchain, "_repeated_offsets", None)
    elif fastchain._repeated_offsets is None:
        pytest.skip("the compiled decoder is not built")
    run = _checked_run("tail")
    (conversations, _), peak = _traced_peak(lambda: run.conclude(None, None, lazy=True))
    assert [c.verdict for c in conversations.values()] == ["pass"] and run.count > 12_000
    assert peak < 64 * run.count + 200_000, peak / run.count


@settings(max_examples=400, deadline=None)
@given(st.lists(_ANY_ID, max_size=6), st.lists(_ANY_ID, min_size=1, max_size=12), st.lists(_ANY_ID, max_size=4),
       st.integers(0, 12), st.booleans(), st.booleans())
def test_ids_appended_following_another_column_are_the_ids_appended(before, page, tail, cut, uuids, same_kind):
    """``append_following`` (a page's previous ids, copied from its sequence ids' rows where they are
    the next event's) stores exactly what ``append_all`` does: previous ids that follow for a while,
    then differ (``tail``), after rows of other pages in both columns, ids of every form, and a source
    of the other kind (UUIDs or not), whose rows it must not copy."""
    source = Ids(uuids=uuids if same_kind else not uuids)
    source.append_all(before)
    source.append_all(page)
    values = (page[1:] + tail)[:cut] + tail
    followed, appended = Ids(uuids=uuids), Ids(uuids=uuids)
    for column in (followed, appended):
        column.append_all(before[:2])
    followed.append_following(values, source, page)
    appended.append_all(values)
    assert ids_state(followed) == ids_state(appended)
    assert [followed[i] for i in range(len(followed))] == before[:2] + values


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", None]), max_size=12), st.sampled_from(["a", "b", "c", None]),
       st.integers(0, 12), st.integers(0, 12))
def test_interned_holds_a_value_where_its_rows_do(values, value, start, stop):
    """``Interned.holds``: the value is among those of rows ``start`` to ``stop`` (one never stored: never)."""
    column: Interned[str | None] = Interned()
    column.append_all(values)
    assert column.holds(value, start, stop) == (value in values[start:stop])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 20) | st.sampled_from([255, 256, 65_535, 70_000]), max_size=40),
       st.sampled_from(["bytearray", "B", "H", "I", "Q"]),
       st.sets(st.integers(0, 20) | st.sampled_from([255, 256, 70_000]), min_size=1, max_size=4), st.integers(0, 9))
def test_the_rows_of_loud_codes_are_found_as_a_look_up_per_row_finds_them(values, kind, codes, first):
    """Round 140: a conversation's rows with a loud signature or chain code are found by ``find`` in
    the code column's bytes (``engine._rows_of_codes``), not a set look-up per row: the same rows,
    whatever the codes' width, codes above a byte (a look-up each then), repeats side by side."""
    if kind == "bytearray":
        column: Any = bytearray(value for value in values if value < 256)
    else:
        limit = 1 << (8 * array.array(kind).itemsize)
        column = array.array(kind, [value for value in values if value < limit])
    found = list(engine._rows_of_codes(column, codes, first))
    assert sorted(found) == [first + at for at, value in enumerate(column) if value in codes]
    assert len(set(found)) == len(found)


def test_a_run_s_rows_with_findings_are_the_same_found_by_code_or_row_by_row():
    """Round 140: ``_Run._noisy`` of a one-conversation run's range of rows (found by code) and of
    the same rows as a list (a look-up per row) agree: staged findings, bad signatures and loud
    chain codes (meta duplicates, a gap), the first and last rows included."""
    conv, pages, ring = history_pages(300)
    pages[2]["data"].pop(3)  # a gap
    body = pages[0]["data"][0]
    raw = bytearray(base64.b64decode(body["encoded_event"]))
    raw[len(raw) // 2] ^= 1  # a bad signature (or a malformed event) at the newest row
    body["encoded_event"] = base64.b64encode(bytes(raw)).decode()
    run_ = Verification(conversation_keys=conv.conversation_keys)
    for body in pages:
        run_.add_page(body)
    report = run_.finish(ring, lazy=True)
    run = run_._run
    members = range(run.count)
    loud_sig = {code + 1 for code, check in enumerate(run.check_objects) if check.status in engine.STATUS_SEVERITY}
    loud_chain = {code for code, status in enumerate(engine._CHAIN_CODES) if status in engine.STATUS_SEVERITY}
    loud = len(list(run._noisy(list(members), loud_sig, loud_chain, 0)))
    by_code = run._noisy(members, loud_sig, loud_chain, loud)
    assert isinstance(by_code, list) and len(by_code) > 2 and by_code[0] == (0, 0)  # the newest row: staged
    assert by_code == list(run._noisy(list(members), loud_sig, loud_chain, loud))
    assert not isinstance(run._noisy(members, loud_sig, loud_chain, run.count), list)  # many: streamed
    assert report.verdict == "fail"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3) | st.just(300)), max_size=40),
       st.sampled_from(["I", "B"]), st.booleans())
def test_one_signing_version_per_sender_is_seen_in_the_columns_bytes(pairs, kind, as_map):
    """Round 140: ``engine._one_version_each`` says a slice's senders each signed at one version
    (no key regression to look for) from the code columns' bytes, exactly when counting the
    (sender, version) pairs says so; codes above a byte, or rows that are not a slice: not shown
    (False), and the pairs are counted as before."""
    senders = array.array("I", [sender for sender, _version in pairs])
    versions = array.array(kind if all(version < 256 for _s, version in pairs) else "I",
                           [version for _sender, version in pairs])
    one_each = all(count == 1 for count in Counter(sender for sender, _v in set(pairs)).values())
    got = engine._one_version_each(map(int, senders) if as_map else senders, versions, 6)
    if as_map or any(version > 255 for _sender, version in pairs):
        assert got is False
    else:
        assert got is one_each


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["u1", "u2"]), st.sampled_from(["1", "01", "2"]), st.sampled_from(["k", "j"]),
                          st.lists(st.integers(0, 2 ** 32 - 1), max_size=6)), max_size=8))
def test_a_run_s_key_carriers_are_joined_by_slot_as_arrays(rows):
    """Round 140: ``signers.slots_of`` joins the engine's carrier rows (arrays) by (member, version)
    slot and key identity as arrays, copied in C (a run's 100,000 rows were a list of ints: 8 ms of
    its serial tail), the engine's own arrays untouched; the same rows, in the same order, as the
    lists ``key_carriers`` gives."""
    from verifier import signers
    from verifier.keys import version_key
    carriers: dict[tuple[str, str, str], array.array] = {}
    for member, version, key, at in rows:
        carriers.setdefault((member, version, ALICE.signing_public() if key == "k" else "not a key"),
                            array.array("I")).extend(at)
    before = {triple: array.array("I", at) for triple, at in carriers.items()}
    slots = signers.slots_of(carriers)
    expected: dict[tuple[str, str], dict[bytes, list[int]]] = {}
    for (member, version, key), at in carriers.items():
        expected.setdefault((member, version_key(version)), {}).setdefault(signers._identity(key), []).extend(at)
    assert {slot: {ident: list(at) for ident, at in ids.items()} for slot, ids in slots.items()} == expected
    assert all(isinstance(at, array.array) for ids in slots.values() for at in ids.values())
    assert carriers == before
