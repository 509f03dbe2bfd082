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
    out.append(b"\x02" + bent_key_page())
    return out


def bent_key_page() -> bytes:
    """A page whose event embeds an SPKI key with one bit flipped in its algorithm OID: cryptography
    raises ``UnsupportedAlgorithm`` for it, which once crashed the run (exit 3) instead of becoming
    a finding (issue 11)."""
    from cryptography.hazmat.primitives import serialization

    from verifier.testing.forge import Identity, forge_event, item_json
    sender = Identity.from_seed("1111", "1", "bent")
    spki = bytearray(sender.signing.public_key().public_bytes(serialization.Encoding.DER,
                                                               serialization.PublicFormat.SubjectPublicKeyInfo))
    spki[6] ^= 1  # 1.2.840.10045.2.1 (id-ecPublicKey) -> 1.3.840.10045.2.1
    forged = forge_event(sender, "MessageCreateEvent", {"contents": b"\x01" * 40, "conversation_key_version": "1"},
                         conversation_id="1111:2222", sequence_id="5", created_at_msec="5")
    assert forged.event.signature is not None
    bent = base64.b64encode(bytes(spki)).decode()
    forged.event.signature.signing_public_key = bent
    for info in forged.event.signature.message_signing_key_info_list or ():
        info.signing_public_key = bent
    from verifier.testing.forge import encode_event
    raw = encode_event(forged.event)
    item = item_json(forged)
    item["encoded_event"] = base64.b64encode(raw).decode()
    item.pop("message_event_signature", None)
    return json.dumps({"data": [item]}).encode()


if __name__ == "__main__":
    if "--write-seeds" in sys.argv:
        target = Path(sys.argv[sys.argv.index("--write-seeds") + 1])
        target.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(seeds()):
            (target / f"seed-{i:02d}").write_bytes(seed)
        sys.exit(0)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
