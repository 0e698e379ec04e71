"""`incident-intel policy check [DIR]` and `policy suggest` (see :mod:`app.cli.quality`)."""

from __future__ import annotations

import click

from app.cli.quality import suggest
from app.policy import POLICY_FILES, load_policy


@click.group("policy")
def command() -> None:
    """Policy files (policy/*.yml)."""


@command.command("check")
@click.argument("directory", required=False, type=click.Path())
def check(directory: str | None) -> None:
    """Validate every policy file of DIRECTORY; print `file: field: reason` on the first problem.

    DIRECTORY defaults to $INTEL_POLICY_DIR, else ./policy, else the bundled policy.
    """
    policy = load_policy(directory)
    click.echo(f"{policy.directory}: ok ({', '.join(POLICY_FILES.values())})")


command.add_command(suggest)
