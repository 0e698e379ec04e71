"""Reading one policy file, and where the policy files live.

A bad file stops the program with one line, ``file: field: reason``, before
anything runs. The default policy ships inside the package (``app/defaults``,
read with :mod:`importlib.resources`), so an installed wheel works from any
working directory; the top-level ``policy/`` of a checkout links to it.
"""

from __future__ import annotations

import os
import re
import string
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from app.errors import UserError

M = TypeVar("M", bound=BaseModel)

POLICY_DIR_HELP = (
    "Policy directory [default: $INTEL_POLICY_DIR, else ./policy, else the bundled one]."
)


class PolicyError(UserError):
    """A policy file that cannot be used; the message is ``file: field: reason``."""


class StrictModel(BaseModel):
    """A policy section: unknown keys are errors, values never change once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def bundled_path(*parts: str) -> Path:
    """A file or directory under ``app/defaults`` of the installed package.

    Wheels and editable installs both unpack the package onto the file system,
    so the resource is a real path; anything else is reported, not guessed.
    """
    resource = files("app").joinpath("defaults", *parts)
    if not isinstance(resource, Path):
        raise UserError(f"app/defaults/{'/'.join(parts)}: package is not on the file system")
    return resource


def bundled_policy_dir() -> Path:
    """The default policy shipped inside the package."""
    return bundled_path("policy")


def default_policy_dir() -> Path:
    """``$INTEL_POLICY_DIR``, else ``./policy``, else :func:`bundled_policy_dir`.

    Resolved when called, never at import, so every command works from any
    working directory of a checkout or an installed wheel.
    """
    configured = os.environ.get("INTEL_POLICY_DIR")
    if configured:
        return Path(configured)
    return local_or_bundled_policy_dir()


def local_or_bundled_policy_dir() -> Path:
    """``./policy`` when there is one, else :func:`bundled_policy_dir` (the worker's
    default when ``INTEL_POLICY_DIR`` is unset)."""
    local = Path("policy")
    return local if local.is_dir() else bundled_policy_dir()


def _placeholders(template: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"malformed template {template!r}: {exc}") from None


def check_template(template: str, allowed: set[str]) -> str:
    """Reject templates whose ``{placeholders}`` the renderer cannot fill."""
    unknown = _placeholders(template) - allowed
    if unknown:
        names = ", ".join(sorted(unknown))
        raise ValueError(f"unknown placeholder {{{names}}} (allowed: {', '.join(sorted(allowed))})")
    return template


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def validate_document(file_name: str, document: Any, model: type[M]) -> M:
    """Validate one parsed YAML document, raising ``file: field: reason``."""
    if not isinstance(document, dict):
        raise PolicyError(f"{file_name}: (top level): expected a mapping")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _location(err["loc"]) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        # A model-level check reports its own field path inside the message.
        nested = re.match(r"^([A-Za-z0-9_.]+): (.*)$", message)
        if nested and err["type"] == "value_error":
            prefix = f"{field}." if err["loc"] else ""
            field, message = prefix + nested.group(1), nested.group(2)
        raise PolicyError(f"{file_name}: {field}: {message}") from None


def read_yaml(path: Path, error: type[UserError] = UserError) -> Any:
    """Parse a YAML file; any problem becomes one ``error`` line naming file and place."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: (file): missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise error(f"{path}: (file): cannot read: {reason}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(yaml)"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{path}: {where}: invalid YAML: {problem}") from None


def load_file(path: Path, model: type[M]) -> M:
    """Read and validate one policy file."""
    return validate_document(str(path), read_yaml(path, PolicyError), model)
