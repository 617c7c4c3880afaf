"""churnops benchmarks: `make bench` (all) or `make bench BENCH=simulate` (one group).

Each measurement runs in a fresh child process so its peak memory (max RSS) is its own.
Figures are printed as a table; nothing here asserts a time (speed is measured, not tested).
Data goes to a temporary folder that is deleted afterwards.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("DO_NOT_TRACK", "true")
BENCH_CUSTOMERS = int(os.environ.get("CHURNOPS_BENCH_CUSTOMERS", "500000"))


def _child(fn: Callable[..., dict], args: tuple, queue: mp.Queue) -> None:
    began = time.perf_counter()
    figures = fn(*args)
    figures.setdefault("seconds", time.perf_counter() - began)
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(figures)


def measure(fn: Callable[..., dict], *args: object) -> dict:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    figures = queue.get()
    proc.join()
    return figures


# ----------------------------------------------------------------------------- simulate
def simulate_range(customers: int, start: str, days: int, out: str) -> dict:
    from churnops.settings import SimulationSettings
    from churnops.simulate import simulate_days

    settings = SimulationSettings(customers=customers)
    first = dt.date.fromisoformat(start)
    summary = simulate_days(settings, first, first + dt.timedelta(days=days - 1), Path(out))
    return {
        "seconds": summary.seconds,
        "rows": sum(t.rows for t in summary.tables.values()),
        "files": sum(t.files for t in summary.tables.values()),
        "mb": sum(t.bytes for t in summary.tables.values()) / 1e6,
    }


def bench_simulate(tmp: Path) -> list[tuple[str, dict]]:
    from churnops.settings import SimulationSettings

    demo = SimulationSettings()
    last_day = demo.history_end.isoformat()
    return [
        (
            f"simulate 1 day, {BENCH_CUSTOMERS:,} customers, first day (base snapshot)",
            measure(
                simulate_range, BENCH_CUSTOMERS, demo.history_start.isoformat(), 1, str(tmp / "a")
            ),
        ),
        (
            f"simulate 1 day, {BENCH_CUSTOMERS:,} customers, day {demo.history_days} ({last_day})",
            measure(simulate_range, BENCH_CUSTOMERS, last_day, 1, str(tmp / "b")),
        ),
        (
            f"simulate {demo.history_days} days (18 months), {demo.customers:,} customers (demo)",
            measure(
                simulate_range,
                demo.customers,
                demo.history_start.isoformat(),
                demo.history_days,
                str(tmp / "c"),
            ),
        ),
    ]


# ----------------------------------------------------------------------------- nightly
NIGHTLY_HISTORY_DAYS = int(os.environ.get("CHURNOPS_BENCH_HISTORY_DAYS", "90"))


def _bench_settings(state: str):
    from churnops.settings import load_settings

    return load_settings(
        {"CHURNOPS_STATE_DIR": state, "CHURNOPS_SIM_CUSTOMERS": str(BENCH_CUSTOMERS)}
    )


def prepare_history(state: str, days: int) -> dict:
    """Untimed set-up: the nightly's 90-day window of drops, simulated and loaded."""
    from churnops.ingest import ingest_range
    from churnops.simulate import simulate_days

    settings = _bench_settings(state)
    start = settings.simulation.history_start
    night = start + dt.timedelta(days=days)
    simulate_days(settings.simulation, start, night, settings.paths.landing_dir)
    ingest_range(settings, start, night - dt.timedelta(days=1))
    return {"night": night.isoformat()}


def nightly_ingest(state: str, night: str) -> dict:
    began = time.perf_counter()
    import great_expectations  # noqa: F401  (paid once per task process)

    imported = time.perf_counter() - began
    from churnops.ingest import ingest_day

    began = time.perf_counter()
    result = ingest_day(_bench_settings(state), dt.date.fromisoformat(night))
    return {
        "seconds": time.perf_counter() - began,
        "gx_import_s": imported,
        "rows": sum(result.rows_loaded.values()),
    }


def nightly_features(state: str, night: str) -> dict:
    from churnops.features import build_features

    day = dt.date.fromisoformat(night)
    run = build_features(_bench_settings(state), day, day)
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


GROUPS: dict[str, Callable[[Path], list[tuple[str, dict]]]] = {
    "simulate": bench_simulate,
    "nightly": bench_nightly,
}


def _figure(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def main(selected: list[str]) -> int:
    names = selected or list(GROUPS)
    unknown = [n for n in names if n not in GROUPS]
    if unknown:
        print(f"unknown benchmark group(s) {unknown}; known: {list(GROUPS)}", file=sys.stderr)
        return 2
    print(f"churnops benchmarks on {os.cpu_count()} cores ({', '.join(names)})")
    with tempfile.TemporaryDirectory(prefix="churnops-bench-") as tmp:
        for name in names:
            print(f"\n== {name}", flush=True)
            for label, figures in GROUPS[name](Path(tmp)):
                extra = "  ".join(
                    f"{k}={_figure(v)}"
                    for k, v in figures.items()
                    if k not in {"seconds", "peak_rss_mb"}
                )
                print(
                    f"{label:<72} {figures['seconds']:8.2f} s  peak {figures['peak_rss_mb']:7.0f} MB  {extra}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
