"""The Airflow environment of the project: one place that says how Airflow runs here.

Used by ``churnops airflow ...`` (and so by ``make up`` and ``make backfill``) and by the
test suite, so the UI, the CLI and the tests all see the same DAGs, plugins and state.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

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
    port = port or int(environ.get("CHURNOPS_AIRFLOW_PORT", "8080"))
    env = {
        **QUIET_ENV,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(paths.dags_dir),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(paths.plugins_dir),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # 2 cores: a handful of task processes, not Airflow's default 32.
        "AIRFLOW__CORE__PARALLELISM": environ.get("CHURNOPS_AIRFLOW_PARALLELISM", "4"),
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
    wanted = os.environ.get("CHURNOPS_AIRFLOW_ADMIN_PASSWORD")
    if path.exists() and not wanted:
        return str(json.loads(path.read_text()).get("admin", ""))
    password = wanted or secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"admin": password}))
    return password


def _jwt_secret(home: Path) -> str:
    """All Airflow components must share one JWT secret; keep it in the state dir (not in git)."""
    path = home / "jwt_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(64))  # >= 64 bytes for HS512
    return path.read_text().strip()
