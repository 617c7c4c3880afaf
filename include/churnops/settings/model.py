"""The settings' declaration: frozen dataclasses whose fields are ``CHURNOPS_*`` variables.

Each setting is declared once, as a field made by ``setting(...)``: its variable, type
(``Literal`` for choices), default, bounds and help. ``load_settings()`` reads them all
from the environment (``churnops.settings.declare.build``), each dataclass checks its own
bounds, and ``churnops.settings.docs`` writes the README's table and ``.env.example``
from the same fields. Nothing here touches the disk or the network at import.

Two profiles share every field and differ in defaults: ``local`` (embedded: DuckDB,
SQLite, files under the project's git-ignored ``.churnops/`` folder) and ``prod``
(PostgreSQL warehouse and metadata, an MLflow tracking server).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from churnops.settings.declare import (
    Loading,
    SettingsError,
    build,
    check,
    declared_fields,
    derived,
    read,
    sections,
    setting,
)

Profile = Literal["local", "prod"]
Scenario = Literal["baseline", "acquisition_campaign", "price_increase"]
WarehouseKind = Literal["duckdb", "postgres"]
DbtExecution = Literal["watcher", "per_model", "build"]
LineageTransport = Literal["file", "off"]
ThresholdRule = Literal["max_f1", "recall_target", "capacity"]
ClassWeighting = Literal["balanced", "none"]
ScoringEngine = Literal["auto", "compiled", "native"]
DriftMethod = Literal["wasserstein", "ks", "psi", "jensenshannon", "chisquare"]
BenchEngineStage = Literal["ingest", "dbt", "usage", "score", "frame"]

PROFILES: tuple[str, ...] = get_args(Profile)
SCENARIOS: tuple[str, ...] = get_args(Scenario)
DBT_EXECUTION_MODES: tuple[str, ...] = get_args(DbtExecution)
THRESHOLD_RULES: tuple[str, ...] = get_args(ThresholdRule)
CLASS_WEIGHTINGS: tuple[str, ...] = get_args(ClassWeighting)
SCORING_ENGINES: tuple[str, ...] = get_args(ScoringEngine)
DRIFT_METHODS: tuple[str, ...] = get_args(DriftMethod)
BENCH_ENGINE_STAGES: tuple[str, ...] = get_args(BenchEngineStage)

# The label: churned within this many days after the as-of date. One constant, not a
# setting: the label column's name carries it, and dbt reads it as the var
# label_horizon_days of dbt_project/dbt_project.yml (tests/unit/test_label_horizon.py
# checks that the two agree).
LABEL_HORIZON_DAYS = 90
LABEL_COLUMN = f"churned_within_{LABEL_HORIZON_DAYS}d"

# include/churnops/settings/model.py -> project root (the package is installed editable).
_DEFAULT_PROJECT_DIR = Path(__file__).resolve().parents[3]

# A PostgreSQL memory setting as its server accepts it: digits, then a unit.
_MEMORY_UNITS = ("kB", "MB", "GB", "TB")


def _parse_memory(name: str, raw: str) -> str:
    number, unit = raw.rstrip("kMGTB"), raw[len(raw.rstrip("kMGTB")) :]
    if not number.isdigit() or int(number) == 0 or unit not in _MEMORY_UNITS:
        raise SettingsError(
            f"{name}={raw!r} is not a PostgreSQL memory size: a whole number and one of "
            f"{', '.join(_MEMORY_UNITS)} (e.g. 256MB)"
        )
    return raw


def _parse_bands(name: str, raw: str) -> tuple[tuple[str, float], ...]:
    """``high:0.30,medium:0.10,low:0`` -> bands, highest floor first."""
    bands = []
    for part in raw.split(","):
        band, _, floor = part.strip().partition(":")
        try:
            bands.append((band.strip(), float(floor)))
        except ValueError:
            raise SettingsError(
                f"{name} part {part!r} is not NAME:FLOOR (e.g. high:0.30)"
            ) from None
    return tuple(sorted(bands, key=lambda b: -b[1]))


def _show_bands(bands: tuple[tuple[str, float], ...]) -> str:
    return ",".join(f"{band}:{floor:g}" for band, floor in bands)


def _parse_feature_methods(name: str, raw: str) -> tuple[tuple[str, str, float], ...]:
    """``tenure_days=ks:0.01,plan_type=chisquare:0.01``."""
    parsed = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        feature, _, rule = part.partition("=")
        method, _, threshold = rule.partition(":")
        try:
            parsed.append((feature.strip(), method.strip(), float(threshold)))
        except ValueError:
            raise SettingsError(f"{name} part {part!r} is not FEATURE=METHOD:THRESHOLD") from None
    return tuple(parsed)


def _show_feature_methods(methods: tuple[tuple[str, str, float], ...]) -> str:
    return ",".join(f"{feature}={method}:{threshold:g}" for feature, method, threshold in methods)


def _parse_stages(name: str, raw: str) -> tuple[str, ...]:
    stages = tuple(stage.strip() for stage in raw.split(",") if stage.strip())
    unknown = [stage for stage in stages if stage not in BENCH_ENGINE_STAGES]
    if unknown or not stages:
        raise SettingsError(
            f"{name}={raw!r} is not a comma-separated list of {', '.join(BENCH_ENGINE_STAGES)}"
        )
    return stages


def _parse_data_url(name: str, raw: str) -> str:
    return raw.rstrip("/")


@dataclass(frozen=True)
class Paths:
    """Where everything lives. Every path derives from the project dir and the state dir."""

    project_dir: Path = setting(
        "CHURNOPS_PROJECT_DIR",
        help="the project's folder: DAGs, plugins and the dbt project are found under it",
        parse=lambda _, raw: Path(raw).resolve(),
        derive=lambda _: _DEFAULT_PROJECT_DIR,
        default_text="the folder churnops is installed (editable) from",
    )
    state_dir: Path = setting(
        "CHURNOPS_STATE_DIR",
        help="where data, warehouse, models, reports and Airflow state live (git-ignored)",
        parse=lambda _, raw: Path(raw).resolve(),
        derive=lambda s: (s.this["project_dir"] / ".churnops").resolve(),
        default_text="`<project dir>/.churnops`",
    )

    @property
    def data_dir(self) -> Path:
        """The default base of the shared files (``CHURNOPS_DATA_URL`` unset). Code reads and
        writes them through ``churnops.storage.SharedFiles``, which honours the setting; the
        folders below are that default's layout."""
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
    def registered_models_dir(self) -> Path:
        """This machine's copies of registered versions (a cache, rebuilt freely)."""
        return self.state_dir / "models" / "registered"

    @property
    def compiled_models_dir(self) -> Path:
        """Registered versions compiled to native code for scoring (a cache, rebuilt freely)."""
        return self.state_dir / "models" / "compiled"

    @property
    def jit_cache_dir(self) -> Path:
        """numba's machine code for the reason codes' TreeSHAP (a cache, rebuilt freely)."""
        return self.state_dir / "cache" / "numba"

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

    @property
    def lineage_events_file(self) -> Path:
        """The OpenLineage events of every Airflow task (``CHURNOPS_LINEAGE=file``)."""
        return self.state_dir / "lineage" / "openlineage.jsonl"


@dataclass(frozen=True)
class SimulationSettings:
    """The simulated source system: who the customers are and what happens to them."""

    customers: int = setting(
        "CHURNOPS_SIM_CUSTOMERS", 20_000, minimum=1, help="size of the simulated customer base"
    )
    seed: int = setting("CHURNOPS_SIM_SEED", 42, minimum=0, help="simulation seed")
    history_start: dt.date = setting(
        "CHURNOPS_SIM_START",
        dt.date(2025, 1, 1),
        help="first day of the source feed; the base that exists on it is sent as a snapshot",
    )
    history_days: int = setting(
        "CHURNOPS_SIM_DAYS",
        547,
        minimum=1,
        help="days of the default simulated history (18 months, the seed's training window)",
    )
    scenario: Scenario = setting(
        "CHURNOPS_SIM_SCENARIO",
        "baseline",
        help="what happens to the base from its start day: a shipped scenario definition",
    )
    scenario_file: Path | None = setting(
        "CHURNOPS_SIM_SCENARIO_FILE",
        None,
        default_text="none",
        help='a scenario definition of your own (YAML; README "Scenarios as data"); '
        "used instead of CHURNOPS_SIM_SCENARIO",
    )
    scenario_start: dt.date | None = setting(
        "CHURNOPS_SIM_SCENARIO_START",
        None,
        default_text="two thirds into the history",
        help="day the scenario begins; before it every scenario is the baseline",
    )

    def __post_init__(self) -> None:
        check(self)

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

    kind: WarehouseKind = setting(
        "CHURNOPS_WAREHOUSE",
        derive=lambda s: "postgres" if s.profile == "prod" else "duckdb",
        default_text="`duckdb` (`postgres` in the prod profile)",
        help='the warehouse engine (see "The warehouse")',
    )
    duckdb_path: Path = setting(
        "CHURNOPS_DUCKDB_PATH",
        derive=lambda s: s.paths.warehouse_path,
        default_text="`<state dir>/warehouse.duckdb`",
        help="the DuckDB warehouse file",
    )
    # May carry a password: kept out of repr, so logging the settings never shows it.
    postgres_dsn: str = setting(
        "CHURNOPS_POSTGRES_DSN",
        "postgresql://postgres@127.0.0.1:5432/churnops",
        repr=False,
        help="the PostgreSQL warehouse: `postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE`",
    )
    # The target in dbt_project/profiles.yml.
    dbt_target: str = derived(
        lambda s: "prod" if s.this["kind"] == "postgres" else "local", default="local"
    )
    postgres_work_mem: str = setting(
        "CHURNOPS_POSTGRES_WORK_MEM",
        "256MB",
        parse=_parse_memory,
        allowed="a whole number and kB, MB, GB or TB",
        help="PostgreSQL's `work_mem` for churnops' sessions: dbt's (through libpq's "
        "`PGOPTIONS`, after any options you set there) and the stages' (libpq's `options`, "
        "after any in the DSN). It is per sort or hash of each session, so size it to the "
        "server; the server default, 4MB, spills the night's 45M-row usage aggregation and "
        "the training frame's sort to disk",
    )
    postgres_jit_above_cost: int = setting(
        "CHURNOPS_POSTGRES_JIT_ABOVE_COST",
        1_000_000,
        minimum=-1,
        help="PostgreSQL's JIT thresholds for churnops' sessions (`jit_above_cost`, "
        "`jit_inline_above_cost` and `jit_optimize_above_cost`, set like the work_mem "
        "above): a plan the planner costs above this is compiled with LLVM. The night's "
        "usage aggregation (about 4,000,000 at 500,000 customers, 1,200,000 at 100,000) "
        "runs 30-40 % faster compiled; the other models (invoices about 700,000 at "
        "500,000 customers, the features about 300,000) gain nothing from it and spent up "
        "to 0.6 s compiling at the server's thresholds (100,000 and 500,000). -1 turns "
        "JIT off; a server with `jit = off` keeps it off",
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class SharedStorageSettings:
    """Where the files every worker must see live (``churnops.storage.SharedFiles``).

    ``data_url`` is the base of landing drops (``landing/<table>/dt=YYYY-MM-DD/``),
    ``quarantine/``, ``validation/`` (GX results, Data Docs) and ``reports/`` (drift): a
    local path or any fsspec URL (``file:///mnt/churnops``, ``s3://bucket/prefix``).
    ``models_url`` is where compiled model libraries are shared. Unset
    (``CHURNOPS_DATA_URL``), both are today's local folders under the state dir, created on
    first use; a configured base must already exist, so a worker that lacks the shared
    mount fails instead of filling a local folder nobody else sees.
    """

    data_url: str = setting(
        "CHURNOPS_DATA_URL",
        parse=_parse_data_url,
        allowed="an absolute path or a URL",
        derive=lambda s: str(s.paths.data_dir),
        default_text="`<state dir>/data`",
        help="the base every worker must see: landing drops (`landing/<table>/dt=YYYY-MM-DD/`), "
        "`quarantine/`, `validation/` (GX results, Data Docs), `reports/` (drift), "
        "`training/` (the training snapshots' columnar copies) and compiled model libraries (`models/compiled/`; unset, `<state dir>/models/compiled`). "
        "A shared directory (`/mnt/churnops`, `file:///mnt/churnops`) or any fsspec URL "
        "(`s3://bucket/prefix`; credentials and `AWS_ENDPOINT_URL` from the usual `AWS_*` "
        "variables or the instance role). Once set, the base must exist: a worker that "
        "cannot see it fails the night's first task with one line naming the URL",
    )
    models_url: str = derived(
        lambda s: (
            f"{s.this['data_url']}/models"
            if s.given("CHURNOPS_DATA_URL")
            else str(s.paths.state_dir / "models")
        )
    )
    configured: bool = derived(lambda s: s.given("CHURNOPS_DATA_URL"), default=False)

    def __post_init__(self) -> None:
        for name in ("data_url", "models_url"):
            value = getattr(self, name)
            if "://" not in value and not value.startswith("/"):
                raise SettingsError(
                    f"CHURNOPS_DATA_URL={value!r} is neither an absolute path nor a URL "
                    "(e.g. /mnt/churnops, file:///mnt/churnops, s3://bucket/prefix)"
                )


# PostgreSQL's default: the compose file's scaled-out night (4 shards) stages at once.
POSTGRES_POOL_SLOTS = 4


@dataclass(frozen=True)
class OrchestrationSettings:
    """How the DAGs run."""

    nightly_cron: str = setting(
        "CHURNOPS_NIGHTLY_CRON",
        "30 2 * * *",
        allowed="a cron expression",
        help="the nightly DAG's schedule (UTC): after the source system's midnight export",
    )
    nightly_start: dt.date = setting(
        "CHURNOPS_NIGHTLY_START",
        dt.date(2025, 1, 1),
        derive=lambda s: s.simulation.history_start,
        default_text="the feed start (`CHURNOPS_SIM_START`)",
        help="first night the nightly DAG knows; backfills can reach back to it",
    )
    retrain_cron: str = setting(
        "CHURNOPS_RETRAIN_CRON",
        "0 4 1 * *",
        allowed="a cron expression",
        help="the monthly retrain's schedule (UTC); the DAG also runs when monitoring asks",
    )
    manual_start: dt.date = setting(
        "CHURNOPS_MANUAL_DAGS_START",
        dt.date(2025, 1, 1),
        derive=lambda s: s.this["nightly_start"],
        default_text="the nightly's first night",
        help="start date of the DAGs run by hand (`churn_model_promote`, `churn_model_rollback`)",
    )
    max_active_runs: int = setting(
        "CHURNOPS_MAX_ACTIVE_RUNS",
        1,
        minimum=1,
        help="nightly runs at once; backfills run their nights in date order with 1",
    )
    retries: int = setting(
        "CHURNOPS_TASK_RETRIES", 2, minimum=0, help="task retries (exponential backoff)"
    )
    retry_delay_minutes: int = setting(
        "CHURNOPS_RETRY_DELAY_MINUTES", 5, minimum=0, help="first delay before a task's retry"
    )
    drop_wait_minutes: int = setting(
        "CHURNOPS_DROP_WAIT_MINUTES",
        360,
        minimum=1,
        help="how long the nightly waits for late landing drops",
    )
    drop_poke_seconds: int = setting(
        "CHURNOPS_DROP_POKE_SECONDS",
        300,
        minimum=1,
        help="how often the nightly looks for late landing drops",
    )
    dbt_execution: DbtExecution = setting(
        "CHURNOPS_DBT_EXECUTION",
        "watcher",
        help="`watcher` (Cosmos runs dbt once, one task per model mirrors its status), "
        "`per_model` (one dbt invocation per model task: 12-18 s each here), `build` (one "
        "`dbt build` task; no model graph in the UI)",
    )
    # Every task that opens the warehouse (or runs dbt) takes a slot of this pool.
    warehouse_pool: str = "churnops_warehouse"
    warehouse_pool_slots: int = setting(
        "CHURNOPS_WAREHOUSE_POOL_SLOTS",
        1,
        minimum=1,
        derive=lambda s: 1 if s.warehouse.kind == "duckdb" else POSTGRES_POOL_SLOTS,
        default_text=f"`1` on DuckDB (fixed), `{POSTGRES_POOL_SLOTS}` on PostgreSQL",
        help="slots of the Airflow pool `churnops_warehouse` that every warehouse task "
        "takes: DuckDB admits one writing process, PostgreSQL as many as may run together",
    )
    lineage: LineageTransport = setting(
        "CHURNOPS_LINEAGE",
        "file",
        help="OpenLineage events of every Airflow task: `file` (JSON lines in "
        "`<state dir>/lineage/openlineage.jsonl`, read by the portal's lineage) or `off`; "
        "Airflow's own `AIRFLOW__OPENLINEAGE__TRANSPORT` (e.g. an HTTP server) wins when set",
    )
    source_feed: bool = setting(
        "CHURNOPS_SOURCE_FEED",
        True,
        derive=lambda s: s.profile == "local",
        default_text="`true` in the local profile, `false` in prod",
        help="the live demo feed: `churn_source_simulator` lands the next simulated day on "
        "its schedule and starts the nightly for it; nightly runs for days it cannot reach "
        'yet are skipped at once (README "The live demo feed")',
    )
    feed_cron: str = setting(
        "CHURNOPS_FEED_CRON",
        "15 0 * * *",
        allowed="a cron expression",
        help="when `churn_source_simulator` lands the next simulated day (UTC)",
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class AirflowSettings:
    """The project's own Airflow (``churnops airflow``, ``make up``)."""

    port: int = setting(
        "CHURNOPS_AIRFLOW_PORT",
        8080,
        minimum=1,
        maximum=65535,
        help="port of the Airflow UI/API for `make up`",
    )
    parallelism: int = setting(
        "CHURNOPS_AIRFLOW_PARALLELISM",
        4,
        minimum=1,
        help="Airflow's `[core] parallelism`: tasks running at once over all workers "
        "(2 cores here; `docker-compose.yml`: 32)",
    )
    admin_password: str = setting(
        "CHURNOPS_AIRFLOW_ADMIN_PASSWORD",
        "",
        secret=True,
        default_text="generated once",
        help="the UI's `admin` password (written by `churnops airflow-init`; required by "
        "`docker-compose.yml`)",
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class TrainParams:
    """How the churn model is trained and evaluated.

    Windows are in months of matured as-of dates (a month is 365.25 / 12 days), the latest
    ``test_months`` being the test window. With less history than train + validation +
    test, all three shrink at the same ratio down to ``min_history_months`` in total.
    """

    train_months: float = setting(
        "CHURNOPS_TRAIN_MONTHS", 12.0, above=0, help="months of the train window"
    )
    validation_months: float = setting(
        "CHURNOPS_VALIDATION_MONTHS", 3.0, above=0, help="months of the validation window"
    )
    test_months: float = setting(
        "CHURNOPS_TEST_MONTHS", 3.0, above=0, help="months of the test window (the newest)"
    )
    min_history_months: float = setting(
        "CHURNOPS_MIN_HISTORY_MONTHS",
        6.0,
        above=0,
        help="the least history the three windows shrink to (at the same ratio)",
    )
    snapshot_every_days: int = setting(
        "CHURNOPS_SNAPSHOT_EVERY_DAYS",
        7,
        minimum=1,
        help="one as-of snapshot every N days, counted back from the latest matured one "
        "(neighbouring days are near-copies; the seed takes monthly snapshots at 500k)",
    )
    min_train_positives: int = setting(
        "CHURNOPS_MIN_TRAIN_POSITIVES", 200, minimum=0, help="churners the train window needs"
    )
    min_eval_positives: int = setting(
        "CHURNOPS_MIN_EVAL_POSITIVES",
        30,
        minimum=0,
        help="churners the validation and the test window each need",
    )
    min_segment_positives: int = 10  # a segment with fewer churners gets no AUC
    # LightGBM
    # Measured at 500,000 customers x 12 monthly snapshots (3.5 M train rows, make bench
    # BENCH=train): the seed's 0.05 and unbounded depth took 211 s for 506 trees and test
    # AUC 0.8195; these defaults take 22-38 s for 169 trees and AUC 0.8187, and
    # the nightly predict and reason codes cost a third (both scale with trees x depth).
    learning_rate: float = setting(
        "CHURNOPS_LEARNING_RATE",
        0.1,
        above=0,
        help="LightGBM's learning rate (chosen by `make bench BENCH=train`: about 6x faster "
        "than the seed's 0.05 with unbounded depth, test AUC within 0.001)",
    )
    num_leaves: int = setting("CHURNOPS_NUM_LEAVES", 31, minimum=2, help="LightGBM's num_leaves")
    max_depth: int = setting(
        "CHURNOPS_MAX_DEPTH",
        8,
        minimum=-1,
        help="LightGBM's max_depth; -1: unbounded (leaf-wise trees then grow 15-30 deep)",
    )
    max_bin: int = setting(
        "CHURNOPS_MAX_BIN",
        63,
        minimum=2,
        help="histogram bins per feature (LightGBM's default is 255)",
    )
    min_child_samples: int = 100
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    max_rounds: int = setting(
        "CHURNOPS_MAX_ROUNDS", 1000, minimum=1, help="most boosting rounds (trees)"
    )
    # Without a minimum, AUC creeping up in the 4th decimal kept adding trees for nothing.
    early_stopping_rounds: int = setting(
        "CHURNOPS_EARLY_STOPPING_ROUNDS",
        20,
        minimum=1,
        help="stop when validation AUC has not risen by the minimum delta for this many rounds",
    )
    early_stopping_min_delta: float = setting(
        "CHURNOPS_EARLY_STOPPING_MIN_DELTA",
        1e-4,
        minimum=0,
        help="the validation AUC gain that counts as a rise for early stopping",
    )
    # The class weight is computed after sampling and the scores are recalibrated on the
    # whole validation window, so probabilities stay calibrated.
    negative_sample_rate: float = setting(
        "CHURNOPS_NEGATIVE_SAMPLE_RATE",
        0.25,
        above=0,
        maximum=1,
        help="large training sets keep every churner and this share of the rest (seeded); "
        "scores are recalibrated on the whole validation window",
    )
    negative_sampling_min_rows: int = setting(
        "CHURNOPS_NEGATIVE_SAMPLING_MIN_ROWS",
        1_000_000,
        minimum=0,
        help="training rows from which negatives are sampled; below it every row is used",
    )
    class_weighting: ClassWeighting = setting(
        "CHURNOPS_CLASS_WEIGHTING",
        "balanced",
        help="`balanced`: churners weighted by negatives/positives (scores recalibrated to "
        "probabilities on validation); `none`",
    )
    threshold_rule: ThresholdRule = setting(
        "CHURNOPS_THRESHOLD_RULE",
        "max_f1",
        help="the operating threshold, chosen on the validation window: `max_f1`, the "
        "highest threshold whose recall reaches the recall target (`recall_target`), or the "
        "threshold that flags the contact capacity's share of a night's customers "
        "(`capacity`: the nightly contact flag is then the top N customers by score)",
    )
    recall_target: float = setting(
        "CHURNOPS_RECALL_TARGET",
        0.75,
        above=0,
        maximum=1,
        help="the recall the `recall_target` threshold rule reaches",
    )
    contact_capacity: int | None = setting(
        "CHURNOPS_CONTACT_CAPACITY",
        None,
        minimum=1,
        default_text="unset",
        help="customers the retention team can contact a night: the `capacity` threshold "
        "rule's operating point (required by that rule, unused by the others)",
    )
    seed: int = setting("CHURNOPS_TRAIN_SEED", 42, minimum=0, help="training seed")
    num_threads: int = setting(
        "CHURNOPS_TRAIN_THREADS", 2, minimum=1, help="LightGBM threads when training"
    )
    # Optuna search of the LightGBM parameters (churnops.train.search).
    optuna: bool = setting(
        "CHURNOPS_OPTUNA",
        False,
        help="Optuna search of the LightGBM parameters (seeded TPE, validation-window AUC; "
        "the test window stays unseen); trials logged to MLflow as `hyperparameter_search.json`",
    )
    optuna_trials: int = setting("CHURNOPS_OPTUNA_TRIALS", 30, minimum=1, help="Optuna trials")
    optuna_timeout_minutes: float = setting(
        "CHURNOPS_OPTUNA_TIMEOUT_MINUTES",
        0.0,
        minimum=0,
        help="Optuna's time budget; 0: only the trial count bounds it",
    )
    # The first 89 days after the feed starts have truncated windows (their calls_90d
    # counts days that exist), unlike anything scored later.
    full_windows_only: bool = setting(
        "CHURNOPS_TRAIN_FULL_WINDOWS_ONLY",
        True,
        help="train only on as-of dates whose 90-day feature window is inside the feed "
        "(off only for deliberately tiny tests)",
    )
    reference_sample_rows: int = setting(
        "CHURNOPS_REFERENCE_SAMPLE_ROWS",
        50_000,
        minimum=1,
        help="rows of the training data kept as the drift reference",
    )
    shap_sample_rows: int = 5_000
    # The train AUC (for the train/test gap) on a fixed-seed sample of the train rows: at
    # 500k customers x 12 snapshots, scoring every train row cost a minute for one number.
    train_auc_sample_rows: int = 250_000

    def __post_init__(self) -> None:
        check(self)
        if self.threshold_rule == "capacity" and self.contact_capacity is None:
            raise SettingsError(
                "CHURNOPS_THRESHOLD_RULE=capacity needs CHURNOPS_CONTACT_CAPACITY: the "
                "customers the retention team can contact a night"
            )
        if self.min_history_months > self.total_months:
            raise SettingsError(
                f"TrainParams.min_history_months={self.min_history_months} exceeds the "
                f"windows' total ({self.total_months} months)"
            )

    @property
    def label_horizon_days(self) -> int:
        """The label: churned within this many days (:data:`LABEL_HORIZON_DAYS`)."""
        return LABEL_HORIZON_DAYS

    @property
    def total_months(self) -> float:
        return self.train_months + self.validation_months + self.test_months


@dataclass(frozen=True)
class PromotionPolicy:
    """When a challenger replaces the champion (``churnops.evaluate.decide``).

    Both models are measured on the same test window. The challenger must beat the
    champion's AUC by strictly more than ``min_auc_gain`` and regress on nothing beyond
    the tolerances; without a champion, a model needs ``min_auc_first_champion``.

    Recall is measured at each model's own threshold on the window's churners, so on a
    small window it moves by chance: a drop counts only when it is beyond
    ``max_recall_drop`` *and* beyond ``recall_noise_z`` standard errors of the difference
    (about 0.04 with 1,000 churners, 0.007 with 37,000; 0 = the tolerance alone).
    """

    min_auc_gain: float = setting(
        "CHURNOPS_PROMOTION_MIN_AUC_GAIN",
        0.02,
        minimum=0,
        help="the challenger must beat the champion's test AUC by more than this",
    )
    max_recall_drop: float = setting(
        "CHURNOPS_PROMOTION_MAX_RECALL_DROP",
        0.02,
        minimum=0,
        help="the recall drop tolerated (a drop also has to exceed the noise below)",
    )
    recall_noise_z: float = setting(
        "CHURNOPS_PROMOTION_RECALL_NOISE_Z",
        2.0,
        minimum=0,
        help="standard errors of the recall difference a drop must exceed (0: the tolerance alone)",
    )
    max_brier_rise: float = setting(
        "CHURNOPS_PROMOTION_MAX_BRIER_RISE", 0.01, minimum=0, help="the Brier score rise tolerated"
    )
    max_segment_auc_drop: float = setting(
        "CHURNOPS_PROMOTION_MAX_SEGMENT_AUC_DROP",
        0.03,
        minimum=0,
        help="the AUC drop tolerated in any one segment",
    )
    min_auc_first_champion: float = setting(
        "CHURNOPS_PROMOTION_MIN_AUC",
        0.70,
        minimum=0,
        maximum=1,
        help="the test AUC the first champion needs",
    )
    require_approval: bool = setting(
        "CHURNOPS_PROMOTION_REQUIRE_APPROVAL",
        False,
        help="a person signs off every promotion the rules would make (`churn_model_promote`, "
        "`churnops promote VERSION`)",
    )

    def __post_init__(self) -> None:
        check(self)


def _local_tracking_uri(s: Loading) -> str:
    if s.profile == "prod":
        # An `mlflow server` on its default port; the server owns the artifact store.
        return "http://127.0.0.1:5000"
    # Local: SQLite beside the artifacts, both under the state dir.
    return f"sqlite:///{s.paths.mlflow_dir / 'mlflow.db'}"


@dataclass(frozen=True)
class MlflowSettings:
    """Tracking server, experiment and registered model.

    ``tracking_uri`` None means the local default: SQLite under ``<state_dir>/mlflow`` with
    artifacts beside it (``churnops.registry.tracking`` resolves it).
    """

    tracking_uri: str | None = setting(
        "CHURNOPS_MLFLOW_TRACKING_URI",
        None,
        derive=_local_tracking_uri,
        default_text="`sqlite:///<state dir>/mlflow/mlflow.db` (prod: `http://127.0.0.1:5000`)",
        help="the MLflow tracking server (or database)",
    )
    artifact_location: str | None = setting(
        "CHURNOPS_MLFLOW_ARTIFACT_LOCATION",
        None,
        derive=lambda s: (
            None
            if s.profile == "prod" or s.given("CHURNOPS_MLFLOW_TRACKING_URI")
            else (s.paths.mlflow_dir / "artifacts").as_uri()
        ),
        default_text="`<state dir>/mlflow/artifacts` locally; else the tracking server's",
        help="where new experiments keep their artifacts",
    )
    experiment_name: str = setting(
        "CHURNOPS_MLFLOW_EXPERIMENT", "churn", help="the MLflow experiment of training runs"
    )
    registered_model_name: str = setting(
        "CHURNOPS_REGISTERED_MODEL", "churn", help="the registered model of every version"
    )
    archive_after_days: int = setting(
        "CHURNOPS_REGISTRY_ARCHIVE_AFTER_DAYS",
        30,
        minimum=1,
        help="a version without an alias (kept, waited, rolled back) is tagged `archived` "
        "this many days after it was registered (checked after every retrain); nothing is "
        "ever deleted",
    )


RISK_BANDS_DEFAULT = (("high", 0.30), ("medium", 0.10), ("low", 0.0))


@dataclass(frozen=True)
class ScoringPolicy:
    """How the nightly scores are served (``churnops.score``).

    Risk bands: a customer is in the first band whose floor their churn probability
    reaches, bands ordered from the highest floor down; the lowest floor must be 0 so every
    probability has a band. The default floors suit calibrated probabilities around an 8 %
    base rate: ``high`` >= 0.30 (about four times the base rate), ``medium`` >= 0.10.
    """

    risk_bands: tuple[tuple[str, float], ...] = setting(
        "CHURNOPS_RISK_BANDS",
        RISK_BANDS_DEFAULT,
        parse=_parse_bands,
        allowed="`NAME:FLOOR,...`",
        show=_show_bands,
        help="risk band floors, `NAME:FLOOR` listed from the highest; the lowest floor is 0",
    )
    reason_band: str = setting(
        "CHURNOPS_REASON_BAND",
        "high",
        help="customers in this band get reason codes: their top features pushing the score up",
    )
    reason_count: int = setting(
        "CHURNOPS_REASON_COUNT", 3, minimum=0, help="reason codes per customer"
    )
    canary_salt: str = setting(
        "CHURNOPS_CANARY_SALT",
        "churnops-canary",
        help="salt of the canary hash: change it to draw a different (still stable) group",
    )
    predict_threads: int = setting(
        "CHURNOPS_PREDICT_THREADS", 2, minimum=1, help="threads of the nightly predict"
    )
    engine: ScoringEngine = setting(
        "CHURNOPS_SCORING_ENGINE",
        "auto",
        noun="scoring engine",
        help="`compiled` (treelite + tl2cgen: C code built once per version, 1.7-2.3x "
        "LightGBM's predict at 500k rows, identical scores; needs gcc/clang once), `native` "
        "(the LightGBM booster), `auto` (compiled where a C compiler exists)",
    )
    shards: int = setting(
        "CHURNOPS_SCORING_SHARDS",
        1,
        minimum=1,
        help="customer-hash shards a night is scored in, one mapped task each, published "
        "whole after the last (`scoring_shards` in the trigger form overrides it for one run)",
    )

    def __post_init__(self) -> None:
        check(self)
        if not self.risk_bands:
            raise SettingsError("ScoringPolicy.risk_bands must name at least one band")
        floors = [floor for _, floor in self.risk_bands]
        if floors != sorted(floors, reverse=True) or len(set(floors)) != len(floors):
            raise SettingsError("risk band floors must be distinct, listed from highest to lowest")
        if floors[-1] != 0.0:
            raise SettingsError("the lowest risk band's floor must be 0 so every score has a band")
        if self.reason_band not in {name for name, _ in self.risk_bands}:
            raise SettingsError(f"reason band {self.reason_band!r} is not one of the risk bands")


def _parse_shares(name: str, raw: str) -> tuple[float, ...]:
    """``0.25,0.5,1`` -> the ramp's shares, each in (0, 1], rising, the last 1."""
    try:
        shares = tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a comma-separated list of shares") from None
    if not shares or any(not 0 < s <= 1 for s in shares) or list(shares) != sorted(set(shares)):
        raise SettingsError(f"{name}={raw!r}: shares must rise, each in (0, 1]")
    if shares[-1] != 1.0:
        raise SettingsError(f"{name}={raw!r}: the ramp ends at 1 (every customer)")
    return shares


@dataclass(frozen=True)
class RolloutSettings:
    """The phased rollout of a challenger in batch scoring (``churnops.rollout``).

    shadow (scored, never served) -> canary (``canary_share`` of customers, by a stable
    hash) -> each share of ``steps`` -> full (the challenger is champion; the old one
    stays ``previous_champion`` for ``keep_previous_days``, then is archived). A phase
    lasts its number of evaluated nights; the gates are checked every night and any
    failure rolls back. A person approves entering the ``approval_share`` step (the
    business review) and, when ``CHURNOPS_PROMOTION_REQUIRE_APPROVAL`` is true, entering
    the canary and the promotion to full.
    """

    enabled: bool = setting(
        "CHURNOPS_ROLLOUT_ENABLED",
        True,
        help="a challenger the champion/challenger decision would promote enters the phased "
        "rollout (shadow, canary, ramp, full) instead of replacing the champion at once "
        "(seed 003's deployment); false promotes it at once",
    )
    shadow_nights: int = setting(
        "CHURNOPS_ROLLOUT_SHADOW_NIGHTS",
        7,
        minimum=1,
        help="nights the challenger is scored in the shadow (served to nobody)",
    )
    canary_share: float = setting(
        "CHURNOPS_CANARY_SHARE",
        0.05,
        minimum=0,
        maximum=1,
        help="share of customers served the challenger in the rollout's canary phase, by a "
        "stable customer hash (the only place a challenger's serving share is set)",
    )
    canary_nights: int = setting(
        "CHURNOPS_ROLLOUT_CANARY_NIGHTS", 7, minimum=1, help="nights of the canary phase"
    )
    steps: tuple[float, ...] = setting(
        "CHURNOPS_ROLLOUT_STEPS",
        (0.25, 0.5, 1.0),
        parse=_parse_shares,
        show=lambda shares: ",".join(f"{s:g}" for s in shares),
        allowed="rising shares, the last 1",
        help="the ramp's shares of customers served the challenger after the canary",
    )
    step_nights: int = setting(
        "CHURNOPS_ROLLOUT_STEP_NIGHTS", 7, minimum=1, help="nights of each ramp step"
    )
    keep_previous_days: int = setting(
        "CHURNOPS_ROLLOUT_KEEP_PREVIOUS_DAYS",
        14,
        minimum=0,
        help="days the old champion stays `previous_champion` (the rollback target) after "
        "full, before it is archived",
    )
    approval_share: float = setting(
        "CHURNOPS_ROLLOUT_APPROVAL_SHARE",
        0.5,
        minimum=0,
        maximum=1,
        help="entering the ramp step with this share waits for a person's approval (the "
        "business review; 0: none)",
    )
    approval_timeout_hours: float = setting(
        "CHURNOPS_ROLLOUT_APPROVAL_TIMEOUT_HOURS",
        72.0,
        above=0,
        help="an approval not answered within this many hours counts as Reject",
    )
    max_score_psi: float = setting(
        "CHURNOPS_ROLLOUT_MAX_SCORE_PSI",
        0.5,
        minimum=0,
        help="gate: the population stability index of the challenger's scores against the "
        "champion's on the same customers must stay at or below this",
    )
    min_rank_correlation: float = setting(
        "CHURNOPS_ROLLOUT_MIN_RANK_CORRELATION",
        0.5,
        minimum=-1,
        maximum=1,
        help="gate: the Spearman correlation of the two models' scores on the same customers "
        "must reach this (a model that ranks customers unlike the champion is broken)",
    )
    max_estimated_auc_drop: float = setting(
        "CHURNOPS_ROLLOUT_MAX_ESTIMATED_AUC_DROP",
        0.02,
        minimum=0,
        help="gate: the challenger's estimated AUC (CBPE) on the night may trail its own "
        "AUC on its validation window by at most this (the champion's estimate is shown, "
        "not compared: each is estimated against its own reference)",
    )
    max_scoring_seconds_ratio: float = setting(
        "CHURNOPS_ROLLOUT_MAX_SCORING_SECONDS_RATIO",
        3.0,
        above=0,
        help="gate: the night's scoring time over the median of the champion-only nights "
        "before the rollout (a time under 30 s never fails)",
    )
    min_ab_improvement: float = setting(
        "CHURNOPS_ROLLOUT_MIN_AB_IMPROVEMENT",
        0.02,
        help="A/B readout: the canary's churners caught per contact must beat control's by "
        "this relative lift once its labels mature, else the rollout rolls back",
    )
    min_ab_contacts: int = setting(
        "CHURNOPS_ROLLOUT_MIN_AB_CONTACTS",
        30,
        minimum=1,
        help="A/B readout: contacted customers with a matured label each arm needs before "
        "the readout is read (until then it is pending)",
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class DriftPolicy:
    """How each night's features and scores are compared with the champion's training data.

    Defaults follow the seed: numeric features by normed Wasserstein distance (drifted at
    >= 0.1; Evidently's own choice for samples over 1,000 rows, where p-value tests flag
    every negligible shift), categorical ones (and numbers with at most 5 distinct values)
    by Jensen-Shannon distance (>= 0.1). A p-value method flags drift at p <= ``threshold``
    (``ks``) or p < ``threshold`` (``chisquare``), as Evidently does (seed: 0.01). Verdicts
    use every row of the night; only the HTML report draws a sample.
    """

    num_method: DriftMethod = setting(
        "CHURNOPS_DRIFT_NUM_METHOD",
        "wasserstein",
        noun="drift method",
        help="drift method of numeric features",
    )
    num_threshold: float = setting(
        "CHURNOPS_DRIFT_NUM_THRESHOLD", 0.1, help="drift threshold of numeric features"
    )
    cat_method: DriftMethod = setting(
        "CHURNOPS_DRIFT_CAT_METHOD",
        "jensenshannon",
        noun="drift method",
        help="drift method of categorical features (and numbers with at most 5 values)",
    )
    cat_threshold: float = setting(
        "CHURNOPS_DRIFT_CAT_THRESHOLD", 0.1, help="drift threshold of categorical features"
    )
    feature_methods: tuple[tuple[str, str, float], ...] = setting(
        "CHURNOPS_DRIFT_FEATURE_METHODS",
        (),
        parse=_parse_feature_methods,
        allowed="`FEATURE=METHOD:THRESHOLD,...`",
        show=_show_feature_methods,
        default_text="none",
        help="method and threshold per feature, `FEATURE=METHOD:THRESHOLD,...` "
        "(e.g. `tenure_days=ks:0.01`)",
    )
    # 20,000 draw the same histograms as 50,000 and save a second a night at 500k customers
    # (3.9 -> 2.95 s, make bench BENCH=drift); below that plotly's per-figure cost dominates.
    sample_rows: int = setting(
        "CHURNOPS_DRIFT_SAMPLE_ROWS",
        20_000,
        minimum=0,
        help="rows of each frame drawn in the Evidently page (verdicts always use every "
        "row); 0: all",
    )
    seed: int = setting("CHURNOPS_DRIFT_SEED", 7, minimum=0, help="seed of the report's sample")
    drift_share: float = setting(
        "CHURNOPS_DRIFT_SHARE",
        0.5,
        help="the report's verdict: the dataset drifts when this share of features drifts",
    )

    def __post_init__(self) -> None:
        check(self)
        for _, method, _ in self.feature_methods:
            if method not in DRIFT_METHODS:
                raise SettingsError(
                    f"unknown drift method {method!r}; known: {', '.join(DRIFT_METHODS)}"
                )

    def method_for(self, feature: str, categorical: bool) -> tuple[str, float]:
        for name, method, threshold in self.feature_methods:
            if name == feature:
                return method, threshold
        if categorical:
            return self.cat_method, self.cat_threshold
        return self.num_method, self.num_threshold


@dataclass(frozen=True)
class RetrainingPolicy:
    """When monitoring asks for a retrain (``churnops.triggers``); seed defaults.

    Any one trigger fires: AUC of the served scores on the latest matured cohort below
    ``min_cohort_auc``; the estimated AUC below that floor on the last ``estimate_nights``
    estimated nights; drift on ``max_drifted_features`` or more features; more than
    ``max_new_labels`` labelled rows since the champion's training cutoff. The monthly
    trigger is the retrain DAG's own schedule. Requests are ``cooldown_days`` apart, so one
    drift episode does not retrain every night. The monthly run trains only when no model
    was trained in the last ``scheduled_min_gap_days`` days.
    """

    min_cohort_auc: float = setting(
        "CHURNOPS_RETRAIN_MIN_COHORT_AUC",
        0.78,
        help="retrain when the served scores' AUC on the latest matured cohort is below this",
    )
    estimate_nights: int = setting(
        "CHURNOPS_RETRAIN_ESTIMATE_NIGHTS",
        3,
        minimum=1,
        help="retrain when the champion's estimated AUC (CBPE, from the nights' scores alone) "
        "has been below the AUC floor on this many nights in a row: the AUC rule, months "
        "before the labels mature",
    )
    max_drifted_features: int = setting(
        "CHURNOPS_RETRAIN_DRIFTED_FEATURES",
        3,
        minimum=1,
        help="retrain when this many features or more drift",
    )
    max_new_labels: int = setting(
        "CHURNOPS_RETRAIN_NEW_LABELS",
        10_000,
        minimum=0,
        help="retrain when more labelled rows than this arrived since the champion's cutoff",
    )
    min_new_labels_in_drift: int = setting(
        "CHURNOPS_RETRAIN_MIN_NEW_LABELS_IN_DRIFT",
        1_000,
        minimum=0,
        help="when drift requests a retrain and fewer of the drifted customers than this have "
        "a matured label after the champion's cutoff, a follow-up retrain is scheduled for "
        "the night tonight's labels mature",
    )
    cooldown_days: int = setting(
        "CHURNOPS_RETRAIN_COOLDOWN_DAYS",
        14,
        minimum=0,
        help="no two retrain requests closer than this many nights, whatever order a "
        "backfill runs them in",
    )
    scheduled_min_gap_days: int = setting(
        "CHURNOPS_RETRAIN_SCHEDULED_MIN_GAP_DAYS",
        7,
        minimum=0,
        help="the monthly `churn_retrain` run is skipped (with its reason) when a model was "
        "trained more recently",
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class AlertSettings:
    """Where failures and fired triggers are announced: an Airflow connection (http(s)
    webhook or smtp e-mail). Without that connection, a clear log line instead."""

    conn_id: str = setting(
        "CHURNOPS_ALERT_CONN_ID",
        "churnops_alerts",
        help="the Airflow connection alerts go through (webhook or SMTP)",
    )
    email_to: str = setting(
        "CHURNOPS_ALERT_EMAIL_TO", "", default_text="none", help="e-mail recipients of alerts"
    )


@dataclass(frozen=True)
class BenchSettings:
    """The benchmarks (``make bench``): their size and where long set-ups are kept."""

    customers: int = setting(
        "CHURNOPS_BENCH_CUSTOMERS", 500_000, minimum=1, help="customers of every benchmark"
    )
    history_days: int = setting(
        "CHURNOPS_BENCH_HISTORY_DAYS",
        90,
        minimum=1,
        help="days of simulated history the nightly benchmark builds before its night",
    )
    train_state: Path | None = setting(
        "CHURNOPS_BENCH_TRAIN_STATE",
        None,
        default_text="a temporary folder",
        help="where the training benchmark's state is kept and resumed from (refused if "
        "the simulator or the dbt models changed since)",
    )
    drift_state: Path | None = setting(
        "CHURNOPS_BENCH_DRIFT_STATE",
        None,
        default_text="a temporary folder",
        help="where the drift benchmark's state is kept and resumed from",
    )
    nightly_state: Path | None = setting(
        "CHURNOPS_BENCH_NIGHTLY_STATE",
        None,
        default_text="a temporary folder",
        help="where the nightly benchmark's state is kept and resumed from",
    )
    postgres: str = setting(
        "CHURNOPS_BENCH_POSTGRES",
        "postgresql://postgres@127.0.0.1:5432/postgres",
        repr=False,
        help="the PostgreSQL server the engines benchmark creates (and drops) its databases on",
    )
    engine_stages: tuple[str, ...] = setting(
        "CHURNOPS_BENCH_ENGINE_STAGES",
        BENCH_ENGINE_STAGES,
        parse=_parse_stages,
        allowed=" / ".join(f"`{stage}`" for stage in BENCH_ENGINE_STAGES) + ", comma-separated",
        show=",".join,
        help="the stages the engines benchmark compares",
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class OnlineStoreSettings:
    """The online feature store (``churnops.online``): each night's features in Redis for
    the real-time service, switched to atomically after the nightly's features."""

    url: str = setting(
        "CHURNOPS_ONLINE_STORE_URL",
        "redis://127.0.0.1:6379/0",
        repr=False,
        help="the Redis the night's features are materialized into and served from (empty: "
        "no online store, the nightly's `online_features` task is skipped)",
    )
    prefix: str = setting(
        "CHURNOPS_ONLINE_STORE_PREFIX",
        "churnops:online",
        help="prefix of every key the online store and the service write (one per deployment)",
    )
    retired_ttl_seconds: int = setting(
        "CHURNOPS_ONLINE_RETIRED_TTL_SECONDS",
        6 * 3600,
        minimum=1,
        help="how long a night stays in Redis once a newer one is switched to (readers in "
        "flight finish on it; then it expires)",
    )
    buckets: int = setting(
        "CHURNOPS_ONLINE_BUCKETS",
        1024,
        minimum=1,
        help="Redis hashes a night's customers are spread over (customer_id modulo)",
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class ServeSettings:
    """The real-time scoring service (``churnops serve``, ``churnops.serve``)."""

    host: str = setting("CHURNOPS_SERVE_HOST", "127.0.0.1", help="address the service binds")
    port: int = setting(
        "CHURNOPS_SERVE_PORT", 8000, minimum=1, maximum=65535, help="port the service binds"
    )
    workers: int = setting(
        "CHURNOPS_SERVE_WORKERS", 1, minimum=1, help="uvicorn worker processes of the service"
    )
    api_key: str = setting(
        "CHURNOPS_SERVE_API_KEY",
        "",
        secret=True,
        default_text="none: `churnops serve` creates a development key and prints it",
        help="an API key the service accepts besides those of `churnops serve-keys`",
    )
    keys_file: Path | None = setting(
        "CHURNOPS_SERVE_KEYS_FILE",
        None,
        parse=lambda _, raw: Path(raw).resolve(),
        default_text="`<state dir>/serve/api_keys.json`",
        help="the API keys' salted hashes (`churnops serve-keys create|revoke|list`)",
    )
    rate_limit_per_minute: int = setting(
        "CHURNOPS_SERVE_RATE_LIMIT",
        1000,
        minimum=1,
        help="score requests per customer per minute, counted in Redis across workers",
    )
    breaker_error_rate: float = setting(
        "CHURNOPS_SERVE_BREAKER_ERROR_RATE",
        0.05,
        above=0,
        maximum=1,
        help="the circuit breaker opens when this share of the recent calls to the store or "
        "the model failed",
    )
    breaker_min_calls: int = setting(
        "CHURNOPS_SERVE_BREAKER_MIN_CALLS",
        20,
        minimum=1,
        help="calls in the breaker's window before its error rate counts",
    )
    breaker_reset_seconds: float = setting(
        "CHURNOPS_SERVE_BREAKER_RESET_SECONDS",
        30.0,
        above=0,
        help="how long an open breaker refuses calls before it tries one again",
    )
    timeout_seconds: float = setting(
        "CHURNOPS_SERVE_TIMEOUT_SECONDS", 5.0, above=0, help="a request's time limit"
    )
    model_poll_seconds: float = setting(
        "CHURNOPS_SERVE_MODEL_POLL_SECONDS",
        30.0,
        above=0,
        help="how often the service asks the registry whether the champion moved",
    )
    sample_share: float = setting(
        "CHURNOPS_SERVE_SAMPLE_SHARE",
        0.01,
        minimum=0,
        maximum=1,
        help="share of scored requests logged to the monitoring store (`monitoring.online_requests`)",
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class Settings:
    """Everything churnops can be told, for one profile."""

    paths: Paths
    simulation: SimulationSettings
    warehouse: WarehouseSettings
    storage: SharedStorageSettings
    # Read before every section (their defaults depend on it).
    profile: Profile = setting(
        "CHURNOPS_PROFILE",
        "local",
        help="`local` (DuckDB, SQLite, files) or `prod` (PostgreSQL, MLflow server)",
    )
    orchestration: OrchestrationSettings = field(default_factory=OrchestrationSettings)
    airflow: AirflowSettings = field(default_factory=AirflowSettings)
    train: TrainParams = field(default_factory=TrainParams)
    promotion: PromotionPolicy = field(default_factory=PromotionPolicy)
    mlflow: MlflowSettings = field(default_factory=MlflowSettings)
    scoring: ScoringPolicy = field(default_factory=ScoringPolicy)
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    drift: DriftPolicy = field(default_factory=DriftPolicy)
    retraining: RetrainingPolicy = field(default_factory=RetrainingPolicy)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    bench: BenchSettings = field(default_factory=BenchSettings)
    online: OnlineStoreSettings = field(default_factory=OnlineStoreSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    debug: bool = setting(
        "CHURNOPS_DEBUG", False, help="the CLI shows a failing command's traceback"
    )

    def __post_init__(self) -> None:
        check(self)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the environment (``os.environ`` unless given)."""
    settings: Settings = build(Settings, Loading(os.environ if env is None else env))
    slots = settings.orchestration.warehouse_pool_slots
    if settings.warehouse.kind == "duckdb" and slots != 1:
        raise SettingsError(
            f"CHURNOPS_WAREHOUSE_POOL_SLOTS={slots}: the DuckDB warehouse admits one writing "
            "process, so its pool has one slot (use CHURNOPS_WAREHOUSE=postgres to run "
            "warehouse tasks side by side)"
        )
    return settings


def declared_settings(cls: type = Settings) -> list[tuple[str, type, Any]]:
    """Every declared setting under ``cls``, in declaration order: (section path, owning
    class, (field, declaration, type)). The section path of a top-level setting is ""."""
    found: list[tuple[str, type, Any]] = []

    def walk(owner: type, path: str) -> None:
        nested = dict(sections(owner))
        for item in declared_fields(owner):
            found.append((path, owner, item))
        for name, section in nested.items():
            walk(section, f"{path}.{name}" if path else name)

    walk(cls, "")
    return found


def read_setting(name: str, env: Mapping[str, str] | None = None) -> Any:
    """One declared variable's value from ``env`` (``os.environ`` unless given), without
    building the rest (e.g. ``CHURNOPS_DEBUG`` when another setting is broken). Derived
    defaults are not computed here: unset, a derived setting reads as None."""
    env = os.environ if env is None else env
    for _, _, (item, declared, hint) in declared_settings():
        if declared.env == name:
            if declared.derive is not None and not (env.get(name) or "").strip():
                return None
            default = item.default
            if default is dataclasses.MISSING and item.default_factory is not dataclasses.MISSING:
                default = item.default_factory()
            return read(declared, hint, Loading(env), default)
    raise KeyError(f"{name} is not a declared setting")
