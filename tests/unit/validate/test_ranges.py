"""The range variant of the gate: the same rules per drop day, on drops stacked in one frame."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from churnops.contracts import LANDING_TABLES, USAGE_DAILY, TableContract, contract_for
from churnops.validate.failures import Failure
from churnops.validate.frames import ReadDrop
from churnops.validate.ranges import _flagged_days, contract_rows, range_misfit, to_range_frame
from churnops.validate.suites import (
    DROP_DATE_COLUMN,
    DROP_DATE_END_COLUMN,
    EVENT_DATE_RULE,
    build_range_suite,
    build_suite,
    range_frame_dtype,
    suite_name,
)
from tests.landing_drops import valid_table

pytestmark = pytest.mark.unit

CONTRACTS = list(LANDING_TABLES.values())
DAY = dt.date(2025, 3, 4)


def _rules(suite, skip: tuple[str, ...]) -> dict[tuple[str, str | None], dict]:
    """(expectation type, column) -> its arguments, for the rules both variants share."""
    found = {}
    for e in suite.expectations:
        if e.meta["rule"] in skip:
            continue
        kwargs = e.configuration.kwargs
        found[(e.expectation_type, e.meta.get("column"))] = {
            k: v for k, v in kwargs.items() if k not in ("column_set", "type_", "batch_id")
        }
    return found


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.name)
def test_the_range_suite_has_every_value_rule_of_the_drop_suite(contract):
    skip = ("unique_key", EVENT_DATE_RULE, "min_rows")
    assert _rules(build_range_suite(contract), skip) == _rules(build_suite(contract), skip)


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.name)
def test_the_range_suite_checks_columns_and_types_of_the_range_frame(contract):
    suite = build_range_suite(contract)
    assert suite.name == suite_name(contract, per_range=True) == f"landing.{contract.name}.range"
    [columns] = [e for e in suite.expectations if e.meta["rule"] == "columns"]
    assert columns.column_set == [*contract.column_names, DROP_DATE_COLUMN, DROP_DATE_END_COLUMN]
    types = {e.column: e.type_ for e in suite.expectations if e.meta["rule"] == "type"}
    assert types == {c.name: range_frame_dtype(c) for c in contract.columns}
    assert not [e for e in suite.expectations if e.meta["rule"] == "min_rows"]


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.name)
def test_the_range_suite_checks_keys_and_event_dates_per_drop_day(contract):
    suite = build_range_suite(contract)
    [unique] = [e for e in suite.expectations if e.meta["rule"] == "unique_key"]
    assert unique.expectation_type == "expect_compound_columns_to_be_unique"
    assert list(unique.column_list) == [*contract.primary_key, DROP_DATE_COLUMN]
    events = [e for e in suite.expectations if e.meta["rule"] == EVENT_DATE_RULE]
    event = contract.event_date_column
    assert [(e.column_A, e.column_B, bool(e.or_equal)) for e in events] == [
        (event, DROP_DATE_COLUMN, True),  # not before the drop's day
        (DROP_DATE_END_COLUMN, event, False),  # before the next day
    ]
    assert {e.ignore_row_if for e in events} == {"either_value_is_missing"}


def test_integers_are_plain_int64_in_the_range_frame_unless_nullable():
    assert range_frame_dtype(USAGE_DAILY.column("calls")) == "int64"
    assert range_frame_dtype(USAGE_DAILY.column("customer_id")) == "int64"
    nullable = replace(USAGE_DAILY.column("calls"), nullable=True)
    assert range_frame_dtype(nullable) == "float64"
    assert range_frame_dtype(USAGE_DAILY.column("usage_date")) == "datetime64[ns]"


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.name)
def test_the_range_frame_has_the_dtypes_the_range_suite_expects(contract):
    days = [DAY, DAY + dt.timedelta(days=1)]
    tables = [contract_rows(contract, valid_table(contract, d, 3 + i)) for i, d in enumerate(days)]
    frame, row_day = to_range_frame(contract, days, tables)
    expected = {c.name: range_frame_dtype(c) for c in contract.columns}
    expected |= {DROP_DATE_COLUMN: "datetime64[ns]", DROP_DATE_END_COLUMN: "datetime64[ns]"}
    assert {c: str(t) for c, t in frame.dtypes.items()} == expected
    assert row_day.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert [str(d.date()) for d in frame[DROP_DATE_COLUMN]] == ["2025-03-04"] * 3 + [
        "2025-03-05"
    ] * 4
    assert str(frame[DROP_DATE_END_COLUMN].iloc[0]) == "2025-03-05 00:00:00"


def test_an_empty_stack_still_has_every_column():
    frame, row_day = to_range_frame(
        USAGE_DAILY, [DAY], [contract_rows(USAGE_DAILY, valid_table(USAGE_DAILY, DAY, 0))]
    )
    assert len(frame) == 0 and len(row_day) == 0
    assert str(frame["calls"].dtype) == "int64"


def _drop(table: pa.Table | None, failures: list[Failure] | None = None) -> ReadDrop:
    return ReadDrop(folder=Path("x"), table=table, failures=failures or [])


def _with(table: pa.Table, column: str, values: list, type_: pa.DataType | None = None):
    i = table.schema.get_field_index(column)
    type_ = type_ or table.schema.field(i).type
    return table.set_column(i, pa.field(column, type_), pa.array(values, type_))


def test_drops_that_fit_the_range_frame():
    data = valid_table(USAGE_DAILY, DAY, 5)
    assert range_misfit(USAGE_DAILY, _drop(data)) is None
    reordered = data.select(list(reversed(data.column_names)))
    assert range_misfit(USAGE_DAILY, _drop(reordered)) is None
    assert contract_rows(USAGE_DAILY, reordered).equals(data)
    # other tables may be empty; nulls the frame can hold are the range suite's to find
    churn = valid_table("churn_events", DAY, 0)
    assert range_misfit(contract_for("churn_events"), _drop(churn)) is None
    tickets = valid_table("support_tickets", DAY, 3)
    tickets = _with(tickets, "category", [None, "billing", "billing"])
    assert range_misfit(contract_for("support_tickets"), _drop(tickets)) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda t: t.drop_columns(["calls"]), "columns differ from the contract"),
        (
            lambda t: t.append_column("extra", pa.array([1] * t.num_rows)),
            "columns differ from the contract",
        ),
        (
            lambda t: _with(t, "calls", t.column("calls").to_pylist(), pa.int64()),
            "calls is int64, not int32",
        ),
        (
            lambda t: _with(t, "customer_id", [None, *t.column("customer_id").to_pylist()[1:]]),
            "nulls in the integer column customer_id",
        ),
        (lambda t: t.slice(0, 0), "0 rows, fewer than 1"),
    ],
)
def test_drops_that_go_to_the_per_drop_path(change, reason):
    assert range_misfit(USAGE_DAILY, _drop(change(valid_table(USAGE_DAILY, DAY, 5)))) == reason


def test_unreadable_drops_go_to_the_per_drop_path():
    failure = Failure(rule="readable_parquet", file="part-0.parquet")
    assert range_misfit(USAGE_DAILY, _drop(None, [failure])) == "not readable (readable_parquet)"


def _result(*results) -> SimpleNamespace:
    return SimpleNamespace(results=list(results))


def _failed(
    rule: str, column: str | None, indices, success: bool = False, error: str | None = None
) -> SimpleNamespace:
    info = {"raised_exception": bool(error), "exception_message": error}
    return SimpleNamespace(
        success=success,
        exception_info=info,
        result={} if indices is None else {"unexpected_index_list": indices},
        expectation_config=SimpleNamespace(type=rule, meta={"column": column}),
    )


def test_failing_rows_flag_their_days():
    days = [DAY + dt.timedelta(days=i) for i in range(3)]
    row_day = np.array([0, 0, 1, 1, 1, 2])
    flagged = _flagged_days(
        _result(
            _failed("expect_column_values_to_be_between", "calls", [2, 4, 3]),
            _failed("expect_column_values_to_not_be_null", "logins", [5]),
            _failed("expect_column_values_to_be_in_set", "x", [], success=True),
        ),
        days,
        row_day,
    )
    assert flagged == {
        days[1]: ["expect_column_values_to_be_between on calls (3 rows)"],
        days[2]: ["expect_column_values_to_not_be_null on logins (1 rows)"],
    }


@pytest.mark.parametrize(
    ("indices", "error"), [(None, None), ([], None), ([{"_drop_date": 1}], None), ([1], "boom")]
)
def test_a_failure_without_row_positions_flags_every_day(indices, error):
    days = [DAY, DAY + dt.timedelta(days=1)]
    flagged = _flagged_days(
        _result(_failed("expect_column_type_to_be", "calls", indices, error=error)),
        days,
        np.array([0, 1]),
    )
    assert set(flagged) == set(days)
    assert all(len(why) == 1 and "calls" in why[0] for why in flagged.values())


def test_contract_rows_fit_the_contract_schema():
    contract: TableContract = contract_for("invoices")
    data = valid_table(contract, DAY, 4)
    rows = contract_rows(contract, data.select(list(reversed(data.column_names))))
    assert rows.schema.equals(contract.arrow_schema())
