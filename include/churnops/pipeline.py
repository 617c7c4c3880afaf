"""Whole-pipeline entry points that are not a single nightly run.

``bootstrap_history`` gives a new installation its past in one go: the simulated drops
(if the landing area has none), every day validated and loaded, and features and labels
built for every as-of date at once. It writes exactly the rows the nightly path would have
written day by day (tests/e2e/test_bootstrap.py checks this on a short range).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from churnops.settings import Settings

log = logging.getLogger(__name__)
Say = Callable[[str], object]


@dataclass
class BootstrapSummary:
    start: dt.date
    end: dt.date
    simulated_days: int = 0
    rows_loaded: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def render(self) -> str:
        lines = [f"bootstrapped {self.start} .. {self.end}"]
        for stage, seconds in self.seconds.items():
            lines.append(f"  {stage:<10} {seconds:7.1f}s")
        total = sum(self.rows_loaded.values())
        lines.append(
            f"  raw rows loaded: {total:,} ({', '.join(f'{k} {v:,}' for k, v in self.rows_loaded.items())})"
        )
        return "\n".join(lines)


def _ingest_days(settings: Settings, start: dt.date, end: dt.date, say: Say) -> dict[str, int]:
    """Validate and load every day of the range in bulk (same verdicts as day by day)."""
    from churnops.ingest import ingest_range
    from churnops.storage import shared_files_for
    from churnops.stores import stores_for

    def progress(table: str, done: int, total: int) -> None:
        say(f"ingest: {table:<16} {done:>4}/{total} days")

    files = shared_files_for(settings).check()
    result = ingest_range(stores_for(settings).raw, files, start, end, progress=progress)
    return dict(result.rows_loaded)


def bootstrap_history(
    settings: Settings,
    start: dt.date | None = None,
    end: dt.date | None = None,
    say: Say = print,
) -> BootstrapSummary:
    """Simulate (if needed), ingest and build features for every day in [start, end]."""
    from churnops.features import build_features
    from churnops.landing import dropped_days
    from churnops.storage import shared_files_for

    sim = settings.simulation
    start = start or sim.history_start
    end = end or sim.history_end
    summary = BootstrapSummary(start, end)
    wanted = {start + dt.timedelta(days=i) for i in range((end - start).days + 1)}

    began = time.perf_counter()
    landing = shared_files_for(settings).check().landing_dir
    have = set(dropped_days(landing, "usage_daily"))
    if not wanted <= have:
        from churnops.simulate import simulate_days

        first = min(wanted - have)
        say(f"simulate: writing drops {first} .. {end} under {landing}")
        simulate_days(sim, first, end, landing)
        summary.simulated_days = (end - first).days + 1
    summary.seconds["simulate"] = time.perf_counter() - began

    began = time.perf_counter()
    say(f"ingest: validating and loading {len(wanted)} days of drops")
    summary.rows_loaded = _ingest_days(settings, start, end, say)
    summary.seconds["ingest"] = time.perf_counter() - began

    began = time.perf_counter()
    say(f"features: dbt build for as-of dates {start} .. {end}")
    build_features(settings, start, end)
    summary.seconds["features"] = time.perf_counter() - began
    return summary
