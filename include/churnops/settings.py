"""The one settings module: frozen dataclasses built from ``CHURNOPS_*`` environment variables.

Nothing here touches the disk or the network at import; ``load_settings()`` only reads the
environment. Two profiles share every field and differ in defaults: ``local`` (embedded:
DuckDB, SQLite, files under the project's git-ignored ``.churnops/`` folder) and ``prod``
(PostgreSQL warehouse and metadata, an MLflow tracking server).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROFILES = ("local", "prod")
SCENARIOS = ("baseline", "acquisition_campaign", "price_increase")

# include/churnops/settings.py -> project root (the package is installed editable from here).
_DEFAULT_PROJECT_DIR = Path(__file__).resolve().parents[2]


class SettingsError(ValueError):
    """A CHURNOPS_* variable has a value the pipeline cannot use."""


def _env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be at least {minimum}")
    return value


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None


def _env_date(env: Mapping[str, str], name: str, default: dt.date | None) -> dt.date | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a date (YYYY-MM-DD)") from None


def _env_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise SettingsError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class Paths:
    """Where everything lives. Every path derives from the project dir and the state dir."""

    project_dir: Path
    state_dir: Path

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def validation_dir(self) -> Path:
        """Great Expectations results (JSON) and Data Docs (HTML)."""
        return self.data_dir / "validation"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def warehouse_path(self) -> Path:
        return self.state_dir / "warehouse.duckdb"

    @property
    def mlflow_dir(self) -> Path:
        return self.state_dir / "mlflow"

    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"

    @property
    def dbt_project_dir(self) -> Path:
        return self.project_dir / "dbt_project"

    @property
    def dbt_manifest_path(self) -> Path:
        """Written by ``dbt parse`` (``make setup``); Cosmos renders the DAG from it."""
        return self.dbt_project_dir / "target" / "manifest.json"

    @property
    def dags_dir(self) -> Path:
        return self.project_dir / "dags"

    @property
    def plugins_dir(self) -> Path:
        return self.project_dir / "plugins"


@dataclass(frozen=True)
class SimulationSettings:
    """The simulated source system: who the customers are and what happens to them."""

    customers: int = 20_000
    seed: int = 42
    # First day of the source feed; the base that exists on this day is sent as a snapshot.
    history_start: dt.date = dt.date(2025, 1, 1)
    # The default demo history: 18 months, as in the seed's training window.
    history_days: int = 547
    scenario: str = "baseline"
    # Day the scenario begins; before it every scenario is identical to the baseline.
    scenario_start: dt.date | None = None

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise SettingsError("the simulation needs at least one customer")
        if self.scenario not in SCENARIOS:
            raise SettingsError(
                f"unknown scenario {self.scenario!r}; known: {', '.join(SCENARIOS)}"
            )

    @property
    def history_end(self) -> dt.date:
        return self.history_start + dt.timedelta(days=self.history_days - 1)

    @property
    def effective_scenario_start(self) -> dt.date:
        """Scenarios start after two thirds of the default history unless told otherwise."""
        if self.scenario_start is not None:
            return self.scenario_start
        return self.history_start + dt.timedelta(days=(self.history_days * 2) // 3)


@dataclass(frozen=True)
class WarehouseSettings:
    """Where the warehouse is: a DuckDB file locally, PostgreSQL in prod."""

    kind: str  # duckdb | postgres
    duckdb_path: Path
    postgres_dsn: str
    dbt_target: str  # the target in dbt_project/profiles.yml


@dataclass(frozen=True)
class OrchestrationSettings:
    """How the DAGs run."""

    nightly_cron: str = "30 2 * * *"  # 02:30 UTC: after the source system's midnight export
    # First night the nightly DAG knows; backfills can reach back to it.
    nightly_start: dt.date = dt.date(2025, 1, 1)
    max_active_runs: int = 1
    retries: int = 2
    retry_delay_minutes: int = 5
    # How long the nightly waits for late landing drops, and how often it looks.
    drop_wait_minutes: int = 360
    drop_poke_seconds: int = 300
    # DuckDB admits one writing process; every task that writes it takes this pool's slot.
    warehouse_pool: str = "churnops_warehouse"
    warehouse_pool_slots: int = 1


@dataclass(frozen=True)
class Settings:
    """Everything churnops can be told, for one profile."""

    profile: str
    paths: Paths
    simulation: SimulationSettings
    warehouse: WarehouseSettings
    orchestration: OrchestrationSettings = field(default_factory=OrchestrationSettings)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the environment (``os.environ`` unless given)."""
    env = os.environ if env is None else env
    profile = _env_choice(env, "CHURNOPS_PROFILE", "local", PROFILES)
    project_dir = Path(env.get("CHURNOPS_PROJECT_DIR") or _DEFAULT_PROJECT_DIR).resolve()
    state_dir = Path(env.get("CHURNOPS_STATE_DIR") or project_dir / ".churnops").resolve()
    paths = Paths(project_dir=project_dir, state_dir=state_dir)

    defaults = SimulationSettings()
    simulation = SimulationSettings(
        customers=_env_int(env, "CHURNOPS_SIM_CUSTOMERS", defaults.customers, minimum=1),
        seed=_env_int(env, "CHURNOPS_SIM_SEED", defaults.seed),
        history_start=_env_date(env, "CHURNOPS_SIM_START", defaults.history_start)
        or defaults.history_start,
        history_days=_env_int(env, "CHURNOPS_SIM_DAYS", defaults.history_days, minimum=1),
        scenario=_env_choice(env, "CHURNOPS_SIM_SCENARIO", defaults.scenario, SCENARIOS),
        scenario_start=_env_date(env, "CHURNOPS_SIM_SCENARIO_START", None),
    )

    warehouse_kind = "postgres" if profile == "prod" else "duckdb"
    warehouse_kind = _env_choice(env, "CHURNOPS_WAREHOUSE", warehouse_kind, ("duckdb", "postgres"))
    warehouse = WarehouseSettings(
        kind=warehouse_kind,
        duckdb_path=Path(env.get("CHURNOPS_DUCKDB_PATH") or paths.warehouse_path),
        postgres_dsn=env.get(
            "CHURNOPS_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/churnops"
        ),
        dbt_target="prod" if warehouse_kind == "postgres" else "local",
    )

    orch_defaults = OrchestrationSettings()
    orchestration = OrchestrationSettings(
        nightly_cron=env.get("CHURNOPS_NIGHTLY_CRON") or orch_defaults.nightly_cron,
        nightly_start=_env_date(env, "CHURNOPS_NIGHTLY_START", None) or simulation.history_start,
        max_active_runs=_env_int(
            env, "CHURNOPS_MAX_ACTIVE_RUNS", orch_defaults.max_active_runs, minimum=1
        ),
        retries=_env_int(env, "CHURNOPS_TASK_RETRIES", orch_defaults.retries),
        drop_wait_minutes=_env_int(
            env, "CHURNOPS_DROP_WAIT_MINUTES", orch_defaults.drop_wait_minutes, minimum=1
        ),
        drop_poke_seconds=_env_int(
            env, "CHURNOPS_DROP_POKE_SECONDS", orch_defaults.drop_poke_seconds, minimum=1
        ),
        retry_delay_minutes=_env_int(
            env, "CHURNOPS_RETRY_DELAY_MINUTES", orch_defaults.retry_delay_minutes
        ),
    )
    return Settings(
        profile=profile,
        paths=paths,
        simulation=simulation,
        warehouse=warehouse,
        orchestration=orchestration,
    )
