"""archive verify: the same report as verify, however the archive is cut and wherever it runs.

Most checks run the coordinator in process (the same tasks, no cluster) over many cuts; two tests
run on a real Dask LocalCluster: the library against verify (with a worker process killed in each
phase) and the CLI end to end.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest
from helpers import REPO
from pg import free_port

import verifier
from verifier.archive import InProcess, verify_archive
from verifier.archive.coordinate import combine
from verifier.archive.sources import PageFile, SavedPage, discover, plan
from verifier.audit import verify_saved_audit
from verifier.errors import UsageError
from verifier.inputs import load_pages
from verifier.report import render
from verifier.testing.archive import conversations, keyring, write_evidence, write_pages

pytestmark = pytest.mark.slow  # real Dask clusters, workers killed: CI and `pytest --slow`

MB = 1024 * 1024


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Eight conversations as an evidence directory and as a tree of page files, each tampered with."""
    root = tmp_path_factory.mktemp("archive")
    convs = conversations(8, 33)
    (root / "keyring.json").write_text(json.dumps(keyring(convs)))
    ev = write_evidence(root / "tree" / "ev", convs[:5], page_size=10)
    pages = sorted(write_pages(root / "tree" / "pages", convs[3:], page_size=10))
    _flip_signature(pages[1])  # an invalid signature
    pages[5].unlink()  # a page missing: a gap
    (root / "tree" / "pages" / "broken.json").write_text("{not json")
    (root / "tree" / "pages" / "notes.txt").write_text("not a page: skipped inside a tree")
    manifest = json.loads((ev / "manifest.json").read_text())
    altered = ev / manifest["conversations"][1]["pages"][2]["file"]
    altered.write_bytes(altered.read_bytes().replace(b'"data"', b'"data" ', 1))  # SHA-256 no longer matches
    return root, ev, [str(p) for p in sorted((root / "tree" / "pages").rglob("*.json"))]


def _flip_signature(path: Path) -> None:
    page = json.loads(path.read_text())
    sig = page["data"][3]["message_event_signature"]
    sig["signature"] = sig["signature"][:10] + ("A" if sig["signature"][10] != "A" else "B") + sig["signature"][11:]
    path.write_text(json.dumps(page))


def _ring(root: Path) -> verifier.Keyring:
    return verifier.Keyring.from_json((root / "keyring.json").read_text())


def _json(report) -> bytes:
    return msgspec.json.encode(report)


def test_every_cut_gives_verify_s_report_byte_for_byte(data):
    root, ev, files = data
    ring = _ring(root)
    expected_ev = verify_saved_audit(str(ev))
    expected_pages = verifier.verify_pages(load_pages(files, 512 * MB), ring)
    assert expected_ev.verdict == expected_pages.verdict == "fail"
    for cut in (1, 2_000, 9_000, 10**9):  # every page its own task ... everything in one
        ours = verify_archive([str(ev)], None, InProcess(), task_bytes=cut)
        assert _json(ours) == _json(expected_ev), cut
        ours = verify_archive([str(root / "tree" / "pages")], ring, InProcess(), task_bytes=cut)
        assert _json(ours) == _json(expected_pages), cut
    assert render(ours, "text") == render(expected_pages, "text")
    by_url = verify_archive([(root / "tree" / "pages").as_uri()], ring, InProcess(), task_bytes=9_000)  # through fsspec
    assert _json(by_url) == _json(expected_pages)
    assert render(ours, "sarif") == render(expected_pages, "sarif")


def test_page_files_inside_a_tar_archive_are_read_through_fsspec(data, tmp_path):
    """A tar member's handle has no descriptor (no ``fileno``): it is read as before, whole."""
    root, _ev, files = data
    ring = _ring(root)
    pages = [f for f in files if not f.endswith("broken.json")]
    tar = tmp_path / "pages.tar"
    with tarfile.open(tar, "w") as archive:
        for number, path in enumerate(pages):
            archive.add(path, arcname=f"{number:03d}.json")
    urls = [f"tar://{number:03d}.json::{tar.as_uri()}" for number in range(len(pages))]
    ours = verify_archive(urls, ring, InProcess(), task_bytes=9_000)
    expected = verifier.verify_pages(load_pages(pages, 512 * MB), ring)
    assert not [e for i in ours.inputs for e in i.errors]
    assert _json(ours.conversations) == _json(expected.conversations) and ours.verdict == expected.verdict


def test_an_evidence_directory_inside_a_tree_given_as_a_url_is_one_input_error(data):
    """As an evidence directory given as a URL is (its confinement checks are path-based); round 92:
    its manifest, keyring and keys were read as page files, its pages without their SHA-256 checks."""
    root, ev, files = data
    ring = _ring(root)
    ours = verify_archive([(root / "tree").as_uri()], ring, InProcess(), task_bytes=9_000)
    errors = {i.source: i.errors for i in ours.inputs if i.errors}
    assert errors.pop(ev.as_uri()) == ["an evidence directory must be a local path"]
    pages = verifier.verify_pages(load_pages(files, 512 * MB), ring)
    assert errors == {i.source: i.errors for i in pages.inputs if i.errors}
    assert _json(ours.conversations) == _json(pages.conversations)


def test_options_reach_every_part(data):
    root, ev, files = data
    for options in ({"strict": True}, {"allow_partial": True, "allow_empty": True}, {"allow_embedded_keys": True}):
        expected = verifier.verify_pages(load_pages(files, 512 * MB), None, **options)
        ours = verify_archive([str(root / "tree" / "pages")], None, InProcess(), task_bytes=3_000, **options)
        assert _json(ours) == _json(expected), options
    keyed = verify_archive([str(ev)], _ring(root), InProcess(), task_bytes=3_000)
    assert _json(keyed) == _json(verify_saved_audit(str(ev), _ring(root)))


def test_an_audit_stopped_before_its_key_phase_reads_as_verify_reads_it(data, tmp_path):
    root, ev, _files = data
    shutil.copytree(ev, tmp_path / "ev")
    (tmp_path / "ev" / "keyring.json").unlink()  # written when the key phase ends
    for ring in (None, _ring(root)):
        ours = verify_archive([str(tmp_path / "ev")], ring, InProcess(), task_bytes=3_000)
        assert _json(ours) == _json(verify_saved_audit(str(tmp_path / "ev"), ring))
        assert any("keys not fetched" in e for i in ours.inputs for e in i.errors) is (ring is None)


def test_several_groups_continue_the_indices_and_fail_together(data):
    root, ev, files = data
    ring = _ring(root)
    ours = verify_archive([str(root / "tree")], ring, InProcess(), task_bytes=5_000)
    parts = [verifier.verify_pages(load_pages(files, 512 * MB), ring), verify_saved_audit(str(ev), ring)]
    # the tree holds ev/ before pages/: one group each, in name order
    assert [g.kind for g in discover([str(root / "tree")])] == ["evidence", "pages"]
    assert _json(ours) == _json(combine(parts[::-1], keyring=ring, options={}))
    indices = [e.index for c in ours.conversations for e in c.events]
    assert sorted(indices) == list(range(len(indices)))
    assert sum(i.event_count for i in ours.inputs) == len(indices) == ours.proof.events
    assert ours.verdict == "fail" and not ours.complete


def test_bad_sources_are_input_errors_and_the_rest_is_verified(data, tmp_path):
    root, ev, _files = data
    bad = tmp_path / "bad"
    shutil.copytree(ev, bad / "ev-broken")
    (bad / "ev-broken" / "manifest.json").write_text("{")  # an unusable evidence directory
    shutil.copytree(ev, bad / "ev-good")
    (bad / "empty").mkdir()
    big = bad / "big.json"
    big.write_bytes(b" " * (MB + 10))
    report = verify_archive([str(bad), str(bad / "empty"), str(tmp_path / "missing.json")], None, InProcess(),
                            max_file_mb=1)
    errors = {i.source: i.errors for i in report.inputs if i.errors}
    assert "is not JSON" in errors[str(bad / "ev-broken")][0]
    assert "larger than the limit of 1 MB" in errors[str(big)][0]
    assert errors[str(bad / "empty")] == ["no page files or evidence directories under it"]
    assert "cannot read it" in errors[str(tmp_path / "missing.json")][0]
    assert report.conversations and verifier.model.exit_code(report) == 3
    good = verify_saved_audit(str(bad / "ev-good"))
    assert [c.to_dict() if hasattr(c, "to_dict") else msgspec.to_builtins(c) for c in report.conversations] == \
        [msgspec.to_builtins(c) for c in good.conversations]
    with pytest.raises(UsageError):
        verify_archive(["-"], None, InProcess())


def test_a_url_fsspec_cannot_open_is_one_input_error_and_the_rest_is_verified(data):
    """Round 92: a protocol fsspec does not know (or whose package is missing) ended the run in an
    internal error, and no other SOURCE was verified."""
    root, ev, _files = data
    report = verify_archive(["nope://archive/", str(ev)], None, InProcess(), trust_evidence_keys=True)
    errors = {i.source: i.errors for i in report.inputs if i.errors}
    assert errors.pop("nope://archive/") == ["cannot read it: ValueError: Protocol not known: nope"]
    assert _json(report.conversations) == _json(verify_saved_audit(str(ev), trust_evidence_keys=True).conversations)


def test_plan_keeps_saved_conversations_whole_and_splits_only_large_ones(data):
    _root, ev, _files = data
    groups = discover([str(ev)])
    size = sum(u.size for u in groups[0].units)
    tasks = plan(groups, size // 3)  # a few tasks, each several saved conversations
    conversations_of = [{u.conversation for u in t.units if isinstance(u, SavedPage)} for t in tasks]
    owners: dict[int, int] = {}
    for held in conversations_of:
        for conv in held:
            owners[conv] = owners.get(conv, 0) + 1
    assert len(tasks) > 1 and all(count == 1 for count in owners.values())
    split = plan(groups, 1)  # a conversation larger than a task is split into several
    assert max(sum(1 for t in split if any(getattr(u, "conversation", -1) == 0 for u in t.units)), 0) > 1
    assert plan([discover([str(ev)])[0]], 10**9)[0].units == tuple(groups[0].units)
    assert all(isinstance(u, PageFile) for t in plan(discover([str(ev.parent / "pages")]), 1) for u in t.units)


def test_importing_verifier_and_verify_never_load_dask():
    code = ("import sys, verifier, verifier.cli; verifier.cli.build_parser(); "
            "print([m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'fsspec')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------------------------- on Dask
def test_on_a_local_cluster_killed_workers_change_nothing(data):
    """Real worker processes; one is killed (SIGKILL) in each phase of a run: Dask recomputes what
    it held and the report is still verify's, byte for byte."""
    distributed = pytest.importorskip("distributed")
    _root, ev, _files = data
    expected = _json(verify_saved_audit(str(ev)))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0", silence_logs=50) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        killed: list[int] = []

        def kill(progress) -> None:  # once a task of phase 1 is done, and once the first of phase 2 is
            if progress.tasks_done in (1, progress.tasks // 2 + 1) and len(killed) < 2:
                pids = client.run(os.getpid)
                victim = sorted(pids.values())[len(killed) % len(pids)]
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)

        report = verify_archive([str(ev)], None, client, task_bytes=1_500, on_progress=kill)
        assert len(killed) == 2
        assert _json(report) == expected


def test_the_local_cluster_listens_on_this_host_only():
    """Round 92: the scheduler of ``--workers N``'s own cluster served its HTTP pages (workers,
    tasks, logs) on 0.0.0.0; docs/cli.md: "a local cluster of N worker processes on 127.0.0.1"."""
    pytest.importorskip("distributed")
    from verifier.archive.cluster import open_client
    with open_client(None, 1) as client:
        scheduler = client.cluster.scheduler
        hosts = {sock.getsockname()[0] for sock in scheduler.http_server._sockets.values()}
        hosts |= {address.split("://")[1].rsplit(":", 1)[0] for address in [scheduler.address, *client.nthreads()]}

        def worker_hosts(dask_worker) -> set[str]:
            server = getattr(dask_worker, "http_server", None)
            return {sock.getsockname()[0] for sock in (server._sockets.values() if server is not None else ())}

        for found in client.run(worker_hosts).values():
            hosts |= found
        assert hosts == {"127.0.0.1"}


def test_a_task_the_cluster_cancelled_is_a_cluster_error():
    """Round 92: the scheduler lost mid-run (``--scheduler``) cancels every future; the run ended as an
    internal error after Dask's traceback. It is a ``ClusterError`` (one line, exit 3), as lost workers are."""
    distributed = pytest.importorskip("distributed")
    from verifier.archive.cluster import _Completed
    from verifier.errors import ClusterError

    class Cancelled:
        def result(self):
            raise distributed.client.FutureCancelledError("check_task-1", "scheduler-connection-lost")

    completed = _Completed.__new__(_Completed)
    completed.distributed, completed.futures = distributed, [Cancelled()]
    with pytest.raises(ClusterError, match="cancelled a task .*scheduler-connection-lost"):
        list(completed)


def test_cli_archive_verify_matches_verify(data, tmp_path):
    root, ev, files = data
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "verifier", *a], capture_output=True, text=True,  # noqa: E731
                                    cwd=REPO, env=env, timeout=120)
    tree = str(root / "tree" / "pages")
    keys = ["--keys", str(root / "keyring.json"), "--format", "json"]
    archive = run("archive", "verify", tree, "--workers", "2", *keys, "--ledger", tmp_path / "a.db")
    plain = run("verify", *files, *keys, "--ledger", tmp_path / "v.db")
    assert archive.returncode == plain.returncode == 3
    assert archive.stdout == plain.stdout
    assert archive.stderr == plain.stderr  # the same one line per unreadable input, nothing else
    assert "Traceback" not in archive.stderr
    from verifier.ledger import open_ledger
    rows = []
    for name in ("a.db", "v.db"):
        ledger = open_ledger(str(tmp_path / name), create=False)
        rows.append([(a.verdict, a.report_digest, a.events, a.findings, a.fetched) for a in ledger.audits()])
        ledger.close()
    assert rows[0] == rows[1] and len(rows[0]) == 1
    assert rows[0][0][-1] is None  # nothing says when page files were fetched
    usage = run("archive", "verify", tree, "--workers", "2", "--scheduler", "tcp://127.0.0.1:1")
    assert usage.returncode == 2 and "not allowed with" in usage.stderr
    usage = run("archive", "verify", tree, "--scheduler", "no-port-here")
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1 and "--scheduler no-port-here" in usage.stderr


# ------------------------------------------------------------------------------------- --ledger
def test_ledger_judges_and_records_each_group_as_verify_does(tmp_path, monkeypatch):
    """Two saved audits of the same conversations, the second with a history cut short: the archive
    records one ledger audit per evidence directory, in order, exactly as two verify --ledger runs."""
    from dataclasses import replace

    from helpers import run_cli

    import verifier.ledger.record
    import verifier.ledger_cli
    from verifier.ledger import open_ledger
    from verifier.model import Report
    for module in (verifier.ledger.record, verifier.ledger_cli):  # findings name earlier audits by time
        monkeypatch.setattr(module, "utc_now_iso", lambda: "2026-12-02T00:00:00.000Z")
    convs = conversations(3, 24, seed="ledger")
    write_evidence(tmp_path / "saved" / "1-before", convs, page_size=10)
    write_evidence(tmp_path / "saved" / "2-after", [replace(convs[0], events=convs[0].events[:15]), *convs[1:]],
                   page_size=10)
    by_verify = []
    for name in ("1-before", "2-after"):
        proc = run_cli(["verify", tmp_path / "saved" / name, "--ledger", tmp_path / "verify.db", "--format", "json",
                        "--trust-evidence-keys"])
        by_verify.append(msgspec.json.decode(proc.stdout, type=Report))
    assert "head_regressed" in proc.stdout and proc.returncode == 1
    store = open_ledger(str(tmp_path / "archive.db"))
    try:
        ours = verify_archive([str(tmp_path / "saved")], None, InProcess(), ledger=store, task_bytes=4_000,
                              trust_evidence_keys=True)
    finally:
        store.close()
    unvouched = open_ledger(str(tmp_path / "unvouched.db"))
    try:  # review 66: evidence whose saved keys nothing vouches for is nobody's word: not recorded
        failed = verify_archive([str(tmp_path / "saved")], None, InProcess(), ledger=unvouched, task_bytes=4_000)
        assert failed.verdict == "fail" and not list(unvouched.audits())
    finally:
        unvouched.close()
    assert _json(ours) == _json(combine(by_verify, keyring=None, options={}))
    ledgers = [open_ledger(str(tmp_path / name), create=False) for name in ("verify.db", "archive.db")]
    try:
        audits = [[(a.id, a.inputs, a.verdict, a.report_digest, a.events, a.findings, a.fetched)
                   for a in led.audits()] for led in ledgers]
        assert audits[0] == audits[1] and len(audits[0]) == 2
        # when the evidence was fetched, not when it was verified (round 93: ledger compare's head rule)
        from verifier.testing.archive import _FETCHED_AT
        assert [(a.time, a.fetched) for a in ledgers[1].audits()] == [("2026-12-02T00:00:00.000Z", _FETCHED_AT)] * 2
        chains = [[(c.audit, c.conversation, c.fetched) for c in led.chains()] for led in ledgers]
        assert chains[0] == chains[1] and {c[-1] for c in chains[1]} == {_FETCHED_AT} and len(chains[1]) == 6
        cid = ours.conversations[0].conversation_id
        assert [msgspec.to_builtins(e) for e in ledgers[0].events(cid)] == \
            [msgspec.to_builtins(e) for e in ledgers[1].events(cid)]
    finally:
        for led in ledgers:
            led.close()


def test_names_that_are_not_utf8_are_escaped_in_the_report_and_the_ledger(data, tmp_path):
    """Review: archive verify of a file or directory whose name is not UTF-8 ended as an internal
    error (UnicodeEncodeError) in json, ndjson, sarif and --ledger runs. Its name is shown as verify
    shows it, ``\\udcff`` for the byte 0xff, in a failed group too."""
    from verifier.ledger import open_ledger
    root, ev, _files = data
    shutil.copytree(ev, tmp_path / "ev\udcff")
    shutil.copytree(root / "tree" / "pages", tmp_path / "pages\udcff")
    (tmp_path / "empty\udcff").mkdir()
    store = open_ledger(str(tmp_path / "l.db"))
    try:
        report = verify_archive([str(tmp_path / n) for n in ("ev\udcff", "pages\udcff", "empty\udcff")], _ring(root),
                                InProcess(), ledger=store, task_bytes=9_000)
        inputs = [a.inputs for a in store.audits()]
    finally:
        store.close()
    tops = {i.source[len(str(tmp_path)) + 1:].split("/")[0] for i in report.inputs if i.source.startswith(str(tmp_path))}
    assert tops == {"ev\\udcff", "pages\\udcff", "empty\\udcff"}, tops
    for fmt in ("json", "ndjson", "sarif"):
        assert "\\\\udcff" in render(report, fmt).encode("utf-8").decode()  # (strict UTF-8)
    assert len(inputs) == 2 and all("\\udcff" in name for names in inputs for name in names)


def test_progress_counts_tasks_and_events_and_shows_on_a_terminal(data):
    import io

    from rich.console import Console

    from verifier.cli import _Display
    _root, ev, _files = data
    seen = []
    report = verify_archive([str(ev)], None, InProcess(), task_bytes=20_000, on_progress=lambda p: seen.append(
        (p.tasks_done, p.tasks, p.events)))
    assert [done for done, _total, _events in seen] == list(range(1, len(seen) + 1))
    assert seen[-1][0] == seen[-1][1] and seen[-1][2] == report.proof.events
    display = _Display(True, Console(file=io.StringIO(), force_terminal=True, width=120))
    with display:
        display.progress(verifier.archive.Progress(tasks_done=3, tasks=8, events=12_345, seconds=2.0))
        assert str(display.status.status) == "tasks 3/8 · events 12,345 · 6,172 events/s"
    quiet = _Display(False)
    with quiet:
        quiet.progress(verifier.archive.Progress())  # not a terminal, or --quiet: nothing shown, nothing fails


def test_saved_conversations_without_pages_are_reported_as_verify_reports_them(tmp_path):
    from dataclasses import replace
    convs = conversations(3, 12, seed="empty")
    write_evidence(tmp_path / "some", [replace(convs[0], events=[]), convs[1]], page_size=5)
    write_evidence(tmp_path / "none", [replace(convs[2], events=[])], page_size=5)
    for name in ("some", "none"):
        ours = verify_archive([str(tmp_path / name)], None, InProcess(), task_bytes=1)
        assert _json(ours) == _json(verify_saved_audit(str(tmp_path / name)))
        assert any(f.code == "no_events" for c in ours.conversations for f in c.findings)


def test_a_key_conflict_between_tasks_is_found_as_in_one_run(tmp_path):
    """Two files, each its own task: one carries Alice's key, the other a different key for Alice's
    (user, version). No task sees both; the shared key identities make both parts decide as one run."""
    from helpers import ALICE, MALLORY, ev, page
    (tmp_path / "a.json").write_text(json.dumps(page(ev(sender=ALICE, seq=1))))
    (tmp_path / "b.json").write_text(json.dumps(page(ev(sender=MALLORY, seq=1, conversation_id="1111:3333"))))
    files = [str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    expected = verifier.verify_pages(load_pages(files, MB), None, allow_embedded_keys=True)
    assert sum(f.code == "key_conflict" for c in expected.conversations for e in c.events for f in e.findings) == 2
    ours = verify_archive([str(tmp_path)], None, InProcess(), task_bytes=1, allow_embedded_keys=True)
    assert _json(ours) == _json(expected)


def test_signatures_checked_with_the_events_own_keys_are_counted_as_verify_counts_them(tmp_path):
    """--keys with --allow-embedded-keys, the keyring lacking one member of each conversation: the
    proof says how many signatures were checked with a key the event carried, and that the signer
    keys are not all authenticated, however the run is cut (round 92: the coordinator's shell
    counted none, and the report said every signer key came from the keyring)."""
    convs = conversations(2, 12, seed="embedded")
    files = [str(p) for p in sorted(write_pages(tmp_path / "pages", convs, page_size=5))]
    ring = verifier.Keyring.from_json(json.dumps({"keys": [c.members[0].keyring_entry() for c in convs]}))
    expected = verifier.verify_pages(load_pages(files, MB), ring, allow_embedded_keys=True)
    assert expected.proof.embedded_keys == 12 and not expected.proof.keys_authenticated
    for cut in (1, 5_000, 10**9):
        ours = verify_archive([str(tmp_path / "pages")], ring, InProcess(), task_bytes=cut, allow_embedded_keys=True)
        assert _json(ours) == _json(expected), cut


def test_too_many_token_strings_make_the_directory_unusable_as_verify_dir_finds_it(tmp_path):
    """A manifest whose token_at names 18 different strings, three per page: ``verify DIR`` refuses
    the directory (an audit has one access token). The archive checks what all its tasks found
    together, and fails that group alone (round 92: each task counted only its own pages' strings,
    so cut in tasks the directory passed; in one task the worker's error ended the whole run)."""
    convs = conversations(2, 12, seed="tokens")
    ev = write_evidence(tmp_path / "ev", convs, page_size=5)
    good = write_evidence(tmp_path / "good", convs, page_size=5)
    manifest = json.loads((ev / "manifest.json").read_text())
    strings = set()
    for conv in manifest["conversations"]:
        for entry in conv["pages"]:
            body = (ev / entry["file"]).read_bytes()
            at, entry["token_at"] = body.index(b'"encoded_event":"') + 17, []
            while len(entry["token_at"]) < 3:
                if body[at:at + 12] not in strings and b'"' not in body[at:at + 12]:
                    entry["token_at"].append([at, 12])
                    strings.add(body[at:at + 12])
                at += 13
    (ev / "manifest.json").write_text(json.dumps(manifest))
    assert len(strings) == 18
    with pytest.raises(verifier.errors.EvidenceError, match="token_at names more than 16"):
        verify_saved_audit(str(ev))
    for cut in (1, 10**9):  # every page its own task (three strings each) ... all in one
        ours = verify_archive([str(ev), str(good)], None, InProcess(), task_bytes=cut, trust_evidence_keys=True)
        errors = {i.source: i.errors for i in ours.inputs if i.errors}
        assert list(errors) == [str(ev)] and "token_at names more than 16" in errors[str(ev)][0], cut
        assert _json(ours.conversations) == _json(verify_saved_audit(str(good), trust_evidence_keys=True).conversations)
        assert verifier.model.exit_code(ours) == 3


def test_a_tree_deeper_than_the_recursion_limit_is_walked_in_name_order(tmp_path):
    """Round 92: the walk recursed, so a tree 1,200 directories deep ended the run in RecursionError
    (no SOURCE verified). Depth first, in name order, as before."""
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "z.json").write_text("{}")
    deep = tmp_path / "d"
    deep.mkdir()
    for _ in range(sys.getrecursionlimit() + 200):  # one level at a time: pathlib's mkdir(parents=True) recurses
        deep = deep / "a"
        deep.mkdir()
    (deep / "p.json").write_text("{}")
    try:
        groups = discover([str(tmp_path)])
        assert [g.kind for g in groups] == ["pages"]
        assert [u.path for u in groups[0].units] == [str(tmp_path / "a.json"), str(deep / "p.json"),
                                                     str(tmp_path / "z.json")]
    finally:  # bottom up, one level at a time (shutil.rmtree, pytest's cleanup, recurses)
        (deep / "p.json").unlink()
        while deep != tmp_path:
            deep.rmdir()
            deep = deep.parent


def test_a_scheduler_without_workers_is_said_to_make_the_run_wait(data):
    """Round 92: ``--scheduler`` naming a real scheduler that has no workers waited forever without a
    word (``--quiet``). It still waits (workers may join later) but says why, at once."""
    pytest.importorskip("distributed")
    _root, _ev, files = data
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", str(port), "--no-dashboard"], env=env, cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = None
    try:
        run = subprocess.Popen([sys.executable, "-m", "verifier", "archive", "verify", "--quiet", "--scheduler",
                                f"tcp://127.0.0.1:{port}", *files[:1]], env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert run.stderr is not None
        ready, _, _ = select.select([run.stderr], [], [], 60)  # (the client retries until the scheduler listens)
        line = run.stderr.readline() if ready else "(nothing said in 60 s)"
        assert "has no workers: the run waits until workers join it" in line, line
        assert run.poll() is None  # still waiting, as a cluster that adds workers later needs
    finally:
        for process in (run, scheduler):
            if process is not None:
                process.kill()
                process.wait(30)


def test_unusable_scheduler_addresses_are_usage_errors_before_any_client(tmp_path):
    """Addresses Dask parses but cannot use made a half-built Client that hung 20 s at exit and
    printed a traceback from its __del__ (exit 3); an empty address started a local cluster."""
    from verifier.archive.cluster import _check_address, open_client
    for address in ("udp://1.2.3.4:5", "ucx://host:1", "inproc://x", "tls://127.0.0.1:8786", "tcp://127.0.0.1:99999",
                    "tcp://127.0.0.1:0", "tcp://", ""):
        with pytest.raises(UsageError, match="--scheduler"):
            _check_address(address)
        with pytest.raises(UsageError), open_client(address):
            pass
    for address in ("tcp://127.0.0.1:8786", "127.0.0.1:8786", "ws://host:80", "tcp://[::1]:8786"):
        _check_address(address)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    page = tmp_path / "p.json"
    page.write_text('{"data": []}')
    usage = subprocess.run([sys.executable, "-m", "verifier", "archive", "verify", str(page), "--scheduler",
                            "udp://1.2.3.4:5"], capture_output=True, text=True, env=env, timeout=60)
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1 and "Traceback" not in usage.stderr


def test_a_fifo_in_evidence_or_in_a_tree_is_an_input_error_not_a_hang(tmp_path):
    """A FIFO where a saved page should be hung verify DIR and archive verify for ever (on a cluster,
    the worker thread stayed blocked and every later task of the cluster queued behind it)."""
    convs = conversations(1, 6)
    ev = write_evidence(tmp_path / "ev", convs, page_size=3)
    manifest = json.loads((ev / "manifest.json").read_text())
    page = ev / manifest["conversations"][0]["pages"][0]["file"]
    page.unlink()
    os.mkfifo(page)
    tree = tmp_path / "tree"
    tree.mkdir()
    os.mkfifo(tree / "p.json")
    done: dict[str, Any] = {}

    def run() -> None:
        done["plain"] = verify_saved_audit(str(ev))
        done["ours"] = verify_archive([str(ev), str(tree)], None, InProcess())
        done["url"] = verify_archive([f"file://{tree}"], None, InProcess())  # review 45: hung as a URL
        done["local"] = verify_archive([f"local://{tree}/p.json"], None, InProcess())  # review 46: and so
    worker = threading.Thread(target=run, daemon=True)  # a regression blocks in open(): fail, not hang
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "reading a FIFO hung"
    plain, ours = done["plain"], done["ours"]
    errors = [e for i in plain.inputs for e in i.errors]
    assert any("not a regular file" in e for e in errors) and plain.verdict == "fail"
    assert verifier.model.exit_code(plain) == 3
    errors = {i.source: i.errors for i in ours.inputs if i.errors}
    assert errors[str(tree / "p.json")] == ["cannot read it: not a regular file"]
    assert any("not a regular file" in e for e in [e for i in ours.inputs for e in i.errors])
    assert verifier.model.exit_code(ours) == 3
    url = done["url"]
    assert {i.source: i.errors for i in url.inputs if i.errors} == {str(tree / "p.json"): ["cannot read it: not a regular file"]}
    assert verifier.model.exit_code(url) == 3
    local = done["local"]
    assert {i.source: i.errors for i in local.inputs if i.errors} == {
        f"local://{tree}/p.json": ["cannot read it: not a regular file"]}


def test_what_page_files_say_of_their_ends_is_judged_as_verify_judges_it(tmp_path):
    """Code review: a page file given twice with ``has_more`` and no token listed its reason twice in
    the archive, once in ``verify``; a last page of key changes in ``meta`` alone, after a missing
    page, must be incomplete in both (review 30)."""
    convs = conversations(1, 25)
    ring = verifier.Keyring.from_json(json.dumps(keyring(convs)))
    pages = sorted(write_pages(tmp_path / "pages", convs, page_size=10))
    newest = json.loads(pages[0].read_text())
    assert "next_token" in newest["meta"]
    has_more = tmp_path / "has_more.json"
    has_more.write_text(json.dumps({**newest, "meta": {"has_more": True}}))
    meta_only = tmp_path / "meta_only.json"  # no data event, a key change in meta, no next_token
    (change,) = [e for p in pages for e in json.loads(p.read_text())["data"]
                 if "ConversationKeyChange" in str(verifier.wire.decode_event_b64(e["encoded_event"])[1].kind)][:1]
    meta_only.write_text(json.dumps({"data": [], "meta": {"conversation_key_events": [change["encoded_event"]]}}))
    for files in ([has_more, has_more], [pages[0], meta_only]):
        names = [str(f) for f in files]
        expected = verifier.verify_pages(load_pages(names, 512 * MB), ring)
        assert expected.verdict == "fail" and not expected.conversations[0].complete
        incomplete = [f.message for f in expected.conversations[0].findings if f.code == "incomplete"]
        assert len(incomplete) == len(set(incomplete)) == 1, incomplete
        ours = verify_archive(names, ring, InProcess())
        assert _json(ours) == _json(expected), names


def test_page_files_without_their_last_page_are_incomplete_as_verify_judges_them(tmp_path):
    """Review: ``archive verify`` of a tree holding only a history's newest page passed, as ``verify``
    did; a conversation none of whose pages is the last one (no next_token) is incomplete in both,
    however the archive is cut (the parts' pages meet on the coordinator)."""
    convs = conversations(3, 25)
    (tmp_path / "keyring.json").write_text(json.dumps(keyring(convs)))
    pages = sorted(write_pages(tmp_path / "pages", convs, page_size=10))
    last = [p for p in pages if "next_token" not in json.loads(p.read_text()).get("meta", {})]
    assert len(last) == 3
    last[1].unlink()  # the second conversation's oldest page
    files = [str(p) for p in sorted((tmp_path / "pages").rglob("*.json"))]
    ring = verifier.Keyring.from_json((tmp_path / "keyring.json").read_text())
    expected = verifier.verify_pages(load_pages(files, 512 * MB), ring)
    (cut_short,) = [c for c in expected.conversations if not c.complete]
    assert len(expected.conversations) == 3 and expected.verdict == "fail"
    assert [f.message for f in cut_short.findings] == [
        "history not fetched to its end: none of its pages is the last one (each has a next_token): the older "
        "events it leads to were not given"]
    for cut in (1, 2_000, 10**9):
        ours = verify_archive([str(tmp_path / "pages")], ring, InProcess(), task_bytes=cut)
        assert _json(ours) == _json(expected), cut


def test_secrets_are_in_neither_the_report_nor_the_ledger(tmp_path):
    """``secrets`` (the CLI passes the access token when an argument holds it): r121 found a source
    path holding the token recorded verbatim in each group's ledger rows."""
    from verifier.ledger import open_ledger
    secret = "SeCrEtToKeN0123456789abcdef"
    pages = tmp_path / f"pages-{secret}"
    convs = conversations(1, 12, seed="secret")
    write_pages(pages, convs, page_size=5)
    ring = verifier.Keyring.from_json(json.dumps(keyring(convs)))
    store = open_ledger(str(tmp_path / "l.db"))
    try:
        report = verify_archive([str(pages)], ring, InProcess(), ledger=store, secrets=[secret])
        rows = [(a.inputs, a.report_digest) for a in store.audits()]
    finally:
        store.close()
    assert report.verdict == "pass" and rows
    assert secret.encode() not in _json(report) and b"redacted" in _json(report)
    assert secret not in repr(rows) and "redacted" in repr(rows)
    assert secret.encode() not in (tmp_path / "l.db").read_bytes()
    with pytest.raises(UsageError, match="sequence of texts"):
        verify_archive([str(pages)], ring, InProcess(), secrets=secret)  # type: ignore[arg-type]
