"""`incident-intel policy check` on the shipped policy and on broken copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from app.cli import main
from app.policy import POLICY_FILES, Policy, load_policy
from app.policyfile import bundled_policy_dir, default_policy_dir

POLICY = Path(__file__).resolve().parents[2] / "policy"


def check(directory: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["policy", "check", str(directory)])
    return result.exit_code, result.output


def test_shipped_policy_is_valid():
    code, out = check(POLICY)
    assert code == 0, out


@pytest.mark.parametrize(("file", "old", "new", "field", "reason"), [
    ("incident_intelligence.yml", "signature: {warn: 3, high: 6}", "signature: {warn: 9, high: 6}",
     "recurrence.thresholds.signature", "must not exceed high"),
    ("incident_intelligence.yml", "{name: same_signature, weight: 100}",
     "{name: same_signature, weight: -5}", "correlation.rules.0.weight",
     "greater than or equal to 0"),
    ("incident_intelligence.yml", "  within_minutes: 180 ", "  within_minutes: soon ",
     "correlation.within_minutes", "valid integer"),
    ("incident_intelligence.yml", "  min_score: 20 ", "  min_score: 20\n  surprise: 1 ",
     "correlation.surprise", "unknown key"),
    ("incident_intelligence.yml", "    by_kind:\n", "    by_kind:\n      teleport: \"{kind}\"\n",
     "recurrence.templates.by_kind.teleport", "unknown kind"),
    ("incident_intelligence.yml", "{count} times: open", "{counts} times: open",
     "recurrence.templates.signature", "unknown placeholder"),
    ("incident_intelligence.yml", "label_template: \"{title} ·", "label_template: \"{sig} ·",
     "recurrence.label_template", "unknown placeholder {sig}"),
    ("incident_intelligence.yml", "  error_rate:\n    - \"Check", "  warp:\n    - \"Check",
     "recommendations.warp", "unknown kind"),
    ("release_gate.yml", "staging: {mode: strict}", "staging: {mode: panic}",
     "profiles.staging.mode", "'off', 'warn' or 'strict'"),
    ("release_gate.yml", "severity_in: [P0, P1]", "severity_in: [P0, P9]",
     "fail_on.severity_in.1", "'P0', 'P1', 'P2' or 'P3'"),
    ("rate_limits.yml", "correlate: {per_minute: 10", "correlate: {per_minute: 0",
     "actions.correlate.per_minute", "greater than 0"),
    ("rbac.yml", "agent_monitor: []", "agent_monitor: [Not An Entitlement]",
     "roles.agent_monitor.0", "pattern"),
    ("sources.yml", "default_severity: P3", "default_severity: P9",
     "alertmanager.default_severity", "'P0', 'P1', 'P2' or 'P3'"),
    ("sources.yml", "    critical: P1\n", "    critical: P1\n    CRITICAL: P2\n",
     "alertmanager.severity", "keys repeat"),
    ("sources.yml", "service_label: [service, job]", "service_label: [service, 9job]",
     "alertmanager.service_label.1", "pattern"),
    ("sources.yml", "{triggered: open, acknowledged: mitigating, resolved: resolved}",
     "{triggered: open, resolved: resolved}", "pagerduty.status",
     "no status given for acknowledged"),
    ("sources.yml", "    - incident.reopened\n", "    - incident.annotated\n",
     "pagerduty.event_types.3", "Input should be"),
    ("sources.yml", "max_body_bytes: 1048576", "max_body_bytes: 10",
     "delivery.max_body_bytes", "greater than or equal to 1024"),
])
def test_broken_policy_names_file_field_and_reason(tmp_path, file, old, new, field, reason):
    copy = tmp_path / "policy"
    shutil.copytree(POLICY, copy)
    text = (copy / file).read_text()
    assert old in text, "the fixture no longer matches the shipped policy"
    (copy / file).write_text(text.replace(old, new, 1))
    code, out = check(copy)
    assert code != 0
    line = out.strip()
    assert "\n" not in line and "Traceback" not in line
    assert f"{copy / file}: {field}: " in line
    assert reason in line


def test_yaml_syntax_error_and_missing_file(tmp_path):
    copy = tmp_path / "policy"
    shutil.copytree(POLICY, copy)
    (copy / "rbac.yml").write_text("roles: [unclosed\n")
    code, out = check(copy)
    assert code != 0 and "rbac.yml: line" in out and "invalid YAML" in out
    (copy / "rbac.yml").unlink()
    code, out = check(copy)
    assert code != 0 and "rbac.yml: (file): missing" in out


def test_policy_directory_is_the_environment_then_local_then_shipped(tmp_path, monkeypatch):
    monkeypatch.delenv("INTEL_POLICY_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_policy_dir() == bundled_policy_dir()
    assert load_policy() == load_policy(POLICY).model_copy(
        update={"directory": str(bundled_policy_dir())})
    shutil.copytree(POLICY, tmp_path / "policy")
    assert default_policy_dir() == Path("policy")
    monkeypatch.setenv("INTEL_POLICY_DIR", str(tmp_path / "elsewhere"))
    assert default_policy_dir() == tmp_path / "elsewhere"


def test_each_file_is_a_typed_section_and_the_learning_target_has_one_reader():
    policy = load_policy(POLICY)
    for field, name in POLICY_FILES.items():
        assert (POLICY / name).is_file()
        assert isinstance(getattr(policy, field), Policy.model_fields[field].annotation)
    target = yaml.safe_load((POLICY / "learning.yml").read_text())["recurrence_target"]
    assert policy.recurrence_target == target
