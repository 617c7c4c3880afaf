"""``simulate``: the simulator, one day at the benchmark size (the first day and the
last day of the demo history) and the demo's whole 18 months."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from bench.harness import BENCH_CUSTOMERS, measure


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
