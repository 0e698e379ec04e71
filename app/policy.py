"""Loading and validation of ``policy/*.yml``.

Policy is data: every threshold, weight, template and rule the engine applies
comes from these files. A bad file stops the program with one line,
``file: field: reason``, before anything runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.contracts import MAX_EVENT_BYTES, CorrelationRuleName, GateMode, Severity, Status
from app.policyfile import (
    PolicyError,
    check_template,
    default_policy_dir,
    load_file,
)
from app.policyfile import StrictModel as _Strict
from app.simulation.catalog import SimulationPolicy

NonNegative = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(gt=0)]


# ------------------------------------------------------------ incident_intelligence.yml


class KindRule(_Strict):
    kind: str
    keywords: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]


class KindDerivation(_Strict):
    """Keyword rules over title and label values; the first rule that matches wins."""

    rules: list[KindRule]
    default: str = "unknown"


class CorrelationRule(_Strict):
    name: CorrelationRuleName
    weight: NonNegative


class Correlation(_Strict):
    lookback_days: Positive = 30
    within_minutes: NonNegative = 180
    min_score: Positive = 20
    max_related: Positive = 10
    note_top: Positive = 5
    rules: list[CorrelationRule]

    @model_validator(mode="after")
    def _unique_rules(self) -> Correlation:
        names = [rule.name for rule in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule listed twice: {', '.join(dupes)}")
        return self


class QualityGrid(_Strict):
    """The grid a suggestion searches: each rule weight and ``min_score``, ``radius``
    steps either side of its current value (weights stay >= 0, ``min_score`` >= 1).

    The search scores ``(2 * radius + 1) ** (rules + 1)`` points at most (16,807
    with four rules and radius 3), so the radius is capped."""

    radius: Annotated[int, Field(ge=0, le=3)] = 3
    weight_step: Annotated[int, Field(ge=1, le=1000)] = 10
    min_score_step: Annotated[int, Field(ge=1, le=1000)] = 10


class CorrelationQuality(_Strict):
    """How the correlation rules are measured against labelled pairs, and how a change
    is suggested (the ``correlation_quality`` action, ``policy suggest``, the digest)."""

    window_days: Annotated[int, Field(gt=0, le=3660)] = 90
    """Default window: labelled pairs whose target started in it."""
    min_labelled_pairs: Annotated[int, Field(ge=2, le=1_000_000)] = 30
    """Fewer labelled pairs than this: no suggestion, and the answer says why."""
    folds: Annotated[int, Field(ge=2, le=20)] = 5
    """k of the k-fold cross-validation that scores a suggestion."""
    grid: QualityGrid = QualityGrid()

    @model_validator(mode="after")
    def _enough_pairs_for_the_folds(self) -> CorrelationQuality:
        if self.min_labelled_pairs < self.folds:
            raise ValueError(f"min_labelled_pairs: {self.min_labelled_pairs} is less than folds "
                             f"({self.folds}): some fold would hold no pair")
        return self


class Threshold(_Strict):
    warn: Positive
    high: Positive

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if self.warn > self.high:
            raise ValueError(f"warn ({self.warn}) must not exceed high ({self.high})")
        return self


class RecurrenceThresholds(_Strict):
    signature: Threshold
    kind: Threshold
    service: Threshold | None = None

    def for_type(self, key_type: str) -> Threshold:
        """Thresholds of a key type; services fall back to the kind thresholds."""
        if key_type == "signature":
            return self.signature
        if key_type == "service" and self.service is not None:
            return self.service
        return self.kind


class RecommendationTemplates(_Strict):
    """Rendered for high recurrence; ``by_kind`` overrides ``kind`` for one kind."""

    signature: str
    kind: str
    by_kind: dict[str, str] = Field(default_factory=dict)


LABEL_TEMPLATE_FIELDS: frozenset[str] = frozenset({"title", "service", "kind"})
"""Placeholders of ``recurrence.label_template``: a signature's most common normalised
title, service and kind (:mod:`app.intel.labels`)."""


class Recurrence(_Strict):
    windows_days: Annotated[list[Positive], Field(min_length=1)] = [7, 30]
    top_n: Positive = 10
    grace_days: NonNegative = 2
    thresholds: RecurrenceThresholds
    templates: RecommendationTemplates
    label_template: str = "{title} · {service}/{kind}"
    """How a signature is named for a person (answers, ``intel.recurrence``, dashboard)."""

    @field_validator("label_template")
    @classmethod
    def _label_placeholders(cls, value: str) -> str:
        return check_template(value, set(LABEL_TEMPLATE_FIELDS))


class Buckets(_Strict):
    mode: Literal["service_kind", "signature_prefix"] = "service_kind"
    signature_prefix_len: Annotated[int, Field(ge=4, le=64)] = 12
    min_count: dict[Positive, Positive]
    sample_size: Positive = 5
    top_signatures: Positive = 5
    open_warning: str


class Digest(_Strict):
    schedule: str = "0 8 * * 1"
    timezone: Literal["UTC"] = "UTC"
    output_dir: str = "ops/reports/incidents/weekly"
    markdown_max_chars: Annotated[int, Field(ge=500)] = 20000
    top_n: Positive = 10
    revise_for_weeks: Annotated[int, Field(ge=0, le=52)] = 4
    """A published week is revised while the event-time watermark is less than this many
    weeks past the week's end (0: never revised)."""
    revise_min_interval_minutes: NonNegative = 60
    """A week is revised at most once per this many minutes of the digest timer's clock."""

    @model_validator(mode="after")
    def _cron(self) -> Digest:
        if len(self.schedule.split()) != 5:
            raise ValueError(f"schedule {self.schedule!r} is not a 5-field cron expression")
        return self


class AutoFollowups(_Strict):
    enabled: bool = True
    only_when_high: bool = True
    owner: str = "oncall"
    priority: Severity = "P1"
    due_days: NonNegative = 7
    dedupe_key_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "intel_recur"
    title_template: str
    message_template: str


ALERT_TEMPLATE_FIELDS: frozenset[str] = frozenset({"fingerprint", "service", "kind", "count"})


class FlapRule(_Strict):
    """Flapping: at least ``transitions`` transitions within ``window_minutes``."""

    transitions: Annotated[int, Field(ge=2)] = 4
    window_minutes: Annotated[int, Field(gt=0, le=10080)] = 60


class PromoteRule(_Strict):
    """Alerts that keep firing with no incident: at least ``min_firing`` in 7 days."""

    min_firing: Positive = 3
    template: str = ("{fingerprint} ({service}/{kind}) fired {count} times in 7 days and no "
                     "incident names it: open an incident or tune the alert.")

    @field_validator("template")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        return check_template(value, set(ALERT_TEMPLATE_FIELDS))


class EventTime(_Strict):
    """``time:``: how event time moves when no event arrives (a quiet period)."""

    idle_after_seconds: Annotated[int, Field(gt=0, le=86_400)] = 300
    """No input applied for this long: the live ``as_of`` advances on the wall clock."""
    allowed_lateness_minutes: Annotated[int, Field(ge=0, le=10_080)] = 10
    """How far behind the wall clock an idle ``as_of`` stays, for events still on their way."""


class AlertsPolicy(_Strict):
    """Alert intelligence over ``alerts.state``: recurrence levels, flapping, promotion."""

    thresholds: Threshold = Threshold(warn=3, high=6)
    flap: FlapRule = FlapRule()
    promote: PromoteRule = PromoteRule()
    published_window_days: Annotated[int, Field(gt=0, le=3660)] = 30
    """Window of the flapping and linked-incident fields of each ``intel.alerts`` record."""
    retention_days: Annotated[int, Field(gt=0, le=3660)] = 60
    """How long alert transitions are kept after they occurred: every window of the alert
    answers fits in it, and ``alerts`` asks for no longer window."""


class IntelPolicy(_Strict):
    """``incident_intelligence.yml``."""

    version: Literal[1] = 1
    kinds: Annotated[list[str], Field(min_length=1)]
    kind_derivation: KindDerivation
    correlation: Correlation
    recurrence: Recurrence
    buckets: Buckets
    recommendations: dict[str, list[str]]
    digest: Digest
    autofollowups: AutoFollowups
    retention_days: Positive = 400
    """How long an incident is kept after it started: bounds a worker's memory."""
    max_future_skew_minutes: NonNegative = 60
    """An event this far ahead of the receiving clock is dead-lettered, not applied."""
    time: EventTime = EventTime()
    alerts: AlertsPolicy = AlertsPolicy()
    correlation_quality: CorrelationQuality = CorrelationQuality()

    @model_validator(mode="after")
    def _consistent(self) -> IntelPolicy:
        known = set(self.kinds)

        def kind_ok(kind: str, where: str) -> None:
            if kind not in known:
                raise ValueError(f"{where}: unknown kind {kind!r} (not in kinds)")

        for i, rule in enumerate(self.kind_derivation.rules):
            kind_ok(rule.kind, f"kind_derivation.rules.{i}.kind")
        kind_ok(self.kind_derivation.default, "kind_derivation.default")
        for kind in self.recommendations:
            if kind != "default":
                kind_ok(kind, f"recommendations.{kind}")
        tpl = self.recurrence.templates
        fields = {"sig", "kind", "service", "count"}
        for where, text in [("signature", tpl.signature), ("kind", tpl.kind)] + [
            (f"by_kind.{k}", v) for k, v in tpl.by_kind.items()
        ]:
            if where.startswith("by_kind."):
                kind_ok(where.removeprefix("by_kind."), f"recurrence.templates.{where}")
            try:
                check_template(text, fields)
            except ValueError as exc:
                raise ValueError(f"recurrence.templates.{where}: {exc}") from None
        follow = {"bucket", "count_7d", "count_30d", "kinds", "services", "week"}
        for name in ("title_template", "message_template"):
            try:
                check_template(getattr(self.autofollowups, name), follow)
            except ValueError as exc:
                raise ValueError(f"autofollowups.{name}: {exc}") from None
        if not {7, 30} <= set(self.recurrence.windows_days):
            raise ValueError(
                "recurrence.windows_days: must include 7 and 30 (the published counts)"
            )
        for window in self.buckets.min_count:
            if window not in self.recurrence.windows_days:
                raise ValueError(
                    f"buckets.min_count.{window}: window not in recurrence.windows_days"
                )
        return self

    @model_validator(mode="after")
    def _retention(self) -> IntelPolicy:
        least = self.correlation.lookback_days + self.largest_window_days
        if self.retention_days < least:
            raise ValueError(f"retention_days: {self.retention_days} is less than "
                             f"correlation.lookback_days + the largest window ({least})")
        widest = max(30, self.alerts.published_window_days) + self.recurrence.grace_days
        if self.alerts.retention_days < widest:
            raise ValueError(f"alerts.retention_days: {self.alerts.retention_days} is less than "
                             "the widest alert window (30 days, or published_window_days) plus "
                             f"recurrence.grace_days ({widest})")
        # A revisable week's windows must still be held when the last revision is made:
        # the watermark is then up to revise_for_weeks weeks past the week's end.
        revised = 30 + 7 * self.digest.revise_for_weeks
        if self.alerts.retention_days < revised:
            raise ValueError(f"alerts.retention_days: {self.alerts.retention_days} is less than "
                             "the digest's 30-day window plus digest.revise_for_weeks weeks "
                             f"({revised})")
        if self.retention_days < revised:
            raise ValueError(f"retention_days: {self.retention_days} is less than the "
                             "digest's 30-day window plus digest.revise_for_weeks weeks "
                             f"({revised})")
        return self

    @property
    def largest_window_days(self) -> int:
        return max(self.recurrence.windows_days)

    def rule_weights(self) -> dict[CorrelationRuleName, int]:
        return {rule.name: rule.weight for rule in self.correlation.rules}


# ------------------------------------------------------------------- release_gate.yml


class GateProfile(_Strict):
    mode: GateMode
    windows_days: Annotated[list[Positive], Field(min_length=1)] | None = None


class FailOn(_Strict):
    severity_in: list[Severity]


class GatePolicy(_Strict):
    """``release_gate.yml``."""

    version: Literal[1] = 1
    default_windows_days: Annotated[list[Positive], Field(min_length=1)] = [7, 30]
    default_profile: str = "prod"
    profiles: dict[str, GateProfile]
    fail_on: FailOn

    @model_validator(mode="after")
    def _default_exists(self) -> GatePolicy:
        if self.default_profile not in self.profiles:
            raise ValueError(f"default_profile: {self.default_profile!r} is not in profiles")
        return self


# --------------------------------------------------------------------------- rbac.yml

Entitlement = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")]


class RbacPolicy(_Strict):
    """``rbac.yml``: roles hold entitlements; actions need entitlements."""

    version: Literal[1] = 1
    roles: dict[str, list[Entitlement]]
    actions: dict[str, list[Entitlement]]


# -------------------------------------------------------------------- rate_limits.yml


class Limit(_Strict):
    per_minute: Positive
    timeout_seconds: Annotated[float, Field(gt=0)]


class EngineReads(_Strict):
    """The API's own pool of engine-read threads, and how much of it one token may hold."""

    workers: Annotated[int, Field(ge=1, le=64)] = 4
    per_token: Annotated[int, Field(ge=1, le=64)] = 2
    """Reads one token may have in flight; more answer 429."""

    @model_validator(mode="after")
    def _leaves_room(self) -> EngineReads:
        if self.per_token > self.workers:
            raise ValueError("per_token: larger than workers (one token could hold the pool)")
        return self


class HttpLimits(_Strict):
    """What one connection may cost the HTTP server before any handler runs."""

    max_connections: Annotated[int, Field(ge=1, le=100_000)] = 256
    header_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10
    """From connection to the end of the request head; then the connection is closed."""
    body_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10
    """Reading the body of a ``/v1`` call; then 408."""
    connection_seconds: Annotated[float, Field(gt=0, le=3600)] = 60
    """A connection's whole life (one request per connection); then it is closed."""
    max_header_line_bytes: Annotated[int, Field(ge=256, le=65536)] = 8190
    max_header_bytes: Annotated[int, Field(ge=256, le=262144)] = 16384
    max_headers: Annotated[int, Field(ge=8, le=1000)] = 100

    @model_validator(mode="after")
    def _head_holds_a_line(self) -> HttpLimits:
        if self.max_header_line_bytes > self.max_header_bytes:
            raise ValueError("max_header_line_bytes: larger than max_header_bytes")
        return self


class RateLimitPolicy(_Strict):
    """``rate_limits.yml``: per token and action, plus the server's own bounds."""

    version: Literal[1] = 1
    max_body_bytes: Positive = 65536
    default: Limit
    actions: dict[str, Limit] = Field(default_factory=dict)
    engine_reads: EngineReads = Field(default_factory=EngineReads)
    http: HttpLimits = Field(default_factory=HttpLimits)

    def for_action(self, action: str) -> Limit:
        return self.actions.get(action, self.default)


# ----------------------------------------------------------------------- learning.yml


class LearningPolicy(_Strict):
    """``learning.yml``: targets of the learning-velocity metrics."""

    version: Literal[1] = 1
    recurrence_target: float = Field(gt=0, lt=1)
    """Fraction of incidents that may recur; quarters above it are flagged."""


# ------------------------------------------------------------------------ sources.yml

LabelName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
"""A Prometheus label name."""
HeaderName = Annotated[str, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")]
"""An HTTP header name (RFC 9110 token)."""
PagerDutyEventType = Literal[
    "incident.triggered", "incident.acknowledged", "incident.unacknowledged",
    "incident.resolved", "incident.reopened", "incident.priority_updated",
    "incident.escalated", "incident.delegated", "incident.reassigned",
]
"""PagerDuty V3 event types whose ``data`` is the incident itself (the others carry a
note, a responder or a status update, not the incident's state)."""
PagerDutyStatus = Literal["triggered", "acknowledged", "resolved"]


def _lower_keys(table: dict[str, Severity]) -> dict[str, Severity]:
    lowered = {key.lower(): value for key, value in table.items()}
    if len(lowered) != len(table):
        raise ValueError("keys repeat when compared without case")
    return lowered


class SourceDelivery(_Strict):
    """What one webhook delivery may cost, and how a refused one is told to come back."""

    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 1024 * 1024
    """Bodies over this are answered 413 (an Alertmanager group of a thousand alerts
    is about 1 MB)."""
    dead_letter_max_bytes: Annotated[int, Field(ge=1024, le=MAX_EVENT_BYTES)] = MAX_EVENT_BYTES
    """A refused body is kept on ``intel.dlq`` cut to this many bytes."""
    ack_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0
    """How long the broker has to acknowledge a delivery's records; then 503."""
    retry_after_seconds: Annotated[int, Field(ge=1, le=3600)] = 10
    """``Retry-After`` of a 503 while the broker is unavailable."""
    repeat_memory: Annotated[int, Field(ge=0, le=10_000_000)] = 100_000
    """Records this process remembers as acknowledged, so a repeated, re-sent or twin
    delivery is answered without sending them again (0: send every time)."""


class AlertmanagerSource(_Strict):
    """How an Alertmanager (or Grafana) alert becomes an ``alerts.state`` transition."""

    service_label: Annotated[list[LabelName], Field(min_length=1)] = ["service", "job"]
    """The first of these labels the alert carries names its service."""
    default_service: Annotated[str, Field(min_length=1, max_length=120)] = "unknown"
    kind_label: LabelName = "kind"
    """The alert's kind; without it, the kind rules of ``incident_intelligence.yml``
    over the labels decide, as for an incident without a kind."""
    severity_label: LabelName = "severity"
    severity: dict[str, Severity]
    """The severity label's value (any case) → P0..P3."""
    default_severity: Severity = "P3"
    env_label: Annotated[list[LabelName], Field(min_length=1)] = ["env", "environment"]
    default_env: Annotated[str, Field(min_length=1, max_length=60)] = "prod"

    @field_validator("severity")
    @classmethod
    def _severity_keys(cls, value: dict[str, Severity]) -> dict[str, Severity]:
        return _lower_keys(value)


class GrafanaSource(_Strict):
    """Grafana Alerting's optional HMAC signature of its webhook (names of its headers)."""

    signature_header: HeaderName = "X-Grafana-Alerting-Signature"
    timestamp_header: HeaderName = "X-Grafana-Alerting-Timestamp"
    """When a delivery carries it, the signature covers ``<timestamp>:<body>``."""


class PagerDutySeverity(_Strict):
    """Priority name (``P1``…), else urgency (``high``/``low``), else the default."""

    by_priority: dict[str, Severity]
    by_urgency: dict[str, Severity]
    default: Severity = "P2"

    @field_validator("by_priority", "by_urgency")
    @classmethod
    def _keys(cls, value: dict[str, Severity]) -> dict[str, Severity]:
        return _lower_keys(value)


class PagerDutySource(_Strict):
    """How a PagerDuty V3 ``incident.*`` event becomes an ``incidents.events`` record."""

    event_types: Annotated[list[PagerDutyEventType], Field(min_length=1)]
    """Event types turned into records; any other delivery is acknowledged and ignored."""
    status: dict[PagerDutyStatus, Status]
    severity: PagerDutySeverity
    env: Annotated[str, Field(min_length=1, max_length=60)] = "prod"

    @field_validator("status")
    @classmethod
    def _every_status(cls, value: dict[str, Status]) -> dict[str, Status]:
        missing = sorted(set(get_args(PagerDutyStatus)) - set(value))
        if missing:
            raise ValueError(f"no status given for {', '.join(missing)}")
        return value


class SourcesPolicy(_Strict):
    """``sources.yml``: the webhook receivers (Alertmanager, Grafana, PagerDuty)."""

    version: Literal[1] = 1
    delivery: SourceDelivery = Field(default_factory=SourceDelivery)
    alertmanager: AlertmanagerSource
    grafana: GrafanaSource = Field(default_factory=GrafanaSource)
    pagerduty: PagerDutySource


# ------------------------------------------------------------------------ the bundle

POLICY_FILES: dict[str, str] = {
    "intel": "incident_intelligence.yml",
    "gate": "release_gate.yml",
    "rbac": "rbac.yml",
    "rate_limits": "rate_limits.yml",
    "learning": "learning.yml",
    "simulation": "simulation.yml",
    "sources": "sources.yml",
}
"""Every policy file, by the :class:`Policy` field that holds it (and gives its model)."""


class Policy(BaseModel):
    """All policy files of one directory, validated."""

    model_config = ConfigDict(frozen=True)
    directory: str
    intel: IntelPolicy
    gate: GatePolicy
    rbac: RbacPolicy
    rate_limits: RateLimitPolicy
    learning: LearningPolicy
    simulation: SimulationPolicy
    sources: SourcesPolicy

    @property
    def recurrence_target(self) -> float:
        """The learning-velocity recurrence target: the one reader of ``learning.yml``'s."""
        return self.learning.recurrence_target


def _section_model(field: str) -> type[BaseModel]:
    model = Policy.model_fields[field].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel), field
    return model


def load_policy(directory: str | Path | None = None) -> Policy:
    """Load and validate every policy file of ``directory`` (default: ``default_policy_dir()``)."""
    root = Path(directory) if directory is not None else default_policy_dir()
    if not root.is_dir():
        raise PolicyError(f"{root}: (directory): not a directory")
    sections = {field: load_file(root / name, _section_model(field))
                for field, name in POLICY_FILES.items()}
    return Policy.model_validate({"directory": str(root), **sections})
