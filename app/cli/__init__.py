"""`incident-intel`: the command-line entry point.

Each sub-command lives in its own module and is registered here. Every error a
user can cause ends as one line on stderr and a non-zero exit code, never a
traceback.
"""

from __future__ import annotations

import sys

import click

from app.errors import UserError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"incident-intel: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="incident-intel")
def main() -> None:
    """Incident Intelligence: recurrence, correlation, buckets, follow-ups and digests."""


def _register() -> None:
    from app.cli import broker, policy_check, run, simulate, tool, topics

    for module in (
        policy_check,
        topics,
        tool,
        __import__("app.cli.velocity", fromlist=["_"]),
        __import__("app.cli.serve", fromlist=["_"]),
        run,
        broker,
        simulate,
        __import__("app.cli.demo", fromlist=["_"]),
        __import__("app.cli.followups", fromlist=["_"]),
    ):
        main.add_command(module.command)


_register()
