"""The history an offline command answers from: event files, policy and ``--as-of``.

`tool` and `serve` take the same three options and read them the same way,
so a served answer and a printed one start from the same events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from pydantic import TypeAdapter, ValidationError

from app.contracts import Event, Timestamp
from app.errors import UserError
from app.eventfile import read_events, summary_line
from app.intel.watermark import future_skew_error
from app.policy import IntelPolicy
from app.policyfile import POLICY_DIR_HELP

F = TypeVar("F", bound=Callable[..., Any])
_TIMESTAMP = TypeAdapter(Timestamp)


def history_options(command: F) -> F:
    """``--events`` (repeatable), ``--policy``, ``--as-of`` and ``--now``."""
    command = click.option("--now", "now_text", default=None,
                           help="The receiving clock events may not run ahead of by more "
                                "than the policy's max_future_skew_minutes "
                                "(default: this machine's clock).")(command)
    command = click.option("--as-of", "as_of_text", default=None,
                           help="Answer as of this RFC 3339 time "
                                "(default: newest occurred_at).")(command)
    command = click.option("--policy", "policy_dir", default=None,
                           type=click.Path(file_okay=False), help=POLICY_DIR_HELP)(command)
    return click.option("--events", "event_files", multiple=True, required=True,
                        type=click.Path(dir_okay=False),
                        help="JSONL file of events (repeatable).")(command)


def parse_as_of(text: str | None, option: str = "--as-of") -> datetime | None:
    if text is None:
        return None
    try:
        return _TIMESTAMP.validate_python(text)
    except ValidationError:
        raise UserError(f"{option} {text!r} is not an RFC 3339 time") from None


@dataclass(frozen=True)
class History:
    events: list[Event]
    as_of: datetime


def load_history(event_files: tuple[str, ...], as_of: datetime | None, now_text: str | None,
                 policy: IntelPolicy) -> History:
    """Read the files (bad lines reported on stderr and skipped); ``as_of`` defaults
    to the newest ``occurred_at``. Events after ``as_of`` are kept: callers filter.

    An event more than ``max_future_skew_minutes`` ahead of ``--now`` (default:
    the clock) is reported and skipped, as the stream dead-letters it."""
    now = parse_as_of(now_text, "--now") or datetime.now(UTC)
    read = read_events(event_files,
                       lambda event: future_skew_error(event.occurred_at, now, policy))
    for problem in read.problems:
        click.echo(problem, err=True)
    click.echo(summary_line(read), err=True)
    if as_of is None:
        if not read.events:
            raise UserError("no valid events and no --as-of: nothing to answer from")
        as_of = max(e.occurred_at for e in read.events)
    return History(read.events, as_of)
