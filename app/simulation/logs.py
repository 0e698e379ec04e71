"""Structured log lines consistent with a trajectory.

Three sources: one line per request, reply and classifier verdict of every
exchange (same session and trace id as the turn), the archetype's clue lines
(evidence of the real cause, placed relative to onset, end or detection), and
lines placed by noise and red herrings (``app.simulation.noise``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from random import Random

from app.simulation.catalog import ClueSpec
from app.simulation.identifiers import trace_id
from app.simulation.models import LogLine
from app.simulation.trajectory import Exchange


@dataclass(frozen=True)
class Window:
    """The moments clue and herring lines are placed against."""

    onset: datetime
    end: datetime
    detected: datetime
    session_starts: dict[str, datetime] = field(default_factory=dict)


def anchor_times(rng: Random, window: Window, at: str, offset: tuple[int, int],
                 repeat: int) -> list[datetime]:
    """When ``repeat`` lines anchored ``at`` happen; ``during`` spreads them over the window."""
    if at == "during":
        span = (window.end - window.onset).total_seconds()
        return [
            window.onset + timedelta(seconds=round(span * (k + 1) / (repeat + 1))
                                     + rng.randint(-20, 20))
            for k in range(repeat)
        ]
    base = {"before": window.onset, "onset": window.onset, "end": window.end,
            "detection": window.detected}[at]
    first = base + timedelta(minutes=rng.randint(*offset), seconds=rng.randint(0, 59))
    return [first + timedelta(minutes=2 * k) for k in range(repeat)]


def ramp_value(ramp: tuple[float, float] | None, k: int, repeat: int) -> str:
    if ramp is None:
        return ""
    low, high = ramp
    value = low if repeat == 1 else low + (high - low) * k / (repeat - 1)
    if float(low).is_integer() and float(high).is_integer():
        return str(round(value))
    return f"{value:.1f}"


def line(at: datetime, level: str, service: str, event: str, message: str, *,
         session: str | None, trace: str) -> LogLine:
    return LogLine(ts=at, level=level, service=service, event=event, session=session,
                   trace_id=trace, message=message)


def turn_logs(rng: Random, exchanges: list[Exchange], *, service: str, classifier: str | None,
              threshold: float) -> list[LogLine]:
    """Request, verdict and reply lines of each exchange (``classifier`` None: none scored)."""
    out: list[LogLine] = []
    for e in exchanges:
        chars = len(e.user_text)
        out.append(line(e.user_at, "info", service, "chat.request",
                        f"user turn received ({chars} chars)", session=e.session_id,
                        trace=e.trace_id))
        us, rs = e.user_signals, e.reply_signals
        if classifier is not None and us.policy_score is not None:
            verdict = "block" if us.blocked else "allow"
            out.append(line(e.user_at + timedelta(milliseconds=rng.randint(20, 90)),
                            "warn" if us.blocked else "info", classifier, "classifier.scored",
                            f"policy_score={us.policy_score:.3f} threshold={threshold:.2f} "
                            f"action={verdict}" + (f" intent={us.intent}" if us.intent else ""),
                            session=e.session_id, trace=e.trace_id))
        status = rs.status or 200
        slow = (rs.latency_ms or 0) >= 5000
        level = "error" if status >= 500 else "warn" if (slow or status >= 400) else "info"
        out.append(line(e.reply_at, level, service, "chat.response",
                        f"status={status} latency_ms={rs.latency_ms}", session=e.session_id,
                        trace=e.trace_id))
        if classifier is not None and rs.output_score is not None:
            high = rs.output_score >= threshold
            out.append(line(e.reply_at, "warn" if high else "info", classifier,
                            "output_classifier.scored",
                            f"output_score={rs.output_score:.3f} "
                            f"{'above' if high else 'below'} threshold",
                            session=e.session_id, trace=e.trace_id))
    return out


def clue_logs(rng: Random, clues: list[ClueSpec], window: Window, values: dict[str, str], *,
              services: dict[str, str], last_session: str | None,
              affected_sessions: list[str], delivered: bool) -> list[LogLine]:
    """The archetype's evidence lines; ``services`` maps primary/involved/other to names.

    A clue marked ``only_if: delivered`` (or ``stopped``) appears only when the
    attempt reached the user (or was stopped).
    """
    out: list[LogLine] = []
    outcome = "delivered" if delivered else "stopped"
    for clue in clues:
        if clue.only_if is not None and clue.only_if != outcome:
            continue
        service = services.get(clue.service, clue.service)
        if clue.at == "each_session":
            spots: list[tuple[datetime, str | None]] = [
                (window.session_starts[s] + timedelta(seconds=rng.randint(1, 5)), s)
                for s in affected_sessions if s in window.session_starts]
        else:
            repeat = rng.randint(*clue.repeat)
            spots = [(t, last_session if clue.session else None)
                     for t in anchor_times(rng, window, clue.at, clue.offset_minutes, repeat)]
        count = rng.randint(*clue.count)
        for k, (at, session) in enumerate(spots):
            fill = {**values, "session": session or "", "count": str(count + k),
                    "value": ramp_value(clue.ramp, k, len(spots))}
            out.append(line(at, clue.level, service, clue.event, clue.message.format(**fill),
                            session=session if clue.session else None, trace=trace_id(rng)))
    return out


def sort_logs(lines: list[LogLine]) -> list[LogLine]:
    return sorted(lines, key=lambda x: (x.ts, x.service, x.event, x.trace_id))
