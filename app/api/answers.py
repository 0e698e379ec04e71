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
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel

from app.contracts import (
    AlertRow,
    AlertsRequest,
    BucketsRequest,
    CorrelateResponse,
    PromoteCandidate,
    VelocityReport,
    WeeklyDigestRequest,
)
from app.intel.engine import ActionError, IntelEngine, ReadCancelled, Request, StopRequested
from app.policy import Policy

from .dashboard import (
    ALERTS_SHOWN,
    BUCKETS_SHOWN,
    RECENT_SCAN,
    RECENT_SHOWN,
    RECURRENCE_SHOWN,
    RELATED_SHOWN,
    SAMPLES_SHOWN,
    DashboardData,
    IncidentBrief,
    RecurrencePanel,
    Shown,
    focus,
)
from .errors import ApiError
from .learning import velocity_report
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


def _panel(engine: IntelEngine, as_of: datetime, days: int) -> RecurrencePanel:
    answer, rows = engine.recurrence_overview(as_of, days)
    shown = focus(rows, RECURRENCE_SHOWN, level=lambda r: r.level, count=lambda r: r.count)
    labelled = [replace(r, label=engine.label(r.type, r.key)) for r in shown.rows]
    trends = {f"{r.type}:{r.key}": engine.daily_incidents(f"{r.type}:{r.key}", as_of)
              for r in labelled if r.level != "none"}
    listed = {(r.type, r.key) for r in labelled}
    advice = [f for f in answer.high_recurrence if f.recommendation]
    return RecurrencePanel(
        window_days=days, total_incidents=answer.total_incidents,
        shown=Shown(labelled, shown.once, shown.rest),
        levels=dict(Counter(r.level for r in rows)),
        advice=Shown([f.recommendation or "" for f in advice if (f.type, f.key) in listed],
                     rest=sum(1 for f in advice if (f.type, f.key) not in listed)),
        trends=trends)


def _brief(engine: IntelEngine, incident_id: str) -> IncidentBrief | None:
    record = engine.book.incidents.get(incident_id)
    if record is None:
        return None
    return IncidentBrief(incident_id=incident_id, title=record.title, service=record.service,
                         kind=record.kind, severity=record.severity, status=record.status)


def _dashboard_reads(windows: Sequence[int], target: float, stop: StopRequested,
                     engine: IntelEngine, as_of: datetime) -> DashboardData:
    """The page's data from pure engine reads, run by the view against one consistent
    state (the view adds what it keeps itself: follow-ups and learning velocity)."""
    recurrence = [_panel(engine, as_of, days) for days in windows]
    listed = engine.buckets(BucketsRequest(action="buckets"), as_of, stop).buckets
    buckets = focus(listed, BUCKETS_SHOWN)
    correlations = focus(engine.recently_correlated(as_of, RECENT_SCAN, RECENT_SCAN, stop),
                         RECENT_SHOWN)
    alerts = engine.alert_report(AlertsRequest(action="alerts"), as_of, stop)
    levels = {r.fingerprint: r.level for r in alerts.alerts}

    def alert_level(row: AlertRow | PromoteCandidate) -> str:
        return levels[row.fingerprint]

    def firings(row: AlertRow | PromoteCandidate) -> int:
        return row.firing_7d

    every_flapping = [r for r in alerts.alerts if r.flapping]
    flapping = focus(every_flapping, ALERTS_SHOWN, level=alert_level, count=firings)
    promote = focus(alerts.promote_candidates, ALERTS_SHOWN, level=alert_level, count=firings)
    trends = {fp: engine.daily_firings(fp, as_of)
              for fp in [r.fingerprint for r in flapping.rows]
              + [c.fingerprint for c in promote.rows]}
    named = ([i for b in buckets.rows for i in b.sample_incidents[:SAMPLES_SHOWN]]
             + [c.incident_id for c in correlations.rows]
             + [r.incident_id for c in correlations.rows for r in c.related[:RELATED_SHOWN]])
    incidents = {i: brief for i in named if (brief := _brief(engine, i)) is not None}
    return DashboardData(
        as_of=as_of, ready=True, recurrence=recurrence, buckets=buckets,
        correlations=correlations, recurrence_target=target, incidents=incidents,
        alert_window_days=alerts.window_days, flapping=flapping, promote=promote,
        alert_levels=levels, flapping_levels=dict(Counter(r.level for r in every_flapping)),
        promote_levels=dict(Counter(levels[c.fingerprint] for c in alerts.promote_candidates)),
        alert_trends=trends)


async def dashboard_data(view: LiveView, policy: Policy, stop: StopRequested) -> DashboardData:
    """One consistent read of what the dashboard shows (read-level data only)."""
    target = policy.recurrence_target
    if not view.ready:
        return DashboardData(as_of=view.as_of(), ready=False, recurrence_target=target)
    windows = sorted(policy.intel.recurrence.windows_days)
    data = await view.read(functools.partial(_dashboard_reads, windows, target, stop))
    followups = view.recent_followups()
    return replace(data, velocity=view.velocity(),
                   followups=Shown(followups[:RECENT_SHOWN],
                                   rest=max(0, len(followups) - RECENT_SHOWN)))
