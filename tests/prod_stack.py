"""The production profile's stack, started natively on this machine for a test.

``ProdStack`` creates its own PostgreSQL databases (Airflow metadata, warehouse, MLflow
backend store; unique names ``churnops_stack_<id>_*``), then starts real processes on
free local ports, each in its own process group, logging under ``<root>/logs``:

- ``mlflow server`` (PostgreSQL backend store, artifacts proxied by the server into a
  local directory, ``--artifacts-destination``),
- ``airflow db migrate`` and the project's pool (``LocalAirflow.prepare``, the same
  set-up as ``churnops airflow``), then ``airflow scheduler``, ``dag-processor``,
  ``api-server`` and ``triggerer``, and two ``airflow celery worker`` processes
  (``worker1@<host>``, ``worker2@<host>``) on a Redis broker.

Every setting reaches them as a user would give it, through the environment:
``CHURNOPS_PROFILE=prod``, ``CHURNOPS_POSTGRES_DSN``, ``CHURNOPS_MLFLOW_TRACKING_URI``,
``CHURNOPS_STATE_DIR`` (one shared directory) and the ``AIRFLOW__*`` variables
(``AIRFLOW__CORE__EXECUTOR=CeleryExecutor``, ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``,
``AIRFLOW__CELERY__BROKER_URL``, ``AIRFLOW__CELERY__RESULT_BACKEND``).

The stack is driven through Airflow's REST API (a JWT from ``/auth/token``): unpause,
trigger, poll a run, list its task instances and their tries with the ``hostname`` that
ran them. ``stop()`` kills every process group it started (SIGTERM, SIGKILL after a
grace), drops its databases (ending their connections first) and deletes its Redis keys
(all under its own key prefix). Every wait is bounded, by its own timeout and by the
stack's overall budget; when something does not come up, the error carries the tail of
that process's log. Timings of each phase are printed (``say``) and kept in ``timings``.

Both workers run on one machine, so the machine's name would not tell them apart in a
task instance's ``hostname``: each worker's Airflow reports ``<worker>@<host>`` through
``[core] hostname_callable`` (:func:`worker_hostname`), as Celery names the worker.

What the stack runs and what the user sets are plain data at the top of this module
(:data:`USER_ENV`, :data:`INIT`, :data:`COMPONENTS`): ``ProdStack`` fills in their
placeholders and runs exactly that, and ``tests/unit/test_docker_compose.py`` checks that
``docker-compose.yml`` runs the same services with the same commands and variables.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# No other test talks to Redis; the stack's keys (and pub/sub channels) also carry its own
# prefix, and only those are deleted at the end, so two stacks can share this database.
REDIS_DB = 11
WORKER_NAME_VARIABLE = "PROD_STACK_WORKER"
TERMINAL_RUN_STATES = {"success", "failed"}

# ---------------------------------------------------------------------- the stack, as data
# The {placeholders} are what differs between this machine's stack and a deployment
# (docker-compose.yml): hosts, ports, paths, database names, credentials, sizes. ProdStack
# fills them from ``ProdStack.values()``; the compose test matches them against the
# compose file, one value per placeholder across all of it.

# What a user exports to run the prod profile (``ProdStack._user_env``): variable ->
# value. Every Airflow component, the init and the churnops CLI read these.
USER_ENV: dict[str, str] = {
    "CHURNOPS_PROFILE": "prod",
    "CHURNOPS_STATE_DIR": "{state_dir}",
    "CHURNOPS_POSTGRES_DSN": "postgresql://{postgres_login}@{postgres_server}/{warehouse_db}",
    "CHURNOPS_MLFLOW_TRACKING_URI": "http://{mlflow_host}:{mlflow_port}",
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
        "postgresql+psycopg2://{postgres_login}@{postgres_server}/{airflow_db}"
    ),
    "AIRFLOW__CELERY__BROKER_URL": "redis://{redis_server}/{redis_db}",
    "AIRFLOW__CELERY__RESULT_BACKEND": (
        "db+postgresql+psycopg2://{postgres_login}@{postgres_server}/{airflow_db}"
    ),
}

# The one-off set-up before any Airflow component starts: `airflow db migrate`, the
# warehouse pool, the UI admin's password. `churnops airflow-init` is
# ``LocalAirflow.prepare``, which ProdStack calls in-process (``start``).
INIT: dict[str, tuple[str, ...]] = {"airflow-init": ("churnops", "airflow-init")}

# The MLflow server's own settings: churnops uses its tracking store and registry only, so
# MLflow 3's job runner (three huey consumer processes, for GenAI evaluation jobs) stays off.
MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}

# The long-running components: docker-compose service -> command. The airflow commands
# run in the project's Airflow environment (churnops.orchestration.environment.airflow_env):
# ProdStack starts them with LocalAirflow's; a user, and docker-compose.yml, through
# AIRFLOW_IN_PROJECT_ENV, which execs the same command with that same environment.
COMPONENTS: dict[str, tuple[str, ...]] = {
    "mlflow": (
        "mlflow",
        "server",
        "--backend-store-uri",
        "postgresql://{postgres_login}@{postgres_server}/{mlflow_db}",
        "--artifacts-destination",
        "{mlflow_artifacts}",
        "--host",
        "{mlflow_bind}",
        "--port",
        "{mlflow_port}",
        "--workers",
        "{mlflow_workers}",
    ),
    "airflow-scheduler": ("airflow", "scheduler"),
    "airflow-dag-processor": ("airflow", "dag-processor"),
    "airflow-api-server": (
        "airflow",
        "api-server",
        "--port",
        "{api_port}",
        "--workers",
        "{api_workers}",
    ),
    "airflow-triggerer": ("airflow", "triggerer"),
    "airflow-worker": (
        "airflow",
        "celery",
        "worker",
        "--celery-hostname",
        "{worker}@%h",
        "--concurrency",
        "{worker_concurrency}",
        "--queues",
        "default",
    ),
}
AIRFLOW_IN_PROJECT_ENV = ("churnops", "airflow", "--no-setup")
# ProdStack's name for each component's process (and log file); workers by their name.
PROCESS_NAMES = {
    "mlflow": "mlflow",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-api-server": "api-server",
    "airflow-triggerer": "triggerer",
}


def fill(template: str, values: Mapping[str, str]) -> str:
    """``template`` with its ``{placeholders}`` from ``values`` (a missing one raises)."""
    return template.format_map(values)


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the stack's Celery workers: ``worker1@<host>``."""
    return f"{os.environ.get(WORKER_NAME_VARIABLE, 'worker')}@{socket.gethostname()}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StackError(RuntimeError):
    """A component did not come up, a run did not finish in time, a command failed."""


@dataclass
class StackProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    args: list[str]

    @property
    def pgid(self) -> int:
        return self.popen.pid  # start_new_session: the leader's pid is the group id

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        return log_tail(self.log, lines)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _admin_connection():
    import psycopg2

    con = psycopg2.connect(
        host=POSTGRES_HOST,
        port=POSTGRES_PORT,
        user=POSTGRES_USER,
        dbname="postgres",
        connect_timeout=10,
    )
    con.autocommit = True  # CREATE / DROP DATABASE cannot run in a transaction
    return con


def _dsn(database: str, scheme: str = "postgresql") -> str:
    return f"{scheme}://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{database}"


@dataclass
class ProdStack:
    """The prod profile on this machine; use as a context manager (``start``/``stop``).

    ``env``: more settings, as a user would export them (``CHURNOPS_SIM_CUSTOMERS``, ...).
    ``budget_seconds`` bounds everything the stack waits for, start-up and runs together.
    """

    root: Path
    env: Mapping[str, str] = field(default_factory=dict)
    workers: Sequence[str] = ("worker1", "worker2")
    worker_concurrency: int = 2
    budget_seconds: float = 3600.0
    # A task whose worker died is failed (and retried) after this many seconds without
    # a heartbeat; Airflow's default is 300.
    heartbeat_timeout_seconds: int = 60
    say: Callable[[str], object] = print
    # Runs once the databases and the MLflow server are up, before any Airflow process
    # starts (e.g. bootstrap the warehouse and train the first champion through the CLI).
    before_airflow: Callable[[ProdStack], object] | None = None

    def __post_init__(self) -> None:
        self.id = uuid.uuid4().hex[:10]
        self.name = f"churnops_stack_{self.id}"
        self.databases = {
            part: f"{self.name}_{part}" for part in ("airflow", "warehouse", "mlflow")
        }
        self.state_dir = self.root / "state"
        self.artifacts_dir = self.root / "mlflow-artifacts"
        self.logs_dir = self.root / "logs"
        self.mlflow_port = free_port()
        self.api_port = free_port()
        self.redis_prefix = f"{self.name}:"
        self.timings: dict[str, float] = {}
        self.processes: dict[str, StackProcess] = {}
        self.killed: dict[str, float] = {}
        self._created: list[str] = []
        self._deadline = time.monotonic() + self.budget_seconds
        self.user_env = self._user_env()
        self.process_env = self._process_env()
        from churnops.orchestration.local_airflow import LocalAirflow
        from churnops.settings import load_settings

        self.settings = load_settings(self.user_env)
        self.airflow = LocalAirflow(self.settings, self.api_port, environ=self.process_env)
        self.airflow.command_timeout = 600  # db migrate on a busy machine: about a minute
        self.hostnames = {name: f"{name}@{socket.gethostname()}" for name in self.workers}

    # ------------------------------------------------------------------ environment
    def values(self, **more: str) -> dict[str, str]:
        """This stack's value of every placeholder of USER_ENV and COMPONENTS (``more``:
        a component's own, e.g. ``worker``)."""
        return {
            "state_dir": str(self.state_dir),
            "postgres_login": POSTGRES_USER,
            "postgres_server": f"{POSTGRES_HOST}:{POSTGRES_PORT}",
            "warehouse_db": self.databases["warehouse"],
            "airflow_db": self.databases["airflow"],
            "mlflow_db": self.databases["mlflow"],
            "redis_server": f"{REDIS_HOST}:{REDIS_PORT}",
            "redis_db": str(REDIS_DB),
            "mlflow_host": "127.0.0.1",
            "mlflow_bind": "127.0.0.1",
            "mlflow_port": str(self.mlflow_port),
            "mlflow_artifacts": str(self.artifacts_dir),
            "mlflow_workers": "1",
            "api_port": str(self.api_port),
            "api_workers": "1",
            "worker_concurrency": str(self.worker_concurrency),
            **more,
        }

    def command(self, service: str, **more: str) -> list[str]:
        """The command of a COMPONENTS service, filled in, its program from this venv."""
        program, *args = COMPONENTS[service]
        values = self.values(**more)
        path = self.airflow.airflow if program == "airflow" else str(BIN / program)
        return [path, *(fill(arg, values) for arg in args)]

    def _user_env(self) -> dict[str, str]:
        """What a user exports to run the prod profile here (USER_ENV, filled in)."""
        values = self.values()
        return {**{name: fill(value, values) for name, value in USER_ENV.items()}, **self.env}

    def _process_env(self) -> dict[str, str]:
        """The environment every process of the stack starts from: this process's, less
        any CHURNOPS_* / AIRFLOW* of the test session, plus the user's settings and what
        keeps several stacks (and the other tests' Airflow) apart on one machine."""
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CHURNOPS_", "AIRFLOW_", "AIRFLOW__", "MLFLOW_"))
        }
        return {
            **inherited,
            "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
            **self.user_env,
            # Only this stack's Redis keys and channels.
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": self.redis_prefix,
            # The nightly's online features too: the same database and prefix, deleted after.
            "CHURNOPS_ONLINE_STORE_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
            "CHURNOPS_ONLINE_STORE_PREFIX": f"{self.redis_prefix}online",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(
                self.heartbeat_timeout_seconds
            ),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            # Nine processes on one PostgreSQL (max_connections 100, shared with others).
            "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "2",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "4",
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> ProdStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = time.perf_counter() - began
            self.say(f"[prod-stack] {name}: {self.timings[name]:.1f} s")

    def remaining(self, timeout: float) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise StackError(f"the stack's budget of {self.budget_seconds:.0f} s is spent")
        return min(timeout, left)

    def start(self) -> None:
        for folder in (self.state_dir, self.artifacts_dir, self.logs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        with self.phase("start-up: services"):
            with self.phase("start-up: databases"):
                self._create_databases()
            with self.phase("start-up: mlflow server"):
                self._start_mlflow()
        if self.before_airflow is not None:
            self.before_airflow(self)
        with self.phase("start-up: airflow"):
            with self.phase("start-up: airflow db migrate + pool"):
                self.airflow.prepare()
            with self.phase("start-up: airflow components"):
                self._start_airflow()
            with self.phase("start-up: DAGs parsed"):
                self.wait_for_dags(("churn_nightly", "churn_retrain"))

    def stop(self, grace: float = 20.0) -> None:
        with self.phase("teardown"):
            self._stop_processes(grace)
            self._drop_databases()
            self._delete_redis_keys()
        self.say(self.timing_report())

    def timing_report(self) -> str:
        return "[prod-stack] timings: " + ", ".join(
            f"{name} {seconds:.1f} s" for name, seconds in self.timings.items()
        )

    # ------------------------------------------------------------------ databases
    def _create_databases(self) -> None:
        con = _admin_connection()
        try:
            with con.cursor() as cursor:
                for database in self.databases.values():
                    cursor.execute(f'CREATE DATABASE "{database}"')
                    self._created.append(database)
        finally:
            con.close()

    def _drop_databases(self) -> None:
        if not self._created:
            return
        con = _admin_connection()
        try:
            with con.cursor() as cursor:
                for database in self._created:
                    cursor.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()",
                        [database],
                    )
                    cursor.execute(f'DROP DATABASE IF EXISTS "{database}"')
        finally:
            con.close()
        self._created.clear()

    def connection_count(self) -> int:
        """Open PostgreSQL connections on the stack's databases (a gauge for the report)."""
        con = _admin_connection()
        try:
            with con.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(%s)",
                    [list(self.databases.values())],
                )
                return int(cursor.fetchone()[0])
        finally:
            con.close()

    def _delete_redis_keys(self) -> None:
        import redis

        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=10)
        try:
            keys = list(client.scan_iter(match=f"{self.redis_prefix}*", count=500))
            if keys:
                client.delete(*keys)
        except redis.RedisError as error:
            self.say(f"[prod-stack] could not delete the Redis keys {self.redis_prefix}*: {error}")
        finally:
            client.close()

    # ------------------------------------------------------------------ processes
    def _spawn(self, name: str, args: Sequence[str], env: Mapping[str, str]) -> StackProcess:
        log = self.logs_dir / f"{name}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                list(args),
                env=dict(env),
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        proc = StackProcess(name, popen, log, list(args))
        self.processes[name] = proc
        return proc

    def _start_mlflow(self) -> None:
        proc = self._spawn(
            PROCESS_NAMES["mlflow"],
            self.command("mlflow"),
            {**self.process_env, **MLFLOW_SERVER_ENV},
        )

        def healthy() -> bool:
            return self._http_ok(f"http://127.0.0.1:{self.mlflow_port}/health")

        self.wait_for(healthy, 240, "the MLflow server's /health", proc)

    def _start_airflow(self) -> None:
        env = self.airflow.env
        for service in (
            "airflow-scheduler",
            "airflow-dag-processor",
            "airflow-api-server",
            "airflow-triggerer",
        ):
            self._spawn(PROCESS_NAMES[service], self.command(service), env)
        for name in self.workers:
            self._spawn(
                name,
                self.command("airflow-worker", worker=name),
                {
                    **env,
                    # Each worker serves its task logs on its own port, and reports
                    # itself as <worker>@<host> in the task instances it runs.
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.prod_stack.worker_hostname",
                    WORKER_NAME_VARIABLE: name,
                    "PYTHONPATH": os.pathsep.join(
                        filter(None, [str(PROJECT_DIR), env.get("PYTHONPATH", "")])
                    ),
                },
            )
        airflow_procs = [self.processes[n] for n in ("scheduler", "dag-processor", "api-server")]
        self.wait_for(
            self._airflow_healthy, 300, "Airflow's /api/v2/monitor/health", *airflow_procs
        )
        for name in self.workers:
            proc = self.processes[name]
            self.wait_for(
                lambda proc=proc: " ready." in log_tail(proc.log, 400),
                240,
                f"Celery worker {name} to be ready",
                proc,
            )

    def _airflow_healthy(self) -> bool:
        url = f"{self.airflow.base_url}/api/v2/monitor/health"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.loads(response.read())
        except (OSError, ValueError):
            return False
        parts = ("metadatabase", "scheduler", "dag_processor", "triggerer")
        return all((body.get(part) or {}).get("status") == "healthy" for part in parts)

    @staticmethod
    def _http_ok(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status == 200
        except OSError:
            return False

    def wait_for(
        self,
        condition: Callable[[], Any],
        timeout: float,
        what: str,
        *watched: StackProcess,
        every: float = 2.0,
    ) -> Any:
        """Poll ``condition`` until it returns something truthy (returned); fail early when
        a watched process exits, and after ``timeout`` (or the stack's budget), with the
        tail of the watched processes' logs."""
        timeout = self.remaining(timeout)
        deadline = time.monotonic() + timeout
        last_error: OSError | None = None
        while True:
            for proc in watched:
                if not proc.alive():
                    raise StackError(
                        f"{proc.name} exited with {proc.popen.returncode} while waiting for "
                        f"{what}; the end of {proc.log}:\n{proc.tail()}"
                    )
            try:
                result = condition()
            except OSError as error:  # a server still starting: connection refused
                last_error, result = error, None
            if result:
                return result
            if time.monotonic() >= deadline:
                tails = "\n".join(f"--- {p.log}:\n{p.tail()}" for p in watched)
                raise StackError(
                    f"waited {timeout:.0f} s for {what} (last error: {last_error})\n{tails}"
                )
            time.sleep(every)

    def _stop_processes(self, grace: float) -> None:
        """SIGTERM every group (and every descendant that left its group: Airflow puts a
        task's process in a group of its own), SIGKILL what is left after ``grace``."""
        import psutil

        procs = list(self.processes.values())[::-1]
        tree: list[psutil.Process] = []
        for proc in procs:
            tree.extend(_descendants(proc.popen.pid))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pgid, signal.SIGTERM)
        for child in tree:
            with contextlib.suppress(psutil.Error):
                child.terminate()
        deadline = time.monotonic() + grace
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        _, alive = psutil.wait_procs(tree, timeout=max(0.1, deadline - time.monotonic()))
        stubborn = [p.name for p in procs if p.alive()] + [str(c.pid) for c in alive]
        if stubborn:
            self.say(f"[prod-stack] SIGKILL after {grace:.0f} s: {', '.join(stubborn)}")
        for proc in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pgid, signal.SIGKILL)
            if proc.popen.poll() is None:
                proc.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=10)
        for child in alive:
            with contextlib.suppress(psutil.Error):
                child.kill()
        self.processes.clear()

    def kill_worker(self, name: str) -> list[int]:
        """SIGKILL a Celery worker as a machine dies: its process group and every process
        under it (the task processes sit in groups of their own). Returns the pids."""
        import psutil

        proc = self.processes[name]
        tree = _descendants(proc.popen.pid)
        pids = [proc.popen.pid, *(p.pid for p in tree)]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pgid, signal.SIGKILL)
        for child in tree:
            with contextlib.suppress(psutil.Error):
                child.kill()
        proc.popen.wait(timeout=30)
        self.killed[name] = time.monotonic()
        return pids

    # ------------------------------------------------------------------ CLI
    def churnops(self, *args: str, timeout: float = 900) -> str:
        """``churnops ARGS`` with the stack's environment (output kept in the logs)."""
        log = self.logs_dir / "churnops-cli.log"
        began = time.perf_counter()
        try:
            proc = subprocess.run(
                [str(BIN / "churnops"), *args],
                env=self.process_env,
                cwd=self.root,
                capture_output=True,
                text=True,
                timeout=self.remaining(timeout),
            )
        except subprocess.TimeoutExpired as error:
            raise StackError(f"churnops {' '.join(args)} took over {error.timeout:.0f} s") from None
        with open(log, "a") as out:
            out.write(f"$ churnops {' '.join(args)}  ({time.perf_counter() - began:.1f} s)\n")
            out.write(proc.stdout + proc.stderr + "\n")
        if proc.returncode != 0:
            raise StackError(
                f"churnops {' '.join(args)} failed ({proc.returncode}):\n"
                + "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
            )
        return proc.stdout

    # ------------------------------------------------------------------ REST API
    def api(self, path: str, body: Any = None, method: str | None = None) -> Any:
        """``/api/v2/<path>`` as admin (a JWT from ``/auth/token``); errors with their body."""
        try:
            return self.airflow.api(path, body, method)
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:2000]
            raise StackError(f"{method or 'GET'} /api/v2/{path}: {error.code} {detail}") from None

    def wait_for_dags(self, dag_ids: Sequence[str], timeout: float = 300) -> None:
        def parsed() -> bool:
            errors = self.api("importErrors")
            if errors["total_entries"]:
                raise StackError(f"DAG import errors: {json.dumps(errors)[:3000]}")
            found = {d["dag_id"] for d in self.api("dags?limit=100")["dags"]}
            return set(dag_ids) <= found

        self.wait_for(parsed, timeout, f"the DAGs {', '.join(dag_ids)}", *self._core())

    def unpause(self, dag_id: str) -> None:
        self.api(f"dags/{dag_id}", {"is_paused": False}, "PATCH")

    def trigger(
        self, dag_id: str, run_id: str, logical_date: dt.datetime, conf: dict | None = None
    ) -> dict:
        body = {
            "dag_run_id": run_id,
            "logical_date": logical_date.isoformat(),
            "conf": conf or {},
        }
        return dict(self.api(f"dags/{dag_id}/dagRuns", body))

    def run(self, dag_id: str, run_id: str) -> dict:
        return dict(self.api(f"dags/{dag_id}/dagRuns/{_quote(run_id)}"))

    def runs(self, dag_id: str) -> list[dict]:
        return list(self.api(f"dags/{dag_id}/dagRuns?limit=100")["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        path = f"dags/{dag_id}/dagRuns/{_quote(run_id)}/taskInstances?limit=1000"
        return list(self.api(path)["task_instances"])

    def task_instance(
        self, dag_id: str, run_id: str, task_id: str, map_index: int | None = None
    ) -> dict:
        return dict(self.api(_ti_path(dag_id, run_id, task_id, map_index)))

    def tries(
        self, dag_id: str, run_id: str, task_id: str, map_index: int | None = None
    ) -> list[dict]:
        path = f"{_ti_path(dag_id, run_id, task_id, map_index)}/tries"
        return list(self.api(path)["task_instances"])

    def fail_stale_scheduled_runs(self, dag_id: str) -> list[str]:
        """Mark the scheduler's own active runs of ``dag_id`` failed, as an operator would
        in the UI. The simulated feed ends months before this machine's clock: with
        catchup off, the scheduler starts a run for the latest interval, a day without
        drops, whose sensor would hold the DAG's one active run for hours."""
        failed = []
        for run in self.runs(dag_id):
            if run.get("run_type") == "scheduled" and run.get("state") in {"queued", "running"}:
                self.api(
                    f"dags/{dag_id}/dagRuns/{_quote(run['dag_run_id'])}",
                    {"state": "failed"},
                    "PATCH",
                )
                failed.append(str(run["dag_run_id"]))
                self.say(f"[prod-stack] marked the scheduler's run {run['dag_run_id']} failed")
        return failed

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float,
        expect_success: bool = True,
        every: float = 3.0,
    ) -> dict:
        """Poll the run until it is success or failed. A failed run (with
        ``expect_success``) or one still going after ``timeout`` raises, naming each
        unfinished or failed task with the end of its log."""

        def finished() -> dict | None:
            run = self.run(dag_id, run_id)
            if run["state"] == "queued":
                self.fail_stale_scheduled_runs(dag_id)
            return run if run["state"] in TERMINAL_RUN_STATES else None

        try:
            run = dict(
                self.wait_for(finished, timeout, f"{dag_id} {run_id}", *self._core(), every=every)
            )
        except StackError as error:
            raise StackError(f"{error}\n{self.run_report(dag_id, run_id)}") from None
        if expect_success and run["state"] != "success":
            raise StackError(
                f"{dag_id} {run_id} ended {run['state']}\n{self.run_report(dag_id, run_id)}"
            )
        return run

    def run_report(self, dag_id: str, run_id: str) -> str:
        """Every task's state; the end of the log of each that did not succeed."""
        lines = []
        for ti in self.task_instances(dag_id, run_id):
            lines.append(f"{ti['task_id']}: {ti['state']} (try {ti['try_number']})")
            if ti["state"] in {"failed", "up_for_retry", "upstream_failed", "running"}:
                log = self.task_log(
                    dag_id, run_id, ti["task_id"], int(ti["try_number"] or 1), ti["map_index"]
                )
                lines.append(f"--- {log}:\n{log_tail(log, 15)}")
        return "\n".join(lines)

    def task_log(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        try_number: int,
        map_index: int | None = None,
    ) -> Path:
        """A try's log file (the workers write under the shared state dir; a mapped task's
        tries under ``map_index=<i>/``, as Airflow's default log template puts them)."""
        folder = (
            self.settings.paths.airflow_home
            / "logs"
            / f"dag_id={dag_id}"
            / f"run_id={run_id}"
            / f"task_id={task_id}"
        )
        if map_index is not None and map_index >= 0:
            folder /= f"map_index={map_index}"
        return folder / f"attempt={try_number}.log"

    def wait_for_new_run(
        self, dag_id: str, run_id_prefix: str, timeout: float, known: Sequence[str] = ()
    ) -> dict:
        """The first run of ``dag_id`` whose id starts with the prefix (and is not in
        ``known``), once it has finished."""

        def started() -> dict | None:
            for run in self.runs(dag_id):
                run_id = str(run["dag_run_id"])
                if run_id.startswith(run_id_prefix) and run_id not in known:
                    return run
            return None

        run = self.wait_for(started, timeout, f"a {run_id_prefix} run of {dag_id}", *self._core())
        return self.wait_for_run(dag_id, str(run["dag_run_id"]), timeout)

    def _core(self) -> list[StackProcess]:
        """The processes a run cannot do without (a killed worker is not one of them)."""
        names = ("scheduler", "dag-processor", "api-server", "triggerer", "mlflow")
        return [self.processes[n] for n in names if n in self.processes]


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _ti_path(dag_id: str, run_id: str, task_id: str, map_index: int | None) -> str:
    path = f"dags/{dag_id}/dagRuns/{_quote(run_id)}/taskInstances/{_quote(task_id)}"
    return path if map_index is None or map_index < 0 else f"{path}/{map_index}"


def _descendants(pid: int) -> list:
    import psutil

    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []
