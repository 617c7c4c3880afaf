"""Shared test set-up: telemetry off, small deterministic simulations."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

for _name, _value in {
    "DO_NOT_TRACK": "true",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "SCARF_ANALYTICS": "false",
}.items():
    os.environ.setdefault(_name, _value)

from churnops.settings import SimulationSettings  # noqa: E402

SMALL_START = dt.date(2025, 1, 1)


@pytest.fixture(scope="session")
def small_sim() -> SimulationSettings:
    """A small base: fast to generate, big enough for stable shares."""
    return SimulationSettings(customers=2_000, seed=7, history_start=SMALL_START, history_days=60)


@pytest.fixture(scope="session")
def small_landing(tmp_path_factory: pytest.TempPathFactory, small_sim: SimulationSettings) -> Path:
    """Clean drops for the first 21 days of the small base."""
    from churnops.simulate import simulate_days

    root = tmp_path_factory.mktemp("landing")
    simulate_days(small_sim, SMALL_START, SMALL_START + dt.timedelta(days=20), root)
    return root
