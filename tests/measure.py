"""Run the xchat-verify CLI in this process, then record what it cost: peak RSS and bytes written.

Resource tests start it as a child (``python tests/measure.py audit ...``) with ``MEASURE_OUT`` naming
a file for the figures, so each measurement is of that one run alone.
"""

import json
import os
import resource
import sys

from verifier.cli import main


def peak_rss_mb() -> float:
    """Peak RSS of this process since it started (``VmHWM``). Not ``getrusage``: Linux carries
    ``ru_maxrss`` over fork and exec, so a child would report its parent's size (pytest's)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def io_counters() -> dict[str, int]:
    """``/proc/self/io``: ``wchar`` counts every byte handed to write() (files, journal, stdout)."""
    try:
        with open("/proc/self/io") as handle:
            return {k: int(v) for k, v in (line.split(": ") for line in handle.read().splitlines())}
    except OSError:
        return {}


if __name__ == "__main__":
    code = main()  # as the command: its exit too (round 133's freeze), which bench_scale.py times
    sys.stdout.flush()
    figures = {"peak_rss_mb": peak_rss_mb(), **io_counters()}
    with open(os.environ["MEASURE_OUT"], "w") as out:
        json.dump(figures, out)
    sys.exit(code)
