"""The worker wired into this process: its Faust worker, its signals, its web server.

:func:`make_worker` is the Faust worker that runs it (one line when it is
ready, library logs kept quiet, a stop that always ends); until it installs
its own handlers, :func:`sigterm_exits` makes SIGTERM unwind like Ctrl-C.
:func:`check_web_port` fails before anything starts when the web port cannot
be bound. :func:`mount_api` and :func:`mount_receivers` put the HTTP API and
the Alertmanager / Grafana / PagerDuty receivers on the worker's web server.
What is printed about them is :mod:`app.cli.banner`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from app.cli.console import say
from app.errors import UserError
from app.stream import errorlog
from app.stream.settings import WorkerSettings

if TYPE_CHECKING:  # Faust and aiokafka are imported on use: `--help` stays fast
    from pathlib import Path

    import faust

    from app.api.tokens import TokenRoles
    from app.sources.worker import MountedReceivers
    from app.stream.app import IntelApp
    from app.stream.worker import Worker

__all__ = ["STOP_DEADLINE", "ApiMount", "check_web_port", "make_worker", "mount_api",
           "mount_receivers", "sigterm_exits"]

# Faust's services log "Starting..."/"Stopping..." under the module of their class:
# the app (app.stream.app), the group member (app.stream.group), the web server.
_QUIET_LIBRARIES = ("faust", "mode", "aiokafka", "aiohttp", "app.stream.app", "app.stream.group",
                     "app.api.worker_web")
STOP_DEADLINE = 13.0
"""Seconds a stopping worker gets before the process exits anyway (SIGTERM → exit < 15 s)."""


def make_worker(app: IntelApp, *, verbose: bool, source: str, **kwargs: Any) -> faust.Worker:
    """A Faust worker that reports readiness in one line and keeps library logs quiet;
    ``source`` is the incident topic it names."""
    import faust

    class Worker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            errorlog.install(logger)
            if not verbose:
                for name in _QUIET_LIBRARIES:
                    logging.getLogger(name).setLevel(logging.WARNING)

        async def on_stop(self) -> None:
            # Stopping must end: with the broker gone, Faust's final commit and the
            # producer's flush can wait far longer. Offsets not committed are read
            # again on restart (the outputs are idempotent), so a forced exit loses
            # nothing.
            _exit_after(STOP_DEADLINE, app)
            _quiet_shutdown()
            await super().on_stop()

        async def on_startup_finished(self) -> None:
            await super().on_startup_finished()
            say(
                f"worker ready: joined consumer group {self.app.conf.id!r}, consuming "
                f"{source}; Ctrl-C or SIGTERM stops it"
            )

    return Worker(app, **kwargs)


def _exit_after(seconds: float, app: faust.App) -> None:
    """Exit the process if it is still running ``seconds`` from now (a daemon timer)."""

    def force() -> None:
        code = getattr(app, "exit_code", None)
        say(f"worker did not stop within {seconds:.0f} s; exiting")
        os._exit(code if code is not None else 1)

    timer = threading.Timer(seconds, force)
    timer.daemon = True
    timer.start()


def _quiet_shutdown() -> None:
    """While stopping, a background task or thread that dies (the Kafka client's,
    cancelled mid-request when the broker is gone) is one log line, not a traceback."""
    logger = logging.getLogger("app.stream")

    def thread_ended(args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread is not None else "a thread"
        logger.info("%s ended while stopping: %s", name, args.exc_type.__name__)

    def task_ended(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        logger.info("background task ended while stopping: %s",
                    type(error).__name__ if error is not None else context.get("message"))

    threading.excepthook = thread_ended
    with contextlib.suppress(RuntimeError):
        asyncio.get_running_loop().set_exception_handler(task_ended)


def check_web_port(settings: WorkerSettings) -> None:
    """Fail before starting anything when the web port cannot be bound."""
    try:
        infos = socket.getaddrinfo(settings.web_host, settings.web_port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UserError(f"INTEL_WEB_HOST={settings.web_host!r}: {exc}; set INTEL_WEB_HOST to "
                        "an address of this machine or unset it (default 127.0.0.1)") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise UserError(
                    f"INTEL_WEB_HOST={settings.web_host!r}: not an address of this machine; "
                    "set INTEL_WEB_HOST to one or unset it (default 127.0.0.1)"
                ) from None
            raise UserError(
                f"INTEL_WEB_PORT={settings.web_port}: cannot listen on "
                f"{settings.web_host}:{settings.web_port} ({exc.strerror}); "
                "is another worker running? Stop it, or set INTEL_WEB_PORT to a free port"
            ) from None


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def sigterm_exits() -> Iterator[None]:
    """Until the worker installs its own handlers, SIGTERM unwinds like Ctrl-C."""
    previous = signal.signal(signal.SIGTERM, _raise_exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass(frozen=True, slots=True)
class ApiMount:
    """The API's tokens, and where the local ones are kept when none were configured."""

    tokens: TokenRoles
    token_file: Path | None
    """``None`` when the tokens come from the environment."""


def mount_api(worker: Worker, settings: WorkerSettings) -> ApiMount:
    """Mount the HTTP API on the worker's web server, with the tokens of the environment
    or, when it names none, one local token per role kept in the data directory."""
    from app.api import load_tokens, register_routes
    from app.api.tokens import TOKENS_ENV, TOKENS_FILE_ENV

    local = not (os.environ.get(TOKENS_FILE_ENV, "").strip()
                 or os.environ.get(TOKENS_ENV, "").strip())
    token_file = settings.data_dir / "api-tokens.yml"
    tokens = load_tokens(os.environ, worker.policy.rbac, token_file if local else None)
    register_routes(worker.app, worker.view, worker.policy, tokens, readiness=worker.readiness,
                    metrics=worker.metrics, links=worker.links)
    return ApiMount(tokens=tokens, token_file=token_file if local else None)


def mount_receivers(worker: Worker, settings: WorkerSettings,
                    api_tokens: TokenRoles) -> MountedReceivers:
    """Mount the Alertmanager / Grafana / PagerDuty receivers on the worker's web server."""
    from app.sources.worker import serve_receivers

    health = worker.probe.health
    web_app = getattr(worker.app.web, "web_app")  # noqa: B009 - Faust's aiohttp driver only
    return serve_receivers(web_app, settings, worker.policy, worker.metrics,
                           api_tokens, reachable=lambda: health.broker_lost_since is None)
