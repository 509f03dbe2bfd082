"""Benchmark at scale: the CLI on a history of N events written to page files, in a child process.

    python bench/bench_scale.py --events 1000000 [--workers 1] [--files 200] [--dir /tmp/xchat-scale] [--keep]
    python bench/bench_scale.py --stages --events 100000     # µs per event of each stage, one core
    python bench/bench_scale.py --events 100000 --pure       # the pure-Python decoder (no compiled one)
    python bench/bench_scale.py --events 100000 --workers 2 --one-process   # threads, no worker processes

The history is the one ``bench_verify.py`` builds (a signed 1:1 conversation, one key change repeated
in ``meta`` as the API does, pages of 100, newest first), generated in parallel and straight to JSON
Lines files, so the generator never holds it. Then ``xchat-verify verify FILES --keys ring.json
--format json -o report.json`` runs in a child (``tests/measure.py``): wall time, peak RSS (VmHWM of
the child alone; and of the child with its worker processes, as the sum of RSS and of PSS) and the
rate against raw OpenSSL verify measured in the same run on a sample of the history's own
signatures (1 thread, and N threads). ``--one-process`` keeps ``verify`` in one process (threads).
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import msgspec  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from verifier.testing.forge import Identity, forge_event, item_json, snowflake  # noqa: E402

START_MS = 1_784_841_000_000
SEED = "bench"


def members() -> list[Identity]:
    return [Identity.from_seed("1215441834412953600", "1765382634817", SEED + "a"),
            Identity.from_seed("1843439638876491776", "1736723828667", SEED + "b")]


def _event(i: int, people: list[Identity], conversation: str, ckv: str, ckey: bytes):
    """Event ``i`` of ``forge.build_conversation`` (realistic_crypto=False), built on its own."""
    seq = snowflake(START_MS + i * 1000, i)
    prev = snowflake(START_MS + (i - 1) * 1000, i - 1) if i else None
    sender = people[i % len(people)]
    if i == 0:
        kind = "ConversationKeyChangeEvent"
        body = {"conversation_key_version": ckv, "conversation_participant_keys": [
            {"user_id": m.user_id, "encrypted_conversation_key": hashlib.sha256(m.user_id.encode()).hexdigest(),
             "public_key_version": m.version} for m in people]}
    else:
        nonce = hashlib.sha256(f"{SEED}:{i}".encode()).digest()[:24]
        kind, body = "MessageCreateEvent", {"contents": nonce + hashlib.sha256(nonce).digest() * 2,
                                            "conversation_key_version": ckv, "should_notify": True}
    return forge_event(sender, kind, body, conversation_id=conversation, sequence_id=seq, previous_sequence_id=prev,
                       created_at_msec=str(START_MS + i * 1000), signature_version="7", conversation_keys={ckv: ckey})


def write_file(args: tuple[Path, int, int, int]) -> int:
    """Events [low, high) as pages of 100, newest first, one JSON Lines file."""
    path, low, high, total = args
    people = members()
    conversation = ":".join(sorted((m.user_id for m in people), key=lambda x: (len(x), x)))
    ckey = hashlib.sha256(f"ckey:{SEED}".encode()).digest()
    ckv = str(START_MS - 1000)
    key_change = _event(0, people, conversation, ckv, ckey).b64
    with open(path, "wb") as out:
        for top in range(high, low, -100):
            chunk = [_event(i, people, conversation, ckv, ckey) for i in range(top - 1, max(low, top - 100) - 1, -1)]
            meta: dict = {"result_count": len(chunk), "has_more": top - 100 > 0}
            if top - 100 > 0:
                meta["conversation_key_events"] = [key_change]
                meta["next_token"] = f"t{total - top + 100}"
            out.write(msgspec.json.encode({"data": [item_json(f) for f in chunk], "meta": meta}) + b"\n")
    return high - low


def generate(folder: Path, events: int, files: int, jobs: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-events // files // 100) * 100
    tasks = [(folder / f"pages-{n:05d}.jsonl", max(0, events - (n + 1) * per), events - n * per, events)
             for n in range(files) if events - n * per > 0]
    ring = {"keys": [m.keyring_entry() for m in members()]}
    (folder / "ring.json").write_text(json.dumps(ring))
    with ProcessPoolExecutor(jobs) as pool:
        list(pool.map(write_file, tasks, chunksize=1))
    return [t[0] for t in tasks]


def _triples(sample: int) -> list[tuple]:
    """The history's own first (key, DER signature, payload) triples."""
    from verifier.keys import raw_signature_to_der
    from verifier.wire import b64decode_strict
    people = members()
    conversation = ":".join(sorted((m.user_id for m in people), key=lambda x: (len(x), x)))
    ckey = hashlib.sha256(f"ckey:{SEED}".encode()).digest()
    ckv = str(START_MS - 1000)
    keys = {m.user_id: m.signing.public_key() for m in people}
    forged = [_event(i, people, conversation, ckv, ckey) for i in range(1, sample + 1)]
    return [(keys[f.event.sender_id], raw_signature_to_der(b64decode_strict(f.event.signature.signature)), f.payload)
            for f in forged]


def raw_window_rate(seconds: float) -> float:
    """OpenSSL verifies per second, one thread, averaged over ``seconds`` (not the best of short
    runs): on a VM whose speed drifts, the best of three 0.1 s runs catches its fast moments, while
    a run of the CLI lasts long enough to see the slow ones too. Given beside ``raw_rate``'s ratio."""
    triples = _triples(2000)
    algo = ec.ECDSA(hashes.SHA256())
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for key, sig, payload in triples:
            key.verify(sig, payload, algo)
        done += len(triples)
    return done / (time.perf_counter() - start)


def raw_rate(sample: int, workers: int) -> float:
    """OpenSSL verifies per second on the history's own (key, signature, payload) triples."""
    triples = _triples(sample)
    algo = ec.ECDSA(hashes.SHA256())

    def run(chunk):
        for key, sig, payload in chunk:
            key.verify(sig, payload, algo)
    best = float("inf")
    with ThreadPoolExecutor(workers) as pool:
        for _ in range(3):
            start = time.perf_counter()
            list(pool.map(run, [triples[i::workers] for i in range(workers)]))
            best = min(best, time.perf_counter() - start)
    return len(triples) / best


def run_cli(files: list[Path], ring: Path, out: Path, workers: int, pure: bool = False,
            one_process: bool = False) -> dict:
    figures = out.with_suffix(".measure.json")
    # As installed: pip compiles the package's bytecode; a checkout run with PYTHONDONTWRITEBYTECODE=1
    # would otherwise compile every module again in each run (about 40 ms, counted in the time).
    compileall.compile_dir(str(REPO / "verifier"), quiet=1)
    env = {**os.environ, "MEASURE_OUT": str(figures), "PYTHONPATH": str(REPO),
           "XCHAT_VERIFY_PURE_PYTHON": "1" if pure else "0", "XCHAT_VERIFY_PROCESSES": "0" if one_process else ""}
    argv = [sys.executable, str(REPO / "tests" / "measure.py"), "verify", *map(str, files), "--keys", str(ring),
            "--format", "json", "-o", str(out), "--workers", str(workers)]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tree = TreeMemory(proc.pid)
    with ThreadPoolExecutor(1) as watcher:
        watching = watcher.submit(tree.watch, proc)
        stdout, stderr = proc.communicate()
        watching.result()
    seconds = time.perf_counter() - start
    measured = json.loads(figures.read_text())
    return {"exit_code": proc.returncode, "stderr": stderr.strip()[-300:], "seconds": round(seconds, 1),
            "peak_rss_mb": round(measured["peak_rss_mb"], 1),
            "peak_tree_rss_mb": round(tree.rss / 1024, 1), "peak_tree_pss_mb": round(tree.pss / 1024, 1),
            "report_mb": round(out.stat().st_size / 2 ** 20, 1)}


class TreeMemory:
    """Peak memory of a process and all its descendants (the worker processes of ``verify``),
    sampled from /proc: the sum of their RSS every 50 ms (shared pages counted in each) and of their
    PSS every 0.5 s (shared pages split between the processes sharing them: the fair total)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.rss, self.pss = pid, 0, 0

    def watch(self, proc: subprocess.Popen) -> None:
        tick = 0
        while proc.poll() is None:
            pids = self._tree(self.pid)
            self.rss = max(self.rss, sum(self._field(f"/proc/{p}/status", "VmRSS:") for p in pids))
            if tick % 10 == 0:  # every 0.5 s: reading smaps walks the process's page tables under its lock
                self.pss = max(self.pss, sum(self._field(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids))
            tick += 1
            time.sleep(0.05)

    def _tree(self, pid: int) -> list[int]:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return [pid]
        return [pid, *(p for child in children for p in self._tree(int(child)))]

    @staticmethod
    def _field(path: str, name: str) -> int:
        try:
            with open(path) as handle:
                for line in handle:
                    if line.startswith(name):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0


def stages(events: int) -> dict:
    """µs per event of each stage on one core (each stage timed alone over the same history)."""
    import verifier
    from verifier import fastwire, layouts, wire
    from verifier.envelope import envelope_differences
    from verifier.pages import decode_page
    from verifier.report.stream import iter_report
    from verifier.signature import check, prepare
    from verifier.wire import b64decode_strict, decode_event_bytes, decode_event_generic
    folder = Path(f"/tmp/xchat-stages-{events}")
    files = generate(folder, events, max(1, events // 10_000), 2)
    bodies = [line for f in files for line in f.read_bytes().splitlines()]
    ring = verifier.Keyring.from_json((folder / "ring.json").read_text())
    n = sum(len(json.loads(b)["data"]) + len(json.loads(b).get("meta", {}).get("conversation_key_events", []))
            for b in bodies)
    out: dict[str, float] = {}

    def timed(name, fn):
        start = time.process_time()
        result = fn()
        out[name] = round((time.process_time() - start) / n * 1e6, 2)
        return result
    import gc
    gc.disable()
    pages = timed("json_decode", lambda: [decode_page(b, "p") for b in bodies])
    entries = [e for p in pages for e in p.entries]
    raws = timed("base64_encoded_event", lambda: [b64decode_strict(e.encoded) for e in entries])
    timed("thrift_decode_generic_reference", lambda: [decode_event_generic(r) for r in raws])
    events_ = timed("thrift_decode", lambda: [decode_event_bytes(r) for r in raws])
    shipped = wire.decode_event_fast
    out["compiled_decoder"] = wire.COMPILED_DECODER
    wire.decode_event_fast = fastwire.decode_event_fast  # the pure-Python fast path, for comparison
    timed("thrift_decode_pure_python_straight", lambda: [decode_event_bytes(r) for r in raws])
    layouts.forget()
    wire.decode_event_fast = layouts.decode_event_fast  # what XCHAT_VERIFY_PURE_PYTHON=1 uses
    timed("thrift_decode_pure_python", lambda: [decode_event_bytes(r) for r in raws])
    wire.decode_event_fast = shipped
    timed("sha256", lambda: [hashlib.sha256(r).digest() for r in raws])
    timed("envelope_checks", lambda: [envelope_differences(e.item, ev) for e, ev in zip(entries, events_)
                                      if e.item is not None])
    jobs = timed("key_choice_payload_signature_decode",
                 lambda: [prepare(ev, ring, False, {}, lambda c, m: None) for ev in events_])
    timed("ecdsa_check_incl_der", lambda: [check(j) for j in jobs if not isinstance(j, verifier.model.Check)])
    gc.enable()
    start = time.perf_counter()
    verifier.verify_pages(bodies, ring, workers=2, lazy=True)
    out["engine_total_2workers_wall"] = round((time.perf_counter() - start) / n * 1e6, 2)
    start = time.process_time()
    report = verifier.verify_pages(bodies, ring, workers=1, lazy=True)
    out["engine_total_1core"] = round((time.process_time() - start) / n * 1e6, 2)
    wire.decode_event_fast = layouts.decode_event_fast  # (the compiled twins of other helpers stay in use)
    start = time.process_time()
    verifier.verify_pages(bodies, ring, workers=1, lazy=True)
    out["engine_total_1core_pure_python"] = round((time.process_time() - start) / n * 1e6, 2)
    wire.decode_event_fast = shipped
    start = time.process_time()
    size = sum(len(c) for c in iter_report(report, "json"))
    out["json_report_stream"] = round((time.process_time() - start) / n * 1e6, 2)
    out["raw_openssl_verify_1core"] = round(1e6 / raw_rate(2000, 1), 2)
    out["events"] = n
    out["report_chars"] = size
    assert report.verdict == "pass"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=None, help="page files (default: one per 10,000 events)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated files for another run")
    parser.add_argument("--stages", action="store_true", help="per-stage µs per event instead")
    parser.add_argument("--pure", action="store_true", help="XCHAT_VERIFY_PURE_PYTHON=1: without the compiled decoder")
    parser.add_argument("--one-process", action="store_true",
                        help="XCHAT_VERIFY_PROCESSES=0: threads for the ECDSA checks, no worker processes")
    args = parser.parse_args()
    if args.stages:
        print(json.dumps(stages(args.events), indent=2))
        return
    folder = Path(args.dir or f"/tmp/xchat-scale-{args.events}")
    files = sorted(folder.glob("pages-*.jsonl"))
    started = time.perf_counter()
    if not files:
        files = generate(folder, args.events, args.files or max(1, args.events // 10_000), os.cpu_count() or 1)
    built = time.perf_counter() - started
    # The VM's speed drifts within seconds: raw verify is measured before and after the run, and the
    # ratio is given against their mean, with the range the two measurements allow; and, beside it,
    # against raw verify averaged over 3 s before and 3 s after (raw_window_rate).
    window_before = raw_window_rate(3.0)
    raw_before, rawn = raw_rate(2000, 1), raw_rate(2000, args.workers)
    result = run_cli(files, folder / "ring.json", folder / "report.json", args.workers, args.pure, args.one_process)
    raw_after = raw_rate(2000, 1)
    window_after = raw_window_rate(3.0)
    raw1 = (raw_before + raw_after) / 2
    rate = args.events / result["seconds"]
    print(json.dumps({"events": args.events, "files": len(files), "workers": args.workers,
                      "decoder": "pure-python" if args.pure else "shipped (compiled where built)",
                      "processes": "one (threads)" if args.one_process or args.workers == 1 else "workers",
                      "generate_seconds": round(built, 1), "raw_verify_per_s_1thread_before": round(raw_before),
                      "raw_verify_per_s_1thread_after": round(raw_after),
                      f"raw_verify_per_s_{args.workers}threads": round(rawn), **result,
                      "events_per_s_end_to_end": round(rate), "ratio_vs_raw_1core": round(rate / raw1, 3),
                      "ratio_range": [round(rate / max(raw_before, raw_after), 3),
                                      round(rate / min(raw_before, raw_after), 3)],
                      "raw_verify_per_s_1thread_3s_mean": [round(window_before), round(window_after)],
                      "ratio_vs_raw_3s_mean": round(rate / ((window_before + window_after) / 2), 3),
                      "load_average": os.getloadavg()}, indent=2))
    if not args.keep:
        (folder / "report.json").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
