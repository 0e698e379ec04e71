"""The digest timer: which week is due, produced once, by the leader only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.contracts import FollowUp
from app.stream.app import create_app
from app.stream.digest_timer import catch_up, due_week, next_run, week_to_produce
from app.stream.settings import WorkerSettings
from tests.builders import at, incident_event
from tests.stream.conftest import recording

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


@pytest.fixture
def app(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """A worker whose replica holds a high bucket in 2026-W08 with an open incident."""
    settings = WorkerSettings(app_id=f"t-digest-{request.node.name[:40]}",
                              reports_dir=tmp_path / "reports")
    app = create_app(settings)
    recording(app)
    replica = app.replica
    for n in range(7):  # one signature 7 times: high (signature threshold 6)
        event = incident_event(f"inc-{n}", started=at(days=n, hours=10), signature="cd" * 32,
                               status="open" if n == 6 else "resolved")
        replica.apply("incidents.events", f"inc-{n}".encode(), orjson.dumps(event))
    replica._ready.set()  # noqa: SLF001 - no broker: the replica is complete as built
    app.is_leader = lambda: True
    replica.clock = lambda: _utc("2026-02-25T12:00:00")  # Wednesday of W09
    return app


def test_the_leader_produces_the_due_week_with_artifacts_and_followups(app: Any) -> None:
    response = asyncio.run(catch_up(app))

    assert response is not None and response.week == "2026-W08"
    reports = app.intel_settings.reports_dir
    assert sorted(p.name for p in reports.iterdir()) == ["2026-W08.json", "2026-W08.md"]
    assert (reports / "2026-W08.md").read_text().startswith("# Weekly Incident Digest — 2026-W08")
    digests = app.outbox.to("intel.digests")
    assert [(d.key, d.record_id) for d in digests] == [(b"2026-W08", "digest:2026-W08")]
    followups = [FollowUp.model_validate_json(s.value) for s in app.outbox.to("intel.followups")]
    assert [f.incident_id for f in followups] == ["inc-6"]  # the open one
    assert followups[0].meta.dedupe_key in app.replica.emitted


def test_a_week_is_produced_once_however_often_or_concurrently_the_timer_fires(
        app: Any) -> None:
    async def fire_three_times() -> list[Any]:
        both = await asyncio.gather(catch_up(app), catch_up(app))
        return [*both, await catch_up(app)]

    results = asyncio.run(fire_three_times())

    assert sum(r is not None for r in results) == 1
    assert len(app.outbox.to("intel.digests")) == 1
    assert len(app.outbox.to("intel.followups")) == 1
    assert app.replica.digest_runs == 1


def test_a_week_already_on_intel_digests_is_skipped(app: Any) -> None:
    app.replica.apply("intel.digests", b"2026-W08", b"{}")  # another worker produced it

    assert asyncio.run(catch_up(app)) is None
    assert app.outbox.records == []
    assert not app.intel_settings.reports_dir.exists()


def test_only_the_leader_produces(app: Any) -> None:
    app.is_leader = lambda: False
    assert asyncio.run(catch_up(app)) is None
    assert app.outbox.records == []


def test_a_replica_still_catching_up_or_a_held_clock_produce_nothing(app: Any) -> None:
    app.replica.clock = lambda: None
    assert asyncio.run(catch_up(app)) is None
    app.replica.clock = lambda: _utc("2026-02-25T12:00:00")
    app.replica._ready.clear()  # noqa: SLF001
    assert asyncio.run(catch_up(app)) is None
    assert app.outbox.records == []


def test_after_missed_runs_the_latest_due_week_is_caught_up(app: Any) -> None:
    # The worker was down from W09 to W11: at start-up the latest run (Monday of W12) is due.
    later = _utc("2026-03-18T09:00:00")
    response = asyncio.run(catch_up(app, now=later))
    assert response is not None and response.week == "2026-W11"
    assert asyncio.run(catch_up(app, now=later + timedelta(hours=1))) is None
    assert [d.key for d in app.outbox.to("intel.digests")] == [b"2026-W11"]
