"""What an archive holds, and how it is cut into tasks. No Dask here: the coordinator plans, workers read.

An archive is a list of SOURCEs: page files (one JSON body, JSON Lines, gzip), directories written
by ``audit --save`` (evidence), or directory trees holding either. They form *groups*, each one run
of the engine exactly as ``verify`` would run it:

* every page file found, in order, is one group (``verify FILE...``), placed where its first file is;
* each evidence directory is a group of its own (``verify DIR``): it brings its own saved keys and
  completeness, and the same conversation saved twice is two snapshots, not one history;
* a SOURCE that cannot be used at all (an unusable evidence directory, a tree with no pages) is a
  failed group: one input error, like an unreadable file.

A tree is walked in name order (hidden entries and directory symlinks skipped); inside it, only
page-like names are read (``PAGE_SUFFIXES``), while a file named on the command line is always read.
Paths with a scheme (``s3://``, ``gcs://``, ``file://``) are read through fsspec; evidence
directories must be local (their confinement checks are path-based).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EvidenceError, UsageError
from ..evidence import SavedAudit, load_saved_audit
from ..inputs import is_evidence_dir
from ..manifest import PageEntry

PAGE_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
_EMPTY_TREE = "no page files or evidence directories under it"


@dataclass(frozen=True)
class PageFile:
    """A page file (local path or fsspec URL); ``error`` when the coordinator already knows it fails."""

    path: str
    size: int = 0
    error: str = ""


@dataclass(frozen=True)
class SavedPage:
    """One saved page of an evidence directory, read and SHA-256 checked by the worker."""

    root: str
    entry: PageEntry
    expected: str | None  # the conversation it was fetched for (manifest), if known
    conversation: int  # position of its saved conversation in the manifest
    size: int = 0
    number: int = 0  # its place in the conversation's saved pages (page-NNNNN)


Unit = PageFile | SavedPage


@dataclass
class Group:
    """One run of the engine: loose pages (``kind`` "pages"), an evidence directory ("evidence"), or a
    SOURCE that could not be used ("failed", with ``error``)."""

    kind: str
    source: str
    units: list[Unit] = field(default_factory=list)
    saved: SavedAudit | None = None
    error: str = ""


def is_url(source: str) -> bool:
    return "://" in source and not os.path.exists(source)


def discover(sources: list[str]) -> list[Group]:
    """Groups in SOURCE order; raises ``UsageError`` only for what no run could read (``-``)."""
    groups: list[Group] = []
    loose: Group | None = None

    def add_file(unit: PageFile) -> None:
        nonlocal loose
        if loose is None:
            loose = Group("pages", unit.path)
            groups.append(loose)
        loose.units.append(unit)

    for source in sources:
        if source == "-":
            raise UsageError("archive verify reads files and directories, not standard input (-)")
        before = len(groups), (len(loose.units) if loose else 0)
        if is_url(source):
            try:
                _discover_url(source, groups, add_file)
            except Exception as exc:  # fsspec: an unknown protocol, its package missing, the store's own kinds
                groups.append(Group("failed", source, error=f"cannot read it: {type(exc).__name__}: {exc}"))
        elif os.path.isdir(source):
            _discover_tree(source, groups, add_file)
        else:
            add_file(PageFile(source, _size(source)))  # a missing file is verify's input error
        if (len(groups), (len(loose.units) if loose else 0)) == before:
            groups.append(Group("failed", source, error=_EMPTY_TREE))
    return groups


def _discover_tree(path: str, groups: list[Group], add_file: Any) -> None:
    """Depth first, in name order, with a stack of listings rather than recursion (round 92: a tree
    1,200 directories deep raised RecursionError in the coordinator, and no SOURCE was verified)."""
    listings: list[Iterator[str]] = []

    def enter(directory: str) -> None:
        if is_evidence_dir(directory):
            groups.append(evidence_group(directory))
            return
        try:
            names = sorted(os.listdir(directory))
        except OSError as exc:
            groups.append(Group("failed", directory, error=f"cannot list it: {exc.strerror or exc}"))
            return
        listings.append(iter([name for name in names if not name.startswith(".")]))
        parents.append(directory)

    parents: list[str] = []
    enter(path)
    while listings:
        name = next(listings[-1], None)
        if name is None:
            listings.pop()
            parents.pop()
            continue
        child = os.path.join(parents[-1], name)
        if os.path.isdir(child):
            if not os.path.islink(child):
                enter(child)
        elif name.endswith(PAGE_SUFFIXES):
            if os.path.isfile(child):
                add_file(PageFile(child, _size(child)))
            else:  # a FIFO or device found in a tree: reading it would hang or never end
                add_file(PageFile(child, error="cannot read it: not a regular file"))


def _discover_url(url: str, groups: list[Group], add_file: Any) -> None:
    import fsspec  # a dependency of dask: there when the archive extra is installed

    fs, root = fsspec.core.url_to_fs(url)
    protocol = url.split("://", 1)[0]
    if not fs.isdir(root):
        add_file(_url_file(url, root, fs))
        return
    if fs.exists(f"{root.rstrip('/')}/manifest.json"):
        groups.append(Group("failed", url, error="an evidence directory must be a local path"))
        return
    found = [path for path in sorted(fs.find(root)) if not any(p.startswith(".") for p in path[len(root):].split("/"))]
    # an evidence directory found in the tree is not read as loose pages either (round 92: its manifest,
    # keyring and keys were read as pages, its pages without their SHA-256 checks and saved walk)
    evidence = {path.rsplit("/", 1)[0] for path in found if path.rsplit("/", 1)[-1] == "manifest.json"}
    failed: set[str] = set()
    for path in found:
        holder = next((e for e in evidence if path.startswith(e + "/")), None)
        if holder is not None:
            if holder not in failed:
                failed.add(holder)
                groups.append(Group("failed", f"{protocol}://{holder}", error="an evidence directory must be a local path"))
        elif path.rsplit("/", 1)[-1].endswith(PAGE_SUFFIXES):
            add_file(_url_file(f"{protocol}://{path}" if protocol != "file" else path, path, fs))


def _url_file(name: str, path: str, fs: Any) -> PageFile:
    """A page file found through a URL; a local one that is a FIFO or a device is an input error,
    as in a local tree (review 45: reading a FIFO named like a page hung the run; review 46: through
    ``local://`` too: the file system, not the scheme's name, says it is local)."""
    from fsspec.implementations.local import LocalFileSystem
    if isinstance(fs, LocalFileSystem):
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                return PageFile(name, error="cannot read it: not a regular file")
        except OSError:
            pass  # missing or unreadable: the read says so
    return PageFile(name, int(fs.size(path) or 0) if fs.exists(path) else 0)


def evidence_group(root: str) -> Group:
    """An evidence directory's group: manifest, metadata and saved keys read now (small), pages later."""
    try:
        saved = load_saved_audit(root)
    except EvidenceError as exc:
        return Group("failed", root, error=str(exc))
    group = Group("evidence", root, saved=saved)
    for number, conv in enumerate(saved.conversations):
        for page, entry in enumerate(conv.entries, 1):
            group.units.append(SavedPage(root, entry, conv.expected, number, _entry_size(entry), page))
    return group


def _entry_size(entry: PageEntry) -> int:
    return max(0, entry.bytes)


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


# ------------------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class Task:
    """A contiguous run of one group's units (pages in run order): the unit of work of a worker."""

    number: int
    group: int
    units: tuple[Unit, ...]


MIN_TASK_BYTES = 256 * 1024
MAX_TASK_BYTES = 8 * 1024 * 1024
TASKS_PER_WORKER = 4


def task_bytes(groups: list[Group], workers: int) -> int:
    """Enough tasks to balance the workers (a few each), none so small that Dask's per-task cost
    shows, none so large that memory or a retry hurts."""
    total = sum(u.size for g in groups for u in g.units)
    return max(MIN_TASK_BYTES, min(MAX_TASK_BYTES, total // max(1, workers * TASKS_PER_WORKER)))


def plan(groups: list[Group], target: int) -> list[Task]:
    """Cut each group into tasks of about ``target`` bytes. Saved conversations stay whole unless
    larger than a task; then they are split at page boundaries (signatures checked in parts, the
    chain joined). Loose files are cut between files: a conversation that straddles a cut is
    joined the same way, so where the cuts fall never changes the report."""
    tasks: list[Task] = []
    for number, group in enumerate(groups):
        current: list[Unit] = []
        size = run = 0  # bytes of the task, and of the saved conversation it ends with
        for unit in group.units:
            boundary = not isinstance(unit, SavedPage) or not current or \
                getattr(current[-1], "conversation", None) != unit.conversation
            if boundary:
                run = 0
            if current and size >= target and (boundary or run >= target):
                tasks.append(Task(len(tasks), number, tuple(current)))
                current, size, run = [], 0, 0
            current.append(unit)
            size += max(unit.size, 1)
            run += max(unit.size, 1)
        if current:
            tasks.append(Task(len(tasks), number, tuple(current)))
    return tasks
