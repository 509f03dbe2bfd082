"""Benchmark: end-to-end ``verify_pages`` events/s next to raw OpenSSL ECDSA verify/s, same run.

    python bench/bench_verify.py [--events 100000] [--page-size 100] [--workers N]

Builds a signed history (deterministic keys), serialises it to X API page bodies, then measures:
  * raw:     cryptography/OpenSSL ``verify`` of exactly the same (key, signature, payload) triples, one core
  * engine:  ``verify_pages`` from raw JSON bytes to a Report, with 1 worker and with N workers
Ratios are against the raw baseline measured in the same process, so they are comparable across
machines. Peak RSS is the process high-water mark (it includes building the history).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

import verifier  # noqa: E402
from verifier.keys import raw_signature_to_der  # noqa: E402
from verifier.testing.forge import build_conversation  # noqa: E402
from verifier.wire import b64decode_strict  # noqa: E402


def raw_baseline(conversation, repeats: int = 1, workers: int = 1) -> float:
    """Seconds per verify for OpenSSL alone on the history's own signatures (``workers`` threads)."""
    keys = {m.user_id: m.signing.public_key() for m in conversation.members}
    triples = [(keys[f.event.sender_id], raw_signature_to_der(b64decode_strict(f.event.signature.signature)),
                f.payload) for f in conversation.events]
    algo = ec.ECDSA(hashes.SHA256())
    def run(chunk):
        for key, sig, payload in chunk:
            key.verify(sig, payload, algo)

    chunks = [triples[i::workers] for i in range(workers)]
    best = float("inf")
    with ThreadPoolExecutor(workers) as pool:
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(run, chunks))
            best = min(best, time.perf_counter() - start)
    return best / len(triples)


def engine_run(bodies: list[bytes], ring, keys, workers: int, repeats: int) -> tuple[float, set[str]]:
    """Best of ``repeats`` runs (the machine's noise only ever makes a run slower), and the verdicts
    the runs gave (one report is held at a time: its events are dropped before the next run)."""
    best, verdicts = float("inf"), set()
    for _ in range(repeats):
        start = time.perf_counter()
        report = verifier.verify_pages(bodies, ring, conversation_keys=keys, workers=workers)
        best = min(best, time.perf_counter() - start)
        verdicts.add(report.verdict)
        del report
    return best, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--workers", type=int, default=None, help="threads for the parallel run (default: CPUs)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is kept")
    args = parser.parse_args()

    t0 = time.perf_counter()
    conversation = build_conversation(args.events, seed="bench", realistic_crypto=False)
    bodies = [msgspec.json.encode(p) for p in conversation.pages(args.page_size)]
    ring = verifier.Keyring.from_json(json.dumps(conversation.keyring()))
    build_s = time.perf_counter() - t0
    n_events = sum(len(json.loads(b)["data"]) + len(json.loads(b).get("meta", {}).get("conversation_key_events", []))
                   for b in bodies)

    workers = args.workers or verifier.engine.default_workers()
    rss_before_engine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    raw_s = raw_baseline(conversation, args.repeat)
    raw_parallel_s = raw_baseline(conversation, args.repeat, workers)
    one_s, verdicts1 = engine_run(bodies, ring, conversation.conversation_keys, 1, args.repeat)
    many_s, verdicts_n = engine_run(bodies, ring, conversation.conversation_keys, workers, args.repeat)
    if verdicts1 | verdicts_n != {"pass"}:
        raise SystemExit(f"the benchmark history must verify: verdicts {sorted(verdicts1 | verdicts_n)}")
    full = verifier.verify_pages(bodies, ring, conversation_keys=conversation.conversation_keys)
    reported = sum(len(c.events) for c in full.conversations)
    if full.verdict != "pass" or reported != n_events:
        raise SystemExit(f"the full report must pass with every event: {full.verdict}, {reported} of {n_events}")
    del full

    raw_rate = 1 / raw_s
    result = {
        "events_in_history": args.events, "events_verified": n_events, "pages": len(bodies),
        "build_seconds": round(build_s, 2), "repeats": args.repeat,
        "raw_openssl_verify_per_s_1core": round(raw_rate),
        "raw_openssl_verify_per_s_parallel": round(1 / raw_parallel_s),
        "engine_events_per_s_1worker": round(n_events / one_s),
        "engine_events_per_s_parallel": round(n_events / many_s), "parallel_workers": workers,
        "ratio_1worker_vs_raw": round(n_events / one_s / raw_rate, 3),
        "ratio_parallel_vs_raw": round(n_events / many_s / raw_rate, 3),
        "ratio_parallel_vs_raw_parallel": round(n_events / many_s * raw_parallel_s, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_growth_during_verification_mb": round(
            (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before_engine) / 1024, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
