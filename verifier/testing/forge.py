"""Build real, properly signed X Chat events: for tests, vectors, benchmarks and the local API server.

Keys come from fixed seeds and signatures use RFC 6979 deterministic nonces, so everything built
here is reproducible byte for byte. Never used by the verification path itself.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

from ..keys import P256_ORDER
from ..payload import build_payload
from ..wire import (
    DETAIL_VARIANTS,
    EVENT_SIGNATURE,
    GROUP_CHANGE_VARIANTS,
    METADATA_VARIANTS,
    T_BOOL,
    T_I32,
    T_I64,
    T_LIST,
    T_MAP,
    T_STRING,
    T_STRUCT,
    EventSignature,
    MessageEvent,
    SigningKeyInfo,
    UnionSchema,
    b64encode_nopad,
)

SNOWFLAKE_EPOCH_MS = 1288834974657
_DETERMINISTIC = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)


# ------------------------------------------------------------------------------------- Thrift
def _write_value(out: bytearray, ttype: int, sub: Any, value: Any) -> None:
    if ttype == T_STRING:
        raw = value if isinstance(value, (bytes, bytearray)) else str(value).encode()
        out += struct.pack(">i", len(raw)) + raw
    elif ttype == T_BOOL:
        out.append(1 if value else 0)
    elif ttype == T_I32:
        out += struct.pack(">i", value)
    elif ttype == T_I64:
        out += struct.pack(">q", value)
    elif ttype == T_STRUCT and isinstance(sub, UnionSchema):
        kind, body = value  # a union: (member kind, member body)
        fid, member = next((i, m) for i, (k, m) in sub.members.items() if k == kind)
        _field(out, T_STRUCT, fid)
        if isinstance(member, UnionSchema):  # a union member of a union (product.thrift)
            _write_value(out, T_STRUCT, member, body)
        else:
            write_struct(out, member, body)
        out.append(0)
    elif ttype == T_STRUCT:
        write_struct(out, sub, value)
    elif ttype == T_MAP:
        (ktype, ksub), (vtype, vsub) = sub
        out += struct.pack(">bbi", ktype, vtype, len(value))
        for key, item in value.items():
            _write_value(out, ktype, ksub, key)
            _write_value(out, vtype, vsub, item)
    elif ttype == T_LIST:
        etype, esub = sub
        out += struct.pack(">bi", etype, len(value))
        for element in value:
            _write_value(out, etype, esub, element)
    else:  # pragma: no cover
        raise ValueError(f"cannot write type {ttype}")


def write_struct(out: bytearray, schema: dict, values: dict) -> None:
    """Fields in the order given (``None`` skipped), then STOP."""
    by_name = {name: (fid, ttype, sub) for fid, (name, ttype, sub) in schema.items()}
    for name, value in values.items():
        if value is None:
            continue
        fid, ttype, sub = by_name[name]
        out += struct.pack(">bh", ttype, fid)
        _write_value(out, ttype, sub, value)
    out.append(0)


def _field(out: bytearray, ttype: int, fid: int) -> None:
    out += struct.pack(">bh", ttype, fid)


def encode_detail(kind: str, body: dict) -> bytes:
    """The MessageEventDetail union (field 7 payload) for a kind such as ``GroupChangeEvent.GroupCreate``."""
    out = bytearray()
    top, _, sub = kind.partition(".")
    detail_id = next(i for i, v in DETAIL_VARIANTS.items() if v[0] == top)
    _field(out, T_STRUCT, detail_id)
    if sub:
        variants = GROUP_CHANGE_VARIANTS if top == "GroupChangeEvent" else METADATA_VARIANTS
        sub_id = next(i for i, v in variants.items() if v[0] == sub)
        body = dict(body)
        rotation = body.pop("for_key_rotation", None)
        _field(out, T_STRUCT, 1)
        _field(out, T_STRUCT, sub_id)
        write_struct(out, variants[sub_id][1], body)
        out.append(0)  # end of union
        if rotation is not None:
            _field(out, T_BOOL, 2)
            out.append(1 if rotation else 0)
        out.append(0)  # end of wrapper struct
    else:
        write_struct(out, DETAIL_VARIANTS[detail_id][1], body)
    out.append(0)  # end of MessageEventDetail
    return bytes(out)


def encode_signature(sig: EventSignature) -> bytes:
    out = bytearray()
    values = {
        "signature": sig.signature, "public_key_version": sig.public_key_version,
        "signature_version": sig.signature_version, "signing_public_key": sig.signing_public_key,
        "message_signing_key_info_list": None if sig.message_signing_key_info_list is None else [
            {"member_id": i.member_id, "public_key_version": i.public_key_version,
             "signing_public_key": i.signing_public_key} for i in sig.message_signing_key_info_list],
    }
    write_struct(out, EVENT_SIGNATURE, values)
    return bytes(out)


def encode_event(event: MessageEvent) -> bytes:
    """TBinary MessageEvent, fields in id order as the SDK writes them."""
    out = bytearray()
    simple = {1: event.sequence_id, 2: event.message_id, 3: event.sender_id,
              4: event.conversation_id, 5: event.conversation_token, 6: event.created_at_msec}
    for fid, value in simple.items():
        if value is not None:
            _field(out, T_STRING, fid)
            _write_value(out, T_STRING, None, value)
    if event.kind is not None:
        _field(out, T_STRUCT, 7)
        out += encode_detail(event.kind, event.body or {})
    if event.relay_source is not None:
        _field(out, T_I32, 8)
        _write_value(out, T_I32, None, event.relay_source)
    if event.signature is not None:
        _field(out, T_STRUCT, 9)
        out += encode_signature(event.signature)
    if event.previous_sequence_id is not None:
        _field(out, T_STRING, 10)
        _write_value(out, T_STRING, None, event.previous_sequence_id)
    if event.is_trusted is not None:
        _field(out, T_BOOL, 11)
        out.append(1 if event.is_trusted else 0)
    out.append(0)
    return bytes(out)



# ------------------------------------------------------------------------------------- keys
def _scalar(seed: str) -> int:
    return int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big") % (P256_ORDER - 1) + 1


def public_b64(key: ec.EllipticCurvePublicKey, fmt: str = "spki") -> str:
    import base64
    if fmt == "spki":
        raw = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    elif fmt == "sec1":
        raw = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    else:
        raw = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    return base64.b64encode(raw).decode()


@dataclass
class Identity:
    """A chat user's key pair set for one key version, derived from a seed."""

    user_id: str
    version: str
    signing: ec.EllipticCurvePrivateKey
    identity: ec.EllipticCurvePrivateKey

    @classmethod
    def from_seed(cls, user_id: str, version: str, seed: str | None = None) -> "Identity":
        seed = seed or f"{user_id}/{version}"
        return cls(user_id, version,
                   ec.derive_private_key(_scalar("signing:" + seed), ec.SECP256R1()),
                   ec.derive_private_key(_scalar("identity:" + seed), ec.SECP256R1()))

    @classmethod
    def from_scalars(cls, user_id: str, version: str, identity_d: int, signing_d: int) -> "Identity":
        return cls(user_id, version, ec.derive_private_key(signing_d, ec.SECP256R1()),
                   ec.derive_private_key(identity_d, ec.SECP256R1()))

    def private_key_blob(self) -> str:
        """The private key blob as the SDK exports it (base64 of the identity scalar, then the
        signing scalar): what ``--identity-key`` reads."""
        scalars = (self.identity.private_numbers().private_value.to_bytes(32, "big")
                   + self.signing.private_numbers().private_value.to_bytes(32, "big"))
        return base64.b64encode(scalars).decode()

    def signing_public(self, fmt: str = "spki") -> str:
        return public_b64(self.signing.public_key(), fmt)

    def identity_public(self, fmt: str = "spki") -> str:
        return public_b64(self.identity.public_key(), fmt)

    def sign(self, payload: bytes) -> bytes:
        r, s = decode_dss_signature(self.signing.sign(payload, _DETERMINISTIC))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def keyring_row(self, fmt: str = "spki") -> dict:
        """A row as served by ``GET /2/users/{id}/public_keys`` (binding over the identity key bytes)."""
        import base64
        identity = self.identity_public(fmt)
        binding = b64encode_nopad(self.sign(base64.b64decode(identity)))
        return {"public_key_version": self.version, "public_key": identity,
                "signing_public_key": self.signing_public(fmt), "identity_public_key_signature": binding}

    def keyring_entry(self, fmt: str = "spki") -> dict:
        return {"user_id": self.user_id, **self.keyring_row(fmt)}


def ecies_encrypt(recipient: ec.EllipticCurvePublicKey, plaintext: bytes, rng: bytes | None = None) -> bytes:
    """The SDK's ECIES blob (docs/protocol.md §5): ephemeral SEC1 ‖ AES-128-GCM(ct ‖ tag), 16-byte IV."""
    eph = ec.derive_private_key(_scalar((rng or os.urandom(16)).hex()), ec.SECP256R1())
    eph_pub = eph.public_key().public_bytes(serialization.Encoding.X962,
                                            serialization.PublicFormat.UncompressedPoint)
    shared = eph.exchange(ec.ECDH(), recipient)
    okm = X963KDF(algorithm=hashes.SHA256(), length=32, sharedinfo=eph_pub).derive(shared)
    return eph_pub + AESGCM(okm[:16]).encrypt(okm[16:32], plaintext, None)


def encrypt_contents(key: bytes, text: str, nonce: bytes | None = None) -> bytes:
    """MessageCreateEvent.contents: nonce(24) ‖ secretbox(MessageEntryHolder{contents{text}})."""
    from nacl.secret import SecretBox
    holder = bytearray()
    raw = text.encode()
    holder += struct.pack(">bh", T_STRUCT, 1) + struct.pack(">bh", T_STRUCT, 1)
    holder += struct.pack(">bh", T_STRING, 1) + struct.pack(">i", len(raw)) + raw + b"\0\0\0"
    nonce = nonce or os.urandom(24)
    return nonce + SecretBox(key).encrypt(bytes(holder), nonce).ciphertext


def snowflake(ms: int, low: int = 0) -> str:
    return str(((ms - SNOWFLAKE_EPOCH_MS) << 22) | (low & 0x3FFFFF))


# ------------------------------------------------------------------------------------- events
@dataclass
class Forged:
    """A built event: its typed form, TBinary bytes and standard padded base64."""

    event: MessageEvent
    raw: bytes
    b64: str
    payload: bytes | None = None


def forge_event(sender: Identity, kind: str, body: dict, *, conversation_id: str | None,
                sequence_id: str | None, previous_sequence_id: str | None = None,
                message_id: str | None = None, created_at_msec: str | None = None,
                signature_version: str | None = "7", conversation_keys: dict | None = None,
                sign: bool = True, signer: Identity | None = None, is_trusted: bool | None = True,
                embed_keys: list[Identity] | None = None, conversation_token: str | None = None,
                payload: bytes | None = None, key_version: str | None = None) -> Forged:
    """Build and (by default) sign an event; ``signer`` signs in place of ``sender`` for forgeries."""
    import base64
    message_id = message_id or str(_uuid_from(sender.user_id, sequence_id, kind))
    event = MessageEvent(sequence_id=sequence_id, message_id=message_id, sender_id=sender.user_id,
                         conversation_id=conversation_id, conversation_token=conversation_token,
                         created_at_msec=created_at_msec, kind=kind, body=body,
                         previous_sequence_id=previous_sequence_id, is_trusted=is_trusted)
    signed_payload = None
    if sign:
        version = int(signature_version) if signature_version and signature_version.lstrip("+-").isdigit() else 7
        signed_payload = payload if payload is not None else build_payload(event, version, conversation_keys)
        members = embed_keys if embed_keys is not None else [sender]
        event.signature = EventSignature(
            signature=b64encode_nopad((signer or sender).sign(signed_payload)),
            public_key_version=key_version if key_version is not None else sender.version,
            signature_version=signature_version,
            signing_public_key=sender.signing_public() if members else None,
            message_signing_key_info_list=[SigningKeyInfo(m.user_id, m.version, m.signing_public())
                                           for m in members] or None)
    raw = encode_event(event)
    return Forged(event, raw, base64.b64encode(raw).decode(), signed_payload)


def _uuid_from(*parts: Any) -> Any:
    import uuid
    return uuid.UUID(bytes=hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:16], version=4)


def item_json(forged: Forged, shape: str = "2.166", signature_json: bool = True) -> dict:
    """The ``data[]`` item the X API would serve for this event, in the 2.166 or 2.167 shape."""
    ev = forged.event
    item: dict[str, Any] = {"id": ev.sequence_id, "sender_id": ev.sender_id,
                            "conversation_id": ev.conversation_id}
    if ev.conversation_token is not None:
        item["conversation_token"] = ev.conversation_token
    if shape == "2.167":
        item["previous_id"] = ev.previous_sequence_id
        if ev.created_at_msec is not None:
            moment = datetime.fromtimestamp(int(ev.created_at_msec) / 1000, tz=timezone.utc)
            item["created_at"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    else:
        item["sequence_id"] = ev.sequence_id
        item["previous_sequence_id"] = ev.previous_sequence_id
        item["created_at_msec"] = ev.created_at_msec
    item["is_trusted"] = ev.is_trusted
    if signature_json and ev.signature is not None:
        import msgspec
        item["message_event_signature"] = msgspec.to_builtins(ev.signature)
    item["encoded_event"] = forged.b64
    return {k: v for k, v in item.items() if v is not None}


# ------------------------------------------------------------------------------------- histories
@dataclass
class Conversation:
    """A generated conversation: participants, conversation keys and its events, oldest first."""

    conversation_id: str
    members: list[Identity]
    events: list[Forged]
    conversation_keys: dict[str, bytes]

    def keyring(self) -> dict:
        return {"keys": [m.keyring_entry() for m in self.members]}

    def pages(self, page_size: int = 100, shape: str = "2.166") -> list[dict]:
        """Newest-first pages with ``meta.conversation_key_events`` for older key changes."""
        newest_first = list(reversed(self.events))
        pages = []
        for start in range(0, len(newest_first), page_size):
            chunk = newest_first[start:start + page_size]
            older_keys = [f.b64 for f in newest_first[start + page_size:]
                          if f.event.kind == "ConversationKeyChangeEvent"]
            meta: dict[str, Any] = {"result_count": len(chunk),
                                    "has_more": start + page_size < len(newest_first)}
            if older_keys:
                meta["conversation_key_events"] = older_keys[:1]
            if meta["has_more"]:
                meta["next_token"] = f"t{start + page_size}"
            pages.append({"data": [item_json(f, shape) for f in chunk], "meta": meta})
        return pages


def build_conversation(n_events: int, *, members: list[Identity] | None = None,
                       conversation_id: str | None = None, start_ms: int = 1_784_841_000_000,
                       signature_version: str = "7", seed: str = "demo",
                       realistic_crypto: bool = True) -> Conversation:
    """A 1:1 (or group) history: one key change, then messages alternating between members."""
    members = members or [Identity.from_seed("1215441834412953600", "1765382634817", seed + "a"),
                          Identity.from_seed("1843439638876491776", "1736723828667", seed + "b")]
    if conversation_id is None:
        ids = sorted((m.user_id for m in members), key=lambda x: (len(x), x))
        conversation_id = ":".join(ids) if len(ids) == 2 else "g2010754001234567890"
    ckey = hashlib.sha256(f"ckey:{seed}".encode()).digest()
    ckv = str(start_ms - 1000)
    events: list[Forged] = []
    prev = None
    body: dict[str, Any]
    for i in range(n_events):
        ms = start_ms + i * 1000
        seq = snowflake(ms, i)
        sender = members[i % len(members)]
        if i == 0:
            kind = "ConversationKeyChangeEvent"
            body = {"conversation_key_version": ckv, "conversation_participant_keys": [
                {"user_id": m.user_id, "encrypted_conversation_key": _b64(
                    ecies_encrypt(m.identity.public_key(), ckey, f"{seed}{m.user_id}".encode())
                    if realistic_crypto else hashlib.sha256(m.user_id.encode()).digest()),
                 "public_key_version": m.version} for m in members]}
        else:
            nonce = hashlib.sha256(f"{seed}:{i}".encode()).digest()[:24]
            contents = encrypt_contents(ckey, f"message {i}", nonce) if realistic_crypto \
                else nonce + hashlib.sha256(nonce).digest() * 2
            kind = "MessageCreateEvent"
            body = {"contents": contents, "conversation_key_version": ckv, "should_notify": True}
        forged = forge_event(sender, kind, body, conversation_id=conversation_id, sequence_id=seq,
                             previous_sequence_id=prev, created_at_msec=str(ms),
                             signature_version=signature_version, conversation_keys={ckv: ckey})
        events.append(forged)
        prev = seq
    return Conversation(conversation_id, members, events, {ckv: ckey})


def _b64(raw: bytes) -> str:
    import base64
    return base64.b64encode(raw).decode()
