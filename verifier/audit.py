"""One command from conversation ids to a verdict: fetch every page and key, verify, keep evidence.

Conversations are fetched concurrently (bounded); pages are decoded by the engine as they arrive,
in a fixed order (conversations as given, pages newest first), so the report is the same as an
offline ``verify`` of the saved evidence.

The server is the party under audit, so the audit holds against one that lies, stalls and attacks:
every walk over pages has budgets (``paging.PageLimits``) and ends as *incomplete* (never a silent
PASS) with a reason naming the limit or fault; at most ``max_users`` users' keys are fetched; pages
wait in bounded queues so a fast conversation cannot pile up memory behind a slow one; malformed
server values are reported on their input and the run goes on; and the access token is scrubbed
from the finished report, since everything in it may come from the server.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from .apibodies import key_body_problems, key_rows, metadata_problems, participants_of
from .clock import earliest_utc
from .engine import PageInput, Verification
from .errors import EvidenceError, FetchError, InputError, ResumeRefused, UsageError
from .evidence import (
    EvidenceStore,
    SavedAudit,
    SavedConversation,
    existing_evidence,
    holds_evidence_manifest,
    load_saved_audit,
    token_secrets,
)
from .fetch import OverBudget, XChatClient, spend_waits_within
from .ids import canonical_conversation, conversation_path_id, is_bare, is_user_id
from .keys import Keyring
from .manifest import Conversation, FileEntry, UsersNotFetched
from .model import Code, EventReport, Finding, InputReport, Report, Severity, fails
from .pages import json_value_bound
from .paging import SavedWalk, page_head, page_missing_reasons
from .sanitize import REDACTED, printable, redact_secret
from .semantics import one_to_one_members
from .settings import AuditOptions

_QUEUE_PAGES = 2  # pages waiting per conversation: memory stays bounded whatever the fetch speed
_USERS_SAMPLE = 20


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
    """The canonical id events must carry: from the id itself, else (a bare user id) from the
    metadata's ``data.id``, only if it is a 1:1 conversation with that user (the server chooses
    that text)."""
    if not is_bare(conversation_id):
        return canonical_conversation(conversation_id)
    if metadata:
        try:
            meta_id = json.loads(metadata).get("data", {}).get("id")
        except (ValueError, AttributeError, RecursionError):
            meta_id = None
        if isinstance(meta_id, str) and ("-" in meta_id or ":" in meta_id):
            try:
                conversation_path_id(meta_id)
            except ValueError:
                return None
            canonical = canonical_conversation(meta_id)
            if conversation_id.strip() in (one_to_one_members(canonical) or ()):
                return canonical
    return None


def served_problems(named: str, served: Sequence[str]) -> list[tuple[str, str]]:
    """For a bare user id: every conversation the server served for it must be a 1:1 conversation
    with that user (the events say which conversation they are of; an audit of "my conversation
    with X" that got a group's history, or another pair's, must not pass). Full ids need no
    check: events of any other conversation are ``conversation_mismatch``."""
    if not is_bare(named):
        return []
    user = named.strip()
    return [(f"conversation {printable(user)}", f"asked for the 1:1 conversation with user {printable(user)}; the "
             f"server served conversation {printable(cid)}, which is not one") for cid in served
            if user not in (one_to_one_members(cid) or ())]


def prepare_new_evidence(root: str, force: bool) -> None:
    """A new ``--save DIR`` must not silently replace evidence: refused (``UsageError``) unless
    ``force``, which removes the old evidence first, so no manifest is overwritten and no page file
    of the old audit is left behind next to the new one."""
    where = Path(root)
    if where.exists() and not where.is_dir():
        raise UsageError(f"--save {printable(root)}: not a directory")
    try:  # before any request: a path that cannot hold evidence is found now, not after the fetch
        where.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--save {printable(root)}: cannot create the directory: {exc.strerror or exc}") from None
    held = existing_evidence(where)
    if not held:
        return
    names = ", ".join(p.name for p in held)
    # an audit writes its manifest before anything else: without one that reads as an evidence manifest
    # these are someone else's files, never deleted (r126: --force removed a user's own keyring.json, keys/
    # or conversations/; r130: beside a manifest.json of their own, a web app's or a package's)
    if not holds_evidence_manifest(where):
        raise UsageError(f"--save {printable(root)} holds {names} but no manifest.json of evidence: not evidence "
                         "an audit wrote, so not replaced (--force or not): give a new or empty directory")
    if not force:
        raise UsageError(f"--save {printable(root)} already holds evidence ({names}): "
                         "pass --resume to continue it, or --force to replace it")
    for path in held:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def check_same_server(saved: object, current: str, force: bool) -> None:
    if force or not isinstance(saved, str) or not saved or saved.rstrip("/") == current.rstrip("/"):
        return
    raise ResumeRefused(f"--resume: the evidence was fetched from {printable(saved)}, not {printable(current)}; "
                        "pass --force to continue it from another server")


class Auditor:
    def __init__(self, client: XChatClient, options: AuditOptions | None = None,
                 progress: AuditProgress | None = None,
                 on_change: Callable[[AuditProgress], None] | None = None) -> None:
        self.client = client
        self.options = options or AuditOptions()
        self.limits = self.options.page_limits()
        self.progress = progress or AuditProgress()
        self.on_change = on_change or (lambda _p: None)
        self.store: EvidenceStore | None = None  # opened by run(), once the ids are known to be good
        self.participants: dict[str, None] = {}
        self.expected_ids: dict[str, str | None] = {}  # conversation as named -> canonical id
        self.bound: dict[str, str] = {}  # a bare id resumed for a full id named -> that canonical id
        self.incomplete: dict[str, list[str]] = {}  # conversation as named -> why not fetched to its end
        self.errors: list[tuple[str, str]] = []
        self.users_not_fetched: UsersNotFetched | None = None
        self.stopping = threading.Event()  # set on interrupt: fetchers stop after their current file
        self.verification: Verification | None = None
        self.key_users: list[str] = []
        self.metadata_seconds: dict[str, float] = {}  # conversation as named -> its metadata request's time
        self.metadata_unavailable: dict[str, str] = {}  # conversation as named -> why its metadata request failed
        self.fetch_times: dict[str, list[str]] = {}  # conversation as named -> when each page it used was
        # fetched (replayed ones too)

    def run(self, conversation_ids: Sequence[str]) -> Report:
        self.options.check()  # also when changed after construction
        by_path: dict[str, str] = {}
        for cid in conversation_ids:  # validate every id before any request; one fetch per conversation,
            conversation_path_id(cid)  # however it is written (A:B, B:A, A-B, B-A)
            # stripped, as the path is: a spaced id (" A:B", a CRLF file's "A:B\r") was the expected
            # conversation of its events as given, every one a conversation_mismatch (round 81)
            by_path.setdefault(canonical_conversation(cid.strip()), cid.strip())
        self._open_store()
        self._learn_saved_tokens()
        if self.store is not None:  # --resume: each conversation under the name its evidence has, however
            saved: dict[str, str] = {}  # it is written now (review 79: A-B for a saved A:B was a second entry
            for conv in self.store.manifest.conversations:  # on the same files, B:A a second copy)
                saved.setdefault(canonical_conversation(conv.conversation_id), conv.conversation_id)
            for conv in self.store.manifest.conversations:  # a bare user id: the 1:1 conversation its
                if is_bare(conv.conversation_id) and conv.expected_conversation_id:  # metadata named
                    saved.setdefault(canonical_conversation(conv.expected_conversation_id), conv.conversation_id)
            resumed = {key: saved.get(key, cid) for key, cid in by_path.items()}  # (round 81: A:X for a saved
            for key, cid in by_path.items():  # X was a second entry, its PASS not reproduced)
                # named A:X, resumed under the bare X: still held to A:X, not to whichever 1:1 conversation
                # with X the server's metadata names now (round 84: C:X's history passed as A:X's)
                if is_bare(resumed[key]) and not is_bare(cid):
                    self.bound[resumed[key]] = key
            by_path = resumed
        conversation_ids = list(dict.fromkeys(by_path.values()))
        opts = self.options
        verification = Verification(conversation_keys=opts.conversation_keys, strict=opts.strict,
                                    allow_embedded_keys=opts.allow_embedded_keys, allow_empty=opts.allow_empty,
                                    allow_partial=opts.allow_partial, workers=opts.workers,
                                    reviewers=opts.reviewers, judge_paging=False)  # the walk judges it
        self.progress.conversations = len(conversation_ids)
        try:
            self._fetch_conversations(conversation_ids, verification)
            keyring = self._fetch_keys(verification, *self._other_saved_users(conversation_ids))
        finally:
            self._close_store()
        for source, message in ordered_errors(self.errors):
            verification.add_input_error(source, message)
        if opts.fallback_keys:  # keys a ledger kept for slots the directory no longer serves
            keyring.add_fallback(opts.fallback_keys)
        report = verification.finish(keyring)
        self.verification = verification  # for a ledger: event_facts() and the keyring used
        verification.scrub = self.client.scrub  # what the ledger records, scrubbed as the report is
        # replayed pages were fetched by an earlier run
        verification.fetched = earliest_utc(t for times in self.fetch_times.values() for t in times)
        token_files = self.store.token_files() if self.store else []
        report = add_findings(report, audit_findings(token_files, self.users_not_fetched))
        return scrub_report(report, [self.client.scrub])

    def _open_store(self) -> None:
        """Open (``--resume``) or prepare the ``--save`` directory, after the ids were checked and
        before any request. Why not in ``__init__``: a run refused for a bad id had already created
        the directory, or with ``--force`` deleted the evidence it held."""
        opts = self.options
        if not opts.save_dir:
            return
        if opts.resume:
            self.store = EvidenceStore.open(opts.save_dir)
            check_same_server(self.store.manifest.base_url, self.client.base_url, opts.force)
            self.store.resume()
        else:
            prepare_new_evidence(opts.save_dir, opts.force)
            self.store = EvidenceStore(opts.save_dir, self.client.base_url)

    def _learn_saved_tokens(self) -> None:
        """--resume: the access tokens the evidence's saved bodies hold (``token_at``: an earlier run's,
        maybe not this one's), scrubbed before any request. Learned only as each conversation was
        replayed, a conversation fetched before that one saved its reasons in manifest.json scrubbed of
        the new token alone (round 81: a server echoing the old token in an errors[] detail put it
        there)."""
        if self.store is None or not self.options.resume:
            return
        for entry in self.store.manifest.saved_files():
            if not entry.token_at or entry.file is None:
                continue
            try:
                body = self.store.read_file(entry)
            except EvidenceError:
                continue  # the replay or ``verify DIR`` reports a damaged file
            self.client.also_scrub(token_secrets(entry, body))

    def _fetch_conversations(self, conversation_ids: list[str], verification: Verification) -> None:
        queues: list[queue.Queue[Any]] = [queue.Queue(maxsize=_QUEUE_PAGES) for _ in conversation_ids]
        with ThreadPoolExecutor(max(1, self.options.concurrency)) as pool:
            for cid, q in zip(conversation_ids, queues):
                pool.submit(self._fetch_conversation, cid, q)
            try:
                for cid, q in zip(conversation_ids, queues):
                    before = verification.event_count
                    events = self._consume(q, verification)
                    served = verification.conversations_since(before)
                    record_conversation(verification, cid, self.expected_ids.get(cid), events,
                                        self.incomplete.get(cid, []), served, self.fetch_times.get(cid, []))
                    self.errors += served_problems(cid, served)
            except BaseException:
                # Ctrl-C or a failure while consuming: let every fetcher finish the file it is
                # writing and stop, so the evidence directory stays consistent for --resume.
                self.stopping.set()
                self.client.cancel()
                raise

    def _close_store(self) -> None:
        if self.store is not None:
            try:
                self.store.close()
            except OSError:
                pass  # the journal stays and is replayed on the next read: still consistent

    def _put(self, q: queue.Queue, item: object) -> None:
        """Hand a page to the consumer, waiting while it is busy, unless the run is stopping."""
        while True:
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                if self.stopping.is_set():
                    raise FetchError("interrupted") from None

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
        """Fetch one conversation into ``q``; whatever happens, the consumer gets its end marker and
        ``self.incomplete`` says why the history was not fetched to its end (empty if it was)."""
        error = None
        conv = None
        reasons: list[str] = []
        try:
            if self.store:
                conv = self.store.start_conversation(conversation_id, conversation_path_id(conversation_id))
            started, seconds = time.monotonic(), self.options.max_conversation_seconds
            with spend_waits_within(None if seconds is None else started + seconds):  # its waits, within the
                expected = self._metadata(conversation_id, conv)  # budget (round 97: uncounted, 10 s of 1)
            self.metadata_seconds[conversation_id] = time.monotonic() - started
            self.expected_ids[conversation_id] = expected
            saved = self._replay_saved(conversation_id, conv, q, expected, reasons)
            token, stop = saved.stop()
            if stop:
                reasons.append(self.client.safe(stop, 500))
            elif saved.pages == 0 or token is not None:
                self._fetch_pages(conversation_id, conv, q, expected, saved, token, reasons)
        except (FetchError, EvidenceError) as exc:
            error = str(exc)
        except OSError as exc:
            error = f"cannot save evidence: {exc.strerror or exc}"
        except Exception as exc:  # a bug must not hang the consumer; report it
            error = self.client.safe(f"{type(exc).__name__}: {exc}")
        finally:
            if error:
                self.errors.append((f"fetch {conversation_id}", error))
                reasons.append(f"fetch failed: {error}")
            self.incomplete[conversation_id] = reasons
            if self.store and conv is not None:
                try:
                    self.store.finish_conversation(conv, error, reasons)
                except OSError:
                    pass  # already reported above; the manifest keeps its last consistent state
            self.progress.bump(conversations_done=1)
            try:
                self._put(q, _DONE)
            except FetchError:
                pass  # stopping: nobody consumes any more

    def _metadata(self, conversation_id: str, conv: Conversation | None) -> str | None:
        try:
            fetched = self.client.get_conversation(conversation_id)
        except FetchError as exc:  # participants then come from the events alone
            self.progress.status = f"conversation metadata unavailable: {exc}"
            self.metadata_unavailable[conversation_id] = self.client.scrub(str(exc))
            if conv is not None and conv.metadata is not None:  # --resume: an earlier run's stays in the
                saved = self._saved_body(conv.metadata)  # evidence, and ``verify DIR`` judges it (round 97:
                if saved is not None:  # its malformed participant was exit 3 there, unseen here: exit 0)
                    self._note_metadata(conversation_id, saved)
            # what the pages are checked against, saved as when the metadata answers: ``verify DIR`` checks
            # them against the manifest's word alone (round 97: unsaved, a full id's pages of another
            # conversation were conversation_mismatch here, and passed there); resumed, a bare id keeps
            # the conversation an earlier run's metadata named
            expected = self.bound.get(conversation_id) or expected_conversation(conversation_id, None) or \
                (conv.expected_conversation_id if conv is not None else None)
            if self.store and conv is not None:
                self.store.set_expected(conv, expected)
            return expected
        if self.store and conv is not None:
            self.store.save_metadata(conv, fetched, self.client.token_offsets(fetched.body))
        self._note_metadata(conversation_id, fetched.body)
        expected = self.bound.get(conversation_id) or expected_conversation(conversation_id, fetched.body)
        if self.store and conv is not None:
            self.store.set_expected(conv, expected)
        return expected

    def _note_metadata(self, conversation_id: str, body: bytes) -> None:
        """A metadata body's problems (input errors) and participants (whose keys are fetched)."""
        for problem in metadata_problems(body):
            self.errors.append((f"metadata {conversation_id}", problem))
        for uid in participants_of(body):
            self.participants.setdefault(uid)

    def _replay_saved(self, conversation_id: str, conv: Conversation | None, q: queue.Queue, expected: str | None,
                      reasons: list[str]) -> SavedWalk:
        """With --resume, feed the pages already saved and re-derive from them (never from the
        manifest's ``complete``) whether and where the history goes on."""
        saved = SavedWalk(self.limits)
        if conv is None:
            return saved
        for index, page in enumerate(self.store.page_inputs(conv)):
            self._check_saved_page(page)
            if conv.pages[index].token_at:  # an earlier run's token, maybe not this one's
                self.client.also_scrub(token_secrets(conv.pages[index], page.body))
            saved.see(page.body, conv.pages[index].url, index + 1)
            self.fetch_times.setdefault(conversation_id, []).append(conv.pages[index].fetched_at)
            self.store.note_token(conv, index, self.client.token_offsets(page.body))
            page.conversation_id = expected
            self._put(q, page)
        reasons += [self.client.safe(r, 500) for r in saved.page_reasons]
        if saved.chain_problem:
            raise EvidenceError(f"cannot resume {conversation_id}: {saved.chain_problem}")
        return saved

    def _check_saved_page(self, page: PageInput) -> None:
        """A saved page gets the same limits as a fetched one before the engine decodes it."""
        body = page.body
        assert isinstance(body, bytes)  # saved pages are read as bytes
        if len(body) > self.client.policy.max_body_bytes or \
                json_value_bound(body) > self.client.policy.max_json_values or \
                page_head(body, self.limits.max_page_items).items > self.limits.max_page_items:
            raise EvidenceError(f"saved page {printable(page.source)} exceeds the response limits "
                                "(--max-response-mb, --max-json-values, --max-page-items)")

    def _fetch_pages(self, conversation_id: str, conv: Conversation | None, q: queue.Queue, expected: str | None,
                     saved: SavedWalk, token: str | None, reasons: list[str]) -> None:
        walk = self.client.iter_conversation_events(conversation_id, max_results=self.options.max_results,
                                                    limits=self.limits, pagination_token=token,
                                                    seen_tokens=saved.seen, first_page=saved.pages + 1,
                                                    seen_events=saved.seen_events)
        walk.budget.seconds = self.metadata_seconds.get(conversation_id, 0.0)  # the walk's budget paid for it
        number = saved.pages
        for fetched, next_token in walk:
            number += 1
            self.fetch_times.setdefault(conversation_id, []).append(fetched.fetched_at)
            if walk.last_head is not None:
                reasons += [self.client.safe(r, 500) for r in page_missing_reasons(walk.last_head, number)]
            if self.store and conv is not None:
                source = self.store.save_page(conv, fetched, next_token, self.client.token_offsets(fetched.body))
            else:
                source = fetched.url
            self._put(q, PageInput(source, fetched.body, expected))
            if self.stopping.is_set():
                raise FetchError("interrupted")
        if walk.stopped:
            reasons.append(self.client.safe(walk.stopped, 500))

    # ------------------------------------------------------------------ keys
    def _other_saved_users(self, named: Sequence[str]) -> tuple[list[str], list[str]]:
        """With --resume: the signers and the metadata's participants of the directory's conversations
        this run does not name. ``verify DIR`` checks every saved conversation against the directory's
        keys, which each run replaces, so a resume of some conversations must fetch the others' keys too
        (review: resuming the 1:1 conversation alone dropped the group members' keys). A damaged saved
        file is skipped here; ``verify DIR`` reports it."""
        if self.store is None or not self.options.resume:
            return [], []
        side = Verification(judge_paging=False)  # decodes the pages only to learn who signed them
        # an empty keyring: each event is settled as it is read (no key, no ECDSA), not kept waiting for
        # a check that never runs (review 42: 30 MB held for 30,000 saved events)
        side.expect_keyring(Keyring.from_json('{"keys": []}'), facts=False)
        participants: dict[str, None] = {}
        this_run = set(named)
        for conv in self.store.manifest.conversations:
            if conv.conversation_id in this_run:
                continue
            if conv.metadata is not None:
                participants.update(dict.fromkeys(participants_of(self._saved_body(conv.metadata) or b"")))
            for entry in conv.pages:
                body = self._saved_body(entry)
                if body is not None:
                    side.add_page(PageInput(entry.file or "", body, conv.expected_conversation_id))
        return side.user_ids(), list(participants)

    def _saved_body(self, entry: FileEntry) -> bytes | None:
        assert self.store is not None
        try:
            return self.store.read_file(entry)
        except EvidenceError:
            return None

    def _fetch_keys(self, verification: Verification, saved_signers: Sequence[str] = (),
                    saved_participants: Sequence[str] = ()) -> Keyring:
        """Keys of every signer seen in the events first, then of the metadata's participants, up to
        ``max_users``; the rest are reported, values that are not user ids are input errors. With
        --resume, the users of the directory's other conversations (``_other_saved_users``) too."""
        named = list(dict.fromkeys([*verification.user_ids(), *self.participants, *saved_signers,
                                    *saved_participants]))  # this run's users first (--max-users)
        valid = [uid for uid in named if is_user_id(uid)]
        self._save("keys", lambda store: store.reset_keys())
        error = "not a user id (named by an event); its keys were not fetched"
        for bad in dict.fromkeys(user_label(uid) for uid in named if not is_user_id(uid)):
            self.errors.append((f"keys {bad}", error))
            self._save(f"keys {bad}", functools.partial(_save_missing_keys, user=bad, error=error))
        limit = self.options.max_users
        fetch, rest = (valid, []) if limit is None else (valid[:limit], valid[limit:])
        self.progress.users = len(fetch)
        bodies: dict[str, Any] = {}
        seconds = self.options.max_conversation_seconds
        deadline = None if seconds is None else time.monotonic() + seconds
        late: set[str] = set()

        def one(uid: str) -> None:
            if deadline is not None and time.monotonic() >= deadline:
                late.add(uid)  # a server slow on every key request cannot hold the run for hours
                return
            try:
                with spend_waits_within(deadline):  # a request kept in rate-limit waits too (round 97)
                    self._fetch_user_keys(uid, bodies)
            except OverBudget:
                late.add(uid)
            except OSError as exc:  # evidence could not be written: the audit is incomplete
                self.errors.append((f"keys {uid}", f"cannot save: {exc.strerror or exc}"))

        with ThreadPoolExecutor(max(1, self.options.concurrency)) as pool:
            list(pool.map(one, fetch))
        self.users_not_fetched = users_not_fetched([u for u in fetch if u in late], rest, limit, seconds)
        self.key_users = [u for u in fetch if u not in late]  # users the directory answered for
        self._save("keys", lambda store: store.set_users_not_fetched(self.users_not_fetched))
        text = self.client.scrub(json.dumps(bodies, indent=2, sort_keys=True))
        self._save("keys keyring.json", lambda store: store.save_keyring(text))
        return Keyring.from_public_key_bodies(bodies)

    def _save(self, source: str, write: Callable[[EvidenceStore], None]) -> None:
        """One evidence write of the key phase; a failure is reported on ``source``, the run goes on."""
        if self.store is None:
            return
        try:
            write(self.store)
        except OSError as exc:
            self.errors.append((source, f"cannot save: {exc.strerror or exc}"))

    def _fetch_user_keys(self, uid: str, bodies: dict[str, Any]) -> None:
        """One user's keys into ``bodies``; 404 means none registered (e.g. a departed member)."""
        try:
            fetched = self.client.get_public_keys(uid)
        except OverBudget:
            raise  # not fetched, for want of time: ``users_not_fetched``, as a user never asked for
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
        self.errors += [(f"keys {uid}", message) for message in key_errors(fetched.body)]
        if self.store:
            self.store.save_keys(uid, fetched, token_at=self.client.token_offsets(fetched.body))
        bodies[uid] = {"data": key_rows(fetched.body, uid)}


def users_not_fetched(late: list[str], rest: list[str], limit: int | None,
                      seconds: float | None) -> UsersNotFetched | None:
    """What the run-level ``users_not_fetched`` warning says: how many, why, and a sample."""
    if not late and not rest:
        return None
    why = []
    if rest:
        why.append(f"--max-users {limit}")
    if late:
        why.append(f"--max-conversation-seconds {seconds:g} ran out during the key requests")
    ids = [*late, *rest]
    return UsersNotFetched(count=len(ids), sample=ids[:_USERS_SAMPLE], limit=limit, why="; ".join(why))


def key_errors(body: bytes) -> list[str]:
    return [f"malformed response: {problem}" for problem in key_body_problems(body)]


def user_label(value: object) -> str:
    """A printable, bounded label for a value that should have been a user id."""
    text = printable(value if isinstance(value, str) else repr(value))
    return text if len(text) <= 40 else text[:40] + "…"


def record_conversation(verification: Verification, named: str, expected: str | None, events: int,
                        reasons: Sequence[str] = (), served: Sequence[str] = (),
                        fetched: Sequence[object] | None = None) -> None:
    """Report every audited conversation, even one without events (it then fails ``no_events``):
    under its canonical id when known, else, if it returned nothing, under the id as named; and
    mark it incomplete for each reason it was not fetched to its end: the canonical id, else the
    conversations its events were reported under (``served``; review 79: a bare id whose metadata was
    unavailable marked only itself, a conversation without events, and the one it fetched part of
    read as complete and passed). A walk without such reasons ended the conversations ``served``:
    its empty oldest page may name none of them itself. ``fetched``: when its pages were fetched
    (``Verification.note_fetch``, for the conversations ``served``, else the one reported)."""
    if fetched is not None:
        verification.note_fetch(served or [expected or named], fetched)
    if expected:
        verification.expect_conversation(expected)
    elif events == 0:
        verification.expect_conversation(named)
    for reason in reasons:
        for cid in [expected] if expected else served or [named]:
            verification.mark_incomplete(cid, reason)
    if not reasons:
        verification.credit_end(served)


expect_conversation = record_conversation  # the name before incomplete reasons existed


def ordered_errors(errors: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Fetch failures first, then key failures, each by source: independent of thread timing."""
    return sorted(errors, key=lambda e: (not e[0].startswith("fetch "), e[0]))


# ------------------------------------------------------------------------------------- findings
def audit_findings(token_files: list[str], users_not_fetched: UsersNotFetched | None) -> list[Finding]:
    """Run-level findings the audit adds to the engine's (the same from the saved evidence)."""
    out = []
    if token_files:
        files = sorted(set(token_files))
        out.append(Finding("evidence_contains_token", "warning",
                           f"{len(files)} saved response bodies contain the access token (the server echoed it), "
                           f"e.g. {files[0]}; they are kept byte for byte as evidence: revoke the token and do "
                           "not share the evidence directory as it is"))
    if users_not_fetched:
        count, sample = users_not_fetched.count, users_not_fetched.sample
        more = " …" if count > len(sample) else ""
        why = users_not_fetched.why or f"--max-users {users_not_fetched.limit}"
        out.append(Finding("users_not_fetched", "warning",
                           f"the keys of {count} more users named by the server were not fetched "
                           f"({printable(why)}): {', '.join(sample)}{more}"))
    return out


def add_findings(report: Report, findings: list[Finding]) -> Report:
    """Append run-level findings; one that fails (an error, or a warning with ``--strict``) fails
    the verdict and every conversation, as the engine does for its own run-level findings."""
    if not findings:
        return report
    report.findings = [*report.findings, *findings]
    if any(fails(f.severity, report.strict) for f in findings):
        report.verdict = "fail"
        for conv in report.conversations:
            conv.verdict = "fail"
    return report


def scrub_report(report: Report, scrubbers: list[Callable[[str], str]]) -> Report:
    """The report with every secret removed from every string (event fields, finding messages, API
    errors, conversation ids: the server chose much of that text), in place.

    Strings are checked as the JSON encoder renders them, a thousand items at a time (memory stays
    bounded on a million-event report), so a token the server hid behind JSON escapes (``\\u0074``)
    is found too; only items that hold a secret are rebuilt. A bearer token has no character JSON
    escapes (RFC 6750), so it appears verbatim in the encoded text."""
    if not scrubbers:
        return report
    fixed = _fixed_words()

    def dirty(obj: Any) -> bool:
        text = msgspec.json.encode(obj).decode()
        return any(scrub(text) != text for scrub in scrubbers)

    def clean(value: Any, keys: bool = True) -> Any:
        if isinstance(value, str):
            if value in fixed:  # the tool's own words, never a server's: a code, a status, a severity
                return value
            for scrub in scrubbers:
                value = scrub(value)
            return value
        if isinstance(value, list):
            return [clean(v, keys) for v in value]
        if isinstance(value, dict):
            return {(clean(k) if keys else k): clean(v, keys) for k, v in value.items()}
        return value

    def rebuilt(item: Any, kind: type) -> Any:
        plain = msgspec.to_builtins(item)
        try:
            return msgspec.convert(clean(plain), kind)
        except msgspec.ValidationError:  # a secret inside a field's name ("index"): the names stay
            return msgspec.convert(clean(plain, keys=False), kind)

    def scrubbed(items: list, kind: type) -> list:
        for start in range(0, len(items), 1000):
            if dirty(items[start:start + 1000]):
                for i in range(start, min(start + 1000, len(items))):
                    if dirty(items[i]):
                        items[i] = rebuilt(items[i], kind)
        return items

    report.findings = scrubbed(list(report.findings), Finding)
    report.inputs = scrubbed(list(report.inputs), InputReport)
    for conv in report.conversations:
        conv.conversation_id = clean(conv.conversation_id)
        conv.findings = scrubbed(list(conv.findings), Finding)
        conv.events = scrubbed(conv.events, EventReport)
    return report


@functools.lru_cache(maxsize=1)
def _fixed_words() -> frozenset[str]:
    """The report's vocabulary (finding codes, statuses, severities, verdicts): the scrubber leaves
    them whole. Review 69: an evidence directory's ``token_at`` names the "token" its pages hold, so
    a forger made ``evidence_keys_unauthenticated`` the secret and the finding's code was redacted
    (the check that keeps such a run out of the ledger read that code)."""
    from .model import VOCABULARY, ChainStatus, SigStatus, Verdict
    return frozenset(str(word) for group in (VOCABULARY, SigStatus, ChainStatus, Severity, Verdict) for word in group)


def secret_scrubber(secrets: set[str]) -> Callable[[str], str]:

    def scrub(text: str) -> str:
        for secret in secrets:
            text = redact_secret(text, secret, REDACTED)
        return text
    return scrub


# ------------------------------------------------------------------------------------- offline
def verify_saved_audit(root: str, keyring: Keyring | None = None, *, fallback_keys: Sequence[Any] = (),
                       observe: Callable[[Verification], None] | None = None, trust_evidence_keys: bool = False,
                       receipt_key: Any = None, **options: Any) -> Report:
    """Re-verify a ``--save`` directory offline; the audit's findings and verdicts, with the keys
    judged for what they are.

    Completeness is re-derived from the saved pages when the manifest claims it, so an edited
    ``complete: true`` cannot turn a partial history into a PASS. ``keyring`` replaces the saved
    key responses (e.g. keys compared out of band). Without it the saved key responses are used,
    and they authenticate nothing (whoever wrote the directory chose them: review 65), so the run
    has the error ``evidence_keys_unauthenticated`` unless ``receipt_key`` (a receipt verify key,
    ``receipts.load_verify_key``) verifies the directory's ``receipt.json`` over this evidence, or
    ``trust_evidence_keys`` accepts them (the finding is then information). ``fallback_keys`` (a
    ledger's) serve only (user, version) slots the keyring lacks; ``observe`` gets the finished
    ``Verification``."""
    if keyring is not None and (trust_evidence_keys or receipt_key is not None):
        raise UsageError("trust_evidence_keys and receipt_key judge the saved keys, which keyring replaces: give one")
    if trust_evidence_keys and receipt_key is not None:
        raise UsageError("receipt_key authenticates the saved keys; trust_evidence_keys takes them on trust: give one")
    if receipt_key is not None and not hasattr(receipt_key, "verify"):
        from .receipts import load_verify_key
        receipt_key = load_verify_key(_path_or_value(receipt_key))  # a base64 key or a key file
    saved = load_saved_audit(root)
    verification = Verification(**{**options, "judge_paging": False})  # the saved walk judges it
    errors: list[tuple[str, str]] = []
    try:
        for conv in saved.conversations:
            errors += _replay_conversation(verification, conv)
    except (KeyError, TypeError, AttributeError) as exc:
        raise EvidenceError(f"{root}/manifest.json lists a malformed page entry ({type(exc).__name__}: {exc})") from None
    add_saved_errors(verification, saved, errors, keys_given=keyring is not None)
    saved_keys = None if keyring is not None else \
        evidence_key_trust(root, receipt_key, saved) if receipt_key is not None else \
        EvidenceKeys("trusted" if trust_evidence_keys else "unauthenticated")
    if keyring is None:
        keyring = saved_keyring(saved)
    if fallback_keys:
        keyring.add_fallback(fallback_keys)
    report = verification.finish(keyring)
    if saved.secrets:
        verification.scrub = secret_scrubber(saved.secrets)  # the ledger records facts as the report shows them
    verification.fetched = saved.earliest_fetch()  # when the audit fetched them, not now
    if observe is not None:
        observe(verification)
    return finish_saved_report(report, saved, saved_keys)


@dataclass(frozen=True)
class EvidenceKeys:
    """How far an evidence directory's saved key responses are trusted when they are the keys used:
    ``unauthenticated`` (an error), ``trusted`` (the caller's word, --trust-evidence-keys: information)
    or ``receipt`` (a receipt signed by a key the caller trusts covers them: authenticated)."""

    trust: str
    why: str = ""  # the receipt's problems, when a receipt was given and does not hold
    time: str = ""  # when the receipt says its audit ran (a receipt that holds)
    signer: str = ""  # the receipt's public key (base64), so a reader can compare it with the auditor's


def _path_or_value(key: Any) -> str:
    if isinstance(key, (str, os.PathLike)):
        return os.fspath(key)
    raise UsageError(f"receipt_key must be a verify key (receipts.load_verify_key), a base64 key or a key file, "
                     f"not {type(key).__name__}")


def evidence_key_trust(root: str, receipt_key: Any, saved: SavedAudit) -> EvidenceKeys:
    """Whether ``root/receipt.json`` is signed by ``receipt_key`` over the manifest ``saved`` was
    read from (snapshot, no journal line on top): every saved file used was checked against that
    manifest as it was read, so the receipt's signer then vouches for the saved key responses.
    Bound to what was read, never to a second read of the directory (review 66: a directory
    swapped between two reads lent forged keys an honest receipt's word)."""
    from .inputs import read_regular_file
    from .receipts import MAX_RECEIPT_BYTES, ReceiptError, parse_receipt, verify_receipt
    path = os.path.join(root, "receipt.json")
    try:
        receipt = parse_receipt(read_regular_file(path, MAX_RECEIPT_BYTES, printable(path), ReceiptError),
                                printable(path))
        problems = verify_receipt(receipt, receipt_key)  # the signature alone
    except ReceiptError as exc:
        return EvidenceKeys("unauthenticated", str(exc))
    signed = receipt.get("evidence_manifest_digest")
    if signed is None:
        problems.append("the receipt names no evidence (the audit ran without --save)")
    elif signed != saved.manifest_digest:
        problems.append("the evidence manifest differs from the one the receipt signs")
    elif saved.unfolded:
        problems.append(f"the evidence has {saved.unfolded} journal record(s) after the manifest the receipt signs")
    if problems:
        return EvidenceKeys("unauthenticated", "; ".join(problems))
    return EvidenceKeys("receipt", time=str(receipt.get("time", "")), signer=str(receipt.get("public_key", "")))


def add_saved_errors(verification: Verification, saved: SavedAudit, errors: list[tuple[str, str]], *,
                     keys_given: bool) -> None:
    """The input errors of ``verify DIR``, in its order: ``errors`` (the conversations'), then the
    saved keys' and files', then keys never fetched (unless the caller gives keys)."""
    errors = errors + saved.key_errors + saved.file_errors
    if not saved.keys_fetched and not keys_given:
        errors.append(("keys", "keys not fetched (the audit stopped before its key phase): resume the "
                               "audit or pass --keys"))
    for uid, body in saved.keyring_bodies.items():
        errors += [(f"keys {uid}", message) for message in key_errors(body)]
    for source, message in ordered_errors(errors):
        verification.add_input_error(source, message)


def saved_keyring(saved: SavedAudit) -> Keyring:
    """An evidence directory's own keys, as ``verify DIR`` uses them without ``--keys``."""
    return Keyring.from_public_key_bodies({uid: {"data": key_rows(body, uid)} for uid, body in saved.keyring_bodies.items()})


def saved_conversation_errors(conv: SavedConversation) -> list[tuple[str, str]]:
    """A saved conversation's own input errors: its fetch error and its metadata's problems."""
    errors = [(f"fetch {conv.named}", conv.error)] if conv.error else []
    if conv.metadata is not None:
        errors += [(f"metadata {conv.named}", problem) for problem in metadata_problems(conv.metadata)]
    return errors


def finish_saved_report(report: Report, saved: SavedAudit, saved_keys: EvidenceKeys | None) -> Report:
    """What ``verify DIR`` adds to the engine's report: the audit's findings, how far the saved keys
    are trusted when they were used (``saved_keys``; None when the caller gave the keys), and the
    access token scrubbed wherever the saved bodies held it."""
    if saved_keys is not None:  # first, as the engine's own finding about keys (no_trusted_keys) is
        keys, engine_findings = _evidence_keys_finding(report, saved_keys, saved.base_url), report.findings
        report.findings = []
        report = add_findings(report, [keys, *engine_findings])
    report = add_findings(report, audit_findings(saved.token_files, saved.users_not_fetched))
    return scrub_report(report, [secret_scrubber(saved.secrets)] if saved.secrets else [])


def _evidence_keys_finding(report: Report, saved_keys: EvidenceKeys, base_url: str) -> Finding:
    """Labels the report's keys as the evidence's, and says whether anything vouches for them."""
    code = Code.EVIDENCE_KEYS_UNAUTHENTICATED.value
    if saved_keys.trust == "receipt":
        report.key_source = report.key_source.replace("keyring", "evidence+receipt", 1)
        return Finding(Code.EVIDENCE_KEYS_VOUCHED.value, Severity.INFO.value,
                       "signer keys from the evidence directory's saved key responses, covered by its receipt.json "
                       f"(signed by receipt key {printable(saved_keys.signer)}, the key given; audit of "
                       f"{printable(saved_keys.time) or 'an unstated time'}): they are what "
                       f"{printable(base_url) or 'the API'} served that audit")
    report.key_source = report.key_source.replace("keyring", "evidence", 1)
    report.proof.keys_authenticated = False
    if saved_keys.trust == "trusted":
        return Finding(code, Severity.INFO.value, "signer keys from the evidence directory's saved key responses, "
                                                  "taken on trust (--trust-evidence-keys): nothing authenticates them")
    if saved_keys.why:  # a receipt was given: it is the one thing that did not work
        return Finding(code, Severity.ERROR.value, "signer keys from the evidence directory's saved key responses, "
                       f"which nothing authenticates: the receipt does not hold ({printable(saved_keys.why)}). Pass "
                       "--keys (keys you fetched yourself, not the directory's keyring.json) instead")
    return Finding(code, Severity.ERROR.value, "signer keys from the evidence directory's saved key responses, which "
                   "nothing authenticates: whoever wrote the directory chose them. Pass --keys (keys you fetched "
                   "yourself, not the directory's keyring.json), --receipt-public-key (verify, transcript), or, for your own "
                   "evidence, --trust-evidence-keys")


def _replay_conversation(verification: Verification, conv: SavedConversation) -> list[tuple[str, str]]:
    """Feed one saved conversation; its input errors. Incomplete reasons are the audit's own when it
    recorded any, else re-derived from the pages (they are then [] only if the pages reach the end)."""
    walk = SavedWalk()
    before = verification.event_count
    for number, page, entry in conv.pages:
        assert isinstance(page.body, bytes)  # saved pages are always read as bytes
        walk.see(page.body, entry.url, number)
        verification.add_page(page)
    reasons = conv.incomplete or walk.reasons(conv.error)
    served = verification.conversations_since(before)
    record_conversation(verification, conv.named, conv.expected, verification.event_count - before, reasons, served,
                        [entry.fetched_at for entry in conv.entries])
    return saved_conversation_errors(conv) + served_problems(conv.named, served)


def audit_conversation(conversation_id: str | Sequence[str], client: XChatClient,
                       options: AuditOptions | None = None) -> Report:
    """Fetch, verify and report one conversation (or several)."""
    ids = [conversation_id] if isinstance(conversation_id, str) else list(conversation_id)
    return Auditor(client, options).run(ids)


async def audit_conversation_async(conversation_id: str | Sequence[str], client: XChatClient,
                                   options: AuditOptions | None = None) -> Report:
    """Awaitable form: runs the (thread-pooled) audit off the event loop."""
    return await asyncio.to_thread(audit_conversation, conversation_id, client, options)


def _save_missing_keys(store: EvidenceStore, user: str, error: str) -> None:
    store.save_keys(user, None, error)
