"""Learning velocity: are we learning from incidents? (docs/learning-velocity.md)

Per calendar quarter (``YYYY-Qn``, by ``started_at``): MTTR, detection latency,
recurrence rate against the policy target, coverage expansion (regression tests
added) and the learning-velocity score. Pure: no clock, no I/O, no Faust.

Public API
==========

Batch (the CLI, the digest)::

    rows = velocity_by_quarter(book, target)            # list[QuarterVelocity]
    rows = velocity_by_quarter(book, target, as_of=t)   # only what started by t
    score, n = overall_score(book)                      # the score over all incidents
    report = velocity_report(book, target, first="2026-Q1", last="2026-Q4")
    text = render_markdown(report)                      # table + ASCII trend

Stream (the worker keeps the figures incrementally)::

    tracker = VelocityTracker(target)        # or VelocityTracker.from_book(book, target)
    book.apply(event)
    tracker.apply(book, event)               # re-reads what the event could change
    for row in tracker.take_changed().changed:   # emit learning.velocity, key row.quarter
        ...
    tracker.quarters() == velocity_by_quarter(book, target)   # always

Digest::

    summary = learning_summary(velocity_by_quarter(book, target, as_of=as_of), as_of)
    lines = learning_section_markdown(summary)
    section = digest_section(book, as_of, target)   # flat dict for the engine's hook

Decisions where the issue leaves room
=====================================

- Quarters are contiguous from the first to the last quarter holding an
  incident start or a ``regression_test.added`` event; quarters in between with
  no data are listed with zero counts.
- MTTR groups incidents by the quarter of ``started_at`` and uses those that have
  a ``resolved_at`` (whatever their status).
- Detection moment: ``detected_at``; else the first ``firing`` transition of an
  alert linked to the incident; else the first ``incident.opened`` event time;
  else the incident has no latency.
- Negative durations (clock skew: resolved or detected before ``started_at``)
  are clamped to 0: the event happened, at about the start.
- Median and p90 use linear interpolation between closest ranks (NumPy's
  default, Excel's ``PERCENTILE.INC``): the q-quantile of n sorted values is
  at rank ``q * (n - 1)``.
- Incident order is ``(started_at, incident_id)``; every "earlier" uses it.
- Recurrence: an incident recurs when an earlier incident has the same
  root-cause key (:meth:`IncidentBook.root_cause_key`). Rate = recurrences /
  incidents of the quarter; ``above_target`` is ``rate > target`` (strict).
- Score: "below the mean" is strict ``<``. An incident without a detection
  latency appends 0.5 ("not faster") and is left out of the earlier mean; when no
  earlier incident has a latency, there is no mean to beat and 0.5 is appended.
  A quarter whose incidents appended nothing (it only holds the very first
  incident) has score ``None``.
- Latencies are compared as integer microseconds (``lat * n < sum``), so the
  batch and the incremental results agree exactly.
- Coverage change of the first listed quarter is ``None`` (nothing before it);
  tests are counted by the quarter of the event's ``occurred_at``.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from app.contracts import (
    AlertTransition,
    DurationStats,
    Event,
    IncidentEvent,
    LearningEvent,
    QuarterVelocity,
    format_timestamp,
)
from app.intel.incidents import IncidentBook, Record
from app.intel.periods import (
    MINUTE,
    from_micros,
    micros,
    next_quarter,
    quarter_label,
    quarter_start,
)

# ------------------------------------------------------------------- rules on plain data


def clamped_duration(start: int, end: int | None) -> int | None:
    """``end - start`` in microseconds, clamped at 0 (clock skew is not negative time)."""
    if end is None:
        return None
    return max(0, end - start)


def detection_moment(detected: int | None, first_firing: int | None,
                     opened: int | None) -> int | None:
    """When the incident was detected: the field, else the first alert, else the page."""
    for moment in (detected, first_firing, opened):
        if moment is not None:
            return moment
    return None


def quantile(sorted_values: Sequence[int], q: float) -> float:
    """Linear-interpolation quantile (rank ``q * (n - 1)``) of non-empty sorted values."""
    rank = q * (len(sorted_values) - 1)
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    frac = rank - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * frac


def duration_stats(durations: Iterable[int]) -> DurationStats:
    """Mean, median and p90 in minutes of microsecond durations (all three: they are skewed)."""
    values = sorted(durations)
    if not values:
        return DurationStats(count=0, mean_minutes=None, median_minutes=None, p90_minutes=None)
    return DurationStats(
        count=len(values),
        mean_minutes=sum(values) / len(values) / MINUTE,
        median_minutes=quantile(values, 0.5) / MINUTE,
        p90_minutes=quantile(values, 0.9) / MINUTE,
    )


def latency_term(latency: int | None, earlier_sum: int, earlier_count: int) -> float:
    """1.0 when strictly faster than the mean of earlier latencies, else 0.5."""
    if latency is None or earlier_count == 0:
        return 0.5
    return 1.0 if latency * earlier_count < earlier_sum else 0.5


def score_contributions(incidents: Sequence[tuple[str, int | None]]) -> list[tuple[float, ...]]:
    """The values each incident appends to the score, given ``(key, latency)`` in order.

    The first incident appends nothing; every later one appends its recurrence
    value (0.0 repeat / 1.0 new) then its latency value (1.0 faster / 0.5).
    """
    seen: set[str] = set()
    lat_sum = lat_count = 0
    out: list[tuple[float, ...]] = []
    for i, (key, latency) in enumerate(incidents):
        if i == 0:
            out.append(())
        else:
            out.append((0.0 if key in seen else 1.0, latency_term(latency, lat_sum, lat_count)))
        seen.add(key)
        if latency is not None:
            lat_sum += latency
            lat_count += 1
    return out


def learning_velocity_score(incidents: Sequence[tuple[str, int | None]]) -> float:
    """The mean of all appended values; 0.0 with fewer than two incidents."""
    values = [v for contrib in score_contributions(incidents) for v in contrib]
    return sum(values) / len(values) if values else 0.0


def trend(scores: Sequence[float | None]) -> dict[str, Any]:
    """Whether the quarterly scores rise; quarters without a score are skipped.

    ``None`` for both flags when fewer than two quarters have a score.
    """
    seq = [s for s in scores if s is not None]
    if len(seq) < 2:
        return {"scored_quarters": len(seq), "monotonically_increasing": None,
                "strictly_increasing": None}
    pairs = list(zip(seq, seq[1:], strict=False))
    return {
        "scored_quarters": len(seq),
        "monotonically_increasing": all(b >= a for a, b in pairs),
        "strictly_increasing": all(b > a for a, b in pairs),
    }


def previous_quarter(label: str) -> str:
    start = quarter_start(label)
    return quarter_label(start.replace(year=start.year - 1, month=10) if start.month == 1
                         else start.replace(month=start.month - 3))


def quarter_of(moment: int) -> str:
    return quarter_label(from_micros(moment))


def quarter_span(first: str, last: str) -> list[str]:
    """Every quarter label from ``first`` to ``last`` inclusive."""
    out = [first]
    while out[-1] != last:
        out.append(next_quarter(out[-1]))
    return out


# ---------------------------------------------------------------------- incident facts


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """What the metrics need of one incident; durations in microseconds."""

    incident_id: str
    started: int
    key: str
    latency: int | None
    ttr: int | None

    @property
    def order(self) -> tuple[int, str]:
        return (self.started, self.incident_id)

    @property
    def quarter(self) -> str:
        return quarter_of(self.started)


def incident_facts(book: IncidentBook, record: Record) -> IncidentFacts:
    """Read one incident's facts out of the book (root cause, latency, time to resolve)."""
    detected = detection_moment(
        micros(record.detected_at) if record.detected_at is not None else None,
        book.first_firing.get(record.incident_id),
        book.opened_at.get(record.incident_id),
    )
    resolved = micros(record.resolved_at) if record.resolved_at is not None else None
    return IncidentFacts(
        incident_id=record.incident_id,
        started=record.started,
        key=book.root_cause_key(record),
        latency=clamped_duration(record.started, detected),
        ttr=clamped_duration(record.started, resolved),
    )


def book_facts(book: IncidentBook, until: int | None = None) -> list[IncidentFacts]:
    """Facts of every incident (started at or before ``until`` if given), in incident order."""
    facts = [incident_facts(book, r) for r in book.incidents.values()
             if until is None or r.started <= until]
    return sorted(facts, key=lambda f: f.order)


def book_tests(book: IncidentBook, until: int | None = None) -> list[int]:
    """Times of the ``regression_test.added`` events (at or before ``until`` if given)."""
    return [t.at for t in book.regression_tests.values() if until is None or t.at <= until]


# ----------------------------------------------------------------------- batch recompute


def _row(quarter: str, facts: Sequence[IncidentFacts], repeats: Sequence[bool],
         values: Sequence[tuple[float, ...]], tests: int, coverage_change: int | None,
         target: float) -> QuarterVelocity:
    incidents = len(facts)
    recurrences = sum(repeats)
    rate = recurrences / incidents if incidents else None
    flat = [v for contrib in values for v in contrib]
    return QuarterVelocity(
        quarter=quarter,
        incidents=incidents,
        mttr=duration_stats(f.ttr for f in facts if f.ttr is not None),
        detection_latency=duration_stats(f.latency for f in facts if f.latency is not None),
        recurrences=recurrences,
        recurrence_rate=rate,
        recurrence_target=target,
        above_target=rate is not None and rate > target,
        regression_tests_added=tests,
        coverage_change=coverage_change,
        score=sum(flat) / len(flat) if flat else None,
        score_values=len(flat),
    )


def quarters_from_facts(facts: Sequence[IncidentFacts], tests: Iterable[int],
                        target: float) -> list[QuarterVelocity]:
    """Every quarter's metrics, recomputed from scratch (the reference the tracker matches)."""
    ordered = sorted(facts, key=lambda f: f.order)
    test_counts = Counter(quarter_of(at) for at in tests)
    labels = {f.quarter for f in ordered} | set(test_counts)
    if not labels:
        return []
    contributions = score_contributions([(f.key, f.latency) for f in ordered])
    seen: set[str] = set()
    per_quarter: dict[str, tuple[list[IncidentFacts], list[bool], list[tuple[float, ...]]]] = {}
    for fact, contrib in zip(ordered, contributions, strict=True):
        bucket = per_quarter.setdefault(fact.quarter, ([], [], []))
        bucket[0].append(fact)
        bucket[1].append(fact.key in seen)
        bucket[2].append(contrib)
        seen.add(fact.key)
    span = quarter_span(min(labels, key=quarter_start), max(labels, key=quarter_start))
    rows = []
    for i, label in enumerate(span):
        group, repeats, values = per_quarter.get(label, ([], [], []))
        change = None if i == 0 else test_counts[label] - test_counts[span[i - 1]]
        rows.append(_row(label, group, repeats, values, test_counts[label], change, target))
    return rows


def velocity_by_quarter(book: IncidentBook, target: float,
                        as_of: datetime | None = None) -> list[QuarterVelocity]:
    """Per-quarter learning metrics of everything in the book.

    With ``as_of``, only incidents started and tests added at or before it
    count (docs/architecture.md §4: ``as_of`` is inclusive), so a digest replayed later does not
    count incidents that started after it.
    """
    until = micros(as_of) if as_of is not None else None
    return quarters_from_facts(book_facts(book, until), book_tests(book, until), target)


def overall_score(book: IncidentBook) -> tuple[float, int]:
    """The learning-velocity score over all incidents, and how many values it averages."""
    sequence = [(f.key, f.latency) for f in book_facts(book)]
    values = sum(len(c) for c in score_contributions(sequence))
    return learning_velocity_score(sequence), values


# --------------------------------------------------------------------- incremental tracker


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
        return _row(label, facts, repeats, values, tests, change, self.target)

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


# ----------------------------------------------------------------------------- report


def velocity_report(book: IncidentBook, target: float, first: str | None = None,
                    last: str | None = None) -> dict[str, Any]:
    """All metrics of the quarters in ``[first, last]`` plus the overall score and trend.

    The score of a quarter always counts every earlier incident, so a range
    only filters what is shown, never what is computed.
    """
    rows = velocity_by_quarter(book, target)
    low = quarter_start(first) if first else None
    high = quarter_start(last) if last else None
    shown = [r for r in rows if (low is None or quarter_start(r.quarter) >= low)
             and (high is None or quarter_start(r.quarter) <= high)]
    score, values = overall_score(book)
    return {
        "recurrence_target": target,
        "range": {"from": first, "to": last},
        "overall": {"incidents": len(book.incidents), "score": score, "score_values": values},
        "trend": trend([r.score for r in shown]),
        "quarters": [r.model_dump(mode="json") for r in shown],
    }


BAR_WIDTH = 20


def two_decimals(value: float) -> str:
    """Rounded half up from the shortest decimal form, as people round (0.625 -> 0.63)."""
    return str(Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def ascii_bar(score: float | None, width: int = BAR_WIDTH) -> str:
    """``██████████░░░░░░░░░░ 0.50``: filled cells are the score rounded half up."""
    if score is None:
        return "(no score)"
    filled = min(width, max(0, int(score * width + 0.5)))
    return "█" * filled + "░" * (width - filled) + f" {two_decimals(score)}"


def _minutes(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _stats_cell(stats: dict[str, Any]) -> str:
    if not stats["count"]:
        return "– (n=0)"
    return (f"{_minutes(stats['mean_minutes'])} / {_minutes(stats['median_minutes'])} / "
            f"{_minutes(stats['p90_minutes'])} (n={stats['count']})")


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _trend_sentence(info: dict[str, Any]) -> str:
    if info["monotonically_increasing"] is None:
        return (f"not enough scored quarters to judge a trend "
                f"({info['scored_quarters']} with a score)")
    if info["strictly_increasing"]:
        return "monotonically increasing (every scored quarter above the one before)"
    if info["monotonically_increasing"]:
        return "monotonically increasing (never falls; some quarters equal the one before)"
    return "not monotonically increasing (the score falls at least once)"


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: a table per quarter and an ASCII score trend."""
    rows = report["quarters"]
    target = report["recurrence_target"]
    overall = report["overall"]
    span = ""
    if rows:
        span = f" {rows[0]['quarter']} to {rows[-1]['quarter']}"
    lines = [
        f"# Learning velocity{span}",
        "",
        f"- Learning-velocity score (all {overall['incidents']} incidents): "
        f"{two_decimals(overall['score'])} over {overall['score_values']} values",
        f"- Trend: {_trend_sentence(report['trend'])}",
        f"- Recurrence target: below {_percent(target)}; quarters above it are marked ⚠",
        "",
    ]
    if not rows:
        lines += ["No quarters to show.", ""]
        return "\n".join(lines)
    lines += [
        "| Quarter | Incidents | MTTR min: mean / median / p90 (n) "
        "| Detection min: mean / median / p90 (n) | Recurrence | Tests added (change) "
        "| Score (values) |",
        "|---|---:|---|---|---|---:|---:|",
    ]
    for row in rows:
        rate = _percent(row["recurrence_rate"])
        if row["recurrence_rate"] is not None:
            rate = f"{rate} ({row['recurrences']}/{row['incidents']})"
            if row["above_target"]:
                rate += " ⚠"
        change = row["coverage_change"]
        tests = f"{row['regression_tests_added']}" + (
            "" if change is None else f" ({change:+d})"
        )
        score = "–" if row["score"] is None else two_decimals(row["score"])
        lines.append(
            f"| {row['quarter']} | {row['incidents']} | {_stats_cell(row['mttr'])} "
            f"| {_stats_cell(row['detection_latency'])} | {rate} | {tests} "
            f"| {score} ({row['score_values']}) |"
        )
    lines += ["", "## Score trend", "", "```"]
    lines += [f"{row['quarter']} | {ascii_bar(row['score'])}" for row in rows]
    lines += ["```", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- digest


def _brief(row: QuarterVelocity | None, label: str) -> dict[str, Any]:
    if row is None:
        return {"quarter": label, "incidents": 0, "mttr_median_minutes": None,
                "detection_median_minutes": None, "recurrence_rate": None,
                "above_target": False, "regression_tests_added": 0, "score": None}
    return {
        "quarter": row.quarter,
        "incidents": row.incidents,
        "mttr_median_minutes": row.mttr.median_minutes,
        "detection_median_minutes": row.detection_latency.median_minutes,
        "recurrence_rate": row.recurrence_rate,
        "above_target": row.above_target,
        "regression_tests_added": row.regression_tests_added,
        "score": row.score,
    }


def learning_summary(quarters: Sequence[QuarterVelocity], as_of: datetime) -> dict[str, Any]:
    """This quarter so far against the last one, for the weekly digest.

    "This quarter" is the one holding ``as_of`` (windows include ``as_of``,
    docs/architecture.md §4), so on the first day of a quarter it is nearly empty and
    "last quarter" is the one that just ended. Pass quarters computed with the
    same ``as_of``.
    """
    current = quarter_of(micros(as_of))
    previous = previous_quarter(current)
    by_label = {row.quarter: row for row in quarters}
    target = quarters[0].recurrence_target if quarters else None
    return {
        "as_of": format_timestamp(as_of),
        "recurrence_target": target,
        "this_quarter": _brief(by_label.get(current), current),
        "last_quarter": _brief(by_label.get(previous), previous),
    }


def digest_section(book: IncidentBook, as_of: datetime,
                   target: float) -> dict[str, Any] | None:
    """The weekly digest's learning section, flat so each item is one bullet.

    Matches the engine's ``LearningSection`` hook ``(book, as_of)``. The target
    lives in policy, which the hook does not receive: bind it with
    ``functools.partial(digest_section, target=...)``. ``None`` when neither quarter
    has an incident or a test (nothing to say).
    """
    rows = velocity_by_quarter(book, target, as_of=as_of)
    summary = learning_summary(rows, as_of)
    now, before = summary["this_quarter"], summary["last_quarter"]
    if not (now["incidents"] or before["incidents"] or now["regression_tests_added"]
            or before["regression_tests_added"]):
        return None
    out: dict[str, Any] = {"quarter": now["quarter"], "compared_with": before["quarter"]}
    for name in ("incidents", "mttr_median_minutes", "detection_median_minutes",
                 "recurrence_rate", "regression_tests_added", "score"):
        out[name] = now[name]
        out[f"{name}_last_quarter"] = before[name]
    out["recurrence_target"] = target
    out["above_target"] = now["above_target"]
    return out


def _one_decimal(value: float) -> str:
    return f"{value:.1f}"


def _vs(now: float | None, before: float | None,
        fmt: Callable[[float], str] = _one_decimal) -> str:
    text = "–" if now is None else fmt(now)
    return text + (f" (last quarter {fmt(before)})" if before is not None else "")


def _percent_of(rate: float | None) -> float | None:
    return None if rate is None else rate * 100


def learning_section_markdown(summary: dict[str, Any]) -> list[str]:
    """A short Markdown section for the digest from :func:`learning_summary`."""
    now, before = summary["this_quarter"], summary["last_quarter"]
    target = summary["recurrence_target"]
    rate = _vs(_percent_of(now["recurrence_rate"]), _percent_of(before["recurrence_rate"]))
    flag = " ⚠ above target" if now["above_target"] else ""
    target_text = "" if target is None else f", target below {target * 100:.1f}%"
    return [
        f"## Learning ({now['quarter']} so far vs {before['quarter']})",
        "",
        f"- Incidents: {now['incidents']} (last quarter {before['incidents']})",
        f"- MTTR median, min: {_vs(now['mttr_median_minutes'], before['mttr_median_minutes'])}",
        "- Detection latency median, min: "
        + _vs(now["detection_median_minutes"], before["detection_median_minutes"]),
        f"- Recurrence %: {rate}{flag}{target_text}",
        f"- Regression tests added: {now['regression_tests_added']} "
        f"(last quarter {before['regression_tests_added']})",
        f"- Learning-velocity score: {_vs(now['score'], before['score'], two_decimals)}",
    ]
