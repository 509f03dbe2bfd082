"""Structural oddities of the Thrift event, judged by xchat-verify and by the official SDK.

Each named case bends one thing the issue lists (repeated fields, unions with no, unknown or two
members, wrong wire types on read and skipped fields, bool bytes, list headers, depth limits,
bytes after the end) at several nesting levels; the SDK's strict ``decrypt_event`` is the oracle.
A seeded pass of the grammar-aware structural fuzzer (tests/fuzz/structural.py) then requires the
same verdict on thousands of random structure mutations.
"""

from __future__ import annotations

import copy
import struct

import pytest
from fuzz.structural import Campaign, our_classes

from verifier.testing import thrift_tree as tt
from verifier.testing.thrift_tree import Field, Raw, Seq, Struct
from verifier.wire import T_BOOL, T_I32, T_LIST, T_STRING, T_STRUCT

pytestmark = pytest.mark.slow  # the seeded structural fuzz pass: CI and `pytest --slow`


@pytest.fixture(scope="module")
def campaign():
    return Campaign(seed=7)


def seed_tree(campaign, label):
    """The first seed of that label whose detail is the kind the label names (the SDK's group
    create also yields a key change)."""
    want = 4 if "group" in label else None
    for seed in campaign.seeds:
        if seed.label == label:
            tree, trailing = tt.parse(seed.raw)
            if want is None or detail(tree).first(want) is not None:
                return tree, trailing
    raise LookupError(label)


def detail(tree):
    return tree.first(7).value


def nested(depth):
    value = Struct()
    for _ in range(depth - 1):
        value = Struct([Field(T_STRUCT, 1, value)])
    return value


def nested_lists(depth):
    value = Seq(T_I32, [])
    for _ in range(depth - 1):
        value = Seq(T_LIST, [value])
    return value


def group(tree):
    """The GroupChange union of a group event."""
    return detail(tree).first(4).value.first(1).value


def metadata(tree):
    return detail(tree).first(9).value.first(1).value


MESSAGE, GROUP_CREATE = "sdk message", "sdk group create"
MUTE = "forged ConversationMetadataChangeEvent.MuteConversation v7"

# (case id, seed label, mutation of the tree, expected class)
CASES = [
    ("event: repeated message_id, other value last", MESSAGE,
     lambda t: t.fields.insert(len(t.fields), Field(T_STRING, 2, b"other")), "invalid"),
    ("event: repeated message_id, other value first", MESSAGE,
     lambda t: t.fields.insert(0, Field(T_STRING, 2, b"other")), "valid"),
    ("event: sequence_id with wire type i32 (read as string: desync)", MESSAGE,
     lambda t: t.fields.insert(0, Field(T_I32, 1, 5)), "not_signed"),
    ("event: is_trusted with wire type i32", MESSAGE,
     lambda t: t.fields.append(Field(T_I32, 11, 1)), "valid"),
    ("event: relay_source with wire type string", MESSAGE,
     lambda t: t.fields.append(Field(T_STRING, 8, b"abc")), "malformed"),
    ("event: unknown field with invalid UTF-8 is skipped", MESSAGE,
     lambda t: t.fields.append(Field(T_STRING, 50, b"\xff\xfe")), "valid"),
    ("event: known string with invalid UTF-8", MESSAGE,
     lambda t: t.fields.append(Field(T_STRING, 5, b"\xff\xfe")), "malformed"),
    ("event: unknown uuid field is skipped", MESSAGE,
     lambda t: t.fields.append(Field(16, 50, b"\x11" * 16)), "valid"),
    ("event: unknown void field cannot be skipped", MESSAGE,
     lambda t: t.fields.append(Field(1, 50, Raw(b""))), "malformed"),
    ("event: known field with void wire type is read as declared", MESSAGE,
     lambda t: t.fields.append(Field(1, 11, Raw(b"\x01"))), "valid"),
    ("event: invalid field type code", MESSAGE,
     lambda t: t.fields.append(Field(5, 50, Raw(b""))), "malformed"),
    ("event: unknown struct 63 deep (64 levels with the event)", MESSAGE,
     lambda t: t.fields.append(Field(T_STRUCT, 50, nested(63))), "valid"),
    ("event: unknown struct 64 deep (65 levels)", MESSAGE,
     lambda t: t.fields.append(Field(T_STRUCT, 50, nested(64))), "malformed"),
    ("event: skipped lists 64 deep", MESSAGE,
     lambda t: t.fields.append(Field(T_LIST, 50, nested_lists(64))), "valid"),
    ("event: skipped lists 65 deep", MESSAGE,
     lambda t: t.fields.append(Field(T_LIST, 50, nested_lists(65))), "malformed"),
    ("event: skipped list with invalid element type", MESSAGE,
     lambda t: t.fields.append(Field(T_LIST, 50, Raw(struct.pack(">Bi", 5, 0)))), "malformed"),
    ("event: skipped list of 10,001", MESSAGE,
     lambda t: t.fields.append(Field(T_LIST, 50, Seq(T_BOOL, [0] * 10_001))), "malformed"),
    ("event: skipped list of 10,000", MESSAGE,
     lambda t: t.fields.append(Field(T_LIST, 50, Seq(T_BOOL, [0] * 10_000))), "valid"),
    ("event: second detail (typing) after the message", MESSAGE,
     lambda t: t.fields.insert(len(t.fields) - 1, Field(T_STRUCT, 7, Struct([Field(T_STRUCT, 6, Struct())]))),
     "not_signed"),
    ("event: second detail with only an unknown member keeps the message", MESSAGE,
     lambda t: t.fields.append(Field(T_STRUCT, 7, Struct([Field(T_STRUCT, 99, Struct())]))), "valid"),
    ("event: second, empty detail", MESSAGE,
     lambda t: t.fields.append(Field(T_STRUCT, 7, Struct())), "malformed"),
    ("detail: empty union", MESSAGE, lambda t: detail(t).fields.clear(), "malformed"),
    ("detail: only an unknown member", MESSAGE,
     lambda t: detail(t).fields.__setitem__(slice(None), [Field(T_STRUCT, 11, Struct())]), "not_signed"),
    ("detail: unknown member before the known one", MESSAGE,
     lambda t: detail(t).fields.insert(0, Field(T_STRUCT, 99, Struct())), "valid"),
    ("detail: unknown member after the known one", MESSAGE,
     lambda t: detail(t).fields.append(Field(T_STRING, 2, b"x")), "valid"),
    ("detail: the known member twice", MESSAGE,
     lambda t: detail(t).fields.append(copy.deepcopy(detail(t).fields[0])), "malformed"),
    ("detail: a second known member", MESSAGE,
     lambda t: detail(t).fields.append(Field(T_STRUCT, 6, Struct())), "malformed"),
    ("detail: member with wire type string (read as struct)", MESSAGE,
     lambda t: detail(t).fields.__setitem__(slice(None), [Field(T_STRING, 1, b"abc")]), "unverifiable"),
    ("message: no contents (SDK: Unknown; fails here)", MESSAGE,
     lambda t: detail(t).fields[0].value.fields.__setitem__(
         slice(None), [f for f in detail(t).fields[0].value.fields if f.fid != 100]), "unverifiable"),
    ("message: no conversation key version, signature version -1 (found by the fuzzer)", MESSAGE,
     lambda t: [detail(t).fields[0].value.fields.__setitem__(
         slice(None), [f for f in detail(t).fields[0].value.fields if f.fid != 101]),
         [setattr(f, "value", b"-1") for f in t.first(9).value.fields if f.fid == 3]], "unverifiable"),
    ("message: should_notify byte 2", MESSAGE,
     lambda t: [setattr(f, "value", 2) for f in detail(t).fields[0].value.fields if f.fid == 102], "valid"),
    ("message: ttl with wire type string (read as i64)", MESSAGE,
     lambda t: detail(t).fields[0].value.fields.append(Field(T_STRING, 103, b"abcd")), "valid"),
    ("group change: empty union", GROUP_CREATE, lambda t: group(t).fields.clear(), "malformed"),
    ("group change: only an unknown member", GROUP_CREATE,
     lambda t: group(t).fields.__setitem__(slice(None), [Field(T_STRUCT, 99, Struct())]), "unverifiable"),
    ("group change: unknown member before", GROUP_CREATE,
     lambda t: group(t).fields.insert(0, Field(T_STRUCT, 99, Struct())), "valid"),
    ("group change: two known members", GROUP_CREATE,
     lambda t: group(t).fields.append(Field(T_STRUCT, 2, Struct())), "malformed"),
    ("group change: member with wire type string", GROUP_CREATE,
     lambda t: group(t).fields.insert(0, Field(T_STRING, 1, b"x")), "malformed"),
    ("group change event: no union", GROUP_CREATE,
     lambda t: detail(t).first(4).value.fields.clear(), "unverifiable"),
    ("group change event: union repeated, then only unknown", GROUP_CREATE,
     lambda t: detail(t).first(4).value.fields.append(Field(T_STRUCT, 1, Struct([Field(T_STRUCT, 99, Struct())]))),
     "valid"),
    ("group change event: empty union first", GROUP_CREATE,
     lambda t: detail(t).first(4).value.fields.insert(0, Field(T_STRUCT, 1, Struct())), "malformed"),
    ("group change event: for_key_rotation as i32", GROUP_CREATE,
     lambda t: detail(t).first(4).value.fields.append(Field(T_I32, 2, 5)), "malformed"),
    ("metadata change: only an unknown member", MUTE,
     lambda t: metadata(t).fields.__setitem__(slice(None), [Field(T_STRUCT, 99, Struct())]), "unverifiable"),
    ("metadata change: list element type byte i32 (elements read as strings)", MUTE,
     lambda t: [setattr(f.value, "etype", T_I32) or setattr(f, "value", Raw(
         struct.pack(">Bi", T_I32, 1) + tt.encode_value(T_STRING, b"1111:2222")))
                for f in metadata(t).fields[0].value.fields], "valid"),
    ("signature: repeated struct, a wrong one first", MESSAGE,
     lambda t: t.fields.insert(0, Field(T_STRUCT, 9, Struct([Field(T_STRING, 1, b"AAAA")]))), "valid"),
    ("signature: 5,000-digit signature_version", MESSAGE,
     lambda t: [setattr(f, "value", b"7" * 5000) for f in t.first(9).value.fields if f.fid == 3], "valid"),
    ("signature: signature_version 1", MESSAGE,
     lambda t: [setattr(f, "value", b"1") for f in t.first(9).value.fields if f.fid == 3], "invalid"),
    ("key list: element type byte string (elements read as structs)", MESSAGE,
     lambda t: t.first(9).value.fields.append(Field(T_LIST, 5, Raw(struct.pack(">Bi", T_STRING, 0)))), "valid"),
]


@pytest.mark.parametrize("case_id,label,mutate,expected", CASES, ids=[c[0] for c in CASES])
def test_structural_case_agrees_with_sdk(campaign, case_id, label, mutate, expected):
    tree, trailing = seed_tree(campaign, label)
    mutate(tree)
    raw = tt.write(tree, trailing)
    sdk, sdk_detail = campaign.oracle.judge(raw, campaign.keys)
    (ours, our_detail), = our_classes([raw], campaign.ring, campaign.keys)
    assert (sdk, ours) == (expected, expected), (sdk_detail, our_detail)


def test_bytes_after_the_event_and_shadowed_details_fail_the_verdict(campaign):
    """The SDK verifies what it reads; what it reads past or over still fails the event here."""
    import base64

    import verifier
    tree, trailing = seed_tree(campaign, MESSAGE)
    raw = tt.write(tree, trailing)
    extra_tree = copy.deepcopy(tree)
    extra_tree.fields.insert(len(extra_tree.fields), Field(T_STRUCT, 7, Struct([Field(T_STRUCT, 6, Struct())])))
    for blob, code in ((raw + b"\x0b\x00\x01", "trailing_bytes"), (tt.write(extra_tree), "shadowed_detail")):
        page = {"data": [{"encoded_event": base64.b64encode(blob).decode()}]}
        report = verifier.verify_pages([page], campaign.ring, conversation_keys=campaign.keys, allow_empty=True)
        event = report.conversations[0].events[0]
        assert code in {f.code for f in event.findings} and report.verdict == "fail"
    page = {"data": [{"encoded_event": base64.b64encode(raw).decode()}]}
    clean = verifier.verify_pages([page], campaign.ring, conversation_keys=campaign.keys)
    assert clean.verdict == "pass"


def test_seeded_structural_fuzz_pass_agrees_with_sdk():
    """A fixed-seed pass of the fuzzer: every mutated event gets the SDK's verdict."""
    outcome = Campaign(seed=2026).run(4_000)
    assert outcome.events == 4_000
    assert not outcome.disagreements, outcome.disagreements[:3]
    # the pass exercises every verdict, so it cannot agree by accident
    assert set(outcome.agreements) == {"valid", "invalid", "unverifiable", "not_signed", "malformed"}
