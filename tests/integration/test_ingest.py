"""Ingest end to end on a real DuckDB file: good drops load, bad ones go to quarantine.

Hand-built drops (from the contract) test the loader's rules; the simulator's corruptions
test that every kind of bad drop the source can send is caught, explained and contained.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import pytest

from churnops.contracts import LANDING_TABLES, USAGE_DAILY
from churnops.ingest import DropRejected, ingest_day, ingest_drop
from churnops.landing import drop_dir
from churnops.settings import Paths, load_settings
from churnops.validate import DATA_DOCS_DIR, REPORT_FILE
from tests.conftest import SMALL_START
from tests.helpers import raw_store, shared_files
from tests.landing_drops import valid_table, write_drop

pytestmark = pytest.mark.integration

DAY = dt.date(2025, 3, 4)


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(project_dir=tmp_path, state_dir=tmp_path / "state")


def _tuples(paths: Paths, sql: str, params: list | None = None) -> list[tuple]:
    return raw_store(paths).warehouse.tuples(sql, params or [])


def _raw_counts(paths: Paths, table: str) -> dict[dt.date, int]:
    return dict(
        _tuples(paths, f"SELECT _drop_date, count(*) FROM raw.{table} GROUP BY 1 ORDER BY 1")
    )


def _loaded_drops(paths: Paths, table: str) -> dict[dt.date, int]:
    """Rows recorded per loaded day of ``table`` in ``raw._loaded_drops`` (none: {})."""
    return raw_store(paths).row_counts(table)


def _ingest_day(paths: Paths, day: dt.date, tables: list[str] | None = None):
    return ingest_day(raw_store(paths), shared_files(paths), day, tables)


def _ingest_drop(paths: Paths, table: str, day: dt.date):
    return ingest_drop(raw_store(paths), shared_files(paths), table, day)


def _land_valid_day(paths: Paths, day: dt.date, usage_rows: int = 200) -> None:
    for table in LANDING_TABLES:
        rows = usage_rows if table in ("usage_daily", "customers") else 3
        write_drop(
            paths.landing_dir, table, day, valid_table(table, day, rows, seed=day.toordinal())
        )


def _land_bad_usage(paths: Path | Paths, day: dt.date, bad_value: int = 9999) -> None:
    data = valid_table(USAGE_DAILY, day, 200)
    calls = data.column("calls").to_pylist()
    calls[:5] = [bad_value] * 5
    i = data.schema.get_field_index("calls")
    import pyarrow as pa

    data = data.set_column(i, data.schema.field(i), pa.array(calls, pa.int32()))
    landing = paths.landing_dir if isinstance(paths, Paths) else paths
    shutil.rmtree(drop_dir(landing, "usage_daily", day), ignore_errors=True)
    write_drop(landing, "usage_daily", day, data)


# ------------------------------------------------------------------ hand-built drops
def test_a_valid_day_loads_and_a_rerun_replaces_it(paths):
    _land_valid_day(paths, DAY)
    result = _ingest_day(paths, DAY)
    assert result.rows_loaded == {
        t: (200 if t in ("usage_daily", "customers") else 3) for t in LANDING_TABLES
    }
    for table, rows in result.rows_loaded.items():
        assert _raw_counts(paths, table) == {DAY: rows}
        assert _loaded_drops(paths, table) == {DAY: rows}

    verdict = drop_dir(paths.validation_dir, "usage_daily", DAY) / REPORT_FILE
    assert json.loads(verdict.read_text())["passed"] is True
    summary = json.loads(json.dumps(result.summary()))
    assert summary["rows_loaded"] == result.rows_loaded
    assert result.loaded["usage_daily"].validation is not None
    assert result.loaded["usage_daily"].validation.data is None  # rows not kept after loading

    again = _ingest_day(paths, DAY)
    assert again.rows_loaded == result.rows_loaded
    for table, rows in result.rows_loaded.items():
        assert _raw_counts(paths, table) == {DAY: rows}  # replaced, not duplicated
    [(source,)] = _tuples(paths, "SELECT DISTINCT _source_file FROM raw.usage_daily")
    assert source == "usage_daily/dt=2025-03-04/part-0.parquet"


def test_loaded_rows_keep_the_contract_types(paths):
    _land_valid_day(paths, DAY)
    _ingest_drop(paths, "support_tickets", DAY)
    types = dict(
        _tuples(
            paths,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'raw' AND table_name = 'support_tickets'",
        )
    )
    [(first,)] = _tuples(paths, "SELECT min(created_at) FROM raw.support_tickets")
    assert types["created_at"] == "TIMESTAMP" and types["customer_id"] == "BIGINT"
    assert first.date() == DAY


def test_a_rejected_drop_is_quarantined_and_the_other_tables_still_load(paths):
    before = DAY - dt.timedelta(days=1)
    _land_valid_day(paths, before)
    _ingest_day(paths, before)
    _land_valid_day(paths, DAY)
    _land_bad_usage(paths, DAY)

    with pytest.raises(DropRejected) as caught:
        _ingest_day(paths, DAY)
    error = caught.value
    assert isinstance(error, ValueError)
    assert set(error.rejections) == {"usage_daily"}
    assert set(error.loaded) == set(LANDING_TABLES) - {"usage_daily"}
    text = str(error)
    assert text.startswith("dt=2025-03-04: 1 of 6 drop(s) rejected (usage_daily)")
    assert (
        "part-0.parquet column 'calls' expect_column_values_to_be_between(min 0, max 500 calls): "
        "5 of 200 rows fail (e.g. 9999)" in text
    )

    assert _raw_counts(paths, "usage_daily") == {before: 200}
    assert DAY not in _loaded_drops(paths, "usage_daily")
    assert _raw_counts(paths, "invoices") == {before: 3, DAY: 3}

    quarantine = drop_dir(paths.quarantine_dir, "usage_daily", DAY)
    assert error.rejections["usage_daily"].quarantine == quarantine
    assert (quarantine / "part-0.parquet").is_file()
    assert (quarantine / DATA_DOCS_DIR / "index.html").is_file()
    report = json.loads((quarantine / REPORT_FILE).read_text())
    assert report["passed"] is False and report["failures"][0]["unexpected_count"] == 5
    assert not drop_dir(paths.landing_dir, "usage_daily", DAY).exists()
    verdict = drop_dir(paths.validation_dir, "usage_daily", DAY) / REPORT_FILE
    assert json.loads(verdict.read_text())["message"] == report["message"]


def test_a_bad_redelivery_of_a_loaded_day_keeps_the_good_partition(paths):
    _land_valid_day(paths, DAY)
    _ingest_day(paths, DAY)
    good = _tuples(paths, "SELECT * FROM raw.usage_daily ORDER BY customer_id")
    _land_bad_usage(paths, DAY)
    with pytest.raises(DropRejected):
        _ingest_drop(paths, "usage_daily", DAY)
    assert _tuples(paths, "SELECT * FROM raw.usage_daily ORDER BY customer_id") == good


def test_a_retry_repeats_the_verdict_and_keeps_the_quarantine(paths):
    _land_bad_usage(paths, DAY)
    with pytest.raises(DropRejected) as first:
        _ingest_drop(paths, "usage_daily", DAY)
    report = drop_dir(paths.quarantine_dir, "usage_daily", DAY) / REPORT_FILE
    saved = report.read_text()

    with pytest.raises(DropRejected) as retry:
        _ingest_drop(paths, "usage_daily", DAY)
    assert "is in quarantine" in str(retry.value)
    assert first.value.report is not None
    assert first.value.report.message() in str(retry.value)
    assert report.read_text() == saved


def test_a_new_rejection_replaces_the_old_quarantine(paths):
    _land_bad_usage(paths, DAY, bad_value=9999)
    with pytest.raises(DropRejected):
        _ingest_drop(paths, "usage_daily", DAY)
    _land_bad_usage(paths, DAY, bad_value=-7)
    with pytest.raises(DropRejected) as caught:
        _ingest_drop(paths, "usage_daily", DAY)
    assert "(e.g. -7)" in str(caught.value)
    quarantine = drop_dir(paths.quarantine_dir, "usage_daily", DAY)
    assert "(e.g. -7)" in json.loads((quarantine / REPORT_FILE).read_text())["message"]
    assert sorted(p.name for p in quarantine.parent.iterdir()) == ["dt=2025-03-04"]


def test_a_fixed_drop_loads_after_a_rejection(paths):
    _land_bad_usage(paths, DAY)
    with pytest.raises(DropRejected):
        _ingest_drop(paths, "usage_daily", DAY)
    write_drop(paths.landing_dir, "usage_daily", DAY, valid_table(USAGE_DAILY, DAY, 150))
    assert _ingest_drop(paths, "usage_daily", DAY).rows_loaded == 150
    assert _raw_counts(paths, "usage_daily") == {DAY: 150}


def test_a_missing_drop_is_rejected_with_its_own_message(paths):
    with pytest.raises(DropRejected) as caught:
        _ingest_drop(paths, "churn_events", DAY)
    assert "churn_events dt=2025-03-04 rejected: drop_present: no drop folder" in str(caught.value)
    quarantine = drop_dir(paths.quarantine_dir, "churn_events", DAY)
    assert (
        json.loads((quarantine / REPORT_FILE).read_text())["failures"][0]["rule"] == "drop_present"
    )
    assert _loaded_drops(paths, "churn_events") == {}


def test_day_over_day_checks_read_the_warehouse(paths):
    days = [DAY - dt.timedelta(days=i) for i in (4, 3, 2, 1)]
    for day in days:
        write_drop(paths.landing_dir, "usage_daily", day, valid_table(USAGE_DAILY, day, 100))
        _ingest_drop(paths, "usage_daily", day)

    write_drop(paths.landing_dir, "usage_daily", DAY, valid_table(USAGE_DAILY, DAY, 30))
    with pytest.raises(DropRejected) as caught:
        _ingest_drop(paths, "usage_daily", DAY)
    assert "row_count_vs_recent_median(min ratio 0.5): 30 rows is 0.30 x the median 100" in str(
        caught.value
    )

    # churn: at most 2% of the 100 customers active the day before
    write_drop(paths.landing_dir, "churn_events", DAY, valid_table("churn_events", DAY, 2))
    assert _ingest_drop(paths, "churn_events", DAY).rows_loaded == 2
    shutil.rmtree(drop_dir(paths.landing_dir, "churn_events", DAY))
    write_drop(paths.landing_dir, "churn_events", DAY, valid_table("churn_events", DAY, 3))
    with pytest.raises(DropRejected) as caught:
        _ingest_drop(paths, "churn_events", DAY)
    assert (
        "rows_vs_active_customers(max share 0.02): 3 rows is more than 2% of the 100 customers "
        "active the day before" in str(caught.value)
    )
    assert _raw_counts(paths, "churn_events") == {DAY: 2}  # the earlier load stands


def test_unknown_tables_fail_before_anything_loads(paths):
    _land_valid_day(paths, DAY)
    with pytest.raises(KeyError, match="unknown landing table"):
        _ingest_day(paths, DAY, tables=["usage_daily", "nope"])
    assert not paths.warehouse_path.exists() or _loaded_drops(paths, "usage_daily") == {}


def test_settings_select_the_folders_and_the_duckdb_file(tmp_path):
    settings = load_settings(
        {
            "CHURNOPS_STATE_DIR": str(tmp_path / "s"),
            "CHURNOPS_DUCKDB_PATH": str(tmp_path / "w.duckdb"),
        }
    )
    write_drop(settings.paths.landing_dir, "churn_events", DAY, valid_table("churn_events", DAY, 1))
    from churnops.storage import shared_files_for
    from churnops.stores import stores_for

    assert (
        ingest_drop(
            stores_for(settings).raw, shared_files_for(settings), "churn_events", DAY
        ).rows_loaded
        == 1
    )
    assert (tmp_path / "w.duckdb").is_file() and not settings.paths.warehouse_path.exists()


# ------------------------------------------------------------------ simulated drops
GOOD_DAYS = [SMALL_START + dt.timedelta(days=i) for i in range(4)]
BAD_DAY = SMALL_START + dt.timedelta(days=4)
LAST_GOOD = GOOD_DAYS[-1]

# kind -> (column named, rule named, what else the message must say); usage_daily's first
# value column is calls, its key (customer_id, usage_date), its event date usage_date.
EXPECTED = {
    "missing_column": ("'calls'", "expect_table_columns_to_match_set", "missing from the file"),
    "extra_column": (
        "'unexpected_column'",
        "expect_table_columns_to_match_set",
        "not in the contract",
    ),
    "wrong_type": ("'calls'", "expect_column_type_to_be(int32)", "found string"),
    "null_keys": ("'customer_id'", "expect_column_values_to_not_be_null", "{k} of"),
    "duplicate_keys": (
        "'customer_id', 'usage_date'",
        "expect_compound_columns_to_be_unique",
        "{k2} of",
    ),
    "out_of_range": ("'calls'", "expect_column_values_to_be_between", "{k} of"),
    "dates_outside_day": ("'usage_date'", "expect_column_values_to_be_between", "{k} of"),
    "empty_file": ("", "expect_table_row_count_to_be_between(min 1)", "the drop has 0 rows"),
    "truncated_file": ("", "readable_parquet", "cannot be read as Parquet"),
    "missing_drop": ("", "drop_present", "no drop folder"),
}


@pytest.fixture(scope="module")
def loaded_history(tmp_path_factory, small_sim) -> Path:
    """A state folder with four simulated days loaded: copied by each test that needs one."""
    from churnops.simulate import simulate_days

    state = tmp_path_factory.mktemp("history") / "state"
    paths = Paths(project_dir=state, state_dir=state)
    simulate_days(small_sim, GOOD_DAYS[0], GOOD_DAYS[-1], paths.landing_dir)
    for day in GOOD_DAYS:
        _ingest_day(paths, day)
    return state


def _copy(loaded_history: Path, tmp_path: Path) -> Paths:
    state = tmp_path / "state"
    shutil.copytree(loaded_history, state)
    return Paths(project_dir=state, state_dir=state)


def test_simulated_days_load_and_a_rerun_does_not_duplicate(loaded_history, tmp_path):
    paths = _copy(loaded_history, tmp_path)
    before = {t: _raw_counts(paths, t) for t in LANDING_TABLES}
    assert set(before["usage_daily"]) == set(GOOD_DAYS)
    assert all(n > 1000 for n in before["usage_daily"].values())
    for table in LANDING_TABLES:  # every day recorded, also those without rows
        recorded = _loaded_drops(paths, table)
        assert set(recorded) == set(GOOD_DAYS)
        assert {d: n for d, n in recorded.items() if n} == before[table]

    result = _ingest_day(paths, LAST_GOOD)
    assert {t: _raw_counts(paths, t) for t in LANDING_TABLES} == before
    assert result.rows_loaded["usage_daily"] == before["usage_daily"][LAST_GOOD]


def test_expected_messages_cover_every_corruption_kind():
    from churnops.simulate import CORRUPTION_KINDS

    assert set(EXPECTED) == set(CORRUPTION_KINDS)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_every_corruption_kind_is_caught_and_contained(loaded_history, tmp_path, small_sim, kind):
    from churnops.simulate import Corruption, simulate_days

    paths = _copy(loaded_history, tmp_path)
    good_before = _raw_counts(paths, "usage_daily")
    summary = simulate_days(
        small_sim, BAD_DAY, BAD_DAY, paths.landing_dir, [Corruption(BAD_DAY, kind)], ["usage_daily"]
    )
    affected = re.search(r"on (\d+) rows", " ".join(summary.corruptions))
    k = int(affected.group(1)) if affected else 0

    with pytest.raises(DropRejected) as caught:
        _ingest_drop(paths, "usage_daily", BAD_DAY)
    message = str(caught.value)

    column, rule, detail = EXPECTED[kind]
    assert message.startswith("usage_daily dt=2025-01-05 rejected: ")
    if kind != "missing_drop":
        assert "part-0.parquet" in message
    assert column in message and rule in message
    assert detail.format(k=f"{k:,}", k2=f"{2 * k:,}") in message, message
    report = caught.value.report
    assert report is not None
    if report.row_count and kind in ("missing_column", "extra_column", "wrong_type"):
        assert f"all {report.row_count:,} rows" in message

    # nothing of the bad day loaded; the good days as they were
    assert _raw_counts(paths, "usage_daily") == good_before
    assert BAD_DAY not in _loaded_drops(paths, "usage_daily")

    quarantine = drop_dir(paths.quarantine_dir, "usage_daily", BAD_DAY)
    saved = json.loads((quarantine / REPORT_FILE).read_text())
    assert saved["passed"] is False and saved["message"] == report.message()
    assert (quarantine / "part-0.parquet").is_file() is (kind != "missing_drop")
    gx_ran = kind not in ("truncated_file", "missing_drop")
    assert (quarantine / DATA_DOCS_DIR / "index.html").is_file() is gx_ran
    assert not drop_dir(paths.landing_dir, "usage_daily", BAD_DAY).exists()


def test_a_table_not_required_every_day_loads_an_empty_day(paths, monkeypatch):
    from dataclasses import replace

    from churnops.contracts import CHURN_EVENTS

    monkeypatch.setitem(
        LANDING_TABLES, "churn_events", replace(CHURN_EVENTS, required_every_day=False)
    )
    result = _ingest_drop(paths, "churn_events", DAY)
    assert result.rows_loaded == 0 and "allows none" in result.note
    assert _loaded_drops(paths, "churn_events") == {DAY: 0}
    assert not drop_dir(paths.quarantine_dir, "churn_events", DAY).exists()
