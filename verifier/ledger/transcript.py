"""Transcript hashes, checkpoints and split-view comparison.

A conversation's transcript is its ordered list of (sequence id, event digest), oldest first, as a
ledger last saw it (events a verified signed delete removed are left out). Its hash is a **hash
chain**:

    r0 = SHA-256("xchat-verify/transcript/v1" || 0x00 || conversation)
    ri = SHA-256(r(i-1) || u32(len(seq_i)) || seq_i || digest_i)

A hash chain, not a Merkle tree, because of how histories grow and are compared here: a history
only grows at its head, every auditor holds the whole list in its own ledger, and a comparison wants
the *first* position where two views part. The running value ``ri`` at any position is a checkpoint
of the prefix, so two views agree up to position i iff their ``ri`` agree; a checkpoint carries ``ri``
at evenly spaced positions (``marks``) so that two auditors who exchange only checkpoints can find
the first disagreeing stretch (the exact sequence id when the stride is 1, i.e. up to 512 events,
or from two ledgers). A Merkle tree's strength, logarithmic inclusion and consistency proofs for a
party that holds only a root, is not needed: nobody here trusts a third party's log.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec

from ..ids import is_user_id
from ..settings import DEFAULT_TOLERANCE

DOMAIN = b"xchat-verify/transcript/v1"
MAX_MARKS = 512


def seq_key(seq: str) -> tuple[int, int, str]:
    """Order of sequence ids: decimal ids as numbers (as the chain does), any other text after them.
    Compared as (length, digits) without leading zeros, not as ``int``: an id of 5,000 digits, or of
    digits ``int`` reads but the chain does not (``"²"`` is ``isdigit``), came from the server."""
    if seq.isascii() and seq.isdigit():
        digits = seq.lstrip("0") or "0"
        return (0, len(digits), f"{digits}\x00{seq}")  # equal numbers: ordered by their text
    return (1, 0, seq)


def root0(conversation: str) -> bytes:
    return hashlib.sha256(DOMAIN + b"\x00" + conversation.encode()).digest()


def step(root: bytes, seq: str, digest: bytes) -> bytes:
    raw = seq.encode()
    return hashlib.sha256(root + struct.pack(">I", len(raw)) + raw + digest).digest()


def stride_for(size: int) -> int:
    """Marks every ``stride`` positions: a power of two, so any two checkpoints share the coarser grid."""
    stride = 1
    while size > stride * MAX_MARKS:
        stride *= 2
    return stride


@dataclass
class Transcript:
    conversation: str
    entries: list[tuple[str, bytes]]  # ordered (seq, digest)
    roots: list[bytes] = field(default_factory=list)  # roots[i] after entry i

    @classmethod
    def build(cls, conversation: str, entries: Iterable[tuple[str, bytes]]) -> "Transcript":
        ordered = sorted(entries, key=lambda e: (seq_key(e[0]), e[1]))  # ties by digest: never by hash seed
        # (review 62: two events at one sequence id came out of a set in either order, two roots)
        t = cls(conversation, ordered)
        root = root0(conversation)
        for seq, digest in ordered:
            root = step(root, seq, digest)
            t.roots.append(root)
        return t

    @property
    def size(self) -> int:
        return len(self.entries)

    @property
    def root(self) -> str:
        return (self.roots[-1] if self.roots else root0(self.conversation)).hex()

    @property
    def head(self) -> str | None:
        return self.entries[-1][0] if self.entries else None

    @property
    def tail(self) -> str | None:
        return self.entries[0][0] if self.entries else None

    def checkpoint(self, time: str) -> dict[str, Any]:
        """The unsigned checkpoint: conversation, tail, head, size, root, time and the marks."""
        stride = stride_for(self.size)
        marks = [[i + 1, self.entries[i][0], self.roots[i].hex()]
                 for i in range(stride - 1, self.size, stride)]
        if self.size and (not marks or marks[-1][0] != self.size):
            marks.append([self.size, self.entries[-1][0], self.roots[-1].hex()])
        return {"schema": "xchat-verify/checkpoint/v1", "conversation": self.conversation, "tail": self.tail,
                "head": self.head, "size": self.size, "root": self.root, "time": time, "stride": stride,
                "marks": marks}


@dataclass
class Divergence:
    conversation: str
    first_seq: str | None  # the first sequence id where the views differ (None: not located exactly)
    after_seq: str | None  # the last sequence id where they still agree
    detail: str


def common_range(a: Sequence[tuple[str, bytes]], b: Sequence[tuple[str, bytes]], *, from_start: bool = False
                 ) -> tuple[str, str] | None:
    """The range both views saw, (later tail, earlier head) as sequence ids, or None when they saw
    nothing in common. ``from_start``: both views were served the history in full (from its first
    event, see ``same_start``), so both must start at the same event: the range then runs from the
    *earlier* tail, and an oldest event only one view has is a divergence."""
    if not a or not b:
        return None
    lo = (min if from_start else max)(a[0][0], b[0][0], key=seq_key)
    hi = min(a[-1][0], b[-1][0], key=seq_key)
    return (lo, hi) if seq_key(lo) <= seq_key(hi) else None


def compare_entries(conversation: str, a: Sequence[tuple[str, bytes]], b: Sequence[tuple[str, bytes]],
                    *, from_start: bool = False) -> Divergence | None:
    """Two views (ordered (seq, digest) lists) over the range both saw: [later tail, earlier head]
    (``from_start``: [earlier tail, earlier head], see ``common_range``). Returns where they first
    differ: a sequence id one has and the other lacks, or different events."""
    span = common_range(a, b, from_start=from_start)
    if span is None:
        return None
    lo, hi = seq_key(span[0]), seq_key(span[1])
    ina = [(s, d) for s, d in a if lo <= seq_key(s) <= hi]
    inb = [(s, d) for s, d in b if lo <= seq_key(s) <= hi]
    i = j = 0
    last = None
    while i < len(ina) or j < len(inb):
        sa = ina[i] if i < len(ina) else None
        sb = inb[j] if j < len(inb) else None
        if sa is not None and sb is not None and sa[0] == sb[0]:
            if sa[1] != sb[1]:
                return Divergence(conversation, sa[0], last,
                                  f"sequence id {sa[0]} is a different event in the two views "
                                  f"({sa[1].hex()[:16]}… vs {sb[1].hex()[:16]}…)")
            last = sa[0]
            i, j = i + 1, j + 1
            continue
        oldest = " (the history was served in full to both: they must start at the same event)" \
            if from_start and last is None else ""
        if sa is not None and (sb is None or seq_key(sa[0]) < seq_key(sb[0])):
            return Divergence(conversation, sa[0], last, f"sequence id {sa[0]} is only in the first view{oldest}")
        assert sb is not None  # the loop runs while either view has entries left
        return Divergence(conversation, sb[0], last, f"sequence id {sb[0]} is only in the second view{oldest}")
    return None


def is_direct(conversation: str) -> bool:
    """A 1:1 conversation (canonical ``A:B``, two user ids). Group conversations (``g…``) are not:
    a member who joined later may legitimately be served less of the history (the tail rule is not
    applied to them)."""
    a, found, b = conversation.partition(":")
    return bool(found) and is_user_id(a) and is_user_id(b)


@dataclass
class StaleView:
    """An audit that fetched a conversation to its end more than ``tolerance`` after another
    ledger's audit saw a newer head, and did not get that head: the later view is an older one."""

    conversation: str
    head: str  # the newest event the earlier audit saw
    seen_audit: int
    seen_time: str
    audit: int  # the later audit, whose head is older
    time: str
    stale_head: str | None


def _instant(time: str) -> float | None:
    from datetime import timezone

    from ..clock import from_iso
    try:
        moment = from_iso(time.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def stale_view(conversation: str, saw: Sequence[tuple[int, str, str | None]],
               fetched: Sequence[tuple[int, str, str | None]], tolerance: float = DEFAULT_TOLERANCE
               ) -> StaleView | None:
    """``saw``: (audit, time, head) of one ledger's audits of ``conversation``; ``fetched``: (audit,
    time, head) of the other ledger's audits that fetched it **to its end**. A history only grows at
    its head, so an audit of ``fetched`` recorded more than ``tolerance`` seconds after an audit of
    ``saw`` must have a head at least as new as that audit's. Returns the first (by time) that does
    not, against the newest head seen by then; None when every one does. Times that cannot be read
    are left out."""
    seen = sorted((moment, a, t, h) for a, t, h in saw if h is not None and (moment := _instant(t)) is not None)
    later = sorted((moment, a, t, h) for a, t, h in fetched if (moment := _instant(t)) is not None)
    best: tuple[int, str, str] | None = None  # (audit, time, head) of the newest head seen so far
    i = 0
    for moment, audit, time, head in later:
        while i < len(seen) and moment - seen[i][0] > tolerance:
            _m, a, t, h = seen[i]
            if best is None or seq_key(h) > seq_key(best[2]):
                best = (a, t, h)
            i += 1
        if best is not None and (head is None or seq_key(head) < seq_key(best[2])):
            return StaleView(conversation, best[2], best[0], best[1], audit, time, head)
    return None


CHECKPOINT_SCHEMA = "xchat-verify/checkpoint/v1"
_HEX64 = msgspec.Meta(pattern="^[0-9a-f]{64}$")


class Mark(msgspec.Struct, array_like=True, frozen=True):
    """``[position, sequence id, running root]``: the hash chain after the first ``position`` entries."""

    position: Annotated[int, msgspec.Meta(ge=1, le=2 ** 53)]
    sequence_id: str
    root: Annotated[str, _HEX64]


class Checkpoint(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A checkpoint as read from a file (docs/formats.md): every field typed, nothing else allowed."""

    schema: str
    conversation: str
    tail: str | None
    head: str | None
    size: Annotated[int, msgspec.Meta(ge=0, le=2 ** 53)]
    root: Annotated[str, _HEX64]
    time: str
    stride: Annotated[int, msgspec.Meta(ge=1, le=2 ** 53)]
    marks: list[Mark]
    public_key: str | None = None
    signature: str | None = None


def parse_checkpoint(data: bytes | dict[str, Any]) -> Checkpoint:
    """A checkpoint from JSON bytes (or the dict ``Transcript.checkpoint`` gives), typed and checked for
    consistency: its marks must be exactly the grid of its stride for its size, the last one its own
    head and root, an empty checkpoint the empty root. Raises ``ValueError`` naming the field."""
    try:
        cp = msgspec.json.decode(data, type=Checkpoint) if isinstance(data, (bytes, bytearray)) else \
            msgspec.convert(data, Checkpoint)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    _check(cp)
    return cp


def _check(cp: Checkpoint) -> None:
    if cp.schema != CHECKPOINT_SCHEMA:
        raise ValueError(f"$.schema is not {CHECKPOINT_SCHEMA}")
    if cp.stride != stride_for(cp.size):
        raise ValueError(f"$.stride {cp.stride} is not the stride for {cp.size} events ({stride_for(cp.size)})")
    expected = list(range(cp.stride, cp.size + 1, cp.stride))
    if cp.size and (not expected or expected[-1] != cp.size):
        expected.append(cp.size)
    if [m.position for m in cp.marks] != expected:
        raise ValueError(f"$.marks: positions are not every {cp.stride} up to {cp.size} and the head")
    if (cp.public_key is None) != (cp.signature is None):
        raise ValueError("$.public_key and $.signature come together")
    if cp.size == 0:
        if cp.tail is not None or cp.head is not None or cp.root != root0(cp.conversation).hex():
            raise ValueError("an empty checkpoint ($.size 0) has no tail or head and the empty root")
        return
    if cp.tail is None or cp.head is None:
        raise ValueError("$.tail and $.head are required when $.size is not 0")
    last = cp.marks[-1]
    if last.sequence_id != cp.head or last.root != cp.root:
        raise ValueError("$.marks: the last mark is not the head and root of the checkpoint")
    if cp.stride == 1 and cp.marks[0].sequence_id != cp.tail:
        raise ValueError("$.marks: the first mark is not the tail of the checkpoint")
    keys = [seq_key(m.sequence_id) for m in cp.marks]
    if any(a >= b for a, b in zip(keys, keys[1:])) or (cp.stride > 1 and seq_key(cp.tail) >= keys[0]):
        raise ValueError("$.marks: sequence ids are not in increasing order")


@dataclass
class Comparison:
    """What ``compare_checkpoints`` found. ``compared``: the positions 1..compared that were checked
    (the first ``compared`` events both saw, ``through`` the sequence id at that position); ``common``:
    how many events both saw. The views agree only when nothing diverged and compared == common."""

    divergence: Divergence | None
    compared: int
    common: int
    through: str | None
    note: str

    @property
    def complete(self) -> bool:
        return self.divergence is not None or (self.common > 0 and self.compared == self.common)

    @property
    def agree(self) -> bool:
        return self.divergence is None and self.complete


def compare_checkpoints(a: Checkpoint | dict[str, Any], b: Checkpoint | dict[str, Any]) -> Comparison:
    """Two checkpoints of one conversation, compared position by position over the events both saw.
    Comparable when they start at the same event (same tail): the shorter view is then a prefix of the
    longer iff their running roots agree at every position both have a mark for, **including the
    shorter view's head**. When the longer checkpoint has no mark at that position (their grids
    differ), the comparison stops at the last common mark and says so (``complete`` is false). Raises
    ``ValueError`` for a malformed checkpoint or checkpoints that are not comparable."""
    a = a if isinstance(a, Checkpoint) else parse_checkpoint(a)
    b = b if isinstance(b, Checkpoint) else parse_checkpoint(b)
    conv = a.conversation
    if a.conversation != b.conversation:
        raise ValueError(f"checkpoints are of different conversations ({a.conversation}, {b.conversation})")
    if not a.size or not b.size:
        return Comparison(None, 0, 0, None, "one view is empty: the two views saw no event in common")
    if a.tail != b.tail:
        raise ValueError(f"the checkpoints start at different events (tail {a.tail} vs {b.tail}): "
                         "compare the two ledgers to judge the range both saw")
    common_size = min(a.size, b.size)
    ma = {m.position: m for m in a.marks}
    mb = {m.position: m for m in b.marks}
    common = sorted(p for p in set(ma) & set(mb) if p <= common_size)
    last_agree: tuple[int, str] | None = None
    for pos in common:
        x, y = ma[pos], mb[pos]
        if (x.sequence_id, x.root) != (y.sequence_id, y.root):
            exact = (last_agree is not None and pos - last_agree[0] == 1) or (last_agree is None and pos == 1)
            if x.sequence_id != y.sequence_id:
                first = min(x.sequence_id, y.sequence_id, key=seq_key)
                what = f"position {pos} holds sequence id {x.sequence_id} in one view and {y.sequence_id} in the other"
            else:
                first = x.sequence_id
                what = f"the transcripts differ at position {pos} (sequence id {first})"
            after = last_agree[1] if last_agree else None
            compared = last_agree[0] if last_agree else 0
            if exact:
                return Comparison(Divergence(conv, first, after, what), compared, common_size, after, "")
            return Comparison(Divergence(conv, None, after, f"{what}; they agree up to "
                                         f"{('sequence id ' + after) if after else 'the start'}: the first diverging "
                                         f"event is after that and at or before position {pos} (compare the ledgers "
                                         "for the exact sequence id)"), compared, common_size, after, "")
        last_agree = (pos, x.sequence_id)
    compared, through = last_agree if last_agree else (0, None)
    if compared == common_size:
        return Comparison(None, compared, common_size, through,
                          f"agree over the {compared} events both saw (sequence ids {a.tail} to {through})")
    shorter = a if a.size <= b.size else b
    upto = f"up to sequence id {through}" if through else "none"
    return Comparison(None, compared, common_size, through,
                      f"not compared in full: agree over the first {compared} of the {common_size} events both saw "
                      f"({upto}); positions {compared + 1} to {common_size} (up to sequence id {shorter.head}) "
                      "cannot be compared from these checkpoints (the longer one has no mark at the shorter "
                      "one's head): compare the ledgers")
