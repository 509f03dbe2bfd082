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
