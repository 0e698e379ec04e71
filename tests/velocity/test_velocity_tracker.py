"""The incremental tracker equals the batch recompute, step by step, on random histories."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.contracts import QuarterVelocity, event_from_obj
from app.intel.incidents import IncidentBook
from app.intel.velocity_quarters import velocity_by_quarter
from app.intel.velocity_tracker import VelocityTracker
from app.policy import KindDerivation
from tests.support.velocity_reference import (
    BASE,
    firing_event,
    incident_event,
    postmortem,
    regression_test_event,
)

TARGET = 0.10
IDS = [f"inc-{i}" for i in range(6)]
# Start times bunch around quarter boundaries and repeat, so ties and edges happen.
STARTS = [BASE + timedelta(days=d, hours=h) for d in (0, 40, 89, 90, 91, 200, 400)
          for h in (0, 23)]


def _maybe_minutes(lo: int, hi: int) -> st.SearchStrategy[int | None]:
    return st.none() | st.integers(lo, hi)


@st.composite
def histories(draw: st.DrawFn) -> list[dict]:
    events: list[dict] = []
    for n in range(draw(st.integers(1, 30))):
        what = draw(st.sampled_from(["incident", "incident", "incident", "firing",
                                     "postmortem", "test", "replay"]))
        occurred = BASE + timedelta(hours=draw(st.integers(0, 12_000)))
        if what == "incident":
            started: datetime = draw(st.sampled_from(STARTS))
            detected = draw(_maybe_minutes(-30, 600))
            resolved = draw(_maybe_minutes(-10, 5000))
            events.append(incident_event(
                f"e{n}", draw(st.sampled_from(IDS)), started, occurred=occurred,
                kind=draw(st.sampled_from(["incident.opened", "incident.updated"])),
                signature=draw(st.sampled_from(["s1", "s2", "s3"])),
                detected=None if detected is None else started + timedelta(minutes=detected),
                resolved=None if resolved is None else started + timedelta(minutes=resolved),
                root_cause=draw(st.sampled_from([None, None, "c1", "c2"])),
            ))
        elif what == "firing":
            events.append(firing_event(f"f{n}", draw(st.sampled_from(IDS)), occurred))
        elif what == "postmortem":
            events.append(postmortem(f"p{n}", draw(st.sampled_from(IDS)), occurred,
                                     draw(st.sampled_from(["c1", "c2", "c3"]))))
        elif what == "test":
            events.append(regression_test_event(f"t{n}", occurred))
        elif events:
            events.append(draw(st.sampled_from(events)))  # at-least-once redelivery
    return events


def _book() -> IncidentBook:
    return IncidentBook(rules=KindDerivation(rules=[]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.lists(st.booleans(), min_size=30, max_size=30))
def test_incremental_equals_recompute_after_every_event(
    events: list[dict], take_now: list[bool]
) -> None:
    book, tracker = _book(), VelocityTracker(TARGET)
    emitted: dict[str, QuarterVelocity] = {}
    for step, raw in enumerate(events):
        event = event_from_obj(raw)
        book.apply(event)
        tracker.apply(book, event)
        expected = velocity_by_quarter(book, TARGET)
        if take_now[step]:
            changes = tracker.take_changed()
            for row in changes.changed:
                assert emitted.get(row.quarter) != row, "re-emitted an unchanged quarter"
                emitted[row.quarter] = row
            for label in changes.removed:
                del emitted[label]
            # what was emitted, folded like a compacted topic, is the whole truth
            assert emitted == {row.quarter: row for row in expected}
        assert tracker.quarters() == expected


@settings(max_examples=100, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_order_of_arrival_does_not_matter(events: list[dict], rnd) -> None:
    shuffled = list(events)
    rnd.shuffle(shuffled)
    results = []
    for sequence in (events, shuffled):
        book = _book()
        for raw in sequence:
            book.apply(event_from_obj(raw))
        results.append(velocity_by_quarter(book, TARGET))
        assert VelocityTracker.from_book(book, TARGET).quarters() == results[-1]
    assert results[0] == results[1]


def test_a_moved_start_removes_the_emptied_quarter() -> None:
    book, tracker = _book(), VelocityTracker(TARGET)
    first = incident_event("e1", "a", BASE)
    moved = incident_event("e2", "a", BASE + timedelta(days=120), occurred=BASE + timedelta(
        days=130), kind="incident.updated")
    for raw in (first,):
        event = event_from_obj(raw)
        book.apply(event)
        tracker.apply(book, event)
    assert [r.quarter for r in tracker.take_changed().changed] == ["2026-Q1"]
    event = event_from_obj(moved)
    book.apply(event)
    tracker.apply(book, event)
    changes = tracker.take_changed()
    assert [r.quarter for r in changes.changed] == ["2026-Q2"]
    assert changes.removed == ["2026-Q1"]
    assert tracker.take_changed().changed == []
