"""The engine's run-in-parts API (what verifier.archive drives) on the columns engine: however a run
is cut into parts, checked eagerly or with the keys last, pickled between its phases, the parts,
their join and the coordinator's shell give the single-process report byte for byte, and the same
ledger facts. Mutated histories (dropped, repeated, reordered, re-linked, altered events, replays,
byte-identical repeats in another part) exercise the chain and replay details, which name report
indices across parts."""

from __future__ import annotations

import copy
import json
import pickle
import random

import msgspec
import pytest
from helpers import two_histories
from test_same_reports import _mutate_history, _replay_at_the_end

from verifier.engine import PageInput, Verification

pytestmark = pytest.mark.slow  # every cut of mutated histories: CI and `pytest --slow`


@pytest.fixture(scope="module")
def histories():
    return two_histories("parts", "o")


def _bodies(conv, other, pages: list[dict]) -> list[tuple[str, bytes, str | None]]:
    """The conversation's pages with the other conversation's in the middle (it is local to a part
    for most cuts while the first spans several)."""
    mine = [(f"p{n}", json.dumps(body).encode(), conv.conversation_id) for n, body in enumerate(pages)]
    theirs = [(f"o{n}", json.dumps(body).encode(), None) for n, body in enumerate(other.pages(5))]
    half = len(mine) // 2
    return mine[:half] + theirs + mine[half:]


def _single(bodies, ring, options, other_id):
    verification = Verification(**options)
    for source, body, cid in bodies:
        verification.add_page(PageInput(source, body, cid))
    verification.add_input_error("lost.json", "could not be read")
    verification.mark_incomplete(other_id, "stopped at a page limit")
    report = verification.finish(ring)
    return report, verification.event_facts()


def _in_parts(bodies, cuts, ring, options, other_id, *, keys_first: bool, travel: bool):
    """As verifier.archive's coordinator and workers do, in this process."""
    bounds = [0, *cuts, len(bodies)]
    parts = []
    for lo, hi in zip(bounds, bounds[1:]):
        part = Verification(**options)
        if keys_first:
            part.expect_keyring(ring)
        for source, body, cid in bodies[lo:hi]:
            part.add_page(PageInput(source, body, cid))
        part.check_part(ring)
        parts.append(pickle.loads(pickle.dumps(part)) if travel else part)
    shell = Verification(**options)
    owners: dict[str, list[int]] = {}
    slots: dict = {}
    used: set = set()
    total = 0
    for number, part in enumerate(parts):
        facts = part.part_facts()
        events = sum(i.event_count for i in facts.inputs)
        shell.adopt_parts([msgspec.structs.replace(i, first_index=i.first_index + total) for i in facts.inputs],
                          events)
        part.rebase(total)
        part.rebase(total)  # idempotent
        total += events
        for slot, identities in facts.key_slots.items():
            slots[slot] = slots.get(slot, frozenset()) | identities
        used |= facts.used_key_versions
        for cid in dict.fromkeys(c for c in facts.conversations if c is not None):
            owners.setdefault(cid, []).append(number)
    shell.add_input_error("lost.json", "could not be read")
    shell.mark_incomplete(other_id, "stopped at a page limit")
    incomplete = shell.incomplete
    spanning = {cid for cid, numbers in owners.items() if len(numbers) > 1}
    reports: dict = {}
    reviewed: list = []
    facts_out: list = []
    taken = []
    for number, part in enumerate(parts):
        local = {cid for cid, numbers in owners.items() if numbers == [number]}
        got, said = part.conclude_part(ring, local, slots, incomplete)
        reports.update(got)
        reviewed += said
        facts_out += part.event_facts(local)
        rows = part.take(spanning)
        taken.append(pickle.loads(pickle.dumps(rows)) if travel else rows)
    if spanning:
        joined = Verification.joined(taken, **options)
        got, said = joined.conclude_part(ring, None, slots, incomplete)
        reports.update(got)
        reviewed += said
        facts_out += joined.event_facts()
        assert all(part.take(spanning) == rows for part, rows in zip(parts, taken))  # the parts are unchanged
    ordered = dict(sorted(reports.items(), key=lambda item: item[1].events[0].index))
    report = shell.finish_parts(ring, ordered, reviewed, used)
    return report, sorted(facts_out, key=lambda f: f.index)


def _histories(conv, rng: random.Random, rounds: int):
    pages = conv.pages(10)
    yield copy.deepcopy(pages)
    for _ in range(rounds):
        mutated = _mutate_history(rng, pages)
        if rng.random() < 0.5:
            _replay_at_the_end(rng, mutated)
        if rng.random() < 0.5:  # a byte-identical repeat far from its original (in another part)
            mutated[-1]["data"].append(copy.deepcopy(rng.choice(mutated[0]["data"])))
        yield mutated


@pytest.mark.parametrize("keys_first,travel", [(True, False), (False, True), (True, True)])
def test_every_cut_of_a_run_gives_its_report_and_facts(histories, keys_first, travel):
    conv, other, ring = histories
    rng = random.Random(7 + keys_first + 2 * travel)
    for round_, pages in enumerate(_histories(conv, rng, 6)):
        options = {"conversation_keys": conv.conversation_keys, "strict": bool(round_ % 2)}
        bodies = _bodies(conv, other, pages)
        expected, expected_facts = _single(bodies, ring, options, other.conversation_id)
        for cuts in ([], [1], [3, 4], list(range(1, len(bodies))), [len(bodies) - 1]):
            report, facts = _in_parts(bodies, cuts, ring, options, other.conversation_id,
                                      keys_first=keys_first, travel=travel)
            assert msgspec.json.encode(report) == msgspec.json.encode(expected), (round_, cuts)
            assert facts == expected_facts, (round_, cuts)


def test_a_run_whose_history_spans_parts_names_indices_of_the_whole_run(histories):
    """A repeat of an event of the first part in the last part: the duplicate's detail names the
    original's index in the whole run, as verify's does."""
    conv, other, ring = histories
    pages = conv.pages(10)
    pages[-1]["data"].append(copy.deepcopy(pages[0]["data"][2]))
    bodies = _bodies(conv, other, pages)
    expected, _ = _single(bodies, ring, {"conversation_keys": conv.conversation_keys}, other.conversation_id)
    details = [e.chain.detail for c in expected.conversations for e in c.events if e.chain.status == "duplicate"]
    assert "byte-identical repeat of event 2" in details and "byte-identical repeat of event 78" in details
    report, _ = _in_parts(bodies, list(range(1, len(bodies))), ring, {"conversation_keys": conv.conversation_keys},
                          other.conversation_id, keys_first=True, travel=True)
    assert msgspec.json.encode(report) == msgspec.json.encode(expected)
