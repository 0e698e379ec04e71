"""The connection guard and the response headers: bounds before any handler runs,
nothing a client sends as a credential in a log line or a response, no versions."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator

import orjson
import pytest

from app.api import create_api
from app.api.readiness import Readiness
from app.policy import HttpLimits, Policy
from tests.support.http_api import ROLE_TOKENS, Client, make_view, running

LIMITS = HttpLimits(max_connections=4, header_timeout_seconds=0.3, body_timeout_seconds=0.3,
                    connection_seconds=30)
TOKEN = ROLE_TOKENS["agent_cto"]


def _limited(policy: Policy) -> Policy:
    """The policy with :data:`LIMITS` as its ``http`` bounds."""
    rates = policy.rate_limits.model_copy(update={"http": LIMITS})
    return policy.model_copy(update={"rate_limits": rates})


@pytest.fixture()
def guarded(policy: Policy, tokens) -> Iterator[Client]:
    limited = _limited(policy)
    with running(create_api(make_view(limited), limited, tokens), LIMITS) as client:
        yield client


def _address(client: Client) -> tuple[str, int]:
    host, port = client.base.removeprefix("http://").split(":")
    return host, int(port)


@contextlib.contextmanager
def _socket(client: Client) -> Iterator[socket.socket]:
    sock = socket.create_connection(_address(client), timeout=10)
    try:
        yield sock
    finally:
        sock.close()


def _exchange(client: Client, raw: bytes) -> bytes:
    """Send ``raw`` and read until the server closes the connection."""
    with _socket(client) as sock:
        sock.sendall(raw)
        return _until_closed(sock)


def _until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def _post(headers: bytes, body: bytes = b"{}") -> bytes:
    return (b"POST /v1/tools/incident_intelligence HTTP/1.1\r\nHost: x\r\n" + headers
            + b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


# ------------------------------------------------------------ credentials


@pytest.mark.parametrize("raw", [
    b"Authorization: Bearer \xff\xfe\xfd" + TOKEN.encode() + b"\r\n",
    b"Authorization: Bearer " + TOKEN.encode() + b"\xc3\x28\r\n",
])
def test_invalid_utf8_in_authorization_is_401(guarded: Client, raw: bytes) -> None:
    response = _exchange(guarded, _post(raw))
    assert _status(response) == 401, response


@pytest.mark.parametrize("raw", [
    b"Authorization: Bearer " + TOKEN.encode() + b"x" * 9000 + b"\r\n",  # one long line
    b"".join(b"X-Pad-%d: %s\r\n" % (i, b"y" * 4000) for i in range(5))
    + b"Authorization: Bearer " + TOKEN.encode() + b"\r\n",  # a large head
    b"".join(b"X-%d: 1\r\n" % i for i in range(150))
    + b"Authorization: Bearer " + TOKEN.encode() + b"\r\n",  # too many lines
    b"Authorization: Bearer " + TOKEN.encode() + b"\x01\x02\r\n",  # bytes the parser rejects
])
def test_no_credential_reaches_a_log_line_or_a_response(guarded: Client, raw: bytes,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    response = _exchange(guarded, _post(raw))
    assert 400 <= _status(response) < 500, response
    assert TOKEN[:12].encode() not in response
    assert b"Python/" not in response and b"aiohttp/" not in response
    logged = "\n".join(r.getMessage() + (r.exc_text or "") + str(r.exc_info)
                       for r in caplog.records)
    assert TOKEN[:12] not in logged


def test_an_oversize_head_is_431_naming_the_bound(guarded: Client) -> None:
    response = _exchange(guarded, _post(b"Authorization: Bearer " + b"z" * 9000 + b"\r\n"))
    assert _status(response) == 431
    body = orjson.loads(response.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "headers_too_large"
    assert "max_header_line_bytes" in body["error"]["message"]


# ----------------------------------------------------------- slow clients


def test_a_half_sent_head_is_closed_after_the_header_timeout(guarded: Client) -> None:
    with _socket(guarded) as sock:
        sock.sendall(b"POST /v1/tools/incident_intelligence HTTP/1.1\r\nHost: x\r\n")
        response = _until_closed(sock)
    assert _status(response) == 408 and b"request_timeout" in response


def test_an_idle_connection_is_closed_after_the_header_timeout(guarded: Client) -> None:
    with _socket(guarded) as sock:
        assert _until_closed(sock) == b""


def test_a_half_sent_body_is_408(guarded: Client) -> None:
    head = _post(b"Authorization: Bearer " + TOKEN.encode() + b"\r\n", b"x" * 100)
    with _socket(guarded) as sock:
        sock.sendall(head[:-90])
        response = _until_closed(sock)
    assert _status(response) == 408, response
    assert b"body_timeout_seconds" in response


def test_open_connections_are_capped(guarded: Client) -> None:
    idle = [socket.create_connection(_address(guarded), timeout=10)
            for _ in range(LIMITS.max_connections)]
    try:
        with _socket(guarded) as extra:
            extra.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            response = _until_closed(extra)
        assert _status(response) == 429 and b"too_many_connections" in response
        assert b"Retry-After: 1" in response
    finally:
        for sock in idle:
            sock.close()
    for _ in range(50):  # closed connections free their slots as the server notices them
        reply = _exchange(guarded, b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        if _status(reply) == 200:
            break
    assert _status(reply) == 200


def test_each_connection_carries_one_request(guarded: Client) -> None:
    twice = b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n" * 2
    response = _exchange(guarded, twice)
    assert response.count(b"HTTP/1.1 200") == 1


# ------------------------------------------------------------------ headers


def test_v1_answers_are_not_cached_nor_sniffed_and_name_no_versions(guarded: Client) -> None:
    replies = [guarded.tool({"action": "recurrence"}),
               guarded.tool({"action": "recurrence"}, role=None),
               guarded.velocity(),
               guarded.request("GET", "/v1/nowhere"),
               guarded.request("GET", "/livez"), guarded.request("GET", "/readyz"),
               guarded.request("GET", "/healthz"), guarded.request("GET", "/")]
    assert [r.status for r in replies] == [200, 401, 200, 404, 200, 200, 200, 200]
    for reply in replies:
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert reply.headers["Cache-Control"] == "no-store"
        assert reply.headers["Server"] == "incident-intel"


def test_liveness_and_readiness(policy: Policy, tokens) -> None:
    state = Readiness(ready=False, waiting_for=("events loading",))
    app = create_api(make_view(policy), policy, tokens, readiness=lambda: state)
    with running(app, LIMITS) as client:
        assert client.request("GET", "/livez").json() == {"status": "ok"}
        not_ready = client.request("GET", "/readyz")
        assert not_ready.status == 503
        assert not_ready.json() == {"status": "not_ready", "waiting_for": ["events loading"]}
        health = client.request("GET", "/healthz")  # the same answer, for /healthz checkers
        assert (health.status, health.body) == (not_ready.status, not_ready.body)
        state = Readiness.unless(loading=False)
        assert client.request("GET", "/readyz").json() == {"status": "ready", "waiting_for": []}
        health = client.request("GET", "/healthz")
        assert (health.status, health.json()) == (200, {"status": "ready", "waiting_for": []})
