"""Where MLflow lives: tracking URI, registry URI, the experiment and its artifact store.

Local profile: SQLite at ``<state_dir>/mlflow/mlflow.db``, artifacts under
``<state_dir>/mlflow/artifacts/<experiment>``. Prod: ``CHURNOPS_MLFLOW_TRACKING_URI``
(an ``mlflow server``, which owns the artifact store). The tracking server is also the
model registry.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from churnops.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)


def tracking_uri(settings: Settings) -> str:
    """The configured tracking URI, or the local SQLite default under the state dir."""
    return settings.mlflow.tracking_uri or f"sqlite:///{settings.paths.mlflow_dir / 'mlflow.db'}"


def artifact_root(settings: Settings) -> str | None:
    """Root for new experiments' artifacts; None leaves it to the tracking server."""
    if settings.mlflow.artifact_location:
        return settings.mlflow.artifact_location
    if settings.mlflow.tracking_uri is None:
        return (settings.paths.mlflow_dir / "artifacts").as_uri()
    return None


def registry_lock_path(settings: Settings) -> Path:
    return settings.paths.mlflow_dir / "registry.lock"


def mlflow_client(settings: Settings) -> MlflowClient:
    """A client on the settings' tracking server and registry.

    Also points MLflow's fluent API (``mlflow.start_run``, ``log_model``) at it: the
    process talks to one tracking server.
    """
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri(settings)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(settings: Settings, client: MlflowClient) -> str:
    """The experiment's id, creating it (with its artifact location) on first use."""
    from mlflow.exceptions import MlflowException

    name = settings.mlflow.experiment_name
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        root = artifact_root(settings)
        location = f"{root.rstrip('/')}/{name}" if root else None
        try:
            experiment_id = client.create_experiment(name, artifact_location=location)
            log.info("created MLflow experiment %r (artifacts: %s)", name, location or "server")
            return experiment_id
        except MlflowException:
            # Another process created it between our lookup and our create.
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return str(experiment.experiment_id)
