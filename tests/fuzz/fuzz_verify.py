"""Coverage-guided fuzz target (atheris) for decoding + verification.

Run while developing (minutes), with a corpus directory that grows over time:

    python tests/fuzz/fuzz_verify.py -max_total_time=300 tests/fuzz/corpus

CI runs a short seeded pass (tests/test_adversarial.py): ``-runs=N -seed=1``.
The first input byte picks a target; anything but the documented results is a crash.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["verifier"]):
    import verifier
    from verifier.payload import PayloadUnavailable, build_payload
    from verifier.wire import MalformedEvent, decode_event_bytes

SHARED = Path(__file__).resolve().parents[1] / "data" / "chat-xdk-sdk_vectors.json"


def _fixture() -> dict:
    try:
        return json.loads(SHARED.read_text())
    except OSError:
        return {}


FIXTURE = _fixture()
RING = verifier.Keyring.from_json(json.dumps([{
    "user_id": "1111", "public_key_version": "1", "signing_public_key": FIXTURE["signing_public_b64"]}])) \
    if FIXTURE else None


def check_report(report: verifier.Report, expected_events: int | None) -> None:
    events = [e for c in report.conversations for e in c.events]
    if expected_events is not None and len(events) != expected_events:
        raise AssertionError(f"{len(events)} events reported, {expected_events} given")
    for e in events:
        assert e.signature.status in {s.value for s in verifier.SigStatus}
        assert e.chain.status in {s.value for s in verifier.ChainStatus}


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 4, data[1:]
    if mode == 0:
        try:
            event = decode_event_bytes(rest)
        except MalformedEvent:
            return
        for version in (2, 5, 6, 7):
            try:
                build_payload(event, version, {"1001": bytes(32)})
            except PayloadUnavailable:
                pass
    elif mode == 1:
        page = {"data": [{"encoded_event": base64.b64encode(rest).decode()}]}
        check_report(verifier.verify_pages([page], RING), 1)
    elif mode == 2:
        check_report(verifier.verify_pages([rest], RING), None)
    else:
        raw = bytearray(base64.b64decode(FIXTURE["event_message_b64"]))
        for i in range(0, len(rest) - 1, 2):
            raw[rest[i] % len(raw)] = rest[i + 1]
        page = {"data": [{"encoded_event": base64.b64encode(bytes(raw)).decode()}]}
        check_report(verifier.verify_pages([page], RING, workers=1), 1)


def seeds() -> list[bytes]:
    """Starting inputs: the fixture's events under every mode."""
    out = []
    for name in ("event_message_b64", "event_key_change_b64", "event_failure_b64", "event_reply_valid_b64"):
        raw = base64.b64decode(FIXTURE[name])
        out += [b"\x00" + raw, b"\x01" + raw,
                b"\x02" + json.dumps({"data": [{"encoded_event": FIXTURE[name]}]}).encode()]
    out.append(b"\x03" + bytes(range(40)))
    return out


if __name__ == "__main__":
    if "--write-seeds" in sys.argv:
        target = Path(sys.argv[sys.argv.index("--write-seeds") + 1])
        target.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(seeds()):
            (target / f"seed-{i:02d}").write_bytes(seed)
        sys.exit(0)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
