"""Answering admitted calls from the live view, within the action's time limit.

The engine's answer is the response, unchanged: the API and ``incident-intel
tool`` serialise the same model the same way, so their JSON is equal for the
same events and ``as_of``. The only additions are the side effects the tool
leaves to its shell: an appended note is really sent, and a digest goes
through the view (artifacts, follow-up dedupe table).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel

from app.contracts import (
    AlertsRequest,
    AlertsResponse,
    BucketsRequest,
    BucketsResponse,
    CorrelateResponse,
    RecurrenceRequest,
    RecurrenceResponse,
    WeeklyDigestRequest,
)
from app.intel.engine import ActionError, IntelEngine, ReadCancelled, Request, StopRequested
from app.policy import Policy

from .dashboard import DashboardData
from .errors import ApiError
from .learning import VelocityReport, velocity_report
from .live import LiveView

__all__ = ["answer_call", "dashboard_data", "learning_velocity", "within"]

T = TypeVar("T")


async def within(seconds: float, what: str, work: Callable[[StopRequested], Awaitable[T]]) -> T:
    """``work(stop)``'s result, or 504 when it takes longer than ``seconds``.

    Abandoning the await does not stop a thread, so on timeout (or any other
    exit) ``stop`` turns true: the engine checks it between steps and gives up.
    """
    stop = threading.Event()
    try:
        async with asyncio.timeout(seconds):
            return await work(stop.is_set)
    except (TimeoutError, ReadCancelled):
        raise ApiError("timeout", f"{what} took longer than {seconds:g} s") from None
    finally:
        stop.set()


def _engine_answer(request: Request, stop: StopRequested, engine: IntelEngine,
                   as_of: datetime) -> BaseModel:
    return engine.answer(request, as_of, stop=stop).response


async def answer_call(view: LiveView, request: Request, stop: StopRequested) -> BaseModel:
    """The response to one tool or gate call, with its side effects done."""
    try:
        if isinstance(request, WeeklyDigestRequest):
            return await view.run_digest(request)
        response = await view.read(functools.partial(_engine_answer, request, stop))
    except ActionError as exc:
        raise ApiError(exc.code, str(exc)) from None
    if isinstance(response, CorrelateResponse) and response.note is not None:
        await view.emit_note(response.note)
    return response


def learning_velocity(view: LiveView, policy: Policy) -> VelocityReport:
    """The per-quarter report as of the replica's newest event."""
    return velocity_report(view.velocity(), policy.recurrence_target, view.as_of())


def _dashboard_reads(windows: Sequence[int], stop: StopRequested, engine: IntelEngine,
                     as_of: datetime) -> tuple[datetime, list[RecurrenceResponse],
                                               BucketsResponse, dict[str, str], AlertsResponse]:
    recurrence = [engine.recurrence(RecurrenceRequest(action="recurrence", window_days=days),
                                    as_of) for days in windows]
    buckets = engine.buckets(BucketsRequest(action="buckets"), as_of, stop)
    titles = {i: engine.record(i).title
              for b in buckets.buckets for i in b.sample_incidents}
    alerts = engine.alert_report(AlertsRequest(action="alerts"), as_of, stop)
    return as_of, recurrence, buckets, titles, alerts


async def dashboard_data(view: LiveView, policy: Policy, stop: StopRequested) -> DashboardData:
    """One consistent read of what the dashboard shows (read-level data only)."""
    target = policy.recurrence_target
    if not view.ready:
        return DashboardData(as_of=view.as_of(), ready=False, recurrence=[], buckets=None,
                             correlations=[], followups=[], velocity=[],
                             recurrence_target=target)
    windows = sorted(policy.intel.recurrence.windows_days)
    as_of, recurrence, buckets, titles, alerts = await view.read(
        functools.partial(_dashboard_reads, windows, stop))
    return DashboardData(as_of=as_of, ready=True, recurrence=recurrence, buckets=buckets,
                         sample_titles=titles, alerts=alerts,
                         correlations=view.recent_correlations(),
                         followups=view.recent_followups(), velocity=view.velocity(),
                         recurrence_target=target)

