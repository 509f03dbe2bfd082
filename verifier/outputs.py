"""Writing files so that a failure never leaves a half-written or silently replaced one: every file
goes to a temporary name in the same directory, is flushed to disk, then renamed over the target."""

from __future__ import annotations

import codecs
import errno
import io
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol, TextIO

from .errors import InputError
from .sanitize import printable


def atomic_write(path: str | Path, data: bytes, mode: int = 0o666, *, create_parents: bool = True,
                 in_place: bool = True, sync_directory: bool = True) -> None:
    """Write ``data`` to ``path`` atomically; on any error the old file (if any) is intact and the
    temporary file is removed. ``mode`` (less the umask) is the new file's: 0o600 for plaintext.
    Missing parent directories are created unless ``create_parents`` is false. Raises ``OSError``."""
    with atomic_writer(path, mode, create_parents=create_parents, in_place=in_place,
                       sync_directory=sync_directory) as handle:
        handle.write(data)


@contextmanager
def atomic_writer(path: str | Path, mode: int = 0o666, *, create_parents: bool = True,
                  in_place: bool = True, sync_directory: bool = True) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces ``path`` only once the block ends without error
    (written in pieces: a large report is never whole in memory); a device, a FIFO or a path through
    /proc (``written_in_place``) is appended to as the block writes, unless ``in_place`` is false
    (files inside an evidence directory, which anyone may have planted: always replaced by a regular
    file, never written through; review). The file is synced before the rename and, unless
    ``sync_directory`` is false, its directory after it: the rename itself reaches the disk before
    the command says "written" (r124 noticed: on ext4 it waited for the next journal commit, about
    5 s). Raises ``OSError``."""
    target = Path(path)
    if in_place and written_in_place(target):
        with open(target, "ab") as handle:  # appended: never truncates what a shell's >> opened
            yield handle
        return
    if create_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}.{threading.get_ident()}")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_directory:
        sync_directory_of(target)


def sync_directory_of(target: Path) -> None:
    """``fsync`` of the directory holding ``target``, where the system allows it (not on Windows; some
    file systems refuse a directory's ``fsync``: the rename is then as durable as they make it)."""
    try:
        fd = os.open(target.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def written_in_place(target: Path) -> bool:
    """Whether ``target`` is written where it is, not through a renamed temporary file: a device,
    FIFO or socket (``-o /dev/null``), and a path named in /dev or /proc that leads through /proc
    (``-o /dev/stdout`` or ``/dev/fd/1`` when standard output is redirected to a file: links to a
    regular file). A rename would replace the node or the link itself with a regular file: as root,
    /dev/null or /dev/stdout for every process on the machine. A regular file elsewhere in /dev
    (/dev/shm) is written atomically, as any other; so is a link elsewhere that leads into /proc
    (one planted in an evidence directory must not reach this process's open files)."""
    if target.exists() and not target.is_file() and not target.is_dir():
        return True
    absolute = os.path.abspath(target)
    return absolute.startswith(("/dev/", "/proc/")) and _leads_through_proc(absolute)


def _leads_through_proc(path: str) -> bool:
    """Whether resolving ``path`` (its directories, then each link it is, at most 40) reaches /proc,
    where /dev/stdout and /dev/fd lead."""
    for _ in range(40):
        path = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        if path == "/proc" or path.startswith("/proc/"):
            return True
        if not os.path.islink(path):
            return False
        path = os.path.join(os.path.dirname(path), os.readlink(path))
    return False


def atomic_write_text(path: str | Path, text: str, mode: int = 0o666, *, create_parents: bool = True) -> None:
    atomic_write(path, text.encode("utf-8"), mode, create_parents=create_parents)


class CopiesItself(Protocol):
    """A chunk that writes itself to a binary handle (``report.stream.ChildText``: a file's bytes)."""

    def copy_to(self, handle: BinaryIO) -> None: ...


def atomic_write_chunks(path: str | Path, chunks: Iterable[str | memoryview | CopiesItself], mode: int = 0o666, *,
                        create_parents: bool = True) -> None:
    """``atomic_write_text`` of the concatenated chunks (text, or UTF-8 bytes written as they are),
    one chunk in memory at a time; the disk starts writing them as they come (``WriteBack``)."""
    with atomic_writer(path, mode, create_parents=create_parents) as handle:
        write_back = WriteBack(handle)
        for chunk in chunks:
            if isinstance(chunk, (str, memoryview)):
                data = chunk.encode("utf-8") if isinstance(chunk, str) else chunk
                handle.write(data)
                write_back.wrote(len(data))
            else:
                chunk.copy_to(handle)
                write_back.wrote(WRITE_BACK_BYTES)  # its size is the file's to say: started now in any case


WRITE_BACK_BYTES = 8 * 1024 * 1024


class WriteBack:
    """Starts the disk writing a file's pages every ``WRITE_BACK_BYTES`` written, while the rest is
    still being encoded, so the closing ``fsync`` waits for the last few megabytes, not the whole file
    (a 71 MB report's ``fsync`` was 0.11-0.13 s of a run's serial tail). ``posix_fadvise(DONTNEED)``
    is the call Python has for it on Linux (it writes dirty pages back, then drops those already
    written, which a report just written needs no more). A hint only: ``fsync`` still proves the
    write; where there is no such call, or the file refuses it (a pipe), nothing more is tried."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.started = 0  # the file's bytes before this offset are on their way to the disk
        self.pending = 0  # bytes written since
        self.advise = getattr(os, "posix_fadvise", None) if sys.platform.startswith("linux") else None

    def wrote(self, count: int) -> None:
        self.pending += count
        if self.pending >= WRITE_BACK_BYTES and self.advise is not None:
            self.pending = 0
            self._start()

    def _start(self) -> None:
        self.handle.flush()
        fd = self.handle.fileno()
        try:
            end = os.lseek(fd, 0, os.SEEK_CUR)  # (not ``tell``: a chunk that copied itself moved it unseen)
            self.advise(fd, self.started, end - self.started, os.POSIX_FADV_DONTNEED)  # type: ignore[misc]
        except OSError:  # a pipe, a device: nothing written back to start
            self.advise = None
            return
        self.started = end


def write_file(path: str | Path, text: str | Iterable[str | memoryview | CopiesItself], private: bool = False) -> None:
    """``atomic_write_text`` (of a text, or of chunks written as they come); a failure is the
    one-line ``InputError`` every command reports (exit 3). ``private``: readable by the owner only
    (a decrypted transcript)."""
    try:  # a missing directory is not created (a mistyped path must not make directories anywhere)
        atomic_write_chunks(path, [text] if isinstance(text, str) else text, 0o600 if private else 0o666,
                            create_parents=False)
    except OSError as exc:
        raise InputError(f"cannot write {printable(str(path))}: {exc.strerror or exc}") from None


def names_file(path: str | None) -> bool:
    """Does an ``-o`` value name a file? None, empty and ``-`` are standard output (every command)."""
    return bool(path) and path != "-"


def write_output(path: str | None, text: str | Iterable[str]) -> None:
    """A command's output: to ``path`` (``-o``) atomically, else (or ``-o -``) to standard output
    (chunks as they come)."""
    if path and names_file(path):
        write_file(path, text)
    else:
        write_stdout([text] if isinstance(text, str) else text)


def write_stdout(chunks: Iterable[str]) -> None:
    """The chunks to standard output as they come, then flushed. A full device behind it is the
    one-line ``InputError`` (exit 3); a reader that stopped (``BrokenPipeError``, ``| head``) is
    left to the command's caller, which says so in one line whatever was writing."""
    if sys.stdout is None:  # started with it closed (``>&-``): Python has no stream at all (review 96)
        raise InputError("cannot write standard output: it is closed; write the report with -o FILE")
    try:
        write = _stdout_writer()
        for chunk in chunks:
            write(chunk)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        detach_stdout()
        raise InputError(f"cannot write standard output: {exc.strerror or exc}") from None
    except UnicodeEncodeError as exc:  # round 95's note: PYTHONIOENCODING=ascii and a ✓ was an internal error
        detach_stdout()
        raise InputError(f"cannot write standard output: its encoding ({exc.encoding}) cannot write the report's "
                         f"{exc.object[exc.start:exc.end]!a}; set PYTHONIOENCODING=utf-8 or write it with -o FILE"
                         ) from None


def _stdout_writer() -> Callable[[str], None]:
    """What writes text to standard output, every byte of it or ``OSError``. Buffered (the default),
    ``sys.stdout.write``: its buffered layer writes all it was given or raises, and coalesces the
    chunks into few ``write(2)`` calls. Unbuffered (``PYTHONUNBUFFERED=1``, common in containers and
    CI) its binary layer is the raw file, and a short ``write(2)`` — the reader of ``| head`` gone
    mid-write, a file size limit or a full disk behind ``> report.html`` — was taken as the whole
    text: the rest was dropped, the run exited 0 with a truncated report (round 87). There the text
    is encoded here and written until every byte is taken: by one incremental encoder kept for the
    stream, so that an encoding with a byte order mark (``PYTHONIOENCODING=utf-8-sig``) writes it
    once, not before every chunk (round 95: a JSON report with a mark inside was no longer JSON)."""
    stream = sys.stdout
    binary = getattr(stream, "buffer", None)
    if not isinstance(binary, io.RawIOBase):
        def write_text(text: str) -> None:
            stream.write(text)
        return write_text
    raw = binary
    stream.flush()  # what was written as text before goes first
    encoder = _stdout_encoder(stream, raw)

    def write(text: str) -> None:
        write_fully(raw, encoder.encode(text))
    return write


def write_fully(raw: BinaryIO | io.RawIOBase, data: bytes) -> None:
    """Every byte of ``data`` to an unbuffered file, or ``OSError``: a raw ``write`` may take only
    part of it (a reader gone, a size limit, a full disk), and the rest must not be dropped in silence."""
    view = memoryview(data)
    while view:
        count = raw.write(view)
        if count is None:  # a non-blocking descriptor that would block: said as the buffered layer says it
            raise BlockingIOError(errno.EAGAIN, "write could not complete without blocking", len(data) - len(view))
        if not count:  # nothing taken
            raise OSError(errno.EIO, f"it took {len(data) - len(view)} of {len(data)} bytes, then no more")
        view = view[count:]


_ENCODER: list[tuple[object, codecs.IncrementalEncoder]] = []


def _stdout_encoder(stream: TextIO, raw: io.RawIOBase) -> codecs.IncrementalEncoder:
    """The incremental encoder of ``stream``'s encoding and errors, one for the life of the stream (its
    state — a byte order mark written — carries from one report to the next). As ``TextIOWrapper``
    does, a seekable stream not at its start writes no mark, nor does UTF-16 or UTF-32 on a pipe."""
    if _ENCODER and _ENCODER[0][0] is stream:
        return _ENCODER[0][1]
    encoder = codecs.getincrementalencoder(stream.encoding or "utf-8")(stream.errors or "strict")
    try:
        seekable = raw.seekable()
        if (seekable and raw.tell() != 0) or (not seekable and codecs.lookup(stream.encoding or "utf-8").name
                                               in ("utf-16", "utf-32")):
            encoder.setstate(0)
    except OSError:
        pass
    _ENCODER[:] = [(stream, encoder)]
    return encoder


def detach_stdout() -> None:
    """Standard output (file descriptor 1) pointed at the null device: what is still buffered for it
    is dropped at exit instead of failing again (after an error), and a forked child holds no
    reader waiting on it."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)


def check_output_path(option: str, path: str) -> None:
    """An output file named on the command line, before the run: ``-`` is standard output; otherwise
    it must not be a directory, and its directory must exist (it is never created, as for
    ``--metrics`` and ``--ledger``): a mistake is found before the work, not after it."""
    if path == "-":  # (standard output; an empty one is refused below)
        return
    target = Path(path)
    if not path or target.is_dir():
        raise InputError(f"{option} {printable(path)}: not a file name")
    if not target.parent.is_dir():
        raise InputError(f"{option} {printable(path)}: directory {printable(str(target.parent))} does not exist")
