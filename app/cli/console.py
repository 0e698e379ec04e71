"""One line to the user from the long-running commands (``run``, ``demo``).

Every line starts with ``incident-intel:`` so it stands apart from the logs of
the worker and of the libraries it runs, which share the terminal.
"""

from __future__ import annotations

import click

__all__ = ["PREFIX", "say"]

PREFIX = "incident-intel:"


def say(message: str) -> None:
    """Print ``message`` on stdout after the command's prefix."""
    click.echo(f"{PREFIX} {message}")
