"""Mounting the receivers on the worker's web server: the one call the worker makes.

:func:`serve_receivers` loads the secrets, builds the Kafka publisher and adds
the routes to the aiohttp application the worker serves. It needs nothing of
the stream core beyond that application, its settings, policy and metrics, and
a ``reachable`` callable saying whether the broker is known to be gone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from app.api.tokens import TokenRoles
from app.metrics import MetricsRegistry
from app.policy import Policy
from app.stream.settings import WorkerSettings

from .credentials import (
    SECRETS_ENV,
    SECRETS_FILE_ENV,
    SourceSecretError,
    SourceSecrets,
    load_source_secrets,
)
from .kafka import KafkaRecordPublisher
from .receivers import SourceReceivers, add_source_routes
from .snippets import alertmanager_receiver

__all__ = ["LOCAL_SECRETS_FILE", "MountedReceivers", "serve_receivers"]

LOCAL_SECRETS_FILE = "source-secrets.yml"
"""Under the data dir: a local run's receiver secrets when no variable names them."""


@dataclass
class MountedReceivers:
    """The receivers as served, and what to tell the user about them."""

    receivers: SourceReceivers
    publisher: KafkaRecordPublisher
    secrets: SourceSecrets
    local_file: Path | None
    """The local secrets file in use, when neither variable is set."""

    def summary_lines(self, web_base: str) -> list[str]:
        """One line per route (on or off, and why), and where the secrets come from."""
        where = (f"kept in {self.local_file}; add pagerduty: / grafana: there to turn those on"
                 if self.local_file else f"from ${SECRETS_FILE_ENV} / ${SECRETS_ENV}")
        alerts = "on" if self.secrets.alerts_enabled else "off (no alertmanager or grafana secret)"
        pagerduty = "on" if self.secrets.pagerduty_enabled else "off (no pagerduty secret)"
        return [
            f"webhook receivers (secrets {where}):",
            f"  POST {web_base}/v1/sources/alertmanager[/SOURCE]  Alertmanager, Grafana: {alerts}",
            f"  POST {web_base}/v1/sources/pagerduty  PagerDuty V3: {pagerduty}",
        ]

    def alertmanager_snippet(self, web_base: str) -> str | None:
        """The receiver to paste into ``alertmanager.yml``, with the local token (a token of
        an operator's variable or file is never printed)."""
        if not self.secrets.alertmanager:
            return None
        token = self.secrets.alertmanager[0] if self.local_file else "<the alertmanager token>"
        return alertmanager_receiver(f"{web_base}/v1/sources/alertmanager", token)


def _own_secrets(secrets: SourceSecrets, api_tokens: TokenRoles) -> None:
    for key in ("alertmanager", "grafana", "pagerduty"):
        for value in getattr(secrets, key):
            if api_tokens.role_for(value) is not None:
                raise SourceSecretError(f"receiver secret {key}: it is also an API token; "
                                        "give the receivers secrets of their own")


def serve_receivers(web_app: web.Application, settings: WorkerSettings, policy: Policy,
                    metrics: MetricsRegistry, api_tokens: TokenRoles, *,
                    reachable: Callable[[], bool],
                    environ: Mapping[str, str] = os.environ) -> MountedReceivers:
    """Add ``/v1/sources/*`` to ``web_app`` (before it starts) and close the producer when
    it stops. Raises :class:`~app.errors.UserError` for unusable secrets."""
    local = not (environ.get(SECRETS_FILE_ENV, "").strip() or environ.get(SECRETS_ENV, "").strip())
    local_file = settings.data_dir / LOCAL_SECRETS_FILE if local else None
    secrets = load_source_secrets(environ, local_file)
    _own_secrets(secrets, api_tokens)
    publisher = KafkaRecordPublisher(
        settings.bootstrap_servers, ack_timeout=policy.sources.delivery.ack_timeout_seconds,
        topic_name=settings.topic, client_options=settings.kafka_client_options(),
        reachable=reachable, source_prefix=f"/incident-intel/{settings.app_id}")
    receivers = SourceReceivers(policy, secrets, publisher, metrics=metrics,
                                topic_name=settings.topic)
    add_source_routes(web_app.router, receivers)

    async def close(app: web.Application) -> None:
        await publisher.close()

    web_app.on_cleanup.append(close)
    return MountedReceivers(receivers, publisher, secrets, local_file)
