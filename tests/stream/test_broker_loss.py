"""A worker that loses its broker: not ready within seconds, quiet logs, a clean exit.

The test starts a broker of its own (the embedded one), runs ``incident-intel
run`` against it, and SIGKILLs the broker. ``/readyz`` must say
``broker_unreachable`` within 10 s; the repeated client errors are logged
once per interval with a count, not once per attempt; after
``INTEL_BROKER_LOSS_EXIT_SECONDS`` the worker exits with code 3 and one line
saying why; and a SIGTERM while the broker is gone stops it within 15 s.
No traceback either way.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from app.broker import EmbeddedBroker, free_port
from tests.support.kafka import CliProcess, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures("tansu_available")]

READY = "worker ready"
EXIT_AFTER = 15


def _readyz(port: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz",  # noqa: S310 - local
                                    timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _worker(bootstrap: str, tmp_path: Path) -> tuple[CliProcess, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTEL_")}
    port = str(free_port())
    run_id = uuid.uuid4().hex[:8]
    env.update(INTEL_BOOTSTRAP_SERVERS=bootstrap, INTEL_APP_ID=f"loss-{run_id}",
               INTEL_PARTITIONS="2", INTEL_WEB_PORT=port, INTEL_DATA_DIR=str(tmp_path),
               INTEL_BROKER_LOSS_EXIT_SECONDS=str(EXIT_AFTER), PYTHONUNBUFFERED="1")
    worker = CliProcess(["run", "--no-feed"], env)
    assert worker.wait_for_line(READY, timeout=90), worker.output
    assert wait_until(lambda: _readyz(port)[0] == 200, timeout=60), (_readyz(port),
                                                                     worker.output)
    return worker, port


def _kill_broker(broker: EmbeddedBroker) -> float:
    assert broker.pid is not None
    os.kill(broker.pid, signal.SIGKILL)
    return time.monotonic()


def test_a_lost_broker_turns_readiness_off_and_the_worker_exits_for_its_supervisor(
        tmp_path: Path) -> None:
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        worker, port = _worker(broker.bootstrap_servers, tmp_path)
        try:
            lost = _kill_broker(broker)
            unready = wait_until(lambda: (r := _readyz(port))[0] == 503 and r[1], timeout=15)
            assert unready and "broker_unreachable" in unready["waiting_for"], worker.output
            assert time.monotonic() - lost < 10 + 3  # within 10 s (plus one probe's timeout)
            code = worker.proc.wait(timeout=EXIT_AFTER + 30)
            assert code == 3, worker.output
        finally:
            worker.kill()
    output = worker.output
    assert "INTEL_BROKER_LOSS_EXIT_SECONDS" in output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if "[ERROR]" in line or "[WARNING]" in line]
    # Once per interval per message, not once per attempt (over a hundred a second).
    assert len(errors) < 40, "\n".join(errors)


def test_sigterm_without_a_broker_stops_the_worker_within_15_seconds(tmp_path: Path) -> None:
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        worker, port = _worker(broker.bootstrap_servers, tmp_path)
        try:
            _kill_broker(broker)
            assert wait_until(lambda: _readyz(port)[0] == 503, timeout=15), worker.output
            started = time.monotonic()
            worker.stop(signal.SIGTERM, timeout=30)
            assert time.monotonic() - started < 15, worker.output
        finally:
            worker.kill()
    assert "Traceback" not in worker.output, worker.output
