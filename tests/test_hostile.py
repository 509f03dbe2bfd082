"""Issue 15: a hostile API server cannot exhaust, leak or truncate an audit.

Each test starts the local X API server (``verifier.testing.server``) on 127.0.0.1 in a hostile mode
and runs the real command against it: in this process (``cli.main``) where only the outcome
matters, in a child process measured by ``tests/measure.py`` (peak RSS, bytes written) where the
point is about resources. Nothing here contacts any other address.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import REPO, saved_as_audit

from verifier import cli
from verifier.evidence import EvidenceStore
from verifier.fetch import REDACTED, XChatClient
from verifier.pages import json_value_bound
from verifier.settings import RetryPolicy
from verifier.testing.server import FakeXApi, default_conversations
from verifier.transport import ConfigError, check_base_url, install_deadlines

CONVS = default_conversations(80)
IDS = [c.conversation_id for c in CONVS]
DIRECT, GROUP = IDS
PEAK_LIMIT_MB = 300  # the bound for any audit, whatever the server sends


@contextmanager
def server(*modes: str, **params):
    with FakeXApi(CONVS, hostile=set(modes), **params) as api:
        yield api


def audit_args(api, *extra) -> list[str]:
    return ["audit", *IDS, "--base-url", api.url, "--max-results", "30", "--backoff-base", "0.01",
            "--timeout", "5", "--format", "json", *map(str, extra)]


def run(api, monkeypatch, capsys, *args, token: bool = True) -> tuple[int, str, str]:
    """The CLI in this process; (exit code, stdout, stderr), checked for tracebacks and the token."""
    if token:
        monkeypatch.setenv("X_BEARER_TOKEN", api.state.token)
    else:
        monkeypatch.delenv("X_BEARER_TOKEN", raising=False)
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "internal error" not in err
    assert api.state.token not in out + err
    return code, out, err


def measured(api, tmp_path: Path, *args, env_extra: dict | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    """The CLI in a child process; its result and what it cost (peak RSS in MB, bytes written)."""
    figures = tmp_path / "figures.json"
    env = {**os.environ, "X_BEARER_TOKEN": api.state.token, "MEASURE_OUT": str(figures), **(env_extra or {})}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "measure.py"), *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    stats = json.loads(figures.read_text())
    stats["seconds"] = time.monotonic() - started
    assert "Traceback" not in proc.stderr and api.state.token not in proc.stdout + proc.stderr
    return proc, stats


def events_requests(api, conversation: str = "") -> list[str]:
    return [p for _m, p in api.requests if "/events" in p and conversation.replace(":", "-") in p]


def page_attempts(api, conversation: str) -> int:
    """Events requests after the first, which the (2.166) server rejects for its fields parameter."""
    return len([p for p in events_requests(api, conversation) if "chat_message_event.fields" not in p])


def conversation(report: dict, cid: str) -> dict:
    return next(c for c in report["conversations"] if c["conversation_id"] == cid)


def incomplete_messages(report: dict, cid: str) -> list[str]:
    return [f["message"] for f in conversation(report, cid)["findings"] if f["code"] == "incomplete"]


def dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def offline(api, monkeypatch, capsys, ev: Path) -> tuple[int, dict]:
    """``verify DIR`` of the audit's own evidence (its saved keys taken on trust), as the audit's report."""
    code, out, _err = run(api, monkeypatch, capsys, "verify", ev, "--trust-evidence-keys", "--format", "json",
                          token=False)
    return code, saved_as_audit(json.loads(out))


# ------------------------------------------------------------------------ resources are bounded
@pytest.mark.parametrize("mode,layers", [("gzip-stacked", "gzip, gzip"), ("deflate-stacked", "deflate, deflate")])
@pytest.mark.slow
def test_stacked_encodings_are_refused_before_inflating(tmp_path, mode, layers):
    with server(mode) as api:  # ~10 KB bodies that inflate to 4 GB through the second layer
        proc, stats = measured(api, tmp_path, *audit_args(api))
    assert proc.returncode == 3 and f"stacked content encodings ({layers})" in proc.stderr
    assert stats["peak_rss_mb"] < PEAK_LIMIT_MB
    assert page_attempts(api, DIRECT) == 1  # refused, not retried
    assert set(api.state.accept_encodings) == {"gzip"}  # one encoding asked for


def test_gzip_bomb_is_cut_at_the_size_cap_as_it_inflates(tmp_path):
    with server("gzip-bomb") as api:  # one layer, 4 MB inflating to 4 GB
        proc, stats = measured(api, tmp_path, *audit_args(api))
    assert proc.returncode == 3 and "exceeds the limit of 8388608 bytes once decompressed" in proc.stderr
    assert stats["peak_rss_mb"] < PEAK_LIMIT_MB
    report = json.loads(proc.stdout)
    assert report["verdict"] == "fail" and incomplete_messages(report, DIRECT)


def test_unrequested_encoding_is_refused(monkeypatch, capsys):
    with server("unknown-encoding") as api:
        code, _out, err = run(api, monkeypatch, capsys, *audit_args(api))
    assert code == 3 and "content encoding 'compress', which was not asked for" in err


def test_honest_gzip_responses_are_decoded(monkeypatch, capsys):
    with FakeXApi(CONVS, gzip=True) as api:
        code, out, _err = run(api, monkeypatch, capsys, *audit_args(api))
    assert code == 0 and json.loads(out)["verdict"] == "pass"


@pytest.mark.slow
def test_endless_repeated_pages_end_after_twenty_at_default_settings(tmp_path):
    with server("endless") as api:  # the newest page again and again, each time with a fresh token
        proc, stats = measured(api, tmp_path, *audit_args(api))
    assert proc.returncode == 1 and stats["peak_rss_mb"] < PEAK_LIMIT_MB
    assert incomplete_messages(json.loads(proc.stdout), DIRECT) == [
        "history not fetched to its end: 20 pages in a row brought no new event (empty, or events already "
        "fetched), each with a next_token (--max-empty-pages)"]
    assert page_attempts(api, DIRECT) == 21


@pytest.mark.slow
def test_endless_pages_end_at_the_page_limit(monkeypatch, capsys, tmp_path):
    ev = tmp_path / "ev"
    with server("endless") as api:
        code, out, _err = run(api, monkeypatch, capsys, *audit_args(api, "--max-pages", 40, "--save", ev,
                                                                   "--max-empty-pages", 10 ** 6))
    report = json.loads(out)
    assert code == 1 and report["verdict"] == "fail"  # a limit, not a fetch error: exit 1, never PASS
    assert incomplete_messages(report, DIRECT) == ["history not fetched to its end: page limit 40 reached (--max-pages)"]
    manifest = json.loads((ev / "manifest.json").read_text())
    direct = manifest["conversations"][0]
    assert direct["complete"] is False and direct["incomplete"] == ["page limit 40 reached (--max-pages)"]
    assert len(direct["pages"]) == 40
    assert offline(api, monkeypatch, capsys, ev) == (1, report)


@pytest.mark.parametrize("option,value,modes,expected", [
    ("--max-conversation-mb", 0.5, ("endless",), "(--max-conversation-mb)"),
    ("--max-conversation-seconds", 0.5, ("endless-empty",), "(--max-conversation-seconds)"),
])
@pytest.mark.slow
def test_byte_and_time_budgets_end_the_fetch(monkeypatch, capsys, option, value, modes, expected):
    with server(*modes) as api:
        started = time.monotonic()
        code, out, _err = run(api, monkeypatch, capsys, *audit_args(api, option, value, "--max-empty-pages", 10 ** 6))
        elapsed = time.monotonic() - started
    messages = incomplete_messages(json.loads(out), DIRECT)
    assert code == 1 and len(messages) == 1 and messages[0].endswith(expected)
    assert elapsed < 20


def test_twenty_empty_pages_in_a_row_end_the_fetch(monkeypatch, capsys):
    with server("endless-empty") as api:
        code, out, _err = run(api, monkeypatch, capsys, *audit_args(api))
    assert code == 1
    assert incomplete_messages(json.loads(out), DIRECT) == [
        "history not fetched to its end: 20 pages in a row brought no new event (empty, or events already "
        "fetched), each with a next_token (--max-empty-pages)"]
    # one request rejected for its fields parameter (a 2.166 server), then exactly twenty pages
    assert len(events_requests(api, DIRECT)) == 21


@pytest.mark.slow
def test_manifest_writing_grows_linearly_with_the_page_count(tmp_path):
    """Empty pages with 1000-character tokens: what a run writes per page must not grow with the
    number of pages already saved (the manifest used to be rewritten after every file)."""
    written, sizes = {}, {}
    for pages in (60, 240):
        ev = tmp_path / f"ev{pages}"
        with server("endless-empty", "long-tokens", token_bytes=1000) as api:
            proc, stats = measured(api, tmp_path, "audit", DIRECT, "--base-url", api.url, "--save", ev,
                                   "--max-pages", pages, "--max-empty-pages", 10 ** 6, "--format", "json")
        assert proc.returncode == 1, proc.stderr
        written[pages], sizes[pages] = stats["wchar"], dir_bytes(ev)
        assert len(json.loads((ev / "manifest.json").read_text())["conversations"][0]["pages"]) == pages
        assert not (ev / "manifest.journal").exists()  # folded into the snapshot at the end
    # per page: a ~100-byte body plus one ~2.5 KB journal line, once; quadratic would be ~16x
    assert written[240] < 5.5 * written[60] and written[240] < 2.5 * 1024 * 1024
    assert sizes[240] < 5.5 * sizes[60]


def test_long_tokens_are_not_followed(monkeypatch, capsys):
    with server("long-tokens") as api:  # 60,000-character next_token
        code, out, _err = run(api, monkeypatch, capsys, *audit_args(api))
    assert code == 1 and incomplete_messages(json.loads(out), DIRECT) == [
        "history not fetched to its end: page 1: next_token of 60000 characters exceeds the limit of 1024 "
        "(--max-token-length)"]
    assert len(events_requests(api, DIRECT)) == 2  # the 400 for the fields parameter, then page 1


@pytest.mark.slow
def test_huge_pages_are_refused_at_the_response_cap(tmp_path):
    ev = tmp_path / "ev"
    with server("huge-pages") as api:  # 60 MB of whitespace before each (endless) page
        proc, stats = measured(api, tmp_path, *audit_args(api, "--save", ev))
    assert proc.returncode == 3 and "exceeds the limit of 8388608 bytes (--max-response-mb)" in proc.stderr
    assert stats["peak_rss_mb"] < PEAK_LIMIT_MB
    assert dir_bytes(ev) < 1024 * 1024  # nothing of the padding reached the disk
    assert page_attempts(api, DIRECT) == 1


@pytest.mark.parametrize("items,limit_named", [(5_000, "--max-page-items"), (1_000_000, "--max-json-values")])
@pytest.mark.slow
def test_pages_stuffed_with_items_are_refused_before_decoding(tmp_path, items, limit_named):
    with server("many-items", item_count=items) as api:
        proc, stats = measured(api, tmp_path, *audit_args(api))
    assert proc.returncode == 3 and f"({limit_named})" in proc.stderr
    assert stats["peak_rss_mb"] < PEAK_LIMIT_MB


@pytest.mark.slow
def test_participant_flood_fetches_keys_of_at_most_max_users(tmp_path):
    with server("many-participants") as api:  # 20,000 extra ids in each conversation's metadata
        proc, stats = measured(api, tmp_path, *audit_args(api))
    report = json.loads(proc.stdout)
    key_requests = [p for _m, p in api.requests if "/public_keys" in p]
    assert len(key_requests) == 1000  # --max-users default; the three real signers come first
    assert proc.returncode == 0 and report["verdict"] == "pass"
    flood = [f for f in report["findings"] if f["code"] == "users_not_fetched"]
    assert flood and flood[0]["severity"] == "warning" and "the keys of 39003 more users" in flood[0]["message"]
    assert stats["peak_rss_mb"] < PEAK_LIMIT_MB


def test_participant_cap_is_an_option_and_survives_verify_dir(monkeypatch, capsys, tmp_path):
    ev = tmp_path / "ev"
    with server("many-participants", participant_count=500) as api:
        code, out, _err = run(api, monkeypatch, capsys, *audit_args(api, "--max-users", 3, "--save", ev))
    assert code == 0 and len([p for _m, p in api.requests if "/public_keys" in p]) == 3
    report = json.loads(out)
    assert "(--max-users 3)" in report["findings"][-1]["message"]
    assert offline(api, monkeypatch, capsys, ev) == (0, report)


@pytest.mark.slow
def test_a_slow_key_server_cannot_hold_the_run(monkeypatch, capsys, tmp_path):
    ev = tmp_path / "ev"
    with server() as api:
        api.inject("delay", "/public_keys", times=100, delay=0.4)
        started = time.monotonic()
        code, out, _err = run(api, monkeypatch, capsys, *audit_args(api, "--concurrency", 1, "--save", ev,
                                                                   "--max-conversation-seconds", 0.5))
        assert time.monotonic() - started < 10
        report = json.loads(out)
        late = [f for f in report["findings"] if f["code"] == "users_not_fetched"]
        assert late and "--max-conversation-seconds 0.5 ran out during the key requests" in late[0]["message"]
        assert len([p for _m, p in api.requests if "/public_keys" in p]) < 3
        assert code == 1 and offline(api, monkeypatch, capsys, ev) == (1, report)


@pytest.mark.parametrize("mode", ["drip", "drip-headers"])
@pytest.mark.slow
def test_a_dripping_server_is_cut_by_the_request_deadline(tmp_path, mode):
    with server(mode, drip_interval=0.2) as api:  # each read succeeds within --timeout; the whole never ends
        proc, stats = measured(api, tmp_path, *audit_args(api, "--request-deadline", 1))
    assert proc.returncode == 3 and "within the request deadline of 1 s (--request-deadline)" in proc.stderr
    assert stats["seconds"] < 15
    assert page_attempts(api, DIRECT) == 1  # not retried


# ------------------------------------------------------------------------ no leak, no fake screen
def test_an_echoed_token_never_leaves_the_process(monkeypatch, capsys, tmp_path):
    ev, report_file = tmp_path / "ev", tmp_path / "report.json"
    with server("echo-token") as api:
        token = api.state.token.encode()
        code, _out, err = run(api, monkeypatch, capsys, *audit_args(api, "--save", ev, "-o", report_file))
        assert code == 3 and f"Bearer {REDACTED}" in err  # the 403 on public keys, quoted without it
        report = json.loads(report_file.read_text())
        for path in [report_file, ev / "manifest.json", ev / "keyring.json"]:
            assert token not in path.read_bytes()
        warning = [f for f in report["findings"] if f["code"] == "evidence_contains_token"]
        assert warning and warning[0]["severity"] == "warning"
        api_errors = [e for inp in report["inputs"] for e in inp["api_errors"]]
        assert api_errors and all(REDACTED in e["detail"] for e in api_errors)
        manifest = json.loads((ev / "manifest.json").read_text())
        page = manifest["conversations"][0]["pages"][0]
        body = (ev / page["file"]).read_bytes()  # evidence stays byte for byte, and says where
        assert token in body and hashlib.sha256(body).hexdigest() == page["sha256"]
        assert page["token_at"][0] == [body.find(token), len(token)]
        code, offline_report = offline(api, monkeypatch, capsys, ev)
    assert (code, offline_report) == (3, report)


def test_keys_fetch_scrubs_an_echoed_token(monkeypatch, capsys, tmp_path):
    with server("echo-token") as api:
        code, _out, err = run(api, monkeypatch, capsys, "keys", "fetch", CONVS[0].members[0].user_id,
                              "--base-url", api.url, "-o", tmp_path / "ring.json")
    assert code == 3 and REDACTED in err


ESCAPE_CHARS = ("\x1b", "\r", "\u202e")


def test_terminal_escapes_from_the_server_are_shown_escaped(monkeypatch, capsys):
    with server("escape", "bad-sender-id") as api:
        code, out, err = run(api, monkeypatch, capsys, *audit_args(api))
    assert code == 3 and err.count("\n") >= 3
    assert not any(c in err for c in ESCAPE_CHARS)
    assert "\\x1b[2J\\x1b[H\\x1b[32mverdict: PASS" in err  # visible, inert
    assert "keys ../../etc/passwd\\x1b[2J" in err  # the forged sender id, escaped and shortened
    assert "\x1b" not in out and "\r" not in out  # JSON escapes controls (bidi is the renderers' part)
    assert json.loads(out)["verdict"] == "fail"


def test_keys_fetch_reports_a_malformed_body(monkeypatch, capsys, tmp_path):
    with server("malformed-keys") as api:
        code, _out, err = run(api, monkeypatch, capsys, "keys", "fetch", "1215441834412953600", "--base-url", api.url,
                              "-o", tmp_path / "ring.json")
    assert code == 3 and "malformed response: `data` is a number, expected an array of key rows" in err
    assert not (tmp_path / "ring.json").exists()  # a keyring is written complete or not at all


def test_keys_fetch_prints_no_partial_keyring(monkeypatch, capsys):
    """Round 80: on standard output a failed fetch still printed the keyring it had (`{"keys": []}`),
    exit 3; `keys fetch ... > ring.json` left a partial keyring. Nothing is printed now."""
    with server("malformed-keys") as api:
        code, out, err = run(api, monkeypatch, capsys, "keys", "fetch", "1215441834412953600", "--base-url", api.url)
    assert (code, out) == (3, "") and "keyring not written: keys could not all be fetched" in err


def test_the_progress_line_shows_server_text_inert():
    import io

    from rich.console import Console

    from verifier.audit import AuditProgress
    from verifier.testing.server import ESCAPES
    buffer = io.StringIO()
    display = cli._Display(True, Console(file=buffer, force_terminal=False, width=300))
    with display:
        display.update(AuditProgress(status=f"metadata unavailable: [bold red]{ESCAPES}"))
        display.status.console.print(display.status.status)
    text = buffer.getvalue()
    assert "[bold red]" in text and "\\x1b[2J" in text and "\x1b[2J" not in text


def test_keys_fetch_escapes_server_text(monkeypatch, capsys):
    with server("escape") as api:
        code, _out, err = run(api, monkeypatch, capsys, "keys", "fetch", CONVS[0].members[0].user_id,
                              "--base-url", api.url)
    assert code == 3 and not any(c in err for c in ESCAPE_CHARS) and "\\x1b[2J" in err


@pytest.mark.parametrize("url,allowed", [
    ("https://api.x.com", True), ("http://127.0.0.1:8080", True), ("http://localhost:1", True),
    ("http://[::1]:8080/prefix/", True), ("http://api.x.com", False), ("http://10.0.0.1", False),
    ("ftp://api.x.com", False), ("https://user:pw@api.x.com", False), ("https://api.x.com/?x=1", False),
    ("https://api.x.com:notaport", False), ("https://", False),
])
def test_base_url_policy(url, allowed):
    if allowed:
        assert check_base_url(url) == url.rstrip("/")
    else:
        with pytest.raises(ConfigError) as exc:
            check_base_url(url)
        assert "pw" not in str(exc.value)
    assert check_base_url("http://10.0.0.1", insecure_http=True) == "http://10.0.0.1"


def test_plain_http_and_credentials_in_the_base_url_are_refused(monkeypatch, capsys):
    with server() as api:
        code, _out, err = run(api, monkeypatch, capsys, "audit", DIRECT, "--base-url", "http://api.x.com")
        assert code == 2 and "refusing plain http:// to api.x.com" in err and "--insecure-http" in err
        with_password = api.url.replace("http://", "http://auditor:hunter22@")
        code, _out, err = run(api, monkeypatch, capsys, "audit", DIRECT, "--base-url", with_password)
        assert code == 2 and "credentials" in err and "hunter22" not in err
        code, _out, err = run(api, monkeypatch, capsys, "keys", "fetch", "1", "--base-url", with_password)
        assert code == 2 and "hunter22" not in err
    assert api.requests == []


def test_certificate_failure_is_not_retried_and_says_why(monkeypatch, capsys):
    with server("bad-cert") as api:
        code, _out, err = run(api, monkeypatch, capsys, "keys", "fetch", "1", "--base-url", api.url,
                              "--backoff-base", "5")
        assert code == 3 and "TLS certificate of 127.0.0.1 not trusted: self-signed certificate (not retried)" in err
        assert api.state.connections == 1
        code, out, err = run(api, monkeypatch, capsys, *audit_args(api))
    assert code == 3 and "self-signed certificate" in err and json.loads(out)["verdict"] == "fail"


@pytest.mark.parametrize("name,value,expected", [
    ("HTTPS_PROXY", "http://[::bad", "invalid proxy setting"),
    ("HTTPS_PROXY", "ftp://proxyuser:pr0xypass@127.0.0.1:1", "invalid proxy setting"),
    ("ALL_PROXY", "socks5://127.0.0.1:9", "pip install 'httpx[socks]'"),
])
def test_proxy_misconfiguration_is_a_one_line_error(monkeypatch, capsys, name, value, expected):
    if expected.startswith("pip"):
        try:
            import socksio  # noqa: F401
            pytest.skip("SOCKS support is installed here")
        except ImportError:
            pass
    monkeypatch.setenv(name, value)
    with server() as api:
        code, _out, err = run(api, monkeypatch, capsys, "audit", DIRECT, "--base-url", api.url)
    assert code == 2 and err.count("\n") == 1 and expected in err and "pr0xypass" not in err
    assert api.requests == []


def test_the_deadline_wraps_direct_and_proxy_pools(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # never contacted: no request is made
    with XChatClient("t" * 20, "https://api.x.com", policy=RetryPolicy()) as client:
        assert install_deadlines(client._http) == 0  # already installed on every pool
        pools = [client._http._transport, *[m for m in client._http._mounts.values() if m is not None]]
        assert len(pools) >= 2
        assert all(type(t._pool._network_backend).__name__ == "_DeadlineBackend" for t in pools)


def test_json_value_bound_is_an_upper_bound():
    for text in (b"[]", b"{}", b'{"a": [1, 2, {"b": null}]}', b'"x"', b'[[], [[]], {"a": {}}]'):
        assert json_value_bound(text) >= _count_values(json.loads(text))


def _count_values(value) -> int:
    if isinstance(value, list):
        return 1 + sum(_count_values(v) for v in value)
    if isinstance(value, dict):
        return 1 + sum(_count_values(v) for v in value.values())
    return 1


# ------------------------------------------------------------------------ never silently incomplete
@pytest.mark.parametrize("mode,expected", [
    ("token-loop", "page 3: next_token repeats one already followed (a pagination loop)"),
    ("token-not-string", "page 1: next_token is a number, not a string"),
    ("has-more-no-token", "page 1: meta.has_more is true but there is no next_token"),
    ("has-more-not-boolean", "page 1: meta.has_more is a string, not a boolean, and there is no next_token"),
    ("missing-events", "page 1: the API reported events it did not return: Resource Unavailable - "
                       "Some events of this page could not be returned."),
])
def test_pagination_faults_end_as_incomplete_never_complete(monkeypatch, capsys, tmp_path, mode, expected):
    ev = tmp_path / "ev"
    with server(mode) as api:
        code, out, _err = run(api, monkeypatch, capsys, *audit_args(api, "--save", ev))
    report = json.loads(out)
    assert code == 1 and report["verdict"] == "fail" and report["proof"]["complete"] is False
    direct = conversation(report, DIRECT)
    assert direct["complete"] is False
    assert f"history not fetched to its end: {expected}" in incomplete_messages(report, DIRECT)
    saved = json.loads((ev / "manifest.json").read_text())["conversations"][0]
    assert saved["complete"] is False and expected in saved["incomplete"]
    assert offline(api, monkeypatch, capsys, ev) == (1, report)


def test_a_has_more_that_is_not_a_boolean_stays_incomplete_when_resumed(monkeypatch, capsys, tmp_path):
    """Review: "has_more": "true" (a string) without a next_token ended the walk as complete, live,
    on --resume and in verify DIR (a PASS for the first page of the history alone)."""
    ev = tmp_path / "ev"
    expected = "history not fetched to its end: page 1: meta.has_more is a string, not a boolean, and there is no next_token"
    with server("has-more-not-boolean") as api:
        code, out, _err = run(api, monkeypatch, capsys, *audit_args(api, "--save", ev))
        assert code == 1 and incomplete_messages(json.loads(out), DIRECT) == [expected]
        code, out, _err = run(api, monkeypatch, capsys, *audit_args(api, "--save", ev, "--resume"))
        assert code == 1 and incomplete_messages(json.loads(out), DIRECT) == [expected]
        _edit(ev, lambda m: m["conversations"][0].update(complete=True, incomplete=[]))  # the pages decide
        code, report = offline(api, monkeypatch, capsys, ev)
    assert code == 1 and incomplete_messages(report, DIRECT) == [expected]


def test_max_pages_stop_is_incomplete_and_resume_continues(monkeypatch, capsys, tmp_path):
    ev = tmp_path / "ev"
    with server() as api:
        code, out, _err = run(api, monkeypatch, capsys, *audit_args(api, "--max-pages", 1, "--save", ev))
        assert code == 1 and "(--max-pages)" in incomplete_messages(json.loads(out), DIRECT)[0]
        saved = json.loads((ev / "manifest.json").read_text())["conversations"]
        assert [c["complete"] for c in saved] == [False, True]  # the group fits in one page
        code, resumed, _err = run(api, monkeypatch, capsys, *audit_args(api, "--max-pages", 1, "--save", ev, "--resume"))
        assert code == 1  # one more page per run
        code, resumed, _err = run(api, monkeypatch, capsys, *audit_args(api, "--save", ev, "--resume"))
        assert code == 0
        code, full, _err = run(api, monkeypatch, capsys, *audit_args(api))
    assert json.loads(resumed)["conversations"] == json.loads(full)["conversations"]
    assert len(json.loads((ev / "manifest.json").read_text())["conversations"][0]["pages"]) == 3
    assert offline(api, monkeypatch, capsys, ev) == (0, json.loads(resumed))


@pytest.mark.parametrize("mode,source,message", [
    ("malformed-keys", "keys 1215441834412953600", "malformed response: `data` is a number, expected an array of key rows"),
    ("malformed-participants", f"metadata {DIRECT}", "`data.participant_ids` is a number, expected an array of user ids"),
    ("bad-sender-id", "keys ../../etc/passwd\\x1b[2J\\x1b[H\\x1b[32mver…",
     "not a user id (named by an event); its keys were not fetched"),
])
def test_malformed_server_values_are_findings_and_the_report_is_written(monkeypatch, capsys, tmp_path, mode,
                                                                         source, message):
    ev = tmp_path / "ev"
    with server(mode) as api:
        code, out, err = run(api, monkeypatch, capsys, *audit_args(api, "--save", ev))
    report = json.loads(out)
    assert code == 3 and f"xchat-verify: {source}: {message}" in err
    assert [message] in [i["errors"] for i in report["inputs"] if i["source"] == source]
    assert offline(api, monkeypatch, capsys, ev) == (3, report)


# ------------------------------------------------------------------------ --resume trusts nothing
def _limited_run(api, monkeypatch, capsys, ev: Path) -> dict:
    code, _out, _err = run(api, monkeypatch, capsys, *audit_args(api, "--max-pages", 1, "--save", ev))
    assert code == 1
    return json.loads((ev / "manifest.json").read_text())


def _edit(ev: Path, change) -> None:
    manifest = json.loads((ev / "manifest.json").read_text())
    change(manifest)
    (ev / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("change", [
    lambda m: m["conversations"][0].__setitem__("path_id", "../../outside"),
    lambda m: m["conversations"][0]["pages"][0].__setitem__("file", "../../outside/page-00001.json"),
    lambda m: m["conversations"][0]["pages"][0].__setitem__("file", "/etc/hostname"),
    lambda m: m["keys"][0].__setitem__("file", "../keys/x.json"),
    lambda m: m["conversations"][0].__setitem__("conversation_id", "../../etc"),
], ids=["path_id", "relative page file", "absolute page file", "keys file", "conversation id"])
def test_resume_and_verify_refuse_names_outside_the_evidence_dir(monkeypatch, capsys, tmp_path, change):
    ev = tmp_path / "box" / "ev"
    with server() as api:
        _limited_run(api, monkeypatch, capsys, ev)
        _edit(ev, change)
        before = sorted(str(p) for p in tmp_path.rglob("*"))
        requests = len(api.requests)
        code, _out, err = run(api, monkeypatch, capsys, *audit_args(api, "--save", ev, "--resume"))
        assert code == 3 and err.count("\n") == 1 and "manifest.json is malformed" in err
        code, _out, err = run(api, monkeypatch, capsys, "verify", ev, token=False)
        assert code == 3 and err.count("\n") == 1
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written, anywhere
    assert len(api.requests) == requests  # refused before any request


def test_a_symlinked_directory_cannot_lead_outside(monkeypatch, capsys, tmp_path):
    ev, outside = tmp_path / "ev", tmp_path / "outside"
    with server() as api:
        manifest = _limited_run(api, monkeypatch, capsys, ev)
        folder = ev / "conversations" / manifest["conversations"][0]["path_id"]
        folder.rename(outside)
        folder.symlink_to(outside, target_is_directory=True)
        code, _out, err = run(api, monkeypatch, capsys, *audit_args(api, "--save", ev, "--resume"))
    assert code == 3 and "lies outside the evidence directory" in err
    assert sorted(p.name for p in outside.iterdir()) == ["conversation.json", "page-00001.json"]


def test_an_edited_complete_flag_is_rederived_from_the_saved_pages(monkeypatch, capsys, tmp_path):
    ev = tmp_path / "ev"
    with server() as api:
        _limited_run(api, monkeypatch, capsys, ev)
        _edit(ev, lambda m: m["conversations"][0].update(complete=True, incomplete=[], next_token=None))
        code, report = offline(api, monkeypatch, capsys, ev)
        assert code == 1 and incomplete_messages(report, DIRECT) == [
            "history not fetched to its end: the saved pages end with a next_token (page 1): the rest was not fetched"]
        code, out, _err = run(api, monkeypatch, capsys, *audit_args(api, "--save", ev, "--resume"))
    assert code == 0 and json.loads(out)["verdict"] == "pass"  # resume continued from the page, not the flag


def test_a_page_dropped_from_the_manifest_is_detected(monkeypatch, capsys, tmp_path):
    ev = tmp_path / "ev"
    with server() as api:
        run(api, monkeypatch, capsys, *audit_args(api, "--save", ev))
        manifest = json.loads((ev / "manifest.json").read_text())
        first, second, third = manifest["conversations"][0]["pages"]
        (ev / third["file"]).rename(ev / second["file"])  # keep file names as the writer makes them
        _edit(ev, lambda m: m["conversations"][0].__setitem__("pages", [first, {**third, "file": second["file"]}]))
        code, report = offline(api, monkeypatch, capsys, ev)
        assert code == 1 and "saved page 2 was not requested with the next_token of the page before it" in \
            incomplete_messages(report, DIRECT)[0]
        code, _out, err = run(api, monkeypatch, capsys, *audit_args(api, "--save", ev, "--resume"))
    assert code == 3 and "cannot resume" in err


@pytest.mark.parametrize("altered, words", [
    (0, "saved page 2 was not requested with the next_token of the page before it"),
    (1, "saved page 3 was not requested with the next_token of the page before it"),
    (2, "the saved pages end with a next_token (page 2)"),
])
def test_the_page_after_an_altered_one_is_named_by_its_own_number(monkeypatch, capsys, tmp_path, altered, words):
    """Review: verify DIR skips a page it cannot read, and named the next one by how many pages it
    had read: page-00002 after an altered page-00001 was "saved page 1", which has no page before it."""
    ev = tmp_path / "ev"
    with server() as api:
        run(api, monkeypatch, capsys, *audit_args(api, "--save", ev))
        page = ev / json.loads((ev / "manifest.json").read_text())["conversations"][0]["pages"][altered]["file"]
        page.write_bytes(page.read_bytes().replace(b'"data"', b'"data" ', 1))  # SHA-256 no longer matches
        code, report = offline(api, monkeypatch, capsys, ev)
    assert code == 3 and [m for m in incomplete_messages(report, DIRECT) if "saved page" in m] == \
        [f"history not fetched to its end: {words}" + (" (pages missing or out of order)" if altered < 2 else
                                                       ": the rest was not fetched")]


@pytest.mark.slow
def test_resume_from_another_base_url_needs_force(monkeypatch, capsys, tmp_path):
    ev = tmp_path / "ev"
    with server() as first, server() as second:
        _limited_run(first, monkeypatch, capsys, ev)
        second.state.token = first.state.token
        code, _out, err = run(second, monkeypatch, capsys, *audit_args(second, "--save", ev, "--resume"))
        assert code == 2 and "pass --force" in err and second.requests == []
        code, _out, err = run(second, monkeypatch, capsys, *audit_args(second, "--save", ev, "--resume", "--force"))
    assert code != 2 and second.requests  # forced: it went on (the other server rejects the saved token)


# ------------------------------------------------------------------------ the journal is crash safe
def test_journal_replay_drops_a_torn_last_line_and_ignores_older_journals(tmp_path):
    from verifier.errors import EvidenceError
    from verifier.fetch import FetchedBody
    store = EvidenceStore(tmp_path, "https://api.x.com")
    conv = store.start_conversation(DIRECT, DIRECT.replace(":", "-"))
    for n in range(3):
        store.save_page(conv, FetchedBody(f"https://api.x.com/p{n}", 200, b'{"data": []}', "now"), f"t{n}")
    journal = tmp_path / "manifest.journal"
    with open(journal, "ab") as handle:  # a crash in the middle of an append
        handle.write(b'{"journal": "' + store.manifest.journal.encode() + b'", "seq": 9, "op": "pa')
    assert len(EvidenceStore.open(tmp_path).manifest.conversations[0].pages) == 3
    lines = journal.read_bytes().split(b"\n")
    journal.write_bytes(b"\n".join([lines[0], b"{not json", *lines[1:]]))
    with pytest.raises(EvidenceError, match="line 2 is not JSON"):
        EvidenceStore.open(tmp_path)
    journal.write_bytes(b'{"journal": "stale", "seq": 1, "op": "keys_reset"}\n')  # an older run's journal
    assert EvidenceStore.open(tmp_path).manifest.conversations == []  # snapshot only (taken at start)


def test_scrub_report_reaches_every_string_even_behind_json_escapes():
    import msgspec as _msgspec

    from verifier import verify_pages
    from verifier.audit import scrub_report
    secret = "s3cr3t-token-value"
    escaped_echo = "".join(f"\\u{ord(c):04x}" for c in secret)  # how a server could hide the echo in JSON
    body = ('{"data": [{"encoded_event": "AAAA", "sender_id": "' + escaped_echo + '", "conversation_id": "g1"}],'
            ' "errors": [{"title": "x", "detail": "' + escaped_echo + '", "' + escaped_echo + '": 1}]}').encode()
    assert secret.encode() not in body
    report = verify_pages([body], None)
    assert secret in _msgspec.json.encode(report).decode()
    cleaned = scrub_report(report, [lambda text: text.replace(secret, REDACTED)])
    text = _msgspec.json.encode(cleaned).decode()
    assert secret not in text and REDACTED in text


def test_an_echo_hidden_behind_json_escapes_is_found_and_scrubbed(monkeypatch, capsys, tmp_path):
    ev = tmp_path / "ev"
    with server("echo-token-escaped") as api:
        code, out, _err = run(api, monkeypatch, capsys, *audit_args(api, "--save", ev))
        report = json.loads(out)
        assert code == 3 and [f for f in report["findings"] if f["code"] == "evidence_contains_token"]
        manifest = (ev / "manifest.json").read_text()
        assert api.state.token not in manifest and '"json"' in manifest  # located by JSON path, not copied
        page = next(p for p in (ev / "conversations").rglob("page-00001.json"))
        assert api.state.token.encode() not in page.read_bytes()  # only escaped copies
        assert offline(api, monkeypatch, capsys, ev) == (3, report)  # scrubbed offline as well


def test_an_echo_in_a_shadowed_member_is_found(monkeypatch, capsys, tmp_path):
    """Review 99: the token behind JSON escapes in a first ``meta`` member that a second one shadows
    (the engine reads the last, as JSON clients do; the saved body holds both) was not located:
    no evidence_contains_token, and the evidence held the token."""
    ev = tmp_path / "ev"
    with server("echo-token-shadowed") as api:
        code, out, _err = run(api, monkeypatch, capsys, *audit_args(api, "--save", ev))
        report = json.loads(out)
        assert code == 0 and [f for f in report["findings"] if f["code"] == "evidence_contains_token"]
        page = next(p for p in (ev / "conversations").rglob("page-00001.json"))
        assert api.state.token.encode() not in page.read_bytes() and b'{"meta": {"echo": "\\u' in page.read_bytes()
        assert offline(api, monkeypatch, capsys, ev) == (0, report)


def test_token_locations_count_every_member_and_read_past_numbers_msgspec_refuses():
    from verifier.apibodies import json_token_paths, token_at_path
    token = "s3cr3t-token-value"
    escaped = "".join(f"\\u{ord(c):04x}" for c in token)
    for body, where in [('{"a": "%s", "a": "x"}' % escaped, ["json", [0], 0, len(token)]),
                        ('{"a": "x", "a": "%s"}' % escaped, ["json", [1], 0, len(token)]),
                        ('{"a": {"%s": 1}, "a": 2}' % escaped, ["json-key", [0, 0], 0, len(token)]),
                        ('{"n": %s, "a": "%s"}' % ("9" * 5000, escaped), ["json", [1], 0, len(token)])]:
        assert json_token_paths(body.encode(), token) == [where]
        assert token_at_path(body.encode(), where) == token
    assert token_at_path(b'[["x"]]', ["json-key", [0, 0], 0, 1]) is None  # a key of an array: nothing, no crash


@pytest.mark.parametrize("option,value", [
    ("--max-pages", 0), ("--max-users", 0), ("--max-empty-pages", 0), ("--max-token-length", 0),
    ("--max-page-items", 0), ("--max-page-items", 100_001), ("--max-conversation-mb", 0),
    ("--max-conversation-seconds", -1), ("--request-deadline", 0), ("--max-response-mb", 0),
    ("--max-json-values", 0), ("--timeout", 0),
])
def test_bad_limit_values_are_usage_errors(monkeypatch, capsys, option, value):
    with server() as api:
        code, _out, err = run(api, monkeypatch, capsys, "audit", DIRECT, "--base-url", api.url, option, value)
    assert code == 2 and option in err and err.count("\n") == 1
    assert api.requests == []


def test_hostile_modes_are_selectable_from_the_server_command_line(monkeypatch, capsys):
    server_proc = subprocess.Popen([sys.executable, "-m", "verifier.testing.server", "--port", "0",
                                    "--hostile", "gzip-stacked", "--hostile", "echo-token", "--bomb-mb", "64"],
                                   stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        banner = server_proc.stdout.readline().split()
        assert banner[0] == "serving" and banner[-2:] == ["echo-token,", "gzip-stacked"]
        url, token = banner[1], banner[3]
        monkeypatch.setenv("X_BEARER_TOKEN", token)
        code = cli.main(["audit", DIRECT, "--base-url", url, "--backoff-base", "0.01", "--format", "json"])
        _out, err = capsys.readouterr()
        assert code == 3 and "stacked content encodings (gzip, gzip)" in err and token not in err
    finally:
        server_proc.terminate()
        server_proc.wait(timeout=10)


@pytest.mark.slow
def test_local_server_option_errors_are_one_line(tmp_path):
    """A port in use and bad values are usage errors of the server command, not tracebacks."""
    import socket
    import subprocess
    import sys
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for args, words in ((["--port", str(port)], "cannot listen on 127.0.0.1"),
                            (["--events", "0"], "--events must be greater than 0"),
                            (["--rate-limit", "0"], "--rate-limit must be at least 1")):
            proc = subprocess.run([sys.executable, "-m", "verifier.testing.server", "--events", "5", *args],
                                  capture_output=True, text=True, timeout=60)
            assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


def test_a_bare_user_id_served_another_conversation_never_passes(monkeypatch, capsys, tmp_path):
    """Review: ``audit USER_ID`` (my 1:1 conversation with that user) given a group's metadata and
    validly signed events passed, for the group. A bare id's conversation must be a 1:1 one with
    that user; ``verify`` of the saved evidence and ``archive verify`` say the same."""
    peer = DIRECT.split(":")[1]
    ev = tmp_path / "ev"
    with server("switch-conversation") as api:
        code, out, _err = run(api, monkeypatch, capsys, "audit", peer, "--base-url", api.url, "--max-results", "30",
                              "--backoff-base", "0.01", "--timeout", "5", "--format", "json", "--save", ev)
        report = json.loads(out)
        assert code == 3 and report["verdict"] == "fail", (code, report["verdict"])
        assert [c["conversation_id"] for c in report["conversations"]] == [GROUP]
        errors = [e for i in report["inputs"] for e in i["errors"]]
        assert errors == [f"asked for the 1:1 conversation with user {peer}; the server served conversation "
                          f"{GROUP}, which is not one"]
        assert offline(api, monkeypatch, capsys, ev) == (3, report)
        code, archived, _err = run(api, monkeypatch, capsys, "archive", "verify", ev, "--workers", "1", "--format",
                                   "json", "--trust-evidence-keys", token=False)
        assert code == 3 and saved_as_audit(json.loads(archived)) == report
    with server() as api:  # the honest server: the 1:1 conversation, which passes
        code, out, _err = run(api, monkeypatch, capsys, "audit", peer, "--base-url", api.url, "--max-results", "30",
                              "--backoff-base", "0.01", "--timeout", "5", "--format", "json")
        assert code == 0 and [c["conversation_id"] for c in json.loads(out)["conversations"]] == [DIRECT]


@pytest.mark.parametrize("token", ["index", "t", "status"])
def test_a_token_inside_a_report_field_s_name_is_scrubbed_without_a_crash(monkeypatch, capsys, token):
    """Second review: with the token "index" (or "t") the report's scrubbing renamed the field
    ``first_index`` and the run ended in an internal error; field names now stay as they are."""
    monkeypatch.setenv("X_BEARER_TOKEN", token)
    with server() as api:
        code = cli.main(["audit", DIRECT, "--base-url", api.url, "--max-retries", "0", "--format", "json"])
    out, err = capsys.readouterr()
    assert "internal error" not in err and "Traceback" not in err, err
    assert code == 3 and json.loads(out)["inputs"][0]["first_index"] == 0  # the server refuses the token


def _echo_as_next_token(monkeypatch, served: str) -> None:
    """The first page of the 1:1 conversation hands back ``served`` as its next_token (mapped to the
    real next page, so following it completes the history)."""
    from verifier.testing import server as srv
    honest = srv._Handler._page

    def page(self, conv, offset, size, shape, fields):
        body = honest(self, conv, offset, size, shape, fields)
        token = body["meta"].get("next_token")
        if token is not None and offset == 0 and conv.conversation_id == DIRECT:
            with self.state.lock:
                self.state.tokens[served] = self.state.tokens.pop(token)
            body["meta"]["next_token"] = served
        return body
    monkeypatch.setattr(srv._Handler, "_page", page)


def test_a_percent_decoded_token_as_next_token_is_not_put_into_a_url(monkeypatch, capsys, tmp_path):
    """Review 79: a real bearer token holds ``%2B`` and ``%3D``; a next_token that is the token
    percent-decoded passed the check and ``urlencode`` wrote the token back into the request URL,
    which manifest.json saves (a PASS, the token in the evidence, no warning)."""
    from urllib.parse import unquote_plus
    token = "AAAAAAAAAAAAAAAAAAAAAMLheAAAAAAA0%2BuSeid%2BULvsea4JtiGRiSDSJSI%3DEUifiRBk"
    _echo_as_next_token(monkeypatch, unquote_plus(token))
    ev = tmp_path / "ev"
    with FakeXApi(CONVS, token=token) as api:
        code, out, _err = run(api, monkeypatch, capsys, *audit_args(api, "--save", ev))
        assert not [p for _m, p in api.requests if token in p]
    assert code == 1 and incomplete_messages(json.loads(out), DIRECT) == [
        "history not fetched to its end: page 1: next_token contains the access token; not followed"]
    assert not [p for p in ev.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]


def test_resume_does_not_follow_a_next_token_that_holds_the_access_token(monkeypatch, capsys, tmp_path):
    """Review 79: the live walk refused the echoed token, but --resume re-derived its resume point
    from the saved page without that check, sent the token as pagination_token and saved the URL
    (the token) in manifest.json."""
    ev = tmp_path / "ev"
    expected = ["history not fetched to its end: page 1: next_token contains the access token; not followed"]
    with server() as api:
        _echo_as_next_token(monkeypatch, api.state.token)
        code, out, _err = run(api, monkeypatch, capsys, *audit_args(api, "--save", ev))
        assert code == 1 and incomplete_messages(json.loads(out), DIRECT) == expected
        code, out, _err = run(api, monkeypatch, capsys, *audit_args(api, "--save", ev, "--resume"))
        assert not [p for _m, p in api.requests if api.state.token in p]
    assert code == 1 and incomplete_messages(json.loads(out), DIRECT) == expected
    assert api.state.token.encode() not in (ev / "manifest.json").read_bytes()


def _cut_then_resumed(api, monkeypatch, capsys, ev, first: list[str], then: list[str]) -> tuple[int, str, int, str]:
    """``audit FIRST --max-pages 1 --save EV``, then ``audit THEN --save EV --resume``: each run's exit
    code and report."""
    code, out, _err = run(api, monkeypatch, capsys, "audit", *first,
                          *audit_args(api, "--max-pages", 1, "--save", ev)[3:])
    resumed_code, resumed, _err = run(api, monkeypatch, capsys, "audit", *then,
                                      *audit_args(api, "--save", ev, "--resume")[3:])
    return code, out, resumed_code, resumed


def _saved_entries(ev) -> list[tuple[str, int, bool]]:
    """(conversation id, pages, complete) of each conversation the evidence's manifest lists."""
    saved = json.loads((ev / "manifest.json").read_text())["conversations"]
    return [(c["conversation_id"], len(c["pages"]), c["complete"]) for c in saved]


@pytest.mark.parametrize("spelling", ["A-B", "B:A", "B-A"])
def test_resume_finds_the_saved_conversation_however_it_is_written(monkeypatch, capsys, tmp_path, spelling):
    """Review 79: --resume looked the conversation up by the text given, so A-B (the path form) for a
    saved A:B started a second entry on the same files (page-00001.json overwritten, and the manifest
    then unreadable: "listed twice"), and B:A a second copy whose PASS `verify DIR` did not reproduce."""
    ev = tmp_path / "ev"
    a, b = DIRECT.split(":")
    named = spelling.replace("A", a).replace("B", b)
    with server() as api:
        code, _out, code_resumed, out = _cut_then_resumed(api, monkeypatch, capsys, ev, [DIRECT], [named])
        assert (code, code_resumed) == (1, 0), out
        assert _saved_entries(ev) == [(DIRECT, 3, True)]
        assert offline(api, monkeypatch, capsys, ev)[0] == 0


def test_a_bare_id_without_metadata_marks_the_conversation_it_fetched_incomplete(monkeypatch, capsys, tmp_path):
    """Review 79: `audit USER_ID` whose metadata is unavailable, and whose walk stopped early, put its
    `incomplete` on a conversation named by the bare id (with a false `no_events`), while the
    conversation it fetched one page of was reported `pass`, `complete: true`."""
    ev = tmp_path / "ev"
    with server() as api:
        other = next(u for u in DIRECT.split(":") if u != api.state.owner_id)
        api.inject("status", f"{other}?expansions", times=100, status=403)
        code, out, _err = run(api, monkeypatch, capsys, "audit", other,
                              *audit_args(api, "--max-pages", 1, "--save", ev)[3:])
        report = json.loads(out)
        assert code == 1 and [(c["conversation_id"], c["verdict"], c["complete"]) for c in report["conversations"]] \
            == [(DIRECT, "fail", False)]
        assert incomplete_messages(report, DIRECT) == [
            "history not fetched to its end: page limit 1 reached (--max-pages)"]
        assert offline(api, monkeypatch, capsys, ev) == (1, report)


@pytest.mark.parametrize("token", ['tok"en-secret-1234', "tok\\en-secret-1234"])
def test_a_token_with_a_character_json_escapes_is_refused(monkeypatch, capsys, token):
    """Review 79: the report is scrubbed as JSON text, where a quote or a backslash is escaped; a
    token holding one, echoed in errors[] (echo-token), was printed in the text report."""
    from verifier.errors import UsageError
    with pytest.raises(UsageError, match="quote or a backslash"):
        XChatClient(token, "http://127.0.0.1:9")
    with FakeXApi(CONVS, token=token, hostile={"echo-token"}) as api:
        monkeypatch.setenv("X_BEARER_TOKEN", token)
        code = cli.main(["audit", DIRECT, "--base-url", api.url, "--max-results", "30", "--backoff-base", "0.01"])
        out, err = capsys.readouterr()
        assert code == 2 and token not in out + err and api.requests == []


def _flood_keys(monkeypatch, body: bytes) -> None:
    """Every user but the conversations' members is served ``body`` as their public keys."""
    from verifier.testing import server as srv
    honest = srv._Handler._keys
    members = {m.user_id for c in CONVS for m in c.members}
    monkeypatch.setattr(srv._Handler, "_keys", lambda self, uid: honest(self, uid) if uid in members else (200, body))


@pytest.mark.parametrize("body, words", [
    (json.dumps({"data": [{}] * 99_000}).encode(), "exceeds the limit of 65536 bytes (a public_keys response's limit)"),
    (json.dumps({"data": [{"public_key_version": "1", "signing_public_key": "A" * 7_000_000}]}).encode(),
     "exceeds the limit of 65536 bytes (a public_keys response's limit)"),
])
def test_key_responses_of_many_users_cannot_fill_memory(monkeypatch, tmp_path, body, words):
    """Review 79: every user's key rows are held until the verdict, and a public_keys response could
    be 8 MB: 99,000 rows of `{}` (300 KB) cost 80 MB a user, one 7 MB row 24 MB a user (10 users:
    870 MB and 300 MB; --max-users allows 1000)."""
    _flood_keys(monkeypatch, body)
    with server("many-participants", participant_count=10) as api:
        proc, stats = measured(api, tmp_path, "audit", DIRECT, "--base-url", api.url, "--format", "json")
    assert proc.returncode == 3 and words in proc.stderr
    assert stats["peak_rss_mb"] < 100


def test_a_key_response_of_more_than_a_hundred_rows_is_not_used(monkeypatch, capsys):
    """Review 79: rows are counted without decoding them; a response of more is a malformed one."""
    _flood_keys(monkeypatch, json.dumps({"data": [{}] * 101}).encode())
    with server("many-participants", participant_count=1) as api:
        code, _out, err = run(api, monkeypatch, capsys, "audit", DIRECT, "--base-url", api.url)
    assert code == 3 and "malformed response: `data` holds more than 100 key rows" in err
    assert "row 1" not in err  # none of them decoded, one line


def test_a_resume_with_a_new_token_scrubs_the_old_one_from_the_replayed_pages(monkeypatch, capsys, tmp_path):
    """Review 79: resumed with a new token (the old one expired, or was revoked as the
    evidence_contains_token warning advises), the report quoted the old token from the saved pages it
    replayed; `verify DIR` of the same evidence recovers it from token_at and hides it."""
    ev, old, new = tmp_path / "ev", "old-token-0123456789", "new-token-9876543210"
    with FakeXApi(CONVS, token=old, second_token=new, hostile={"echo-token"}) as api:
        monkeypatch.setenv("X_BEARER_TOKEN", old)
        assert cli.main(audit_args(api, "--max-pages", 1, "--save", ev)) == 3
        capsys.readouterr()
        monkeypatch.setenv("X_BEARER_TOKEN", new)
        code = cli.main(audit_args(api, "--save", ev, "--resume"))
        out, err = capsys.readouterr()
    assert code == 3 and REDACTED in out and old not in out + err and new not in out + err
    assert old.encode() not in (ev / "manifest.json").read_bytes()


def test_resume_with_a_new_token_does_not_send_the_old_one_percent_decoded(monkeypatch, capsys, tmp_path):
    """Round 81: the first run refused a next_token that was its token percent-decoded and saved the
    page; resumed with a new token, the resume point was checked against the new token only (the old
    one was recovered from token_at, which never named the decoded form), so it was sent and
    ``urlencode`` wrote the old token into the request URL, saved in manifest.json."""
    from urllib.parse import unquote_plus
    old = "AAAAAAAAAAAAAAAAAAAAAMLheAAAAAAA0%2BuSeid%2BULvsea4JtiGRiSDSJSI%3DEUifiRBk"
    new = "new-token-9876543210abcdef"
    _echo_as_next_token(monkeypatch, unquote_plus(old))
    ev = tmp_path / "ev"
    with FakeXApi(CONVS, token=old, second_token=new) as api:
        monkeypatch.setenv("X_BEARER_TOKEN", old)
        assert cli.main(["audit", DIRECT, *audit_args(api, "--save", ev)[3:]]) == 1
        capsys.readouterr()
        monkeypatch.setenv("X_BEARER_TOKEN", new)
        code = cli.main(["audit", DIRECT, *audit_args(api, "--save", ev, "--resume")[3:]])
        out, err = capsys.readouterr()
        assert not [p for _m, p in api.requests if old in p]
    assert code == 1 and old not in out + err
    assert incomplete_messages(json.loads(out), DIRECT) == [
        "history not fetched to its end: page 1: next_token contains the access token; not followed"]
    assert old.encode() not in (ev / "manifest.json").read_bytes()


def test_resume_with_a_new_token_scrubs_the_old_one_from_what_it_saves_before_the_replay(monkeypatch, capsys,
                                                                                         tmp_path):
    """Round 81: the old token was learned from token_at only as the conversation whose saved pages
    hold it was replayed; a conversation fetched before it (named first, --concurrency 1) saved its
    incomplete reasons in manifest.json scrubbed of the new token alone, and a server echoing the
    old token in an errors[] detail put the old token there."""
    from verifier.testing import server as srv
    ev, old, new = tmp_path / "ev", "old-token-0123456789abcdef", "new-token-9876543210fedcba"
    honest = srv._Handler._page
    plant = []

    def page(self, conv, offset, size, shape, fields):
        body = honest(self, conv, offset, size, shape, fields)
        if plant and conv.conversation_id == GROUP:
            body["errors"] = [{"type": "https://api.twitter.com/2/problems/resource-unavailable",
                               "title": "Resource Unavailable", "detail": f"left out for {old}",
                               "resource_type": "chat_message_event"}]
        return body
    monkeypatch.setattr(srv._Handler, "_page", page)
    with FakeXApi(CONVS, token=old, second_token=new, hostile={"echo-token"}) as api:
        monkeypatch.setenv("X_BEARER_TOKEN", old)
        assert cli.main(["audit", DIRECT, *audit_args(api, "--max-pages", 1, "--save", ev)[3:]]) == 3
        api.state.hostile.clear()
        plant.append(True)
        monkeypatch.setenv("X_BEARER_TOKEN", new)
        code = cli.main(["audit", GROUP, DIRECT, *audit_args(api, "--save", ev, "--resume", "--concurrency", 1)[3:]])
        out, err = capsys.readouterr()
    assert code == 1 and old not in out + err
    manifest = json.loads((ev / "manifest.json").read_text())
    assert [REDACTED in r for c in manifest["conversations"] if c["conversation_id"] == GROUP
            for r in c["incomplete"]] == [True]
    assert old.encode() not in (ev / "manifest.json").read_bytes()


@pytest.mark.parametrize("spaced", [" A:B", "A:B\r", "\tB-A"])
def test_a_conversation_named_with_spaces_around_it_is_audited_and_resumed(monkeypatch, capsys, tmp_path, spaced):
    """Round 81: an id with a space around it is accepted (stripped for the path, as a CRLF file's
    "A:B\r" is), but it stayed the expected conversation as given: every event was a
    conversation_mismatch (a false FAIL), and a --resume naming it A:B started a second entry on the
    same files, the manifest then unreadable ("listed twice")."""
    ev = tmp_path / "ev"
    a, b = DIRECT.split(":")
    first = spaced.replace("A", a).replace("B", b)
    with server() as api:
        code, out, code_resumed, resumed = _cut_then_resumed(api, monkeypatch, capsys, ev, [first], [DIRECT])
        assert code == 1 and incomplete_messages(json.loads(out), DIRECT) == [
            "history not fetched to its end: page limit 1 reached (--max-pages)"]
        assert "conversation_mismatch" not in out
        assert code_resumed == 0, resumed
        assert _saved_entries(ev) == [(first.strip(), 3, True)]
        assert offline(api, monkeypatch, capsys, ev)[0] == 0


@pytest.mark.parametrize("named", [["A:B"], ["B-A"], ["B", "A:B"]])
def test_resume_finds_a_conversation_saved_under_the_bare_user_id(monkeypatch, capsys, tmp_path, named):
    """Round 81: a 1:1 conversation saved as the other user's bare id B (its metadata naming A:B) and
    resumed as A:B was a second entry on the same conversation: the resumed audit passed, `verify DIR`
    of the same evidence failed (the first entry incomplete, its events duplicates)."""
    ev = tmp_path / "ev"
    with server() as api:
        a = api.state.owner_id
        b = next(u for u in DIRECT.split(":") if u != a)
        names = [n.replace("A", a).replace("B", b) for n in named]
        code, _out, code_resumed, out = _cut_then_resumed(api, monkeypatch, capsys, ev, [b], names)
        assert (code, code_resumed) == (1, 0), out
        assert _saved_entries(ev) == [(b, 3, True)]
        assert offline(api, monkeypatch, capsys, ev)[0] == 0


def test_the_token_percent_decoded_echoed_by_the_server_is_scrubbed_from_the_live_report(monkeypatch, capsys,
                                                                                        tmp_path):
    """Round 84: token_at records the token percent-decoded (round 81), so ``verify DIR`` scrubbed it
    from its report; the live audit, scrubbing the literal token alone, printed it in its report and
    saved it in manifest.json's incomplete reasons when the server echoed it in an errors[] detail."""
    from urllib.parse import unquote_plus

    from verifier.testing import server as srv
    token = "AAAAAAAAAAAAAAAAAAAAAMLheAAAAAAA0%2BuSeid%2BULvsea4JtiGRiSDSJSI%3DEUifiRBk"
    decoded = unquote_plus(token)
    honest = srv._Handler._page

    def page(self, conv, offset, size, shape, fields):
        body = honest(self, conv, offset, size, shape, fields)
        body["errors"] = [{"type": "https://api.twitter.com/2/problems/resource-unavailable",
                           "title": "Resource Unavailable", "detail": f"left out for {decoded}",
                           "resource_type": "chat_message_event"}]
        return body
    monkeypatch.setattr(srv._Handler, "_page", page)
    ev = tmp_path / "ev"
    with FakeXApi(CONVS, token=token) as api:
        monkeypatch.setenv("X_BEARER_TOKEN", token)
        code = cli.main(["audit", DIRECT, *audit_args(api, "--save", ev)[3:]])
        out, err = capsys.readouterr()
    assert code == 1 and REDACTED in out
    assert decoded not in out + err and token not in out + err
    assert decoded.encode() not in (ev / "manifest.json").read_bytes()


def test_a_full_id_resumed_under_the_bare_id_it_was_saved_as_stays_bound_to_both_users(monkeypatch, capsys,
                                                                                         tmp_path):
    """Round 84: evidence saved as the bare id B (its metadata naming A:B, no page saved) resumed as
    A:B was resumed under B and held only to "a 1:1 conversation with B": the server then naming and
    serving C:B (another pair's conversation, validly signed) passed as A:B's history, which a fresh
    audit of A:B fails (docs/threat-model.md: "Name the conversation as A:B to bind both")."""
    from verifier.ids import canonical_conversation
    from verifier.testing import server as srv
    from verifier.testing.forge import Identity, build_conversation
    direct, group = default_conversations(80)
    a, b = direct.conversation_id.split(":")
    other = build_conversation(40, seed="other", members=[Identity.from_seed("1603419180975409153", "1701234567890",
                                                                             "serverc"),
                                                         Identity.from_seed(b, "1736723828667", "serverb")])
    switched: list[bool] = []
    honest_events, honest_conversation = srv._Handler._events, srv._Handler._conversation

    def events(self, path_id, query):
        if not switched:  # the first run: honest metadata, then the events request fails
            return 503, {"title": "Service Unavailable", "detail": "later", "type": "about:blank"}
        return honest_events(self, path_id, query)

    def conversation(self, path_id):
        if switched and canonical_conversation(path_id) in (b, direct.conversation_id):
            return self._served()[0][canonical_conversation(other.conversation_id)]
        return honest_conversation(self, path_id)
    monkeypatch.setattr(srv._Handler, "_events", events)
    monkeypatch.setattr(srv._Handler, "_conversation", conversation)
    ev = tmp_path / "ev"
    with FakeXApi([direct, group, other]) as api:
        assert api.state.owner_id == a
        code, _out, _err = run(api, monkeypatch, capsys, "audit", b, *audit_args(api, "--max-retries", 0,
                                                                              "--save", ev)[3:])
        assert code == 3
        switched.append(True)
        code, out, _err = run(api, monkeypatch, capsys, "audit", direct.conversation_id,
                              *audit_args(api, "--save", ev, "--resume")[3:])
    assert code == 1 and json.loads(out)["verdict"] == "fail"
    assert "conversation_mismatch" in out
