"""Scoring a participant's answers against an answer key.

Each task scores between 0 and 1 and is weighted by the key's grading rules:

- severity: exact 1, one level off ``severity_one_off_credit``, otherwise 0;
- root cause: the expected key 1; another or no key but a summary naming the
  mechanism (one of the root cause's keywords) ``root_cause_partial_credit``
  (for a replayed root cause outside the catalog, key ``other``, full credit
  needs the key and a summary naming the mechanism);
- blast radius: 1 minus the mean error of sessions, users and duration
  (relative error, capped at 1) and services (1 minus the Jaccard overlap);
- remediation: share of the expected actions an answer mentions (its id or
  one of its keywords);
- regression test: share of the test's aspects the answers mention.

Each red herring chased (one of its specific terms in the root cause or the
remediation, and not in ``ruled_out``) subtracts ``red_herring_penalty``. The
total is clamped to 0..1. Matching is case-insensitive on
keywords (a keyword matches at the start of a word; one of three characters or
fewer only as a whole word), so it rewards naming the mechanism, not copying
the key's wording.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from app.simulation.answers import Answers, AnswersError
from app.simulation.catalog import SEV_LEVELS
from app.simulation.models import AnswerKey, RedHerring

OTHER_KEY = "other"
"""Expected for a root cause outside the catalog: the key alone earns partial credit."""
TASK_NAMES: tuple[str, ...] = (
    "severity", "root_cause", "blast_radius", "remediation", "regression_test",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeverityGrade(_Model):
    answer: str | None
    expected: str
    verdict: Literal["exact", "one_off", "wrong", "missing"]
    score: float


class RootCauseGrade(_Model):
    answer_key: str | None
    answer_summary: str
    expected_key: str
    verdict: Literal["matched", "partial", "missed"]
    score: float


class FieldError(_Model):
    field: str
    answer: float | None
    expected: float
    error: float


class BlastRadiusGrade(_Model):
    fields: list[FieldError]
    services_answered: list[str]
    services_expected: list[str]
    services_missing: list[str]
    services_extra: list[str]
    error: float
    score: float


class CoverageGrade(_Model):
    covered: list[str]
    missed: list[str]
    coverage: float
    score: float


class HerringGrade(_Model):
    id: str
    status: Literal["chased", "ruled_out", "ignored"]
    looks_like: str
    rules_out: str


class Grade(_Model):
    simulation_id: str
    participant: str | None
    severity: SeverityGrade
    root_cause: RootCauseGrade
    blast_radius: BlastRadiusGrade
    remediation: CoverageGrade
    regression_test: CoverageGrade
    red_herrings: list[HerringGrade]
    penalty: float
    weights: dict[str, float]
    total: float
    percent: int


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def _pattern(term: str) -> re.Pattern[str]:
    """A term matches at a word start; short terms (3 characters or fewer) as whole words."""
    term = _norm(term)
    tail = r"(?![a-z0-9])" if len(term) <= 3 else ""
    return re.compile(r"(?<![a-z0-9])" + re.escape(term) + tail)


def _mentions(text: str, terms: list[str]) -> bool:
    text = _norm(text)
    return bool(text) and any(_pattern(t).search(text) for t in terms if t.strip())


def _key(value: str | None) -> str | None:
    if not value:
        return None
    return re.sub(r"[\s-]+", "_", value.strip().lower())


def grade_severity(key: AnswerKey, answers: Answers) -> SeverityGrade:
    expected = key.expected.severity.level
    if answers.severity is None:
        return SeverityGrade(answer=None, expected=expected, verdict="missing", score=0.0)
    gap = abs(SEV_LEVELS.index(answers.severity) - SEV_LEVELS.index(expected))
    if gap == 0:
        verdict, score = "exact", 1.0
    elif gap == 1:
        verdict, score = "one_off", key.grading.severity_one_off_credit
    else:
        verdict, score = "wrong", 0.0
    return SeverityGrade(answer=answers.severity, expected=expected, verdict=verdict, score=score)


def grade_root_cause(key: AnswerKey, answers: Answers) -> RootCauseGrade:
    expected = key.expected.root_cause
    given = answers.root_cause
    answer_key = _key(given.key) if given else None
    summary = given.summary if given else ""
    named = _mentions(summary, expected.keywords)
    if answer_key == expected.key and (expected.key != OTHER_KEY or named):
        verdict, score = "matched", 1.0
    elif named or answer_key == expected.key:
        verdict, score = "partial", key.grading.root_cause_partial_credit
    else:
        verdict, score = "missed", 0.0
    return RootCauseGrade(answer_key=answer_key, answer_summary=summary,
                          expected_key=expected.key, verdict=verdict, score=score)


def _relative(answer: float | None, expected: float) -> float:
    if answer is None:
        return 1.0
    return round(min(1.0, abs(answer - expected) / max(expected, 1.0)), 4)


def grade_blast_radius(key: AnswerKey, answers: Answers) -> BlastRadiusGrade:
    exp = key.expected.blast_radius
    given = answers.blast_radius
    pairs = [
        ("sessions", given.sessions if given else None, exp.sessions),
        ("users", given.users if given else None, exp.users),
        ("duration_minutes", given.duration_minutes if given else None, exp.duration_minutes),
    ]
    fields = [FieldError(field=name, answer=a, expected=e, error=_relative(a, e))
              for name, a, e in pairs]
    answered = sorted({_norm(s) for s in (given.services if given else [])})
    expected = sorted({_norm(s) for s in exp.services})
    union = set(answered) | set(expected)
    overlap = len(set(answered) & set(expected)) / len(union) if union else 1.0
    errors = [f.error for f in fields] + [round(1.0 - overlap, 4)]
    error = round(sum(errors) / len(errors), 4)
    return BlastRadiusGrade(
        fields=fields,
        services_answered=answered,
        services_expected=expected,
        services_missing=[s for s in expected if s not in answered],
        services_extra=[s for s in answered if s not in expected],
        error=error,
        score=round(1.0 - error, 4),
    )


def grade_remediation(key: AnswerKey, answers: Answers) -> CoverageGrade:
    covered: list[str] = []
    missed: list[str] = []
    for action in key.expected.remediation:
        terms = [action.id, action.id.replace("_", " "), *action.keywords]
        hit = any(_mentions(item, terms) for item in answers.remediation)
        (covered if hit else missed).append(action.id)
    total = len(covered) + len(missed)
    coverage = round(len(covered) / total, 4) if total else 0.0
    return CoverageGrade(covered=covered, missed=missed, coverage=coverage, score=coverage)


def grade_regression_test(key: AnswerKey, answers: Answers) -> CoverageGrade:
    text = " ".join(answers.regression_tests)
    covered: list[str] = []
    missed: list[str] = []
    for aspect in key.expected.regression_test.covers:
        (covered if _mentions(text, aspect.keywords) else missed).append(aspect.aspect)
    total = len(covered) + len(missed)
    coverage = round(len(covered) / total, 4) if total else 0.0
    return CoverageGrade(covered=covered, missed=missed, coverage=coverage, score=coverage)


def grade_red_herrings(herrings: list[RedHerring], answers: Answers) -> list[HerringGrade]:
    rc = answers.root_cause
    pursued = " ".join([rc.key or "", rc.summary] if rc else []) + " " + " ".join(
        answers.remediation)
    dismissed = " ".join(answers.ruled_out)
    out = []
    for herring in herrings:
        if _mentions(dismissed, herring.lure_terms):
            status = "ruled_out"
        elif _mentions(pursued, herring.lure_terms):
            status = "chased"
        else:
            status = "ignored"
        out.append(HerringGrade(id=herring.id, status=status, looks_like=herring.looks_like,
                                rules_out=herring.rules_out))
    return out


def grade(key: AnswerKey, answers: Answers) -> Grade:
    """Score ``answers`` against ``key``; refuses answers written for another exercise."""
    if answers.simulation_id and answers.simulation_id != key.simulation_id:
        raise AnswersError(
            f"simulation_id: the answers are for {answers.simulation_id!r} but the key is "
            f"for {key.simulation_id!r}"
        )
    severity = grade_severity(key, answers)
    root_cause = grade_root_cause(key, answers)
    blast_radius = grade_blast_radius(key, answers)
    remediation = grade_remediation(key, answers)
    regression_test = grade_regression_test(key, answers)
    scores = {"severity": severity.score, "root_cause": root_cause.score,
              "blast_radius": blast_radius.score, "remediation": remediation.score,
              "regression_test": regression_test.score}
    herrings = grade_red_herrings(key.red_herrings, answers)
    weights = {name: key.grading.weights.get(name, 0.0) for name in TASK_NAMES}
    penalty = round(key.grading.red_herring_penalty
                    * sum(h.status == "chased" for h in herrings), 4)
    raw = sum(weights[name] * scores[name] for name in TASK_NAMES) - penalty
    total = round(min(1.0, max(0.0, raw)), 4)
    return Grade(
        simulation_id=key.simulation_id,
        participant=answers.participant,
        red_herrings=herrings,
        penalty=penalty,
        weights=weights,
        total=total,
        percent=round(total * 100),
        severity=severity,
        root_cause=root_cause,
        blast_radius=blast_radius,
        remediation=remediation,
        regression_test=regression_test,
    )
