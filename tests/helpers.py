"""Small helpers the tests share to reach the warehouse through the stores."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from churnops.ingest.store import RawStore
    from churnops.settings import Paths, Settings
    from churnops.storage import SharedFiles
    from churnops.warehouse import Warehouse
    from churnops.warehouse.duckdb_warehouse import DuckDBWarehouse


def duckdb_warehouse(paths: Paths, read_only: bool = False) -> DuckDBWarehouse:
    """The DuckDB warehouse of bare ``paths`` (``paths.warehouse_path``)."""
    from churnops.warehouse.duckdb_warehouse import DuckDBWarehouse

    return DuckDBWarehouse(paths.warehouse_path, read_only=read_only)


def raw_store(paths: Paths, read_only: bool = False) -> RawStore:
    """The raw layer of the DuckDB warehouse of bare ``paths``."""
    from churnops.ingest.store import RawStore

    return RawStore(duckdb_warehouse(paths, read_only=read_only))


def warehouse_of(settings: Settings) -> Warehouse:
    """The process's warehouse resource for ``settings`` (what the pipeline uses)."""
    from churnops.stores import stores_for

    return stores_for(settings).warehouse


def reopened(warehouse: Warehouse) -> Warehouse:
    """A new resource on the same database: nothing of ``warehouse``'s state (its pool,
    the tables it has ensured) carries over, so what it sees is what is stored."""
    from churnops.warehouse.duckdb_warehouse import DuckDBWarehouse
    from churnops.warehouse.postgres_warehouse import PostgresWarehouse

    if isinstance(warehouse, DuckDBWarehouse):
        return DuckDBWarehouse(warehouse.path, read_only=warehouse.read_only)
    if isinstance(warehouse, PostgresWarehouse):
        return PostgresWarehouse(warehouse.url.render_as_string(hide_password=False))
    raise TypeError(f"no way to reopen {warehouse!r}")


def shared_files(paths: Paths) -> SharedFiles:
    """The shared files of bare ``paths``, on their default local layout (``data_dir``)."""
    from churnops.storage import SharedFiles

    return SharedFiles.local(paths.data_dir, paths.state_dir / "models")


def cli_one_line_error(
    args: list[str], env: dict[str, str], drop: tuple[str, ...] = ("CHURNOPS_",)
) -> str:
    """Run ``churnops ARGS`` in a fresh process with ``env`` (the test's environment less
    the variables starting with ``drop``, plus ``env``); it must fail with exit code 2 and
    exactly one line on stderr, no traceback. Returns that line."""
    import os
    import subprocess
    import sys

    from tests.conftest import PROJECT_DIR

    environment = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    result = subprocess.run(
        [sys.executable, "-m", "churnops.cli", *args],
        env={**environment, **env},
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@contextlib.contextmanager
def canary_rollout(settings: Settings, version: str, share: float) -> Iterator[Settings]:
    """``version`` (already the ``challenger`` alias) in the canary phase of a rollout
    serving ``share`` of customers: the settings to score with; the rollout is recorded
    as rolled back afterwards, so later scoring is shadow only again."""
    import dataclasses
    import datetime as dt

    from churnops.rollout import RolloutState
    from churnops.rollout.store import RolloutStore
    from churnops.stores import stores_for

    canary = dataclasses.replace(
        settings, rollout=dataclasses.replace(settings.rollout, canary_share=share)
    )
    store = RolloutStore(stores_for(settings).warehouse)
    state = RolloutState(
        "test-canary",
        settings.mlflow.registered_model_name,
        version,
        None,
        "canary",
        "running",
        dt.date.today(),
    )
    store.record(state, dt.date.today(), "advance", ["a test's canary"], "pytest")
    try:
        yield canary
    finally:
        ended = dataclasses.replace(state, status="rolled_back")
        store.record(ended, dt.date.today(), "rollback", ["the test is over"], "pytest")
