"""One command from conversation ids to a verdict: fetch every page and key, verify, keep evidence.

Conversations are fetched concurrently (bounded); pages are decoded by the engine as they arrive,
in a fixed order (conversations as given, pages newest first), so the report is the same as an
offline ``verify`` of the saved evidence.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .engine import PageInput, Verification, canonical_conversation
from .evidence import EvidenceError, EvidenceStore, load_saved_audit
from .fetch import FetchError, XChatClient, conversation_path_id, key_rows, participants_of
from .keys import Keyring
from .model import Report


@dataclass
class AuditOptions:
    max_results: int = 100
    max_pages: int | None = None
    concurrency: int = 4
    save_dir: str | None = None
    resume: bool = False
    strict: bool = False
    allow_embedded_keys: bool = False
    allow_empty: bool = False
    allow_partial: bool = False
    conversation_keys: dict[str, bytes] = field(default_factory=dict)
    workers: int | None = None


@dataclass
class AuditProgress:
    """What a display shows; updated from fetch threads."""

    conversations: int = 0
    conversations_done: int = 0
    pages: int = 0
    events: int = 0
    users: int = 0
    keys_done: int = 0
    status: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bump(self, **deltas: int) -> None:
        with self.lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)


_DONE = object()


def expected_conversation(conversation_id: str, metadata: bytes | None) -> str | None:
    """The canonical id events must carry: from the id itself, else from the metadata's ``data.id``."""
    if ":" in conversation_id or "-" in conversation_id or conversation_id.startswith("g"):
        return canonical_conversation(conversation_id)
    if metadata:
        try:
            meta_id = json.loads(metadata).get("data", {}).get("id")
        except (ValueError, AttributeError):
            meta_id = None
        if isinstance(meta_id, str) and ("-" in meta_id or ":" in meta_id or meta_id.startswith("g")):
            return canonical_conversation(meta_id)
    return None


class Auditor:
    def __init__(self, client: XChatClient, options: AuditOptions | None = None,
                 progress: AuditProgress | None = None,
                 on_change: Callable[[AuditProgress], None] | None = None) -> None:
        self.client = client
        self.options = options or AuditOptions()
        self.progress = progress or AuditProgress()
        self.on_change = on_change or (lambda _p: None)
        self.store: EvidenceStore | None = None
        if self.options.save_dir:
            if self.options.resume:
                self.store = EvidenceStore.open(self.options.save_dir)
            else:
                self.store = EvidenceStore(self.options.save_dir, client.base_url)
        self.participants: dict[str, None] = {}
        self.expected_ids: dict[str, str | None] = {}  # conversation as named -> canonical id
        self.errors: list[tuple[str, str]] = []
        self.stopping = threading.Event()  # set on interrupt: fetchers stop after their current file

    def run(self, conversation_ids: Sequence[str]) -> Report:
        by_path: dict[str, str] = {}
        for cid in conversation_ids:  # validate every id before any request; one fetch per conversation
            by_path.setdefault(conversation_path_id(cid), cid)
        conversation_ids = list(by_path.values())
        opts = self.options
        verification = Verification(conversation_keys=opts.conversation_keys, strict=opts.strict,
                                    allow_embedded_keys=opts.allow_embedded_keys, allow_empty=opts.allow_empty,
                                    allow_partial=opts.allow_partial, workers=opts.workers)
        self.progress.conversations = len(conversation_ids)
        queues = [queue.Queue() for _ in conversation_ids]
        with ThreadPoolExecutor(max(1, opts.concurrency)) as pool:
            for cid, q in zip(conversation_ids, queues):
                pool.submit(self._fetch_conversation, cid, q)
            try:
                for cid, q in zip(conversation_ids, queues):
                    events = self._consume(q, verification)
                    expect_conversation(verification, cid, self.expected_ids.get(cid), events)
            except BaseException:
                # Ctrl-C or a failure while consuming: let every fetcher finish the file it is
                # writing and stop, so the evidence directory stays consistent for --resume.
                self.stopping.set()
                self.client.cancel()
                raise
        keyring = self._fetch_keys(list(dict.fromkeys([*self.participants, *verification.user_ids()])))
        for source, message in ordered_errors(self.errors):
            verification.add_input_error(source, message)
        return verification.finish(keyring)

    # ------------------------------------------------------------------ conversations
    def _consume(self, q: queue.Queue, verification: Verification) -> int:
        """Feed one conversation's pages to the engine; the number of events they held."""
        before = verification.event_count
        while True:
            item = q.get()
            if item is _DONE:
                return verification.event_count - before
            verification.add_page(item)
            self.progress.bump(pages=1)
            self.progress.events = verification.event_count
            self.on_change(self.progress)

    def _fetch_conversation(self, conversation_id: str, q: queue.Queue) -> None:
        """Fetch one conversation into ``q``; whatever happens, the consumer gets its end marker."""
        error = None
        conv = None
        try:
            if self.store:
                conv = self.store.start_conversation(conversation_id, conversation_path_id(conversation_id))
            expected = self._metadata(conversation_id, conv)
            self.expected_ids[conversation_id] = expected
            token, count = self._replay_saved(conv, q, expected)
            if conv is None or not conv["complete"]:
                remaining = None if self.options.max_pages is None else self.options.max_pages - count
                if (remaining is None or remaining > 0) and not (count and token is None):
                    self._fetch_pages(conversation_id, conv, q, expected, token, remaining)
        except FetchError as exc:
            error = str(exc)
        except OSError as exc:
            error = f"cannot save evidence: {exc.strerror or exc}"
        except Exception as exc:  # a bug must not hang the consumer; report it
            error = f"{type(exc).__name__}: {exc}"
        finally:
            if error:
                self.errors.append((f"fetch {conversation_id}", error))
            if self.store and conv is not None:
                try:
                    self.store.finish_conversation(conv, error)
                except OSError:
                    pass  # already reported above; the manifest keeps its last consistent state
            self.progress.bump(conversations_done=1)
            q.put(_DONE)

    def _metadata(self, conversation_id: str, conv: dict | None) -> str | None:
        try:
            fetched = self.client.get_conversation(conversation_id)
        except FetchError as exc:  # participants then come from the events alone
            self.progress.status = f"conversation metadata unavailable: {exc}"
            return expected_conversation(conversation_id, None)
        if self.store and conv is not None:
            self.store.save_metadata(conv, fetched)
        for uid in participants_of(fetched.body):
            self.participants.setdefault(uid)
        expected = expected_conversation(conversation_id, fetched.body)
        if self.store and conv is not None:
            self.store.set_expected(conv, expected)
        return expected

    def _replay_saved(self, conv: dict | None, q: queue.Queue, expected: str | None) -> tuple[str | None, int]:
        """With --resume, feed the pages already saved; returns (token to continue from, pages)."""
        if conv is None or not conv["pages"]:
            return None, 0
        for page in self.store.page_inputs(conv):
            page.conversation_id = expected
            q.put(page)
        return conv["next_token"], len(conv["pages"])

    def _fetch_pages(self, conversation_id, conv, q, expected, token, remaining) -> None:
        pages = self.client.iter_conversation_events(conversation_id, max_results=self.options.max_results,
                                                     max_pages=remaining, pagination_token=token)
        for fetched, next_token in pages:
            source = self.store.save_page(conv, fetched, next_token) if self.store else fetched.url
            q.put(PageInput(source, fetched.body, expected))
            if self.stopping.is_set():
                raise FetchError("interrupted")

    # ------------------------------------------------------------------ keys
    def _fetch_keys(self, user_ids: list[str]) -> Keyring:
        self.progress.users = len(user_ids)
        bodies: dict[str, Any] = {}

        def one(uid: str) -> None:
            try:
                self._fetch_user_keys(uid, bodies)
            except OSError as exc:  # evidence could not be written: the audit is incomplete
                self.errors.append((f"keys {uid}", f"cannot save: {exc.strerror or exc}"))

        with ThreadPoolExecutor(max(1, self.options.concurrency)) as pool:
            list(pool.map(one, user_ids))
        if self.store:
            try:
                self.store.save_keyring(bodies)
            except OSError as exc:
                self.errors.append(("keys keyring.json", f"cannot save: {exc.strerror or exc}"))
        return Keyring.from_public_key_bodies(bodies)

    def _fetch_user_keys(self, uid: str, bodies: dict[str, Any]) -> None:
        """One user's keys into ``bodies``; 404 means none registered (e.g. a departed member)."""
        try:
            fetched = self.client.get_public_keys(uid)
        except FetchError as exc:
            error = None if exc.status == 404 else str(exc)
            if error:
                self.errors.append((f"keys {uid}", error))
            if self.store:
                self.store.save_keys(uid, None, error)
            return
        finally:
            self.progress.bump(keys_done=1)
            self.on_change(self.progress)
        if self.store:
            self.store.save_keys(uid, fetched)
        bodies[uid] = {"data": key_rows(fetched.body, uid)}


def expect_conversation(verification: Verification, named: str, expected: str | None, events: int) -> None:
    """Report every audited conversation, even one without events (it then fails ``no_events``):
    under its canonical id when known, else, if it returned nothing, under the id as named."""
    if expected:
        verification.expect_conversation(expected)
    elif events == 0:
        verification.expect_conversation(named)


def ordered_errors(errors: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Fetch failures first, then key failures, each by source: independent of thread timing."""
    return sorted(errors, key=lambda e: (not e[0].startswith("fetch "), e[0]))


def verify_saved_audit(root: str, keyring: Keyring | None = None, **options: Any) -> Report:
    """Re-verify a ``--save`` directory offline; gives the same report as the audit that wrote it.

    ``keyring`` replaces the saved key responses (e.g. keys compared out of band)."""
    saved = load_saved_audit(root)
    verification = Verification(**options)
    try:
        for named, expected, pages in saved.conversations:
            before = verification.event_count
            for page in pages:
                verification.add_page(page)
            expect_conversation(verification, named, expected, verification.event_count - before)
    except (KeyError, TypeError, AttributeError) as exc:
        raise EvidenceError(f"{root}/manifest.json lists a malformed page entry ({type(exc).__name__}: {exc})") from None
    for source, message in ordered_errors(saved.errors):
        verification.add_input_error(source, message)
    if keyring is None:
        keyring = Keyring.from_public_key_bodies(
            {uid: {"data": key_rows(body, uid)} for uid, body in saved.keyring_bodies.items()})
    return verification.finish(keyring)


def audit_conversation(conversation_id: str | Sequence[str], client: XChatClient,
                       options: AuditOptions | None = None) -> Report:
    """Fetch, verify and report one conversation (or several)."""
    ids = [conversation_id] if isinstance(conversation_id, str) else list(conversation_id)
    return Auditor(client, options).run(ids)


async def audit_conversation_async(conversation_id: str | Sequence[str], client: XChatClient,
                                   options: AuditOptions | None = None) -> Report:
    """Awaitable form: runs the (thread-pooled) audit off the event loop."""
    return await asyncio.to_thread(audit_conversation, conversation_id, client, options)
