"""The Faust application: membership, leader, timers and web server; topics from the catalog.

Faust is the worker's frame (:mod:`app.stream.worker` builds everything else
around it): its consumer is the member of the consumer group
(:mod:`app.stream.group`), its assignor elects the leader, its timers run the
weekly digest and the health probe, and its web server serves the API. The
data path does not use Faust's streams, agents or tables
(docs/architecture.md §7). Everything about the app comes from
:class:`~app.stream.settings.WorkerSettings`, so tests can build as many
isolated apps (own app id, own topic prefix) as they need.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import faust
from faust.transport import drivers

from app.api.worker_web import guarded_web_driver
from app.broker import BrokerError
from app.stream.group import MEMBER_FETCH_BYTES
from app.stream.settings import WorkerSettings
from app.topics import default_catalog

__all__ = ["IntelApp", "TopicSpec", "catalog_topics", "create_app", "ensure_topics",
           "faust_credentials"]

TRANSPORT = "intel-kafka"
"""Broker URL scheme of :class:`app.stream.group.KafkaTransport` (Faust's Kafka
transport whose consumer only takes part in the group)."""


@dataclass(frozen=True)
class TopicSpec:
    """A topic of the contract table: name, key, compaction, direction."""

    name: str
    key: str
    compacted: bool
    direction: Literal["in", "out"]


def catalog_topics() -> tuple[TopicSpec, ...]:
    """Every topic of the catalog, in its order.

    Every topic the worker creates gets ``INTEL_PARTITIONS`` partitions rather
    than the catalog's count: a keyed output lands in the partition number of
    the input partition whose owner writes it (:mod:`app.stream.publisher`), so
    input and output topics must agree. The catalog's counts are what a cluster
    operator pre-creates with the default.
    """
    catalog = default_catalog()
    return tuple(
        TopicSpec(name, spec.key, spec.cleanup_policy == "compact", spec.direction)
        for name, spec in catalog.topics.items()
    )


class IntelApp(faust.App):
    """A :class:`faust.App` that runs the data path's stop before its consumer leaves.

    Faust stops its consumer first thing in ``on_stop``; the data path must
    finish its cycle and commit while this worker is still a member, so the
    coroutines of :attr:`before_stop` run before that, in order.
    """

    exit_code: int | None = None
    """Set when the worker stops itself (see :mod:`app.stream.health`)."""

    def __init__(self, id: str, **options: Any) -> None:
        super().__init__(id, **options)
        self.before_stop: list[Callable[[], Awaitable[None]]] = []

    async def on_stop(self) -> None:
        for stop in self.before_stop:
            await stop()
        await super().on_stop()


def faust_credentials(
    settings: WorkerSettings,
) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """Faust credentials for INTEL_SECURITY_PROTOCOL (``None`` for PLAINTEXT)."""
    if settings.security_protocol == "PLAINTEXT":
        return None
    context = settings.ssl_context()
    if settings.security_protocol == "SSL":
        assert context is not None
        return faust.SSLCredentials(context)
    assert settings.sasl_password is not None
    return faust.SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password.get_secret_value(),
        mechanism=settings.sasl_mechanism or "PLAIN",
        ssl_context=context,
    )


def create_app(settings: WorkerSettings) -> IntelApp:
    """The Faust app of a worker, subscribed to the input topics for group membership.

    ``settings.bootstrap_servers`` must be set before the app runs (the CLI
    fills it in after starting the embedded broker); an app built without one
    points at ``localhost:9092`` and is only good for ``test_context()``.
    """
    drivers.TRANSPORTS.aliases.setdefault(TRANSPORT, "app.stream.group:KafkaTransport")
    servers = settings.bootstrap_servers.split(",") if settings.bootstrap_servers else []
    broker = [f"{TRANSPORT}://{server}" for server in servers] or f"{TRANSPORT}://localhost:9092"
    heartbeat = min(3.0, settings.session_timeout / 3)
    options: dict[str, Any] = {
        "broker": broker,
        "store": "memory://",  # the worker keeps no tables: its state is the replica
        "topic_partitions": settings.partitions,
        "datadir": str(settings.data_dir / "faust"),
        "web_port": settings.web_port,
        # web_bind is where the server listens; web_host is the URL other workers
        # use to reach this one (table routing), so never a wildcard address.
        "web_bind": settings.web_host,
        "web_host": (
            socket.gethostname() if settings.web_host in ("0.0.0.0", "::") else settings.web_host
        ),
        "broker_session_timeout": settings.session_timeout,
        "broker_heartbeat_interval": heartbeat,
        "consumer_auto_offset_reset": "earliest",
        "consumer_max_fetch_size": MEMBER_FETCH_BYTES,
        "autodiscover": False,
        # Faust's aiohttp server behind the API's connection guard (app.api.worker_web).
        "web": guarded_web_driver(),
        # Only INTEL_* configures the worker: ignore Faust's own WEB_PORT, BROKER_URL…
        "env": {},
    }
    credentials = faust_credentials(settings)
    if credentials is not None:
        options["broker_credentials"] = credentials
    app = IntelApp(settings.app_id, **options)
    for spec in catalog_topics():
        if spec.direction == "in":
            # Subscribed for membership only: the group assigns these partitions; the
            # data path reads them itself. Faust may create them on a fresh broker.
            app.topics.add(app.topic(settings.topic(spec.name), key_serializer="raw",
                                     value_serializer="raw", partitions=settings.partitions,
                                     internal=True, acks=False))
    return app


async def ensure_topics(settings: WorkerSettings, *, timeout: float = 30.0) -> list[str]:
    """Create the catalog's topics that do not exist yet; return their names.

    Done before the worker starts so its consumer subscribes to topics with the
    configured partition count (a broker's auto-creation would use its own
    default) and output topics exist before the first send. Replication is
    ``min(3, brokers in the cluster)``. Existing topics are never touched.
    Raises :class:`~app.broker.BrokerError`.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=int(timeout * 1000),
        **settings.kafka_client_options(),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
        existing = set(await admin.list_topics())
        wanted = [(settings.topic(spec.name), spec.compacted) for spec in catalog_topics()]
        missing = [(name, compacted) for name, compacted in wanted if name not in existing]
        if not missing:
            return []
        brokers = (await admin.describe_cluster()).get("brokers") or [None]
        replication = min(3, len(brokers))
        response = await admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=settings.partitions,
                    replication_factor=replication,
                    topic_configs={"cleanup.policy": "compact"} if compacted else {},
                )
                for name, compacted in missing
            ]
        )
    except (TimeoutError, OSError, KafkaError) as exc:
        reason = str(exc) or type(exc).__name__
        raise BrokerError(
            f"cannot create topics on {settings.bootstrap_servers}: {reason}"
        ) from None
    finally:
        await admin.close()
    created = []
    for topic, code, message in (tuple(err)[:3] for err in response.topic_errors):
        if code == 0:
            created.append(topic)
        elif code != 36:  # TOPIC_ALREADY_EXISTS: another worker won the race
            raise BrokerError(f"cannot create topic {topic}: error {code} {message or ''}".strip())
    return created
