"""Append-only JSON-lines files that survive a crash: fsynced appends, torn tails cut.

A line is complete once its newline is written; a line cut short by a crash
(no newline) was never reported as written, so it is dropped when the file is
opened again. Used by the follow-up delivery ledger and sink, and by the
durable history of ``incident-intel run``.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.errors import UserError


def fsync_dir(path: Path) -> None:
    """Make the directory entries of ``path`` durable (a new file's name, a rename)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_append(path: Path) -> tuple[bytes, int]:
    """The complete lines of ``path`` (a torn last line cut off), and an append fd.

    Creates the file (and makes its directory entry durable) when missing.
    """
    if not path.parent.is_dir():
        raise UserError(f"{path}: directory {path.parent} does not exist")
    try:
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        raise UserError(f"{path}: cannot open: {exc.strerror}") from None
    if created:
        fsync_dir(path.parent)
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        os.ftruncate(fd, len(complete))
        os.fsync(fd)
    return complete, fd


def append_durably(fd: int, line: bytes) -> None:
    """Write one line (or several joined by newlines) and wait until it is on disk."""
    view = memoryview(line + b"\n")
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)
