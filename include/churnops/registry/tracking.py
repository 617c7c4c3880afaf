"""Where MLflow lives: tracking URI, registry URI, the experiment and its artifact store.

Local profile: SQLite at ``<state_dir>/mlflow/mlflow.db``, artifacts under
``<state_dir>/mlflow/artifacts/<experiment>``. Prod: ``CHURNOPS_MLFLOW_TRACKING_URI``
(an ``mlflow server``, which owns the artifact store). The tracking server is also the
model registry.

A tracking server that cannot be reached is :class:`RegistryUnavailable`, one line naming
the URI (without credentials) and what to check: :func:`require_tracking_server` asks the
server's ``/health`` once, with a short timeout (MLflow's own client retries a refused
connection for about four minutes before it gives up), and :func:`registry_outages` turns
a client call's connection failure into the same error.
"""

from __future__ import annotations

import contextlib
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from churnops.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 10.0


class RegistryError(RuntimeError):
    """An alias move that cannot be made, with the reason in plain words."""


class RegistryUnavailable(RegistryError):
    """The MLflow tracking server (the model registry) cannot be reached."""


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


def safe_uri(uri: str) -> str:
    """``uri`` without a user, password or query string."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _unavailable(uri: str, reason: str) -> RegistryUnavailable:
    return RegistryUnavailable(
        f"the MLflow tracking server {safe_uri(uri)} is not reachable: {reason}. Check "
        "CHURNOPS_MLFLOW_TRACKING_URI, that `mlflow server` is running there, and that this "
        "worker can reach it"
    )


_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]>]+")


def _reason(error: BaseException) -> str:
    """A short reason from an error chain: the OS error when there is one (never a URL)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, urllib.error.HTTPError):
            return f"HTTP {seen.code} from its /health"
        match = _ERRNO.search(str(seen))
        if match:
            return match.group(0).strip()
        if "timed out" in str(seen).lower() or isinstance(seen, TimeoutError):
            return "the connection timed out"
        seen = seen.__cause__ or seen.__context__
    return type(error).__name__


def require_tracking_server(settings: Settings, timeout: float = HEALTH_TIMEOUT_SECONDS) -> None:
    """Raise :class:`RegistryUnavailable` unless the tracking server answers its ``/health``
    (one try, ``timeout`` seconds). Nothing to ask for a local (SQLite, file) store."""
    uri = tracking_uri(settings)
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    health = urlunsplit(
        (parts.scheme, parts.netloc.rpartition("@")[2], parts.path.rstrip("/") + "/health", "", "")
    )
    try:
        with urllib.request.urlopen(health, timeout=timeout) as response:  # http(s) checked
            if response.status != 200:
                raise _unavailable(uri, f"HTTP {response.status} from its /health")
    except RegistryUnavailable:
        raise
    except (OSError, ValueError) as error:
        raise _unavailable(uri, _reason(error)) from None


def _connection_failure(error: BaseException) -> bool:
    """True when an MLflow client error means "no answer from the server"."""
    import requests
    from mlflow.exceptions import MlflowException

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            return True
        # MLflow's REST client words them so (its own retries exhausted, or a timeout).
        text = str(seen)
        if isinstance(seen, MlflowException) and (
            "Max retries exceeded" in text or "timeout exception" in text
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextlib.contextmanager
def registry_outages(settings: Settings) -> Iterator[None]:
    """MLflow client calls in the block: a server that does not answer becomes
    :class:`RegistryUnavailable` (one line); every other error passes as it is."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, OSError) as error:
        if not _connection_failure(error):
            raise
        raise _unavailable(tracking_uri(settings), _reason(error)) from None
