"""A local webhook receiver (127.0.0.1) whose answers a test scripts: fail, hang, recover."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = -1
"""A scripted answer: sleep past the client's timeout, then answer 200 (too late)."""

Script = Callable[[str, int], int]
"""(idempotency key, how many requests with that key came before) -> status or HANG."""


@dataclass
class Received:
    key: str
    headers: dict[str, str]
    body: Any
    answer: int


@dataclass
class WebhookServer:
    """Records every request; answers as :attr:`script` says."""

    script: Script
    hang_seconds: float = 3.0
    answer_after: float = 0.0
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self, status: int) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.answer == status]

    def delivered_keys(self) -> list[str]:
        """Keys of the requests answered 2xx in time, in arrival order (repeats kept)."""
        with self._lock:
            return [r.key for r in self.received if 200 <= r.answer < 300]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", "0"))
        body = json.loads(handler.rfile.read(length) or b"null")
        key = handler.headers.get("Idempotency-Key", "")
        with self._lock:
            seen = sum(1 for r in self.received if r.key == key)
            answer = self.script(key, seen)
            self.received.append(Received(key, dict(handler.headers), body, answer))
        if answer == HANG:
            time.sleep(self.hang_seconds)
            answer = 200
        elif self.answer_after:
            time.sleep(self.answer_after)
        body = b"" if answer in (204, 304) else b"{}"  # these answers carry no body
        try:
            handler.send_response(answer)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except BrokenPipeError:  # the client gave up waiting (HANG)
            pass


@contextmanager
def webhook_server(script: Script, *, hang_seconds: float = 3.0,
                   answer_after: float = 0.0) -> Iterator[WebhookServer]:
    """Serve ``script`` on 127.0.0.1 (a free port) until the block ends; ``answer_after``
    makes every answer that long in coming (a slow receiver)."""
    server = WebhookServer(script, hang_seconds=hang_seconds, answer_after=answer_after)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            server._handle(self)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}/hooks/followups"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
