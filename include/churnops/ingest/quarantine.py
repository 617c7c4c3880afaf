"""Quarantine: where a rejected drop goes, with the report that says why.

``quarantine/<table>/dt=YYYY-MM-DD/`` has the landing layout: the drop's files as they
arrived, plus ``validation_result.json`` and (when GX ran) ``data_docs/index.html``. A new
rejection of the same day replaces the old quarantine whole; the swap is a rename, so a
crash leaves either the old quarantine or the new one.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from pathlib import Path

from churnops.landing import drop_dir
from churnops.validate import REPORT_FILE, DropValidation


def quarantine_folder(quarantine_dir: Path, table: str, day: dt.date) -> Path:
    return drop_dir(quarantine_dir, table, day)


def quarantine_drop(report: DropValidation, quarantine_dir: Path) -> Path:
    """Move the drop's folder (if any) to quarantine with its report; return the new folder.

    The report is written first (if that fails, the drop stays in landing), then the drop
    folder is moved whole with one rename (never file by file: a half-moved drop left in
    landing could pass validation on a retry), then swapped into place.
    """
    target = quarantine_folder(quarantine_dir, report.table, report.day)
    target.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    written = target.with_name(f".{target.name}.{tag}.report")
    staging = target.with_name(f".{target.name}.{tag}.tmp")
    try:
        report.write_report(written)
    except BaseException:
        shutil.rmtree(written, ignore_errors=True)
        raise
    if report.folder.is_dir():
        # A rename when landing and quarantine share a file system (the usual case).
        shutil.move(str(report.folder), str(staging))
    else:
        staging.mkdir()
    for item in written.iterdir():
        destination = staging / item.name
        if destination.is_dir():
            shutil.rmtree(destination)
        elif destination.exists():
            destination.unlink()
        item.rename(destination)
    written.rmdir()
    if target.exists():
        trash = target.with_name(f".{target.name}.{tag}.old")
        target.rename(trash)
        staging.rename(target)
        shutil.rmtree(trash)
    else:
        staging.rename(target)
    return target


def interrupted_quarantine(quarantine_dir: Path, table: str, day: dt.date) -> Path | None:
    """A drop folder left half-way to quarantine by a crash, if there is one."""
    target = quarantine_folder(quarantine_dir, table, day)
    if not target.parent.is_dir():
        return None
    leftovers = sorted(target.parent.glob(f".{target.name}.*.tmp"))
    return leftovers[-1] if leftovers else None


def previous_rejection(quarantine_dir: Path, table: str, day: dt.date) -> str | None:
    """The message of the quarantined report of this drop, if it was rejected before."""
    path = quarantine_folder(quarantine_dir, table, day) / REPORT_FILE
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text())["message"])
    except (OSError, ValueError, KeyError):
        return f"(unreadable report {path})"
