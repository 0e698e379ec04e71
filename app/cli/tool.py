"""`incident-intel tool`: answer a tool call offline from files of events.

Prints the response JSON and exits 0; a bad action, argument or unknown
incident prints ``{"error": {"code", "message"}}`` and exits 2. Bad event
lines go to stderr with their line number and are skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from app.artifacts import write_atomic
from app.cli.history import history_options, load_history, parse_as_of
from app.contracts import (
    ErrorResponse,
    InvalidRequest,
    ToolError,
    dump_json,
    parse_request,
)
from app.errors import UserError
from app.intel.engine import ActionError, IntelEngine
from app.policy import load_policy


def _fail(code: str, message: str) -> None:
    click.echo(dump_json(ErrorResponse(error=ToolError(code=code, message=message))))
    sys.exit(2)


def _emitted(state: Path | None) -> set[str]:
    if state is None or not state.exists():
        return set()
    try:
        data = orjson.loads(state.read_bytes())
        keys = data["emitted_followups"]
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise TypeError
        return set(keys)
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        _fail("invalid_argument", f"--state {state}: not a state file written by this command")
    return set()


class _ToolCommand(click.Command):
    """Every failure of this command, argument errors included, is the JSON error object.

    Programs call ``incident-intel tool``; they parse stdout, so an error must
    look like an answer: ``{"error": {...}}`` on stdout, exit 2.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            click.echo(f"incident-intel tool: {exc.format_message()}", err=True)
            _fail("invalid_argument", exc.format_message())
        return []

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"incident-intel tool: {exc}", err=True)
            _fail("invalid_argument", str(exc))


@click.command("tool", cls=_ToolCommand)
@history_options
@click.option("--state", "state_file", default=None, type=click.Path(dir_okay=False),
              help="JSON file remembering emitted follow-up keys between runs.")
@click.argument("action_json")
def command(event_files: tuple[str, ...], policy_dir: str | None, as_of_text: str | None,
            now_text: str | None,
            state_file: str | None, action_json: str) -> None:
    """Answer ACTION_JSON (correlate, recurrence, buckets, weekly_digest, gate, alerts,
    correlation_quality) offline."""
    policy = load_policy(policy_dir)
    try:
        request = parse_request(orjson.loads(action_json))
    except orjson.JSONDecodeError as exc:
        _fail("invalid_request", f"ACTION_JSON is not JSON: {exc}")
    except InvalidRequest as exc:
        _fail("invalid_request", str(exc))
    history = load_history(event_files, parse_as_of(as_of_text), now_text, policy.intel)
    as_of = history.as_of
    engine = IntelEngine(policy)
    engine.apply_until(history.events, as_of)
    state = Path(state_file) if state_file else None
    emitted = _emitted(state)
    try:
        answer = engine.answer(request, as_of, emitted)
    except ActionError as exc:
        _fail(exc.code, str(exc))
    for artifact in answer.artifacts:
        write_atomic(artifact.path, artifact.data)
    if state is not None and answer.followups:
        keys = sorted(emitted | {f.meta.dedupe_key for f in answer.followups})
        write_atomic(state, orjson.dumps({"emitted_followups": keys}, option=orjson.OPT_INDENT_2))
    click.echo(orjson.dumps(answer.response.model_dump(mode="json", by_alias=True),
                            option=orjson.OPT_INDENT_2))
