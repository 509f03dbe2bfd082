"""`ledger compare` beyond the range both views saw (attacker review 57): two participants served
the history in full must start at the same event (the tail rule, 1:1 conversations), and an audit
recorded well after the other ledger's audit saw head H must have H (the head rule, stale_view).
Real audits against the local API server, real SQLite ledgers; the recording clock is set per audit."""

from __future__ import annotations

import json

import pytest

from verifier.cli import main
from verifier.testing.server import FakeXApi, default_conversations

CONVS = default_conversations(24, seed="ledger")
IDS = [c.conversation_id for c in CONVS][:2]  # the 1:1 conversation and a group
DIRECT = CONVS[0]


@pytest.fixture()
def api():
    with FakeXApi(CONVS[:2], second_token="second-token-b0b") as server:
        yield server


def audit(api, ledger, capsys, monkeypatch, when, *, token=None, hostile=()):
    api.state.hostile = set(hostile)
    monkeypatch.setenv("X_BEARER_TOKEN", token or api.state.token)
    monkeypatch.delenv("XCHAT_VERIFY_LEDGER", raising=False)
    monkeypatch.setattr("verifier.ledger_cli.utc_now_iso", lambda: when)  # when recorded
    monkeypatch.setattr("verifier.fetch.utc_now_iso", lambda: when)  # when each page was fetched
    code = main(["audit", *IDS, "--base-url", api.url, "--max-results", "10", "--backoff-base", "0.01",
                 "--timeout", "5", "--quiet", "--format", "json", "--ledger", str(ledger)])
    capsys.readouterr()
    return code


def compare(capsys, a, b, *extra):
    code = main(["ledger", "compare", str(a), str(b), *extra])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_split_view_at_the_tail_of_a_history_served_in_full(api, tmp_path, capsys, monkeypatch):
    """B is served the history without its 3 oldest events; both fetches reach the end: split_view
    at the oldest event only A has, either way round. Before: agree, exit 0."""
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    assert audit(api, a, capsys, monkeypatch, "2030-01-01T00:00:00.000Z") == 0
    assert audit(api, b, capsys, monkeypatch, "2030-01-01T00:00:01.000Z", token=api.state.second_token,
                 hostile={"drop-oldest"}) == 0  # each view passes alone
    oldest = DIRECT.events[0].event.sequence_id
    for first, second in ((a, b), (b, a)):
        code, result, err = compare(capsys, first, second)
        assert code == 1 and not result["agree"] and result["complete"]
        assert [(f["code"], f["conversation"], f["first_diverging_sequence_id"], f["last_agreeing_sequence_id"])
                for f in result["findings"]] == [("split_view", IDS[0], oldest, None)]
        assert result["ranges"][0]["from_sequence_id"] == oldest and result["ranges"][0]["from_start"]
        assert "split_view" in err and "must start at the same event" in err
    # the group conversation was served alike: it agrees
    assert compare(capsys, a, b, "--conversation", IDS[1])[0] == 0


def test_tail_rule_needs_both_latest_audits_fetched_to_their_end():
    """A fetch that stopped early (--max-pages) may simply not have reached the oldest events, and a
    group member who joined later may be served less: the range then stays the one both saw."""
    from verifier.ledger import ChainRow
    from verifier.ledger_cli import _served_in_full

    def chain(audit, complete, size=5, conv="1:2"):
        return ChainRow(audit, conv, "1", "5", size, "00" * 32, complete)
    assert _served_in_full("1:2", ([chain(1, True)], [chain(1, True)]))
    assert not _served_in_full("1:2", ([chain(1, True)], [chain(1, True), chain(2, False)]))  # latest partial
    assert _served_in_full("1:2", ([chain(1, True)], [chain(1, False), chain(2, True)]))
    assert not _served_in_full("1:2", ([chain(1, True)], [chain(1, True, size=0)]))
    assert not _served_in_full("g12", ([chain(1, True, conv="g12")], [chain(1, True, conv="g12")]))
    assert not _served_in_full("1:2", ([chain(1, True)], []))


def test_stale_view_at_the_head_after_the_other_audit_saw_it(api, tmp_path, capsys, monkeypatch):
    """B's audit, ten minutes after A's saw the newest event, is served the history without its 5
    newest events: stale_view (error, exit 1), naming the first event B lacks, either way round.
    Before: agree, exit 0. Within the tolerance it is not judged."""
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    assert audit(api, a, capsys, monkeypatch, "2030-01-01T00:00:00.000Z") == 0
    assert audit(api, b, capsys, monkeypatch, "2030-01-01T00:10:00.000Z", token=api.state.second_token,
                 hostile={"truncate"}) == 0
    head = DIRECT.events[-1].event.sequence_id
    first_missing = DIRECT.events[-5].event.sequence_id
    for first, second, seen, stale in ((a, b, str(a), str(b)), (b, a, str(a), str(b))):
        code, result, err = compare(capsys, first, second)
        assert code == 1 and not result["agree"], result
        assert [(f["code"], f["severity"], f["conversation"], f["missing_sequence_id"],
                 f["first_diverging_sequence_id"]) for f in result["findings"]] == \
            [("stale_view", "error", IDS[0], head, first_missing)]
        f = result["findings"][0]
        assert f["seen"]["ledger"] == seen and f["stale"]["ledger"] == stale
        assert f["last_agreeing_sequence_id"] == DIRECT.events[-6].event.sequence_id
        assert "stale_view" in err
    assert compare(capsys, a, b, "--tolerance", "900")[0] == 0  # ten minutes are within 15
    for bad in ("nan", "-1", "inf"):
        assert main(["ledger", "compare", str(a), str(b), "--tolerance", bad]) == 2
        assert "--tolerance" in capsys.readouterr().err


def test_honest_views_agree_when_one_participant_audited_earlier(api, tmp_path, capsys, monkeypatch):
    """B audits first, before the newest events exist; A audits an hour later and sees them: same
    history, not a finding (B earlier than A is no stale view), with both fetched in full."""
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    assert audit(api, b, capsys, monkeypatch, "2030-01-01T00:00:00.000Z", token=api.state.second_token,
                 hostile={"truncate"}) == 0
    assert audit(api, a, capsys, monkeypatch, "2030-01-01T01:00:00.000Z") == 0
    for first, second in ((a, b), (b, a)):
        code, result, _ = compare(capsys, first, second)
        assert code == 0 and result["agree"] and result["complete"] and not result["findings"], result
        assert result["ranges"][0]["from_start"]
    # B audits again later and catches up: still the same history
    assert audit(api, b, capsys, monkeypatch, "2030-01-01T02:00:00.000Z", token=api.state.second_token) == 0
    assert compare(capsys, a, b)[0] == 0


def test_rules_as_functions():
    from verifier.ledger.transcript import compare_entries, is_direct, stale_view
    digest = bytes(32)
    full = [(str(100 + i), digest) for i in range(10)]
    assert compare_entries("1:2", full, full[3:]) is None  # the range both saw
    d = compare_entries("1:2", full, full[3:], from_start=True)
    assert (d.first_seq, d.after_seq) == ("100", None) and "only in the first view" in d.detail
    assert compare_entries("1:2", full, full, from_start=True) is None
    assert is_direct("1:2") and not is_direct("g123") and not is_direct("1:x") and not is_direct("12")
    saw = [(1, "2030-01-01T00:00:00.000Z", "109")]
    assert stale_view("1:2", saw, [(1, "2030-01-01T00:04:59.000Z", "105")]) is None  # within 300 s
    s = stale_view("1:2", saw, [(1, "2030-01-01T00:05:01.000Z", "105")])
    assert (s.head, s.stale_head, s.audit) == ("109", "105", 1)
    assert stale_view("1:2", saw, [(1, "2030-01-01T00:05:01.000Z", "109")]) is None
    assert stale_view("1:2", saw, [(1, "2030-01-01T00:05:01.000Z", None)]).stale_head is None  # empty
    assert stale_view("1:2", saw, [(1, "2029-12-31T23:00:00.000Z", "105")]) is None  # earlier: not judged


# ------------------------------------------------------------------------------------- when a head was fetched
# The head rule times the side judged stale by when its pages were fetched (audits.fetched, schema 3),
# not by when the run was recorded (round 93: `verify` of evidence saved before the other ledger's
# audit, or an `audit --resume` of it, recorded after that audit, was a stale view that never happened).
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def ledgers(request, tmp_path):
    """Two participants' ledgers (A's, B's) of one backend."""
    if request.param == "sqlite":
        return str(tmp_path / "a.db"), str(tmp_path / "b.db")
    server = request.getfixturevalue("postgres_server")
    return server.new_database(), server.new_database()


def cli(capsys, monkeypatch, when, *args, token=None):
    """One run whose pages are fetched, and whose ledger record is made, at ``when``."""
    if token is not None:
        monkeypatch.setenv("X_BEARER_TOKEN", token)
    monkeypatch.delenv("XCHAT_VERIFY_LEDGER", raising=False)
    monkeypatch.setattr("verifier.ledger_cli.utc_now_iso", lambda: when)
    monkeypatch.setattr("verifier.fetch.utc_now_iso", lambda: when)
    code = main(list(args))
    capsys.readouterr()
    return code


def save(api, capsys, monkeypatch, when, evidence, *extra, hostile=()):
    """B's audit into an evidence directory (no ledger), served the history as ``hostile`` says."""
    api.state.hostile = set(hostile)
    return cli(capsys, monkeypatch, when, "audit", *IDS, "--base-url", api.url, "--max-results", "10",
               "--backoff-base", "0.01", "--timeout", "5", "--quiet", "--format", "json", "--save", str(evidence),
               *extra, token=api.state.second_token)


def test_evidence_fetched_before_the_other_audit_and_verified_after_it_is_no_stale_view(
        api, tmp_path, capsys, monkeypatch, ledgers):
    """B saves an audit at 00:00, when the history lacks its 5 newest events; A audits at 00:10 and sees
    them; B re-verifies the evidence offline at 00:20 into its ledger (docs/ledger.md: "offline runs
    are recorded too"). B's head was fetched before A's audit: the views agree. Before: stale_view,
    exit 1 (B's head taken as fetched at 00:20)."""
    a, b = ledgers
    evidence = tmp_path / "ev-b"
    assert save(api, capsys, monkeypatch, "2030-01-01T00:00:00.000Z", evidence, hostile={"truncate"}) == 0
    assert audit(api, a, capsys, monkeypatch, "2030-01-01T00:10:00.000Z") == 0
    assert cli(capsys, monkeypatch, "2030-01-01T00:20:00.000Z", "verify", str(evidence), "--trust-evidence-keys",
               "--ledger", b, "--format", "json") == 0
    for first, second in ((a, b), (b, a)):
        code, result, err = compare(capsys, first, second)
        assert code == 0 and result["agree"] and not result["findings"], (result, err)
    assert main(["ledger", "export", "--ledger", b]) == 0
    shown = json.loads(capsys.readouterr().out)["audits"]
    assert [(r["command"], r["time"], r["fetched"]) for r in shown] == \
        [("verify", "2030-01-01T00:20:00.000Z", "2030-01-01T00:00:00.000Z")]


def test_a_resumed_audit_is_timed_by_its_replayed_pages(api, tmp_path, capsys, monkeypatch, ledgers):
    """B's audit stops after one page at 00:00 (its head page saved); A audits at 00:10; B resumes at
    00:20 into its ledger: the replayed head was fetched at 00:00, before A's audit. Before: stale_view."""
    a, b = ledgers
    evidence = tmp_path / "ev-b"
    assert save(api, capsys, monkeypatch, "2030-01-01T00:00:00.000Z", evidence, "--max-pages", "1",
                hostile={"truncate"}) != 0  # stopped early: incomplete
    assert audit(api, a, capsys, monkeypatch, "2030-01-01T00:10:00.000Z") == 0
    assert save(api, capsys, monkeypatch, "2030-01-01T00:20:00.000Z", evidence, "--resume", "--ledger", b,
                hostile={"truncate"}) == 0
    code, result, err = compare(capsys, a, b)
    assert code == 0 and result["agree"] and not result["findings"], (result, err)
    manifest = json.loads((evidence / "manifest.json").read_text())
    times = {p["fetched_at"] for c in manifest["conversations"] for p in c["pages"]}
    assert times == {"2030-01-01T00:00:00.000Z", "2030-01-01T00:20:00.000Z"}  # replayed and fetched now


def _stale_evidence_verified(api, tmp_path, capsys, monkeypatch, ledgers, verified_at: str) -> tuple[str, str]:
    """A audits at 00:00 and sees the head; B's evidence, fetched at 00:10 without the 5 newest events,
    is verified into B's ledger at ``verified_at``. The two ledgers."""
    a, b = ledgers
    evidence = tmp_path / "ev-b"
    assert audit(api, a, capsys, monkeypatch, "2030-01-01T00:00:00.000Z") == 0
    assert save(api, capsys, monkeypatch, "2030-01-01T00:10:00.000Z", evidence, hostile={"truncate"}) == 0
    assert cli(capsys, monkeypatch, verified_at, "verify", str(evidence), "--trust-evidence-keys",
               "--ledger", b, "--format", "json") == 0
    return a, b


def test_evidence_fetched_after_the_other_audit_saw_the_head_is_still_a_stale_view(
        api, tmp_path, capsys, monkeypatch, ledgers):
    """A audits at 00:00 and sees the head; B's evidence is fetched at 00:10 without the 5 newest events
    and verified at 00:20: B's view is stale, timed by its fetch (00:10), and a live audit of B's at
    00:30 served the same is too."""
    a, b = _stale_evidence_verified(api, tmp_path, capsys, monkeypatch, ledgers, "2030-01-01T00:20:00.000Z")
    head, first_missing = DIRECT.events[-1].event.sequence_id, DIRECT.events[-5].event.sequence_id
    for first, second in ((a, b), (b, a)):
        code, result, err = compare(capsys, first, second)
        assert code == 1 and [(f["code"], f["missing_sequence_id"], f["first_diverging_sequence_id"])
                              for f in result["findings"]] == [("stale_view", head, first_missing)], result
        stale = result["findings"][0]["stale"]
        assert (stale["audit"], stale["time"], stale["fetched"]) == \
            (1, "2030-01-01T00:20:00.000Z", "2030-01-01T00:10:00.000Z")
        assert "audit 1 (pages fetched from 2030-01-01T00:10:00.000Z, recorded at 2030-01-01T00:20:00.000Z) " \
            "fetched the history to its end" in err
    # within the tolerance of the fetch (10 min), not of the record (20 min): not judged
    assert compare(capsys, a, b, "--tolerance", "900")[0] == 0
    # B's live audit, served the same history later: stale too
    assert audit(api, b, capsys, monkeypatch, "2030-01-01T00:30:00.000Z", token=api.state.second_token,
                 hostile={"truncate"}) == 0
    code, result, _ = compare(capsys, a, b, "--tolerance", "900")
    assert code == 1 and [f["stale"]["audit"] for f in result["findings"]] == [2]


def test_when_the_head_rule_takes_a_fetch_to_have_been():
    """The earliest page's fetch when known (never later than the record); unknown: the record of an
    `audit` (a row from before schema 3), else not judged (page files)."""
    from verifier.ledger.store import AuditRow
    from verifier.ledger_cli import _fetch_time

    def row(command, fetched):
        return AuditRow(1, "2030-01-01T01:00:00.000Z", "t", command, [], "pass", "0" * 64, 1, {}, fetched)
    assert _fetch_time(row("verify", "2030-01-01T00:00:00.000Z")) == "2030-01-01T00:00:00.000Z"
    assert _fetch_time(row("audit", "2030-01-01T00:59:00.000Z")) == "2030-01-01T00:59:00.000Z"
    assert _fetch_time(row("verify", "2030-01-01T02:00:00.000Z")) == "2030-01-01T01:00:00.000Z"  # after the record
    assert _fetch_time(row("audit", None)) == "2030-01-01T01:00:00.000Z"
    assert _fetch_time(row("verify", None)) is None and _fetch_time(row("archive verify", None)) is None


def test_earliest_fetch_of_the_pages():
    from verifier.clock import earliest_utc
    assert earliest_utc(["2030-01-01T00:10:00.000Z", "2030-01-01T02:05:00+02:00", "2030-01-01T00:00:00.1234Z"]) \
        == "2030-01-01T00:00:00.123Z"  # cut, never later
    assert earliest_utc(["2030-01-01T00:10:00.000Z", "2030-01-01T01:00:00+02:00"]) == "2029-12-31T23:00:00.000Z"
    assert earliest_utc([]) is None
    for unreadable in ("", "yesterday", "2030-01-01T00:00:00", None, 5):  # an unknown one could be the earliest
        assert earliest_utc(["2030-01-01T00:10:00.000Z", unreadable]) is None


def test_page_files_recorded_later_are_not_judged_stale(api, tmp_path, capsys, monkeypatch):
    """Nothing says when page files were fetched: a `verify` of them is not taken as fetched when it
    was recorded (it could be an old export), so it is not judged stale; an `audit` is. Nor is it left
    out in silence: had they been fetched when recorded, it would be a stale view, so the views are
    not said to agree (exit 3, not compared in full; review 94: exit 0, agree)."""
    from helpers import write_history
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    assert audit(api, a, capsys, monkeypatch, "2030-01-01T00:00:00.000Z") == 0
    old = type(DIRECT)(DIRECT.conversation_id, DIRECT.members, DIRECT.events[:-5], DIRECT.conversation_keys)
    (tmp_path / "pages").mkdir()
    files, ring = write_history(tmp_path / "pages", old, 10)
    assert cli(capsys, monkeypatch, "2030-01-01T00:20:00.000Z", "verify", *files, "--keys", ring,
               "--ledger", str(b), "--format", "json") == 0
    assert main(["ledger", "history", IDS[0], "--ledger", str(b)]) == 0
    [seen] = json.loads(capsys.readouterr().out)["audits"]
    assert seen["complete"] and seen["fetched"] is None and seen["head"] == old.events[-1].event.sequence_id
    code, result, err = compare(capsys, a, b, "--conversation", IDS[0])
    assert code == 3 and not result["findings"] and not result["agree"] and not result["complete"], (result, err)
    [note] = result["notes"]
    assert "the head rule cannot judge the second ledger's audit 1" in note and "nothing says when" in note
    assert f"missing sequence id {DIRECT.events[-1].event.sequence_id}" in note and "not compared in full" in err
    # within the tolerance of its record, nothing to say: they agree
    code, result, err = compare(capsys, a, b, "--conversation", IDS[0], "--tolerance", "1500")
    assert code == 0 and result["agree"] and not result["notes"], (result, err)


def test_a_verify_of_evidence_recorded_before_schema_3_is_never_said_to_agree(
        api, tmp_path, capsys, monkeypatch, ledgers):
    """Review 94: a `verify DIR` row of a ledger of schema 2 has no fetch time: the head rule leaves it
    out, and `compare` of two such ledgers said agree (exit 0) where the previous release, timing it by
    its record, found the stale view (exit 1). It is named now, and the comparison is incomplete."""
    from verifier.ledger import open_ledger
    a, b = _stale_evidence_verified(api, tmp_path, capsys, monkeypatch, ledgers, "2030-01-01T00:10:00.000Z")
    store = open_ledger(b, create=False)
    with store.transaction():  # as the migration from schema 2 leaves the rows: no fetch time
        store._run("UPDATE audits SET fetched = NULL")
        store._run("UPDATE chains SET fetched = NULL")
    store.close()
    for first, second, which in ((a, b, "second"), (b, a, "first")):
        code, result, err = compare(capsys, first, second)
        assert code == 3 and not result["agree"] and not result["complete"] and not result["findings"], result
        assert any(f"cannot judge the {which} ledger's audit 1" in n for n in result["notes"]), result


def test_a_schema_2_ledger_migrates_and_its_audits_are_timed_as_before(api, tmp_path, capsys, monkeypatch,
                                                                      ledger_target):
    """A version-2 ledger (no audits.fetched) is migrated in place to 3: its rows kept, `fetched`
    unknown (NULL, which `ledger check` accepts); its audits are judged by when they were recorded, as
    before, so a stale view it recorded is still caught; later runs record when they fetched."""
    from verifier.ledger import open_ledger, schema
    a = tmp_path / "a.db"
    assert audit(api, a, capsys, monkeypatch, "2030-01-01T00:00:00.000Z") == 0
    assert audit(api, ledger_target, capsys, monkeypatch, "2030-01-01T00:10:00.000Z", token=api.state.second_token,
                 hostile={"truncate"}) == 0
    store = open_ledger(ledger_target)
    with store.transaction():  # back to version 2: drop what version 3 added
        store._run("ALTER TABLE audits DROP COLUMN fetched")
        store._run("ALTER TABLE chains DROP COLUMN fetched")
        store._run("UPDATE ledger_meta SET value = '2' WHERE name = 'schema_version'")
    store.close()
    store = open_ledger(ledger_target, create=False)
    try:
        assert store.schema_version() == schema.SCHEMA_VERSION == 3
        assert [(r.id, r.time, r.fetched) for r in store.audits()] == [(1, "2030-01-01T00:10:00.000Z", None)]
        assert all(c.fetched is None for c in store.chains()) and store.check() == []
    finally:
        store.close()
    code, result, _ = compare(capsys, a, ledger_target)
    assert code == 1 and [(f["code"], f["stale"]["time"], f["stale"]["fetched"]) for f in result["findings"]] == \
        [("stale_view", "2030-01-01T00:10:00.000Z", None)]
    for command in (["show"], ["export"], ["history", IDS[0]], ["check"]):
        assert main(["ledger", *command, "--ledger", ledger_target]) == 0, command
    capsys.readouterr()
    assert audit(api, ledger_target, capsys, monkeypatch, "2030-01-01T00:20:00.000Z",
                 token=api.state.second_token) == 0
    store = open_ledger(ledger_target, create=False)
    try:
        assert [r.fetched for r in store.audits()] == [None, "2030-01-01T00:20:00.000Z"]
        assert {(c.audit, c.fetched) for c in store.chains()} == {(1, None), (2, "2030-01-01T00:20:00.000Z")}
    finally:
        store.close()


@pytest.mark.parametrize("value", ["yesterday", "2030-01-01T00:00:00", "", "2030-13-01T00:00:00Z"])
@pytest.mark.parametrize("table", ["audits", "chains"])
def test_a_damaged_fetch_time_is_a_damaged_row(api, capsys, monkeypatch, ledger_target, value, table):
    """`ledger check` names an audits.fetched that is not an ISO-8601 time with its offset (a hand
    edit), as every other damaged column; a command that reads the audits refuses the ledger (exit 3)."""
    from verifier.ledger import open_ledger
    assert audit(api, ledger_target, capsys, monkeypatch, "2030-01-01T00:00:00.000Z") == 0
    store = open_ledger(ledger_target, create=False)
    with store.transaction():
        store._run(f"UPDATE {table} SET fetched = ?" + (" WHERE conv = 1" if table == "chains" else ""), (value,))
    store.close()
    assert main(["ledger", "check", "--ledger", ledger_target]) == 3
    problems = json.loads(capsys.readouterr().out)["problems"]
    where = "audit 1" if table == "audits" else f"audit 1, conversation {IDS[0]!r}"
    assert problems == [f"table {table}, {where}: fetched is neither empty nor an ISO-8601 time with its UTC offset"]
    assert main(["ledger", "history", IDS[0], "--ledger", ledger_target]) == 3
    assert f"table {table}, " in capsys.readouterr().err


def test_a_conversation_fetched_late_in_a_long_audit_is_timed_by_its_own_pages(api, tmp_path, capsys, monkeypatch):
    """B's audit fetches the group from 00:10 and the 1:1 conversation from 00:30 (one at a time, each
    response 10 minutes after the last); A's audit, recorded at 00:20, saw the 1:1 head B lacks. B's
    1:1 head came 10 minutes after A saw a newer one: stale_view, timed by that conversation's own
    pages (chains.fetched), not by the run's first page (00:10, before A's audit: not judged)."""
    import itertools

    from verifier.ledger import open_ledger
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    monkeypatch.setenv("X_BEARER_TOKEN", api.state.second_token)
    monkeypatch.delenv("XCHAT_VERIFY_LEDGER", raising=False)
    minutes = itertools.count(0, 10)
    monkeypatch.setattr("verifier.fetch.utc_now_iso",
                        lambda: (lambda m: f"2030-01-01T{m // 60:02d}:{m % 60:02d}:00.000Z")(next(minutes)))
    monkeypatch.setattr("verifier.ledger_cli.utc_now_iso", lambda: "2030-01-01T01:30:00.000Z")
    api.state.hostile = {"truncate"}
    assert main(["audit", IDS[1], IDS[0], "--base-url", api.url, "--max-results", "10", "--quiet", "--format", "json",
                 "--concurrency", "1", "--ledger", str(b)]) == 0
    capsys.readouterr()
    assert audit(api, a, capsys, monkeypatch, "2030-01-01T00:20:00.000Z") == 0
    store = open_ledger(str(b), create=False)
    try:
        [run] = store.audits()
        assert run.fetched == "2030-01-01T00:10:00.000Z"
        assert {c.conversation: c.fetched for c in store.chains()} == \
            {IDS[1]: "2030-01-01T00:10:00.000Z", IDS[0]: "2030-01-01T00:30:00.000Z"}
    finally:
        store.close()
    code, result, err = compare(capsys, a, b)
    assert code == 1 and [(f["code"], f["conversation"], f["stale"]["fetched"]) for f in result["findings"]] == \
        [("stale_view", IDS[0], "2030-01-01T00:30:00.000Z")], result
    assert "pages fetched from 2030-01-01T00:30:00.000Z, recorded at 2030-01-01T01:30:00.000Z" in err


def test_fetch_times_noted_in_any_id_form_time_the_report_s_conversation(tmp_path, capsys):
    """Review 94: `Verification.note_fetch` and `record_audit(fetched_conversations=)` kept a
    conversation as named ("B-A"), so the chain row of the report's "A:B" took the run's earliest page
    (another conversation's, fetched before the other ledger saw the head) and the stale view was not
    reported; one id given alone was taken a character at a time."""
    from helpers import REPO

    from verifier import Keyring, Verification
    from verifier.errors import UsageError
    from verifier.ledger import open_ledger, record_audit

    pages = [p.read_bytes() for p in sorted((REPO / "examples" / "conversation").glob("*.json"))]
    keyring = Keyring.from_json((REPO / "examples" / "keyring.json").read_text())
    cid = "1215441834412953600:1843439638876491776"

    def record(ledger, bodies, time, **fetch):
        v = Verification()
        for body in bodies:
            v.add_page(body)
        if fetch:
            v.note_fetch([fetch["named"]], [fetch["at"]])
        report = v.finish(keyring)
        store = open_ledger(str(ledger))
        try:
            record_audit(store, report, v.event_facts(), v.keyring, command="audit", inputs=[cid],
                         key_source="keyring", time=time, fetched=fetch.get("run"),
                         fetched_conversations=v.fetched_conversations())
            return [c.fetched for c in store.chains(cid)]
        finally:
            store.close()

    record(tmp_path / "a.db", pages, "2030-01-01T00:04:00.000Z")  # A sees the head at 00:04
    for named in (cid, "1843439638876491776-1215441834412953600", "1843439638876491776:1215441834412953600"):
        b = tmp_path / f"b{len(list(tmp_path.iterdir()))}.db"  # B: this conversation fetched at 00:10, newest page gone
        assert record(b, pages[1:], "2030-01-01T00:30:00.000Z", named=named, at="2030-01-01T00:10:00.000Z",
                      run="2030-01-01T00:00:00.000Z") == ["2030-01-01T00:10:00.000Z"], named
        code, result, _ = compare(capsys, tmp_path / "a.db", b)
        assert code == 1 and [f["code"] for f in result["findings"]] == ["stale_view"], (named, result)
    one = Verification()
    for value, times in ((cid, ["2030-01-01T00:10:00.000Z"]), ([cid], "2030-01-01T00:10:00.000Z")):
        with pytest.raises(UsageError, match="note_fetch takes a sequence"):
            one.note_fetch(value, times)
    # the mapping given to record_audit directly: in any form too, two forms of one id by the earlier
    from verifier.ledger.record import _by_report_id
    assert _by_report_id({"2-1": "2030-01-01T00:10:00.000Z", "1:2": "2030-01-01T00:05:00+00:00", "g7": None}) == \
        {"1:2": "2030-01-01T00:05:00.000Z", "g7": None}
