"""Turning a real historical incident into an exercise.

Input: the incident's records from a JSONL file of ``incidents.events``,
``alerts.state`` and ``learning.events`` values (docs/architecture.md §3). Output: an
exercise sheet and an answer key, both pseudonymised with one
:class:`~app.simulation.pseudonyms.Pseudonymizer` (the same value gets the same
token in both). The exercise shows the timeline as statuses, with the severity
only as first paged; the root cause, later severities, postmortems and the
regression tests added are withheld and kept in the key.

Expected findings come from the record: the final severity, the recorded root
cause (or the postmortem's), the services of the incident and its alerts, the
span from ``started_at`` to ``resolved_at``, and sessions/users from labels
(``sessions_affected``/``users_affected`` counts, else the distinct session and
user ids seen). Remediation and the regression test are the catalog's for the
incident's kind, when the catalog has an archetype of that kind.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from app.contracts import (
    AlertTransition,
    Incident,
    IncidentEvent,
    LearningEvent,
    LinkVerdict,
    event_from_obj,
    format_timestamp,
)
from app.errors import UserError
from app.eventfile import read_events
from app.simulation.catalog import Archetype, Difficulty, SimulationPolicy
from app.simulation.exercise import ExerciseSheet, grading_rules
from app.simulation.grading import OTHER_KEY
from app.simulation.identifiers import digest
from app.simulation.models import (
    Action,
    AnswerKey,
    Aspect,
    BlastRadius,
    ExpectedFindings,
    RegressionTest,
    RootCause,
    SeverityFinding,
)
from app.simulation.pseudonyms import Pseudonymizer, field_kind
from app.simulation.severity import level_of

AnyEvent = IncidentEvent | AlertTransition | LearningEvent
Shown = IncidentEvent | AlertTransition
"""What an exercise sheet shows of the incident."""
_STOPWORDS = frozenset(
    "about after again against because before being between could during their there these "
    "those through under until where which while would should other every never".split()
)


def load_events(path: str | Path) -> list[AnyEvent]:
    """Every record of a JSONL file; a bad line stops with ``file:line: reason``."""
    read = read_events([path])
    if read.problems:
        raise UserError(str(read.problems[0]))
    # Verdicts on pairs of incidents tell an exercise nothing about one incident.
    return [e for e in read.events if not isinstance(e, LinkVerdict)]


@dataclass
class Replay:
    sheet: ExerciseSheet
    key: AnswerKey


def _slug(text: str) -> str:
    return "_".join(re.findall(r"[a-z0-9]+", text.lower()))


def _keywords(text: str) -> list[str]:
    words = [w for w in re.findall(r"[a-z][a-z0-9-]+", text.lower())
             if len(w) >= 5 and w not in _STOPWORDS and not re.search(r"\d", w)]
    return list(dict.fromkeys(words))[:8]


def _archetype_for(policy: SimulationPolicy, kind: str | None) -> Archetype | None:
    matches = [a for a in policy.archetypes if a.kind == kind]
    matches.sort(key=lambda a: a.category != "operational")
    return matches[0] if matches else None


def _label_count(labels: list[dict[str, str]], name: str) -> int | None:
    for found in labels:
        value = found.get(name, "")
        if value.strip().isdigit():
            return int(value)
    return None


@dataclass
class _Source:
    """The incident's own records, in time order."""

    incident_id: str
    updates: list[IncidentEvent]
    alerts: list[AlertTransition]
    learning: list[LearningEvent]

    @property
    def first(self) -> Incident:
        return self.updates[0].incident

    @property
    def final(self) -> Incident:
        return self.updates[-1].incident

    @property
    def postmortems(self) -> list[LearningEvent]:
        return [e for e in self.learning if e.type == "postmortem.published"]

    @property
    def tests(self) -> list[LearningEvent]:
        return [e for e in self.learning if e.type == "regression_test.added"]


def _source(events: list[AnyEvent], incident_id: str) -> _Source:
    mine = [e for e in events if isinstance(e, IncidentEvent)
            and e.incident.incident_id == incident_id]
    if not mine:
        known = sorted({e.incident.incident_id for e in events if isinstance(e, IncidentEvent)})
        shown = ", ".join(known[:5]) + (", …" if len(known) > 5 else "")
        raise UserError(f"incident {incident_id!r} not found in the events "
                        f"({len(known)} incident(s): {shown or 'none'})")
    order = sorted(range(len(mine)), key=lambda i: (mine[i].occurred_at, i))
    alerts = sorted((e for e in events if isinstance(e, AlertTransition)
                     and e.incident_id == incident_id), key=lambda e: e.occurred_at)
    learning = [e for e in events if isinstance(e, LearningEvent)
                and e.incident_id == incident_id]
    return _Source(incident_id, [mine[i] for i in order], alerts, learning)


def _pseudonymise(source: _Source) -> tuple[Pseudonymizer, list[Shown]]:
    """One mapping for everything, sheet and key alike; ids first so numbering is stable."""
    names = Pseudonymizer()
    raw = [e.model_dump(mode="json") for e in [*source.updates, *source.alerts, *source.learning]]
    names.register(source.incident_id, "incident")
    names.collect(raw)
    clean = [event_from_obj(names.scrub(doc)) for doc in raw]
    return names, [e for e in clean if isinstance(e, IncidentEvent | AlertTransition)]


def _root_cause(source: _Source, policy: SimulationPolicy, archetype: Archetype | None,
                names: Pseudonymizer) -> RootCause:
    """The recorded root cause (or the postmortem's), matched to a catalog key if it can be."""
    final = source.final
    recorded = final.root_cause or next(
        (p.root_cause for p in source.postmortems if p.root_cause), None)
    keys = policy.root_cause_keys()
    if recorded and _slug(recorded) in keys:
        rc_key = _slug(recorded)
    elif recorded and archetype and any(k.lower() in recorded.lower()
                                        for k in archetype.root_cause.keywords):
        rc_key = archetype.root_cause.key
    else:
        rc_key = OTHER_KEY
    sentence = names.text(recorded) if recorded else (
        "The source incident has no recorded root cause; discuss the analysis in the debrief.")
    if archetype and rc_key == archetype.root_cause.key:
        rc_words = list(archetype.root_cause.keywords)
    else:
        rc_words = _keywords(sentence)
    return RootCause(key=rc_key, sentence=sentence, keywords=rc_words)


def _severity(source: _Source) -> SeverityFinding:
    """The final severity, as the responders rated it."""
    final, first = source.final, source.first
    level = level_of(final.severity)
    return SeverityFinding(
        level=level, priority=final.severity,
        rationale=f"{level}: the responders rated the incident {final.severity} at the end "
                  f"(it was first paged as {first.severity}).")


def _blast_radius(source: _Source, names: Pseudonymizer) -> BlastRadius:
    """Services of the incident and its alerts, its span, and the sessions and users seen."""
    final, alerts = source.final, source.alerts
    label_sets = [final.labels, *[a.alert.labels for a in alerts]]
    user_values = sorted({names.text(v) for labels in label_sets for k, v in labels.items()
                          if field_kind(k) == "user"})
    session_values = sorted({names.text(v) for labels in label_sets for k, v in labels.items()
                             if field_kind(k) == "session"})
    seen: list[IncidentEvent | AlertTransition] = [*source.updates, *alerts]
    end = final.resolved_at or max(e.occurred_at for e in seen)
    services = list(dict.fromkeys([final.service, *sorted({a.alert.service for a in alerts})]))
    return BlastRadius(
        sessions=_label_count(label_sets, "sessions_affected") or len(session_values),
        users=_label_count(label_sets, "users_affected") or len(user_values),
        services=services,
        session_ids=session_values,
        user_ids=user_values,
        start=final.started_at,
        end=end,
        duration_minutes=max(0, math.ceil((end - final.started_at).total_seconds() / 60)),
    )


def _follow_up(source: _Source, archetype: Archetype | None, root_cause: RootCause,
               names: Pseudonymizer) -> tuple[list[Action], RegressionTest]:
    """The catalog's remediation and regression test for the kind, else generic ones."""
    if archetype:
        remediation = [Action(id=a.id, action=a.action, keywords=list(a.keywords))
                       for a in archetype.remediation]
        regression = RegressionTest(
            name=archetype.regression_test.name,
            description=archetype.regression_test.description,
            covers=[Aspect(aspect=c.aspect, keywords=list(c.keywords))
                    for c in archetype.regression_test.covers])
    else:
        remediation = [Action(id="postmortem_actions",
                              action="Turn the postmortem's findings into owned action items.",
                              keywords=["action item", "postmortem", "owner", "ticket"])]
        regression = RegressionTest(
            name="test_root_cause_does_not_recur",
            description="A test that reproduces the recorded root cause and asserts it is "
                        "caught.",
            covers=[Aspect(aspect="reproduces the root cause",
                           keywords=root_cause.keywords or ["root"])])
    if source.tests:
        added = ", ".join(names.text(t.test_id or "?") for t in source.tests)
        regression = regression.model_copy(update={
            "description": f"{regression.description} Tests added after the incident: {added}."})
    return remediation, regression


def _answer_key(source: _Source, policy: SimulationPolicy, difficulty: Difficulty,
                names: Pseudonymizer) -> AnswerKey:
    """The expected findings; the calls to ``names`` run in a fixed order (token numbering)."""
    final = source.final
    archetype = _archetype_for(policy, final.kind)
    root_cause = _root_cause(source, policy, archetype, names)
    severity = _severity(source)
    blast = _blast_radius(source, names)
    remediation, regression = _follow_up(source, archetype, root_cause, names)
    postmortem = "\n\n".join(names.text(p.root_cause) for p in source.postmortems
                              if p.root_cause)
    return AnswerKey(
        simulation_id="replay-" + digest("replay", source.incident_id)[:12],
        source="replay",
        difficulty=difficulty,
        archetype=archetype.name if archetype else None,
        title=names.text(final.title) or f"{final.service} incident",
        root_cause_keys=sorted({*policy.root_cause_keys(), OTHER_KEY}),
        expected=ExpectedFindings(
            root_cause=root_cause,
            severity=severity,
            blast_radius=blast,
            remediation=remediation,
            regression_test=regression,
        ),
        red_herrings=[],
        grading=grading_rules(policy),
        postmortem=postmortem or None,
        withheld=["root_cause", "severity after the first page", "postmortem",
                  "regression tests added"],
    )


def _timeline(clean: list[Shown]) -> list[str]:
    """Statuses and alert transitions; the severity only as first paged."""
    opened = next(e for e in clean if isinstance(e, IncidentEvent))
    lines = []
    for event in sorted(clean, key=lambda e: e.occurred_at):
        at = format_timestamp(event.occurred_at)
        if isinstance(event, IncidentEvent):
            note = f"status {event.incident.status}"
            if event is opened:
                note += f", paged as {event.incident.severity}"
            lines.append(f"- {at} `{event.type}`: {note}")
        else:
            name = event.alert.labels.get("alertname", event.alert.fingerprint)
            lines.append(f"- {at} alert `{name}` on {event.alert.service}: "
                         f"{event.from_state or '—'} → {event.to_state}")
    return lines


def _first_page(clean: list[Shown], first: Incident) -> list[Shown]:
    """What responders had when paged: the opened incident, as opened, and its alerts."""
    opened = next(e for e in clean if isinstance(e, IncidentEvent))
    page: list[Shown] = [opened.model_copy(update={"incident": opened.incident.model_copy(
        update={"root_cause": None, "resolved_at": None, "status": "open",
                "severity": first.severity})})]
    page += [a for a in clean if isinstance(a, AlertTransition)
             and a.to_state in ("pending", "firing")]
    page.sort(key=lambda e: e.occurred_at)
    return page


def replay_exercise(events: list[AnyEvent], incident_id: str, policy: SimulationPolicy, *,
                    on: date, participants: list[str],
                    difficulty: Difficulty = "medium") -> Replay:
    """The exercise sheet and answer key of one recorded incident, pseudonymised."""
    source = _source(events, incident_id)
    names, clean = _pseudonymise(source)
    token = names.text(incident_id)
    key = _answer_key(source, policy, difficulty, names)
    first, final = source.first, source.final
    kind = final.kind or "unclassified"
    scenario = (
        f"On {final.started_at:%Y-%m-%d} at {final.started_at:%H:%M} UTC an incident "
        f"({token}) started on {final.service}, kind {kind}: \"{key.title}\". It was first "
        f"paged as {first.severity}. The timeline is the incident as recorded; names, user "
        "and session ids, e-mails, addresses and hosts are replaced by pseudonyms, and the "
        "root cause, later severity changes and the postmortem are withheld."
    )
    sheet = ExerciseSheet(
        exercise_id=key.simulation_id,
        title=key.title,
        date=on.isoformat(),
        participants=participants,
        difficulty=difficulty,
        scenario=scenario,
        time_limit_minutes=policy.grading.time_limit_minutes,
        root_cause_keys=key.root_cause_keys,
        trajectory=None,
        events=_first_page(clean, first),
        timeline=_timeline(clean),
        source_note="Replay of a real incident.",
    )
    return Replay(sheet=sheet, key=key)
