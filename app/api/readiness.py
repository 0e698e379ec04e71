"""Liveness and readiness, the two questions an orchestrator asks.

``/livez`` answers when the event loop does: nothing else is consulted, so a
slow replica never gets the process restarted. ``/readyz`` asks the host's
:data:`ReadinessProvider` whether this replica should receive traffic, and
names what it is still waiting for. ``incident-intel serve`` is ready once its
events are loaded; the worker supplies its own provider (say, "caught up with
the input topics").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .live import LiveView

__all__ = ["Liveness", "Readiness", "ReadinessProvider", "ReadyReport", "view_readiness"]


@dataclass(frozen=True)
class Readiness:
    """What a provider answers: ready, or the conditions still unmet (one line each)."""

    ready: bool
    waiting_for: tuple[str, ...] = field(default=())

    @classmethod
    def unless(cls, **unmet: bool) -> Readiness:
        """Ready when no condition holds; ``unless(recovering=True)`` waits for it."""
        waiting = tuple(name for name, holds in unmet.items() if holds)
        return cls(ready=not waiting, waiting_for=waiting)


ReadinessProvider = Callable[[], Readiness]
"""Called on the event loop for every ``/readyz``: must return at once, never raise."""


def view_readiness(view: LiveView) -> ReadinessProvider:
    """The default provider: ready once the view says its replica has recovered."""
    return lambda: Readiness.unless(replica_recovering=not view.ready)


class Liveness(BaseModel):
    """``GET /livez``: answering at all means the event loop is alive."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    status: Literal["ok"]


class ReadyReport(BaseModel):
    """``GET /readyz``: 200 when ready, else 503 naming what it waits for."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    status: Literal["ready", "not_ready"]
    waiting_for: list[str]
