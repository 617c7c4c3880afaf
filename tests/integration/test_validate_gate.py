"""The gate on hand-built drops: every contract rule is caught and explained, once per drop."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pytest

from churnops.contracts import LANDING_TABLES, SUPPORT_TICKETS, USAGE_DAILY, contract_for
from churnops.validate import DATA_DOCS_DIR, REPORT_FILE, DropHistory, validate_drop
from churnops.validate.suites import build_suite
from tests.landing_drops import valid_table, write_drop

pytestmark = pytest.mark.integration

DAY = dt.date(2025, 3, 4)


def _replace(data: pa.Table, column: str, values, type_=None) -> pa.Table:
    i = data.schema.get_field_index(column)
    type_ = type_ or data.schema.field(i).type
    return data.set_column(i, pa.field(column, type_), pa.array(values, type_))


def _with_rows(data: pa.Table, column: str, rows: list[int], value) -> pa.Table:
    values = data.column(column).to_pylist()
    for r in rows:
        values[r] = value
    return _replace(data, column, values)


@pytest.mark.parametrize("table", list(LANDING_TABLES))
def test_valid_drops_pass(tmp_path, table):
    write_drop(tmp_path, table, DAY, valid_table(table, DAY, 50))
    report = validate_drop(table, DAY, tmp_path, DropHistory([50] * 7, 10_000))
    assert report.passed, report.message()
    assert report.message().startswith(f"{table} dt=2025-03-04 passed: 50 rows in 1 file(s)")
    assert report.row_count == 50 and report.data is not None
    assert report.expectations_evaluated == len(build_suite(contract_for(table)).expectations)


def test_out_of_range_message_names_file_column_rule_count_and_samples(tmp_path):
    data = valid_table(USAGE_DAILY, DAY, 1000)
    data = _with_rows(data, "calls", list(range(0, 30)), -5)
    data = _with_rows(data, "calls", list(range(500, 507)), 9999)
    write_drop(tmp_path, "usage_daily", DAY, data)
    report = validate_drop("usage_daily", DAY, tmp_path)
    assert not report.passed
    assert report.message() == (
        "usage_daily dt=2025-03-04 rejected: part-0.parquet column 'calls' "
        "expect_column_values_to_be_between(min 0, max 500 calls): 37 of 1,000 rows fail "
        "(e.g. -5, 9999)"
    )
    [failure] = report.failures
    assert (failure.file, failure.column, failure.unexpected_count) == (
        "part-0.parquet",
        "calls",
        37,
    )


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("customer_id", None, "expect_column_values_to_not_be_null"),
        ("customer_id", 0, "expect_column_values_to_be_between"),
        ("features_used", 13, "expect_column_values_to_be_between"),
        ("usage_date", DAY - dt.timedelta(days=1), "expect_column_values_to_be_between"),
        ("usage_date", DAY + dt.timedelta(days=1), "expect_column_values_to_be_between"),
    ],
)
def test_each_value_rule_is_caught(tmp_path, column, value, rule):
    data = _with_rows(valid_table(USAGE_DAILY, DAY, 200), column, [3, 50, 150], value)
    write_drop(tmp_path, "usage_daily", DAY, data)
    report = validate_drop("usage_daily", DAY, tmp_path)
    hits = [f for f in report.failures if f.column == column and f.rule == rule]
    assert [(f.unexpected_count, f.row_count) for f in hits] == [(3, 200)], report.message()


def test_allowed_values_and_single_column_keys(tmp_path):
    data = valid_table("invoices", DAY, 100)
    data = _with_rows(data, "plan_type", [1, 2], "platinum")
    data = _with_rows(data, "invoice_id", [10, 11], "invoice-dup")
    write_drop(tmp_path, "invoices", DAY, data)
    message = validate_drop("invoices", DAY, tmp_path).message()
    assert (
        "column 'plan_type' expect_column_values_to_be_in_set(basic, standard, premium): "
        "2 of 100 rows fail (e.g. 'platinum')" in message
    )
    assert "column 'invoice_id' expect_column_values_to_be_unique: 2 of 100 rows fail" in message


def test_compound_key_duplicates(tmp_path):
    data = valid_table(USAGE_DAILY, DAY, 100)
    data = pa.concat_tables([data, data.slice(10, 4)])
    write_drop(tmp_path, "usage_daily", DAY, data)
    [failure] = validate_drop("usage_daily", DAY, tmp_path).failures
    assert failure.rule == "expect_compound_columns_to_be_unique"
    assert failure.column == "customer_id, usage_date"
    assert (failure.unexpected_count, failure.row_count) == (8, 104)
    assert failure.samples[0] == "(11, 2025-03-04)"


def test_timestamp_event_column_checks_the_date_part(tmp_path):
    data = valid_table(SUPPORT_TICKETS, DAY, 50)
    stamps = data.column("created_at").to_pylist()
    stamps[0] = dt.datetime(2025, 3, 4, 23, 59, 59, 999_999)  # still the day
    stamps[1] = dt.datetime(2025, 3, 5, 0, 0, 0)  # the next day
    stamps[2] = dt.datetime(2025, 3, 3, 23, 59, 59)  # the day before
    write_drop(tmp_path, "support_tickets", DAY, _replace(data, "created_at", stamps))
    [failure] = validate_drop("support_tickets", DAY, tmp_path).failures
    assert (failure.column, failure.unexpected_count) == ("created_at", 2)
    assert "expect_column_values_to_be_between(date 2025-03-04)" in failure.sentence()


def test_schema_rules_missing_extra_and_wrong_types(tmp_path):
    data = valid_table(USAGE_DAILY, DAY, 10).drop_columns(["logins"])
    data = data.append_column("surprise", pa.array(range(10), pa.int64()))
    data = _replace(data, "calls", data.column("calls").to_pylist(), pa.int64())  # castable
    data = _replace(
        data, "data_gb", [str(v) for v in data.column("data_gb").to_pylist()], pa.string()
    )
    write_drop(tmp_path, "usage_daily", DAY, data)
    report = validate_drop("usage_daily", DAY, tmp_path)
    sentences = [f.sentence() for f in report.failures]
    assert sentences == [
        "part-0.parquet column 'logins' expect_table_columns_to_match_set: missing from the file; all 10 rows",
        "part-0.parquet column 'surprise' expect_table_columns_to_match_set: not in the contract; all 10 rows",
        "part-0.parquet column 'calls' expect_column_type_to_be(int32): found int64; all 10 rows",
        "part-0.parquet column 'data_gb' expect_column_type_to_be(float64): found string; all 10 rows",
    ], report.message()


def test_column_order_does_not_matter(tmp_path):
    data = valid_table(USAGE_DAILY, DAY, 10)
    write_drop(tmp_path, "usage_daily", DAY, data.select(list(reversed(data.column_names))))
    assert validate_drop("usage_daily", DAY, tmp_path).passed


def test_usage_must_have_rows_but_churn_may_be_empty(tmp_path):
    write_drop(tmp_path, "usage_daily", DAY, valid_table(USAGE_DAILY, DAY, 0))
    write_drop(tmp_path, "churn_events", DAY, valid_table("churn_events", DAY, 0))
    usage = validate_drop("usage_daily", DAY, tmp_path)
    assert usage.message() == (
        "usage_daily dt=2025-03-04 rejected: part-0.parquet "
        "expect_table_row_count_to_be_between(min 1): the drop has 0 rows"
    )
    assert validate_drop("churn_events", DAY, tmp_path).passed


def test_failures_are_counted_per_file(tmp_path):
    first = _with_rows(valid_table(USAGE_DAILY, DAY, 100, seed=1), "calls", [0, 1], 777)
    second = valid_table(USAGE_DAILY, DAY, 60, seed=2)
    ids = (np.arange(60) + 1000).tolist()
    second = _replace(second, "customer_id", ids)
    second = _with_rows(second, "calls", [5, 6, 7], 888)
    write_drop(tmp_path, "usage_daily", DAY, first, "part-0.parquet")
    write_drop(tmp_path, "usage_daily", DAY, second, "part-1.parquet")
    report = validate_drop("usage_daily", DAY, tmp_path)
    assert [(f.file, f.unexpected_count, f.row_count, f.samples) for f in report.failures] == [
        ("part-0.parquet", 2, 100, ("777",)),
        ("part-1.parquet", 3, 60, ("888",)),
    ]


def test_day_over_day_failures_join_the_report(tmp_path):
    write_drop(tmp_path, "usage_daily", DAY, valid_table(USAGE_DAILY, DAY, 40))
    report = validate_drop("usage_daily", DAY, tmp_path, DropHistory([100] * 7))
    [failure] = report.failures
    assert failure.rule == "row_count_vs_recent_median"
    assert "40 rows is 0.40 x the median 100 of the last 7 loaded days" in report.message()


def test_without_history_the_day_over_day_checks_are_reported_skipped(tmp_path):
    write_drop(tmp_path, "usage_daily", DAY, valid_table(USAGE_DAILY, DAY, 40))
    report = validate_drop("usage_daily", DAY, tmp_path)
    assert report.passed and report.skipped_checks
    assert "skipped" in report.message()


def test_report_files_json_and_data_docs(tmp_path):
    data = _with_rows(valid_table(USAGE_DAILY, DAY, 100), "session_minutes", [4], 5000.0)
    write_drop(tmp_path / "landing", "usage_daily", DAY, data)
    report = validate_drop("usage_daily", DAY, tmp_path / "landing")
    path = report.write_report(tmp_path / "out")
    assert path == tmp_path / "out" / REPORT_FILE
    saved = json.loads(path.read_text())
    assert saved["passed"] is False and saved["message"] == report.message()
    assert saved["failures"][0]["column"] == "session_minutes"
    assert saved["failures"][0]["unexpected_count"] == 1
    gx_result = saved["great_expectations_result"]
    assert gx_result["success"] is False
    for result in gx_result["results"]:  # per-row lists are not stored
        assert "unexpected_index_list" not in result["result"]
    index = tmp_path / "out" / DATA_DOCS_DIR / "index.html"
    assert index.is_file()
    pages = list((tmp_path / "out" / DATA_DOCS_DIR / "validations").rglob("*.html"))
    assert len(pages) == 1 and "session_minutes" in pages[0].read_text()


def test_unreadable_drops_skip_gx_and_data_docs(tmp_path):
    path = write_drop(tmp_path / "landing", "usage_daily", DAY, valid_table(USAGE_DAILY, DAY, 10))
    path.write_bytes(b"PAR1 not really")
    report = validate_drop("usage_daily", DAY, tmp_path / "landing")
    assert [f.rule for f in report.failures] == ["readable_parquet"]
    assert report.gx_result is None and report.expectations_evaluated == 0
    report.write_report(tmp_path / "out")
    assert (tmp_path / "out" / REPORT_FILE).is_file()
    assert not (tmp_path / "out" / DATA_DOCS_DIR).exists()


def test_benchmark_runs_on_a_small_drop():
    from bench.gate import run

    figures = run(rows=5_000)
    assert figures["valid_total_s"] > 0 and figures["one_column_1pct_bad_total_s"] > 0
