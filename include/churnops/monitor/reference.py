"""What a model version's nights are measured against, both stored with its training run
by ``churnops.registry.log_training_run``:

- the drift reference, ``reference/features.parquet``: a sample of its training rows (keys,
  features, label and the model's score, at most ``TrainParams.reference_sample_rows``);
- the performance reference, ``reference/performance.json``: the calibration and sampling
  errors its nights' performance is estimated with (``churnops.estimation``).

Neither changes for a version, so each is downloaded once per version and kept under
``<reports_dir>/reference/``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from churnops.registry.aliases import RegistryError
from churnops.registry.runs import PERFORMANCE_REFERENCE_ARTIFACT, REFERENCE_ARTIFACT
from churnops.registry.tracking import mlflow_client, registry_outages, require_tracking_server
from churnops.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from churnops.estimation import PerformanceReference

log = logging.getLogger(__name__)


class ReferenceMissing(RegistryError):
    """A model version has no training sample to measure drift against."""


def reference_cache_path(settings: Settings, model_version: str | int) -> Path:
    return settings.paths.reports_dir / "reference" / f"v{model_version}.parquet"


def load_reference(settings: Settings, model_version: str | int) -> pd.DataFrame:
    """The version's training sample (downloaded on first use, then read from the cache)."""
    import pandas as pd

    cache = reference_cache_path(settings, model_version)
    if not cache.exists():
        _download(settings, str(model_version), REFERENCE_ARTIFACT, cache)
    return pd.read_parquet(cache)


def load_performance_reference(
    settings: Settings, model_version: str | int
) -> PerformanceReference:
    """The version's CBPE reference (downloaded on first use, then read from the cache).
    :class:`ReferenceMissing` for a version trained before it was logged."""
    import json

    from churnops.estimation import PerformanceReference

    cache = settings.paths.reports_dir / "reference" / f"v{model_version}.performance.json"
    if not cache.exists():
        _download(settings, str(model_version), PERFORMANCE_REFERENCE_ARTIFACT, cache)
    return PerformanceReference.from_dict(json.loads(cache.read_text()))


def _download(settings: Settings, version: str, artifact: str, cache: Path) -> None:
    from mlflow.exceptions import MlflowException

    # A server that is down is RegistryUnavailable (one line, in seconds), not "no version".
    require_tracking_server(settings)
    client = mlflow_client(settings)
    name = settings.mlflow.registered_model_name
    try:
        with registry_outages(settings):
            model_version = client.get_model_version(name, version)
    except MlflowException as exc:
        raise ReferenceMissing(f"{name} v{version} is not a registered version: {exc}") from exc
    run_id = model_version.run_id
    if not run_id:
        raise ReferenceMissing(
            f"{name} v{version} has no training run, so no {artifact} to measure it against"
        )
    cache.parent.mkdir(parents=True, exist_ok=True)
    # Downloaded next to the cache and renamed into place: a crash or a concurrent
    # download never leaves a half-written parquet where the next night would read it.
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache.parent) as tmp:
        try:
            with registry_outages(settings):
                downloaded = Path(client.download_artifacts(run_id, artifact, tmp))
        except (MlflowException, OSError) as exc:
            raise ReferenceMissing(
                f"{name} v{version} (run {run_id}) has no {artifact}: it was not logged by "
                "churnops.registry.log_training_run (a version trained before it was), so "
                f"its nights cannot be measured against it ({exc})"
            ) from exc
        if not downloaded.is_file():
            raise ReferenceMissing(f"{name} v{version} (run {run_id}): {artifact} is not a file")
        os.replace(downloaded, cache)
    log.info("%s of %s v%s cached at %s", artifact, name, version, cache)
