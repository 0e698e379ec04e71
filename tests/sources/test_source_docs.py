"""What a user pastes: the README's three snippets and the one ``run`` prints agree with the
code, and Alertmanager's own ``amtool`` accepts the receiver; the README lists every metric."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from app.api.tokens import TokenRoles
from app.metrics import MetricsRegistry
from app.policy import Policy
from app.sources.credentials import SECRETS_ENV
from app.sources.snippets import alertmanager_receiver
from app.sources.worker import serve_receivers
from app.stream.settings import WorkerSettings
from tests.support.real_programs import amtool_check
from tests.support.repository import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
PLACEHOLDER = "<the alertmanager token>"


def block_after(marker: str, language: str) -> str:
    """The first fenced block of ``language`` after ``marker`` in the README."""
    start = README.index(marker)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(README, start)
    assert match, marker
    return match.group(1)


def test_the_readme_alertmanager_snippet_is_what_run_prints_and_amtool_accepts_it(
        tmp_path: Path) -> None:
    snippet = block_after("**Alertmanager** (`alertmanager.yml`", "yaml")
    assert snippet == alertmanager_receiver("http://HOST:6066/v1/sources/alertmanager",
                                            PLACEHOLDER)
    config: Any = yaml.safe_load(snippet)
    config["route"]["receiver"] = "incident-intel"  # a whole file needs a root receiver
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    checked = amtool_check(path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_grafana_snippet_names_the_route_and_the_policy_headers(policy: Policy) -> None:
    document: Any = yaml.safe_load(block_after("**Grafana Alerting**", "yaml"))
    settings = document["contactPoints"][0]["receivers"][0]["settings"]
    assert settings["url"].endswith("/v1/sources/alertmanager/grafana")
    assert settings["authorization_scheme"] == "Bearer"
    assert settings["hmacConfig"]["header"] == policy.sources.grafana.signature_header
    assert settings["hmacConfig"]["timestampHeader"] == policy.sources.grafana.timestamp_header


def test_the_pagerduty_subscription_asks_for_the_events_the_policy_takes(
        policy: Policy) -> None:
    words = shlex.split(block_after("**PagerDuty** (a V3 webhook subscription", "sh")
                        .replace("\\\n", " "))
    body = json.loads(words[words.index("-d") + 1])["webhook_subscription"]
    assert body["delivery_method"]["url"].endswith("/v1/sources/pagerduty")
    assert body["events"] == list(policy.sources.pagerduty.event_types)


def _mounted(policy: Policy, tmp_path: Path, environ: dict[str, str]) -> Any:
    settings = WorkerSettings(bootstrap_servers="127.0.0.1:9", data_dir=tmp_path, web_port=6391)
    return serve_receivers(web.Application(), settings, policy, MetricsRegistry(),
                           TokenRoles(), reachable=lambda: True, environ=environ)


def test_run_prints_the_local_token_and_never_an_operators(policy: Policy,
                                                          tmp_path: Path) -> None:
    local = _mounted(policy, tmp_path / "local", {})
    web_base = "http://127.0.0.1:6391"
    printed: Any = yaml.safe_load(local.alertmanager_snippet(web_base))
    config = printed["receivers"][0]["webhook_configs"][0]
    assert config["http_config"]["authorization"]["credentials"] == \
        local.secrets.alertmanager[0]
    assert config["url"] == f"{web_base}/v1/sources/alertmanager"
    lines = local.summary_lines(web_base)
    assert str(tmp_path / "local" / "source-secrets.yml") in lines[0]
    assert any("/v1/sources/pagerduty" in line and "off" in line for line in lines)

    secret = "operators-own-token-000000000"
    given = _mounted(policy, tmp_path / "given", {SECRETS_ENV: json.dumps(
        {"alertmanager": secret, "pagerduty": "pagerduty-signing-secret-0000"})})
    text = given.alertmanager_snippet(web_base) + "\n".join(given.summary_lines(web_base))
    assert secret not in text and PLACEHOLDER in text
    assert not (tmp_path / "given" / "source-secrets.yml").exists()
    assert all("off" not in line for line in given.summary_lines(web_base)[1:])


def test_the_readme_lists_every_metric() -> None:
    table = {m.group(1) for m in re.finditer(r"^\| `(incident_intel_[a-z_]+)` \|", README,
                                             re.M)}
    assert table == set(MetricsRegistry().names)
