"""`churnops backfill` next to a live scheduler: it prepares Airflow only when that has not
been done (``airflow db migrate`` writes to the SQLite metadata DB even when there is
nothing to migrate, and lost that lock to a busy scheduler in CI), and Airflow's refusal
reaches the user as one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnops.orchestration.local_airflow import LocalAirflow
from churnops.settings import load_settings
from tests.helpers import cli_one_line_error

pytestmark = pytest.mark.integration


def test_backfill_prepares_a_fresh_airflow_once_and_says_why_airflow_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"CHURNOPS_STATE_DIR": str(tmp_path)}
    args = ["backfill", "--from-date", "2026-01-01", "--to-date", "2026-01-01"]

    # A fresh state: migrated and pooled first, then Airflow refuses (no DAG processor
    # has parsed the DAGs here), in one line that says what to do.
    line = cli_one_line_error(args, env)
    assert "Could not find dag churn_nightly" in line and "make up" in line, line

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = LocalAirflow(load_settings())
    assert client.migrated()

    def must_not_prepare(self: LocalAirflow) -> str:
        raise AssertionError("prepared again: airflow db migrate next to the scheduler")

    monkeypatch.setattr(LocalAirflow, "prepare", must_not_prepare)
    client.ensure_prepared()

    # A metadata DB that is not there yet is noticed (and prepare would run).
    fresh = LocalAirflow(load_settings({"CHURNOPS_STATE_DIR": str(tmp_path / "other")}))
    assert not fresh.migrated()
