"""The simulation's own documents: a simulated incident and its answer key.

Both are pydantic models whose field order is the JSON key order, so dumping
the same model gives the same bytes (:func:`to_json`). Time stamps use the
contract's ``Timestamp`` (RFC 3339, UTC, ``Z``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.contracts import AlertTransition, IncidentEvent, Severity, Timestamp
from app.simulation.catalog import Category, Difficulty, SevLevel

GENERATOR_VERSION = 1
"""Bump when the same seed and catalog would produce different output."""

Event = Annotated[IncidentEvent | AlertTransition, Field(discriminator="type")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -------------------------------------------------------------------- evidence


class TurnSignals(_Model):
    """What the platform measured on one turn; a signal that does not apply is null."""

    policy_score: float | None = None
    output_score: float | None = None
    intent: str | None = None
    blocked: bool | None = None
    status: int | None = None
    latency_ms: int | None = None


class Turn(_Model):
    turn: int
    at: Timestamp
    session_id: str
    actor_id: str
    role: Literal["user", "assistant"]
    content: str
    signals: TurnSignals


class LogLine(_Model):
    ts: Timestamp
    level: Literal["debug", "info", "warn", "error"]
    service: str
    event: str
    session: str | None
    trace_id: str
    message: str


# ------------------------------------------------------------- expected answers


class RootCause(_Model):
    key: str
    sentence: str
    keywords: list[str] = Field(default_factory=list)


class SeverityFinding(_Model):
    level: SevLevel
    priority: Severity
    rationale: str


class BlastRadius(_Model):
    sessions: int
    users: int
    services: list[str]
    session_ids: list[str]
    user_ids: list[str]
    start: Timestamp
    end: Timestamp
    duration_minutes: int


class Action(_Model):
    id: str
    action: str
    keywords: list[str]


class Aspect(_Model):
    aspect: str
    keywords: list[str]


class RegressionTest(_Model):
    name: str
    description: str
    covers: list[Aspect]


class ExpectedFindings(_Model):
    root_cause: RootCause
    severity: SeverityFinding
    blast_radius: BlastRadius
    remediation: list[Action]
    regression_test: RegressionTest


class RedHerring(_Model):
    id: str
    looks_like: str
    rules_out: str
    lure_terms: list[str]


# --------------------------------------------------------------------- documents


class SimulatedIncident(_Model):
    """One generated incident: the evidence, the events and the expected findings."""

    generator_version: int = GENERATOR_VERSION
    simulation_id: str
    seed: int
    difficulty: Difficulty
    archetype: str
    category: Category
    kind: str
    title: str
    scenario: str
    service: str
    alert: str
    detected_at: Timestamp
    initial_severity: Severity
    block_threshold: float
    trajectory: list[Turn]
    logs: list[LogLine]
    events: list[Event]
    red_herrings: list[RedHerring]
    expected: ExpectedFindings


class GradingRules(_Model):
    weights: dict[str, float]
    severity_one_off_credit: float
    root_cause_partial_credit: float
    red_herring_penalty: float


class AnswerKey(_Model):
    """Everything a facilitator needs to grade; never shown to participants."""

    key_version: Literal[1] = 1
    simulation_id: str
    source: Literal["synthetic", "replay"]
    difficulty: Difficulty
    archetype: str | None
    title: str
    root_cause_keys: list[str]
    expected: ExpectedFindings
    red_herrings: list[RedHerring]
    grading: GradingRules
    postmortem: str | None = None
    withheld: list[str] = Field(default_factory=list)


def to_json(model: BaseModel) -> str:
    """Stable, indented JSON of a model (key order = field order) with a final newline."""
    return model.model_dump_json(indent=2) + "\n"
