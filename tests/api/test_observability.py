"""``/healthz`` and ``/metrics``: liveness, recovery, and counters that move."""

from __future__ import annotations

from app.api.metrics import ApiMetrics, label_value
from tests.support.http_api import ROLE_TOKENS, Client


def metric_lines(client: Client) -> list[str]:
    reply = client.request("GET", "/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    return reply.body.decode().splitlines()


def test_health_reports_recovery_and_as_of(client: Client) -> None:
    reply = client.request("GET", "/healthz")
    assert reply.status == 200
    assert reply.json() == {"status": "ok", "recovered": True, "as_of": "2026-02-23T08:00:00Z"}


def test_metrics_hold_the_views_lines_and_the_api_counters(client: Client, view) -> None:
    client.tool({"action": "recurrence"}, role=None)                       # 401
    client.tool({"action": "recurrence"}, role="agent_monitor")            # 403
    client.tool({"action": "recurrence"}, role="agent_viewer")             # 200
    client.tool({"action": "correlate", "incident_id": "inc_gw_1", "append_note": True},
                role="agent_viewer")                                        # 403
    client.request("GET", "/nowhere")                                       # 404
    lines = metric_lines(client)
    route = 'route="/v1/tools/incident_intelligence",method="POST"'
    assert f"incident_intel_http_requests_total{{{route},code=\"401\"}} 1" in lines
    assert f"incident_intel_http_requests_total{{{route},code=\"403\"}} 2" in lines
    assert f"incident_intel_http_requests_total{{{route},code=\"200\"}} 1" in lines
    unmatched = 'route="(unmatched)",method="GET",code="404"'
    assert f"incident_intel_http_requests_total{{{unmatched}}} 1" in lines
    assert 'incident_intel_http_denied_total{action="recurrence"} 1' in lines
    assert 'incident_intel_http_denied_total{action="correlate"} 1' in lines
    assert f"incident_intel_replica_incidents {len(view.engine.book.incidents)}" in lines
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
    assert label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    metrics = ApiMetrics()
    metrics.count_denied('x"y')
    assert 'incident_intel_http_denied_total{action="x\\"y"} 1' in metrics.render()
