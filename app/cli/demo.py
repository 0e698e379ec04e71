"""`incident-intel demo`: several weeks of incidents, streamed, digested, in about a minute.

A bounded tour of the stream worker. It starts the embedded broker (or uses
``INTEL_BOOTSTRAP_SERVERS``), publishes a simulated history of several ISO
weeks in accelerated event time (planted recurrence and clusters included),
runs the real worker in this process until it has processed every record,
then triggers the weekly digest of the history's last complete week through
:func:`app.stream.digest_timer.catch_up`, the function the leader's timers
call, with the schedule's clock set to the first scheduled run after the
history. It prints the digest's Markdown and where the artifacts are, stops
the worker and the broker, and exits 0.

Why the digest is deterministic for a seed: the history is published before
the worker starts, so the replica is complete when it reports ready; the
schedule's clock is held (``None``) until the consumer group has committed
every record of every stage and the replica has read every follow-up the
agents sent, so the follow-ups the digest finds already sent are always the
same. The last incident of the strongest planted recurrence is left open
(still being worked on when the week ended), so its bucket ends the week high
with an open incident: the live buckets agent always raises that week's
follow-up, and the digest lists it as already sent.

Everything the demo writes goes under ``--out`` (default
``.incident-intel/demo``): ``reports/<week>.md|.json`` and the broker log.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from app.cli.broker_start import prepare_kafka, start_broker
from app.cli.console import say
from app.cli.worker_wiring import make_worker, sigterm_exits
from app.contracts import OPEN_STATUSES, WeeklyDigestResponse
from app.errors import UserError
from app.intel.periods import last_complete_week, week_label
from app.simulation.catalog import StreamSettings
from app.simulation.feed import FeedRecord, StreamTruth, generate_stream
from app.stream.settings import WorkerSettings, load_settings

if TYPE_CHECKING:
    from app.broker import EmbeddedBroker
    from app.stream.worker import Worker

__all__ = ["DEMO_START", "DemoHistory", "command", "demo_history", "run_demo"]

DEMO_START = datetime(2026, 2, 2, tzinfo=UTC)
"""A Monday (2026-W06): the history starts on a week boundary."""
DEFAULT_SEED = 7
DEFAULT_WEEKS = 4
MAX_WEEKS = 4
"""The simulated stream spans at most 30 days (``StreamSettings.span_days``)."""
BACKGROUND_PER_DAY = 4.0
RECORDS_PER_WEEK = 480
"""Lifecycles of every incident plus alert flaps and state re-sends."""
PUBLISH_RATE = 1e9
"""Records per second for :func:`app.simulation.publish.publish`: as fast as acks allow."""
LEARNING_TOPIC = "learning.events"


@dataclass(frozen=True)
class DemoHistory:
    """The records to publish and what was planted in them."""

    records: list[FeedRecord]
    truth: StreamTruth
    start: datetime
    end: datetime
    """Monday 00:00 UTC after the last week: no record occurs at or after it."""
    kept_open: str | None
    """The planted incident left open at the end of the history."""

    @property
    def last_week(self) -> str:
        return last_complete_week(self.end)


def _learning(event_id: str, kind: str, at: datetime, incident_id: str,
              **extra: str) -> FeedRecord:
    payload = {"event_id": event_id, "type": kind,
               "occurred_at": at.isoformat().replace("+00:00", "Z"),
               "incident_id": incident_id, **extra}
    return FeedRecord(LEARNING_TOPIC, incident_id, payload, at)


def demo_history(seed: int = DEFAULT_SEED, weeks: int = DEFAULT_WEEKS,
                 start: datetime = DEMO_START) -> DemoHistory:
    """The demo's scenario: ``weeks`` ISO weeks from ``start`` (a Monday), pure.

    Built on :func:`generate_stream` (planted recurrence in the last week,
    clusters spread over the span, light background), then shaped into a
    story: nothing occurs after the history ends, the newest incident of the
    strongest recurrence is still open, and the incident that opened the first
    cluster got a postmortem and a regression test (learning events).
    """
    if not 2 <= weeks <= MAX_WEEKS:
        raise UserError(f"--weeks={weeks}: the demo simulates 2 to {MAX_WEEKS} weeks")
    if start.weekday() != 0:
        raise ValueError("the history must start on a Monday")
    end = start + timedelta(days=7 * weeks)
    settings = StreamSettings(span_days=7 * weeks, background_per_day=BACKGROUND_PER_DAY)
    records, truth = generate_stream(seed, start, rate_per_s=RECORDS_PER_WEEK * weeks,
                                     duration_s=1.0, settings=settings)
    strongest = max(truth.recurrence, key=lambda r: r.count, default=None)
    kept_open = strongest.incident_ids[-1] if strongest else None

    def keep(record: FeedRecord) -> bool:
        if record.occurred_at >= end:
            return False
        incident = record.payload.get("incident")
        if kept_open is None or not incident or incident["incident_id"] != kept_open:
            return True
        return incident["status"] in OPEN_STATUSES

    shaped = [r for r in records if keep(r)]
    if truth.clusters:
        first = truth.clusters[0]
        incident_id, opened = first.incident_ids[0], first.window_start
        shaped += [
            _learning(f"demo-{seed}-pm", "postmortem.published", opened + timedelta(days=2),
                      incident_id, root_cause=f"demo: config drift behind {first.cluster_id}"),
            _learning(f"demo-{seed}-test", "regression_test.added", opened + timedelta(days=3),
                      incident_id, test_id=f"test_{first.cluster_id.replace('-', '_')}"),
        ]
        shaped = [r for r in shaped if r.occurred_at < end]
        shaped.sort(key=lambda r: r.occurred_at)
    return DemoHistory(shaped, truth, start, end, kept_open)


# --------------------------------------------------------------------------- shell


@dataclass
class _Outcome:
    response: WeeklyDigestResponse | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def _demo_settings(base: WorkerSettings, out: Path) -> WorkerSettings:
    """The worker's settings for the demo: own state and reports under ``out``, free port.

    On a shared Kafka (``INTEL_BOOTSTRAP_SERVERS``) the app id and topics get a
    per-run prefix, so the demo never mixes with real topics or earlier runs.
    """
    from app.broker import free_port

    update: dict[str, Any] = {
        "app_id": "incident-intel-demo", "data_dir": out / "state",
        "reports_dir": out / "reports", "web_port": free_port(base.web_host),
    }
    if not base.embedded:
        run = uuid.uuid4().hex[:8]
        update.update(app_id=f"incident-intel-demo-{run}",
                      topic_prefix=f"{base.topic_prefix}demo-{run}.")
    return base.model_copy(update=update)


async def _processed(worker: Worker, deadline: float) -> None:
    """Wait until the consumer group committed every record, stage by stage, then
    until the replica has read every follow-up sent."""
    from app.stream.progress import pipeline_stages, record_ends, wait_committed

    settings = worker.settings
    options = settings.kafka_client_options()
    if not await wait_committed(settings.bootstrap_servers, settings.app_id,
                                pipeline_stages(settings), deadline, options):
        _check_deadline(-1.0, "the worker to process the history")
    ends = await record_ends(settings.bootstrap_servers, [settings.topic("intel.followups")],
                             options)
    while any(worker.cycle.applied_to.get((tp.topic, tp.partition), 0) < end
              for tp, end in ends.items()):
        _check_deadline(deadline, "the replica to read the follow-ups")
        await asyncio.sleep(0.1)


def _check_deadline(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise UserError(f"timed out waiting for {what}; rerun with --verbose to see the worker")


async def _drive(worker: Worker, history: DemoHistory, outcome: _Outcome, deadline: float,
                 stop: Any) -> None:
    """The demo's script inside the running worker; always ends by stopping the worker."""
    from app.stream.digest_timer import next_run

    replica = worker.replica
    try:
        await asyncio.wait_for(replica.wait_ready(), max(1.0, deadline - time.monotonic()))
        say(f"demo: replica caught up: {replica.applied} events applied, "
             f"event time as of {replica.as_of().isoformat()}")
        while not worker.group.leader():
            _check_deadline(deadline, "the worker to lead its consumer group")
            await asyncio.sleep(0.2)
        await _processed(worker, deadline)
        say("demo: every stage of the pipeline processed (the consumer group committed "
             f"all records); {len(worker.publisher.emitted)} follow-up(s) raised live")
        for row in replica.velocity():
            rate = "–" if row.recurrence_rate is None else f"{row.recurrence_rate:.1%}"
            say(f"demo: learning.velocity {row.quarter}: {row.incidents} incidents, "
                 f"recurrence {rate} (target {row.recurrence_target:.0%}), "
                 f"{row.regression_tests_added} regression test(s) added")
        schedule = worker.policy.intel.digest
        now = next_run(schedule.schedule, schedule.timezone, history.end)
        say(f"demo: the schedule's clock jumps to {now.isoformat()} "
             f"(cron {schedule.schedule!r}); running the digest timer's catch-up")
        outcome.response = await worker.digests.catch_up(now)
        if outcome.response is None:
            raise UserError(f"the digest of {history.last_week} was not produced "
                            "(already on intel.digests?)")
    except UserError as exc:
        outcome.error = str(exc)
    except TimeoutError:
        outcome.error = "timed out waiting for the replica to catch up"
    except Exception as exc:  # noqa: BLE001 - reported as one line, never a traceback
        outcome.error = f"{type(exc).__name__}: {exc}"
    finally:
        stop()


def run_demo(seed: int = DEFAULT_SEED, weeks: int = DEFAULT_WEEKS,
             out: Path = Path(".incident-intel/demo"), *, timeout: float = 120.0,
             verbose: bool = False) -> WeeklyDigestResponse:
    """Run the whole scenario; returns the digest. Raises :class:`UserError` on failure."""
    from app.policy import load_policy
    from app.simulation.publish import publish
    from app.stream.worker import build_worker

    base = load_settings()
    policy = load_policy(base.policy_dir)
    history = demo_history(seed, weeks)
    settings = _demo_settings(base, out)
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: {exc.strerror}; choose a writable directory "
                        "with --out") from None
    by_topic: dict[str, int] = {}
    for record in history.records:
        by_topic[record.topic] = by_topic.get(record.topic, 0) + 1
    planted = ", ".join(f"{r.count}× {r.service}|{r.kind} ({r.expected_level})"
                        for r in history.truth.recurrence)
    say(f"demo: seed {seed}: {weeks} weeks of history, {week_label(history.start)} to "
         f"{history.last_week} ({history.start.date()} to {history.end.date()}, event time)")
    say(f"demo: {len(history.records)} records "
         f"({', '.join(f'{t} {n}' for t, n in sorted(by_topic.items()))}); "
         f"{history.truth.incidents} incidents; planted recurrence: {planted}; "
         f"{len(history.truth.clusters)} clusters")

    deadline = time.monotonic() + timeout
    outcome = _Outcome()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    broker: EmbeddedBroker | None = None
    try:
        with sigterm_exits():
            if settings.embedded:
                broker = start_broker(settings)
                settings = settings.with_bootstrap(broker.bootstrap_servers)
            else:
                say(f"demo: using Kafka at {settings.bootstrap_servers}, topic prefix "
                     f"{settings.topic_prefix!r}")
            prepare_kafka(loop, settings)
            sent = loop.run_until_complete(publish(
                history.records, settings.bootstrap_servers, PUBLISH_RATE,
                topic_prefix=settings.topic_prefix,
                client_options=settings.kafka_client_options(),
                client_id="incident-intel-demo"))
            say(f"demo: published {sum(sent.values())} records; starting the worker "
                 f"(consumer group {settings.app_id!r})")
            # The demo moves the schedule's clock itself: the timer's own clock is held.
            parts = build_worker(settings, policy, clock=lambda: None)
        worker = make_worker(parts.app, verbose=verbose,
                              source=settings.topic("incidents.events"), loop=loop,
                              loglevel="info", quiet=True, redirect_stdouts=False)
        stop = _stopper(worker)
        parts.app.task(lambda: _drive(parts, history, outcome, deadline, stop))
        with contextlib.suppress(SystemExit):
            worker.execute_from_commandline()
        say("demo: worker stopped")
    finally:
        if not loop.is_closed():
            loop.close()
        asyncio.set_event_loop(None)
        if broker is not None:
            broker.stop()
            say("demo: embedded broker stopped")
    if outcome.error is not None:
        raise UserError(f"demo: {outcome.error}")
    if outcome.response is None:
        raise UserError("demo: the worker stopped before the digest was produced")
    return outcome.response


def _stopper(worker: Any) -> Any:
    """Stop the worker the way SIGTERM does (leave the group, flush, close the loop)."""

    def stop() -> None:
        worker._schedule_shutdown(signal.SIGTERM)  # noqa: SLF001 - Faust's own SIGTERM path

    return stop


def _print_digest(response: WeeklyDigestResponse, paths: Sequence[str]) -> None:
    click.echo("")
    click.echo(response.markdown_preview.rstrip("\n"))
    click.echo("")
    say(f"demo: digest {response.week}: " + ", ".join(paths))


@click.command("demo")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True,
              help="Seed of the simulated history (same seed, same digest).")
@click.option("--weeks", type=click.IntRange(2, MAX_WEEKS), default=DEFAULT_WEEKS,
              show_default=True,
              help="ISO weeks of simulated history.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".incident-intel/demo"), show_default=True,
              help="Directory for the digest artifacts and the demo's state.")
@click.option("--timeout", type=click.FloatRange(10, 900), default=120.0, show_default=True,
              help="Seconds the whole run may take before it gives up.")
@click.option("-v", "--verbose", is_flag=True, help="Also show Faust and Kafka client logs.")
def command(seed: int, weeks: int, out: Path, timeout: float, verbose: bool) -> None:
    """Stream a few simulated weeks through the worker and print the weekly digest.

    Starts the embedded broker unless INTEL_BOOTSTRAP_SERVERS is set, and stops
    everything it started before exiting.
    """
    response = run_demo(seed, weeks, out, timeout=timeout, verbose=verbose)
    _print_digest(response, response.artifact_paths)
