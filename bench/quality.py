"""Correlation quality of the shipped policy on simulated streams, and after a suggestion.

`python -m bench.quality [--seeds N] [--rate R] [--duration S] [--json]`

For each difficulty of the stream simulator (``stream.difficulties`` of
``policy/simulation.yml``) and each seed 1..N, a stream is generated, the
engine runs over it with the shipped policy, and what the policy keeps is
scored against the planted truth (each planted cluster and recurrence belongs
together; every other pair a rule fires on does not): precision, recall and
F1, as ``incident-intel simulate evaluate`` prints them.

Out of sample: for each seed, the suggestion is learned on the *other* seeds'
labelled pairs (their streams pooled), its YAML patch is applied to the
shipped policy, and a fresh engine under the patched policy is scored on the
held-out seed. When no suggestion is made the shipped policy is scored.

Figures are mean ± sample standard deviation [min–max] over the seeds. Nothing
is timed: the figures depend on the seeds, not on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from app.contracts import CorrelationQualityResponse
from app.intel import quality
from app.intel.engine import IntelEngine
from app.intel.periods import from_micros
from app.policy import Correlation, Policy, load_policy
from app.simulation.catalog import DIFFICULTIES, Difficulty
from app.simulation.feed import generate_stream, truth_groups

SEEDS = 10
RATE = 50.0
DURATION = 60.0


@dataclass(frozen=True)
class Run:
    """One stream: its engine's evidence, and the figures of the shipped policy."""

    seed: int
    incidents: int
    evidence: quality.Evidence
    shipped: CorrelationQualityResponse


def _stream(policy: Policy, difficulty: Difficulty, seed: int, rate: float,
            duration: float) -> tuple[IntelEngine, list[list[str]]]:
    sig = policy.intel.recurrence.thresholds.signature
    records, truth = generate_stream(seed, rate_per_s=rate, duration_s=duration,
                                     settings=policy.simulation.stream,
                                     thresholds=(sig.warn, sig.high), difficulty=difficulty)
    engine = IntelEngine(policy)
    engine.apply_all(r.value for r in records)
    return engine, truth_groups(truth)


def _scored(policy: Policy, difficulty: Difficulty, seed: int, rate: float,
            duration: float) -> tuple[IntelEngine, CorrelationQualityResponse, quality.Evidence]:
    engine, groups = _stream(policy, difficulty, seed, rate, duration)
    assert engine.watermark is not None
    as_of = from_micros(engine.watermark)
    labels = engine.truth_labels(groups)
    window = policy.intel.correlation_quality.window_days
    answer = engine.quality_of(labels, as_of, window, "planted_truth")
    return engine, answer, engine.quality_evidence(labels, as_of, window)


def patched(policy: Policy, patch: str) -> Policy:
    """``policy`` with a suggestion's YAML patch applied, validated like the file."""
    change = yaml.safe_load(patch)["correlation"]
    current = policy.intel.correlation.model_dump()
    correlation = Correlation.model_validate({**current, **change})
    return policy.model_copy(update={"intel": policy.intel.model_copy(
        update={"correlation": correlation})})


def _stats(values: list[float | None]) -> dict[str, float | None]:
    known = [v for v in values if v is not None]
    if not known:
        return {"mean": None, "sd": None, "min": None, "max": None}
    return {"mean": statistics.fmean(known),
            "sd": statistics.stdev(known) if len(known) > 1 else 0.0,
            "min": min(known), "max": max(known)}


def measure(difficulty: Difficulty, seeds: int, rate: float, duration: float,
            policy: Policy) -> dict[str, Any]:
    runs = []
    for seed in range(1, seeds + 1):
        engine, answer, evidence = _scored(policy, difficulty, seed, rate, duration)
        runs.append(Run(seed, len(engine.book.incidents), evidence, answer))
    held_out: list[CorrelationQualityResponse] = []
    suggestions: Counter[str] = Counter()
    for run in runs:
        others = quality.Evidence.combine([r.evidence for r in runs if r is not run])
        learned = quality.assess(others, policy.intel, window_days=run.shipped.window_days,
                                 as_of=run.shipped.as_of, source="planted_truth")
        applied = policy
        if learned.suggestion is not None:
            applied = patched(policy, learned.suggestion.policy_patch)
            s = learned.suggestion
            suggestions[" ".join([f"min_score {s.min_score}"]
                                 + [f"{k} {v}" for k, v in s.weights.items()])] += 1
        _, answer, _ = _scored(applied, difficulty, run.seed, rate, duration)
        held_out.append(answer)

    def figures(answers: list[CorrelationQualityResponse]) -> dict[str, Any]:
        return {name: _stats([getattr(a.overall, name) for a in answers])
                for name in ("precision", "recall", "f1")}

    return {
        "difficulty": difficulty,
        "seeds": seeds,
        "incidents": statistics.fmean(r.incidents for r in runs),
        "labelled_pairs": statistics.fmean(r.shipped.labelled_pairs for r in runs),
        "shipped": figures([r.shipped for r in runs]),
        "after_suggestion": figures(held_out),
        "suggested": sum(suggestions.values()),
        "most_suggested": suggestions.most_common(1)[0][0] if suggestions else None,
    }


def _cell(stats: dict[str, float | None]) -> str:
    if stats["mean"] is None:
        return "–"
    return f"{stats['mean']:.3f} ± {stats['sd']:.3f} [{stats['min']:.2f}–{stats['max']:.2f}]"


def report(rows: list[dict[str, Any]]) -> str:
    header = (f"{'difficulty':<10} {'incidents':>9} {'pairs':>6}  {'':<8} "
              f"{'precision':<27} {'recall':<27} {'F1':<27}")
    lines = [header]
    for row in rows:
        for label, key in (("shipped", "shipped"), ("after", "after_suggestion")):
            lead = (f"{row['difficulty']:<10} {row['incidents']:>9.1f} "
                    f"{row['labelled_pairs']:>6.1f}" if key == "shipped"
                    else f"{'':<10} {'':>9} {'':>6}")
            figures = row[key]
            lines.append(f"{lead}  {label:<8} {_cell(figures['precision']):<27} "
                         f"{_cell(figures['recall']):<27} {_cell(figures['f1']):<27}")
        lines.append(f"{'':<10} suggestion made for {row['suggested']} of {row['seeds']} "
                     f"held-out seeds; most often: {row['most_suggested'] or 'none'}")
    lines.append("(mean ± sample sd [min–max] over seeds 1..N; 'after': the suggestion learned "
                 "on the other seeds, applied, scored on the held-out seed)")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=SEEDS, help="seeds 1..N per difficulty")
    parser.add_argument("--rate", type=float, default=RATE, help="records per second")
    parser.add_argument("--duration", type=float, default=DURATION,
                        help="seconds (rate × duration records per stream)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    if args.seeds < 3:
        parser.error("--seeds: at least 3 (each suggestion is learned on the others)")
    policy = load_policy()
    rows = [measure(d, args.seeds, args.rate, args.duration, policy) for d in DIFFICULTIES]
    print(report(rows))
    if args.json:
        print(orjson.dumps(rows).decode())


if __name__ == "__main__":
    main(sys.argv[1:])
