"""The feature marts dbt builds (schema ``marts``), read through the warehouse resource.

dbt owns these tables and their DDL (``dbt_project/models/marts``), and their write log
``marts.as_of_writes`` (a post-hook of each mart); this store only reads them: a night's
feature rows for scoring, and features joined with matured labels for training, through
their columnar copies when it has them (``churnops.features.copies``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from churnops.ingest.store import LOADED_DROPS_TABLE
from churnops.settings import LABEL_COLUMN
from churnops.sharding import ShardSpec, sql_predicate
from churnops.warehouse import MissingTable, Warehouse

if TYPE_CHECKING:
    import pyarrow as pa

    from churnops.features.copies import SnapshotCopies

log = logging.getLogger(__name__)

FEATURES_TABLE = "marts.fct_customer_features"
LABELS_TABLE = "marts.fct_churn_labels"
# One row per build of a mart: (model, as_of_start, as_of_end, invocation_id, written_at);
# dbt_project/macros/as_of.sql writes it.
AS_OF_WRITES_TABLE = "marts.as_of_writes"
# Each labelled as-of date's rows and churners, kept by fct_churn_labels' post_hooks in the
# build's transaction (dbt_project/macros/as_of.sql: record_label_counts).
LABEL_COUNTS_TABLE = "marts.label_counts"
# The models whose builds a labelled snapshot depends on (their table names).
SNAPSHOT_MODELS = (FEATURES_TABLE.split(".")[1], LABELS_TABLE.split(".")[1])
# Snapshots the nightly copies per warehouse read (FeatureStore.keep_snapshot_copies).
COPY_BATCH_DATES = 4
# Features joined with matured labels on a set of as-of dates ({dates}: their placeholders),
# the training frame's rows in its order. Changing it: raise copies.COPY_FORMAT.
LABELLED_SNAPSHOTS_SQL = f"""
    select features.*, labels.{LABEL_COLUMN}
    from {FEATURES_TABLE} as features
    inner join {LABELS_TABLE} as labels
        on features.as_of_date = labels.as_of_date
        and features.customer_id = labels.customer_id
    where features.as_of_date in ({{dates}})
      and labels.as_of_date in ({{dates}})
    order by features.as_of_date, features.customer_id
"""


class FeatureStore:
    def __init__(self, warehouse: Warehouse, copies: SnapshotCopies | None = None) -> None:
        """``copies``: where the labelled snapshots' columnar copies are kept (None: every
        training read goes to the warehouse)."""
        self.warehouse = warehouse
        self.copies = copies

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

        Read from the counts dbt keeps beside the labels (``marts.label_counts``, one row
        a date), or from the labels when a build before it left none: the training split
        is planned on these dates before any feature row is read, so rows it would drop
        are never loaded.
        ``first_whole_window_after``: only as-of dates at least that many days after the
        first loaded drop (whose feature windows are whole); None for every date.
        Raises :class:`MissingTable` when dbt has not built the marts yet.
        """
        floor = (
            f"(select min(drop_date) + {int(first_whole_window_after)} from {LOADED_DROPS_TABLE})"
            if first_whole_window_after is not None
            else "date '0001-01-01'"
        )
        counted_from_labels = f"""
            select as_of_date, count(*) as labelled_rows, sum({LABEL_COLUMN}) as churners
            from {LABELS_TABLE}
            group by as_of_date
        """
        sql = """
            with labelled_dates as (
                select as_of_date, labelled_rows, churners
                from ({counts}) as counts
                where as_of_date between coalesce(cast(? as date), date '0001-01-01')
                    and coalesce(cast(? as date), date '9999-12-31')
                  and as_of_date >= {floor}
            )
            select as_of_date, labelled_rows, churners
            from labelled_dates
            where ((select max(as_of_date) from labelled_dates) - as_of_date)
                % cast(? as integer) = 0
            order by as_of_date
        """
        params = [as_of_start, as_of_end, every_days]
        try:
            # The counts dbt keeps: one row a date, not a pass over every label.
            found = self.warehouse.tuples(
                sql.format(counts=f"select * from {LABEL_COUNTS_TABLE}", floor=floor), params
            )
        except MissingTable:
            # Labels built by a version without it, until their next build creates it.
            found = self.warehouse.tuples(
                sql.format(counts=counted_from_labels, floor=floor), params
            )
        return {day: (int(rows), int(churners)) for day, rows, churners in found}

    def labelled_snapshots(self, as_of_dates: Sequence[dt.date]) -> pa.Table:
        """Features joined with matured labels on the given as-of dates, ordered by
        as_of_date, customer_id (the training frame's rows).

        With copies, each date whose copy is what the marts hold now is read from it; the
        rest from the warehouse in one query, and a copy of each is written for the next
        read. The rows are the same either way (tests/integration/test_snapshot_copies.py).
        Arrow, not pandas: the caller converts millions of rows once, the way it needs
        (``churnops.train.frame.load_training_frame``).
        Raises :class:`MissingTable` when dbt has not built the marts yet.
        """
        import pyarrow as pa

        dates = sorted(set(as_of_dates))
        if not dates:
            raise ValueError("labelled_snapshots needs at least one as-of date")
        if self.copies is None:
            return self._labelled_snapshots_from_warehouse(dates)
        began = time.perf_counter()
        # Fingerprints before rows: a build committing in between leaves a stale copy, never
        # a wrong one (churnops.features.copies).
        fingerprints = self.snapshot_fingerprints(dates)
        parts: dict[dt.date, pa.Table] = {}
        for day in dates:
            fingerprint = fingerprints.get(day)
            copy = self.copies.read(day, fingerprint) if fingerprint else None
            if copy is not None:
                parts[day] = copy
        from_copies = len(parts)
        missing = [day for day in dates if day not in parts]
        written = 0
        if missing:
            from churnops.features.copies import split_by_date

            fresh = self._labelled_snapshots_from_warehouse(missing)
            for day, rows in split_by_date(fresh, missing).items():
                parts[day] = rows
                fingerprint = fingerprints.get(day)
                if fingerprint and self.copies.write(day, fingerprint, rows):
                    written += 1
        log.info(
            "labelled snapshots: %d as-of dates from their columnar copies, %d from the "
            "warehouse (%d copies written) in %.1f s",
            from_copies,
            len(missing),
            written,
            time.perf_counter() - began,
        )
        if not parts:
            return self._labelled_snapshots_from_warehouse(dates)  # no rows: its schema
        return pa.concat_tables([parts[day] for day in dates if day in parts])

    def _labelled_snapshots_from_warehouse(self, dates: Sequence[dt.date]) -> pa.Table:
        placeholders = ", ".join("?" for _ in dates)
        return self.warehouse.arrow(
            LABELLED_SNAPSHOTS_SQL.format(dates=placeholders), [*dates, *dates]
        )

    def snapshot_fingerprints(self, as_of_dates: Sequence[dt.date]) -> dict[dt.date, str]:
        """The fingerprint of each as-of date's labelled snapshot as the marts hold it now
        (``churnops.features.copies.snapshot_fingerprint``): from the write log and the
        snapshot's columns. A date no build of both marts covers has none (its rows come
        from the warehouse and no copy is kept), as has every date when the marts predate
        the write log."""
        from churnops.features.copies import snapshot_fingerprint

        try:
            builds = self.warehouse.tuples(
                f"SELECT model, as_of_start, as_of_end, invocation_id FROM {AS_OF_WRITES_TABLE}"
            )
        except MissingTable:
            return {}
        schema = self.warehouse.arrow(
            LABELLED_SNAPSHOTS_SQL.format(dates="null") + " limit 0"
        ).schema
        source = self.warehouse.describe()
        fingerprints: dict[dt.date, str] = {}
        for day in as_of_dates:
            covering = [
                (model, invocation)
                for model, start, end, invocation in builds
                if start <= day <= end
            ]
            if {model for model, _ in covering} >= set(SNAPSHOT_MODELS):
                fingerprints[day] = snapshot_fingerprint(day, covering, schema, source)
        return fingerprints

    def keep_snapshot_copies(self, as_of_dates: Sequence[dt.date], keep_from: dt.date) -> dict:
        """Write the copies of ``as_of_dates`` that are missing or stale (the nightly: the
        as-of date whose label matured tonight), then remove the copies of dates before
        ``keep_from`` (older than any default training reads). What it did, for the log."""
        if self.copies is None:
            return {"copies": "off"}
        if not as_of_dates:
            return {"copies_written": []}
        # One index probe per date (EXISTS), not a scan of every labelled row of them.
        probes = " UNION ALL ".join(
            f"SELECT CAST(? AS DATE) AS as_of_date WHERE EXISTS "
            f"(SELECT 1 FROM {LABELS_TABLE} WHERE as_of_date = ?)"
            for _ in as_of_dates
        )
        try:
            labelled = [
                day
                for (day,) in self.warehouse.tuples(
                    probes, [value for day in as_of_dates for value in (day, day)]
                )
            ]
        except MissingTable:
            return {"copies_written": [], "why": f"no {LABELS_TABLE} yet"}
        fingerprints = self.snapshot_fingerprints(labelled)
        stale = [
            day
            for day in sorted(labelled)
            if day in fingerprints and not self.copies.has(day, fingerprints[day])
        ]
        rows = 0
        # A few dates per read: after a bootstrap a night may copy dozens of snapshots, and
        # at 500,000 customers each is about 400 MB in memory.
        for first in range(0, len(stale), COPY_BATCH_DATES):
            rows += self.labelled_snapshots(stale[first : first + COPY_BATCH_DATES]).num_rows
        written = [day for day in stale if self.copies.has(day, fingerprints[day])]
        removed = self.copies.remove_before(keep_from)
        return {
            "copies_written": [day.isoformat() for day in written],
            "rows_read": rows,
            "copies_failed": [day.isoformat() for day in stale if day not in written],
            "already_current": [d.isoformat() for d in sorted(labelled) if d not in stale],
            "copies_removed": len(removed),
        }
