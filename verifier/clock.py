"""Time, in one place: wall-clock timestamps for evidence and reports, and the clock the client
waits on (rate-limit windows, retry backoff), which tests replace to run without real sleeps."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timezone

_FRACTION = re.compile(r"(?<=:[0-9]{2})[.]([0-9]+)")


def from_iso(text: str) -> datetime:
    """``datetime.fromisoformat``, the same on every supported Python: 3.10 takes a fraction of a
    second only of 3 or 6 digits (``00:00:00.12`` was no time at all there, so a report differed
    with the Python that made it); 3.11 takes any number, cut to microseconds. Raises ValueError."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        if sys.version_info >= (3, 11) or not _FRACTION.search(text):
            raise
    return datetime.fromisoformat(_FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1))


def utc_now_iso() -> str:
    """Now, as ``2026-12-01T21:28:10.123Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_instant(text: object) -> datetime | None:
    """An ISO-8601 time with its UTC offset (``...Z`` or ``+hh:mm``) as an aware datetime, else None
    (not text, not ISO-8601, no offset: a time without one names no instant)."""
    if type(text) is not str:
        return None
    try:
        moment = from_iso(text.replace("Z", "+00:00"))
        return moment.astimezone(timezone.utc) if moment.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None


def earliest_utc(times: Iterable[object]) -> str | None:
    """The earliest of ``times`` (ISO-8601 with offsets), written as ``utc_now_iso`` writes (cut to
    the millisecond: never later); None when there is none, or when any one cannot be read (an
    unknown time could be the earliest)."""
    earliest: datetime | None = None
    for text in times:
        moment = utc_instant(text)
        if moment is None:
            return None
        if earliest is None or moment < earliest:
            earliest = moment
    if earliest is None:
        return None
    return earliest.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Clock:
    """The real clock. ``wait`` sleeps until ``seconds`` pass or ``cancelled`` is set (True then)."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, seconds: float, cancelled: threading.Event) -> bool:
        # bounded: past threading.TIMEOUT_MAX (about 292 years) Event.wait raises OverflowError
        return cancelled.wait(min(max(seconds, 0.0), threading.TIMEOUT_MAX))


class FakeClock(Clock):
    """A clock for tests: waiting advances it instantly, so retries and rate-limit windows cost no
    wall time while the code under test sees exactly the delays it asked for."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.waited: list[float] = []
        self._lock = threading.Lock()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def wait(self, seconds: float, cancelled: threading.Event) -> bool:
        if cancelled.is_set():
            return True
        with self._lock:
            self.waited.append(seconds)
            self.now += max(0.0, seconds)
        return False
