"""Payload models of every topic and of the tool requests and responses.

These models are the single source of truth for what crosses a process
boundary: the JSON Schemas under ``topics/schemas/`` are generated from them
(``incident-intel topics schemas``) and a test fails when the two drift.

Time stamps are RFC 3339; a stamp without an offset means UTC. Every stamp is
normalised to an aware UTC ``datetime`` on input and written back as
``YYYY-MM-DDTHH:MM:SSZ`` (fractions kept when present), so the same instant
always serialises to the same bytes.
"""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

MAX_EVENT_BYTES = 256 * 1024
"""Records larger than this are rejected to the dead-letter topic."""

Severity = Literal["P0", "P1", "P2", "P3"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
CorrelationRuleName = Literal[
    "same_signature",
    "same_service_and_kind",
    "same_service_time_cluster",
    "same_kind_cross_service",
]
"""The correlation rules; ``incident_intelligence.yml`` gives each its weight."""
CORRELATION_RULES: tuple[CorrelationRuleName, ...] = get_args(CorrelationRuleName)
Status = Literal["open", "mitigating", "mitigated", "resolved", "closed"]
OPEN_STATUSES: frozenset[str] = frozenset({"open", "mitigating", "mitigated"})
AlertState = Literal["pending", "firing", "acknowledged", "resolved", "silenced"]
Level = Literal["none", "warn", "high"]
KeyType = Literal["signature", "kind", "service"]
"""What a recurrence count is kept by; findings cover the first two."""
FindingKeyType = Literal["signature", "kind"]
GateMode = Literal["off", "warn", "strict"]
LinkVerdictValue = Literal["related", "unrelated"]
"""A responder's verdict on whether two incidents belong together."""


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``; microseconds only when not zero."""
    value = _as_utc(value)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[datetime, AfterValidator(_as_utc)]
"""An aware UTC instant. pydantic writes it in JSON exactly as :func:`format_timestamp`
does (``Z``, fractions only when not zero; a test compares every output with a golden
file), and its JSON Schema says ``format: date-time``."""

Id = Annotated[str, Field(min_length=1, max_length=200)]
Name = Annotated[str, Field(min_length=1, max_length=120)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Input(BaseModel):
    """Inbound payloads tolerate unknown fields (producers evolve first)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


# --------------------------------------------------------------------------- inputs


class Incident(_Input):
    incident_id: Id
    service: Name
    kind: Name | None = None
    severity: Severity
    status: Status
    signature: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    title: Annotated[str, Field(max_length=1000)] = ""
    env: Annotated[str, Field(max_length=60)] = "prod"
    started_at: Timestamp
    detected_at: Timestamp | None = None
    resolved_at: Timestamp | None = None
    root_cause: Annotated[str, Field(max_length=500)] | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class IncidentEvent(_Input):
    event_id: Id
    type: Literal["incident.opened", "incident.updated", "incident.closed"]
    occurred_at: Timestamp
    incident: Incident


class Alert(_Input):
    alert_id: Id
    fingerprint: Id
    service: Name
    kind: Name | None = None
    severity: Severity
    env: Annotated[str, Field(max_length=60)] = "prod"
    labels: dict[str, str] = Field(default_factory=dict)


class AlertTransition(_Input):
    event_id: Id
    type: Literal["alert.transition"]
    occurred_at: Timestamp
    alert: Alert
    from_state: AlertState | None = None
    to_state: AlertState
    incident_id: Id | None = None


class LearningEvent(_Input):
    event_id: Id
    type: Literal["regression_test.added", "postmortem.published"]
    occurred_at: Timestamp
    incident_id: Id | None = None
    test_id: Id | None = None
    root_cause: Annotated[str, Field(max_length=500)] | None = None


def _other_incident(value: str, info: ValidationInfo) -> str:
    if value == info.data.get("incident_id"):
        raise ValueError("must name another incident than incident_id")
    return value


class LinkVerdict(_Input):
    """A responder's verdict on a pair of incidents: they belong together, or not.

    The pair is unordered: for one pair the newest ``(occurred_at, event_id)``
    verdict wins, whichever of the two incidents it names first.
    ``incident_id`` is the incident the responder judged from (the one whose
    related list showed, or missed, the other).
    """

    event_id: Id
    type: Literal["incident.linked"]
    occurred_at: Timestamp
    incident_id: Id
    related_incident_id: Id
    verdict: LinkVerdictValue
    by: Name

    @field_validator("related_incident_id")
    @classmethod
    def _two_incidents(cls, value: str, info: ValidationInfo) -> str:
        return _other_incident(value, info)


class LearningInput(RootModel[Annotated[LearningEvent | LinkVerdict,
                                        Field(discriminator="type")]]):
    """A ``learning.events`` value: a learning fact, or a responder's link verdict."""


Event = IncidentEvent | AlertTransition | LearningEvent | LinkVerdict

_EVENT_MODELS: dict[str, type[BaseModel]] = {
    "incident.opened": IncidentEvent,
    "incident.updated": IncidentEvent,
    "incident.closed": IncidentEvent,
    "alert.transition": AlertTransition,
    "regression_test.added": LearningEvent,
    "postmortem.published": LearningEvent,
    "incident.linked": LinkVerdict,
}


DeadLetterReason = Literal["empty", "too_large", "not_json", "invalid", "future_skew",
                           "internal"]
"""Reason classes of a dead letter (the ``intel-error-class`` header and the metric's
``reason``): no value, over the size limit, not JSON, JSON that breaks the contract, an
event time too far ahead of the record's timestamp, a decoder bug."""
DEAD_LETTER_REASONS: tuple[DeadLetterReason, ...] = get_args(DeadLetterReason)


class InvalidEvent(ValueError):
    """A record that cannot become an event; ``str()`` is the reason and ``reason``
    its class, decided where the check failed (never parsed back from the text)."""

    def __init__(self, message: str, reason: DeadLetterReason = "invalid") -> None:
        super().__init__(message)
        self.reason: DeadLetterReason = reason


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "value"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"


def event_from_obj(obj: Any) -> Event:
    """Validate a decoded JSON value into the event model its ``type`` names."""
    if not isinstance(obj, dict):
        raise InvalidEvent(f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    model = _EVENT_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        known = ", ".join(sorted(_EVENT_MODELS))
        raise InvalidEvent(f"type: unknown event type {kind!r} (expected one of {known})")
    try:
        return model.model_validate(obj)  # type: ignore[return-value]
    except ValidationError as exc:
        raise InvalidEvent(_first_error(exc)) from None


def decode_event(raw: bytes) -> Event:
    """Parse one record's bytes into an event, or raise :class:`InvalidEvent`."""
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"record too large: {len(raw)} bytes > {MAX_EVENT_BYTES}",
                           "too_large")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not JSON: {exc}", "not_json") from None
    return event_from_obj(obj)


# -------------------------------------------------------------------------- outputs


def _absent(value: object) -> bool:
    """Whether an optional output field is left out of the JSON (it has no value)."""
    return value is None


class RelatedIncident(_Model):
    incident_id: str
    score: int
    reasons: list[str]
    service: str
    kind: str
    severity: Severity
    status: Status
    started_at: Timestamp
    verdict: LinkVerdictValue | None = Field(
        default=None, exclude_if=_absent,
        description="The newest responder verdict on this pair (incident.linked); the field "
                    "is absent when nobody judged the pair.")


class NoteMeta(_Model):
    related: list[RelatedIncident]


class Note(_Model):
    """Timeline note for ``incidents.notes``; ``note_id`` is deterministic."""

    type: Literal["note"] = "note"
    note_id: str
    incident_id: str
    message: str
    meta: NoteMeta


class FollowUpMeta(_Model):
    title: str
    owner: str
    priority: Severity
    due_date: str
    dedupe_key: str
    auto_created: bool = True
    bucket_key: str
    count_7d: int
    count_30d: int


class FollowUp(_Model):
    """A follow-up for ``intel.followups``; ``meta.dedupe_key`` is its id."""

    type: Literal["followup"] = "followup"
    incident_id: str
    message: str
    meta: FollowUpMeta


class RecurrenceUpdate(_Model):
    """Compacted ``intel.recurrence`` record, keyed ``<type>:<key>``."""

    update_id: str
    type: KeyType
    key: str
    label: str = Field(description="What a person reads for the key: a signature's most "
                                   "common normalised title with its service and kind; a "
                                   "kind or a service is its own name.")
    as_of: Timestamp
    count_7d: int
    count_30d: int
    level: Level


class SignatureCount(_Model):
    """A signature prefix of a bucket and how many of its incidents carry it."""

    signature: str
    count: int


class BucketCounts(_Model):
    """Incidents of a bucket in the fixed 7- and 30-day windows, and open ones."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    count_7d: int = Field(alias="7d", serialization_alias="7d", title="7d",
                          description="Incidents started in the 7 days ending at as_of.")
    count_30d: int = Field(alias="30d", serialization_alias="30d", title="30d",
                           description="Incidents started in the 30 days ending at as_of.")
    open: int = Field(description="Incidents of the window_days window not yet resolved.")


class Bucket(_Model):
    """A root-cause bucket: one entry of the ``buckets`` answer and one ``intel.buckets`` value."""

    bucket_key: str
    counts: BucketCounts
    last_seen: Timestamp
    services: list[str]
    kinds: list[str]
    top_signatures: list[SignatureCount]
    severity_mix: dict[str, int]
    sample_incidents: list[str]
    recommendations: list[str]


class AlertRow(_Model):
    """An alert fingerprint as ``alerts`` lists it; the compacted ``intel.alerts`` value."""

    fingerprint: str
    service: str
    kind: str | None
    firing_7d: int
    firing_30d: int
    level: Level
    flapping: bool
    max_transitions_in_flap_window: int
    linked_incidents: list[str]
    last_fired: Timestamp


class PromoteCandidate(_Model):
    """An alert that keeps firing while no incident names it."""

    fingerprint: str
    service: str
    kind: str | None
    firing_7d: int
    recommendation: str


class DlqRecord(_Model):
    """What an operator needs to understand and replay a rejected record."""

    source_topic: str
    partition: int
    offset: int
    key: str | None
    error: str
    raw: str
    raw_encoding: Literal["utf-8", "base64"]

    @classmethod
    def from_raw(
        cls,
        *,
        source_topic: str,
        partition: int,
        offset: int,
        error: str,
        raw: bytes,
        key: bytes | None,
    ) -> DlqRecord:
        try:
            text, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
        return cls(
            source_topic=source_topic,
            partition=partition,
            offset=offset,
            key=None if key is None else key.decode("utf-8", "replace"),
            error=error,
            raw=text,
            raw_encoding=encoding,
        )

    def raw_bytes(self) -> bytes:
        if self.raw_encoding == "base64":
            return base64.b64decode(self.raw)
        return self.raw.encode("utf-8")


# ------------------------------------------------------------------ tool requests


MAX_WINDOW_DAYS = 3660
"""Largest window any call may ask for (ten years)."""
MAX_GATE_WINDOWS = 8
"""Most windows one gate call may list: the gate's cost grows with windows x incidents."""


def _existing_week(label: str) -> str:
    """An ISO week that exists and whose end is a representable date (not 9999-W52)."""
    year, week = int(label[:4]), int(label[6:])
    try:
        date.fromisocalendar(year, week, 1) + timedelta(days=7)
    except (ValueError, OverflowError):
        raise ValueError(f"{label!r} does not exist (no such ISO week)") from None
    return label


def _unique(values: list[int]) -> list[int]:
    if len(set(values)) != len(values):
        raise ValueError("windows must not repeat")
    return values


WindowDays = Annotated[int, Field(gt=0, le=MAX_WINDOW_DAYS)]
IsoWeek = Annotated[str, Field(pattern=r"^[0-9]{4}-W[0-9]{2}$"), AfterValidator(_existing_week)]
"""``YYYY-Www`` in ASCII digits (``\\d`` would also take other scripts' digits)."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tool: Literal["incident_intelligence_tool"] | None = None


class CorrelateRequest(_Request):
    action: Literal["correlate"]
    incident_id: Id
    append_note: bool = False


class RecurrenceRequest(_Request):
    action: Literal["recurrence"]
    window_days: WindowDays = 7


class BucketsRequest(_Request):
    action: Literal["buckets"]
    service: Name | None = None
    window_days: WindowDays = 30


class WeeklyDigestRequest(_Request):
    action: Literal["weekly_digest"]
    week: IsoWeek | None = None
    save_artifacts: bool = False


class GateRequest(_Request):
    action: Literal["gate"]
    service: Name
    profile: Name = "prod"
    run_recurrence_watch: bool = True
    recurrence_watch_mode: GateMode | None = None
    recurrence_watch_windows_days: (
        Annotated[list[WindowDays], Field(min_length=1, max_length=MAX_GATE_WINDOWS,
                                          json_schema_extra={"uniqueItems": True}),
                  AfterValidator(_unique)] | None
    ) = None
    recurrence_watch_service: Name | None = None


class AlertsRequest(_Request):
    action: Literal["alerts"]
    window_days: Annotated[int, Field(gt=0, le=3660)] = 7
    service: Name | None = None


class CorrelationQualityRequest(_Request):
    action: Literal["correlation_quality"]
    window_days: WindowDays | None = Field(
        default=None, description="Labelled pairs whose target started in this many days "
                                  "ending at as_of (default: correlation_quality.window_days "
                                  "of the policy, 90).")


ToolRequest = Annotated[
    CorrelateRequest | RecurrenceRequest | BucketsRequest | WeeklyDigestRequest | GateRequest
    | AlertsRequest | CorrelationQualityRequest,
    Field(discriminator="action"),
]
ACTIONS: tuple[str, ...] = ("correlate", "recurrence", "buckets", "weekly_digest", "gate",
                            "alerts", "correlation_quality")
_REQUEST = TypeAdapter(ToolRequest)


class InvalidRequest(ValueError):
    """A tool call that is not one of the known actions with valid arguments."""


def parse_request(obj: Any) -> CorrelateRequest | RecurrenceRequest | BucketsRequest | (
    WeeklyDigestRequest | GateRequest | AlertsRequest | CorrelationQualityRequest
):
    """Validate a tool call (with or without ``"tool"``) into its request model."""
    if not isinstance(obj, dict):
        raise InvalidRequest("the tool call must be a JSON object")
    action = obj.get("action")
    if action not in ACTIONS:
        raise InvalidRequest(
            f"action: unknown action {action!r} (expected one of {', '.join(ACTIONS)})"
        )
    try:
        return _REQUEST.validate_python(obj)
    except ValidationError as exc:
        raise InvalidRequest(_first_error(exc).removeprefix(f"{action}.")) from None


# ----------------------------------------------------------------- tool responses


class CorrelateResponse(_Model):
    incident_id: str
    related_count: int
    related: list[RelatedIncident]
    note: Note | None = None


class KeyCount(_Model):
    key: str
    count: int


class LabelledCount(_Model):
    """A signature and its count, with the label a person reads for it."""

    key: str
    label: str
    count: int


class RecurrenceFinding(_Model):
    type: FindingKeyType
    key: str
    label: str
    count: int
    level: Literal["warn", "high"]
    recommendation: str | None = None


class RecurrenceResponse(_Model):
    as_of: Timestamp
    window_days: int
    total_incidents: int
    top_signatures: list[LabelledCount]
    top_kinds: list[KeyCount]
    top_services: list[KeyCount]
    high_recurrence: list[RecurrenceFinding]
    warn_recurrence: list[RecurrenceFinding]


class BucketsResponse(_Model):
    service_filter: str | None
    window_days: int
    bucket_count: int
    buckets: list[Bucket]
    as_of: Timestamp


class AlertsResponse(_Model):
    as_of: Timestamp
    window_days: int
    service_filter: str | None
    alert_count: int
    alerts: list[AlertRow]
    flapping: list[str]
    promote_candidates: list[PromoteCandidate]


class AlertNoise(_Model):
    """The digest's "Alert noise": the week's most recurring and flapping alerts."""

    top_recurring: list[AlertRow]
    flapping: list[AlertRow]
    promote_candidates: list[PromoteCandidate]


class FollowUpSkip(_Model):
    bucket_key: str
    dedupe_key: str
    reason: Literal["no_open_incident", "already_exists"]


class FollowUpOutcome(_Model):
    enabled: bool
    created: list[FollowUp]
    skipped: list[FollowUpSkip]


class QualityFigures(_Model):
    """Precision, recall and F1 of "kept" against labelled pairs (``None``: undefined,
    nothing to divide by)."""

    precision: float | None
    recall: float | None
    f1: float | None


class QualityOverall(QualityFigures):
    """The figures with their counts: kept and related (tp), kept but unrelated (fp),
    related but not kept (fn), neither (tn)."""

    tp: int
    fp: int
    fn: int
    tn: int
    outside_lookback: int = Field(
        description="Labelled pairs started further apart than correlation.lookback_days: "
                    "never listed, so a miss when related and nothing when unrelated.")


class RuleQuality(_Model):
    """One correlation rule against the labelled pairs."""

    rule: CorrelationRuleName
    support: int = Field(description="Labelled pairs the rule fires on.")
    precision: float | None = Field(description="Share of those pairs that are related.")
    false_positive_share: float | None = Field(
        description="Share of the false positives the rule fires on.")
    miss_share: float | None = Field(description="Share of the misses the rule fires on.")


class QualityExpectation(_Model):
    """The current policy's figures and the suggestion's: ``after`` is cross-validated
    (chosen on k-1 folds, scored on the fold left out), ``in_sample`` is the
    suggestion scored on every labelled pair it was chosen from."""

    before: QualityFigures
    after: QualityFigures
    in_sample: QualityFigures


class PolicySuggestion(_Model):
    """Weights and ``min_score`` that maximise F1 on the labelled pairs, with the patch."""

    weights: dict[CorrelationRuleName, int]
    min_score: int
    expected: QualityExpectation
    folds: int
    grid_points: int
    policy_patch: str = Field(description="YAML for incident_intelligence.yml: replaces "
                                          "correlation.min_score and correlation.rules.")


class CorrelationQualityResponse(_Model):
    """How often the correlation rules are right, rule by rule, and what to change."""

    window_days: int
    as_of: Timestamp
    source: Literal["verdicts", "planted_truth"]
    labelled_pairs: int
    skipped_pairs: int = Field(description="Labelled pairs naming an incident the engine does "
                                           "not know (never seen, or past retention).")
    overall: QualityOverall
    rules: list[RuleQuality]
    suggestion: PolicySuggestion | None
    reason: str


class DigestChange(_Model):
    """One line of what a revision changed: a count (``before`` -> ``after``) or a list
    (``added``/``removed`` names; ``changed``: entries still there whose content moved)."""

    field: str = Field(description="The digest field: a count (recent_7d_count, "
                                   "by_severity.P1, ...), a list (buckets, high_recurrence, "
                                   "followups.created, ...) or sections (other parts).")
    before: int | None = Field(default=None, exclude_if=_absent)
    after: int | None = Field(default=None, exclude_if=_absent)
    added: list[str] | None = Field(default=None, exclude_if=_absent)
    removed: list[str] | None = Field(default=None, exclude_if=_absent)
    changed: list[str] | None = Field(default=None, exclude_if=_absent)


class DigestLearning(_Model):
    """The weekly digest's learning section: the quarter holding ``as_of`` so far against
    the quarter before it (docs/learning-velocity.md). Flat, one figure a field; each
    ``*_last_quarter`` is the same figure for ``compared_with``."""

    quarter: str = Field(description="The quarter holding the digest's as_of, or the "
                                     "week's last instant once the week is over (YYYY-Qn).")
    compared_with: str = Field(description="The quarter before it (YYYY-Qn).")
    incidents: int
    incidents_last_quarter: int
    mttr_median_minutes: float | None
    mttr_median_minutes_last_quarter: float | None
    detection_median_minutes: float | None
    detection_median_minutes_last_quarter: float | None
    recurrence_rate: float | None
    recurrence_rate_last_quarter: float | None
    regression_tests_added: int
    regression_tests_added_last_quarter: int
    score: float | None
    score_last_quarter: float | None
    recurrence_target: float
    above_target: bool = Field(description="This quarter's recurrence rate is above the "
                                           "target (strictly).")


class DigestSummary(_Model):
    """``intel.digests`` value and the JSON artifact of a week.

    ``revision``, ``revised_at`` and ``changes`` belong to a published digest only:
    the first publication of a week is revision 1, a later one (late events changed
    the week) says when and what changed. An answer (``incident-intel tool``, the
    API) has none of the three."""

    week: str
    week_start: Timestamp
    week_end: Timestamp
    as_of: Timestamp
    revision: int | None = Field(
        default=None, ge=1, exclude_if=_absent,
        description="Published digests only: 1 for the first publication of the week, "
                    "then one more per revision.")
    revised_at: Timestamp | None = Field(
        default=None, exclude_if=_absent,
        description="Revisions only (revision > 1): the digest timer's clock when revised.")
    changes: list[DigestChange] | None = Field(
        default=None, exclude_if=_absent,
        description="Revisions only: what changed since the previous revision.")
    open_incidents_count: int
    recent_7d_count: int
    recent_30d_count: int
    by_severity: dict[str, int]
    top_services: list[KeyCount]
    top_kinds: list[KeyCount]
    high_recurrence: list[RecurrenceFinding]
    warn_recurrence: list[RecurrenceFinding]
    buckets: list[Bucket]
    followups: FollowUpOutcome
    recommendations: list[str]
    learning: DigestLearning | None = None
    alert_noise: AlertNoise | None = None
    correlation_quality: CorrelationQualityResponse | None = Field(
        default=None, exclude_if=_absent,
        description="Present when responders' verdicts label pairs whose target started in "
                    "the correlation_quality window ending at week_end.")


class WeeklyDigestResponse(_Model):
    week: str
    artifact_paths: list[str]
    markdown_preview: str
    json_summary: DigestSummary


class GateResponse(_Model):
    service: str
    profile: str
    mode: GateMode
    windows_days: list[int]
    pass_: bool = Field(alias="pass", serialization_alias="pass")
    skipped: bool
    has_high_recurrence: bool
    has_warn_recurrence: bool
    max_severity_seen: Severity | None
    high_signatures: list[str]
    high_kinds: list[str]
    total_incidents: int
    reasons: list[str]
    as_of: Timestamp = Field(description="The event time the gate judged at: the newest event "
                                         "applied, or later after a quiet period.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DurationStats(_Model):
    """Summary of durations in minutes; ``None`` when there is nothing to summarise."""

    count: int
    mean_minutes: float | None
    median_minutes: float | None
    p90_minutes: float | None


class QuarterVelocity(_Model):
    """``learning.velocity`` value, keyed ``YYYY-Qn``."""

    quarter: str
    incidents: int
    mttr: DurationStats
    detection_latency: DurationStats
    recurrences: int
    recurrence_rate: float | None
    recurrence_target: float
    above_target: bool
    regression_tests_added: int
    coverage_change: int | None
    score: float | None
    score_values: int


class Trend(_Model):
    """Whether the quarterly learning-velocity scores rise; quarters without a score are
    skipped, and both flags are ``None`` with fewer than two scored quarters."""

    scored_quarters: int
    monotonically_increasing: bool | None
    strictly_increasing: bool | None


class VelocityReport(_Model):
    """Learning velocity per quarter as of the replica's newest event."""

    as_of: Timestamp
    recurrence_target: float
    trend: Trend
    quarters: list[QuarterVelocity]


class LinkFeedbackRequest(BaseModel):
    """``POST /v1/feedback/links``: a responder's verdict on a pair of incidents."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    incident_id: Id
    related_incident_id: Id
    verdict: LinkVerdictValue
    by: Name | None = Field(default=None, description="Who judged (default: the token's role).")
    event_id: Id | None = Field(default=None, description="The verdict's id; give the same one "
                                                          "when retrying (default: a new id).")
    occurred_at: Timestamp | None = Field(
        default=None, description="When it was judged (default: the server's clock).")

    @field_validator("related_incident_id")
    @classmethod
    def _two_incidents(cls, value: str, info: ValidationInfo) -> str:
        return _other_incident(value, info)


class LinkFeedbackAccepted(_Model):
    """The verdict as published to ``learning.events`` and acknowledged there."""

    status: Literal["published"]
    topic: str
    event: LinkVerdict


class ToolError(_Model):
    code: str
    message: str


class ErrorResponse(_Model):
    error: ToolError


def dump_json(model: BaseModel) -> bytes:
    """Canonical bytes of a payload: JSON mode, aliases, keys in model order.

    pydantic-core writes the same bytes as ``orjson`` over the JSON-mode dump (UTF-8,
    no spaces, the same float forms) without building the intermediate dict.
    """
    return model.model_dump_json(by_alias=True).encode()
