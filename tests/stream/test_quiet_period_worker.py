"""A worker whose inputs go quiet advances event time on its wall clock.

``incident-intel run`` with ``time.idle_after_seconds`` shortened: a signature of
incidents 40 days old is first published at its high count (event time is the
newest incident), then, once nothing has arrived for a few seconds, event time
advances to the wall clock less the allowed lateness, the record decays to zero,
and the gate passes: each equal to ``incident-intel tool`` at the ``as_of`` the
worker names. A late event then re-opens the count.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from app.contracts import decode_event
from app.intel import publication
from app.intel.engine import IntelEngine
from app.intel.publication import RECURRENCE, OutputKey
from app.policy import load_policy
from tests.support.builders import incident_event
from tests.support.kafka import REPO, CliProcess, wait_until
from tests.support.stream_oracle import (
    RELEASE_TOKEN,
    header,
    post,
    produce_all,
    read_all,
    worker_env,
)

pytestmark = pytest.mark.broker

SIGNATURE = "d" * 64
KEY = f"signature:{SIGNATURE}".encode()
GATE = {"action": "gate", "service": "gateway", "profile": "staging"}


def _policy_dir(tmp_path: Path) -> Path:
    policy_dir = tmp_path / "policy"
    shutil.copytree(REPO / "policy", policy_dir)
    intel = policy_dir / "incident_intelligence.yml"
    data = yaml.safe_load(intel.read_text())
    data["time"] = {"idle_after_seconds": 3, "allowed_lateness_minutes": 10}
    intel.write_text(yaml.safe_dump(data, sort_keys=False))
    return policy_dir


def _tool(policy_dir: Path, values: list[bytes], as_of: datetime, action: dict[str, Any],
          workdir: Path) -> Any:
    events = workdir / "events.jsonl"
    events.write_bytes(b"\n".join(values) + b"\n")
    done = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "tool", "--policy",
         str(policy_dir), "--events", str(events), "--as-of", as_of.isoformat(),
         orjson.dumps(action).decode()],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    return orjson.loads(done.stdout)


def test_a_quiet_worker_ages_its_records_and_a_late_event_reopens_them(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    policy_dir = _policy_dir(tmp_path)
    policy = load_policy(policy_dir)
    run_id = uuid.uuid4().hex[:10]
    prefix = f"quiet-{run_id}."
    env = worker_env(kafka_bootstrap, f"quiet-{run_id}", prefix, tmp_path / "data",
                     tmp_path / "reports")
    env["INTEL_POLICY_DIR"] = str(policy_dir)
    port = env["INTEL_WEB_PORT"]
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)
    events = [incident_event(f"q-{i}", started=first + timedelta(hours=i), severity="P1",
                             service="gateway", signature=SIGNATURE) for i in range(7)]
    values = [orjson.dumps(e) for e in events]
    recurrence = prefix + RECURRENCE

    def signature_records() -> list[Any]:
        return [r for r in read_all(kafka_bootstrap, [recurrence])[recurrence] if r.key == KEY]

    def record_equals_tool(record: Any, values: list[bytes]) -> None:
        as_of = datetime.fromisoformat(header(record, "intel-as-of") or "")
        engine = IntelEngine(policy)
        engine.apply_until((decode_event(v) for v in values), as_of)
        assert record.value == publication.row(engine, OutputKey(RECURRENCE, KEY.decode()),
                                               as_of).value

    worker = CliProcess(["run", "--no-feed"], env)
    try:
        assert worker.wait_for_line("worker ready", timeout=90), worker.output
        produce_all(kafka_bootstrap, prefix, [("incidents.events", f"q-{i}".encode(), v)
                                              for i, v in enumerate(values)])
        decayed = wait_until(lambda: [r for r in signature_records()
                                      if orjson.loads(r.value)["count_30d"] == 0],
                             timeout=60, interval=0.5)
        assert decayed, worker.output[-3000:]
        history = signature_records()
        counts = [orjson.loads(r.value)["count_30d"] for r in history]
        assert max(counts) == 7 and counts[-1] == 0, counts  # high first, then zero
        for record in history:
            record_equals_tool(record, values)
        quiet_as_of = datetime.fromisoformat(header(history[-1], "intel-as-of") or "")
        assert quiet_as_of > first + timedelta(days=30)

        gate = wait_until(lambda: (g := post(port, "/v1/gates/recurrence_watch", GATE,
                                             RELEASE_TOKEN))["total_incidents"] == 0 and g,
                          timeout=30)
        assert gate and gate["pass"], gate
        assert gate == _tool(policy_dir, values, datetime.fromisoformat(gate["as_of"]), GATE,
                             tmp_path)

        def idle_advanced() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",  # noqa: S310
                                        timeout=10) as response:
                lines = response.read().decode().splitlines()
            return any(line.split()[:2] in (["incident_intel_event_time_watermark_idle_advanced",
                                              v] for v in ("1", "1.0")) for line in lines)

        assert wait_until(idle_advanced, timeout=20, interval=0.5), "the gauge says idle"

        late = incident_event("q-late", started=quiet_as_of - timedelta(hours=1),
                              severity="P1", service="gateway", signature=SIGNATURE)
        values.append(orjson.dumps(late))
        produce_all(kafka_bootstrap, prefix, [("incidents.events", b"q-late", values[-1])])
        reopened = wait_until(lambda: (r := signature_records()[-1]) and orjson.loads(
            r.value)["count_7d"] == 1 and r, timeout=60, interval=0.5)
        assert reopened, worker.output[-3000:]
        record_equals_tool(reopened, values)
        assert "Traceback" not in worker.output, worker.output
    finally:
        worker.kill()
