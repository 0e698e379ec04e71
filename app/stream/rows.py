"""Incident rows: the compact form in which incident state crosses partitions.

A row is the part of an engine :class:`~app.intel.incidents.Record` that the
partitioned agents need (recurrence keys, correlation fields, bucket
summaries), as a JSON list so that repartition messages and table values stay
small and cheap to decode. ``record_of`` turns it back into a ``Record`` that
the engine's functions accept; the conversion is cached by version because the
same row is read many times (once per correlation query that sees it).
"""

from __future__ import annotations

from typing import Any

from app.contracts import Incident
from app.intel.incidents import Record
from app.intel.periods import from_micros

Row = list[Any]
"""``[incident_id, service, kind, signature, severity, status, title, started, at, event_id]``."""

ID, SERVICE, KIND, SIGNATURE, SEVERITY, STATUS, TITLE, STARTED, AT, EVENT = range(10)

_CACHE: dict[tuple[str, int, str], Record] = {}
_CACHE_LIMIT = 200_000


def row_of(record: Record) -> Row:
    inc = record.incident
    return [inc.incident_id, inc.service, record.kind, record.signature, inc.severity,
            inc.status, inc.title, record.started, record.version[0], record.version[1]]


def version_of(row: Row) -> tuple[int, str]:
    return (row[AT], row[EVENT])


def record_of(row: Row) -> Record:
    """The engine record of a row (title, status and severity as of the row's version)."""
    key = (row[ID], row[AT], row[EVENT])
    record = _CACHE.get(key)
    if record is None:
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        incident = Incident.model_construct(
            incident_id=row[ID], service=row[SERVICE], kind=row[KIND], severity=row[SEVERITY],
            status=row[STATUS], signature=row[SIGNATURE], title=row[TITLE],
            started_at=from_micros(row[STARTED]), env="prod", detected_at=None,
            resolved_at=None, root_cause=None, labels={},
        )
        record = Record(incident=incident, kind=row[KIND], signature=row[SIGNATURE],
                        started=row[STARTED], version=(row[AT], row[EVENT]))
        _CACHE[key] = record
    return record
