"""Correlation quality: the rules measured against labelled pairs, and a suggested change.

Ground truth is a set of labelled pairs of incidents (responders' verdicts, or
a simulation's planted truth): *related* or *unrelated*. A pair is **kept**
when either incident's ``correlate`` answer lists the other, i.e. when its
score reaches ``min_score`` and it is within the top ``max_related`` of at
least one of the two. A pair started further apart than ``lookback_days`` is
never listed: a miss when related, nothing when unrelated.

What a policy keeps depends only on each pair's *class* — which of the four
conditions (same signature, same service, same kind, near in time) hold — and,
where the ``max_related`` cut can bind, on where the pair ranks among the
other incident's candidates. So the pairs are counted once per class and fold,
and a policy is evaluated from those counts: the kept classes, and the order
of the kept classes' scores, decide everything. Grid points that agree on that
order share one evaluation.

The suggestion searches a small integer grid around the current weights and
``min_score`` (``correlation_quality.grid``), maximising F1; ties go to the
smallest change (fewest knobs changed, then fewest grid steps, then the
smaller values). It is scored by k-fold cross-validation: for each fold, the
best point on the other folds is scored on that fold, and the pooled result
is the expected F1 *after* the change. A change is suggested only when that
cross-validated F1 beats the current policy's, so a suggestion never promises
what only memorising the labels would give.

Pure: no clock, no I/O; the same evidence and policy give the same answer.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from app.contracts import (
    CorrelationQualityResponse,
    CorrelationRuleName,
    PolicySuggestion,
    QualityExpectation,
    QualityFigures,
    QualityOverall,
    RuleQuality,
)
from app.intel.correlation import Conditions, Match
from app.policy import IntelPolicy

Source = Literal["verdicts", "planted_truth"]
CLASSES: tuple[Conditions, ...] = tuple(
    (s, v, k, n) for s, v, k, n in itertools.product((False, True), repeat=4))
"""The 16 combinations of the four conditions a score depends on."""
_CLASS_INDEX = {c: i for i, c in enumerate(CLASSES)}
_HOLDS: tuple[dict[CorrelationRuleName, bool], ...] = tuple(Match(*c).holds() for c in CLASSES)


def _noop() -> None:
    return None


# ------------------------------------------------------------------------ evidence


@dataclass(frozen=True, slots=True)
class LabelledPair:
    """One labelled pair, as the engine sees it."""

    target: str
    """The incident judged from (a verdict's ``incident_id``; for planted truth the
    later-started of the two). The window filters on its start."""
    other: str
    related: bool
    other_started: int
    target_started: int
    conditions: Conditions | None
    """Which conditions hold; ``None`` when the pair is beyond the lookback."""


@dataclass(frozen=True, slots=True)
class Neighbour:
    """A candidate some rule fires on, as ``correlate`` ranks it."""

    conditions: Conditions
    started: int
    incident_id: str


@dataclass(frozen=True)
class Evidence:
    """Labelled pairs and what ranking them needs.

    ``crowds`` holds, for every incident of a pair with more candidates a listed
    rule fires on than ``max_related``, all those candidates: only there can the
    cut decide whether a pair is listed.
    """

    pairs: tuple[LabelledPair, ...]
    crowds: Mapping[str, tuple[Neighbour, ...]]
    skipped: int = 0

    @staticmethod
    def combine(parts: Sequence[Evidence]) -> Evidence:
        """Several independent histories as one (incident ids prefixed by their index)."""
        pairs: list[LabelledPair] = []
        crowds: dict[str, tuple[Neighbour, ...]] = {}
        for n, part in enumerate(parts):
            def name(incident_id: str, n: int = n) -> str:
                return f"{n}/{incident_id}"

            pairs += [LabelledPair(name(p.target), name(p.other), p.related, p.other_started,
                                   p.target_started, p.conditions) for p in part.pairs]
            crowds.update({name(i): tuple(Neighbour(c.conditions, c.started, name(c.incident_id))
                                          for c in neighbours)
                           for i, neighbours in part.crowds.items()})
        return Evidence(tuple(pairs), crowds, sum(p.skipped for p in parts))


# --------------------------------------------------------------------------- knobs


@dataclass(frozen=True)
class Knobs:
    """What decides "kept": the weights of the listed rules, ``min_score``, ``max_related``."""

    weights: tuple[tuple[CorrelationRuleName, int], ...]
    min_score: int
    max_related: int

    @classmethod
    def of(cls, policy: IntelPolicy) -> Knobs:
        rules = policy.correlation
        return cls(tuple((r.name, r.weight) for r in rules.rules), rules.min_score,
                   rules.max_related)

    def scores(self) -> tuple[int, ...]:
        """The score of each of the 16 classes."""
        return tuple(sum(w for name, w in self.weights if holds[name]) for holds in _HOLDS)


Order = tuple[int, ...]
"""Per class: ``-1`` when its score is below ``min_score``, else the rank of its score
among the kept classes' distinct scores (0 = highest). Two policies with the same
order keep exactly the same pairs."""


def order_of(scores: Sequence[int], min_score: int) -> Order:
    kept = sorted({s for s in scores if s >= min_score}, reverse=True)
    rank = {s: i for i, s in enumerate(kept)}
    return tuple(rank.get(s, -1) if s >= min_score else -1 for s in scores)


# ------------------------------------------------------------------------ counting


Counts = tuple[int, int, int]
"""(tp, fp, fn)."""


def fold_of(a: str, b: str, folds: int) -> int:
    """The cross-validation fold of the pair ``{a, b}``: a hash of the pair, so a pair
    stays in its fold whatever else is labelled."""
    first, second = sorted((a, b))
    digest = hashlib.sha256(f"{first}\x00{second}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % folds


class _Ranking:
    """The candidates of one crowded incident, per class, in ``correlate``'s order."""

    def __init__(self, neighbours: Iterable[Neighbour]) -> None:
        lists: list[list[tuple[int, str]]] = [[] for _ in CLASSES]
        for c in neighbours:
            lists[_CLASS_INDEX[c.conditions]].append((-c.started, c.incident_id))
        for entries in lists:
            entries.sort()
        self.lists = lists

    def lists_other(self, other: str, started: int, cls: int, order: Order, limit: int) -> bool:
        """Whether this incident's answer lists ``other`` (of class ``cls``)."""
        mine = order[cls]
        if mine < 0:
            return False
        ahead = 0
        key = (-started, other)
        for c, rank in enumerate(order):
            if 0 <= rank < mine:
                ahead += len(self.lists[c])
            elif rank == mine:
                ahead += bisect.bisect_left(self.lists[c], key)
            if ahead >= limit:
                return False
        return True


def _listed(rankings: Mapping[str, _Ranking], pair: LabelledPair, cls: int, order: Order,
            limit: int) -> bool:
    """Whether either answer of a pair of two crowded incidents lists the other."""
    return (rankings[pair.target].lists_other(pair.other, pair.other_started, cls, order, limit)
            or rankings[pair.other].lists_other(pair.target, pair.target_started, cls, order,
                                                limit))


@dataclass(frozen=True, slots=True)
class _Crowded:
    """A pair whose two incidents are both crowded."""

    pair: LabelledPair
    cls: int
    fold: int


class _Table:
    """The evidence counted for fast evaluation: per class and fold, and the rest."""

    def __init__(self, evidence: Evidence, folds: int, max_related: int) -> None:
        self.folds = folds
        self.limit = max_related
        self.related = [[0] * folds for _ in CLASSES]
        self.unrelated = [[0] * folds for _ in CLASSES]
        self.never_related = [0] * folds
        self.crowded: list[_Crowded] = []
        self.rankings = {i: _Ranking(n) for i, n in evidence.crowds.items()}
        for pair in evidence.pairs:
            fold = fold_of(pair.target, pair.other, folds)
            if pair.conditions is None:
                if pair.related:
                    self.never_related[fold] += 1
                continue
            cls = _CLASS_INDEX[pair.conditions]
            if pair.target in self.rankings and pair.other in self.rankings:
                self.crowded.append(_Crowded(pair, cls, fold))
            elif pair.related:
                self.related[cls][fold] += 1
            else:
                self.unrelated[cls][fold] += 1
        self._memo: dict[Order, tuple[Counts, ...]] = {}

    def by_fold(self, order: Order) -> tuple[Counts, ...]:
        """(tp, fp, fn) of each fold when the policy's order is ``order``."""
        known = self._memo.get(order)
        if known is not None:
            return known
        tp, fp = [0] * self.folds, [0] * self.folds
        fn = list(self.never_related)
        for cls, rank in enumerate(order):
            related, unrelated = self.related[cls], self.unrelated[cls]
            for f in range(self.folds):
                if rank >= 0:
                    tp[f] += related[f]
                    fp[f] += unrelated[f]
                else:
                    fn[f] += related[f]
        for item in self.crowded:
            kept = _listed(self.rankings, item.pair, item.cls, order, self.limit)
            if item.pair.related:
                if kept:
                    tp[item.fold] += 1
                else:
                    fn[item.fold] += 1
            elif kept:
                fp[item.fold] += 1
        result = tuple(zip(tp, fp, fn, strict=True))
        self._memo[order] = result
        return result


def _total(counts: Iterable[Counts]) -> Counts:
    tp = fp = fn = 0
    for a, b, c in counts:
        tp, fp, fn = tp + a, fp + b, fn + c
    return tp, fp, fn


def _better(a: Counts, b: Counts) -> int:
    """Compare the F1 of two counts exactly: 1 when ``a``'s is higher, -1 lower, 0 equal.

    F1 is ``2tp / (2tp + fp + fn)``, taken as 0 when there is no true positive."""
    num_a, den_a = (2 * a[0], 2 * a[0] + a[1] + a[2]) if a[0] else (0, 1)
    num_b, den_b = (2 * b[0], 2 * b[0] + b[1] + b[2]) if b[0] else (0, 1)
    left, right = num_a * den_b, num_b * den_a
    return (left > right) - (left < right)


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else round(num / den, 4)


def figures(counts: Counts) -> QualityFigures:
    tp, fp, fn = counts
    return QualityFigures(precision=_ratio(tp, tp + fp), recall=_ratio(tp, tp + fn),
                          f1=_ratio(2 * tp, 2 * tp + fp + fn))


# ----------------------------------------------------------------------------- grid


@dataclass(frozen=True, slots=True)
class _Point:
    """One grid point: the weights of the listed rules and ``min_score``."""

    values: tuple[int, ...]
    change: tuple[int, int, tuple[int, ...]]
    """Knobs changed, grid steps moved, the values: smaller is a smaller change."""


def _axis(current: int, step: int, radius: int, least: int) -> list[int]:
    return sorted({max(least, current + i * step) for i in range(-radius, radius + 1)})


def _grid(knobs: Knobs, policy: IntelPolicy) -> tuple[list[list[int]], tuple[int, ...]]:
    """Each axis's values (the listed weights, then ``min_score``) and the current point."""
    grid = policy.correlation_quality.grid
    axes = [_axis(w, grid.weight_step, grid.radius, 0) for _, w in knobs.weights]
    axes.append(_axis(knobs.min_score, grid.min_score_step, grid.radius, 1))
    current = tuple(w for _, w in knobs.weights) + (knobs.min_score,)
    return axes, current


def _search(table: _Table, knobs: Knobs, policy: IntelPolicy,
            step: Callable[[], None]) -> tuple[list[_Point], list[tuple[Counts, ...]]]:
    """Every grid point (in order of change) with its per-fold counts."""
    axes, current = _grid(knobs, policy)
    index = [axis.index(value) for axis, value in zip(axes, current, strict=True)]
    names = [name for name, _ in knobs.weights]
    scored: list[tuple[_Point, tuple[Counts, ...]]] = []
    for weights in itertools.product(*[list(enumerate(axis)) for axis in axes[:-1]]):
        step()
        trial = Knobs(tuple(zip(names, (w for _, w in weights), strict=True)), 0,
                      knobs.max_related)
        scores = trial.scores()
        for m_index, min_score in enumerate(axes[-1]):
            positions = [i for i, _ in weights] + [m_index]
            values = tuple(w for _, w in weights) + (min_score,)
            moved = [abs(p - q) for p, q in zip(positions, index, strict=True)]
            point = _Point(values, (sum(1 for d in moved if d), sum(moved), values))
            scored.append((point, table.by_fold(order_of(scores, min_score))))
    scored.sort(key=lambda item: item[0].change)
    return [p for p, _ in scored], [c for _, c in scored]


def _best(points: Sequence[_Point], counts: Sequence[Counts]) -> int:
    """Index of the highest F1; the first (smallest change) among equals."""
    best = 0
    for i in range(1, len(points)):
        if _better(counts[i], counts[best]) > 0:
            best = i
    return best


# --------------------------------------------------------------------------- answer


def kept_pairs(evidence: Evidence, knobs: Knobs) -> list[bool]:
    """Whether each labelled pair is kept under ``knobs``, in ``evidence.pairs`` order."""
    order = order_of(knobs.scores(), knobs.min_score)
    rankings = {i: _Ranking(n) for i, n in evidence.crowds.items()}
    out = []
    for pair in evidence.pairs:
        if pair.conditions is None:
            out.append(False)
            continue
        cls = _CLASS_INDEX[pair.conditions]
        if pair.target in rankings and pair.other in rankings:
            out.append(_listed(rankings, pair, cls, order, knobs.max_related))
        else:  # one of them lists every candidate it keeps
            out.append(order[cls] >= 0)
    return out


def _counted(pairs: Sequence[LabelledPair], kept: Sequence[bool]) -> Counts:
    tp = fp = fn = 0
    for pair, k in zip(pairs, kept, strict=True):
        tp += pair.related and k
        fp += k and not pair.related
        fn += pair.related and not k
    return tp, fp, fn


def _rules(evidence: Evidence, kept: list[bool], knobs: Knobs) -> list[RuleQuality]:
    fps = [p for p, k in zip(evidence.pairs, kept, strict=True) if k and not p.related]
    misses = [p for p, k in zip(evidence.pairs, kept, strict=True) if p.related and not k]

    def fires(pair: LabelledPair, rule: CorrelationRuleName) -> bool:
        return pair.conditions is not None and _HOLDS[_CLASS_INDEX[pair.conditions]][rule]

    out = []
    for rule, _ in knobs.weights:
        fired = [p for p in evidence.pairs if fires(p, rule)]
        out.append(RuleQuality(
            rule=rule, support=len(fired),
            precision=_ratio(sum(p.related for p in fired), len(fired)),
            false_positive_share=_ratio(sum(fires(p, rule) for p in fps), len(fps)),
            miss_share=_ratio(sum(fires(p, rule) for p in misses), len(misses))))
    return out


def policy_patch(weights: Sequence[tuple[CorrelationRuleName, int]], min_score: int) -> str:
    """The YAML replacing ``correlation.min_score`` and ``correlation.rules``."""
    lines = ["correlation:", f"  min_score: {min_score}", "  rules:"]
    lines += [f"    - {{name: {name}, weight: {weight}}}" for name, weight in weights]
    return "\n".join(lines) + "\n"


def _f1_text(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def assess(evidence: Evidence, policy: IntelPolicy, *, window_days: int, as_of: datetime,
           source: Source, step: Callable[[], None] = _noop) -> CorrelationQualityResponse:
    """The ``correlation_quality`` answer for labelled ``evidence`` under ``policy``.

    ``step`` is called between steps of the grid search (the shell's way to stop it).
    """
    knobs = Knobs.of(policy)
    kept = kept_pairs(evidence, knobs)
    tp, fp, fn = _counted(evidence.pairs, kept)
    before = figures((tp, fp, fn))
    overall = QualityOverall(**before.model_dump(), tp=tp, fp=fp, fn=fn,
                             tn=len(evidence.pairs) - tp - fp - fn,
                             outside_lookback=sum(p.conditions is None for p in evidence.pairs))
    suggestion, reason = _suggest(evidence, knobs, policy, (tp, fp, fn), step)
    return CorrelationQualityResponse(
        window_days=window_days, as_of=as_of, source=source,
        labelled_pairs=len(evidence.pairs), skipped_pairs=evidence.skipped, overall=overall,
        rules=_rules(evidence, kept, knobs), suggestion=suggestion, reason=reason)


def _suggest(evidence: Evidence, knobs: Knobs, policy: IntelPolicy, now: Counts,
             step: Callable[[], None]) -> tuple[PolicySuggestion | None, str]:
    settings = policy.correlation_quality
    if len(evidence.pairs) < settings.min_labelled_pairs:
        return None, (f"{len(evidence.pairs)} labelled pair(s) in the window; a suggestion needs "
                      f"at least {settings.min_labelled_pairs} "
                      "(correlation_quality.min_labelled_pairs)")
    folds = settings.folds
    table = _Table(evidence, folds, knobs.max_related)
    points, per_fold = _search(table, knobs, policy, step)
    totals = [_total(c) for c in per_fold]
    chosen = _best(points, totals)
    pooled: list[Counts] = []
    for f in range(folds):
        step()
        training = [(t[0] - c[f][0], t[1] - c[f][1], t[2] - c[f][2])
                    for t, c in zip(totals, per_fold, strict=True)]
        pooled.append(per_fold[_best(points, training)][f])
    after = _total(pooled)
    before_f1, after_f1 = figures(now).f1, figures(after).f1
    pairs = len(evidence.pairs)
    if points[chosen].change[0] == 0:
        return None, (f"the current weights and min_score are the best of {len(points)} grid "
                      f"points on {pairs} labelled pairs (F1 {_f1_text(before_f1)}): nothing "
                      "to change")
    if _better(after, now) <= 0:
        return None, (f"the best grid point does not raise the {folds}-fold cross-validated "
                      f"F1 ({_f1_text(after_f1)} against {_f1_text(before_f1)} now): its gain "
                      "does not carry to pairs it was not chosen on")
    values = points[chosen].values
    weights = tuple(zip((name for name, _ in knobs.weights), values[:-1], strict=True))
    suggestion = PolicySuggestion(
        weights=dict(weights), min_score=values[-1],
        expected=QualityExpectation(before=figures(now), after=figures(after),
                                    in_sample=figures(totals[chosen])),
        folds=folds, grid_points=len(points), policy_patch=policy_patch(weights, values[-1]))
    return suggestion, (f"raises the {folds}-fold cross-validated F1 from {_f1_text(before_f1)} "
                        f"to {_f1_text(after_f1)} over {pairs} labelled pairs "
                        f"({len(points)} grid points searched)")


__all__ = ["CLASSES", "Evidence", "Knobs", "LabelledPair", "Neighbour", "Source", "assess",
           "figures", "fold_of", "kept_pairs", "order_of", "policy_patch"]
