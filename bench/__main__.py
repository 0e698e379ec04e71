"""``python -m bench [engine|stream|all] [--quick] [--alerts]``: run benchmarks, print tables.

``engine`` measures the pure engine in its own processes (``bench/engine.py``):
apply rate, correlate latency with and without serialising, digest time and
peak memory at 10k, 100k and 1M incidents; with ``--alerts``, the alert book's
apply rate and peak memory with 10 million transitions over 30 days.
``stream`` runs the stream benchmark on the embedded broker (``bench/stream.py``;
``python -m bench.stream --help`` has its own options). ``--quick`` makes both
smaller.
"""

from __future__ import annotations

import argparse
import sys

from bench import engine, stream


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("which", nargs="?", choices=["engine", "stream", "all"], default="all",
                        help="which benchmark (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes: engine 10k and 100k, stream 10k with less history")
    parser.add_argument("--alerts", action="store_true",
                        help="engine: the alert book with 10M transitions (1M with --quick)")
    args = parser.parse_args(argv)
    if args.which in ("engine", "all"):
        print("== engine (pure, in-process) ==", flush=True)
        if args.alerts:
            print(engine.alert_report(engine.run_alerts(
                engine.QUICK_TRANSITIONS if args.quick else engine.TRANSITIONS)))
        else:
            sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
            print(engine.report(engine.run(sizes)))
    if args.which in ("stream", "all"):
        print("== stream (embedded broker, one run) ==", flush=True)
        print(stream.report(stream.run(
            [10_000] if args.quick else [10_000, 100_000],
            stream.QUICK_HISTORY if args.quick else stream.HISTORY, stream.RATES,
            stream.QUICK_SECONDS if args.quick else stream.SECONDS,
            stream.QUICK_BACKFILL if args.quick else stream.BACKFILL)))


if __name__ == "__main__":
    main(sys.argv[1:])
