"""Batches: events taken together, processed per partition, each key written once.

Faust's cost is per event and per table write (DESIGN.md §6), so every agent
takes up to ``BATCH_SIZE`` events at a time (``stream.take_events``), folds them
per key in memory and writes each touched table key once. One agent instance
reads all partitions assigned to the worker, so a batch may mix partitions;
a table write lands in the changelog partition of the *current event*, so each
partition's keys are written while one of that partition's events is current
(:func:`in_partition`). That keeps every key in the partition that owns it, so
recovery and rebalancing give it to the right worker.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import orjson
from faust.streams import _current_event
from faust.types import EventT

BATCH_SIZE = 500
BATCH_WITHIN = 0.05
"""Seconds a partial batch waits for more events: bounds the added latency."""


def by_partition(events: Sequence[EventT]) -> dict[int, list[EventT]]:
    """Events of one batch grouped by source partition, arrival order kept."""
    groups: dict[int, list[EventT]] = {}
    for event in events:
        groups.setdefault(event.message.partition, []).append(event)
    return groups


@contextlib.contextmanager
def in_partition(event: EventT) -> Iterator[None]:
    """Make ``event`` current, so table writes go to its partition's changelog."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


async def per_partition(stream: Any, handle: Callable[[list[EventT]], Awaitable[None]]) -> None:
    """Feed ``handle`` each batch of ``stream``, one partition's events at a time,
    with one of that partition's events current (see :func:`in_partition`)."""
    async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN):
        for group in by_partition(events).values():
            with in_partition(group[-1]):
                await handle(group)


def state_of(states: dict[bytes, Any], table: Any, key: bytes, new: Callable[[], Any]) -> Any:
    """The working state of ``key`` in this batch: loaded once from ``table``, else new."""
    state = states.get(key)
    if state is None:
        stored = table.get(key)
        state = states[key] = orjson.loads(stored) if stored else new()
    return state
