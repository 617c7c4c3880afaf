"""One MLflow run per training: everything needed to trust, reproduce and monitor the model.

The run holds the parameters, the flat metrics, the data fingerprint (as-of windows,
rows, churners, a hash of the training frame), the dbt manifest hash and the code
version, the feature list, the plots, the model card, the full metrics (JSON) and a
reference sample of the training features with the model's scores for drift monitoring
(``reference/features.parquet``). The model itself is logged with
``mlflow.lightgbm.log_model`` (in MLflow 3 a LoggedModel outside the run's artifacts)
and registered as a new version of the registered model, whose tags summarise it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churnops.evaluate.metrics import ModelMetrics
from churnops.registry.champion import (
    FEATURES_ARTIFACT,
    METRICS_ARTIFACT,
    TAG_CALIBRATION_INTERCEPT,
    TAG_CALIBRATION_SLOPE,
    TAG_CAPACITY_BASE_ROWS,
    TAG_CONTACT_CAPACITY,
    TAG_THRESHOLD,
    TAG_THRESHOLD_RULE,
)
from churnops.registry.tracking import ensure_experiment, mlflow_client
from churnops.settings import Settings
from churnops.train.frame import CATEGORICAL_FEATURES, KEY_COLUMNS, LABEL_COLUMN, FrameSplit
from churnops.train.model import TrainedModel, prepare_features

if TYPE_CHECKING:
    import pandas as pd

    from churnops.estimation import PerformanceReference

log = logging.getLogger(__name__)

REFERENCE_ARTIFACT = "reference/features.parquet"
# What the version's nights' performance is estimated against (churnops.estimation).
PERFORMANCE_REFERENCE_ARTIFACT = "reference/performance.json"
REFERENCE_SCORE_COLUMN = "churn_probability"
SEARCH_ARTIFACT = "hyperparameter_search.json"  # the Optuna trials, when a search ran
MODEL_NAME_IN_RUN = "model"


@dataclass(frozen=True)
class RegisteredVersion:
    """A model version created by a training run."""

    name: str
    version: str
    run_id: str
    model_uri: str  # models:/<name>/<version>
    experiment_id: str


def data_fingerprint(split: FrameSplit) -> dict[str, str]:
    """What the model was trained and tested on: windows, sizes and a content hash."""
    import pandas as pd

    digest = hashlib.sha256()
    for part in (split.train, split.validation, split.test):
        digest.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
    w = split.windows
    counts = split.counts()
    fingerprint = {
        "data.train_as_of": f"{w.train_start}..{w.train_end}",
        "data.validation_as_of": f"{w.validation_start}..{w.validation_end}",
        "data.test_as_of": f"{w.test_start}..{w.test_end}",
        "data.as_of_range": f"{w.train_start}..{w.test_end}",
        "data.sha256": digest.hexdigest(),
        "data.snapshot_every_days": str(split.params.snapshot_every_days),
        "data.window_scale": f"{w.scale:.3f}",
        "data.gap_rows_dropped": str(w.gap_rows_dropped),
    }
    for name, (rows, positives) in counts.items():
        fingerprint[f"data.{name}_rows"] = str(rows)
        fingerprint[f"data.{name}_positives"] = str(positives)
    return fingerprint


def dbt_manifest_sha256(settings: Settings) -> str | None:
    path = settings.paths.dbt_manifest_path
    if not path.exists():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def code_version(settings: Settings) -> str:
    """``git rev-parse HEAD`` (+ ``-dirty`` with uncommitted changes), else the package version."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=settings.paths.project_dir,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=settings.paths.project_dir,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"churnops=={version('churnops')}"
        except PackageNotFoundError:
            return "unknown"


def reference_sample(trained: TrainedModel, split: FrameSplit, rows: int) -> pd.DataFrame:
    """At most ``rows`` training rows (fixed seed): keys, features, label and the model's score."""
    train = split.train
    sample = train if len(train) <= rows else train.sample(n=rows, random_state=split.params.seed)
    sample = sample.sort_values(list(KEY_COLUMNS)).reset_index(drop=True)
    columns = [*KEY_COLUMNS, *trained.features, LABEL_COLUMN]
    reference = sample.loc[:, columns].copy()
    reference[REFERENCE_SCORE_COLUMN] = trained.predict(sample)
    return reference


def performance_reference(
    trained: TrainedModel, split: FrameSplit, threshold: float
) -> PerformanceReference:
    """The version's own validation window, calibrated for CBPE: the window the operating
    threshold was chosen on, never seen by the trees."""
    from churnops.estimation import fit_reference

    validation = split.validation
    return fit_reference(
        trained.predict(validation), validation[LABEL_COLUMN].to_numpy(), threshold
    )


def log_training_run(
    settings: Settings,
    trained: TrainedModel,
    metrics: ModelMetrics,
    split: FrameSplit,
    *,
    actor: str,
    reason: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> RegisteredVersion:
    """Log one training run and register its model as a new version (see the module doc)."""
    import mlflow
    from mlflow.models import infer_signature

    from churnops.evaluate.card import model_card
    from churnops.evaluate.plots import write_plots

    client = mlflow_client(settings)
    experiment_id = ensure_experiment(settings, client)
    name = settings.mlflow.registered_model_name
    fingerprint = data_fingerprint(split)
    manifest = dbt_manifest_sha256(settings)
    code = code_version(settings)
    tags = {
        "actor": actor,
        "code_version": code,
        "dbt_manifest_sha256": manifest or "absent",
        "trigger": reason or "unspecified",
        **fingerprint,
        **(extra_tags or {}),
    }
    w = split.windows
    run_name = f"train as-of {w.train_start}..{w.test_end}"
    with (
        tempfile.TemporaryDirectory(prefix="churnops-run-") as tmp,
        mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run,
    ):
        out = Path(tmp)
        mlflow.log_params({**_params(trained, split), **fingerprint})
        mlflow.log_metrics(
            {
                **metrics.flat(),
                "train_seconds": trained.train_seconds,
                "best_iteration": float(trained.best_iteration),
            }
        )
        (out / FEATURES_ARTIFACT).write_text(
            json.dumps(
                {
                    "features": trained.features,
                    "categorical": {
                        c: list(v) for c, v in CATEGORICAL_FEATURES.items() if c in trained.features
                    },
                },
                indent=2,
            )
        )
        (out / METRICS_ARTIFACT).write_text(json.dumps(metrics.to_dict(), indent=2))
        mlflow.log_artifact(str(out / FEATURES_ARTIFACT))
        mlflow.log_artifact(str(out / METRICS_ARTIFACT))
        if trained.search is not None:
            (out / SEARCH_ARTIFACT).write_text(
                json.dumps(dataclasses.asdict(trained.search), indent=2)
            )
            mlflow.log_artifact(str(out / SEARCH_ARTIFACT))
        plots = write_plots(trained, metrics, split.test, out / "plots", seed=split.params.seed)
        mlflow.log_artifacts(str(out / "plots"), artifact_path="plots")

        reference = reference_sample(trained, split, split.params.reference_sample_rows)
        (out / "reference").mkdir()
        reference.to_parquet(out / REFERENCE_ARTIFACT, index=False)
        mlflow.log_artifact(str(out / REFERENCE_ARTIFACT), artifact_path="reference")
        performance = performance_reference(trained, split, metrics.threshold)
        (out / PERFORMANCE_REFERENCE_ARTIFACT).write_text(json.dumps(performance.as_dict()))
        mlflow.log_artifact(str(out / PERFORMANCE_REFERENCE_ARTIFACT), artifact_path="reference")

        example = prepare_features(split.test.head(5), trained.features)
        info = mlflow.lightgbm.log_model(
            trained.booster,
            name=MODEL_NAME_IN_RUN,
            signature=infer_signature(example, trained.booster.predict(example)),
            input_example=example,
            registered_model_name=name,
            # Explicit requirements: inferring them re-imports the model in a subprocess
            # (tens of seconds) and finds nothing more than this.
            pip_requirements=_pip_requirements(),
            metadata={
                "calibration": {
                    "slope": trained.calibration_slope,
                    "intercept": trained.calibration_intercept,
                    "note": "probability = sigmoid(slope * raw_score + intercept); the "
                    "pyfunc flavour returns the uncalibrated score",
                },
                "categorical_codes": {
                    c: list(v) for c, v in CATEGORICAL_FEATURES.items() if c in trained.features
                },
            },
        )
        version = str(info.registered_model_version)
        card = model_card(trained, metrics, split, name=name, version=version, code_version=code)
        (out / "model_card.md").write_text(card)
        mlflow.log_artifact(str(out / "model_card.md"))
        mlflow.set_tag("registered_version", version)
        log.info("logged run %s with %d plots", run.info.run_id, len(plots))

    version_tags = {
        TAG_CALIBRATION_SLOPE: repr(trained.calibration_slope),
        TAG_CALIBRATION_INTERCEPT: repr(trained.calibration_intercept),
        TAG_THRESHOLD: repr(metrics.threshold),
        TAG_THRESHOLD_RULE: metrics.threshold_rule,
        "as_of_range": fingerprint["data.as_of_range"],
        "train_as_of": fingerprint["data.train_as_of"],
        "test_as_of": fingerprint["data.test_as_of"],
        "test_auc": f"{metrics.auc:.4f}",
        "test_recall": f"{metrics.recall:.4f}",
        "test_precision": f"{metrics.precision:.4f}",
        "test_brier": f"{metrics.brier:.4f}",
        "metrics_summary": metrics.summary(),
        "data_sha256": fingerprint["data.sha256"],
        "code_version": code,
        "trained_by": actor,
    }
    if metrics.contact_capacity is not None:
        version_tags[TAG_CONTACT_CAPACITY] = str(metrics.contact_capacity)
        version_tags[TAG_CAPACITY_BASE_ROWS] = f"{metrics.capacity_base_rows:.1f}"
    for key, value in version_tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.update_model_version(name, version, description=metrics.summary())
    return RegisteredVersion(
        name=name,
        version=version,
        run_id=run.info.run_id,
        model_uri=f"models:/{name}/{version}",
        experiment_id=experiment_id,
    )


def _params(trained: TrainedModel, split: FrameSplit) -> dict[str, Any]:
    params: dict[str, Any] = {f"train.{k}": v for k, v in dataclasses.asdict(split.params).items()}
    params["train.label_horizon_days"] = split.params.label_horizon_days  # a constant now
    params.update({f"lgb.{k}": v for k, v in trained.lgb_params.items()})
    params.update(
        {
            "best_iteration": trained.best_iteration,
            "scale_pos_weight": round(trained.scale_pos_weight, 6),
            "negatives_kept": trained.negatives_kept,
            "calibration_slope": round(trained.calibration_slope, 6),
            "calibration_intercept": round(trained.calibration_intercept, 6),
            "n_features": len(trained.features),
        }
    )
    if trained.search is not None:
        params.update(
            {
                "search.trials": trained.search.trials,
                "search.best_trial": trained.search.best_trial,
                "search.best_validation_auc": round(trained.search.best_validation_auc, 6),
            }
        )
    return params


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in ("lightgbm", "numpy", "pandas")]
