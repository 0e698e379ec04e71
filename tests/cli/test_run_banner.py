"""What `incident-intel run` prints for a new user: routes, role tokens, calls to paste."""

from __future__ import annotations

import shlex
from pathlib import Path
from types import SimpleNamespace

import orjson

from app.api.routes import ROUTES
from app.api.tokens import LOCAL_TOKEN_ROLES, local_tokens
from app.broker.history import DurableHistory
from app.cli.banner import FeedExample, curl_lines, history_note, web_lines
from app.stream.settings import WorkerSettings

SETTINGS = WorkerSettings(web_port=6391, bootstrap_servers="127.0.0.1:9092")


def test_every_user_route_is_listed_with_its_address() -> None:
    lines = web_lines(SETTINGS)
    assert len(lines) == len(ROUTES)
    for route in ROUTES:
        assert any(line.split()[-1] == f"http://127.0.0.1:6391{route.path}" and
                   line.split()[0] == route.method for line in lines)
    paths = {line.split()[-1].removeprefix("http://127.0.0.1:6391") for line in lines}
    assert {"/healthz", "/metrics", "/", "/v1/tools/incident_intelligence",
            "/v1/gates/recurrence_watch"} <= paths


def test_one_token_per_local_role_and_they_stay(tmp_path: Path) -> None:
    path = tmp_path / "api-tokens.yml"
    first = local_tokens(path)
    assert set(first) == set(LOCAL_TOKEN_ROLES)
    assert len(set(first.values())) == len(first)
    assert local_tokens(path) == first  # never overwritten


def test_curl_calls_carry_the_right_role_token_and_a_valid_body() -> None:
    tokens = {"agent_release": "tok-release-0123456789", "agent_oncall": "tok-oncall-0123456789"}
    gate, correlate = curl_lines(SETTINGS, tokens, FeedExample("storage", "inc_1"))
    for line, token, path in ((gate, "tok-release-0123456789", "/v1/gates/recurrence_watch"),
                              (correlate, "tok-oncall-0123456789",
                               "/v1/tools/incident_intelligence")):
        words = shlex.split(line)
        assert words[:2] == ["curl", "-s"]
        assert f"Authorization: Bearer {token}" in words
        assert words[-1] == f"http://127.0.0.1:6391{path}"
        body = orjson.loads(words[words.index("-d") + 1])
        assert body in ({"service": "storage", "profile": "staging"},
                        {"action": "correlate", "incident_id": "inc_1", "append_note": True})


def test_history_note_says_where_the_history_lives(tmp_path: Path) -> None:
    embedded = SimpleNamespace()
    memory = history_note(SETTINGS, embedded, None)
    assert "MEMORY" in memory and "INTEL_HISTORY" in memory
    assert "INTEL_BOOTSTRAP_SERVERS" in memory
    durable = history_note(SETTINGS, embedded,
                           DurableHistory(SETTINGS.model_copy(update={"data_dir": tmp_path})))
    assert str(tmp_path / "history") in durable
    assert "MEMORY" not in durable and "INTEL_HISTORY=memory" in durable
    assert "127.0.0.1:9092" in history_note(SETTINGS, None, None)
