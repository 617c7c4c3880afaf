"""dbt_env: the environment profiles.yml reads, from the settings (one DSN for PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnops.features import dbt_env
from churnops.settings import load_settings

pytestmark = pytest.mark.unit

PG_NAMES = [f"CHURNOPS_PG_{part}" for part in ("HOST", "PORT", "USER", "PASSWORD", "DBNAME")]


def _postgres_env(dsn: str, tmp_path: Path) -> dict[str, str]:
    settings = load_settings(
        {
            "CHURNOPS_WAREHOUSE": "postgres",
            "CHURNOPS_POSTGRES_DSN": dsn,
            "CHURNOPS_STATE_DIR": str(tmp_path),
        }
    )
    return dbt_env(settings)


def test_the_dsn_is_split_into_the_prod_outputs_settings(tmp_path: Path) -> None:
    env = _postgres_env(
        "postgresql://churn%40ops:p%40ss%2Fw%3Ard@db.internal:6543/wh%2D1", tmp_path
    )
    assert env["CHURNOPS_DBT_TARGET"] == "prod"
    assert {name: env[name] for name in PG_NAMES} == {
        "CHURNOPS_PG_HOST": "db.internal",
        "CHURNOPS_PG_PORT": "6543",
        "CHURNOPS_PG_USER": "churn@ops",
        "CHURNOPS_PG_PASSWORD": "p@ss/w:rd",
        "CHURNOPS_PG_DBNAME": "wh-1",
    }


@pytest.mark.parametrize(
    "dsn", ["postgresql://db.internal/churnops", "postgresql+psycopg2://db.internal/churnops"]
)
def test_port_user_and_password_default(dsn: str, tmp_path: Path) -> None:
    env = _postgres_env(dsn, tmp_path)
    assert {name: env[name] for name in PG_NAMES} == {
        "CHURNOPS_PG_HOST": "db.internal",
        "CHURNOPS_PG_PORT": "5432",
        "CHURNOPS_PG_USER": "postgres",
        "CHURNOPS_PG_PASSWORD": "",
        "CHURNOPS_PG_DBNAME": "churnops",
    }


def test_a_dsn_without_a_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="names no database"):
        _postgres_env("postgresql://postgres@db.internal:5432", tmp_path)


def test_duckdb_sets_no_postgres_settings(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    settings = load_settings(
        {"CHURNOPS_DUCKDB_PATH": str(warehouse), "CHURNOPS_STATE_DIR": str(tmp_path)}
    )
    assert dbt_env(settings) == {
        "CHURNOPS_DUCKDB_PATH": str(warehouse),
        "CHURNOPS_DBT_TARGET": "local",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "true",
    }


@pytest.mark.parametrize("size", ["64MB", "1GB", "512kB"])
def test_the_dbt_work_mem_setting_takes_postgres_sizes(size: str, tmp_path: Path) -> None:
    settings = load_settings(
        {"CHURNOPS_POSTGRES_WORK_MEM": size, "CHURNOPS_STATE_DIR": str(tmp_path)}
    )
    assert settings.warehouse.postgres_work_mem == size


@pytest.mark.parametrize("size", ["256", "256 MB", "0MB", "lots", "-1GB", "1.5GB"])
def test_a_dbt_work_mem_that_postgres_would_refuse_is_refused_by_name(
    size: str, tmp_path: Path
) -> None:
    from churnops.settings import SettingsError

    with pytest.raises(SettingsError, match="CHURNOPS_POSTGRES_WORK_MEM=.*256MB"):
        load_settings({"CHURNOPS_POSTGRES_WORK_MEM": size, "CHURNOPS_STATE_DIR": str(tmp_path)})


@pytest.mark.parametrize("cost", ["-1", "0", "1000000"])
def test_the_jit_threshold_takes_minus_one_or_a_cost(cost: str, tmp_path: Path) -> None:
    settings = load_settings(
        {"CHURNOPS_POSTGRES_JIT_ABOVE_COST": cost, "CHURNOPS_STATE_DIR": str(tmp_path)}
    )
    assert settings.warehouse.postgres_jit_above_cost == int(cost)


@pytest.mark.parametrize("cost", ["-2", "1e6", "lots"])
def test_a_jit_threshold_postgres_would_refuse_is_refused_by_name(
    cost: str, tmp_path: Path
) -> None:
    from churnops.settings import SettingsError

    with pytest.raises(SettingsError, match="CHURNOPS_POSTGRES_JIT_ABOVE_COST"):
        load_settings(
            {"CHURNOPS_POSTGRES_JIT_ABOVE_COST": cost, "CHURNOPS_STATE_DIR": str(tmp_path)}
        )
