"""Walking an events history page by page without trusting the server to end it.

A hostile server can serve pages forever (fresh tokens, empty pages, padded pages), loop its
tokens, send a token that is not a string, or say in ``errors`` that it left events out. Every one
of those must end the walk as *incomplete* with a reason that names the limit or the fault, never
as a complete history. The same rules run live (``XChatClient.iter_conversation_events``), when
``--resume`` decides where to continue, and when ``verify DIR`` re-derives a completeness the
manifest claims, so all three agree.

Reading a page head must itself be cheap whatever the page holds: items are counted with msgspec
without creating an object per item, and counting stops at the limit.
"""

from __future__ import annotations

import builtins
import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec

from .sanitize import printable, shallow

MB = 1024 * 1024
_ABSENT = msgspec.Raw(b"")
# errors[] types that concern one field of returned items, not items left out of the page
_FIELD_PROBLEMS = ("not-authorized-for-field", "field-unauthorized", "field-hydration-failure")


@dataclass
class PageLimits:
    """Per-conversation budgets of one run (``--resume`` starts fresh ones where the last run stopped).

    The defaults are far above any real conversation (10,000 pages of 100 events is a million
    events) and far below what a hostile server needs to exhaust the machine.
    """

    max_pages: int | None = 10_000  # --max-pages
    max_bytes: int | None = 1024 * MB  # --max-conversation-mb
    max_seconds: float | None = 3 * 3600.0  # --max-conversation-seconds (time spent fetching)
    max_empty_pages: int | None = 20  # --max-empty-pages: pages in a row that bring no new event
    max_token_length: int = 1024  # --max-token-length
    max_page_items: int = 300  # --max-page-items: data + meta key events + errors[] entries


class _Meta(msgspec.Struct):
    next_token: msgspec.Raw = _ABSENT
    has_more: msgspec.Raw = _ABSENT
    conversation_key_events: msgspec.Raw = _ABSENT
    missing_conversation_key_change_events: msgspec.Raw = _ABSENT


class _Head(msgspec.Struct):
    data: msgspec.Raw = _ABSENT
    meta: msgspec.Raw = _ABSENT
    errors: msgspec.Raw = _ABSENT


@dataclass
class PageHead:
    """What the walk needs from a page body, read without materialising its items."""

    readable: bool = True  # a JSON object at the top level
    next_token: str | None = None
    token_problem: str | None = None  # next_token present but not a usable string
    has_more: bool | None = None
    has_more_problem: str | None = None  # has_more present but neither true, false nor null
    data_items: int = 0
    items: int = 0  # data + meta key events + errors[]; limit + 1 means "more than the limit"
    missing: list[str] = field(default_factory=list)  # errors[] saying events were left out


class _Encoded(msgspec.Struct):
    encoded_event: msgspec.Raw = _ABSENT


class _Items(msgspec.Struct):
    data: list[_Encoded] = []


def new_events(body: bytes, seen: set[bytes]) -> int:
    """How many ``data`` items of a page carry an ``encoded_event`` not seen before in this walk
    (the digests are added to ``seen``). A real history never serves a page of events already
    fetched: a page with none new, under a fresh token, is a loop in disguise or an empty page.
    Call it only on a page whose items were counted (``page_head``): it decodes each item's
    ``encoded_event`` and nothing else."""
    try:
        items = msgspec.json.decode(body, type=_Items).data
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return 0
    escaped = b"\\" in body  # the usual page has no escape at all: its raw slices are its values
    fresh = 0
    for item in items:
        if not len(item.encoded_event):
            continue
        digest = _value_digest(item.encoded_event, escaped)
        if digest not in seen:
            seen.add(digest)
            fresh += 1
    return fresh


def _value_digest(raw: msgspec.Raw, escaped: bool) -> bytes:
    """The digest of the JSON value ``raw`` stands for, not of its spelling: the same event under
    other ``\\uXXXX`` escapes is a repeat (review 57: each page re-spelt defeated --max-empty-pages).
    A string without a backslash is its own canonical form (JSON allows it no other spelling), so
    only other slices are decoded and encoded again."""
    view = memoryview(raw)
    if view[:1].tobytes() != b'"' or (escaped and view.tobytes().find(b"\\") >= 0):
        try:
            view = memoryview(msgspec.json.encode(msgspec.json.decode(view)))
        except (msgspec.DecodeError, RecursionError):
            pass  # not one JSON value: the engine reports it; its spelling is all there is
    return hashlib.blake2b(view, digest_size=16).digest()


@lru_cache(maxsize=16)
def _counter(limit: int) -> type:
    """A struct that decodes an array of at most ``limit`` elements, keeping each one as an
    unparsed ``Raw`` slice; a longer array fails at element ``limit + 1``, before any more work."""
    fields = [(f"f{i}", msgspec.Raw, _ABSENT) for i in range(limit)]
    return msgspec.defstruct(f"Upto{limit}", fields, array_like=True, forbid_unknown_fields=True, gc=False)


def count_items(raw: msgspec.Raw, limit: int) -> int:
    """Elements of the JSON array ``raw``: exact up to ``limit``, else ``limit + 1``; 0 if absent or
    not an array (the engine reports a wrong type itself)."""
    if not len(raw):
        return 0
    try:
        decoded: Any = msgspec.json.decode(raw, type=_counter(limit))
    except msgspec.ValidationError as exc:
        return limit + 1 if "at most length" in str(exc) else 0
    except (msgspec.DecodeError, RecursionError):
        return 0
    return sum(1 for name in decoded.__struct_fields__ if len(getattr(decoded, name)))


def page_head(body: bytes, max_items: int = PageLimits.max_page_items) -> PageHead:
    """The parts of an events page that decide how the walk goes on; never raises."""
    try:
        head = msgspec.json.decode(body, type=_Head)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return PageHead(readable=False)
    out = PageHead()
    out.data_items = count_items(head.data, max_items)
    out.items = out.data_items
    meta = _decode_meta(head.meta)
    if meta is not None:
        for raw in (meta.conversation_key_events, meta.missing_conversation_key_change_events):
            out.items += count_items(raw, max_items)
        out.next_token, out.token_problem = _token(meta.next_token)
        out.has_more, out.has_more_problem = _has_more(meta.has_more)
    errors_count = _errors_count(head.errors, max_items)
    out.items += errors_count
    if errors_count and errors_count <= max_items:
        out.missing = missing_event_errors(head.errors)
    return out


def _errors_count(raw: msgspec.Raw, limit: int) -> int:
    """Entries of ``errors``: one that is not an array (an object, a string) is one entry, as the
    engine reads it (``pages._fill_loose``); else an object saying events were left out went
    unnoticed by ``audit`` while ``verify`` of its page said incomplete (review 57)."""
    first = memoryview(raw)[:1].tobytes()
    if not first or first == b"[":
        return count_items(raw, limit)
    return 0 if first == b"n" and bytes(raw) == b"null" else 1


def _decode_meta(raw: msgspec.Raw) -> _Meta | None:
    if not len(raw):
        return None
    try:
        return msgspec.json.decode(raw, type=_Meta)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None  # meta is not an object: the engine reports it; nothing to follow


def _token(raw: msgspec.Raw) -> tuple[str | None, str | None]:
    first = memoryview(raw)[:1].tobytes()
    if not first or (first == b"n" and bytes(raw) == b"null"):
        return None, None
    if first != b'"':
        return None, f"next_token is {_kind(first)}, not a string"
    try:
        return msgspec.json.decode(raw, type=str), None
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None, "next_token is not a valid string"


def _kind(first: bytes) -> str:
    """What a JSON value is, from its first byte."""
    return {b'"': "a string", b"{": "an object", b"[": "an array", b"t": "a boolean", b"f": "a boolean",
            b"n": "null"}.get(first, "a number")


def _has_more(raw: msgspec.Raw) -> tuple[bool | None, str | None]:
    """``meta.has_more`` (None when absent or null), or why it is not a boolean: that is judged like
    ``true`` (review: the string "true" without a next_token ended the history as complete)."""
    value = memoryview(raw)[:6].tobytes()
    if not value or value == b"null":
        return None, None
    if value in (b"true", b"false"):
        return value == b"true", None
    return None, f"meta.has_more is {_kind(value[:1])}, not a boolean"


def missing_event_errors(raw: msgspec.Raw) -> list[str]:
    """``errors[]`` entries (X API partial errors) that say events were left out of the page: every
    problem type except the field-level ones (fail closed on types we do not know)."""
    try:
        errors = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):  # fail closed: what it says cannot be known
        return ["errors[] could not be read (nested too deeply or not JSON)"]
    listed = errors if isinstance(errors, list) else [] if errors is None else [errors]  # one: as the engine reads it
    kept = [shallow(error) for error in listed]  # str() of a deep one recurses
    return [problem_summary(error) for error in kept if says_events_missing(error)]


def says_events_missing(error: Any) -> bool:
    """Does this ``errors[]`` entry say events were left out? Every problem type does except the
    field-level ones (fail closed on types we do not know)."""
    kind = str(error.get("type", "")) if isinstance(error, dict) else ""
    return not kind.endswith(_FIELD_PROBLEMS)


def problem_summary(error: Any, limit: int = 200) -> str:
    """A short printable line for an API problem object (title - detail)."""
    if isinstance(error, dict):
        parts = [str(error[k]) for k in ("title", "detail") if isinstance(error.get(k), (str, int, float))]
        text = " - ".join(parts) or "an error without title or detail"
    else:
        text = str(error)
    text = printable(text)
    return text if len(text) <= limit else text[:limit] + "…"


# ------------------------------------------------------------------------------------- rules
def follow(head: PageHead, number: int, seen: set[str], limits: PageLimits) -> tuple[str | None, str | None]:
    """After page ``number``: the token to follow (None at the end), and why the walk must stop
    before the history's end (None if it need not). ``seen`` holds every token already requested."""
    if not head.readable:
        return None, f"page {number} is not a JSON object, so its next_token is unknown"
    if head.token_problem:
        return None, f"page {number}: {head.token_problem}"
    token = head.next_token
    if token is None:
        if head.has_more is True:
            return None, f"page {number}: meta.has_more is true but there is no next_token"
        if head.has_more_problem:
            return None, f"page {number}: {head.has_more_problem}, and there is no next_token"
        return None, None
    if token == "":
        return None, f"page {number}: next_token is empty"
    if len(token) > limits.max_token_length:
        return None, (f"page {number}: next_token of {len(token)} characters exceeds the limit of "
                      f"{limits.max_token_length} (--max-token-length)")
    if token in seen:
        return None, f"page {number}: next_token repeats one already followed (a pagination loop)"
    return token, None


@dataclass
class Budget:
    """What one run has spent on one conversation; ``exhausted`` is checked before each request."""

    limits: PageLimits
    pages: int = 0
    bytes: int = 0  # noqa: A003 (the budget's own name)
    seconds: float = 0.0
    empty_run: int = 0  # pages in a row that brought no new event
    seen_events: "set[builtins.bytes]" = field(default_factory=set)

    def spend(self, body: "builtins.bytes") -> None:
        self.pages += 1
        self.bytes += len(body)
        self.empty_run = 0 if new_events(body, self.seen_events) else self.empty_run + 1

    def exhausted(self) -> str | None:
        lim = self.limits
        if lim.max_empty_pages is not None and self.empty_run >= lim.max_empty_pages:
            return (f"{self.empty_run} pages in a row brought no new event (empty, or events already fetched), "
                    "each with a next_token (--max-empty-pages)")
        if lim.max_pages is not None and self.pages >= lim.max_pages:
            return f"page limit {lim.max_pages} reached (--max-pages)"
        if lim.max_bytes is not None and self.bytes >= lim.max_bytes:
            return f"{self.bytes} bytes fetched, the limit is {lim.max_bytes} (--max-conversation-mb)"
        if lim.max_seconds is not None and self.seconds >= lim.max_seconds:
            return f"{self.seconds:.1f} s spent fetching, the limit is {lim.max_seconds:g} s (--max-conversation-seconds)"
        return None


def requested_token(url: str) -> str | None:
    """The ``pagination_token`` a saved page was requested with (None for a first page)."""
    values = parse_qs(urlsplit(url).query, keep_blank_values=True).get("pagination_token")
    return values[-1] if values else None


@dataclass
class SavedWalk:
    """Completeness of a conversation re-derived from its saved pages (not from the manifest's word).

    Fed one saved page at a time; then ``continue_from`` is the token to resume with (None when
    nothing is left to fetch) and ``reasons`` why the saved history is not complete as it stands.
    """

    limits: PageLimits = field(default_factory=PageLimits)
    pages: int = 0  # pages seen
    number: int = 0  # the last one's number in the saved history (more than ``pages`` past an unreadable one)
    seen: set[str] = field(default_factory=set)
    page_reasons: list[str] = field(default_factory=list)  # errors[] saying events are missing
    chain_problem: str | None = None
    last: PageHead | None = None
    seen_events: "set[builtins.bytes]" = field(default_factory=set)  # so a resumed walk knows what is not new
    _expected_request: str | None = None

    def see(self, body: bytes, url: str, number: int | None = None) -> None:
        """The next readable saved page; ``number``: its place in the saved history (page-NNNNN),
        by default the one after the last page seen."""
        head = page_head(body, self.limits.max_page_items)
        self.see_head(head, url, number)
        if head.items <= self.limits.max_page_items:
            new_events(body, self.seen_events)

    def see_head(self, head: PageHead, url: str, number: int | None = None) -> None:
        """The walk from a page's head alone (``verifier.archive`` reads pages elsewhere); it does
        not learn ``seen_events``, which only ``--resume`` needs. Messages name pages by ``number``,
        not by how many were seen: ``verify DIR`` skips a page it cannot read (review: the page
        after an altered page 1 was called page 1)."""
        self.pages += 1
        self.number = self.number + 1 if number is None else number
        asked = requested_token(url)
        if asked is not None:
            self.seen.add(asked)
        if self.chain_problem is None and asked != self._expected_request:
            self.chain_problem = (f"saved page {self.number} was not requested with the next_token of the page "
                                  "before it (pages missing or out of order)")
        self.last = head
        self.page_reasons += page_missing_reasons(self.last, self.number)
        self._expected_request = self.last.next_token

    def stop(self) -> tuple[str | None, str | None]:
        """(token to continue from, reason it cannot be followed) after the last saved page."""
        if self.last is None:
            return None, None
        return follow(self.last, self.number, self.seen, self.limits)

    def reasons(self, error: str | None) -> list[str]:
        """Why the saved history is incomplete; [] only if the saved pages reach its end."""
        out = list(self.page_reasons)
        if self.chain_problem:
            out.append(self.chain_problem)
        token, problem = self.stop()
        if self.pages == 0:
            out.append("no page was saved")
        elif problem:
            out.append(problem)
        elif token is not None:
            out.append(f"the saved pages end with a next_token (page {self.number}): the rest was not fetched")
        if error:
            out.append(f"fetch failed: {error}")
        return out


def page_missing_reasons(head: PageHead, number: int) -> list[str]:
    return [f"page {number}: the API reported events it did not return: {text}" for text in head.missing]
