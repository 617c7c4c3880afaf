"""``nightly``: a night's ingest + validation and its dbt build after 90 days of
history (``CHURNOPS_BENCH_HISTORY_DAYS``), each timed in its own process; the set-up
(drops simulated and loaded) is untimed and kept in ``CHURNOPS_BENCH_NIGHTLY_STATE``
when that is set (engines group)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from bench.harness import (
    BENCH_CUSTOMERS,
    NIGHTLY_HISTORY_DAYS,
    bench_settings,
    measure,
    quiet_dbt,
    raw_store,
    read_progress,
    write_progress,
)
from churnops.storage import shared_files_for

NIGHTLY_PROGRESS_FILE = "bench-nightly-progress.json"


def prepare_history(state: str, days: int) -> dict:
    """Untimed set-up: the nightly's 90-day window of drops, simulated and loaded.

    A state kept from an earlier run (same customers and days: its progress file says so)
    is reused as it is.
    """
    from churnops.ingest import ingest_range
    from churnops.simulate import simulate_days

    settings = bench_settings(state)
    start = settings.simulation.history_start
    night = start + dt.timedelta(days=days)
    record = Path(state) / NIGHTLY_PROGRESS_FILE
    done = {"customers": BENCH_CUSTOMERS, "days": days, "night": night.isoformat()}
    if read_progress(record) == done:
        return {"night": night.isoformat(), "resumed": True}
    simulate_days(settings.simulation, start, night, shared_files_for(settings).landing_dir)
    ingest_range(
        raw_store(settings), shared_files_for(settings), start, night - dt.timedelta(days=1)
    )
    write_progress(record, done)
    return {"night": night.isoformat(), "resumed": False}


def nightly_ingest(state: str, night: str, dsn: str | None = None) -> dict:
    began = time.perf_counter()
    import great_expectations  # noqa: F401  (paid once per task process)

    imported = time.perf_counter() - began
    from churnops.ingest import ingest_day

    settings = bench_settings(state, dsn)
    raw = raw_store(settings)
    raw.warehouse.check()  # the first connection is not the stage's
    began = time.perf_counter()
    result = ingest_day(raw, shared_files_for(settings), dt.date.fromisoformat(night))
    return {
        "seconds": time.perf_counter() - began,
        "gx_import_s": imported,
        "rows": sum(result.rows_loaded.values()),
    }


def nightly_features(state: str, night: str, dsn: str | None = None) -> dict:
    from churnops.features import build_features

    quiet_dbt()
    day = dt.date.fromisoformat(night)
    run = build_features(bench_settings(state, dsn), day, day)
    return {"seconds": run.seconds, "dbt_nodes": len(run.nodes)}


def bench_nightly(tmp: Path) -> list[tuple[str, dict]]:
    state = str(tmp / "nightly")
    setup = measure(prepare_history, state, NIGHTLY_HISTORY_DAYS)
    night = setup["night"]
    ingest = measure(nightly_ingest, state, night)
    features = measure(nightly_features, state, night)
    n = f"{BENCH_CUSTOMERS:,} customers, night {night} after {NIGHTLY_HISTORY_DAYS} days"
    total = {
        "seconds": ingest["seconds"] + features["seconds"],
        "peak_rss_mb": max(ingest["peak_rss_mb"], features["peak_rss_mb"]),
    }
    return [
        (f"(set-up, untimed goal) simulate + load {NIGHTLY_HISTORY_DAYS} days", setup),
        (f"nightly ingest+validate, {n}", ingest),
        ("nightly features (dbt build, one as-of date)", features),
        ("nightly ingest+validate+features total (goal <= 60 s)", total),
    ]
