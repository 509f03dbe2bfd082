"""The ``previous_sequence_id`` chain of one conversation: order, gaps, forks, repeats, cycles.

Statuses depend only on the set of events, never on the order pages were given in (except which of
two byte-identical copies is called the duplicate, which does not change the multiset of statuses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class ChainNode(NamedTuple):
    index: int
    sequence_id: str | None
    previous_sequence_id: str | None
    content: bytes  # the decoded event bytes; byte-identical repeats are duplicates
    from_meta: bool = False  # delivered only in meta.conversation_key_events
    is_key_change: bool = False


@dataclass
class ChainResult:
    status: str
    detail: str
    info_only: bool = False  # a duplicate that is expected (key-change repeats), severity info


def seq_order(seq: str) -> tuple:
    """Numeric order for decimal ids (snowflakes), a stable fallback otherwise."""
    if seq.isdigit() and seq.isascii():
        return (0, len(seq.lstrip("0")), seq.lstrip("0"))
    return (1, len(seq), seq)


def analyse_chain(nodes: list[ChainNode]) -> dict[int, ChainResult]:
    results: dict[int, ChainResult] = {}
    by_seq: dict[str, list[ChainNode]] = {}
    for node in nodes:
        if not node.sequence_id:
            results[node.index] = ChainResult("gap", "event has no sequence id and cannot be placed")
        else:
            by_seq.setdefault(node.sequence_id, []).append(node)

    canonical = _resolve_repeats(by_seq, results)
    children: dict[str, list[ChainNode]] = {}
    for node in canonical.values():
        if node.previous_sequence_id:
            children.setdefault(node.previous_sequence_id, []).append(node)
    in_cycle = _cycle_members(canonical)
    data_nodes = [n for n in canonical.values() if not n.from_meta]
    oldest = min(data_nodes, key=lambda n: seq_order(n.sequence_id)) if data_nodes else None
    oldest_data = seq_order(oldest.sequence_id) if oldest else None
    main_root = _root_of(oldest, canonical, in_cycle) if oldest else None

    for node in canonical.values():
        if node.index in results:  # conflict already decided
            continue
        results[node.index] = _link_status(node, canonical, children, in_cycle, oldest_data, main_root)
    return results


def _root_of(node: ChainNode, canonical: dict[str, ChainNode], in_cycle: set[str]) -> str | None:
    """The first event of the chain ``node`` belongs to (None if the chain loops)."""
    seq = node.sequence_id
    while seq not in in_cycle:
        prev = canonical[seq].previous_sequence_id
        if not prev or prev not in canonical:
            return seq
        seq = prev
    return None


def _resolve_repeats(by_seq: dict[str, list[ChainNode]], results: dict[int, ChainResult]) -> dict[str, ChainNode]:
    """One canonical node per sequence id; copies become duplicate, differing twins conflict."""
    canonical: dict[str, ChainNode] = {}
    for seq, group in by_seq.items():
        group = sorted(group, key=lambda n: (n.from_meta, n.index))  # prefer the data copy
        first = group[0]
        canonical[seq] = first
        if len(group) == 1:
            continue
        if any(n.content != first.content for n in group[1:]):
            # Link through the copy with the smallest content, so the choice is independent of order.
            canonical[seq] = min(group, key=lambda n: n.content)
            others = ", ".join(str(n.index) for n in group)
            for n in group:
                results[n.index] = ChainResult(
                    "conflict", f"sequence id {seq} carried by different events (indices {others})")
            continue
        for n in group[1:]:
            results[n.index] = ChainResult(
                "duplicate", f"byte-identical repeat of event {first.index}",
                info_only=first.is_key_change and n.is_key_change)
    return canonical


def _cycle_members(canonical: dict[str, ChainNode]) -> set[str]:
    """Sequence ids on a loop of previous pointers (each node has one out-edge: a functional graph)."""
    state: dict[str, int] = {}  # 1 = on current walk, 2 = done
    members: set[str] = set()
    for start in canonical:
        walk: list[str] = []
        seq: str | None = start
        while seq is not None and seq in canonical and seq not in state:
            state[seq] = 1
            walk.append(seq)
            seq = canonical[seq].previous_sequence_id or None
        if seq is not None and state.get(seq) == 1:
            members.update(walk[walk.index(seq):])
        for s in walk:
            state[s] = 2
    return members


def _link_status(node: ChainNode, canonical: dict[str, ChainNode], children: dict[str, list[ChainNode]],
                 in_cycle: set[str], oldest_data: tuple | None, main_root: str | None) -> ChainResult:
    seq, prev = node.sequence_id, node.previous_sequence_id
    assert seq is not None
    if seq in in_cycle:
        return ChainResult("cycle", f"previous pointers from {seq} loop back to it")
    if prev and len(children.get(prev, [])) > 1:
        rivals = sorted(n.sequence_id for n in children[prev] if n.sequence_id != seq)
        return ChainResult("fork", f"{seq} and {', '.join(rivals)} all claim predecessor {prev}")
    if not prev or prev not in canonical:
        return _unlinked_status(node, oldest_data, main_root)
    if seq_order(seq) <= seq_order(prev):
        return ChainResult("non_monotonic", f"sequence id {seq} is not greater than its predecessor {prev}")
    return ChainResult("linked", f"follows {prev}")


def _unlinked_status(node: ChainNode, oldest_data: tuple | None, main_root: str | None) -> ChainResult:
    """A chain root: the one the oldest event leads back to is the start; any other is a gap."""
    seq, prev = node.sequence_id, node.previous_sequence_id
    order = seq_order(seq)
    if node.from_meta and (oldest_data is None or order < oldest_data):
        return ChainResult("start", "key change delivered out of band, before the window")
    if seq == main_root:
        if prev and seq_order(prev) >= order:
            return ChainResult("non_monotonic", f"first event {seq} points forward to {prev}")
        if prev:
            return ChainResult("start", f"oldest event of the window (predecessor {prev} not fetched)")
        return ChainResult("start", "first event of the conversation")
    if not prev:
        return ChainResult("gap", "has no previous_sequence_id but is not the oldest event")
    return ChainResult("gap", f"predecessor {prev} is missing from the input")
