"""Topic contracts: schemas in the repository match the models; events validate."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.contracts import DlqRecord, InvalidEvent, decode_event, format_timestamp
from app.topics import load_catalog, render_schemas

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schemas_match_the_models():
    rendered = render_schemas(load_catalog(ROOT / "topics/catalog.yml"))
    committed = {p.name: p.read_bytes() for p in (ROOT / "topics/schemas").glob("*.json")}
    assert set(committed) == set(rendered), "run `incident-intel topics schemas`"
    for name, data in rendered.items():
        assert committed[name] == data, f"{name} drifted: run `incident-intel topics schemas`"


def test_catalog_names_every_design_topic():
    topics = load_catalog(ROOT / "topics/catalog.yml").topics
    assert set(topics) == {
        "incidents.events", "alerts.state", "learning.events", "intel.recurrence",
        "intel.correlations", "incidents.notes", "intel.buckets", "intel.followups",
        "intel.digests", "learning.velocity", "intel.dlq", "intel.alerts",
    }
    assert topics["intel.recurrence"].cleanup_policy == "compact"
    assert topics["intel.dlq"].cleanup_policy == "delete"


GOOD = (b'{"event_id":"e1","type":"incident.opened","occurred_at":"2026-02-18T14:30:00",'
        b'"incident":{"incident_id":"i1","service":"gw","severity":"P1","status":"open",'
        b'"started_at":"2026-02-18T16:30:00+02:00"}}')


def test_naive_timestamps_are_utc_and_offsets_normalised():
    event = decode_event(GOOD)
    assert format_timestamp(event.occurred_at) == "2026-02-18T14:30:00Z"
    assert format_timestamp(event.incident.started_at) == "2026-02-18T14:30:00Z"


@pytest.mark.parametrize(("raw", "reason"), [
    (b"{not json", "not JSON"),
    (GOOD.replace(b'"incident_id":"i1",', b""), "incident.incident_id: Field required"),
    (GOOD.replace(b'"P1"', b'"P7"'), "incident.severity"),
    (GOOD.replace(b"incident.opened", b"incident.exploded"), "unknown event type"),
    (b"[1, 2]", "expected a JSON object"),
    (b" " * 300_000, "too large"),
])
def test_invalid_records_say_why(raw, reason):
    with pytest.raises(InvalidEvent) as err:
        decode_event(raw)
    assert reason in str(err.value)


@given(st.binary(max_size=200))
def test_dlq_record_round_trips_any_bytes(raw):
    record = DlqRecord.from_raw(source_topic="t", partition=0, offset=1, error="x", raw=raw,
                                key=None)
    assert DlqRecord.model_validate_json(record.model_dump_json()).raw_bytes() == raw
