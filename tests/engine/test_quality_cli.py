"""`simulate evaluate` and `policy suggest`: planted truth in, the same answer and patch out;
the patch pastes into a policy that then runs on a held-out stream."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import orjson
import pytest
import yaml
from click.testing import CliRunner

from app.cli import main
from app.policy import load_policy
from tests.support.builders import at, incident_event, jsonl, stamp
from tests.support.repository import POLICY_DIR


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("stream")
    events, truth = where / "s.jsonl", where / "t.json"
    code, _, err = invoke("simulate", "stream", "--seed", "4", "--difficulty", "medium",
                          "--out", str(events), "--truth", str(truth))
    assert code == 0, err
    return events, truth


def test_evaluate_scores_every_planted_pair(stream: tuple[Path, Path]) -> None:
    events, truth_path = stream
    code, out, err = invoke("simulate", "evaluate", "--seed", "4", "--difficulty", "medium",
                            "--policy", str(POLICY_DIR))
    assert code == 0, err
    answer = orjson.loads(out)
    truth = orjson.loads(truth_path.read_bytes())
    assert truth["difficulty"] == "medium"
    assert all(len(c["decoys"]) == 1 for c in truth["clusters"])
    planted = sum(math.comb(len(g["incident_ids"]), 2)
                  for g in truth["clusters"] + truth["recurrence"])
    overall = answer["overall"]
    assert answer["source"] == "planted_truth"
    assert overall["tp"] + overall["fn"] == planted
    # Decoys start inside their cluster's window sharing its kind or service: kept, wrongly.
    assert overall["fp"] >= sum(len(c["incident_ids"]) for c in truth["clusters"])
    assert f"F1 {overall['f1']}" in err
    # The same stream read back from the files it was written to: the same answer.
    code, again, _ = invoke("simulate", "evaluate", "--events", str(events), "--truth",
                            str(truth_path), "--policy", str(POLICY_DIR))
    assert code == 0 and orjson.loads(again) == answer


def test_suggest_prints_the_answers_patch_and_it_pastes(stream: tuple[Path, Path],
                                                        tmp_path: Path) -> None:
    events, truth = stream
    code, out, err = invoke("policy", "suggest", "--events", str(events), "--truth",
                            str(truth), "--policy", str(POLICY_DIR))
    assert code == 0, err
    _, evaluated, _ = invoke("simulate", "evaluate", "--events", str(events), "--truth",
                             str(truth), "--policy", str(POLICY_DIR))
    suggestion = orjson.loads(evaluated)["suggestion"]
    assert suggestion is not None
    comments = [line for line in out.splitlines() if line.startswith("#")]
    assert len(comments) == 3 and "cross-validated" in comments[1]
    assert out.endswith(suggestion["policy_patch"])
    assert f"F1 {suggestion['expected']['before']['f1']:.4f} -> " \
           f"{suggestion['expected']['after']['f1']:.4f}" in comments[1]

    # Paste it: a copy of the policy with correlation.min_score and rules replaced.
    policy_dir = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, policy_dir)
    intel_file = policy_dir / "incident_intelligence.yml"
    document = yaml.safe_load(intel_file.read_text())
    document["correlation"].update(yaml.safe_load(out)["correlation"])
    intel_file.write_text(yaml.safe_dump(document, sort_keys=False))
    applied = load_policy(policy_dir).intel.correlation
    assert applied.min_score == suggestion["min_score"]
    assert {r.name: r.weight for r in applied.rules} == suggestion["weights"]
    # ...and judge a stream it was not chosen on.
    code, held_out, err = invoke("simulate", "evaluate", "--seed", "9", "--difficulty",
                                 "medium", "--policy", str(policy_dir))
    assert code == 0, err
    code, shipped, _ = invoke("simulate", "evaluate", "--seed", "9", "--difficulty", "medium",
                              "--policy", str(POLICY_DIR))
    assert orjson.loads(held_out)["labelled_pairs"] == orjson.loads(shipped)["labelled_pairs"]


def test_suggest_from_verdicts_says_why_there_is_none(tmp_path: Path) -> None:
    events = [incident_event("inc_a", started=at(days=1)),
              incident_event("inc_b", started=at(days=1, minutes=5)),
              {"event_id": "v1", "type": "incident.linked", "occurred_at": stamp(at(days=2)),
               "incident_id": "inc_a", "related_incident_id": "inc_b", "verdict": "related",
               "by": "ana"}]
    path = tmp_path / "e.jsonl"
    path.write_bytes(jsonl(events))
    code, out, err = invoke("policy", "suggest", "--events", str(path), "--policy",
                            str(POLICY_DIR))
    assert code == 0 and out == ""
    assert ("no suggestion: 1 labelled pair(s) in the window; a suggestion needs at least 30"
            in err)


@pytest.mark.parametrize(("args", "needle"), [
    (["--events", "{events}"], "--events and --truth go together"),
    (["--events", "{events}", "--truth", "{events}"], "is this a truth file"),
    (["--difficulty", "impossible"], "'impossible' is not one of"),
])
def test_bad_arguments_are_one_line(stream: tuple[Path, Path], args: list[str],
                                    needle: str) -> None:
    events, _ = stream
    code, out, err = invoke("simulate", "evaluate",
                            *[a.format(events=events) for a in args])
    assert code == 2 and out == ""
    assert "Traceback" not in err
    assert needle in err.strip().splitlines()[-1]  # one line says what is wrong
