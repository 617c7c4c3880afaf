"""The monitoring tables of the warehouse (schema ``monitoring``), their DDL and readers.

Every nightly writer replaces its own partition (``as_of_date``, and the model version
where the table has one) in one transaction, so reruns and backfills leave one copy.

- ``feature_drift``: one row per night, model version and feature (and the prediction,
  under ``feature = PREDICTION_FEATURE``): method, statistic, threshold, p-value, drifted.
- ``drift_summary``: one row per night and model version: how many features drifted, which,
  whether the prediction drifted, where the HTML and JSON reports are.
- ``cohort_performance``: one row per scoring cohort whose 90-day label window has closed:
  AUC, recall, precision and F1 of the predictions actually served that night.
- ``performance_estimates``: one row per night and champion version: the performance
  estimated from the night's scores alone (CBPE, ``churnops.estimation``) with its band,
  the predicted churn rate against the trained base rate; and, once the night's labels
  have matured, the realized measures of the same rows beside it.
- ``drift_population``: one row per night whose drift fires the retraining trigger: how
  many of tonight's customers drifted (``churnops.monitor.population``), how many of
  them have a matured label after the champion's training cutoff, and how many of those
  chance puts in.
- ``retrain_follow_ups``: one row per retrain the policy scheduled for the night a
  drifted population's labels will have matured (``due_on``), and why.
- ``retrain_requests``: one row per night the retraining policy was evaluated: fired or
  not, its reasons, whether a cooldown held it back.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from churnops.features.store import FEATURES_TABLE, LABEL_COLUMN, LABELS_TABLE
from churnops.score.store import PREDICTIONS_TABLE
from churnops.warehouse import MissingTable, Params, Warehouse

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

MONITORING_SCHEMA = "monitoring"
# The model's score is checked for drift like a feature, under this name.
PREDICTION_FEATURE = "churn_probability"
_metadata = sa.MetaData(schema=MONITORING_SCHEMA)

FEATURE_DRIFT = sa.Table(
    "feature_drift",
    _metadata,
    sa.Column("as_of_date", sa.Date, primary_key=True),
    sa.Column("model_version", sa.String, primary_key=True),
    sa.Column("feature", sa.String, primary_key=True),
    sa.Column("kind", sa.String, nullable=False),  # numerical | categorical | prediction
    sa.Column("method", sa.String, nullable=False),
    sa.Column("statistic", sa.Double),  # the distance, or the test statistic
    sa.Column("p_value", sa.Double),  # p-value methods only
    sa.Column("threshold", sa.Double, nullable=False),
    sa.Column("drifted", sa.Boolean, nullable=False),
    sa.Column("reference_rows", sa.BigInteger, nullable=False),
    sa.Column("current_rows", sa.BigInteger, nullable=False),
    sa.Column("computed_at", sa.DateTime, nullable=False),
)
DRIFT_SUMMARY = sa.Table(
    "drift_summary",
    _metadata,
    sa.Column("as_of_date", sa.Date, primary_key=True),
    sa.Column("model_version", sa.String, primary_key=True),
    sa.Column("features_total", sa.Integer, nullable=False),
    sa.Column("features_drifted", sa.Integer, nullable=False),
    sa.Column("share_drifted", sa.Double, nullable=False),
    sa.Column("drifted_features", ARRAY(sa.String), nullable=False),
    sa.Column("prediction_drifted", sa.Boolean, nullable=False),
    sa.Column("dataset_drifted", sa.Boolean, nullable=False),
    sa.Column("html_path", sa.String),
    sa.Column("json_path", sa.String),
    sa.Column("seconds", sa.Double),
    sa.Column("computed_at", sa.DateTime, nullable=False),
)
COHORT_PERFORMANCE = sa.Table(
    "cohort_performance",
    _metadata,
    sa.Column("as_of_date", sa.Date, primary_key=True),  # the scoring night (the cohort)
    sa.Column("model_versions", sa.String, nullable=False),  # e.g. '3' or '3,4'
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("churners", sa.BigInteger, nullable=False),
    sa.Column("auc", sa.Double),  # null when one class is missing
    sa.Column("recall", sa.Double),
    sa.Column("precision", sa.Double),
    sa.Column("f1", sa.Double),
    sa.Column("threshold", sa.Double, nullable=False),
    sa.Column("computed_at", sa.DateTime, nullable=False),
)
_ESTIMATED = ("auc", "precision", "recall", "f1")
PERFORMANCE_ESTIMATES = sa.Table(
    "performance_estimates",
    _metadata,
    sa.Column("as_of_date", sa.Date, primary_key=True),
    sa.Column("model_version", sa.String, primary_key=True),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("flagged", sa.BigInteger, nullable=False),
    sa.Column("threshold", sa.Double, nullable=False),
    *(
        sa.Column(f"estimated_{metric}{part}", sa.Double)
        for metric in _ESTIMATED
        for part in ("", "_lower", "_upper")
    ),
    sa.Column("mean_probability", sa.Double, nullable=False),
    sa.Column("base_rate", sa.Double, nullable=False),
    sa.Column("estimated_at", sa.DateTime, nullable=False),
    # Null until the night's labels mature (as_of_date + the label horizon).
    sa.Column("realized_rows", sa.BigInteger),
    sa.Column("realized_churners", sa.BigInteger),
    *(sa.Column(f"realized_{metric}", sa.Double) for metric in _ESTIMATED),
    sa.Column("realized_at", sa.DateTime),
)
DRIFT_POPULATION = sa.Table(
    "drift_population",
    _metadata,
    sa.Column("as_of_date", sa.Date, primary_key=True),
    sa.Column("model_version", sa.String, primary_key=True),
    sa.Column("features", ARRAY(sa.String), nullable=False),
    sa.Column("customers", sa.BigInteger, nullable=False),
    sa.Column("base", sa.BigInteger, nullable=False),
    sa.Column("labelled", sa.BigInteger, nullable=False),
    sa.Column("labelled_by_chance", sa.BigInteger, nullable=False),
    sa.Column("labels_since", sa.Date),
    sa.Column("computed_at", sa.DateTime, nullable=False),
)
RETRAIN_FOLLOW_UPS = sa.Table(
    "retrain_follow_ups",
    _metadata,
    sa.Column("due_on", sa.Date, primary_key=True),
    sa.Column("requested_on", sa.Date, nullable=False),  # the drift night that scheduled it
    sa.Column("reason", sa.String, nullable=False),
    sa.Column("scheduled_at", sa.DateTime, nullable=False),
)
RETRAIN_REQUESTS = sa.Table(
    "retrain_requests",
    _metadata,
    sa.Column("as_of_date", sa.Date, primary_key=True),
    sa.Column("champion_version", sa.String),
    sa.Column("fired", sa.Boolean, nullable=False),  # a retrain was requested
    sa.Column("triggered", sa.Boolean, nullable=False),  # a condition held (maybe in cooldown)
    sa.Column("reasons", ARRAY(sa.String), nullable=False),
    sa.Column("held_by_cooldown", sa.Boolean, nullable=False),
    sa.Column("evaluated_at", sa.DateTime, nullable=False),
    sa.Column("run_id", sa.String),
)
FEATURE_DRIFT_TABLE = f"{MONITORING_SCHEMA}.feature_drift"
DRIFT_SUMMARY_TABLE = f"{MONITORING_SCHEMA}.drift_summary"
COHORT_PERFORMANCE_TABLE = f"{MONITORING_SCHEMA}.cohort_performance"
RETRAIN_REQUESTS_TABLE = f"{MONITORING_SCHEMA}.retrain_requests"
PERFORMANCE_ESTIMATES_TABLE = f"{MONITORING_SCHEMA}.performance_estimates"
DRIFT_POPULATION_TABLE = f"{MONITORING_SCHEMA}.drift_population"
RETRAIN_FOLLOW_UPS_TABLE = f"{MONITORING_SCHEMA}.retrain_follow_ups"
COHORT_COLUMNS = tuple(c.name for c in COHORT_PERFORMANCE.columns if c.name != "computed_at")


class MonitoringStore:
    """The monitoring tables, and the reads monitoring makes of the other schemas."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def ensure(self) -> None:
        self.warehouse.ensure(
            FEATURE_DRIFT,
            DRIFT_SUMMARY,
            COHORT_PERFORMANCE,
            RETRAIN_REQUESTS,
            PERFORMANCE_ESTIMATES,
            DRIFT_POPULATION,
            RETRAIN_FOLLOW_UPS,
        )

    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """Rows as dicts; an empty list while a table it reads does not exist yet."""
        try:
            return self.warehouse.rows(sql, params)
        except MissingTable:
            return []

    def replace_drift(
        self, as_of_date: dt.date, model_version: str, features: pa.Table, summary: pa.Table
    ) -> None:
        """Replace the night's and version's rows of both drift tables, in one transaction."""
        self.ensure()
        key = {"as_of_date": as_of_date, "model_version": model_version}
        with self.warehouse.transaction() as session:
            session.replace(FEATURE_DRIFT, key, features)
            session.replace(DRIFT_SUMMARY, key, summary)

    def replace_cohorts(self, cohorts: pa.Table) -> None:
        """Replace the cohorts' rows (by as_of_date), in one transaction."""
        self.ensure()
        nights = cohorts.column("as_of_date").to_pylist()
        with self.warehouse.transaction() as session:
            session.replace(COHORT_PERFORMANCE, {"as_of_date": nights}, cohorts)

    def replace_estimate(self, row: dict[str, Any]) -> None:
        """The night's and version's estimate, replacing any earlier one (a rerun of the
        night); realized columns it carried are kept when the estimate is redone."""
        import pyarrow as pa

        self.ensure()
        key = {"as_of_date": row["as_of_date"], "model_version": row["model_version"]}
        with self.warehouse.transaction() as session:
            before = session.rows(
                f"select * from {PERFORMANCE_ESTIMATES_TABLE} "
                "where as_of_date = ? and model_version = ?",
                [row["as_of_date"], row["model_version"]],
            )
            realized = {k: v for k, v in (before[0] if before else {}).items() if "realized" in k}
            session.replace(PERFORMANCE_ESTIMATES, key, pa.Table.from_pylist([{**realized, **row}]))

    def record_realized(self, rows: list[dict[str, Any]]) -> None:
        """Set the realized columns of the estimates of matured nights (by night and
        version); a night that was never estimated has no row to complete."""
        self.ensure()
        columns = [c.name for c in PERFORMANCE_ESTIMATES.columns if c.name.startswith("realized")]
        assignments = ", ".join(f"{c} = ?" for c in columns)
        with self.warehouse.transaction() as session:
            session.executemany(
                f"update {PERFORMANCE_ESTIMATES_TABLE} set {assignments} "
                "where as_of_date = ? and model_version = ?",
                [
                    [*(row[c] for c in columns), row["as_of_date"], row["model_version"]]
                    for row in rows
                ],
            )

    def estimates(self, since: dt.date | None = None) -> list[dict[str, Any]]:
        """Every night's estimate (and realized, once matured), oldest first."""
        where, params = ("where as_of_date >= ?", [since]) if since else ("", [])
        return self.rows(
            f"select * from {PERFORMANCE_ESTIMATES_TABLE} {where} "
            "order by as_of_date, model_version",
            params,
        )

    def replace_drift_population(self, row: dict[str, Any]) -> None:
        import pyarrow as pa

        self.ensure()
        key = {"as_of_date": row["as_of_date"], "model_version": row["model_version"]}
        with self.warehouse.transaction() as session:
            session.replace(DRIFT_POPULATION, key, pa.Table.from_pylist([row]))

    def replace_follow_up_of(self, requested_on: dt.date, row: dict[str, Any] | None) -> None:
        """The follow-up retrain night ``requested_on`` schedules (``row``, due on
        ``row['due_on']``), or none: a rerun of that night replaces what it scheduled."""
        import pyarrow as pa

        self.ensure()
        with self.warehouse.transaction() as session:
            session.delete(RETRAIN_FOLLOW_UPS, {"requested_on": requested_on})
            if row is not None:
                session.replace(
                    RETRAIN_FOLLOW_UPS, {"due_on": row["due_on"]}, pa.Table.from_pylist([row])
                )

    def follow_ups(self) -> list[dict[str, Any]]:
        return self.rows(f"select * from {RETRAIN_FOLLOW_UPS_TABLE} order by due_on")

    def labelled_customers(self, after: dt.date | None, matured_by: dt.date) -> set[int]:
        """Customers with a label on an as-of date after ``after`` (any when None) that had
        matured by ``matured_by`` (a backfilled history holds later ones too)."""
        rows = self.warehouse.tuples(
            f"select distinct customer_id from {LABELS_TABLE} "
            "where as_of_date > ? and as_of_date <= ?",
            [after or dt.date.min, matured_by],
        )
        return {int(customer) for (customer,) in rows}

    def replace_retrain_request(self, row: dict[str, Any]) -> None:
        import pyarrow as pa

        self.ensure()
        with self.warehouse.transaction() as session:
            session.replace(
                RETRAIN_REQUESTS, {"as_of_date": row["as_of_date"]}, pa.Table.from_pylist([row])
            )

    # ------------------------------------------------------------------ reads of other schemas
    def champion_versions_served(self, as_of_date: dt.date) -> list[str]:
        """Versions that served the night as champion, the one with most customers first."""
        rows = self.rows(
            f"select model_version, count(*) as n from {PREDICTIONS_TABLE} "
            "where as_of_date = ? and served_by = 'champion' "
            "group by model_version order by n desc, model_version",
            [as_of_date],
        )
        return [str(r["model_version"]) for r in rows]

    def night_features(self, as_of_date: dt.date, columns: list[str]) -> pd.DataFrame:
        """``customer_id`` and ``columns`` of every customer's features on ``as_of_date``
        (empty when that night was not built)."""
        import pandas as pd

        selected = ", ".join(["customer_id", *columns])
        try:
            return self.warehouse.frame(
                f"select {selected} from {FEATURES_TABLE} where as_of_date = ? "
                "order by customer_id",
                [as_of_date],
            )
        except MissingTable:
            return pd.DataFrame(columns=["customer_id", *columns])

    def served_features(self, as_of_date: dt.date, model_version: str) -> pd.DataFrame:
        """The night's features with the champion's served score, by customer."""
        return self.warehouse.frame(
            f"""
            select f.*, p.churn_probability
            from {FEATURES_TABLE} as f
            inner join {PREDICTIONS_TABLE} as p
                on p.as_of_date = f.as_of_date and p.customer_id = f.customer_id
            where f.as_of_date = ? and p.served_by = 'champion' and p.model_version = ?
            order by f.customer_id
            """,
            [as_of_date, model_version],
        )

    def cohorts_to_compute(self, matured_by: dt.date) -> pd.DataFrame:
        """Served scores with their matured label, for every cohort up to ``matured_by``
        not computed yet (and ``matured_by`` itself, recomputed)."""
        import pandas as pd

        self.ensure()
        try:
            return self.warehouse.frame(
                f"""
                select p.as_of_date, p.model_version, p.churn_probability,
                       l.{LABEL_COLUMN} as churned
                from {PREDICTIONS_TABLE} as p
                inner join {LABELS_TABLE} as l
                    on l.as_of_date = p.as_of_date and l.customer_id = p.customer_id
                where p.as_of_date <= ?
                  and (p.as_of_date = ? or p.as_of_date not in (
                        select as_of_date from {COHORT_PERFORMANCE_TABLE}))
                order by p.as_of_date, p.customer_id
                """,
                [matured_by, matured_by],
            )
        except MissingTable:  # nothing scored, or no labels built yet
            return pd.DataFrame()
