"""Grammar-aware structural differential fuzzer: xchat-verify against the official SDK.

Events of every kind and signature version are signed (by the SDK where its API makes that kind,
otherwise with the SDK fixture's own signing key), then their Thrift *structure* is mutated — fields
duplicated, dropped, reordered, retyped, nested, moved between structs; union members added,
removed, made unknown or retyped; list headers, bools, ids and numbers bent — and each mutated
event is judged by the SDK's strict ``decrypt_event`` and by ``verify_pages``. The two verdicts,
mapped to one vocabulary (``valid``, ``invalid``, ``unverifiable``, ``not_signed``,
``malformed``), must agree on every event. The one deliberate difference: a signed kind the SDK
returns as "Unknown" without a verdict (a MessageCreateEvent without contents) must fail here
(``unverifiable``), never pass as unsigned.

CI runs a seeded pass (tests/test_structural_fuzz.py). A long run, by hand:

    python tests/fuzz/structural.py --events 1000000 --seed 1 --jobs 2 --out fuzz-out

writes ``fuzz-out/summary.json`` and one ``fuzz-out/disagreement-*.json`` per disagreement
(the event, its mutations and both verdicts); ``vectors/generate.py`` turns the committed ones
(``vectors/structure/found/``) into conformance vectors.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import random
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS.parent))

import verifier  # noqa: E402
from verifier.testing import thrift_tree as tt  # noqa: E402
from verifier.testing.forge import Identity, encrypt_contents, forge_event  # noqa: E402
from verifier.testing.thrift_tree import Field, Map, Raw, Seq, Struct  # noqa: E402
from verifier.wire import (  # noqa: E402
    DETAIL_VARIANTS,
    ENVELOPE,
    T_BOOL,
    T_I32,
    T_I64,
    T_LIST,
    T_MAP,
    T_STRING,
    T_STRUCT,
    StructSchema,
    UnionSchema,
)

SENDER, KEY_VERSION, CONV, GROUP = "1111", "1", "1111:2222", "g123"

# Our statuses in the SDK's vocabulary.
CLASS_OF = {"valid": "valid", "invalid": "invalid", "unsupported_version": "invalid",
            "unknown_key": "unverifiable", "key_binding_invalid": "unverifiable",
            "missing_signature": "unverifiable", "unverifiable": "unverifiable",
            "needs_conversation_key": "unverifiable", "not_signed": "not_signed", "malformed": "malformed"}


# ------------------------------------------------------------------------------------ oracle
class Oracle:
    """chatxdk 0.5.2 with the fixture's keys, strict (``set_reject_unverified(True)``)."""

    def __init__(self) -> None:
        import chat_xdk
        from sdk_oracle import fixture_keys, signing_entries
        f = fixture_keys()
        self.chat = chat_xdk.Chat()  # builds and signs the seed events
        self.chat.import_keys(base64.b64decode(f["private_keys_concat_b64"]), KEY_VERSION)
        self.chat.set_identity(SENDER, KEY_VERSION)
        # The judge holds no private key: like an auditor it knows only public keys and the
        # conversation keys it is given (a keyed SDK would decrypt key changes addressed to it).
        self.judge_chat = chat_xdk.Chat()
        self.judge_chat.set_reject_unverified(True)
        self.signing_entries = signing_entries()
        self.identity = Identity.from_scalars(SENDER, KEY_VERSION, 1, 2)

    def judge(self, raw: bytes, keys: dict[str, bytes]) -> tuple[str, str]:
        """(class, detail) of the SDK's verdict on one encoded event."""
        try:
            result = self.judge_chat.decrypt_event(base64.b64encode(raw).decode(), conversation_keys=keys,
                                             signing_keys=self.signing_entries)
        except ValueError as exc:
            text = str(exc).splitlines()[0]
            if text.startswith(("Parse error", "Serialization error")):
                return "malformed", text
            if "could not be verified" in text:
                return "unverifiable", text
            if "verification failed" in text:
                return "invalid", text
            return "other", text
        if "verified" not in result:
            if result.get("type") == "Unknown" and result.get("event_type_id") == 1:
                # A MessageCreateEvent without contents: the SDK returns it unverified as
                # "Unknown"; a signed kind must never pass as unsigned, so here it fails.
                return "unverifiable", "MessageCreateEvent without contents (SDK: Unknown, not verified)"
            return "not_signed", str(result.get("type"))
        return ("valid" if result["verified"] else "invalid"), str(result.get("type"))


def our_classes(raws: list[bytes], ring: verifier.Keyring, keys: dict[str, bytes]) -> list[tuple[str, str]]:
    """(class, detail) per event from one ``verify_pages`` run (events are independent)."""
    page = {"data": [{"encoded_event": base64.b64encode(r).decode()} for r in raws]}
    report = verifier.verify_pages([page], ring, conversation_keys=keys, workers=1)
    by_index = {e.index: e for c in report.conversations for e in c.events}
    return [(CLASS_OF[by_index[i].signature.status], by_index[i].signature.detail) for i in range(len(raws))]


# ------------------------------------------------------------------------------------ seeds
@dataclass
class Seed:
    label: str
    raw: bytes


def _assemble(detail: bytes, sig: bytes, *, seq: str, message_id: str, conversation_id: str) -> bytes:
    from sdk_oracle import assemble
    return assemble(sequence_id=seq, message_id=message_id, conversation_id=conversation_id,
                    detail=detail, signature=sig, previous=str(int(seq) - 1))


def sdk_seeds(oracle: Oracle) -> tuple[list[Seed], dict[str, bytes]]:
    """Events the SDK itself builds and signs: messages, replies, reactions, edits, key changes,
    group create and member change, deletes."""
    from sdk_oracle import _actions, identity_public_keys
    chat = oracle.chat
    seeds: list[Seed] = []
    keys: dict[str, bytes] = {}
    seq = iter(range(2_000, 100_000))
    kc = chat.prepare_conversation_key_change(identity_public_keys(), conversation_id=CONV)
    ckv, ckey = kc["conversation_key_version"], bytes(kc["conversation_key"])
    keys[ckv] = ckey
    seeds += [Seed("sdk key change", raw) for _l, raw in _actions(kc, CONV, seq, "key change")]
    first = None
    for text in ("hello", "with, comma", "ünïcode ✓"):
        payload = chat.encrypt_message(CONV, text, conversation_key=ckey, conversation_key_version=ckv)
        first = first or payload
        seeds.append(Seed("sdk message", _mce(payload, seq)))
    target = base64.b64encode(seeds[-1].raw).decode()
    for label, payload in (
            ("sdk reply", chat.encrypt_reply(CONV, "a reply", target, conversation_key=ckey,
                                             conversation_key_version=ckv)),
            ("sdk reaction", chat.encrypt_add_reaction(target, "👍", conversation_key=ckey,
                                                       conversation_key_version=ckv)),
            ("sdk unreaction", chat.encrypt_remove_reaction(target, "👍", conversation_key=ckey,
                                                            conversation_key_version=ckv)),
            ("sdk edit", chat.encrypt_edit(target, "edited", conversation_key=ckey,
                                           conversation_key_version=ckv))):
        seeds.append(Seed(label, _mce(payload, seq)))
    group = chat.prepare_group_create(identity_public_keys(), GROUP, [SENDER, "2222"], [SENDER], title="T")
    keys[group["conversation_key_version"]] = bytes(group["conversation_key"])
    seeds += [Seed("sdk group create", raw) for _l, raw in _actions(group, GROUP, seq, "group")]
    members = chat.prepare_group_members_change(identity_public_keys(), GROUP, ["3333"], [SENDER, "2222"],
                                                [SENDER], ["4444"], current_title="T")
    keys[members["conversation_key_version"]] = bytes(members["conversation_key"])
    seeds += [Seed("sdk member add", raw) for _l, raw in _actions(members, GROUP, seq, "members")]
    for for_all in (True, False):
        deleted = chat.prepare_message_delete(CONV, ["5", "6"], for_all)
        seeds += [Seed("sdk delete", raw) for _l, raw in _actions({"action_signatures": [deleted]}, CONV,
                                                                     seq, "delete")]
    return seeds, keys


def _mce(payload: Any, seq) -> bytes:
    mce = base64.b64decode(payload.encrypted_content)
    detail = struct.pack(">bh", T_STRUCT, 1) + mce + b"\0"
    return _assemble(detail, base64.b64decode(payload.encoded_event_signature), seq=str(next(seq)),
                     message_id=payload.message_id, conversation_id=CONV)


# Bodies for every signed kind the SDK's API does not build, signed with the fixture's own key.
FORGED_BODIES: dict[str, dict] = {
    "ConversationDeleteEvent": {"conversation_id": CONV, "options": {"clear_all_messages": True,
                                                                     "sort_order_msec": 1700000000000}},
    "MarkConversationReadEvent": {"seen_until_sequence_id": "77", "seen_at_millis": 1700000050000},
    "MarkConversationUnreadEvent": {"seen_until_sequence_id": "78"},
    "MessageDeleteEvent": {"sequence_ids": ["5", "6"], "delete_message_action": 2},
    "GroupChangeEvent.GroupMemberAddChange": {
        "member_ids": ["3333"], "current_member_ids": ["1111", "2222"], "current_admin_ids": ["1111"],
        "current_title": "T", "conversation_key_version": "42", "current_ttl_msec": 5,
        "current_pending_member_ids": ["4444"], "screen_capture_blocking_enabled": True,
        "group_invite_enable": {"invite_url": "https://x/i", "affiliate_id": "aff", "expires_at_msec": 99},
        "admin_settings": {"edit_group_info": True}},
    "GroupChangeEvent.GroupMemberRemoveChange": {"member_ids": ["3333", "4444"]},
    "GroupChangeEvent.GroupAdminAddChange": {"admin_ids": ["2222"]},
    "GroupChangeEvent.GroupAdminRemoveChange": {"admin_ids": ["2222"]},
    "GroupChangeEvent.GroupTitleChange": {"custom_title": "New", "conversation_key_version": "42"},
    "GroupChangeEvent.GroupAvatarUrlChange": {"custom_avatar_url": "https://img/a.png",
                                              "conversation_key_version": "42"},
    "GroupChangeEvent.GroupCreate": {"member_ids": ["1111", "2222"], "admin_ids": ["1111"], "title": "T",
                                     "conversation_key_version": "42", "is_legacy_group_upgrade": False,
                                     "ttl_msec": 7},
    "GroupChangeEvent.GroupInviteEnable": {"invite_url": "https://x/i", "expires_at_msec": 99,
                                           "affiliate_id": "aff"},
    "GroupChangeEvent.GroupInviteDisable": {"disabled_by_member_id": "1111"},
    "GroupChangeEvent.GroupJoinRequest": {"requesting_user_id": "5555"},
    "GroupChangeEvent.GroupJoinReject": {"rejected_user_ids": ["5555", "6666"]},
    "GroupChangeEvent.GroupAdminSettingsChange": {"send_message": True},
    "ConversationMetadataChangeEvent.MessageDurationChange": {"ttl_msec": 86400000, "apply_to_all_messages": True},
    "ConversationMetadataChangeEvent.MessageDurationRemove": {"current_ttl_msec": 5},
    "ConversationMetadataChangeEvent.MuteConversation": {"muted_conversation_ids": [CONV]},
    "ConversationMetadataChangeEvent.UnmuteConversation": {"unmuted_conversation_ids": [CONV]},
    "ConversationMetadataChangeEvent.EnableScreenCaptureDetection": {},
    "ConversationMetadataChangeEvent.DisableScreenCaptureDetection": {"placeholder": "x"},
    "ConversationMetadataChangeEvent.EnableScreenCaptureBlocking": {},
    "ConversationMetadataChangeEvent.DisableScreenCaptureBlocking": {},
    "MessageTypingEvent": {"conversation_id": CONV},
    "MessageFailureEvent": {"failure_type": 12, "rate_limit_tier": 3},
    "MemberAccountDeleteEvent": {"member_id": "2222"},
    "GrokSearchResponseEvent": {"search_response_id": "grok-1"},
}


def forged_seeds(oracle: Oracle, keys: dict[str, bytes]) -> list[Seed]:
    """Every signed kind at every signature version 2-7 (and a few unsigned kinds), signed with the
    fixture's signing key, so the SDK can judge them and every payload rule is exercised."""
    from sdk_oracle import fixture_keys
    ckey = base64.b64decode(fixture_keys()["conversation_key_b64"])  # the fixture's key for version 1001
    keys.setdefault("42", ckey)
    keys.setdefault("1001", ckey)
    out: list[Seed] = []
    number = 10_000
    for version in ("2", "3", "4", "5", "6", "7"):
        bodies = dict(FORGED_BODIES)
        bodies["MessageCreateEvent"] = {"contents": encrypt_contents(ckey, f"v{version}", bytes(24)),
                                        "conversation_key_version": "1001", "should_notify": True}
        bodies["ConversationKeyChangeEvent"] = {"conversation_key_version": "42", "conversation_participant_keys": [
            {"user_id": SENDER, "encrypted_conversation_key": "QUJD", "public_key_version": KEY_VERSION},
            {"user_id": "2222", "encrypted_conversation_key": "REVG", "public_key_version": "7"}]}
        for kind, body in bodies.items():
            number += 1
            conv = GROUP if kind.startswith("GroupChangeEvent") else CONV
            forged = forge_event(oracle.identity, kind, copy.deepcopy(body), conversation_id=conv,
                                 sequence_id=str(number), previous_sequence_id=str(number - 1),
                                 created_at_msec="1700000000000", signature_version=version,
                                 conversation_keys={"42": ckey, "1001": ckey},
                                 sign=kind in _SIGNABLE, embed_keys=[oracle.identity])
            out.append(Seed(f"forged {kind} v{version}", forged.raw))
    return out


def _signable() -> set[str]:
    from verifier.payload import BUILDERS
    return set(BUILDERS)


_SIGNABLE = _signable()


def fixture_seeds() -> list[Seed]:
    from sdk_oracle import fixture_keys
    f = fixture_keys()
    return [Seed(f"fixture {name}", base64.b64decode(f[name]))
            for name in ("event_message_b64", "event_key_change_b64", "event_reply_valid_b64",
                         "event_reply_forged_b64", "event_failure_b64")]


# ------------------------------------------------------------------------------------ mutation
Node = tuple[Struct, Any, str]  # (struct node, its schema if known, path)

_VALID_TYPES = [2, 3, 4, 6, 8, 10, 11, 12, 13, 14, 15, 16]
_ALL_TYPE_BYTES = _VALID_TYPES + [0, 1, 5, 7, 9, 17, 127, 200]
_STRINGS = [b"", b"7", b"1", b"0", b"+7", b"07", b" 7", b"-1", b"2147483648", b"9" * 5000, b"-" + b"9" * 60,
            b"1111", b"2222", b"1111:2222", b"2222:1111", b"1111-2222", b"g123", b"a,b", b"\xff\xfe",
            "ü✓".encode(), b"null", b"1001", b"42", b"0001", b"x" * 300]


def nodes_of(root: Struct) -> list[Node]:
    """Every struct node of an event with the schema that governs it (None where unknown)."""
    out: list[Node] = []

    def walk(node: Struct, schema: Any, path: str, depth: int) -> None:
        out.append((node, schema, path))
        if depth > 12:
            return
        for f in node.fields:
            sub = _child_schema(schema, f)
            if isinstance(f.value, Struct):
                governed = sub if isinstance(sub, (StructSchema, UnionSchema)) else None
                walk(f.value, governed, f"{path}.{f.fid}", depth + 1)
            elif isinstance(f.value, Seq):
                elem = sub[1] if isinstance(sub, tuple) and sub[0] == T_STRUCT else None
                for i, item in enumerate(f.value.items):
                    if isinstance(item, Struct):
                        walk(item, elem, f"{path}.{f.fid}[{i}]", depth + 1)

    walk(root, ENVELOPE, "event", 0)
    return out


def _child_schema(schema: Any, f: Field) -> Any:
    if isinstance(schema, UnionSchema):
        member = schema.members.get(f.fid)
        return member[1] if member else None
    if isinstance(schema, StructSchema):
        spec = schema.get(f.fid)
        if spec is None:
            return None
        _name, ttype, sub = spec
        if ttype == T_STRUCT and f.ttype == T_STRUCT:
            return sub
        if ttype == T_LIST:
            return sub
    return None


def _contains(value: Any, node: Struct) -> bool:
    """Is ``node`` ``value`` itself or anywhere inside it (structs, lists, maps)?"""
    stack = [value]
    while stack:
        item = stack.pop()
        if item is node:
            return True
        if isinstance(item, Struct):
            stack += [f.value for f in item.fields]
        elif isinstance(item, Seq):
            stack += item.items
        elif isinstance(item, Map):
            stack += [x for pair in item.items for x in pair]
    return False


class Mutator:
    """Structure-level mutations; each returns a short description of what it did."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.ops: list[tuple[int, Callable[[Struct, list[Node]], str | None]]] = [
            (6, self.duplicate_field), (6, self.duplicate_with_other_value), (5, self.drop_field),
            (3, self.reorder_fields), (5, self.retype_header), (5, self.retype_value),
            (6, self.insert_known), (6, self.insert_unknown), (4, self.empty_union),
            (4, self.unknown_only_union), (3, self.union_member_not_struct), (3, self.nest_field),
            (3, self.move_field), (3, self.list_header), (3, self.bool_byte), (5, self.leaf_value),
            (2, self.deep_unknown), (1, self.big_container), (2, self.repeat_detail),
        ]
        self.weights = [w for w, _op in self.ops]

    def mutate(self, root: Struct, count: int) -> list[str]:
        done: list[str] = []
        for _ in range(count):
            nodes = nodes_of(root)
            op = self.rng.choices(self.ops, self.weights)[0][1]
            what = op(root, nodes)
            if what:
                done.append(what)
        return done

    # ---------------------------------------------------------------- helpers
    def pick(self, nodes: list[Node], want: Callable[[Node], bool] = lambda n: True) -> Node | None:
        candidates = [n for n in nodes if want(n)]
        return self.rng.choice(candidates) if candidates else None

    def random_value(self, ttype: int, sub: Any = None, depth: int = 0) -> Any:
        rng = self.rng
        if ttype == T_BOOL:
            return rng.choice([0, 1, 1, 2, 255])
        if ttype == 3:
            return rng.randint(-128, 127)
        if ttype == 6:
            return rng.randint(-2 ** 15, 2 ** 15 - 1)
        if ttype == T_I32:
            return rng.choice([0, 1, 2, 3, -1, 7, 2 ** 31 - 1, -2 ** 31, rng.randint(-2 ** 31, 2 ** 31 - 1)])
        if ttype == T_I64:
            return rng.choice([0, 1, -1, 2 ** 63 - 1, -2 ** 63, 1700000000000, rng.randint(-2 ** 63, 2 ** 63 - 1)])
        if ttype == 4:
            return rng.random()
        if ttype == 16:
            return bytes(rng.getrandbits(8) for _ in range(16))
        if ttype == T_STRING:
            return rng.choice(_STRINGS) if rng.random() < 0.8 else bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
        if ttype == T_STRUCT:
            if isinstance(sub, StructSchema) and depth < 4:
                return self.random_struct(sub, depth + 1)
            if isinstance(sub, UnionSchema) and depth < 4:
                fid, (_k, member) = rng.choice(list(sub.members.items()))
                return Struct([Field(T_STRUCT, fid, self.random_struct(member, depth + 1))])
            return Struct([Field(T_STRING, rng.randint(1, 20), b"x")] if rng.random() < 0.5 else [])
        if ttype in (T_LIST, 14):
            etype, esub = sub if isinstance(sub, tuple) else (rng.choice([T_STRING, T_I32, T_STRUCT]), None)
            return Seq(etype, [self.random_value(etype, esub, depth + 1) for _ in range(rng.randint(0, 3))])
        if ttype == T_MAP:
            if isinstance(sub, tuple) and isinstance(sub[0], tuple):
                (kt, ks), (vt, vs) = sub
            else:
                (kt, ks), (vt, vs) = (T_STRING, None), (T_I32, None)
            return Map(kt, vt, [(self.random_value(kt, ks, depth + 1), self.random_value(vt, vs, depth + 1))
                                for _ in range(rng.randint(0, 2))])
        return Raw(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 6))))  # an invalid type code

    def random_struct(self, schema: StructSchema, depth: int) -> Struct:
        fields = []
        for fid, (_name, ttype, sub) in schema.items():
            if self.rng.random() < 0.6:
                fields.append(Field(ttype, fid, self.random_value(ttype, sub, depth)))
        return Struct(fields)

    def declared(self, schema: Any, fid: int) -> tuple[int, Any] | None:
        if isinstance(schema, StructSchema) and fid in schema:
            return schema[fid][1], schema[fid][2]
        if isinstance(schema, UnionSchema) and fid in schema.members:
            return T_STRUCT, schema.members[fid][1]
        return None

    # ---------------------------------------------------------------- operations
    def duplicate_field(self, root: Struct, nodes: list[Node]) -> str | None:
        node, _s, path = self.pick(nodes, lambda n: bool(n[0].fields)) or (None, None, "")
        if node is None:
            return None
        f = self.rng.choice(node.fields)
        node.fields.insert(self.rng.randint(0, len(node.fields)), copy.deepcopy(f))
        return f"duplicate {path}.{f.fid}"

    def duplicate_with_other_value(self, root: Struct, nodes: list[Node]) -> str | None:
        node, schema, path = self.pick(nodes, lambda n: bool(n[0].fields)) or (None, None, "")
        if node is None:
            return None
        f = self.rng.choice(node.fields)
        declared = self.declared(schema, f.fid)
        ttype, sub = declared if declared and declared[0] == f.ttype else (f.ttype, None)
        twin = Field(f.ttype, f.fid, self.random_value(ttype, sub))
        node.fields.insert(self.rng.randint(0, len(node.fields)), twin)
        return f"repeat {path}.{f.fid} with another value"

    def drop_field(self, root: Struct, nodes: list[Node]) -> str | None:
        node, _s, path = self.pick(nodes, lambda n: bool(n[0].fields)) or (None, None, "")
        if node is None:
            return None
        f = node.fields.pop(self.rng.randrange(len(node.fields)))
        return f"drop {path}.{f.fid}"

    def reorder_fields(self, root: Struct, nodes: list[Node]) -> str | None:
        node, _s, path = self.pick(nodes, lambda n: len(n[0].fields) > 1) or (None, None, "")
        if node is None:
            return None
        self.rng.shuffle(node.fields)
        return f"reorder {path}"

    def retype_header(self, root: Struct, nodes: list[Node]) -> str | None:
        """Change a field's wire type but keep its value bytes: the stream desynchronises."""
        node, _s, path = self.pick(nodes, lambda n: bool(n[0].fields)) or (None, None, "")
        if node is None:
            return None
        f = self.rng.choice(node.fields)
        data = tt.encode_value(f.ttype, f.value)
        new = self.rng.choice([t for t in _ALL_TYPE_BYTES if t not in (f.ttype, 0)])
        node.fields[node.fields.index(f)] = Field(new, f.fid, Raw(data))
        return f"retype header {path}.{f.fid} {f.ttype}->{new}"

    def retype_value(self, root: Struct, nodes: list[Node]) -> str | None:
        """Give a field a well-formed value of another wire type."""
        node, _s, path = self.pick(nodes, lambda n: bool(n[0].fields)) or (None, None, "")
        if node is None:
            return None
        f = self.rng.choice(node.fields)
        new = self.rng.choice([t for t in _VALID_TYPES if t != f.ttype])
        node.fields[node.fields.index(f)] = Field(new, f.fid, self.random_value(new))
        return f"retype value {path}.{f.fid} {f.ttype}->{new}"

    def insert_known(self, root: Struct, nodes: list[Node]) -> str | None:
        """Add a field (or union member) the schema knows, with a value of its declared type."""
        node, schema, path = self.pick(nodes, lambda n: n[1] is not None) or (None, None, "")
        if node is None:
            return None
        ids = list(schema.members) if isinstance(schema, UnionSchema) else list(schema)
        fid = self.rng.choice(ids)
        ttype, sub = self.declared(schema, fid)
        node.fields.insert(self.rng.randint(0, len(node.fields)), Field(ttype, fid, self.random_value(ttype, sub)))
        return f"insert known {path}.{fid}"

    def insert_unknown(self, root: Struct, nodes: list[Node]) -> str | None:
        node, schema, path = self.pick(nodes) or (None, None, "")
        known = set(schema.members) if isinstance(schema, UnionSchema) else set(schema or ())
        fid = self.rng.choice([i for i in (0, -1, -32768, 32767, 2, 11, 50, 99, 110, 200, 3, 7) if i not in known])
        ttype = self.rng.choice(_VALID_TYPES)
        node.fields.insert(self.rng.randint(0, len(node.fields)), Field(ttype, fid, self.random_value(ttype)))
        return f"insert unknown {path}.{fid} type {ttype}"

    def _unions(self, nodes: list[Node]) -> Node | None:
        return self.pick(nodes, lambda n: isinstance(n[1], UnionSchema))

    def empty_union(self, root: Struct, nodes: list[Node]) -> str | None:
        picked = self._unions(nodes)
        if picked is None:
            return None
        picked[0].fields.clear()
        return f"empty union {picked[2]}"

    def unknown_only_union(self, root: Struct, nodes: list[Node]) -> str | None:
        picked = self._unions(nodes)
        if picked is None:
            return None
        node, schema, path = picked
        fid = self.rng.choice([i for i in (2, 11, 13, 15, 99, 0, -3) if i not in schema.members])
        node.fields[:] = [Field(T_STRUCT, fid, Struct())] * self.rng.randint(1, 2)
        return f"unknown-only union {path} ({fid})"

    def union_member_not_struct(self, root: Struct, nodes: list[Node]) -> str | None:
        picked = self.pick(nodes, lambda n: isinstance(n[1], UnionSchema) and bool(n[0].fields))
        if picked is None:
            return None
        node, _schema, path = picked
        f = self.rng.choice(node.fields)
        new = self.rng.choice([T_STRING, T_I32, T_LIST, T_BOOL, T_I64])
        node.fields[node.fields.index(f)] = Field(new, f.fid, self.random_value(new))
        return f"union member {path}.{f.fid} as type {new}"

    def nest_field(self, root: Struct, nodes: list[Node]) -> str | None:
        """Wrap a field in an extra struct level under the same id."""
        node, _s, path = self.pick(nodes, lambda n: bool(n[0].fields)) or (None, None, "")
        if node is None:
            return None
        f = self.rng.choice(node.fields)
        inner = Struct([Field(f.ttype, self.rng.choice([f.fid, 1]), f.value)])
        node.fields[node.fields.index(f)] = Field(T_STRUCT, f.fid, inner)
        return f"nest {path}.{f.fid}"

    def move_field(self, root: Struct, nodes: list[Node]) -> str | None:
        src = self.pick(nodes, lambda n: bool(n[0].fields))
        dst = self.pick(nodes)
        if src is None or dst is None or src[0] is dst[0]:
            return None
        f = self.rng.choice(src[0].fields)
        if _contains(f.value, dst[0]):
            return None  # never move a struct into itself
        src[0].fields.remove(f)
        dst[0].fields.insert(self.rng.randint(0, len(dst[0].fields)), f)
        return f"move {src[2]}.{f.fid} -> {dst[2]}"

    def list_header(self, root: Struct, nodes: list[Node]) -> str | None:
        """Bend a list header: element type byte or element count."""
        lists = [(n, f) for n, _s, _p in nodes for f in n.fields if isinstance(f.value, Seq)]
        if not lists:
            return None
        node, f = self.rng.choice(lists)
        body = tt.encode_value(T_LIST, f.value)[5:]
        etype = f.value.etype
        count = len(f.value.items)
        if self.rng.random() < 0.5:
            etype = self.rng.choice([t for t in _ALL_TYPE_BYTES if t != etype])
        else:
            count = self.rng.choice([count + 1, max(count - 1, 0), 0, -1, 10_001])
        node.fields[node.fields.index(f)] = Field(f.ttype, f.fid, Raw(struct.pack(">Bi", etype, count) + body))
        return f"list header {f.fid}: type {etype} count {count}"

    def bool_byte(self, root: Struct, nodes: list[Node]) -> str | None:
        bools = [(n, f) for n, _s, _p in nodes for f in n.fields if f.ttype == T_BOOL and isinstance(f.value, int)]
        if not bools:
            return None
        _node, f = self.rng.choice(bools)
        f.value = self.rng.choice([0, 1, 2, 127, 128, 255])
        return f"bool {f.fid} = {f.value}"

    def leaf_value(self, root: Struct, nodes: list[Node]) -> str | None:
        leaves = [(n, f) for n, _s, _p in nodes for f in n.fields if f.ttype == T_STRING and isinstance(f.value, bytes)]
        if not leaves:
            return None
        _node, f = self.rng.choice(leaves)
        f.value = self.rng.choice(_STRINGS)
        return f"string {f.fid} = {f.value[:12]!r}"

    def deep_unknown(self, root: Struct, nodes: list[Node]) -> str | None:
        """An unknown field nested near the SDK's depth limits (64 structs, 64 skip levels)."""
        node, _s, path = self.pick(nodes) or (None, None, "")
        depth = self.rng.choice([55, 60, 61, 62, 63, 64, 65, 66])
        if self.rng.random() < 0.5:
            value: Any = Struct()
            for _ in range(depth - 1):
                value = Struct([Field(T_STRUCT, 1, value)])
            field_ = Field(T_STRUCT, 77, value)
        else:
            value = Seq(T_I32, [])
            for _ in range(depth - 1):
                value = Seq(T_LIST, [value])
            field_ = Field(T_LIST, 77, value)
        node.fields.insert(self.rng.randint(0, len(node.fields)), field_)
        return f"deep unknown {path} depth {depth}"

    def big_container(self, root: Struct, nodes: list[Node]) -> str | None:
        node, _s, path = self.pick(nodes) or (None, None, "")
        n = self.rng.choice([9_999, 10_000, 10_001])
        node.fields.append(Field(T_LIST, 78, Seq(T_BOOL, [0] * n)))
        return f"big list {path} {n}"

    def repeat_detail(self, root: Struct, nodes: list[Node]) -> str | None:
        """A second MessageEventDetail: another kind, before or after the real one."""
        kind_id = self.rng.choice(list(DETAIL_VARIANTS) + [2, 11])
        member = DETAIL_VARIANTS.get(kind_id)
        body = self.random_struct(member[1], 1) if member else Struct()
        detail = Struct([Field(T_STRUCT, kind_id, body)])
        root.fields.insert(self.rng.randint(0, len(root.fields)), Field(T_STRUCT, 7, detail))
        return f"second detail {kind_id}"


# ------------------------------------------------------------------------------------ runner
@dataclass
class Outcome:
    events: int = 0
    agreements: Counter = field(default_factory=Counter)
    disagreements: list[dict] = field(default_factory=list)
    unparsed: int = 0  # mutation chains discarded because the tree grew too deep to write


class Campaign:
    def __init__(self, seed: int) -> None:
        self.oracle = Oracle()
        self.seeds, self.keys = sdk_seeds(self.oracle)
        self.seeds += forged_seeds(self.oracle, self.keys) + fixture_seeds()
        from sdk_oracle import keyring_json
        self.ring = verifier.Keyring.from_json(keyring_json())
        self.rng = random.Random(seed)
        self.mutator = Mutator(self.rng)
        self.trees = [(s, tt.parse(s.raw)) for s in self.seeds]

    def case(self) -> tuple[str, bytes, list[str]]:
        seed, (tree, trailing) = self.rng.choice(self.trees)
        tree = copy.deepcopy(tree)
        done = self.mutator.mutate(tree, self.rng.choice([1, 1, 2, 2, 3]))
        extra = b""
        roll = self.rng.random()
        if roll < 0.03:
            extra = bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(1, 8)))
            done.append("trailing bytes")
        raw = tt.write(tree, trailing + extra)
        if roll > 0.985:
            raw = bytes([T_I32, 0, 1, 0, 0, 0, 5]) + raw  # a sequence_id of the wrong type first
            done.append("prefix i32 sequence_id")
        return seed.label, raw, done

    def run(self, events: int, batch: int = 200, progress: Callable[[int], None] | None = None) -> Outcome:
        out = Outcome()
        while out.events < events:
            cases = []
            while len(cases) < min(batch, events - out.events):
                try:
                    cases.append(self.case())
                except RecursionError:  # a mutation chain built a tree too deep to copy or write
                    out.unparsed += 1
            raws = [raw for _l, raw, _d in cases]
            ours = our_classes(raws, self.ring, self.keys)
            for (label, raw, done), (mine, my_detail) in zip(cases, ours):
                sdk, sdk_detail = self.oracle.judge(raw, self.keys)
                out.events += 1
                if sdk == mine:
                    out.agreements[mine] += 1
                else:
                    out.disagreements.append({"seed": label, "mutations": done, "sdk": sdk, "ours": mine,
                                              "sdk_detail": sdk_detail, "our_detail": my_detail,
                                              "event_b64": base64.b64encode(raw).decode()})
            if progress:
                progress(out.events)
        return out


def _worker(args: tuple[int, int]) -> dict:
    seed, events = args
    outcome = Campaign(seed).run(events)
    return {"events": outcome.events, "agreements": dict(outcome.agreements),
            "disagreements": outcome.disagreements, "discarded": outcome.unparsed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=20_000, help="events per job task")
    parser.add_argument("--out", default="fuzz-out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [(args.seed * 1_000_003 + i, min(args.chunk, args.events - start))
             for i, start in enumerate(range(0, args.events, args.chunk))]
    started = time.time()
    totals: Counter = Counter()
    disagreements: list[dict] = []
    done = discarded = 0
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(args.jobs) as pool:
        for result in pool.map(_worker, tasks):
            done += result["events"]
            totals.update(result["agreements"])
            disagreements += result["disagreements"]
            discarded += result["discarded"]
            print(f"{done} events, {len(disagreements)} disagreements, {time.time() - started:.0f}s",
                  file=sys.stderr, flush=True)
    for i, d in enumerate(disagreements):
        (out / f"disagreement-{i:05d}.json").write_text(json.dumps(d, indent=2))
    summary = {"events": done, "disagreements": len(disagreements), "agreements_by_class": dict(totals),
               "mutations_discarded_too_deep": discarded,
               "seed": args.seed, "jobs": args.jobs, "seconds": round(time.time() - started, 1),
               "sdk": "chatxdk 0.5.2", "tool": f"xchat-verify {verifier.__version__}"}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
