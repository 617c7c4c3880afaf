"""Registry pieces that need no MLflow server: where it points, what a run records."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from churnops.registry.audit import AliasMove
from churnops.registry.runs import (
    REFERENCE_SCORE_COLUMN,
    code_version,
    data_fingerprint,
    dbt_manifest_sha256,
    reference_sample,
)
from churnops.registry.tracking import artifact_root, registry_lock_path, tracking_uri
from churnops.settings import SettingsError, load_settings
from churnops.train import time_split, train_model
from tests.unit.train.synthetic import synthetic_frame

pytestmark = pytest.mark.unit


def test_local_profile_uses_sqlite_and_artifacts_under_the_state_dir(tmp_path: Path) -> None:
    settings = load_settings({"CHURNOPS_STATE_DIR": str(tmp_path)})
    assert tracking_uri(settings) == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert artifact_root(settings) == (tmp_path / "mlflow" / "artifacts").as_uri()
    assert registry_lock_path(settings) == tmp_path / "mlflow" / "registry.lock"
    assert settings.mlflow.experiment_name == "churn"
    assert settings.mlflow.registered_model_name == "churn"


def test_a_settings_object_without_mlflow_fields_falls_back_to_the_local_default(
    tmp_path: Path,
) -> None:
    from churnops.settings import MlflowSettings

    settings = dataclasses.replace(
        load_settings({"CHURNOPS_STATE_DIR": str(tmp_path)}), mlflow=MlflowSettings()
    )
    assert tracking_uri(settings) == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert artifact_root(settings) == (tmp_path / "mlflow" / "artifacts").as_uri()


def test_prod_profile_uses_the_tracking_server() -> None:
    settings = load_settings(
        {
            "CHURNOPS_PROFILE": "prod",
            "CHURNOPS_MLFLOW_TRACKING_URI": "http://mlflow:5000",
            "CHURNOPS_MLFLOW_EXPERIMENT": "churn-prod",
            "CHURNOPS_REGISTERED_MODEL": "churn_prod",
        }
    )
    assert tracking_uri(settings) == "http://mlflow:5000"
    assert artifact_root(settings) is None  # the server's artifact store
    assert (settings.mlflow.experiment_name, settings.mlflow.registered_model_name) == (
        "churn-prod",
        "churn_prod",
    )
    assert load_settings({"CHURNOPS_PROFILE": "prod"}).mlflow.tracking_uri == (
        "http://127.0.0.1:5000"
    )


def test_training_and_promotion_settings_come_from_the_environment() -> None:
    settings = load_settings(
        {
            "CHURNOPS_TRAIN_MONTHS": "6",
            "CHURNOPS_VALIDATION_MONTHS": "1.5",
            "CHURNOPS_TEST_MONTHS": "1.5",
            "CHURNOPS_MIN_HISTORY_MONTHS": "4.5",
            "CHURNOPS_SNAPSHOT_EVERY_DAYS": "30",
            "CHURNOPS_THRESHOLD_RULE": "recall_target",
            "CHURNOPS_RECALL_TARGET": "0.8",
            "CHURNOPS_TRAIN_THREADS": "4",
            "CHURNOPS_PROMOTION_MIN_AUC_GAIN": "0.01",
            "CHURNOPS_PROMOTION_REQUIRE_APPROVAL": "true",
        }
    )
    train, policy = settings.train, settings.promotion
    assert (train.train_months, train.validation_months, train.test_months) == (6, 1.5, 1.5)
    assert train.snapshot_every_days == 30 and train.num_threads == 4
    assert (train.threshold_rule, train.recall_target) == ("recall_target", 0.8)
    assert policy.min_auc_gain == 0.01 and policy.require_approval is True
    defaults = load_settings({})
    assert defaults.train.total_months == 18 and defaults.train.snapshot_every_days == 7
    assert defaults.promotion == dataclasses.replace(
        policy, min_auc_gain=0.02, require_approval=False
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHURNOPS_OPTUNA": "maybe"}, "CHURNOPS_OPTUNA='maybe' is not a boolean"),
        ({"CHURNOPS_THRESHOLD_RULE": "best"}, "CHURNOPS_THRESHOLD_RULE='best' is not one of"),
        (
            {"CHURNOPS_SNAPSHOT_EVERY_DAYS": "0"},
            "CHURNOPS_SNAPSHOT_EVERY_DAYS=0 must be at least 1",
        ),
        (
            {"CHURNOPS_PROMOTION_MAX_RECALL_DROP": "-1"},
            "CHURNOPS_PROMOTION_MAX_RECALL_DROP=-1 must not be negative",
        ),
    ],
)
def test_bad_values_are_refused_clearly(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_the_data_fingerprint_changes_with_the_data_and_only_with_it() -> None:
    from churnops.settings import TrainParams

    params = TrainParams(min_train_positives=50, min_eval_positives=20)
    split = time_split(synthetic_frame(weeks=40), params)
    again = time_split(synthetic_frame(weeks=40), params)
    other = time_split(synthetic_frame(weeks=40, seed=4), params)
    fingerprint = data_fingerprint(split)
    assert fingerprint == data_fingerprint(again)
    assert fingerprint["data.sha256"] != data_fingerprint(other)["data.sha256"]
    w = split.windows
    assert fingerprint["data.as_of_range"] == f"{w.train_start}..{w.test_end}"
    assert fingerprint["data.train_rows"] == str(len(split.train))
    assert fingerprint["data.test_positives"] == str(int(split.test["churned_within_90d"].sum()))


def test_the_reference_sample_is_bounded_seeded_and_scored() -> None:
    from churnops.settings import TrainParams

    params = TrainParams(min_train_positives=50, min_eval_positives=20, max_rounds=50)
    split = time_split(synthetic_frame(weeks=40), params)
    trained = train_model(split)
    sample = reference_sample(trained, split, rows=500)
    assert len(sample) == 500
    assert sample.equals(reference_sample(trained, split, rows=500))
    assert list(sample.columns) == [
        "as_of_date",
        "customer_id",
        *trained.features,
        "churned_within_90d",
        REFERENCE_SCORE_COLUMN,
    ]
    assert sample["as_of_date"].max() <= split.windows.train_end
    assert sample[REFERENCE_SCORE_COLUMN].between(0, 1).all()
    assert len(reference_sample(trained, split, rows=10**9)) == len(split.train)


def test_code_and_dbt_versions(tmp_path: Path) -> None:
    settings = load_settings({"CHURNOPS_STATE_DIR": str(tmp_path)})
    version = code_version(settings)
    # A git checkout gives the commit (40 hex digits); an installed copy the package version.
    assert len(version.removesuffix("-dirty")) == 40 or version.startswith("churnops==")
    elsewhere = load_settings({"CHURNOPS_PROJECT_DIR": str(tmp_path)})
    assert code_version(elsewhere).startswith("churnops==")
    assert dbt_manifest_sha256(elsewhere) is None


def test_an_alias_move_describes_itself() -> None:
    move = AliasMove("churn", "champion", "3", "4", "promote", "AUC +0.03", "airflow")
    assert move.describe() == "champion: v3 -> v4 (promote by airflow: AUC +0.03)"
    assert str(move) == move.describe()  # what the DAG tasks return
    removal = AliasMove("churn", "challenger", "4", None, "promote", "promoted", "airflow")
    assert removal.describe().startswith("challenger: v4 -> nobody")
