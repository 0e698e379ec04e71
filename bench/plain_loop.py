"""The latency baseline: a plain consume → engine → produce loop, no framework.

``python -m bench.plain_loop BOOTSTRAP PREFIX`` reads every partition of
``PREFIX``\\ ``incidents.events`` from the beginning, folds each event into an
engine and correlates it as the worker does (decode, apply, correlate,
serialise the record and the note), and sends the correlation record, keyed by
incident, to the same partition of ``PREFIX``\\ ``intel.correlations``: one batch
per partition, acknowledged by all replicas before the next fetch. It has no
consumer group, commits, keyed outputs, follow-ups, velocity, dead letters,
journal or web server: what is left of the worker's per-event path when the
shell costs nothing, on the same broker and clients. It prints ``plain ready``
once it has read up to the end offsets it saw at start, and runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.contracts import CorrelateRequest, IncidentEvent, decode_event, dump_json
from app.intel.correlation import note_for
from app.intel.engine import IntelEngine
from app.policy import load_policy

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4
MAX_RECORDS = 500
FETCH_WAIT_MS = 20
"""As the worker's reader: a fetch returns after this long even with nothing new."""


async def relay(bootstrap: str, prefix: str, stop: asyncio.Event) -> None:
    engine = IntelEngine(load_policy(ROOT / "policy"))
    intel = engine.policy.intel
    source, target = f"{prefix}incidents.events", f"{prefix}intel.correlations"
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=FETCH_WAIT_MS)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0,
                                max_batch_size=1 << 20)
    await consumer.start()
    await producer.start()
    try:
        parts = [TopicPartition(source, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        ready = False
        while not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=100, max_records=MAX_RECORDS)
            sends = []
            for tp, records in fetched.items():
                batch = producer.create_batch()
                for record in records:
                    event = decode_event(record.value)
                    engine.apply(event)
                    if not isinstance(event, IncidentEvent):
                        continue
                    incident_id = event.incident.incident_id
                    response = engine.correlate(CorrelateRequest(action="correlate",
                                                                 incident_id=incident_id))
                    if response.related:
                        dump_json(note_for(incident_id, response.related, intel))
                    key, value = incident_id.encode(), dump_json(response)
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        sends.append(await producer.send_batch(batch, target,
                                                               partition=tp.partition))
                        batch = producer.create_batch()
                        batch.append(key=key, value=value, timestamp=None)
                sends.append(await producer.send_batch(batch, target, partition=tp.partition))
            await asyncio.gather(*sends)
            if not ready and all([await consumer.position(tp) >= ends[tp] for tp in parts]):
                ready = True
                print("plain ready", flush=True)
    finally:
        await consumer.stop()
        await producer.stop()


async def main(bootstrap: str, prefix: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await relay(bootstrap, prefix, stop)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
