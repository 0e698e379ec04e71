"""Event time: what an event may do to the watermark, and how long incidents stay.

The watermark (``as_of`` of the live answers) is the newest ``occurred_at``
applied. Two rules keep one bad clock from breaking it, identically in the
stream and in the offline tool:

- an event more than ``max_future_skew_minutes`` ahead of the clock that
  received it is refused (the stream dead-letters it; the tool reports it);
- incidents are kept while ``started_at`` is at or after the retention
  cutoff: the start of the watermark's day minus ``retention_days``. The
  cutoff moves once a day, so where a worker pruned along the way and where
  the tool prunes once at the end give the same set.

When no input arrives for ``time.idle_after_seconds`` a worker advances the
watermark on its wall clock (:func:`idle_as_of`), since a quiet period is
information too; the offline tool given that ``--as-of`` advances to it alike.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from app.intel.periods import DAY, MINUTE
from app.policy import IntelPolicy


def future_skew_error(occurred_at: datetime, received_at: datetime,
                      policy: IntelPolicy) -> str | None:
    """Why an event is too far ahead of ``received_at`` to be applied, else ``None``."""
    limit = timedelta(minutes=policy.max_future_skew_minutes)
    ahead = occurred_at - received_at
    if ahead <= limit:
        return None
    return (f"occurred_at {occurred_at.isoformat()} is {_duration(ahead)} ahead of the "
            f"receiving clock ({received_at.isoformat()}); max_future_skew_minutes is "
            f"{policy.max_future_skew_minutes}")


def retention_cutoff(as_of: int, policy: IntelPolicy) -> int:
    """Incidents that started before this (microseconds) are forgotten at ``as_of``."""
    return (as_of // DAY) * DAY - policy.retention_days * DAY


def idle_as_of(wall: int, policy: IntelPolicy) -> int:
    """Where event time stands at wall-clock time ``wall`` (microseconds) once no input
    has arrived for a while: the whole minute before it, less ``time.allowed_lateness_minutes``
    (events still on their way are late when they arrive, and applied as late events)."""
    return (wall // MINUTE) * MINUTE - policy.time.allowed_lateness_minutes * MINUTE


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"

