"""The faust-streaming names the worker relies on beyond its documented API are still there.

The data path uses Faust's consumer only as the member of the consumer group
(``app/stream/group.py``): it registers its transport under its own URL scheme
through the registry Faust's drivers use, overrides two public consumer methods,
and commits through ``Consumer._commit``, the one private name left. ``pyproject.toml``
pins faust-streaming below 0.16; this test is what fails, with the name, if an
upgrade within or beyond that range moves one of them.
"""

from __future__ import annotations

import asyncio
import inspect

import faust
import pytest
from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_kafka
from faust.types import TP

from app.stream.app import TRANSPORT, create_app
from app.stream.group import GroupMember, KafkaTransport, MemberConsumer
from app.stream.settings import WorkerSettings

NAMES = [
    (faust_kafka.Consumer, "_commit"),
    (faust_kafka.Consumer, "getmany"),
    (faust_kafka.Consumer, "verify_event_path"),
    (faust_kafka.Transport, "Consumer"),
    (faust.App, "on_partitions_assigned"),
    (faust.App, "on_partitions_revoked"),
]


@pytest.mark.parametrize(("owner", "name"), NAMES, ids=[f"{o.__name__}.{n}" for o, n in NAMES])
def test_the_names_the_worker_uses_exist(owner: type, name: str) -> None:
    assert hasattr(owner, name), f"{owner.__module__}.{owner.__name__}.{name} is gone"


def test_commit_still_takes_a_mapping_of_offsets() -> None:
    assert list(inspect.signature(faust_kafka.Consumer._commit).parameters) == [
        "self", "offsets"]


def test_the_transport_is_registered_under_the_workers_scheme() -> None:
    app = create_app(WorkerSettings(app_id="t-internals"))
    assert drivers.by_url(f"{TRANSPORT}://localhost:9092") is KafkaTransport
    assert isinstance(app.consumer, MemberConsumer)


def test_faust_stops_its_consumer_in_on_stop_so_the_data_path_stops_first() -> None:
    # IntelApp.on_stop runs the data path's stop before super().on_stop(), which
    # leaves the group: the last commit must happen before that line.
    assert "_stop_consumer" in inspect.getsource(faust.App.on_stop)


def test_the_group_member_follows_fausts_rebalance_signals() -> None:
    app = create_app(WorkerSettings(app_id="t-signals", topic_prefix="p."))
    member = GroupMember(app, WorkerSettings(app_id="t-signals"), {"p.incidents.events"})
    revoked: list[frozenset[tuple[str, int]]] = []

    async def before_revoke(lost: frozenset[tuple[str, int]]) -> None:
        revoked.append(lost)

    member.before_revoke = before_revoke

    async def rebalance() -> None:
        await app.on_partitions_assigned.send({TP("p.incidents.events", 0),
                                               TP("p.incidents.events", 1),
                                               TP("t-signals-__assignor-__leader", 0)})
        assert member.owned == {("p.incidents.events", 0), ("p.incidents.events", 1)}
        assert member.gained == member.owned and member.assigned.is_set()
        member.gained.clear()  # the data path read their committed offsets
        await app.on_partitions_revoked.send({TP("p.incidents.events", 1)})
        await app.on_partitions_assigned.send({TP("p.incidents.events", 0),
                                               TP("p.incidents.events", 2)})

    generation = member.generation
    asyncio.run(rebalance())
    assert revoked == [frozenset({("p.incidents.events", 1)})]
    assert member.owned == {("p.incidents.events", 0), ("p.incidents.events", 2)}
    assert member.gained == {("p.incidents.events", 2)}
    assert member.generation == generation + 3
