"""Repeated errors logged once per interval, with a count.

When the broker goes away, the Kafka client logs the same connection error
for every attempt (over a hundred lines a second). An operator needs the
first line and how often it repeated, not a flood: :class:`RepeatFilter`
lets the first record of each logger and message template through, holds
back the repeats for ``interval`` seconds, and adds to the next one that
passes how many were held back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

REPEAT_INTERVAL = 30.0


@dataclass
class _Window:
    since: float
    held: int = 0


class RepeatFilter(logging.Filter):
    """Passes each (logger, template) of WARNING and above once per ``interval``."""

    def __init__(self, interval: float = REPEAT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        window = self._windows.get(key)
        if window is not None and now - window.since < self.interval:
            window.held += 1
            return False
        self._windows[key] = _Window(now)
        if window is not None and window.held:
            record.msg = (f"{record.msg} [repeated {window.held} more time(s) in the last "
                          f"{self.interval:.0f} s]")
        return True


def install(logger: logging.Logger, interval: float = REPEAT_INTERVAL) -> RepeatFilter:
    """Put one :class:`RepeatFilter` on every handler of ``logger`` (the root logger)."""
    repeat = RepeatFilter(interval)
    for handler in logger.handlers:
        handler.addFilter(repeat)
    return repeat
