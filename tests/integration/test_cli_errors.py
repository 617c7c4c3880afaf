"""A new user's mistakes at the command line: one line that says what is wrong and what
to do, exit code 2, no traceback; `--debug` or CHURNOPS_DEBUG=1 shows the traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR
from tests.helpers import cli_one_line_error

pytestmark = pytest.mark.integration

REVERSED = ["backfill", "--from-date", "2026-02-02", "--to-date", "2026-02-01"]


def test_train_before_any_bootstrap(tmp_path: Path) -> None:
    line = cli_one_line_error(["train"], {"CHURNOPS_STATE_DIR": str(tmp_path)})
    assert line.startswith("churnops train: the warehouse has no marts.fct_customer_features")
    assert "`churnops bootstrap`" in line


def test_promote_a_version_that_does_not_exist(tmp_path: Path) -> None:
    line = cli_one_line_error(
        ["promote", "99", "--reason", "typo"], {"CHURNOPS_STATE_DIR": str(tmp_path)}
    )
    assert line == (
        "churnops promote: 'churn' has no version 99: it has no versions yet: train one "
        "first (`churnops bootstrap`, `churnops train`)"
    )


def test_rollback_with_no_previous_champion(tmp_path: Path) -> None:
    line = cli_one_line_error(
        ["rollback", "--reason", "oops"], {"CHURNOPS_STATE_DIR": str(tmp_path)}
    )
    assert "no version holds the 'previous_champion' alias" in line
    assert "promote a version explicitly instead" in line


def test_backfill_with_the_dates_reversed(tmp_path: Path) -> None:
    line = cli_one_line_error(REVERSED, {"CHURNOPS_STATE_DIR": str(tmp_path)})
    assert line == (
        "churnops backfill: --from-date 2026-02-02 is after --to-date 2026-02-01: give the "
        "first night first (both days are included)"
    )
    # Refused before Airflow is touched: no metadata DB was made for a mistyped command.
    assert not (tmp_path / "airflow").exists()


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--debug", *REVERSED], {}), (REVERSED, {"CHURNOPS_DEBUG": "1"})],
    ids=["--debug", "CHURNOPS_DEBUG=1"],
)
def test_debug_shows_the_traceback(tmp_path: Path, args: list[str], env: dict[str, str]) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CHURNOPS_")}
    result = subprocess.run(
        [sys.executable, "-m", "churnops.cli", *args],
        env={**environment, "CHURNOPS_STATE_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr, result.stderr
    assert "ValueError: --from-date 2026-02-02 is after --to-date 2026-02-01" in result.stderr
