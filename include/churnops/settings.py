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
DBT_EXECUTION_MODES = ("watcher", "per_model", "build")

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


# A PostgreSQL memory setting as its server accepts it: digits, then a unit.
_MEMORY_UNITS = ("kB", "MB", "GB", "TB")


def _env_memory(env: Mapping[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    number, unit = raw.rstrip("kMGTB"), raw[len(raw.rstrip("kMGTB")) :]
    if not number.isdigit() or int(number) == 0 or unit not in _MEMORY_UNITS:
        raise SettingsError(
            f"{name}={raw!r} is not a PostgreSQL memory size: a whole number and one of "
            f"{', '.join(_MEMORY_UNITS)} (e.g. 256MB)"
        )
    return raw


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (true/false)")


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

    data_url: str
    models_url: str
    configured: bool = False  # CHURNOPS_DATA_URL was set

    def __post_init__(self) -> None:
        for name in ("data_url", "models_url"):
            value = getattr(self, name)
            if "://" not in value and not value.startswith("/"):
                raise SettingsError(
                    f"CHURNOPS_DATA_URL={value!r} is neither an absolute path nor a URL "
                    "(e.g. /mnt/churnops, file:///mnt/churnops, s3://bucket/prefix)"
                )


def _load_storage_settings(env: Mapping[str, str], paths: Paths) -> SharedStorageSettings:
    raw = (env.get("CHURNOPS_DATA_URL") or "").strip().rstrip("/")
    if not raw:
        # Today's layout: data under the state dir, compiled libraries in its models/.
        return SharedStorageSettings(
            data_url=str(paths.data_dir), models_url=str(paths.state_dir / "models")
        )
    return SharedStorageSettings(data_url=raw, models_url=f"{raw}/models", configured=True)


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
    # May carry a password: kept out of repr, so logging the settings never shows it.
    postgres_dsn: str = field(repr=False)
    dbt_target: str = "local"  # the target in dbt_project/profiles.yml
    # PostgreSQL's work_mem for churnops' sessions (dbt's and the stages'): the server
    # default (4MB) spills the night's 45M-row usage aggregation and the training frame's
    # sort (500k customers) to disk. Per sort or hash of each session, so size it to the
    # server's memory.
    postgres_work_mem: str = "256MB"


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
    # How the nightly runs dbt: "watcher" (Cosmos runs dbt once and mirrors every model's
    # status onto its own task), "per_model" (Cosmos runs one dbt invocation per model) or
    # "build" (one task runs `dbt build`; no model graph in the UI).
    dbt_execution: str = "watcher"
    # Every task that opens the warehouse (or runs dbt) takes a slot of this pool. DuckDB
    # admits one writing process: one slot. PostgreSQL takes writers at once (a night's
    # shards stage in parallel): as many slots as warehouse tasks may run together.
    warehouse_pool: str = "churnops_warehouse"
    warehouse_pool_slots: int = 1


THRESHOLD_RULES = ("max_f1", "recall_target")
CLASS_WEIGHTINGS = ("balanced", "none")


@dataclass(frozen=True)
class TrainParams:
    """How the churn model is trained and evaluated.

    Windows are in months of matured as-of dates (a month is 365.25 / 12 days), the latest
    ``test_months`` being the test window. With less history than train + validation +
    test, all three shrink at the same ratio down to ``min_history_months`` in total.
    """

    train_months: float = 12.0
    validation_months: float = 3.0
    test_months: float = 3.0
    min_history_months: float = 6.0
    # One as-of snapshot every N days, counted back from the latest matured as-of date:
    # neighbouring days are near-copies of each other (the seed takes monthly snapshots
    # at 500k customers; weekly suits the 20k demo).
    snapshot_every_days: int = 7
    label_horizon_days: int = 90  # the label: churned within this many days
    min_train_positives: int = 200
    min_eval_positives: int = 30  # in the validation and in the test window, each
    min_segment_positives: int = 10  # a segment with fewer churners gets no AUC
    # LightGBM
    # Measured at 500,000 customers x 12 monthly snapshots (3.5 M train rows, make bench
    # BENCH=train): the seed's 0.05 and unbounded depth took 211 s for 506 trees and test
    # AUC 0.8195; these defaults take 22-38 s for 169 trees and AUC 0.8187, and
    # the nightly predict and reason codes cost a third (both scale with trees x depth).
    learning_rate: float = 0.1
    num_leaves: int = 31
    max_depth: int = 8  # -1: unbounded (leaf-wise trees then grow 15-30 deep)
    max_bin: int = 63  # histogram bins per feature (LightGBM's default is 255)
    min_child_samples: int = 100
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    max_rounds: int = 1000
    # Stop when validation AUC has not risen by min_delta for this many rounds: without a
    # minimum, AUC creeping up in the 4th decimal kept adding trees for nothing.
    early_stopping_rounds: int = 20
    early_stopping_min_delta: float = 1e-4
    # Large training sets keep every churner and this share of the other rows (fixed
    # seed); the class weight is computed after sampling and the scores are recalibrated
    # on the whole validation window, so probabilities stay calibrated. Below
    # negative_sampling_min_rows every row is used.
    negative_sample_rate: float = 0.25
    negative_sampling_min_rows: int = 1_000_000
    # balanced: churners weighted by negatives/positives (scale_pos_weight); the scores
    # are recalibrated to probabilities on validation (see churnops.train.model).
    class_weighting: str = "balanced"
    # Operating threshold, chosen on the validation window: max_f1, or the highest
    # threshold whose recall reaches recall_target.
    threshold_rule: str = "max_f1"
    recall_target: float = 0.75
    seed: int = 42
    num_threads: int = 2
    # Optuna search of the LightGBM parameters on the train/validation windows
    # (churnops.train.search); a timeout of 0 means only the trial count bounds it.
    optuna: bool = False
    optuna_trials: int = 30
    optuna_timeout_minutes: float = 0.0
    # Only as-of dates whose 90-day feature window lies wholly inside the loaded feed: the
    # first 89 days after the feed starts have truncated windows (their calls_90d counts
    # days that exist), unlike anything scored later. Off only for deliberately tiny tests.
    full_windows_only: bool = True
    reference_sample_rows: int = 50_000  # training sample kept for drift monitoring
    shap_sample_rows: int = 5_000
    # The train AUC (for the train/test gap) on a fixed-seed sample of the train rows: at
    # 500k customers x 12 snapshots, scoring every train row cost a minute for one number.
    train_auc_sample_rows: int = 250_000

    def __post_init__(self) -> None:
        for name in ("train_months", "validation_months", "test_months", "min_history_months"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"TrainParams.{name} must be positive")
        if self.min_history_months > self.total_months:
            raise SettingsError(
                f"TrainParams.min_history_months={self.min_history_months} exceeds the "
                f"windows' total ({self.total_months} months)"
            )
        if self.snapshot_every_days < 1:
            raise SettingsError("TrainParams.snapshot_every_days must be at least 1")
        if self.threshold_rule not in THRESHOLD_RULES:
            raise SettingsError(
                f"unknown threshold rule {self.threshold_rule!r}; known: {', '.join(THRESHOLD_RULES)}"
            )
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise SettingsError(
                f"unknown class weighting {self.class_weighting!r}; "
                f"known: {', '.join(CLASS_WEIGHTINGS)}"
            )
        if not 0 < self.recall_target <= 1:
            raise SettingsError("TrainParams.recall_target must be in (0, 1]")
        if self.num_threads < 1:
            raise SettingsError("TrainParams.num_threads must be at least 1")
        if not 0 < self.negative_sample_rate <= 1:
            raise SettingsError("TrainParams.negative_sample_rate must be in (0, 1]")
        if self.max_bin < 2:
            raise SettingsError("TrainParams.max_bin must be at least 2")

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

    min_auc_gain: float = 0.02
    max_recall_drop: float = 0.02
    recall_noise_z: float = 2.0
    max_brier_rise: float = 0.01
    max_segment_auc_drop: float = 0.03
    min_auc_first_champion: float = 0.70
    # A person signs off every promotion the rules would make ('await_approval').
    require_approval: bool = False

    def __post_init__(self) -> None:
        for name in (
            "min_auc_gain",
            "max_recall_drop",
            "recall_noise_z",
            "max_brier_rise",
            "max_segment_auc_drop",
        ):
            if getattr(self, name) < 0:
                raise SettingsError(f"PromotionPolicy.{name} must not be negative")
        if not 0 <= self.min_auc_first_champion <= 1:
            raise SettingsError("PromotionPolicy.min_auc_first_champion must be in [0, 1]")


@dataclass(frozen=True)
class MlflowSettings:
    """Tracking server, experiment and registered model.

    ``tracking_uri`` None means the local default: SQLite under ``<state_dir>/mlflow`` with
    artifacts beside it (``churnops.registry.tracking`` resolves it).
    """

    tracking_uri: str | None = None
    # Where new experiments keep their artifacts; None: the tracking server's default.
    artifact_location: str | None = None
    experiment_name: str = "churn"
    registered_model_name: str = "churn"


RISK_BANDS_DEFAULT = (("high", 0.30), ("medium", 0.10), ("low", 0.0))
SCORING_ENGINES = ("auto", "compiled", "native")
DRIFT_METHODS = ("wasserstein", "ks", "psi", "jensenshannon", "chisquare")


def _parse_bands(raw: str) -> tuple[tuple[str, float], ...]:
    """``high:0.30,medium:0.10,low:0`` -> bands, highest floor first."""
    bands = []
    for part in raw.split(","):
        name, _, floor = part.strip().partition(":")
        try:
            bands.append((name.strip(), float(floor)))
        except ValueError:
            raise SettingsError(
                f"CHURNOPS_RISK_BANDS part {part!r} is not NAME:FLOOR (e.g. high:0.30)"
            ) from None
    return tuple(sorted(bands, key=lambda b: -b[1]))


@dataclass(frozen=True)
class ScoringPolicy:
    """How the nightly scores are served (``churnops.score``).

    Risk bands: a customer is in the first band whose floor their churn probability
    reaches, bands ordered from the highest floor down; the lowest floor must be 0 so every
    probability has a band. The default floors suit calibrated probabilities around an 8 %
    base rate: ``high`` >= 0.30 (about four times the base rate), ``medium`` >= 0.10.
    """

    risk_bands: tuple[tuple[str, float], ...] = RISK_BANDS_DEFAULT
    # Customers in this band get reason codes: their top features pushing the score up.
    reason_band: str = "high"
    reason_count: int = 3
    # Share (0..1) of customers served the challenger's score, by a stable customer hash.
    canary_share: float = 0.0
    # Salt of the canary hash: change it to draw a different (still stable) canary group.
    canary_salt: str = "churnops-canary"
    predict_threads: int = 2
    # How the trees are evaluated: "compiled" (treelite + tl2cgen: C code built once per
    # version, 1.7-2.3x LightGBM's predict at 500k rows, identical scores), "native" (the
    # LightGBM booster) or "auto" (compiled where a C compiler is installed).
    engine: str = "auto"
    # Customer-hash shards a night is scored in, each its own task that any worker can
    # run (``churnops.sharding``); the night is published whole after the last one.
    shards: int = 1

    def __post_init__(self) -> None:
        if not self.risk_bands:
            raise SettingsError("ScoringPolicy.risk_bands must name at least one band")
        floors = [floor for _, floor in self.risk_bands]
        if floors != sorted(floors, reverse=True) or len(set(floors)) != len(floors):
            raise SettingsError("risk band floors must be distinct, listed from highest to lowest")
        if floors[-1] != 0.0:
            raise SettingsError("the lowest risk band's floor must be 0 so every score has a band")
        if self.reason_band not in {name for name, _ in self.risk_bands}:
            raise SettingsError(f"reason band {self.reason_band!r} is not one of the risk bands")
        if not 0.0 <= self.canary_share <= 1.0:
            raise SettingsError("the canary share must be between 0 and 1 (0-100 %)")
        if self.reason_count < 0:
            raise SettingsError("ScoringPolicy.reason_count must not be negative")
        if self.engine not in SCORING_ENGINES:
            raise SettingsError(
                f"unknown scoring engine {self.engine!r}; known: {', '.join(SCORING_ENGINES)}"
            )
        if self.shards < 1:
            raise SettingsError("ScoringPolicy.shards must be at least 1")


@dataclass(frozen=True)
class DriftPolicy:
    """How each night's features and scores are compared with the champion's training data.

    Defaults follow the seed: numeric features by normed Wasserstein distance (drifted at
    >= 0.1; Evidently's own choice for samples over 1,000 rows, where p-value tests flag
    every negligible shift), categorical ones (and numbers with at most 5 distinct values)
    by Jensen-Shannon distance (>= 0.1). A p-value method flags drift at p <= ``threshold``
    (``ks``) or p < ``threshold`` (``chisquare``), as Evidently does (seed: 0.01). Verdicts
    use every row of the night; only the HTML report draws a sample. ``feature_methods`` overrides method and threshold per feature.
    """

    num_method: str = "wasserstein"
    num_threshold: float = 0.1
    cat_method: str = "jensenshannon"
    cat_threshold: float = 0.1
    feature_methods: tuple[tuple[str, str, float], ...] = ()  # (feature, method, threshold)
    # Rows of each frame drawn in the HTML report (fixed seed); verdicts use all rows; 0 = all.
    # 20,000 draw the same histograms as 50,000 and save a second a night at 500k customers
    # (3.9 -> 2.95 s, make bench BENCH=drift); below that plotly's per-figure cost dominates.
    sample_rows: int = 20_000
    seed: int = 7
    # The report's verdict: the dataset drifts when this share of features drifts.
    drift_share: float = 0.5

    def __post_init__(self) -> None:
        for method in (self.num_method, self.cat_method, *(m for _, m, _ in self.feature_methods)):
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


def _parse_feature_methods(raw: str) -> tuple[tuple[str, str, float], ...]:
    """``tenure_days=ks:0.01,plan_type=chisquare:0.01``."""
    parsed = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        feature, _, rule = part.partition("=")
        method, _, threshold = rule.partition(":")
        try:
            parsed.append((feature.strip(), method.strip(), float(threshold)))
        except ValueError:
            raise SettingsError(
                f"CHURNOPS_DRIFT_FEATURE_METHODS part {part!r} is not FEATURE=METHOD:THRESHOLD"
            ) from None
    return tuple(parsed)


@dataclass(frozen=True)
class RetrainingPolicy:
    """When monitoring asks for a retrain (``churnops.triggers``); seed defaults.

    Any one trigger fires: AUC of the served scores on the latest matured cohort below
    ``min_cohort_auc``; drift on ``max_drifted_features`` or more features; more than
    ``max_new_labels`` labelled rows since the champion's training cutoff. The monthly
    trigger is the retrain DAG's own schedule. Requests are ``cooldown_days`` apart, so one
    drift episode does not retrain every night. The monthly run trains only when no model
    was trained in the last ``scheduled_min_gap_days`` days.
    """

    min_cohort_auc: float = 0.78
    max_drifted_features: int = 3
    max_new_labels: int = 10_000
    cooldown_days: int = 14
    scheduled_min_gap_days: int = 7


@dataclass(frozen=True)
class AlertSettings:
    """Where failures and fired triggers are announced: an Airflow connection (http(s)
    webhook or smtp e-mail). Without that connection, a clear log line instead."""

    conn_id: str = "churnops_alerts"
    email_to: str = ""


@dataclass(frozen=True)
class Settings:
    """Everything churnops can be told, for one profile."""

    profile: str
    paths: Paths
    simulation: SimulationSettings
    warehouse: WarehouseSettings
    storage: SharedStorageSettings
    orchestration: OrchestrationSettings = field(default_factory=OrchestrationSettings)
    train: TrainParams = field(default_factory=TrainParams)
    promotion: PromotionPolicy = field(default_factory=PromotionPolicy)
    mlflow: MlflowSettings = field(default_factory=MlflowSettings)
    scoring: ScoringPolicy = field(default_factory=ScoringPolicy)
    drift: DriftPolicy = field(default_factory=DriftPolicy)
    retraining: RetrainingPolicy = field(default_factory=RetrainingPolicy)
    alerts: AlertSettings = field(default_factory=AlertSettings)


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
        postgres_work_mem=_env_memory(
            env, "CHURNOPS_POSTGRES_WORK_MEM", WarehouseSettings.postgres_work_mem
        ),
    )

    orch_defaults = OrchestrationSettings()
    orchestration = OrchestrationSettings(
        nightly_cron=env.get("CHURNOPS_NIGHTLY_CRON") or orch_defaults.nightly_cron,
        nightly_start=_env_date(env, "CHURNOPS_NIGHTLY_START", None) or simulation.history_start,
        max_active_runs=_env_int(
            env, "CHURNOPS_MAX_ACTIVE_RUNS", orch_defaults.max_active_runs, minimum=1
        ),
        retries=_env_int(env, "CHURNOPS_TASK_RETRIES", orch_defaults.retries),
        dbt_execution=_env_choice(
            env, "CHURNOPS_DBT_EXECUTION", orch_defaults.dbt_execution, DBT_EXECUTION_MODES
        ),
        drop_wait_minutes=_env_int(
            env, "CHURNOPS_DROP_WAIT_MINUTES", orch_defaults.drop_wait_minutes, minimum=1
        ),
        drop_poke_seconds=_env_int(
            env, "CHURNOPS_DROP_POKE_SECONDS", orch_defaults.drop_poke_seconds, minimum=1
        ),
        retry_delay_minutes=_env_int(
            env, "CHURNOPS_RETRY_DELAY_MINUTES", orch_defaults.retry_delay_minutes
        ),
        warehouse_pool_slots=_warehouse_pool_slots(env, warehouse_kind),
    )
    return Settings(
        profile=profile,
        paths=paths,
        simulation=simulation,
        warehouse=warehouse,
        storage=_load_storage_settings(env, paths),
        orchestration=orchestration,
        train=_load_train_params(env),
        promotion=_load_promotion_policy(env),
        mlflow=_load_mlflow_settings(env, profile, paths),
        scoring=_load_scoring_policy(env),
        drift=_load_drift_policy(env),
        retraining=_load_retraining_policy(env),
        alerts=AlertSettings(
            conn_id=env.get("CHURNOPS_ALERT_CONN_ID") or AlertSettings.conn_id,
            email_to=env.get("CHURNOPS_ALERT_EMAIL_TO") or "",
        ),
    )


# PostgreSQL's default: the compose file's scaled-out night (4 shards) stages at once.
POSTGRES_POOL_SLOTS = 4


def _warehouse_pool_slots(env: Mapping[str, str], warehouse_kind: str) -> int:
    default = 1 if warehouse_kind == "duckdb" else POSTGRES_POOL_SLOTS
    slots = _env_int(env, "CHURNOPS_WAREHOUSE_POOL_SLOTS", default, minimum=1)
    if warehouse_kind == "duckdb" and slots != 1:
        raise SettingsError(
            f"CHURNOPS_WAREHOUSE_POOL_SLOTS={slots}: the DuckDB warehouse admits one writing "
            "process, so its pool has one slot (use CHURNOPS_WAREHOUSE=postgres to run "
            "warehouse tasks side by side)"
        )
    return slots


def _load_train_params(env: Mapping[str, str]) -> TrainParams:
    d = TrainParams()
    return TrainParams(
        train_months=_env_float(env, "CHURNOPS_TRAIN_MONTHS", d.train_months),
        validation_months=_env_float(env, "CHURNOPS_VALIDATION_MONTHS", d.validation_months),
        test_months=_env_float(env, "CHURNOPS_TEST_MONTHS", d.test_months),
        min_history_months=_env_float(env, "CHURNOPS_MIN_HISTORY_MONTHS", d.min_history_months),
        snapshot_every_days=_env_int(
            env, "CHURNOPS_SNAPSHOT_EVERY_DAYS", d.snapshot_every_days, minimum=1
        ),
        min_train_positives=_env_int(env, "CHURNOPS_MIN_TRAIN_POSITIVES", d.min_train_positives),
        min_eval_positives=_env_int(env, "CHURNOPS_MIN_EVAL_POSITIVES", d.min_eval_positives),
        learning_rate=_env_float(env, "CHURNOPS_LEARNING_RATE", d.learning_rate),
        num_leaves=_env_int(env, "CHURNOPS_NUM_LEAVES", d.num_leaves, minimum=2),
        max_depth=_env_int(env, "CHURNOPS_MAX_DEPTH", d.max_depth, minimum=-1),
        max_bin=_env_int(env, "CHURNOPS_MAX_BIN", d.max_bin, minimum=2),
        max_rounds=_env_int(env, "CHURNOPS_MAX_ROUNDS", d.max_rounds, minimum=1),
        early_stopping_rounds=_env_int(
            env, "CHURNOPS_EARLY_STOPPING_ROUNDS", d.early_stopping_rounds, minimum=1
        ),
        early_stopping_min_delta=_env_float(
            env, "CHURNOPS_EARLY_STOPPING_MIN_DELTA", d.early_stopping_min_delta
        ),
        negative_sample_rate=_env_float(
            env, "CHURNOPS_NEGATIVE_SAMPLE_RATE", d.negative_sample_rate
        ),
        negative_sampling_min_rows=_env_int(
            env, "CHURNOPS_NEGATIVE_SAMPLING_MIN_ROWS", d.negative_sampling_min_rows
        ),
        class_weighting=_env_choice(
            env, "CHURNOPS_CLASS_WEIGHTING", d.class_weighting, CLASS_WEIGHTINGS
        ),
        threshold_rule=_env_choice(
            env, "CHURNOPS_THRESHOLD_RULE", d.threshold_rule, THRESHOLD_RULES
        ),
        recall_target=_env_float(env, "CHURNOPS_RECALL_TARGET", d.recall_target),
        seed=_env_int(env, "CHURNOPS_TRAIN_SEED", d.seed),
        num_threads=_env_int(env, "CHURNOPS_TRAIN_THREADS", d.num_threads, minimum=1),
        optuna=_env_bool(env, "CHURNOPS_OPTUNA", d.optuna),
        optuna_trials=_env_int(env, "CHURNOPS_OPTUNA_TRIALS", d.optuna_trials, minimum=1),
        optuna_timeout_minutes=_env_float(
            env, "CHURNOPS_OPTUNA_TIMEOUT_MINUTES", d.optuna_timeout_minutes
        ),
        reference_sample_rows=_env_int(
            env, "CHURNOPS_REFERENCE_SAMPLE_ROWS", d.reference_sample_rows, minimum=1
        ),
        full_windows_only=_env_bool(env, "CHURNOPS_TRAIN_FULL_WINDOWS_ONLY", d.full_windows_only),
    )


def _load_promotion_policy(env: Mapping[str, str]) -> PromotionPolicy:
    d = PromotionPolicy()
    return PromotionPolicy(
        min_auc_gain=_env_float(env, "CHURNOPS_PROMOTION_MIN_AUC_GAIN", d.min_auc_gain),
        max_recall_drop=_env_float(env, "CHURNOPS_PROMOTION_MAX_RECALL_DROP", d.max_recall_drop),
        recall_noise_z=_env_float(env, "CHURNOPS_PROMOTION_RECALL_NOISE_Z", d.recall_noise_z),
        max_brier_rise=_env_float(env, "CHURNOPS_PROMOTION_MAX_BRIER_RISE", d.max_brier_rise),
        max_segment_auc_drop=_env_float(
            env, "CHURNOPS_PROMOTION_MAX_SEGMENT_AUC_DROP", d.max_segment_auc_drop
        ),
        min_auc_first_champion=_env_float(
            env, "CHURNOPS_PROMOTION_MIN_AUC", d.min_auc_first_champion
        ),
        require_approval=_env_bool(env, "CHURNOPS_PROMOTION_REQUIRE_APPROVAL", d.require_approval),
    )


def _load_mlflow_settings(env: Mapping[str, str], profile: str, paths: Paths) -> MlflowSettings:
    d = MlflowSettings()
    tracking_uri = env.get("CHURNOPS_MLFLOW_TRACKING_URI") or None
    artifact_location = env.get("CHURNOPS_MLFLOW_ARTIFACT_LOCATION") or None
    if tracking_uri is None and profile == "prod":
        # An `mlflow server` on its default port; the server owns the artifact store.
        tracking_uri = "http://127.0.0.1:5000"
    elif tracking_uri is None:
        # Local: SQLite beside the artifacts, both under the state dir.
        tracking_uri = f"sqlite:///{paths.mlflow_dir / 'mlflow.db'}"
        artifact_location = artifact_location or (paths.mlflow_dir / "artifacts").as_uri()
    return MlflowSettings(
        tracking_uri=tracking_uri,
        artifact_location=artifact_location,
        experiment_name=env.get("CHURNOPS_MLFLOW_EXPERIMENT") or d.experiment_name,
        registered_model_name=env.get("CHURNOPS_REGISTERED_MODEL") or d.registered_model_name,
    )


def _load_scoring_policy(env: Mapping[str, str]) -> ScoringPolicy:
    d = ScoringPolicy()
    raw_bands = env.get("CHURNOPS_RISK_BANDS")
    return ScoringPolicy(
        risk_bands=_parse_bands(raw_bands) if raw_bands else d.risk_bands,
        reason_band=env.get("CHURNOPS_REASON_BAND") or d.reason_band,
        reason_count=_env_int(env, "CHURNOPS_REASON_COUNT", d.reason_count),
        canary_share=_env_float(env, "CHURNOPS_CANARY_SHARE", d.canary_share),
        canary_salt=env.get("CHURNOPS_CANARY_SALT") or d.canary_salt,
        predict_threads=_env_int(env, "CHURNOPS_PREDICT_THREADS", d.predict_threads, minimum=1),
        engine=_env_choice(env, "CHURNOPS_SCORING_ENGINE", d.engine, SCORING_ENGINES),
        shards=_env_int(env, "CHURNOPS_SCORING_SHARDS", d.shards, minimum=1),
    )


def _load_drift_policy(env: Mapping[str, str]) -> DriftPolicy:
    d = DriftPolicy()
    return DriftPolicy(
        num_method=env.get("CHURNOPS_DRIFT_NUM_METHOD") or d.num_method,
        num_threshold=_env_float(env, "CHURNOPS_DRIFT_NUM_THRESHOLD", d.num_threshold),
        cat_method=env.get("CHURNOPS_DRIFT_CAT_METHOD") or d.cat_method,
        cat_threshold=_env_float(env, "CHURNOPS_DRIFT_CAT_THRESHOLD", d.cat_threshold),
        feature_methods=_parse_feature_methods(env.get("CHURNOPS_DRIFT_FEATURE_METHODS", "")),
        sample_rows=_env_int(env, "CHURNOPS_DRIFT_SAMPLE_ROWS", d.sample_rows),
        seed=_env_int(env, "CHURNOPS_DRIFT_SEED", d.seed),
        drift_share=_env_float(env, "CHURNOPS_DRIFT_SHARE", d.drift_share),
    )


def _load_retraining_policy(env: Mapping[str, str]) -> RetrainingPolicy:
    d = RetrainingPolicy()
    return RetrainingPolicy(
        min_cohort_auc=_env_float(env, "CHURNOPS_RETRAIN_MIN_COHORT_AUC", d.min_cohort_auc),
        max_drifted_features=_env_int(
            env, "CHURNOPS_RETRAIN_DRIFTED_FEATURES", d.max_drifted_features, minimum=1
        ),
        max_new_labels=_env_int(env, "CHURNOPS_RETRAIN_NEW_LABELS", d.max_new_labels),
        cooldown_days=_env_int(env, "CHURNOPS_RETRAIN_COOLDOWN_DAYS", d.cooldown_days),
        scheduled_min_gap_days=_env_int(
            env, "CHURNOPS_RETRAIN_SCHEDULED_MIN_GAP_DAYS", d.scheduled_min_gap_days
        ),
    )
