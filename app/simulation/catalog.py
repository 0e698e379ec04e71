"""The simulation policy (``policy/simulation.yml``) and its validation.

The file holds the archetype catalog, the SEV-0..SEV-3 rubric, noise and red
herrings per difficulty, grading weights and the settings of the synthetic
stream. Teams add archetypes by adding entries; the model below rejects any
unknown key, unknown placeholder or inconsistent reference with
``file: field: reason`` (through :func:`app.policy.validate_document`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.contracts import Severity
from app.errors import UserError
from app.policyfile import PolicyError, check_template, default_policy_dir, load_file

Difficulty = Literal["easy", "medium", "hard"]
DIFFICULTIES: tuple[Difficulty, ...] = get_args(Difficulty)
SevLevel = Literal["SEV-0", "SEV-1", "SEV-2", "SEV-3"]
SEV_LEVELS: tuple[SevLevel, ...] = get_args(SevLevel)
Category = Literal["safety", "operational"]
Shape = Literal[
    "single_turn",
    "escalation",
    "drift",
    "decomposition",
    "coordinated",
    "encoded",
    "multi_session",
    "outage",
]
Anchor = Literal["before", "onset", "during", "end", "detection", "each_session"]
LogLevel = Literal["debug", "info", "warn", "error"]

Text = Annotated[str, Field(min_length=1)]
Score = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0)]

LINE_FIELDS = {"restricted", "topic", "part", "parts", "persona", "service", "status"}
MESSAGE_FIELDS = {
    "service", "involved", "other_service", "version", "host", "ip", "session", "value",
    "count", "alert", "actors",
}
HEADLINE_FIELDS = {"service", "alert", "detected_at", "initial_severity", "threshold"}
DEFAULT_POLICY_PATH = Path("policy") / "simulation.yml"


def _ordered(pair: tuple[int, int]) -> tuple[int, int]:
    if pair[0] > pair[1]:
        raise ValueError(f"range [{pair[0]}, {pair[1]}] is reversed")
    return pair


Span = Annotated[tuple[int, int], AfterValidator(_ordered)]
"""An inclusive ``[low, high]`` range of whole numbers."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _templates(where: str, texts: list[str], allowed: set[str]) -> None:
    for i, text in enumerate(texts):
        try:
            check_template(text, allowed)
        except ValueError as exc:
            raise ValueError(f"{where}.{i}: {exc}") from None


# ----------------------------------------------------------------- archetype parts


class ServicePools(_Strict):
    primary: Annotated[list[Text], Field(min_length=1)]
    involved: list[Text] = Field(default_factory=list)


class TrajectorySpec(_Strict):
    """How the conversation of an archetype is shaped; see ``app.simulation.trajectory``."""

    shape: Shape
    exchanges: Span = (1, 1)
    sessions: Span = (1, 1)
    actors: Span = (1, 1)
    gap_seconds: Span = (30, 120)
    session_gap_minutes: Span = (60, 600)
    window_minutes: Span = (10, 30)
    duration_minutes: Span = (20, 60)
    score_start: Score = 0.05
    score_end: Score = 0.5
    blocking: bool = True
    stop: Literal["block", "refuse"] = "block"
    delivery_probability: Score = 0.5
    failure_share: Score = 0.5
    failure_status: Annotated[list[Annotated[int, Field(ge=100, le=599)]], Field(min_length=1)] = [
        503
    ]
    failure_latency_ms: Span = (50, 500)
    normal_latency_ms: Span = (300, 1200)
    topics: list[Text] = Field(default_factory=lambda: ["restricted topic"])
    personas: list[Text] = Field(default_factory=lambda: ["UNBOUND"])
    intents: list[Text] = Field(default_factory=list)
    user_lines: Annotated[list[Text], Field(min_length=1)]
    assistant_lines: Annotated[list[Text], Field(min_length=1)]
    follow_ups: Annotated[list[Text], Field(min_length=1)] = [
        "Go on.", "Continue, with a bit more detail.", "Keep going.", "And then?",
    ]
    delivered_line: Text = "[[placeholder: restricted content; not reproduced in simulations]]"
    refusal_line: Text = "I can't help with that."
    success_line: Text = "[[placeholder: ordinary helpful answer]]"

    @model_validator(mode="after")
    def _check(self) -> TrajectorySpec:
        lines = [*self.user_lines, *self.assistant_lines, *self.follow_ups]
        lines += [self.delivered_line, self.refusal_line, self.success_line]
        _templates("lines", lines, LINE_FIELDS)
        if self.shape == "drift" and not self.intents:
            raise ValueError("intents: a drift trajectory needs at least one intent")
        return self


class ClueSpec(_Strict):
    """A log line (or several) that carries evidence of the real cause."""

    at: Anchor
    offset_minutes: Span = (0, 0)
    repeat: Span = (1, 1)
    service: Text = "primary"
    level: LogLevel = "info"
    event: Text
    message: Text
    session: bool = False
    ramp: tuple[float, float] | None = None
    count: Span = (1, 1)
    only_if: Literal["delivered", "stopped"] | None = None

    @model_validator(mode="after")
    def _check(self) -> ClueSpec:
        _templates("message", [self.message], MESSAGE_FIELDS)
        return self


class Detection(_Strict):
    after: Literal["onset", "end"]
    delay_minutes: Span
    initial_severity: Severity


class Resolution(_Strict):
    mitigate_minutes: Span
    resolve_minutes: Span


class RootCauseSpec(_Strict):
    key: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    sentence: Text
    keywords: list[Text] = Field(default_factory=list)


class SeverityHints(_Strict):
    """Start at ``base``; each condition met raises the severity by one level."""

    base: SevLevel
    raise_if_delivered: bool = False
    raise_if_users_at_least: Annotated[int, Field(gt=0)] | None = None
    raise_if_sessions_at_least: Annotated[int, Field(gt=0)] | None = None
    raise_if_duration_minutes_at_least: Annotated[int, Field(gt=0)] | None = None


class ActionSpec(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    action: Text
    keywords: Annotated[list[Text], Field(min_length=1)]


class CoverSpec(_Strict):
    aspect: Text
    keywords: Annotated[list[Text], Field(min_length=1)]


class RegressionSpec(_Strict):
    name: Text
    description: Text
    covers: Annotated[list[CoverSpec], Field(min_length=1)]


class Archetype(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    difficulty: Difficulty
    category: Category
    kind: Text
    alert: Text
    title: Text
    scenario: Text
    services: ServicePools
    trajectory: TrajectorySpec
    clues: list[ClueSpec] = Field(default_factory=list)
    detection: Detection
    resolution: Resolution
    root_cause: RootCauseSpec
    severity: SeverityHints
    remediation: Annotated[list[ActionSpec], Field(min_length=1)]
    regression_test: RegressionSpec

    @model_validator(mode="after")
    def _check(self) -> Archetype:
        _templates("title", [self.title], HEADLINE_FIELDS)
        _templates("scenario", [self.scenario], HEADLINE_FIELDS)
        ids = [a.id for a in self.remediation]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"remediation: action id listed twice: {', '.join(dupes)}")
        outage = self.trajectory.shape == "outage"
        if outage != (self.category == "operational"):
            raise ValueError(
                "trajectory.shape: operational archetypes use the outage shape, "
                "safety archetypes a conversation shape"
            )
        return self


# ------------------------------------------------------------------ other sections


class Platform(_Strict):
    gateway: Text = "gateway"
    classifier: Text = "safety-classifier"
    block_threshold: Score = 0.85


class RubricLevel(_Strict):
    level: SevLevel
    priority: Severity
    meaning: Text
    example: Text


class DifficultySettings(_Strict):
    benign_sessions: Count
    noise_logs: Count
    red_herrings: Count


class BenignLine(_Strict):
    user: Text
    assistant: Text


class NoiseLog(_Strict):
    level: LogLevel = "info"
    event: Text
    message: Text


class Noise(_Strict):
    benign_lines: Annotated[list[BenignLine], Field(min_length=1)]
    logs: Annotated[list[NoiseLog], Field(min_length=1)]


class RedHerringSpec(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    applies_to: Annotated[list[Category], Field(min_length=1)]
    type: Literal["log", "flagged_session"] = "log"
    at: Literal["before", "onset", "during"] = "during"
    offset_minutes: Span = (0, 0)
    repeat: Span = (1, 1)
    service: Text = "other"
    level: LogLevel = "warn"
    event: Text
    message: Text
    ramp: tuple[float, float] | None = None
    user_line: Text | None = None
    looks_like: Text
    rules_out: Text
    lure: Annotated[list[Text], Field(min_length=1)]

    @model_validator(mode="after")
    def _check(self) -> RedHerringSpec:
        _templates("message", [self.message], MESSAGE_FIELDS)
        _templates("looks_like", [self.looks_like], MESSAGE_FIELDS)
        _templates("rules_out", [self.rules_out], MESSAGE_FIELDS)
        _templates("lure", self.lure, MESSAGE_FIELDS)
        if self.type == "flagged_session" and not self.user_line:
            raise ValueError("user_line: a flagged_session red herring needs a user_line")
        return self


class Weights(_Strict):
    severity: Annotated[float, Field(ge=0)]
    root_cause: Annotated[float, Field(ge=0)]
    blast_radius: Annotated[float, Field(ge=0)]
    remediation: Annotated[float, Field(ge=0)]
    regression_test: Annotated[float, Field(ge=0)]

    @model_validator(mode="after")
    def _sum(self) -> Weights:
        total = sum(self.model_dump().values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights must add up to 1 (they add up to {total:g})")
        return self


class Grading(_Strict):
    weights: Weights
    severity_one_off_credit: Score = 0.5
    root_cause_partial_credit: Score = 0.5
    red_herring_penalty: Score = 0.05
    time_limit_minutes: Annotated[int, Field(gt=0)] = 45


class RecurrencePlant(_Strict):
    count: Annotated[int, Field(ge=2, le=50)]
    severity: Literal["P0", "P1", "P2", "P3"] | None = None
    """Severity of every incident of the pattern (default: drawn like the background)."""
    left_open: Annotated[int, Field(ge=0)] = 0
    """The newest ``left_open`` incidents stay open (acknowledged, never mitigated)."""

    @model_validator(mode="after")
    def _open_within_count(self) -> RecurrencePlant:
        if self.left_open > self.count:
            raise ValueError(f"left_open: {self.left_open} is more than count {self.count}")
        return self


class AlertPlant(_Strict):
    """An alert with no incident: ``flapping`` fires in one burst, ``unlinked`` once in a while."""

    shape: Literal["flapping", "unlinked"]
    firings: Annotated[int, Field(ge=2, le=50)]


class ClusterPlant(_Strict):
    shape: Literal["cross_service", "same_service"]
    size: Annotated[int, Field(ge=2, le=8)]


class StreamDifficulty(_Strict):
    """What a difficulty of the stream changes (unset: as the stream settings say).

    Harder streams are harder to correlate: more background incidents coincide
    by chance, decoys start inside a cluster's window sharing its kind or
    service without belonging to it, and a cluster's incidents spread over more
    time than the policy's ``within_minutes``."""

    background_per_day: Annotated[float, Field(ge=0, le=10000)] | None = None
    decoys_per_cluster: Annotated[int, Field(ge=0, le=20)] | None = None
    cluster_reach_minutes: Annotated[int, Field(gt=0, le=1440)] | None = None


class FirstRun(_Strict):
    """What the history of a first ``incident-intel run`` uses instead of the stream's
    own background and alert noise: a calm team's weeks, so that the planted
    patterns are what stands out on the dashboard."""

    background_per_day: Annotated[float, Field(ge=0, le=10000)] = 0.7
    alert_noise_per_day: Annotated[float, Field(ge=0, le=10000)] = 1


class StreamSettings(_Strict):
    """The synthetic stream; the defaults mirror ``policy/simulation.yml``.

    Except ``alerts``: none unless the policy plants some (it plants a
    flapping and an unlinked one), so a stream built from these defaults keeps
    the records it had before alerts were planted.
    """

    span_days: Annotated[float, Field(gt=0, le=30)] = 6
    background_per_day: Annotated[float, Field(ge=0, le=10000)] = 8
    alert_noise_per_day: Annotated[float, Field(ge=0, le=10000)] | None = None
    """Alert episodes no incident names (pending, firing, resolved) per day of event
    time; the rest of the record budget is incident state re-sends. ``None``: about
    half of the budget left after the incidents, as a load test wants."""
    services: Annotated[list[Text], Field(min_length=4)] = [
        "gateway", "assistant-chat", "checkout", "search", "billing", "recommendations",
        "notifications", "inference-worker", "queue-consumer", "storage", "auth",
    ]
    kinds: Annotated[list[Text], Field(min_length=4)] = [
        "error_rate", "latency", "oom", "crashloop", "disk", "security", "queue", "network",
    ]
    recurrence: list[RecurrencePlant] = [RecurrencePlant(count=7, severity="P1", left_open=1),
                                         RecurrencePlant(count=4)]
    clusters: list[ClusterPlant] = [
        ClusterPlant(shape="cross_service", size=4),
        ClusterPlant(shape="same_service", size=3),
    ]
    alerts: list[AlertPlant] = []
    decoys_per_cluster: Annotated[int, Field(ge=0, le=20)] = 0
    """Unrelated incidents started inside each cluster's window, sharing its kind
    (``cross_service``) or its service (``same_service``)."""
    cluster_reach_minutes: Annotated[int, Field(gt=0, le=1440)] | None = None
    """Most minutes between a cluster's first and last start (default: 90 for
    ``cross_service``, 120 for ``same_service``)."""
    difficulties: dict[Difficulty, StreamDifficulty] = {}
    """``--difficulty`` of ``simulate stream`` and ``simulate evaluate``."""
    first_run: FirstRun = FirstRun()
    """The calm background of the first run's history (``first_run_feed``)."""

    def at_difficulty(self, difficulty: Difficulty) -> StreamSettings:
        """These settings with one difficulty's changes applied."""
        profile = self.difficulties.get(difficulty)
        if profile is None:
            known = ", ".join(self.difficulties) or "none"
            raise UserError(f"stream.difficulties: no {difficulty!r} profile in the simulation "
                            f"policy (it has: {known})")
        return self.model_copy(update=profile.model_dump(exclude_none=True))

    def for_first_run(self) -> StreamSettings:
        """These settings with the first run's background and alert noise."""
        return self.model_copy(update=self.first_run.model_dump())

    @model_validator(mode="after")
    def _check(self) -> StreamSettings:
        if len(set(self.services)) != len(self.services):
            raise ValueError("services: a service is listed twice")
        if len(set(self.kinds)) != len(self.kinds):
            raise ValueError("kinds: a kind is listed twice")
        # Planted patterns use disjoint services and kinds so that they never relate.
        kinds = len(self.recurrence) + sum(
            1 if c.shape == "cross_service" else c.size for c in self.clusters)
        services = len(self.recurrence) + sum(
            c.size if c.shape == "cross_service" else 1 for c in self.clusters)
        if kinds > len(self.kinds):
            raise ValueError(f"kinds: the planted patterns need {kinds} distinct kinds, "
                             f"{len(self.kinds)} listed")
        if services > len(self.services):
            raise ValueError(f"services: the planted patterns need {services} distinct "
                             f"services, {len(self.services)} listed")
        return self


# ------------------------------------------------------------------------ the file


class SimulationPolicy(_Strict):
    """``simulation.yml``."""

    version: Literal[1] = 1
    services: Annotated[list[Text], Field(min_length=2)]
    platform: Platform = Platform()
    severity_rubric: Annotated[list[RubricLevel], Field(min_length=4, max_length=4)]
    difficulty: dict[Difficulty, DifficultySettings]
    noise: Noise
    red_herrings: list[RedHerringSpec] = Field(default_factory=list)
    grading: Grading
    stream: StreamSettings = StreamSettings()
    archetypes: Annotated[list[Archetype], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> SimulationPolicy:
        levels = [r.level for r in self.severity_rubric]
        if levels != list(SEV_LEVELS):
            raise ValueError(f"severity_rubric: levels must be {', '.join(SEV_LEVELS)} in order")
        missing = [d for d in DIFFICULTIES if d not in self.difficulty]
        if missing:
            raise ValueError(f"difficulty: missing {', '.join(missing)}")
        known = set(self.services)
        names = [a.name for a in self.archetypes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"archetypes: name listed twice: {', '.join(dupes)}")
        for i, arch in enumerate(self.archetypes):
            for name in [*arch.services.primary, *arch.services.involved]:
                if name not in known:
                    raise ValueError(f"archetypes.{i}.services: unknown service {name!r}")
            for j, clue in enumerate(arch.clues):
                if clue.service not in {"primary", "involved", "other"} | known:
                    raise ValueError(
                        f"archetypes.{i}.clues.{j}.service: unknown service {clue.service!r}"
                    )
                if clue.service == "involved" and not arch.services.involved:
                    raise ValueError(
                        f"archetypes.{i}.clues.{j}.service: the archetype has no involved service"
                    )
        for d in DIFFICULTIES:
            if not any(a.difficulty == d for a in self.archetypes):
                raise ValueError(f"archetypes: no archetype of difficulty {d}")
        for i, herring in enumerate(self.red_herrings):
            if herring.service not in {"other"} | known:
                raise ValueError(
                    f"red_herrings.{i}.service: unknown service {herring.service!r}"
                )
        ids = [h.id for h in self.red_herrings]
        if len(set(ids)) != len(ids):
            raise ValueError("red_herrings: an id is listed twice")
        for name in self.stream.services:
            if name not in known:
                raise ValueError(f"stream.services: unknown service {name!r}")
        for name in (self.platform.gateway, self.platform.classifier):
            if name not in known:
                raise ValueError(f"platform: unknown service {name!r}")
        return self

    # ---------------------------------------------------------------- look-ups

    def archetype(self, name: str) -> Archetype:
        for arch in self.archetypes:
            if arch.name == name:
                return arch
        known = ", ".join(a.name for a in self.archetypes)
        raise PolicyError(f"unknown archetype {name!r} (known: {known})")

    def pool(self, difficulty: str) -> list[Archetype]:
        return [a for a in self.archetypes if a.difficulty == difficulty]

    def root_cause_keys(self) -> list[str]:
        return sorted({a.root_cause.key for a in self.archetypes})

    def rubric(self, level: str) -> RubricLevel:
        return self.severity_rubric[SEV_LEVELS.index(level)]


def as_difficulty(value: str) -> Difficulty:
    """``value`` as one of :data:`DIFFICULTIES`, or one clear error."""
    for known in DIFFICULTIES:
        if value == known:
            return known
    raise UserError(f"difficulty: {value!r} is not one of {', '.join(DIFFICULTIES)}")


def default_policy_path() -> Path:
    """``simulation.yml`` of the default policy directory (see ``default_policy_dir``)."""
    return default_policy_dir() / DEFAULT_POLICY_PATH.name


def load_simulation_policy(path: str | Path | None = None) -> SimulationPolicy:
    """Read and validate the simulation policy; a problem raises ``PolicyError``."""
    return load_file(Path(path) if path is not None else default_policy_path(), SimulationPolicy)
