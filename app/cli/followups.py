"""`incident-intel followups deliver`: hand each follow-up to a webhook or a JSONL file.

A reference downstream consumer of ``intel.followups`` with its own consumer
group. Exactly one successful delivery per dedupe key, across restarts and
duplicate records: delivered keys are kept in a ledger file (fsynced before
the offset commit). Failures are retried with backoff, then dead-lettered to
``intel.dlq`` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from urllib.parse import urlsplit

import click

from app.errors import UserError

DEFAULT_GROUP = "incident-intel-followups-deliver"
DEFAULT_TOKEN_ENV = "INTEL_FOLLOWUPS_TOKEN"


def _one_line(ctx: click.Context, exc: click.UsageError) -> UserError:
    """Click's multi-line usage error as the CLI's one-line user error."""
    where = " ".join(ctx.command_path.split()[1:])
    return UserError(f"{where}: {exc.format_message()}")


class _OneLineCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _one_line(ctx, exc) from None


class _OneLineGroup(click.Group):
    def resolve_command(self, ctx: click.Context, args: list[str]):  # type: ignore[override]
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise _one_line(ctx, exc) from None


@click.group("followups", cls=_OneLineGroup)
def command() -> None:
    """Follow-ups downstream: deliver intel.followups to a webhook or a file."""


def _webhook_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"--webhook: {url!r} is not an http(s) URL with a host")
    return url


def _check_target(webhook: str | None, jsonl: str | None) -> None:
    if (webhook is None) == (jsonl is None):
        raise UserError("followups deliver: give exactly one of --webhook URL or --jsonl FILE")
    if webhook is not None:
        _webhook_url(webhook)


def _sink(webhook: str | None, jsonl: str | None, token_env: str, timeout: float):  # noqa: ANN202
    from app.delivery.sinks import JsonlSink, WebhookSink

    if webhook is not None:
        token = os.environ.get(token_env, "").strip() or None
        return WebhookSink(_webhook_url(webhook), timeout_seconds=timeout, token=token)
    assert jsonl is not None
    return JsonlSink(Path(jsonl))


@command.command("deliver", cls=_OneLineCommand)
@click.option("--webhook", metavar="URL", help="POST each follow-up here (JSON body).")
@click.option("--jsonl", metavar="FILE", help="Append each follow-up to this JSON-lines file.")
@click.option("--ledger", metavar="FILE", default=".incident-intel/followups-delivered.jsonl",
              show_default=True, help="Where delivered dedupe keys are remembered.")
@click.option("--bootstrap-servers", envvar="INTEL_BOOTSTRAP_SERVERS", metavar="HOST:PORT",
              help="Kafka brokers [default: $INTEL_BOOTSTRAP_SERVERS].")
@click.option("--topic-prefix", envvar="INTEL_TOPIC_PREFIX", default="",
              help="Prepended to intel.followups and intel.dlq [default: $INTEL_TOPIC_PREFIX].")
@click.option("--group", default=DEFAULT_GROUP, show_default=True, help="Consumer group id.")
@click.option("--token-env", default=DEFAULT_TOKEN_ENV, show_default=True, metavar="VAR",
              help="Environment variable holding a bearer token for the webhook (optional).")
@click.option("--max-attempts", type=int, default=5, show_default=True,
              help="Attempts per follow-up before it is dead-lettered.")
@click.option("--timeout", type=float, default=10.0, show_default=True,
              help="Seconds to wait for the webhook to answer one attempt.")
@click.option("--backoff", type=float, default=1.0, show_default=True,
              help="Seconds before the first retry; doubled after each failure.")
@click.option("--backoff-max", type=float, default=60.0, show_default=True,
              help="Longest wait between two attempts, in seconds.")
def deliver(webhook: str | None, jsonl: str | None, ledger: str,
            bootstrap_servers: str | None, topic_prefix: str, group: str, token_env: str,
            max_attempts: int, timeout: float, backoff: float, backoff_max: float) -> None:
    """Deliver every follow-up of intel.followups once per dedupe key (Ctrl-C stops)."""
    from app.delivery.decision import RetryPolicy
    from app.delivery.deliverer import DelivererSettings

    _check_target(webhook, jsonl)
    try:
        retry = RetryPolicy(max_attempts=max_attempts, backoff_seconds=backoff,
                            backoff_max_seconds=backoff_max, timeout_seconds=timeout)
    except ValueError as exc:
        raise UserError(f"followups deliver: {exc}") from None
    servers = (bootstrap_servers or "").strip()
    if not servers:
        raise UserError("followups deliver: no broker: set --bootstrap-servers or "
                        "INTEL_BOOTSTRAP_SERVERS")
    if not group.strip():
        raise UserError("followups deliver: --group must not be empty")
    settings = DelivererSettings(bootstrap_servers=servers,
                                 topic=f"{topic_prefix}intel.followups",
                                 dlq_topic=f"{topic_prefix}intel.dlq", group_id=group,
                                 retry=retry)
    sink = _sink(webhook, jsonl, token_env, timeout)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    ledger_path = Path(ledger)
    ledger_path.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(_run(settings, sink, ledger_path))


async def _run(settings, sink, ledger_path: Path) -> None:  # noqa: ANN001 - see deliver()
    from aiokafka.errors import KafkaError

    from app.broker import BrokerError, wait_for_kafka
    from app.delivery.deliverer import BrokerUnavailable, Deliverer
    from app.delivery.ledger import Ledger

    ledger = Ledger(ledger_path)
    deliverer = Deliverer(settings, sink, ledger)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, deliverer.stop.set)
    try:
        waiting = asyncio.ensure_future(wait_for_kafka(settings.bootstrap_servers, timeout=30.0))
        stopped = asyncio.ensure_future(deliverer.stop.wait())
        await asyncio.wait({waiting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not waiting.done():  # a stop while waiting for the broker
            waiting.cancel()
            return
        waiting.result()
        await deliverer.run()
    except (BrokerError, KafkaError) as exc:
        raise BrokerUnavailable(
            f"followups deliver: broker {settings.bootstrap_servers}: {exc}") from None
    finally:
        with contextlib.suppress(Exception):
            await sink.close()
        ledger.close()
        counts = ", ".join(f"{n} {k}" for k, n in sorted(deliverer.counts.items())) or "nothing"
        logging.getLogger("app.delivery").info("deliverer stopped: %s", counts)
