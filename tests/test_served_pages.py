"""A scripted hostile X API on 127.0.0.1 serving exactly the bodies each test needs (review 57):
what the honest local server (``verifier.testing.server``) never sends, such as an empty oldest
page after an unavailable metadata route, or ``errors`` as an object."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import pytest
from helpers import run_cli, saved_as_audit

from verifier.ids import canonical_conversation
from verifier.testing.forge import Identity, build_conversation, forge_event, item_json

TOKEN = "tok-scripted-5s7"
ALICE = Identity.from_seed("1215441834412953600", "1765382634817", "served-a")
BOB = Identity.from_seed("1843439638876491776", "1736723828667", "served-b")
CID = f"{ALICE.user_id}:{BOB.user_id}"
METADATA = (200, {"data": {"id": CID.replace(":", "-"), "type": "direct", "participant_ids": [ALICE.user_id, BOB.user_id]}})


@dataclass
class Script:
    """What the server answers: events pages by index (token ``p<i>``), the metadata, the keys."""

    pages: list[dict | bytes] = field(default_factory=list)
    metadata: tuple[int, dict] = METADATA
    page_of: Callable[[int], dict | bytes] | None = None  # computes page i instead of ``pages``
    events_requests: int = 0
    limited: int = 0  # 429s (the window resetting in 2 s) before each answer of the routes ``limited_routes`` starts
    limited_routes: str = "/2/chat/"
    hits: dict[str, int] = field(default_factory=dict)

    def events(self, index: int) -> dict | bytes:
        self.events_requests += 1
        return self.page_of(index) if self.page_of else self.pages[index]


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            parts = urlsplit(self.path)
            token = parse_qs(parts.query).get("pagination_token", [None])[-1]
            hit = script.hits[self.path] = script.hits.get(self.path, 0) + 1
            if script.limited and parts.path.startswith(script.limited_routes) and hit % (script.limited + 1):
                return self.send(429, {"title": "Too Many Requests"}, {"x-rate-limit-reset": str(int(time.time()) + 2)})
            if re.fullmatch(r"/2/chat/conversations/[^/]+/events", parts.path):
                return self.send(200, script.events(0 if token is None else int(token[1:])))
            if re.fullmatch(r"/2/chat/conversations/[^/]+", parts.path):
                return self.send(*script.metadata)
            m = re.fullmatch(r"/2/users/([^/]+)/public_keys", parts.path)
            if m:
                rows = [i.keyring_row() for i in (ALICE, BOB) if i.user_id == m.group(1)]
                return self.send(200, {"data": rows})
            return self.send(404, {"title": "Not Found"})

        def send(self, status: int, body: dict | bytes, headers: dict[str, str] | None = None) -> None:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)

    return Handler


@pytest.fixture()
def served() -> Iterator[tuple[Script, str]]:
    script = Script()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield script, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def pages_of(events: list, size: int) -> list[dict | bytes]:
    """Newest-first pages of ``size`` events; token ``p<i>`` names page i."""
    newest = list(reversed(events))
    out: list[dict | bytes] = []
    for i, start in enumerate(range(0, len(newest), size)):
        chunk = newest[start:start + size]
        more = start + size < len(newest)
        meta: dict[str, Any] = {"result_count": len(chunk), "has_more": more}
        if more:
            meta["next_token"] = f"p{i + 1}"
        out.append({"data": [item_json(f) for f in chunk], "meta": meta})
    return out


def with_empty_end(pages: list[dict | bytes]) -> list[dict | bytes]:
    """The same pages, the last one given a token to one more page: empty, and the end."""
    last = pages[-1]
    assert isinstance(last, dict)
    last["meta"].update(has_more=True, next_token=f"p{len(pages)}")
    return [*pages, {"data": [], "meta": {"result_count": 0, "has_more": False}}]


def cli(url: str, *args: object) -> tuple[int, dict, str]:
    """``xchat-verify ARGS`` (an audit against ``url``); exit code, JSON report, stderr."""
    extra = ["--base-url", url, "--quiet", "--backoff-base", "0.01", "--timeout", "5"] if args[0] == "audit" else []
    env = {"X_BEARER_TOKEN": TOKEN} if args[0] == "audit" else {}  # offline runs never know the token
    proc = run_cli([args[0], *extra, *args[1:], "--format", "json"], env=env)
    assert "Traceback" not in proc.stderr and TOKEN not in proc.stdout + proc.stderr, args[0]
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def codes(report: dict) -> list[str]:
    out = [f["code"] for f in report["findings"]]
    for conv in report["conversations"]:
        out += [f["code"] for f in conv["findings"]]
        out += [f["code"] for e in conv["events"] for f in e["findings"]]
    return out


# ------------------------------------------------------------------ 1: a bare id, its walk ended on an empty page
def _dropped_oldest(script: Script, url: str, metadata: tuple[int, dict], tmp_path: Path) -> tuple[dict, Path, Path]:
    """Audit a bare id twice (honest, passing), then with its 3 oldest events dropped, the walk
    ending on an empty page that names no conversation: that report, its evidence, a ledger of the
    honest audits."""
    script.metadata = metadata
    conv = build_conversation(12, members=[ALICE, BOB], seed="served-1", realistic_crypto=False)
    script.pages = with_empty_end(pages_of(conv.events, 5))
    ledger, copy = tmp_path / "l.db", tmp_path / "copy.db"
    for _ in range(2):  # the honest history, twice: passes, nothing vanished
        code, report, err = cli(url, "audit", BOB.user_id, "--ledger", ledger)
        assert code == 0 and "event_vanished" not in codes(report), (err, codes(report))
    shutil.copy(ledger, copy)
    script.pages = with_empty_end(pages_of(conv.events[3:], 5))
    _, report, _ = cli(url, "audit", BOB.user_id, "--ledger", ledger, "--save", tmp_path / "ev")
    return report, tmp_path / "ev", copy


_METADATA = pytest.mark.parametrize("metadata", [(404, {"title": "Not Found"}), (200, {"data": []})],
                                    ids=["404", "legacy"])


@_METADATA
def test_dropped_oldest_events_vanish_when_a_bare_id_walk_ends_on_an_empty_page(metadata, served, tmp_path: Path):
    """The empty oldest page names no conversation (no metadata, no events): the walk's end is the
    end of the conversation its events were reported under, so the ledger judges the whole history."""
    report, evidence, ledger = _dropped_oldest(*served, metadata, tmp_path)
    assert report["verdict"] == "fail" and codes(report).count("event_vanished") == 3, codes(report)
    code, report, _ = cli(served[1], "verify", evidence, "--trust-evidence-keys", "--ledger", ledger)  # its evidence
    assert code == 1 and codes(report).count("event_vanished") == 3, codes(report)


@pytest.mark.slow
def test_archive_verify_of_that_evidence_catches_the_dropped_events_too(served, tmp_path: Path):
    _, evidence, ledger = _dropped_oldest(*served, (404, {"title": "Not Found"}), tmp_path)
    code, report, _ = cli(served[1], "archive", "verify", evidence, "--workers", "1", "--ledger", ledger,
                          "--trust-evidence-keys")
    assert code == 1 and codes(report).count("event_vanished") == 3, codes(report)


# ------------------------------------------------------------------ 2: errors that is not an array
LEFT_OUT = {"type": "https://api.x.com/2/problems/resource-unavailable", "title": "Resource Unavailable",
            "detail": "Some events of this page could not be returned."}
FIELD_ONLY = {"type": "https://api.x.com/2/problems/field-hydration-failure", "title": "Field Hydration Failure",
              "detail": "could not hydrate a field", "field": "is_trusted"}


def _three_ways(url: str, tmp_path: Path) -> list[tuple[str, int, dict]]:
    """``audit --save``, ``verify DIR`` and ``verify PAGE...`` (with the saved keys) of one history."""
    evidence = tmp_path / "ev"
    code, audited, _ = cli(url, "audit", CID, "--save", evidence)
    out = [("audit", code, audited)]
    out.append(("verify DIR", *cli(url, "verify", evidence, "--trust-evidence-keys")[:2]))
    files = sorted(evidence.glob("conversations/*/page-*.json"))
    out.append(("verify PAGE", *cli(url, "verify", *files, "--keys", evidence / "keyring.json")[:2]))
    return out


def _incomplete_messages(report: dict) -> str:
    return " ".join(f["message"] for c in report["conversations"] for f in c["findings"] if f["code"] == "incomplete")


@pytest.mark.parametrize("errors", [LEFT_OUT, "Some events of this page could not be returned."], ids=["object", "string"])
def test_errors_that_is_not_an_array_saying_events_were_left_out_is_incomplete_on_every_path(errors, served, tmp_path):
    """``paging`` read only an array: ``audit`` and ``verify DIR`` passed a page whose ``errors``
    object said events were left out, while ``verify PAGE`` (the engine wraps it) said incomplete."""
    script, url = served
    conv = build_conversation(8, members=[ALICE, BOB], seed="served-2", realistic_crypto=False)
    script.pages = pages_of(conv.events, 5)
    last = script.pages[-1]
    assert isinstance(last, dict)
    del last["data"][-1]  # the oldest event left out, and said so
    last["errors"] = errors
    for how, code, report in _three_ways(url, tmp_path):
        assert code == 1 and "incomplete" in codes(report), (how, codes(report))
        assert "Some events of this page could not be returned." in _incomplete_messages(report), how


def test_errors_object_about_a_field_only_passes_on_every_path(served, tmp_path):
    script, url = served
    conv = build_conversation(8, members=[ALICE, BOB], seed="served-2", realistic_crypto=False)
    script.pages = pages_of(conv.events, 5)
    assert isinstance(script.pages[-1], dict)
    script.pages[-1]["errors"] = FIELD_ONLY
    for how, code, report in _three_ways(url, tmp_path):
        assert code == 0 and "incomplete" not in codes(report), (how, codes(report))


# ------------------------------------------------------------------ 3: repeats re-spelt with JSON escapes
def _respelt(page: dict, n: int) -> bytes:
    """``page`` with the n-th spelling of each ``encoded_event``: one character as a ``\\uXXXX`` escape."""
    items = []
    for item in page["data"]:
        rest = {k: v for k, v in item.items() if k != "encoded_event"}
        enc = item["encoded_event"]
        at = 1 + n % (len(enc) - 2)
        spelt = enc[:at] + "\\u%04x" % ord(enc[at]) + enc[at + 1:]
        items.append(json.dumps(rest)[:-1] + f', "encoded_event": "{spelt}"}}')
    meta = json.dumps({"result_count": len(items), "has_more": True, "next_token": f"p{n + 1}"})
    return ('{"data": [' + ", ".join(items) + '], "meta": ' + meta + "}").encode()


def test_events_repeated_under_other_json_escapes_are_not_new(served):
    """``new_events`` hashed each ``encoded_event``'s JSON text: the same events re-spelt on every
    page were new each time, and ``--max-empty-pages`` never ended an endless walk."""
    script, url = served
    conv = build_conversation(10, members=[ALICE, BOB], seed="served-3", realistic_crypto=False)
    first = pages_of(conv.events, 10)[0]
    assert isinstance(first, dict)
    script.page_of = lambda n: _respelt(first, n)
    code, report, _ = cli(url, "audit", CID, "--max-empty-pages", "3", "--max-pages", "50")
    assert code == 1 and script.events_requests == 4, script.events_requests  # the first page, then 3 repeats
    assert "3 pages in a row brought no new event" in _incomplete_messages(report)


# ------------------------------------------------------------------ 4: the token inside encoded_event
def test_a_token_inside_an_encoded_event_is_found_and_scrubbed_offline_too(served, tmp_path):
    """The token as an event's unsigned ``created_at_msec``, inside the base64 Thrift only: the live
    report scrubbed it, but the manifest recorded no ``token_at``, so ``verify DIR`` printed it and
    neither warned ``evidence_contains_token``."""
    script, url = served
    conv = build_conversation(6, members=[ALICE, BOB], seed="served-4", realistic_crypto=False)
    last = conv.events[-1].event
    sender = ALICE if last.sender_id == ALICE.user_id else BOB
    conv.events[-1] = forge_event(sender, last.kind, last.body, conversation_id=last.conversation_id,
                                  sequence_id=last.sequence_id, previous_sequence_id=last.previous_sequence_id,
                                  message_id=last.message_id, created_at_msec=TOKEN,
                                  conversation_keys=conv.conversation_keys)
    script.pages = pages_of(conv.events, 5)
    for page in script.pages:
        assert isinstance(page, dict)
        for item in page["data"]:
            item.pop("created_at_msec", None)  # the token is nowhere in the JSON text
    assert all(TOKEN.encode() not in json.dumps(page).encode() for page in script.pages)
    _, online, _ = cli(url, "audit", CID, "--save", tmp_path / "ev")
    _, offline, _ = cli(url, "verify", tmp_path / "ev", "--trust-evidence-keys")
    assert "evidence_contains_token" in codes(online)
    assert saved_as_audit(offline) == online
    manifest = json.loads((tmp_path / "ev" / "manifest.json").read_text())
    assert [loc[0] for c in manifest["conversations"] for page in c["pages"] for loc in page.get("token_at", [])] == ["b64"]


# ------------------------------------------------------------------ 5: a full id whose metadata is unavailable
def test_a_full_id_without_metadata_is_held_to_its_conversation_offline_too(served, tmp_path):
    """Round 97: the metadata route failing (404, as on a pre-2.163 deployment), the audit checked the
    pages of ``A:C`` against the id named, but saved no expected conversation: the pages of another
    conversation (``A:B``'s, signed) were ``conversation_mismatch`` live, and ``verify DIR`` of the
    evidence passed them."""
    script, url = served
    script.metadata = (404, {"title": "Not Found"})
    conv = build_conversation(8, members=[ALICE, BOB], seed="served-5", realistic_crypto=False)
    script.pages = pages_of(conv.events, 5)
    named = f"{ALICE.user_id}:1603419180975409153"
    code, audited, _ = cli(url, "audit", named, "--save", tmp_path / "ev")
    assert code == 1 and "conversation_mismatch" in codes(audited), codes(audited)
    code, offline, _ = cli(url, "verify", tmp_path / "ev", "--trust-evidence-keys")
    assert code == 1 and saved_as_audit(offline) == audited, codes(offline)


def test_a_resume_without_metadata_judges_the_metadata_the_evidence_keeps(served, tmp_path):
    """Round 97: run 1 saved a metadata body with a participant that is not a user id (an input error)
    and stopped at --max-pages; its --resume, the metadata route failing, judged none and passed
    (exit 0), while ``verify DIR`` of the evidence it left judged run 1's metadata, still there: exit 3."""
    script, url = served
    script.metadata = (200, {"data": {"id": CID.replace(":", "-"), "type": "direct",
                                      "participant_ids": [ALICE.user_id, BOB.user_id, "not-a-user"]}})
    conv = build_conversation(12, members=[ALICE, BOB], seed="served-6", realistic_crypto=False)
    script.pages = pages_of(conv.events, 5)
    evidence = tmp_path / "ev"
    assert cli(url, "audit", CID, "--save", evidence, "--max-pages", "1")[0] == 3
    script.metadata = (404, {"title": "Not Found"})
    code, resumed, _ = cli(url, "audit", CID, "--save", evidence, "--resume")
    offline_code, offline, _ = cli(url, "verify", evidence, "--trust-evidence-keys")
    assert (code, resumed) == (offline_code, saved_as_audit(offline)), (code, offline_code)
    assert code == 3 and "not user ids" in json.dumps(resumed["inputs"])


# ------------------------------------------------------------------ 6: a history hidden behind its key change in meta
def test_a_history_served_as_its_key_change_in_meta_alone_is_empty_on_every_path(served, tmp_path):
    """Round 97: the server hid every message and served one page with ``data: []`` and the
    conversation's genuine key change (signature version 5: provable without the conversation key) in
    ``meta.conversation_key_events`` only; ``data: []`` alone fails ``no_events``, this passed (exit 0).
    Key changes given only in ``meta`` are context for a page's messages: they are no history."""
    script, url = served
    conv = build_conversation(8, members=[ALICE, BOB], seed="served-7", realistic_crypto=False, signature_version="5")
    key_change = conv.events[0]
    assert key_change.event.kind == "ConversationKeyChangeEvent"
    script.pages = [{"data": [], "meta": {"result_count": 0, "conversation_key_events": [key_change.b64]}}]
    for how, code, report in _three_ways(url, tmp_path):
        assert code == 1 and "no_events" in codes(report), (how, codes(report))
    # the same key change beside a message it gives context to: a history, which passes
    script.pages = [{"data": [item_json(conv.events[1])], "meta": {"conversation_key_events": [key_change.b64]}}]
    shutil.rmtree(tmp_path / "ev")
    for how, code, report in _three_ways(url, tmp_path):
        assert code == 0, (how, codes(report))


# ------------------------------------------------------------------ 7: rate-limit waits within --max-conversation-seconds
def test_rate_limit_waits_do_not_run_past_the_conversation_budget(served):
    """Round 97: the budget was checked between requests only, and the metadata request not at all: a
    server answering each request after five 429s (its window resetting in 2 s) held an audit with
    ``--max-conversation-seconds 1`` for 20 s (by default, one request may wait --max-retries times
    --max-wait: an hour and a half). A wait that would pass the budget ends the walk, incomplete."""
    script, url = served
    conv = build_conversation(12, members=[ALICE, BOB], seed="served-8", realistic_crypto=False)
    script.pages, script.limited = pages_of(conv.events, 5), 5
    started = time.monotonic()
    code, report, _ = cli(url, "audit", CID, "--max-conversation-seconds", "1", "--max-wait", "5")
    assert code == 1 and time.monotonic() - started < 8, time.monotonic() - started
    assert "past the budget of 1 s (--max-conversation-seconds)" in _incomplete_messages(report)
    script.hits.clear()  # a budget the waits fit in: they are waited for, and the audit passes
    script.pages, script.limited = pages_of(conv.events, 20), 1
    code, report, _ = cli(url, "audit", CID, "--max-conversation-seconds", "120", "--max-wait", "5")
    assert code == 0 and sum(script.hits.values()) == 2 * 2 + 2, (codes(report), script.hits)  # keys: not limited


def test_rate_limit_waits_of_the_key_requests_do_not_run_past_the_budget(served, tmp_path):
    """Round 97: the key phase checked its --max-conversation-seconds deadline before each user only;
    a key request kept in rate-limit waits ran on past it. Its users are ``users_not_fetched``, as
    users never asked for are, and ``verify DIR`` says the same."""
    script, url = served
    conv = build_conversation(6, members=[ALICE, BOB], seed="served-9", realistic_crypto=False)
    script.pages, script.limited, script.limited_routes = pages_of(conv.events, 20), 5, "/2/users/"
    started = time.monotonic()
    code, report, _ = cli(url, "audit", CID, "--max-conversation-seconds", "1", "--max-wait", "5",
                          "--save", tmp_path / "ev")
    assert code == 1 and time.monotonic() - started < 8, time.monotonic() - started
    late = [f["message"] for f in report["findings"] if f["code"] == "users_not_fetched"]
    assert late and "--max-conversation-seconds 1 ran out during the key requests" in late[0], late
    code, offline, _ = cli(url, "verify", tmp_path / "ev", "--trust-evidence-keys")
    assert code == 1 and saved_as_audit(offline) == report


# ------------------------------------------------------------------ 5: another conversation served, metadata unavailable
@pytest.mark.parametrize("asked", ["1215441834412953600-1603419180975409153", "g2080400000000000001"])
def test_another_conversation_served_while_the_metadata_is_unavailable_fails_offline_too(asked, served, tmp_path):
    """Round 106: the audit of a full id (A-B, g...) served another conversation's history failed
    (``conversation_mismatch``), but the id the events must carry was saved only when the metadata
    route answered: with it unavailable (404, as before 2.163), ``verify DIR`` of that evidence passed."""
    script, url = served
    script.metadata = (404, {"title": "Not Found"})
    conv = build_conversation(6, members=[ALICE, BOB], seed="served-5", realistic_crypto=False)
    script.pages = pages_of(conv.events, 4)
    evidence = tmp_path / "ev"
    code, audited, _ = cli(url, "audit", asked, "--save", evidence)
    assert code == 1 and "conversation_mismatch" in codes(audited), codes(audited)
    manifest = json.loads((evidence / "manifest.json").read_text())  # the audit saved what it held the events to
    assert manifest["conversations"][0]["expected_conversation_id"] == canonical_conversation(asked)
    code, offline, _ = cli(url, "verify", evidence, "--trust-evidence-keys")
    assert code == 1 and "conversation_mismatch" in codes(offline), codes(offline)
    assert saved_as_audit(offline) == audited


def test_evidence_saved_without_the_expected_id_still_holds_a_full_id_to_it(served, tmp_path):
    """Evidence written before round 106 (no ``expected_conversation_id`` when the metadata was
    unavailable): ``verify DIR`` takes a full id's canonical form as the audit did."""
    script, url = served
    script.metadata = (404, {"title": "Not Found"})
    conv = build_conversation(6, members=[ALICE, BOB], seed="served-5", realistic_crypto=False)
    script.pages = pages_of(conv.events, 4)
    evidence = tmp_path / "ev"
    code, audited, _ = cli(url, "audit", "1215441834412953600-1603419180975409153", "--save", evidence)
    assert code == 1
    manifest = json.loads((evidence / "manifest.json").read_text())
    manifest["conversations"][0]["expected_conversation_id"] = None
    (evidence / "manifest.json").write_text(json.dumps(manifest))
    for journal in evidence.glob("*journal*"):
        journal.unlink()
    code, offline, _ = cli(url, "verify", evidence, "--trust-evidence-keys")
    assert code == 1 and saved_as_audit(offline) == audited, codes(offline)


# ------------------------------------------------------------------ 4: the token quoted percent-encoded
ODD_TOKEN = "AbC+dEf/GhI=jKl~mNo0123456"  # characters a URL encodes


@pytest.mark.parametrize("form", [quote_plus(ODD_TOKEN), quote(ODD_TOKEN)])
def test_a_page_quoting_the_token_percent_encoded_is_scrubbed_online_and_offline(form, served, tmp_path):
    """r121: a server quoting the token as a URL carries it ('AbC%2BdEf%2FGhI%3D...') had it printed on
    stderr and in the report in full; both are scrubbed, and verify DIR scrubs its report the same way."""
    script, url = served
    conv = build_conversation(6, members=[ALICE, BOB], seed="served-4", realistic_crypto=False)
    script.pages = pages_of(conv.events, 10)
    assert isinstance(script.pages[0], dict)
    script.pages[0]["errors"] = [{**FIELD_ONLY, "detail": f"could not hydrate is_trusted for {form}"}]
    evidence = tmp_path / "ev"
    online = run_cli(["audit", CID, "--base-url", url, "--quiet", "--save", evidence, "--format", "json"],
                     env={"X_BEARER_TOKEN": ODD_TOKEN})
    offline = run_cli(["verify", evidence, "--trust-evidence-keys", "--format", "json"], env={})
    for proc in (online, offline):
        assert proc.returncode == 0 and "Traceback" not in proc.stderr
        assert form not in proc.stdout + proc.stderr and "could not hydrate is_trusted for [redacted" in proc.stdout
    assert saved_as_audit(json.loads(offline.stdout)) == json.loads(online.stdout)



@pytest.mark.parametrize("status", [403, 404, 500])
def test_an_unavailable_metadata_route_is_said_once_and_the_events_still_decide(status, served):
    """The conversation's metadata request failing (403: the token lacks a scope) was said only in
    the progress display's status line, gone at the end and never shown with --quiet or off a
    terminal: the run passed as if the participants had been checked against it. One warning line
    now names the conversation and why; the events still decide the verdict."""
    script, url = served
    conv = build_conversation(6, members=[ALICE, BOB], seed="served-meta", realistic_crypto=False)
    script.pages = pages_of(conv.events, 4)
    code, answered, err = cli(url, "audit", CID)
    assert code == 0 and "metadata" not in err, err
    script.metadata = (status, {"title": "Forbidden", "detail": f"no access for {TOKEN}"})
    code, report, err = cli(url, "audit", CID)
    lines = [line for line in err.splitlines() if "metadata" in line]
    assert code == 0 and report["verdict"] == "pass" and len(lines) == 1, err
    assert lines[0].startswith(f"xchat-verify: warning: the metadata of conversation {CID} was unavailable (")
    assert str(status) in lines[0] and lines[0].endswith("its participants are known from its events alone")
    assert report["conversations"] == answered["conversations"]
