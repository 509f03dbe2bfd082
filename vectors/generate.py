"""Generate the conformance vector suite (deterministic): python vectors/generate.py [OUT_DIR]

Every case is a folder ``<group>/<case>/`` with input pages, an optional keyring and
``expected.json``. Keys derive from fixed seeds and ECDSA uses RFC 6979 nonces, so running this
again reproduces the committed files byte for byte (a test checks it). Expectations are written
here from each case's intent and the report contract (docs/formats.md), never by running the
verifier.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import shutil
import struct
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from verifier.keys import P256_ORDER  # noqa: E402
from verifier.testing import thrift_tree as tt  # noqa: E402
from verifier.testing.forge import (Forged, Identity, encode_event, encrypt_contents, ecies_encrypt,  # noqa: E402
                                    forge_event, item_json, snowflake)
from verifier.vectors import RELEASES  # noqa: E402
from verifier.wire import b64encode_nopad  # noqa: E402

SCHEMA = "xchat-verify/vector/v1"
# The suite's version. Every released version, with the digest of its content
# (verifier.vectors.suite_digest: cases and schemas), is in verifier.vectors.RELEASES, so that the
# installed runner can tell a released suite from another. Any change to a case or a schema changes
# the digest: add a new version there, never edit a released one (tests/test_vectors.py enforces it).
SUITE_VERSION = "2026.12.16"
CONV = "1111:2222"
GROUP = "g100"
ALICE = Identity.from_seed("1111", "1700000000001", "vectors-alice")
BOB = Identity.from_seed("2222", "1700000000002", "vectors-bob")
CAROL = Identity.from_seed("3333", "1700000000003", "vectors-carol")
MALLORY = Identity.from_seed("1111", "1700000000001", "vectors-mallory")  # claims Alice's id and version
ALICE_NEW = Identity.from_seed("1111", "1800000000001", "vectors-alice-rotated")
CKEY = hashlib.sha256(b"vectors-conversation-key").digest()
CKV = "1001"
T0 = 1_784_841_000_000

ERROR_SIG = {"invalid", "unsupported_version", "unknown_key", "key_binding_invalid", "missing_signature",
             "unverifiable", "malformed"}
ERROR_CHAIN = {"gap", "fork", "conflict", "cycle"}
ERROR_FINDINGS = {"envelope_mismatch", "key_conflict", "conversation_mismatch", "replay", "meta_not_key_change",
                  "trailing_bytes", "shadowed_detail", "target_after_event", "non_member_sender"}
# target_missing is a warning before the fetched range and an error inside it: cases say which (ev(error=True))
WARNING_FINDINGS = {"untrusted", "embedded_key_used", "unknown_event_type", "target_missing", "signing_key_regressed"}
# Findings about a whole history (run or conversation) and the option that turns each into information.
FAIL_CLOSED = {"no_trusted_keys": "allow_embedded_keys", "no_events": "allow_empty", "nothing_proven": "allow_empty"}


def seq(n: int) -> str:
    return snowflake(T0 + n * 1000, n)


def mce_body(text: str = "hello") -> dict:
    nonce = hashlib.sha256(text.encode()).digest()[:24]
    return {"contents": encrypt_contents(CKEY, text, nonce), "conversation_key_version": CKV, "should_notify": True}


def participants(members: list[Identity]) -> list[dict]:
    return [{"user_id": m.user_id, "public_key_version": m.version,
             "encrypted_conversation_key": base64.b64encode(
                 ecies_encrypt(m.identity.public_key(), CKEY, f"vectors:{m.user_id}".encode())).decode()}
            for m in members]


def event(n: int | None, kind: str = "MessageCreateEvent", body: dict | None = None, *, prev: int | None = None,
          sender: Identity = ALICE, conversation_id: str | None = CONV, **kw: Any) -> Forged:
    body = mce_body(f"message {n}") if body is None else body
    kw.setdefault("conversation_keys", {CKV: CKEY})
    return forge_event(sender, kind, body, conversation_id=conversation_id,
                       sequence_id=kw.pop("sequence_id", None if n is None else seq(n)),
                       previous_sequence_id=None if prev is None else seq(prev),
                       created_at_msec=str(T0 + (n or 0) * 1000), **kw)


def reencode(forged: Forged) -> Forged:
    raw = encode_event(forged.event)
    return Forged(forged.event, raw, base64.b64encode(raw).decode())


def tampered(forged: Forged, path: tuple) -> Forged:
    """Change one signed field after signing (re-encode without re-signing)."""
    copy_ = copy.deepcopy(forged)
    if path == ("message_id",):
        copy_.event.message_id = "x" + copy_.event.message_id[1:]
        return reencode(copy_)
    target = copy_.event.body
    for step in path[:-1]:
        target = target[step]
    value = target[path[-1]]
    if isinstance(value, bytes):
        target[path[-1]] = bytes([value[0] ^ 1]) + value[1:]
    elif isinstance(value, bool):
        target[path[-1]] = not value
    elif isinstance(value, int):
        target[path[-1]] = value + 1
    else:
        target[path[-1]] = value[:-1] + ("0" if value[-1] != "0" else "1")
    return reencode(copy_)


def page(*events: Forged, meta: list[Forged] | dict[str, Any] = (), shape: str = "2.166", **extra: Any) -> dict:
    """A page of ``events``; ``meta``: key change events for ``meta.conversation_key_events``, or
    the ``meta`` object itself."""
    body: dict[str, Any] = {"data": [item_json(e, shape) for e in events]}
    if isinstance(meta, dict):
        body["meta"] = meta
    elif meta:
        body["meta"] = {"conversation_key_events": [e.b64 for e in meta]}
    body.update(extra)
    return body


def keyring(*identities: Identity, fmt: str = "spki") -> dict:
    return {"keys": [i.keyring_entry(fmt) for i in identities]}


DEFAULT_RING = keyring(ALICE, BOB, CAROL)


def history_findings(events: list[dict], has_keyring: bool, extra: list[str]) -> list[str]:
    """Run- and conversation-level finding codes the contract demands (fail closed): no trusted keys,
    no events, or no signature proven; ``extra`` adds case-specific ones."""
    out = [] if has_keyring else ["no_trusted_keys"]
    if not events:
        out.append("no_events")
    elif not any(e["signature"] == "valid" for e in events):
        out.append("nothing_proven")
    return sorted(out + extra)


def verdict_of(events: list[dict], strict: bool, exit3: bool, scoped: list[str], allowed: set[str]) -> tuple[str, int]:
    """The report contract restated: fail on any error (or warning under --strict), including a
    history-level finding that was not explicitly allowed."""
    if exit3:
        return "fail", 3
    codes = {c for e in events for c in e.get("findings", [])}
    error = any(e["signature"] in ERROR_SIG or e["chain"] in ERROR_CHAIN or e.get("error") for e in events) or \
        codes & ERROR_FINDINGS
    error = error or any(code not in FAIL_CLOSED or FAIL_CLOSED[code] not in allowed for code in scoped)
    warning = codes & WARNING_FINDINGS or any(e["chain"] in ("non_monotonic",) for e in events) or \
        any(e["chain"] == "duplicate" and not e.get("info_duplicate") for e in events)
    failed = bool(error) or (strict and bool(warning))
    return ("fail", 1) if failed else ("pass", 0)


class Suite:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.ids: list[str] = []

    def case(self, case_id: str, description: str, pages: list[Any], events: list[dict], *,
             ring: Any = DEFAULT_RING, strict: bool = False, allow_embedded_keys: bool = False,
             allow_empty: bool = False, conversation_keys: dict[str, bytes] | None = None,
             exit3: bool = False, findings: tuple[str, ...] = ()) -> None:
        folder = self.out / case_id
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for number, body in enumerate(pages, 1):
            name = f"page-{number}.json"
            raw = body if isinstance(body, bytes) else (json.dumps(body, indent=1) + "\n").encode()
            (folder / name).write_bytes(raw)
            names.append(name)
        if ring is not None:
            (folder / "keyring.json").write_text(json.dumps(ring, indent=1) + "\n")
        scoped = [] if exit3 else history_findings(events, ring is not None, list(findings))
        allowed = {name for name, on in (("allow_embedded_keys", allow_embedded_keys), ("allow_empty", allow_empty))
                   if on}
        verdict, code = verdict_of(events, strict, exit3, scoped, allowed)
        expected_events = [{"index": i, "signature": e["signature"], "chain": e["chain"],
                            "findings": sorted(e.get("findings", []))} for i, e in enumerate(events)]
        doc = {"schema": SCHEMA, "id": case_id, "description": description, "pages": names,
               "keyring": "keyring.json" if ring is not None else None,
               "options": {"strict": strict, "allow_embedded_keys": allow_embedded_keys, "allow_empty": allow_empty,
                           "conversation_keys": {k: base64.b64encode(v).decode()
                                                 for k, v in (conversation_keys or {}).items()}},
               "expected": {"verdict": verdict, "exit_code": code, "findings": scoped, "events": expected_events}}
        (folder / "expected.json").write_text(json.dumps(doc, indent=1) + "\n")
        self.ids.append(case_id)


def ev(sig: str, chain: str = "start", *findings: str, info_duplicate: bool = False, error: bool = False) -> dict:
    """One expected event; ``error`` marks a finding listed here that is an error in this case."""
    return {"signature": sig, "chain": chain, "findings": list(findings), "info_duplicate": info_duplicate,
            "error": error}


# --------------------------------------------------------------------------------------------------
GMA = {"member_ids": ["4444"], "current_member_ids": ["1111", "2222"], "current_admin_ids": ["1111"],
       "current_title": "T", "conversation_key_version": CKV, "current_pending_member_ids": ["5555"],
       "screen_capture_blocking_enabled": True,
       "group_invite_enable": {"invite_url": "https://x/i", "affiliate_id": "aff", "expires_at_msec": 99}}
KINDS: list[tuple[str, dict, tuple]] = [
    ("MessageCreateEvent", mce_body("kind test"), ("contents",)),
    ("ConversationKeyChangeEvent", {"conversation_key_version": CKV,
                                    "conversation_participant_keys": participants([ALICE, BOB])},
     ("conversation_participant_keys", 1, "public_key_version")),
    ("MessageDeleteEvent", {"sequence_ids": [seq(0)], "delete_message_action": 2}, ("delete_message_action",)),
    ("ConversationDeleteEvent", {"conversation_id": CONV, "options": {"clear_all_messages": True,
                                                                       "sort_order_msec": T0}},
     ("options", "sort_order_msec")),
    ("MarkConversationReadEvent", {"seen_until_sequence_id": seq(0), "seen_at_millis": T0}, ("seen_at_millis",)),
    ("MarkConversationUnreadEvent", {"seen_until_sequence_id": seq(0)}, ("seen_until_sequence_id",)),
    ("GroupChangeEvent.GroupMemberAddChange", GMA, ("current_member_ids", 1)),
    ("GroupChangeEvent.GroupMemberRemoveChange", {"member_ids": ["4444"]}, ("member_ids", 0)),
    ("GroupChangeEvent.GroupAdminAddChange", {"admin_ids": ["2222"]}, ("admin_ids", 0)),
    ("GroupChangeEvent.GroupAdminRemoveChange", {"admin_ids": ["2222"]}, ("admin_ids", 0)),
    ("GroupChangeEvent.GroupTitleChange", {"custom_title": "New title", "conversation_key_version": CKV},
     ("custom_title",)),
    ("GroupChangeEvent.GroupAvatarUrlChange", {"custom_avatar_url": "https://i/a.png", "conversation_key_version": CKV},
     ("custom_avatar_url",)),
    ("GroupChangeEvent.GroupCreate", {"member_ids": ["1111", "2222", "3333"], "admin_ids": ["1111"],
                                      "conversation_key_version": CKV, "title": "G"}, ("member_ids", 2)),
    ("GroupChangeEvent.GroupInviteEnable", {"invite_url": "https://x/i", "expires_at_msec": 99, "affiliate_id": "a"},
     ("invite_url",)),
    ("GroupChangeEvent.GroupInviteDisable", {"disabled_by_member_id": "1111"}, ("disabled_by_member_id",)),
    ("GroupChangeEvent.GroupJoinRequest", {"requesting_user_id": "4444"}, ("requesting_user_id",)),
    ("GroupChangeEvent.GroupJoinReject", {"rejected_user_ids": ["4444"]}, ("rejected_user_ids", 0)),
    ("ConversationMetadataChangeEvent.MessageDurationChange", {"ttl_msec": 86400000}, ("ttl_msec",)),
    ("ConversationMetadataChangeEvent.MessageDurationRemove", {"current_ttl_msec": 5}, ("message_id",)),
    ("ConversationMetadataChangeEvent.MuteConversation", {"muted_conversation_ids": [CONV]},
     ("muted_conversation_ids", 0)),
    ("ConversationMetadataChangeEvent.UnmuteConversation", {"unmuted_conversation_ids": [CONV]},
     ("unmuted_conversation_ids", 0)),
    ("ConversationMetadataChangeEvent.EnableScreenCaptureDetection", {"placeholder": "p"}, ("message_id",)),
    ("ConversationMetadataChangeEvent.DisableScreenCaptureDetection", {"placeholder": "p"}, ("message_id",)),
    ("ConversationMetadataChangeEvent.EnableScreenCaptureBlocking", {"placeholder": "p"}, ("message_id",)),
    ("ConversationMetadataChangeEvent.DisableScreenCaptureBlocking", {"placeholder": "p"}, ("message_id",)),
]


# The kinds above whose body names seq(0)
NAMES_SEQ_0 = {"MessageDeleteEvent", "MarkConversationReadEvent", "MarkConversationUnreadEvent"}


def kinds(s: Suite) -> None:
    for kind, body, path in KINDS:
        short = kind.replace("GroupChangeEvent.", "Group.").replace("ConversationMetadataChangeEvent.", "Metadata.")
        conv = GROUP if kind.startswith("GroupChangeEvent") else CONV
        for version in range(2, 8):
            keys = {CKV: CKEY} if kind == "ConversationKeyChangeEvent" and version >= 6 else None
            # an event naming seq(0) is the oldest of a window (a previous pointer), not the first
            # event of its history: before a history's first event nothing can be named
            prev = 0 if kind in NAMES_SEQ_0 else None
            good = event(1, kind, body, prev=prev, signature_version=str(version), conversation_id=conv)
            s.case(f"kinds/{short}-v{version}-valid", f"{kind} signed at signature version {version} verifies",
                   [page(good)], [ev("valid")], conversation_keys=keys)
            bad_path = path if not (kind == "ConversationKeyChangeEvent" and version >= 6) else ("message_id",)
            bad = tampered(good, bad_path)
            s.case(f"kinds/{short}-v{version}-tampered",
                   f"{kind} v{version} with {'.'.join(map(str, bad_path))} changed after signing fails",
                   [page(bad)], [ev("invalid")], conversation_keys=keys)
    kc = event(1, "ConversationKeyChangeEvent", {"conversation_key_version": CKV,
                                                 "conversation_participant_keys": participants([ALICE, BOB])})
    s.case("kinds/KeyChange-v7-without-conversation-key",
           "a v7 key change signs the plaintext conversation key: not verifiable from public data",
           [page(kc)], [ev("needs_conversation_key")])
    s.case("kinds/KeyChange-v7-wrong-conversation-key", "a wrong plaintext conversation key does not verify",
           [page(kc)], [ev("invalid")], conversation_keys={CKV: bytes(32)})


def versions(s: Suite) -> None:
    for text, status, why in (("1", "unsupported_version", "downgrade to v1"),
                              ("0", "unsupported_version", "downgrade to v0"),
                              ("-1", "unsupported_version", "negative version"),
                              ("abc", "valid", "unparseable version is treated as 7"),
                              (None, "valid", "missing version is treated as 7"),
                              ("99", "valid", "future versions follow the v7 rules"),
                              ("+7", "valid", "Rust i32 parsing accepts a plus sign"),
                              ("07", "valid", "leading zero parses as 7"),
                              (" 7", "valid", "whitespace does not parse: treated as 7")):
        name = {None: "missing", " 7": "space-7", "+7": "plus-7"}.get(text, text)
        s.case(f"versions/{name}", why, [page(event(1, signature_version=text))], [ev(status)])


def _resign(forged: Forged, raw_sig: bytes) -> Forged:
    copy_ = copy.deepcopy(forged)
    copy_.event.signature.signature = b64encode_nopad(raw_sig)
    return reencode(copy_)


def signatures(s: Suite) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    good = event(1)
    raw = base64.b64decode(good.event.signature.signature + "==")
    r, sv = raw[:32], int.from_bytes(raw[32:], "big")
    s.case("signatures/high-s-twin", "replacing s by n-s gives a second valid signature (no low-S rule)",
           [page(_resign(good, r + (P256_ORDER - sv).to_bytes(32, "big")))], [ev("valid")])
    der = ALICE.signing.sign(good.payload, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    s.case("signatures/der-encoded", "DER signatures are refused: only raw r||s", [page(_resign(good, der))],
           [ev("invalid")])
    s.case("signatures/length-63", "63-byte signature", [page(_resign(good, raw[:63]))], [ev("invalid")])
    s.case("signatures/length-65", "65-byte signature", [page(_resign(good, raw + b"\0"))], [ev("invalid")])
    s.case("signatures/r-zero", "r = 0 is out of range", [page(_resign(good, bytes(32) + raw[32:]))], [ev("invalid")])
    s.case("signatures/s-equals-n", "s = n is out of range",
           [page(_resign(good, r + P256_ORDER.to_bytes(32, "big")))], [ev("invalid")])
    padded = copy.deepcopy(good)
    padded.event.signature.signature += "=="
    s.case("signatures/padded-base64", "a padded signature string decodes the same", [page(reencode(padded))],
           [ev("valid")])
    urlsafe = copy.deepcopy(good)
    urlsafe.event.signature.signature = "-_" + urlsafe.event.signature.signature[2:]
    s.case("signatures/url-safe-base64", "URL-safe characters are not standard base64: empty signature",
           [page(reencode(urlsafe))], [ev("invalid")])
    other = event(1, signer=BOB)
    s.case("signatures/other-signer", "signed by another user's key", [page(other)], [ev("invalid")])


def _b64_with_plus_or_slash() -> Forged:
    for n in range(1, 200):
        forged = event(n)
        if "+" in forged.b64 or "/" in forged.b64:
            return forged
    raise AssertionError("no event with + or / in its base64")


def encoding(s: Suite) -> None:
    good = _b64_with_plus_or_slash()
    item = item_json(good)
    s.case("encoding/padded", "standard padded base64 (what the API serves)", [{"data": [item]}], [ev("valid")])
    nopad = dict(item, encoded_event=good.b64.rstrip("="))
    padded_len = len(good.b64) - len(good.b64.rstrip("="))
    s.case("encoding/no-padding", f"padding is optional ({padded_len} '=' removed)", [{"data": [nopad]}],
           [ev("valid")])
    urlsafe = dict(item, encoded_event=good.b64.replace("+", "-").replace("/", "_"))
    s.case("encoding/url-safe", "URL-safe alphabet is refused", [{"data": [urlsafe]}], [ev("malformed", "start")])
    spaced = dict(item, encoded_event=good.b64[:40] + "\n" + good.b64[40:])
    s.case("encoding/whitespace", "embedded newline is refused", [{"data": [spaced]}], [ev("malformed", "start")])
    body = good.b64.rstrip("=")
    if len(body) % 4 in (2, 3):
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        last = alphabet[alphabet.index(body[-1]) | 1]
        trailing = dict(item, encoded_event=body[:-1] + last)
        s.case("encoding/trailing-bits", "non-zero trailing bits are not canonical base64", [{"data": [trailing]}],
               [ev("malformed", "start")])
    # review 53: the SDK takes partial padding ("QQ=") in every base64 value, and refuses excess "="
    partial = _partially_padded()
    s.case("encoding/partial-padding", "one '=' of the two the length needs, in the event's base64 and in its "
           "signature: the SDK takes both", [{"data": [dict(item_json(partial), encoded_event=partial.b64[:-1])]}],
           [ev("valid")])
    s.case("encoding/excess-padding", "more '=' than the length needs is refused",
           [{"data": [dict(item, encoded_event=good.b64.rstrip("=") + "=" * (-len(good.b64.rstrip("=")) % 4 + 1))]}],
           [ev("malformed", "start")])


def _partially_padded() -> Forged:
    """An event whose base64 ends in "==", its signature text cut to one "=" of its two."""
    for n in range(1, 200):
        forged = event(n)
        forged.event.signature.signature = forged.event.signature.signature.rstrip("=") + "="
        forged = reencode(forged)
        if forged.b64.endswith("=="):
            return forged
    raise AssertionError("no event whose base64 needs two '='")


def keys(s: Suite) -> None:
    for fmt in ("spki", "sec1", "sec1c"):
        s.case(f"keys/keyring-{fmt}", f"keyring keys encoded as {fmt}", [page(event(1))], [ev("valid")],
               ring=keyring(ALICE, fmt=fmt))
    rotated = [event(2, prev=1, sender=ALICE_NEW), event(1)]
    s.case("keys/rotation", "two versions of one user's key in one history", [page(*rotated)],
           [ev("valid", "linked"), ev("valid")], ring=keyring(ALICE, ALICE_NEW))
    # review 57: the directory keeps the old version for old events; a new event signed with it is suspect
    regressed = [page(event(3, prev=2), event(2, prev=1, sender=ALICE_NEW), event(1))]
    expected = [ev("valid", "linked", "signing_key_regressed"), ev("valid", "linked"), ev("valid")]
    s.case("keys/old-key-after-rotation", "after signing with a newer key version, the sender signs with the old "
           "one again (a warning: a second device that missed the rotation does the same)", regressed, expected,
           ring=keyring(ALICE, ALICE_NEW))
    s.case("keys/old-key-after-rotation-strict", "the same under --strict: fails", regressed, expected,
           ring=keyring(ALICE, ALICE_NEW), strict=True)
    s.case("keys/unknown-version", "the signer's key version is not in the keyring",
           [page(event(1, sender=ALICE_NEW))], [ev("unknown_key")], ring=keyring(ALICE))
    s.case("keys/embedded-key-substitution", "a forger embeds their own key under the victim's id and version",
           [page(event(1, sender=MALLORY))], [ev("invalid", "start", "key_conflict")])
    bad = ALICE.keyring_entry()
    bad["identity_public_key_signature"] = BOB.keyring_entry()["identity_public_key_signature"]
    s.case("keys/bad-identity-binding", "the keyring binding signature does not verify",
           [page(event(1))], [ev("key_binding_invalid")], ring={"keys": [bad]})
    s.case("keys/embedded-only", "no keyring: the event's own key, consistent across the input",
           [page(event(2, prev=1), event(1))], [ev("valid", "linked"), ev("valid")], ring=None)
    s.case("keys/embedded-conflict", "no keyring: two different keys claim one (user, version)",
           [page(event(2, prev=1, sender=MALLORY), event(1))],
           [ev("valid", "linked", "key_conflict"), ev("valid", "start", "key_conflict")], ring=None)
    s.case("keys/allow-embedded", "--allow-embedded-keys verifies a signer the keyring lacks, as a warning",
           [page(event(1, sender=BOB))], [ev("valid", "start", "embedded_key_used")], ring=keyring(ALICE),
           allow_embedded_keys=True)
    rows = {ALICE.user_id: {"data": [{**{k: v for k, v in ALICE.keyring_row().items() if k != "public_key_version"},
                                      "version": ALICE.version}]}}
    s.case("keys/keyring-public-keys-bodies", "keyring as saved GET /2/users/{id}/public_keys bodies (old `version`)",
           [page(event(1))], [ev("valid")], ring=rows)
    s.case("keys/keyring-bare-list", "keyring as a bare list", [page(event(1))], [ev("valid")],
           ring=[ALICE.keyring_entry()])


def payloads(s: Suite) -> None:
    comma = event(1, "GroupChangeEvent.GroupTitleChange", {"custom_title": "a,b", "conversation_key_version": CKV},
                  conversation_id=GROUP, payload=b"GroupChangeEvent.GroupTitleChange,unsignable")
    s.case("payload/comma-in-component", "a comma inside a component makes the payload ambiguous",
           [page(comma)], [ev("unverifiable")])
    for kind, body in (("MessageTypingEvent", {"conversation_id": CONV}),
                       ("MessageFailureEvent", {"failure_type": 12, "rate_limit_tier": 3}),
                       ("MemberAccountDeleteEvent", {"member_id": "2222"}),
                       ("GrokSearchResponseEvent", {"search_response_id": "r1"})):
        s.case(f"payload/unsigned-{kind.split('.')[-1]}", f"{kind} is not signed by the protocol",
               [page(event(1, kind, body, sign=False))], [ev("not_signed")])
    settings = event(1, "GroupChangeEvent.GroupAdminSettingsChange", {"add_member": True}, conversation_id=GROUP,
                     sign=False)
    s.case("payload/group-admin-settings-change", "a group change the protocol never signs: the SDK refuses it, "
           "so it fails", [page(settings)], [ev("missing_signature")])
    s.case("payload/unsigned-with-a-proven-event", "an unsigned event beside a proven one passes",
           [page(event(2, "MessageTypingEvent", {"conversation_id": CONV}, prev=1, sign=False), event(1))],
           [ev("not_signed", "linked"), ev("valid")])
    s.case("payload/missing-signature", "a message without a signature", [page(event(1, sign=False))],
           [ev("missing_signature")])
    plain = event(1, body={"contents": b"plain text", "should_notify": True}, payload=b"x")
    s.case("payload/unencrypted-message", "a message without conversation_key_version is never signed",
           [page(plain)], [ev("unverifiable")])
    unknown = bytes([11, 0, 1]) + struct.pack(">i", len(seq(1))) + seq(1).encode() + \
        bytes([12, 0, 7, 12, 0, 99, 0, 0, 0])
    s.case("payload/unknown-kind", "an unknown event detail: nothing to verify, a warning",
           [{"data": [{"encoded_event": base64.b64encode(unknown).decode()}]}],
           [ev("not_signed", "start", "unknown_event_type")])


def chains(s: Suite) -> None:
    linked = [event(3, prev=2), event(2, prev=1), event(1)]
    s.case("chain/linked", "three events, newest first", [page(*linked)],
           [ev("valid", "linked"), ev("valid", "linked"), ev("valid", "start")])
    s.case("chain/pages-out-of-order", "older page first: same statuses", [page(linked[2]), page(*linked[:2])],
           [ev("valid", "start"), ev("valid", "linked"), ev("valid", "linked")])
    s.case("chain/start-with-unfetched-predecessor", "the oldest event of a window may point before it",
           [page(event(5, prev=4))], [ev("valid", "start")])
    s.case("chain/gap", "an event in the middle is missing", [page(event(3, prev=2), event(1))],
           [ev("valid", "gap"), ev("valid", "start")])
    s.case("chain/fork", "two events claim the same predecessor", [page(event(3, prev=1), event(2, prev=1), event(1))],
           [ev("valid", "fork"), ev("valid", "fork"), ev("valid", "start")])
    one = event(1)
    s.case("chain/duplicate", "the same message twice is a warning", [page(one), page(one)],
           [ev("valid", "start"), ev("valid", "duplicate")])
    s.case("chain/duplicate-strict", "under --strict a duplicate fails", [page(one), page(one)],
           [ev("valid", "start"), ev("valid", "duplicate")], strict=True)
    twin = event(1, body=mce_body("a different message"))
    s.case("chain/conflict", "two different events share a sequence id", [page(one, twin)],
           [ev("valid", "conflict"), ev("valid", "conflict")])
    s.case("chain/non-monotonic", "sequence ids decrease along the chain", [page(event(1, prev=2), event(2))],
           [ev("valid", "non_monotonic"), ev("valid", "start")])
    s.case("chain/cycle", "previous pointers loop", [page(event(1, prev=2), event(2, prev=1))],
           [ev("valid", "cycle"), ev("valid", "cycle")])
    kc = event(1, "ConversationKeyChangeEvent", {"conversation_key_version": CKV,
                                                 "conversation_participant_keys": participants([ALICE, BOB])})
    s.case("chain/key-change-repeated-in-meta", "the API repeats key changes in meta: duplicate, info only",
           [page(event(2, prev=1), kc, meta=[kc])],
           [ev("valid", "linked"), ev("needs_conversation_key", "start"),
            ev("needs_conversation_key", "duplicate", info_duplicate=True)], strict=True)
    s.case("chain/key-change-only-in-meta", "a key change delivered only in meta is out of band, never a start",
           [page(event(5, prev=4), meta=[kc])],
           [ev("valid", "start"), ev("needs_conversation_key", "out_of_band")])
    s.case("chain/meta-does-not-excuse", "a data event whose predecessor came only in meta is a gap",
           [page(event(3, prev=2), event(2, prev=1), meta=[kc]), page(event(0))],
           [ev("valid", "linked"), ev("valid", "gap"), ev("needs_conversation_key", "out_of_band"),
            ev("valid", "start")])
    s.case("chain/meta-not-key-change", "meta.conversation_key_events carrying a message is an error",
           [page(event(2, prev=1), event(1), meta=[event(7)])],
           [ev("valid", "linked"), ev("valid", "start"), ev("valid", "out_of_band", "meta_not_key_change")])
    s.case("chain/one-start", "at most one start: every other event without its predecessor is a gap",
           [page(event(9, prev=8), event(5, prev=4), event(2, prev=1))],
           [ev("valid", "gap"), ev("valid", "gap"), ev("valid", "start")])
    zeros = event(None, sequence_id="0" + seq(1))
    s.case("chain/leading-zeros", "0123 and 123 are one position: two different events there conflict",
           [page(zeros, event(1))], [ev("valid", "conflict"), ev("valid", "conflict")])
    original = event(1, message_id="m-replayed")
    s.case("chain/replay", "a signed message id at a second position is a replay (the later copy)",
           [page(event(3, prev=2, message_id="m-replayed"), event(2, prev=1), original)],
           [ev("valid", "linked", "replay"), ev("valid", "linked"), ev("valid")])
    s.case("chain/no-sequence-id", "an event without a sequence id cannot be placed",
           [page(event(None))], [ev("valid", "gap")])


def envelopes(s: Suite) -> None:
    good = event(2, prev=1, conversation_token="tok-1")
    for field, value in (("sender_id", "2222"), ("conversation_id", "1111:3333"), ("sequence_id", seq(9)),
                         ("previous_sequence_id", seq(0)), ("created_at_msec", "1"), ("is_trusted", False),
                         ("conversation_token", "tok-2"), ("id", "not-an-id")):
        item = item_json(good)
        item[field] = value
        findings = ["envelope_mismatch"] + (["untrusted"] if field == "is_trusted" else [])
        s.case(f"envelope/{field}", f"JSON {field} differs from the encoded event", [{"data": [item]}],
               [ev("valid", "start", *findings)])
    item = item_json(good)
    item["message_event_signature"]["public_key_version"] = "1"
    s.case("envelope/signature-copy", "the JSON copy of the signature metadata differs", [{"data": [item]}],
           [ev("valid", "start", "envelope_mismatch")])
    s.case("envelope/shape-2167", "the 2.167 item shape (id, previous_id, created_at)",
           [page(event(2, prev=1), event(1), shape="2.167")], [ev("valid", "linked"), ev("valid")])
    item = item_json(good)
    item["id"] = good.event.message_id
    s.case("envelope/id-is-message-id", "`id` may carry the message id", [{"data": [item]}], [ev("valid")])
    item = item_json(good)
    item["sequence_id"] = 12345
    s.case("envelope/wrong-json-type", "a number where a string belongs: a finding, the event still verifies",
           [{"data": [item]}], [ev("valid", "start", "envelope_mismatch")])
    untrusted = event(1, is_trusted=False)
    s.case("envelope/untrusted", "is_trusted false is a warning", [page(untrusted)], [ev("valid", "start", "untrusted")])
    s.case("envelope/untrusted-strict", "under --strict untrusted fails", [page(untrusted)],
           [ev("valid", "start", "untrusted")], strict=True)
    s.case("envelope/conversation-mismatch", "an event of another conversation inside a page",
           [page(event(3, prev=2), event(2, prev=1, conversation_id="1111:3333"), event(1))],
           [ev("valid", "linked"), ev("valid", "linked", "conversation_mismatch"), ev("valid")])
    s.case("envelope/api-errors", "a partial error saying an event was not returned: the history is incomplete",
           [page(event(1), errors=[{"title": "Not Found Error", "detail": "one item could not be hydrated",
                                    "type": "https://api.x.com/2/problems/resource-not-found",
                                    "resource_type": "event"}])], [ev("valid")], findings=("incomplete",))
    s.case("envelope/api-errors-field-level", "a field-level partial error is reported, not a failure",
           [page(event(1), errors=[{"title": "Field Authorization Error", "detail": "not authorized for a field",
                                    "type": "https://api.x.com/2/problems/not-authorized-for-field"}])],
           [ev("valid")])
    s.case("envelope/not-the-last-page", "only pages with a next_token: the older events were not given",
           [page(event(2, prev=1), meta={"next_token": "t2", "has_more": True})], [ev("valid")],
           findings=("incomplete",))
    s.case("envelope/has-more-without-token", "has_more true on the page without a next_token: incomplete",
           [page(event(1), meta={"has_more": True})], [ev("valid")], findings=("incomplete",))
    s.case("envelope/has-more-not-boolean", "has_more that is not a boolean (the string \"true\") on the page "
           "without a next_token: judged like true, incomplete",
           [page(event(1), meta={"has_more": "true"})], [ev("valid")], findings=("incomplete",))
    kc = event(1, "ConversationKeyChangeEvent", {"conversation_key_version": CKV,
                                                 "conversation_participant_keys": participants([ALICE, BOB])})
    s.case("envelope/meta-only-last-page", "a last page with no data event (only a key change in meta) after a "
           "missing page: incomplete", [page(event(5, prev=4), meta={"next_token": "t2"}), page(meta=[kc])],
           [ev("valid", "start"), ev("needs_conversation_key", "out_of_band")], findings=("incomplete",))
    s.case("envelope/meta-only-last-page-ends-a-whole-history", "a last page with only a key change in meta ends a "
           "history that reaches its first event", [page(event(3, prev=2), event(2), meta={"next_token": "t2"}),
                                                     page(meta=[kc])],
           [ev("valid", "linked"), ev("valid", "start"), ev("needs_conversation_key", "out_of_band")])


def malformed(s: Suite) -> None:
    good = event(1).raw

    def blob_case(name: str, why: str, blob: bytes) -> None:
        s.case(f"malformed/{name}", why, [{"data": [{"encoded_event": base64.b64encode(blob).decode()}]}],
               [ev("malformed", "gap")])

    s.case("malformed/not-base64", "encoded_event is not base64", [{"data": [{"encoded_event": "!!!not-an-event!!!"}]}],
           [ev("malformed", "gap")])
    blob_case("truncated-thrift", "the event is cut in the middle", good[: len(good) // 2])
    blob_case("absurd-string-length", "a string claims 2^31-1 bytes", b"\x0b\x00\x01\x7f\xff\xff\xff" + b"1")
    blob_case("negative-length", "a negative string length", b"\x0b\x00\x01\xff\xff\xff\xfe")
    blob_case("huge-list", "a list claims 10^6 elements", b"\x0f\x00\x63\x08" + struct.pack(">i", 10 ** 6) + b"\0" * 64)
    blob_case("deep-nesting", "10^5 nested structs", b"\x0c\x00\x63" * 100_000 + b"\x00" * 100_001)
    blob_case("wrong-wire-type", "sequence_id sent as an i32: read as a string, as the SDK does, the stream "
              "runs out", b"\x08\x00\x01\x00\x00\x00\x01\x00")
    blob_case("empty", "zero bytes", b"")
    s.case("malformed/missing-encoded-event", "an item without encoded_event",
           [{"data": [{"sequence_id": seq(1), "sender_id": "1111"}]}], [ev("malformed", "start")])
    s.case("malformed/encoded-event-not-string", "encoded_event is a number",
           [{"data": [{"encoded_event": 5, "sequence_id": seq(1)}]}], [ev("malformed", "start", "envelope_mismatch")])
    s.case("malformed/item-not-object", "a data item is a string, the other event still verifies",
           [{"data": [item_json(event(1)), "junk"]}], [ev("valid"), ev("malformed", "gap", "envelope_mismatch")])
    s.case("malformed/page-not-json", "the page is not JSON: could not complete", [b"{not json"], [], exit3=True)
    s.case("malformed/page-is-array", "the page is a JSON array", [b"[1, 2, 3]\n"], [], exit3=True)
    s.case("malformed/data-not-array", "`data` is a string", [{"data": "nope"}], [], exit3=True)


def _bent(forged: Forged, bend: Any) -> dict:
    """A data item whose encoded event is ``forged`` with its Thrift structure bent by ``bend``."""
    tree, trailing = tt.parse(forged.raw)
    extra = bend(tree)
    raw = tt.write(tree, trailing + (extra if isinstance(extra, bytes) else b""))
    return {"encoded_event": base64.b64encode(raw).decode()}


def _detail(tree: tt.Struct) -> tt.Struct:
    return tree.first(7).value


def _nested(depth: int) -> tt.Struct:
    value = tt.Struct()
    for _ in range(depth - 1):
        value = tt.Struct([tt.Field(12, 1, value)])
    return value


def structure(s: Suite) -> None:
    """Thrift oddities, each resolved exactly as the official SDK (chatxdk 0.5.2) resolves them; the
    differential fuzzer (tests/fuzz/structural.py) checks the same rules on random mutations."""
    message = event(1)
    group_create = event(1, "GroupChangeEvent.GroupCreate", {"member_ids": ["1111", "2222"], "admin_ids": ["1111"],
                                                            "conversation_key_version": CKV, "title": "G"},
                         conversation_id=GROUP)
    metadata = event(1, "ConversationMetadataChangeEvent.MuteConversation", {"muted_conversation_ids": [CONV]},
                     signature_version="0")
    cases: list[tuple[str, str, Forged, Any, str, tuple]] = [
        ("repeated-field-last-wins", "a second message_id after the signed one: the last wins, the signature fails",
         message, lambda t: t.fields.insert(len(t.fields), tt.Field(11, 2, b"other")), "invalid", ()),
        ("repeated-field-first-ignored", "a second message_id before the signed one: ignored",
         message, lambda t: t.fields.insert(0, tt.Field(11, 2, b"other")), "valid", ()),
        ("known-field-wrong-wire-type", "is_trusted with wire type i32 is read as a bool (one byte); the rest "
         "desynchronises into a STOP", message, lambda t: t.fields.append(tt.Field(8, 11, 1)), "valid",
         ("trailing_bytes",)),
        ("skipped-field-any-bytes", "an unknown string field need not be UTF-8", message,
         lambda t: t.fields.append(tt.Field(11, 50, b"\xff\xfe")), "valid", ()),
        ("known-string-invalid-utf8", "a known string field must be UTF-8", message,
         lambda t: t.fields.append(tt.Field(11, 5, b"\xff\xfe")), "malformed", ()),
        ("struct-depth-64", "64 nested structs counting the event: readable", message,
         lambda t: t.fields.append(tt.Field(12, 50, _nested(63))), "valid", ()),
        ("struct-depth-65", "65 nested structs: unreadable", message,
         lambda t: t.fields.append(tt.Field(12, 50, _nested(64))), "malformed", ()),
        ("detail-empty-union", "a detail union with no member: unreadable", message,
         lambda t: _detail(t).fields.clear(), "malformed", ()),
        ("detail-unknown-only", "a detail with only an unknown member: no detail, nothing signed", message,
         lambda t: _detail(t).fields.__setitem__(slice(None), [tt.Field(12, 11, tt.Struct())]), "not_signed",
         ("unknown_event_type",)),
        ("detail-unknown-before-known", "an unknown union member beside the known one is skipped", message,
         lambda t: _detail(t).fields.insert(0, tt.Field(12, 99, tt.Struct())), "valid", ()),
        ("detail-two-members", "two known members in one union: unreadable", message,
         lambda t: _detail(t).fields.append(tt.Field(12, 6, tt.Struct())), "malformed", ()),
        ("detail-shadowed", "a second detail (typing) after the message: the SDK reads a typing event; the "
         "hidden message fails the event", message,
         lambda t: t.fields.insert(len(t.fields), tt.Field(12, 7, tt.Struct([tt.Field(12, 6, tt.Struct())]))),
         "not_signed", ("shadowed_detail",)),
        ("detail-unknown-repeat-keeps-message", "a second detail with only an unknown member keeps the message",
         message, lambda t: t.fields.append(tt.Field(12, 7, tt.Struct([tt.Field(12, 99, tt.Struct())]))),
         "valid", ()),
        ("message-without-contents", "a message without contents: the SDK shows it as unknown and unverified; "
         "a signed kind fails", message,
         lambda t: _detail(t).fields[0].value.fields.__setitem__(
             slice(None), [f for f in _detail(t).fields[0].value.fields if f.fid != 100]), "unverifiable", ()),
        ("bool-byte-2", "a bool byte of 2 is true", message,
         lambda t: t.fields.append(tt.Field(2, 11, 2)), "valid", ()),
        ("trailing-bytes", "bytes after the event's end: ignored by the SDK, an error here", message,
         lambda t: b"\x0b\x00\x02", "valid", ("trailing_bytes",)),
        ("group-change-unknown-only", "a group change with only an unknown variant: nothing the protocol signs",
         group_create, lambda t: _detail(t).first(4).value.first(1).value.fields.__setitem__(
             slice(None), [tt.Field(12, 99, tt.Struct())]), "unverifiable", ()),
        ("group-change-empty-union", "a group change union with no member: unreadable", group_create,
         lambda t: _detail(t).first(4).value.first(1).value.fields.clear(), "malformed", ()),
        ("metadata-unknown-variant-version-0", "found by the structural fuzzer: the version floor is checked "
         "before the payload, so an unknown settings variant signed at version 0 is a downgrade", metadata,
         lambda t: _detail(t).first(9).value.first(1).value.fields.__setitem__(
             slice(None), [tt.Field(12, 0, tt.Struct())]), "unsupported_version", ()),
        ("unencrypted-message-version-minus-1", "found by the structural fuzzer: a message without a "
         "conversation key version is never signed, whatever its signature version", message,
         lambda t: [_detail(t).fields[0].value.fields.__setitem__(
             slice(None), [f for f in _detail(t).fields[0].value.fields if f.fid != 101]),
             [setattr(f, "value", b"-1") for f in t.first(9).value.fields if f.fid == 3]], "unverifiable", ()),
        ("signature-version-5000-digits", "a 5,000-digit signature_version overflows i32: treated as 7", message,
         lambda t: [setattr(f, "value", b"7" * 5000) for f in t.first(9).value.fields if f.fid == 3], "valid", ()),
    ]
    for name, why, forged, bend, status, findings in cases:
        chain = "gap" if status == "malformed" else "start"
        s.case(f"structure/{name}", why, [{"data": [_bent(forged, bend)]}], [ev(status, chain, *findings)])


def fail_closed(s: Suite) -> None:
    """A PASS needs proof: trusted keys, events, at least one proven signature, a page that is a page."""
    s.case("proof/no-keyring", "valid signatures under keys taken from the events only: not a PASS",
           [page(event(1))], [ev("valid")], ring=None)
    s.case("proof/no-keyring-allowed", "--allow-embedded-keys accepts the weaker claim",
           [page(event(1))], [ev("valid")], ring=None, allow_embedded_keys=True)
    s.case("proof/no-events", "an empty history proves nothing", [{"data": [], "meta": {"result_count": 0}}], [])
    s.case("proof/no-events-allowed", "--allow-empty accepts an empty history",
           [{"data": [], "meta": {"result_count": 0}}], [], allow_empty=True)
    kc = event(1, "ConversationKeyChangeEvent", {"conversation_key_version": CKV,
                                                 "conversation_participant_keys": participants([ALICE, BOB])})
    s.case("proof/nothing-proven", "only a key change that needs the conversation key: nothing proven",
           [page(kc)], [ev("needs_conversation_key")])
    # round 97: a server that hid every event and served the genuine key change in meta alone passed
    s.case("proof/key-change-only-in-meta-is-no-history", "data [] and a proven key change only in "
           "meta.conversation_key_events: meta adds context, not events, so the history is empty",
           [page(meta=[kc])], [ev("valid", "out_of_band")], conversation_keys={CKV: CKEY}, findings=("no_events",))
    s.case("proof/key-change-in-meta-proves-nothing", "an unsigned data event and a proven key change only in "
           "meta: nothing of the history is proven",
           [page(event(2, "MessageTypingEvent", {"conversation_id": CONV}, prev=1, sign=False), meta=[kc])],
           [ev("not_signed", "start"), ev("valid", "out_of_band")], conversation_keys={CKV: CKEY},
           findings=("nothing_proven",))
    s.case("proof/api-error-body", "an API error body instead of a page: could not complete",
           [{"errors": [{"title": "Forbidden", "detail": "You are not permitted to perform this action.",
                         "type": "about:blank"}]}], [], exit3=True)
    s.case("proof/empty-object", "{} is not an events page", [{}], [], exit3=True)
    other = {**MALLORY.keyring_entry()}
    for order, rows in (("good-first", [ALICE.keyring_entry(), other]), ("good-last", [other, ALICE.keyring_entry()])):
        s.case(f"keys/duplicate-rows-{order}", "two different keys for one (user, version): a conflict whatever "
               "the row order", [page(event(1))], [ev("unknown_key", "start", "key_conflict")], ring=rows)
    bad_binding = {**ALICE.keyring_entry(), "identity_public_key_signature": BOB.keyring_row()["identity_public_key_signature"]}
    s.case("keys/bad-binding-row-dropped", "a row failing its binding is dropped; a good row for the key counts",
           [page(event(1))], [ev("valid")], ring=[bad_binding, ALICE.keyring_entry()])
    s.case("keys/unusable-entry", "a keyring entry whose key is not a P-256 point: could not complete",
           [page(event(1))], [], ring=[ALICE.keyring_entry(), {**BOB.keyring_entry(), "signing_public_key": "BAAAAAAA"}],
           exit3=True)
    foreign = {ALICE.user_id: {"data": [ALICE.keyring_row(), {**BOB.keyring_row(), "user_id": BOB.user_id}]}}
    s.case("keys/foreign-user-row", "the saved keys of one user name another user: refused",
           [page(event(1))], [], ring=foreign, exit3=True)


def fixture(s: Suite) -> None:
    shared = ROOT.parent / "tests" / "data" / "chat-xdk-sdk_vectors.json"
    f = json.loads(shared.read_text())
    ring = [{"user_id": "1111", "public_key_version": "1", "signing_public_key": f["signing_public_b64"],
             "public_key": f["identity_public_b64"], "identity_public_key_signature": f["identity_public_key_signature_b64"]}]
    key = {"1001": base64.b64decode(f["conversation_key_b64"])}

    def one(name: str, why: str, b64: str, status: str, chain: str = "start", **kw: Any) -> None:
        s.case(f"fixture/{name}", why, [{"data": [{"encoded_event": b64}]}], [ev(status, chain)], ring=ring, **kw)

    one("message", "the official SDK fixture message verifies", f["event_message_b64"], "valid")
    one("reply", "the fixture reply (a MessageCreateEvent) verifies", f["event_reply_valid_b64"], "valid")
    one("key-change-with-key", "the fixture v7 key change verifies with the conversation key",
        f["event_key_change_b64"], "valid", conversation_keys=key)
    one("key-change-without-key", "without the conversation key it cannot be verified",
        f["event_key_change_b64"], "needs_conversation_key")
    one("failure", "the fixture failure event is unsigned", f["event_failure_b64"], "not_signed")
    one("garbage", "the fixture garbage is not base64", f["event_garbage_b64"], "malformed", "gap")


def semantics(s: Suite) -> None:
    """What signed events claim about other events (verifier/semantics.py, docs/participant.md)."""
    def delete(n: int, targets: list[str], prev: int | None) -> Forged:
        return event(n, "MessageDeleteEvent", {"sequence_ids": targets, "delete_message_action": 2}, prev=prev)

    m1, m2 = event(1), event(2, prev=1, sender=BOB)
    window_m1 = event(1, prev=0)  # the oldest event of a window: its predecessor was not fetched
    cases = [
        ("delete-earlier", "a delete of an earlier message", [seq(1)], ev("valid", "linked")),
        ("delete-itself", "a delete that names itself", [seq(3)], ev("valid", "linked", "target_after_event")),
        ("delete-later", "a delete of a later message", [seq(4)], ev("valid", "linked", "target_after_event")),
        ("delete-missing-inside-range", "a delete of a sequence id the fetched range covers but the history lacks",
         [str(int(seq(1)) + 1)], ev("valid", "linked", "target_missing", error=True)),
        ("delete-older-than-first-event", "a delete of a message older than the history's first event "
         "(one without a previous pointer): events were cut from the history",
         [seq(0)], ev("valid", "linked", "target_missing", error=True)),
    ]
    for name, description, targets, expected in cases:
        s.case(f"semantics/{name}", description, [page(event(4, prev=3), delete(3, targets, prev=2), m2, m1)],
               [ev("valid", "linked"), expected, ev("valid", "linked"), ev("valid", "start")])
    s.case("semantics/delete-older-than-window", "a delete of a message older than the window: a warning",
           [page(event(4, prev=3), delete(3, [seq(0)], prev=2), m2, window_m1)],
           [ev("valid", "linked"), ev("valid", "linked", "target_missing"), ev("valid", "linked"),
            ev("valid", "start")])
    cut_read = event(3, "MarkConversationReadEvent", {"seen_until_sequence_id": seq(0)}, prev=2, sender=BOB)
    s.case("semantics/read-marker-older-than-first-event",
           "a signed read marker naming an event older than the history's first event: events were cut",
           [page(event(4, prev=3), cut_read, m2, m1)],
           [ev("valid", "linked"), ev("valid", "linked", "target_missing", error=True), ev("valid", "linked"),
            ev("valid", "start")])
    key_change_body = {"conversation_key_version": CKV, "conversation_participant_keys": participants([ALICE, BOB])}
    kc2 = event(2, "ConversationKeyChangeEvent", key_change_body, prev=1, signature_version="5")
    s.case("semantics/delete-of-a-key-change", "a delete names a signed message: a key change is not one",
           [page(event(4, prev=3), delete(3, [seq(2)], prev=2), kc2, m1)],
           [ev("valid", "linked"), ev("valid", "linked", "target_missing", error=True), ev("valid", "linked"),
            ev("valid", "start")])
    # round 74: a cut history (1-3 dropped, the delete's pointer removed) whose delete names dropped
    # message 2, the key change the API repeats in meta relabelled to sequence id 2 to stand in for it
    kc1 = event(1, "ConversationKeyChangeEvent", key_change_body, signature_version="5")
    stand_in = copy.deepcopy(kc1)
    stand_in.event.sequence_id = seq(2)
    s.case("semantics/cut-target-stood-in-for-by-meta",
           "a delete's dropped target is not stood in for by a meta key change relabelled to its id",
           [page(event(5, prev=4), delete(4, [seq(2)], prev=None), meta=[reencode(stand_in)])],
           [ev("valid", "linked"), ev("valid", "start", "target_missing", error=True),
            ev("valid", "out_of_band")])
    # round 75: the same with the new oldest event's pointer to dropped message 2 kept (a window: a
    # warning), and the meta copy relabelled to 2, where that pointer leads: still only a warning
    s.case("semantics/window-target-stood-in-for-by-meta",
           "a window's dropped target is not stood in for by the meta copy its oldest event points at",
           [page(event(5, prev=4), delete(4, [seq(2)], prev=3), event(3, prev=2), meta=[reencode(stand_in)])],
           [ev("valid", "linked"), ev("valid", "linked", "target_missing"), ev("valid", "start"),
            ev("valid", "out_of_band")])
    # round 77: a window (message 4 dropped, the read marker re-linked over it) whose read marker names 4,
    # inside the data's range; two key changes served only in meta: one below the data (where the oldest
    # event points), its unsigned previous pointer leading forward to the other, relabelled to 4
    rotation = event(2, "ConversationKeyChangeEvent", {**key_change_body, "conversation_key_version": str(T0 + 3)},
                     signature_version="5")
    rotation.event.previous_sequence_id = seq(4)
    relabelled = copy.deepcopy(kc1)
    relabelled.event.sequence_id = seq(4)
    marker = event(5, "MarkConversationReadEvent", {"seen_until_sequence_id": seq(4)}, prev=3, sender=BOB)
    s.case("semantics/read-marker-target-stood-in-for-by-meta-pointer",
           "a read marker's dropped target is not stood in for by a meta key change a meta pointer leads to",
           [page(event(6, prev=5), marker, event(3, prev=2, sender=BOB),
                 meta=[reencode(rotation), reencode(relabelled)])],
           [ev("valid", "linked"), ev("valid", "linked", "target_missing", error=True), ev("valid", "start"),
            ev("valid", "out_of_band"), ev("valid", "out_of_band")])
    # round 77: an event without a detail is read (not signed); a read marker may name it (a warning),
    # a delete may not (it names a signed message)
    bare = event(2, "MessageTypingEvent", {"conversation_id": CONV}, prev=1, sender=BOB, sign=False)
    bare.event.kind, bare.event.body = None, None
    for name, cut, error in (("read-marker-of-an-event-without-a-detail", event(
            4, "MarkConversationReadEvent", {"seen_until_sequence_id": seq(2)}, prev=3, sender=BOB), False),
                             ("delete-of-an-event-without-a-detail", delete(4, [seq(2)], prev=3), True)):
        s.case(f"semantics/{name}", "an event without a detail is an unsigned event: a read marker may name it "
               "(a warning), a delete may not (it names a signed message)",
               [page(cut, event(3, prev=2), reencode(bare), m1)],
               [ev("valid", "linked", "target_missing", error=error), ev("valid", "linked"),
                ev("not_signed", "linked", "unknown_event_type"), ev("valid", "start")])
    read = event(3, "MarkConversationReadEvent", {"seen_until_sequence_id": seq(4)}, prev=2, sender=BOB)
    s.case("semantics/read-marker-ahead", "a signed read marker for a later event",
           [page(event(4, prev=3), read, m2, m1)],
           [ev("valid", "linked"), ev("valid", "linked", "target_after_event"), ev("valid", "linked"),
            ev("valid", "start")])

    def group_event(n: int, kind: str, body: dict, prev: int | None, sender: Identity = ALICE) -> Forged:
        return event(n, kind, body, prev=prev, sender=sender, conversation_id=GROUP)

    def message(n: int, sender: Identity, prev: int | None) -> Forged:
        return event(n, prev=prev, sender=sender, conversation_id=GROUP)

    create = group_event(1, "GroupChangeEvent.GroupCreate", {"member_ids": ["1111", "2222"], "admin_ids": ["1111"],
                                                              "conversation_key_version": CKV}, None)
    add = group_event(3, "GroupChangeEvent.GroupMemberAddChange", {
        "member_ids": ["3333"], "current_member_ids": ["1111", "2222"], "current_admin_ids": ["1111"],
        "conversation_key_version": CKV}, 2)
    remove = group_event(3, "GroupChangeEvent.GroupMemberRemoveChange", {"member_ids": ["2222"]}, 2)
    s.case("semantics/group-non-member", "a group message from a user the group was not created with",
           [page(message(2, CAROL, 1), create)], [ev("valid", "linked", "non_member_sender"), ev("valid")])
    s.case("semantics/group-member-added", "a member added by a signed change may write",
           [page(message(4, CAROL, 3), add, message(2, BOB, 1), create)],
           [ev("valid", "linked"), ev("valid", "linked"), ev("valid", "linked"), ev("valid")])
    s.case("semantics/group-member-removed", "a removed member's later message",
           [page(message(4, BOB, 3), remove, message(2, BOB, 1), create)],
           [ev("valid", "linked", "non_member_sender"), ev("valid", "linked"), ev("valid", "linked"), ev("valid")])
    # round 89: a signed removal is positive knowledge even where membership is unknown
    s.case("semantics/group-member-removed-in-window", "in a window without the group's create, a member a "
           "signed removal took out is not a member after it",
           [page(message(4, BOB, 3), remove, message(2, BOB, 1), message(1, ALICE, None))],
           [ev("valid", "linked", "non_member_sender"), ev("valid", "linked"), ev("valid", "linked"), ev("valid")])
    s.case("semantics/group-membership-unknown", "without a create or add in the window nobody is flagged",
           [page(message(2, CAROL, 1), message(1, BOB, None))], [ev("valid", "linked"), ev("valid")])
    # review 37: neither the signature_version nor list boundaries are signed; a version-7 create served
    # as version 2 reads its signed (legacy flag, title, avatar) as member ids, the title a user's id
    honest = group_event(1, "GroupChangeEvent.GroupCreate", {"member_ids": ["1111", "2222"], "admin_ids": ["1111"],
                                                             "title": "3333", "conversation_key_version": CKV}, None)
    re_cut = event(1, "GroupChangeEvent.GroupCreate", {"member_ids": ["1111", "2222", "null", "3333", "null"],
                                                       "admin_ids": ["1111"], "conversation_key_version": CKV},
                   conversation_id=GROUP, signature_version="2", payload=honest.payload)
    s.case("semantics/group-create-re-cut", "a version-7 create served as version 2: the signed title, a user's "
           "id, is not a member", [page(message(2, CAROL, 1), re_cut)],
           [ev("valid", "linked", "non_member_sender"), ev("valid")])
    # review 50: without a conversation id the signed payload leaves it out, and lists have no bounds:
    # a member's add signed in another group, served here with its conversation id dropped and that id
    # at the head of its new members, signs the same bytes
    elsewhere = event(3, "GroupChangeEvent.GroupMemberAddChange", {
        "member_ids": ["3333"], "current_member_ids": ["1111", "2222"], "current_admin_ids": ["2222"],
        "conversation_key_version": CKV}, prev=2, sender=BOB, conversation_id="g-other")
    moved = event(3, "GroupChangeEvent.GroupMemberAddChange", {
        "member_ids": ["g-other", "3333"], "current_member_ids": ["1111", "2222"], "current_admin_ids": ["2222"],
        "conversation_key_version": CKV}, prev=2, sender=BOB, conversation_id=None, payload=elsewhere.payload)
    s.case("semantics/group-change-without-conversation", "a member's add signed in another group, served "
           "without its conversation id: bound to no conversation, it adds nobody",
           [page(message(4, CAROL, 3), moved, message(2, BOB, 1), create)],
           [ev("valid", "linked", "non_member_sender"), ev("valid", "linked", "conversation_mismatch"),
            ev("valid", "linked"), ev("valid")])
    # review 70: a group did not exist before its create; an outsider's event placed before it (the
    # create's unsigned previous pointer re-linked) passed, membership being unknown there
    linked_create = group_event(1, "GroupChangeEvent.GroupCreate", {"member_ids": ["1111", "2222"],
                                                                     "admin_ids": ["1111"],
                                                                     "conversation_key_version": CKV}, 0)
    s.case("semantics/group-outsider-before-create", "an outsider's message placed before the group's create: "
           "nobody is a member before the group is made",
           [page(message(2, BOB, 1), linked_create, message(0, CAROL, None))],
           [ev("valid", "linked"), ev("valid", "linked"), ev("valid", "start", "non_member_sender")])
    initial_key = event(0, "ConversationKeyChangeEvent", {"conversation_key_version": CKV,
                                                          "conversation_participant_keys": participants([ALICE, BOB])},
                        conversation_id=GROUP, signature_version="5")
    s.case("semantics/group-key-change-before-create", "the creator's key change of the key its create names "
           "comes first (the SDK makes it so)", [page(message(2, BOB, 1), linked_create, initial_key)],
           [ev("valid", "linked"), ev("valid", "linked"), ev("valid")])
    stray_create = event(3, "GroupChangeEvent.GroupCreate", {"member_ids": ["1111", "2222"], "admin_ids": ["1111"],
                                                             "conversation_key_version": CKV}, prev=2)
    s.case("semantics/group-create-in-one-to-one", "a GroupCreate (it signs no conversation id) in a 1:1 "
           "conversation is another group's", [page(stray_create, event(2, prev=1, sender=BOB), event(1))],
           [ev("valid", "linked", "conversation_mismatch"), ev("valid", "linked"), ev("valid")])


def generate(out: Path) -> list[str]:
    from verifier.vectors import SCHEMA_FILES, suite_digest
    if out.exists():
        for child in out.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
    suite = Suite(out)
    for group in (kinds, versions, signatures, encoding, keys, payloads, chains, envelopes, malformed, structure,
                  fail_closed, fixture, semantics):
        group(suite)
    for name in SCHEMA_FILES:  # hand-written, versioned with the cases
        if (ROOT / name).resolve() != (out / name).resolve():
            shutil.copyfile(ROOT / name, out / name)
    (out / "index.json").write_text(json.dumps({"schema": "xchat-verify/vectors/v1", "suite_version": SUITE_VERSION,
                                                "digest": suite_digest(out), "cases": suite.ids}, indent=1) + "\n")
    return suite.ids


def unreleased_change(out: Path) -> str | None:
    """Why the generated suite may not carry SUITE_VERSION (its content differs from the release)."""
    digest = json.loads((out / "index.json").read_text())["digest"]
    if RELEASES.get(SUITE_VERSION) == digest:
        return None
    return (f"the suite's content is not the released {SUITE_VERSION} (digest {digest}): set SUITE_VERSION to a "
            f"new version and add it to RELEASES with this digest")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    print(f"{len(generate(target))} cases written to {target}")
    problem = unreleased_change(target)
    if problem:
        print(f"generate.py: {problem}", file=sys.stderr)
        sys.exit(1)
