"""What signed events claim about other events, checked against the history. No key is needed, so
these checks run in every verification (``engine.default_reviewers``):

* a MessageDeleteEvent's signed sequence ids, and a signed read marker's ``seen_until_sequence_id``,
  must name events of the history that precede it (``target_missing``, ``target_after_event``);
* group membership: the proven group changes (GroupCreate, GroupMemberAddChange,
  GroupMemberRemoveChange; leaving a group is removing oneself) are replayed in chain order, and a
  message from a user who is not a member at that point is ``non_member_sender``.

The participant audit (``verifier.participant``) uses the same timeline and target rules for what
only decrypted contents say (reactions, edits, replies, read markers inside messages).

Chain order is sequence-id order, decimal ids compared as numbers (as the chain check compares
them); events without a decimal sequence id cannot be placed and take part only by exact id. The
fetched range of a conversation runs from its oldest to its newest placed event of the data (a key
change given only in ``meta`` counts when the data's previous pointers lead to it): a missing target
inside it is an error (the history should hold it), outside it a warning (it may simply be older
than what was fetched).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .chain import position as chain_position
from .chain import seq_order
from .ids import short_decimal
from .keys import Keyring
from .payload import BUILDERS, PayloadUnavailable, must_be_signed, parse_signature_version, render_slot

_MAX_DIGITS = 30  # a decimal id longer than this is not a snowflake: compared as text only
_SHOWN = 5  # ids named in one finding; the rest are counted
_ID_CHARS = 40

DELETE = "MessageDeleteEvent"
CONVERSATION_DELETE = "ConversationDeleteEvent"
READ_MARKERS = {"MarkConversationReadEvent": "marks read up to", "MarkConversationUnreadEvent": "marks unread from"}
MESSAGE = "MessageCreateEvent"
GROUP_CREATE = "GroupChangeEvent.GroupCreate"
GROUP_ADD = "GroupChangeEvent.GroupMemberAddChange"
GROUP_REMOVE = "GroupChangeEvent.GroupMemberRemoveChange"
KEY_CHANGE = "ConversationKeyChangeEvent"
MEMBERSHIP = (GROUP_CREATE, GROUP_ADD, GROUP_REMOVE)
GROUP_JOIN_REQUEST = "GroupChangeEvent.GroupJoinRequest"


def members_only(kind: str | None) -> bool:
    """Events only a member may send into a group: messages (reactions, edits and replies are
    messages too), key changes (a removed member must not re-key the group), deletes, metadata and
    group settings changes, and membership changes (a non-member must not add itself, nor remove
    anyone). Read markers are not judged; nor is a join request its requester signs
    (``asks_to_join``): who asks to join is not a member yet."""
    if kind is None:
        return False
    return kind in (MESSAGE, KEY_CHANGE, DELETE, CONVERSATION_DELETE) or kind.startswith(("ConversationMetadataChangeEvent",
                                                                      "GroupChangeEvent."))


def asks_to_join(record: Any) -> bool:
    """A proven GroupJoinRequest whose signed ``requesting_user_id`` is its sender: the one group
    change a non-member sends (code review: every join request failed its group as
    ``non_member_sender``)."""
    if kind_of(record) != GROUP_JOIN_REQUEST or not record.sender_id or not proven(record):
        return False
    return bool((record.event.body or {}).get("requesting_user_id") == record.sender_id)


def position(sequence_id: str | None) -> int | None:
    """A decimal sequence id as a number (``0123`` is 123, however many zeros lead: the chain reads
    them so), else None."""
    if sequence_id and sequence_id.isascii() and sequence_id.isdigit():
        digits = sequence_id.lstrip("0") or "0"
        if len(digits) <= _MAX_DIGITS:
            return int(digits)
    return None


def id_key(sequence_id: str) -> Any:
    """The position a sequence id names, as the review reads it (and ``Timeline.by_id`` holds it):
    decimal ids as numbers, leading zeros stripped, others (past 30 digits too) as the chain reads them."""
    number = position(sequence_id)
    return number if number is not None else chain_position(sequence_id)


def shown(value: object) -> str:
    """An id for a finding message: quoted and cut short (renderers escape it)."""
    text = str(value)
    return repr(text if len(text) <= _ID_CHARS else text[:_ID_CHARS] + "…")


def kind_of(record: Any) -> str | None:
    return record.event.kind if record.event is not None else None


class Timeline:
    """One conversation's events in chain order, with lookup by sequence id.

    Decimal ids whose previous pointers all point at smaller numbers are ordered as numbers.
    Otherwise (an id that is not decimal: text, a leading space, other scripts' digits, 31 digits
    and more; or a pointer to a number not smaller: ``non_monotonic``, only a warning) the order
    is the one the chain links: from each event without a present predecessor along the previous
    pointers (as ``chain.analyse_chain`` links them), and ``linked`` says so: no id can move a
    removal, a message or a delete to another place than the chain report shows. Events without a
    sequence id come last."""

    def __init__(self, conversation: str, records: Sequence[Any]) -> None:
        self.conversation = conversation
        placed = [(position(r.sequence_id), r) for r in records]
        self.linked, self.ordered = _chain_order(records, placed)
        self.by_id: dict[Any, list[Any]] = {}
        for p, r in placed:
            if r.sequence_id:  # past 30 digits, the position as the chain reads it (zeros stripped)
                self.by_id.setdefault(p if p is not None else chain_position(r.sequence_id), []).append(r)
        # the fetched range is the data's and what it links down to: a key change only in meta may be
        # far older (review 44: the first key change, repeated in a newest page's meta, made the whole
        # history look fetched), unless the data's previous pointers lead to it (review 46)
        self.fetched = _fetched(records)
        numbers = [p for p, r in placed if p is not None and r.index in self.fetched]
        self.low = min(numbers) if numbers else None
        self.high = max(numbers) if numbers else None
        self._judged: dict[tuple[Callable[[Any], str | None], int], str | None] = {}
        # per position: what a target there finds, and what it is judged to be (round 77: a position
        # spelled with ever more leading zeros, or one delete served many times, walked every event
        # held there once per target and per copy: 3 MB took 35 s)
        self._candidates: dict[Any, tuple[list[Any], bool]] = {}
        self._first_rank: dict[Any, int] = {}
        self.verdicts: dict[tuple[Any, Any, Any], tuple[str, str] | None] = {}
        self.memo: dict[Any, Any] = {}  # other reviewers' findings per position (``participant.review``)

    @cached_property
    def reaches_start(self) -> bool:
        """Does the data hold a first event (one without a previous sequence id)? Then nothing of
        this history is older than the window. Only the data's own events count: a key change
        delivered in ``meta`` may lack the pointer wherever it stands (the API's example carries
        none), and the data's oldest event may point at one (xapi.md 2.5)."""
        return any(r.sequence_id and not r.previous_sequence_id and in_data(r) for r in self.ordered)

    @cached_property
    def unranged(self) -> bool:
        """Does an event of the data have a sequence id that is not decimal (text, other scripts'
        digits, past 30 digits), or a previous pointer that does not name a smaller one? Then the
        fetched range is not known: the ids are unsigned, and a server that served some or all of
        them so (review 99) made a target dropped from inside the window read as older than it (a
        warning), where decimal ids made it an error; so did one that renamed the window's oldest
        event to a larger decimal id, which set the range's low end past the target (review r103)."""
        for r in self.ordered:
            if r.sequence_id and in_data(r) and r.index in self.fetched:
                own = position(r.sequence_id)
                if own is None or not _points_back(own, r.previous_sequence_id):
                    return True
        return False

    @cached_property
    def data_low(self) -> int | None:
        """The lowest decimal position among the data's own events (not only in ``meta``)."""
        numbers = [p for r in self.ordered if in_data(r) and (p := position(r.sequence_id)) is not None]
        return min(numbers) if numbers else None

    def below_data(self, record: Any) -> bool:
        """Is ``record`` only in ``meta``, below the data's oldest event (what that event points at)?"""
        if in_data(record):
            return False
        at, low = position(record.sequence_id), self.data_low
        return at is not None and low is not None and at < low

    def judged(self, judge: Callable[[Any], str | None], record: Any) -> str | None:
        """``judge(record)``, once per record: many events may name one position held many times
        (round 76: each judgement reads the event through the engine's views)."""
        key = (judge, record.index)
        if key not in self._judged:
            self._judged[key] = judge(record)
        return self._judged[key]

    @cached_property
    def group_start(self) -> Any:
        """The record that creates the group (``group_start``), found once for every check."""
        return group_start(self)

    @cached_property
    def rank(self) -> dict[int, int]:
        """Each record's place in ``ordered`` (by its index): made only where ids are not decimal."""
        return {r.index: at for at, r in enumerate(self.ordered)}

    key = staticmethod(id_key)  # the position ``by_id`` holds a sequence id at

    def lookup(self, sequence_id: str) -> list[Any]:
        return self.by_id.get(self.key(sequence_id), [])

    def candidates(self, key: Any) -> tuple[list[Any], bool]:
        """(the data's events at position ``key``, whether only meta copies below the data stand
        there), found once per position."""
        got = self._candidates.get(key)
        if got is None:
            matches = [r for r in self.by_id.get(key, ()) if r.index in self.fetched]
            found = [r for r in matches if in_data(r)]
            got = self._candidates[key] = (found, not found and bool(matches) and all(map(self.below_data, matches)))
        return got

    def first_rank(self, key: Any, found: list[Any]) -> int:
        """The earliest place in ``ordered`` of ``found``, the data's events at position ``key``."""
        rank = self._first_rank.get(key)
        if rank is None:
            rank = self._first_rank[key] = min(self.rank[r.index] for r in found)
        return rank

    def covers(self, sequence_id: str) -> bool:
        """Does the fetched range include this position (so the history should hold it)?"""
        number = position(sequence_id)
        return number is not None and self.low is not None and self.high is not None \
            and self.low <= number <= self.high


def _chain_order(records: Sequence[Any], placed: list[tuple[int | None, Any]]) -> tuple[bool, list[Any]]:
    """(whether the order is the links', the records in chain order): by number when every previous
    pointer names a smaller one, else as the pointers link; those without a sequence id last.
    ``placed``: each record with its ``position``."""
    linked = not all(p is not None and _points_back(p, r.previous_sequence_id) for p, r in placed if r.sequence_id)
    if not linked:
        ordered: list[Any] = [r for p, r in sorted(((p, r) for p, r in placed if p is not None),
                                                   key=lambda pr: (pr[0], pr[1].index))]
    else:
        ordered = _linked_order([r for r in records if r.sequence_id])
    return linked, ordered + [r for r in records if not r.sequence_id]


def in_data(record: Any) -> bool:
    """Is ``record`` one of the data's events (every one is fetched), not one delivered only in
    ``meta.conversation_key_events``?"""
    return not getattr(record, "from_meta", False)


def _fetched(records: Sequence[Any]) -> set[int]:
    """The indexes of the data's records and of the meta-only ones their previous pointers reach
    (following pointers through meta records too)."""
    meta: dict[Any, list[Any]] = {}
    fetched: set[int] = set()
    for r in records:
        if not in_data(r):
            if r.sequence_id:
                meta.setdefault(chain_position(r.sequence_id), []).append(r)
        else:
            fetched.add(r.index)
    if not meta:
        return fetched
    pending = [r.previous_sequence_id for r in records if r.index in fetched and r.previous_sequence_id]
    while pending:
        for r in meta.pop(chain_position(pending.pop()), ()):
            fetched.add(r.index)
            if r.previous_sequence_id:
                pending.append(r.previous_sequence_id)
    return fetched


def content_id(value: object) -> str:
    """A target or id read from decrypted contents, as a finding may quote it: an id (ASCII digits)
    is shown; anything else is not, only said (the report holds no plaintext: docs/participant.md;
    round 83: a reply's anchor, "PIN 4711, bank acct 99", was quoted in the report)."""
    text = str(value)
    return shown(text) if is_decimal(text) else "<not an id: from the encrypted contents, not shown>"


def is_decimal(sequence_id: str) -> bool:
    """A sequence id of ASCII digits (what the API's snowflakes are)."""
    return bool(sequence_id) and sequence_id.isascii() and sequence_id.isdigit()


def _points_back(own: int, previous: str | None) -> bool:
    """Does the previous pointer name a smaller number (or nothing)? Then number order is link order."""
    if not previous:
        return True
    number = position(previous)
    return number is not None and number < own


def _linked_order(records: list[Any]) -> list[Any]:
    """Records (each with a sequence id) in the order the chain links them: depth first from every
    record whose predecessor is absent, a position's copies together, siblings and roots in the
    chain's sort order (``chain.seq_order``); what no root reaches (a cycle) last, in that order."""
    at: dict[str, list[Any]] = {}
    for record in sorted(records, key=lambda r: (seq_order(r.sequence_id), r.index)):
        at.setdefault(chain_position(record.sequence_id), []).append(record)
    children: dict[str, list[str]] = {}
    roots = []
    for pos, copies in at.items():
        prev = copies[0].previous_sequence_id
        parent = chain_position(prev) if prev else None
        if parent is None or parent not in at or parent == pos:
            roots.append(pos)
        else:
            children.setdefault(parent, []).append(pos)
    out: list[Any] = []
    seen: set[str] = set()
    for root in [*roots, *at]:  # then whatever no root reached
        stack = [root]
        while stack:
            pos = stack.pop()
            if pos in seen:
                continue
            seen.add(pos)
            out += at[pos]
            stack += reversed(children.get(pos, []))
    return out


def timelines(records: Iterable[Any]) -> Iterator[Timeline]:
    groups: dict[str, list[Any]] = {}
    for record in records:
        groups.setdefault(record.conversation, []).append(record)
    for conversation, members in groups.items():
        yield Timeline(conversation, members)


class TargetProblems:
    """The target problems of one event, gathered so an event naming many bad targets gets one
    finding per code (first ids named, the rest counted)."""

    def __init__(self, what: str, show: Callable[[object], str] | None = None) -> None:
        self.what = what
        self.show = show or shown  # how a target is quoted (a participant's: never plaintext)
        self.after: list[str] = []
        self.missing: list[str] = []  # inside the fetched range
        self.older: list[str] = []  # outside it
        self.before_start: list[str] = []  # outside it, in a history that holds its first event
        self.unplaced: list[str] = []  # not found in a window whose range its ids do not give
        self.not_message: list[tuple[str, str]] = []
        self.doubtful: list[tuple[str, str]] = []  # found, but only the server says it stood there

    def check(self, timeline: Timeline, record: Any, target: str | None, *,
              describe: Callable[[Any], str | None] | None = None,
              doubt: Callable[[Any], str | None] | None = None) -> None:
        """One target of ``record``: it must exist and precede it. ``describe(found)`` says what a
        found event is when it is not an acceptable target (None when it is); ``doubt(found)`` what
        makes an acceptable one only the server's word (a warning)."""
        if target is None:
            return
        key = timeline.key(target)
        if record.sequence_id and timeline.key(record.sequence_id) == key:
            self.after.append(target)  # its own position: nothing there precedes it
            return
        own, at = position(record.sequence_id), position(target)
        # only the history's own events can be named: a key change served only in meta (its unsigned
        # sequence id relabelled to a dropped message's) hid a cut (round 74); so did one the data's
        # oldest event points at, below the data (round 75), and one inside the data's range that a meta
        # copy's unsigned (never judged) previous pointer leads up to (round 77): no event of the data
        # stood there. A meta copy below the data is what the window starts from: the target is older.
        # The events at a position are found, placed and judged once (``Timeline.candidates``)
        found, below = timeline.candidates(key)
        if below:
            self._older(timeline).append(target)
            return
        if own is not None and at is not None and not timeline.linked:
            after = at >= own
        elif found:  # ids that are not decimal, or pointers that are not monotonic: by the chain's order
            after = timeline.first_rank(key, found) > timeline.rank[record.index]
        else:  # not in the history: a decimal position after its own, as the chain reads them (any length)
            own_id = record.sequence_id or ""
            after = target == own_id or (is_decimal(target) and is_decimal(own_id) and seq_order(target) >= seq_order(own_id))
        if after:
            self.after.append(target)
            return
        if not found:
            self._not_found(timeline, target).append(target)
        else:
            self._judge_found(timeline, target, key, found, describe, doubt)

    def check_read_up_to(self, timeline: Timeline, record: Any, target: str | None) -> None:
        """A read marker's target (signed, or inside message contents: round 75 found the second
        judged apart, and laxer): any readable event, a warning when nothing proves it."""
        self.check(timeline, record, target, describe=not_an_event, doubt=not_a_proven_event)

    def _judge_found(self, timeline: Timeline, target: str, key: Any, found: list[Any],
                     describe: Callable[[Any], str | None] | None, doubt: Callable[[Any], str | None] | None) -> None:
        """Whether the events at the target's position are what the event may name (decided once per
        position and pair of judges)."""
        asked = (describe, doubt, key)
        if asked not in timeline.verdicts:
            timeline.verdicts[asked] = _verdict(timeline, found, describe, doubt)
        verdict = timeline.verdicts[asked]
        if verdict is not None:
            into, label = verdict
            (self.not_message if into == "not_message" else self.doubtful).append((target, label))

    def _not_found(self, timeline: Timeline, target: str) -> list[str]:
        """Where a target the history lacks belongs. Once the history holds its first event, nothing
        is older than it (round 70: a history whose oldest events were dropped and whose new oldest
        event lost its unsigned previous pointer read as complete; a signed target older than it
        proves the cut)."""
        if timeline.covers(target):
            return self.missing
        return self.unplaced if timeline.unranged and not timeline.reaches_start else self._older(timeline)

    def _older(self, timeline: Timeline) -> list[str]:
        """Targets older than the fetched history: a cut when the history holds its first event."""
        return self.before_start if timeline.reaches_start else self.older

    def report(self, record: Any) -> None:
        if self.after:
            record.add("target_after_event", f"{self.what} {_ids(self.after, self.show)}, which "
                       f"{'does' if len(self.after) == 1 else 'do'} not precede it")
        if self.missing:
            record.add("target_missing", f"{self.what} {_ids(self.missing, self.show)}, inside the fetched range "
                       "but not in the history", "error")
        for target, what in self.not_message[:1]:
            record.add("target_missing", f"{self.what} {self.show(target)}, which is {what}", "error")
        for target, what in self.doubtful[:1]:
            record.add("target_missing", f"{self.what} {self.show(target)}, which is {what}: only the server says "
                       "it stood there")
        if self.before_start:
            record.add("target_missing", f"{self.what} {_ids(self.before_start, self.show)}, not in the history, which "
                       "holds its first event (one without a previous pointer): events were cut from it, "
                       "or the target is not one of its sequence ids", "error")
        if self.unplaced:
            record.add("target_missing", f"{self.what} {_ids(self.unplaced, self.show)}, not in the history, whose "
                       "sequence ids are not all decimal: nothing places the target before the window", "error")
        if self.older:
            record.add("target_missing", f"{self.what} {_ids(self.older, self.show)}, older than the fetched history "
                       "(or not a sequence id)")


def _verdict(timeline: Timeline, found: list[Any], describe: Callable[[Any], str | None] | None,
             doubt: Callable[[Any], str | None] | None) -> tuple[str, str] | None:
    """("not_message" or "doubtful", what the events at a position are) when every one of them is
    not an acceptable target, or only the server's word; None when one is acceptable."""
    for judge, into in ((describe, "not_message"), (doubt, "doubtful")):
        if judge is None:
            continue
        labels = [label for r in found if (label := timeline.judged(judge, r)) is not None]
        if len(labels) == len(found):  # every event at that position is not an acceptable target
            return into, labels[0]
    return None


def _ids(ids: list[str], show: Callable[[object], str] = shown) -> str:
    head = ", ".join(show(i) for i in ids[:_SHOWN])
    more = f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else ""
    return ("sequence id " if len(ids) == 1 else "sequence ids ") + head + more


def proven(record: Any) -> bool:
    return record.signature is not None and record.signature.status == "valid"


def check_targets(timeline: Timeline) -> None:
    """Deletes and signed read markers: every target exists and precedes its event; a delete names a
    signed message, a read marker an event (a warning when the protocol does not sign it)."""
    for record in timeline.ordered:
        kind = kind_of(record)
        if kind == DELETE:
            problems = TargetProblems("deletes")
            # each distinct target once: one delete may name one id 10,000 times (round 76)
            for target in dict.fromkeys((record.event.body or {}).get("sequence_ids") or ()):
                problems.check(timeline, record, target, describe=not_a_signed_message)
            problems.report(record)
        elif kind in READ_MARKERS:
            problems = TargetProblems(READ_MARKERS[kind])
            problems.check_read_up_to(timeline, record, (record.event.body or {}).get("seen_until_sequence_id"))
            problems.report(record)


def not_an_event(record: Any) -> str | None:
    """What a read marker cannot name: an event that could not be read. An event without a detail
    was read: the protocol does not sign it (round 77: it was called malformed, an error)."""
    return "a malformed event" if record.event is None else None


def _kind_label(record: Any) -> str:
    return kind_of(record) or "event without a detail"


def not_a_signed_event(record: Any) -> str | None:
    """What ``record`` is when the protocol does not sign it, or None. Such an event is the server's
    own word: round 74 put a made-up typing event at a dropped message's sequence id to hide a cut. A
    delete cannot name one (an error); a read marker may (read up to the newest event, whatever its
    kind: round 75), with a warning."""
    malformed = not_an_event(record)
    if malformed is None and record.signature is not None and record.signature.status == "not_signed":
        return f"a {_kind_label(record)}, which the protocol does not sign"
    return malformed


def not_a_proven_event(record: Any) -> str | None:
    """What ``record`` is when nothing proves it: an event the protocol does not sign, or whose
    signature was not proven (round 76: a made-up version-7 key change, its signature random bytes,
    is only ``needs_conversation_key`` to an outsider, and stood in for a dropped message)."""
    unsigned = not_a_signed_event(record)
    if unsigned is not None or proven(record):
        return unsigned
    status = record.signature.status if record.signature is not None else "missing"
    return f"a {_kind_label(record)} whose signature is not proven ({status})"


def not_a_signed_message(record: Any) -> str | None:
    """Why ``record`` cannot be what a delete, reaction or edit names (a signed message), or None."""
    if record.event is not None and kind_of(record) != MESSAGE:
        return f"a {_kind_label(record)}, not a message"
    return not_a_signed_event(record)


# The members of a group before its creation (``Timeline.group_start``): nobody. One object, so
# that a record yielded with it is known to precede the create.
_BEFORE_CREATE: frozenset[str] = frozenset()


def _membership(timeline: Timeline, doubts: dict[str, Any] | None = None, gone: dict[str, Any] | None = None
                ) -> Iterator[tuple[Any, AbstractSet[str] | None]]:
    """Each record in chain order with the group's members at that point (None: unknown).

    A GroupCreate sets the members (its signed member ids and its sender); a GroupMemberAddChange
    adds its new and current members; a GroupMemberRemoveChange removes its members (leaving is
    removing oneself). Before the first create or add, or after a membership change whose signature
    is not proven, membership is unknown. Once it is known, a change from a non-member changes
    nothing (``replay_membership`` flags it): else an account the server controls could add itself
    with a valid signature of its own. So does a GroupCreate once membership is known: its signature
    does not bind the conversation id, so a member's creation of another group could be replayed
    here to reset the members. An add or remove that names no conversation changes nothing either
    (its signature binds it to none). A group change is yielded with the members before it.

    Ids a change names only where an unsigned choice decides the signed lists' end are not counted
    (``credited_members``); ``doubts`` learns which change named each of them.

    While membership is unknown (a window without the create, before its first add), a proven
    removal still proves that its ids are not members from then on, until a change makes them
    members again: ``gone`` holds them, each with the removal, as the record is yielded (round 89: a
    removed member's later messages, key changes and removals passed in such a window). What such
    an id signs changes nothing, a GroupCreate included (review 91: the removed member's own legacy
    upgrade create, which is not the group's start, made it a member again). It is emptied whenever
    membership becomes known, or unknown again after a change not proven.

    When the history holds the group's creation (``group_start``), nobody is a member before it
    (review 70: a non-member's events placed before the create passed, membership being unknown
    there), but for the creator's key change that distributes the key the create names (the SDK
    makes it first)."""
    start = timeline.group_start
    members: AbstractSet[str] | None = _BEFORE_CREATE if start is not None else None
    key_versions = _key_versions(timeline)
    for record in timeline.ordered:
        if record is start:
            yield record, None  # as the first create always is
        elif members is _BEFORE_CREATE and _initial_key_change(record, start):  # only before it (review 71)
            yield record, {start.sender_id or ""}
        else:
            yield record, members
        kind = kind_of(record)
        if kind in MEMBERSHIP:
            if record is not start and members is not None and (record.sender_id not in members
                                                                or kind == GROUP_CREATE):
                continue  # a non-member's change, or a create once the group is made: nothing changes
            if members is None and gone is not None and record.sender_id in gone:
                continue  # a removed member's change, a create too (``replay_membership`` flags it): nothing changes
            if kind != GROUP_CREATE and not record.event.conversation_id:
                continue  # signed for no conversation (``unbound_conversation``): maybe another group's
            if not proven(record):
                members = None
                if gone is not None:
                    gone.clear()
                continue
            body = record.event.body or {}
            if kind == GROUP_REMOVE:
                if members is not None:
                    members -= set(body.get("member_ids") or ())
                elif gone is not None:
                    for member in body.get("member_ids") or ():
                        if isinstance(member, str):
                            gone[member] = record
                continue
            if gone is not None:
                gone.clear()  # membership is known from here on
            credited, doubtful = credited_members(record, key_versions)
            if doubts is not None:
                for member in credited:  # a later change that does make it a member is the last word
                    doubts.pop(member, None)
                for member in doubtful:
                    doubts.setdefault(member, record)
            if kind == GROUP_CREATE:
                members = credited | {record.sender_id or ""}
            elif type(members) is set:  # in place (round 104: a copy a change, 32,000 adds of one member
                members |= credited  # each, 54 MB, spent 8 s copying; the caller holds a yielded set
            else:  # only until it asks for the next record, as with the removals above)
                members = set(members or ()) | credited


def group_start(timeline: Timeline) -> Any:
    """The history's first proven GroupCreate in chain order (None: none, a signed legacy upgrade,
    whose group existed before it, or a 1:1 conversation, which no create makes: review 71): the
    group's first event but for its key change."""
    if one_to_one_members(timeline.conversation) is not None:
        return None
    for record in timeline.ordered:
        if kind_of(record) == GROUP_CREATE and proven(record):
            return None if _signed_legacy_upgrade(record) else record
    return None


def _signature_version(event: Any) -> int:
    """The event's signature version as the payload builders read it (missing or not a number: 7)."""
    return parse_signature_version(event.signature.signature_version if event.signature is not None else None)[0]


def _signed_legacy_upgrade(record: Any) -> bool:
    """``is_legacy_group_upgrade`` true where the signature covers it (version 4 and later; below,
    the server could set it)."""
    event = record.event
    version = _signature_version(event)
    return (event.body or {}).get("is_legacy_group_upgrade") is True and version >= 4


def _initial_key_change(record: Any, start: Any) -> bool:
    """The creator's key change of the key the create names: the SDK's group creation makes it first."""
    if start is None or kind_of(record) != KEY_CHANGE or record.sender_id != start.sender_id:
        return False
    named = (start.event.body or {}).get("conversation_key_version")
    return named is not None and (record.event.body or {}).get("conversation_key_version") == named


# Events whose conversation key version is signed at a fixed place (a member add's is not: its place
# moves with the version): the versions a group's signed changes may name.
KEY_VERSION_KINDS = frozenset({GROUP_CREATE, KEY_CHANGE, "GroupChangeEvent.GroupTitleChange",
                               "GroupChangeEvent.GroupAvatarUrlChange"})


def _key_versions(timeline: Timeline) -> set[str]:
    """The conversation key versions the history's key changes, creates and title or avatar changes
    name (proven or not: more names only make more re-cuts possible). Any decimal counts too
    (``_add_trailers``): the server may drop the events that name one (review 42: the key change
    dropped and the chain re-linked, the re-cut passed)."""
    return {render_slot(version) for record in timeline.ordered if kind_of(record) in KEY_VERSION_KINDS
            for version in [(record.event.body or {}).get("conversation_key_version")] if version is not None}


# The slots of a version-7 trailer, as the SDK renders them: what a re-cut of the signed values must
# put in each for that reading to be possible at all.
_BOOLEAN_SLOT = frozenset({"true", "false", "null"})


def _integer_slot(text: str) -> bool:
    digits = text[1:] if text[:1] == "-" else text
    return text == "null" or (digits.isascii() and digits.isdigit())


def credited_members(record: Any, key_versions: Collection[str] = ()) -> tuple[set[str], set[str]]:
    """The member ids a proven GroupCreate or GroupMemberAddChange gives, and those it names that
    are left out as doubtful.

    Why: the signed payload joins the lists and the fixed values with commas, and which values are
    lists depends on the signature_version (not signed) and on whether an invite trailer is present
    (not signed either). A server can re-cut what a member signed as version 7, naming version 2
    (or dropping the invite), so that the signed title (any member may set it) reads as a member id
    (review 37: a removed member came back). Every version-7 reading the signed values allow, its
    trailer holding plausible values (booleans, integers, a conversation key version), is
    tried: an id only such a trailer could hold is doubtful, unless the change names it elsewhere
    too. ``key_versions``: the conversation key versions the history names (besides any decimal). An
    honest version-7 change loses nothing unless its title is a decimal (with no avatar and no screen
    capture setting); an honest change of version 2 to 4 without a title may lose its last four list
    ids (their later messages are then ``non_member_sender``, naming the change): fail closed. Not
    caught: ids an add of version 3 to 6 signed as pending, moved into the member lists (the signed
    values cannot say where a list ends)."""
    event = record.event
    body = event.body or {}
    kind = event.kind
    version = _signature_version(event)
    try:
        parts = [part if type(part) is str else render_slot(part) for part in BUILDERS[kind](body, version, None)]
    except (PayloadUnavailable, KeyError, TypeError, AttributeError):  # proven, so built once: defence in depth
        return set(), set()
    first, count = (1, len(body.get("member_ids") or ())) if kind == GROUP_CREATE else \
        (0, len(body.get("member_ids") or ()) + len(body.get("current_member_ids") or ()))
    end = len(parts)
    trailers = _create_trailers(parts) if kind == GROUP_CREATE else _add_trailers(parts, key_versions)
    cut = min([end - size for size in trailers], default=end)  # from here on, a trailer might begin
    credited = {parts[at] for at in range(first, min(first + count, cut))}
    doubtful = {parts[at] for at in range(max(first, cut), first + count)} - credited
    return credited, doubtful


def _create_trailers(parts: Sequence[str]) -> list[int]:
    """A GroupCreate signed at version 4 or later ends in (legacy flag, title, avatar)."""
    return [3] if len(parts) >= 4 and parts[-3] in _BOOLEAN_SLOT else []


def _add_trailers(parts: Sequence[str], key_versions: Collection[str]) -> list[int]:
    """A GroupMemberAddChange signed at version 7 ends in (title, avatar, ttl, key version, screen
    capture) and, with an invite, (url, affiliate, expiry) after them."""
    def key_version(text: str) -> bool:
        return (text.isascii() and text.isdigit()) or text in key_versions

    sizes = []
    end = len(parts)
    if end >= 5 and parts[end - 1] in _BOOLEAN_SLOT and _integer_slot(parts[end - 3]) and key_version(parts[end - 2]):
        sizes.append(5)
    if end >= 8 and parts[end - 4] in _BOOLEAN_SLOT and _integer_slot(parts[end - 6]) and \
            _integer_slot(parts[end - 1]) and key_version(parts[end - 5]):
        sizes.append(8)
    return sizes


def replay_membership(timeline: Timeline) -> None:
    """Replay the proven group changes in chain order (``_membership``); flag what non-members send
    (``members_only``, membership changes included). Where membership is unknown nothing is flagged
    but what a user a proven removal took out sends after it (``_membership``'s ``gone``)."""
    creates: set[str] = set()  # the positions of the creates seen: a copy at one is the chain's duplicate
    doubts: dict[str, Any] = {}
    gone: dict[str, Any] = {}  # while membership is unknown: who a proven removal took out, and that removal
    for record, members in _membership(timeline, doubts, gone):
        kind = kind_of(record)
        at = chain_position(record.sequence_id) if record.sequence_id else None
        if members is None:
            removal = gone.get(record.sender_id or "") if record.sender_id else None
            if removal is not None and members_only(kind) and not asks_to_join(record):
                record.add("non_member_sender", f"sender {shown(record.sender_id)} is not a member of the group at "
                                                "this point: the GroupMemberRemoveChange at sequence id "
                                                f"{shown(removal.sequence_id)} removed it, and no proven change "
                                                "since made it a member again")
            if kind == GROUP_CREATE and at is not None:
                creates.add(at)
            continue
        if members_only(kind) and record.sender_id not in members and not asks_to_join(record):
            if members is _BEFORE_CREATE:
                record.add("non_member_sender", f"sender {shown(record.sender_id)} sent it before the group's "
                                                f"GroupCreate (sequence id {shown(timeline.group_start.sequence_id)}): "
                                                "nobody is a member of a group before it is made (or that create, "
                                                "which signs no conversation id, is another group's, placed here)")
                continue
            record.add("non_member_sender", f"sender {shown(record.sender_id)} is not a member of the group at "
                                            "this point (replaying its proven group changes)"
                                            + _doubt(doubts.get(record.sender_id or "")))
        elif kind == GROUP_CREATE and at not in creates:
            record.add("repeated_group_create", "a GroupCreate in a group its earlier proven changes already made: "
                                                "its signature does not bind the conversation id, so it may be "
                                                "another group's creation; it changes no membership")


def _doubt(change: Any) -> str:
    """Why a group change that names a sender did not make it a member (``credited_members``)."""
    if change is None:
        return ""
    return (f"; the {kind_of(change)} at sequence id {shown(change.sequence_id)} names it only where a version-7 "
            "trailer (title, avatar, ttl, invite) may be: its signed values do not say which are member ids, "
            "and neither its signature_version nor its invite fields are signed")


def unbound_conversation(kind: str | None, conversation: str | None, expected: str) -> str | None:
    """Why a signed event that names no conversation is not proven to be ``expected``'s, else None.

    Without a conversation id the signed payload leaves the component out entirely, and lists are
    spliced in without boundaries: a member's signed change of another group, its conversation id
    dropped by the server and that id put at the head of the event's first list, signs the same
    bytes and verified in this group (review 50: a member add credited the server's account; a
    remove, an admin change, a read marker moved the same way). Every signer sets the id; a
    GroupCreate never signs it (threat-model.md)."""
    if conversation or kind == GROUP_CREATE or not must_be_signed(kind):
        return None
    return (f"the signed event names no conversation (no conversation_id): its signature does not bind it to "
            f"{shown(expected)}, so it may have been signed in another conversation")


@dataclass(frozen=True)
class SignedEvent:
    """One event of a conversation as ``signing_key_regressions`` reads it (``index``: the caller's
    row; ``proven``: its signature is valid). Every event with a sequence id is given, proven or not:
    the chain's order runs through them all (review 63: given only some, each pointed at an absent
    one and the ids alone ordered them again)."""

    index: int
    sequence_id: str | None
    previous_sequence_id: str | None
    sender_id: str | None
    key_version: str | None
    proven: bool


def signing_key_regressions(events: Sequence[SignedEvent]) -> list[tuple[int, str]]:
    """(index, message) for each proven signature made with an older signing-key version than its
    sender's proven signature on an earlier event of the conversation, in chain order, as
    ``Timeline`` orders (``_chain_order``; review 60: a server's ids put the old-key event first).
    Why: a directory keeps old versions for old events, so an event signed at a retired version
    verifies, and nothing else noticed a sender moving back to an old key (review 57). A warning: a
    second device that missed a rotation does the same (review 60; the SDK takes both). Versions are
    millisecond stamps: only decimal ones of at most 20 digits are compared. Any sequence id is
    placed, decimal or not, as the chain places it (review 99: a server that served ids that are not
    decimal, all of them unsigned, hid the warning, and ``--strict`` passed)."""
    newest: dict[str, tuple[int, str, str]] = {}  # sender -> (version number, version, sequence id)
    out = []
    for event in _chain_order(events, [(position(e.sequence_id), e) for e in events])[1]:
        version, sender, seq = event.key_version, event.sender_id or "", event.sequence_id
        if not (event.proven and seq and version and short_decimal(version)):
            continue
        number, best = int(version), newest.get(sender)
        if best is not None and number < best[0]:
            out.append((event.index, f"signed with key version {shown(version)} after {shown(sender)} signed with "
                                     f"the newer version {shown(best[1])} (sequence id {shown(best[2])}): an old "
                                     "signing key in use again"))
        elif best is None or number > best[0]:
            newest[sender] = (number, version, seq)
    return out


def one_to_one_members(conversation: str) -> set[str] | None:
    """The two participants of a 1:1 conversation (canonical ``A:B``), else None."""
    a, found, b = conversation.partition(":")
    return {a, b} if found and a.isascii() and b.isascii() and a.isdigit() and b.isdigit() else None


def delete_signers(records: Iterable[Any], kinds: Sequence[str]) -> dict[int, bool | None]:
    """For each event of ``kinds`` (deletes): is its sender a member of the conversation at that point?
    A 1:1 conversation's members are the two users its id names; a group's come from replaying its
    proven group changes (``_membership``): None where that is unknown, but False for a user a proven
    removal took out while it is (``_membership``'s ``gone``, as ``replay_membership`` judges: review
    91, a removed member's own add after its removal made its delete a member's for the ledger)."""
    out: dict[int, bool | None] = {}
    for timeline in timelines(records):
        fixed = one_to_one_members(timeline.conversation)
        gone: dict[str, Any] = {}
        for record, members in _membership(timeline, gone=gone):
            if kind_of(record) not in kinds:
                continue
            known = fixed if fixed is not None else members
            if known is None:
                out[record.index] = False if record.sender_id and record.sender_id in gone else None
            else:
                out[record.index] = (record.sender_id or "") in known
    return out


class SignedChecks:
    """The default reviewer (``engine.Reviewer``): the checks above, for everyone."""

    # The kinds whose decoded event (body) these checks read; they learn no conversation key.
    triggers = frozenset({DELETE, CONVERSATION_DELETE, *READ_MARKERS, GROUP_CREATE, GROUP_ADD, GROUP_REMOVE,
                          GROUP_JOIN_REQUEST})
    reads_kinds = triggers | KEY_VERSION_KINDS - {KEY_CHANGE}
    group_reads_kinds = frozenset({KEY_CHANGE})  # the key versions a group names (``credited_members``)

    def conversation_keys(self, records: Sequence[Any], keyring: Keyring | None) -> dict[str, bytes]:
        return {}

    def review(self, records: Sequence[Any], keyring: Keyring | None) -> list[tuple[str, str]]:
        present = getattr(records, "kinds_present", None)
        if present is not None and not present & self.triggers:
            return []  # no delete, read marker or group change: nothing to check
        for timeline in timelines(records):
            check_targets(timeline)
            replay_membership(timeline)
        return []
