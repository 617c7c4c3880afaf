"""The nightly's usage tiles (``int_usage_tiles``) on real builds.

A night reads its 90-day usage window as whole tiles plus the days no tile covers. A tile
is reused while the load log says its days are as they were when it was built, and rebuilt
whole when one of its days is loaded again (a reprocessed or corrected drop). Here, on the
DuckDB warehouse of ``test_dbt_build`` (a bootstrap, then four nights):

- a night reads its current tiles instead of their days' rows: a planted difference in a
  tile shows in the night's features, and nothing rebuilds it;
- reloading one day of that tile through the raw store (the same rows, a new load) makes
  it stale: the next run rebuilds it and the features are the originals again;
- after a day's usage changes, the night's features equal those of the other
  computation, the RANGE window frames over every row, which reads no tile.

PostgreSQL builds the same tiles in ``test_dbt_postgres`` (its intermediate tables are
compared with DuckDB's) and ``test_window_read_bounds`` (the tiles' read by index).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from tests.dbt.warehouses import END, copy_warehouse, dbt_build, mart, query

pytestmark = pytest.mark.integration

NIGHT = {"as_of_date": END.isoformat()}
PLANTED_CALLS = 1_000_000


def _features_of_the_night(warehouse: Path) -> pd.DataFrame:
    features = mart(warehouse, "fct_customer_features")
    return features[features["as_of_date"] == pd.Timestamp(END)].reset_index(drop=True)


def _a_tile_in_the_window(warehouse: Path) -> tuple[int, dt.date, int]:
    """A tile of the largest size wholly inside END's 90-day window and before its 30-day
    one (so the night reads it once, for 90 days) that holds usage, and a customer of it."""
    found = query(
        warehouse,
        f"""
        select tile_days, tile_start, min(customer_id) as customer_id
        from intermediate.int_usage_tiles
        where customer_id is not null
          and tile_days = (select max(tile_days) from intermediate.int_usage_tiles)
          and tile_start > date '{END}' - 90
          and tile_start + tile_days <= date '{END}' - 29
        group by tile_days, tile_start
        order by tile_start
        limit 1
        """,
    )
    assert len(found) == 1, "no tile in the window"
    return int(found["tile_days"][0]), found["tile_start"][0].date(), int(found["customer_id"][0])


def _execute(warehouse: Path, sql: str) -> None:
    import duckdb

    con = duckdb.connect(str(warehouse))
    try:
        con.execute(sql)
    finally:
        con.close()


def _reload_usage_day(warehouse: Path, day: dt.date, extra_calls: int = 0) -> None:
    """Load ``day`` of raw.usage_daily again through the raw store (``extra_calls`` more
    calls on every row), as a reprocessed drop would."""
    import pyarrow.compute as pc

    from churnops.contracts import contract_for
    from churnops.ingest.store import RawStore
    from churnops.warehouse.duckdb_warehouse import DuckDBWarehouse

    store = RawStore(DuckDBWarehouse(warehouse))
    try:
        rows = store.partition("usage_daily", day)
        assert rows.num_rows > 0
        calls = rows.column_names.index("calls")
        rows = rows.set_column(
            calls, "calls", pc.add(rows["calls"], extra_calls).cast(rows.schema.field(calls).type)
        )
        store.replace_partition(contract_for("usage_daily"), day, rows, ["reprocessed.parquet"])
    finally:
        store.warehouse.dispose()


def _build_by_window_frames(warehouse: Path, work_dir: Path) -> None:
    """The night built through int_usage_windowed_by_frames (usage_window_strategy forced
    for the whole run: the unit tests, which each pick their own path, are left out)."""
    from churnops.features import run_dbt
    from churnops.settings import load_settings

    settings = load_settings(
        {"CHURNOPS_STATE_DIR": str(work_dir), "CHURNOPS_DUCKDB_PATH": str(warehouse)}
    )
    run_dbt(
        settings,
        "build",
        ["--exclude", "test_type:unit"],
        NIGHT | {"usage_window_strategy": "window"},
        str(work_dir / "frames-target"),
    )


def test_a_night_reads_its_current_tiles_and_rebuilds_one_whose_day_was_reloaded(
    nightly_warehouse: Path, tmp_path: Path
) -> None:
    warehouse = copy_warehouse(nightly_warehouse, tmp_path)
    before = _features_of_the_night(warehouse)
    size, tile, customer = _a_tile_in_the_window(warehouse)
    _execute(
        warehouse,
        f"""
        update intermediate.int_usage_tiles set calls = calls + {PLANTED_CALLS}
        where tile_days = {size} and tile_start = date '{tile}' and customer_id = {customer}
        """,
    )

    dbt_build(warehouse, tmp_path, NIGHT)
    planted = _features_of_the_night(warehouse)
    changed = planted["calls_90d"] != before["calls_90d"]
    assert planted.loc[changed, "customer_id"].tolist() == [customer]
    assert (planted.loc[changed, "calls_90d"] - before.loc[changed, "calls_90d"]).tolist() == [
        PLANTED_CALLS
    ]

    _reload_usage_day(warehouse, tile + dt.timedelta(days=1))
    dbt_build(warehouse, tmp_path, NIGHT)
    pd.testing.assert_frame_equal(_features_of_the_night(warehouse), before, check_exact=True)


def test_a_night_after_a_day_changed_equals_the_window_frames(
    nightly_warehouse: Path, tmp_path: Path
) -> None:
    tiles_path = copy_warehouse(nightly_warehouse, tmp_path / "tiles")
    frames_path = copy_warehouse(nightly_warehouse, tmp_path / "frames")
    before = _features_of_the_night(tiles_path)
    _, tile, _ = _a_tile_in_the_window(tiles_path)
    for warehouse in (tiles_path, frames_path):
        _reload_usage_day(warehouse, tile + dt.timedelta(days=2), extra_calls=7)

    dbt_build(tiles_path, tmp_path / "tiles", NIGHT)
    _build_by_window_frames(frames_path, tmp_path / "frames")
    by_tiles = _features_of_the_night(tiles_path)
    assert not by_tiles["calls_90d"].equals(before["calls_90d"])  # the change is in the window
    pd.testing.assert_frame_equal(by_tiles, _features_of_the_night(frames_path), check_exact=True)


def test_a_rebuild_on_duckdb_deletes_the_replaced_tiles_by_their_distinct_keys(
    nightly_warehouse: Path, tmp_path: Path
) -> None:
    """macros/delete_insert.sql: dbt-duckdb's delete+insert with a key of two columns
    joins the new rows themselves to the table, so a tile's 500,000 customer rows, all of
    one key, multiplied the join by its old rows (minutes for one tile). The rebuild of a
    reloaded day's tiles deletes by the new rows' distinct keys instead, and leaves each
    tile once: one header, one row per customer."""
    warehouse = copy_warehouse(nightly_warehouse, tmp_path)
    _, tile, _ = _a_tile_in_the_window(warehouse)
    _reload_usage_day(warehouse, tile + dt.timedelta(days=1))
    run = dbt_build(warehouse, tmp_path, NIGHT)
    assert set(run.nodes.values()) <= {"success", "pass"}, run.nodes

    executed = next(
        tmp_path.glob("dbt-*/target/run/churnops/models/intermediate/int_usage_tiles.sql")
    )
    assert "select distinct tile_days, tile_start from" in executed.read_text()
    repeated = query(
        warehouse,
        """
        select tile_days, tile_start, customer_id, count(*) as copies
        from intermediate.int_usage_tiles
        group by tile_days, tile_start, customer_id
        having count(*) > 1
        """,
    )
    assert repeated.empty, repeated


@pytest.mark.parametrize(
    ("sizes", "problem"),
    [
        ([3, 8], "ascending, each a multiple of the one before"),
        ([8, 4], "ascending, each a multiple of the one before"),
        ([1, 2], "day counts from 2 to 90"),
    ],
)
def test_tile_sizes_that_cannot_nest_fail_the_build_with_what_is_wrong(
    tmp_path: Path, sizes: list[int], problem: str
) -> None:
    """macros/usage.sql: usage_tile_sizes: a larger tile is built from the tiles of the size
    before it, so each size must be a whole multiple of the one before; one day is a row."""
    from churnops.features import DbtFailed, run_dbt
    from churnops.settings import load_settings

    settings = load_settings(
        {
            "CHURNOPS_STATE_DIR": str(tmp_path),
            "CHURNOPS_DUCKDB_PATH": str(tmp_path / "empty.duckdb"),
        }
    )
    night = NIGHT | {"usage_tile_sizes": sizes}
    with pytest.raises(DbtFailed, match=f"usage_tile_sizes must be {problem}"):
        run_dbt(settings, "compile", ["--select", "int_usage_tiles"], night, str(tmp_path / "t"))
