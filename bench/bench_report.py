"""Benchmark: rendering one report in every format, against the JSON format, same run.

    python bench/bench_report.py [--events 100000] [--repeat 3]

Verifies a signed history once (deterministic keys; one event in 500 tampered, so the report has
problems to group), then renders the same ``Report`` as json, text (the terminal report, with and
without --all-events), markdown, sarif, junit, ndjson and html, best of ``--repeat`` runs each; and
the JSON report as ``verify`` streams it, in one process and with a forked child encoding half the
events. The text report's goal: at most twice the time of json (issue 8). Nothing here is asserted
in tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import verifier  # noqa: E402
from verifier.report import render  # noqa: E402
from verifier.report.stream import iter_report  # noqa: E402
from verifier.testing.forge import build_conversation  # noqa: E402


def tampered_bodies(events: int) -> tuple[list[bytes], verifier.Keyring, dict[str, bytes]]:
    conversation = build_conversation(events, realistic_crypto=False)
    bodies = []
    for number, page in enumerate(conversation.pages(page_size=100)):
        if number % 5 == 0 and page["data"]:  # one event in 500: another sender id in the JSON
            page["data"][0]["sender_id"] = "9"
        bodies.append(json.dumps(page).encode())
    return bodies, verifier.Keyring.from_json(json.dumps(conversation.keyring())), conversation.conversation_keys


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bodies, ring, keys = tampered_bodies(args.events)
    report = verifier.verify_pages(bodies, ring, conversation_keys=keys)
    cases = {fmt: (lambda fmt=fmt: render(report, fmt)) for fmt in ("json", "ndjson", "sarif", "junit", "markdown",
                                                                    "text", "html")}
    cases["text --all-events"] = lambda: render(report, "text", all_events=True)
    lazy = verifier.verify_pages(bodies, ring, conversation_keys=keys, lazy=True)  # what the CLI streams
    cases["json streamed"] = lambda: sum(map(len, iter_report(lazy, "json")))
    cases["json streamed, 2 processes"] = lambda: sum(map(len, iter_report(lazy, "json", processes=2)))
    seconds = {name: best_of(args.repeat, fn) for name, fn in cases.items()}
    json_s = seconds["json"]
    print(json.dumps({"events": args.events, "verdict": report.verdict,
                      "seconds": {k: round(v, 3) for k, v in seconds.items()},
                      "ratio_to_json": {k: round(v / json_s, 2) for k, v in seconds.items()}}, indent=2))


if __name__ == "__main__":
    main()
