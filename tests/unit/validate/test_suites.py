"""The GX suites say what the contract says: every column, type, key, range and value set."""

from __future__ import annotations

import datetime as dt

import pytest

from churnops.contracts import LANDING_TABLES, TableContract
from churnops.validate.frames import to_validation_frame
from churnops.validate.suites import (
    DROP_DAY_END,
    DROP_DAY_START,
    EVENT_DATE_RULE,
    PANDAS_DTYPES,
    build_suite,
    drop_day_parameters,
)
from tests.landing_drops import valid_table

pytestmark = pytest.mark.unit

CONTRACTS = list(LANDING_TABLES.values())


def _by_type(contract: TableContract) -> dict[str, list]:
    found: dict[str, list] = {}
    for e in build_suite(contract).expectations:
        found.setdefault(e.expectation_type, []).append(e)
    return found


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.name)
def test_suite_checks_the_exact_column_set(contract):
    [columns] = _by_type(contract)["expect_table_columns_to_match_set"]
    assert columns.column_set == list(contract.column_names)
    assert columns.exact_match in (True, None)  # None: GX's default, which is exact


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.name)
def test_suite_checks_every_column_type(contract):
    types = {e.column: e.type_ for e in _by_type(contract)["expect_column_type_to_be"]}
    assert types == {c.name: PANDAS_DTYPES[c.arrow_type] for c in contract.columns}


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.name)
def test_suite_checks_not_null_ranges_and_allowed_values(contract):
    found = _by_type(contract)
    not_null = {e.column for e in found["expect_column_values_to_not_be_null"]}
    assert not_null == {c.name for c in contract.columns if not c.nullable}

    ranges = {
        e.column: (e.min_value, e.max_value)
        for e in found.get("expect_column_values_to_be_between", [])
        if e.meta["rule"] == "range"
    }
    ranged = [c for c in contract.columns if c.min_value is not None or c.max_value is not None]
    assert set(ranges) == {c.name for c in ranged}
    for spec in ranged:
        low, high = ranges[spec.name]
        if isinstance(spec.min_value, dt.date):
            assert low == dt.datetime.combine(spec.min_value, dt.time())
        else:
            assert low == spec.min_value and high == spec.max_value

    allowed = {e.column: e.value_set for e in found.get("expect_column_values_to_be_in_set", [])}
    assert allowed == {c.name: list(c.allowed_values) for c in contract.columns if c.allowed_values}


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.name)
def test_suite_checks_the_key_and_the_event_day(contract):
    found = _by_type(contract)
    if len(contract.primary_key) == 1:
        [unique] = found["expect_column_values_to_be_unique"]
        assert unique.column == contract.primary_key[0]
        assert "expect_compound_columns_to_be_unique" not in found
    else:
        [unique] = found["expect_compound_columns_to_be_unique"]
        assert unique.column_list == list(contract.primary_key)

    [event] = [
        e for e in found["expect_column_values_to_be_between"] if e.meta["rule"] == EVENT_DATE_RULE
    ]
    assert event.column == contract.event_date_column
    assert event.min_value == {"$PARAMETER": DROP_DAY_START}
    assert event.max_value == {"$PARAMETER": DROP_DAY_END}
    assert event.strict_max is True


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.name)
def test_only_usage_daily_must_have_rows(contract):
    found = _by_type(contract).get("expect_table_row_count_to_be_between", [])
    if contract.name == "usage_daily":
        assert [e.min_value for e in found] == [1]
    else:
        assert found == []
    assert [c.name for c in CONTRACTS if c.min_rows_per_drop] == ["usage_daily"]


def test_drop_day_parameters_cover_the_whole_day():
    params = drop_day_parameters(dt.date(2025, 3, 4))
    assert str(params[DROP_DAY_START]) == "2025-03-04 00:00:00"
    assert str(params[DROP_DAY_END]) == "2025-03-05 00:00:00"


def test_every_contract_type_has_a_frame_dtype():
    used = {c.arrow_type for contract in CONTRACTS for c in contract.columns}
    assert used <= set(PANDAS_DTYPES)


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.name)
def test_frame_dtypes_are_the_ones_the_suite_expects(contract):
    frame = to_validation_frame(valid_table(contract, dt.date(2025, 3, 4), rows=5))
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        c.name: PANDAS_DTYPES[c.arrow_type] for c in contract.columns
    }


def test_frame_keeps_wrong_types_distinct():
    import pyarrow as pa

    table = pa.table(
        {
            "a": pa.array([1], pa.int64()),
            "b": pa.array([1], pa.int16()),
            "c": pa.array([dt.datetime(2025, 1, 1)], pa.timestamp("ms")),
            "d": pa.array(["x"], pa.large_string()),
        }
    )
    dtypes = {c: str(t) for c, t in to_validation_frame(table).dtypes.items()}
    assert dtypes == {
        "a": "Int64",
        "b": "int16[pyarrow]",
        "c": "timestamp[ms][pyarrow]",
        "d": "large_string[pyarrow]",
    }
