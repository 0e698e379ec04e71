"""The Faust application: one factory, topics named as in the topic catalog.

The stream shell owns Kafka plumbing only (topics, agents, web views); business
rules live in ``app.intel``. Everything about the app comes from
:class:`~app.stream.settings.WorkerSettings`, so tests can build as many
isolated apps (own app id, own topic prefix) as they need.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import faust
from faust.types import TopicT

from app.api.worker_web import guarded_web_driver
from app.broker import BrokerError
from app.policy import Policy, load_policy
from app.stream.settings import WorkerSettings
from app.topics import default_catalog

if TYPE_CHECKING:
    from app.metrics import MetricsRegistry
    from app.stream.health import WorkerHealth
    from app.stream.ingest import IngestStats
    from app.stream.outbox import Outbox
    from app.stream.replica import LiveReplica

__all__ = ["IntelApp", "TopicSpec", "catalog_topics", "create_app", "ensure_topics",
           "faust_credentials"]


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
    """A :class:`faust.App` that carries its settings and declared topics.

    ``topics_by_name`` maps the contract name (``"intel.dlq"``) to the Faust
    topic, whose real name includes ``INTEL_TOPIC_PREFIX``. The worker has no
    tables: its state is the replica (:mod:`app.stream.replica`).
    """

    intel_settings: WorkerSettings
    policy: Policy
    topics_by_name: dict[str, TopicT]
    ingest_stats: IngestStats
    outbox: Outbox
    replica: LiveReplica
    metrics: MetricsRegistry
    health: WorkerHealth
    exit_code: int | None = None
    """Set when the worker stops itself (see :mod:`app.stream.health`)."""

    def intel_topic(self, name: str) -> TopicT:
        """The Faust topic declared for a contract topic name."""
        return self.topics_by_name[name]

    def _new_transport(self) -> Any:
        """Kafka with a short fetch wait and a commit guard (see :mod:`app.stream.consumer`)."""
        from app.stream.consumer import KafkaTransport

        if str(self.conf.broker_consumer[0]).startswith("kafka:"):
            return KafkaTransport(self.conf.broker_consumer, self)
        return super()._new_transport()


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


def create_app(settings: WorkerSettings, policy: Policy | None = None) -> IntelApp:
    """Build the Faust app, declare every topic and register the agents.

    ``settings.bootstrap_servers`` must be set before the app runs (the CLI
    fills it in after starting the embedded broker); an app built without one
    points at ``localhost:9092`` and is only good for ``test_context()``.
    ``policy`` defaults to the policy of ``INTEL_POLICY_DIR``.
    """
    if policy is None:
        policy = load_policy(settings.policy_dir)
    servers = settings.bootstrap_servers.split(",") if settings.bootstrap_servers else []
    broker = [f"kafka://{server}" for server in servers] or "kafka://localhost:9092"
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
    app.intel_settings = settings
    app.policy = policy
    app.topics_by_name = {
        spec.name: app.topic(
            settings.topic(spec.name),
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
            compacting=spec.compacted or None,
            # Input topics are subscribed: let Faust create them if missing so a
            # fresh broker works; on a real cluster existing topics are left alone.
            internal=spec.direction == "in",
        )
        for spec in catalog_topics()
    }

    @app.page("/health/")
    async def health_page(web: Any, request: Any) -> Any:
        """Liveness for container health checks; answers once the worker is ready."""
        return web.json({"status": "ok", "app_id": settings.app_id})

    from app.metrics import MetricsRegistry
    from app.stream import consumer, digest_timer, health, ingest  # noqa: F811
    from app.stream.outbox import Outbox
    from app.stream.replica import LiveReplica

    app.metrics = MetricsRegistry()
    app.outbox = Outbox(app)
    app.replica = LiveReplica(app)
    ingest.register_ingest(app)
    digest_timer.register(app)
    health.register(app)
    consumer.register_rereader(app)
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
