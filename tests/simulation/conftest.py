"""Shared fixtures of the simulation tests."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from app.simulation.catalog import SimulationPolicy, load_simulation_policy
from tests.support.repository import SIMULATION_POLICY


@pytest.fixture(scope="session")
def sim_policy() -> SimulationPolicy:
    return load_simulation_policy(SIMULATION_POLICY)


@pytest.fixture()
def cli() -> CliRunner:
    return CliRunner()
