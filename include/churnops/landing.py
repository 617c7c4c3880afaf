"""Where landing drops live: ``landing/<table>/dt=YYYY-MM-DD/*.parquet``.

Roots are locations of the shared files (``churnops.storage``): a local ``Path`` or an
object-store ``UPath``; the same functions list both.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from churnops.storage import Location


def drop_dir(root: Location, table: str, day: dt.date) -> Location:
    """The folder holding the drop of ``table`` for ``day`` under a landing or quarantine root."""
    return root / table / f"dt={day.isoformat()}"


def drop_files(root: Location, table: str, day: dt.date) -> list[Location]:
    """The drop's Parquet files, sorted; empty when the drop is missing."""
    from churnops.storage import glob

    return glob(drop_dir(root, table, day), "*.parquet")


def dropped_days(root: Location, table: str) -> list[dt.date]:
    """Every day that has a drop folder for ``table``, oldest first."""
    folder = root / table
    if not folder.is_dir():
        return []
    days = []
    for child in folder.iterdir():
        if child.name.startswith("dt=") and child.is_dir():
            try:
                days.append(dt.date.fromisoformat(child.name[3:]))
            except ValueError:
                continue
    return sorted(days)


def missing_drops(root: Location, tables: list[str], day: dt.date) -> list[str]:
    """Tables whose drop folder for ``day`` is not there yet (nor was quarantined)."""
    return [t for t in tables if not drop_dir(root, t, day).is_dir()]
