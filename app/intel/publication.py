"""What the stream publishes at its watermark, and which keys an event can move.

The keyed outputs (``intel.recurrence``, ``intel.buckets``, ``intel.alerts``) are functions of
the engine's state and of the watermark. A worker does not recompute every
key for every event: a key can only change when an incident (or alert transition) of it changes,
or when the watermark moves one of those across a window edge. This
module names those keys, renders a key's record, and picks the digest weeks
whose follow-ups an event can change. Everything is pure; the stream shell
decides which keys it owns and sends what differs from what it last saw on
the topic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import orjson
from pydantic import BaseModel

from app.contracts import dump_json
from app.intel import buckets as bucket_rules
from app.intel.engine import IntelEngine
from app.intel.incidents import Change, Record
from app.intel.periods import DAY, from_micros, micros, week_end, week_label
from app.intel.recurrence import recurrence_keys

RECURRENCE = "intel.recurrence"
BUCKETS = "intel.buckets"
ALERTS = "intel.alerts"
KEYED_TOPICS: tuple[str, ...] = (RECURRENCE, BUCKETS, ALERTS)
WINDOWS_DAYS: tuple[int, ...] = (7, 30)
"""The windows of the keyed records (fixed by their contract: ``count_7d``, ``count_30d``)."""
WEEK = 7 * DAY


@dataclass(frozen=True, order=True, slots=True)
class OutputKey:
    """One record key of one keyed output topic."""

    topic: str
    key: str


class RecurrenceContent(NamedTuple):
    """What an ``intel.recurrence`` record says apart from when it was computed. A record
    without a label (written before records carried one) differs from every labelled
    one, so it is re-stated with its label."""

    count_7d: int
    count_30d: int
    level: str
    label: str | None


Content = RecurrenceContent | bytes | None
"""What a keyed record says apart from when it was computed: the counts, level and label
of a recurrence record, the bytes of a bucket or alert record, ``None`` for nothing (no
record, or a tombstone)."""


@dataclass(frozen=True, slots=True)
class Row:
    """A keyed record at a watermark. Two rows with the same ``content`` need not both
    be sent."""

    key: OutputKey
    value: bytes | None
    content: Content
    record_id: str


def keys_of(record: Record, engine: IntelEngine) -> set[OutputKey]:
    bucket = bucket_rules.bucket_key(record, engine.policy.intel)
    return {OutputKey(RECURRENCE, k) for k in recurrence_keys(record)} | {
        OutputKey(BUCKETS, bucket)}


def moved_by(change: Change, engine: IntelEngine) -> set[OutputKey]:
    """Keys whose records an incident change can alter (before and after it)."""
    keys = keys_of(change.after, engine)
    if change.before is not None:
        keys |= keys_of(change.before, engine)
    return keys


def alert_moved(fingerprint: str) -> OutputKey:
    """The key an alert transition can alter: its fingerprint's ``intel.alerts`` record."""
    return OutputKey(ALERTS, fingerprint)


def aged(engine: IntelEngine, before: int, after: int) -> set[OutputKey]:
    """Keys with an incident or alert transition that entered or left a window when the
    watermark moved from ``before`` to ``after`` (microseconds)."""
    keys: set[OutputKey] = set()
    if after <= before:
        return keys
    keys |= {alert_moved(fp)
             for fp in engine.alerts.aged(before, after, engine.policy.intel.alerts)}
    bands = [(before, after)] + [(before - d * DAY, after - d * DAY) for d in WINDOWS_DAYS]
    for low, high in bands:
        for _, incident_id in engine.timeline.window(low, high):
            keys |= keys_of(engine.record(incident_id), engine)
    return keys


def live_keys(engine: IntelEngine, as_of: int) -> set[OutputKey]:
    """Keys with an incident in the largest window ending at ``as_of``."""
    keys = {alert_moved(fp)
            for fp in engine.alerts.published_fingerprints(as_of, engine.policy.intel.alerts)}
    for record in engine.window(as_of, max(WINDOWS_DAYS)):
        keys |= keys_of(record, engine)
    return keys


def row(engine: IntelEngine, key: OutputKey, as_of: datetime) -> Row:
    """The record of ``key`` at ``as_of`` (a bucket no longer listed is a tombstone)."""
    if key.topic == RECURRENCE:
        update = engine.recurrence_update(key.key, as_of)
        return Row(key, dump_json(update),
                   RecurrenceContent(update.count_7d, update.count_30d, update.level,
                                     update.label),
                   update.update_id)
    if key.topic == ALERTS:
        summary: BaseModel | None = engine.alerts.published_row(
            key.key, micros(as_of), engine.policy.intel.alerts)
    else:
        summary = engine.bucket_summary(key.key, as_of)
    name = key.topic.removeprefix("intel.").rstrip("s")
    if summary is None:
        return Row(key, None, None, f"{name}:{key.key}:gone")
    value = dump_json(summary)
    return Row(key, value, value, f"{name}:{hashlib.sha256(value).hexdigest()[:20]}")


def content(topic: str, value: bytes | None) -> Content:
    """What a record of ``topic`` read from the topic says, without when it was computed."""
    if value is None or topic != RECURRENCE:
        return value
    fields = orjson.loads(value)
    return RecurrenceContent(fields["count_7d"], fields["count_30d"], fields["level"],
                             fields.get("label"))


def quiet(content: Content) -> bool:
    """Whether a record says nothing is happening: none at all, a tombstone, or a
    recurrence record at zero. A key that never had a record needs none to say so;
    a zero record already on the topic is kept true, label included."""
    return content is None or (isinstance(content, RecurrenceContent)
                               and not (content.count_7d or content.count_30d))


def weeks_completed(before: int | None, after: int) -> list[str]:
    """Digest weeks whose end the watermark passed going from ``before`` to ``after``
    (none without a ``before``: a replica that just caught up asks :func:`weeks_of`)."""
    if before is None or after < before:
        return []
    weeks: list[str] = []
    label = week_label(from_micros(before))
    while week_end(label) <= from_micros(after):
        if week_end(label) > from_micros(before):
            weeks.append(label)
        label = week_label(week_end(label))
    return weeks


def weeks_of(started: Iterable[int], watermark: int) -> set[str]:
    """Completed digest weeks (end at or before ``watermark``) whose 30-day window
    holds one of the ``started`` times: the weeks those incidents can change."""
    weeks: set[str] = set()
    # Week ends fall on midnights, so an incident's day start gives the same weeks as
    # its start time: one calendar walk per distinct day, not per incident.
    for start in {value // DAY * DAY for value in started}:
        label = week_label(from_micros(start))
        # A week's window is [end - 30 days, end): the incident counts for weeks
        # ending after it started and at most 30 days later.
        while True:
            end = week_end(label)
            if end > from_micros(watermark) or end > from_micros(start + 30 * DAY):
                break
            weeks.add(label)
            label = week_label(end)
    return weeks

