"""Engine benchmark: apply rate, correlate (+ serialise) latency at 10k to 1M, digest time,
peak memory; and the alert book with millions of transitions.

Each scenario runs in its own process so that its peak RSS is its own. The
synthetic history spreads N incidents over the 60 days around the target
week (every one inside the ±30-day correlation lookback) across 50 services,
8 kinds and 20 titles per service and kind. "+ser" is ``correlate`` and
serialising its answer, the way the stream sends it; the report prints what
serialising adds to correlate.

The alert scenario (``python -m bench engine --alerts``) applies N alert
transitions spread evenly over 30 days (so none leaves ``alerts.retention_days``)
from 2,000 fingerprints of 50 services, firing and resolving in turn, 2 % of
them naming one of 5,000 incidents and 1 % re-sent, each decoded from JSON
and applied through ``IntelEngine.apply``; it prints the decode and apply
rates, peak memory and the 7-day ``alerts`` answer's time.
"""

from __future__ import annotations

import json
import random
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from app.intel.engine import IntelEngine
    from app.policy import Policy

KINDS = ["error_rate", "latency", "oom", "crashloop", "disk", "security", "queue", "network"]
CENTRE = datetime(2026, 3, 2, tzinfo=UTC)


def synthetic_lines(n: int, seed: int = 7, first: int = 0) -> list[bytes]:
    rng = random.Random(seed * 1_000_003 + first)
    span = 60 * 86400
    start = CENTRE - timedelta(days=30)
    lines = []
    for i in range(first, first + n):
        started = start + timedelta(seconds=rng.randrange(span))
        service = f"svc{rng.randrange(50):02d}"
        kind = KINDS[rng.randrange(len(KINDS))]
        title = f"{kind} alarm variant {rng.randrange(20)}"
        lines.append(orjson.dumps({
            "event_id": f"e{i}", "type": "incident.opened",
            "occurred_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "incident": {
                "incident_id": f"inc{i:07d}", "service": service, "kind": kind,
                "severity": f"P{rng.randrange(4)}",
                "status": "open" if rng.random() < 0.2 else "resolved",
                "title": title, "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        }))
    return lines


def scenario(n: int, queries: int) -> dict:
    from app.contracts import CorrelateRequest, WeeklyDigestRequest, decode_event, dump_json
    from app.intel.engine import IntelEngine
    from app.policy import load_policy

    policy = load_policy("policy")
    engine = IntelEngine(policy)
    decoding = applying = 0.0
    chunk = 20_000
    for first in range(0, n, chunk):
        lines = synthetic_lines(min(chunk, n - first), first=first)
        t0 = time.perf_counter()
        events = [decode_event(line) for line in lines]
        t1 = time.perf_counter()
        for event in events:
            engine.apply(event)
        decoding += t1 - t0
        applying += time.perf_counter() - t1
        del lines, events
    rng = random.Random(11)
    ids = list(engine.book.incidents)
    latencies, serialised = [], []
    related = 0
    for _ in range(queries):
        req = CorrelateRequest(action="correlate", incident_id=ids[rng.randrange(len(ids))])
        q0 = time.perf_counter()
        response = engine.correlate(req)
        q1 = time.perf_counter()
        dump_json(response)
        latencies.append(q1 - q0)
        serialised.append(time.perf_counter() - q0)
        related += response.related_count
    latencies.sort()
    serialised.sort()
    rank_ms = _rank_ms(engine, policy, rng)
    d0 = time.perf_counter()
    digest = engine.weekly_digest(WeeklyDigestRequest(action="weekly_digest", week="2026-W10"),
                                  CENTRE + timedelta(days=7, hours=8))
    d1 = time.perf_counter()
    return {
        "incidents": n,
        "decode_per_s": n / decoding,
        "apply_per_s": n / applying,
        "correlate_p50_ms": 1000 * statistics.median(latencies),
        "correlate_p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "serialised_p50_us": 1e6 * statistics.median(serialised),
        "serialised_p99_us": 1e6 * serialised[int(0.99 * (len(serialised) - 1))],
        "mean_related": related / queries,
        "rank_ms": rank_ms,
        "digest_s": d1 - d0,
        "digest_buckets": len(digest.response.json_summary.buckets),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


RANK_CANDIDATES = 10_000
RANK_QUERIES = 50


def _rank_ms(engine: IntelEngine, policy: Policy, rng: random.Random) -> float:
    """Mean ms of ``correlation.rank`` over an explicit list of 10k candidates: what a
    stream index pays per query, beside the indexed ``correlate``."""
    from app.intel import correlation

    records = list(engine.book.incidents.values())[:RANK_CANDIDATES]
    targets = [records[rng.randrange(len(records))] for _ in range(RANK_QUERIES)]
    r0 = time.perf_counter()
    for target in targets:
        correlation.rank(target, records, policy.intel)
    return 1000 * (time.perf_counter() - r0) / RANK_QUERIES


TRANSITIONS = 10_000_000
QUICK_TRANSITIONS = 1_000_000
ALERT_FINGERPRINTS = 2_000
ALERT_CHUNK = 10_000


def alert_lines(first: int, n: int, total: int) -> list[bytes]:
    """Transitions ``first`` to ``first + n`` of ``total`` over 30 days (see the docstring)."""
    rng = random.Random(first)
    span = 30 * 86400
    start = CENTRE - timedelta(days=30)
    lines = []
    for i in range(first, first + n):
        number = rng.randrange(i + 1) if rng.random() < 0.01 else i  # 1 % re-sent
        fingerprint = number % ALERT_FINGERPRINTS
        when = start + timedelta(seconds=span * number / total)
        event = {
            "event_id": f"al{number}", "type": "alert.transition",
            "occurred_at": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "alert": {"alert_id": f"a{fingerprint}", "fingerprint": f"fp{fingerprint:05d}",
                      "service": f"svc{fingerprint % 50:02d}",
                      "kind": KINDS[fingerprint % len(KINDS)], "severity": "P2",
                      "labels": {"alertname": f"rule{fingerprint % 300}"}},
            "from_state": "resolved" if (number // ALERT_FINGERPRINTS) % 2 == 0 else "firing",
            "to_state": "firing" if (number // ALERT_FINGERPRINTS) % 2 == 0 else "resolved",
            "incident_id": f"inc{number % 5000}" if number % 50 == 0 else None,
        }
        lines.append(orjson.dumps(event))
    return lines


def alert_scenario(n: int) -> dict:
    from app.contracts import AlertsRequest, decode_event
    from app.intel.engine import IntelEngine
    from app.policy import load_policy

    engine = IntelEngine(load_policy("policy"))
    decoding = applying = 0.0
    for first in range(0, n, ALERT_CHUNK):
        lines = alert_lines(first, min(ALERT_CHUNK, n - first), n)
        t0 = time.perf_counter()
        events = [decode_event(line) for line in lines]
        t1 = time.perf_counter()
        for event in events:
            engine.apply(event)
        decoding += t1 - t0
        applying += time.perf_counter() - t1
        del lines, events
    assert engine.watermark is not None
    from app.intel.periods import from_micros

    r0 = time.perf_counter()
    answer = engine.alert_report(AlertsRequest(action="alerts", window_days=7),
                                 from_micros(engine.watermark))
    return {
        "transitions": n,
        "kept": len(engine.alerts),
        "fingerprints": len(engine.alerts.histories),
        "decode_per_s": n / decoding,
        "apply_per_s": n / applying,
        "alerts_7d_s": time.perf_counter() - r0,
        "rows_7d": answer.alert_count,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_alerts(n: int) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.engine", "--alerts", str(n)],
                          capture_output=True, text=True, check=True)
    return dict(json.loads(proc.stdout))


def alert_report(r: dict) -> str:
    return (f"{'transitions':>12} {'kept':>10} {'fingerprints':>12} {'decode/s':>10} "
            f"{'apply/s':>10} {'alerts 7d s':>12} {'peak MB':>8}\n"
            f"{r['transitions']:>12} {r['kept']:>10} {r['fingerprints']:>12} "
            f"{r['decode_per_s']:>10.0f} {r['apply_per_s']:>10.0f} {r['alerts_7d_s']:>12.2f} "
            f"{r['peak_rss_mb']:>8.0f}")


def run(sizes: list[int], queries: int = 2000) -> list[dict]:
    results = []
    for n in sizes:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.engine", "--scenario", str(n), str(queries)],
            capture_output=True, text=True, check=True,
        )
        results.append(json.loads(proc.stdout))
    return results


def report(results: list[dict]) -> str:
    head = (f"{'incidents':>10} {'decode/s':>10} {'apply/s':>10} {'corr p50 ms':>12} "
            f"{'corr p99 ms':>12} {'+ser p50 us':>12} {'+ser p99 us':>12} {'related':>8} "
            f"{'rank 10k ms':>12} {'digest s':>9} {'peak MB':>8}")
    rows = [head]
    for r in results:
        rows.append(f"{r['incidents']:>10} {r['decode_per_s']:>10.0f} {r['apply_per_s']:>10.0f} "
                    f"{r['correlate_p50_ms']:>12.3f} {r['correlate_p99_ms']:>12.3f} "
                    f"{r['serialised_p50_us']:>12.0f} {r['serialised_p99_us']:>12.0f} "
                    f"{r['mean_related']:>8.1f} {r['rank_ms']:>12.2f} {r['digest_s']:>9.2f} "
                    f"{r['peak_rss_mb']:>8.0f}")
    for r in results:
        added = r["serialised_p50_us"] / (1000 * r["correlate_p50_ms"]) - 1
        rows.append(f"at {r['incidents']}: serialising adds {100 * added:.0f} % to correlate "
                    "(p50)")
    if len(results) >= 2:
        small, large = results[0], results[-1]
        rows.append(
            f"ratio {large['incidents']}/{small['incidents']}: correlate p50 "
            f"{large['correlate_p50_ms'] / small['correlate_p50_ms']:.2f}x, p99 "
            f"{large['correlate_p99_ms'] / small['correlate_p99_ms']:.2f}x, apply/s "
            f"{large['apply_per_s'] / small['apply_per_s']:.2f}x"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--scenario":
        print(json.dumps(scenario(int(sys.argv[2]), int(sys.argv[3]))))
    elif len(sys.argv) >= 3 and sys.argv[1] == "--alerts":
        print(json.dumps(alert_scenario(int(sys.argv[2]))))
    else:
        sizes = [int(s) for s in sys.argv[1:]] or [10_000, 100_000, 1_000_000]
        print(report(run(sizes)))
