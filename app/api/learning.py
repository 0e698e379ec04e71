"""The body of ``GET /v1/learning/velocity``: quarters, target and trend.

The quarters are exactly :func:`~app.intel.velocity_quarters.velocity_by_quarter` rows
(what ``learning.velocity`` carries and ``incident-intel velocity --format
json`` lists); the trend is judged over them as the CLI judges it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from app.contracts import QuarterVelocity, Timestamp
from app.intel.velocity_quarters import trend

__all__ = ["Trend", "VelocityReport", "velocity_report"]


class Trend(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    scored_quarters: int
    monotonically_increasing: bool | None
    strictly_increasing: bool | None


class VelocityReport(BaseModel):
    """Learning velocity per quarter as of the replica's newest event."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    as_of: Timestamp
    recurrence_target: float
    trend: Trend
    quarters: list[QuarterVelocity]


def velocity_report(rows: Sequence[QuarterVelocity], target: float,
                    as_of: datetime) -> VelocityReport:
    """Wrap the rows with the target they were judged against and their trend."""
    return VelocityReport(as_of=as_of, recurrence_target=target,
                          trend=Trend(**trend([r.score for r in rows])), quarters=list(rows))
