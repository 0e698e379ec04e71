"""The live pipeline on a real broker equals the offline engine (``incident-intel tool``).

A simulated stream, with duplicates, out-of-order records and malformed ones,
goes through ``incident-intel run``; once it is processed, every incident's
final state is re-sent once (a later ``incident.updated``), so each
correlation is computed after everything related to it was processed (the
guarantee of ``intel.correlations``: a record reflects what had been
processed when the incident last changed). The worker's outputs and its API answers must
then equal what the offline engine answers for the same events (see
``stream_oracle`` for what each output record means).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import TypeAdapter

from app.broker import free_port
from app.contracts import (
    CorrelateRequest,
    CorrelateResponse,
    FollowUp,
    RecurrenceUpdate,
    Timestamp,
    decode_event,
    dump_json,
    format_timestamp,
)
from app.intel import correlation
from app.intel.engine import IntelEngine
from app.intel.periods import from_micros, last_complete_week, micros
from app.policy import load_policy
from app.simulation.feed import generate_stream
from tests.integration.stream_oracle import (
    bucket_expected,
    header,
    latest,
    read_all,
    recurrence_expected,
)
from tests.kafka_support import REPO, CliProcess, produce, wait_until

pytestmark = pytest.mark.broker

READY = "worker ready"
TOKEN = "parity-token-0123456789abcdef"
RELEASE_TOKEN = "parity-release-0123456789abcdef"


def _stream(seed: int) -> tuple[list[tuple[str, bytes, bytes]], list[bytes]]:
    """(topic, key, value) records in a perturbed order, and the malformed values."""
    records, _ = generate_stream(seed, rate_per_s=100, duration_s=10)
    out = [(r.topic, r.key_bytes(), r.value_bytes()) for r in records]
    rng = random.Random(seed)
    for i in range(0, len(out) - 20, 40):  # out of order: reverse runs of 20
        out[i:i + 20] = reversed(out[i:i + 20])
    out += rng.sample(out, 40)  # duplicates (same event_id), arriving late
    bad = [b"{not json", b'{"type": "incident.opened", "event_id": "x"}', b"\xff\xfe"]
    out += [("incidents.events", b"bad-%d" % i, raw) for i, raw in enumerate(bad)]
    return out, bad


def _touches(engine: IntelEngine) -> list[tuple[str, bytes, bytes]]:
    """Every incident's final state again, one second after the newest event."""
    newest = max(r.version[0] for r in engine.book.incidents.values())
    at = format_timestamp(from_micros(newest) + timedelta(seconds=1))
    out = []
    for record in engine.book.incidents.values():
        event = {"event_id": f"touch-{record.incident_id}", "type": "incident.updated",
                 "occurred_at": at, "incident": record.incident.model_dump(mode="json")}
        out.append(("incidents.events", record.incident_id.encode(), orjson.dumps(event)))
    return out


def _offline(policy: Any, values: list[bytes]) -> IntelEngine:
    engine = IntelEngine(policy)
    for raw in values:
        try:
            engine.apply(decode_event(raw))
        except ValueError:
            pass
    return engine


def _post(port: str, path: str, body: dict[str, Any], token: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local URL
        return json.loads(response.read())


def _tool(events: Path, state: Path, action: dict[str, Any]) -> Any:
    done = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "tool", "--events",
         str(events), "--state", str(state), json.dumps(action)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def test_live_outputs_and_answers_equal_the_offline_engine(kafka_bootstrap: str,
                                                           tmp_path: Path) -> None:
    policy = load_policy(REPO / "policy")
    run_id = uuid.uuid4().hex[:10]
    prefix = f"par-{run_id}."
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTEL_")}
    port = str(free_port())
    env.update(INTEL_BOOTSTRAP_SERVERS=kafka_bootstrap, INTEL_APP_ID=f"par-{run_id}",
               INTEL_TOPIC_PREFIX=prefix, INTEL_PARTITIONS="3", INTEL_WEB_PORT=port,
               INTEL_DATA_DIR=str(tmp_path / "data"), INTEL_REPORTS_DIR=str(tmp_path / "rep"),
               INTEL_API_TOKENS=json.dumps({TOKEN: "agent_oncall",
                                            RELEASE_TOKEN: "agent_release"}),
               PYTHONUNBUFFERED="1")
    worker = CliProcess(["run", "--no-feed"], env)
    try:
        assert worker.wait_for_line(READY, timeout=90), worker.output
        first, bad = _stream(5)
        produce_all(kafka_bootstrap, prefix, first)
        engine = _offline(policy, [value for _, _, value in first])
        # The re-sends must come after phase one was processed (see the module docstring).
        app_id = env["INTEL_APP_ID"]
        flow = [f"{app_id}-intel-{n}-repartition" for n in ("by-attribute", "join-answers")]
        flow.append(prefix + "intel.correlations")
        assert wait_until(lambda: _indexed(kafka_bootstrap, prefix, engine), timeout=120,
                          interval=1.0), worker.output[-3000:]
        assert wait_until(lambda: _quiet(kafka_bootstrap, flow, len(engine.book.incidents)),
                          timeout=120, interval=0.5), worker.output[-3000:]
        touches = _touches(engine)
        produce_all(kafka_bootstrap, prefix, touches)
        values = [value for _, _, value in first + touches]
        engine = _offline(policy, values)
        incidents = sorted(engine.book.incidents)
        expected = {
            i.encode(): dump_json(engine.correlate(CorrelateRequest(action="correlate",
                                                                    incident_id=i)))
            for i in incidents
        }
        names = [prefix + t for t in ("intel.correlations", "intel.recurrence", "intel.buckets",
                                      "incidents.notes", "intel.followups", "intel.dlq")]

        notes_expected = {}
        for key, value in expected.items():
            related = CorrelateResponse.model_validate_json(value).related
            if related:
                note = correlation.note_for(key.decode(), related, policy.intel)
                notes_expected[key] = (note.note_id, note.message)

        def settled() -> dict[str, list[Any]] | None:
            out = read_all(kafka_bootstrap, names)
            got = {k: r.value for k, r in latest(out[names[0]]).items()}
            notes = {k: (n := orjson.loads(r.value))["note_id"] and (n["note_id"], n["message"])
                     for k, r in latest(out[names[3]]).items()}
            # A note on a timeline is never retracted: an incident whose relations went
            # away keeps its last note, so only incidents with relations are compared.
            notes = {k: v for k, v in notes.items() if k in notes_expected}
            return out if got == expected and notes == notes_expected else None

        out = wait_until(settled, timeout=120, interval=1.0)
        if out is None:
            out = read_all(kafka_bootstrap, names)
            got = {k: r.value for k, r in latest(out[names[0]]).items()}
            wrong = [k for k in expected if got.get(k) != expected[k]]
            pytest.fail(f"{len(wrong)} of {len(expected)} correlations differ, e.g. "
                        f"{wrong[:1]}: {got.get(wrong[0]) if wrong else None!r} != "
                        f"{expected[wrong[0]] if wrong else None!r}\n{worker.output[-3000:]}")
        correlations, recurrences, bucket_records, notes, followups, dlq = (
            out[n] for n in names)
        assert all(header(r, "intel-id") for r in correlations)
        assert notes and bucket_records  # planted clusters and recurrences

        # Notes (checked by `settled`): the latest note of each incident is the top-N note
        # of its answer; a note is re-sent when its id changes (related ids and scores).
        assert all(header(r, "intel-id") == orjson.loads(r.value)["note_id"] for r in notes)

        # Recurrence: every key the engine knows, with its final counts at its as_of.
        final = latest(recurrences)
        keys = {f"{t}:{getattr(r, t)}" for r in engine.book.incidents.values()
                for t in ("signature", "kind", "service")}
        assert {k.decode() for k in final} == keys
        for key, record in final.items():
            update = RecurrenceUpdate.model_validate_json(record.value)
            assert (update.count_7d, update.count_30d) == recurrence_expected(
                engine, key.decode(), update.as_of), key

        # Buckets: the latest value is the bucket as listed at its as_of (or gone).
        for key, record in latest(bucket_records).items():
            when = TypeAdapter(Timestamp).validate_python(header(record, "intel-as-of"))
            assert record.value == bucket_expected(engine, key.decode(), when), key

        # Follow-ups: never two with one dedupe key; DLQ: the malformed records.
        keys_sent = Counter(FollowUp.model_validate_json(r.value).meta.dedupe_key
                            for r in followups)
        assert all(n == 1 for n in keys_sent.values()), keys_sent
        assert len(dlq) == len(bad)

        # Query answers equal `incident-intel tool` on the same events.
        events_file = tmp_path / "events.jsonl"
        events_file.write_bytes(b"\n".join(values) + b"\n")
        state = tmp_path / "state.json"
        state.write_text(json.dumps({"emitted_followups": sorted(keys_sent)}))
        as_of = max(r.version[0] for r in engine.book.incidents.values())
        week = last_complete_week(from_micros(as_of))
        service = engine.book.incidents[incidents[0]].service
        calls = [({"action": "recurrence", "window_days": 30}, TOKEN),
                 ({"action": "buckets"}, TOKEN),
                 ({"action": "correlate", "incident_id": incidents[0]}, TOKEN),
                 ({"action": "weekly_digest", "week": week}, TOKEN)]
        # The replica consumes on its own: wait until it has applied every event.
        for action, token in calls:
            offline = _tool(events_file, state, action)
            assert wait_until(lambda a=action, t=token, o=offline: _post(
                port, "/v1/tools/incident_intelligence", a, t) == o, timeout=30), action
        gate = {"action": "gate", "service": service}
        assert _post(port, "/v1/gates/recurrence_watch", gate, RELEASE_TOKEN) == _tool(
            events_file, state, gate)
        assert "Traceback" not in worker.output, worker.output
    finally:
        worker.kill()


def _indexed(bootstrap: str, prefix: str, engine: IntelEngine) -> bool:
    """True when every attribute key applied its incidents' final versions: its latest
    ``intel.recurrence`` record is as of their newest ``occurred_at`` or later."""
    newest: dict[str, int] = {}
    for record in engine.book.incidents.values():
        for key_type in ("signature", "kind", "service"):
            key = f"{key_type}:{getattr(record, key_type)}"
            newest[key] = max(newest.get(key, 0), record.version[0])
    topic = prefix + "intel.recurrence"
    final = latest(read_all(bootstrap, [topic])[topic])
    return all(
        key.encode() in final and micros(RecurrenceUpdate.model_validate_json(
            final[key.encode()].value).as_of) >= at
        for key, at in newest.items())


def _quiet(bootstrap: str, topics: list[str], incidents: int) -> bool:
    """True when no record was added to ``topics`` for two seconds and every incident
    has a correlation record (the last topic)."""
    before = read_all(bootstrap, topics)
    time.sleep(2.0)
    after = read_all(bootstrap, topics)
    counts = [len(after[t]) for t in topics]
    return counts == [len(before[t]) for t in topics] and len(
        latest(after[topics[-1]])) >= incidents


def produce_all(bootstrap: str, prefix: str, records: list[tuple[str, bytes, bytes]]) -> None:
    by_topic: dict[str, list[tuple[bytes, bytes, None]]] = {}
    for topic, key, value in records:
        by_topic.setdefault(prefix + topic, []).append((key, value, None))
    for topic, items in by_topic.items():
        produce(bootstrap, topic, items)
