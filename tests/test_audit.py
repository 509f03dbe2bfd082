"""`xchat-verify audit` and the library audit end to end against the local X API server."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, run_cli, saved_as_audit

import verifier
from verifier.audit import AuditOptions, audit_conversation, audit_conversation_async, verify_saved_audit
from verifier.errors import EvidenceError
from verifier.evidence import EvidenceStore
from verifier.fetch import XChatClient
from verifier.settings import RetryPolicy
from verifier.testing.forge import Identity, build_conversation
from verifier.testing.server import FakeXApi, default_conversations

CONVS = default_conversations(80)
IDS = [c.conversation_id for c in CONVS]


@pytest.fixture()
def api():
    with FakeXApi(CONVS) as server:
        yield server


def cli(api, *args, token=True, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "X_BEARER_TOKEN"}
    if token:
        env["X_BEARER_TOKEN"] = api.state.token
    env.update(env_extra or {})
    proc = run_cli(args, env)  # in process: the same entry point, without a new interpreter per call
    assert "Traceback" not in proc.stderr + proc.stdout
    assert api.state.token not in proc.stderr + proc.stdout
    return proc


def audit_args(api, *extra):
    return ["audit", *IDS, "--base-url", api.url, "--max-results", "30", "--backoff-base", "0.01",
            "--timeout", "2", *extra]


def strip_sources(report: dict) -> dict:
    report = json.loads(json.dumps(report))
    for inp in report["inputs"]:
        inp.pop("source")
    return report


def no_writes(api):
    assert all(method == "GET" for method, _ in api.requests)
    assert not any(seg in path for _, path in api.requests for seg in ("/read", "/typing", "/messages", "/keys?"))


def test_audit_passes_and_saved_evidence_reproduces_the_report(api, tmp_path):
    ev = tmp_path / "ev"
    proc = cli(api, *audit_args(api, "--save", ev, "--format", "json"))
    assert proc.returncode == 0, proc.stderr
    online = json.loads(proc.stdout)
    assert online["verdict"] == "pass" and online["key_source"] == "keyring"
    assert {c["conversation_id"] for c in online["conversations"]} == set(IDS)
    offline = cli(api, "verify", ev, "--trust-evidence-keys", "--format", "json", token=False)
    assert offline.returncode == 0 and saved_as_audit(json.loads(offline.stdout)) == online
    # an out-of-band keyring replaces the saved keys: here one that lacks everyone -> unknown_key
    other = tmp_path / "other-ring.json"
    other.write_text(json.dumps({"keys": [Identity.from_seed("999", "1").keyring_entry()]}))
    replaced = cli(api, "verify", ev, "--keys", other, "--format", "json", token=False)
    assert replaced.returncode == 1 and "unknown_key" in replaced.stdout
    manifest = json.loads((ev / "manifest.json").read_text())
    assert all(c["complete"] for c in manifest["conversations"])
    page = manifest["conversations"][0]["pages"][0]
    import hashlib
    assert hashlib.sha256((ev / page["file"]).read_bytes()).hexdigest() == page["sha256"]
    for path in ev.rglob("*"):
        if path.is_file():
            assert api.state.token.encode() not in path.read_bytes()
    no_writes(api)


@pytest.mark.slow
def test_faults_do_not_change_the_verdict(api, tmp_path):
    clean = cli(api, *audit_args(api, "--format", "json"))
    for kind, kw in (("status", {"status": 503}), ("truncate", {}), ("invalid_json", {}), ("close", {}),
                     ("delay", {"delay": 2.5}), ("status", {"status": 502})):
        api.inject(kind, "/events", times=1, **kw)
    api.inject("status", "/public_keys", times=2, status=500)
    faulty = cli(api, *audit_args(api, "--format", "json"))
    assert faulty.returncode == clean.returncode == 0
    assert strip_sources(json.loads(faulty.stdout))["conversations"] == \
        strip_sources(json.loads(clean.stdout))["conversations"]


def test_rate_limited_audit_waits_and_completes(api):
    """Every fetch thread waits for the announced window (a fake clock shared with the server makes
    the 60 s windows free in wall time) and the audit still completes with a PASS."""
    import time as _time

    from verifier.audit import audit_conversation
    from verifier.clock import FakeClock
    from verifier.settings import AuditOptions
    clock = FakeClock(start=_time.time())
    api.state.clock = clock
    api.state.rate_limit, api.state.window_s = 4, 60.0
    with XChatClient(api.state.token, api.url, policy=RetryPolicy(backoff_base=0.01), clock=clock) as c:
        report = audit_conversation(IDS, c, AuditOptions(max_results=30))
    assert report.verdict == "pass" and sum(clock.waited) >= 60
    no_writes(api)


def test_legacy_and_2167_deployments(api):
    api.state.legacy = True
    assert cli(api, *audit_args(api)).returncode == 0
    api.state.legacy, api.state.shape = False, "2.167"
    proc = cli(api, *audit_args(api, "--format", "json"))
    assert proc.returncode == 0 and json.loads(proc.stdout)["verdict"] == "pass"


def test_the_verdict_line_says_the_keys_came_from_the_key_directory(api):
    """r109: audit, which has no --keys, said "signer keys from the keyring" of the keys it fetched
    from the key directory; key_source in the JSON stays "keyring" (formats.md)."""
    proc = cli(api, *audit_args(api))
    assert proc.returncode == 0
    assert proc.stdout.strip().splitlines()[-1].endswith("signer keys from the fetched key directory")
    assert "keyring" not in proc.stdout.strip().splitlines()[-1]
    from verifier.inputs import load_keyring, load_pages  # a --keys keyring is still "the keyring"
    examples = REPO / "examples"
    report = verifier.verify_pages(load_pages(sorted(map(str, (examples / "conversation").glob("*.json"))), 1 << 24),
                                   load_keyring(str(examples / "keyring.json"), 1 << 24))
    assert verifier.report.render(report, "text").splitlines()[-1].endswith("signer keys from the keyring")


def test_missing_or_wrong_token(api, tmp_path):
    proc = cli(api, *audit_args(api), token=False)
    assert proc.returncode == 2 and "X_BEARER_TOKEN" in proc.stderr
    proc = cli(api, *audit_args(api, "--format", "json"), token=False, env_extra={"X_BEARER_TOKEN": "nope-nope"})
    assert proc.returncode == 3 and "HTTP 401" in proc.stderr and "Unauthorized" in proc.stderr
    assert "check the token in X_BEARER_TOKEN or --token-file" in proc.stderr  # review 61: what to do
    assert "nope-nope" not in proc.stderr + proc.stdout
    token_file = tmp_path / "token"
    token_file.write_text(api.state.token + "\n")
    assert cli(api, *audit_args(api, "--token-file", token_file), token=False).returncode == 0


@pytest.mark.parametrize("content, words", [
    (b"", "is empty: it must hold the access token"),
    (b" \n", "is empty: it must hold the access token"),
    (b"\x89PNG\r\n\x1a\n\xb0\xff", "is not UTF-8 text"),
    (b"x" * (64 * 1024 + 1), "larger than 64 KiB"),
])
def test_an_unusable_token_file_is_named(api, tmp_path, content, words):
    """Round 80: an empty --token-file said "no access token: set X_BEARER_TOKEN or pass --token-file"
    (it was passed), a binary one was an internal error (UnicodeDecodeError)."""
    token_file = tmp_path / "token"
    token_file.write_bytes(content)
    proc = cli(api, *audit_args(api, "--token-file", token_file), token=False)
    assert proc.returncode == 2 and words in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and api.requests == []


def test_bad_id_is_a_usage_error(api):
    assert cli(api, "audit", "not-an-id", "--base-url", api.url).returncode == 2
    assert api.requests == []


@pytest.mark.parametrize("extra, words", [(["--receipt", "r.json"], "--receipt needs --receipt-key"),
                                          (["--force"], "--force needs --save DIR")])
def test_an_option_that_would_do_nothing_is_a_usage_error(api, tmp_path, monkeypatch, extra, words):
    """Review: --receipt without --receipt-key wrote no receipt and --force without --save replaced
    nothing, both silently with exit 0; each is one line, exit 2, before any request."""
    monkeypatch.chdir(tmp_path)
    proc = cli(api, *audit_args(api, *extra))
    assert proc.returncode == 2 and words in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert api.requests == [] and not (tmp_path / "r.json").exists()


def test_interrupted_run_saves_everything_and_resume_completes(api, tmp_path):
    ev = tmp_path / "ev"
    # the second events page of every conversation fails for good (403) on the first run
    api.inject("status", "pagination_token", times=100, status=403)
    first = cli(api, *audit_args(api, "--save", ev, "--format", "json"))
    assert first.returncode == 3 and "HTTP 403" in first.stderr
    partial = json.loads(first.stdout)
    assert partial["verdict"] == "fail" and partial["conversations"]
    manifest = json.loads((ev / "manifest.json").read_text())
    direct, group = manifest["conversations"]  # the group fits in one page and completes
    assert not direct["complete"] and len(direct["pages"]) == 1 and direct["next_token"] and direct["error"]
    assert group["complete"]
    offline = cli(api, "verify", ev, "--trust-evidence-keys", "--format", "json", token=False)
    assert offline.returncode == 3 and saved_as_audit(json.loads(offline.stdout)) == partial
    api.state.faults.clear()
    resumed = cli(api, *audit_args(api, "--save", ev, "--resume", "--format", "json"))
    assert resumed.returncode == 0, resumed.stderr
    full = cli(api, *audit_args(api, "--format", "json"))
    assert strip_sources(json.loads(resumed.stdout))["conversations"] == \
        strip_sources(json.loads(full.stdout))["conversations"]
    again = cli(api, "verify", ev, "--trust-evidence-keys", "--format", "json", token=False)
    assert saved_as_audit(json.loads(again.stdout)) == json.loads(resumed.stdout)


def test_resuming_some_conversations_keeps_the_keys_of_the_others(api, tmp_path):
    """Review: a resume naming only the 1:1 conversation replaced the directory's keys with its two
    users', so `verify DIR` failed the saved group (unknown_key: a member's keys/<id>.json on disk
    but no longer in the manifest). The key phase of a resume covers every saved conversation."""
    ev = tmp_path / "ev"
    first = cli(api, *audit_args(api, "--save", ev, "--format", "json"))
    assert first.returncode == 0, first.stderr
    keys_before = {k["user_id"] for k in json.loads((ev / "manifest.json").read_text())["keys"]}
    direct = CONVS[0].conversation_id
    resumed = cli(api, "audit", direct, "--base-url", api.url, "--save", ev, "--resume", "--format", "json")
    assert resumed.returncode == 0, resumed.stderr
    assert [c["conversation_id"] for c in json.loads(resumed.stdout)["conversations"]] == [direct]
    manifest = json.loads((ev / "manifest.json").read_text())
    assert {k["user_id"] for k in manifest["keys"]} == keys_before and len(keys_before) == 3
    assert set(json.loads((ev / "keyring.json").read_text())) == keys_before
    offline = cli(api, "verify", ev, "--trust-evidence-keys", "--format", "json", token=False)
    assert offline.returncode == 0, offline.stdout
    assert strip_sources(saved_as_audit(json.loads(offline.stdout))) == strip_sources(json.loads(first.stdout))


def test_max_pages_limits_and_reports_the_window(api):
    proc = cli(api, *audit_args(api, "--max-pages", "1", "--format", "json"))
    report = json.loads(proc.stdout)
    assert proc.returncode == 1  # the window is verified, but the history is incomplete: never a PASS
    assert all(len(c["events"]) <= 31 for c in report["conversations"])
    direct = report["conversations"][0]
    assert not direct["complete"] and any("--max-pages" in f["message"] for f in direct["findings"])
    allowed = cli(api, *audit_args(api, "--max-pages", "1", "--allow-partial", "--format", "json"))
    assert allowed.returncode == 0 and json.loads(allowed.stdout)["proof"]["complete"] is False


def test_tampered_evidence_is_detected(api, tmp_path):
    ev = tmp_path / "ev"
    assert cli(api, *audit_args(api, "--save", ev)).returncode == 0
    page = next((ev / "conversations").rglob("page-00001.json"))
    page.write_bytes(page.read_bytes().replace(b'"is_trusted": true', b'"is_trusted": false', 1))
    proc = cli(api, "verify", ev, token=False)
    assert proc.returncode == 3 and "altered evidence" in proc.stderr
    assert "bytes, the manifest recorded" in proc.stderr  # a page of another size is refused unread


def test_evidence_of_the_recorded_size_is_checked_by_its_hash(api, tmp_path):
    ev = tmp_path / "ev"
    assert cli(api, *audit_args(api, "--save", ev)).returncode == 0
    page = next((ev / "conversations").rglob("page-00001.json"))
    page.write_bytes(page.read_bytes().replace(b'"is_trusted": true', b'"is_trusted": tru ', 1))  # same size
    proc = cli(api, "verify", ev, token=False)
    assert proc.returncode == 3 and "does not match the SHA-256 in the manifest (altered evidence)" in proc.stderr


def test_a_padded_evidence_page_is_refused_without_reading_it(api, tmp_path, monkeypatch):
    from verifier import evidence
    ev = tmp_path / "ev"
    assert cli(api, *audit_args(api, "--save", ev)).returncode == 0
    page = next((ev / "conversations").rglob("page-00001.json"))
    monkeypatch.setattr(evidence, "MAX_SAVED_FILE_BYTES", page.stat().st_size + 10)
    with page.open("ab") as out:
        out.write(b" " * 100)
    proc = cli(api, "verify", ev, token=False)
    assert proc.returncode == 3 and "more than the" in proc.stderr and page.name in proc.stderr


def test_keys_fetch_writes_a_usable_keyring(api, tmp_path):
    users = [m.user_id for m in CONVS[1].members]
    out = tmp_path / "ring.json"
    proc = cli(api, "keys", "fetch", *users, "--base-url", api.url, "-o", out)
    assert proc.returncode == 0
    ring = json.loads(out.read_text())
    assert {k["user_id"] for k in ring["keys"]} == set(users)
    pages = tmp_path / "pages.jsonl"
    pages.write_text("\n".join(json.dumps(p) for p in CONVS[1].pages(20)))
    assert cli(api, "verify", pages, "--keys", out, token=False).returncode == 0


def test_departed_member_without_keys_is_unknown_key(tmp_path):
    alice = Identity.from_seed("11", "1", "x")
    ghost = Identity.from_seed("22", "1", "y")
    conv = build_conversation(6, members=[alice, ghost], seed="departed")
    with FakeXApi([conv]) as server:
        server.state.users.pop("22")
        with XChatClient(server.state.token, server.url, policy=RetryPolicy(backoff_base=0.01)) as c:
            report = audit_conversation(conv.conversation_id, c)
    statuses = {e.sender_id: e.signature.status for e in report.conversations[0].events}
    assert statuses["22"] == "unknown_key" and statuses["11"] in ("valid", "needs_conversation_key")


def test_library_sync_and_async_forms(api):
    with XChatClient(api.state.token, api.url, policy=RetryPolicy(backoff_base=0.01)) as c:
        sync = audit_conversation(IDS[0], c, AuditOptions(max_results=50))
        asynchronous = asyncio.run(audit_conversation_async(IDS[0], c, AuditOptions(max_results=50)))
    assert sync.verdict == asynchronous.verdict == "pass"
    assert sync.to_dict()["conversations"] == asynchronous.to_dict()["conversations"]
    assert isinstance(verifier.XChatClient, type)


def test_forged_event_on_the_server_fails_the_audit(tmp_path):
    alice = Identity.from_seed("11", "1", "x")
    bob = Identity.from_seed("22", "1", "y")
    conv = build_conversation(8, members=[alice, bob], seed="forged")
    mallory = Identity.from_seed("22", "1", "mallory")
    from verifier.testing.forge import forge_event
    victim = conv.events[5].event
    conv.events[5] = forge_event(mallory, victim.kind, victim.body, conversation_id=victim.conversation_id,
                                 sequence_id=victim.sequence_id, previous_sequence_id=victim.previous_sequence_id,
                                 created_at_msec=victim.created_at_msec, message_id=victim.message_id)
    with FakeXApi([conv]) as server:
        with XChatClient(server.state.token, server.url, policy=RetryPolicy(backoff_base=0.01)) as c:
            report = audit_conversation(conv.conversation_id, c)
    assert report.verdict == "fail"
    bad = [e for e in report.conversations[0].events if e.signature.status == "invalid"]
    assert len(bad) == 1 and any(f.code == "key_conflict" for f in bad[0].findings)


def test_verify_saved_audit_library(api, tmp_path):
    with XChatClient(api.state.token, api.url, policy=RetryPolicy(backoff_base=0.01)) as c:
        online = audit_conversation(IDS, c, AuditOptions(save_dir=str(tmp_path / "ev")))
    saved = verify_saved_audit(str(tmp_path / "ev"), trust_evidence_keys=True)
    assert saved_as_audit(saved.to_dict()) == online.to_dict()
    assert Path(tmp_path / "ev" / "keyring.json").is_file()


@pytest.mark.slow
def test_ctrl_c_leaves_consistent_evidence_and_resume_completes(api, tmp_path):
    import hashlib
    import signal
    import time as _time
    ev = tmp_path / "ev"
    api.state.rate_limit, api.state.window_s = 2, 1.0  # slow enough to interrupt mid-way
    env = {**os.environ, "X_BEARER_TOKEN": api.state.token}
    # Ctrl-C as a terminal gives it: a run started in the background of a non-interactive shell (CI
    # launched with `&`) inherits SIGINT ignored, and Python then leaves it ignored (three CI failures)
    as_in_a_terminal = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                        "sys.argv[0] = 'xchat-verify'; runpy.run_module('verifier', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", as_in_a_terminal, *map(str, audit_args(api, "--save", ev,
                             "--max-results", "10", "--format", "json"))], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    manifest = ev / "manifest.json"

    def saved_pages() -> int:  # the snapshot plus the journal, as any reader sees the directory
        try:
            return sum(len(c.pages) for c in EvidenceStore.open(ev).manifest.conversations)
        except EvidenceError:
            return 0
    def pages_served() -> int:  # the server's own count: no race with the files being written
        return sum(1 for _method, path in list(api.state.requests) if path.startswith("/2/chat/conversations/"))

    # interrupted once a page is saved or two are served: under load, CI twice found the run already
    # done (exit 0) while this loop waited to see pages in the directory
    for _ in range(600):
        if saved_pages() >= 1 or pages_served() >= 2 or proc.poll() is not None:
            break
        _time.sleep(0.05)
    try:  # what the run had when interrupted, for the message below (CI saw exit 0 three times)
        status = {line.split(":")[0]: line.split()[1] for line in Path(f"/proc/{proc.pid}/status").read_text()
                  .splitlines() if line.startswith(("SigBlk", "SigIgn", "SigPnd", "ShdPnd", "State"))}
    except OSError:
        status = {"State": "gone"}
    seen = (saved_pages(), pages_served(), status)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3 and "interrupted" in err and "Traceback" not in err, (proc.returncode, seen, err[-500:])
    saved = json.loads(manifest.read_text())  # the run folded its journal into the snapshot on the way out
    assert not (ev / "manifest.journal").exists()
    assert not all(c["complete"] for c in saved["conversations"])
    for conv in saved["conversations"]:
        for page in conv["pages"]:
            assert hashlib.sha256((ev / page["file"]).read_bytes()).hexdigest() == page["sha256"]
    assert not list(ev.rglob(".*.tmp*"))
    api.state.rate_limit = None
    resumed = cli(api, *audit_args(api, "--save", ev, "--resume", "--max-results", "10", "--format", "json"))
    assert resumed.returncode == 0, resumed.stderr
    full = cli(api, *audit_args(api, "--max-results", "10", "--format", "json"))
    assert strip_sources(json.loads(resumed.stdout))["conversations"] == \
        strip_sources(json.loads(full.stdout))["conversations"]


def test_progress_display_on_a_terminal():
    import io

    from rich.console import Console

    from verifier.audit import AuditProgress
    from verifier.cli import _Display
    from verifier.clock import FakeClock
    buffer = io.StringIO()
    shown_at_each_tick: list[str] = []

    class Ticks(FakeClock):  # what the status line says each time the countdown waits a second
        def wait(self, seconds, cancelled):
            shown_at_each_tick.append(shown())
            return super().wait(seconds, cancelled)
    display = _Display(True, Console(file=buffer, force_terminal=True, width=120), clock=Ticks())

    def shown() -> str:
        return str(display.status.status)
    with display:
        display.update(AuditProgress(conversations=2, conversations_done=1, pages=7, events=650))
        assert "keys" not in shown()  # not "keys 0/0" before the users are known
        display.update(AuditProgress(conversations=2, conversations_done=1, pages=7, events=650, users=3, keys_done=1))
        assert "keys 1/3" in shown()
        display.countdown(3, "rate limit").join(10)
    assert shown_at_each_tick == [f"waiting {n}s for the rate limit window to reset" for n in (3, 2, 1)]
    quiet = _Display(False)
    with quiet:
        quiet.update(AuditProgress())  # no terminal: nothing happens, nothing fails
        assert quiet.countdown(3, "rate limit") is None
    assert quiet.status is None


def test_unwritable_evidence_dir_is_a_one_line_error(api, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    before = len(api.state.requests)
    proc = cli(api, *audit_args(api, "--save", blocker / "ev", "--format", "json"))
    # new-user review: found only after the whole fetch; now before any request, one line
    assert proc.returncode == 3 and "cannot create the directory" in proc.stderr and proc.stderr.count("\n") == 1
    assert proc.stdout == "" and len(api.state.requests) == before  # nothing was asked of the server
    proc = cli(api, *audit_args(api, "--save", blocker, "--format", "json"))
    assert proc.returncode == 2 and "not a directory" in proc.stderr


@pytest.mark.parametrize("failure", ["bad id", "no token", "missing receipt key"])
def test_a_run_refused_before_any_request_creates_no_save_directory(api, tmp_path, failure):
    """A bad id was found only after ``--save DIR`` had been made: a run that fails before any
    request leaves no directory behind (and, with --force, deletes no evidence). Only the bad id
    failed before the fix; the other two failures are guards (they were already refused first)."""
    ev = tmp_path / "new" / "ev"
    args = audit_args(api, "--save", ev)
    if failure == "bad id":
        args = ["audit", "not-an-id", *args[len(IDS) + 1:]]
    elif failure == "missing receipt key":
        args += ["--receipt-key", tmp_path / "no-such-key"]
    proc = cli(api, *args, token=failure != "no token")
    assert proc.returncode in (2, 3) and proc.stderr.count("\n") == 1, proc.stderr
    assert api.requests == [] and not (tmp_path / "new").exists()


def test_a_bad_id_with_force_keeps_the_saved_evidence(api, tmp_path):
    ev = _saved(api, tmp_path)
    before = {p: p.read_bytes() for p in ev.rglob("*") if p.is_file()}
    proc = cli(api, "audit", "not-an-id", "--base-url", api.url, "--save", ev, "--force")
    assert proc.returncode == 2 and "not a conversation id" in proc.stderr
    assert {p: p.read_bytes() for p in ev.rglob("*") if p.is_file()} == before


def test_evidence_that_cannot_be_saved_mid_audit_still_reports(api, tmp_path):
    """A page that cannot be saved halfway (here: a directory planted where --resume writes the next
    page) is a one-line error, and the partial report is still printed."""
    ev = tmp_path / "ev"
    first = cli(api, *audit_args(api, "--save", ev, "--max-pages", "1", "--format", "json"))
    assert first.returncode == 1
    direct = IDS[0].replace(":", "-")
    (ev / "conversations" / direct / "page-00002.json").mkdir()
    proc = cli(api, *audit_args(api, "--save", ev, "--resume", "--format", "json"))
    assert proc.returncode == 3 and "cannot save" in proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "fail"  # the partial report is still printed


def test_the_same_conversation_named_twice_is_fetched_once(api):
    """A:B, B:A, A-B and B-A are one conversation: fetched once, reported once, no duplicates."""
    from verifier.audit import audit_conversation
    direct = IDS[0]
    a, b = direct.split(":")
    with XChatClient(api.state.token, api.url, policy=RetryPolicy(backoff_base=0.01)) as c:
        report = audit_conversation([direct, f"{b}:{a}", f"{a}-{b}", f"{b}-{a}"], c)
    assert report.verdict == "pass" and [conv.conversation_id for conv in report.conversations] == [direct]
    assert report.conversations[0].counts["duplicate"] == 0
    metadata_requests = [p for _m, p in api.requests if p.split("?")[0].endswith(("-" + b, "-" + a))]
    assert len(metadata_requests) == 1, metadata_requests


@pytest.mark.parametrize("corrupt", [
    lambda m: m["conversations"][0]["pages"][0].pop("file"),
    lambda m: m["conversations"][0].__setitem__("pages", [5]),
    lambda m: m.__setitem__("conversations", "nope"),
    lambda m: m.__setitem__("schema", "other"),
])
def test_malformed_manifest_is_a_one_line_error(api, tmp_path, corrupt):
    ev = tmp_path / "ev"
    assert cli(api, *audit_args(api, "--save", ev)).returncode == 0
    manifest = json.loads((ev / "manifest.json").read_text())
    corrupt(manifest)
    (ev / "manifest.json").write_text(json.dumps(manifest))
    proc = cli(api, "verify", ev, token=False)
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1 and "internal error" not in proc.stderr


def test_keys_fetch_skips_rows_the_keyring_could_not_load(api, tmp_path):
    class Broken:  # the server serves a row without a signing key for this user
        user_id = "77"

        def keyring_row(self):
            return {"public_key_version": "1"}
    api.state.users["77"] = [Broken(), Identity.from_seed("77", "2", "good")]
    out = tmp_path / "ring.json"
    proc = cli(api, "keys", "fetch", "77", "--base-url", api.url, "-o", out)
    assert proc.returncode == 0 and "skipping a key row of user 77" in proc.stderr
    ring = json.loads(out.read_text())
    assert [k["public_key_version"] for k in ring["keys"]] == ["2"]
    assert verifier.Keyring.from_json(out.read_text()).lookup("77", "2").status == "ok"


# ------------------------------------------------------------------ evidence that cannot be lost (issue 8)
def _saved(api, tmp_path):
    from verifier.audit import audit_conversation
    from verifier.settings import AuditOptions
    ev = tmp_path / "ev"
    with XChatClient(api.state.token, api.url, policy=RetryPolicy(backoff_base=0.01)) as c:
        report = audit_conversation(IDS, c, AuditOptions(max_results=30, save_dir=str(ev)))
    assert report.verdict == "pass"
    return ev


def test_save_into_existing_evidence_is_refused_unless_resume_or_force(api, tmp_path):
    ev = _saved(api, tmp_path)
    before = {p: p.read_bytes() for p in ev.rglob("*") if p.is_file()}
    proc = cli(api, *audit_args(api, "--save", ev))
    assert proc.returncode == 2 and "already holds evidence" in proc.stderr
    assert {p: p.read_bytes() for p in ev.rglob("*") if p.is_file()} == before  # nothing replaced
    stray = ev / "conversations" / "stray" / "page-00001.json"
    stray.parent.mkdir(parents=True)
    stray.write_text("{}")
    forced = cli(api, *audit_args(api, "--save", ev, "--force", "--format", "json"))
    assert forced.returncode == 0 and not stray.exists()  # replaced whole: no orphan of the old run
    assert cli(api, "verify", ev, "--trust-evidence-keys", token=False).returncode == 0


@pytest.mark.parametrize("force", [False, True])
def test_a_directory_of_someone_else_s_files_is_not_replaced(api, tmp_path, force):
    """r126 noticed: ``--save DIR --force`` took any DIR holding a ``keyring.json``, ``keys/`` or
    ``conversations/`` for evidence and deleted them (a user's own keyring, project folders). An
    audit writes its manifest first: without one, they are not evidence, and nothing is replaced."""
    mine = tmp_path / "project"
    (mine / "keys").mkdir(parents=True)
    (mine / "keys" / "notes.txt").write_text("mine")
    (mine / "keyring.json").write_text('{"keys": []}')
    proc = cli(api, *audit_args(api, "--save", mine, *(["--force"] if force else [])))
    assert proc.returncode == 2 and "no manifest.json" in proc.stderr and proc.stderr.count("\n") == 1
    assert (mine / "keys" / "notes.txt").read_text() == "mine" and (mine / "keyring.json").is_file()
    assert sorted(p.name for p in mine.iterdir()) == ["keyring.json", "keys"]


@pytest.mark.parametrize("manifest", ['{"name": "my app", "icons": []}', "not json", "link"])
def test_a_manifest_that_is_not_evidence_s_is_no_sign_of_evidence(api, tmp_path, manifest):
    """r130: after r126 any file named manifest.json (a web app's, a package's, a link) beside
    ``keys/`` or ``conversations/`` let ``--save DIR --force`` delete them and the file itself."""
    mine = tmp_path / "project"
    (mine / "keys").mkdir(parents=True)
    (mine / "keys" / "notes.txt").write_text("mine")
    if manifest == "link":
        (tmp_path / "elsewhere.json").write_text('{"schema": "xchat-verify/evidence/v2"}')
        (mine / "manifest.json").symlink_to(tmp_path / "elsewhere.json")
    else:
        (mine / "manifest.json").write_text(manifest)
    proc = cli(api, *audit_args(api, "--save", mine, "--force"))
    assert proc.returncode == 2 and "no manifest.json of evidence" in proc.stderr and proc.stderr.count("\n") == 1
    assert (mine / "keys" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in mine.iterdir()) == ["keys", "manifest.json"]


@pytest.mark.parametrize("damage", ["alter", "delete"])
def test_one_damaged_page_gives_a_partial_report_and_exit_3(api, tmp_path, damage):
    ev = _saved(api, tmp_path)
    page = sorted((ev / "conversations").rglob("page-*.json"))[1]
    if damage == "alter":
        page.write_bytes(page.read_bytes().replace(b'"is_trusted": true', b'"is_trusted": false', 1))
    else:
        page.unlink()
    proc = cli(api, "verify", ev, "--format", "json", token=False)
    report = json.loads(proc.stdout)
    assert proc.returncode == 3 and page.name in proc.stderr
    assert ("altered evidence" if damage == "alter" else "cannot read") in proc.stderr
    assert report["verdict"] == "fail"
    statuses = [e["signature"]["status"] for c in report["conversations"] for e in c["events"]]
    assert statuses.count("valid") > 60  # everything intact is still verified (30 events a page are not)
    errors = [e for i in report["inputs"] for e in i["errors"]]
    assert len(errors) == 1 and "its events were not verified" in errors[0]


def test_evidence_of_an_audit_stopped_before_its_keys_says_so(api, tmp_path):
    ev = _saved(api, tmp_path)
    (ev / "keyring.json").unlink()  # as left by an audit interrupted before the key phase ended
    proc = cli(api, "verify", ev, "--format", "json", token=False)
    assert proc.returncode == 3 and "keys not fetched" in proc.stderr and "pass --keys" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_a_resume_killed_in_its_key_phase_reads_as_keys_not_fetched(api, tmp_path):
    """Round 87: a --resume killed by SIGKILL once its key phase had begun (the journal holds its
    keys_reset) left the earlier run's keyring.json, the mark of a key phase that ended: `verify DIR`
    then failed every signature as unknown_key (exit 1) instead of saying the keys were not fetched
    (exit 3), as it does for a first run stopped at the same point."""
    import signal
    import time as _time
    ev = _saved(api, tmp_path)
    api.state.rate_limit, api.state.window_s = 1, 2.0  # the key requests wait: time to kill the run among them
    env = {**os.environ, "X_BEARER_TOKEN": api.state.token}
    proc = subprocess.Popen([sys.executable, "-m", "verifier", *map(str, audit_args(api, "--save", ev, "--resume"))],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = ev / "manifest.journal"
    deadline = _time.monotonic() + 120
    while proc.poll() is None and _time.monotonic() < deadline:
        if journal.exists() and b'"op":"keys_reset"' in journal.read_bytes():
            proc.send_signal(signal.SIGKILL)
            break
        _time.sleep(0.002)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the resume ended before its key phase could be interrupted"
    proc2 = cli(api, "verify", ev, "--trust-evidence-keys", "--format", "json", token=False)
    assert proc2.returncode == 3 and "keys not fetched" in proc2.stderr, proc2.stderr
    api.state.rate_limit = None
    resumed = cli(api, *audit_args(api, "--save", ev, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert cli(api, "verify", ev, "--trust-evidence-keys", token=False).returncode == 0


_KILLED_BEFORE_KEYS = """
import os, sys
from verifier import audit
audit.Auditor._fetch_keys = lambda *a, **k: os._exit(137)  # SIGKILL-like, as the key phase begins
from verifier.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_resume_killed_after_its_pages_before_its_key_phase_reads_as_keys_not_fetched(tmp_path):
    """Round 95: a --resume killed after it saved older pages, before its key phase, left the earlier
    run's keyring.json beside them (round 87 removed it only once the key phase began): `verify DIR`
    read it as all the keys there were, and the older pages' signer the earlier run never saw (a
    member who left, not in the metadata) was unknown_key, exit 1, not "keys not fetched", exit 3."""
    import hashlib

    from verifier.testing.forge import Conversation, forge_event, snowflake
    a = Identity.from_seed("1215441834412953600", "1765382634817", "ra")
    b = Identity.from_seed("1843439638876491776", "1736723828667", "rb")
    d = Identity.from_seed("1999999999999999999", "1736723828668", "rd")  # signs the oldest messages only
    ckey = hashlib.sha256(b"ckey:r").digest()
    events, prev = [], None
    for i in range(12):
        ms = 1_784_841_000_000 + i * 1000
        seq = snowflake(ms, i)
        sender = [a, d, d][i] if i < 3 else [a, b][i % 2]
        if i == 0:
            kind, body = "ConversationKeyChangeEvent", {"conversation_key_version": "1", "conversation_participant_keys": [
                {"user_id": m.user_id, "encrypted_conversation_key": "AAAA", "public_key_version": m.version}
                for m in (a, b, d)]}
        else:
            kind, body = "MessageCreateEvent", {"contents": bytes(72), "conversation_key_version": "1",
                                                "should_notify": True}
        events.append(forge_event(sender, kind, body, conversation_id="g2010754001234567891", sequence_id=seq,
                                  previous_sequence_id=prev, created_at_msec=str(ms), signature_version="7",
                                  conversation_keys={"1": ckey}))
        prev = seq
    group = Conversation("g2010754001234567891", [a, b], events, {"1": ckey})  # d left: not in the metadata
    other = Conversation("g2010754001234567892", [a, d], events[:1], {"1": ckey})  # the server has d's keys
    ev = tmp_path / "evidence"
    with FakeXApi([group, other], token="tok") as api:
        env = {**os.environ, "X_BEARER_TOKEN": "tok"}
        args = ["audit", "--base-url", api.url, "g2010754001234567891", "--save", str(ev), "-q", "--max-results", "2"]
        subprocess.run([sys.executable, "-m", "verifier", *args, "--max-pages", "1"], cwd=REPO, env=env,
                       capture_output=True, timeout=120)
        assert (ev / "keyring.json").is_file()
        killed = subprocess.run([sys.executable, "-c", _KILLED_BEFORE_KEYS, *args, "--resume"], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=120)
        assert killed.returncode == 137, killed.stderr
        check = run_cli(["verify", str(ev), "--trust-evidence-keys", "--allow-partial"])
        assert check.returncode == 3 and "keys not fetched" in check.stderr, check.stdout + check.stderr
        resumed = subprocess.run([sys.executable, "-m", "verifier", *args, "--resume"], cwd=REPO, env=env,
                                 capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert run_cli(["verify", str(ev), "--trust-evidence-keys"]).returncode == 0


@pytest.mark.parametrize("plant", ["fifo-journal", "journal-to-dev-zero", "fifo-keyring"])
def test_planted_nodes_in_evidence_never_hang_fill_memory_or_take_writes(api, tmp_path, plant):
    """Review: a FIFO as manifest.journal hung `verify DIR`, `archive verify` and `--resume`; a journal
    linked to /dev/zero was read without bound; a FIFO as keyring.json received the keyring on
    --resume, and the evidence then said the keys were never fetched."""
    import subprocess
    import sys

    from helpers import REPO
    ev = tmp_path / "ev"
    assert cli(api, *audit_args(api, "--save", ev, "--max-pages", "1")).returncode == 1  # a partial audit
    target = ev / ("keyring.json" if plant == "fifo-keyring" else "manifest.journal")
    target.unlink(missing_ok=True)
    if plant == "journal-to-dev-zero":
        target.symlink_to("/dev/zero")
    else:
        os.mkfifo(target)
    env = {k: v for k, v in os.environ.items() if k != "X_BEARER_TOKEN"}
    env["X_BEARER_TOKEN"] = api.state.token
    for args in (["verify", str(ev)], ["audit", *IDS, "--base-url", api.url, "--save", str(ev), "--resume"]):
        proc = subprocess.run([sys.executable, "-m", "verifier", *args, "-o", os.devnull], capture_output=True,
                              text=True, cwd=REPO, env=env, timeout=120)  # a regression hangs: the timeout fails it
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
        if plant != "fifo-keyring":
            assert proc.returncode == 3 and "manifest.journal" in proc.stderr, proc.stderr
    if plant == "fifo-keyring":  # resumed: the keyring was written as a regular file, not into the FIFO
        assert target.is_file() and not target.is_symlink() and json.loads(target.read_text())


def test_the_report_may_go_into_a_new_save_directory(api, tmp_path):
    """Review: with output directories checked before the run, ``--save new -o new/report.json``
    was refused though the audit makes that directory first (it worked before)."""
    ev = tmp_path / "new"
    proc = cli(api, *audit_args(api, "--save", ev, "--format", "json", "-o", ev / "report.json"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((ev / "report.json").read_text())["verdict"] == "pass"


@pytest.mark.parametrize("option", ["resume", "force"])
def test_resume_or_force_without_save_dir_is_a_usage_error(api, option):
    """Review 51: ``AuditOptions(resume=True)`` without ``save_dir`` was silently ignored (a fresh,
    unsaved audit), where ``--resume`` without ``--save`` is a usage error."""
    with pytest.raises(verifier.UsageError, match=f"{option}=True needs save_dir"):
        AuditOptions(**{option: True})
    options = AuditOptions()
    setattr(options, option, True)  # changed after construction: refused before any request
    with XChatClient(api.state.token, api.url) as client:
        with pytest.raises(verifier.UsageError, match="needs save_dir"):
            audit_conversation(CONVS[0].conversation_id, client, options)
    assert api.state.connections == 0


def test_a_resume_warns_that_the_receipt_left_in_the_directory_no_longer_matches(api, tmp_path):
    """Review 61: a resumed directory kept the receipt of the run before it, which then failed
    `receipt verify --evidence DIR`, and nothing had said so."""
    ev, key = tmp_path / "ev", tmp_path / "receipt.key"
    assert cli(api, "keys", "new-receipt-key", "-o", key, token=False).returncode == 0
    api.inject("status", "pagination_token", times=100, status=403)
    first = cli(api, *audit_args(api, "--save", ev, "--receipt-key", key))
    assert first.returncode == 3 and (ev / "receipt.json").is_file()
    api.state.faults.clear()
    resumed = cli(api, *audit_args(api, "--save", ev, "--resume"))
    assert resumed.returncode == 0 and "receipt.json signs this evidence as it was before the resume" in resumed.stderr
    signed = cli(api, *audit_args(api, "--save", ev, "--resume", "--receipt-key", key))
    assert signed.returncode == 0 and "no longer matches" not in signed.stderr
    spelt = cli(api, *audit_args(api, "--save", ev, "--resume", "--receipt-key", key,  # review 63: any spelling
                                 "--receipt", f"{ev}/./receipt.json"))
    assert spelt.returncode == 0 and "no longer matches" not in spelt.stderr
    check = cli(api, "receipt", "verify", ev / "receipt.json", "--public-key", f"{key}.pub", "--evidence", ev,
                token=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_journal_line_planted_after_a_receipt_is_a_problem_of_the_receipt(api, tmp_path):
    """Review 65: a receipt hashes manifest.json; every reader replays manifest.journal on top of it,
    so a planted line (same journal id, next seq) swapped a saved key file under a valid receipt."""
    import hashlib

    from verifier.testing.forge import Identity
    ev, key = tmp_path / "ev", tmp_path / "receipt.key"
    assert cli(api, "keys", "new-receipt-key", "-o", key, token=False).returncode == 0
    assert cli(api, *audit_args(api, "--save", ev, "--receipt-key", key)).returncode == 0
    check = ["receipt", "verify", ev / "receipt.json", "--public-key", f"{key}.pub", "--evidence", ev]
    assert cli(api, *check, token=False).returncode == 0
    manifest = json.loads((ev / "manifest.json").read_text())
    user = manifest["keys"][0]["user_id"]
    body = json.loads((ev / manifest["keys"][0]["file"]).read_text())
    body["data"].append(Identity.from_seed(user, "9999999999999", "attacker").keyring_row())
    new = json.dumps(body).encode()
    (ev / manifest["keys"][0]["file"]).write_bytes(new)
    entry = {**manifest["keys"][0], "sha256": hashlib.sha256(new).hexdigest(), "bytes": len(new)}
    line = {"op": "keys", "journal": manifest["journal"], "seq": manifest["journal_seq"] + 1, "entry": entry}
    (ev / "manifest.journal").write_text(json.dumps(line) + "\n")
    proc = cli(api, *check, token=False)
    assert proc.returncode == 1 and "journal record(s) after the manifest the receipt signs" in proc.stdout


@pytest.mark.parametrize("locations, message", [
    ([[0, 8]] * 101, "more than 100 token_at locations"),
    ([[i, 8] for i in range(20)], "more than 16 different strings"),
])
def test_token_locations_in_a_manifest_are_bounded(api, tmp_path, locations, message):
    """Review 65: thousands of token_at entries (each decoding the page again) or one per byte
    offset (each a "secret" every report string is scrubbed of) made verify DIR spin for hours."""
    ev = tmp_path / "ev"
    assert cli(api, *audit_args(api, "--save", ev)).returncode == 0
    manifest = json.loads((ev / "manifest.json").read_text())
    manifest["conversations"][0]["pages"][0]["token_at"] = locations
    (ev / "manifest.json").write_text(json.dumps(manifest))
    proc = cli(api, "verify", ev, token=False)
    assert proc.returncode == 3 and message in proc.stderr and proc.stderr.count("\n") == 1


def test_evidence_built_by_someone_else_never_passes_on_its_own_keys(api, tmp_path):
    """Review 65: `verify DIR` checked the signatures against the key responses saved in DIR and
    reported them authenticated (key_source keyring), so a directory a forger built with their own
    keys under the real users' ids read as an authenticated PASS. The saved keys now authenticate
    nothing unless a receipt signed by a key the caller trusts covers them."""
    key, forger_key = tmp_path / "receipt.key", tmp_path / "forger.key"
    for path in (key, forger_key):
        assert cli(api, "keys", "new-receipt-key", "-o", path, token=False).returncode == 0
    honest, forged = tmp_path / "honest", tmp_path / "forged"
    online = cli(api, *audit_args(api, "--save", honest, "--receipt-key", key, "--format", "json"))
    assert online.returncode == 0, online.stderr
    with FakeXApi(default_conversations(80, seed="forger")) as forger:  # the same users, the forger's keys
        made = cli(forger, *audit_args(forger, "--save", forged, "--receipt-key", forger_key))
        assert made.returncode == 0, made.stderr
    for ev in (honest, forged):
        proc = cli(api, "verify", ev, "--format", "json", token=False)
        report = json.loads(proc.stdout)
        assert proc.returncode == 1 and report["verdict"] == "fail", proc.stderr
        assert report["key_source"] == "evidence" and report["proof"]["keys_authenticated"] is False
        assert all(c["verdict"] == "fail" for c in report["conversations"])
        first = report["findings"][0]
        assert (first["code"], first["severity"]) == ("evidence_keys_unauthenticated", "error")
        text = cli(api, "verify", ev, token=False)
        assert text.returncode == 1 and "signer keys NOT authenticated (saved in the evidence directory)" in text.stdout
        page = cli(api, "verify", ev, "--format", "html", token=False)
        assert "Signer keys NOT authenticated:</strong> they are the key responses saved" in page.stdout
    # the honest auditor's receipt key authenticates the honest evidence, and only that
    vouched = cli(api, "verify", honest, "--receipt-public-key", f"{key}.pub", "--format", "json", token=False)
    assert vouched.returncode == 0, vouched.stdout
    assert saved_as_audit(json.loads(vouched.stdout), receipt=True) == json.loads(online.stdout)
    refused = cli(api, "verify", forged, "--receipt-public-key", f"{key}.pub", "--format", "json", token=False)
    first = json.loads(refused.stdout)["findings"][0]
    assert refused.returncode == 1 and first["severity"] == "error" and "the receipt does not hold" in first["message"]
    # taken on trust, the forged directory passes: information, never "authenticated"
    trusted = cli(api, "verify", forged, "--trust-evidence-keys", "--format", "json", token=False)
    report = json.loads(trusted.stdout)
    assert trusted.returncode == 0 and report["key_source"] == "evidence"
    assert report["proof"]["keys_authenticated"] is False and report["findings"][0]["severity"] == "info"
    # keys fetched from the real directory refute it
    ring = tmp_path / "ring.json"
    users = sorted({m.user_id for c in CONVS for m in c.members})
    assert cli(api, "keys", "fetch", *users, "--base-url", api.url, "-o", ring).returncode == 0
    checked = cli(api, "verify", forged, "--keys", ring, "--format", "json", token=False)
    assert checked.returncode == 1 and json.loads(checked.stdout)["proof"]["proven"] == 0


@pytest.mark.parametrize("extra, message", [
    (["--keys", "KEYS", "--trust-evidence-keys"], "which --keys replaces"),
    (["--keys", "KEYS", "--receipt-public-key", "PUB"], "which --keys replaces"),
    (["--trust-evidence-keys", "--receipt-public-key", "PUB"], "give one"),
])
def test_evidence_key_options_that_contradict_each_other_are_usage_errors(api, tmp_path, extra, message):
    ev, key = tmp_path / "ev", tmp_path / "receipt.key"
    assert cli(api, "keys", "new-receipt-key", "-o", key, token=False).returncode == 0
    assert cli(api, *audit_args(api, "--save", ev)).returncode == 0
    ring = tmp_path / "ring.json"
    ring.write_text((ev / "keyring.json").read_text())
    args = [{"KEYS": str(ring), "PUB": f"{key}.pub"}.get(a, a) for a in extra]
    proc = cli(api, "verify", ev, *args, token=False)
    assert proc.returncode == 2 and message in proc.stderr
    page = next((ev / "conversations").rglob("page-00001.json"))
    proc = cli(api, "verify", page, "--trust-evidence-keys", token=False)
    assert proc.returncode == 2 and "is for an evidence directory" in proc.stderr


def test_a_directory_swapped_during_the_receipt_check_is_not_vouched_for(api, tmp_path, monkeypatch):
    """The receipt check of `verify DIR --receipt-public-key` reads the directory a second time: a
    forged directory read for the verification, then the honest one put in its place for the
    receipt check, must not lend the forged keys the receipt's word."""
    import shutil

    from verifier import inputs, receipts
    key, forger_key = tmp_path / "receipt.key", tmp_path / "forger.key"
    for path in (key, forger_key):
        assert cli(api, "keys", "new-receipt-key", "-o", path, token=False).returncode == 0
    honest, forged = tmp_path / "honest", tmp_path / "forged"
    assert cli(api, *audit_args(api, "--save", honest, "--receipt-key", key)).returncode == 0
    with FakeXApi(default_conversations(80, seed="forger")) as forger:
        assert cli(forger, *audit_args(forger, "--save", forged, "--receipt-key", forger_key)).returncode == 0
    real_read = inputs.read_regular_file

    def swap_then_read(path, *args, **kwargs):
        if str(path).endswith("receipt.json") and not (forged / "swapped").exists():
            shutil.rmtree(forged)
            shutil.copytree(honest, forged)  # the honest directory, with its valid receipt
            (forged / "swapped").touch()
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(inputs, "read_regular_file", swap_then_read)
    report = verify_saved_audit(str(forged), receipt_key=receipts.load_verify_key(f"{key}.pub"))
    first = report.findings[0]
    assert report.verdict == "fail" and report.key_source == "evidence" and not report.proof.keys_authenticated
    assert first.severity == "error" and "the evidence manifest differs from the one the receipt signs" in first.message
    # the honest directory itself (now in place) is vouched for
    again = verify_saved_audit(str(forged), receipt_key=receipts.load_verify_key(f"{key}.pub"))
    assert again.verdict == "pass" and again.key_source == "evidence+receipt" and again.proof.keys_authenticated


def test_verify_saved_audit_refuses_a_keyring_with_a_judgement_of_the_saved_keys(api, tmp_path):
    ev = tmp_path / "ev"
    assert cli(api, *audit_args(api, "--save", ev)).returncode == 0
    ring = verifier.Keyring.from_json((ev / "keyring.json").read_text())
    with pytest.raises(verifier.UsageError, match="which keyring replaces"):
        verify_saved_audit(str(ev), ring, trust_evidence_keys=True)


def test_a_receipt_made_before_the_saved_keys_were_judged_still_holds():
    """Review 66: the report a receipt's evidence digest covers gained the saved keys' finding and
    label, so every receipt written before read as tampered. tests/data/receipt-0.3 was written by
    6f6d0d6 (audit --save --receipt-key of the local server's conversations)."""
    root = REPO / "tests" / "data" / "receipt-0.3"
    pub = root / "receipt.key.pub"
    proc = run_cli(["receipt", "verify", root / "ev" / "receipt.json", "--public-key", pub, "--evidence", root / "ev",
                    "--report", root / "report.json"])
    assert proc.returncode == 0 and json.loads(proc.stdout)["valid"] is True, proc.stdout
    proc = run_cli(["verify", root / "ev", "--receipt-public-key", pub, "--format", "json"])
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["key_source"] == "evidence+receipt" and report["proof"]["keys_authenticated"]
    vouched = report["findings"][0]
    assert vouched["code"] == "evidence_keys_vouched" and "http://127.0.0.1:" in vouched["message"]


def test_evidence_key_options_refuse_keys_from_inside_the_directory_and_empty_or_overwritten_keys(api, tmp_path):
    """Review 66: the forged directory ships the keyring.json the error advised passing as --keys;
    `-o` could replace the receipt public key; an empty --receipt-public-key was taken as absent."""
    ev, key = tmp_path / "ev", tmp_path / "receipt.key"
    assert cli(api, "keys", "new-receipt-key", "-o", key, token=False).returncode == 0
    assert cli(api, *audit_args(api, "--save", ev, "--receipt-key", key)).returncode == 0
    inside = cli(api, "verify", ev, "--keys", ev / "keyring.json", token=False)
    assert inside.returncode == 2 and "is inside the evidence directory" in inside.stderr
    empty = cli(api, "verify", ev, "--receipt-public-key", "", token=False)
    assert empty.returncode == 2 and "--receipt-public-key is empty" in empty.stderr
    before = Path(f"{key}.pub").read_bytes()
    over = cli(api, "verify", ev, "--receipt-public-key", f"{key}.pub", "-o", f"{key}.pub", token=False)
    assert over.returncode == 2 and "is the --receipt-public-key file" in over.stderr
    assert Path(f"{key}.pub").read_bytes() == before


def test_the_proof_line_counts_event_keys_beside_evidence_keys():
    """Review 66: with --allow-embedded-keys, a run on receipt-vouched evidence keys said the saved
    keys were not authenticated and lost the count of signatures checked with the events' keys."""
    from verifier.model import Proof, Report
    from verifier.report.common import proof_line
    proof = Proof(events=10, signed=10, proven=10, keys_authenticated=False, embedded_keys=3)
    vouched = proof_line(Report("s", "fail", [], key_source="evidence+receipt", proof=proof))
    assert "3 signature(s) checked with a key NOT authenticated (taken from the event)" in vouched
    assert "the evidence directory, vouched for by its receipt" in vouched
    unvouched = proof_line(Report("s", "fail", [], key_source="evidence", proof=proof))
    assert "signer keys NOT authenticated (saved in the evidence directory; 3 taken from the events)" in unvouched


def test_trust_evidence_keys_with_a_mistyped_path_or_two_directories_says_what_is_wrong(api, tmp_path):
    """Review 67: both said "page files have no saved keys"."""
    ev = tmp_path / "ev"
    assert cli(api, *audit_args(api, "--save", ev)).returncode == 0
    two = cli(api, "verify", ev, ev, "--trust-evidence-keys", token=False)
    assert two.returncode == 2 and "takes one evidence directory, alone" in two.stderr
    page = tmp_path / "page.json"  # r126: "one evidence directory at a time" of a directory and a page file
    page.write_text('{"data": []}')
    mixed = cli(api, "verify", ev, page, "--trust-evidence-keys", token=False)
    assert mixed.returncode == 2 and "not with page files or another directory" in mixed.stderr
    missing = cli(api, "verify", tmp_path / "evx", "--trust-evidence-keys", token=False)
    assert missing.returncode == 3 and "evx" in missing.stderr and "page files" not in missing.stderr


def test_a_forger_cannot_scrub_the_tool_s_own_words_out_of_the_report(api, tmp_path):
    """Review 69: a manifest's token_at names the "token" the saved bodies hold, so a forger made
    `evidence_keys_unauthenticated` the secret: the finding's code was redacted, and the check that
    keeps such a run out of the ledger (it reads the code) let it in."""
    import hashlib
    ev, ledger = tmp_path / "ev", tmp_path / "ledger.db"
    assert cli(api, *audit_args(api, "--save", ev)).returncode == 0
    manifest = json.loads((ev / "manifest.json").read_text())
    entry = manifest["conversations"][0]["metadata"]
    body = json.loads((ev / entry["file"]).read_text())
    body["note"] = "evidence_keys_unauthenticated"
    data = json.dumps(body).encode()
    (ev / entry["file"]).write_bytes(data)
    entry.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data),
                 token_at=[[data.index(b"evidence_keys_unauthenticated"), len("evidence_keys_unauthenticated")]])
    (ev / "manifest.json").write_text(json.dumps(manifest))
    (ev / "manifest.journal").unlink(missing_ok=True)
    proc = cli(api, "verify", ev, "--ledger", ledger, "--format", "json", token=False)
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["findings"][0]["code"] == "evidence_keys_unauthenticated"
    assert "not recorded in the ledger" in proc.stderr
    shown = cli(api, "ledger", "show", "--ledger", ledger, token=False)
    assert json.loads(shown.stdout)["audits"] == 0


def test_pages_verified_without_keys_are_not_recorded_in_the_ledger(api, tmp_path):
    """Review 69: the forged directory's pages, given as files without --keys, were recorded, and
    the next honest audit read as key_substituted."""
    ev, ledger = tmp_path / "ev", tmp_path / "ledger.db"
    with FakeXApi(default_conversations(40, seed="forger")) as forger:
        assert cli(forger, *audit_args(forger, "--save", ev)).returncode == 0
    pages = sorted(str(p) for p in ev.glob("conversations/*/page-*.json"))
    proc = cli(api, "verify", *pages, "--ledger", ledger, token=False)
    assert proc.returncode == 1 and "not recorded in the ledger" in proc.stderr
    honest = cli(api, *audit_args(api, "--ledger", ledger, "--format", "json"))
    assert honest.returncode == 0, honest.stdout[-2000:]
    taken = cli(api, "verify", *pages, "--ledger", tmp_path / "other.db", "--allow-embedded-keys", token=False)
    assert "not recorded" not in taken.stderr  # the caller's explicit choice is recorded


def test_keys_and_receipt_keys_from_inside_the_evidence_are_refused_everywhere(api, tmp_path):
    """Review 69: a receipt public key shipped in the directory gave an authenticated PASS of
    forged keys; archive verify took --keys from inside an evidence directory; -o could replace the
    receipt the run was vouched by."""
    ev, key = tmp_path / "ev", tmp_path / "receipt.key"
    assert cli(api, "keys", "new-receipt-key", "-o", key, token=False).returncode == 0
    assert cli(api, *audit_args(api, "--save", ev, "--receipt-key", key)).returncode == 0
    (ev / "receipt.key.pub").write_text(Path(f"{key}.pub").read_text())
    shipped = cli(api, "verify", ev, "--receipt-public-key", ev / "receipt.key.pub", token=False)
    assert shipped.returncode == 2 and "is inside the evidence directory" in shipped.stderr
    archived = cli(api, "archive", "verify", ev, "--keys", ev / "keyring.json", token=False)
    assert archived.returncode == 2 and "is inside" in archived.stderr
    before = (ev / "receipt.json").read_bytes()
    over = cli(api, "verify", ev, "--receipt-public-key", f"{key}.pub", "-o", ev / "receipt.json", token=False)
    assert over.returncode == 2 and "a file of the PAGE directory" in over.stderr
    assert (ev / "receipt.json").read_bytes() == before
    vouched = cli(api, "verify", ev, "--receipt-public-key", f"{key}.pub", "--format", "json", token=False)
    signer = json.loads(Path(f"{key}.pub").read_text())["public_key"]
    assert vouched.returncode == 0 and f"signed by receipt key {signer}" in vouched.stdout
