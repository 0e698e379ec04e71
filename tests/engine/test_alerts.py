"""Alert intelligence: the incremental book against a brute-force oracle."""

from __future__ import annotations

import random
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.contracts import AlertsRequest, WeeklyDigestRequest, event_from_obj
from app.intel.alerts import AlertBook, alert_cutoff, max_in_flap_window
from app.intel.engine import ActionError, IntelEngine
from app.intel.event_ids import id_key
from app.intel.periods import from_micros, micros
from app.policy import Policy, PolicyError, load_policy
from tests.support.builders import at, stamp
from tests.support.repository import POLICY_DIR

GRID = 10
"""Minutes between possible transition times; flap windows are multiples of it."""
FINGERPRINTS = ["fp-a", "fp-b", "fp-c"]
SERVICES = ["gateway", "billing"]
STATES = ["pending", "firing", "acknowledged", "resolved", "silenced"]


def transition(event_id: str, fingerprint: str, when: datetime, to_state: str, *,
               service: str = "gateway", kind: str | None = "error_rate",
               incident_id: str | None = None) -> dict[str, Any]:
    alert: dict[str, Any] = {"alert_id": f"a-{event_id}", "fingerprint": fingerprint,
                             "service": service, "severity": "P2"}
    if kind is not None:
        alert["kind"] = kind
    return {"event_id": event_id, "type": "alert.transition", "occurred_at": stamp(when),
            "alert": alert, "to_state": to_state, "incident_id": incident_id}


# Bursts of transitions on a coarse grid of a few days, so that flap windows and
# whole-day window bounds are hit exactly.
transitions = st.builds(
    dict,
    fingerprint=st.sampled_from(FINGERPRINTS),
    day=st.sampled_from([0, 1, 7, 30]),
    hour=st.integers(min_value=0, max_value=1),
    offset=st.integers(min_value=0, max_value=5),
    to_state=st.sampled_from(STATES),
    service=st.sampled_from(SERVICES),
    kind=st.sampled_from(["error_rate", "latency", None]),
    incident=st.sampled_from([None, None, None, "inc_1", "inc_2"]),
)


def materialise(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [transition(f"e{n}", s["fingerprint"],
                       at(days=s["day"], hours=s["hour"], minutes=GRID * s["offset"]),
                       s["to_state"],
                       service=s["service"], kind=s["kind"], incident_id=s["incident"])
            for n, s in enumerate(specs)]


def t_of(raw: dict[str, Any]) -> int:
    return micros(datetime.fromisoformat(raw["occurred_at"].replace("Z", "+00:00")))


def inside(t: int, as_of: int, days: int) -> bool:
    return as_of - days * 86_400_000_000 < t <= as_of


def brute_flap(times: list[int], lo: int, hi: int, minutes: int) -> int:
    """Most transitions in any ``(s, s + W]``, trying every grid start from ``lo - W`` to ``hi``."""
    width, step = minutes * 60_000_000, GRID * 60_000_000
    best, s = 0, lo - width
    while s <= hi:
        best = max(best, sum(1 for t in times if s < t <= s + width))
        s += step
    return best


def oracle(unique: list[dict[str, Any]], as_of: int, days: int, service: str | None,
           policy: Policy) -> dict[str, Any]:
    """The ``alerts`` answer recomputed from scratch, one rule of the issue per line."""
    rules = policy.intel.alerts
    rows, promote = [], []
    for fp in FINGERPRINTS:
        mine = [r for r in unique if r["alert"]["fingerprint"] == fp and t_of(r) <= as_of]
        window = [r for r in mine if inside(t_of(r), as_of, days)]
        fired = [t_of(r) for r in mine if r["to_state"] == "firing"]
        if not any(inside(t, as_of, days) for t in fired):
            continue
        # The newest transition; two at one instant are ordered by their id keys.
        latest = max(mine, key=lambda r: (t_of(r), id_key(r["event_id"])))
        if service is not None and latest["alert"]["service"] != service:
            continue
        f7 = sum(1 for t in fired if inside(t, as_of, 7))
        f30 = sum(1 for t in fired if inside(t, as_of, 30))
        times = [t_of(r) for r in window]
        most = brute_flap(times, min(times), max(times), rules.flap.window_minutes)
        lvl = "high" if f7 >= rules.thresholds.high else (
            "warn" if f7 >= rules.thresholds.warn else "none")
        last = max(t for t in fired if t <= as_of)
        rows.append({
            "fingerprint": fp, "service": latest["alert"]["service"],
            "kind": latest["alert"].get("kind"), "firing_7d": f7, "firing_30d": f30,
            "level": lvl, "flapping": most >= rules.flap.transitions,
            "max_transitions_in_flap_window": most,
            "linked_incidents": sorted({r["incident_id"] for r in window if r["incident_id"]}),
            "last_fired": last,
        })
        linked_30 = any(r["incident_id"] for r in mine if inside(t_of(r), as_of, 30))
        if f7 >= rules.promote.min_firing and not linked_30:
            promote.append(fp)
    rows.sort(key=lambda r: (-r["firing_7d"], -r["firing_30d"], -r["last_fired"],
                             r["fingerprint"]))
    return {
        "rows": [(r["fingerprint"], r["service"], r["kind"], r["firing_7d"], r["firing_30d"],
                  r["level"], r["flapping"], r["max_transitions_in_flap_window"],
                  r["linked_incidents"], r["last_fired"]) for r in rows],
        "flapping": [r["fingerprint"] for r in rows if r["flapping"]],
        "promote": [fp for fp in (r["fingerprint"] for r in rows) if fp in promote],
    }


def observed(engine: IntelEngine, as_of: int, days: int, service: str | None) -> dict[str, Any]:
    answer = engine.alert_report(AlertsRequest(action="alerts", window_days=days,
                                               service=service), from_micros(as_of))
    assert answer.alert_count == len(answer.alerts)
    return {
        "rows": [(r.fingerprint, r.service, r.kind, r.firing_7d, r.firing_30d, r.level,
                  r.flapping, r.max_transitions_in_flap_window, r.linked_incidents,
                  micros(r.last_fired)) for r in answer.alerts],
        "flapping": answer.flapping,
        "promote": [c.fingerprint for c in answer.promote_candidates],
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(transitions, min_size=1, max_size=40),
    resend=st.lists(st.integers(min_value=0, max_value=39), max_size=10),
    seed=st.integers(min_value=0, max_value=2**16),
    as_of_pick=st.integers(min_value=0, max_value=39),
    as_of_shift=st.sampled_from([0, 1, 7, 30, 31]),
    days=st.sampled_from([1, 7, 30, 35]),  # alerts.retention_days bounds the window
    service=st.sampled_from([None, "gateway"]),
    flap=st.tuples(st.sampled_from([2, 3, 4, 5]), st.sampled_from([10, 30, 60, 90])),
)
def test_incremental_alerts_equal_the_brute_force_oracle(policy, specs, resend, seed,
                                                         as_of_pick, as_of_shift, days,
                                                         service, flap):
    raw = materialise(specs)
    # Duplicates and re-sends, shuffled: every transition must still count once.
    stream = raw + [raw[i % len(raw)] for i in resend]
    random.Random(seed).shuffle(stream)
    rules = policy.intel.alerts
    alerts = rules.model_copy(update={"flap": rules.flap.model_copy(
        update={"transitions": flap[0], "window_minutes": flap[1]})})
    tuned = policy.model_copy(update={"intel": policy.intel.model_copy(
        update={"alerts": alerts})})
    engine = IntelEngine(tuned)
    engine.apply_all(event_from_obj(r) for r in stream)
    as_of = t_of(raw[as_of_pick % len(raw)]) + as_of_shift * 86_400_000_000
    assert observed(engine, as_of, days, service) == oracle(raw, as_of, days, service, tuned)


@settings(max_examples=40, deadline=None)
@given(specs=st.lists(transitions, min_size=1, max_size=12),
       clashes=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11)), max_size=6),
       seed=st.integers(min_value=0, max_value=2**16))
def test_records_sharing_an_event_id_give_the_same_answer_in_any_order(policy, specs, clashes,
                                                                       seed):
    raw = materialise(specs)
    # A producer bug: another record re-uses an event id with different content.
    extra = [{**raw[j % len(raw)], "event_id": raw[i % len(raw)]["event_id"]}
             for i, j in clashes]
    stream = raw + extra
    answers = []
    for order in range(3):
        shuffled = list(stream)
        random.Random(seed + order).shuffle(shuffled)
        engine = IntelEngine(policy)
        engine.apply_all(event_from_obj(r) for r in shuffled)
        as_of = max(t_of(r) for r in stream)
        answers.append([observed(engine, as_of, days, None) for days in (7, 30)])
        assert len(engine.alerts) == len({r["event_id"] for r in stream})
    assert answers[0] == answers[1] == answers[2]


@settings(max_examples=300, deadline=None)
@given(slots=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=25),
       width=st.integers(min_value=1, max_value=12))
def test_flap_sweep_equals_trying_every_window_start(slots, width):
    times = sorted(micros(at(minutes=GRID * n)) for n in slots)
    assert max_in_flap_window(times, GRID * width) == brute_flap(times, times[0], times[-1],
                                                                 GRID * width)


def test_window_bounds_exclude_the_start_and_include_as_of(policy):
    """``(as_of - N days, as_of]`` for counts, flapping and linked incidents alike."""
    edge = [transition("x0", "fp-a", at(), "firing", incident_id="inc_edge")]
    edge += [transition(f"x{i}", "fp-a", at(minutes=10 * i), "resolved") for i in (1, 2, 3)]
    edge.append(transition("x9", "fp-a", at(days=7), "firing", incident_id="inc_end"))
    book = book_of(edge)
    row = book.row("fp-a", micros(at(days=7)), 7, policy.intel.alerts)
    assert row is not None
    assert (row.firing_7d, row.linked_incidents) == (1, ["inc_end"])
    assert row.max_transitions_in_flap_window == 3  # x1..x3; x0 sits on the open bound
    later = book.row("fp-a", micros(at(days=7)) - 1, 7, policy.intel.alerts)
    assert later is not None and later.firing_7d == 1 and later.linked_incidents == ["inc_edge"]
    assert later.max_transitions_in_flap_window == 4


def book_of(events: list[dict[str, Any]]) -> AlertBook:
    book = AlertBook()
    for raw in events:
        book.add(event_from_obj(raw))
    return book


def test_prune_keeps_every_answer_whose_window_starts_after_the_cut(policy):
    rng = random.Random(7)
    raw = [transition(f"p{n}", rng.choice(FINGERPRINTS), at(minutes=GRID * rng.randint(0, 12000)),
                      rng.choice(["firing", "resolved"]), incident_id=rng.choice([None, "i"]))
           for n in range(300)]
    full, pruned = book_of(raw), book_of(raw)
    as_of = max(t_of(r) for r in raw)
    cut = alert_cutoff(as_of, policy.intel.alerts)
    forgotten = pruned.prune(cut)
    assert forgotten == sum(1 for r in raw if t_of(r) < cut) > 0
    assert len(pruned) == len(raw) - forgotten
    rules = policy.intel.alerts
    for days in (1, 7, 30, rules.published_window_days):
        for fp in FINGERPRINTS:
            assert pruned.row(fp, as_of, days, rules) == full.row(fp, as_of, days, rules)
            assert pruned.published_row(fp, as_of, rules) == full.published_row(fp, as_of, rules)
    old = next(r for r in raw if t_of(r) < cut)
    assert not pruned.add(event_from_obj({**old, "event_id": "late-resend"}))


def test_rows_follow_the_issue_example_shape(policy):
    """A flapping, linked alert and an unlinked recurring one at the shipped policy."""
    events = [transition(f"g{i}", "fp-gw-5xx", at(hours=10, minutes=10 * i),
                         "firing" if i % 2 == 0 else "resolved",
                         incident_id="inc_7" if i == 0 else None) for i in range(6)]
    events += [transition(f"l{i}", "fp-gw-lat", at(days=i), "firing", kind="latency")
               for i in range(4)]
    engine = IntelEngine(policy)
    engine.apply_all(event_from_obj(r) for r in events)
    answer = engine.alert_report(AlertsRequest(action="alerts", service="gateway"),
                                 at(days=4))
    by_fp = {r.fingerprint: r for r in answer.alerts}
    assert by_fp["fp-gw-5xx"].flapping and by_fp["fp-gw-5xx"].max_transitions_in_flap_window == 6
    assert by_fp["fp-gw-5xx"].linked_incidents == ["inc_7"]
    assert answer.flapping == ["fp-gw-5xx"]
    # fp-gw-lat fired 4 times in (as_of - 7d, as_of]: one more than fp-gw-5xx's 3.
    assert [r.fingerprint for r in answer.alerts] == ["fp-gw-lat", "fp-gw-5xx"]
    [candidate] = answer.promote_candidates
    assert candidate.fingerprint == "fp-gw-lat" and candidate.firing_7d == 4
    assert candidate.recommendation == policy.intel.alerts.promote.template.format(
        fingerprint="fp-gw-lat", service="gateway", kind="latency", count=4)


def policy_copy(tmp_path: Path, **changes: Any) -> Path:
    """A copy of the shipped policy with the ``alerts`` section changed (None: removed)."""
    shutil.copytree(POLICY_DIR, tmp_path / "p")
    path = tmp_path / "p" / "incident_intelligence.yml"
    document = yaml.safe_load(path.read_text())
    if changes.get("drop"):
        del document["alerts"]
    else:
        document["alerts"] = {**document["alerts"], **changes}
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"thresholds": {"warn": 7, "high": 6}}, "alerts.thresholds: warn (7) must not exceed high"),
    ({"flap": {"transitions": 1}}, "alerts.flap.transitions: "),
    ({"flap": {"window_minutes": 0}}, "alerts.flap.window_minutes: "),
    ({"promote": {"template": "{nope} fired"}},
     "alerts.promote.template: unknown placeholder {nope}"),
    ({"published_window_days": 0}, "alerts.published_window_days: "),
    ({"published_window_days": 70}, "alerts.retention_days: 60 is less than the widest "
                                    "alert window (30 days, or published_window_days) plus "
                                    "recurrence.grace_days (72)"),
    ({"retention_days": 57}, "alerts.retention_days: 57 is less than the digest's 30-day "
                             "window plus digest.revise_for_weeks weeks (58)"),
    ({"retention_days": 31}, "alerts.retention_days: 31 is less than"),
    ({"colour": "red"}, "alerts.colour: unknown key"),
])
def test_bad_alert_policy_gives_one_line(tmp_path, changes, message):
    path = policy_copy(tmp_path, **changes)
    with pytest.raises(PolicyError) as caught:
        load_policy(path.parent)
    text = str(caught.value)
    assert text.startswith(f"{path}: {message}") and "\n" not in text


def test_a_policy_without_alerts_gets_the_shipped_defaults(policy, tmp_path):
    path = policy_copy(tmp_path, drop=True)
    assert load_policy(path.parent).intel.alerts == policy.intel.alerts


def test_digest_has_an_escaped_alert_noise_section_for_its_week(policy):
    hostile = "fp|<b>*x*</b>"
    events = [transition(f"h{i}", hostile, at(days=2, minutes=5 * i),
                         "firing" if i % 2 == 0 else "resolved") for i in range(6)]
    events += [transition(f"n{i}", "fp-next-week", at(days=7 + i), "firing") for i in range(3)]
    engine = IntelEngine(policy)
    engine.apply_all(event_from_obj(r) for r in events)
    answer = engine.answer(WeeklyDigestRequest(action="weekly_digest", week="2026-W08"),
                           at(days=20))
    noise = answer.response.json_summary.alert_noise
    assert noise is not None
    assert [r.fingerprint for r in noise.top_recurring] == [hostile]  # next week is not in it
    assert [r.fingerprint for r in noise.flapping] == [hostile]
    assert [c.fingerprint for c in noise.promote_candidates] == [hostile]
    markdown = answer.response.markdown_preview
    section = markdown.split("## Alert noise")[1]
    assert "fp\\|&lt;b&gt;\\*x\\*&lt;/b&gt;" in section
    assert hostile not in markdown
    for table in ("### Top recurring alerts", "### Flapping alerts", "### Promote to incident"):
        assert table in section


@settings(max_examples=150, deadline=None)
@given(specs=st.lists(transitions, min_size=1, max_size=25),
       moves=st.lists(st.integers(min_value=0, max_value=36), min_size=2, max_size=6),
       # Watermarks just before the 7- and 30-day edges of the transitions' days.
       start=st.builds(lambda day, ten_minutes: day * 144 + ten_minutes,
                       st.sampled_from([7, 8, 14, 30, 31, 37, 38]), st.integers(-18, 6)))
def test_only_aged_fingerprints_change_when_the_watermark_moves(policy, specs, moves, start):
    """A fingerprint outside ``aged`` keeps its published record: the shell may skip it."""
    book = book_of(materialise(specs))
    rules = policy.intel.alerts
    marks = [micros(at(minutes=GRID * start))]
    for step in moves:
        marks.append(marks[-1] + step * GRID * 60_000_000)
    for before, after in zip(marks, marks[1:], strict=False):
        moved = book.aged(before, after, rules)
        for fp in FINGERPRINTS:
            if fp not in moved:
                assert book.published_row(fp, before, rules) == \
                    book.published_row(fp, after, rules), (fp, before, after)


def test_engine_retention_forgets_old_alert_transitions(policy):
    """``alerts.retention_days`` bounds the alert book, well before incidents' retention."""
    kept = policy.intel.alerts.retention_days
    assert kept < policy.intel.retention_days
    old = [transition(f"o{i}", "fp-old", at(days=i), "firing") for i in range(5)]
    late = transition("new", "fp-new", at(days=kept + 6), "firing")
    engine = IntelEngine(policy)
    engine.apply_all(event_from_obj(r) for r in [*old, late])
    assert set(engine.alerts.histories) == {"fp-new"} and len(engine.alerts) == 1
    # A re-sent old transition after the cutoff stays forgotten, as a first arrival would.
    engine.apply(event_from_obj({**old[0], "event_id": "o-again"}))
    assert len(engine.alerts) == 1


def test_the_alerts_action_answers_no_window_longer_than_the_transitions_kept(policy):
    engine = IntelEngine(policy)
    engine.apply(event_from_obj(transition("a", "fp-a", at(), "firing")))
    kept = policy.intel.alerts.retention_days
    assert engine.alert_report(AlertsRequest(action="alerts", window_days=kept), at()).alerts
    with pytest.raises(ActionError, match=r"window_days: \d+ is more than the \d+ days"):
        engine.alert_report(AlertsRequest(action="alerts", window_days=kept + 1), at())


def test_an_incidents_first_firing_outlives_the_transitions_in_the_alert_book(policy):
    """Detection latency is a fact of the incident: it is kept as long as the incident,
    while the transition itself leaves the alert book after ``alerts.retention_days``."""
    engine = IntelEngine(policy)
    engine.apply(event_from_obj(transition("f1", "fp-a", at(hours=1), "firing",
                                           incident_id="inc_1")))
    engine.apply(event_from_obj(transition("f2", "fp-a", at(hours=3), "firing",
                                           incident_id="inc_1")))
    assert engine.book.first_firing["inc_1"] == micros(at(hours=1))
    # A corrected version of f1 that names no incident: the next firing is the first.
    engine.apply(event_from_obj(transition("f1", "fp-a", at(hours=2), "firing")))
    assert engine.book.first_firing["inc_1"] == micros(at(hours=3))
    later = policy.intel.alerts.retention_days + 5
    engine.apply(event_from_obj(transition("z", "fp-z", at(days=later), "resolved")))
    assert "fp-a" not in engine.alerts.histories
    assert engine.book.first_firing["inc_1"] == micros(at(hours=3))


def test_a_jump_of_the_watermark_past_the_retention_still_names_what_it_changed(policy):
    """Transitions pruned by one long move of the watermark were inside a window
    before it: their fingerprint's record changes (to a tombstone) and must be named."""
    engine = IntelEngine(policy)
    engine.apply(event_from_obj(transition("a", "fp-quiet", at(), "firing")))
    before = engine.watermark
    assert before is not None
    rules = policy.intel.alerts
    assert engine.alerts.published_row("fp-quiet", before, rules) is not None
    later = at(days=rules.retention_days + 5)
    engine.apply(event_from_obj(transition("b", "fp-next", later, "firing")))
    after = engine.watermark
    assert after is not None and "fp-quiet" not in engine.alerts.histories
    assert "fp-quiet" in engine.alerts.aged(before, after, rules)
    assert engine.alerts.published_row("fp-quiet", after, rules) is None
