"""``InMemoryLiveView``: the reference implementation of the seam the worker implements."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.api import InMemoryLiveView, LiveView
from app.contracts import Note, WeeklyDigestRequest, event_from_obj
from tests.support.api_history import history
from tests.support.http_api import Client, make_view

DIGEST = WeeklyDigestRequest(action="weekly_digest", week="2026-W08", save_artifacts=True)


def test_it_satisfies_the_protocol(view) -> None:
    assert isinstance(view, LiveView)


def test_as_of_defaults_to_the_newest_event_and_hides_nothing(policy) -> None:
    events = [event_from_obj(e) for e in history()]
    view = InMemoryLiveView(policy, events)
    assert view.as_of() == max(e.occurred_at for e in events)
    assert "inc_after_as_of" in view.engine.book.incidents


def test_events_after_as_of_are_left_out(view) -> None:
    assert "inc_after_as_of" not in view.engine.book.incidents
    assert "inc_gw_1" in view.engine.book.incidents


def test_nothing_to_answer_from_is_refused(policy) -> None:
    with pytest.raises(ValueError, match="nothing to answer from"):
        InMemoryLiveView(policy, [])


def test_digest_artifacts_in_memory_or_on_disk(policy, tmp_path: Path) -> None:
    in_memory = make_view(policy)
    asyncio.run(in_memory.run_digest(DIGEST))
    assert sorted(a.path for a in in_memory.artifacts) == [
        "ops/reports/incidents/weekly/2026-W08.json", "ops/reports/incidents/weekly/2026-W08.md"]
    on_disk = make_view(policy, artifact_dir=tmp_path)
    asyncio.run(on_disk.run_digest(DIGEST))
    assert on_disk.artifacts == []
    assert (tmp_path / "ops/reports/incidents/weekly/2026-W08.md").read_bytes().startswith(
        b"# Weekly Incident Digest")


def test_concurrent_digests_create_each_follow_up_once(view) -> None:
    async def twice():  # type: ignore[no-untyped-def]
        return await asyncio.gather(view.run_digest(DIGEST), view.run_digest(DIGEST))

    first, second = asyncio.run(twice())
    created = [r.json_summary.followups.created for r in (first, second)]
    assert sorted(len(c) for c in created) == [0, 1]
    assert len(view.recent_followups()) == 1
    assert view.emitted == {"intel_recur:2026-W08:gateway|error_rate"}


def test_appended_note_is_the_one_answered(client: Client, view) -> None:
    reply = client.tool({"action": "correlate", "incident_id": "inc_gw_3",
                         "append_note": True}, role="agent_oncall")
    assert reply.status == 200
    assert view.notes == [Note.model_validate(reply.json()["note"])]
    plain = client.tool({"action": "correlate", "incident_id": "inc_gw_3"}, role="agent_oncall")
    assert plain.json()["note"] is None and len(view.notes) == 1
