"""A participant's ``answers.yml`` and its validation.

Every field is optional (an unanswered task scores zero) but unknown fields
and wrong types are refused with ``file: field: reason`` so a typo does not
silently cost points. Lenient where people differ harmlessly: the severity may
be written ``SEV-1``, ``sev1``, ``1`` or ``P1``; a single string is accepted
where a list is expected; ``root_cause`` may be a plain string.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from app.errors import UserError
from app.policyfile import read_yaml
from app.simulation.catalog import SevLevel


class AnswersError(UserError):
    """An answers file that cannot be graded; the message names the field."""


def _severity(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(?:sev|p)?[\s_-]*([0-3])\s*", value, flags=re.IGNORECASE)
        if match:
            return f"SEV-{match.group(1)}"
    return value


def _text_list(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [v for v in value if not (isinstance(v, str) and not v.strip()) and v is not None]
    return value


def _root_cause(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", text):
            return {"key": text}
        return {"summary": text}
    return value


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


TextList = Annotated[list[str], BeforeValidator(_text_list)]
OptionalText = Annotated[str | None, BeforeValidator(_blank_to_none)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RootCauseAnswer(_Strict):
    key: OptionalText = None
    summary: str = ""


class BlastRadiusAnswer(_Strict):
    sessions: Annotated[int, Field(ge=0)] | None = None
    users: Annotated[int, Field(ge=0)] | None = None
    services: TextList = Field(default_factory=list)
    duration_minutes: Annotated[float, Field(ge=0)] | None = None


class Answers(_Strict):
    """The answers file; see the README section "answers.yml"."""

    participant: OptionalText = None
    simulation_id: OptionalText = None
    severity: Annotated[SevLevel | None, BeforeValidator(_severity)] = None
    severity_rationale: OptionalText = None
    root_cause: Annotated[RootCauseAnswer | None, BeforeValidator(_root_cause)] = None
    blast_radius: BlastRadiusAnswer | None = None
    remediation: TextList = Field(default_factory=list)
    regression_tests: TextList = Field(default_factory=list)
    ruled_out: TextList = Field(default_factory=list)
    notes: OptionalText = None


def _reason(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown field (see the answers.yml format in the README)"
    elif err["type"] == "literal_error" and where == "severity":
        message = f"expected SEV-0, SEV-1, SEV-2 or SEV-3, got {err.get('input')!r}"
    return f"{where}: {message}"


def parse_answers(document: Any, name: str = "answers") -> Answers:
    """Validate a parsed YAML document (``None``, an empty file, means no answers)."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise AnswersError(f"{name}: (top level): expected a mapping of fields, "
                           f"got {type(document).__name__}")
    try:
        return Answers.model_validate(document)
    except ValidationError as exc:
        raise AnswersError(f"{name}: {_reason(exc)}") from None


def load_answers(path: str | Path) -> Answers:
    path = Path(path)
    return parse_answers(read_yaml(path, AnswersError), str(path))
