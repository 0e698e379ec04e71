"""Correlation quality at the command line: `policy suggest` and `simulate evaluate`.

Both answer the engine's ``correlation_quality`` over files or a simulated
stream, against responders' verdicts (``incident.linked`` events) or a
simulation's planted truth (``simulate stream --truth FILE``). The rules and
the suggestion are the engine's (:mod:`app.intel.quality`); this module reads
the files, prints and formats.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from pydantic import ValidationError

from app.cli.history import history_options, load_history, parse_as_of
from app.contracts import CorrelationQualityResponse, Event, format_timestamp
from app.errors import UserError
from app.intel.engine import IntelEngine
from app.policy import Policy, load_policy
from app.simulation.feed import StreamTruth, truth_groups

WINDOW_OPTION = click.option(
    "--window-days", type=click.IntRange(1, 3660), default=None,
    help="Pairs whose judged incident started in this many days up to as_of (the newest "
         "event, or --as-of) [default: correlation_quality.window_days of the policy].")


def read_truth(path: str) -> StreamTruth:
    """A truth file written by ``simulate stream --truth``; one line when it is not one."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return StreamTruth.model_validate_json(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise UserError(f"{path}: {where}: {err['msg']} (is this a truth file written by "
                        "`simulate stream --truth`?)") from None


def assess(policy: Policy, events: list[Event], as_of: datetime, window_days: int | None,
           truth: StreamTruth | None) -> CorrelationQualityResponse:
    """The engine over ``events`` up to ``as_of``, scored against ``truth`` or the verdicts."""
    engine = IntelEngine(policy)
    engine.apply_until(events, as_of)
    if truth is None:
        return engine.quality_of(engine.verdict_labels(), as_of, window_days, "verdicts")
    return engine.quality_of(engine.truth_labels(truth_groups(truth)), as_of, window_days,
                             "planted_truth")


def _figure(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def patch_text(answer: CorrelationQualityResponse) -> str:
    """The suggestion's patch under comment lines saying what it is expected to do."""
    s = answer.suggestion
    assert s is not None
    before, after = s.expected.before, s.expected.after
    source = "responders' verdicts" if answer.source == "verdicts" else "planted truth"
    header = [
        f"# {answer.labelled_pairs} labelled pairs ({source}) whose incident started in the "
        f"{answer.window_days} days to {format_timestamp(answer.as_of)}",
        f"# expected F1 {_figure(before.f1)} -> {_figure(after.f1)}, precision "
        f"{_figure(before.precision)} -> {_figure(after.precision)}, recall "
        f"{_figure(before.recall)} -> {_figure(after.recall)} ({s.folds}-fold cross-validated)",
        "# paste into incident_intelligence.yml, replacing correlation.min_score and "
        "correlation.rules",
    ]
    return "\n".join(header) + "\n" + s.policy_patch


@click.command("suggest")
@history_options
@click.option("--truth", "truth_path", default=None, type=click.Path(dir_okay=False),
              help="Score against this planted truth (`simulate stream --truth`) instead of "
                   "the verdicts in the events.")
@WINDOW_OPTION
def suggest(event_files: tuple[str, ...], policy_dir: str | None, as_of_text: str | None,
            now_text: str | None, truth_path: str | None, window_days: int | None) -> None:
    """Print the correlation policy change correlation_quality suggests, as YAML.

    Labels are the responders' verdicts (incident.linked events) in the event
    files, or the planted truth of --truth. With no suggestion, stdout stays
    empty and the reason goes to stderr.
    """
    policy = load_policy(policy_dir)
    truth = read_truth(truth_path) if truth_path else None
    history = load_history(event_files, parse_as_of(as_of_text), now_text, policy.intel)
    answer = assess(policy, history.events, history.as_of, window_days, truth)
    if answer.suggestion is None:
        click.echo(f"incident-intel policy suggest: no suggestion: {answer.reason}", err=True)
        return
    click.echo(patch_text(answer), nl=False)
