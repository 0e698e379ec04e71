"""A third worker joins a group of two and leaves it again while events flow.

Two ``incident-intel run`` processes share the partitions; a perturbed stream is
produced at a steady pace, and while it flows a third worker with the same app
id joins (a rebalance moves partitions to it) and is stopped again (another
rebalance moves them back). Nothing may be lost across the hand-overs: once the
group has committed everything, every incident has an ``intel.correlations``
record and every dead letter is there; after every incident's final state is
re-sent, the keyed outputs, follow-ups and API answers settle on the offline
engine's (``test_stream_parity``).
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from app.contracts import FollowUp
from app.policy import load_policy
from tests.support.kafka import REPO, CliProcess, wait_until
from tests.support.stream_oracle import (
    Produced,
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
CHUNK = 40
"""Records produced between two short pauses: the stream flows for the whole test."""


def _paced(bootstrap: str, prefix: str, records: Produced, done: threading.Event) -> None:
    for start in range(0, len(records), CHUNK):
        produce_all(bootstrap, prefix, records[start:start + CHUNK])
        time.sleep(0.4)
    done.set()


def test_a_worker_joining_and_leaving_mid_stream_loses_nothing(kafka_bootstrap: str,
                                                               tmp_path: Path) -> None:
    policy = load_policy(REPO / "policy")
    run_id = uuid.uuid4().hex[:10]
    app_id, prefix = f"three-{run_id}", f"three-{run_id}."
    envs = [worker_env(kafka_bootstrap, app_id, prefix, tmp_path / f"data{n}",
                       tmp_path / f"rep{n}", session_timeout=SESSION_TIMEOUT)
            for n in range(3)]
    stream = perturbed_stream(23) + hot_bucket()
    workers: list[CliProcess] = []
    try:
        for env in envs[:2]:
            workers.append(CliProcess(["run", "--no-feed"], env))
        for worker in workers:
            assert worker.wait_for_line(READY, timeout=120), worker.output
        produced = threading.Event()
        feeder = threading.Thread(target=_paced, args=(kafka_bootstrap, prefix, stream, produced))
        feeder.start()
        time.sleep(1.0)
        third = CliProcess(["run", "--no-feed"], envs[2])
        workers.append(third)
        assert third.wait_for_line(READY, timeout=120), third.output
        assert wait_until(lambda: "replica ready" in third.output, timeout=60), third.output
        assert not produced.is_set(), "the stream ended before the third worker joined"
        time.sleep(2.0)
        assert third.stop(signal.SIGTERM) == 0, third.output
        feeder.join(timeout=300)
        assert produced.is_set()
        assert committed_through(kafka_bootstrap, app_id, pipeline_stages(app_id, prefix),
                                 timeout=180), workers[0].output[-3000:]

        # Nothing lost across the hand-overs: a correlation record for every incident.
        values = [value for _, _, value in stream]
        engine = offline(policy, values)
        correlations = prefix + "intel.correlations"
        keys = {r.key for r in read_all(kafka_bootstrap, [correlations])[correlations]}
        missing = {i.encode() for i in engine.book.incidents} - keys
        assert not missing, (f"{len(missing)} incidents without a correlation record, e.g. "
                             f"{sorted(missing)[:5]}\n" + workers[0].output[-3000:])

        final = touches(engine)
        produce_all(kafka_bootstrap, prefix, final)
        ports = [env["INTEL_WEB_PORT"] for env in envs[:2]]
        out = check_parity(kafka_bootstrap, prefix, policy, values + [v for _, _, v in final],
                           ports, tmp_path,
                           lambda: "\n".join(w.output[-2000:] for w in workers))
        sent = Counter(FollowUp.model_validate_json(r.value).meta.dedupe_key
                       for r in out[prefix + "intel.followups"])
        assert sent[hot_dedupe_key(policy)] == 1, sent
        for worker in workers:
            assert "Traceback" not in worker.output, worker.output
    finally:
        for worker in workers:
            worker.kill()
