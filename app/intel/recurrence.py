"""Recurrence: how often a signature, kind or service recurred in a window.

Counts are over incidents whose ``started_at`` lies in the window
``(as_of - N days, as_of]``; each key is classified ``none | warn | high`` by
the policy thresholds of its type.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import get_args

from app.contracts import (
    FindingKeyType,
    KeyCount,
    KeyType,
    LabelledCount,
    Level,
    RecurrenceFinding,
    RecurrenceResponse,
    RecurrenceUpdate,
)
from app.intel.incidents import Record
from app.intel.levels import level
from app.intel.periods import in_window
from app.policy import IntelPolicy

KEY_TYPES: tuple[KeyType, ...] = get_args(KeyType)
LEVELS: tuple[Level, ...] = get_args(Level)
"""Least to most alarming."""
FINDING_KEY_TYPES: tuple[FindingKeyType, ...] = get_args(FindingKeyType)
Labeller = Callable[[KeyType, str], str]
"""The label of a key (:func:`app.intel.labels.key_label` over the engine's names)."""


def split_key(key: str) -> tuple[KeyType, str]:
    """``<type>:<value>`` → its type and value; an unknown type is a ``ValueError``."""
    key_type, value = key.split(":", 1)
    for known in KEY_TYPES:
        if key_type == known:
            return known, value
    raise ValueError(f"{key!r}: unknown recurrence key type {key_type!r}")


def key_of(record: Record, key_type: KeyType) -> str:
    if key_type == "signature":
        return record.signature
    return record.kind if key_type == "kind" else record.service


def recurrence_keys(record: Record) -> list[str]:
    """The ``intel.recurrence`` keys an incident counts towards."""
    return [f"{t}:{key_of(record, t)}" for t in KEY_TYPES]


def top(counter: Counter[str], n: int) -> list[KeyCount]:
    """Count desc, then key; at most ``n``."""
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    return [KeyCount(key=k, count=c) for k, c in ranked[:n]]


def _most_common(values: Iterable[str]) -> str:
    counts = Counter(values)
    return min(counts, key=lambda v: (-counts[v], v)) if counts else ""


def recommendation(key_type: str, key: str, count: int, records: list[Record],
                   policy: IntelPolicy) -> str:
    """Render the policy template; ambiguous fields take the most common value."""
    templates = policy.recurrence.templates
    if key_type == "signature":
        template = templates.signature
    else:
        template = templates.by_kind.get(key, templates.kind)
    return template.format(
        sig=_most_common(r.signature for r in records)[:8],
        kind=_most_common(r.kind for r in records),
        service=_most_common(r.service for r in records),
        count=count,
    )


def findings(records: list[Record], policy: IntelPolicy, label: Labeller) -> tuple[
    list[RecurrenceFinding], list[RecurrenceFinding]
]:
    """High and warn signatures and kinds among ``records`` (one window's incidents)."""
    groups: dict[tuple[FindingKeyType, str], list[Record]] = {}
    for record in records:
        for key_type in FINDING_KEY_TYPES:
            groups.setdefault((key_type, key_of(record, key_type)), []).append(record)
    high: list[RecurrenceFinding] = []
    warn: list[RecurrenceFinding] = []
    for (key_type, key), members in groups.items():
        count = len(members)
        lvl = level(count, policy.recurrence.thresholds.for_type(key_type))
        if lvl == "high":
            text = recommendation(key_type, key, count, members, policy)
            high.append(RecurrenceFinding(type=key_type, key=key, label=label(key_type, key),
                                          count=count, level="high", recommendation=text))
        elif lvl == "warn":
            warn.append(RecurrenceFinding(type=key_type, key=key, label=label(key_type, key),
                                          count=count, level="warn"))
    order = lambda f: (-f.count, f.type, f.key)  # noqa: E731
    return sorted(high, key=order), sorted(warn, key=order)


def tally(records: Iterable[Record]) -> dict[KeyType, Counter[str]]:
    """Incidents per signature, kind and service."""
    counts: dict[KeyType, Counter[str]] = {t: Counter() for t in KEY_TYPES}
    for record in records:
        for key_type in KEY_TYPES:
            counts[key_type][key_of(record, key_type)] += 1
    return counts


@dataclass(frozen=True, slots=True)
class KeyRow:
    """One key of a window with its count and level; ``label`` when someone asked for it."""

    type: KeyType
    key: str
    count: int
    level: Level
    label: str = ""


def ranked(counts: dict[KeyType, Counter[str]], policy: IntelPolicy) -> list[KeyRow]:
    """Every key of a window's :func:`tally`, the most alarming first: level (high, warn,
    none), then count desc, then signature, kind, service, then key."""
    rows = [KeyRow(key_type, key, count,
                   level(count, policy.recurrence.thresholds.for_type(key_type)))
            for key_type in KEY_TYPES for key, count in counts[key_type].items()]
    rows.sort(key=lambda r: (-LEVELS.index(r.level), -r.count, KEY_TYPES.index(r.type), r.key))
    return rows


def report(records: list[Record], as_of: datetime, window_days: int,
           policy: IntelPolicy, label: Labeller,
           counts: dict[KeyType, Counter[str]] | None = None) -> RecurrenceResponse:
    """The ``recurrence`` action over one window's incidents (``counts``: their
    :func:`tally`, when the caller already has it)."""
    n = policy.recurrence.top_n
    high, warn = findings(records, policy, label)
    counts = tally(records) if counts is None else counts
    return RecurrenceResponse(
        as_of=as_of,
        window_days=window_days,
        total_incidents=len(records),
        top_signatures=[LabelledCount(key=k.key, label=label("signature", k.key), count=k.count)
                        for k in top(counts["signature"], n)],
        top_kinds=top(counts["kind"], n),
        top_services=top(counts["service"], n),
        high_recurrence=high,
        warn_recurrence=warn,
    )


def update(key_type: KeyType, key: str, label: str, as_of: datetime, count_7d: int,
           count_30d: int, policy: IntelPolicy) -> RecurrenceUpdate:
    """An ``intel.recurrence`` record; its id is a hash of what it says."""
    threshold = policy.recurrence.thresholds.for_type(key_type)
    lvl = max(level(count_7d, threshold), level(count_30d, threshold), key=LEVELS.index)
    ident = hashlib.sha256(
        f"{key_type}:{key}|{label}|{count_7d}|{count_30d}|{lvl}|{as_of.isoformat()}".encode()
    ).hexdigest()[:20]
    return RecurrenceUpdate(update_id=f"rec:{ident}", type=key_type, key=key, label=label,
                            as_of=as_of, count_7d=count_7d, count_30d=count_30d, level=lvl)


def counts_at(started: Iterable[int], as_of: int) -> tuple[int, int]:
    """Counts in the 7- and 30-day windows ending at ``as_of`` of the given start times."""
    count_7d = count_30d = 0
    for value in started:
        if in_window(value, as_of, 30):
            count_30d += 1
            if in_window(value, as_of, 7):
                count_7d += 1
    return count_7d, count_30d
