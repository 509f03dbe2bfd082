"""SIGKILL campaign against the ledger: kill a recording audit at random points and check that the
ledger is always at the previous audit's state or at the new one, never between.

    python tests/ledger_kill.py --kills 60                 # SQLite
    python tests/ledger_kill.py --kills 60 --postgres      # PostgreSQL (starts a server, tests/pg.py)

Each round a child process loads a verified report (one of three variants of a 3,000-event history:
a prefix, the whole, the whole with rewritten events), opens the ledger, says READY and records the
audit (one transaction); the parent kills it with SIGKILL after a random delay drawn over the
measured length of the recording. Then the ledger must (1) pass ``check()`` and (2) hold exactly the
same rows as a mirror ledger that either did not get this audit (the kill came first) or got it
recorded in process (the kill came after the commit). Rows are compared in full (every table,
sorted), so a half-written audit cannot go unnoticed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

EVENTS = 3000


def variants(folder: Path) -> list[Path]:
    """Three verified reports of one history, pickled with their facts and keyring."""
    import verifier
    from verifier.engine import Verification
    from verifier.testing.forge import build_conversation
    from verifier.testing.server import rewritten_history
    conv = build_conversation(EVENTS, seed="kill", realistic_crypto=False)
    ring_json = json.dumps(conv.keyring())
    rewritten = rewritten_history({conv.conversation_id: conv}, {}, frozenset({"rewrite", "vanish"}))[0]
    histories = [conv.pages(100)[len(conv.pages(100)) // 2:], conv.pages(100),
                 next(iter(rewritten.values())).pages(100)]
    out = []
    for number, pages in enumerate(histories):
        v = Verification(workers=2)
        for page in pages:
            v.add_page(page)
        report = v.finish(verifier.Keyring.from_json(ring_json))
        path = folder / f"variant{number}.pickle"
        path.write_bytes(pickle.dumps((report, v.event_facts(), ring_json)))
        out.append(path)
    return out


def record(ledger: str, variant: Path, when: str) -> None:
    import verifier
    from verifier.ledger import open_ledger, record_audit
    report, facts, ring_json = pickle.loads(variant.read_bytes())
    store = open_ledger(ledger)
    try:
        record_audit(store, report, facts, verifier.Keyring.from_json(ring_json), command="verify",
                     inputs=[variant.name], key_source="keyring", time=when)
    finally:
        store.close()


def fingerprint(ledger: str) -> tuple[int, str]:
    """(number of audits, SHA-256 over every row of every table, sorted)."""
    from verifier.ledger import open_ledger
    store = open_ledger(ledger, create=False)
    try:
        digest = hashlib.sha256()
        for table in ("audits", "conversations", "events", "keys", "chains"):
            rows = sorted(repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in r))
                          for r in store._query(f"SELECT * FROM {table}"))
            digest.update(f"{table}:{len(rows)}\n".encode())
            for row in rows:
                digest.update(row.encode() + b"\n")
        problems = store.check()
        if problems:
            raise AssertionError(f"ledger inconsistent: {problems}")
        return len(store.audits()), digest.hexdigest()
    finally:
        store.close()


def child(ledger: str, variant: str, when: str) -> None:
    from verifier.ledger import open_ledger  # imports and the connection before READY
    open_ledger(ledger).close()
    print("READY", flush=True)
    record(ledger, Path(variant), when)
    print("DONE", flush=True)


def campaign(kills: int, ledger: str, mirror: str, folder: Path, seed: int = 9, log=print) -> dict:
    """Run ``kills`` rounds; returns the figures. Raises AssertionError on any torn state."""
    rng = random.Random(seed)
    files = variants(folder)
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}

    def spawn(variant: Path, when: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "child", ledger, str(variant), when],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)

    # calibration: each variant recorded once uninterrupted (the first audits of both ledgers); kills
    # are then drawn over the longest time from READY to the commit
    length = 0.0
    for number, variant in enumerate(files):
        when = f"2025-12-31T00:00:0{number}.000Z"
        proc = spawn(variant, when)
        assert proc.stdout.readline().strip() == "READY"
        start = time.monotonic()
        assert proc.stdout.readline().strip() == "DONE", proc.stderr.read()
        length = max(length, time.monotonic() - start)
        proc.wait()
        record(mirror, variant, when)
    assert fingerprint(ledger) == fingerprint(mirror)
    committed = rolled_back = 0
    for round_ in range(kills):
        variant = files[(round_ + 1) % len(files)]
        when = f"2026-01-01T00:{(round_ + 1) // 60:02d}:{(round_ + 1) % 60:02d}.000Z"
        before = fingerprint(ledger)
        proc = spawn(variant, when)
        line = proc.stdout.readline().strip()
        assert line == "READY", proc.stderr.read()
        time.sleep(rng.uniform(0, length * 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = fingerprint(ledger)
        if after[0] == before[0] + 1:
            record(mirror, variant, when)
            committed += 1
        else:
            assert after == before, f"round {round_}: audits unchanged but rows differ"
            rolled_back += 1
        assert after == fingerprint(mirror), f"round {round_}: ledger differs from the consistent state"
    figures = {"kills": kills, "committed_before_kill": committed, "rolled_back": rolled_back,
               "recording_seconds": round(length, 3), "events_per_audit": EVENTS}
    log(json.dumps(figures))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--seed", type=int, default=9)
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(*sys.argv[2:5])
        return
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ledger-kill-"))
    server = None
    if args.postgres:
        from pg import PostgresServer
        server = PostgresServer().start()
        ledger, mirror = server.new_database(), server.new_database()
    else:
        ledger, mirror = str(folder / "ledger.db"), str(folder / "mirror.db")
    try:
        campaign(args.kills, ledger, mirror, folder, args.seed)
    finally:
        if server:
            server.stop()


if __name__ == "__main__":
    main()
