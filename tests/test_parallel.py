"""Verifying on several processes (``verifier.parallel``) gives the report one process gives, byte
for byte: however the input is cut into shares, with broken lines, unreadable and gzip files, mutated
histories (forks, gaps, replays and repeats across shares), several conversations and embedded key
conflicts; and when the worker processes die or cannot start, the shares are verified here."""

from __future__ import annotations

import copy
import gzip
import json
import multiprocessing
import os
import pickle
import random
import signal
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from pathlib import Path

import msgspec
import pytest
from helpers import ALICE, BOB, MALLORY, ev, keyring, page, two_histories
from hypothesis import given, settings
from hypothesis import strategies as st
from test_same_reports import _mutate_history, _replay_at_the_end

import verifier
from verifier import cli, parallel
from verifier.engine import Verification, _keyring_digest
from verifier.inputs import file_identity, load_pages, load_share, split_bodies
from verifier.parallel import Share, plan_shares, verify_files
from verifier.report import render, stream
from verifier.report.stream import iter_report
from verifier.testing.forge import Identity, build_conversation, snowflake

MAX = 64 * 1024 * 1024
FORMATS = ("json", "ndjson", "text", "sarif", "junit", "markdown")


@pytest.fixture(scope="module")
def histories():
    return two_histories("parallel", "po")


def _texts(report) -> dict[str, str]:
    out = {fmt: "".join(iter_report(report, fmt)) if fmt in ("json", "ndjson") else render(report, fmt)
           for fmt in FORMATS}
    out["text-all"] = render(report, "text", all_events=True, width=100)
    return out


def one_process(paths: list[str], ring, **options):
    return verifier.verify_pages(load_pages(paths, MAX), ring, lazy=True, **options)


def assert_same(shares: list[Share], paths: list[str], ring, processes: int = 2, executor=None, task_bytes=0,
                **options) -> list:
    """The report on processes is the one-process report; returns the warnings given. Each share
    is a task of its own unless ``task_bytes`` groups them."""
    expected = one_process(paths, ring, **options)
    warnings: list[str] = []
    got = verify_files(shares, ring, MAX, processes, options, executor, warn=warnings.append, task_bytes=task_bytes)
    assert _texts(got) == _texts(expected)
    return warnings


def _write_lines(path: Path, pages: list[dict], rng: random.Random) -> None:
    """JSON Lines with the odd blank line, CRLF and a broken line or two."""
    lines = [json.dumps(p) for p in pages]
    for _ in range(rng.randrange(3)):
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(["", "   ", '{"data": [', "not json", "[]"]))
    path.write_bytes(("\r\n" if rng.random() < 0.3 else "\n").join(lines).encode())


def _corpus(tmp_path: Path, histories, seed: int) -> tuple[list[str], list[Share]]:
    """A mutated history spread over files (JSON Lines, one gzip file, one single JSON body, a
    missing file), the other conversation's pages in the middle; each JSON Lines file cut into 1-4
    shares."""
    conv, other, _ring = histories
    rng = random.Random(seed)
    pages = _mutate_history(rng, copy.deepcopy(conv.pages(rng.choice([3, 7, 10]))))
    if rng.random() < 0.3:
        _replay_at_the_end(rng, pages)
    theirs = other.pages(5)
    cut = rng.randrange(1, len(pages))
    pages = pages[:cut] + theirs + pages[cut:]
    paths: list[str] = []
    shares: list[Share] = []
    bounds = sorted(rng.sample(range(1, len(pages)), min(3, len(pages) - 1)))
    for n, (lo, hi) in enumerate(zip([0, *bounds], [*bounds, len(pages)])):
        path = tmp_path / f"f{seed}-{n}.jsonl"
        chunk = pages[lo:hi]
        form = rng.random()
        if form < 0.15 and len(chunk) == 1:
            path.write_text(json.dumps(chunk[0]))
            count = 1 + rng.randrange(3)  # a single body: only share 0 has it
        elif form < 0.3:
            path = path.with_suffix(".jsonl.gz")
            path.write_bytes(gzip.compress("\n".join(json.dumps(p) for p in chunk).encode()))
            count = 1 + rng.randrange(3)
        else:
            _write_lines(path, chunk, rng)
            count = 1 + rng.randrange(4)
        paths.append(str(path))
        shares += [Share(str(path), index, count) for index in range(count)]
    missing = str(tmp_path / f"missing-{seed}.jsonl")
    at = rng.randrange(len(paths) + 1)
    paths.insert(at, missing)
    shares_before = sum(1 for s in shares if s.path in paths[:at])
    shares.insert(shares_before, Share(missing, 0, 2))
    shares.insert(shares_before + 1, Share(missing, 1, 2))
    return paths, shares


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(12))
def test_mutated_histories_on_processes_give_the_same_report(tmp_path, histories, seed):
    paths, shares = _corpus(tmp_path, histories, seed)
    assert_same(shares, paths, histories[2])


GROUP = "g2010754001234567890"
CAROL = Identity.from_seed("3333", "3", "carol")


def _group_history(rng: random.Random) -> list[dict]:
    """A group's pages with what the reviewers and the key checks read across shares: creates, adds
    and removes, deletes (of events in other shares), read markers, a signer with a conflicting key,
    events carrying both a member's key and a conflicting one, and undecodable events with ids that
    are not canonical decimals."""
    def seq_id(n: int) -> str:
        return snowflake(1_784_841_000_000 + n * 1000, n)

    create = {"member_ids": ["1111", "2222"], "admin_ids": ["1111"], "conversation_key_version": "1001"}
    events = [ev("GroupChangeEvent.GroupCreate", create, seq=1, conversation_id=GROUP)]
    for n in range(2, rng.randrange(12, 30)):
        sender, roll = rng.choice([ALICE, BOB, CAROL]), rng.random()
        if roll < 0.1:
            events.append(ev("GroupChangeEvent.GroupMemberAddChange",
                             {"member_ids": ["3333"], "current_member_ids": ["1111", "2222"],
                              "current_admin_ids": ["1111"], "conversation_key_version": "1002"},
                             seq=n, prev=n - 1, sender=ALICE, conversation_id=GROUP))
        elif roll < 0.2:
            events.append(ev("GroupChangeEvent.GroupMemberRemoveChange", {"member_ids": ["3333"]},
                             seq=n, prev=n - 1, sender=ALICE, conversation_id=GROUP))
        elif roll < 0.4:
            targets = [seq_id(rng.randrange(1, n + 3)) for _ in range(rng.randrange(1, 3))]
            events.append(ev("MessageDeleteEvent", {"sequence_ids": targets, "delete_message_action": 2},
                             seq=n, prev=n - 1, sender=sender, conversation_id=GROUP))
        elif roll < 0.5:
            events.append(ev("MarkConversationReadEvent", {"seen_until_sequence_id": seq_id(rng.randrange(1, n + 3))},
                             seq=n, prev=n - 1, sender=sender, conversation_id=GROUP))
        elif roll < 0.6:
            events.append(ev(seq=n, prev=n - 1, sender=MALLORY, conversation_id=GROUP))
        elif roll < 0.75:
            events.append(ev(seq=n, prev=n - 1, sender=sender, conversation_id=GROUP, embed_keys=[sender, MALLORY]))
        else:
            events.append(ev(seq=n, prev=n - 1, sender=sender, conversation_id=GROUP))
    items = [page(e)["data"][0] for e in reversed(events)]  # newest first
    for item in rng.sample(items, 3):  # undecodable, with ids kept as given
        item["encoded_event"] = rng.choice(["@@@@", "AAAA", item["encoded_event"][:-12]])
        item["sequence_id"] = rng.choice(["0012", "abc", "-5", "99999999999999999999999", "１２"])
        item["previous_sequence_id"] = rng.choice(["0011", "", "x" * 40])
    size = rng.choice([1, 2, 3])
    return [{"data": items[i:i + size], **({"meta": {"next_token": f"t{i}"}} if i + size < len(items) else {})}
            for i in range(0, len(items), size)]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(16))
def test_group_histories_across_shares_give_the_same_report(tmp_path, seed):
    """What a reviewer or the key checks read in one share about events in another (kept events,
    embedded key carriers, odd ids) joins as one process holds it."""
    rng = random.Random(seed)
    pages = _group_history(rng)
    ring = keyring(ALICE, BOB, CAROL)
    paths, shares = [], []
    bounds = sorted(rng.sample(range(1, len(pages)), min(2, len(pages) - 1)))
    for n, (lo, hi) in enumerate(zip([0, *bounds], [*bounds, len(pages)])):
        path = tmp_path / f"g{n}.jsonl"
        path.write_text("\n".join(json.dumps(p) for p in pages[lo:hi]))
        paths.append(str(path))
        count = rng.randrange(1, 5)
        shares += [Share(str(path), i, count) for i in range(count)]
    executor = None if seed % 4 == 0 else (lambda n: Sequential(lambda: None))  # a real pool now and then
    assert_same(shares, paths, ring, executor=executor)
    assert_same(shares, paths, None, executor=executor, allow_embedded_keys=True)


@pytest.mark.slow
def test_shares_grouped_into_tasks_give_the_same_report(tmp_path, histories):
    paths, shares = _corpus(tmp_path, histories, 42)
    sized = [Share(s.path, s.index, s.count, 1 + n % 3) for n, s in enumerate(shares)]
    for task_bytes in (2, 4, 10 ** 9):
        assert_same(sized, paths, histories[2], task_bytes=task_bytes)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 9), max_size=20), st.integers(0, 12))
def test_tasks_keep_the_shares_in_order_and_big_enough(sizes, min_bytes):
    shares = [Share(f"f{n}", 0, 1, size) for n, size in enumerate(sizes)]
    tasks = parallel.tasks_of(shares, min_bytes)
    assert [s for task in tasks for s in task] == shares
    assert all(task for task in tasks)
    assert all(sum(s.size for s in task) >= min_bytes for task in tasks[:-1])
    assert all(len(task) == 1 or sum(s.size for s in task[:-1]) < min_bytes for task in tasks)  # no bigger


@pytest.mark.slow
def test_options_and_embedded_keys_give_the_same_report(tmp_path, histories):
    paths, shares = _corpus(tmp_path, histories, 99)
    assert_same(shares, paths, None, allow_embedded_keys=True)
    assert_same(shares, paths, histories[2], strict=True, allow_partial=True)
    assert_same(shares, paths, histories[2], expected_conversation_id=histories[0].conversation_id)


def test_the_examples_on_processes_give_the_same_report():
    root = Path(__file__).resolve().parent.parent / "examples"
    ring = verifier.Keyring.from_json((root / "keyring.json").read_bytes())
    for folder in ("conversation", "tampered"):
        paths = sorted(str(p) for p in (root / folder).glob("*.json"))
        assert paths
        shares = [Share(p, i, 2) for p in paths for i in range(2)]
        assert_same(shares, paths, ring)


def test_dead_workers_leave_the_shares_to_this_process(tmp_path, histories):
    """Workers that die at start (a real pool, broken): every share is verified here instead."""
    paths, shares = _corpus(tmp_path, histories, 5)
    context = multiprocessing.get_context("forkserver")
    warned = assert_same(shares, paths, histories[2], executor=lambda n: ProcessPoolExecutor(
        n, mp_context=context, initializer=os._exit, initargs=(3,)))
    assert len(warned) == 1 and "a worker process failed (BrokenProcessPool)" in warned[0]

    def cannot_start(n):
        raise OSError("no semaphores here")

    warned = assert_same(shares, paths, histories[2], executor=cannot_start)
    assert warned == ["warning: cannot start worker processes (OSError: no semaphores here); verifying those "
                      "pages in this process instead (slower, same report)"]


def test_healthy_workers_give_no_warning(tmp_path, histories):
    paths, shares = _corpus(tmp_path, histories, 6)
    assert assert_same(shares, paths, histories[2]) == []


class Sequential(Executor):
    """Runs each task when it is submitted, in this process, its result pickled as from a worker;
    ``between`` runs after each task (a writer racing the workers)."""

    def __init__(self, between):
        self.between = between

    def submit(self, fn, /, *args, **kwargs):
        future: Future = Future()
        future.set_result(pickle.loads(pickle.dumps(fn(*args, **kwargs))))
        self.between()
        return future

    def shutdown(self, wait=True, *, cancel_futures=False):
        pass


@pytest.mark.parametrize("change", ["removed", "replaced", "grown", "rewritten"])
def test_a_file_changed_while_its_shares_are_read_fails(tmp_path, histories, change):
    """Every share of a file that is no longer the file planned says so: no page goes missing
    unnoticed and no two versions are mixed; the run does not pass."""
    conv, _other, ring = histories
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(json.dumps(p) for p in conv.pages(5)))
    other = "\n".join(json.dumps(p) for p in reversed(conv.pages(5)))
    shares = [Share(str(path), i, 4, 1, file_identity(path.stat())) for i in range(4)]
    assert verify_files(shares, ring, MAX, 2, {}, lambda n: Sequential(lambda: None), task_bytes=0).verdict == "pass"
    done = []

    def between():
        if not done:
            done.append(1)
            if change == "removed":
                path.unlink()
            elif change == "replaced":
                replacement = tmp_path / "new.jsonl"
                replacement.write_text(other)
                os.replace(replacement, path)
            elif change == "grown":
                with open(path, "a") as handle:
                    handle.write("\n" + json.dumps(conv.pages(5)[0]))
            else:
                path.write_text(other)  # same size, written in place
                os.utime(path, ns=(0, path.stat().st_mtime_ns + 1))

    report = verify_files(shares, ring, MAX, 2, {}, lambda n: Sequential(between), task_bytes=0)
    assert report.verdict == "fail"
    errors = [e for i in report.inputs for e in i.errors]
    assert len(errors) == 3 and all("changed while it was being verified" in e or "cannot read it" in e
                                    for e in errors)


def test_shares_that_read_a_file_differently_fail(tmp_path, histories):
    """JSON nested about as deep as the recursion limit reads as one document on a deep stack and as
    JSON Lines on a shallow one; shares of one file read both ways must not lose pages quietly."""
    conv, _other, ring = histories
    depth = _deepest_readable() - 20  # readable here, not 200 frames deeper
    path = tmp_path / "deep.jsonl"
    first = json.dumps(conv.pages(5)[0])[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    path.write_text("\n".join([first, *(json.dumps(p) for p in conv.pages(5)[1:])]))
    shares = [Share(str(path), i, 2, 1, file_identity(path.stat())) for i in range(2)]
    calls = []

    def deep_or_not(fn, *args):
        calls.append(1)
        return fn(*args) if len(calls) == 1 else _at_depth(200, fn, *args)

    class Alternating(Sequential):
        def submit(self, fn, /, *args, **kwargs):
            future: Future = Future()
            future.set_result(pickle.loads(pickle.dumps(deep_or_not(fn, *args))))
            return future

    report = verify_files(shares, ring, MAX, 2, {}, lambda n: Alternating(None), task_bytes=0)
    assert report.verdict == "fail"
    assert any("read differently by two processes (document and lines" in e for i in report.inputs for e in i.errors)


def _at_depth(frames: int, fn, *args):
    return fn(*args) if frames == 0 else _at_depth(frames - 1, fn, *args)


def _deepest_readable() -> int:
    """How deep msgspec reads nested lists from here (it counts against the recursion limit)."""
    low, high = 1, 100_000
    while low < high:
        mid = (low + high + 1) // 2
        try:
            msgspec.json.decode(b"[" * mid + b"]" * mid)
            low = mid
        except RecursionError:
            high = mid - 1
        except msgspec.DecodeError:
            high = mid - 1
    return low


# ------------------------------------------------------------------------------ shares of a file
_LINES = st.lists(st.one_of(st.just('{"data": []}'), st.just(""), st.just("  "), st.just("{bad"),
                            st.builds(lambda n: json.dumps({"data": [], "meta": {"result_count": n}}),
                                      st.integers(0, 9))), max_size=12)


@settings(max_examples=400, deadline=None)
@given(_LINES, st.sampled_from(["\n", "\r\n"]), st.booleans(), st.integers(1, 30))
def test_the_shares_of_a_file_are_its_pages_once_in_order(lines, newline, final_newline, shares):
    """Each share takes the lines beginning in its stretch of the bytes (more shares than lines,
    lines across a stretch's end, blank lines): together, every page once, in order, numbered as
    one reader numbers them."""
    data = (newline.join(lines) + (newline if final_newline else "")).encode()
    whole = [repr(p) for p in split_bodies(data, "f")]
    parts = [repr(p) for share in range(shares) for p in split_bodies(data, "f", share, shares)]
    assert parts == whole


_FILES = {
    "lines.jsonl": b'{"data": []}\n\n  \n{"data": [], "meta": {"result_count": 1}}\n{bad\n[]\n{"data": []}',
    "crlf.jsonl": b'{"data": []}\r\n{"data": []}\r\n\r\n',
    "pretty.json": b'{\n  "data": [],\n  "meta": {}\n}\n',
    "bom.jsonl": b'\xef\xbb\xbf{"data": []}\n{"data": []}\n',
    "empty.jsonl": b"",
    "blank.jsonl": b"  \n\n",
    "garbage.bin": b"\x00\xffnot json at all\n\x01",
    "first-bad.jsonl": b'{bad\n{"data": []}\n',
    "gz.jsonl.gz": gzip.compress(b'{"data": []}\n{"data": []}\n'),
    "nul.jsonl": b'{"data": []}\n\x00\n{"data": []}\n',
}


@pytest.mark.parametrize("name", sorted(_FILES))
def test_a_file_read_in_shares_gives_the_pages_of_load_pages(tmp_path, name):
    """Mapped (plain files) or read (gzip, BOM, empty): the shares give ``load_pages``' pages, in order."""
    path = tmp_path / name
    path.write_bytes(_FILES[name])
    whole = [repr(p) for p in load_pages([str(path)], MAX)]
    too_big = [repr(p) for p in load_pages([str(path)], 4)]
    for mapped in (True, False):
        for shares in range(1, 6):
            assert [repr(p) for i in range(shares) for p in load_share(str(path), MAX, i, shares, mapped)] == whole
        assert [repr(p) for i in range(2) for p in load_share(str(path), 4, i, 2, mapped)] == too_big


def test_shares_say_how_they_read_a_file_and_only_share_zero_parses_a_document():
    forms: list[str] = []
    for data in (_FILES["lines.jsonl"], _FILES["pretty.json"], _FILES["garbage.bin"], b'{"data": []}'):
        for share in range(2):
            list(split_bodies(data, "f", share, 2, forms))
    assert forms == ["lines", "lines", "document", "not lines", "neither", "not lines", "document", "document"]


@pytest.mark.parametrize("mapped", [True, False])
def test_an_unreadable_file_is_one_error_in_share_zero(tmp_path, mapped):
    missing = str(tmp_path / "nope.jsonl")
    first = list(load_share(missing, MAX, 0, 3, mapped))
    assert len(first) == 1 and first[0].errors and first[0].source == missing
    assert list(load_share(missing, MAX, 1, 3, mapped)) == [] == list(load_share(missing, MAX, 2, 3, mapped))


def test_plan_shares(tmp_path):
    big = tmp_path / "big.jsonl"
    big.write_bytes(b'{"data": []}\n' * 3_000_000)  # 39 MB
    packed = tmp_path / "packed.jsonl.gz"
    packed.write_bytes(gzip.compress(b'{"data": []}\n' * 1000))
    paths = [str(big), str(packed), str(tmp_path / "missing.jsonl")]
    assert plan_shares(paths, 1) is None  # one process
    assert plan_shares([*paths, "-"], 2) is None  # standard input is read once, here
    assert plan_shares([str(packed)], 2) is None  # too small to repay the workers
    shares = plan_shares(paths, 2)
    assert shares is not None
    big_shares = [s for s in shares if s.path == str(big)]
    assert len(big_shares) > 1 and [s.index for s in big_shares] == list(range(big_shares[0].count))
    rest = [s for s in shares if s.path != str(big)]
    assert [(s.path, s.index, s.count, s.size) for s in rest] == [(str(packed), 0, 1, packed.stat().st_size),
                                                                 (str(tmp_path / "missing.jsonl"), 0, 1, 0)]
    assert rest[0].identity == file_identity(packed.stat()) and rest[1].identity is None
    assert all(s.identity == file_identity(big.stat()) for s in big_shares)
    assert sum(s.size for s in big_shares) <= big.stat().st_size
    assert [s.path for s in shares] == sorted([s.path for s in shares], key=paths.index)  # input order


def test_the_last_shares_are_the_smallest_so_the_workers_end_together(tmp_path):
    """Planning reads sizes only: sparse files stand for 640 MB of pages. The files are cut into
    about 8 shares per process, and the final stretch (one such share per process) into the
    smallest shares, so no worker is left with a long last task while the others idle; but no file
    into more than 8 shares per process (each share of a file walks all of its lines)."""
    paths = []
    for number in range(10):
        path = tmp_path / f"pages-{number}.jsonl"
        with open(path, "wb") as handle:
            handle.write(b'{"data": []}\n')
            handle.truncate(64 * 2 ** 20)
        paths.append(str(path))
    shares = plan_shares(paths, 2)
    assert shares is not None
    by_file = [[s for s in shares if s.path == path] for path in paths]
    assert [len(file) for file in by_file] == [1] * 8 + [16, 16]
    assert all(s.size == 64 * 2 ** 20 for file in by_file[:8] for s in file)
    assert all(s.size == 4 * 2 ** 20 for file in by_file[8:] for s in file)
    assert [len(task) for task in parallel.tasks_of(shares)] == [1] * len(shares)  # none merged
    one = plan_shares(paths[:1], 2)  # one large file: its final stretch is all of it, in at most 16 shares
    assert one is not None and len(one) == 16 and all(s.size == 4 * 2 ** 20 for s in one)
    with open(paths[0], "r+b") as handle:
        handle.truncate(640 * 2 ** 20)
    one = plan_shares(paths[:1], 2)
    assert one is not None and len(one) == 16 and all(s.size == 40 * 2 ** 20 for s in one)


def test_a_fifo_or_a_directory_keeps_the_run_in_one_process(tmp_path):
    """A FIFO (``<(...)``) can be read once, by this process; a directory is not a page file."""
    big = tmp_path / "big.jsonl"
    big.write_bytes(b'{"data": []}\n' * 3_000_000)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert plan_shares([str(big), str(fifo)], 2) is None
    assert plan_shares([str(big), str(tmp_path)], 2) is None
    assert plan_shares([str(big), str(tmp_path / "missing")], 2) is not None


def test_a_file_over_the_limit_is_one_share_with_one_error(tmp_path):
    big = tmp_path / "big.jsonl"
    big.write_bytes(b'{"data": []}\n' * 3_000_000)
    shares = plan_shares([str(big)], 2, max_bytes=10 * 1024 * 1024)
    assert shares is not None and len(shares) == 1
    report = verify_files(shares, None, 10 * 1024 * 1024, 2, {"allow_embedded_keys": True})
    errors = [e for i in report.inputs for e in i.errors]
    assert len(errors) == 1 and "larger than the limit" in errors[0] and report.verdict == "fail"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_a_utf16_file_is_one_share_with_one_error(tmp_path, histories, monkeypatch, encoding):
    """A UTF-16 file is refused whole, as one input error (``unpack_limited``): it is one share, as
    a gzip file is (round 114: 34 MB of it, cut in 8 shares, said the error 8 times)."""
    conv, _other, ring = histories
    monkeypatch.setattr(parallel, "_SHARE_BYTES", 64)  # small files cut in many shares
    utf16 = tmp_path / "u16.jsonl"
    text = "\n".join(json.dumps(p) for p in conv.pages(3))
    utf16.write_bytes(b"\xfe\xff" + text.encode(encoding) if encoding == "utf-16-be" else text.encode(encoding))
    plain = tmp_path / "plain.jsonl"
    plain.write_text("\n".join(json.dumps(p) for p in conv.pages(3)))
    paths = [str(plain), str(utf16)]
    shares = plan_shares(paths, 2, min_bytes=0)
    assert shares is not None and [s.path for s in shares].count(str(utf16)) == 1
    assert [s.path for s in shares].count(str(plain)) > 1
    assert_same(shares, paths, ring)
    report = verify_files(shares, ring, MAX, 2, {})
    errors = [e for i in report.inputs for e in i.errors]
    assert len(errors) == 1 and "UTF-16" in errors[0]


def test_a_large_utf16_file_is_planned_as_one_share(tmp_path):
    big = tmp_path / "big.jsonl"
    big.write_bytes('{"data": []}\n'.encode("utf-16") * 1_200_000)  # 36 MB, each line with its BOM
    shares = plan_shares([str(big)], 2)
    assert shares is not None and len(shares) == 1
    report = verify_files(shares, None, MAX, 2, {"allow_embedded_keys": True})
    errors = [e for i in report.inputs for e in i.errors]
    assert len(errors) == 1 and "UTF-16" in errors[0] and report.verdict == "fail"


def test_a_file_written_after_its_share_is_read_fails(tmp_path, histories):
    """The identity is checked again once a share's pages are decoded: a write during the read shows."""
    conv, _other, ring = histories
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(json.dumps(p) for p in conv.pages(5)))
    share = Share(str(path), 0, 1, 1, file_identity(path.stat()))
    pages = load_share(str(path), MAX, 0, 1, identity=share.identity)
    first = next(pages)
    assert not first.errors
    with open(path, "a") as handle:  # a fetcher appends older pages meanwhile
        handle.write("\n" + json.dumps(conv.pages(5)[0]))
    rest = list(pages)
    assert rest[-1].errors and "changed while it was being verified" in rest[-1].errors[0]


@pytest.mark.parametrize("mapped", [True, False])
def test_a_file_that_grew_before_it_is_read_is_refused(tmp_path, mapped):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"data": []}\n{"data": []}\n')
    identity = file_identity(path.stat())
    with open(path, "ab") as handle:
        handle.write(b'{"data": []}\n')
    os.utime(path, ns=(identity[3], identity[3]))  # even with its mtime put back: the size differs
    pages = list(load_share(str(path), MAX, 1, 2, mapped, identity))
    assert len(pages) == 1 and "changed while it was being verified" in pages[0].errors[0]


def _kept_pools() -> tuple[list[Executor], Callable[[int], Executor]]:
    """An executor factory for ``parallel._parts`` making its real process pools, and the list it
    keeps them in (for a test to look at their workers)."""
    pools: list[Executor] = []

    def executor(n: int) -> Executor:
        pools.append(parallel._process_pool(n))
        return pools[-1]

    return pools, executor


def test_workers_are_killed_when_the_parts_are_not_all_taken(tmp_path, histories):
    """An interrupt (here: the consumer closing the generator) kills busy workers, not waits."""
    conv, _other, ring = histories
    paths, shares = _corpus(tmp_path, histories, 7)
    pools, executor = _kept_pools()
    slow = [Share(s.path, s.index, s.count) for s in shares]
    parts = parallel._parts(parallel.tasks_of(slow, 0), ring, MAX, 2, {}, executor, lambda why: None)
    next(parts)
    processes = list(pools[0]._processes.values())
    assert processes
    # The pool's own thread reaps its workers (shutting the pool down forgets it, so it is taken
    # now): waiting on them here as well would race it for their exit status (the loser's waitpid
    # fails, and to it the process looks alive).
    manager = pools[0]._executor_manager_thread
    assert manager is not None
    parts.close()
    manager.join(30)  # (generous: a loaded CI machine)
    assert not manager.is_alive()
    for process in processes:
        assert process.exitcode == -signal.SIGKILL, process.exitcode  # killed, not waited for


def _keyring_used(ring: bytes) -> tuple[int, bytes]:
    """(Run in a worker.) The keyring a task carrying ``ring`` verifies with: its id and digest."""
    used = parallel._keyring_from(ring)
    return id(used), _keyring_digest(used)


def test_a_forked_worker_verifies_with_the_keyring_it_holds_not_a_rebuilt_copy(tmp_path, histories, monkeypatch):
    """Round 136: rebuilding the keyring from the pickle every task carries checked every identity
    binding again in each worker before its first event (0.2 s for 2,000 users), though a forked
    worker holds the keyring already. A pickle of another keyring is still rebuilt from its rows."""
    monkeypatch.setattr(parallel, "can_fork", lambda: True)  # threads earlier tests left in this process
    _conv, _other, ring = histories
    _paths, shares = _corpus(tmp_path, histories, 3)
    pools, executor = _kept_pools()
    parts = parallel._parts(parallel.tasks_of(shares, 0), ring, MAX, 1, {}, executor, lambda why: None)
    try:
        first = next(parts)  # the worker forked and verified a task
        held = pools[0].submit(_keyring_used, pickle.dumps(ring)).result(timeout=60)
        other = keyring(MALLORY)
        rebuilt = pools[0].submit(_keyring_used, pickle.dumps(other)).result(timeout=60)
    finally:
        parts.close()
    assert first.verification._expected_keyring_digest() == _keyring_digest(ring)
    assert held == (id(ring), _keyring_digest(ring))  # the very object: the worker's copy of this process
    assert rebuilt[0] != id(other) and rebuilt[1] == _keyring_digest(other)


def test_one_process_when_asked(tmp_path, monkeypatch):
    big = tmp_path / "big.jsonl"
    big.write_bytes(b'{"data": []}\n' * 3_000_000)
    assert plan_shares([str(big)], 2) is not None
    monkeypatch.setenv("XCHAT_VERIFY_PROCESSES", "0")
    assert plan_shares([str(big)], 2) is None


def test_other_reviewers_are_refused(tmp_path):
    with pytest.raises(ValueError):
        verify_files([Share(str(tmp_path / "x.jsonl"))], None, MAX, 2, {"reviewers": ()})


def test_a_part_joins_only_when_checked(histories):
    conv, _other, ring = histories
    whole, part = Verification(), Verification()
    for v in (whole, part):
        v.expect_keyring(ring, facts=False)
    part.add_page(conv.pages(10)[0])
    with pytest.raises(ValueError):
        whole.absorb(part)  # its signatures are not checked yet
    part.check_part(ring)
    whole.absorb(part)
    assert whole.event_count == part.event_count


# ------------------------------------------------------------------------------ the CLI
@pytest.mark.slow
def test_the_cli_uses_processes_for_large_files_with_the_same_report(tmp_path, monkeypatch):
    """Files over the threshold take the process path (seen by its shares), and the report is the
    one ``--workers 1`` gives in every format (the JSON events array encoded half by a forked child)."""
    conv = build_conversation(1_100, seed="parallel-cli", realistic_crypto=False)
    (tmp_path / "ring.json").write_text(json.dumps(conv.keyring()))
    pages = conv.pages(20)
    files = []
    for n in range(0, len(pages), 5):
        path = tmp_path / f"p{n}.jsonl"
        path.write_text("\n".join(json.dumps(p) for p in pages[n:n + 5]))
        files.append(str(path))
    planned = []
    original = parallel.plan_shares

    def plan(paths, processes, min_bytes=parallel.MIN_BYTES, max_bytes=None):
        shares = original(paths, processes, min_bytes=0, max_bytes=max_bytes)
        planned.append(shares)
        return shares

    children = []
    real_start = stream._ForkedBatches.start

    def forked(self):
        real_start(self)
        children.append(self.pid)

    for fmt in ("json", "text", "sarif"):
        args = ["verify", *files, "--keys", str(tmp_path / "ring.json"), "--format", fmt]
        monkeypatch.setattr(cli, "plan_shares", plan)
        monkeypatch.setattr(stream, "_FORK_MIN_EVENTS", 0)
        monkeypatch.setattr(stream, "can_fork", lambda: True)  # threads earlier tests left in this process
        monkeypatch.setattr(stream._ForkedBatches, "start", forked)
        assert cli.main([*args, "--workers", "2", "-o", str(tmp_path / f"procs.{fmt}")]) == 0
        monkeypatch.undo()
        assert cli.main([*args, "--workers", "1", "-o", str(tmp_path / f"one.{fmt}")]) == 0
        assert (tmp_path / f"procs.{fmt}").read_bytes() == (tmp_path / f"one.{fmt}").read_bytes()
    assert all(shares for shares in planned)
    assert len(children) == 1 and children[0]  # the JSON report's, not refused


def test_no_more_worker_processes_than_tasks(tmp_path, histories):
    """``--workers 100000`` on a 42 MB file forked until the machine ran out of memory (review): a
    pool that forks starts every worker at once, so the pool is sized by the tasks too."""
    _conv, _other, ring = histories
    paths, shares = _corpus(tmp_path, histories, 3)
    asked: list[int] = []

    def executor(n):
        asked.append(n)
        return ProcessPoolExecutor(min(n, 2))  # (a regression fails the assertion, never forks 100,000)

    tasks = parallel.tasks_of(shares, 0)
    parts = list(parallel._parts(tasks, ring, MAX, 100_000, {}, executor, lambda why: None))
    assert asked == [len(tasks)] and len(parts) == len(tasks)


def test_a_worker_whose_parent_is_gone_exits_at_once():
    """The pool's initializer is given the verifying process's pid: a worker forked just before
    that process was killed exits instead of living on as an orphan (two did, in review)."""
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        try:
            parallel._ignore_interrupts(os.getppid() + 1_000_000)  # not its parent: as if orphaned
            os._exit(0)
        finally:
            os._exit(2)
    _pid, status = os.waitpid(child, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1


def test_the_pool_names_the_parent_that_forks_its_workers(monkeypatch):
    monkeypatch.setattr(parallel, "can_fork", lambda: True)
    pool = parallel._process_pool(1)
    try:
        assert pool._initargs == (os.getpid(),)
        assert pool.submit(os.getppid).result(timeout=60) == os.getpid()
    finally:
        pool.shutdown()


def test_workers_beyond_the_usable_cpus_are_lowered_to_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "usable_cpus", lambda: 2)
    seen = []
    real = cli.verify_pages
    monkeypatch.setattr(cli, "verify_pages", lambda *a, **kw: seen.append(kw["workers"]) or real(*a, **kw))
    body = tmp_path / "p.json"
    body.write_text(json.dumps(page(ev(seq=1), ev(seq=2, prev=1, sender=BOB))))
    ring = tmp_path / "ring.json"
    ring.write_text(json.dumps({"keys": [ALICE.keyring_entry(), BOB.keyring_entry()]}))
    assert cli.main(["verify", str(body), "--keys", str(ring), "--workers", "100000"]) == 0
    assert seen == [2]
    assert capsys.readouterr().err.splitlines()[0] == \
        "xchat-verify: warning: --workers 100000: this process may run on 2 CPU(s); using 2"


@pytest.mark.slow
def test_pages_that_say_the_history_goes_on_give_the_same_report_on_processes(tmp_path, histories):
    """What pages say of their history's end (no last page; has_more without a next_token; errors[]
    saying events were left out) meets in the verifying process, however the files are shared."""
    conv, other, ring = histories
    pages = conv.pages(7)[:-1]  # the oldest page is not given
    theirs = other.pages(5)
    theirs[-1]["meta"] = {**theirs[-1].get("meta", {}), "has_more": True}  # the oldest page, without a token
    theirs[-1]["errors"] = [{"title": "Not Found Error", "detail": "1 event could not be returned",
                             "type": "https://api.x.com/2/problems/resource-not-found"}]
    paths, shares = [], []
    for n, chunk in enumerate((pages[:3], theirs, pages[3:])):
        path = tmp_path / f"f{n}.jsonl"
        path.write_text("\n".join(json.dumps(p) for p in chunk))
        paths.append(str(path))
        shares += [Share(str(path), index, 2) for index in range(2)]
    assert_same(shares, paths, ring)
    report = one_process(paths, ring)
    assert [c.complete for c in report.conversations] == [False, False]
    assert [[f.message.split(": ")[-1] for f in c.findings] for c in report.conversations] == [
        ["the older events it leads to were not given"],
        ["meta.has_more is true but there is no next_token", "Not Found Error - 1 event could not be returned"]]


_KILLED_MID_RESULT = """
import os, struct, sys, time
from collections import deque
from verifier import parallel

WRITER = None

def half_a_result():
    # what a worker killed while it wrote its part leaves in the pool's result pipe: a message's length
    # (a megabyte) and its first bytes; then the worker is killed before the rest
    os.write(WRITER.fileno(), struct.pack("!i", 1_000_000) + b"x" * 10)
    time.sleep(60)

pool = parallel._process_pool(1)
WRITER = pool._result_queue._writer  # the forked worker inherits it
future = pool.submit(half_a_result)
time.sleep(1.0)  # the pool's reader thread is now waiting for the rest of the message
manager = pool._executor_manager_thread
parallel._stop(pool, deque([((), future)]), finished=False)  # an interrupt: the worker is killed
manager.join(10)
print("reader thread still waiting" if manager.is_alive() else "reader thread ended", flush=True)
"""


def test_an_interrupt_that_kills_a_worker_mid_result_lets_the_run_end(tmp_path):
    """Round 87: Ctrl-C during a parallel verify killed the workers; one killed while it wrote its part
    left the pool's reader thread waiting for the rest of the message forever (this process holds a
    write end of the pipe too), and the interpreter's exit joins that thread: "interrupted" was
    printed and the run never ended (a second Ctrl-C: a traceback). The half-written message is made
    here by the worker itself, then ``_stop`` kills it as an interrupt does."""
    if "fork" not in multiprocessing.get_all_start_methods():  # (asked here, not can_fork(): this test process
        pytest.skip("the worker is forked to inherit the pipe")  # may run threads, the fresh one does not)
    import subprocess
    import sys
    try:
        proc = subprocess.run([sys.executable, "-c", _KILLED_MID_RESULT], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[1], timeout=60)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the process never ended after its workers were killed: {exc.stdout!r}")
    assert (proc.returncode, proc.stdout) == (0, "reader thread ended\n"), proc.stderr


def test_killing_the_workers_with_tasks_still_queued_prints_no_traceback():
    """Review 96: an interrupt early in ``verify --workers 2`` (tasks still queued, not yet handed to
    a worker) printed a traceback from the pool's own thread, ``InvalidStateError: CANCELLED``: the
    queued futures were cancelled, then the killed workers broke the pool, and its thread set the
    broken-pool error on every queued future, cancelled ones too (Python 3.11 does not skip them)."""
    import threading
    import time
    from collections import deque
    seen: list[BaseException] = []
    before = threading.excepthook
    threading.excepthook = lambda args: seen.append(args.exc_value)
    try:
        pool = parallel._process_pool(1)
        futures = [pool.submit(time.sleep, 30) for _ in range(6)]  # one runs, one waits in the call queue, 4 queued
        time.sleep(1.0)
        manager = pool._executor_manager_thread
        parallel._stop(pool, deque(((), f) for f in futures), False)
        manager.join(30)
        assert not manager.is_alive()
    finally:
        threading.excepthook = before
    assert not seen, seen
