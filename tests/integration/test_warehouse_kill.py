"""A partition replace killed with SIGKILL leaves the old rows or the new ones, never part.

On each engine a child process (``kill_writer.py``) replaces one partition of 300,000
usage-like rows through ``Warehouse.replace_partition`` and is killed at several points
after it says it started (and once let finish). After every kill the partition holds
exactly one version's rows (count, sum of ids and of calls), the neighbouring partitions
are untouched, and DuckDB reopens the file whatever the killed process left (its WAL).
"""

from __future__ import annotations

import datetime as dt
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from churnops.warehouse import Warehouse
from churnops.warehouse.duckdb_warehouse import DuckDBWarehouse
from churnops.warehouse.postgres_warehouse import PostgresWarehouse
from tests.integration.kill_writer import DONE, KILL_TABLE, STARTED, checksum, rows_for

pytestmark = pytest.mark.integration

WRITER = Path(__file__).with_name("kill_writer.py")
ROWS = 300_000
NEIGHBOUR_ROWS = 5_000
DAY = dt.date(2025, 6, 2)
BEFORE, AFTER = DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=1)
# Seconds after "started": right away and early (DuckDB commits within a tenth of a
# second, then checkpoints), then later (PostgreSQL takes longer to COPY the rows).
KILL_AFTER = (0.0, 0.05, 0.2, 0.5, 1.0)
CHILD_TIMEOUT = 120.0


@dataclass
class Run:
    version: int
    kill_after: float | None  # None: let it finish
    killed: bool  # SIGKILL reached a running process
    write_seconds: float | None  # the child's own time for a replace that finished
    stderr: str


def _target(warehouse: Warehouse) -> str:
    if isinstance(warehouse, DuckDBWarehouse):
        return str(warehouse.path)
    assert isinstance(warehouse, PostgresWarehouse)
    return warehouse.url.render_as_string(hide_password=False)


def _read_until(proc: subprocess.Popen[bytes], marker: str, timeout: float) -> bytes:
    """The child's stderr up to and including the line ``marker`` (raw fd: no buffering)."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while f"\n{marker}\n".encode() not in b"\n" + seen:
        left = deadline - time.monotonic()
        if left <= 0:
            proc.kill()
            raise AssertionError(f"no {marker!r} from the writer in {timeout}s: {seen!r}")
        ready, _, _ = select.select([fd], [], [], min(left, 0.05))
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                proc.wait()
                raise AssertionError(
                    f"the writer ended (rc {proc.returncode}) before {marker!r}: "
                    f"{seen.decode(errors='replace')}"
                )
            seen += chunk
    return seen


def _run_writer(warehouse: Warehouse, version: int, kill_after: float | None) -> Run:
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), warehouse.kind, _target(warehouse), DAY.isoformat()]
        + [str(version), str(ROWS)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        seen = _read_until(proc, STARTED, CHILD_TIMEOUT)
        kill_sent = False
        if kill_after is not None:
            time.sleep(kill_after)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kill_sent = True
        proc.wait(timeout=CHILD_TIMEOUT)
        assert proc.stderr is not None
        seen += proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    text = seen.decode(errors="replace")
    done = [line for line in text.splitlines() if line.startswith(f"{DONE} ")]
    # A writer that had finished its replace may exit between poll() and the kill: the
    # signal then reaches a process that is already gone, and it counts as finished.
    killed = kill_sent and proc.returncode == -signal.SIGKILL
    if not killed:
        assert proc.returncode == 0 and done, text
    seconds = float(done[0].split()[1]) if done else None
    return Run(version, kill_after, killed, seconds, text)


def _state(warehouse: Warehouse, day: dt.date) -> tuple[int, int, int, int, int] | None:
    """(count, sum of id, sum of calls, min version, max version) of a partition."""
    [row] = warehouse.tuples(
        "SELECT count(*), CAST(sum(id) AS BIGINT), CAST(sum(calls) AS BIGINT), "
        f"min(version), max(version) FROM {KILL_TABLE.schema}.{KILL_TABLE.name} WHERE part = ?",
        [day],
    )
    return None if row[0] == 0 else tuple(int(v) for v in row)  # type: ignore[return-value]


def _expected(version: int, rows: int = ROWS) -> tuple[int, int, int, int, int]:
    return (*checksum(version, rows), version, version)


def _rows(warehouse: Warehouse, day: dt.date):  # -> pa.Table, sorted by id
    return warehouse.arrow(
        f"SELECT * FROM {KILL_TABLE.schema}.{KILL_TABLE.name} WHERE part = ? ORDER BY id", [day]
    )


def _wal(warehouse: Warehouse) -> bool | None:
    if isinstance(warehouse, DuckDBWarehouse):
        return Path(f"{warehouse.path}.wal").exists()
    return None


def test_a_killed_partition_replace_leaves_the_old_rows_or_the_new(
    warehouse: Warehouse,
) -> None:
    began = time.perf_counter()
    warehouse.ensure(KILL_TABLE)
    warehouse.replace_partition(KILL_TABLE, {"part": BEFORE}, rows_for(BEFORE, 1, NEIGHBOUR_ROWS))
    warehouse.replace_partition(KILL_TABLE, {"part": AFTER}, rows_for(AFTER, 2, NEIGHBOUR_ROWS))
    warehouse.replace_partition(KILL_TABLE, {"part": DAY}, rows_for(DAY, 3, ROWS))
    neighbours = {day: _rows(warehouse, day) for day in (BEFORE, AFTER)}
    assert _state(warehouse, DAY) == _expected(3)
    warehouse.dispose()  # DuckDB: the file is the child's while it writes
    current = 3
    report = [f"{warehouse.kind}: replacing a partition of {ROWS:,} rows"]
    outcomes: list[tuple[bool, str]] = []

    for version, delay in enumerate(KILL_AFTER, start=4):
        run = _run_writer(warehouse, version, kill_after=delay)
        wal = _wal(warehouse)
        state = _state(warehouse, DAY)  # a fresh connection: DuckDB replays what it finds
        assert state in (_expected(current), _expected(version)), (run, state)
        kept = "new" if state == _expected(version) else "old"
        if kept == "new":
            current = version
        outcomes.append((run.killed, kept))
        for day, rows in neighbours.items():
            assert _rows(warehouse, day).equals(rows), day
        warehouse.dispose()
        report.append(
            f"  kill after {delay:.2f}s: {'killed' if run.killed else 'had finished'}, "
            f"partition holds the {kept} rows (v{current})"
            + ("" if wal is None else f", WAL left: {wal}")
        )

    # The kill right after "started" lands before any commit: the test did kill mid-write.
    assert (True, "old") in outcomes, report

    last = _run_writer(warehouse, version=99, kill_after=None)
    assert _state(warehouse, DAY) == _expected(99)
    written, expected = _rows(warehouse, DAY), rows_for(DAY, 99, ROWS)
    assert written.schema.types == expected.schema.types
    assert written.equals(expected)  # exactly the rows, value by value
    for day, rows in neighbours.items():
        assert _rows(warehouse, day).equals(rows), day
    report.append(f"  final rerun, not killed: the replace took {last.write_seconds:.2f}s")
    report.append(f"  test took {time.perf_counter() - began:.1f}s")
    print("\n".join(report))
