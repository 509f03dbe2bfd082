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
    monkeypatch.setattr("verifier.ledger_cli.utc_now_iso", lambda: when)
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
