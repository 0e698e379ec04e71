"""Expected severity on the SEV-0..SEV-3 rubric, from an archetype's hints.

Start at the archetype's base level; each condition that holds (restricted
output delivered, at least N users, at least N sessions, lasted at least N
minutes) raises the severity one level, never above SEV-0. The rationale names
every step, so a debrief can explain the level rather than just state it.
"""

from __future__ import annotations

from app.contracts import SEVERITIES, Severity
from app.simulation.catalog import SEV_LEVELS, SeverityHints, SevLevel, SimulationPolicy
from app.simulation.models import SeverityFinding

_PRIORITY: dict[SevLevel, Severity] = dict(zip(SEV_LEVELS, SEVERITIES, strict=True))
_LEVEL: dict[Severity, SevLevel] = dict(zip(SEVERITIES, SEV_LEVELS, strict=True))


def priority_of(level: SevLevel) -> Severity:
    """``SEV-n`` → ``Pn`` (the incident contract's severity)."""
    return _PRIORITY[level]


def level_of(priority: Severity) -> SevLevel:
    """``Pn`` → ``SEV-n``."""
    return _LEVEL[priority]


def assess(policy: SimulationPolicy, hints: SeverityHints, *, delivered: bool, users: int,
           sessions: int, duration_minutes: int) -> SeverityFinding:
    index = SEV_LEVELS.index(hints.base)
    reasons = [f"base {hints.base} for this kind of incident"]
    if hints.raise_if_delivered and delivered:
        index -= 1
        reasons.append("raised: restricted output reached the user")
    elif hints.raise_if_delivered:
        reasons.append("not raised: the attempt was stopped before any restricted output")
    checks = [
        (hints.raise_if_users_at_least, users, "users"),
        (hints.raise_if_sessions_at_least, sessions, "sessions"),
        (hints.raise_if_duration_minutes_at_least, duration_minutes, "minutes"),
    ]
    for limit, value, unit in checks:
        if limit is None:
            continue
        if value >= limit:
            index -= 1
            reasons.append(f"raised: {value} {unit} (at least {limit})")
        else:
            reasons.append(f"not raised: {value} {unit} (fewer than {limit})")
    level = SEV_LEVELS[max(0, index)]
    meaning = policy.rubric(level).meaning.split(".")[0]
    return SeverityFinding(level=level, priority=priority_of(level),
                           rationale=f"{level} ({meaning}): " + "; ".join(reasons) + ".")
