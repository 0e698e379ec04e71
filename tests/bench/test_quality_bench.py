"""The correlation-quality benchmark runs on tiny streams and reports every figure; the
patch it applies is the suggestion's, validated like the policy file."""

from __future__ import annotations

import orjson
import pytest

from app.intel.quality import policy_patch
from app.policy import load_policy
from bench import quality
from tests.support.repository import POLICY_DIR


def test_tiny_run_reports_every_difficulty(capsys: pytest.CaptureFixture[str]) -> None:
    quality.main(["--seeds", "3", "--rate", "20", "--duration", "30", "--json"])
    out = capsys.readouterr().out.splitlines()
    rows = orjson.loads(out[-1])
    assert [r["difficulty"] for r in rows] == ["easy", "medium", "hard"]
    for row in rows:
        for key in ("shipped", "after_suggestion"):
            for figure in ("precision", "recall", "f1"):
                stats = row[key][figure]
                assert stats["min"] <= stats["mean"] <= stats["max"] <= 1
        assert 0 <= row["suggested"] <= 3
        assert sum(line.startswith(row["difficulty"]) for line in out) == 1


def test_the_patch_applied_is_the_suggestion() -> None:
    policy = load_policy(POLICY_DIR)
    weights = (("same_signature", 90), ("same_service_and_kind", 0),
               ("same_service_time_cluster", 50), ("same_kind_cross_service", 40))
    changed = quality.patched(policy, policy_patch(weights, 45)).intel.correlation
    assert changed.min_score == 45
    assert [(r.name, r.weight) for r in changed.rules] == list(weights)
    assert changed.lookback_days == policy.intel.correlation.lookback_days
    with pytest.raises(ValueError, match="rule listed twice"):
        quality.patched(policy, policy_patch(weights + weights[:1], 45))
