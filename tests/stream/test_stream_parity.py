"""The live pipeline on a real broker equals the offline engine (``incident-intel tool``).

A simulated stream, with duplicates, out-of-order records and malformed ones,
goes through ``incident-intel run``; once it is processed, every incident's
final state is re-sent once (a later ``incident.updated``), so each
correlation is computed after everything related to it was processed (the
guarantee of ``intel.correlations``: a record reflects what had been
processed when the incident last changed). The stream holds two periods 40
days apart, so the first period's recurrence decays to zero, its buckets
leave the list, and its incidents are re-sent when they are older than the
correlation lookback. The worker's outputs and its API answers must then
equal what the offline engine answers for the same events (see
``stream_oracle`` for what each output record means).

"Processed" is observed, not guessed: the worker's consumer group must have
committed every record of the input topics
(:func:`~tests.support.stream_oracle.committed_through`).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from app.policy import load_policy
from tests.support.kafka import REPO, CliProcess
from tests.support.stream_oracle import (
    check_parity,
    committed_through,
    offline,
    perturbed_stream,
    pipeline_stages,
    produce_all,
    touches,
    worker_env,
)

pytestmark = pytest.mark.broker

READY = "worker ready"


def test_live_outputs_and_answers_equal_the_offline_engine(kafka_bootstrap: str,
                                                           tmp_path: Path) -> None:
    policy = load_policy(REPO / "policy")
    run_id = uuid.uuid4().hex[:10]
    app_id, prefix = f"par-{run_id}", f"par-{run_id}."
    env = worker_env(kafka_bootstrap, app_id, prefix, tmp_path / "data", tmp_path / "rep")
    worker = CliProcess(["run", "--no-feed"], env)
    try:
        assert worker.wait_for_line(READY, timeout=90), worker.output
        first = perturbed_stream(5)
        produce_all(kafka_bootstrap, prefix, first)
        # The re-sends must come after phase one was processed (see the module docstring).
        assert committed_through(kafka_bootstrap, app_id, pipeline_stages(app_id, prefix),
                                 timeout=180), worker.output[-3000:]
        values = [value for _, _, value in first]
        final = touches(offline(policy, values))
        produce_all(kafka_bootstrap, prefix, final)
        check_parity(kafka_bootstrap, prefix, policy, values + [v for _, _, v in final],
                     [env["INTEL_WEB_PORT"]], tmp_path, lambda: worker.output[-3000:])
        assert "Traceback" not in worker.output, worker.output
    finally:
        worker.kill()
