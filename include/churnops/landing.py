"""Where landing drops live: ``landing/<table>/dt=YYYY-MM-DD/*.parquet``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path


def drop_dir(root: Path, table: str, day: dt.date) -> Path:
    """The folder holding the drop of ``table`` for ``day`` under a landing or quarantine root."""
    return root / table / f"dt={day.isoformat()}"


def drop_files(root: Path, table: str, day: dt.date) -> list[Path]:
    """The drop's Parquet files, sorted; empty when the drop is missing."""
    folder = drop_dir(root, table, day)
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def dropped_days(root: Path, table: str) -> list[dt.date]:
    """Every day that has a drop folder for ``table``, oldest first."""
    folder = root / table
    if not folder.is_dir():
        return []
    days = []
    for child in folder.iterdir():
        if child.is_dir() and child.name.startswith("dt="):
            try:
                days.append(dt.date.fromisoformat(child.name[3:]))
            except ValueError:
                continue
    return sorted(days)


def missing_drops(root: Path, tables: list[str], day: dt.date) -> list[str]:
    """Tables whose drop folder for ``day`` is not there yet (nor was quarantined)."""
    return [t for t in tables if not drop_dir(root, t, day).is_dir()]
