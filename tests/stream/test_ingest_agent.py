"""The input agent in Faust's test context (no broker): what is counted, what is
dead-lettered, what is correlated."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.contracts import MAX_EVENT_BYTES, CorrelateRequest, DlqRecord, Note, dump_json
from app.policy import load_policy
from app.stream.app import catalog_topics, create_app
from app.stream.ingest import check_record
from app.stream.replica import Received
from app.stream.settings import WorkerSettings
from tests.stream.conftest import recording

REPO = Path(__file__).resolve().parents[2]

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
NO_CLOCK: dict[str, Any] = {"received_ms": None,
                            "policy": load_policy(REPO / "policy").intel}


def _raw(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _related(incident_id: str, minutes: int) -> dict[str, Any]:
    """An incident of GOOD's signature started ``minutes`` later."""
    incident = {**GOOD["incident"], "incident_id": incident_id,
                "started_at": f"2026-02-18T14:{30 + minutes:02d}:00Z"}
    return {**GOOD, "event_id": f"e-{incident_id}", "incident": incident}


def test_invalid_records_are_dead_lettered_and_applied_incidents_correlated() -> None:
    app = create_app(WorkerSettings(app_id="t-ingest", topic_prefix="t."))
    agent = app.agents["incidents"]
    outbox = recording(app)
    app.is_leader = lambda: False  # no consumer group without a broker
    bad_severity = {**GOOD, "incident": {**GOOD["incident"], "severity": "P7"}}
    stale = {**GOOD, "event_id": "e-older", "occurred_at": "2026-02-18T14:00:00Z"}
    puts = [  # (key, value, partition), offsets follow the order of the puts
        (b"k-bad", b"{not json", 3),
        (b"k-sev", _raw(bad_severity), 3),
        (b"k-good", _raw(GOOD), 3),
        (None, _raw({**GOOD, "type": "incident.deleted"}), 0),
        (b"k-rel", _raw(_related("inc-rel", 5)), 0),  # carries a traceparent (below)
        (b"k-good", _raw(stale), 0),  # an older version: its incident speaks for itself
    ]
    records = [Received(key, value, partition, offset)
               for offset, (key, value, partition) in enumerate(puts)]
    # The replica applies every record first (in a worker its own consumer does).
    asyncio.run(app.replica.absorb(
        [("t.incidents.events", [r for r in records if r.partition == p]) for p in (0, 3)]))

    async def feed() -> None:
        async with agent.test_context() as ctx:
            for key, value, partition in puts:
                headers = [("traceparent", TRACE.encode())] if key == b"k-rel" else None
                await ctx.put(value, key=key, partition=partition, headers=headers)

    asyncio.run(feed())

    assert app.ingest_stats.as_dict() == {
        "valid": 3,
        "invalid": 3,
        "by_type": {"incident.opened": 3},
    }
    keys = [sent.key for sent in outbox.to("intel.dlq")]
    assert keys == [b"k-bad", b"k-sev", None]
    dead = [DlqRecord.model_validate_json(sent.value) for sent in outbox.to("intel.dlq")]
    assert [(r.source_topic, r.partition, r.offset) for r in dead] == [
        ("t.incidents.events", 3, 0),
        ("t.incidents.events", 3, 1),
        ("t.incidents.events", 0, 3),
    ]
    assert dead[0].error.startswith("not JSON")
    assert "severity" in dead[1].error
    assert "incident.deleted" in dead[2].error
    assert dead[1].raw_bytes() == _raw(bad_severity)
    # Each incident's current version got its correlation once, from the replica's engine.
    engine = app.replica.engine
    correlations = outbox.to("intel.correlations")
    assert sorted(s.key for s in correlations) == [b"inc-rel", b"inc_20260218_1430_abc123"]
    for sent in correlations:
        answer = engine.correlate(CorrelateRequest(action="correlate",
                                                   incident_id=sent.key.decode()))
        assert sent.value == dump_json(answer)
        assert answer.related_count == 1
    traced = [s for s in correlations + outbox.to("incidents.notes")
              if s.headers.get("traceparent") == TRACE]
    assert sorted(s.name for s in traced) == ["incidents.notes", "intel.correlations"]
    assert all(s.key == b"inc-rel" for s in traced)
    dead = outbox.to("intel.dlq")
    assert [s.headers["intel-error-class"] for s in dead] == ["not_json", "invalid", "invalid"]
    assert dead[0].headers["intel-source-offset"] == "0"
    notes = [Note.model_validate_json(s.value) for s in outbox.to("incidents.notes")]
    assert sorted(n.incident_id for n in notes) == ["inc-rel", "inc_20260218_1430_abc123"]


def test_an_event_far_ahead_of_its_record_timestamp_is_dead_lettered() -> None:
    policy = load_policy(REPO / "policy").intel
    received = 1771425000000  # 2026-02-18T14:30:00Z in milliseconds
    ahead = {**GOOD, "occurred_at": "2026-02-18T15:31:00Z"}
    result = check_record(_raw(ahead), key=None, topic="incidents.events", partition=0,
                          offset=0, received_ms=received, policy=policy)
    assert isinstance(result, DlqRecord)
    assert "ahead of the receiving clock" in result.error
    within = {**GOOD, "occurred_at": "2026-02-18T15:29:00Z"}
    assert not isinstance(check_record(_raw(within), key=None, topic="incidents.events",
                                       partition=0, offset=0, received_ms=received,
                                       policy=policy), DlqRecord)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty record"),
        (b"", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b"\x00\xff", "not JSON"),
    ],
)
def test_check_record_explains_rejections(raw: bytes | None, reason: str) -> None:
    result = check_record(raw, key=b"k", topic="incidents.events", partition=1, offset=7,
                          **NO_CLOCK)
    assert isinstance(result, DlqRecord)
    assert reason in result.error
    assert (result.partition, result.offset, result.key) == (1, 7, "k")
    assert result.raw_bytes() == (raw or b"")


def test_oversized_records_are_dead_lettered_truncated() -> None:
    raw = b"\xff" * (MAX_EVENT_BYTES + 10)
    result = check_record(raw, key=None, topic="incidents.events", partition=0, offset=1,
                          **NO_CLOCK)
    assert isinstance(result, DlqRecord)
    assert "too large" in result.error and "truncated" in result.error
    assert result.raw_bytes() == raw[:MAX_EVENT_BYTES]


def test_check_record_passes_valid_events_through() -> None:
    result = check_record(_raw(GOOD), key=None, topic="incidents.events", partition=0,
                          offset=0, **NO_CLOCK)
    assert not isinstance(result, DlqRecord)
    assert result.type == "incident.opened"


def test_every_catalog_topic_is_declared_with_the_prefix() -> None:
    settings = WorkerSettings(topic_prefix="pr.", partitions=3)
    app = create_app(settings)
    assert set(app.topics_by_name) == {spec.name for spec in catalog_topics()}
    for spec in catalog_topics():
        topic = app.intel_topic(spec.name)
        assert topic.get_topic_name() == f"pr.{spec.name}"
        assert topic.partitions == 3


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
    assert [str(url) for url in app.conf.broker] == ["kafka://k1:9092", "kafka://k2:9093"]
    assert app.conf.broker_session_timeout == settings.session_timeout
