"""The Grafana dashboard in ``ops/`` queries only metrics (and labels) the registry defines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app.metrics import Histogram, MetricsRegistry

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "ops" / "grafana" / "dashboards").glob("*.json"))
METRIC = re.compile(r"\b(incident_intel_[a-zA-Z0-9_]+)\b(\{[^}]*\})?")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"([^\"]*)\"")

SHOWN = {  # what the issue asks the dashboard to show, by a metric each must query
    "recurrence levels by key": "incident_intel_recurrence_level",
    "correlations and follow-ups per minute": "incident_intel_output_records_total",
    "dead letters by reason": "incident_intel_input_records_total",
    "lag": "incident_intel_consumer_lag_records",
    "watermark delay": "incident_intel_event_time_watermark_delay_seconds",
    "latency": "incident_intel_event_to_output_latency_seconds",
}


def expressions(path: Path) -> list[str]:
    dashboard = json.loads(path.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def family_of(registry: MetricsRegistry, name: str):  # noqa: ANN201
    """The registry family a queried series name belongs to (histogram suffixes folded)."""
    if name in registry.families:
        return registry.families[name]
    base, _, suffix = name.rpartition("_")
    family = registry.families.get(base)
    if isinstance(family, Histogram) and suffix in ("bucket", "sum", "count"):
        return family
    return None


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_queried_metric_and_label_is_in_the_registry(path: Path) -> None:
    registry = MetricsRegistry()
    queried = 0
    for expr in expressions(path):
        found = METRIC.findall(expr)
        assert found, f"{expr!r} queries no incident_intel_ metric"
        labels: set[str] = set()
        for name, selector in found:
            family = family_of(registry, name)
            assert family is not None, f"{path.name}: {name} is not a registry metric"
            labels |= set(family.labels) | ({"le"} if isinstance(family, Histogram) else set())
            for label, value in MATCHER.findall(selector):
                assert label in labels, f"{path.name}: {name} has no label {label!r}"
                allowed = family.values.get(label)
                assert allowed is None or value in allowed, f"{name}: {label}={value!r}"
            queried += 1
        for group in GROUPING.findall(expr):
            for label in filter(None, (g.strip() for g in group.split(","))):
                assert label in labels, f"{path.name}: {expr!r} groups by unknown {label!r}"
    assert queried


def test_the_dashboard_shows_what_operators_asked_for() -> None:
    queried = {name for path in DASHBOARDS for expr in expressions(path)
               for name, _ in METRIC.findall(expr)}
    registry = MetricsRegistry()
    families = {family_of(registry, name).name for name in queried}
    missing = {what: metric for what, metric in SHOWN.items() if metric not in families}
    assert not missing
