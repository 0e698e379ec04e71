"""Time-ordered lists of incidents: the index every window and lookback reads.

A ``Timeline`` is a sorted list of ``(started, incident_id)``. Reading a window
is two bisections and a slice, so a query costs what it returns, not what the
history holds. Iteration newest-first is what correlation needs to stop early.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator

Entry = tuple[int, str]


class Timeline:
    """A sorted multiset of ``(started, incident_id)`` entries."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: list[Entry] = []

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, started: int, incident_id: str) -> None:
        entries = self._entries
        entry = (started, incident_id)
        if not entries or entries[-1] < entry:
            entries.append(entry)
        else:
            insort(entries, entry)

    def remove(self, started: int, incident_id: str) -> None:
        entries = self._entries
        i = bisect_left(entries, (started, incident_id))
        if i < len(entries) and entries[i] == (started, incident_id):
            del entries[i]

    def window(self, after: int, until: int) -> list[Entry]:
        """Entries with ``after < started <= until``, oldest first."""
        entries = self._entries
        lo = bisect_right(entries, (after, "\U0010ffff"))
        hi = bisect_right(entries, (until, "\U0010ffff"))
        return entries[lo:hi]

    def count(self, after: int, until: int) -> int:
        """How many entries have ``after < started <= until``."""
        entries = self._entries
        return bisect_right(entries, (until, "\U0010ffff")) - bisect_right(
            entries, (after, "\U0010ffff")
        )

    def newest_first(self, low: int, high: int) -> Iterator[Entry]:
        """Entries with ``low <= started <= high``, newest first (ids descending on ties)."""
        entries = self._entries
        lo = bisect_left(entries, (low, ""))
        i = bisect_right(entries, (high, "\U0010ffff")) - 1
        while i >= lo:
            yield entries[i]
            i -= 1

    def drop_before(self, cutoff: int) -> int:
        """Forget entries with ``started < cutoff``; returns how many went."""
        entries = self._entries
        i = bisect_left(entries, (cutoff, ""))
        del entries[:i]
        return i


class TimelineIndex:
    """One :class:`Timeline` per key (a signature, a service, a kind…)."""

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        self._by_key: dict[object, Timeline] = {}

    def add(self, key: object, started: int, incident_id: str) -> None:
        timeline = self._by_key.get(key)
        if timeline is None:
            timeline = self._by_key[key] = Timeline()
        timeline.add(started, incident_id)

    def remove(self, key: object, started: int, incident_id: str) -> None:
        timeline = self._by_key.get(key)
        if timeline is not None:
            timeline.remove(started, incident_id)
            if not len(timeline):
                del self._by_key[key]

    def get(self, key: object) -> Timeline | None:
        return self._by_key.get(key)

    def keys(self) -> list[object]:
        return list(self._by_key)
