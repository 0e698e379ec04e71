"""docker-compose.yml and Dockerfile: Kafka in KRaft mode, worker built here, health-gated,
Prometheus scraping the worker and Grafana with the provisioned dashboard of ``ops/``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the "KEY=value" list form
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _listeners(value: str) -> dict[str, str]:
    """'NAME://host:port,…' → {NAME: 'host:port'}."""
    return dict(item.split("://", 1) for item in value.split(","))


def test_kafka_the_worker_prometheus_and_grafana_no_zookeeper(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"kafka", "worker", "prometheus", "grafana"}
    content = yaml.safe_dump(compose).lower()  # comments excluded
    assert "zookeeper" not in content


def test_kafka_runs_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].split(":")[0] == "apache/kafka"
    assert ":" in kafka["image"] and not kafka["image"].endswith(":latest"), "pin the image"
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert any(v.startswith(f"{node_id}@") for v in voters)

    listeners = _listeners(env["KAFKA_LISTENERS"])
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listeners
    voter_port = voters[0].rsplit(":", 1)[1]
    assert listeners[controller].endswith(f":{voter_port}")
    names = {item.split(":")[0] for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")}
    assert set(listeners) <= names
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    assert controller not in advertised
    # single broker: internal topics cannot ask for 3 replicas
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


def test_kafka_has_a_healthcheck_and_a_host_port(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    test = kafka["healthcheck"]["test"]
    command = " ".join(test if isinstance(test, list) else [test])
    assert "kafka-broker-api-versions" in command or "kafka-topics" in command
    assert kafka["healthcheck"]["retries"] >= 3
    host_ports = [str(p).rsplit(":", 2)[-2] for p in kafka["ports"]]
    advertised = _listeners(_env(kafka)["KAFKA_ADVERTISED_LISTENERS"])
    assert any(addr.endswith(f":{port}") for addr in advertised.values() for port in host_ports)


def test_worker_is_built_here_and_waits_for_healthy_kafka(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    build = worker["build"]
    context = build if isinstance(build, str) else build["context"]
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (REPO / context / dockerfile).resolve() == (REPO / "Dockerfile").resolve()
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_worker_points_at_kafka_inside_the_network(compose: dict[str, Any]) -> None:
    kafka_env = _env(compose["services"]["kafka"])
    env = _env(compose["services"]["worker"])
    advertised = _listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    assert env["INTEL_BOOTSTRAP_SERVERS"] in advertised.values()
    assert env["INTEL_BOOTSTRAP_SERVERS"].startswith("kafka:")
    assert env["INTEL_WEB_HOST"] == "0.0.0.0"  # reachable through the published port


def test_worker_publishes_and_health_checks_its_web_port(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    web_port = _env(worker)["INTEL_WEB_PORT"]
    container_ports = [str(p).rsplit(":", 1)[-1] for p in worker["ports"]]
    assert web_port in container_ports
    test = worker["healthcheck"]["test"]
    command = " ".join(test if isinstance(test, list) else [test])
    assert f":{web_port}/readyz" in command


def test_dockerfile_installs_the_built_wheel_and_runs_the_worker() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"^RUN pip wheel --no-deps --wheel-dir /wheels \.$", text, re.M)
    assert re.search(r"^RUN pip install /wheels/\*\.whl", text, re.M)
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M)
    assert not any(word in ("policy", "topics") for line in copied for word in line.split()), (
        "policy and topics ship inside the wheel")
    entry = re.search(r"^ENTRYPOINT (.+)$", text, re.M)
    cmd = re.search(r"^CMD (.+)$", text, re.M)
    assert entry and cmd
    assert yaml.safe_load(entry.group(1)) + yaml.safe_load(cmd.group(1)) == [
        "incident-intel",
        "run",
    ]
    assert re.search(r"^USER (?!root)\w+", text, re.M), "do not run as root"
    assert "EXPOSE 6066" in text
    assert "HEALTHCHECK" in text and "/readyz" in text


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Bind mounts of a service: container path -> host path (resolved in the repository)."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("."):
            out[target] = str((REPO / source).resolve())
    return out


def _pinned(image: str) -> bool:
    return ":" in image and not image.endswith(":latest")


def _host_port(service: dict[str, Any], container_port: int) -> str:
    [binding] = [str(p) for p in service["ports"] if str(p).endswith(f":{container_port}")]
    assert binding.startswith("127.0.0.1:"), f"{binding}: publish on localhost only"
    return binding


def test_prometheus_scrapes_the_workers_metrics(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert prometheus["image"].split(":")[0] == "prom/prometheus" and _pinned(prometheus["image"])
    assert "worker" in prometheus["depends_on"]
    _host_port(prometheus, 9090)
    config_arg = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = config_arg.split("=", 1)[1]
    host_file = Path(_mounts(prometheus)[config_path])
    assert host_file.is_relative_to(REPO / "ops") and host_file.is_file()
    config = yaml.safe_load(host_file.read_text())
    [job] = config["scrape_configs"]
    web_port = _env(compose["services"]["worker"])["INTEL_WEB_PORT"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"worker:{web_port}"]


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    assert grafana["image"].split(":")[0] == "grafana/grafana" and _pinned(grafana["image"])
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    _host_port(grafana, 3000)
    mounts = _mounts(grafana)
    provisioning = Path(mounts["/etc/grafana/provisioning"])
    [source] = yaml.safe_load(
        (provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    prometheus_port = _host_port(compose["services"]["prometheus"], 9090).rsplit(":", 1)[1]
    assert source["type"] == "prometheus"
    assert source["url"] == f"http://prometheus:{prometheus_port}"

    [provider] = yaml.safe_load(
        (provisioning / "dashboards" / "incident-intel.yml").read_text())["providers"]
    dashboards = Path(mounts[provider["options"]["path"]])
    files = sorted(dashboards.glob("*.json"))
    assert files, "no dashboard to provision"
    for path in files:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in [panel, *panel["targets"]]:
                assert target["datasource"]["uid"] == source["uid"], (path.name, panel["title"])
