"""The attribute index: per ``signature:`` / ``service:`` / ``kind:`` key, its incidents.

Keyed like ``intel.recurrence``, fed by ``by-attribute``. For each key the
``attributes`` table holds the key's incidents (as rows, pruned past the
policy horizon) and the key's event time ``at``: the newest ``occurred_at`` of
the changes it applied. From it this agent

- emits ``intel.recurrence`` for the key (:func:`app.intel.recurrence.update`
  at ``at``) whenever its counts, level or ``as_of`` differ from the last
  record emitted (the record id, ``update_id``, hashes its content). So the
  latest record of a key holds the counts of the key's incidents, as they
  finally are, in the windows ending at the record's ``as_of``;
- answers the correlation join: for each upsert of a batch, the key's
  candidates for that incident, ranked by :func:`app.intel.correlation.rank`
  (the top ``max_related`` of this index suffice, see
  :func:`app.intel.correlation.join_band`), go to ``join-answers`` keyed by
  the incident.

A batch is applied per key first and answered after, so an answer reflects
every change the key had received up to the end of the batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from app.contracts import dump_json
from app.intel import correlation, recurrence
from app.intel.engine import horizon_days
from app.intel.periods import DAY, from_micros
from app.stream.batch import per_partition, state_of
from app.stream.rows import AT, EVENT, ID, STARTED, Row, record_of, version_of

if TYPE_CHECKING:
    from faust.types import AgentT, StreamT

    from app.stream.app import IntelApp

State = dict[str, Any]
"""``{"m": {incident_id: row}, "at": micros, "sent": [count_7d, count_30d, level, at] | None}``."""


def new_state() -> State:
    return {"m": {}, "at": 0, "sent": None}


def apply_op(state: State, op: dict[str, Any]) -> Row | None:
    """Fold one repartition message into a key's state; the upserted row, if any."""
    members: dict[str, Row] = state["m"]
    if op["op"] == "up":
        row = op["row"]
        current = members.get(row[ID])
        state["at"] = max(state["at"], row[AT])
        if current is None or version_of(current) < version_of(row):
            members[row[ID]] = row
            return row
        return current if version_of(current) == version_of(row) else None
    current = members.get(op["id"])
    state["at"] = max(state["at"], op["at"])
    if current is not None and version_of(current) < (op["at"], op["ev"]):
        del members[op["id"]]
    return None


def prune(state: State, horizon: int) -> None:
    """Drop incidents started before the horizon (no window or lookback reaches them)."""
    cutoff = state["at"] - horizon * DAY
    members: dict[str, Row] = state["m"]
    for incident_id in [i for i, row in members.items() if row[STARTED] < cutoff]:
        del members[incident_id]


def register(app: IntelApp) -> AgentT:
    intel = app.policy.intel
    horizon = horizon_days(app.policy)
    table = app.state_table("attributes")

    async def attributes(stream: StreamT) -> None:
        await per_partition(stream, index)

    async def index(group: list) -> None:
        states: dict[bytes, State] = {}
        asked: dict[bytes, dict[str, Row]] = {}
        for event in group:
            key = event.message.key
            state = state_of(states, table, key, new_state)
            row = apply_op(state, orjson.loads(event.message.value))
            if row is not None:
                asked.setdefault(key, {})[row[ID]] = row
        for key, state in states.items():
            prune(state, horizon)
            key_type, value = key.decode().split(":", 1)
            at = state["at"]
            members: dict[str, Row] = state["m"]
            count_7d, count_30d = recurrence.counts_at((r[STARTED] for r in members.values()),
                                                       at)
            update = recurrence.update(key_type, value, from_micros(at), count_7d, count_30d,
                                       intel)
            said = [count_7d, count_30d, update.level, at]
            if said != state["sent"]:
                await app.outbox.send("intel.recurrence", key, dump_json(update),
                                      update.update_id)
                state["sent"] = said
            for target_row in asked.get(key, {}).values():
                target = record_of(target_row)
                candidates = [record_of(r) for r in members.values()
                              if correlation.join_band(key_type, target.started, r[STARTED],
                                                       intel)]
                ranked = correlation.rank(target, candidates, intel)
                answer = {"v": [target_row[AT], target_row[EVENT]], "src": key_type,
                          "t": target_row, "c": [members[r.incident_id] for r in ranked]}
                await app.outbox.send("join-answers", target_row[ID], orjson.dumps(answer))
        await app.outbox.flush()
        for key, state in states.items():
            table[key] = orjson.dumps(state)

    return app.agent(app.intel_topic("by-attribute"), name="attributes")(attributes)
