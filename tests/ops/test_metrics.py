"""``app.metrics``: the exposition parses as Prometheus text (and as OpenMetrics when asked
for), the values follow the updates, and every label set stays bounded."""

from __future__ import annotations

import math

import prometheus_client
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as om_text_string_to_metric_families,
)
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import (
    CONTENT_TYPE,
    DEAD_LETTER_REASONS,
    LATENCY_BUCKETS,
    Counter,
    Gauge,
    Histogram,
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
    buckets = {float(s.labels["le"]): s.value for s in families[name][1]
               if s.name == f"{name}_bucket"}
    assert buckets == {bound: sum(1 for v in values if v <= bound)
                       for bound in (*LATENCY_BUCKETS, math.inf)}
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


# ------------------------------------------------------------- prometheus_client's exposition

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def om_parse(body: bytes) -> dict[str, tuple[str, list]]:
    """{family name: (type, samples)} as the OpenMetrics parser reads the body."""
    return {f.name: (f.type, f.samples)
            for f in om_text_string_to_metric_families(body.decode())}


@pytest.mark.parametrize("accept", [
    "application/openmetrics-text",
    "application/openmetrics-text; version=1.0.0",
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
])
def test_openmetrics_is_answered_when_the_scraper_asks_for_it(accept: str) -> None:
    body, content_type = busy_registry().exposition(accept)
    assert content_type.startswith(OPENMETRICS)
    assert body.endswith(b"# EOF\n")
    families = om_parse(body)  # raises unless the body is valid OpenMetrics
    assert families["incident_intel_input_records"][0] == "counter"
    assert families["incident_intel_event_to_output_latency_seconds"][0] == "histogram"


@pytest.mark.parametrize("accept", [None, "", "*/*", "text/plain", "application/json",
                                    "text/plain;version=0.0.4;q=1,*/*;q=0.1"])
def test_anything_else_gets_the_text_format(accept: str | None) -> None:
    body, content_type = busy_registry().exposition(accept)
    assert content_type == CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    assert b"# EOF" not in body
    assert parse(body.decode())  # the text parser reads it


@given(st.lists(st.tuples(st.sampled_from(INPUTS), st.sampled_from(["applied", "duplicate"])),
                max_size=30),
       st.lists(st.floats(min_value=0, max_value=400, allow_nan=False), max_size=30))
def test_both_formats_carry_the_same_samples(inputs: list[tuple[str, str]],
                                             latencies: list[float]) -> None:
    registry = MetricsRegistry(input_topics=INPUTS, output_topics=OUTPUTS, clock=lambda: 50.0)
    for topic, outcome in inputs:
        registry.record_input(topic, outcome)  # type: ignore[arg-type]
    registry.record_outputs("intel.recurrence", len(latencies), latencies)
    registry.set_watermark(20.0)

    def values(families: dict[str, tuple[str, list]]) -> dict[tuple[str, tuple], float]:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for _, samples in families.values() for s in samples}

    text = values(parse(registry.render()))
    openmetrics = values(om_parse(registry.exposition("application/openmetrics-text")[0]))
    assert text == openmetrics


def test_counters_end_in_total_in_both_formats_and_nothing_else_does() -> None:
    registry = busy_registry()
    text = registry.render()
    body, _ = registry.exposition("application/openmetrics-text")
    for name, family in registry.families.items():
        counter = isinstance(family, Counter)
        assert name.endswith("_total") == counter, name
        if counter:
            assert f"# TYPE {name} counter" in text.splitlines()
            base = name.removesuffix("_total")
            assert f"# TYPE {base} counter" in body.decode().splitlines()
    samples = [s.name for f in text_string_to_metric_families(text) for s in f.samples]
    samples += [s.name for f in om_parse(body).values() for s in f[1]]
    counters = {n for n, f in registry.families.items() if isinstance(f, Counter)}
    assert {n for n in samples if n.startswith(tuple(c.removesuffix("_total") for c in counters))
            } <= counters
    assert not [n for n in samples if n.endswith("_created")]


def test_the_latency_histogram_counts_seconds_in_its_buckets() -> None:
    registry = MetricsRegistry(input_topics=INPUTS, output_topics=OUTPUTS)
    histogram = registry.output_latency
    assert histogram.name.endswith("_seconds") and isinstance(histogram, Histogram)
    registry.record_outputs("intel.recurrence", 3, [0.004, 2.0, 301.0])  # 4 ms, 2 s, 301 s
    families = parse(registry.render())
    name = "incident_intel_event_to_output_latency_seconds"
    buckets = {float(s.labels["le"]): s.value for s in families[name][1]
               if s.name == f"{name}_bucket"}
    assert list(buckets) == [*LATENCY_BUCKETS, math.inf]
    assert LATENCY_BUCKETS[0] == 0.005 and LATENCY_BUCKETS[-1] == 300.0  # 5 ms ... 300 s
    assert (buckets[0.005], buckets[1.0], buckets[2.5], buckets[300.0], buckets[math.inf]) == (
        1, 1, 2, 2, 3)
    assert sample(families, name, "_sum", topic="intel.recurrence") == pytest.approx(303.004)
    assert histogram.count(topic="intel.recurrence") == 3


@given(st.integers(min_value=1, max_value=5),
       st.lists(st.tuples(st.sampled_from(["set", "remove"]), st.integers(0, 8)), max_size=60))
def test_the_series_cap_keeps_the_first_series_and_counts_every_drop(
        cap: int, updates: list[tuple[str, int]]) -> None:
    registry = MetricsRegistry(input_topics=INPUTS, output_topics=OUTPUTS, max_series=cap)
    held: dict[int, int] = {}  # the oracle: partition -> lag, at most ``cap`` of them
    dropped = 0
    for step, (what, partition) in enumerate(updates):
        if what == "remove":
            registry.forget_partition("incidents.events", partition)
            held.pop(partition, None)
        else:
            registry.set_partition("incidents.events", partition, committed=0, end=step)
            if partition in held or len(held) < cap:
                held[partition] = step
            else:
                dropped += 2  # the lag and the committed offset, one update each
    families = parse(registry.render())
    lag = {int(s.labels["partition"]): s.value
           for s in families["incident_intel_consumer_lag_records"][1]}
    assert lag == held
    exposed = {s.labels["metric"]: s.value
               for s in families["incident_intel_metric_series_dropped_total"][1]}
    expected = {"incident_intel_consumer_lag_records": dropped / 2,
                "incident_intel_committed_offset": dropped / 2} if dropped else {}
    assert exposed == expected


def test_each_registry_is_its_own() -> None:
    first, second = MetricsRegistry(), MetricsRegistry()
    first.http_engine_reads.inc()
    assert first.http_engine_reads.value() == 1
    assert second.http_engine_reads.value() == 0
    assert prometheus_client.REGISTRY.get_sample_value(
        "incident_intel_http_engine_reads_total") is None
