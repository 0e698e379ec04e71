"""History that survives a restart of `incident-intel run` on its embedded broker.

The embedded broker keeps nothing on disk; with ``INTEL_HISTORY=durable`` (the
default) the worker journals what it reads and the next start re-publishes
the journal before the worker starts. A run is fed, stopped (killed outright
once it reported everything applied, or stopped with SIGTERM right after more
records were acknowledged), started again, and its API must answer as before
and as ``incident-intel tool`` does on the same events, without emitting a
follow-up or a digest a second time.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import signal
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from app.broker import EmbeddedBroker, free_port
from app.broker.history import DurableHistory
from app.broker.journal import Journal, decode_entry, journaled_topics
from app.contracts import CorrelateRequest, FollowUp, RecurrenceUpdate, decode_event
from app.errors import UserError
from app.intel.periods import from_micros, last_complete_week
from app.policy import load_policy
from app.stream.app import ensure_topics
from app.stream.inputs import Received
from app.stream.settings import WorkerSettings
from tests.support.kafka import REPO, CliProcess, wait_until
from tests.support.stream_oracle import (
    RELEASE_TOKEN,
    TOKEN,
    offline,
    perturbed_stream,
    post,
    produce_all,
    read_all,
    tool,
)

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures("tansu_available")]

READY = "worker ready"
INPUT_TOPICS = ("incidents.events", "alerts.state", "learning.events")
Calls = list[tuple[str, dict[str, Any], str]]
"""(route, body, token) of each API call compared with the tool."""


# ---------------------------------------------------------------------- helpers


def run_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTEL_")}
    env.update(INTEL_DATA_DIR=str(tmp_path / "data"), INTEL_REPORTS_DIR=str(tmp_path / "rep"),
               INTEL_PARTITIONS="2", INTEL_APP_ID="durable",
               INTEL_API_TOKENS=json.dumps({TOKEN: "agent_oncall",
                                            RELEASE_TOKEN: "agent_release"}),
               PYTHONUNBUFFERED="1")
    return env


@pytest.fixture
def runs() -> Iterator[list[CliProcess]]:
    started: list[CliProcess] = []
    yield started
    for run in started:
        run.kill()


def start(runs: list[CliProcess], env: dict[str, str], *args: str) -> tuple[CliProcess, str,
                                                                            str]:
    """`incident-intel run` on a new web port; (process, broker address, web port)."""
    env = {**env, "INTEL_WEB_PORT": str(free_port())}
    run = CliProcess(["run", *args], env)
    runs.append(run)
    line = run.wait_for_line("embedded broker pid", timeout=30)
    assert line, run.output
    match = re.search(r" on (127\.0\.0\.1:\d+)", line)
    assert match, line
    assert run.wait_for_line(READY, timeout=90), run.output
    return run, match.group(1), env["INTEL_WEB_PORT"]


def metrics(port: str) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local URL
        text = response.read().decode()
    return {name: float(value) for name, value in
            (line.rsplit(" ", 1) for line in text.splitlines()
             if line and not line.startswith("#"))}


def applied(port: str, count: int) -> bool:
    """True once the worker reports ``count`` valid input records applied (its agents
    count a record only once the replica applied it), and answers."""
    counters = metrics(port)
    done = sum(value for name, value in counters.items()
               if name.startswith("incident_intel_input_records_total{")
               and re.search(r'outcome="(applied|duplicate)"', name))
    return counters.get("incident_intel_replica_ready") == 1 and done == count


def sent(port: str, topic: str) -> float:
    """Records the worker sent to ``topic``."""
    return metrics(port).get(f'incident_intel_output_records_total{{topic="{topic}"}}', 0)


def valid_count(values: list[bytes]) -> int:
    count = 0
    for value in values:
        try:
            decode_event(value)
        except ValueError:
            continue
        count += 1
    return count


def inputs(bootstrap: str) -> list[tuple[str, int, int, bytes | None, bytes]]:
    """Every input record (topic, partition, offset, key, value), in that order."""
    out = read_all(bootstrap, list(INPUT_TOPICS))
    return sorted((r.topic, r.partition, r.offset, r.key, r.value)
                  for topic in INPUT_TOPICS for r in out[topic])


def journal_lines(data_dir: Path, name: str) -> int:
    return sum(len(p.read_bytes().splitlines())
               for p in (data_dir / "history" / name).glob("*.jsonl"))


def calls(values: list[bytes]) -> Calls:
    """(route, body, token) of every answer compared: each tool action and the gate."""
    engine = offline(load_policy(REPO / "policy"), values)
    assert engine.watermark is not None
    incidents = sorted(engine.book.incidents)
    related = [i for i in incidents if engine.correlate(
        CorrelateRequest(action="correlate", incident_id=i)).related_count]
    service = engine.book.incidents[incidents[0]].service
    week = last_complete_week(from_micros(engine.watermark))
    tool_route, gate_route = "/v1/tools/incident_intelligence", "/v1/gates/recurrence_watch"
    return [(tool_route, {"action": "recurrence", "window_days": 30}, TOKEN),
            (tool_route, {"action": "buckets"}, TOKEN),
            (tool_route, {"action": "correlate", "incident_id": (related or incidents)[0]},
             TOKEN),
            (tool_route, {"action": "weekly_digest", "week": week}, TOKEN),
            (gate_route, {"action": "gate", "service": service}, RELEASE_TOKEN)]


def offline_answers(values: list[bytes], followup_keys: set[str], asked: Calls,
                    workdir: Path) -> Future[list[Any]]:
    """``incident-intel tool`` on the same events, the emitted follow-ups as its state
    (in the background: it runs while the worker starts again)."""
    workdir.mkdir(exist_ok=True)
    events, state = workdir / "events.jsonl", workdir / "state.json"
    events.write_bytes(b"\n".join(values) + b"\n")
    state.write_text(json.dumps({"emitted_followups": sorted(followup_keys)}))
    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(lambda: [tool(events, state, body) for _, body, _ in asked])
    finally:
        pool.shutdown(wait=False)


def api_answers(port: str, asked: Calls) -> list[Any]:
    return [post(port, route, body, token) for route, body, token in asked]


def followups(bootstrap: str) -> list[FollowUp]:
    records = read_all(bootstrap, ["intel.followups"])["intel.followups"]
    return [FollowUp.model_validate_json(r.value) for r in records]


def followup_keys(bootstrap: str) -> Counter[str]:
    return Counter(f.meta.dedupe_key for f in followups(bootstrap))


def labels_agree(bootstrap: str, recurrence: dict[str, Any], page: str) -> bool:
    """The topic's latest record of every listed signature carries the answer's label,
    and the page names the warn and high ones by it."""
    records = read_all(bootstrap, ["intel.recurrence"])["intel.recurrence"]
    latest = {record.key: record.value for record in records}
    for item in recurrence["top_signatures"]:
        value = latest.get(f"signature:{item['key']}".encode())
        if value is None or RecurrenceUpdate.model_validate_json(value).label != item["label"]:
            return False
    lit = [f for f in recurrence["high_recurrence"] + recurrence["warn_recurrence"]
           if f["type"] == "signature"]
    return bool(lit) and all(html.escape(f["label"]) in page for f in lit)


def dashboard(port: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:  # noqa: S310
        return response.read().decode()


# ---------------------------------------------------------------------- replay


def test_a_replay_gives_a_fresh_broker_the_same_records_at_the_same_offsets(
        tmp_path: Path) -> None:
    headers = (("intel-id", b"x"),)
    with EmbeddedBroker() as broker:
        settings = WorkerSettings(bootstrap_servers=broker.bootstrap_servers, partitions=2,
                                  data_dir=tmp_path, topic_prefix="a.")
        journal = Journal(tmp_path / "history",
                          {settings.topic(n): n for n in journaled_topics()})
        written = {("incidents.events", 1): [(b"k%d" % n, b"v%d" % n, 1_000 + n, ())
                                             for n in range(7)],
                   ("intel.followups", 0): [(b"f", None, 5, headers), (None, b"\xff", 6, ())]}
        for (name, partition), items in written.items():
            journal.append([(settings.topic(name), [Received(k, v, partition, n, t, h)
                                                    for n, (k, v, t, h) in enumerate(items)])])
        journal.close()

        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(ensure_topics(settings))
            history = DurableHistory(settings)
            assert history.restore(loop, settings) == 9
        finally:
            loop.close()
        topics = [settings.topic(name) for name, _ in written]
        out = read_all(broker.bootstrap_servers, topics)
        for (name, partition), items in written.items():
            got = [(r.partition, r.offset, r.key, r.value, r.timestamp, tuple(r.headers))
                   for r in out[settings.topic(name)]]
            assert got == [(partition, n, k, v, t, h) for n, (k, v, t, h) in enumerate(items)]
        assert history.journal.held == {(settings.topic("incidents.events"), 1): 7,
                                        (settings.topic("intel.followups"), 0): 2}

        # Reading the replayed broker again writes nothing; a clean stop keeps what
        # arrived after the worker's last read.
        replayed = [(r.topic, [r]) for topic in topics for r in out[topic]]
        assert history.journal.append(replayed) == 0
        asyncio.run(_produce(broker.bootstrap_servers, settings.topic("alerts.state"),
                             [b"a1", b"a2"]))
        assert history.drain(settings) == 2
        history.close()
    kept = [decode_entry(line).value
            for line in (tmp_path / "history/alerts.state/0.jsonl").read_bytes().splitlines()]
    assert kept == [b"a1", b"a2"]
    assert journal_lines(tmp_path, "incidents.events") == 7


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


def test_a_history_with_more_partitions_than_the_topics_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "history" / "incidents.events"
    folder.mkdir(parents=True)
    (folder / "5.jsonl").write_text('{"offset": 0, "timestamp": 1, "key": null, '
                                    '"value": "{}", "headers": []}\n')
    with EmbeddedBroker() as broker:
        settings = WorkerSettings(bootstrap_servers=broker.bootstrap_servers, partitions=2,
                                  data_dir=tmp_path)
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(ensure_topics(settings))
            history = DurableHistory(settings)
            with pytest.raises(UserError, match=r"5\.jsonl: the history has partition 5 of "
                                                r"incidents\.events.*INTEL_PARTITIONS=2"):
                history.restore(loop, settings)
            history.close()
        finally:
            loop.close()


# ---------------------------------------------------------------------- restarts


def test_a_run_killed_outright_starts_again_with_everything_it_had_applied(
        tmp_path: Path, runs: list[CliProcess]) -> None:
    env = run_env(tmp_path)
    data = Path(env["INTEL_DATA_DIR"])
    first, bootstrap, port = start(runs, env)  # `make run`: the simulated feed
    assert "feed: published" in first.output, first.output
    records = inputs(bootstrap)
    values = [record[-1] for record in records]
    valid = valid_count(values)
    assert wait_until(lambda: applied(port, valid), timeout=60), first.output

    # The first digest and its follow-ups were read back: the worker knows it sent them.
    def outputs_kept() -> bool:
        got = read_all(bootstrap, ["intel.followups", "intel.digests"])
        return all(journal_lines(data, name) == len(got[name]) > 0 for name in got)

    assert wait_until(outputs_kept, timeout=60), first.output[-3000:]
    keys = followup_keys(bootstrap)
    shown = {html.escape(text) for f in followups(bootstrap)
             for text in (f.meta.title, f.meta.due_date, f.incident_id)}
    assert shown and all(text in dashboard(port) for text in shown)
    asked = calls(values)
    before = api_answers(port, asked)
    # One label per signature: the API's recurrence answer (equal to the tool's, below),
    # the latest intel.recurrence record of each signature, and the page.
    assert wait_until(lambda: labels_agree(bootstrap, before[0], dashboard(port)),
                      timeout=30), first.output[-3000:]
    journaled = sum(journal_lines(data, name) for name in journaled_topics())

    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    expected = offline_answers(values, set(keys), asked, tmp_path / "offline")
    second, bootstrap, port = start(runs, env)
    assert f"history: re-published {journaled} records" in second.output, second.output
    assert "feed: published" not in second.output
    assert inputs(bootstrap) == records  # same partitions, offsets, keys and values
    assert wait_until(lambda: applied(port, valid), timeout=60), second.output
    assert api_answers(port, asked) == expected.result(timeout=120) == before
    assert all(text in dashboard(port) for text in shown)  # the follow-ups from before

    # Nothing sent twice: no follow-up, no digest; the journal did not grow by a replay.
    assert sent(port, "intel.correlations") > 0  # recomputed from the inputs…
    for topic in ("intel.digests", "intel.followups"):
        assert sent(port, topic) == 0, topic  # …but what was emitted stays emitted
    assert followup_keys(bootstrap) == keys and set(keys.values()) == {1}
    assert sum(journal_lines(data, name) for name in journaled_topics()) == journaled
    assert second.stop(signal.SIGTERM) == 0, second.output
    assert "Traceback" not in first.output + second.output


def test_a_run_stopped_with_sigterm_keeps_what_the_broker_acknowledged(
        tmp_path: Path, runs: list[CliProcess]) -> None:
    env = run_env(tmp_path)
    stream = perturbed_stream(5, duration_s=2)
    half = len(stream) // 2
    first, bootstrap, port = start(runs, env, "--no-feed")
    produce_all(bootstrap, "", stream[:half])
    valid = valid_count([v for _, _, v in stream[:half]])
    assert wait_until(lambda: applied(port, valid), timeout=60), first.output
    produce_all(bootstrap, "", stream[half:])  # acknowledged; maybe not read yet
    records = inputs(bootstrap)
    values = [record[-1] for record in records]
    assert first.stop(signal.SIGTERM) == 0, first.output
    assert "embedded broker stopped" in first.output

    asked = calls(values)
    expected = offline_answers(values, set(), asked, tmp_path / "offline")
    second, bootstrap, port = start(runs, env)  # no --no-feed: a history needs no feed
    assert "feed: published" not in second.output, second.output
    assert inputs(bootstrap) == records
    valid = valid_count(values)
    assert wait_until(lambda: applied(port, valid), timeout=60), second.output
    assert api_answers(port, asked) == expected.result(timeout=120)
    assert second.stop(signal.SIGTERM) == 0, second.output
    assert "Traceback" not in first.output + second.output


def test_memory_history_keeps_nothing(tmp_path: Path, runs: list[CliProcess]) -> None:
    env = {**run_env(tmp_path), "INTEL_HISTORY": "memory"}
    first, _, _ = start(runs, env, "--no-feed")
    assert "MEMORY (INTEL_HISTORY=memory)" in first.output
    assert first.stop(signal.SIGTERM) == 0, first.output
    assert not (Path(env["INTEL_DATA_DIR"]) / "history").exists()
