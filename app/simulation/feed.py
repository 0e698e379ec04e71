"""A synthetic, realistic mixed stream with planted patterns and their ground truth.

:func:`generate_stream` is pure: from a seed, a start, a rate and a duration it
returns the records (``incidents.events`` and ``alerts.state`` values, keyed
by incident id and alert fingerprint) and a :class:`StreamTruth` describing
what was planted. Publishing them is somebody else's job (``publish.py``, or a
JSONL file for ``incident-intel tool --events``).

The stream is a time-lapse: ``rate_per_s × duration_s`` records whose event
time spans ``span_days`` from ``start``; no record is later than the span's
end (an incident whose life would go on past it is left in the state it had
then). What it holds, in priority order when the record budget is small:

1. planted recurrence: ``count`` incidents sharing one explicit signature (same
   service, kind and title) inside the six days before ``recurrence_end``
   (default: the span's end), all of the plant's ``severity`` when it names
   one, the newest ``left_open`` of them left open (acknowledged, never
   mitigated);
2. planted clusters: ``cross_service`` (one kind on several services within 90
   minutes → ``same_kind_cross_service``) and ``same_service`` (several kinds
   on one service within 120 minutes → ``same_service_time_cluster``), or
   within ``cluster_reach_minutes``; with ``decoys_per_cluster``, unrelated
   incidents inside each cluster's window that share its kind or service;
3. background incidents, about ``background_per_day``, each with its own
   signature;
4. planted alerts that no incident names: ``flapping`` (one burst of
   firing/resolved transitions a few minutes apart) and ``unlinked`` (firings
   spread over the span's last six days, each resolved within half an hour),
   drawn from their own seeded generator so the rest of the stream does not
   depend on them;
5. filler up to the budget: alerts that flap (pending → firing → resolved, no
   incident) and re-sends of an incident's state as of a later moment (state
   carrying, so harmless to a consumer).

Planted patterns use disjoint services and kinds; background incidents never
use a cluster's (service, kind) pair and keep away (±4 hours) from a cluster's
services and kinds, so correlating a cluster member returns exactly the other
members. Every incident gets a full lifecycle (9 records, fewer when it
reaches past the span's end or is left open) when the budget allows, otherwise
planted incidents get only their ``incident.opened`` record.

:func:`first_run_feed` is the history ``incident-intel run`` publishes: it
ends at ``now`` and shows every feature on a first run (see there).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict

from app.contracts import (
    AlertTransition,
    CorrelationRuleName,
    Incident,
    IncidentEvent,
    Severity,
    Timestamp,
    event_from_obj,
)
from app.intel.labels import Name
from app.intel.periods import last_complete_week, week_start
from app.intel.signature import normalise_title
from app.simulation.catalog import AlertPlant, Difficulty, StreamSettings
from app.simulation.identifiers import alert_fingerprint, digest, hex_token
from app.simulation.lifecycle import Lifecycle, lifecycle_events

INCIDENTS_TOPIC = "incidents.events"
ALERTS_TOPIC = "alerts.state"
DEFAULT_START = datetime(2026, 3, 2, tzinfo=UTC)
LIFECYCLE_RECORDS = 9
EXCLUSION = timedelta(hours=4)
RECURRENCE_WINDOW = timedelta(days=6)
DETECTION_MAX = timedelta(minutes=10)
"""Longest time from an incident's start to its detection (its first incident record)."""
FLAP_MAX = timedelta(minutes=30)
"""Longest time from a flapping alert's pending to its resolved transition."""

ALERT_NAMES = {
    "error_rate": "HighErrorRate",
    "latency": "LatencyP99High",
    "oom": "ContainerOOMKilled",
    "crashloop": "PodCrashLooping",
    "disk": "DiskAlmostFull",
    "security": "SecuritySignal",
    "queue": "ConsumerLagHigh",
    "network": "ConnectionResetsHigh",
}
SYMPTOMS = {
    "error_rate": ["5xx spike", "error rate above SLO", "failed requests"],
    "latency": ["p99 latency high", "slow responses", "timeouts rising"],
    "oom": ["pods OOMKilled", "memory limit reached", "out of memory restarts"],
    "crashloop": ["CrashLoopBackOff", "pods restarting", "crash loop after deploy"],
    "disk": ["volume almost full", "no space left on device", "disk usage above 90%"],
    "security": ["unusual API key usage", "policy violation burst", "unauthorized calls"],
    "queue": ["consumer lag growing", "queue backlog", "DLQ filling"],
    "network": ["connection resets", "DNS failures", "packet loss to upstream"],
}
SEVERITY_WEIGHTS: tuple[tuple[Severity, int], ...] = (("P0", 1), ("P1", 4), ("P2", 10), ("P3", 10))

Record = IncidentEvent | AlertTransition


def _stamp(at: datetime) -> str:
    """``format_timestamp`` for the whole-second UTC times of this module, faster."""
    return at.isoformat().replace("+00:00", "Z")


class FeedRecord:
    """One message: topic, key and the value.

    The value is kept as the JSON-ready dict of the contract model (what
    ``model_dump(mode="json")`` returns, in field order), so serialising is one
    ``orjson.dumps`` and gives the bytes ``model_dump_json()`` would; ``value``
    validates it into the contract model on first use.
    """

    __slots__ = ("topic", "key", "payload", "occurred_at", "_value")

    def __init__(self, topic: str, key: str, payload: dict[str, Any],
                 occurred_at: datetime) -> None:
        self.topic = topic
        self.key = key
        self.payload = payload
        self.occurred_at = occurred_at
        self._value: Record | None = None

    @classmethod
    def of(cls, event: Record) -> FeedRecord:
        if isinstance(event, IncidentEvent):
            topic, key = INCIDENTS_TOPIC, event.incident.incident_id
        else:
            topic, key = ALERTS_TOPIC, event.alert.fingerprint
        record = cls(topic, key, event.model_dump(mode="json"), event.occurred_at)
        record._value = event
        return record

    @property
    def value(self) -> Record:
        if self._value is None:
            event = event_from_obj(self.payload)
            assert isinstance(event, IncidentEvent | AlertTransition)
            self._value = event
        return self._value

    def key_bytes(self) -> bytes:
        return self.key.encode("utf-8")

    def value_bytes(self) -> bytes:
        return orjson.dumps(self.payload)

    def __repr__(self) -> str:
        return f"FeedRecord({self.topic!r}, {self.key!r}, {self.payload.get('event_id')!r})"


class _Truth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlantedRecurrence(_Truth):
    pattern_id: str
    signature: str
    service: str
    kind: str
    title: str
    count: int
    incident_ids: list[str]
    first_started_at: Timestamp
    last_started_at: Timestamp
    expected_level: Literal["none", "warn", "high"]


class PlantedCluster(_Truth):
    cluster_id: str
    shape: Literal["cross_service", "same_service"]
    services: list[str]
    kinds: list[str]
    incident_ids: list[str]
    window_start: Timestamp
    window_end: Timestamp
    expected_rules: list[CorrelationRuleName]
    decoys: list[str] = []
    """Incidents started inside the window, sharing the cluster's kind or service, that do
    not belong to it (``decoys_per_cluster``)."""


class PlantedAlert(_Truth):
    """An alert fingerprint with no incident, and what the ``alerts`` action should say."""

    pattern_id: str
    shape: Literal["flapping", "unlinked"]
    fingerprint: str
    service: str
    kind: str
    firings: int
    transitions: int
    max_transitions_in_flap_window: int
    expected_flapping: bool
    expected_promote: bool


class StreamTruth(_Truth):
    """What was planted; the expected findings of the engine over the stream.

    ``open_at_end``: incidents whose last record leaves them open (left open by
    a plant, or still going on at the span's end)."""

    seed: int
    difficulty: Difficulty | None = None
    start: Timestamp
    span_end: Timestamp
    as_of: Timestamp | None
    rate_per_s: float
    duration_s: float
    records: int
    records_by_topic: dict[str, int]
    incidents: int
    full_lifecycles: bool
    window_days: int
    recurrence: list[PlantedRecurrence]
    clusters: list[PlantedCluster]
    alerts: list[PlantedAlert]
    incidents_by_kind: dict[str, int]
    incidents_by_service: dict[str, int]
    dropped: list[str]
    open_at_end: list[str]


@dataclass
class _Planned:
    service: str
    kind: str
    title: str
    signature: str
    started_at: datetime
    severity: Severity
    group: str
    incident_id: str = ""
    left_open: bool = False


@dataclass(frozen=True)
class _Zone:
    start: datetime
    end: datetime
    services: frozenset[str]
    kinds: frozenset[str]

    def blocks(self, service: str, kind: str, at: datetime) -> bool:
        near = self.start - EXCLUSION <= at <= self.end + EXCLUSION
        return near and (service in self.services or kind in self.kinds)


class _Stream:
    def __init__(self, seed: int, start: datetime, settings: StreamSettings) -> None:
        self.rng = Random(f"stream|{seed}|{start.isoformat()}")
        self.seed = seed
        self.start = start
        self.span = timedelta(seconds=round(settings.span_days * 86400))  # whole seconds
        self.end = start + self.span
        self.settings = settings
        self.run = digest("stream", seed, start.isoformat())[:8]
        self.counter = 0
        self.ids: set[str] = set()

    def next_event_id(self) -> str:
        self.counter += 1
        return f"ev-{self.run}-{self.counter:07d}"

    def at(self, low: datetime, high: datetime) -> datetime:
        seconds = max(0, int((high - low).total_seconds()))
        return low + timedelta(seconds=self.rng.randint(0, seconds))

    def severity(self) -> Severity:
        names = [s for s, _ in SEVERITY_WEIGHTS]
        return self.rng.choices(names, weights=[w for _, w in SEVERITY_WEIGHTS])[0]

    def title(self, service: str, kind: str) -> str:
        symptoms = SYMPTOMS.get(kind, [f"{kind} problem"])
        return f"{self.rng.choice(symptoms)} on {service}"

    def incident_id(self, started_at: datetime) -> str:
        while True:
            ident = f"inc_{started_at:%Y%m%d_%H%M}_{hex_token(self.rng, 6)}"
            if ident not in self.ids:
                self.ids.add(ident)
                return ident

    def lifecycle(self, p: _Planned) -> Lifecycle:
        rng = self.rng
        detected = p.started_at + timedelta(
            minutes=rng.randint(1, int(DETECTION_MAX.total_seconds()) // 60))
        acknowledged = detected + timedelta(minutes=rng.randint(2, 8))
        mitigated = acknowledged + timedelta(minutes=rng.randint(10, 90))
        resolved = mitigated + timedelta(minutes=rng.randint(5, 60))
        alert_name = ALERT_NAMES.get(p.kind, "IncidentSignal")
        return Lifecycle(
            incident_id=p.incident_id,
            service=p.service,
            kind=p.kind,
            title=p.title,
            signature=p.signature,
            alert_name=alert_name,
            alert_id=f"alrt-{hex_token(rng, 10)}",
            fingerprint=alert_fingerprint(alert_name, p.service),
            started_at=p.started_at,
            detected_at=detected,
            acknowledged_at=acknowledged,
            mitigated_at=mitigated,
            resolved_at=resolved,
            closed_at=resolved + timedelta(minutes=rng.randint(30, 240)),
            initial_severity=p.severity,
            final_severity=p.severity,
            root_cause=None,
            labels={"source": "simulation-stream", "group": p.group},
        )


def _level(count: int, thresholds: tuple[int, int]) -> Literal["none", "warn", "high"]:
    warn, high = thresholds
    return "high" if count >= high else "warn" if count >= warn else "none"


def _last_moment(lc: Lifecycle, left_open: bool, end: datetime) -> datetime:
    """The latest event time of an incident's records: the span's end, or its
    acknowledgement when it is left open."""
    return min(end, lc.acknowledged_at) if left_open else end


def _opened(lc: Lifecycle, event_id: str) -> IncidentEvent:
    return IncidentEvent(
        event_id=event_id, type="incident.opened", occurred_at=lc.detected_at,
        incident=Incident(
            incident_id=lc.incident_id, service=lc.service, kind=lc.kind,
            severity=lc.initial_severity, status="open", signature=lc.signature,
            title=lc.title, env=lc.env, started_at=lc.started_at, detected_at=lc.detected_at,
            labels=lc.labels))


def _resend(lc: Lifecycle, at: datetime, event_id: str) -> FeedRecord:
    """The incident's state as of ``at`` (between detection and closure).

    Filler is the bulk of a large stream, so it is built directly as the JSON
    payload (the same shape and key order as the contract model's dump); the
    tests decode every record through the contract.
    """
    if at < lc.acknowledged_at:
        status = "open"
    elif at < lc.mitigated_at:
        status = "mitigating"
    elif at < lc.resolved_at:
        status = "mitigated"
    else:
        status = "resolved"
    incident = {
        "incident_id": lc.incident_id, "service": lc.service, "kind": lc.kind,
        "severity": lc.final_severity if status != "open" else lc.initial_severity,
        "status": status, "signature": lc.signature, "title": lc.title, "env": lc.env,
        "started_at": _stamp(lc.started_at),
        "detected_at": _stamp(lc.detected_at),
        "resolved_at": _stamp(lc.resolved_at) if status == "resolved" else None,
        "root_cause": None, "labels": lc.labels,
    }
    payload = {"event_id": event_id, "type": "incident.updated",
               "occurred_at": _stamp(at), "incident": incident}
    return FeedRecord(INCIDENTS_TOPIC, lc.incident_id, payload, at)


@dataclass
class _Pattern:
    """A planted pattern's incidents and what the truth says about it."""

    name: str
    planned: list[_Planned]
    signature: str = ""
    shape: Literal["cross_service", "same_service"] | None = None
    services: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    rules: list[CorrelationRuleName] = field(default_factory=list)
    decoys: list[_Planned] = field(default_factory=list)

    @property
    def incidents(self) -> list[_Planned]:
        return self.planned + self.decoys


@dataclass
class _Fit:
    """What the record budget keeps: patterns in priority order, then background."""

    kept: list[_Pattern]
    background: list[_Planned]
    dropped: list[str]
    full: bool


def _plant_clusters(s: _Stream, kinds: list[str], services: list[str],
                    reserved: set[tuple[str, str]], zones: list[_Zone]) -> list[_Pattern]:
    """Each cluster around its own centre of the span, on services and kinds of its own."""
    rng, specs = s.rng, s.settings.clusters
    patterns = []
    for c, spec in enumerate(specs):
        cluster_id = f"cluster-{c + 1}"
        centre = (s.start + s.span * (c + 1) / (len(specs) + 1)).replace(microsecond=0)
        base = centre + timedelta(minutes=rng.randint(-60, 60))
        rules: list[CorrelationRuleName]
        if spec.shape == "cross_service":
            kind, members = kinds.pop(), [services.pop() for _ in range(spec.size)]
            pairs = [(svc, kind) for svc in members]
            reach, rules = 90, ["same_kind_cross_service"]
        else:
            service, members = services.pop(), [kinds.pop() for _ in range(spec.size)]
            pairs = [(service, k) for k in members]
            reach, rules = 120, ["same_service_time_cluster"]
        reach = s.settings.cluster_reach_minutes or reach
        offsets = sorted(rng.randint(0, reach * 60) for _ in pairs)
        offsets[0] = 0
        planned = [
            _Planned(service=svc, kind=k, title=s.title(svc, k),
                     signature=digest("stream", s.run, cluster_id, i),
                     started_at=base + timedelta(seconds=off), severity=s.severity(),
                     group=cluster_id)
            for i, ((svc, k), off) in enumerate(zip(pairs, offsets, strict=True))
        ]
        reserved.update(pairs)
        zone = _Zone(start=planned[0].started_at, end=planned[-1].started_at,
                     services=frozenset(p.service for p in planned),
                     kinds=frozenset(p.kind for p in planned))
        zones.append(zone)
        patterns.append(_Pattern(cluster_id, planned, shape=spec.shape,
                                 services=sorted(zone.services), kinds=sorted(zone.kinds),
                                 rules=rules))
    return patterns


def _plant_decoys(s: _Stream, clusters: list[_Pattern]) -> None:
    """``decoys_per_cluster`` unrelated incidents inside each cluster's window: the
    cluster's kind on a service not in it, or its service with a kind not in it.

    They draw from a generator of their own, so a stream without decoys is the
    one it was before decoys existed."""
    rng = Random(f"stream-decoys|{s.seed}|{s.start.isoformat()}")
    for cluster in clusters:
        first, last = cluster.planned[0].started_at, cluster.planned[-1].started_at
        for i in range(s.settings.decoys_per_cluster):
            if cluster.shape == "cross_service":
                kind = cluster.kinds[0]
                service = rng.choice([v for v in s.settings.services
                                      if v not in cluster.services])
            else:
                service = cluster.services[0]
                kind = rng.choice([k for k in s.settings.kinds if k not in cluster.kinds])
            at = first + timedelta(seconds=rng.randint(0, int((last - first).total_seconds())))
            title = f"{rng.choice(SYMPTOMS.get(kind, [f'{kind} problem']))} on {service}"
            cluster.decoys.append(_Planned(
                service=service, kind=kind, title=title,
                signature=digest("stream", s.run, cluster.name, "decoy", i), started_at=at,
                severity=rng.choice([v for v, _ in SEVERITY_WEIGHTS]),
                group=f"{cluster.name}-decoy"))



def _plant_recurrence(s: _Stream, kinds: list[str], services: list[str],
                      recurrence_end: datetime | None) -> list[_Pattern]:
    """Each recurrence: one service, kind, title and signature, inside the six days
    before ``recurrence_end`` (default: the span's end)."""
    rng = s.rng
    window_end = s.end if recurrence_end is None else max(s.start, min(s.end, recurrence_end))
    window_start = max(s.start, window_end - RECURRENCE_WINDOW)
    patterns = []
    for r, spec in enumerate(s.settings.recurrence):
        pattern_id = f"recurrence-{r + 1}"
        service, kind = services.pop(), kinds.pop()
        title = f"{rng.choice(SYMPTOMS.get(kind, [kind]))} on {service} (recurring)"
        signature = digest("stream", s.run, pattern_id)
        times = sorted(s.at(window_start, window_end - timedelta(hours=1))
                       for _ in range(spec.count))
        planned = [_Planned(service=service, kind=kind, title=title, signature=signature,
                            started_at=t, severity=spec.severity or s.severity(),
                            group=pattern_id, left_open=n >= spec.count - spec.left_open)
                   for n, t in enumerate(times)]
        patterns.append(_Pattern(pattern_id, planned, signature=signature))
    return patterns


def _plant_background(s: _Stream, reserved: set[tuple[str, str]],
                      zones: list[_Zone]) -> list[_Planned]:
    """Incidents of their own signature, away from every cluster (20 draws each at most)."""
    rng, settings = s.rng, s.settings
    background: list[_Planned] = []
    for n in range(round(settings.background_per_day * settings.span_days)):
        for _ in range(20):
            service, kind = rng.choice(settings.services), rng.choice(settings.kinds)
            at = s.at(s.start, s.end - DETECTION_MAX)
            if (service, kind) in reserved or any(z.blocks(service, kind, at) for z in zones):
                continue
            background.append(_Planned(
                service=service, kind=kind, title=s.title(service, kind),
                signature=digest("stream", s.run, "background", n), started_at=at,
                severity=s.severity(), group="background"))
            break
    return background


def _fit_budget(patterns: list[_Pattern], background: list[_Planned], budget: int,
                wanted: int) -> _Fit:
    """Full lifecycles when every planted incident gets one, else ``opened`` records only."""
    full = budget >= LIFECYCLE_RECORDS * sum(len(p.incidents) for p in patterns)
    kept: list[_Pattern] = []
    dropped: list[str] = []
    used = 0
    per = LIFECYCLE_RECORDS if full else 1
    for pattern in patterns:
        if used + per * len(pattern.incidents) <= budget:
            kept.append(pattern)
            used += per * len(pattern.incidents)
        else:
            dropped.append(pattern.name)
    background = background[: (budget - used) // LIFECYCLE_RECORDS] if full else []
    if len(background) < wanted:
        dropped.append(f"background: {wanted - len(background)} of {wanted} incidents left out")
    return _Fit(kept, background, dropped, full)


def _incident_records(s: _Stream, everything: list[_Planned],
                      full: bool) -> tuple[list[FeedRecord], list[tuple[Lifecycle, datetime]]]:
    """Ids in start order, then each incident's lifecycle (or its ``opened`` record)."""
    for p in sorted(everything, key=lambda p: (p.started_at, p.group, p.service)):
        p.incident_id = s.incident_id(p.started_at)
    records: list[FeedRecord] = []
    lifecycles: list[tuple[Lifecycle, datetime]] = []
    for p in everything:
        lc = s.lifecycle(p)
        last = _last_moment(lc, p.left_open, s.end)
        lifecycles.append((lc, last))
        if full:
            pending = lc.detected_at - timedelta(minutes=s.rng.randint(1, 3))
            for event in lifecycle_events(lc, s.next_event_id, pending_at=pending):
                if event.occurred_at <= last:
                    records.append(FeedRecord.of(event))
        else:
            records.append(FeedRecord.of(_opened(lc, s.next_event_id())))
    return records, lifecycles


def _alert(rng: Random, name: str, service: str, kind: str,
           fingerprint: str | None = None) -> dict[str, Any]:
    """An alert as ``alerts.state`` carries it, in the contract's field order."""
    return {"alert_id": f"alrt-{hex_token(rng, 10)}",
            "fingerprint": fingerprint or alert_fingerprint(name, service), "service": service,
            "kind": kind, "severity": rng.choice(("P2", "P3")), "env": "prod",
            "labels": {"alertname": name, "source": "simulation-stream"}}


def _transition(s: _Stream, alert: dict[str, Any], before: str | None, after: str,
                when: datetime) -> FeedRecord:
    """An ``alerts.state`` record that names no incident."""
    payload = {"event_id": s.next_event_id(), "type": "alert.transition",
               "occurred_at": _stamp(when), "alert": alert,
               "from_state": before, "to_state": after, "incident_id": None}
    return FeedRecord(ALERTS_TOPIC, alert["fingerprint"], payload, when)


def _alert_steps(rng: Random, spec: AlertPlant, low: datetime, high: datetime,
                 ) -> list[tuple[str | None, str, datetime]]:
    """``(from, to, when)`` of a planted alert: one burst, or firings spread over the span."""
    steps: list[tuple[str | None, str, datetime]] = []
    if spec.shape == "flapping":
        when = low + timedelta(seconds=rng.randint(0, int((high - low).total_seconds())))
        for i in range(spec.firings):
            steps.append(("resolved" if i else None, "firing", when))
            when += timedelta(minutes=rng.randint(2, 6))
            steps.append(("firing", "resolved", when))
            when += timedelta(minutes=rng.randint(2, 6))
        return steps
    slot = (high - low) / spec.firings
    jitter = int(slot.total_seconds() / 3)
    for i in range(spec.firings):
        fired = low + slot * i + timedelta(seconds=jitter + rng.randint(0, jitter))
        steps.append(("resolved" if i else None, "firing", fired))
        steps.append(("firing", "resolved", fired + timedelta(minutes=rng.randint(5, 30))))
    return steps


def _plant_alerts(s: _Stream, remaining: int, flap: tuple[int, int], min_firing: int,
                  ) -> tuple[list[FeedRecord], list[PlantedAlert], list[str]]:
    """The planted alerts that fit in ``remaining`` records, their truth, and those left out."""
    rng = Random(f"stream-alerts|{s.seed}|{s.start.isoformat()}")
    low, high = max(s.start, s.end - RECURRENCE_WINDOW), s.end - timedelta(hours=2)
    records: list[FeedRecord] = []
    planted: list[PlantedAlert] = []
    dropped: list[str] = []
    for n, spec in enumerate(s.settings.alerts):
        name = f"alert-{n + 1}"
        if len(records) + 2 * spec.firings > remaining:
            dropped.append(name)
            continue
        service, kind = rng.choice(s.settings.services), rng.choice(s.settings.kinds)
        suffix = "Burst" if spec.shape == "flapping" else "Warning"
        alert = _alert(rng, ALERT_NAMES.get(kind, "IncidentSignal") + suffix, service, kind)
        steps = _alert_steps(rng, spec, low, high)
        records += [_transition(s, alert, before, after, when) for before, after, when in steps]
        times = [when for _, _, when in steps]
        width = timedelta(minutes=flap[1])
        most = max(sum(1 for u in times if t - width < u <= t) for t in times)
        planted.append(PlantedAlert(
            pattern_id=name, shape=spec.shape, fingerprint=alert["fingerprint"],
            service=service, kind=kind, firings=spec.firings, transitions=len(steps),
            max_transitions_in_flap_window=most, expected_flapping=most >= flap[0],
            expected_promote=spec.firings >= min_firing))
    return records, planted, dropped


def _filler(s: _Stream, lifecycles: list[tuple[Lifecycle, datetime]],
            remaining: int) -> list[FeedRecord]:
    """State re-sends and alert episodes (no incident) until the budget is used up.

    With ``alert_noise_per_day`` the episodes are that many a day of the span and
    the rest are re-sends (none when there is no incident to re-send: the stream
    is then shorter than its budget); without it, each record is either at even odds.
    """
    rng, settings = s.rng, s.settings
    flap_pool = [(svc, k, ALERT_NAMES.get(k, "IncidentSignal") + "Flap")
                 for svc in settings.services for k in settings.kinds]
    prints = {(svc, name): alert_fingerprint(name, svc) for svc, _, name in flap_pool}
    noise = (None if settings.alert_noise_per_day is None
             else round(settings.alert_noise_per_day * settings.span_days))
    records: list[FeedRecord] = []
    while remaining > 0:
        if noise is None:
            resend = bool(lifecycles) and rng.random() < 0.5
        elif noise > 0:
            resend, noise = False, noise - 1
        elif lifecycles:
            resend = True
        else:
            break
        if resend:
            lc, last = rng.choice(lifecycles)
            at = s.at(lc.detected_at, min(last, lc.closed_at - timedelta(seconds=1)))
            records.append(_resend(lc, at, s.next_event_id()))
            remaining -= 1
            continue
        service, kind, name = rng.choice(flap_pool)
        alert = _alert(rng, name, service, kind, prints[(service, name)])
        at = s.at(s.start, s.end - FLAP_MAX)
        steps = [(None, "pending", at),
                 ("pending", "firing", at + timedelta(minutes=rng.randint(1, 5))),
                 ("firing", "resolved",
                  at + timedelta(minutes=rng.randint(6, int(FLAP_MAX.total_seconds()) // 60)))]
        for before, after, when in steps[:remaining]:
            records.append(_transition(s, alert, before, after, when))
            remaining -= 1
    return records


def _planted_truth(kept: list[_Pattern], thresholds: tuple[int, int],
                   ) -> tuple[list[PlantedRecurrence], list[PlantedCluster]]:
    """The kept patterns as the findings the engine should make of them."""
    recurrence, clusters = [], []
    for pattern in kept:
        planned = pattern.planned
        ids = [p.incident_id for p in planned]
        if pattern.shape is None:
            recurrence.append(PlantedRecurrence(
                pattern_id=pattern.name, signature=pattern.signature,
                service=planned[0].service, kind=planned[0].kind, title=planned[0].title,
                count=len(planned), incident_ids=ids,
                first_started_at=planned[0].started_at, last_started_at=planned[-1].started_at,
                expected_level=_level(len(planned), thresholds)))
        else:
            clusters.append(PlantedCluster(
                cluster_id=pattern.name, shape=pattern.shape, services=pattern.services,
                kinds=pattern.kinds, incident_ids=ids,
                window_start=planned[0].started_at, window_end=planned[-1].started_at,
                expected_rules=pattern.rules,
                decoys=sorted(p.incident_id for p in pattern.decoys)))
    return recurrence, clusters


def generate_stream(
    seed: int,
    start: datetime = DEFAULT_START,
    rate_per_s: float = 50.0,
    duration_s: float = 60.0,
    settings: StreamSettings | None = None,
    *,
    thresholds: tuple[int, int] = (3, 6),
    recurrence_end: datetime | None = None,
    flap: tuple[int, int] = (4, 60),
    min_firing: int = 3,
    difficulty: Difficulty | None = None,
) -> tuple[list[FeedRecord], StreamTruth]:
    """Records in event-time order and the planted ground truth.

    ``thresholds`` are the signature recurrence (warn, high) counts used for
    ``expected_level`` (the shipped intelligence policy uses 3 and 6).
    ``recurrence_end`` is where the planted recurrence ends (default: the span's
    end; kept inside the span). ``flap`` (transitions, minutes) and
    ``min_firing`` are the alert flapping and promotion rules the planted
    alerts' truth is judged by (the shipped policy's by default). ``difficulty``
    applies that profile of ``settings.difficulties`` (more background, decoys,
    wider clusters). The steps draw from one seeded generator in a fixed order:
    clusters, recurrence, background, lifecycles, filler; planted alerts and
    decoys have their own.
    """
    if rate_per_s <= 0 or duration_s <= 0:
        raise ValueError("rate_per_s and duration_s must be positive")
    settings = settings or StreamSettings()
    if difficulty is not None:
        settings = settings.at_difficulty(difficulty)
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    start = start.replace(microsecond=0)
    s = _Stream(seed, start, settings)
    budget = max(0, round(rate_per_s * duration_s))

    kinds = list(settings.kinds)
    services = list(settings.services)
    s.rng.shuffle(kinds)
    s.rng.shuffle(services)
    zones: list[_Zone] = []
    reserved: set[tuple[str, str]] = set()
    patterns = _plant_clusters(s, kinds, services, reserved, zones)
    _plant_decoys(s, patterns)
    patterns += _plant_recurrence(s, kinds, services, recurrence_end)
    background = _plant_background(s, reserved, zones)
    wanted = round(settings.background_per_day * settings.span_days)
    fit = _fit_budget(patterns, background, budget, wanted)

    everything = [p for pattern in fit.kept for p in pattern.incidents] + fit.background
    records, lifecycles = _incident_records(s, everything, fit.full)
    alert_records, planted_alerts, left_out = _plant_alerts(s, budget - len(records), flap,
                                                            min_firing)
    records += alert_records
    records += _filler(s, lifecycles, budget - len(records))
    records.sort(key=lambda r: r.occurred_at)

    recurrence, clusters = _planted_truth(fit.kept, thresholds)
    topics = Counter(r.topic for r in records)
    truth = StreamTruth(
        seed=seed,
        difficulty=difficulty,
        start=start,
        span_end=s.end,
        as_of=records[-1].occurred_at if records else None,
        rate_per_s=rate_per_s,
        duration_s=duration_s,
        records=len(records),
        records_by_topic={t: topics.get(t, 0) for t in (INCIDENTS_TOPIC, ALERTS_TOPIC)},
        incidents=len(everything),
        full_lifecycles=fit.full,
        window_days=7,
        recurrence=recurrence,
        clusters=clusters,
        alerts=planted_alerts,
        incidents_by_kind=dict(sorted(Counter(p.kind for p in everything).items())),
        incidents_by_service=dict(sorted(Counter(p.service for p in everything).items())),
        dropped=fit.dropped + left_out,
        open_at_end=sorted(lc.incident_id for lc, last in lifecycles
                           if not fit.full or last < lc.resolved_at),
    )
    return records, truth


def first_run_feed(seed: int, now: datetime, rate_per_s: float, duration_s: float,
                   settings: StreamSettings | None = None,
                   thresholds: tuple[int, int] = (3, 6)) -> tuple[list[FeedRecord], StreamTruth]:
    """History for a first ``incident-intel run``: every record at or before ``now``.

    It covers the last two complete ISO weeks and the current one up to ``now``,
    and plants the recurrence in the week before the last complete one. So the
    last complete week's digest (the default one) and the week before (the one
    due on Monday before the digest's hour) both have incidents, a high bucket
    in their 30-day window and, with a plant that leaves an incident open, a
    follow-up; the gate of the recurring service fails while the recurrence is
    within the gate's windows; the clusters give correlations with notes.
    """
    settings = (settings or StreamSettings()).for_first_run()
    now = now.astimezone(UTC).replace(microsecond=0)
    last_week_start = week_start(last_complete_week(now))
    start = last_week_start - timedelta(days=7)
    span = settings.model_copy(update={"span_days": (now - start) / timedelta(days=1)})
    return generate_stream(seed, start, rate_per_s, duration_s, span, thresholds=thresholds,
                           recurrence_end=last_week_start)


def truth_groups(truth: StreamTruth) -> list[list[str]]:
    """The incidents that belong together: each planted cluster (its decoys left out) and
    each planted recurrence. Every other pair is unrelated."""
    return ([c.incident_ids for c in truth.clusters]
            + [r.incident_ids for r in truth.recurrence])
def _span(first: datetime, last: datetime) -> str:
    """``2026-02-19 … 2026-02-22``, or one day."""
    a, b = f"{first:%Y-%m-%d}", f"{last:%Y-%m-%d}"
    return a if a == b else f"{a} … {b}"


def _minutes(delta: timedelta) -> str:
    minutes = round(delta.total_seconds() / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def first_run_story(truth: StreamTruth, settings: StreamSettings,
                    label_template: str) -> list[str]:
    """What a first run planted and where the dashboard shows it, one line each, for
    the banner of ``incident-intel run``. A recurrence is named by the label the
    dashboard gives its signature (``label_template``, the intelligence policy's)."""
    lines = ["planted, and where the dashboard (GET / below) highlights it:"]
    still_open = set(truth.open_at_end)
    for plant in truth.recurrence:
        label = Name(normalise_title(plant.title), plant.service, plant.kind).render(
            label_template)
        # Whole only in the 30-day window: the plant lies in the week before the last
        # complete one, so at most its newest incidents are also in the last 7 days.
        where = "Recurrence, last 30 days"
        extra = ""
        if still_open & set(plant.incident_ids):
            extra = ", the newest still open"
            where += "; Root-cause buckets; Recent follow-ups"
        lines.append(f"  {plant.expected_level} recurrence  \"{label}\": {plant.count} incidents "
                     f"{_span(plant.first_started_at, plant.last_started_at)}{extra} -> {where}")
    newest = max(truth.clusters, key=lambda c: c.window_start, default=None)
    for cluster in truth.clusters:
        what = f"{', '.join(cluster.kinds)} on {', '.join(cluster.services)}"
        within = _minutes(cluster.window_end - cluster.window_start)
        where = ("Recent correlations" if cluster is newest
                 else f"correlate {cluster.incident_ids[0]} (see try: below)")
        lines.append(f"  cluster  {what} within {within}, {cluster.window_start:%Y-%m-%d} "
                     f"-> {where}")
    for alert in truth.alerts:
        shown = [name for name, yes in (("Flapping alerts", alert.expected_flapping),
                                        ("Promote to incident", alert.expected_promote)) if yes]
        how = "in one burst" if alert.shape == "flapping" else "spread over the last days"
        lines.append(f"  {alert.shape} alert  {alert.service}/{alert.kind} "
                     f"({alert.fingerprint}): {alert.firings} firings {how}, no incident"
                     + (f" -> {'; '.join(shown)}" if shown else ""))
    calm = settings.for_first_run()
    lines.append("everything else is a calm background (simulation.yml: stream.first_run): "
                 f"about {calm.background_per_day:g} incidents a day, and alerts no incident "
                 f"names about {calm.alert_noise_per_day or 0:g} a day")
    return lines


def to_jsonl(records: list[FeedRecord]) -> bytes:
    """The values one per line: the format ``incident-intel tool --events`` reads."""
    return b"".join(r.value_bytes() + b"\n" for r in records)
