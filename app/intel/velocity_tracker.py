"""Learning velocity kept incrementally: the stream worker's per-quarter rows.

The worker applies each event to the book, then to the tracker, and emits the
quarters that changed on ``learning.velocity`` (key: the quarter)::

    tracker = VelocityTracker(target)        # or VelocityTracker.from_book(book, target)
    book.apply(event)
    tracker.apply(book, event)               # re-reads what the event could change
    for row in tracker.take_changed().changed:   # emit learning.velocity, key row.quarter
        ...
    tracker.quarters() == velocity_by_quarter(book, target)   # always

The rules and the batch recompute it matches are in :mod:`app.intel.velocity_quarters`.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass

from app.contracts import (
    AlertTransition,
    Event,
    IncidentEvent,
    LearningEvent,
    QuarterVelocity,
)
from app.intel.incidents import IncidentBook
from app.intel.periods import next_quarter, quarter_start
from app.intel.velocity_quarters import (
    IncidentFacts,
    incident_facts,
    latency_term,
    previous_quarter,
    quarter_of,
    quarter_row,
    quarter_span,
)


@dataclass(frozen=True, slots=True)
class QuarterChanges:
    """What :meth:`VelocityTracker.take_changed` found since its last call."""

    changed: list[QuarterVelocity]
    removed: list[str]
    """Quarters no longer holding data (an incident's ``started_at`` moved); tombstone them."""


class VelocityTracker:
    """Per-quarter learning metrics kept up to date one fact at a time.

    Recurrence is local (an incident repeats iff it is not the earliest holder
    of its key), so a key change touches at most three quarters. The latency
    value depends on every earlier incident, so a latency or order change marks
    the values from that incident onward stale; they are recomputed lazily on
    the next read, walking only that suffix (new incidents arrive near the end).
    Only quarters whose inputs changed are rebuilt.
    """

    def __init__(self, target: float) -> None:
        self.target = target
        self._facts: dict[str, IncidentFacts] = {}
        self._order: list[tuple[int, str]] = []
        self._holders: dict[str, list[tuple[int, str]]] = {}
        self._by_quarter: dict[str, set[str]] = {}
        self._lat_sum = 0
        self._lat_count = 0
        self._lat_terms: dict[str, float] = {}
        self._stale_from: tuple[int, str] | None = None
        self._tests: dict[str, int] = {}
        self._test_counts: Counter[str] = Counter()
        self._dirty: set[str] = set()
        self._rows: dict[str, QuarterVelocity] = {}
        self._first_quarter: str | None = None
        self._emitted: dict[str, QuarterVelocity] = {}

    @classmethod
    def from_book(cls, book: IncidentBook, target: float) -> VelocityTracker:
        """A tracker holding everything already in the book (start-up, recovery)."""
        tracker = cls(target)
        for record in book.incidents.values():
            tracker.upsert(incident_facts(book, record))
        for event_id, test in book.regression_tests.items():
            tracker.add_test(event_id, test.at)
        return tracker

    # -- feeding

    def apply(self, book: IncidentBook, event: Event) -> None:
        """Call after ``book.apply(event)``: re-read the facts the event could change.

        Idempotent, so a redelivered or ignored event is harmless.
        """
        incident_id: str | None = None
        if isinstance(event, IncidentEvent):
            incident_id = event.incident.incident_id
        elif isinstance(event, AlertTransition):
            incident_id = event.incident_id if event.to_state == "firing" else None
        elif isinstance(event, LearningEvent):
            if event.type == "regression_test.added":
                test = book.regression_tests.get(event.event_id)
                if test is not None:
                    self.add_test(event.event_id, test.at)
            incident_id = event.incident_id
        for affected in {incident_id, *book.affected}:
            if affected is not None and affected in book.incidents:
                self.upsert(incident_facts(book, book.incidents[affected]))

    def add_test(self, test_key: str, at: int) -> None:
        """Count one ``regression_test.added`` (by event id; repeats are ignored)."""
        if test_key in self._tests:
            return
        self._tests[test_key] = at
        label = quarter_of(at)
        self._test_counts[label] += 1
        self._dirty.update((label, next_quarter(label)))

    def upsert(self, facts: IncidentFacts) -> None:
        """Insert or replace one incident's facts."""
        old = self._facts.get(facts.incident_id)
        if old == facts:
            return
        first_before = self._order[0] if self._order else None
        if old is not None:
            self._remove(old)
        self._insert(facts)
        if old is None or old.latency != facts.latency or old.order != facts.order:
            low = facts.order if old is None else min(old.order, facts.order)
            self._stale_from = low if self._stale_from is None else min(self._stale_from, low)
        if first_before != self._order[0]:
            for order in (first_before, self._order[0]):
                if order is not None and order[1] in self._facts:
                    self._dirty.add(self._facts[order[1]].quarter)

    def _remove(self, old: IncidentFacts) -> None:
        del self._facts[old.incident_id]
        del self._order[bisect.bisect_left(self._order, old.order)]
        holders = self._holders[old.key]
        index = bisect.bisect_left(holders, old.order)
        del holders[index]
        if index == 0 and holders:
            self._dirty.add(quarter_of(holders[0][0]))
        if not holders:
            del self._holders[old.key]
        ids = self._by_quarter[old.quarter]
        ids.discard(old.incident_id)
        if not ids:
            del self._by_quarter[old.quarter]
        if old.latency is not None:
            self._lat_sum -= old.latency
            self._lat_count -= 1
        self._dirty.add(old.quarter)

    def _insert(self, new: IncidentFacts) -> None:
        self._facts[new.incident_id] = new
        bisect.insort(self._order, new.order)
        holders = self._holders.setdefault(new.key, [])
        index = bisect.bisect_left(holders, new.order)
        if index == 0 and holders:
            self._dirty.add(quarter_of(holders[0][0]))
        holders.insert(index, new.order)
        self._by_quarter.setdefault(new.quarter, set()).add(new.incident_id)
        if new.latency is not None:
            self._lat_sum += new.latency
            self._lat_count += 1
        self._dirty.add(new.quarter)

    # -- reading

    def _refresh_latency_terms(self) -> None:
        if self._stale_from is None:
            return
        start = bisect.bisect_left(self._order, self._stale_from)
        suffix = [self._facts[order[1]] for order in self._order[start:]]
        lat_sum = self._lat_sum - sum(f.latency for f in suffix if f.latency is not None)
        lat_count = self._lat_count - sum(1 for f in suffix if f.latency is not None)
        for fact in suffix:
            term = latency_term(fact.latency, lat_sum, lat_count)
            if self._lat_terms.get(fact.incident_id) != term:
                self._lat_terms[fact.incident_id] = term
                self._dirty.add(fact.quarter)
            if fact.latency is not None:
                lat_sum += fact.latency
                lat_count += 1
        self._stale_from = None

    def _span(self) -> list[str]:
        labels = set(self._by_quarter) | {q for q, n in self._test_counts.items() if n}
        if not labels:
            return []
        return quarter_span(min(labels, key=quarter_start), max(labels, key=quarter_start))

    def _build(self, label: str, is_first: bool) -> QuarterVelocity:
        ids = sorted(self._by_quarter.get(label, ()), key=lambda i: self._facts[i].order)
        facts = [self._facts[i] for i in ids]
        first = self._order[0] if self._order else None
        repeats = [self._holders[f.key][0] != f.order for f in facts]
        values = [
            () if f.order == first else (0.0 if rep else 1.0, self._lat_terms[f.incident_id])
            for f, rep in zip(facts, repeats, strict=True)
        ]
        tests = self._test_counts[label]
        change = None if is_first else tests - self._test_counts[previous_quarter(label)]
        return quarter_row(label, facts, repeats, values, tests, change, self.target)

    def _refresh(self) -> list[str]:
        self._refresh_latency_terms()
        span = self._span()
        first = span[0] if span else None
        if first != self._first_quarter:
            self._dirty.update(q for q in (first, self._first_quarter) if q is not None)
            self._first_quarter = first
        present = set(span)
        for label in [q for q in self._rows if q not in present]:
            del self._rows[label]
        for label in span:
            if label in self._dirty or label not in self._rows:
                self._rows[label] = self._build(label, label == first)
        self._dirty.clear()
        return span

    def quarters(self) -> list[QuarterVelocity]:
        """Every quarter's metrics; equal to :func:`velocity_by_quarter` on the same facts."""
        return [self._rows[label] for label in self._refresh()]

    def take_changed(self) -> QuarterChanges:
        """Quarters that differ from what the previous call returned (to emit), and removals."""
        span = self._refresh()
        changed = [self._rows[q] for q in span if self._emitted.get(q) != self._rows[q]]
        removed = sorted((q for q in self._emitted if q not in self._rows), key=quarter_start)
        for row in changed:
            self._emitted[row.quarter] = row
        for label in removed:
            del self._emitted[label]
        return QuarterChanges(changed=changed, removed=removed)
