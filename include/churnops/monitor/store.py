"""The monitoring tables of the warehouse (schema ``monitoring``), their DDL and readers.

Every nightly writer replaces its own partition (``as_of_date``, and the model version
where the table has one) in one transaction, so reruns and backfills leave one copy.

- ``feature_drift``: one row per night, model version and feature (and the prediction,
  under ``feature = PREDICTION_FEATURE``): method, statistic, threshold, p-value, drifted.
- ``drift_summary``: one row per night and model version: how many features drifted, which,
  whether the prediction drifted, where the HTML and JSON reports are.
- ``cohort_performance``: one row per scoring cohort whose 90-day label window has closed:
  AUC, recall, precision and F1 of the predictions actually served that night.
- ``retrain_requests``: one row per night the retraining policy was evaluated: fired or
  not, its reasons, whether a cooldown held it back.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from churnops.settings import Settings

if TYPE_CHECKING:
    import duckdb

MONITORING_SCHEMA = "monitoring"
FEATURE_DRIFT_TABLE = f"{MONITORING_SCHEMA}.feature_drift"
DRIFT_SUMMARY_TABLE = f"{MONITORING_SCHEMA}.drift_summary"
COHORT_PERFORMANCE_TABLE = f"{MONITORING_SCHEMA}.cohort_performance"
RETRAIN_REQUESTS_TABLE = f"{MONITORING_SCHEMA}.retrain_requests"
# The model's score is checked for drift like a feature, under this name.
PREDICTION_FEATURE = "churn_probability"

_DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {MONITORING_SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {FEATURE_DRIFT_TABLE} (
        as_of_date DATE NOT NULL,
        model_version VARCHAR NOT NULL,
        feature VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,            -- numerical | categorical | prediction
        method VARCHAR NOT NULL,
        statistic DOUBLE,                 -- the distance, or the test statistic
        p_value DOUBLE,                   -- p-value methods only
        threshold DOUBLE NOT NULL,
        drifted BOOLEAN NOT NULL,
        reference_rows BIGINT NOT NULL,
        current_rows BIGINT NOT NULL,
        computed_at TIMESTAMP NOT NULL,
        PRIMARY KEY (as_of_date, model_version, feature)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {DRIFT_SUMMARY_TABLE} (
        as_of_date DATE NOT NULL,
        model_version VARCHAR NOT NULL,
        features_total INTEGER NOT NULL,
        features_drifted INTEGER NOT NULL,
        share_drifted DOUBLE NOT NULL,
        drifted_features VARCHAR[] NOT NULL,
        prediction_drifted BOOLEAN NOT NULL,
        dataset_drifted BOOLEAN NOT NULL,
        html_path VARCHAR,
        json_path VARCHAR,
        seconds DOUBLE,
        computed_at TIMESTAMP NOT NULL,
        PRIMARY KEY (as_of_date, model_version)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {COHORT_PERFORMANCE_TABLE} (
        as_of_date DATE NOT NULL PRIMARY KEY,   -- the scoring night (the cohort)
        model_versions VARCHAR NOT NULL,        -- which versions served it, e.g. '3' or '3,4'
        rows BIGINT NOT NULL,
        churners BIGINT NOT NULL,
        auc DOUBLE,                             -- null when one class is missing
        recall DOUBLE,
        precision DOUBLE,
        f1 DOUBLE,
        threshold DOUBLE NOT NULL,
        computed_at TIMESTAMP NOT NULL
    )""",
    f"""CREATE TABLE IF NOT EXISTS {RETRAIN_REQUESTS_TABLE} (
        as_of_date DATE NOT NULL PRIMARY KEY,
        champion_version VARCHAR,
        fired BOOLEAN NOT NULL,                 -- a retrain was requested
        triggered BOOLEAN NOT NULL,             -- a trigger condition held (maybe in cooldown)
        reasons VARCHAR[] NOT NULL,
        held_by_cooldown BOOLEAN NOT NULL,
        evaluated_at TIMESTAMP NOT NULL,
        run_id VARCHAR
    )""",
)


def ensure_monitoring_schema(con: duckdb.DuckDBPyConnection) -> None:
    for statement in _DDL:
        con.execute(statement)


def warehouse(settings: Settings) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    """A read-write connection with the monitoring tables in place."""
    from churnops.warehouse import connect

    if settings.warehouse.kind != "duckdb":
        raise NotImplementedError(
            "the monitoring tables live in the DuckDB warehouse; warehouse kind "
            f"{settings.warehouse.kind!r} is not supported yet"
        )
    return connect(settings.warehouse.duckdb_path)


def query(settings: Settings, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """Rows as dicts; an empty list when the warehouse or the table does not exist yet."""
    import duckdb

    if settings.warehouse.kind != "duckdb" or not settings.warehouse.duckdb_path.exists():
        return []
    from churnops.warehouse import connect

    with connect(settings.warehouse.duckdb_path) as con:
        try:
            cursor = con.execute(sql, params or [])
        except duckdb.CatalogException:
            return []
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
