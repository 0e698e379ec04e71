"""A worker killed outright mid-stream and started again loses and duplicates nothing.

``incident-intel run`` (no tables: its replica is rebuilt from the input topics)
gets the first half of a perturbed stream (out-of-order runs, late duplicates, malformed
records) plus the first incidents of a bucket that turns high; once it has
emitted some correlations it is SIGKILLed, with no chance to commit or flush.
Started again with the same app id and data dir, it gets the rest. Once the
consumer group has committed everything, every incident's final state is
re-sent (see ``test_stream_parity``), and the outputs and API answers must
equal the offline engine's, with no follow-up dedupe key on
``intel.followups`` twice.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from app.contracts import FollowUp
from app.policy import load_policy
from tests.support.kafka import REPO, CliProcess, wait_until
from tests.support.stream_oracle import (
    check_parity,
    committed_through,
    hot_bucket,
    hot_dedupe_key,
    offline,
    perturbed_stream,
    pipeline_stages,
    produce_all,
    read_all,
    touches,
    worker_env,
)

pytestmark = pytest.mark.broker

READY = "worker ready"
SESSION_TIMEOUT = 6.0


def test_sigkill_mid_stream_then_restart_equals_the_offline_engine(kafka_bootstrap: str,
                                                                   tmp_path: Path) -> None:
    policy = load_policy(REPO / "policy")
    run_id = uuid.uuid4().hex[:10]
    app_id, prefix = f"rst-{run_id}", f"rst-{run_id}."
    env = worker_env(kafka_bootstrap, app_id, prefix, tmp_path / "data", tmp_path / "rep",
                     session_timeout=SESSION_TIMEOUT)
    stream, hot = perturbed_stream(11), hot_bucket()
    half = len(stream) // 2
    first = stream[:half] + hot[:7]  # the bucket turns high before the crash…
    second = stream[half:] + hot[7:]  # …and keeps changing after it
    workers: list[CliProcess] = []
    try:
        workers.append(CliProcess(["run", "--no-feed"], env))
        assert workers[0].wait_for_line(READY, timeout=90), workers[0].output
        produce_all(kafka_bootstrap, prefix, first)
        correlations = prefix + "intel.correlations"
        assert wait_until(lambda: len(read_all(kafka_bootstrap, [correlations])[correlations])
                          >= 20, timeout=120, interval=0.2), workers[0].output[-3000:]
        assert workers[0].stop(signal.SIGKILL) == -signal.SIGKILL
        # A restarted worker comes back after its old session has expired (the
        # broker drops the dead member), as under a supervisor that restarts it.
        time.sleep(SESSION_TIMEOUT * 1.5)

        workers.append(CliProcess(["run", "--no-feed"], env))
        assert workers[1].wait_for_line(READY, timeout=120), workers[1].output
        produce_all(kafka_bootstrap, prefix, second)
        assert committed_through(kafka_bootstrap, app_id, pipeline_stages(app_id, prefix),
                                 timeout=180), workers[1].output[-3000:]
        values = [value for _, _, value in first + second]
        final = touches(offline(policy, values))
        produce_all(kafka_bootstrap, prefix, final)
        out = check_parity(kafka_bootstrap, prefix, policy, values + [v for _, _, v in final],
                           [env["INTEL_WEB_PORT"]], tmp_path, lambda: workers[-1].output[-3000:],
                           expect_decay=False)

        keys = Counter(FollowUp.model_validate_json(r.value).meta.dedupe_key
                       for r in out[prefix + "intel.followups"])
        assert keys[hot_dedupe_key(policy)] == 1, keys
        assert "Traceback" not in workers[1].output, workers[1].output
    finally:
        for worker in workers:
            worker.kill()
