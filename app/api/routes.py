"""The HTTP surface: routes, thin handlers, and the two ways to mount them.

==========================================  ======================================
``POST /v1/tools/incident_intelligence``    tool call: correlate, recurrence,
                                            buckets, weekly_digest, alerts,
                                            correlation_quality
``POST /v1/gates/recurrence_watch``         the release gate (``action`` optional)
``POST /v1/feedback/links``                 a responder's verdict on a pair of incidents,
                                            published to ``learning.events`` (202 once
                                            acknowledged; see :mod:`app.api.feedback`)
``GET  /v1/learning/velocity``              learning velocity per quarter
``GET  /``                                  the on-call dashboard (no token; see
                                            :mod:`app.api.dashboard`)
``GET  /healthz``                           the same as ``/readyz`` (status and body)
``GET  /livez``                             liveness: the event loop answers
``GET  /readyz``                            readiness, from the host's provider
``GET  /metrics``                           the registry the API and the worker share:
                                            Prometheus text, or OpenMetrics when
                                            ``Accept`` asks for it
==========================================  ======================================

Every ``/v1`` call: bearer token (401) → body within ``max_body_bytes`` (413)
and ``body_timeout_seconds`` (408) → valid call (400) → entitlements of
``rbac.yml`` (403) → replica recovered (503) → a free engine-read slot of the
token (429) → rate limit of ``rate_limits.yml`` (429) → answer within the
action's ``timeout_seconds`` (504). Handlers only chain those steps; each step
lives in its own module. Any unexpected exception becomes a 503 ``internal``
error whose detail goes to the log, never to the client. Every response
closes its connection and carries ``X-Content-Type-Options: nosniff``; ``/v1``
and the probes also carry ``Cache-Control: no-store``. Connection-level
bounds are :mod:`app.api.connections`'.

:func:`create_api` builds a standalone aiohttp application (tests,
``incident-intel serve``); :func:`register_routes` adds the same routes to a
Faust app's aiohttp server, so the worker serves them on its web port.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, ValidationError

from app.contracts import (
    CorrelateRequest,
    InvalidRequest,
    LinkFeedbackAccepted,
    LinkFeedbackRequest,
    dump_json,
    format_timestamp,
    parse_request,
)
from app.intel.engine import Request
from app.metrics import MetricsRegistry
from app.policy import Policy

from .access import operations_of
from .admission import Admission, Caller
from .answers import answer_call, dashboard_data, learning_velocity, within
from .body import read_json
from .connections import one_request_per_connection
from .dashboard import CONTENT_SECURITY_POLICY, render_dashboard, render_notice
from .errors import ApiError, error_response
from .feedback import TOPIC, LinkPublisher, PublishUnavailable, unknown_incidents, verdict_event
from .live import LiveView
from .metrics import ApiMetrics
from .ratelimit import InFlightLimiter, SlidingWindowLimiter
from .readiness import Liveness, ReadinessProvider, ReadyReport, view_readiness
from .tokens import TokenRoles

if TYPE_CHECKING:
    import faust

__all__ = ["API_KEY", "ROUTES", "Api", "Route", "add_routes", "create_api",
           "register_routes"]

log = logging.getLogger(__name__)

TOOL_ACTIONS: tuple[str, ...] = ("correlate", "recurrence", "buckets", "weekly_digest",
                                "alerts", "correlation_quality")
GATE_ACTION = "gate"
LINK_FEEDBACK_ACTION = "link_feedback"
"""The ``rbac.yml`` / ``rate_limits.yml`` action of ``POST /v1/feedback/links``."""
VELOCITY_ACTION = "velocity"
DASHBOARD_ACTION = "dashboard"
"""Its time limit is ``rate_limits.yml``'s ``dashboard`` entry, else the default."""
DEFAULT_REFRESH_SECONDS = 30
DEFAULT_DASHBOARD_CACHE_SECONDS = 5.0
"""The page is public: one render serves every screen for this long, so a
burst of anonymous loads costs one engine read. Concurrent first requests
share one render in progress; a failed render (503/504 notice) is kept for the
same time, so a struggling replica is not read harder by reloads."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    name: str
    handler: str
    """Name of the :class:`Api` method answering it."""


ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1/tools/incident_intelligence", "intel.tool", "tool_call"),
    Route("POST", "/v1/gates/recurrence_watch", "intel.gate", "gate"),
    Route("POST", "/v1/feedback/links", "intel.feedback_links", "link_feedback"),
    Route("GET", "/v1/learning/velocity", "intel.velocity", "velocity"),
    Route("GET", "/healthz", "intel.healthz", "healthz"),
    Route("GET", "/livez", "intel.livez", "livez"),
    Route("GET", "/readyz", "intel.readyz", "readyz"),
    Route("GET", "/metrics", "intel.metrics", "prometheus"),
    Route("GET", "/", "intel.dashboard", "dashboard"),
)


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(body=dump_json(model), status=status, content_type="application/json")


_NO_STORE = ("/v1/", "/healthz", "/livez", "/readyz", "/metrics")


async def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: no sniffing anywhere; API answers are never cached."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.path.startswith(_NO_STORE):
        response.headers["Cache-Control"] = "no-store"


def _parse(obj: Any, allowed: tuple[str, ...], elsewhere: str) -> Request:
    action = obj.get("action") if isinstance(obj, dict) else None
    if isinstance(action, str) and action not in allowed:
        hint = f"; {action} is served by {elsewhere}" if action == GATE_ACTION else ""
        raise ApiError("invalid_request", f"action: unknown action {action!r} (expected one "
                                          f"of {', '.join(allowed)}){hint}")
    try:
        return parse_request(obj)
    except InvalidRequest as exc:
        raise ApiError("invalid_request", str(exc)) from None


def _link_call(obj: Any) -> LinkFeedbackRequest:
    if not isinstance(obj, dict):
        raise ApiError("invalid_request", "the verdict must be a JSON object")
    try:
        return LinkFeedbackRequest.model_validate(obj)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"]) or "value"
        raise ApiError("invalid_request", f"{where}: {err['msg']}") from None


class Api:
    """The handlers, over one view, one policy and one set of tokens."""

    def __init__(self, view: LiveView, policy: Policy, tokens: TokenRoles, *,
                 clock: Callable[[], float] = time.monotonic,
                 refresh_seconds: int = DEFAULT_REFRESH_SECONDS,
                 dashboard_cache_seconds: float = DEFAULT_DASHBOARD_CACHE_SECONDS,
                 readiness: ReadinessProvider | None = None,
                 metrics: MetricsRegistry | None = None,
                 links: LinkPublisher | None = None,
                 wall_clock: Callable[[], datetime] = _wall_clock) -> None:
        self.view = view
        self.policy = policy
        self.clock = clock
        self.links = links
        """Where verdicts are published; ``None``: this server records none (503)."""
        self.wall_clock = wall_clock
        """The time a verdict is stamped with when the call gives none."""
        self.refresh_seconds = refresh_seconds
        self.dashboard_cache_seconds = dashboard_cache_seconds
        self.readiness = readiness or view_readiness(view)
        self.counters = ApiMetrics(metrics)
        self.admission = Admission(tokens, policy.rbac,
                                   SlidingWindowLimiter(policy.rate_limits, clock), self.counters,
                                   InFlightLimiter(policy.rate_limits.engine_reads.per_token))
        self._page: tuple[float, int, str] | None = None
        self._rendering: asyncio.Future[tuple[float, int, str]] | None = None

    # ------------------------------------------------------------------ /v1

    def _require_ready(self) -> None:
        if not self.view.ready:
            raise ApiError("not_ready", "the replica is still recovering; retry shortly")

    async def _answer(self, caller: Caller, call: Request,
                      operations: tuple[str, ...]) -> web.Response:
        self.admission.authorize(caller, operations, call.action)
        self._require_ready()
        with self.admission.reading(caller, call.action):
            self.admission.admit(caller, call.action)
            limit = self.policy.rate_limits.for_action(call.action)
            self.counters.count_engine_read()
            return _json(await within(limit.timeout_seconds, call.action,
                                      lambda stop: answer_call(self.view, call, stop)))

    async def _body(self, request: web.Request) -> object:
        limits = self.policy.rate_limits
        return await read_json(request, limits.max_body_bytes, limits.http.body_timeout_seconds)

    async def tool_call(self, request: web.Request) -> web.Response:
        """A tool call, answered exactly as ``incident-intel tool`` answers it."""
        caller = self.admission.authenticate(request)
        body = await self._body(request)
        call = _parse(body, TOOL_ACTIONS, "POST /v1/gates/recurrence_watch")
        append = isinstance(call, CorrelateRequest) and call.append_note
        return await self._answer(caller, call, operations_of(call.action, append))

    async def gate(self, request: web.Request) -> web.Response:
        """The release gate; the body is the gate call, ``action`` may be left out."""
        caller = self.admission.authenticate(request)
        body = await self._body(request)
        if isinstance(body, dict):
            body = {"action": GATE_ACTION, **body}
        call = _parse(body, (GATE_ACTION,), "POST /v1/tools/incident_intelligence")
        return await self._answer(caller, call, operations_of(GATE_ACTION))

    async def link_feedback(self, request: web.Request) -> web.Response:
        """A responder's verdict on a pair, published to ``learning.events``; 202 once the
        broker (or ``serve``'s file) acknowledged it, 503 with ``Retry-After`` when not."""
        caller = self.admission.authenticate(request)
        call = _link_call(await self._body(request))
        action = LINK_FEEDBACK_ACTION
        self.admission.authorize(caller, operations_of(action), action)
        if self.links is None:
            raise ApiError("unavailable", "this server records no verdicts (incident-intel "
                                          "serve without --verdicts FILE): post it to a "
                                          "worker, or restart serve with --verdicts FILE")
        self._require_ready()
        now = self.wall_clock()
        event = verdict_event(call, caller.role, now)
        skew = timedelta(minutes=self.policy.intel.max_future_skew_minutes)
        if event.occurred_at - now > skew:
            raise ApiError("invalid_argument",
                           f"occurred_at: {format_timestamp(event.occurred_at)} is more than "
                           f"max_future_skew_minutes "
                           f"({self.policy.intel.max_future_skew_minutes}) ahead of the "
                           "server's clock")
        limit = self.policy.rate_limits.for_action(action)
        with self.admission.reading(caller, action):
            self.admission.admit(caller, action)
            self.counters.count_engine_read()
            ids = (event.incident_id, event.related_incident_id)
            unknown = await within(limit.timeout_seconds, "checking the incidents",
                                   lambda stop: self.view.read(
                                       functools.partial(unknown_incidents, ids)))
            if unknown:
                raise ApiError("unknown_incident", f"no incident {unknown[0]!r} is known; a "
                                                   "verdict names two known incidents")
            try:
                async with asyncio.timeout(limit.timeout_seconds):
                    await self.links.publish_link(event)
            except TimeoutError:
                raise ApiError("unavailable", f"{TOPIC} did not acknowledge the verdict within "
                                              f"{limit.timeout_seconds:g} s; retry (the same "
                                              "event_id is harmless)",
                               {"Retry-After": str(_retry_after(limit.timeout_seconds))}) from None
            except PublishUnavailable as exc:
                raise ApiError("unavailable", f"the verdict was not published: {exc}",
                               {"Retry-After": str(exc.retry_after_seconds)}) from None
        return _json(LinkFeedbackAccepted(status="published", topic=TOPIC, event=event), 202)

    async def velocity(self, request: web.Request) -> web.Response:
        """Learning velocity per quarter (the view keeps it current; no engine walk)."""
        caller = self.admission.authenticate(request)
        self.admission.authorize(caller, operations_of(VELOCITY_ACTION), VELOCITY_ACTION)
        self._require_ready()
        self.admission.admit(caller, VELOCITY_ACTION)
        return _json(learning_velocity(self.view, self.policy))

    # ------------------------------------------------------------- open routes

    async def _render(self) -> tuple[float, int, str]:
        """One render, stamped with when it started; failures give a notice page."""
        started = self.clock()
        timeout = self.policy.rate_limits.for_action(DASHBOARD_ACTION).timeout_seconds
        status = 200
        try:
            self.counters.count_engine_read()
            data = await within(timeout, "the dashboard",
                                lambda stop: dashboard_data(self.view, self.policy, stop))
        except ApiError as exc:
            page, status = render_notice(exc.message, self.refresh_seconds), exc.status
        except Exception:
            log.exception("unexpected error reading the replica for the dashboard")
            page = render_notice("The replica could not be read; the server log has the "
                                 "detail.", self.refresh_seconds)
            status = 503
        else:
            page = render_dashboard(data, self.refresh_seconds)
        return started, status, page

    async def _current_page(self) -> tuple[float, int, str]:
        """The cached render while fresh; else the render in progress, or a new one."""
        if self._page is not None and self.clock() - self._page[0] < self.dashboard_cache_seconds:
            return self._page
        if self._rendering is None:
            self._rendering = asyncio.ensure_future(self._render())

            def keep(done: asyncio.Future[tuple[float, int, str]]) -> None:
                self._rendering = None
                if not done.cancelled() and done.exception() is None:
                    self._page = done.result()

            self._rendering.add_done_callback(keep)
        # shielded: a client that gives up does not cancel the render others wait for
        return await asyncio.shield(self._rendering)

    async def dashboard(self, request: web.Request) -> web.Response:
        """The on-call page; a failed read still answers a page that keeps refreshing."""
        _, status, page = await self._current_page()
        return web.Response(text=page, status=status, content_type="text/html", headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        })

    async def healthz(self, request: web.Request) -> web.Response:
        """The same answer as ``/readyz``, status code and body: a load balancer or probe
        that only knows ``/healthz`` sends no traffic before this process is ready
        (liveness is ``/livez``)."""
        return await self.readyz(request)

    async def livez(self, request: web.Request) -> web.Response:
        """Liveness: the event loop answered; nothing else is consulted."""
        return _json(Liveness(status="ok"))

    async def readyz(self, request: web.Request) -> web.Response:
        """Readiness from the host's provider: 503 naming what it still waits for."""
        state = self.readiness()
        return _json(ReadyReport(status="ready" if state.ready else "not_ready",
                                 waiting_for=list(state.waiting_for)),
                     200 if state.ready else 503)

    async def prometheus(self, request: web.Request) -> web.Response:
        """The registry the API and the worker share: OpenMetrics when the scraper's
        ``Accept`` asks for it, else the Prometheus text format."""
        body, content_type = self.counters.exposition(request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type,
                                                "Vary": "Accept"})

    # ------------------------------------------------------------------ wiring

    def guarded(self, route: str, handler: Handler) -> Handler:
        """Count every answer; turn refusals and surprises into error bodies."""

        async def run(request: web.Request) -> web.StreamResponse:
            try:
                response = await handler(request)
            except ApiError as exc:
                response = error_response(exc)
            except web.HTTPException as exc:  # raised by aiohttp itself, e.g. a bad request
                code = _HTTP_CODES.get(exc.status, "invalid_request")
                response = error_response(ApiError(code, exc.reason))
            except Exception:
                log.exception("unexpected error answering %s %s", request.method, route)
                response = error_response(ApiError(
                    "internal", "unexpected error; the server log has the detail"))
            self.counters.count_request(route, request.method, response.status)
            return response

        run.__doc__ = handler.__doc__
        return run

    def not_allowed(self, route: Route) -> Handler:
        """405 with ``Allow`` for the methods a route does not answer."""
        allow = "GET, HEAD" if route.method == "GET" else route.method

        async def refuse(request: web.Request) -> web.Response:
            raise ApiError("method_not_allowed",
                           f"{request.method} is not allowed on {route.path}; use {allow}",
                           {"Allow": allow})

        return self.guarded(route.path, refuse)


def _retry_after(seconds: float) -> int:
    return max(1, round(seconds))


def add_routes(router: web.UrlDispatcher, api: Api) -> None:
    """Add every route to ``router`` (named ``intel.*``, so none merges with another's)."""
    for route in ROUTES:
        handler = api.guarded(route.path, getattr(api, route.handler))
        if route.method == "GET":
            router.add_get(route.path, handler, name=route.name, allow_head=True)
        else:
            router.add_route(route.method, route.path, handler, name=route.name)
        router.add_route("*", route.path, api.not_allowed(route), name=route.name)


API_KEY = web.AppKey("incident_intel_api", Api)


def _unmatched(api: Api) -> Middleware:
    """Unknown paths answer the JSON error contract too, and are counted."""

    @web.middleware
    async def json_not_found(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            api.counters.count_request("(unmatched)", request.method, 404)
            return error_response(ApiError("not_found", "no such route"))

    return json_not_found


def _harden(app: web.Application) -> None:
    """Response headers and one request per connection, for every route of ``app``."""
    app.on_response_prepare.append(_secure_headers)
    app.on_response_prepare.append(one_request_per_connection)


def create_api(view: LiveView, policy: Policy, tokens: TokenRoles, *,
               clock: Callable[[], float] = time.monotonic,
               refresh_seconds: int = DEFAULT_REFRESH_SECONDS,
               dashboard_cache_seconds: float = DEFAULT_DASHBOARD_CACHE_SECONDS,
               readiness: ReadinessProvider | None = None,
               metrics: MetricsRegistry | None = None,
               links: LinkPublisher | None = None,
               wall_clock: Callable[[], datetime] = _wall_clock) -> web.Application:
    """A standalone aiohttp application serving the API over ``view``; verdicts go to
    ``links`` (none: ``POST /v1/feedback/links`` answers 503).

    Serve it with :func:`app.api.connections.guarded_site` (and
    :func:`~app.api.connections.server_options` for the runner) so the
    connection bounds apply too.
    """
    api = Api(view, policy, tokens, clock=clock, refresh_seconds=refresh_seconds,
              dashboard_cache_seconds=dashboard_cache_seconds, readiness=readiness,
              metrics=metrics, links=links, wall_clock=wall_clock)
    app = web.Application(middlewares=[_unmatched(api)])
    app[API_KEY] = api
    _harden(app)
    add_routes(app.router, api)
    return app


def register_routes(faust_app: faust.App, view: LiveView, policy: Policy, tokens: TokenRoles,
                    *, clock: Callable[[], float] = time.monotonic,
                    refresh_seconds: int = DEFAULT_REFRESH_SECONDS,
                    readiness: ReadinessProvider | None = None,
                    metrics: MetricsRegistry | None = None,
                    links: LinkPublisher | None = None) -> Api:
    """Serve the API from a Faust app's web server; call it before the worker starts.

    Faust's aiohttp driver exposes its :class:`aiohttp.web.Application` as
    ``app.web.web_app``; the routes are added to its router directly. They
    are added before Faust applies its own blueprints (when the web server
    starts), so ``GET /`` is the dashboard rather than Faust's
    ``{"status": "OK"}`` index; Faust's other views (``/router/``,
    ``/table/``, pages such as ``/health/``) are untouched. The web server must
    run on the worker's event loop (``web_in_thread`` off), because the view's
    reads and sends belong to that loop.

    Response headers and one-request-per-connection apply to every route of
    the web server. The connection bounds (``rate_limits.yml`` ``http``) need
    the worker's web driver to be :class:`app.api.worker_web.GuardedWeb`
    (``web=guarded_web_driver()`` when the Faust app is made); with Faust's
    plain driver they are not enforced and a warning says so.
    ``readiness`` answers ``/readyz`` (default: ``view.ready``); ``links``
    publishes the verdicts of ``POST /v1/feedback/links`` (the worker's broker).
    """
    web_app = getattr(faust_app.web, "web_app", None)
    if not isinstance(web_app, web.Application):
        raise TypeError("register_routes needs Faust's aiohttp web driver (web='aiohttp://')")
    if faust_app.conf.web_in_thread:
        raise ValueError("register_routes needs web_in_thread=False: the API reads the "
                         "replica on the worker's event loop")
    if web_app.frozen:
        raise RuntimeError("register_routes must be called before the web server starts")
    api = Api(view, policy, tokens, clock=clock, refresh_seconds=refresh_seconds,
              readiness=readiness, metrics=metrics, links=links)
    _harden(web_app)
    add_routes(web_app.router, api)
    from .worker_web import GuardedWeb

    if isinstance(faust_app.web, GuardedWeb):
        faust_app.web.guard(policy.rate_limits.http, api.counters)
    else:
        log.warning("the worker's web driver is not GuardedWeb: connection limits "
                    "(rate_limits.yml http) are not enforced on its port")
    return api
