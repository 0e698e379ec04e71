"""The learning-velocity trend as a picture (PNG or SVG), drawn with matplotlib.

An edge module, not part of the pure engine: it only turns the rows of
:func:`app.intel.velocity_report.velocity_report` into image bytes. It uses the Agg
canvas directly (no pyplot, no global figure state), and pins the metadata, the
SVG id salt and the margins (no layout engine) so the same rows give the same
bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any, Literal

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from app.intel.velocity_report import two_decimals

SCORE_COLOR = "#2f6db3"
FLAG_COLOR = "#c0392b"
MEAN_COLOR = "#7f8c8d"
MEDIAN_COLOR = "#16a085"
P90_COLOR = "#d35400"


def _value(v: float | None) -> float:
    return math.nan if v is None else v


def _unit(rows: Sequence[dict[str, Any]], metric: str) -> tuple[str, float]:
    """Hours when a panel's durations run past three hours, so axis labels stay short."""
    largest = max((row[metric][f"{stat}_minutes"] or 0.0
                   for row in rows for stat in ("mean", "median", "p90")), default=0.0)
    return ("hours", 60.0) if largest > 180 else ("minutes", 1.0)


def _incidents(count: int) -> str:
    return "1 incident" if count == 1 else f"{count} incidents"


def _quarter_axis(ax: Any, rows: Sequence[dict[str, Any]], labels: bool) -> None:
    """Shared x axis: one slot per quarter; labels only on the bottom panel."""
    x = list(range(len(rows)))
    ax.set_xlim(-0.5, len(rows) - 0.5)
    if labels:
        ax.set_xticks(x, [f"{row['quarter']}\n{_incidents(row['incidents'])}" for row in rows],
                      rotation=30 if len(rows) > 16 else 0)
    else:
        ax.set_xticks(x, [""] * len(rows))
    ax.grid(axis="y", alpha=0.3)


def _duration_panel(ax: Any, rows: Sequence[dict[str, Any]], metric: str, title: str,
                    bottom: bool) -> None:
    unit, divisor = _unit(rows, metric)
    x = list(range(len(rows)))
    tops = [0.0]
    for stat, color, style in (
        ("median", MEDIAN_COLOR, "-"),
        ("mean", MEAN_COLOR, "--"),
        ("p90", P90_COLOR, ":"),
    ):
        ys = [_value(row[metric][f"{stat}_minutes"]) / divisor for row in rows]
        tops += [y for y in ys if not math.isnan(y)]
        ax.plot(x, ys, style, color=color, marker="o", linewidth=2, markersize=5, label=stat)
    for i, row in enumerate(rows):
        ax.annotate(f"n={row[metric]['count']}", (i, 0), xytext=(0, 3),
                    textcoords="offset points", ha="center", fontsize=7, color="#666666")
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_ylabel(unit)
    ax.set_ylim(0, max(tops) * 1.3 or 1.0)
    ax.legend(fontsize=8, loc="upper right", ncols=3, frameon=False)
    _quarter_axis(ax, rows, bottom)


def _score_panel(ax: Any, rows: Sequence[dict[str, Any]], target: float) -> None:
    x = list(range(len(rows)))
    heights = [0.0 if row["score"] is None else row["score"] for row in rows]
    colors = [FLAG_COLOR if row["above_target"] else SCORE_COLOR for row in rows]
    ax.bar(x, heights, color=colors, width=0.6)
    for i, row in enumerate(rows):
        label = "no score" if row["score"] is None else two_decimals(row["score"])
        ax.annotate(label, (i, heights[i]), xytext=(0, 3), textcoords="offset points",
                    ha="center", fontsize=10, fontweight="bold")
        if row["recurrence_rate"] is not None:
            ax.annotate(f"rec. {row['recurrence_rate'] * 100:.0f}%", (i, 0), xytext=(0, 4),
                        textcoords="offset points", ha="center", fontsize=8,
                        color="white" if row["score"] else "#333333")
    ax.set_ylim(0, 1.15)
    ax.set_yticks([0.0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("score (0 to 1)")
    ax.set_title(
        "Learning-velocity score per quarter; bar red when recurrence (rec.) is above the "
        f"{target * 100:.0f}% target",
        fontsize=11, loc="left",
    )
    _quarter_axis(ax, rows, False)


def render_chart(report: dict[str, Any], fmt: Literal["png", "svg"]) -> bytes:
    """The score per quarter on top; MTTR and detection latency below it, same quarters."""
    rows = report["quarters"]
    width = min(24.0, max(10.0, 1.0 * len(rows) + 2))
    # Fixed margins, not a layout engine: constrained layout is not reproducible
    # byte for byte from one render to the next.
    fig = Figure(figsize=(width, 10), dpi=100)
    fig.subplots_adjust(left=0.8 / width, right=1 - 0.3 / width, top=0.92, bottom=0.08,
                        hspace=0.3)
    FigureCanvasAgg(fig)
    if not rows:
        fig.text(0.5, 0.5, "No quarters to show", ha="center", va="center", fontsize=16)
    else:
        score_ax, mttr_ax, latency_ax = fig.subplots(
            3, 1, sharex=True, gridspec_kw={"height_ratios": [1.3, 1, 1]})
        _score_panel(score_ax, rows, report["recurrence_target"])
        _duration_panel(mttr_ax, rows, "mttr",
                        "MTTR: resolved incidents, by the quarter they started", False)
        _duration_panel(latency_ax, rows, "detection_latency",
                        "Detection latency, by the quarter the incident started", True)
    fig.suptitle("Learning velocity", fontsize=14, fontweight="bold")
    out = io.BytesIO()
    if fmt == "svg":
        with matplotlib.rc_context({"svg.hashsalt": "learning-velocity"}):
            fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    else:
        fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()
