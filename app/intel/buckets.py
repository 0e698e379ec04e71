"""Root-cause buckets: incidents grouped by ``service|kind`` (or a signature prefix).

A bucket is kept when its 7-day count reaches ``min_count[7]`` or its 30-day
count ``min_count[30]``; kept buckets sort by 7-day count desc, 30-day count
desc, last_seen desc, then key.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from app.contracts import (
    OPEN_STATUSES,
    SEVERITIES,
    Bucket,
    BucketCounts,
    BucketsRequest,
    SignatureCount,
)
from app.intel.incidents import Record
from app.intel.periods import from_micros, micros, window_start
from app.policy import IntelPolicy

PUBLISHED_WINDOW_DAYS: int = BucketsRequest.model_fields["window_days"].default
"""``intel.buckets`` publishes each bucket as the ``buckets`` action lists it by default."""


def bucket_key(record: Record, policy: IntelPolicy) -> str:
    if policy.buckets.mode == "signature_prefix":
        return record.signature[: policy.buckets.signature_prefix_len]
    return f"{record.service}|{record.kind}"


def recommendations_for(kinds: list[str], open_count: int, policy: IntelPolicy) -> list[str]:
    """Open-incident warning first, then each kind's advice (policy order, no repeats)."""
    out: list[str] = [policy.buckets.open_warning] if open_count > 0 else []
    table = policy.recommendations
    for kind in kinds:
        for text in table.get(kind, table.get("default", [])):
            if text not in out:
                out.append(text)
    return out


def newest_first(records: list[Record]) -> list[Record]:
    return sorted(records, key=lambda r: (-r.started, r.incident_id))


def summarise(key: str, records: list[Record], as_of: datetime, window_days: int,
              policy: IntelPolicy) -> Bucket | None:
    """One bucket from its incidents started within the largest window before ``as_of``.

    Counts are over the fixed 7- and 30-day windows; the details (open count,
    services, kinds, signatures, severities, samples) over ``window_days``.
    ``None`` when no incident of the bucket started in any of those windows.
    """
    end = micros(as_of)
    # One pass: the keyed stream summarises a bucket for every incident it changes.
    after_7, after_30, after_detail = (window_start(end, d) for d in (7, 30, window_days))
    count_7d = count_30d = 0
    last: int | None = None
    inside: list[Record] = []
    for r in records:
        started = r.started
        if started > end:
            continue
        if last is None or started > last:
            last = started
        if started > after_30:
            count_30d += 1
            if started > after_7:
                count_7d += 1
        if started > after_detail:
            inside.append(r)
    if last is None or not (count_7d or count_30d or inside):
        return None
    detail = newest_first(inside)
    open_count = sum(1 for r in detail if r.status in OPEN_STATUSES)
    kinds = sorted({r.kind for r in detail})
    sig_counts = Counter(r.signature[:8] for r in detail)
    top_sigs = sorted(sig_counts.items(), key=lambda kv: (-kv[1], kv[0]))
    severities = Counter(r.severity for r in detail)
    return Bucket(
        bucket_key=key,
        counts=BucketCounts(count_7d=count_7d, count_30d=count_30d, open=open_count),
        last_seen=from_micros(last),
        services=sorted({r.service for r in detail}),
        kinds=kinds,
        top_signatures=[SignatureCount(signature=p, count=c)
                        for p, c in top_sigs[: policy.buckets.top_signatures]],
        severity_mix={s: severities.get(s, 0) for s in SEVERITIES},
        sample_incidents=[r.incident_id for r in detail[: policy.buckets.sample_size]],
        recommendations=recommendations_for(kinds, open_count, policy),
    )


def kept(bucket: Bucket, policy: IntelPolicy) -> bool:
    counts = {7: bucket.counts.count_7d, 30: bucket.counts.count_30d}
    return any(counts.get(days, 0) >= least for days, least in policy.buckets.min_count.items())


def ranked(buckets: list[Bucket], policy: IntelPolicy) -> list[Bucket]:
    """Kept buckets in published order."""
    out = [b for b in buckets if kept(b, policy)]
    out.sort(key=lambda b: (-b.counts.count_7d, -b.counts.count_30d, -b.last_seen.timestamp(),
                            b.bucket_key))
    return out


def published(key: str, records: list[Record], as_of: datetime,
              policy: IntelPolicy) -> Bucket | None:
    """The ``intel.buckets`` value of one bucket at ``as_of``, given its incidents started
    in the published window: as the ``buckets`` action (default window, no service
    filter) lists it, or ``None`` when that action would not list it."""
    summary = summarise(key, records, as_of, PUBLISHED_WINDOW_DAYS, policy) if records else None
    return summary if summary is not None and kept(summary, policy) else None
