"""Event ids kept in 8 bytes each: their 64-bit hashes, in a flat open-addressing table.

An organisation with a few hundred thousand alert transitions a day keeps ten
million of them for the alert windows; a Python ``set`` of their ids costs
over 100 bytes an entry, this table 8 to 16. Ids are identified by the first
8 bytes of their BLAKE2b hash (:func:`id_key`): two different ids with the same
hash (about one chance in 3·10⁶ among 10⁷ ids) count as one, in every shell
alike, since the hash does not depend on the process.
"""

from __future__ import annotations

from array import array
from hashlib import blake2b

EMPTY = 0
GONE = 1
"""Slot markers; :func:`id_key` never returns either."""
_MIN_SLOTS = 1 << 10


def id_key(text: str) -> int:
    """The signed 64-bit key of an id (never :data:`EMPTY` or :data:`GONE`)."""
    key = int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)
    return key + 2 if key in (EMPTY, GONE) else key


class KeySet:
    """A set of keys from :func:`id_key`: linear probing over one ``array('q')``."""

    __slots__ = ("_slots", "_mask", "_used", "_gone")

    def __init__(self) -> None:
        self._slots = array("q", bytes(8 * _MIN_SLOTS))
        self._mask = _MIN_SLOTS - 1
        self._used = 0
        self._gone = 0

    def __len__(self) -> int:
        return self._used

    def _find(self, key: int) -> tuple[int, bool]:
        """(the slot holding ``key``, True) or (the slot to put it in, False)."""
        slots, mask = self._slots, self._mask
        i = key & mask
        free = -1
        while True:
            here = slots[i]
            if here == key:
                return i, True
            if here == EMPTY:
                return (i if free < 0 else free), False
            if here == GONE and free < 0:
                free = i
            i = (i + 1) & mask

    def __contains__(self, key: int) -> bool:
        return self._find(key)[1]

    def add(self, key: int) -> bool:
        """Add ``key``; False when it was there already."""
        i, found = self._find(key)
        if found:
            return False
        if self._slots[i] == GONE:
            self._gone -= 1
        self._slots[i] = key
        self._used += 1
        if (self._used + self._gone) * 3 > len(self._slots) * 2:
            self._rebuild()
        return True

    def discard(self, key: int) -> None:
        i, found = self._find(key)
        if found:
            self._slots[i] = GONE
            self._used -= 1
            self._gone += 1

    def _rebuild(self) -> None:
        """Rehash into a table at most half full (dropping the markers of removed keys)."""
        size = _MIN_SLOTS
        while size < self._used * 2 + 2:
            size <<= 1
        old = self._slots
        self._slots = array("q", bytes(8 * size))
        self._mask = size - 1
        self._used = self._gone = 0
        for key in old:
            if key != EMPTY and key != GONE:
                i, _ = self._find(key)
                self._slots[i] = key
                self._used += 1
