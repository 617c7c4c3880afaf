"""What an ingest returns or raises: the results of a drop, a day and a range, and
:class:`DropRejected`.

A leaf module: the per-drop path (``loader``) and the range path (``bulk``) both make and
read these, so neither imports the other for its types.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from churnops.storage import Location
    from churnops.validate import DropValidation


class DropRejected(ValueError):
    """A drop (or a day's drops) failed validation: nothing of it was loaded.

    ``str(error)`` is the readable verdict. For one drop ``report`` holds the validation and
    ``quarantine`` where the drop went; for a day ``rejections`` maps every rejected table
    to its own ``DropRejected`` and ``loaded`` the tables that did load; for a range
    (``ingest_range``) ``rejections`` maps ``"<table> dt=<day>"`` to the drop's
    ``DropRejected`` and ``range_result`` is the ``RangeIngestResult`` of what did load.
    """

    def __init__(
        self,
        message: str,
        *,
        table: str | None = None,
        day: dt.date | None = None,
        report: DropValidation | None = None,
        quarantine: Location | None = None,
        rejections: dict[str, DropRejected] | None = None,
        loaded: dict[str, IngestResult] | None = None,
        range_result: RangeIngestResult | None = None,
    ) -> None:
        super().__init__(message)
        self.table = table
        self.day = day
        self.report = report
        self.quarantine = quarantine
        self.rejections = rejections or {}
        self.loaded = loaded or {}
        self.range_result = range_result


@dataclass(frozen=True)
class IngestResult:
    """One drop loaded into ``raw.<table>``."""

    table: str
    day: dt.date
    rows_loaded: int
    source_files: tuple[str, ...]
    seconds: float
    validation: DropValidation | None = field(default=None, repr=False, compare=False)
    note: str = ""


@dataclass(frozen=True)
class DayIngestResult:
    """Every table of a day loaded (a day with a rejected table raises instead)."""

    day: dt.date
    loaded: dict[str, IngestResult]

    @property
    def rows_loaded(self) -> dict[str, int]:
        return {name: r.rows_loaded for name, r in self.loaded.items()}

    def summary(self) -> dict[str, object]:
        """A JSON-ready summary (for task logs and XCom)."""
        return {
            "day": self.day.isoformat(),
            "rows_loaded": self.rows_loaded,
            "source_files": {name: list(r.source_files) for name, r in self.loaded.items()},
        }


@dataclass(frozen=True)
class TableRangeResult:
    """What ``ingest_range`` did with one table."""

    table: str
    rows_loaded: int
    days_loaded: tuple[dt.date, ...]
    # Every rejected day, with the per-drop path's DropRejected (its str is the verdict).
    rejected: dict[dt.date, DropRejected] = field(default_factory=dict)
    # Days that went through the per-drop path (rejected, or passed it and loaded).
    checked_per_drop: tuple[dt.date, ...] = ()
    seconds: float = 0.0

    @property
    def messages(self) -> dict[dt.date, str]:
        return {day: str(error) for day, error in sorted(self.rejected.items())}


@dataclass(frozen=True)
class RangeIngestResult:
    """Every table of ``[start, end]``: rows and days loaded, days rejected."""

    start: dt.date
    end: dt.date
    tables: dict[str, TableRangeResult]
    seconds: float = 0.0

    @property
    def rows_loaded(self) -> dict[str, int]:
        return {name: t.rows_loaded for name, t in self.tables.items()}

    @property
    def days_loaded(self) -> dict[str, int]:
        return {name: len(t.days_loaded) for name, t in self.tables.items()}

    @property
    def rejected(self) -> dict[str, dict[dt.date, DropRejected]]:
        return {name: dict(t.rejected) for name, t in self.tables.items() if t.rejected}

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (for task logs and XCom)."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "seconds": round(self.seconds, 1),
            "rows_loaded": self.rows_loaded,
            "days_loaded": self.days_loaded,
            "days_checked_per_drop": {
                name: [d.isoformat() for d in t.checked_per_drop] for name, t in self.tables.items()
            },
            "rejected": {
                name: {d.isoformat(): message for d, message in t.messages.items()}
                for name, t in self.tables.items()
                if t.rejected
            },
        }
