"""The OpenAPI 3.1 description of the API, built from the contract models.

Bodies are described by the same pydantic models that validate requests and
serialise responses, so the description cannot disagree with the code about a
field. The document is committed as ``openapi/incident-intel.yaml`` for other
teams; a test fails when the file, this builder or the live routes drift
apart. Regenerate it with::

    python -m app.api.openapi > openapi/incident-intel.yaml
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, RootModel
from pydantic.json_schema import models_json_schema

from app.contracts import (
    AlertsRequest,
    AlertsResponse,
    BucketsRequest,
    BucketsResponse,
    CorrelateRequest,
    CorrelateResponse,
    CorrelationQualityRequest,
    CorrelationQualityResponse,
    ErrorResponse,
    GateRequest,
    GateResponse,
    LinkFeedbackAccepted,
    LinkFeedbackRequest,
    RecurrenceRequest,
    RecurrenceResponse,
    VelocityReport,
    WeeklyDigestRequest,
    WeeklyDigestResponse,
)

from .readiness import Liveness, ReadyReport

__all__ = ["DOCUMENT_PATH", "build_document", "render"]

DOCUMENT_PATH = "openapi/incident-intel.yaml"


class ToolCall(RootModel[Annotated[
    CorrelateRequest | RecurrenceRequest | BucketsRequest | WeeklyDigestRequest | AlertsRequest
    | CorrelationQualityRequest,
    Field(discriminator="action"),
]]):
    """A call of ``incident_intelligence_tool``; ``action`` picks the arguments."""


class GateCall(GateRequest):
    """The gate call; ``action`` may be left out."""

    action: Literal["gate"] = "gate"


_REQUESTS: tuple[type[BaseModel], ...] = (ToolCall, GateCall, LinkFeedbackRequest)
_RESPONSES: tuple[type[BaseModel], ...] = (
    CorrelateResponse, RecurrenceResponse, BucketsResponse, WeeklyDigestResponse, GateResponse,
    AlertsResponse, CorrelationQualityResponse, LinkFeedbackAccepted, VelocityReport,
    Liveness, ReadyReport, ErrorResponse,
)
_ERRORS: dict[str, tuple[str, str]] = {
    "400": ("BadRequest", "Not JSON, unknown action, or bad arguments (invalid_request, "
                          "invalid_argument)."),
    "401": ("Unauthorized", "Missing or unknown bearer token (unauthorized)."),
    "403": ("Forbidden", "The token's role lacks an entitlement; the message names it "
                         "(forbidden)."),
    "404": ("NotFound", "No such incident (unknown_incident)."),
    "408": ("RequestTimeout", "Head or body not received within header_timeout_seconds or "
                              "body_timeout_seconds of rate_limits.yml (request_timeout)."),
    "413": ("PayloadTooLarge", "Body over max_body_bytes of rate_limits.yml "
                               "(payload_too_large)."),
    "429": ("RateLimited", "Over per_minute for this token and action, or over "
                           "engine_reads.per_token calls in flight (rate_limited)."),
    "431": ("HeadersTooLarge", "A header line, the request head or the number of headers "
                               "over its bound in rate_limits.yml (headers_too_large)."),
    "503": ("Unavailable", "Replica still recovering (not_ready), a verdict not published "
                           "(unavailable) or an unexpected failure (internal); retry later."),
    "504": ("Timeout", "Over timeout_seconds for this action (timeout)."),
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _schemas() -> dict[str, Any]:
    pairs: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (m, "validation") for m in _REQUESTS] + [(m, "serialization") for m in _RESPONSES]
    _, defs = models_json_schema(pairs, ref_template="#/components/schemas/{model}")
    return dict(sorted(defs["$defs"].items()))


def _error_responses() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _, (name, text) in _ERRORS.items():
        response: dict[str, Any] = {
            "description": text,
            "content": {"application/json": {"schema": _ref("ErrorResponse")}},
        }
        if name == "RateLimited":
            response["headers"] = {"Retry-After": {
                "description": "Seconds until the oldest call in the window leaves it.",
                "schema": {"type": "integer", "minimum": 1}}}
        if name == "Unavailable":
            response["headers"] = {"Retry-After": {
                "description": "Seconds to wait before retrying, when retrying can help.",
                "schema": {"type": "integer", "minimum": 1}}}
        if name == "Unauthorized":
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        out[name] = response
    return out


def _errors(*statuses: str) -> dict[str, Any]:
    return {s: {"$ref": f"#/components/responses/{_ERRORS[s][0]}"} for s in statuses}


def _json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _paths() -> dict[str, Any]:
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    html = {"text/html": {"schema": {"type": "string"}}}
    return {
        "/v1/tools/incident_intelligence": {"post": {
            "operationId": "callIncidentIntelligenceTool",
            "summary": ("Answer a tool call (correlate, recurrence, buckets, weekly_digest, "
                        "alerts, correlation_quality)."),
            "description": (
                "Answered from the live replica as of its newest event, with the same JSON "
                "`incident-intel tool` prints for the same events. Entitlements: "
                "tools.oncall.read for correlate, recurrence, buckets, alerts and "
                "correlation_quality; "
                "tools.oncall.incident_write for weekly_digest and for correlate with "
                "append_note, which also sends the note to incidents.notes."),
            "security": bearer,
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": _ref("ToolCall")}}},
            "responses": {
                "200": _json_body({"anyOf": [_ref("CorrelateResponse"),
                                             _ref("RecurrenceResponse"),
                                             _ref("BucketsResponse"),
                                             _ref("WeeklyDigestResponse"),
                                             _ref("AlertsResponse"),
                                             _ref("CorrelationQualityResponse")]},
                                  "The action's response."),
                **_errors("400", "401", "403", "404", "408", "413", "429", "431", "503",
                          "504"),
            },
        }},
        "/v1/gates/recurrence_watch": {"post": {
            "operationId": "recurrenceWatchGate",
            "summary": "Release gate: is the service deployed into a known-bad state?",
            "description": "Needs tools.release.gate.",
            "security": bearer,
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": _ref("GateCall")}}},
            "responses": {
                "200": _json_body(_ref("GateResponse"), "The gate's verdict."),
                **_errors("400", "401", "403", "408", "413", "429", "431", "503", "504"),
            },
        }},
        "/v1/feedback/links": {"post": {
            "operationId": "linkFeedback",
            "summary": "A responder's verdict: do two incidents belong together?",
            "description": (
                "Publishes an incident.linked event to learning.events and answers 202 once "
                "it is acknowledged (incident-intel serve appends it to its --verdicts file "
                "instead). Both incidents must be known. The newest verdict of a pair wins, so "
                "retrying is harmless. Needs tools.oncall.link_feedback."),
            "security": bearer,
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": _ref("LinkFeedbackRequest")}}},
            "responses": {
                "202": _json_body(_ref("LinkFeedbackAccepted"), "Published and acknowledged."),
                **_errors("400", "401", "403", "404", "408", "413", "429", "431", "503",
                          "504"),
            },
        }},
        "/v1/learning/velocity": {"get": {
            "operationId": "learningVelocity",
            "summary": "Learning-velocity metrics per quarter, with the trend.",
            "description": "Needs tools.oncall.read.",
            "security": bearer,
            "responses": {
                "200": _json_body(_ref("VelocityReport"), "Quarters, target and trend."),
                **_errors("401", "403", "429", "503"),
            },
        }},
        "/": {"get": {
            "operationId": "dashboard",
            "summary": "On-call dashboard (HTML, refreshes itself; no token).",
            "description": ("Read-only; shows only data a tools.oncall.read caller gets from "
                            "/v1. Answers a self-refreshing notice page with 503 or 504 when "
                            "the replica cannot be read."),
            "security": [],
            "responses": {
                "200": {"description": "The dashboard.", "content": html},
                "503": {"description": "Notice page: the replica could not be read.",
                        "content": html},
                "504": {"description": "Notice page: reading the replica took too long.",
                        "content": html},
            },
        }},
        "/healthz": {"get": {
            "operationId": "health",
            "summary": "The same answer as /readyz (status code and body); liveness is /livez.",
            "security": [],
            "responses": {"200": _json_body(_ref("ReadyReport"), "Ready."),
                          "503": _json_body(_ref("ReadyReport"),
                                            "Not ready; waiting_for names what is missing.")},
        }},
        "/livez": {"get": {
            "operationId": "liveness",
            "summary": "Liveness: the event loop answers (nothing else is consulted).",
            "security": [],
            "responses": {"200": _json_body(_ref("Liveness"), "Alive.")},
        }},
        "/readyz": {"get": {
            "operationId": "readiness",
            "summary": "Readiness: whether this replica should receive traffic.",
            "security": [],
            "responses": {"200": _json_body(_ref("ReadyReport"), "Ready."),
                          "503": _json_body(_ref("ReadyReport"),
                                            "Not ready; waiting_for names what is missing.")},
        }},
        "/metrics": {"get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics of the view and of the API.",
            "security": [],
            "responses": {"200": {
                "description": "The Prometheus text format 0.0.4; OpenMetrics 1.0.0 when "
                               "Accept names application/openmetrics-text.",
                "content": {"text/plain": {"schema": {"type": "string"}},
                            "application/openmetrics-text": {"schema": {"type": "string"}}}}},
        }},
    }


def build_document() -> dict[str, Any]:
    """The whole OpenAPI document as plain data."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Incident Intelligence API",
            "version": "1",
            "description": (
                "Tool calls, the recurrence_watch release gate, learning velocity and an "
                "on-call dashboard, served by the stream worker (or `incident-intel serve`). "
                "Every /v1 call needs `Authorization: Bearer <token>`; tokens map to roles of "
                "policy/rbac.yml. Limits per token and action come from "
                "policy/rate_limits.yml. Errors are `{\"error\": {\"code\", \"message\"}}`."),
        },
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": _error_responses(),
            "schemas": _schemas(),
        },
    }


def render() -> str:
    """The document as the YAML committed in the repository."""
    header = ("# Generated by `python -m app.api.openapi` from app/api/openapi.py and the "
              "contract models.\n# Do not edit by hand: tests/api/test_openapi.py fails when "
              "it drifts.\n")
    return header + yaml.safe_dump(build_document(), sort_keys=False, allow_unicode=True,
                                   width=100)


if __name__ == "__main__":
    sys.stdout.write(render())
