"""Published shapes against the specification's examples, field by field.

Each example below is the specification's own JSON. An answer must carry every
field of its example with the same JSON type, nested objects and list items
included; a field the example does not have is allowed only when it is listed in
``EXTRA`` (and in the README's "Fields beyond the specification").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from app.contracts import (
    BucketsRequest,
    CorrelateRequest,
    DlqRecord,
    WeeklyDigestRequest,
    dump_json,
    event_from_obj,
)
from app.intel.engine import IntelEngine
from tests.support.builders import at, incident_event

BUCKETS_EXAMPLE: dict[str, Any] = {
    "service_filter": "gateway",
    "window_days": 30,
    "bucket_count": 2,
    "buckets": [
        {
            "bucket_key": "gateway|error_rate",
            "counts": {"7d": 5, "30d": 12, "open": 2},
            "last_seen": "2026-02-22T14:30:00",
            "services": ["gateway"],
            "kinds": ["error_rate"],
            "top_signatures": [{"signature": "aabbccdd", "count": 4}],
            "severity_mix": {"P0": 0, "P1": 2, "P2": 3},
            "sample_incidents": ["..."],
            "recommendations": ["..."],
        }
    ],
}
BUCKET_EXAMPLE = BUCKETS_EXAMPLE["buckets"][0]
FOLLOWUP_EXAMPLE: dict[str, Any] = {
    "type": "followup", "incident_id": "inc_…",
    "message": "[intel] Recurrence high: gateway|error_rate (7d=5, 30d=12, kinds=error_rate)",
    "meta": {"title": "[intel] Recurrence high: gateway|error_rate", "owner": "oncall",
             "priority": "P1", "due_date": "2026-03-02",
             "dedupe_key": "intel_recur:2026-W08:gateway|error_rate", "auto_created": True,
             "bucket_key": "gateway|error_rate", "count_7d": 5},
}
DLQ_EXAMPLE: dict[str, Any] = {"source_topic": "incidents.events", "partition": 0, "offset": 7,
                               "error": "not JSON", "raw": "{"}
NOTE_EXAMPLE: dict[str, Any] = {"type": "note"}

EXTRA: dict[str, dict[str, set[str]]] = {
    "buckets": {"$": {"as_of"}},
    "followup": {"$.meta": {"count_30d"}},
    "dlq": {"$": {"key", "raw_encoding"}},
    "note": {"$": {"note_id", "incident_id", "message", "meta"}},
}
"""Fields beyond each example (by path), as the README lists them."""
NULLABLE = {"$.service_filter"}
"""Fields the specification shows with a value that may also be null."""


def _json_type(value: Any) -> str:
    return "number" if isinstance(value, int | float) and not isinstance(value, bool) else \
        type(value).__name__


def assert_shape(example: Any, actual: Any, extra: dict[str, set[str]] | None = None,
                 where: str = "$") -> None:
    """``actual`` has every field of ``example`` with its JSON type, and no other field
    than those ``extra`` names for that path."""
    if actual is None and where in NULLABLE:
        return
    assert _json_type(actual) == _json_type(example), f"{where}: {actual!r}"
    if isinstance(example, dict):
        if set(example) - {"P0", "P1", "P2", "P3"}:  # a severity mix has its own keys
            missing = set(example) - set(actual)
            unexpected = set(actual) - set(example) - (extra or {}).get(where, set())
            assert not missing, f"{where}: missing {sorted(missing)}"
            assert not unexpected, f"{where}: not in the specification {sorted(unexpected)}"
        for key, value in example.items():
            if key in actual:
                assert_shape(value, actual[key], extra, f"{where}.{key}")
    elif isinstance(example, list) and example:
        assert actual, f"{where}: empty, the example has items"
        for n, item in enumerate(actual):
            assert_shape(example[0], item, extra, f"{where}[{n}]")


@pytest.fixture(scope="module")
def engine(policy) -> IntelEngine:
    events = [incident_event(f"g{i}", started=at(days=1, hours=i), signature="ab" * 32,
                             severity="P1" if i % 2 else "P2",
                             status="open" if i < 2 else "resolved") for i in range(8)]
    events += [incident_event(f"o{i}", started=at(days=2, hours=i), service="ledger", kind="oom",
                              status="closed") for i in range(3)]
    built = IntelEngine(policy)
    built.apply_all(event_from_obj(e) for e in events)
    return built


AS_OF = datetime(2026, 2, 23, 8, tzinfo=UTC)


@pytest.mark.parametrize("service", ["gateway", None])
def test_buckets_answer_has_the_specified_shape(engine, service):
    response = engine.buckets(BucketsRequest(action="buckets", service=service), AS_OF)
    body = orjson.loads(dump_json(response))
    assert_shape(BUCKETS_EXAMPLE, body, EXTRA["buckets"])
    assert body["service_filter"] == service
    assert body["bucket_count"] == len(body["buckets"]) >= 1
    gateway = next(b for b in body["buckets"] if b["bucket_key"] == "gateway|error_rate")
    assert gateway["counts"] == {"7d": 8, "30d": 8, "open": 2}
    assert gateway["top_signatures"] == [{"signature": "abababab", "count": 8}]
    assert set(gateway["sample_incidents"]) <= {f"g{i}" for i in range(8)}


def test_bucket_topic_value_and_digest_buckets_have_the_same_shape(engine):
    listed = engine.buckets(BucketsRequest(action="buckets"), AS_OF).buckets
    for bucket in listed:
        value = engine.bucket_summary(bucket.bucket_key, AS_OF)
        assert value is not None
        assert_shape(BUCKET_EXAMPLE, orjson.loads(dump_json(value)))
    digest = engine.weekly_digest(WeeklyDigestRequest(action="weekly_digest"), AS_OF)
    summary = orjson.loads(dump_json(digest.response.json_summary))
    assert summary["buckets"], "the week has buckets"
    for item in summary["buckets"]:
        assert_shape(BUCKET_EXAMPLE, item)


def test_followup_has_the_specified_shape(engine):
    digest = engine.weekly_digest(WeeklyDigestRequest(action="weekly_digest"), AS_OF)
    assert digest.followups, "the gateway bucket is high with open incidents"
    for followup in digest.followups:
        body = orjson.loads(dump_json(followup))
        assert_shape(FOLLOWUP_EXAMPLE, body, EXTRA["followup"])
        assert body["meta"]["dedupe_key"] == "intel_recur:2026-W08:gateway|error_rate"
        assert body["meta"]["due_date"] == "2026-03-02"


def test_note_and_dead_letter_have_the_specified_fields(engine):
    answer = engine.correlate(CorrelateRequest(action="correlate", incident_id="g0",
                                               append_note=True))
    assert answer.note is not None
    assert_shape(NOTE_EXAMPLE, orjson.loads(dump_json(answer.note)), EXTRA["note"])
    letter = DlqRecord.from_raw(source_topic="incidents.events", partition=0, offset=7,
                                error="not JSON", raw=b"{", key=None)
    assert_shape(DLQ_EXAMPLE, orjson.loads(dump_json(letter)), EXTRA["dlq"])
