"""Ingest: validate a day's landing drops and load the good ones into the raw layer.

For one table and day (``ingest_drop``): read the drop, validate it against the contract
(``churnops.validate``), then either

- pass: cast to the contract's Arrow schema and replace the partition ``raw.<table>``
  ``_drop_date = day`` in one transaction (a rerun replaces, never duplicates), or
- fail: move the drop folder to ``quarantine/<table>/dt=<day>/`` with
  ``validation_result.json`` and GX Data Docs, load nothing, and raise :class:`DropRejected`
  whose text names the file, column, rule and count of each problem.

Every verdict (pass or fail) is also written to ``validation/<table>/dt=<day>/
validation_result.json``. ``ingest_day`` does this for every landing table of a day. Tables are independent: a bad
``invoices`` drop does not stop a good ``usage_daily`` drop from loading, but the day fails
(``DropRejected`` listing every rejected table, raised after the good ones are loaded), so
nothing downstream runs for that day until the bad drop is fixed and the day rerun.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from churnops.contracts import LANDING_TABLES, TableContract, contract_for
from churnops.ingest.quarantine import (
    MOVING_MARKER,
    interrupted_move,
    interrupted_quarantine,
    previous_rejection,
    quarantine_drop,
    quarantine_folder,
)
from churnops.ingest.results import DayIngestResult, DropRejected, IngestResult
from churnops.ingest.store import RawStore
from churnops.landing import drop_dir
from churnops.storage import SharedFiles, glob
from churnops.validate import DropHistory, DropValidation, validate_drop
from churnops.validate.day_over_day import ACTIVE_CUSTOMERS_TABLE, RECENT_DAYS

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


def drop_history(raw: RawStore, contract: TableContract, day: dt.date) -> DropHistory:
    """The warehouse's reference for the day-over-day checks of ``contract`` on ``day``."""
    return DropHistory(
        recent_row_counts=tuple(raw.recent_row_counts(contract.name, day, RECENT_DAYS)),
        active_customers_day_before=raw.row_count(
            ACTIVE_CUSTOMERS_TABLE, day - dt.timedelta(days=1)
        ),
    )


def ingest_drop(raw: RawStore, files: SharedFiles, table: str, day: dt.date) -> IngestResult:
    """Validate the drop of ``table`` for ``day`` and load it, or quarantine it and raise.

    ``files`` are the shared files (landing, validation, quarantine). Raises
    :class:`DropRejected` (a ``ValueError``) when the drop is missing or breaks the
    contract; ``raw.<table>`` then holds exactly what it held before.
    """
    began = time.perf_counter()
    contract = contract_for(table)
    where = f"{contract.name} dt={day.isoformat()}"

    folder = drop_dir(files.landing_dir, contract.name, day)
    if interrupted_move(folder):
        target = quarantine_folder(files.quarantine_dir, contract.name, day)
        raise DropRejected(
            f"{where}: a move to quarantine ({target}) stopped half-way, so {folder} may be "
            f"missing files; delete {folder} (the drop's files are in quarantine) and land "
            f"the drop again, or delete only {folder / MOVING_MARKER} if it is complete",
            table=contract.name,
            day=day,
            quarantine=target,
        )
    if not folder.exists():
        _raise_if_already_quarantined(files, contract, day)
        if not contract.required_every_day:
            return _load(
                raw,
                contract,
                day,
                None,
                began,
                note="no drop on a day the contract allows none: loaded 0 rows",
            )

    history = drop_history(raw, contract, day)
    report = validate_drop(contract, day, files.landing_dir, history)
    # The latest verdict of every drop, passed or not, for audits and monitoring (JSON only:
    # Data Docs are rendered for rejected drops, into their quarantine folder).
    report.write_report(drop_dir(files.validation_dir, contract.name, day), data_docs=False)
    if not report.passed:
        target = quarantine_drop(report, files.quarantine_dir)
        log.warning("%s rejected; drop and report moved to %s", where, target)
        raise DropRejected(
            f"{report.message()}. Quarantined to {target}.",
            table=contract.name,
            day=day,
            report=report,
            quarantine=target,
        )
    log.info("%s", report.message())
    return _load(raw, contract, day, report, began)


def _raise_if_already_quarantined(
    files: SharedFiles, contract: TableContract, day: dt.date
) -> None:
    """A drop already moved to quarantine is not "missing": repeat its verdict (retries)."""
    target = quarantine_folder(files.quarantine_dir, contract.name, day)
    leftover = interrupted_quarantine(files.quarantine_dir, contract.name, day)
    where = f"{contract.name} dt={day.isoformat()}"
    if glob(target, "*.parquet"):
        previous = previous_rejection(files.quarantine_dir, contract.name, day)
        raise DropRejected(
            f"{where} is in quarantine ({target}), not in landing; it was rejected as: "
            f"{previous} (move the fixed drop to landing to validate it again)",
            table=contract.name,
            day=day,
            quarantine=target,
        )
    if leftover is not None:
        raise DropRejected(
            f"{where} is not in landing: an interrupted quarantine left it in {leftover}; "
            "move it back to landing to validate it again",
            table=contract.name,
            day=day,
            quarantine=leftover,
        )


def _load(
    raw: RawStore,
    contract: TableContract,
    day: dt.date,
    report: DropValidation | None,
    began: float,
    note: str = "",
) -> IngestResult:
    """Replace the day's partition with the validated rows (no report: an empty day)."""
    schema = contract.arrow_schema()
    if report is None:
        rows = schema.empty_table()
        files: list[str] = []
    else:
        if not report.passed or report.data is None:
            raise RuntimeError(f"{contract.name} dt={day}: only a validated drop can be loaded")
        rows = report.data.select(list(contract.column_names)).cast(schema)
        root = f"{contract.name}/dt={day.isoformat()}"
        files = [f"{root}/{name}" for name in report.file_names]
    loaded = raw.replace_partition(contract, day, rows, files)
    if report is not None:
        report.data = None  # loaded: do not keep a day's rows alive in the result
    result = IngestResult(
        table=contract.name,
        day=day,
        rows_loaded=loaded,
        source_files=tuple(files),
        seconds=time.perf_counter() - began,
        validation=report,
        note=note,
    )
    log.info("%s dt=%s: loaded %d rows in %.1fs", contract.name, day, loaded, result.seconds)
    return result


def ingest_day(
    raw: RawStore,
    files: SharedFiles,
    day: dt.date,
    tables: Iterable[str] | None = None,
) -> DayIngestResult:
    """Ingest every landing table (or ``tables``) for ``day``; each table on its own.

    Good drops are loaded even when another table's drop is rejected; then one
    :class:`DropRejected` lists every rejected table, so the day's run fails.
    """
    names = list(tables) if tables is not None else list(LANDING_TABLES)
    for name in names:
        contract_for(name)  # unknown names fail before anything is loaded
    loaded: dict[str, IngestResult] = {}
    rejected: dict[str, DropRejected] = {}
    for name in names:
        try:
            loaded[name] = ingest_drop(raw, files, name, day)
        except DropRejected as error:
            rejected[name] = error
    if rejected:
        head = (
            f"dt={day.isoformat()}: {len(rejected)} of {len(names)} drop(s) rejected "
            f"({', '.join(rejected)}); loaded: {', '.join(loaded) or 'none'}"
        )
        raise DropRejected(
            "\n".join([head, *(f"- {error}" for error in rejected.values())]),
            day=day,
            rejections=rejected,
            loaded=loaded,
        )
    return DayIngestResult(day=day, loaded=loaded)
