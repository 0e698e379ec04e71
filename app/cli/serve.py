"""`incident-intel serve`: the HTTP API and dashboard over files of events, no broker.

The same routes the worker serves, answered by an engine fed once from the
files (:class:`~app.api.live.InMemoryLiveView`): handy for demos, and the
reference the parity tests compare the live API with. Answers equal
``incident-intel tool`` on the same files and ``--as-of``.

Tokens come from ``INTEL_API_TOKENS_FILE`` / ``INTEL_API_TOKENS``; when neither
is set, ``--tokens-file`` is created (mode 0600) with one token for
``agent_oncall`` and one for ``agent_release``, and the on-call token is
printed.

Verdicts (``POST /v1/feedback/links``): serve has no broker, so with
``--verdicts FILE`` each accepted verdict is appended to FILE (one
``incident.linked`` event a line, fsynced before the 202) and FILE is read as
one more events file at start. The running server keeps answering as of the
files it read at start (its answers equal ``incident-intel tool`` on them);
the next start, or ``tool --events FILE``, includes the new verdicts. Without
``--verdicts`` the route answers 503 saying so.

The server enforces ``rate_limits.yml``'s ``http`` bounds (open connections,
header sizes, head and body read times) through
:mod:`app.api.connections`. The events are loaded before it listens, so
``/readyz`` is ready from its first answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import click

from app.cli.history import history_options, load_history, parse_as_of
from app.errors import UserError
from app.policy import load_policy

if TYPE_CHECKING:  # aiohttp is imported on use: `--help` stays fast
    from aiohttp import web

    from app.policy import HttpLimits

__all__ = ["command"]


async def _serve(app: web.Application, host: str, port: int, limits: HttpLimits) -> None:
    """Listen until SIGINT or SIGTERM, printing the bound address (``--port 0`` too)."""
    from aiohttp import web

    from app.api.connections import guarded_site, server_options
    from app.api.routes import API_KEY

    runner = web.AppRunner(app, access_log=None, **server_options(limits))
    await runner.setup()
    site = guarded_site(runner, host, port, limits, app[API_KEY].counters)
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
@history_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=6067, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port, printed at start).")
@click.option("--artifacts-dir", default=".", show_default=True,
              type=click.Path(file_okay=False),
              help="Where weekly_digest with save_artifacts writes its files.")
@click.option("--tokens-file", default=".incident-intel/api-tokens.yml", show_default=True,
              type=click.Path(dir_okay=False),
              help="Local token file, created when no INTEL_API_TOKENS* variable is set.")
@click.option("--verdicts", "verdicts_file", default=None, type=click.Path(dir_okay=False),
              help="Append the verdicts of POST /v1/feedback/links here (JSONL), and read "
                   "it as events at start [default: verdicts are refused with 503].")
def command(event_files: tuple[str, ...], policy_dir: str | None, as_of_text: str | None,
            now_text: str | None, host: str,
            port: int, artifacts_dir: str, tokens_file: str, verdicts_file: str | None) -> None:
    """Serve the API and the dashboard from event files (no broker, no worker)."""
    from app.api import InMemoryLiveView, create_api, load_tokens
    from app.api.feedback import JsonlLinkPublisher
    from app.api.tokens import TOKENS_ENV, TOKENS_FILE_ENV, ensure_local_token

    policy = load_policy(policy_dir)
    if verdicts_file is not None and Path(verdicts_file).exists():
        event_files = (*event_files, verdicts_file)
    history = load_history(event_files, parse_as_of(as_of_text), now_text, policy.intel)
    local = not (os.environ.get(TOKENS_FILE_ENV, "").strip()
                 or os.environ.get(TOKENS_ENV, "").strip())
    tokens = load_tokens(os.environ, policy.rbac, Path(tokens_file) if local else None)
    if local:
        token = ensure_local_token(tokens_file)
        click.echo(f"incident-intel: API token for agent_oncall (from {tokens_file}): {token}",
                   err=True)
    view = InMemoryLiveView(policy, history.events, as_of=history.as_of,
                            artifact_dir=Path(artifacts_dir))
    links = JsonlLinkPublisher(Path(verdicts_file)) if verdicts_file is not None else None
    app = create_api(view, policy, tokens, metrics=view.metrics, links=links)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(app, host, port, policy.rate_limits.http))
