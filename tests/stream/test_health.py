"""Worker health rules and the repeated-error filter, without a broker."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st

from app.stream.errorlog import RepeatFilter
from app.stream.health import WorkerHealth


def _health() -> WorkerHealth:
    return WorkerHealth(stuck_after=60.0, exit_after=120.0)


def test_ready_needs_a_broker_an_assignment_and_a_caught_up_replica() -> None:
    health = _health()
    health.broker_answered(0.0)
    assert health.readiness(replica_ready=True, assigned=True, now=1.0).ready
    assert health.readiness(replica_ready=False, assigned=True, now=1.0).waiting_for == (
        "replica_catching_up",)
    assert health.readiness(replica_ready=True, assigned=False, now=1.0).waiting_for == (
        "no_partition_assigned",)
    health.broker_failed(2.0)
    report = health.readiness(replica_ready=True, assigned=True, now=2.5)
    assert not report.ready and report.waiting_for == ("broker_unreachable",)
    health.broker_answered(3.0)
    assert health.readiness(replica_ready=True, assigned=True, now=3.0).ready


def test_the_worker_exits_only_after_the_broker_stayed_away_long_enough() -> None:
    health = _health()
    health.broker_failed(10.0)
    health.broker_failed(50.0)  # the loss started at the first failure
    assert not health.must_exit(129.0)
    assert health.must_exit(130.0)
    health.broker_answered(131.0)
    assert not health.must_exit(500.0)


def test_a_partition_is_stuck_when_its_commit_stands_still_behind_the_end() -> None:
    health = _health()
    health.observe("in", 0, committed=5, end=9, now=0.0)
    health.observe("in", 0, committed=5, end=12, now=59.0)
    assert health.stuck(60.0) == []
    assert health.stuck(61.0) == ["in[0]"]
    report = health.readiness(replica_ready=True, assigned=True, now=61.0)
    assert report.waiting_for == ("stuck_partitions: in[0]",)
    health.observe("in", 0, committed=6, end=12, now=62.0)  # it moved: the clock restarts
    assert health.stuck(100.0) == []
    health.observe("in", 1, committed=7, end=7, now=0.0)  # caught up: never stuck
    assert health.stuck(1000.0) == ["in[0]"]
    health.forget_except({("in", 1)})
    assert health.stuck(1000.0) == []


def _record(msg: str, level: int = logging.ERROR, name: str = "aiokafka") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


@given(st.lists(st.floats(min_value=0, max_value=4.0), min_size=1, max_size=200))
def test_repeats_pass_once_per_interval_and_the_next_line_counts_them(gaps: list[float]) -> None:
    now = [0.0]
    repeat = RepeatFilter(interval=10.0, clock=lambda: now[0])
    passed: list[tuple[float, logging.LogRecord]] = []
    for gap in gaps:
        now[0] += gap
        record = _record("Unable connect to node with id %s")
        if repeat.filter(record):
            passed.append((now[0], record))
    times = [t for t, _ in passed]
    # The first passes; a later one passes exactly when 10 s have gone since the last one
    # that passed; the counts it carries are the ones held back in between.
    assert passed[0][1].msg == "Unable connect to node with id %s"
    assert all(b - a >= 10.0 for a, b in zip(times, times[1:], strict=False))
    clock, expected_times = 0.0, []
    for gap in gaps:
        clock += gap
        if not expected_times or clock - expected_times[-1] >= 10.0:
            expected_times.append(clock)
    assert times == expected_times
    held = sum(int(r.msg.split("repeated ")[1].split(" ")[0]) for _, r in passed[1:]
               if "repeated" in r.msg)
    last_window = sum(1 for _ in gaps) - len(passed) - held
    assert held >= 0 and last_window >= 0
    assert repeat.filter(_record("a different message"))
    assert repeat.filter(_record("Unable connect to node with id %s", level=logging.INFO))
