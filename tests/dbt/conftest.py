"""The warehouses the dbt tests share: built once per session (see ``warehouses.py``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.dbt.warehouses import END, START, copy_warehouse, days, dbt_build, simulate_raw_history

NIGHTS = 4  # nights built one by one after the bootstrap part of the "nightly" warehouse


@pytest.fixture(scope="session")
def raw_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB file whose raw layer holds the simulated history (never built on: copy it)."""
    return simulate_raw_history(tmp_path_factory.mktemp("dbt-raw"))


@pytest.fixture(scope="session")
def bootstrap_warehouse(raw_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every as-of date of the history built by one dbt run on DuckDB."""
    folder = tmp_path_factory.mktemp("dbt-bootstrap")
    warehouse = copy_warehouse(raw_warehouse, folder)
    dbt_build(warehouse, folder, {"as_of_start": START.isoformat(), "as_of_end": END.isoformat()})
    return warehouse


@pytest.fixture(scope="session")
def nightly_warehouse(raw_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The history up to END - NIGHTS built at once, then one dbt run per night to END."""
    folder = tmp_path_factory.mktemp("dbt-nightly")
    warehouse = copy_warehouse(raw_warehouse, folder)
    last_bootstrapped = END - dt.timedelta(days=NIGHTS)
    dbt_build(
        warehouse,
        folder,
        {"as_of_start": START.isoformat(), "as_of_end": last_bootstrapped.isoformat()},
    )
    for night in days(last_bootstrapped + dt.timedelta(days=1), END):
        dbt_build(warehouse, folder, {"as_of_date": night.isoformat()})
    return warehouse
