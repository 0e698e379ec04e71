"""Learning velocity, quarter by quarter: the rules (docs/learning-velocity.md).

Per calendar quarter (``YYYY-Qn``, by ``started_at``): MTTR, detection latency,
recurrence rate against the policy target, coverage expansion (regression tests
added) and the learning-velocity score. Pure: no clock, no I/O, no Faust.

The learning-velocity modules
=============================

- :mod:`app.intel.velocity_quarters` (this one): the rules on plain data, the
  facts read out of the book, and the batch recompute::

      rows = velocity_by_quarter(book, target)            # list[QuarterVelocity]
      rows = velocity_by_quarter(book, target, as_of=t)   # only what started by t
      score, n = overall_score(book)                      # the score over all incidents

- :mod:`app.intel.velocity_tracker`: the same rows kept up to date one event
  at a time (the stream worker).
- :mod:`app.intel.velocity_report`: what is shown: the CLI report (table and
  ASCII trend) and the weekly digest's learning section.

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

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from app.contracts import DurationStats, QuarterVelocity, Trend
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


def trend(scores: Sequence[float | None]) -> Trend:
    """Whether the quarterly scores rise; quarters without a score are skipped.

    ``None`` for both flags when fewer than two quarters have a score.
    """
    seq = [s for s in scores if s is not None]
    if len(seq) < 2:
        return Trend(scored_quarters=len(seq), monotonically_increasing=None,
                     strictly_increasing=None)
    pairs = list(zip(seq, seq[1:], strict=False))
    return Trend(
        scored_quarters=len(seq),
        monotonically_increasing=all(b >= a for a, b in pairs),
        strictly_increasing=all(b > a for a, b in pairs),
    )


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


def quarter_row(quarter: str, facts: Sequence[IncidentFacts], repeats: Sequence[bool],
                values: Sequence[tuple[float, ...]], tests: int, coverage_change: int | None,
                target: float) -> QuarterVelocity:
    """One quarter's row from its incidents (in order), whether each repeats, the values
    each appends to the score, and its tests; the batch and the tracker both build with it."""
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
        rows.append(quarter_row(label, group, repeats, values, test_counts[label], change, target))
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
