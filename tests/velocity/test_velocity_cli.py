"""`incident-intel velocity` end to end, checked against the independent reference."""

from __future__ import annotations

import io
import random
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import matplotlib.image
import orjson
import pytest
from click.testing import CliRunner

from app.cli import main
from tests.support.velocity_reference import (
    BASE,
    Plain,
    firing_event,
    incident_event,
    jsonl,
    postmortem,
    reference,
    regression_test_event,
)

ROOT = Path(__file__).resolve().parents[2]
POLICY = str(ROOT / "policy")
TARGET = 0.10  # policy/learning.yml; test_policy_target_is_read checks the link


def scenario(seed: int = 7, count: int = 40) -> tuple[list[dict], list[Plain], list]:
    """Random but fixed incidents over five quarters, with every fallback exercised."""
    rnd = random.Random(seed)
    events: list[dict] = []
    plain: list[Plain] = []
    tests = []
    for n in range(count):
        iid = f"inc-{n:03d}"
        started = BASE + timedelta(days=rnd.randrange(0, 450), minutes=rnd.randrange(0, 1440))
        signature = rnd.choice(["sig-a", "sig-b", "sig-c", f"sig-{n}", f"sig-{n}"])
        cause = rnd.choice([None, None, None, "cause-1", "cause-2"])
        pm_cause = rnd.choice([None, None, None, "cause-2", "cause-3"])
        opened = started + timedelta(minutes=rnd.randrange(-5, 90))
        way = rnd.choice(["field", "firing", "opened", "none"])
        detected = started + timedelta(minutes=rnd.randrange(-3, 60)) if way == "field" else None
        resolved = (started + timedelta(minutes=rnd.randrange(-2, 3000))
                    if rnd.random() < 0.7 else None)
        first_kind = "incident.updated" if way == "none" else "incident.opened"
        events.append(incident_event(f"o{n}", iid, started, occurred=opened, kind=first_kind,
                                     signature=signature))
        events.append(incident_event(f"c{n}", iid, started, occurred=opened + timedelta(
            days=3), kind="incident.closed" if resolved else "incident.updated",
            signature=signature, detected=detected, resolved=resolved, root_cause=cause))
        moment = detected
        if way == "firing":
            fire = [started + timedelta(minutes=rnd.randrange(-10, 80)) for _ in range(2)]
            events += [firing_event(f"f{n}-{k}", iid, at) for k, at in enumerate(fire)]
            moment = min(fire)
        elif way == "opened":
            moment = opened
        if pm_cause:
            events.append(postmortem(f"p{n}", iid, started + timedelta(days=10), pm_cause))
        if rnd.random() < 0.5:
            at = started + timedelta(days=rnd.randrange(0, 40))
            events.append(regression_test_event(f"t{n}", at, incident_id=iid))
            tests.append(at)
        plain.append(Plain(iid, started, resolved, moment,
                           pm_cause and f"rc:{pm_cause}" or cause and f"rc:{cause}"
                           or f"sig:{signature}"))
    return events, plain, tests


def run(args: list[str]) -> Any:
    return CliRunner().invoke(main, ["velocity", *args, "--policy", POLICY])


@pytest.fixture()
def events_file(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    events, plain, tests = scenario()
    path = tmp_path / "events.jsonl"
    path.write_bytes(jsonl(events))
    return path, reference(plain, tests, TARGET)


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return a == pytest.approx(b, rel=1e-9, abs=1e-9)


def test_json_matches_the_independent_computation(events_file) -> None:
    path, expected = events_file
    result = run(["--events", str(path)])
    assert result.exit_code == 0, result.output
    got = orjson.loads(result.stdout_bytes)
    assert got["overall"]["score"] == pytest.approx(expected["score"])
    rows = {row["quarter"]: row for row in got["quarters"]}
    assert set(expected["quarters"]) <= set(rows)
    for quarter, want in expected["quarters"].items():
        row = rows[quarter]
        for name in ("incidents", "recurrences", "above_target", "regression_tests_added",
                     "score_values"):
            assert row[name] == want[name], (quarter, name)
        for name in ("recurrence_rate", "score"):
            assert _close(row[name], want[name]), (quarter, name)
        for metric in ("mttr", "detection_latency"):
            for stat, value in want[metric].items():
                assert _close(row[metric][stat], value), (quarter, metric, stat)
    assert {r["quarter"] for r in got["quarters"]} - set(expected["quarters"]) == {
        q for q, r in rows.items() if r["incidents"] == 0 and r["regression_tests_added"] == 0}


def test_output_is_byte_identical_whatever_the_line_order(events_file, tmp_path) -> None:
    path, _ = events_file
    lines = path.read_bytes().splitlines(keepends=True)
    random.Random(3).shuffle(lines)
    half = len(lines) // 2
    (tmp_path / "a.jsonl").write_bytes(b"".join(lines[:half]))
    (tmp_path / "b.jsonl").write_bytes(b"".join(lines[half:]))
    for fmt in ("json", "md"):
        one = run(["--events", str(path), "--format", fmt])
        two = run(["--events", str(tmp_path / "b.jsonl"), "--events", str(tmp_path / "a.jsonl"),
                   "--format", fmt])
        assert one.exit_code == two.exit_code == 0
        assert one.stdout_bytes == two.stdout_bytes


def test_markdown_has_table_and_one_bar_per_quarter(events_file) -> None:
    path, expected = events_file
    result = run(["--events", str(path), "--format", "md", "--from", "2026-Q2",
                  "--to", "2026-Q4"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "| Quarter | Incidents |" in text
    bars = [line for line in text.splitlines() if line.startswith("2026-Q") and " | " in line
            and not line.startswith("| ")]
    assert [b.split(" | ")[0] for b in bars] == ["2026-Q2", "2026-Q3", "2026-Q4"]
    for bar in bars:
        score = expected["quarters"][bar.split(" | ")[0]]["score"]
        cells = bar.split(" | ")[1]
        label = Decimal(repr(score)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        assert cells.endswith(f" {label}")
        assert len(cells.split(" ")[0]) == 20
        assert cells.count("█") == int(score * 20 + 0.5)


def test_range_filters_quarters_but_not_history(events_file) -> None:
    path, expected = events_file
    result = run(["--events", str(path), "--from", "2026-Q3", "--to", "2026-Q3"])
    got = orjson.loads(result.stdout_bytes)
    assert [r["quarter"] for r in got["quarters"]] == ["2026-Q3"]
    assert got["quarters"][0]["score"] == pytest.approx(expected["quarters"]["2026-Q3"]["score"])


def test_bad_lines_are_reported_and_skipped(events_file, tmp_path) -> None:
    path, expected = events_file
    good = path.read_bytes()
    bad = tmp_path / "mixed.jsonl"
    tail = b'\n[1, 2]\n{"event_id": "x", "type": "incident.opened"}\n'
    bad.write_bytes(b'{"oops": \n' + good + tail)
    result = run(["--events", str(bad)])
    assert result.exit_code == 0
    errors = result.stderr.splitlines()
    total = len(good.splitlines())
    assert errors[0].startswith(f"{bad}:1: skipped: not JSON")
    assert errors[1].startswith(f"{bad}:{total + 3}: skipped: expected a JSON object")
    assert errors[2].startswith(f"{bad}:{total + 4}: skipped: ")
    assert errors[-1] == (
        f"incident-intel velocity: skipped 3 of {total + 3} lines (not valid events)")
    got = orjson.loads(result.stdout_bytes)
    assert got["overall"]["score"] == pytest.approx(expected["score"])


def test_png_opens_and_is_not_blank(events_file, tmp_path) -> None:
    path, _ = events_file
    out = tmp_path / "velocity.png"
    result = run(["--events", str(path), "--format", "png", "--out", str(out)])
    assert result.exit_code == 0, result.output
    pixels = matplotlib.image.imread(io.BytesIO(out.read_bytes()), format="png")
    assert pixels.shape[0] > 400 and pixels.shape[1] > 600
    assert pixels[..., :3].std() > 0.05
    # the score bars are drawn: a good share of pixels has a bar colour (blue, or red
    # for quarters above the recurrence target), not the white background
    def share(rgb: str) -> float:
        want = [int(rgb[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        return float((abs(pixels[..., :3] - want) < 0.02).all(axis=-1).mean())

    assert share("#2f6db3") + share("#c0392b") > 0.02
    again = tmp_path / "again.png"
    assert run(["--events", str(path), "--format", "png", "--out", str(again)]).exit_code == 0
    assert again.read_bytes() == out.read_bytes()


def test_svg_is_svg(events_file, tmp_path) -> None:
    path, _ = events_file
    out = tmp_path / "velocity.svg"
    assert run(["--events", str(path), "--format", "svg", "--out", str(out)]).exit_code == 0
    root = ET.fromstring(out.read_bytes())
    assert root.tag.endswith("svg")
    assert sum(1 for el in root.iter() if el.tag.endswith("path")) > 50  # drawn, not empty
    stdout = run(["--events", str(path), "--format", "svg"])
    assert stdout.exit_code == 0 and stdout.stdout_bytes == out.read_bytes()


def test_empty_events_give_an_empty_report(tmp_path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"\n")
    got = orjson.loads(run(["--events", str(empty)]).stdout_bytes)
    assert got["quarters"] == [] and got["overall"]["score"] == 0.0
    assert "No quarters to show." in run(["--events", str(empty), "--format", "md"]).stdout
    out = tmp_path / "empty.png"
    assert run(["--events", str(empty), "--format", "png", "--out", str(out)]).exit_code == 0
    assert matplotlib.image.imread(str(out)).std() > 0


@pytest.mark.parametrize("args, needle", [
    ([], "--events"),
    (["--events", "EVENTS", "--format", "xml"], "xml"),
    (["--events", "/nonexistent/events.jsonl"], "cannot read"),
    (["--events", "EVENTS", "--from", "2026-Q5"], "not a quarter"),
    (["--events", "EVENTS", "--to", "26Q1"], "not a quarter"),
    (["--events", "EVENTS", "--from", "2026-Q3", "--to", "2026-Q1"], "after"),
    (["--events", "EVENTS", "--format", "png"], "--out"),
    (["--events", "EVENTS", "--bogus"], "--bogus"),
])
def test_bad_arguments_give_one_line_and_exit_2(events_file, args, needle) -> None:
    path, _ = events_file
    result = run([str(path) if a == "EVENTS" else a for a in args])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("incident-intel: ")
    assert needle in lines[0]
    assert "Traceback" not in result.output


def test_bad_policy_is_one_line(events_file, tmp_path) -> None:
    path, _ = events_file
    policy = tmp_path / "policy"
    policy.mkdir()
    for file in Path(POLICY).glob("*.yml"):
        (policy / file.name).write_bytes(file.read_bytes())
    (policy / "learning.yml").write_text("version: 1\nrecurrence_target: 1.5\n")
    result = CliRunner().invoke(main, ["velocity", "--events", str(path), "--policy",
                                       str(policy)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"incident-intel: {policy / 'learning.yml'}: recurrence_target: "
        "Input should be less than 1"]


def test_policy_target_is_read(events_file, tmp_path) -> None:
    path, _ = events_file
    policy = tmp_path / "policy"
    policy.mkdir()
    for file in Path(POLICY).glob("*.yml"):
        (policy / file.name).write_bytes(file.read_bytes())
    (policy / "learning.yml").write_text("version: 1\nrecurrence_target: 0.99\n")
    got = orjson.loads(CliRunner().invoke(main, ["velocity", "--events", str(path),
                                                 "--policy", str(policy)]).stdout_bytes)
    assert got["recurrence_target"] == 0.99
    assert all(r["recurrence_target"] == 0.99 for r in got["quarters"])
    shipped = orjson.loads(run(["--events", str(path)]).stdout_bytes)
    assert shipped["recurrence_target"] == TARGET


def test_real_process_bad_argument_has_no_traceback(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "velocity", "--events", str(tmp_path / "missing")],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    ) if (ROOT / "app" / "cli" / "__main__.py").exists() else subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "velocity", "--events",
         str(tmp_path / "missing")],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "cannot read" in proc.stderr
