"""Settings come from CHURNOPS_* variables with clear errors; the CLI writes and reports."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from churnops.cli import main
from churnops.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_defaults_are_the_local_profile_under_the_project() -> None:
    settings = load_settings({})
    assert settings.profile == "local"
    assert settings.paths.state_dir == settings.paths.project_dir / ".churnops"
    assert settings.warehouse.kind == "duckdb" and settings.warehouse.dbt_target == "local"
    assert settings.simulation.history_days == 547


def test_environment_overrides(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "CHURNOPS_PROFILE": "prod",
            "CHURNOPS_STATE_DIR": str(tmp_path),
            "CHURNOPS_SIM_CUSTOMERS": "500",
            "CHURNOPS_SIM_SCENARIO": "price_increase",
            "CHURNOPS_SIM_SCENARIO_START": "2025-06-01",
        }
    )
    assert settings.warehouse.kind == "postgres" and settings.warehouse.dbt_target == "prod"
    assert settings.paths.landing_dir == tmp_path / "data" / "landing"
    assert settings.simulation.customers == 500
    assert settings.simulation.effective_scenario_start == dt.date(2025, 6, 1)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHURNOPS_PROFILE": "staging"}, "CHURNOPS_PROFILE='staging' is not one of local, prod"),
        ({"CHURNOPS_SIM_CUSTOMERS": "lots"}, "is not a whole number"),
        ({"CHURNOPS_SIM_CUSTOMERS": "0"}, "must be at least 1"),
        ({"CHURNOPS_SIM_START": "01/02/2025"}, "is not a date"),
        ({"CHURNOPS_SIM_SCENARIO": "recession"}, "is not one of baseline"),
    ],
)
def test_bad_values_say_what_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        load_settings(env)


def test_importing_settings_touches_nothing(tmp_path: Path) -> None:
    """No I/O at import: a fresh interpreter importing the module creates no state dir."""
    code = "import churnops.settings, churnops.contracts, churnops.simulate"
    state = tmp_path / "state"
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={"CHURNOPS_STATE_DIR": str(state), "PATH": ""}
    )
    assert not state.exists()


def test_cli_simulate_writes_and_summarises(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("CHURNOPS_STATE_DIR", str(tmp_path))
    code = main(
        ["simulate", "--customers", "300", "--days", "2", "--corrupt", "2025-01-02:empty_file"]
    )
    out = capsys.readouterr()
    assert code == 0
    assert "simulated 2 day(s) 2025-01-01 .. 2025-01-02" in out.out
    assert f"landing drops under {tmp_path / 'data' / 'landing'}" in out.out
    assert "usage_daily dt=2025-01-02: empty_file" in out.out
    assert "simulate: 2025-01-02" in out.err  # progress
    assert (tmp_path / "data/landing/usage_daily/dt=2025-01-02/part-0.parquet").exists()


def test_cli_reports_bad_input_without_a_traceback(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("CHURNOPS_STATE_DIR", str(tmp_path))
    assert main(["simulate", "--days", "1", "--corrupt", "2025-01-01:gremlins"]) == 2
    assert "churnops simulate: unknown corruption kind 'gremlins'" in capsys.readouterr().err


def test_training_before_any_history_says_what_to_run(tmp_path: Path, capsys, monkeypatch) -> None:
    """A stage run too early is the user's to fix: one line naming the step, no traceback."""
    monkeypatch.setenv("CHURNOPS_STATE_DIR", str(tmp_path))
    assert main(["train"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("churnops train: the warehouse has no marts.fct_customer_features")
    assert "churnops bootstrap" in err and "Traceback" not in err


def test_status_on_an_empty_installation(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("CHURNOPS_STATE_DIR", str(tmp_path))
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "Production model : none yet (train one: churnops train)" in out
    assert "Drift state      : no drift report yet" in out
    assert "Last nightly run : none yet" in out
    assert "Triggers fired   : none" in out
    assert main(["status", "--json"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["champion"] is None and report["audit_log"] == []
    assert report["last_nightly_run"] is None and report["drift"] is None
    assert report["triggers"] == []


def test_the_settings_repr_never_shows_the_postgres_password() -> None:
    settings = load_settings(
        {
            "CHURNOPS_WAREHOUSE": "postgres",
            "CHURNOPS_POSTGRES_DSN": "postgresql://churn:s3cr3t-value@db:5432/wh",
        }
    )
    assert settings.warehouse.postgres_dsn.endswith("@db:5432/wh")
    assert "s3cr3t-value" not in repr(settings) and "s3cr3t-value" not in str(settings)


def test_the_prod_profile_takes_airflows_metadata_db_from_the_operator(tmp_path) -> None:
    """Prod keeps Airflow's metadata in PostgreSQL and runs the CeleryExecutor; without a
    PostgreSQL URL it stops with one line naming the variable, instead of a SQLite file."""
    from churnops.orchestration.environment import airflow_env
    from churnops.settings import SettingsError, load_settings

    settings = load_settings({"CHURNOPS_PROFILE": "prod", "CHURNOPS_STATE_DIR": str(tmp_path)})
    for environ in ({}, {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:////tmp/a.db"}):
        with pytest.raises(SettingsError, match="AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
            airflow_env(settings, environ=environ)
    conn = "postgresql+psycopg2://airflow@db.internal:5432/airflow"
    env = airflow_env(settings, environ={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn})
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == conn
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    local = airflow_env(load_settings({"CHURNOPS_STATE_DIR": str(tmp_path)}), environ={})
    assert local["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:///")


def test_the_prod_profile_takes_the_api_servers_addresses_from_the_operator(tmp_path) -> None:
    """Workers in other containers or hosts reach the API server by its name there: prod
    keeps the operator's addresses and JWT secret; without them, and in the local
    profile whatever is set, the project's own (localhost, the state dir's secret)."""
    from churnops.orchestration.environment import airflow_env

    settings = load_settings({"CHURNOPS_PROFILE": "prod", "CHURNOPS_STATE_DIR": str(tmp_path)})
    conn = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://a@db:5432/airflow"}
    given = {
        "AIRFLOW__API__BASE_URL": "https://airflow.example.com",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://airflow-api-server:8080/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "from-the-secrets-store",
    }
    env = airflow_env(settings, 8080, {**conn, **given})
    assert {name: env[name] for name in given} == given
    derived = airflow_env(settings, 8080, conn)
    assert derived["AIRFLOW__API__BASE_URL"] == "http://localhost:8080"
    assert derived["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://localhost:8080/execution/"
    assert derived["AIRFLOW__API_AUTH__JWT_SECRET"] != given["AIRFLOW__API_AUTH__JWT_SECRET"]
    local = airflow_env(load_settings({"CHURNOPS_STATE_DIR": str(tmp_path)}), 8080, given)
    assert local["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://localhost:8080/execution/"


class _Exec(Exception):
    """Raised by a stand-in for os.execvpe: what would have replaced the process."""


def _prod_environment(monkeypatch, tmp_path: Path) -> None:
    for name, value in {
        "CHURNOPS_PROFILE": "prod",
        "CHURNOPS_STATE_DIR": str(tmp_path),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://a@db:5432/airflow",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://airflow-api-server:8080/execution/",
    }.items():
        monkeypatch.setenv(name, value)


def test_churnops_airflow_becomes_the_airflow_command_in_the_projects_environment(
    tmp_path: Path, monkeypatch
) -> None:
    """`churnops airflow --no-setup ARGS` is how a user (and docker-compose.yml) starts a
    component: the process is replaced by `airflow ARGS` (a container's SIGTERM reaches
    Airflow itself) with exactly the environment LocalAirflow gives (tests/prod_stack.py
    starts its components with that one), and nothing is set up first."""
    import os

    from churnops.orchestration.local_airflow import LocalAirflow

    _prod_environment(monkeypatch, tmp_path)
    monkeypatch.setattr(LocalAirflow, "prepare", lambda self: pytest.fail("set-up ran"))

    def fake_exec(file: str, argv: list[str], env: dict[str, str]) -> None:
        raise _Exec(file, argv, env)

    monkeypatch.setattr(os, "execvpe", fake_exec)
    with pytest.raises(_Exec) as replaced:
        main(["airflow", "--no-setup", "jobs", "check", "--job-type", "SchedulerJob", "--local"])
    file, argv, env = replaced.value.args
    expected = LocalAirflow(load_settings())
    assert file == expected.airflow and Path(file).name == "airflow"
    assert argv == [expected.airflow, "jobs", "check", "--job-type", "SchedulerJob", "--local"]
    assert env == expected.env
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-api-server")


def test_churnops_airflow_init_is_localairflow_prepare(tmp_path: Path, monkeypatch, capsys) -> None:
    """The prod profile's init job: db migrate, the pool and the admin password, all of
    it LocalAirflow.prepare (what the native stack and `churnops airflow` run), in the
    same environment; the password never reaches the output (container logs)."""
    from churnops.orchestration.local_airflow import AirflowCommandFailed, LocalAirflow

    _prod_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("CHURNOPS_AIRFLOW_ADMIN_PASSWORD", "pw-from-the-env-1")
    prepared: list[dict[str, str]] = []

    def prepare(self: LocalAirflow) -> str:
        prepared.append(self.env)
        return "pw-from-the-env-1"

    monkeypatch.setattr(LocalAirflow, "prepare", prepare)
    assert main(["airflow-init"]) == 0
    assert prepared == [LocalAirflow(load_settings()).env]
    out = capsys.readouterr().out
    assert "pool churnops_warehouse (4 slot(s))" in out  # PostgreSQL: shards side by side
    assert "password: CHURNOPS_AIRFLOW_ADMIN_PASSWORD" in out and "pw-from-the-env-1" not in out

    def failing(self: LocalAirflow) -> str:
        raise AirflowCommandFailed("airflow db migrate failed (1): could not connect")

    monkeypatch.setattr(LocalAirflow, "prepare", failing)
    assert main(["airflow-init"]) == 1
    assert "churnops airflow-init: airflow db migrate failed" in capsys.readouterr().err


def test_the_warehouse_pool_has_one_slot_on_duckdb_and_four_on_postgres() -> None:
    assert load_settings({}).orchestration.warehouse_pool_slots == 1
    assert load_settings({"CHURNOPS_WAREHOUSE": "postgres"}).orchestration.warehouse_pool_slots == 4
    pg = {"CHURNOPS_WAREHOUSE": "postgres", "CHURNOPS_WAREHOUSE_POOL_SLOTS": "8"}
    assert load_settings(pg).orchestration.warehouse_pool_slots == 8
    with pytest.raises(SettingsError, match="DuckDB warehouse admits one writing process"):
        load_settings({"CHURNOPS_WAREHOUSE_POOL_SLOTS": "2"})


def test_scoring_shards_come_from_the_setting() -> None:
    assert load_settings({}).scoring.shards == 1
    assert load_settings({"CHURNOPS_SCORING_SHARDS": "4"}).scoring.shards == 4
    with pytest.raises(SettingsError, match="CHURNOPS_SCORING_SHARDS=0 must be at least 1"):
        load_settings({"CHURNOPS_SCORING_SHARDS": "0"})
