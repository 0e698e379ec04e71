"""`incident-intel tool` as other programs call it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main
from tests.support.builders import at, incident_event, jsonl
from tests.support.repository import POLICY_DIR


@pytest.fixture()
def events_file(tmp_path: Path) -> Path:
    events = [incident_event(f"h{i}", started=at(hours=i), signature="e" * 64) for i in range(6)]
    events.append(incident_event("late", started=at(days=9), service="billing"))
    path = tmp_path / "events.jsonl"
    path.write_bytes(jsonl(events) + b"{not json\n" + b'{"type": "incident.opened"}\n')
    return path


def run(args: list[str], cwd: Path) -> tuple[int, str, str]:
    runner = CliRunner()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        result = runner.invoke(main, ["tool", "--policy", str(POLICY_DIR), *args])
    finally:
        os.chdir(old)
    return result.exit_code, result.stdout, result.stderr


def test_bad_lines_are_reported_and_skipped(events_file, tmp_path):
    code, out, err = run(["--events", str(events_file), '{"action":"recurrence"}'], tmp_path)
    assert code == 0
    assert f"{events_file}:8: not JSON" in err
    assert f"{events_file}:9: " in err
    assert "skipped 2 invalid" in err
    assert json.loads(out)["as_of"] == "2026-02-25T00:00:00Z"  # newest occurred_at


def test_as_of_hides_later_events(events_file, tmp_path):
    code, out, _ = run(["--events", str(events_file), "--as-of", "2026-02-20T00:00:00Z",
                        '{"action":"correlate","incident_id":"late"}'], tmp_path)
    assert code == 2
    assert json.loads(out)["error"]["code"] == "unknown_incident"


def test_an_as_of_after_the_newest_event_is_a_quiet_period(events_file, tmp_path):
    """The answer a worker gives after a quiet period, at that as_of: windows aged."""
    query = '{"action":"gate","service":"gateway","profile":"staging"}'
    _, busy, _ = run(["--events", str(events_file), "--as-of", "2026-02-17T00:00:00Z", query],
                     tmp_path)
    _, quiet, _ = run(["--events", str(events_file), "--as-of", "2026-04-01T00:00:00Z", query],
                      tmp_path)
    assert json.loads(busy)["total_incidents"] == 6
    assert json.loads(quiet)["total_incidents"] == 0
    assert json.loads(quiet)["as_of"] == "2026-04-01T00:00:00Z"


@pytest.mark.parametrize("action", ['{"action":"nope"}', "{oops", '{"action":"recurrence",'
                                    '"window_days":-1}', '{"action":"gate","service":"g",'
                                    '"profile":"moon"}'])
def test_bad_actions_exit_2_with_an_error_object(events_file, tmp_path, action):
    code, out, _ = run(["--events", str(events_file), action], tmp_path)
    assert code == 2
    error = json.loads(out)["error"]
    assert error["code"] in {"invalid_request", "invalid_argument"} and error["message"]


def test_digest_state_file_dedupes_followups_across_runs(events_file, tmp_path):
    state = tmp_path / "state.json"
    args = ["--events", str(events_file), "--as-of", "2026-02-23T08:00:00Z", "--state",
            str(state), '{"action":"weekly_digest","save_artifacts":true}']
    code, out, _ = run(args, tmp_path)
    first = json.loads(out)["json_summary"]["followups"]
    assert code == 0 and len(first["created"]) == 1
    assert json.loads(state.read_text())["emitted_followups"] == [
        "intel_recur:2026-W08:gateway|error_rate"]
    md = (tmp_path / "ops/reports/incidents/weekly/2026-W08.md").read_bytes()
    code, out, _ = run(args, tmp_path)
    second = json.loads(out)["json_summary"]["followups"]
    assert second["created"] == [] and second["skipped"][0]["reason"] == "already_exists"
    assert (tmp_path / "ops/reports/incidents/weekly/2026-W08.md").read_bytes() != b""
    assert md.startswith(b"# Weekly Incident Digest")


def test_real_process_never_shows_a_traceback(tmp_path):
    cmd = [sys.executable, "-m", "app.cli", "tool", "--events", str(tmp_path / "missing.jsonl"),
           '{"action":"recurrence"}']
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "missing.jsonl" in proc.stderr


def test_events_far_ahead_of_now_are_reported_and_skipped(events_file, tmp_path):
    # "late" occurred 2026-02-25T00:00Z: more than an hour ahead of this --now.
    code, out, err = run(["--events", str(events_file), "--now", "2026-02-24T22:30:00Z",
                          '{"action":"correlate","incident_id":"late"}'], tmp_path)
    assert code == 2 and json.loads(out)["error"]["code"] == "unknown_incident"
    assert f"{events_file}:7: occurred_at 2026-02-25T00:00:00+00:00 is 90 min ahead" in err
    assert "skipped 3 invalid" in err
    code, out, _ = run(["--events", str(events_file), "--now", "2026-02-24T23:30:00Z",
                        '{"action":"correlate","incident_id":"late"}'], tmp_path)
    assert code == 0 and json.loads(out)["incident_id"] == "late"
    code, _, err = run(["--events", str(events_file), "--now", "soon",
                        '{"action":"recurrence"}'], tmp_path)
    assert code == 2 and "--now 'soon' is not an RFC 3339 time" in err
