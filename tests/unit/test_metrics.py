"""``app.metrics``: the exposition parses as Prometheus text and the values follow the updates."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import (
    DEAD_LETTER_REASONS,
    LATENCY_BUCKETS,
    Counter,
    Gauge,
    MetricsRegistry,
)
from app.topics import default_catalog

CATALOG = default_catalog()
INPUTS = sorted(n for n, s in CATALOG.topics.items() if s.direction == "in")
OUTPUTS = sorted(n for n, s in CATALOG.topics.items() if s.direction == "out")

ISSUE_METRICS = {
    "incident_intel_input_records_total": ("counter", {"topic", "outcome", "reason"}),
    "incident_intel_output_records_total": ("counter", {"topic"}),
    "incident_intel_consumer_lag_records": ("gauge", {"topic", "partition"}),
    "incident_intel_committed_offset": ("gauge", {"topic", "partition"}),
    "incident_intel_event_time_watermark_seconds": ("gauge", set()),
    "incident_intel_event_time_watermark_delay_seconds": ("gauge", set()),
    "incident_intel_event_to_output_latency_seconds": ("histogram", {"topic"}),
    "incident_intel_replica_incidents": ("gauge", set()),
    "incident_intel_http_requests_total": ("counter", {"route", "method", "code"}),
}


def parse(text: str) -> dict[str, tuple[str, list]]:
    """{exposed name: (type, samples)} as Prometheus' own parser reads the text."""
    out = {}
    for family in text_string_to_metric_families(text):
        name = family.name + ("_total" if family.type == "counter" else "")
        assert name not in out, f"{name} exposed twice"
        out[name] = (family.type, family.samples)
    return out


def sample(families: dict, name: str, suffix: str = "", **labels: str) -> float:
    hits = [s.value for s in families[name][1]
            if s.name == name.removesuffix("_total") + suffix
            or (s.name == name and not suffix)
            if s.labels == labels]
    assert len(hits) == 1, (name, labels, families[name][1])
    return hits[0]


def busy_registry(clock: float = 2_000_000_000.0) -> MetricsRegistry:
    registry = MetricsRegistry(clock=lambda: clock)
    registry.record_input("incidents.events", "applied")
    registry.record_input("incidents.events", "applied")
    registry.record_input("alerts.state", "duplicate")
    registry.record_input("incidents.events", "dead_lettered", "not_json")
    registry.record_output("intel.correlations", latency_seconds=0.2)
    registry.record_output("intel.followups")
    registry.set_partition("incidents.events", 3, committed=40, end=45)
    registry.set_watermark(clock - 90.5)
    registry.replica_incidents.set(12)
    registry.replica_ready.set(1)
    registry.set_recurrence("signature", 'odd"key\\with\nnewline', "high")
    registry.http_requests.inc(route="/v1/tools/incident_intelligence", method="POST", code=200)
    return registry


def test_the_issues_metrics_are_exposed_with_their_types_and_labels() -> None:
    families = parse(busy_registry().render())
    for name, (kind, labels) in ISSUE_METRICS.items():
        assert name in families, name
        assert families[name][0] == kind, name
        for s in families[name][1]:
            assert set(s.labels) - {"le"} == labels, (name, s.labels)
    for name, (kind, _) in families.items():
        assert name.startswith("incident_intel_"), name
        assert (kind == "counter") == name.endswith("_total"), name


def test_values_follow_the_updates_and_escaping_round_trips() -> None:
    families = parse(busy_registry().render())
    inputs = "incident_intel_input_records_total"
    assert sample(families, inputs, topic="incidents.events", outcome="applied",
                  reason="none") == 2
    assert sample(families, inputs, topic="incidents.events", outcome="dead_lettered",
                  reason="not_json") == 1
    assert sample(families, "incident_intel_consumer_lag_records",
                  topic="incidents.events", partition="3") == 5
    assert sample(families, "incident_intel_committed_offset",
                  topic="incidents.events", partition="3") == 40
    assert sample(families, "incident_intel_event_time_watermark_delay_seconds") == 90.5
    assert sample(families, "incident_intel_recurrence_level",
                  type="signature", key='odd"key\\with\nnewline') == 2
    latency = "incident_intel_event_to_output_latency_seconds"
    assert sample(families, latency, "_count", topic="intel.correlations") == 1
    assert sample(families, latency, "_bucket", topic="intel.correlations", le="0.1") == 0
    assert sample(families, latency, "_bucket", topic="intel.correlations", le="0.25") == 1
    assert sample(families, latency, "_bucket", topic="intel.correlations", le="+Inf") == 1


def test_watermark_delay_grows_with_the_wall_clock_and_is_nan_before_any_event() -> None:
    now = [1000.0]
    registry = MetricsRegistry(clock=lambda: now[0])
    delay = "incident_intel_event_time_watermark_delay_seconds"
    assert math.isnan(sample(parse(registry.render()), delay))
    registry.set_watermark(900.0)
    assert sample(parse(registry.render()), delay) == 100
    now[0] = 1600.0  # a stuck worker: no new events, the delay keeps growing
    assert sample(parse(registry.render()), delay) == 700


@given(st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), max_size=40))
def test_histogram_buckets_are_cumulative_counts_of_observations(values: list[float]) -> None:
    registry = MetricsRegistry(input_topics=INPUTS, output_topics=OUTPUTS)
    for value in values:
        registry.record_output("intel.recurrence", latency_seconds=value)
    if not values:
        return
    families = parse(registry.render())
    name = "incident_intel_event_to_output_latency_seconds"
    for bound in LATENCY_BUCKETS:
        le = repr(bound).removesuffix(".0") if bound.is_integer() else repr(bound)
        got = sample(families, name, "_bucket", topic="intel.recurrence", le=le)
        assert got == sum(1 for v in values if v <= bound)
    assert sample(families, name, "_count", topic="intel.recurrence") == len(values)
    assert sample(families, name, "_sum", topic="intel.recurrence") == pytest.approx(sum(values))


@given(st.lists(st.tuples(st.sampled_from(INPUTS),
                          st.sampled_from(["applied", "duplicate", *sorted(DEAD_LETTER_REASONS)])),
                max_size=60))
def test_input_counts_equal_a_tally_of_the_records(records: list[tuple[str, str]]) -> None:
    registry = MetricsRegistry(input_topics=INPUTS, output_topics=OUTPUTS)
    tally: dict[tuple[str, str, str], int] = {}
    for topic, what in records:
        outcome, reason = (what, "none") if what in ("applied", "duplicate") else (
            "dead_lettered", what)
        registry.record_input(topic, outcome, None if reason == "none" else reason)  # type: ignore[arg-type]
        tally[(topic, outcome, reason)] = tally.get((topic, outcome, reason), 0) + 1
    families = parse(registry.render())
    exposed = {(s.labels["topic"], s.labels["outcome"], s.labels["reason"]): s.value
               for s in families["incident_intel_input_records_total"][1]}
    assert exposed == tally


def test_closed_label_sets_refuse_values_outside_them() -> None:
    registry = MetricsRegistry()
    with pytest.raises(ValueError, match="outcome"):
        registry.record_input("incidents.events", "lost")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="topic"):
        registry.record_output("intel.nowhere")
    with pytest.raises(ValueError, match="reason"):
        registry.record_input("incidents.events", "dead_lettered")
    with pytest.raises(ValueError, match="reason"):
        registry.record_input("incidents.events", "applied", "not_json")


def test_open_labels_are_capped_and_the_drops_counted() -> None:
    registry = MetricsRegistry(max_series=3)
    for n in range(5):
        registry.http_requests.inc(route=f"/r{n}", method="GET", code=200)
    registry.http_requests.inc(route="/r0", method="GET", code=200)  # existing series: kept
    families = parse(registry.render())
    assert len(families["incident_intel_http_requests_total"][1]) == 3
    assert sample(families, "incident_intel_http_requests_total",
                  route="/r0", method="GET", code="200") == 2
    assert sample(families, "incident_intel_metric_series_dropped_total",
                  metric="incident_intel_http_requests_total") == 2


def test_revoked_partitions_and_calm_keys_leave_the_output() -> None:
    registry = busy_registry()
    registry.forget_partition("incidents.events", 3)
    registry.set_recurrence("signature", 'odd"key\\with\nnewline', "none")
    families = parse(registry.render())
    assert families["incident_intel_consumer_lag_records"][1] == []
    assert families["incident_intel_recurrence_level"][1] == []


def test_names_follow_the_conventions() -> None:
    registry = MetricsRegistry()
    with pytest.raises(ValueError, match="_total"):
        Counter(registry, "incident_intel_things", "no suffix")
    with pytest.raises(ValueError, match="prefix"):
        Gauge(registry, "other_thing", "no prefix")
    with pytest.raises(ValueError, match="twice"):
        Gauge(registry, "incident_intel_replica_incidents", "again")
