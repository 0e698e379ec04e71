"""Where the tests find the repository's own files."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POLICY_DIR = ROOT / "policy"
SIMULATION_POLICY = POLICY_DIR / "simulation.yml"
SIMULATION_FIXTURES = ROOT / "tests" / "simulation" / "fixtures"
