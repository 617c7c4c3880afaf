"""Day-over-day sanity checks: is today's drop plausible next to the days already loaded?

Plain functions of numbers (the warehouse query lives in ``churnops.ingest``): a drop whose
row count falls below ``contract.min_row_ratio_vs_recent`` times the median of the last
loaded days, or a churn feed larger than ``contract.max_share_of_active_customers`` of the
customers active the day before, is a broken feed, not news.

The reference is what the warehouse holds, so on the first days of a feed (or a backfill
run newest-first) a check may have no reference: it is then skipped and the skip reported.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from churnops.contracts import DAY_OVER_DAY, TableContract
from churnops.validate.failures import Failure

ROW_COUNT_VS_RECENT = "row_count_vs_recent_median"
ROWS_VS_ACTIVE_CUSTOMERS = "rows_vs_active_customers"

# The contract file's day_over_day section: the median of the RECENT_DAYS most recent loaded
# days (before the drop's day) is the reference, not compared on fewer than MIN_RECENT_DAYS;
# active customers on a day = rows of that day's drop of ACTIVE_CUSTOMERS_TABLE.
RECENT_DAYS = DAY_OVER_DAY.recent_days
MIN_RECENT_DAYS = DAY_OVER_DAY.min_recent_days
ACTIVE_CUSTOMERS_TABLE = DAY_OVER_DAY.active_customers_table


@dataclass(frozen=True)
class DropHistory:
    """What the warehouse knows before the drop: the reference for day-over-day checks."""

    # Row counts of this table's most recent loaded days before the drop, newest first.
    recent_row_counts: Sequence[int] = ()
    # Rows of usage_daily loaded for the day before the drop (None: not loaded).
    active_customers_day_before: int | None = None


def day_over_day_failures(
    contract: TableContract,
    row_count: int,
    history: DropHistory,
    files: str | None = None,
) -> tuple[list[Failure], list[str]]:
    """The day-over-day rules this drop breaks, and notes on the checks that were skipped."""
    failures: list[Failure] = []
    skipped: list[str] = []

    ratio = contract.min_row_ratio_vs_recent
    if ratio is not None:
        recent = list(history.recent_row_counts)[:RECENT_DAYS]
        if len(recent) < MIN_RECENT_DAYS:
            skipped.append(
                f"{ROW_COUNT_VS_RECENT}: only {len(recent)} loaded day(s) before this one "
                f"(needs {MIN_RECENT_DAYS})"
            )
        else:
            median = statistics.median(recent)
            if row_count < ratio * median:
                share = row_count / median if median else 0.0
                failures.append(
                    Failure(
                        rule=ROW_COUNT_VS_RECENT,
                        file=files,
                        params=f"min ratio {ratio:g}",
                        detail=f"{row_count:,} rows is {share:.2f} x the median {median:,.0f} "
                        f"of the last {len(recent)} loaded days",
                    )
                )

    share_max = contract.max_share_of_active_customers
    if share_max is not None:
        active = history.active_customers_day_before
        if active is None:
            skipped.append(
                f"{ROWS_VS_ACTIVE_CUSTOMERS}: {ACTIVE_CUSTOMERS_TABLE} of the day before is not loaded"
            )
        elif row_count > share_max * active:
            failures.append(
                Failure(
                    rule=ROWS_VS_ACTIVE_CUSTOMERS,
                    file=files,
                    params=f"max share {share_max:g}",
                    detail=f"{row_count:,} rows is more than {share_max:.0%} of the {active:,} "
                    f"customers active the day before",
                )
            )
    return failures, skipped
