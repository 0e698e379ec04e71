"""The tool actions on hand-made incidents: the seed's examples and the edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.contracts import (
    BucketsRequest,
    CorrelateRequest,
    GateRequest,
    RecurrenceRequest,
    WeeklyDigestRequest,
    event_from_obj,
    parse_request,
)
from app.intel.digest import escape
from app.intel.engine import ActionError, IntelEngine
from app.intel.periods import last_complete_week, week_end, week_label, week_start
from app.intel.signature import compute_signature
from tests.support.builders import at, incident_event
from tests.support.policies import tweak


def engine_with(policy, *raw_events) -> IntelEngine:
    engine = IntelEngine(policy)
    engine.apply_all(event_from_obj(e) for e in raw_events)
    return engine


def test_seed_example_scores_every_rule(policy):
    engine = engine_with(
        policy,
        incident_event("inc_a", started=at(hours=14), signature="ab" * 32),
        incident_event("inc_b", started=at(hours=15), signature="ab" * 32),
    )
    response = engine.correlate(CorrelateRequest(action="correlate", incident_id="inc_a"))
    assert response.related_count == 1
    (item,) = response.related
    assert item.score == 230
    assert item.reasons == ["same_signature", "same_service_and_kind",
                            "same_service_time_cluster", "same_kind_cross_service"]


def test_time_cluster_boundary_is_inclusive(policy):
    engine = engine_with(
        policy,
        incident_event("t", started=at(hours=0), service="gateway", kind="latency"),
        incident_event("exact", started=at(minutes=180), service="gateway", kind="oom"),
        incident_event("over", started=at(minutes=181), service="billing", kind="latency"),
    )
    related = {r.incident_id: r for r in engine.correlate(
        CorrelateRequest(action="correlate", incident_id="t")).related}
    assert related["exact"].reasons == ["same_service_time_cluster"]
    assert "over" not in related  # same kind but 181 minutes apart: no rule holds


def test_lookback_is_symmetric_and_inclusive(policy):
    engine = engine_with(
        policy,
        incident_event("t", started=at(days=40)),
        incident_event("before", started=at(days=10)),
        incident_event("after", started=at(days=70)),
        incident_event("too_old", started=at(days=10, minutes=-1)),
    )
    ids = [r.incident_id for r in engine.correlate(
        CorrelateRequest(action="correlate", incident_id="t")).related]
    assert ids == ["after", "before"]  # equal scores: newest first


def test_ordering_and_cut(policy):
    p = tweak(policy, "correlation", max_related=2)
    engine = engine_with(
        p,
        incident_event("t", started=at(hours=10)),
        incident_event("x1", started=at(days=2), title="other text"),
        incident_event("x2", started=at(days=3), title="more text"),
        incident_event("x3", started=at(hours=11), service="other"),
    )
    related = engine.correlate(CorrelateRequest(action="correlate", incident_id="t")).related
    assert [(r.incident_id, r.score) for r in related] == [("x2", 60), ("x1", 60)]


def test_unknown_incident_is_an_action_error(policy):
    engine = engine_with(policy)
    with pytest.raises(ActionError) as err:
        engine.correlate(CorrelateRequest(action="correlate", incident_id="missing"))
    assert err.value.code == "unknown_incident"


def test_note_has_a_deterministic_id_and_top_five(policy):
    events = [incident_event(f"i{n}", started=at(hours=n), signature="c" * 64) for n in range(8)]
    a = engine_with(policy, *events)
    b = engine_with(policy, *reversed(events))
    req = CorrelateRequest(action="correlate", incident_id="i0", append_note=True)
    note_a, note_b = a.correlate(req).note, b.correlate(req).note
    assert note_a == note_b
    assert len(note_a.meta.related) == 5
    assert note_a.note_id.startswith("intel_note:i0:")


def test_missing_kind_and_signature_are_derived(policy):
    engine = engine_with(policy, incident_event("x", started=at(), kind=None,
                                                title="Pod OOMKilled 3 times", service="api"))
    record = engine.record("x")
    assert record.kind == "oom"
    assert record.signature == compute_signature("api", "oom", "Pod OOMKilled 3 times")
    # Counts and ids are folded: the same incident text with another number matches.
    assert compute_signature("api", "oom", "Pod OOMKilled 7 times") == record.signature


def test_newest_event_wins_and_duplicates_are_ignored(policy):
    opened = incident_event("x", started=at(), status="open", event_id="e1")
    closed = incident_event("x", started=at(), status="resolved", event_id="e2",
                            occurred=at(hours=2), etype="incident.closed")
    stale_dup = dict(opened, incident=dict(opened["incident"], status="mitigating"))
    for order in ([opened, closed, stale_dup], [closed, stale_dup, opened]):
        engine = engine_with(policy, *order)
        assert engine.record("x").status == "resolved"
        assert engine.open_ids == set()


def test_recurrence_window_excludes_its_start_and_includes_as_of(policy):
    as_of = at(days=10)
    engine = engine_with(
        policy,
        incident_event("edge", started=as_of - timedelta(days=7)),
        incident_event("in", started=as_of - timedelta(days=7) + timedelta(seconds=1)),
        incident_event("now", started=as_of),
    )
    response = engine.recurrence(RecurrenceRequest(action="recurrence", window_days=7), as_of)
    assert response.total_incidents == 2


def test_recurrence_levels_and_recommendation(policy):
    events = [incident_event(f"s{n}", started=at(hours=n), signature="d" * 64, kind="oom")
              for n in range(6)]
    events += [incident_event(f"k{n}", started=at(hours=n), kind="oom", service="db",
                              title=f"other {n}x") for n in range(4)]
    engine = engine_with(policy, *events)
    response = engine.recurrence(RecurrenceRequest(action="recurrence"), at(days=1))
    highs = {(f.type, f.key): f for f in response.high_recurrence}
    assert highs[("signature", "d" * 64)].count == 6
    assert highs[("kind", "oom")].count == 10
    assert "dddddddd" in highs[("signature", "d" * 64)].recommendation
    assert "memory" in highs[("kind", "oom")].recommendation  # the by_kind template
    assert response.top_kinds[0].key == "oom"


def test_buckets_threshold_order_and_open_warning(policy):
    events = [incident_event(f"g{n}", started=at(hours=n), status="resolved") for n in range(3)]
    events += [incident_event(f"b{n}", started=at(hours=n), service="billing", kind="latency",
                              status="open" if n == 0 else "closed") for n in range(4)]
    events += [incident_event("lonely", started=at(), service="x", kind="disk")]
    engine = engine_with(policy, *events)
    result = engine.buckets(BucketsRequest(action="buckets"), at(days=1))
    keys = [b.bucket_key for b in result.buckets]
    assert keys == ["billing|latency", "gateway|error_rate"]
    billing = result.buckets[0]
    assert billing.counts.open == 1
    assert (billing.counts.count_7d, billing.counts.count_30d) == (4, 4)
    assert result.bucket_count == 2
    assert billing.recommendations[0] == policy.intel.buckets.open_warning
    assert billing.severity_mix == {"P0": 0, "P1": 0, "P2": 4, "P3": 0}
    assert len(result.buckets[1].recommendations) >= 1
    assert policy.intel.buckets.open_warning not in result.buckets[1].recommendations
    only = engine.buckets(BucketsRequest(action="buckets", service="gateway"), at(days=1))
    assert [b.bucket_key for b in only.buckets] == ["gateway|error_rate"]
    assert (only.service_filter, only.bucket_count) == ("gateway", 1)


def test_bucket_summary_is_the_listed_entry_or_a_tombstone(policy):
    """``intel.buckets`` values come from the engine: the entry ``buckets`` lists, else None."""
    events = [incident_event(f"g{n}", started=at(hours=n), status="resolved") for n in range(3)]
    events += [incident_event("lonely", started=at(), service="x", kind="disk")]
    engine = engine_with(policy, *events)
    for as_of in (at(days=1), at(days=40)):
        listed = {b.bucket_key: b for b in
                  engine.buckets(BucketsRequest(action="buckets"), as_of).buckets}
        for key in ("gateway|error_rate", "x|disk", "nobody|here"):
            assert engine.bucket_summary(key, as_of) == listed.get(key)
    assert engine.bucket_summary("gateway|error_rate", at(days=1)) is not None
    assert engine.bucket_summary("gateway|error_rate", at(days=40)) is None


def test_iso_week_53_and_week_bounds():
    assert week_label(datetime(2026, 12, 31, tzinfo=UTC)) == "2026-W53"
    assert week_start("2026-W53") == datetime(2026, 12, 28, tzinfo=UTC)
    assert week_end("2026-W53") == datetime(2027, 1, 4, tzinfo=UTC)
    assert last_complete_week(datetime(2027, 1, 4, 8, tzinfo=UTC)) == "2026-W53"
    with pytest.raises(ValueError):
        week_start("2025-W53")  # 2025 has 52 ISO weeks


def _hot_bucket(policy, n=6, open_last=True):
    events = [incident_event(f"h{i}", started=at(days=1, hours=i), signature="e" * 64,
                             status="closed") for i in range(n)]
    if open_last:
        events.append(incident_event("h_open", started=at(days=2), signature="e" * 64,
                                     status="mitigating"))
    return engine_with(policy, *events)


def test_weekly_digest_followup_and_dedupe(policy):
    engine = _hot_bucket(policy)
    as_of = datetime(2026, 2, 23, 8, tzinfo=UTC)
    req = WeeklyDigestRequest(action="weekly_digest")
    first = engine.weekly_digest(req, as_of)
    assert first.response.week == "2026-W08"
    (follow,) = first.followups
    assert follow.incident_id == "h_open"
    assert follow.meta.dedupe_key == "intel_recur:2026-W08:gateway|error_rate"
    assert follow.meta.due_date == "2026-03-02"
    assert follow.meta.count_7d == 7
    again = engine.weekly_digest(req, as_of, emitted={follow.meta.dedupe_key})
    assert again.followups == []
    assert [s.reason for s in again.response.json_summary.followups.skipped] == [
        "already_exists"]


def test_no_open_incident_is_skipped(policy):
    engine = _hot_bucket(policy, n=7, open_last=False)
    answer = engine.weekly_digest(WeeklyDigestRequest(action="weekly_digest", week="2026-W08"),
                                  at(days=30))
    assert answer.followups == []
    assert answer.response.json_summary.followups.skipped[0].reason == "no_open_incident"


def test_digest_of_an_empty_week(policy):
    engine = _hot_bucket(policy)
    answer = engine.weekly_digest(WeeklyDigestRequest(action="weekly_digest", week="2026-W20"),
                                  at(days=120))
    summary = answer.response.json_summary
    assert summary.recent_7d_count == 0
    assert summary.buckets == [] and answer.followups == []
    assert answer.response.markdown_preview.startswith("# Weekly Incident Digest — 2026-W20")


def test_digest_week_is_half_open(policy):
    monday_next = week_end("2026-W08")
    engine = engine_with(
        policy,
        incident_event("first", started=week_start("2026-W08")),
        incident_event("after", started=monday_next),
    )
    summary = engine.weekly_digest(WeeklyDigestRequest(action="weekly_digest", week="2026-W08"),
                                   monday_next + timedelta(hours=8)).response.json_summary
    assert summary.recent_7d_count == 1


def test_digest_markdown_escapes_and_truncates(policy):
    p = tweak(policy, "digest", markdown_max_chars=600)
    events = [incident_event(f"x{i}", started=at(hours=i), service=f"svc|<script>{i}",
                             status="open") for i in range(12)]
    engine = engine_with(p, *events)
    md = engine.weekly_digest(WeeklyDigestRequest(action="weekly_digest", save_artifacts=True),
                              at(days=8)).response.markdown_preview
    assert "<script>" not in md
    assert len(md) <= 600
    assert "digest truncated" in md
    assert escape("a|b <i>") == "a\\|b &lt;i&gt;"


def test_digest_artifacts_are_byte_identical_for_any_order(policy):
    events = [incident_event(f"y{i}", started=at(hours=5 * i), signature="f" * 64)
              for i in range(8)]
    req = WeeklyDigestRequest(action="weekly_digest", save_artifacts=True)
    as_of = at(days=8)
    a = engine_with(policy, *events).weekly_digest(req, as_of)
    b = engine_with(policy, *reversed(events)).weekly_digest(req, as_of)
    assert [x.data for x in a.artifacts] == [x.data for x in b.artifacts]
    assert [x.path for x in a.artifacts] == [
        "ops/reports/incidents/weekly/2026-W08.json", "ops/reports/incidents/weekly/2026-W08.md"]


@pytest.mark.parametrize(("profile", "severity", "passes"), [
    ("staging", "P1", False), ("staging", "P2", True), ("prod", "P0", True),
])
def test_gate_modes(policy, profile, severity, passes):
    events = [incident_event(f"g{i}", started=at(hours=i), signature="9" * 64,
                             severity=severity) for i in range(6)]
    engine = engine_with(policy, *events)
    out = engine.gate(GateRequest(action="gate", service="gateway", profile=profile), at(days=1))
    assert out.has_high_recurrence
    assert out.high_signatures == ["99999999"]
    assert out.pass_ is passes
    assert out.max_severity_seen == severity
    assert not out.skipped


def test_gate_off_and_unknown_profile(policy):
    engine = engine_with(policy)
    off = engine.gate(GateRequest(action="gate", service="x", recurrence_watch_mode="off"), at())
    assert off.skipped and off.pass_
    with pytest.raises(ActionError):
        engine.gate(GateRequest(action="gate", service="x", profile="nope"), at())


def test_request_parsing_rejects_unknown_actions_and_fields():
    assert parse_request({"tool": "incident_intelligence_tool", "action": "recurrence"})
    for bad in ({"action": "explode"}, {"action": "recurrence", "window_days": 0},
                {"action": "correlate"}, {"action": "buckets", "surprise": 1}, []):
        with pytest.raises(ValueError):
            parse_request(bad)


def test_note_id_changes_when_only_the_total_changes(policy):
    events = [incident_event(f"n{i}", started=at(hours=i), signature="7" * 64) for i in range(7)]
    before = engine_with(policy, *events)
    after = engine_with(policy, *events, incident_event("n_old", started=at(days=-3),
                                                        signature="7" * 64))
    req = CorrelateRequest(action="correlate", incident_id="n0", append_note=True)
    a, b = before.correlate(req).note, after.correlate(req).note
    assert a.meta.related == b.meta.related  # the quoted top five are the same
    assert a.message != b.message and a.note_id != b.note_id
