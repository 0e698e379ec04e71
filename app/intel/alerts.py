"""Alert intelligence: how often each alert fingerprint fires, flaps, and goes unanswered.

:class:`AlertBook` folds ``alerts.state`` transitions in incrementally and
keeps them compactly: per fingerprint, flat arrays of their times, id keys
and shapes sorted by time, and of their firing times, so every count is two
binary searches and a transition costs about 30 bytes (an organisation with a
few hundred thousand transitions a day keeps the weeks its windows need in a
few hundred megabytes). What a transition says beyond its time — its state,
service, kind and the incident it names — is its *shape*, kept once per
distinct shape. Memory is bounded by ``alerts.retention_days``
(:meth:`AlertBook.prune`).

A transition is identified by its ``event_id`` (by the id's 64-bit key,
:mod:`app.intel.event_ids`): re-sent and duplicated transitions count once
and arrival order never matters. When records claim the same ``event_id``
with different content, the newest ``(occurred_at, shape)`` is kept (shapes
are ordered by a hash of their fields), so the outcome is the same in any
order. Two transitions of a fingerprint at the same instant are ordered by
their id keys.

Windows are ``(as_of - N days, as_of]`` like every other window. A *firing*
is a transition to ``firing``. A flap window of ``W`` minutes is ``(t - W,
t]``: the transitions it holds are less than ``W`` minutes apart, first to
last.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from hashlib import blake2b
from typing import NamedTuple

from app.contracts import (
    AlertNoise,
    AlertRow,
    AlertsResponse,
    AlertTransition,
    PromoteCandidate,
)
from app.intel.event_ids import KeySet, id_key
from app.intel.levels import level
from app.intel.periods import DAY, MINUTE, from_micros, micros, window_start
from app.policy import AlertsPolicy

COUNT_WINDOWS: tuple[int, int] = (7, 30)
"""Days of the two firing counts every row carries, and of the promotion rule."""
PRUNES_REMEMBERED = 64
"""Prunes whose fingerprints :meth:`AlertBook.aged` can still name (one a day)."""
FIRING = "firing"


class Shape(NamedTuple):
    """What a transition says besides its time; ``rank`` orders two versions of one id."""

    to_state: str
    service: str
    kind: str | None
    incident_id: str | None
    rank: int


def _shape_rank(to_state: str, service: str, kind: str | None, incident_id: str | None) -> int:
    text = "\x1f".join((to_state, service, kind or "\x00", incident_id or "\x00"))
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True, slots=True)
class Kept:
    """One transition as the book keeps it."""

    at: int
    key: int
    fingerprint: str
    shape: Shape

    @property
    def firing(self) -> bool:
        return self.shape.to_state == FIRING


@dataclass(frozen=True, slots=True)
class AlertChange:
    """What :meth:`AlertBook.add` changed: the version it replaced (if any), the one kept."""

    replaced: Kept | None
    kept: Kept


class History:
    """One fingerprint's transitions, ordered by ``(at, key)``, in parallel arrays."""

    __slots__ = ("at", "key", "shape", "firings")

    def __init__(self) -> None:
        self.at = array("q")
        self.key = array("q")
        self.shape = array("i")
        """Index of each transition's :class:`Shape` in the book's shape table."""
        self.firings = array("q")
        """Firing times, sorted (a multiset)."""

    def __len__(self) -> int:
        return len(self.at)

    def index(self, at: int, key: int) -> int | None:
        """Where the transition ``(at, key)`` is, if kept."""
        for i in range(bisect_left(self.at, at), bisect_right(self.at, at)):
            if self.key[i] == key:
                return i
        return None

    def insert(self, at: int, key: int, shape: int, firing: bool) -> None:
        i = bisect_right(self.at, at)
        while i > 0 and self.at[i - 1] == at and self.key[i - 1] > key:
            i -= 1
        self.at.insert(i, at)
        self.key.insert(i, key)
        self.shape.insert(i, shape)
        if firing:
            self.firings.insert(bisect_right(self.firings, at), at)

    def remove(self, i: int, firing: bool) -> None:
        at = self.at[i]
        del self.at[i], self.key[i], self.shape[i]
        if firing:
            del self.firings[bisect_left(self.firings, at)]

    def bounds(self, as_of: int, days: int) -> tuple[int, int]:
        """Index range of the transitions in ``(as_of - days, as_of]``."""
        return (bisect_right(self.at, window_start(as_of, days)),
                bisect_right(self.at, as_of))

    def firing_count(self, as_of: int, days: int) -> int:
        """Firings in ``(as_of - days, as_of]``."""
        return (bisect_right(self.firings, as_of)
                - bisect_right(self.firings, window_start(as_of, days)))

    def any_between(self, low: int, high: int) -> bool:
        """Whether a transition lies in ``(low, high]``."""
        return bisect_right(self.at, low) < bisect_right(self.at, high)

    def last_fired(self, as_of: int) -> int | None:
        high = bisect_right(self.firings, as_of)
        return self.firings[high - 1] if high else None

    def cut(self, before: int) -> tuple[array[int], int]:
        """Forget the transitions with ``at < before``: their keys, and how many fired."""
        n = bisect_left(self.at, before)
        keys = self.key[:n]
        fired = bisect_left(self.firings, before)
        del self.at[:n], self.key[:n], self.shape[:n], self.firings[:fired]
        return keys, fired


class AlertBook:
    """Every fingerprint's transitions, deduplicated by ``event_id``."""

    def __init__(self) -> None:
        self.histories: dict[str, History] = {}
        self.keys = KeySet()
        """Id keys of every kept transition."""
        self.shapes: list[Shape] = []
        self._shape_index: dict[tuple[str, str, str | None, str | None], int] = {}
        self.floor: int | None = None
        """Transitions before this were pruned; later arrivals that old are ignored."""
        self.pruned: dict[int, frozenset[str]] = {}
        """The fingerprints each of the last prunes took transitions from, by cutoff."""

    def _shape(self, event: AlertTransition) -> int:
        fields = (event.to_state, event.alert.service, event.alert.kind, event.incident_id)
        index = self._shape_index.get(fields)
        if index is None:
            index = self._shape_index[fields] = len(self.shapes)
            self.shapes.append(Shape(*fields, rank=_shape_rank(*fields)))
        return index

    def add(self, event: AlertTransition) -> AlertChange | None:
        """Fold one transition in; ``None`` when it changed nothing (a repeat, an older
        version of a kept id, or older than what was pruned)."""
        at = micros(event.occurred_at)
        if self.floor is not None and at < self.floor:
            return None
        key = id_key(event.event_id)
        shape = self._shape(event)
        fingerprint = event.alert.fingerprint
        replaced = None
        if not self.keys.add(key):
            old_fp, i = self._locate(key, fingerprint, at)
            old = self.histories[old_fp]
            old_shape = self.shapes[old.shape[i]]
            if (old.at[i], old_shape.rank) >= (at, self.shapes[shape].rank):
                return None
            replaced = Kept(old.at[i], key, old_fp, old_shape)
            old.remove(i, replaced.firing)
            if not len(old):
                del self.histories[old_fp]
        kept = Kept(at, key, fingerprint, self.shapes[shape])
        history = self.histories.get(fingerprint)
        if history is None:
            history = self.histories[fingerprint] = History()
        history.insert(at, key, shape, kept.firing)
        return AlertChange(replaced, kept)

    def _locate(self, key: int, fingerprint: str, at: int) -> tuple[str, int]:
        """Where the kept transition with id ``key`` is: a re-send usually has the same
        fingerprint and time (two bisections); anything else is searched for."""
        history = self.histories.get(fingerprint)
        if history is not None:
            i = history.index(at, key)
            if i is not None:
                return fingerprint, i
        for name, history in self.histories.items():
            try:
                return name, history.key.index(key)
            except ValueError:
                continue
        raise KeyError(f"alert id key {key} is in the key set but in no history")

    def prune(self, before: int) -> int:
        """Forget transitions with ``at < before`` (no window from then on reaches them).

        Returns how many were forgotten. Later arrivals older than ``before`` are
        ignored, as a first arrival that old would be.
        """
        self.floor = before if self.floor is None else max(self.floor, before)
        dropped = 0
        touched: set[str] = set()
        for fingerprint in list(self.histories):
            history = self.histories[fingerprint]
            keys, _ = history.cut(before)
            for key in keys:
                self.keys.discard(key)
            dropped += len(keys)
            if keys:
                touched.add(fingerprint)
            if not len(history):
                del self.histories[fingerprint]
        if touched:
            self.pruned[before] = frozenset(touched)
            while len(self.pruned) > PRUNES_REMEMBERED:
                del self.pruned[min(self.pruned)]
        return dropped

    def __len__(self) -> int:
        return len(self.keys)

    def fingerprints(self, as_of: int, days: int) -> list[str]:
        """Fingerprints with a firing in ``(as_of - days, as_of]``, sorted."""
        return sorted(fp for fp, h in self.histories.items() if h.firing_count(as_of, days))

    def row(self, fingerprint: str, as_of: int, window_days: int,
            policy: AlertsPolicy) -> AlertRow | None:
        """The fingerprint's ``alerts`` row at ``as_of``; None when it did not fire in the
        window."""
        history = self.histories.get(fingerprint)
        if history is None or not history.firing_count(as_of, window_days):
            return None
        low, high = history.bounds(as_of, window_days)
        latest = self.shapes[history.shape[high - 1]]
        fired = history.last_fired(as_of)
        assert fired is not None
        count_7d, count_30d = (history.firing_count(as_of, d) for d in COUNT_WINDOWS)
        most = max_in_flap_window(history.at[low:high], policy.flap.window_minutes)
        linked = {self.shapes[s].incident_id for s in history.shape[low:high]}
        linked.discard(None)
        return AlertRow(
            fingerprint=fingerprint,
            service=latest.service,
            kind=latest.kind,
            firing_7d=count_7d,
            firing_30d=count_30d,
            level=level(count_7d, policy.thresholds),
            flapping=most >= policy.flap.transitions,
            max_transitions_in_flap_window=most,
            linked_incidents=sorted(i for i in linked if i is not None),
            last_fired=from_micros(fired),
        )

    def linked_within(self, fingerprint: str, as_of: int, days: int) -> bool:
        """Whether a transition in ``(as_of - days, as_of]`` names an incident."""
        history = self.histories.get(fingerprint)
        if history is None:
            return False
        low, high = history.bounds(as_of, days)
        return any(self.shapes[s].incident_id for s in history.shape[low:high])

    def published_row(self, fingerprint: str, as_of: int,
                      policy: AlertsPolicy) -> AlertRow | None:
        """The ``intel.alerts`` value of a fingerprint; None means a tombstone."""
        return self.row(fingerprint, as_of, policy.published_window_days, policy)

    def aged(self, before: int, after: int, policy: AlertsPolicy) -> set[str]:
        """Fingerprints whose ``intel.alerts`` record can differ only because the
        watermark moved from ``before`` to ``after``: a transition of theirs entered
        the windows or left one of them."""
        if after <= before:
            return set()
        days = sorted({*COUNT_WINDOWS, policy.published_window_days})
        bands = [(before, after)] + [(before - d * DAY, after - d * DAY) for d in days]
        moved = {fp for fp, history in self.histories.items()
                 if any(history.any_between(low, high) for low, high in bands)}
        # A move of more than the retention's margin over the windows prunes transitions
        # that were still inside a window before it: their fingerprints changed too.
        low, high = alert_cutoff(before, policy), alert_cutoff(after, policy)
        for cutoff, fingerprints in self.pruned.items():
            if low < cutoff <= high:
                moved |= fingerprints
        return moved

    def published_fingerprints(self, as_of: int, policy: AlertsPolicy) -> list[str]:
        """Fingerprints that have an ``intel.alerts`` record (not a tombstone) at ``as_of``."""
        return self.fingerprints(as_of, policy.published_window_days)


def alert_cutoff(as_of: int, policy: AlertsPolicy) -> int:
    """Alert transitions before this (microseconds) are forgotten at ``as_of``: the start
    of the watermark's day minus ``alerts.retention_days`` (it moves once a day, so a
    worker pruning along the way and the tool pruning at the end keep the same set)."""
    return (as_of // DAY) * DAY - policy.retention_days * DAY


def max_in_flap_window(times: Sequence[int], window_minutes: int) -> int:
    """Most of the sorted ``times`` inside any ``(t - W, t]``: a two-pointer sweep."""
    width = window_minutes * MINUTE
    best = first = 0
    for last, t in enumerate(times):
        while times[first] <= t - width:
            first += 1
        best = max(best, last - first + 1)
    return best


def _order(row: AlertRow) -> tuple[int, int, int, str]:
    return (-row.firing_7d, -row.firing_30d, -micros(row.last_fired), row.fingerprint)


def recommendation(row: AlertRow, policy: AlertsPolicy, unknown_kind: str) -> str:
    """The policy's promotion template for one row."""
    return policy.promote.template.format(fingerprint=row.fingerprint, service=row.service,
                                          kind=row.kind or unknown_kind, count=row.firing_7d)


def _nothing() -> None:
    return None


def report(book: AlertBook, as_of: datetime, window_days: int, service: str | None,
           policy: AlertsPolicy, unknown_kind: str,
           step: Callable[[], None] = _nothing) -> AlertsResponse:
    """The ``alerts`` action: rows ranked by recurrence, flapping ones, promotion candidates.

    ``unknown_kind`` stands in for an alert without a kind in recommendations;
    ``step`` runs before each row, so a shell can stop a long read there.
    """
    end = micros(as_of)
    rows: list[AlertRow] = []
    for fp in book.fingerprints(end, window_days):
        step()
        row = book.row(fp, end, window_days, policy)
        if row is not None and (service is None or row.service == service):
            rows.append(row)
    rows.sort(key=_order)
    promote = [
        PromoteCandidate(fingerprint=r.fingerprint, service=r.service, kind=r.kind,
                         firing_7d=r.firing_7d,
                         recommendation=recommendation(r, policy, unknown_kind))
        for r in rows
        if r.firing_7d >= policy.promote.min_firing
        and not book.linked_within(r.fingerprint, end, COUNT_WINDOWS[1])
    ]
    return AlertsResponse(as_of=as_of, window_days=window_days, service_filter=service,
                          alert_count=len(rows), alerts=rows,
                          flapping=[r.fingerprint for r in rows if r.flapping],
                          promote_candidates=promote)


def noise(book: AlertBook, as_of: datetime, top_n: int, policy: AlertsPolicy,
          unknown_kind: str) -> AlertNoise:
    """The digest's "Alert noise" over the 7 days ending at ``as_of``, ``top_n`` of each."""
    answer = report(book, as_of, COUNT_WINDOWS[0], None, policy, unknown_kind)
    return AlertNoise(top_recurring=answer.alerts[:top_n],
                      flapping=[r for r in answer.alerts if r.flapping][:top_n],
                      promote_candidates=answer.promote_candidates[:top_n])


__all__ = ["COUNT_WINDOWS", "AlertBook", "AlertChange", "History", "Kept", "Shape",
           "alert_cutoff", "max_in_flap_window", "noise", "recommendation", "report"]
