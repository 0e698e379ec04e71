"""The live replica without a broker: folding, ``as_of`` and the learning.velocity output."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from app.contracts import QuarterVelocity, dump_json
from app.intel.periods import EPOCH
from app.intel.velocity import velocity_by_quarter
from app.stream.app import create_app
from app.stream.replica import velocity_record_id, velocity_target
from app.stream.settings import WorkerSettings
from tests.builders import incident_event
from tests.stream.conftest import RecordingOutbox, recording


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
def app(request: pytest.FixtureRequest) -> Any:
    app = create_app(WorkerSettings(app_id=f"t-replica-{request.node.name[:40]}"))
    recording(app)
    return app


def _leading(app: Any, leader: bool = True) -> None:
    app.is_leader = lambda: leader
    app.replica._ready.set()  # noqa: SLF001 - no broker: nothing to catch up with


def _velocity(outbox: RecordingOutbox) -> dict[str, QuarterVelocity | None]:
    """The last record per key, as a compacted topic keeps it (None = tombstone)."""
    out: dict[str, QuarterVelocity | None] = {}
    for sent in outbox.to("learning.velocity"):
        assert sent.key is not None
        out[sent.key.decode()] = (None if sent.value is None
                                  else QuarterVelocity.model_validate_json(sent.value))
    return out


def test_as_of_is_the_newest_event_time_applied_whatever_the_order(app: Any) -> None:
    replica = app.replica
    assert replica.as_of() == EPOCH
    late = incident_event("inc-1", started=_at("2026-02-18T14:00:00"),
                          occurred=_at("2026-02-18T15:00:00"), status="mitigating")
    early = incident_event("inc-1", started=_at("2026-02-18T14:00:00"))
    replica.apply("incidents.events", b"inc-1", _bytes(late))
    replica.apply("incidents.events", b"inc-1", _bytes(early))  # older: the state stays
    replica.apply("incidents.events", b"bad", b"{not json")  # dead-lettered elsewhere

    assert replica.as_of() == _at("2026-02-18T15:00:00")
    assert replica.applied == 2
    assert replica.engine.record("inc-1").status == "mitigating"


def test_output_topics_feed_the_digest_and_dedupe_views(app: Any) -> None:
    replica = app.replica
    replica.apply("intel.digests", b"2026-W08", b"{}")
    assert "2026-W08" in replica.digests
    assert replica.applied == 0  # outputs are not events
    assert replica.as_of() == EPOCH


def test_velocity_reads_the_tracker_and_equals_the_batch_computation(app: Any) -> None:
    replica = app.replica
    replica.apply("incidents.events", b"inc-1", _bytes(incident_event(
        "inc-1", started=_at("2026-02-18T14:00:00"), signature="ab" * 32)))
    replica.apply("incidents.events", b"inc-2", _bytes(incident_event(
        "inc-2", started=_at("2026-04-02T09:00:00"), signature="ab" * 32)))
    replica.apply("alerts.state", b"fp-1", _alert("al-1", "2026-04-02T09:03:00Z", "inc-2"))
    replica.apply("learning.events", b"inc-1", _learning(
        "le-1", "regression_test.added", "2026-04-03T10:00:00Z", "inc-1"))

    quarters = replica.velocity()
    target = velocity_target(app.policy)
    assert target == pytest.approx(0.10)
    assert quarters == velocity_by_quarter(replica.engine.book, target)
    by_label = {q.quarter: q for q in quarters}
    assert by_label["2026-Q2"].recurrences == 1  # inc-2 repeats inc-1's signature
    assert by_label["2026-Q2"].regression_tests_added == 1
    assert by_label["2026-Q2"].detection_latency.count == 1  # from the firing alert


def test_the_leader_publishes_each_changed_quarter_once_with_a_deterministic_id(
        app: Any) -> None:
    replica, outbox = app.replica, app.outbox
    _leading(app)
    first = incident_event("inc-1", started=_at("2026-02-18T14:00:00"))
    replica.apply("incidents.events", b"inc-1", _bytes(first))
    assert asyncio.run(replica.maybe_publish_velocity()) == 1

    sent = outbox.to("learning.velocity")
    assert [s.key for s in sent] == [b"2026-Q1"]
    assert sent[0].record_id == velocity_record_id("2026-Q1", sent[0].value)
    assert sent[0].value == dump_json(replica.velocity()[0])

    replica.apply("incidents.events", b"inc-1", _bytes(first))  # a redelivery changes nothing
    assert asyncio.run(replica.maybe_publish_velocity()) == 0

    replica.apply("incidents.events", b"inc-2", _bytes(incident_event(
        "inc-2", started=_at("2026-02-19T14:00:00"))))
    asyncio.run(replica.maybe_publish_velocity())
    assert _velocity(outbox)["2026-Q1"].incidents == 2  # type: ignore[union-attr]


def test_a_quarter_left_without_data_gets_a_tombstone(app: Any) -> None:
    replica, outbox = app.replica, app.outbox
    _leading(app)
    replica.apply("incidents.events", b"inc-1", _bytes(incident_event(
        "inc-1", started=_at("2026-02-18T14:00:00"))))
    replica.apply("incidents.events", b"inc-2", _bytes(incident_event(
        "inc-2", started=_at("2026-05-18T14:00:00"))))
    asyncio.run(replica.maybe_publish_velocity())
    assert set(_velocity(outbox)) == {"2026-Q1", "2026-Q2"}

    # inc-2's start was wrong: it moves into Q1, so Q2 holds nothing any more.
    moved = incident_event("inc-2", started=_at("2026-02-20T14:00:00"),
                           occurred=_at("2026-05-18T15:00:00"), status="mitigating")
    replica.apply("incidents.events", b"inc-2", _bytes(moved))
    asyncio.run(replica.maybe_publish_velocity())

    final = _velocity(outbox)
    assert final["2026-Q2"] is None
    assert final["2026-Q1"] is not None and final["2026-Q1"].incidents == 2
    tombstone = outbox.to("learning.velocity")[-1]
    assert tombstone.record_id == "velocity:2026-Q2:gone"


def test_followers_and_a_replica_still_catching_up_publish_nothing(app: Any) -> None:
    replica, outbox = app.replica, app.outbox
    replica.apply("incidents.events", b"inc-1", _bytes(incident_event(
        "inc-1", started=_at("2026-02-18T14:00:00"))))
    app.is_leader = lambda: True
    assert asyncio.run(replica.maybe_publish_velocity()) == 0  # not caught up yet
    _leading(app, leader=False)
    assert asyncio.run(replica.maybe_publish_velocity()) == 0
    assert outbox.to("learning.velocity") == []

    _leading(app, leader=True)  # leadership moves here: everything it knows goes out
    assert asyncio.run(replica.maybe_publish_velocity()) == 1
    assert [s.key for s in outbox.to("learning.velocity")] == [b"2026-Q1"]


def test_a_bad_record_on_an_output_topic_is_skipped_not_replayed(app: Any) -> None:
    replica = app.replica
    replica.apply("intel.followups", b"inc-1", b"{not a follow-up")
    replica.apply("intel.recurrence", b"kind:oom", b"\xff")
    replica.apply("intel.correlations", b"inc-1", b'{"incident_id": 3}')
    replica.apply("incidents.events", b"inc-1", _bytes(incident_event(
        "inc-1", started=_at("2026-02-18T14:00:00"))))
    assert replica.applied == 1 and replica.emitted == set()
    assert replica.engine.record("inc-1").status == "open"
