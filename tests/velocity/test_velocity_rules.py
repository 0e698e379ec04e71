"""The metric rules on hand-made data: every expected number is worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.contracts import event_from_obj
from app.intel.incidents import IncidentBook
from app.intel.velocity_quarters import (
    clamped_duration,
    detection_moment,
    duration_stats,
    learning_velocity_score,
    previous_quarter,
    quantile,
    score_contributions,
    trend,
    velocity_by_quarter,
)
from app.intel.velocity_report import (
    ascii_bar,
    digest_section,
    learning_section_markdown,
    learning_summary,
)
from app.policy import KindDerivation
from tests.support.velocity_reference import (
    firing_event,
    incident_event,
    postmortem,
    regression_test_event,
)

MIN = 60_000_000  # microseconds per minute
T = 0.10


# ------------------------------------------------------------------------- the score


def test_score_single_incident_and_empty_are_zero() -> None:
    assert learning_velocity_score([]) == 0.0
    assert learning_velocity_score([("a", 5 * MIN)]) == 0.0
    assert score_contributions([("a", 5 * MIN)]) == [()]


def test_new_cause_detected_faster_scores_one() -> None:
    assert score_contributions([("a", 10), ("b", 5)]) == [(), (1.0, 1.0)]
    assert learning_velocity_score([("a", 10), ("b", 5)]) == 1.0


def test_repeat_detected_slower_scores_a_quarter() -> None:
    assert score_contributions([("a", 10), ("a", 20)]) == [(), (0.0, 0.5)]
    assert learning_velocity_score([("a", 10), ("a", 20)]) == 0.25


def test_latency_equal_to_the_mean_is_not_faster() -> None:
    # earlier mean of 10 and 30 is 20; 20 is not strictly below it
    assert score_contributions([("a", 10), ("b", 30), ("c", 20)])[2] == (1.0, 0.5)
    assert score_contributions([("a", 10), ("b", 30), ("c", 19)])[2] == (1.0, 1.0)


def test_missing_latency_appends_half_and_is_left_out_of_the_mean() -> None:
    seq = [("a", None), ("b", 50), ("c", None), ("d", 40)]
    # b: no earlier latency -> 0.5; c: none -> 0.5; d: 40 < mean(50) -> 1.0
    assert score_contributions(seq) == [(), (1.0, 0.5), (1.0, 0.5), (1.0, 1.0)]
    assert learning_velocity_score(seq) == pytest.approx(5.0 / 6)


def test_score_of_a_longer_sequence_worked_by_hand() -> None:
    seq = [("x", 30), ("y", 10), ("x", 25), ("z", 5), ("y", 40)]
    # y: new, 10 < 30 -> (1, 1); x: repeat, 25 < 20? no -> (0, .5)
    # z: new, 5 < 65/3 -> (1, 1); y: repeat, 40 < 70/4 no -> (0, .5)
    assert score_contributions(seq)[1:] == [(1.0, 1.0), (0.0, 0.5), (1.0, 1.0), (0.0, 0.5)]
    assert learning_velocity_score(seq) == 5.0 / 8


# ------------------------------------------------------------------- small rules


def test_quantile_is_linear_interpolation() -> None:
    ten = list(range(1, 11))
    assert quantile(ten, 0.5) == 5.5
    assert quantile(ten, 0.9) == pytest.approx(9.1)
    assert quantile([7], 0.9) == 7
    assert quantile([0, 100], 0.9) == pytest.approx(90)


def test_duration_stats_in_minutes() -> None:
    stats = duration_stats([10 * MIN, 20 * MIN, 90 * MIN])
    assert stats.count == 3
    assert stats.mean_minutes == pytest.approx(40)
    assert stats.median_minutes == pytest.approx(20)
    assert stats.p90_minutes == pytest.approx(20 + 0.8 * 70)
    empty = duration_stats([])
    assert (empty.count, empty.mean_minutes, empty.median_minutes, empty.p90_minutes) == (
        0, None, None, None)


def test_negative_durations_clamp_to_zero() -> None:
    assert clamped_duration(100, 40) == 0
    assert clamped_duration(100, 160) == 60
    assert clamped_duration(100, None) is None


def test_detection_moment_falls_back_in_order() -> None:
    assert detection_moment(5, 3, 1) == 5
    assert detection_moment(None, 3, 1) == 3
    assert detection_moment(None, None, 1) == 1
    assert detection_moment(None, None, None) is None


def test_trend() -> None:
    assert trend([0.2, None, 0.5, 0.5]).monotonically_increasing is True
    assert trend([0.2, None, 0.5, 0.5]).scored_quarters == 3
    assert trend([0.2, 0.5, 0.5]).strictly_increasing is False
    assert trend([0.2, 0.4, 0.9]).strictly_increasing is True
    assert trend([0.6, 0.4]).monotonically_increasing is False
    assert trend([None, 0.4]).monotonically_increasing is None


def test_previous_quarter_wraps_the_year() -> None:
    assert previous_quarter("2026-Q1") == "2025-Q4"
    assert previous_quarter("2026-Q3") == "2026-Q2"


def test_ascii_bar() -> None:
    assert ascii_bar(0.5) == "█" * 10 + "░" * 10 + " 0.50"
    assert ascii_bar(1.0) == "█" * 20 + " 1.00"
    assert ascii_bar(0.0) == "░" * 20 + " 0.00"
    assert ascii_bar(None) == "(no score)"
    # 0.625 fills 12.5 -> 13 cells, and its label rounds the same way
    assert ascii_bar(0.625) == "█" * 13 + "░" * 7 + " 0.63"
    assert ascii_bar(0.6) == "█" * 12 + "░" * 8 + " 0.60"


# ------------------------------------------------------------------ through the book


def d(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def book_of(*events: dict) -> IncidentBook:
    book = IncidentBook(rules=KindDerivation(rules=[]))
    for raw in events:
        book.apply(event_from_obj(raw))
    return book


def by_quarter(book: IncidentBook) -> dict[str, object]:
    return {row.quarter: row for row in velocity_by_quarter(book, T)}


def test_quarter_boundaries_use_utc_started_at() -> None:
    book = book_of(
        incident_event("e1", "a", d(2026, 3, 31, 23, 59, 59)),
        incident_event("e2", "b", d(2026, 4, 1)),
        # 01:00 at +02:00 is still March 31 in UTC
        {**incident_event("e3", "c", d(2026, 1, 2)),
         "incident": {**incident_event("e3", "c", d(2026, 1, 2))["incident"],
                      "started_at": "2026-04-01T01:00:00+02:00"}},
        incident_event("e4", "z", d(2026, 12, 31, 23, 59)),
    )
    rows = by_quarter(book)
    assert list(rows) == ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
    assert [rows[q].incidents for q in rows] == [2, 1, 0, 1]
    assert rows["2026-Q3"].score is None and rows["2026-Q3"].recurrence_rate is None


def test_missing_resolved_and_detected() -> None:
    start = d(2026, 2, 1, 10)
    book = book_of(
        # detected_at given, resolved after 30 min
        incident_event("e1", "a", start, detected=d(2026, 2, 1, 10, 4),
                       resolved=d(2026, 2, 1, 10, 30), signature="s1"),
        # no detected_at: first firing (the earlier of two) counts, not the opened event
        incident_event("e2", "b", d(2026, 2, 2, 10), occurred=d(2026, 2, 2, 10, 50),
                       signature="s2"),
        firing_event("f1", "b", d(2026, 2, 2, 10, 20)),
        firing_event("f2", "b", d(2026, 2, 2, 10, 12)),
        # no detected_at, no alert: the incident.opened event time
        incident_event("e3", "c", d(2026, 2, 3, 10), occurred=d(2026, 2, 3, 10, 6),
                       signature="s3", resolved=d(2026, 2, 3, 12)),
        # only an update, never opened: no latency at all
        incident_event("e4", "x", d(2026, 2, 4, 10), kind="incident.updated",
                       occurred=d(2026, 2, 4, 11), signature="s4"),
    )
    row = by_quarter(book)["2026-Q1"]
    assert row.incidents == 4
    assert row.mttr.count == 2
    assert row.mttr.mean_minutes == pytest.approx(75)  # (30 + 120) / 2
    assert row.detection_latency.count == 3  # 4, 12, 6 minutes
    assert row.detection_latency.mean_minutes == pytest.approx(22 / 3)
    assert row.detection_latency.median_minutes == pytest.approx(6)
    assert row.detection_latency.p90_minutes == pytest.approx(6 + 0.8 * 6)
    # a(4) first; b: 12 < 4 no -> .5; c: 6 < 8 yes -> 1; x: none -> .5; all new causes
    assert row.score == pytest.approx((1 + 0.5 + 1 + 1 + 1 + 0.5) / 6)
    assert row.score_values == 6


def test_clock_skew_clamps_latency_and_mttr_to_zero() -> None:
    start = d(2026, 5, 5, 12)
    book = book_of(incident_event("e1", "a", start, detected=d(2026, 5, 5, 11),
                                  resolved=d(2026, 5, 5, 11, 30)))
    row = by_quarter(book)["2026-Q2"]
    assert row.mttr.mean_minutes == 0 and row.detection_latency.mean_minutes == 0


def test_recurrence_uses_root_cause_then_signature() -> None:
    book = book_of(
        incident_event("e1", "a", d(2026, 1, 5), signature="s1", detected=d(2026, 1, 5, 0, 10)),
        # different signature, but the post-mortem names the same cause as b's field
        incident_event("e2", "b", d(2026, 1, 6), signature="s2", root_cause="bad config",
                       detected=d(2026, 1, 6, 0, 5)),
        incident_event("e3", "c", d(2026, 1, 7), signature="s3", detected=d(2026, 1, 7, 0, 20)),
        postmortem("p1", "c", d(2026, 1, 20), "bad config"),
        # same signature as a, no cause: a repeat by signature
        incident_event("e4", "e", d(2026, 1, 8), signature="s1", detected=d(2026, 1, 8, 0, 1)),
    )
    row = by_quarter(book)["2026-Q1"]
    assert row.recurrences == 2
    assert row.recurrence_rate == 0.5
    assert row.above_target is True
    # b: new, 5<10 -> 1,1; c: repeat, 20<7.5 no -> 0,.5; e: repeat, 1<35/3 -> 0,1
    assert row.score == pytest.approx(3.5 / 6)


def test_target_flag_is_strictly_above() -> None:
    events = [incident_event(f"e{i}", f"i{i:02d}", d(2026, 7, 1 + i), signature=f"s{i}")
              for i in range(10)]
    once = by_quarter(book_of(*events, incident_event("r1", "r1", d(2026, 7, 20),
                                                      signature="s0")))["2026-Q3"]
    assert once.recurrence_rate == pytest.approx(1 / 11) and not once.above_target
    exactly = by_quarter(book_of(*events[:9], incident_event("r1", "r1", d(2026, 7, 20),
                                                             signature="s0")))["2026-Q3"]
    assert exactly.recurrence_rate == pytest.approx(0.1) and not exactly.above_target
    twice = by_quarter(book_of(*events[:8], incident_event("r1", "r1", d(2026, 7, 20),
                                                           signature="s0"),
                               incident_event("r2", "r2", d(2026, 7, 21), signature="s1")))
    assert twice["2026-Q3"].recurrence_rate == pytest.approx(0.2)
    assert twice["2026-Q3"].above_target


def test_started_at_ties_break_by_incident_id() -> None:
    same = d(2026, 1, 10)
    book = book_of(
        incident_event("e1", "zz", same, signature="s", detected=d(2026, 1, 10, 0, 30)),
        incident_event("e2", "aa", same, signature="s", detected=d(2026, 1, 10, 0, 10)),
    )
    row = by_quarter(book)["2026-Q1"]
    # "aa" is first; "zz" repeats its cause and is slower (30 vs 10) -> (0, .5)
    assert row.score == 0.25 and row.recurrences == 1


def test_quarter_score_counts_all_earlier_incidents() -> None:
    book = book_of(
        incident_event("e1", "a", d(2025, 11, 1), signature="s1", detected=d(2025, 11, 1, 1)),
        incident_event("e2", "b", d(2026, 1, 3), signature="s1", detected=d(2026, 1, 3, 0, 30)),
    )
    rows = by_quarter(book)
    assert rows["2025-Q4"].score is None and rows["2025-Q4"].score_values == 0
    # b repeats a's cause from the previous quarter and beats its 60 minutes
    assert rows["2026-Q1"].score == 0.5 and rows["2026-Q1"].recurrences == 1


def test_coverage_expansion_counts_by_event_time() -> None:
    book = book_of(
        incident_event("e1", "a", d(2026, 1, 5)),
        regression_test_event("t1", d(2026, 2, 1)),
        regression_test_event("t2", d(2026, 8, 1)),
        regression_test_event("t3", d(2026, 8, 2), incident_id="a"),
        regression_test_event("t3", d(2026, 8, 2), incident_id="a"),  # redelivered: counted once
    )
    rows = by_quarter(book)
    assert [(q, r.regression_tests_added, r.coverage_change) for q, r in rows.items()] == [
        ("2026-Q1", 1, None), ("2026-Q2", 0, -1), ("2026-Q3", 2, 2)]


def test_as_of_keeps_only_what_started_by_then() -> None:
    book = book_of(incident_event("e1", "a", d(2026, 1, 5)),
                   incident_event("e2", "b", d(2026, 4, 5)),  # exactly at as_of: counted
                   incident_event("e3", "c", d(2026, 4, 5, 0, 0, 1)),
                   regression_test_event("t1", d(2026, 4, 6)))
    rows = velocity_by_quarter(book, T, as_of=d(2026, 4, 5))
    assert [(r.quarter, r.incidents, r.regression_tests_added) for r in rows] == [
        ("2026-Q1", 1, 0), ("2026-Q2", 1, 0)]


def test_learning_summary_this_quarter_against_the_last() -> None:
    book = book_of(
        incident_event("e1", "a", d(2026, 2, 1), signature="s1", detected=d(2026, 2, 1, 0, 20),
                       resolved=d(2026, 2, 1, 2)),
        incident_event("e2", "b", d(2026, 4, 2), signature="s1", detected=d(2026, 4, 2, 0, 10),
                       resolved=d(2026, 4, 2, 1)),
        incident_event("e3", "c", d(2026, 4, 9), signature="s2"),  # after as_of
    )
    as_of = d(2026, 4, 6)  # Monday: the digest of 2026-W14 (Mar 30 .. Apr 5)
    summary = learning_summary(velocity_by_quarter(book, T, as_of=as_of), as_of)
    assert summary["this_quarter"]["quarter"] == "2026-Q2"
    assert summary["last_quarter"]["quarter"] == "2026-Q1"
    assert summary["this_quarter"]["incidents"] == 1
    assert summary["this_quarter"]["mttr_median_minutes"] == pytest.approx(60)
    assert summary["last_quarter"]["mttr_median_minutes"] == pytest.approx(120)
    assert summary["this_quarter"]["recurrence_rate"] == 1.0
    assert summary["this_quarter"]["above_target"] is True
    text = "\n".join(learning_section_markdown(summary))
    assert "2026-Q2 so far vs 2026-Q1" in text and "above target" in text


def test_learning_summary_on_a_quarter_start_compares_with_the_quarter_that_ended() -> None:
    book = book_of(incident_event("e1", "a", d(2024, 3, 30), signature="s1"))
    as_of = d(2024, 4, 1)
    summary = learning_summary(velocity_by_quarter(book, T, as_of=as_of), as_of)
    assert summary["this_quarter"]["quarter"] == "2024-Q2"
    assert summary["last_quarter"]["quarter"] == "2024-Q1"
    assert summary["this_quarter"]["incidents"] == 0
    assert summary["last_quarter"]["incidents"] == 1


def test_digest_section_is_flat_and_judged_against_the_target() -> None:
    book = book_of(
        incident_event("e1", "a", d(2026, 2, 1), signature="s1"),
        incident_event("e2", "b", d(2026, 4, 2), signature="s1"),
        incident_event("e3", "c", d(2026, 4, 3), signature="s2"),
    )
    as_of = d(2026, 4, 13)
    section = digest_section(book, as_of, T)
    assert section is not None
    assert section.quarter == "2026-Q2" and section.compared_with == "2026-Q1"
    assert section.incidents == 2 and section.incidents_last_quarter == 1
    assert section.recurrence_rate == 0.5 and section.above_target is True
    assert not any(isinstance(v, dict | list) for v in section.model_dump().values())
    assert section.recurrence_target == T
    lenient = digest_section(book, as_of, 0.75)
    assert lenient is not None and lenient.above_target is False
    assert digest_section(book, d(2025, 6, 1), T) is None
