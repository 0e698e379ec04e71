"""What a webhook delivery becomes: records to publish, or the reason it is refused.

The mapping modules (:mod:`app.sources.alertmanager`, :mod:`app.sources.pagerduty`)
turn a decoded body into :class:`SourceRecord` values and nothing else: no clock,
no I/O. Publishing them is the caller's business (:mod:`app.sources.publishing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

__all__ = ["InvalidDelivery", "SourceRecord", "decode", "first_error"]


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record for a catalog topic, with the id that makes a re-send harmless."""

    topic: str
    """Catalog name (``alerts.state``, ``incidents.events``, ``intel.dlq``)."""
    key: str
    value: bytes
    record_id: str
    """The event's ``event_id`` (the ``intel-id`` and ``ce_id`` headers)."""
    source: str
    """Who sent it, as a CloudEvents ``ce_source`` path (``/sources/alertmanager/default``)."""
    time: str | None
    """The event time, RFC 3339 (``ce_time``): the same for every copy of the record;
    ``None`` for a dead letter, which has none."""
    headers: tuple[tuple[str, str], ...] = ()
    """More headers (a dead letter's reason class and route)."""


class InvalidDelivery(ValueError):
    """A body that is not the sender's format; ``str()`` is the reason (no secrets in it)."""


def first_error(exc: ValidationError, prefix: str = "") -> str:
    """``field.path: message`` of a validation error's first problem, and how many more."""
    err: Any = exc.errors()[0]
    where = ".".join(str(part) for part in (*([prefix] if prefix else []), *err["loc"]))
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where or 'body'}: {err['msg']}{more}"


def decode(raw: bytes) -> Any:
    """The JSON of a body, or :class:`InvalidDelivery`."""
    if not raw.strip():
        raise InvalidDelivery("body is empty")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidDelivery(f"not JSON: {exc}") from None
