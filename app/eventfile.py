"""Reading JSONL event files at the edge: good events kept, bad lines reported.

A bad line never stops a run: it is reported with its file, line number and
reason, and skipped; the caller prints a one-line summary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from app.contracts import Event, InvalidEvent, decode_event
from app.errors import UserError


@dataclass
class EventFile:
    events: list[Event] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    lines: int = 0


def read_events(paths: Iterable[str | Path]) -> EventFile:
    """Decode every non-blank line of every file, in order."""
    out = EventFile()
    for path in paths:
        path = Path(path)
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise UserError(f"--events {path}: cannot read: {exc.strerror}") from None
        with handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                out.lines += 1
                try:
                    out.events.append(decode_event(line.rstrip(b"\r\n")))
                except InvalidEvent as exc:
                    out.problems.append(f"{path}:{number}: {exc}")
    return out


def summary_line(read: EventFile) -> str:
    return f"read {read.lines} event line(s), skipped {len(read.problems)} invalid"
