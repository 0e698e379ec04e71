"""Grading: perfect, partial, empty and malformed answers, and the debrief."""

from __future__ import annotations

import pytest

from app.cli import main
from app.simulation.answers import AnswersError, load_answers, parse_answers
from app.simulation.debrief import render_debrief
from app.simulation.exercise import answer_key
from app.simulation.generator import generate_incident
from app.simulation.grading import grade
from app.simulation.models import to_json
from tests.support.repository import SIMULATION_FIXTURES


@pytest.fixture(scope="module")
def key(sim_policy):
    """The key of `simulate exercise --difficulty medium --seed 42` (the fixtures' exercise)."""
    return answer_key(generate_incident(sim_policy, difficulty="medium", seed=42), sim_policy)


@pytest.fixture()
def key_file(tmp_path, key):
    path = tmp_path / "answer_key.json"
    path.write_text(to_json(key), encoding="utf-8")
    return path


def perfect(key):
    exp = key.expected
    return parse_answers({
        "participant": "Perfect",
        "simulation_id": key.simulation_id,
        "severity": exp.severity.level,
        "root_cause": {"key": exp.root_cause.key, "summary": exp.root_cause.sentence},
        "blast_radius": {"sessions": exp.blast_radius.sessions, "users": exp.blast_radius.users,
                         "services": exp.blast_radius.services,
                         "duration_minutes": exp.blast_radius.duration_minutes},
        "remediation": [a.action for a in exp.remediation],
        "regression_tests": [exp.regression_test.description],
        "ruled_out": [" ".join(h.lure_terms) + " ruled out" for h in key.red_herrings],
    })


def test_perfect_answers_score_full_marks_for_every_archetype(sim_policy):
    for arch in sim_policy.archetypes:
        for difficulty in ("easy", "hard"):
            k = answer_key(generate_incident(sim_policy, difficulty=difficulty, seed=3,
                                             archetype=arch.name), sim_policy)
            result = grade(k, perfect(k))
            assert result.percent == 100, (arch.name, result)
            assert result.severity.verdict == "exact"
            assert result.root_cause.verdict == "matched"
            assert result.remediation.missed == [] and result.regression_test.missed == []
            assert all(h.status == "ruled_out" for h in result.red_herrings)


def test_empty_answers_score_zero(key, tmp_path):
    empty = tmp_path / "empty.yml"
    empty.write_text("", encoding="utf-8")
    result = grade(key, load_answers(empty))
    assert result.total == 0.0
    assert result.severity.verdict == "missing"
    assert result.root_cause.verdict == "missed"
    assert result.blast_radius.score == 0.0
    assert all(h.status == "ignored" for h in result.red_herrings)


def test_example_answers_file_grades_well(key):
    result = grade(key, load_answers(SIMULATION_FIXTURES / "answers.example.yml"))
    assert result.severity.verdict == "exact"
    assert result.root_cause.verdict == "matched"
    assert result.remediation.coverage == 1.0 and result.regression_test.coverage == 1.0
    assert {h.status for h in result.red_herrings} == {"ruled_out"}
    assert 95 <= result.percent <= 100


def test_partial_answers_earn_partial_credit(key):
    result = grade(key, load_answers(SIMULATION_FIXTURES / "answers.partial.yml"))
    assert result.severity.verdict == "one_off"
    assert result.severity.score == key.grading.severity_one_off_credit
    assert result.root_cause.verdict == "partial"
    assert 0 < result.blast_radius.score < 1
    assert result.blast_radius.services_extra == ["gateway"]
    assert result.remediation.covered == ["dead_letter"]
    assert result.regression_test.coverage < 1
    chased = [h.id for h in result.red_herrings if h.status == "chased"]
    assert chased == ["queue_lag_blip"]
    assert result.penalty == key.grading.red_herring_penalty
    assert 0 < result.percent < 60


def test_severity_two_levels_off_is_wrong(key):
    answers = parse_answers({"severity": "SEV-1"})
    assert key.expected.severity.level == "SEV-3"
    assert grade(key, answers).severity.verdict == "wrong"


@pytest.mark.parametrize("written", ["SEV-3", "sev3", "Sev 3", "3", 3, "P3"])
def test_severity_spellings(key, written):
    assert grade(key, parse_answers({"severity": written})).severity.verdict == "exact"


@pytest.mark.parametrize(("document", "field"), [
    ({"severity": "SEV-9"}, "severity"),
    ({"blast_radius": {"sessions": "a few"}}, "blast_radius.sessions"),
    ({"blast_radius": {"users": -1}}, "blast_radius.users"),
    ({"sevrity": "SEV-1"}, "sevrity"),
    ({"root_cause": {"kee": "x"}}, "root_cause.kee"),
    ({"remediation": [{"a": 1}]}, "remediation.0"),
    (["SEV-1"], "(top level)"),
])
def test_malformed_answers_name_the_field(document, field):
    with pytest.raises(AnswersError) as caught:
        parse_answers(document, "answers.yml")
    assert str(caught.value).startswith(f"answers.yml: {field}: ")


def test_answers_for_another_exercise_are_refused(key):
    with pytest.raises(AnswersError, match="simulation_id"):
        grade(key, parse_answers({"simulation_id": "sim-000000000000"}))


def test_grade_command_writes_the_debrief(cli, key, key_file, tmp_path):
    out, report = tmp_path / "debrief.md", tmp_path / "grade.json"
    result = cli.invoke(main, ["simulate", "grade", "--key", str(key_file), "--answers",
                               str(SIMULATION_FIXTURES / "answers.partial.yml"), "--out", str(out),
                               "--json", str(report)])
    assert result.exit_code == 0, result.output
    debrief = out.read_text(encoding="utf-8")
    assert "# Debrief" in debrief
    assert key.expected.root_cause.sentence in debrief
    assert "one level off" in debrief
    assert "queue_lag_blip" in debrief and "chased" in debrief
    for action in key.expected.remediation:
        assert action.action in debrief
    assert '"percent"' in report.read_text(encoding="utf-8")


def test_grade_command_prints_the_debrief(cli, key_file):
    result = cli.invoke(main, ["simulate", "grade", "--key", str(key_file), "--answers",
                               str(SIMULATION_FIXTURES / "answers.example.yml")])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# Debrief")


@pytest.mark.parametrize("content", [
    "blast_radius:\n  sessions: a few\n",
    "severity: [SEV-1\n",
    "sevrity: SEV-1\n",
    "- just\n- a list\n",
])
def test_malformed_answers_file_is_one_line_exit_2(cli, key_file, tmp_path, content):
    bad = tmp_path / "answers.yml"
    bad.write_text(content, encoding="utf-8")
    result = cli.invoke(main, ["simulate", "grade", "--key", str(key_file), "--answers",
                               str(bad)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    message = result.output.strip()
    assert message.count("\n") == 0
    assert message.startswith(f"incident-intel: {bad}: ")


def test_not_a_key_is_one_line_exit_2(cli, tmp_path):
    wrong = tmp_path / "answer_key.json"
    wrong.write_text('{"hello": 1}', encoding="utf-8")
    result = cli.invoke(main, ["simulate", "grade", "--key", str(wrong), "--answers",
                               str(SIMULATION_FIXTURES / "answers.example.yml")])
    assert result.exit_code == 2
    assert "answer_key.json" in result.output and "Traceback" not in result.output


def test_debrief_lists_every_red_herring_with_what_rules_it_out(key):
    answers = load_answers(SIMULATION_FIXTURES / "answers.partial.yml")
    text = render_debrief(key, answers, grade(key, answers))
    for herring in key.red_herrings:
        assert herring.id in text and herring.rules_out in text
