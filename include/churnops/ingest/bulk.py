"""Ingest a range of days at once: the history bootstrap, with the per-drop verdicts.

``ingest_range`` gives the warehouse exactly what ``ingest_day`` over every day of the range,
oldest first, would give it (same rows, same quarantines, same messages), in a fraction of
the time. Per table:

1. each day's drop is read with the per-drop readability step (``read_drop``); a drop that
   cannot be stacked (unreadable, missing, columns or types not the contract's... see
   ``validate.ranges.range_misfit``) is left to the per-drop path;
2. the other drops are stacked, up to ``chunk_rows`` rows or ``chunk_days`` days at a time,
   and checked with ONE GX run of the table's range suite; days with a failing row are
   *flagged*;
3. the days are then walked in order. The day-over-day checks are computed from counts:
   the loaded history (``raw._loaded_drops``) plus the days of the range already accepted,
   exactly as the per-drop path would find them in the warehouse. A flagged, misfit or
   day-over-day-failing day goes through ``ingest_drop`` (after the accepted days before it
   are loaded, so it sees the same history): it gets the per-drop verdict, quarantine and
   message. Every other day is loaded as its own partition (``_drop_date``), many
   partitions per DuckDB transaction, and its verdict written to ``validation/`` as the
   per-drop path writes it.

Tables are processed one after the other, ``usage_daily`` first: the churn check of day D
reads the usage rows loaded for D-1. Rejected days raise one :class:`DropRejected` at the
end, after every good day is loaded, like ``ingest_day``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from churnops.contracts import LANDING_TABLES, TableContract, contract_for
from churnops.ingest.loader import ingest_drop
from churnops.ingest.results import DropRejected, RangeIngestResult, TableRangeResult
from churnops.ingest.store import Partition, RawStore
from churnops.landing import drop_dir
from churnops.storage import SharedFiles, write_text
from churnops.validate import DropHistory, DropValidation
from churnops.validate.day_over_day import (
    ACTIVE_CUSTOMERS_TABLE,
    RECENT_DAYS,
    day_over_day_failures,
)
from churnops.validate.frames import ReadDrop, read_drop
from churnops.validate.ranges import RangeValidation, RangeValidator, contract_rows, range_misfit
from churnops.validate.suites import suite_name

if TYPE_CHECKING:
    import pyarrow as pa

    from churnops.storage import Location

log = logging.getLogger(__name__)

# Rows and days per GX run. GX costs ~0.3 s per run plus ~0.7 s per million usage rows;
# measured on 240 days of usage_daily at 20,000 customers (4.7M rows), CPU seconds per
# days-per-run: 15: 5.5, 30: 3.8, 60: 3.3, 120: 3.1, 240: 4.3 (and 1.6 GB). So a run takes
# ~1.5M rows (75 days of usage_daily, ~200 MB as Arrow + pandas), and at most a year of a
# small table's days.
DEFAULT_CHUNK_ROWS = 1_500_000
DEFAULT_CHUNK_DAYS = 366
# Where the range runs' GX results go, beside the per-drop verdicts of validation/<table>/.
RANGE_REPORTS_DIR = "_ranges"

ProgressCallback = Callable[[str, int, int], None]


def ingest_range(
    raw: RawStore,
    files: SharedFiles,
    start: dt.date,
    end: dt.date,
    tables: Iterable[str] | None = None,
    progress: ProgressCallback | None = None,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    chunk_days: int = DEFAULT_CHUNK_DAYS,
) -> RangeIngestResult:
    """Validate and load every landing table (or ``tables``) for every day of ``[start, end]``.

    The same result as ``ingest_day`` on each day, oldest first. ``progress(table, done_days,
    total_days)`` is called as days are settled; one GX run checks up to ``chunk_rows`` rows
    or ``chunk_days`` days of a table, whichever comes first. Good days are loaded even when
    others are rejected; then one :class:`DropRejected` lists every rejected day of every
    table (its ``range_result`` holds the :class:`RangeIngestResult`).
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    if chunk_days < 1 or chunk_rows < 1:
        raise ValueError(f"chunk_days and chunk_rows must be positive: {chunk_days}, {chunk_rows}")
    names = list(dict.fromkeys(tables)) if tables is not None else list(LANDING_TABLES)
    contracts = [contract_for(name) for name in names]  # unknown names fail first
    # The churn check of a day reads the usage rows loaded for the day before.
    contracts.sort(key=lambda c: c.name != ACTIVE_CUSTOMERS_TABLE)
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]

    began = time.perf_counter()
    results: dict[str, TableRangeResult] = {}
    raw.ensure(contracts)
    for contract in contracts:
        results[contract.name] = _TableRange(raw, files, contract, days, progress).run(
            chunk_rows, chunk_days
        )
    result = RangeIngestResult(
        start=start,
        end=end,
        tables={name: results[name] for name in names},
        seconds=time.perf_counter() - began,
    )
    rejected = {
        f"{name} dt={day.isoformat()}": error
        for name, t in result.tables.items()
        for day, error in sorted(t.rejected.items())
    }
    if rejected:
        head = (
            f"{start.isoformat()} .. {end.isoformat()}: {len(rejected)} drop(s) rejected "
            f"({', '.join(rejected)}); loaded: "
            + ", ".join(f"{name} {n} day(s)" for name, n in result.days_loaded.items())
        )
        raise DropRejected(
            "\n".join([head, *(f"- {error}" for error in rejected.values())]),
            rejections=rejected,
            range_result=result,
        )
    return result


@dataclass
class _Accepted:
    """A day that passed the range run and the day-over-day checks: to be loaded."""

    day: dt.date
    rows: pa.Table
    drop: ReadDrop
    skipped: list[str]
    check: RangeValidation


class _TableRange:
    """``ingest_range`` for one table: read, range-check, settle day by day, load."""

    def __init__(
        self,
        raw: RawStore,
        files: SharedFiles,
        contract: TableContract,
        days: list[dt.date],
        progress: ProgressCallback | None,
    ) -> None:
        self.raw = raw
        self.files = files
        self.contract = contract
        self.days = days
        self.progress = progress
        # The warehouse's view of this table, kept as the per-drop path would find it.
        self.loaded = raw.row_counts(contract.name)
        self.loaded_days = sorted(self.loaded)
        self.active: dict[dt.date, int] = {}
        if contract.max_share_of_active_customers is not None:
            self.active = raw.row_counts(ACTIVE_CUSTOMERS_TABLE)
        self.validator: RangeValidator | None = None
        self.pending: list[_Accepted] = []
        self.rows_loaded = 0
        self.days_loaded: list[dt.date] = []
        self.rejected: dict[dt.date, DropRejected] = {}
        self.per_drop: list[dt.date] = []
        self.seconds: dict[str, float] = {"read": 0.0, "range_check": 0.0, "load": 0.0}

    # ------------------------------------------------------------------ the walk
    def run(self, chunk_rows: int, chunk_days: int) -> TableRangeResult:
        began = time.perf_counter()
        done = 0
        chunk: list[tuple[dt.date, ReadDrop, str | None]] = []
        rows = 0
        for i, day in enumerate(self.days):
            read_began = time.perf_counter()
            folder = drop_dir(self.files.landing_dir, self.contract.name, day)
            drop = read_drop(folder, self.contract)
            misfit = range_misfit(self.contract, drop)
            chunk.append((day, drop, misfit))
            rows += drop.table.num_rows if misfit is None and drop.table is not None else 0
            self.seconds["read"] += time.perf_counter() - read_began
            if rows >= chunk_rows or len(chunk) >= chunk_days or i == len(self.days) - 1:
                self._settle_chunk(chunk)
                self._flush()  # bounded memory: a chunk is loaded before the next is read
                done += len(chunk)
                chunk, rows = [], 0
                if self.progress is not None:
                    self.progress(self.contract.name, done, len(self.days))
        seconds = time.perf_counter() - began
        log.info(
            "%s %s .. %s: loaded %d day(s), %s rows; rejected %d; checked per drop %d; "
            "%.1fs (read %.1fs, range check %.1fs, load %.1fs)",
            self.contract.name,
            self.days[0],
            self.days[-1],
            len(self.days_loaded),
            f"{self.rows_loaded:,}",
            len(self.rejected),
            len(self.per_drop),
            seconds,
            self.seconds["read"],
            self.seconds["range_check"],
            self.seconds["load"],
        )
        return TableRangeResult(
            table=self.contract.name,
            rows_loaded=self.rows_loaded,
            days_loaded=tuple(sorted(self.days_loaded)),
            rejected=dict(sorted(self.rejected.items())),
            checked_per_drop=tuple(self.per_drop),
            seconds=seconds,
        )

    def _settle_chunk(self, chunk: list[tuple[dt.date, ReadDrop, str | None]]) -> None:
        """Range-check the chunk's fitting drops in one GX run, then settle its days in order."""
        began = time.perf_counter()
        drops = {day: drop for day, drop, misfit in chunk if misfit is None}
        misfits = {day: misfit for day, _, misfit in chunk if misfit is not None}
        rows = {day: contract_rows(self.contract, d.table) for day, d in drops.items()}
        self.seconds["read"] += time.perf_counter() - began

        check: RangeValidation | None = None
        if drops:
            began = time.perf_counter()
            if self.validator is None:
                self.validator = RangeValidator(self.contract)
            check = self.validator.run(list(rows), list(rows.values()))
            self.seconds["range_check"] += time.perf_counter() - began
            self._write_range_report(check)

        for day, _, _ in chunk:
            if day in misfits:
                self._per_drop(day, misfits[day])
                continue
            if check is not None and day in check.flagged:
                self._per_drop(day, "; ".join(check.flagged[day]))
                continue
            count = rows[day].num_rows
            files = ", ".join(f.name for f in drops[day].files)
            failures, skipped = day_over_day_failures(
                self.contract, count, self._history(day), files
            )
            if failures:
                self._per_drop(day, "; ".join(f.sentence() for f in failures))
                continue
            assert check is not None  # every fitting day was checked
            self.pending.append(_Accepted(day, rows.pop(day), drops.pop(day), skipped, check))
            self._mark_loaded(day, count)

    def _history(self, day: dt.date) -> DropHistory:
        """What ``loader.drop_history`` would read from the warehouse for ``day``."""
        before = bisect.bisect_left(self.loaded_days, day)
        recent = self.loaded_days[max(0, before - RECENT_DAYS) : before][::-1]
        return DropHistory(
            recent_row_counts=tuple(self.loaded[d] for d in recent),
            active_customers_day_before=self.active.get(day - dt.timedelta(days=1)),
        )

    def _mark_loaded(self, day: dt.date, rows: int) -> None:
        if day not in self.loaded:
            bisect.insort(self.loaded_days, day)
        self.loaded[day] = rows

    def _per_drop(self, day: dt.date, why: str) -> None:
        """The per-drop path for one day, on the warehouse as it would be by then."""
        self._flush()
        log.info("%s dt=%s: checked per drop (%s)", self.contract.name, day, why)
        self.per_drop.append(day)
        try:
            result = ingest_drop(self.raw, self.files, self.contract.name, day)
        except DropRejected as error:
            self.rejected[day] = error
            return
        self._mark_loaded(day, result.rows_loaded)
        self.rows_loaded += result.rows_loaded
        self.days_loaded.append(day)

    # ------------------------------------------------------------------ loading
    def _flush(self) -> None:
        """Load the accepted days, each as its own partition, in one transaction."""
        if not self.pending:
            return
        began = time.perf_counter()
        accepted, self.pending = self.pending, []
        loaded = self.raw.replace_partitions(
            self.contract,
            [
                Partition(
                    a.day,
                    a.rows,
                    [f"{self.contract.name}/dt={a.day.isoformat()}/{f.name}" for f in a.drop.files],
                )
                for a in accepted
            ],
        )
        self.rows_loaded += loaded
        self.days_loaded.extend(a.day for a in accepted)
        self.seconds["load"] += time.perf_counter() - began
        self._write_verdicts(accepted)

    # ------------------------------------------------------------------ reports
    def _write_verdicts(self, accepted: list[_Accepted]) -> None:
        """Each loaded day's verdict in ``validation/<table>/dt=<day>/``, as per drop."""
        for a in accepted:
            report = DropValidation(
                table=self.contract.name,
                day=a.day,
                folder=a.drop.folder,
                files=a.drop.files,
                row_count=a.rows.num_rows,
                skipped_checks=a.skipped,
                expectations_evaluated=a.check.expectations_evaluated,
                validated_with=(
                    f"range suite {suite_name(self.contract, per_range=True)} over "
                    f"dt={a.check.first.isoformat()}..{a.check.last.isoformat()} "
                    f"({a.check.row_count:,} rows of {len(a.check.days)} drops, one GX run; "
                    f"result in {self._range_report_path(a.check)})"
                ),
            )
            report.write_report(
                drop_dir(self.files.validation_dir, self.contract.name, a.day), data_docs=False
            )

    def _range_report_path(self, check: RangeValidation) -> Location:
        folder = self.files.validation_dir / self.contract.name / RANGE_REPORTS_DIR
        return folder / f"{check.first.isoformat()}_{check.last.isoformat()}.json"

    def _write_range_report(self, check: RangeValidation) -> None:
        write_text(
            self._range_report_path(check),
            json.dumps(check.summary(), indent=2, default=str) + "\n",
        )


__all__ = [
    "DEFAULT_CHUNK_DAYS",
    "DEFAULT_CHUNK_ROWS",
    "RangeIngestResult",
    "TableRangeResult",
    "ingest_range",
]
