"""Benchmark: ``archive verify`` on local Dask workers against single-process ``verify``, same archive, one run.

    python bench/bench_archive.py [--conversations 1000] [--events 100] [--repeat 2] [--dir /tmp/xchat-archive]

Builds (once, kept in --dir) an evidence directory of N signed 1:1 conversations as ``audit --save``
writes it, then measures from the files on disk to the finished Report:

  * verify:     ``verify_saved_audit`` in this process, as ``xchat-verify verify DIR`` runs it (its
                default thread pool: one thread per core for the ECDSA checks);
  * verify/1:   the same with one thread (``verify --workers 1``): one core;
  * archive/1:  ``verify_archive`` on a running LocalCluster of 1 worker process;
  * archive/2:  the same with 2 worker processes.

Clusters are started before timing (a pipeline keeps one running); ``--cli`` also times the whole
commands, cluster start and JSON rendering included. Every archive report is checked byte for byte
against verify's. Ratios are taken in the same run; the 1-minute load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402

from verifier.archive import verify_archive  # noqa: E402
from verifier.archive.cluster import open_client  # noqa: E402
from verifier.audit import verify_saved_audit  # noqa: E402
from verifier.testing.archive import conversations, keyring, write_evidence  # noqa: E402


def build(root: Path, count: int, events: int, page_size: int) -> Path:
    evidence = root / f"evidence-{count}x{events}"
    if not (evidence / "manifest.json").is_file():
        started = time.perf_counter()
        convs = conversations(count, events, seed="bench")
        write_evidence(evidence, convs, page_size)
        (root / f"keyring-{count}x{events}.json").write_text(json.dumps(keyring(convs)))
        print(f"built {count} conversations x {events} events in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return evidence


CPU: dict[str, float] = {}  # CPU seconds of the last timed run: this process, and the workers


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def best(label: str, repeat: int, run, workers_cpu=lambda: 0.0) -> tuple[float, bytes]:
    """Best of ``repeat`` runs (noise only ever makes a run slower) and the last report's JSON."""
    times, out = [], b""
    for _ in range(repeat):
        mine, theirs, started = own_cpu(), workers_cpu(), time.perf_counter()
        report = run()
        times.append(time.perf_counter() - started)
        CPU[label] = own_cpu() - mine
        CPU[label + " workers"] = workers_cpu() - theirs
        out = msgspec.json.encode(report)
        del report
    print(f"{label}: {', '.join(f'{t:.2f}s' for t in times)}", file=sys.stderr)
    return min(times), out


def cli_seconds(*args: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "verifier", *args, "--format", "json", "-o", os.devnull],
                          capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{args[0]} failed: {proc.stderr}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100, help="events per conversation")
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/xchat-archive-bench"))
    parser.add_argument("--cli", action="store_true", help="also time the whole commands (cluster start, rendering)")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    evidence = build(args.dir, args.conversations, args.events, args.page_size)
    load_before = os.getloadavg()[0]
    single, reference = best("verify (1 process)", args.repeat,
                             lambda: verify_saved_audit(str(evidence), trust_evidence_keys=True))
    one_thread, _ = best("verify --workers 1", args.repeat, lambda: verify_saved_audit(str(evidence), workers=1,
                                                                                  trust_evidence_keys=True))
    results: dict[str, float] = {"verify_s": single, "verify_1_thread_s": one_thread}
    for workers in (1, 2):
        with open_client(None, workers) as client:  # the local cluster archive verify --workers N starts
            seconds, out = best(f"archive/{workers}", args.repeat, lambda: verify_archive([str(evidence)], None, client,
                                                                                      trust_evidence_keys=True),
                                lambda: sum(client.run(lambda: sum(os.times()[:2])).values()))
            if out != reference:
                raise SystemExit("the archive report differs from verify's")
            results[f"archive_{workers}_workers_s"] = seconds
    events = json.loads(reference)["proof"]["events"]
    summary = {
        "conversations": args.conversations, "events": events, "cores": os.cpu_count(),
        **{k: round(v, 2) for k, v in results.items()},
        "verify_events_per_s": round(events / single),
        "archive_2_workers_events_per_s": round(events / results["archive_2_workers_s"]),
        "speedup_2_workers": round(single / results["archive_2_workers_s"], 2),
        "overhead_1_worker": round(results["archive_1_workers_s"] / single - 1, 3),
        "speedup_2_workers_vs_1_thread": round(one_thread / results["archive_2_workers_s"], 2),
        "overhead_1_worker_vs_1_thread": round(results["archive_1_workers_s"] / one_thread - 1, 3),
        "identical_reports": True,
        "cpu_s": {name: round(value, 2) for name, value in CPU.items() if value},
        "events_per_cpu_s_in_a_worker": round(events / CPU["archive/1 workers"]),
        "coordinator_cpu_s_per_100k_events": round(CPU["archive/2"] * 100_000 / events, 2),
    }
    if args.cli:
        summary["cli_verify_s"] = round(cli_seconds("verify", str(evidence), "--trust-evidence-keys"), 2)
        summary["cli_archive_2_workers_s"] = round(cli_seconds("archive", "verify", str(evidence), "--workers", "2",
                                                                   "--trust-evidence-keys"), 2)
        summary["cli_speedup_2_workers"] = round(summary["cli_verify_s"] / summary["cli_archive_2_workers_s"], 2)
    summary["load_1min_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
