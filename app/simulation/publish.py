"""The thin I/O shell of the synthetic stream: send records to Kafka at a rate.

Everything about *what* is sent lives in :mod:`app.simulation.feed`; this
module only paces the records (record ``i`` leaves at ``start + i / rate``)
and hands them to an aiokafka producer, surfacing delivery errors as one-line
``UserError`` messages.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from app.errors import UserError
from app.simulation.feed import FeedRecord

BOOTSTRAP_ENV = "INTEL_BOOTSTRAP_SERVERS"
BATCH = 1000


async def publish(records: Sequence[FeedRecord], bootstrap: str, rate_per_s: float, *,
                  topic_prefix: str = "", client_options: Mapping[str, Any] | None = None,
                  client_id: str = "incident-intel-simulate",
                  request_timeout_ms: int = 15000) -> dict[str, int]:
    """Send every record, paced at ``rate_per_s``; returns the count per topic.

    ``topic_prefix`` is prepended to every topic (like the worker's
    ``INTEL_TOPIC_PREFIX``); ``client_options`` are extra aiokafka arguments
    (security protocol, TLS context, SASL credentials).
    """
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id=client_id,
                                acks="all", linger_ms=5,
                                request_timeout_ms=request_timeout_ms,
                                **dict(client_options or {}))
    try:
        await producer.start()
    except (KafkaError, OSError) as exc:
        await producer.stop()
        raise UserError(f"cannot reach the broker at {bootstrap}: {exc}") from None
    sent: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    began = loop.time()
    pending: list[asyncio.Future] = []
    try:
        for i, record in enumerate(records):
            delay = began + i / rate_per_s - loop.time()
            if delay > 0.002:
                await asyncio.sleep(delay)
            topic = topic_prefix + record.topic
            pending.append(await producer.send(topic, value=record.value_bytes(),
                                               key=record.key_bytes()))
            sent[topic] += 1
            if len(pending) >= BATCH:
                await asyncio.gather(*pending)
                pending.clear()
        await producer.flush()
        await asyncio.gather(*pending)
    except KafkaError as exc:
        raise UserError(f"publishing to {bootstrap} failed: {exc}") from None
    finally:
        await producer.stop()
    return dict(sent)
