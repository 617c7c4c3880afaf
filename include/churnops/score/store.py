"""The scoring tables of the warehouse (schema ``scoring``).

- ``predictions``: what was served: one row per active customer per night, with the model
  that served it (``served_by`` champion, or challenger for the canary share), whether the
  retention team contacts the customer tonight under that model's operating point
  (``contact``: ``churnops.score.policy``) and, for the highest risk band, the reason codes.
- ``shadow_predictions``: the challenger's scores for the same customers; never served,
  kept so monitoring can compare the two models on the same nights.
- ``scoring_runs``: one row per scoring attempt (scored or skipped), appended: the nightly
  run's date, rows, duration and state for ``churnops status``.

A night is scored in customer-hash shards (``churnops.sharding``; one shard by default) and
published whole:

- ``night_shards``: the staging table. Each shard's task replaces its own slice (night,
  plan, shard) in one transaction, served and shadow scores side by side; a killed or
  retried shard leaves its slice whole or absent, and nothing a reader sees changes.
- :meth:`ScoringStore.publish_night` then checks that every shard of the plan is staged,
  one row per customer and as many rows as the night's feature rows, and in ONE
  transaction replaces the night in ``predictions`` and ``shadow_predictions`` with the
  staged rows and empties the night's staging. A reader sees the whole previous night or
  the whole new one, never half a night; a failed publish leaves both as they were. The
  ``contact`` flag of a model whose rule is ``capacity`` is set there, over the whole
  night: its top N customers by score (ties to the lower customer_id), which no shard
  alone can tell; shards stage it null.

One row per customer per night is checked before the write (per shard, then in total at
publish), not by a PRIMARY KEY: DuckDB maintains a key's index on every insert and delete,
and replacing a night of 500,000 customers took 2.4 s with it and 0.2 s without (``make
bench BENCH=score``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from churnops.warehouse import MissingTable, Warehouse

if TYPE_CHECKING:
    import pyarrow as pa

SCORING_SCHEMA = "scoring"
_metadata = sa.MetaData(schema=SCORING_SCHEMA)


def _score_columns() -> list[sa.Column[Any]]:
    """Who was scored when, with which probability and band, by which model version
    (new Column objects each call: a Column belongs to one table)."""
    return [
        sa.Column("as_of_date", sa.Date, nullable=False),
        sa.Column("customer_id", sa.BigInteger, nullable=False),
        sa.Column(
            "churn_probability",
            sa.Double,
            sa.CheckConstraint("churn_probability BETWEEN 0 AND 1"),
            nullable=False,
        ),
        sa.Column("risk_band", sa.String, nullable=False),
        sa.Column("model_name", sa.String, nullable=False),
        sa.Column("model_version", sa.String, nullable=False),
    ]


PREDICTIONS = sa.Table(
    "predictions",
    _metadata,
    *_score_columns(),
    sa.Column("served_by", sa.String, nullable=False),  # champion | challenger (canary)
    # Contacted tonight under the serving model's operating point; null only for a version
    # registered without one (no threshold tag).
    sa.Column("contact", sa.Boolean),
    sa.Column("reason_codes", ARRAY(sa.String)),  # top features pushing the score up
    sa.Column("scored_at", sa.DateTime, nullable=False),
)
# The challenger's scores of the same customers: never served.
SHADOW_PREDICTIONS = sa.Table(
    "shadow_predictions",
    _metadata,
    *_score_columns(),
    sa.Column("scored_at", sa.DateTime, nullable=False),
)
SCORING_RUNS = sa.Table(
    "scoring_runs",
    _metadata,
    sa.Column("as_of_date", sa.Date, nullable=False),
    sa.Column("state", sa.String, nullable=False),  # scored | skipped
    sa.Column("rows_scored", sa.BigInteger, nullable=False),
    sa.Column("canary_rows", sa.BigInteger, nullable=False),
    sa.Column("shadow_rows", sa.BigInteger, nullable=False),
    sa.Column("champion_version", sa.String),
    sa.Column("challenger_version", sa.String),
    sa.Column("canary_share", sa.Double, nullable=False),
    sa.Column("seconds", sa.Double, nullable=False),
    sa.Column("message", sa.String, nullable=False),
    sa.Column("run_id", sa.String),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime, nullable=False),
)
# A shard's scores before the night is published: the served columns of ``predictions``
# and the challenger's shadow score of the same customer, keyed by plan and shard.
NIGHT_SHARDS = sa.Table(
    "night_shards",
    _metadata,
    sa.Column("plan_id", sa.String, nullable=False),
    sa.Column("shard", sa.Integer, nullable=False),
    *[sa.Column(c.name, c.type, nullable=c.nullable) for c in PREDICTIONS.columns],
    sa.Column("shadow_probability", sa.Double),  # NULL: no challenger this night
    sa.Column("shadow_risk_band", sa.String),
    sa.Column("shadow_model_version", sa.String),
)
PREDICTIONS_TABLE = f"{SCORING_SCHEMA}.predictions"
SHADOW_PREDICTIONS_TABLE = f"{SCORING_SCHEMA}.shadow_predictions"
SCORING_RUNS_TABLE = f"{SCORING_SCHEMA}.scoring_runs"
NIGHT_SHARDS_TABLE = f"{SCORING_SCHEMA}.night_shards"
PREDICTION_COLUMNS = tuple(c.name for c in PREDICTIONS.columns)
SHADOW_COLUMNS = tuple(c.name for c in SHADOW_PREDICTIONS.columns)


class DuplicateCustomers(ValueError):
    """A night's scores hold a customer twice: nothing is written."""


class IncompleteNight(RuntimeError):
    """The staged shards do not make a whole night: nothing is published."""


def _check_one_row_per_customer(table: pa.Table, what: str) -> None:
    import pyarrow.compute as pc

    ids = table.column("customer_id")
    distinct = len(pc.unique(ids))
    if distinct != table.num_rows:
        raise DuplicateCustomers(
            f"{what}: {table.num_rows - distinct:,} duplicate customer rows among "
            f"{table.num_rows:,}; nothing written (is fct_customer_features unique per "
            "customer and as_of_date?)"
        )


class ScoringStore:
    """The prediction tables and the scoring-run log."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def ensure(self) -> None:
        self.warehouse.ensure(PREDICTIONS, SHADOW_PREDICTIONS, SCORING_RUNS, NIGHT_SHARDS)

    def stage_shard(self, as_of_date: dt.date, plan_id: str, shard: int, scores: pa.Table) -> int:
        """Replace shard ``shard`` of plan ``plan_id`` for the night in the staging table
        (one transaction); ``scores`` has the ``night_shards`` columns but the keys."""
        import pyarrow as pa

        _check_one_row_per_customer(scores, f"shard {shard} of the scores for {as_of_date}")
        keyed = scores.append_column(
            "plan_id", pa.array([plan_id] * scores.num_rows, pa.string())
        ).append_column("shard", pa.array([shard] * scores.num_rows, pa.int32()))
        self.ensure()
        return self.warehouse.replace_partition(
            NIGHT_SHARDS, {"as_of_date": as_of_date, "plan_id": plan_id, "shard": shard}, keyed
        )

    def discard_staged(self, as_of_date: dt.date) -> None:
        """Forget every staged shard of the night (a new plan starts from nothing)."""
        self.ensure()
        with self.warehouse.transaction() as session:
            session.delete(NIGHT_SHARDS, {"as_of_date": as_of_date})

    def publish_night(
        self,
        as_of_date: dt.date,
        plan_id: str,
        shard_rows: Mapping[int, int],
        expected_rows: int,
        contact_capacity: Mapping[str, int] | None = None,
    ) -> dict[str, Any]:
        """Move plan ``plan_id``'s staged shards into the night's prediction tables in one
        transaction, after checking that they make the whole night: each shard of
        ``shard_rows`` (every shard of the plan, with the rows its task staged) is staged
        with exactly those rows, ``expected_rows`` in all, one per customer. Returns the
        published night's counts; :class:`IncompleteNight` (nothing changed) otherwise.

        ``contact_capacity``: the serving models (by ``served_by``) whose rule is
        ``capacity``, with their N: their customers' ``contact`` is set here, the top of
        each one's quota (``policy.contact_quotas``) by score, ties to the lower id."""
        from churnops.score.policy import contact_quotas

        self.ensure()
        key = "as_of_date = ? AND plan_id = ?"
        served = ", ".join(PREDICTION_COLUMNS)
        shadow = ", ".join(
            {
                "churn_probability": "shadow_probability",
                "risk_band": "shadow_risk_band",
                "model_version": "shadow_model_version",
            }.get(column, column)
            for column in SHADOW_COLUMNS
        )
        with self.warehouse.transaction() as session:
            staged = {
                int(r["shard"]): int(r["n"])
                for r in session.rows(
                    f"SELECT shard, count(*) AS n FROM {NIGHT_SHARDS_TABLE} WHERE {key} "
                    "GROUP BY shard",
                    [as_of_date, plan_id],
                )
            }
            differ = sorted(
                shard
                for shard in set(staged) | set(shard_rows)
                if staged.get(shard, 0) != shard_rows.get(shard, -1)
            )
            if differ:
                found = "; ".join(
                    f"shard {s + 1}: {staged.get(s, 0):,} staged, "
                    + (f"{shard_rows[s]:,} scored" if s in shard_rows else "not in the plan")
                    for s in differ
                )
                raise IncompleteNight(
                    f"scores for {as_of_date}: the staged shards are not what was scored "
                    f"({found}); nothing published, the previous predictions stay: run the "
                    "night's scoring again"
                )
            totals = session.rows(
                "SELECT count(*) AS n, count(DISTINCT customer_id) AS customers, "
                "count(shadow_model_version) AS shadow, "
                "sum(CASE WHEN served_by = 'challenger' THEN 1 ELSE 0 END) AS canary, "
                "count(reason_codes) AS reasons "
                f"FROM {NIGHT_SHARDS_TABLE} WHERE {key}",
                [as_of_date, plan_id],
            )[0]
            rows, customers = int(totals["n"]), int(totals["customers"])
            if rows != customers:
                raise DuplicateCustomers(
                    f"scores for {as_of_date}: {rows - customers:,} duplicate customer rows "
                    f"among {rows:,} staged; nothing published"
                )
            if rows != expected_rows:
                raise IncompleteNight(
                    f"scores for {as_of_date}: {rows:,} customers staged, but the night has "
                    f"{expected_rows:,} feature rows (were the features rebuilt while it was "
                    "being scored?); nothing published, the previous predictions stay"
                )
            bands = session.rows(
                f"SELECT risk_band, count(*) AS n FROM {NIGHT_SHARDS_TABLE} WHERE {key} "
                "GROUP BY risk_band ORDER BY risk_band",
                [as_of_date, plan_id],
            )
            quotas = contact_quotas(contact_capacity or {}, int(totals["canary"] or 0), rows)
            session.delete(PREDICTIONS, {"as_of_date": as_of_date})
            source, params = f"{NIGHT_SHARDS_TABLE} WHERE {key}", [as_of_date, plan_id]
            chosen = served
            if quotas:
                # Each capacity model's customers ranked by its score (the served
                # probability), ties to the lower id; its quota's top are contacted.
                cases = " ".join("WHEN served_by = ? THEN contact_rank <= ?" for _ in quotas)
                chosen = ", ".join(
                    f"CASE {cases} ELSE contact END AS contact" if column == "contact" else column
                    for column in PREDICTION_COLUMNS
                )
                source = (
                    "(SELECT *, row_number() OVER (PARTITION BY served_by ORDER BY "
                    f"churn_probability DESC, customer_id) AS contact_rank FROM {source}) AS ranked"
                )
                params = [*(value for quota in quotas.items() for value in quota), *params]
            session.execute(
                f"INSERT INTO {PREDICTIONS_TABLE} ({served}) SELECT {chosen} FROM {source} "
                "ORDER BY customer_id",
                params,
            )
            contacts = session.rows(
                f"SELECT count(*) AS n FROM {PREDICTIONS_TABLE} WHERE as_of_date = ? AND contact",
                [as_of_date],
            )[0]
            session.delete(SHADOW_PREDICTIONS, {"as_of_date": as_of_date})
            session.execute(
                f"INSERT INTO {SHADOW_PREDICTIONS_TABLE} ({', '.join(SHADOW_COLUMNS)}) "
                f"SELECT {shadow} FROM {NIGHT_SHARDS_TABLE} "
                f"WHERE {key} AND shadow_model_version IS NOT NULL ORDER BY customer_id",
                [as_of_date, plan_id],
            )
            session.delete(NIGHT_SHARDS, {"as_of_date": as_of_date})
        return {
            "rows": rows,
            "shadow_rows": int(totals["shadow"]),
            "canary_rows": int(totals["canary"] or 0),
            "reason_rows": int(totals["reasons"]),
            "contact_rows": int(contacts["n"]),
            "band_counts": {str(r["risk_band"]): int(r["n"]) for r in bands},
        }

    def record_run(self, row: dict[str, Any]) -> None:
        """Append one scoring attempt to the run log."""
        import pyarrow as pa

        self.ensure()
        with self.warehouse.transaction() as session:
            session.insert(SCORING_RUNS, pa.Table.from_pylist([row]))

    def night(self, as_of_date: dt.date, shadow: bool = False) -> pa.Table:
        """The night's (shadow) predictions, ordered by customer."""
        table = SHADOW_PREDICTIONS_TABLE if shadow else PREDICTIONS_TABLE
        return self.warehouse.arrow(
            f"SELECT * FROM {table} WHERE as_of_date = ? ORDER BY customer_id", [as_of_date]
        )

    # ------------------------------------------------------------------ the portal's reads
    def band_mix(self, limit_nights: int = 365) -> list[dict[str, Any]]:
        """Customers per night and risk band of the served predictions (the newest
        ``limit_nights`` nights), oldest night first; [] before anything was scored."""
        try:
            return self.warehouse.rows(
                f"SELECT as_of_date, risk_band, count(*) AS customers FROM {PREDICTIONS_TABLE}"
                f" WHERE as_of_date IN (SELECT DISTINCT as_of_date FROM {PREDICTIONS_TABLE}"
                "  ORDER BY as_of_date DESC LIMIT ?)"
                " GROUP BY as_of_date, risk_band ORDER BY as_of_date, risk_band",
                [limit_nights],
            )
        except MissingTable:
            return []

    def score_trend(self, limit_nights: int = 365) -> list[dict[str, Any]]:
        """Per night: customers scored, mean served probability, customers contacted,
        canary rows; oldest night first."""
        try:
            rows = self.warehouse.rows(
                "SELECT as_of_date, count(*) AS customers,"
                " avg(churn_probability) AS mean_probability,"
                " sum(CASE WHEN contact THEN 1 ELSE 0 END) AS contacted,"
                " sum(CASE WHEN served_by = 'challenger' THEN 1 ELSE 0 END) AS canary"
                f" FROM {PREDICTIONS_TABLE} GROUP BY as_of_date"
                " ORDER BY as_of_date DESC LIMIT ?",
                [limit_nights],
            )
        except MissingTable:
            return []
        return rows[::-1]

    def latest_predictions(self, customer_ids: list[int]) -> dict[int, dict[str, Any]]:
        """Each customer's prediction of the latest night that scored them (the real-time
        service's answer, marked stale, while its online store is down)."""
        if not customer_ids:
            return {}
        placeholders = ", ".join("?" for _ in customer_ids)
        rows = self.warehouse.rows(
            "SELECT * FROM (SELECT as_of_date, customer_id, churn_probability, risk_band, "
            "contact, model_name, model_version, served_by, reason_codes, row_number() OVER "
            "(PARTITION BY customer_id ORDER BY as_of_date DESC) AS newest "
            f"FROM {PREDICTIONS_TABLE} WHERE customer_id IN ({placeholders})) AS latest "
            "WHERE newest = 1",
            [int(i) for i in customer_ids],
        )
        return {int(row["customer_id"]): dict(row) for row in rows}
