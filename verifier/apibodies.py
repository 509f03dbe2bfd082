"""Reading X API response bodies without trusting them: error texts, pagination tokens, where an
echoed token sits, conversation participants and public-key rows. Every function takes raw bytes,
never raises, and reports malformed values as one-line problems. No HTTP here."""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from typing import Any

import msgspec

from .errors import MalformedEvent
from .ids import PATH_ID, is_user_id
from .paging import count_items, page_head
from .wire import b64decode_strict

MAX_MESSAGE = 300  # server text quoted in one error line
# A user registers a few key versions; a row is about 500 bytes. Every user's rows are held until the
# verdict (up to --max-users of them), so a public_keys response may hold no more (review 79: a
# hundred thousand rows of `{}`, 300 KB, cost 80 MB a user; an 8 MB row, 24 MB a user).
MAX_KEY_ROWS = 100
MAX_KEYS_RESPONSE_BYTES = 64 * 1024


class _Problem(msgspec.Struct):
    title: str | None = None
    detail: str | None = None
    reason: str | None = None
    type: str | None = None
    errors: list[Any] | None = None


def _problem_text(body: bytes) -> str:
    """The API's own words: title, detail, reason (and first error message) of an error body.
    Raw server text: the client scrubs and escapes it before it goes anywhere."""
    try:
        problem = msgspec.json.decode(body, type=_Problem)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        # a generous prefix: the client scrubs the token, then cuts to MAX_MESSAGE (cut first, a
        # token across the cut would keep all but its last characters: review)
        return body[:16 * MAX_MESSAGE + 8192].decode("utf-8", "replace").strip() or "no body"
    parts = [p for p in (problem.title, problem.detail) if p]
    if problem.reason:
        parts.append(f"reason: {problem.reason}")
    if problem.errors:
        first = problem.errors[0]
        if isinstance(first, dict) and first.get("message"):
            parts.append(str(first["message"]))
    return " - ".join(parts) or "no details"


TOO_DEEP = "JSON nested too deeply to read"


def _json_problem(body: bytes) -> str | None:
    """Why ``body`` is not JSON this client reads (None when it is), checked without building any
    object from it. Nesting past the parser's depth is told apart from a malformed or cut body: a
    retry may bring the body whole, never less deep (review: a key response 1000 levels deep was
    asked for 7 times, then called "truncated or invalid JSON")."""
    try:
        msgspec.json.decode(body, type=msgspec.Raw)
    except msgspec.DecodeError:
        return "truncated or invalid JSON"
    except RecursionError:
        return TOO_DEEP
    return None


def next_token_of(body: bytes) -> str | None:
    """The page's ``meta.next_token`` if it is a string (see ``paging.page_head`` for the rest)."""
    return page_head(body).next_token


class _Members(list):
    """A JSON object as all its members, in order, a name given twice kept twice (``_every_member``)."""


def _every_member(body: bytes) -> Any:
    """``body`` decoded with every member of every object kept, as ``_Members`` of (name, value)
    pairs: a name given twice is two members. The decoders that read events keep the last one (as
    every JSON client of the SDK's examples does), but the saved body holds both: review 99 found
    the access token, written as JSON escapes in the first of two ``next_token`` members, neither
    located nor reported (``evidence_contains_token``). Raises ``ValueError`` or ``RecursionError``."""
    return json.loads(body.decode("utf-8"), object_pairs_hook=_Members, parse_int=str, parse_float=str,
                      parse_constant=str)  # numbers are never searched: no digit limit, no NaN


def json_token_paths(body: bytes, token: str, limit: int = 100) -> list[list]:
    """Locations of ``token`` in the decoded strings and keys of a JSON body (see ``token_offsets``),
    and in the bytes a base64 string decodes to (``["b64", path, at, length]``, ``at`` counted in
    those bytes): an ``encoded_event`` carries its Thrift strings there, and the report shows them.
    An object's members are counted as written, a repeated name each time (``_every_member``)."""
    try:
        data = _every_member(body)
    except (ValueError, RecursionError):
        return []
    needle = token.encode()
    found: list[list] = []
    stack: list[tuple[Any, list[int]]] = [(data, [])]
    while stack and len(found) < limit:
        value, path = stack.pop()
        if isinstance(value, str):
            at = value.find(token)
            decoded = decoded_base64(value, len(needle)) if at < 0 else None
            if at >= 0:
                found.append(["json", path, at, len(token)])
            elif decoded is not None and needle in decoded:
                found.append(["b64", path, decoded.find(needle), len(needle)])
        elif isinstance(value, _Members):
            for i, (key, item) in enumerate(value):
                if token in key:
                    found.append(["json-key", [*path, i], key.find(token), len(token)])
                stack.append((item, [*path, i]))
        elif isinstance(value, list):
            stack += [(v, [*path, i]) for i, v in enumerate(value)]
    return found


def decoded_base64(value: str, at_least: int = 1) -> bytes | None:
    """The bytes ``value`` decodes to as the engine decodes ``encoded_event`` (standard alphabet,
    canonical), or None; None too when too short to hold ``at_least`` bytes (ids, words)."""
    if len(value) * 3 // 4 < at_least or not value.isascii():
        return None
    try:
        return b64decode_strict(value)
    except MalformedEvent:
        return None


@lru_cache(maxsize=4)
def base64_forms(token: str) -> tuple[bytes, ...]:
    """The base64 text any copy of ``token`` inside base64-encoded bytes shows, one per alignment
    (the characters its own bits alone decide): a raw body holding none of them needs no decoding."""
    raw = token.encode()
    forms = []
    for shift in range(3):
        text = base64.b64encode(b"\0" * shift + raw)
        forms.append(text[-(-8 * shift // 6):8 * (shift + len(raw)) // 6])
    return tuple(forms)


def token_at_path(body: bytes, location: list) -> str | None:
    """The text a ``["json"|"json-key"|"b64", path, at, length]`` location points at, or None."""
    kind, path, at, length = location
    try:
        value: Any = _every_member(body)
        for step in path[:-1] if kind == "json-key" else path:
            value = value[step][1] if isinstance(value, _Members) else value[step]
        if kind == "json-key":
            value = value[path[-1]][0] if isinstance(value, _Members) else None
    except (ValueError, RecursionError, IndexError, TypeError, KeyError):
        return None
    if kind == "b64":
        decoded = decoded_base64(value) if isinstance(value, str) else None
        return decoded[at:at + length].decode("utf-8", "replace") if decoded is not None else None
    return value[at:at + length] if isinstance(value, str) else None


def _json_object(body: bytes) -> dict | None:
    try:
        data = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _type_name(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def participants_of(metadata: bytes) -> list[str]:
    """``participant_ids ∪ member_ids ∪ admin_ids`` of a conversation metadata body; values that
    are not user ids are skipped (``metadata_problems`` names them). Never raises."""
    conv = (_json_object(metadata) or {}).get("data")
    if not isinstance(conv, dict):
        return []
    out: dict[str, None] = {}
    for name in ("participant_ids", "member_ids", "admin_ids"):
        values = conv.get(name)
        for uid in values if isinstance(values, list) else []:
            if is_user_id(uid):
                out.setdefault(uid)
    return list(out)


def metadata_problems(metadata: bytes) -> list[str]:
    """What is malformed in a conversation metadata body, one line each (for the report)."""
    body = _json_object(metadata)
    if body is None:
        return ["not a JSON object"]
    conv = body.get("data")
    if conv is None or isinstance(conv, list):  # a list: a pre-2.163 deployment serves events here
        return []
    if not isinstance(conv, dict):
        return [f"`data` is {_type_name(conv)}, expected an object"]
    out = []
    for name in ("participant_ids", "member_ids", "admin_ids"):
        values = conv.get(name)
        if values is None:
            continue
        if not isinstance(values, list):
            out.append(f"`data.{name}` is {_type_name(values)}, expected an array of user ids")
            continue
        bad = sum(1 for uid in values if not is_user_id(uid))
        if bad:
            out.append(f"`data.{name}` holds {bad} value(s) that are not user ids (skipped)")
    meta_id = conv.get("id")
    if meta_id is not None and not (isinstance(meta_id, str) and PATH_ID.fullmatch(meta_id.replace(":", "-"))):
        out.append("`data.id` is not a conversation id (ignored)")
    return out


class _KeysHead(msgspec.Struct):
    data: msgspec.Raw = msgspec.Raw(b"")


def _too_many_rows(body: bytes) -> bool:
    """More than ``MAX_KEY_ROWS`` rows in ``data``, counted without decoding them."""
    try:
        head = msgspec.json.decode(body, type=_KeysHead)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return False
    return count_items(head.data, MAX_KEY_ROWS) > MAX_KEY_ROWS


def key_rows(body: bytes, user_id: str) -> list[dict]:
    """Rows of a public_keys body with the owning ``user_id`` attached; unreadable bodies,
    malformed values and more than ``MAX_KEY_ROWS`` rows give none (``key_body_problems`` names
    them). Never raises."""
    if _too_many_rows(body):
        return []
    rows = (_json_object(body) or {}).get("data")
    return [{**r, "user_id": r.get("user_id", user_id)} for r in rows if isinstance(r, dict)] \
        if isinstance(rows, list) else []


def key_body_problems(body: bytes) -> list[str]:
    """What is malformed in a public_keys body, one line each (absent or empty ``data``: no keys)."""
    if _too_many_rows(body):
        return [f"`data` holds more than {MAX_KEY_ROWS} key rows (a user has a few key versions): none used"]
    data = _json_object(body)
    if data is None:
        return ["not a JSON object"]
    rows = data.get("data")
    if rows is None:
        return []
    if not isinstance(rows, list):
        return [f"`data` is {_type_name(rows)}, expected an array of key rows"]
    bad = sum(1 for r in rows if not isinstance(r, dict))
    return [f"`data` holds {bad} value(s) that are not key rows (skipped)"] if bad else []
