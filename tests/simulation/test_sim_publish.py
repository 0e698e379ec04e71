"""`simulate stream` publishes to a real Kafka-compatible broker (docs/architecture.md §6)."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.cli import main
from app.simulation.catalog import load_simulation_policy
from app.simulation.feed import ALERTS_TOPIC, DEFAULT_START, INCIDENTS_TOPIC, generate_stream
from tests.support.repository import SIMULATION_POLICY

pytestmark = pytest.mark.broker


def _read_until(bootstrap: str, wanted: set[str], prefix: str,
                timeout: float = 30.0) -> dict[str, tuple]:
    """Consume both (prefixed) topics from the start until every wanted event id was seen."""
    names = (prefix + INCIDENTS_TOPIC, prefix + ALERTS_TOPIC)

    async def run() -> dict[str, tuple]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                    enable_auto_commit=False)
        await consumer.start()
        seen: dict[str, tuple] = {}
        try:
            deadline = time.monotonic() + timeout
            tps: list[TopicPartition] = []
            while time.monotonic() < deadline:
                topics = await consumer.topics()
                if set(names) <= topics:
                    tps = [TopicPartition(t, p) for t in names
                           for p in sorted(consumer.partitions_for_topic(t) or ())]
                    break
                await asyncio.sleep(0.2)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while not wanted <= set(seen) and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    for m in messages:
                        event_id = orjson.loads(m.value)["event_id"]
                        seen[event_id] = (m.topic, m.key, m.value)
            return seen
        finally:
            await consumer.stop()

    return asyncio.run(run())


def test_stream_reaches_the_broker_keyed_by_incident_and_fingerprint(cli, kafka_bootstrap,
                                                                    tmp_path, monkeypatch):
    truth_file = tmp_path / "truth.json"
    prefix = f"sim-{time.time_ns()}."  # own topics, whatever else shares the broker
    monkeypatch.setenv("INTEL_TOPIC_PREFIX", prefix)
    result = cli.invoke(main, ["simulate", "stream", "--rate", "200", "--duration", "1",
                               "--seed", "21", "--bootstrap", kafka_bootstrap,
                               "--truth", str(truth_file), "--policy", str(SIMULATION_POLICY)])
    assert result.exit_code == 0, result.output
    assert "published 200 records" in result.output
    records, _ = generate_stream(21, DEFAULT_START, 200, 1,
                                 load_simulation_policy(SIMULATION_POLICY).stream)
    wanted = {r.payload["event_id"]: r for r in records}
    seen = _read_until(kafka_bootstrap, set(wanted), prefix)
    assert set(wanted) == set(seen)
    for event_id, record in wanted.items():
        topic, key, value = seen[event_id]
        assert topic == prefix + record.topic
        assert key == record.key_bytes()
        assert value == record.value_bytes()
    assert truth_file.is_file()

