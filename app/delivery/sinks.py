"""Where follow-ups go: a webhook (HTTP POST) or a JSON-lines file.

Each sink turns one delivery into an :class:`AttemptResult` and never raises
for a failure the decision logic can judge (timeouts, refused connections,
error statuses).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Protocol

import aiohttp

from app.contracts import FollowUp, dump_json
from app.errors import UserError
from app.linefile import append_durably, open_append

from .decision import AttemptResult

IDEMPOTENCY_HEADER = "Idempotency-Key"


class Sink(Protocol):
    def delivered(self) -> set[str]:
        """Dedupe keys the sink itself shows as delivered (beyond the ledger)."""
        ...

    async def deliver(self, follow_up: FollowUp) -> AttemptResult:
        ...

    async def close(self) -> None:
        ...


class WebhookSink:
    """POSTs the follow-up as JSON with ``Idempotency-Key: <dedupe key>``.

    The key lets the receiver drop a repeat: the only repeat this deliverer
    can send is after a crash between the receiver's 2xx and the ledger write.
    """

    def __init__(self, url: str, *, timeout_seconds: float, token: str | None = None) -> None:
        self.url = url
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._session: aiohttp.ClientSession | None = None

    def delivered(self) -> set[str]:
        return set()

    async def deliver(self, follow_up: FollowUp) -> AttemptResult:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        headers = {**self.headers, IDEMPOTENCY_HEADER: follow_up.meta.dedupe_key}
        try:
            async with self._session.post(self.url, data=dump_json(follow_up),
                                          headers=headers) as response:
                await response.read()
                return AttemptResult(response.status, f"HTTP {response.status}")
        except TimeoutError:
            return AttemptResult(None, f"no answer within {self.timeout.total:g}s")
        except aiohttp.ClientError as exc:
            return AttemptResult(None, f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class JsonlSink:
    """Appends one follow-up a line, fsynced; the file itself shows what was delivered."""

    def __init__(self, path: Path) -> None:
        self.path = path
        data, self._fd = open_append(path)
        self._keys: set[str] = set()
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                self._keys.add(FollowUp.model_validate_json(line).meta.dedupe_key)
            except ValueError:
                os.close(self._fd)
                raise UserError(f"{path}:{number}: not a follow-up line") from None

    def delivered(self) -> set[str]:
        return set(self._keys)

    async def deliver(self, follow_up: FollowUp) -> AttemptResult:
        size = os.fstat(self._fd).st_size
        try:
            await asyncio.to_thread(append_durably, self._fd, dump_json(follow_up))
        except OSError as exc:
            os.ftruncate(self._fd, size)  # no torn line before the next attempt
            return AttemptResult(None, f"cannot append to {self.path}: {exc.strerror}")
        self._keys.add(follow_up.meta.dedupe_key)
        return AttemptResult(200, "appended")

    async def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


