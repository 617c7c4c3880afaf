"""Drift report and tables on a small frame: Evidently's files, the warehouse partition
(replaced on rerun, untouched by a failed write), and the reference sample from a real
local MLflow registry."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnops.monitor.drift import DriftResult, drift_report, persist_drift
from churnops.monitor.store import (
    DRIFT_SUMMARY_TABLE,
    FEATURE_DRIFT_TABLE,
    PREDICTION_FEATURE,
    MonitoringStore,
)
from churnops.settings import Settings, load_settings
from churnops.warehouse import ConstraintViolation
from tests.helpers import warehouse_of
from tests.unit.train.synthetic import synthetic_frame

pytestmark = pytest.mark.integration

NIGHT = dt.date(2025, 9, 1)
VERSION = "3"


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A training-like reference and a night whose customers log in less and pay later."""
    rng = np.random.default_rng(11)
    frame = synthetic_frame(weeks=10, customers=400, seed=5).drop(columns="noise")
    for column in ("plan_type", "payment_method", "region", "acquisition_channel"):
        frame[column] = frame[column].astype("category")
    frame[PREDICTION_FEATURE] = rng.beta(1.0, 12.0, len(frame))
    reference = frame.iloc[:2_000].reset_index(drop=True)
    current = frame.iloc[2_000:].drop(columns="churned_within_90d").reset_index(drop=True)
    current["logins_30d"] = (current["logins_30d"] * 0.7).astype("int32")
    current["late_payments_90d"] += 1
    current[PREDICTION_FEATURE] = np.clip(current[PREDICTION_FEATURE] * 1.6, 0, 1)
    return reference, current


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # A display sample smaller than the frames, so the sampled path is the one tested.
    return load_settings(
        {"CHURNOPS_STATE_DIR": str(tmp_path), "CHURNOPS_DRIFT_SAMPLE_ROWS": "1500"}
    )


@pytest.fixture
def result(settings: Settings) -> DriftResult:
    reference, current = _frames()
    return drift_report(settings, NIGHT, VERSION, reference, current)


def _monitoring(settings: Settings) -> MonitoringStore:
    return MonitoringStore(warehouse_of(settings))


def _rows(settings: Settings, table: str) -> list[tuple]:
    return warehouse_of(settings).tuples(
        f"SELECT * FROM {table} WHERE as_of_date = ? ORDER BY ALL", [NIGHT]
    )


def test_report_files_are_evidentlys_and_carry_the_verdicts(
    settings: Settings, result: DriftResult
) -> None:
    folder = settings.paths.reports_dir / "drift" / NIGHT.isoformat() / f"v{VERSION}"
    assert result.html_path == folder / "report.html"
    assert result.json_path == folder / "report.json"
    html = result.html_path.read_text()
    assert html.lstrip().startswith("<!DOCTYPE html>") and "logins_30d" in html
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json"]  # no temps

    data = json.loads(result.json_path.read_text())
    assert set(data) == {"metrics", "tests"}
    assert {m["config"]["type"] for m in data["metrics"]} == {"evidently:metric_v2:ValueDrift"}
    value_drift = {m["config"]["column"]: m for m in data["metrics"]}
    # Every feature and the prediction, with the all-rows score, not the display sample's.
    assert set(value_drift) == {f.feature for f in result.features}
    for verdict in result.features:
        metric = value_drift[verdict.feature]
        assert metric["value"] == pytest.approx(verdict.score, rel=1e-12)
        assert metric["config"]["method"] == f"churnops_{verdict.method}"
        assert metric["config"]["threshold"] == verdict.threshold
    statuses = {t["metric_config"]["params"]["column"]: t["status"] for t in data["tests"]}
    assert statuses == {f.feature: "FAIL" if f.drifted else "SUCCESS" for f in result.features}

    assert {"logins_30d", "late_payments_90d"} <= set(result.drifted_features)
    assert "tenure_days" not in result.drifted_features
    assert result.prediction_drifted is True
    assert result.features[-1].feature == PREDICTION_FEATURE
    assert (result.reference_rows, result.current_rows) == (2_000, 2_000)


def test_tables_hold_one_row_per_feature_and_a_rerun_replaces_them(
    settings: Settings, result: DriftResult
) -> None:
    persist_drift(_monitoring(settings), result)
    persist_drift(_monitoring(settings), dataclasses.replace(result, seconds=99.0))

    features = _rows(settings, FEATURE_DRIFT_TABLE)
    assert len(features) == len(result.features) == 11  # 10 features + the prediction
    assert {row[2] for row in features} == {f.feature for f in result.features}
    by_feature = {row[2]: row for row in features}
    for verdict in result.features:
        row = by_feature[verdict.feature]
        assert row[3:9] == (
            verdict.kind,
            verdict.method,
            pytest.approx(verdict.statistic),
            verdict.p_value,
            verdict.threshold,
            verdict.drifted,
        )
        assert row[9:11] == (2_000, 2_000)
    [summary] = _rows(settings, DRIFT_SUMMARY_TABLE)
    assert summary[1:8] == (
        VERSION,
        10,
        len(result.drifted_features),
        pytest.approx(result.share_drifted),
        result.drifted_features,
        True,
        result.dataset_drifted,
    )
    assert summary[8:11] == (str(result.html_path), str(result.json_path), 99.0)

    # Another version on the same night is its own partition.
    persist_drift(_monitoring(settings), dataclasses.replace(result, model_version="4"))
    assert len(_rows(settings, FEATURE_DRIFT_TABLE)) == 2 * 11
    assert len(_rows(settings, DRIFT_SUMMARY_TABLE)) == 2


def test_a_failed_write_leaves_the_previous_partition(
    settings: Settings, result: DriftResult
) -> None:
    persist_drift(_monitoring(settings), result)
    before = _rows(settings, FEATURE_DRIFT_TABLE), _rows(settings, DRIFT_SUMMARY_TABLE)
    broken = dataclasses.replace(
        result,
        features=[*result.features[:-1], dataclasses.replace(result.features[-1], method=None)],
    )
    with pytest.raises(ConstraintViolation):
        persist_drift(_monitoring(settings), broken)  # type: ignore[arg-type]
    assert (_rows(settings, FEATURE_DRIFT_TABLE), _rows(settings, DRIFT_SUMMARY_TABLE)) == before


def test_load_reference_downloads_once_per_version_from_mlflow(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from churnops.monitor import reference as reference_module
    from churnops.monitor.reference import ReferenceMissing, load_reference
    from churnops.registry.runs import REFERENCE_ARTIFACT
    from churnops.registry.tracking import ensure_experiment, mlflow_client

    reference, _ = _frames()
    client = mlflow_client(settings)
    experiment_id = ensure_experiment(settings, client)
    name = settings.mlflow.registered_model_name
    client.create_registered_model(name)
    staged = tmp_path / "staged"
    staged.mkdir()
    reference.to_parquet(staged / Path(REFERENCE_ARTIFACT).name, index=False)
    versions = []
    for with_reference in (True, False):
        with mlflow.start_run(experiment_id=experiment_id) as run:
            if with_reference:
                mlflow.log_artifact(
                    str(staged / Path(REFERENCE_ARTIFACT).name),
                    artifact_path=str(Path(REFERENCE_ARTIFACT).parent),
                )
        version = client.create_model_version(
            name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
        )
        versions.append(version.version)

    loaded = load_reference(settings, versions[0])
    pd.testing.assert_frame_equal(loaded, reference)
    cache = settings.paths.reports_dir / "reference" / f"v{versions[0]}.parquet"
    assert cache.is_file()
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no download leftovers

    def no_mlflow(_settings: Settings) -> None:
        raise AssertionError("the cached reference must not be downloaded again")

    monkeypatch.setattr(reference_module, "mlflow_client", no_mlflow)
    pd.testing.assert_frame_equal(load_reference(settings, int(versions[0])), reference)
    monkeypatch.undo()

    with pytest.raises(ReferenceMissing, match=rf"v{versions[1]} .*reference/features.parquet"):
        load_reference(settings, versions[1])
    with pytest.raises(ReferenceMissing, match="v99 is not a registered version"):
        load_reference(settings, 99)
    assert not (cache.parent / f"v{versions[1]}.parquet").exists()
