"""The simulation policy: validated like every policy file, with `file: field: reason`."""

from __future__ import annotations

import copy
import shutil

import pytest
import yaml

from app.cli import main
from app.policy import POLICY_FILES, Policy
from app.policyfile import PolicyError, validate_document
from app.simulation.catalog import SimulationPolicy
from tests.support.repository import ROOT, SIMULATION_POLICY


@pytest.fixture(scope="module")
def document():
    return yaml.safe_load(SIMULATION_POLICY.read_text(encoding="utf-8"))


def test_registered_and_checked_with_the_other_policy_files(cli):
    assert POLICY_FILES["simulation"] == "simulation.yml"
    assert Policy.model_fields["simulation"].annotation is SimulationPolicy
    result = cli.invoke(main, ["policy", "check", str(ROOT / "policy")])
    assert result.exit_code == 0, result.output
    assert "simulation.yml" in result.output


def test_rubric_has_an_example_per_level(sim_policy):
    assert [r.level for r in sim_policy.severity_rubric] == ["SEV-0", "SEV-1", "SEV-2", "SEV-3"]
    examples = [r.example for r in sim_policy.severity_rubric]
    assert all(examples) and len(set(examples)) == 4


def _broken(document, change):
    doc = copy.deepcopy(document)
    change(doc)
    return doc


@pytest.mark.parametrize(("change", "field", "reason"), [
    (lambda d: d.update(surprise=1), "surprise", "unknown key"),
    (lambda d: d["archetypes"][0].update(colour="red"), "archetypes.0.colour", "unknown key"),
    (lambda d: d["archetypes"][0]["trajectory"]["user_lines"].append("hi {name}"),
     "archetypes.0.trajectory.lines", "unknown placeholder"),
    (lambda d: d["archetypes"][1]["services"]["primary"].append("mainframe"),
     "archetypes.1.services", "unknown service 'mainframe'"),
    (lambda d: d["archetypes"][2]["trajectory"].update(exchanges=[9, 3]),
     "archetypes.2.trajectory.exchanges", "reversed"),
    (lambda d: d["grading"]["weights"].update(severity=0.9), "grading.weights",
     "add up to 1"),
    (lambda d: d["severity_rubric"].pop(), "severity_rubric", "at least 4"),
    (lambda d: d["archetypes"].append(copy.deepcopy(d["archetypes"][0])), "archetypes",
     "name listed twice"),
    (lambda d: d["difficulty"].pop("hard"), "difficulty", "missing hard"),
    (lambda d: d["stream"].update(recurrence=[{"count": 3}] * 9), "stream.kinds",
     "distinct kinds"),
])
def test_bad_policy_names_file_field_and_reason(document, change, field, reason):
    with pytest.raises(PolicyError) as caught:
        validate_document("simulation.yml", _broken(document, change), SimulationPolicy)
    message = str(caught.value)
    assert message.startswith(f"simulation.yml: {field}"), message
    assert reason in message


def test_policy_check_reports_a_bad_simulation_file(cli, tmp_path, document):
    policy_dir = tmp_path / "policy"
    shutil.copytree(ROOT / "policy", policy_dir)
    broken = _broken(document, lambda d: d["archetypes"][0].update(difficulty="brutal"))
    (policy_dir / "simulation.yml").write_text(yaml.safe_dump(broken), encoding="utf-8")
    result = cli.invoke(main, ["policy", "check", str(policy_dir)])
    assert result.exit_code == 2
    assert "simulation.yml: archetypes.0.difficulty" in result.output
    assert "Traceback" not in result.output


def test_teams_can_add_an_archetype(cli, tmp_path, document):
    extra = copy.deepcopy(next(a for a in document["archetypes"] if a["name"] == "disk"))
    extra.update(name="inode_exhaustion", title="Inodes exhausted on {service}")
    extra["root_cause"] = {"key": "too_many_small_files", "sentence": "Tiny files used up "
                           "every inode.", "keywords": ["inode", "small files"]}
    doc = copy.deepcopy(document)
    doc["archetypes"].append(extra)
    path = tmp_path / "simulation.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    result = cli.invoke(main, ["simulate", "generate", "--difficulty", "easy", "--archetype",
                               "inode_exhaustion", "--seed", "1", "--policy", str(path)])
    assert result.exit_code == 0, result.output
    assert '"key": "too_many_small_files"' in result.stdout
    listed = cli.invoke(main, ["simulate", "archetypes", "--policy", str(path)])
    assert "inode_exhaustion" in listed.output


@pytest.mark.parametrize("sub", ["generate", "exercise", "replay", "grade", "stream",
                                 "archetypes"])
def test_every_subcommand_has_help(cli, sub):
    result = cli.invoke(main, ["simulate", sub, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output
