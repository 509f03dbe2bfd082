"""Benchmark: two source trees of xchat-verify side by side, the CLI on the same history, runs
alternated so both see the same phases of a noisy machine.

    python bench/bench_ab.py OLD_TREE NEW_TREE [--dir /tmp/xchat-scale-100000] [--rounds 3]

Each tree is run with ``python -m verifier verify`` (``PYTHONPATH`` set to it; a tree whose compiled
module is not built runs pure Python) on the page files ``bench_scale.py --keep`` left in ``--dir``,
in three modes: one worker, one worker with ``XCHAT_VERIFY_PURE_PYTHON=1``, two workers. Every run's
ratio is its events a second over raw one-core OpenSSL verify measured right before and right after
it (mean of the two). Prints every run, then each mode's ratios per tree. A way to make an old
tree: ``git worktree add /tmp/old REV`` (copy the built ``verifier/_cfastwire*.so`` into it if the
``.pyx`` did not change since); both trees' bytecode is compiled first. Nothing here is asserted in tests.
"""

from __future__ import annotations

import argparse
import compileall
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import raw_rate  # noqa: E402

MODES = {"1 worker": (["--workers", "1"], {}),
         "1 worker, pure Python": (["--workers", "1"], {"XCHAT_VERIFY_PURE_PYTHON": "1"}),
         "2 workers": (["--workers", "2"], {})}


def run(tree: str, directory: str, args: list[str], env: dict[str, str]) -> float:
    files = sorted(glob.glob(os.path.join(directory, "pages-*.jsonl")))
    command = [sys.executable, "-m", "verifier", "verify", *files, "--keys", os.path.join(directory, "ring.json"),
               "--format", "json", "-o", os.path.join(directory, "report-ab.json"), *args]
    start = time.perf_counter()
    subprocess.run(command, env={**os.environ, "PYTHONPATH": tree, **env}, cwd=directory, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--dir", default="/tmp/xchat-scale-100000")
    parser.add_argument("--events", type=int, default=100_000, help="the history's events (bench_scale --events)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for tree in (args.old, args.new):
        # As installed (pip compiles the bytecode), as bench_scale.py runs its tree: a fresh worktree
        # under PYTHONDONTWRITEBYTECODE=1 compiled every module again in each run (round 124: 638M
        # instructions, about 0.2 s a run, in both trees' times)
        compileall.compile_dir(os.path.join(tree, "verifier"), quiet=1)
    ratios: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for mode, (extra, env) in MODES.items():
            for name, tree in (("old", args.old), ("new", args.new)):
                before = round(raw_rate(2000, 1))
                seconds = run(tree, args.dir, extra, env)
                after = round(raw_rate(2000, 1))
                ratio = round(args.events / seconds / ((before + after) / 2), 3)
                ratios.setdefault(mode, {}).setdefault(name, []).append(ratio)
                print(json.dumps({"mode": mode, "tree": name, "seconds": round(seconds, 2), "raw_before": before,
                                  "raw_after": after, "ratio": ratio}), flush=True)
    print(json.dumps(ratios, indent=2))


if __name__ == "__main__":
    main()
