"""What `incident-intel run` tells a new user once the worker is wired, before it is ready.

The settings and topics in effect, where the history lives, every route the
worker serves, the API's role tokens and two calls to paste (named after the
first-run feed's story when there is one), and the receivers to point an
alerting tool at. Text only: nothing here starts or mounts anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import click
import orjson

from app.broker.history import HISTORY_ENV, DurableHistory
from app.cli.console import say
from app.stream.settings import WorkerSettings

if TYPE_CHECKING:
    from app.broker import EmbeddedBroker
    from app.cli.worker_wiring import ApiMount
    from app.sources.worker import MountedReceivers

__all__ = ["FeedExample", "curl_lines", "history_note", "say_api", "say_receivers",
           "say_settings", "web_lines"]


class FeedExample(NamedTuple):
    """What the banner's example calls name, taken from the feed's ground truth."""

    failing_service: str
    correlated_incident: str


def say_settings(settings: WorkerSettings, created: list[str], schedule: str,
                 broker: EmbeddedBroker | None, history: DurableHistory | None) -> None:
    """The settings in effect, the topics (and how many were created), the digest's
    schedule and where the history lives."""
    from app.stream.app import catalog_topics

    for label, value in settings.describe().items():
        say(f"  {label:<24} {value}")
    names = ", ".join(settings.topic(spec.name) for spec in catalog_topics())
    say(f"  {'topics':<24} {names}")
    if created:
        say(f"  {'created topics':<24} {len(created)} ({settings.partitions} partitions each)")
    say(f"  {'dead letters':<24} {settings.topic('intel.dlq')}")
    say(f"  {'weekly digest':<24} cron {schedule!r} (UTC) -> {settings.reports_dir}/"
        f"<week>.md|.json and {settings.topic('intel.digests')}")
    say(f"  {'history':<24} {history_note(settings, broker, history)}")


def history_note(settings: WorkerSettings, broker: EmbeddedBroker | None,
                 history: DurableHistory | None) -> str:
    """Where the incident history lives, and whether it survives a restart."""
    if broker is None:
        return f"kept by the Kafka at {settings.bootstrap_servers}"
    if history is not None:
        return (f"kept on disk in {history.directory} ({HISTORY_ENV}=durable): what the "
                "worker applied survives a stop or a crash, and the next start re-publishes "
                f"it; delete that directory to start over, or set {HISTORY_ENV}=memory")
    return (f"the embedded broker keeps everything in MEMORY ({HISTORY_ENV}=memory): stopping "
            "this run loses every incident, digest and follow-up; to keep them across "
            f"restarts, unset {HISTORY_ENV} (history on disk in {settings.data_dir}/history) or "
            "set INTEL_BOOTSTRAP_SERVERS to a Kafka with disk storage")


def web_lines(settings: WorkerSettings) -> list[str]:
    """Every route the worker serves for a user (dashboard, health, metrics, API), one a line."""
    from app.api.routes import ROUTES

    web = f"http://{settings.web_host}:{settings.web_port}"
    return [f"  {route.method:<4} {web}{route.path}" for route in ROUTES]


def curl_lines(settings: WorkerSettings, tokens: dict[str, str],
               example: FeedExample | None) -> list[str]:
    """Ready-to-paste calls of the gate and of correlate, with the role token each needs."""
    web = f"http://{settings.web_host}:{settings.web_port}"
    service = example.failing_service if example else "SERVICE"
    incident = example.correlated_incident if example else "INCIDENT_ID"
    gate = orjson.dumps({"service": service, "profile": "staging"}).decode()
    correlate = orjson.dumps({"action": "correlate", "incident_id": incident,
                              "append_note": True}).decode()
    lines = []
    for role, route, body in (("agent_release", "/v1/gates/recurrence_watch", gate),
                              ("agent_oncall", "/v1/tools/incident_intelligence", correlate)):
        token = tokens.get(role, f"<{role} token>")
        lines.append(f"  curl -s -H 'Authorization: Bearer {token}' "
                     f"-H 'Content-Type: application/json' -d '{body}' {web}{route}")
    return lines


def say_api(settings: WorkerSettings, mount: ApiMount, example: FeedExample | None) -> None:
    """The routes, the tokens (the local ones themselves, or where they come from) and
    the calls to try."""
    from app.api.tokens import TOKENS_ENV, TOKENS_FILE_ENV, local_tokens

    say("web: the dashboard, health, metrics and the API:")
    for line in web_lines(settings):
        say(line)
    by_role: dict[str, str] = {}
    if mount.token_file is not None:
        token_file = mount.token_file
        by_role = local_tokens(token_file)
        say(f"API tokens, one per local role (kept in {token_file}; read it with "
            f"`cat {token_file}`):")
        for role, token in by_role.items():
            say(f"  {role:<14} {token}")
    else:
        say(f"API tokens: those of ${TOKENS_FILE_ENV} / ${TOKENS_ENV}")
    say("try: the release gate (fails on a service with high P0/P1 recurrence) and "
        "correlate (appends a timeline note):")
    for line in curl_lines(settings, by_role, example):
        say(line)


def say_receivers(settings: WorkerSettings, mounted: MountedReceivers) -> None:
    """The receivers mounted, and the Alertmanager configuration to paste."""
    web = f"http://{settings.web_host}:{settings.web_port}"
    for line in mounted.summary_lines(web):
        say(line)
    snippet = mounted.alertmanager_snippet(web)
    if snippet:
        say("Alertmanager: merge this into alertmanager.yml (then reload it):")
        click.echo(snippet, nl=False)
