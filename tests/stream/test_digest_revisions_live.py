"""Digest revisions through a real broker: a worker publishes the due week, late
incidents of it give revision 2, and a restarted worker continues with revision 3.

The week is the one due by the wall clock (the worker's digest clock), its
incidents dated inside it, so the test holds whatever day it runs. The policy
copy sets ``digest.revise_min_interval_minutes`` to 0: the leader's 30-second
timer (every 2 s here, ``INTEL_DIGEST_CHECK_SECONDS``) publishes a revision at its
first look after the inputs pause. The
latest revision must equal the offline ``weekly_digest`` of the same events.
"""

from __future__ import annotations

import shutil
import signal
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from app.contracts import DigestSummary, dump_json
from app.intel import digest
from app.intel.periods import week_end, week_start
from app.policy import load_policy
from app.stream.digest_timer import due_week
from tests.support.builders import incident_event
from tests.support.digests import offline
from tests.support.kafka import REPO, CliProcess, wait_until
from tests.support.stream_oracle import produce_all, read_all, worker_env

pytestmark = pytest.mark.broker

READY = "worker ready"
SESSION_TIMEOUT = 6.0


def _policy_dir(tmp_path: Path) -> Path:
    target = tmp_path / "policy"
    shutil.copytree(REPO / "policy", target)
    path = target / "incident_intelligence.yml"
    document = yaml.safe_load(path.read_text())
    document["digest"]["revise_min_interval_minutes"] = 0
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    return target


def _incidents(prefix: str, start: datetime, count: int, **fields: Any) -> list[dict[str, Any]]:
    return [incident_event(f"{prefix}-{n}", started=start + timedelta(hours=3 * n), **fields)
            for n in range(count)]


def test_late_incidents_revise_the_published_week_across_a_restart(kafka_bootstrap: str,
                                                                   tmp_path: Path) -> None:
    policy_dir = _policy_dir(tmp_path)
    policy = load_policy(policy_dir)
    settings = policy.intel.digest
    week = due_week(settings.schedule, settings.timezone, datetime.now(UTC))
    monday = week_start(week)
    on_time = _incidents("w", monday + timedelta(hours=9), 7, signature="cd" * 32)
    # An incident after the week's end: the watermark has passed the week.
    on_time.append(incident_event("next", started=week_end(week) + timedelta(minutes=1),
                                  service="billing"))
    late = _incidents("late", monday + timedelta(days=2), 3, service="payments", kind="oom",
                      severity="P1")
    later = _incidents("later", monday + timedelta(days=4), 2, service="payments", kind="oom",
                       status="resolved")

    run_id = uuid.uuid4().hex[:10]
    prefix = f"rev-{run_id}."
    reports = tmp_path / "reports"
    env = worker_env(kafka_bootstrap, f"rev-{run_id}", prefix, tmp_path / "data", reports,
                     session_timeout=SESSION_TIMEOUT)
    env["INTEL_POLICY_DIR"] = str(policy_dir)
    env["INTEL_DIGEST_CHECK_SECONDS"] = "2"  # the leader looks every 2 s, not 30
    topic = prefix + "intel.digests"

    def send(events: list[dict[str, Any]]) -> None:
        produce_all(kafka_bootstrap, prefix, [
            ("incidents.events", e["incident"]["incident_id"].encode(), orjson.dumps(e))
            for e in events])

    def revisions() -> list[DigestSummary]:
        return [DigestSummary.model_validate_json(r.value)
                for r in read_all(kafka_bootstrap, [topic])[topic]
                if r.key == week.encode() and r.value is not None]

    def settled_on(events: list[dict[str, Any]], worker: CliProcess) -> DigestSummary:
        """The week's latest revision once it is the offline digest of ``events``."""
        want = dump_json(offline(policy, events, week))

        def latest() -> DigestSummary | None:
            found = revisions()
            return found[-1] if found and digest.content(found[-1]) == want else None

        done = wait_until(latest, timeout=150, interval=1.0)
        assert done is not None, worker.output[-3000:]
        return done

    workers: list[CliProcess] = []
    try:
        workers.append(CliProcess(["run", "--no-feed"], env))
        assert workers[0].wait_for_line(READY, timeout=90), workers[0].output
        send(on_time)
        first = settled_on(on_time, workers[0])  # revision 1 (2 if the timer saw half)

        send(late)
        second = settled_on(on_time + late, workers[0])
        assert second.revision == (first.revision or 1) + 1
        changes = {c.field: c for c in second.changes or []}
        assert (changes["recent_7d_count"].before, changes["recent_7d_count"].after) == (7, 10)
        assert changes["buckets"].added == ["payments|oom"]
        assert orjson.loads((reports / f"{week}.json").read_bytes())["revision"] == \
            second.revision
        assert (reports / f"{week}.r{first.revision}.json").exists()
        assert f"**Revised** — revision {second.revision}" in (reports / f"{week}.md").read_text()

        workers[0].stop(signal.SIGTERM)
        workers.append(CliProcess(["run", "--no-feed"], env))
        assert workers[1].wait_for_line(READY, timeout=120), workers[1].output
        send(later)
        third = settled_on(on_time + late + later, workers[1])
        assert third.revision == (second.revision or 1) + 1
        numbers = [r.revision for r in revisions()]
        assert numbers == list(range(1, len(numbers) + 1))  # none repeated, none skipped
        assert "Traceback" not in workers[1].output, workers[1].output[-3000:]
    finally:
        for worker in workers:
            worker.kill()
