"""`incident-intel simulate …`: synthetic, replay and tabletop exercises, grading, a stream.

The commands are thin: they parse arguments, read and write files, read the
clock where a default needs "today" or "now", and call the pure functions of
``app.simulation``. Every problem a user can cause is a ``UserError`` (one
line, exit 2).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from pydantic import ValidationError

from app.cli.quality import WINDOW_OPTION
from app.errors import UserError
from app.simulation.answers import load_answers
from app.simulation.catalog import (
    DIFFICULTIES,
    Difficulty,
    SimulationPolicy,
    StreamSettings,
    as_difficulty,
    load_simulation_policy,
)
from app.simulation.debrief import render_debrief
from app.simulation.exercise import answer_key, render_exercise, sheet_for, write_exercise
from app.simulation.feed import DEFAULT_START, generate_stream, to_jsonl
from app.simulation.generator import generate_incident
from app.simulation.grading import grade
from app.simulation.models import AnswerKey, to_json
from app.simulation.publish import BOOTSTRAP_ENV, publish
from app.simulation.replay import load_events, replay_exercise

F = TypeVar("F", bound=Callable[..., Any])
_POLICY = click.option(
    "--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
    help="Simulation policy file [default: policy/simulation.yml].")
_DIFFICULTY = click.option("--difficulty", type=click.Choice(DIFFICULTIES), required=True,
                           help="Noise and red herrings grow with difficulty; without "
                                "--archetype one of its archetypes is picked by the seed.")
_ARCHETYPE = click.option("--archetype", default=None, metavar="NAME",
                          help="Archetype from the catalog (`simulate archetypes` lists them).")
_SEED = click.option("--seed", type=int, required=True, help="Same seed, same incident.")
_START = click.option("--start", default=None, metavar="TIME",
                      help="Onset time (RFC 3339); default derived from the seed.")


def _policy(path: str | None) -> SimulationPolicy:
    return load_simulation_policy(path)


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UserError(f"{option}: {value!r} is not an RFC 3339 time "
                        "(e.g. 2026-03-02T09:00:00Z)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _date(value: str | None) -> date:
    if value is None:
        return date.today()  # the CLI edge may read the clock; the generators do not
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"--date: {value!r} is not a date (YYYY-MM-DD)") from None


def _participants(value: str | None) -> list[str]:
    return [p.strip() for p in (value or "").split(",") if p.strip()]


def _write(path: str, data: str | bytes) -> None:
    target = Path(path)
    try:
        if target.parent != Path("."):
            target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            target.write_bytes(data)
        else:
            target.write_text(data, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot write: {exc.strerror}") from None


@click.group("simulate")
def command() -> None:
    """Incident simulations: generate, exercise, replay, grade and stream."""


@command.command("archetypes")
@_POLICY
def archetypes(policy_path: str | None) -> None:
    """List the archetype catalog: name, difficulty, category and kind."""
    for arch in _policy(policy_path).archetypes:
        click.echo(f"{arch.name:26} {arch.difficulty:7} {arch.category:12} {arch.kind}")


@command.command("generate")
@_DIFFICULTY
@_ARCHETYPE
@_SEED
@_START
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Write the JSON here instead of standard output.")
@_POLICY
def generate(difficulty: str, archetype: str | None, seed: int, start: str | None,
             out: str | None, policy_path: str | None) -> None:
    """Print one simulated incident as JSON (trajectory, logs, events, expected findings)."""
    sim = generate_incident(_policy(policy_path), difficulty=difficulty, seed=seed,
                            archetype=archetype, start=_time(start, "--start"))
    text = to_json(sim)
    if out:
        _write(out, text)
        click.echo(f"wrote {out} ({sim.archetype}, {sim.difficulty}, seed {seed})")
    else:
        click.echo(text, nl=False)


@command.command("exercise")
@_DIFFICULTY
@_ARCHETYPE
@_SEED
@_START
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for exercise.md and answer_key.json.")
@click.option("--date", "on", default=None, metavar="YYYY-MM-DD",
              help="Exercise date [default: today].")
@click.option("--participants", default=None, metavar="NAMES",
              help="Comma-separated participant names.")
@_POLICY
def exercise(difficulty: str, archetype: str | None, seed: int, start: str | None,
             out_dir: str, on: str | None, participants: str | None,
             policy_path: str | None) -> None:
    """Write a tabletop exercise (exercise.md) and its answer key (answer_key.json)."""
    policy = _policy(policy_path)
    sim = generate_incident(policy, difficulty=difficulty, seed=seed, archetype=archetype,
                            start=_time(start, "--start"))
    sheet = sheet_for(sim, policy, on=_date(on), participants=_participants(participants))
    try:
        paths = write_exercise(out_dir, render_exercise(sheet, policy), answer_key(sim, policy))
    except OSError as exc:
        raise UserError(f"{out_dir}: cannot write: {exc.strerror}") from None
    click.echo(f"wrote {paths[0]} and {paths[1]} ({sim.simulation_id}, {difficulty})")


@command.command("replay")
@click.option("--events", "events_path", required=True, type=click.Path(dir_okay=False),
              help="JSONL of incidents.events / alerts.state / learning.events values.")
@click.option("--incident", "incident_id", required=True, help="Incident id to replay.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for exercise.md and answer_key.json.")
@click.option("--difficulty", type=click.Choice(DIFFICULTIES), default="medium",
              show_default=True, help="Label for the exercise.")
@click.option("--date", "on", default=None, metavar="YYYY-MM-DD",
              help="Exercise date [default: today].")
@click.option("--participants", default=None, metavar="NAMES",
              help="Comma-separated participant names.")
@_POLICY
def replay(events_path: str, incident_id: str, out_dir: str, difficulty: str, on: str | None,
           participants: str | None, policy_path: str | None) -> None:
    """Turn a real incident into a pseudonymised exercise with its answer key."""
    policy = _policy(policy_path)
    result = replay_exercise(load_events(events_path), incident_id, policy, on=_date(on),
                             participants=_participants(participants),
                             difficulty=as_difficulty(difficulty))
    try:
        paths = write_exercise(out_dir, render_exercise(result.sheet, policy), result.key)
    except OSError as exc:
        raise UserError(f"{out_dir}: cannot write: {exc.strerror}") from None
    click.echo(f"wrote {paths[0]} and {paths[1]} ({result.key.simulation_id})")


def _load_key(path: str) -> AnswerKey:
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return AnswerKey.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise UserError(f"{path}: {where}: {err['msg']} (is this an answer_key.json?)") from None


@command.command("grade")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help="answer_key.json of the exercise.")
@click.option("--answers", "answers_path", required=True, type=click.Path(dir_okay=False),
              help="The participant's answers.yml.")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Write the Markdown debrief here instead of standard output.")
@click.option("--json", "json_out", default=None, type=click.Path(dir_okay=False),
              help="Also write the score breakdown as JSON.")
def grade_command(key_path: str, answers_path: str, out: str | None,
                  json_out: str | None) -> None:
    """Score an answers file against a key and write a Markdown debrief."""
    key = _load_key(key_path)
    answers = load_answers(answers_path)
    result = grade(key, answers)
    debrief = render_debrief(key, answers, result)
    if json_out:
        _write(json_out, to_json(result))
    if out:
        _write(out, debrief)
        click.echo(f"score {result.percent}/100; debrief written to {out}")
    else:
        click.echo(debrief)


def _intel_rules(policy_path: str | None) -> tuple[tuple[int, int], tuple[int, int], int]:
    """What the ground truth is judged by, from the intelligence policy beside the
    simulation one: signature recurrence (warn, high), the alert flapping rule
    (transitions, minutes) and the promotion threshold."""
    from app.policy import AlertsPolicy, IntelPolicy
    from app.policyfile import load_file
    from app.simulation.catalog import default_policy_path

    sim_path = Path(policy_path) if policy_path else default_policy_path()
    intel_path = sim_path.parent / "incident_intelligence.yml"
    alerts = AlertsPolicy()
    thresholds = (3, 6)
    if intel_path.is_file():
        intel = load_file(intel_path, IntelPolicy)
        sig, alerts = intel.recurrence.thresholds.signature, intel.alerts
        thresholds = (sig.warn, sig.high)
    return (thresholds, (alerts.flap.transitions, alerts.flap.window_minutes),
            alerts.promote.min_firing)


def _stream_options(command: F) -> F:
    """The options that shape a simulated stream (``stream`` and ``evaluate``)."""
    for option in reversed([
        click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=50.0,
                     show_default=True, help="Records per second."),
        click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=60.0,
                     show_default=True, help="Seconds of publishing (rate × duration records)."),
        click.option("--seed", type=int, default=1, show_default=True),
        click.option("--start", default=None, metavar="TIME",
                     help="Event time of the first day (RFC 3339, or `now` for a span ending "
                          "now) [default: 2026-03-02T00:00:00Z]."),
        click.option("--span-days", type=click.FloatRange(min=0, min_open=True, max=30),
                     default=None, help="Event time the stream covers [default: from the "
                                        "policy, 6]."),
        click.option("--difficulty", "stream_difficulty", type=click.Choice(DIFFICULTIES),
                     default=None, help="Apply that profile of stream.difficulties: more "
                                        "background, decoys, wider clusters [default: none]."),
    ]):
        command = option(command)
    return command


def _stream_settings(policy: SimulationPolicy, span_days: float | None) -> StreamSettings:
    settings = policy.stream
    if span_days is not None:
        settings = settings.model_copy(update={"span_days": span_days})
    return settings


def _first_day(start: str | None, settings: StreamSettings) -> datetime:
    if start == "now":
        return datetime.now(UTC).replace(microsecond=0) - timedelta(days=settings.span_days)
    return _time(start, "--start") or DEFAULT_START


@command.command("stream")
@_stream_options
@click.option("--truth", "truth_path", default=None, type=click.Path(dir_okay=False),
              help="Write the planted ground truth (JSON) here.")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Write the records as JSONL here instead of publishing them.")
@click.option("--bootstrap", default=None, metavar="HOST:PORT",
              help=f"Kafka bootstrap servers [default: ${BOOTSTRAP_ENV}].")
@click.option("--topic-prefix", default=None, metavar="PREFIX",
              help="Prepended to the topic names [default: $INTEL_TOPIC_PREFIX].")
@_POLICY
def stream(rate: float, duration: float, seed: int, start: str | None, span_days: float | None,
           stream_difficulty: Difficulty | None, truth_path: str | None, out: str | None,
           bootstrap: str | None, topic_prefix: str | None, policy_path: str | None) -> None:
    """Publish a mixed incident/alert stream with planted recurrence and clusters.

    The broker connection follows the worker's INTEL_* settings (bootstrap
    servers, topic prefix, TLS/SASL); --bootstrap and --topic-prefix override.
    The event time is a time-lapse: the records cover --span-days of incidents.
    """
    policy = _policy(policy_path)
    settings = _stream_settings(policy, span_days)
    first = _first_day(start, settings)
    bootstrap = bootstrap or os.environ.get(BOOTSTRAP_ENV, "").strip()
    if not out and not bootstrap:
        raise UserError(f"no broker: pass --bootstrap or set {BOOTSTRAP_ENV}, "
                        "or write to a file with --out FILE.jsonl")
    thresholds, flap, min_firing = _intel_rules(policy_path)
    records, truth = generate_stream(seed, first, rate, duration, settings,
                                     thresholds=thresholds, flap=flap, min_firing=min_firing,
                                     difficulty=stream_difficulty)
    if truth_path:
        _write(truth_path, to_json(truth))
    planted = (f"{len(truth.recurrence)} recurrence pattern(s), {len(truth.clusters)} "
               f"cluster(s), {len(truth.alerts)} alert(s)")
    if out:
        _write(out, to_jsonl(records))
        click.echo(f"wrote {len(records)} records to {out} ({planted})")
        return
    from app.stream.settings import load_settings

    worker = load_settings()  # the worker's INTEL_* connection settings
    prefix = worker.topic_prefix if topic_prefix is None else topic_prefix
    if not re.fullmatch(r"[A-Za-z0-9._-]{0,100}", prefix):
        raise UserError(f"--topic-prefix: {prefix!r}: only letters, digits, '.', '_' and '-'")
    sent = asyncio.run(publish(records, bootstrap, rate, topic_prefix=prefix,
                               client_options=worker.kafka_client_options()))
    counts = ", ".join(f"{topic}={n}" for topic, n in sorted(sent.items()))
    click.echo(f"published {sum(sent.values())} records to {bootstrap} ({counts}; {planted})")


@command.command("evaluate")
@_stream_options
@click.option("--events", "events_path", default=None, type=click.Path(dir_okay=False),
              help="Evaluate this stream (JSONL, `simulate stream --out`) instead of "
                   "generating one; needs --truth.")
@click.option("--truth", "truth_path", default=None, type=click.Path(dir_okay=False),
              help="The planted truth of --events (`simulate stream --truth`).")
@click.option("--policy", "policy_dir", default=None, type=click.Path(file_okay=False),
              help="Policy directory: the correlation rules judged and the stream settings "
                   "[default: $INTEL_POLICY_DIR, else ./policy, else the bundled one].")
@WINDOW_OPTION
def evaluate(rate: float, duration: float, seed: int, start: str | None,
             span_days: float | None, stream_difficulty: Difficulty | None,
             events_path: str | None, truth_path: str | None, policy_dir: str | None,
             window_days: int | None) -> None:
    """Score the correlation rules against a simulated stream's planted truth.

    Generates the stream (the options of `simulate stream`), runs the engine
    over it and prints the correlation_quality answer (JSON): precision, recall
    and F1 of what the policy keeps against the pairs planted together (each
    cluster, each recurrence), rule by rule, with a suggested change.
    """
    from app.cli.quality import assess, read_truth
    from app.policy import load_policy

    policy = load_policy(policy_dir)
    if (events_path is None) != (truth_path is None):
        raise UserError("--events and --truth go together (a stream and its planted truth)")
    if events_path is not None and truth_path is not None:
        truth = read_truth(truth_path)
        events = load_events(events_path)
        where = events_path
    else:
        settings = _stream_settings(policy.simulation, span_days)
        records, truth = generate_stream(
            seed, _first_day(start, settings), rate, duration, settings,
            thresholds=(policy.intel.recurrence.thresholds.signature.warn,
                        policy.intel.recurrence.thresholds.signature.high),
            difficulty=stream_difficulty)
        events = [r.value for r in records]
        where = f"seed {seed}" + (f", {stream_difficulty}" if stream_difficulty else "")
    if not events:
        raise UserError(f"{where}: no events to evaluate")
    as_of = max(e.occurred_at for e in events)
    answer = assess(policy, list(events), as_of, window_days, truth)
    o = answer.overall
    click.echo(f"incident-intel simulate evaluate: {where}: {answer.labelled_pairs} labelled "
               f"pairs: precision {o.precision}, recall {o.recall}, F1 {o.f1}", err=True)
    click.echo(orjson.dumps(answer.model_dump(mode="json"), option=orjson.OPT_INDENT_2))
