"""Transcript hash chain, checkpoints and the split-view comparison (pure functions)."""

import hashlib
import struct

import pytest

from verifier.ledger.transcript import Transcript, compare_checkpoints, compare_entries, root0, seq_key, stride_for


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
    d, _ = compare_checkpoints(t.checkpoint("t"), u.checkpoint("t"))
    assert d.first_seq == "1123" and d.after_seq == "1122"
    assert compare_checkpoints(t.checkpoint("t"), t.checkpoint("t"))[0] is None
    big, other = Transcript.build("c", entries(2000)), Transcript.build("c", entries(2000, changed=1500))
    assert stride_for(2000) == 4 and len(big.checkpoint("t")["marks"]) <= 513
    d, _ = compare_checkpoints(big.checkpoint("t"), other.checkpoint("t"))
    assert d.first_seq is None and d.after_seq == "2496" and "at or before position 1500" in d.detail
    # a longer view of the same history agrees with the shorter one's prefix
    assert compare_checkpoints(Transcript.build("c", entries(600)).checkpoint("t"), t.checkpoint("t"))[0] is None
    with pytest.raises(ValueError, match="different events"):
        compare_checkpoints(t.checkpoint("t"), Transcript.build("c", entries(300, start=5)).checkpoint("t"))
