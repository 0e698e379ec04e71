"""The incremental engine equals a naive recompute on random event sequences."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.contracts import event_from_obj
from app.intel.engine import IntelEngine
from app.intel.periods import micros
from tests.support.builders import at, incident_event
from tests.support.engine_oracle import Naive
from tests.support.policies import tweak
from tests.support.repository import POLICY_DIR

SERVICES = ["gateway", "billing", "search"]
KINDS = ["error_rate", "latency", None]  # None: derived from the title
SIGS = ["a" * 64, "b" * 64, None]
TITLES = ["5xx spike", "slow p99", "disk full"]
STATUSES = ["open", "mitigated", "resolved", "closed"]

# Start times on a 30-minute grid so that exact boundaries (180 minutes, whole
# days) are hit often.
starts = st.integers(min_value=0, max_value=24 * 2 * 45).map(lambda n: at(minutes=30 * n))

incident_versions = st.builds(
    dict,
    iid=st.sampled_from([f"inc_{i}" for i in range(14)]),
    started=starts,
    service=st.sampled_from(SERVICES),
    kind=st.sampled_from(KINDS),
    sig=st.sampled_from(SIGS),
    title=st.sampled_from(TITLES),
    status=st.sampled_from(STATUSES),
    severity=st.sampled_from(["P0", "P1", "P2", "P3"]),
    occurred_shift=st.integers(min_value=0, max_value=5),
)


def to_events(versions: list[dict]) -> list:
    events = []
    for n, v in enumerate(versions):
        raw = incident_event(
            v["iid"], started=v["started"], service=v["service"], kind=v["kind"],
            signature=v["sig"], title=v["title"], status=v["status"], severity=v["severity"],
            occurred=v["started"] + timedelta(hours=v["occurred_shift"]),
            event_id=f"e{n}", etype="incident.updated",
        )
        events.append(event_from_obj(raw))
    return events


def _policy(max_related: int, min_score: int):
    from app.policy import load_policy

    base = load_policy(POLICY_DIR)
    return tweak(base, "correlation", max_related=max_related, min_score=min_score)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    versions=st.lists(incident_versions, min_size=1, max_size=40),
    order=st.randoms(use_true_random=False),
    duplicates=st.lists(st.integers(min_value=0, max_value=39), max_size=6),
    max_related=st.sampled_from([1, 2, 3, 10]),
    min_score=st.sampled_from([20, 30, 61, 130]),
    as_of_steps=st.integers(min_value=0, max_value=24 * 2 * 45),
)
def test_engine_equals_naive_recompute(versions, order, duplicates, max_related, min_score,
                                       as_of_steps):
    policy = _policy(max_related, min_score)
    events = to_events(versions)
    events += [events[i] for i in duplicates if i < len(events)]
    order.shuffle(events)

    engine = IntelEngine(policy)
    engine.apply_all(events)
    naive = Naive(events, policy.intel)

    assert set(engine.book.incidents) == set(naive.incidents)
    for iid in sorted(naive.incidents):
        got = engine.correlation.correlate(engine.record(iid), engine.record)
        assert [(r.incident_id, r.score, r.reasons) for r in got] == naive.correlate(iid)

    as_of = at(minutes=30 * as_of_steps)
    for days in (1, 7, 30):
        got_records = engine.window(micros(as_of), days)
        assert sorted(r.incident_id for r in got_records) == sorted(
            c["id"] for c in naive.in_window(as_of, days))
        for field, attr in (("sig", "signature"), ("kind", "kind"), ("service", "service")):
            from collections import Counter

            assert Counter(getattr(r, attr) for r in got_records) == naive.counts(
                as_of, days, field)
