"""Differential fuzz target (atheris): the compiled decoder against the pure-Python fast path.

    python tests/fuzz/fuzz_decoders.py --write-seeds fuzz-out/decoders    # once: SDK-signed seeds
    python tests/fuzz/fuzz_decoders.py -max_total_time=300 fuzz-out/decoders

Coverage comes from the pure-Python reader (atheris instruments Python only), so mutations are
steered through every branch of ``fastwire``; an input on which ``_cfastwire`` returns anything else
(another event, or an event where the other gives up) is a crash. CI runs a short seeded pass
(tests/test_cfastwire.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["verifier.fastwire"]):
    from verifier import fastwire
from verifier import _cfastwire
from verifier.wire import DEFAULT_LIMITS, Limits

LIMITS = (DEFAULT_LIMITS, Limits(max_container_elements=2, max_total_elements=3, max_depth=3), Limits(max_depth=2),
          Limits(max_depth=0), Limits(max_total_elements=-2 ** 63), Limits(max_total_elements=2 ** 64))


def one_input(data: bytes) -> None:
    for limits in LIMITS:
        expected = repr(fastwire.decode_event_fast(data, limits))  # repr: True is not 1, dict order counts
        got = repr(_cfastwire.decode_event_fast(data, limits))
        if got != expected:
            raise AssertionError(f"decoders differ under {limits}: pure {expected}, compiled {got}")


def write_seeds(target: Path) -> None:
    """Every kind and version the structural fuzzer signs with the SDK or forges."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fuzz.structural import Campaign
    target.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(Campaign(seed=1).seeds):
        (target / f"seed-{i:03d}").write_bytes(seed.raw)


if __name__ == "__main__":
    if "--write-seeds" in sys.argv:
        write_seeds(Path(sys.argv[sys.argv.index("--write-seeds") + 1]))
    else:
        atheris.Setup(sys.argv, one_input)
        atheris.Fuzz()
