"""The demo's scenario (pure): the shape the demo's deterministic digest relies on."""

from __future__ import annotations

import pytest

from app.cli.demo import DEMO_START, demo_history
from app.contracts import OPEN_STATUSES, decode_event
from app.errors import UserError


def test_the_history_spans_whole_weeks_and_ends_before_the_digest_week_closes() -> None:
    history = demo_history(seed=7, weeks=4)
    assert history.start == DEMO_START
    assert history.last_week == "2026-W09"
    assert all(history.start <= r.occurred_at < history.end for r in history.records)
    assert [r.occurred_at for r in history.records] == sorted(r.occurred_at
                                                              for r in history.records)
    for record in history.records:
        decode_event(record.value_bytes())  # every record is valid input


def test_the_strongest_recurrence_ends_the_week_with_an_open_incident() -> None:
    history = demo_history(seed=7, weeks=4)
    strongest = max(history.truth.recurrence, key=lambda r: r.count)
    assert strongest.expected_level == "high"
    assert history.kept_open == strongest.incident_ids[-1]
    states = [r.payload["incident"]["status"] for r in history.records
              if r.payload.get("incident", {}).get("incident_id") == history.kept_open]
    assert states and set(states) <= OPEN_STATUSES


def test_same_seed_same_records_and_learning_events_are_included() -> None:
    first, again = demo_history(seed=3), demo_history(seed=3)
    assert [r.value_bytes() for r in first.records] == [r.value_bytes() for r in again.records]
    assert {r.payload["type"] for r in first.records if r.topic == "learning.events"} == {
        "postmortem.published", "regression_test.added"}
    assert [r.value_bytes() for r in demo_history(seed=4).records] != [
        r.value_bytes() for r in first.records]


def test_weeks_out_of_range_is_a_user_error() -> None:
    with pytest.raises(UserError, match="--weeks=9"):
        demo_history(weeks=9)
