"""Learning velocity as it is shown: the CLI report and the digest's learning section.

Both read rows from :mod:`app.intel.velocity_quarters`; pure (no clock, no I/O)::

    report = velocity_report(book, target, first="2026-Q1", last="2026-Q4")
    text = render_markdown(report)                      # table + ASCII trend

    summary = learning_summary(velocity_by_quarter(book, target, as_of=as_of), as_of)
    lines = learning_section_markdown(summary)
    section = digest_section(book, as_of, target)   # DigestLearning, the engine's hook
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from app.contracts import DigestLearning, QuarterVelocity, format_timestamp
from app.intel.incidents import IncidentBook
from app.intel.periods import micros, quarter_start
from app.intel.velocity_quarters import (
    overall_score,
    previous_quarter,
    quarter_of,
    trend,
    velocity_by_quarter,
)

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
        "trend": trend([r.score for r in shown]).model_dump(),
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
                   target: float) -> DigestLearning | None:
    """The weekly digest's learning section, flat so each figure is one row.

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
    figures: dict[str, Any] = {}
    for name in ("incidents", "mttr_median_minutes", "detection_median_minutes",
                 "recurrence_rate", "regression_tests_added", "score"):
        figures[name] = now[name]
        figures[f"{name}_last_quarter"] = before[name]
    return DigestLearning(quarter=now["quarter"], compared_with=before["quarter"], **figures,
                          recurrence_target=target, above_target=now["above_target"])


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
