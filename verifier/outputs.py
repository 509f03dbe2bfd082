"""Writing files so that a failure never leaves a half-written or silently replaced one: every file
goes to a temporary name in the same directory, is flushed to disk, then renamed over the target."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; on any error the old file (if any) is intact and the
    temporary file is removed. Raises ``OSError``."""
    with atomic_writer(path) as handle:
        handle.write(data)


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces ``path`` only once the block ends without error
    (written in pieces: a large report is never whole in memory)."""
    target = Path(path)
    if target.exists() and not target.is_file() and not target.is_dir():
        # a device or FIFO (``-o /dev/null``, ``-o /dev/stdout``): written in place. Renaming over it
        # would replace the device with a regular file (as root, /dev/null itself).
        with open(target, "wb") as handle:
            yield handle
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}.{threading.get_ident()}")
    try:
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_chunks(path: str | Path, chunks: Iterable[str]) -> None:
    """``atomic_write_text`` of the concatenated chunks, one chunk in memory at a time."""
    with atomic_writer(path) as handle:
        for chunk in chunks:
            handle.write(chunk.encode("utf-8"))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, text.encode("utf-8"))
