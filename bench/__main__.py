"""`python -m bench [engine|stream|all] [--quick]`: run benchmarks and print their tables."""

from __future__ import annotations

import sys

from bench import engine, stream


def main(argv: list[str]) -> None:
    which = argv[0] if argv and not argv[0].startswith("-") else "all"
    quick = "--quick" in argv
    if which in ("engine", "all"):
        sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
        print("== engine (pure, in-process) ==")
        print(engine.report(engine.run(sizes)))
    if which in ("stream", "all"):
        print("== stream (embedded broker, one run) ==")
        print(stream.report(stream.run(
            [10_000] if quick else [10_000, 100_000],
            stream.QUICK_HISTORY if quick else stream.HISTORY,
            stream.RATE, stream.QUICK_SECONDS if quick else stream.SECONDS)))


if __name__ == "__main__":
    main(sys.argv[1:])
