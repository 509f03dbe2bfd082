"""The plain values the engine hands to the ledger (``EventFacts``) and to the archive's coordinator
and joins (``PartFacts``, ``Row``): picklable, no reference into the engine's state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .model import Check, Finding, InputReport
from .signers import KeySlot
from .wire import MessageEvent


@dataclass
class PageEnds:
    """What pages say of their conversations' ends (``engine.paging_reasons`` judges it); the same
    whether one run read every page or parts read them and were merged, in order."""

    unfinished: dict[str, list[str]] = field(default_factory=dict)  # conversation -> why it goes on, page order
    last_pages: set[str] = field(default_factory=set)  # conversations (``unknown`` too) a last page with data events came for
    empty_ends: set[str] = field(default_factory=set)  # conversations (``unknown``: none named) a last page without came for
    firsts: set[str] = field(default_factory=set)  # conversations with a data event that claims to be the first
    with_data: set[str] = field(default_factory=set)  # conversations with a data event (not only key changes in meta)

    def merge(self, other: PageEnds) -> None:
        """Add what the pages after these said (a part's, in input order)."""
        for cid, reasons in other.unfinished.items():
            self.unfinished.setdefault(cid, []).extend(reasons)
        self.last_pages |= other.last_pages
        self.empty_ends |= other.empty_ends
        self.firsts |= other.firsts
        self.with_data |= other.with_data


@dataclass
class PartFacts:
    """One part of a larger run, as the coordinator sees it (small: per page, not per event)."""

    inputs: list[InputReport]  # one per page, in order
    conversations: list[str | None]  # the conversation of each page's events (None: no events)
    key_slots: dict[KeySlot, frozenset[bytes]]  # embedded key identities seen per (member, version)
    used_key_versions: set[Any]  # conversation key versions the part's key changes use
    ended: set[str]  # conversations a page without next_token came for (see ``ended_conversations``)
    page_ends: PageEnds = field(default_factory=PageEnds)  # what its pages say of their conversations' ends


class Row(NamedTuple):
    """One event's columns, as ``Verification.take`` ships it to a join (plain picklable values)."""

    report_index: int  # in the whole run
    conversation: str
    seq: str | None
    prev: str | None
    message_id: str | None
    created: str | None
    sender: str | None
    kind: str | None
    key_version: str | None
    signature_version: str | None
    keys: tuple[tuple[str, str, str], ...]  # the embedded keys it carries
    check: Check
    trusted: int
    flags: int
    digest: bytes
    findings: tuple[tuple[int, Finding], ...]  # staged findings so far (decoding, envelope)
    event: MessageEvent | None  # the decoded event, when a reviewer or the ledger reads its kind


@dataclass(frozen=True)
class ClearOptions:
    """A ConversationDeleteEvent's signed ``ClearConversationOptions`` (None: the field is absent)."""

    clear_all_messages: bool | None = None
    sort_order_msec: int | None = None


@dataclass(frozen=True)
class EventFacts:
    """What ``Verification.event_facts`` gives per event (``index`` as in the report)."""

    index: int
    digest: bytes  # SHA-256 of the encoded event (of its text when it could not be decoded)
    signature_version: str | None
    embedded_keys: tuple[tuple[str, str, str], ...]  # (member, key version, signing key) carried by the event
    deletes: tuple[str, ...] = ()  # MessageDeleteEvent: the sequence ids it deletes
    clear: ClearOptions | None = None  # ConversationDeleteEvent: its signed options (what it clears)
    member: bool | None = None  # deletes: the signer is (True) or is not (False) a member of the
    # conversation at that point; None when that is unknown (a group whose membership is not proven),
    # but False for a user a proven removal took out there (``semantics.delete_signers``)
