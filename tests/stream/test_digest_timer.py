"""The digest timer: which week is due, produced once, by the leader only."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from app.contracts import FollowUp
from app.stream.digest_timer import DigestTimer, due_week, next_run, week_to_produce
from app.stream.testing import Produced, StreamHarness
from tests.support.builders import at, incident_event
from tests.support.policies import default_policy

MONDAY_8 = "0 8 * * 1"


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("now", "week"), [
    ("2026-02-25T12:00:00", "2026-W08"),  # Wednesday of W09: W08 was due on Monday
    ("2026-02-23T08:00:00", "2026-W08"),  # the scheduled moment itself counts
    ("2026-02-23T07:59:30", "2026-W08"),  # a crontab waking a little early still does
    ("2026-02-23T07:00:00", "2026-W07"),  # before Monday's run W08 is not due yet
    ("2026-03-14T23:00:00", "2026-W10"),  # missed several runs: only the latest is due
    ("2027-01-04T09:00:00", "2026-W53"),  # ISO week-year, not the calendar year
])
def test_due_week_is_the_week_before_the_latest_scheduled_run(now: str, week: str) -> None:
    assert due_week(MONDAY_8, "UTC", _utc(now)) == week


def test_the_schedule_is_read_in_its_own_timezone() -> None:
    # Monday 08:00 in Berlin (winter) is 07:00 UTC.
    assert due_week(MONDAY_8, "Europe/Berlin", _utc("2026-02-23T07:30:00")) == "2026-W08"
    assert due_week(MONDAY_8, "UTC", _utc("2026-02-23T07:30:00")) == "2026-W07"


def test_next_run_is_the_first_scheduled_moment_at_or_after() -> None:
    assert next_run(MONDAY_8, "UTC", _utc("2026-03-02T00:00:00")) == _utc("2026-03-02T08:00:00")
    assert next_run(MONDAY_8, "UTC", _utc("2026-03-02T08:00:00")) == _utc("2026-03-02T08:00:00")
    assert next_run(MONDAY_8, "UTC", _utc("2026-03-02T08:00:01")) == _utc("2026-03-09T08:00:00")


def test_week_to_produce_skips_weeks_already_produced_and_empty_systems() -> None:
    now = _utc("2026-02-25T12:00:00")
    assert week_to_produce(MONDAY_8, "UTC", now, set(), 5) == "2026-W08"
    assert week_to_produce(MONDAY_8, "UTC", now, {"2026-W08"}, 5) is None
    assert week_to_produce(MONDAY_8, "UTC", now, {"2026-W07"}, 5) == "2026-W08"
    assert week_to_produce(MONDAY_8, "UTC", now, set(), 0) is None


# ----------------------------------------------------------------- catch_up on a worker


@dataclass
class Leader:
    """A digest timer over a worker's data path whose replica holds a high bucket in
    2026-W08 with an open incident; leadership and the clock are the test's."""

    harness: StreamHarness
    timer: DigestTimer
    reports: Path
    leading: bool = True
    now: datetime | None = None

    def produced(self, topic: str) -> list[Produced]:
        return self.harness.to(topic)


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Leader]:
    harness = StreamHarness(default_policy())
    harness.feed("incidents.events", [
        (f"inc-{n}".encode(), orjson.dumps(incident_event(
            f"inc-{n}", started=at(days=n, hours=10), signature="cd" * 32,
            status="open" if n == 6 else "resolved")))
        for n in range(7)])  # one signature 7 times: high (signature threshold 6)
    leader = Leader(harness, cast(DigestTimer, None), tmp_path / "reports",
                    now=_utc("2026-02-25T12:00:00"))  # Wednesday of W09
    leader.timer = DigestTimer(harness.replica, harness.publisher, harness.emitter,
                               harness.replica.policy, leader.reports,
                               leader=lambda: leader.leading, clock=lambda: leader.now)
    yield leader
    harness.close()


def test_the_leader_produces_the_due_week_with_artifacts_and_followups(worker: Leader) -> None:
    response = asyncio.run(worker.timer.catch_up())

    assert response is not None and response.week == "2026-W08"
    reports = worker.reports
    assert sorted(p.name for p in reports.iterdir()) == ["2026-W08.json", "2026-W08.md"]
    assert (reports / "2026-W08.md").read_text().startswith("# Weekly Incident Digest — 2026-W08")
    digests = worker.produced("intel.digests")
    assert [(d.key, d.record_id) for d in digests] == [(b"2026-W08", "digest:2026-W08")]
    followups = [FollowUp.model_validate_json(s.value or b"")
                 for s in worker.produced("intel.followups")]
    assert [f.incident_id for f in followups] == ["inc-6"]  # the open one
    assert followups[0].meta.dedupe_key in worker.harness.publisher.emitted
    assert "2026-W08" in worker.harness.replica.digests


def test_a_week_is_produced_once_however_often_or_concurrently_the_timer_fires(
        worker: Leader) -> None:
    async def fire_three_times() -> list[Any]:
        both = await asyncio.gather(worker.timer.catch_up(), worker.timer.catch_up())
        return [*both, await worker.timer.catch_up()]

    results = asyncio.run(fire_three_times())

    assert sum(r is not None for r in results) == 1
    assert len(worker.produced("intel.digests")) == 1
    assert len(worker.produced("intel.followups")) == 1
    assert worker.timer.runs == 1


def test_a_week_already_on_intel_digests_is_skipped(worker: Leader) -> None:
    worker.harness.feed("intel.digests", [(b"2026-W08", b"{}")])  # another worker made it

    assert asyncio.run(worker.timer.catch_up()) is None
    assert worker.produced("intel.digests") == worker.produced("intel.followups") == []
    assert not worker.reports.exists()


def test_only_the_leader_produces(worker: Leader) -> None:
    worker.leading = False
    assert asyncio.run(worker.timer.catch_up()) is None
    assert worker.produced("intel.digests") == []


def test_a_held_clock_produces_nothing(worker: Leader) -> None:
    worker.now = None
    assert asyncio.run(worker.timer.catch_up()) is None
    assert worker.produced("intel.digests") == []


def test_a_replica_still_catching_up_produces_nothing(tmp_path: Path) -> None:
    harness = StreamHarness(default_policy())
    harness.caught_up = False
    harness.feed("incidents.events", [(b"inc-1", orjson.dumps(incident_event(
        "inc-1", started=at(days=1))))])
    timer = DigestTimer(harness.replica, harness.publisher, harness.emitter,
                        harness.replica.policy, tmp_path, leader=lambda: True,
                        clock=lambda: _utc("2026-02-25T12:00:00"))
    assert asyncio.run(timer.catch_up()) is None
    assert harness.to("intel.digests") == []
    harness.close()


def test_after_missed_runs_the_latest_due_week_is_caught_up(worker: Leader) -> None:
    # The worker was down from W09 to W11: at start-up the latest run (Monday of W12) is due.
    later = _utc("2026-03-18T09:00:00")
    response = asyncio.run(worker.timer.catch_up(now=later))
    assert response is not None and response.week == "2026-W11"
    assert asyncio.run(worker.timer.catch_up(now=later + timedelta(hours=1))) is None
    assert [d.key for d in worker.produced("intel.digests")] == [b"2026-W11"]
