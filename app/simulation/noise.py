"""Noise and red herrings: what makes an exercise harder as difficulty grows.

Noise is unrelated traffic (benign sessions) and routine log lines. A red
herring is a misleading but innocent signal placed near the incident; each one
becomes an entry of the answer key with what rules it out and the specific
terms (a service, a version, a host, an address, a session) that show a
participant chased it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from random import Random

from app.simulation.catalog import Archetype, RedHerringSpec, SimulationPolicy
from app.simulation.identifiers import trace_id, version_tag
from app.simulation.logs import Window, anchor_times, line, ramp_value
from app.simulation.models import LogLine, RedHerring
from app.simulation.trajectory import Exchange, benign_session


def _between(rng: Random, start: datetime, end: datetime) -> datetime:
    seconds = max(0, int((end - start).total_seconds()))
    return start + timedelta(seconds=rng.randint(0, seconds))


def benign_sessions(policy: SimulationPolicy, rng: Random, count: int, window: Window, *,
                    operational: bool) -> list[Exchange]:
    out: list[Exchange] = []
    for _ in range(count):
        start = _between(rng, window.onset - timedelta(minutes=30),
                         window.end + timedelta(minutes=30))
        out += benign_session(rng, policy.noise.benign_lines, start,
                              operational=operational, exchanges=rng.randint(1, 3))
    return out


def noise_logs(policy: SimulationPolicy, rng: Random, count: int, window: Window,
               services: list[str]) -> list[LogLine]:
    out: list[LogLine] = []
    for _ in range(count):
        spec = rng.choice(policy.noise.logs)
        at = _between(rng, window.onset - timedelta(minutes=45), window.end + timedelta(minutes=30))
        out.append(line(at, spec.level, rng.choice(services), spec.event, spec.message,
                        session=None, trace=trace_id(rng)))
    return out


def _answer_text(arch: Archetype) -> str:
    parts = [arch.root_cause.sentence, *arch.root_cause.keywords,
             arch.regression_test.name, arch.regression_test.description]
    for action in arch.remediation:
        parts += [action.action, *action.keywords]
    return " ".join(parts).lower()


@dataclass
class Herrings:
    entries: list[RedHerring]
    logs: list[LogLine]
    exchanges: list[Exchange]


def plant_red_herrings(policy: SimulationPolicy, arch: Archetype, rng: Random, count: int,
                       window: Window, *, incident_services: list[str]) -> Herrings:
    """Up to ``count`` red herrings that fit the archetype's category."""
    planted = Herrings([], [], [])
    if count <= 0:
        return planted
    fitting = [h for h in policy.red_herrings if arch.category in h.applies_to]
    others = [s for s in policy.services if s not in incident_services]
    answers = _answer_text(arch)
    for spec in rng.sample(fitting, min(count, len(fitting))):
        other = rng.choice(others) if others else policy.services[0]
        values = {
            "service": incident_services[0],
            "involved": incident_services[-1],
            "other_service": other,
            "version": version_tag(rng, window.onset),
            "host": f"{other}-{rng.randint(1, 9)}.prod.internal",
            "ip": f"198.51.100.{rng.randint(2, 254)}",
            "session": "",
            "value": "",
            "count": str(rng.randint(3, 9)),
            "alert": arch.alert,
            "actors": "1",
        }
        exchanges: list[Exchange] = []
        if spec.type == "flagged_session":
            at = _between(rng, window.onset, window.end)
            exchanges = benign_session(
                rng, policy.noise.benign_lines, at, operational=False,
                exchanges=rng.randint(1, 2), user_text=spec.user_line,
                blocked_score=rng.uniform(policy.platform.block_threshold, 0.95))
            values["session"] = exchanges[0].session_id
        lure = [term.format(**values) for term in spec.lure]
        if any(term.lower() in answers for term in lure if term):
            continue  # this herring would collide with a right answer
        planted.logs += _herring_logs(rng, spec, window, values, other, exchanges)
        planted.exchanges += exchanges
        planted.entries.append(RedHerring(
            id=spec.id,
            looks_like=spec.looks_like.format(**values),
            rules_out=spec.rules_out.format(**values),
            lure_terms=[t for t in lure if t],
        ))
    return planted


def _herring_logs(rng: Random, spec: RedHerringSpec, window: Window, values: dict[str, str],
                  other: str, exchanges: list[Exchange]) -> list[LogLine]:
    service = other if spec.service == "other" else spec.service
    if exchanges:
        blocked = exchanges[0]
        times = [blocked.user_at + timedelta(milliseconds=rng.randint(20, 90))]
    else:
        times = anchor_times(rng, window, spec.at, spec.offset_minutes, rng.randint(*spec.repeat))
    out: list[LogLine] = []
    for k, at in enumerate(times):
        fill = {**values, "value": ramp_value(spec.ramp, k, len(times))}
        session = values["session"] or None
        trace = exchanges[0].trace_id if exchanges else trace_id(rng)
        out.append(line(at, spec.level, service, spec.event, spec.message.format(**fill),
                        session=session, trace=trace))
    return out
