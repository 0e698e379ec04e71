"""The ingest agent in Faust's test context (no broker): what is counted, what is dead-lettered."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.contracts import MAX_EVENT_BYTES, DlqRecord
from app.stream.app import INTERNAL_TOPICS, TOPICS, create_app
from app.stream.ingest import check_record
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


def _raw(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def test_invalid_records_are_dead_lettered_and_the_stream_goes_on() -> None:
    app = create_app(WorkerSettings(app_id="t-ingest", topic_prefix="t."))
    agent = app.agents["incidents"]
    outbox = recording(app)
    bad_severity = {**GOOD, "incident": {**GOOD["incident"], "severity": "P7"}}

    async def feed() -> None:
        async with agent.test_context() as ctx:
            await ctx.put(b"{not json", key=b"k-bad", partition=3)
            await ctx.put(_raw(bad_severity), key=b"k-sev", partition=3)
            await ctx.put(_raw(GOOD), key=b"k-good", partition=3)
            await ctx.put(_raw({**GOOD, "type": "incident.deleted"}), key=None)

    asyncio.run(feed())

    assert app.ingest_stats.as_dict() == {
        "valid": 1,
        "invalid": 3,
        "by_type": {"incident.opened": 1},
    }
    keys = [sent.key for sent in outbox.to("intel.dlq")]
    assert keys == [b"k-bad", b"k-sev", None]
    records = [DlqRecord.model_validate_json(sent.value) for sent in outbox.to("intel.dlq")]
    # The valid event became an incident change for its three attribute keys and bucket.
    assert sorted(s.key.split(b":")[0] for s in outbox.to("by-attribute")) == [
        b"kind", b"service", b"signature"]
    assert [s.key for s in outbox.to("by-bucket")] == [b"gateway|error_rate"]
    assert [(r.source_topic, r.partition, r.offset) for r in records] == [
        ("t.incidents.events", 3, 0),
        ("t.incidents.events", 3, 1),
        ("t.incidents.events", 0, 3),
    ]
    assert records[0].error.startswith("not JSON")
    assert "severity" in records[1].error
    assert "incident.deleted" in records[2].error
    assert records[1].raw_bytes() == _raw(bad_severity)


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
    result = check_record(raw, key=b"k", topic="incidents.events", partition=1, offset=7)
    assert isinstance(result, DlqRecord)
    assert reason in result.error
    assert (result.partition, result.offset, result.key) == (1, 7, "k")
    assert result.raw_bytes() == (raw or b"")


def test_oversized_records_are_dead_lettered_truncated() -> None:
    raw = b"\xff" * (MAX_EVENT_BYTES + 10)
    result = check_record(raw, key=None, topic="incidents.events", partition=0, offset=1)
    assert isinstance(result, DlqRecord)
    assert "too large" in result.error and "truncated" in result.error
    assert result.raw_bytes() == raw[:MAX_EVENT_BYTES]


def test_check_record_passes_valid_events_through() -> None:
    result = check_record(_raw(GOOD), key=None, topic="incidents.events", partition=0, offset=0)
    assert not isinstance(result, DlqRecord)
    assert result.type == "incident.opened"


def test_every_design_topic_is_declared_with_the_prefix() -> None:
    settings = WorkerSettings(topic_prefix="pr.", partitions=3)
    app = create_app(settings)
    internal = {spec.name for spec in INTERNAL_TOPICS}
    assert set(app.topics_by_name) == {spec.name for spec in TOPICS} | internal
    for name in internal:  # repartition topics belong to the app id, not the prefix
        assert app.intel_topic(name).get_topic_name() == f"incident-intel-intel-{name}-repartition"
    for spec in TOPICS:
        topic = app.intel_topic(spec.name)
        assert topic.get_topic_name() == f"pr.{spec.name}"
        assert topic.partitions == 3


def test_topics_agree_with_the_catalog() -> None:
    catalog_path = REPO / "topics" / "catalog.yml"
    if not catalog_path.exists():
        pytest.skip("topics/catalog.yml not written yet")
    catalog = yaml.safe_load(catalog_path.read_text())["topics"]
    assert {spec.name for spec in TOPICS} == set(catalog)
    for spec in TOPICS:
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
