"""Time-ordered lists of incidents: the index every window and lookback reads.

A ``Timeline`` is a sorted list of ``(started, incident_id)``. Reading a window
is two bisections and a slice, so a query costs what it returns, not what the
history holds. Iteration newest-first is what correlation needs to stop early.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator

Entry = tuple[int, str]
_TOP = "\U0010ffff"  # sorts after every incident id


_CHUNK = 512


class Timeline:
    """A sorted multiset of ``(started, incident_id)`` entries.

    Kept as a list of sorted chunks of at most ``2 * _CHUNK`` entries, so an
    insert or removal anywhere moves at most one chunk's worth of memory:
    late and out-of-order events cost the same as in-order ones, however long
    the history.
    """

    __slots__ = ("_chunks", "_firsts", "_size")

    def __init__(self) -> None:
        self._chunks: list[list[Entry]] = []
        self._firsts: list[Entry] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def _chunk_for(self, entry: Entry) -> int:
        return max(bisect_right(self._firsts, entry) - 1, 0)

    def add(self, started: int, incident_id: str, entry: Entry | None = None) -> None:
        """Insert ``(started, incident_id)``; ``entry``, when given, is that tuple, so
        the indexes of one incident can share one object instead of a copy each."""
        if entry is None:
            entry = (started, incident_id)
        self._size += 1
        if not self._chunks:
            self._chunks.append([entry])
            self._firsts.append(entry)
            return
        i = self._chunk_for(entry)
        chunk = self._chunks[i]
        if chunk[-1] < entry:
            chunk.append(entry)
        else:
            insort(chunk, entry)
        self._firsts[i] = chunk[0]
        if len(chunk) > 2 * _CHUNK:
            self._chunks[i + 1:i + 1] = [chunk[_CHUNK:]]
            del chunk[_CHUNK:]
            self._firsts.insert(i + 1, self._chunks[i + 1][0])

    def remove(self, started: int, incident_id: str) -> None:
        if not self._chunks:
            return
        entry = (started, incident_id)
        i = self._chunk_for(entry)
        chunk = self._chunks[i]
        j = bisect_left(chunk, entry)
        if j < len(chunk) and chunk[j] == entry:
            del chunk[j]
            self._size -= 1
            if chunk:
                self._firsts[i] = chunk[0]
            else:
                del self._chunks[i]
                del self._firsts[i]

    def _ascending(self, low: Entry, high: Entry) -> Iterator[Entry]:
        """Entries with ``low <= entry < high``, oldest first."""
        i = self._chunk_for(low)
        j = bisect_left(self._chunks[i], low) if self._chunks else 0
        while i < len(self._chunks):
            chunk = self._chunks[i]
            while j < len(chunk):
                if chunk[j] >= high:
                    return
                yield chunk[j]
                j += 1
            i, j = i + 1, 0

    def window(self, after: int, until: int) -> list[Entry]:
        """Entries with ``after < started <= until``, oldest first."""
        return list(self._ascending((after, _TOP), (until, _TOP)))

    def _rank(self, entry: Entry) -> tuple[int, int]:
        """(chunk, entries of that chunk before ``entry``): with the chunk lengths before
        it, the number of stored entries smaller than ``entry``."""
        i = self._chunk_for(entry)
        return i, bisect_left(self._chunks[i], entry)

    def count(self, after: int, until: int) -> int:
        """How many entries have ``after < started <= until``: two bisections and the
        lengths of the chunks between them, not a walk over the entries (the
        recurrence counts of a busy kind cover thousands)."""
        if not self._chunks or until <= after:
            return 0
        i, a = self._rank((after, _TOP))
        j, b = self._rank((until, _TOP))
        return sum(len(chunk) for chunk in self._chunks[i:j]) - a + b

    def newest_first(self, low: int, high: int) -> Iterator[Entry]:
        """Entries with ``low <= started <= high``, newest first (ids descending on ties)."""
        if not self._chunks:
            return
        top, bottom = (high, _TOP), (low, "")
        i = self._chunk_for(top)
        j = bisect_right(self._chunks[i], top) - 1
        while i >= 0:
            chunk = self._chunks[i]
            while j >= 0:
                if chunk[j] < bottom:
                    return
                yield chunk[j]
                j -= 1
            i -= 1
            j = len(self._chunks[i]) - 1 if i >= 0 else -1

    def drop_before(self, cutoff: int) -> int:
        """Forget entries with ``started < cutoff``; returns how many went."""
        dropped = 0
        while self._chunks and self._chunks[0][-1] < (cutoff, ""):
            dropped += len(self._chunks.pop(0))
            self._firsts.pop(0)
        if self._chunks:
            chunk = self._chunks[0]
            k = bisect_left(chunk, (cutoff, ""))
            del chunk[:k]
            dropped += k
            self._firsts[0] = chunk[0]
        self._size -= dropped
        return dropped


class TimelineIndex:
    """One :class:`Timeline` per key (a signature, a service, a kind…)."""

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        self._by_key: dict[object, Timeline] = {}

    def add(self, key: object, started: int, incident_id: str,
            entry: Entry | None = None) -> None:
        timeline = self._by_key.get(key)
        if timeline is None:
            timeline = self._by_key[key] = Timeline()
        timeline.add(started, incident_id, entry)

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
