"""The simulated source system: daily landing drops of a customer base whose behaviour drives churn.

``simulate_days`` writes ``landing/<table>/dt=YYYY-MM-DD/part-0.parquet`` for every
landing table and every day of a range, exactly per ``churnops.contracts``. Output is a
pure function of the settings: the same seed gives the same bytes of data whatever range
or order the days are generated in.

Scenarios are definitions (``churnops.simulate.scenario``), identical to the baseline
before their start: the shipped ones in ``scenarios/`` (``SimulationSettings.scenario``),
or a user's file (``SimulationSettings.scenario_file``):

- ``baseline``: a steady base; about 8% of customers churn within 90 days.
- ``acquisition_campaign``: for 45 days from the start, a campaign brings a wave of
  customers sold a discounted premium bundle: the active base gets younger (tenure) and
  its invoices larger (list amount). Covariate drift.
- ``price_increase``: from the start, customers react much more strongly to what they pay
  (bill size, late payments, the end of a discount). Feature distributions stay as they
  were; the relation between billing features and churn changes. Concept drift.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from churnops.contracts import LANDING_TABLES
from churnops.landing import drop_dir
from churnops.settings import SimulationSettings
from churnops.simulate.corrupt import (
    CORRUPTION_KINDS,
    Corruption,
    CorruptionError,
    corrupt_table,
    truncate_file,
)
from churnops.simulate.drops import DayGenerator, days_between
from churnops.simulate.population import (
    STREAM_CORRUPT,
    build_population,
    day_index,
    rng_for,
    scenario_of,
    scenario_start,
)
from churnops.simulate.scenario import Scenario, ScenarioError
from churnops.storage import put_file, remove_tree

if TYPE_CHECKING:
    from churnops.storage import Location

__all__ = [
    "CORRUPTION_KINDS",
    "Corruption",
    "CorruptionError",
    "Scenario",
    "ScenarioError",
    "SimulationSummary",
    "simulate_days",
]

PART_FILE = "part-0.parquet"
ProgressCallback = Callable[[dt.date, int, int], None]


@dataclass
class TableSummary:
    files: int = 0
    rows: int = 0
    bytes: int = 0


@dataclass
class SimulationSummary:
    """What a simulation wrote, and where."""

    landing_dir: Location
    start: dt.date
    end: dt.date
    settings: SimulationSettings
    scenario: Scenario
    tables: dict[str, TableSummary] = field(default_factory=dict)
    corruptions: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def render(self) -> str:
        s = self.settings
        lines = [
            f"simulated {self.days} day(s) {self.start} .. {self.end} "
            f"(scenario {self.scenario.name}, from {scenario_start(s, self.scenario)}; "
            f"base {s.customers:,} customers; seed {s.seed}) in {self.seconds:.1f}s",
            f"landing drops under {self.landing_dir}",
            f"  {'table':<16} {'files':>6} {'rows':>12} {'MB':>8}",
        ]
        for name, t in self.tables.items():
            lines.append(f"  {name:<16} {t.files:>6} {t.rows:>12,} {t.bytes / 1e6:>8.1f}")
        lines.extend(f"  corrupted: {c}" for c in self.corruptions)
        return "\n".join(lines)


def _write_drop(
    folder: Location, table: pa.Table, corruption: Corruption | None
) -> tuple[int, str | None]:
    """Write one drop atomically (a temp folder renamed into place); return bytes written.

    On an object store the file is written locally, then put as one object once the old
    drop's objects are gone (the one file appears whole or not at all)."""
    if not isinstance(folder, Path):
        return _put_drop(folder, table, corruption)
    tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir(parents=True)
    path = tmp / PART_FILE
    pq.write_table(table, path, compression="zstd")
    note = truncate_file(path) if corruption and corruption.kind == "truncated_file" else None
    size = path.stat().st_size
    if folder.exists():
        trash = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(folder, trash)
        os.replace(tmp, folder)
        shutil.rmtree(trash)
    else:
        os.replace(tmp, folder)
    return size, note


def _put_drop(
    folder: Location, table: pa.Table, corruption: Corruption | None
) -> tuple[int, str | None]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="churnops-drop-") as tmp:
        path = Path(tmp) / PART_FILE
        pq.write_table(table, path, compression="zstd")
        note = truncate_file(path) if corruption and corruption.kind == "truncated_file" else None
        remove_tree(folder)
        put_file(path, folder / PART_FILE)
        return path.stat().st_size, note


def simulate_days(
    settings: SimulationSettings,
    start: dt.date,
    end: dt.date,
    landing_dir: Location,
    corruptions: Iterable[Corruption] = (),
    tables: Iterable[str] | None = None,
    progress: ProgressCallback | None = None,
) -> SimulationSummary:
    """Write the landing drops of every table for every day in ``[start, end]``."""
    if start < settings.history_start:
        raise ValueError(
            f"start {start} is before the feed's first day {settings.history_start} "
            "(set CHURNOPS_SIM_START to move it)"
        )
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    names = list(tables) if tables is not None else list(LANDING_TABLES)
    by_key = {(c.day, c.table): c for c in corruptions}
    for c in by_key.values():
        if not start <= c.day <= end:
            raise CorruptionError(f"corruption day {c.day} is outside {start} .. {end}")

    began = time.perf_counter()
    scenario = scenario_of(settings)
    population = build_population(settings, day_index(settings, end), scenario)
    generator = DayGenerator(settings, population)
    summary = SimulationSummary(landing_dir, start, end, settings, scenario)
    summary.tables = {name: TableSummary() for name in names}
    days = days_between(start, end)
    for i, day in enumerate(days, start=1):
        t = day_index(settings, day)
        for name in names:
            table = generator.table(name, t)
            corruption = by_key.get((day, name))
            folder = drop_dir(landing_dir, name, day)
            if corruption and corruption.kind == "missing_drop":
                remove_tree(folder)
                summary.corruptions.append(f"{name} dt={day}: missing_drop (no folder written)")
                continue
            if corruption and corruption.kind != "truncated_file":
                rng = rng_for(settings, STREAM_CORRUPT, t)
                table, done = corrupt_table(table, corruption, rng)
                summary.corruptions.append(done)
            size, truncation = _write_drop(folder, table, corruption)
            if truncation:
                summary.corruptions.append(f"{name} dt={day}: {truncation}")
            stats = summary.tables[name]
            stats.files += 1
            stats.rows += table.num_rows
            stats.bytes += size
        if progress is not None:
            progress(day, i, len(days))
    summary.seconds = time.perf_counter() - began
    return summary
