"""Nights run out of order, or twice, or all at once by the history bootstrap, leave the
same tables as running them once in order.

This drives the same domain calls the nightly DAG's tasks make (ingest the day, check its
feature window, build its features), with a queue that retries a night whose window is not
loaded yet, the way a backfill's task retries do.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from pathlib import Path

import pytest

from churnops.contracts import LANDING_TABLES
from churnops.features import HistoryIncomplete, build_features, require_window_loaded
from churnops.ingest import ingest_day
from churnops.settings import SimulationSettings, load_settings
from churnops.simulate import simulate_days
from churnops.storage import shared_files_for
from churnops.stores import stores_for

pytestmark = pytest.mark.integration

START = dt.date(2025, 1, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(4)]
SIM = SimulationSettings(customers=600, seed=5, history_start=START)


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("order-landing")
    simulate_days(SIM, DAYS[0], DAYS[-1], root)
    return root


def settings_for(state: Path, landing: Path):
    settings = load_settings({"CHURNOPS_STATE_DIR": str(state)})
    settings.paths.data_dir.mkdir(parents=True)
    settings.paths.landing_dir.symlink_to(landing)
    return settings


def run_nights(settings, order: list[dt.date], target: Path) -> list[str]:
    """Process nights in ``order``; a night whose window has gaps goes to the back."""
    log = []
    queue = deque(order)
    while queue:
        day = queue.popleft()
        raw = stores_for(settings).raw
        ingest_day(raw, shared_files_for(settings), day)
        try:
            require_window_loaded(raw, settings.orchestration.nightly_start, day)
        except HistoryIncomplete:
            log.append(f"{day}: waits")
            queue.append(day)
            continue
        build_features(settings, day, day, target_path=str(target))
        log.append(f"{day}: built")
    return log


def snapshot(settings) -> dict[str, list[tuple]]:
    warehouse = stores_for(settings).warehouse
    tables = {
        t: warehouse.tuples(f"SELECT * EXCLUDE (_loaded_at) FROM raw.{t} ORDER BY ALL")
        for t in LANDING_TABLES
    }
    for mart in ("fct_customer_features", "fct_churn_labels"):
        tables[mart] = warehouse.tuples(f"SELECT * FROM marts.{mart} ORDER BY ALL")
    return tables


@pytest.fixture(scope="module")
def in_order(tmp_path_factory: pytest.TempPathFactory, landing: Path) -> dict[str, list[tuple]]:
    """The reference: every night once, in order."""
    root = tmp_path_factory.mktemp("ordered")
    ordered = settings_for(root / "state", landing)
    run_nights(ordered, DAYS, root / "target")
    return snapshot(ordered)


def test_out_of_order_and_repeated_nights_equal_one_ordered_pass(
    tmp_path: Path, landing: Path, in_order: dict[str, list[tuple]]
) -> None:
    shuffled = settings_for(tmp_path / "shuffled", landing)
    log = run_nights(shuffled, [DAYS[2], DAYS[0], DAYS[3], DAYS[1], DAYS[1]], tmp_path / "target-b")
    assert f"{DAYS[2]}: waits" in log, "a night ahead of its window must wait"

    assert len(in_order["fct_customer_features"]) > 0
    assert snapshot(shuffled) == in_order


def test_history_bootstrap_equals_the_nightly_path(
    tmp_path: Path, landing: Path, in_order: dict[str, list[tuple]]
) -> None:
    from churnops.pipeline import bootstrap_history

    settings = settings_for(tmp_path / "bootstrap", landing)
    lines: list[str] = []
    summary = bootstrap_history(settings, DAYS[0], DAYS[-1], say=lines.append)
    assert summary.simulated_days == 0, "drops were there: nothing to simulate"
    assert any(line.startswith("features: dbt build") for line in lines)
    assert snapshot(settings) == in_order


def test_missing_window_days_are_named(tmp_path: Path, landing) -> None:
    settings = settings_for(tmp_path / "gap", landing)
    raw = stores_for(settings).raw
    ingest_day(raw, shared_files_for(settings), DAYS[0])
    ingest_day(raw, shared_files_for(settings), DAYS[2])
    with pytest.raises(HistoryIncomplete, match=f"usage_daily: {DAYS[1]}"):
        require_window_loaded(raw, settings.orchestration.nightly_start, DAYS[2])
