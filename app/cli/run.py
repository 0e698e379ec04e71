"""`incident-intel run`: the stream worker, with its own broker when none is configured.

Configuration comes from ``INTEL_*`` variables (see :mod:`app.stream.settings`).
With ``INTEL_BOOTSTRAP_SERVERS`` empty an embedded Tansu broker is started on a
free port of 127.0.0.1. It keeps nothing on disk, so by default
(``INTEL_HISTORY=durable``) the worker journals what it reads under
``INTEL_DATA_DIR/history`` and the journal is re-published into the fresh broker
before the worker starts (:mod:`app.broker.history`); ``INTEL_HISTORY=memory``
starts from nothing every time. The worker runs in this process; Ctrl-C or
SIGTERM stops the worker first (it leaves its consumer group and flushes) and
then the broker. If this process is killed outright the kernel kills the
broker too, so nothing is left behind.
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
import time
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, NamedTuple

import click
import orjson

from app.broker.history import HISTORY_ENV, DurableHistory, history_mode
from app.errors import UserError
from app.stream import errorlog
from app.stream.settings import WorkerSettings, load_settings

if TYPE_CHECKING:  # Faust and aiokafka are imported on use: `--help` stays fast
    from datetime import datetime

    import faust

    from app.api.tokens import TokenRoles
    from app.broker import EmbeddedBroker
    from app.policy import Policy
    from app.simulation.feed import FeedRecord, StreamTruth
    from app.stream.app import IntelApp
    from app.stream.worker import Worker

__all__ = ["command", "run_worker"]

_PREFIX = "incident-intel:"
# Faust's services log "Starting..."/"Stopping..." under the module of their class:
# the app (app.stream.app), the group member (app.stream.group), the web server.
_QUIET_LIBRARIES = ("faust", "mode", "aiokafka", "aiohttp", "app.stream.app", "app.stream.group",
                     "app.api.worker_web")
_KAFKA_WAIT = 30.0
STOP_DEADLINE = 13.0
"""Seconds a stopping worker gets before the process exits anyway (SIGTERM → exit < 15 s)."""
FEED_RATE = 20.0
FEED_SECONDS = 600.0
"""The feed's record budget is ``FEED_RATE × FEED_SECONDS`` (its event time is history)."""
FEED_SEED = 7
PUBLISH_RATE = 1e9
"""The feed is history (every event time at or before now): published unpaced."""


def _say(message: str) -> None:
    click.echo(f"{_PREFIX} {message}")


def _make_worker(app: IntelApp, *, verbose: bool, source: str, **kwargs: Any) -> faust.Worker:
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
            _say(
                f"worker ready: joined consumer group {self.app.conf.id!r}, consuming "
                f"{source}; Ctrl-C or SIGTERM stops it"
            )

    return Worker(app, **kwargs)


def _exit_after(seconds: float, app: faust.App) -> None:
    """Exit the process if it is still running ``seconds`` from now (a daemon timer)."""

    def force() -> None:
        code = getattr(app, "exit_code", None)
        _say(f"worker did not stop within {seconds:.0f} s; exiting")
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


def _check_web_port(settings: WorkerSettings) -> None:
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
    _say("INTEL_BOOTSTRAP_SERVERS is empty: starting the embedded broker (Tansu, in memory)")
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
        raise UserError(f"INTEL_BOOTSTRAP_SERVERS={settings.bootstrap_servers}: {exc}; start "
                        "Kafka there, or unset INTEL_BOOTSTRAP_SERVERS to run the embedded "
                        "broker") from None


def _banner(settings: WorkerSettings, created: list[str], schedule: str,
            broker: EmbeddedBroker | None, history: DurableHistory | None) -> None:
    from app.stream.app import catalog_topics

    for label, value in settings.describe().items():
        _say(f"  {label:<24} {value}")
    names = ", ".join(settings.topic(spec.name) for spec in catalog_topics())
    _say(f"  {'topics':<24} {names}")
    if created:
        _say(f"  {'created topics':<24} {len(created)} ({settings.partitions} partitions each)")
    _say(f"  {'dead letters':<24} {settings.topic('intel.dlq')}")
    _say(f"  {'weekly digest':<24} cron {schedule!r} (UTC) -> {settings.reports_dir}/"
         f"<week>.md|.json and {settings.topic('intel.digests')}")
    _say(f"  {'history':<24} {history_note(settings, broker, history)}")


def history_note(settings: WorkerSettings, broker: EmbeddedBroker | None,
                 history: DurableHistory | None) -> str:
    """Where the incident history lives, and whether it survives a restart."""
    if broker is None:
        return f"kept by the Kafka at {settings.bootstrap_servers}"
    if history is not None:
        return (f"kept on disk in {history.directory} ({HISTORY_ENV}=durable): what the "
                "worker applied survives a stop or a crash, and the next start re-publishes "
                f"it; delete that directory to start over, or set {HISTORY_ENV}=memory")
    return (f"the embedded broker keeps everything in MEMORY ({HISTORY_ENV}=memory): stopping "
            "this run loses every incident, digest and follow-up; to keep them across "
            f"restarts, unset {HISTORY_ENV} (history on disk in {settings.data_dir}/history) or "
            "set INTEL_BOOTSTRAP_SERVERS to a Kafka with disk storage")


def web_lines(settings: WorkerSettings) -> list[str]:
    """Every route the worker serves for a user (dashboard, health, metrics, API), one a line."""
    from app.api.routes import ROUTES

    web = f"http://{settings.web_host}:{settings.web_port}"
    return [f"  {route.method:<4} {web}{route.path}" for route in ROUTES]


class FeedExample(NamedTuple):
    """What the banner's example calls name, taken from the feed's ground truth."""

    failing_service: str
    correlated_incident: str


def curl_lines(settings: WorkerSettings, tokens: dict[str, str],
               example: FeedExample | None) -> list[str]:
    """Ready-to-paste calls of the gate and of correlate, with the role token each needs."""
    web = f"http://{settings.web_host}:{settings.web_port}"
    service = example.failing_service if example else "SERVICE"
    incident = example.correlated_incident if example else "INCIDENT_ID"
    gate = orjson.dumps({"service": service, "profile": "staging"}).decode()
    correlate = orjson.dumps({"action": "correlate", "incident_id": incident,
                              "append_note": True}).decode()
    lines = []
    for role, route, body in (("agent_release", "/v1/gates/recurrence_watch", gate),
                              ("agent_oncall", "/v1/tools/incident_intelligence", correlate)):
        token = tokens.get(role, f"<{role} token>")
        lines.append(f"  curl -s -H 'Authorization: Bearer {token}' "
                     f"-H 'Content-Type: application/json' -d '{body}' {web}{route}")
    return lines


def _serve_api(worker: Worker, settings: WorkerSettings,
               example: FeedExample | None) -> TokenRoles:
    """Mount the HTTP API on the worker's web server and print how to call it; its tokens."""
    import os

    from app.api import load_tokens, register_routes
    from app.api.tokens import TOKENS_ENV, TOKENS_FILE_ENV, local_tokens

    local = not (os.environ.get(TOKENS_FILE_ENV, "").strip()
                 or os.environ.get(TOKENS_ENV, "").strip())
    token_file = settings.data_dir / "api-tokens.yml"
    tokens = load_tokens(os.environ, worker.policy.rbac, token_file if local else None)
    register_routes(worker.app, worker.view, worker.policy, tokens, readiness=worker.readiness,
                    metrics=worker.metrics, links=worker.links)
    _say("web: the dashboard, health, metrics and the API:")
    for line in web_lines(settings):
        _say(line)
    by_role: dict[str, str] = {}
    if local:
        by_role = local_tokens(token_file)
        _say(f"API tokens, one per local role (kept in {token_file}; read it with "
             f"`cat {token_file}`):")
        for role, token in by_role.items():
            _say(f"  {role:<14} {token}")
    else:
        _say(f"API tokens: those of ${TOKENS_FILE_ENV} / ${TOKENS_ENV}")
    _say("try: the release gate (fails on a service with high P0/P1 recurrence) and "
         "correlate (appends a timeline note):")
    for line in curl_lines(settings, by_role, example):
        _say(line)
    return tokens


def _serve_sources(worker: Worker, settings: WorkerSettings, api_tokens: TokenRoles) -> None:
    """Mount the Alertmanager / Grafana / PagerDuty receivers and print the one to paste."""
    from app.sources.worker import serve_receivers

    health = worker.probe.health
    web_app = getattr(worker.app.web, "web_app")  # noqa: B009 - Faust's aiohttp driver only
    mounted = serve_receivers(web_app, settings, worker.policy, worker.metrics,
                              api_tokens, reachable=lambda: health.broker_lost_since is None)
    web = f"http://{settings.web_host}:{settings.web_port}"
    for line in mounted.summary_lines(web):
        _say(line)
    snippet = mounted.alertmanager_snippet(web)
    if snippet:
        _say("Alertmanager: merge this into alertmanager.yml (then reload it):")
        click.echo(snippet, nl=False)


def feed_history(policy: Policy, now: datetime) -> tuple[list[FeedRecord], StreamTruth]:
    """The simulated history a local run publishes: every event time at or before ``now``
    (the shell's clock), each feature shown on a first run (see ``first_run_feed``)."""
    from app.simulation.feed import first_run_feed

    settings = policy.simulation.stream
    sig = policy.intel.recurrence.thresholds.signature
    return first_run_feed(FEED_SEED, now, FEED_RATE, FEED_SECONDS, settings,
                          thresholds=(sig.warn, sig.high))


def _publish_feed(loop: asyncio.AbstractEventLoop, settings: WorkerSettings,
                  policy: Policy) -> FeedExample | None:
    """Publish the simulated history before the worker starts, so its replica, the
    dashboard and the first digest see all of it."""
    from datetime import UTC, datetime

    from app.simulation.feed import first_run_story
    from app.simulation.publish import publish

    records, truth = feed_history(policy, datetime.now(UTC))
    sent = loop.run_until_complete(publish(records, settings.bootstrap_servers, PUBLISH_RATE,
                                           topic_prefix=settings.topic_prefix,
                                           client_options=settings.kafka_client_options()))
    _say(f"feed: published {sum(sent.values())} simulated records, event time "
         f"{records[0].payload['occurred_at']} … {records[-1].payload['occurred_at']} "
         f"(ends before now); {len(truth.open_at_end)} incident(s) still open")
    for line in first_run_story(truth, policy.simulation.stream,
                                policy.intel.recurrence.label_template):
        _say(line)
    high = [p for p in truth.recurrence if p.expected_level == "high"]
    if not high or not truth.clusters:
        return None
    return FeedExample(high[0].service, truth.clusters[0].incident_ids[0])


def _restore_history(loop: asyncio.AbstractEventLoop, settings: WorkerSettings,
                     history: DurableHistory | None) -> int:
    """Re-publish the durable history into the fresh embedded broker; records sent."""
    if history is None:
        return 0
    began = time.monotonic()
    restored = history.restore(loop, settings)
    if restored:
        _say(f"history: re-published {restored} records from {history.directory} into the "
             f"embedded broker ({time.monotonic() - began:.1f}s)")
    else:
        _say(f"history: none yet in {history.directory}; this run starts it")
    return restored


def _keep_the_rest(settings: WorkerSettings, history: DurableHistory,
                   broker: EmbeddedBroker | None) -> None:
    """On a clean stop, journal what the broker received but the worker had not read."""
    try:
        if broker is not None and broker.is_running():
            kept = history.drain(settings)
            if kept:
                _say(f"history: kept {kept} more records the worker had not read yet")
    except Exception as exc:  # noqa: BLE001 - stopping goes on; what was applied is kept
        _say(f"history: could not read the broker's last records ({type(exc).__name__}: "
             f"{exc}); what the worker applied is kept")
    finally:
        history.close()


def run_worker(settings: WorkerSettings, *, verbose: bool = False,
               feed: bool | None = None) -> None:
    """Run the worker until a signal stops it; start and stop the embedded broker around it.

    Ends by raising :class:`SystemExit` with the worker's exit code (Faust's
    way); :class:`UserError` for problems the user can fix. ``feed`` publishes
    a simulated incident stream (default: with the embedded broker when it has
    no history yet, which otherwise would have nothing to show).
    """
    from app.policy import load_policy
    from app.stream.worker import build_worker

    policy = load_policy(settings.policy_dir)
    durable = history_mode() == "durable" and settings.embedded

    _check_web_port(settings)
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"INTEL_DATA_DIR={settings.data_dir}: {exc.strerror}; set "
                        "INTEL_DATA_DIR to a writable directory") from None

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    broker: EmbeddedBroker | None = None
    worker: faust.Worker | None = None
    history = DurableHistory(settings) if durable else None
    try:
        with _sigterm_exits():
            if history is not None:
                history.lock()
            if settings.embedded:
                broker = _start_broker(settings)
                settings = settings.with_bootstrap(broker.bootstrap_servers)
            else:
                _say(f"connecting to Kafka at {settings.bootstrap_servers}")
            created = _prepare_kafka(loop, settings)
            restored = _restore_history(loop, settings, history)
            if feed is None:  # a history already shows every feature
                feed = broker is not None and not restored
            example = _publish_feed(loop, settings, policy) if feed else None
            parts = build_worker(settings, policy,
                                 journal=history.journal.keep if history is not None else None)
            app = parts.app
            _banner(settings, created, policy.intel.digest.schedule, broker, history)
            api_tokens = _serve_api(parts, settings, example)
            _serve_sources(parts, settings, api_tokens)
        worker = _make_worker(
            app,
            verbose=verbose,
            source=settings.topic("incidents.events"),
            loop=loop,
            loglevel="info",
            quiet=True,
            redirect_stdouts=False,
        )
        try:
            worker.execute_from_commandline()
        except SystemExit as done:
            # A worker that stopped itself (broker lost) exits with its own code.
            if app.exit_code is not None:
                raise SystemExit(app.exit_code) from None
            raise done from None
    finally:
        if not loop.is_closed():
            loop.close()
        asyncio.set_event_loop(None)
        if worker is not None:
            _say("worker stopped")
        try:
            if history is not None:
                _keep_the_rest(settings, history, broker)
        finally:
            if broker is not None:
                broker.stop()
                _say("embedded broker stopped")


@click.command("run")
@click.option(
    "-v", "--verbose", is_flag=True, help="Also show Faust and Kafka client logs at INFO."
)
@click.option("--feed/--no-feed", default=None,
              help="Publish a simulated incident stream [default: on with the embedded "
                   "broker and no history yet].")
def command(verbose: bool, feed: bool | None) -> None:
    """Run the stream worker (starts an embedded broker if INTEL_BOOTSTRAP_SERVERS is empty).

    Settings come from INTEL_* environment variables; see app/stream/settings.py.
    """
    run_worker(load_settings(), verbose=verbose, feed=feed)
