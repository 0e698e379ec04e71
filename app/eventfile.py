"""Reading JSONL event files at the edge: good events kept, bad lines reported.

A bad line never stops a reader that does not want it to: it is kept as a
:class:`Problem` (file, line number, reason) and the caller decides whether
to report and skip it or to stop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from app.contracts import Event, InvalidEvent, decode_event
from app.errors import UserError


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass
class EventFile:
    events: list[Event] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    lines: int = 0


def read_events(paths: Iterable[str | Path],
                admit: Callable[[Event], str | None] = lambda event: None) -> EventFile:
    """Decode every non-blank line of every file, in order; ``admit`` names why a
    decoded event is refused (``None``: kept)."""
    out = EventFile()
    for path in paths:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
        for number, line in enumerate(data.split(b"\n"), start=1):
            if not line.strip():
                continue
            out.lines += 1
            try:
                event = decode_event(line.rstrip(b"\r"))
            except InvalidEvent as exc:
                out.problems.append(Problem(path, number, str(exc)))
                continue
            refused = admit(event)
            if refused is None:
                out.events.append(event)
            else:
                out.problems.append(Problem(path, number, refused))
    return out


def summary_line(read: EventFile) -> str:
    return f"read {read.lines} event line(s), skipped {len(read.problems)} invalid"
