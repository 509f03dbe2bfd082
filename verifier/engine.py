"""The verification engine: pages in, a ``Report`` out. Pure: no file or network I/O.

Orchestration only; each step lives in its own module:

1. decode every event exactly as the SDK does (``wire``: a fast path for the common shape, the
   generic reader for anything else) and cross-check its JSON envelope (``envelope``), page by page
   as pages arrive, into compact columns (``columns``: about 100 bytes an event, whatever the
   event's size);
2. per event, the SDK's signature steps up to the payload (``signature.prepare``, choosing the key
   with ``signers``), then the ECDSA checks in chunks on a thread pool (``cryptography`` releases
   the GIL inside OpenSSL). When the keys are known from the start (``verify_pages``) a chunk is
   checked as soon as its pages are decoded and nothing of the event is kept; otherwise (the
   audit learns its keys last) the encoded event waits, and is decoded again by ``finish``;
3. per conversation, the chain and replays (``chain``: one pass over sorted positions for the usual
   single linked chain, the full analysis for anything else);
4. findings about whole conversations and the run, fail closed (``Policy``), and the ``Report``:
   its events are built from the columns on access (``views.EventList``), so a renderer can stream a
   report of millions of events. What the ledger and the archive receive are plain values (``facts``).

``finish`` runs steps 2-4 as three calls (``check_signatures``, ``conclude``, ``assemble``) that
``verifier.archive`` also runs apart, on parts of one run in several processes (``check_part`` ...
``finish_parts``): both give the same report.

The cyclic garbage collector is off for a whole verification: the engine makes no reference
cycles, and a collector walking the growing heap after every page cost as much as the decoding.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import os
import sys
import threading
from array import array
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, compress, repeat
from operator import attrgetter, is_, or_
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from . import wire as _wire
from .chain import FIRST_EVENT, NO_PREVIOUS, NO_SEQUENCE_ID, ONLY_IN_META, ChainNode, ChainResult, analyse_chain, find_replays
from .columns import DECODED_OK as _DECODED_OK
from .columns import FROM_META as _FROM_META
from .columns import IS_KEY_CHANGE as _IS_KEY_CHANGE
from .columns import NOT_ENCODED as _NOT_ENCODED
from .columns import SIGNED_KIND as _SIGNED_KIND
from .columns import STAGE_DECODED as _DECODED
from .columns import STAGE_KEY_CONFLICTS as _KEY_CONFLICTS
from .columns import STAGE_REPLAYED as _REPLAYED
from .columns import STAGE_REVIEWED as _REVIEWED
from .columns import TRUSTED_CODE as _TRUSTED
from .columns import TRUSTED_VALUE as _TRUSTED_VALUE
from .columns import Ids, Interned, picker
from .envelope import envelope_differences
from .errors import MalformedEvent, UsageError
from .facts import ClearOptions, EventFacts, PageEnds, PartFacts, Row
from .ids import canonical_conversation
from .inputs import refuse_one_value
from .keys import Keyring, sha256_all, version_key
from .model import (
    ALLOWED_BY,
    FINDING_SEVERITY,
    REPORT_SCHEMA,
    STATUS_SEVERITY,
    ChainStatus,
    Check,
    Code,
    ConversationReport,
    EventReport,
    Finding,
    InputReport,
    Proof,
    Report,
    Severity,
    SigStatus,
    Verdict,
    fails,
)
from .pages import DecodedPage, ItemJson, RawEntry, decode_page
from .payload import MIN_SIGNATURE_VERSION, create_payload, message_create_payloads, must_be_signed, parse_signature_version
from .sanitize import encodable
from .semantics import (
    GROUP_CREATE,
    SignedEvent,
    one_to_one_members,
    shown,
    signing_key_regressions,
    unbound_conversation,
)
from .signature import Job, check_all, prepare
from .signers import KeySlot, carrier_conflicts, embedded_keys, slots_of
from .views import EventList, Record, Records, check_finding
from .wire import (
    DEFAULT_LIMITS,
    EventSignature,
    Limits,
    MessageEvent,
    SigningKeyInfo,
    canonical_b64,
    canonical_b64_all,
    decode_event_b64,
    decode_event_bytes,
)

if TYPE_CHECKING:  # a pool of threads is imported by the run that starts one (concurrent.futures loads logging)
    from concurrent.futures import ThreadPoolExecutor

# isort: split
from . import layouts as _layouts  # after wire (which imports layouts once it is itself defined): no import cycle

_CHUNK = 256  # ECDSA checks per pool task
_SCANNED_SIGNERS = 4  # a page's usual signers up to this many are found by comparing, not hashing (``_usual_job``)
_STAGED_KEPT = 4096  # distinct findings ``_Run.add`` shares between events (beyond: one object each)
_FLUSH = 2048  # checks gathered before they are handed to the pool (eager mode)
KEY_CHANGE = "ConversationKeyChangeEvent"
DELETE_KINDS = ("MessageDeleteEvent", "ConversationDeleteEvent")
_MEMBERSHIP = ("GroupChangeEvent.GroupCreate", "GroupChangeEvent.GroupMemberAddChange",
               "GroupChangeEvent.GroupMemberRemoveChange")  # semantics.MEMBERSHIP: who a delete's signer is

# A row's chain status is a code: one per status, its detail in ``chain_details`` when it is not
# "follows PREV"; and one per fixed (status, detail), which needs no entry there: an input of
# millions of events without a sequence id holds a byte per event, not a dict entry.
_FIXED_CHAIN = ((ChainStatus.GAP, NO_SEQUENCE_ID), (ChainStatus.GAP, NO_PREVIOUS),
                (ChainStatus.OUT_OF_BAND, ONLY_IN_META), (ChainStatus.START, FIRST_EVENT))
_CHAIN_CODES = [*ChainStatus, *(status for status, _detail in _FIXED_CHAIN)]
_QUIET_CHAIN = [status not in STATUS_SEVERITY for status in _CHAIN_CODES]  # no finding of its own
_CHAIN_INDEX = {status: code for code, status in enumerate(ChainStatus)}
_FIXED_CODES = {fixed: code for code, fixed in enumerate(_FIXED_CHAIN, len(ChainStatus))}
_FIXED_DETAILS = {code: detail for (_status, detail), code in _FIXED_CODES.items()}
_NO_SEQUENCE_ID = _FIXED_CODES[ChainStatus.GAP, NO_SEQUENCE_ID]
_LINKED = ChainStatus.LINKED
_LINKED_CODE = _CHAIN_INDEX[_LINKED]
_INFO = Severity.INFO.value
_CREATE = "MessageCreateEvent"
_USUAL_FLAGS = _DECODED_OK | _SIGNED_KIND  # a data item's signed event, decoded, not a key change
_BINDING_INVALID = SigStatus.KEY_BINDING_INVALID
_VALID = SigStatus.VALID
_canonical_b64 = canonical_b64
_create_payload = create_payload
_layouts_decode = _layouts.decode_event_fast
_PAGE_AT_ONCE = 16  # a page's leading data events read together (``_usual_page``) from this many on
# ... up to this many: a larger page (the API serves 100 events a page) is read one event at a time, its
# peak memory as before: the page path holds the page's joined heads, tails and texts at once (pages
# of 20,000 events: 220 MB -> 309 MB peak, round 139)
_PAGE_AT_MOST = _layouts.PLAN_KEPT
_FROM_META_OF, _PROBLEM_OF = attrgetter("from_meta"), attrgetter("problem")
_ITEM_OF, _ENCODED_OF = attrgetter("item"), attrgetter("encoded")
# ``_envelopes_agree``: ``ItemJson``'s fields in their order (positional: ``map`` passes no names)
_ITEM_FIELDS = ItemJson.__struct_fields__
_SIGNER_SENDER, _SIGNER_KEY_VERSION, _SIGNER_SIGNATURE_VERSION = (attrgetter("sender"), attrgetter("key_version"),
                                                                   attrgetter("signature_version"))
_SIGNER_KEY, _SIGNER_DETAIL, _SIGNER_EMBEDDED = attrgetter("key"), attrgetter("detail"), attrgetter("embedded")


def usable_cpus() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``: taskset and cgroups count), not
    ``os.cpu_count()``, which ignores them."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Verification threads: one per CPU this process may run on (at most 8); ECDSA releases the GIL."""
    return min(8, usable_cpus())


@dataclass
class PageInput:
    """A page body with a label for reports (file name, URL, ``stdin:3``) and, when known, the
    conversation it was fetched for (events of any other conversation are then a mismatch)."""

    source: str
    body: bytes | str | dict[str, Any]
    conversation_id: str | None = None


class Reviewer(Protocol):
    """A check that runs inside a verification, around the signature checks (the hook of the
    participant audit, ``verifier.participant``; the default is ``verifier.semantics.SignedChecks``).

    Both methods receive the engine's per-event records in input order. A reviewer reads their
    ``index``, ``conversation`` (canonical id), ``event`` (the decoded ``MessageEvent``, or None when
    malformed), ``from_meta``, ``sequence_id``, ``sender_id`` and, in ``review``, ``signature`` (the
    ``Check``); it reports a finding on an event with ``record.add(code, message[, severity])`` and
    changes nothing else.

    * ``conversation_keys(records, keyring)`` runs before any signature is checked and returns
      plaintext conversation keys it learned (a participant decrypts them): ``{version: 32 bytes}``
      for every conversation, or ``{(conversation, version): 32 bytes}`` for that conversation only
      (two conversations may use one version string for different keys); they verify v6+ key
      changes like ``conversation_keys=`` (which wins for a version given both).
    * ``review(records, keyring)`` runs once every signature is known, before the chain and the
      verdicts; it adds event findings and returns run-level ``(code, message)`` findings.

    A reviewer may declare ``reads_kinds`` (a set of event kinds): then only events of those kinds
    keep their decoded ``MessageEvent`` (the others show a stand-in with the kind alone) and it
    promises ``conversation_keys`` returns nothing, so signatures can be checked as pages arrive;
    and ``group_reads_kinds``: kinds kept only when the event names a conversation that is not 1:1
    (a key change of every 1:1 page is not worth keeping for what only groups need).
    """

    def conversation_keys(self, records: Sequence[Any],
                          keyring: Keyring | None) -> Mapping[str, bytes] | Mapping[tuple[str, str], bytes]: ...

    def review(self, records: Sequence[Any], keyring: Keyring | None) -> list[tuple[str, str]]: ...


def default_reviewers() -> tuple[Reviewer, ...]:
    """The checks every verification runs: what signed events claim about other events."""
    from .semantics import SignedChecks
    return (SignedChecks(),)


def verify_pages(pages: Iterable[PageInput | DecodedPage | bytes | str | dict[str, Any]], keyring: Keyring | None = None, *,
                 conversation_keys: Mapping[str, bytes] | None = None,
                 allow_embedded_keys: bool = False, allow_empty: bool = False,
                 allow_partial: bool = False, strict: bool = False,
                 expected_conversation_id: str | None = None,
                 limits: Limits = DEFAULT_LIMITS, workers: int | None = None,
                 reviewers: Sequence[Reviewer] | None = None, lazy: bool = False) -> Report:
    """Verify pages of ``GET /2/chat/conversations/{id}/events`` bodies; never raises per event.

    ``pages`` may hold raw bodies (bytes/str), parsed dicts, ``PageInput`` or already decoded pages.
    Fail closed: without a ``keyring`` the verdict is ``fail`` unless ``allow_embedded_keys``; an
    empty history, or one where no signature could be proven, fails unless ``allow_empty``.
    ``reviewers`` replace the default checks (``default_reviewers()``); see ``Reviewer``.
    ``lazy``: each conversation's ``events`` is an ``EventList`` that builds its ``EventReport``s on
    access (constant memory per event; what the CLI uses) instead of a list.
    """
    refuse_one_value(pages, "verify_pages", "pages")
    if isinstance(pages, (PageInput, DecodedPage)) or not hasattr(pages, "__iter__"):  # round 88: a TypeError
        raise UsageError(f"verify_pages takes a sequence of pages, not one {type(pages).__name__}: pass it in a list")
    verification = Verification(conversation_keys=conversation_keys, allow_embedded_keys=allow_embedded_keys,
                                allow_empty=allow_empty, allow_partial=allow_partial,
                                strict=strict, expected_conversation_id=expected_conversation_id,
                                limits=limits, workers=workers, reviewers=reviewers)
    with gc_paused():
        verification._run.know_keyring(_keyring_arg(keyring, "verify_pages"), facts=False)  # never returned: no event_facts
        try:
            for page in pages:
                verification._add(page)
        except BaseException:  # an interrupt or a failing page source: no idle threads left behind
            verification._run.close()
            raise
        return verification._finish(keyring, lazy)


def _check_options(expected_conversation_id: object, limits: object, workers: object) -> None:
    """``UsageError`` for an option of the wrong type (r109: ``workers="2"``, ``limits=None`` and
    ``expected_conversation_id=5`` were raw TypeErrors and AttributeErrors from deep inside)."""
    if expected_conversation_id is not None and not isinstance(expected_conversation_id, str):
        raise UsageError("expected_conversation_id must be a str or None, not "
                         f"{type(expected_conversation_id).__name__} {expected_conversation_id!r:.40}")
    if not isinstance(limits, Limits):
        raise UsageError(f"limits must be a verifier.Limits, not {type(limits).__name__} {limits!r:.40}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UsageError(f"workers must be None or an int of at least 1, not {type(workers).__name__} {workers!r:.40}")


class Verification:
    """Incremental form of ``verify_pages``: decode pages as they arrive, verify once keys are known.

    The fetcher feeds pages while later pages are still downloading, learns the participants from
    ``user_ids()``, fetches their keys, then calls ``finish(keyring)``.
    """

    def __init__(self, *, conversation_keys: Mapping[str, bytes] | None = None,
                 allow_embedded_keys: bool = False, allow_empty: bool = False,
                 allow_partial: bool = False, strict: bool = False,
                 expected_conversation_id: str | None = None, limits: Limits = DEFAULT_LIMITS,
                 workers: int | None = None, reviewers: Sequence[Reviewer] | None = None,
                 judge_paging: bool = True) -> None:
        """``judge_paging``: whether the pages' own ``meta`` and ``errors[]`` say if each history was
        given to its end (``paging_reasons``; page files, the library). False where the caller judges
        the walk and says so with ``mark_incomplete`` (an audit, saved evidence)."""
        policy = Policy(allow_embedded_keys=allow_embedded_keys, allow_empty=allow_empty,
                        allow_partial=allow_partial, strict=strict)
        _check_options(expected_conversation_id, limits, workers)
        self._run = _Run(conversation_keys or {}, policy, canonical_conversation(expected_conversation_id), limits,
                         workers, tuple(default_reviewers() if reviewers is None else reviewers))
        self._run.judge_paging = judge_paging
        self._pages = 0
        self._expected: tuple[Keyring | None] | None = None  # (keyring,) once expect_keyring named one
        # what checked this run's signatures ("finish", "check_part"): no page may be added after it,
        # and a run finishes once (round 88: a page added after finish was reported with a check it
        # never had, and finish(B) after finish(A) reported B's trust for A's checks)
        self._sealed = ""
        self._expected_digest: bytes | None = None  # a pickled expectation's keyring (``__getstate__``)
        self._lock = threading.Lock()  # one page, or finish, at a time
        # the secret scrubber of the run's source (an audit's access token), for what the ledger
        # records beside the scrubbed report (``record_audit(scrub=)``); None: nothing to scrub
        self.scrub: Callable[[str], str] | None = None
        # when the pages were fetched, the earliest page's time (an audit, saved evidence), for what
        # the ledger records (``record_audit(fetched=)``); None: unknown (page files)
        self.fetched: str | None = None
        self._fetch_times: dict[str, list[object]] = {}  # conversation -> its pages' fetch times

    def _open(self, caller: str) -> None:
        """``UsageError`` once the signatures were checked: what comes after would not be in the report."""
        if self._sealed:
            raise UsageError(f"{caller} after {self._sealed}: the signatures were checked, and reported, without "
                             "it; start a new Verification")

    def add_page(self, page: Any) -> None:
        """Decode (and, after ``expect_keyring``, check) one page. Thread-safe: pages added from
        several threads at once are taken one at a time (round 88: they corrupted the columns)."""
        with self._lock:
            self._open("add_page")
            with gc_paused():
                self._add(page)

    def _add(self, page: Any) -> None:
        self._run.load_page(_as_decoded(page, self._pages))
        self._pages += 1

    @property
    def event_count(self) -> int:
        return self._run.count

    def user_ids(self) -> list[str]:
        """Every sender and signing-key member named by the decoded events, in first-seen order."""
        return list(self._run.users)

    def add_input_error(self, source: str, message: str) -> None:
        """Record an input that could not be obtained in full (the report is then incomplete)."""
        self._open("add_input_error")
        self._run.inputs.append(InputReport(encodable(source), self._run.event_total, 0, [encodable(message)]))

    def expect_conversation(self, conversation_id: str) -> None:
        """Name a conversation the caller asked for: it is reported even if it has no events
        (then it fails with ``no_events`` unless ``allow_empty``)."""
        self._open("expect_conversation")
        self._run.expected_conversations.setdefault(canonical_conversation(conversation_id) or "unknown")

    def mark_incomplete(self, conversation_id: str | None, reason: str) -> None:
        """The history of ``conversation_id`` was not fetched to its end (a page limit, an interrupted
        or failed fetch): it fails with ``incomplete`` unless ``allow_partial``."""
        self._open("mark_incomplete")
        cid = canonical_conversation(conversation_id) or self._run.expected or "unknown"
        self._run.incomplete.setdefault(cid, []).append(reason)

    def conversations_since(self, first_event: int) -> list[str]:
        """The conversations the events from ``first_event`` on were reported under, in first-event
        order (what a server served for one request: ``audit.served_problems``)."""
        run = self._run
        codes = run.conversation.codes()[max(0, first_event - run.base):]
        return [run.conversation.value_of(code) for code in dict.fromkeys(codes)]

    @property
    def incomplete(self) -> dict[str, list[str]]:
        """Conversations marked incomplete so far, with their reasons."""
        return {cid: list(reasons) for cid, reasons in self._run.incomplete.items()}

    def expect_keyring(self, keyring: Keyring | None, *, facts: bool = True) -> None:
        """Before the first page: the keyring is known, so each page's signatures are checked as it
        is added (what ``verify_pages`` does) and a checked event keeps nothing but its columns.
        ``facts=False``: ``event_facts`` will not be asked for. ``finish`` (or ``check_part``) must
        be given the same keyring (the same object), or they raise ``UsageError``."""
        if self._run.count:
            raise UsageError("expect_keyring comes before the first page")
        self._run.know_keyring(_keyring_arg(keyring, "expect_keyring"), facts=facts)
        self._expected, self._expected_digest = (keyring,), None

    def __getstate__(self) -> dict[str, Any]:
        """A part travels without its keyring (``check_part``), so without the expectation too; what
        stays is the expected keyring's digest (round 88: unpickled, ``finish(B)`` after
        ``expect_keyring(A)`` was accepted again and reported B's trust for A's checks)."""
        state = {**self.__dict__, "_expected": None, "_expected_digest": self._expected_keyring_digest()}
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _same_keyring(self, keyring: Keyring | None, caller: str) -> None:
        """Signatures already checked with the expected keyring must not be reported as checked
        with another (review 51: ``finish(B)`` after ``expect_keyring(A)`` reported B, verified A).
        A keyring of the same rows (a copy: unpickled, or a Dask worker's) is the same one."""
        expected = self._expected
        if expected is not None and expected[0] is keyring:
            return
        digest = self._expected_keyring_digest()  # an equal keyring (a worker's copy) is the same one
        if digest is not None and _keyring_digest(keyring) != digest:
            raise UsageError(f"{caller} was given another keyring than expect_keyring or check_part: pages were checked "
                             "with the expected one; pass that same Keyring (or a copy of its rows)")

    def finish(self, keyring: Keyring | None = None, *, lazy: bool = False) -> Report:
        """The report, once; after ``expect_keyring`` or ``check_part``, ``keyring`` must be the one
        they named (``UsageError``). A second ``finish`` raises ``UsageError``."""
        with self._lock:
            if self._sealed == "finish":
                raise UsageError("finish was called already: a Verification gives one report; start a new one")
            self._same_keyring(_keyring_arg(keyring, "finish"), "finish")
            self._sealed = "finish"
            with gc_paused():
                return self._finish(keyring, lazy)

    @property
    def keyring(self) -> Keyring | None:
        """The keyring ``finish`` verified with."""
        return self._run.keyring

    def event_facts(self, conversations: Collection[str] | None = None) -> list[EventFacts]:
        """After ``finish``: per event, in report index order, what the report does not carry but a
        ledger records (the event's digest, signature version, embedded keys, what it deletes and
        whether its signer is a member); ``conversations``: only theirs (a part of a larger run).
        ``UsageError`` after ``expect_keyring(facts=False)``, which kept none of it."""
        if not self._run.keep_facts:
            raise UsageError("event_facts: expect_keyring(facts=False) said they would not be asked for, "
                             "so they were not kept")
        if conversations is not None:  # any id form, as the report names them (round 88: "B-A" selected nothing)
            refuse_one_value(conversations, "event_facts", "conversation ids")
            conversations = {canonical_conversation(cid) or "unknown" for cid in conversations}
        with gc_paused():
            return self._run.event_facts(conversations)

    def ended_conversations(self) -> set[str]:
        """Conversations fetched to their end: a page of theirs carried no ``next_token`` (it is the
        oldest page) and nothing marked them incomplete. A ledger judges the whole of their history."""
        return {cid for cid in self._run.ended if cid not in self._run.incomplete}

    def credit_end(self, conversations: Iterable[str]) -> None:
        """A caller walked one history to its oldest page (an audit's, or saved evidence's): it ended
        each conversation its events were reported under. Why: that oldest page may be empty and name
        no conversation (a bare user id whose metadata is unavailable), so ``load_page`` could not
        credit it, and a ledger would not judge the events dropped from the start (review 57)."""
        refuse_one_value(conversations, "credit_end", "conversation ids")  # (round 88: one id took each character)
        self._run.ended.update(canonical_conversation(cid) or "unknown" for cid in conversations)

    def note_fetch(self, conversations: Iterable[str], times: Iterable[object]) -> None:
        """The pages of one walk (an audit's, saved evidence's) were fetched at ``times``: for the
        conversations its events were reported under (``fetched_conversations``), in any id form,
        kept under the report's (review 94: "B-A" was kept as given, so the ledger found no fetch time
        for the report's "A:B" and timed it by the run's earliest page; one id alone was taken a
        character at a time)."""
        refuse_one_value(conversations, "note_fetch", "conversation ids")
        refuse_one_value(times, "note_fetch", "fetch times")
        times = list(times)
        for cid in conversations:
            self._fetch_times.setdefault(canonical_conversation(cid) or "unknown", []).extend(times)

    def fetched_conversations(self) -> dict[str, str | None]:
        """Per conversation, when its pages were fetched (the earliest; None when one is unknown)."""
        from .clock import earliest_utc
        return {cid: earliest_utc(times) for cid, times in self._fetch_times.items()}

    def _finish(self, keyring: Keyring | None, lazy: bool) -> Report:
        self._run.keyring = keyring
        return self._run.execute(lazy)

    # ------------------------------------------------------------ parts of a larger run
    # ``verifier.archive`` verifies one run's pages in several processes: each part decodes its pages
    # and checks their signatures (``check_part``), a coordinator places the parts in the run
    # (``part_facts``, ``rebase``), the parts conclude the conversations they hold whole and hand
    # the columns rows of the others to a join (``conclude_part``, ``take``, ``joined``), and a shell
    # Verification on the coordinator assembles the Report (``adopt_parts``, ``finish_parts``).
    # ``finish`` itself runs the same steps in one process, so both give the same report.

    def check_part(self, keyring: Keyring | None) -> None:
        """Decode done: check every signature now (the per-event work that needs no other event).
        The keyring is not kept (a part may travel between processes). After ``expect_keyring``
        it must be the expected one (``UsageError``)."""
        self._same_keyring(_keyring_arg(keyring, "check_part"), "check_part")
        if self._expected is None:  # finish must report the keyring the signatures were checked with
            self._expected, self._expected_digest = (keyring,), None
        self._sealed = self._sealed or "check_part"
        run = self._run
        run.keyring = keyring
        with gc_paused():
            run.check_signatures()
        run.keyring = None

    def part_facts(self) -> PartFacts:
        """After ``check_part``: what a coordinator needs to place this part in the whole run."""
        run = self._run
        conversations = [run.conversation[page.first_index - run.base] if page.event_count else None
                         for page in run.inputs]
        slots = {slot: frozenset(identities) for slot, identities in slots_of(run.carriers).items()}
        return PartFacts(list(run.inputs), conversations, slots, run.used_key_versions(), set(run.ended),
                         copy.deepcopy(run.page_ends))

    def rebase(self, first_index: int) -> None:
        """Number this part's events from ``first_index`` (its place in the whole run); idempotent.
        The columns are not touched: an event's report index is ``first_index`` + its row."""
        run = self._run
        delta = first_index - run.base
        if delta:
            run.inputs = [msgspec.structs.replace(i, first_index=i.first_index + delta) for i in run.inputs]
            run.base = first_index

    def conclude_part(self, keyring: Keyring | None, conversations: Collection[str] | None,
                      shared_keys: Mapping[KeySlot, Collection[bytes]], incomplete: Mapping[str, list[str]],
                      ) -> tuple[dict[str, ConversationReport], list[tuple[str, str]]]:
        """Chain, reviews and reports of the conversations this part holds whole (None: all of
        them), each with its own verdict; and the reviewers' run-level findings. ``UsageError``
        before ``check_part`` (round 88: the checks still pending read as the last one made, a
        forged event ``valid``)."""
        run = self._run
        self._checked("conclude_part")
        self._same_keyring(_keyring_arg(keyring, "conclude_part"), "conclude_part")  # the one check_part used
        run.keyring = keyring
        run.incomplete = {cid: list(reasons) for cid, reasons in incomplete.items()}
        with gc_paused():
            return run.conclude(conversations, shared_keys, lazy=False)

    def take(self, conversations: Collection[str]) -> list[Row]:
        """The columns rows of this part's events of ``conversations`` (those other parts also
        hold), for ``joined``; the part itself is unchanged. ``UsageError`` before ``check_part``."""
        self._checked("take")
        return self._run.take(conversations)

    def _checked(self, caller: str) -> None:
        if not self._run.signatures_checked:
            raise UsageError(f"{caller} before check_part: the signatures of this part are not all checked "
                             "(expect_keyring checks them in batches as pages arrive; check_part checks the rest)")

    @classmethod
    def joined(cls, parts: Iterable[Iterable[Row]], **options: Any) -> Verification:
        """One Verification over rows taken from several checked parts (their signatures stay),
        in run order; ready for ``conclude_part``."""
        joined = cls(**options)
        joined._run.join(sorted((row for part in parts for row in part), key=lambda row: row.report_index))
        return joined

    def absorb(self, part: Verification) -> None:
        """Append a part checked with ``check_part`` (in another process: ``verifier.parallel``)
        whose pages follow those added so far; ``finish`` then gives the report one process adding
        every page would give. Both must expect the same keyring with ``facts`` alike (``UsageError``
        otherwise; round 88: a part checked with another keyring was reported as checked with this
        one's, and a keyring trusting nobody passed)."""
        theirs = part._expected_keyring_digest()
        ours = self._expected_keyring_digest()
        if theirs is None or theirs != ours:
            raise UsageError("absorb: the part was not checked with the keyring this Verification expects "
                             "(expect_keyring(K) here, check_part(K) there, with the same K)")
        with self._lock, gc_paused():
            self._open("absorb")
            self._run.absorb(part._run)
        self._pages += part._pages

    def _expected_keyring_digest(self) -> bytes | None:
        """The digest of the keyring this Verification expects (``expect_keyring``, ``check_part``,
        or kept through pickling), None when it expects none."""
        if self._expected is not None:
            if self._expected_digest is None:
                self._expected_digest = _keyring_digest(self._expected[0])
            return self._expected_digest
        return getattr(self, "_expected_digest", None)

    def adopt_parts(self, inputs: list[InputReport], events: int) -> None:
        """(The coordinator's shell.) Pages verified elsewhere: their inputs, in run order, and how
        many events they hold; ``add_input_error`` and the rest then work as after ``add_page``."""
        self._run.inputs += inputs
        self._run.elsewhere += events

    def finish_parts(self, keyring: Keyring | None, conversations: Mapping[str, ConversationReport],
                     reviewed: list[tuple[str, str]], used_key_versions: Collection[str]) -> Report:
        """(The coordinator's shell.) The Report from the parts' conversations (in first-event order)."""
        self._run.keyring = keyring
        return self._run.assemble(conversations, reviewed, set(used_key_versions))


_NOT_THE_LAST = ("none of its pages is the last one (each has a next_token): the older events it leads to were "
                 "not given")
_LISTED_PAGES = 5


def paging_reasons(ends: PageEnds) -> dict[str, list[str]]:
    """Page files: why each conversation's history is not the whole one, by what its own pages say.
    Its oldest page (no next_token) must be among them, and no page may say that more events exist
    than it gave (``DecodedPage.unfinished``). A last page without data events (empty, or only key
    changes in ``meta``) ends its conversation (one that names none: the run's only one) only if
    that one holds an event that claims to be its first (no previous_sequence_id), or no data event
    at all (an empty history): else a missing page before it would go unseen. (Newer events than
    the first page given cannot be known offline: ``audit`` starts at the newest page.)"""
    paged, last_pages, empty_ends, firsts = ends.unfinished, ends.last_pages, ends.empty_ends, ends.firsts
    only = next(iter(paged)) if "unknown" in empty_ends and len(paged) == 1 else None
    out: dict[str, list[str]] = {}
    for cid, said in paged.items():
        unfinished = [*dict.fromkeys(said)]  # a page file given twice says it once (as every path reports it)
        reasons = unfinished[:_LISTED_PAGES]
        if len(unfinished) > _LISTED_PAGES:
            reasons.append(f"and {len(unfinished) - _LISTED_PAGES} more pages say events are missing")
        # an empty last page ends what reaches a first event, or a conversation with no data event at
        # all (an empty history: ``allow_empty`` judges it)
        reaches_first = cid in firsts or cid not in ends.with_data
        if cid not in last_pages and not ((cid in empty_ends or cid == only) and reaches_first):
            reasons.append(_NOT_THE_LAST)
        if reasons:
            out[cid] = reasons
    return out


def no_data_events(in_meta: int) -> str:
    """``no_events`` of a conversation whose events all came in ``meta.conversation_key_events``: key
    changes "that apply to this page's messages but happened before it" (docs/spec xapi.md) start no
    history, so an empty ``data`` is an empty history whatever ``meta`` adds (round 97: the server that
    hid every message and served the key change in ``meta`` passed, where ``data: []`` alone failed)."""
    return (f"the conversation has no events: its {in_meta} key change(s) came only in "
            "meta.conversation_key_events, outside the history")


def nothing_proven(data: int, in_meta: int) -> str:
    """``nothing_proven``: the history's own events count, not the key changes given only in ``meta``."""
    return f"none of its {data} events has a proven signature" + \
        (f" ({in_meta} key change(s) given only in meta.conversation_key_events prove nothing of the history)"
         if in_meta else "")


@contextmanager
def gc_paused() -> Iterator[None]:
    """The engine allocates many small acyclic objects: the cyclic collector is paused while it
    runs (for a whole ``verify_pages``, not page by page). It is re-enabled even on error."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_gc_paused = gc_paused  # the name the ledger imports


@dataclass(frozen=True)
class Policy:
    """The trust choices of a run. Each ``allow_*`` is an explicit opt-in to a weaker claim; the
    report then says so (an info finding and the verdict line) instead of failing."""

    allow_embedded_keys: bool = False  # verify signers with keys carried in the events themselves
    allow_empty: bool = False  # an empty history, or one with no provable signature, may pass
    allow_partial: bool = False  # a history not fetched to its end may pass
    strict: bool = False  # warnings fail too

    def __post_init__(self) -> None:
        """Each a bool (round 88: ``allow_partial="false"``, a configuration's text, was true, and an
        incomplete history passed)."""
        for name in ("allow_embedded_keys", "allow_empty", "allow_partial", "strict"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise UsageError(f"{name} must be True or False, not {type(value).__name__} {value!r:.40}")

    def severity(self, code: str) -> str:
        allowed = ALLOWED_BY.get(code)
        if allowed is not None and getattr(self, allowed):
            return Severity.INFO.value
        return (FINDING_SEVERITY.get(code) or STATUS_SEVERITY[code]).value


def _severity(code: str, severity: str | None) -> str:
    sev = severity or FINDING_SEVERITY.get(code) or STATUS_SEVERITY[code]
    return str(getattr(sev, "value", sev))


class _Run:
    """The state of one verification, in columns (``verifier.columns``)."""

    def __init__(self, conversation_keys: Mapping[str, bytes], policy: Policy, expected: str, limits: Limits,
                 workers: int | None, reviewers: tuple[Reviewer, ...]) -> None:
        self.keyring: Keyring | None = None
        self.conversation_keys = {version_key(k): v for k, v in conversation_keys.items()}
        self.scoped_keys: dict[str, dict[str, bytes]] = {}  # conversation -> version -> key (reviewers')
        self.scoped_keys_merged: dict[str, dict[str, bytes]] = {}  # with the keys given for all (_keys_of)
        self.policy = policy
        self.allow_embedded = policy.allow_embedded_keys
        self.strict = policy.strict
        self.expected = expected
        self.limits = limits
        self.workers = workers if workers is not None else default_workers()
        self.reviewers = reviewers
        self.keep_facts = True  # keep what event_facts gives the ledger (not needed by verify_pages)
        self.kept_kinds = self._kept_kinds()
        self.group_kinds: frozenset[str | None] = frozenset().union(
            *(getattr(r, "group_reads_kinds", ()) for r in reviewers))
        self.eager = False  # signatures checked as pages arrive (keyring known, no reviewer learns keys)
        self.inputs: list[InputReport] = []
        self.expected_conversations: dict[str, None] = {}  # asked for by the caller, in order
        self.incomplete: dict[str, list[str]] = {}
        self.users: dict[str, None] = {}
        self.ended: set[str] = set()  # conversations a page without next_token (the oldest) came for
        self.judge_paging = True  # ``Verification(judge_paging=...)``
        self.page_ends = PageEnds()  # what pages say of their conversations' ends
        # a part of a larger run (``Verification.check_part`` ...): its place in the run
        self.base = 0  # report index of the first row (``rebase``)
        self.indices: array[int] | None = None  # a join's rows: the report index of each row
        self.positions: dict[int, int] = {}  # a join's rows: report index -> row
        self.elsewhere = 0  # events of this run verified in parts elsewhere (the coordinator's shell)
        self.signatures_checked = False
        # columns, one entry per event (a "row"; its report index is ``index_of(row)``)
        self.count = 0
        self.seq, self.prev, self.message_id, self.created = Ids(), Ids(), Ids(uuids=True), Ids()
        self.sender: Interned[str | None] = Interned()
        self.conversation: Interned[str] = Interned()
        self.kind: Interned[str | None] = Interned()
        self.key_version: Interned[str | None] = Interned()
        self.signature_version: Interned[str | None] = Interned()
        self.embedded: Interned[tuple[tuple[str, str, str], ...]] = Interned()
        self.check_codes: dict[tuple[str, str], int] = {}  # one Check object per distinct outcome
        self.check_objects: list[Check] = []
        self.loud_checks: list[bool] = []  # per check object: has its status a severity (``event_reports``)
        self.check_texts: tuple[list[str | None], list[str]] = ([None], [""])  # ``_check_texts``'
        self.valid_codes: dict[str, int] = {}  # detail -> ``_check_code`` of a valid Check (``_check_jobs``)
        self.sig_codes = array("I")  # 1 + the check's code; 0 while pending
        self.trusted = bytearray()
        self.flags = bytearray()
        self.digests = bytearray()  # SHA-256 of each encoded event (32 bytes each)
        self.findings: dict[int, list[tuple[int, Finding]]] = {}
        self.staged: dict[tuple[int, str, str | None, str], tuple[int, Finding]] = {}  # ``add``'s, shared
        self.kept: dict[int, MessageEvent] = {}  # decoded events a reviewer reads
        self.waiting: dict[int, bytes] = {}  # encoded events whose signature waits for the keys
        self.carriers: dict[tuple[str, str, str], array[int]] = {}  # embedded key -> rows carrying it
        self.chain_codes = bytearray()  # per row, set by ``conclude``
        self.chain_details: dict[int, tuple[str, bool]] = {}
        self.jobs: list[tuple[int, Job]] = []
        self.text_limit = limits.max_event_bytes * 4 // 3 + 4  # ``decode_event_b64``'s bound on the text
        self.usual_details: dict[tuple[str | None, str | None, str | None], str] = {}  # ``_usual_detail``'s
        # ``_signer``'s, by signer fields; emptied at every page (the caller may change the keyring's
        # rows between pages) and wherever ``keyring`` or ``carriers`` may change
        self.signers: dict[tuple[str | None, ...], _Signer] = {}
        self.pool: ThreadPoolExecutor | None = None

    @property
    def records(self) -> Records:
        """Every row as a ``Record``, made when asked for: one kept here would tie the run in a cycle
        that only the (paused) collector frees, and a joined part must be freed at once."""
        return Records(self)

    def _kept_kinds(self) -> frozenset[str | None] | None:
        """The kinds whose decoded events are kept (None: every kind): what the reviewers read, key
        changes when conversation keys are given, and what event_facts reads (deletes, and the
        group changes that say whether their signer is a member)."""
        kinds = [getattr(r, "reads_kinds", None) for r in self.reviewers]
        if any(k is None for k in kinds):
            return None
        always = {*([KEY_CHANGE] if self.conversation_keys else []),
                  *(DELETE_KINDS + _MEMBERSHIP if self.keep_facts else ())}
        return frozenset(always).union(*kinds)  # type: ignore[arg-type]

    def know_keyring(self, keyring: Keyring | None, facts: bool | None = None) -> None:
        """The keys are known before the first page: check signatures as pages arrive.
        ``facts``: whether event_facts will be asked for (default: as set in ``keep_facts``)."""
        if facts is not None:
            self.keep_facts = facts
        self.kept_kinds = self._kept_kinds()
        self.keyring = keyring
        self.signers = {}  # made with the keyring before
        self.eager = self.kept_kinds is not None

    @property
    def event_total(self) -> int:
        """Events of the run so far: before this part, in it, and verified elsewhere."""
        return self.base + self.count + self.elsewhere

    def index_of(self, at: int) -> int:
        """The report index of a row."""
        return self.base + at if self.indices is None else self.indices[at]

    def row_of(self, index: int) -> int:
        """The row of a report index (the inverse of ``index_of``)."""
        return index - self.base if self.indices is None else self.positions[index]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def add(self, index: int, stage: int, code: str, message: str, severity: str | None = None) -> None:
        key = (stage, code, severity, message)
        staged = self.staged.get(key)
        if staged is None:  # one object per distinct finding: a million malformed events share a few
            staged = (stage, Finding(code, _severity(code, severity), message))
            if len(self.staged) < _STAGED_KEPT:
                self.staged[key] = staged
        self.findings.setdefault(index, []).append(staged)

    def event_of(self, index: int) -> MessageEvent | None:
        event = self.kept.get(index)
        if event is not None or not self.flags[index] & _DECODED_OK:
            return event
        return MessageEvent(kind=self.kind[index])  # a kind no reviewer reads: the kind alone

    # ---------------------------------------------------------------- pages
    def load_page(self, page: DecodedPage) -> None:
        first = self.count
        self.signers = {}  # each page's signers read the keyring's rows as they are now, as ``prepare`` does
        rows = _PageRows()
        events = self._decode_entries(page.entries, rows)
        rows.append_to(self)
        conversation = self._assign_conversation(first, canonical_conversation(page.conversation_id) or self.expected)
        if page.next_token is None and not page.errors and conversation != "unknown":
            self.ended.add(conversation)
        self._note_paging(page, conversation, self.count > first, not all(map(_FROM_META_OF, page.entries)))
        if None in rows.prev and conversation not in self.page_ends.firsts and _starts_history(rows):
            self.page_ends.firsts.add(conversation)
        if self.eager:
            taken = len(rows.leading[0]) if rows.leading is not None else 0  # ``_usual_page``'s jobs, first
            if taken:
                self.jobs.extend(zip(range(first, first + taken), events[:taken]))  # type: ignore[arg-type]
            for index, event in enumerate(events[taken:] if taken else events, first + taken):
                if isinstance(event, Job):  # the usual event's, made by ``_decode_entries``
                    self.jobs.append((index, event))
                else:
                    self._prepare(index, event)
            if len(self.jobs) >= _FLUSH:
                self._check_jobs()
        self.inputs.append(InputReport(encodable(page.source), self.index_of(first), self.count - first,
                                       [encodable(e) for e in page.errors], list(page.api_errors)))

    def _note_paging(self, page: DecodedPage, conversation: str, has_events: bool, has_data: bool) -> None:
        """What a page says of its conversation's end (``paging_reasons`` judges it). Only data
        events make a last page one "with events": key changes in ``meta`` do not (review 30: a last
        page of ``data: []`` and the key change in ``meta`` is an empty last page, and must not end a
        conversation whose middle pages are missing)."""
        last = page.next_token is None and not page.errors
        if not has_data and last and not page.unfinished:
            self.page_ends.empty_ends.add(conversation)  # an empty last page: it ends only what reaches a first event
        if conversation == "unknown" and not has_events:
            return
        ends = self.page_ends
        ends.unfinished.setdefault(conversation, []).extend(f"{encodable(page.source)}: {why}" for why in page.unfinished)
        if has_data:
            ends.with_data.add(conversation)
            if last:
                ends.last_pages.add(conversation)

    def _usual_allowed(self) -> bool:
        """May ``_decode_entries`` take this page's usual events: signatures checked as pages arrive, with a
        keyring, and no decoded ``MessageCreateEvent`` kept for a reviewer (its event is never built
        into anything but its row and its ECDSA job)."""
        kept = self.kept_kinds
        return self.eager and self.keyring is not None and kept is not None and _CREATE not in kept \
            and _CREATE not in self.group_kinds

    def _decode_entries(self, entries: list[RawEntry], rows: _PageRows) -> list[Job | MessageEvent | None]:
        """Each entry's row, into ``rows`` in order, and what ``load_page`` checks of it: the usual
        event's ECDSA ``Job``, any other's decoded event (``_decode``).

        The usual event at once: a signed ``MessageCreateEvent`` of a data item with one key info,
        canonical base64, read by the fast decoder, trusted, its envelope equal to it, its signer's
        key in the keyring and its payload the usual one: its row, its embedded keys and its ECDSA
        ``Job``, as ``_decode`` and ``_prepare`` would make them. Why: those two take about twenty
        Python calls an event for what is here one pass, in one loop a page (the page's bounds read
        once, no call an event to get there). Anything else, the moment it differs, goes to
        ``_decode`` with nothing changed (tests/test_usual.py)."""
        if not self._usual_allowed():
            return [self._decode(entry, rows) for entry in entries]
        decoded: list[Job | MessageEvent | None] = []
        text_limit, limits = self.text_limit, self.limits
        max_bytes = limits.max_event_bytes
        through_layouts = _wire.decode_event_fast is _layouts_decode  # (read from the module: the tests swap it)
        if through_layouts and len(entries) >= _PAGE_AT_ONCE:  # the page's data events (meta's come last) at once
            from_meta = list(map(_FROM_META_OF, entries))
            data = from_meta.index(True) if True in from_meta else len(entries)
            jobs = self._usual_page(entries[:data], rows) if _PAGE_AT_ONCE <= data <= _PAGE_AT_MOST else None
            if jobs is not None:
                decoded, entries = jobs, entries[data:]
        for entry in entries:
            text, item = entry.encoded, entry.item
            job = None
            if item is not None and not entry.from_meta and not entry.problem and text.__class__ is str \
                    and text.isascii() and len(text) <= text_limit:
                raw = _canonical_b64(text)
                if raw is not None and len(raw) <= max_bytes:
                    # pure Python: the fields through a remembered layout, no event built
                    found = _layouts.usual(raw, limits) if through_layouts else None
                    job = self._usual_job(item, rows, raw, *found) if found is not None \
                        else self._usual_event(item, rows, raw)  # (texts, is_trusted, contents)
            decoded.append(job or self._decode(entry, rows))
        return decoded

    def _usual_page(self, entries: list[RawEntry], rows: _PageRows) -> list[Job | MessageEvent | None] | None:
        """``_decode_entries`` of data entries that are all usual events of one remembered layout
        (pure Python), read together: their jobs, their rows into ``rows``, as ``_usual_job`` makes
        them one by one; None, having changed nothing, unless every one of them is usual.

        Why: ``_usual_job`` and what it calls cost some thirty Python steps an event; here each step
        is one C pass over a column of the page (its texts' base64, the layout's frame
        (``layouts.usual_page``), the envelopes compared as tuples, the payloads, the signatures),
        and Python works per page and per signer. ``tests/test_usual.py`` compares the reports."""
        items = list(map(_ITEM_OF, entries))
        texts = list(map(_ENCODED_OF, entries))
        if None in items or any(map(_PROBLEM_OF, entries)) or not all(map(is_, map(type, texts), repeat(str))) \
                or not "".join(texts).isascii() or max(map(len, texts)) > self.text_limit:
            return None
        raws = canonical_b64_all(texts)
        if raws is None or max(map(len, raws)) > self.limits.max_event_bytes:
            return None
        found = _layouts.usual_page(raws, self.limits)
        if found is None:
            return None
        (seqs, message_ids, senders, conversations, created, previous, key_versions_c, signature_texts, key_versions,
         signature_versions, signing_keys, members, member_versions, member_keys), trusted, contents = found
        count = len(entries)
        if trusted != b"\x01" * count:
            return None
        keys = list(zip(senders, key_versions, signature_versions, signing_keys, members, member_versions, member_keys))
        signers = dict.fromkeys(keys)  # each distinct signer, in the order of its first event
        for fields in signers:
            signer = self.signers.get(fields) or self._signer(fields)
            if signer is None:
                return None
            signers[fields] = signer
        if not _envelopes_agree(items, texts, found[0], keys):
            return None
        payloads = message_create_payloads(message_ids, senders, conversations, key_versions_c, contents)
        signatures = canonical_b64_all(list(signature_texts)) if payloads is not None else None
        if payloads is None or signatures is None:
            return None
        page_signers: list[_Signer] = list(map(signers.__getitem__, keys))  # type: ignore[arg-type]
        first = self.count
        self.count += count
        self.digests += sha256_all(raws)
        self._carry(page_signers, list(signers.values()), first)  # type: ignore[arg-type]
        if self.keep_facts:
            self.embedded.append_all(list(map(_SIGNER_EMBEDDED, page_signers)))
        rows.leading = [list(seqs), list(previous), list(message_ids), list(created),
                        list(map(_SIGNER_SENDER, page_signers)), [_TRUSTED[True]] * count, [_CREATE] * count,
                        list(conversations), list(map(_SIGNER_KEY_VERSION, page_signers)),
                        list(map(_SIGNER_SIGNATURE_VERSION, page_signers)), [_USUAL_FLAGS] * count]
        return list(map(Job, map(_SIGNER_KEY, page_signers), signatures, payloads, map(_SIGNER_DETAIL, page_signers)))

    def _carry(self, page_signers: list[_Signer], signers: list[_Signer], first: int) -> None:
        """The rows ``first`` on, of ``page_signers``' events, appended to the rows arrays of the keys
        their signers carry, as ``_usual_job`` appends them an event at a time: each signer's first
        event notes its keys (in that order), and an array carried by several signers, or twice by
        one, gets its rows in order, each as often as it is carried."""
        rows = range(first, first + len(page_signers))
        gathered: dict[int, tuple[array[int], list[Iterable[int]]]] = {}
        for signer in signers:
            carried = signer.carried if signer.carried is not None else signer.note(self.users, self.carriers)
            own = rows if len(signers) == 1 else list(compress(rows, map(is_, page_signers, repeat(signer))))
            for rows_of_key in carried:
                gathered.setdefault(id(rows_of_key), (rows_of_key, []))[1].append(own)
        for rows_of_key, parts in gathered.values():
            rows_of_key.extend(parts[0] if len(parts) == 1 else sorted(chain.from_iterable(parts)))

    def _usual_event(self, item: Any, rows: _PageRows, raw: bytes) -> Job | None:
        """``_decode_entries``'s usual event read by the fast decoder (compiled, or pure Python where no
        remembered layout gives its fields): its ``Job``, or None having changed nothing."""
        event = _wire.decode_event_fast(raw, self.limits)
        if event is None or event.kind != _CREATE or event.trailing or event.shadowed or event.signature is None \
                or event.body is None:
            return None
        sig, body = event.signature, event.body
        infos = sig.message_signing_key_info_list
        if infos is None or len(infos) != 1:
            return None
        info = infos[0]
        fields = (event.sequence_id, event.message_id, event.sender_id, event.conversation_id, event.created_at_msec,
                  event.previous_sequence_id, body.get("conversation_key_version"), sig.signature,
                  sig.public_key_version, sig.signature_version, sig.signing_public_key, info.member_id,
                  info.public_key_version, info.signing_public_key)  # layouts.usual's
        return self._usual_job(item, rows, raw, fields, event.is_trusted, body.get("contents"))

    def _usual_job(self, item: Any, rows: _PageRows, raw: bytes, fields: tuple[Any, ...], trusted: bool | None,
                   contents: object) -> Job | None:
        """The usual event's second half, on its fields as ``layouts.usual`` gives them:
        its envelope, then the checks ``prepare`` makes of a ``MessageCreateEvent``, all the usual
        way, then its row, its embedded keys (as ``_note_keys``) and its job; None, having changed
        nothing, at the first that is not."""
        seq, message_id, sender, conversation, created, previous, key_version_c, signature_text, \
            key_version, signature_version, signing_key, member, member_version, member_key = fields
        if trusted is False or signature_text is None or not signature_text.isascii():
            return None  # untrusted (a finding), unsigned: ``_decode`` and ``prepare`` say so
        # the envelope: ``envelope.agrees``'s first test (the API's usual item), on the fields
        if (item.sender_id, item.conversation_id, item.sequence_id, item.previous_sequence_id, item.id,
                item.is_trusted, item.created_at_msec) != (sender, conversation, seq, previous, seq, trusted, created) \
                or item.conversation_token is not None or item.previous_id is not None or item.created_at is not None:
            return None
        js = item.message_event_signature
        if js is not None:  # equal to the event's field by field (a struct's ``==``), its one key info too
            listed = js.message_signing_key_info_list
            if listed is None or len(listed) != 1:
                return None
            info = listed[0]
            if (js.signature, js.public_key_version, js.signature_version, js.signing_public_key, info.member_id,
                    info.public_key_version, info.signing_public_key) != (signature_text, key_version,
                                                                          signature_version, signing_key, member,
                                                                          member_version, member_key):
                return None
        fields = (sender, key_version, signature_version, signing_key, member, member_version, member_key)
        signer = None
        if len(self.signers) <= _SCANNED_SIGNERS:  # a page's few signers compared, not hashed: the
            for known in self.signers.values():  # event's texts are new strings, hashed anew
                if known.fields == fields:
                    signer = known
                    break
        else:
            signer = self.signers.get(fields)
        if signer is None:
            signer = self._signer(fields)
        payload = _create_payload(message_id, sender, conversation, key_version_c, contents)
        if signer is None or payload is None:
            return None
        signature = _canonical_b64(signature_text)
        if signature is None:
            return None
        index = self.count
        self.count += 1
        self.digests += hashlib.sha256(raw).digest()
        carried = signer.carried
        if carried is None:  # its first event: its users and carriers noted, in ``_note_keys``'s order
            carried = signer.note(self.users, self.carriers)
        for rows_of_key in carried:
            rows_of_key.append(index)
        if self.keep_facts:
            self.embedded.append(signer.embedded)
        rows.add((seq, previous, message_id, created, signer.sender, _TRUSTED[trusted], _CREATE, conversation or "",
                  signer.key_version, signer.signature_version, _USUAL_FLAGS))
        return Job(signer.key, signature, payload, signer.detail)

    def _signer(self, fields: tuple[str | None, ...]) -> _Signer | None:
        """The usual event's signer, made once per distinct signer ``fields`` (sender, key version,
        signature version, signing key, and the key info's member, key version and key) and kept (up
        to ``_STAGED_KEPT``): its detail, its trusted key, its embedded keys. None where ``prepare``
        or ``select_key`` must decide (a refused signature version, no usable keyring row)."""
        sender, key_version, signature_version, signing_key, member, member_version, member_key = fields
        detail = self.usual_details.get((signature_version, sender, key_version)) or \
            self._usual_detail(signature_version, sender, key_version)
        trusted_key = self.keyring.keys.get((sender or "", key_version or ""))  # type: ignore[union-attr]
        if detail is None or trusted_key is None or trusted_key.key is None \
                or trusted_key.status == _BINDING_INVALID:  # (``select_key``'s keyring row, inline)
            return None
        triples = ((member, member_version or "", member_key) if member is not None and member_key is not None
                   else None, (sender, key_version or "", signing_key) if signing_key is not None and sender is not None
                   else None)  # ``embedded_keys``'s, in its order
        signer = _Signer(fields, detail, trusted_key.key, tuple(triple for triple in triples if triple is not None))
        if len(self.signers) < _STAGED_KEPT:
            self.signers[fields] = signer
        return signer

    def _usual_detail(self, signature_version: str | None, sender: str | None, key_version: str | None) -> str | None:
        """``prepare``'s detail of a valid signature, made once per signer and versions; None where
        the signature version is refused (``prepare`` says why)."""
        version, note = parse_signature_version(signature_version)
        if version < MIN_SIGNATURE_VERSION:
            return None
        detail = f"v{version}{f' ({note})' if note else ''}, key {sender}/{key_version or ''}"
        if len(self.usual_details) < _STAGED_KEPT:
            self.usual_details[(signature_version, sender, key_version)] = detail
        return detail

    def _decode(self, entry: RawEntry, rows: _PageRows) -> MessageEvent | None:
        """One event's row, into ``rows`` (its columns are appended a page at a time)."""
        index = self.count
        self.count += 1
        if entry.problem:
            self.add(index, _DECODED, Code.ENVELOPE_MISMATCH, entry.problem)
        event: MessageEvent | None = None
        malformed = ""
        raw: bytes | None = None
        if entry.encoded is None:
            malformed = "encoded_event is missing"
        else:
            try:
                raw, event = decode_event_b64(entry.encoded, self.limits)
            except MalformedEvent as exc:
                malformed = str(exc)
            except RecursionError:  # defence in depth; the depth limit should stop this first
                malformed = "nesting too deep"
        self.digests += hashlib.sha256(raw if raw is not None else repr(entry.encoded).encode()).digest()
        item = entry.item
        signature = None
        created: str | int | None
        if event is not None:
            seq, prev, message_id, created = event.sequence_id, event.previous_sequence_id, event.message_id, \
                event.created_at_msec
            sender, trusted, kind, conversation = event.sender_id, event.is_trusted, event.kind, event.conversation_id
            signature = event.signature
            if event.trailing or event.shadowed:
                self._structure_findings(index, event)
        else:
            seq = item.seq if item is not None else None
            prev = item.prev if item is not None else None
            message_id, kind = None, None
            created = item.created_at_msec if item is not None else None
            sender = item.sender_id if item is not None else None
            trusted = item.is_trusted if item is not None else None
            conversation = item.conversation_id if item is not None else None
        if sender:
            self.users.setdefault(sender)
        flags = (_FROM_META if entry.from_meta else 0) | (_NOT_ENCODED if entry.encoded is None else 0)
        if event is not None:
            flags |= _DECODED_OK
            if kind == KEY_CHANGE:
                flags |= _IS_KEY_CHANGE
            if must_be_signed(kind):
                flags |= _SIGNED_KIND
            if entry.from_meta and kind != KEY_CHANGE:
                self.add(index, _DECODED, Code.META_NOT_KEY_CHANGE, f"meta.conversation_key_events carries a "
                                                                   f"{kind or 'detail-less event'}, not a key change")
        self._note_keys(index, event)
        rows.add((seq, prev, message_id, created if isinstance(created, str) or created is None else str(created),
                  sender, _TRUSTED[trusted], kind, conversation or "",  # the page's replaces it (_assign_conversation)
                  signature.public_key_version if signature is not None else None,
                  signature.signature_version if signature is not None else None, flags))
        if trusted is False or (item is not None and item.is_trusted is False):
            self.add(index, _DECODED, Code.UNTRUSTED, "is_trusted is false")
        if event is not None and item is not None:
            for problem in envelope_differences(item, event):
                self.add(index, _DECODED, Code.ENVELOPE_MISMATCH, problem)
        if event is None:
            rows.checks.append((index, Check(SigStatus.MALFORMED, malformed)))
        elif self.kept_kinds is None or kind in self.kept_kinds or (
                kind in self.group_kinds and conversation is not None and ":" not in conversation):
            self.kept[index] = event
        elif not self.eager and raw is not None:
            self.waiting[index] = raw  # decoded again once the keys are known
        return event

    def _note_keys(self, index: int, event: MessageEvent | None) -> None:
        triples = embedded_keys(event)
        if self.keep_facts:
            self.embedded.append(tuple(triples))
        carriers, users = self.carriers, self.users
        for triple in triples:
            users.setdefault(triple[0])
            rows = carriers.get(triple)
            if rows is None:  # (not setdefault: that would build an array for every key of every event)
                rows = carriers[triple] = array("I")
            rows.append(index)

    def event_facts(self, conversations: Collection[str] | None) -> list[EventFacts]:
        """``Verification.event_facts``: the rows of ``conversations`` (None: every row)."""
        rows: Sequence[int] = range(self.count)
        if conversations is not None:
            wanted = {self.conversation.code(cid) for cid in conversations}
            codes = self.conversation.codes()
            rows = array("I", (at for at in rows if codes[at] in wanted))
        members: dict[int, bool | None] = {}
        kinds = self.kind.codes()
        deletes = {self.kind.code(kind) for kind in DELETE_KINDS}
        if any(kinds[at] in deletes for at in rows):
            from .semantics import delete_signers
            members = delete_signers(Records(self, rows), DELETE_KINDS)
        return [self.facts(at, members.get(self.index_of(at))) for at in rows]

    def facts(self, at: int, member: bool | None = None) -> EventFacts:
        kind, event = self.kind[at], self.kept.get(at)
        deletes: tuple[str, ...] = ()
        clear = None
        if kind == "MessageDeleteEvent" and event is not None:
            deletes = tuple(i for i in (event.body or {}).get("sequence_ids") or () if isinstance(i, str))
        elif kind == "ConversationDeleteEvent" and event is not None:
            options = (event.body or {}).get("options")
            options = options if isinstance(options, dict) else {}
            everything, until = options.get("clear_all_messages"), options.get("sort_order_msec")
            clear = ClearOptions(everything if isinstance(everything, bool) else None,
                                 until if isinstance(until, int) and not isinstance(until, bool) else None)
        digest = b"" if self.flags[at] & _NOT_ENCODED else bytes(self.digests[32 * at:32 * at + 32])
        return EventFacts(self.index_of(at), digest, self.signature_version[at], self.embedded[at], deletes,
                          clear, member)

    # ---------------------------------------------------------------- a part's rows to a join
    def take(self, conversations: Collection[str]) -> list[Row]:
        wanted = {self.conversation.code(cid) for cid in conversations}
        codes = self.conversation.codes()
        rows = [at for at in range(self.count) if codes[at] in wanted]
        keys: dict[int, list[tuple[str, str, str]]] = {}
        if not self.keep_facts:  # the embedded keys are known from the carriers alone
            chosen = set(rows)
            for triple, carriers in self.carriers.items():
                for at in carriers:
                    if at in chosen:
                        keys.setdefault(at, []).append(triple)
        return [Row(self.index_of(at), self.conversation[at], self.seq[at], self.prev[at], self.message_id[at],
                    self.created[at], self.sender[at], self.kind[at], self.key_version[at],
                    self.signature_version[at] if self.keep_facts else None,
                    self.embedded[at] if self.keep_facts else tuple(keys.get(at, ())),
                    self.check_objects[self.sig_codes[at] - 1], self.trusted[at], self.flags[at],
                    bytes(self.digests[32 * at:32 * at + 32]), tuple(self.findings.get(at, ())), self.kept.get(at))
                for at in rows]

    def join(self, rows: Iterable[Row]) -> None:
        """The rows (in run order) as this run's columns, their signatures already checked."""
        self.indices = array("q")
        gathered = _PageRows()
        for row in rows:
            at = self.count
            self.count += 1
            self.indices.append(row.report_index)
            self.positions[row.report_index] = at
            gathered.add((row.seq, row.prev, row.message_id, row.created, row.sender, row.trusted, row.kind,
                          row.conversation, row.key_version, row.signature_version, row.flags))
            if self.keep_facts:
                self.embedded.append(row.keys)
            for triple in row.keys:
                self.carriers.setdefault(triple, array("I")).append(at)
            self.digests += row.digest
            if row.findings:
                self.findings[at] = list(row.findings)  # a copy: the part's rows stay as they were
            gathered.checks.append((at, row.check))
            if row.event is not None:
                self.kept[at] = row.event
        gathered.append_to(self)
        self.signatures_checked = True

    def absorb(self, part: _Run) -> None:
        """Append the rows of a checked part (the pages that follow this run's, decoded and checked
        in another process, ``verifier.parallel``) as if its pages had been added here: the
        columns, tables and first-seen orders are those one process would have built."""
        if part.jobs or part.waiting or not part.signatures_checked or part.base or part.indices is not None \
                or self.indices is not None or part.keep_facts != self.keep_facts:
            raise UsageError("only a checked part, numbered from 0, joins a run")
        offset = self.count
        self.count += part.count
        for mine, theirs in ((self.seq, part.seq), (self.prev, part.prev), (self.message_id, part.message_id),
                             (self.created, part.created)):
            mine.extend(theirs)
        tables: list[tuple[Interned[Any], Interned[Any]]] = [
            (self.sender, part.sender), (self.conversation, part.conversation), (self.kind, part.kind),
            (self.key_version, part.key_version), (self.signature_version, part.signature_version),
            (self.embedded, part.embedded)]
        for table, other in tables:
            table.extend(other)
        codes = [0, *(self._check_code(result) for result in part.check_objects)]  # 0: not checked
        self.sig_codes += part.sig_codes if codes == list(range(len(codes))) \
            else array("I", map(codes.__getitem__, part.sig_codes))
        self.trusted += part.trusted
        self.flags += part.flags
        self.digests += part.digests
        self.findings.update({at + offset: found for at, found in part.findings.items()})
        self.kept.update({at + offset: event for at, event in part.kept.items()})
        for triple, rows in part.carriers.items():
            self.carriers.setdefault(triple, array("I")).extend(array("I", [at + offset for at in rows]))
        for user in part.users:
            self.users.setdefault(user)
        self.ended |= part.ended
        self.page_ends.merge(part.page_ends)
        self.inputs += [msgspec.structs.replace(i, first_index=i.first_index + offset) for i in part.inputs]

    def _structure_findings(self, index: int, event: MessageEvent) -> None:
        """Bytes the SDK reads past or over: it verifies what it reads, but another reader of the same
        bytes could show something else, so the event fails (its signature status stays the SDK's)."""
        if event.trailing:
            self.add(index, _DECODED, Code.TRAILING_BYTES, f"{event.trailing} bytes after the end of the event are "
                                                          "ignored by every check")
        if event.shadowed:
            hidden = ", ".join(k for k in event.shadowed)
            self.add(index, _DECODED, Code.SHADOWED_DETAIL, f"the event carries its detail {len(event.shadowed) + 1} "
                                                           f"times; the SDK reads only the last "
                                                           f"({event.kind or 'none'}), hiding {hidden}")

    def _assign_conversation(self, first: int, expected: str) -> str:
        codes = self.conversation.codes()[first:self.count]
        if codes and codes.count(codes[0]) == len(codes):  # the usual page: one id, canonical once (no list of them)
            own = [canonical_conversation(self.conversation.value_of(codes[0]))] * len(codes)
            distinct: Collection[str] = own[:1]
        else:
            given = self.conversation.values(range(first, self.count))
            canonical = {cid: canonical_conversation(cid) for cid in dict.fromkeys(given)}  # a page's few ids, once each
            own, distinct = list(map(canonical.__getitem__, given)), canonical.values()
        if not expected:
            expected = _most_common_conversation(own, distinct)
        flags, kinds = self.flags, self.kind
        direct = one_to_one_members(expected) is not None
        self.conversation.set_range(first, self.count, expected)
        if own.count(expected) == len(own):  # the usual page, every event of its conversation: at once
            if direct and kinds.holds(GROUP_CREATE, first, self.count):
                self._foreign_group_creates(first, expected)
            return expected
        for index, conv in enumerate(own, first):
            if conv and conv != expected:
                self.add(index, _DECODED, Code.CONVERSATION_MISMATCH,
                         f"event of conversation {conv} delivered in a page of {expected}")
            elif direct and kinds[index] == GROUP_CREATE:  # review 70: shown as proven in a 1:1 history
                self._foreign_group_create(index, expected)
            elif not conv and flags[index] & _SIGNED_KIND:
                unbound = unbound_conversation(kinds[index], conv, expected)
                if unbound:
                    self.add(index, _DECODED, Code.CONVERSATION_MISMATCH, unbound)
        return expected

    def _foreign_group_creates(self, first: int, expected: str) -> None:
        """``_foreign_group_create`` of every GroupCreate from row ``first`` on, in order."""
        kinds = self.kind
        for index in range(first, self.count):
            if kinds[index] == GROUP_CREATE:
                self._foreign_group_create(index, expected)

    def _foreign_group_create(self, index: int, expected: str) -> None:
        self.add(index, _DECODED, Code.CONVERSATION_MISMATCH,
                 f"a GroupCreate in the 1:1 conversation {expected}: a GroupCreate's signature does not "
                 "bind the conversation id, and a 1:1 conversation is never created by one, so it is "
                 "another group's")

    # ---------------------------------------------------------------- signatures
    def _set_check(self, index: int, result: Check) -> None:
        self.sig_codes[index] = self._check_code(result)

    def _check_code(self, result: Check) -> int:
        """1 + the code of ``result``'s outcome (one Check object per distinct outcome)."""
        key = (result.status, result.detail)
        code = self.check_codes.get(key)
        if code is None:
            code = self.check_codes[key] = len(self.check_objects)
            self.check_objects.append(result)
        return 1 + code

    def _prepare(self, index: int, event: MessageEvent | None) -> None:
        if event is None:  # malformed: its check is set
            return
        keys = self.conversation_keys if not self.scoped_keys else self._keys_of(self.conversation[index])
        outcome = prepare(event, self.keyring, self.allow_embedded, keys,
                          lambda code, message: self.add(index, _DECODED, code, message))
        if isinstance(outcome, Check):
            self._set_check(index, outcome)
        else:
            self.jobs.append((index, outcome))

    def _keys_of(self, conversation: str | None) -> Mapping[str, bytes]:
        """The conversation keys for one conversation's events: a reviewer's keys for it, under the
        ones given for every conversation (review: a participant's key of one conversation checked
        another conversation's key change of the same version string, and failed it)."""
        keys = self.scoped_keys_merged.get(conversation or "")
        if keys is None:
            keys = self.scoped_keys_merged[conversation or ""] = {
                **self.scoped_keys.get(conversation or "", {}), **self.conversation_keys}
        return keys

    def _check_jobs(self) -> None:
        jobs, self.jobs = self.jobs, []
        batches = [jobs[start:start + _CHUNK] for start in range(0, len(jobs), _CHUNK)]
        if self.workers > 1 and len(batches) > 1:
            if self.pool is None:
                from concurrent.futures import ThreadPoolExecutor
                self.pool = ThreadPoolExecutor(self.workers)
            results = list(self.pool.map(_check_batch, batches))
        else:
            results = [_check_batch(batch) for batch in batches]
        codes, valid_codes = self.sig_codes, self.valid_codes
        for batch, checks in zip(batches, results):
            for (index, job), result in zip(batch, checks):
                if result is None:  # the usual outcome, valid, coded by its detail alone (no Check an event)
                    code = valid_codes.get(job.detail)
                    if code is None:
                        code = valid_codes[job.detail] = self._check_code(Check(_VALID, job.detail))
                else:
                    code = self._check_code(result)
                codes[index] = code

    def _check_waiting(self) -> None:
        """Keys are known now: every event not checked yet, in input order (waiting ones are decoded
        again, on the fast path)."""
        if self.eager:
            return
        waiting, self.waiting = self.waiting, {}
        codes = self.sig_codes
        for index in range(self.count):
            if codes[index] == 0:
                event = self.kept.get(index)
                self._prepare(index, event if event is not None else decode_event_bytes(waiting.pop(index), self.limits))
                if len(self.jobs) >= _FLUSH:
                    self._check_jobs()

    # ---------------------------------------------------------------- orchestration
    def execute(self, lazy: bool) -> Report:
        if self.judge_paging:
            for cid, reasons in paging_reasons(self.page_ends).items():
                self.incomplete[cid] = [*dict.fromkeys([*self.incomplete.get(cid, []), *reasons])]  # (finish twice)
        self.check_signatures()
        conversations, reviewed = self.conclude(None, None, lazy)
        return self.assemble(conversations, reviewed, self.used_key_versions())

    def check_signatures(self) -> None:
        """Every signature not checked yet (those checked as pages arrived are done)."""
        if self.signatures_checked:
            return
        try:
            if not self.eager:
                records = self.records
                for reviewer in self.reviewers:  # keys learned before any signature is checked
                    for slot, key in reviewer.conversation_keys(records, self.keyring).items():
                        if isinstance(slot, tuple):  # (conversation, version): that conversation's only
                            conversation, version = slot
                            self.scoped_keys.setdefault(conversation, {}).setdefault(version_key(version), key)
                        else:
                            self.conversation_keys.setdefault(version_key(slot), key)
            self._check_waiting()
            self._check_jobs()
        finally:
            self.close()
        self.signatures_checked = True
        self.signers = {}  # no page comes after this (nor travels with a part)

    def conclude(self, conversations: Collection[str] | None, shared_keys: Mapping[KeySlot, Collection[bytes]] | None,
                 lazy: bool) -> tuple[dict[str, ConversationReport], list[tuple[str, str]]]:
        """Key conflicts, reviews, chains and reports of the events of ``conversations`` (None: every
        event; a part's: whole conversations), each conversation with its own verdict (the run's
        is applied by ``assemble``); and the reviewers' run-level findings. ``shared_keys``: the
        embedded key identities the whole run saw per slot (a part decides as the run would)."""
        self._never_checked()
        codes = self.conversation.codes()
        groups: dict[int, Sequence[int]] = {}  # conversation code -> rows, in first-row order
        if conversations is None:
            if self.count and codes.count(codes[0]) == self.count:  # one conversation (the usual run): at once,
                groups[codes[0]] = range(self.count)  # as a range (``columns.picker`` takes its slice at once)
            else:
                groups.update(_rows_by_value(codes))
            carriers: Mapping[tuple[str, str, str], Iterable[int]] = self.carriers
            records = self.records
        else:
            groups.update(_rows_by_value(codes, {self.conversation.code(cid) for cid in conversations}))
            rows = set().union(*groups.values()) if groups else set()
            carriers = {triple: [at for at in idx if at in rows] for triple, idx in self.carriers.items()}
            records = Records(self, array("I", sorted(rows)))
        for at, message in carrier_conflicts(slots_of(carriers), self.keyring, shared_keys):
            self.add(at, _KEY_CONFLICTS, Code.KEY_CONFLICT, message)
        if conversations is None:
            self.carriers = {}
            self.signers = {}  # (their carriers were those)
        reviewed = [pair for reviewer in self.reviewers for pair in reviewer.review(records, self.keyring)]
        for found, _message in reviewed:
            check_finding(found)
        for code, members in groups.items():
            self._one_to_one_senders(self.conversation.value_of(code), members)
            self._signing_key_regressions(members)
        if len(self.chain_codes) != self.count:
            self.chain_codes = bytearray(self.count)
        return {self.conversation.value_of(code): self._conversation(self.conversation.value_of(code), members, lazy)
                for code, members in groups.items()}, reviewed

    def _never_checked(self) -> None:
        """Fail closed on a row whose signature was never checked (code 0 would read as the last
        check made: round 88, a forged event added after ``finish`` was ``valid``); no caller's path
        leaves one since, but the report must not depend on that."""
        if 0 in self.sig_codes:
            unchecked = Check(SigStatus.UNVERIFIABLE, "the signature was never checked")
            for at, code in enumerate(self.sig_codes):
                if code == 0:
                    self._set_check(at, unchecked)

    def _one_to_one_senders(self, cid: str, rows: Sequence[int]) -> None:
        """A 1:1 conversation's id names its two users: any signed event from anyone else (a message,
        key change, delete, settings or group change, read marker) is ``non_member_sender``, however
        valid its signature (a server could otherwise slip a third account's messages into a private
        conversation, and an audit would fetch that account's key itself). Groups:
        ``semantics.replay_membership``. Read from the columns, distinct senders first: a run of one
        conversation pays one pass over its rows."""
        pair = one_to_one_members(cid)
        if pair is None or not rows:
            return
        sender_codes, kind_codes = self.sender.codes(), self.kind.codes()
        foreign = {code for code in set(_at(sender_codes, rows)) if self.sender.value_of(code) not in pair}
        if not foreign:
            return
        judged = {code for code in set(_at(kind_codes, rows)) if must_be_signed(self.kind.value_of(code))}
        users = " and ".join(shown(user) for user in sorted(pair))
        for at in rows:
            if sender_codes[at] in foreign and kind_codes[at] in judged:
                self.add(at, _REVIEWED, Code.NON_MEMBER_SENDER, f"sender {shown(self.sender[at])} is not one of the "
                                                               f"two users of this 1:1 conversation ({users})")

    def _signing_key_regressions(self, rows: Sequence[int]) -> None:
        """``semantics.signing_key_regressions`` of one conversation's proven signatures. Read from
        the columns: a conversation whose senders each signed at one version (the usual) costs one
        pass that builds a set."""
        senders, versions = self.sender.codes(), self.key_version.codes()
        if _one_version_each(_at(senders, rows), _at(versions, rows), self.sender.distinct_count()):
            return
        pairs = set(zip(_at(senders, rows), _at(versions, rows)))
        several = {sender for sender, count in Counter(sender for sender, _version in pairs).items() if count > 1}
        if not several:
            return
        checks, sig_codes = self.check_objects, self.sig_codes
        events = [SignedEvent(at, self.seq[at], self.prev[at], self.sender[at], self.key_version[at],
                              senders[at] in several and checks[sig_codes[at] - 1].status == SigStatus.VALID)
                  for at in rows if self.seq[at]]
        for at, message in signing_key_regressions(events):
            self.add(at, _REVIEWED, Code.SIGNING_KEY_REGRESSED, message)

    def used_key_versions(self) -> set[Any]:
        """The conversation key versions the key changes of this run use."""
        return {e.body.get("conversation_key_version") for e in self._key_changes() if e.body}

    def assemble(self, reports: Mapping[str, ConversationReport], reviewed: list[tuple[str, str]],
                 used: set[Any]) -> Report:
        """The Report: run findings, conversations in order (those the caller expected, even
        without events, then those marked incomplete, then the rest in first-event order), verdicts."""
        run_findings = self._run_findings(used) + [self._finding(code, message) for code, message in reviewed]
        run_fails = any(fails(f.severity, self.strict) for f in run_findings)
        conversations = []
        for cid in dict.fromkeys([*self.expected_conversations, *self.incomplete, *reports]):
            conv = reports.get(cid) or self._conversation(cid, array("I"), False)
            if run_fails:  # a conversation passes only on its own proof and a sound run
                conv.verdict = Verdict.FAIL
            conversations.append(conv)
        if not conversations:
            run_findings.append(self._finding(Code.NO_EVENTS, "the input holds no events"))
        failed = any(c.verdict == Verdict.FAIL for c in conversations) or \
            any(fails(f.severity, self.strict) for f in run_findings) or \
            any(i.errors for i in self.inputs) or (self.strict and any(i.api_errors for i in self.inputs))
        return Report(REPORT_SCHEMA, Verdict.FAIL if failed else Verdict.PASS, conversations, strict=self.strict,
                      key_source="keyring" if self.keyring is not None else "embedded",
                      inputs=self.inputs, findings=run_findings, proof=self._proof(conversations))

    def _finding(self, code: str, message: str) -> Finding:
        return Finding(code, self.policy.severity(code), message)

    def _run_findings(self, used: set[Any]) -> list[Finding]:
        """Findings about the run as a whole: whose keys were trusted, and what the keyring said."""
        out = []
        for version in sorted(set(self.conversation_keys) - used):
            out.append(self._finding(Code.UNUSED_CONVERSATION_KEY, f"no key change in the input uses conversation "
                                                                f"key version {version}"))
        if self.keyring is None:
            out.append(self._finding(Code.NO_TRUSTED_KEYS, "no keyring: signer keys were taken from the "
                                                        "events themselves and are not authenticated"))
        else:
            out += [self._finding(code, message) for code, message in self.keyring.run_findings()]
            for message in self.keyring.errors:  # rows the run could not use: it is incomplete
                self.inputs.append(InputReport("keys", self.event_total, 0, [message]))
        return out

    def _key_changes(self) -> Iterator[MessageEvent]:
        if not self.conversation_keys:
            return
        for index in range(self.count):
            if self.flags[index] & _IS_KEY_CHANGE:
                event = self.kept.get(index)  # key changes are kept whenever conversation keys are given
                if event is not None:
                    yield event

    def _proof(self, conversations: list[ConversationReport]) -> Proof:
        statuses = {s: sum(c.counts.get(s.value, 0) for c in conversations) for s in SigStatus}
        events = sum(len(c.events) for c in conversations)
        not_signed = statuses[SigStatus.NOT_SIGNED]
        proven, waiting = statuses[SigStatus.VALID], statuses[SigStatus.NEEDS_CONVERSATION_KEY]
        embedded = self._embedded_key_uses(conversations)
        return Proof(events=events, signed=events - not_signed, proven=proven,
                     needs_conversation_key=waiting, unproven=events - not_signed - proven - waiting,
                     not_signed=not_signed, keys_authenticated=self.keyring is not None and not embedded,
                     complete=not self.incomplete and not any(i.errors for i in self.inputs),
                     embedded_keys=embedded)

    def _embedded_key_uses(self, conversations: list[ConversationReport]) -> int:
        """Events checked with a key they carried although a keyring was given (review 37: such a
        run said its signer keys were authenticated). Without a keyring every key is the event's.
        A coordinator's shell (``finish_parts``) holds no event: its parts' events, and their
        findings, are in the conversations' reports (round 92: ``archive verify`` counted none, and
        said every signer key came from the keyring)."""
        if self.keyring is None:
            return 0
        used = sum(1 for staged in self.findings.values() if any(f.code == Code.EMBEDDED_KEY_USED for _, f in staged))
        if self.elsewhere:
            used += sum(1 for conv in conversations for event in conv.events
                        if any(f.code == Code.EMBEDDED_KEY_USED for f in event.findings))
        return used

    # ---------------------------------------------------------------- chain and report
    def _conversation(self, cid: str, members: Sequence[int], lazy: bool) -> ConversationReport:
        """One conversation's chain and report, with its own verdict (the run's is applied later)."""
        if members:
            self._chain(members)
        counts: dict[str, int] = {s.value: 0 for s in SigStatus}
        counts.update({s.value: 0 for s in ChainStatus})
        events = EventList(self, members)
        failed_event = False
        sig_status = [c.status for c in self.check_objects]
        sig_tally = _tally(_at(self.sig_codes, members), len(self.check_objects) + 1)
        chain_tally = _tally(_at(self.chain_codes, members), len(_CHAIN_CODES))
        for code, n in sig_tally.items():
            counts[sig_status[code - 1]] += n
        for code, n in chain_tally.items():
            counts[_CHAIN_CODES[code]] += n
        quiet_sig = {code for code in sig_tally if sig_status[code - 1] not in STATUS_SEVERITY}
        quiet_chain = {code for code in chain_tally if _CHAIN_CODES[code] not in STATUS_SEVERITY}
        reports = None if lazy else list(events)  # built once; their findings are counted below
        loud_sig, loud_chain = set(sig_tally) - quiet_sig, set(chain_tally) - quiet_chain
        loud = sum(sig_tally[code] for code in loud_sig) + sum(chain_tally[code] for code in loud_chain)
        for position, index in self._noisy(members, loud_sig, loud_chain, loud):
            for f in self.event_findings(index) if reports is None else reports[position].findings:
                if f.code not in STATUS_SEVERITY:
                    counts[f.code] = counts.get(f.code, 0) + 1
                failed_event = failed_event or fails(f.severity, self.strict)
        findings = self._conversation_findings(cid, members)
        for f in findings:
            counts[f.code] = counts.get(f.code, 0) + 1
        failed = any(fails(f.severity, self.strict) for f in findings) or failed_event
        return ConversationReport(cid, Verdict.FAIL if failed else Verdict.PASS, counts,
                                  events if reports is None else reports, findings,  # type: ignore[arg-type]
                                  complete=cid not in self.incomplete)

    def _noisy(self, members: Sequence[int], loud_sig: set[int], loud_chain: set[int],
               loud: int) -> Iterable[tuple[int, int]]:
        """(position, row) of the rows with a finding, in order: staged findings, or a signature or
        chain code that has a severity (``loud_sig``, ``loud_chain``; ``loud``: how many rows have
        one). Few of them in a run's one conversation: found by code (``_noisy_in_span``), held as
        a list; else streamed, a row at a time (100,000 gaps held as a list were 6 MB more)."""
        if type(members) is range and members.step == 1 and (loud + len(self.findings)) * _SPARSE <= len(members):
            return self._noisy_in_span(members, loud_sig, loud_chain)
        noisy = map(self.findings.__contains__, members)  # (in C)
        if loud_sig:
            noisy = map(or_, noisy, map(loud_sig.__contains__, _at(self.sig_codes, members)))
        if loud_chain:
            noisy = map(or_, noisy, map(loud_chain.__contains__, _at(self.chain_codes, members)))
        return compress(enumerate(members), noisy)

    def _noisy_in_span(self, span: range, loud_sig: set[int], loud_chain: set[int]) -> list[tuple[int, int]]:
        """``_noisy`` for consecutive rows (a run's one conversation): each loud code's rows found by
        ``find`` in the code columns' bytes, not a look-up per row. Why: a history's few loud rows
        (its meta copies: 1 in 100) cost three passes over every row, 17 ms of 100,000 events in
        the run's serial tail (round 140)."""
        start, stop = span.start, span.stop
        rows = {at for at in self.findings if start <= at < stop}
        for column, loud in ((self.sig_codes, loud_sig), (self.chain_codes, loud_chain)):
            if loud:
                rows.update(_rows_of_codes(column[start:stop], loud, start))
        return [(at - start, at) for at in sorted(rows)]

    def _conversation_findings(self, cid: str, members: Sequence[int]) -> list[Finding]:
        out = []
        for reason in self.incomplete.get(cid, []):
            out.append(self._finding(Code.INCOMPLETE, f"history not fetched to its end: {reason}"))
        flags, codes, checks = self.flags, self.sig_codes, self.check_objects
        # the history's own events prove it; meta only adds context (round 97: a history served as data
        # [] and its key change in meta passed). Lazily: the first proven data event ends the search.
        proven = next((True for i in members if not flags[i] & _FROM_META and
                       checks[codes[i] - 1].status == SigStatus.VALID), False)
        if not members:
            out.append(self._finding(Code.NO_EVENTS, "the conversation has no events"))
        elif not proven:
            data = sum(1 for i in members if not flags[i] & _FROM_META)
            out.append(self._finding(Code.NO_EVENTS, no_data_events(len(members))) if not data else
                       self._finding(Code.NOTHING_PROVEN, nothing_proven(data, len(members) - data)))
        return out

    def _chain(self, members: Sequence[int]) -> None:
        """The chain statuses and replays of one conversation's rows (chain nodes carry report
        indices, which the details name; results are set on the rows)."""
        from .fastchain import linear_chain
        row_of = self.row_of
        results = linear_chain(self, members)
        if results is None:
            seq, codes = self.seq, self.chain_codes
            placed = array("I")
            for i in members:  # one without a sequence id is a gap, and no replay (``analyse_chain``)
                if seq[i]:
                    placed.append(i)
                else:
                    codes[i] = _NO_SEQUENCE_ID
            nodes = [self._chain_node(i) for i in placed]
            chain = analyse_chain(nodes)
            for index, detail in find_replays(nodes).items():
                self.add(row_of(index), _REPLAYED, Code.REPLAY, detail)
            del nodes
            for index, result in chain.items():
                self._set_chain(row_of(index), result)
        else:
            for index, detail in results.items():
                self.add(row_of(index), _REPLAYED, Code.REPLAY, detail)

    def _set_chain(self, index: int, result: ChainResult) -> None:
        fixed = None if result.info_only else _FIXED_CODES.get((result.status, result.detail))
        self.chain_codes[index] = _CHAIN_INDEX[result.status] if fixed is None else fixed
        if fixed is None and (result.status != _LINKED or result.info_only or
                              result.detail != f"follows {self.prev[index]}"):
            self.chain_details[index] = (result.detail, result.info_only)
        elif self.chain_details:
            self.chain_details.pop(index, None)  # from an earlier conclusion of this run

    def chain_of(self, index: int) -> ChainResult:
        code = self.chain_codes[index]
        detail = self.chain_details.get(index)
        if detail is None:
            return ChainResult(_CHAIN_CODES[code], self._plain_chain_detail(index, code))
        return ChainResult(_CHAIN_CODES[code], detail[0], detail[1])

    def _plain_chain_detail(self, index: int, code: int) -> str:
        """The detail of a row whose chain code says it all: a fixed one, or "follows PREV"."""
        fixed = _FIXED_DETAILS.get(code)
        return f"follows {self.prev[index]}" if fixed is None else fixed

    def _chain_node(self, index: int) -> ChainNode:
        flags = self.flags[index]
        # an event without encoded_event has no bytes: its content is the fixed marker the chain's
        # conflict rule orders by (min content picks the copy it links through), as it always was
        content = b"missing" if flags & _NOT_ENCODED else bytes(self.digests[32 * index:32 * index + 32])
        signed_id = None
        if flags & _SIGNED_KIND:
            sender, message_id = self.sender[index], self.message_id[index]
            if sender is not None and message_id is not None:
                signed_id = (sender, message_id)
        return ChainNode(self.index_of(index), self.seq[index], self.prev[index], content, from_meta=bool(flags & _FROM_META),
                         is_key_change=bool(flags & _IS_KEY_CHANGE), signed_id=signed_id)

    def event_findings(self, index: int) -> list[Finding]:
        """An event's findings in report order: decoding and envelope, key conflicts, the signature's
        status, reviewers, replays, the chain's status."""
        staged = self.findings.get(index)
        out = []
        result = self.check_objects[self.sig_codes[index] - 1]
        sig_sev = STATUS_SEVERITY.get(result.status)
        if staged:
            staged = sorted(staged, key=lambda sf: sf[0])
            out = [f for stage, f in staged if stage < _REVIEWED]
        if sig_sev is not None:
            out.append(Finding(result.status, sig_sev.value, result.detail))
        if staged:
            out += [f for stage, f in staged if stage >= _REVIEWED]
        chain = _CHAIN_CODES[self.chain_codes[index]]
        chain_sev = STATUS_SEVERITY.get(chain)
        if chain_sev is not None:
            result_chain = self.chain_of(index)
            out.append(Finding(chain, _INFO if result_chain.info_only else chain_sev.value,
                               result_chain.detail))
        return out

    def event_report(self, index: int) -> EventReport:
        return self.event_reports((index,))[0]

    def event_reports(self, rows: Sequence[int]) -> list[EventReport]:
        """The ``EventReport`` of each row, the columns read a batch at a time (``Ids.values``):
        what a report of every event is rendered from."""
        pick = picker(rows)
        numbers = [self.base + at for at in rows] if self.indices is None else pick(self.indices)
        checks, chain_codes, chain_details, findings = self.check_objects, self.chain_codes, self.chain_details, \
            self.findings
        loud = self.loud_checks  # whether each check's status has a severity: one enum hash a check, not an event
        if len(loud) < len(checks):
            loud.extend(check.status in STATUS_SEVERITY for check in checks[len(loud):])
        out = []
        for at, number, seq, prev, message_id, sender, kind, sig_code, trusted, key_version, created in zip(
                rows, numbers, self.seq.values(rows), self.prev.values(rows), self.message_id.values(rows),
                self.sender.values(rows), self.kind.values(rows), pick(self.sig_codes), pick(self.trusted),
                self.key_version.values(rows), self.created.values(rows)):
            signature = checks[sig_code - 1]
            chain_code = chain_codes[at]
            detail = chain_details.get(at)
            chain = Check(_CHAIN_CODES[chain_code], detail[0] if detail is not None else  # chain_of, inline
                          f"follows {prev}" if chain_code == _LINKED_CODE else self._plain_chain_detail(at, chain_code))
            quiet = not findings.get(at) and _QUIET_CHAIN[chain_code] and not loud[sig_code - 1]
            out.append(EventReport(number, seq, prev, message_id, sender, kind, signature, chain,
                                   _TRUSTED_VALUE[trusted], [] if quiet else self.event_findings(at), key_version,
                                   created))
        return out

    def report_columns(self, rows: Sequence[int]) -> tuple[list[list[Any]], set[int], list[str]]:
        """What ``report.stream`` renders a batch of usual events from, a column each, read a batch
        at a time as ``event_reports`` reads them: the report index (as text), the four ids, the
        kind, the signature's status and detail as msgspec encodes them, the previous id again (the
        chain's "follows" detail), ``trusted`` as JSON, the key version and the time. Then the
        positions in ``rows`` whose ``EventReport`` it must render instead (a chain other than
        linked, a chain detail or finding of its own, a check whose status has a severity, a field
        that is None: their values here mean nothing); and the texts among the values that may
        need escaping (each at least once; canonical ids need none). Why: an ``EventReport`` and
        two ``Check``s an event, then msgspec's encoding and indenting of them, cost about 2 µs an event."""
        pick = picker(rows)
        first = rows[0] if len(rows) else 0
        numbers = list(map(str, range(self.base + first, self.base + first + len(rows)) if self.indices is None
                           and type(rows) is range and rows.step == 1 else map(self.index_of, rows)))
        checks, sig_codes = self.check_objects, pick(self.sig_codes)
        used = checks if len(checks) <= _USED_CHECKS else [checks[code - 1] for code in set(sig_codes) - {0}]
        statuses, details = self._check_texts()
        prev = self.prev.values(rows)
        columns: list[list[Any]] = [
            numbers, self.seq.values(rows), prev, self.message_id.values(rows), self.sender.values(rows),
            self.kind.values(rows), list(map(statuses.__getitem__, sig_codes)), list(map(details.__getitem__, sig_codes)),
            prev, list(map(_TRUSTED_JSON.__getitem__, pick(self.trusted))), self.key_version.values(rows),
            self.created.values(rows)]
        odd = _unlinked(bytes(pick(self.chain_codes)))
        for column in columns[1:7] + columns[10:]:
            odd.update(_blanked(column))  # (a loud check's status text is None)
        for own in (self.chain_details, self.findings):
            if own:
                odd.update(_held(own, rows))
        unchecked = [*self.seq.given(rows), *self.prev.given(rows), *self.message_id.given(rows),
                     *self.created.given(rows), *self.sender.distinct(rows), *self.kind.distinct(rows),
                     *self.key_version.distinct(rows), *(check.status for check in used), *(check.detail for check in used)]
        return columns, odd, [text for text in unchecked if text is not None]

    def _check_texts(self) -> tuple[list[str | None], list[str]]:
        """Each check object's status and detail as JSON (by ``sig_codes``' code: 1 + its place); a
        status None where it has a severity (a finding of its own)."""
        known = self.check_texts
        checks, loud = self.check_objects, self.loud_checks
        if len(loud) < len(checks):  # (as ``event_reports`` extends it)
            loud.extend(check.status in STATUS_SEVERITY for check in checks[len(loud):])
        if len(known[1]) <= len(checks):
            encode = msgspec.json.encode
            for check, noisy in zip(checks[len(known[1]) - 1:], loud[len(known[1]) - 1:]):
                known[0].append(None if noisy else encode(check.status).decode())
                known[1].append(encode(check.detail).decode())
        return known


_USED_CHECKS = 64  # ``report_columns`` hands every check's texts to be looked at up to this many
_TRUSTED_JSON = ("null", "false", "true")  # ``trusted``'s byte (``columns.TRUSTED_CODE``) as JSON
_NOT_LINKED = bytes(0 if code == _LINKED_CODE and _QUIET_CHAIN[code] else 1 for code in range(256))


def _held(own: Mapping[int, Any], rows: Sequence[int]) -> Iterable[int]:
    """The positions in ``rows`` of the rows ``own`` holds something for (not empty): the smaller of
    the two is walked (a long run's details, looked up a batch at a time, are not walked each time)."""
    if type(rows) is range and len(own) < len(rows):
        return [rows.index(row) for row, value in own.items() if row in rows and value]
    return [at for at, row in enumerate(rows) if own.get(row)]


def _unlinked(codes: bytes) -> set[int]:
    """The positions of the chain codes other than linked (found by ``find`` in C)."""
    marked = codes.translate(_NOT_LINKED)
    found: set[int] = set()
    at = -1
    for _ in range(marked.count(1)):
        at = marked.find(1, at + 1)
        found.add(at)
    return found


def _blanked(values: list[Any]) -> set[int]:
    """The positions of None in ``values``, each made "" (found by ``index`` in C, as many times as it occurs)."""
    found: set[int] = set()
    at = -1
    for _ in range(values.count(None)):
        at = values.index(None, at + 1)
        values[at] = ""
        found.add(at)
    return found


def _envelopes_agree(items: list[ItemJson], texts: list[str], fields: tuple[tuple[str, ...], ...],
                     signers: list[tuple[str, ...]]) -> bool:
    """``_usual_job``'s envelope test of a page's items at once: each item's fields equal its event's,
    its JSON signature present and equal to the event's, with its one key info. Each item is compared
    as a whole with the ``ItemJson`` its event's fields make (its ``encoded_event`` its entry's text,
    ``texts``: a data entry's is its item's):
    msgspec compares the structs' fields in C, where a tuple of the item's fields cost a getter call
    and a tuple an event (round 138; round 134 measured joined columns slower). The fields are
    passed by ``ItemJson``'s own order, so reordering its declaration (round 135) cannot pair a
    column with another field. The JSON signature is the struct its event's fields make, its key info list made once a
    signer (``signers`` are the events' signer fields, whose last three are the key info's)."""
    seqs, _, senders, conversations, created, previous, _, signature_texts, key_versions, signature_versions, \
        signing_keys, _, _, _ = fields
    infos = {signer: [SigningKeyInfo(*signer[4:])] for signer in dict.fromkeys(signers)}
    columns: dict[str, Iterable[Any]] = {
        "id": seqs, "sender_id": senders, "conversation_id": conversations, "sequence_id": seqs,
        "previous_sequence_id": previous, "created_at_msec": created, "is_trusted": repeat(True),
        "message_event_signature": map(EventSignature, signature_texts, key_versions, signature_versions, signing_keys,
                                       map(infos.__getitem__, signers)),
        "encoded_event": texts}
    return items == list(map(ItemJson, *[columns.get(name, repeat(None)) for name in _ITEM_FIELDS]))


class _Signer:
    """What every usual event of one signer shares (``_Run._signer``): the row's texts, the valid
    detail, the trusted key, the embedded keys and, from its first event on, the rows arrays of
    those keys. Why: its detail, keyring row and key carriers were looked up by an event's own
    texts on every event (new strings each time, hashed each time)."""

    __slots__ = ("fields", "sender", "key_version", "signature_version", "detail", "key", "embedded", "carried")

    def __init__(self, fields: tuple[str | None, ...], detail: str, key: Any,
                 embedded: tuple[tuple[str, str, str], ...]) -> None:
        self.fields = fields  # what ``_Run._signer`` made it of (sender, key version, signature version...)
        self.sender, self.key_version, self.signature_version = fields[:3]
        self.detail, self.key, self.embedded = detail, key, embedded
        self.carried: tuple[array[int], ...] | None = None

    def note(self, users: dict[str, None], carriers: dict[tuple[str, str, str], array[int]]) -> tuple[array[int], ...]:
        """Its users and its keys' carriers, as ``_Run._note_keys`` notes them (sender first)."""
        if self.sender:
            users.setdefault(self.sender)
        carried = []
        for triple in self.embedded:
            users.setdefault(triple[0])
            rows = carriers.get(triple)
            if rows is None:
                rows = carriers[triple] = array("I")
            carried.append(rows)
        self.carried = tuple(carried)
        return self.carried


class _PageRows:
    """Rows gathered one by one (a page's events; a join's rows) and appended to the run's columns
    at once: one call per column and page instead of one per column and event. Each row is one
    tuple, appended by ``add`` (the list's own ``append``: no Python call an event), and the rows
    are turned into columns by one ``zip`` when the page is done (``append_to``)."""

    __slots__ = ("rows", "add", "leading", "checks", "seq", "prev", "flags")

    def __init__(self) -> None:
        # (seq, prev, message_id, created, sender, trusted, kind, conversation, key_version,
        #  signature_version, flags) of each row, in order
        self.rows: list[tuple[str | None, str | None, str | None, str | None, str | None, int, str | None, str,
                              str | None, str | None, int]] = []
        self.add = self.rows.append
        self.leading: list[list[Any]] | None = None  # the columns of rows before ``rows`` (``_Run._usual_page``'s)
        self.checks: list[tuple[int, Check]] = []  # (row, its check) known already: set once the rows exist
        self.seq: list[str | None] = []  # the columns ``load_page`` reads again, set by ``append_to``
        self.prev: list[str | None] = []
        self.flags: list[int] = []

    def append_to(self, run: _Run) -> None:
        columns: list[list[Any]] = [list(column) for column in zip(*self.rows)] if self.rows \
            else [[] for _ in range(11)]
        if self.leading is not None:
            columns = [leading + column for leading, column in zip(self.leading, columns)] if self.rows else self.leading
        seq, prev, message_id, created, sender, trusted, kind, conversation, key_version, signature_version, \
            flags = columns
        self.seq, self.prev, self.flags = seq, prev, flags
        run.seq.append_all(seq)
        run.prev.append_following(prev, run.seq, seq)
        run.message_id.append_all(message_id)
        run.created.append_all(created)
        run.sender.append_all(sender)
        run.trusted.extend(trusted)
        run.kind.append_all(kind)
        run.conversation.append_all(conversation)
        run.key_version.append_all(key_version)
        if run.keep_facts:
            run.signature_version.append_all(signature_version)
        run.flags.extend(flags)
        run.sig_codes.frombytes(bytes(run.sig_codes.itemsize * len(flags)))  # 0: not checked yet
        for row, result in self.checks:
            run._set_check(row, result)


def _at(column: Sequence[int], rows: Sequence[int]) -> Iterable[int]:
    """The column's values at ``rows``, to be read once: a slice of it for a range of rows (a run's
    one conversation), else each value as it is read (no copy of the column's size)."""
    if type(rows) is range and rows.step == 1:
        return column[rows.start:rows.stop]
    return map(column.__getitem__, rows)


def _rows_of_codes(values: array[int] | bytearray, codes: set[int], first: int) -> Iterator[int]:
    """``first`` + the offset of each of ``values`` that is one of ``codes``, each found by ``find`` in
    the values' bytes (their low bytes, when every code is below 256: ``_tally``'s check), else a
    look-up each."""
    data = _low_bytes(values)
    if data is None or max(codes) > 255:
        yield from compress(range(first, first + len(values)), map(codes.__contains__, values))
        return
    for code in codes:
        at = data.find(code)
        while at >= 0:
            yield first + at
            at = data.find(code, at + 1)


def _low_bytes(values: array[int] | bytes | bytearray) -> bytes | bytearray | None:
    """One byte a value, the same values: a one-byte column as it is, a wider one's low bytes when
    every other byte is zero (every value below 256), else None."""
    if isinstance(values, (bytes, bytearray)):
        return values
    data = values.tobytes()
    width = values.itemsize
    low = data[0::width] if sys.byteorder == "little" else data[width - 1::width]
    return low if data.count(0) - low.count(0) == len(low) * (width - 1) else None


def _one_version_each(senders: Iterable[int], versions: Iterable[int], codes: int) -> bool:
    """Whether every sender code of a slice of rows comes with one version code only (then no
    signing key went back), found in C where both are code columns' slices below 256: each sender's
    first row names its version, and the senders' bytes translated by that table must be the
    versions' bytes (``codes``: how many sender codes there are). False: not shown so (the pairs are
    counted then). Why: a set of every row's pair was 7 ms of 100,000 events in the run's serial
    tail (round 140)."""
    if not isinstance(senders, array) or not isinstance(versions, array):
        return False
    sender_bytes, version_bytes = _low_bytes(senders), _low_bytes(versions)
    if sender_bytes is None or version_bytes is None or codes > _TALLY_PASSES:
        return False
    table = bytearray(range(256))
    for code in range(codes):
        first = sender_bytes.find(code)
        if first >= 0:
            table[code] = version_bytes[first]
    return sender_bytes.translate(table) == version_bytes


def _starts_history(rows: _PageRows) -> bool:
    """Does a page hold a data event with a sequence id and no previous one (its history's first)?
    Only the rows without a previous id are looked at: a page's usual one is its meta copy of the
    key change, and a generator over every row cost about 200 instructions an event (round 135)."""
    seq, prev, flags = rows.seq, rows.prev, rows.flags
    at = -1
    for _ in range(prev.count(None)):
        at = prev.index(None, at + 1)
        if seq[at] and not flags[at] & _FROM_META:
            return True
    return False


_TALLY_PASSES = 16  # the most codes ``_tally`` counts a pass each
_SPARSE = 16  # rows a loud one at least, for ``_Run._noisy`` to find the loud ones by code


def _tally(values: Iterable[int], codes: int) -> Mapping[int, int]:
    """``Counter(values)``, for the codes of a column: where ``values`` is a slice (a run's one
    conversation) of fewer than ``_TALLY_PASSES`` codes, by one ``count`` of its bytes a code. Why:
    about 65 instructions a row where the ``Counter`` cost 500 (round 135). An array of wider
    items is counted by their low bytes when every other byte is zero, else by the ``Counter``."""
    if codes > _TALLY_PASSES or not isinstance(values, (bytes, bytearray, array)):
        return Counter(values)
    data = _low_bytes(values)
    if data is None:  # a code above 255
        return Counter(values)
    tally = {code: count for code in range(codes) if (count := data.count(code))}
    return tally if sum(tally.values()) == len(data) else Counter(values)  # (every row's code below ``codes``)


def _most_common_conversation(own: list[str], distinct: Collection[str]) -> str:
    """The most common of a page's conversation ids ``own`` that is not empty, the first seen among
    equals, else "unknown"; ``distinct``: every value ``own`` holds. A page of one id (the usual)
    takes it without counting its events (a generator step and a ``Counter`` entry an event)."""
    if len(distinct) == 1:
        (only,) = distinct
        return only or "unknown"
    counted = Counter(filter(None, own))
    return counted.most_common(1)[0][0] if counted else "unknown"


def _rows_by_value(codes: Sequence[int], wanted: Collection[int] | None = None) -> dict[int, array[int]]:
    """The rows of each value of a column (of each ``wanted`` one), in first-row order."""
    groups: dict[int, array[int]] = {}
    for at, code in enumerate(codes):
        if wanted is not None and code not in wanted:
            continue
        members = groups.get(code)
        if members is None:  # (not setdefault: that would build an array for every row)
            members = groups[code] = array("I")
        members.append(at)
    return groups


def _keyring_arg(keyring: Any, caller: str) -> Keyring | None:
    """``keyring`` if it is a ``Keyring`` or None, else ``UsageError`` (round 88: the keyring's parsed
    JSON, a dict, failed deep in the run with an AttributeError)."""
    if keyring is not None and not isinstance(keyring, Keyring):
        raise UsageError(f"{caller}: the keyring must be a verifier.Keyring (Keyring.from_json(...)) or None, "
                         f"not {type(keyring).__name__}")
    return keyring


def _keyring_digest(keyring: Keyring | None) -> bytes:
    """What a keyring is made of (its rows, findings, errors and fallback slots), as a digest."""
    if keyring is None:
        return b"none"
    _rebuild, (entries, findings, errors, fallback) = keyring.__reduce__()
    return hashlib.sha256(msgspec.json.encode([entries, findings, errors, sorted(fallback)])).digest()


def _as_decoded(page: Any, number: int) -> DecodedPage:
    if isinstance(page, DecodedPage):
        return page
    if isinstance(page, PageInput):  # (a path as its label: round 88, an AttributeError)
        source = page.source if isinstance(page.source, str) else \
            os.fsdecode(page.source) if isinstance(page.source, os.PathLike) else str(page.source)
        decoded = decode_page(page.body, source)
        decoded.conversation_id = page.conversation_id
        return decoded
    return decode_page(page, f"page {number + 1}")


def _check_batch(batch: list[tuple[int, Job]]) -> list[Check | None]:
    return check_all([job for _index, job in batch])


__all__ = ["PageInput", "Reviewer", "Record", "EventList", "EventFacts", "ClearOptions", "PartFacts", "Row",
           "Verification", "verify_pages", "default_reviewers", "default_workers", "usable_cpus", "Policy", "gc_paused",
           "DELETE_KINDS"]
