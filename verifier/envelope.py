"""The JSON envelope against the signed event: every field the API sends beside ``encoded_event``
that has a twin inside it must equal that twin, or the report says which and how."""

from __future__ import annotations

from datetime import timezone
from typing import Any

from .clock import from_iso
from .pages import ItemJson
from .wire import MessageEvent


def iso_to_ms(text: str) -> int | None:
    try:
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        moment = from_iso(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return round(moment.timestamp() * 1000)


def envelope_differences(item: ItemJson, event: MessageEvent) -> list[str]:
    """Every JSON field with a Thrift twin must equal it; returns one message per difference."""
    if _agrees(item, event):
        return []
    return _differences(item, event)


def _agrees(item: ItemJson, event: MessageEvent) -> bool:
    """The usual case in one expression: every field the JSON gives equals its twin (the 2.167
    ``created_at`` and a numeric ``created_at_msec`` are left to ``_differences``). The API's usual
    item is tried first as two tuples and the signature structs compared whole (each equality
    there implies the field's test below; anything else takes them one by one)."""
    js = item.message_event_signature
    sig = event.signature
    if (item.sender_id, item.conversation_id, item.sequence_id, item.previous_sequence_id, item.id,
            item.is_trusted, item.created_at_msec) == (event.sender_id, event.conversation_id, event.sequence_id,
                                                       event.previous_sequence_id, event.sequence_id,
                                                       event.is_trusted, event.created_at_msec) \
            and item.conversation_token is None and item.previous_id is None and item.created_at is None \
            and (js is None or js == sig):
        return True  # the page's usual item at once: each field equal (a struct's too), or absent in both
    return (item.sender_id is None or item.sender_id == event.sender_id) \
        and (item.conversation_id is None or item.conversation_id == event.conversation_id) \
        and (item.conversation_token is None or item.conversation_token == event.conversation_token) \
        and (item.sequence_id is None or item.sequence_id == event.sequence_id) \
        and (item.previous_sequence_id is None or item.previous_sequence_id == event.previous_sequence_id) \
        and (item.previous_id is None or item.previous_id == event.previous_sequence_id) \
        and (item.is_trusted is None or item.is_trusted == event.is_trusted) \
        and (item.id is None or item.id == event.sequence_id or item.id == event.message_id) \
        and (item.created_at_msec is None or (type(item.created_at_msec) is str and
                                              item.created_at_msec == event.created_at_msec)) \
        and item.created_at is None \
        and (js is None or (sig is not None
                            and (js.message_signing_key_info_list is None  # SigningKeyInfo: equal as triples
                                 or js.message_signing_key_info_list == (sig.message_signing_key_info_list or []))
                            and (js.signature is None or js.signature == sig.signature)
                            and (js.public_key_version is None or js.public_key_version == sig.public_key_version)
                            and (js.signature_version is None or js.signature_version == sig.signature_version)
                            and (js.signing_public_key is None or js.signing_public_key == sig.signing_public_key)))


def _differences(item: ItemJson, event: MessageEvent) -> list[str]:
    problems: list[str] = []

    def same(name: str, json_value: Any, event_value: Any, show: bool = True) -> None:
        if json_value is not None and json_value != event_value:
            shown = f": JSON {json_value!r}, event {event_value!r}" if show else ""
            problems.append(f"{name} differs{shown}")

    same("sender_id", item.sender_id, event.sender_id)
    same("conversation_id", item.conversation_id, event.conversation_id)
    same("conversation_token", item.conversation_token, event.conversation_token, show=False)
    same("sequence_id", item.sequence_id, event.sequence_id)
    same("previous_sequence_id", item.previous_sequence_id, event.previous_sequence_id)
    same("previous_id", item.previous_id, event.previous_sequence_id)
    same("is_trusted", item.is_trusted, event.is_trusted)
    if item.id is not None and item.id not in (event.sequence_id, event.message_id):
        problems.append(f"id {item.id!r} is neither the sequence_id nor the message_id of the event")
    if item.created_at_msec is not None:
        same("created_at_msec", str(item.created_at_msec), event.created_at_msec)
    if item.created_at is not None:
        ms = iso_to_ms(item.created_at)
        if ms is None or event.created_at_msec is None or str(ms) != event.created_at_msec:
            problems.append(f"created_at {item.created_at!r} does not match created_at_msec "
                            f"{event.created_at_msec!r} of the event")
    problems += _signature_differences(item, event)
    return problems


def _signature_differences(item: ItemJson, event: MessageEvent) -> list[str]:
    js = item.message_event_signature
    if js is None:
        return []
    sig = event.signature
    if sig is None:
        return ["message_event_signature present in JSON but absent from the event"]
    problems = []
    for name in ("signature", "public_key_version", "signature_version", "signing_public_key"):
        value = getattr(js, name)
        if value is not None and value != getattr(sig, name):
            problems.append(f"message_event_signature.{name} differs: JSON {value!r}, "
                            f"event {getattr(sig, name)!r}")
    if js.message_signing_key_info_list is not None:
        as_json = [(i.member_id, i.public_key_version, i.signing_public_key)
                   for i in js.message_signing_key_info_list]
        as_event = [(i.member_id, i.public_key_version, i.signing_public_key)
                    for i in sig.message_signing_key_info_list or []]
        if as_json != as_event:
            problems.append("message_event_signature.message_signing_key_info_list differs from the event")
    return problems
