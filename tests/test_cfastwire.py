"""The optional compiled decoder (``verifier/_cfastwire.pyx``) reads exactly what ``fastwire`` reads.

``fastwire`` is itself checked against the generic reader (tests/test_same_reports.py, for both
decoders); here the compiled twin must return the same event, or None, as the pure-Python one on
the seeds of the structural fuzzer (SDK-signed and forged events of every kind and version),
thousands of structural mutants, random byte mutations, every truncation and absurd lengths, under
the default limits and tight ones.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz.structural import Campaign
from helpers import ids_state
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier import fastwire, layouts, wire
from verifier.wire import DEFAULT_LIMITS, Limits

try:
    from verifier import _cfastwire
except ImportError:  # not built (no C compiler): test_built_where_a_compiler_exists says whether it should be
    _cfastwire = None  # type: ignore[assignment]

needs_compiled = pytest.mark.skipif(_cfastwire is None, reason="the compiled decoder is not built here")
REPO = Path(__file__).resolve().parent.parent
TIGHT = Limits(max_container_elements=2, max_total_elements=3, max_depth=3)
SHALLOW = Limits(max_depth=2)
LIMITS = (DEFAULT_LIMITS, TIGHT, SHALLOW)
# limits nobody should set, which must still give the same answer (C integers hold some, not others)
ODD_LIMITS = (Limits(max_depth=0), Limits(max_depth=1), Limits(max_container_elements=0),
              Limits(max_total_elements=0), Limits(max_total_elements=-2 ** 63), Limits(max_container_elements=-1),
              Limits(max_total_elements=2 ** 64), Limits(max_depth=2 ** 70), Limits(max_container_elements=2 ** 63))


@pytest.fixture(scope="module")
def campaign():
    return Campaign(seed=21)


def outcome(decode, raw, limits) -> str:
    """What a decoder gives, spelled out: repr tells True from 1 and keeps dict order."""
    try:
        return repr(decode(raw, limits))
    except Exception as exc:  # noqa: BLE001 - both must raise alike
        return f"raises {type(exc).__name__}"


def same(raw, limits_set=LIMITS) -> None:
    for limits in limits_set:
        assert outcome(_cfastwire.decode_event_fast, raw, limits) == \
            outcome(fastwire.decode_event_fast, raw, limits), (limits, bytes(raw).hex())


def test_built_where_a_compiler_exists():
    """A silently failed build would leave every user on the slow path: where a C compiler is on
    PATH (CI, this machine), the installed package must have the compiled decoder, and use it."""
    if os.environ.get("XCHAT_VERIFY_PURE_PYTHON") == "1":
        assert not wire.COMPILED_DECODER
        return
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler here: the pure-Python decoder is the one installed")
    assert _cfastwire is not None
    assert wire.COMPILED_DECODER and wire.decode_event_fast is _cfastwire.decode_event_fast


@needs_compiled
def test_every_seed_kind_decodes_the_same(campaign):
    decoded = 0
    for seed in campaign.seeds:
        same(seed.raw)
        decoded += _cfastwire.decode_event_fast(seed.raw, DEFAULT_LIMITS) is not None
    assert decoded > len(campaign.seeds) // 2  # the common shape is the compiled path's, not its fallback


@needs_compiled
def test_structural_mutants_decode_the_same(campaign):
    taken = 0
    cases = int(os.environ.get("XCHAT_DIFF_CASES", "0")) or 3000
    for _ in range(cases):
        try:
            raw = campaign.case()[1]
        except RecursionError:
            continue
        same(raw)
        taken += _cfastwire.decode_event_fast(raw, DEFAULT_LIMITS) is not None
    assert taken > cases // 20  # many mutants (about 1 in 10) keep the common shape: both outcomes compared


@needs_compiled
def test_every_truncation_and_extension_decodes_the_same(campaign):
    for seed in campaign.seeds[:40]:
        for end in range(len(seed.raw) + 1):
            same(seed.raw[:end])
        same(seed.raw + b"\x00")
        same(seed.raw + b"\x0b\x00\x01")


@needs_compiled
def test_odd_limits_give_the_same_answer(campaign):
    """Zero, negative and huge limits (beyond a C integer): the same event, or the same refusal."""
    for seed in campaign.seeds[:60]:
        same(seed.raw, ODD_LIMITS)
    for _ in range(1500):
        try:
            raw = campaign.case()[1]
        except RecursionError:
            continue
        same(raw, ODD_LIMITS)
    same(bytes.fromhex("0c00090f00050c00000001000000"), ODD_LIMITS)  # a list against a negative budget


@needs_compiled
def test_other_byte_types_give_the_same_answer(campaign):
    """A bytearray, a memoryview or a bytes subclass is read as fastwire reads it."""
    class Raw(bytes):
        pass
    for seed in campaign.seeds[:20]:
        for raw in (bytearray(seed.raw), memoryview(seed.raw), Raw(seed.raw)):
            same(raw)
    same(bytearray.fromhex("02000b0100"))


@needs_compiled
def test_a_stale_build_is_not_used(monkeypatch):
    """The module carries the digest of the source it was built from: a build older than the
    _cfastwire.pyx next to it is refused, with a warning, and the pure-Python decoder is used."""
    monkeypatch.delenv("XCHAT_VERIFY_PURE_PYTHON", raising=False)
    source = REPO / "verifier" / "_cfastwire.pyx"
    assert _cfastwire.SOURCE_SHA256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert wire._fast_decoder() == (_cfastwire.decode_event_fast, True)
    monkeypatch.setattr(_cfastwire, "SOURCE_SHA256", "0" * 64)
    with pytest.warns(UserWarning, match="older _cfastwire.pyx"):
        assert wire._fast_decoder() == (layouts.decode_event_fast, False)


@needs_compiled
def test_absurd_lengths_are_refused_alike(campaign):
    """Every 4-byte length of a seed replaced by hostile values (huge, negative, off by one)."""
    raw = campaign.seeds[0].raw
    for at in range(len(raw) - 3):
        for value in (0x7FFFFFFF, -1, -0x80000000, 0, 1, len(raw), len(raw) - at):
            same(raw[:at] + struct.pack(">i", value) + raw[at + 4:])


@needs_compiled
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_byte_mutations_decode_the_same(data):
    seeds = _seeds()
    raw = bytearray(seeds[data.draw(st.integers(0, len(seeds) - 1))])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["set", "insert", "delete"]))
        byte = data.draw(st.integers(0, 255))
        if action == "set":
            raw[at] = byte
        elif action == "insert":
            raw.insert(at, byte)
        elif len(raw) > 1:
            del raw[at]
    same(bytes(raw))


_SEEDS: list[bytes] = []


def _seeds() -> list[bytes]:
    if not _SEEDS:
        rng = random.Random(5)
        _SEEDS.extend(s.raw for s in rng.sample(Campaign(seed=22).seeds, 30))
    return _SEEDS


@needs_compiled
def test_differential_fuzz_target_short_seeded_pass(tmp_path):
    """tests/fuzz/fuzz_decoders.py (atheris, steered by the pure reader's coverage) finds no input
    on which the two decoders differ in a short seeded run."""
    import atheris  # noqa: F401  (in the test extra: missing it must fail, not skip)
    target = REPO / "tests" / "fuzz" / "fuzz_decoders.py"
    corpus = tmp_path / "corpus"
    subprocess.run([sys.executable, str(target), "--write-seeds", str(corpus)], check=True, timeout=300)
    proc = subprocess.run([sys.executable, str(target), "-runs=20000", "-seed=1", f"-artifact_prefix={tmp_path}/",
                           str(corpus)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 20000 runs" in proc.stderr


@needs_compiled
def test_pure_python_switch_gives_the_same_report(tmp_path):
    """``XCHAT_VERIFY_PURE_PYTHON=1`` turns the compiled decoder off, and the report stays the same."""
    examples = REPO / "examples"
    pages = sorted(str(p) for p in (examples / "tampered").glob("*.json"))
    reports = {}
    for pure in ("0", "1"):
        out = tmp_path / f"report-{pure}.json"
        env = {**os.environ, "XCHAT_VERIFY_PURE_PYTHON": pure}
        shown = subprocess.run([sys.executable, "-c", "import verifier.wire as w; print(w.COMPILED_DECODER)"],
                               env=env, capture_output=True, text=True, check=True).stdout.strip()
        assert shown == ("False" if pure == "1" else "True")
        done = subprocess.run([sys.executable, "-m", "verifier", "verify", *pages, "--keys",
                               str(examples / "keyring.json"), "--format", "json", "-o", str(out)],
                              env=env, capture_output=True, text=True)
        assert done.returncode == 1, done.stderr  # the tampered example fails, and says so the same way
        reports[pure] = out.read_bytes()
    assert reports["0"] == reports["1"]


def _reference_b64(text):
    from verifier.wire import _b64decode_diagnose
    try:
        return _b64decode_diagnose(text, "x")
    except wire.MalformedEvent:
        return None


_B64_CASES = ["", "=", "==", "QQ", "QQ=", "QQ==", "QQ===", "QR==", "QR", "QR=", "QS", "QUJD", "QUJD====", "QQ==QQ==",
              "QUI=", "QUJ=", "QUJ", "QUE", "QUE=", "====", "Q===", "Q", "Q=", "QUJDRA", "QUJDRA=", "QUJDRA==",
              "QUJDRB==", "QUJDRB", "Q\x00==", "QQ\n", " QQ", "QQ-_", "Q+/A", "é", "QQ\x7f=", "\x80QQQ"]


@needs_compiled
@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.text(alphabet="ABCDQRSTwxyz0189+/=-_ \n\té\x00\x7f", max_size=14), st.text(max_size=30),
                 st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()),
                 st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode().rstrip("="))))
def test_compiled_base64_gives_the_reference_bytes_or_leaves_the_decision_to_it(text):
    """``b64decode_canonical``: the reference decoder's bytes, or None (then ``b64decode_strict``
    decides, with its reason): never bytes where the reference refuses, never other bytes."""
    compiled = _cfastwire.b64decode_canonical(text)
    if compiled is not None:
        assert compiled == _reference_b64(text), repr(text)


@needs_compiled
def test_compiled_base64_takes_every_canonical_input_and_nothing_else():
    import random
    rng = random.Random(5)
    for text in _B64_CASES:
        assert _cfastwire.b64decode_canonical(text) == _reference_b64(text), repr(text)
    for size in range(0, 600):
        raw = rng.randbytes(size)
        text = base64.b64encode(raw).decode()
        assert _cfastwire.b64decode_canonical(text) == raw == _cfastwire.b64decode_canonical(text.rstrip("="))
        for at in range(0, len(text), max(1, len(text) // 7)):  # one character changed anywhere
            changed = text[:at] + rng.choice("=-_ .\né") + text[at + 1:]
            assert _cfastwire.b64decode_canonical(changed) == _reference_b64(changed), repr(changed)

    class Text(str):
        pass
    for other in (b"QQ==", bytearray(b"QQ=="), None, 5, Text("QQ==")):
        assert _cfastwire.b64decode_canonical(other) is None  # left to b64decode_strict's own checks


_ID_TEXT = st.one_of(st.none(), st.integers(-10, 2 ** 64).map(str), st.text("0123456789", max_size=21),
                     st.text("0123456789٣²abcdefABCDEFg-", max_size=38), st.uuids().map(str),
                     st.uuids().map(lambda u: str(u).upper()), st.text(max_size=40))


@needs_compiled
@settings(max_examples=1500, deadline=None)
@given(st.lists(_ID_TEXT, max_size=30), st.booleans(), st.integers(0, 3))
def test_compiled_id_columns_store_what_append_stores(values, uuids, already):
    """``Ids.append_all`` (one compiled pass) leaves the columns ``append`` leaves, value by value:
    the same forms, numbers and kept strings, after values already stored."""
    from verifier.columns import Ids
    one_by_one, at_once = Ids(uuids=uuids), Ids(uuids=uuids)
    for column in (one_by_one, at_once):
        for value in ["7", None, "x"][:already]:
            column.append(value)
    for value in values:
        one_by_one.append(value)
    at_once.append_all(list(values))
    assert ids_state(at_once) == ids_state(one_by_one)
    assert [at_once[i] for i in range(len(at_once))] == ["7", None, "x"][:already] + values


@needs_compiled
def test_compiled_id_columns_edges_and_other_types():
    from verifier.columns import Ids
    edges = ["0", "00", "01", "1", "9223372036854775807", "9223372036854775808", "18446744073709551616",
             "9999999999999999999", "99999999999999999999", "", " 1", "1 ", "+1", "-1", "١", "1\x00",
             "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
             "7fffffff-ffff-ffff-8000-000000000000", "80000000-0000-0000-7fff-ffffffffffff",
             "6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6", "6F1C1A2E-3B4D-4C5E-8F90-A1B2C3D4E5F6",
             "6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5f", "6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5f66",
             "6f1c1a2e+3b4d-4c5e-8f90-a1b2c3d4e5f6", "6f1c1a2e3b4d-4c5e-8f90-a1b2c3d4e5f6-", "é" * 36]
    for uuids in (False, True):
        one_by_one, at_once = Ids(uuids=uuids), Ids(uuids=uuids)
        for value in edges:
            one_by_one.append(value)
        at_once.append_all(edges)
        assert ids_state(at_once) == ids_state(one_by_one)

    class Text(str):
        pass
    assert _cfastwire.id_columns(["1", Text("2")], False) is None  # Ids then appends one by one
    assert _cfastwire.id_columns(["1", 2], True) is None
    column = Ids()
    column.append_all(["1", Text("02"), None])
    assert [column[i] for i in range(3)] == ["1", "02", None]


def test_id_columns_without_the_compiled_module_append_one_by_one(monkeypatch):
    from verifier import columns
    monkeypatch.setattr(columns, "_id_columns", None)
    column = columns.Ids(uuids=True)
    values = ["1", None, "6f1c1a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6", "01"]
    column.append_all(values)
    assert [column[i] for i in range(4)] == values and bytes(column._form) == b"\x01\x00\x02\x03"


def _python_payload(message_id, sender_id, conversation_id, key_version, contents):
    from verifier import payload
    from verifier.payload import PayloadUnavailable, build_payload
    event = wire.MessageEvent(kind="MessageCreateEvent", message_id=message_id, sender_id=sender_id,
                              conversation_id=conversation_id,
                              body={"contents": contents, "conversation_key_version": key_version})
    twin, payload._create_twin = payload._create_twin, None
    try:
        return build_payload(event, 7)
    except (PayloadUnavailable, TypeError, UnicodeEncodeError) as exc:
        return exc
    finally:
        payload._create_twin = twin


_COMPONENT = st.one_of(st.none(), st.text("0123456789abc-,é", max_size=12), st.text(max_size=8),
                       st.integers(0, 10 ** 20).map(str), st.integers(0, 9), st.binary(max_size=4))
_CONTENTS = st.one_of(st.binary(max_size=70), st.none(), st.text(max_size=5), st.binary(max_size=5).map(bytearray))


@needs_compiled
@settings(max_examples=2000, deadline=None)
@given(_COMPONENT, _COMPONENT, _COMPONENT, _COMPONENT, _CONTENTS)
def test_compiled_message_payload_is_the_builders(message_id, sender_id, conversation_id, key_version, contents):
    """``message_create_payload``: the bytes ``build_payload`` gives a MessageCreateEvent, or None
    (then ``build_payload`` builds them itself, or says why it cannot): never other bytes."""
    compiled = _cfastwire.message_create_payload(message_id, sender_id, conversation_id, key_version, contents)
    if compiled is not None:
        assert compiled == _python_payload(message_id, sender_id, conversation_id, key_version, contents)


@settings(max_examples=3000, deadline=None)
@given(_COMPONENT, _COMPONENT, _COMPONENT, _COMPONENT, _CONTENTS)
def test_pure_message_payload_is_the_builders(message_id, sender_id, conversation_id, key_version, contents):
    """The pure-Python twin (where nothing is compiled): the builder's bytes or None, never others."""
    from verifier.payload import _message_create_payload
    fast = _message_create_payload(message_id, sender_id, conversation_id, key_version, contents)
    if fast is not None:
        assert fast == _python_payload(message_id, sender_id, conversation_id, key_version, contents)


_TEXT = st.text("0123456789abc-:,\né", max_size=12)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.tuples(_TEXT, _TEXT, _TEXT, _TEXT, st.binary(max_size=40)), min_size=1, max_size=6))
def test_a_pages_payloads_are_the_builders(events):
    """``message_create_payloads`` (a page's usual events at once): each one the builder's, or None
    where any one is not the pure twin's (a comma, a line break, not ASCII)."""
    from verifier.payload import _message_create_payload, message_create_payloads
    columns = [list(column) for column in zip(*events)]
    page = message_create_payloads(*columns)
    one_by_one = [_message_create_payload(*event) for event in events]
    if page is not None:
        assert page == one_by_one
        assert page == [_python_payload(*event) for event in events]
    else:
        assert any(payload is None or b"\n" in payload or not payload.isascii() for payload in one_by_one)


def test_a_pages_payloads_take_the_common_page():
    from verifier.payload import _message_create_payload, message_create_payloads
    events = [("dd96a55c-9300-48e3-9695-fddb95af93ac", "1843439638876491776", "1:2", "1736723828667", bytes(range(n)))
              for n in range(70)]
    assert message_create_payloads(*[list(column) for column in zip(*events)]) == \
        [_message_create_payload(*event) for event in events]


def test_pure_message_payload_takes_the_common_case():
    from verifier.payload import _message_create_payload
    for conversation_id in (None, "", "1215441834412953600:1843439638876491776"):
        for contents in (b"", b"\x00", b"\xff\xfe", bytes(range(256))):
            for message_id in ("dd96a55c-9300-48e3-9695-fddb95af93ac", "é☃"):
                expected = _python_payload(message_id, "1843439638876491776", conversation_id, "1736723828667", contents)
                assert _message_create_payload(message_id, "1843439638876491776", conversation_id, "1736723828667",
                                               contents) == expected
    assert _message_create_payload("a,b", "1", None, "1", b"") is None  # a comma: the builder refuses
    assert _message_create_payload("\ud800", "1", None, "1", b"") is None  # not encodable: the builder raises
    assert isinstance(_python_payload("\ud800", "1", None, "1", b""), UnicodeEncodeError)


@needs_compiled
def test_compiled_message_payload_on_every_contents_length():
    import random
    rng = random.Random(3)
    for size in range(0, 300):
        contents = rng.randbytes(size)
        for conversation_id in (None, "", "1215441834412953600:1843439638876491776"):
            expected = _python_payload("dd96a55c-9300-48e3-9695-fddb95af93ac", "1843439638876491776",
                                       conversation_id, "1736723828667", contents)
            assert _cfastwire.message_create_payload("dd96a55c-9300-48e3-9695-fddb95af93ac", "1843439638876491776",
                                                     conversation_id, "1736723828667", contents) == expected
    assert _cfastwire.message_create_payload("a,b", "1", None, "1", b"") is None  # a comma: the builder refuses
    assert _cfastwire.message_create_payload("é", "1", None, "1", b"") is None  # non-ASCII: the builder encodes


def _python_der(sig):
    from verifier import keys
    compiled, keys._compiled_der = keys._compiled_der, None
    try:
        return keys.raw_signature_to_der(sig)
    except ValueError:
        return None
    finally:
        keys._compiled_der = compiled


_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_SCALARS = st.one_of(st.integers(0, 2 ** 256 - 1), st.integers(0, 2 ** 16), st.integers(_ORDER - 3, _ORDER + 3),
                     st.integers(2 ** 255 - 2, 2 ** 255 + 2), st.integers(0, 2 ** 135).map(lambda x: x << 120),
                     st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, 2 ** 248 - 1, 2 ** 248, 2 ** 256 - 1]))


@needs_compiled
@settings(max_examples=3000, deadline=None)
@given(_SCALARS, _SCALARS)
def test_compiled_der_is_the_python_der(r, s):
    """``signature_der``: the DER ``raw_signature_to_der`` builds (itself checked against
    ``encode_dss_signature``, tests/test_keys.py), or None where it refuses (zero, n or more)."""
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert _cfastwire.signature_der(sig) == _python_der(sig)


@needs_compiled
def test_compiled_der_refuses_other_lengths_and_types():
    good = (1).to_bytes(32, "big") + (2).to_bytes(32, "big")
    assert _cfastwire.signature_der(good) == _python_der(good) == b"\x30\x06\x02\x01\x01\x02\x01\x02"
    for other in (b"", good[:63], good + b"\0", bytearray(good), memoryview(good), None, good.hex()):
        assert _cfastwire.signature_der(other) is None


@needs_compiled
@settings(max_examples=2000, deadline=None)
@given(st.lists(st.one_of(st.uuids(), st.sampled_from([0, 2 ** 128 - 1, 2 ** 127, 2 ** 127 - 1, 2 ** 64 - 1, 2 ** 64,
                                                       2 ** 63, 1]).map(lambda n: __import__("uuid").UUID(int=n))),
                max_size=20))
def test_compiled_uuid_texts_are_the_python_ones(uuids):
    """``uuid_texts``: the text ``columns._uuid_text`` gives each stored UUID (a report's message ids)."""
    from verifier.columns import Ids, _uuid_text
    column = Ids(uuids=True)
    for value in uuids:
        column.append(str(value))
    highs, lows = tuple(column._a), tuple(column._b)
    assert _cfastwire.uuid_texts(highs, lows) == list(map(_uuid_text, highs, lows)) == list(map(str, uuids))
    assert column.values(range(len(uuids))) == list(map(str, uuids))


@needs_compiled
def test_compiled_uuid_texts_refuse_what_ids_never_store():
    with pytest.raises(ValueError):
        _cfastwire.uuid_texts((1, 2), (1,))
    with pytest.raises(OverflowError):
        _cfastwire.uuid_texts((2 ** 63,), (0,))


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-(2 ** 63), 2 ** 63 - 1) | st.integers(-3, 3) | st.integers(0, 40).map(lambda b: 1 << b),
                max_size=80), st.integers(0, 30))
def test_compiled_repeated_offsets_are_the_keys_that_occur_twice(keys, spread):
    """Round 140: ``repeated_offsets`` (``fastchain._repeated_in_chain``'s table in C) gives, in order,
    the offset of every key that occurs more than once: extremes of the int64 range, keys that
    differ only in their high bits (one hash step apart for a plain multiplier), none and all
    repeated; a table of 100,000 keys, 40,000 of them spaced by a power of two."""
    from array import array
    from collections import Counter
    column = array("q", keys + [key << spread for key in range(-5, 5)] + keys[:3])
    counts = Counter(column)
    assert list(array("I", _cfastwire.repeated_offsets(column))) == [at for at, key in enumerate(column)
                                                                      if counts[key] > 1]
    big = array("q", [(at % 40_000) << 23 for at in range(100_000)])
    assert len(array("I", _cfastwire.repeated_offsets(big))) == 100_000
    assert _cfastwire.repeated_offsets(array("q")) == b""
