"""Durable memory of what was delivered: append-only JSON lines, fsynced.

The deliverer records a dedupe key here after the sink confirmed it and before
it commits the record's offset, so a restart (or a duplicate record) never
delivers the same key twice. A line cut short by a crash was never followed
by a commit; it is dropped when the file is opened.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from app.errors import UserError
from app.linefile import append_durably, open_append

__all__ = ["Ledger"]


class Ledger:
    """The set of dedupe keys delivered, kept in a JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        data, self._fd = open_append(path)
        self.keys: set[str] = set()
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                self.keys.add(orjson.loads(line)["dedupe_key"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                self.close()
                raise UserError(f"{path}:{number}: not a delivery ledger line") from None

    def record(self, key: str, *, topic: str, partition: int, offset: int) -> None:
        """Remember ``key`` as delivered, durably, before the offset is committed."""
        append_durably(self._fd, orjson.dumps(
            {"dedupe_key": key, "topic": topic, "partition": partition, "offset": offset}))
        self.keys.add(key)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
