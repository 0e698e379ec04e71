"""The worker's Prometheus metrics: one typed registry, rendered in the text format.

Every name starts with ``incident_intel_``, uses base units (seconds, records)
and ends counters in ``_total``. Label sets are bounded: a label either has a
closed set of values (an outcome, a catalog topic; anything else is a wiring
bug and raises) or is capped in how many distinct series it may hold (a
partition, a route, a recurrence key); past the cap a new series is dropped
and counted in ``incident_intel_metric_series_dropped_total``, so a flood of
odd values can never exhaust the memory of the worker or of Prometheus.

The registry is a plain object: the stream shell and the API call its methods
as things happen; ``render`` reads it. Updates take a lock so the API's
worker threads and the event loop may share one registry.
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

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
    "escape_help",
    "escape_label",
]

PREFIX = "incident_intel_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

InputOutcome = Literal["applied", "duplicate", "dead_lettered"]
INPUT_OUTCOMES: frozenset[str] = frozenset({"applied", "duplicate", "dead_lettered"})

DEAD_LETTER_REASONS: frozenset[str] = frozenset(_DEAD_LETTER_REASONS)
"""The ``reason`` label of a dead-lettered input (:data:`app.contracts.DeadLetterReason`);
``"none"`` is the reason label of every record that was not dead-lettered."""

LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                                      10.0, 30.0, 60.0, 300.0)
"""Upper bounds (seconds) of the event-to-output latency histogram."""

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

Labels = tuple[str, ...]


def escape_label(value: str) -> str:
    """A label value as the text format requires (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    """A HELP text as the text format requires (backslash, newline)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """Integers without a fraction, infinities as ``+Inf``/``-Inf``, NaN as ``NaN``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _label_text(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{n}="{escape_label(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + pairs + "}"


class _Family:
    """One metric name: its label names, the allowed values and the series it holds."""

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
        self._lock = registry.lock
        self._start()
        registry.register(self)

    def _start(self) -> None:
        """Set up the empty series store (a label-less metric starts with its one series)."""

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

    def _admit(self, series: Mapping[Labels, object], key: Labels) -> bool:
        """True when ``key`` exists or fits under the cap; else count the drop."""
        if key in series or len(series) < self.max_series:
            return True
        self._registry.series_dropped[self.name] = (
            self._registry.series_dropped.get(self.name, 0) + 1)
        return False

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> list[str]:
        raise NotImplementedError


class _Scalar(_Family):
    """A counter or gauge: one float per label set."""

    series: dict[Labels, float]

    def _start(self) -> None:
        self.series = {(): 0.0} if not self.labels else {}

    def value(self, **labels: object) -> float:
        """The current value of one series (0 when it was never touched)."""
        with self._lock:
            return self.series.get(self._key(labels), 0.0)

    def samples(self) -> list[str]:
        return [f"{self.name}{_label_text(self.labels, key)} {format_value(value)}"
                for key, value in sorted(self.series.items())]


class Counter(_Scalar):
    """A monotonically increasing count; the name ends in ``_total``."""

    kind = "counter"

    def _start(self) -> None:
        if not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name!r} must end in _total")
        super()._start()

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: a counter cannot decrease ({amount})")
        with self._lock:
            key = self._key(labels)
            if self._admit(self.series, key):
                self.series[key] = self.series.get(key, 0.0) + amount


class Gauge(_Scalar):
    """A value that goes up and down; a labelled series can be removed."""

    kind = "gauge"

    def set(self, value: float, **labels: object) -> None:
        with self._lock:
            key = self._key(labels)
            if self._admit(self.series, key):
                self.series[key] = float(value)

    def remove(self, **labels: object) -> None:
        """Forget one series (a partition revoked, a key back to normal)."""
        with self._lock:
            self.series.pop(self._key(labels), None)


class Histogram(_Family):
    """Observations counted into cumulative ``le`` buckets, with their sum and count."""

    kind = "histogram"

    buckets: tuple[float, ...] = (*LATENCY_BUCKETS, math.inf)
    series: dict[Labels, tuple[list[int], list[float]]]
    """Per series: the count in each bucket (not cumulative), and the sum in a one-item list."""

    def _start(self) -> None:
        if "le" in self.labels:
            raise ValueError(f"{self.name}: 'le' is reserved for histogram buckets")
        self.series = {(): ([0] * len(self.buckets), [0.0])} if not self.labels else {}

    def observe(self, value: float, **labels: object) -> None:
        if math.isnan(value):
            raise ValueError(f"{self.name}: cannot observe NaN")
        with self._lock:
            key = self._key(labels)
            if not self._admit(self.series, key):
                return
            counts, total = self.series.setdefault(key, ([0] * len(self.buckets), [0.0]))
            index = next(i for i, bound in enumerate(self.buckets) if value <= bound)
            counts[index] += 1
            total[0] += value

    def observe_all(self, values: Iterable[float], **labels: object) -> None:
        """Many observations of one series (the labels checked once)."""
        with self._lock:
            key = self._key(labels)
            if not self._admit(self.series, key):
                return
            counts, total = self.series.setdefault(key, ([0] * len(self.buckets), [0.0]))
            for value in values:
                if math.isnan(value):
                    raise ValueError(f"{self.name}: cannot observe NaN")
                counts[bisect_left(self.buckets, value)] += 1
                total[0] += value

    def count(self, **labels: object) -> int:
        with self._lock:
            counts, _ = self.series.get(self._key(labels), ([0], [0.0]))
            return sum(counts)

    def samples(self) -> list[str]:
        out: list[str] = []
        for key, (counts, total) in sorted(self.series.items()):
            running = 0
            for bound, n in zip(self.buckets, counts, strict=True):
                running += n
                labels = _label_text((*self.labels, "le"), (*key, format_value(bound)))
                out.append(f"{self.name}_bucket{labels} {running}")
            plain = _label_text(self.labels, key)
            out.append(f"{self.name}_sum{plain} {format_value(total[0])}")
            out.append(f"{self.name}_count{plain} {running}")
        return out


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
        self.families: dict[str, _Family] = {}
        self._watermark_known = False
        self.series_dropped: dict[str, int] = {}
        cap = max_series

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
        self.watermark_delay.set(math.nan)
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

    def register(self, family: _Family) -> None:
        if family.name in self.families:
            raise ValueError(f"metric {family.name!r} registered twice")
        self.families[family.name] = family

    @property
    def names(self) -> frozenset[str]:
        """Every metric family name (histograms without their ``_bucket`` suffixes)."""
        return frozenset(self.families) | {"incident_intel_metric_series_dropped_total"}

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
            self.watermark.set(event_time)
            self.watermark_idle.set(int(idle_advanced))
            self._watermark_known = True

    def set_recurrence(self, type_: str, key: str, level: str) -> None:
        """The current level of one recurrence key; ``none`` removes its series."""
        if level not in LEVEL_VALUES:
            raise ValueError(f"unknown recurrence level {level!r}")
        if level == "none":
            self.recurrence_level.remove(type=type_, key=key)
        else:
            self.recurrence_level.set(LEVEL_VALUES[level], type=type_, key=key)

    # ----------------------------------------------------------------- render

    def render(self) -> str:
        """The text exposition format (version 0.0.4), every family with HELP and TYPE."""
        with self.lock:
            if self._watermark_known:
                self.watermark_delay.set(self.clock() - self.watermark.value())
            out: list[str] = []
            for name in sorted(self.families):
                family = self.families[name]
                out += family.header()
                out += family.samples()
            dropped = "incident_intel_metric_series_dropped_total"
            out += [f"# HELP {dropped} Metric updates dropped because a metric reached its "
                    "series cap, by metric.",
                    f"# TYPE {dropped} counter"]
            out += [f'{dropped}{{metric="{escape_label(metric)}"}} {n}'
                    for metric, n in sorted(self.series_dropped.items())]
        return "\n".join(out) + "\n"
