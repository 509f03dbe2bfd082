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
from typing import Any

DOMAIN = b"xchat-verify/transcript/v1"
MAX_MARKS = 512


def seq_key(seq: str) -> tuple[int, int, str]:
    """Order of sequence ids: decimal ids as numbers (as the chain does), any other text after them."""
    if seq.isdigit():
        return (0, int(seq), seq)
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
        ordered = sorted(entries, key=lambda e: seq_key(e[0]))
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


def compare_entries(conversation: str, a: Sequence[tuple[str, bytes]], b: Sequence[tuple[str, bytes]]
                    ) -> Divergence | None:
    """Two views (ordered (seq, digest) lists) over the range both saw: [later tail, earlier head].
    Returns where they first differ: a sequence id one has and the other lacks, or different events."""
    if not a or not b:
        return None
    lo = max(seq_key(a[0][0]), seq_key(b[0][0]))
    hi = min(seq_key(a[-1][0]), seq_key(b[-1][0]))
    if lo > hi:
        return None
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
        if sa is not None and (sb is None or seq_key(sa[0]) < seq_key(sb[0])):
            return Divergence(conversation, sa[0], last, f"sequence id {sa[0]} is only in the first view")
        assert sb is not None  # the loop runs while either view has entries left
        return Divergence(conversation, sb[0], last, f"sequence id {sb[0]} is only in the second view")
    return None


def compare_checkpoints(a: dict[str, Any], b: dict[str, Any]) -> tuple[Divergence | None, str]:
    """Two checkpoints of one conversation. Returns (divergence or None, a note). Checkpoints are
    comparable when they start at the same event (same tail); the shorter is then a prefix of the
    longer iff their roots agree at its size."""
    conv = a["conversation"]
    if a["conversation"] != b["conversation"]:
        raise ValueError(f"checkpoints are of different conversations ({a['conversation']}, {b['conversation']})")
    if not a["size"] or not b["size"]:
        return None, "one view is empty: nothing to compare"
    if a["tail"] != b["tail"]:
        raise ValueError(f"the checkpoints start at different events (tail {a['tail']} vs {b['tail']}): "
                         "compare the two ledgers to judge the range both saw")
    ma = {m[0]: (m[1], m[2]) for m in a["marks"]}
    mb = {m[0]: (m[1], m[2]) for m in b["marks"]}
    common = sorted(set(ma) & set(mb))
    last_agree: tuple[int, str] | None = None
    for pos in common:
        if ma[pos] != mb[pos]:
            exact = last_agree is not None and pos - last_agree[0] == 1 or (last_agree is None and pos == 1)
            if ma[pos][0] != mb[pos][0]:
                first = min(ma[pos][0], mb[pos][0], key=seq_key)
                what = f"position {pos} holds sequence id {ma[pos][0]} in one view and {mb[pos][0]} in the other"
            else:
                first = ma[pos][0]
                what = f"the transcripts differ at position {pos} (sequence id {first})"
            if exact:
                return Divergence(conv, first, last_agree[1] if last_agree else None, what), ""
            after = last_agree[1] if last_agree else None
            return Divergence(conv, None, after, f"{what}; they agree up to "
                              f"{('sequence id ' + after) if after else 'the start'}: the first diverging "
                              f"event is after that and at or before position {pos} (compare the ledgers "
                              "for the exact sequence id)"), ""
        last_agree = (pos, ma[pos][0])
    return None, f"agree over the first {last_agree[0] if last_agree else 0} events both saw"
