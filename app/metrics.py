"""The worker's Prometheus metrics: ``prometheus_client`` with a bound on every label set.

Every name starts with ``incident_intel_``, uses base units (seconds, records)
and counters end in ``_total``. Counting, the histogram, the registry and the
exposition (Prometheus text 0.0.4, or OpenMetrics when the scraper's
``Accept`` asks for it) are ``prometheus_client``'s; each :class:`MetricsRegistry`
owns a :class:`~prometheus_client.CollectorRegistry` of its own, so several
applications (and tests) in one process never share a series.

What this module adds is the bound on labels. A label either has a closed set
of values (an outcome, a catalog topic; anything else is a wiring bug and
raises) or is capped in how many distinct series it may hold (a partition, a
route, a recurrence key); past the cap a new series is dropped and counted in
``incident_intel_metric_series_dropped_total``, so a flood of odd values can
never exhaust the memory of the worker or of Prometheus. The ``_created``
series ``prometheus_client`` adds to counters and histograms are left out:
nothing reads them, and they would double the series of every family.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Generic, Literal, TypeVar

import prometheus_client
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from app.contracts import DEAD_LETTER_REASONS as _DEAD_LETTER_REASONS
from app.contracts import DeadLetterReason

__all__ = [
    "CONTENT_TYPE",
    "DEAD_LETTER_REASONS",
    "LATENCY_BUCKETS",
    "Counter",
    "DeadLetterReason",
    "Gauge",
    "Histogram",
    "InputOutcome",
    "MetricsRegistry",
]

PREFIX = "incident_intel_"
CONTENT_TYPE = choose_encoder("")[1]
"""What ``/metrics`` answers by default: the Prometheus text format 0.0.4."""

InputOutcome = Literal["applied", "duplicate", "dead_lettered"]
INPUT_OUTCOMES: frozenset[str] = frozenset({"applied", "duplicate", "dead_lettered"})

DEAD_LETTER_REASONS: frozenset[str] = frozenset(_DEAD_LETTER_REASONS)
"""The ``reason`` label of a dead-lettered input (:data:`app.contracts.DeadLetterReason`);
``"none"`` is the reason label of every record that was not dead-lettered."""

LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                                      10.0, 30.0, 60.0, 300.0)
"""Upper bounds (seconds) of the event-to-output latency histogram (``+Inf`` follows)."""

SOURCE_RECEIVERS: frozenset[str] = frozenset({"alertmanager", "pagerduty"})
SOURCE_DELIVERY_OUTCOMES: frozenset[str] = frozenset({
    "accepted", "ignored", "disabled", "unauthorized", "too_large", "request_timeout",
    "invalid", "unavailable", "internal"})
"""What became of a webhook delivery: every record acknowledged (``accepted``), nothing to
record (``ignored``), receiver off (``disabled``, 404), refused credentials (401), body
too large (413) or too slow (408), not the sender's format or a wrong method or source
name (``invalid``, 400/405), the broker did not acknowledge (``unavailable``, 503), a bug
(``internal``)."""
SOURCE_RECORD_OUTCOMES: frozenset[str] = frozenset({"published", "repeat"})

RECURRENCE_TYPES: frozenset[str] = frozenset({"signature", "kind", "service"})
LEVEL_VALUES: Mapping[str, int] = {"none": 0, "warn": 1, "high": 2}

DEFAULT_MAX_SERIES = 1000
SERIES_DROPPED = "incident_intel_metric_series_dropped_total"

Labels = tuple[str, ...]
M = TypeVar("M", bound=MetricWrapperBase)


class _Family(Collector, Generic[M]):
    """One metric name: a ``prometheus_client`` metric, its allowed label values and the
    series it has admitted under its cap."""

    kind: str = ""

    def __init__(self, registry: MetricsRegistry, name: str, help_text: str,
                 labels: Sequence[str] = (), *,
                 values: Mapping[str, Iterable[str]] | None = None,
                 max_series: int = DEFAULT_MAX_SERIES) -> None:
        if not name.startswith(PREFIX):
            raise ValueError(f"metric {name!r} lacks the {PREFIX!r} prefix")
        self.name = name
        self.help = help_text
        self.labels: Labels = tuple(labels)
        self.values: dict[str, frozenset[str]] = {
            label: frozenset(allowed) for label, allowed in (values or {}).items()}
        unknown = set(self.values) - set(self.labels)
        if unknown:
            raise ValueError(f"{name}: values given for unknown labels {sorted(unknown)}")
        self.max_series = max_series
        self._registry = registry
        self._admitted: set[Labels] = set()
        self.metric: M = self._make()
        registry.register(self)

    def _make(self) -> M:
        """The ``prometheus_client`` metric, kept out of any registry but ours."""
        raise NotImplementedError

    def _key(self, labels: Mapping[str, object]) -> Labels:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name}: labels {sorted(labels)} != {sorted(self.labels)}")
        key = tuple(str(labels[name]) for name in self.labels)
        for name, value in zip(self.labels, key, strict=True):
            allowed = self.values.get(name)
            if allowed is not None and value not in allowed:
                raise ValueError(f"{self.name}: {name}={value!r} is not one of "
                                 f"{sorted(allowed)}")
        return key

    def _child(self, labels: Mapping[str, object]) -> M | None:
        """The series of ``labels``; ``None`` (and the drop counted) past the cap."""
        if not self.labels:
            self._key(labels)
            return self.metric
        key = self._key(labels)
        with self._registry.lock:
            if key not in self._admitted:
                if len(self._admitted) >= self.max_series:
                    self._registry.count_dropped(self.name)
                    return None
                self._admitted.add(key)
            return self.metric.labels(*key)

    def _forget(self, labels: Mapping[str, object]) -> None:
        key = self._key(labels)
        with self._registry.lock:
            if key in self._admitted:
                self._admitted.discard(key)
                self.metric.remove(*key)

    def _sample(self, suffix: str, labels: Mapping[str, object]) -> float | None:
        key = self._key(labels)
        return self._registry.registry.get_sample_value(
            self.name.removesuffix("_total") + suffix, dict(zip(self.labels, key, strict=True)))

    def describe(self) -> Iterable[Metric]:
        return self.metric.describe()

    def collect(self) -> Iterator[Metric]:
        for family in self.metric.collect():
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


class Counter(_Family[prometheus_client.Counter]):
    """A monotonically increasing count; the name ends in ``_total``."""

    kind = "counter"

    def _make(self) -> prometheus_client.Counter:
        if not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name!r} must end in _total")
        return prometheus_client.Counter(self.name, self.help, self.labels, registry=None)

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: a counter cannot decrease ({amount})")
        child = self._child(labels)
        if child is not None:
            child.inc(amount)

    def value(self, **labels: object) -> float:
        """The current value of one series (0 when it was never touched)."""
        return self._sample("_total", labels) or 0.0


class Gauge(_Family[prometheus_client.Gauge]):
    """A value that goes up and down; a labelled series can be removed."""

    kind = "gauge"

    def _make(self) -> prometheus_client.Gauge:
        return prometheus_client.Gauge(self.name, self.help, self.labels, registry=None)

    def set(self, value: float, **labels: object) -> None:
        child = self._child(labels)
        if child is not None:
            child.set(value)

    def set_function(self, read: Callable[[], float]) -> None:
        """A label-less gauge whose value is ``read()`` at each scrape."""
        if self.labels:
            raise ValueError(f"{self.name}: only a label-less gauge is read at scrape time")
        self.metric.set_function(read)

    def remove(self, **labels: object) -> None:
        """Forget one series (a partition revoked, a key back to normal)."""
        self._forget(labels)

    def value(self, **labels: object) -> float:
        """The current value of one series (0 when it was never set)."""
        found = self._sample("", labels)
        return 0.0 if found is None else found


class Histogram(_Family[prometheus_client.Histogram]):
    """Observations (seconds) counted into the ``le`` buckets of :data:`LATENCY_BUCKETS`."""

    kind = "histogram"
    buckets: tuple[float, ...] = (*LATENCY_BUCKETS, math.inf)

    def _make(self) -> prometheus_client.Histogram:
        if "le" in self.labels:
            raise ValueError(f"{self.name}: 'le' is reserved for histogram buckets")
        return prometheus_client.Histogram(self.name, self.help, self.labels,
                                           buckets=self.buckets, registry=None)

    def observe(self, value: float, **labels: object) -> None:
        self.observe_all((value,), **labels)

    def observe_all(self, values: Iterable[float], **labels: object) -> None:
        """Many observations of one series (its labels checked once)."""
        child = self._child(labels)
        if child is None:
            return
        for value in values:
            if math.isnan(value):
                raise ValueError(f"{self.name}: cannot observe NaN")
            child.observe(value)

    def count(self, **labels: object) -> int:
        return int(self._sample("_count", labels) or 0)


def _catalog_topics() -> tuple[frozenset[str], frozenset[str]]:
    """(input, output) topic names of the catalog: the values a ``topic`` label may take."""
    from app.topics import default_catalog

    topics = default_catalog().topics
    return (frozenset(n for n, s in topics.items() if s.direction == "in"),
            frozenset(n for n, s in topics.items() if s.direction == "out"))


class MetricsRegistry:
    """Every metric the worker exposes on ``/metrics``, as typed attributes.

    Topic labels carry the catalog's topic names (without any deployment
    prefix), so dashboards work across prefixes.
    """

    def __init__(self, *, input_topics: Iterable[str] | None = None,
                 output_topics: Iterable[str] | None = None,
                 max_series: int = DEFAULT_MAX_SERIES,
                 clock: Callable[[], float] = time.time) -> None:
        if input_topics is None or output_topics is None:
            catalog_in, catalog_out = _catalog_topics()
            input_topics = catalog_in if input_topics is None else input_topics
            output_topics = catalog_out if output_topics is None else output_topics
        inputs, outputs = frozenset(input_topics), frozenset(output_topics)
        self.clock = clock
        self.lock = threading.RLock()
        """Guards the series each family admitted; the counting is prometheus_client's."""
        self.registry = CollectorRegistry()
        """What is exposed: every family below, and nothing of any other registry."""
        self.families: dict[str, _Family[MetricWrapperBase]] = {}
        self._watermark: float | None = None
        cap = max_series

        self.series_dropped = Counter(
            self, SERIES_DROPPED,
            "Metric updates dropped because a metric reached its series cap, by metric.",
            ("metric",))
        self.input_records = Counter(
            self, "incident_intel_input_records_total",
            "Input records consumed, by topic and outcome (applied, duplicate, dead_lettered); "
            "reason is the dead-letter reason class, none otherwise.",
            ("topic", "outcome", "reason"),
            values={"topic": inputs, "outcome": INPUT_OUTCOMES,
                    "reason": DEAD_LETTER_REASONS | {"none"}})
        self.output_records = Counter(
            self, "incident_intel_output_records_total",
            "Records this worker sent, by output topic.", ("topic",),
            values={"topic": outputs})
        self.consumer_lag = Gauge(
            self, "incident_intel_consumer_lag_records",
            "Records between the committed offset and the end of the partition.",
            ("topic", "partition"), max_series=cap)
        self.committed_offset = Gauge(
            self, "incident_intel_committed_offset",
            "Offset committed by this worker's consumer group, per partition.",
            ("topic", "partition"), max_series=cap)
        self.watermark = Gauge(
            self, "incident_intel_event_time_watermark_seconds",
            "Event time of the replica (Unix seconds): the newest event applied, or later after "
            "a quiet period advanced it; 0 before the first.")
        self.watermark_delay = Gauge(
            self, "incident_intel_event_time_watermark_delay_seconds",
            "Wall clock at scrape time minus the event-time watermark (seconds); "
            "NaN before the first event.")
        self.watermark_delay.set_function(self._watermark_delay)
        self.watermark_idle = Gauge(
            self, "incident_intel_event_time_watermark_idle_advanced",
            "1 when the watermark was advanced on the wall clock because no input arrived "
            "for time.idle_after_seconds (a quiet period), 0 when it is the newest event time.")
        self.output_latency = Histogram(
            self, "incident_intel_event_to_output_latency_seconds",
            "From the input record's broker timestamp to sending the output it caused "
            "(seconds), by output topic.",
            ("topic",), values={"topic": outputs})
        self.replica_incidents = Gauge(
            self, "incident_intel_replica_incidents",
            "Incidents kept in the replica the API answers from.")
        self.replica_ready = Gauge(
            self, "incident_intel_replica_ready",
            "1 once the replica has caught up with its input, else 0.")
        self.recurrence_level = Gauge(
            self, "incident_intel_recurrence_level",
            "Recurrence level of a key at warn (1) or high (2); keys at none are absent.",
            ("type", "key"), values={"type": RECURRENCE_TYPES}, max_series=cap)
        self.http_requests = Counter(
            self, "incident_intel_http_requests_total",
            "HTTP requests answered, by route template, method and status code.",
            ("route", "method", "code"), max_series=cap)
        self.http_rate_limited = Counter(
            self, "incident_intel_http_rate_limited_total",
            "API calls refused with 429, by action.", ("action",), max_series=cap)
        self.http_denied = Counter(
            self, "incident_intel_http_denied_total",
            "API calls refused with 403, by action.", ("action",), max_series=cap)
        self.http_connections_refused = Counter(
            self, "incident_intel_http_connections_refused_total",
            "Connections the HTTP guard closed, by reason (limit, head, timeout...).",
            ("reason",), max_series=cap)
        self.http_engine_reads = Counter(
            self, "incident_intel_http_engine_reads_total",
            "Engine reads started by the API (a cached dashboard render reads none).")
        self.source_deliveries = Counter(
            self, "incident_intel_source_deliveries_total",
            "Webhook deliveries to the receivers, by receiver and outcome (accepted, ignored, "
            "disabled, unauthorized, too_large, request_timeout, invalid, unavailable, "
            "internal).",
            ("receiver", "outcome"),
            values={"receiver": SOURCE_RECEIVERS, "outcome": SOURCE_DELIVERY_OUTCOMES})
        self.source_records = Counter(
            self, "incident_intel_source_records_total",
            "Records the receivers had acknowledged by the broker (published), or left out "
            "because this process already had them acknowledged (repeat).",
            ("receiver", "outcome"),
            values={"receiver": SOURCE_RECEIVERS, "outcome": SOURCE_RECORD_OUTCOMES})
        self.source_truncated_alerts = Counter(
            self, "incident_intel_source_truncated_alerts_total",
            "Alerts an Alertmanager left out of a truncated group (truncatedAlerts): lost to "
            "every webhook receiver.", ("source",), max_series=cap)
        # Known label values start at 0 (Prometheus' advice): a worker that has received
        # no webhook yet still shows the series its dashboard panel and rate() read.
        for receiver in sorted(SOURCE_RECEIVERS):
            for outcome in sorted(SOURCE_DELIVERY_OUTCOMES):
                self.source_deliveries.inc(0, receiver=receiver, outcome=outcome)
            for outcome in sorted(SOURCE_RECORD_OUTCOMES):
                self.source_records.inc(0, receiver=receiver, outcome=outcome)

    def register(self, family: _Family[M]) -> None:
        if family.name in self.families:
            raise ValueError(f"metric {family.name!r} registered twice")
        self.registry.register(family)
        self.families[family.name] = family  # type: ignore[assignment]

    @property
    def names(self) -> frozenset[str]:
        """Every metric family name (histograms without their ``_bucket`` suffixes)."""
        return frozenset(self.families)

    def count_dropped(self, metric: str) -> None:
        """One update of ``metric`` left out because the metric holds its cap of series."""
        self.series_dropped.metric.labels(metric).inc()

    # ------------------------------------------------------------- update API

    def record_input(self, topic: str, outcome: InputOutcome,
                     reason: DeadLetterReason | None = None, count: int = 1) -> None:
        """``count`` input records consumed; ``reason`` is required exactly when
        dead-lettered."""
        if (outcome == "dead_lettered") != (reason is not None):
            raise ValueError("a reason class goes with, and only with, dead_lettered")
        self.input_records.inc(count, topic=topic, outcome=outcome, reason=reason or "none")

    def record_output(self, topic: str, *, latency_seconds: float | None = None) -> None:
        """One record sent to ``topic``; with the latency from the input that caused it."""
        self.record_outputs(topic, 1, () if latency_seconds is None else (latency_seconds,))

    def record_outputs(self, topic: str, count: int, latencies: Iterable[float]) -> None:
        """``count`` records sent to ``topic``, with the latencies from the inputs that
        caused those of them that had one."""
        self.output_records.inc(count, topic=topic)
        self.output_latency.observe_all((max(x, 0.0) for x in latencies), topic=topic)

    def set_partition(self, topic: str, partition: int, *, committed: int, end: int) -> None:
        """Committed offset and end offset of one assigned partition (lag = end - committed)."""
        self.committed_offset.set(committed, topic=topic, partition=partition)
        self.consumer_lag.set(max(end - committed, 0), topic=topic, partition=partition)

    def forget_partition(self, topic: str, partition: int) -> None:
        """A partition was revoked: its series leave this worker's output."""
        self.committed_offset.remove(topic=topic, partition=partition)
        self.consumer_lag.remove(topic=topic, partition=partition)

    def set_watermark(self, event_time: float, *, idle_advanced: bool = False) -> None:
        """The event-time watermark (Unix seconds) and whether a quiet period advanced it;
        its delay is measured at each scrape, so a stuck worker shows a growing delay."""
        with self.lock:
            self._watermark = event_time
            self.watermark.set(event_time)
            self.watermark_idle.set(int(idle_advanced))

    def _watermark_delay(self) -> float:
        with self.lock:
            watermark = self._watermark
        return math.nan if watermark is None else self.clock() - watermark

    def set_recurrence(self, type_: str, key: str, level: str) -> None:
        """The current level of one recurrence key; ``none`` removes its series."""
        if level not in LEVEL_VALUES:
            raise ValueError(f"unknown recurrence level {level!r}")
        if level == "none":
            self.recurrence_level.remove(type=type_, key=key)
        else:
            self.recurrence_level.set(LEVEL_VALUES[level], type=type_, key=key)

    # ------------------------------------------------------------- exposition

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The body and ``Content-Type`` answering a scrape whose ``Accept`` is ``accept``:
        OpenMetrics when it names ``application/openmetrics-text``, else the Prometheus
        text format 0.0.4 (``prometheus_client``'s negotiation)."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type

    def render(self) -> str:
        """The Prometheus text format 0.0.4, every family with HELP and TYPE."""
        return self.exposition()[0].decode("utf-8")
