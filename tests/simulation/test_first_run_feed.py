"""The history `incident-intel run` publishes shows every feature on a first run.

Checked offline: the events go through `incident-intel tool`, whose answers the
worker's replica, API and digest equal for the same events. Several seeds and
several moments of the week (the digest's week depends on the weekday).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from app.cli import main
from app.cli.first_run_feed import feed_history
from app.contracts import OPEN_STATUSES, AlertsRequest, IncidentEvent
from app.intel.engine import IntelEngine
from app.policy import load_policy
from app.simulation.feed import first_run_feed, to_jsonl
from tests.support.repository import ROOT

MOMENTS = [
    datetime(2026, 3, 2, 0, 20, tzinfo=UTC),   # Monday, before the digest's hour
    datetime(2026, 3, 4, 13, 5, tzinfo=UTC),   # Wednesday
    datetime(2026, 3, 8, 23, 55, tzinfo=UTC),  # Sunday, just before the week ends
]


@pytest.fixture(scope="module")
def policy():
    return load_policy(ROOT / "policy")


def _tool(cli, events, request):
    result = cli.invoke(main, ["tool", "--events", str(events), "--policy", str(ROOT / "policy"),
                               json.dumps(request)])
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


@pytest.mark.parametrize(("seed", "now"), [(7, MOMENTS[0]), (7, MOMENTS[1]), (7, MOMENTS[2]),
                                           (1, MOMENTS[2]), (42, MOMENTS[0]), (99, MOMENTS[1])])
def test_first_run_shows_every_feature(cli, tmp_path, policy, seed, now, monkeypatch):
    import app.cli.first_run_feed as first_run

    monkeypatch.setattr(first_run, "FEED_SEED", seed)
    records, truth = feed_history(policy, now)
    assert max(r.occurred_at for r in records) <= now, "event times end at or before now"
    latest: dict[str, IncidentEvent] = {}
    for record in records:
        if isinstance(record.value, IncidentEvent):
            latest[record.key] = record.value
    assert any(e.incident.status in OPEN_STATUSES for e in latest.values())
    assert any(e.incident.status == "closed" for e in latest.values())
    events = tmp_path / "feed.jsonl"
    events.write_bytes(to_jsonl(records))

    digest = _tool(cli, events, {"action": "weekly_digest"})["json_summary"]
    assert digest["recent_7d_count"] > 0, f"the default digest {digest['week']} is empty"
    created = digest["followups"]["created"]
    assert created, "a high bucket raises a follow-up in the default digest"
    high_buckets = {f["meta"]["bucket_key"] for f in created}
    assert high_buckets <= {b["bucket_key"] for b in digest["buckets"]}

    buckets = _tool(cli, events, {"action": "buckets"})["buckets"]
    assert any(b["bucket_key"] in high_buckets and b["counts"]["open"] > 0 for b in buckets)

    member = truth.clusters[0].incident_ids[0]
    correlate = _tool(cli, events, {"action": "correlate", "incident_id": member,
                                    "append_note": True})
    assert correlate["related"] and correlate["note"]["incident_id"] == member

    (high,) = [p for p in truth.recurrence if p.expected_level == "high"]
    gate = _tool(cli, events, {"action": "gate", "service": high.service, "profile": "staging"})
    assert gate["pass"] is False and gate["has_high_recurrence"]


def test_the_digest_due_on_monday_morning_is_not_empty_either(cli, tmp_path, policy):
    """Before Monday's digest hour the week due is the one before the last complete week."""
    records, _ = feed_history(policy, MOMENTS[0])
    events = tmp_path / "feed.jsonl"
    events.write_bytes(to_jsonl(records))
    digest = _tool(cli, events, {"action": "weekly_digest", "week": "2026-W08"})["json_summary"]
    assert digest["recent_7d_count"] > 0
    assert digest["followups"]["created"]


def test_event_times_are_whole_seconds(policy):
    records, _ = feed_history(policy, datetime(2026, 3, 4, 13, 5, 17, 250, tzinfo=UTC))
    assert all(r.occurred_at.microsecond == 0 for r in records)
    assert all(r.value.incident.started_at.microsecond == 0
               for r in records if isinstance(r.value, IncidentEvent))


@pytest.mark.parametrize(("seed", "now"), [(7, MOMENTS[0]), (7, MOMENTS[1]), (7, MOMENTS[2]),
                                           (1, MOMENTS[2]), (42, MOMENTS[0]), (99, MOMENTS[1])])
def test_the_planted_patterns_are_what_stands_out(policy, seed, now, monkeypatch):
    """With the shipped thresholds, the warn and high rows a first run shows are the
    planted recurrences (their signatures, kinds and services), the clusters' kinds and
    services, and the planted noisy alerts: a calm background around them."""
    import app.cli.first_run_feed as first_run

    monkeypatch.setattr(first_run, "FEED_SEED", seed)
    records, truth = feed_history(policy, now)
    engine = IntelEngine(policy)
    engine.apply_all(r.value for r in records)
    planted = ({("signature", p.signature) for p in truth.recurrence}
               | {("kind", p.kind) for p in truth.recurrence}
               | {("service", p.service) for p in truth.recurrence}
               | {("kind", k) for c in truth.clusters for k in c.kinds}
               | {("service", s) for c in truth.clusters for s in c.services})
    for days in (7, 30):
        _, rows = engine.recurrence_overview(now, days)
        lit = {(r.type, r.key): r.level for r in rows if r.level != "none"}
        assert set(lit) <= planted, (days, set(lit) - planted)
    _, month = engine.recurrence_overview(now, 30)
    levels = {(r.type, r.key): r.level for r in month}
    for plant in truth.recurrence:
        assert levels[("signature", plant.signature)] == plant.expected_level != "none"
    alerts = engine.alert_report(AlertsRequest(action="alerts"), now)
    planted_alerts = {a.fingerprint for a in truth.alerts}
    assert {r.fingerprint for r in alerts.alerts if r.level != "none"} == planted_alerts
    assert {c.fingerprint for c in alerts.promote_candidates} == planted_alerts
    flapping = {a.fingerprint for a in truth.alerts if a.expected_flapping}
    assert flapping <= set(alerts.flapping)
    background = truth.incidents - sum(p.count for p in truth.recurrence) - sum(
        len(c.incident_ids) for c in truth.clusters)
    days = (truth.span_end - truth.start) / timedelta(days=1)
    settings = policy.simulation.stream.for_first_run()
    assert background <= 2 * settings.background_per_day * days  # a calm team's weeks


def test_the_first_run_calibration_comes_from_the_policy(policy):
    """`first_run` in simulation.yml sets the background and the alert noise; the stream
    of `simulate stream` keeps its own."""
    stream = policy.simulation.stream
    assert stream.alert_noise_per_day is None
    now = MOMENTS[1]

    def feed(background: float, noise: float):  # type: ignore[no-untyped-def]
        first_run = stream.first_run.model_copy(update={"background_per_day": background,
                                                        "alert_noise_per_day": noise})
        return first_run_feed(7, now, 2.0, 600.0, stream.model_copy(
            update={"first_run": first_run}))

    quiet_records, quiet = feed(0, 0)
    busy_records, busy = feed(3, 5)
    planted = sum(p.count for p in quiet.recurrence) + sum(len(c.incident_ids)
                                                           for c in quiet.clusters)
    assert quiet.incidents == planted < busy.incidents
    span = (busy.span_end - busy.start) / timedelta(days=1)

    def noise_episodes(records) -> int:  # type: ignore[no-untyped-def]
        return sum(1 for r in records if r.topic == "alerts.state"
                   and r.payload["alert"]["labels"]["alertname"].endswith("Flap")
                   and r.payload["to_state"] == "pending")

    assert noise_episodes(quiet_records) == 0
    assert noise_episodes(busy_records) == round(5 * span)
    assert len(busy_records) == len(quiet_records) == 1200  # the rest are state re-sends
