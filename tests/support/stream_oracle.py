"""The offline oracle of the stream's outputs, and a reader of the worker's topics.

What each output record means (and so what the oracle computes), for a
settled stream whose watermark is ``W`` (the newest ``occurred_at``):

- ``intel.correlations[X]`` (latest) = ``correlate(X)`` of the offline engine
  over every event, once every change related to X was processed before X's
  last change (the test re-sends every incident's final state last);
- ``incidents.notes`` (latest for X) = ``note_for(X, related)`` when related;
- ``intel.recurrence[type:key]`` (latest) = the key's counts and level at
  ``W``, with ``as_of`` = ``W`` (a key that fell to zero keeps the ``as_of``
  at which it fell); a key with no record has zero counts;
- ``intel.buckets[B]`` (latest) = the bucket as the ``buckets`` action lists it
  at ``W``, or a tombstone (or no record) when it is not listed;
- ``intel.followups``: one record per dedupe key, and the dedupe keys are those
  the offline digests of every week that ended by ``W`` create.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import TypeAdapter

from app.broker import free_port
from app.contracts import (
    CorrelateRequest,
    CorrelateResponse,
    DlqRecord,
    FollowUp,
    RecurrenceUpdate,
    Timestamp,
    decode_event,
    dump_json,
    format_timestamp,
)
from app.intel import buckets as bucket_rules
from app.intel import correlation, recurrence
from app.intel.engine import IntelEngine
from app.intel.periods import from_micros, last_complete_week, micros, week_end, week_label
from app.simulation.feed import DEFAULT_START, StreamTruth, generate_stream
from app.stream import progress
from app.stream.settings import load_settings
from tests.support.kafka import REPO, wait_until


def read_all(bootstrap: str, topics: list[str]) -> dict[str, list[Any]]:
    """Every record of ``topics`` up to their current end."""

    async def run() -> dict[str, list[Any]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer.topics()
            tps = [TopicPartition(t, p) for t in topics
                   for p in sorted(consumer.partitions_for_topic(t) or ())]
            out: dict[str, list[Any]] = {t: [] for t in topics}
            if not tps:
                return out
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                positions = [await consumer.position(tp) for tp in tps]
                if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                    break
                batch = await consumer.getmany(timeout_ms=200)
                for tp, records in batch.items():
                    out[tp.topic].extend(records)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


def latest(records: list[Any]) -> dict[bytes, Any]:
    """The last record per key (what a compacted topic converges to)."""
    result: dict[bytes, Any] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        result[record.key] = record
    return result


def header(record: Any, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode()
    return None


def pipeline_stages(app_id: str, prefix: str) -> list[list[str]]:
    """The worker's topics in processing order, for :func:`committed_through`."""
    return progress.pipeline_stages(
        load_settings({"INTEL_APP_ID": app_id, "INTEL_TOPIC_PREFIX": prefix}))


def committed_through(bootstrap: str, group: str, stages: list[list[str]], *,
                      timeout: float) -> bool:
    """True once consumer group ``group`` has committed every record of each stage
    (:func:`app.stream.progress.wait_committed`); False on timeout."""
    return asyncio.run(progress.wait_committed(bootstrap, group, stages,
                                               time.monotonic() + timeout))


# ---------------------------------------------------------------------- parity runs

TOKEN = "parity-token-0123456789abcdef"
RELEASE_TOKEN = "parity-release-0123456789abcdef"
BAD = [b"{not json", b'{"type": "incident.opened", "event_id": "x"}', b"\xff\xfe"]

Produced = list[tuple[str, bytes, bytes]]
"""(catalog topic name, key, value) in production order."""


def worker_env(bootstrap: str, app_id: str, prefix: str, data_dir: Path, reports: Path, *,
               session_timeout: float | None = None) -> dict[str, str]:
    """Environment of one ``incident-intel run`` (its own free web port)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTEL_")}
    env.update(INTEL_BOOTSTRAP_SERVERS=bootstrap, INTEL_APP_ID=app_id,
               INTEL_TOPIC_PREFIX=prefix, INTEL_PARTITIONS="3",
               INTEL_WEB_PORT=str(free_port()), INTEL_DATA_DIR=str(data_dir),
               INTEL_REPORTS_DIR=str(reports),
               INTEL_API_TOKENS=json.dumps({TOKEN: "agent_oncall",
                                            RELEASE_TOKEN: "agent_release"}),
               PYTHONUNBUFFERED="1")
    if session_timeout is not None:
        env["INTEL_SESSION_TIMEOUT"] = str(session_timeout)
    return env


LATER = timedelta(days=40)
"""The second simulated period starts this long after the first: the first one's
keys age out of every window, and its incidents are older than the lookback."""


def verdicts(truth: StreamTruth) -> Produced:
    """Responders' verdicts on a stream's planted pairs (``learning.events``): both ways,
    one pair named in either order and contradicted by a newer verdict, one re-sent,
    one naming an incident nobody knows."""
    cluster, recurring = truth.clusters[0].incident_ids, truth.recurrence[0].incident_ids
    at = truth.span_end - timedelta(hours=2)
    rows = [(cluster[0], cluster[1], "related", 0), (cluster[2], cluster[0], "unrelated", 0),
            (cluster[0], cluster[2], "related", 1), (recurring[0], recurring[1], "related", 0),
            (recurring[1], recurring[0], "related", 0), (cluster[0], recurring[0], "unrelated", 0),
            (cluster[1], "inc_nobody", "related", 0)]
    out = []
    for n, (a, b, verdict, hours) in enumerate(rows):
        event = {"event_id": f"link-{truth.seed}-{n}", "type": "incident.linked",
                 "occurred_at": format_timestamp(at + timedelta(hours=hours)),
                 "incident_id": a, "related_incident_id": b, "verdict": verdict, "by": "ana"}
        out.append(("learning.events", a.encode(), orjson.dumps(event)))
    return out + out[3:4]  # the re-send


def perturbed_stream(seed: int, duration_s: float = 10) -> Produced:
    """Two simulated periods 40 days apart, with responders' verdicts on the first,
    out-of-order runs, late duplicates and malformed records."""
    records, truth = generate_stream(seed, rate_per_s=100, duration_s=duration_s / 2)
    later, _ = generate_stream(seed + 1, start=DEFAULT_START + LATER, rate_per_s=100,
                               duration_s=duration_s / 2)
    out = [(r.topic, r.key_bytes(), r.value_bytes()) for r in records + later]
    out[len(records):len(records)] = verdicts(truth)
    rng = random.Random(seed)
    for i in range(0, len(out) - 20, 40):  # out of order: reverse runs of 20
        out[i:i + 20] = reversed(out[i:i + 20])
    out += rng.sample(out, 40)  # duplicates (same event_id), arriving late
    out += [("incidents.events", b"bad-%d" % i, raw) for i, raw in enumerate(BAD)]
    return out


def touches(engine: IntelEngine) -> Produced:
    """Every incident's final state again, one second after the newest event."""
    newest = max(r.version[0] for r in engine.book.incidents.values())
    at = format_timestamp(from_micros(newest) + timedelta(seconds=1))
    out = []
    for record in engine.book.incidents.values():
        event = {"event_id": f"touch-{record.incident_id}", "type": "incident.updated",
                 "occurred_at": at, "incident": record.incident.model_dump(mode="json")}
        out.append(("incidents.events", record.incident_id.encode(), orjson.dumps(event)))
    return out


def offline(policy: Any, values: list[bytes]) -> IntelEngine:
    """The offline engine fed ``values`` (invalid ones skipped, as the worker does)."""
    engine = IntelEngine(policy)
    for raw in values:
        try:
            engine.apply(decode_event(raw))
        except ValueError:
            pass
    return engine


def produce_all(bootstrap: str, prefix: str, records: Produced) -> None:
    """Produce in the given order across topics (as a feed interleaves them), each
    record acknowledged before the next."""

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for topic, key, value in records:
                await producer.send_and_wait(prefix + topic, value, key=key)
        finally:
            await producer.stop()

    asyncio.run(run())


def post(port: str, path: str, body: dict[str, Any], token: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local URL
        return json.loads(response.read())


def tool(events: Path, state: Path, action: dict[str, Any]) -> Any:
    """``incident-intel tool`` on a JSONL events file: the offline answer."""
    done = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "tool", "--events",
         str(events), "--state", str(state), json.dumps(action)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def check_parity(bootstrap: str, prefix: str, policy: Any, values: list[bytes],
                 ports: list[str], workdir: Path, context: Callable[[], str], *,
                 expect_decay: bool = True) -> dict[str, list]:
    """Wait until the outputs settle on the offline answers, then check every output
    and the API answers of each worker in ``ports``; returns the records read.

    ``expect_decay``: some key must have had a non-zero record and then a zero one.
    That needs a worker that published while the first period was in the windows;
    a run that kills its worker may leave the first period's keys unpublished until
    the watermark is past them (then zero counts need no record at all).

    ``values`` are every produced input value (the last ones re-send every incident's
    final state); ``context`` gives worker output for failure messages.
    """
    engine = offline(policy, values)
    incidents = sorted(engine.book.incidents)
    expected = {
        i.encode(): dump_json(engine.correlate(CorrelateRequest(action="correlate",
                                                                incident_id=i)))
        for i in incidents
    }
    names = [prefix + t for t in ("intel.correlations", "intel.recurrence", "intel.buckets",
                                  "incidents.notes", "intel.followups", "intel.dlq",
                                  "intel.alerts")]
    notes_expected = {}
    for key, value in expected.items():
        related = CorrelateResponse.model_validate_json(value).related
        if related:
            note = correlation.note_for(key.decode(), related, policy.intel)
            notes_expected[key] = (note.note_id, note.message)

    def check(out: dict[str, list[Any]]) -> Counter[str]:
        correlations, recurrences, bucket_records, notes, followups, dlq, alerts = (
            out[n] for n in names)
        got = {k: r.value for k, r in latest(correlations).items()}
        wrong = [k for k in expected if got.get(k) != expected[k]]
        assert not wrong, (f"{len(wrong)} of {len(expected)} correlations differ, e.g. "
                           f"{wrong[0]!r}: {got.get(wrong[0])!r} != {expected[wrong[0]]!r}")
        # A note on a timeline is never retracted: an incident whose relations went
        # away keeps its last note, so only incidents with relations are compared.
        got_notes = {k: (n := orjson.loads(r.value))["note_id"] and (n["note_id"], n["message"])
                     for k, r in latest(notes).items()}
        bad = [(k, got_notes.get(k), v) for k, v in notes_expected.items()
               if got_notes.get(k) != v]
        assert not bad, f"{len(bad)} of {len(notes_expected)} notes differ, e.g. {bad[0]}"
        assert all(header(r, "intel-id") for r in correlations)
        assert notes and bucket_records and alerts  # planted clusters, recurrence, alerts
        assert all(header(r, "intel-id") == orjson.loads(r.value)["note_id"] for r in notes)
        check_recurrence(engine, latest(recurrences), as_of, expect_decay=expect_decay)
        check_buckets(engine, latest(bucket_records), as_of)
        check_alerts(engine, latest(alerts), as_of)
        keys_sent = check_followups(engine, followups, as_of)
        # DLQ: the malformed records (at-least-once: a crash may dead-letter a record
        # twice, never lose one).
        sources = {(d.source_topic, d.partition, d.offset)
                   for d in (DlqRecord.model_validate_json(r.value) for r in dlq)}
        assert len(sources) == sum(v in BAD for v in values), sources
        return keys_sent

    def settled() -> dict[str, list[Any]] | None:
        out = read_all(bootstrap, names)
        try:
            check(out)
        except AssertionError:
            return None
        return out

    watermark = engine.watermark
    assert watermark is not None
    as_of = from_micros(watermark)
    out = wait_until(settled, timeout=120, interval=1.0)
    if out is None:
        out = read_all(bootstrap, names)
        try:
            check(out)
        except AssertionError as exc:
            pytest.fail(f"outputs never settled on the offline answers: {exc}\n{context()}")
    keys_sent = check(out)

    # Query answers of every worker equal `incident-intel tool` on the same events.
    events_file = workdir / "events.jsonl"
    events_file.write_bytes(b"\n".join(values) + b"\n")
    state = workdir / "state.json"
    state.write_text(json.dumps({"emitted_followups": sorted(keys_sent)}))
    week = last_complete_week(as_of)
    service = engine.book.incidents[incidents[0]].service
    judged = [k for k, v in expected.items() if b'"verdict"' in v]
    assert judged, "no correlate answer carries a verdict: the stream plants none"
    calls = [({"action": "recurrence", "window_days": 30}, TOKEN),
             ({"action": "buckets"}, TOKEN),
             ({"action": "correlate", "incident_id": incidents[0]}, TOKEN),
             ({"action": "weekly_digest", "week": week}, TOKEN),
             ({"action": "correlation_quality"}, TOKEN)]
    calls += [({"action": "correlate", "incident_id": k.decode()}, TOKEN) for k in judged[:2]]
    gate = {"action": "gate", "service": service}
    for action, token in calls:
        answer = tool(events_file, state, action)
        for port in ports:
            # The replica consumes on its own: wait until it has applied every event.
            assert wait_until(lambda a=action, t=token, o=answer, p=port: post(
                p, "/v1/tools/incident_intelligence", a, t) == o, timeout=30), (action, port)
    gate_answer = tool(events_file, state, gate)
    for port in ports:
        assert post(port, "/v1/gates/recurrence_watch", gate, RELEASE_TOKEN) == gate_answer
        check_metrics(port)
    check_cloud_events(out[names[0]], "intel.correlations")
    return out


def check_cloud_events(records: list[Any], topic: str) -> None:
    """Every output record carries the CloudEvents binary-mode headers, ``ce_id`` = its id."""
    for record in records:
        headers = {k: v.decode() for k, v in record.headers or ()}
        assert headers["ce_specversion"] == "1.0"
        assert headers["ce_id"] == headers["intel-id"]
        assert headers["ce_type"] == f"io.incident-intel.{topic}.v1"
        assert headers["content-type"] == "application/json"
        assert headers["ce_source"] and headers["ce_time"].endswith("Z")


def check_metrics(port: str) -> None:
    """``/metrics`` of the running worker parses as Prometheus text and has every metric
    the Grafana dashboard in ``ops/`` queries."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",  # noqa: S310 - local
                                timeout=10) as response:
        text = response.read().decode()
    samples = {sample.name for family in text_string_to_metric_families(text)
               for sample in family.samples}
    names = {sample.split("{")[0] for sample in samples}
    dashboard = (REPO / "ops" / "grafana" / "dashboards").glob("*.json")
    queried = {name for path in dashboard for name in
               re.findall(r"\b(incident_intel_[a-zA-Z0-9_]+)", path.read_text())}
    assert queried and queried <= names, sorted(queried - names)


def check_recurrence(engine: IntelEngine, final: dict[bytes, Any], as_of: datetime, *,
                     expect_decay: bool = True) -> None:
    """Every key's latest record says its counts, level and label at the watermark; a key
    without a record has none to say. Some key must have decayed to zero."""
    keys = {f"{t}:{getattr(r, t)}" for r in engine.book.incidents.values()
            for t in recurrence.KEY_TYPES}
    assert {k.decode() for k in final} <= keys
    zeros = 0
    for key in sorted(keys):
        want = engine.recurrence_update(key, as_of)
        record = final.get(key.encode())
        if record is None:
            assert (want.count_7d, want.count_30d) == (0, 0), key
            continue
        got = RecurrenceUpdate.model_validate_json(record.value)
        assert (got.count_7d, got.count_30d, got.level, got.label) == (
            want.count_7d, want.count_30d, want.level, want.label), (key, got, want)
        # Counts are true at their as_of; a key that fell to zero stays zero, so its
        # record keeps the moment it fell.
        if got.count_30d:
            assert got.as_of == as_of, (key, got.as_of, as_of)
        else:
            assert got.as_of <= as_of, (key, got.as_of, as_of)
            zeros += 1
    assert zeros or not expect_decay, "no key decayed to zero: the stream does not span the windows"


def check_buckets(engine: IntelEngine, final: dict[bytes, Any], as_of: datetime) -> None:
    """Every bucket's latest record is the bucket as listed at the watermark, or gone."""
    keys = {bucket_rules.bucket_key(r, engine.policy.intel)
            for r in engine.book.incidents.values()}
    assert {k.decode() for k in final} <= keys
    listed = 0
    for key in sorted(keys):
        want = engine.bucket_summary(key, as_of)
        record = final.get(key.encode())
        got = None if record is None else record.value
        assert got == (None if want is None else dump_json(want)), key
        listed += want is not None
    assert listed


def check_alerts(engine: IntelEngine, final: dict[bytes, Any], as_of: datetime) -> None:
    """Every fingerprint's latest record is its row at the watermark, or gone; one whose
    transitions all left ``alerts.retention_days`` is gone."""
    policy = engine.policy.intel.alerts
    fingerprints = set(engine.alerts.histories)
    forgotten = {k for k in final if k.decode() not in fingerprints}
    assert all(final[k].value is None for k in forgotten), sorted(forgotten)
    for fingerprint in sorted(fingerprints):
        want = engine.alerts.published_row(fingerprint, micros(as_of), policy)
        record = final.get(fingerprint.encode())
        got = None if record is None else record.value
        assert got == (None if want is None else dump_json(want)), fingerprint


def check_followups(engine: IntelEngine, records: list[Any], as_of: datetime) -> Counter[str]:
    """One record per dedupe key; the keys are the offline digests' of every week
    that ended by the watermark."""
    sent = Counter(FollowUp.model_validate_json(r.value).meta.dedupe_key for r in records)
    assert all(n == 1 for n in sent.values()), sent
    first = min(r.started for r in engine.book.incidents.values())
    expected: set[str] = set()
    week = week_label(from_micros(first))
    while week_end(week) <= as_of:
        outcome = engine.week_followups(week, frozenset())
        expected |= {f.meta.dedupe_key for f in outcome.created}
        week = week_label(week_end(week))
    assert set(sent) == expected
    return sent


def hot_bucket(start: str = "2026-03-03T09:00:00Z", count: int = 12) -> Produced:
    """``count`` open incidents of one signature in one bucket within a day: the
    bucket turns high at the sixth, so exactly one follow-up is due for its week."""
    base = TypeAdapter(Timestamp).validate_python(start)
    out = []
    for n in range(count):
        at = format_timestamp(base + timedelta(minutes=37 * n))
        incident = {"incident_id": f"inc_hot_{n:03d}", "service": "ledger-hot", "kind": "oom",
                    "severity": "P2", "status": "open", "title": "ledger OOMKilled",
                    "env": "prod", "started_at": at, "labels": {}}
        event = {"event_id": f"hot-{n:03d}", "type": "incident.opened", "occurred_at": at,
                 "incident": incident}
        out.append(("incidents.events", incident["incident_id"].encode(), orjson.dumps(event)))
    return out


def hot_dedupe_key(policy: Any, start: str = "2026-03-03T09:00:00Z") -> str:
    from app.intel.followups import dedupe_key
    from app.intel.periods import week_label

    week = week_label(TypeAdapter(Timestamp).validate_python(start))
    return dedupe_key(week, "ledger-hot|oom", policy.intel)
