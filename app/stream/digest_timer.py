"""The weekly digest: on the policy's schedule, on the leader, once per week.

``@app.crontab`` fires at ``digest.schedule`` in ``digest.timezone`` (default
Monday 08:00 UTC) on the leader only, and produces the digest of the week
that ended before that moment. A digest missed because no worker was up, or
none was leader, at that moment is produced by the next leader: a timer on
the leader checks every ``CATCH_UP_SECONDS`` (first right after start-up)
whether the week due at the latest scheduled moment has a record on the
compacted ``intel.digests``, as the replica reads it. Weeks are keys there,
and the leader adds a week to its view as it publishes it, so each week is
produced once, whatever the number of workers or restarts.

"Now" is the timer's ``clock`` (the wall clock in a worker; ``incident-intel
demo`` sets it to the end of its simulated history, so the timer and the demo
go through the same :meth:`DigestTimer.catch_up`). Deciding, checking and
producing happen under the timer's lock, so the crontab, the catch-up timer
and a manual trigger racing each other still produce a week once. What it
sends goes through a checkpoint of its own (:mod:`app.stream.checkpoint`).

A digest is the engine's answer over the replica, as of the replica's event
time; the JSON and Markdown artifacts go to ``INTEL_REPORTS_DIR``, and the
JSON summary to ``intel.digests`` keyed by week. The follow-ups of a week are
sent by the owners of its buckets once the watermark passes the week's end;
a digest of a week the watermark has not passed yet sends them itself (the
replica's view of ``intel.followups`` is the dedupe table either way).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from croniter import croniter

from app.artifacts import write_atomic
from app.contracts import WeeklyDigestRequest, WeeklyDigestResponse, dump_json
from app.intel.periods import last_complete_week, micros, week_end
from app.policy import Policy
from app.stream.checkpoint import Checkpoint
from app.stream.emitter import Emitter, Outgoing
from app.stream.publisher import Publisher
from app.stream.replica import Replica

if TYPE_CHECKING:
    import faust

log = logging.getLogger(__name__)

CATCH_UP_SECONDS = 30.0
SCHEDULE_SLACK = timedelta(seconds=60)
"""A crontab that wakes this much before its moment still counts as that run."""


def due_week(schedule: str, timezone: str, now: datetime) -> str:
    """The week whose digest was due at the latest scheduled moment at or before ``now``.

    The scheduled moment itself counts (croniter's ``get_prev`` is strictly
    before its start), with :data:`SCHEDULE_SLACK` for timers that wake early.
    """
    local = now.astimezone(ZoneInfo(timezone))
    fired = croniter(schedule, local + SCHEDULE_SLACK).get_prev(datetime)
    return last_complete_week(fired.astimezone(UTC))


def next_run(schedule: str, timezone: str, after: datetime) -> datetime:
    """The first scheduled moment at or after ``after`` (UTC): when its digest is due."""
    local = after.astimezone(ZoneInfo(timezone)) - timedelta(microseconds=1)
    return croniter(schedule, local).get_next(datetime).astimezone(UTC)


def week_to_produce(schedule: str, timezone: str, now: datetime, produced: Container[str],
                    events_applied: int) -> str | None:
    """The week a catch-up must produce now, or ``None`` when there is nothing to do.

    Only the week due at the latest scheduled moment is caught up (older missed
    weeks are history; ask for them by week). Nothing is produced for a week
    already on ``intel.digests`` or before any event was consumed (a fresh
    system has nothing to report).
    """
    week = due_week(schedule, timezone, now)
    if week in produced or not events_applied:
        return None
    return week


def wall_clock() -> datetime:
    """The real time: what the digest schedule is judged at in a worker."""
    return datetime.now(UTC)


@dataclass
class DigestTimer:
    """The weekly digest of the worker: decides which week is due and produces it.

    ``clock`` is "now" for the schedule: the wall clock in a worker;
    ``incident-intel demo`` sets the end of its simulated history (a clock
    answering ``None`` holds the schedule until the simulation is ready).
    """

    replica: Replica
    publisher: Publisher
    emitter: Emitter
    policy: Policy
    reports_dir: Path
    leader: Callable[[], bool]
    stopping: Callable[[], bool] = lambda: False
    clock: Callable[[], datetime | None] = wall_clock
    runs: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def produce(self, request: WeeklyDigestRequest, *,
                      publish: bool) -> WeeklyDigestResponse:
        """Answer a digest over the replica, write its artifacts, send its follow-ups.

        With ``publish`` the summary also goes to ``intel.digests``. Artifacts are
        written before anything is published: a crash in between repeats the run.
        """
        async with self.lock:
            return await self._produce_locked(request, publish=publish)

    async def _produce_locked(self, request: WeeklyDigestRequest, *,
                              publish: bool) -> WeeklyDigestResponse:
        replica, publisher = self.replica, self.publisher
        emitted = frozenset(publisher.emitted)
        reports = str(self.reports_dir)
        answer = await replica.read(lambda engine, as_of: engine.weekly_digest(
            request, as_of, emitted, output_dir=reports))
        for artifact in answer.artifacts:
            await asyncio.to_thread(write_atomic, artifact.path, artifact.data)
        response = answer.response
        assert isinstance(response, WeeklyDigestResponse)
        checkpoint = Checkpoint(self.emitter)
        # Once the watermark has passed the week, the owners of its buckets send its
        # follow-ups (app.stream.publisher); before that (a quiet stream), the digest does.
        watermark = replica.engine.watermark
        if watermark is None or watermark < micros(week_end(response.week)):
            await checkpoint.send_all(publisher.followups(answer.followups, owned_only=False))
        if publish:
            await checkpoint.send(Outgoing("intel.digests", response.week.encode(),
                                           dump_json(response.json_summary),
                                           f"digest:{response.week}"))
        await checkpoint.commit()
        if publish:
            replica.digest_seen(response.week)
        self.runs += 1
        return response

    async def catch_up(self, now: datetime | None = None) -> WeeklyDigestResponse | None:
        """Produce the due week's digest if this worker leads and nobody produced it yet.

        ``now`` defaults to the clock. Returns the digest produced, or ``None`` (not
        leader, not caught up, clock held, or nothing due).
        """
        replica = self.replica
        if self.stopping() or not replica.ready or not self.leader():
            return None
        moment = now if now is not None else self.clock()
        if moment is None:
            return None
        settings = self.policy.intel.digest
        async with self.lock:
            week = week_to_produce(settings.schedule, settings.timezone, moment,
                                   replica.digests, replica.applied)
            if week is None:
                return None
            response = await self._produce_locked(
                WeeklyDigestRequest(action="weekly_digest", week=week, save_artifacts=True),
                publish=True,
            )
        log.warning("weekly digest %s produced: %s", week, ", ".join(response.artifact_paths))
        return response


def register(app: faust.App, timer: DigestTimer) -> None:
    """The schedule on the leader, the catch-up timer, and a first check at start."""
    settings = timer.policy.intel.digest

    @app.crontab(settings.schedule, timezone=ZoneInfo(settings.timezone), on_leader=True)
    async def weekly_digest() -> None:
        await timer.catch_up()

    @app.timer(CATCH_UP_SECONDS, on_leader=True)
    async def missed_digest() -> None:
        await timer.catch_up()

    async def first_check() -> None:
        await timer.replica.wait_ready()
        for _ in range(60):  # leadership is known once the group has formed
            if timer.leader():
                await timer.catch_up()
                return
            await asyncio.sleep(1.0)

    app.task(first_check)
