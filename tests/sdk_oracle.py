"""The official SDK (``chatxdk``) as an independent oracle: it signs real events and judges them."""

from __future__ import annotations

import base64
import json
import struct
import time

import chat_xdk  # noqa: E402  (the official SDK is in the test extra: missing it is an error, not a skip)
from helpers import SHARED_VECTORS

from verifier.testing.forge import write_struct
from verifier.wire import EVENT_SIGNATURE, T_STRING, T_STRUCT

SENDER, KEY_VERSION = "1111", "1"


def fixture_keys() -> dict:
    return json.loads(SHARED_VECTORS.read_text())


def sdk_chat():
    f = fixture_keys()
    chat = chat_xdk.Chat()
    chat.import_keys(base64.b64decode(f["private_keys_concat_b64"]), KEY_VERSION)
    chat.set_identity(SENDER, KEY_VERSION)
    return chat


def signing_entries() -> list[dict]:
    f = fixture_keys()
    return [{"user_id": SENDER, "public_key_version": KEY_VERSION, "public_key": f["signing_public_b64"],
             "identity_public_key": f["identity_public_b64"],
             "identity_public_key_signature": f["identity_public_key_signature_b64"]}]


def keyring_json() -> str:
    e = signing_entries()[0]
    return json.dumps([{"user_id": e["user_id"], "public_key_version": e["public_key_version"],
                        "signing_public_key": e["public_key"], "public_key": e["identity_public_key"],
                        "identity_public_key_signature": e["identity_public_key_signature"]}])


def identity_public_keys() -> list[dict]:
    f = fixture_keys()
    return [{"user_id": SENDER, "key_version": KEY_VERSION, "public_key": f["identity_public_b64"]}]


def assemble(*, sequence_id: str, message_id: str, conversation_id: str, detail: bytes, signature: bytes,
             sender_id: str = SENDER, created_at_msec: str = "1700000000000", previous: str | None = None) -> bytes:
    """A MessageEvent from SDK-produced pieces: ``detail`` = MessageEventDetail bytes (fields + STOP)."""
    out = bytearray()
    for fid, value in ((1, sequence_id), (2, message_id), (3, sender_id), (4, conversation_id),
                       (6, created_at_msec)):
        raw = value.encode()
        out += struct.pack(">bhi", T_STRING, fid, len(raw)) + raw
    out += struct.pack(">bh", T_STRUCT, 7) + detail
    out += struct.pack(">bh", T_STRUCT, 9) + signature
    if previous is not None:
        out += struct.pack(">bhi", T_STRING, 10, len(previous)) + previous.encode()
    out.append(0)
    return bytes(out)


def signature_struct(signature: str, public_key_version: str, signature_version: str) -> bytes:
    out = bytearray()
    write_struct(out, EVENT_SIGNATURE, {"signature": signature, "public_key_version": public_key_version,
                                        "signature_version": signature_version})
    return bytes(out)


def wait_past(version: str) -> None:
    """The SDK names a conversation key by the millisecond it made it (its clock is this one): two
    keys made in one millisecond share a version, and the second replaced the first in a dict of
    keys (a flaky "rejected" for the SDK's own group create). Returns once the clock is past it."""
    while time.time() * 1000 < int(version) + 1:
        time.sleep(0.0005)


def _keep(keys: dict[str, bytes], result: dict) -> None:
    """The key of a ``prepare_*`` result, under a version no other key of the run has."""
    version = result["conversation_key_version"]
    assert version not in keys, f"two conversation keys named {version}"
    keys[version] = bytes(result["conversation_key"])
    wait_past(version)


def sdk_events(chat) -> tuple[list[tuple[str, bytes]], dict[str, bytes]]:
    """(label, event bytes) for messages, key changes, group create/member change and deletes, plus keys."""
    events, keys = [], {}
    seq = iter(range(100, 10_000))
    kc = chat.prepare_conversation_key_change(identity_public_keys(), conversation_id="1111:2222")
    _keep(keys, kc)
    events += _actions(kc, "1111:2222", seq, "key change")
    for text in ("hello", "second, with a comma", "ünïcode ✓"):
        payload = chat.encrypt_message("1111:2222", text, conversation_key=keys[kc["conversation_key_version"]],
                                       conversation_key_version=kc["conversation_key_version"])
        mce = base64.b64decode(payload.encrypted_content)
        detail = struct.pack(">bh", T_STRUCT, 1) + mce + b"\0"
        events.append((f"message {text}", assemble(
            sequence_id=str(next(seq)), message_id=payload.message_id, conversation_id="1111:2222",
            detail=detail, signature=base64.b64decode(payload.encoded_event_signature))))
    group = chat.prepare_group_create(identity_public_keys(), "g123", ["1111", "2222"], ["1111"], title="T")
    _keep(keys, group)
    events += _actions(group, "g123", seq, "group create")
    members = chat.prepare_group_members_change(identity_public_keys(), "g123", ["3333"], ["1111", "2222"],
                                                ["1111"], ["4444"], current_title="T")
    _keep(keys, members)
    events += _actions(members, "g123", seq, "member change")
    for for_all in (True, False):
        d = chat.prepare_message_delete("1111:2222", ["5", "6"], for_all)
        events += _actions({"action_signatures": [d]}, "1111:2222", seq, "delete")
    return events, keys


def _actions(result: dict, conversation_id: str, seq, label: str) -> list[tuple[str, bytes]]:
    out = []
    for action in result["action_signatures"]:
        detail = base64.b64decode(action["encoded_message_event_detail"])
        sig = signature_struct(action["signature"], action["public_key_version"], action["signature_version"])
        out.append((label, assemble(sequence_id=str(next(seq)), message_id=action["message_id"],
                                    conversation_id=conversation_id, detail=detail, signature=sig)))
    return out


def sdk_judge(chat, event_b64: str, conversation_keys: dict[str, bytes]) -> str:
    """``valid`` / ``rejected`` (signature refused) / ``error`` (could not even parse)."""
    chat.set_reject_unverified(True)
    try:
        result = chat.decrypt_event(event_b64, conversation_keys=conversation_keys, signing_keys=signing_entries())
    except ValueError as exc:
        return "rejected" if "signature" in str(exc).lower() else "error"
    if "verified" not in result:
        return "not_signed"
    return "valid" if result["verified"] else "rejected"
