"""The durable history's journal: what it writes, skips, repairs and hands to a replay."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.broker.history import DurableHistory, history_mode
from app.broker.journal import Entry, Journal, decode_entry, encode_entry, journaled_topics
from app.errors import UserError
from app.stream.inputs import Received
from app.stream.settings import WorkerSettings
from app.topics import input_topics

PREFIX = "t1."
NAMES = {PREFIX + name: name for name in journaled_topics() + ("intel.recurrence",)}
OPTIONAL = st.none() | st.binary(max_size=40) | st.text(max_size=20).map(str.encode)
HEADERS = st.lists(st.tuples(st.text(min_size=1, max_size=8), st.binary(max_size=12)),
                   max_size=3).map(tuple)


def record(offset: int, value: bytes | None = b"{}", *, partition: int = 0,
           key: bytes | None = b"k", timestamp: int = 1_700_000_000_000,
           headers: tuple[tuple[str, bytes], ...] = ()) -> Received:
    return Received(key, value, partition, offset, timestamp, headers)


def entry_of(r: Received) -> Entry:
    return Entry(r.offset, r.timestamp, r.key, r.value, r.headers)


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_the_journal_keeps_every_input_the_replica_reads() -> None:
    assert set(input_topics()) | {"intel.followups", "intel.digests"} == set(journaled_topics())


@given(key=OPTIONAL, value=OPTIONAL, headers=HEADERS,
       offset=st.integers(0, 2**62), timestamp=st.integers(-1, 2**50))
def test_a_line_gives_back_the_record_byte_for_byte(key: bytes | None, value: bytes | None,
                                                    headers: tuple[tuple[str, bytes], ...],
                                                    offset: int, timestamp: int) -> None:
    r = Received(key, value, 0, offset, timestamp, headers)
    line = encode_entry(r)
    assert b"\n" not in line
    assert decode_entry(line) == entry_of(r)


def test_records_are_kept_per_partition_under_the_catalog_name(tmp_path: Path) -> None:
    journal = Journal(tmp_path, NAMES)
    batch = [(PREFIX + "incidents.events", [record(0), record(1, b"\xff\xfe")]),
             (PREFIX + "incidents.events", [record(0, b"p1", partition=1)]),
             (PREFIX + "intel.recurrence", [record(0)])]  # recomputable: not kept
    assert journal.append(batch) == 3
    journal.close()

    again = Journal(tmp_path, NAMES)
    assert again.partitions() == [("incidents.events", 0), ("incidents.events", 1)]
    assert again.read("incidents.events", 0) == [entry_of(record(0)),
                                                 entry_of(record(1, b"\xff\xfe"))]
    assert again.read("incidents.events", 1) == [entry_of(record(0, b"p1", partition=1))]
    assert not (tmp_path / "intel.recurrence").exists()
    again.close()


def test_offsets_already_held_are_not_written_again(tmp_path: Path) -> None:
    journal = Journal(tmp_path, NAMES)
    topic = PREFIX + "intel.followups"
    journal.hold({(topic, 0): 3})  # a replay re-published offsets 0..2
    assert journal.append([(topic, [record(n) for n in range(5)])]) == 2
    # The replica starting over reads everything again: nothing new is written.
    assert journal.append([(topic, [record(n) for n in range(6)])]) == 1
    journal.close()
    offsets = [decode_entry(line).offset for line in lines(tmp_path / "intel.followups/0.jsonl")]
    assert offsets == [3, 4, 5]


def test_a_torn_last_line_is_dropped_and_appending_goes_on(tmp_path: Path) -> None:
    journal = Journal(tmp_path, NAMES)
    topic = PREFIX + "alerts.state"
    journal.append([(topic, [record(0), record(1)])])
    journal.close()
    path = tmp_path / "alerts.state/0.jsonl"
    whole = encode_entry(record(2))
    with path.open("ab") as handle:  # a crash in the middle of a write
        handle.write(whole[: len(whole) // 2])

    again = Journal(tmp_path, NAMES)
    entries = again.read("alerts.state", 0)
    assert [e.offset for e in entries] == [0, 1]
    again.hold({(topic, 0): 2})
    assert again.append([(topic, [record(2), record(3)])]) == 2
    again.close()
    assert [decode_entry(line).offset for line in lines(path)] == [0, 1, 2, 3]


def test_a_damaged_line_before_the_end_names_the_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "incidents.events"
    folder.mkdir()
    (folder / "0.jsonl").write_bytes(encode_entry(record(0)) + b"\n{oops\n"
                                     + encode_entry(record(2)) + b"\n")
    journal = Journal(tmp_path, NAMES)
    with pytest.raises(UserError, match=r"incidents\.events/0\.jsonl:2: not a history line"):
        list(journal.entries())
    journal.close()


def test_a_replay_reads_each_partition_in_offset_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path, NAMES)
    for topic in ("learning.events", "incidents.events"):
        for partition in (1, 0):
            journal.append([(PREFIX + topic, [record(n, b"%d" % n, partition=partition)
                                              for n in range(4)])])
    journal.close()
    (tmp_path / "incidents.events" / "notes.txt").write_text("not a partition")

    again = Journal(tmp_path, NAMES)
    plan = [(name, partition, [e.offset for e in entries])
            for name, partition, entries in again.entries()]
    again.close()
    assert plan == [(name, p, [0, 1, 2, 3]) for name in ("incidents.events", "learning.events")
                    for p in (0, 1)]


@pytest.mark.parametrize(("raw", "mode"), [("", "durable"), (" Durable ", "durable"),
                                           ("memory", "memory")])
def test_history_mode_is_durable_unless_memory_is_asked_for(raw: str, mode: str) -> None:
    assert history_mode({"INTEL_HISTORY": raw}) == mode


def test_a_bad_history_mode_is_one_line_naming_the_fix() -> None:
    with pytest.raises(UserError, match=r"INTEL_HISTORY='disk': must be durable or memory; "
                                        r"fix INTEL_HISTORY or unset it"):
        history_mode({"INTEL_HISTORY": "disk"})


def test_one_run_at_a_time_writes_a_history(tmp_path: Path) -> None:
    settings = WorkerSettings(data_dir=tmp_path)
    first, second = DurableHistory(settings), DurableHistory(settings)
    first.lock()
    with pytest.raises(UserError, match="in use by another `incident-intel run`"):
        second.lock()
    first.close()
    second.lock()  # the lock goes with the process that held it
    second.close()


def test_the_data_path_marks_nothing_applied_that_is_not_journaled(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    import orjson

    from app.stream.testing import StreamHarness
    from tests.support.builders import incident_event
    from tests.support.policies import default_policy

    history = DurableHistory(WorkerSettings(app_id="t-journal-hook", data_dir=tmp_path))
    harness = StreamHarness(default_policy(), journal=history.journal.keep)
    harness.caught_up = False
    event = incident_event("inc_1", started=datetime(2026, 2, 18, 14, 30, tzinfo=UTC))
    received = int(datetime(2026, 2, 20, tzinfo=UTC).timestamp() * 1000)  # event time passed
    harness.run([("incidents.events", [record(0, orjson.dumps(event), key=b"inc_1",
                                              timestamp=received)])])
    assert harness.cycle.applied_to == {("incidents.events", 0): 1}
    assert "inc_1" in harness.replica.engine.book.incidents
    kept = history.journal.read("incidents.events", 0)
    assert [(e.offset, e.value) for e in kept] == [(0, orjson.dumps(event))]

    # A journal that cannot write stops the fetch before it is applied or marked applied.
    def full(batch: object) -> None:
        raise OSError(28, "No space left on device")

    history.journal.append = full  # type: ignore[method-assign]
    later = [("incidents.events", [record(1, orjson.dumps(
        incident_event("inc_2", started=datetime(2026, 2, 19, tzinfo=UTC))), key=b"inc_2",
        timestamp=received)])]
    with pytest.raises(OSError, match="No space"):
        harness.run(later)
    assert harness.cycle.applied_to == {("incidents.events", 0): 1}
    assert "inc_2" not in harness.replica.engine.book.incidents
    harness.close()
    history.close()
