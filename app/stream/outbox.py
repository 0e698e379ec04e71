"""The outbox: every record the worker produces leaves through here.

Each output carries its deterministic id in the ``intel-id`` header, so a
consumer can drop redeliveries without parsing the value, and the CloudEvents
Kafka binding's binary-mode headers (``ce_specversion`` 1.0, ``ce_id`` = the
record id, ``ce_source``, ``ce_type`` per topic and contract version,
``ce_time``, ``content-type``), so event routers need not parse it either. A
record caused by one input record carries that record's W3C ``traceparent``.

Callers queue a batch's records, ``flush`` (wait for the broker's acks) and
only then mark their input as done (ack, applied): a crash in between re-sends
the same records under the same ids, never loses one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.stream.app import IntelApp
    from app.stream.publisher import Outgoing

ID_HEADER = "intel-id"
TRACEPARENT = "traceparent"
CONTRACT_VERSION = "v1"
"""Version of the topic payload contracts, in every ``ce_type``."""


def cloud_event_type(topic: str) -> str:
    """``ce_type`` of a record of the catalog topic ``topic``."""
    return f"io.incident-intel.{topic}.{CONTRACT_VERSION}"


class Outbox:
    def __init__(self, app: IntelApp) -> None:
        self.app = app
        self._pending: list[Awaitable[object]] = []
        self.sent: dict[str, int] = {}
        self._source = f"/incident-intel/{app.intel_settings.app_id}"

    async def send(self, name: str, key: bytes | str | None, value: bytes | None,
                   record_id: str | None = None,
                   headers: Iterable[tuple[str, str]] = (), *,
                   caused_ms: int | None = None) -> None:
        """Queue one record for the catalog topic ``name``; ``caused_ms`` is the Kafka
        timestamp of the input record that caused it (for the latency metric)."""
        if isinstance(key, str):
            key = key.encode()
        extra = [(ID_HEADER, record_id)] if record_id is not None else []
        if value is not None:
            extra += [("ce_specversion", "1.0"), ("ce_id", record_id or ""),
                      ("ce_source", self._source), ("ce_type", cloud_event_type(name)),
                      ("ce_time", datetime.now(UTC).isoformat().replace("+00:00", "Z")),
                      ("content-type", "application/json")]
        header_list = [(k, v.encode()) for k, v in [*extra, *headers]]
        future = await self.app.producer.send(
            self.app.intel_topic(name).get_topic_name(), key, value, None, None,
            header_list or None)
        self._pending.append(future)
        self.sent[name] = self.sent.get(name, 0) + 1
        latency = None if caused_ms is None or caused_ms < 0 else time.time() - caused_ms / 1000
        self.app.metrics.record_output(name, latency_seconds=latency)

    async def send_all(self, records: Iterable[Outgoing]) -> None:
        for record in records:
            await self.send(record.topic, record.key, record.value, record.record_id,
                            record.headers)

    async def flush(self) -> None:
        """Wait until every queued record is acknowledged by the broker."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)
