"""The outbox: every record the worker produces leaves through here.

Each output carries its deterministic id in the ``intel-id`` header (DESIGN.md
§5), so a consumer can drop redeliveries without parsing the value. Agents
send a batch's outputs, ``flush`` (wait for the broker's acks) and only then
write their tables: a crash in between re-sends the same records under the
same ids, never loses one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.stream.app import IntelApp

ID_HEADER = "intel-id"
AS_OF_HEADER = "intel-as-of"


class Outbox:
    def __init__(self, app: IntelApp) -> None:
        self.app = app
        self._pending: list[Awaitable[object]] = []
        self.sent: dict[str, int] = {}

    async def send(self, name: str, key: bytes | str | None, value: bytes | None,
                   record_id: str | None = None, headers: dict[str, str] | None = None) -> None:
        """Queue one record for the topic called ``name`` (DESIGN.md or internal name)."""
        topic = self.app.intel_topic(name)
        if isinstance(key, str):
            key = key.encode()
        extra = {ID_HEADER: record_id} if record_id is not None else {}
        extra.update(headers or {})
        header_list = [(k, v.encode()) for k, v in extra.items()] or None
        future = await topic.send(key=key, value=value, headers=header_list)
        self._pending.append(future)
        self.sent[name] = self.sent.get(name, 0) + 1

    async def flush(self) -> None:
        """Wait until every queued record is acknowledged by the broker."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)
