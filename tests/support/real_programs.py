"""Debian's Prometheus and Alertmanager, started by tests on free loopback ports.

``make neighbours`` installs them (``apt-get install --no-install-recommends
prometheus prometheus-alertmanager``) under ``CI=true`` when missing; elsewhere a
test that needs one skips, naming the command. With ``CI=true`` a missing
program fails the test instead: CI never passes without the real neighbours.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.broker.embedded import _die_with_parent_hook, free_port

PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
AMTOOL = "/usr/bin/amtool"
INSTALL = ("apt-get update && apt-get install -y --no-install-recommends prometheus "
           "prometheus-alertmanager   (or: CI=true make neighbours)")


def program(path: str) -> str:
    """``path`` when installed; else skip, or fail under ``CI=true``, with the install command."""
    if Path(path).is_file() and os.access(path, os.X_OK):
        return path
    message = f"{path} is missing; install it with: {INSTALL}"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


class Daemon:
    """One program in the background, its output in a log file; stopped by :meth:`stop`."""

    def __init__(self, name: str, args: Sequence[str], workdir: Path, port: int) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = workdir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(list(args), cwd=workdir, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_parent_hook())  # noqa: PLW1509

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, path: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{self.name} exited:\n{self.log()}"
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as reply:  # noqa: S310
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_prometheus(workdir: Path, config: dict[str, Any],
                     rules: dict[str, Any] | None = None) -> Daemon:
    """Prometheus on a free port with ``config`` (and a rule file), ready to query."""
    binary = program(PROMETHEUS)
    workdir.mkdir(parents=True, exist_ok=True)
    if rules is not None:
        (workdir / "rules.yml").write_text(yaml.safe_dump(rules))
        config = {**config, "rule_files": [str(workdir / "rules.yml")]}
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    daemon = Daemon("prometheus", [
        binary, f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
    ], workdir, port)
    daemon.wait_ready("/-/ready")
    return daemon


def start_alertmanager(workdir: Path, config: dict[str, Any]) -> Daemon:
    """A lone Alertmanager (clustering off) on a free port."""
    binary = program(ALERTMANAGER)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    daemon = Daemon("alertmanager", [
        binary, f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ], workdir, port)
    daemon.wait_ready("/-/ready")
    return daemon


def query(prometheus: Daemon, expr: str) -> list[dict[str, Any]]:
    """The result vector of an instant PromQL query."""
    url = f"{prometheus.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 - loopback
        answer = json.loads(reply.read())
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def amtool_check(config_file: Path) -> subprocess.CompletedProcess[str]:
    """``amtool check-config`` of an Alertmanager configuration file."""
    return subprocess.run([program(AMTOOL), "check-config", str(config_file)],
                          capture_output=True, text=True, timeout=30)
