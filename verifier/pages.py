"""JSON bodies of the events page (both documented item shapes) decoded with msgspec.

The fast path decodes a whole page into typed Structs; if any item has a wrong type, the page is
decoded again loosely and each item on its own, so one bad item becomes a precise per-event finding
while every other event is still verified.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .paging import problem_summary, says_events_missing
from .sanitize import shallow
from .wire import EventSignature


class ItemJson(msgspec.Struct, gc=False):
    """One ``data[]`` item; 2.158–2.166 and 2.167 spellings side by side. Its fields are declared in
    the order the API serves an item's members: msgspec looks a member's name up from the field
    after the last one matched, so in this order each name matches at the first or second try (in
    another, a page's decode cost 770 instructions more an event: round 135)."""

    id: str | None = None
    sender_id: str | None = None
    conversation_id: str | None = None
    conversation_token: str | None = None
    sequence_id: str | None = None
    previous_sequence_id: str | None = None
    created_at_msec: str | int | None = None
    previous_id: str | None = None
    created_at: str | None = None
    is_trusted: bool | None = None
    message_event_signature: EventSignature | None = None  # the JSON copy: same fields as the signed one
    encoded_event: str | None = None

    @property
    def seq(self) -> str | None:
        return self.sequence_id if self.sequence_id is not None else self.id

    @property
    def prev(self) -> str | None:
        return self.previous_sequence_id if self.previous_sequence_id is not None else self.previous_id


class MetaJson(msgspec.Struct):
    conversation_key_events: list[str] | None = None
    missing_conversation_key_change_events: list[str] | None = None
    next_token: str | None = None
    has_more: bool | None = None
    result_count: int | None = None


class PageJson(msgspec.Struct):
    data: list[ItemJson] | None = None
    meta: MetaJson | None = None
    errors: list[Any] | None = None


class _LoosePage(msgspec.Struct):
    data: Any = None
    meta: Any = None
    errors: Any = None


class RawEntry(msgspec.Struct, gc=False):
    """One event as delivered: a typed item (data) or a bare base64 string (meta), or why not.
    A ``msgspec.Struct`` (built in C, one per event of every page; not tracked by the collector: it
    holds no cycle) where a dataclass ran a Python ``__init__`` per event."""

    item: ItemJson | None = None
    encoded: Any = None
    from_meta: bool = False
    problem: str = ""


@dataclass
class DecodedPage:
    source: str
    entries: list[RawEntry] = field(default_factory=list)
    api_errors: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # page-level: the page could not be read in full
    next_token: str | None = None
    conversation_id: str | None = None  # the conversation this page was fetched for, if known
    # why this page says its conversation's history goes on beyond what it holds, besides a
    # next_token (``has_more`` without one, a next_token that is not text, ``errors[]`` saying
    # events were left out): ``engine.paging_reasons``
    unfinished: list[str] = field(default_factory=list)


# The API serves at most 100 items a page plus a few key changes; far more is hostile input, and
# every event costs memory in the report. The first MAX_EVENTS_PER_PAGE are still verified.
MAX_EVENTS_PER_PAGE = 100_000

# The most JSON values a page may hold to be read (``json_value_bound``): about 20 an event, so an
# events page of MAX_EVENTS_PER_PAGE ordinary events has fewer. A page of cheap items (``{},`` is one
# event in three bytes, which costs some 300 bytes decoded) is refused before decoding: a 3 MB
# page of a million ``{}`` took 299 MB, and at the file limit it would have taken some 45 GB.
MAX_PAGE_VALUES = 20 * MAX_EVENTS_PER_PAGE


def json_value_bound(body: bytes | bytearray) -> int:
    """An upper bound on the number of JSON values in ``body``, without parsing it: each value
    after the first is an array element or an object member, and each of those follows a ``,``,
    a ``[`` or a ``{``. (Those characters inside strings only raise the bound.)"""
    return 1 + body.count(b",") + body.count(b"[") + body.count(b"{")


_typed_decoder = msgspec.json.Decoder(PageJson)
_loose_decoder = msgspec.json.Decoder(_LoosePage)


def decode_page(body: bytes | memoryview | str | dict, source: str) -> DecodedPage:
    """Decode one response body; never raises for bad content, problems land in the result."""
    page = DecodedPage(source)
    if not isinstance(body, (bytes, bytearray, memoryview, str, dict)):
        page.errors.append(f"not a page body: {type(body).__name__} (expected JSON text, bytes or a dict)")
        return page
    try:
        if isinstance(body, dict):
            parsed, body = body, msgspec.json.encode(body)
            if b"null" in body and _non_finite(parsed):  # msgspec writes NaN and the infinities as null
                body = msgspec.json.encode(_as_read(parsed))  # as their text is read (round 88)
        elif isinstance(body, str):
            body = body.encode("utf-8")  # (msgspec would do it, raising for a lone surrogate)
    except UnicodeEncodeError as exc:
        page.errors.append(f"not a JSON object: text that is not valid Unicode ({exc.reason} at position {exc.start})")
        return page
    except (TypeError, ValueError, OverflowError) as exc:  # a dict msgspec cannot encode (an object, a NaN key...)
        page.errors.append(f"not a JSON object: {exc}")
        return page
    except RecursionError:  # a parsed page nested deeper than the stack left (round 88: raised raw)
        page.errors.append("JSON nested too deeply to read")
        return page
    if len(body) > MAX_PAGE_VALUES and \
            json_value_bound(body.tobytes() if isinstance(body, memoryview) else body) > MAX_PAGE_VALUES:
        page.errors.append(f"a page of more than {MAX_PAGE_VALUES:,} JSON values (an events page of "
                           f"{MAX_EVENTS_PER_PAGE:,} events has fewer): not read")
        return page
    try:
        typed = _typed_decoder.decode(body)
    except msgspec.ValidationError:
        typed = None
    except msgspec.DecodeError as exc:
        page.errors.append(f"not a JSON object: {exc}")
        return page
    except RecursionError:
        page.errors.append("JSON nested too deeply to read")
        return page
    if typed is not None:
        _fill_typed(page, typed)
        _check_shape(page, typed.data is not None, typed.meta is not None, typed.errors is not None)
        _name_direct_messages(page, body)
        return _capped(page)
    try:
        loose = _loose_decoder.decode(body)
    except msgspec.ValidationError:
        page.errors.append("not a JSON object at the top level")
        return page
    except msgspec.DecodeError as exc:  # a type error before a syntax error: the typed pass stopped first
        page.errors.append(f"not a JSON object: {exc}")
        return page
    except RecursionError:
        page.errors.append("JSON nested too deeply to read")
        return page
    _fill_loose(page, loose)
    _check_shape(page, loose.data is not None, loose.meta is not None, loose.errors is not None)
    _name_direct_messages(page, body)
    return _capped(page)


def _non_finite(value: Any) -> bool:
    """Does a parsed page hold a float that is not finite? (Walked without recursion: the page was
    encoded once already, so it is not cyclic.)"""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


_NON_FINITE = {"nan": msgspec.Raw(b"NaN"), "inf": msgspec.Raw(b"1e999"), "-inf": msgspec.Raw(b"-1e999")}


def _as_read(value: Any) -> Any:
    """A parsed page with its non-finite floats written back as the text ``json.loads`` read them
    from: ``NaN`` (not JSON: the page is unreadable, as its text is) and ``1e999`` for an infinity
    (``Infinity`` is not JSON either, an overflowing number is: read as its text is, an error where
    the page's members are read, ignored elsewhere). Round 88: msgspec wrote them as null, so
    ``"has_more": NaN`` made a history that says it goes on complete, and it passed where the CLI,
    reading the same bytes, failed (exit 3). The page is nested less deep than the stack: it was
    encoded once already."""
    if isinstance(value, float):
        return value if math.isfinite(value) else _NON_FINITE["nan" if value != value else "inf" if value > 0 else "-inf"]
    if isinstance(value, dict):
        return {key: _as_read(member) for key, member in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_read(member) for member in value]
    return value


def _check_shape(page: DecodedPage, has_data: bool, has_meta: bool, has_errors: bool) -> None:
    """Only an events page may pass for one: an API error body (``errors`` without ``data``) or an
    object with none of the page's members is an input error, never an empty history."""
    if has_data:
        return
    if has_errors:
        text = "; ".join(api_error_text(e) for e in page.api_errors) or "no details"
        page.errors.append(f"the API answered with an error instead of events: {text}")
    elif not has_meta:
        page.errors.append("not an events page: it has no data, meta or errors member")


# Members of a ``GET /2/dm_events`` item (X API v2 direct messages before X Chat) that no chat event has.
_DIRECT_MESSAGE_MEMBERS = (b'"dm_conversation_id"', b'"event_type"')


def _name_direct_messages(page: DecodedPage, body: bytes | bytearray | memoryview) -> None:
    """A ``GET /2/dm_events`` page is an input error, without events, that says what it is and what to
    give instead. Why: each of its items was only ``malformed`` (``encoded_event is missing``), in a
    conversation ``unknown``, and the hint said to supply keys or pass --allow-empty, though such
    messages carry no signature at all (r126)."""
    if not page.entries or any(entry.encoded is not None for entry in page.entries):
        return
    raw = body.tobytes() if isinstance(body, memoryview) else body
    if any(member in raw for member in _DIRECT_MESSAGE_MEMBERS):
        page.entries.clear()  # not events of a chat: none is reported as one
        page.errors.append("a GET /2/dm_events page (direct messages before X Chat: neither encrypted nor "
                           "signed), not X Chat events: give the bodies of "
                           "GET /2/chat/conversations/{id}/events (xchat-verify audit fetches them)")


def api_error_text(error: dict) -> str:
    """An API problem in its own words: title, detail, type (as one line)."""
    parts = [str(error.get(k)) for k in ("title", "detail", "type") if error.get(k)]
    if not parts and error.get("message"):
        parts.append(str(error["message"]))
    return " - ".join(parts) or str(error)


def _capped(page: DecodedPage) -> DecodedPage:
    if len(page.entries) > MAX_EVENTS_PER_PAGE:
        page.errors.append(f"{len(page.entries)} events in one page exceed the limit of {MAX_EVENTS_PER_PAGE}; "
                           "only the first were verified")
        del page.entries[MAX_EVENTS_PER_PAGE:]
    return page


def _fill_typed(page: DecodedPage, typed: PageJson) -> None:
    page.entries = [RawEntry(item=i, encoded=i.encoded_event) for i in typed.data or []]
    meta = typed.meta
    if meta is not None:
        page.next_token = meta.next_token
        for encoded in _meta_events(meta.conversation_key_events, meta.missing_conversation_key_change_events):
            page.entries.append(RawEntry(encoded=encoded, from_meta=True))
        if meta.has_more is True and meta.next_token is None:
            page.unfinished.append(_MORE_WITHOUT_TOKEN)
    page.api_errors = [_api_error(e) for e in typed.errors or []]
    page.unfinished += _left_out(page.api_errors)


def _meta_events(current: Any, legacy: Any) -> list[Any]:
    return list(current or []) + list(legacy or [])


def _fill_loose(page: DecodedPage, loose: _LoosePage) -> None:
    if loose.data is not None and not isinstance(loose.data, list):
        page.errors.append(f"`data` is a {type(loose.data).__name__}, expected an array")
    for raw in loose.data if isinstance(loose.data, list) else []:
        try:
            item = msgspec.convert(raw, ItemJson)
            page.entries.append(RawEntry(item=item, encoded=item.encoded_event))
        except (msgspec.ValidationError, RecursionError) as exc:
            encoded = raw.get("encoded_event") if isinstance(raw, dict) else None
            reason = exc if isinstance(exc, msgspec.ValidationError) else "nested too deeply"
            page.entries.append(RawEntry(item=_salvage(raw), encoded=encoded, problem=f"JSON item: {reason}"))
    meta = loose.meta
    if meta is not None and not isinstance(meta, dict):
        page.errors.append(f"`meta` is a {type(meta).__name__}, expected an object")
        meta = {}
    meta = meta or {}
    if isinstance(meta.get("next_token"), str):
        page.next_token = meta["next_token"]
    elif meta.get("next_token") is not None:
        page.unfinished.append(f"meta.next_token is a {type(meta['next_token']).__name__}, not text")
    elif meta.get("has_more") is True:
        page.unfinished.append(_MORE_WITHOUT_TOKEN)
    elif meta.get("has_more") is not None and not isinstance(meta["has_more"], bool):  # judged like true
        page.unfinished.append(f"meta.has_more is {_json_kind(meta['has_more'])}, not a boolean, and there is "
                               "no next_token")
    for name in ("conversation_key_events", "missing_conversation_key_change_events"):
        events = meta.get(name)
        if events is None:
            continue
        if not isinstance(events, list):
            page.errors.append(f"`meta.{name}` is not an array")
            continue
        for encoded in events:
            problem = "" if isinstance(encoded, str) else f"meta.{name} entry is not a string"
            page.entries.append(RawEntry(encoded=encoded, from_meta=True, problem=problem))
    errors = loose.errors
    if errors is not None:
        page.api_errors = [_api_error(e) for e in (errors if isinstance(errors, list) else [errors])]
        page.unfinished += _left_out(page.api_errors)


_MORE_WITHOUT_TOKEN = "meta.has_more is true but there is no next_token"


def _json_kind(value: Any) -> str:
    """What a decoded JSON value (not a boolean or null) is, as ``paging`` names it."""
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object" if isinstance(value, dict) else "a number"


_SHOWN_PROBLEMS = 3


def _left_out(api_errors: list[dict]) -> list[str]:
    """``errors[]`` that say events were left out of the page (``paging.says_events_missing``), as
    ``audit`` reads them: the API reported events it did not return."""
    missing = [problem_summary(e) for e in api_errors if says_events_missing(e)]
    if not missing:
        return []
    more = f" and {len(missing) - _SHOWN_PROBLEMS} more" if len(missing) > _SHOWN_PROBLEMS else ""
    return [f"the API reported events it did not return: {'; '.join(missing[:_SHOWN_PROBLEMS])}{more}"]


def _salvage(raw: Any) -> ItemJson | None:
    """Keep the well-typed fields of a bad item, so its ids still place it in the chain."""
    if not isinstance(raw, dict):
        return None
    good = {}
    for name, value in raw.items():
        try:
            msgspec.convert({name: value}, ItemJson)
        except (msgspec.ValidationError, RecursionError):
            continue
        good[name] = value
    good.pop("encoded_event", None)
    return msgspec.convert(good, ItemJson)


def _api_error(error: Any) -> dict:
    error = shallow(error)  # reports and messages walk it later, from a deeper stack
    return error if isinstance(error, dict) else {"detail": str(error)}
