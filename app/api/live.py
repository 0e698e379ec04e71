"""The seam between the HTTP layer and whatever keeps the engine up to date.

The stream worker keeps a live, complete replica of the engine and implements
:class:`LiveView`; :class:`InMemoryLiveView` implements it over an engine fed
once from a list of events (tests, ``incident-intel serve``). The API sees
nothing else of either, so it is tested without Kafka and serves the worker
unchanged.

Reads go through :meth:`LiveView.read` rather than a bare ``engine``
attribute: the view decides how a query runs against a consistent state (in a
worker thread under the lock its agent takes while applying a batch, or
inline on its loop), and hands the query the ``as_of`` that state belongs to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from app.artifacts import write_atomic
from app.contracts import (
    Event,
    FollowUp,
    Note,
    QuarterVelocity,
    WeeklyDigestRequest,
    WeeklyDigestResponse,
)
from app.intel.engine import Artifact, IntelEngine
from app.intel.velocity_quarters import velocity_by_quarter
from app.metrics import MetricsRegistry
from app.policy import Policy

__all__ = ["InMemoryLiveView", "LiveView", "Query"]

T = TypeVar("T")
Query = Callable[[IntelEngine, datetime], T]
"""A pure read of the engine at an ``as_of``; may raise :class:`ActionError`."""


@runtime_checkable
class LiveView(Protocol):
    """What the API needs from a live replica of the engine.

    The synchronous methods are called on the event loop the API runs on and
    must return quickly (they hand out state the view already holds); the
    API runs ``read``, ``emit_note`` and ``run_digest`` under the action's
    ``timeout_seconds``.
    """

    @property
    def ready(self) -> bool:
        """True once recovery has finished; until then ``/v1`` answers 503."""
        ...

    def as_of(self) -> datetime:
        """The newest event time the replica has applied (what answers are "as of").

        Must not raise: before the first event, return any time not after it
        (the Unix epoch will do); the dashboard and the velocity report show it.
        """
        ...

    async def read(self, query: Query[T]) -> T:
        """Run ``query(engine, as_of)`` against a consistent state and return its result.

        Inline on the loop, or on a bounded pool of the view's own (never the
        loop's default executor, which the stream and aiohttp share). The API
        bounds each query's size and, on timeout, makes it stop at its next step.
        """
        ...

    def recent_followups(self) -> list[FollowUp]:
        """The latest follow-ups sent to ``intel.followups``, newest first (bounded)."""
        ...

    def velocity(self) -> list[QuarterVelocity]:
        """Learning velocity per quarter, as ``velocity_by_quarter`` gives it."""
        ...

    async def emit_note(self, note: Note) -> None:
        """Send a timeline note to ``incidents.notes`` (keyed by its incident)."""
        ...

    async def run_digest(self, request: WeeklyDigestRequest) -> WeeklyDigestResponse:
        """Produce a digest: the engine's response unchanged, artifacts written, dedupe honoured."""
        ...


class InMemoryLiveView:
    """A :class:`LiveView` over an engine fed once from events, then only read.

    Answers equal ``incident-intel tool`` on the same events and ``--as-of``:
    events after ``as_of`` are left out, and ``as_of`` defaults to the newest
    ``occurred_at``. Because the engine never changes after construction,
    queries run on a pool of ``read_workers`` threads of its own, where a time
    limit can abandon them.

    Side effects stay inspectable: notes land in :attr:`notes`; digest
    artifacts are written under ``artifact_dir`` (paths as the tool writes
    them, relative to it), or kept in :attr:`artifacts` when it is ``None``.
    Follow-ups a digest created are remembered like the worker's dedupe table,
    so a second digest of the same week skips them as ``already_exists``.
    Its metrics live in :attr:`metrics`; serve them with ``create_api(...,
    metrics=view.metrics)``.
    """

    def __init__(self, policy: Policy, events: Iterable[Event], *,
                 as_of: datetime | None = None, artifact_dir: Path | None = None,
                 recent_limit: int = 20, read_workers: int | None = None) -> None:
        events = list(events)
        if as_of is None:
            if not events:
                raise ValueError("no events and no as_of: nothing to answer from")
            as_of = max(e.occurred_at for e in events)
        self.policy = policy
        self.engine = IntelEngine(policy)
        self.engine.apply_until(events, as_of)
        self._as_of = as_of
        self.artifact_dir = artifact_dir
        self.recent_limit = recent_limit
        self.notes: list[Note] = []
        self.artifacts: list[Artifact] = []
        self.emitted: set[str] = set()
        self.digest_runs = 0
        self._followups: list[FollowUp] = []
        self._digest_lock = asyncio.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=read_workers or policy.rate_limits.engine_reads.workers,
            thread_name_prefix="engine-read")
        self._velocity = velocity_by_quarter(self.engine.book, policy.recurrence_target,
                                             as_of=as_of)
        self.metrics = MetricsRegistry()
        self.metrics.replica_incidents.set(len(self.engine.book.incidents))
        self.metrics.replica_ready.set(1)
        self.metrics.set_watermark(as_of.timestamp())

    @property
    def ready(self) -> bool:
        return True

    def as_of(self) -> datetime:
        return self._as_of

    async def read(self, query: Query[T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, query, self.engine,
                                                                self._as_of)

    def recent_followups(self) -> list[FollowUp]:
        return list(self._followups)

    def close(self) -> None:
        """Wait for the reads still running (an abandoned read stops at its next step)
        and release the view's pool."""
        self._pool.shutdown(wait=True)

    def velocity(self) -> list[QuarterVelocity]:
        return list(self._velocity)

    async def emit_note(self, note: Note) -> None:
        self.notes.append(note)
        self.metrics.record_output("incidents.notes")

    async def run_digest(self, request: WeeklyDigestRequest) -> WeeklyDigestResponse:
        async with self._digest_lock:  # two digests at once must not both create a follow-up
            answer = await asyncio.get_running_loop().run_in_executor(
                self._pool, self.engine.weekly_digest, request, self._as_of,
                frozenset(self.emitted))
            for artifact in answer.artifacts:
                if self.artifact_dir is None:
                    self.artifacts.append(artifact)
                else:
                    await asyncio.to_thread(write_atomic, self.artifact_dir / artifact.path,
                                            artifact.data)
            self.emitted.update(f.meta.dedupe_key for f in answer.followups)
            self._followups = (list(reversed(answer.followups))
                               + self._followups)[: self.recent_limit]
            self.digest_runs += 1
        assert isinstance(answer.response, WeeklyDigestResponse)
        return answer.response
