"""Decrypted message contents: a Thrift binary ``MessageEntryHolder`` (product.thrift, docs/protocol.md).

The plaintext is hostile input like any event: it is read by the same bounded reader as events
(``verifier.wire._Reader``, the SDK's decoding rules and limits: 10,000 elements per container,
100,000 per parse, 64 nesting levels, strict UTF-8 for strings), with the product.thrift layouts
below. Its product-specific rules follow the SDK's generated code: a list of attachments drops an
element whose union holds only unknown members, and a quick reply ignores a member union that does.
Anything else unusual makes the contents ``MalformedEvent`` (reported as ``content_malformed``).

A reply's preview embeds whole ``MessageEvent`` structs (the original it quotes, an edit of it, key
changes); they are read with the event layouts and returned as ``MessageEvent`` objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import MalformedEvent
from ..wire import (
    DEFAULT_LIMITS,
    ENVELOPE,
    T_BOOL,
    T_I32,
    T_I64,
    T_LIST,
    T_MAP,
    T_STRING,
    T_STRUCT,
    Limits,
    MessageEvent,
    StructSchema,
    UnionSchema,
    _Reader,
    _UnknownVariant,
    event_from_fields,
)

_S = (T_STRING, "utf8")
_B = (T_STRING, "bin")


def _struct(name: str, fields: dict[int, tuple[str, Any]]) -> StructSchema:
    """Shorthand: ``{id: (name, type)}`` where type is ``_S``, ``_B``, a type code, a schema or
    ``("list", element)`` / ``("map", key, value)``."""
    out: dict[int, tuple[str, int, Any]] = {}
    for fid, (fname, spec) in fields.items():
        out[fid] = (fname, *_spec(spec))
    return StructSchema(name, out)


def _spec(spec: Any) -> tuple[int, Any]:
    if spec is _S or spec is _B:
        return spec
    if isinstance(spec, int):
        return spec, None
    if isinstance(spec, (StructSchema, UnionSchema)):
        return T_STRUCT, spec
    if spec[0] == "list":
        return T_LIST, _spec(spec[1])
    if spec[0] == "map":
        return T_MAP, (_spec(spec[1]), _spec(spec[2]))
    raise ValueError(spec)  # pragma: no cover


_EMPTY = {name: StructSchema(name, {}) for name in (
    "HashtagRichTextContent", "CashtagRichTextContent", "MentionRichTextContent", "UrlRichTextContent",
    "EmailRichTextContent", "AddressRichTextContent", "PhoneNumberRichTextContent")}
RICH_TEXT_CONTENT = UnionSchema("RichTextContent", {
    1: ("hashtag", _EMPTY["HashtagRichTextContent"]), 2: ("cashtag", _EMPTY["CashtagRichTextContent"]),
    3: ("mention", _EMPTY["MentionRichTextContent"]), 4: ("url", _EMPTY["UrlRichTextContent"]),
    5: ("email", _EMPTY["EmailRichTextContent"]), 6: ("address", _EMPTY["AddressRichTextContent"]),
    7: ("phone_number", _EMPTY["PhoneNumberRichTextContent"])})
RICH_TEXT_ENTITY = _struct("RichTextEntity", {1: ("start_index", T_I32), 2: ("end_index", T_I32),
                                              3: ("content", RICH_TEXT_CONTENT)})
MEDIA_DIMENSIONS = _struct("MediaDimensions", {1: ("width", T_I64), 2: ("height", T_I64)})
URL_IMAGE = _struct("UrlAttachmentImage", {1: ("media_hash_key", _S), 2: ("filesize_bytes", T_I64),
                                           3: ("filename", _S), 4: ("dimensions", MEDIA_DIMENSIONS)})
ATTACHMENT = UnionSchema("MessageAttachment", {
    1: ("media", _struct("MediaAttachment", {
        1: ("media_hash_key", _S), 2: ("dimensions", MEDIA_DIMENSIONS), 3: ("type", T_I32),
        4: ("duration_millis", T_I64), 5: ("filesize_bytes", T_I64), 6: ("filename", _S),
        7: ("attachment_id", _S), 8: ("legacy_media_url_https", _S), 9: ("legacy_media_preview_url", _S),
        10: ("grok_tag", _S)})),
    2: ("post", _struct("PostAttachment", {1: ("rest_id", _S), 2: ("post_url", _S), 3: ("attachment_id", _S)})),
    3: ("url", _struct("UrlAttachment", {1: ("url", _S), 2: ("banner_image_media_hash_key", URL_IMAGE),
                                         3: ("favicon_image_media_hash_key", URL_IMAGE), 4: ("display_title", _S),
                                         5: ("attachment_id", _S)})),
    4: ("unified_card", _struct("UnifiedCardAttachment", {1: ("url", _S), 2: ("attachment_id", _S)})),
    5: ("money", _struct("MoneyAttachment", {1: ("fallback_text", _S), 2: ("payload", _B)})),
    6: ("jetfuel", _struct("JetfuelAttachment", {2: ("height", T_I32), 3: ("url", _S), 4: ("attachment_id", _S)})),
})
AV_CALL_ENDED = _struct("AVCallEnded", {1: ("sent_at_millis", T_I64), 2: ("duration_seconds", T_I64),
                                        3: ("is_audio_only", T_BOOL), 5: ("broadcast_id", _S)})
AV_CALL_MISSED = _struct("AVCallMissed", {1: ("sent_at_millis", T_I64), 2: ("is_audio_only", T_BOOL)})
AV_CALL_STARTED = _struct("AVCallStarted", {1: ("is_audio_only", T_BOOL), 3: ("broadcast_id", _S)})
REPLYING_TO_PREVIEW = _struct("ReplyingToPreview", {
    1: ("sender_id", T_I64), 2: ("message_text", _S), 3: ("entities", ("list", RICH_TEXT_ENTITY)),
    4: ("attachments", ("list", ATTACHMENT)), 5: ("sender_display_name", _S),
    6: ("replying_to_message_sequence_id", _S), 7: ("replying_to_message_id", _S),
    8: ("raw_event_message_create", ENVELOPE), 9: ("raw_event_edit_message", ENVELOPE),
    10: ("raw_event_ckces", ("list", ENVELOPE)),
    11: ("av_call_card", UnionSchema("ReplyAVCallCard", {1: ("ended", AV_CALL_ENDED), 2: ("missed", AV_CALL_MISSED),
                                                         3: ("started", AV_CALL_STARTED)})),
    12: ("replying_to_attachment_id", _S)})
QUICK_REPLY_OPTION = _struct("QuickReplyOption", {1: ("id", _S), 2: ("label", _S), 3: ("metadata", _S),
                                                  4: ("description", _S)})
QUICK_REPLY = UnionSchema("QuickReply", {
    1: ("request", UnionSchema("QuickReplyRequest", {1: ("options", _struct("QuickReplyOptionsRequest", {
        1: ("id", _S), 2: ("options", ("list", QUICK_REPLY_OPTION))}))})),
    2: ("response", UnionSchema("QuickReplyResponse", {1: ("options", _struct("QuickReplyOptionsResponse", {
        1: ("request_id", _S), 2: ("metadata", _S), 3: ("selected_option_id", _S)}))}))})
MESSAGE_CONTENTS = _struct("MessageContents", {
    1: ("message_text", _S), 2: ("entities", ("list", RICH_TEXT_ENTITY)), 3: ("attachments", ("list", ATTACHMENT)),
    4: ("replying_to_preview", REPLYING_TO_PREVIEW),
    6: ("forwarded_message", _struct("ForwardedMessage", {1: ("message_text", _S),
                                                          2: ("entities", ("list", RICH_TEXT_ENTITY))})),
    7: ("sent_from", T_I32), 8: ("quick_reply", QUICK_REPLY),
    9: ("ctas", ("list", _struct("CallToAction", {1: ("label", _S), 2: ("url", _S)}))),
    10: ("additional_fields", ("map", _S, _S))})
_REACTION = {1: ("message_sequence_id", _S), 2: ("emoji", _S), 3: ("message_attachment_id", _S)}
ENTRY_CONTENTS = UnionSchema("MessageEntryContents", {
    1: ("message", MESSAGE_CONTENTS),
    2: ("reaction_add", _struct("MessageReactionAdd", _REACTION)),
    3: ("reaction_remove", _struct("MessageReactionRemove", _REACTION)),
    4: ("message_edit", _struct("MessageEdit", {1: ("message_sequence_id", _S), 2: ("updated_text", _S),
                                                3: ("entities", ("list", RICH_TEXT_ENTITY))})),
    5: ("mark_conversation_read", _struct("MarkConversationRead", {1: ("seen_until_sequence_id", _S),
                                                                   2: ("seen_at_millis", T_I64)})),
    6: ("mark_conversation_unread", _struct("MarkConversationUnread", {1: ("seen_until_sequence_id", _S)})),
    7: ("pin_conversation", _struct("PinConversation", {1: ("conversation_id", _S)})),
    8: ("unpin_conversation", _struct("UnpinConversation", {1: ("conversation_id", _S)})),
    9: ("screen_capture_detected", _struct("ScreenCaptureDetected", {1: ("type", T_I32)})),
    10: ("av_call_ended", AV_CALL_ENDED),
    11: ("av_call_missed", AV_CALL_MISSED),
    12: ("draft_message", _struct("DraftMessage", {1: ("conversation_id", _S), 2: ("draft_text", _S)})),
    13: ("accept_message_request", StructSchema("AcceptMessageRequest", {})),
    14: ("nickname_message", _struct("NicknameMessage", {1: ("user_id", T_I64), 2: ("nickname_text", _S)})),
    15: ("set_verified_status", _struct("SetVerifiedStatus", {1: ("user_id", T_I64), 2: ("verified_status", T_BOOL)})),
    16: ("av_call_started", AV_CALL_STARTED),
})
MESSAGE_ENTRY_HOLDER = _struct("MessageEntryHolder", {1: ("contents", ENTRY_CONTENTS)})

# Content kinds whose target is another event, and the field that names it.
TARGET_FIELDS = {"reaction_add": "message_sequence_id", "reaction_remove": "message_sequence_id",
                 "message_edit": "message_sequence_id", "mark_conversation_read": "seen_until_sequence_id",
                 "mark_conversation_unread": "seen_until_sequence_id"}


@dataclass
class Content:
    """One decoded ``MessageEntryHolder``: ``kind`` is the member of ``MessageEntryContents`` that
    was set (``message``, ``reaction_add``, ``message_edit``, ...), None when the holder is empty or
    holds only an unknown member; ``body`` its fields (unions as ``(member, fields)`` pairs)."""

    kind: str | None
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str | None:
        if self.kind == "message":
            return self.body.get("message_text")
        if self.kind == "message_edit":
            return self.body.get("updated_text")
        return None

    @property
    def target(self) -> str | None:
        name = TARGET_FIELDS.get(self.kind or "")
        return self.body.get(name) if name else None

    @property
    def reply(self) -> dict[str, Any] | None:
        return self.body.get("replying_to_preview") if self.kind == "message" else None


def decode_content(plaintext: bytes, limits: Limits = DEFAULT_LIMITS) -> Content:
    """Decode a ``MessageEntryHolder``; ``MalformedEvent`` with the reason when it is not one.
    Bytes after the holder's final STOP are ignored, as by the SDK."""
    if len(plaintext) > limits.max_event_bytes:
        raise MalformedEvent(f"contents of {len(plaintext)} bytes exceed the limit of {limits.max_event_bytes}")
    reader = _Reader(plaintext, limits)
    try:
        holder = reader.struct(MESSAGE_ENTRY_HOLDER, "MessageEntryHolder")
    except RecursionError:  # defence in depth: the depth limit stops this first
        raise MalformedEvent("nesting too deep") from None
    contents = _clean(holder.get("contents"))
    if contents is None:
        return Content(None)
    kind, body = contents
    return Content(kind, _events(body))


def _clean(value: Any) -> Any:
    """Reader output with "no value" unions (only unknown members) removed, as the SDK leaves them."""
    if isinstance(value, _UnknownVariant):
        return None
    if isinstance(value, dict):
        return {k: c for k, v in value.items() if (c := _clean(v)) is not None or v is None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, tuple):
        return value[0], _clean(value[1])
    return value


def _events(body: dict[str, Any]) -> dict[str, Any]:
    """Turn the ``MessageEvent`` structs a reply preview embeds into ``MessageEvent`` objects."""
    preview = body.get("replying_to_preview")
    if not isinstance(preview, dict):
        return body
    preview = dict(preview)
    for name in ("raw_event_message_create", "raw_event_edit_message"):
        if isinstance(preview.get(name), dict):
            preview[name] = _event(preview[name])
    if isinstance(preview.get("raw_event_ckces"), list):
        preview["raw_event_ckces"] = [_event(e) for e in preview["raw_event_ckces"] if isinstance(e, dict)]
    return {**body, "replying_to_preview": preview}


def _event(fields: dict[str, Any]) -> MessageEvent:
    return event_from_fields(fields)
