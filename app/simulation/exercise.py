"""Tabletop exercises: ``exercise.md`` for participants, ``answer_key.json`` for the facilitator.

The exercise carries the scenario, the five tasks, the rubric, the menu of
root-cause keys, the answers template and the evidence (trajectory, logs and
the events as they stood at detection). Nothing of the expected findings goes
into it: the events are cut at the first page (no severity upgrade, no
resolution, no root cause), and the key is a separate file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from app.contracts import AlertTransition, IncidentEvent, format_timestamp
from app.simulation.catalog import SimulationPolicy
from app.simulation.models import (
    AnswerKey,
    GradingRules,
    LogLine,
    SimulatedIncident,
    Turn,
    to_json,
)

TASKS: tuple[tuple[str, str], ...] = (
    ("Triage", "Decide the severity on the SEV-0..SEV-3 rubric below and say why in one or "
               "two sentences."),
    ("Analyse", "Find the root cause. Pick one key from the root-cause list and explain the "
                "mechanism in a sentence."),
    ("Scope", "State the blast radius: affected sessions, users and services, and how long "
              "it lasted (first to last affected moment)."),
    ("Remediate", "List the actions that stop it now and the ones that keep it from coming "
                  "back."),
    ("Prevent", "Describe the regression test that would catch a recurrence: its input, "
                "what it asserts and where it runs."),
)

ANSWERS_TEMPLATE = """\
participant: ""            # your name or team
simulation_id: {sim_id}
severity: ""               # SEV-0, SEV-1, SEV-2 or SEV-3
severity_rationale: ""
root_cause:
  key: ""                  # one key from the root-cause list
  summary: ""
blast_radius:
  sessions: 0              # number of affected sessions
  users: 0                 # number of affected users (or accounts)
  services: []             # affected services
  duration_minutes: 0      # first to last affected moment
remediation:
  - ""
regression_tests:
  - ""
ruled_out:                 # leads you checked and dismissed, with the evidence
  - ""
"""


@dataclass
class ExerciseSheet:
    """What goes into ``exercise.md``; the evidence sections are optional."""

    exercise_id: str
    title: str
    date: str
    participants: list[str]
    difficulty: str
    scenario: str
    time_limit_minutes: int
    root_cause_keys: list[str]
    trajectory: list[Turn] | None = None
    logs: list[LogLine] = field(default_factory=list)
    events: list[IncidentEvent | AlertTransition] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)
    source_note: str | None = None


def grading_rules(policy: SimulationPolicy) -> GradingRules:
    g = policy.grading
    return GradingRules(weights=g.weights.model_dump(),
                        severity_one_off_credit=g.severity_one_off_credit,
                        root_cause_partial_credit=g.root_cause_partial_credit,
                        red_herring_penalty=g.red_herring_penalty)


def answer_key(sim: SimulatedIncident, policy: SimulationPolicy) -> AnswerKey:
    return AnswerKey(
        simulation_id=sim.simulation_id,
        source="synthetic",
        difficulty=sim.difficulty,
        archetype=sim.archetype,
        title=sim.title,
        root_cause_keys=policy.root_cause_keys(),
        expected=sim.expected,
        red_herrings=sim.red_herrings,
        grading=grading_rules(policy),
    )


def events_at_detection(
    events: Iterable[IncidentEvent | AlertTransition],
) -> list[IncidentEvent | AlertTransition]:
    """The first page only: the alert going pending/firing and the incident being opened."""
    keep: list[IncidentEvent | AlertTransition] = []
    for event in events:
        if isinstance(event, AlertTransition) and event.to_state in ("pending", "firing"):
            keep.append(event)
        elif isinstance(event, IncidentEvent) and event.type == "incident.opened":
            keep.append(event.model_copy(update={
                "incident": event.incident.model_copy(update={"root_cause": None,
                                                              "resolved_at": None}),
            }))
    return keep


def sheet_for(sim: SimulatedIncident, policy: SimulationPolicy, *, on: date,
              participants: list[str]) -> ExerciseSheet:
    return ExerciseSheet(
        exercise_id=sim.simulation_id,
        title=sim.title,
        date=on.isoformat(),
        participants=participants,
        difficulty=sim.difficulty,
        scenario=sim.scenario,
        time_limit_minutes=policy.grading.time_limit_minutes,
        root_cause_keys=policy.root_cause_keys(),
        trajectory=sim.trajectory,
        logs=sim.logs,
        events=events_at_detection(sim.events),
    )


# --------------------------------------------------------------------- rendering


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: Iterable[list[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return out


def render_exercise(sheet: ExerciseSheet, policy: SimulationPolicy) -> str:
    """The participants' sheet as Markdown (deterministic for the same inputs)."""
    who = ", ".join(sheet.participants) if sheet.participants else "_(fill in)_"
    lines = [
        f"# Incident exercise: {sheet.title}",
        "",
        *_table(["", ""], [
            ["Date", sheet.date],
            ["Participants", who],
            ["Difficulty", sheet.difficulty],
            ["Time limit", f"{sheet.time_limit_minutes} minutes"],
            ["Exercise id", sheet.exercise_id],
        ]),
        "",
        "## Scenario",
        "",
        sheet.scenario,
        "",
    ]
    if sheet.source_note:
        lines += [f"_{sheet.source_note}_", ""]
    lines += ["## Your tasks", ""]
    lines += [f"{n}. **{name}**: {text}" for n, (name, text) in enumerate(TASKS, start=1)]
    lines += [
        "",
        "Note every lead you investigated and dismissed, with the evidence that ruled it "
        "out: chasing a false lead costs points, ruling one out does not.",
        "",
        "## Rules",
        "",
        f"- You have {sheet.time_limit_minutes} minutes. Stop when the facilitator calls time, "
        "even mid-sentence.",
        "- Work only from the evidence below. Ask the facilitator for anything you would "
        "look up in real life; they answer from the answer key or say it is unknown.",
        "- Do not open the answer key.",
        "",
        "## Severity rubric",
        "",
        *_table(["Level", "Priority", "Meaning", "Example"],
                [[r.level, r.priority, r.meaning, r.example] for r in policy.severity_rubric]),
        "",
        "## Root-cause keys",
        "",
        "Pick the one that fits best (the list covers every scenario in the catalog):",
        "",
        *[f"- `{key}`" for key in sheet.root_cause_keys],
        "",
        "## Submitting your answers",
        "",
        "Fill in `answers.yml` (the format is in the project README) and hand it to the "
        "facilitator:",
        "",
        "```yaml",
        ANSWERS_TEMPLATE.format(sim_id=sheet.exercise_id).rstrip(),
        "```",
        "",
        "## Debrief (facilitator)",
        "",
        "1. Grade every answers file: `incident-intel simulate grade --key answer_key.json "
        "--answers answers.yml --out debrief.md`.",
        "2. Walk through the debrief task by task: what the team concluded, what the "
        "evidence showed, where the two parted.",
        "3. Go through each false lead and the evidence that rules it out.",
        "4. Agree on one change to runbooks, alerts or tests that the exercise showed is "
        "missing, and give it an owner.",
        "5. Keep it blameless: the exercise tests the system and the process, not people.",
        "",
    ]
    appendix = ord("A")
    if sheet.timeline:
        lines += [f"## Appendix {chr(appendix)}: timeline", "", *sheet.timeline, ""]
        appendix += 1
    if sheet.trajectory is not None:
        lines += [
            f"## Appendix {chr(appendix)}: conversation trajectory",
            "",
            "Scores are the policy classifier's (input) and the output classifier's; "
            "blank means not measured.",
            "",
            *_table(
                ["time", "session", "actor", "turn", "role", "content", "policy score",
                 "output score", "intent", "blocked", "status", "latency ms"],
                [[format_timestamp(t.at), t.session_id, t.actor_id, t.turn, t.role, t.content,
                  t.signals.policy_score, t.signals.output_score, t.signals.intent,
                  t.signals.blocked, t.signals.status, t.signals.latency_ms]
                 for t in sheet.trajectory],
            ),
            "",
        ]
        appendix += 1
    if sheet.logs:
        lines += [f"## Appendix {chr(appendix)}: logs", "", "```jsonl"]
        lines += [log.model_dump_json() for log in sheet.logs]
        lines += ["```", ""]
        appendix += 1
    if sheet.events:
        lines += [
            f"## Appendix {chr(appendix)}: incident and alert events at the first page",
            "",
            "```jsonl",
            *[event.model_dump_json() for event in sheet.events],
            "```",
            "",
        ]
    return "\n".join(lines)


def write_exercise(out_dir: str | Path, markdown: str, key: AnswerKey) -> list[Path]:
    """Write ``exercise.md`` and ``answer_key.json`` into ``out_dir`` (created if missing)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sheet, key_file = out / "exercise.md", out / "answer_key.json"
    sheet.write_text(markdown, encoding="utf-8")
    key_file.write_text(to_json(key), encoding="utf-8")
    return [sheet, key_file]
