"""Load registered versions back: the champion for scoring, any version's metrics."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from churnops.evaluate.metrics import ModelMetrics
from churnops.registry.aliases import CHAMPION, RegistryError
from churnops.registry.tracking import mlflow_client
from churnops.settings import Settings
from churnops.train.model import ChurnModel

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# Where log_training_run puts what is loaded here.
METRICS_ARTIFACT = "metrics.json"
FEATURES_ARTIFACT = "features.json"
TAG_CALIBRATION_SLOPE = "calibration_slope"
TAG_CALIBRATION_INTERCEPT = "calibration_intercept"
TAG_THRESHOLD = "threshold"


class NoChampion(RegistryError):
    """No version holds the champion alias yet."""


@dataclass
class LoadedModel:
    """A registered version, ready to score."""

    name: str
    version: str
    run_id: str | None
    model: ChurnModel
    threshold: float | None  # the operating threshold chosen when it was trained
    tags: dict[str, str]

    @property
    def features(self) -> list[str]:
        return self.model.features

    @property
    def booster(self) -> object:
        return self.model.booster

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Churn probability within 90 days, per row of ``frame``."""
        return self.model.predict(frame)


def load_version(settings: Settings, version: str | int) -> LoadedModel:
    """The native LightGBM booster of a registered version, with its calibration.

    A registered version never changes, so a process loads each one once (a nightly task
    process scores one night; a backfill loop or a test scores many).
    """
    key = (settings.mlflow.tracking_uri, settings.mlflow.registered_model_name, str(version))
    if key not in _LOADED:
        _LOADED[key] = _load_version(settings, version)
    return _LOADED[key]


_LOADED: dict[tuple[str | None, str, str], LoadedModel] = {}


def _load_version(settings: Settings, version: str | int) -> LoadedModel:
    import mlflow

    client = mlflow_client(settings)
    name = settings.mlflow.registered_model_name
    model_version = client.get_model_version(name, str(version))
    tags = dict(model_version.tags)
    missing = [t for t in (TAG_CALIBRATION_SLOPE, TAG_CALIBRATION_INTERCEPT) if t not in tags]
    if missing:
        raise RegistryError(
            f"{name} v{version} lacks the tags {', '.join(missing)}: it was not registered by "
            "churnops.registry.log_training_run and cannot be scored here"
        )
    booster = mlflow.lightgbm.load_model(f"models:/{name}/{model_version.version}")
    model = ChurnModel(
        booster=booster,
        features=list(booster.feature_name()),
        calibration_slope=float(tags[TAG_CALIBRATION_SLOPE]),
        calibration_intercept=float(tags[TAG_CALIBRATION_INTERCEPT]),
    )
    threshold = float(tags[TAG_THRESHOLD]) if TAG_THRESHOLD in tags else None
    return LoadedModel(
        name, str(model_version.version), model_version.run_id, model, threshold, tags
    )


def champion_version(settings: Settings) -> str | None:
    """The champion's version number, or None."""
    from churnops.registry.aliases import current_aliases

    return current_aliases(settings).get(CHAMPION)


def newest_version_created_at(settings: Settings) -> dt.datetime | None:
    """When the newest version of the registered model was registered (UTC), or None."""
    client = mlflow_client(settings)
    name = settings.mlflow.registered_model_name
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        return None
    newest_ms = max(int(v.creation_timestamp) for v in versions)
    return dt.datetime.fromtimestamp(newest_ms / 1000, tz=dt.UTC)


def load_champion(settings: Settings) -> LoadedModel:
    """The champion (``models:/<name>@champion``) ready to score; :class:`NoChampion` if none."""
    version = champion_version(settings)
    if version is None:
        raise NoChampion(
            f"no champion for {settings.mlflow.registered_model_name!r} yet: train one "
            "(the retrain DAG, or churnops.train.pipeline.retrain)"
        )
    return load_version(settings, version)


def version_metrics(settings: Settings, version: str | int) -> ModelMetrics:
    """The metrics a version was registered with (on its own test window)."""
    client = mlflow_client(settings)
    model_version = client.get_model_version(settings.mlflow.registered_model_name, str(version))
    if not model_version.run_id:
        raise RegistryError(f"v{version} has no training run to read its metrics from")
    with tempfile.TemporaryDirectory(prefix="churnops-metrics-") as tmp:
        path = client.download_artifacts(model_version.run_id, METRICS_ARTIFACT, tmp)
        return ModelMetrics.from_dict(json.loads(Path(path).read_text()))


def champion_metrics(settings: Settings) -> ModelMetrics | None:
    """The champion's registered metrics (its own test window), or None without a champion."""
    version = champion_version(settings)
    return None if version is None else version_metrics(settings, version)
