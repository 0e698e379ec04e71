"""`incident-intel tool` with the ``alerts`` action, as other programs call it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.policy import load_policy
from tests.engine.test_alerts import transition
from tests.engine.test_tool_cli import run
from tests.support.builders import at, incident_event, jsonl
from tests.support.repository import POLICY_DIR


@pytest.fixture()
def alert_events(tmp_path: Path) -> Path:
    events: list[dict[str, Any]] = [incident_event("inc_1", started=at(days=1))]
    events += [transition(f"g{i}", "fp-gw-5xx", at(days=5, minutes=10 * i),
                          "firing" if i % 2 == 0 else "resolved", incident_id="inc_1")
               for i in range(6)]
    events += [transition(f"l{i}", "fp-gw-lat", at(days=2 + i), "firing", kind="latency")
               for i in range(4)]
    events += [transition(f"b{i}", "fp-bill", at(days=i), "firing", service="billing")
               for i in range(2)]
    events += [transition("old", "fp-old", at(days=-20), "firing")]
    events.append(events[3])  # a re-sent transition
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(jsonl(events))
    return path


def call(path: Path, tmp_path: Path, action: dict[str, Any], *extra: str) -> tuple[int, Any]:
    code, out, _ = run(["--events", str(path), *extra, json.dumps(action)], tmp_path)
    return code, json.loads(out)


def test_default_window_is_seven_days_and_rows_have_every_field(alert_events, tmp_path):
    code, answer = call(alert_events, tmp_path, {"action": "alerts"})
    assert code == 0
    assert list(answer) == ["as_of", "window_days", "service_filter", "alert_count", "alerts",
                            "flapping", "promote_candidates"]
    assert answer["window_days"] == 7 and answer["service_filter"] is None
    assert [r["fingerprint"] for r in answer["alerts"]] == ["fp-gw-lat", "fp-gw-5xx", "fp-bill"]
    assert answer["alert_count"] == 3
    gw = answer["alerts"][1]
    assert list(gw) == ["fingerprint", "service", "kind", "firing_7d", "firing_30d", "level",
                        "flapping", "max_transitions_in_flap_window", "linked_incidents",
                        "last_fired"]
    assert (gw["firing_7d"], gw["level"], gw["flapping"]) == (3, "warn", True)
    assert gw["linked_incidents"] == ["inc_1"]
    assert answer["flapping"] == ["fp-gw-5xx"]
    assert [c["fingerprint"] for c in answer["promote_candidates"]] == ["fp-gw-lat"]


def test_service_filter_and_longer_window(alert_events, tmp_path):
    _, billing = call(alert_events, tmp_path, {"action": "alerts", "service": "billing"})
    assert billing["service_filter"] == "billing"
    assert [r["fingerprint"] for r in billing["alerts"]] == ["fp-bill"]
    _, month = call(alert_events, tmp_path, {"action": "alerts", "window_days": 30})
    assert "fp-old" in [r["fingerprint"] for r in month["alerts"]]


def test_as_of_hides_later_transitions(alert_events, tmp_path):
    _, early = call(alert_events, tmp_path, {"action": "alerts"},
                    "--as-of", "2026-02-19T00:00:00Z")
    lat = {r["fingerprint"]: r for r in early["alerts"]}["fp-gw-lat"]
    assert lat["firing_7d"] == 2 and lat["last_fired"] == "2026-02-19T00:00:00Z"


@pytest.mark.parametrize("action, field", [
    ({"action": "alerts", "window_days": 0}, "window_days"),
    ({"action": "alerts", "window_days": 3661}, "window_days"),
    ({"action": "alerts", "window_days": "week"}, "window_days"),
    ({"action": "alerts", "service": ""}, "service"),
    ({"action": "alerts", "fingerprint": "x"}, "fingerprint"),
])
def test_bad_arguments_exit_2_naming_the_field(alert_events, tmp_path, action, field):
    code, answer = call(alert_events, tmp_path, action)
    assert code == 2
    assert answer["error"]["code"] == "invalid_request"
    assert answer["error"]["message"].startswith(f"{field}: ")


def test_the_widest_window_is_the_alert_retention(alert_events, tmp_path):
    kept = load_policy(POLICY_DIR).intel.alerts.retention_days
    code, answer = call(alert_events, tmp_path, {"action": "alerts", "window_days": kept})
    assert code == 0 and answer["window_days"] == kept
    code, answer = call(alert_events, tmp_path, {"action": "alerts", "window_days": kept + 1})
    assert code == 2 and answer["error"]["code"] == "invalid_argument"
    assert answer["error"]["message"].startswith("window_days: ")
