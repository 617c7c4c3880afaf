"""The dbt project end to end on a real DuckDB file filled from the simulator.

A small simulated history is loaded into ``raw.*`` once per session (the way ingest loads
it: one partition per table per day; ``conftest.py``), then copied for each scenario:

- a history bootstrap builds every as-of date at once (RANGE-window path for usage);
- a "nightly" warehouse builds the same range minus its last days, then one run per night
  (GROUP-BY path), in order. Both must hold identical feature and label rows;
- rerunning a night must leave both tables identical;
- a night whose drops are not loaded must fail before any mart is written.

dbt runs in-process (``dbtRunner``) with its own target and log folders per build.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from tests.dbt.warehouses import (
    DAYS,
    END,
    MARTS,
    START,
    copy_warehouse,
    days,
    dbt_build,
    mart,
    query,
)

pytestmark = pytest.mark.integration

LABEL_HORIZON = dt.timedelta(days=90)


def test_features_hold_one_row_per_active_customer_per_date(bootstrap_warehouse: Path) -> None:
    counts = query(
        bootstrap_warehouse,
        "select as_of_date, count(*) as features from marts.fct_customer_features group by 1",
    )
    # Active on D: signed up on or before D (a customers record effective by then) and
    # not churned on or before D; counted straight from the raw layer.
    active = query(
        bootstrap_warehouse,
        """
        select days.drop_date as as_of_date, count(distinct customers.customer_id) as active
        from (select distinct drop_date from raw._loaded_drops) as days
        inner join raw.customers as customers
            on customers.effective_date <= days.drop_date
            and customers.signup_date <= days.drop_date
        where not exists (
            select 1 from raw.churn_events as churn
            where churn.customer_id = customers.customer_id
              and churn.churn_date <= days.drop_date
        )
        group by 1
        """,
    )
    usage = query(
        bootstrap_warehouse,
        "select usage_date as as_of_date, count(*) as usage_rows from raw.usage_daily group by 1",
    )
    merged = counts.merge(active, on="as_of_date", how="outer").merge(
        usage, on="as_of_date", how="outer"
    )
    assert len(merged) == DAYS
    assert merged["features"].notna().all(), "an as-of date of the range has no feature rows"
    assert (merged["features"] == merged["active"]).all(), merged[
        merged["features"] != merged["active"]
    ]
    # The source sends one usage row per active customer per day.
    assert (merged["features"] == merged["usage_rows"]).all()


def test_marts_have_unique_keys_and_complete_features(bootstrap_warehouse: Path) -> None:
    for name in MARTS:
        duplicates = query(
            bootstrap_warehouse,
            f"select as_of_date, customer_id from marts.{name} group by 1, 2 having count(*) > 1",
        )
        assert duplicates.empty, f"{name} has duplicate keys: {duplicates.head()}"
    features = mart(bootstrap_warehouse, "fct_customer_features")
    feature_columns = [c for c in features.columns if c not in ("as_of_date", "customer_id")]
    assert len(feature_columns) == 46
    assert not features[feature_columns].isna().any().any()


def test_the_marts_on_duckdb_carry_no_index(bootstrap_warehouse: Path) -> None:
    """macros/cross_db.sql: mart_indexes is PostgreSQL's only; DuckDB prunes by row group."""
    indexes = query(bootstrap_warehouse, "select table_name from duckdb_indexes()")
    assert set(indexes["table_name"]) & set(MARTS) == set()


def test_labels_cover_exactly_the_matured_as_of_dates(bootstrap_warehouse: Path) -> None:
    labels = mart(bootstrap_warehouse, "fct_churn_labels")
    features = mart(bootstrap_warehouse, "fct_customer_features")
    label_dates = sorted(pd.to_datetime(labels["as_of_date"]).dt.date.unique())
    assert label_dates == days(START, END - LABEL_HORIZON)
    # The population of each label date is that date's feature rows.
    matured = features[pd.to_datetime(features["as_of_date"]).dt.date <= END - LABEL_HORIZON]
    keys = ["as_of_date", "customer_id"]
    pd.testing.assert_frame_equal(
        labels[keys].reset_index(drop=True), matured[keys].reset_index(drop=True)
    )
    churned = labels[labels["churned_within_90d"] == 1]
    assert 0 < len(churned) < len(labels) / 2
    as_of = pd.to_datetime(churned["as_of_date"])
    churn = pd.to_datetime(churned["churn_date"])
    assert ((churn > as_of) & (churn <= as_of + LABEL_HORIZON)).all()
    assert labels.loc[labels["churned_within_90d"] == 0, "churn_date"].isna().all()


def test_bootstrap_equals_nightly(bootstrap_warehouse: Path, nightly_warehouse: Path) -> None:
    for name in MARTS:
        at_once = mart(bootstrap_warehouse, name)
        night_by_night = mart(nightly_warehouse, name)
        assert len(at_once) > 0
        pd.testing.assert_frame_equal(at_once, night_by_night, check_exact=True)


def test_the_label_counts_are_the_labels_counted(
    bootstrap_warehouse: Path, nightly_warehouse: Path
) -> None:
    """marts.label_counts (fct_churn_labels' post_hooks): each labelled date's rows and
    churners, after one bootstrap run and after its ranges were rebuilt night by night."""
    for warehouse in (bootstrap_warehouse, nightly_warehouse):
        counted = query(
            warehouse,
            "select as_of_date, count(*) as labelled_rows, sum(churned_within_90d) as churners "
            "from marts.fct_churn_labels group by 1 order by 1",
        )
        kept = query(warehouse, "select * from marts.label_counts order by as_of_date")
        assert len(kept) > 0
        pd.testing.assert_frame_equal(
            kept.astype("int64", errors="ignore"),
            counted.astype("int64", errors="ignore"),
            check_dtype=False,
        )


def test_rerun_of_a_night_leaves_the_marts_identical(
    nightly_warehouse: Path, tmp_path: Path
) -> None:
    warehouse = copy_warehouse(nightly_warehouse, tmp_path)
    before = {name: mart(warehouse, name) for name in MARTS}
    for night in (END - dt.timedelta(days=2), END):
        dbt_build(warehouse, tmp_path, {"as_of_date": night.isoformat()})
    for name in MARTS:
        pd.testing.assert_frame_equal(before[name], mart(warehouse, name), check_exact=True)


def test_a_night_without_loaded_drops_fails_and_writes_nothing(
    nightly_warehouse: Path, tmp_path: Path
) -> None:
    warehouse = copy_warehouse(nightly_warehouse, tmp_path)
    before = {name: mart(warehouse, name) for name in MARTS}
    unloaded = END + dt.timedelta(days=1)
    from churnops.features import DbtFailed

    with pytest.raises(DbtFailed, match="assert_as_of_dates_are_loaded"):
        dbt_build(warehouse, tmp_path, {"as_of_date": unloaded.isoformat()})
    for name in MARTS:
        pd.testing.assert_frame_equal(before[name], mart(warehouse, name), check_exact=True)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        (None, None),  # the night as built passes
        ("calls_7d", -1),  # a column of `columns`, below their shared minimum
        ("active_days_7d", 8),  # a column of `ranges`, above its own maximum
        ("signup_cohort_month", 199912),  # below its own minimum, its maximum open
    ],
)
def test_the_features_range_test_fails_on_one_value_out_of_its_range(
    nightly_warehouse: Path, tmp_path: Path, column: str | None, value: int | None
) -> None:
    """macros/tests/columns_in_range.sql: the mart's every range check is one test
    (fct_customer_features_in_range), shared bounds and per-column ones alike."""
    import duckdb

    from churnops.features import DbtFailed, run_dbt
    from churnops.settings import load_settings

    warehouse = copy_warehouse(nightly_warehouse, tmp_path)
    if column is not None:
        con = duckdb.connect(str(warehouse))
        try:
            con.execute(
                f"update marts.fct_customer_features set {column} = {value} "
                f"where as_of_date = date '{END}' and customer_id = ("
                "select min(customer_id) from marts.fct_customer_features "
                f"where as_of_date = date '{END}')"
            )
        finally:
            con.close()
    settings = load_settings(
        {"CHURNOPS_STATE_DIR": str(tmp_path), "CHURNOPS_DUCKDB_PATH": str(warehouse)}
    )

    def range_test() -> dict[str, str]:
        run = run_dbt(
            settings,
            "test",
            ["--select", "fct_customer_features_in_range"],
            dbt_vars_={"as_of_date": END.isoformat()},
        )
        return run.nodes

    if column is None:
        assert set(range_test().values()) == {"pass"}
    else:
        with pytest.raises(DbtFailed, match="fct_customer_features_in_range"):
            range_test()
