"""The broker a worker starts against: the embedded one, or the configured Kafka.

With ``INTEL_BOOTSTRAP_SERVERS`` empty, :func:`start_broker` starts the
embedded Tansu broker on a free port of 127.0.0.1. Either way
:func:`prepare_kafka` waits for the broker and creates the missing topics.
The embedded broker keeps nothing on disk, so with a durable history
(:mod:`app.broker.history`) :func:`restore_history` re-publishes the journal
into it before the worker starts, and :func:`keep_the_rest` journals, on a
clean stop, what the broker received but the worker had not read yet.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from app.broker.history import DurableHistory
from app.cli.console import say
from app.errors import UserError
from app.stream.settings import WorkerSettings

if TYPE_CHECKING:
    from app.broker import EmbeddedBroker

__all__ = ["KAFKA_WAIT", "keep_the_rest", "prepare_kafka", "restore_history", "start_broker"]

KAFKA_WAIT = 30.0
"""Seconds to wait for the broker to answer before giving up with one line."""


def start_broker(settings: WorkerSettings) -> EmbeddedBroker:
    """Start the embedded broker (its log in the data directory); user-facing errors only."""
    from app.broker import BrokerError, EmbeddedBroker

    log_path = settings.data_dir / "broker.log"
    say("INTEL_BOOTSTRAP_SERVERS is empty: starting the embedded broker (Tansu, in memory)")
    broker = EmbeddedBroker(log_path=log_path)
    try:
        broker.start()
    except BrokerError as exc:
        raise UserError(f"embedded broker: {exc}") from None
    say(f"embedded broker pid {broker.pid} on {broker.bootstrap_servers} (log: {log_path})")
    return broker


def prepare_kafka(loop: asyncio.AbstractEventLoop, settings: WorkerSettings) -> list[str]:
    """Wait for Kafka, then create missing topics (the ones created); user-facing errors only."""
    from app.broker import BrokerError, wait_for_kafka
    from app.stream.app import ensure_topics

    try:
        loop.run_until_complete(
            wait_for_kafka(
                settings.bootstrap_servers,
                timeout=KAFKA_WAIT,
                client_options=settings.kafka_client_options(),
            )
        )
        return loop.run_until_complete(ensure_topics(settings))
    except BrokerError as exc:
        raise UserError(f"INTEL_BOOTSTRAP_SERVERS={settings.bootstrap_servers}: {exc}; start "
                        "Kafka there, or unset INTEL_BOOTSTRAP_SERVERS to run the embedded "
                        "broker") from None


def restore_history(loop: asyncio.AbstractEventLoop, settings: WorkerSettings,
                    history: DurableHistory | None) -> int:
    """Re-publish the durable history into the fresh embedded broker; records sent."""
    if history is None:
        return 0
    began = time.monotonic()
    restored = history.restore(loop, settings)
    if restored:
        say(f"history: re-published {restored} records from {history.directory} into the "
            f"embedded broker ({time.monotonic() - began:.1f}s)")
    else:
        say(f"history: none yet in {history.directory}; this run starts it")
    return restored


def keep_the_rest(settings: WorkerSettings, history: DurableHistory,
                  broker: EmbeddedBroker | None) -> None:
    """On a clean stop, journal what the broker received but the worker had not read."""
    try:
        if broker is not None and broker.is_running():
            kept = history.drain(settings)
            if kept:
                say(f"history: kept {kept} more records the worker had not read yet")
    except Exception as exc:  # noqa: BLE001 - stopping goes on; what was applied is kept
        say(f"history: could not read the broker's last records ({type(exc).__name__}: "
            f"{exc}); what the worker applied is kept")
    finally:
        history.close()
