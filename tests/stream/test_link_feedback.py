"""A verdict posted to the worker's API is on ``learning.events`` when the API answers,
reaches the replica, and changes ``correlate`` and ``correlation_quality`` to what
``incident-intel tool`` answers for the same events."""

from __future__ import annotations

import urllib.error
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.builders import at, incident_event, stamp
from tests.support.kafka import CliProcess, wait_until
from tests.support.stream_oracle import (
    TOKEN,
    post,
    produce_all,
    read_all,
    tool,
    worker_env,
)

pytestmark = pytest.mark.broker

READY = "worker ready"
TOOL = "/v1/tools/incident_intelligence"


def answered(port: str, call: dict[str, Any]) -> Any:
    """The API's answer, or ``None`` while it refuses (replica not caught up yet)."""
    try:
        return post(port, TOOL, call, TOKEN)
    except urllib.error.HTTPError:
        return None


def test_a_posted_verdict_reaches_the_replica_and_changes_the_answers(kafka_bootstrap: str,
                                                                      tmp_path: Path) -> None:
    run_id = uuid.uuid4().hex[:10]
    prefix = f"lnk-{run_id}."
    env = worker_env(kafka_bootstrap, f"lnk-{run_id}", prefix, tmp_path / "data",
                     tmp_path / "rep")
    port = env["INTEL_WEB_PORT"]
    incidents = [incident_event(f"inc_{n}", started=at(days=1, minutes=30 * n))
                 for n in range(3)]
    worker = CliProcess(["run", "--no-feed"], env)
    try:
        assert worker.wait_for_line(READY, timeout=90), worker.output
        produce_all(kafka_bootstrap, prefix, [("incidents.events", e["incident"]["incident_id"]
                                               .encode(), orjson.dumps(e)) for e in incidents])
        correlate = {"action": "correlate", "incident_id": "inc_0"}
        quality = {"action": "correlation_quality"}
        assert wait_until(lambda: (answered(port, correlate) or {}).get("related_count") == 2,
                          timeout=60), worker.output[-3000:]
        assert post(port, TOOL, quality, TOKEN)["labelled_pairs"] == 0

        accepted = post(port, "/v1/feedback/links",
                        {"incident_id": "inc_0", "related_incident_id": "inc_2",
                         "verdict": "unrelated", "by": "ana",
                         "occurred_at": stamp(at(days=2))}, TOKEN)
        assert accepted["status"] == "published"
        topic = prefix + "learning.events"
        records = read_all(kafka_bootstrap, [topic])[topic]  # there when the API answered
        assert [(r.key, orjson.loads(r.value)) for r in records] == [(b"inc_0",
                                                                       accepted["event"])]

        def judged() -> dict[str, str | None]:
            return {r["incident_id"]: r.get("verdict")
                    for r in post(port, TOOL, correlate, TOKEN)["related"]}

        assert wait_until(lambda: judged() == {"inc_1": None, "inc_2": "unrelated"},
                          timeout=60), worker.output[-3000:]
        answer = post(port, TOOL, quality, TOKEN)
        assert answer["labelled_pairs"] == 1 and answer["overall"]["fp"] == 1

        # The same events offline: the same answers.
        events = tmp_path / "events.jsonl"
        events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in incidents)
                           + records[0].value + b"\n")
        state = tmp_path / "state.json"
        assert tool(events, state, quality) == answer
        assert tool(events, state, correlate) == post(port, TOOL, correlate, TOKEN)
        assert "Traceback" not in worker.output, worker.output
    finally:
        worker.kill()
