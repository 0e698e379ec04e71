"""Alert intelligence: how often each alert fingerprint fires, flaps, and goes unanswered.

:class:`AlertBook` folds ``alerts.state`` transitions in incrementally: per
fingerprint a sorted list of its transitions and of its firing times, so every
count is two binary searches and memory is bounded by :meth:`AlertBook.prune`.
A transition is identified by its ``event_id``: re-sent and duplicated
transitions count once and arrival order never matters (when two records
claim the same ``event_id`` with different content, the smaller one, in a
fixed field order, is kept, so the outcome is the same in any order).

Windows are ``(as_of - N days, as_of]`` like every other window. A *firing*
is a transition to ``firing``. A flap window of ``W`` minutes is ``(t - W,
t]``: the transitions it holds are less than ``W`` minutes apart, first to
last.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Callable, Iterable, Sequence
from dataclasses import astuple, dataclass, field
from datetime import datetime
from typing import Any

from app.contracts import (
    AlertNoise,
    AlertRow,
    AlertsResponse,
    AlertTransition,
    PromoteCandidate,
)
from app.intel.periods import DAY, MINUTE, from_micros, micros, window_start
from app.intel.recurrence import level
from app.policy import AlertsPolicy, IntelPolicy

COUNT_WINDOWS: tuple[int, int] = (7, 30)
"""Days of the two firing counts every row carries, and of the promotion rule."""


@dataclass(frozen=True, slots=True)
class Transition:
    """One alert state change as the book keeps it."""

    at: int
    event_id: str
    fingerprint: str
    to_state: str
    service: str
    kind: str | None
    incident_id: str | None

    @classmethod
    def of(cls, event: AlertTransition) -> Transition:
        return cls(at=micros(event.occurred_at), event_id=event.event_id,
                   fingerprint=event.alert.fingerprint, to_state=event.to_state,
                   service=event.alert.service, kind=event.alert.kind,
                   incident_id=event.incident_id)

    def rank(self) -> tuple[int, str, str, str, str, str]:
        """Order among records sharing an ``event_id``: the smallest is kept."""
        return (self.at, self.fingerprint, self.to_state, self.service, self.kind or "",
                self.incident_id or "")


def _at(key: tuple[int, *tuple[str, ...]]) -> int:
    return key[0]


@dataclass
class History:
    """One fingerprint's transitions, ordered by ``(at, event_id)``.

    It is the whole state a fingerprint's row needs, so a shell partitioned by
    fingerprint can keep one per key (:meth:`dump` and :meth:`load` give it a
    JSON form) and answer with :func:`fingerprint_row`.
    """

    keys: list[tuple[int, str]] = field(default_factory=list)
    firings: list[int] = field(default_factory=list)
    linked: list[tuple[int, str, str]] = field(default_factory=list)
    """``(at, event_id, incident_id)`` of the transitions naming an incident."""
    by_id: dict[str, Transition] = field(default_factory=dict)

    def add(self, t: Transition) -> bool:
        """Insert a transition; False when its ``event_id`` is already kept with a smaller rank."""
        kept = self.by_id.get(t.event_id)
        if kept is not None:
            if kept.rank() <= t.rank():
                return False
            self.remove(kept)
        insort(self.keys, (t.at, t.event_id))
        if t.to_state == "firing":
            insort(self.firings, t.at)
        if t.incident_id:
            insort(self.linked, (t.at, t.event_id, t.incident_id))
        self.by_id[t.event_id] = t
        return True

    def remove(self, t: Transition) -> None:
        self.keys.remove((t.at, t.event_id))
        if t.to_state == "firing":
            self.firings.remove(t.at)
        if t.incident_id:
            self.linked.remove((t.at, t.event_id, t.incident_id))
        del self.by_id[t.event_id]

    def firing_count(self, as_of: int, days: int) -> int:
        """Firings in ``(as_of - days, as_of]``."""
        return (bisect_right(self.firings, as_of)
                - bisect_right(self.firings, window_start(as_of, days)))

    def times(self, as_of: int, days: int) -> list[int]:
        """Times of the transitions in ``(as_of - days, as_of]``, oldest first."""
        low = bisect_right(self.keys, window_start(as_of, days), key=_at)
        high = bisect_right(self.keys, as_of, key=_at)
        return [at for at, _ in self.keys[low:high]]

    def incidents(self, as_of: int, days: int) -> list[str]:
        """Incident ids named by transitions in ``(as_of - days, as_of]``, sorted, unique."""
        low = bisect_right(self.linked, window_start(as_of, days), key=_at)
        high = bisect_right(self.linked, as_of, key=_at)
        return sorted({incident for _, _, incident in self.linked[low:high]})

    def any_between(self, low: int, high: int) -> bool:
        """Whether a transition lies in ``(low, high]``."""
        return bisect_right(self.keys, low, key=_at) < bisect_right(self.keys, high, key=_at)

    def linked_within(self, as_of: int, days: int) -> bool:
        """Whether a transition in ``(as_of - days, as_of]`` names an incident."""
        low = bisect_right(self.linked, window_start(as_of, days), key=_at)
        return low < bisect_right(self.linked, as_of, key=_at)

    def latest(self, as_of: int) -> Transition | None:
        """The newest transition at or before ``as_of``."""
        high = bisect_right(self.keys, as_of, key=_at)
        return self.by_id[self.keys[high - 1][1]] if high else None

    def last_fired(self, as_of: int) -> int | None:
        high = bisect_right(self.firings, as_of)
        return self.firings[high - 1] if high else None

    def prune(self, before: int) -> list[Transition]:
        """Forget the transitions with ``at < before``; returns them."""
        cut = bisect_right(self.keys, before - 1, key=_at)
        gone = [self.by_id.pop(event_id) for _, event_id in self.keys[:cut]]
        del self.keys[:cut]
        del self.firings[:bisect_right(self.firings, before - 1)]
        del self.linked[:bisect_right(self.linked, before - 1, key=_at)]
        return gone

    def dump(self) -> list[list[Any]]:
        """The transitions as JSON-ready lists, oldest first."""
        return [list(astuple(self.by_id[event_id])) for _, event_id in self.keys]

    @classmethod
    def load(cls, rows: Iterable[Sequence[Any]]) -> History:
        history = cls()
        for row in rows:
            history.add(Transition(*row))
        return history


def fingerprint_row(fingerprint: str, history: History, as_of: int, window_days: int,
                    policy: AlertsPolicy) -> AlertRow | None:
    """The fingerprint's ``alerts`` row at ``as_of``; None when it did not fire in the window."""
    if not history.firing_count(as_of, window_days):
        return None
    latest = history.latest(as_of)
    fired = history.last_fired(as_of)
    assert latest is not None and fired is not None
    count_7d, count_30d = (history.firing_count(as_of, d) for d in COUNT_WINDOWS)
    most = max_in_flap_window(history.times(as_of, window_days), policy.flap.window_minutes)
    return AlertRow(
        fingerprint=fingerprint,
        service=latest.service,
        kind=latest.kind,
        firing_7d=count_7d,
        firing_30d=count_30d,
        level=level(count_7d, policy.thresholds),
        flapping=most >= policy.flap.transitions,
        max_transitions_in_flap_window=most,
        linked_incidents=history.incidents(as_of, window_days),
        last_fired=from_micros(fired),
    )


def max_in_flap_window(times: list[int], window_minutes: int) -> int:
    """Most of the sorted ``times`` inside any ``(t - W, t]``: a two-pointer sweep."""
    width = window_minutes * MINUTE
    best = first = 0
    for last, t in enumerate(times):
        while times[first] <= t - width:
            first += 1
        best = max(best, last - first + 1)
    return best


class AlertBook:
    """Every fingerprint's transitions, deduplicated by ``event_id``."""

    def __init__(self) -> None:
        self.histories: dict[str, History] = {}
        self.owner: dict[str, Transition] = {}
        """The kept transition of each ``event_id``."""
        self.floor: int | None = None
        """Transitions before this were pruned; later arrivals that old are ignored."""

    def add(self, event: AlertTransition) -> bool:
        """Fold one transition in; False when it changed nothing (a repeat, or too old)."""
        t = Transition.of(event)
        if self.floor is not None and t.at < self.floor:
            return False
        kept = self.owner.get(t.event_id)
        if kept is not None:
            if kept.rank() <= t.rank():
                return False
            self._drop(kept)
        self.histories.setdefault(t.fingerprint, History()).add(t)
        self.owner[t.event_id] = t
        return True

    def _drop(self, t: Transition) -> None:
        history = self.histories[t.fingerprint]
        history.remove(t)
        if not history.keys:
            del self.histories[t.fingerprint]
        del self.owner[t.event_id]

    def prune(self, before: int) -> int:
        """Forget transitions with ``at < before`` (no window from then on reaches them).

        Returns how many were forgotten. Call it with the start of the longest
        window any later answer needs, e.g. ``window_start(watermark, retention)``.
        """
        self.floor = before if self.floor is None else max(self.floor, before)
        dropped = 0
        for fingerprint in list(self.histories):
            history = self.histories[fingerprint]
            for t in history.prune(before):
                del self.owner[t.event_id]
                dropped += 1
            if not history.keys:
                del self.histories[fingerprint]
        return dropped

    def __len__(self) -> int:
        return len(self.owner)

    def fingerprints(self, as_of: int, days: int) -> list[str]:
        """Fingerprints with a firing in ``(as_of - days, as_of]``, sorted."""
        return sorted(fp for fp, h in self.histories.items() if h.firing_count(as_of, days))

    def row(self, fingerprint: str, as_of: int, window_days: int,
            policy: AlertsPolicy) -> AlertRow | None:
        """The fingerprint's row at ``as_of``; None when it did not fire in the window."""
        history = self.histories.get(fingerprint)
        if history is None:
            return None
        return fingerprint_row(fingerprint, history, as_of, window_days, policy)

    def linked_within(self, fingerprint: str, as_of: int, days: int) -> bool:
        """Whether a transition in ``(as_of - days, as_of]`` names an incident."""
        history = self.histories.get(fingerprint)
        return history is not None and history.linked_within(as_of, days)

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
        return {fp for fp, history in self.histories.items()
                if any(history.any_between(low, high) for low, high in bands)}

    def published_fingerprints(self, as_of: int, policy: AlertsPolicy) -> list[str]:
        """Fingerprints that have an ``intel.alerts`` record (not a tombstone) at ``as_of``."""
        return self.fingerprints(as_of, policy.published_window_days)


def horizon_days(policy: IntelPolicy) -> int:
    """Days of transitions a live shell must keep: the widest published window, plus grace.

    Pruning with ``prune(window_start(watermark, horizon_days(policy)))`` keeps
    every ``intel.alerts`` record and the 7- and 30-day counts exact.
    """
    widest = max(COUNT_WINDOWS[1], policy.alerts.published_window_days)
    return widest + policy.recurrence.grace_days


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


__all__ = ["COUNT_WINDOWS", "AlertBook", "History", "Transition", "fingerprint_row",
           "horizon_days", "max_in_flap_window", "noise", "recommendation", "report"]
