"""The ``previous_sequence_id`` chain of one conversation: order, gaps, forks, repeats, cycles, replays.

Statuses depend only on the set of events, never on the order pages were given in (except which of
two byte-identical copies is called the duplicate, which does not change the multiset of statuses).

Rules (docs/formats.md):
* Decimal sequence ids are positions: ``0123`` and ``123`` name the same position.
* One data chain per conversation with at most one ``start``: the root the oldest event leads back to.
  Every other event whose predecessor is absent is a ``gap``.
* Events delivered only in ``meta.conversation_key_events`` are ``out_of_band``: they neither anchor
  nor excuse anything in the data chain (a data event whose predecessor is only in ``meta`` is a gap).
* A signed message id from one sender at two positions is a ``replay`` (the later copies).
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import ChainStatus


@dataclass(frozen=True, slots=True)
class ChainNode:
    index: int
    sequence_id: str | None
    previous_sequence_id: str | None
    content: bytes  # the decoded event bytes; byte-identical repeats are duplicates
    from_meta: bool = False  # delivered only in meta.conversation_key_events
    is_key_change: bool = False
    signed_id: tuple[str, str] | None = None  # (sender, message_id) of a signed kind: replay detection


@dataclass
class ChainResult:
    status: ChainStatus
    detail: str
    info_only: bool = False  # a duplicate that is expected (key-change repeats), severity info


NO_SEQUENCE_ID = "event has no sequence id and cannot be placed"
NO_PREVIOUS = "has no previous_sequence_id but is not the oldest event"
ONLY_IN_META = "key change delivered only in meta.conversation_key_events, outside the data chain"
FIRST_EVENT = "first event of the conversation"


def position(seq: str) -> str:
    """The position a sequence id names: decimal ids without leading zeros, others as they are."""
    if seq.isascii() and seq.isdigit():
        return seq.lstrip("0") or "0"
    return seq


def seq_order(seq: str) -> tuple[int, int, str]:
    """Numeric order for decimal ids (snowflakes), a stable fallback otherwise."""
    pos = position(seq)
    if pos.isascii() and pos.isdigit():
        return (0, len(pos), pos)
    return (1, len(pos), pos)


def analyse_chain(nodes: list[ChainNode]) -> dict[int, ChainResult]:
    results: dict[int, ChainResult] = {}
    by_pos: dict[str, list[ChainNode]] = {}
    for node in nodes:
        if not node.sequence_id:
            results[node.index] = ChainResult(ChainStatus.GAP, NO_SEQUENCE_ID)
        else:
            by_pos.setdefault(position(node.sequence_id), []).append(node)

    canonical = _resolve_repeats(by_pos, results)
    data = {pos: n for pos, n in canonical.items() if not n.from_meta}
    for node in canonical.values():
        if node.from_meta and node.index not in results:
            results[node.index] = ChainResult(ChainStatus.OUT_OF_BAND, ONLY_IN_META)
    children: dict[str, list[ChainNode]] = {}
    for node in data.values():
        if node.previous_sequence_id:
            children.setdefault(position(node.previous_sequence_id), []).append(node)
    in_cycle = _cycle_members(data)
    oldest = min(data, key=seq_order) if data else None
    main_root = _root_of(oldest, data, in_cycle) if oldest is not None else None

    rivals: dict[str, list[str]] = {}
    for pos, node in data.items():
        if node.index in results:  # conflict already decided
            continue
        results[node.index] = _link_status(node, pos, canonical, data, children, in_cycle, main_root, rivals)
    return results


# Events a conflict's or a fork's detail names; the rest are counted. Each event of a group carries
# the detail, so naming them all made the report quadratic in a group's size (round 78: 10,000
# unsigned events at one sequence id, or claiming one predecessor, 0.5 MB, gave a 1.2 GB report;
# 20,000 took a minute and 3 GB of memory).
_SHOWN = 10


def _listed(texts: list[str]) -> str:
    """The first ``_SHOWN`` of ``texts``, comma-separated, and how many more there are."""
    more = len(texts) - _SHOWN
    return ", ".join(texts[:_SHOWN]) + (f" and {more} more" if more > 0 else "")


def _prev_position(node: ChainNode) -> str | None:
    return position(node.previous_sequence_id) if node.previous_sequence_id else None


def _root_of(pos: str, data: dict[str, ChainNode], in_cycle: set[str]) -> str | None:
    """The first event of the chain ``pos`` belongs to (None if the chain loops)."""
    while pos not in in_cycle:
        prev = _prev_position(data[pos])
        if prev is None or prev not in data:
            return pos
        pos = prev
    return None


def _resolve_repeats(by_pos: dict[str, list[ChainNode]], results: dict[int, ChainResult]) -> dict[str, ChainNode]:
    """One canonical node per position; copies become duplicate, differing twins conflict."""
    canonical: dict[str, ChainNode] = {}
    for pos, group in by_pos.items():
        group = sorted(group, key=lambda n: (n.from_meta, n.index))  # prefer the data copy
        first = group[0]
        canonical[pos] = first
        if len(group) == 1:
            continue
        if any(n.content != first.content for n in group[1:]):
            # Link through the data copy with the smallest content, so the choice is independent of order.
            canonical[pos] = min(group, key=lambda n: (n.from_meta, n.content))
            others = _listed([str(n.index) for n in group])  # once per position: one text, not one a node
            for n in group:
                results[n.index] = ChainResult(
                    ChainStatus.CONFLICT, f"sequence id {n.sequence_id} carried by different events (indices {others})")
            continue
        for n in group[1:]:
            results[n.index] = ChainResult(ChainStatus.DUPLICATE, f"byte-identical repeat of event {first.index}",
                                           info_only=first.is_key_change and n.is_key_change)
    return canonical


def _cycle_members(data: dict[str, ChainNode]) -> set[str]:
    """Positions on a loop of previous pointers (each node has one out-edge: a functional graph)."""
    state: dict[str, int] = {}  # 1 = on current walk, 2 = done
    members: set[str] = set()
    for start in data:
        walk: list[str] = []
        pos: str | None = start
        while pos is not None and pos in data and pos not in state:
            state[pos] = 1
            walk.append(pos)
            pos = _prev_position(data[pos])
        if pos is not None and state.get(pos) == 1:
            members.update(walk[walk.index(pos):])
        for p in walk:
            state[p] = 2
    return members


def _link_status(node: ChainNode, pos: str, canonical: dict[str, ChainNode], data: dict[str, ChainNode],
                 children: dict[str, list[ChainNode]], in_cycle: set[str], main_root: str | None,
                 rivals: dict[str, list[str]]) -> ChainResult:
    """``rivals``: the sorted sequence ids of each predecessor's claimants, filled as forks are met."""
    seq, prev = node.sequence_id, node.previous_sequence_id
    assert seq is not None
    prev_pos = _prev_position(node)
    if pos in in_cycle:
        return ChainResult(ChainStatus.CYCLE, f"previous pointers from {seq} loop back to it")
    if prev_pos is not None and len(children.get(prev_pos, [])) > 1:
        claimants = rivals.get(prev_pos)
        if claimants is None:  # sorted once per predecessor, not once per claimant
            claimants = rivals[prev_pos] = sorted(n.sequence_id or "" for n in children[prev_pos])
        others = [claimant for claimant in claimants[:_SHOWN + 1] if claimant != seq][:_SHOWN]
        more = len(claimants) - 1 - len(others)
        listed = ", ".join(others) + (f" and {more} more" if more else "")
        return ChainResult(ChainStatus.FORK, f"{seq} and {listed} all claim predecessor {prev}")
    if prev_pos is None or prev_pos not in data:
        return _unlinked_status(node, pos, main_root, out_of_band=prev_pos in canonical)
    if seq_order(seq) <= seq_order(prev or ""):
        return ChainResult(ChainStatus.NON_MONOTONIC, f"sequence id {seq} is not greater than its predecessor {prev}")
    return ChainResult(ChainStatus.LINKED, f"follows {prev}")


def _unlinked_status(node: ChainNode, pos: str, main_root: str | None, out_of_band: bool) -> ChainResult:
    """A chain root: the one the oldest event leads back to is the start; any other is a gap."""
    seq, prev = node.sequence_id or "", node.previous_sequence_id
    if pos == main_root:
        if prev and seq_order(prev) >= seq_order(seq):
            return ChainResult(ChainStatus.NON_MONOTONIC, f"first event {seq} points forward to {prev}")
        if prev:
            return ChainResult(ChainStatus.START, f"oldest event of the window (predecessor {prev} not fetched)")
        return ChainResult(ChainStatus.START, FIRST_EVENT)
    if not prev:
        return ChainResult(ChainStatus.GAP, NO_PREVIOUS)
    if out_of_band:
        return ChainResult(ChainStatus.GAP, f"predecessor {prev} was delivered only in meta.conversation_key_events, "
                                  "which does not count for the data chain")
    return ChainResult(ChainStatus.GAP, f"predecessor {prev} is missing from the input")


def find_replays(nodes: list[ChainNode]) -> dict[int, str]:
    """Indices of signed events whose (sender, message id) already appeared at an earlier position.

    The message id is signed, the sequence position is not: a server can re-serve a genuine event
    at a new place in the history. Copies at the same position are duplicates or conflicts, not
    replays."""
    first_at: dict[tuple[str, str], list[ChainNode]] = {}
    for node in nodes:
        if node.signed_id is not None and node.sequence_id:
            first_at.setdefault(node.signed_id, []).append(node)
    out: dict[int, str] = {}
    for (sender, message_id), group in first_at.items():
        positions = {position(n.sequence_id or "") for n in group}
        if len(positions) < 2:
            continue
        ordered = sorted(group, key=lambda n: (seq_order(n.sequence_id or ""), n.index))
        original = ordered[0]
        for n in ordered[1:]:
            if position(n.sequence_id or "") != position(original.sequence_id or ""):
                out[n.index] = (f"message {message_id} from {sender} first appeared at sequence "
                                f"{original.sequence_id} (event {original.index})")
    return out
