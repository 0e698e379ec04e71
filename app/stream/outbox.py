"""The outbox: every record the worker produces leaves through here.

Each output carries its deterministic id in the ``intel-id`` header, so a
consumer can drop redeliveries without parsing the value. Callers queue a
batch's records, ``flush`` (wait for the broker's acks) and only then mark
their input as done (ack, applied): a crash in between re-sends the same
records under the same ids, never loses one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.stream.app import IntelApp
    from app.stream.publisher import Outgoing

ID_HEADER = "intel-id"


class Outbox:
    def __init__(self, app: IntelApp) -> None:
        self.app = app
        self._pending: list[Awaitable[object]] = []
        self.sent: dict[str, int] = {}

    async def send(self, name: str, key: bytes | str | None, value: bytes | None,
                   record_id: str | None = None,
                   headers: Iterable[tuple[str, str]] = ()) -> None:
        """Queue one record for the topic called ``name`` (its contract name)."""
        if isinstance(key, str):
            key = key.encode()
        extra = [(ID_HEADER, record_id)] if record_id is not None else []
        header_list = [(k, v.encode()) for k, v in [*extra, *headers]]
        future = await self.app.producer.send(
            self.app.intel_topic(name).get_topic_name(), key, value, None, None,
            header_list or None)
        self._pending.append(future)
        self.sent[name] = self.sent.get(name, 0) + 1

    async def send_all(self, records: Iterable[Outgoing]) -> None:
        for record in records:
            await self.send(record.topic, record.key, record.value, record.record_id,
                            record.headers)

    async def flush(self) -> None:
        """Wait until every queued record is acknowledged by the broker."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)
