"""An API server on 127.0.0.1 for a test, a small client, and the tokens of each role.

Tests talk HTTP to a server running in a background thread (its own event
loop), so they exercise the real aiohttp stack (headers, body limits, status
lines) exactly as a client would, and stay plain synchronous functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web
from pydantic import TypeAdapter

from app.api import InMemoryLiveView
from app.api.connections import guarded_site, server_options
from app.contracts import Timestamp, event_from_obj
from app.policy import HttpLimits, Policy
from tests.support.api_history import AS_OF, history

ROLE_TOKENS: dict[str, str] = {
    "agent_cto": "cto-token-0000000000000000",
    "agent_oncall": "oncall-token-000000000000000",
    "agent_monitor": "monitor-token-00000000000000",
    "agent_release": "release-token-00000000000000",
    "agent_viewer": "viewer-token-000000000000000",
}
"""One test token per role of ``policy/rbac.yml``."""


def as_of() -> datetime:
    return TypeAdapter(Timestamp).validate_python(AS_OF)


def make_view(policy: Policy, **kwargs: Any) -> InMemoryLiveView:
    return InMemoryLiveView(policy, [event_from_obj(e) for e in history()], as_of=as_of(),
                            **kwargs)


class FakeClock:
    """Monotonic seconds the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def error(self) -> dict[str, str]:
        """The ``{"code", "message"}`` of an error body (asserting its exact shape)."""
        data = self.json()
        assert list(data) == ["error"] and sorted(data["error"]) == ["code", "message"], data
        return data["error"]


@dataclass
class Client:
    """A tiny synchronous HTTP client bound to one server."""

    base: str
    default_headers: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, *, json: Any = None, body: bytes | None = None,
                token: str | None = None, headers: dict[str, str] | None = None,
                chunked: bool = False) -> Reply:
        host, port = self.base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        all_headers = dict(self.default_headers)
        if json is not None:
            body = orjson.dumps(json)
            all_headers["Content-Type"] = "application/json"
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        all_headers.update(headers or {})
        try:
            if chunked:
                conn.request(method, path, body=iter([body or b""]), headers=all_headers,
                             encode_chunked=True)
            else:
                conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            return Reply(response.status, dict(response.getheaders()), response.read())
        finally:
            conn.close()

    def tool(self, call: dict[str, Any], role: str | None = "agent_cto", **kw: Any) -> Reply:
        token = ROLE_TOKENS[role] if role else None
        return self.request("POST", "/v1/tools/incident_intelligence", json=call, token=token,
                            **kw)

    def gate(self, call: dict[str, Any], role: str | None = "agent_release", **kw: Any) -> Reply:
        token = ROLE_TOKENS[role] if role else None
        return self.request("POST", "/v1/gates/recurrence_watch", json=call, token=token, **kw)

    def velocity(self, role: str | None = "agent_viewer") -> Reply:
        token = ROLE_TOKENS[role] if role else None
        return self.request("GET", "/v1/learning/velocity", token=token)


@contextlib.contextmanager
def running(app: web.Application, limits: HttpLimits | None = None) -> Iterator[Client]:
    """Serve ``app`` on a free port of 127.0.0.1 from a background thread.

    With ``limits``, behind the connection guard exactly as ``incident-intel
    serve`` listens.
    """
    loop = asyncio.new_event_loop()
    if limits is None:
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        site: web.BaseSite = web.TCPSite(runner, "127.0.0.1", 0)
    else:
        runner = web.AppRunner(app, access_log=None, **server_options(limits))
        loop.run_until_complete(runner.setup())
        site = guarded_site(runner, "127.0.0.1", 0, limits)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, name="api-under-test", daemon=True)
    thread.start()
    try:
        yield Client(f"http://127.0.0.1:{port}")
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
