"""Automatic follow-ups for buckets whose recurrence turned high.

A bucket is *high* when, in the 7- or the 30-day window, its count reaches the
kind ``high`` threshold or one of its signatures reaches the signature ``high``
threshold (*warn* likewise with the ``warn`` thresholds; used when
``only_when_high`` is off). Each such bucket gets one follow-up per ISO week,
aimed at its most recent open incident; the dedupe key
``{prefix}:{week}:{bucket}`` and the due date depend only on the week, so
re-running a digest is idempotent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container
from datetime import datetime, timedelta

from app.contracts import (
    OPEN_STATUSES,
    FollowUp,
    FollowUpMeta,
    FollowUpOutcome,
    FollowUpSkip,
)
from app.intel.buckets import newest_first
from app.intel.incidents import Record
from app.intel.levels import level
from app.intel.periods import in_window, micros
from app.policy import IntelPolicy

_LEVELS = ("none", "warn", "high")


def heat(records: list[Record], as_of: int, policy: IntelPolicy) -> str:
    """``none | warn | high`` of a bucket from its incidents, over the 7- and 30-day windows."""
    thresholds = policy.recurrence.thresholds
    worst = "none"
    for days in (7, 30):
        inside = [r for r in records if in_window(r.started, as_of, days)]
        candidates = [level(len(inside), thresholds.kind)]
        candidates += [level(c, thresholds.signature)
                       for c in Counter(r.signature for r in inside).values()]
        worst = max([worst, *candidates], key=_LEVELS.index)
    return worst


def dedupe_key(week: str, bucket: str, policy: IntelPolicy) -> str:
    return f"{policy.autofollowups.dedupe_key_prefix}:{week}:{bucket}"


def plan(buckets: dict[str, list[Record]], week: str, week_end: datetime,
         emitted: Container[str], policy: IntelPolicy) -> FollowUpOutcome:
    """Follow-ups for one digest week.

    ``buckets`` maps each bucket key to its incidents started in the 30 days
    before ``week_end`` (status as known now); ``emitted`` holds dedupe keys
    already sent, which are skipped as ``already_exists``.
    """
    cfg = policy.autofollowups
    if not cfg.enabled:
        return FollowUpOutcome(enabled=False, created=[], skipped=[])
    wanted = ("high",) if cfg.only_when_high else ("warn", "high")
    end = micros(week_end) - 1  # the week is [Monday W, Monday W+1)
    created: list[FollowUp] = []
    skipped: list[FollowUpSkip] = []
    for key in sorted(buckets):
        records = buckets[key]
        if heat(records, end, policy) not in wanted:
            continue
        dkey = dedupe_key(week, key, policy)
        if dkey in emitted:
            skipped.append(FollowUpSkip(bucket_key=key, dedupe_key=dkey, reason="already_exists"))
            continue
        open_ones = [r for r in newest_first(records) if r.status in OPEN_STATUSES]
        if not open_ones:
            skipped.append(FollowUpSkip(bucket_key=key, dedupe_key=dkey,
                                        reason="no_open_incident"))
            continue
        created.append(_followup(key, records, open_ones[0], week, week_end, end, policy))
    return FollowUpOutcome(enabled=True, created=created, skipped=skipped)


def _followup(key: str, records: list[Record], target: Record, week: str, week_end: datetime,
              end: int, policy: IntelPolicy) -> FollowUp:
    """The follow-up of one bucket, counted over the windows ending at ``end``."""
    cfg = policy.autofollowups
    count_7d = sum(1 for r in records if in_window(r.started, end, 7))
    count_30d = sum(1 for r in records if in_window(r.started, end, 30))
    fields = {
        "bucket": key, "count_7d": count_7d, "count_30d": count_30d, "week": week,
        "kinds": ",".join(sorted({r.kind for r in records})),
        "services": ",".join(sorted({r.service for r in records})),
    }
    return FollowUp(
        incident_id=target.incident_id,
        message=cfg.message_template.format(**fields),
        meta=FollowUpMeta(
            title=cfg.title_template.format(**fields),
            owner=cfg.owner,
            priority=cfg.priority,
            due_date=(week_end + timedelta(days=cfg.due_days)).date().isoformat(),
            dedupe_key=dedupe_key(week, key, policy),
            bucket_key=key,
            count_7d=count_7d,
            count_30d=count_30d,
        ),
    )
