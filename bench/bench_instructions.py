"""Instructions per event of the Python side of `verify` (the ECDSA check stubbed out), under
valgrind's callgrind: deterministic whatever the VM's speed does, so two versions of the code
compare exactly. The figure is the difference between two runs of the CLI in one process (the
first N1 and N2 pages of one page file), divided by the events between them: start-up, imports
and the report's fixed parts cancel out.

    python bench/bench_instructions.py PAGES.jsonl KEYRING.json [--pages 10 50] [--pure]

PAGES.jsonl: a JSON Lines page file, e.g. one written by `bench_scale.py --keep`; valgrind must be
installed. Under callgrind, SHA-256 runs without its SHA-NI code (about 20,000 of the instructions
of an event are that; a 1 µs call in real runs)."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

# The child: the CLI in this process, the ECDSA verify replaced by the DER conversion alone.
_CHILD = """
import sys
import verifier.signature as signature
from verifier.keys import raw_signature_to_der

def stub(key, sig, payload):
    raw_signature_to_der(sig)
    return True, ""

signature.verify_raw = stub
signature.verify_der = lambda key, der, payload: (True, "")  # (its DER made by ``check_all``, at once)
from verifier.cli import main
main(["verify", sys.argv[1], "--keys", sys.argv[2], "--format", "json", "-o", sys.argv[3], "--workers", "1"])
"""


def events_in(path: Path) -> int:
    return sum(line.count('"encoded_event"') for line in path.read_text().splitlines())


def instructions(pages: Path, keyring: str, work: Path, env: dict[str, str]) -> int:
    out = work / "callgrind.out"
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", _CHILD,
                    str(pages), keyring, str(work / "report.json")],
                   env=env, check=False, capture_output=True, timeout=3600)
    match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit(f"no instruction count in {out}: is valgrind installed?")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", type=Path)
    parser.add_argument("keyring")
    parser.add_argument("--pages", dest="counts", type=int, nargs=2, default=(10, 50), metavar=("N1", "N2"))
    parser.add_argument("--pure", action="store_true", help="XCHAT_VERIFY_PURE_PYTHON=1 (no compiled decoder)")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.pure:
        env["XCHAT_VERIFY_PURE_PYTHON"] = "1"
    lines = args.pages.read_text().splitlines(keepends=True)
    counts, events = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in args.counts:
            part = work / f"pages-{n}.jsonl"
            part.write_text("".join(lines[:n]))
            counts.append(instructions(part, args.keyring, work, env))
            events.append(events_in(part))
    per_event = (counts[1] - counts[0]) / (events[1] - events[0])
    print(f"{'pure' if args.pure else 'compiled'}: {counts[0]:,} and {counts[1]:,} instructions for {events[0]:,} "
          f"and {events[1]:,} events: {per_event:,.0f} an event")


if __name__ == "__main__":
    main()
