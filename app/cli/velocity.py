"""`incident-intel velocity`: learning-velocity metrics per quarter from event files.

Reads JSONL event files (incidents.events, alerts.state and learning.events
records, in any order and mix), folds them into an incident book and prints
the metrics as JSON, Markdown (table + ASCII trend) or a PNG/SVG chart. A line
that is not a valid event is reported on stderr as ``FILE:LINE: skipped:
reason`` and left out; blank lines are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from app.errors import UserError
from app.eventfile import read_events
from app.intel.incidents import IncidentBook
from app.intel.periods import quarter_start
from app.intel.velocity_report import render_markdown, velocity_report
from app.policy import load_policy
from app.policyfile import POLICY_DIR_HELP


class _OneLineErrors(click.Command):
    """Turn click's multi-line usage errors into the CLI's one-line user errors."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise UserError(f"velocity: {exc.format_message()}") from None


def _quarter(option: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        quarter_start(value)
    except ValueError:
        raise UserError(f"{option}: {value!r} is not a quarter (expected YYYY-Qn)") from None
    return value


def _read_events(paths: tuple[str, ...], book: IncidentBook) -> tuple[int, int]:
    """Fold every valid line into ``book``; returns (lines read, lines skipped)."""
    read = read_events(paths)
    for problem in read.problems:
        click.echo(f"{problem.path}:{problem.line}: skipped: {problem.reason}", err=True)
    for event in read.events:
        book.apply(event)
    return read.lines, len(read.problems)


def _write(out: str | None, data: bytes) -> None:
    if out is None:
        stream = click.get_binary_stream("stdout")
        stream.write(data)
        stream.flush()
        return
    try:
        Path(out).write_bytes(data)
    except OSError as exc:
        raise UserError(f"{out}: cannot write: {exc.strerror or exc}") from None


@click.command("velocity", cls=_OneLineErrors)
@click.option("--events", "events", multiple=True, required=True,
              type=click.Path(dir_okay=False),
              help="JSONL file of incident, alert and learning events (repeatable).")
@click.option("--from", "first", metavar="YYYY-Qn", help="First quarter to show.")
@click.option("--to", "last", metavar="YYYY-Qn", help="Last quarter to show.")
@click.option("--format", "fmt", type=click.Choice(["json", "md", "png", "svg"]),
              default="json", show_default=True, help="Output format.")
@click.option("--out", "out", type=click.Path(dir_okay=False),
              help="Write here instead of stdout (required for png).")
@click.option("--policy", "policy_dir", default=None, type=click.Path(file_okay=False),
              help=POLICY_DIR_HELP)
def command(events: tuple[str, ...], first: str | None, last: str | None, fmt: str,
            out: str | None, policy_dir: str | None) -> None:
    """MTTR, detection latency, recurrence, coverage and the learning-velocity score per quarter.

    The score of each quarter always counts every earlier incident in the
    files; --from/--to only choose which quarters are shown.
    """
    first, last = _quarter("--from", first), _quarter("--to", last)
    if first and last and quarter_start(first) > quarter_start(last):
        raise UserError(f"--from {first} is after --to {last}")
    if fmt == "png" and out is None:
        raise UserError("--format png writes binary data: give --out FILE")
    policy = load_policy(policy_dir)
    book = IncidentBook(rules=policy.intel.kind_derivation)
    read, skipped = _read_events(events, book)
    if skipped:
        click.echo(f"incident-intel velocity: skipped {skipped} of {read} lines "
                   f"(not valid events)", err=True)
    report: dict[str, Any] = velocity_report(book, policy.recurrence_target, first, last)
    if fmt == "json":
        data = orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n"
    elif fmt == "md":
        data = render_markdown(report).encode("utf-8")
    else:
        from app.velocity_chart import render_chart

        data = render_chart(report, "png" if fmt == "png" else "svg")
    _write(out, data)
    if out is not None:
        click.echo(f"wrote {out} ({fmt}, {len(report['quarters'])} quarters)", err=True)
