"""Helpers for tests against a real broker: produce, read back, run the worker CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

REPO = Path(__file__).resolve().parents[2]

Record = tuple[bytes | None, bytes, int | None]
"""(key, value, partition or None for the default partitioner)."""


def wait_until(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; ``None`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def produce(bootstrap: str, topic: str, records: Sequence[Record]) -> list[tuple[int, int]]:
    """Send records in order, each acknowledged; returns (partition, offset) of each."""

    async def run() -> list[tuple[int, int]]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            placed = []
            for key, value, partition in records:
                meta = await producer.send_and_wait(topic, value, key=key, partition=partition)
                placed.append((meta.partition, meta.offset))
            return placed
        finally:
            await producer.stop()

    return asyncio.run(run())


def read_topic(bootstrap: str, topic: str, *, expect: int, timeout: float = 30.0) -> list[Any]:
    """Read a topic from the beginning until ``expect`` records arrived (or timeout)."""

    async def run() -> list[Any]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            deadline = time.monotonic() + timeout
            partitions: set[int] | None = None
            while partitions is None and time.monotonic() < deadline:
                if topic in await consumer.topics():  # refreshes metadata: topic may be new
                    partitions = consumer.partitions_for_topic(topic)
                else:
                    await asyncio.sleep(0.2)
            if not partitions:
                return []
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            records: list[Any] = []
            while len(records) < expect and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    records.extend(messages)
            return records
        finally:
            await consumer.stop()

    return asyncio.run(run())


class CliProcess:
    """``incident-intel <args>`` in a child process, its output collected line by line."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], cwd: Path = REPO) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from app.cli import main; main()", *args],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for_line(self, needle: str, *, timeout: float) -> str | None:
        """The first output line containing ``needle``; ``None`` on timeout or exit."""

        def found() -> str | None:
            with self._lock:
                hit = next((line for line in self.lines if needle in line), None)
            if hit is None and self.proc.poll() is not None:
                self._reader.join(2.0)
                with self._lock:
                    return next((line for line in self.lines if needle in line), "")
            return hit

        hit = wait_until(found, timeout=timeout)
        return hit or None

    def stop(self, sig: int = signal.SIGTERM, *, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit code (SIGKILL after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError(f"no exit {timeout}s after {sig!r}:\n{self.output}") from None
        self._reader.join(5.0)
        return code

    def kill(self) -> None:
        """Last-resort cleanup for fixtures."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
