"""Remembered layouts (verifier/layouts.py) give exactly the straight-line reader's event or None.

The oracle is ``fastwire.decode_event_fast`` itself (tested against the generic reader in
test_wire.py and test_same_reports.py); ``repr`` compares, so True is not 1 and dict order counts.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier import fastwire, layouts
from verifier.testing.forge import encode_event
from verifier.wire import DEFAULT_LIMITS, EventSignature, Limits, MessageEvent, SigningKeyInfo


@pytest.fixture(autouse=True)
def _no_layouts_from_elsewhere():
    layouts.forget()
    yield
    layouts.forget()


def _event(**changes) -> MessageEvent:
    info = SigningKeyInfo("1843439638876491776", "1736723828667", "MFkwEwYHKoZIzj0CAQYIKo==")
    fields = dict(sequence_id="2080819482326042271", message_id="dd96a55c-9300-48e3-9695-fddb95af93ac",
                  sender_id="1843439638876491776", conversation_id="1215441834412953600:1843439638876491776",
                  conversation_token=None, created_at_msec="1784940999000", kind="MessageCreateEvent",
                  body={"contents": b"\xd5\xccJ\x10\x00\xff", "conversation_key_version": "1784840999000",
                        "should_notify": True},
                  relay_source=None,
                  signature=EventSignature("R5vAJ+JYUyaDo0a8AG07HHN/nvJEhq02sQ", "1736723828667", "7",
                                           "MFkwEwYHKoZIzj0CAQYIKo==", [info]),
                  previous_sequence_id="2080819478131738270", is_trusted=True)
    fields.update(changes)
    return MessageEvent(**fields)


def _info(n: int) -> list[SigningKeyInfo]:
    return [SigningKeyInfo(str(i), "v", "k" * i) for i in range(n)]


# every optional field present and absent, each kind of value the layout unpacks
BASES = {
    "common": _event(),
    "token and relay": _event(conversation_token="tok", relay_source=-7),
    "no envelope strings": _event(sequence_id=None, message_id=None, sender_id=None, conversation_id=None,
                                  created_at_msec=None),
    "contents only": _event(body={"contents": b""}),
    "key version only": _event(body={"contents": b"x", "conversation_key_version": "1"}),
    "notify false only": _event(body={"contents": b"x", "should_notify": False}),
    "no signature": _event(signature=None),
    "empty signature": _event(signature=EventSignature()),
    "no key infos": _event(signature=EventSignature("s", "v", "7", "k")),
    "empty key infos": _event(signature=EventSignature("s", message_signing_key_info_list=[])),
    "two key infos": _event(signature=EventSignature("s", "v", "7", "k", _info(2))),
    "key infos without strings": _event(signature=EventSignature(message_signing_key_info_list=[SigningKeyInfo()] * 2)),
    "no previous, untrusted": _event(previous_sequence_id=None, is_trusted=False),
    "no trust flag": _event(is_trusted=None),
    "non-ASCII and empty strings": _event(sender_id="é☃", message_id="", previous_sequence_id="\U0001f600"),
}


def _learn(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> None:
    layouts.forget()
    assert repr(layouts.decode_event_fast(raw, limits)) == repr(fastwire.decode_event_fast(raw, limits))
    assert len(layouts._recent) == 1


def _same(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> bool:
    """Whether the remembered layout read ``raw`` itself (else it went to the reader); and
    ``layouts.usual`` gives the reader's fields of it, or None."""
    hits = layouts._hits
    assert repr(layouts.decode_event_fast(raw, limits)) == repr(fastwire.decode_event_fast(raw, limits)), raw
    through_layout = layouts._hits > hits
    found = layouts.usual(raw, limits)  # (through the layout just learnt from it, it may be)
    if found is not None:
        assert repr(found) == repr(_usual_of(fastwire.decode_event_fast(raw, limits))), raw
    return through_layout


def _usual_of(event: MessageEvent | None) -> tuple[tuple[str | None, ...], bool | None, bytes] | None:
    """What ``layouts.usual`` gives of an event it takes, read from the reader's event."""
    assert event is not None and event.signature is not None and event.body is not None
    sig = event.signature
    assert sig.message_signing_key_info_list is not None and len(sig.message_signing_key_info_list) == 1
    info = sig.message_signing_key_info_list[0]
    return ((event.sequence_id, event.message_id, event.sender_id, event.conversation_id, event.created_at_msec,
             event.previous_sequence_id, event.body["conversation_key_version"], sig.signature, sig.public_key_version,
             sig.signature_version, sig.signing_public_key, info.member_id, info.public_key_version,
             info.signing_public_key), event.is_trusted, event.body["contents"])


def test_usual_reads_through_an_older_layout():
    """An event of the second layout remembered is read by ``usual`` through it: another layout's
    frame, tried first, sends it on (round 123 first gave up there)."""
    first = encode_event(_event())
    _learn(first)
    layouts.decode_event_fast(encode_event(_event(sender_id="12345")), DEFAULT_LIMITS)  # learnt, tried first
    assert len(layouts._recent) == 2
    assert repr(layouts.usual(first, DEFAULT_LIMITS)) == repr(_usual_of(_event()))


def test_usual_takes_the_usual_shape_only():
    """``usual`` reads the common event, and refuses what lacks one of its fields or is not ASCII."""
    for name, event in BASES.items():
        raw = encode_event(event)
        _learn(raw)
        found = layouts.usual(raw, DEFAULT_LIMITS)
        assert (found is not None) == (name in ("common", "token and relay", "key version only")), name
        if found is not None:
            assert repr(found) == repr(_usual_of(event))


@pytest.mark.parametrize("name", list(BASES))
def test_a_learnt_event_reads_back_through_its_layout(name):
    raw = encode_event(BASES[name])
    _learn(raw)
    assert _same(raw)


@pytest.mark.parametrize("name", list(BASES))
def test_every_byte_changed_reads_as_the_reader_reads_it(name):
    """Each byte set to 0, 0xff and flipped in its low and high bit, one at a time, after the
    unchanged event's layout was learnt: frame bytes, lengths, STOPs, bools, the i32, the text."""
    raw = encode_event(BASES[name])
    through_layout = 0
    for at in range(len(raw)):
        for value in {0, 0xFF, raw[at] ^ 1, raw[at] ^ 0x80}:
            _learn(raw)
            through_layout += _same(raw[:at] + bytes([value]) + raw[at + 1:])
    assert through_layout > 0 or not raw.count(b"\x0b")  # data bytes changed keep the layout


@pytest.mark.parametrize("name", list(BASES))
def test_cut_grown_and_shifted_events_read_as_the_reader_reads_them(name):
    raw = encode_event(BASES[name])
    cases = [raw[:n] for n in range(len(raw))] + [raw + b"\x00", raw + b"\x01\x02", b"\x00" + raw]
    cases += [raw[:at] + raw[at + 1:] for at in range(len(raw))]  # one byte dropped
    cases += [raw[:at] + b"A" + raw[at:] for at in range(len(raw))]  # one byte inserted
    for case in cases:
        _learn(raw)
        _same(case)


def test_only_the_ciphertext_may_change_length():
    base = _event()
    _learn(encode_event(base))
    for contents in (b"", b"a", b"\x00" * 1000):
        assert _same(encode_event(_event(body={**base.body, "contents": contents})))
    assert not _same(encode_event(_event(sender_id="12345")))  # another length: the reader reads it
    assert not _same(encode_event(_event(body={"contents": b"x"})))  # fields left out


def test_invalid_utf8_is_refused_as_the_reader_refuses_it():
    raw = encode_event(_event())
    _learn(raw)
    at = raw.index(b"dd96a55c")
    bad = raw[:at] + b"\xff" + raw[at + 1:]
    assert layouts.decode_event_fast(bad, DEFAULT_LIMITS) is None
    assert fastwire.decode_event_fast(bad, DEFAULT_LIMITS) is None


def test_a_layout_is_used_only_under_the_bounds_it_was_learnt_under():
    raw = encode_event(_event(signature=EventSignature("s", "v", "7", "k", _info(2))))
    _learn(raw)
    for limits in (Limits(max_container_elements=1), Limits(max_total_elements=1), Limits(max_depth=2),
                   Limits(max_depth=1), Limits(max_depth=0), Limits()):
        assert layouts.decode_event_fast(raw, limits) is fastwire.decode_event_fast(raw, limits) is None \
            or limits == Limits()
        assert repr(layouts.decode_event_fast(raw, limits)) == repr(fastwire.decode_event_fast(raw, limits))


def test_layouts_are_learnt_within_a_budget():
    """Events of ever new layouts are not each paid for with a layout that is never used again."""
    for n in range(1, 60):
        layouts.decode_event_fast(encode_event(_event(sender_id="9" * n)), DEFAULT_LIMITS)
    assert layouts._learnt == layouts._FREE_LEARNING
    assert len(layouts._recent) == layouts._MAX_LAYOUTS
    reused = encode_event(_event(sender_id="9" * 59))
    layouts.decode_event_fast(reused, DEFAULT_LIMITS)  # not remembered: over the budget
    assert layouts._hits == 0
    recent = encode_event(_event(sender_id="9" * layouts._FREE_LEARNING))
    for _ in range(layouts._HITS_PER_LAYOUT * layouts._FREE_LEARNING):
        assert _same(recent)
    layouts.decode_event_fast(reused, DEFAULT_LIMITS)  # hits paid for one more
    assert layouts._learnt == layouts._FREE_LEARNING + 1
    assert _same(reused)


def test_one_off_layouts_first_do_not_stop_learning_for_good():
    """A process whose first events all had layouts of their own (review): events read without a
    layout pay for learning again, so the usual layouts of what follows are learnt."""
    for n in range(layouts._FREE_LEARNING):
        layouts.decode_event_fast(encode_event(_event(message_id="x" * (100 + n))), DEFAULT_LIMITS)
    assert layouts._hits == 0
    usual = [encode_event(_event(sender_id="1" * (n % 2 + 1))) for n in range(4000)]
    for raw in usual:
        layouts.decode_event_fast(raw, DEFAULT_LIMITS)
    assert layouts._hits > 3000
    assert layouts._learnt <= layouts._FREE_LEARNING + 4000 // layouts._MISSES_PER_LAYOUT + 1


def test_other_kinds_are_never_remembered():
    for kind, body in (("MessageDeleteEvent", {"sequence_ids": ["1"]}), ("MessageCreateEvent", {}),
                       ("MessageCreateEvent", {"contents": b"x", "ttl_msec": 5})):
        raw = encode_event(_event(kind=kind, body=body))
        assert repr(layouts.decode_event_fast(raw, DEFAULT_LIMITS)) == repr(fastwire.decode_event_fast(raw, DEFAULT_LIMITS))
    assert layouts._recent == ()


_text = st.one_of(st.none(), st.text(max_size=6), st.sampled_from(["1784940999000", "é", ""]))
_infos = st.one_of(st.none(), st.lists(st.builds(SigningKeyInfo, _text, _text, _text), max_size=3))
_signatures = st.one_of(st.none(), st.builds(EventSignature, _text, _text, _text, _text, _infos))
_bodies = st.fixed_dictionaries({"contents": st.binary(max_size=8)},
                                optional={"conversation_key_version": st.text(max_size=4), "should_notify": st.booleans()})
_events = st.builds(MessageEvent, _text, _text, _text, _text, _text, _text, st.just("MessageCreateEvent"), _bodies,
                    st.one_of(st.none(), st.integers(-2**31, 2**31 - 1)), _signatures, _text,
                    st.one_of(st.none(), st.booleans()))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=_events, then=st.lists(_events, min_size=1, max_size=6))
def test_random_events_after_random_events_read_as_the_reader_reads_them(first, then):
    """Random MessageCreateEvents one after another, each learnt or read through what came before;
    a few of them share layouts by chance (short strings of equal length)."""
    layouts.forget()
    for event in [first, *then, first]:
        raw = encode_event(event)
        assert repr(layouts.decode_event_fast(raw, DEFAULT_LIMITS)) == repr(fastwire.decode_event_fast(raw, DEFAULT_LIMITS))


def test_an_event_shorter_than_one_layout_is_read_through_another():
    short = encode_event(_event(sender_id="1"))
    _learn(short)
    layouts.decode_event_fast(encode_event(_event(sender_id="1" * 2000)), DEFAULT_LIMITS)  # learnt, tried first
    assert len(layouts._recent) == 2
    assert _same(encode_event(_event(sender_id="2")))


def test_other_byte_types_are_read_as_the_reader_reads_them():
    """A bytearray or memoryview slices to its own type, not bytes: never through a layout."""
    raw = encode_event(_event())
    _learn(raw)
    for other in (bytearray(raw), memoryview(raw)):
        try:
            expected = repr(fastwire.decode_event_fast(other, DEFAULT_LIMITS))
        except Exception as exc:  # what the reader does with it, whatever that is
            expected = type(exc).__name__
        try:
            got = repr(layouts.decode_event_fast(other, DEFAULT_LIMITS))
        except Exception as exc:
            got = type(exc).__name__
        assert got == expected
    assert layouts._hits == 0


# ---------------------------------------------------------------- a page at once (``usual_page``, round 134)

def _page(base: MessageEvent, count: int = 5) -> list[bytes]:
    """``count`` events of ``base``'s layout: their contents of different lengths, texts of their own."""
    return [encode_event(_event(**{**{name: getattr(base, name) for name in ("conversation_token", "relay_source")},
                                   "body": {**base.body, "contents": bytes(range(n * 7 % 50))},
                                   "sequence_id": str(2080819482326042271 + n)})) for n in range(count)]


def _usual_columns(raws: list[bytes]) -> layouts.PageFields | None:
    """What ``usual_page`` must give where it gives anything: ``usual`` of each event, as columns."""
    found = [layouts.usual(raw, DEFAULT_LIMITS) for raw in raws]
    if None in found:
        return None
    return (tuple(zip(*[texts for texts, _, _ in found])), bytes(trusted for _, trusted, _ in found),
            [contents for _, _, contents in found])


@pytest.mark.parametrize("name", ["common", "token and relay", "key version only"])
def test_a_page_reads_as_each_event_reads(name):
    raws = _page(BASES[name])
    _learn(raws[0])
    found = layouts.usual_page(raws, DEFAULT_LIMITS)
    assert found is not None and repr(found) == repr(_usual_columns(raws))


@pytest.mark.parametrize("name", ["common", "token and relay"])
def test_every_byte_changed_in_a_page_reads_as_each_event_reads(name):
    """One event of a page with each byte set to 0, 0xff and flipped in its low and high bit: the
    page gives every event's ``usual`` fields, or None (then the engine reads them one by one)."""
    raws = _page(BASES[name])
    taken = 0
    for at in range(len(raws[2])):
        for value in {0, 0xFF, raws[2][at] ^ 1, raws[2][at] ^ 0x80}:
            _learn(raws[0])
            page = [*raws[:2], raws[2][:at] + bytes([value]) + raws[2][at + 1:], *raws[3:]]
            found = layouts.usual_page(page, DEFAULT_LIMITS)
            if found is not None:
                taken += 1
                assert repr(found) == repr(_usual_columns(page)), (at, value)
    assert taken > 0  # the texts' bytes changed keep the layout


def test_a_page_of_two_layouts_or_non_ascii_texts_is_left_to_the_events():
    raws = _page(_event())
    _learn(raws[0])
    layouts.decode_event_fast(encode_event(_event(sender_id="12345")), DEFAULT_LIMITS)  # a second layout
    assert layouts.usual_page(raws, DEFAULT_LIMITS) is not None  # through the older layout
    assert layouts.usual_page([*raws, encode_event(_event(sender_id="12345"))], DEFAULT_LIMITS) is None
    assert layouts.usual_page([*raws, encode_event(_event(sender_id="18434396388764917é"))], DEFAULT_LIMITS) is None
    assert layouts.usual_page(raws, Limits(max_event_bytes=10**6)) is None  # learnt under other bounds
    assert layouts.usual_page([raws[0], raws[1][:40]], DEFAULT_LIMITS) is None  # shorter than the layout
