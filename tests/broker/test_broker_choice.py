"""How tests pick their broker (docs/architecture.md §6), without starting one."""

from __future__ import annotations

import pytest

from app.broker import free_port
from tests import conftest


def test_an_explicit_bootstrap_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_docker() -> bool:
        raise AssertionError("Docker must not be asked when KAFKA_BOOTSTRAP_SERVERS is set")

    monkeypatch.setattr(conftest, "_docker_answers", no_docker)
    chooser = conftest.choose_broker({"KAFKA_BOOTSTRAP_SERVERS": " kafka:9092 "})
    assert next(chooser) == "kafka:9092"
    chooser.close()


def test_a_dead_docker_host_means_no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    assert conftest._docker_answers() is False


def test_without_docker_the_embedded_broker_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeBroker:
        bootstrap_servers = "127.0.0.1:1"
        stopped = False

        def start(self) -> FakeBroker:
            return self

        def stop(self) -> None:
            FakeBroker.stopped = True

    monkeypatch.setattr(conftest, "_docker_answers", lambda: False)
    monkeypatch.setattr("app.broker.EmbeddedBroker", FakeBroker)
    chooser = conftest.choose_broker({})
    assert next(chooser) == "127.0.0.1:1"
    chooser.close()
    assert FakeBroker.stopped


@pytest.mark.parametrize(("ci", "outcome"), [("true", "fail"), ("", "skip"), ("false", "skip")])
def test_no_broker_skips_except_on_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if outcome == "fail" else pytest.skip.Exception
    with pytest.raises(expected, match="no Kafka-compatible broker"):
        conftest.broker_unavailable("nothing here")
