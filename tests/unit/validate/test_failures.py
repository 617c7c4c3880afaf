"""Failure sentences name file, column, rule, count and samples."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from churnops.validate.failures import Failure, distinct_samples, format_value

pytestmark = pytest.mark.unit


def test_row_failure_sentence():
    failure = Failure(
        rule="expect_column_values_to_be_between",
        file="part-0.parquet",
        column="calls",
        unexpected_count=37,
        row_count=20_113,
        samples=("-5", "9999"),
        params="min 0, max 500",
    )
    assert failure.sentence() == (
        "part-0.parquet column 'calls' expect_column_values_to_be_between(min 0, max 500): "
        "37 of 20,113 rows fail (e.g. -5, 9999)"
    )
    assert failure.to_dict()["message"] == failure.sentence()


def test_compound_columns_and_whole_file_failures():
    assert Failure(
        rule="expect_compound_columns_to_be_unique",
        file="a.parquet",
        column="customer_id, usage_date",
        unexpected_count=4,
        row_count=10,
    ).sentence() == (
        "a.parquet columns 'customer_id', 'usage_date' expect_compound_columns_to_be_unique: "
        "4 of 10 rows fail"
    )
    assert (
        Failure(
            rule="expect_column_type_to_be",
            file="a.parquet",
            column="calls",
            unexpected_count=10,
            row_count=10,
            params="int32",
            detail="found string",
        ).sentence()
        == "a.parquet column 'calls' expect_column_type_to_be(int32): found string; all 10 rows"
    )


def test_drop_level_failure_sentence():
    assert (
        Failure(rule="drop_present", detail="no drop folder /x").sentence()
        == "drop_present: no drop folder /x"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (pd.NA, "null"),
        (float("nan"), "null"),
        (pd.Timestamp("2025-03-01"), "2025-03-01"),
        (pd.Timestamp("2025-03-01 10:30"), "2025-03-01T10:30:00"),
        (dt.date(2025, 3, 1), "2025-03-01"),
        ({"customer_id": 7, "usage_date": pd.Timestamp("2025-03-01")}, "(7, 2025-03-01)"),
        ((7, None), "(7, null)"),
        ("basic", "'basic'"),
        (5001, "5001"),
        ("x" * 100, "'" + "x" * 36 + "..."),
    ],
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_distinct_samples_keep_order_and_limit():
    assert distinct_samples([5, 5, -1, 5, 7, 9], 3) == ("5", "-1", "7")
