"""The replica: a complete, live :class:`~app.intel.engine.IntelEngine` in every worker.

Every worker folds *every* input record (all partitions of the input topics)
into its own engine — the engine ``incident-intel tool`` runs, fed the same
events by the same input rule — so every answer the API, the gate and the
digest give is the offline answer for the same events. The data path
(:mod:`app.stream.cycle`) calls :meth:`Replica.fold` for each record it reads
and keeps what the output topics say (follow-ups sent, digests produced) here
as well.

It answers the reads of the worker's :class:`app.api.live.LiveView`
(:class:`app.stream.worker.WorkerView` adds the writes). Folding is
synchronous (one cycle's records at a time, under :attr:`Replica.state`);
reads run on the replica's own thread pool while folding waits, never on the
event loop, so a digest over a million incidents does not stall heartbeats,
the web server or the data path for longer than one cycle.

"As of" for live answers is the newest ``occurred_at`` applied (the epoch
before any event). ``ready`` turns true once the data path has read up to the
end offsets it saw at start; until then nothing keyed is published, the API
answers 503 and the digest timer waits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from pydantic import ValidationError

from app.contracts import (
    AlertTransition,
    DigestSummary,
    Event,
    FollowUp,
    IncidentEvent,
    LinkVerdict,
    QuarterVelocity,
)
from app.intel.engine import IntelEngine
from app.intel.incidents import Change
from app.intel.periods import EPOCH, from_micros, micros
from app.intel.velocity_tracker import VelocityTracker
from app.policy import Policy

T = TypeVar("T")

RECENT = 20
"""Follow-ups the dashboard shows."""
ANY_TIME = -(1 << 62)
"""A :attr:`Replica.touched` before every week: anything may have changed."""


@dataclass(frozen=True, slots=True)
class Folded:
    """What folding one event changed: the incident change (if any), the alert
    fingerprint it concerns (if any)."""

    change: Change | None
    fingerprint: str | None


class Replica:
    """Every event folded into one engine, and the reads of the worker's live view."""

    def __init__(self, policy: Policy, *, read_workers: int) -> None:
        self.policy = policy
        self.state = asyncio.Lock()
        """Held while the engine changes (folding) or is read off the loop."""
        self._pool = ThreadPoolExecutor(max_workers=read_workers,
                                        thread_name_prefix="replica-read")
        self._ready = asyncio.Event()
        self.reset()

    def reset(self) -> None:
        """Start over from nothing (at start, and after the data path failed)."""
        self.engine = IntelEngine(self.policy)
        self.tracker = VelocityTracker(self.policy.recurrence_target)
        self.applied = 0
        """Input events folded in (records read again after a seek are not counted)."""
        self.settled = 0
        """:attr:`applied` when the data path last found no record to read."""
        self.touched: int | None = ANY_TIME
        """The earliest event time (microseconds) that events applied since the last
        :meth:`take_touched` can have changed, ``None`` when nothing changed: a digest of
        a week that ended before it is unchanged. From a fresh start: anything."""
        self.digests: dict[str, DigestSummary | None] = {}
        """Weeks with a record on ``intel.digests``: the latest revision published (``None``
        when the record cannot be read: that week is never revised)."""
        self.followups: deque[FollowUp] = deque(maxlen=RECENT)
        self._velocity: list[QuarterVelocity] = []
        self._ready.clear()

    # ------------------------------------------------------------------ folding

    def fold(self, event: Event) -> Folded:
        """Apply one valid input event to the engine (and, once ready, to the velocity
        tracker: while the replica catches up nobody reads it, and it is built once from
        the book when the replica becomes ready, which is cheaper than following every
        event of a long history)."""
        engine = self.engine
        change = engine.apply(event)
        if self._ready.is_set():
            self.tracker.apply(engine.book, event)
        self.applied += 1
        fingerprint = event.alert.fingerprint if isinstance(event, AlertTransition) else None
        self._touch(event, change)
        return Folded(change, fingerprint)

    def _touch(self, event: Event, change: Change | None) -> None:
        """Note the earliest event time an applied event can have changed (see
        :attr:`touched`): an incident's start before and after the change; for other
        events their ``occurred_at`` and the start of each incident they name. A
        renamed signature can change answers about any time. (So can incidents the
        retention forgets, by an event or an idle advance: readers compare
        :attr:`IntelEngine.forgotten`. Alert transitions it forgets cannot: their
        retention covers every revisable week, by policy validation.) While no week is
        known to be published, any time is noted at once, without asking the engine."""
        if not self.digests:
            self.touched = ANY_TIME
        if self.touched == ANY_TIME:
            return
        if change is not None and self.engine.relabels(change):
            self.touched = ANY_TIME
            return
        if isinstance(event, IncidentEvent):
            if change is None:
                return  # an older or repeated version: nothing changed
            times = [change.after.started]
            if change.before is not None:
                times.append(change.before.started)
        else:
            names = ([event.incident_id, event.related_incident_id]
                     if isinstance(event, LinkVerdict) else [event.incident_id])
            incidents = self.engine.book.incidents
            times = [micros(event.occurred_at)]
            times += [incidents[i].started for i in names if i is not None and i in incidents]
        earliest = min(times)
        if self.touched is None or earliest < self.touched:
            self.touched = earliest

    def take_touched(self) -> int | None:
        """:attr:`touched`, cleared: the caller now knows what changed up to here."""
        touched, self.touched = self.touched, None
        return touched

    def digest_seen(self, week: str, value: bytes | DigestSummary | None = None) -> None:
        """A record of ``intel.digests`` (read back, or just published): the week's latest
        revision is the highest seen, so a late read-back of an older one changes nothing."""
        summary: DigestSummary | None = None
        if isinstance(value, DigestSummary):
            summary = value
        elif value is not None:
            try:
                summary = DigestSummary.model_validate_json(value)
            except ValidationError:
                pass  # someone else's record: the week is produced, never revised here
        known = self.digests.get(week)
        if known is None or (summary is not None
                             and (summary.revision or 1) >= (known.revision or 1)):
            self.digests[week] = summary if summary is not None else known

    def settle(self) -> None:
        """The data path read everything there was: the inputs pause here."""
        self.settled = self.applied

    @property
    def paused(self) -> bool:
        """Nothing applied since the data path last found its inputs drained."""
        return self.settled == self.applied

    def followup_seen(self, followup: FollowUp) -> None:
        self.followups.appendleft(followup)

    def caught_up(self) -> bool:
        """Mark the replica ready; True the first time (the caller logs it)."""
        if self._ready.is_set():
            return False
        self.tracker = VelocityTracker.from_book(self.engine.book, self.policy.recurrence_target)
        self._ready.set()
        return True

    async def wait_ready(self) -> None:
        await self._ready.wait()

    # ------------------------------------------------------------------ reads

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def as_of(self) -> datetime:
        watermark = self.engine.watermark
        return EPOCH if watermark is None else from_micros(watermark)

    async def read(self, query: Callable[[IntelEngine, datetime], T]) -> T:
        """Run ``query`` on the replica's own thread pool while folding waits."""
        async with self.state:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, query, self.engine, self.as_of())

    def recent_followups(self) -> list[FollowUp]:
        return list(self.followups)

    def derive_velocity(self) -> None:
        """Bring the learning-velocity quarters up to date (only quarters whose inputs
        changed are rebuilt); the data path calls it, never a reader."""
        self._velocity = self.tracker.quarters()

    def velocity(self) -> list[QuarterVelocity]:
        """The quarters as of their last derivation: current once the inputs pause, at
        most ``app.stream.cycle.VELOCITY_SECONDS`` old while they flow."""
        return list(self._velocity)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
