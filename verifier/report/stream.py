"""Reports written in chunks: the same bytes as ``render``, never the whole encoded report in memory.

JSON is the report's skeleton (everything but the events, encoded and indented once) with each
conversation's events encoded and indented a few hundred at a time where a random marker held
their place; NDJSON is one line per event. The other formats are rendered whole (their size is
bounded by the findings, or they are meant for people). Checked byte for byte against ``render``
in tests/test_same_reports.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator

import msgspec

from ..model import Report
from . import render
from .machine import _json_safe, summary

_BATCH = 500
_EVENT_INDENT = "\n        "  # events sit four levels deep: report, conversations, conversation, events


def iter_report(report: Report, fmt: str, *, color: bool = False, width: int | None = None,
                all_events: bool = False) -> Iterator[str]:
    """``render(report, fmt, ...)`` as a sequence of chunks whose concatenation is the same text."""
    if fmt == "json":
        yield from _json_chunks(report)
    elif fmt == "ndjson":
        yield from _ndjson_chunks(report)
    else:
        yield render(report, fmt, color=color, width=width, all_events=all_events)


def write_report(report: Report, fmt: str, write: Callable[[str], object], **options: object) -> None:
    for chunk in iter_report(report, fmt, **options):  # type: ignore[arg-type]
        write(chunk)


def _json_chunks(report: Report) -> Iterator[str]:
    markers = [secrets.token_hex(16) for _ in report.conversations]
    skeleton = msgspec.structs.replace(report, conversations=[
        msgspec.structs.replace(conv, events=[marker]) for conv, marker in zip(report.conversations, markers)])
    text = _json_safe(msgspec.json.format(msgspec.json.encode(skeleton), indent=2).decode()) + "\n"
    for conv, marker in zip(report.conversations, markers):
        placeholder = f'[{_EVENT_INDENT}"{marker}"\n      ]'
        at = text.index(placeholder)
        yield text[:at]
        text = text[at + len(placeholder):]
        yield from _events_array(conv.events)
    yield text


def _events_array(events: Iterable[object]) -> Iterator[str]:
    encoder = msgspec.json.Encoder()
    batch: list[object] = []
    first = True
    for event in events:
        batch.append(event)
        if len(batch) == _BATCH:
            yield ("[" if first else ",") + _indented(encoder, batch)
            first, batch = False, []
    if batch:
        yield ("[" if first else ",") + _indented(encoder, batch)
        first = False
    yield "[]" if first else "\n      ]"


_NESTING = 3  # the batch wrapped three arrays deep: its items indent as the report's events (8 spaces)
_OPEN = "[\n" + "".join(f"{'  ' * depth}[\n" for depth in range(1, _NESTING)) + "  " * _NESTING + "["
_CLOSE = "\n" + "  " * _NESTING + "]" + "".join(f"\n{'  ' * depth}]" for depth in reversed(range(_NESTING)))


def _indented(encoder: msgspec.json.Encoder, batch: list[object]) -> str:
    """The events of a batch as they appear inside the indented report: ``\\n        {...},...``.
    The batch is formatted wrapped in three arrays, so ``format`` itself indents it to the report's
    depth (one pass over the text instead of indenting and then shifting every line)."""
    text = msgspec.json.format(b"[[[" + encoder.encode(batch) + b"]]]", indent=2).decode()
    return _json_safe(text[len(_OPEN):-len(_CLOSE)])


def _ndjson_chunks(report: Report) -> Iterator[str]:
    encoder = msgspec.json.Encoder()
    lines: list[str] = []
    for conv in report.conversations:
        for event in conv.events:
            record = {"record": "event", "conversation_id": conv.conversation_id, **msgspec.to_builtins(event)}
            lines.append(encoder.encode(record).decode())
            if len(lines) == _BATCH:
                yield _json_safe("\n".join(lines)) + "\n"
                lines = []
    lines.append(encoder.encode(summary(report)).decode())
    yield _json_safe("\n".join(lines)) + "\n"
