"""What a signed delete covers in the ledger (docs/ledger.md, "Deletes"): pure rules and the facts the
engine gives the ledger. The end-to-end side is tests/test_ledger_e2e.py (server modes clear,
clear-nothing, clear-stranger)."""

from __future__ import annotations

import json

import pytest

from verifier import Keyring
from verifier.engine import ClearOptions, Verification
from verifier.ledger.record import _Clear, snowflake_msec
from verifier.testing.forge import Identity, build_conversation, forge_event, snowflake

T0 = 1_784_841_000_000


def test_snowflake_time_of_a_sequence_id():
    assert snowflake_msec(snowflake(T0, 17)) == T0
    assert snowflake_msec("not-a-number") is None and snowflake_msec("9" * 25) is None
    assert snowflake_msec("١٢٣") is None  # non-ASCII digits are not a sequence id


@pytest.mark.parametrize("until,seq,covered", [
    (None, snowflake(T0, 1), True),                 # clear all: everything before the delete
    (None, snowflake(T0 + 60_000, 1), False),       # not at or after the delete's own position
    (T0, snowflake(T0, 1), True),                   # created at the signed sort_order_msec
    (T0 - 1, snowflake(T0, 1), False),              # created after it
    (1, snowflake(T0, 1), False),                   # sort_order_msec 1 covers nothing real
    (T0, "abc", False),                             # not a sequence id: not covered
])
def test_a_clear_covers_only_what_it_signs(until, seq, covered):
    clear = _Clear(int(snowflake(T0 + 30_000, 9)), until)
    assert clear.covers(seq) is covered


def _facts_of(extra_sender: Identity | None, options: dict, members=None):
    conv = build_conversation(6, seed="judging", members=members, realistic_crypto=False)
    last = conv.events[-1].event
    signer = extra_sender or conv.members[0]
    ms = int(last.created_at_msec) + 1000
    delete = forge_event(signer, "ConversationDeleteEvent", {"conversation_id": last.conversation_id,
                                                            "options": options},
                         conversation_id=last.conversation_id, sequence_id=snowflake(ms, 99),
                         previous_sequence_id=last.sequence_id, created_at_msec=str(ms))
    conv.events.append(delete)
    ring = conv.keyring()
    if extra_sender is not None:
        ring["keys"].append(extra_sender.keyring_entry())
    v = Verification(workers=1)
    for page in conv.pages(100):
        v.add_page(page)
    report = v.finish(Keyring.from_json(json.dumps(ring)))
    index = next(e.index for c in report.conversations for e in c.events
                 if e.event_type == "ConversationDeleteEvent")
    assert next(e for c in report.conversations for e in c.events if e.index == index).signature.status == "valid"
    return v.event_facts()[index], v


def test_conversation_delete_facts_carry_its_signed_options_and_membership():
    fact, v = _facts_of(None, {"clear_all_messages": False, "sort_order_msec": 1})
    assert fact.clear == ClearOptions(False, 1) and fact.member is True
    assert v.ended_conversations()  # one page without next_token: fetched to its end
    fact, _ = _facts_of(None, {})
    assert fact.clear == ClearOptions(None, None)
    stranger = Identity.from_seed("4242424242", "1", "stranger")
    fact, _ = _facts_of(stranger, {"clear_all_messages": True})
    assert fact.clear == ClearOptions(True, None) and fact.member is False


def test_group_delete_without_proven_membership_is_unknown():
    members = [Identity.from_seed(str(n), "1", f"m{n}") for n in (1111, 2222, 3333)]
    fact, _ = _facts_of(None, {"clear_all_messages": True}, members=members)
    assert fact.member is None  # no proven GroupCreate/MemberAdd in the window: it covers nothing


# ------------------------------------------------------------------ an old key served again (review 43)
def _message(n: int, sender: Identity, prev: str | None):
    body = {"contents": f"m{n}".encode().ljust(45, b"\x01"), "conversation_key_version": "1001"}
    return forge_event(sender, "MessageCreateEvent", body, conversation_id="1111:2222", sequence_id=snowflake(T0 + n * 1000, n),
                       previous_sequence_id=prev, created_at_msec=str(T0 + n * 1000))


@pytest.mark.parametrize("served_as", ["1", "01", "0000000000000000001", "3"])
def test_a_retired_key_served_again_under_any_version_is_a_rollback(served_as, tmp_path):
    """Audit 1: the directory serves user 1111's old key K1 as version 1 and K2 as version 2. Audit 2
    serves only K1, under another version string, and a new event is signed with it: as 1 or 01 that
    was key_version_rollback; as a 19-character 1 or as a fresh 3 it passed with key_added."""
    from helpers import run_cli

    from verifier.testing.forge import item_json
    old_key, current = Identity.from_seed("1111", "1", "alice-old"), Identity.from_seed("1111", "2", "alice-current")
    bob = Identity.from_seed("2222", "7", "bob")
    history, prev = [], None
    for n in range(1, 5):
        history.append(_message(n, current if n % 2 else bob, prev))
        prev = history[-1].event.sequence_id
    ledger = tmp_path / "l.db"

    def run(events, *identities) -> dict:
        pages, ring = tmp_path / "h.json", tmp_path / "ring.json"
        pages.write_text(json.dumps({"data": [item_json(e) for e in reversed(events)]}))
        ring.write_text(json.dumps({"keys": [i.keyring_entry() for i in identities]}))
        result = run_cli(["verify", str(pages), "--keys", str(ring), "--ledger", str(ledger), "--format", "json", "-o", "-"])
        return json.loads(result.stdout)

    assert run(history, old_key, current, bob)["verdict"] == "pass"
    again = Identity.from_seed("1111", served_as, "alice-old")  # the old key material, under served_as
    report = run([*history, _message(5, again, prev)], again, bob)
    rollbacks = [f["message"] for f in report["findings"] if f["code"] == "key_version_rollback"]
    assert report["verdict"] == "fail" and rollbacks, report["findings"]
    if served_as == "3":  # newer than its replacement: the old key as the newest (lower ones: by number)
        assert any("was served as version 1 and then replaced by version 2: an old key served again as the newest"
                   in m for m in rollbacks)
    else:
        assert any("newest key version served is 1, lower than version 2" in m for m in rollbacks), rollbacks


def _audits(tmp_path, *keyrings) -> list[dict]:
    """Reports of one history verified into one ledger once per keyring ((version, seed) rows of user
    1111, with Bob's), each run with a new event signed by its keyring's last row."""
    from helpers import run_cli

    from verifier.testing.forge import item_json
    bob = Identity.from_seed("2222", "7", "bob")
    reports, history, prev = [], [], None
    for rows in keyrings:
        identities = [Identity.from_seed("1111", version, seed) for version, seed in rows]
        history.append(_message(len(history) + 1, identities[-1], prev))
        prev = history[-1].event.sequence_id
        (tmp_path / "h.json").write_text(json.dumps({"data": [item_json(e) for e in reversed(history)]}))
        (tmp_path / "ring.json").write_text(json.dumps({"keys": [i.keyring_entry() for i in [*identities, bob]]}))
        reports.append(json.loads(run_cli(["verify", str(tmp_path / "h.json"), "--keys", str(tmp_path / "ring.json"),
                                           "--ledger", str(tmp_path / "l.db"), "--format", "json", "-o", "-"]).stdout))
    return reports


def test_an_old_key_served_again_beside_its_old_version_is_a_rollback(tmp_path):
    """Review 44: v1=K1 still served beside v3=K1, K2 (v2) dropped: it passed with key_added."""
    reports = _audits(tmp_path, [("1", "k1"), ("2", "k2")], [("1", "k1"), ("3", "k1")], [("1", "k1"), ("3", "k1")])
    assert [r["verdict"] for r in reports] == ["pass", "fail", "fail"]  # review 46: the third audit passed
    for report in reports[1:]:
        assert [f["code"] for f in report["findings"] if f["severity"] == "error"] == ["key_version_rollback"]


def test_a_key_registered_again_under_a_new_version_is_no_rollback(tmp_path):
    """Review 44: the same key under v1 and v2, then under v2 alone, failed at every later audit."""
    reports = _audits(tmp_path, [("1", "k")], [("1", "k"), ("2", "k")], [("2", "k")], [("2", "k"), ("3", "k2")],
                      [("2", "k"), ("3", "k2")])
    assert [r["verdict"] for r in reports] == ["pass"] * 5, [r["findings"] for r in reports]


@pytest.mark.parametrize("keyrings", [
    [[("1", "k1"), ("2", "k1"), ("3", "k2")]] * 3,
    [[("1", "k1")]] + [[("1", "k1"), ("2", "k1"), ("3", "k2")]] * 2,
    [[("9", "k1"), ("10", "k1"), ("11", "k2")]] * 2,
], ids=["at-once", "between-two-audits", "9-10-11"])
def test_an_old_key_kept_under_versions_older_than_its_replacement_is_no_rollback(tmp_path, keyrings):
    """Review 48: a key registered again, then rotated, all versions kept, failed every later audit."""
    reports = _audits(tmp_path, *keyrings)
    assert {r["verdict"] for r in reports} == {"pass"}, [r["findings"] for r in reports]


def test_facts_that_lack_events_of_the_report_are_refused(tmp_path):
    """Round 88: ``record_audit`` given facts for only part of the report's events (none, say, from
    ``event_facts`` of an id spelled as no report id is) recorded those events nowhere and judged
    nothing of them: the next audit's rewritten history passed. Facts given as a generator were
    read once, leaving the key judgment none."""
    from verifier.errors import UsageError
    from verifier.ledger import open_ledger, record_audit

    conv = build_conversation(5, seed="facts")
    ring = Keyring.from_json(json.dumps(conv.keyring()))
    v = Verification()
    for page in conv.pages():
        v.add_page(page)
    report = v.finish(ring)
    store = open_ledger(str(tmp_path / "l.db"))
    try:
        for facts in ([], v.event_facts()[:2]):
            with pytest.raises(UsageError, match="facts lack"):
                record_audit(store, report, facts, v.keyring, command="verify", inputs=["p"], key_source="keyring")
        assert store.audit_count() == 0
        record_audit(store, report, iter(v.event_facts()), v.keyring, command="verify", inputs=["p"],
                     key_source="keyring")
        embedded = {(r.user_id, r.source) for r in store.keys() if r.source == "events"}
        assert len(store.events(conv.conversation_id)) == 5 and len(embedded) == 2  # the events' own keys too
    finally:
        store.close()


def test_recording_keys_sorts_them_once_not_once_per_served_user(tmp_path, monkeypatch):
    """Round 104: recording a run sorted every key it saw (the keyring's, and every key the events
    embed, which a server chooses) once per user the keyring serves: 1,000 users and 40,000
    embedded keys took 10 s, the product of the two. They are sorted once; the rollback of an old
    key served again is still found (``test_an_old_key_served_again_beside_its_old_version...``)."""
    from helpers import run_cli

    from verifier.ledger import record
    from verifier.testing.forge import item_json
    sorted_items = [0]

    def counting(items, **kw):
        out = sorted(items, **kw)
        sorted_items[0] += len(out)
        return out

    monkeypatch.setattr(record, "sorted", counting, raising=False)
    users = [Identity.from_seed(str(3000 + n), "1", f"user{n}") for n in range(40)]
    carrier = Identity.from_seed("1111", "1", "alice")
    event = _message(1, carrier, None)
    event = forge_event(carrier, "MessageCreateEvent", event.event.body, conversation_id="1111:2222",
                        sequence_id=event.event.sequence_id, created_at_msec=event.event.created_at_msec,
                        embed_keys=[carrier, *[Identity.from_seed(str(5000 + n), "1", f"e{n}") for n in range(400)]])
    (tmp_path / "h.json").write_text(json.dumps({"data": [item_json(event)]}))
    (tmp_path / "ring.json").write_text(json.dumps({"keys": [i.keyring_entry() for i in [carrier, *users]]}))
    result = run_cli(["verify", str(tmp_path / "h.json"), "--keys", str(tmp_path / "ring.json"), "--ledger",
                      str(tmp_path / "l.db"), "--format", "json", "-o", "-"])
    assert json.loads(result.stdout)["verdict"] == "pass", result.stderr
    assert sorted_items[0] <= 5 * (41 + 401)  # was 41 * 442 for the keys alone


def test_the_row_a_rewrite_names_is_found_without_a_pass_per_event_served(tmp_path):
    """Round 104: each event served at a sequence id walked every row the ledger holds there (twice:
    for history_rewritten and chain_rewritten), so 20,000 events served at one sequence id, then
    20,000 others there at the next run (9 MB), took 41 s to record. ``_Latest`` finds the row each
    finding names, the same as that walk (``max`` by last audit, the first of a tie)."""
    import random

    from helpers import run_cli

    from verifier.ledger.record import _Latest
    from verifier.ledger.store import EventRow
    from verifier.testing.forge import item_json

    rng = random.Random(104)
    for _ in range(500):
        rows = [EventRow("c", "1", bytes([rng.randrange(4)]), rng.choice([None, "a", "b"]), None, None, None, None,
                         "valid", 0, 1, rng.randrange(3)) for _ in range(rng.randrange(6))]
        latest = _Latest(rows)
        for field in ("digest", "prev"):
            for value in (bytes([0]), bytes([1]), None, "a", "b"):
                walk = [r for r in rows if getattr(r, field) != value]
                assert latest.other(field, value) is (max(walk, key=lambda r: r.last_audit) if walk else None)

    def served(tag: str, n: int) -> dict:
        return {"data": [item_json(forge_event(
            Identity.from_seed("1111", "1", "alice"), "MessageCreateEvent",
            {"contents": f"{tag}{i}".encode().ljust(45, b"\x01"), "conversation_key_version": "1001"},
            conversation_id="1111:2222", sequence_id=snowflake(T0, 1), created_at_msec=str(T0), sign=False,
            previous_sequence_id=snowflake(T0 - 1000, 0) if i % 2 else None)) for i in range(n)]}

    messages = []
    for tag in ("first", "second"):
        (tmp_path / "h.json").write_text(json.dumps(served(tag, 300)))
        report = json.loads(run_cli(["verify", str(tmp_path / "h.json"), "--ledger", str(tmp_path / "l.db"),
                                     "--allow-embedded-keys", "--format", "json", "-o", "-"]).stdout)
        messages = [f["message"] for c in report["conversations"] for e in c["events"] for f in e["findings"]
                    if f["code"] in ("history_rewritten", "chain_rewritten")]
    assert sum("is a different event than" in m for m in messages) == 300, messages[:3]
    assert sum("saw it follow" in m for m in messages) == 300  # each event's other previous pointer


def test_several_clears_cover_what_one_of_them_covers_without_a_pass_over_them(monkeypatch):
    """Round 104: each sequence id a run no longer served was checked against every verified clear
    (``any(c.covers(seq) for c in clears)``): 20,000 signed clears served, the 20,000 messages an
    earlier run recorded gone (32 MB), took 177 s to record. ``_Clears`` says the same at once."""
    import random

    from verifier.ledger.record import _Clears

    rng = random.Random(104)
    calls = [0]
    real = _Clear.covers
    monkeypatch.setattr(_Clear, "covers", lambda self, seq: calls.__setitem__(0, calls[0] + 1) or real(self, seq))
    seqs = [snowflake(T0 + n * 1000, n) for n in range(40)] + ["abc", "0", ""]
    for _ in range(300):
        clears = [_Clear(int(snowflake(T0 + rng.randrange(40) * 1000, rng.randrange(40))),
                         rng.choice([None, T0 + rng.randrange(-2, 42) * 1000, 1]))
                  for _ in range(rng.randrange(5))]
        together = _Clears(clears)
        for seq in seqs:
            before = calls[0]
            assert together.covers(seq) is any(real(c, seq) for c in clears), (clears, seq)
            assert calls[0] == before  # never one clear at a time
