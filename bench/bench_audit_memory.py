"""Memory of an audit as the history grows: the local API server serves one N-event conversation and
``xchat-verify audit`` runs in a child (``tests/measure.py``: VmHWM of the child alone).

    python bench/bench_audit_memory.py --events 20000 80000 [--python /other/checkout/.venv/bin/python]

A server that mints fresh events on every page costs what an honest history of that length costs
(docs/threat-model.md, "Hostile server"), so the slope between the sizes is the per-event cost an
endless hostile stream would have. ``--python`` runs another checkout's interpreter (its own
``tests/measure.py``) against the same server, to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from verifier.testing.forge import build_conversation  # noqa: E402
from verifier.testing.server import FakeXApi  # noqa: E402


def audit_peak(python: str, events: int) -> dict:
    conversation = build_conversation(events, seed="audit-memory", realistic_crypto=False)
    checkout = Path(python).absolute().parent.parent.parent  # CHECKOUT/.venv/bin/python
    with FakeXApi([conversation]) as api, tempfile.TemporaryDirectory() as tmp:
        figures = Path(tmp) / "figures.json"
        env = {**os.environ, "X_BEARER_TOKEN": api.state.token, "MEASURE_OUT": str(figures)}
        started = time.monotonic()
        proc = subprocess.run([python, str(checkout / "tests" / "measure.py"), "audit", conversation.conversation_id,
                               "--base-url", api.url, "--max-results", "100", "--max-pages", "100000",
                               "--format", "json", "-o", str(Path(tmp) / "report.json")],
                              capture_output=True, text=True, env=env, cwd=checkout)
        return {"events": events, "exit_code": proc.returncode, "seconds": round(time.monotonic() - started, 1),
                "peak_rss_mb": round(json.loads(figures.read_text())["peak_rss_mb"], 1),
                "stderr": proc.stderr.strip()[-200:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[20_000, 80_000])
    parser.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"), help="interpreter of the checkout to measure")
    args = parser.parse_args()
    rows = [audit_peak(args.python, n) for n in args.events]
    out: dict = {"python": args.python, "runs": rows}
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        out["kb_per_event"] = round((last["peak_rss_mb"] - first["peak_rss_mb"]) * 1024 /
                                    (last["events"] - first["events"]), 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
