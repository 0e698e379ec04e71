"""Shared fixtures of the simulation tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from app.simulation.catalog import SimulationPolicy, load_simulation_policy

ROOT = Path(__file__).resolve().parents[2]
POLICY_FILE = ROOT / "policy" / "simulation.yml"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def sim_policy() -> SimulationPolicy:
    return load_simulation_policy(POLICY_FILE)


@pytest.fixture()
def cli() -> CliRunner:
    return CliRunner()
