"""What the owner of an input partition emits: dead letters, correlations, notes.

Driven through :class:`app.stream.testing.StreamHarness` (the worker's data path over
lists of records, no broker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from app.contracts import MAX_EVENT_BYTES, CorrelateRequest, DlqRecord, Note, dump_json
from app.policy import load_policy
from app.stream.app import catalog_topics, create_app
from app.stream.emitter import partition_of
from app.stream.inputs import Rejected, check_record
from app.stream.settings import WorkerSettings
from app.stream.testing import StreamHarness

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "policy")

GOOD = {
    "event_id": "e-000123",
    "type": "incident.opened",
    "occurred_at": "2026-02-18T14:30:00Z",
    "incident": {
        "incident_id": "inc_20260218_1430_abc123",
        "service": "gateway",
        "severity": "P1",
        "status": "open",
        "title": "5xx spike on /v1/chat",
        "started_at": "2026-02-18T14:30:00",
    },
}
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
NO_CLOCK: dict[str, Any] = {"received_ms": None, "policy": POLICY.intel}


def _raw(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _related(incident_id: str, minutes: int) -> dict[str, Any]:
    """An incident of GOOD's signature started ``minutes`` later."""
    incident = {**GOOD["incident"], "incident_id": incident_id,
                "started_at": f"2026-02-18T14:{30 + minutes:02d}:00Z"}
    return {**GOOD, "event_id": f"e-{incident_id}", "incident": incident}


def _cycle(harness: StreamHarness, puts: list[tuple[bytes | None, bytes, int]],
           headers: dict[bytes | None, list[tuple[str, bytes]]]) -> None:
    batch: dict[int, list[Any]] = {}
    for key, value, partition in puts:
        topic, record = harness.record("incidents.events", key, value, partition=partition,
                                       headers=headers.get(key, []))
        batch.setdefault(partition, []).append(record)
    harness.run([(topic, records) for _, records in sorted(batch.items())])


def test_invalid_records_are_dead_lettered_and_applied_incidents_correlated() -> None:
    harness = StreamHarness(POLICY, prefix="t.")
    bad_severity = {**GOOD, "incident": {**GOOD["incident"], "severity": "P7"}}
    stale = {**GOOD, "event_id": "e-older", "occurred_at": "2026-02-18T14:00:00Z"}
    _cycle(harness, [
        (b"k-bad", b"{not json", 3),
        (b"k-sev", _raw(bad_severity), 3),
        (b"k-good", _raw(GOOD), 3),
        (None, _raw({**GOOD, "type": "incident.deleted"}), 0),
        (b"k-rel", _raw(_related("inc-rel", 5)), 0),
        (b"k-good", _raw(stale), 0),  # an older version: its incident speaks for itself
    ], {b"k-rel": [("traceparent", TRACE.encode())]})

    assert harness.emission.stats.as_dict() == {
        "valid": 3, "invalid": 3, "by_type": {"incident.opened": 3}}
    dead_letters = harness.to("intel.dlq")
    assert [s.key for s in dead_letters] == [None, b"k-bad", b"k-sev"]
    dead = [DlqRecord.model_validate_json(s.value or b"") for s in dead_letters]
    assert [(r.source_topic, r.partition, r.offset) for r in dead] == [
        ("t.incidents.events", 0, 0), ("t.incidents.events", 3, 0),
        ("t.incidents.events", 3, 1)]
    assert "incident.deleted" in dead[0].error
    assert dead[1].error.startswith("not JSON")
    assert "severity" in dead[2].error
    assert dead[2].raw_bytes() == _raw(bad_severity)
    assert [s.headers["intel-error-class"] for s in dead_letters] == [
        "invalid", "not_json", "invalid"]
    assert [s.record_id for s in dead_letters] == [
        "dlq:t.incidents.events:0:0", "dlq:t.incidents.events:3:0", "dlq:t.incidents.events:3:1"]
    # Each incident's current version got its correlation once, from the replica's engine.
    engine = harness.replica.engine
    correlations = harness.to("intel.correlations")
    assert sorted(s.key or b"" for s in correlations) == [b"inc-rel",
                                                          b"inc_20260218_1430_abc123"]
    for sent in correlations:
        answer = engine.correlate(CorrelateRequest(action="correlate",
                                                   incident_id=(sent.key or b"").decode()))
        assert sent.value == dump_json(answer)
        assert answer.related_count == 1
        assert sent.headers["ce_type"] == "io.incident-intel.intel.correlations.v1"
    traced = [s for s in correlations + harness.to("incidents.notes")
              if s.headers.get("traceparent") == TRACE]
    assert sorted(s.topic for s in traced) == ["incidents.notes", "intel.correlations"]
    assert all(s.key == b"inc-rel" for s in traced)
    notes = [Note.model_validate_json(s.value or b"") for s in harness.to("incidents.notes")]
    assert sorted(n.incident_id for n in notes) == ["inc-rel", "inc_20260218_1430_abc123"]
    # The stale version counts as a duplicate, the others as applied.
    counted = harness.metrics.input_records
    assert counted.value(topic="incidents.events", outcome="duplicate", reason="none") == 1
    assert counted.value(topic="incidents.events", outcome="applied", reason="none") == 2
    harness.close()


def test_only_the_owner_emits_and_only_from_the_offset_it_owns_the_partition_from() -> None:
    owner = StreamHarness(POLICY, partitions=2, owned=[0])
    other = StreamHarness(POLICY, partitions=2, owned=[1])
    keys = [f"inc-{n}".encode() for n in range(12)]
    events = [_raw(_related(f"inc-{n}", n)) for n in range(12)]
    for harness in (owner, other):
        harness.floors[("incidents.events", 0)] = 3  # a previous owner emitted offsets 0..2
        harness.feed("incidents.events", zip(keys, events, strict=True))
    emitted = {name: {s.key for s in h.to("intel.correlations")}
               for name, h in (("owner", owner), ("other", other))}
    partition_0 = [k for k in keys if partition_of(k, 2) == 0]
    partition_1 = [k for k in keys if partition_of(k, 2) == 1]
    assert emitted["owner"] == set(partition_0[3:])
    assert emitted["other"] == set(partition_1)
    # Each commits what it read of its own partitions, and of nothing else.
    assert owner.committed == {("incidents.events", 0): len(partition_0)}
    assert other.committed == {("incidents.events", 1): len(partition_1)}
    for harness in (owner, other):
        harness.close()


def test_an_event_far_ahead_of_its_record_timestamp_is_dead_lettered() -> None:
    received = 1771425000000  # 2026-02-18T14:30:00Z in milliseconds
    ahead = {**GOOD, "occurred_at": "2026-02-18T15:31:00Z"}
    result = check_record(_raw(ahead), key=None, topic="incidents.events", partition=0,
                          offset=0, received_ms=received, policy=POLICY.intel)
    assert isinstance(result, Rejected)
    assert result.reason == "future_skew"
    assert "ahead of the receiving clock" in result.dead_letter.error
    within = {**GOOD, "occurred_at": "2026-02-18T15:29:00Z"}
    assert not isinstance(check_record(_raw(within), key=None, topic="incidents.events",
                                       partition=0, offset=0, received_ms=received,
                                       policy=POLICY.intel), Rejected)


@pytest.mark.parametrize(
    ("raw", "reason", "text"),
    [
        (None, "empty", "empty record"),
        (b"", "not_json", "not JSON"),
        (b"[1, 2]", "invalid", "expected a JSON object"),
        (b"\x00\xff", "not_json", "not JSON"),
    ],
)
def test_check_record_explains_rejections(raw: bytes | None, reason: str, text: str) -> None:
    result = check_record(raw, key=b"k", topic="incidents.events", partition=1, offset=7,
                          **NO_CLOCK)
    assert isinstance(result, Rejected)
    assert result.reason == reason
    assert text in result.dead_letter.error
    assert (result.dead_letter.partition, result.dead_letter.offset,
            result.dead_letter.key) == (1, 7, "k")
    assert result.dead_letter.raw_bytes() == (raw or b"")


def test_oversized_records_are_dead_lettered_truncated() -> None:
    raw = b"\xff" * (MAX_EVENT_BYTES + 10)
    result = check_record(raw, key=None, topic="incidents.events", partition=0, offset=1,
                          **NO_CLOCK)
    assert isinstance(result, Rejected)
    assert result.reason == "too_large"
    assert "too large" in result.dead_letter.error and "truncated" in result.dead_letter.error
    assert result.dead_letter.raw_bytes() == raw[:MAX_EVENT_BYTES]


def test_check_record_passes_valid_events_through() -> None:
    result = check_record(_raw(GOOD), key=None, topic="incidents.events", partition=0,
                          offset=0, **NO_CLOCK)
    assert not isinstance(result, Rejected)
    assert result.type == "incident.opened"


def test_the_input_topics_are_subscribed_with_the_prefix_for_membership() -> None:
    app = create_app(WorkerSettings(topic_prefix="pr.", partitions=3))
    names = {topic.get_topic_name(): topic.partitions for topic in app.topics}
    inputs = {spec.name for spec in catalog_topics() if spec.direction == "in"}
    assert names == {f"pr.{name}": 3 for name in inputs}


def test_topics_agree_with_the_catalog() -> None:
    catalog = yaml.safe_load((REPO / "topics" / "catalog.yml").read_text())["topics"]
    assert {spec.name for spec in catalog_topics()} == set(catalog)
    for spec in catalog_topics():
        entry = catalog[spec.name]
        assert spec.direction == entry["direction"], spec.name
        assert spec.compacted == (entry["cleanup_policy"] == "compact"), spec.name


def test_app_uses_only_intel_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_PORT", "1234")  # Faust's own variable must not leak in
    settings = WorkerSettings(
        bootstrap_servers="k1:9092,k2:9093", web_port=7070, web_host="0.0.0.0", app_id="x-1"
    )
    app = create_app(settings)
    assert app.conf.id == "x-1"
    assert app.conf.web_port == 7070
    assert app.conf.web_bind == "0.0.0.0"
    assert [str(url) for url in app.conf.broker] == ["intel-kafka://k1:9092",
                                                      "intel-kafka://k2:9093"]
    assert app.conf.broker_session_timeout == settings.session_timeout


def test_a_partition_gained_behind_the_replica_is_emitted_again_before_it_is_committed() -> None:
    """A new owner whose replica read past the group's committed offset seeks back: the
    records in between are emitted (not applied) again, and the commit follows the
    reading, never jumping to what the replica had read before."""
    harness = StreamHarness(POLICY, partitions=1, owned=[])
    records = [harness.record("incidents.events", f"inc-{n}".encode(),
                              _raw(_related(f"inc-{n}", n)), partition=0) for n in range(10)]
    topic = records[0][0]
    harness.run([(topic, [r for _, r in records])])  # read while another worker owned it
    assert harness.to("intel.correlations") == [] and harness.replica.applied == 10
    harness.owned = frozenset({0})
    harness.floors[(topic, 0)] = 5  # what the previous owner committed
    harness.cycle.rewind((topic, 0), 5)
    harness.run([(topic, [r for _, r in records[5:7]])])
    assert harness.committed == {(topic, 0): 7}  # not 10: records 7..9 are not emitted yet
    harness.run([(topic, [r for _, r in records[7:]])])
    assert harness.committed == {(topic, 0): 10}
    assert sorted(s.key for s in harness.to("intel.correlations")) == [
        f"inc-{n}".encode() for n in range(5, 10)]
    assert harness.replica.applied == 10  # read again, not applied again
    harness.close()


def test_a_verdict_sends_the_correlation_records_of_its_pair_again_by_their_owners() -> None:
    verdict = _raw({"event_id": "v-1", "type": "incident.linked",
                    "occurred_at": "2026-02-18T15:00:00Z", "incident_id": "inc-rel",
                    "related_incident_id": "inc_20260218_1430_abc123", "verdict": "related",
                    "by": "oncall"})
    incidents = [(b"inc_20260218_1430_abc123", _raw(GOOD)),
                 (b"inc-rel", _raw(_related("inc-rel", 5)))]
    # With 4 partitions the two incidents live in partitions 0 and 2.
    owners = {p: StreamHarness(POLICY, partitions=4, owned=[p, p + 1]) for p in (0, 2)}
    resent: set[bytes | None] = set()
    for harness in owners.values():
        harness.feed("incidents.events", incidents)
        before = len(harness.to("intel.correlations"))
        harness.feed("learning.events", [(b"inc-rel", verdict)])
        again = harness.to("intel.correlations")[before:]
        # Each worker sends the records of the incidents whose partition it owns.
        assert {s.key for s in again} == {k for k, _ in incidents
                                         if partition_of(k, 4) in harness.owned}
        assert len(again) == 1
        for sent in again:
            related = orjson.loads(sent.value or b"")["related"]
            assert [r["verdict"] for r in related] == ["related"]
        resent |= {s.key for s in again}
        harness.close()
    assert resent == {k for k, _ in incidents}  # each pair member once, by its owner
