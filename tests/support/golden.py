"""Every output the engine serialises, for one fixed simulated stream: the golden file.

``python -m tests.support.golden`` writes ``tests/engine/golden/outputs.json`` from the
events of ``stream.jsonl`` beside it;
``tests/engine/test_golden_outputs.py`` recomputes the same outputs and
compares them byte for byte, so a change to how payloads are serialised (the
JSON of every topic record, tool answer and artifact) cannot pass unnoticed.

What is rendered: every tool action (correlate with its note for each
incident, recurrence at 7 and 30 days, buckets, alerts, the gate for each
service and profile, the weekly digest of each complete week as JSON and
Markdown), every keyed record the stream publishes (``intel.recurrence``,
``intel.buckets``, ``intel.alerts``), the follow-ups of each week, and the
learning-velocity quarters.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson

from app.contracts import (
    AlertsRequest,
    BucketsRequest,
    CorrelateRequest,
    GateRequest,
    RecurrenceRequest,
    WeeklyDigestRequest,
    decode_event,
    dump_json,
)
from app.intel import publication
from app.intel.engine import IntelEngine
from app.intel.periods import from_micros, week_end, week_label
from app.intel.velocity_quarters import velocity_by_quarter
from app.policy import load_policy
from app.simulation.feed import first_run_feed, to_jsonl
from tests.support.repository import POLICY_DIR, ROOT

GOLDEN = ROOT / "tests" / "engine" / "golden" / "outputs.json"
STREAM = GOLDEN.with_name("stream.jsonl")
NOW = datetime(2026, 3, 25, 10, 30, tzinfo=UTC)
"""Where the stream ends: two complete weeks and part of a third."""


def stream_lines() -> list[bytes]:
    """The fixed input, kept as a file so that a change of the simulator does not
    change it: incidents, alerts and learning events of two and a half weeks."""
    return [line for line in STREAM.read_bytes().split(b"\n") if line.strip()]


def simulated_lines() -> list[bytes]:
    """How ``stream.jsonl`` was made: the first-run feed of seed 5 ending at :data:`NOW`."""
    records, _ = first_run_feed(5, NOW, rate_per_s=2.0, duration_s=300.0)
    return [line for line in to_jsonl(records).split(b"\n") if line.strip()]


def render() -> dict[str, str]:
    """Name → serialised output (text) of everything listed in the module docstring."""
    policy = load_policy(POLICY_DIR)
    engine = IntelEngine(policy)
    engine.apply_all(decode_event(line) for line in stream_lines())
    assert engine.watermark is not None
    as_of = from_micros(engine.watermark)
    out: dict[str, str] = {}

    def put(name: str, data: bytes) -> None:
        out[name] = data.decode()

    for incident_id in sorted(engine.book.incidents):
        request = CorrelateRequest(action="correlate", incident_id=incident_id, append_note=True)
        put(f"correlate/{incident_id}", dump_json(engine.correlate(request)))
    for days in (7, 30):
        request = RecurrenceRequest(action="recurrence", window_days=days)
        put(f"recurrence/{days}", dump_json(engine.recurrence(request, as_of)))
    put("buckets", dump_json(engine.buckets(BucketsRequest(action="buckets"), as_of)))
    put("alerts", dump_json(engine.alert_report(AlertsRequest(action="alerts"), as_of)))
    services = sorted({r.service for r in engine.book.incidents.values()})
    for service in services:
        for profile in ("dev", "staging", "prod"):
            request = GateRequest(action="gate", service=service, profile=profile)
            put(f"gate/{service}/{profile}", dump_json(engine.gate(request, as_of)))
    for key in sorted(publication.live_keys(engine, engine.watermark)):
        row = publication.row(engine, key, as_of)
        put(f"{key.topic}/{key.key}", row.value or b"null")
    first = min(r.started for r in engine.book.incidents.values())
    week = week_label(from_micros(first))
    while week_end(week) <= as_of:
        answer = engine.weekly_digest(
            WeeklyDigestRequest(action="weekly_digest", week=week, save_artifacts=True), as_of)
        for artifact in answer.artifacts:
            put(f"digest/{Path(artifact.path).name}", artifact.data)
        for followup in answer.followups:
            put(f"followup/{followup.meta.dedupe_key}", dump_json(followup))
        week = week_label(week_end(week))
    for row in velocity_by_quarter(engine.book, policy.recurrence_target):
        put(f"velocity/{row.quarter}", dump_json(row))
    return out


def main() -> None:
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_bytes(orjson.dumps(render(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    print(f"wrote {GOLDEN}", file=sys.stderr)


if __name__ == "__main__":
    main()
