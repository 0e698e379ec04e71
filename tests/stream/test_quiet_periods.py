"""Quiet periods: event time advances on the wall clock when no input arrives.

A stream that goes quiet for longer than a window: the keyed records decay to
zero and the gate passes, each record equal to what the offline tool answers
at that record's ``as_of``; a late event then re-opens the count. A restarted
worker resumes event time where the topics say it stood.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson

from app.contracts import GateRequest, decode_event
from app.intel import publication
from app.intel.engine import IntelEngine
from app.intel.periods import from_micros
from app.intel.publication import BUCKETS, RECURRENCE, OutputKey
from app.intel.watermark import idle_as_of
from app.metrics import MetricsRegistry
from app.stream.testing import Produced, StreamHarness
from tests.support.builders import at, incident_event
from tests.support.policies import default_policy

SIGNATURE = "c" * 64


def _incidents(n: int, *, first: datetime) -> list[dict[str, Any]]:
    """``n`` P1 incidents of one signature, an hour apart: a high recurrence."""
    return [incident_event(f"inc-{i}", started=first + timedelta(hours=i), service="gateway",
                           severity="P1", signature=SIGNATURE) for i in range(n)]


def _feed(harness: StreamHarness, events: list[dict[str, Any]]) -> None:
    harness.feed("incidents.events", [(e["incident"]["incident_id"].encode(), orjson.dumps(e))
                                      for e in events])


def _tool(events: list[dict[str, Any]], as_of: datetime) -> IntelEngine:
    """What ``incident-intel tool --as-of`` holds: the events by then, time advanced to it."""
    engine = IntelEngine(default_policy())
    engine.apply_until((decode_event(orjson.dumps(e)) for e in events), as_of)
    return engine


def _latest(records: list[Produced]) -> dict[OutputKey, Produced]:
    out: dict[OutputKey, Produced] = {}
    for record in records:
        if record.topic in (RECURRENCE, BUCKETS) and record.key is not None:
            out[OutputKey(record.topic, record.key.decode())] = record
    return out


def _check_against_tool(harness: StreamHarness, events: list[dict[str, Any]]) -> None:
    """Every keyed record's value is the tool's at that record's ``as_of``."""
    latest = _latest(harness.sent)
    assert latest
    for key, record in latest.items():
        as_of = datetime.fromisoformat(record.headers["intel-as-of"])
        assert record.value == publication.row(_tool(events, as_of), key, as_of).value, key


def _gate(engine: IntelEngine, as_of: datetime) -> Any:
    return engine.gate(GateRequest(action="gate", service="gateway", profile="staging"), as_of)


def _quiet_harness() -> tuple[StreamHarness, list[dict[str, Any]]]:
    policy = default_policy()
    harness = StreamHarness(policy, partitions=2, settle_seconds=0.0)
    events = _incidents(7, first=at(days=0))
    _feed(harness, events)
    harness.settle()
    return harness, events


def test_a_quiet_period_ages_the_keyed_records_to_zero_and_the_gate_passes() -> None:
    harness, events = _quiet_harness()
    policy = harness.replica.policy.intel
    newest = harness.replica.as_of()
    before = _gate(harness.replica.engine, newest)
    assert before.has_high_recurrence and not before.pass_  # the premise: a known-bad state
    assert not harness.replica.engine.advanced

    # Quiet for longer than the 30-day window; the wall clock says so.
    harness.wall = (newest + timedelta(days=31)).timestamp()
    assert harness.cycle.idle_since is not None
    quiet_for = harness.now - harness.cycle.idle_since
    harness.idle(policy.time.idle_after_seconds - quiet_for - 0.5)
    assert harness.replica.as_of() == newest, "not idle long enough yet"
    wall = harness.wall + 0.5
    harness.idle(0.5)
    advanced = from_micros(idle_as_of(round(wall * 1_000_000), policy))
    assert harness.replica.as_of() == advanced  # rounded to the minute, less the lateness
    assert advanced > newest + timedelta(days=30)
    assert harness.replica.engine.advanced

    latest = _latest(harness.sent)
    recurrence = [orjson.loads(r.value or b"null") for k, r in latest.items()
                  if k.topic == RECURRENCE]
    assert recurrence and all(r["count_30d"] == 0 and r["level"] == "none"
                              for r in recurrence), "every count decayed to zero, and says so"
    assert all(latest[k].value is None for k in latest if k.topic == BUCKETS), "buckets left"
    _check_against_tool(harness, events)
    gate = _gate(harness.replica.engine, harness.replica.as_of())
    assert gate.pass_ and gate.total_incidents == 0 and gate.as_of == advanced
    assert gate == _gate(_tool(events, advanced), advanced)

    # A late event (before the advanced as_of) re-opens the count.
    late = incident_event("inc-late", started=advanced - timedelta(hours=2), service="gateway",
                          severity="P1", signature=SIGNATURE)
    _feed(harness, [late])
    harness.settle()
    assert harness.replica.as_of() == advanced, "a late event does not move event time"
    signature = orjson.loads(_latest(harness.sent)[
        OutputKey(RECURRENCE, f"signature:{SIGNATURE}")].value or b"null")
    assert (signature["count_7d"], signature["count_30d"]) == (1, 1)
    _check_against_tool(harness, [*events, late])
    harness.close()


def test_events_keep_event_time_their_own_while_they_flow() -> None:
    """Inputs arriving more often than ``idle_after_seconds`` never advance event time,
    however far the wall clock is ahead of them (a replay, a backfill)."""
    harness, _ = _quiet_harness()
    policy = harness.replica.policy.intel
    harness.wall = (harness.replica.as_of() + timedelta(days=100)).timestamp()
    for n in range(5):
        harness.elapse(policy.time.idle_after_seconds / 2)
        event = incident_event(f"more-{n}", started=at(days=1, hours=n), service="billing")
        _feed(harness, [event])
        assert harness.replica.as_of() == at(days=1, hours=n)
    assert not harness.replica.engine.advanced


def test_event_time_never_goes_back_to_the_wall_clock() -> None:
    """A wall clock behind the newest event (events from a clock ahead, within the skew)
    leaves event time where the events put it."""
    harness, _ = _quiet_harness()
    newest = harness.replica.as_of()
    harness.wall = (newest - timedelta(minutes=5)).timestamp()
    harness.idle(harness.replica.policy.intel.time.idle_after_seconds)
    assert harness.replica.as_of() == newest and not harness.replica.engine.advanced


def test_a_restarted_worker_resumes_event_time_where_the_topics_say() -> None:
    """After a restart the replica replays the inputs (newest event time) and reads the
    keyed topics, written at an advanced ``as_of``: it resumes there, and publishes
    nothing older."""
    first, events = _quiet_harness()
    newest = first.replica.as_of()
    first.wall = (newest + timedelta(days=10)).timestamp()
    first.idle(first.replica.policy.intel.time.idle_after_seconds)
    advanced = first.replica.as_of()
    assert advanced > newest

    second = StreamHarness(default_policy(), partitions=2, settle_seconds=0.0)
    second.caught_up = False
    fetch: dict[tuple[str, int], list[Any]] = {}
    for event in events:
        real, record = second.record("incidents.events",
                                     event["incident"]["incident_id"].encode(),
                                     orjson.dumps(event))
        fetch.setdefault((real, record.partition), []).append(record)
    for out in first.sent:
        if out.topic in publication.KEYED_TOPICS:
            real, record = second.record(out.topic, out.key, out.value,
                                         headers=[(k, v.encode()) for k, v in
                                                  out.headers.items()])
            fetch.setdefault((real, record.partition), []).append(record)
    second.run([(tp[0], records) for tp, records in sorted(fetch.items())])
    second.caught_up = True
    second.settle()
    assert second.replica.as_of() == advanced and second.replica.engine.advanced
    for record in second.sent:
        if "intel-as-of" in record.headers:
            assert datetime.fromisoformat(record.headers["intel-as-of"]) >= advanced
    first.close()
    second.close()


def test_the_watermark_gauge_says_when_a_quiet_period_advanced_it() -> None:
    def sample(text: str, name: str) -> float:
        return next(float(line.split()[1]) for line in text.splitlines()
                    if line.startswith(name + " "))

    metrics = MetricsRegistry()
    metrics.set_watermark(1_700_000_000.0)
    idle = "incident_intel_event_time_watermark_idle_advanced"
    assert sample(metrics.render(), idle) == 0
    metrics.set_watermark(1_700_000_600.0, idle_advanced=True)
    text = metrics.render()
    assert sample(text, idle) == 1
    assert sample(text, "incident_intel_event_time_watermark_seconds") == 1_700_000_600.0
