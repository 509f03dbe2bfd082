"""Issue 9 end to end: the local X API serves a history, then a rewritten one; a second
``audit --ledger`` raises each finding. Every test runs on both backends (SQLite file, real
PostgreSQL server); the CLI runs in process (``verifier.cli.main``) to keep the suite fast, and a few
tests run it as a subprocess for exit codes and stderr."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
from helpers import REPO

from verifier.cli import main
from verifier.testing.forge import Identity, forge_event, item_json
from verifier.testing.server import FakeXApi, default_conversations

CONVS = default_conversations(24, seed="ledger")
IDS = [c.conversation_id for c in CONVS]
DIRECT = CONVS[0]


@pytest.fixture()
def api():
    with FakeXApi(CONVS, second_token="second-token-b0b") as server:
        yield server


def audit(api, ledger, capsys, monkeypatch, *extra, token=None):
    monkeypatch.setenv("X_BEARER_TOKEN", token or api.state.token)
    monkeypatch.delenv("XCHAT_VERIFY_LEDGER", raising=False)
    code = main(["audit", *IDS, "--base-url", api.url, "--max-results", "10", "--backoff-base", "0.01",
                 "--timeout", "5", "--quiet", "--format", "json", "--ledger", ledger, *extra])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def codes_of(report) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in report["findings"]:
        out.setdefault(f["code"], []).append(f)
    for conv in report["conversations"]:
        for f in conv["findings"]:
            out.setdefault(f["code"], []).append(f)
        for ev in conv["events"]:
            for f in ev["findings"]:
                out.setdefault(f["code"], []).append({**f, "sequence_id": ev["sequence_id"]})
    return out


LEDGER_CODES = {"history_rewritten", "chain_rewritten", "event_vanished", "deleted_by_signed_event",
                "head_regressed", "key_substituted", "key_version_rollback", "signature_version_downgrade",
                "key_added", "key_retired", "ledger_key_used"}

# mode -> (codes the second audit must raise, its exit code)
CASES = {
    "rewrite": ({"history_rewritten"}, 1),
    "vanish": ({"event_vanished", "chain_rewritten", "history_rewritten"}, 1),
    "truncate": ({"head_regressed"}, 1),
    # a signed delete covers the vanished event (info), but the run's own check still fails the delete
    # whose target the history no longer holds inside the fetched range (target_missing, error: issue 10)
    "delete": ({"deleted_by_signed_event"}, 1),
    "key-substitution": ({"key_substituted", "history_rewritten"}, 1),
    # round 73: the same version spelled "01" is the same slot; served alone, the keyring does not see
    # two keys for one number (the ledger does), so the run alone passes
    "key-alias": ({"key_substituted", "key_added", "key_retired", "history_rewritten"}, 1),
    "key-rollback": ({"key_version_rollback", "key_added", "key_retired", "history_rewritten"}, 1),
    "key-rotation": ({"key_added"}, 0),
    "member-left": ({"key_retired", "ledger_key_used"}, 0),
    "downgrade": ({"signature_version_downgrade"}, 0),
    # a ConversationDeleteEvent covers only what it signs: clear_all_messages true, up to its signed
    # sort_order_msec, from a member; one signed "clear nothing" (false, 1) or by a stranger covers nothing
    "clear": ({"deleted_by_signed_event"}, 0),
    "clear-nothing": ({"event_vanished"}, 1),
    "clear-stranger": ({"event_vanished"}, 1),
    # the history is fetched to its end: the oldest events are judged too
    "drop-oldest": ({"event_vanished"}, 1),
    # sequence ids are not signed: the same signed events moved above the old head
    "renumber": ({"event_vanished", "history_rewritten"}, 1),
}


@pytest.mark.parametrize("mode", sorted(CASES))
@pytest.mark.slow
def test_second_audit_raises_the_finding(mode, api, ledger_target, capsys, monkeypatch):
    code, first, _err = audit(api, ledger_target, capsys, monkeypatch)
    assert code == 0 and first["verdict"] == "pass"
    assert not LEDGER_CODES & set(codes_of(first))
    # the rewritten history alone, without the ledger, passes: only the ledger catches it (a member
    # who left is the other way round: only the ledger still has their key; a delete of an event no
    # longer in the history fails on its own, target_missing; so does a stranger's signed clear in a
    # 1:1 conversation, non_member_sender)
    api.state.hostile = {mode}
    monkeypatch.setenv("X_BEARER_TOKEN", api.state.token)
    alone = main(["audit", *IDS, "--base-url", api.url, "--max-results", "10", "--quiet", "--format", "json"])
    alone_report = json.loads(capsys.readouterr().out)
    assert alone == (1 if mode in ("member-left", "delete", "clear-stranger") else 0), mode
    assert ("target_missing" in codes_of(alone_report)) == (mode == "delete")
    assert ("non_member_sender" in codes_of(alone_report)) == (mode == "clear-stranger")
    expected, exit_code = CASES[mode]
    code, second, err = audit(api, ledger_target, capsys, monkeypatch)
    found = codes_of(second)
    assert set(found) & LEDGER_CODES == expected, (mode, sorted(found))
    assert code == exit_code, (mode, err)
    audit1 = json.loads(json.dumps(_ledger_json(ledger_target, "show", capsys)))
    assert audit1["audits"] == 2
    first_time = _ledger_json(ledger_target, "history", capsys, IDS[0])["audits"][0]["time"]
    for finding_code in expected - {"key_added"} | ({"key_added"} & expected):
        for f in found[finding_code]:
            if finding_code != "ledger_key_used":  # every finding names the audit it contradicts
                assert f"audit 1 at {first_time}" in f["message"], f
    if mode == "member-left":
        assert second["key_source"] == "keyring+ledger"
        assert any("key source: ledger" in e["signature"]["detail"] for c in second["conversations"]
                   for e in c["events"])
    if mode == "vanish":
        middle = DIRECT.events[len(DIRECT.events) // 2].event.sequence_id
        assert middle in found["event_vanished"][0]["message"]
    if mode in ("clear", "clear-nothing", "clear-stranger"):  # the newest 6 messages
        gone = {e.event.sequence_id for e in DIRECT.events[-6:]}
        code_of = "deleted_by_signed_event" if mode == "clear" else "event_vanished"
        assert {f["message"].split()[2].rstrip(",") for f in found[code_of]} == gone, found[code_of]
    if mode == "drop-oldest":
        gone = {e.event.sequence_id for e in DIRECT.events[:3]}
        assert {f["message"].split()[2] for f in found["event_vanished"]} == gone
    # a third audit of the same rewritten history: the contradiction stands (the ledger never forgets),
    # but what was reported once as information is not repeated
    code3, third, _ = audit(api, ledger_target, capsys, monkeypatch)
    again = set(codes_of(third)) & LEDGER_CODES
    assert again == {c for c in expected if c not in ("key_added", "key_retired", "deleted_by_signed_event",
                                                      "signature_version_downgrade")}, (mode, again)
    assert _ledger_json(ledger_target, "check", capsys)["consistent"]


def test_renumbered_history_fetched_in_part_is_caught(api, ledger_target, capsys, monkeypatch):
    """Only the newest page is fetched (not to its end): the old sequence ids are older than the range
    and not judged, but the same signed events at new sequence ids are."""
    assert audit(api, ledger_target, capsys, monkeypatch)[0] == 0
    api.state.hostile = {"renumber"}
    _code, second, _err = audit(api, ledger_target, capsys, monkeypatch, "--max-pages", "1", "--allow-partial")
    found = codes_of(second)
    assert set(found) & LEDGER_CODES == {"history_rewritten"}, sorted(found)
    assert all("renumbered" in f["message"] and "audit 1 at" in f["message"] for f in found["history_rewritten"])
    assert second["verdict"] == "fail"


def test_history_fetched_in_part_does_not_judge_older_events(api, ledger_target, capsys, monkeypatch):
    """Without the end of the history (a page limit), events older than the fetched range are not
    judged: they may simply not have been fetched."""
    assert audit(api, ledger_target, capsys, monkeypatch)[0] == 0
    code, second, _err = audit(api, ledger_target, capsys, monkeypatch, "--max-pages", "1", "--allow-partial")
    assert not LEDGER_CODES & set(codes_of(second)) and code == 0


def _ledger_json(ledger, action, capsys, *args):
    code = main(["ledger", action, *args, "--ledger", ledger])
    out, _ = capsys.readouterr()
    assert code == 0
    return json.loads(out)


def test_a_ledger_compared_with_itself_is_a_usage_error(api, ledger_target, tmp_path, capsys, monkeypatch):
    """Review 67: it agreed with itself, exit 0 (checkpoints already refused one key for both)."""
    assert audit(api, ledger_target, capsys, monkeypatch)[0] == 0
    again = ledger_target if not ledger_target.endswith(".db") else str(tmp_path / "." / "ledger.db")
    assert os.path.samefile(ledger_target, again) if ledger_target.endswith(".db") else True
    assert main(["ledger", "compare", ledger_target, again]) == 2
    assert "both are one ledger" in capsys.readouterr()[1]


def test_split_view_between_two_users(api, ledger_target, tmp_path, capsys, monkeypatch, request):
    api.state.hostile = {"split-view"}
    other = str(tmp_path / "bob.db") if ledger_target.endswith(".db") else \
        request.getfixturevalue("postgres_server").new_database()
    assert audit(api, ledger_target, capsys, monkeypatch)[0] == 0
    assert audit(api, other, capsys, monkeypatch, token=api.state.second_token)[0] == 0  # each view passes alone
    code = main(["ledger", "compare", ledger_target, other])
    out, err = capsys.readouterr()
    result = json.loads(out)
    middle = DIRECT.events[len(DIRECT.events) // 2].event.sequence_id
    assert code == 1 and not result["agree"]
    assert [(f["code"], f["conversation"], f["first_diverging_sequence_id"]) for f in result["findings"]] == \
        [("split_view", IDS[0], middle)]
    assert "split_view" in err
    # signed checkpoints exchanged instead of ledgers locate the same event (24 events: stride 1);
    # each participant signs with their own key (one key for both is refused: review 62)
    for name, led in (("a", ledger_target), ("b", other)):
        key = tmp_path / f"{name}.key"
        assert main(["keys", "new-receipt-key", "-o", str(key)]) == 0
        assert main(["ledger", "checkpoint", IDS[0], "--ledger", led, "--key", str(key),
                     "-o", str(tmp_path / f"{name}.json")]) == 0
    capsys.readouterr()
    code = main(["ledger", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                 "--public-key", str(tmp_path / "a.key") + ".pub", "--public-key", str(tmp_path / "b.key") + ".pub"])
    result = json.loads(capsys.readouterr()[0])
    assert code == 1 and result["findings"][0]["first_diverging_sequence_id"] == middle
    # the group conversation was shown the same to both: it agrees
    assert main(["ledger", "compare", ledger_target, other, "--conversation", IDS[1]]) == 0
    assert json.loads(capsys.readouterr()[0])["agree"]
    # the same view twice agrees
    assert main(["ledger", "compare", str(tmp_path / "a.json"), str(tmp_path / "a.json")]) == 0
    capsys.readouterr()


def test_identical_second_audit_and_verify_of_its_evidence(api, ledger_target, tmp_path, capsys, monkeypatch):
    ev = tmp_path / "ev"
    code, first, _ = audit(api, ledger_target, capsys, monkeypatch, "--save", str(ev))
    assert code == 0
    code, second, _ = audit(api, ledger_target, capsys, monkeypatch)
    assert code == 0 and not LEDGER_CODES & set(codes_of(second))
    assert main(["verify", str(ev), "--trust-evidence-keys", "--format", "json", "--ledger", ledger_target]) == 0
    third = json.loads(capsys.readouterr()[0])
    assert not LEDGER_CODES & set(codes_of(third))
    shown = _ledger_json(ledger_target, "show", capsys)
    assert shown["audits"] == 3 and {c["conversation"] for c in shown["conversations"]} == set(IDS)
    assert all(c["size"] == c["events"] for c in shown["conversations"])
    keys = _ledger_json(ledger_target, "keys", capsys, DIRECT.members[0].user_id)["keys"]
    # the evidence's saved key responses are recorded as "evidence": they vouch only for themselves
    assert {(k["version"], k["source"]) for k in keys} == {(DIRECT.members[0].version, "directory"),
                                                          (DIRECT.members[0].version, "evidence"),
                                                          (DIRECT.members[0].version, "events")}
    seen = {k["source"]: (k["first_seen"]["audit"], k["last_seen"]["audit"]) for k in keys}
    assert seen == {"directory": (1, 2), "evidence": (3, 3), "events": (1, 3)}
    history = _ledger_json(ledger_target, "history", capsys, IDS[0])["audits"]
    assert [h["id"] for h in history] == [1, 2, 3] and len({h["root"] for h in history}) == 1
    export = _ledger_json(ledger_target, "export", capsys)
    assert len(export["conversations"][0]["events"]) == len(DIRECT.events)
    ev0 = export["conversations"][0]["events"][0]
    assert set(ev0) >= {"sequence_id", "previous_sequence_id", "digest", "message_id", "sender_id", "kind",
                        "signature_version", "status", "first_audit", "last_audit"}


def test_key_planted_in_evidence_never_verifies_another_run(api, ledger_target, tmp_path, capsys, monkeypatch):
    """Review 30: an evidence directory vouches only for itself. A key row planted in its saved key
    responses (manifest digests updated) and replayed by ``verify DIR --ledger`` must not become a
    ledger key that fills a gap in a later run's trusted keyring."""
    ev = tmp_path / "ev"
    code, _, _ = audit(api, ledger_target, capsys, monkeypatch, "--save", str(ev))
    assert code == 0
    alice = DIRECT.members[0].user_id
    mallory = Identity.from_seed(alice, "999", "mallory")  # claims Alice's id, a version nobody served
    keys_file = ev / "keys" / f"{alice}.json"
    body = json.loads(keys_file.read_text())
    body["data"].append(mallory.keyring_row())
    keys_file.write_text(json.dumps(body))
    manifest = json.loads((ev / "manifest.json").read_text())
    for entry in manifest["keys"]:
        if entry["user_id"] == alice:
            entry["sha256"] = hashlib.sha256(keys_file.read_bytes()).hexdigest()
            entry["bytes"] = keys_file.stat().st_size
    (ev / "manifest.json").write_text(json.dumps(manifest))
    (ev / "manifest.journal").unlink(missing_ok=True)
    # its saved keys authenticate nothing (review 65): the run fails and is not recorded (review 66)
    assert main(["verify", str(ev), "--ledger", ledger_target, "--format", "json"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["findings"][0]["code"] == "evidence_keys_unauthenticated"
    assert "not recorded in the ledger" in err and _ledger_json(ledger_target, "show", capsys)["audits"] == 1
    # taken on trust, it is self-consistent and recorded
    assert main(["verify", str(ev), "--trust-evidence-keys", "--ledger", ledger_target, "--format", "json"]) == 0
    capsys.readouterr()
    rows = _ledger_json(ledger_target, "keys", capsys, alice)["keys"]
    assert {k["source"] for k in rows if k["version"] == "999"} == {"evidence"}

    forged = forge_event(mallory, "MessageCreateEvent", {"contents": b"\x01" * 40, "conversation_key_version": "1"},
                         conversation_id=f"{alice}:3333333333333333333", sequence_id="2080400093868990000",
                         created_at_msec="1784841000000")
    page = tmp_path / "forged.json"
    page.write_text(json.dumps({"data": [item_json(forged)], "meta": {"result_count": 1}}))
    keyring = tmp_path / "trusted.json"
    keyring.write_text((ev / "keyring.json").read_text())  # the auditor's real keys: no version 999
    assert main(["verify", str(page), "--keys", str(keyring), "--ledger", ledger_target, "--format", "json"]) == 1
    report = json.loads(capsys.readouterr()[0])
    assert report["conversations"][0]["events"][0]["signature"]["status"] == "unknown_key"
    assert "ledger" not in report["key_source"]


@pytest.mark.slow
def test_environment_variable_names_the_ledger(api, tmp_path, monkeypatch):
    ledger = tmp_path / "env.db"
    env = {k: v for k, v in os.environ.items() if k != "X_BEARER_TOKEN"}
    env.update(X_BEARER_TOKEN=api.state.token, XCHAT_VERIFY_LEDGER=str(ledger))
    proc = subprocess.run([sys.executable, "-m", "verifier", "audit", *IDS, "--base-url", api.url, "--quiet",
                           "--format", "json"], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "verifier", "ledger", "show"], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=60)
    assert proc.returncode == 0 and json.loads(proc.stdout)["audits"] == 1


def _ledger_of_one_event_conversations(tmp_path, count: int, runs: int = 1):
    """A ledger (``tmp_path / "l.db"``) that ``verify --ledger`` recorded ``runs`` times: ``count`` 1:1
    conversations ``1111:1000000``, ``1111:1000001``... of one signed message each."""
    from helpers import run_cli

    from verifier.testing.forge import Identity, forge_event, item_json, snowflake

    alice = Identity.from_seed("1111", "1", "alice")
    pages = tmp_path / "pages.jsonl"
    pages.write_text("".join(json.dumps({"data": [item_json(forge_event(
        alice, "MessageCreateEvent", {"contents": b"\x01" * 45, "conversation_key_version": "1001"},
        conversation_id=f"1111:{10 ** 6 + i}", sequence_id=snowflake(1_784_841_000_000 + i, i),
        created_at_msec=str(1_784_841_000_000 + i)))]}) + "\n" for i in range(count)))
    (tmp_path / "ring.json").write_text(json.dumps({"keys": [alice.keyring_entry()]}))
    ledger = tmp_path / "l.db"
    for _ in range(runs):
        assert run_cli(["verify", pages, "--keys", tmp_path / "ring.json", "--ledger", ledger]).returncode == 0
    return ledger


def test_export_and_compare_read_the_chains_once_not_once_per_conversation(tmp_path, monkeypatch):
    """Round 104: the chains table is keyed (audit, conversation), so the rows of one conversation
    were found by scanning the whole table, once per conversation: ledger export of 20,000
    conversations took 76 s, compare of two ledgers of 10,000 130 s. They are read once; the output
    is the same, and a damaged row still fails only what reads its conversation."""
    import shutil

    from helpers import run_cli

    from verifier.ledger.store import SqlStore

    ledger = _ledger_of_one_event_conversations(tmp_path, 60, runs=2)
    shutil.copy(ledger, tmp_path / "copy.db")
    scans = [0]
    real = SqlStore._query

    def counting(self, text, *args):
        scans[0] += "FROM chains" in text
        return real(self, text, *args)

    monkeypatch.setattr(SqlStore, "_query", counting)
    exported = run_cli(["ledger", "export", "--ledger", ledger])
    assert exported.returncode == 0 and scans[0] <= 1  # was one a conversation
    chains = {c["conversation"]: [x["audit"] for x in c["chains"]] for c in json.loads(exported.stdout)["conversations"]}
    assert len(chains) == 60 and set(map(tuple, chains.values())) == {(1, 2)}
    scans[0] = 0
    assert run_cli(["ledger", "compare", ledger, tmp_path / "copy.db"]).returncode == 0
    assert scans[0] <= 2
    import sqlite3
    with sqlite3.connect(tmp_path / "copy.db") as db:  # a hand edit: a chain row naming no audit
        db.execute("UPDATE chains SET audit = 99 WHERE conv = (SELECT id FROM conversations WHERE name = ?) "
                   "AND audit = 2", ("1111:1000007",))
    history = run_cli(["ledger", "history", "--ledger", tmp_path / "copy.db", "1111:1000003"])
    assert history.returncode == 0, history.stderr
    broken = run_cli(["ledger", "compare", ledger, tmp_path / "copy.db"])
    assert broken.returncode == 3 and "conversation '1111:1000007'" in broken.stderr, broken.stderr


def test_history_is_not_failed_by_another_conversations_unreadable_chain_row(tmp_path):
    """Review 107: round 104 read every conversation's chain rows in one pass, so a row SQLite cannot
    read (text that is not UTF-8, a hand edit) in another conversation made ``ledger history`` of a
    sound one an internal error, exit 3; the query by name it replaced never read that row."""
    import sqlite3

    from helpers import run_cli

    ledger = _ledger_of_one_event_conversations(tmp_path, 3)
    with sqlite3.connect(ledger) as db:
        db.execute("UPDATE chains SET tail = CAST(x'ff' AS TEXT) WHERE conv = (SELECT id FROM conversations "
                   "WHERE name = '1111:1000002')")
    history = run_cli(["ledger", "history", "--ledger", ledger, "1111:1000000"])
    assert history.returncode == 0, history.stderr
    assert [a["id"] for a in json.loads(history.stdout)["audits"]] == [1]
    # the conversation whose row it is: the ledger's one-line error, not "internal error" (review 107)
    damaged = run_cli(["ledger", "history", "--ledger", ledger, "1111:1000002"])
    assert damaged.returncode == 3 and "internal error" not in damaged.stderr, damaged.stderr
    assert len(damaged.stderr.strip().splitlines()) == 1, damaged.stderr
    assert "is damaged: table chains, audit 1, conversation '1111:1000002'" in damaged.stderr, damaged.stderr


def test_a_row_the_driver_cannot_read_is_a_damaged_row_named_and_listed(tmp_path):
    """Review 108: text SQLite cannot decode (not UTF-8, a hand edit) was the driver's one line, "Could
    not decode to UTF-8 column 'tail' with text '?'", naming neither table nor row; ``ledger check``,
    which lists every damaged row, stopped at it with that same line; and one such row in
    ledger_meta, of any name, made every command say the file "is not an xchat-verify ledger". It is
    read as its bytes, which the row checks name as they name a BLOB written there."""
    import sqlite3

    from helpers import run_cli

    ledger = _ledger_of_one_event_conversations(tmp_path, 3)
    db = sqlite3.connect(ledger)
    db.execute("INSERT INTO ledger_meta (name, value) VALUES ('note', CAST(x'ff' AS TEXT))")
    ok = run_cli(["ledger", "check", "--ledger", ledger])
    assert ok.returncode == 0 and json.loads(ok.stdout)["consistent"], ok.stderr
    db.execute("UPDATE chains SET tail = CAST(x'ff' AS TEXT) WHERE conv = (SELECT id FROM conversations "
               "WHERE name = '1111:1000002')")
    db.execute("UPDATE keys SET binding = CAST(x'fe' AS TEXT) WHERE source = 'keyring'")
    db.commit()
    db.close()
    history = run_cli(["ledger", "history", "--ledger", ledger, "1111:1000002"])
    assert history.returncode == 3 and len(history.stderr.strip().splitlines()) == 1, history.stderr
    assert "is damaged: table chains, audit 1, conversation '1111:1000002'" in history.stderr, history.stderr
    keys = run_cli(["ledger", "keys", "--ledger", ledger, "1111"])
    assert keys.returncode == 3 and "is damaged: table keys, user '1111'" in keys.stderr, keys.stderr
    check = run_cli(["ledger", "check", "--ledger", ledger])
    assert check.returncode == 3, check.stderr
    problems = json.loads(check.stdout)["problems"]
    assert len(problems) == 2, problems
    assert problems[0].startswith("table keys, user '1111' key version '1': a text column"), problems
    assert problems[1].startswith("table chains, audit 1, conversation '1111:1000002': a text column"), problems


def test_text_that_is_not_utf8_in_a_blob_column_is_a_damaged_row(tmp_path):
    """r115: read leniently as its bytes, SQLite TEXT that is not UTF-8 in a BLOB column (an event's
    digest, a key's key_digest: a hand edit, ``CAST(digest AS TEXT)``) passed as a sound digest:
    ``ledger check`` said consistent, exit 0 (a763e06: exit 3), and a later run's updates of those
    rows (``WHERE digest = ?``, a BLOB, which a TEXT value never equals) matched nothing, in
    silence: the event's row kept its old ``last_audit``, the key was recorded again as first seen
    then. Such a value is neither text nor a BLOB: the row is named as damaged."""
    import sqlite3

    from helpers import run_cli

    ledger = _ledger_of_one_event_conversations(tmp_path, 2)
    db = sqlite3.connect(ledger)
    # 32 bytes, as a digest's, and never UTF-8 (0xff)
    db.execute("UPDATE events SET digest = CAST(x'ff' || substr(digest, 2) AS TEXT)")
    db.execute("UPDATE keys SET key_digest = CAST(x'ff' || substr(key_digest, 2) AS TEXT)")
    db.commit()
    assert set(db.execute("SELECT typeof(digest), length(CAST(digest AS BLOB)) FROM events UNION "
                          "SELECT typeof(key_digest), length(CAST(key_digest AS BLOB)) FROM keys")) == {("text", 32)}
    db.close()
    check = run_cli(["ledger", "check", "--ledger", ledger])
    assert check.returncode == 3, check.stdout
    problems = json.loads(check.stdout)["problems"]
    assert any(p.startswith("table events, conversation '1111:1000000'") and "digest is not a 32-byte" in p
               for p in problems), problems
    assert any(p.startswith("table keys, user '1111'") and "key_digest is not a 32-byte" in p
               for p in problems), problems
    for command in (["show"], ["keys", "1111"]):
        shown = run_cli(["ledger", *command, "--ledger", ledger])
        assert shown.returncode == 3 and shown.stdout == "" and "is damaged: table" in shown.stderr, shown.stderr
    again = run_cli(["verify", tmp_path / "pages.jsonl", "--keys", tmp_path / "ring.json", "--ledger", ledger])
    assert again.returncode == 3 and "is damaged: table" in again.stderr, again.stderr


def test_an_integrity_problem_naming_an_index_that_is_not_utf8_is_listed(tmp_path):
    """r115: ``PRAGMA integrity_check`` quotes an index's name; one that is not UTF-8 (a hand edit)
    was read leniently as its bytes, which ``ledger check`` could not write as JSON: "internal
    error: TypeError" (a763e06: the driver's one line). It is listed, the byte escaped."""
    import sqlite3

    from helpers import run_cli

    ledger = _ledger_of_one_event_conversations(tmp_path, 2)
    db = sqlite3.connect(ledger, isolation_level=None)
    db.execute("CREATE INDEX zz ON conversations(name)")
    db.execute("PRAGMA writable_schema = ON")  # renamed, and out of step with what it holds
    db.execute("UPDATE sqlite_master SET name = CAST(? AS TEXT), sql = CAST(? AS TEXT) WHERE name = 'zz'",
               (b"z\xff", b'CREATE INDEX "z\xff" ON conversations(id, name)'))
    db.execute("PRAGMA writable_schema = OFF")
    db.close()
    check = run_cli(["ledger", "check", "--ledger", ledger])
    assert check.returncode == 3 and "internal error" not in check.stderr, check.stderr
    problems = json.loads(check.stdout)["problems"]
    assert any("index z\\xff" in p for p in problems), problems


def test_every_row_of_a_table_is_checked_once_around_a_row_the_driver_cannot_read(tmp_path):
    """r115: the scan read on with the same cursor after a row it could not decode, which Python 3.11's
    sqlite3 allows but 3.10's did not (its cursor, a row ahead, ended the iteration there: the rest
    of the table unchecked, "consistent"). The scan now runs again leniently and skips the rows it
    gave: a damaged row before the undecodable one is listed once, and one after it is listed."""
    import sqlite3

    from helpers import run_cli

    ledger = _ledger_of_one_event_conversations(tmp_path, 3)
    db = sqlite3.connect(ledger)
    convs = [row[0] for row in db.execute("SELECT id FROM conversations ORDER BY id")]
    db.execute("UPDATE events SET state = 7 WHERE conv = ?", (convs[0],))
    db.execute("UPDATE events SET kind = CAST(x'ff' AS TEXT) WHERE conv = ?", (convs[1],))
    db.execute("UPDATE events SET state = 9 WHERE conv = ?", (convs[2],))
    db.commit()
    db.close()
    check = run_cli(["ledger", "check", "--ledger", ledger])
    assert check.returncode == 3, check.stderr
    problems = [p for p in json.loads(check.stdout)["problems"] if p.startswith("table events")]
    assert len(problems) == 3, problems
    assert "state 7 is not 0, 1 or 2" in problems[0] and "a text column" in problems[1] and \
        "state 9 is not 0, 1 or 2" in problems[2], problems


class _PrefetchingCursor:
    """A cursor as Python 3.10's sqlite3 has it: ``execute`` already decodes the first row (and fails
    there when it cannot), iteration gives it, then the next."""

    def __init__(self, cursor):
        self._cursor, self._first = cursor, None

    def execute(self, *args):
        self._cursor.execute(*args)
        self._first = [self._cursor.fetchone()]
        return self

    def __iter__(self):
        first = self._first.pop() if self._first else None
        if first is not None:
            yield first
        yield from self._cursor

    def fetchall(self):
        return list(self)


class _PrefetchingConnection:
    def __init__(self, conn):
        self._conn = conn

    def cursor(self):
        return _PrefetchingCursor(self._conn.cursor())

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def __setattr__(self, name, value):
        if name == "_conn":
            object.__setattr__(self, name, value)
        else:
            setattr(self._conn, name, value)


def test_a_first_row_the_driver_cannot_read_is_listed_when_execute_decodes_it(tmp_path):
    """r116: before Python 3.11, sqlite3's ``execute`` decoded the query's first row, so text that is
    not UTF-8 there failed in ``execute``, where the lenient read again did not look: on Python 3.10
    ``ledger check`` of a ledger whose first event row held such text ended with the driver's
    message ("Could not decode to UTF-8 column 'kind'", exit 3), listing nothing; a later damaged
    row went unnamed. Such a row is listed, as on 3.11."""
    import sqlite3

    from verifier.ledger.sqlite import SQLiteStore

    ledger = _ledger_of_one_event_conversations(tmp_path, 3)
    db = sqlite3.connect(ledger)
    convs = [row[0] for row in db.execute("SELECT id FROM conversations ORDER BY id")]
    db.execute("UPDATE events SET kind = CAST(x'ff' AS TEXT) WHERE conv = ?", (convs[0],))
    db.execute("UPDATE events SET state = 9 WHERE conv = ?", (convs[2],))
    db.commit()
    db.close()
    store = SQLiteStore(ledger, create=False)
    try:
        store.conn = _PrefetchingConnection(store.conn)
        store.snapshot()
        problems = [p for p in store.check() if p.startswith("table events")]
    finally:
        store.close()
    assert len(problems) == 2, problems
    assert "a text column" in problems[0] and "state 9 is not 0, 1 or 2" in problems[1], problems
