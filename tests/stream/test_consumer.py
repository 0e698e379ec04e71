"""The commit guard and the re-read of lost deliveries (app.stream.consumer)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from intervaltree import IntervalTree

from app.stream.consumer import HoleWatch, commit_blocked, head_holes


def tree(*spans: tuple[int, int]) -> IntervalTree:
    result = IntervalTree()
    for begin, end in spans:
        result.addi(begin, end)
    return result


def test_a_commit_waits_for_the_record_at_the_committed_offset() -> None:
    assert commit_blocked([11, 12, 13], 10, tree())  # one record missing at the head
    assert commit_blocked([14, 15], 10, tree())
    assert not commit_blocked([10, 11, 12], 10, tree())
    assert not commit_blocked([12, 10, 11], 10, tree())  # acks arrive in any order


def test_offsets_known_to_be_absent_do_not_block() -> None:
    assert not commit_blocked([12, 13], 10, tree((10, 12)))
    assert commit_blocked([12, 13], 10, tree((11, 12)))


def test_nothing_to_protect_without_acks_or_a_committed_offset() -> None:
    assert not commit_blocked([], 10, tree())
    assert not commit_blocked([5, 6], None, tree())


@given(st.integers(0, 50), st.sets(st.integers(0, 80), min_size=1))
def test_blocked_exactly_when_the_head_record_is_missing(committed: int, acked: set[int]) -> None:
    acked = {offset for offset in acked if offset >= committed} or {committed}
    assert commit_blocked(sorted(acked), committed, tree()) == (committed not in acked)


def test_head_holes_names_each_blocked_partition_with_its_span() -> None:
    acked = {"a": [4, 5], "b": [7, 8], "c": [3], "d": []}
    committed = {"a": 2, "b": 7, "c": None, "d": 1}
    gaps = {key: tree() for key in acked}
    assert head_holes(acked, committed, gaps) == {"a": (2, 4)}


def test_a_hole_is_reread_only_once_it_outlived_one_check() -> None:
    watch = HoleWatch()
    assert watch.check({"a": (2, 4)}) == ({}, {})
    assert watch.check({"a": (2, 4)}) == ({"a": (2, 4)}, {})


def test_a_hole_that_moves_is_work_in_progress() -> None:
    watch = HoleWatch()
    watch.check({"a": (2, 4)})
    assert watch.check({"a": (2, 6)}) == ({}, {})  # the head moved on: nothing lost
    assert watch.check({}) == ({}, {})


def test_a_hole_filled_by_its_reread_is_forgotten() -> None:
    watch = HoleWatch()
    watch.check({"a": (2, 4)})
    assert watch.check({"a": (2, 4)})[0] == {"a": (2, 4)}
    assert watch.check({}) == ({}, {})
    watch.check({"a": (2, 4)})  # the same span lost again later is a new loss
    assert watch.check({"a": (2, 4)}) == ({"a": (2, 4)}, {})


def test_a_hole_that_survives_its_reread_is_declared_absent() -> None:
    watch = HoleWatch()
    watch.check({"a": (2, 3)})
    assert watch.check({"a": (2, 3)}) == ({"a": (2, 3)}, {})
    assert watch.check({"a": (2, 3)}) == ({}, {})
    assert watch.check({"a": (2, 3)}) == ({}, {"a": (2, 3)})


def test_reset_forgets_what_was_seen() -> None:
    watch = HoleWatch()
    watch.check({"a": (2, 4)})
    watch.reset()
    assert watch.check({"a": (2, 4)}) == ({}, {})


def test_the_worker_consumer_holds_back_a_commit_over_a_missing_record() -> None:
    from faust.types import TP

    from app.stream.app import create_app
    from app.stream.settings import WorkerSettings

    consumer = create_app(WorkerSettings(app_id="t-consumer")).consumer
    tp = TP("t-consumer.incidents.events", 0)
    consumer._committed_offset[tp] = 10
    consumer._acked[tp].extend([11, 12])
    consumer._acked_index[tp].update([11, 12])
    assert consumer._new_offset(tp) is None  # plain Faust would commit 13 over offset 10
    consumer._acked[tp].append(10)
    consumer._acked_index[tp].add(10)
    assert consumer._new_offset(tp) == 13
