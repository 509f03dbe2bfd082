"""Conformance vector runner (docs/vectors.md): run every ``<group>/<case>/expected.json`` against
xchat-verify itself or against any implementation of the protocol (``--impl COMMAND``), compare
under a profile, and write results; export the suite as a deterministic tarball.

The comparison works on the minimal report (``vectors/report.schema.json``) as a plain dict, so
xchat-verify in-process and an external command are judged by exactly the same rules.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import select
import shlex
import shutil
import signal
import stat
import subprocess
import tarfile
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from .errors import InputError, UsageError
from .inputs import FileRefused, copy_regular_file
from .model import ChainStatus, SigStatus
from .sanitize import encodable, printable

CASE_FILE = "expected.json"
INDEX_FILE = "index.json"
CHECKSUMS_FILE = "SHA256SUMS"
SCHEMA_FILES = ("report.schema.json", "expected.schema.json")
PROFILES = ("signatures", "chain", "full")
DEFAULT_TIMEOUT = 30.0
MAX_REPORT_BYTES = 64 * 1024 * 1024
MAX_STDERR_BYTES = 64 * 1024
MAX_SPEC_BYTES = 16 * 1024 * 1024  # an expected.json or index.json (the committed ones are a few KiB)
MAX_INPUT_BYTES = 512 * 1024 * 1024  # a page or keyring copied for a case (the verifier's default limit)
SIG_STATUSES = frozenset(str(s) for s in SigStatus)
CHAIN_STATUSES = frozenset(str(s) for s in ChainStatus)
# Files of a suite directory that are not part of the suite (the generator, caches, checksums).
_NOT_SUITE = {"generate.py", CHECKSUMS_FILE}
# Every released suite version with the digest of its content (``suite_digest``); vectors/generate.py
# writes the newest. A suite whose files match none is someone's own, or an edited copy: a warning.
RELEASES = {
    "2026.12.1": "sha256:197561d5baae5e6009cbb404f3fc2785a417c5eaefa982fcc463c4c652f5c8db",
    "2026.12.2": "sha256:ef098b36d13be0ac07e39ff194ef5c836d18d6c54b3ff2095c76449edfb2c5fb",  # + semantics group
    # a history its own pages say is unfinished is incomplete: errors[] that say events were left out
    # (api-errors now fails), only pages with a next_token, has_more without a next_token
    "2026.12.3": "sha256:e0136b962ca1fd1e570dd121e39a91850135ce95109315bfcdc46779740d7389",
    # a last page with no data event (only key changes in meta) ends only a history that reaches its first event
    "2026.12.4": "sha256:96deeb436360bcedd6728fcc38d6f3e031e1877ae78cfd09b248b738f151ea1b",
    # a version-7 create served as version 2 does not make its signed title a member (review 37)
    "2026.12.5": "sha256:0c14f25403bf8c1e133101670afcce60f8aaf2648436645c08e61a6440c738af",
    # has_more that is not a boolean, without a next_token, is judged like true: incomplete
    "2026.12.6": "sha256:9f89a47219b9e8c4d88c9c08609dac56544353a0305d22ec6c3c0af335076c38",
    # a signed event that names no conversation is conversation_mismatch (review 50)
    "2026.12.7": "sha256:b1ebfd41ef914705b4b9f26af37f6fb87c75408c96bd0f3b7e616c7fec58b05f",
    # partial base64 padding is taken, as the SDK takes it; excess padding is refused (review 53)
    "2026.12.8": "sha256:d0e1bc00976722467095105d0f1e439bc29d0f74dfab2f8ceb6afcc8587b544a",
    # a sender's new event signed with an older signing-key version is signing_key_regressed (review 57)
    "2026.12.9": "sha256:1349835d51100733d9ae3c28ae3489787d146d661433e926bb9eaa313944be81",
    # no member before the group's create (but its creator's key change); a GroupCreate in a 1:1 (review 70)
    "2026.12.10": "sha256:2073d4c83822dcbbaaba7357d93bf1277ab5c06f0fc7a3b24c3e504b3c194442",
    # a target older than a history's first event (no previous pointer) is an error: events were cut
    # (round 70, F2); lone events naming seq(0) carry a previous pointer, as a window's oldest does
    "2026.12.11": "sha256:9374414fca42bd5edfbde92935cf717407c7b9b2ec00af446b595bc55c8da001",
    # a delete names a signed message, and a meta key change relabelled to a dropped id stands in for
    # nothing (round 74)
    "2026.12.12": "sha256:d5a6dec5d5571fcc21c2c42315dd46189248ffba50596f0d2f1e41d7a0a15b74",
    # a window's dropped target is not stood in for by the meta copy its oldest event points at (round 75)
    "2026.12.13": "sha256:93cd19617f74ae0ce5523343de59c17ef9b075c8654d1132063fdcafc0e03c57",
    # a meta key change a meta pointer leads to stands in for no target; an event without a detail is
    # an unsigned event a read marker may name, a delete may not (round 77)
    "2026.12.14": "sha256:75fb6699e28d4c97c775c0b912cf5e5dab5c1d982b817a4ab6d2781d5e742b0d",
    # a member a signed removal took out, in a group window without the create, is not a member after
    # it (round 89)
    "2026.12.15": "sha256:c249f4e86fade17739d53b2c7a27281ab1f4ddd39b977d270116c947e53a3016",
    # key changes given only in meta.conversation_key_events are not events of the history: data []
    # and a proven one in meta is no_events; beside only unsigned data events, nothing_proven (round 97)
    "2026.12.16": "sha256:a171493b89cf0f4527c2ea028eff4f143d272d6a8f88d9f280d128c17680647e",
}


# ------------------------------------------------------------------------------------- results
@dataclass
class CaseResult:
    case_id: str
    passed: bool
    problems: list[str] = field(default_factory=list)
    xfail: bool = False
    out_of_profile: str | None = None  # why the case says nothing about the profile (not run)
    seconds: float = 0.0

    @property
    def group(self) -> str:
        return self.case_id.partition("/")[0]

    @property
    def ok(self) -> bool:
        """Strict xfail: an expected failure must fail; if it passes, that is a failure too. A case
        out of profile is neither."""
        return True if self.out_of_profile else self.passed != self.xfail

    @property
    def status(self) -> str:
        """``xfail`` for a listed case that failed as expected: excused, never counted as passed."""
        if self.out_of_profile:
            return "out_of_profile"
        return ("xfail" if self.xfail else "pass") if self.ok else "fail"


@dataclass
class Suite:
    """A suite directory and what its index says about it."""

    root: Path
    version: str | None = None
    digest: str | None = None  # recorded in index.json
    actual_digest: str | None = None  # of the files on disk
    changed_during_run: bool = False  # its files differ after the run from before it
    cases: list[str] | None = None  # the case ids index.json lists (None: no list)

    @property
    def modified(self) -> bool:
        return self.digest is not None and self.digest != self.actual_digest

    @property
    def release(self) -> str | None:
        """The released version whose content these files are, or None (a suite of one's own)."""
        return next((v for v, d in RELEASES.items() if d == self.actual_digest), None)


@dataclass
class RunInfo:
    suite: Suite
    profile: str = "full"
    implementation: str = "xchat-verify (in-process)"


# ------------------------------------------------------------------------------ suite and digest
def discover(root: Path) -> list[Path]:
    """The suite's case folders: those of its files (``suite_files``). Why: a case under a dot-folder
    or ``__pycache__`` ran but was outside the digest, so a copy of a release with cases added read
    as that release (r125)."""
    with walking(root):
        return sorted(p.parent for p in root.rglob(CASE_FILE) if _in_suite(p.relative_to(root)))


@contextmanager
def walking(root: Path) -> Iterator[None]:
    """A suite tree that cannot be walked is one input error naming the suite. Why: a suite nested
    past the recursion limit, with a path past PATH_MAX, or changing while it was walked (``vectors
    /tmp``, where other programs come and go) ended the run in an internal error (r126)."""
    try:
        yield
    except RecursionError:
        raise InputError(f"cannot read the suite {printable(str(root))}: it is nested too deeply "
                         "(a suite's cases are two folders deep)") from None
    except OSError as exc:
        why = "an entry vanished while it was read (give a suite directory nothing else writes to)" \
            if isinstance(exc, FileNotFoundError) else (exc.strerror or type(exc).__name__)
        raise InputError(f"cannot read the suite {printable(str(root))}: {why}{_entry_named(root, exc)}") from None


def _entry_named(root: Path, exc: OSError) -> str:
    """The entry an error names, relative to the suite and cut short (a path past PATH_MAX is long)."""
    if exc.filename is None:
        return ""
    name = os.fsdecode(exc.filename)
    name = printable(os.path.relpath(name, root) if os.path.isabs(name) == root.is_absolute() else name)
    return f": {name[:80]}..." if len(name) > 80 else f": {name}"


def _in_suite(rel: Path) -> bool:
    return "__pycache__" not in rel.parts and not any(part.startswith(".") for part in rel.parts)


def case_id(root: Path, folder: Path) -> str:
    """A case's id: its folder under the suite root (``chain/gap``), as index.json lists it."""
    return folder.relative_to(root).as_posix()


def suite_files(root: Path) -> list[str]:
    """Every file of the suite (posix paths relative to ``root``, sorted), the index included."""
    out = []
    with walking(root):
        for path in root.rglob("*"):
            rel = path.relative_to(root)
            if not path.is_file() or path.is_symlink() or path.name in _NOT_SUITE or not _in_suite(rel):
                continue
            out.append(rel.as_posix())
    return sorted(out)


def checksums(root: Path, names: Sequence[str]) -> str:
    """``sha256sum`` format: ``<hex>  <path>`` per file, so ``sha256sum -c`` can check it."""
    return "".join(_checksum_line(_entry_hash(root / name).hex(), name) for name in names)


def _checksum_line(hexdigest: str, name: str) -> str:
    """One line, a name holding a backslash, newline or carriage return escaped as GNU ``sha256sum``
    escapes it (the line then starts with a backslash). Why: unescaped, a file named ``a/expected.json``,
    a newline, ``<hex>  a/page-1.json`` wrote two lines of the checksums, so a copy of a release
    with cases removed (their files replaced by one such file) had the release's digest, and ran as
    that release, unwarned, without them (round 110)."""
    if not any(c in name for c in "\\\n\r"):
        return f"{hexdigest}  {name}\n"
    escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return f"\\{hexdigest}  {escaped}\n"


def suite_digest(root: Path) -> str:
    """The suite's content digest: SHA-256 of the checksums of every suite file but the index
    (which records it). Any change to a case or a schema changes it. A file name that is not UTF-8
    counts as its bytes: every suite is hashed, to be compared with the releases."""
    names = [n for n in suite_files(root) if n != INDEX_FILE]
    return "sha256:" + hashlib.sha256(checksums(root, names).encode("utf-8", "surrogateescape")).hexdigest()


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of a regular file (not a symlink), at most ``limit``. Why: a FIFO or device
    planted as a suite file blocked the runner forever, and a huge one would fill its memory."""
    out = io.BytesIO()
    _copy_regular(path, out, limit)
    return out.getvalue()


def _copy_regular(path: Path, sink: Any, limit: int) -> None:
    """Copy the regular file ``path`` (never through a symlink) into ``sink`` (a binary file),
    refusing more than ``limit`` bytes: ``ValueError`` naming the file and why, or ``OSError``."""
    try:
        copy_regular_file(path, sink, limit, follow_symlinks=False)
    except FileRefused as exc:
        why = {"symlink": "a symbolic link", "not_regular": "not a regular file"}.get(exc.kind,
                                                                                   f"larger than {limit:,} bytes")
        raise ValueError(f"{printable(path.name)} is {why}") from None


def fingerprint(root: Path) -> str:
    """A hash of every entry under ``root`` (name, type, and content of regular files). Taken
    before and after a run: an implementation that changed the suite is reported (review 47 #2)."""
    digest = hashlib.sha256()
    with walking(root):
        paths = sorted(root.rglob("*"))
    for path in paths:
        digest.update(os.fsencode(path.relative_to(root)) + b"\0" + _entry_hash(path) + b"\0")
    return digest.hexdigest()


def _entry_hash(path: Path) -> bytes:
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            return b"link:" + os.fsencode(os.readlink(path)) if stat.S_ISLNK(info.st_mode) \
                else f"mode:{stat.S_IFMT(info.st_mode)}".encode()
        digest = hashlib.sha256()
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        try:
            while chunk := os.read(fd, 1 << 20):
                digest.update(chunk)
        finally:
            os.close(fd)
        return digest.digest()
    except OSError as exc:
        return f"error:{exc.errno}".encode()


def load_suite(root: Path) -> Suite:
    suite = Suite(root)
    index = root / INDEX_FILE
    if os.path.lexists(index):
        try:
            data = json.loads(read_regular(index, MAX_SPEC_BYTES).decode("utf-8"))
        except RecursionError:
            raise InputError(f"{INDEX_FILE} of {root} is not readable JSON: nested too deeply") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"{INDEX_FILE} of {root} is not readable JSON: {exc}") from None
        if isinstance(data, dict):
            version, digest, cases = data.get("suite_version"), data.get("digest"), data.get("cases")
            suite.version = version if isinstance(version, str) else None
            suite.digest = digest if isinstance(digest, str) else None
            if isinstance(cases, list):
                suite.cases = [case for case in cases if isinstance(case, str)]
    suite.actual_digest = suite_digest(root)
    return suite


def unlisted_cases(suite: Suite, found: Sequence[str]) -> list[str]:
    """Cases on disk that index.json does not list (a warning: they are run all the same)."""
    return [] if suite.cases is None else sorted(set(found) - set(suite.cases))


def missing_cases(suite: Suite, found: Sequence[str]) -> list[str]:
    """Cases index.json lists that are not on disk: each is a failed case. Why: a case removed from
    a copy of the suite was simply not run, and the run could still read as full conformance."""
    return [] if suite.cases is None else sorted(set(suite.cases) - set(found))


# ------------------------------------------------------------------------------------- profiles
def out_of_profile(spec: dict, profile: str) -> str | None:
    """Why a case says nothing about ``profile`` (it is then not run), or None. The profiles nest:
    ``signatures`` compares signature statuses, ``chain`` also chain statuses, ``full`` everything."""
    if profile == "full":
        return None
    expected, options = spec["expected"], spec.get("options", {})
    if expected["exit_code"] != 3:
        if not spec.get("keyring"):
            return "no keyring: the signer keys come from the events themselves"
        if options.get("allow_embedded_keys"):
            return "--allow-embedded-keys: signer keys from the events"
        if not expected["events"]:
            return "no event to judge"
    return None


# ------------------------------------------------------------------------------ the report shape
def report_problems(doc: Any) -> list[str]:
    """Where ``doc`` departs from the minimal report (vectors/report.schema.json; the two agree,
    tests check it). At most a few problems, each naming the JSON path."""
    problems: list[str] = []

    def bad(path: str, what: str) -> None:
        if len(problems) < 5:
            problems.append(f"{path}: {what}")

    def findings(value: Any, path: str) -> None:
        if not isinstance(value, list):
            return bad(path, "not an array")
        for i, f in enumerate(value):
            if not isinstance(f, dict):
                bad(f"{path}[{i}]", "not an object")
            elif not isinstance(f.get("code"), str) or not f["code"]:
                bad(f"{path}[{i}].code", "missing or not a non-empty string")

    def check(value: Any, path: str, name: str, allowed: frozenset[str]) -> None:
        if not isinstance(value, dict):
            return bad(path, "not an object")
        status = value.get("status")
        if not isinstance(status, str) or status not in allowed:  # a list is unhashable (review 47 #12)
            bad(f"{path}.status", f"{_short(status)} is not a {name} status")

    if not isinstance(doc, dict):
        return ["the report is not a JSON object"]
    if doc.get("verdict") not in ("pass", "fail"):
        bad("verdict", f"{_short(doc.get('verdict'))} is not pass or fail")
    if "findings" in doc:
        findings(doc["findings"], "findings")
    conversations = doc.get("conversations")
    if not isinstance(conversations, list):
        bad("conversations", "missing or not an array")
        return problems
    for c, conv in enumerate(conversations):
        where = f"conversations[{c}]"
        if not isinstance(conv, dict):
            bad(where, "not an object")
            continue
        if "findings" in conv:
            findings(conv["findings"], f"{where}.findings")
        events = conv.get("events")
        if not isinstance(events, list):
            bad(f"{where}.events", "missing or not an array")
            continue
        for e, event in enumerate(events):
            at = f"{where}.events[{e}]"
            if not isinstance(event, dict):
                bad(at, "not an object")
                continue
            index = event.get("index")
            if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                bad(f"{at}.index", "missing or not an integer >= 0")
            check(event.get("signature"), f"{at}.signature", "signature", SIG_STATUSES)
            if "chain" in event:
                check(event["chain"], f"{at}.chain", "chain", CHAIN_STATUSES)
            if "findings" in event:
                findings(event["findings"], f"{at}.findings")
    return problems


def _short(value: Any) -> str:
    try:
        text = json.dumps(value)
    except RecursionError:  # a report may nest as deep as the JSON reader allows
        return "a value nested too deeply"
    return text if len(text) <= 40 else text[:39] + "…"  # (the ellipsis: where a cut-off token is looked for)


def _codes(findings: Any) -> set[str]:
    return {f["code"] for f in findings or [] if isinstance(f, dict) and isinstance(f.get("code"), str)}


# ------------------------------------------------------------------------------------ comparing
def compare(expected: dict, doc: dict | None, code: int, profile: str) -> list[str]:
    """Problems of one outcome (a minimal report, or None when nothing was printed, and the exit
    code) against a case's expectation under ``profile``."""
    problems: list[str] = []
    if expected["exit_code"] == 3 or code == 3:
        if code != expected["exit_code"]:
            problems.append(f"exit code {code}, expected {expected['exit_code']}"
                            + (" (an input cannot be read)" if expected["exit_code"] == 3 else ""))
        return problems  # the input could not be read: nothing else is compared
    if doc is None:
        return [f"no report (exit code {code})"]
    verdict = doc.get("verdict")
    if (verdict == "pass") != (code == 0):
        problems.append(f"exit code {code} contradicts the report's verdict {verdict}")
    if profile == "full":
        if verdict != expected["verdict"]:
            problems.append(f"verdict {verdict}, expected {expected['verdict']}")
        if code != expected["exit_code"]:
            problems.append(f"exit code {code}, expected {expected['exit_code']}")
        scoped = _codes(doc.get("findings")) | {c for conv in doc["conversations"] for c in _codes(conv.get("findings"))}
        missing = set(expected.get("findings", [])) - scoped
        if missing:
            problems.append(f"missing run or conversation findings {sorted(missing)}")
    events: dict[int, dict] = {}
    for conv in doc["conversations"]:
        for event in conv["events"]:
            if event["index"] in events:
                problems.append(f"event {event['index']} reported twice")
            events[event["index"]] = event
    if len(events) != len(expected["events"]):
        problems.append(f"{len(events)} events, expected {len(expected['events'])}")
    for want in expected["events"]:
        got = events.get(want["index"])
        if got is None:
            problems.append(f"event {want['index']} missing")
            continue
        signature = got["signature"]
        if signature["status"] != want["signature"]:
            detail = signature.get("detail")
            problems.append(f"event {want['index']}: signature {signature['status']}, expected {want['signature']}"
                            + (f" ({detail})" if isinstance(detail, str) and detail else ""))
        if profile in ("chain", "full"):
            chain = got.get("chain", {}).get("status")
            if chain != want["chain"]:
                problems.append(f"event {want['index']}: chain {chain or 'not reported'}, expected {want['chain']}")
        if profile == "full":
            missing = set(want.get("findings", [])) - _codes(got.get("findings"))
            if missing:
                problems.append(f"event {want['index']}: missing findings {sorted(missing)}")
    return problems


# ------------------------------------------------------------------------------------- one case
def case_arguments(folder: Path, spec: dict) -> list[str]:
    """The ``xchat-verify verify`` arguments of a case (docs/vectors.md, "Protocol"): page files in
    order and the keyring as absolute paths, then the option flags the case uses."""
    options = spec.get("options", {})
    args = [str((folder / name).resolve()) for name in spec["pages"]]
    if spec.get("keyring"):
        args += ["--keys", str((folder / spec["keyring"]).resolve())]
    for name in ("strict", "allow_embedded_keys", "allow_empty"):
        if options.get(name):
            args.append("--" + name.replace("_", "-"))
    for version, key in sorted(options.get("conversation_keys", {}).items()):
        args += ["--conversation-key", f"{version}={key}"]
    return args


class _WantedEvent(msgspec.Struct):
    index: int
    signature: str
    chain: str
    findings: list[str] = []


class _Expected(msgspec.Struct):
    verdict: Literal["pass", "fail"]
    exit_code: Literal[0, 1, 3]
    events: list[_WantedEvent]
    findings: list[str] = []


class _Options(msgspec.Struct, frozen=True):
    strict: bool = False
    allow_embedded_keys: bool = False
    allow_empty: bool = False
    conversation_keys: dict[str, Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9+/]{43}=$")]] = {}  # 32 bytes


class _Spec(msgspec.Struct):
    """What the runner reads of an expected.json, with its types (vectors/expected.schema.json is
    the whole schema): a case that breaks them is that case's failure, never the run's crash."""

    pages: list[str]
    expected: _Expected
    keyring: str | None = None
    options: _Options = _Options()


def _load_spec(folder: Path) -> dict:
    spec = json.loads(read_regular(folder / CASE_FILE, MAX_SPEC_BYTES).decode("utf-8"))
    try:
        msgspec.convert(spec, _Spec)
    except msgspec.ValidationError as exc:
        raise ValueError(f"not an expected.json of schema xchat-verify/vector/v1: {exc}") from None
    indexes = [event["index"] for event in spec["expected"]["events"]]
    if len(set(indexes)) != len(indexes):  # round 110: the event count matched while a reported event went unchecked
        twice = sorted({index for index in indexes if indexes.count(index) > 1})
        raise ValueError(f"expected.events lists event {twice[0]} more than once: each event is expected once")
    for name in spec["pages"] + ([spec["keyring"]] if spec.get("keyring") else []):
        _check_input_name(name)
    return spec


def _check_input_name(name: str) -> None:
    """A page or keyring names a file inside its case directory. Why: ``../`` or an absolute path
    made the runner read, and hand an implementation, any file of the machine (review 47, #11)."""
    parts = name.replace("\\", "/").split("/")
    if not name or name.startswith(("/", "\\")) or ".." in parts or "" in parts or "." in parts:
        raise ValueError(f"input path {printable(name)} is not a plain path inside the case directory")
    if parts[-1] == CASE_FILE:  # round 110: a case naming its own expected.json handed it to the implementation
        raise ValueError(f"input path {printable(name)} names a case's {CASE_FILE}, never handed to an implementation")


Runner = Callable[[Path, dict], tuple[dict | None, int, list[str]]]


def load_case(folder: Path) -> dict | str:
    """A case's spec, or why it is unreadable. The runner loads every case before it runs any, so
    an implementation that rewrites suite files cannot change what later cases expect."""
    try:
        return _load_spec(folder)
    except RecursionError:  # review 47 #6: deeply nested JSON ended the whole run as an internal error
        return f"unreadable {CASE_FILE}: JSON nested too deeply"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable {CASE_FILE}: {exc}"


def run_case(folder: Path, root: Path, profile: str = "full", runner: Runner | None = None,
             spec: dict | str | None = None) -> CaseResult:
    """Run one case (``spec`` as ``load_case`` gave it, or loaded now) on copies of its inputs."""
    name = case_id(root, folder)
    spec = load_case(folder) if spec is None else spec
    if isinstance(spec, str):
        return CaseResult(name, False, [spec])
    reason = out_of_profile(spec, profile)
    if reason:
        return CaseResult(name, False, out_of_profile=reason)
    started = time.monotonic()
    try:
        with staged(folder, spec) as inputs:
            doc, code, problems = (runner or _in_process)(inputs, spec)
    except (OSError, ValueError) as exc:
        return CaseResult(name, False, [f"unreadable case input: {exc}"])
    except Exception as exc:  # the verifier must never raise; if it does, the case fails loudly
        return CaseResult(name, False, [f"verifier raised {type(exc).__name__}: {exc}"])
    if not problems:
        problems = compare(spec["expected"], doc, code, profile)
    return CaseResult(name, not problems, problems, seconds=time.monotonic() - started)


@contextmanager
def staged(folder: Path, spec: dict) -> Iterator[Path]:
    """A fresh temporary directory holding copies of the case's pages and keyring only, removed
    after the case. Why: handed the case directory, an implementation read expected.json and
    echoed it, or rewrote the cases after it (review 47 #1, #2). An input the case lacks stays
    missing (the case then expects exit code 3)."""
    with _setting_up():  # created, registered and filled before a signal's end looks
        holder = tempfile.TemporaryDirectory(prefix="xchat-vector-", ignore_cleanup_errors=True)
        _STAGED.add(holder.name)
        try:
            for name in spec["pages"] + ([spec["keyring"]] if spec.get("keyring") else []):
                _no_linked_directory(folder, name)
                _copy_input(folder / name, Path(holder.name, name))
        except BaseException:
            _unstage(holder)
            raise
    try:
        yield Path(holder.name)
    finally:
        _unstage(holder)


def _unstage(holder: tempfile.TemporaryDirectory) -> None:
    """Remove a case's staged copies, then forget them (a signal's end meanwhile removes them too)."""
    holder.cleanup()
    _STAGED.discard(holder.name)


def _no_linked_directory(folder: Path, name: str) -> None:
    """No directory on the way from the case directory to an input is a symbolic link. Why: a page
    ``sub/page-1.json`` with ``sub`` a link was read from outside the suite, its digest and its
    fingerprint (round 110; the file itself was already refused as a link)."""
    parts = Path(name).parts[:-1]
    for depth in range(1, len(parts) + 1):
        if (folder.joinpath(*parts[:depth])).is_symlink():
            raise ValueError(f"input path {printable(name)} goes through a symbolic link "
                             f"({printable('/'.join(parts[:depth]))})")


def _copy_input(source: Path, target: Path) -> None:
    if target.exists() or not os.path.lexists(source):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb") as sink:
        _copy_regular(source, sink, MAX_INPUT_BYTES)


def _in_process(folder: Path, spec: dict) -> tuple[dict | None, int, list[str]]:
    """Exactly what ``xchat-verify verify`` does with the case's files and options."""
    from .engine import verify_pages
    from .inputs import DEFAULT_MAX_FILE_MB, load_keyring, load_pages
    from .keys import Keyring
    from .model import EXIT_INCOMPLETE, exit_code
    options = spec.get("options", {})
    max_bytes = DEFAULT_MAX_FILE_MB * 1024 * 1024
    keyring: Keyring | None = None
    if spec.get("keyring"):
        try:
            keyring = load_keyring(str(folder / spec["keyring"]), max_bytes)
        except InputError:
            return None, EXIT_INCOMPLETE, []
    pages = load_pages([str(folder / name) for name in spec["pages"]], max_bytes)
    keys = {v: base64.b64decode(k) for v, k in options.get("conversation_keys", {}).items()}
    report = verify_pages(pages, keyring, conversation_keys=keys, strict=options.get("strict", False),
                          allow_embedded_keys=options.get("allow_embedded_keys", False),
                          allow_empty=options.get("allow_empty", False))
    return report.to_dict(), exit_code(report), []


# ------------------------------------------------------------------ an implementation under test
def parse_impl(command: str) -> list[str]:
    """``--impl`` split as a POSIX shell splits words (quotes, backslashes), never run by a shell."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"--impl cannot be split into words: {exc}") from None
    if not argv:
        raise UsageError("--impl is empty")
    if shutil.which(argv[0]) is None:
        raise UsageError(f"--impl: command not found or not executable: {argv[0]}")
    return argv


@dataclass
class Outcome:
    code: int | None  # None when it timed out
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool = False
    held_open: bool = False  # a process it left behind kept its stdout or stderr open until the timeout


class _Pipe:
    """One output pipe, read with ``os.read`` on its descriptor: no buffered reader, no thread, so
    nothing can block closing it (review 47 #3: ``close()`` waited on a reader thread's lock)."""

    def __init__(self, fd: int, limit: int) -> None:
        self.fd, self.limit, self.kept, self.truncated = fd, limit, 0, False
        self.chunks: list[bytes] = []

    def read(self) -> bool:
        """Read what is there (keeping at most ``limit`` bytes, dropping the rest); False at the end."""
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:
            return False
        take = chunk[:max(0, self.limit - self.kept)]
        self.chunks.append(take)
        self.kept += len(take)
        self.truncated |= len(take) < len(chunk)
        return bool(chunk)


# The implementations running now (``run_command``), for ``ending_with_signals``. A set's add, discard
# and copy are each one step under the GIL.
_RUNNING: set[subprocess.Popen] = set()
# The staged input directories in use (``staged``): a signal that ends the run skips their removal.
_STAGED: set[str] = set()
_SETUP = threading.RLock()  # held while a case's inputs are staged or its implementation started
_IN_SETUP: list[int] = []  # the threads holding it (``_setting_up``)
_ENDING: list[int] = []  # the signal ending the run, once one came
_STOPPING: list[bool] = []  # the run was interrupted (``_stop_cases``): no case is set up any more


@contextmanager
def _setting_up() -> Iterator[None]:
    """Around staging a case's inputs or starting its implementation, so that what it makes is
    registered (``_STAGED``, ``_RUNNING``) before a signal's end looks: the end waits for another
    thread's setup, and follows this thread's own when the signal came in its midst (its handler
    cannot wait for the thread it runs in). Why: with --jobs N the threads whose implementations
    the end had just killed staged the next cases and started their implementations while it
    removed the staged copies; those ran on after the runner ended, their copies left (r137)."""
    try:
        with _SETUP:
            if _STOPPING:
                raise KeyboardInterrupt  # (in a pool's thread: its case is dropped with the run)
            me = threading.get_ident()
            _IN_SETUP.append(me)
            try:
                yield
            finally:
                _IN_SETUP.remove(me)
    finally:
        if _ENDING and threading.current_thread() is threading.main_thread():
            _end_run(_ENDING[0])


def run_command(argv: list[str], timeout: float) -> Outcome:
    """Run one implementation: no stdin, output captured within bounds, its whole process group
    killed when it exits or at ``timeout``, and nothing waited for past ``timeout``."""
    with _setting_up():
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        _RUNNING.add(proc)
    assert proc.stdout is not None and proc.stderr is not None
    out, err = _Pipe(proc.stdout.fileno(), MAX_REPORT_BYTES), _Pipe(proc.stderr.fileno(), MAX_STDERR_BYTES)
    exited, held_open = False, False
    try:
        exited, held_open = _pump(proc, [out, err], time.monotonic() + timeout)
    finally:
        _kill_group(proc)  # after every run: nothing it started outlives its case (review 47 #4)
        proc.stdout.close()
        proc.stderr.close()
        _RUNNING.discard(proc)  # before it is reaped: until then its group's id is not reused
        proc.wait()
    code = proc.returncode if exited else None
    return Outcome(code, b"".join(out.chunks), b"".join(err.chunks), out.truncated, held_open)


def _pump(proc: subprocess.Popen, pipes: list[_Pipe], deadline: float) -> tuple[bool, bool]:
    """Read ``pipes`` until both end and the process exits, or until ``deadline``, or until the run
    is interrupted (``_STOPPING``). Returns (it exited, a pipe was still open at the deadline). Its
    group is killed as soon as it exits, so a child in the group cannot hold the pipes open. Why it
    looks at an interrupt: a child that left the group (``setsid``) held the pipes of an implementation
    that had exited, and with --jobs N Ctrl-C waited for it up to --timeout (r142)."""
    open_pipes, exited = list(pipes), False
    while not _STOPPING:
        if not exited and _has_exited(proc):
            exited = True
            _kill_group(proc)
        if exited and not open_pipes:
            return True, False
        left = deadline - time.monotonic()
        if left <= 0:
            return exited, exited and bool(open_pipes)
        if not open_pipes:
            time.sleep(min(left, 0.02))
            continue
        ready, _, _ = select.select([p.fd for p in open_pipes], [], [], min(left, 0.05))
        for pipe in [p for p in open_pipes if p.fd in ready]:
            if not pipe.read():
                open_pipes.remove(pipe)
    return exited, False  # (interrupted: the case is dropped with the run)


@contextmanager
def ending_with_signals() -> Iterator[None]:
    """While it is open, SIGTERM and SIGHUP first kill the process group of every implementation
    running, then end this process as they would have. Why: each implementation runs in a session
    of its own (so that its children end with it), which a signal to this process never reaches:
    ``timeout 300 xchat-verify vectors --impl ...`` or a CI job's cancel left it running on (r130).
    Only from the main thread, where Python runs signal handlers (elsewhere it changes nothing), and
    not for a signal this process ignores (``nohup``'s SIGHUP: r137, a closed terminal ended the run).
    In a run in process too, whose cases' staged copies a signal left in the temp dir (r142)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
              if s is not None and signal.getsignal(s) is not signal.SIG_IGN]
    previous = {signum: signal.signal(signum, _end_implementations) for signum in wanted}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _end_implementations(signum: int, frame: object) -> None:
    """The handler: the end, once no other thread is staging a case or starting its implementation
    (``_setting_up``: none starts after it), or after this thread's own setup."""
    _ENDING.append(signum)
    if threading.get_ident() in _IN_SETUP:
        return
    with _SETUP:  # (an RLock: a second signal's handler, run within this one, ends the run at once)
        _end_run(signum)


def _stop_cases() -> None:
    """No case is set up any more and every implementation running is killed, so that the threads
    running cases end at once. Why: an interrupt (Ctrl-C: SIGINT, which reaches no implementation's
    session) stops the main thread alone, and with --jobs N the run's end waited for the others,
    whose implementations ran on up to --timeout before "interrupted" (r137). Without waiting for
    a thread's setup: an implementation it starts is killed by its own thread (``_pump`` sees
    ``_STOPPING``), while a second Ctrl-C during that wait stopped nothing, and the run went on with
    every case left (r142)."""
    _STOPPING.append(True)
    _kill_running()


def _end_run(signum: int) -> None:
    """Kill every implementation running, remove every case's staged copies, end by ``signum``."""
    _kill_running()
    for path in tuple(_STAGED):  # the process ends without leaving their ``with``: no copies left behind
        shutil.rmtree(path, ignore_errors=True)
    signal.signal(signum, signal.SIG_DFL)  # then the signal's own end: its exit status, as without this
    os.kill(os.getpid(), signum)


def _kill_running() -> None:
    """Kill the process group of every implementation running now (``_RUNNING``)."""
    for proc in tuple(_RUNNING):
        _kill_group(proc)


def _has_exited(proc: subprocess.Popen) -> bool:
    """Whether it exited, without reaping it where the platform allows: its pid, and so its process
    group id, stays taken until the group is killed."""
    if hasattr(os, "waitid"):
        try:
            return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True
    return proc.poll() is not None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the process group this runner created for it
    except ProcessLookupError:
        pass  # the group is gone: nothing left to kill
    except (OSError, AttributeError):
        proc.kill()


def _stderr_tail(raw: bytes) -> str:
    lines = [line for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]
    if not lines:
        return ""
    tail = lines[-1].strip()
    return ": " + (tail if len(tail) <= 200 else tail[:199] + "…")  # (as ``_short``)


def judge_outcome(outcome: Outcome, spec: dict, timeout: float | None = None) -> tuple[dict | None, int, list[str]]:
    """An implementation's run of one case, read by the protocol (docs/vectors.md): (the minimal
    report or None, the exit code, problems that fail the case before any comparison)."""
    code = outcome.code
    if code is None:
        return None, -1, [f"timed out after {timeout:g} s" if timeout else "timed out"]
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return None, code, [f"crashed: killed by {name}{_stderr_tail(outcome.stderr)}"]
    if code == 2:
        return None, code, [f"usage error (exit code 2){_stderr_tail(outcome.stderr)}"]
    if code not in (0, 1, 3):
        return None, code, [f"crashed: exit code {code}{_stderr_tail(outcome.stderr)}"]
    if outcome.held_open:  # whatever its exit code (round 110: an exit 3 passed all the same)
        return None, code, [f"its output stayed open {timeout or 0:g} s after it exited (a process it left behind "
                            "holds stdout or stderr)"]
    if code == 3 or spec["expected"]["exit_code"] == 3:
        return None, code, []  # only the exit code counts (compare says whether it matches)
    if outcome.stdout_truncated:
        return None, code, [f"report larger than {MAX_REPORT_BYTES:,} bytes"]
    if not outcome.stdout.strip():
        return None, code, [f"no report on stdout (exit code {code}){_stderr_tail(outcome.stderr)}"]
    try:
        doc = json.loads(outcome.stdout)
    except (ValueError, RecursionError) as exc:
        return None, code, [f"invalid JSON on stdout (exit code {code}): {exc}"]
    shape = report_problems(doc)
    if shape:
        return None, code, ["report does not follow the protocol: " + "; ".join(shape)]
    return doc, code, []


def impl_runner(argv: list[str], timeout: float, scrub: Callable[[str], str] | None = None) -> Runner:
    """A runner that runs ``argv`` + the case's arguments and judges it by the protocol; ``scrub``
    (the command's access token out) reads its standard error before a line of it is quoted. Why:
    the line quoted of a token the implementation printed across two lines held the token's end (r142)."""

    def run(folder: Path, spec: dict) -> tuple[dict | None, int, list[str]]:
        try:
            outcome = run_command(argv + case_arguments(folder, spec), timeout)
        except OSError as exc:
            return None, -1, [f"could not start the implementation: {exc.strerror or exc}"]
        if scrub is not None:
            outcome.stderr = scrub(outcome.stderr.decode("utf-8", "replace")).encode()
        return judge_outcome(outcome, spec, timeout)

    return run


# ------------------------------------------------------------------------------------ the suite
def run_suite(root: Path, xfail: set[str] | None = None, *, profile: str = "full", runner: Runner | None = None,
              jobs: int = 1, missing: Sequence[str] = ()) -> list[CaseResult]:
    """Every case under ``root``, in suite order, then a failed result for each ``missing`` case
    (listed in index.json, absent on disk)."""
    folders = discover(root)
    specs = {folder: load_case(folder) for folder in folders}  # all of them, before any implementation runs
    absent = [CaseResult(case_id, False, [f"listed in {INDEX_FILE} but missing from the suite"]) for case_id in missing]

    def one(folder: Path) -> CaseResult:
        return run_case(folder, root, profile, runner, specs[folder])

    _STOPPING.clear()  # (an interrupted run of this process stopped its own cases only)
    if jobs <= 1 or len(folders) <= 1:
        results = [one(folder) for folder in folders]
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            try:
                results = list(pool.map(one, folders))
            except BaseException:  # (Ctrl-C) the pool's end waits for its threads: each case must end now
                _stop_cases()
                raise
    for result in results + absent:
        result.xfail = result.case_id in (xfail or set())
    return results + absent


def read_xfail(path: str) -> set[str]:
    """One case id per line; ``#`` starts a comment."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return {line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()}


def summary_ok(results: list[CaseResult]) -> bool:
    """Exit 0 only if every case in profile passed and at least one was run (a run where every case
    was out of profile proves nothing)."""
    return any(not r.out_of_profile for r in results) and all(r.ok for r in results)


_COLUMN = {"pass": "passed", "xfail": "xfail", "fail": "failed", "out_of_profile": "out_of_profile"}


def group_table(results: list[CaseResult]) -> dict[str, dict[str, int]]:
    """Per group (in suite order), how many cases passed, were excused (xfail), failed and were out
    of profile."""
    table: dict[str, dict[str, int]] = {}
    for r in results:
        row = table.setdefault(r.group, {"passed": 0, "xfail": 0, "failed": 0, "out_of_profile": 0})
        row[_COLUMN[r.status]] += 1
    return table


def totals(results: list[CaseResult]) -> tuple[int, int, int]:
    """(passed, failed, out of profile); expected failures (``xfail_count``) are none of these."""
    passed = sum(r.status == "pass" for r in results)
    failed = sum(r.status == "fail" for r in results)
    return passed, failed, sum(r.status == "out_of_profile" for r in results)


def xfail_count(results: list[CaseResult]) -> int:
    return sum(r.status == "xfail" for r in results)


def closing_line(results: list[CaseResult]) -> str:
    """Excused cases are counted apart, so a run that passed nothing never reads as conformance
    (review 47 #9: an xfail list covering every failure read "2 passed, 0 failed")."""
    passed, failed, skipped = totals(results)
    xfailed = xfail_count(results)
    return f"{passed} passed, " + (f"{xfailed} expected failures (xfail), " if xfailed else "") + \
        f"{failed} failed" + (f", {skipped} out of profile" if skipped else "")


_VERSION_NAME = re.compile(r"[0-9A-Za-z+_-][0-9A-Za-z.+_-]{0,63}")


def mislabelled(suite: Suite) -> bool:
    """The files are one release while ``index.json`` names another (review 54: 2026.12.6's cases
    under an index saying 2026.12.7 ran and exported as 2026.12.7, without the newer cases)."""
    return suite.release is not None and not suite.modified and suite.release != suite.version


def _heading(info: RunInfo) -> str:
    suite = f"suite {printable(info.suite.version)}" if info.suite.version else "suite (unversioned)"
    if info.suite.modified:
        suite += " (MODIFIED: its files differ from the digest in index.json)"
    elif info.suite.actual_digest is not None and info.suite.release is None:
        suite += " (UNRELEASED: its files match no released suite)"
    elif mislabelled(info.suite):
        suite += f" (MISLABELLED: its files are release {info.suite.release})"
    if info.suite.changed_during_run:
        suite += " (CHANGED DURING THE RUN: its files differ from before the run)"
    return f"{suite}, profile {info.profile}, implementation: {printable(info.implementation)}"


def render_results(results: list[CaseResult], fmt: str, info: RunInfo | None = None) -> str:
    info = info or RunInfo(Suite(Path(".")))
    if fmt == "json":
        return _json(results, info)
    if fmt == "junit":
        return _junit(results, info)
    if fmt == "markdown":
        return _markdown(results, info)
    lines = []
    for r in results:
        if r.out_of_profile:
            lines.append(f"SKIP {printable(r.case_id)} (out of profile {info.profile}: {r.out_of_profile})")
            continue
        if r.status == "xfail":
            lines.append(f"XFAIL {printable(r.case_id)} (expected failure, excused): " + printable("; ".join(r.problems)))
            continue
        tag = "PASS" if r.ok else "FAIL"
        note = " (xfail case passed: remove it from the xfail list)" if r.xfail else ""
        lines.append(f"{tag} {printable(r.case_id)}{note}" + ("" if r.ok or r.xfail else ": " + printable("; ".join(r.problems))))
    lines.append("")
    lines.append(_heading(info))
    lines += _text_table(group_table(results), totals(results), xfail_count(results))
    lines.append(closing_line(results))
    return "\n".join(lines) + "\n"


def _text_table(table: dict[str, dict[str, int]], total: tuple[int, int, int], xfailed: int) -> list[str]:
    """The per-group table; an ``xfail`` column only when some case was excused."""
    rows = [(printable(group), row["passed"], row["xfail"], row["failed"], row["out_of_profile"])
            for group, row in table.items()]
    rows.append(("total", total[0], xfailed, total[1], total[2]))
    width = max(len("group"), *(len(r[0]) for r in rows))
    xf = "  xfail" if xfailed else ""
    out = [f"{'group':<{width}}  passed{xf}  failed  out of profile"]
    out += [f"{g:<{width}}  {p:>6}" + (f"  {x:>5}" if xfailed else "") + f"  {f:>6}  {s:>14}" for g, p, x, f, s in rows]
    return out


def _json(results: list[CaseResult], info: RunInfo) -> str:
    passed, failed, skipped = totals(results)
    return json.dumps({
        "suite_version": info.suite.version, "suite_modified": info.suite.modified,
        "suite_release": info.suite.release,
        "suite_changed_during_run": info.suite.changed_during_run, "profile": info.profile,
        "implementation": info.implementation, "passed": passed, "xfail": xfail_count(results), "failed": failed,
        "out_of_profile": skipped,
        "groups": {encodable(group): row for group, row in group_table(results).items()},
        "cases": [{"id": encodable(r.case_id), "status": r.status, "ok": r.ok, "matched_expectation": r.passed,
                   "xfail": r.xfail, "problems": r.problems, "out_of_profile": r.out_of_profile,
                   "seconds": round(r.seconds, 3)} for r in results]}, indent=2) + "\n"


def _junit(results: list[CaseResult], info: RunInfo) -> str:
    passed, failed, skipped = totals(results)
    xfailed = xfail_count(results)  # JUnit has no "expected failure": they are skipped, with the reason
    changed = info.suite.changed_during_run
    suite = ET.Element("testsuite", name="xchat-verify vectors", tests=str(len(results) + changed),
                       failures=str(failed), errors=str(int(changed)), skipped=str(skipped + xfailed),
                       time=f"{sum(r.seconds for r in results):.3f}")
    props = ET.SubElement(suite, "properties")
    # round 110: the heading (MODIFIED, UNRELEASED, MISLABELLED, CHANGED DURING THE RUN) was in every
    # format but this one, whose run of a suite an implementation rewrote read as all passed
    for name, value in (("suite_version", printable(info.suite.version or "")), ("profile", info.profile),
                        ("implementation", printable(info.implementation)), ("xfail", str(xfailed)),
                        ("suite_release", info.suite.release or ""), ("heading", _heading(info))):
        ET.SubElement(props, "property", name=name, value=value)
    if changed:  # an error a CI test view shows, not only a property
        ET.SubElement(ET.SubElement(suite, "testcase", classname="suite", name="unchanged during the run", time="0"),
                      "error", message="CHANGED DURING THE RUN: the suite's files differ from before the run "
                                       "(an implementation wrote to the suite?): the results are not trustworthy")
    for r in results:
        group, _, name = printable(r.case_id).partition("/")
        case = ET.SubElement(suite, "testcase", classname=group, name=name or group, time=f"{r.seconds:.3f}")
        if r.out_of_profile:
            ET.SubElement(case, "skipped", message=f"out of profile {info.profile}: {r.out_of_profile}")
        elif r.status == "xfail":
            ET.SubElement(case, "skipped", message=printable("expected failure (xfail): " + "; ".join(r.problems))[:500])
        elif not r.ok:
            message = printable("xfail case passed" if r.xfail else "; ".join(r.problems))
            ET.SubElement(case, "failure", message=message[:500]).text = \
                "\n".join(printable(p) for p in r.problems) or message
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def _md_code(text: str) -> str:
    """``text`` as an inline code span: escaped, and no backtick can close the span early."""
    return "`" + printable(text).replace("`", "\\x60") + "`"


def _md(text: str) -> str:
    """Text for the Markdown summary (a CI job summary): the reports' escaping, no markup, no HTML, no
    link. Review 82: only backslash, bar, backtick and ``<`` were escaped, so an implementation's
    verdict or a suite's version ``![t](https://tracker.example/p.png)`` was an image in the summary."""
    from .report.markdown import md
    return md(text)


def markdown_table(results: list[CaseResult]) -> list[str]:
    """The per-group table in Markdown (as docs/vectors.md records it)."""
    xfailed = xfail_count(results)
    head, rule = ("| group | passed | xfail | failed | out of profile |", "|---|---:|---:|---:|---:|") if xfailed else \
        ("| group | passed | failed | out of profile |", "|---|---:|---:|---:|")
    lines = [head, rule]
    for group, row in group_table(results).items():
        xf = f" {row['xfail']} |" if xfailed else ""
        lines.append(f"| {_md(group)} | {row['passed']} |{xf} {row['failed']} | {row['out_of_profile']} |")
    passed, failed, skipped = totals(results)
    xf = f" **{xfailed}** |" if xfailed else ""
    lines.append(f"| **total** | **{passed}** |{xf} **{failed}** | **{skipped}** |")
    return lines


def _markdown(results: list[CaseResult], info: RunInfo) -> str:
    verdict = "passed" if summary_ok(results) and not info.suite.changed_during_run else "FAILED"
    xfailed = xfail_count(results)
    if verdict == "passed" and xfailed:
        verdict += f" with {xfailed} expected failure{'s' if xfailed > 1 else ''} (xfail) excused"
    lines = [f"### xchat-verify conformance: {verdict}", "", _md(_heading(info)), "", *markdown_table(results)]
    bad = [r for r in results if r.status == "fail"]
    if bad:
        lines += ["", f"Failed cases ({len(bad)}{', first 100' if len(bad) > 100 else ''}):", ""]
        lines += [f"* {_md_code(r.case_id)}: " + _md("xfail case passed" if r.xfail else "; ".join(r.problems))[:400]
                  for r in bad[:100]]
    excused = [r for r in results if r.status == "xfail"]
    if excused:
        lines += ["", f"Expected failures, excused by --xfail ({len(excused)}{', first 100' if len(excused) > 100 else ''}):",
                  ""]
        lines += [f"* {_md_code(r.case_id)}: " + _md("; ".join(r.problems))[:400] for r in excused[:100]]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- export
# 2025-12-01T00:00:00Z: fixed, so the same suite gives the same bytes; past, as tar warns of future times
EXPORT_MTIME = 1_764_547_200


def export_suite(root: Path, out: Path) -> tuple[str, int]:
    """Write ``root`` as a deterministic ``.tar.gz`` under ``xchat-verify-vectors-<version>/``: the
    suite's files (cases, index, schemas) and ``SHA256SUMS`` over all of them. Refuses a suite
    without a version or whose files differ from the digest its index records. Returns (top
    directory, number of files)."""
    from .outputs import atomic_write
    suite = load_suite(root)
    if suite.version is None or suite.digest is None:
        raise InputError(f"{root} has no {INDEX_FILE} with a suite_version and digest: not an exportable suite")
    if suite.modified:
        raise InputError(f"the files of {root} differ from the digest in its {INDEX_FILE} (suite "
                         f"{printable(suite.version)} was changed): regenerate it and bump the suite version")
    if not _VERSION_NAME.fullmatch(suite.version):  # it names the tarball's top directory
        raise InputError(f"{root}'s suite_version {printable(suite.version)} is not a version name "
                         "(letters, digits, '.', '-', '+', '_')")
    if mislabelled(suite):
        raise InputError(f"{root}'s {INDEX_FILE} says suite {suite.version}, but its files are release "
                         f"{suite.release}: not exported under another release's name")
    missing = [name for name in SCHEMA_FILES if not (root / name).is_file()]
    if missing:
        raise InputError(f"{root} lacks {', '.join(missing)}")
    names = suite_files(root)
    top = f"xchat-verify-vectors-{suite.version}"
    members = [(name, (root / name).read_bytes()) for name in names]
    # a name that is not UTF-8 is its bytes, as in the digest and as sha256sum writes it (round 113: it
    # ended the export in an internal error)
    members.append((CHECKSUMS_FILE, checksums(root, names).encode("utf-8", "surrogateescape")))
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as zipped:
        with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in sorted(members):
                info = tarfile.TarInfo(f"{top}/{name}")
                info.size, info.mtime, info.mode = len(data), EXPORT_MTIME, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    atomic_write(out, buffer.getvalue(), create_parents=False)  # a mistyped path makes no directory
    return top, len(members)
