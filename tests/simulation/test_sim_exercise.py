"""Exercises: the sheet carries the evidence and the tasks, never the answers."""

from __future__ import annotations

import json
from datetime import date

import pytest

from app.cli import main
from app.contracts import decode_event
from app.simulation.exercise import answer_key, render_exercise, sheet_for
from app.simulation.generator import generate_incident
from app.simulation.models import AnswerKey
from tests.support.repository import SIMULATION_POLICY


def _answers_in(key: AnswerKey) -> list[str]:
    """Text that would give an answer away if it appeared in the exercise."""
    exp = key.expected
    texts = [exp.root_cause.sentence, exp.severity.rationale, exp.regression_test.name,
             exp.regression_test.description]
    texts += [a.action for a in exp.remediation]
    texts += [a.aspect for a in exp.regression_test.covers]
    texts += [h.rules_out for h in key.red_herrings] + [h.looks_like for h in key.red_herrings]
    return texts


def test_exercise_command_writes_sheet_and_key(cli, tmp_path):
    out = tmp_path / "ex"
    result = cli.invoke(main, ["simulate", "exercise", "--difficulty", "medium", "--seed", "11",
                               "--out", str(out), "--date", "2026-11-23", "--participants",
                               "Ana, Bo", "--policy", str(SIMULATION_POLICY)])
    assert result.exit_code == 0, result.output
    sheet = (out / "exercise.md").read_text(encoding="utf-8")
    key = AnswerKey.model_validate_json((out / "answer_key.json").read_bytes())
    assert key.difficulty == "medium"
    for needle in ("2026-11-23", "Ana, Bo", "medium", "45 minutes", "## Scenario",
                   "**Triage**", "**Analyse**", "**Scope**", "**Remediate**", "**Prevent**",
                   "## Debrief", "conversation trajectory", "logs", key.simulation_id):
        assert needle in sheet
    for text in _answers_in(key):
        assert text not in sheet
    # Every key is offered, so the menu does not point at the right one.
    for root_cause in key.root_cause_keys:
        assert f"`{root_cause}`" in sheet
    assert key.expected.root_cause.key in key.root_cause_keys


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_no_archetype_leaks_its_answers(sim_policy, difficulty):
    for arch in sim_policy.archetypes:
        sim = generate_incident(sim_policy, difficulty=difficulty, seed=5, archetype=arch.name)
        key = answer_key(sim, sim_policy)
        sheet = render_exercise(sheet_for(sim, sim_policy, on=date(2026, 11, 23),
                                          participants=[]), sim_policy)
        for text in _answers_in(key):
            assert text not in sheet, (arch.name, text)
        # The events attached stop at the first page: no final severity, no root cause.
        block = sheet.split("events at the first page", 1)[1].split("```jsonl", 1)[1]
        lines = [ln for ln in block.split("```", 1)[0].splitlines() if ln.strip()]
        events = [decode_event(ln.encode()) for ln in lines]
        assert {e.type for e in events} <= {"incident.opened", "alert.transition"}
        assert all(getattr(e, "to_state", "firing") in ("pending", "firing") for e in events)
        assert all(e.incident.root_cause is None for e in events if e.type == "incident.opened")
        assert f'"root_cause":"{key.expected.root_cause.key}"' not in sheet


def test_exercise_is_deterministic_for_a_date(cli, tmp_path):
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = cli.invoke(main, ["simulate", "exercise", "--difficulty", "hard", "--seed", "2",
                                   "--out", str(out), "--date", "2026-01-02", "--policy",
                                   str(SIMULATION_POLICY)])
        assert result.exit_code == 0, result.output
        outputs.append(((out / "exercise.md").read_bytes(),
                        (out / "answer_key.json").read_bytes()))
    assert outputs[0] == outputs[1]
    key = json.loads(outputs[0][1])
    assert key["source"] == "synthetic" and key["grading"]["weights"]


def test_bad_date_is_a_one_line_error(cli, tmp_path):
    result = cli.invoke(main, ["simulate", "exercise", "--difficulty", "easy", "--seed", "1",
                               "--out", str(tmp_path), "--date", "23/11/2026", "--policy",
                               str(SIMULATION_POLICY)])
    assert result.exit_code == 2
    assert "--date" in result.output and "Traceback" not in result.output
