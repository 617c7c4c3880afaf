"""Run the project's Airflow locally: set-up, `airflow standalone`, and a small CLI client.

Used by ``churnops airflow`` (``make up``, ``make backfill``), by the closed-loop demo, and
by the end-to-end tests that drive real scheduler runs. Everything goes through the
``airflow`` command line with the project's environment, or the REST API the UI calls
(a run's tries, the UI's Clear), exactly as a person would.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from churnops.orchestration.backfills import OpenBackfill, Requested, after_a_lost_lock
from churnops.orchestration.environment import (
    airflow_env,
    check_celery_broker,
    ensure_admin_password,
)
from churnops.settings import Settings

FINISHED = {"success", "failed"}
SQLITE_LOCK_ATTEMPTS = 5
# After a lost lock, the next try of a backfill waits this long times the try's number: the
# scheduler's write that won the lock is short.
LOST_LOCK_PAUSE_SECONDS = 2.0


class AirflowCommandFailed(RuntimeError):
    """An ``airflow`` command returned non-zero. ``str()`` is the command and the tail of
    its stderr (for logs and tests); :attr:`reason` is the last line Airflow printed,
    which is what a user reads first."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


def command_failed(
    args: Sequence[str], proc: subprocess.CompletedProcess[str], hint: str = ""
) -> AirflowCommandFailed:
    """The error for a failed ``airflow <args>``: its last stderr line is the reason."""
    command = f"airflow {' '.join(args[:2])}"
    last = next((line for line in reversed(proc.stderr.splitlines()) if line.strip()), "")
    return AirflowCommandFailed(
        f"airflow {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}",
        reason=f"{command} failed ({proc.returncode}): {last.strip()[:300]}{hint}",
    )


class LocalAirflow:
    """The ``airflow`` CLI with the project's environment."""

    def __init__(
        self, settings: Settings, port: int | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        """``environ``: the environment the ``airflow`` processes start from (``os.environ``
        unless given), the project's Airflow settings on top."""
        self.settings = settings
        base = os.environ if environ is None else environ
        self.env = {**base, **airflow_env(settings, port, base)}
        # `airflow standalone` spawns its components as `airflow ...` from PATH: put this
        # interpreter's environment first, so they run with the same install.
        bin_dir = str(Path(sys.executable).parent)
        self.env["PATH"] = os.pathsep.join([bin_dir, self.env.get("PATH", "")])
        self.airflow = shutil.which("airflow", path=self.env["PATH"]) or "airflow"
        # The interpreter of that install, for the few reads of Airflow's own models.
        beside = Path(self.airflow).with_name("python")
        self.python = str(beside) if beside.is_file() else sys.executable
        self.base_url = self.env["AIRFLOW__API__BASE_URL"]
        # Seconds any one `airflow` command may take (None: no limit); a harness that must
        # finish in bounded time sets it.
        self.command_timeout: float | None = None
        self._token: str | None = None

    def run(
        self, args: Sequence[str], check: bool = True, retry_locked: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``airflow <args>``. A command that lost the race for the SQLite metadata DB to
        the running scheduler ("database is locked": its transaction was rolled back) is
        tried again, a few times, with a growing pause, unless ``retry_locked`` is off (a
        command that commits in steps, see :meth:`backfill`)."""
        for attempt in range(SQLITE_LOCK_ATTEMPTS if retry_locked else 1):
            proc = subprocess.run(
                [self.airflow, *args],
                env=self.env,
                capture_output=True,
                text=True,
                check=False,
                timeout=self.command_timeout,
            )
            if proc.returncode == 0 or "database is locked" not in proc.stderr:
                break
            time.sleep(2.0 * (attempt + 1))
        if check and proc.returncode != 0:
            raise command_failed(args, proc)
        return proc

    def check_broker(self) -> None:
        """With the CeleryExecutor, refuse to go on without a broker that answers (one
        line, :class:`~churnops.orchestration.environment.BrokerUnavailable`)."""
        check_celery_broker(self.env)

    def prepare(self) -> str:
        """Check the Celery broker (CeleryExecutor only), migrate the metadata DB, create
        the warehouse pool; return the admin password."""
        self.check_broker()
        self.settings.paths.airflow_home.mkdir(parents=True, exist_ok=True)
        password = ensure_admin_password(self.settings)
        self.run(["db", "migrate"])
        orch = self.settings.orchestration
        self.run(
            [
                "pools",
                "set",
                orch.warehouse_pool,
                str(orch.warehouse_pool_slots),
                f"every task that opens the {self.settings.warehouse.kind} warehouse or runs "
                "dbt takes a slot (DuckDB admits one writer: one slot)",
            ]
        )
        return password

    def migrated(self) -> bool:
        """Whether the metadata DB is at Airflow's head revision (a read, no lock taken)."""
        return self.run(["db", "check-migrations", "-t", "0"], check=False).returncode == 0

    def ensure_prepared(self) -> None:
        """:meth:`prepare` unless it has been done: what a command run next to a live
        scheduler needs (``churnops backfill``). ``airflow db migrate`` writes to the
        metadata DB even when there is nothing to migrate, and on SQLite that write can
        lose the lock to the busy scheduler more often than :meth:`run` retries."""
        self.check_broker()
        orch = self.settings.orchestration
        if (
            self.migrated()
            and self.run(["pools", "get", orch.warehouse_pool], check=False).returncode == 0
        ):
            return
        self.prepare()

    def start_standalone(self, log_path: Path | None = None) -> subprocess.Popen[bytes]:
        """Start scheduler, dag-processor, API server and triggerer in their own process group."""
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        return subprocess.Popen(
            [self.airflow, "standalone"],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/api/v2/monitor/health", timeout=5) as r:
                body = json.loads(r.read())
        except OSError:
            return False
        return all(
            (body.get(part) or {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "dag_processor")
        )

    def wait_until(self, condition, timeout: float, what: str, every: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(every)
        raise TimeoutError(f"waited {timeout:.0f}s for {what}")

    def _json_rows(self, args: Sequence[str]) -> list[dict]:
        """Rows of an ``-o json`` listing; warnings Airflow prints before it are skipped."""
        proc = self.run([*args, "-o", "json"], check=False)
        for line in proc.stdout.splitlines():
            if line.startswith("["):
                try:
                    return list(json.loads(line))
                except json.JSONDecodeError:
                    return []
        return []

    def api(self, path: str, body: Any = None, method: str | None = None) -> Any:
        """The REST API (``/api/v2/<path>``, what the UI calls), signed in as admin: a GET,
        or a POST of ``body`` as JSON (or ``method``, e.g. PATCH)."""
        if self._token is None:
            login = {"username": "admin", "password": ensure_admin_password(self.settings)}
            self._token = str(self._request("/auth/token", login)["access_token"])
        return self._request(
            f"/api/v2/{path}", body, {"Authorization": f"Bearer {self._token}"}, method
        )

    def _request(
        self, path: str, body: Any = None, headers: dict | None = None, method: str | None = None
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=data,
            headers={**(headers or {}), "Content-Type": "application/json"},
            method=method or ("GET" if data is None else "POST"),
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def task_tries(self, dag_id: str, run_id: str) -> dict[str, list[dict]]:
        """Every try of every task of a run, earlier tries (and cleared ones) included; a
        mapped task's instances each under ``<task_id>[<map_index>]``."""
        run = f"dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances"
        tries: dict[str, list[dict]] = {}
        for ti in self.api(f"{run}?limit=1000")["task_instances"]:
            path, name = f"{run}/{urllib.parse.quote(ti['task_id'], safe='')}", ti["task_id"]
            if ti.get("map_index", -1) >= 0:
                path, name = f"{path}/{ti['map_index']}", f"{name}[{ti['map_index']}]"
            tries[name] = self.api(f"{path}/tries")["task_instances"]
        return tries

    def clear_tasks(self, dag_id: str, run_id: str, task_ids: Sequence[str]) -> list[dict]:
        """Clear these tasks of one run, without their downstream or upstream, as the UI's
        Clear does (through the REST API: `airflow tasks clear --task-regex` matches task
        ids as substrings in Airflow 3.3). The scheduler runs them again."""
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": list(task_ids),
            "only_failed": False,
            "reset_dag_runs": True,
            "include_downstream": False,
            "include_upstream": False,
        }
        return list(self.api(f"dags/{dag_id}/clearTaskInstances", body)["task_instances"])

    def dag_ids(self) -> set[str]:
        return {row["dag_id"] for row in self._json_rows(["dags", "list"])}

    def runs(self, dag_id: str) -> list[dict]:
        return self._json_rows(["dags", "list-runs", dag_id])

    def backfill(self, dag_id: str, first: str, last: str, *extra: str) -> str:
        """``airflow backfill create`` of the runs whose logical dates fall on the days
        ``first`` .. ``last`` (``YYYY-MM-DD``, inclusive): what ``churnops backfill
        --from-date F --to-date L`` means.

        Airflow compares ``--to-date`` with logical dates, and the nightly's logical date
        of day D is D 02:30, so ``--to-date L`` alone would leave out day L (and refuse a
        one-day range: "No runs to create"): the last instant of ``last`` is passed.

        Airflow lets a backfill run 10 nights at once whatever the DAG's own
        ``max_active_runs``; unless ``extra`` says otherwise, the DAG's limit from settings
        applies (1 by default). The nights wait for the one DuckDB writer slot anyway, and
        in date order each night's retraining policy sees the nights before it, as the
        nightly schedule would have."""
        start = dt.date.fromisoformat(str(first)[:10])
        end = dt.date.fromisoformat(str(last)[:10])
        until = dt.datetime.combine(end, dt.time.max.replace(microsecond=0), tzinfo=dt.UTC)
        if "--max-active-runs" not in extra:
            extra = (*extra, "--max-active-runs", str(self.settings.orchestration.max_active_runs))
        args = [
            "backfill",
            "create",
            "--dag-id",
            dag_id,
            "--from-date",
            start.isoformat(),
            "--to-date",
            until.isoformat(),
            *extra,
        ]
        # A lost SQLite lock (the busy scheduler) can leave nothing, a half-created
        # backfill, or the whole backfill behind: the metadata DB says which (see
        # churnops.orchestration.backfills), not a blind retry.
        reprocess = (
            extra[extra.index("--reprocess-behavior") + 1]
            if ("--reprocess-behavior" in extra)
            else "none"
        )
        requested = Requested(
            from_date=dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC),
            to_date=until,
            reprocess_behavior=reprocess,
            first_try_at=dt.datetime.now(dt.UTC),
        )
        for attempt in range(1, SQLITE_LOCK_ATTEMPTS + 1):
            proc = self.run(args, check=False, retry_locked=False)
            if proc.returncode == 0:
                return proc.stdout
            if "database is locked" not in proc.stderr or attempt == SQLITE_LOCK_ATTEMPTS:
                raise command_failed(args, proc)
            verdict = after_a_lost_lock(
                requested, [OpenBackfill.from_json(row) for row in self._backfills("open", dag_id)]
            )
            print(
                f"the metadata DB was busy while Airflow created the backfill of {dag_id}: "
                f"{verdict.reason}",
                file=sys.stderr,
                flush=True,
            )
            if verdict.action == "created":
                return f"{verdict.reason}\n"
            if verdict.action == "blocked":
                raise command_failed(args, proc, hint=f" ({verdict.reason})")
            if (
                verdict.action == "discard_and_retry"
                and self._backfills("discard", str(verdict.backfill_id)) == "has_runs"
            ):
                # It got its runs while we looked: Airflow created it after all.
                return f"backfill {verdict.backfill_id} of {dag_id} was created with its runs\n"
            time.sleep(LOST_LOCK_PAUSE_SECONDS * attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _backfills(self, *args: str) -> Any:
        """``python -m churnops.orchestration.backfills <args>`` in Airflow's environment
        (it reads the metadata DB through Airflow's models): its JSON answer."""
        proc = subprocess.run(
            [self.python, "-m", "churnops.orchestration.backfills", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=self.command_timeout,
        )
        if proc.returncode != 0:
            raise AirflowCommandFailed(
                f"reading the backfills from the metadata DB failed: {proc.stderr[-2000:]}",
                reason="reading the backfills from Airflow's metadata DB failed: "
                + next((x for x in reversed(proc.stderr.splitlines()) if x.strip()), "")[:300],
            )
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def backfill_days(self, dag_id: str, first: dt.date, last: dt.date, *extra: str) -> str:
        """Backfill the nightly runs that process the days ``first`` .. ``last`` (inclusive)."""
        return self.backfill(dag_id, first.isoformat(), last.isoformat(), *extra)

    def wait_for_runs(
        self, dag_id: str, count: int, timeout: float, run_id_prefix: str = ""
    ) -> list[dict]:
        """Wait until ``count`` runs of ``dag_id`` (whose run id starts with the prefix, e.g.
        ``backfill__``) have finished; return those runs."""

        def matching() -> list[dict]:
            return [r for r in self.runs(dag_id) if str(r.get("run_id")).startswith(run_id_prefix)]

        self.wait_until(
            lambda: sum(r.get("state") in FINISHED for r in matching()) >= count,
            timeout,
            f"{count} finished runs of {dag_id}",
            every=5.0,
        )
        return matching()


@contextlib.contextmanager
def running_airflow(
    settings: Settings,
    port: int | None = None,
    boot_timeout: float = 180.0,
    environ: Mapping[str, str] | None = None,
) -> Iterator[LocalAirflow]:
    """`airflow standalone` for the duration of the block; stopped (whole group) afterwards.
    ``environ``: what its processes start from (``os.environ`` unless given)."""
    client = LocalAirflow(settings, port, environ)
    client.prepare()
    log_path = settings.paths.airflow_home / "standalone.log"
    proc = client.start_standalone(log_path)
    try:
        client.wait_until(client.healthy, boot_timeout, "Airflow to report healthy")
        yield client
    finally:
        stop_process_tree(proc)


def stop_process_tree(proc: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """Stop standalone and everything it spawned: its process group, plus any child that
    started a session of its own (the API server's workers do), which killpg would miss."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=grace)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
