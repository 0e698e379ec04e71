"""The weekly digest: on the policy's schedule, on the leader, once per week, revised
when late events change it.

``@app.crontab`` fires at ``digest.schedule`` in ``digest.timezone`` (default
Monday 08:00 UTC) on the leader only, and produces the digest of the week
that ended before that moment. A digest missed because no worker was up, or
none was leader, at that moment is produced by the next leader: a timer on
the leader checks every ``INTEL_DIGEST_CHECK_SECONDS`` (default
``CATCH_UP_SECONDS``; first right after start-up) whether the week due at the
latest scheduled moment has a record on the compacted ``intel.digests``, as
the replica reads it. Weeks are keys there, and the leader adds a week to its
view as it publishes it, so each week is produced once, whatever the number of
workers or restarts.

"Now" is the timer's ``clock`` (the wall clock in a worker; ``incident-intel
demo`` sets it to the end of its simulated history, so the timer and the demo
go through the same :meth:`DigestTimer.catch_up`). Deciding, checking and
producing happen under the timer's lock, so the crontab, the catch-up timer
and a manual trigger racing each other still produce a week once. What it
sends goes through a checkpoint of its own (:mod:`app.stream.checkpoint`).

A published digest is the engine's answer over the replica as of the week's
end, its follow-ups planned as if none was sent, so it depends on the week's
events only; the JSON and Markdown artifacts go to ``INTEL_REPORTS_DIR``, and
the JSON summary to ``intel.digests`` keyed by week, as revision 1. When late
events change a published week, :meth:`DigestTimer.revise` publishes its next
revision (see the method, and :mod:`app.intel.digest` for the rules). The
follow-ups of a week are sent by the owners of its buckets once the watermark
passes the week's end; a digest of a week the watermark has not passed yet
sends them itself (the replica's view of ``intel.followups`` is the dedupe
table either way).
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
from app.contracts import (
    DigestSummary,
    FollowUp,
    WeeklyDigestRequest,
    WeeklyDigestResponse,
    dump_json,
)
from app.intel import digest
from app.intel.engine import Answer, IntelEngine
from app.intel.periods import last_complete_week, micros, week_end
from app.policy import Policy
from app.stream.checkpoint import Checkpoint
from app.stream.emitter import Emitter, Outgoing
from app.stream.publisher import Publisher
from app.stream.replica import ANY_TIME, Replica

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
    looked_at: dict[str, datetime] = field(default_factory=dict)
    """When this worker last published or compared each week (the clock): spaces the
    looks, and so the revisions, out."""
    dirty: set[str] = field(default_factory=set)
    """Published weeks that events applied since their last look may have changed."""
    forgotten: int = 0
    """:attr:`IntelEngine.forgotten` at the last look: when it grew, the retention forgot
    incidents (a signature they carried may be renamed), so every week is looked at."""

    async def produce(self, request: WeeklyDigestRequest) -> WeeklyDigestResponse:
        """Answer a digest over the replica (the API's ``weekly_digest``), write its
        artifacts when asked, send the follow-ups it plans that nobody sent yet.

        Publishing a week is :meth:`catch_up`'s, revising it :meth:`revise`'s.
        """
        async with self.lock:
            return await self._answer_locked(request)

    async def _answer_locked(self, request: WeeklyDigestRequest) -> WeeklyDigestResponse:
        """The API's digest: the engine's answer as of the replica's event time, the
        follow-ups already sent shown as such (``incident-intel tool --state``)."""
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
        await checkpoint.send_all(self._week_followups(response.week, answer.followups))
        await checkpoint.commit()
        self.runs += 1
        return response

    def _week_followups(self, week: str, followups: list[FollowUp]) -> list[Outgoing]:
        # Once the watermark has passed the week, the owners of its buckets send its
        # follow-ups (app.stream.publisher); before that (a quiet stream), the digest does.
        watermark = self.replica.engine.watermark
        if watermark is None or watermark < micros(week_end(week)):
            return self.publisher.followups(followups, owned_only=False)
        return []

    async def _published_digest(self, weeks: list[str]) -> dict[str, Answer]:
        """The digest each week publishes: the engine's answer as of the week's end,
        follow-ups planned as if none was sent (``incident-intel tool`` without
        ``--state``), so it depends on the week's events only."""
        def query(engine: IntelEngine, _: datetime) -> dict[str, Answer]:
            return {week: engine.weekly_digest(
                WeeklyDigestRequest(action="weekly_digest", week=week, save_artifacts=False),
                week_end(week), frozenset()) for week in weeks}
        return await self.replica.read(query)

    async def _publish_locked(self, week: str, moment: datetime | None) -> WeeklyDigestResponse:
        """Revision 1 of ``week``: artifacts, the follow-ups not sent yet, the record."""
        answer = (await self._published_digest([week]))[week]
        response = answer.response
        assert isinstance(response, WeeklyDigestResponse)
        summary = digest.first_revision(response.json_summary)
        outgoing = self._week_followups(week, answer.followups)
        response = await self._write_and_send(summary, outgoing)
        if moment is not None:
            self.looked_at[week] = moment
        return response

    async def _write_and_send(self, summary: DigestSummary,
                              outgoing: list[Outgoing]) -> WeeklyDigestResponse:
        """Write a revision's artifacts (the previous revision's JSON kept as
        ``YYYY-Www.rN.json``), then send it with ``outgoing`` through one checkpoint."""
        week, policy = summary.week, self.policy.intel
        markdown = digest.render_markdown(summary, policy)
        paths = artifact_paths(self.reports_dir, week)
        previous = self.replica.digests.get(week)
        if previous is not None and (summary.revision or 1) > 1:
            kept = self.reports_dir / f"{week}.r{previous.revision or 1}.json"
            await asyncio.to_thread(write_atomic, kept, digest.artifact_json(previous))
        await asyncio.to_thread(write_atomic, paths[0], digest.artifact_json(summary))
        await asyncio.to_thread(write_atomic, paths[1], markdown.encode())
        checkpoint = Checkpoint(self.emitter)
        await checkpoint.send_all(outgoing)
        await checkpoint.send(Outgoing("intel.digests", week.encode(), dump_json(summary),
                                       record_id(week, summary.revision or 1)))
        await checkpoint.commit()
        self.replica.digest_seen(week, summary)
        self.runs += 1
        return WeeklyDigestResponse(week=week, artifact_paths=[str(p) for p in paths],
                                    markdown_preview=markdown, json_summary=summary)

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
            response = await self._publish_locked(week, moment)
        log.warning("weekly digest %s produced: %s", week, ", ".join(response.artifact_paths))
        return response

    async def revise(self, now: datetime | None = None) -> list[WeeklyDigestResponse]:
        """Publish the next revision of every published week late events changed.

        Only on the leader, once the replica is ready and its inputs pause
        (:attr:`Replica.paused`): a burst of late events gives one revision, not
        one per event. A week is looked at when events applied since its last look
        can have changed it (:attr:`Replica.touched` is at or before its end; from
        a fresh start, every week), while it is
        :func:`~app.intel.digest.revisable` at the replica's event time, and at most
        once per ``digest.revise_min_interval_minutes`` of the clock since its last
        look or revision (a week held back is looked at on a later call). Its
        digest is computed again and compared with its latest revision on
        ``intel.digests``, so a worker that starts over continues from there, and
        an unchanged week gets no revision.
        """
        replica = self.replica
        if self.stopping() or not replica.ready or not self.leader() or not replica.paused:
            return []
        moment = now if now is not None else self.clock()
        if moment is None:
            return []
        policy = self.policy.intel
        interval = timedelta(minutes=policy.digest.revise_min_interval_minutes)
        out: list[WeeklyDigestResponse] = []
        async with self.lock:
            touched, as_of = replica.take_touched(), replica.as_of()
            if replica.engine.forgotten != self.forgotten:
                self.forgotten, touched = replica.engine.forgotten, ANY_TIME
            if touched is not None:
                self.dirty |= {week for week in replica.digests
                               if touched <= micros(week_end(week))}
            self.dirty = {week for week in self.dirty if replica.digests.get(week) is not None
                          and digest.revisable(week, as_of, policy)}
            for week in sorted(self.dirty):
                latest = replica.digests[week]
                assert latest is not None
                if self._too_soon(week, latest, moment, interval):
                    continue
                self.dirty.discard(week)
                self.looked_at[week] = moment
                # One read per week: folding waits for each, never for all of them.
                response = (await self._published_digest([week]))[week].response
                assert isinstance(response, WeeklyDigestResponse)
                revised = digest.revise(latest, response.json_summary, moment)
                if revised is not None:
                    out.append(await self._write_and_send(revised, []))
                    log.warning("weekly digest %s revised (revision %d)", week,
                                revised.revision or 1)
        return out

    def _too_soon(self, week: str, latest: DigestSummary, moment: datetime,
                  interval: timedelta) -> bool:
        """Whether the week's last look here, or its latest revision's ``revised_at``, is
        less than ``interval`` before ``moment``."""
        last = [t for t in (self.looked_at.get(week), latest.revised_at) if t is not None]
        return bool(last) and moment - max(last) < interval


def record_id(week: str, revision: int) -> str:
    """The ``intel-id`` of a week's revision on ``intel.digests``: one per revision."""
    return f"digest:{week}" if revision == 1 else f"digest:{week}:r{revision}"


def artifact_paths(reports_dir: Path, week: str) -> tuple[Path, Path]:
    """The JSON and Markdown artifacts of a week's latest revision."""
    return reports_dir / f"{week}.json", reports_dir / f"{week}.md"


def register(app: faust.App, timer: DigestTimer,
             check_seconds: float = CATCH_UP_SECONDS) -> None:
    """The schedule on the leader, the catch-up (and revision) timer every
    ``check_seconds``, and a first check at start."""
    settings = timer.policy.intel.digest

    @app.crontab(settings.schedule, timezone=ZoneInfo(settings.timezone), on_leader=True)
    async def weekly_digest() -> None:
        await timer.catch_up()

    @app.timer(check_seconds, on_leader=True)
    async def missed_digest() -> None:
        await timer.catch_up()
        await timer.revise()

    async def first_check() -> None:
        await timer.replica.wait_ready()
        for _ in range(60):  # leadership is known once the group has formed
            if timer.leader():
                await timer.catch_up()
                return
            await asyncio.sleep(1.0)

    app.task(first_check)
