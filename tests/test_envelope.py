"""The JSON envelope against the signed event: ``envelope._agrees``'s shortcut for the usual item."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from verifier.envelope import _agrees, _differences
from verifier.pages import ItemJson
from verifier.wire import EventSignature, MessageEvent, SigningKeyInfo

_TEXT = st.sampled_from([None, "1", "2"])
_INFO = st.builds(SigningKeyInfo, _TEXT, _TEXT, _TEXT)
_SIGNATURE = st.none() | st.builds(EventSignature, _TEXT, _TEXT, _TEXT, _TEXT, st.none() | st.lists(_INFO, max_size=2))
_FLAG = st.sampled_from([None, True, False])
_EVENTS = st.builds(MessageEvent, sequence_id=_TEXT, message_id=_TEXT, sender_id=_TEXT, conversation_id=_TEXT,
                    conversation_token=_TEXT, created_at_msec=_TEXT, previous_sequence_id=_TEXT, is_trusted=_FLAG,
                    signature=_SIGNATURE)
# an item's fields and the values one of them may take instead of its twin's
_CHANGES = st.fixed_dictionaries({}, optional={
    "id": _TEXT, "sequence_id": _TEXT, "previous_sequence_id": _TEXT, "previous_id": _TEXT, "sender_id": _TEXT,
    "conversation_id": _TEXT, "conversation_token": _TEXT, "created_at_msec": _TEXT | st.sampled_from([1, 2]),
    "created_at": st.sampled_from([None, "x"]), "is_trusted": _FLAG, "message_event_signature": _SIGNATURE})


def _twin(event: MessageEvent) -> ItemJson:
    """The item the API sends with ``event``: every field its twin's."""
    return ItemJson(id=event.sequence_id, sequence_id=event.sequence_id, previous_sequence_id=event.previous_sequence_id,
                    sender_id=event.sender_id, conversation_id=event.conversation_id, is_trusted=event.is_trusted,
                    created_at_msec=event.created_at_msec, message_event_signature=event.signature)


@given(_EVENTS, _CHANGES)
def test_an_item_that_agrees_has_no_difference(event, changes):
    """Whatever way ``_agrees`` says yes (its shortcut or field by field), no field differs: the
    item is the event's twin with a few fields changed (so the shortcut is reached)."""
    item = msgspec.structs.replace(_twin(event), **changes)
    if _agrees(item, event):
        assert _differences(item, event) == []


@given(_EVENTS)
def test_the_twin_of_an_event_agrees(event):
    assert _agrees(_twin(event), event) and _differences(_twin(event), event) == []
