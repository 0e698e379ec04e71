"""The seeded fuzz pass of :mod:`tests.support.fuzz` against a real ``incident-intel serve``:
no 5xx for any input, and no token in anything the server logged."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import yaml

from app.policy import Limit
from tests.api.test_faust_routes import worker_web_server
from tests.support import fuzz
from tests.support.http_api import ROLE_TOKENS, make_view
from tests.support.repository import POLICY_DIR


def _policy_dir(tmp: Path) -> Path:
    """The real policy with room in every per-minute limit and short read timeouts."""
    target = tmp / "policy"
    shutil.copytree(POLICY_DIR, target)
    path = target / "rate_limits.yml"
    limits = yaml.safe_load(path.read_text(encoding="utf-8"))
    for limit in [limits["default"], *limits["actions"].values()]:
        limit["per_minute"] = 100_000
    limits["http"].update(header_timeout_seconds=1, body_timeout_seconds=1)
    path.write_text(yaml.safe_dump(limits), encoding="utf-8")
    return target


def test_fuzzing_serve_finds_no_server_error_and_no_logged_token(events_file: Path,
                                                                  tmp_path: Path) -> None:
    env = dict(os.environ, INTEL_API_TOKENS=orjson.dumps(
        {token: role for role, token in ROLE_TOKENS.items()}).decode(), PYTHONUNBUFFERED="1")
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--events", str(events_file),
             "--policy", str(_policy_dir(tmp_path)), "--port", "0",
             "--artifacts-dir", str(tmp_path / "artifacts")],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            url = None
            for _ in range(600):
                match = re.search(r"serving (http://127\.0\.0\.1:\d+)/", log_path.read_text())
                if match:
                    url = match.group(1)
                    break
                assert server.poll() is None, log_path.read_text()
                server.wait_for_timeout = None
                try:
                    server.wait(0.1)
                except subprocess.TimeoutExpired:
                    pass
            assert url, log_path.read_text()
            outcome = fuzz.run(url, ROLE_TOKENS["agent_cto"], count=250, slow_clients=10)
        finally:
            server.terminate()
            server.wait(20)
    assert outcome.server_errors == []
    assert sum(outcome.statuses.values()) == 251 and 200 in outcome.statuses
    logged = log_path.read_text(encoding="utf-8", errors="replace")
    for token in ROLE_TOKENS.values():
        assert token[:12] not in logged


def test_fuzzing_the_worker_web_server_finds_no_server_error(policy, tokens, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    rates = policy.rate_limits
    relaxed = policy.model_copy(update={"rate_limits": rates.model_copy(update={
        "default": Limit(per_minute=100_000, timeout_seconds=10),
        "actions": {name: Limit(per_minute=100_000, timeout_seconds=limit.timeout_seconds)
                    for name, limit in rates.actions.items()},
        "http": rates.http.model_copy(update={"header_timeout_seconds": 1,
                                               "body_timeout_seconds": 1})})})
    with worker_web_server(make_view(relaxed), relaxed, tokens) as client:
        outcome = fuzz.run(client.base, ROLE_TOKENS["agent_cto"], count=150, seed=5,
                           slow_clients=5)
    assert outcome.server_errors == []
    assert 200 in outcome.statuses
    for token in ROLE_TOKENS.values():
        assert token[:12] not in caplog.text
