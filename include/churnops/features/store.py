"""The feature marts dbt builds (schema ``marts``), read through the warehouse resource.

dbt owns these tables and their DDL (``dbt_project/models/marts``); this store only reads
them: a night's feature rows for scoring, and features joined with matured labels for
training.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from churnops.ingest.store import LOADED_DROPS_TABLE
from churnops.settings import LABEL_COLUMN
from churnops.sharding import ShardSpec, sql_predicate
from churnops.warehouse import Warehouse

if TYPE_CHECKING:
    import pyarrow as pa

FEATURES_TABLE = "marts.fct_customer_features"
LABELS_TABLE = "marts.fct_churn_labels"


class FeatureStore:
    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def night(self, as_of_date: dt.date, shard: ShardSpec | None = None) -> pa.Table:
        """The night's feature rows (one per active customer), ordered by customer; with
        ``shard``, only that shard's customers (``churnops.sharding``)."""
        where = sql_predicate("customer_id", shard) if shard else "TRUE"
        return self.warehouse.arrow(
            f"SELECT * FROM {FEATURES_TABLE} WHERE as_of_date = ? AND {where} ORDER BY customer_id",
            [as_of_date],
        )

    def night_rows(self, as_of_date: dt.date) -> int:
        """How many customers the night's feature rows hold."""
        return int(
            self.warehouse.tuples(
                f"SELECT count(*) FROM {FEATURES_TABLE} WHERE as_of_date = ?", [as_of_date]
            )[0][0]
        )

    def labelled_snapshot_rows(
        self,
        as_of_start: dt.date | None,
        as_of_end: dt.date | None,
        every_days: int,
        first_whole_window_after: int | None,
    ) -> dict[dt.date, tuple[int, int]]:
        """The training snapshots: one as-of date every ``every_days`` days, counted back
        from the latest labelled one in [as_of_start, as_of_end] (None: open-ended), each
        with its labelled rows and churners. Oldest first.

        Read from the labels alone (one pass, no join): the training split is planned on
        these dates before any feature row is read, so rows it would drop are never loaded.
        ``first_whole_window_after``: only as-of dates at least that many days after the
        first loaded drop (whose feature windows are whole); None for every date.
        Raises :class:`MissingTable` when dbt has not built the marts yet.
        """
        floor = (
            f"(select min(drop_date) + {int(first_whole_window_after)} from {LOADED_DROPS_TABLE})"
            if first_whole_window_after is not None
            else "date '0001-01-01'"
        )
        sql = f"""
            with labelled_dates as (
                select
                    as_of_date,
                    count(*) as labelled_rows,
                    sum({LABEL_COLUMN}) as churners
                from {LABELS_TABLE}
                where as_of_date between coalesce(cast(? as date), date '0001-01-01')
                    and coalesce(cast(? as date), date '9999-12-31')
                  and as_of_date >= {floor}
                group by as_of_date
            )
            select as_of_date, labelled_rows, churners
            from labelled_dates
            where ((select max(as_of_date) from labelled_dates) - as_of_date)
                % cast(? as integer) = 0
            order by as_of_date
        """
        return {
            day: (int(rows), int(churners))
            for day, rows, churners in self.warehouse.tuples(
                sql, [as_of_start, as_of_end, every_days]
            )
        }

    def labelled_snapshots(self, as_of_dates: Sequence[dt.date]) -> pa.Table:
        """Features joined with matured labels on the given as-of dates, ordered by
        as_of_date, customer_id (the training frame's rows).

        Arrow, not pandas: the caller converts millions of rows once, the way it needs
        (``churnops.train.frame.load_training_frame``).
        Raises :class:`MissingTable` when dbt has not built the marts yet.
        """
        dates = sorted(set(as_of_dates))
        if not dates:
            raise ValueError("labelled_snapshots needs at least one as-of date")
        placeholders = ", ".join("?" for _ in dates)
        sql = f"""
            select features.*, labels.{LABEL_COLUMN}
            from {FEATURES_TABLE} as features
            inner join {LABELS_TABLE} as labels
                on features.as_of_date = labels.as_of_date
                and features.customer_id = labels.customer_id
            where features.as_of_date in ({placeholders})
              and labels.as_of_date in ({placeholders})
            order by features.as_of_date, features.customer_id
        """
        return self.warehouse.arrow(sql, [*dates, *dates])
