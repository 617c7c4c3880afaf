"""Each corruption kind produces exactly the bad drop it names, and nothing else changes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnops.contracts import LANDING_TABLES, contract_for
from churnops.landing import drop_dir, drop_files
from churnops.simulate import CORRUPTION_KINDS, Corruption, CorruptionError, simulate_days
from churnops.simulate.corrupt import EXTRA_COLUMN
from tests.conftest import SMALL_START

pytestmark = pytest.mark.unit

DAY = SMALL_START + dt.timedelta(days=2)


def _corrupted(tmp_path: Path, small_sim, kind: str, table: str = "usage_daily"):
    summary = simulate_days(
        small_sim, SMALL_START, DAY + dt.timedelta(days=1), tmp_path, [Corruption(DAY, kind, table)]
    )
    return summary


def _clean(small_landing: Path, table: str, day: dt.date) -> pa.Table:
    return pq.read_table(drop_files(small_landing, table, day)[0])


@pytest.mark.parametrize("kind", sorted(CORRUPTION_KINDS))
def test_corruption_touches_only_its_table_and_day(tmp_path, small_sim, small_landing, kind):
    summary = _corrupted(tmp_path, small_sim, kind)
    assert len(summary.corruptions) == 1 and kind in summary.corruptions[0]
    for table in LANDING_TABLES:
        for day in (SMALL_START, DAY, DAY + dt.timedelta(days=1)):
            if (table, day) == ("usage_daily", DAY):
                continue
            assert pq.read_table(drop_files(tmp_path, table, day)[0]).equals(
                _clean(small_landing, table, day)
            ), (table, day)


def test_kinds_do_what_they_say(tmp_path: Path, small_sim, small_landing) -> None:
    contract = contract_for("usage_daily")
    clean = _clean(small_landing, "usage_daily", DAY)
    results: dict[str, object] = {}
    for kind in CORRUPTION_KINDS:
        root = tmp_path / kind
        _corrupted(root, small_sim, kind)
        files = drop_files(root, "usage_daily", DAY)
        if kind == "missing_drop":
            assert not drop_dir(root, "usage_daily", DAY).exists()
            continue
        if kind == "truncated_file":
            with pytest.raises(pa.ArrowInvalid):
                pq.read_table(files[0])
            continue
        results[kind] = pq.read_table(files[0])

    assert "calls" not in results["missing_column"].column_names
    assert EXTRA_COLUMN in results["extra_column"].column_names
    assert results["wrong_type"].schema.field("calls").type == pa.string()
    assert results["empty_file"].num_rows == 0
    assert results["empty_file"].schema.equals(contract.arrow_schema())
    expected_bad = max(1, clean.num_rows // 100)
    assert results["null_keys"].column("customer_id").null_count == expected_bad
    dupes = results["duplicate_keys"].to_pandas().duplicated(["customer_id", "usage_date"]).sum()
    assert dupes == expected_bad
    calls = results["out_of_range"].column("calls").to_numpy()
    assert (calls > contract.column("calls").max_value).sum() == expected_bad
    dates = results["dates_outside_day"].column("usage_date").to_pylist()
    assert sum(d != DAY for d in dates) == expected_bad


def test_every_table_can_be_corrupted(tmp_path: Path, small_sim) -> None:
    for table in LANDING_TABLES:
        summary = _corrupted(tmp_path / table, small_sim, "out_of_range", table)
        assert summary.corruptions and table in summary.corruptions[0]


def test_bad_specs_are_refused_with_a_reason() -> None:
    assert Corruption.parse("2025-01-03:null_keys") == Corruption(DAY, "null_keys", "usage_daily")
    assert Corruption.parse("2025-01-03:null_keys:invoices").table == "invoices"
    with pytest.raises(CorruptionError, match="unknown corruption kind"):
        Corruption.parse("2025-01-03:gremlins")
    with pytest.raises(CorruptionError, match="not a date"):
        Corruption.parse("yesterday:null_keys")
    with pytest.raises(KeyError, match="unknown landing table"):
        Corruption.parse("2025-01-03:null_keys:orders")
