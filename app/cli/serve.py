"""`incident-intel serve`: the HTTP API and dashboard over files of events, no broker.

The same routes the worker serves, answered by an engine fed once from the
files (:class:`~app.api.live.InMemoryLiveView`): handy for demos, and the
reference the parity tests compare the live API with. Answers equal
``incident-intel tool`` on the same files and ``--as-of``.

Tokens come from ``INTEL_API_TOKENS_FILE`` / ``INTEL_API_TOKENS``; when neither
is set, ``--tokens-file`` is created (mode 0600) with one token for
``agent_oncall`` and one for ``agent_release``, and the on-call token is
printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from pydantic import TypeAdapter, ValidationError

from app.contracts import Timestamp
from app.errors import UserError
from app.eventfile import read_events, summary_line
from app.policy import POLICY_DIR_HELP, load_policy

if TYPE_CHECKING:  # aiohttp is imported on use: `--help` stays fast
    from aiohttp import web

__all__ = ["command"]

_TIMESTAMP = TypeAdapter(Timestamp)


async def _serve(app: web.Application, host: str, port: int) -> None:
    """Listen until SIGINT or SIGTERM, printing the bound address (``--port 0`` too)."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UserError(f"--port {port}: cannot listen on {host}: {exc.strerror}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    for address in runner.addresses:
        bound_host, bound_port = address[0], address[1]
        click.echo(f"incident-intel: serving http://{bound_host}:{bound_port}/ "
                   "(dashboard), /v1/… (API); Ctrl-C stops it", err=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


@click.command("serve")
@click.option("--events", "event_files", multiple=True, required=True,
              type=click.Path(dir_okay=False), help="JSONL file of events (repeatable).")
@click.option("--policy", "policy_dir", default=None, type=click.Path(file_okay=False),
              help=POLICY_DIR_HELP)
@click.option("--as-of", "as_of_text", default=None,
              help="Answer as of this RFC 3339 time (default: newest occurred_at).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=6067, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port, printed at start).")
@click.option("--artifacts-dir", default=".", show_default=True,
              type=click.Path(file_okay=False),
              help="Where weekly_digest with save_artifacts writes its files.")
@click.option("--tokens-file", default=".incident-intel/api-tokens.yml", show_default=True,
              type=click.Path(dir_okay=False),
              help="Local token file, created when no INTEL_API_TOKENS* variable is set.")
def command(event_files: tuple[str, ...], policy_dir: str | None, as_of_text: str | None, host: str,
            port: int, artifacts_dir: str, tokens_file: str) -> None:
    """Serve the API and the dashboard from event files (no broker, no worker)."""
    from app.api import InMemoryLiveView, create_api, load_tokens
    from app.api.tokens import TOKENS_ENV, TOKENS_FILE_ENV, ensure_local_token

    policy = load_policy(policy_dir)
    as_of: datetime | None = None
    if as_of_text is not None:
        try:
            as_of = _TIMESTAMP.validate_python(as_of_text)
        except ValidationError:
            raise UserError(f"--as-of {as_of_text!r} is not an RFC 3339 time") from None
    read = read_events(event_files)
    for problem in read.problems:
        click.echo(problem, err=True)
    click.echo(summary_line(read), err=True)
    if as_of is None and not read.events:
        raise UserError("no valid events and no --as-of: nothing to answer from")
    local = not (os.environ.get(TOKENS_FILE_ENV, "").strip()
                 or os.environ.get(TOKENS_ENV, "").strip())
    tokens = load_tokens(os.environ, policy.rbac, Path(tokens_file) if local else None)
    if local:
        token = ensure_local_token(tokens_file)
        click.echo(f"incident-intel: API token for agent_oncall (from {tokens_file}): {token}",
                   err=True)
    view = InMemoryLiveView(policy, read.events, as_of=as_of, artifact_dir=Path(artifacts_dir))
    app = create_api(view, policy, tokens)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(app, host, port))
