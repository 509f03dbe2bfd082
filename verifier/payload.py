"""Rebuild the exact bytes a sender signed (docs/protocol.md §3), for every signed kind and version 2–7."""

from __future__ import annotations

import re
from binascii import b2a_base64 as _b2a_base64
from collections.abc import Callable, Mapping, Sequence
from itertools import chain, repeat
from operator import mod
from typing import Any

from .errors import XChatVerifyError
from .wire import MessageEvent, b64encode_nopad, compiled_twin

CURRENT_SIGNATURE_VERSION = 7
MIN_SIGNATURE_VERSION = 2
CKEY_PLAINTEXT_SIGNATURE_VERSION = 6

# Kinds the protocol never signs (the SDK returns them without a verdict).
UNSIGNED_KINDS = frozenset({
    "MessageTypingEvent", "MessageFailureEvent", "MemberAccountDeleteEvent", "GrokSearchResponseEvent",
})
# Detail kinds whose every variant must be signed: a group or settings change the protocol cannot
# verify (GroupAdminSettingsChange, an unknown or absent variant) is refused, as by the SDK.
SIGNED_FAMILIES = ("GroupChangeEvent", "ConversationMetadataChangeEvent")


def must_be_signed(kind: str | None) -> bool:
    """Does this detail kind need a verified signature (everything but the unsigned kinds and
    unknown or absent details)?"""
    if kind is None:
        return False
    return kind in BUILDERS or kind.partition(".")[0] in SIGNED_FAMILIES

_I32_RE = re.compile(r"[+-]?[0-9]+")
_I32_MIN, _I32_MAX = -(2 ** 31), 2 ** 31 - 1


class PayloadUnavailable(XChatVerifyError):
    """The payload cannot be rebuilt; ``status`` is ``unverifiable`` or ``needs_conversation_key``."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def parse_signature_version(text: str | None) -> tuple[int, str]:
    """Parse like Rust's ``str::parse::<i32>``; missing or unparseable means current (7)."""
    if text == "7":
        return 7, ""
    if text is None:
        return CURRENT_SIGNATURE_VERSION, "signature_version missing, treated as 7"
    if _I32_RE.fullmatch(text) and len(text.lstrip("+-").lstrip("0")) <= 10:  # longer overflows i32
        value = int(text)
        if _I32_MIN <= value <= _I32_MAX:
            return value, ""
    shown = text if len(text) <= 40 else f"{text[:20]}…({len(text)} characters)"
    return CURRENT_SIGNATURE_VERSION, f"signature_version {shown!r} unparseable, treated as 7"


Body = Mapping[str, Any]
Keys = Mapping[str, bytes] | None
Builder = Callable[[Body, int, Keys], list[Any]]  # (detail body, signature version, conversation keys) -> extras


def _null(value: Any) -> str:
    return "null" if value is None else _render(value)


def _render(value: Any) -> str:
    """A value as the SDK puts it in a payload (``semantics`` re-reads signed values with it)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _require(body: Mapping[str, Any], field: str) -> Any:
    value = body.get(field)
    if value is None:
        raise PayloadUnavailable("unverifiable", f"required field {field} is missing")
    return value


def _message_create(body: Body, version: int, keys: Keys) -> list[Any]:
    contents = _require(body, "contents")
    ckv = body.get("conversation_key_version")
    if ckv is None:
        raise PayloadUnavailable(
            "unverifiable", "unencrypted message (no conversation_key_version): never signed")
    return [ckv, b64encode_nopad(contents)]


CONVERSATION_KEY_BYTES = 32  # XChaCha20-Poly1305 / secretbox keys (protocol.md §5)


def _key_change(body: Body, version: int, keys: Keys) -> list[Any]:
    ckv = _require(body, "conversation_key_version")
    if version >= CKEY_PLAINTEXT_SIGNATURE_VERSION:
        key = (keys or {}).get(ckv)
        if key is None:
            raise PayloadUnavailable(
                "needs_conversation_key",
                f"v{version} key change signs the plaintext conversation key {ckv}")
        if len(key) != CONVERSATION_KEY_BYTES:  # the SDK cannot check it with such a key (review 53)
            raise PayloadUnavailable(
                "unverifiable", f"the conversation key given for version {ckv} is {len(key)} bytes, not "
                                f"{CONVERSATION_KEY_BYTES}: a v{version} key change cannot be checked with it")
        return [ckv, b64encode_nopad(key)]
    participants = _require(body, "conversation_participant_keys")
    out: list[Any] = [ckv]
    for p in participants:
        out += [p.get("user_id") or "", p.get("encrypted_conversation_key") or "",
                p.get("public_key_version") or ""]
    return out


def _message_delete(body: Body, version: int, keys: Keys) -> list[Any]:
    action = _require(body, "delete_message_action")
    return [str(action), *_require(body, "sequence_ids")]


def _conversation_delete(body: Body, version: int, keys: Keys) -> list[Any]:
    options = body.get("options") or {}
    return [_render(options[f]) for f in ("clear_all_messages", "sort_order_msec") if f in options]


def _mark_read(body: Body, version: int, keys: Keys) -> list[Any]:
    out: list[Any] = [_require(body, "seen_until_sequence_id")]
    if body.get("seen_at_millis") is not None:
        out.append(str(body["seen_at_millis"]))
    return out


def _mark_unread(body: Body, version: int, keys: Keys) -> list[Any]:
    seen = body.get("seen_until_sequence_id")
    return [] if seen is None else [seen]


def _member_add(body: Body, version: int, keys: Keys) -> list[Any]:
    out: list[Any] = [*_require(body, "member_ids"), *_require(body, "current_member_ids"),
           *_require(body, "current_admin_ids")]
    if 3 <= version <= 6:
        out += body.get("current_pending_member_ids") or []
    out += [_null(body.get("current_title")), _null(body.get("current_avatar_url")),
            _null(body.get("current_ttl_msec")), _require(body, "conversation_key_version")]
    if version >= 5:
        out.append(_null(body.get("screen_capture_blocking_enabled")))
    invite = body.get("group_invite_enable")
    if version >= 7 and invite is not None:
        out += [_null(invite.get("invite_url")), _null(invite.get("affiliate_id")),
                _null(invite.get("expires_at_msec"))]
    return out


def _id_list(field: str) -> Builder:
    def build(body: Body, version: int, keys: Keys) -> list[Any]:
        return list(_require(body, field))
    return build


def _optional_id_list(field: str) -> Builder:
    def build(body: Body, version: int, keys: Keys) -> list[Any]:
        return list(body.get(field) or [])
    return build


def _single(field: str) -> Builder:
    def build(body: Body, version: int, keys: Keys) -> list[Any]:
        return [_require(body, field)]
    return build


def _versioned_text(field: str) -> Builder:
    def build(body: Body, version: int, keys: Keys) -> list[Any]:
        return [_require(body, "conversation_key_version"), body.get(field) or ""]
    return build


def _group_create(body: Body, version: int, keys: Keys) -> list[Any]:
    out: list[Any] = [_require(body, "conversation_key_version"), *_require(body, "member_ids")]
    if version >= 4:
        out += [_null(body.get("is_legacy_group_upgrade")), _null(body.get("title")),
                _null(body.get("avatar_url"))]
    return out


def _invite_enable(body: Body, version: int, keys: Keys) -> list[Any]:
    return [_require(body, "invite_url"), _null(body.get("expires_at_msec")),
            _null(body.get("affiliate_id"))]


def _nothing(body: Body, version: int, keys: Keys) -> list[Any]:
    return []


BUILDERS: dict[str, Builder] = {
    "MessageCreateEvent": _message_create,
    "ConversationKeyChangeEvent": _key_change,
    "MessageDeleteEvent": _message_delete,
    "ConversationDeleteEvent": _conversation_delete,
    "MarkConversationReadEvent": _mark_read,
    "MarkConversationUnreadEvent": _mark_unread,
    "GroupChangeEvent.GroupMemberAddChange": _member_add,
    "GroupChangeEvent.GroupMemberRemoveChange": _id_list("member_ids"),
    "GroupChangeEvent.GroupAdminAddChange": _id_list("admin_ids"),
    "GroupChangeEvent.GroupAdminRemoveChange": _id_list("admin_ids"),
    "GroupChangeEvent.GroupTitleChange": _versioned_text("custom_title"),
    "GroupChangeEvent.GroupAvatarUrlChange": _versioned_text("custom_avatar_url"),
    "GroupChangeEvent.GroupCreate": _group_create,
    "GroupChangeEvent.GroupInviteEnable": _invite_enable,
    "GroupChangeEvent.GroupInviteDisable": _single("disabled_by_member_id"),
    "GroupChangeEvent.GroupJoinRequest": _single("requesting_user_id"),
    "GroupChangeEvent.GroupJoinReject": _id_list("rejected_user_ids"),
    "ConversationMetadataChangeEvent.MessageDurationChange": _single("ttl_msec"),
    "ConversationMetadataChangeEvent.MessageDurationRemove": _nothing,
    "ConversationMetadataChangeEvent.MuteConversation": _optional_id_list("muted_conversation_ids"),
    "ConversationMetadataChangeEvent.UnmuteConversation":
        _optional_id_list("unmuted_conversation_ids"),
    "ConversationMetadataChangeEvent.EnableScreenCaptureDetection": _nothing,
    "ConversationMetadataChangeEvent.DisableScreenCaptureDetection": _nothing,
    "ConversationMetadataChangeEvent.EnableScreenCaptureBlocking": _nothing,
    "ConversationMetadataChangeEvent.DisableScreenCaptureBlocking": _nothing,
}


def build_payload(event: MessageEvent, version: int,
                  conversation_keys: Mapping[str, bytes] | None = None) -> bytes:
    """The UTF-8 bytes the sender signed; raises ``PayloadUnavailable`` when they cannot be rebuilt."""
    if event.kind == "MessageCreateEvent" and _create_twin is not None:  # most events: the common case at once
        body = event.body or {}
        payload = _create_twin(event.message_id, event.sender_id, event.conversation_id,
                               body.get("conversation_key_version"), body.get("contents"))
        if payload is not None:
            return payload
    builder = BUILDERS.get(event.kind or "")
    if builder is None:
        raise PayloadUnavailable("unverifiable", f"{event.kind} carries no change the protocol signs: "
                                                 "nothing can be verified (the SDK refuses it too)")
    if event.message_id is None:
        raise PayloadUnavailable("unverifiable", "message_id is missing")
    if event.sender_id is None:
        raise PayloadUnavailable("unverifiable", "sender_id is missing")
    head: list[str] = [event.kind or "", event.message_id, event.sender_id]
    if event.conversation_id is not None and event.kind != "GroupChangeEvent.GroupCreate":
        head.append(event.conversation_id)
    parts = head + [x if type(x) is str else _render(x)
                    for x in builder(event.body or {}, version, conversation_keys)]
    joined = ",".join(parts)
    if joined.count(",") != len(parts) - 1:  # no escaping exists: a comma in a component is fatal
        part = next(p for p in parts if "," in p)
        raise PayloadUnavailable("unverifiable", f"component {part!r} contains a comma")
    return joined.encode("utf-8")


def _message_create_payload(message_id: object, sender_id: object, conversation_id: object, key_version: object,
                            contents: object) -> bytes | None:
    """``_cfastwire.message_create_payload`` in pure Python: the common ``MessageCreateEvent`` as one
    f-string, where the builders above take a list, a dispatch and a join (about 1 µs an event);
    None wherever ``build_payload`` must decide or explain (a missing or odd value, a comma)."""
    if type(message_id) is not str or type(sender_id) is not str or type(key_version) is not str \
            or type(contents) is not bytes:
        return None
    if conversation_id is None:
        conversation = ""
    elif type(conversation_id) is str:
        conversation = conversation_id + ","
    else:
        return None
    encoded = _b2a_base64(contents, newline=False).decode().rstrip("=")  # b64encode_nopad, inline
    text = f"MessageCreateEvent,{message_id},{sender_id},{conversation}{key_version},{encoded}"
    if text.count(",") != (4 if conversation_id is None else 5):
        return None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (never in a decoded event): the builder says so
        return None


def message_create_payloads(message_ids: Sequence[str], sender_ids: Sequence[str], conversation_ids: Sequence[str],
                            key_versions: Sequence[str], contents: list[bytes]) -> list[bytes] | None:
    """``_message_create_payload`` of a page's usual events at once (their texts, every one a
    ``str``; a conversation id each): the payloads, or None unless every one is the usual (no comma,
    no line break, ASCII). Why: one f-string, encode and base64 call an event cost about 1 µs in
    Python; here the contents' base64 is one join (padding dropped by one ``replace``: base64 has no
    other ``=``, and ``split`` at the newline each encoding ends with) and the texts are checked as
    one."""
    texts = "".join(chain(message_ids, sender_ids, conversation_ids, key_versions))
    if "," in texts or "\n" in texts or not texts.isascii():
        return None  # (the builder says why, one event at a time)
    encoded = b"".join(map(_b2a_base64, contents)).decode().replace("=", "").split("\n")
    return list(map(str.encode, map(mod, repeat("MessageCreateEvent,%s,%s,%s,%s,%s"),
                                    zip(message_ids, sender_ids, conversation_ids, key_versions, encoded))))


# tests/test_cfastwire.py compares both twins with the builder above
_create_twin: Callable[[object, object, object, object, object], bytes | None] | None = \
    compiled_twin("message_create_payload") or _message_create_payload

create_payload: Callable[[object, object, object, object, object], bytes | None] = \
    _create_twin or _message_create_payload  # the engine's usual-event path calls it directly (``_Run._usual_job``)

render_slot = _render
