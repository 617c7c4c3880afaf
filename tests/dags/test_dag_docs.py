"""The DAG docs and schedules show the settings in force, not the defaults they were
written with: parsed under a non-default environment, every number follows it."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.integration

DAGS_DIR = PROJECT_DIR / "dags"
DAG_IDS = (
    "churn_nightly",
    "churn_retrain",
    "churn_model_promote",
    "churn_model_rollback",
    "churn_source_simulator",
)

NOT_THE_DEFAULTS = {
    "CHURNOPS_RETRAIN_MIN_COHORT_AUC": "0.81",
    "CHURNOPS_RETRAIN_DRIFTED_FEATURES": "5",
    "CHURNOPS_RETRAIN_NEW_LABELS": "12345",
    "CHURNOPS_RETRAIN_COOLDOWN_DAYS": "21",
    "CHURNOPS_RETRAIN_SCHEDULED_MIN_GAP_DAYS": "9",
    "CHURNOPS_RETRAIN_CRON": "0 5 2 * *",
    "CHURNOPS_NIGHTLY_CRON": "15 1 * * *",
    "CHURNOPS_NIGHTLY_START": "2025-02-03",
    "CHURNOPS_MANUAL_DAGS_START": "2025-03-04",
    "CHURNOPS_DRIFT_NUM_THRESHOLD": "0.15",
    "CHURNOPS_DRIFT_CAT_METHOD": "psi",
    "CHURNOPS_REASON_BAND": "medium",
    "CHURNOPS_REASON_COUNT": "4",
    "CHURNOPS_TRAIN_MONTHS": "10",
    "CHURNOPS_PROMOTION_MIN_AUC_GAIN": "0.03",
}


def _parse(env: dict[str, str]):
    """The DAGs as Airflow parses them in an environment with ``env`` set."""
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        bag = DagBag(str(DAGS_DIR))
    assert bag.import_errors == {}
    return {dag_id: bag.dags[dag_id] for dag_id in DAG_IDS}


def _text(doc: str | None) -> str:
    assert doc
    return " ".join(doc.split())  # markdown's line breaks are spaces


@pytest.fixture(scope="module")
def dags_by_default():
    return _parse({})


@pytest.fixture(scope="module")
def dags_otherwise():
    return _parse(NOT_THE_DEFAULTS)


def test_no_placeholder_is_left_unrendered(dags_by_default, dags_otherwise) -> None:
    for dags in (dags_by_default, dags_otherwise):
        for dag in dags.values():
            assert "{" not in dag.doc_md and "}" not in dag.doc_md, dag.dag_id


def test_the_defaults_read_as_before(dags_by_default) -> None:
    nightly = _text(dags_by_default["churn_nightly"].doc_md)
    assert "cohort AUC < 0.78, drift on 3+ features, over 10,000 new churn labels" in nightly
    assert "a 14-day cooldown" in nightly
    retrain = _text(dags_by_default["churn_retrain"].doc_md)
    assert "cron `0 4 1 * *`, UTC" in retrain and "in the last 7 days" in retrain
    assert "windows of 12/3/3 months" in retrain


def test_the_nightly_doc_and_schedule_follow_the_settings(dags_otherwise) -> None:
    dag = dags_otherwise["churn_nightly"]
    doc = _text(dag.doc_md)
    assert "cohort AUC < 0.81, drift on 5+ features, over 12,345 new churn labels" in doc
    assert "a 21-day cooldown" in doc
    assert "cron `15 1 * * *` from 2025-02-03" in doc
    assert "`medium` band the 4 features" in doc
    assert "numbers at threshold 0.15, `psi` for categories" in doc
    for default in ("0.78", "10,000", "14-day", "3+ features", "30 2 * * *"):
        assert default not in doc, default
    assert dag.timetable.expression == "15 1 * * *"
    assert dag.start_date == dt.datetime(2025, 2, 3, tzinfo=dt.UTC)


def test_the_retrain_doc_and_schedule_follow_the_settings(dags_otherwise) -> None:
    dag = dags_otherwise["churn_retrain"]
    doc = _text(dag.doc_md)
    assert "cron `0 5 2 * *`, UTC" in doc and "in the last 9 days" in doc
    assert "windows of 10/3/3 months" in doc
    assert "an AUC gain above 0.03" in doc
    for default in ("0 4 1 * *", "last 7 days", "12/3/3", "above 0.02"):
        assert default not in doc, default
    assert dag.timetable.timetable.expression == "0 5 2 * *"


def test_the_manual_dags_start_when_the_settings_say(dags_by_default, dags_otherwise) -> None:
    for dag_id in ("churn_model_promote", "churn_model_rollback"):
        assert dags_by_default[dag_id].start_date == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        assert dags_otherwise[dag_id].start_date == dt.datetime(2025, 3, 4, tzinfo=dt.UTC)
