"""The checkpoint: the one place that says in which order a writer's work becomes final.

Every writer of the worker — the data path's cycle, the digest timer, a note
the API appends — sends its records through its own :class:`Checkpoint`.
The checkpoint keeps the acknowledgements of the records *it* sent and the
input offsets they cover, and :meth:`Checkpoint.commit` is the only place
that orders the three steps:

1. **flush**: wait until every record this checkpoint sent is acknowledged
   by the broker (a failed send raises :class:`DeliveryFailed` and nothing
   below happens);
2. **mark applied**: the covered offsets are done (the data path's positions
   move, ``/metrics`` and the health probe see them);
3. **commit**: the consumer group commits the owned input offsets.

A crash anywhere before step 3 leaves the input uncommitted: it is read again
and the same records are sent again under the same deterministic ids. No
list of pending sends is shared between writers, so one writer's commit can
neither return before its own records are acknowledged nor take another's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from app.stream.emitter import Emitter, Outgoing, cloud_event_time

TP = tuple[str, int]
"""(real topic name, partition)."""


class DeliveryFailed(Exception):
    """A record of this checkpoint was not acknowledged by the broker."""


class Checkpoint:
    """One writer's records in flight and the input offsets they cover."""

    def __init__(self, emitter: Emitter, *,
                 applied: Callable[[Mapping[TP, int]], None] | None = None,
                 commit: Callable[[Mapping[TP, int]], Awaitable[bool]] | None = None) -> None:
        self.emitter = emitter
        self._applied = applied
        self._commit = commit
        self._pending: list[asyncio.Future[Any]] = []
        self._covers: dict[TP, int] = {}
        self._offsets: dict[TP, int] = {}
        self._time = cloud_event_time()


    async def send(self, record: Outgoing) -> None:
        await self.send_all((record,))

    async def send_all(self, records: Iterable[Outgoing]) -> None:
        self._pending += await self.emitter.send_all(list(records), self._time)

    def cover(self, positions: Mapping[TP, int], offsets: Mapping[TP, int]) -> None:
        """The read positions these records cover, and the owned offsets to commit."""
        self._covers.update(positions)
        self._offsets.update(offsets)

    async def flush(self) -> None:
        """Step 1 alone: wait for this checkpoint's own acknowledgements."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        results = await asyncio.gather(*pending, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise DeliveryFailed(f"{len(failed)} of {len(results)} records were not "
                                 f"acknowledged: {type(failed[0]).__name__}: {failed[0]}")

    async def commit(self) -> bool:
        """Flush, then mark applied, then commit; returns whether offsets were committed."""
        await self.flush()
        covers, self._covers = self._covers, {}
        offsets, self._offsets = self._offsets, {}
        if covers and self._applied is not None:
            self._applied(covers)
        if offsets and self._commit is not None:
            return await self._commit(offsets)
        return False
