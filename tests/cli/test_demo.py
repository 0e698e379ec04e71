"""`incident-intel demo` end to end: its own broker, the worker, the digest, a clean exit."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli.demo import DEFAULT_SEED, demo_history
from app.contracts import (
    DigestSummary,
    WeeklyDigestRequest,
    WeeklyDigestResponse,
    decode_event,
    dump_json,
)
from app.intel.digest import artifact_json, content, escape, first_revision
from app.intel.engine import IntelEngine
from app.intel.followups import dedupe_key
from app.intel.labels import Name
from app.intel.periods import week_end
from app.intel.signature import normalise_title
from app.policy import load_policy
from tests.support.kafka import REPO, pid_alive, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures("tansu_available")]


def _run_demo(out: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("INTEL_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    return subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "demo", "--out", str(out)],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=300,  # a hang guard only; the demo bounds itself
    )


def test_the_demo_prints_the_digest_of_the_histories_last_week_and_cleans_up(
        tmp_path: Path) -> None:
    history = demo_history(DEFAULT_SEED)
    strongest = max(history.truth.recurrence, key=lambda r: r.count)
    week = history.last_week

    done = _run_demo(tmp_path / "demo")
    output = done.stdout + done.stderr

    assert done.returncode == 0, output
    assert "Traceback" not in output
    assert f"# Weekly Incident Digest — {week}" in done.stdout
    label = Name(normalise_title(strongest.title), strongest.service, strongest.kind).render(
        load_policy(REPO / "policy").intel.recurrence.label_template)
    shown = escape(f"{label} ({strongest.signature[:8]})")
    assert f"| signature | {shown} | {strongest.count} |" in done.stdout
    bucket = f"{strongest.service}\\|{strongest.kind}"
    # The history ends before the week's end in event time, so no owner has planned
    # the week yet: the digest creates the follow-up itself.
    assert re.search(rf"^\| {re.escape(bucket)} \| \S+ \| \S+ \| created \|$", done.stdout,
                     re.M), done.stdout

    paths = re.search(rf"demo: digest {week}: (\S+), (\S+)$", done.stdout, re.M)
    assert paths is not None, done.stdout
    json_path, md_path = Path(paths.group(1)), Path(paths.group(2))
    assert json_path.is_file() and md_path.is_file()
    assert md_path.read_text().startswith(f"# Weekly Incident Digest — {week}")

    broker = re.search(r"embedded broker pid (\d+)", done.stdout)
    assert broker is not None, done.stdout
    assert wait_until(lambda: not pid_alive(int(broker.group(1))), timeout=10), "tansu left"

    # The streamed digest is the offline engine's over the same events, byte for byte
    # (revision 1 aside). A published digest is as of the week's end, also when the
    # history stops short of it: the tool answers so with `--as-of` at the week's end.
    policy = load_policy(REPO / "policy")
    engine = IntelEngine(policy)
    events = [decode_event(r.value_bytes()) for r in history.records]
    engine.apply_all(events)
    offline = engine.weekly_digest(
        WeeklyDigestRequest(action="weekly_digest", week=week, save_artifacts=True),
        week_end(week))
    assert dedupe_key(week, f"{strongest.service}|{strongest.kind}", policy.intel) in {
        f.meta.dedupe_key for f in offline.followups}
    assert md_path.read_bytes() == offline.artifacts[1].data
    published = DigestSummary.model_validate_json(json_path.read_bytes())
    assert published.revision == 1
    assert json_path.read_bytes() == artifact_json(first_revision(published))
    assert isinstance(offline.response, WeeklyDigestResponse)
    assert content(published) == dump_json(offline.response.json_summary)
