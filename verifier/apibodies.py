"""Reading X API response bodies without trusting them: error texts, pagination tokens, where an
echoed token sits, conversation participants and public-key rows. Every function takes raw bytes,
never raises, and reports malformed values as one-line problems. No HTTP here."""

from __future__ import annotations

from typing import Any

import msgspec

from .ids import PATH_ID, is_user_id
from .paging import page_head

MAX_MESSAGE = 300  # server text quoted in one error line


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


def json_token_paths(body: bytes, token: str, limit: int = 100) -> list[list]:
    """Locations of ``token`` in the decoded strings and keys of a JSON body (see ``token_offsets``)."""
    try:
        data = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return []
    found: list[list] = []
    stack: list[tuple[Any, list[int]]] = [(data, [])]
    while stack and len(found) < limit:
        value, path = stack.pop()
        if isinstance(value, str) and token in value:
            found.append(["json", path, value.find(token), len(token)])
        elif isinstance(value, list):
            stack += [(v, [*path, i]) for i, v in enumerate(value)]
        elif isinstance(value, dict):
            for i, (key, item) in enumerate(value.items()):
                if token in key:
                    found.append(["json-key", [*path, i], key.find(token), len(token)])
                stack.append((item, [*path, i]))
    return found


def token_at_path(body: bytes, location: list) -> str | None:
    """The text a ``["json"|"json-key", path, at, length]`` location points at, or None."""
    kind, path, at, length = location
    try:
        value: Any = msgspec.json.decode(body)
        for step in path[:-1] if kind == "json-key" else path:
            value = list(value.values())[step] if isinstance(value, dict) else value[step]
        if kind == "json-key":
            value = list(value.keys())[path[-1]]
    except (msgspec.DecodeError, RecursionError, IndexError, TypeError, KeyError):
        return None
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


def key_rows(body: bytes, user_id: str) -> list[dict]:
    """Rows of a public_keys body with the owning ``user_id`` attached; unreadable bodies and
    malformed values give none (``key_body_problems`` names them). Never raises."""
    rows = (_json_object(body) or {}).get("data")
    return [{**r, "user_id": r.get("user_id", user_id)} for r in rows if isinstance(r, dict)] \
        if isinstance(rows, list) else []


def key_body_problems(body: bytes) -> list[str]:
    """What is malformed in a public_keys body, one line each (absent or empty ``data``: no keys)."""
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
