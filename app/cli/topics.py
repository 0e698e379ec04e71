"""`incident-intel topics …`: the topic catalog, its JSON Schemas, and reading topics back."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import click
import orjson
from aiokafka.errors import KafkaError

from app.errors import UserError
from app.topics import Catalog, default_catalog, load_catalog, render_schemas

_CATALOG = click.option("--catalog", "catalog_path", default=None,
                        type=click.Path(dir_okay=False),
                        help="Topic catalog to read [default: the one shipped in the package].")


def _catalog(path: str | None) -> Catalog:
    return default_catalog() if path is None else load_catalog(path)


@click.group("topics")
def command() -> None:
    """Topic catalog and JSON Schemas of every payload."""


@command.command("schemas")
@_CATALOG
@click.option("--out", "out_dir", default="topics/schemas", show_default=True,
              type=click.Path(file_okay=False), help="Directory to write the schemas into.")
@click.option("--check", is_flag=True, help="Do not write; exit 1 if a schema file differs.")
def schemas(catalog_path: str | None, out_dir: str, check: bool) -> None:
    """Write one JSON Schema per topic, generated from the contract models."""
    rendered = render_schemas(_catalog(catalog_path))
    out = Path(out_dir)
    stale = [name for name, data in rendered.items()
             if not (out / name).is_file() or (out / name).read_bytes() != data]
    if check:
        for name in stale:
            click.echo(f"{out / name}: differs from the contract models", err=True)
        raise SystemExit(1 if stale else 0)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in rendered.items():
        (out / name).write_bytes(data)
    click.echo(f"wrote {len(rendered)} schemas to {out} ({len(stale)} changed)")


@command.command("list")
@_CATALOG
def list_topics(catalog_path: str | None) -> None:
    """Print every topic with its key, partitions and cleanup policy."""
    for name, spec in _catalog(catalog_path).topics.items():
        click.echo(f"{name:20} {spec.direction:3} key={spec.key!r} partitions={spec.partitions} "
                   f"cleanup={spec.cleanup_policy} value={spec.value}")


INPUT_TOPICS = ("incidents.events", "alerts.state", "learning.events")


async def _read_values(bootstrap: str, topics: list[str], options: dict[str, Any],
                       timeout: float) -> list[bytes]:
    """Every record value of ``topics`` up to their end at the start, topic by topic,
    partition by partition, in offset order (tombstones left out)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, request_timeout_ms=int(timeout * 1000),
                                **options)
    try:
        await asyncio.wait_for(consumer.start(), timeout)
        known = await consumer.topics()
        missing = [t for t in topics if t not in known]
        if missing:
            raise UserError(f"no topic {', '.join(missing)} on {bootstrap}")
        tps = [TopicPartition(t, p) for t in topics
               for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: dict[Any, list[Any]] = {tp: [] for tp in tps}
        deadline = time.monotonic() + timeout
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise UserError(f"{bootstrap}: could not read the topics within {timeout:g} s")
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                found[tp].extend(r for r in records if r.offset < ends[tp])
        return [r.value for tp in tps for r in found[tp] if r.value is not None]
    finally:
        await consumer.stop()


def _line(value: bytes) -> bytes:
    """One JSON line: re-encoded compactly, or the raw bytes on one line when not JSON (so
    ``incident-intel tool`` reports it as a bad line, as the worker dead-letters it)."""
    try:
        return orjson.dumps(orjson.loads(value))
    except orjson.JSONDecodeError:
        return value.replace(b"\r", b" ").replace(b"\n", b" ")


@command.command("dump")
@click.argument("topics", nargs=-1)
@click.option("--bootstrap", default=None,
              help="host:port of the broker [default: $INTEL_BOOTSTRAP_SERVERS; `run` prints "
                   "the embedded broker's].")
@click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds to connect and read.")
def dump(topics: tuple[str, ...], bootstrap: str | None, timeout: float) -> None:
    """Print the values of TOPICS (default: the three input topics) up to their current end,
    one JSON a line: the event file `incident-intel tool --events` reads, so its answers can
    be compared with the worker's. INTEL_TOPIC_PREFIX and INTEL_SECURITY_* apply."""
    from app.stream.settings import load_settings

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the one-line error says it
    settings = load_settings()
    if bootstrap:
        settings = settings.with_bootstrap(bootstrap)
    if not settings.bootstrap_servers:
        raise UserError("no broker: pass --bootstrap HOST:PORT or set INTEL_BOOTSTRAP_SERVERS "
                        "(`incident-intel run` prints the embedded broker's address)")
    names = [settings.topic(t) for t in (topics or INPUT_TOPICS)]
    try:
        values = asyncio.run(_read_values(settings.bootstrap_servers, names,
                                          settings.kafka_client_options(), timeout))
    except (TimeoutError, OSError, KafkaError) as exc:
        raise UserError(f"{settings.bootstrap_servers}: cannot read the topics "
                        f"({exc or type(exc).__name__})") from None
    out = click.get_binary_stream("stdout")
    for value in values:
        out.write(_line(value) + b"\n")
