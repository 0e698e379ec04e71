"""The worker's topics on a real broker: created once, with the partitions and compaction asked."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app.stream.app import catalog_topics, ensure_topics
from app.stream.settings import WorkerSettings

pytestmark = pytest.mark.broker


async def _describe(bootstrap: str, names: list[str]) -> tuple[dict[str, int], dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        partitions = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)}
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
        policies = {}
        for response in responses:
            for resource in response.resources:
                entries = {entry[0]: entry[1] for entry in resource[4]}
                policies[resource[3]] = entries.get("cleanup.policy", "delete")
        return partitions, policies
    finally:
        await admin.close()


def test_ensure_topics_creates_every_topic_once(kafka_bootstrap: str) -> None:
    settings = WorkerSettings(
        bootstrap_servers=kafka_bootstrap, partitions=3, topic_prefix=f"t-{uuid.uuid4().hex[:8]}."
    )
    names = [settings.topic(spec.name) for spec in catalog_topics()]

    assert sorted(asyncio.run(ensure_topics(settings))) == sorted(names)
    assert asyncio.run(ensure_topics(settings)) == []  # idempotent: a restart changes nothing

    partitions, policies = asyncio.run(_describe(kafka_bootstrap, names))
    assert partitions == {name: 3 for name in names}
    for spec in catalog_topics():
        expected = "compact" if spec.compacted else "delete"
        assert policies[settings.topic(spec.name)] == expected, spec.name
