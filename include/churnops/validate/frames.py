"""Reading a drop before any expectation runs: can it be read at all, and combined?

The readability step rejects, without Great Expectations, what no expectation could judge:
a missing drop folder, a folder without Parquet files, an empty (zero-byte) or truncated
or otherwise unreadable file, a column whose values cannot be cast to the contract's type,
files of one drop that disagree on their schema, and dates pandas cannot represent.

What passes is one Arrow table per drop (the files in name order) and its pandas image for
GX, built by :func:`to_validation_frame`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from churnops.contracts import TableContract, arrow_type
from churnops.errors import one_line
from churnops.validate.failures import Failure

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from churnops.storage import Location

# Readability rules (the GX rules are named by their expectation type).
DROP_PRESENT = "drop_present"
PARQUET_FILES_PRESENT = "parquet_files_present"
FILE_NOT_EMPTY = "file_not_empty"
READABLE_PARQUET = "readable_parquet"
CASTABLE_SCHEMA = "castable_schema"
CONSISTENT_SCHEMA = "consistent_schema"
REPRESENTABLE_DATES = "representable_dates"
UNIQUE_COLUMN_NAMES = "unique_column_names"

# pandas datetime64[ns] covers 1677-09-22 .. 2262-04-11; dates outside are garbage anyway.
_MIN_NS_DATE = dt.date(1677, 9, 22)
_MAX_NS_DATE = dt.date(2262, 4, 10)


@dataclass(frozen=True)
class DropFile:
    name: str
    size_bytes: int
    rows: int | None = None


@dataclass
class ReadDrop:
    """A drop as read from disk: its files, their rows (when readable) and what was wrong."""

    folder: Location
    files: list[DropFile] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    table: pa.Table | None = None  # all files combined, when readable

    @property
    def readable(self) -> bool:
        return not self.failures and self.table is not None

    def file_offsets(self) -> list[tuple[str, int, int]]:
        """(file name, first row, end row) of every file within ``table``."""
        spans, start = [], 0
        for f in self.files:
            rows = f.rows or 0
            spans.append((f.name, start, start + rows))
            start += rows
        return spans


def read_drop(folder: Location, contract: TableContract) -> ReadDrop:
    """Read every Parquet file of a drop folder (local, or on the shared files' object
    store), rejecting what cannot be read or combined."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from churnops.storage import glob, read_parquet

    drop = ReadDrop(folder=folder)
    if not folder.is_dir():
        drop.failures.append(Failure(rule=DROP_PRESENT, detail=f"no drop folder {folder}"))
        return drop
    paths = glob(folder, "*.parquet")
    if not paths:
        others = [p.name for p in glob(folder, "*")]
        seen = f" (found: {', '.join(others[:5])})" if others else " (the folder is empty)"
        drop.failures.append(
            Failure(rule=PARQUET_FILES_PRESENT, detail=f"no *.parquet file in {folder}{seen}")
        )
        return drop

    tables: list[pa.Table] = []
    for path in paths:
        size = path.stat().st_size
        if size == 0:
            drop.files.append(DropFile(path.name, size))
            drop.failures.append(
                Failure(rule=FILE_NOT_EMPTY, file=path.name, detail="the file has 0 bytes")
            )
            continue
        try:
            data = read_parquet(path)
        except (pa.ArrowException, OSError, ValueError) as error:
            drop.files.append(DropFile(path.name, size))
            drop.failures.append(
                Failure(
                    rule=READABLE_PARQUET,
                    file=path.name,
                    detail=f"cannot be read as Parquet ({size:,} bytes; truncated or corrupt): "
                    f"{one_line(error, 200)}",
                )
            )
            continue
        drop.files.append(DropFile(path.name, size, data.num_rows))
        tables.append(data)
        repeated = sorted({c for c in data.column_names if data.column_names.count(c) > 1})
        if repeated:
            drop.failures.append(
                Failure(
                    rule=UNIQUE_COLUMN_NAMES,
                    file=path.name,
                    column=", ".join(repeated),
                    detail="the file has several columns of this name",
                )
            )
            continue
        drop.failures.extend(_cast_failures(path.name, data, contract, pc))
    if drop.failures:
        return drop

    first = tables[0].schema
    for f, t in zip(drop.files[1:], tables[1:], strict=True):
        if _shape(t.schema) != _shape(first):
            drop.failures.append(
                Failure(
                    rule=CONSISTENT_SCHEMA,
                    file=f.name,
                    detail=f"schema differs from {drop.files[0].name}: "
                    f"{_schema_diff(first, t.schema)}",
                )
            )
    if drop.failures:
        return drop

    # Same names and types; nullability flags and metadata may differ between writers.
    combined = pa.concat_tables([t.cast(first) for t in tables]) if len(tables) > 1 else tables[0]
    drop.failures.extend(_date_range_failures(drop, combined, pc))
    if not drop.failures:
        drop.table = combined
    return drop


def _cast_failures(name: str, data: pa.Table, contract: TableContract, pc) -> list[Failure]:
    """Contract columns whose values cannot be cast to the contract's type at all.

    A column that can be cast but has another type still fails: GX's
    ``expect_column_type_to_be`` reports it (the contract asks for the exact type).
    """
    failures = []
    for spec in contract.columns:
        if spec.name not in data.column_names:
            continue
        target = arrow_type(spec.arrow_type)
        column = data.column(spec.name)
        if column.type.equals(target):
            continue
        try:
            pc.cast(column, target, safe=True)
        except Exception as error:  # noqa: BLE001 - pyarrow raises several types here
            failures.append(
                Failure(
                    rule=CASTABLE_SCHEMA,
                    file=name,
                    column=spec.name,
                    row_count=data.num_rows,
                    detail=f"is {column.type}, cannot be cast to {spec.arrow_type}: {one_line(error, 200)}",
                )
            )
    return failures


def _shape(schema: pa.Schema) -> list[tuple[str, str]]:
    return [(f.name, str(f.type)) for f in schema]


def _schema_diff(a: pa.Schema, b: pa.Schema) -> str:
    a_types = {f.name: str(f.type) for f in a}
    b_types = {f.name: str(f.type) for f in b}
    parts = [f"missing {n!r}" for n in a_types if n not in b_types]
    parts += [f"extra {n!r}" for n in b_types if n not in a_types]
    parts += [
        f"{n!r} is {b_types[n]} not {t}"
        for n, t in a_types.items()
        if n in b_types and b_types[n] != t
    ]
    return ", ".join(parts) or "column order differs"


def _date_range_failures(drop: ReadDrop, table: pa.Table, pc) -> list[Failure]:
    import pyarrow as pa

    failures = []
    for f in table.schema:
        if not f.type.equals(pa.date32()):
            continue
        column = table.column(f.name)
        bad = pc.or_(
            pc.less(column, pa.scalar(_MIN_NS_DATE, pa.date32())),
            pc.greater(column, pa.scalar(_MAX_NS_DATE, pa.date32())),
        )
        count = pc.sum(bad).as_py() or 0
        if count:
            samples = column.filter(pc.fill_null(bad, False)).slice(0, 3).to_pylist()
            failures.append(
                Failure(
                    rule=REPRESENTABLE_DATES,
                    file=", ".join(x.name for x in drop.files),
                    column=f.name,
                    unexpected_count=count,
                    row_count=table.num_rows,
                    samples=tuple(str(s) for s in samples),
                    detail=f"dates outside {_MIN_NS_DATE} .. {_MAX_NS_DATE}",
                )
            )
    return failures


def _frame_dtype(t: pa.DataType):
    """The pandas dtype of an Arrow type in the validation frame (None: pyarrow's default).

    One-to-one on the contract's type names (see suites.PANDAS_DTYPES); every other Arrow
    type keeps its own ``ArrowDtype`` so a wrong type can never pass for a right one.
    """
    import pandas as pd
    import pyarrow as pa

    if t.equals(pa.int64()):
        return pd.Int64Dtype()
    if t.equals(pa.int32()):
        return pd.Int32Dtype()
    if t.equals(pa.bool_()):
        return pd.BooleanDtype()
    if t.equals(pa.float64()) or t.equals(pa.string()) or t.equals(pa.date32()):
        return None  # float64, object, datetime64 (date_as_object=False)
    if t.equals(pa.timestamp("us")):
        return None  # datetime64[us]
    return pd.ArrowDtype(t)


def to_validation_frame(table: pa.Table) -> pd.DataFrame:
    """The pandas frame GX validates: nullable ints, dates as datetime64[ns] (fast to compare)."""
    import pyarrow as pa

    frame = table.to_pandas(
        types_mapper=_frame_dtype, date_as_object=False, coerce_temporal_nanoseconds=False
    )
    for f in table.schema:
        if f.type.equals(pa.date32()):
            # GX compares only int64/float64 and datetime64[ns] columns vectorized; the range
            # was checked in read_drop, so the conversion cannot overflow.
            frame[f.name] = frame[f.name].astype("datetime64[ns]")
    return frame
