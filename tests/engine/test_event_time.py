"""Event time advanced without events: a worker that advanced it during quiet periods
and the offline tool that advances once, to the same ``as_of``, hold the same state.

Oracle: ``IntelEngine.apply_until`` (what ``incident-intel tool --as-of`` runs) over
the same events in the same order; the subject applies them with advances to random
later times in between, as a worker's idle rule would. Retention is short so that
the advances prune along the way.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from app.contracts import GateRequest, decode_event
from app.intel import publication
from app.intel.engine import IntelEngine
from app.intel.periods import from_micros, micros
from tests.support.builders import at, incident_event
from tests.support.policies import default_policy


def _policy() -> Any:
    policy = default_policy()
    intel = policy.intel.model_copy(update={"retention_days": 60})
    return policy.model_copy(update={"intel": intel})


@st.composite
def timelines(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """Incident events over ~120 days (some versions late), with advances of event
    time to random moments between them: ("event", dict) or ("advance", micros)."""
    steps: list[tuple[str, Any]] = []
    for n in range(draw(st.integers(1, 20))):
        started = at(days=draw(st.integers(0, 120)), hours=draw(st.integers(0, 23)))
        service = draw(st.sampled_from(["gateway", "billing"]))
        for v in range(draw(st.integers(1, 2))):
            occurred = started + timedelta(hours=draw(st.integers(0, 72)) * v)
            steps.append(("event", incident_event(
                f"inc-{n}", started=started, service=service, severity="P1",
                signature=draw(st.sampled_from(["a" * 64, "b" * 64])), occurred=occurred,
                status="open" if v == 0 else "resolved",
                etype="incident.opened" if v == 0 else "incident.updated")))
        if draw(st.booleans()):
            steps.append(("advance", micros(at(days=draw(st.integers(0, 160))))))
    return steps


@settings(max_examples=60, deadline=None)
@given(steps=timelines())
def test_advancing_along_the_way_equals_advancing_once_at_the_end(
        steps: list[tuple[str, Any]]) -> None:
    policy = _policy()
    worker = IntelEngine(policy)
    events = []
    for kind, value in steps:
        if kind == "event":
            event = decode_event(orjson.dumps(value))
            events.append(event)
            worker.apply(event)
        else:
            worker.advance(value)
    assert worker.watermark is not None
    as_of = from_micros(worker.watermark)
    tool = IntelEngine(policy)
    tool.apply_until(events, as_of)

    assert tool.watermark == worker.watermark
    assert sorted(tool.book.incidents) == sorted(worker.book.incidents)
    keys = publication.live_keys(tool, tool.watermark) | publication.live_keys(
        worker, worker.watermark)
    for key in sorted(keys):
        assert publication.row(worker, key, as_of) == publication.row(tool, key, as_of), key
    for service in ("gateway", "billing"):
        request = GateRequest(action="gate", service=service, profile="staging")
        assert worker.gate(request, as_of) == tool.gate(request, as_of)


def test_advance_moves_only_forward_and_says_so() -> None:
    engine = IntelEngine(default_policy())
    engine.apply(decode_event(orjson.dumps(incident_event("inc-1", started=at(days=0)))))
    newest = engine.watermark
    assert newest is not None and not engine.advanced
    assert not engine.advance(newest - 1) and engine.watermark == newest
    assert engine.advance(newest + 1) and engine.watermark == newest + 1 and engine.advanced
    late = incident_event("inc-2", started=at(days=-1))
    engine.apply(decode_event(orjson.dumps(late)))
    assert engine.watermark == newest + 1 and engine.advanced, "a late event moves nothing"
    engine.apply(decode_event(orjson.dumps(incident_event("inc-3", started=at(days=2)))))
    assert engine.watermark == micros(at(days=2)) and not engine.advanced
