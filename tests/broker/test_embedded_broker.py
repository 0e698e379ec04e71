"""The embedded broker's life cycle: it answers Kafka, stops cleanly, never outlives its parent."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app.broker import BrokerError, EmbeddedBroker
from tests.support.kafka import REPO, pid_alive, produce, read_topic, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures("tansu_available")]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_start_answers_kafka_and_stop_leaves_nothing() -> None:
    with EmbeddedBroker() as broker:
        pid, port = broker.pid, broker.port
        assert pid is not None and pid_alive(pid)
        assert broker.bootstrap_servers == f"127.0.0.1:{port}"
        produce(broker.bootstrap_servers, "lifecycle", [(b"k", b"hello", None)])
        records = read_topic(broker.bootstrap_servers, "lifecycle", expect=1, timeout=15)
        assert [(r.key, r.value) for r in records] == [(b"k", b"hello")]
    assert not pid_alive(pid)
    assert not _port_open(port)
    assert not broker.is_running()
    broker.stop()  # idempotent


def test_two_brokers_get_their_own_ports() -> None:
    with EmbeddedBroker() as first, EmbeddedBroker() as second:
        assert first.port != second.port
        assert first.pid != second.pid


def _spawn_parent(body: str, tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    """A Python process that starts a broker, prints its pid, then runs ``body``."""
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time
            from app.broker import EmbeddedBroker
            broker = EmbeddedBroker().start()
            print(broker.pid, flush=True)
            """
        )
        + textwrap.dedent(body)
    )
    parent = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line.strip().isdigit(), f"parent printed {line!r}"
    return parent, int(line)


def test_sigkill_of_the_parent_kills_the_broker(tmp_path: Path) -> None:
    parent, broker_pid = _spawn_parent("time.sleep(120)\n", tmp_path)
    try:
        assert pid_alive(broker_pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        assert wait_until(lambda: not pid_alive(broker_pid), timeout=10), "orphan tansu"
    finally:
        if parent.poll() is None:
            parent.kill()
        if pid_alive(broker_pid):
            os.kill(broker_pid, signal.SIGKILL)


def test_parent_exiting_without_stop_takes_the_broker_down(tmp_path: Path) -> None:
    parent, broker_pid = _spawn_parent("sys.exit(0)\n", tmp_path)
    assert parent.wait(timeout=20) == 0
    assert wait_until(lambda: not pid_alive(broker_pid), timeout=10), "orphan tansu"


def test_a_binary_that_exits_is_reported_with_its_output(tmp_path: Path) -> None:
    fake = tmp_path / "fake-tansu"
    fake.write_text("#!/bin/sh\necho 'cannot bind: permission denied' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(BrokerError, match=r"exited with code 3.*permission denied"):
        EmbeddedBroker(binary=str(fake), startup_timeout=10).start()


def test_a_broker_that_never_answers_times_out_and_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    fake = tmp_path / "silent-tansu"
    fake.write_text(f"#!/bin/sh\necho $$ >> {pidfile}\nexec sleep 60\n")
    fake.chmod(0o755)
    broker = EmbeddedBroker(binary=str(fake), startup_timeout=1, stop_grace=1)
    with pytest.raises(BrokerError, match="did not answer"):
        broker.start()
    pids = [int(line) for line in pidfile.read_text().split()]
    assert pids and not any(pid_alive(pid) for pid in pids)
    assert not broker.is_running()
