"""One simulated incident from an archetype, a difficulty and a seed.

Pure: every random choice comes from ``random.Random`` instances seeded from
the arguments, and time comes from ``start`` or from the seed (never from the
clock), so the same seed, catalog and :data:`GENERATOR_VERSION` give the same
incident byte for byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random

from app.contracts import Severity
from app.simulation.catalog import Archetype, SimulationPolicy, as_difficulty
from app.simulation.identifiers import (
    alert_fingerprint,
    digest,
    hex_token,
    incident_id,
    version_tag,
)
from app.simulation.lifecycle import Lifecycle, lifecycle_events
from app.simulation.logs import Window, clue_logs, sort_logs, turn_logs
from app.simulation.models import (
    GENERATOR_VERSION,
    Action,
    Aspect,
    BlastRadius,
    ExpectedFindings,
    LogLine,
    RegressionTest,
    RootCause,
    SeverityFinding,
    SimulatedIncident,
)
from app.simulation.noise import Herrings, benign_sessions, noise_logs, plant_red_herrings
from app.simulation.severity import assess
from app.simulation.trajectory import Exchange, Trajectory, build_trajectory, to_turns

BASE_TIME = datetime(2026, 1, 5, tzinfo=UTC)
"""Without ``start``, the onset falls within 180 days after this, chosen by the seed."""
SPREAD_MINUTES = 180 * 24 * 60


def choose_archetype(policy: SimulationPolicy, difficulty: str, seed: int,
                     name: str | None) -> Archetype:
    """The named archetype, or one of the difficulty's pool chosen by the seed."""
    level = as_difficulty(difficulty)
    if name:
        return policy.archetype(name)
    return Random(f"pick|{seed}|{difficulty}").choice(policy.pool(level))


def headline_values(arch: Archetype, *, service: str, detected: datetime,
                    threshold: float) -> dict[str, str]:
    return {
        "service": service,
        "alert": arch.alert,
        "detected_at": f"{detected:%Y-%m-%d %H:%M} UTC",
        "initial_severity": arch.detection.initial_severity,
        "threshold": f"{threshold:.2f}",
    }


def _minutes(start: datetime, end: datetime) -> int:
    return max(1, math.ceil((end - start).total_seconds() / 60))


def _focus_session(traj: Trajectory, outage: bool) -> str | None:
    """The session clue lines point at: the last attack turn, or the first failure."""
    affected = [e for e in traj.exchanges if e.affected]
    if not affected:
        return None
    pick = min if outage else max
    return pick(affected, key=lambda e: (e.user_at, e.session_id)).session_id


@dataclass(frozen=True)
class _Cast:
    """The services of one incident: the primary, the others involved, all of them."""

    primary: str
    involved: list[str]
    outage: bool

    @property
    def services(self) -> list[str]:
        return [self.primary, *self.involved]


def _detected(arch: Archetype, traj: Trajectory, rng: Random) -> datetime:
    """When the alert fired: a delay after the onset or after the end, as the archetype says."""
    anchor = traj.onset if arch.detection.after == "onset" else traj.end
    return anchor + timedelta(minutes=rng.randint(*arch.detection.delay_minutes),
                              seconds=rng.randint(0, 59))


def _logs(policy: SimulationPolicy, arch: Archetype, rng: Random, cast: _Cast, traj: Trajectory,
          window: Window, exchanges: list[Exchange], herrings: Herrings, noise: int,
          onset: datetime) -> list[LogLine]:
    """Every exchange's lines, the archetype's clues, the red herrings' lines and noise."""
    platform = policy.platform
    others = [s for s in policy.services if s not in cast.services] or policy.services
    other = rng.choice(others)
    values = {
        "service": cast.primary,
        "involved": cast.involved[0] if cast.involved else cast.primary,
        "other_service": other,
        "version": version_tag(rng, onset),
        "host": f"{cast.primary}-{rng.randint(1, 9)}.prod.internal",
        "ip": f"203.0.113.{rng.randint(2, 254)}",
        "alert": arch.alert,
        "actors": str(len(traj.affected_users)),
    }
    classifier = None if cast.outage else platform.classifier
    logs = turn_logs(rng, exchanges, service=cast.primary, classifier=classifier,
                     threshold=platform.block_threshold)
    logs += clue_logs(rng, arch.clues, window, values,
                      services={"primary": cast.primary, "involved": values["involved"],
                                "other": other},
                      last_session=_focus_session(traj, cast.outage),
                      affected_sessions=traj.affected_sessions, delivered=traj.delivered)
    logs += herrings.logs
    logs += noise_logs(policy, rng, noise, window, policy.services)
    return logs


def _lifecycle(arch: Archetype, rng: Random, cast: _Cast, traj: Trajectory, *, sim_id: str,
               title: str, detected: datetime, final_severity: Severity) -> Lifecycle:
    """Acknowledged, mitigated (an outage: when it ends), resolved and closed after detection."""
    acknowledged = detected + timedelta(minutes=rng.randint(2, 8))
    if cast.outage:
        mitigated = max(traj.end, acknowledged + timedelta(minutes=1))
    else:
        mitigated = acknowledged + timedelta(minutes=rng.randint(*arch.resolution.mitigate_minutes))
    resolved = mitigated + timedelta(minutes=rng.randint(*arch.resolution.resolve_minutes))
    closed = resolved + timedelta(minutes=rng.randint(30, 180))
    return Lifecycle(
        incident_id=incident_id(rng, traj.onset),
        service=cast.primary,
        kind=arch.kind,
        title=title,
        signature=digest("simulation", arch.name, cast.primary),
        alert_name=arch.alert,
        alert_id=f"alrt-{hex_token(rng, 10)}",
        fingerprint=alert_fingerprint(arch.alert, cast.primary),
        started_at=traj.onset,
        detected_at=detected,
        acknowledged_at=acknowledged,
        mitigated_at=mitigated,
        resolved_at=resolved,
        closed_at=closed,
        initial_severity=arch.detection.initial_severity,
        final_severity=final_severity,
        root_cause=arch.root_cause.key,
        labels={"simulation_id": sim_id, "source": "simulation"},
    )


def _expected(arch: Archetype, cast: _Cast, traj: Trajectory,
              severity: SeverityFinding) -> ExpectedFindings:
    """The answer key's findings: the archetype's root cause and fixes, the measured blast."""
    return ExpectedFindings(
        root_cause=RootCause(key=arch.root_cause.key, sentence=arch.root_cause.sentence,
                             keywords=list(arch.root_cause.keywords)),
        severity=severity,
        blast_radius=BlastRadius(
            sessions=len(traj.affected_sessions),
            users=len(traj.affected_users),
            services=cast.services,
            session_ids=traj.affected_sessions,
            user_ids=traj.affected_users,
            start=traj.onset,
            end=traj.end,
            duration_minutes=_minutes(traj.onset, traj.end),
        ),
        remediation=[Action(id=a.id, action=a.action, keywords=list(a.keywords))
                     for a in arch.remediation],
        regression_test=RegressionTest(
            name=arch.regression_test.name,
            description=arch.regression_test.description,
            covers=[Aspect(aspect=c.aspect, keywords=list(c.keywords))
                    for c in arch.regression_test.covers],
        ),
    )


def generate_incident(policy: SimulationPolicy, *, difficulty: str, seed: int,
                      archetype: str | None = None,
                      start: datetime | None = None) -> SimulatedIncident:
    """One incident; the steps draw from one seeded generator in a fixed order."""
    arch = choose_archetype(policy, difficulty, seed, archetype)
    level = as_difficulty(difficulty)
    start = start.astimezone(UTC) if start and start.tzinfo else (
        start.replace(tzinfo=UTC) if start else None)
    rng = Random(f"simulate|v{GENERATOR_VERSION}|{seed}|{difficulty}|{arch.name}|{start}")
    sim_id = "sim-" + digest(GENERATOR_VERSION, seed, difficulty, arch.name, start)[:12]
    onset = start or BASE_TIME + timedelta(minutes=rng.randrange(SPREAD_MINUTES),
                                           seconds=rng.randint(0, 59))
    platform = policy.platform
    primary = rng.choice(arch.services.primary)
    people = _Cast(primary, [s for s in arch.services.involved if s != primary],
                   outage=arch.trajectory.shape == "outage")

    traj = build_trajectory(arch, platform, rng, onset, primary)
    severity = assess(policy, arch.severity, delivered=traj.delivered,
                      users=len(traj.affected_users), sessions=len(traj.affected_sessions),
                      duration_minutes=_minutes(traj.onset, traj.end))
    detected = _detected(arch, traj, rng)
    window = Window(onset=traj.onset, end=traj.end, detected=detected,
                    session_starts=traj.session_starts)

    settings = policy.difficulty[level]
    herrings = plant_red_herrings(policy, arch, rng, settings.red_herrings, window,
                                  incident_services=people.services)
    benign = benign_sessions(policy, rng, settings.benign_sessions, window,
                             operational=people.outage)
    exchanges = [*traj.exchanges, *herrings.exchanges, *benign]
    logs = _logs(policy, arch, rng, people, traj, window, exchanges, herrings,
                 settings.noise_logs, onset)

    headline = headline_values(arch, service=primary, detected=detected,
                               threshold=platform.block_threshold)
    title = arch.title.format(**headline)
    lifecycle = _lifecycle(arch, rng, people, traj, sim_id=sim_id, title=title,
                           detected=detected, final_severity=severity.priority)
    counter = iter(range(1, 1000))
    events = lifecycle_events(lifecycle, lambda: f"e-{sim_id}-{next(counter):03d}",
                              pending_at=detected - timedelta(minutes=rng.randint(1, 3)))
    return SimulatedIncident(
        simulation_id=sim_id,
        seed=seed,
        difficulty=level,
        archetype=arch.name,
        category=arch.category,
        kind=arch.kind,
        title=title,
        scenario=" ".join(arch.scenario.format(**headline).split()),
        service=primary,
        alert=arch.alert,
        detected_at=detected,
        initial_severity=arch.detection.initial_severity,
        block_threshold=platform.block_threshold,
        trajectory=to_turns(exchanges),
        logs=sort_logs(logs),
        events=events,
        red_herrings=herrings.entries,
        expected=_expected(arch, people, traj, severity),
    )
