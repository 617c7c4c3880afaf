"""The feature marts dbt builds (schema ``marts``), read through the warehouse resource.

dbt owns these tables and their DDL (``dbt_project/models/marts``); this store only reads
them: a night's feature rows for scoring, and features joined with matured labels for
training.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from churnops.ingest.store import LOADED_DROPS_TABLE
from churnops.warehouse import Warehouse

if TYPE_CHECKING:
    import pyarrow as pa

FEATURES_TABLE = "marts.fct_customer_features"
LABELS_TABLE = "marts.fct_churn_labels"
LABEL_COLUMN = "churned_within_90d"


class FeatureStore:
    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def night(self, as_of_date: dt.date) -> pa.Table:
        """The night's feature rows (one per active customer), ordered by customer."""
        return self.warehouse.arrow(
            f"SELECT * FROM {FEATURES_TABLE} WHERE as_of_date = ? ORDER BY customer_id",
            [as_of_date],
        )

    def labelled_snapshots(
        self,
        as_of_start: dt.date | None,
        as_of_end: dt.date | None,
        every_days: int,
        first_whole_window_after: int | None,
    ) -> pa.Table:
        """Features joined with matured labels, one as-of date every ``every_days`` days
        counted back from the latest labelled one, ordered by as_of_date, customer_id.

        Arrow, not pandas: the caller converts millions of rows once, the way it needs
        (``churnops.train.frame.load_training_frame``).

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
                select distinct as_of_date
                from {LABELS_TABLE}
                where as_of_date between coalesce(cast(? as date), date '0001-01-01')
                    and coalesce(cast(? as date), date '9999-12-31')
                  and as_of_date >= {floor}
            ),
            snapshots as (
                select as_of_date
                from labelled_dates
                where ((select max(as_of_date) from labelled_dates) - as_of_date)
                    % cast(? as integer) = 0
            )
            select features.*, labels.{LABEL_COLUMN}
            from {FEATURES_TABLE} as features
            inner join {LABELS_TABLE} as labels
                on features.as_of_date = labels.as_of_date
                and features.customer_id = labels.customer_id
            where features.as_of_date in (select as_of_date from snapshots)
            order by features.as_of_date, features.customer_id
        """
        return self.warehouse.arrow(sql, [as_of_start, as_of_end, every_days])
