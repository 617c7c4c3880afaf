"""Load registered versions back: the champion for scoring, any version's metrics."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from churnops.evaluate.metrics import ModelMetrics
from churnops.registry.aliases import CHAMPION, RegistryError
from churnops.registry.tracking import mlflow_client, tracking_uri
from churnops.settings import Settings
from churnops.train.model import ChurnModel

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

# Where log_training_run puts what is loaded here.
METRICS_ARTIFACT = "metrics.json"
FEATURES_ARTIFACT = "features.json"
TAG_CALIBRATION_SLOPE = "calibration_slope"
TAG_CALIBRATION_INTERCEPT = "calibration_intercept"
TAG_THRESHOLD = "threshold"
# The rule that chose the threshold, as ModelMetrics.threshold_rule records it
# (``max_f1``, ``recall_target@0.75``, ``capacity@500``), and, for the capacity rule, the
# customers contacted a night and the night's base the threshold was fitted to.
TAG_THRESHOLD_RULE = "threshold_rule"
TAG_CONTACT_CAPACITY = "contact_capacity"
TAG_CAPACITY_BASE_ROWS = "capacity_base_rows"


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
    def contact_capacity(self) -> int | None:
        """Customers contacted a night when the version's rule is ``capacity`` (its
        operating point is then the night's top N, not its threshold); else None."""
        raw = self.tags.get(TAG_CONTACT_CAPACITY)
        return int(raw) if raw else None

    @property
    def booster(self) -> object:
        return self.model.booster

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Churn probability within 90 days, per row of ``frame``."""
        return self.model.predict(frame)


def load_version(settings: Settings, version: str | int, run_id: str | None = None) -> LoadedModel:
    """The native LightGBM booster of a registered version, with its calibration.

    A registered version never changes, so a process loads each one once (a nightly task
    process scores one night; a backfill loop or a test scores many), and every load from
    the registry is also kept on this machine's disk (:func:`cached_version_path`). Given
    the version's ``run_id`` (the nightly's scoring plan carries it), a later process
    loads it from that copy without importing MLflow or asking the registry: 4-7 s less
    per scoring task. Without a ``run_id`` the registry is always asked.
    """
    key = (tracking_uri(settings), settings.mlflow.registered_model_name, str(version))
    if key not in _LOADED:
        cached = _read_cached(settings, str(version), run_id) if run_id else None
        _LOADED[key] = cached or _load_version(settings, version)
    loaded = _LOADED[key]
    if run_id is not None and loaded.run_id != run_id:
        raise RegistryError(
            f"{loaded.name} v{loaded.version} comes from run {loaded.run_id}, not {run_id}: "
            "the registry changed since the version was chosen; plan the night again"
        )
    return loaded


_LOADED: dict[tuple[str, str, str], LoadedModel] = {}


def version_run_id(settings: Settings, version: str | int) -> str | None:
    """The training run a registered version came from (one registry call, no download):
    with it, :func:`load_version` can load the version from this machine's copy."""
    client = mlflow_client(settings)
    return client.get_model_version(settings.mlflow.registered_model_name, str(version)).run_id


def cached_version_path(settings: Settings, version: str, run_id: str) -> Path:
    """Where this machine keeps a copy of a registered version (``.txt``: the booster,
    ``.json``: its tags). Named by the registry, the version and its run: a registry that
    was reset and numbers versions from 1 again never reads another model's copy."""
    registry = hashlib.sha256(tracking_uri(settings).encode()).hexdigest()[:12]
    name = settings.mlflow.registered_model_name
    return settings.paths.registered_models_dir / registry / f"{name}-v{version}-{run_id}"


def _read_cached(settings: Settings, version: str, run_id: str) -> LoadedModel | None:
    import lightgbm as lgb

    path = cached_version_path(settings, version, run_id)
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
        text = path.with_suffix(".txt").read_text()
    except (OSError, ValueError):
        return None  # not cached here (or half written by a killed process): ask the registry
    return _loaded(
        settings.mlflow.registered_model_name, version, run_id, lgb.Booster(model_str=text), meta
    )


def _write_cached(settings: Settings, loaded: LoadedModel) -> None:
    """Keep a copy; the .json is written last, so a copy with its .json is whole."""
    if not loaded.run_id:
        return
    path = cached_version_path(settings, loaded.version, loaded.run_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix, text in (
            (".txt", loaded.model.booster.model_to_string()),
            (".json", json.dumps(loaded.tags, sort_keys=True)),
        ):
            with tempfile.NamedTemporaryFile(
                "w", dir=path.parent, prefix=".tmp-", delete=False
            ) as handle:
                handle.write(text)
            os.replace(handle.name, path.with_suffix(suffix))
    except OSError as error:  # a cache: scoring goes on without it
        log.warning("could not keep a copy of %s v%s: %s", loaded.name, loaded.version, error)


def _check_tags(name: str, version: str, tags: dict[str, str]) -> None:
    missing = [t for t in (TAG_CALIBRATION_SLOPE, TAG_CALIBRATION_INTERCEPT) if t not in tags]
    if missing:
        raise RegistryError(
            f"{name} v{version} lacks the tags {', '.join(missing)}: it was not registered by "
            "churnops.registry.log_training_run and cannot be scored here"
        )


def _loaded(
    name: str, version: str, run_id: str | None, booster: object, tags: dict[str, str]
) -> LoadedModel:
    _check_tags(name, version, tags)
    model = ChurnModel(
        booster=booster,  # type: ignore[arg-type]
        features=list(booster.feature_name()),  # type: ignore[attr-defined]
        calibration_slope=float(tags[TAG_CALIBRATION_SLOPE]),
        calibration_intercept=float(tags[TAG_CALIBRATION_INTERCEPT]),
    )
    threshold = float(tags[TAG_THRESHOLD]) if TAG_THRESHOLD in tags else None
    return LoadedModel(name, version, run_id, model, threshold, tags)


def _load_version(settings: Settings, version: str | int) -> LoadedModel:
    import mlflow

    from churnops.registry.tracking import registry_outages

    client = mlflow_client(settings)
    name = settings.mlflow.registered_model_name
    with registry_outages(settings):
        model_version = client.get_model_version(name, str(version))
        tags = dict(model_version.tags)
        _check_tags(name, str(version), tags)  # before downloading a model that cannot score
        booster = mlflow.lightgbm.load_model(f"models:/{name}/{model_version.version}")
    loaded = _loaded(name, str(model_version.version), model_version.run_id, booster, tags)
    _write_cached(settings, loaded)
    return loaded


def training_cutoff(settings: Settings, version: str) -> dt.date | None:
    """The last as-of date of the version's training data (its ``as_of_range`` tag): the
    labels after it are what a retrain would learn that the version did not."""
    tags = (
        mlflow_client(settings)
        .get_model_version(settings.mlflow.registered_model_name, version)
        .tags
    )
    as_of_range = tags.get("as_of_range", "")
    return dt.date.fromisoformat(as_of_range.split("..")[-1]) if ".." in as_of_range else None


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
            "(the retrain DAG, or churnops.retrain.retrain)"
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
