"""Calendar arithmetic: ISO weeks, quarters, day numbers and windows (docs/architecture.md §4)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

_WEEK = re.compile(r"^([0-9]{4})-W([0-9]{2})$")
_QUARTER = re.compile(r"^([0-9]{4})-Q([1-4])$")
"""ASCII digits only: ``\\d`` would also take Arabic-Indic or full-width digits, giving
one week several spellings (and several dedupe keys and file names)."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def week_label(moment: datetime | date) -> str:
    """``YYYY-Www`` of the ISO week holding ``moment`` (2026-12-31 is ``2026-W53``)."""
    year, week, _ = moment.isocalendar()
    return f"{year:04d}-W{week:02d}"


def week_start(label: str) -> datetime:
    """Monday 00:00 UTC of an ISO week label; ``ValueError`` when there is no such week
    (or its end is past the last representable day, as for ``9999-W52``)."""
    match = _WEEK.fullmatch(label)
    if not match:
        raise ValueError(f"{label!r} is not of the form YYYY-Www")
    year, week = int(match.group(1)), int(match.group(2))
    try:
        monday = date.fromisocalendar(year, week, 1)
        monday + timedelta(days=7)
    except (ValueError, OverflowError):
        raise ValueError(f"{label!r} does not exist (no such ISO week)") from None
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC)


def canonical_week(label: str) -> str:
    """The label rebuilt from the week it parses to: what keys and file names are made of."""
    return week_label(week_start(label))


def week_end(label: str) -> datetime:
    """Monday 00:00 UTC of the following week: the digest's ``as_of``."""
    return week_start(label) + timedelta(days=7)


def last_complete_week(as_of: datetime) -> str:
    """The last ISO week that ended at or before ``as_of``."""
    return week_label(as_of - timedelta(days=7))


def quarter_label(moment: datetime) -> str:
    """``YYYY-Qn`` of the calendar quarter holding ``moment``."""
    return f"{moment.year}-Q{(moment.month - 1) // 3 + 1}"


def quarter_start(label: str) -> datetime:
    match = _QUARTER.match(label)
    if not match:
        raise ValueError(f"quarter {label!r} is not of the form YYYY-Qn")
    return datetime(int(match.group(1)), 3 * int(match.group(2)) - 2, 1, tzinfo=UTC)


def next_quarter(label: str) -> str:
    start = quarter_start(label)
    month = start.month + 3
    return quarter_label(start.replace(year=start.year + (month > 12), month=(month - 1) % 12 + 1))


MINUTE = 60_000_000
DAY = 86_400_000_000


def micros(moment: datetime) -> int:
    """Microseconds since the epoch: the engine's exact, cheap-to-compare time unit."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def window_start(as_of: int, days: int) -> int:
    """Exclusive lower bound of an N-day window ending at ``as_of`` (inclusive)."""
    return as_of - days * DAY


def in_window(started: int, as_of: int, days: int) -> bool:
    """``as_of - days < started <= as_of`` (docs/architecture.md §4)."""
    return window_start(as_of, days) < started <= as_of
