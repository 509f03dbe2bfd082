"""Reading the user's files: pages (one JSON body, JSON Lines, gzip, UTF-8 BOM), keyrings and
conversation keys, with every size bounded and every failure one line that names the file.

Kept apart from the CLI so library users, the vector runner and the archive code load inputs exactly
as ``xchat-verify verify`` does.
"""

from __future__ import annotations

import errno
import io
import itertools
import mmap
import os
import re
import stat
import sys
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import msgspec

from .errors import InputError, KeyringError, MalformedEvent, UsageError
from .keys import Keyring
from .pages import DecodedPage, decode_page
from .sanitize import printable
from .wire import b64decode_strict

DEFAULT_MAX_FILE_MB = 512
GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # little and big endian (UTF-32LE too)
MANIFEST = "manifest.json"


def cannot_read(exc: OSError) -> str:
    """Why a named input could not be read, in words that say what to do (new-user review: a
    directory was only "Is a directory")."""
    if isinstance(exc, IsADirectoryError):
        return ("it is a directory: an evidence directory (with its manifest.json) is verified alone, "
                "`verify DIR`; the page files in one: `DIR/*.json`; a tree of page files: `archive verify`")
    if isinstance(exc, FileNotFoundError) and _CONVERSATION_ID.fullmatch(os.fsdecode(exc.filename or "")):
        # round 80: `verify 1215441834412953600:1843439638876491776` said only "No such file or directory"
        return (f"cannot read it: {exc.strerror or exc} (a conversation id? `verify` reads saved pages; "
                "`xchat-verify audit ID` fetches a conversation)")
    return f"cannot read it: {exc.strerror or exc}"


_CONVERSATION_ID = re.compile(r"[0-9]{1,19}(?:[:-][0-9]{1,19})?|g[0-9]{1,19}")  # docs/cli.md, audit's ID


def read_limited(path: str, max_bytes: int) -> bytes:
    """A file or stdin (``-``), gunzipped if it is gzip (detected by its magic bytes) and without a
    UTF-8 byte-order mark, refusing anything larger than ``max_bytes`` before or after decompression.
    The ``InputError`` does not repeat the path: callers name the input."""
    try:
        if path == "-":
            data = read_at_most(sys.stdin.buffer, max_bytes + 1)
        else:
            with open(path, "rb") as handle:
                data = read_at_most(handle, max_bytes + 1)
    except OSError as exc:
        raise InputError(cannot_read(exc)) from None
    return unpack_limited(data, max_bytes)


def read_at_most(handle: BinaryIO, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``handle``. A regular file is read into a buffer of its own size:
    ``read(limit)`` would allocate ``limit`` bytes (512 MB by default) for every file, a fresh mapping
    whose pages fault again each time, which cost more system time than the whole read. A file that
    grows while it is read is still read up to ``limit``."""
    try:
        info = os.fstat(handle.fileno())
        start = handle.tell() if stat.S_ISREG(info.st_mode) else 0
    except (OSError, ValueError, AttributeError, TypeError):  # no descriptor: fsspec's tar members, BytesIO
        return handle.read(limit)
    if not stat.S_ISREG(info.st_mode) or info.st_size >= limit:
        return handle.read(limit)
    expected = max(info.st_size - start, 0) + 1  # one byte more: the end, or that it grew
    data = handle.read(expected)
    if len(data) < expected:
        return data
    return data + handle.read(limit - len(data))


def unpack_limited(data: bytes, max_bytes: int) -> bytes:
    """What ``read_limited`` does once the bytes are read (at most ``max_bytes + 1`` of them): the
    size check, gunzip, BOM. Shared with readers of other storage (``verifier.archive``)."""
    if len(data) > max_bytes:
        raise InputError(f"larger than the limit of {max_bytes // (1024 * 1024)} MB (raise it with --max-file-mb)")
    if data.startswith(GZIP_MAGIC):
        data = gunzip_limited(data, max_bytes)
    if data.startswith(UTF16_BOMS):  # round 80: "JSON is malformed: invalid character at line 1, column 1"
        raise InputError("UTF-16 text (it starts with a UTF-16 byte-order mark, as Windows PowerShell's `>` "
                         "writes): JSON must be UTF-8; convert it (`iconv -f UTF-16 -t UTF-8`)")
    return data[len(UTF8_BOM):] if data.startswith(UTF8_BOM) else data


class FileRefused(ValueError):
    """Why ``copy_regular_file`` refused a file: ``kind`` is ``"symlink"``, ``"not_regular"`` or
    ``"too_large"``; each caller words it its own way."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def copy_regular_file(path: str | os.PathLike, sink: BinaryIO, max_bytes: int, *, follow_symlinks: bool = True) -> None:
    """Copy the regular file ``path`` into ``sink``, at most ``max_bytes`` (more is refused, as is a
    device, FIFO or directory: ``/dev/zero`` would fill memory, a FIFO hang; and, unless
    ``follow_symlinks``, a symbolic link). Opened without blocking, checked on the open descriptor.
    Raises ``FileRefused``, or the system's ``OSError``."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags if follow_symlinks else flags | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise FileRefused("symlink") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused("not_regular")
        if info.st_size > max_bytes:
            raise FileRefused("too_large")
        size = 0
        while chunk := os.read(fd, min(1 << 20, max_bytes + 1 - size)):
            size += len(chunk)
            if size > max_bytes:  # it grew while read
                raise FileRefused("too_large")
            sink.write(chunk)
    finally:
        os.close(fd)


def read_regular_file(path: str | os.PathLike, max_bytes: int, what: str = "",
                      error: type[InputError] = InputError) -> bytes:
    """A small file the user names (a key, a checkpoint, a receipt, a previous metrics file), read
    by ``copy_regular_file`` (symbolic links followed). Raises ``error`` naming ``what`` (default:
    the path) and the reason."""
    name = what or printable(str(path))
    out = io.BytesIO()
    try:
        copy_regular_file(path, out, max_bytes)
    except OSError as exc:
        raise error(f"cannot read {name}: {exc.strerror or exc}") from None
    except FileRefused as exc:
        reason = "not a regular file" if exc.kind == "not_regular" else f"larger than {max_bytes} bytes"
        raise error(f"cannot read {name}: {reason}") from None
    return out.getvalue()


def gunzip_limited(data: bytes, max_bytes: int) -> bytes:
    """Decompress every gzip member, never producing more than ``max_bytes`` (a gzip bomb stops at
    the limit instead of filling memory)."""
    out = bytearray()
    view = memoryview(data)
    pos, end = 0, len(data)
    while pos < end:
        inflater = zlib.decompressobj(wbits=31)
        # Round 104: fed the whole rest of the file, zlib copied it into ``unused_data`` at the end
        # of every member, so 200,000 empty members (4 MB) took 17 s, the square of the size. The
        # input is fed in slices that start small and double, so what is copied at a member's end
        # is at most about the member's own size.
        feed = _GUNZIP_FIRST_FEED
        while not inflater.eof:
            if pos >= end:
                raise InputError("truncated gzip")
            piece = view[pos:pos + feed]
            pending: bytes | memoryview = piece
            while pending and not inflater.eof:
                try:  # in 1 MiB steps, so the limit is checked before memory is spent
                    out += inflater.decompress(pending, _GUNZIP_STEP)
                except zlib.error as exc:
                    raise InputError(f"not valid gzip: {exc}") from None
                if len(out) > max_bytes:
                    raise InputError(f"decompresses to more than the limit of {max_bytes // (1024 * 1024)} MB "
                                     "(raise it with --max-file-mb)")
                pending = inflater.unconsumed_tail
            pos += len(piece) - len(inflater.unused_data)
            feed = min(feed * 2, _GUNZIP_STEP)
        if pos < end and not data.startswith(GZIP_MAGIC, pos):
            rest = view[pos:]
            if bytes(rest).strip(b"\0"):  # round 90: ignored without a word, so a page appended uncompressed
                # (`cat page.json >> pages.jsonl.gz`) was never read; gzip(1) warns ("trailing garbage")
                raise InputError(f"{len(rest)} bytes after the end of the gzip data are not gzip: they "
                                 "would not be read (compress the whole file, or give them as a file of "
                                 "their own)")
            break  # NUL padding after the last member (tape blocks), skipped as gzip readers do
    return bytes(out)


_GUNZIP_FIRST_FEED = 64
_GUNZIP_STEP = 1024 * 1024


_BYTE_AT = re.compile(r"\(byte (\d+)\)")


def locate(data: bytes, message: str) -> str:
    """``JSON is malformed: ... (byte 14)`` -> ``JSON is malformed: ... at line 2, column 5``."""
    match = _BYTE_AT.search(message)
    if match is None:
        return message
    offset = min(int(match.group(1)), len(data))
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return message[:match.start()].rstrip() + f" at line {line}, column {column}"


def _syntax_error(data: bytes | memoryview | mmap.mmap) -> str | None:
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        return str(exc)
    except RecursionError:
        return None  # valid syntax nested too deeply: decode_page reports it
    return None


def _line_views(data: bytes | mmap.mmap) -> Iterator[tuple[int, memoryview]]:
    """(line number, the line) of every line that is not blank, as views of ``data``, lazily:
    copying each line of a large file (``bytes.split``) cost more than decoding it, once the process
    held a million events; and a list of them held 250 bytes a line for the whole file."""
    view = memoryview(data)
    return ((number, view[start:end]) for number, start, end in _content_lines(data))


def _content_lines(data: bytes | mmap.mmap, start: int = 0, stop: int | None = None,
                   first_number: int = 1) -> Iterator[tuple[int, int, int]]:
    """(line number, start, end) of every line that is not blank, lazily: from the line beginning at
    ``start`` (whose number is ``first_number``) to the last one beginning before ``stop``."""
    for number, end in enumerate(_line_ends(data, start), first_number):
        if stop is not None and start >= stop:
            return
        if end > start and (data[start] not in _BLANK or not data[start:end].isspace()):
            yield number, start, end
        start = end + 1


def _share_line_views(data: bytes | mmap.mmap, share: int, shares: int) -> Iterator[tuple[int, memoryview]]:
    """``_line_views`` of the lines of share ``share`` of ``shares``: those beginning in its stretch
    of the bytes (each line in exactly one share). Only the share's own lines are walked; the lines
    before it are counted, not walked, for their numbers."""
    size = len(data)
    low, high = size * share // shares, size * (share + 1) // shares
    start = 0
    if low:
        end_before = data.find(b"\n", low - 1)  # the line beginning at or after ``low``
        if end_before == -1:
            return iter(())
        start = end_before + 1
    number = 1 + sum(bytes(data[at:min(at + _COUNT_CHUNK, start)]).count(b"\n")
                     for at in range(0, start, _COUNT_CHUNK))
    view = memoryview(data)
    return ((number, view[begin:end]) for number, begin, end in _content_lines(data, start, high, number))


_COUNT_CHUNK = 1 << 20  # newlines counted a megabyte at a time (a mapped file is not copied whole)


def _line_ends(data: bytes | mmap.mmap, start: int = 0) -> Iterator[int]:
    """The offset of every line's end from ``start`` on (its ``\\n``, or the end of ``data`` for the
    last line)."""
    at = data.find(b"\n", start)
    while at != -1:
        yield at
        at = data.find(b"\n", at + 1)
    yield len(data)


_BLANK = frozenset(b" \t\n\r\x0b\x0c")  # bytes.isspace()


def split_bodies(data: bytes | mmap.mmap, source: str, share: int = 0, shares: int = 1,
                 forms: list[str] | None = None) -> Iterator[DecodedPage]:
    """One JSON body, or JSON Lines with one body per line (each decoded on its own, so one bad
    line is one error and every other line is still verified). A file that is neither gets ONE
    error: the first real syntax error, with its line and column.

    ``share`` of ``shares``: only that consecutive share of the lines (the shares of a file, in
    order, give its pages exactly once: ``verifier.parallel``); anything else belongs to share 0.
    ``forms`` is told which the file was read as (``document``, ``lines`` or ``neither``): JSON
    nested close to Python's recursion limit may be read otherwise on a deeper stack, and shares of
    one file read otherwise would lose pages, so their reader compares."""
    several = len(list(itertools.islice(_content_lines(data), 2))) > 1
    first = _first_line_parse(data) if several or share > 0 else _FAILS  # (one line: the whole file, below)
    if share > 0 and first == _FAILS:  # not JSON Lines: nothing here for this share
        if forms is not None:
            forms.append("not lines")  # without parsing what may be one huge document once per share
        return
    # Two lines and more, the first a JSON value on its own: the whole file cannot parse (that value
    # ends on its line and something follows), so it is not decoded whole to learn it (which built
    # the first line's page of objects only to fail on "trailing characters"; round 135). "": known
    # not to parse, never read (JSON Lines).
    error = "" if first == _PARSES and several else _syntax_error(data)
    if error is None:
        if forms is not None:
            forms.append("document")
        if share == 0:
            yield decode_page(data if isinstance(data, bytes) else memoryview(data), source)
        return
    if several and first != _FAILS:  # JSON Lines
        if forms is not None:
            forms.append("lines")
        lines = _line_views(data) if shares == 1 else _share_line_views(data, share, shares)
        for number, line in lines:  # views of data: nothing to release line by line
            page = decode_page(line, f"{source}:{number}")  # decoded once; syntax checked only if it failed
            line_error = _syntax_error(line) if page.errors and page.errors[0].startswith("not a JSON object: ") \
                else None
            if line_error is not None:
                yield DecodedPage(f"{source}:{number}",
                                  errors=[f"not JSON: {locate(bytes(line), line_error).replace('line 1, ', '')}"])
            else:
                yield page
        return
    if forms is not None:
        forms.append("neither")
    if share == 0:
        empty = not bytes(data).strip()  # (this path only: the data did not parse)
        yield DecodedPage(source, errors=["empty: no JSON in it" if empty else
                                          f"not a JSON document nor JSON Lines: {locate(bytes(data), error)}"
                                          + (_SEVERAL_DOCUMENTS if "trailing characters" in error else "")])


# round 80: pretty-printed pages one after another (`cat page-*.json | verify -`) said only "trailing characters"
_SEVERAL_DOCUMENTS = (" (several JSON documents one after another? give each page as a file of its own, or one "
                      "page per line: JSON Lines)")


_PARSES, _TOO_DEEP, _FAILS = 0, 1, 2  # what ``_first_line_parse`` found


def _first_line_parse(data: bytes | mmap.mmap) -> int:
    """Whether the first line that is not blank parses on its own (JSON Lines need it to):
    ``_PARSES``, ``_TOO_DEEP`` (valid syntax nested too deeply to read here: ``split_bodies`` counts
    it as parsing, though not as proof that the whole file does not parse) or ``_FAILS`` (a syntax
    error, or no such line)."""
    first = next(_content_lines(data), None)
    return _FAILS if first is None else _parse(memoryview(data)[first[1]:first[2]])


def _parse(data: memoryview) -> int:
    """``_first_line_parse`` of one line. A frame deeper than ``split_bodies``' decode of the whole
    file (``_syntax_error``): a line read here without running out of stack is read there too."""
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError:
        return _FAILS
    except RecursionError:
        return _TOO_DEEP
    return _PARSES


_ONE_VALUE = (str, bytes, bytearray, memoryview, dict, os.PathLike)


def refuse_one_value(values: object, where: str, what: str) -> None:
    """``UsageError`` when one body or path is given where a sequence of them is expected: iterating
    it would take each character as a page or a path (review 51: ``verify_archive("dir")`` walked
    "/")."""
    if isinstance(values, _ONE_VALUE):
        raise UsageError(f"{where} takes a sequence of {what}, not one {type(values).__name__}: "
                         "pass it in a list")


def path_list(paths: Iterable[str | os.PathLike[str]], where: str) -> list[str]:
    """The paths as text (``os.PathLike`` accepted); ``UsageError`` for a single path or a value
    that is not a path."""
    refuse_one_value(paths, where, "paths")
    out = []
    for path in paths:
        try:
            out.append(os.fsdecode(path))
        except TypeError:
            raise UsageError(f"{where}: {type(path).__name__} is not a path") from None
    return out


def load_pages(paths: Iterable[str | os.PathLike[str]], max_bytes: int) -> Iterator[DecodedPage]:
    """Pages of every path in order, lazily; an unreadable file becomes a page with an error.
    ``UsageError`` at once for a single path instead of a sequence."""
    return _load_pages(path_list(paths, "load_pages"), max_bytes)


def _load_pages(paths: list[str], max_bytes: int) -> Iterator[DecodedPage]:
    for path in paths:
        try:
            data = read_limited(path, max_bytes)
        except InputError as exc:
            yield DecodedPage(path, errors=[str(exc)])
            continue
        pages = split_bodies(data, "stdin" if path == "-" else path)
        del data  # split_bodies holds the file while its lines (views of it) are decoded
        yield from pages


def load_share(path: str, max_bytes: int, share: int, shares: int, mapped: bool = False,
               identity: tuple[int, ...] | None = None, forms: list[str] | None = None) -> Iterator[DecodedPage]:
    """The pages of one share of a file (``split_bodies``, which tells ``forms``), as ``load_pages``
    reads them; a file that cannot be read is one page with an error, in share 0.

    ``identity`` (``file_identity`` when the shares were planned): a file that is no longer that file
    (written, replaced, removed) gives an error in every share, so no share's pages go missing
    unnoticed and no two shares read different versions. ``mapped``: a plain file is mapped, not
    read (the workers sharing it then hold one copy, the page cache's); only for a worker process,
    which a file truncated while mapped would kill (SIGBUS). Exactly the planned size is read, and
    the file is checked again once the share's pages are decoded: a write during the read shows."""
    try:
        data = _open_share(path, max_bytes, mapped, identity)
    except InputError as exc:
        if share == 0 or identity is not None:
            yield DecodedPage(path, errors=[str(exc)])
        return
    pages = split_bodies(data, path, share, shares, forms)
    del data
    yield from pages
    if identity is not None and _identity_of(path) != identity:
        yield DecodedPage(path, errors=[_CHANGED])


_CHANGED = ("changed while it was being verified (written, replaced or removed): not every page of it "
            "could be checked; verify it again")


def _identity_of(path: str) -> tuple[int, ...] | None:
    try:
        return file_identity(os.stat(path))
    except (OSError, ValueError):
        return None


def file_identity(info: os.stat_result) -> tuple[int, ...]:
    """What changes when a file is written, replaced or removed: device, inode, size, mtime."""
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


def _open_share(path: str, max_bytes: int, mapped: bool, identity: tuple[int, ...] | None) -> bytes | mmap.mmap:
    """The file's bytes (mapped if ``mapped`` and plain), checked against ``identity``; InputError
    with ``read_limited``'s messages otherwise. Opened without blocking: a path that became a FIFO
    is refused, not waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise InputError(cannot_read(exc)) from None
    with os.fdopen(fd, "rb") as handle:
        try:
            info = os.fstat(fd)
            if identity is not None and file_identity(info) != identity:
                raise InputError(_CHANGED)
            head = handle.read(max(len(GZIP_MAGIC), len(UTF8_BOM)))
            if mapped and stat.S_ISREG(info.st_mode) and 0 < info.st_size <= max_bytes \
                    and not head.startswith((GZIP_MAGIC, UTF8_BOM, *UTF16_BOMS)):
                return mmap.mmap(fd, info.st_size, access=mmap.ACCESS_READ)  # the size checked, not more
            if identity is None or info.st_size > max_bytes:
                data = head + read_at_most(handle, max_bytes + 1 - len(head))
            else:  # the planned size, and one byte more to see a file that grew while it was read
                data = head + handle.read(max(0, info.st_size + 1 - len(head)))
                if len(data) != info.st_size:
                    raise InputError(_CHANGED)
        except OSError as exc:
            raise InputError(cannot_read(exc)) from None
        except ValueError as exc:  # mmap of a file that shrank to nothing meanwhile
            raise InputError(f"cannot read it: {exc}") from None
    return unpack_limited(data, max_bytes)


def is_evidence_dir(path: str | os.PathLike[str]) -> bool:
    """A directory holding a manifest. One that cannot be searched is not one (review 51: the
    ``PermissionError`` of ``is_file`` was an internal error): reading it then says why, as an
    input error."""
    if os.fspath(path) == "-":
        return False
    try:
        return (Path(path) / MANIFEST).is_file()
    except OSError:
        return False


def load_keyring(path: str, max_bytes: int) -> Keyring:
    """A keyring file in any documented shape; ``InputError`` names the file and the bad entry."""
    if path != "-" and os.path.isdir(path):  # (cannot_read's advice is about pages: evidence, archive verify)
        raise KeyringError(f"keyring {path}: it is a directory, not a keyring file (a JSON file of public keys)")
    try:
        return Keyring.from_json(read_limited(path, max_bytes))
    except (KeyringError, InputError) as exc:
        raise KeyringError(f"keyring {path}: {exc}") from None


def parse_conversation_keys(values: Sequence[str]) -> dict[str, bytes]:
    """``VERSION=BASE64`` options -> {version: 32-byte key}; ``UsageError`` on anything else (one
    string, whose characters were each taken for an option, r109; a value that is not a str)."""
    refuse_one_value(values, "parse_conversation_keys", "VERSION=BASE64 values")
    keys = {}
    for value in values:
        if not isinstance(value, str):
            raise UsageError(f"--conversation-key expects VERSION=BASE64 text, got {type(value).__name__} {value!r:.40}")
        version, sep, b64 = value.partition("=")
        if not sep or not version:
            raise UsageError(f"--conversation-key expects VERSION=BASE64, got {value!r}")
        try:
            key = b64decode_strict(b64, f"--conversation-key {version}")
        except MalformedEvent as exc:
            raise UsageError(str(exc)) from None
        if len(key) != 32:
            raise UsageError(f"--conversation-key {version}: key is {len(key)} bytes, expected 32")
        keys[version] = key
    return keys
