"""The data path: read a batch, apply it, emit, flush, commit — one cycle at a time.

One task runs the cycles (:meth:`Pipeline.run`). Each cycle:

1. takes the consumer group's news: for input partitions gained, the group's
   committed offsets (the new owner emits from there; where its replica has
   already read past that offset the reader seeks back, and the records in
   between are emitted, not applied, again — ids are deterministic, so a repeat
   is harmless); partitions lost are forgotten;
2. fetches one bounded batch of every partition it reads (:mod:`app.stream.reader`)
   and journals it when the embedded broker's history is kept (before applying
   it, so whatever was applied survives a crash);
3. runs :meth:`app.stream.cycle.Cycle.step` under the replica's lock;
4. sends the step's records through a fresh :class:`~app.stream.checkpoint.Checkpoint`
   and commits it: flush → mark applied → commit the owned input offsets
   (commits are due every ``COMMIT_SECONDS`` and whenever the inputs pause). The
   commit waits for the broker's acknowledgements while the next cycles already
   read and apply (at most ``IN_FLIGHT`` checkpoints outstanding); checkpoints
   commit in the order of their cycles.

On revocation the group member waits for the cycle in flight, then the
offsets still uncommitted are committed while this worker is still the owner;
stopping does the same. The first cycle waits (up to ``FIRST_ASSIGNMENT_SECONDS``)
for the group's first assignment, so a worker that starts on a long history
knows what it owns before it reads it. A failure of the data path (a broker
gone for longer than the clients retry, an undeliverable record) starts it
over from the beginning of every partition, as a restart would.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from app.intel import publication
from app.stream.checkpoint import Checkpoint
from app.stream.cycle import Cycle, Ownership, Step
from app.stream.emitter import Emitter
from app.stream.group import GroupMember
from app.stream.reader import Reader

log = logging.getLogger(__name__)

TP = tuple[str, int]
Journal = Callable[[Sequence[tuple[str, Sequence[Any]]]], Awaitable[None]]
MAX_RECORDS = 500
"""Records per cycle at most. A cycle holds the event loop (folding is synchronous), so
this bounds how long an API call or a heartbeat waits: 2000 records held it 300–500 ms
during a backfill (an API p99 of 400 ms), 500 hold it 50–130 ms at the same throughput."""
FETCH_TIMEOUT_MS = 100
COMMIT_SECONDS = 0.5
IN_FLIGHT = 4
"""Checkpoints whose acknowledgements may be outstanding while the next cycles run."""
FIRST_ASSIGNMENT_SECONDS = 30.0
RETRY_SECONDS = 2.0
FREEZE_SECONDS = 10.0
"""How often what survived is moved out of the garbage collector's sight (``gc.freeze``).
The replica's state lives as long as the worker; a full collection walking all of it
took 70–160 ms at 50k incidents (and grows with them), a stall of the data path every
few seconds. Only the young generations are collected first: cyclic garbage that outlives
them is kept (the data path makes none; it is bounded by what one interval leaves)."""


async def send(fetch: Sequence[tuple[str, Sequence[Any]]], cycle: Cycle,
               ownership: Ownership, emitter: Emitter, *, journal: Journal | None,
               caught_up: bool, now: float, wall: float | None,
               to_commit: Callable[[Mapping[TP, int]], Mapping[TP, int]],
               commit: Callable[[Mapping[TP, int]], Awaitable[bool]]) -> tuple[Step, Checkpoint]:
    """Steps 2 and 3 of a cycle over a fetched batch: journal it, apply it and plan the
    outputs under the replica's lock, then hand them to a checkpoint, which is returned
    to be committed (step 4).

    ``to_commit`` turns the offsets the step may commit into those to commit now (the
    pipeline spaces its commits out).
    """
    if journal is not None and any(records for _, records in fetch):
        await journal(fetch)  # kept before anything of it is applied
    async with cycle.replica.state:
        step = cycle.step(fetch, ownership, caught_up=caught_up, now=now, wall=wall)
    checkpoint = Checkpoint(emitter, applied=cycle.mark_applied, commit=commit)
    await checkpoint.send_all(step.out)
    checkpoint.cover(step.positions, to_commit(step.commit))
    return step, checkpoint


async def deliver(fetch: Sequence[tuple[str, Sequence[Any]]], cycle: Cycle,
                  ownership: Ownership, emitter: Emitter, *, journal: Journal | None,
                  caught_up: bool, now: float, wall: float | None,
                  to_commit: Callable[[Mapping[TP, int]], Mapping[TP, int]],
                  commit: Callable[[Mapping[TP, int]], Awaitable[bool]]) -> Step:
    """A whole cycle over a fetched batch, its checkpoint committed before returning."""
    step, checkpoint = await send(fetch, cycle, ownership, emitter, journal=journal,
                                  caught_up=caught_up, now=now, wall=wall,
                                  to_commit=to_commit,
                                  commit=commit)
    await checkpoint.commit()
    return step


class Pipeline:
    """The data path's task (see the module docstring)."""

    def __init__(self, *, cycle: Cycle, reader: Reader, group: GroupMember, emitter: Emitter,
                 journal: Journal | None = None,
                 on_start: Callable[[], Awaitable[None]] | None = None) -> None:
        self.cycle = cycle
        self.reader = reader
        self.group = group
        self.emitter = emitter
        self.journal = journal
        self.on_start = on_start
        self.floors: dict[TP, int] = {}
        """Owned input partitions whose committed offsets are known → that offset (it
        moves as this worker commits)."""
        self._uncommitted: dict[TP, int] = {}
        self._committed_at = self._frozen_at = time.monotonic()
        self._lock = asyncio.Lock()
        self._paused: frozenset[TP] = frozenset()
        self._in_flight: deque[asyncio.Task[None]] = deque()
        """Checkpoints being committed, oldest first; each waits for the one before."""
        self._stopping = False
        self.started = asyncio.Event()
        group.before_revoke = self._before_revoke

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Cycle until stopped; start over when the data path fails."""
        if self.on_start is not None:
            await self.on_start()

        try:
            await asyncio.wait_for(self.group.assigned.wait(), FIRST_ASSIGNMENT_SECONDS)
        except TimeoutError:
            log.warning("no partition assignment after %.0f s; reading anyway",
                        FIRST_ASSIGNMENT_SECONDS)
        while not self._stopping:
            try:
                records = await self.reader.start()
                log.info("replica reading %d partitions from the beginning (%d records at "
                         "start)", len(self.reader.partitions), records)
                self.started.set()
                while not self._stopping:
                    async with self._lock:
                        if self._stopping:
                            break
                        await self._one_cycle()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a broker hiccup must not end the worker
                log.warning("the data path failed (%s: %s); starting over", type(exc).__name__,
                            exc)
                await self._start_over()
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                await self.reader.stop()

    async def _start_over(self) -> None:
        in_flight, self._in_flight = list(self._in_flight), deque()
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        async with self.cycle.replica.state:
            self.cycle.reset()
        self.floors.clear()
        self._uncommitted.clear()
        self._paused = frozenset()
        self.group.gained |= self.group.owned

    async def _one_cycle(self) -> None:
        generation = await self._take_ownership()
        fetch = await self.reader.fetch(MAX_RECORDS, FETCH_TIMEOUT_MS)
        ownership = Ownership(floors=dict(self.floors), keyed=self._keyed(),
                              leader=self.group.leader())
        quiet = not any(records for _, records in fetch)
        due = quiet or time.monotonic() - self._committed_at >= COMMIT_SECONDS

        def to_commit(offsets: Mapping[TP, int]) -> Mapping[TP, int]:
            self._uncommitted.update(offsets)
            return self._uncommitted if due else {}

        step, checkpoint = await send(
            fetch, self.cycle, ownership, self.emitter, journal=self.journal,
            caught_up=self.reader.caught_up, now=time.monotonic(), wall=time.time(),
            to_commit=to_commit,
            commit=lambda offsets: self._commit(offsets, generation))
        await self._commit_after(checkpoint)
        replica = self.cycle.replica
        if time.monotonic() - self._frozen_at >= FREEZE_SECONDS:
            gc.collect(1)
            gc.freeze()
            self._frozen_at = time.monotonic()
        if step.ready_now:
            log.info("replica ready: %d events applied, as of %s", replica.applied,
                     replica.as_of().isoformat())
        if replica.ready:
            self._pause_owned_keyed()

    async def _commit_after(self, checkpoint: Checkpoint) -> None:
        """Commit ``checkpoint`` once those before it are committed, while the next cycle
        already reads and applies: its acknowledgements are not waited for in line.
        A failure surfaces here, at the next cycle, and the data path starts over."""
        previous = self._in_flight[-1] if self._in_flight else None

        async def commit() -> None:
            if previous is not None:
                await previous
            await checkpoint.commit()

        self._in_flight.append(asyncio.create_task(commit()))
        while self._in_flight and self._in_flight[0].done():
            self._in_flight.popleft().result()
        if len(self._in_flight) > IN_FLIGHT:
            await self._in_flight.popleft()

    async def _drain(self) -> None:
        """Wait until every checkpoint in flight is committed."""
        while self._in_flight:
            await self._in_flight.popleft()

    def _keyed(self) -> frozenset[int]:
        incidents = self.cycle.names.incidents
        return frozenset(p for t, p in self.group.owned if t == incidents)

    async def _take_ownership(self) -> int:
        """Floors of the partitions gained (seeking back where needed), none for those
        lost; returns the generation the cycle works in."""
        group = self.group
        while True:
            generation = group.generation
            for tp in [tp for tp in self.floors if tp not in group.owned]:
                del self.floors[tp]
                self._uncommitted.pop(tp, None)
            pending = set(group.gained)
            if not pending:
                return generation
            committed = await group.committed(pending)
            if group.generation != generation:
                continue  # the group moved while we asked: ask again
            for tp, offset in committed.items():
                self.floors[tp] = offset
                if offset < self.cycle.position.get(tp, 0):
                    self.reader.seek(tp, offset)
                    self.cycle.rewind(tp, offset)
                    log.info("%s[%d]: emitting again from the committed offset %d (read to "
                             "%d)", tp[0], tp[1], offset, self.cycle.read_to[tp])
            group.gained -= pending

    async def _commit(self, offsets: Mapping[TP, int], generation: int) -> bool:
        """Commit through the group member unless the group moved since the cycle began."""
        if self.group.generation != generation:
            return False
        done = await self.group.commit(offsets)
        if done:
            self._committed_at = time.monotonic()
            for tp, offset in offsets.items():
                if self._uncommitted.get(tp) == offset:
                    del self._uncommitted[tp]
                if tp in self.floors:
                    self.floors[tp] = max(self.floors[tp], offset)
        return done

    def _pause_owned_keyed(self) -> None:
        """Stop reading back the keyed output partitions this worker writes itself."""
        owned = self._keyed()
        keyed = frozenset(tp for tp in self.reader.partitions
                          if self.cycle.names.catalog[tp[0]] in publication.KEYED_TOPICS
                          and tp[1] in owned)
        if keyed != self._paused:
            self.reader.resume(self._paused - keyed)
            self.reader.pause(keyed - self._paused)
            self._paused = keyed

    # ------------------------------------------------------------------ rebalance, stop

    async def _before_revoke(self, lost: frozenset[TP]) -> None:
        """Finish the cycle in flight and commit what it covered, while still the owner."""
        async with self._lock:
            await self._drain()
            offsets = {tp: o for tp, o in self._uncommitted.items() if tp in lost}
            if offsets:
                await self._commit(offsets, self.group.generation)

    async def stop(self) -> None:
        """Finish the cycle in flight, commit, and end the data path."""
        self._stopping = True
        async with self._lock:
            if self._uncommitted or self._in_flight:
                try:
                    await self._drain()
                    await self._commit(dict(self._uncommitted), self.group.generation)
                except Exception as exc:  # noqa: BLE001 - stopping goes on; input is re-read
                    log.info("last commit failed while stopping (%s)", type(exc).__name__)


