"""The monitoring tables of the warehouse (schema ``monitoring``), their DDL and readers.

Every nightly writer replaces its own partition (``as_of_date``, and the model version
where the table has one) in one transaction, so reruns and backfills leave one copy.

- ``feature_drift``: one row per night, model version and feature (and the prediction,
  under ``feature = PREDICTION_FEATURE``): method, statistic, threshold, p-value, drifted.
- ``feature_histograms``: one row per night, model version and feature: the reference's
  and the night's distribution on the same bins (shares), what the portal draws beside
  the verdict.
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
FEATURE_HISTOGRAMS = sa.Table(
    "feature_histograms",
    _metadata,
    sa.Column("as_of_date", sa.Date, primary_key=True),
    sa.Column("model_version", sa.String, primary_key=True),
    sa.Column("feature", sa.String, primary_key=True),
    # One label per bin: "[lower, upper)" of a numeric bin, the value, or the category.
    sa.Column("bins", ARRAY(sa.String), nullable=False),
    sa.Column("reference_share", ARRAY(sa.Double), nullable=False),
    sa.Column("current_share", ARRAY(sa.Double), nullable=False),
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
FEATURE_HISTOGRAMS_TABLE = f"{MONITORING_SCHEMA}.feature_histograms"
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
            FEATURE_HISTOGRAMS,
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
        self,
        as_of_date: dt.date,
        model_version: str,
        features: pa.Table,
        summary: pa.Table,
        histograms: pa.Table | None = None,
    ) -> None:
        """Replace the night's and version's rows of the drift tables, in one transaction
        (the histograms' too: none left from an earlier run when ``histograms`` is None)."""
        self.ensure()
        key = {"as_of_date": as_of_date, "model_version": model_version}
        with self.warehouse.transaction() as session:
            session.replace(FEATURE_DRIFT, key, features)
            if histograms is None:
                session.delete(FEATURE_HISTOGRAMS, key)
            else:
                session.replace(FEATURE_HISTOGRAMS, key, histograms)
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

    # ------------------------------------------------------------------ the portal's reads
    # Read-only queries the drift-report portal (churnops.portal) draws its pages from;
    # each answers [] while its table does not exist yet.
    def drift_nights(
        self,
        since: dt.date | None = None,
        until: dt.date | None = None,
        model_version: str | None = None,
        drifted_only: bool = False,
        limit: int = 730,
    ) -> list[dict[str, Any]]:
        """``drift_summary`` rows, newest first, filtered by night range, version and
        "at least one feature or the prediction drifted"."""
        where, params = _night_filters(since, until, model_version)
        if drifted_only:
            where.append("(features_drifted > 0 OR prediction_drifted)")
        return self.rows(
            "SELECT as_of_date, model_version, features_total, features_drifted, share_drifted,"
            " drifted_features, prediction_drifted, dataset_drifted"
            f" FROM {DRIFT_SUMMARY_TABLE}{_where(where)}"
            f" ORDER BY as_of_date DESC, {_version_order('model_version')} LIMIT ?",
            [*params, limit],
        )

    def drift_versions(self) -> list[str]:
        """Every model version with a drift result, newest first."""
        rows = self.rows(
            f"SELECT model_version FROM {DRIFT_SUMMARY_TABLE} GROUP BY model_version"
            f" ORDER BY {_version_order('model_version')}"
        )
        return [str(r["model_version"]) for r in rows]

    def feature_drift_rows(
        self,
        since: dt.date | None = None,
        until: dt.date | None = None,
        model_version: str | None = None,
        feature: str | None = None,
    ) -> list[dict[str, Any]]:
        """``feature_drift`` rows (every feature and the prediction), oldest night first."""
        where, params = _night_filters(since, until, model_version)
        if feature is not None:
            where.append("feature = ?")
            params.append(feature)
        return self.rows(
            "SELECT as_of_date, model_version, feature, kind, method, statistic, p_value,"
            f" threshold, drifted FROM {FEATURE_DRIFT_TABLE}{_where(where)}"
            f" ORDER BY as_of_date, {_version_order('model_version')}, feature",
            params,
        )

    def night_drift(self, as_of_date: dt.date) -> list[dict[str, Any]]:
        """Every feature's drift test of the night: newest version first, then drifted
        first, the prediction first, by name."""
        return self.rows(
            "SELECT model_version, feature, kind, method, statistic, p_value, threshold, drifted"
            f" FROM {FEATURE_DRIFT_TABLE} WHERE as_of_date = ?"
            f" ORDER BY {_version_order('model_version')}, drifted DESC,"
            " kind = 'prediction' DESC, feature",
            [as_of_date],
        )

    def feature_names(self) -> list[str]:
        """Every feature (and the prediction) with a drift result, by name."""
        rows = self.rows(f"SELECT DISTINCT feature FROM {FEATURE_DRIFT_TABLE} ORDER BY feature")
        return [str(r["feature"]) for r in rows]

    def histograms(self, as_of_date: dt.date, feature: str) -> list[dict[str, Any]]:
        """The feature's reference and current histograms of the night, by version."""
        return self.rows(
            "SELECT model_version, bins, reference_share, current_share"
            f" FROM {FEATURE_HISTOGRAMS_TABLE} WHERE as_of_date = ? AND feature = ?"
            f" ORDER BY {_version_order('model_version')}",
            [as_of_date, feature],
        )

    def cohorts(self, limit: int = 730) -> list[dict[str, Any]]:
        """Matured cohorts' performance, oldest first (the newest ``limit``)."""
        rows = self.rows(
            f"SELECT {', '.join(COHORT_COLUMNS)} FROM {COHORT_PERFORMANCE_TABLE}"
            " ORDER BY as_of_date DESC LIMIT ?",
            [limit],
        )
        return rows[::-1]

    def retrain_requests(self, triggered_only: bool = True, limit: int = 200) -> list[dict]:
        """Evaluations of the retraining policy, newest first (those where a condition
        held, unless ``triggered_only`` is False)."""
        where = " WHERE triggered OR fired" if triggered_only else ""
        return self.rows(
            "SELECT as_of_date, champion_version, fired, triggered, reasons, held_by_cooldown,"
            f" run_id FROM {RETRAIN_REQUESTS_TABLE}{where} ORDER BY as_of_date DESC LIMIT ?",
            [limit],
        )

    def retrain_evaluations(self) -> tuple[int, int]:
        """(nights the policy was evaluated, nights it asked for a retrain)."""
        rows = self.rows(
            "SELECT count(*) AS evaluations,"
            " sum(CASE WHEN fired THEN 1 ELSE 0 END) AS fired"
            f" FROM {RETRAIN_REQUESTS_TABLE}"
        )
        if not rows:
            return 0, 0
        return int(rows[0]["evaluations"] or 0), int(rows[0]["fired"] or 0)

    def drift_populations(self) -> list[dict[str, Any]]:
        """The drifted populations of the nights whose drift fired the trigger, newest first."""
        return self.rows(
            "SELECT as_of_date, model_version, features, customers, base, labelled,"
            f" labelled_by_chance, labels_since FROM {DRIFT_POPULATION_TABLE}"
            " ORDER BY as_of_date DESC, model_version DESC"
        )


def _version_order(column: str) -> str:
    # Versions are digit strings: the longer is the newer, then by digits (numeric order
    # in SQL both engines speak).
    return f"length({column}) DESC, {column} DESC"


def _night_filters(
    since: dt.date | None, until: dt.date | None, model_version: str | None
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("as_of_date >= ?", since),
        ("as_of_date <= ?", until),
        ("model_version = ?", model_version),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    return where, params


def _where(clauses: list[str]) -> str:
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


# ----------------------------------------------------------------------------- online traffic
# A sample of the real-time service's answers (CHURNOPS_SERVE_SAMPLE_SHARE), one row per
# customer answered: the service buffers them in Redis, the nightly's online_features task
# moves them here (``churnops.online.samples``); the drift report's online section reads them.
ONLINE_REQUESTS = sa.Table(
    "online_requests",
    _metadata,
    sa.Column("sample_id", sa.String, primary_key=True),  # one answer of one request
    sa.Column("requested_at", sa.DateTime, nullable=False),
    sa.Column("customer_id", sa.BigInteger, nullable=False),
    sa.Column("feature_as_of_date", sa.Date),  # the night whose features were served
    sa.Column("churn_probability", sa.Double),
    sa.Column("risk_band", sa.String),
    sa.Column("model_version", sa.String),
    sa.Column("served_by", sa.String),
    sa.Column("stale", sa.Boolean, nullable=False),  # the warehouse's batch score (store down)
    sa.Column("moved_at", sa.DateTime, nullable=False),
)
ONLINE_REQUESTS_TABLE = f"{MONITORING_SCHEMA}.online_requests"


def replace_online_requests(monitoring: MonitoringStore, rows: pa.Table) -> int:
    """Insert sampled answers, replacing any already moved (a retried move)."""
    monitoring.warehouse.ensure(ONLINE_REQUESTS)
    if rows.num_rows == 0:
        return 0
    with monitoring.warehouse.transaction() as session:
        session.replace(ONLINE_REQUESTS, {"sample_id": rows.column("sample_id").to_pylist()}, rows)
    return rows.num_rows


def online_traffic(monitoring: MonitoringStore, as_of_date: dt.date) -> dict[str, Any] | None:
    """The sampled online answers served on the latest night's features up to
    ``as_of_date``, beside that night's batch scores of the same customers; None without
    any."""
    rows = monitoring.rows(
        f"""
        with night as (
            select max(feature_as_of_date) as d from {ONLINE_REQUESTS_TABLE}
            where feature_as_of_date <= ?
        )
        select o.feature_as_of_date as night,
               count(*) as answers,
               count(distinct o.customer_id) as customers,
               sum(case when o.stale then 1 else 0 end) as stale,
               sum(case when o.risk_band = 'high' then 1 else 0 end) as high_band,
               avg(o.churn_probability) as mean_online,
               avg(p.churn_probability) as mean_batch,
               max(abs(o.churn_probability - p.churn_probability)) as max_difference,
               sum(case when o.served_by = 'challenger' then 1 else 0 end) as canary
        from {ONLINE_REQUESTS_TABLE} as o
        inner join night on o.feature_as_of_date = night.d
        left join {PREDICTIONS_TABLE} as p
            on p.as_of_date = o.feature_as_of_date and p.customer_id = o.customer_id
        group by o.feature_as_of_date
        """,
        [as_of_date],
    )
    if not rows:
        return None
    row = rows[0]
    return {k: (float(v) if isinstance(v, float) else v) for k, v in row.items()}
