"""The generator: determinism (golden files), valid contract records, consistent evidence.

Golden files: ``tests/simulation/golden/<archetype>.json`` hold the output of
``simulate generate --archetype <name> --difficulty <its difficulty> --seed 7``.
They change on purpose when the catalog (``policy/simulation.yml``) or the
generator changes; regenerate them with

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/simulation/test_sim_generator.py

and bump ``GENERATOR_VERSION`` in ``app/simulation/models.py`` when the same
catalog would now give different output.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from app.cli import main
from app.contracts import AlertTransition, IncidentEvent, decode_event
from app.simulation.catalog import DIFFICULTIES, SEV_LEVELS
from app.simulation.generator import generate_incident
from app.simulation.models import to_json
from tests.support.repository import ROOT, SIMULATION_POLICY

GOLDEN = Path(__file__).resolve().parent / "golden"
GOLDEN_SEED = 7
ARCHETYPES = [
    "direct_jailbreak", "obvious_policy_violation", "gradual_erosion", "intent_drift",
    "decomposition", "coordinated_attack", "novel_vector", "multi_session",
    "error_rate", "latency", "oom", "crashloop", "disk", "security", "queue", "network",
]


def test_catalog_holds_the_required_archetypes(sim_policy):
    by_name = {a.name: a for a in sim_policy.archetypes}
    assert set(ARCHETYPES) <= set(by_name)
    assert by_name["direct_jailbreak"].difficulty == "easy"
    assert by_name["obvious_policy_violation"].difficulty == "easy"
    for name in ("gradual_erosion", "intent_drift", "decomposition"):
        assert by_name[name].difficulty == "medium"
    for name in ("coordinated_attack", "novel_vector", "multi_session"):
        assert by_name[name].difficulty == "hard"


@pytest.mark.parametrize("name", ARCHETYPES)
def test_golden(sim_policy, name):
    arch = sim_policy.archetype(name)
    text = to_json(generate_incident(sim_policy, difficulty=arch.difficulty, seed=GOLDEN_SEED,
                                     archetype=name))
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden {path}; run with UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name}: output differs from the golden file (see the module docstring)")


def test_cli_output_is_byte_identical_to_the_golden(cli, monkeypatch):
    monkeypatch.chdir(ROOT)
    args = ["simulate", "generate", "--difficulty", "medium", "--archetype", "gradual_erosion",
            "--seed", str(GOLDEN_SEED), "--policy", str(SIMULATION_POLICY)]
    first = cli.invoke(main, args)
    second = cli.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert first.stdout == second.stdout
    assert first.stdout == (GOLDEN / "gradual_erosion.json").read_text(encoding="utf-8")


def test_cli_writes_the_same_bytes_to_a_file(cli, tmp_path):
    out = tmp_path / "sim.json"
    args = ["simulate", "generate", "--difficulty", "easy", "--archetype", "oom", "--seed", "3",
            "--policy", str(SIMULATION_POLICY)]
    printed = cli.invoke(main, args)
    written = cli.invoke(main, [*args, "--out", str(out)])
    assert written.exit_code == 0, written.output
    assert out.read_text(encoding="utf-8") == printed.stdout


def test_different_seeds_give_different_incidents(sim_policy):
    seen = {to_json(generate_incident(sim_policy, difficulty="hard", seed=seed,
                                      archetype="coordinated_attack")) for seed in range(6)}
    assert len(seen) == 6


def test_without_archetype_the_seed_picks_one_of_the_difficulty(sim_policy):
    for difficulty in DIFFICULTIES:
        names = {generate_incident(sim_policy, difficulty=difficulty, seed=s).archetype
                 for s in range(12)}
        pool = {a.name for a in sim_policy.pool(difficulty)}
        assert names <= pool
        assert len(names) > 1


@pytest.mark.parametrize("name", ARCHETYPES)
def test_every_archetype_and_difficulty_gives_valid_consistent_records(sim_policy, name):
    for difficulty in DIFFICULTIES:
        for seed in (1, 2, 3):
            sim = generate_incident(sim_policy, difficulty=difficulty, seed=seed,
                                    archetype=name)
            _check(sim)


def _check(sim):
    # Every event is a valid contract record of incidents.events or alerts.state.
    decoded = [decode_event(orjson.dumps(e.model_dump(mode="json"))) for e in sim.events]
    assert all(isinstance(e, IncidentEvent | AlertTransition) for e in decoded)
    incidents = [e for e in decoded if isinstance(e, IncidentEvent)]
    assert [e.type for e in incidents][0] == "incident.opened"
    assert incidents[-1].type == "incident.closed"
    assert {e.incident.incident_id for e in incidents} == {incidents[0].incident.incident_id}
    alerts = [e for e in decoded if isinstance(e, AlertTransition)]
    assert {a.incident_id for a in alerts} == {incidents[0].incident.incident_id}
    times = [e.occurred_at for e in decoded]
    assert times == sorted(times)
    assert incidents[-1].incident.severity == sim.expected.severity.priority

    # Trajectory and logs tell the same story.
    sessions = {t.session_id for t in sim.trajectory}
    logged = {line.session for line in sim.logs if line.session}
    assert logged <= sessions
    assert sessions <= logged
    br = sim.expected.blast_radius
    assert set(br.session_ids) <= sessions
    assert br.sessions == len(br.session_ids) > 0
    assert br.users == len(br.user_ids) > 0
    assert set(br.user_ids) <= {t.actor_id for t in sim.trajectory}
    assert br.start <= br.end
    assert all(t.role in ("user", "assistant") for t in sim.trajectory)
    assert [t.at for t in sim.trajectory] == sorted(t.at for t in sim.trajectory)
    assert [line.ts for line in sim.logs] == sorted(line.ts for line in sim.logs)
    assert set(br.services) <= {line.service for line in sim.logs}
    assert sim.expected.severity.level in SEV_LEVELS
    assert sim.expected.root_cause.key
    assert sim.expected.remediation and sim.expected.regression_test.covers

    # Red herrings are listed with what rules them out, and their lures are in the evidence.
    evidence = " ".join([*(t.model_dump_json() for t in sim.trajectory),
                         *(line.model_dump_json() for line in sim.logs)])
    for herring in sim.red_herrings:
        assert herring.rules_out and herring.lure_terms
        assert all(term in evidence for term in herring.lure_terms)


def test_noise_and_red_herrings_grow_with_difficulty(sim_policy):
    def load(difficulty):
        sims = [generate_incident(sim_policy, difficulty=difficulty, seed=s,
                                  archetype="gradual_erosion") for s in range(5)]
        return (sum(len(s.red_herrings) for s in sims),
                sum(len({t.session_id for t in s.trajectory}) for s in sims),
                sum(len(s.logs) for s in sims))

    easy, medium, hard = load("easy"), load("medium"), load("hard")
    for i in range(3):
        assert easy[i] < medium[i] < hard[i]


def test_severity_is_spread_over_the_rubric(sim_policy):
    levels = {generate_incident(sim_policy, difficulty=a.difficulty, seed=s,
                                archetype=a.name).expected.severity.level
              for a in sim_policy.archetypes for s in range(4)}
    assert levels == set(SEV_LEVELS)


def test_content_is_placeholder_in_substance(sim_policy):
    for arch in sim_policy.archetypes:
        if arch.category != "safety":
            continue
        for seed in range(4):
            sim = generate_incident(sim_policy, difficulty=arch.difficulty, seed=seed,
                                    archetype=arch.name)
            final = [t for t in sim.trajectory
                     if t.role == "assistant" and (t.signals.output_score or 0) >= 0.85]
            assert all("[[placeholder" in t.content for t in final)
            assert any("[[" in t.content for t in sim.trajectory if t.role == "user")


def test_gradual_erosion_escalates_under_the_threshold(sim_policy):
    for seed in range(5):
        sim = generate_incident(sim_policy, difficulty="medium", seed=seed,
                                archetype="gradual_erosion")
        attack = set(sim.expected.blast_radius.session_ids)
        scores = [t.signals.policy_score for t in sim.trajectory
                  if t.role == "user" and t.session_id in attack]
        assert len(scores) >= 10
        assert all(s < sim.block_threshold for s in scores[:-1])
        assert scores[-2] > scores[0] + 0.3


def test_shapes_spread_over_sessions_and_actors(sim_policy):
    multi = generate_incident(sim_policy, difficulty="hard", seed=4, archetype="multi_session")
    br = multi.expected.blast_radius
    assert br.sessions >= 3 and br.users == 1
    coordinated = generate_incident(sim_policy, difficulty="hard", seed=4,
                                    archetype="coordinated_attack")
    br = coordinated.expected.blast_radius
    assert br.users >= 3 and br.sessions == br.users
    parts = generate_incident(sim_policy, difficulty="medium", seed=4, archetype="decomposition")
    users = [t.content for t in parts.trajectory
             if t.role == "user" and t.session_id in parts.expected.blast_radius.session_ids]
    assert sum("of " in u and "component" in u for u in users) >= 4
    assert "combine" in users[-1]


def test_unknown_archetype_and_bad_start_are_one_line_errors(cli):
    bad = cli.invoke(main, ["simulate", "generate", "--difficulty", "easy", "--archetype",
                            "nope", "--seed", "1", "--policy", str(SIMULATION_POLICY)])
    assert bad.exit_code == 2
    assert "unknown archetype 'nope'" in bad.output
    assert "Traceback" not in bad.output
    bad = cli.invoke(main, ["simulate", "generate", "--difficulty", "easy", "--seed", "1",
                            "--start", "yesterday", "--policy", str(SIMULATION_POLICY)])
    assert bad.exit_code == 2
    assert "--start" in bad.output


def test_start_sets_the_onset(sim_policy):
    from datetime import UTC, datetime

    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    sim = generate_incident(sim_policy, difficulty="easy", seed=1, archetype="error_rate",
                            start=start)
    assert sim.expected.blast_radius.start == start
