"""Types of the optional compiled decoder (``_cfastwire.pyx``)."""

from collections.abc import Sequence

from .wire import Limits, MessageEvent

def decode_event_fast(raw: bytes, limits: Limits) -> MessageEvent | None: ...

SOURCE_SHA256: str

def b64decode_canonical(text: object) -> bytes | None: ...

def id_columns(values: list[str | None], uuids: bool) -> tuple[bytes, bytes, bytes, list[tuple[int, str]]] | None: ...

def message_create_payload(message_id: object, sender_id: object, conversation_id: object, key_version: object,
                           contents: object) -> bytes | None: ...

def signature_der(sig: object) -> bytes | None: ...

def uuid_texts(highs: Sequence[int], lows: Sequence[int]) -> list[str]: ...
