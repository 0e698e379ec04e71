"""Responders' verdicts: the input rule per pair, retention, the rows that carry them,
the incidents a verdict changes, and the digest's Correlation quality section."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from app.contracts import (
    CorrelateRequest,
    CorrelationQualityRequest,
    InvalidEvent,
    WeeklyDigestRequest,
    decode_event,
    dump_json,
    event_from_obj,
)
from app.intel.engine import IntelEngine
from app.policy import Policy
from tests.support.builders import at, incident_event, stamp
from tests.support.policies import tweak

CLUSTER = ["inc_a", "inc_b", "inc_c"]


def verdict(event_id: str, a: str, b: str, value: str = "related", *, hours: float = 0,
            **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": "incident.linked",
            "occurred_at": stamp(at(days=6, hours=hours)), "incident_id": a,
            "related_incident_id": b, "verdict": value, "by": "ana", **extra}


def history() -> list[dict[str, Any]]:
    """Three gateway error-rate incidents close together, one billing incident far away."""
    events = [incident_event(i, started=at(days=1, minutes=20 * n))
              for n, i in enumerate(CLUSTER)]
    events.append(incident_event("inc_far", started=at(days=3), service="billing",
                                 kind="latency"))
    return events


def engine_of(policy: Policy, events: list[dict[str, Any]]) -> IntelEngine:
    engine = IntelEngine(policy)
    engine.apply_all(event_from_obj(e) for e in events)
    return engine


def rows(engine: IntelEngine, incident_id: str) -> dict[str, str | None]:
    answer = engine.correlate(CorrelateRequest(action="correlate", incident_id=incident_id))
    return {r.incident_id: r.verdict for r in answer.related}


def test_the_newest_verdict_of_an_unordered_pair_wins_in_any_order(policy: Policy) -> None:
    events = history() + [
        verdict("v1", "inc_a", "inc_b", "related", hours=1),
        verdict("v2", "inc_b", "inc_a", "unrelated", hours=2),  # the same pair, reversed
        verdict("v2", "inc_b", "inc_a", "unrelated", hours=2),  # re-sent
        verdict("v0", "inc_a", "inc_b", "related", hours=2),  # same time, smaller id
        verdict("v3", "inc_a", "inc_c", "unrelated", hours=1),
        verdict("v4", "inc_c", "inc_a", "related", hours=1),  # same time, larger id: wins
    ]
    answers = set()
    rng = random.Random(21)
    for _ in range(40):
        rng.shuffle(events)
        engine = engine_of(policy, events)
        answers.add(dump_json(engine.correlate(
            CorrelateRequest(action="correlate", incident_id="inc_a"))))
        assert rows(engine, "inc_a") == {"inc_b": "unrelated", "inc_c": "related"}
        assert rows(engine, "inc_b") == {"inc_a": "unrelated", "inc_c": None}
    assert len(answers) == 1


def test_a_row_without_a_verdict_serialises_as_before(policy: Policy) -> None:
    plain = engine_of(policy, history())
    judged = engine_of(policy, history() + [verdict("v1", "inc_a", "inc_b")])
    request = CorrelateRequest(action="correlate", incident_id="inc_c", append_note=True)
    assert dump_json(plain.correlate(request)) == dump_json(judged.correlate(request))
    row = orjson.loads(dump_json(judged.correlate(
        CorrelateRequest(action="correlate", incident_id="inc_b"))))["related"]
    assert [r.get("verdict") for r in row] == [None, "related"]  # inc_c first: newer
    assert "verdict" not in row[0]


def test_a_verdict_naming_one_incident_twice_is_refused() -> None:
    raw = orjson.dumps(verdict("v1", "inc_a", "inc_a"))
    with pytest.raises(InvalidEvent, match="related_incident_id: .*another incident"):
        decode_event(raw)
    with pytest.raises(InvalidEvent, match="verdict"):
        decode_event(orjson.dumps(verdict("v1", "inc_a", "inc_b", "maybe")))


def test_verdicts_follow_retention_whatever_the_order(policy: Policy) -> None:
    """An old verdict is dropped when the cutoff passes it, and ignored when it arrives
    after that: the same set either way."""
    short = tweak(policy, "correlation", lookback_days=1)
    short = short.model_copy(update={"intel": short.intel.model_copy(
        update={"retention_days": 31})})
    old = verdict("v_old", "inc_a", "inc_b")
    later = incident_event("inc_later", started=at(days=60))
    for events in ([*history(), old, later], [*history(), later, old]):
        engine = engine_of(short, events)
        assert len(engine.verdicts) == 0
    kept = engine_of(short, [*history(), later, verdict("v_new", "inc_a", "inc_b",
                                                        hours=24 * 40)])
    assert len(kept.verdicts) == 1


def test_answers_changed_by_names_the_incidents_whose_rows_changed(policy: Policy) -> None:
    engine = engine_of(policy, history())
    engine.apply(event_from_obj(verdict("v1", "inc_a", "inc_b")))
    assert engine.answers_changed_by(engine.verdict_change) == ("inc_a", "inc_b")
    engine.apply(event_from_obj(verdict("v2", "inc_b", "inc_a", hours=1)))  # same verdict
    assert engine.verdict_change is not None
    assert engine.answers_changed_by(engine.verdict_change) == ()
    engine.apply(event_from_obj(verdict("v2", "inc_b", "inc_a", hours=1)))  # a repeat
    assert engine.verdict_change is None
    engine.apply(event_from_obj(verdict("v3", "inc_a", "inc_far", "unrelated")))
    assert engine.answers_changed_by(engine.verdict_change) == ()  # listed by neither
    engine.apply(event_from_obj(verdict("v4", "inc_c", "inc_b", "unrelated")))
    assert engine.answers_changed_by(engine.verdict_change) == ("inc_b", "inc_c")
    engine.apply(event_from_obj(incident_event("inc_x", started=at(days=2))))
    assert engine.verdict_change is None


def quality(engine: IntelEngine, **request: Any) -> dict[str, Any]:
    answer = engine.correlation_quality(
        CorrelationQualityRequest(action="correlation_quality", **request), at(days=7))
    return orjson.loads(dump_json(answer))


def test_pairs_beyond_the_lookback_are_misses_only_when_related(policy: Policy) -> None:
    far = incident_event("inc_old", started=at(days=-40))
    engine = engine_of(policy, [*history(), far,
                                verdict("v1", "inc_a", "inc_old", "related"),
                                verdict("v2", "inc_b", "inc_old", "unrelated"),
                                verdict("v3", "inc_a", "inc_b", "related"),
                                verdict("v4", "inc_a", "inc_far", "unrelated"),
                                verdict("v5", "inc_a", "inc_nobody", "related")])
    answer = quality(engine)
    overall = answer["overall"]
    assert answer["labelled_pairs"] == 4 and answer["skipped_pairs"] == 1
    assert (overall["tp"], overall["fp"], overall["fn"], overall["tn"]) == (1, 0, 1, 2)
    assert overall["outside_lookback"] == 2
    assert answer["suggestion"] is None
    assert "4 labelled pair(s)" in answer["reason"] and "at least 30" in answer["reason"]
    # The window is on the judged incident: none of them started in the last day.
    assert quality(engine, window_days=1)["labelled_pairs"] == 0


def test_the_digest_section_appears_only_with_verdicts_in_its_window(policy: Policy) -> None:
    request = WeeklyDigestRequest(action="weekly_digest", week="2026-W08", save_artifacts=True)
    as_of = at(days=8)
    later = [incident_event("inc_new", started=at(days=8)),
             incident_event("inc_new2", started=at(days=8, minutes=5))]
    plain = engine_of(policy, [*history(), *later]).weekly_digest(request, as_of)
    outside = engine_of(policy, [*history(), *later, verdict("v1", "inc_new", "inc_new2")])
    assert outside.weekly_digest(request, as_of).artifacts == plain.artifacts
    judged = engine_of(policy, [*history(), verdict("v1", "inc_a", "inc_b"),
                                verdict("v2", "inc_far", "inc_c", "related")])
    answer = judged.weekly_digest(request, as_of)
    markdown = answer.artifacts[1].data.decode()
    assert "## Correlation quality" in markdown and "## Correlation quality" not in \
        plain.artifacts[1].data.decode()
    assert "2 pair(s) judged by responders" in markdown
    assert "precision 1.00, recall 0.50" in markdown  # inc_far/inc_c: related, never listed
    summary = orjson.loads(answer.artifacts[0].data)["correlation_quality"]
    assert summary["labelled_pairs"] == 2
    assert summary["as_of"] == "2026-02-22T23:59:59.999999Z"
    assert summary["overall"]["fn"] == 1


def test_a_late_verdict_goes_to_the_week_after(policy: Policy) -> None:
    """Windows of the digest end at its week's end: a pair judged from an incident of
    the next week is not in this week's section."""
    events = [*history(), incident_event("inc_next", started=at(days=7)),
              verdict("v1", "inc_next", "inc_a", "related")]
    engine = engine_of(policy, events)
    w08 = engine.weekly_digest(WeeklyDigestRequest(action="weekly_digest", week="2026-W08"),
                               at(days=9))
    w09 = engine.weekly_digest(WeeklyDigestRequest(action="weekly_digest", week="2026-W09"),
                               at(days=9))
    assert w08.response.json_summary.correlation_quality is None
    assert w09.response.json_summary.correlation_quality is not None
