"""Digest revisions: a published week that late events change is published again.

The oracle is the offline engine (what ``incident-intel tool`` runs): the
latest revision of every published week, without its revision fields, is the
tool's ``weekly_digest`` of that week over the same events, byte for byte.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.cli import main
from app.contracts import DigestSummary, dump_json
from app.intel import digest
from app.intel.periods import week_end, week_label
from app.policy import Policy
from app.stream.digest_timer import DigestTimer
from app.stream.testing import StreamHarness
from tests.support.builders import at, incident_event, jsonl
from tests.support.digests import offline
from tests.support.policies import default_policy, tweak
from tests.support.repository import POLICY_DIR

W08 = "2026-W08"  # 2026-02-16 .. 2026-02-23 (BASE is its Monday)
INTERVAL = timedelta(minutes=default_policy().intel.digest.revise_min_interval_minutes)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Leader:
    """A leading worker's data path and digest timer; the clock is the test's."""

    def __init__(self, reports: Path, policy: Policy | None = None) -> None:
        self.policy = policy or default_policy()
        self.harness = StreamHarness(self.policy)
        self.reports = reports
        self.now = _utc("2026-02-25T12:00:00")  # Wednesday of W09: W08 is due
        self.events: list[dict[str, Any]] = []
        self.timer = DigestTimer(self.harness.replica, self.harness.publisher,
                                 self.harness.emitter, self.policy, reports,
                                 leader=lambda: True, clock=lambda: self.now)

    def send(self, *events: dict[str, Any]) -> None:
        """Input events in one cycle, then a quiet cycle (the inputs pause)."""
        self.events += events
        self.harness.feed("incidents.events", [
            (e["incident"]["incident_id"].encode(), orjson.dumps(e)) for e in events])
        self.harness.settle()

    def publish(self) -> DigestSummary:
        response = asyncio.run(self.timer.catch_up())
        assert response is not None
        return response.json_summary

    def revise(self, after: timedelta = INTERVAL) -> list[DigestSummary]:
        self.now += after
        return [r.json_summary for r in asyncio.run(self.timer.revise())]

    def revisions(self, week: str) -> list[DigestSummary]:
        return [DigestSummary.model_validate_json(r.value or b"")
                for r in self.harness.to("intel.digests") if r.key == week.encode()]

    def close(self) -> None:
        self.harness.close()


def week_events() -> list[dict[str, Any]]:
    """Seven incidents of one signature in W08 (a high bucket, one open), one in W09."""
    events = [incident_event(f"inc-{n}", started=at(days=n, hours=10), signature="cd" * 32,
                             status="open" if n == 6 else "resolved") for n in range(7)]
    return [*events, incident_event("next", started=at(days=8), service="billing")]


@pytest.fixture
def leader(tmp_path: Path):
    worker = Leader(tmp_path / "reports")
    worker.send(*week_events())
    yield worker
    worker.close()


LATE = incident_event("late-1", started=at(days=2, hours=3), service="payments", kind="oom",
                      severity="P1", signature="ab" * 32)
BACKFILL = [LATE, *(incident_event(f"late-1{n}", started=at(days=3, hours=n), service="payments",
                                   kind="oom", severity="P1", signature="ab" * 32)
                    for n in range(2))]
"""Three late incidents of a new bucket (buckets are listed from 3 in 7 days)."""


def test_a_late_incident_of_a_published_week_gives_revision_2_with_its_changes(leader):
    first = leader.publish()
    assert first.revision == 1 and first.revised_at is None and first.changes is None
    assert leader.revise() == []  # nothing applied since: nothing to revise

    leader.send(*BACKFILL)
    revised = leader.revise()

    assert [r.revision for r in revised] == [2]
    second = revised[0]
    assert second.revised_at == leader.now
    changes = {c.field: c for c in second.changes or []}
    assert (changes["recent_7d_count"].before, changes["recent_7d_count"].after) == (7, 10)
    assert (changes["by_severity.P1"].before, changes["by_severity.P1"].after) == (0, 3)
    assert changes["buckets"].added == ["payments|oom"] and changes["buckets"].removed is None
    assert [r.revision for r in leader.revisions(W08)] == [1, 2]
    assert leader.harness.to("intel.digests")[-1].record_id == "digest:2026-W08:r2"


def test_the_revision_replaces_the_artifacts_and_keeps_the_previous_json(leader):
    leader.publish()
    leader.send(*BACKFILL)
    leader.revise()

    reports = leader.reports
    assert sorted(p.name for p in reports.iterdir()) == [
        "2026-W08.json", "2026-W08.md", "2026-W08.r1.json"]
    assert orjson.loads((reports / "2026-W08.r1.json").read_bytes())["revision"] == 1
    assert orjson.loads((reports / "2026-W08.json").read_bytes())["revision"] == 2
    markdown = (reports / "2026-W08.md").read_text()
    head = markdown.split("## Summary")[0]
    assert "**Revised** — revision 2" in head
    assert "- incidents started this week: 7 → 10" in head
    assert "- root-cause buckets: added payments\\|oom" in head


def test_re_sending_an_applied_event_gives_nothing_new(leader):
    leader.publish()
    leader.send(LATE)
    leader.revise()
    before = len(leader.harness.to("intel.digests"))

    leader.send(LATE)  # the same event again, and a new copy of one W08 already had
    leader.send(week_events()[3])

    assert leader.revise() == []
    assert len(leader.harness.to("intel.digests")) == before


def test_events_of_later_weeks_and_time_passing_revise_nothing(leader):
    leader.publish()
    assert leader.revise() == []  # the first look after a start compares every week
    looked = leader.timer.looked_at[W08]

    leader.send(incident_event("w10", started=at(days=15), service="search"),
                incident_event("w10b", started=at(days=16), service="search", status="resolved"),
                incident_event("next", started=at(days=8), service="billing",
                               status="resolved", occurred=at(days=16)))

    assert leader.revise(after=timedelta(days=3)) == []
    assert leader.timer.looked_at[W08] == looked  # not even computed again
    assert [r.revision for r in leader.revisions(W08)] == [1]


def test_a_later_incident_renaming_a_signature_the_week_shows_revises_it(leader):
    leader.publish()
    assert leader.revise() == []
    renamed = [incident_event(f"w10-{n}", started=at(days=15, hours=n), signature="cd" * 32,
                              title="disk full", status="resolved") for n in range(8)]
    leader.send(*renamed)

    revised = leader.revise()

    assert [r.revision for r in revised] == [2]
    assert [c.field for c in revised[0].changes or []] == ["high_recurrence"]
    assert revised[0].high_recurrence[0].label.startswith("disk full")
    assert digest.content(revised[0]) == dump_json(offline(leader.policy, leader.events, W08))


def test_incidents_the_retention_forgets_can_rename_what_a_past_week_shows(tmp_path):
    policy = default_policy()
    policy = policy.model_copy(update={"intel": policy.intel.model_copy(
        update={"retention_days": 60})})
    worker = Leader(tmp_path, policy)
    old = [incident_event(f"old-{n}", started=at(days=-37, hours=n), signature="ee" * 32,
                          title="disk full", status="resolved") for n in range(4)]
    week = [incident_event(f"w08-{n}", started=at(days=2, hours=n), signature="ee" * 32,
                           status="resolved") for n in range(3)]
    worker.send(*old, *week, incident_event("next", started=at(days=8), service="billing"))
    first = worker.publish()
    assert first.warn_recurrence[0].label.startswith("disk full")
    assert worker.revise() == []

    # An incident of a later week moves the retention cutoff past the old ones.
    worker.send(incident_event("tick", started=at(days=24), service="search"))
    revised = worker.revise()

    assert [r.revision for r in revised] == [2]
    assert revised[0].warn_recurrence[0].label.startswith("5xx spike")
    assert digest.content(revised[0]) == dump_json(offline(policy, worker.events, W08))
    worker.close()


def test_the_final_revision_is_the_tools_digest_byte_for_byte(leader, tmp_path):
    leader.publish()
    leader.send(LATE)
    leader.revise()
    leader.send(incident_event("inc-6", started=at(days=6, hours=10), signature="cd" * 32,
                               status="resolved", occurred=at(days=9), etype="incident.updated"))
    leader.revise()

    final = leader.revisions(W08)[-1]
    assert final.revision == 3
    changes = {c.field: c for c in final.changes or []}
    opened = changes["open_incidents_count"]
    assert (opened.before, opened.after) == (2, 1)  # inc-6 resolved; the late one is open
    events = tmp_path / "events.jsonl"
    events.write_bytes(jsonl(leader.events))
    result = CliRunner().invoke(main, ["tool", "--policy", str(POLICY_DIR), "--events",
                                       str(events), json.dumps({"action": "weekly_digest",
                                                                "week": W08})])
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)["json_summary"]
    assert "revision" not in printed and "revised_at" not in printed
    tool = DigestSummary.model_validate(printed)
    assert digest.content(final) == dump_json(tool)
    published = orjson.loads(leader.harness.to("intel.digests")[-1].value or b"")
    assert {k: v for k, v in published.items()
            if k not in {"revision", "revised_at", "changes"}} == printed


def test_revisions_are_spaced_by_the_minimum_interval(leader):
    leader.publish()
    leader.send(LATE)
    assert leader.revise(after=INTERVAL - timedelta(minutes=1)) == []  # since revision 1
    assert [r.revision for r in leader.revise(after=timedelta(minutes=1))] == [2]

    leader.send(incident_event("late-2", started=at(days=1), service="payments", kind="oom"))
    assert leader.revise(after=timedelta(minutes=5)) == []  # held back, not forgotten
    assert [r.revision for r in leader.revise()] == [3]


def test_the_inputs_must_pause_before_a_revision(leader):
    leader.publish()
    leader.events.append(LATE)
    leader.harness.feed("incidents.events", [(b"late-1", orjson.dumps(LATE))])  # no quiet cycle

    assert leader.revise() == []
    leader.harness.settle()
    assert [r.revision for r in leader.revise(after=timedelta(0))] == [2]


def test_revisions_stop_once_the_watermark_is_revise_for_weeks_past_the_week(leader):
    leader.publish()
    weeks = leader.policy.intel.digest.revise_for_weeks
    horizon = week_end(W08) + timedelta(weeks=weeks)
    leader.send(incident_event("last-day", started=horizon - timedelta(seconds=1),
                               service="search"), LATE)
    assert [r.revision for r in leader.revise()] == [2]  # the watermark is just inside

    leader.send(incident_event("beyond", started=horizon, service="search"),
                incident_event("late-2", started=at(days=1), service="payments", kind="oom"))
    assert leader.revise() == []
    assert [r.revision for r in leader.revisions(W08)] == [1, 2]


def test_revise_for_weeks_zero_never_revises(tmp_path):
    policy = tweak(default_policy(), "digest", revise_for_weeks=0)
    worker = Leader(tmp_path, policy)
    worker.send(*week_events())
    worker.publish()
    worker.send(LATE)
    assert worker.revise() == []
    worker.close()


def test_a_restarted_leader_continues_from_the_latest_published_revision(leader, tmp_path):
    leader.publish()
    leader.send(LATE)
    leader.revise()
    published = [(r.key, r.value) for r in leader.harness.to("intel.digests")]

    restarted = Leader(tmp_path / "restarted")
    restarted.now = leader.now
    restarted.harness.feed("intel.digests", list(reversed(published)))  # any order
    restarted.send(*leader.events)
    assert restarted.revise() == []  # revision 2 is what the week says: nothing to add
    assert restarted.harness.to("intel.digests") == []

    late = incident_event("late-2", started=at(days=1), service="payments", kind="oom")
    restarted.send(late)
    assert [r.revision for r in restarted.revise()] == [3]
    assert digest.content(restarted.revisions(W08)[-1]) == dump_json(
        offline(restarted.policy, [*leader.events, late], W08))
    assert (restarted.reports / "2026-W08.r2.json").exists()
    restarted.close()


def test_an_unreadable_digest_record_is_never_revised(tmp_path):
    worker = Leader(tmp_path)
    worker.harness.feed("intel.digests", [(b"2026-W08", b"{}")])
    worker.send(*week_events(), LATE)
    assert asyncio.run(worker.timer.catch_up()) is None
    assert worker.revise() == []
    worker.close()


# ------------------------------------------------------------------ property


WEEK_DAYS = 7
FIRST_WEEK_END = week_end(W08)


def incidents(draw: st.DrawFn, prefix: str, days: tuple[int, int]) -> list[dict[str, Any]]:
    count = draw(st.integers(0, 6))
    out = []
    for n in range(count):
        started = at(days=draw(st.integers(*days)), hours=draw(st.integers(0, 23)))
        out.append(incident_event(
            f"{prefix}-{n}", started=started,
            service=draw(st.sampled_from(["gateway", "billing"])),
            kind=draw(st.sampled_from(["error_rate", "oom"])),
            severity=draw(st.sampled_from(["P1", "P2", "P3"])),
            status=draw(st.sampled_from(["open", "resolved"])),
            signature=draw(st.sampled_from(["cd" * 32, "ef" * 32]))))
    return out


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]]]:
    """Per week W08..W10: its own incidents (on time), then late batches for any of them
    (new incidents, or an earlier one resolved or re-sent) arriving in the weeks after."""
    on_time = [incidents(draw, f"w{w}", (w * WEEK_DAYS, w * WEEK_DAYS + 6)) for w in range(3)]
    late: list[list[dict[str, Any]]] = []
    for batch in range(draw(st.integers(1, 5))):
        events = incidents(draw, f"late{batch}", (0, 3 * WEEK_DAYS - 1))
        known = [e for week in on_time for e in week]
        if known and draw(st.booleans()):
            target = draw(st.sampled_from(known))["incident"]
            again = dict(target, status="resolved")
            events.append({"event_id": f"resolve-{batch}-{target['incident_id']}",
                           "type": "incident.updated",
                           "occurred_at": target["started_at"], "incident": again})
        if known and draw(st.booleans()):
            events.append(draw(st.sampled_from(known)))  # a re-sync re-sends one
        late.append(events)
    return on_time, late


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(history=histories())
def test_published_revisions_end_equal_to_the_tools_digests(tmp_path_factory, history):
    on_time, late = history
    worker = Leader(tmp_path_factory.mktemp("reports"))
    weeks = [week_label(at(days=w * WEEK_DAYS)) for w in range(3)]
    touched: set[str] = set()

    def arrive(*events: dict[str, Any]) -> None:
        """Events, then the leader's look: note the weeks whose digest it changed."""
        published = [week for week in weeks if worker.revisions(week)]
        before = {week: digest.content(worker.revisions(week)[-1]) for week in published}
        worker.send(*events)
        worker.revise()
        touched.update(week for week in published
                       if digest.content(worker.revisions(week)[-1]) != before[week])

    for w, events in enumerate(on_time):
        # The week's incidents, then a heartbeat of the next week: the watermark passes
        # it. (A new week's incident may rename a signature a past week shows.)
        arrive(*events, incident_event(f"beat-{w}", started=at(days=(w + 1) * WEEK_DAYS, hours=1),
                                       service="search", status="resolved"))
        worker.now = week_end(weeks[w]) + timedelta(hours=8)
        worker.publish()
    for events in late:
        if events:
            arrive(*events)
    for week in weeks:
        revisions = worker.revisions(week)
        assert [r.revision for r in revisions] == list(range(1, len(revisions) + 1))
        assert digest.content(revisions[-1]) == dump_json(offline(worker.policy, worker.events,
                                                                  week))
        for previous, current in zip(revisions, revisions[1:], strict=False):
            assert digest.content(previous) != digest.content(current)  # never without change
            assert current.changes
        if week not in touched:
            assert len(revisions) == 1
    event(f"weeks revised: {len(touched)}")
    worker.close()
