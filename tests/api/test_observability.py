"""``/healthz`` and ``/metrics``: probes, and counters that move."""

from __future__ import annotations

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as om_text_string_to_metric_families,
)
from prometheus_client.parser import text_string_to_metric_families

from app.api.metrics import ApiMetrics
from tests.support.http_api import ROLE_TOKENS, Client


def metric_lines(client: Client) -> list[str]:
    reply = client.request("GET", "/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    return reply.body.decode().splitlines()


def test_health_is_the_readiness_answer(client: Client) -> None:
    reply = client.request("GET", "/healthz")
    assert reply.status == 200
    assert reply.json() == {"status": "ready", "waiting_for": []}


def test_metrics_hold_the_views_lines_and_the_api_counters(client: Client, view) -> None:
    client.tool({"action": "recurrence"}, role=None)                       # 401
    client.tool({"action": "recurrence"}, role="agent_monitor")            # 403
    client.tool({"action": "recurrence"}, role="agent_viewer")             # 200
    client.tool({"action": "correlate", "incident_id": "inc_gw_1", "append_note": True},
                role="agent_viewer")                                        # 403
    client.request("GET", "/nowhere")                                       # 404
    lines = metric_lines(client)
    route = 'route="/v1/tools/incident_intelligence",method="POST"'
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families("\n".join(lines))
               for s in family.samples}
    requests = "incident_intel_http_requests_total"
    route = ("method", "POST"), ("route", "/v1/tools/incident_intelligence")
    assert samples[requests, (("code", "401"), *route)] == 1
    assert samples[requests, (("code", "403"), *route)] == 2
    assert samples[requests, (("code", "200"), *route)] == 1
    assert samples[requests, (("code", "404"), ("method", "GET"), ("route", "(unmatched)"))] == 1
    assert samples["incident_intel_http_denied_total", (("action", "recurrence"),)] == 1
    assert samples["incident_intel_http_denied_total", (("action", "correlate"),)] == 1
    assert samples["incident_intel_replica_incidents", ()] == len(view.engine.book.incidents)
    assert "# TYPE incident_intel_http_requests_total counter" in lines


def test_every_sample_line_is_well_formed(client: Client) -> None:
    client.tool({"action": "buckets"}, role="agent_cto")
    client.request("GET", "/v1/learning/velocity", token=ROLE_TOKENS["agent_release"])
    for line in metric_lines(client):
        if line.startswith("#") or not line:
            continue
        name_and_labels, _, value = line.rpartition(" ")
        assert name_and_labels and float(value) >= 0, line


def test_label_values_are_escaped() -> None:
    metrics = ApiMetrics()
    metrics.count_denied('x"y\\z\nw')
    assert 'incident_intel_http_denied_total{action="x\\"y\\\\z\\nw"} 1.0' in metrics.render()
    denied = [s for f in text_string_to_metric_families(metrics.render())
              for s in f.samples if s.name == "incident_intel_http_denied_total"]
    assert [s.labels["action"] for s in denied] == ['x"y\\z\nw']


def test_metrics_answer_openmetrics_when_the_scraper_asks(client: Client) -> None:
    client.request("GET", "/nowhere")
    plain = client.request("GET", "/metrics")
    assert plain.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "Accept" in plain.headers["Vary"]
    reply = client.request("GET", "/metrics",
                           headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith(
        "application/openmetrics-text; version=1.0.0; charset=utf-8")
    assert reply.headers["Cache-Control"] == "no-store"
    families = {f.name: f for f in om_text_string_to_metric_families(reply.body.decode())}
    requests = families["incident_intel_http_requests"]
    assert requests.type == "counter"
    assert {s.name for s in requests.samples} == {"incident_intel_http_requests_total"}
    assert any(s.labels == {"route": "(unmatched)", "method": "GET", "code": "404"}
               and s.value == 1 for s in requests.samples)
