"""Quarantine: where a rejected drop goes, with the report that says why.

``quarantine/<table>/dt=YYYY-MM-DD/`` has the landing layout: the drop's files as they
arrived, plus ``validation_result.json`` and (when GX ran) ``data_docs/index.html``. A new
rejection of the same day replaces the old quarantine whole.

On a local (or mounted) base the swap is a rename, so a crash leaves either the old
quarantine or the new one. An object store has no rename of a folder: the drop is copied
(files, then the report last), a marker (``MOVING_MARKER``) is put in the landing folder,
and only then are the landing files deleted, the marker last. A crash while landing is
being emptied leaves the marker: the loader then refuses the half-emptied folder (a drop
missing a file could pass validation) and says what to do.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from churnops.landing import drop_dir
from churnops.validate import REPORT_FILE, DropValidation

if TYPE_CHECKING:
    from churnops.storage import Location

# Put in a landing folder on an object store while its files move to quarantine.
MOVING_MARKER = "_MOVING_TO_QUARANTINE"


def quarantine_folder(quarantine_dir: Location, table: str, day: dt.date) -> Location:
    return drop_dir(quarantine_dir, table, day)


def quarantine_drop(report: DropValidation, quarantine_dir: Location) -> Location:
    """Move the drop's folder (if any) to quarantine with its report; return the new folder.

    The report is written first (if that fails, the drop stays in landing), then the drop
    folder is moved whole with one rename (never file by file: a half-moved drop left in
    landing could pass validation on a retry), then swapped into place. On an object
    store, see the module's docstring.
    """
    target = quarantine_folder(quarantine_dir, report.table, report.day)
    if not isinstance(target, Path) or not isinstance(report.folder, Path):
        return _quarantine_on_object_store(report, target)
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


def _quarantine_on_object_store(report: DropValidation, target: Location) -> Location:
    from churnops.storage import copy_file, glob, put_folder, remove_tree, write_bytes

    landing_files = glob(report.folder, "*")
    with tempfile.TemporaryDirectory(prefix="churnops-quarantine-") as tmp:
        written = Path(tmp)
        report.write_report(written)  # locally first: if it fails, nothing moved
        remove_tree(target)  # the old quarantine of this day, if any
        for file in landing_files:
            if file.name == MOVING_MARKER:
                continue
            copy_file(file, target / file.name)
        put_folder(written, target, last=(REPORT_FILE,))
    if landing_files:
        write_bytes(report.folder / MOVING_MARKER, str(target).encode())
        for file in landing_files:
            if file.name != MOVING_MARKER:
                remove_tree(file)
        remove_tree(report.folder / MOVING_MARKER)
    return target


def interrupted_move(landing_folder: Location) -> bool:
    """True when an object-store quarantine of this landing folder stopped half-way."""
    return (landing_folder / MOVING_MARKER).exists()


def interrupted_quarantine(quarantine_dir: Location, table: str, day: dt.date) -> Location | None:
    """A drop folder left half-way to quarantine by a crash, if there is one."""
    from churnops.storage import glob

    target = quarantine_folder(quarantine_dir, table, day)
    leftovers = glob(target.parent, f".{target.name}.*.tmp")
    return leftovers[-1] if leftovers else None


def previous_rejection(quarantine_dir: Location, table: str, day: dt.date) -> str | None:
    """The message of the quarantined report of this drop, if it was rejected before."""
    path = quarantine_folder(quarantine_dir, table, day) / REPORT_FILE
    if not path.exists():
        return None
    try:
        return str(json.loads(path.read_text())["message"])
    except (OSError, ValueError, KeyError):
        return f"(unreadable report {path})"
