"""The incidents agent: ``incidents.events`` folded into the ``incidents`` table.

Keyed by ``incident_id`` like its source topic, so each worker owns the
incidents of its partitions. The fold is the engine's: an event is normalised
with :func:`app.intel.incidents.to_record` and wins when its version
(``occurred_at``, ``event_id``) is newer than the stored one, which also drops
duplicate ``event_id``\\ s and stale out-of-order events. Each incident changed
by a batch is forwarded once, as its net change, to

- ``by-attribute`` under each of its ``signature:`` / ``service:`` / ``kind:``
  keys (an upsert that also asks the index for correlation candidates) and a
  removal under the keys it left;
- ``by-bucket`` under its bucket key (and a removal from the bucket it left).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from app.contracts import IncidentEvent
from app.intel.buckets import bucket_key
from app.intel.incidents import to_record
from app.intel.recurrence import recurrence_keys
from app.stream.batch import BATCH_SIZE, BATCH_WITHIN, by_partition, in_partition
from app.stream.ingest import validate
from app.stream.rows import AT, ID, Row, record_of, row_of, version_of

if TYPE_CHECKING:
    from faust.types import AgentT, StreamT

    from app.stream.app import IntelApp


def change_messages(before: Row | None, after: Row, policy_intel: object) -> list[
    tuple[str, str, bytes]
]:
    """The repartition messages of one incident's net change: (topic, key, value)."""
    after_record = record_of(after)
    up = orjson.dumps({"op": "up", "row": after})
    rm = orjson.dumps({"op": "rm", "id": after[ID], "at": after[AT], "ev": after[-1]})
    out: list[tuple[str, str, bytes]] = []
    keys = recurrence_keys(after_record)
    out += [("by-attribute", key, up) for key in keys]
    bucket = bucket_key(after_record, policy_intel)  # type: ignore[arg-type]
    out.append(("by-bucket", bucket, up))
    if before is not None:
        before_record = record_of(before)
        out += [("by-attribute", key, rm) for key in recurrence_keys(before_record)
                if key not in keys]
        old_bucket = bucket_key(before_record, policy_intel)  # type: ignore[arg-type]
        if old_bucket != bucket:
            out.append(("by-bucket", old_bucket, rm))
    return out


def register(app: IntelApp) -> AgentT:
    policy = app.policy
    table = app.state_table("incidents")
    app.incidents_table = table  # type: ignore[attr-defined]

    async def incidents(stream: StreamT) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN):
            for group in by_partition(events).values():
                with in_partition(group[-1]):
                    await fold(group)

    async def fold(group: list) -> None:
        before: dict[str, Row | None] = {}
        after: dict[str, Row] = {}
        for event in group:
            valid = await validate(app, event)
            if not isinstance(valid, IncidentEvent):
                continue  # dead-lettered, or an alert/learning event on this topic
            record = to_record(valid, policy.intel.kind_derivation)
            incident_id = record.incident_id
            if incident_id not in before:
                stored = table.get(incident_id.encode())
                before[incident_id] = orjson.loads(stored) if stored else None
            current = after.get(incident_id, before[incident_id])
            if current is not None and version_of(current) >= record.version:
                continue
            after[incident_id] = row_of(record)
        for incident_id, row in after.items():
            for name, key, value in change_messages(before[incident_id], row,
                                                    policy.intel):
                await app.outbox.send(name, key, value)
        await app.outbox.flush()
        for incident_id, row in after.items():
            table[incident_id.encode()] = orjson.dumps(row)

    return app.agent(app.intel_topic("incidents.events"), name="incidents")(incidents)
