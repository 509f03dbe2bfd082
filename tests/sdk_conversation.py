"""Conversations made by the official SDK (``chatxdk``), with several users, for the participant tests.

Every user is a ``chat_xdk.Chat`` with freshly generated keys. Events are what the SDK's API
produces (``prepare_*`` action signatures, ``encrypt_*`` payloads), assembled into ``MessageEvent``s
the way the server stores them (sequence ids above the SDK's key-change enforcement threshold). The
few kinds the SDK's API does not build (a member removal, a signed read marker, contents of one's
choice) are written with our Thrift writer and signed by the user's SDK ``Chat.sign``; the SDK then
judges them like the rest.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from typing import Any

import chat_xdk  # the oracle is in the test extra: missing it must fail, not skip
from sdk_oracle import assemble, signature_struct, wait_past

from verifier.payload import build_payload
from verifier.testing.forge import encode_detail, forge_event, write_struct
from verifier.wire import T_STRUCT, b64encode_nopad

FIRST_SEQ = 2080400060314550273  # above CKEY_SIG_V6_ENFORCE_AFTER_SEQ: the SDK enforces key-change signatures


@dataclass
class SdkUser:
    uid: str
    version: str
    chat: Any
    blob: bytes
    identity_spki: str
    signing_spki: str
    binding: str

    def public_key(self) -> dict:
        return {"user_id": self.uid, "public_key": self.identity_spki, "key_version": self.version}

    def signing_entry(self) -> dict:
        return {"user_id": self.uid, "public_key_version": self.version, "public_key": self.signing_spki,
                "identity_public_key": self.identity_spki, "identity_public_key_signature": self.binding}

    def keyring_entry(self) -> dict:
        return {"user_id": self.uid, "public_key_version": self.version, "signing_public_key": self.signing_spki,
                "public_key": self.identity_spki, "identity_public_key_signature": self.binding}

    def key_text(self) -> str:
        return base64.b64encode(self.blob).decode()

    def judge(self) -> Any:
        """A fresh SDK instance holding this user's keys (no state from earlier calls), strict."""
        chat = chat_xdk.Chat()
        chat.import_keys(self.blob, self.version)
        chat.set_identity(self.uid, self.version)
        chat.set_reject_unverified(True)
        return chat


def make_user(uid: str, version: str) -> SdkUser:
    maker = chat_xdk.Chat()
    registration = maker.generate_keypairs().public_key
    blob = bytes(maker.export_keys())
    chat = chat_xdk.Chat()
    chat.import_keys(blob, version)
    chat.set_identity(uid, version)
    return SdkUser(uid, version, chat, blob, registration.public_key, registration.signing_public_key,
                   registration.identity_public_key_signature)


def keyring_json(*users: SdkUser) -> str:
    return json.dumps({"keys": [u.keyring_entry() for u in users]})


@dataclass
class Event:
    label: str
    raw: bytes
    sequence_id: str
    sender: str

    @property
    def b64(self) -> str:
        return base64.b64encode(self.raw).decode()


@dataclass
class History:
    """One conversation's events, oldest first, as the server would hold them."""

    conversation_id: str
    events: list[Event] = field(default_factory=list)
    next_seq: int = FIRST_SEQ
    keys: dict[str, bytes] = field(default_factory=dict)  # version -> conversation key (as made)
    latest: str | None = None

    def _seq(self) -> tuple[str, str | None]:
        seq = str(self.next_seq)
        self.next_seq += 1
        return seq, self.events[-1].sequence_id if self.events else None

    def _created_at(self) -> str:
        """The time of the event just numbered (``_seq``): one second per sequence id."""
        return str(1_784_841_000_000 + (self.next_seq - FIRST_SEQ) * 1000)

    def _add(self, label: str, sender: SdkUser, message_id: str, detail: bytes, signature: bytes) -> Event:
        seq, prev = self._seq()
        raw = assemble(sequence_id=seq, message_id=message_id, conversation_id=self.conversation_id,
                       detail=detail, signature=signature, sender_id=sender.uid, previous=prev,
                       created_at_msec=self._created_at())
        event = Event(label, raw, seq, sender.uid)
        self.events.append(event)
        return event

    # ---------------------------------------------------------------- what the SDK builds
    def actions(self, label: str, sender: SdkUser, result: dict) -> list[Event]:
        """The action signatures of a ``prepare_*`` result, in order (key change first)."""
        if "conversation_key" in result and result.get("conversation_key") is not None:
            version, key = result["conversation_key_version"], bytes(result["conversation_key"])
            assert self.keys.get(version, key) == key, f"two conversation keys named {version}"
            self.keys[version] = key
            self.latest = version
            wait_past(version)  # the next prepare_* names its key by a later millisecond
        out = []
        for action in result["action_signatures"]:
            detail = base64.b64decode(action["encoded_message_event_detail"])
            sig = signature_struct(action["signature"], action["public_key_version"], action["signature_version"])
            out.append(self._add(label, sender, action["message_id"], detail, sig))
        return out

    def key_change(self, sender: SdkUser, members: list[SdkUser]) -> Event:
        kwargs = {"conversation_id": self.conversation_id}
        result = sender.chat.prepare_conversation_key_change([m.public_key() for m in members], **kwargs)
        return self.actions("key change", sender, result)[0]

    def send(self, label: str, sender: SdkUser, payload: Any) -> Event:
        mce = base64.b64decode(payload.encrypted_content)
        detail = struct.pack(">bh", T_STRUCT, 1) + mce + b"\0"
        return self._add(label, sender, payload.message_id, detail, base64.b64decode(payload.encoded_event_signature))

    def key_args(self, version: str | None = None) -> dict:
        version = version or self.latest
        return {"conversation_key": self.keys[version], "conversation_key_version": version}

    def text(self, sender: SdkUser, text: str, version: str | None = None) -> Event:
        return self.send("text", sender, sender.chat.encrypt_message(self.conversation_id, text,
                                                                     **self.key_args(version)))

    def reply(self, sender: SdkUser, text: str, original: Event, **kw) -> Event:
        return self.send("reply", sender, sender.chat.encrypt_reply(self.conversation_id, text, original.b64,
                                                                    **self.key_args(), **kw))

    def react(self, sender: SdkUser, target: Event | None, emoji: str, remove: bool = False, **kw) -> Event:
        make = sender.chat.encrypt_remove_reaction if remove else sender.chat.encrypt_add_reaction
        if target is not None:
            payload = make(target.b64, emoji, **self.key_args())
        else:
            payload = make(emoji=emoji, conversation_id=self.conversation_id, **self.key_args(), **kw)
        return self.send("unreact" if remove else "react", sender, payload)

    def edit(self, sender: SdkUser, target: Event | None, text: str, **kw) -> Event:
        if target is not None:
            payload = sender.chat.encrypt_edit(target.b64, text, **self.key_args())
        else:
            payload = sender.chat.encrypt_edit(updated_text=text, conversation_id=self.conversation_id,
                                               **self.key_args(), **kw)
        return self.send("edit", sender, payload)

    def delete(self, sender: SdkUser, targets: list[str], for_all: bool = True) -> Event:
        action = sender.chat.prepare_message_delete(self.conversation_id, targets, for_all)
        return self.actions("delete", sender, {"action_signatures": [action]})[0]

    def unsigned(self, sender: SdkUser, kind: str, body: dict) -> Event:
        """An event of a kind the protocol does not sign, as the server writes it (a typing event, a
        server notice): nobody's signature."""
        seq, prev = self._seq()
        forged = forge_event(_Unsigned(sender.uid, sender.version), kind, body, conversation_id=self.conversation_id,
                             sequence_id=seq, previous_sequence_id=prev, sign=False,
                             created_at_msec=self._created_at())
        event = Event("unsigned", forged.raw, seq, sender.uid)
        self.events.append(event)
        return event

    # ---------------------------------------------------------------- written here, signed by the SDK
    def signed(self, label: str, sender: SdkUser, kind: str, body: dict) -> Event:
        """A signed event of a kind the SDK's API does not build, signed with ``sender``'s SDK key."""
        seq, prev = self._seq()
        self.next_seq -= 1  # _add takes it again
        forged = forge_event(_Unsigned(sender.uid, sender.version), kind, body, conversation_id=self.conversation_id,
                             sequence_id=seq, previous_sequence_id=prev, sign=False)
        payload = build_payload(forged.event, 7, {})
        signature = b64encode_nopad(bytes(sender.chat.sign(payload)))
        sig = signature_struct(signature, sender.version, "7")
        return self._add(label, sender, forged.event.message_id, encode_detail(kind, body), sig)

    def signed_key_change(self, sender: SdkUser, version: str, key: bytes, entries: list[dict]) -> Event:
        """A v7 key change of one's choice (version, key, entries), signed by ``sender``'s SDK key."""
        body = {"conversation_key_version": version, "conversation_participant_keys": entries}
        seq, prev = self._seq()
        self.next_seq -= 1
        forged = forge_event(_Unsigned(sender.uid, sender.version), "ConversationKeyChangeEvent", body,
                             conversation_id=self.conversation_id, sequence_id=seq, previous_sequence_id=prev,
                             sign=False)
        payload = build_payload(forged.event, 7, {version: key})
        sig = signature_struct(b64encode_nopad(bytes(sender.chat.sign(payload))), sender.version, "7")
        self.keys[version] = key
        return self._add("key change", sender, forged.event.message_id,
                         encode_detail("ConversationKeyChangeEvent", body), sig)

    def contents(self, label: str, sender: SdkUser, holder: bytes, version: str | None = None,
                 contents: bytes | None = None) -> Event:
        """A message whose plaintext is ``holder`` (any bytes: the SDK encrypts only what its API builds, so the
        secretbox is PyNaCl's), signed by the sender's SDK key."""
        version = version or self.latest
        ciphertext = contents if contents is not None else _secretbox(self.keys[version], holder)
        body = {"contents": ciphertext, "conversation_key_version": version, "should_notify": True}
        return self.signed(label, sender, "MessageCreateEvent", body)

    # ---------------------------------------------------------------- pages
    def page(self, meta_key_changes: bool = True) -> dict:
        """One events page, newest first; key changes repeated in ``meta`` as the API does."""
        data = [{"encoded_event": e.b64, "sequence_id": e.sequence_id, "sender_id": e.sender,
                 "conversation_id": self.conversation_id} for e in reversed(self.events)]
        body: dict[str, Any] = {"data": data, "meta": {"result_count": len(data)}}
        if meta_key_changes:
            body["meta"]["conversation_key_events"] = [e.b64 for e in self.events if e.label == "key change"]
        return body

    def b64s(self) -> list[str]:
        return [e.b64 for e in self.events]


@dataclass
class _Unsigned:
    user_id: str
    version: str


def _secretbox(key: bytes, plaintext: bytes) -> bytes:
    """nonce ‖ tag ‖ ciphertext, as the SDK lays out contents (docs/protocol.md)."""
    import os

    from nacl.secret import SecretBox
    nonce = os.urandom(24)
    return nonce + SecretBox(key).encrypt(plaintext, nonce).ciphertext


def holder(member: int, schema: Any, values: dict) -> bytes:
    """A ``MessageEntryHolder`` whose contents union sets ``member`` with ``values``."""
    out = bytearray(struct.pack(">bh", T_STRUCT, 1) + struct.pack(">bh", T_STRUCT, member))
    write_struct(out, schema, values)
    out += b"\0\0"
    return bytes(out)


def sdk_decrypt(user: SdkUser, history_events: list[str], *users: SdkUser) -> dict:
    """The SDK's ``decrypt_events`` as ``user``: ``{"by_index": {i: event dict or {"error": str}},
    "keys": {version: bytes}}``."""
    result = user.judge().decrypt_events(history_events, signing_keys=[u.signing_entry() for u in users])
    errors = {int(i): e for i, e in result["errors"].items()}
    messages = iter(result["messages"])
    by_index = {}
    for i in range(len(history_events)):
        by_index[i] = {"error": errors[i]} if i in errors else next(messages)["event"]
    return {"by_index": by_index, "keys": {v: bytes(k) for v, k in result["conversation_keys"]["keys"].items()}}
