"""The body of ``GET /v1/learning/velocity`` (:class:`~app.contracts.VelocityReport`).

The quarters are exactly :func:`~app.intel.velocity_quarters.velocity_by_quarter` rows
(what ``learning.velocity`` carries and ``incident-intel velocity --format
json`` lists); the trend is judged over them as the CLI judges it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from app.contracts import QuarterVelocity, VelocityReport
from app.intel.velocity_quarters import trend

__all__ = ["velocity_report"]


def velocity_report(rows: Sequence[QuarterVelocity], target: float,
                    as_of: datetime) -> VelocityReport:
    """Wrap the rows with the target they were judged against and their trend."""
    return VelocityReport(as_of=as_of, recurrence_target=target,
                          trend=trend([r.score for r in rows]), quarters=list(rows))
