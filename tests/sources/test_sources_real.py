"""The receivers against the real neighbours, and a real Prometheus on the worker's metrics.

One worker (``incident-intel run`` as a child process, on an embedded broker of
this module's own so the broker can be paused) serves every test here. Around it:

- a tiny scrape target this module controls, serving ``test_toggle`` for two
  series that it switches on and off several times;
- Debian's Prometheus, with the repository's ``ops/prometheus/prometheus.yml``
  aimed at the worker, scraping it and that target every second and evaluating
  ``test_toggle > 0``;
- three Debian Alertmanagers (clustering off, group_wait, group_interval and
  repeat_interval 1 s, ``send_resolved``), configured with the receiver
  snippet ``incident-intel run`` prints: one alone (source ``default``) and two
  as an HA pair that both post (source ``pair``). Each also posts the same
  notifications to a recorder here, so the tests know exactly what was sent.

The Alertmanager tests check the worker's answers against ``incident-intel
tool`` over the topics, and the counts against what the recorder saw. The
PagerDuty tests post signed deliveries as PagerDuty would. The last tests pause
the broker (SIGSTOP) to see 503s, then resume it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from app.broker import EmbeddedBroker, free_port
from app.contracts import AlertTransition, DlqRecord, IncidentEvent, decode_event
from app.intel.engine import IntelEngine
from app.policy import load_policy
from app.sources.alertmanager import label_fingerprint
from app.sources.snippets import alertmanager_receiver
from tests.ops.test_dashboard_queries import DASHBOARDS, expressions
from tests.support.builders import incident_event
from tests.support.http_api import Client, Reply
from tests.support.kafka import REPO, CliProcess, produce, wait_until
from tests.support.real_programs import Daemon, query, start_alertmanager, start_prometheus
from tests.support.repository import POLICY_DIR
from tests.support.source_payloads import am_alert, am_group, grafana_group, pd_event
from tests.support.stream_oracle import latest, read_all

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures("tansu_available")]

AM_TOKEN = "alertmanager-token-for-tests-000000"
GRAFANA_SECRET = "grafana-hmac-secret-for-tests-0000"
PD_OLD, PD_NEW = "pagerduty-old-signing-secret-00000", "pagerduty-new-signing-secret-11111"
ONCALL = "oncall-token-for-source-tests-0000"
SECRETS = (AM_TOKEN, GRAFANA_SECRET, PD_OLD, PD_NEW)
HOLD = 3.0
"""Seconds each toggle state is held: three group_intervals, so every Alertmanager sees it."""
TOGGLES = [(1, 0), (0, 1), (1, 1), (0, 0), (0, 1)]
"""(checkout, node) values of ``test_toggle`` in turn: each alert fires twice (five
episodes); the last state leaves one firing, so Alertmanager keeps repeating it."""
POLICY = load_policy(POLICY_DIR)


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------- the worker

@dataclass
class Worker:
    proc: CliProcess
    port: int
    broker: EmbeddedBroker
    client: Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = Client(f"http://127.0.0.1:{self.port}")

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    def post(self, path: str, body: bytes, **headers: str) -> Reply:
        return self.client.request("POST", path, body=body,
                                   headers={"Content-Type": "application/json", **headers})

    def alerts(self, body: bytes, source: str = "", **headers: str) -> Reply:
        return self.post(f"/v1/sources/alertmanager{source}", body,
                         **{"Authorization": f"Bearer {AM_TOKEN}", **headers})

    def pagerduty(self, body: bytes, signature: str | None = None) -> Reply:
        header = f"v1={sign(PD_NEW, body)}" if signature is None else signature
        return self.post("/v1/sources/pagerduty", body, **{"X-PagerDuty-Signature": header})

    def ask(self, call: dict[str, Any]) -> Any:
        reply = self.client.request("POST", "/v1/tools/incident_intelligence", json=call,
                                    token=ONCALL)
        assert reply.status == 200, reply.body
        return reply.json()

    def readyz(self) -> dict[str, Any]:
        return orjson.loads(self.client.request("GET", "/readyz").body)

    def wait_ready(self) -> Worker:
        assert self.proc.wait_for_line("worker ready", timeout=90), self.proc.output
        assert wait_until(lambda: self.readyz()["status"] == "ready", timeout=60), \
            self.proc.output
        return self


@pytest.fixture(scope="module")
def starting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """The worker, started but maybe not ready yet (the neighbours start meanwhile)."""
    workdir = tmp_path_factory.mktemp("sources-worker")
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTEL_")}
        env.update(
            INTEL_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
            INTEL_APP_ID=f"sources-{uuid.uuid4().hex[:8]}", INTEL_PARTITIONS="2",
            INTEL_WEB_PORT=str(port), INTEL_DATA_DIR=str(workdir / "data"),
            INTEL_REPORTS_DIR=str(workdir / "reports"), PYTHONUNBUFFERED="1",
            INTEL_API_TOKENS=json.dumps({ONCALL: "agent_oncall"}),
            INTEL_SOURCE_SECRETS=json.dumps({"alertmanager": AM_TOKEN,
                                             "grafana": GRAFANA_SECRET,
                                             "pagerduty": [PD_OLD, PD_NEW]}))
        proc = CliProcess(["run", "--no-feed"], env)
        try:
            yield Worker(proc, port, broker)
        finally:
            proc.kill()


@pytest.fixture(scope="module")
def worker(starting: Worker) -> Worker:
    """The worker, ready."""
    return starting.wait_ready()


def cli(*args: str, cwd: Path) -> bytes:
    done = subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=cwd,
                          capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    return done.stdout


def dump_inputs(worker: Worker, path: Path) -> Path:
    """Every input record on the broker (``incident-intel topics dump``), as the JSON lines
    ``incident-intel tool`` reads."""
    path.write_bytes(cli("topics", "dump", "--bootstrap", worker.bootstrap, cwd=path.parent))
    return path


def tool(events: Path, call: dict[str, Any]) -> Any:
    return orjson.loads(cli("tool", "--events", str(events), "--policy", str(POLICY_DIR),
                            json.dumps(call), cwd=events.parent))


def same_answer(worker: Worker, call: dict[str, Any], workdir: Path) -> Any:
    """The worker's answer, once it equals the tool's over the topics (they agree when settled)."""
    seen: list[Any] = []

    def agree() -> Any:
        printed = tool(dump_inputs(worker, workdir / "events.jsonl"), call)
        answered = worker.ask(call)
        seen[:] = [printed, answered]
        return answered if answered == printed else None

    answered = wait_until(agree, timeout=30, interval=1.0)
    assert answered is not None, f"worker and tool disagree: {seen}"
    return answered


# -------------------------------------------------- the scrape target and the recorder

class Recorder:
    """Serves ``test_toggle`` to Prometheus; records what each Alertmanager posts."""

    def __init__(self) -> None:
        self.toggles = {"checkout": 0, "node": 0}
        self.posts: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with recorder.lock:
                    on = dict(recorder.toggles)
                body = ("# TYPE test_toggle gauge\n"
                        f'test_toggle{{service="checkout",severity="critical"}} {on["checkout"]}\n'
                        f'test_toggle{{target="node-1",severity="warning"}} {on["node"]}\n'
                        ).encode()
                self._answer(body)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                post = json.loads(self.rfile.read(length))
                with recorder.lock:
                    recorder.posts.setdefault(self.path.strip("/"), []).append(post)
                self._answer(b"")

            def _answer(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set(self, checkout: int, node: int) -> None:
        with self.lock:
            self.toggles = {"checkout": checkout, "node": node}

    def sent(self, name: str) -> list[dict[str, Any]]:
        """Every alert entry Alertmanager ``name`` posted, in order."""
        with self.lock:
            return [entry for post in self.posts.get(name, []) for entry in post["alerts"]]

    def post_count(self, name: str) -> int:
        with self.lock:
            return len(self.posts.get(name, []))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def alertmanager_config(worker: Worker, recorder: Recorder, name: str, path: str) -> Any:
    """The printed receiver snippet, unchanged, plus a copy of each notification to the
    recorder (same receiver, so both get the same notifications) and short timers."""
    snippet = yaml.safe_load(alertmanager_receiver(
        f"http://127.0.0.1:{worker.port}/v1/sources/alertmanager{path}", AM_TOKEN))
    receivers = snippet["receivers"]
    receivers[0]["webhook_configs"].append(
        {"url": f"http://127.0.0.1:{recorder.port}/{name}", "send_resolved": True})
    return {"route": {"receiver": "nowhere", "group_by": ["alertname"], "group_wait": "1s",
                      "group_interval": "1s", "repeat_interval": "1s",
                      "routes": snippet["route"]["routes"]},
            "receivers": [*receivers, {"name": "nowhere"}]}


def prometheus_config(worker: Worker, recorder: Recorder, alertmanagers: list[Daemon]) -> Any:
    """The repository's ``ops/prometheus/prometheus.yml`` aimed at this worker, scraping every
    second, plus the toggle target and the Alertmanagers."""
    config = yaml.safe_load((REPO / "ops" / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    job, = (j for j in config["scrape_configs"] if j["job_name"] == "incident-intel")
    job["static_configs"] = [{"targets": [f"127.0.0.1:{worker.port}"]}]
    config["scrape_configs"].append({"job_name": "toggle", "static_configs": [
        {"targets": [f"127.0.0.1:{recorder.port}"]}]})
    config["alerting"] = {"alertmanagers": [{"static_configs": [
        {"targets": [f"127.0.0.1:{d.port}" for d in alertmanagers]}]}]}
    return config


def dashboard_traffic(bootstrap: str) -> None:
    """Incidents that make every dashboard panel non-empty: a signature recurring high in
    the week before last (so a follow-up is due once the alerts move the watermark to
    now), their correlations, and a record that is dead-lettered."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = today - timedelta(days=today.weekday() + 14)
    events = [incident_event(f"inc_dash_{n}", started=monday + timedelta(hours=3 * n + 1),
                             service="payments", kind="error_rate", severity="P1",
                             signature="d" * 64, title="card declines spike")
              for n in range(7)]
    produce(bootstrap, "incidents.events",
            [(e["incident"]["incident_id"].encode(), orjson.dumps(e), None) for e in events]
            + [(b"broken", b"{not json", None)])


@dataclass
class Scenario:
    worker: Worker
    recorder: Recorder
    prometheus: Daemon
    workdir: Path


def _final_state_repeated(recorder: Recorder) -> bool:
    """True once the lone Alertmanager has posted the last toggle state (only the node alert
    firing, in the newest episode of all) three times running: it has settled and repeats."""
    with recorder.lock:
        posts = list(recorder.posts.get("solo", []))
    if len(posts) < 3 or any(post["alerts"] != posts[-1]["alerts"] for post in posts[-3:]):
        return False
    last = posts[-1]["alerts"]
    newest = max(a["startsAt"] for post in posts for a in post["alerts"])
    return [(a["labels"].get("target"), a["status"], a["startsAt"]) for a in last] == [
        ("node-1", "firing", newest)]


@pytest.fixture(scope="module")
def scenario(starting: Worker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    workdir = tmp_path_factory.mktemp("neighbours")
    recorder = Recorder()
    daemons: list[Daemon] = []
    worker = starting
    try:
        for name, path in (("solo", ""), ("a", "/pair"), ("b", "/pair")):
            daemons.append(start_alertmanager(
                workdir / f"alertmanager-{name}",
                alertmanager_config(worker, recorder, name, path)))
        prometheus = start_prometheus(workdir / "prometheus", prometheus_config(
            worker, recorder, daemons), rules={"groups": [{
                "name": "toggle", "interval": "1s", "rules": [{
                    "alert": "Toggle", "expr": "test_toggle > 0",
                    "annotations": {"summary": "toggled on ({{ $value }})"}}]}]})
        daemons.append(prometheus)
        worker.wait_ready()
        dashboard_traffic(worker.bootstrap)
        # Prometheus scrapes for the first time a few seconds after it starts.
        assert wait_until(lambda: len(query(prometheus, "test_toggle")) == 2, timeout=30), \
            prometheus.log()
        for checkout, node in TOGGLES:
            recorder.set(checkout, node)
            time.sleep(HOLD)
        assert wait_until(lambda: _final_state_repeated(recorder), timeout=60,
                          interval=0.2), ([d.log()[-2000:] for d in daemons])
        yield Scenario(worker, recorder, prometheus, workdir)
    finally:
        for daemon in daemons:
            daemon.stop()
        recorder.close()


def source_records(worker: Worker, source: str) -> list[Any]:
    records = read_all(worker.bootstrap, ["alerts.state"])["alerts.state"]
    return [r for r in records if r.key.startswith(f"am:{source}:".encode())]


def transitions_of(records: list[Any]) -> list[AlertTransition]:
    events = [decode_event(r.value) for r in records]
    assert all(isinstance(e, AlertTransition) for e in events)
    return events  # type: ignore[return-value]


# ------------------------------------------------------------------- Alertmanager

def test_alertmanager_transitions_count_once_and_the_worker_equals_the_tool(
        scenario: Scenario) -> None:
    worker, recorder = scenario.worker, scenario.recorder
    sent = recorder.sent("solo")
    for entry in sent:  # the receiver's fingerprint rule is Alertmanager's
        assert label_fingerprint(entry["labels"]) == entry["fingerprint"]
    starts = {(e["fingerprint"], e["startsAt"]) for e in sent}
    states = {(e["fingerprint"], e["startsAt"], e["status"]) for e in sent}
    assert len({fp for fp, _ in starts}) == 2 and len(starts) >= 4, starts
    assert recorder.post_count("solo") >= len(states) + 2  # it did repeat itself

    def firings() -> Any:
        events = transitions_of(source_records(worker, "default"))
        fired = {(e.alert.fingerprint, e.occurred_at) for e in events if e.to_state == "firing"}
        return events if len(fired) == len(starts) else None

    events = wait_until(firings, timeout=30, interval=0.5)
    assert events, (starts, transitions_of(source_records(worker, "default")))
    assert len({e.event_id for e in events}) == len(events)  # each transition once
    resolved = {(fp, s) for fp, s, status in states if status == "resolved"}
    assert sum(e.to_state == "resolved" for e in events) == len(resolved)

    call = {"action": "alerts", "window_days": 30}
    answer = same_answer(worker, call, scenario.workdir)
    rows = {row["fingerprint"]: row for row in answer["alerts"]}
    per_fingerprint = Counter(f"am:default:{fp}" for fp, _ in starts)
    assert {k: rows[k]["firing_30d"] for k in per_fingerprint} == dict(per_fingerprint)
    for entry in sent:  # the service label, else the job label
        row = rows["am:default:" + entry["fingerprint"]]
        assert row["service"] == entry["labels"].get("service", entry["labels"]["job"])

    def published() -> Any:
        topic = read_all(worker.bootstrap, ["intel.alerts"])["intel.alerts"]
        values = {k.decode(): orjson.loads(r.value) for k, r in latest(topic).items()
                  if r.value is not None}
        return values if values == rows else None

    assert wait_until(published, timeout=30, interval=0.5), "intel.alerts never matched"


def _normalised(events: list[AlertTransition], source: str) -> set[tuple[Any, ...]]:
    """A transition without what names its source: what it says about the alert."""
    prefix = f"am:{source}:"
    return {(e.alert.fingerprint.removeprefix(prefix), e.to_state, e.from_state,
             e.occurred_at, e.alert.service, e.alert.kind, e.alert.severity, e.alert.env,
             tuple(sorted(e.alert.labels.items()))) for e in events}


def test_an_ha_pair_gives_the_topic_content_of_one(scenario: Scenario) -> None:
    worker, recorder = scenario.worker, scenario.recorder
    assert recorder.post_count("a") and recorder.post_count("b")  # both peers posted

    def alike() -> Any:
        solo = transitions_of(source_records(worker, "default"))
        pair = transitions_of(source_records(worker, "pair"))
        same = _normalised(pair, "pair") == _normalised(solo, "default")
        return (solo, pair) if same and len(pair) == len(solo) else None

    both = wait_until(alike, timeout=30, interval=0.5)
    assert both, (len(source_records(worker, "default")), len(source_records(worker, "pair")))
    solo, pair = both
    assert len(pair) == len({e.event_id for e in pair})  # twins were published once


def test_every_dashboard_query_has_data_in_a_real_prometheus(scenario: Scenario) -> None:
    exprs = [expr for path in DASHBOARDS for expr in expressions(path)]
    assert any("incident_intel_source_deliveries_total" in e for e in exprs)
    empty: list[str] = []

    def answered() -> bool:
        empty[:] = [expr for expr in exprs if not query(scenario.prometheus, expr)]
        return not empty

    assert wait_until(answered, timeout=40, interval=1.0), (
        f"no result for {empty}:\n{scenario.prometheus.log()[-2000:]}")
    up = query(scenario.prometheus, 'up{job="incident-intel"}')
    assert [sample["value"][1] for sample in up] == ["1"]


# ------------------------------------------------------------------------ Grafana

def test_grafana_posts_with_its_token_or_its_signature(worker: Worker) -> None:
    now = datetime.now(UTC) - timedelta(minutes=5)
    body = orjson.dumps(grafana_group([am_alert(
        {"alertname": "GrafanaDisk", "service": "db"},
        now.isoformat().replace("+00:00", "Z"))]))
    by_token = worker.alerts(body, "/grafana")
    assert by_token.status == 200 and by_token.json()["sender"] == "grafana", by_token.body
    signed = worker.post("/v1/sources/alertmanager/grafana", body,
                         **{"X-Grafana-Alerting-Signature": sign(GRAFANA_SECRET, body)})
    stamped = worker.post("/v1/sources/alertmanager/grafana", body, **{
        "X-Grafana-Alerting-Signature": sign(GRAFANA_SECRET, b"1765000000:" + body),
        "X-Grafana-Alerting-Timestamp": "1765000000"})
    for reply in (signed, stamped):
        assert reply.status == 200 and reply.json()["repeats"] == 1, reply.body
    refused = [
        worker.post("/v1/sources/alertmanager/grafana", body,
                    **{"X-Grafana-Alerting-Signature": sign("not-the-secret-0000000", body)}),
        worker.alerts(body, "/grafana", **{"X-Grafana-Alerting-Signature": "00" * 32}),
        worker.post("/v1/sources/alertmanager/grafana", body),
        worker.post("/v1/sources/alertmanager/grafana", body,
                    Authorization="Bearer not-the-alertmanager-token"),
    ]
    assert [r.status for r in refused] == [401] * 4
    assert all(r.error["code"] == "unauthorized" for r in refused)


# ---------------------------------------------------------------------- PagerDuty

def test_pagerduty_signatures_accept_any_current_secret_only(worker: Worker) -> None:
    body = orjson.dumps(pd_event("sig-1", "incident.triggered", "2026-12-01T10:00:00Z",
                                 "PSIGNED"))
    accepted = [worker.pagerduty(body, f"v1={sign(PD_OLD, body)}"),
                worker.pagerduty(body, f"v1={sign(PD_NEW, body)}"),
                worker.pagerduty(body, f"v1={sign('retired-secret-0000000', body)},"
                                       f"v1={sign(PD_NEW, body)}")]
    assert [r.status for r in accepted] == [200, 200, 200], [r.body for r in accepted]
    assert [r.json()["published"] for r in accepted] == [1, 0, 0]
    refused = [worker.pagerduty(body, f"v1={sign('retired-secret-0000000', body)}"),
               worker.pagerduty(body, "v1=" + "0" * 64),
               worker.pagerduty(body, sign(PD_NEW, body)),  # no v1= scheme
               worker.post("/v1/sources/pagerduty", body),  # no header
               worker.pagerduty(body + b" ", f"v1={sign(PD_NEW, body)}"),  # body changed
               worker.post("/v1/sources/pagerduty", body,
                           Authorization=f"Bearer {ONCALL}")]  # an API token opens nothing
    assert [r.status for r in refused] == [401] * 6


def test_pagerduty_sequences_leave_the_versions_the_input_rule_expects(
        worker: Worker, tmp_path: Path) -> None:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)

    def at(minutes: int) -> str:
        return (base + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")

    def lifecycle(incident: str, prefix: str) -> list[bytes]:
        created = at(0)
        return [orjson.dumps(pd_event(f"{prefix}-1", "incident.triggered", at(1), incident,
                                      created=created, service="Checkout API")),
                orjson.dumps(pd_event(f"{prefix}-2", "incident.acknowledged", at(5), incident,
                                      status="acknowledged", created=created,
                                      service="Checkout API")),
                orjson.dumps(pd_event(f"{prefix}-3", "incident.priority_updated", at(7),
                                      incident, status="acknowledged", priority="P3",
                                      created=created, service="Checkout API")),
                orjson.dumps(pd_event(f"{prefix}-4", "incident.resolved", at(30), incident,
                                      status="resolved", priority="P3", created=created,
                                      service="Checkout API"))]

    in_order = lifecycle("PINORDER", "io")
    out_of_order = lifecycle("POUTORDER", "oo")
    reopened = [*lifecycle("PREOPEN", "ro")[::3], orjson.dumps(pd_event(
        "ro-9", "incident.reopened", at(40), "PREOPEN", created=at(0), priority="P2",
        service="Checkout API"))]
    deliveries = (in_order + in_order[3:]  # the resolve re-delivered
                  + [out_of_order[i] for i in (3, 0, 2, 1, 0)]  # newest first, then a repeat
                  + reopened[::-1])
    for body in deliveries:
        reply = worker.pagerduty(body)
        assert reply.status == 200, reply.body
    ignored = worker.pagerduty(orjson.dumps({"event": {
        "id": "ping-1", "event_type": "pagey.ping", "occurred_at": at(0), "data": None}}))
    assert ignored.status == 200 and ignored.json()["status"] == "ignored"

    def topic() -> Any:
        records = read_all(worker.bootstrap, ["incidents.events"])["incidents.events"]
        mine = [r for r in records if r.key in (b"pd:PINORDER", b"pd:POUTORDER", b"pd:PREOPEN")]
        return mine if len(mine) == 4 + 4 + 3 else None

    records = wait_until(topic, timeout=30, interval=0.5)
    assert records, "every distinct event on the topic once"
    engine = IntelEngine(POLICY)
    for record in records:
        event = decode_event(record.value)
        assert isinstance(event, IncidentEvent)
        engine.apply(event)
    kept = {i: engine.record(f"pd:{i}") for i in ("PINORDER", "POUTORDER", "PREOPEN")}
    assert {i: (r.status, r.severity) for i, r in kept.items()} == {
        "PINORDER": ("resolved", "P3"), "POUTORDER": ("resolved", "P3"),
        "PREOPEN": ("open", "P2")}  # reopened after its resolve, at priority P2

    call = {"action": "buckets", "service": "Checkout API", "window_days": 7}
    answer = same_answer(worker, call, tmp_path)
    assert answer["bucket_count"] == 1, answer
    bucket = answer["buckets"][0]
    assert bucket["counts"]["open"] == 1
    mix = {severity: n for severity, n in bucket["severity_mix"].items() if n}
    assert mix == dict(Counter(r.severity for r in kept.values()))


# ----------------------------------------------------------- bounds and dead letters

def test_bodies_too_large_or_not_the_format_are_refused_and_dead_lettered(
        worker: Worker) -> None:
    limit = POLICY.sources.delivery.max_body_bytes
    large = worker.alerts(b"[" + b" " * limit + b"]")
    assert large.status == 413 and large.error["code"] == "payload_too_large"

    bad_alerts = b'{"version": "4", "alerts": [{"status": "firing"}]}'
    not_json = b"\xff{not json"
    bad_pd = orjson.dumps({"event": {"id": "x", "event_type": "incident.triggered",
                                     "occurred_at": "2026-12-01T10:00:00Z", "data": {}}})
    replies = [worker.alerts(bad_alerts, "/eu"), worker.alerts(not_json),
               worker.pagerduty(bad_pd)]
    assert [r.status for r in replies] == [400, 400, 400]
    assert "alerts.0.labels" in replies[0].error["message"]

    def letters() -> Any:
        records = read_all(worker.bootstrap, ["intel.dlq"])["intel.dlq"]
        found = {r.key: DlqRecord.model_validate_json(r.value) for r in records
                 if r.key in (b"alertmanager:eu", b"alertmanager:default", b"pagerduty")}
        return found if len(found) == 3 else None

    found = wait_until(letters, timeout=30, interval=0.5)
    assert found, "three dead letters"
    for key, raw, topic, reason in (
            (b"alertmanager:eu", bad_alerts, "alerts.state", "alerts.0.labels"),
            (b"alertmanager:default", not_json, "alerts.state", "not JSON"),
            (b"pagerduty", bad_pd, "incidents.events", "event.data.id")):
        letter = found[key]
        assert letter.raw_bytes() == raw and reason in letter.error, letter
        assert (letter.source_topic, letter.partition, letter.offset) == (topic, -1, -1)


# ------------------------------------------------------------------ the broker away

def test_a_paused_broker_answers_503_and_the_retry_lands_once(worker: Worker) -> None:
    starts = (datetime.now(UTC) - timedelta(minutes=3)).isoformat().replace("+00:00", "Z")
    body = orjson.dumps(am_group([am_alert({"alertname": "WhileAway", "service": "edge"},
                                           starts)]))
    pid = worker.broker.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        assert wait_until(lambda: "broker_unreachable" in worker.readyz()["waiting_for"],
                          timeout=30), worker.proc.output
        away = worker.alerts(body, "/away")
        assert away.status == 503 and away.error["code"] == "unavailable", away.body
        assert away.headers["Retry-After"] == str(POLICY.sources.delivery.retry_after_seconds)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert wait_until(lambda: "broker_unreachable" not in worker.readyz()["waiting_for"],
                      timeout=30), worker.proc.output
    assert not source_records(worker, "away")  # nothing of the 503 was sent
    back = worker.alerts(body, "/away")
    assert back.status == 200 and back.json()["published"] == 1, back.body
    assert worker.alerts(body, "/away").json()["published"] == 0
    landed = wait_until(lambda: source_records(worker, "away"), timeout=30, interval=0.5)
    assert landed and len(landed) == 1, landed


def test_no_secret_or_token_reaches_the_log(worker: Worker) -> None:
    output = worker.proc.output
    assert "webhook receivers (secrets from $INTEL_SOURCE_SECRETS_FILE" in output
    assert "<the alertmanager token>" in output  # the snippet names it, never prints it
    for secret in (*SECRETS, ONCALL):
        assert secret not in output
    assert "Traceback" not in output, output
