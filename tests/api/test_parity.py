"""The API answers exactly what ``incident-intel tool`` prints for the same events.

Both sides are real processes: ``incident-intel tool`` once per call, and
``incident-intel serve`` on 127.0.0.1 over the same event file and ``--as-of``.
Responses are compared as parsed JSON (the CLI indents, the API does not),
errors as the whole ``{"error": …}`` object. Follow-up dedupe is compared too:
the API's second digest of a week equals the CLI's second run with ``--state``.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.api_history import AS_OF, history
from tests.support.builders import jsonl
from tests.support.http_api import ROLE_TOKENS, Client
from tests.support.repository import POLICY_DIR

ROOT = Path(__file__).resolve().parents[2]
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("correlate", "tool", {"action": "correlate", "incident_id": "inc_gw_1"}),
    ("correlate_note", "tool", {"tool": "incident_intelligence_tool", "action": "correlate",
                                "incident_id": "inc_gw_script", "append_note": True}),
    ("correlate_unknown", "tool", {"action": "correlate", "incident_id": "inc_after_as_of"}),
    ("recurrence_7", "tool", {"action": "recurrence"}),
    ("recurrence_30", "tool", {"action": "recurrence", "window_days": 30}),
    ("buckets", "tool", {"action": "buckets"}),
    ("buckets_service", "tool", {"action": "buckets", "service": "payments", "window_days": 7}),
    ("buckets_none", "tool", {"action": "buckets", "service": "nobody"}),
    ("alerts", "tool", {"action": "alerts", "window_days": 30}),
    ("alerts_service", "tool", {"action": "alerts", "service": "payments"}),
    ("alerts_bad_window", "tool", {"action": "alerts", "window_days": 3661}),
    ("correlation_quality", "tool", {"action": "correlation_quality"}),
    ("correlation_quality_7", "tool", {"action": "correlation_quality", "window_days": 7}),
    ("correlation_quality_bad", "tool", {"action": "correlation_quality", "window_days": 0}),
    ("correlate_judged", "tool", {"action": "correlate", "incident_id": "inc_gw_2"}),
    ("digest_w07", "tool", {"action": "weekly_digest", "week": "2026-W07"}),
    ("gate", "gate", {"service": "gateway"}),
    ("gate_strict", "gate", {"service": "gateway", "profile": "staging"}),
    ("gate_overrides", "gate", {"service": "payments", "recurrence_watch_mode": "strict",
                                "recurrence_watch_windows_days": [30],
                                "recurrence_watch_service": "gateway"}),
    ("gate_bad_profile", "gate", {"service": "gateway", "profile": "moon"}),
]
DIGEST = {"action": "weekly_digest", "week": "2026-W08", "save_artifacts": True}


def cli(args: list[str], cwd: Path) -> tuple[int, Any]:
    done = subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=cwd,
                          capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return done.returncode, orjson.loads(done.stdout)


def tool_args(events: Path, call: dict[str, Any], state: Path | None = None) -> list[str]:
    args = ["tool", "--events", str(events), "--policy", str(POLICY_DIR), "--as-of", AS_OF]
    return args + (["--state", str(state)] if state else []) + [json.dumps(call)]


@pytest.fixture(scope="module")
def served(events_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    tuple[Client, Path]
]:
    """``incident-intel serve`` as a real process on a free port of 127.0.0.1."""
    artifacts = tmp_path_factory.mktemp("served-artifacts")
    tokens = {ROLE_TOKENS["agent_cto"]: "agent_cto",
              ROLE_TOKENS["agent_release"]: "agent_release",
              ROLE_TOKENS["agent_viewer"]: "agent_viewer"}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "INTEL_API_TOKENS": json.dumps(tokens)}
    env.pop("INTEL_API_TOKENS_FILE", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--events", str(events_file),
         "--policy", str(POLICY_DIR), "--as-of", AS_OF, "--port", "0",
         "--artifacts-dir", str(artifacts)],
        cwd=artifacts, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert process.stderr is not None
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr],
                     daemon=True).start()
    try:
        seen = []
        while True:
            line = lines.get(timeout=30)
            seen.append(line)
            match = re.search(r"serving (http://127\.0\.0\.1:\d+)/", line)
            if match:
                break
            assert process.poll() is None, "".join(seen)
        assert not any("token for" in s for s in seen)  # tokens came from the variable
        yield Client(match.group(1)), artifacts
    finally:
        process.terminate()
        process.wait(10)


def call_api(client: Client, route: str, call: dict[str, Any]) -> tuple[int, Any]:
    reply = client.tool(call) if route == "tool" else client.gate(call)
    return reply.status, reply.json()


def test_every_action_answers_what_the_cli_prints(served, events_file: Path,
                                                  tmp_path: Path) -> None:
    client, _ = served
    with ThreadPoolExecutor(max_workers=4) as pool:
        expected = list(pool.map(
            lambda case: cli(tool_args(events_file, {"action": "gate", **case[2]}
                                       if case[1] == "gate" else case[2]), tmp_path),
            CASES))
    for (name, route, call), (code, printed) in zip(CASES, expected, strict=True):
        status, answered = call_api(client, route, call)
        assert answered == printed, name
        assert (status == 200) == (code == 0), (name, status, code)
        if code:
            assert status in (400, 404) and "error" in answered, name


def test_digest_and_its_follow_up_dedupe_match_the_cli_with_state(served, events_file: Path,
                                                                  tmp_path: Path) -> None:
    client, artifacts = served
    state = tmp_path / "state.json"
    first_cli = cli(tool_args(events_file, DIGEST, state), tmp_path)
    second_cli = cli(tool_args(events_file, DIGEST, state), tmp_path)
    first_api = call_api(client, "tool", DIGEST)
    second_api = call_api(client, "tool", DIGEST)
    assert first_api[1] == first_cli[1] and first_api[0] == 200
    assert second_api[1] == second_cli[1]
    created = first_api[1]["json_summary"]["followups"]["created"]
    assert len(created) == 1  # the history really exercises follow-ups
    assert second_api[1]["json_summary"]["followups"]["skipped"][0]["reason"] == \
        "already_exists"
    for path in first_api[1]["artifact_paths"]:
        assert (artifacts / path).read_bytes() == (tmp_path / path).read_bytes()


def test_velocity_equals_the_velocity_command(served, tmp_path: Path) -> None:
    client, _ = served
    visible = [e for e in history() if e["occurred_at"] <= AS_OF]  # what --as-of keeps
    path = tmp_path / "visible.jsonl"
    path.write_bytes(jsonl(visible))
    code, report = cli(["velocity", "--events", str(path), "--policy", str(POLICY_DIR),
                        "--format", "json"], tmp_path)
    assert code == 0
    answered = client.velocity().json()
    assert answered["quarters"] == report["quarters"]
    assert answered["trend"] == report["trend"]
    assert answered["recurrence_target"] == report["recurrence_target"]
    assert answered["as_of"] == AS_OF
    assert len(answered["quarters"]) >= 3
