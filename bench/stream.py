"""Stream benchmark on the embedded broker: the engine, the ceiling, a baseline, the pipeline.

``python -m bench.stream [N ...] [--quick] [--json]`` measures, each phase on a
broker of its own (started fresh, so one phase's topics and consumer groups
never weigh on the next):

**Throughput**, for each N (default 10,000): N incident events (unique
incidents, 4 partitions) are pre-loaded, then on those same events, side by
side:

- **E** engine: in this process, ``decode_event`` + ``IntelEngine.apply`` +
  ``correlate`` + serialising the correlation record (and the note when there
  are related incidents) of each event: the per-event work the pipeline
  cannot avoid. E excludes what only a worker does: reading and writing
  Kafka, the input checks beyond decoding (future skew), the learning-velocity
  tracker, the keyed outputs (recurrence, buckets, alerts) and follow-ups,
  the commit. ``engine_cpu_ms_per_event`` is its process CPU per event;
- **R** raw: aiokafka consume + orjson decode (the ceiling of the client);
- **F** naive: a Faust agent writing one table key per event (first to last
  event in the agent);
- **P** pipeline: ``incident-intel run --no-feed`` as a subprocess, every
  output on; from the moment its reader starts (its log line) to the arrival
  of the N-th ``intel.correlations`` record. The time until the consumer group
  committed every input record is printed beside it. ``worker_cpu_ms_per_event``
  and ``broker_cpu_ms_per_event`` are the worker's and the broker's CPU over
  that span, per event (the two share the machine's cores).

**Latency** at each paced rate (default 1,000 and 100 events/s): a fresh
broker and worker with H incidents of history (default 50,000) caught up,
then new incidents sent as live traffic (event times follow the sending clock
from the end of the history, so the watermark moves with them): a warm-up of
``WARMUP_SECONDS`` first, not counted, then ``--seconds`` measured. An event's
latency is the time from just before its send to the arrival of its
``intel.correlations`` record at a reader with a 5 ms fetch wait; an event
without a record by the end counts as slower than every one that has one.
Beside each, on a fresh broker of its own, the same run against the **plain
loop** (:mod:`bench.plain_loop`: consume → engine → produce, nothing else), and
the ratios of the two: how much of the latency is the worker's and how much
the broker's, the clients' and the machine's.

**API during a backfill**: a worker is caught up on nothing, then
``--backfill`` events (default 30,000) are sent at once; while it works
through them the API's ``recurrence`` action is called 5 times a second
(from as many tokens as its per-minute limit needs) until the backfill's
last correlation record arrives: ``api_p99_ms_during_backfill``.

Every phase stops by itself (bounded waits; a pipeline that falls behind is
reported with the events still missing). ``--json`` prints, as the last line,
one JSON object: the first N's figures, ``latency_p50_ms`` / ``latency_p99_ms``
(at the first rate), ``plain_loop_latency_p99_ms`` (the plain loop's, at the
first rate), ``latency_p99_ms_at_100``, ``api_p99_ms_during_backfill``,
every size's figures under ``runs`` and every rate's under ``latency``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.engine import CENTRE, synthetic_lines

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4
SIZES = [10_000]
HISTORY, RATES, SECONDS, BACKFILL = 50_000, [1000.0, 100.0], 30.0, 30_000
QUICK_HISTORY, QUICK_SECONDS, QUICK_BACKFILL = 10_000, 10.0, 5_000
WARMUP_SECONDS = 3.0
API_CALLS_PER_SECOND = 5.0
PIPELINE_TIMEOUT = 900.0
"""Longest wait for a pipeline to emit every correlation record (seconds)."""
DRAIN_TIMEOUT = 60.0
"""Longest wait, after the paced sends, for the last correlation records."""
LIVE_FROM = CENTRE + timedelta(days=30)
"""Where the synthetic history ends: live traffic starts here in event time."""
STARTED_LINE = "replica reading"
"""The worker's log line when its reader starts consuming."""


Events = list[tuple[bytes, bytes]]


def incident_events(n: int, first: int = 0) -> Events:
    """``n`` (key, value) incident events, unique incidents from number ``first``, started
    anywhere in the 60 days of the synthetic history (a backfill, in no time order)."""
    return [(f"inc{first + i:07d}".encode(), line)
            for i, line in enumerate(synthetic_lines(n, first=first))]


def live_events(n: int, first: int, rate: float) -> Events:
    """``n`` new incidents as live traffic: the synthetic mix of services, kinds and
    severities, started (and sent) one after the other at ``rate`` per second of
    event time, from the end of the synthetic history on."""
    events = []
    for i, (key, line) in enumerate(incident_events(n, first)):
        event = orjson.loads(line)
        at = (LIVE_FROM + timedelta(seconds=i / rate)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        event["occurred_at"] = event["incident"]["started_at"] = at
        events.append((key, orjson.dumps(event)))
    return events


# ---------------------------------------------------------------------------- E


def engine_rate(values: list[bytes]) -> tuple[float, float]:
    """(events per second, CPU ms per event) of the engine's share of the per-event work."""
    from app.contracts import CorrelateRequest, IncidentEvent, decode_event, dump_json
    from app.intel.correlation import note_for
    from app.intel.engine import IntelEngine
    from app.policy import load_policy

    engine = IntelEngine(load_policy(ROOT / "policy"))
    intel = engine.policy.intel
    start, cpu = time.perf_counter(), time.process_time()
    for value in values:
        event = decode_event(value)
        engine.apply(event)
        if isinstance(event, IncidentEvent):
            incident_id = event.incident.incident_id
            response = engine.correlate(CorrelateRequest(action="correlate",
                                                         incident_id=incident_id))
            dump_json(response)
            if response.related:
                dump_json(note_for(incident_id, response.related, intel))
    wall, used = time.perf_counter() - start, time.process_time() - cpu
    return len(values) / wall, 1000 * used / len(values)


# ---------------------------------------------------------------------------- R, F


async def preload(bootstrap: str, topic: str, events: Events) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_batch_size=256 * 1024)
    await producer.start()
    try:
        for key, value in events:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def raw_rate(bootstrap: str, topic: str, n: int, timeout: float = 300.0) -> float:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, max_poll_records=5000)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        seen, start = 0, time.perf_counter()
        while seen < n:
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"raw consumer read {seen} of {n} records")
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    orjson.loads(record.value)
                    seen += 1
        return n / (time.perf_counter() - start)
    finally:
        await consumer.stop()


def naive_rate(bootstrap: str, topic: str, n: int) -> float:
    from app.broker import free_port

    out = Path(tempfile.mkdtemp()) / "naive.json"
    app_id = f"bench-naive-{uuid.uuid4().hex[:8]}"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.naive_agent", bootstrap, topic, str(n), str(out),
             app_id, str(free_port())],
            cwd=ROOT, capture_output=True, text=True, timeout=PIPELINE_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"naive agent did not finish in {exc.timeout} s") from None
    if not out.exists():
        raise RuntimeError(f"naive agent did not finish: {proc.stderr[-2000:]}")
    result = json.loads(out.read_text())
    return float(result["events"] / result["seconds"])


# ---------------------------------------------------------------------------- P


class Correlations:
    """Reads ``intel.correlations`` and notes when each incident's first record arrived."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.arrived: dict[bytes, float] = {}

    async def run(self, stop: asyncio.Event) -> None:
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
                now = time.monotonic()
                for records in batch.values():
                    for record in records:
                        self.arrived.setdefault(record.key, now)
        finally:
            await consumer.stop()


API_TOKENS = [uuid.uuid4().hex for _ in range(int(API_CALLS_PER_SECOND * 60 / 5) + 1)]
"""Tokens of the ``agent_viewer`` role, enough for 5 calls/s under a limit of 5/min each."""


@dataclass
class Worker:
    """``incident-intel run --no-feed`` on the bench broker, its log lines time-stamped."""

    bootstrap: str
    prefix: str
    profile: Path | None = None
    plain: bool = False
    """Run the plain loop (:mod:`bench.plain_loop`) instead of the worker."""
    lines: list[tuple[float, str]] = field(default_factory=list)
    cpu_at_start: float = 0.0
    port: int = 0

    @property
    def app_id(self) -> str:
        return f"{self.prefix}app"

    def env(self) -> dict[str, str]:
        from app.broker import free_port

        if not self.port:
            self.port = free_port()
        data = Path(tempfile.mkdtemp(prefix="bench-worker-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTEL_")}
        env.update(INTEL_BOOTSTRAP_SERVERS=self.bootstrap, INTEL_APP_ID=self.app_id,
                   INTEL_TOPIC_PREFIX=self.prefix, INTEL_PARTITIONS=str(PARTITIONS),
                   INTEL_WEB_PORT=str(self.port), INTEL_DATA_DIR=str(data / "state"),
                   INTEL_REPORTS_DIR=str(data / "reports"),
                   INTEL_API_TOKENS=json.dumps({t: "agent_viewer" for t in API_TOKENS}))
        return env

    async def create_topics(self) -> None:
        from app.stream.app import ensure_topics
        from app.stream.settings import load_settings

        await ensure_topics(load_settings(self.env()))

    def start(self) -> None:
        runner = ["-m", "app.cli", "run", "--no-feed"]
        if self.plain:
            runner = ["-m", "bench.plain_loop", self.bootstrap, self.prefix]
        elif self.profile is not None:
            runner = ["-m", "cProfile", "-o", str(self.profile), "-m", "app.cli", "run",
                      "--no-feed"]
        self.proc = subprocess.Popen([sys.executable, *runner], cwd=ROOT, env=self.env(),
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if STARTED_LINE in line:
                self.cpu_at_start = cpu_seconds(self.proc.pid)
            self.lines.append((time.monotonic(), line.rstrip()))

    def logged(self, needle: str) -> float | None:
        return next((t for t, line in self.lines if needle in line), None)

    def tail(self) -> str:
        return "\n".join(line for _, line in self.lines[-30:])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process has used so far (0 where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_for(predicate: Callable[[], bool], timeout: float, every: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(every)
    return predicate()


async def committed_at(worker: Worker, topic: str, deadline: float) -> float | None:
    """When the worker's consumer group had committed every record of ``topic``."""
    from aiokafka.admin import AIOKafkaAdminClient

    from app.stream.progress import record_ends

    ends = await record_ends(worker.bootstrap, [topic])
    admin = AIOKafkaAdminClient(bootstrap_servers=worker.bootstrap)
    await admin.start()
    try:
        while time.monotonic() < deadline:
            done = await admin.list_consumer_group_offsets(worker.app_id, partitions=list(ends))
            if all(tp in done and done[tp].offset >= end for tp, end in ends.items()):
                return time.monotonic()
            await asyncio.sleep(0.05)
        return None
    finally:
        await admin.close()


@dataclass
class Size:
    """The figures of one N."""

    n: int
    engine_eps: float = 0.0
    engine_cpu_ms_per_event: float = 0.0
    raw_eps: float = 0.0
    naive_eps: float = 0.0
    pipeline_eps: float = 0.0
    pipeline_committed_eps: float = 0.0
    worker_cpu_ms_per_event: float = 0.0
    """Worker CPU per event (ms) from the reader's start to the last correlation record."""
    broker_cpu_ms_per_event: float = 0.0
    replica_ready_s: float = 0.0
    """Until the replica was caught up and had published the keyed records of its keys."""
    first_correlation_s: float = 0.0
    last_correlation_s: float = 0.0


async def pipeline(worker: Worker, n: int, input_topic: str, broker_pid: int | None) -> Size:
    """Run the worker over the pre-loaded topic; phases in seconds from the reader's start."""
    watcher = Correlations(worker.bootstrap, f"{worker.prefix}intel.correlations")
    stop = asyncio.Event()
    watching = asyncio.create_task(watcher.run(stop))
    worker.start()
    try:
        await wait_for(lambda: worker.cpu_at_start > 0, 120)
        broker_start = cpu_seconds(broker_pid)
        if not await wait_for(lambda: len(watcher.arrived) >= n, PIPELINE_TIMEOUT, 0.005):
            raise RuntimeError(f"pipeline emitted {len(watcher.arrived)} of {n} correlation "
                               f"records in {PIPELINE_TIMEOUT} s:\n{worker.tail()}")
        worker_cpu = cpu_seconds(worker.proc.pid) - worker.cpu_at_start
        broker_cpu = cpu_seconds(broker_pid) - broker_start
        committed = await committed_at(worker, input_topic, time.monotonic() + 120)
        # Caught up, it publishes the keyed records of its keys (after the last correlation).
        await wait_for(lambda: worker.logged("replica ready") is not None, 60)
        started = worker.logged(STARTED_LINE)
        if started is None:
            raise RuntimeError(f"no '{STARTED_LINE}' line in the worker's log:\n{worker.tail()}")
        arrivals = sorted(watcher.arrived.values())
        ready = worker.logged("replica ready") or started
        return Size(n=n, pipeline_eps=n / (arrivals[-1] - started),
                    pipeline_committed_eps=0.0 if committed is None else n / (committed - started),
                    worker_cpu_ms_per_event=1000 * worker_cpu / n,
                    broker_cpu_ms_per_event=1000 * broker_cpu / n,
                    replica_ready_s=ready - started, first_correlation_s=arrivals[0] - started,
                    last_correlation_s=arrivals[-1] - started)
    finally:
        stop.set()
        await watching
        worker.stop()


async def measure_size(bootstrap: str, n: int, profile: Path | None,
                       broker_pid: int | None) -> Size:
    worker = Worker(bootstrap, f"bench{uuid.uuid4().hex[:6]}.", profile)
    await worker.create_topics()
    topic = f"{worker.prefix}incidents.events"
    events = incident_events(n)
    await preload(bootstrap, topic, events)
    engine, engine_cpu = engine_rate([value for _, value in events])
    raw = await raw_rate(bootstrap, topic, n)
    naive = await asyncio.to_thread(naive_rate, bootstrap, topic, n)
    size = await pipeline(worker, n, topic, broker_pid)
    size.engine_eps, size.engine_cpu_ms_per_event = engine, engine_cpu
    size.raw_eps, size.naive_eps = raw, naive
    return size


# ---------------------------------------------------------------------------- latency


@dataclass
class Latency:
    history: int
    rate: float
    seconds: float
    sent: int = 0
    received: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    catch_up_s: float = 0.0
    of: str = "pipeline"
    """``pipeline`` (the worker) or ``plain loop`` (the baseline)."""


@dataclass
class Live:
    """A running worker, the watcher of its correlation records, and how long it took
    to catch up on its history."""

    worker: Worker
    watcher: Correlations
    stop: asyncio.Event
    watching: asyncio.Task[None]
    catch_up_s: float

    async def end(self) -> None:
        self.stop.set()
        await self.watching
        self.worker.stop()


async def start_caught_up(bootstrap: str, history: int, *, plain: bool = False) -> Live:
    """A worker (or with ``plain`` the plain loop) caught up on ``history`` pre-loaded
    incidents."""
    worker = Worker(bootstrap, f"bench{uuid.uuid4().hex[:6]}.", plain=plain)
    await worker.create_topics()
    topic = f"{worker.prefix}incidents.events"
    if history:
        await preload(bootstrap, topic, incident_events(history))
    watcher = Correlations(bootstrap, f"{worker.prefix}intel.correlations")
    stop = asyncio.Event()
    watching = asyncio.create_task(watcher.run(stop))
    t0 = time.monotonic()
    worker.start()
    ready = (lambda: len(watcher.arrived) >= history) if history else (
        lambda: worker.logged("plain ready" if plain else "replica ready") is not None)
    if not await wait_for(lambda: ready() or worker.proc.poll() is not None, PIPELINE_TIMEOUT) \
            or not ready():
        stop.set()
        await watching
        worker.stop()
        raise RuntimeError(f"history: {len(watcher.arrived)} of {history} correlation "
                           f"records in {PIPELINE_TIMEOUT} s:\n{worker.tail()}")
    return Live(worker, watcher, stop, watching, time.monotonic() - t0)


async def latency(bootstrap: str, history: int, rate: float, seconds: float, *,
                  plain: bool = False) -> Latency:
    """Latency event → correlation record at ``rate`` with ``history`` incidents loaded,
    of the worker or (``plain``) of the plain loop."""
    live = await start_caught_up(bootstrap, history, plain=plain)
    watcher = live.watcher
    topic = f"{live.worker.prefix}incidents.events"
    result = Latency(history, rate, seconds, catch_up_s=live.catch_up_s,
                     of="plain loop" if plain else "pipeline")
    warmup = int(rate * WARMUP_SECONDS)
    events = live_events(warmup + int(rate * seconds), history, rate)
    try:
        sent = await paced(bootstrap, topic, events, rate)
        warm = {key for key, _ in events[:warmup]}
        measured = {key: t for key, t in sent.items() if key not in warm}
        await wait_for(lambda: all(k in watcher.arrived for k in measured), DRAIN_TIMEOUT, 0.1)
    finally:
        await live.end()
    found = sorted(watcher.arrived[k] - t for k, t in measured.items() if k in watcher.arrived)
    result.sent, result.received = len(measured), len(found)
    # An event without its record counts as slower than every one that has one.
    result.p50_ms, result.p99_ms = (percentile(found, q, len(measured)) for q in (0.5, 0.99))
    return result


def percentile(found: list[float], q: float, total: int) -> float | None:
    """The ``q`` quantile in ms of ``total`` latencies of which ``found`` (sorted, in
    seconds) arrived; ``None`` when it falls among those that never did."""
    index = int(q * (total - 1))
    return 1000 * found[index] if index < len(found) else None


async def paced(bootstrap: str, topic: str, events: Events, rate: float) -> dict[bytes, float]:
    """Send ``events`` at ``rate`` per second; the send time of each key."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    sent: dict[bytes, float] = {}
    try:
        start = time.monotonic()
        for i, (key, value) in enumerate(events):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[key] = time.monotonic()
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


# ---------------------------------------------------------------------------- API


@dataclass
class ApiDuringBackfill:
    backfill: int
    calls: int = 0
    failed: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    backfill_s: float = 0.0


def call_recurrence(port: int, token: str) -> tuple[float, bool]:
    """One ``recurrence`` call: (seconds, answered 200)."""
    body = b'{"action": "recurrence", "window_days": 7}'
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/tools/incident_intelligence", data=body, method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()
            ok = answer.status == 200
    except (urllib.error.URLError, OSError):
        ok = False
    return time.perf_counter() - start, ok


async def api_during_backfill(bootstrap: str, backfill: int) -> ApiDuringBackfill:
    """``recurrence`` latency while a caught-up worker works through a backfill."""
    live = await start_caught_up(bootstrap, 0)
    worker, watcher = live.worker, live.watcher
    topic = f"{worker.prefix}incidents.events"
    result = ApiDuringBackfill(backfill)
    times: list[float] = []
    try:
        start = time.monotonic()
        sending = asyncio.create_task(preload(bootstrap, topic, incident_events(backfill)))
        token = 0
        while len(watcher.arrived) < backfill and time.monotonic() - start < PIPELINE_TIMEOUT:
            tick = time.monotonic()
            seconds, ok = await asyncio.to_thread(call_recurrence, worker.port,
                                                  API_TOKENS[token % len(API_TOKENS)])
            token += 1
            result.calls += 1
            if ok:
                times.append(seconds)
            else:
                result.failed += 1
            await asyncio.sleep(max(0.0, 1 / API_CALLS_PER_SECOND - (time.monotonic() - tick)))
        result.backfill_s = time.monotonic() - start
        await sending
    finally:
        await live.end()
    times.sort()
    result.p50_ms, result.p99_ms = (percentile(times, q, result.calls) for q in (0.5, 0.99))
    return result


# ---------------------------------------------------------------------------- run, report


def on_fresh_broker(measure: Callable[[str, int | None], Any]) -> Any:
    """Run one phase (an async function of bootstrap and broker pid) on a broker of its own."""
    from app.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        return asyncio.run(measure(broker.bootstrap_servers, broker.pid))


def run(sizes: list[int], history: int = HISTORY, rates: list[float] | None = None,
        seconds: float = SECONDS, backfill: int = BACKFILL,
        profile: Path | None = None) -> dict[str, Any]:
    """Every phase, each on a fresh embedded broker; ``profile`` writes the first
    pipeline worker's cProfile there."""
    rates = RATES if rates is None else rates
    runs = [on_fresh_broker(lambda b, pid, n=n, i=i: measure_size(
        b, n, profile if i == 0 else None, pid)) for i, n in enumerate(sizes)]
    latencies = [on_fresh_broker(lambda b, pid, rate=rate, plain=plain: latency(
        b, history, rate, seconds, plain=plain))
        for rate in rates for plain in (False, True)] if history else []
    api = on_fresh_broker(lambda b, pid: api_during_backfill(b, backfill)) if backfill else None
    return {"runs": [asdict(r) for r in runs], "latency": [asdict(x) for x in latencies],
            "api": api and asdict(api)}


def _at_rate(result: dict[str, Any], rate: float, of: str = "pipeline") -> dict[str, Any]:
    return next((x for x in result["latency"] if x["rate"] == rate and x["of"] == of), {})


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The one-line JSON object: the first size's figures, the latencies, every size."""
    first = result["runs"][0]
    lat = result["latency"][0] if result["latency"] else {}
    return {
        "n": first["n"],
        "engine_eps": round(first["engine_eps"], 1),
        "raw_eps": round(first["raw_eps"], 1),
        "naive_eps": round(first["naive_eps"], 1),
        "pipeline_eps": round(first["pipeline_eps"], 1),
        "latency_p50_ms": _ms(lat.get("p50_ms")),
        "latency_p99_ms": _ms(lat.get("p99_ms")),
        "latency_p99_ms_at_100": _ms(_at_rate(result, 100.0).get("p99_ms")),
        "plain_loop_latency_p99_ms": _ms(_at_rate(result, lat.get("rate", 0.0),
                                                  "plain loop").get("p99_ms")),
        "api_p99_ms_during_backfill": _ms((result["api"] or {}).get("p99_ms")),
        "history": lat.get("history"),
        "runs": result["runs"],
        "latency": result["latency"],
        "api": result["api"],
    }


def report(result: dict[str, Any]) -> str:
    rows = [f"{'N':>8} {'E engine':>10} {'R raw':>10} {'F naive':>9} {'P pipeline':>11} "
            f"{'P commit':>9} {'P/E':>6} {'P/F':>6} {'cpu ms/ev E | worker + broker':>30}"
            "   P phases (s from start): ready, first / last correlation"]
    for r in result["runs"]:
        worker_vs_engine = r["worker_cpu_ms_per_event"] / r["engine_cpu_ms_per_event"]
        rows.append(
            f"{r['n']:>8} {r['engine_eps']:>10.0f} {r['raw_eps']:>10.0f} "
            f"{r['naive_eps']:>9.0f} {r['pipeline_eps']:>11.0f} "
            f"{r['pipeline_committed_eps']:>9.0f} {r['pipeline_eps'] / r['engine_eps']:>6.2f} "
            f"{r['pipeline_eps'] / r['naive_eps']:>6.2f} "
            f"{r['engine_cpu_ms_per_event']:>10.3f} | {r['worker_cpu_ms_per_event']:.3f} + "
            f"{r['broker_cpu_ms_per_event']:.3f} ({worker_vs_engine:.1f}x)   "
            f"{r['replica_ready_s']:.1f}, {r['first_correlation_s']:.1f} / "
            f"{r['last_correlation_s']:.1f}")
    rows.append("(events/s; cpu: ms per event of the engine alone | the worker and the broker "
                "during P, and worker/engine; targets: P/E >= 0.5, worker/engine <= 2)")
    for lat in result["latency"]:
        figures = ", ".join(f"{name} " + (f"{lat[key]:.0f} ms" if lat[key] is not None
                                          else "never (no record)")
                            for name, key in (("p50", "p50_ms"), ("p99", "p99_ms")))
        if lat["received"] < lat["sent"]:
            figures += (f"; {lat['sent'] - lat['received']} of {lat['sent']} events without a "
                        f"correlation record {DRAIN_TIMEOUT:.0f} s after the last send")
        rows.append(f"latency event -> intel.correlations, {lat['of']}, {lat['history']} "
                    f"incidents of history (caught up in {lat['catch_up_s']:.0f} s), "
                    f"{lat['rate']:.0f} events/s for {lat['seconds']:.0f} s after "
                    f"{WARMUP_SECONDS:.0f} s of warm-up: {figures}")
        plain = _at_rate(result, lat["rate"], "plain loop")
        if lat["of"] == "plain loop" and (ours := _at_rate(result, lat["rate"])):
            ratios = ", ".join(f"{name} {ours[key] / plain[key]:.1f}x" for name, key in
                               (("p50", "p50_ms"), ("p99", "p99_ms"))
                               if ours[key] and plain[key])
            rows.append(f"  pipeline / plain loop at {lat['rate']:.0f} events/s: {ratios}")
    api = result["api"]
    if api:
        p50 = "–" if api["p50_ms"] is None else f"{api['p50_ms']:.0f} ms"
        p99 = "–" if api["p99_ms"] is None else f"{api['p99_ms']:.0f} ms"
        rows.append(f"API recurrence during a {api['backfill']}-event backfill "
                    f"({api['backfill_s']:.0f} s, {api['calls']} calls, {api['failed']} "
                    f"failed): p50 {p50}, p99 {p99}")
    return "\n".join(rows)


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__.split(
        "\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=SIZES, metavar="N",
                        help="pre-loaded incident events per throughput run (default 10000)")
    parser.add_argument("--json", action="store_true", help="last line: the figures as JSON")
    parser.add_argument("--quick", action="store_true",
                        help=f"latency with {QUICK_HISTORY} incidents of history for "
                             f"{QUICK_SECONDS:.0f} s, a {QUICK_BACKFILL}-event backfill")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency runs")
    parser.add_argument("--no-api", action="store_true", help="skip the API-during-backfill run")
    parser.add_argument("--history", type=int, help=f"incidents of history (default {HISTORY})")
    parser.add_argument("--rate", type=float, action="append", dest="rates",
                        help="a paced rate, events/s (repeatable; default 1000 and 100)")
    parser.add_argument("--seconds", type=float, help=f"paced seconds (default {SECONDS:.0f})")
    parser.add_argument("--backfill", type=int,
                        help=f"events of the API-during-backfill run (default {BACKFILL})")
    parser.add_argument("--profile", type=Path, metavar="PATH",
                        help="write the first pipeline worker's cProfile here")
    args = parser.parse_args(argv)
    history = args.history if args.history is not None else (
        QUICK_HISTORY if args.quick else HISTORY)
    seconds = args.seconds if args.seconds is not None else (
        QUICK_SECONDS if args.quick else SECONDS)
    backfill = args.backfill if args.backfill is not None else (
        QUICK_BACKFILL if args.quick else BACKFILL)
    result = run(args.sizes, 0 if args.no_latency else history, args.rates, seconds,
                 0 if args.no_api else backfill, args.profile)
    print(report(result), flush=True)
    if args.json:
        print(json.dumps(summary(result)))


if __name__ == "__main__":
    main(sys.argv[1:])
