"""The pure rules of digest revisions (``app.intel.digest``): when a week's digest
changes, what a revision lists, and until when a week is revised."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.contracts import dump_json
from app.intel import digest
from app.intel.periods import week_end
from tests.support.builders import at, incident_event
from tests.support.digests import offline
from tests.support.policies import default_policy

POLICY = default_policy()
W08 = "2026-W08"


def _incidents(draw: st.DrawFn, prefix: str, first_day: int, last_day: int,
               signatures: tuple[str, ...] = ("cd" * 32, "ef" * 32)) -> list[dict[str, Any]]:
    return [incident_event(
        f"{prefix}-{n}", started=at(days=draw(st.integers(first_day, last_day)),
                                    hours=draw(st.integers(0, 23))),
        service=draw(st.sampled_from(["gateway", "billing"])),
        kind=draw(st.sampled_from(["error_rate", "oom"])),
        severity=draw(st.sampled_from(["P1", "P2"])),
        status=draw(st.sampled_from(["open", "resolved"])),
        signature=draw(st.sampled_from(signatures)))
        for n in range(draw(st.integers(0, 8)))]


@st.composite
def week_and_later(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Incidents of the 30 days up to W08's end, and new incidents of the weeks after
    (of other signatures: a signature's label is its most common variant over all time,
    so an incident of a week's signature may rename it in that week's digest)."""
    return (_incidents(draw, "in", -23, 6),
            _incidents(draw, "after", 7, 40, signatures=("ab" * 32, "12" * 32)))


@settings(max_examples=40, deadline=None)
@given(history=week_and_later())
def test_a_past_weeks_digest_does_not_move_with_later_incidents_or_time(history):
    week, later = history
    anchor = incident_event("anchor", started=at(days=7, hours=1), service="search")
    before = offline(POLICY, [*week, anchor], W08)
    after = offline(POLICY, [*week, anchor, *later], W08)
    assert before.as_of == after.as_of == week_end(W08)
    assert digest.content(before) == digest.content(after)
    assert digest.revise(digest.first_revision(before), after, at(days=9)) is None


@settings(max_examples=40, deadline=None)
@given(history=week_and_later(), late=week_and_later())
def test_a_revision_exists_exactly_when_the_content_changed_and_lists_something(history, late):
    week, _ = history
    extra, _ = late
    extra = [dict(e, event_id=f"late-{e['event_id']}",
                  incident=dict(e["incident"], incident_id=f"late-{e['incident']['incident_id']}"))
             for e in extra]
    anchor = incident_event("anchor", started=at(days=7, hours=1), service="search")
    first = digest.first_revision(offline(POLICY, [*week, anchor], W08))
    now = offline(POLICY, [*week, anchor, *extra], W08)
    revised = digest.revise(first, now, at(days=9))
    if digest.content(first) == digest.content(now):
        assert revised is None
    else:
        assert revised is not None and revised.revision == 2 and revised.changes
        assert revised.revised_at == at(days=9)
        assert digest.content(revised) == dump_json(now)
        fields = {c.field for c in revised.changes}
        if first.recent_7d_count != now.recent_7d_count:
            assert "recent_7d_count" in fields


def test_the_changes_of_a_revision_name_counts_and_entries():
    week = [incident_event(f"inc-{n}", started=at(days=1, hours=n), signature="cd" * 32)
            for n in range(3)]
    late = [incident_event(f"oom-{n}", started=at(days=2, hours=n), service="payments",
                           kind="oom", severity="P1") for n in range(3)]
    anchor = incident_event("anchor", started=at(days=7, hours=1), service="search")
    first = digest.first_revision(offline(POLICY, [*week, anchor], W08))
    revised = digest.revise(first, offline(POLICY, [*week, *late, anchor], W08), at(days=9))

    assert revised is not None
    changes = {c.field: c.model_dump(exclude_none=True) for c in revised.changes or []}
    assert changes["recent_7d_count"] == {"field": "recent_7d_count", "before": 3, "after": 6}
    assert changes["open_incidents_count"] == {"field": "open_incidents_count", "before": 3,
                                               "after": 6}
    assert changes["by_severity.P1"] == {"field": "by_severity.P1", "before": 0, "after": 3}
    assert changes["buckets"] == {"field": "buckets", "added": ["payments|oom"]}
    markdown = digest.render_markdown(revised, POLICY.intel)
    assert markdown.startswith("# Weekly Incident Digest — 2026-W08\n\n**Revised** — revision 2 "
                               "at 2026-02-25T00:00:00Z; late events changed this week:\n\n"
                               "- incidents started this week: 3 → 6\n")
    assert "**Revised**" not in digest.render_markdown(first, POLICY.intel)


def test_a_week_is_revisable_until_revise_for_weeks_past_its_end():
    end = week_end(W08)
    weeks = POLICY.intel.digest.revise_for_weeks
    assert digest.revisable(W08, end + timedelta(weeks=weeks) - timedelta(microseconds=1),
                            POLICY.intel)
    assert not digest.revisable(W08, end + timedelta(weeks=weeks), POLICY.intel)


def test_a_later_incident_renaming_a_signature_changes_the_past_week():
    week = [incident_event(f"inc-{n}", started=at(days=1, hours=n), signature="cd" * 32,
                           title="disk full") for n in range(3)]
    later = [incident_event(f"later-{n}", started=at(days=20, hours=n), signature="cd" * 32,
                            title="5xx spike") for n in range(4)]
    anchor = incident_event("anchor", started=at(days=7, hours=1), service="search")
    first = digest.first_revision(offline(POLICY, [*week, anchor], W08))
    revised = digest.revise(first, offline(POLICY, [*week, anchor, *later], W08), at(days=21))

    assert revised is not None
    assert [c.field for c in revised.changes or []] == ["warn_recurrence"]
    assert revised.warn_recurrence[0].label != first.warn_recurrence[0].label
