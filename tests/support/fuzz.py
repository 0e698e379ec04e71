"""A seeded fuzz pass over a running API: nested and huge values, odd encodings and
framing, credentials in odd places, and slow clients holding connections meanwhile.

Every answer must be below 500 (the API's refusals are 4xx; only a full
connection table answers 503). Run it against ``incident-intel serve`` or a
worker (127.0.0.1 only)::

    python -m tests.support.fuzz --url http://127.0.0.1:6067 --token TOKEN [--count 300]

``tests/api/test_fuzz.py`` runs it, bounded, against ``incident-intel serve``
and also checks that the server's log holds no token.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

PATHS = ("/v1/tools/incident_intelligence", "/v1/gates/recurrence_watch",
         "/v1/learning/velocity", "/", "/healthz", "/livez", "/readyz", "/metrics")
ACTIONS = ("correlate", "recurrence", "buckets", "weekly_digest", "gate", "nope", "")
ODD_STRINGS = ("", "٢٠٢٦-W٠٨", "２０２６-W０８", "9999-W52", "0000-W01", "2026-W53", "\u0000",
               "\ud800", "𝟚𝟘𝟚𝟞-W08", "../../etc/passwd", "<script>x</script>", "é" * 300,
               "a" * 70000, "inc_gw_1", "gateway", "prod", "strict")
ODD_NUMBERS = (0, -1, 1, 3660, 3661, 2**31, 2**63, 2**64, -(2**63), 10**30, 1e308, -0.0,
               0.5, True, False)


@dataclass
class Outcome:
    statuses: dict[int, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)

    def record(self, status: int, what: str) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status >= 500 and status != 503 or status == 0:
            self.server_errors.append(f"{status}: {what[:200]}")


def _value(rng: random.Random, depth: int = 0) -> object:
    pick = rng.random()
    if depth > 3 or pick < 0.35:
        return rng.choice(ODD_STRINGS)
    if pick < 0.6:
        return rng.choice(ODD_NUMBERS)
    if pick < 0.8:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 12))]
    return {rng.choice(("action", "week", "service", "incident_id", "window_days", "x")):
            _value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def _call(rng: random.Random) -> dict[str, object]:
    call: dict[str, object] = {"action": rng.choice(ACTIONS)}
    for key in rng.sample(("incident_id", "window_days", "service", "week", "save_artifacts",
                           "append_note", "profile", "recurrence_watch_mode",
                           "recurrence_watch_windows_days", "recurrence_watch_service",
                           "run_recurrence_watch", "tool"), rng.randint(0, 5)):
        call[key] = _value(rng)
    return call


def _json(value: object, rng: random.Random) -> bytes:
    """JSON with escapes, or raw UTF-8 where lone surrogates become invalid bytes."""
    if rng.random() < 0.5:
        return json.dumps(value).encode()
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _bodies(rng: random.Random) -> Iterator[bytes]:
    while True:
        kind = rng.randrange(9)
        if kind == 0:
            yield _nested(rng.choice((100, 1000, 5000, 30000)))
        elif kind == 1:
            yield json.dumps(_call(rng)).encode("utf-16")
        elif kind == 2:
            yield b"\xef\xbb\xbf" + _json(_call(rng), rng)
        elif kind == 3:
            yield _json(_call(rng), rng)[:-3] + b"\xff\xfe\x80"
        elif kind == 4:
            yield b'{"action": "recurrence", "window_days": ' + b"9" * 5000 + b"}"
        elif kind == 5:
            yield b'{"action":"gate","service":"gateway","service":"x","service":"y"}'
        elif kind == 6:
            yield rng.randbytes(rng.randint(0, 300))
        else:
            yield _json(_call(rng), rng)


def _head(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _exchange(address: tuple[str, int], raw: bytes, timeout: float = 30) -> int:
    """Send ``raw``; the status of the answer (0 when the server just closed)."""
    with socket.create_connection(address, timeout=timeout) as sock:
        try:
            sock.sendall(raw)
        except OSError:
            pass
        data = b""
        try:
            while b"\r\n" not in data and (chunk := sock.recv(4096)):
                data += chunk
        except ConnectionResetError:
            return 0 if not data else int(data.split(b" ", 2)[1])
    if not data.startswith(b"HTTP/1."):
        return 0
    return int(data.split(b" ", 2)[1])


def _requests(rng: random.Random, token: bytes) -> Iterator[tuple[str, bytes]]:
    bodies = _bodies(rng)
    auths = (b"Bearer " + token, b"Bearer " + token + b"\xff", b"bearer  " + token,
             b"Bearer \xc3\x28", b"Basic " + token, b"Bearer " + token + b" extra", b"")
    while True:
        body = next(bodies)
        path = rng.choice(PATHS + ("/v1/" + "a/" * 50, "/%2e%2e/%2e%2e/etc/passwd",
                                   "/?" + "q=1&" * 500, "/v1/tools/incident_intelligence?x=%C3"))
        method = ("POST" if path.startswith(PATHS[:2]) else "GET") if rng.random() < 0.8 else \
            rng.choice(("PUT", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"))
        headers = [(b"Authorization", rng.choice(auths))]
        framing = rng.randrange(6)
        if framing == 0:  # chunked, sometimes with a lying chunk size
            size = len(body) if rng.random() < 0.7 else len(body) + 7
            payload = f"{size:x}".encode() + b"\r\n" + body + b"\r\n0\r\n\r\n"
            headers.append((b"Transfer-Encoding", b"chunked"))
        elif framing == 1:  # Content-Length too small or not a number
            payload = body
            headers.append((b"Content-Length", rng.choice((b"-1", b"abc", b"1", b"99999999999"))))
        else:
            payload = body
            headers.append((b"Content-Length", str(len(body)).encode()))
        headers.append((b"Content-Type", rng.choice((b"application/json",
                                                     b"application/json; charset=utf-16",
                                                     b"text/plain", b"\xff"))))
        if rng.random() < 0.1:
            headers.append((b"Authorization", b"Bearer " + token))  # twice
        if rng.random() < 0.1:
            headers.append((b"X-Long", b"v" * rng.choice((100, 9000, 20000))))
        yield f"{method} {path[:60]} framing={framing}", _head(method, path, headers) + payload


def _slow_client(address: tuple[str, int], stop: threading.Event, token: bytes) -> None:
    """Sends a head a byte at a time until the server gives up on it."""
    raw = _head("POST", PATHS[0], [(b"Authorization", b"Bearer " + token),
                                   (b"Content-Length", b"20")])
    while not stop.is_set():
        try:
            with socket.create_connection(address, timeout=30) as sock:
                for byte in raw:
                    if stop.wait(0.05):
                        return
                    sock.sendall(bytes([byte]))
                sock.recv(4096)
        except OSError:
            continue


def run(url: str, token: str, count: int = 300, seed: int = 11, slow_clients: int = 20,
        progress: Callable[[str], None] | None = None) -> Outcome:
    """Send ``count`` fuzzed requests while ``slow_clients`` dribble heads; the statuses."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        raise ValueError("fuzz only 127.0.0.1 / localhost")
    address = (parts.hostname, parts.port or 80)
    rng = random.Random(seed)
    outcome = Outcome()
    stop = threading.Event()
    slow = [threading.Thread(target=_slow_client, args=(address, stop, token.encode()),
                             daemon=True) for _ in range(slow_clients)]
    for thread in slow:
        thread.start()
    try:
        requests = _requests(rng, token.encode())
        for number in range(count):
            what, raw = next(requests)
            outcome.record(_exchange(address, raw), what)
            if progress and number % 50 == 0:
                progress(f"{number}/{count} {outcome.statuses}")
        # the server still answers plainly after all that
        outcome.record(_exchange(address, _head("GET", "/livez", [])), "GET /livez after")
    finally:
        stop.set()
        for thread in slow:
            thread.join(10)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    outcome = run(args.url, args.token, args.count, args.seed,
                  progress=lambda line: print(line, file=sys.stderr))
    print(f"statuses: {dict(sorted(outcome.statuses.items()))}")
    for line in outcome.server_errors:
        print(f"SERVER ERROR {line}")
    return 1 if outcome.server_errors else 0


if __name__ == "__main__":
    sys.exit(main())
