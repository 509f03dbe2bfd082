"""Views of the engine's columns, built on access: the ``Record`` a reviewer reads and writes
findings through (``engine.Reviewer``), and a conversation's lazy ``EventList`` of ``EventReport``s
(what a report of millions of events is rendered from). They hold a row number, never a copy."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, overload

from .columns import FROM_META, STAGE_REVIEWED, TRUSTED_VALUE, consecutive
from .errors import UsageError
from .model import VOCABULARY, Check, EventReport, Severity
from .wire import MessageEvent

if TYPE_CHECKING:
    from .engine import _Run


class Record:
    """One event as a reviewer sees it (``Reviewer``): a view of the engine's columns."""

    __slots__ = ("_run", "_at", "index")

    def __init__(self, run: _Run, at: int) -> None:
        self._run = run
        self._at = at  # the event's row in the columns
        self.index = run.index_of(at)  # in the report

    @property
    def conversation(self) -> str:
        return self._run.conversation[self._at]

    @property
    def event(self) -> MessageEvent | None:
        return self._run.event_of(self._at)

    @property
    def from_meta(self) -> bool:
        return bool(self._run.flags[self._at] & FROM_META)

    @property
    def sequence_id(self) -> str | None:
        return self._run.seq[self._at]

    @property
    def sender_id(self) -> str | None:
        return self._run.sender[self._at]

    @property
    def previous_sequence_id(self) -> str | None:
        return self._run.prev[self._at]

    @property
    def message_id(self) -> str | None:
        return self._run.message_id[self._at]

    @property
    def trusted(self) -> bool | None:
        return TRUSTED_VALUE[self._run.trusted[self._at]]

    @property
    def created_at(self) -> str | None:
        return self._run.created[self._at]

    @property
    def signature(self) -> Check | None:
        code = self._run.sig_codes[self._at]
        return self._run.check_objects[code - 1] if code else None

    def add(self, code: str, message: str, severity: str | None = None) -> None:
        """A finding on this event: ``code`` from ``VOCABULARY``, ``severity`` (default: the code's)
        a ``Severity`` (``UsageError`` otherwise; round 88: ``"ERROR"`` was reported and failed
        nothing, an unknown code was a KeyError)."""
        check_finding(code, severity)
        self._run.add(self._at, STAGE_REVIEWED, code, message, severity)


_SEVERITIES = frozenset(s.value for s in Severity)


def check_finding(code: str, severity: str | None = None) -> None:
    """``UsageError`` for a reviewer's finding the report cannot carry: a code not in the
    vocabulary, or a severity that is not ``error``, ``warning`` or ``info``."""
    if not isinstance(code, str) or code not in VOCABULARY or VOCABULARY[code][0] is None:
        raise UsageError(f"reviewer finding code {code!r:.80} is not a finding code of verifier.model.VOCABULARY")
    if severity is not None and severity not in _SEVERITIES:
        raise UsageError(f"reviewer finding severity {severity!r:.80} is not one of error, warning, info "
                         "(verifier.Severity)")


class Records(Sequence[Record]):
    """Every event's ``Record`` in input order (or only the given rows'); the views are made once,
    when first read."""

    def __init__(self, run: _Run, rows: Sequence[int] | None = None) -> None:
        self._run = run
        self._rows = rows
        self._list: list[Record] | None = None

    @property
    def kinds_present(self) -> set[str | None]:
        """The event kinds of the run (a reviewer can tell it has nothing to do without reading)."""
        codes = self._run.kind.codes()
        present = set(codes) if self._rows is None else {codes[at] for at in self._rows}
        return {self._run.kind.value_of(code) for code in present}

    def _views(self) -> list[Record]:
        if self._list is None:
            rows = range(self._run.count) if self._rows is None else self._rows
            self._list = [Record(self._run, at) for at in rows]
        return self._list

    def __len__(self) -> int:
        return self._run.count if self._rows is None else len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Record]: ...

    def __getitem__(self, index: int | slice) -> Record | Sequence[Record]:
        return self._views()[index]

    def __iter__(self) -> Iterator[Record]:
        return iter(self._views())


class EventList(Sequence[EventReport]):
    """A conversation's events, each ``EventReport`` built from the engine's columns when read
    (``verify_pages(..., lazy=True)``): what a report of millions of events is rendered from."""

    def __init__(self, run: _Run, indices: Sequence[int]) -> None:
        self._run = run
        span = consecutive(indices) if len(indices) > 1 else None  # (a run's one conversation): its batches
        self._indices: Sequence[int] = indices if span is None else range(span.start, span.stop)  # are ranges

    def __len__(self) -> int:
        return len(self._indices)

    @overload
    def __getitem__(self, index: int) -> EventReport: ...

    @overload
    def __getitem__(self, index: slice) -> list[EventReport]: ...

    def __getitem__(self, index: int | slice) -> EventReport | list[EventReport]:
        if isinstance(index, slice):
            return self._run.event_reports(self._indices[index])
        return self._run.event_report(self._indices[index])

    def __iter__(self) -> Iterator[EventReport]:
        indices = self._indices
        for start in range(0, len(indices), _BATCH):
            yield from self._run.event_reports(indices[start:start + _BATCH])

    def reports_at(self, positions: Sequence[int]) -> list[EventReport]:
        """The ``EventReport`` of each of these events (by position), built together (``_Run.event_reports``)."""
        return self._run.event_reports([self._indices[at] for at in positions])

    def report_columns(self, start: int, stop: int) -> tuple[list[list[object]], set[int], list[str]]:
        """The columns of events ``start`` to ``stop`` a JSON report renders (``_Run.report_columns``)."""
        return self._run.report_columns(self._indices[start:stop])


_BATCH = 500  # events built at a time: the columns are read once per batch, not once per event
