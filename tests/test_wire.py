import base64
import struct

import pytest
from helpers import ev, fixture
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.wire import (
    Limits,
    MalformedEvent,
    b64decode_strict,
    decode_event_b64,
    decode_event_bytes,
    decode_event_generic,
)


def test_fixture_message_decodes_with_all_fields():
    _raw, e = decode_event_b64(fixture()["event_message_b64"])
    assert (e.sequence_id, e.message_id, e.sender_id, e.conversation_id, e.created_at_msec) == \
        ("1", "2c2a1d32-988b-4b0e-9e63-c3baab3003fd", "1111", "1111:2222", "1700000000000")
    assert e.kind == "MessageCreateEvent"
    assert e.body["conversation_key_version"] == "1001" and len(e.body["contents"]) == 77
    assert (e.signature.public_key_version, e.signature.signature_version) == ("1", "7")


def test_fixture_kinds():
    f = fixture()
    assert decode_event_b64(f["event_key_change_b64"])[1].kind == "ConversationKeyChangeEvent"
    assert decode_event_b64(f["event_failure_b64"])[1].kind == "MessageFailureEvent"
    with pytest.raises(MalformedEvent, match="invalid base64 character '!'"):
        decode_event_b64(f["event_garbage_b64"])


@pytest.mark.parametrize("text,ok", [
    ("YWJj", True), ("YWI=", True), ("YWI", True), ("YQ==", True), ("YQ", True),
    ("YQ=", True),  # partial padding: the SDK takes it (review 53)
    ("YQ===", False), ("YWI==", False), ("YWJj=", False), ("=", False),  # more "=" than the length needs
    ("Y", False), ("YW I=", False), ("YWI=\n", False), ("-_-_", False),
    ("YR==", False),  # non-zero trailing bits: not canonical
])
def test_base64_rules(text, ok):
    if ok:
        assert b64decode_strict(text) == base64.b64decode(text + "=" * (-len(text) % 4))
    else:
        with pytest.raises(MalformedEvent):
            b64decode_strict(text)


def test_unknown_fields_are_skipped_and_trailing_bytes_ignored():
    raw = ev().raw
    extra = bytes([15]) + struct.pack(">h", 99) + bytes([8]) + struct.pack(">i", 2) + b"\0\0\0\1\0\0\0\2"
    e = decode_event_bytes(extra + raw + b"garbage after stop")
    assert e.kind == "MessageCreateEvent"


@pytest.mark.parametrize("mutate,reason", [
    (lambda r: r[:-1], "truncated"),
    (lambda r: r[:10], "exceeds the 3 bytes left"),
    (lambda r: b"\x0b\x00\x01\xff\xff\xff\xff", "negative string length"),
    (lambda r: b"\x0b\x00\x01\x7f\xff\xff\xff", "exceeds"),
    (lambda r: b"\x08\x00\x01\x00\x00\x00\x01\x00", "truncated"),  # i32 header, read as a string
    (lambda r: b"\x0f\x00\x63\x0b\x00\x0f\x42\x40" + b"\0" * 16, "exceeds the limit"),
    (lambda r: b"\x05\x00\x63", "invalid Thrift field type code 5"),
    (lambda r: b"\x01\x00\x63", "cannot skip a value of type void"),
    (lambda r: b"\x0c\x00\x07\x00\x00", "has no field set"),
])
def test_malformed_reasons(mutate, reason):
    with pytest.raises(MalformedEvent, match=reason):
        decode_event_bytes(mutate(ev().raw))


def test_deep_nesting_is_bounded():
    depth = 100_000
    blob = (b"\x0c\x00\x63" * depth) + b"\x00" * (depth + 1)
    with pytest.raises(MalformedEvent, match="nested deeper|nesting deeper"):
        decode_event_bytes(blob)


def test_cumulative_element_budget():
    lim = Limits(max_total_elements=5)
    blob = b"\x0f\x00\x63\x03\x00\x00\x00\x04" + b"\0" * 4 + b"\x0f\x00\x64\x03\x00\x00\x00\x04" + b"\0" * 4 + b"\0"
    with pytest.raises(MalformedEvent, match="more than 5"):
        decode_event_bytes(blob, lim)


def test_union_with_two_members_is_malformed():
    two = b"\x0c\x00\x07" + b"\x0c\x00\x06\x00" + b"\x0c\x00\x0e\x00" + b"\x00" + b"\x00"
    with pytest.raises(MalformedEvent, match="more than one member"):
        decode_event_bytes(two)


def test_unknown_detail_variant_is_reported_as_kind():
    blob = b"\x0c\x00\x07" + b"\x0c\x00\x63\x00" + b"\x00" + b"\x00"
    assert decode_event_bytes(blob).kind == "#99"


def test_known_field_is_read_as_its_declared_type_whatever_the_wire_type():
    """is_trusted (bool) sent with wire type i32: one byte is read as the bool, the next three
    bytes then parse as field headers (here: STOP), as in the SDK's generated reader."""
    e = decode_event_bytes(b"\x08\x00\x0b\x02\x00\x00\x00\x00")
    assert e.is_trusted is True and e.trailing == 3


def test_last_occurrence_wins_and_unknown_only_union_keeps_the_earlier_value():
    mce = b"\x0c\x00\x07\x0c\x00\x01\x0b\x00\x65\x00\x00\x00\x01" + b"9" + b"\x00\x00"
    unknown_only = b"\x0c\x00\x07\x0c\x00\x63\x00\x00"
    typing = b"\x0c\x00\x07\x0c\x00\x06\x00\x00"
    assert decode_event_bytes(mce + unknown_only + b"\x00").kind == "MessageCreateEvent"
    shadowing = decode_event_bytes(mce + typing + b"\x00")
    assert shadowing.kind == "MessageTypingEvent" and shadowing.shadowed == ["MessageCreateEvent"]
    twice = b"\x0b\x00\x02\x00\x00\x00\x01a" + b"\x0b\x00\x02\x00\x00\x00\x01b" + b"\x00"
    assert decode_event_bytes(twice).message_id == "b"


def test_bool_is_true_for_any_non_zero_byte():
    assert decode_event_bytes(b"\x02\x00\x0b\x02\x00").is_trusted is True
    assert decode_event_bytes(b"\x02\x00\x0b\x00\x00").is_trusted is False


def test_required_fields_of_the_ratchet_tree():
    """The SDK parses a key change's ratchet tree; a Member without key_version is unreadable."""
    member = b"\x0c\x00\x03" + b"\x0a\x00\x01" + b"\x00" * 8 + b"\x00"
    tree = b"\x0c\x00\x04" + member + b"\x00"
    blob = b"\x0c\x00\x07\x0c\x00\x03" + tree + b"\x00\x00\x00"
    with pytest.raises(MalformedEvent, match="required field key_version"):
        decode_event_bytes(blob)


def test_depth_limits_match_the_sdk():
    def nested(depth):
        value = b"\x00"
        for _ in range(depth - 1):
            value = b"\x0c\x00\x01" + value + b"\x00"
        return b"\x0c\x00\x32" + value + b"\x00"
    decode_event_bytes(nested(63))  # 64 levels with the event
    with pytest.raises(MalformedEvent, match="nesting deeper than 64"):
        decode_event_bytes(nested(64))


def test_invalid_utf8_string_is_malformed():
    with pytest.raises(MalformedEvent, match="UTF-8"):
        decode_event_bytes(b"\x0b\x00\x03\x00\x00\x00\x02\xff\xfe\x00")


def test_oversized_event_refused():
    with pytest.raises(MalformedEvent, match="exceeds the limit"):
        decode_event_bytes(b"\0" * 2000, Limits(max_event_bytes=1000))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_raise_malformed(blob):
    try:
        decode_event_bytes(blob)
    except MalformedEvent:
        pass


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_valid_events_only_raise_malformed(data):
    raw = bytearray(ev().raw)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        decode_event_bytes(bytes(raw[:cut]))
    except MalformedEvent:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_base64_only_raises_malformed(text):
    try:
        out = b64decode_strict(text)
    except MalformedEvent:
        return
    assert base64.b64encode(out).decode().rstrip("=") == text.rstrip("=")


@pytest.mark.parametrize("compiled_twin", [True, False], ids=["as-built", "pybase64-path"])
def test_base64_fast_path_accepts_exactly_what_the_strict_rules_accept(compiled_twin, monkeypatch):
    """pybase64 (issue 11) is used only on canonical input: on random strings over the alphabet,
    padding, URL-safe characters, whitespace and non-ASCII, every result and every reason equals
    the regex-checked reference decoder's. Also without the compiled twin, which otherwise takes
    every canonical text before the pybase64 path sees it."""
    import random

    from verifier import wire
    from verifier.wire import _b64decode_diagnose
    if not compiled_twin:
        monkeypatch.setattr(wire, "_compiled_b64", None)
    rng = random.Random(11)
    alphabet = "ABCDQRSTwxyz0189+/=-_ \n\té"
    cases = ["", "=", "==", "QQ", "QQ=", "QQ==", "QQ===", "QR==", "QR", "QUJD", "QUJD====", "QQ==QQ==", "QUI=",
             "QUJ=", "QUJ", "QUE", "====", "Q===", "QUJDRA", "QUJDRA=", "QUJDRA==", "QUJDRB=="]
    cases += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(13))) for _ in range(20000)]
    cases += [base64.b64encode(rng.randbytes(rng.randrange(40))).decode().rstrip("=" * rng.randrange(3))
              for _ in range(2000)]

    def outcome(fn, text):
        try:
            return fn(text, "x")
        except MalformedEvent as exc:
            return str(exc)
    for text in cases:
        assert outcome(b64decode_strict, text) == outcome(_b64decode_diagnose, text), repr(text)


def _shapes():
    """Events of the shapes the fast path reads straight through, and their neighbours."""
    from verifier.testing.forge import encode_event
    from verifier.wire import EventSignature, MessageEvent, SigningKeyInfo
    info = SigningKeyInfo("1", "2", "k")
    bodies = [None, ("MessageCreateEvent", {"contents": b"\x00\xff", "conversation_key_version": "7",
                                            "should_notify": True}),
              ("MessageCreateEvent", {}), ("MessageCreateEvent", {"should_notify": False, "ttl_msec": 5}),
              ("MessageDeleteEvent", {"sequence_ids": ["1", "2"]})]
    signatures = [None, EventSignature("s", "v", "7"), EventSignature("s", message_signing_key_info_list=[]),
                  EventSignature("s", "v", "7", "k", [info]), EventSignature(message_signing_key_info_list=[info, info])]
    for detail in bodies:
        for signature in signatures:
            kind, body = detail or (None, None)
            yield encode_event(MessageEvent("1", "m", "s", "c", None, "9", kind, body, None, signature, "0", True))


@pytest.mark.parametrize("limits", [Limits(max_depth=d, max_total_elements=t, max_container_elements=c)
                                    for d in (0, 1, 2, 3, 4) for t in (0, 1, 2, 3) for c in (1, 2)])
def test_fast_paths_keep_every_bound_of_the_generic_reader(limits):
    """Both fast paths (compiled where built, pure Python) return the generic reader's event or
    None, at every depth and element bound: a bound they skipped would accept what it refuses."""
    from verifier import fastwire, layouts
    from verifier.wire import decode_event_fast, decode_event_generic
    for raw in [*_shapes(), *_shapes()]:  # twice: the second time through the layouts learnt the first
        try:
            expected = repr(decode_event_generic(raw, limits))
        except MalformedEvent:
            expected = None
        for fast in (decode_event_fast, fastwire.decode_event_fast, layouts.decode_event_fast):
            event = fast(raw, limits)
            assert event is None or repr(event) == expected, (raw, limits)


def test_the_pure_fast_path_reads_the_common_shapes_straight_through():
    from verifier import fastwire
    from verifier.wire import DEFAULT_LIMITS, decode_event_generic
    for raw in _shapes():
        assert repr(fastwire.decode_event_fast(raw, DEFAULT_LIMITS)) == repr(decode_event_generic(raw))


@pytest.mark.parametrize("hex_event", [
    "0b0001fffffffa00",  # an envelope string (read in a run of optional strings)
    "0b000afffffffa00",  # the previous sequence id (read alone)
    "0b0001000000030000000c00070c00010b0064fffffff0000000",  # a MessageCreateEvent's contents
])
def test_a_negative_length_never_rewinds_a_fast_path(hex_event):
    """A negative length would send a straight-through reader back over bytes it has read, making
    an event up from them (review): every path refuses it as the generic reader does."""
    from verifier import fastwire
    from verifier.wire import DEFAULT_LIMITS, decode_event_fast
    raw = bytes.fromhex(hex_event)
    with pytest.raises(MalformedEvent, match="negative"):
        decode_event_bytes(raw)
    assert fastwire.decode_event_fast(raw, DEFAULT_LIMITS) is None
    assert decode_event_fast(raw, DEFAULT_LIMITS) is None


def test_the_pybase64_path_takes_canonical_text_padded_or_not():
    """Canonical text, with or without its padding, never needs the slower diagnosis."""
    import random

    from verifier.wire import _b64_fast
    rng = random.Random(5)
    for size in range(0, 70):
        raw = rng.randbytes(size)
        text = base64.b64encode(raw).decode()
        assert _b64_fast(text) == raw
        assert _b64_fast(text.rstrip("=")) == raw


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_bytearray_or_memoryview_is_read_as_its_bytes(data):
    """Library callers may hold an event in a bytearray or a view of a larger buffer: both public
    readers read it as the bytes it holds (they raised AttributeError or TypeError before), valid or
    mutated, and refuse what is not bytes-like instead of reading it as something else."""
    raw = bytearray(ev().raw)
    for _ in range(data.draw(st.integers(0, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    plain = bytes(raw[:data.draw(st.integers(0, len(raw)))])
    padded = b"\xff" * 3 + plain + b"\xff" * 2
    for read in (decode_event_bytes, decode_event_generic):
        expected = _outcome(read, plain)
        for other in (bytearray(plain), memoryview(plain), memoryview(padded)[3:3 + len(plain)]):
            assert _outcome(read, other) == expected
    for not_bytes in (5, "abc", None):
        with pytest.raises(TypeError):
            decode_event_bytes(not_bytes)  # type: ignore[arg-type]


def _outcome(read, raw) -> str:
    try:
        return repr(read(raw))
    except MalformedEvent as exc:
        return f"MalformedEvent: {exc}"


def test_a_bytes_like_event_over_the_limit_is_refused_as_bytes_are():
    limits = Limits(max_event_bytes=10)
    raw = ev().raw
    with pytest.raises(MalformedEvent) as plain:
        decode_event_bytes(raw, limits)
    for other in (bytearray(raw), memoryview(raw), memoryview(b"\0" + raw)[1:]):
        for read in (decode_event_bytes, decode_event_generic):
            with pytest.raises(MalformedEvent) as got:
                read(other, limits)
            assert str(got.value) == str(plain.value)


_B64_EDGES = ["QUJD====", "QUJD========", "QUJD", "QUI=", "QUI", "QUI==", "QQ==", "QQ", "QQ=", "QR==", "QUJD=",
              "QUJDRA==", "QUJDRA=", "QUJDRA===", "QQ==QQ==", "", "=", "====", "Q", "QUJ D", "QU-D", "QU_D", "QUJD\n"]


def _decoded_or_reason(text):
    try:
        return b64decode_strict(text)
    except MalformedEvent as exc:
        return str(exc)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.sampled_from(_B64_EDGES),
                 st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n",
                         max_size=14),
                 st.binary(max_size=10).map(lambda b: base64.b64encode(b).decode()).flatmap(
                     lambda t: st.sampled_from([t, t.rstrip("="), t + "=", t + "==", t + "====", "=" + t]))))
def test_base64_without_pybase64_accepts_exactly_what_the_shipped_path_accepts(text):
    """The binascii fallback (a machine without pybase64 or the compiled module) must give the same
    bytes or the same reason: it took "QUJD====" (found by fuzzing; the SDK refuses it)."""
    from verifier import wire
    shipped = _decoded_or_reason(text)
    saved = wire._compiled_b64, wire._pybase64_decode
    wire._compiled_b64 = wire._pybase64_decode = None
    try:
        assert _decoded_or_reason(text) == shipped
    finally:
        wire._compiled_b64, wire._pybase64_decode = saved


_B64_TEXT = st.one_of(st.binary(max_size=12).map(lambda raw: base64.b64encode(raw).decode()),
                      st.binary(max_size=12).map(lambda raw: base64.b64encode(raw).decode().rstrip("=")),
                      st.text("QRSAgw09+/=", max_size=9))


@settings(max_examples=3000, deadline=None)
@given(st.lists(_B64_TEXT, min_size=1, max_size=5))
def test_canonical_base64_of_a_page_is_each_texts(texts):
    """``canonical_b64_all`` (a page's texts at once): ``_b64_fast``'s bytes of each text, or None
    where any one of them is not canonical (unpadded texts too, as ``_b64_fast`` pads them)."""
    from verifier.wire import _b64_fast, canonical_b64_all
    one_by_one = [_b64_fast(text) for text in texts]
    assert canonical_b64_all(texts) == (None if None in one_by_one else one_by_one)


def test_canonical_base64_of_a_page_refuses_each_odd_text():
    from verifier.wire import _b64_fast, canonical_b64_all
    good = [base64.b64encode(bytes(range(n))).decode() for n in range(9)]
    assert canonical_b64_all(good) == [bytes(range(n)) for n in range(9)]
    assert canonical_b64_all([text.rstrip("=") for text in good]) == [bytes(range(n)) for n in range(9)]
    for odd in ("QR==", "QUJ=QUJD", "QQ=", "Q===", "QUJD\n", "QU JD", "QUJ-", "QUJDQ", "QUK=", "QUJDQR", "QUJDQUJ"):
        assert canonical_b64_all([*good, odd]) is None, odd  # (an empty text among them: re-encoded)
        assert canonical_b64_all([*good[1:], odd]) is None, odd  # (none: their last groups checked)
    for last, tail in ((1, "=="), (2, "=")):  # every character that may end a group: those _b64_fast takes
        for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/":
            text = "QUJD" + "Q" * (3 - last) + c + tail
            assert (canonical_b64_all(["QUJD", text]) is not None) == (_b64_fast(text) is not None), text
