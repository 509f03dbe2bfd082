"""Transcript hash chain, checkpoints and the split-view comparison (pure functions)."""

import hashlib
import re
import struct

import pytest

from verifier.ledger.transcript import (
    Transcript,
    compare_checkpoints,
    compare_entries,
    parse_checkpoint,
    root0,
    seq_key,
    stride_for,
)


def entries(n, start=1, changed=None):
    return [(str(1000 + i), hashlib.sha256(f"{i}{'x' if i == changed else ''}".encode()).digest())
            for i in range(start, n + 1)]


def test_hash_chain_is_the_documented_one():
    items = entries(3)
    root = hashlib.sha256(b"xchat-verify/transcript/v1\x00" + b"c").digest()
    for seq, digest in items:
        root = hashlib.sha256(root + struct.pack(">I", len(seq)) + seq.encode() + digest).digest()
    t = Transcript.build("c", reversed(items))  # order of input does not matter: sorted by sequence id
    assert t.root == root.hex() and (t.tail, t.head, t.size) == ("1001", "1003", 3)
    assert Transcript.build("c", []).root == root0("c").hex()
    assert seq_key("99") < seq_key("100") < seq_key("abc")  # decimal ids as numbers


def test_sequence_ids_are_ordered_as_numbers_without_reading_them_as_int():
    """The order ``int`` gave, ties by text, for ids ``int`` cannot read (5,000 digits) and without
    taking ``"²"`` for a number (the chain does not)."""
    ids = ["10", "010", "9", "0", "00", "1" + "0" * 5000, "9" * 4999, "²", "abc", "11"]
    ordered = sorted(ids, key=seq_key)
    assert ordered == ["0", "00", "9", "010", "10", "11", "9" * 4999, "1" + "0" * 5000, "abc", "²"]
    small = [i for i in ids if i.isascii() and i.isdigit() and len(i) < 30]
    assert sorted(small, key=seq_key) == sorted(small, key=lambda s: (int(s), s))


def test_compare_entries_names_the_first_divergence_over_the_common_range():
    a = entries(50)
    assert compare_entries("c", a, a) is None
    assert compare_entries("c", a, a[10:40]) is None  # a view that saw less agrees over what it saw
    d = compare_entries("c", a, entries(50, changed=17))
    assert (d.first_seq, d.after_seq) == ("1017", "1016") and "different event" in d.detail
    d = compare_entries("c", a, [e for e in a if e[0] != "1030"])
    assert d.first_seq == "1030" and "only in the first view" in d.detail


def test_checkpoints_locate_exactly_up_to_512_events_then_by_stride():
    t = Transcript.build("c", entries(300))
    u = Transcript.build("c", entries(300, changed=123))
    d = compare_checkpoints(t.checkpoint("t"), u.checkpoint("t")).divergence
    assert d.first_seq == "1123" and d.after_seq == "1122"
    same = compare_checkpoints(t.checkpoint("t"), t.checkpoint("t"))
    assert same.agree and (same.compared, same.common, same.through) == (300, 300, "1300")
    big, other = Transcript.build("c", entries(2000)), Transcript.build("c", entries(2000, changed=1500))
    assert stride_for(2000) == 4 and len(big.checkpoint("t")["marks"]) <= 513
    d = compare_checkpoints(big.checkpoint("t"), other.checkpoint("t")).divergence
    assert d.first_seq is None and d.after_seq == "2496" and "at or before position 1500" in d.detail
    # a longer view of the same history agrees with the shorter one's prefix (its head is on the grid)
    assert compare_checkpoints(Transcript.build("c", entries(600)).checkpoint("t"), t.checkpoint("t")).agree
    with pytest.raises(ValueError, match="different events"):
        compare_checkpoints(t.checkpoint("t"), Transcript.build("c", entries(300, start=5)).checkpoint("t"))


@pytest.mark.parametrize("short,changed", [(599, 599), (599, None), (511, 511), (511, None)])
def test_the_shorter_view_s_head_off_the_longer_grid_is_not_called_agreeing(short, changed):
    """599 or 511 events against 600 (stride 2): the longer checkpoint has no mark at the shorter
    one's head, so the last events both saw cannot be compared from the checkpoints. Never "agree"."""
    a = Transcript.build("c", entries(short, changed=changed)).checkpoint("t")
    b = Transcript.build("c", entries(600)).checkpoint("t")
    for x, y in ((a, b), (b, a)):
        result = compare_checkpoints(x, y)
        assert result.divergence is None and not result.agree and not result.complete
        last_common = short - 1 if short % 2 else short - 2  # the last even position below the head
        assert (result.compared, result.common) == (last_common, short)
        assert "cannot be compared" in result.note and f"positions {last_common + 1} to {short}" in result.note


def test_a_divergence_before_the_shorter_head_is_still_found_across_grids():
    a = Transcript.build("c", entries(511, changed=100)).checkpoint("t")
    b = Transcript.build("c", entries(600)).checkpoint("t")
    d = compare_checkpoints(a, b).divergence
    assert d is not None and d.first_seq is None and d.after_seq == "1098"  # positions 99-100 hold it


def _cp(**changes):
    cp = Transcript.build("c", entries(3)).checkpoint("t")
    cp.update(changes)
    for key in [k for k, v in changes.items() if v is _DROP]:
        del cp[key]
    return cp


_DROP = object()


@pytest.mark.parametrize("changes,field", [
    ({"marks": []}, "$.marks"),
    ({"marks": [5, 6]}, "$.marks[0]"),
    ({"marks": [[[1], 2, 3]]}, "$.marks[0][0]"),
    ({"tail": _DROP}, "tail"),
    ({"size": True}, "$.size"),
    ({"size": 4}, "$.marks"),
    ({"signature": 5}, "$.signature"),
    ({"root": "00" * 32}, "last mark"),
    ({"stride": 2}, "$.stride"),
    ({"extra": 1}, "extra"),
])
def test_malformed_checkpoints_are_refused_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=re.escape(field)):
        parse_checkpoint(_cp(**changes))
    with pytest.raises(ValueError):
        compare_checkpoints(_cp(**changes), _cp())
    parse_checkpoint(_cp())  # the untouched one is fine


def test_a_transcript_of_two_events_at_one_sequence_id_has_one_root_whatever_their_order():
    """Review 62: a receipt's checkpoint (built from a set of entries) took two events at one
    sequence id in the set's order, which the hash seed decides: two roots for one history."""
    from verifier.ledger.transcript import Transcript
    entries = [("5", b"\x02" * 32), ("5", b"\x01" * 32), ("4", b"\x03" * 32)]
    assert Transcript.build("c", entries).root == Transcript.build("c", list(reversed(entries))).root
