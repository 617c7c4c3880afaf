"""The Airflow environment of the project: one place that says how Airflow runs here.

Used by ``churnops airflow ...`` (and so by ``make up`` and ``make backfill``) and by the
test suite, so the UI, the CLI and the tests all see the same DAGs, plugins and state.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from churnops.errors import one_line
from churnops.settings import Settings, SettingsError

# Telemetry off: this pipeline must run where nothing outside is reachable.
QUIET_ENV = {
    "DO_NOT_TRACK": "true",
    "SCARF_ANALYTICS": "false",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "AIRFLOW__CORE__ANALYTICS_ENABLED": "False",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def airflow_env(
    settings: Settings, port: int | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment variables for every Airflow process of this project.

    These win over the caller's environment (``environ``, ``os.environ`` unless given): an
    inherited AIRFLOW_HOME or database URL would otherwise silently point the project's
    Airflow at someone else's state. Other AIRFLOW__* settings pass through untouched.

    The local profile keeps Airflow's metadata in SQLite under the state dir. The prod
    profile takes it from the operator: ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` must name
    a PostgreSQL database, ``AIRFLOW__CORE__EXECUTOR`` defaults to the CeleryExecutor
    (broker and result backend: ``AIRFLOW__CELERY__*``), and a JWT secret given in
    ``AIRFLOW__API_AUTH__JWT_SECRET`` is used instead of the state dir's. So are the API
    server's addresses, ``AIRFLOW__API__BASE_URL`` and
    ``AIRFLOW__CORE__EXECUTION_API_SERVER_URL``, when given: components on other hosts
    (or containers) reach the API server by its name there, not by localhost.
    """
    environ = os.environ if environ is None else environ
    paths = settings.paths
    home = paths.airflow_home
    port = port or settings.airflow.port
    env = {
        **QUIET_ENV,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(paths.dags_dir),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(paths.plugins_dir),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # 2 cores: a handful of task processes, not Airflow's default 32.
        "AIRFLOW__CORE__PARALLELISM": str(settings.airflow.parallelism),
        # SQLite with a busy timeout: the scheduler, the API server and CLI commands (e.g.
        # `backfill create`) write the same file and would otherwise fail with "locked".
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": _jwt_secret(home),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(settings)),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "CHURNOPS_STATE_DIR": str(paths.state_dir),
        "CHURNOPS_PROJECT_DIR": str(paths.project_dir),
    }
    if settings.profile == "prod":
        env |= _prod_metadata_env(environ)
    env |= openlineage_env(settings, environ)
    return env


# Where an operator sends OpenLineage events through Airflow's own settings (an HTTP
# server, a config file): then those are used instead of the state dir's file.
OPERATOR_OPENLINEAGE_SETTINGS = (
    "AIRFLOW__OPENLINEAGE__TRANSPORT",
    "AIRFLOW__OPENLINEAGE__CONFIG_PATH",
    "OPENLINEAGE_URL",
)
OPENLINEAGE_NAMESPACE = "churnops"
# The TaskFlow tasks' datasets (churnops.orchestration.lineage).
TASK_LINEAGE_EXTRACTOR = "churnops.orchestration.lineage.TaskLineageExtractor"


def openlineage_env(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """Airflow's OpenLineage provider, as ``CHURNOPS_LINEAGE`` says: every task's START
    and COMPLETE events appended to the state dir's JSON-lines file (``file``, no server),
    or nothing (``off``). A transport given through Airflow's own ``[openlineage]``
    settings in ``environ`` (e.g. ``AIRFLOW__OPENLINEAGE__TRANSPORT='{"type": "http",
    "url": ...}'``) is kept: the events go there instead, and ``churnops.lineage`` has
    no file to read."""
    if settings.orchestration.lineage == "off":
        return {"AIRFLOW__OPENLINEAGE__DISABLED": "True"}
    extractors = [e for e in environ.get("AIRFLOW__OPENLINEAGE__EXTRACTORS", "").split(";") if e]
    env = {
        "AIRFLOW__OPENLINEAGE__DISABLED": "False",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": environ.get(
            "AIRFLOW__OPENLINEAGE__NAMESPACE", OPENLINEAGE_NAMESPACE
        ),
        "AIRFLOW__OPENLINEAGE__EXTRACTORS": ";".join(
            dict.fromkeys([*extractors, TASK_LINEAGE_EXTRACTOR])
        ),
    }
    if not any(environ.get(name) for name in OPERATOR_OPENLINEAGE_SETTINGS):
        path = settings.paths.lineage_events_file
        path.parent.mkdir(parents=True, exist_ok=True)
        transport = {"type": "file", "log_file_path": str(path), "append": True}
        env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(transport)
    return env


# What the prod profile takes from the operator when given, instead of deriving it: the
# API server's addresses (workers elsewhere reach it by its host name) and the JWT secret
# every component shares.
OPERATOR_AIRFLOW_SETTINGS = (
    "AIRFLOW__API__BASE_URL",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__API_AUTH__JWT_SECRET",
)


def _prod_metadata_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The prod profile's metadata DB and executor (the operator's, not the state dir's),
    and the operator's own :data:`OPERATOR_AIRFLOW_SETTINGS`."""
    conn = environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if not conn.startswith("postgresql"):
        raise SettingsError(
            "CHURNOPS_PROFILE=prod keeps Airflow's metadata in PostgreSQL: set "
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://USER[:PASSWORD]@HOST"
            f"[:PORT]/DATABASE (it is {'unset' if not conn else 'not a PostgreSQL URL'})"
        )
    env = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn,
        "AIRFLOW__CORE__EXECUTOR": environ.get("AIRFLOW__CORE__EXECUTOR") or "CeleryExecutor",
    }
    for name in OPERATOR_AIRFLOW_SETTINGS:
        if environ.get(name):  # e.g. the JWT secret from a secrets store
            env[name] = environ[name]
    return env


def passwords_file(settings: Settings) -> Path:
    return settings.paths.airflow_home / "simple_auth_manager_passwords.json"


def ensure_admin_password(settings: Settings) -> str:
    """The UI's admin password: CHURNOPS_AIRFLOW_ADMIN_PASSWORD, or one generated once."""
    path = passwords_file(settings)
    wanted = settings.airflow.admin_password
    keep_private(path)
    if path.exists() and not wanted:
        return str(json.loads(path.read_text()).get("admin", ""))
    password = wanted or secrets.token_urlsafe(12)
    write_private(path, json.dumps({"admin": password}))
    return password


def _jwt_secret(home: Path) -> str:
    """All Airflow components must share one JWT secret; keep it in the state dir (not in git).

    Whoever reads it can sign a session token for any user: it is its owner's alone
    (``0600``, like the admin password file)."""
    path = home / "jwt_secret"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(64), replace=False)  # >= 64 bytes for HS512
    keep_private(path)
    return path.read_text().strip()


# A secret file's mode: read and written by its owner only.
PRIVATE_MODE = 0o600


def write_private(path: Path, text: str, replace: bool = True) -> None:
    """Write ``text`` to ``path`` readable by its owner only, with no moment where another
    user could read it: a temporary file created ``0600`` in the same folder, then renamed
    over ``path`` (a reader sees the old secret or the new one, never half of it).
    ``replace=False``: keep ``path`` when it already exists (another process was first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        if replace:
            os.replace(temporary, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)  # fails when another process wrote it first
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def keep_private(path: Path) -> None:
    """Take group and other users' access away from an existing secret file (one written
    by an older version of the project was ``0644``)."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_mode & 0o077:
            path.chmod(PRIVATE_MODE)


# Airflow's own default when nothing sets [celery] broker_url.
AIRFLOW_DEFAULT_BROKER_URL = "redis://redis:6379/0"
BROKER_TIMEOUT_SECONDS = 3.0


class BrokerUnavailable(SettingsError):
    """The CeleryExecutor's broker does not answer: queued tasks would never reach a worker."""


def uses_celery(env: Mapping[str, str]) -> bool:
    return "CeleryExecutor" in env.get("AIRFLOW__CORE__EXECUTOR", "")


def celery_broker_url(env: Mapping[str, str]) -> str | None:
    """The broker URL these Airflow processes will use: ``AIRFLOW__CELERY__BROKER_URL``,
    else ``[celery] broker_url`` of ``$AIRFLOW_HOME/airflow.cfg``, else Airflow's default.
    None when it comes from a command or a secrets backend (``..._CMD``, ``..._SECRET``):
    only Airflow can resolve those."""
    if env.get("AIRFLOW__CELERY__BROKER_URL"):
        return env["AIRFLOW__CELERY__BROKER_URL"]
    if env.get("AIRFLOW__CELERY__BROKER_URL_CMD") or env.get("AIRFLOW__CELERY__BROKER_URL_SECRET"):
        return None
    config = configparser.ConfigParser(interpolation=None)
    config.read(Path(env.get("AIRFLOW_HOME", "")) / "airflow.cfg")
    return config.get("celery", "broker_url", fallback=None) or AIRFLOW_DEFAULT_BROKER_URL


def safe_broker_url(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{netloc}", parts.path, parts.query, ""))


def check_celery_broker(env: Mapping[str, str], timeout: float = BROKER_TIMEOUT_SECONDS) -> None:
    """Raise :class:`BrokerUnavailable` (one line) when the processes of ``env`` run the
    CeleryExecutor and its broker does not accept a connection within ``timeout`` seconds.

    Without the broker, Airflow 3.3's scheduler starts and queues tasks as usual; sending
    each one fails a few seconds later ("Error sending Celery workload: Error 111
    connecting to ...", and a 100-line traceback, in the scheduler's log only), the
    executor reports the task failed and the scheduler fails it (or puts it up for retry)
    without a try ever running: the task's log in the UI is empty. So the project's
    Airflow refuses to start without its broker instead, with the reason."""
    if not uses_celery(env):
        return
    url = celery_broker_url(env)
    if url is None:
        return
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=timeout) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as error:  # noqa: BLE001 - kombu and each transport raise their own
        raise BrokerUnavailable(
            f"Celery broker {safe_broker_url(url)} is not reachable: "
            f"{one_line(error) or type(error).__name__}. Start it, or "
            "set AIRFLOW__CELERY__BROKER_URL to the broker the Celery workers use"
        ) from None
