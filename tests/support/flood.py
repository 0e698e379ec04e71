"""Latency of one client's correlate calls while another token floods the release gate.

Write a history with one large service, serve it, then measure (127.0.0.1 only)::

    python -m tests.support.flood events --out /tmp/flood.jsonl --incidents 8000
    incident-intel serve --events /tmp/flood.jsonl --port 6067 &
    python -m tests.support.flood measure --url http://127.0.0.1:6067 \\
        --flood-token RELEASE_TOKEN --probe-token ONCALL_TOKEN --seconds 30

The flood sends the largest gate call the API accepts (8 windows up to 3660
days) from ``--threads`` connections at once; the probe calls ``correlate``
every ``--every`` seconds. It prints the probe's p50/p99/max and the flood's
status counts. (The probe stays within ``correlate``'s per-minute limit only
if ``--every`` is at least 60 / per_minute; raise the limit in a copy of the
policy for more samples.)
"""

from __future__ import annotations

import argparse
import http.client
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from tests.support.builders import at, incident_event, jsonl

FLOOD_CALL = {"service": "gateway",
              "recurrence_watch_windows_days": [1, 7, 30, 90, 365, 1000, 2000, 3660]}


def write_events(path: Path, incidents: int) -> None:
    """``incidents`` incidents of ``gateway`` over ten years, plus ones to correlate."""
    step = timedelta(days=3650) / incidents
    start = at(days=-3650)
    events = [incident_event(f"gw-{n}", started=start + n * step, kind=("error_rate", "latency",
                                                                         "oom")[n % 3],
                             signature=f"{n % 40:064x}") for n in range(incidents)]
    events += [incident_event(f"pay-{n}", service="payments", started=at(hours=-n))
               for n in range(20)]
    path.write_bytes(jsonl(events))


def _call(url: str, method: str, path: str, token: str, body: object) -> tuple[int, float]:
    parts = urlsplit(url)
    started = time.perf_counter()
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        conn.request(method, path, body=orjson.dumps(body),
                     headers={"Authorization": f"Bearer {token}",
                              "Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        conn.close()


def measure(url: str, flood_token: str, probe_token: str, seconds: float, threads: int,
            every: float) -> dict[str, object]:
    stop = threading.Event()
    flood: dict[int, int] = {}
    lock = threading.Lock()

    def flooder() -> None:
        while not stop.is_set():
            status, _ = _call(url, "POST", "/v1/gates/recurrence_watch", flood_token, FLOOD_CALL)
            with lock:
                flood[status] = flood.get(status, 0) + 1

    workers = [threading.Thread(target=flooder, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    latencies: list[float] = []
    probes: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, took = _call(url, "POST", "/v1/tools/incident_intelligence", probe_token,
                             {"action": "correlate", "incident_id": "pay-1"})
        probes[status] = probes.get(status, 0) + 1
        latencies.append(took)
        stop.wait(every)
    stop.set()
    for worker in workers:
        worker.join(120)
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 3)

    return {"probe_statuses": probes, "probe_p50_s": pct(0.5), "probe_p99_s": pct(0.99),
            "probe_max_s": round(latencies[-1], 3), "flood_statuses": flood}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    events = sub.add_parser("events")
    events.add_argument("--out", required=True, type=Path)
    events.add_argument("--incidents", type=int, default=8000)
    run = sub.add_parser("measure")
    run.add_argument("--url", required=True)
    run.add_argument("--flood-token", required=True)
    run.add_argument("--probe-token", required=True)
    run.add_argument("--seconds", type=float, default=30)
    run.add_argument("--threads", type=int, default=8)
    run.add_argument("--every", type=float, default=0.25)
    args = parser.parse_args(argv)
    if args.command == "events":
        write_events(args.out, args.incidents)
    else:
        if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost"):
            parser.error("--url: 127.0.0.1 or localhost only")
        print(orjson.dumps(measure(args.url, args.flood_token, args.probe_token, args.seconds,
                                   args.threads, args.every),
                           option=orjson.OPT_NON_STR_KEYS).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
