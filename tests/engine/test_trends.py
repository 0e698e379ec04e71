"""Daily counts and recent correlations (what the dashboard draws and lists) against
brute-force oracles over random histories."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from app.contracts import CorrelateRequest, event_from_obj
from app.intel.engine import IntelEngine
from app.intel.periods import micros
from app.policy import Policy
from tests.support.builders import at, incident_event, stamp

SERVICES = ["gateway", "billing"]
KINDS = ["error_rate", "oom"]

incidents = st.lists(st.tuples(st.integers(-45 * 24, 5 * 24),  # started, hours from BASE
                               st.sampled_from(SERVICES), st.sampled_from(KINDS),
                               st.sampled_from(["a" * 64, "b" * 64, None])),
                     max_size=40)


def engine_of(policy: Policy, rows: list[tuple[int, str, str, str | None]]) -> IntelEngine:
    engine = IntelEngine(policy)
    for n, (hours, service, kind, signature) in enumerate(rows):
        engine.apply(event_from_obj(incident_event(
            f"inc_{n:03d}", started=at(hours=hours), service=service, kind=kind,
            signature=signature, title=f"{kind} on {service}")))
    return engine


@settings(max_examples=120, deadline=None)
@given(rows=incidents, as_of_hours=st.integers(-10 * 24, 6 * 24),
       as_of_minutes=st.integers(0, 59))
def test_daily_incidents_tile_the_windows(policy: Policy, rows, as_of_hours,
                                          as_of_minutes) -> None:
    engine = engine_of(policy, rows)
    as_of = at(hours=as_of_hours, minutes=as_of_minutes)
    records = list(engine.book.incidents.values())
    keys = {f"{t}:{getattr(r, t)}" for r in records for t in ("signature", "kind", "service")}
    for key in keys | {"service:nobody"}:
        key_type, value = key.split(":", 1)
        days = engine.daily_incidents(key, as_of)
        assert len(days) == 30
        for i, count in enumerate(days):
            low, high = as_of - timedelta(days=30 - i), as_of - timedelta(days=29 - i)
            assert count == sum(1 for r in records if getattr(r, key_type) == value
                                and micros(low) < r.started <= micros(high)), (key, i)
        update = engine.recurrence_update(key, as_of)
        assert (sum(days[-7:]), sum(days)) == (update.count_7d, update.count_30d)


@settings(max_examples=120, deadline=None)
@given(firings=st.lists(st.tuples(st.integers(-40 * 24 * 60, 0), st.sampled_from(["fp1", "fp2"]),
                                  st.sampled_from(["firing", "resolved"])), max_size=40),
       as_of_minutes=st.integers(-3 * 24 * 60, 0))
def test_daily_firings_count_each_transition_to_firing_once(policy: Policy, firings,
                                                            as_of_minutes) -> None:
    engine = IntelEngine(policy)
    for n, (minutes, fingerprint, state) in enumerate(firings + firings):  # every one re-sent
        engine.apply(event_from_obj({
            "event_id": f"al-{n % max(1, len(firings))}", "type": "alert.transition",
            "occurred_at": stamp(at(minutes=minutes)),
            "alert": {"alert_id": "a", "fingerprint": fingerprint, "service": "gateway",
                      "kind": "oom", "severity": "P2", "env": "prod", "labels": {}},
            "from_state": None, "to_state": state, "incident_id": None}))
    as_of = at(minutes=as_of_minutes)
    kept = {f"al-{n}": row for n, row in enumerate(firings)}
    for fingerprint in ("fp1", "fp2", "fp-none"):
        days = engine.daily_firings(fingerprint, as_of)
        for i, count in enumerate(days):
            low, high = as_of - timedelta(days=30 - i), as_of - timedelta(days=29 - i)
            assert count == sum(1 for minutes, fp, state in kept.values()
                                if fp == fingerprint and state == "firing"
                                and low < at(minutes=minutes) <= high), (fingerprint, i)


@settings(max_examples=100, deadline=None)
@given(rows=incidents, limit=st.integers(1, 8), scan=st.integers(0, 50),
       as_of_hours=st.integers(-20 * 24, 6 * 24))
def test_recent_correlations_are_the_newest_related_answers(policy: Policy, rows, limit, scan,
                                                            as_of_hours) -> None:
    engine = engine_of(policy, rows)
    as_of = at(hours=as_of_hours)
    newest = sorted((r for r in engine.book.incidents.values() if r.started <= micros(as_of)),
                    key=lambda r: (r.started, r.incident_id), reverse=True)[:scan]
    answers = [engine.correlate(CorrelateRequest(action="correlate", incident_id=r.incident_id))
               for r in newest]
    want = [a for a in answers if a.related_count][:limit]
    assert engine.recently_correlated(as_of, limit, scan) == want
