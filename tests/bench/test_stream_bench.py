"""The stream benchmark runs end to end on a tiny input and reports every figure.

Nothing here is timed: the figures only have to exist, be positive and be
consistent with what was sent.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import stream


@given(st.lists(st.floats(0, 10), max_size=50), st.integers(0, 20), st.floats(0, 1))
def test_percentile_counts_missing_records_as_slowest(found, missing, q):
    found = sorted(found)
    total = len(found) + missing
    if not total:
        return
    value = stream.percentile(found, q, total)
    index = int(q * (total - 1))
    if index < len(found):
        assert value == 1000 * found[index]
    else:
        assert value is None


def test_live_events_follow_the_sending_clock():
    events = stream.live_events(5, 100, 1000.0)
    stamps = [json.loads(value)["occurred_at"] for _, value in events]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5
    assert [key for key, _ in events] == [f"inc{i:07d}".encode() for i in range(100, 105)]


@pytest.mark.broker
def test_tiny_run_reports_every_figure(capsys):
    stream.main(["40", "--json", "--history=60", "--rate=20", "--rate=100", "--seconds=2",
                 "--backfill=30"])
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    for key in ("engine_eps", "raw_eps", "naive_eps", "pipeline_eps", "latency_p50_ms",
                "latency_p99_ms", "latency_p99_ms_at_100", "plain_loop_latency_p99_ms",
                "api_p99_ms_during_backfill"):
        assert summary[key] > 0, key
    run = summary["runs"][0]
    # CPU is read in clock ticks: forty events may leave the broker's at zero.
    assert run["engine_cpu_ms_per_event"] > 0
    assert run["worker_cpu_ms_per_event"] >= 0 and run["broker_cpu_ms_per_event"] >= 0
    assert (summary["n"], summary["history"]) == (40, 60)
    # The warm-up is sent but not measured: 2 s at each rate are, of the pipeline and of
    # the plain loop beside it.
    assert [(x["of"], x["rate"], x["sent"], x["received"]) for x in summary["latency"]] == [
        ("pipeline", 20.0, 40, 40), ("plain loop", 20.0, 40, 40),
        ("pipeline", 100.0, 200, 200), ("plain loop", 100.0, 200, 200)]
    assert "pipeline / plain loop at 20 events/s" in "\n".join(lines)
    assert summary["api"]["calls"] > 0 and summary["api"]["failed"] == 0
    assert "P/E" in "\n".join(lines)


def test_help_prints_the_usage_and_runs_nothing(capsys):
    from bench.__main__ import main

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    assert "usage: python -m bench" in capsys.readouterr().out
