"""The dashboard's inline SVG charts: the learning-velocity trend and 30-day sparklines.

Drawn by hand rather than with matplotlib (:mod:`app.velocity_chart`): the
dashboard re-renders every refresh, must work offline with no script, and only
needs small panels. Both charts share one way of opening an image (role, size,
a text equivalent for screen readers) and of writing numbers, so the same data
always gives the same bytes.

- :func:`trend_svg`: bars are the score per quarter (red when the quarter's
  recurrence rate is above the target), the line is the recurrence rate, the
  dashed line the target.
- :func:`sparkline_svg`: one bar per day (the engine's daily counts,
  :mod:`app.intel.trends`), oldest left, each chart scaled to its own peak; a
  shaded band marks the last seven days.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from app.contracts import QuarterVelocity
from app.intel.velocity_report import two_decimals

__all__ = ["sparkline_svg", "trend_svg"]

WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 34, 52
SCORE_COLOR = "#2f6db3"
FLAG_COLOR = "#c0392b"
RATE_COLOR = "#d35400"
TARGET_COLOR = "#7f8c8d"
SPARK_DAY = 4
"""Horizontal pixels per day of a sparkline (a 3-pixel bar and a 1-pixel gap)."""
SPARK_HEIGHT = 24
SPARK_RECENT_DAYS = 7
SPARK_COLOR = "#1f4e8c"
SPARK_RECENT_FILL = "#e3e9f2"
SPARK_BASE_COLOR = "#8792a2"


def _y(fraction: float) -> float:
    """Vertical position of a value on the shared 0..1 axis."""
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - min(max(fraction, 0.0), 1.0))


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def _open(attributes: str, description: str) -> str:
    """An ``<svg>`` start tag: an image with a text equivalent, no script, no references."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" {attributes} role="img" '
            f'aria-label="{escape(description)}">')


def _axis() -> list[str]:
    parts = []
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _fmt(_y(tick))
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" '
                     'stroke="#e3e6ea" stroke-width="1"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y}" text-anchor="end" '
                     f'dominant-baseline="middle" font-size="11" fill="#555">{tick:.2f}</text>')
    return parts


def _legend(target: float) -> list[str]:
    items = [(SCORE_COLOR, "score"), (FLAG_COLOR, "score, recurrence above target"),
             (RATE_COLOR, "recurrence rate"),
             (TARGET_COLOR, f"target {escape(two_decimals(target * 100))}%")]
    parts, x = [], LEFT
    for color, label in items:
        parts.append(f'<rect x="{x}" y="10" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{x + 16}" y="20" font-size="12" fill="#333">{label}</text>')
        x += 30 + 6 * len(label)
    return parts


def trend_svg(rows: Sequence[QuarterVelocity], target: float) -> str:
    """An ``<svg>`` element (no script, no external reference) for the rows."""
    head = _open(f'id="velocity-chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
                 f'style="max-width:{WIDTH}px"',
                 "Learning-velocity score and recurrence rate per quarter")
    if not rows:
        return (head + f'<text x="{WIDTH // 2}" y="{HEIGHT // 2}" text-anchor="middle" '
                'font-size="14" fill="#555">No quarters yet</text></svg>')
    parts = [head, *_axis(), *_legend(target)]
    slot = (WIDTH - LEFT - RIGHT) / len(rows)
    bar = min(56.0, slot * 0.6)
    base = _y(0.0)
    rate_points = []
    for i, row in enumerate(rows):
        centre = LEFT + slot * (i + 0.5)
        quarter = escape(row.quarter)
        if row.score is not None:
            top = _y(row.score)
            color = FLAG_COLOR if row.above_target else SCORE_COLOR
            parts.append(f'<rect class="score-bar" x="{_fmt(centre - bar / 2)}" '
                         f'y="{_fmt(top)}" width="{_fmt(bar)}" height="{_fmt(base - top)}" '
                         f'fill="{color}"><title>{quarter}: score '
                         f'{escape(two_decimals(row.score))}</title></rect>')
            parts.append(f'<text x="{_fmt(centre)}" y="{_fmt(top - 4)}" text-anchor="middle" '
                         f'font-size="11" font-weight="bold">'
                         f'{escape(two_decimals(row.score))}</text>')
        else:
            parts.append(f'<text x="{_fmt(centre)}" y="{_fmt(base - 4)}" '
                         'text-anchor="middle" font-size="10" fill="#777">no score</text>')
        if row.recurrence_rate is not None:
            rate_points.append((centre, _y(row.recurrence_rate)))
        parts.append(f'<text x="{_fmt(centre)}" y="{_fmt(base + 16)}" text-anchor="middle" '
                     f'font-size="11">{quarter}</text>')
        parts.append(f'<text x="{_fmt(centre)}" y="{_fmt(base + 30)}" text-anchor="middle" '
                     f'font-size="10" fill="#666">n={row.incidents}</text>')
    target_y = _fmt(_y(target))
    parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{target_y}" y2="{target_y}" '
                 f'stroke="{TARGET_COLOR}" stroke-width="1.5" stroke-dasharray="6 4"/>')
    if rate_points:
        points = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in rate_points)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{RATE_COLOR}" '
                     'stroke-width="2"/>')
        parts += [f'<circle cx="{_fmt(x)}" cy="{_fmt(y)}" r="3.5" fill="{RATE_COLOR}"/>'
                  for x, y in rate_points]
    parts.append("</svg>")
    return "".join(parts)


def sparkline_svg(counts: Sequence[int], description: str) -> str:
    """Daily counts as an ``<svg>`` of ``SPARK_DAY`` pixels per day; ``description`` is
    its text equivalent (also shown on hover)."""
    days = len(counts)
    width, height = SPARK_DAY * days, SPARK_HEIGHT
    peak = max(counts, default=0) or 1
    recent = min(SPARK_RECENT_DAYS, days)
    parts = [_open(f'class="spark" viewBox="0 0 {width} {height}" width="{width}" '
                   f'height="{height}"', description),
             f"<title>{escape(description)}</title>",
             f'<rect x="{SPARK_DAY * (days - recent)}" y="0" width="{SPARK_DAY * recent}" '
             f'height="{height}" fill="{SPARK_RECENT_FILL}"/>']
    for day, count in enumerate(counts):
        if count:
            bar = max(2.0, (height - 2) * count / peak)
            parts.append(f'<rect x="{SPARK_DAY * day}" y="{_fmt(height - 1 - bar)}" '
                         f'width="{SPARK_DAY - 1}" height="{_fmt(bar)}" fill="{SPARK_COLOR}"/>')
    parts.append(f'<line x1="0" x2="{width}" y1="{height - 0.5}" y2="{height - 0.5}" '
                 f'stroke="{SPARK_BASE_COLOR}" stroke-width="1"/></svg>')
    return "".join(parts)
