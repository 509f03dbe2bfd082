"""Child processes: when this process may fork, and children that end with the process that
started them.

A parent that is killed (SIGKILL, SIGTERM) cannot stop its children: without this, a worker would
wait forever on a pipe nobody reads, and a forked report encoder would run on as an orphan.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

_PR_SET_PDEATHSIG = 1


def can_fork() -> bool:
    """Only on Linux and with no other thread running: a fork copies other threads' locks as they
    are, and a child could wait forever on one (elsewhere, processes start clean)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and threading.active_count() == 1


def die_with_parent(parent: int | None = None) -> None:
    """On Linux, be killed (SIGKILL) when the parent dies; ``parent``: its pid, to catch a parent
    that died before this call (the child is then orphaned already, and exits)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # (here: a process that starts no child never loads it)
    try:  # prctl(PR_SET_PDEATHSIG, SIGKILL): no Python API; libc's own call, nothing to build
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return  # then a child of a killed parent runs until it ends or is killed too
    if parent is not None and os.getppid() != parent:
        os._exit(1)
