"""Alertmanager and Grafana Alerting webhooks → ``alerts.state`` transitions.

Both speak Alertmanager's webhook payload (``version`` "4"; Grafana "1", with
extra fields that are ignored). Alertmanager re-sends a whole group on every
``group_interval`` that changes anything and on every ``repeat_interval``; an
HA pair sends everything twice; failed posts are retried. None of that may
count twice, so a transition's ``event_id`` hashes only what identifies it:

- an ``alerts[]`` entry is one *firing episode* of the alert's fingerprint,
  which starts at ``startsAt``. Every entry gives the firing transition at
  ``startsAt``; a resolved entry also gives the resolved transition at
  ``endsAt`` (so an episode that fired and resolved between two notifications,
  which Alertmanager sends only as resolved, still counts its firing);
- ``event_id`` = hash of (source, fingerprint, ``startsAt``, status). Not the
  group key, receiver, external URL, annotations (they change with the value),
  a firing alert's ``endsAt`` (Prometheus moves it forward on every re-send) or
  the time received: repeats, HA twins and retries give the same ids, and a
  real re-fire (a new ``startsAt``) a new one;
- the record's content is built from the same facts plus the labels, so a twin
  is the same record byte for byte.

The fingerprint is Alertmanager's (16 hex digits of the label set, stable across
restarts and HA peers), recomputed from the labels by the same rule only when
the entry has none, and scoped by the source name of the route (``am:<source>:<fp>``)
so two clusters never share one. Service, kind, severity and environment come
from labels by ``sources.yml``; every label is kept.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.contracts import (
    MAX_EVENT_BYTES,
    Alert,
    AlertTransition,
    Timestamp,
    dump_json,
    format_timestamp,
)
from app.intel.signature import derive_kind
from app.policy import AlertmanagerSource, KindDerivation

from .records import InvalidDelivery, SourceRecord, first_error

__all__ = ["SOURCE_NAME", "AlertDelivery", "label_fingerprint", "map_alerts", "scoped",
           "transition_id"]

SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
"""A source name (the last path segment): no ``:``, so a scoped fingerprint is unambiguous."""
TOPIC = "alerts.state"
_FINGERPRINT = re.compile(r"^[0-9a-fA-F]{16}$")
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_SEPARATOR = 0xFF
_MASK = (1 << 64) - 1
_NAME_MAX, _ENV_MAX = 120, 60


class _Entry(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    startsAt: Timestamp  # noqa: N815 - the sender's field names
    endsAt: Timestamp | None = None  # noqa: N815
    fingerprint: str | None = None


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    version: Literal["4", "1"]
    alerts: list[_Entry]
    truncatedAlerts: int = Field(0, ge=0)  # noqa: N815


@dataclass(frozen=True)
class AlertDelivery:
    """What one webhook post holds."""

    sender: Literal["alertmanager", "grafana"]
    records: tuple[SourceRecord, ...]
    alerts: int
    truncated: int
    """Alerts the sender left out of the group (``truncatedAlerts``): lost to every receiver."""


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set: FNV-1a 64 over the sorted names and values,
    each followed by a 0xFF byte, as 16 hex digits."""
    value = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode("utf-8"):
                value = ((value ^ byte) * _FNV_PRIME) & _MASK
            value = ((value ^ _SEPARATOR) * _FNV_PRIME) & _MASK
    return f"{value:016x}"


def scoped(source: str, fingerprint: str) -> str:
    """The fingerprint as ``alerts.state`` keys it: one namespace per source."""
    return f"am:{source}:{fingerprint}"


def transition_id(source: str, fingerprint: str, starts_at: datetime, status: str) -> str:
    """``event_id`` of a transition: the same for every copy of it, whoever sent it when."""
    text = "\x1f".join((source, fingerprint, format_timestamp(starts_at), status))
    return "am:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _first_label(labels: Mapping[str, str], names: list[str]) -> str | None:
    return next((labels[name] for name in names if labels.get(name)), None)


def _is_zero(value: datetime) -> bool:
    return value.year <= 1  # Go's zero time: "unset"


def _fingerprint_of(entry: _Entry, where: str) -> str:
    if entry.fingerprint is None or entry.fingerprint == "":
        return label_fingerprint(entry.labels)
    if not _FINGERPRINT.match(entry.fingerprint):
        raise InvalidDelivery(f"{where}.fingerprint: expected 16 hexadecimal digits")
    return entry.fingerprint.lower()


def _alert(entry: _Entry, fingerprint: str, source: str, policy: AlertmanagerSource,
           kinds: KindDerivation) -> Alert:
    labels = entry.labels
    service = _first_label(labels, policy.service_label) or policy.default_service
    kind = labels.get(policy.kind_label) or derive_kind(labels.get("alertname", ""), labels,
                                                        kinds)
    severity = policy.severity.get(labels.get(policy.severity_label, "").lower(),
                                   policy.default_severity)
    env = _first_label(labels, policy.env_label) or policy.default_env
    return Alert(alert_id=f"{scoped(source, fingerprint)}@{format_timestamp(entry.startsAt)}",
                 fingerprint=scoped(source, fingerprint), service=service[:_NAME_MAX],
                 kind=kind[:_NAME_MAX], severity=severity, env=env[:_ENV_MAX], labels=labels)


def _record(alert: Alert, source: str, fingerprint: str, starts_at: datetime,
            status: Literal["firing", "resolved"], at: datetime, where: str) -> SourceRecord:
    event = AlertTransition(
        event_id=transition_id(source, fingerprint, starts_at, status),
        type="alert.transition", occurred_at=at, alert=alert,
        from_state="firing" if status == "resolved" else None, to_state=status)
    value = dump_json(event)
    if len(value) > MAX_EVENT_BYTES:
        raise InvalidDelivery(f"{where}: the transition would be {len(value)} bytes, over the "
                              f"{MAX_EVENT_BYTES} bytes a record may have (labels too large)")
    return SourceRecord(topic=TOPIC, key=alert.fingerprint, value=value,
                        record_id=event.event_id, source=f"/sources/alertmanager/{source}",
                        time=format_timestamp(at))


def map_alerts(body: Any, source: str, policy: AlertmanagerSource,
               kinds: KindDerivation) -> AlertDelivery:
    """The transitions of one decoded webhook body, in the order of its alerts.

    Raises :class:`InvalidDelivery` naming the first problem: the body is taken
    whole or not at all, so a 2xx means every alert of it is on the topic.
    """
    if not SOURCE_NAME.match(source):
        raise InvalidDelivery(f"source {source!r}: 1 to 40 letters, digits, '_' or '-'")
    try:
        payload = _Payload.model_validate(body)
    except ValidationError as exc:
        raise InvalidDelivery(first_error(exc)) from None
    records: list[SourceRecord] = []
    for index, entry in enumerate(payload.alerts):
        where = f"alerts.{index}"
        if _is_zero(entry.startsAt):
            raise InvalidDelivery(f"{where}.startsAt: not set")
        fingerprint = _fingerprint_of(entry, where)
        try:
            alert = _alert(entry, fingerprint, source, policy, kinds)
        except ValidationError as exc:
            raise InvalidDelivery(first_error(exc, where)) from None
        records.append(_record(alert, source, fingerprint, entry.startsAt, "firing",
                               entry.startsAt, where))
        if entry.status == "resolved":
            if entry.endsAt is None or _is_zero(entry.endsAt):
                raise InvalidDelivery(f"{where}.endsAt: a resolved alert needs its end")
            records.append(_record(alert, source, fingerprint, entry.startsAt, "resolved",
                                   entry.endsAt, where))
    sender: Literal["alertmanager", "grafana"] = (
        "grafana" if payload.version == "1" else "alertmanager")
    return AlertDelivery(sender=sender, records=tuple(records), alerts=len(payload.alerts),
                         truncated=payload.truncatedAlerts)

