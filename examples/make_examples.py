"""Regenerate the bundled example data (deterministic): python examples/make_examples.py"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from verifier.testing.forge import build_conversation, encode_event
from verifier.wire import decode_event_b64

HERE = Path(__file__).parent


def write(path: Path, data: object) -> None:
    """Write JSON under the output directory (``main(out)`` lets tests regenerate elsewhere)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def main(out: Path = HERE) -> None:
    conversation = build_conversation(12, seed="example")
    write(out / "keyring.json", conversation.keyring())
    for number, page in enumerate(conversation.pages(page_size=5), 1):
        write(out / "conversation" / f"page-{number}.json", page)
    # A tampered copy: one message's ciphertext flipped and one event dropped from the middle.
    pages = conversation.pages(page_size=5)
    victim = pages[0]["data"][1]
    _raw, event = decode_event_b64(victim["encoded_event"])
    contents = bytearray(event.body["contents"])
    contents[-1] ^= 1
    event.body["contents"] = bytes(contents)
    victim["encoded_event"] = base64.b64encode(encode_event(event)).decode()
    del pages[1]["data"][2]
    pages[1]["meta"]["result_count"] -= 1
    for number, page in enumerate(pages, 1):
        write(out / "tampered" / f"page-{number}.json", page)


if __name__ == "__main__":
    main()
