"""The work a worker does: plain functions of picklable values, run by Dask (or in process).

Phase 1, ``check_task``: read a task's pages (as ``verify`` reads them), decode them and check every
signature; the state stays on the worker and only ``TaskFacts`` (per page, not per event) go to the
coordinator. Phase 2, ``conclude_task``: numbered at its place in the run, the part concludes the
conversations it holds whole and hands the events of the others to ``join_task``. Reports travel
as msgpack bytes (fast to decode on the coordinator).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ..engine import PageInput, PartFacts, Row, Verification
from ..errors import EvidenceError, InputError
from ..evidence import PAGE_NOT_VERIFIED, EvidenceStore, collect_secrets, read_or_note
from ..inputs import load_pages, read_at_most, split_bodies, unpack_limited
from ..keys import Keyring
from ..model import ConversationReport
from ..pages import DecodedPage
from ..paging import PageHead, PageLimits, page_head
from ..signers import KeySlot
from .sources import PageFile, SavedPage, Task, is_url

REPORTS = msgspec.msgpack.Decoder(dict[str, ConversationReport])


@dataclass
class Shared:
    """Scattered once to every worker: the engine's options, each group's keyring, the file limit."""

    options: dict[str, Any]
    keyrings: list[Keyring | None]
    max_bytes: int
    facts: bool = False  # a ledger records the run: return each event's facts too


@dataclass
class TaskFacts:
    """What the coordinator learns from phase 1 of a task."""

    task: int
    part: PartFacts
    events: int
    # saved pages: (conversation, head, url, page number)
    heads: list[tuple[int, PageHead, Any, int]] = field(default_factory=list)
    file_errors: list[tuple[str, str]] = field(default_factory=list)  # saved pages that could not be used
    secrets: set[str] = field(default_factory=set)  # the access token, where the manifest says pages hold it
    token_files: list[str] = field(default_factory=list)
    unusable: str = ""  # why the evidence directory cannot be used (verify DIR raises it): the group fails


@dataclass
class PartState:
    """Phase 1's result, kept on the worker for phase 2 (picklable, so Dask may move or spill it)."""

    verification: Verification
    facts: TaskFacts
    concluded: bool = False


def check_task(task: Task, shared: Shared) -> PartState:
    verification = Verification(**shared.options)
    # the keys are known: signatures are checked as pages are added, nothing else of an event is kept
    verification.expect_keyring(shared.keyrings[task.group], facts=shared.facts)
    facts = TaskFacts(task.number, PartFacts([], [], {}, set(), set()), 0)
    stores: dict[str, EvidenceStore] = {}
    for unit in task.units:
        if isinstance(unit, PageFile):
            for page in read_pages(unit, shared.max_bytes):
                verification.add_page(page)
        else:
            page_input = _saved_page(unit, stores, facts)
            if page_input is not None:
                verification.add_page(page_input)
    verification.check_part(shared.keyrings[task.group])
    facts.part = verification.part_facts()
    facts.events = sum(i.event_count for i in facts.part.inputs)
    return PartState(verification, facts)


def task_facts(state: PartState) -> TaskFacts:
    return state.facts


def read_pages(unit: PageFile, max_bytes: int) -> Iterator[DecodedPage]:
    """A page file's pages exactly as ``verify`` reads them (an unreadable file is one page with an error)."""
    if unit.error:
        yield DecodedPage(unit.path, errors=[unit.error])
    elif is_url(unit.path):
        try:
            data = read_url(unit.path, max_bytes)
        except InputError as exc:
            yield DecodedPage(unit.path, errors=[str(exc)])
            return
        yield from split_bodies(data, unit.path)
    else:
        yield from load_pages([unit.path], max_bytes)


def read_url(url: str, max_bytes: int) -> bytes:
    """An fsspec URL read like a local file: at most ``max_bytes`` (before and after gunzip)."""
    import fsspec

    try:
        with fsspec.open(url, "rb") as handle:
            data = read_at_most(handle, max_bytes + 1)  # a local file: a buffer of its size
    except Exception as exc:  # fsspec backends raise their own kinds; the message names the cause
        raise InputError(f"cannot read it: {type(exc).__name__}: {exc}") from None
    return unpack_limited(data, max_bytes)


def _saved_page(unit: SavedPage, stores: dict[str, EvidenceStore], facts: TaskFacts) -> PageInput | None:
    """A saved page as ``verify DIR`` reads it (SHA-256 checked, confined to the directory); an
    unusable one is noted, not raised: the rest of the archive is still verified."""
    store = stores.get(unit.root) or stores.setdefault(unit.root, EvidenceStore(unit.root))
    entry = unit.entry
    body = read_or_note(store, entry, facts, f"page {entry.file}", PAGE_NOT_VERIFIED)
    if body is None:
        return None
    if not facts.unusable:
        try:
            collect_secrets(facts, entry, body)
        except EvidenceError as exc:  # too many token strings: the group fails, not the whole archive run
            facts.unusable = str(exc)
    facts.heads.append((unit.conversation, page_head(body, PageLimits().max_page_items), entry.url, unit.number))
    return PageInput(str(Path(unit.root) / entry.file), body, unit.expected)


def conclude_task(state: PartState, shared: Shared, group: int, first_index: int, local: Collection[str],
                  export: Collection[str], shared_keys: Mapping[KeySlot, Collection[bytes]],
                  incomplete: Mapping[str, list[str]]) -> dict[str, Any]:
    """Phase 2 of a task: its whole conversations concluded; the events of the others exported."""
    if state.concluded:  # Dask recomputes lost results from fresh inputs; never conclude a part twice
        raise RuntimeError("a part was concluded twice")
    state.concluded = True
    verification = state.verification
    verification.rebase(first_index)
    reports, reviewed = verification.conclude_part(shared.keyrings[group], set(local), shared_keys, incomplete)
    exported = verification.take(set(export)) if export else []
    facts = verification.event_facts(set(local)) if shared.facts else []
    return {"reports": msgspec.msgpack.encode(reports), "reviewed": reviewed, "export": exported, "facts": facts}


def reports_of(result: dict[str, Any]) -> dict[str, Any]:
    """The part of a phase-2 result the coordinator gathers (the exported events stay on the worker)."""
    return {"reports": result["reports"], "reviewed": result["reviewed"], "facts": result["facts"]}


def exported(result: dict[str, Any]) -> list[Row]:
    return list(result["export"])


def join_task(parts: list[list[Row]], conversations: Collection[str], shared: Shared, group: int,
              shared_keys: Mapping[KeySlot, Collection[bytes]], incomplete: Mapping[str, list[str]]) -> dict[str, Any]:
    """Conversations held by several tasks: their checked events' columns rows joined, the chain
    checked whole (the join copies what it changes: an exported part stays as it was for a retry)."""
    wanted = set(conversations)
    joined = Verification.joined([[row for row in part if row.conversation in wanted] for part in parts],
                                 **shared.options)
    reports, reviewed = joined.conclude_part(shared.keyrings[group], None, shared_keys, incomplete)
    facts = joined.event_facts() if shared.facts else []
    return {"reports": msgspec.msgpack.encode(reports), "reviewed": reviewed, "facts": facts}

