"""Daily counts over the days ending at ``as_of``: what a sparkline draws.

Day ``i`` of ``days`` covers ``(as_of - (days - i) days, as_of - (days - i - 1) days]``,
so the days tile the window ``(as_of - days, as_of]`` exactly, the newest day
last: the last 7 add up to the 7-day count of the same key, all of them to
the 30-day count. Each day is two bisections of a sorted index, so a trend
costs the same whatever the history holds.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence

from app.intel.periods import DAY, window_start

TREND_DAYS = 30
"""Days of a trend: the widest window of the published counts."""

CountBetween = Callable[[int, int], int]
"""How many entries lie in ``(after, until]`` (``Timeline.count`` has this shape)."""


def daily(count_between: CountBetween, as_of: int, days: int = TREND_DAYS) -> list[int]:
    """Entries per day of the ``days`` days ending at ``as_of``, oldest day first."""
    edges = [window_start(as_of, days) + i * DAY for i in range(days + 1)]
    return [count_between(low, high) for low, high in zip(edges, edges[1:], strict=False)]


def counter_of(times: Sequence[int]) -> CountBetween:
    """:data:`CountBetween` over a sorted list of times."""

    def count(after: int, until: int) -> int:
        return bisect_right(times, until) - bisect_right(times, after)

    return count


__all__ = ["TREND_DAYS", "CountBetween", "counter_of", "daily"]
