"""``churnops backfill`` after ``airflow backfill create`` lost SQLite's lock to the busy
scheduler, against a real, migrated Airflow metadata DB.

The race itself cannot be provoked on demand, so ``airflow`` is a script that answers as
Airflow did in CI ("database is locked", then what the next call gets); what the lost lock
left behind is written into the real metadata DB through Airflow's own models, and the
client reads and cleans it the way it does next to a real scheduler. The closed loop's
end-to-end test runs the real command next to a busy scheduler."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from churnops.orchestration import local_airflow
from churnops.orchestration.local_airflow import AirflowCommandFailed, LocalAirflow
from churnops.settings import load_settings

pytestmark = pytest.mark.integration

LOCKED = "sqlite3.OperationalError: database is locked"
REFUSED = (
    "airflow.models.backfill.AlreadyRunningBackfill: Another backfill is running for Dag "
    "churn_nightly. There can be only one running backfill per Dag."
)
CREATED = "Backfill(id=7, dag_id='churn_nightly')"
DAY = "2026-02-27"

# The metadata DB as a lost lock leaves it: no backfill ("none"), or the backfill of DAY
# (reprocess completed) created `ago` seconds before now, with one run ("run") or without.
LEFT_BEHIND = """
import datetime as dt, sys
from sqlalchemy import delete
from airflow.models.backfill import Backfill, BackfillDagRun
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
what, ago = sys.argv[1], float(sys.argv[2])
now = dt.datetime.now(dt.UTC)
with create_session() as s:
    for table in (BackfillDagRun, DagRun, Backfill):
        s.execute(delete(table))
    if what != "none":
        b = Backfill(dag_id="churn_nightly", from_date=dt.datetime(2026, 2, 27, tzinfo=dt.UTC),
                     to_date=dt.datetime(2026, 2, 27, 23, 59, 59, tzinfo=dt.UTC),
                     reprocess_behavior="completed", dag_run_conf={},
                     created_at=now - dt.timedelta(seconds=ago))
        s.add(b)
        s.flush()
    if what == "run":
        s.add(DagRun(dag_id="churn_nightly", run_id=f"backfill__{b.id}", run_type="backfill",
                     state="queued", backfill_id=b.id, run_after=now))
"""


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("airflow-state")
    LocalAirflow(load_settings({"CHURNOPS_STATE_DIR": str(state)})).prepare()
    return state


@pytest.fixture
def client(migrated: Path, monkeypatch: pytest.MonkeyPatch) -> LocalAirflow:
    monkeypatch.setattr(local_airflow, "LOST_LOCK_PAUSE_SECONDS", 0.0)
    return LocalAirflow(load_settings({"CHURNOPS_STATE_DIR": str(migrated)}))


def left_behind(client: LocalAirflow, what: str, ago: float = 1.0) -> None:
    proc = subprocess.run(
        [client.python, "-c", LEFT_BEHIND, what, str(ago)],
        env=client.env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def scripted_airflow(client: LocalAirflow, tmp_path: Path, answers: list[tuple[int, str]]) -> Path:
    """``client.airflow`` becomes a script that gives ``answers`` (exit code, line) in turn,
    one per call, on stderr for a failure and stdout for success; it logs each call."""
    calls = tmp_path / "calls"
    script = tmp_path / "airflow"
    cases = "\n".join(
        f"  {n}) echo {line!r} >&{2 if code else 1}; exit {code};;"
        for n, (code, line) in enumerate(answers, start=1)
    )
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        f"n=$(wc -l < {calls})\n"
        'case "$n" in\n'
        f"{cases}\n"
        "  *) echo 'unexpected call' >&2; exit 99;;\n"
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    client.airflow = str(script)
    return calls


def backfill(client: LocalAirflow) -> str:
    return client.backfill("churn_nightly", DAY, DAY, "--reprocess-behavior", "completed")


def test_a_half_created_backfill_is_discarded_and_the_command_tried_again(
    client: LocalAirflow, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    left_behind(client, "runless")
    calls = scripted_airflow(client, tmp_path, [(1, LOCKED), (0, CREATED)])
    assert CREATED in backfill(client)
    made = calls.read_text().splitlines()
    assert len(made) == 2 and all("--reprocess-behavior completed" in c for c in made)
    assert client._backfills("open", "churn_nightly") == []
    said = capsys.readouterr().err
    assert "was left half-created by the lost lock" in said and "no runs" in said, said


def test_a_backfill_with_runs_is_never_discarded(client: LocalAirflow) -> None:
    left_behind(client, "run")
    [open_one] = client._backfills("open", "churn_nightly")
    assert client._backfills("discard", str(open_one["id"])) == "has_runs"
    assert client._backfills("open", "churn_nightly") == [open_one]
    left_behind(client, "runless")
    [runless] = client._backfills("open", "churn_nightly")
    assert client._backfills("discard", str(runless["id"])) == "discarded"
    assert client._backfills("discard", str(runless["id"])) == "discarded"  # already gone
    assert client._backfills("open", "churn_nightly") == []


def test_a_backfill_created_despite_the_lost_lock_is_not_made_twice(
    client: LocalAirflow, tmp_path: Path
) -> None:
    left_behind(client, "run")
    calls = scripted_airflow(client, tmp_path, [(1, LOCKED), (0, CREATED)])
    out = backfill(client)
    assert "although its command lost the lock" in out and "queued" in out, out
    assert len(calls.read_text().splitlines()) == 1
    [still] = client._backfills("open", "churn_nightly")
    assert still["run_states"] == ["queued"]


def test_a_lost_lock_that_left_nothing_is_simply_tried_again(
    client: LocalAirflow, tmp_path: Path
) -> None:
    left_behind(client, "none")
    calls = scripted_airflow(client, tmp_path, [(1, LOCKED), (1, LOCKED), (0, CREATED)])
    assert CREATED in backfill(client)
    assert len(calls.read_text().splitlines()) == 3


def test_another_open_backfill_is_named_in_one_line(client: LocalAirflow, tmp_path: Path) -> None:
    left_behind(client, "run", ago=600)  # begun long before this command
    calls = scripted_airflow(client, tmp_path, [(1, LOCKED), (0, CREATED)])
    with pytest.raises(AirflowCommandFailed) as failed:
        backfill(client)
    reason = failed.value.reason
    assert "another backfill of the DAG is open: backfill" in reason, reason
    assert "2026-02-27..2026-02-27" in reason and "queued" in reason
    assert len(calls.read_text().splitlines()) == 1


def test_a_lock_lost_on_every_try_gives_up_with_the_reason(
    client: LocalAirflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_airflow, "SQLITE_LOCK_ATTEMPTS", 2)  # each look reads the DB
    left_behind(client, "none")
    calls = scripted_airflow(client, tmp_path, [(1, LOCKED)] * 10)
    with pytest.raises(AirflowCommandFailed) as failed:
        backfill(client)
    assert "database is locked" in failed.value.reason
    assert len(calls.read_text().splitlines()) == local_airflow.SQLITE_LOCK_ATTEMPTS


def test_a_refusal_without_a_lost_lock_is_airflows_answer_at_once(
    client: LocalAirflow, tmp_path: Path
) -> None:
    calls = scripted_airflow(client, tmp_path, [(1, REFUSED), (0, CREATED)])
    with pytest.raises(AirflowCommandFailed) as failed:
        backfill(client)
    assert "Another backfill is running" in failed.value.reason
    assert len(calls.read_text().splitlines()) == 1


def test_another_failure_after_a_lost_lock_is_not_retried(
    client: LocalAirflow, tmp_path: Path
) -> None:
    calls = scripted_airflow(
        client, tmp_path, [(1, LOCKED), (1, "airflow.exceptions.DagNotFound: Dag churn_nightly")]
    )
    with pytest.raises(AirflowCommandFailed) as failed:
        backfill(client)
    assert "DagNotFound" in failed.value.reason
    assert len(calls.read_text().splitlines()) == 2
