"""Reports written in chunks: the same bytes as ``render``, never the whole encoded report in memory.

JSON is the report's skeleton (everything but the events, encoded and indented once) with each
conversation's events encoded and indented a few hundred at a time where a random marker held
their place; NDJSON is one line per event. The other formats are rendered whole (their size is
bounded by the findings, or they are meant for people). Checked byte for byte against ``render``
in tests/test_same_reports.py.

With ``processes`` > 1 (``verify`` on worker processes), the second half of a long conversation's
events (its JSON array or its NDJSON lines) is encoded by a forked child into a temporary file
while this process encodes the first half: the report is the last serial step of a run, and one
core would otherwise sit idle. A child that fails in any way costs time only: its half is encoded
here instead, to the same bytes. A report file takes the child's half by ``sendfile``
(``report_parts``), without reading it back.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import secrets
import signal
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from itertools import repeat
from typing import IO, Any, TypeAlias

import msgspec

from ..childproc import can_fork, die_with_parent
from ..model import ChainStatus, Check, EventReport, Report
from ..outputs import detach_stdout
from ..sanitize import WORKFLOW_V1
from ..views import EventList
from . import render
from .machine import _json_safe, event_lines, summary

_BATCH = 500
_FORK_MIN_EVENTS = 20_000  # fewer: forking and copying the child's half back cost about what they save
_READ_BYTES = 1 << 20
_EVENT_INDENT = "\n        "  # events sit four levels deep: report, conversations, conversation, events


def iter_report(report: Report, fmt: str, *, color: bool = False, width: int | None = None,
                all_events: bool = False, processes: int = 1) -> Iterator[str]:
    """``render(report, fmt, ...)`` as a sequence of chunks whose concatenation is the same text;
    ``processes`` > 1 lets a forked child encode half of a long conversation's events (same bytes)."""
    for part in report_parts(report, fmt, color=color, width=width, all_events=all_events, processes=processes):
        if isinstance(part, str):
            yield part
        elif isinstance(part, memoryview):
            yield str(part, "utf-8")
        else:
            yield from part.chunks()


def report_parts(report: Report, fmt: str, *, color: bool = False, width: int | None = None,
                 all_events: bool = False, processes: int = 1) -> Iterator[Part]:
    """``iter_report``'s chunks, except that a forked child's half comes as the ``ChildText`` it
    wrote: a report file copies it in the kernel (``ChildText.copy_to``) instead of reading it back
    as text and encoding it again (at 1,000,000 events, 340 MB that took 1.5 s); and a batch of JSON
    events as the UTF-8 bytes ``format`` wrote (a ``memoryview``), where they need no escape."""
    if fmt == "json":
        yield from _json_chunks(report, processes)
    elif fmt == "ndjson":
        yield from _ndjson_chunks(report, processes)
    else:
        yield render(report, fmt, color=color, width=width, all_events=all_events)


def write_report(report: Report, fmt: str, write: Callable[[str], object], **options: object) -> None:
    for chunk in iter_report(report, fmt, **options):  # type: ignore[arg-type]
        write(chunk)


def _json_chunks(report: Report, processes: int = 1) -> Iterator[Part]:
    markers = [secrets.token_hex(16) for _ in report.conversations]
    skeleton = msgspec.structs.replace(report, conversations=[
        msgspec.structs.replace(conv, events=[marker]) for conv, marker in zip(report.conversations, markers)])
    text = _json_safe(msgspec.json.format(msgspec.json.encode(skeleton), indent=2).decode()) + "\n"
    done = 0  # the skeleton is read on from here: never cut into a new remainder per conversation, which
    # copied the rest of it once each (round 78: 20,000 one-event conversations, 1.3 MB, took 33 s)
    for conv, marker in zip(report.conversations, markers):
        placeholder = f'[{_EVENT_INDENT}"{marker}"\n      ]'
        at = text.index(placeholder, done)
        yield text[done:at]
        done = at + len(placeholder)
        yield from _events_array(conv.events, processes)
    yield text[done:]


def _events_array(events: Sequence[object], processes: int = 1) -> Iterator[Part]:
    """The events as the report's indented JSON array, ``_BATCH`` at a time (with ``processes`` > 1,
    the second half of a long array encoded by a forked child meanwhile: ``_ForkedBatches``)."""
    if not len(events):
        yield "[]"
        return
    batches = _halves(events, _batches, processes)
    first = next(batches)  # the first batch's comma, this process's (the first half has at least one batch)
    assert first == ","
    yield "["
    yield from batches
    yield "\n      ]"


Part: TypeAlias = "str | memoryview | ChildText"  # a report's chunk: text, UTF-8 bytes or a child's file
_Batches = Callable[[Sequence[Any], Sequence[int]], Iterator[str | memoryview]]


def _halves(events: Sequence[Any], batches: _Batches, processes: int) -> Iterator[Part]:
    """``batches(events, starts)`` over every batch of ``events``; with ``processes`` > 1 and a long
    sequence, the second half's batches encoded by a forked child meanwhile (``_ForkedBatches``)."""
    starts = range(0, len(events), _BATCH)
    half = max(1, len(starts) // 2) if processes > 1 and len(events) >= _FORK_MIN_EVENTS and can_fork() \
        else len(starts)
    child = _ForkedBatches(events, starts[half:], batches) if half < len(starts) else None
    try:
        if child is not None:
            child.start()  # inside the try: an interrupt from here on still kills and reaps it
        yield from batches(events, starts[:half])
        if child is not None:
            yield from child.text()
    finally:
        if child is not None:
            child.close()


def _batches(events: Sequence[Any], starts: Sequence[int]) -> Iterator[str | memoryview]:
    """Each batch from ``starts`` as ``,`` then its indented events (the array's first drops the comma):
    an ``EventList``'s usual events rendered from its columns (``_column_part``), else encoded."""
    encoder = msgspec.json.Encoder()
    for start in starts:
        yield ","
        part = _column_part(encoder, events, start) if isinstance(events, EventList) else None
        yield part if part is not None else _indented_part(encoder, events[start:start + _BATCH])


class _ForkedBatches:
    """Batches encoded by a forked child into an unnamed temporary file, read back once it exits
    with success; otherwise (no temporary file, no fork, it died, the disk filled) encoded here,
    to the same text."""

    _SIGNALS = {signal.SIGINT, signal.SIGTERM}

    def __init__(self, events: Sequence[object], starts: Sequence[int], batches: _Batches) -> None:
        self.events, self.starts, self.batches = events, starts, batches
        self.pid: int | None = None
        self.file: IO[bytes] | None = None

    def start(self) -> None:
        """Fork the child. Ctrl-C and SIGTERM are held until this process knows its child's pid
        (and the child has reset them): an interrupt in between could orphan the child, or raise
        in the child and run the caller's clean-up code there (deleting the output's temporary file)."""
        import tempfile  # (here: a report written by one process never loads it, nor shutil)
        held = signal.pthread_sigmask(signal.SIG_BLOCK, self._SIGNALS)
        parent = os.getpid()
        file: IO[bytes] | None = None
        try:
            file = self.file = tempfile.TemporaryFile()
            self.pid = os.fork()
        except OSError:  # no temporary file or no process to spare: encoded here, later
            pass
        finally:
            if self.pid != 0:  # this process; the child never leaves the branch below
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
        if self.pid == 0:  # the child: whatever happens, it ends here, never back in the caller's code
            code = 1
            try:
                for number in self._SIGNALS:
                    signal.signal(number, signal.SIG_DFL)  # an interrupt ends the child at once, silently
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
                die_with_parent(parent)  # a parent killed outright takes the child with it
                detach_stdout()  # the report's reader waits on this process only
                code = self._encode(file) if file is not None else 1
            finally:
                os._exit(code)  # no exit handlers, no flush of the parent's buffers

    def _encode(self, file: IO[bytes]) -> int:
        """In the child: the batches into ``file``; the exit status (0: all written)."""
        for chunk in self.batches(self.events, self.starts):
            file.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
        file.flush()
        return 0

    def text(self) -> Iterator[Part]:
        """The child's text as it wrote it (once it exited with success), else the batches encoded here."""
        if self.file is not None and self._succeeded():
            yield ChildText(self.file)
        else:
            yield from self.batches(self.events, self.starts)

    def _succeeded(self) -> bool:
        if self.pid is None:
            return False
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:  # reaped by someone else (a SIGCHLD handler): its outcome is unknown
            self.pid = None
            return False
        self.pid = None  # reaped (only now: an interrupt during the wait leaves it to ``close``)
        return os.waitstatus_to_exitcode(status) == 0

    def close(self) -> None:
        """The child killed and reaped if still running (the consumer stopped early), the file removed."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):  # gone, or reaped elsewhere
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            self.pid = None
        if self.file is not None:
            self.file.close()


class ChildText:
    """A forked child's half of a report, in the temporary file it wrote (UTF-8), valid until the
    report's generator resumes."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file

    def chunks(self) -> Iterator[str]:
        """The text, read back a megabyte at a time."""
        self.file.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()  # a character may straddle two reads
        while chunk := self.file.read(_READ_BYTES):
            yield decoder.decode(chunk)
        yield decoder.decode(b"", final=True)

    def copy_to(self, handle: IO[bytes]) -> None:
        """Append the text's bytes to ``handle`` at its position: by ``sendfile`` (the kernel copies
        page to page, nothing passes through this process), else read and written as bytes (a
        target that refuses ``sendfile`` before its first byte, such as some devices). Raises
        ``OSError`` as a write would."""
        handle.flush()
        source, target = self.file.fileno(), handle.fileno()
        size = os.fstat(source).st_size
        sent = 0
        while sent < size:
            try:
                count = os.sendfile(target, source, sent, size - sent)
            except OSError:
                if sent:
                    raise  # part of it is written: a second copy would repeat it
                break
            if count == 0:
                if sent:
                    raise _short(sent, size)
                break  # nothing taken at all: copied below instead
            sent += count
        if sent == 0 and size:
            self.file.seek(0)
            while chunk := self.file.read(_READ_BYTES):
                handle.write(chunk)
                sent += len(chunk)
        if sent != size:  # the file is not the size it was: never a short report
            raise _short(sent, size)


def _short(sent: int, size: int) -> OSError:
    return OSError(f"the report's second half ended after {sent} of {size} bytes")


_NESTING = 3  # the batch wrapped three arrays deep: its items indent as the report's events (8 spaces)
_OPEN = "[\n" + "".join(f"{'  ' * depth}[\n" for depth in range(1, _NESTING)) + "  " * _NESTING + "["
_CLOSE = "\n" + "  " * _NESTING + "]" + "".join(f"\n{'  ' * depth}]" for depth in reversed(range(_NESTING)))


_UNSAFE_BYTES = WORKFLOW_V1.encode()


def _indented_part(encoder: msgspec.json.Encoder, batch: Sequence[Any]) -> str | memoryview:
    """The events of a batch as they appear inside the indented report (``\\n        {...},...``):
    the UTF-8 bytes ``format`` wrote where ``_json_safe`` would change nothing (ASCII, no DEL, no
    ``##[``), else ``_json_safe``'s text. Why bytes: no decoding, slicing or encoding again, each a
    copy of the batch (round 128: 4.2k of the report's 27.5k instructions an event, callgrind
    counting a large copy a byte at a time; timed, about 0.2 of 3 µs an event). The batch is encoded
    and formatted wrapped in three arrays, so ``format`` itself indents it to the report's depth (one
    pass over the text instead of indenting and then shifting every line). The escapes are looked
    for in the compact encoding: its strings are the formatted text's, in two thirds of the bytes."""
    compact = encoder.encode([[[batch]]])
    events = memoryview(msgspec.json.format(compact, indent=2))[len(_OPEN):-len(_CLOSE)]
    if compact.isascii() and b"\x7f" not in compact and not (b"#" in compact and _UNSAFE_BYTES in compact):
        return events
    return _json_safe(str(events, "utf-8"))


def _as_text(part: str | memoryview) -> str:
    return part if isinstance(part, str) else str(part, "utf-8")


def _event_template() -> list[str]:
    """``_indented_part``'s text of one usual event (a linked chain, no finding) cut where each of
    ``_Run.report_columns``' columns goes: made by msgspec itself, so it follows the model's fields."""
    marks = EventReport(index=1234567, sequence_id="@seq@", previous_sequence_id="@prev@", message_id="@id@",
                        sender_id="@sender@", event_type="@kind@", signature=Check("@status@", "@detail@"),
                        chain=Check(ChainStatus.LINKED, "follows @chain@"), trusted=True, findings=[],
                        key_version="@version@", created_at_msec="@created@")
    text = _as_text(_indented_part(msgspec.json.Encoder(), [marks])).replace("1234567", "@index@") \
        .replace('"@status@"', "@status@").replace('"@detail@"', "@detail@").replace("true", "@trusted@")
    names = [f"@{name}@" for name in ("index", "seq", "prev", "id", "sender", "kind", "status", "detail", "chain",
                                      "trusted", "version", "created")]
    if re.findall("@[a-z]+@", text) != names:  # (a change of the model must change this module too)
        raise AssertionError(f"the report's event is not what _event_template expects: {text}")
    return re.split("|".join(names), text)


def _fill(pieces: list[str], columns: Sequence[Sequence[Any]]) -> list[str]:
    """Each event's text: ``pieces`` with its values of ``columns`` between them."""
    return list(map("".join, zip(*[part for piece, column in zip(pieces, columns) for part in (repeat(piece), column)],
                                 repeat(pieces[-1]))))


_PIECES = _event_template()


def _column_part(encoder: msgspec.json.Encoder, events: EventList, start: int) -> str | None:
    """``_indented_part`` of the batch from ``start``, its usual events filled into ``_PIECES``
    from the run's columns (``_Run.report_columns``), the others encoded one by one; None where a
    value is not plain (``_plain``), for ``_indented_part`` to encode them all. Why: a join an
    event, no ``EventReport`` nor ``Check``s built, nor encoded and indented (about 2 µs an event)."""
    columns, odd, unchecked = events.report_columns(start, min(start + _BATCH, len(events)))
    if not _plain(unchecked):
        return None
    texts = _fill(_PIECES, columns)
    if odd:
        positions = sorted(odd)
        for at, report in zip(positions, events.reports_at([start + at for at in positions])):
            texts[at] = _as_text(_indented_part(encoder, [report]))
    return ",".join(texts)


def _plain(texts: list[str]) -> bool:
    """Are these texts written as they are inside a JSON string of the report: printable ASCII
    (no control character, nor DEL) without ``"``, ``\\`` or ``##[`` (``_json_safe``'s)?"""
    text = " ".join(texts)
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text and WORKFLOW_V1 not in text


def _ndjson_chunks(report: Report, processes: int = 1) -> Iterator[Part]:
    """One line per event (``machine.event_lines``), then the summary's; with ``processes`` > 1,
    half of a long conversation's lines encoded by a forked child (``_halves``). The lines of
    conversations shorter than a batch are gathered into chunks of about a batch (50,000
    one-event conversations are not 50,000 chunks)."""
    encoder = msgspec.json.Encoder()
    gathered: list[str] = []
    count = 0
    for conv in report.conversations:
        events = conv.events
        long = len(events) >= _BATCH
        if events and not long:
            gathered.append(event_lines(encoder, conv.conversation_id, events))
            count += len(events)
        if gathered and (long or count >= _BATCH):
            yield _ndjson_chunk(gathered)
            gathered, count = [], 0
        if long:
            yield from _halves(events, partial(_ndjson_batches, conv.conversation_id), processes)
    gathered.append(encoder.encode(summary(report)).decode())
    yield _ndjson_chunk(gathered)


def _ndjson_batches(conversation_id: str, events: Sequence[Any], starts: Sequence[int]) -> Iterator[str]:
    encoder = msgspec.json.Encoder()
    for start in starts:
        yield _ndjson_chunk([event_lines(encoder, conversation_id, events[start:start + _BATCH])])


def _ndjson_chunk(lines: list[str]) -> str:
    """Lines (each several records or one) as one chunk of the report: escaped, newline-ended."""
    return _json_safe("\n".join(lines)) + "\n"
