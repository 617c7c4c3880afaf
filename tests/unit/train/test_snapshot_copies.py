"""The snapshot copies' fingerprint and layout (``churnops.features.copies``), without a
warehouse: what makes a copy stale, and how a snapshot read is cut per as-of date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from churnops.features import copies
from churnops.features.copies import SnapshotCopies, snapshot_fingerprint, split_by_date

pytestmark = pytest.mark.unit

DAY = dt.date(2025, 3, 1)
SCHEMA = pa.schema([("as_of_date", pa.date32()), ("customer_id", pa.int64()), ("x", pa.float64())])
BUILDS = [("fct_customer_features", "run-a"), ("fct_churn_labels", "run-b")]
SOURCE = "DuckDB warehouse /state/warehouse.duckdb"


def test_the_fingerprint_changes_with_any_build_the_columns_the_source_the_date_the_format(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = snapshot_fingerprint(DAY, BUILDS, SCHEMA, SOURCE)
    assert len(base) == 16 and int(base, 16) >= 0
    # The order the write log returns builds in, or a build listed twice, changes nothing.
    assert snapshot_fingerprint(DAY, [*reversed(BUILDS), BUILDS[0]], SCHEMA, SOURCE) == base
    changed = {
        "a later build": snapshot_fingerprint(
            DAY, [*BUILDS, ("fct_customer_features", "c")], SCHEMA, SOURCE
        ),
        "another build": snapshot_fingerprint(
            DAY, [BUILDS[0], ("fct_churn_labels", "c")], SCHEMA, SOURCE
        ),
        "a new column": snapshot_fingerprint(
            DAY, BUILDS, SCHEMA.append(pa.field("y", pa.int32())), SOURCE
        ),
        "a column's type": snapshot_fingerprint(
            DAY, BUILDS, SCHEMA.set(2, pa.field("x", pa.float32())), SOURCE
        ),
        "another warehouse": snapshot_fingerprint(DAY, BUILDS, SCHEMA, "PostgreSQL warehouse"),
        "another date": snapshot_fingerprint(DAY + dt.timedelta(days=1), BUILDS, SCHEMA, SOURCE),
    }
    monkeypatch.setattr(copies, "COPY_FORMAT", copies.COPY_FORMAT + 1)
    changed["a new format"] = snapshot_fingerprint(DAY, BUILDS, SCHEMA, SOURCE)
    assert base not in changed.values()
    assert len(set(changed.values())) == len(changed)


def test_a_read_is_cut_into_zero_copy_slices_per_date() -> None:
    days = [DAY, DAY, DAY + dt.timedelta(days=30), DAY + dt.timedelta(days=60)]
    table = pa.table(
        {"as_of_date": pa.array(days, pa.date32()), "customer_id": [1, 2, 1, 1], "x": [0.1] * 4},
        schema=SCHEMA,
    )
    wanted = [DAY, DAY + dt.timedelta(days=30), DAY + dt.timedelta(days=45)]
    parts = split_by_date(table, wanted)
    assert list(parts) == wanted[:2]  # no rows on the third date: left out
    assert parts[DAY].column("customer_id").to_pylist() == [1, 2]
    assert parts[DAY + dt.timedelta(days=30)].num_rows == 1


def test_a_write_replaces_the_dates_other_copies_and_old_dates_are_removed(tmp_path: Path) -> None:
    store = SnapshotCopies(tmp_path / "training")
    rows = pa.table({"as_of_date": [DAY], "customer_id": [7], "x": [1.5]}, schema=SCHEMA)
    store.write(DAY, "a" * 16, rows)
    assert store.read(DAY, "a" * 16).equals(rows)
    assert store.read(DAY, "b" * 16) is None
    store.write(DAY, "b" * 16, rows)
    assert not store.has(DAY, "a" * 16) and store.has(DAY, "b" * 16)
    later = DAY + dt.timedelta(days=30)
    store.write(later, "c" * 16, rows)
    (store.folder / "not-a-date").mkdir()
    assert store.as_of_dates() == [DAY, later]
    assert store.remove_before(later) == [DAY]
    assert store.as_of_dates() == [later]
    # No temporary file is left beside a copy.
    assert [p.name for p in (store.folder / later.isoformat()).iterdir()] == ["c" * 16 + ".parquet"]


def test_a_copy_that_cannot_be_read_or_written_is_a_warning_not_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = pa.table({"as_of_date": [DAY], "customer_id": [7], "x": [1.5]}, schema=SCHEMA)
    store = SnapshotCopies(tmp_path / "training")
    store.write(DAY, "a" * 16, rows)
    (store.folder / DAY.isoformat() / ("a" * 16 + ".parquet")).write_bytes(b"not parquet")
    with caplog.at_level("WARNING", logger="churnops.features.copies"):
        assert store.read(DAY, "a" * 16) is None
        # The shared files cannot take it: the base is a file, not a folder.
        (tmp_path / "blocked").write_text("")
        assert SnapshotCopies(tmp_path / "blocked" / "training").write(DAY, "b" * 16, rows) is False
    warnings = [r.getMessage() for r in caplog.records]
    assert any("cannot be read, so the warehouse is" in w and "ArrowInvalid" in w for w in warnings)
    assert any(w.startswith("no training copy written to") for w in warnings), warnings


def test_the_nightly_copies_every_date_a_training_counts_back_to() -> None:
    from churnops.settings import load_settings
    from churnops.train.frame import copy_retention_days, snapshot_dates_to_copy

    params = load_settings({}).train
    dates = snapshot_dates_to_copy(DAY, params)
    step = dt.timedelta(days=params.snapshot_every_days)
    assert dates[0] == DAY and all(a - b == step for a, b in zip(dates, dates[1:], strict=False))
    oldest = DAY - dt.timedelta(days=copy_retention_days(params))
    assert dates[-1] >= oldest > dates[-1] - step  # the whole retention window, no more
