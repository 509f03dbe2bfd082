"""Verifying page files on several processes, for one long history as for many.

Threads cannot decode side by side (the GIL): with them, the Python half of the work (reading,
JSON, base64, Thrift, payloads) runs on one core while only the ECDSA checks spread. Here each
worker process verifies a *share* of the input (a file, or a run of consecutive lines of a JSON
Lines file): it decodes the pages and checks every signature, as ``verify_pages`` would, and sends
back its columns (``Verification.check_part``, about 100 bytes an event). This process joins the
shares in input order (``Verification.absorb``) and only then checks the chains, runs the
reviewers and writes the report, so the report is byte for byte the one a single process gives.

Used by ``xchat-verify verify`` for files large enough to repay starting the workers. A share
whose worker fails (it died, or could not be started or reached) is verified again in this
process: a broken pool costs time, never findings.
"""

from __future__ import annotations

import os
import signal
import stat
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .childproc import can_fork, die_with_parent
from .engine import Verification, gc_paused
from .errors import UsageError
from .inputs import GZIP_MAGIC, UTF16_BOMS, file_identity, load_share, path_list
from .keys import Keyring
from .model import Report

if TYPE_CHECKING:  # the process machinery is imported by the run that starts processes (not by one process)
    from concurrent.futures import Executor, Future

PROCESSES_ENV = "XCHAT_VERIFY_PROCESSES"
MIN_BYTES = 32 * 1024 * 1024  # below this (≈ 16,000 events), starting processes costs more than it saves
_SHARE_BYTES = 4 * 1024 * 1024  # smallest share of a file worth a task of its own
_SHARES_PER_PROCESS = 8  # enough tasks that the last ones finishing do not leave a core idle; also the most
# shares of one file per process: every share of a file counts the newlines before its own lines


@dataclass(frozen=True)
class Share:
    """``path``'s lines of share ``index`` of ``count`` (``inputs.split_bodies``)."""

    path: str
    index: int = 0
    count: int = 1
    size: int = 0  # about how many bytes of the file it covers (what the planner balances)
    identity: tuple[int, ...] | None = None  # the file as planned (``inputs.file_identity``); None: unchecked


def plan_shares(paths: Sequence[str | os.PathLike[str]], processes: int, min_bytes: int = MIN_BYTES,
                max_bytes: int | None = None) -> list[Share] | None:
    """The shares of ``paths`` in input order, or None when processes do not pay: one process,
    standard input or any other path that is not a regular file (a FIFO, ``<(...)``: it can be read
    once, by this process), or less than ``min_bytes`` of files in all; or when
    ``XCHAT_VERIFY_PROCESSES=0`` asks for one process (threads for the ECDSA checks only). A file
    over ``max_bytes`` (refused whole) is one share: its error is said once, as one process says it."""
    paths = path_list(paths, "plan_shares")
    if processes < 2 or "-" in paths or os.environ.get(PROCESSES_ENV, "").strip() == "0":
        return None
    planned = [_splittable_size(path) for path in paths]
    if any(plan is None for plan in planned):
        return None
    sizes = [plan for plan in planned if plan is not None]
    total = sum(size for size, _, _ in sizes)
    if total < max(min_bytes, 1):
        return None
    unit = max(total // (processes * _SHARES_PER_PROCESS), _SHARE_BYTES)
    final_stretch = total - processes * unit  # from here on, the smallest shares: the workers end together
    most = processes * _SHARES_PER_PROCESS
    shares = []
    before = 0
    for path, (size, splittable, identity) in zip(paths, sizes):
        piece = unit if before + size <= final_stretch else _SHARE_BYTES
        count = min(max(1, size // piece), most) if splittable and (max_bytes is None or size <= max_bytes) else 1
        shares += [Share(path, index, count, size // count, identity) for index in range(count)]
        before += size
    return shares


def _splittable_size(path: str) -> tuple[int, bool, tuple[int, ...] | None] | None:
    """(size, whether its lines may be shared out, its identity), or None for a path that is not a
    regular file (a FIFO is opened without blocking, never consumed). A gzip file is unpacked whole
    by one worker; a UTF-16 file (refused whole, ``unpack_limited``) is one share, so its error is
    said once (round 114: every share of it said it); what cannot be read is left to the worker,
    which reports it as ``verify`` does."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError):  # missing, unreadable, a NUL in the name: the worker's error says so
        return 0, False, None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        head = os.read(fd, len(GZIP_MAGIC))
    except OSError:
        return 0, False, None
    finally:
        os.close(fd)
    return info.st_size, not head.startswith((GZIP_MAGIC, *UTF16_BOMS)), file_identity(info)


@dataclass
class Part:
    """A task's result: its pages decoded and checked, and how each share read its file."""

    verification: Verification
    forms: list[tuple[str, str]]  # (path, how ``split_bodies`` read it) per share of a file cut in shares


def verify_share(share: Share | Sequence[Share], keyring: Keyring | None, max_bytes: int, options: dict[str, Any],
                 in_worker: bool = True) -> Part:
    """A worker's task: the pages of a share (or of consecutive shares, in order) decoded and their
    signatures checked, no chain yet. ``in_worker``: plain files are mapped (a worker may die of a
    file truncated meanwhile; this process, verifying a task again, reads them instead)."""
    part = Verification(**{**options, "workers": 1})
    part.expect_keyring(keyring, facts=False)
    forms: list[tuple[str, str]] = []
    with gc_paused():
        for one in [share] if isinstance(share, Share) else share:
            read_as: list[str] = []
            for page in load_share(one.path, max_bytes, one.index, one.count, in_worker, one.identity, read_as):
                part._add(page)
            if one.count > 1:
                forms += [(one.path, form) for form in read_as]
    part.check_part(keyring)
    return Part(part, forms)


def _verify_task(task: tuple[Share, ...], ring: bytes, max_bytes: int, options: dict[str, Any]) -> Part:
    """``verify_share`` in a worker, the keyring given pickled: rebuilt once per worker, not per
    task (rebuilding checks every row's identity binding: 0.24 s for 2,000 users), and not at all
    by a forked worker, which holds the keyring already (``_held_by_workers``)."""
    return verify_share(task, _keyring_from(ring), max_bytes, options)


@lru_cache(maxsize=1)
def _keyring_from(ring: bytes) -> Keyring | None:
    for pickled, keyring in _HELD:
        if pickled == ring:  # this process was forked holding the keyring of this very pickle
            return keyring
    import pickle
    rebuilt: Keyring | None = pickle.loads(ring)  # our own pickle, from the process that started this worker
    return rebuilt


# The keyring being verified with and its pickle, while this process starts workers: a forked worker
# finds them in its copy of this process's memory and uses the keyring as it is, instead of
# rebuilding it from the pickle each task carries (0.2 s of each worker's start for 2,000 users,
# every identity binding checked again, and a second copy of it in the worker's memory). A worker
# started clean (forkserver, spawn) has none and rebuilds it, as before.
_HELD: list[tuple[bytes, Keyring | None]] = []


@contextmanager
def _held_by_workers(ring: bytes, keyring: Keyring | None) -> Iterator[None]:
    """``keyring`` (pickled as ``ring``) held for the workers forked meanwhile."""
    _HELD[:] = [(ring, keyring)]
    try:
        yield
    finally:
        _HELD.clear()


def tasks_of(shares: Sequence[Share], min_bytes: int = _SHARE_BYTES) -> list[tuple[Share, ...]]:
    """Consecutive shares grouped into tasks of at least ``min_bytes`` (the last may be smaller):
    thousands of small files are not thousands of round trips to a worker."""
    tasks: list[tuple[Share, ...]] = []
    batch: list[Share] = []
    size = 0
    for share in shares:
        batch.append(share)
        size += share.size
        if size >= min_bytes:
            tasks.append(tuple(batch))
            batch, size = [], 0
    if batch:
        tasks.append(tuple(batch))
    return tasks


def verify_files(shares: Sequence[Share], keyring: Keyring | None, max_bytes: int, processes: int,
                 options: dict[str, Any], executor: Callable[[int], Executor] | None = None,
                 warn: Callable[[str], None] | None = None, task_bytes: int = _SHARE_BYTES) -> Report:
    """The report of ``verify_pages`` over the shares' pages, the shares verified on ``processes``
    worker processes (``executor``: how to start them; the default suits the CLI), in tasks of at
    least ``task_bytes`` (``tasks_of``). ``warn`` is told, once, when workers fail and their shares
    are verified in this process instead."""
    if options.get("reviewers") is not None:  # a participant's reviewers learn keys from every page first
        raise UsageError("verify_files runs the default reviewers only (options['reviewers'] must be None)")
    whole = Verification(**options)
    whole.expect_keyring(keyring, facts=False)
    fallback = _Fallback(warn)
    forms: dict[str, set[str]] = {}
    with gc_paused():
        for part in _parts(tasks_of(shares, task_bytes), keyring, max_bytes, processes, options,
                           executor or _process_pool, fallback):
            whole.absorb(part.verification)
            for path, form in part.forms:
                forms.setdefault(path, set()).add(form)
            del part  # released before the next is received: holding two doubled the heap at 1M events
        for path, seen in forms.items():
            if len({form == "lines" for form in seen}) > 1:  # each share kept its own reading's pages only
                whole.add_input_error(path, f"read differently by two processes ({' and '.join(sorted(seen))}: "
                                            "JSON nested about as deep as Python's recursion limit): not every "
                                            "page of it could be checked; verify it with --workers 1")
        return whole._finish(keyring, lazy=True)


class _Fallback:
    """Tells ``warn`` once that shares are verified here because worker processes failed."""

    def __init__(self, warn: Callable[[str], None] | None) -> None:
        self.warn = warn
        self.told = False

    def __call__(self, why: str) -> None:
        if self.warn is not None and not self.told:
            self.told = True
            self.warn(f"warning: {why}; verifying those pages in this process instead (slower, same report)")


def _parts(tasks: Sequence[tuple[Share, ...]], keyring: Keyring | None, max_bytes: int, processes: int,
           options: dict[str, Any], executor: Callable[[int], Executor],
           fallback: Callable[[str], None]) -> Iterator[Part]:
    """Every task's part, in input order; at most two tasks per process wait to be joined, so memory
    stays bounded by the columns, whatever the input's size."""
    processes = max(1, min(processes, len(tasks)))  # a process without a task would only cost memory
    try:
        pool = executor(processes)
    except (OSError, ImportError, ValueError, NotImplementedError) as exc:  # no processes: verify in this one
        fallback(f"cannot start worker processes ({type(exc).__name__}: {exc})")
        for task in tasks:
            yield verify_share(task, keyring, max_bytes, options, in_worker=False)
        return
    pending: deque[tuple[tuple[Share, ...], Future[Part] | None]] = deque()
    finished = False
    import pickle
    ring = pickle.dumps(keyring)  # once: a keyring is rebuilt from its rows, which re-checks every binding
    try:
        with _held_by_workers(ring, keyring):  # (a fork pool forks its workers at the first submit)
            for task in tasks:
                pending.append((task, _submit(pool, task, ring, max_bytes, options)))
                if len(pending) >= 2 * processes:
                    yield _result(*pending.popleft(), keyring, max_bytes, options, fallback)
            while pending:
                yield _result(*pending.popleft(), keyring, max_bytes, options, fallback)
        finished = True
    finally:
        _stop(pool, pending, finished)


def _submit(pool: Executor, task: tuple[Share, ...], ring: bytes, max_bytes: int,
            options: dict[str, Any]) -> Future[Part] | None:
    try:
        return pool.submit(_verify_task, task, ring, max_bytes, options)
    except (RuntimeError, OSError):  # the pool broke (a worker died) or cannot start one: done here
        return None


def _result(task: tuple[Share, ...], future: Future[Part] | None, keyring: Keyring | None, max_bytes: int,
            options: dict[str, Any], fallback: Callable[[str], None]) -> Part:
    """The worker's part, or the task verified again here if the worker failed in any way (a
    worker's result is never half used: a part is joined whole or not at all)."""
    try:
        if future is not None:
            return future.result()
        fallback("the worker processes stopped")
    except Exception as exc:  # noqa: BLE001 - a dead worker, a pickling failure: same work, this process
        fallback(f"a worker process failed ({type(exc).__name__})")
    return verify_share(task, keyring, max_bytes, options, in_worker=False)


def _stop(pool: Executor, pending: deque[tuple[tuple[Share, ...], Future[Part] | None]],
          finished: bool) -> None:
    """Shut the pool down. Unless every part was received (an interrupt, an error, a consumer that
    stopped early), the workers are killed, not waited for: a second Ctrl-C must not be needed."""
    if not finished:
        # The queued futures are not cancelled here: the killed workers break the pool, and its own
        # thread then sets the broken-pool error on every queued future, which Python 3.11 does even
        # to a cancelled one (InvalidStateError: a traceback after "interrupted", review 96); a
        # future the pool forgets on shutdown is cancelled by it (cancel_futures) under its lock.
        processes = list((getattr(pool, "_processes", None) or {}).values())  # ProcessPoolExecutor's own
        for process in processes:
            process.kill()
        _end_results(pool, processes)
    pool.shutdown(wait=finished, cancel_futures=True)


def _end_results(pool: Executor, processes: list[Any]) -> None:
    """Once the killed workers are gone, close this process's write end of the pool's result pipe.
    Why: a worker killed while it wrote its part (parts are hundreds of KB, a pipe holds 64) left the
    pool's reader thread waiting for the rest of the message, forever — this process holds a write
    end too, so no end of file came — and the interpreter's exit waits for that thread: after one
    Ctrl-C the run printed "interrupted" and never ended; a second Ctrl-C there was a traceback
    (round 87). With no writer left, the reader gets its end of file and the thread ends."""
    if not _all_ended(processes, 5.0):
        return  # a writer still there: closing our end would not end the reader's wait
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
    if writer is not None:
        try:
            writer.close()
        except OSError:
            pass


def _all_ended(processes: list[Any], seconds: float) -> bool:
    """Whether every process ended within ``seconds``, seen on their sentinels: ``join`` or
    ``is_alive`` would reap them (``waitpid``) and race the pool's own thread, which then read a
    killed worker's exit status as 255 instead of SIGKILL."""
    from multiprocessing.connection import wait
    pending = {process.sentinel for process in processes}
    deadline = time.monotonic() + seconds
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        pending.difference_update(wait(list(pending), remaining))
    return True


def _process_pool(processes: int) -> Executor:
    """Worker processes that leave Ctrl-C to this process. On Linux, with no other thread running,
    they are forked (they share this process's loaded modules: faster to start, less memory);
    otherwise they start clean (``forkserver``, else ``spawn``): ``fork`` would copy other threads'
    locks in an unknown state."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    methods = multiprocessing.get_all_start_methods()
    if can_fork():
        method = "fork"
    else:
        method = "forkserver" if "forkserver" in methods else "spawn"
    context = multiprocessing.get_context(method)
    parent = None if method == "forkserver" else os.getpid()  # a forkserver's workers are its own children
    return ProcessPoolExecutor(processes, mp_context=context, initializer=_ignore_interrupts, initargs=(parent,))


def _ignore_interrupts(parent: int | None) -> None:
    """A worker's start: Ctrl-C is for the verifying process; on Linux the worker is killed when the
    process that started it (``parent``) dies (a parent that is killed cannot stop its workers, which
    would wait forever on a pipe nobody reads), and exits at once if that happened before this
    call."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)


__all__ = ["MIN_BYTES", "PROCESSES_ENV", "Part", "Share", "plan_shares", "tasks_of", "verify_share", "verify_files"]
