"""``register_routes`` on a real Faust app: our routes win ``/``, Faust's own pages stay.

The Faust app is never started (no broker): its aiohttp application is set up
the way the worker's web service sets it up (blueprints applied by
``init_server``) and then served by the test harness.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import faust
import pytest

from app.api import LiveView, TokenRoles, register_routes
from app.api.readiness import Readiness
from app.api.worker_web import GuardedWeb, guarded_web_driver
from app.policy import HttpLimits, Policy
from app.stream.health import WorkerHealth
from tests.support.http_api import ROLE_TOKENS, Client, running

OPENMETRICS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                      "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
"""What Prometheus 2 sends when scraping with OpenMetrics enabled."""


def faust_app(**options: Any) -> faust.App:
    return faust.App("intel-api-test", broker="memory://", store="memory://",
                     autodiscover=False, **options)


def test_routes_serve_from_fausts_web_server(view, policy, tokens) -> None:
    app = faust_app()

    @app.page("/health/")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "faust"})

    register_routes(app, view, policy, tokens)
    app.web.init_server()  # what the worker's web service does when it starts
    with running(app.web.web_app) as client:
        page = client.request("GET", "/")
        assert page.status == 200 and b'id="buckets"' in page.body  # not Faust's index
        tool = client.tool({"action": "recurrence"}, role="agent_viewer")
        assert tool.status == 200 and tool.json()["window_days"] == 7
        assert client.tool({"action": "recurrence"}, role=None).status == 401
        assert client.request("GET", "/health/").json() == {"status": "faust"}
        assert client.request("GET", "/router/").status == 200
        velocity = client.request("GET", "/v1/learning/velocity",
                                  token=ROLE_TOKENS["agent_viewer"])
        assert velocity.status == 200


def test_refuses_a_web_server_in_another_thread(view, policy, tokens) -> None:
    with pytest.raises(ValueError, match="web_in_thread"):
        register_routes(faust_app(web_in_thread=True), view, policy, tokens)


def test_refuses_once_the_server_is_frozen(view, policy, tokens) -> None:
    app = faust_app()
    app.web.web_app.freeze()
    with pytest.raises(RuntimeError, match="before the web server starts"):
        register_routes(app, view, policy, tokens)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def worker_web_server(view: LiveView, policy: Policy, tokens: TokenRoles) -> Iterator[Client]:
    """A Faust app's web server with the API, started as Faust's web service starts it."""
    port = _free_port()
    app = faust_app(web=guarded_web_driver(), web_bind="127.0.0.1", web_port=port)
    assert isinstance(app.web, GuardedWeb)
    register_routes(app, view, policy, tokens)
    app.web.init_server()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(app.web.start_server())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield Client(f"http://127.0.0.1:{port}")
    finally:
        asyncio.run_coroutine_threadsafe(app.web.stop_server(), loop).result(10)
        # connections still discarding an unread body end within the lingering time
        lingering = policy.rate_limits.http.body_timeout_seconds
        asyncio.run_coroutine_threadsafe(asyncio.sleep(lingering + 0.2), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_the_worker_web_server_enforces_the_connection_bounds(view, policy, tokens) -> None:
    limits = HttpLimits(header_timeout_seconds=0.3, body_timeout_seconds=0.3, max_connections=8)
    limited = policy.model_copy(update={"rate_limits": policy.rate_limits.model_copy(
        update={"http": limits})})
    with worker_web_server(view, limited, tokens) as client:
        port = int(client.base.rsplit(":", 1)[1])
        reply = client.tool({"action": "recurrence"}, role="agent_viewer")
        assert reply.status == 200 and reply.headers["Server"] == "incident-intel"
        assert reply.headers["Cache-Control"] == "no-store"
        token = ROLE_TOKENS["agent_viewer"].encode()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /v1/learning/velocity HTTP/1.1\r\nAuthorization: Bearer "
                         + token + b"x" * 9000 + b"\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 431") and token not in answer
        with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
            assert idle.recv(1) == b""  # closed after the header timeout


def test_the_plain_faust_driver_is_served_with_a_warning(view, policy, tokens, caplog) -> None:
    register_routes(faust_app(), view, policy, tokens)
    assert "connection limits" in caplog.text


def test_the_workers_probes_and_metrics(view, policy, tokens) -> None:
    """On the worker's web server ``/healthz`` is ``/readyz`` (the broker probe's state),
    ``/livez`` only the event loop, and ``/metrics`` answers the format asked for."""
    health = WorkerHealth(stuck_after=60.0, exit_after=120.0)
    state = {"replica_ready": False}

    def readiness() -> Readiness:
        return health.readiness(replica_ready=state["replica_ready"], assigned=True, now=1.0)

    app = faust_app()
    register_routes(app, view, policy, tokens, readiness=readiness, metrics=view.metrics)
    app.web.init_server()
    with running(app.web.web_app) as client:
        health.broker_failed(0.0)
        for path in ("/healthz", "/readyz"):
            reply = client.request("GET", path)
            assert reply.status == 503, path
            assert reply.json() == {"status": "not_ready", "waiting_for": [
                "broker_unreachable", "replica_catching_up"]}
        assert client.request("GET", "/livez").status == 200
        health.broker_answered(1.0)
        state["replica_ready"] = True
        assert [client.request("GET", p).status for p in ("/healthz", "/readyz")] == [200, 200]
        text = client.request("GET", "/metrics")
        assert text.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert b"\n# EOF" not in text.body
        om = client.request("GET", "/metrics", headers={"Accept": OPENMETRICS_ACCEPT})
        assert om.headers["Content-Type"].startswith("application/openmetrics-text")
        assert om.body.endswith(b"# EOF\n")
