"""`incident-intel broker`: the embedded Kafka-compatible broker in the foreground.

For manual testing: start it, point ``INTEL_BOOTSTRAP_SERVERS`` (or any Kafka
client) at the printed address, stop it with Ctrl-C. Memory only: everything
is gone when it stops.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType

import click

from app.broker import BrokerError, EmbeddedBroker
from app.errors import UserError

__all__ = ["command"]


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


@click.command("broker")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port on 127.0.0.1 (default: a free one).",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Keep the broker's own log here (default: a temporary file, removed on stop).",
)
def command(port: int | None, log_file: Path | None) -> None:
    """Run the embedded Kafka-compatible broker (Tansu) until Ctrl-C or SIGTERM."""
    broker = EmbeddedBroker(port=port, log_path=log_file)
    previous = signal.signal(signal.SIGTERM, _raise_exit)
    try:
        try:
            broker.start()
        except BrokerError as exc:
            raise UserError(f"embedded broker: {exc}") from None
        click.echo(f"Kafka-compatible broker (Tansu, memory only) pid {broker.pid}")
        click.echo(f"bootstrap servers: {broker.bootstrap_servers}")
        click.echo(f"log: {broker.log_path}")
        click.echo(f"try: INTEL_BOOTSTRAP_SERVERS={broker.bootstrap_servers} incident-intel run")
        click.echo("Ctrl-C or SIGTERM stops it.", nl=True)
        while broker.is_running():
            time.sleep(0.2)
        raise UserError(f"the broker exited unexpectedly: {broker.log_tail() or 'no output'}")
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        was_running = broker.pid is not None
        broker.stop()
        if was_running:
            click.echo("broker stopped")
