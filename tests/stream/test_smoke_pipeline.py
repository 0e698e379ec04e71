"""Smoke path on a real broker: `incident-intel run` consumes, dead-letters, keeps going.

The worker runs as a child process exactly as an operator starts it, with its
own app id (consumer group) and topic prefix so runs never see each other's
records, even on a shared cluster.
"""

from __future__ import annotations

import json
import os
import re
import signal
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.broker import free_port
from app.contracts import DlqRecord
from tests.support.kafka import CliProcess, pid_alive, produce, read_topic, wait_until

pytestmark = pytest.mark.broker

READY = "worker ready"
START_TIMEOUT = 90.0


def incident_event(n: int, **incident: Any) -> dict[str, Any]:
    """A valid IncidentEvent (docs/architecture.md §3); ``incident`` overrides fields."""
    body: dict[str, Any] = {
        "incident_id": f"inc_20260218_1430_{n:06d}",
        "service": "gateway",
        "kind": "error_rate",
        "severity": "P1",
        "status": "open",
        "signature": "aabbccdd" * 8,
        "title": "5xx spike on /v1/chat",
        "env": "prod",
        "started_at": "2026-02-18T14:30:00Z",
        "detected_at": None,
        "resolved_at": None,
        "root_cause": None,
        "labels": {},
    }
    body.update(incident)
    return {
        "event_id": f"e-{n:06d}",
        "type": "incident.opened",
        "occurred_at": "2026-02-18T14:30:00Z",
        "incident": body,
    }


def _encode(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _without(event: dict[str, Any], field: str) -> dict[str, Any]:
    incident = {k: v for k, v in event["incident"].items() if k != field}
    return {**event, "incident": incident}


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local URL
        return json.loads(response.read())


def _worker_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTEL_")}
    env.update(
        INTEL_DATA_DIR=str(tmp_path / "data"),
        INTEL_WEB_PORT=str(free_port()),
        INTEL_PARTITIONS="2",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@pytest.fixture
def worker_on_fixture_broker(
    kafka_bootstrap: str, tmp_path: Path
) -> Iterator[tuple[CliProcess, dict[str, str]]]:
    run_id = uuid.uuid4().hex[:10]
    env = _worker_env(
        tmp_path,
        INTEL_BOOTSTRAP_SERVERS=kafka_bootstrap,
        INTEL_APP_ID=f"smoke-{run_id}",
        INTEL_TOPIC_PREFIX=f"smoke-{run_id}.",
    )
    worker = CliProcess(["run"], env)
    try:
        yield worker, env
    finally:
        worker.kill()


def test_bad_records_go_to_the_dlq_and_the_worker_keeps_consuming(
    kafka_bootstrap: str, worker_on_fixture_broker: tuple[CliProcess, dict[str, str]]
) -> None:
    worker, env = worker_on_fixture_broker
    assert worker.wait_for_line(READY, timeout=START_TIMEOUT), worker.output
    prefix = env["INTEL_TOPIC_PREFIX"]
    source = f"{prefix}incidents.events"

    # Bad records first, then a good one, all on partition 0: if a bad record
    # stopped the partition, the last good record would never be counted.
    bad = {
        b"bad-json": (b"{not json", "not JSON"),
        b"bad-no-id": (_encode(_without(incident_event(1), "incident_id")), "incident_id"),
        b"bad-sev": (_encode(incident_event(2, severity="P7")), "severity"),
        b"bad-bytes": (b"\xff\xfe\x00binary", "not JSON"),
    }
    sequence = [(key, raw, 0) for key, (raw, _) in bad.items()]
    sequence.append((b"good-after-bad", _encode(incident_event(3)), 0))
    placed = produce(kafka_bootstrap, source, sequence)
    offsets = {key: offset for (key, _, _), (_, offset) in zip(sequence, placed, strict=True)}
    goods = [(f"inc-{n}".encode(), _encode(incident_event(n)), None) for n in range(10, 15)]
    produce(kafka_bootstrap, source, goods)

    web = f"http://127.0.0.1:{env['INTEL_WEB_PORT']}/ingest/"
    want_valid = 1 + len(goods)
    counts = wait_until(
        lambda: (c := _get_json(web))["valid"] >= want_valid and c["invalid"] >= len(bad) and c,
        timeout=60,
        interval=0.25,
    )
    assert counts, f"counts never reached {want_valid} valid: {_get_json(web)}\n{worker.output}"
    assert counts == {
        "valid": want_valid,
        "invalid": len(bad),
        "by_type": {"incident.opened": want_valid},
    }

    records = read_topic(kafka_bootstrap, f"{prefix}intel.dlq", expect=len(bad), timeout=30)
    assert len(records) == len(bad), worker.output
    by_key = {record.key: record for record in records}
    assert set(by_key) == set(bad)
    for key, (raw, reason) in bad.items():
        dlq = DlqRecord.model_validate_json(by_key[key].value)
        assert dlq.source_topic == source
        assert (dlq.partition, dlq.offset) == (0, offsets[key])
        assert dlq.key == key.decode()
        assert reason in dlq.error, dlq.error
        assert dlq.raw_bytes() == raw
    assert "P7" in DlqRecord.model_validate_json(by_key[b"bad-sev"].value).raw

    assert worker.stop(signal.SIGTERM) == 0, worker.output
    assert "worker stopped" in worker.output
    assert "Traceback" not in worker.output, worker.output


@pytest.mark.usefixtures("tansu_available")
def test_run_starts_and_stops_its_own_broker(tmp_path: Path) -> None:
    env = _worker_env(tmp_path, INTEL_APP_ID="smoke-embedded")
    env.pop("INTEL_BOOTSTRAP_SERVERS", None)
    worker = CliProcess(["run", "--no-feed"], env)
    try:
        line = worker.wait_for_line("embedded broker pid", timeout=30)
        assert line, worker.output
        match = re.search(r"pid (\d+) on (127\.0\.0\.1:\d+)", line)
        assert match, line
        broker_pid, bootstrap = int(match.group(1)), match.group(2)
        assert pid_alive(broker_pid)
        assert worker.wait_for_line(READY, timeout=START_TIMEOUT), worker.output

        # The worker really consumes from the broker it started.
        produce(bootstrap, "incidents.events", [(b"k", _encode(incident_event(1)), None)])
        web = f"http://127.0.0.1:{env['INTEL_WEB_PORT']}"
        assert _get_json(f"{web}/health/")["status"] == "ok"
        assert wait_until(lambda: _get_json(f"{web}/ingest/")["valid"] == 1, timeout=30)

        assert worker.stop(signal.SIGINT) in (0, 130), worker.output
    finally:
        worker.kill()
    assert wait_until(lambda: not pid_alive(broker_pid), timeout=10), "broker left behind"
    assert "embedded broker stopped" in worker.output
    assert "Traceback" not in worker.output, worker.output
