"""Bounds on every connection, enforced before aiohttp parses anything.

A :class:`ConnectionGuard` wraps the server's protocol factory. Each
connection first meets a small gatekeeper that

- refuses it (429 ``too_many_connections``) when ``max_connections`` are open;
- buffers the request head, and answers 431 ``headers_too_large`` when a line,
  the whole head or the number of lines is over its bound, and 400
  ``invalid_request`` when a line is not a request line or ``name: value``
  of the characters HTTP allows, so the HTTP parser never sees (nor logs, nor
  echoes in its error page) such a header, say an oversize ``Authorization``;
- closes it (408 when something was sent) when the head is not complete within
  ``header_timeout_seconds``, and aborts it after ``connection_seconds``.

Only a complete, bounded head is handed to aiohttp. Every response asks for
``Connection: close`` (see :func:`one_request_per_connection`), so each
connection carries one request and every head passes the gatekeeper. What
aiohttp itself logs about malformed requests goes through :data:`PARSER_LOG`,
which keeps the fact and drops the detail (the bytes the client sent), and
the ``Server`` header names no versions.

Mount it with :func:`guarded_site` (``incident-intel serve``) or, on the
worker, through :class:`app.api.worker_web.GuardedWeb`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE

from app.policy import HttpLimits

from .metrics import ApiMetrics

__all__ = ["PARSER_LOG", "SERVER_NAME", "ConnectionGuard", "GuardedSite", "guarded_site",
           "one_request_per_connection", "server_options"]

SERVER_NAME = "incident-intel"
"""The ``Server`` header: no Python or aiohttp version."""
_AIOHTTP_SERVER = f"Server: {SERVER_SOFTWARE}\r\n".encode()
_OUR_SERVER = f"Server: {SERVER_NAME}\r\n".encode()
_END_OF_HEAD = b"\r\n\r\n"
_PARSER_SLACK = 256
"""aiohttp's own limits sit this far above the gatekeeper's, so it never refuses first."""
_REQUEST_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [\x21-\x7e]+ HTTP/[0-9]\.[0-9]")
_HEADER_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*")
"""RFC 9110 tokens and field values (obs-text allowed: a token in bad UTF-8 is a 401)."""
_REFUSAL_LINGER_SECONDS = 1.0
"""After a refusal, unread bytes are discarded this long, so closing sends the answer
rather than a reset."""

PARSER_LOG = logging.getLogger("app.api.http")
"""aiohttp's request-handler logger: one line per malformed request, never its bytes."""


class _WithoutDetail(logging.Filter):
    """Keep that requests were rejected; drop their bytes, and log at most once a minute.

    The message, arguments and traceback are replaced (they may quote the header
    holding a token); a flood of malformed requests makes one line a minute.
    """

    def __init__(self, every_seconds: float = 60.0) -> None:
        super().__init__()
        self.every_seconds = every_seconds
        self.suppressed = 0
        self.last: float | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if self.last is not None and now - self.last < self.every_seconds:
            self.suppressed += 1
            return False
        more = f" (and {self.suppressed} more since the last line)" if self.suppressed else ""
        self.last, self.suppressed = now, 0
        record.msg = ("rejected a malformed HTTP request (detail withheld: it may hold "
                      f"secrets){more}")
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


PARSER_LOG.addFilter(_WithoutDetail())


def server_options(limits: HttpLimits) -> dict[str, Any]:
    """Keyword arguments for aiohttp's request handler (``AppRunner(app, **options)``)."""
    return {
        "logger": PARSER_LOG,
        "max_line_size": limits.max_header_line_bytes + _PARSER_SLACK,
        "max_field_size": limits.max_header_line_bytes + _PARSER_SLACK,
        "max_headers": limits.max_headers + 1,
        "keepalive_timeout": limits.header_timeout_seconds,
        "lingering_time": limits.body_timeout_seconds,
    }


def _refusal(status: int, reason: str, code: str, message: str,
             extra: tuple[str, ...] = ()) -> bytes:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", "Connection: close", f"Server: {SERVER_NAME}",
            "Cache-Control: no-store", "X-Content-Type-Options: nosniff", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class ConnectionGuard:
    """Counts open connections and wraps each one in a gatekeeper."""

    def __init__(self, limits: HttpLimits, metrics: ApiMetrics | None = None) -> None:
        self.limits = limits
        self.metrics = metrics
        self.open = 0

    def wrap(self, factory: Callable[[], asyncio.BaseProtocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory that puts the gatekeeper in front of ``factory``'s protocols."""
        return lambda: _Gatekeeper(self, factory)

    def refused(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.count_connection_refused(reason)


class _Transport:
    """The real transport, but the ``Server`` header aiohttp writes names no versions."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._transport.write(bytes(data).replace(_AIOHTTP_SERVER, _OUR_SERVER))

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(bytes(c) for c in chunks))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Gatekeeper(asyncio.Protocol):
    """One connection: held back until its head is complete and within bounds."""

    def __init__(self, guard: ConnectionGuard,
                 factory: Callable[[], asyncio.BaseProtocol]) -> None:
        self.guard = guard
        self.factory = factory
        self.inner: Any = None
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.counted = False
        self.refused = False
        self.timers: list[asyncio.TimerHandle] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        limits = self.guard.limits
        if self.guard.open >= limits.max_connections:
            self.guard.refused("too_many_connections")
            self._answer(_refusal(429, "Too Many Requests", "too_many_connections",
                                  f"more than {limits.max_connections} open connections "
                                  "(max_connections); retry shortly", ("Retry-After: 1",)))
            return
        self.guard.open += 1
        self.counted = True
        loop = asyncio.get_running_loop()
        self.timers = [loop.call_later(limits.header_timeout_seconds, self._head_overdue),
                       loop.call_later(limits.connection_seconds, self._expired)]

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)
            return
        if self.refused or self.transport is None or self.transport.is_closing():
            return
        self.head += data
        end = self.head.find(_END_OF_HEAD)
        head = self.head if end < 0 else self.head[:end]
        problem = self._oversize(head)
        malformed = self._malformed(head, complete=end >= 0)
        if problem:
            self.guard.refused("headers_too_large")
            self._answer(_refusal(431, "Request Header Fields Too Large", "headers_too_large",
                                  problem))
        elif malformed:
            self.guard.refused("malformed_head")
            self._answer(_refusal(400, "Bad Request", "invalid_request", malformed))
        elif end >= 0:
            self.timers[0].cancel()
            self.inner = self.factory()
            self.inner.connection_made(_Transport(self.transport))
            buffered, self.head = bytes(self.head), bytearray()
            self.inner.data_received(buffered)

    def _oversize(self, head: bytearray) -> str:
        limits = self.guard.limits
        if len(head) > limits.max_header_bytes:
            return f"request head over {limits.max_header_bytes} bytes (max_header_bytes)"
        lines = head.split(b"\r\n")
        if len(lines) > limits.max_headers + 1:
            return f"more than {limits.max_headers} header lines (max_headers)"
        if any(len(line) > limits.max_header_line_bytes for line in lines):
            return (f"a header line over {limits.max_header_line_bytes} bytes "
                    "(max_header_line_bytes)")
        return ""

    @staticmethod
    def _malformed(head: bytearray, complete: bool) -> str:
        lines = bytes(head).lstrip(b"\r\n").split(b"\r\n")
        if not complete:
            lines = lines[:-1]  # the last line may still be arriving
        for number, line in enumerate(lines):
            pattern = _HEADER_LINE if number else _REQUEST_LINE
            if not pattern.fullmatch(line):
                what = f"header line {number}" if number else "the request line"
                return f"malformed request head: {what} is not valid HTTP/1.1"
        return ""

    def _answer(self, response: bytes) -> None:
        """Send a refusal, half-close, and drop whatever else arrives until closing."""
        assert self.transport is not None
        self.refused = True
        self.head = bytearray()
        self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(_REFUSAL_LINGER_SECONDS, self.transport.close)

    def _head_overdue(self) -> None:
        if self.inner is None and self.transport is not None and not self.transport.is_closing():
            self.guard.refused("header_timeout")
            if self.head:
                self._answer(_refusal(408, "Request Timeout", "request_timeout",
                                      f"request head not complete within "
                                      f"{self.guard.limits.header_timeout_seconds:g} s"))
            else:
                self.transport.close()

    def _expired(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.guard.refused("connection_expired")
            self.transport.abort()

    def eof_received(self) -> bool | None:
        if self.inner is not None:
            return self.inner.eof_received()
        return None  # the transport closes itself

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in self.timers:
            timer.cancel()
        if self.counted:
            self.guard.open -= 1
            self.counted = False
        if self.inner is not None:
            self.inner.connection_lost(exc)


async def one_request_per_connection(request: web.Request,
                                     response: web.StreamResponse) -> None:
    """``on_response_prepare``: close after each response; name no server versions."""
    response.force_close()
    response.headers["Server"] = SERVER_NAME


class GuardedSite(web.BaseSite):
    """A TCP site whose connections pass a :class:`ConnectionGuard` first."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard,
                 *, ssl_context: ssl.SSLContext | None = None, backlog: int = 128) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._guard = guard

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._guard.wrap(server), self._host,
                                                self._port, ssl=self._ssl_context,
                                                backlog=self._backlog, reuse_address=True)


def guarded_site(runner: web.BaseRunner, host: str, port: int, limits: HttpLimits,
                 metrics: ApiMetrics | None = None) -> GuardedSite:
    """The site ``incident-intel serve`` listens on; make its runner with :func:`server_options`."""
    return GuardedSite(runner, host, port, ConnectionGuard(limits, metrics))
