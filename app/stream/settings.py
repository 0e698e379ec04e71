"""Worker settings, read from ``INTEL_*`` environment variables at start-up.

Containers and CI configure the worker through the environment; a bad value
must stop the worker before it touches Kafka, with one line naming the
variable and the reason (:class:`app.errors.UserError`), never a traceback.
An empty variable counts as unset.

==========================  ================================  ==========================
variable                    default                           meaning
==========================  ================================  ==========================
INTEL_BOOTSTRAP_SERVERS     (empty)                           ``host:port[,host:port…]``
                                                              of Kafka; empty starts the
                                                              embedded broker (Tansu)
INTEL_APP_ID                ``incident-intel``                Faust app id = consumer
                                                              group
INTEL_PARTITIONS            ``4``                             partitions of the topics the
                                                              worker creates
INTEL_TOPIC_PREFIX          (empty)                           prepended to every topic
                                                              name (isolates test runs or
                                                              tenants on a shared cluster)
INTEL_DATA_DIR              ``.incident-intel``               worker state: API tokens,
                                                              embedded broker log
INTEL_WEB_PORT              ``6066``                          HTTP port of the worker
INTEL_WEB_HOST              ``127.0.0.1``                     address the HTTP server binds
                                                              (``0.0.0.0`` in containers)
INTEL_POLICY_DIR            ``./policy`` if it exists, else   directory of ``*.yml`` policy
                            the bundled policy                (as every other command)
INTEL_REPORTS_DIR           ``ops/reports/incidents/weekly``  digest artifacts
INTEL_SECURITY_PROTOCOL     ``PLAINTEXT``                     ``PLAINTEXT``, ``SSL``,
                                                              ``SASL_PLAINTEXT``,
                                                              ``SASL_SSL``
INTEL_SASL_MECHANISM        ``PLAIN`` with SASL               ``PLAIN``,
                                                              ``SCRAM-SHA-256``,
                                                              ``SCRAM-SHA-512``
INTEL_SASL_USERNAME         (none)                            required with SASL
INTEL_SASL_PASSWORD         (none)                            required with SASL; never
                                                              printed
INTEL_SSL_CAFILE            (system CAs)                      PEM bundle to verify the
                                                              brokers (SSL, SASL_SSL)
INTEL_SESSION_TIMEOUT       ``10``                            consumer session timeout in
                                                              seconds (Tansu forms a new
                                                              group after half of it)
INTEL_HISTORY               ``durable``                       with the embedded broker:
                                                              ``durable`` journals the
                                                              history under the data dir
                                                              and re-publishes it at start
                                                              (``app.broker.history``);
                                                              ``memory`` forgets it
INTEL_BROKER_LOSS_EXIT_     ``120``                           seconds without a broker
SECONDS                                                       before the worker exits
                                                              (non-zero) for its supervisor
INTEL_STUCK_PARTITION_      ``60``                            seconds a partition's
SECONDS                                                       committed offset may stand
                                                              still with lag before
                                                              ``/readyz`` says so
INTEL_DIGEST_CHECK_SECONDS  ``30``                            how often the leader checks
                                                              for a missed digest and for
                                                              weeks to revise
==========================  ================================  ==========================
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from app.errors import UserError
from app.policyfile import local_or_bundled_policy_dir

ENV_PREFIX = "INTEL_"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

_SECRET_FIELDS = frozenset({"sasl_password"})


def _check_host_port(item: str) -> str:
    host, sep, port = item.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{item!r} is not host:port")
    return item


class WorkerSettings(BaseModel):
    """Validated worker configuration; build it with :func:`load_settings`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = ""
    app_id: str = Field("incident-intel", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
    partitions: int = Field(4, ge=1, le=1024)
    topic_prefix: str = Field("", pattern=r"^[A-Za-z0-9._-]{0,100}$")
    data_dir: Path = Path(".incident-intel")
    web_port: int = Field(6066, ge=1, le=65535)
    web_host: str = Field("127.0.0.1", min_length=1)
    policy_dir: Path = Field(default_factory=local_or_bundled_policy_dir)
    reports_dir: Path = Path("ops/reports/incidents/weekly")
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    session_timeout: float = Field(10.0, ge=2.0, le=300.0)
    broker_loss_exit_seconds: float = Field(120.0, ge=10.0, le=86400.0)
    stuck_partition_seconds: float = Field(60.0, ge=5.0, le=86400.0)
    digest_check_seconds: float = Field(30.0, ge=1.0, le=3600.0)

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, value: str) -> str:
        items = [item.strip() for item in value.split(",") if item.strip()]
        return ",".join(_check_host_port(item) for item in items)

    @field_validator("ssl_cafile")
    @classmethod
    def _cafile(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("policy_dir")
    @classmethod
    def _policy_dir(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError("not a directory; point it at a directory of policy *.yml files "
                             "(like the repository's policy/)")
        return value

    @model_validator(mode="after")
    def _security(self) -> WorkerSettings:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and not (self.sasl_username and self.sasl_password):
            raise ValueError(
                f"INTEL_SECURITY_PROTOCOL={self.security_protocol} needs "
                "INTEL_SASL_USERNAME and INTEL_SASL_PASSWORD"
            )
        if not sasl and (self.sasl_mechanism or self.sasl_username or self.sasl_password):
            raise ValueError(
                "INTEL_SASL_* is set but INTEL_SECURITY_PROTOCOL is "
                f"{self.security_protocol}; use SASL_PLAINTEXT or SASL_SSL"
            )
        if self.ssl_cafile is not None and not self.uses_ssl:
            raise ValueError(
                f"INTEL_SSL_CAFILE is set but INTEL_SECURITY_PROTOCOL is "
                f"{self.security_protocol}; use SSL or SASL_SSL"
            )
        return self

    # ------------------------------------------------------------- helpers

    @property
    def embedded(self) -> bool:
        """True when no Kafka is configured and the embedded broker must be started."""
        return not self.bootstrap_servers

    @property
    def uses_ssl(self) -> bool:
        """True when the connection to Kafka is TLS-encrypted."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    def with_bootstrap(self, bootstrap_servers: str) -> WorkerSettings:
        """Copy with the broker address filled in (after starting the embedded broker)."""
        return self.model_copy(update={"bootstrap_servers": self._servers(bootstrap_servers)})

    def topic(self, name: str) -> str:
        """Full topic name of a catalog topic, with ``INTEL_TOPIC_PREFIX``."""
        return f"{self.topic_prefix}{name}"

    def unprefixed(self, topic: str) -> str:
        """The catalog name of a full topic name (the inverse of :meth:`topic`)."""
        return topic.removeprefix(self.topic_prefix)

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS context for SSL / SASL_SSL, verifying brokers against INTEL_SSL_CAFILE."""
        if not self.uses_ssl:
            return None
        cafile = str(self.ssl_cafile) if self.ssl_cafile else None
        try:
            return ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise UserError(f"INTEL_SSL_CAFILE={self.ssl_cafile}: {exc}; set INTEL_SSL_CAFILE "
                            "to a PEM bundle of CA certificates, or unset it") from None

    def kafka_client_options(self) -> dict[str, Any]:
        """Security keyword arguments for aiokafka clients (probes, admin, tests)."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_ssl:
            options["ssl_context"] = self.ssl_context()
        if self.security_protocol.startswith("SASL_"):
            assert self.sasl_password is not None
            options["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return options

    def describe(self) -> dict[str, str]:
        """Settings an operator wants to see at start-up; the password never appears."""
        return {
            "kafka": self.bootstrap_servers or "(embedded broker)",
            "app id / consumer group": self.app_id,
            "partitions": str(self.partitions),
            "topic prefix": self.topic_prefix or "(none)",
            "data dir": str(self.data_dir),
            "security": self.security_protocol
            + (
                f" {self.sasl_mechanism or 'PLAIN'} as {self.sasl_username}"
                if self.security_protocol.startswith("SASL_")
                else ""
            ),
            "policy dir": str(self.policy_dir),
            "reports dir": str(self.reports_dir),
        }


def _env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(environ: Mapping[str, str] | None = None) -> WorkerSettings:
    """Read and validate ``INTEL_*`` variables (default: ``os.environ``).

    Raises :class:`UserError` with one line such as
    ``INTEL_PARTITIONS='zero': Input should be a valid integer``.
    """
    env = os.environ if environ is None else environ
    raw: dict[str, str] = {}
    for field in WorkerSettings.model_fields:
        value = env.get(_env_name(field), "").strip()
        if value:
            raw[field] = value
    try:
        return WorkerSettings.model_validate(raw)
    except ValidationError as exc:
        raise UserError(_describe_error(exc, raw)) from None


def _describe_error(exc: ValidationError, raw: Mapping[str, str]) -> str:
    err = exc.errors()[0]
    msg = str(err["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
    if err["type"] == "string_pattern_mismatch":
        msg = "only letters, digits, '.', '_' and '-' are allowed"
    loc = err["loc"]
    if not loc:  # a model-level rule: the message names the variables itself
        return f"invalid settings: {msg}"
    field = str(loc[0])
    name = _env_name(field)
    fix = f"; fix {name} or unset it{_default_of(field)}"
    if field in _SECRET_FIELDS or field not in raw:
        return f"{name}: {msg}{fix}"
    return f"{name}={raw[field]!r}: {msg}{fix}"


def _default_of(field: str) -> str:
    info = WorkerSettings.model_fields[field]
    if info.default_factory is not None or info.default in (None, ""):
        return " to use the default"
    return f" to use the default {info.default}"
