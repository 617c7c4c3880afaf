"""The ``churnops`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from churnops.settings import SCENARIOS, Settings, SettingsError, load_settings


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


class _Progress:
    """Progress lines on stderr, at most one every ``every`` seconds (and the last)."""

    def __init__(self, label: str, every: float = 2.0) -> None:
        self.label = label
        self.every = every
        self.began = time.perf_counter()
        self.last = 0.0

    def __call__(self, day: dt.date, done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - self.last >= self.every:
            self.last = now
            print(
                f"{self.label}: {day}  {done:>4}/{total} days  {100 * done / total:5.1f}%  "
                f"{now - self.began:6.1f}s",
                file=sys.stderr,
                flush=True,
            )


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from churnops.simulate import Corruption, simulate_days
    from churnops.storage import shared_files_for

    sim = settings.simulation
    overrides = {
        "customers": args.customers,
        "seed": args.seed,
        "scenario": args.scenario,
        "scenario_start": args.scenario_start,
        "scenario_file": args.scenario_file,
    }
    sim = dataclasses.replace(sim, **{k: v for k, v in overrides.items() if v is not None})
    if args.scenario and not args.scenario_file:
        # A shipped scenario named on the command line beats a file set in the environment.
        sim = dataclasses.replace(sim, scenario_file=None)
    start = args.start or sim.history_start
    if args.end and args.days:
        raise SettingsError("give --end or --days, not both")
    if args.end:
        end = args.end
    elif args.days:
        end = start + dt.timedelta(days=args.days - 1)
    elif args.start:
        end = start  # one day when only --start is given
    else:
        end = sim.history_end
    corruptions = [Corruption.parse(spec) for spec in args.corrupt]
    landing = args.landing_dir or shared_files_for(settings).check().landing_dir
    summary = simulate_days(
        sim, start, end, landing, corruptions, tables=args.tables, progress=_Progress("simulate")
    )
    print(summary.render())
    return 0


def cmd_bootstrap(settings: Settings, args: argparse.Namespace) -> int:
    from churnops.pipeline import bootstrap_history

    summary = bootstrap_history(
        settings, args.start, args.end, say=lambda line: print(line, flush=True)
    )
    print(summary.render())
    return 0


def cmd_airflow(settings: Settings, args: argparse.Namespace) -> int:
    """Run an ``airflow`` command in the project's Airflow environment (set up on first use)."""
    from churnops.orchestration.local_airflow import LocalAirflow, stop_process_tree

    client = LocalAirflow(settings)
    command = list(args.airflow_args)
    if args.no_setup and command[:1] in (["standalone"], ["scheduler"], ["celery"]):
        client.check_broker()  # prepare() checks it otherwise
    password = client.prepare() if not args.no_setup else "(see the passwords file)"
    if command[:1] == ["standalone"]:
        print(f"Airflow UI: {client.base_url}  (sign in as admin / {password}; Ctrl-C stops)")
        print(f"state: {settings.paths.airflow_home}", flush=True)
        proc = client.start_standalone()
        try:
            return proc.wait()
        except KeyboardInterrupt:
            stop_process_tree(proc)  # scheduler, workers, API server: all of them
            return 0
    # This process becomes the airflow command (exec, not a child): a container's or a
    # service manager's SIGTERM reaches the scheduler or worker itself, which then shuts
    # down cleanly, instead of a parent that would leave it running.
    sys.stdout.flush()
    os.execvpe(client.airflow, [client.airflow, *command], client.env)
    return 0  # not reached


def cmd_airflow_init(settings: Settings, args: argparse.Namespace) -> int:
    """Set up the project's Airflow (``LocalAirflow.prepare``) and nothing else."""
    from churnops.orchestration.environment import passwords_file
    from churnops.orchestration.local_airflow import AirflowCommandFailed, LocalAirflow

    try:
        LocalAirflow(settings).prepare()
    except AirflowCommandFailed as error:
        print(f"churnops airflow-init: {error.reason}", file=sys.stderr)
        return 1
    orch = settings.orchestration
    # Never the password itself: this goes to logs.
    source = (
        "CHURNOPS_AIRFLOW_ADMIN_PASSWORD"
        if settings.airflow.admin_password
        else str(passwords_file(settings))
    )
    print(
        f"Airflow is set up: metadata DB migrated, pool {orch.warehouse_pool} "
        f"({orch.warehouse_pool_slots} slot(s)), UI user admin (password: {source})"
    )
    return 0


def cmd_loop(settings: Settings, args: argparse.Namespace) -> int:
    """The closed loop (make run): history, first champion, nightly Airflow runs in which
    an acquisition campaign shows up as drift, the retrain it triggers; then the status."""
    from churnops.orchestration.closed_loop import run_closed_loop
    from churnops.status import collect_status, render_status

    outcome = run_closed_loop(
        settings,
        nights=args.nights,
        campaign_lead_days=args.campaign_lead_days,
        say=lambda line: print(line, flush=True),
    )
    print()
    print(render_status(collect_status(settings), color=sys.stdout.isatty()))
    from churnops.storage import shared_files_for

    reports = shared_files_for(settings).reports_dir / "drift"
    print(
        "\nwhere to look:\n"
        "  Airflow UI (every run above, the Drift reports page): make up\n"
        f"  drift reports (Evidently HTML + JSON): {reports}\n"
        "  MLflow (runs, versions, aliases): .venv/bin/mlflow ui --backend-store-uri "
        f"{settings.mlflow.tracking_uri}\n"
        f"closed loop in {outcome.seconds['total'] / 60:.1f} min"
    )
    failed = [r for r in outcome.nightly_runs + outcome.retrain_runs if r.get("state") != "success"]
    return 1 if failed else 0


def cmd_rollout_demo(settings: Settings, args: argparse.Namespace) -> int:
    """The rollout in the Airflow UI: one night per phase until the 50 % approval waits."""
    import os

    from churnops.orchestration.rollout_demo import DEMO_ENV, run_rollout_demo
    from churnops.settings import load_settings

    # The Airflow task processes read their settings from the environment too.
    for name, value in DEMO_ENV.items():
        os.environ.setdefault(name, value)
    seen = run_rollout_demo(
        load_settings(),
        nights=args.nights,
        exit_when_waiting=args.exit_when_waiting,
        say=lambda line: print(line, flush=True),
    )
    return 0 if "awaiting_approval" in seen else 1


def _actor() -> str:
    import getpass

    return f"cli:{getpass.getuser()}"


def cmd_train(settings: Settings, args: argparse.Namespace) -> int:
    from churnops.retrain import retrain
    from churnops.stores import stores_for

    outcome = retrain(
        settings,
        stores_for(settings).features,
        actor=_actor(),
        reason=args.reason or "trained from the command line",
        require_approval=True if args.require_approval else None,
    )
    print(outcome.summary)
    return 0


def cmd_promote(settings: Settings, args: argparse.Namespace) -> int:
    from churnops.registry import promote

    for move in promote(settings, args.version, args.reason, _actor()):
        print(move)
    return 0


def cmd_rollback(settings: Settings, args: argparse.Namespace) -> int:
    from churnops.deployment.ops import rollback_model

    for line in rollback_model(settings, args.reason, _actor()):
        print(line)
    return 0


def cmd_rollout_start(settings: Settings, args: argparse.Namespace) -> int:
    from churnops.deployment.ops import start_rollout

    state = start_rollout(settings, args.version, args.reason, _actor(), as_of_date=args.date)
    print(
        f"v{state.challenger_version} enters the rollout against champion "
        f"v{state.champion_version}: {state.phase} from the next scoring "
        f"(rollout {state.rollout_id}); churn_rollout moves it after each published night "
        "(churnops status shows where it is)"
    )
    return 0


def cmd_score(settings: Settings, args: argparse.Namespace) -> int:
    from churnops.score import score_day
    from churnops.stores import stores_for

    stores = stores_for(settings)
    result = score_day(
        settings, stores.features, stores.scoring, args.date, shards=args.shards, say=print
    )
    return 0 if result.state == "scored" else 1


def cmd_monitor(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from churnops.monitor.nightly import monitor_night
    from churnops.stores import stores_for

    result = monitor_night(settings, stores_for(settings).monitoring, args.date)
    print(json.dumps(result.as_dict(), indent=2, default=str))
    return 0


def cmd_contract(settings: Settings, args: argparse.Namespace) -> int:
    from churnops.dbt_contract import stale_files, write_contract

    project = settings.paths.dbt_project_dir
    if args.write:
        for path in write_contract(project):
            print(f"wrote {path}")
        return 0
    stale = stale_files(project)
    for problem in stale:
        print(f"churnops contract: {problem}", file=sys.stderr)
    if stale:
        print("churnops contract: run `churnops contract --write` (make setup)", file=sys.stderr)
        return 1
    print(f"the dbt project {project} agrees with the landing contract")
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from churnops.status import collect_status, render_status

    report = collect_status(settings)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render_status(report, color=sys.stdout.isatty()))
    return 0


def cmd_backfill(settings: Settings, args: argparse.Namespace) -> int:
    from churnops.orchestration.local_airflow import AirflowCommandFailed, LocalAirflow

    if args.from_date > args.to_date:
        raise ValueError(
            f"--from-date {args.from_date} is after --to-date {args.to_date}: give the first "
            "night first (both days are included)"
        )
    client = LocalAirflow(settings)
    extra = ["--reprocess-behavior", args.reprocess] if args.reprocess else []
    try:
        client.ensure_prepared()
        created = client.backfill(
            args.dag_id, args.from_date.isoformat(), args.to_date.isoformat(), *extra
        )
    except AirflowCommandFailed as error:
        # Airflow's own refusal (another backfill of the DAG still running, no runs in
        # the range, a DAG the processor has not parsed yet) in its last line.
        hint = (
            " (start Airflow with `make up` and let its DAG processor parse the DAGs first)"
            if "DagNotFound" in error.reason
            else ""
        )
        raise ValueError(f"{error.reason}{hint}") from error
    print(created)
    print("the scheduler runs the backfill: watch it in the Airflow UI (make up)")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import secrets

    import uvicorn

    from churnops.serve.keys import KeyChecker, keys_path

    host = args.host or settings.serve.host
    port = args.port or settings.serve.port
    workers = args.workers or settings.serve.workers
    if not settings.serve.api_key:
        if settings.profile == "local":
            # A development key for this run only: the workers read it from the environment;
            # it is printed here, never logged, and never written to disk.
            key = f"dev_{secrets.token_urlsafe(18)}"
            os.environ["CHURNOPS_SERVE_API_KEY"] = key
            print(f"development API key (this run only): {key}", flush=True)
            print(
                f"  curl -H 'X-API-Key: {key}' -H 'content-type: application/json' "
                f"-d '{{\"customer_id\": 1}}' http://{host}:{port}/v1/score",
                flush=True,
            )
        elif KeyChecker(keys_path(settings)).active == 0:
            print(
                "no API key: create one with `churnops serve-keys create` (every scoring "
                "request gets 401 until then)",
                file=sys.stderr,
            )
    print(
        f"churnops serve on http://{host}:{port} ({workers} worker(s)); docs at /docs", flush=True
    )
    uvicorn.run(
        "churnops.serve.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="warning" if not settings.debug else "info",
    )
    return 0


def cmd_serve_keys(settings: Settings, args: argparse.Namespace) -> int:
    from churnops.serve.keys import KeyFile, keys_path

    keys = KeyFile(keys_path(settings))
    if args.action == "create":
        key, record = keys.create(args.label or "")
        print(f"created API key {record.key_id} ({keys.path}); it is shown only now:")
        print(key)
    elif args.action == "revoke":
        if not args.key_id:
            raise ValueError("serve-keys revoke needs the key's id (see serve-keys list)")
        record = keys.revoke(args.key_id)
        print(f"revoked API key {record.key_id} at {record.revoked_at}")
    else:
        for record in keys.records():
            state = f"revoked {record.revoked_at}" if record.revoked_at else "active"
            print(f"{record.key_id}  {record.created_at}  {state}  {record.label}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="churnops", description="The churn model's lifecycle: simulate, ingest, train, score."
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an error a user can fix (also CHURNOPS_DEBUG=1); "
        "without it, such an error is one line",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    sim = commands.add_parser(
        "simulate",
        help="write simulated landing drops",
        description=(
            "Write daily landing drops (landing/<table>/dt=YYYY-MM-DD/*.parquet) from the "
            "simulated source system. Without dates: the whole default history "
            "(CHURNOPS_SIM_START, CHURNOPS_SIM_DAYS)."
        ),
    )
    sim.add_argument("--start", type=_date, help="first day (default: the feed's first day)")
    sim.add_argument("--end", type=_date, help="last day (inclusive)")
    sim.add_argument("--days", type=int, help="number of days from --start")
    sim.add_argument("--customers", type=int, help="size of the base on the first day")
    sim.add_argument("--seed", type=int)
    sim.add_argument("--scenario", choices=SCENARIOS, help="a shipped scenario definition")
    sim.add_argument(
        "--scenario-file",
        type=Path,
        metavar="FILE.yml",
        help='your own scenario definition (README "Scenarios as data"); beats --scenario',
    )
    sim.add_argument("--scenario-start", type=_date, help="day the scenario begins")
    sim.add_argument(
        "--corrupt",
        action="append",
        default=[],
        metavar="DATE:KIND[:TABLE]",
        help="write a bad drop (kinds: missing_column, extra_column, wrong_type, null_keys, "
        "duplicate_keys, out_of_range, dates_outside_day, empty_file, truncated_file, "
        "missing_drop; table defaults to usage_daily)",
    )
    sim.add_argument("--tables", nargs="+", help="only these landing tables")
    sim.add_argument(
        "--landing-dir", type=Path, help="default: CHURNOPS_DATA_URL's landing/ (<state dir>/data)"
    )
    sim.set_defaults(handler=cmd_simulate)

    boot = commands.add_parser(
        "bootstrap",
        help="load a long history at once: simulate (if needed), ingest, build features",
        description="Give a new installation its past without hundreds of nightly runs: "
        "simulate the drops if the landing area lacks them, validate and load every day, and "
        "build features and labels for every as-of date in one dbt run. Same rows as the "
        "nightly path.",
    )
    boot.add_argument("--start", type=_date, help="first day (default: CHURNOPS_SIM_START)")
    boot.add_argument("--end", type=_date, help="last day (default: the end of the history)")
    boot.set_defaults(handler=cmd_bootstrap)

    tr = commands.add_parser(
        "train",
        help="train a challenger, compare it with the champion, promote or keep",
        description="The retrain DAG's work from the command line: train on the warehouse's "
        "matured labels, register the version in MLflow, decide against the champion on the "
        "same test window, and move the aliases (or not) with the reasons recorded.",
    )
    tr.add_argument("--reason", help="why (kept in the audit log)")
    tr.add_argument(
        "--require-approval", action="store_true", help="stop before promotion for a person"
    )
    tr.set_defaults(handler=cmd_train)

    lp = commands.add_parser(
        "loop",
        help="the closed loop: history, champion, nightly Airflow runs, drift, retrain (make run)",
    )
    lp.add_argument("--nights", type=int, default=2, help="nightly Airflow runs after the history")
    from churnops.orchestration.closed_loop import DEFAULT_CAMPAIGN_LEAD_DAYS

    lp.add_argument(
        "--campaign-lead-days",
        type=int,
        default=DEFAULT_CAMPAIGN_LEAD_DAYS,
        help="the acquisition campaign starts this many days before the history ends "
        "(unless CHURNOPS_SIM_SCENARIO chooses a scenario)",
    )
    lp.set_defaults(handler=cmd_loop)

    rd = commands.add_parser(
        "rollout-demo",
        help="a price_increase history whose retrain enters the rollout; Airflow runs one "
        "night per phase until the 50%% approval waits under Required Actions",
    )
    rd.add_argument("--nights", type=int, default=3, help="nightly Airflow runs")
    rd.add_argument(
        "--exit-when-waiting", action="store_true", help="stop Airflow once the approval waits"
    )
    rd.set_defaults(handler=cmd_rollout_demo)

    pr = commands.add_parser("promote", help="make a registered version the champion")
    pr.add_argument("version")
    pr.add_argument("--reason", required=True)
    pr.set_defaults(handler=cmd_promote)

    ro = commands.add_parser("rollout", help="the phased rollout of a registered version")
    ro_commands = ro.add_subparsers(dest="rollout_command", required=True)
    rs = ro_commands.add_parser(
        "start",
        help="enter a registered version into the rollout by hand (shadow from the next "
        "scoring), as a retrain that wins does with CHURNOPS_ROLLOUT_ENABLED",
        description="The version becomes the challenger and scores in the shadow; "
        "churn_rollout moves it through canary, ramp and full after each published night. "
        "Refused while another rollout runs (it waits: one rollout at a time).",
    )
    rs.add_argument("version")
    rs.add_argument("--reason", required=True)
    rs.add_argument("--date", type=_date, help="the night the rollout starts on (default: today)")
    rs.set_defaults(handler=cmd_rollout_start)

    rb = commands.add_parser(
        "rollback",
        help="roll the rollout in progress back (the previous serving mix from the next "
        "scoring), or else give the champion alias back to the previous one",
    )
    rb.add_argument("--reason", required=True)
    rb.set_defaults(handler=cmd_rollback)

    sc = commands.add_parser(
        "score",
        help="score one night outside Airflow (= churn_nightly's score group)",
        description="Plan, score every customer-hash shard and publish the night DATE, in "
        "this process: the champion (and a challenger in the shadow and canary) from the "
        "registry, the night's features from the warehouse. Replaces the night's predictions "
        "in one transaction.",
    )
    sc.add_argument("--date", type=_date, required=True, help="the night (as-of date)")
    sc.add_argument("--shards", type=int, help="default: CHURNOPS_SCORING_SHARDS")
    sc.set_defaults(handler=cmd_score)

    mo = commands.add_parser(
        "monitor",
        help="drift and matured-cohort performance of one scored night (= drift_and_performance)",
    )
    mo.add_argument("--date", type=_date, required=True, help="the night (as-of date)")
    mo.set_defaults(handler=cmd_monitor)

    ct = commands.add_parser(
        "contract",
        help="write the landing contract into the dbt project, or check that it agrees",
        description="The landing contract (churnops/landing_contract.yml) reaches dbt through "
        "files: the raw sources (_raw__sources.yml) and the values of the accepted_values tests "
        "marked meta: {landing_contract: <table>.<column>}. --write writes them (make setup "
        "does); --check lists what disagrees and exits 1.",
    )
    mode = ct.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write the files that disagree")
    mode.add_argument("--check", action="store_true", help="only list what disagrees")
    ct.set_defaults(handler=cmd_contract)

    st = commands.add_parser("status", help="the MLOps status report")
    st.add_argument("--json", action="store_true", help="machine-readable")
    st.set_defaults(handler=cmd_status)

    bf = commands.add_parser(
        "backfill",
        help="create an Airflow backfill of the nightly DAG (the scheduler runs it)",
        description="`airflow backfill create` with the project's environment for the days "
        "FROM..TO inclusive (Airflow's --to-date is passed as the last second of TO, since the "
        "run of day D has logical date D 02:30), retried while the scheduler locks the SQLite "
        "metadata DB.",
    )
    bf.add_argument("--from-date", type=_date, required=True)
    bf.add_argument("--to-date", type=_date, required=True)
    bf.add_argument("--dag-id", default="churn_nightly")
    bf.add_argument("--reprocess", choices=["none", "completed", "failed"])
    bf.set_defaults(handler=cmd_backfill)

    af = commands.add_parser(
        "airflow",
        help="run an airflow command with the project's environment",
        description="Run `airflow ARGS` with the project's DAGs, plugins and state dir, after "
        "migrating the metadata DB and creating the warehouse pool. e.g. `churnops airflow "
        "standalone`, `churnops airflow backfill create --dag-id churn_nightly ...`.",
    )
    af.add_argument("--no-setup", action="store_true", help="skip db migrate and pool set-up")
    af.add_argument("airflow_args", nargs=argparse.REMAINDER)
    af.set_defaults(handler=cmd_airflow)

    ai = commands.add_parser(
        "airflow-init",
        help="set up the project's Airflow: db migrate, the warehouse pool, the admin user",
        description="What `churnops airflow` does before its command, alone: migrate the "
        "metadata DB (`airflow db migrate`), create the pool churnops_warehouse and write the "
        "UI admin's password (CHURNOPS_AIRFLOW_ADMIN_PASSWORD, or one generated once). Run it "
        "once before starting the components with `churnops airflow --no-setup ...`, and after "
        "every upgrade: the prod profile's init job (docker-compose.yml) runs it.",
    )
    ai.set_defaults(handler=cmd_airflow_init)

    sv = commands.add_parser(
        "serve",
        help="the real-time scoring service (FastAPI under uvicorn) on the champion",
        description="POST /v1/score and /v1/score:batch with an API key (X-API-Key), "
        "GET /healthz, /readyz, /metrics, /docs. Features from the online store "
        "(CHURNOPS_ONLINE_STORE_URL), the champion from the registry.",
    )
    sv.add_argument("--host", help="default: CHURNOPS_SERVE_HOST")
    sv.add_argument("--port", type=int, help="default: CHURNOPS_SERVE_PORT")
    sv.add_argument("--workers", type=int, help="default: CHURNOPS_SERVE_WORKERS")
    sv.set_defaults(handler=cmd_serve)

    sk = commands.add_parser(
        "serve-keys",
        help="create, revoke or list the service's API keys (kept only as salted hashes)",
    )
    sk.add_argument("action", choices=["create", "revoke", "list"])
    sk.add_argument("key_id", nargs="?", help="revoke: the key's id")
    sk.add_argument("--label", help="create: who or what the key is for")
    sk.set_defaults(handler=cmd_serve_keys)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[Settings, argparse.Namespace], int] = args.handler
    debug = args.debug or _debug_from_environment()
    if not debug:
        # MLflow announces creating its tables on the first command of a fresh state on
        # stderr; a user's one-line error must stay one line.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    # Until the rest can be imported: a broken landing contract fails their import.
    user_errors: tuple[type[BaseException], ...] = (SettingsError, ValueError)
    try:
        user_errors = _user_errors()
        return handler(load_settings(), args)
    except Exception as exc:
        if debug or not isinstance(exc, user_errors):
            raise
        print(f"churnops {args.command}: {exc}", file=sys.stderr)
        return 2


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a user can cause and fix (bad settings or input, a wrong landing contract, a
    stage run too early, an unreachable warehouse): one line that says what to do, never a
    traceback. Imported here, inside main's ``try``: the landing contract file is read at
    import, and a mistake in it is a ``ContractError`` (a ValueError) like any other."""
    from churnops.deployment.ops import RolloutError
    from churnops.features import DbtFailed, HistoryIncomplete
    from churnops.monitor.nightly import NightNotScored
    from churnops.registry import RegistryError
    from churnops.score.nightly import NoFeaturesForNight
    from churnops.score.store import IncompleteNight
    from churnops.storage import SharedPathUnavailable
    from churnops.train.frame import InsufficientHistory
    from churnops.warehouse import WarehouseError

    return (
        SettingsError,
        ValueError,
        WarehouseError,
        InsufficientHistory,
        HistoryIncomplete,
        DbtFailed,
        NoFeaturesForNight,
        IncompleteNight,
        NightNotScored,
        RegistryError,
        RolloutError,
        SharedPathUnavailable,
    )


def _debug_from_environment() -> bool:
    """CHURNOPS_DEBUG read on its own: the other settings may be what failed to load."""
    from churnops.settings import read_setting

    try:
        return bool(read_setting("CHURNOPS_DEBUG"))
    except SettingsError:
        return False


if __name__ == "__main__":
    sys.exit(main())
