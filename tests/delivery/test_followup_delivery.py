"""`incident-intel followups deliver` on a real broker, against a local webhook that
fails, times out and recovers, and through SIGKILLs of the deliverer."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.contracts import DlqRecord, FollowUp
from app.delivery.deliverer import READY
from tests.support.builders import follow_up
from tests.support.kafka import CliProcess, produce, read_topic, wait_until
from tests.support.webhook_server import HANG, webhook_server

pytestmark = pytest.mark.broker

START_TIMEOUT = 60.0
PARTITIONS = 2


@dataclass
class Topics:
    bootstrap: str
    prefix: str
    group: str

    @property
    def followups(self) -> str:
        return f"{self.prefix}intel.followups"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}intel.dlq"

    def send(self, values: list[tuple[str, bytes]]) -> list[tuple[int, int]]:
        """Produce (incident key, value) records; the key picks the partition."""
        records = [(key.encode(), value, None) for key, value in values]
        return produce(self.bootstrap, self.followups, records)

    def committed(self) -> dict[int, int | None]:
        async def run() -> dict[int, int | None]:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.group,
                                        enable_auto_commit=False)
            await consumer.start()
            try:
                return {p: await consumer.committed(TopicPartition(self.followups, p))
                        for p in range(PARTITIONS)}
            finally:
                await consumer.stop()
        return asyncio.run(run())


@pytest.fixture
def topics(kafka_bootstrap: str) -> Topics:
    run_id = uuid.uuid4().hex[:10]
    created = Topics(kafka_bootstrap, f"deliver-{run_id}.", f"deliver-{run_id}")

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(created.followups, PARTITIONS, 1),
                                       NewTopic(created.dlq, 1, 1)])
        finally:
            await admin.close()

    asyncio.run(create())
    return created


def value(key: str, incident: str = "inc_1") -> bytes:
    return json.dumps(follow_up(key, incident)).encode()


@pytest.fixture
def start(topics: Topics, tmp_path: Path) -> Iterator:
    processes: list[CliProcess] = []

    def run(*target: str, **env: str) -> CliProcess:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("INTEL_")}
        environ.update(INTEL_BOOTSTRAP_SERVERS=topics.bootstrap, INTEL_TOPIC_PREFIX=topics.prefix,
                       PYTHONUNBUFFERED="1", **env)
        process = CliProcess(["followups", "deliver", "--group", topics.group,
                              "--ledger", str(tmp_path / "ledger.jsonl"), "--max-attempts", "3",
                              "--backoff", "0.05", "--backoff-max", "0.2", "--timeout", "1",
                              *target], environ)  # the test's options come last and win
        processes.append(process)
        assert process.wait_for_line(READY, timeout=START_TIMEOUT), process.output
        return process

    try:
        yield run
    finally:
        for process in processes:
            process.kill()


def test_webhook_retries_recovers_dead_letters_and_never_repeats(topics: Topics, start) -> None:
    def script(key: str, seen: int) -> int:
        if key == "fu:fails-twice":
            return 500 if seen < 2 else 200
        if key == "fu:times-out":
            return HANG if seen == 0 else 204
        if key == "fu:always-503":
            return 503
        if key == "fu:refused":
            return 422
        return 200

    good = ["fu:a", "fu:b", "fu:c", "fu:fails-twice", "fu:times-out"]
    with webhook_server(script, hang_seconds=2.5) as server:
        placed = topics.send(
            [(f"inc_{n}", value(k, f"inc_{n}")) for n, k in enumerate(good)]
            + [("inc_dup", value("fu:a", "inc_dup")),   # a second record of a delivered key
               ("inc_x", value("fu:always-503", "inc_x")),
               ("inc_y", value("fu:refused", "inc_y")),
               ("inc_z", b"{not a follow-up")])
        deliverer = start("--webhook", server.url, INTEL_FOLLOWUPS_TOKEN="tok-123")
        dead = read_topic(topics.bootstrap, topics.dlq, expect=3, timeout=60)
        assert wait_until(lambda: sorted(set(server.delivered_keys())) == sorted(good),
                          timeout=30), (server.received, deliverer.output)
        assert wait_until(lambda: topics.committed() == {
            p: 1 + max(o for q, o in placed if q == p) for p in range(PARTITIONS)}, timeout=30)

        assert sorted(server.delivered_keys()) == sorted(good)  # each exactly once
        attempts = Counter(r.key for r in server.received)
        assert attempts["fu:fails-twice"] == 3
        assert attempts["fu:times-out"] == 2
        assert attempts["fu:always-503"] == 3   # --max-attempts
        assert attempts["fu:refused"] == 1      # a 4xx is not retried
        assert {r.headers["Authorization"] for r in server.received} == {"Bearer tok-123"}
        for r in server.received:
            assert FollowUp.model_validate(r.body).meta.dedupe_key == r.key

        reasons = {d.key: d for d in (DlqRecord.model_validate_json(m.value) for m in dead)}
        assert set(reasons) == {"inc_x", "inc_y", "inc_z"}
        assert "after 3 attempts: HTTP 503" in reasons["inc_x"].error
        assert "refused: HTTP 422" in reasons["inc_y"].error
        assert "not a follow-up" in reasons["inc_z"].error
        assert reasons["inc_z"].raw_bytes() == b"{not a follow-up"
        assert all(d.source_topic == topics.followups for d in reasons.values())

        assert deliverer.stop(signal.SIGTERM) == 0, deliverer.output
        assert "Traceback" not in deliverer.output, deliverer.output

        # A restart with the same group and ledger: a repeat of a delivered key is
        # skipped, a new key is delivered, nothing old is read again.
        more = topics.send([("inc_again", value("fu:b", "inc_again")),
                            ("inc_new", value("fu:new", "inc_new"))])
        again = start("--webhook", server.url)
        assert wait_until(lambda: topics.committed() == {
            p: 1 + max(o for q, o in placed + more if q == p) for p in range(PARTITIONS)},
            timeout=30), again.output
        assert sorted(server.delivered_keys()) == sorted([*good, "fu:new"])
        assert again.stop(signal.SIGTERM) == 0, again.output


def test_an_undelivered_record_holds_its_partition_until_the_webhook_recovers(
        topics: Topics, start) -> None:
    healthy = {"on": False}

    def script(key: str, seen: int) -> int:
        return 200 if healthy["on"] or key != "fu:stuck" else 503

    with webhook_server(script) as server:
        placed = topics.send([("inc_1", value("fu:stuck", "inc_1")),
                              ("inc_1", value("fu:behind", "inc_1"))])  # same partition
        partition = placed[0][0]
        first = start("--webhook", server.url, "--max-attempts", "1000")
        assert wait_until(lambda: sum(r.key == "fu:stuck" for r in server.received) >= 3,
                          timeout=30), first.output
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        assert topics.committed()[partition] in (None, placed[0][1])  # not past fu:stuck
        assert "fu:behind" not in server.delivered_keys()

        healthy["on"] = True
        second = start("--webhook", server.url)
        assert wait_until(lambda: topics.committed()[partition] == placed[1][1] + 1,
                          timeout=30), second.output
        assert server.delivered_keys() == ["fu:stuck", "fu:behind"]
        assert second.stop(signal.SIGTERM) == 0


def _jsonl_keys(path: Path) -> list[str]:
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    return [FollowUp.model_validate_json(line).meta.dedupe_key for line in lines[:-1]]


def test_sigkill_mid_stream_loses_and_duplicates_nothing(topics: Topics, start,
                                                         tmp_path: Path) -> None:
    keys = [f"fu:2026-W08:bucket-{n:03d}" for n in range(300)]
    records = [(f"inc_{n % 37}", value(k, f"inc_{n % 37}")) for n, k in enumerate(keys)]
    records += [(f"inc_{n}", value(keys[n * 7], f"inc_{n}")) for n in range(20)]  # repeats
    placed = topics.send(records)
    out = tmp_path / "followups.jsonl"
    kills_mid_stream = 0
    for _ in range(2):
        before = len(_jsonl_keys(out))
        process = start("--jsonl", str(out))
        wait_until(lambda b=before: len(_jsonl_keys(out)) > b, timeout=30, interval=0.005)
        process.proc.send_signal(signal.SIGKILL)
        process.proc.wait(10)
        kills_mid_stream += len(_jsonl_keys(out)) < len(keys)
    assert kills_mid_stream >= 1, "every run finished before its kill: nothing was tested"

    last = start("--jsonl", str(out))
    assert wait_until(lambda: topics.committed() == {
        p: 1 + max(o for q, o in placed if q == p) for p in range(PARTITIONS)},
        timeout=60), last.output
    assert last.stop(signal.SIGTERM) == 0, last.output
    delivered = _jsonl_keys(out)
    assert sorted(delivered) == sorted(keys)  # every key, each exactly once


def test_sigkill_with_a_webhook_repeats_at_most_the_one_unrecorded_key(topics: Topics,
                                                                      start) -> None:
    """A kill between the receiver's 2xx and the ledger write can send that one follow-up
    again, with the same Idempotency-Key for the receiver to drop; nothing else repeats."""
    keys = [f"fu:2026-W09:bucket-{n:03d}" for n in range(120)]
    placed = topics.send([(f"inc_{n % 11}", value(k, f"inc_{n % 11}"))
                          for n, k in enumerate(keys)])
    kills = kills_mid_stream = 0
    # A receiver that takes 20 ms per answer: the 120 keys need seconds, the kills come
    # after a handful, so the kills land mid-stream however fast the worker starts.
    with webhook_server(lambda key, seen: 200, answer_after=0.02) as server:
        for _ in range(2):
            before = len(server.delivered_keys())
            process = start("--webhook", server.url)
            wait_until(lambda b=before: len(server.delivered_keys()) > b + 5, timeout=30,
                       interval=0.005)
            process.proc.send_signal(signal.SIGKILL)
            process.proc.wait(10)
            kills += 1
            kills_mid_stream += len(set(server.delivered_keys())) < len(keys)
        assert kills_mid_stream >= 1, "every run finished before its kill: nothing was tested"
        last = start("--webhook", server.url)
        assert wait_until(lambda: topics.committed() == {
            p: 1 + max(o for q, o in placed if q == p) for p in range(PARTITIONS)},
            timeout=60), last.output
        assert last.stop(signal.SIGTERM) == 0, last.output
    delivered = server.delivered_keys()
    assert set(delivered) == set(keys)
    repeats = Counter(delivered) - Counter(set(delivered))
    assert sum(repeats.values()) <= kills, repeats
