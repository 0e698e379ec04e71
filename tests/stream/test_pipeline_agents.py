"""The partitioned agents in Faust's test context: index → join → outputs, and buckets."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from app.contracts import CorrelateResponse, FollowUp, IncidentEvent, RecurrenceUpdate
from app.intel.incidents import to_record
from app.stream.app import create_app
from app.stream.incidents import change_messages
from app.stream.rows import row_of
from app.stream.settings import WorkerSettings
from tests.stream.conftest import RecordingOutbox, recording


def _event(n: int, *, minute: int, service: str = "gateway", status: str = "open") -> Any:
    return IncidentEvent.model_validate({
        "event_id": f"e-{n}", "type": "incident.opened",
        "occurred_at": f"2026-02-18T14:{minute:02d}:00Z",
        "incident": {"incident_id": f"inc-{n}", "service": service, "kind": "error_rate",
                     "severity": "P1", "status": status, "signature": "ab" * 32,
                     "title": "5xx spike", "started_at": f"2026-02-18T14:{minute:02d}:00Z"}})


def _changes(app: Any, events: list[Any]) -> list[tuple[str, str, bytes]]:
    rules = app.policy.intel.kind_derivation
    return [m for e in events
            for m in change_messages(None, row_of(to_record(e, rules)), app.policy.intel)]


async def _put_all(agent: Any, messages: list[tuple[str, str, bytes]], name: str) -> None:
    async with agent.test_context() as ctx:
        for topic, key, value in messages:
            if topic == name:
                await ctx.put(value, key=key.encode(), partition=0)


def test_the_join_ranks_the_three_indexes_answers_like_the_engine() -> None:
    app = create_app(WorkerSettings(app_id="t-join"))
    outbox = recording(app)
    events = [_event(n, minute=n) for n in range(1, 4)]
    asyncio.run(_put_all(app.agents["attributes"], _changes(app, events), "by-attribute"))

    updates = [RecurrenceUpdate.model_validate_json(s.value)
               for s in outbox.to("intel.recurrence")]
    final = {f"{u.type}:{u.key}": u for u in updates}
    assert final[f"signature:{'ab' * 32}"].count_7d == 3
    assert final["service:gateway"].count_30d == 3

    answers = outbox.to("join-answers")
    assert {orjson.loads(a.value)["src"] for a in answers} == {"signature", "service", "kind"}
    join_outbox = RecordingOutbox()
    app.outbox = join_outbox
    asyncio.run(_put_all(app.agents["joins"],
                         [("join-answers", a.key.decode(), a.value) for a in answers],
                         "join-answers"))
    by_incident = {s.key: CorrelateResponse.model_validate_json(s.value)
                   for s in join_outbox.to("intel.correlations")}
    # inc-3 was the last upsert: every index knew inc-1 and inc-2 by then.
    assert [r.incident_id for r in by_incident[b"inc-3"].related] == ["inc-2", "inc-1"]
    assert by_incident[b"inc-3"].related[0].reasons[0] == "same_signature"
    notes = {s.key: s for s in join_outbox.to("incidents.notes")}
    assert notes[b"inc-3"].record_id.startswith("intel_note:inc-3:")


def test_a_bucket_turning_high_gets_one_followup_per_week() -> None:
    app = create_app(WorkerSettings(app_id="t-buckets"))
    outbox = recording(app)
    app.replica._ready.set()  # noqa: SLF001 - no broker: the replica has nothing to read
    events = [_event(n, minute=n) for n in range(1, 13)]  # 12 ≥ the kind "high" threshold
    asyncio.run(_put_all(app.agents["buckets"], _changes(app, events), "by-bucket"))
    asyncio.run(_put_all(app.agents["buckets"], _changes(app, events), "by-bucket"))  # again

    followups = [FollowUp.model_validate_json(s.value) for s in outbox.to("intel.followups")]
    assert [f.meta.dedupe_key for f in followups] == ["intel_recur:2026-W08:gateway|error_rate"]
    assert outbox.to("intel.followups")[0].record_id == followups[0].meta.dedupe_key
    bucket = outbox.to("intel.buckets")[-1]
    assert orjson.loads(bucket.value)["count_7d"] == 12
    assert bucket.headers["intel-as-of"] == "2026-02-18T14:12:00Z"
