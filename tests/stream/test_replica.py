"""The replica without a broker: folding, ``as_of``, what output topics tell it, and the
learning.velocity output (through :class:`app.stream.testing.StreamHarness`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from app.contracts import QuarterVelocity, dump_json
from app.intel.periods import EPOCH
from app.intel.velocity_quarters import velocity_by_quarter
from app.stream.cycle import VELOCITY_SECONDS, velocity_record_id
from app.stream.testing import StreamHarness
from tests.support.builders import incident_event
from tests.support.policies import default_policy


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _bytes(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def _learning(event_id: str, kind: str, occurred: str, incident_id: str) -> bytes:
    return orjson.dumps({"event_id": event_id, "type": kind, "occurred_at": occurred,
                         "incident_id": incident_id, "test_id": f"t-{event_id}"})


def _alert(event_id: str, occurred: str, incident_id: str) -> bytes:
    return orjson.dumps({
        "event_id": event_id, "type": "alert.transition", "occurred_at": occurred,
        "alert": {"alert_id": "a-1", "fingerprint": "fp-1", "service": "gateway",
                  "kind": "error_rate", "severity": "P2", "env": "prod", "labels": {}},
        "from_state": "pending", "to_state": "firing", "incident_id": incident_id})


@pytest.fixture
def harness() -> Iterator[StreamHarness]:
    harness = StreamHarness(default_policy(), leader=True)
    yield harness
    harness.close()


def _incident(harness: StreamHarness, incident_id: str, **fields: Any) -> None:
    """One incident event in its own cycle, one velocity interval after the last."""
    harness.now += VELOCITY_SECONDS
    harness.feed("incidents.events", [(incident_id.encode(),
                                       _bytes(incident_event(incident_id, **fields)))])


def _velocity(harness: StreamHarness) -> dict[str, QuarterVelocity | None]:
    """The last record per key, as a compacted topic keeps it (None = tombstone)."""
    return {(key or b"").decode(): None if value is None
            else QuarterVelocity.model_validate_json(value)
            for key, value in harness.latest("learning.velocity").items()}


def test_as_of_is_the_newest_event_time_applied_whatever_the_order(
        harness: StreamHarness) -> None:
    replica = harness.replica
    assert replica.as_of() == EPOCH
    late = incident_event("inc-1", started=_at("2026-02-18T14:00:00"),
                          occurred=_at("2026-02-18T15:00:00"), status="mitigating")
    early = incident_event("inc-1", started=_at("2026-02-18T14:00:00"))
    harness.feed("incidents.events", [(b"inc-1", _bytes(late)), (b"inc-1", _bytes(early)),
                                      (b"bad", b"{not json")])
    assert replica.as_of() == _at("2026-02-18T15:00:00")
    assert replica.applied == 2
    assert replica.engine.record("inc-1").status == "mitigating"


def test_output_topics_feed_the_digest_and_dedupe_views(harness: StreamHarness) -> None:
    harness.feed("intel.digests", [(b"2026-W08", b"{}")])
    assert "2026-W08" in harness.replica.digests
    assert harness.replica.applied == 0  # outputs are not events
    assert harness.replica.as_of() == EPOCH


def test_velocity_reads_the_tracker_and_equals_the_batch_computation(
        harness: StreamHarness) -> None:
    _incident(harness, "inc-1", started=_at("2026-02-18T14:00:00"), signature="ab" * 32)
    _incident(harness, "inc-2", started=_at("2026-04-02T09:00:00"), signature="ab" * 32)
    harness.feed("alerts.state", [(b"fp-1", _alert("al-1", "2026-04-02T09:03:00Z", "inc-2"))])
    harness.feed("learning.events", [(b"inc-1", _learning(
        "le-1", "regression_test.added", "2026-04-03T10:00:00Z", "inc-1"))])
    replica = harness.replica
    stale = replica.velocity()
    harness.run([])  # the inputs pause: velocity is derived again
    quarters = replica.velocity()
    assert quarters != stale  # derived at most every VELOCITY_SECONDS while inputs flow
    assert quarters == velocity_by_quarter(replica.engine.book, replica.policy.recurrence_target)
    by_label = {q.quarter: q for q in quarters}
    assert by_label["2026-Q2"].recurrences == 1  # inc-2 repeats inc-1's signature
    assert by_label["2026-Q2"].regression_tests_added == 1
    assert by_label["2026-Q2"].detection_latency.count == 1  # from the firing alert


def test_the_leader_publishes_each_changed_quarter_once_with_a_deterministic_id(
        harness: StreamHarness) -> None:
    _incident(harness, "inc-1", started=_at("2026-02-18T14:00:00"))
    sent = harness.to("learning.velocity")
    assert [s.key for s in sent] == [b"2026-Q1"]
    assert sent[0].record_id == velocity_record_id("2026-Q1", sent[0].value)
    assert sent[0].value == dump_json(harness.replica.velocity()[0])

    _incident(harness, "inc-1", started=_at("2026-02-18T14:00:00"))  # a redelivery
    assert len(harness.to("learning.velocity")) == 1

    _incident(harness, "inc-2", started=_at("2026-02-19T14:00:00"))
    assert _velocity(harness)["2026-Q1"].incidents == 2  # type: ignore[union-attr]


def test_velocity_is_derived_at_most_once_per_interval_while_inputs_flow(
        harness: StreamHarness) -> None:
    _incident(harness, "inc-1", started=_at("2026-02-18T14:00:00"))
    harness.feed("incidents.events", [(b"inc-2", _bytes(incident_event(
        "inc-2", started=_at("2026-02-18T15:00:00"))))])  # within the interval: held
    assert _velocity(harness)["2026-Q1"].incidents == 1  # type: ignore[union-attr]
    harness.run([])  # the inputs pause: the quarter is brought up to date
    assert _velocity(harness)["2026-Q1"].incidents == 2  # type: ignore[union-attr]


def test_a_quarter_left_without_data_gets_a_tombstone(harness: StreamHarness) -> None:
    _incident(harness, "inc-1", started=_at("2026-02-18T14:00:00"))
    _incident(harness, "inc-2", started=_at("2026-05-18T14:00:00"))
    assert set(_velocity(harness)) == {"2026-Q1", "2026-Q2"}
    # inc-2's start was wrong: it moves into Q1, so Q2 holds nothing any more.
    _incident(harness, "inc-2", started=_at("2026-02-20T14:00:00"),
              occurred=_at("2026-05-18T15:00:00"), status="mitigating")
    final = _velocity(harness)
    assert final["2026-Q2"] is None
    assert final["2026-Q1"] is not None and final["2026-Q1"].incidents == 2
    assert harness.to("learning.velocity")[-1].record_id == "velocity:2026-Q2:gone"


def test_followers_and_a_replica_still_catching_up_publish_nothing(
        harness: StreamHarness) -> None:
    harness.caught_up = False
    _incident(harness, "inc-1", started=_at("2026-02-18T14:00:00"))
    harness.caught_up, harness.leader = True, False
    harness.settle()
    assert harness.to("learning.velocity") == []
    harness.leader = True  # leadership moves here: everything it knows goes out
    harness.settle()
    assert [s.key for s in harness.to("learning.velocity")] == [b"2026-Q1"]


def test_a_bad_record_on_an_output_topic_is_skipped_not_replayed(
        harness: StreamHarness) -> None:
    harness.feed("intel.followups", [(b"inc-1", b"{not a follow-up")])
    harness.feed("intel.recurrence", [(b"kind:oom", b"\xff")])
    harness.feed("incidents.events", [(b"inc-1", _bytes(incident_event(
        "inc-1", started=_at("2026-02-18T14:00:00"))))])
    assert harness.replica.applied == 1 and harness.publisher.emitted == set()
    assert harness.replica.engine.record("inc-1").status == "open"
