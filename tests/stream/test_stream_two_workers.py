"""Two workers in one consumer group share the partitions and answer as one.

Two ``incident-intel run`` processes with the same app id (one consumer group)
but their own web ports and data dirs split the partitions of every topic. The
final compacted outputs, the follow-ups and the API answers of *either* worker
must equal the offline engine's, as with one worker (``test_stream_parity``).
Both workers are checked to have consumed incident events, so the partitions
really were shared.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest

from app.contracts import FollowUp
from app.policy import load_policy
from tests.support.kafka import REPO, CliProcess
from tests.support.stream_oracle import (
    check_parity,
    committed_through,
    hot_bucket,
    hot_dedupe_key,
    offline,
    perturbed_stream,
    pipeline_stages,
    produce_all,
    touches,
    worker_env,
)

pytestmark = pytest.mark.broker

READY = "worker ready"
SESSION_TIMEOUT = 6.0


def _valid(port: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ingest/",  # noqa: S310 - local
                                timeout=10) as response:
        return int(json.loads(response.read())["valid"])


def test_two_workers_in_one_group_equal_the_offline_engine(kafka_bootstrap: str,
                                                          tmp_path: Path) -> None:
    policy = load_policy(REPO / "policy")
    run_id = uuid.uuid4().hex[:10]
    app_id, prefix = f"two-{run_id}", f"two-{run_id}."
    envs = [worker_env(kafka_bootstrap, app_id, prefix, tmp_path / f"data{n}",
                       tmp_path / f"rep{n}", session_timeout=SESSION_TIMEOUT)
            for n in (0, 1)]
    workers: list[CliProcess] = []
    try:
        for env in envs:
            workers.append(CliProcess(["run", "--no-feed"], env))
        for worker in workers:
            assert worker.wait_for_line(READY, timeout=120), worker.output
        stream = perturbed_stream(17) + hot_bucket()
        produce_all(kafka_bootstrap, prefix, stream)
        assert committed_through(kafka_bootstrap, app_id, pipeline_stages(app_id, prefix),
                                 timeout=180), workers[0].output[-3000:]
        values = [value for _, _, value in stream]
        final = touches(offline(policy, values))
        produce_all(kafka_bootstrap, prefix, final)
        ports = [env["INTEL_WEB_PORT"] for env in envs]
        out = check_parity(kafka_bootstrap, prefix, policy, values + [v for _, _, v in final],
                           ports, tmp_path,
                           lambda: "\n".join(w.output[-2000:] for w in workers))

        keys = Counter(FollowUp.model_validate_json(r.value).meta.dedupe_key
                       for r in out[prefix + "intel.followups"])
        assert keys[hot_dedupe_key(policy)] == 1, keys
        assert all(_valid(port) > 0 for port in ports)  # both consumed a share
        for worker in workers:
            assert "Traceback" not in worker.output, worker.output
    finally:
        for worker in workers:
            worker.kill()
