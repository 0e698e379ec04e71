"""The first-run feed: a simulated history published before a fresh worker starts.

An embedded broker without a history has nothing to show, so `incident-intel
run` publishes a seeded stream whose event times all lie at or before now
(:func:`app.simulation.feed.first_run_feed`): every feature has something to
show on the first start, and the banner's example calls name its story.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.cli.banner import FeedExample
from app.cli.console import say
from app.stream.settings import WorkerSettings

if TYPE_CHECKING:
    from app.policy import Policy
    from app.simulation.feed import FeedRecord, StreamTruth

__all__ = ["FEED_RATE", "FEED_SECONDS", "FEED_SEED", "PUBLISH_RATE", "feed_history",
           "publish_feed"]

FEED_RATE = 20.0
FEED_SECONDS = 600.0
"""The feed's record budget is ``FEED_RATE × FEED_SECONDS`` (its event time is history)."""
FEED_SEED = 7
PUBLISH_RATE = 1e9
"""The feed is history (every event time at or before now): published unpaced."""


def feed_history(policy: Policy, now: datetime) -> tuple[list[FeedRecord], StreamTruth]:
    """The simulated history a local run publishes: every event time at or before ``now``
    (the shell's clock), each feature shown on a first run (see ``first_run_feed``)."""
    from app.simulation.feed import first_run_feed

    settings = policy.simulation.stream
    sig = policy.intel.recurrence.thresholds.signature
    return first_run_feed(FEED_SEED, now, FEED_RATE, FEED_SECONDS, settings,
                          thresholds=(sig.warn, sig.high))


def publish_feed(loop: asyncio.AbstractEventLoop, settings: WorkerSettings,
                 policy: Policy) -> FeedExample | None:
    """Publish the simulated history before the worker starts, so its replica, the
    dashboard and the first digest see all of it; what the example calls name."""
    from app.simulation.feed import first_run_story
    from app.simulation.publish import publish

    records, truth = feed_history(policy, datetime.now(UTC))
    sent = loop.run_until_complete(publish(records, settings.bootstrap_servers, PUBLISH_RATE,
                                           topic_prefix=settings.topic_prefix,
                                           client_options=settings.kafka_client_options()))
    say(f"feed: published {sum(sent.values())} simulated records, event time "
        f"{records[0].payload['occurred_at']} … {records[-1].payload['occurred_at']} "
        f"(ends before now); {len(truth.open_at_end)} incident(s) still open")
    for line in first_run_story(truth, policy.simulation.stream,
                                policy.intel.recurrence.label_template):
        say(line)
    high = [p for p in truth.recurrence if p.expected_level == "high"]
    if not high or not truth.clusters:
        return None
    return FeedExample(high[0].service, truth.clusters[0].incident_ids[0])
