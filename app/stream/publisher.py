"""Keyed outputs and follow-ups: one writer per key, chosen by the consumer group.

The replica computes every key's record (:mod:`app.intel.publication`); this
worker sends only the keys it owns. A key belongs to the partition Kafka's
default partitioner gives it (murmur2 of the key bytes), and a partition to
the worker that the consumer group assigned the same partition number of
``incidents.events``. Output topics have the input topics' partition count,
so a key's records also land in that partition: one writer per key and per
output partition.

What was last sent for each key is known from the topic itself: the replica
reads the keyed output topics back, and this worker remembers what it sent
until the read-back catches up. A key is sent when what it says differs from
that, so a new owner after a rebalance or a restart re-publishes only what
differs. Follow-ups are keyed by their dedupe key, sent by the owner of their
bucket, and never twice: the replica reads ``intel.followups`` back as the
dedupe table.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka.partitioner import murmur2

from app.contracts import FollowUp, dump_json
from app.intel import publication
from app.intel.engine import IntelEngine
from app.intel.periods import micros
from app.intel.publication import OutputKey

log = logging.getLogger(__name__)

AS_OF_HEADER = "intel-as-of"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to send: catalog topic, key, value (``None``: tombstone), id."""

    topic: str
    key: bytes
    value: bytes | None
    record_id: str
    headers: tuple[tuple[str, str], ...] = ()


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@functools.lru_cache(maxsize=1 << 16)
def _partition_of_key(key: str, partitions: int) -> int:
    """:func:`partition_of` of an output key, remembered: the same keys are asked
    about after every fetch, and murmur2 here is pure Python."""
    return partition_of(key.encode(), partitions)


@dataclass
class Seen:
    """What a keyed record on the topic says, and the watermark it was computed at."""

    content: bytes | None
    as_of: int | None


@dataclass
class Publisher:
    """Sends the keyed records and follow-ups of the partitions this worker owns."""

    partitions: int
    seen: dict[OutputKey, Seen] = field(default_factory=dict)
    """Latest record per key as read back from the topics (any writer)."""
    mine: dict[OutputKey, Seen] = field(default_factory=dict)
    """What this worker sent, until the read-back shows it."""
    emitted: set[str] = field(default_factory=set)
    """Follow-up dedupe keys on ``intel.followups`` or sent by this worker."""
    owned: frozenset[int] = frozenset()

    def owns(self, key: str) -> bool:
        return _partition_of_key(key, self.partitions) in self.owned

    def reassign(self, owned: Iterable[int]) -> frozenset[int]:
        """Take the new assignment; returns the partitions gained."""
        new = frozenset(owned)
        gained = new - self.owned
        if new != self.owned:
            lost = self.owned - new
            self.mine = {k: v for k, v in self.mine.items()
                         if _partition_of_key(k.key, self.partitions) not in lost}
            self.owned = new
        return gained

    def keys_in(self, partitions: frozenset[int], engine: IntelEngine,
                as_of: int) -> set[OutputKey]:
        """Every key of ``partitions`` that has a record or should have one."""
        candidates = publication.live_keys(engine, as_of) | set(self.seen) | set(self.mine)
        return {k for k in candidates
                if _partition_of_key(k.key, self.partitions) in partitions}

    def read_back(self, topic: str, key: bytes, value: bytes | None, as_of: str | None) -> None:
        """A record of a keyed output topic, as the replica reads it."""
        out = OutputKey(topic, key.decode())
        seen = Seen(publication.content(topic, value), _micros(as_of))
        self.seen[out] = seen
        if self.mine.get(out) == seen:
            del self.mine[out]

    def last(self, key: OutputKey) -> Seen:
        return self.mine.get(key) or self.seen.get(key) or Seen(None, None)

    def publish(self, engine: IntelEngine, keys: Iterable[OutputKey], as_of: datetime, *,
                refresh: bool = False) -> list[Outgoing]:
        """Send the owned ``keys`` whose record differs from the last one on the topic.

        With ``refresh``, a recurrence record computed at an older watermark is
        sent again at ``as_of`` even if its counts did not change, so a settled
        topic says the watermark it is true at.
        """
        out: list[Outgoing] = []
        at = micros(as_of)
        for key in sorted(keys):
            if not self.owns(key.key):
                continue
            last = self.last(key)
            row = publication.row(engine, key, as_of)
            stale = refresh and key.topic == publication.RECURRENCE and row.content is not None \
                and last.as_of != at
            if row.content == last.content and not stale:
                continue
            out.append(Outgoing(key.topic, key.key.encode(), row.value, row.record_id,
                                ((AS_OF_HEADER, as_of.isoformat()),)))
            self.mine[key] = Seen(row.content, at)
        return out

    def followups(self, followups: Iterable[FollowUp], *,
                  owned_only: bool = True) -> list[Outgoing]:
        """The follow-ups not emitted yet (now counted as emitted); with ``owned_only``,
        only those of buckets this worker owns."""
        out: list[Outgoing] = []
        for followup in followups:
            meta = followup.meta
            if meta.dedupe_key in self.emitted or (owned_only
                                                   and not self.owns(meta.bucket_key)):
                continue
            out.append(Outgoing("intel.followups", followup.incident_id.encode(),
                                dump_json(followup), meta.dedupe_key))
            self.emitted.add(meta.dedupe_key)
        return out


def _micros(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return micros(datetime.fromisoformat(text))
    except ValueError:
        return None

