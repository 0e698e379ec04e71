"""The receivers' HTTP routes, on the worker's web server.

==========================================  ==========================================
``POST /v1/sources/alertmanager``            Alertmanager ``webhook_config``, Grafana
``POST /v1/sources/alertmanager/{source}``   Alerting's webhook contact point
``POST /v1/sources/pagerduty``               a PagerDuty V3 webhook subscription
==========================================  ==========================================

They sit behind the same connection guard, headers and one-request-per-connection
rule as the API (they are added to the same aiohttp application), with their own
bounds from ``sources.yml``. Each step has its own answer:

receiver has no secret (404) → credentials (401: a bearer token of its own, or
a valid HMAC signature; never the API's tokens) → body within
``max_body_bytes`` (413) and ``body_timeout_seconds`` (408) → the sender's
format (400, and the raw body, cut to ``dead_letter_max_bytes``, goes to
``intel.dlq`` with the reason) → every record acknowledged by the broker
(200), or 503 with ``Retry-After`` so the sender retries.

A credential is never logged nor echoed; refused bodies are logged with their
reason only. An Alertmanager group cut short (``truncatedAlerts``) is counted
and logged once per source: those alerts never reach any webhook receiver.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from aiohttp import web

from app.api.body import read_limited
from app.api.errors import ApiError, error_response
from app.api.metrics import ApiMetrics
from app.contracts import DlqRecord
from app.metrics import MetricsRegistry
from app.policy import Policy

from .alertmanager import SOURCE_NAME, map_alerts
from .credentials import SourceSecrets
from .pagerduty import map_event
from .publishing import AcknowledgedRecords, BrokerUnavailable, RecordPublisher
from .records import InvalidDelivery, SourceRecord, decode
from .signatures import (
    bearer_token,
    grafana_signature_valid,
    pagerduty_signature_valid,
    token_matches,
)

__all__ = ["SOURCE_ROUTES", "SourceReceivers", "add_source_routes"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Answer = tuple[str, dict[str, Any]]
"""A handled delivery: its outcome (``accepted`` or ``ignored``) and the JSON to answer."""
Receiver = Callable[[web.Request], Awaitable[Answer]]
SOURCE_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("/v1/sources/alertmanager", "alertmanager", "intel.sources.alertmanager"),
    ("/v1/sources/alertmanager/{source}", "alertmanager", "intel.sources.alertmanager_source"),
    ("/v1/sources/pagerduty", "pagerduty", "intel.sources.pagerduty"),
)
"""(path, receiver, route name)."""
DEFAULT_SOURCE = "default"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="incident-intel-sources"'}
_OUTCOMES = {"unauthorized": "unauthorized", "payload_too_large": "too_large",
             "request_timeout": "request_timeout", "invalid_request": "invalid",
             "unavailable": "unavailable", "not_found": "disabled",
             "internal": "internal"}
"""The ``outcome`` label (:data:`app.metrics.SOURCE_DELIVERY_OUTCOMES`) of each refusal."""


class SourceReceivers:
    """The handlers, over one policy, the receivers' secrets and one publisher."""

    def __init__(self, policy: Policy, secrets: SourceSecrets, publisher: RecordPublisher, *,
                 metrics: MetricsRegistry | None = None,
                 topic_name: Callable[[str], str] = str) -> None:
        self.policy = policy
        self.sources = policy.sources
        self.secrets = secrets
        self.api_metrics = ApiMetrics(metrics)
        self.metrics = self.api_metrics.registry
        self.records = AcknowledgedRecords(publisher, self.sources.delivery.repeat_memory)
        self.topic_name = topic_name
        self._truncation_logged: set[str] = set()

    # --------------------------------------------------------------- the steps

    async def _body(self, request: web.Request) -> bytes:
        return await read_limited(request, self.sources.delivery.max_body_bytes,
                                  self.policy.rate_limits.http.body_timeout_seconds)

    def _alert_credentials(self, request: web.Request) -> None:
        """401 unless the bearer token is one of the receiver's, or there is none and a
        Grafana signature will be checked against the body instead."""
        header = request.headers.get("Authorization")
        if header is not None:
            token = bearer_token(header)
            if token is None or not token_matches(token, self.secrets.alertmanager):
                raise ApiError("unauthorized", "unknown bearer token", _CHALLENGE)
        elif not (self.secrets.grafana
                  and self.sources.grafana.signature_header in request.headers):
            raise ApiError("unauthorized", "missing header Authorization: Bearer <token>",
                           _CHALLENGE)

    def _check_grafana_signature(self, request: web.Request, body: bytes) -> None:
        names = self.sources.grafana
        signature = request.headers.get(names.signature_header)
        if signature is None or not self.secrets.grafana:
            return
        if not grafana_signature_valid(signature, request.headers.get(names.timestamp_header),
                                       body, self.secrets.grafana):
            raise ApiError("unauthorized", f"{names.signature_header} does not match the body",
                           _CHALLENGE)

    async def _publish(self, receiver: str, records: Sequence[SourceRecord]) -> tuple[int, int]:
        try:
            published, repeats = await self.records.publish(records)
        except BrokerUnavailable as exc:
            raise ApiError("unavailable",
                           f"the broker did not acknowledge the records ({exc}); retry later",
                           {"Retry-After": str(self.sources.delivery.retry_after_seconds)}
                           ) from None
        self.metrics.source_records.inc(published, receiver=receiver, outcome="published")
        self.metrics.source_records.inc(repeats, receiver=receiver, outcome="repeat")
        return published, repeats

    async def _refuse(self, receiver: str, key: str, topic: str, route: str, body: bytes,
                      problem: InvalidDelivery) -> ApiError:
        """Put the body on ``intel.dlq`` with the reason; the 400 to answer."""
        limit = self.sources.delivery.dead_letter_max_bytes
        reason = str(problem)
        if len(body) > limit:
            reason += f" (raw cut to its first {limit} of {len(body)} bytes)"
        letter = DlqRecord.from_raw(source_topic=self.topic_name(topic), partition=-1,
                                    offset=-1, error=reason, raw=body[:limit], key=key.encode())
        record_id = "dlq:" + hashlib.sha256(key.encode() + b"\x00" + body).hexdigest()[:32]
        await self._publish(receiver, [SourceRecord(
            topic="intel.dlq", key=key, value=letter.model_dump_json().encode(),
            record_id=record_id, source=route.replace("/v1", "", 1), time=None,
            headers=(("intel-error-class", "invalid"), ("intel-source-route", route)))])
        log.warning("%s: refused a delivery (%s) -> %s", route, reason,
                    self.topic_name("intel.dlq"))
        return ApiError("invalid_request", reason)

    def _truncated(self, source: str, lost: int) -> None:
        self.metrics.source_truncated_alerts.inc(lost, source=source)
        if source not in self._truncation_logged:
            self._truncation_logged.add(source)
            log.warning("alertmanager source %r sent a group without %d of its alerts "
                        "(truncatedAlerts; max_alerts of its webhook_config): no webhook "
                        "receiver ever gets those; counted in "
                        "incident_intel_source_truncated_alerts_total, logged once", source,
                        lost)

    # ---------------------------------------------------------------- handlers

    async def alertmanager(self, request: web.Request) -> Answer:
        """An Alertmanager or Grafana notification: its alerts as ``alerts.state`` transitions."""
        if not self.secrets.alerts_enabled:
            raise ApiError("not_found", "no such route")
        source = request.match_info.get("source", DEFAULT_SOURCE)
        if not SOURCE_NAME.match(source):
            raise ApiError("invalid_request", "the source name (last path segment) is 1 to 40 "
                                              "letters, digits, '_' or '-'")
        self._alert_credentials(request)
        body = await self._body(request)
        self._check_grafana_signature(request, body)
        route = f"/v1/sources/alertmanager/{source}"
        try:
            delivery = map_alerts(decode(body), source, self.sources.alertmanager,
                                  self.policy.intel.kind_derivation)
        except InvalidDelivery as problem:
            raise await self._refuse("alertmanager", f"alertmanager:{source}", "alerts.state",
                                     route, body, problem) from None
        if delivery.truncated:
            self._truncated(source, delivery.truncated)
        published, repeats = await self._publish("alertmanager", delivery.records)
        return "accepted", {"status": "accepted", "sender": delivery.sender, "source": source,
                             "alerts": delivery.alerts, "transitions": len(delivery.records),
                             "published": published, "repeats": repeats,
                             "truncated_alerts": delivery.truncated}

    async def pagerduty(self, request: web.Request) -> Answer:
        """A PagerDuty V3 webhook: an incident event as an ``incidents.events`` version."""
        if not self.secrets.pagerduty_enabled:
            raise ApiError("not_found", "no such route")
        body = await self._body(request)
        if not pagerduty_signature_valid(request.headers.get("X-PagerDuty-Signature"), body,
                                         self.secrets.pagerduty):
            raise ApiError("unauthorized", "X-PagerDuty-Signature is missing or matches none "
                                           "of the configured signing secrets")
        try:
            delivery = map_event(decode(body), self.sources.pagerduty)
        except InvalidDelivery as problem:
            raise await self._refuse("pagerduty", "pagerduty", "incidents.events",
                                     "/v1/sources/pagerduty", body, problem) from None
        if delivery.record is None:
            return "ignored", {"status": "ignored", "event_type": delivery.event_type,
                               "reason": delivery.ignored}
        published, repeats = await self._publish("pagerduty", [delivery.record])
        return "accepted", {"status": "accepted", "event_type": delivery.event_type,
                             "incident_id": delivery.record.key,
                             "event_id": delivery.record.record_id, "published": published,
                             "repeats": repeats}

    # ------------------------------------------------------------------ wiring

    def guarded(self, route: str, receiver: str, handler: Receiver) -> Handler:
        """Count every answer; refusals and surprises become error bodies."""

        async def run(request: web.Request) -> web.StreamResponse:
            response: web.Response
            try:
                outcome, body = await handler(request)
                response = web.Response(body=orjson.dumps(body), status=200,
                                        content_type="application/json")
            except ApiError as exc:
                response = error_response(exc)
                outcome = _OUTCOMES.get(exc.code, "invalid")
            except web.HTTPException as exc:  # raised by aiohttp itself, e.g. a bad request
                code = "payload_too_large" if exc.status == 413 else "invalid_request"
                response = error_response(ApiError(code, exc.reason))
                outcome = _OUTCOMES[code]
            except Exception:
                log.exception("unexpected error answering %s %s", request.method, route)
                response = error_response(ApiError(
                    "internal", "unexpected error; the server log has the detail"))
                outcome = "internal"
            self.metrics.source_deliveries.inc(receiver=receiver, outcome=outcome)
            self.api_metrics.count_request(route, request.method, response.status)
            return response

        run.__doc__ = handler.__doc__
        return run

    def not_allowed(self, route: str, receiver: str) -> Handler:
        """405 with ``Allow: POST`` for any other method."""

        async def refuse(request: web.Request) -> Answer:
            raise ApiError("method_not_allowed",
                           f"{request.method} is not allowed on {route}; use POST",
                           {"Allow": "POST"})

        return self.guarded(route, receiver, refuse)


def add_source_routes(router: web.UrlDispatcher, receivers: SourceReceivers) -> None:
    """Add the receivers' routes (POST; any other method is 405)."""
    for path, receiver, name in SOURCE_ROUTES:
        handler = receivers.guarded(path, receiver, getattr(receivers, receiver))
        router.add_route("POST", path, handler, name=name)
        router.add_route("*", path, receivers.not_allowed(path, receiver), name=name)
