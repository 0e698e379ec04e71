"""The receivers' memory of acknowledged records: repeats skipped, twins in flight sent once,
failures passed on; and receivers without a secret are no open door."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from app.policy import Policy
from app.sources.credentials import SourceSecrets
from app.sources.kafka import KafkaRecordPublisher
from app.sources.publishing import AcknowledgedRecords, BrokerUnavailable
from app.sources.receivers import SourceReceivers, add_source_routes
from app.sources.records import SourceRecord
from tests.support.http_api import running


def record(n: int, value: bytes = b"{}") -> SourceRecord:
    return SourceRecord(topic="alerts.state", key=f"k{n}", value=value, record_id=f"id{n}",
                        source="/sources/test", time="2026-12-07T00:00:00Z")


class ScriptedBroker:
    """Acknowledges when the test says so, or fails."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail = False

    async def publish(self, records: Sequence[SourceRecord]) -> None:
        self.batches.append([r.record_id for r in records])
        await self.release.wait()
        if self.fail:
            raise BrokerUnavailable("scripted")


def test_acknowledged_records_are_not_sent_again_and_twins_share_one_send() -> None:
    async def scenario() -> None:
        broker = ScriptedBroker()
        memory = AcknowledgedRecords(broker, capacity=10)
        first = asyncio.create_task(memory.publish([record(1), record(2)]))
        await asyncio.sleep(0)
        twin = asyncio.create_task(memory.publish([record(2), record(1), record(3)]))
        await asyncio.sleep(0)
        broker.release.set()
        assert await first == (2, 0)
        assert await twin == (1, 2)
        assert broker.batches == [["id1", "id2"], ["id3"]]
        assert await memory.publish([record(1), record(3), record(3)]) == (0, 3)
        changed = await memory.publish([record(1, b'{"other":1}')])
        assert changed == (1, 0)  # same id, other content: the engine's rule decides, send it

    asyncio.run(scenario())


def test_a_failure_reaches_every_delivery_waiting_and_nothing_is_remembered() -> None:
    async def scenario() -> None:
        broker = ScriptedBroker()
        broker.fail = True
        memory = AcknowledgedRecords(broker, capacity=10)
        first = asyncio.create_task(memory.publish([record(1)]))
        await asyncio.sleep(0)
        twin = asyncio.create_task(memory.publish([record(1)]))
        await asyncio.sleep(0)
        broker.release.set()
        for task in (first, twin):
            with pytest.raises(BrokerUnavailable):
                await task
        broker.fail = False
        assert await memory.publish([record(1)]) == (1, 0)  # the retry is sent

    asyncio.run(scenario())


def test_the_memory_is_bounded_oldest_first() -> None:
    async def scenario() -> None:
        broker = ScriptedBroker()
        broker.release.set()
        memory = AcknowledgedRecords(broker, capacity=2)
        for n in (1, 2, 3):
            await memory.publish([record(n)])
        assert await memory.publish([record(2), record(3)]) == (0, 2)
        assert await memory.publish([record(1)]) == (1, 0)
        off = AcknowledgedRecords(broker, capacity=0)
        assert await off.publish([record(1)]) == await off.publish([record(1)]) == (1, 0)

    asyncio.run(scenario())


def test_receivers_without_their_secret_answer_404_and_wrong_methods_405(
        policy: Policy) -> None:
    from aiohttp import web

    # A publisher for a broker that does not exist: nothing may reach it.
    publisher = KafkaRecordPublisher("127.0.0.1:9", ack_timeout=1.0)
    receivers = SourceReceivers(policy, SourceSecrets(), publisher)
    app = web.Application()
    add_source_routes(app.router, receivers)
    with running(app) as client:
        for path in ("/v1/sources/alertmanager", "/v1/sources/alertmanager/eu",
                     "/v1/sources/pagerduty"):
            reply = client.request("POST", path, json={"version": "4", "alerts": []},
                                   token="anything-at-all-000000")
            assert reply.status == 404 and reply.error["code"] == "not_found", path
            assert client.request("GET", path).status == 405
        assert client.request("PUT", "/v1/sources/pagerduty").headers["Allow"] == "POST"
    assert not publisher.connected
    counted = receivers.metrics.source_deliveries
    assert counted.value(receiver="alertmanager", outcome="disabled") == 2
    assert counted.value(receiver="pagerduty", outcome="disabled") == 1
