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

This module is the order of things; each step is its own module's job: the
broker (:mod:`app.cli.broker_start`), the first-run feed
(:mod:`app.cli.first_run_feed`), the worker's wiring (:mod:`app.cli.worker_wiring`)
and what is printed about it (:mod:`app.cli.banner`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

from app.broker.history import DurableHistory, history_mode
from app.cli.banner import say_api, say_receivers, say_settings
from app.cli.broker_start import keep_the_rest, prepare_kafka, restore_history, start_broker
from app.cli.console import say
from app.cli.first_run_feed import publish_feed
from app.cli.worker_wiring import (
    check_web_port,
    make_worker,
    mount_api,
    mount_receivers,
    sigterm_exits,
)
from app.errors import UserError
from app.stream.settings import WorkerSettings, load_settings

if TYPE_CHECKING:  # Faust and aiokafka are imported on use: `--help` stays fast
    import faust

    from app.broker import EmbeddedBroker

__all__ = ["command", "run_worker"]


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

    check_web_port(settings)
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
        with sigterm_exits():
            if history is not None:
                history.lock()
            if settings.embedded:
                broker = start_broker(settings)
                settings = settings.with_bootstrap(broker.bootstrap_servers)
            else:
                say(f"connecting to Kafka at {settings.bootstrap_servers}")
            created = prepare_kafka(loop, settings)
            restored = restore_history(loop, settings, history)
            if feed is None:  # a history already shows every feature
                feed = broker is not None and not restored
            example = publish_feed(loop, settings, policy) if feed else None
            parts = build_worker(settings, policy,
                                 journal=history.journal.keep if history is not None else None)
            app = parts.app
            say_settings(settings, created, policy.intel.digest.schedule, broker, history)
            api = mount_api(parts, settings)
            say_api(settings, api, example)
            say_receivers(settings, mount_receivers(parts, settings, api.tokens))
        worker = make_worker(
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
            say("worker stopped")
        try:
            if history is not None:
                keep_the_rest(settings, history, broker)
        finally:
            if broker is not None:
                broker.stop()
                say("embedded broker stopped")


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
