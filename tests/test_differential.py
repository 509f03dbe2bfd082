"""Differential tests against the official SDK: what it signs verifies here; what it rejects, we reject."""

import base64
import json

import chat_xdk  # noqa: E402,F401  (in the test extra: missing it must fail, not skip)
import pytest
from sdk_oracle import keyring_json, sdk_chat, sdk_events, sdk_judge

import verifier
from verifier.testing.forge import encode_event
from verifier.wire import decode_event_bytes


@pytest.fixture(scope="module")
def signed():
    chat = sdk_chat()
    events, keys = sdk_events(chat)
    return chat, events, keys


def ours(raw: bytes, keys) -> str:
    body = {"data": [{"encoded_event": base64.b64encode(raw).decode()}]}
    report = verifier.verify_pages([body], verifier.Keyring.from_json(keyring_json()), conversation_keys=keys)
    return report.conversations[0].events[0].signature.status


def test_everything_the_sdk_signs_verifies_here(signed):
    chat, events, keys = signed
    kinds = set()
    for label, raw in events:
        b64 = base64.b64encode(raw).decode()
        assert sdk_judge(chat, b64, keys) == "valid", label
        assert ours(raw, keys) == "valid", label
        kinds.add(decode_event_bytes(raw).kind)
    assert {"MessageCreateEvent", "ConversationKeyChangeEvent", "GroupChangeEvent.GroupCreate",
            "GroupChangeEvent.GroupMemberAddChange", "MessageDeleteEvent"} <= kinds


def _mutations(raw: bytes):
    event = decode_event_bytes(raw)
    body = event.body
    if "contents" in body:
        yield "ciphertext bit", "contents", bytes([body["contents"][0] ^ 1]) + body["contents"][1:]
    if "sequence_ids" in body:
        yield "deleted id", "sequence_ids", body["sequence_ids"][:-1] + ["7"]
    if "member_ids" in body:
        yield "member", "member_ids", body["member_ids"] + ["9999"]
    if "conversation_key_version" in body:
        yield "key version", "conversation_key_version", body["conversation_key_version"] + "1"
    yield "message id", "message_id", "x" + event.message_id[1:]
    yield "version 1", "signature_version", "1"
    yield "version 0", "signature_version", "0"
    yield "key version swap", "public_key_version", "2"
    yield "signature bit", "signature", None


def _apply(raw: bytes, target: str, value) -> bytes:
    event = decode_event_bytes(raw)
    if target in ("message_id",):
        setattr(event, target, value)
    elif target in ("signature_version", "public_key_version"):
        setattr(event.signature, target, value)
    elif target == "signature":
        sig = bytearray(base64.b64decode(event.signature.signature + "=="))
        sig[10] ^= 0x40
        event.signature.signature = base64.b64encode(bytes(sig)).decode().rstrip("=")
    else:
        event.body[target] = value
    return encode_event(event)


def test_mutations_the_sdk_rejects_are_rejected_here(signed):
    chat, events, keys = signed
    checked = 0
    for label, raw in events:
        for name, target, value in _mutations(raw):
            mutated = _apply(raw, target, value)
            sdk = sdk_judge(chat, base64.b64encode(mutated).decode(), keys)
            mine = ours(mutated, keys)
            if target == "conversation_key_version" and decode_event_bytes(raw).kind == "ConversationKeyChangeEvent":
                # without the key for the new version both sides cannot check the v7 payload
                assert mine == "needs_conversation_key" and sdk != "valid", (label, name)
                continue
            assert sdk != "valid", (label, name)
            assert mine != "valid", (label, name, mine)
            checked += 1
    assert checked > 40


def test_sdk_accepts_what_we_accept_for_high_s_twin(signed):
    from verifier.keys import P256_ORDER
    chat, events, keys = signed
    label, raw = next(e for e in events if e[0].startswith("message"))
    event = decode_event_bytes(raw)
    sig = base64.b64decode(event.signature.signature + "==")
    s = int.from_bytes(sig[32:], "big")
    event.signature.signature = base64.b64encode(sig[:32] + (P256_ORDER - s).to_bytes(32, "big")).decode().rstrip("=")
    twin = encode_event(event)
    assert sdk_judge(chat, base64.b64encode(twin).decode(), keys) == "valid"
    assert ours(twin, keys) == "valid"


def test_a_member_change_moved_out_of_its_group_by_dropping_its_conversation_id(signed):
    """Review 50: without a conversation id the signed payload leaves it out and lists have no bounds,
    so the SDK's member change of g123, its id dropped and g123 put at the head of its new members,
    still verifies (the SDK says so). Served in g999 it must not pass as g999's change."""
    chat, events, keys = signed
    label, raw = next(e for e in events if decode_event_bytes(e[1]).kind == "GroupChangeEvent.GroupMemberAddChange")
    event = decode_event_bytes(raw)
    assert event.conversation_id == "g123"
    event.conversation_id = None
    event.body["member_ids"] = ["g123", *event.body["member_ids"]]
    moved = encode_event(event)
    assert sdk_judge(chat, base64.b64encode(moved).decode(), keys) == "valid"
    body = {"data": [{"encoded_event": base64.b64encode(moved).decode()}]}
    report = verifier.verify_pages([body], verifier.Keyring.from_json(keyring_json()), conversation_keys=keys,
                                   expected_conversation_id="g999")
    only = report.conversations[0].events[0]
    assert only.signature.status == "valid"
    assert [f.code for f in only.findings] == ["conversation_mismatch"]
    assert "names no conversation" in only.findings[0].message and report.verdict == "fail"


def test_partial_base64_padding_is_taken_and_excess_padding_refused_as_the_sdk_does(signed):
    """Review 53: the SDK decodes base64 with absent, partial or full padding and refuses excess '='.
    Here partial padding was refused (the signature, the event, keys and bindings)."""
    chat, events, keys = signed
    label, raw = next(e for e in events if e[0].startswith("message"))
    event = decode_event_bytes(raw)
    body = event.signature.signature.rstrip("=")
    assert -len(body) % 4 == 2  # 64 bytes: two '=' due
    for padding, expected in (("=", "valid"), ("==", "valid"), ("", "valid"), ("===", "not valid")):
        event.signature.signature = body + padding
        mutated = encode_event(event)
        for text in {base64.b64encode(mutated).decode(), base64.b64encode(mutated).decode().rstrip("=")}:
            sdk, mine = sdk_judge(chat, text, keys), ours_text(text, keys)
            assert (sdk == "valid", mine == "valid") == ((expected == "valid"),) * 2, (padding, sdk, mine)
    full = base64.b64encode(raw).decode()
    if full.endswith("=="):  # the event's own base64 cut to one '=' of two
        assert sdk_judge(chat, full[:-1], keys) == "valid" and ours_text(full[:-1], keys) == "valid"
    assert sdk_judge(chat, full + "=" * 4, keys) != "valid" and ours_text(full + "=" * 4, keys) != "valid"


def ours_text(text: str, keys) -> str:
    body = {"data": [{"encoded_event": text}]}
    report = verifier.verify_pages([body], verifier.Keyring.from_json(keyring_json()), conversation_keys=keys)
    return report.conversations[0].events[0].signature.status


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_a_key_change_signed_over_a_conversation_key_of_another_size_is_not_proven(size):
    """Review 53: given a conversation key that is not 32 bytes (the library takes any bytes; so does a
    participant's decryption of a hostile key change), a v7 key change signed over it was valid here;
    the SDK cannot verify it with that key."""
    from verifier.testing.forge import Identity, forge_event
    from verifier.wire import b64encode_nopad
    signer = Identity.from_seed("1111", "1", "short-key")
    key = bytes(range(size))
    body = {"conversation_key_version": "42",
            "conversation_participant_keys": [{"user_id": "1111", "encrypted_conversation_key": "QUJD",
                                               "public_key_version": "1"}]}
    template = forge_event(signer, "ConversationKeyChangeEvent", body, conversation_id="1111:2222", sequence_id="100",
                           conversation_keys={"42": bytes(32)}, embed_keys=[])
    payload = template.payload.rsplit(b",", 1)[0] + b"," + b64encode_nopad(key).encode()
    event = forge_event(signer, "ConversationKeyChangeEvent", body, conversation_id="1111:2222", sequence_id="100",
                        payload=payload, embed_keys=[], message_id=template.event.message_id)
    row = signer.keyring_entry()
    chat = chat_xdk.Chat()
    chat.set_reject_unverified(True)
    try:
        sdk = chat.decrypt_event(event.b64, conversation_keys={"42": key}, signing_keys=[{
            "user_id": "1111", "public_key_version": "1", "public_key": row["signing_public_key"],
            "identity_public_key": row["public_key"],
            "identity_public_key_signature": row["identity_public_key_signature"]}]).get("verified")
    except ValueError:
        sdk = False
    assert not sdk
    report = verifier.verify_pages([{"data": [{"encoded_event": event.b64}]}],
                                   verifier.Keyring.from_json(json.dumps([row])), conversation_keys={"42": key})
    only = report.conversations[0].events[0]
    assert only.signature.status == "unverifiable" and f"is {size} bytes, not 32" in only.signature.detail
    assert report.verdict == "fail"
