"""The lineage settings of the project's Airflow and the night reader's choices.

The events' shape is Airflow's OpenLineage provider's (a real night writes them in
tests/e2e/test_nightly_dag.py and test_closed_loop.py); here, the choices the reader
makes among several runs of one night."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from churnops.lineage import events_file, model_dataset, night_lineage, table_dataset
from churnops.orchestration.environment import TASK_LINEAGE_EXTRACTOR, openlineage_env
from churnops.settings import load_settings

pytestmark = pytest.mark.unit

NIGHT = dt.date(2025, 3, 4)


@pytest.fixture
def settings(tmp_path):
    return load_settings({"CHURNOPS_STATE_DIR": str(tmp_path)})


def test_the_local_profile_writes_every_tasks_events_to_the_state_dirs_file(settings) -> None:
    env = openlineage_env(settings, {})
    transport = json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    assert transport == {
        "type": "file",
        "log_file_path": str(events_file(settings)),
        "append": True,
    }
    assert events_file(settings).parent.is_dir()
    assert env["AIRFLOW__OPENLINEAGE__DISABLED"] == "False"
    assert env["AIRFLOW__OPENLINEAGE__EXTRACTORS"] == TASK_LINEAGE_EXTRACTOR


def test_an_operators_own_transport_and_extractors_are_kept(settings) -> None:
    given = {
        "AIRFLOW__OPENLINEAGE__TRANSPORT": '{"type": "http", "url": "http://marquez:5000"}',
        "AIRFLOW__OPENLINEAGE__EXTRACTORS": "their.Extractor",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "theirs",
    }
    env = openlineage_env(settings, given)
    assert "AIRFLOW__OPENLINEAGE__TRANSPORT" not in env  # theirs passes through
    assert env["AIRFLOW__OPENLINEAGE__EXTRACTORS"] == f"their.Extractor;{TASK_LINEAGE_EXTRACTOR}"
    assert env["AIRFLOW__OPENLINEAGE__NAMESPACE"] == "theirs"


def test_lineage_off_disables_the_provider(tmp_path) -> None:
    settings = load_settings({"CHURNOPS_STATE_DIR": str(tmp_path), "CHURNOPS_LINEAGE": "off"})
    assert openlineage_env(settings, {}) == {"AIRFLOW__OPENLINEAGE__DISABLED": "True"}


def _event(run_id, task, kind, time, inputs=(), outputs=(), conf=None):
    return {
        "eventType": kind,
        "eventTime": time,
        "job": {"name": f"churn_nightly.{task}", "facets": {"jobType": {"jobType": "TASK"}}},
        "run": {
            "facets": {
                "airflow": {
                    "dagRun": {
                        "dag_id": "churn_nightly",
                        "run_id": run_id,
                        "logical_date": f"{NIGHT}T02:30:00+00:00",
                        "conf": conf or {},
                    }
                }
            }
        },
        "inputs": [{"namespace": d.namespace, "name": d.name} for d in inputs],
        "outputs": [{"namespace": d.namespace, "name": d.name} for d in outputs],
    }


def test_the_latest_run_that_published_answers_for_the_night(settings) -> None:
    raw, marts = (
        table_dataset(settings, "raw.customers"),
        table_dataset(settings, "marts.fct_customer_features"),
    )
    predictions = table_dataset(settings, "scoring.predictions")
    events = [
        # the scheduled run: published with v3
        _event("scheduled", "score.publish", "START", "2025-03-05T02:50:00"),
        _event(
            "scheduled",
            "score.publish",
            "COMPLETE",
            "2025-03-05T02:51:00",
            [model_dataset(settings, 3)],
            [predictions],
        ),
        # a later rerun that published with v4, then a third one that failed at ingest
        _event("rerun", "features.dbt_build", "COMPLETE", "2025-03-06T10:00:00", [raw], [marts]),
        _event(
            "rerun",
            "score.publish",
            "COMPLETE",
            "2025-03-06T10:05:00",
            [model_dataset(settings, 4)],
            [predictions],
        ),
        _event("failed", "ingest.validate_and_load", "FAIL", "2025-03-07T10:00:00"),
    ]
    path = events_file(settings)
    path.parent.mkdir(parents=True)
    lines = [json.dumps(e) for e in events]
    lines.insert(2, '{"eventType": "COMPLETE", "job": ')  # a line still being written
    path.write_text("\n".join(lines) + "\n")

    night = night_lineage(settings, NIGHT)
    assert night is not None
    assert night.run_id == "rerun" and night.model_versions == ("4",)
    assert night.predictions == ("scoring.predictions",)
    assert night.feature_build is not None
    assert night.feature_build.models == ("marts.fct_customer_features",)
    assert night.feature_build.sources == ("raw.customers",)
    assert night.as_dict()["model_versions"] == ["4"]
    assert night_lineage(settings, NIGHT + dt.timedelta(days=1)) is None


def test_a_night_asked_for_in_the_trigger_form_is_that_night(settings) -> None:
    path = events_file(settings)
    path.parent.mkdir(parents=True)
    other = NIGHT - dt.timedelta(days=10)
    event = _event(
        "manual",
        "score.publish",
        "COMPLETE",
        "2025-03-05T02:50:00",
        [model_dataset(settings, 2)],
        [table_dataset(settings, "scoring.predictions")],
        conf={"as_of_date": other.isoformat()},
    )
    path.write_text(json.dumps(event) + "\n")
    assert night_lineage(settings, NIGHT) is None
    answer = night_lineage(settings, other)
    assert answer is not None and answer.model_versions == ("2",)


def test_no_events_file_no_answer(settings) -> None:
    assert night_lineage(settings, NIGHT) is None
