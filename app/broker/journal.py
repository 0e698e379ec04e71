"""The history journal: the records a restart of the embedded broker cannot recompute.

Every output of the worker can be computed again from its inputs except the
record of what it already emitted (follow-ups, digests). So the journal keeps
every record the worker's replica reads from the input topics and from
``intel.followups`` and ``intel.digests``, one append-only JSON-lines file per
topic-partition: ``<dir>/<topic>/<partition>.jsonl`` (catalog topic names,
without ``INTEL_TOPIC_PREFIX``), one record a line in offset order::

    {"offset": 12, "timestamp": 1771425000000, "key": "inc_1", "value": "{...}",
     "headers": [["intel-id", "..."]]}

Keys, values and header values are text when they are UTF-8 and
``{"base64": "..."}`` otherwise; a tombstone's value is ``null``. A batch is
fsynced before :meth:`Journal.append` returns, so a record the worker has
applied is on disk. A line cut short by a crash is dropped when the file is
opened (:mod:`app.linefile`); a damaged line anywhere else stops the start
with the file and line named.

Records below a partition's *held* offset (what the journal already holds,
set after a replay) are skipped, so reading a replayed broker again from the
beginning does not write anything twice.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from app.errors import UserError
from app.linefile import append_durably, fsync_dir, open_append
from app.topics import input_topics

__all__ = ["Entry", "Journal", "decode_entry", "encode_entry", "journaled_topics"]

def journaled_topics() -> tuple[str, ...]:
    """The inputs (from the catalog), and the outputs that say what was already emitted."""
    return (*input_topics(), "intel.followups", "intel.digests")
_FILE = re.compile(r"^(0|[1-9][0-9]{0,5})\.jsonl$")
TP = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Entry:
    """One journaled record: what a replay sends again, and where it stood."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def _text(data: bytes | None) -> str | dict[str, str] | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _bytes(item: Any) -> bytes | None:
    if item is None:
        return None
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, dict) and isinstance(item.get("base64"), str):
        return base64.b64decode(item["base64"], validate=True)
    raise ValueError(f"bytes must be text, null or {{\"base64\": ...}}, not {item!r}")


def encode_entry(record: Any) -> bytes:
    """One line (without its newline) for a consumer record (offset, timestamp, key,
    value, headers)."""
    headers = [[name, _text(bytes(value))] for name, value in record.headers or ()]
    return orjson.dumps({"offset": record.offset, "timestamp": record.timestamp,
                         "key": _text(record.key), "value": _text(record.value),
                         "headers": headers})


def decode_entry(line: bytes) -> Entry:
    """The record of one journal line; ``ValueError`` names what is wrong."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    offset, timestamp = data.get("offset"), data.get("timestamp")
    if not isinstance(offset, int) or offset < 0 or not isinstance(timestamp, int):
        raise ValueError("offset and timestamp must be integers")
    headers = []
    for pair in data.get("headers") or ():
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ValueError(f"a header must be [name, value], not {pair!r}")
        headers.append((pair[0], _bytes(pair[1]) or b""))
    return Entry(offset, timestamp, _bytes(data.get("key")), _bytes(data.get("value")),
                 tuple(headers))


class Journal:
    """The journal files under ``directory``; ``topic_names`` maps each real topic
    name (with ``INTEL_TOPIC_PREFIX``) the replica reads to its catalog name.

    :meth:`append` may be called from any thread (one at a time is enforced).
    """

    def __init__(self, directory: Path, topic_names: Mapping[str, str]) -> None:
        self.directory = directory
        journaled = journaled_topics()
        self.names = {real: name for real, name in topic_names.items()
                      if name in journaled}
        self.reals = {name: real for real, name in self.names.items()}
        self.held: dict[TP, int] = {}
        """(real topic, partition) → the next offset not yet in the journal."""
        self._fds: dict[TP, int] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ reading

    def path(self, name: str, partition: int) -> Path:
        return self.directory / name / f"{partition}.jsonl"

    def partitions(self) -> list[tuple[str, int]]:
        """(catalog topic, partition) of every journal file, in a stable order."""
        found = []
        for name in sorted(self.reals):
            folder = self.directory / name
            if folder.is_dir():
                found += [(name, int(p.name.split(".")[0])) for p in folder.iterdir()
                          if _FILE.match(p.name)]
        return sorted(found)

    def read(self, name: str, partition: int) -> list[Entry]:
        """Every record of one file in file (offset) order; cuts a torn last line."""
        path = self.path(name, partition)
        data, fd = open_append(path)
        with self._lock:
            previous = self._fds.pop((self.reals[name], partition), None)
            self._fds[(self.reals[name], partition)] = fd
        if previous is not None:
            os.close(previous)
        entries = []
        for number, line in enumerate(data.splitlines(), 1):
            try:
                entries.append(decode_entry(line))
            except ValueError as exc:
                raise UserError(f"{path}:{number}: not a history line ({exc}); move the file "
                                "away to start without its records") from None
        return entries

    def entries(self) -> Iterator[tuple[str, int, list[Entry]]]:
        """(catalog topic, partition, records) of every file: what a replay sends."""
        for name, partition in self.partitions():
            yield name, partition, self.read(name, partition)

    # ------------------------------------------------------------------ writing

    def hold(self, held: Mapping[TP, int]) -> None:
        """Say what the journal holds ((real topic, partition) → next offset not held)."""
        with self._lock:
            self.held.update(held)

    def append(self, batch: Sequence[tuple[str, Sequence[Any]]]) -> int:
        """Write the records of a fetch ((real topic, one partition's records in offset
        order) pairs) not held yet, fsynced; returns how many were written."""
        with self._lock:
            lines: dict[TP, list[bytes]] = {}
            held: dict[TP, int] = {}
            for topic, records in batch:
                if topic not in self.names:
                    continue
                for record in records:
                    tp = (topic, record.partition)
                    if record.offset >= held.get(tp, self.held.get(tp, 0)):
                        lines.setdefault(tp, []).append(encode_entry(record))
                        held[tp] = record.offset + 1
            for tp, chunk in lines.items():
                self._write(tp, b"\n".join(chunk))
                self.held[tp] = held[tp]
            return sum(len(chunk) for chunk in lines.values())

    async def keep(self, batch: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """:meth:`append` off the event loop (the replica's hook)."""
        await asyncio.to_thread(self.append, batch)

    def _write(self, tp: TP, data: bytes) -> None:
        fd = self._fds.get(tp)
        if fd is None:
            name = self.names[tp[0]]
            for folder in (self.directory, self.directory / name):
                if not folder.is_dir():
                    folder.mkdir(parents=True)
                    fsync_dir(folder.parent)
            _, fd = open_append(self.path(name, tp[1]))
            self._fds[tp] = fd
        size = os.fstat(fd).st_size
        try:
            append_durably(fd, data)
        except OSError:
            os.ftruncate(fd, size)  # no torn line before the next attempt
            raise

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
