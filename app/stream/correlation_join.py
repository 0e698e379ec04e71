"""The correlation join: an incident's candidates from three indexes, ranked once.

Keyed by ``incident_id``, fed by ``join-answers``: each of the signature,
service and kind indexes (:mod:`app.stream.attribute_index`) answers every
upsert of an incident with its ranked candidates, tagged with the incident's
version. The ``joins`` table collects the answers of the incident's newest
version (older ones are dropped); when all three are in, the union is ranked
with :func:`app.intel.correlation.rank` and

- ``intel.correlations`` gets the ``correlate`` response (``append_note``
  off), id ``corr:<hash of incident, version, related ids and scores>``,
  when it differs from the last one emitted for the incident;
- ``incidents.notes`` gets :func:`app.intel.correlation.note_for` (top
  ``note_top``) when the related list is not empty and its ``note_id`` or
  message (which counts all related incidents) differs from the last note
  emitted for the incident.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import orjson

from app.contracts import CorrelateResponse, dump_json
from app.intel import correlation
from app.stream.batch import per_partition, state_of
from app.stream.rows import ID, Row, record_of, version_of

if TYPE_CHECKING:
    from faust.types import AgentT, StreamT

    from app.stream.app import IntelApp

State = dict[str, Any]
"""``{"v": version, "t": row, "got": {source: [rows]}, "sent": content hash,
"note": "<note_id>:<message hash>"}``."""


def new_state() -> State:
    return {"v": None, "t": None, "got": {}, "sent": None, "note": None}


def collect(state: State, answer: dict[str, Any]) -> bool:
    """Add one index's answer; True when the newest version has all three."""
    version = answer["v"]
    if state["v"] is None or version > state["v"]:
        state.update(v=version, t=answer["t"], got={})
    elif version < state["v"]:
        return False
    state["got"][answer["src"]] = answer["c"]
    return len(state["got"]) == len(correlation.JOIN_SOURCES)


def correlation_id(response: CorrelateResponse, version: list[Any]) -> str:
    text = "|".join([response.incident_id, f"{version[0]}:{version[1]}"]
                    + [f"{r.incident_id}:{r.score}" for r in response.related])
    return "corr:" + hashlib.sha256(text.encode()).hexdigest()[:20]


def merged(answers: dict[str, list[Row]]) -> list[Row]:
    """The union of the indexes' candidates, each incident at its newest version."""
    best: dict[str, Row] = {}
    for rows in answers.values():
        for row in rows:
            current = best.get(row[ID])
            if current is None or version_of(current) < version_of(row):
                best[row[ID]] = row
    return [best[i] for i in sorted(best)]


def register(app: IntelApp) -> AgentT:
    intel = app.policy.intel
    table = app.state_table("joins")

    async def joins(stream: StreamT) -> None:
        await per_partition(stream, join)

    async def join(group: list) -> None:
        states: dict[bytes, State] = {}
        complete: dict[bytes, None] = {}
        for event in group:
            key = event.message.key
            state = state_of(states, table, key, new_state)
            if collect(state, orjson.loads(event.message.value)):
                complete[key] = None
        for key in complete:
            state = states[key]
            target = record_of(state["t"])
            related = correlation.rank(target, [record_of(r) for r in merged(state["got"])],
                                       intel)
            response = CorrelateResponse(incident_id=target.incident_id,
                                         related_count=len(related), related=related)
            value = dump_json(response)
            content = hashlib.sha256(value).hexdigest()[:20]
            if content != state["sent"]:
                await app.outbox.send("intel.correlations", key, value,
                                      correlation_id(response, state["v"]))
                state["sent"] = content
            if related:
                note = correlation.note_for(target.incident_id, related, intel)
                # The id covers the top ``note_top`` only; the message also counts every
                # related incident, so a changed message is re-sent under the same id.
                said = f"{note.note_id}:{hashlib.sha256(note.message.encode()).hexdigest()[:20]}"
                if said != state["note"]:
                    await app.outbox.send("incidents.notes", key, dump_json(note), note.note_id)
                    state["note"] = said
            state["got"] = {}
        await app.outbox.flush()
        for key, state in states.items():
            table[key] = orjson.dumps(state)

    return app.agent(app.intel_topic("join-answers"), name="joins")(joins)
