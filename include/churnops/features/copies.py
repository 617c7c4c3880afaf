"""Columnar copies of the labelled training snapshots, one Parquet file per as-of date.

Why: training reads about a dozen snapshots of every customer's 48 features (6 M rows at
500,000 customers). DuckDB hands them over as Arrow from its column store; PostgreSQL has
to produce them row by row and send each value through its binary protocol, which alone
takes about twice DuckDB's whole load. A labelled snapshot no longer changes once its
label has matured, unless dbt rebuilds its as-of date (a reprocessed backfill), so a copy
written once serves every later training, on either engine.

A copy is only ever read while it is what the marts hold. Its name carries a fingerprint
(:func:`snapshot_fingerprint`) of

- every build of the two marts that covered its as-of date, from the marts' write log
  (``marts.as_of_writes``, written by a dbt post-hook in the same transaction as the build:
  ``dbt_project/macros/as_of.sql``), so any later build of the date, by whoever ran it,
  changes the fingerprint;
- the columns and types of the snapshot (a column dbt adds makes every copy stale);
- the warehouse it was read from (``Warehouse.describe()``: engine, file or host and
  database), so two warehouses never read each other's copies, even with the same log;
- :data:`COPY_FORMAT`, to be raised when the snapshot query or the file layout changes.

A copy whose fingerprint differs is never read; the read goes to the warehouse and writes
a fresh copy (and removes the stale one). The fingerprint is read before the rows, so a
build that commits in between leaves a copy that is stale at once, never one that is
wrong. Copies live in the shared files (``CHURNOPS_DATA_URL``, area ``training``), so every
worker sees the same ones; each is written whole (temporary name, then rename; one PUT on
an object store).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from churnops.errors import one_line
from churnops.storage import Location, file_names, read_parquet, remove_tree, write_parquet

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

# Raise when the labelled-snapshot query (churnops.features.store) or the file layout
# changes: every copy written before is then stale.
COPY_FORMAT = 1
# Snappy, pyarrow's default. One snapshot at 500,000 customers (49 columns): 27.2 MB,
# written in 0.48 s, read in 0.16 s; zstd: 23.5 MB for about 10 % more time each way.
COMPRESSION = "snappy"


def snapshot_fingerprint(
    as_of_date: dt.date, builds: Iterable[tuple[str, str]], schema: pa.Schema, source: str
) -> str:
    """The fingerprint of an as-of date's labelled snapshot (pure): its date, the
    (mart, dbt invocation id) of every build that covered it, sorted, the snapshot's
    columns and types, the warehouse ``source``, and :data:`COPY_FORMAT`. 16 hex digits
    of a SHA-256."""
    digest = hashlib.sha256()
    digest.update(f"format {COPY_FORMAT}\n{as_of_date.isoformat()}\n{source}\n".encode())
    for model, invocation in sorted(set(builds)):
        digest.update(f"build {model} {invocation}\n".encode())
    for field in schema:
        digest.update(f"column {field.name} {field.type}\n".encode())
    return digest.hexdigest()[:16]


class SnapshotCopies:
    """The copies under ``folder``: ``<folder>/<as-of date>/<fingerprint>.parquet``."""

    def __init__(self, folder: Location) -> None:
        self.folder = folder

    def __repr__(self) -> str:
        return f"SnapshotCopies({str(self.folder)!r})"

    def _path(self, as_of_date: dt.date, fingerprint: str) -> Location:
        return self.folder / as_of_date.isoformat() / f"{fingerprint}.parquet"

    def has(self, as_of_date: dt.date, fingerprint: str) -> bool:
        return self._path(as_of_date, fingerprint).exists()

    def read(self, as_of_date: dt.date, fingerprint: str) -> pa.Table | None:
        """The copy of ``as_of_date`` with this fingerprint, or None when there is none or
        it cannot be read (a warning says why; the caller reads the warehouse instead)."""
        path = self._path(as_of_date, fingerprint)
        try:
            if not path.exists():
                return None
            return read_parquet(path)
        except FileNotFoundError:  # removed by a concurrent writer's clean-up
            return None
        except Exception as error:  # a copy is only ever a shortcut: never fail the read
            log.warning(
                "the training copy %s cannot be read, so the warehouse is: %s",
                path,
                one_line(error, with_type=True),
            )
            return None

    def write(self, as_of_date: dt.date, fingerprint: str, table: pa.Table) -> bool:
        """Write ``table`` as the copy of ``as_of_date`` (whole), then remove that date's
        copies with any other fingerprint. False, with a warning, when the shared files
        cannot take it (the training goes on without the copy)."""
        path = self._path(as_of_date, fingerprint)
        try:
            write_parquet(table, path, compression=COMPRESSION)
            for name in file_names(path.parent, "*.parquet"):
                if name != path.name:
                    remove_tree(path.parent / name)
        except Exception as error:  # a copy is only ever a shortcut: never fail the training
            log.warning("no training copy written to %s: %s", path, one_line(error, with_type=True))
            return False
        return True

    def as_of_dates(self) -> list[dt.date]:
        """The as-of dates that have a copy (of any fingerprint), oldest first."""
        if not self.folder.is_dir():
            return []
        days = []
        for entry in self.folder.iterdir():
            try:
                days.append(dt.date.fromisoformat(entry.name))
            except ValueError:
                continue  # not a copy's folder
        return sorted(days)

    def remove_before(self, as_of_date: dt.date) -> list[dt.date]:
        """Remove the copies of every as-of date before ``as_of_date``; the dates removed."""
        removed = [day for day in self.as_of_dates() if day < as_of_date]
        for day in removed:
            remove_tree(self.folder / day.isoformat())
        return removed


def split_by_date(table: pa.Table, dates: Sequence[dt.date]) -> dict[dt.date, pa.Table]:
    """The rows of ``table`` (ordered by as_of_date) per as-of date of ``dates``, as
    zero-copy slices; a date without rows is left out."""
    import numpy as np
    import pyarrow as pa

    days = table.column("as_of_date").cast(pa.int32()).to_numpy()
    parts: dict[dt.date, pa.Table] = {}
    epoch = dt.date(1970, 1, 1)
    for day in dates:
        number = (day - epoch).days
        first, end = np.searchsorted(days, number, "left"), np.searchsorted(days, number, "right")
        if end > first:
            parts[day] = table.slice(int(first), int(end - first))
    return parts
