"""Property: whatever the interleaving of partitions, once the inputs pause the
latest record of every keyed output equals the engine, and follow-ups are never
sent twice.

Events (new incidents, later versions, re-sent and re-used event ids, alert
transitions, events out of order) are spread over input partitions by key;
the partitions are fetched in a random interleaving of random batch sizes by
the worker's data path (:class:`app.stream.testing.StreamHarness`), owning
every partition, then the inputs pause. The offline oracle
is a fresh engine fed the same events in file order, as ``incident-intel tool``
does.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.contracts import CorrelateRequest, FollowUp, RecurrenceUpdate, decode_event, dump_json
from app.intel.engine import IntelEngine
from app.intel.periods import from_micros, week_end, week_label
from app.intel.publication import BUCKETS, RECURRENCE
from app.stream.inputs import Received
from app.stream.testing import Produced, StreamHarness
from tests.support.builders import at, incident_event
from tests.support.policies import default_policy

PARTITIONS = 3
SERVICES = ("gateway", "billing")
KINDS = ("error_rate", "oom")


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Incidents over ~50 days in a few services and kinds, each with 1-3 versions."""
    events: list[dict[str, Any]] = []
    for n in range(draw(st.integers(1, 25))):
        started = at(days=draw(st.integers(-10, 40)), hours=draw(st.integers(0, 23)))
        service, kind = draw(st.sampled_from(SERVICES)), draw(st.sampled_from(KINDS))
        signature = draw(st.sampled_from(["a" * 64, "b" * 64]))
        for v in range(draw(st.integers(1, 3))):
            status = "open" if v == 0 else draw(st.sampled_from(["mitigating", "resolved"]))
            occurred = started + timedelta(hours=draw(st.integers(0, 48)) * v)
            title = draw(st.sampled_from(["5xx spike", "queue backlog"]))  # moves the label
            event = incident_event(f"inc-{n}", started=started, service=service, kind=kind,
                                   signature=signature, status=status, occurred=occurred,
                                   title=title,
                                   etype="incident.opened" if v == 0 else "incident.updated")
            if draw(st.booleans()) and events:  # an event id re-used for another event
                event["event_id"] = draw(st.sampled_from(events))["event_id"]
            events.append(event)
    resent = draw(st.lists(st.sampled_from(events), max_size=5)) if events else []
    alert = {"event_id": "al-1", "type": "alert.transition", "occurred_at":
             events[0]["occurred_at"], "alert": {"alert_id": "a", "fingerprint": "fp",
             "service": "gateway", "kind": "oom", "severity": "P2", "env": "prod",
             "labels": {}}, "from_state": "pending", "to_state": "firing",
             "incident_id": "inc-0"}
    return events + resent + [alert]


def _by_partition(harness: StreamHarness,
                  events: list[dict[str, Any]]) -> dict[tuple[str, int], list[Received]]:
    out: dict[tuple[str, int], list[Received]] = {}
    for event in events:
        topic = "incidents.events" if event["type"].startswith("incident.") else "alerts.state"
        key = (event["incident"]["incident_id"] if topic == "incidents.events"
               else event["alert"]["fingerprint"]).encode()
        real, record = harness.record(topic, key, orjson.dumps(event))
        out.setdefault((real, record.partition), []).append(record)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=histories(), data=st.data())
def test_settled_outputs_equal_the_engine_whatever_the_interleaving(
        events: list[dict[str, Any]], data: st.DataObject) -> None:
    harness = StreamHarness(default_policy(), partitions=PARTITIONS, leader=False,
                            settle_seconds=float("inf"))  # no re-statement before the pause
    queues = {tp: list(records) for tp, records in _by_partition(harness, events).items()}
    while any(queues.values()):
        tp = data.draw(st.sampled_from(sorted(tp for tp, q in queues.items() if q)))
        size = data.draw(st.integers(1, 4))
        batch, queues[tp] = queues[tp][:size], queues[tp][size:]
        harness.run([(tp[0], batch)])
    engine = IntelEngine(harness.replica.policy)
    engine.apply_all(decode_event(orjson.dumps(e)) for e in events)
    replica = harness.replica
    # One input rule: the replica's state is the tool's, re-used event ids included.
    assert sorted(replica.engine.book.incidents) == sorted(engine.book.incidents)
    for incident_id in engine.book.incidents:
        request = CorrelateRequest(action="correlate", incident_id=incident_id)
        assert replica.engine.correlate(request) == engine.correlate(request)
        assert replica.engine.record(incident_id) == engine.record(incident_id)
    # Counts are right as they go: only their as_of waits for the pause.
    check_keyed(engine, harness.sent, settled=False)
    harness.publisher.settle_seconds = 0.0
    harness.settle()  # the inputs pause: the worker settles
    check_keyed(engine, harness.sent, settled=True)
    sent_keys = [FollowUp.model_validate_json(s.value or b"").meta.dedupe_key
                 for s in harness.to("intel.followups")]
    assert len(sent_keys) == len(set(sent_keys))
    assert engine.watermark is not None
    first = min(r.started for r in engine.book.incidents.values())
    week = week_label(from_micros(first))
    while week_end(week) <= from_micros(engine.watermark):
        for followup in engine.week_followups(week, frozenset()).created:
            assert followup.meta.dedupe_key in sent_keys, (week, followup.meta.dedupe_key)
        week = week_label(week_end(week))
    harness.close()


def check_keyed(engine: IntelEngine, records: list[Produced], *, settled: bool) -> None:
    """The latest record of every recurrence and bucket key equals the engine at its
    watermark (recurrence ``as_of`` too once settled)."""
    assert engine.watermark is not None
    as_of = from_micros(engine.watermark)

    latest: dict[tuple[str, bytes], bytes | None] = {}
    for sent in records:
        if sent.topic in (RECURRENCE, BUCKETS) and sent.key is not None:
            latest[(sent.topic, sent.key)] = sent.value
    for record in engine.book.incidents.values():
        for key_type in ("signature", "kind", "service"):
            key = f"{key_type}:{getattr(record, key_type)}"
            want = engine.recurrence_update(key, as_of)
            got = latest.get((RECURRENCE, key.encode()))
            if got is None:
                assert want.count_30d == 0, key
            else:
                update = RecurrenceUpdate.model_validate_json(got)
                assert (update.count_7d, update.count_30d, update.level, update.label) == (
                    want.count_7d, want.count_30d, want.level, want.label), key
                assert update.as_of == as_of or update.count_30d == 0 or not settled
        bucket = engine.bucket_summary(f"{record.service}|{record.kind}", as_of)
        got = latest.get((BUCKETS, f"{record.service}|{record.kind}".encode()))
        assert got == (None if bucket is None else dump_json(bucket))


def test_keyed_records_are_published_once_for_the_cycles_of_a_burst() -> None:
    """While inputs flow a key is rendered at most once per ``keyed_seconds``; what the
    cycles in between changed is published when the interval is up or the inputs pause."""
    harness = StreamHarness(default_policy(), partitions=1, leader=False,
                            settle_seconds=float("inf"))
    harness.publisher.keyed_seconds = 10.0
    harness.cycle_seconds = 1.0

    def incident(n: int) -> tuple[bytes, bytes]:
        event = incident_event(f"inc-{n}", started=at(hours=n), service="gateway")
        return f"inc-{n}".encode(), orjson.dumps(event)

    def service_records() -> list[RecurrenceUpdate]:
        return [RecurrenceUpdate.model_validate_json(r.value or b"")
                for r in harness.to(RECURRENCE) if r.key == b"service:gateway"]

    harness.feed("incidents.events", [incident(0)])  # the first cycle publishes
    assert [u.count_30d for u in service_records()] == [1]
    for n in range(1, 4):  # a burst within the interval: nothing keyed yet
        harness.feed("incidents.events", [incident(n)])
    assert [u.count_30d for u in service_records()] == [1]
    assert harness.to("intel.correlations"), "correlations are not held back"
    harness.run([])  # the inputs pause: everything the burst changed, once
    assert [u.count_30d for u in service_records()] == [1, 4]
    harness.now += 10.0
    for n in range(4, 6):  # the interval is up: the next cycle publishes
        harness.feed("incidents.events", [incident(n)])
    assert [u.count_30d for u in service_records()] == [1, 4, 5]
    harness.close()


def test_a_zero_record_keeps_its_label_true_and_a_quiet_key_gets_none() -> None:
    """A recurrence record at zero still names its key: a late retitle of an incident
    outside the window re-states it; a key that never had a record gets none."""
    harness = StreamHarness(default_policy(), partitions=1, leader=False,
                            settle_seconds=float("inf"))
    signature, old_only = "a" * 64, "c" * 64

    def send(event: dict[str, Any]) -> None:
        harness.feed("incidents.events", [(event["incident"]["incident_id"].encode(),
                                           orjson.dumps(event))])

    def records(key: str) -> list[RecurrenceUpdate]:
        return [RecurrenceUpdate.model_validate_json(r.value or b"")
                for r in harness.to(RECURRENCE) if r.key == key.encode()]

    first = incident_event("inc-old", started=at(), signature=signature, title="5xx spike")
    send(first)
    send(incident_event("inc-new", started=at(days=40), signature="b" * 64))
    assert [(u.count_30d, u.label) for u in records(f"signature:{signature}")][-1] == (
        0, "5xx spike · gateway/error_rate")  # aged out: a zero record says so
    send(incident_event("inc-old", started=at(), signature=signature, title="queue backlog",
                        occurred=at(days=41), etype="incident.updated"))
    latest = records(f"signature:{signature}")[-1]
    engine = harness.replica.engine
    want = engine.recurrence_update(f"signature:{signature}", from_micros(engine.watermark or 0))
    assert (latest.count_30d, latest.label) == (0, want.label)
    assert "queue backlog" in want.label
    send(incident_event("inc-older", started=at(days=1), signature=old_only))
    assert records(f"signature:{old_only}") == []  # quiet since it arrived: no record
    harness.close()
