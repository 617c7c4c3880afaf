"""A churnops process that used DuckDB ends quietly: no nanobind leak report on stderr.

The report (about 40 lines, "nanobind: leaked 27 instances ...") ended `make run` and
the log of every task that ingests. It appears in a process that imported Great
Expectations and used the warehouse through the SQLAlchemy dialect; the DuckDB engine
frees duckdb's type constants at exit (``release_type_constants_at_exit``). The control
run unregisters that hook and must still print the report: it shows the test can see the
problem (if a newer duckdb stops printing it, the hook can go).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PROCESS = """
import atexit, sys
from pathlib import Path
import great_expectations  # what every ingesting command imports
from churnops.warehouse import duckdb_warehouse
if sys.argv[2] == "without-hook":
    atexit.unregister(duckdb_warehouse.release_type_constants_at_exit)
warehouse = duckdb_warehouse.DuckDBWarehouse(Path(sys.argv[1]))
print(warehouse.tuples("select 42", []))
warehouse.dispose()
"""


def _run(path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROCESS, str(path), mode],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_process_that_used_duckdb_exits_without_a_leak_report(tmp_path: Path) -> None:
    quiet = _run(tmp_path / "quiet.duckdb", "with-hook")
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "[(42,)]" in quiet.stdout
    assert "nanobind" not in quiet.stderr, quiet.stderr[-2000:]

    control = _run(tmp_path / "control.duckdb", "without-hook")
    assert control.returncode == 0, control.stderr[-2000:]
    assert "nanobind: leaked" in control.stderr, (
        "without the exit hook duckdb no longer reports leaks: the hook may go"
    )
