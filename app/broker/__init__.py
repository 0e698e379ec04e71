"""Embedded Kafka-compatible broker (Tansu) for local runs and tests without Docker."""

from app.broker.embedded import (
    BrokerError,
    EmbeddedBroker,
    free_port,
    probe_kafka,
    wait_for_kafka,
)

__all__ = ["BrokerError", "EmbeddedBroker", "free_port", "probe_kafka", "wait_for_kafka"]
