
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.chain import ChainNode, analyse_chain, find_replays


def node(i, seq, prev, content=None, meta=False, kc=False):
    return ChainNode(i, seq, prev, content or f"{seq}".encode(), meta, kc)


def statuses(nodes):
    res = analyse_chain(nodes)
    return {n.index: res[n.index].status for n in nodes}


def test_linked_chain_out_of_order():
    nodes = [node(0, "30", "20"), node(1, "10", None), node(2, "20", "10")]
    assert statuses(nodes) == {0: "linked", 1: "start", 2: "linked"}


def test_start_with_unfetched_predecessor_and_gap():
    nodes = [node(0, "50", "40"), node(1, "30", "25"), node(2, "20", "5")]
    assert statuses(nodes) == {0: "gap", 1: "gap", 2: "start"}


def test_fork():
    nodes = [node(0, "10", None), node(1, "20", "10"), node(2, "21", "10")]
    assert statuses(nodes) == {0: "start", 1: "fork", 2: "fork"}


def test_duplicate_and_key_change_duplicate_is_info():
    nodes = [node(0, "10", None), node(1, "20", "10"), node(2, "20", "10"),
             node(3, "5", None, b"kc", True, True), node(4, "5", None, b"kc", True, True)]
    res = analyse_chain(nodes)
    assert res[2].status == "duplicate" and not res[2].info_only
    assert res[4].status == "duplicate" and res[4].info_only


def test_conflict_marks_every_copy():
    nodes = [node(0, "10", None), node(1, "20", "10", b"a"), node(2, "20", "10", b"b")]
    assert statuses(nodes) == {0: "start", 1: "conflict", 2: "conflict"}


def test_non_monotonic():
    nodes = [node(0, "10", None), node(1, "30", "10"), node(2, "25", "30")]
    assert statuses(nodes) == {0: "start", 1: "linked", 2: "non_monotonic"}


def test_cycle():
    nodes = [node(0, "10", "30"), node(1, "20", "10"), node(2, "30", "20"), node(3, "40", "30")]
    st_ = statuses(nodes)
    assert [st_[i] for i in (0, 1, 2)] == ["cycle"] * 3
    assert st_[3] == "fork"  # 40 and 10 both claim 30


def test_self_loop_is_cycle():
    assert statuses([node(0, "10", "10")]) == {0: "cycle"}


def test_meta_key_change_is_out_of_band_and_never_a_second_start():
    nodes = [node(0, "100", "90"), node(1, "90", "80"), node(2, "5", "1", b"kc", True, True)]
    assert statuses(nodes) == {0: "linked", 1: "start", 2: "out_of_band"}


def test_meta_event_does_not_excuse_a_missing_predecessor():
    """A data event whose predecessor came only in meta is a gap: meta is outside the data chain."""
    nodes = [node(0, "100", "90"), node(1, "90", "80"), node(2, "80", "70", b"kc", True, True),
             node(3, "60", None)]
    st_ = statuses(nodes)
    assert st_ == {0: "linked", 1: "gap", 2: "out_of_band", 3: "start"}
    assert "meta.conversation_key_events" in analyse_chain(nodes)[1].detail


def test_key_change_in_data_and_meta_is_linked_and_the_meta_copy_a_duplicate():
    nodes = [node(0, "20", "10"), node(1, "10", None, b"kc", False, True), node(2, "10", None, b"kc", True, True)]
    res = analyse_chain(nodes)
    assert statuses(nodes) == {0: "linked", 1: "start", 2: "duplicate"} and res[2].info_only


def test_at_most_one_start_every_other_root_is_a_gap():
    nodes = [node(0, "30", "25"), node(1, "20", "15"), node(2, "10", "5")]
    assert sorted(statuses(nodes).values()) == ["gap", "gap", "start"]
    assert statuses(nodes)[2] == "start"


@pytest.mark.parametrize("a,b", [("0123", "123"), ("00", "0"), ("0000000000000000123", "123")])
def test_decimal_ids_with_leading_zeros_name_one_position(a, b):
    """``0123`` and ``123`` are the same position: a conflict (different bytes), never two events."""
    nodes = [node(0, a, None, b"x"), node(1, b, None, b"y")]
    assert statuses(nodes) == {0: "conflict", 1: "conflict"}
    same = [node(0, a, None, b"x"), node(1, b, None, b"x")]
    assert sorted(statuses(same).values()) == ["duplicate", "start"]


def test_previous_pointer_with_leading_zeros_links():
    nodes = [node(0, "10", None), node(1, "11", "010")]
    assert statuses(nodes) == {0: "start", 1: "linked"}


def test_replay_of_a_signed_message_id_at_another_position():
    """The message id is signed, the position is not: a second position is a replay."""
    a = ChainNode(0, "10", None, b"a", signed_id=("1111", "m-1"))
    b = ChainNode(1, "20", "10", b"b", signed_id=("1111", "m-1"))
    c = ChainNode(2, "30", "20", b"c", signed_id=("2222", "m-1"))  # another sender: not a replay
    d = ChainNode(3, "010", None, b"a", signed_id=("1111", "m-1"))  # same position: a duplicate
    replays = find_replays([b, a, c, d])
    assert set(replays) == {1} and "sequence 10" in replays[1]


def test_missing_sequence_id_is_gap():
    assert statuses([node(0, None, None)]) == {0: "gap"}


def test_numeric_order_not_lexicographic():
    nodes = [node(0, "9", None), node(1, "10", "9")]
    assert statuses(nodes) == {0: "start", 1: "linked"}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 12), st.one_of(st.none(), st.integers(0, 12)), st.integers(0, 2)),
                max_size=14), st.randoms())
def test_statuses_invariant_under_order(spec, rnd):
    nodes = [node(i, str(s), None if p is None else str(p), f"{s}/{p}/{c}".encode()) for i, (s, p, c) in enumerate(spec)]
    base = analyse_chain(nodes)
    shuffled = list(nodes)
    rnd.shuffle(shuffled)
    reindexed = [ChainNode(i, n.sequence_id, n.previous_sequence_id, n.content) for i, n in enumerate(shuffled)]
    again = analyse_chain(reindexed)
    key = lambda res, ns: sorted((n.sequence_id, n.content, res[n.index].status) for n in ns)
    assert key(base, nodes) == key(again, reindexed)


def test_a_large_conflict_or_fork_names_a_few_events_and_counts_the_rest():
    """Round 78: each event of a conflict named every event at its position, and each claimant of a
    fork every other claimant (sorted again for each): 10,000 unsigned events at one sequence id,
    or claiming one predecessor (0.5 MB), gave a 1.2 GB report, and 20,000 took a minute and 3 GB.
    A detail names at most ten and counts the rest; a small group is named in full as before."""
    n = 3000
    conflict = analyse_chain([node(i, "5", None, f"e{i}".encode()) for i in range(n)])
    assert {r.status for r in conflict.values()} == {"conflict"}
    assert conflict[7].detail == "sequence id 5 carried by different events (indices 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 " \
                                 f"and {n - 10} more)"
    fork = analyse_chain([node(0, "1", None)] + [node(i, str(i + 1), "1") for i in range(1, n + 1)])
    assert sum(r.status == "fork" for r in fork.values()) == n
    claimants = sorted(str(i + 1) for i in range(1, n + 1))
    assert claimants[0] == "10" and "2" not in claimants[:11]  # sorted as text
    assert fork[9].detail == f"10 and {', '.join(claimants[1:11])} and {n - 11} more all claim predecessor 1"
    assert fork[1].detail == f"2 and {', '.join(claimants[:10])} and {n - 11} more all claim predecessor 1"
    assert max(len(r.detail) for r in [*conflict.values(), *fork.values()]) < 200
    small = analyse_chain([node(0, "1", None), node(1, "3", "1"), node(2, "2", "1"), node(3, "5", "5x", b"a"),
                           node(4, "05", None, b"b")])
    assert small[1].detail == "3 and 2 all claim predecessor 1"
    assert small[3].detail == "sequence id 5 carried by different events (indices 3, 4)"
    assert small[4].detail == "sequence id 05 carried by different events (indices 3, 4)"
