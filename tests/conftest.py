"""Shared test set-up: telemetry off, small deterministic simulations."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[1]

for _name, _value in {
    "DO_NOT_TRACK": "true",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "SCARF_ANALYTICS": "false",
}.items():
    os.environ.setdefault(_name, _value)

# Tests never read a developer's CHURNOPS_* settings, and anything that falls back to
# the default state dir writes into a throw-away folder, never the project's .churnops/.
for _name in [n for n in os.environ if n.startswith("CHURNOPS_")]:
    del os.environ[_name]
os.environ["CHURNOPS_STATE_DIR"] = tempfile.mkdtemp(prefix="churnops-test-state-")
# The nightly's online_features task (and the service) write Redis under this prefix: one
# per test process, never a deployment's; removed at the end of the session.
os.environ["CHURNOPS_ONLINE_STORE_PREFIX"] = f"churnops-test-{uuid.uuid4().hex[:12]}"

# Airflow reads its configuration at import: point it at a throw-away home first, so
# tests never touch a developer's ~/airflow or the project's .churnops/airflow.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="churnops-test-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT_DIR / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(PROJECT_DIR / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"

from churnops.settings import SimulationSettings  # noqa: E402

if TYPE_CHECKING:
    from churnops.warehouse import Warehouse

SMALL_START = dt.date(2025, 1, 1)


@pytest.fixture(scope="session")
def small_sim() -> SimulationSettings:
    """A small base: fast to generate, big enough for stable shares."""
    return SimulationSettings(customers=2_000, seed=7, history_start=SMALL_START, history_days=60)


@pytest.fixture(scope="session")
def small_landing(tmp_path_factory: pytest.TempPathFactory, small_sim: SimulationSettings) -> Path:
    """Clean drops for the first 21 days of the small base."""
    from churnops.simulate import simulate_days

    root = tmp_path_factory.mktemp("landing")
    simulate_days(small_sim, SMALL_START, SMALL_START + dt.timedelta(days=20), root)
    return root


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata DB (SQLite) in the session's throw-away AIRFLOW_HOME."""
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)
    return _AIRFLOW_HOME


# ----------------------------------------------------------------------------- warehouses
# This machine's PostgreSQL (`make services`): trust auth for the postgres user.
POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER = "127.0.0.1", 5432, "postgres"


def _postgres_admin():  # -> psycopg2 connection on the maintenance database
    import psycopg2

    try:
        con = psycopg2.connect(
            host=POSTGRES_HOST,
            port=POSTGRES_PORT,
            user=POSTGRES_USER,
            dbname="postgres",
            connect_timeout=10,
        )
    except psycopg2.OperationalError as error:
        pytest.fail(
            f"PostgreSQL is not reachable on {POSTGRES_HOST}:{POSTGRES_PORT} as "
            f"{POSTGRES_USER} ({str(error).strip()}): start it with `make services`"
        )
    con.autocommit = True  # CREATE / DROP DATABASE cannot run in a transaction
    return con


def drop_postgres_database(name: str) -> None:
    """Drop ``name``, ending whatever connections are still open on it first."""
    con = _postgres_admin()
    try:
        with con.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        con.close()


@contextlib.contextmanager
def fresh_postgres_database(prefix: str = "churnops_test", icu_locale: str = "") -> Iterator[str]:
    """A new, empty database with a unique name on the local PostgreSQL, as a DSN; dropped
    afterwards. ``icu_locale`` (e.g. ``en-US``) gives it that collation where the server
    has ICU (this server's default is C, which sorts like DuckDB)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    con = _postgres_admin()
    try:
        with con.cursor() as cursor:
            if icu_locale:
                try:
                    cursor.execute(
                        f'CREATE DATABASE "{name}" TEMPLATE template0 '
                        f"LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}'"
                    )
                except Exception:  # no ICU on this server: its default locale
                    cursor.execute(f'CREATE DATABASE "{name}"')
            else:
                cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        con.close()
    try:
        yield f"postgresql://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        drop_postgres_database(name)


@pytest.fixture
def postgres_dsn() -> Iterator[str]:
    """A fresh, empty database on the local PostgreSQL; dropped after the test."""
    with fresh_postgres_database() as dsn:
        yield dsn


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """Each engine in turn: a DuckDB file under tmp_path, a fresh PostgreSQL database."""
    from churnops.warehouse.duckdb_warehouse import DuckDBWarehouse
    from churnops.warehouse.postgres_warehouse import PostgresWarehouse

    resource: Warehouse
    if request.param == "duckdb":
        resource = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    else:
        resource = PostgresWarehouse(request.getfixturevalue("postgres_dsn"))
    try:
        yield resource
    finally:
        resource.dispose()


@pytest.fixture(scope="session", autouse=True)
def _online_store_keys_removed() -> Iterator[None]:
    """Delete this session's online store keys (the prefix above) once it ends."""
    yield
    with contextlib.suppress(Exception):  # no Redis here: nothing was written either
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1)
        prefix = os.environ["CHURNOPS_ONLINE_STORE_PREFIX"]
        for key in client.scan_iter(match=f"{prefix}*", count=10_000):
            client.unlink(key)


# The modules that take minutes, longest first (measured in CI runs on 2 cores). pytest-xdist
# hands whole modules (--dist loadfile) to the two workers in collection order
# (--no-loadscope-reorder: by default it starts with the modules that have the most tests,
# so these few-test modules came last and one worker ran them alone for the final 15
# minutes). Started first, the rest of the suite fills in around them.
LONG_MODULES_FIRST = (
    "tests/integration/test_prod_stack.py",
    "tests/e2e/test_closed_loop.py",
    "tests/integration/test_backfill_order.py",
    "tests/e2e/test_rollout_dag.py",
    "tests/browser/test_portal_in_a_browser.py",
    "tests/e2e/test_nightly_dag.py",
    "tests/e2e/test_retrain_dag.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::", 1)[0]
        return (
            LONG_MODULES_FIRST.index(module)
            if module in LONG_MODULES_FIRST
            else len(LONG_MODULES_FIRST)
        )

    items.sort(key=rank)  # stable: each module's own order, and the rest's, stays
