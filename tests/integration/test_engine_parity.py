"""The same short history on DuckDB and on PostgreSQL gives the same results, value by value.

One run per engine (simulate, bootstrap: ingest + dbt features and labels, train the first
champion, then one night: ingest, features, score, drift and cohorts, retraining policy),
each in its own state dir (its own MLflow) and warehouse; then every table the stages wrote
is compared. No float tolerance: the engines store IEEE doubles and the dbt macros make
them compute the same ones (dbt_project/macros/cross_db.sql), so equality is exact. Only
the wall-clock columns (load, score and compute times) and run ids are left out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from churnops.contracts import LANDING_TABLES
from churnops.settings import Settings
from tests.conftest import fresh_postgres_database
from tests.trained_state import TRAINED_ENV, trained_state

pytestmark = pytest.mark.integration

# Columns that hold when something ran, not what it computed.
WALL_CLOCK = {
    "_loaded_at",
    "loaded_at",
    "scored_at",
    "computed_at",
    "evaluated_at",
    "run_id",
    "seconds",  # how long the drift report took
}
# Columns that name each run's own state dir: compared relative to it.
PATHS = ("html_path", "json_path")
TABLES = (
    *(f"raw.{name}" for name in LANDING_TABLES),
    "raw._loaded_drops",
    "marts.fct_customer_features",
    "marts.fct_churn_labels",
    "scoring.predictions",
    "monitoring.feature_drift",
    "monitoring.drift_summary",
    "monitoring.retrain_requests",
)


@dataclass
class EngineRun:
    settings: Settings
    night: dt.date
    training_summary: dict[str, float]
    scoring: dict[str, object]
    drifted: list[str]
    retrain_fired: bool
    retrain_reasons: tuple[str, ...]


def run_history(state: Path, **env: str) -> EngineRun:
    """Bootstrap and train (as the other integration tests do), then run one night."""
    from churnops.features import build_features
    from churnops.ingest import ingest_day
    from churnops.monitor.nightly import monitor_night
    from churnops.registry import champion_version
    from churnops.score.nightly import score_day
    from churnops.simulate import simulate_days
    from churnops.storage import shared_files_for
    from churnops.stores import stores_for
    from churnops.triggers.signals import evaluate_retraining

    settings = trained_state(state, **env)
    night = settings.simulation.history_end + dt.timedelta(days=1)
    simulate_days(settings.simulation, night, night, settings.paths.landing_dir)
    stores = stores_for(settings)
    ingest_day(stores.raw, shared_files_for(settings), night)
    build_features(settings, night, night)
    scored = score_day(settings, stores.features, stores.scoring, night)
    monitored = monitor_night(settings, stores.monitoring, night)
    _, decision = evaluate_retraining(settings, stores.monitoring, night)
    from churnops.registry.tracking import mlflow_client

    client = mlflow_client(settings)
    version = client.get_model_version(
        settings.mlflow.registered_model_name, champion_version(settings) or ""
    )
    metrics = client.get_run(version.run_id).data.metrics
    return EngineRun(
        settings=settings,
        night=night,
        training_summary={k: v for k, v in metrics.items() if k.startswith("test_")},
        # The message ends with the run's duration.
        scoring={k: v for k, v in scored.as_dict().items() if k not in {"seconds", "message"}},
        drifted=list(monitored.drift.drifted_features),
        retrain_fired=decision.fire,
        retrain_reasons=tuple(decision.reasons),
    )


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    with fresh_postgres_database("churnops_parity") as dsn:
        yield dsn


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, postgres_database: str) -> dict[str, EngineRun]:
    return {
        "duckdb": run_history(tmp_path_factory.mktemp("parity-duckdb")),
        "postgres": run_history(
            tmp_path_factory.mktemp("parity-postgres"),
            CHURNOPS_WAREHOUSE="postgres",
            CHURNOPS_POSTGRES_DSN=postgres_database,
        ),
    }


def table_contents(run: EngineRun, table: str) -> pa.Table:
    """Every row without its wall-clock columns, paths relative to the state dir, in one
    order (sorted by every sortable column: keys need not be unique, a customer can have
    two invoices a day)."""
    import pyarrow.compute as pc

    from churnops.stores import stores_for

    data = stores_for(run.settings).warehouse.arrow(f"SELECT * FROM {table}")
    data = data.drop_columns([c for c in data.column_names if c in WALL_CLOCK])
    state = str(run.settings.paths.state_dir)
    for name in PATHS:
        if name in data.column_names:
            index = data.column_names.index(name)
            relative = pc.replace_substring(data.column(name), state, "<state>")
            data = data.set_column(index, name, relative)
    keys = [f.name for f in data.schema if not pa.types.is_list(f.type)]
    return data.sort_by([(k, "ascending") for k in keys])


def first_difference(left: pa.Table, right: pa.Table) -> str:
    for name in left.column_names:
        a, b = left.column(name).to_pylist(), right.column(name).to_pylist()
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return f"row {i}, column {name}: {x!r} != {y!r}"
    return "no value differs (types or schema do)"


def test_the_runs_did_real_work(runs: dict[str, EngineRun]) -> None:
    """Not a comparison of two empty results: both engines trained, scored and monitored."""
    for engine, run in runs.items():
        assert run.settings.warehouse.kind == engine
        assert run.training_summary["test_auc"] > 0.6, (engine, run.training_summary)
        assert run.scoring["state"] == "scored"
        assert (
            int(str(run.scoring["rows_scored"])) > int(TRAINED_ENV["CHURNOPS_SIM_CUSTOMERS"]) // 2
        )


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_table_is_the_same_on_both_engines(runs: dict[str, EngineRun], table: str) -> None:
    duck = table_contents(runs["duckdb"], table)
    pg = table_contents(runs["postgres"], table)
    assert duck.num_rows, f"{table} is empty on DuckDB"
    assert duck.schema.equals(pg.schema), (duck.schema, pg.schema)
    assert duck.num_rows == pg.num_rows, table
    assert duck.equals(pg), f"{table}: {first_difference(duck, pg)}"


def test_training_scoring_drift_and_policy_agree(runs: dict[str, EngineRun]) -> None:
    duck, pg = runs["duckdb"], runs["postgres"]
    assert duck.training_summary == pg.training_summary
    assert duck.scoring == pg.scoring
    assert duck.drifted == pg.drifted
    assert (duck.retrain_fired, duck.retrain_reasons) == (pg.retrain_fired, pg.retrain_reasons)


def test_status_reads_the_same_report_from_both_engines(runs: dict[str, EngineRun]) -> None:
    from churnops.status import collect_status

    def essentials(run: EngineRun) -> dict[str, object]:
        report = collect_status(run.settings)
        night, drift = report["last_nightly_run"], report["drift"]
        return {
            "champion": report["champion"]["version"],
            "decisions": [(d["challenger"], d["action"]) for d in report["recent_decisions"]],
            "audit": [(m["alias"], m["from"], m["to"]) for m in report["audit_log"]],
            "night": (night["as_of_date"], night["state"], night["rows_scored"]),
            "drift": (drift["as_of_date"], drift["features_drifted"], drift["drifted_features"]),
        }

    duck = essentials(runs["duckdb"])
    assert duck["champion"] == "1" and duck["night"][1] == "scored", duck
    assert essentials(runs["postgres"]) == duck
