"""The readability step: what cannot be read or combined is rejected before GX runs."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnops.contracts import SUPPORT_TICKETS, USAGE_DAILY
from churnops.landing import drop_dir
from churnops.validate.frames import (
    CASTABLE_SCHEMA,
    CONSISTENT_SCHEMA,
    DROP_PRESENT,
    FILE_NOT_EMPTY,
    PARQUET_FILES_PRESENT,
    READABLE_PARQUET,
    REPRESENTABLE_DATES,
    UNIQUE_COLUMN_NAMES,
    read_drop,
)
from tests.landing_drops import valid_table, write_drop

pytestmark = pytest.mark.unit

DAY = dt.date(2025, 3, 4)


def _folder(root):
    return drop_dir(root, USAGE_DAILY.name, DAY)


def _rules(drop):
    return [f.rule for f in drop.failures]


def test_a_valid_drop_is_read_whole(tmp_path):
    write_drop(tmp_path, "usage_daily", DAY, valid_table(USAGE_DAILY, DAY, 30), "part-0.parquet")
    write_drop(tmp_path, "usage_daily", DAY, valid_table(USAGE_DAILY, DAY, 20), "part-1.parquet")
    drop = read_drop(_folder(tmp_path), USAGE_DAILY)
    assert drop.readable and drop.table is not None and drop.table.num_rows == 50
    assert drop.file_offsets() == [("part-0.parquet", 0, 30), ("part-1.parquet", 30, 50)]


def test_missing_folder(tmp_path):
    drop = read_drop(_folder(tmp_path), USAGE_DAILY)
    assert _rules(drop) == [DROP_PRESENT]
    assert str(_folder(tmp_path)) in drop.failures[0].sentence()


def test_folder_without_parquet(tmp_path):
    _folder(tmp_path).mkdir(parents=True)
    (_folder(tmp_path) / "part-0.csv").write_text("a,b\n")
    drop = read_drop(_folder(tmp_path), USAGE_DAILY)
    assert _rules(drop) == [PARQUET_FILES_PRESENT]
    assert "part-0.csv" in drop.failures[0].sentence()


def test_zero_byte_file(tmp_path):
    _folder(tmp_path).mkdir(parents=True)
    (_folder(tmp_path) / "part-0.parquet").write_bytes(b"")
    drop = read_drop(_folder(tmp_path), USAGE_DAILY)
    assert _rules(drop) == [FILE_NOT_EMPTY]
    assert drop.failures[0].file == "part-0.parquet"


def test_truncated_file(tmp_path):
    path = write_drop(tmp_path, "usage_daily", DAY, valid_table(USAGE_DAILY, DAY, 200))
    path.write_bytes(path.read_bytes()[:-100])
    drop = read_drop(_folder(tmp_path), USAGE_DAILY)
    assert _rules(drop) == [READABLE_PARQUET]
    assert drop.failures[0].sentence().startswith("part-0.parquet readable_parquet: cannot be read")
    assert drop.table is None


def test_values_that_cannot_be_cast(tmp_path):
    data = valid_table(USAGE_DAILY, DAY, 3)
    i = data.schema.get_field_index("calls")
    data = data.set_column(i, "calls", pa.array(["1", "two", "3"]))
    write_drop(tmp_path, "usage_daily", DAY, data)
    drop = read_drop(_folder(tmp_path), USAGE_DAILY)
    [failure] = drop.failures
    assert (failure.rule, failure.column, failure.file) == (
        CASTABLE_SCHEMA,
        "calls",
        "part-0.parquet",
    )
    assert "is string, cannot be cast to int32" in failure.detail


def test_castable_wrong_type_is_left_for_gx(tmp_path):
    data = valid_table(USAGE_DAILY, DAY, 3)
    i = data.schema.get_field_index("calls")
    data = data.set_column(i, "calls", pa.array(["1", "2", "3"]))
    write_drop(tmp_path, "usage_daily", DAY, data)
    drop = read_drop(_folder(tmp_path), USAGE_DAILY)
    assert drop.readable and drop.table is not None
    assert drop.table.schema.field("calls").type == pa.string()


def test_files_of_one_drop_must_agree(tmp_path):
    good = valid_table(USAGE_DAILY, DAY, 5)
    write_drop(tmp_path, "usage_daily", DAY, good, "part-0.parquet")
    write_drop(tmp_path, "usage_daily", DAY, good.drop_columns(["logins"]), "part-1.parquet")
    drop = read_drop(_folder(tmp_path), USAGE_DAILY)
    [failure] = drop.failures
    assert (failure.rule, failure.file) == (CONSISTENT_SCHEMA, "part-1.parquet")
    assert "missing 'logins'" in failure.detail


def test_repeated_column_names(tmp_path):
    data = valid_table(USAGE_DAILY, DAY, 5)
    data = data.append_column("calls", data.column("calls"))
    _folder(tmp_path).mkdir(parents=True)
    pq.write_table(data, _folder(tmp_path) / "part-0.parquet")
    drop = read_drop(_folder(tmp_path), USAGE_DAILY)
    assert _rules(drop) == [UNIQUE_COLUMN_NAMES]
    assert drop.failures[0].column == "calls"


def test_dates_pandas_cannot_hold(tmp_path):
    data = valid_table(USAGE_DAILY, DAY, 4)
    i = data.schema.get_field_index("usage_date")
    days = [DAY, dt.date(9999, 12, 31), DAY, dt.date(1, 1, 1)]
    data = data.set_column(i, data.schema.field(i), pa.array(days, pa.date32()))
    write_drop(tmp_path, "usage_daily", DAY, data)
    drop = read_drop(_folder(tmp_path), USAGE_DAILY)
    [failure] = drop.failures
    assert (failure.rule, failure.column, failure.unexpected_count) == (
        REPRESENTABLE_DATES,
        "usage_date",
        2,
    )
    assert "9999-12-31" in failure.sentence()


def test_timestamps_are_read_as_they_are(tmp_path):
    write_drop(tmp_path, "support_tickets", DAY, valid_table(SUPPORT_TICKETS, DAY, 5))
    drop = read_drop(drop_dir(tmp_path, "support_tickets", DAY), SUPPORT_TICKETS)
    assert drop.readable


def test_files_may_differ_in_nullability_flags_only(tmp_path):
    strict = valid_table(USAGE_DAILY, DAY, 5)
    loose = pa.Table.from_arrays(
        strict.columns, schema=pa.schema([f.with_nullable(True) for f in strict.schema])
    )
    write_drop(tmp_path, "usage_daily", DAY, strict, "part-0.parquet")
    write_drop(tmp_path, "usage_daily", DAY, loose, "part-1.parquet")
    drop = read_drop(_folder(tmp_path), USAGE_DAILY)
    assert drop.readable and drop.table is not None and drop.table.num_rows == 10
