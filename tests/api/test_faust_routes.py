"""``register_routes`` on a real Faust app: our routes win ``/``, Faust's own pages stay.

The Faust app is never started (no broker): its aiohttp application is set up
the way the worker's web service sets it up (blueprints applied by
``init_server``) and then served by the test harness.
"""

from __future__ import annotations

from typing import Any

import faust
import pytest

from app.api import register_routes
from tests.support.http_api import ROLE_TOKENS, running


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
