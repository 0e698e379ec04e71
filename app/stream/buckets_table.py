"""The buckets agent: per root-cause bucket, its incidents, summary and follow-ups.

Keyed by bucket key, fed by ``by-bucket``. The ``buckets`` table holds the
bucket's incidents (rows, pruned past the policy horizon) and its event time
``at`` (newest ``occurred_at`` of the changes applied). After each batch:

- ``intel.buckets`` gets :func:`app.intel.buckets.published` at ``at`` when it
  or ``at`` differ from the last record emitted: the bucket as the ``buckets``
  action would list it at ``at`` (given in the ``intel-as-of`` header), or a
  tombstone once it is no longer listed; id = bucket, ``at`` and value hash;
- ``intel.followups`` gets :func:`app.intel.followups.on_change` at ``at``:
  one follow-up per bucket per ISO week while the bucket is high. Its
  ``meta.dedupe_key`` is the id; the ``followups`` table, and the replica's
  view of ``intel.followups`` (which includes the digest's follow-ups and
  survives a crash between send and table write), keep it from being sent
  twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container
from typing import TYPE_CHECKING, Any

import orjson

from app.contracts import dump_json, format_timestamp
from app.intel import buckets, followups
from app.intel.engine import horizon_days
from app.intel.periods import from_micros
from app.stream.attribute_index import apply_op, new_state, prune
from app.stream.batch import per_partition, state_of
from app.stream.outbox import AS_OF_HEADER
from app.stream.rows import record_of

if TYPE_CHECKING:
    from faust.types import AgentT, StreamT

    from app.stream.app import IntelApp

State = dict[str, Any]
"""``{"m": {incident_id: row}, "at": micros, "sent": [value hash, at] | None}``."""


class _Emitted(Container[str]):
    """Dedupe keys sent: this partition's table, or anything the replica has seen."""

    def __init__(self, table: Any, seen: Container[str]) -> None:
        self.table, self.seen = table, seen

    def __contains__(self, key: object) -> bool:
        return key in self.seen or self.table.get(str(key).encode()) is not None


def register(app: IntelApp) -> AgentT:
    intel = app.policy.intel
    horizon = horizon_days(app.policy)
    table = app.state_table("buckets")
    sent_followups = app.state_table("followups")

    async def bucket_agent(stream: StreamT) -> None:
        await app.replica.wait_ready()  # its follow-up view must be complete first
        await per_partition(stream, summarise)

    async def summarise(group: list) -> None:
        states: dict[bytes, State] = {}
        for event in group:
            key = event.message.key
            state = state_of(states, table, key, new_state)
            apply_op(state, orjson.loads(event.message.value))
        emitted = _Emitted(sent_followups, app.replica.emitted)
        new_keys: list[bytes] = []
        for key, state in states.items():
            prune(state, horizon)
            name = key.decode()
            records = [record_of(row) for row in state["m"].values()]
            bucket = buckets.published(name, records, from_micros(state["at"]), intel)
            value = dump_json(bucket) if bucket is not None else None
            digest = hashlib.sha256(value).hexdigest()[:20] if value is not None else None
            said = [digest, state["at"]]
            if said != state["sent"] and (digest is not None or state["sent"] is not None):
                as_of = format_timestamp(from_micros(state["at"]))
                await app.outbox.send("intel.buckets", key, value,
                                      f"bucket:{name}:{as_of}:{digest or 'gone'}",
                                      headers={AS_OF_HEADER: as_of})
                state["sent"] = said
            followup = followups.on_change(name, records, state["at"], emitted, intel)
            if followup is not None:
                await app.outbox.send("intel.followups", followup.incident_id,
                                      dump_json(followup), followup.meta.dedupe_key)
                new_keys.append(followup.meta.dedupe_key.encode())
        await app.outbox.flush()
        for key, state in states.items():
            table[key] = orjson.dumps(state)
        for dedupe_key in new_keys:
            sent_followups[dedupe_key] = b"1"

    return app.agent(app.intel_topic("by-bucket"), name="buckets")(bucket_agent)
