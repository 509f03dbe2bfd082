"""Benchmark: what recording in the SQLite ledger adds to ``verify``, and the ledger's size on disk.

    python bench/bench_ledger.py [--events 100000] [--size-events 1000000] [--repeat 3]

1. Overhead: a signed history of ``--events`` events as X API page bodies; per run, ``verify`` (the
   incremental engine, decode to Report, 2 workers) and then ``record_audit`` into an SQLite ledger
   (judging against the ledger and writing, one transaction, fsync included). Measured for the first
   audit (every event inserted) and a second audit of the same history (every event found again,
   compared and touched). Best of ``--repeat``; overhead = record / verify.
2. Size: a ledger holding ``--size-events`` events (10 conversations, realistic field sizes: 19-digit
   sequence ids, SHA-256 digests, UUID message ids, kinds, statuses) written through the same
   ``record_audit`` path, then its file size after a WAL checkpoint, after one and after two audits.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402

import verifier  # noqa: E402
from verifier.engine import EventFacts, Verification  # noqa: E402
from verifier.ledger import open_ledger, record_audit  # noqa: E402
from verifier.model import Check, ConversationReport, EventReport, Proof, Report  # noqa: E402
from verifier.testing.forge import build_conversation  # noqa: E402


def overhead(events: int, repeat: int, folder: Path) -> dict:
    conversation = build_conversation(events, seed="bench", realistic_crypto=False)
    bodies = [msgspec.json.encode(p) for p in conversation.pages(100)]
    ring_json = json.dumps(conversation.keyring())
    keys = conversation.conversation_keys
    best = {"verify_s": float("inf"), "record_first_s": float("inf"), "record_again_s": float("inf")}
    for run in range(repeat):
        ledger = folder / f"overhead-{run}.db"
        for phase in ("first", "again"):
            start = time.perf_counter()
            v = Verification(conversation_keys=keys, workers=2)
            for body in bodies:
                v.add_page(body)
            report = v.finish(verifier.Keyring.from_json(ring_json))
            verified = time.perf_counter()
            store = open_ledger(str(ledger))
            record_audit(store, report, v.event_facts(), v.keyring, command="verify", inputs=["bench"],
                         key_source="keyring")
            store.close()
            done = time.perf_counter()
            best["verify_s"] = min(best["verify_s"], verified - start)
            best[f"record_{phase}_s"] = min(best[f"record_{phase}_s"], done - verified)
            assert report.verdict == "pass", report.verdict
            del report, v
    n = report_events = events
    return {"events": n, "verify_s": round(best["verify_s"], 3),
            "record_first_audit_s": round(best["record_first_s"], 3),
            "record_second_audit_s": round(best["record_again_s"], 3),
            "overhead_first_audit": f"{100 * best['record_first_s'] / best['verify_s']:.1f}%",
            "overhead_second_audit": f"{100 * best['record_again_s'] / best['verify_s']:.1f}%",
            "verified_events": report_events}


def synthetic(events: int, conversations: int = 10) -> tuple[Report, list[EventFacts]]:
    """A report of ``events`` valid events in ``conversations`` chains, with realistic field sizes."""
    convs, facts = [], []
    index = 0
    per = events // conversations
    senders = ["1215441834412953600", "1843439638876491776"]
    for c in range(conversations):
        cid = f"{1000000000000000000 + c}:1843439638876491776"
        evs = []
        prev = None
        for i in range(per):
            seq = str(1866000000000000000 + c * 10_000_000 + i * 4096)
            evs.append(EventReport(index, seq, prev, str(uuid.UUID(int=index + 1)), senders[i % 2],
                                   "MessageCreateEvent", Check("valid", "v7"), Check("linked", ""), True, [],
                                   "1765382634817", str(1784841000000 + i)))
            facts.append(EventFacts(index, hashlib.sha256(seq.encode()).digest(), "7", ()))
            prev = seq
            index += 1
        convs.append(ConversationReport(cid, "pass", {}, evs, [], True))
    return Report("xchat-verify/report/v1", "pass", convs, proof=Proof(events=index)), facts


def size(events: int, folder: Path) -> dict:
    ledger = folder / "size.db"
    out = {"events": events}
    for audit in (1, 2):
        report, facts = synthetic(events)
        start = time.perf_counter()
        store = open_ledger(str(ledger))
        record_audit(store, report, facts, None, command="verify", inputs=["synthetic"])
        store._run("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        out[f"record_audit_{audit}_s"] = round(time.perf_counter() - start, 1)
        total = sum(os.path.getsize(p) for p in folder.glob("size.db*"))
        out[f"bytes_after_audit_{audit}"] = total
        out[f"MB_after_audit_{audit}"] = round(total / 1e6, 1)
        out[f"bytes_per_event_after_audit_{audit}"] = round(total / events, 1)
        del report, facts
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--size-events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the ledgers go (default: a temporary directory)")
    args = parser.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="bench-ledger-"))
    folder.mkdir(parents=True, exist_ok=True)
    result = {"overhead": overhead(args.events, args.repeat, folder)}
    print(json.dumps(result), flush=True)
    if args.size_events:
        result["size"] = size(args.size_events, folder)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
