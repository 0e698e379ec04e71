"""`incident-intel run`: the stream worker, with its own broker when none is configured.

Configuration comes from ``INTEL_*`` variables (see :mod:`app.stream.settings`).
With ``INTEL_BOOTSTRAP_SERVERS`` empty an embedded Tansu broker is started on a
free port of 127.0.0.1 (memory only: a restart starts from nothing). The worker
runs in this process; Ctrl-C or SIGTERM stops the worker first (it leaves its
consumer group and flushes) and then the broker. If this process is killed
outright the kernel kills the broker too, so nothing is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from app.errors import UserError
from app.stream.settings import WorkerSettings, load_settings

if TYPE_CHECKING:  # Faust and aiokafka are imported on use: `--help` stays fast
    import faust

    from app.broker import EmbeddedBroker

__all__ = ["command", "run_worker"]

_PREFIX = "incident-intel:"
# "app.stream.app" is where IntelApp lives: Faust logs "Starting..." lines under it.
_QUIET_LIBRARIES = ("faust", "mode", "aiokafka", "aiohttp", "app.stream.app")
_KAFKA_WAIT = 30.0
FEED_RATE = 20.0
FEED_SECONDS = 600.0


def _say(message: str) -> None:
    click.echo(f"{_PREFIX} {message}")


def _make_worker(app: faust.App, *, verbose: bool, **kwargs: Any) -> faust.Worker:
    """A Faust worker that reports readiness in one line and keeps library logs quiet."""
    import faust

    class Worker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            if not verbose:
                for name in _QUIET_LIBRARIES:
                    logging.getLogger(name).setLevel(logging.WARNING)

        async def on_startup_finished(self) -> None:
            await super().on_startup_finished()
            source = self.app.topics_by_name["incidents.events"].get_topic_name()
            _say(
                f"worker ready: joined consumer group {self.app.conf.id!r}, consuming "
                f"{source}; Ctrl-C or SIGTERM stops it"
            )

    return Worker(app, **kwargs)


def _check_web_port(settings: WorkerSettings) -> None:
    """Fail before starting anything when the web port cannot be bound."""
    try:
        infos = socket.getaddrinfo(settings.web_host, settings.web_port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UserError(f"INTEL_WEB_HOST={settings.web_host!r}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise UserError(
                    f"INTEL_WEB_HOST={settings.web_host!r}: not an address of this machine"
                ) from None
            raise UserError(
                f"INTEL_WEB_PORT={settings.web_port}: cannot listen on "
                f"{settings.web_host}:{settings.web_port} ({exc.strerror}); "
                "is another worker running?"
            ) from None


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """Until the worker installs its own handlers, SIGTERM unwinds like Ctrl-C."""
    previous = signal.signal(signal.SIGTERM, _raise_exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _start_broker(settings: WorkerSettings) -> EmbeddedBroker:
    from app.broker import BrokerError, EmbeddedBroker

    log_path = settings.data_dir / "broker.log"
    _say("INTEL_BOOTSTRAP_SERVERS is empty: starting the embedded broker (Tansu, memory only)")
    broker = EmbeddedBroker(log_path=log_path)
    try:
        broker.start()
    except BrokerError as exc:
        raise UserError(f"embedded broker: {exc}") from None
    _say(f"embedded broker pid {broker.pid} on {broker.bootstrap_servers} (log: {log_path})")
    return broker


def _prepare_kafka(loop: asyncio.AbstractEventLoop, settings: WorkerSettings) -> list[str]:
    """Wait for Kafka, then create missing topics; user-facing errors only."""
    from app.broker import BrokerError, wait_for_kafka
    from app.stream.app import ensure_topics

    try:
        loop.run_until_complete(
            wait_for_kafka(
                settings.bootstrap_servers,
                timeout=_KAFKA_WAIT,
                client_options=settings.kafka_client_options(),
            )
        )
        return loop.run_until_complete(ensure_topics(settings))
    except BrokerError as exc:
        raise UserError(f"INTEL_BOOTSTRAP_SERVERS={settings.bootstrap_servers}: {exc}") from None


def _banner(settings: WorkerSettings, created: list[str], schedule: str) -> None:
    from app.stream.app import catalog_topics

    for label, value in settings.describe().items():
        _say(f"  {label:<24} {value}")
    names = ", ".join(settings.topic(spec.name) for spec in catalog_topics())
    _say(f"  {'topics':<24} {names}")
    if created:
        _say(f"  {'created topics':<24} {len(created)} ({settings.partitions} partitions each)")
    web = f"http://{settings.web_host}:{settings.web_port}"
    _say(f"  {'web':<24} {web}/ (dashboard)  {web}/v1/…  {web}/health/  {web}/ingest/")
    _say(f"  {'dead letters':<24} {settings.topic('intel.dlq')}")
    _say(f"  {'weekly digest':<24} cron {schedule!r} (UTC) -> {settings.reports_dir}/"
         f"<week>.md|.json and {settings.topic('intel.digests')}")
    _say(f"joining consumer group {settings.app_id!r} …")


def _serve_api(app: Any, settings: WorkerSettings) -> None:
    """Mount the HTTP API on the worker's web server."""
    import os

    from app.api import load_tokens, register_routes
    from app.api.tokens import TOKENS_ENV, TOKENS_FILE_ENV, ensure_local_token

    local = not (os.environ.get(TOKENS_FILE_ENV, "").strip()
                 or os.environ.get(TOKENS_ENV, "").strip())
    token_file = settings.data_dir / "api-tokens.yml"
    tokens = load_tokens(os.environ, app.policy.rbac, token_file if local else None)
    register_routes(app, app.replica, app.policy, tokens)
    if local:
        _say(f"  {'API token':<24} {ensure_local_token(token_file)} (agent_oncall; "
             f"from {token_file})")


def _start_feed(app: Any, settings: WorkerSettings, rate: float, duration: float) -> None:
    """Publish a simulated incident stream once the worker is ready (local runs)."""
    from datetime import UTC, datetime, timedelta

    from app.simulation.catalog import StreamSettings
    from app.simulation.feed import generate_stream
    from app.simulation.publish import publish

    # The feed's event time ends about now, so the live windows, the dashboard
    # and the gate show it as recent history (the shell may read the clock).
    span = StreamSettings().span_days
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=span)
    records, truth = generate_stream(seed=7, start=start, rate_per_s=rate, duration_s=duration)

    async def feed() -> None:
        await app.replica.wait_ready()
        _say(f"feed: publishing {len(records)} simulated records at {rate:g}/s "
             f"(event time {records[0].payload['occurred_at']} … "
             f"{records[-1].payload['occurred_at']})")
        sent = await publish(records, settings.bootstrap_servers, rate,
                             topic_prefix=settings.topic_prefix,
                             client_options=settings.kafka_client_options())
        _say(f"feed: done, {sum(sent.values())} records published; planted "
             f"{len(truth.recurrence)} recurrences and {len(truth.clusters)} clusters")

    app.task(feed)


def run_worker(settings: WorkerSettings, *, verbose: bool = False,
               feed: bool | None = None) -> None:
    """Run the worker until a signal stops it; start and stop the embedded broker around it.

    Ends by raising :class:`SystemExit` with the worker's exit code (Faust's
    way); :class:`UserError` for problems the user can fix. ``feed`` publishes
    a simulated incident stream (default: with the embedded broker, which
    otherwise would have nothing to show).
    """
    from app.policy import load_policy
    from app.stream.app import create_app

    policy = load_policy(settings.policy_dir)
    if feed is None:
        feed = settings.embedded

    _check_web_port(settings)
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"INTEL_DATA_DIR={settings.data_dir}: {exc.strerror}") from None

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    broker: EmbeddedBroker | None = None
    worker: faust.Worker | None = None
    try:
        with _sigterm_exits():
            if settings.embedded:
                broker = _start_broker(settings)
                settings = settings.with_bootstrap(broker.bootstrap_servers)
            else:
                _say(f"connecting to Kafka at {settings.bootstrap_servers}")
            created = _prepare_kafka(loop, settings)
            app = create_app(settings, policy)
            _banner(settings, created, policy.intel.digest.schedule)
            _serve_api(app, settings)
            if feed:
                _start_feed(app, settings, FEED_RATE, FEED_SECONDS)
        worker = _make_worker(
            app,
            verbose=verbose,
            loop=loop,
            loglevel="info",
            quiet=True,
            redirect_stdouts=False,
        )
        worker.execute_from_commandline()
    finally:
        if not loop.is_closed():
            loop.close()
        asyncio.set_event_loop(None)
        if worker is not None:
            _say("worker stopped")
        if broker is not None:
            broker.stop()
            _say("embedded broker stopped")


@click.command("run")
@click.option(
    "-v", "--verbose", is_flag=True, help="Also show Faust and Kafka client logs at INFO."
)
@click.option("--feed/--no-feed", default=None,
              help="Publish a simulated incident stream [default: on with the embedded "
                   "broker].")
def command(verbose: bool, feed: bool | None) -> None:
    """Run the stream worker (starts an embedded broker if INTEL_BOOTSTRAP_SERVERS is empty).

    Settings come from INTEL_* environment variables; see app/stream/settings.py.
    """
    run_worker(load_settings(), verbose=verbose, feed=feed)
