"""Day-over-day rules: a drop much smaller than usual, or a churn feed bigger than the base."""

from __future__ import annotations

import pytest

from churnops.contracts import CHURN_EVENTS, INVOICES, USAGE_DAILY
from churnops.validate.day_over_day import (
    MIN_RECENT_DAYS,
    ROW_COUNT_VS_RECENT,
    ROWS_VS_ACTIVE_CUSTOMERS,
    DropHistory,
    day_over_day_failures,
)

pytestmark = pytest.mark.unit


def test_row_count_at_the_ratio_of_the_recent_median_passes():
    history = DropHistory(recent_row_counts=[1000, 900, 5000, 1100, 10, 1000, 950])
    # median 1000, ratio 0.5: 500 is the least that passes
    assert day_over_day_failures(USAGE_DAILY, 500, history) == ([], [])


def test_row_count_below_the_ratio_fails_with_the_numbers():
    history = DropHistory(recent_row_counts=[1000, 900, 5000, 1100, 10, 1000, 950])
    failures, skipped = day_over_day_failures(USAGE_DAILY, 499, history, "part-0.parquet")
    [failure] = failures
    assert failure.rule == ROW_COUNT_VS_RECENT
    assert failure.file == "part-0.parquet"
    assert "499 rows" in failure.detail and "median 1,000" in failure.detail
    assert "min ratio 0.5" in failure.sentence()
    assert skipped == []


def test_only_the_last_seven_days_count():
    history = DropHistory(recent_row_counts=[100] * 7 + [10_000] * 20)
    assert day_over_day_failures(USAGE_DAILY, 60, history)[0] == []


def test_too_little_history_skips_the_ratio_check():
    history = DropHistory(recent_row_counts=[1000] * (MIN_RECENT_DAYS - 1))
    failures, skipped = day_over_day_failures(USAGE_DAILY, 0, history)
    assert failures == []
    assert len(skipped) == 1 and ROW_COUNT_VS_RECENT in skipped[0]


def test_tables_without_thresholds_are_not_checked():
    history = DropHistory(recent_row_counts=[1000] * 7, active_customers_day_before=10)
    assert day_over_day_failures(INVOICES, 0, history) == ([], [])


@pytest.mark.parametrize(("rows", "fails"), [(20, False), (21, True)])
def test_churn_is_bounded_by_the_active_customers_of_the_day_before(rows, fails):
    history = DropHistory(active_customers_day_before=1000)  # 2% of 1000 = 20
    failures, _ = day_over_day_failures(CHURN_EVENTS, rows, history)
    assert bool(failures) is fails
    if fails:
        assert failures[0].rule == ROWS_VS_ACTIVE_CUSTOMERS
        assert "1,000 customers active the day before" in failures[0].sentence()


def test_churn_check_is_skipped_without_yesterdays_usage():
    failures, skipped = day_over_day_failures(CHURN_EVENTS, 10_000, DropHistory())
    assert failures == []
    assert len(skipped) == 1 and ROWS_VS_ACTIVE_CUSTOMERS in skipped[0]
