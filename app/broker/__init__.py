"""Embedded Kafka-compatible broker (Tansu) for local runs and tests without Docker.

:mod:`app.broker.history` (with :mod:`app.broker.journal`) keeps what a run on it
cannot recompute on disk, since the broker itself keeps nothing.
"""

from app.broker.embedded import (
    BrokerError,
    EmbeddedBroker,
    free_port,
    probe_kafka,
    wait_for_kafka,
)

__all__ = ["BrokerError", "EmbeddedBroker", "free_port", "probe_kafka", "wait_for_kafka"]
