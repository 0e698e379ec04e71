"""The synthetic stream: pure generation, valid records, ground truth the engine confirms."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import orjson
import pytest

from app.cli import main
from app.contracts import OPEN_STATUSES, AlertTransition, IncidentEvent, decode_event
from app.simulation.catalog import StreamSettings, load_simulation_policy
from app.simulation.feed import (
    ALERTS_TOPIC,
    INCIDENTS_TOPIC,
    generate_stream,
    to_jsonl,
)
from tests.support.repository import ROOT, SIMULATION_POLICY

START = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def stream():
    return generate_stream(5, START, rate_per_s=20, duration_s=40)


def test_same_arguments_same_bytes_and_seed_matters():
    a, truth_a = generate_stream(3, START, 10, 30)
    b, truth_b = generate_stream(3, START, 10, 30)
    c, _ = generate_stream(4, START, 10, 30)
    assert to_jsonl(a) == to_jsonl(b)
    assert truth_a.model_dump_json() == truth_b.model_dump_json()
    assert to_jsonl(a) != to_jsonl(c)


def test_records_are_valid_keyed_and_in_time_order(stream):
    records, truth = stream
    assert len(records) == 800 == truth.records
    ids = set()
    for record in records:
        event = decode_event(record.value_bytes())
        # The bytes are exactly the contract model's JSON.
        assert record.value_bytes() == event.model_dump_json().encode()
        if isinstance(event, IncidentEvent):
            assert record.topic == INCIDENTS_TOPIC
            assert record.key == event.incident.incident_id
        else:
            assert isinstance(event, AlertTransition)
            assert record.topic == ALERTS_TOPIC
            assert record.key == event.alert.fingerprint
        ids.add(event.event_id)
    assert len(ids) == len(records)
    times = [r.occurred_at for r in records]
    assert times == sorted(times)
    counts = Counter(r.topic for r in records)
    assert truth.records_by_topic == {INCIDENTS_TOPIC: counts[INCIDENTS_TOPIC],
                                      ALERTS_TOPIC: counts[ALERTS_TOPIC]}


def test_truth_matches_the_records(stream):
    records, truth = stream
    latest: dict[str, IncidentEvent] = {}
    for record in records:
        if isinstance(record.value, IncidentEvent):
            latest[record.key] = record.value
    assert truth.full_lifecycles and truth.dropped == []
    assert len(truth.recurrence) == 2 and len(truth.clusters) == 2
    for pattern in truth.recurrence:
        incidents = [latest[i].incident for i in pattern.incident_ids]
        assert {i.signature for i in incidents} == {pattern.signature}
        assert len(pattern.signature) == 64
        assert {(i.service, i.kind, i.title) for i in incidents} == {
            (pattern.service, pattern.kind, pattern.title)}
        assert (truth.as_of - pattern.first_started_at).days < 7
    for cluster in truth.clusters:
        incidents = [latest[i].incident for i in cluster.incident_ids]
        span = max(i.started_at for i in incidents) - min(i.started_at for i in incidents)
        assert span.total_seconds() <= 180 * 60
        if cluster.shape == "cross_service":
            assert len({i.kind for i in incidents}) == 1
            assert len({i.service for i in incidents}) == len(incidents)
        else:
            assert len({i.service for i in incidents}) == 1
            assert len({i.kind for i in incidents}) == len(incidents)
    # Incidents end closed unless left open by a plant or still going on at the
    # span's end; state-carrying re-sends never reopen one.
    open_ids = {i for i, e in latest.items() if e.incident.status in OPEN_STATUSES}
    assert open_ids == set(truth.open_at_end)
    assert {e.incident.status for i, e in latest.items() if i not in open_ids} == {"closed"}
    for plant, pattern in zip(StreamSettings().recurrence, truth.recurrence, strict=True):
        newest = pattern.incident_ids[len(pattern.incident_ids) - plant.left_open:]
        assert set(newest) <= open_ids
        if plant.severity:
            assert {latest[i].incident.severity for i in pattern.incident_ids} == {plant.severity}
    assert max(r.occurred_at for r in records) <= truth.span_end
    assert truth.incidents == len(latest)


def test_small_budgets_keep_what_fits():
    records, truth = generate_stream(1, START, rate_per_s=1, duration_s=5)
    assert len(records) == 5
    assert not truth.full_lifecycles
    assert truth.dropped
    for pattern in truth.recurrence:
        assert pattern.count == len(pattern.incident_ids)
    planted = {i for p in truth.recurrence for i in p.incident_ids}
    planted |= {i for c in truth.clusters for i in c.incident_ids}
    opened = {r.key for r in records if r.topic == INCIDENTS_TOPIC}
    assert planted <= opened


def test_settings_change_the_plan():
    settings = StreamSettings(span_days=3, background_per_day=2,
                              recurrence=[{"count": 6}], clusters=[])
    _, truth = generate_stream(2, START, 10, 30, settings)
    assert [p.count for p in truth.recurrence] == [6]
    assert truth.clusters == []
    assert truth.incidents == 6 + 6


def test_stream_command_writes_jsonl_and_truth(cli, tmp_path):
    out, truth = tmp_path / "stream.jsonl", tmp_path / "truth.json"
    result = cli.invoke(main, ["simulate", "stream", "--rate", "10", "--duration", "30",
                               "--seed", "9", "--out", str(out), "--truth", str(truth),
                               "--policy", str(SIMULATION_POLICY)])
    assert result.exit_code == 0, result.output
    lines = out.read_bytes().splitlines()
    assert len(lines) == 300
    for line in lines:
        decode_event(line)
    planted = json.loads(truth.read_text(encoding="utf-8"))
    assert planted["records"] == 300
    assert [p["expected_level"] for p in planted["recurrence"]] == ["high", "warn"]


def test_stream_without_a_broker_or_file_is_a_clear_error(cli, monkeypatch):
    monkeypatch.delenv("INTEL_BOOTSTRAP_SERVERS", raising=False)
    result = cli.invoke(main, ["simulate", "stream", "--rate", "1", "--duration", "1",
                               "--policy", str(SIMULATION_POLICY)])
    assert result.exit_code == 2
    assert "INTEL_BOOTSTRAP_SERVERS" in result.output


def test_unreachable_broker_is_a_one_line_error(cli):
    result = cli.invoke(main, ["simulate", "stream", "--rate", "5", "--duration", "1",
                               "--bootstrap", "127.0.0.1:9", "--policy", str(SIMULATION_POLICY)])
    assert result.exit_code == 2
    assert "127.0.0.1:9" in result.output and "Traceback" not in result.output


# ----------------------------------------------------- the engine finds the planted patterns


def _tool(cli, events, request):
    result = cli.invoke(main, ["tool", "--events", str(events), "--policy", str(ROOT / "policy"),
                               json.dumps(request)])
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def test_engine_finds_planted_recurrence_and_clusters(cli, tmp_path):
    """Contract of `incident-intel tool` (recurrence and correlate actions; architecture §3)."""
    if "tool" not in main.commands:
        pytest.skip("the engine's `incident-intel tool` is not available")
    records, truth = generate_stream(11, START, rate_per_s=20, duration_s=40)
    events = tmp_path / "stream.jsonl"
    events.write_bytes(to_jsonl(records))

    recurrence = _tool(cli, events, {"action": "recurrence", "window_days": 7})
    counts = {row["key"]: row["count"] for row in recurrence["top_signatures"]}
    high = {(f["type"], f["key"]) for f in recurrence["high_recurrence"]}
    warn = {(f["type"], f["key"]) for f in recurrence["warn_recurrence"]}
    assert truth.recurrence
    for pattern in truth.recurrence:
        assert counts[pattern.signature] == pattern.count
        found = {"high": high, "warn": warn}[pattern.expected_level]
        assert ("signature", pattern.signature) in found
    # Nothing else recurs by signature: background incidents are all distinct.
    planted = {p.signature for p in truth.recurrence}
    assert {key for kind, key in high | warn if kind == "signature"} == planted

    assert truth.clusters
    for cluster in truth.clusters:
        for member in cluster.incident_ids:
            answer = _tool(cli, events, {"action": "correlate", "incident_id": member})
            related = {r["incident_id"]: r for r in answer["related"]}
            assert set(related) == set(cluster.incident_ids) - {member}
            for row in related.values():
                assert set(cluster.expected_rules) <= set(row["reasons"])


def test_engine_finds_planted_flapping_and_unlinked_alerts(cli, tmp_path):
    """The ``alerts`` action finds every planted alert with the counts the truth states."""
    shipped = load_simulation_policy(SIMULATION_POLICY).stream
    records, truth = generate_stream(13, START, rate_per_s=20, duration_s=40, settings=shipped)
    assert {a.shape for a in truth.alerts} == {"flapping", "unlinked"}
    events = tmp_path / "stream.jsonl"
    events.write_bytes(to_jsonl(records))
    answer = _tool(cli, events, {"action": "alerts", "window_days": 7})
    rows = {row["fingerprint"]: row for row in answer["alerts"]}
    promoted = {c["fingerprint"] for c in answer["promote_candidates"]}
    for planted in truth.alerts:
        row = rows[planted.fingerprint]
        assert (row["service"], row["kind"]) == (planted.service, planted.kind)
        assert row["firing_7d"] == planted.firings
        assert row["max_transitions_in_flap_window"] == planted.max_transitions_in_flap_window
        assert row["flapping"] == planted.expected_flapping
        assert (planted.fingerprint in answer["flapping"]) == planted.expected_flapping
        assert row["linked_incidents"] == []
        assert (planted.fingerprint in promoted) == planted.expected_promote
    flapping = [a for a in truth.alerts if a.shape == "flapping"]
    unlinked = [a for a in truth.alerts if a.shape == "unlinked"]
    assert all(a.expected_flapping and a.expected_promote for a in flapping)
    assert all(not a.expected_flapping and a.expected_promote for a in unlinked)
    # Alerts of planted incidents name their incident, so they are never candidates.
    linked = {r.value.alert.fingerprint for r in records
              if r.topic == ALERTS_TOPIC and r.value.incident_id}
    assert linked and not linked & promoted


def test_planted_alerts_fit_the_budget_or_are_dropped():
    settings = StreamSettings(recurrence=[], clusters=[], background_per_day=0,
                              alerts=[{"shape": "flapping", "firings": 5},
                                      {"shape": "unlinked", "firings": 30}])
    records, truth = generate_stream(3, START, rate_per_s=1, duration_s=20, settings=settings)
    assert [a.pattern_id for a in truth.alerts] == ["alert-1"]
    assert "alert-2" in truth.dropped
    planted = [r for r in records if r.key == truth.alerts[0].fingerprint]
    assert len(planted) == truth.alerts[0].transitions == 10

