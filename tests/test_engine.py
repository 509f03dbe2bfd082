"""Engine: signatures for every signed kind and version, keys, envelope checks, findings, verdicts."""

import base64
import copy
import json

import pytest
from helpers import (
    ALICE,
    BOB,
    CONV,
    MALLORY,
    chain_statuses,
    codes,
    ev,
    events_of,
    fixture,
    keyring,
    page,
    reencode,
    sig_statuses,
    verify,
)

import verifier
from verifier.engine import _NOT_THE_LAST
from verifier.testing.forge import Identity, forge_event, item_json
from verifier.wire import b64encode_nopad

CKEY = bytes(range(32))
PARTS = [{"user_id": "1111", "encrypted_conversation_key": "QUJD", "public_key_version": "1"},
         {"user_id": "2222", "encrypted_conversation_key": "REVG", "public_key_version": "7"}]
ALL = range(2, 8)
GMA_BODY = {"member_ids": ["31"], "current_member_ids": ["11", "22"], "current_admin_ids": ["11"],
            "current_title": "T", "current_avatar_url": "https://a/b", "current_ttl_msec": 60,
            "conversation_key_version": "42", "current_pending_member_ids": ["41"],
            "screen_capture_blocking_enabled": True,
            "group_invite_enable": {"invite_url": "https://x/i", "affiliate_id": "aff", "expires_at_msec": 99},
            "admin_settings": {"add_member": True}}

# kind, body, {field path: versions where signed}; paths absent from the map are unsigned everywhere.
CASES = [
    ("MessageCreateEvent", {"contents": b"\x07" * 45, "conversation_key_version": "1001", "should_notify": True,
                            "ttl_msec": 5}, {("contents",): ALL, ("conversation_key_version",): ALL}),
    ("ConversationKeyChangeEvent", {"conversation_key_version": "42", "conversation_participant_keys": PARTS,
                                    "for_key_rotation": True},
     {("conversation_participant_keys",): range(2, 6)}),
    ("MessageDeleteEvent", {"sequence_ids": ["5", "6"], "delete_message_action": 2},
     {("sequence_ids",): ALL, ("delete_message_action",): ALL}),
    ("ConversationDeleteEvent", {"conversation_id": CONV, "options": {"clear_all_messages": True,
                                                                       "sort_order_msec": 123}},
     {("options", "clear_all_messages"): ALL, ("options", "sort_order_msec"): ALL}),
    ("MarkConversationReadEvent", {"seen_until_sequence_id": "77", "seen_at_millis": 1700000050000},
     {("seen_until_sequence_id",): ALL, ("seen_at_millis",): ALL}),
    ("MarkConversationUnreadEvent", {"seen_until_sequence_id": "77"}, {("seen_until_sequence_id",): ALL}),
    ("GroupChangeEvent.GroupMemberAddChange", GMA_BODY,
     {("member_ids",): ALL, ("current_member_ids",): ALL, ("current_admin_ids",): ALL,
      ("current_title",): ALL, ("current_avatar_url",): ALL, ("current_ttl_msec",): ALL,
      ("conversation_key_version",): ALL, ("current_pending_member_ids",): range(3, 7),
      ("screen_capture_blocking_enabled",): range(5, 8), ("group_invite_enable", "invite_url"): [7],
      ("group_invite_enable", "affiliate_id"): [7], ("group_invite_enable", "expires_at_msec"): [7]}),
    ("GroupChangeEvent.GroupMemberRemoveChange", {"member_ids": ["31", "32"]}, {("member_ids",): ALL}),
    ("GroupChangeEvent.GroupAdminAddChange", {"admin_ids": ["31"]}, {("admin_ids",): ALL}),
    ("GroupChangeEvent.GroupAdminRemoveChange", {"admin_ids": ["31"]}, {("admin_ids",): ALL}),
    ("GroupChangeEvent.GroupTitleChange", {"custom_title": "Hi", "conversation_key_version": "42"},
     {("custom_title",): ALL, ("conversation_key_version",): ALL}),
    ("GroupChangeEvent.GroupAvatarUrlChange", {"custom_avatar_url": "https://i/a", "conversation_key_version": "4"},
     {("custom_avatar_url",): ALL, ("conversation_key_version",): ALL}),
    ("GroupChangeEvent.GroupCreate", {"member_ids": ["11", "22"], "admin_ids": ["11"], "title": "G",
                                      "avatar_url": "https://i/g", "conversation_key_version": "42",
                                      "is_legacy_group_upgrade": False, "ttl_msec": 9},
     {("member_ids",): ALL, ("conversation_key_version",): ALL, ("title",): range(4, 8),
      ("avatar_url",): range(4, 8), ("is_legacy_group_upgrade",): range(4, 8)}),
    ("GroupChangeEvent.GroupInviteEnable", {"invite_url": "https://x/i", "expires_at_msec": 99, "affiliate_id": "a"},
     {("invite_url",): ALL, ("expires_at_msec",): ALL, ("affiliate_id",): ALL}),
    ("GroupChangeEvent.GroupInviteDisable", {"disabled_by_member_id": "11"}, {("disabled_by_member_id",): ALL}),
    ("GroupChangeEvent.GroupJoinRequest", {"requesting_user_id": "55"}, {("requesting_user_id",): ALL}),
    ("GroupChangeEvent.GroupJoinReject", {"rejected_user_ids": ["55", "56"]}, {("rejected_user_ids",): ALL}),
    ("ConversationMetadataChangeEvent.MessageDurationChange", {"ttl_msec": 86400000, "apply_to_all_messages": True},
     {("ttl_msec",): ALL}),
    ("ConversationMetadataChangeEvent.MessageDurationRemove", {"current_ttl_msec": 5}, {}),
    ("ConversationMetadataChangeEvent.MuteConversation", {"muted_conversation_ids": ["a1"]},
     {("muted_conversation_ids",): ALL}),
    ("ConversationMetadataChangeEvent.UnmuteConversation", {"unmuted_conversation_ids": ["a1"]},
     {("unmuted_conversation_ids",): ALL}),
    ("ConversationMetadataChangeEvent.EnableScreenCaptureDetection", {"placeholder": "p"}, {}),
    ("ConversationMetadataChangeEvent.DisableScreenCaptureDetection", {"placeholder": "p"}, {}),
    ("ConversationMetadataChangeEvent.EnableScreenCaptureBlocking", {"placeholder": "p"}, {}),
    ("ConversationMetadataChangeEvent.DisableScreenCaptureBlocking", {"placeholder": "p"}, {}),
]


def _leaf_paths(value, prefix=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaf_paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaf_paths(v, prefix + (i,))
    else:
        yield prefix


def _one_byte_change(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, bytes):
        return value[:-1] + bytes([value[-1] ^ 1])
    last = value[-1]
    return value[:-1] + (chr(ord(last) ^ 1) if last not in ",-" else "z")


def _mutated(body, path):
    body = copy.deepcopy(body)
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = _one_byte_change(target[path[-1]])
    return body


def _status(forged, **kw):
    return sig_statuses(verify(page(forged), ring=keyring(ALICE), conversation_keys={"42": CKEY}, **kw))[0]


@pytest.mark.parametrize("version", ALL)
@pytest.mark.parametrize("kind,body,signed", CASES, ids=[c[0] for c in CASES])
def test_every_signed_field_is_bound_and_nothing_else(kind, body, signed, version):
    original = ev(kind, body, signature_version=str(version), conversation_keys={"42": CKEY})
    assert _status(original) == "valid"
    for path in _leaf_paths(body):
        tampered = copy.deepcopy(original)
        tampered.event.body = _mutated(body, path)
        expected_signed = any(version in signed.get(path[:n], ()) for n in range(1, len(path) + 1))
        status = _status(reencode(tampered))
        if kind == "ConversationKeyChangeEvent" and version >= 6 and path == ("conversation_key_version",):
            assert status == "needs_conversation_key"
        elif path == ("conversation_key_version",) and kind == "ConversationKeyChangeEvent":
            assert status == "invalid"
        else:
            assert status == ("invalid" if expected_signed else "valid"), (path, version)


@pytest.mark.parametrize("kind,body,signed", CASES, ids=[c[0] for c in CASES])
def test_envelope_components_are_bound(kind, body, signed):
    original = ev(kind, body, conversation_keys={"42": CKEY})
    for field, expected in (("message_id", "invalid"), ("sender_id", "unknown_key"),
                            ("conversation_id", "valid" if kind.endswith("GroupCreate") else "invalid")):
        tampered = copy.deepcopy(original)
        setattr(tampered.event, field, _one_byte_change(getattr(original.event, field)))
        assert _status(reencode(tampered)) == expected, field


def test_v6_key_change_with_wrong_conversation_key_is_invalid():
    forged = ev("ConversationKeyChangeEvent", {"conversation_key_version": "42"}, conversation_keys={"42": CKEY})
    report = verify(page(forged), ring=keyring(ALICE), conversation_keys={"42": bytes(32)})
    assert sig_statuses(report) == ["invalid"]


# ---------------------------------------------------------------- the official fixture
def _fixture_ring():
    f = fixture()
    return verifier.Keyring.from_json(json.dumps([{
        "user_id": "1111", "public_key_version": "1", "signing_public_key": f["signing_public_b64"],
        "public_key": f["identity_public_b64"],
        "identity_public_key_signature": f["identity_public_key_signature_b64"]}]))


def test_official_fixture():
    f = fixture()
    body = {"data": [{"encoded_event": f["event_message_b64"]}, {"encoded_event": f["event_failure_b64"]},
                     {"encoded_event": f["event_garbage_b64"]}, {"encoded_event": f["event_reply_valid_b64"]}],
            "meta": {"conversation_key_events": [f["event_key_change_b64"]]}}
    report = verify(body, ring=_fixture_ring())
    assert sig_statuses(report) == ["valid", "not_signed", "malformed", "valid", "needs_conversation_key"]
    with_key = verify(body, ring=_fixture_ring(),
                      conversation_keys={"1001": base64.b64decode(f["conversation_key_b64"])})
    assert sig_statuses(with_key)[4] == "valid"
    assert "invalid base64 character" in events_of(report)[2].signature.detail


def test_fixture_without_keys_is_unknown_key():
    assert sig_statuses(verify({"data": [{"encoded_event": fixture()["event_message_b64"]}]})) == ["unknown_key"]


# ---------------------------------------------------------------- keys
def test_embedded_key_without_keyring_verifies_and_says_so():
    report = verify(page(ev()))
    assert sig_statuses(report) == ["valid"] and report.key_source == "embedded"


def test_embedded_key_substitution_is_caught_by_keyring():
    forged = ev(sender=MALLORY)
    report = verify(page(forged), ring=keyring(ALICE))
    assert sig_statuses(report) == ["invalid"]
    assert "key_conflict" in codes(report)


def test_embedded_key_substitution_is_caught_across_events_without_keyring():
    report = verify(page(ev(seq=2, prev=1), ev(sender=MALLORY, seq=1)))
    assert sig_statuses(report) == ["valid", "valid"]
    assert report.verdict == "fail" and "key_conflict" in codes(report)


def test_unknown_key_and_allow_embedded():
    report = verify(page(ev(sender=BOB)), ring=keyring(ALICE))
    assert sig_statuses(report) == ["unknown_key"] and report.verdict == "fail"
    relaxed = verify(page(ev(sender=BOB)), ring=keyring(ALICE), allow_embedded_keys=True)
    assert sig_statuses(relaxed) == ["valid"] and "embedded_key_used" in codes(relaxed)
    assert relaxed.verdict == "pass" and verify(page(ev(sender=BOB)), ring=keyring(ALICE),
                                                 allow_embedded_keys=True, strict=True).verdict == "fail"


def test_bad_identity_binding():
    entry = {**ALICE.keyring_entry(), "identity_public_key_signature": b64encode_nopad(ALICE.sign(b"other"))}
    ring = verifier.Keyring.from_json(json.dumps([entry]))
    assert sig_statuses(verify(page(ev()), ring=ring)) == ["key_binding_invalid"]


@pytest.mark.parametrize("fmt", ["spki", "sec1", "sec1c"])
def test_keyring_key_encodings(fmt):
    assert sig_statuses(verify(page(ev()), ring=keyring(ALICE, fmt=fmt))) == ["valid"]


def test_key_rotation_two_versions_of_one_user():
    old, new = Identity.from_seed("1111", "100", "old"), Identity.from_seed("1111", "200", "new")
    report = verify(page(ev(sender=new, seq=2, prev=1), ev(sender=old, seq=1)), ring=keyring(old, new))
    assert sig_statuses(report) == ["valid", "valid"] and report.verdict == "pass"
    swapped = ev(sender=old, seq=1, key_version="200")
    assert sig_statuses(verify(page(swapped), ring=keyring(old, new))) == ["invalid"]


# ---------------------------------------------------------------- signature shapes and versions
@pytest.mark.parametrize("version,status", [("1", "unsupported_version"), ("0", "unsupported_version"),
                                            ("-1", "unsupported_version"), ("abc", "valid"), (None, "valid"),
                                            ("99", "valid")])
def test_versions(version, status):
    assert _status(ev(signature_version=version)) == status


def test_missing_signature_and_not_signed():
    assert _status(ev(sign=False)) == "missing_signature"
    typing = forge_event(ALICE, "MessageTypingEvent", {"conversation_id": CONV}, conversation_id=CONV,
                         sequence_id="5", sign=False)
    assert _status(typing) == "not_signed"


@pytest.mark.parametrize("transform,status", [
    (lambda raw: raw, "valid"), (lambda raw: raw[:63], "invalid"), (lambda raw: raw + b"\0", "invalid"),
])
def test_signature_lengths(transform, status):
    forged = ev()
    raw = base64.b64decode(forged.event.signature.signature + "==")
    forged.event.signature.signature = b64encode_nopad(transform(raw))
    assert _status(reencode(forged)) == status


def test_padded_signature_accepted_and_url_safe_rejected():
    forged = ev()
    sig = forged.event.signature.signature
    forged.event.signature.signature = sig + "=="
    assert _status(reencode(forged)) == "valid"
    forged.event.signature.signature = sig.replace("+", "-").replace("/", "_") + "-"
    assert _status(reencode(forged)) == "invalid"


def test_comma_in_component_is_unverifiable():
    forged = ev("GroupChangeEvent.GroupTitleChange", {"custom_title": "a,b", "conversation_key_version": "1"},
                sign=True, payload=b"x")
    assert _status(forged) == "unverifiable"


def test_unknown_event_kind():
    raw = bytearray(ev().raw)
    forged = ev()
    blob = b"\x0b\x00\x01\x00\x00\x00\x019" + b"\x0c\x00\x07\x0c\x00\x63\x00\x00" + b"\x00"
    report = verify({"data": [{"encoded_event": base64.b64encode(blob).decode()}]})
    assert sig_statuses(report) == ["not_signed"] and "unknown_event_type" in codes(report)
    assert raw and forged


# ---------------------------------------------------------------- envelope and findings
def test_envelope_mismatch_each_field():
    forged = ev(seq=3, prev=2)
    for field, value in (("sender_id", "9"), ("conversation_id", "1:9"), ("sequence_id", "4"),
                         ("previous_sequence_id", "1"), ("created_at_msec", "1"), ("is_trusted", False),
                         ("conversation_token", "tok"), ("id", "zzz")):
        item = item_json(forged)
        item[field] = value
        report = verify({"data": [item]}, ring=keyring(ALICE))
        assert "envelope_mismatch" in codes(report), field
        assert sig_statuses(report) == ["valid"]


def test_envelope_signature_copy_mismatch():
    item = item_json(ev())
    item["message_event_signature"]["signature_version"] = "6"
    report = verify({"data": [item]}, ring=keyring(ALICE))
    assert any("signature_version" in f.message for f in events_of(report)[0].findings)


def test_id_may_be_message_id_and_2167_shape_passes():
    forged = ev()
    item = item_json(forged, "2.167")
    assert "created_at" in item and "sequence_id" not in item
    assert verify({"data": [item]}, ring=keyring(ALICE)).verdict == "pass"
    item["id"] = forged.event.message_id
    assert verify({"data": [item]}, ring=keyring(ALICE)).verdict == "pass"
    item["created_at"] = "2026-01-01T00:00:00.000Z"
    assert "envelope_mismatch" in codes(verify({"data": [item]}, ring=keyring(ALICE)))


def test_conversation_mismatch():
    foreign = ev(seq=3, prev=2, conversation_id="1111:3333")
    report = verify(page(ev(seq=2, prev=1), foreign, ev(seq=1)), ring=keyring(ALICE))
    assert "conversation_mismatch" in codes(report) and report.verdict == "fail"
    ok = verify(page(ev(seq=1)), ring=keyring(ALICE), expected_conversation_id="2222-1111")
    assert ok.verdict == "pass"
    assert verify(page(ev(seq=1)), ring=keyring(ALICE), expected_conversation_id="g1").verdict == "fail"


def test_untrusted_is_a_warning():
    report = verify(page(ev(is_trusted=False)), ring=keyring(ALICE))
    assert report.verdict == "pass" and "untrusted" in codes(report)
    assert events_of(report)[0].trusted is False
    assert verify(page(ev(is_trusted=False)), ring=keyring(ALICE), strict=True).verdict == "fail"


def test_api_errors_are_reported_and_strict_fails():
    body = page(ev(), errors=[{"title": "Field Authorization Error", "detail": "x",
                               "type": "https://api.x.com/2/problems/not-authorized-for-field"}])
    report = verify(body, ring=keyring(ALICE))
    assert report.inputs[0].api_errors[0]["title"] == "Field Authorization Error" and report.verdict == "pass"
    assert verify(body, ring=keyring(ALICE), strict=True).verdict == "fail"


@pytest.mark.parametrize("meta, errors, reasons", [
    pytest.param({}, None, [], id="an-ordinary-last-page"),
    pytest.param({"next_token": "t2"}, None, [_NOT_THE_LAST], id="a-next-token"),
    pytest.param({"has_more": True}, None, ["p: meta.has_more is true but there is no next_token"],
                 id="has-more-without-a-token"),
    pytest.param({"has_more": "true"}, None,
                 ["p: meta.has_more is a string, not a boolean, and there is no next_token"],
                 id="has-more-not-a-boolean"),
    pytest.param({"has_more": False}, None, [], id="has-more-false"),
    pytest.param({"next_token": 7}, None, ["p: meta.next_token is a int, not text"],
                 id="a-token-that-is-not-text"),
    pytest.param({}, [{"title": "Not Found Error", "detail": "x", "type": "about:blank"}],
                 ["p: the API reported events it did not return: Not Found Error - x"], id="events-left-out"),
    pytest.param({}, [{"detail": "y", "type": "https://api.x.com/2/problems/field-hydration-failure"}], [],
                 id="a-field-level-error"),
])
def test_what_a_page_says_of_the_history_s_end(meta, errors, reasons):
    body = {**page(ev()), "meta": meta, **({"errors": errors} if errors else {})}
    report = verifier.verify_pages([verifier.PageInput("p", json.dumps(body).encode())], keyring(ALICE))
    (conv,) = report.conversations
    assert [f.message for f in conv.findings] == [f"history not fetched to its end: {r}" for r in reasons]
    assert conv.complete is (not reasons) and report.verdict == ("fail" if reasons else "pass")
    partial = verifier.verify_pages([verifier.PageInput("p", json.dumps(body).encode())], keyring(ALICE),
                                    allow_partial=True)
    assert partial.verdict == "pass"


def test_an_empty_last_page_ends_the_only_conversation_it_can_belong_to():
    first = {**page(ev(seq=2, prev=1), ev(seq=1)), "meta": {"next_token": "t2"}}  # down to the first event
    last = {"data": [], "meta": {"result_count": 0}}
    assert verifier.verify_pages([first, last], keyring(ALICE)).verdict == "pass"
    other = {**page(ev(seq=5, conversation_id="1111:3333")), "meta": {"next_token": "t9"}}
    report = verifier.verify_pages([first, other, last], keyring(ALICE))  # whose last page: not known
    assert [c.complete for c in report.conversations] == [False, False] and report.verdict == "fail"


def test_an_empty_last_page_does_not_hide_a_missing_page_before_it():
    """Second review: page 1 (next_token set) and an empty last page passed, complete, though the
    page between them was missing: the empty page ends the history only if it reaches an event that
    claims to be the first."""
    newest = {**page(ev(seq=6, prev=5), ev(seq=5, prev=4)), "meta": {"next_token": "t3"}}
    last = {"data": [], "meta": {"result_count": 0}}
    report = verifier.verify_pages([newest, last], keyring(ALICE))
    (conv,) = report.conversations
    assert not conv.complete and report.verdict == "fail"
    assert [f.message for f in conv.findings] == [f"history not fetched to its end: {_NOT_THE_LAST}"]


def test_wrong_json_types_are_per_event_findings():
    good, bad = ev(seq=2, prev=1), ev(seq=1)
    body = page(good, bad)
    body["data"][1]["sequence_id"] = 12345
    report = verify(body, ring=keyring(ALICE))
    assert sig_statuses(report) == ["valid", "valid"]
    assert any("Expected `str | null`, got `int` - at `$.sequence_id`" in f.message for f in events_of(report)[1].findings)
    body["data"][1] = "not an object"
    assert sig_statuses(verify(body, ring=keyring(ALICE)))[1] == "malformed"


@pytest.mark.parametrize("body,reason", [
    (b"[1, 2]", "not a JSON object"), (b"{\"data\": 5}", "`data` is a int"), (b"nope", "not a JSON object"),
    (b"{\"meta\": []}", "`meta` is a list"),
])
def test_page_level_problems(body, reason):
    report = verify(verifier.PageInput("p.json", body))
    assert not report.complete and reason in report.inputs[0].errors[0] and report.verdict == "fail"


def test_legacy_meta_name_and_duplicate_key_change_is_info():
    kc = ev("ConversationKeyChangeEvent", {"conversation_key_version": "42"}, seq=1, conversation_keys={"42": CKEY})
    body = page(ev(seq=2, prev=1), kc)
    body["meta"] = {"missing_conversation_key_change_events": [kc.b64]}
    report = verify(body, ring=keyring(ALICE), conversation_keys={"42": CKEY})
    assert chain_statuses(report) == ["linked", "start", "duplicate"]
    assert verify(body, ring=keyring(ALICE), conversation_keys={"42": CKEY}, strict=True).verdict == "pass"


def test_repeated_message_is_warning_duplicate():
    e1 = ev(seq=1)
    report = verify(page(e1), page(e1), ring=keyring(ALICE))
    assert chain_statuses(report) == ["start", "duplicate"] and report.verdict == "pass"
    assert verify(page(e1), page(e1), ring=keyring(ALICE), strict=True).verdict == "fail"


def test_pages_in_any_order_same_result():
    events = [ev(seq=i, prev=i - 1 if i > 1 else None) for i in range(1, 8)]
    pages = [page(*reversed(events[4:])), page(*reversed(events[:4]))]
    a, b = verify(*pages, ring=keyring(ALICE)), verify(*reversed(pages), ring=keyring(ALICE))
    key = lambda r: sorted((e.sequence_id, e.chain.status, e.signature.status) for e in events_of(r))
    assert key(a) == key(b) and a.verdict == b.verdict == "pass"


def test_threaded_and_inline_agree():
    events = [ev(seq=i, prev=i - 1 if i > 1 else None) for i in range(1, 700)]
    events[300] = reencode(copy.deepcopy(events[300]))
    events[300].event.body["contents"] = b"\x00" * 45
    events[300] = reencode(events[300])
    body = page(*events)
    threaded = verify(body, ring=keyring(ALICE), workers=4)
    inline = verify(body, ring=keyring(ALICE), workers=1)
    assert sig_statuses(threaded) == sig_statuses(inline)
    assert sig_statuses(inline).count("invalid") == 1


def test_report_json_contract():
    report = verify(page(ev()), ring=keyring(ALICE))
    data = report.to_dict()
    assert data["schema"] == "xchat-verify/report/v1" and data["verdict"] == "pass"
    event = data["conversations"][0]["events"][0]
    assert set(event) == {"index", "sequence_id", "previous_sequence_id", "message_id", "sender_id", "event_type",
                          "signature", "chain", "trusted", "findings", "key_version", "created_at_msec"}
    assert (event["key_version"], event["created_at_msec"]) == (ALICE.version, "1784841001000")
    assert set(data) == {"schema", "verdict", "conversations", "strict", "key_source", "inputs", "findings", "proof"}
    assert set(data["conversations"][0]) == {"conversation_id", "verdict", "counts", "events", "findings", "complete"}
    assert set(data["conversations"][0]["counts"]) >= {"valid", "invalid", "linked", "gap", "cycle"}


def test_public_api_is_importable_and_documented():
    import inspect
    import re
    import subprocess
    import sys

    from verifier import errors
    api_doc = (__import__("helpers").REPO / "docs" / "api.md").read_text()
    for name in verifier.__all__:
        assert getattr(verifier, name) is not None
        assert f"`{name}" in api_doc or f"verifier.{name}" in api_doc, f"{name} is not documented in docs/api.md"
    # the errors table names every error class with the exit code the CLI gives it
    table = dict(re.findall(r"^\| `(\w+)`.*\| (\d|—) \|$", api_doc, re.M))
    for name, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, errors.XChatVerifyError) and name in errors.__dict__ and cls.__module__ == errors.__name__:
            assert name in table or any(name in row for row in re.findall(r"^\|.*$", api_doc, re.M)), name
    assert table["UsageError"] == "2" and table["InputError"] == "3" and table["FetchError"] == "3"
    assert errors.UsageError.exit_code == 2 and errors.InputError.exit_code == 3 and errors.FetchError.exit_code == 3
    # `import verifier` loads no HTTP stack; the client is imported on first use
    code = "import sys, verifier; assert 'httpx' not in sys.modules; verifier.XChatClient; assert 'httpx' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_workers_follow_the_cpus_the_process_may_use(monkeypatch):
    """taskset and cgroups limit the CPUs: os.cpu_count() ignores them, sched_getaffinity does not."""
    import os

    from verifier.engine import default_workers, usable_cpus
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    assert usable_cpus() == 1 and default_workers() == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(32)))
    assert usable_cpus() == 32 and default_workers() == 8  # threads are capped, the count is not


@pytest.mark.parametrize("body, error", [
    ('{"data":[{"encoded_event":"\ud800"}]}',
     "not a JSON object: text that is not valid Unicode (surrogates not allowed at position 27)"),
    ({"data": [{"encoded_event": "\ud800"}]},
     "not a JSON object: text that is not valid Unicode (surrogates not allowed at position 0)"),
    ({"data": [object()]}, "not a JSON object: Encoding objects of type object is unsupported"),
    (5, "not a page body: int (expected JSON text, bytes or a dict)"),
    (None, "not a page body: NoneType (expected JSON text, bytes or a dict)"),
    ([1], "not a page body: list (expected JSON text, bytes or a dict)"),
])
def test_pages_the_library_cannot_read_are_input_errors_not_exceptions(body, error):
    """Review: these raised (UnicodeEncodeError, TypeError) out of ``verify_pages``; the next page is still read."""
    report = verifier.verify_pages([body, page(ev(seq=1))], keyring(ALICE))
    assert report.inputs[0].errors == [error]
    assert [e.signature.status for e in events_of(report)] == ["valid"] and report.verdict == "fail"


def test_an_empty_last_page_that_names_the_conversation_does_not_hide_a_missing_page_either():
    """Third review: with ``expected_conversation_id`` (or a ``PageInput`` naming the conversation)
    the empty last page ended the history at once, six of nine events missing."""
    newest = {**page(ev(seq=6, prev=5), ev(seq=5, prev=4)), "meta": {"next_token": "t3"}}
    last = {"data": [], "meta": {"result_count": 0}}
    for pages, options in (([newest, last], {"expected_conversation_id": CONV}),
                           ([verifier.PageInput("p1", json.dumps(newest), CONV),
                             verifier.PageInput("p3", json.dumps(last), CONV)], {})):
        report = verifier.verify_pages(pages, keyring(ALICE), **options)
        assert [c.complete for c in report.conversations] == [False] and report.verdict == "fail"
    whole = {**page(ev(seq=2, prev=1), ev(seq=1)), "meta": {"next_token": "t2"}}  # reaches the first event
    assert verifier.verify_pages([whole, last], keyring(ALICE), expected_conversation_id=CONV).verdict == "pass"


def test_a_last_page_of_key_changes_in_meta_alone_does_not_hide_a_missing_page():
    """Review 30: a last page with ``data: []`` and the conversation's key change in ``meta`` (what an
    honest oldest page may look like) counted as a last page *with events* and ended the history,
    though the page between it and page 1 was missing."""
    kc = ev("ConversationKeyChangeEvent", {"conversation_key_version": "42"}, seq=1, conversation_keys={"42": bytes(32)})
    newest = {**page(ev(seq=6, prev=5), ev(seq=5, prev=4)), "meta": {"next_token": "t3"}}
    last = page(meta_events=[kc])
    report = verifier.verify_pages([newest, last], keyring(ALICE), conversation_keys={"42": bytes(32)})
    (conv,) = report.conversations
    assert not conv.complete and report.verdict == "fail"
    assert [f.message for f in conv.findings] == [f"history not fetched to its end: {_NOT_THE_LAST}"]
    whole = {**page(ev(seq=3, prev=2), ev(seq=2)), "meta": {"next_token": "t2"}}  # reaches the first event
    assert verifier.verify_pages([whole, last], keyring(ALICE), conversation_keys={"42": bytes(32)}).verdict == "pass"


def test_an_empty_history_of_a_named_conversation_is_ended_by_its_empty_last_page():
    """Code review: an empty last page naming the conversation said "none of its pages is the last
    one" (false) and failed even with ``allow_empty``; a conversation without a data event has no
    page before its last one to miss."""
    empty = {"data": [], "meta": {"result_count": 0}}
    for pages, options in (([empty], {"expected_conversation_id": CONV}),
                           ([verifier.PageInput("p", json.dumps(empty), CONV)], {})):
        report = verifier.verify_pages(pages, keyring(ALICE), allow_empty=True, **options)
        assert report.verdict == "pass" and report.complete and "incomplete" not in codes(report)
        failed = verifier.verify_pages(pages, keyring(ALICE), **options)  # still not a pass without allow_empty
        assert failed.verdict == "fail" and "no_events" in {f.code for f in failed.findings}
    more = {"data": [], "meta": {"result_count": 0, "next_token": "t2"}}  # not the last page: incomplete
    report = verifier.verify_pages([more], keyring(ALICE), allow_empty=True, expected_conversation_id=CONV)
    assert report.verdict == "fail" and not report.conversations[0].complete


def test_a_page_file_given_twice_says_what_it_lacks_once():
    """Code review: ``archive verify p.json p.json`` listed the page's reason twice, ``verify`` once."""
    body = json.dumps({**page(ev(seq=2, prev=1), ev(seq=1)), "meta": {"has_more": True}})
    report = verifier.verify_pages([verifier.PageInput("p", body), verifier.PageInput("p", body)], keyring(ALICE))
    (conv,) = report.conversations
    assert [f.message for f in conv.findings if f.code == "incomplete"] == \
        ["history not fetched to its end: p: meta.has_more is true but there is no next_token"]


def test_finish_refuses_a_keyring_other_than_the_expected_one():
    """Review 51: ``expect_keyring(A)`` then ``finish(B)`` checked with A and reported B (a pass with a
    keyring that trusts nobody). Any other keyring, None included, is a UsageError; the same passes."""
    ring, nobody = keyring(ALICE), keyring()
    for given in (nobody, None, keyring(ALICE, BOB)):  # (round 88: one of the same rows, a copy, is the same)
        v = verifier.Verification()
        v.expect_keyring(ring)
        v.add_page(page(ev(seq=1)))
        with pytest.raises(verifier.UsageError, match="another keyring than expect_keyring"):
            v.finish(given)
        with pytest.raises(verifier.UsageError, match="another keyring"):
            v.check_part(given)
    for same in (ring, keyring(ALICE)):
        v = verifier.Verification()
        v.expect_keyring(ring)
        v.add_page(page(ev(seq=1)))
        report = v.finish(same)
        assert report.verdict == "pass" and v.keyring is same


def test_a_verification_finishes_once_and_takes_nothing_after():
    """Round 88: a page added after ``finish`` was reported with a check it never had (a forged
    signature ``valid``: the row's check code 0 read the last check made), and ``finish(B)`` after
    ``finish(A)`` (or ``check_part(A)``) reported B's trust for A's checks (a keyring trusting
    nobody passed). A second ``finish``, a page or an input error after it, and another keyring
    after ``check_part`` are ``UsageError``s."""
    ring, nobody = keyring(ALICE), keyring()
    forged = ev(seq=2, prev=1, signer=MALLORY)
    for expect in (False, True):
        v = verifier.Verification()
        if expect:
            v.expect_keyring(ring)
        v.add_page(page(ev(seq=1)))
        assert v.finish(ring).verdict == "pass"
        with pytest.raises(verifier.UsageError, match="add_page after finish"):
            v.add_page(page(forged))
        for late, args in ((v.add_input_error, ("p", "lost")), (v.mark_incomplete, (CONV, "cut")),
                           (v.expect_conversation, (CONV,))):
            with pytest.raises(verifier.UsageError, match="after finish"):
                late(*args)
        for again in (ring, nobody):
            with pytest.raises(verifier.UsageError, match="called already"):
                v.finish(again)
    assert verifier.verify_pages([page(ev(seq=1)), page(forged)], ring).verdict == "fail"
    v = verifier.Verification()
    v.add_page(page(ev(seq=1)))
    v.check_part(ring)
    with pytest.raises(verifier.UsageError, match="add_page after check_part"):
        v.add_page(page(forged))
    with pytest.raises(verifier.UsageError, match="another keyring"):
        v.finish(nobody)
    assert v.finish(ring).verdict == "pass"


def test_a_pickled_verification_keeps_its_keyring_expectation():
    """Round 88: ``__getstate__`` dropped the expectation (a Keyring object's identity does not
    travel), so an unpickled Verification after ``expect_keyring(A)`` or ``check_part(A)`` took
    ``finish(B)``: a keyring trusting nobody passed signatures checked with A. An equal keyring
    (A itself, or A unpickled) is still accepted."""
    import pickle

    ring, nobody = keyring(ALICE), keyring()
    for step in ("expect", "check_part"):
        v = verifier.Verification(workers=1)
        if step == "expect":  # (a check still pending holds a key object, which does not pickle)
            v.expect_keyring(ring)
            v.add_page(page(ev(seq=1, sign=False)))
        else:
            v.add_page(page(ev(seq=1)))
            v.check_part(ring)
        for other in (nobody, None, keyring(BOB)):
            with pytest.raises(verifier.UsageError, match="another keyring"):
                pickle.loads(pickle.dumps(v)).finish(other)
        for same in (ring, pickle.loads(pickle.dumps(ring))):
            report = pickle.loads(pickle.dumps(v)).finish(same)
            assert report.verdict == ("pass" if step == "check_part" else "fail")


def test_a_part_concludes_only_once_checked():
    """Round 88: api.md said that after ``expect_keyring`` the signatures "were checked as pages were
    added"; they are checked in batches, and a part concluded without ``check_part`` reported a
    pending forged event with the last check made (``valid`` after a batch of valid ones)."""
    ring = keyring(ALICE)
    v = verifier.Verification(workers=1)
    v.expect_keyring(ring, facts=False)
    v.add_page(page(ev(seq=1)))
    v._run._check_jobs()  # a batch checked as pages arrive: the latest check made is `valid`...
    v.add_page(page(ev(seq=2, prev=1, signer=MALLORY)))  # ...and this forged event waits for the next
    for late in (lambda: v.conclude_part(ring, None, {}, {}), lambda: v.take([CONV])):
        with pytest.raises(verifier.UsageError, match="before check_part"):
            late()
    v.check_part(ring)
    with pytest.raises(verifier.UsageError, match="another keyring"):
        v.conclude_part(keyring(), None, {}, {})
    reports, _ = v.conclude_part(ring, None, {}, {})
    assert [e.signature.status for e in reports[CONV].events] == ["valid", "invalid"]


def test_a_signature_never_checked_fails_closed():
    """Round 88, defence in depth: a row whose check never ran read as the last check made (a
    forged event ``valid``); whatever path leaves one, it is ``unverifiable``."""
    ring = keyring(ALICE)
    v = verifier.Verification(workers=1)
    v.expect_keyring(ring, facts=False)
    v.add_page(page(ev(seq=1)))
    v._run._check_jobs()
    v.add_page(page(ev(seq=2, prev=1, signer=MALLORY)))
    v._run.signatures_checked = True  # a path that forgot the pending checks
    reports, _ = v.conclude_part(ring, None, {}, {})
    assert [e.signature.status for e in reports[CONV].events] == ["valid", "unverifiable"]
    assert reports[CONV].verdict == "fail"


def test_one_page_input_or_no_sequence_is_a_usage_error_and_a_path_labels_a_page():
    """Round 88: ``verify_pages(PageInput(...))``, ``verify_pages(None)`` raised TypeError; a
    ``PageInput`` labelled with a ``Path`` (the file it was read from) raised AttributeError."""
    from pathlib import Path

    for one in (verifier.PageInput("p", page(ev(seq=1))), None, 5):
        with pytest.raises(verifier.UsageError, match="takes a sequence of pages"):
            verifier.verify_pages(one, keyring(ALICE))
    report = verifier.verify_pages([verifier.PageInput(Path("pages/p1.json"), page(ev(seq=1)))], keyring(ALICE))
    assert report.verdict == "pass" and report.inputs[0].source == "pages/p1.json"


def test_pages_added_from_several_threads_are_taken_one_at_a_time():
    """Round 88: four threads adding pages to one Verification at once (a pipeline's fetchers)
    corrupted its columns: IndexErrors in the threads and pages lost from the report."""
    import sys
    import threading

    pages = [page(*(ev(seq=at, prev=at - 1 if at > 1 else None) for at in range(first, first + 5)))
             for first in range(1, 201, 5)]
    alone = verifier.verify_pages(pages, keyring(ALICE))
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        v, failures = verifier.Verification(), []

        def add(chunk):
            try:
                for body in chunk:
                    v.add_page(body)
            except Exception as exc:  # pragma: no cover - what the test is about
                failures.append(exc)
        threads = [threading.Thread(target=add, args=(pages[i::4],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    report = v.finish(keyring(ALICE))
    assert failures == [] and report.verdict == alone.verdict == "pass" and report.proof == alone.proof


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_parsed_page_holding_nan_is_read_as_its_text_is(value):
    """Round 88: ``json.loads`` reads NaN and the infinities (``Infinity`` or an overflowing
    ``1e999``); the parsed page was encoded again with them as null, so ``"has_more": NaN`` (judged
    like true, as any non-boolean, in the page's text: incomplete) gave a complete history and a pass
    where the CLI failed (exit 3). They are written back as read: NaN makes the page unreadable, an
    infinity is an overflowing number (an error where the page is read, ignored elsewhere)."""
    from verifier.model import exit_code

    body = json.dumps({**page(ev(seq=1)), "meta": {"has_more": "X", "result_count": 1}}).replace('"X"', value)
    for given in (body, json.loads(body)):
        report = verifier.verify_pages([given], keyring(ALICE))
        assert report.verdict == "fail" and exit_code(report) == 3
    aside = json.dumps({**page(ev(seq=1)), "x": ["X"]}).replace('"X"', value)
    verdicts = {verifier.verify_pages([given], keyring(ALICE)).verdict for given in (aside, json.loads(aside))}
    assert verdicts == ({"pass"} if value == "1e999" else {"fail"} if value == "NaN" else {"pass", "fail"})


def test_event_facts_and_credit_end_take_conversation_ids_in_any_form():
    """Round 88: ``event_facts(["2222-1111"])`` selected nothing (the report says ``1111:2222``), and
    with ``record_audit`` a ledger then recorded none of the events; one id given alone was taken a
    character at a time by both."""
    v = verifier.Verification()
    v.add_page(page(ev(seq=1)))
    v.finish(keyring(ALICE))
    assert len(v.event_facts(["2222-1111"])) == len(v.event_facts([CONV])) == 1
    for call in (v.event_facts, v.credit_end):
        with pytest.raises(verifier.UsageError, match="takes a sequence of conversation ids"):
            call(CONV)
    walked = verifier.Verification(judge_paging=False)
    walked.add_page(page(ev(seq=1), meta={"next_token": "t"}))
    walked.credit_end(["2222-1111"])
    assert walked.ended_conversations() == {CONV}


def test_a_keyring_that_is_not_a_keyring_is_a_usage_error():
    """Round 88: the keyring's parsed JSON (a dict) given as the keyring failed deep in the run
    with an AttributeError."""
    ring_json = {"keys": [ALICE.keyring_entry()]}
    with pytest.raises(verifier.UsageError, match="must be a verifier.Keyring"):
        verifier.verify_pages([page(ev(seq=1))], ring_json)
    v = verifier.Verification()
    with pytest.raises(verifier.UsageError, match="must be a verifier.Keyring"):
        v.expect_keyring(ring_json)
    v.add_page(page(ev(seq=1)))
    for call in (v.check_part, v.finish):
        with pytest.raises(verifier.UsageError, match="must be a verifier.Keyring"):
            call(ring_json)


def test_absorb_takes_only_a_part_checked_with_the_expected_keyring():
    """Round 88: api.md says a part and the run absorbing it must expect the same keyring; nothing
    checked it, so a part checked with A, absorbed into a run expecting B, was reported as checked
    with B (a keyring trusting nobody passed)."""
    import pickle

    ring, nobody = keyring(ALICE), keyring()

    def part(checked_with):
        p = verifier.Verification(workers=1)
        p.expect_keyring(checked_with, facts=False)
        p.add_page(page(ev(seq=1)))
        p.check_part(checked_with)
        return pickle.loads(pickle.dumps(p))  # as a worker process hands it back

    for expected, checked in ((nobody, ring), (ring, nobody), (None, ring)):
        whole = verifier.Verification()
        if expected is not None:
            whole.expect_keyring(expected, facts=False)
        with pytest.raises(verifier.UsageError, match="absorb"):
            whole.absorb(part(checked))
    whole = verifier.Verification()
    whole.expect_keyring(ring, facts=False)
    whole.absorb(part(keyring(ALICE)))  # an equal keyring: the worker's is a copy
    assert whole.finish(ring).verdict == "pass"


def test_a_parsed_page_nested_too_deep_is_an_input_error():
    """Round 88: a page given as a parsed dict (api.md: "parsed dicts") is encoded again, and one
    nested deeper than the stack left (a hostile body ``json.loads`` read, ``verify_pages`` called
    from deeper in the caller's stack; or a cyclic object) raised a raw ``RecursionError``. It is an
    input error of that page, as the same body as bytes is; the other pages are still verified."""
    deep: list = []
    inner = deep
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]
    cyclic: dict = {"data": []}
    cyclic["meta"] = cyclic
    ring = keyring(ALICE)
    for bad in ({**page(ev(seq=2, prev=1)), "x": deep}, cyclic):
        report = verifier.verify_pages([bad, page(ev(seq=1))], ring)
        assert report.verdict == "fail" and not report.complete
        assert report.inputs[0].errors == ["JSON nested too deeply to read"]
        assert sig_statuses(report) == ["valid"]


def test_misuse_raises_usage_errors_and_every_documented_error_is_exported():
    """Review 51: misuse raised ValueError, KeyError or IndexError, outside ``XChatVerifyError``;
    ``ResumeRefused`` and ``MalformedEvent`` were not importable from ``verifier`` as api.md says."""
    from verifier import errors
    from verifier.parallel import verify_files
    from verifier.report import render

    documented = ["XChatVerifyError", "UsageError", "ConfigError", "ResumeRefused", "InputError", "KeyringError",
                  "IdentityKeyError", "EvidenceError", "ManifestError", "MalformedEvent", "ClusterError",
                  "LedgerError", "FetchError", "HTTPStatusError", "AuthError", "RateLimitError", "NetworkError"]
    for name in documented:
        assert getattr(verifier, name) is getattr(errors, name) and name in verifier.__all__
    ring = keyring(ALICE)
    v = verifier.Verification()
    v.add_page(page(ev(seq=1)))
    with pytest.raises(verifier.UsageError, match="before the first page"):
        v.expect_keyring(ring)
    with pytest.raises(verifier.UsageError, match="unknown report format 'yaml': one of text"):
        render(v.finish(ring), "yaml")
    v = verifier.Verification()
    v.expect_keyring(ring, facts=False)
    v.add_page(page(ev(seq=1)))
    v.finish(ring)
    with pytest.raises(verifier.UsageError, match="facts=False"):
        v.event_facts()
    with pytest.raises(verifier.UsageError, match="default reviewers only"):
        verify_files([], ring, 1 << 20, 2, {"reviewers": ()})


def test_star_import_loads_no_http_stack():
    """Review 51: ``from verifier import *`` imported the lazy network names, and httpx with them."""
    import subprocess
    import sys

    code = ("import sys\nfrom verifier import *\nassert 'httpx' not in sys.modules, 'httpx'\n"
            "assert 'verify_pages' in dir() and 'XChatClient' not in dir()\n"
            "import verifier\nassert 'XChatClient' in dir(verifier) and 'httpx' not in sys.modules\n"
            "from verifier import XChatClient, audit_conversation\nassert 'httpx' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_check_all_is_check_with_valid_outcomes_left_out():
    """``signature.check_all`` (the engine's batches): None for each valid job, else ``check``'s
    Check, in order; the engine codes the valid ones by their detail."""
    from verifier.signature import Job, check, check_all
    key = ALICE.signing.public_key()
    good = Job(key, ALICE.sign(b"payload"), b"payload", "v7, key 1111/1")
    jobs = [good, Job(key, good.signature, b"payloaD", "v7, key 1111/1", "; a note"),
            Job(key, good.signature[:63], b"payload", "v7, key 1111/1"), good,
            Job(BOB.signing.public_key(), good.signature, b"payload", "v7, key 2222/7")]
    assert check_all(jobs) == [None if check(job).status == "valid" else check(job) for job in jobs]
    assert [outcome is None for outcome in check_all(jobs)] == [True, False, False, True, False]
    assert check_all([]) == []


def test_sha256_all_is_each_texts_own_digest():
    """``keys.sha256_all`` copies one empty hash object for each text: the copies never share state,
    and the empty object stays empty (two calls, texts of every length around a block)."""
    import hashlib

    from verifier.keys import sha256_all
    texts = [b"", b"a", bytes(range(256)) * 3, b"x" * 55, b"x" * 56, b"x" * 64, b"x" * 65]
    expected = b"".join(hashlib.sha256(text).digest() for text in texts)
    assert sha256_all(texts) == expected and sha256_all(list(reversed(texts))) == b"".join(
        hashlib.sha256(text).digest() for text in reversed(texts))
    assert sha256_all(texts) == expected and sha256_all([]) == b""
