"""Responders' link verdicts through the API: the event, and where it is published.

``POST /v1/feedback/links`` turns a responder's verdict on a pair of incidents
into an ``incident.linked`` event and publishes it to ``learning.events``,
answering only once it is durably recorded. The API does not know where that
is: its host hands it a :class:`LinkPublisher`. The worker's publishes to the
broker and returns on its acknowledgement; ``incident-intel serve`` (no
broker) appends to a JSON-lines file with :class:`JsonlLinkPublisher`, the
format ``--events`` reads. A publisher that cannot record the verdict raises
:class:`PublishUnavailable`, which the route answers with 503 and
``Retry-After``.

The verdict reaches the answers the way every input does: the replica reads it
back from the topic and applies it by the input rule (newest ``(occurred_at,
event_id)`` per pair), so a retried call, even with a new id, converges.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from app.contracts import LinkFeedbackRequest, LinkVerdict
from app.intel.engine import IntelEngine

__all__ = ["JsonlLinkPublisher", "LinkPublisher", "PublishUnavailable", "unknown_incidents",
           "verdict_event"]

TOPIC = "learning.events"
RETRY_AFTER_SECONDS = 5


class PublishUnavailable(Exception):
    """The verdict could not be recorded now (broker unreachable, no acknowledgement,
    file not writable); the same call may succeed later."""

    def __init__(self, message: str, retry_after_seconds: int = RETRY_AFTER_SECONDS) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


@runtime_checkable
class LinkPublisher(Protocol):
    """Where the API's verdicts go: the worker's broker, or ``serve``'s file."""

    async def publish_link(self, event: LinkVerdict) -> None:
        """Return once ``event`` is durably recorded on ``learning.events`` (keyed by its
        ``incident_id``); raise :class:`PublishUnavailable` when it cannot be."""
        ...


def verdict_event(call: LinkFeedbackRequest, role: str, now: datetime,
                  new_id: Callable[[], str] = lambda: f"link-{uuid.uuid4().hex}") -> LinkVerdict:
    """The ``incident.linked`` event of a call: the caller's id and time, else new ones."""
    return LinkVerdict(event_id=call.event_id or new_id(), type="incident.linked",
                       occurred_at=call.occurred_at or now, incident_id=call.incident_id,
                       related_incident_id=call.related_incident_id, verdict=call.verdict,
                       by=call.by or role)


def unknown_incidents(ids: tuple[str, ...], engine: IntelEngine, as_of: datetime) -> list[str]:
    """Those of ``ids`` the replica does not know (a read: :class:`~app.api.live.Query`)."""
    return [i for i in ids if i not in engine.book.incidents]


class JsonlLinkPublisher:
    """Appends each verdict as one JSON line to ``path``, fsynced before it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    async def publish_link(self, event: LinkVerdict) -> None:
        line = event.model_dump_json().encode() + b"\n"
        async with self._lock:  # whole lines, one writer at a time
            try:
                await asyncio.to_thread(self._append, line)
            except OSError as exc:
                raise PublishUnavailable(f"cannot append to {self.path}: "
                                         f"{exc.strerror or exc}") from None
