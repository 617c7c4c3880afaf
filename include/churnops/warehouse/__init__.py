"""The warehouse resource, built once from the settings and handed to the stores.

``build_warehouse(settings.warehouse)`` gives the engine the settings choose:
:class:`~churnops.warehouse.duckdb_warehouse.DuckDBWarehouse` (the embedded default, one
file) or :class:`~churnops.warehouse.postgres_warehouse.PostgresWarehouse`
(``CHURNOPS_WAREHOUSE=postgres``, ``CHURNOPS_POSTGRES_DSN``). ``warehouse_for(settings)``
keeps one per process and settings, so every stage of a process shares its pool.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from churnops.warehouse.base import (
    ConstraintViolation,
    MissingTable,
    Params,
    Session,
    Warehouse,
    WarehouseBusy,
    WarehouseError,
    WarehouseUnavailable,
    utc_now,
)

if TYPE_CHECKING:
    from churnops.settings import Settings, WarehouseSettings


def build_warehouse(settings: WarehouseSettings, read_only: bool = False) -> Warehouse:
    """A new warehouse resource for ``settings`` (``read_only`` matters to DuckDB only)."""
    if settings.kind == "postgres":
        from churnops.warehouse.postgres_warehouse import PostgresWarehouse

        return PostgresWarehouse(
            settings.postgres_dsn,
            work_mem=settings.postgres_work_mem,
            jit_above_cost=settings.postgres_jit_above_cost,
        )
    from churnops.warehouse.duckdb_warehouse import DuckDBWarehouse

    return DuckDBWarehouse(settings.duckdb_path, read_only=read_only)


@dataclass(frozen=True)
class DbtProfile:
    """How dbt reaches the warehouse: the environment profiles.yml reads, the threads to
    run with (None: the profile's), and what to release after an in-process run."""

    env: dict[str, str]
    threads: int | None = None
    release: Callable[[], None] | None = None


def dbt_profile(settings: WarehouseSettings) -> DbtProfile:
    """dbt's side of the engine ``settings`` choose (builds no connection)."""
    if settings.kind == "postgres":
        from churnops.warehouse import postgres_warehouse

        return DbtProfile(
            postgres_warehouse.dbt_profile_env(
                settings.postgres_dsn,
                settings.postgres_work_mem,
                settings.postgres_jit_above_cost,
            )
        )
    from churnops.warehouse import duckdb_warehouse

    return DbtProfile(
        duckdb_warehouse.dbt_profile_env(settings.duckdb_path),
        threads=duckdb_warehouse.DBT_THREADS,
        release=duckdb_warehouse.release_dbt_handles,
    )


@functools.cache
def _shared(settings: WarehouseSettings, read_only: bool) -> Warehouse:
    return build_warehouse(settings, read_only)


def warehouse_for(settings: Settings, read_only: bool = False) -> Warehouse:
    """The process's warehouse resource for these settings (built on first use)."""
    return _shared(settings.warehouse, read_only)


__all__ = [
    "ConstraintViolation",
    "DbtProfile",
    "MissingTable",
    "Params",
    "Session",
    "Warehouse",
    "WarehouseBusy",
    "WarehouseError",
    "WarehouseUnavailable",
    "build_warehouse",
    "dbt_profile",
    "utc_now",
    "warehouse_for",
]
