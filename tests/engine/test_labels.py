"""Signature labels: the engine's names against a brute-force count over the kept incidents,
and one label wherever a signature is shown (answers, keyed records, digest)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from app.contracts import RecurrenceRequest, WeeklyDigestRequest, event_from_obj
from app.intel import publication
from app.intel.digest import escape
from app.intel.engine import IntelEngine
from app.intel.signature import normalise_title
from app.policy import Policy
from tests.support.builders import at, incident_event

TITLES = ["Disk 91% full on db-1", "disk 97% full on db-2", "inode exhaustion",
          "Disk full", ""]
SERVICES = ["db", "gateway"]
KINDS = ["disk", "oom"]
SIGNATURES = ["s" * 64, "t" * 64]

versions = st.lists(
    st.tuples(st.integers(0, 7),                       # incident number
              st.integers(0, 20),                      # occurred (hours): newest version wins
              st.sampled_from(TITLES), st.sampled_from(SERVICES), st.sampled_from(KINDS),
              st.sampled_from(SIGNATURES + [None])),   # None: the engine computes one
    max_size=40)


def oracle(engine: IntelEngine, signature: str, template: str) -> str:
    """The label by its definition: most common normalised title, service and kind over
    every kept incident of the signature, ties to the smallest text."""
    members = [r for r in engine.book.incidents.values() if r.signature == signature]
    if not members:
        return signature

    def most(values: list[str]) -> str:
        counts = Counter(values)
        return sorted(counts, key=lambda v: (-counts[v], v))[0]

    title = most([normalise_title(r.title) for r in members]) or "untitled"
    return template.format(title=title, service=most([r.service for r in members]),
                           kind=most([r.kind for r in members]))


@settings(max_examples=150, deadline=None)
@given(versions=versions)
def test_labels_equal_a_count_over_the_kept_incidents(policy: Policy, versions) -> None:
    engine = IntelEngine(policy)
    for n, occurred, title, service, kind, signature in versions:
        engine.apply(event_from_obj(incident_event(
            f"inc_{n}", started=at(days=n), occurred=at(days=n, hours=occurred), title=title,
            service=service, kind=kind, signature=signature,
            event_id=f"e{n}-{occurred}-{title}-{service}-{kind}-{signature}")))
    template = policy.intel.recurrence.label_template
    signatures = {r.signature for r in engine.book.incidents.values()} | set(SIGNATURES)
    for signature in signatures:
        assert engine.label("signature", signature) == oracle(engine, signature, template)
    assert engine.label("kind", "disk") == "disk"
    assert engine.label("service", "db") == "db"


@settings(max_examples=150, deadline=None)
@given(versions=versions)
def test_relabels_says_whether_a_change_renamed_a_signature(policy: Policy, versions) -> None:
    """Against the labels before and after each change, by definition."""
    engine = IntelEngine(policy)
    template = policy.intel.recurrence.label_template
    for n, occurred, title, service, kind, signature in versions:
        event = event_from_obj(incident_event(
            f"inc_{n}", started=at(days=n), occurred=at(days=n, hours=occurred), title=title,
            service=service, kind=kind, signature=signature,
            event_id=f"e{n}-{occurred}-{title}-{service}-{kind}-{signature}"))
        old = engine.book.incidents.get(f"inc_{n}")
        touched = {r.signature for r in engine.book.incidents.values()}
        before = {s: oracle(engine, s, template) for s in touched}
        change = engine.apply(event)
        if change is None:
            continue
        sigs = {change.after.signature} | ({old.signature} if old is not None else set())
        renamed = any(s in before and any(r.signature == s for r in
                                          engine.book.incidents.values())
                      and oracle(engine, s, template) != before[s] for s in sigs)
        assert engine.relabels(change) == renamed


def test_one_label_in_the_answers_the_keyed_record_and_the_digest(policy: Policy) -> None:
    sig = "a" * 64
    events = [incident_event(f"inc_{i}", started=at(days=1, hours=i), signature=sig,
                             title=f"Checkout 5xx spike {i}% over SLO", service="checkout")
              for i in range(7)]
    events.append(incident_event("inc_odd", started=at(days=2), signature=sig,
                                 title="something else", service="checkout"))
    engine = IntelEngine(policy)
    engine.apply_all(event_from_obj(e) for e in events)
    as_of = at(days=6)
    label = "checkout 5xx spike #% over slo · checkout/error_rate"
    for days in (7, 30):
        answer = engine.recurrence(RecurrenceRequest(action="recurrence", window_days=days),
                                   as_of)
        assert [(s.key, s.label) for s in answer.top_signatures][0] == (sig, label)
        assert [f.label for f in answer.high_recurrence if f.key == sig] == [label]
        assert [f.label for f in answer.warn_recurrence if f.type == "kind"] == ["error_rate"]
    assert engine.recurrence_update(f"signature:{sig}", as_of).label == label
    digest = engine.weekly_digest(WeeklyDigestRequest(action="weekly_digest",
                                                      week="2026-W08"), as_of).response
    summary = digest.json_summary  # type: ignore[union-attr]
    assert [f.label for f in summary.high_recurrence if f.key == sig] == [label]
    assert escape(f"{label} (aaaaaaaa)") in digest.markdown_preview  # type: ignore[union-attr]


def test_a_label_that_changes_makes_the_record_change(policy: Policy) -> None:
    """Same counts and level, another title: the keyed record says something new."""
    sig = "b" * 64
    engine = IntelEngine(policy)
    engine.apply_all(event_from_obj(incident_event(
        f"inc_{i}", started=at(hours=i), signature=sig, title="queue backlog")) for i in range(3))
    key = publication.OutputKey(publication.RECURRENCE, f"signature:{sig}")
    as_of = at(days=1)
    before = publication.row(engine, key, as_of)
    for i in range(2):  # two of the three now carry another title
        engine.apply(event_from_obj(incident_event(
            f"inc_{i}", started=at(hours=i), signature=sig, title="consumer lag growing",
            occurred=at(hours=i) + timedelta(minutes=5), event_id=f"retitled-{i}")))
    after = publication.row(engine, key, as_of)
    assert before.value is not None and after.value is not None
    assert b'"count_7d":3' in before.value and b'"count_7d":3' in after.value
    assert before.content != after.content
    assert before.record_id != after.record_id
    # What the replica reads back says the same as what it sent.
    assert publication.content(publication.RECURRENCE, after.value) == after.content
    unlabelled = orjson.loads(before.value)
    del unlabelled["label"]  # a record written before records carried a label
    assert publication.content(publication.RECURRENCE, orjson.dumps(unlabelled)) \
        != before.content
    assert engine.label("signature", sig) == "consumer lag growing · gateway/error_rate"
