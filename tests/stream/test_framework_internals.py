"""The faust-streaming and aiokafka internals the worker relies on are still there.

``app/stream/consumer.py`` (the commit guard and the short fetch wait) and
``app/stream/app.py`` (the transport hook) use names that are not public API.
``pyproject.toml`` pins faust-streaming below 0.16; this test is what fails,
with the name, if an upgrade within or beyond that range moves one of them.
"""

from __future__ import annotations

import inspect

import faust
import pytest
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as faust_kafka

from app.stream.app import create_app
from app.stream.settings import WorkerSettings

METHODS = [
    (faust.App, "_new_transport"),
    (faust_kafka.AIOKafkaConsumerThread, "_create_worker_consumer"),
    (faust_kafka.Consumer, "_new_consumer_thread"),
    (faust_kafka.Consumer, "_new_offset"),
    (faust_kafka.Transport, "Consumer"),
]


@pytest.mark.parametrize(("owner", "name"), METHODS,
                         ids=[f"{o.__name__}.{n}" for o, n in METHODS])
def test_overridden_framework_methods_exist(owner: type, name: str) -> None:
    assert hasattr(owner, name), f"{owner.__module__}.{owner.__name__}.{name} is gone"


def test_new_offset_still_takes_one_partition() -> None:
    params = list(inspect.signature(faust_kafka.Consumer._new_offset).parameters)
    assert params == ["self", "tp"]


def test_the_consumer_keeps_the_state_the_commit_guard_reads() -> None:
    app = create_app(WorkerSettings(app_id="t-internals"))
    consumer = app.consumer
    for name in ("_acked", "_acked_index", "_committed_offset", "_gap"):
        assert isinstance(getattr(consumer, name, None), dict), f"Consumer.{name} changed"


def test_aiokafka_reads_its_fetch_wait_from_the_attribute_the_worker_sets() -> None:
    source = inspect.getsource(AIOKafkaConsumer.start)
    assert "_fetch_max_wait_ms" in source
