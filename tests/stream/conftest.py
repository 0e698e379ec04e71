"""A recording outbox: agent tests see what the worker would send, without a broker."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sent:
    name: str
    key: bytes | None
    value: bytes | None
    record_id: str | None
    headers: dict[str, str]


@dataclass
class RecordingOutbox:
    records: list[Sent] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)

    async def send(self, name: str, key: bytes | str | None, value: bytes | None,
                   record_id: str | None = None,
                   headers: Iterable[tuple[str, str]] = (), *,
                   caused_ms: int | None = None) -> None:
        if isinstance(key, str):
            key = key.encode()
        self.records.append(Sent(name, key, value, record_id, dict(headers)))
        self.sent[name] = self.sent.get(name, 0) + 1

    async def send_all(self, records: Iterable[Any]) -> None:
        for r in records:
            await self.send(r.topic, r.key, r.value, r.record_id, r.headers)

    async def flush(self) -> None:
        return None

    def to(self, name: str) -> list[Sent]:
        return [r for r in self.records if r.name == name]


def recording(app: Any) -> RecordingOutbox:
    """Replace ``app.outbox`` with a recorder and return it."""
    app.outbox = RecordingOutbox()
    return app.outbox
