"""``correlation_quality`` against a brute force over random labelled histories.

The oracle knows nothing of classes, orders or memos: it takes the newest
verdict of each pair by reading every verdict, decides "kept" from the naive
``correlate`` (tests/support/engine_oracle.py) of both incidents, counts every pair,
and for the suggestion scores every grid point by recomputing those naive
answers under the changed policy, then runs the cross-validation by hand.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis import strategies as st

from app.contracts import (
    CorrelationQualityRequest,
    LinkVerdict,
    dump_json,
    event_from_obj,
)
from app.intel.engine import IntelEngine
from app.intel.quality import fold_of
from app.policy import CorrelationRule, Policy, load_policy
from tests.support.builders import at, incident_event, stamp
from tests.support.engine_oracle import Naive
from tests.support.policies import tweak
from tests.support.repository import POLICY_DIR

SERVICES = ["gateway", "billing"]
KINDS = ["error_rate", "latency"]
SIGS = ["a" * 64, "b" * 64, "c" * 64]
FOLDS = 3
RADIUS = 1
STEP = 30
"""A coarse grid: one step either side still reaches policies that drop a rule."""

incident = st.builds(
    dict,
    started=st.one_of(  # mostly a few busy days (pairs near in time), some far apart
        st.integers(min_value=0, max_value=2 * 24 * 3).map(lambda n: at(days=44, minutes=30 * n)),
        st.integers(min_value=0, max_value=2 * 24 * 46).map(lambda n: at(minutes=30 * n))),
    service=st.sampled_from(SERVICES), kind=st.sampled_from(KINDS), sig=st.sampled_from(SIGS),
)
incidents = st.lists(incident, min_size=4, max_size=10)
verdicts = st.lists(st.builds(
    dict,
    a=st.integers(min_value=0, max_value=10), b=st.integers(min_value=0, max_value=10),
    related=st.booleans(), occurred=st.integers(min_value=0, max_value=4),
    noise=st.integers(min_value=0, max_value=9),
), min_size=8, max_size=40)
TRUTHS = [None, "sig", "service"]
"""What makes a pair related: a coin (None), or one attribute with some noise, so that a
better policy exists to be found."""


def _policy(max_related: int, min_score: int) -> Policy:
    base = tweak(load_policy(POLICY_DIR), "correlation", max_related=max_related,
                 min_score=min_score)
    grid = base.intel.correlation_quality.grid.model_copy(
        update={"radius": RADIUS, "weight_step": STEP, "min_score_step": STEP})
    return tweak(base, "correlation_quality", folds=FOLDS, min_labelled_pairs=4, grid=grid)


def _every_pair(incident_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A verdict row for every pair of incidents (a team that judged everything)."""
    return [{"a": a, "b": b, "related": (a * 7 + b) % 2 == 0, "occurred": (a + b) % 5,
             "noise": (a + b) % 10}
            for a, b in itertools.combinations(range(len(incident_rows)), 2)]


def _events(incident_rows: list[dict[str, Any]], verdict_rows: list[dict[str, Any]],
            resend: list[int], truth: str | None) -> list[Any]:
    events = [event_from_obj(incident_event(
        f"inc_{n}", started=row["started"], service=row["service"], kind=row["kind"],
        signature=row["sig"])) for n, row in enumerate(incident_rows)]
    linked = []
    for n, row in enumerate(verdict_rows):
        if row["a"] == row["b"]:
            continue
        related = row["related"]
        if truth is not None and row["a"] < len(incident_rows) > row["b"]:
            same = incident_rows[row["a"]][truth] == incident_rows[row["b"]][truth]
            related = same != (row["noise"] == 0)
        linked.append(event_from_obj({
            "event_id": f"v{n}", "type": "incident.linked",
            "occurred_at": stamp(at(days=50, hours=row["occurred"])),
            "incident_id": f"inc_{row['a']}", "related_incident_id": f"inc_{row['b']}",
            "verdict": "related" if related else "unrelated", "by": "tester"}))
    return events + linked + [linked[i] for i in resend if i < len(linked)]


def _winning(events: list[Any]) -> dict[frozenset[str], LinkVerdict]:
    best: dict[frozenset[str], LinkVerdict] = {}
    for event in events:
        if isinstance(event, LinkVerdict):
            pair = frozenset((event.incident_id, event.related_incident_id))
            known = best.get(pair)
            if known is None or (event.occurred_at, event.event_id) > (known.occurred_at,
                                                                       known.event_id):
                best[pair] = event
    return best


def _f1(counts: tuple[int, int, int]) -> Fraction:
    tp, fp, fn = counts
    return Fraction(2 * tp, 2 * tp + fp + fn) if tp else Fraction(0)


def _figures(counts: tuple[int, int, int]) -> dict[str, float | None]:
    tp, fp, fn = counts

    def ratio(a: int, b: int) -> float | None:
        return None if b == 0 else round(a / b, 4)

    return {"precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
            "f1": ratio(2 * tp, 2 * tp + fp + fn)}


def _policy_with(policy: Policy, weights: tuple[int, ...], min_score: int) -> Policy:
    rules = [CorrelationRule(name=r.name, weight=w)
             for r, w in zip(policy.intel.correlation.rules, weights, strict=True)]
    return tweak(policy, "correlation", rules=rules, min_score=min_score)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(incident_rows=incidents, verdict_rows=verdicts,
       resend=st.lists(st.integers(min_value=0, max_value=39), max_size=5),
       order=st.randoms(use_true_random=False),
       max_related=st.sampled_from([2, 10]), min_score=st.sampled_from([20, 61]),
       window_days=st.sampled_from([90, 90, 30, 7]), truth=st.sampled_from(TRUTHS),
       dense=st.booleans())
def test_counts_and_suggestion_equal_a_brute_force(incident_rows, verdict_rows, resend, order,
                                                    max_related, min_score, window_days,
                                                    truth, dense):
    check(incident_rows, verdict_rows, resend, order, max_related, min_score, window_days,
          truth, dense)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(incident_rows=st.lists(incident, min_size=7, max_size=10),
       order=st.randoms(use_true_random=False),
       max_related=st.sampled_from([2, 10]), min_score=st.sampled_from([20, 61]),
       truth=st.sampled_from(["sig", "service"]))
def test_suggestions_from_consistent_labels_equal_a_brute_force(incident_rows, order,
                                                                 max_related, min_score, truth):
    """Every pair judged, mostly by one attribute: a better policy often exists."""
    check(incident_rows, [], [], order, max_related, min_score, 90, truth, True)


def check(incident_rows, verdict_rows, resend, order, max_related, min_score, window_days,
          truth, dense) -> None:
    """The engine's answer over the shuffled events, against the brute force."""
    policy = _policy(max_related, min_score)
    if dense:
        verdict_rows = _every_pair(incident_rows) + verdict_rows
    events = _events(incident_rows, verdict_rows, resend, truth)
    order.shuffle(events)
    engine = IntelEngine(policy)
    engine.apply_all(events)
    as_of = at(days=50)
    answer = engine.correlation_quality(
        CorrelationQualityRequest(action="correlation_quality", window_days=window_days), as_of)

    # Same events in another order: the same bytes.
    other = IntelEngine(policy)
    other.apply_all(reversed(events))
    assert dump_json(other.correlation_quality(
        CorrelationQualityRequest(action="correlation_quality", window_days=window_days),
        as_of)) == dump_json(answer)

    naive = Naive(events, policy.intel)
    started = {i: c["started"] for i, c in naive.incidents.items()}
    lookback = timedelta(days=policy.intel.correlation.lookback_days)
    labelled = []
    skipped = 0
    for verdict in _winning(events).values():
        target, other_id = verdict.incident_id, verdict.related_incident_id
        if target not in started or other_id not in started:
            skipped += 1
            continue
        if as_of - timedelta(days=window_days) < started[target] <= as_of:
            labelled.append((target, other_id, verdict.verdict == "related"))

    def kept_under(p: Policy) -> list[bool]:
        naive.policy = p.intel
        lists = {i: {r[0] for r in naive.correlate(i)} for i in started}
        return [b in lists[a] or a in lists[b] for a, b, _ in labelled]

    def counts(kept: list[bool], fold: int | None = None) -> tuple[int, int, int]:
        tp = fp = fn = 0
        for (a, b, related), k in zip(labelled, kept, strict=True):
            if fold is not None and fold_of(a, b, FOLDS) != fold:
                continue
            tp += related and k
            fp += k and not related
            fn += related and not k
        return tp, fp, fn

    kept = kept_under(policy)
    now = counts(kept)
    evidence = engine.quality_evidence(engine.verdict_labels(), as_of, window_days)
    note(f"max_related cut binds somewhere: {bool(evidence.crowds)}")
    assert answer.labelled_pairs == len(labelled)
    assert answer.skipped_pairs == skipped
    overall = answer.overall
    assert (overall.tp, overall.fp, overall.fn) == now
    assert overall.tn == len(labelled) - sum(now)
    assert overall.outside_lookback == sum(
        abs(started[a] - started[b]) > lookback for a, b, _ in labelled)
    assert {k: getattr(overall, k) for k in ("precision", "recall", "f1")} == _figures(now)

    # Per rule, over every labelled pair.
    fps = [i for i, ((_, _, rel), k) in enumerate(zip(labelled, kept, strict=True))
           if k and not rel]
    misses = [i for i, ((_, _, rel), k) in enumerate(zip(labelled, kept, strict=True))
              if rel and not k]
    for row, rule in zip(answer.rules, policy.intel.correlation.rules, strict=True):
        fired = []
        for a, b, _ in labelled:
            x, y = naive.incidents[a], naive.incidents[b]
            delta = abs(x["started"] - y["started"])
            near = delta <= timedelta(minutes=policy.intel.correlation.within_minutes)
            holds = {"same_signature": x["sig"] == y["sig"],
                     "same_service_and_kind": x["service"] == y["service"]
                     and x["kind"] == y["kind"],
                     "same_service_time_cluster": x["service"] == y["service"] and near,
                     "same_kind_cross_service": x["kind"] == y["kind"] and near}
            fired.append(delta <= lookback and holds[rule.name])
        related = [rel for _, _, rel in labelled]
        support = sum(fired)
        assert row.rule == rule.name and row.support == support
        assert row.precision == (None if not support else round(
            sum(f and r for f, r in zip(fired, related, strict=True)) / support, 4))
        assert row.false_positive_share == (None if not fps else round(
            sum(fired[i] for i in fps) / len(fps), 4))
        assert row.miss_share == (None if not misses else round(
            sum(fired[i] for i in misses) / len(misses), 4))

    # The suggestion: every grid point scored from scratch, the cross-validation by hand.
    if len(labelled) < policy.intel.correlation_quality.min_labelled_pairs:
        assert answer.suggestion is None and "min_labelled_pairs" in answer.reason
        return
    current = tuple(r.weight for r in policy.intel.correlation.rules) + (min_score,)
    axes = [sorted({max(0, w + i * STEP) for i in range(-RADIUS, RADIUS + 1)})
            for w in current[:-1]]
    axes.append(sorted({max(1, min_score + i * STEP) for i in range(-RADIUS, RADIUS + 1)}))
    grid = []
    for values in itertools.product(*axes):
        moved = [abs(axis.index(v) - axis.index(c))
                 for axis, v, c in zip(axes, values, current, strict=True)]
        k = kept_under(_policy_with(policy, values[:-1], values[-1]))
        grid.append(((sum(1 for d in moved if d), sum(moved), values),
                     [counts(k, f) for f in range(FOLDS)]))

    def best(score: Any) -> int:
        return min(range(len(grid)), key=lambda i: (-_f1(score(i)), grid[i][0]))

    def total(i: int, without: int | None = None) -> tuple[int, int, int]:
        rows = [c for f, c in enumerate(grid[i][1]) if f != without]
        return (sum(r[0] for r in rows), sum(r[1] for r in rows), sum(r[2] for r in rows))

    chosen = best(total)
    pooled = [grid[best(lambda i, f=f: total(i, f))][1][f] for f in range(FOLDS)]
    after = (sum(c[0] for c in pooled), sum(c[1] for c in pooled), sum(c[2] for c in pooled))
    if grid[chosen][0][0] == 0 or _f1(after) <= _f1(now):
        note("no suggestion")
        assert answer.suggestion is None, answer
        return
    note("suggestion")
    suggestion = answer.suggestion
    assert suggestion is not None, answer.reason
    values = grid[chosen][0][2]
    assert list(suggestion.weights.values()) == list(values[:-1])
    assert suggestion.min_score == values[-1]
    assert suggestion.expected.before.model_dump() == _figures(now)
    assert suggestion.expected.after.model_dump() == _figures(after)
    assert suggestion.expected.in_sample.model_dump() == _figures(total(chosen))
    assert suggestion.grid_points == len(grid)
    # Never worse, cross-validated, than the current policy.
    assert _f1(after) > _f1(now)


def test_a_pair_is_kept_when_the_other_incidents_answer_lists_it() -> None:
    """With max_related 1 the target's answer lists only its best candidate; the pair is
    still kept because the other incident's answer lists the target."""
    policy = _policy(max_related=1, min_score=20)
    base = at(days=10)
    rows = [incident_event("inc_t", started=base, signature="a" * 64),
            incident_event("inc_best", started=base - timedelta(minutes=5), signature="a" * 64),
            incident_event("inc_far", started=base + timedelta(days=2), signature="a" * 64),
            incident_event("inc_far_2", started=base + timedelta(days=3)),
            {"event_id": "v1", "type": "incident.linked", "occurred_at": stamp(base),
             "incident_id": "inc_t", "related_incident_id": "inc_far", "verdict": "related",
             "by": "a"}]
    engine = IntelEngine(policy)
    engine.apply_all(event_from_obj(r) for r in rows)

    def listed(incident_id: str) -> list[str]:
        return [r.incident_id for r in engine.correlation.correlate(engine.record(incident_id),
                                                                    engine.record)]

    assert listed("inc_t") == ["inc_best"] and listed("inc_far") == ["inc_t"]
    answer = engine.correlation_quality(
        CorrelationQualityRequest(action="correlation_quality"), at(days=20))
    assert (answer.overall.tp, answer.overall.fn) == (1, 0)
