"""Alertmanager / Grafana payloads → ``alerts.state`` transitions: ids, content, policy.

The properties draw notification streams as Alertmanager produces them (whole
groups re-sent, HA twins, retries, alerts in any order, annotations and a firing
alert's ``endsAt`` changing on every re-send) and check them against a brute-force
oracle: one firing transition per distinct (fingerprint, ``startsAt``) sent, one
resolved transition per distinct resolved (fingerprint, ``startsAt``).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.contracts import AlertsRequest, AlertTransition, decode_event, format_timestamp
from app.intel.engine import IntelEngine
from app.policy import Policy
from app.sources.alertmanager import label_fingerprint, map_alerts, scoped, transition_id
from app.sources.records import InvalidDelivery
from app.stream.inputs import check_record
from tests.support.source_payloads import ZERO_TIME, am_alert, am_group, grafana_group

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def records(policy: Policy, body: dict[str, Any], source: str = "default") -> list[Any]:
    return list(map_alerts(body, source, policy.sources.alertmanager,
                           policy.intel.kind_derivation).records)


def transitions(policy: Policy, body: dict[str, Any], source: str = "default",
                ) -> list[AlertTransition]:
    out = []
    for record in records(policy, body, source):
        event = decode_event(record.value)
        assert isinstance(event, AlertTransition)
        out.append(event)
    return out


# ------------------------------------------------------------------- fingerprint

def test_the_fingerprint_is_alertmanagers() -> None:
    # Fingerprints a real Alertmanager 0.25 sent for these label sets.
    assert label_fingerprint({"alertname": "Toggle", "instance": "127.0.0.1:17001",
                              "job": "toggle", "job_name": "x",
                              "severity": "critical"}) == "01906f1e60b7afcd"
    assert label_fingerprint({"alertname": "Toggle", "instance": "127.0.0.1:17001",
                              "job": "toggle", "service": "checkout",
                              "severity": "critical"}) == "29349c66faa86569"


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=6))
def test_the_fingerprint_depends_on_the_label_set_only(labels: dict[str, str]) -> None:
    shuffled = dict(random.Random(7).sample(sorted(labels.items()), len(labels)))
    assert label_fingerprint(shuffled) == label_fingerprint(labels)
    assert len(label_fingerprint(labels)) == 16
    if labels:
        name = next(iter(labels))
        assert label_fingerprint({**labels, name: labels[name] + "x"}) != \
            label_fingerprint(labels)


def test_a_missing_fingerprint_is_recomputed_a_given_one_is_kept(policy: Policy) -> None:
    labels = {"alertname": "Toggle", "service": "checkout"}
    recomputed = transitions(policy, am_group([am_alert(labels, iso(0))]))
    given_one = transitions(policy, am_group([am_alert(labels, iso(0),
                                                       fingerprint="ABCDEF0123456789")]))
    assert recomputed[0].alert.fingerprint == scoped("default", label_fingerprint(labels))
    assert given_one[0].alert.fingerprint == "am:default:abcdef0123456789"


# -------------------------------------------------------------- what a transition is

def test_an_entry_is_one_episode_firing_then_resolved(policy: Policy) -> None:
    labels = {"alertname": "Toggle", "service": "checkout", "severity": "critical"}
    firing, = transitions(policy, am_group([am_alert(labels, iso(0))]))
    fired, resolved = transitions(policy, am_group([am_alert(labels, iso(0), ends=iso(30))]))
    assert fired == firing  # the resolved entry repeats its firing, byte for byte
    assert (firing.to_state, firing.occurred_at, firing.from_state) == (
        "firing", T0, None)
    assert (resolved.to_state, resolved.occurred_at, resolved.from_state) == (
        "resolved", T0 + timedelta(seconds=30), "firing")
    assert resolved.event_id == transition_id("default", label_fingerprint(labels), T0,
                                              "resolved")
    refire, = transitions(policy, am_group([am_alert(labels, iso(60))]))
    assert refire.event_id != firing.event_id and refire.alert.fingerprint == \
        firing.alert.fingerprint


def test_one_instant_spelled_differently_is_one_transition(policy: Policy) -> None:
    labels = {"alertname": "Toggle"}
    spellings = ["2026-12-07T01:00:00Z", "2026-12-07T01:00:00.000000000Z",
                 "2026-12-07T03:00:00+02:00"]
    ids = {r.record_id for starts in spellings
           for r in records(policy, am_group([am_alert(labels, starts, ends=iso(60))]))}
    assert len(ids) == 2  # one firing, one resolved


def test_status_comes_from_the_alert_not_the_group(policy: Policy) -> None:
    body = am_group([am_alert({"alertname": "A"}, iso(0)),
                     am_alert({"alertname": "B"}, iso(0), ends=iso(5))])
    assert body["status"] == "firing"
    states = [(t.alert.labels["alertname"], t.to_state) for t in transitions(policy, body)]
    assert states == [("A", "firing"), ("B", "firing"), ("B", "resolved")]


def test_two_sources_never_share_a_fingerprint_or_an_id(policy: Policy) -> None:
    body = am_group([am_alert({"alertname": "A"}, iso(0), ends=iso(9))])
    eu, us = transitions(policy, body, "eu"), transitions(policy, body, "us")
    assert not {t.event_id for t in eu} & {t.event_id for t in us}
    assert {t.alert.fingerprint for t in eu} == {"am:eu:" + label_fingerprint({"alertname": "A"})}


def test_grafana_speaks_the_same_payload_with_extras(policy: Policy) -> None:
    entries = [am_alert({"alertname": "DiskFull", "job": "node"}, iso(0), ends=iso(9))]
    delivery = map_alerts(grafana_group(entries), "grafana", policy.sources.alertmanager,
                          policy.intel.kind_derivation)
    plain = records(policy, am_group(entries), "grafana")
    assert delivery.sender == "grafana" and list(delivery.records) == plain


# ------------------------------------------------------------------------ policy

@pytest.mark.parametrize(("labels", "service", "kind", "severity", "env"), [
    ({"alertname": "HighLatency", "service": "checkout", "job": "api", "severity": "CRITICAL"},
     "checkout", "latency", "P1", "prod"),
    ({"alertname": "DiskFull", "job": "node", "severity": "warning", "env": "staging"},
     "node", "disk", "P2", "staging"),
    ({"alertname": "Weird", "kind": "queue", "severity": "P0", "environment": "dev"},
     "unknown", "queue", "P0", "dev"),
    ({"alertname": "Nothing", "severity": "unheard-of"}, "unknown", "unknown", "P3", "prod"),
])
def test_service_kind_severity_env_come_from_labels_by_policy(
        policy: Policy, labels: dict[str, str], service: str, kind: str, severity: str,
        env: str) -> None:
    event, = transitions(policy, am_group([am_alert(labels, iso(0))]))
    alert = event.alert
    assert (alert.service, alert.kind, alert.severity, alert.env) == (service, kind, severity,
                                                                      env)
    assert alert.labels == labels


def test_the_service_label_order_is_policy(policy: Policy) -> None:
    job_first = policy.sources.alertmanager.model_copy(update={"service_label": ["job"]})
    body = am_group([am_alert({"alertname": "A", "service": "checkout", "job": "api"}, iso(0))])
    record, = map_alerts(body, "default", job_first, policy.intel.kind_derivation).records
    event = decode_event(record.value)
    assert isinstance(event, AlertTransition) and event.alert.service == "api"


def test_records_pass_the_workers_input_checks(policy: Policy) -> None:
    body = am_group([am_alert({"alertname": "A", "service": "s"}, iso(0), ends=iso(3))])
    for record in records(policy, body):
        checked = check_record(record.value, key=record.key.encode(), topic="alerts.state",
                               partition=0, offset=0, received_ms=None, policy=policy.intel)
        assert isinstance(checked, AlertTransition)
        assert record.key == checked.alert.fingerprint
        assert record.record_id == checked.event_id
        assert record.time == format_timestamp(checked.occurred_at)


# ---------------------------------------------------------------- invalid bodies

@pytest.mark.parametrize(("mutate", "where"), [
    (lambda b: b.update(version="3"), "version"),
    (lambda b: b.pop("alerts"), "alerts"),
    (lambda b: b["alerts"][0].pop("startsAt"), "alerts.0.startsAt"),
    (lambda b: b["alerts"][0].update(startsAt=ZERO_TIME), "alerts.0.startsAt"),
    (lambda b: b["alerts"][0].update(startsAt="yesterday"), "alerts.0.startsAt"),
    (lambda b: b["alerts"][0].update(status="pending"), "alerts.0.status"),
    (lambda b: b["alerts"][0]["labels"].update(n=3), "alerts.0.labels.n"),
    (lambda b: b["alerts"][1].update(endsAt=ZERO_TIME), "alerts.1.endsAt"),
    (lambda b: b["alerts"][1].update(fingerprint="xyz"), "alerts.1.fingerprint"),
    (lambda b: b.update(truncatedAlerts=-1), "truncatedAlerts"),
])
def test_a_body_not_in_the_format_is_refused_whole_naming_the_field(policy: Policy, mutate,
                                                                   where: str) -> None:
    body = am_group([am_alert({"alertname": "A"}, iso(0)),
                     am_alert({"alertname": "B"}, iso(0), ends=iso(1))])
    mutate(body)
    with pytest.raises(InvalidDelivery, match=rf"^{where.replace('.', '[.]')}[: ]"):
        map_alerts(body, "default", policy.sources.alertmanager, policy.intel.kind_derivation)


def test_a_bad_source_name_and_a_non_object_body_are_refused(policy: Policy) -> None:
    for source in ("", "a:b", "x" * 41, "../etc"):
        with pytest.raises(InvalidDelivery, match="source"):
            map_alerts(am_group([]), source, policy.sources.alertmanager,
                       policy.intel.kind_derivation)
    with pytest.raises(InvalidDelivery):
        map_alerts([1, 2], "default", policy.sources.alertmanager, policy.intel.kind_derivation)


# ------------------------------------------------------------- notification streams

LABEL_SETS = [{"alertname": "Toggle", "service": "checkout", "severity": "critical"},
              {"alertname": "Toggle", "job": "node"},
              {"alertname": "DiskFull", "instance": "db-1:9100"}]


@st.composite
def notification_streams(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """Posts of one group: each a list of alert entries (an episode state per alert)."""
    episodes = {}
    for index in range(len(LABEL_SETS)):
        starts = sorted(draw(st.sets(st.integers(0, 3000), min_size=1, max_size=4)))
        episodes[index] = [(s, s + draw(st.integers(1, 50))) for s in starts]
    posts = []
    for _ in range(draw(st.integers(1, 12))):
        entries = []
        for index in draw(st.sets(st.sampled_from(range(len(LABEL_SETS))), min_size=1)):
            start, end = draw(st.sampled_from(episodes[index]))
            resolved = draw(st.booleans())
            entries.append(am_alert(LABEL_SETS[index], iso(start),
                                    ends=iso(end) if resolved else None))
        posts.append(entries)
    return posts


def _resend(entries: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    """The same notification as a repeat, an HA twin or a retry may carry it."""
    varied = []
    for entry in rng.sample(entries, len(entries)):
        entry = {**entry, "annotations": {"summary": f"value {rng.random()}"}}
        if entry["status"] == "firing":
            entry["endsAt"] = rng.choice([ZERO_TIME, iso(rng.randint(4000, 9000))])
        varied.append(entry)
    return am_group(varied, receiver=rng.choice(["a", "b"]),
                    group_key=rng.choice(["{}:{}", '{}:{alertname="Toggle"}']),
                    external_url=rng.choice(["http://am-0:9093", "http://am-1:9093"]))


@settings(max_examples=60, deadline=None)
@given(notification_streams(), st.integers(0, 2**32))
def test_repeats_twins_and_retries_collapse_and_refires_do_not(
        policy: Policy, posts: list[list[dict[str, Any]]], seed: int) -> None:
    rng = random.Random(seed)
    once = {(r.record_id, r.value) for entries in posts for r in records(policy, am_group(entries))}
    noisy = [_resend(entries, rng) for entries in posts for _ in range(rng.randint(1, 3))]
    again = {(r.record_id, r.value) for body in noisy for r in records(policy, body)}
    assert again == once
    assert len({record_id for record_id, _ in once}) == len(once)  # one content per id

    sent = {(label_fingerprint(e["labels"]), e["startsAt"]) for entries in posts for e in entries}
    ended = {(label_fingerprint(e["labels"]), e["startsAt"]) for entries in posts
             for e in entries if e["status"] == "resolved"}
    events = [decode_event(value) for _, value in sorted(once)]
    states = [e.to_state for e in events if isinstance(e, AlertTransition)]
    assert states.count("firing") == len(sent)
    assert states.count("resolved") == len(ended)

    engine = IntelEngine(policy)
    engine.apply_all(decode_event(r.value) for body in noisy for r in records(policy, body))
    assert engine.watermark is not None
    as_of = max(e.occurred_at for e in events)
    rows = engine.alert_report(AlertsRequest(action="alerts", window_days=30), as_of).alerts
    fired = {row.fingerprint: row.firing_30d for row in rows}
    expected: dict[str, int] = {}
    for fingerprint, _ in sent:
        key = scoped("default", fingerprint)
        expected[key] = expected.get(key, 0) + 1
    assert fired == expected
