"""Build archives of saved histories for tests and benchmarks: many signed conversations written as
evidence directories (as ``audit --save`` writes them) or as loose page files.

    python -m verifier.testing.archive OUT --conversations 1000 --events 100 [--pages]

Deterministic: the same arguments write the same bytes (keys from seeds, RFC 6979 signatures).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import msgspec

from ..evidence import EvidenceStore
from ..fetch import FetchedBody
from ..ids import canonical_conversation, conversation_path_id
from .forge import Conversation, Identity, build_conversation

BASE_URL = "https://api.x.com"
_FETCHED_AT = "2026-12-01T00:00:00.000Z"


def _Fetched(url: str, body: bytes) -> FetchedBody:
    return FetchedBody(url, 200, body, _FETCHED_AT)


def users(count: int, seed: str = "archive") -> list[Identity]:
    return [Identity.from_seed(str(1_000_000_000_000_000_000 + 7919 * n), str(1_765_000_000_000 + n), f"{seed}{n}")
            for n in range(count)]


def conversations(count: int, events: int, seed: str = "archive") -> list[Conversation]:
    """``count`` 1:1 conversations of ``events`` events each, between distinct pairs of users."""
    people = users(max(2, int((2 * count) ** 0.5) + 2), seed)
    pairs = [(a, b) for i, a in enumerate(people) for b in people[i + 1:]][:count]
    return [build_conversation(events, members=[a, b], seed=f"{seed}{n}", realistic_crypto=False,
                               start_ms=1_784_841_000_000 + n * 10_000_000)
            for n, (a, b) in enumerate(pairs)]


def keyring(convs: list[Conversation]) -> dict:
    entries = {m.user_id: m.keyring_entry() for c in convs for m in c.members}
    return {"keys": [entries[uid] for uid in sorted(entries)]}


def write_evidence(root: Path, convs: list[Conversation], page_size: int = 100) -> Path:
    """One evidence directory holding every conversation, with the members' saved keys."""
    store = EvidenceStore(root, BASE_URL)
    for conv in convs:
        cid = canonical_conversation(conv.conversation_id)
        path_id = conversation_path_id(cid)
        saved = store.start_conversation(cid, path_id)
        store.set_expected(saved, cid)
        token = None
        for page in conv.pages(page_size):
            url = f"{BASE_URL}/2/chat/conversations/{path_id}/events?max_results={page_size}"
            if token:
                url += f"&pagination_token={token}"
            store.save_page(saved, _Fetched(url, msgspec.json.encode(page)), page["meta"].get("next_token"))
            token = page["meta"].get("next_token")
        store.finish_conversation(saved, None, [])
    members = {m.user_id: m for c in convs for m in c.members}
    for uid in sorted(members):
        body = json.dumps({"data": [members[uid].keyring_row()]}).encode()
        store.save_keys(uid, _Fetched(f"{BASE_URL}/2/users/{uid}/public_keys", body))
    store.save_keyring(json.dumps(keyring(convs)))
    store.close()
    return root


def write_pages(root: Path, convs: list[Conversation], page_size: int = 100) -> list[Path]:
    """Loose page files, one directory per conversation, ``page-NNNNN.json`` newest first."""
    paths = []
    for conv in convs:
        folder = root / conversation_path_id(canonical_conversation(conv.conversation_id))
        folder.mkdir(parents=True, exist_ok=True)
        for number, page in enumerate(conv.pages(page_size), 1):
            path = folder / f"page-{number:05d}.json"
            path.write_bytes(msgspec.json.encode(page))
            paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100, help="events per conversation")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--pages", action="store_true", help="loose page files instead of an evidence directory")
    args = parser.parse_args()
    convs = conversations(args.conversations, args.events)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.pages:
        write_pages(args.out / "pages", convs, args.page_size)
    else:
        write_evidence(args.out / "evidence", convs, args.page_size)
    (args.out / "keyring.json").write_text(json.dumps(keyring(convs)))


if __name__ == "__main__":
    main()
