import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from helpers import ALICE, BOB, ev, fixture, page, sig_statuses, verify

from verifier.keys import (
    P256_ORDER,
    Keyring,
    KeyringError,
    UnusableKey,
    key_identity,
    parse_public_key,
    verify_binding,
    verify_raw,
    version_key,
)
from verifier.testing.forge import Identity


def test_sec1_compressed_uncompressed_and_spki_are_one_key():
    forms = [ALICE.signing_public(f) for f in ("spki", "sec1", "sec1c")]
    assert {len(base64.b64decode(f)) for f in forms} == {91, 65, 33}
    assert len({key_identity(parse_public_key(f)) for f in forms}) == 1


def test_an_spki_key_is_read_as_the_der_parser_reads_it():
    """Round 124: the usual P-256 SPKI is read as its header and point (the DER parser's module is
    imported only for another form): the same key, the same identity; a bad point under the usual
    header, or any other header, is still the DER parser's to judge, with its reason."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    from verifier.keys import parse_public_key_bytes
    for seed in range(40):
        key = Identity.from_seed("1", "1", f"spki-{seed}").signing.public_key()
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        read = parse_public_key_bytes(der)
        assert read.public_numbers() == key.public_numbers() and key_identity(read) == key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    header = der[:26]
    for bent in (header + b"\x04" + bytes(64), header + b"\x02" + der[27:], header + b"\x05" + der[27:],
                 header.replace(b"\x03\x01\x07", b"\x03\x01\x08") + der[26:], b"\x30\x58" + der[2:]):
        try:
            serialization.load_der_public_key(bent)
            expected = "not a P-256 key"
        except (ValueError, UnsupportedAlgorithm) as exc:
            expected = f"not a valid P-256 public key: {exc}"
        with pytest.raises(UnusableKey) as caught:
            parse_public_key_bytes(bent)
        assert expected in str(caught.value)


@pytest.mark.parametrize("text,reason", [
    ("AAAA", "3 bytes"), ("!!", "invalid base64"), (base64.b64encode(b"\x04" + b"\x01" * 64).decode(), "not a valid"),
])
def test_bad_keys(text, reason):
    with pytest.raises(UnusableKey, match=reason):
        parse_public_key(text)


def test_fixture_signature_high_s_verifies_and_low_s_twin_too():
    f = fixture()
    key = parse_public_key(f["signing_public_b64"])
    sig = base64.b64decode(f["signature_b64"])
    msg = f["message_utf8"].encode()
    s = int.from_bytes(sig[32:], "big")
    assert s > P256_ORDER // 2  # the fixture is high-S
    assert verify_raw(key, sig, msg) == (True, "")
    twin = sig[:32] + (P256_ORDER - s).to_bytes(32, "big")
    assert verify_raw(key, twin, msg)[0]


@pytest.mark.parametrize("sig,reason", [
    (b"\x01" * 63, "63 bytes"), (b"\x01" * 65, "65 bytes"), (b"\0" * 32 + b"\x01" * 32, "out of range"),
    (b"\x01" * 32 + P256_ORDER.to_bytes(32, "big"), "out of range"), (b"\x01" * 64, "ECDSA mismatch"),
])
def test_signature_shape_rules(sig, reason):
    ok, why = verify_raw(ALICE.signing.public_key(), sig, b"x")
    assert not ok and reason in why


def test_der_signature_is_refused():
    der = ALICE.signing.sign(b"m", ec.ECDSA(__import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256()))
    assert not verify_raw(ALICE.signing.public_key(), der, b"m")[0]


def test_fixture_binding_is_over_raw_sec1_identity_key():
    f = fixture()
    signing = parse_public_key(f["signing_public_b64"])
    assert verify_binding(f["identity_public_b64"], signing, f["identity_public_key_signature_b64"])[0]
    spki = base64.b64encode(bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
                            + base64.b64decode(f["identity_public_b64"])).decode()
    assert not verify_binding(spki, signing, f["identity_public_key_signature_b64"])[0]


def test_keyring_shapes_are_equivalent():
    rows = [ALICE.keyring_entry(), BOB.keyring_entry()]
    by_user = {ALICE.user_id: {"data": [ALICE.keyring_row()]},
               BOB.user_id: {"data": [{**BOB.keyring_row(), "version": BOB.version}]}}
    del by_user[BOB.user_id]["data"][0]["public_key_version"]
    for shape in ({"keys": rows}, rows, by_user):
        ring = Keyring.from_json(json.dumps(shape))
        assert len(ring) == 2
        assert ring.lookup("1111", "1").status == "ok"
        assert ring.lookup("2222", "7").key is not None
        assert ring.lookup("2222", "007") is None  # exact match, as the official SDK


def test_keyring_bad_binding_and_conflict():
    bad = {**ALICE.keyring_entry(), "identity_public_key_signature": BOB.keyring_row()["identity_public_key_signature"]}
    ring = Keyring.from_json(json.dumps([bad]))
    assert ring.lookup("1111", "1").status == "key_binding_invalid"
    other = {**ALICE.keyring_entry(), "signing_public_key": BOB.signing_public()}
    del other["identity_public_key_signature"]
    ring = Keyring.from_json(json.dumps([ALICE.keyring_entry(), other]))
    assert ring.lookup("1111", "1").status == "conflict"
    same_key_other_encoding = ALICE.keyring_entry("sec1")
    ring = Keyring.from_json(json.dumps([ALICE.keyring_entry(), same_key_other_encoding]))
    assert ring.lookup("1111", "1").status == "ok"


def _partially_padded(text: str) -> str:
    body = text.rstrip("=")
    assert -len(body) % 4 == 2, "the test needs a value whose padding is two '='"
    return body + "="


def test_a_second_key_whose_binding_has_partial_padding_is_a_conflict():
    """Review 53: the SDK decodes partial padding, so a second row for the version, its binding cut to
    one '=' of two, is a good key to it (it checked the event with that key and refused it). Here the
    row was dropped as a broken binding, and the event passed: it must be the conflict it is."""
    mallory = Identity.from_seed("1111", "1", "mallory")
    row = mallory.keyring_entry()
    row["identity_public_key_signature"] = _partially_padded(row["identity_public_key_signature"])
    for rows in ([row, ALICE.keyring_entry()], [ALICE.keyring_entry(), row]):
        assert Keyring.from_json(json.dumps(rows)).lookup("1111", "1").status == "conflict"


def test_a_map_of_public_keys_bodies_may_name_users_data_and_meta():
    """Review 63: the events-page check (review 61) refused a keyring map whose user ids were "data"
    and "meta"; a public_keys body is an object, an events page's data a list."""
    rows = {"data": {"data": [ALICE.keyring_row()]}, "meta": {"data": []}}
    rows["data"]["data"][0]["user_id"] = "data"
    ring = Keyring.from_json(json.dumps(rows))
    assert ring.lookup("data", "1").status == "ok"


def test_partial_padding_in_every_key_field_is_taken():
    entry = ALICE.keyring_entry()
    for field in ("identity_public_key_signature", "public_key", "signing_public_key"):
        if -len(entry[field].rstrip("=")) % 4 == 2:
            ring = Keyring.from_json(json.dumps([{**entry, field: _partially_padded(entry[field])}]))
            assert ring.lookup("1111", "1").status == "ok", field


@pytest.mark.parametrize("data,reason", [
    (b"not json", "not JSON"), (b"42", "object or a list"), (b'[{"user_id": 1}]', "user_id"),
    (b'{"1": "x"}', "public_keys response"), (b'[5]', "not an object"),
    # r126 noticed: a user's rows given as a list said "not a public_keys response body", not the shape
    (b'{"1": [{"public_key_version": "1", "signing_public_key": "AA=="}]}',
     r'user 1 is an array, not a public_keys response body \(\{"USER": \{"data": \[key rows\]\}\}'),
    # r126: {"keys": {...}} was the public_keys body of a user "keys" without data: an empty keyring, no error
    (b'{"keys": {"user_id": "1", "public_key_version": "1", "signing_public_key": "AA=="}}',
     r'keyring "keys" is an object, not a list of key rows'),
    (b'{"keys": "abc"}', r'keyring "keys" is a string, not a list'),
    # review: the members besides "keys" were ignored without a word
    (b'{"keys": [], "1111": {"data": []}}', "keyring has members besides \"keys\" \\('1111'\\): use one shape"),
    # review 61: an events page given as --keys read its "data" member as a user id
    (b'{"data": [{"encoded_event": "AA=="}], "meta": {}}', "this is an events page, not a keyring"),
    (b'{"data": [{"encoded_event": "AA=="}]}', "this is an events page, not a keyring"),
    # round 80: one public_keys body (an evidence directory's keys/USER.json, a curl of the route) read
    # its "data" member as a user id: "keyring entry for user data is not a public_keys response body"
    (b'{"data": [{"public_key_version": "1", "signing_public_key": "AA=="}]}',
     r'one GET /2/users/\{id\}/public_keys response body .*which does not name its user: give it as \{"USER_ID": body\}'),
    (b'{"data": []}', "which does not name its user"),
    (b'{"data": [{"user_id": "1", "public_key_version": "1", "signing_public_key": "AA=="}]}',
     r'give its rows as \{"keys": \[\.\.\.\]\}'),
    (b'{"errors": [{"title": "Not Found Error", "detail": "Could not find user"}]}',
     "this is an API error response, not a keyring: Not Found Error - Could not find user"),
])
def test_keyring_errors(data, reason):
    with pytest.raises(ValueError, match=reason):
        Keyring.from_json(data)


def test_version_key():
    assert version_key("0042") != version_key("42")
    assert version_key(None) == "" and version_key("a1") == "a1"


@pytest.mark.parametrize("alias", ["01", "+1", "0001"])
def test_one_key_version_spelled_two_ways_with_two_keys_is_a_conflict(alias):
    """Round 73: versions match exactly (as the SDK matches them), so a directory serving Alice's
    version 1 and a key of its own under "01" got events signed under "01" verified, and nothing said
    that version 1 held two keys. The same key under both spellings is no conflict."""
    mallory = Identity.from_seed("1111", alias, "mallory")
    ring = Keyring.from_json(json.dumps([ALICE.keyring_entry(), mallory.keyring_entry()]))
    assert ring.lookup("1111", alias).status == "ok"  # matching stays exact
    [(code, message)] = ring.run_findings()
    assert code == "key_conflict" and "'1'" in message and repr(alias) in message
    forged = ev(sender=mallory, seq=2, prev=1)
    report = verify(page(ev(seq=1), forged), ring=ring)
    assert sig_statuses(report) == ["valid", "valid"] and report.verdict == "fail"
    assert [f.code for f in report.findings] == ["key_conflict"]
    same_key = {**ALICE.keyring_entry(), "public_key_version": alias}
    assert not Keyring.from_json(json.dumps([ALICE.keyring_entry(), same_key])).run_findings()
    words = Identity.from_seed("1111", "v1", "other")  # not a number: not compared
    assert not Keyring.from_json(json.dumps([ALICE.keyring_entry(), words.keyring_entry()])).run_findings()


def test_numeric_json_versions_in_a_keyring():
    entry = {**ALICE.keyring_entry(), "public_key_version": 1}
    assert Keyring.from_json(json.dumps([entry])).lookup("1111", "1").status == "ok"


def test_a_bent_spki_in_an_event_is_a_finding_not_a_crash():
    """The fuzz corpus case of issue 11: an embedded key whose algorithm OID has a flipped bit makes
    cryptography raise UnsupportedAlgorithm; it is an unusable key, never an exit 3."""
    import json

    from fuzz.fuzz_verify import bent_key_page

    import verifier
    page = json.loads(bent_key_page())
    for report in (verifier.verify_pages([page], None, allow_embedded_keys=True),
                   verifier.verify_pages([page], None)):
        (event,) = report.conversations[0].events
        assert event.signature.status == "invalid" and "embedded signing key unusable" in event.signature.detail
        assert report.verdict == "fail"


def test_der_from_raw_is_the_der_of_encode_dss_signature():
    """raw_signature_to_der builds DER with byte operations: the same bytes as cryptography's, on
    random, short, high-bit and boundary scalars; out-of-range scalars are refused."""
    import random

    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    from verifier.keys import P256_ORDER, raw_signature_to_der
    rng = random.Random(11)
    scalars = [1, 2, 127, 128, 255, 256, P256_ORDER - 1, 2 ** 255, 2 ** 255 - 1, 2 ** 248 - 1]
    scalars += [rng.randrange(1, P256_ORDER) for _ in range(300)] + [rng.randrange(1, 2 ** 64) for _ in range(50)]
    for r in scalars:
        s = scalars[rng.randrange(len(scalars))]
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        assert raw_signature_to_der(raw) == encode_dss_signature(r, s)
    for r, s in ((0, 1), (1, 0), (P256_ORDER, 1), (1, P256_ORDER), (2 ** 256 - 1, 1)):
        with pytest.raises(ValueError, match="out of range"):
            raw_signature_to_der(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def _key_body(identity) -> dict:
    row = identity.keyring_entry()
    return {"data": [{k: v for k, v in row.items() if k != "user_id"}]}


@pytest.mark.parametrize("form", [json.dumps, lambda b: json.dumps(b).encode()])
def test_public_key_bodies_accept_raw_bodies(form):
    """Review 51: the raw body ``get_public_keys`` returns (bytes, or text) gave no keys, silently."""
    ring = Keyring.from_public_key_bodies({ALICE.user_id: form(_key_body(ALICE))})
    assert ring.errors == [] and ring.lookup(ALICE.user_id, ALICE.version) is not None


@pytest.mark.parametrize("bodies,words", [
    ({"1": b"\xff"}, "body is not JSON"),
    ({"1": "[" * 100_000}, "body is not JSON"),
    ({"1": b'{"data": []' + b", 1" * 300_000 + b"}"}, "JSON values"),
    ({"1": {"errors": [{"title": "Not Found Error"}]}}, "an error instead of keys: Not Found Error"),
    ({"1": {"data": 5}}, "no `data` array"),
    ({"1": {}}, "no `data` array"),
    ({"1": None}, "not a JSON object"),
    ({1: {"data": []}}, "not a string"),
    ([1], "expected {user_id: body}"),
])
def test_public_key_bodies_name_unusable_bodies_and_never_raise(bodies, words):
    """Review 51: garbage and API error bodies were silently keyless; ``[1]`` raised IndexError."""
    ring = Keyring.from_public_key_bodies(bodies)
    assert len(ring.errors) == 1 and words in ring.errors[0] and not ring.keys


@pytest.mark.parametrize("version,accepted", [(None, False), (True, False), (1.5, False), (7, True), ("7", True)])
def test_from_entries_checks_and_normalises_as_from_json(version, accepted):
    """Review 51: ``from_entries`` took None or a bool as a version, and kept an int one as an int, so
    the lookup by its text never matched; it now agrees with ``from_json`` entry for entry."""
    from verifier.errors import KeyringError
    from verifier.keys import KeyringEntry

    row = {**ALICE.keyring_entry(), "public_key_version": version}
    entry = KeyringEntry(row["user_id"], version, row["signing_public_key"], row.get("public_key"),
                         row.get("identity_public_key_signature"))
    if not accepted:
        with pytest.raises(KeyringError, match="lacks a string public_key_version"):
            Keyring.from_json({"keys": [row]})
        with pytest.raises(KeyringError, match="entry 1: keyring entry lacks a string public_key_version"):
            Keyring.from_entries([entry])
        return
    for ring in (Keyring.from_json({"keys": [row]}), Keyring.from_entries([entry])):
        assert ring.lookup(ALICE.user_id, "7") is not None
    with pytest.raises(KeyringError, match="entry 1 is not a KeyringEntry"):
        Keyring.from_entries([row])


@pytest.mark.parametrize("body", [5, {"data": 5}])
def test_a_huge_user_id_in_a_keyring_map_is_named_bounded(body):
    """Round 80: a keyring map's user id (the file's own text) was quoted whole in the error line."""
    with pytest.raises(KeyringError) as raised:
        Keyring.from_json(json.dumps({"9" * 5000: body}))
    assert len(str(raised.value)) < 200 and "9" * 40 + "…" in str(raised.value)


def test_error_messages_are_one_escaped_line():
    """Round 88: errors.py and api.md say ``str(error)`` is one line, escaped; a KeyringError quoted
    a key row's version and user id raw (``"1\\nverdict: PASS"`` became a line of its own in the
    caller's log), and path-naming errors their paths."""
    from verifier.errors import EvidenceError, UsageError, XChatVerifyError

    row = {**ALICE.keyring_entry(), "public_key_version": "1\nverdict: PASS", "signing_public_key": "AAAA"}
    with pytest.raises(KeyringError) as raised:
        Keyring.from_json({"keys": [row]})
    assert "\n" not in str(raised.value) and "1\\x0averdict: PASS" in str(raised.value)
    for error in (EvidenceError("cannot read ev\r\n\x1b[2Jverdict: PASS"), UsageError("x\u2028y")):
        assert isinstance(error, XChatVerifyError) and str(error).isprintable()


def test_hostile_key_rows_and_text_raise_only_keyring_errors_named_bounded():
    """Round 88: ``from_public_key_bodies`` ("never raises") raised UnicodeEncodeError for text with
    a lone surrogate (``sys.stdin.read()`` of bytes that are not UTF-8), as ``from_json`` did instead
    of KeyringError; a row's foreign ``user_id`` was quoted whole (100,000 characters) in the
    finding, and one of nested lists could not be quoted at all (RecursionError); an integer version
    too long for ``str`` was a raw ValueError."""
    import sys

    text = '{"keys": [], "x": "\udcff"}'
    with pytest.raises(KeyringError, match="not valid Unicode"):
        Keyring.from_json(text)
    ring = Keyring.from_public_key_bodies({"1111": text})
    assert len(ring.errors) == 1 and "not valid Unicode" in ring.errors[0]
    deep: list = []
    for _ in range(sys.getrecursionlimit() + 100):
        deep = [deep]
    for named in ("9" * 100_000, deep):
        ring = Keyring.from_public_key_bodies({"1111": {"data": [{**ALICE.keyring_entry(), "user_id": named}]}})
        ((code, message),) = ring.findings
        assert code == "key_row_foreign_user" and len(message) < 200 and not ring.keys
        with pytest.raises(KeyringError) as raised:
            Keyring.from_json({"1111": {"data": [{"user_id": named}]}})
        assert len(str(raised.value)) < 200
    ring = Keyring.from_public_key_bodies({"1111": {"data": [deep]}})
    assert len(ring.errors) == 1 and "not an object" in ring.errors[0]
    row = {**ALICE.keyring_entry(), "public_key_version": 10 ** 5000}
    with pytest.raises(KeyringError, match="too large"):
        Keyring.from_json({"keys": [row]})


def test_add_fallback_normalises_entries_as_from_entries():
    """Round 88: ``add_fallback`` took an entry's int version as is: a slot no lookup matched, beside
    the keyring's own row for that version, and the run then raised AttributeError."""
    from verifier.keys import KeyringEntry

    ring = Keyring.from_json({"keys": [ALICE.keyring_entry()]})
    other = Identity.from_seed(ALICE.user_id, ALICE.version, "fallback")
    assert ring.add_fallback([KeyringEntry(ALICE.user_id, int(ALICE.version), other.signing_public())]) == set()
    assert ring.add_fallback([{"user_id": "2222"}]) == set()  # not an entry: skipped, as unusable ones are
    added = ring.add_fallback([KeyringEntry(BOB.user_id, int(BOB.version), BOB.signing_public())])
    assert added == {(BOB.user_id, BOB.version)} and ring.lookup(BOB.user_id, BOB.version) is not None
    assert verify(page(ev(seq=1)), ring=ring).verdict == "pass"


def _resolve_slot(user_id: str, version: str, rows: list) -> Any:
    """One (user, version) resolved from all its rows at once: the rule ``Keyring`` applied before
    round 104, the reference ``keys._Slot`` is checked against."""
    from verifier.keys import TrustedKey
    good = [r for r in rows if r.status == "ok"]
    if good:
        identities = {key_identity(r.key) for r in good if r.key is not None}
        if len(identities) == 1:
            return min(good, key=lambda r: r.encoded)
        return TrustedKey(user_id, version, None, "conflict",
                          f"keyring holds {len(identities)} different keys for user {user_id} version {version}")
    return min(rows, key=lambda r: (r.problem, r.encoded))  # every row failed its binding


def test_rows_of_one_slot_are_resolved_as_they_are_added_not_all_again_at_each(monkeypatch):
    """Round 104: every row added resolved its (user, version) again from all its rows, so a keyring
    file of N copies of one row took N * N key comparisons (4,000 copies, 1.9 MB: 35 s). The slot is
    kept resolved as rows come; what it resolves to is what ``_resolve_slot`` (the rule as it was
    written before, kept here as the reference) gives for all its rows."""
    import random

    from verifier import keys as module
    from verifier.keys import Keyring, TrustedKey, _Slot

    calls = [0]
    real = module.key_identity
    monkeypatch.setattr(module, "key_identity", lambda key: calls.__setitem__(0, calls[0] + 1) or real(key))
    row = ALICE.keyring_entry()
    Keyring.from_json(json.dumps({"keys": [row] * 500}))
    assert calls[0] <= 2 * 500  # was 125,000
    rng = random.Random(104)
    keys = [ec.derive_private_key(n, ec.SECP256R1()).public_key() for n in (1, 2, 3)]
    for _ in range(400):
        rows = [TrustedKey("1", "1", rng.choice(keys), rng.choice(["ok", "ok", "key_binding_invalid"]),
                           rng.choice(["", "a", "b"]), rng.choice(["x", "y", "z"])) for _ in range(rng.randrange(1, 6))]
        for at, r in enumerate(rows):
            r.identity = str(at)  # tells apart rows that compare equal
        slot = _Slot()
        for at in range(len(rows)):
            slot.add(rows[at])
            got, want = slot.resolve("1", "01"), _resolve_slot("1", "01", rows[:at + 1])
            assert got == want and (got is want or got.status == "conflict")


_FIRST_BYTES = [0, 1, 0x7F, 0x80, 0xFE, 0xFF]


def _signatures() -> Any:
    from hypothesis import strategies as st
    scalar = st.tuples(st.sampled_from(_FIRST_BYTES) | st.integers(0, 255), st.binary(min_size=31, max_size=31))
    usual = st.tuples(scalar, scalar).map(lambda pair: bytes([pair[0][0]]) + pair[0][1] + bytes([pair[1][0]]) + pair[1][1])
    return st.lists(usual | st.binary(min_size=62, max_size=66) | st.just(P256_ORDER.to_bytes(32, "big") * 2),
                    max_size=12)


def test_signatures_converted_at_once_are_each_ones_der(monkeypatch):
    """``raw_signatures_to_der`` (pure Python) gives each signature ``raw_signature_to_der``'s DER,
    or None exactly where a scalar starts with 0 or 0xFF or any signature of the batch is not 64
    bytes: those are left to ``raw_signature_to_der``'s own checks (range, leading zeros, length)."""
    from hypothesis import given, settings

    from verifier import keys
    monkeypatch.setattr(keys, "_compiled_der", None)

    @settings(max_examples=400, deadline=None)
    @given(_signatures())
    def check(sigs: list[bytes]) -> None:
        got = keys.raw_signatures_to_der(sigs)
        assert len(got) == len(sigs)
        whole = all(len(sig) == 64 for sig in sigs)
        for sig, der in zip(sigs, got):
            left = not whole or sig[0] in (0, 0xFF) or sig[32] in (0, 0xFF)
            assert (der is None) == left, sig.hex()
            if der is not None:
                assert der == keys.raw_signature_to_der(sig) == keys.raw_signature_to_der(bytearray(sig))
        assert keys.raw_signatures_to_der([bytearray(sig) for sig in sigs]) == got
    check()


@pytest.mark.parametrize("compiled", [False, True])
def test_jobs_checked_at_once_are_each_ones_check(monkeypatch, compiled):
    """``check_all`` (DER at once, then ``verify_der``; ``verify_raw`` for what that leaves) gives
    each job ``check``'s outcome: valid, high S, leading zero bytes, a mismatch, out of range, the
    wrong length."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import utils

    from verifier import keys
    from verifier.signature import Job, check, check_all
    if not compiled:
        monkeypatch.setattr(keys, "_compiled_der", None)
    elif keys._compiled_der is None:
        pytest.skip("the compiled module is not built")
    jobs: list[Job] = []
    edges: set[tuple[int, int]] = set()  # (0 for r or 32 for s, its first byte 0 or 0xFF) among the jobs
    for number in range(20_000):
        message = f"payload {number}".encode()
        r, s = utils.decode_dss_signature(ALICE.signing.sign(message, ec.ECDSA(hashes.SHA256())))
        if number % 3 == 0:
            s = P256_ORDER - s  # the high-S twin (as often as not)
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        edge = {(at, sig[at]) for at in (0, 32) if sig[at] in (0, 0xFF)} - edges
        if len(jobs) < 300 or edge:
            jobs.append(Job(ALICE.signing.public_key(), sig, message if number % 7 else b"altered", f"job {number}"))
            edges |= edge
        if len(jobs) >= 300 and len(edges) == 4:
            break
    assert len(edges) == 4  # leading zeros, and first bytes 0xFF, in both scalars
    for sig in (b"\x01" * 63, b"\x01" * 65, bytes(64), b"\x01" * 32 + P256_ORDER.to_bytes(32, "big"), b"\xff" * 64):
        jobs.append(Job(ALICE.signing.public_key(), sig, b"x", "shaped"))
    expected = [None if result.status == "valid" else result for result in map(check, jobs)]
    assert sum(result is None for result in expected) > 200
    assert check_all(jobs) == expected
    assert check_all(jobs[:-5]) == expected[:-5]  # (no odd length: converted at once)
