"""Ids as the X API writes them: conversations (``A:B``, ``A-B``, a bare user id, ``g<digits>``) and
users (1-19 digits), validated before any request or file name is built from them, and the one
canonical form reports use (``min:max`` for 1:1 conversations)."""

from __future__ import annotations

import re
from functools import lru_cache

from .errors import UsageError
from .sanitize import printable

PATH_ID = re.compile(r"[0-9]{1,19}|[0-9]{1,19}-[0-9]{1,19}|g[0-9]{1,19}")
USER_ID = re.compile(r"[0-9]{1,19}")


def short_decimal(text: str, digits: int = 20) -> bool:
    """ASCII digits, at most ``digits`` of them: an id, a key version or a millisecond count that
    fits a 64-bit integer's width, read without ``int`` on hostile lengths (it refuses texts past
    4,300 digits)."""
    return 0 < len(text) <= digits and text.isascii() and text.isdigit()


@lru_cache(maxsize=1024)
def canonical_conversation(cid: str | None) -> str:
    """``A:B``, ``B-A`` -> ``min:max`` (numeric); group ids and others unchanged."""
    if not cid:
        return ""
    for sep in (":", "-"):
        a, found, b = cid.partition(sep)
        if found and a.isascii() and b.isascii() and a.isdigit() and b.isdigit():
            lo, hi = sorted((a, b), key=lambda x: (len(x), x))
            return f"{lo}:{hi}"
    return cid


def is_bare(conversation_id: str) -> bool:
    """A bare user id names the 1:1 conversation of the authenticated user with that user; a full id
    (``A-B``, ``A:B``, ``g...``) names its conversation itself."""
    return not (":" in conversation_id or "-" in conversation_id or conversation_id.startswith("g"))


def conversation_path_id(conversation_id: str) -> str:
    """Any accepted id form (``A:B``, ``A-B``, bare recipient id, ``g…``) to the path form."""
    path_id = conversation_id.strip().replace(":", "-")
    if not PATH_ID.fullmatch(path_id):
        raise UsageError(f"not a conversation id: {printable(repr(conversation_id)[:80])} (expected A:B, A-B, a "
                         "user id or g<digits>)")
    return path_id


def validate_user_id(user_id: str) -> str:
    if not isinstance(user_id, str) or not USER_ID.fullmatch(user_id):
        raise UsageError(f"not a user id: {printable(repr(user_id)[:60])}")
    return user_id


def is_user_id(value: object) -> bool:
    return isinstance(value, str) and USER_ID.fullmatch(value) is not None
