"""Stream benchmark on the embedded broker: ceiling, naive baseline, pipeline, latency.

One run starts its own broker, pre-loads N incident events, and measures side
by side:

- raw: aiokafka consume + orjson decode of the N events (the ceiling);
- naive: a Faust agent writing one table key per event (the baseline);
- pipeline: `incident-intel run` on the same N events, from its first to its
  last `intel.correlations` record (every state, every output);
- latency: incident event produced → its `intel.correlations` record, with
  events paced at a fixed rate against the running pipeline.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.engine import synthetic_lines

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _events(n: int, first: int = 0) -> list[tuple[bytes, bytes]]:
    return [(f"inc{first + i:07d}".encode(), line)
            for i, line in enumerate(synthetic_lines(n, first=first))]


async def _create(bootstrap: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()


async def _preload(bootstrap: str, topic: str, events: list[tuple[bytes, bytes]]) -> None:
    await _create(bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=256 * 1024)
    await producer.start()
    try:
        for key, value in events:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def _raw_rate(bootstrap: str, topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, max_poll_records=5000)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        seen, start = 0, time.perf_counter()
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    orjson.loads(record.value)
                    seen += 1
        return n / (time.perf_counter() - start)
    finally:
        await consumer.stop()


def _naive_rate(bootstrap: str, topic: str, n: int) -> float:
    out = Path(tempfile.mkdtemp()) / "naive.json"
    app_id = f"bench-naive-{uuid.uuid4().hex[:8]}"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.naive_agent", bootstrap, topic, str(n), str(out), app_id,
         str(_free_port())],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    if not out.exists():
        raise RuntimeError(f"naive agent did not finish: {proc.stderr[-2000:]}")
    result = json.loads(out.read_text())
    return result["events"] / result["seconds"]


class _Watcher:
    """Reads `intel.correlations` and notes when each incident's first record arrived."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.arrived: dict[bytes, float] = {}
        self.broker_ms: dict[bytes, int] = {}

    async def run(self, stop: asyncio.Event) -> None:
        await _create(self.bootstrap, self.topic)
        # A short fetch wait: a broker that holds an empty fetch to its end would
        # otherwise add up to the client's default 500 ms to every measurement.
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False, fetch_max_wait_ms=5)
        await consumer.start()
        try:
            parts = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=50)
                now = time.time()
                for records in batch.values():
                    for record in records:
                        self.arrived.setdefault(record.key, now)
                        self.broker_ms.setdefault(record.key, record.timestamp)
        finally:
            await consumer.stop()


async def _wait_for(predicate, timeout: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.2)
    return False


async def _pipeline(bootstrap: str, n: int, paces: list[tuple[float, float]]) -> dict:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    events = _events(n)
    await _preload(bootstrap, f"{prefix}incidents.events", events)
    data = Path(tempfile.mkdtemp())
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTEL_")}
    env.update(INTEL_BOOTSTRAP_SERVERS=bootstrap, INTEL_APP_ID=f"{prefix}app",
               INTEL_TOPIC_PREFIX=prefix, INTEL_PARTITIONS=str(PARTITIONS),
               INTEL_WEB_PORT=str(_free_port()), INTEL_DATA_DIR=str(data / "state"),
               INTEL_REPORTS_DIR=str(data / "reports"),
               INTEL_API_TOKENS=json.dumps({uuid.uuid4().hex: "agent_monitor"}))
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "run", "--no-feed"], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watcher = _Watcher(bootstrap, f"{prefix}intel.correlations")
    stop = asyncio.Event()
    watching = asyncio.create_task(watcher.run(stop))
    try:
        done = await _wait_for(lambda: len(watcher.arrived) >= n, timeout=1800)
        if not done:
            raise RuntimeError(f"pipeline produced {len(watcher.arrived)} of {n} correlations")
        stamps = sorted(watcher.broker_ms[k] for k, _ in events)
        throughput = (n - 1) / max((stamps[-1] - stamps[0]) / 1000, 1e-9)
        latency = {}
        first = n
        for rate, seconds in paces:
            found = sorted(await _paced(bootstrap, prefix, watcher, first, rate, seconds))
            first += int(rate * seconds)
            latency[rate] = {
                "events": len(found),
                "p50_ms": 1000 * statistics.median(found),
                "p99_ms": 1000 * found[int(0.99 * (len(found) - 1))],
            }
    finally:
        stop.set()
        await watching
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    return {"pipeline_per_s": throughput, "latency": latency}


async def _paced(bootstrap: str, prefix: str, watcher: _Watcher, first: int, rate: float,
                 seconds: float) -> list[float]:
    """Produce at ``rate`` per second; latency = produce time → correlation arrival."""
    count = int(rate * seconds)
    events = _events(count, first=first)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    sent: dict[bytes, float] = {}
    try:
        start = time.perf_counter()
        for i, (key, value) in enumerate(events):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[key] = time.time()
            await producer.send(f"{prefix}incidents.events", value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    await _wait_for(lambda: all(k in watcher.arrived for k in sent), timeout=120)
    return [watcher.arrived[k] - t for k, t in sent.items() if k in watcher.arrived]


PACES = [(100.0, 10.0), (1000.0, 5.0)]
"""(events per second, seconds) of the paced latency runs: well under and at the target."""


def run(n: int, paces: list[tuple[float, float]] = PACES) -> dict:
    from app.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        topic = f"bench-input-{uuid.uuid4().hex[:6]}"
        asyncio.run(_preload(bootstrap, topic, _events(n)))
        raw = asyncio.run(_raw_rate(bootstrap, topic, n))
        naive = _naive_rate(bootstrap, topic, n)
        pipeline = asyncio.run(_pipeline(bootstrap, n, paces))
    return {"events": n, "raw_per_s": raw, "naive_per_s": naive, **pipeline}


def report(r: dict) -> str:
    lines = [
        f"events pre-loaded: {r['events']} (unique incidents, 4 partitions, embedded broker)",
        f"{'raw aiokafka consume + decode':<34} {r['raw_per_s']:>10.0f} events/s",
        f"{'naive Faust agent, 1 key/event':<34} {r['naive_per_s']:>10.0f} events/s",
        f"{'pipeline end to end':<34} {r['pipeline_per_s']:>10.0f} events/s",
        f"ratios: pipeline/naive {r['pipeline_per_s'] / r['naive_per_s']:.2f}x, "
        f"pipeline/raw {r['pipeline_per_s'] / r['raw_per_s']:.3f} "
        f"(targets >= 5x and >= 0.1)",
    ]
    for rate, figures in r["latency"].items():
        lines.append(
            f"latency event -> correlation at {rate:.0f} events/s ({figures['events']} events): "
            f"p50 {figures['p50_ms']:.0f} ms, p99 {figures['p99_ms']:.0f} ms "
            f"(target p99 < 250 ms at 1000/s)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    print(report(run(size)))
