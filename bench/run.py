"""churnops benchmarks: `make bench` (all) or `make bench BENCH=simulate` (one group).

Groups: see ``GROUPS`` at the end. Each measurement runs in a fresh child
process so its peak memory (max RSS) is its own. Figures are printed as a table; nothing
here asserts a time (speed is measured, not tested). Data goes to a temporary folder that
is deleted afterwards. ``CHURNOPS_BENCH_CUSTOMERS`` sets the size (default 500,000).

``train``: the retrain at full size, a year of monthly as-of snapshots (12 snapshots 30
days apart; the seed quotes 55 minutes for it). Its untimed set-up is the real pipeline:
510 days of drops simulated and loaded (the first snapshot's 90-day window, the year, and
the last snapshot's 90-day label window), then features and labels built for 15 as-of
dates, one dbt build each. At 500,000 customers that takes about half an hour, so it can
be kept: with ``CHURNOPS_BENCH_TRAIN_STATE=/some/dir`` the state lives there, progress is
recorded after each step (60 days loaded, one date built) and a rerun skips what is done,
so the timed part can be repeated on its own (a state made by another version of the
simulator or the dbt models is refused, not reused). Timed: loading the training frame +
time split, LightGBM training, test-window evaluation (one process), then the whole
``churnops.retrain.retrain`` with MLflow logging and registration (another process,
with a registry of its own so each bench run starts from an empty one).

``engines``: DuckDB and PostgreSQL side by side on the same rows (see ``bench_engines``):
the nightly and training set-ups above build the state on DuckDB, the tables each stage
reads are copied into fresh PostgreSQL databases (``CHURNOPS_BENCH_POSTGRES`` names the
server), and each stage is timed on both, with PG/DuckDB and the issue's targets
(met / NOT MET) printed beside the figures.

``celery``: the whole ``churn_nightly`` through the prod profile's real stack (Celery
workers, PostgreSQL, Redis, an MLflow server; ``tests/prod_stack.py``) on the training
state's next night, with 1, 2 and 4 scoring shards: the run's and each stage's wall time
(see ``bench_celery``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import multiprocessing as mp
import os
import queue as queue_module
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from churnops.storage import shared_files_for

os.environ.setdefault("DO_NOT_TRACK", "true")
BENCH_CUSTOMERS = int(os.environ.get("CHURNOPS_BENCH_CUSTOMERS", "500000"))


def _child(fn: Callable[..., dict], args: tuple, queue: mp.Queue) -> None:
    began = time.perf_counter()
    figures = fn(*args)
    figures.setdefault("seconds", time.perf_counter() - began)
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(figures)


def measure(fn: Callable[..., dict], *args: object) -> dict:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    while True:  # a child that dies (an exception, killed) sends nothing: do not wait forever
        try:
            figures = queue.get(timeout=5)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                try:
                    figures = queue.get(timeout=1)
                    break
                except queue_module.Empty:
                    raise RuntimeError(
                        f"{getattr(fn, '__name__', fn)} failed in its child process "
                        f"(exit code {proc.exitcode}): see its traceback above"
                    ) from None
    proc.join()
    return figures


# ----------------------------------------------------------------------------- simulate
def simulate_range(customers: int, start: str, days: int, out: str) -> dict:
    from churnops.settings import SimulationSettings
    from churnops.simulate import simulate_days

    settings = SimulationSettings(customers=customers)
    first = dt.date.fromisoformat(start)
    summary = simulate_days(settings, first, first + dt.timedelta(days=days - 1), Path(out))
    return {
        "seconds": summary.seconds,
        "rows": sum(t.rows for t in summary.tables.values()),
        "files": sum(t.files for t in summary.tables.values()),
        "mb": sum(t.bytes for t in summary.tables.values()) / 1e6,
    }


def bench_simulate(tmp: Path) -> list[tuple[str, dict]]:
    from churnops.settings import SimulationSettings

    demo = SimulationSettings()
    last_day = demo.history_end.isoformat()
    return [
        (
            f"simulate 1 day, {BENCH_CUSTOMERS:,} customers, first day (base snapshot)",
            measure(
                simulate_range, BENCH_CUSTOMERS, demo.history_start.isoformat(), 1, str(tmp / "a")
            ),
        ),
        (
            f"simulate 1 day, {BENCH_CUSTOMERS:,} customers, day {demo.history_days} ({last_day})",
            measure(simulate_range, BENCH_CUSTOMERS, last_day, 1, str(tmp / "b")),
        ),
        (
            f"simulate {demo.history_days} days (18 months), {demo.customers:,} customers (demo)",
            measure(
                simulate_range,
                demo.customers,
                demo.history_start.isoformat(),
                demo.history_days,
                str(tmp / "c"),
            ),
        ),
    ]


# ----------------------------------------------------------------------------- nightly
NIGHTLY_HISTORY_DAYS = int(os.environ.get("CHURNOPS_BENCH_HISTORY_DAYS", "90"))


def _bench_settings(state: str, dsn: str | None = None, mlflow_dir: str | None = None):
    """The bench state's settings: its DuckDB file, or with ``dsn`` a PostgreSQL warehouse
    (the state dir's landing drops, reports and compiled models are the same either way);
    with ``mlflow_dir`` a registry of its own."""
    from churnops.settings import load_settings

    env = {"CHURNOPS_STATE_DIR": state, "CHURNOPS_SIM_CUSTOMERS": str(BENCH_CUSTOMERS)}
    if dsn is not None:
        env |= {"CHURNOPS_WAREHOUSE": "postgres", "CHURNOPS_POSTGRES_DSN": dsn}
    if mlflow_dir is not None:
        mlflow = Path(mlflow_dir)
        env |= {
            "CHURNOPS_MLFLOW_TRACKING_URI": f"sqlite:///{mlflow / 'mlflow.db'}",
            "CHURNOPS_MLFLOW_ARTIFACT_LOCATION": (mlflow / "artifacts").as_uri(),
        }
    return load_settings(env)


def _raw(settings):
    from churnops.stores import stores_for

    return stores_for(settings).raw


def _features(settings):
    from churnops.stores import stores_for

    return stores_for(settings).features


NIGHTLY_PROGRESS_FILE = "bench-nightly-progress.json"


def prepare_history(state: str, days: int) -> dict:
    """Untimed set-up: the nightly's 90-day window of drops, simulated and loaded.

    A state kept from an earlier run (same customers and days: its progress file says so)
    is reused as it is.
    """
    from churnops.ingest import ingest_range
    from churnops.simulate import simulate_days

    settings = _bench_settings(state)
    start = settings.simulation.history_start
    night = start + dt.timedelta(days=days)
    record = Path(state) / NIGHTLY_PROGRESS_FILE
    done = {"customers": BENCH_CUSTOMERS, "days": days, "night": night.isoformat()}
    if _read_progress(record) == done:
        return {"night": night.isoformat(), "resumed": True}
    simulate_days(settings.simulation, start, night, shared_files_for(settings).landing_dir)
    ingest_range(_raw(settings), shared_files_for(settings), start, night - dt.timedelta(days=1))
    _write_progress(record, done)
    return {"night": night.isoformat(), "resumed": False}


def nightly_ingest(state: str, night: str, dsn: str | None = None) -> dict:
    began = time.perf_counter()
    import great_expectations  # noqa: F401  (paid once per task process)

    imported = time.perf_counter() - began
    from churnops.ingest import ingest_day

    settings = _bench_settings(state, dsn)
    raw = _raw(settings)
    raw.warehouse.check()  # the first connection is not the stage's
    began = time.perf_counter()
    result = ingest_day(raw, shared_files_for(settings), dt.date.fromisoformat(night))
    return {
        "seconds": time.perf_counter() - began,
        "gx_import_s": imported,
        "rows": sum(result.rows_loaded.values()),
    }


def nightly_features(state: str, night: str, dsn: str | None = None) -> dict:
    from churnops.features import build_features

    os.environ.setdefault("DBT_QUIET", "true")
    day = dt.date.fromisoformat(night)
    run = build_features(_bench_settings(state, dsn), day, day)
    return {"seconds": run.seconds, "dbt_nodes": len(run.nodes)}


def bench_nightly(tmp: Path) -> list[tuple[str, dict]]:
    state = str(tmp / "nightly")
    setup = measure(prepare_history, state, NIGHTLY_HISTORY_DAYS)
    night = setup["night"]
    ingest = measure(nightly_ingest, state, night)
    features = measure(nightly_features, state, night)
    n = f"{BENCH_CUSTOMERS:,} customers, night {night} after {NIGHTLY_HISTORY_DAYS} days"
    total = {
        "seconds": ingest["seconds"] + features["seconds"],
        "peak_rss_mb": max(ingest["peak_rss_mb"], features["peak_rss_mb"]),
    }
    return [
        (f"(set-up, untimed goal) simulate + load {NIGHTLY_HISTORY_DAYS} days", setup),
        (f"nightly ingest+validate, {n}", ingest),
        ("nightly features (dbt build, one as-of date)", features),
        ("nightly ingest+validate+features total (goal <= 60 s)", total),
    ]


# ----------------------------------------------------------------------------- train
TRAIN_SNAPSHOTS = 12  # a year of monthly as-of snapshots, as the seed trains on
TRAIN_SNAPSHOT_EVERY_DAYS = 30
TRAIN_STATE_ENV = "CHURNOPS_BENCH_TRAIN_STATE"
# Days simulated then loaded per step of the set-up: a step is the unit of resumption.
TRAIN_SETUP_STEP_DAYS = 60
TRAIN_PROGRESS_FILE = "bench-train-progress.json"


def _train_plan(state: str) -> dict:
    """The set-up's dates: raw days to load, as-of dates to build, the 12 snapshots.

    The first snapshot is the first day whose 90-day feature window is all in the feed.
    dbt building as-of date D writes fct_customer_features for D and fct_churn_labels for
    D - 90 (the label window that closes on D), so each snapshot S needs a build of S and,
    later, of S + 90; S + 90 is itself a snapshot for all but the last three, so building
    every 30 days from the first snapshot to the last + 90, oldest first, is enough.
    """
    from churnops.features import WINDOW_DAYS

    settings = _bench_settings(state)
    horizon = settings.train.label_horizon_days
    feed_start = settings.simulation.history_start
    first = feed_start + dt.timedelta(days=WINDOW_DAYS - 1)
    step = dt.timedelta(days=TRAIN_SNAPSHOT_EVERY_DAYS)
    snapshots = [first + i * step for i in range(TRAIN_SNAPSHOTS)]
    last_build = snapshots[-1] + dt.timedelta(days=horizon)
    builds = [first + i * step for i in range((last_build - first) // step + 1)]
    if builds[-1] != last_build:
        raise ValueError("the label horizon must be a multiple of the snapshot step")
    return {
        "feed_start": feed_start,
        "feed_end": last_build,
        "snapshots": snapshots,
        "builds": builds,
    }


def _train_params(settings):
    """TrainParams for 12 monthly snapshots: every row the split can use, in train.

    Snapshots are 30 days apart and span 331 days. Test = the latest snapshot and
    validation = the one before it (1 month each: 500k rows and ~40k churners apiece, plenty
    for an AUC and for early stopping); train = 9 months, so its window reaches back to the
    first snapshot (the windows total 11 months > 331 days, so time_split scales them by
    0.99: 271 train days, 30 + 30 evaluation days). Train rows must have their label window
    closed before validation starts, which drops the 3 snapshots in between: train keeps 7.
    The default 12/3/3 months would shrink to 2 test, 2 validation and only 5 train snapshots.
    """
    return dataclasses.replace(
        settings.train,
        snapshot_every_days=TRAIN_SNAPSHOT_EVERY_DAYS,
        train_months=9.0,
        validation_months=1.0,
        test_months=1.0,
    )


def _data_fingerprint(settings) -> str:
    """A hash of the code that decides the set-up's rows: the simulator and the dbt models.

    A kept state made by other code would give figures (the AUC above all) for data the
    current code does not produce, so a mismatch stops the run instead.
    """
    import hashlib

    import churnops.simulate

    dbt = settings.paths.dbt_project_dir
    files = sorted(Path(churnops.simulate.__file__).parent.glob("*.py"))
    files += sorted(p for d in ("models", "macros") for p in (dbt / d).rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _read_progress(path: Path) -> dict:
    """A resumable set-up's record of what it has done (empty on a first run)."""
    return json.loads(path.read_text()) if path.exists() else {}


def _write_progress(path: Path, progress: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(progress, indent=2))
    os.replace(tmp, path)


def prepare_training_history(state: str) -> dict:
    """Untimed set-up: raw drops simulated and loaded, features and labels for 12 snapshots.

    Resumable: after each step (a block of days simulated and loaded, one as-of date built)
    the state dir's progress file records it, and a rerun skips what is recorded.
    """
    from churnops.features import build_features
    from churnops.ingest import ingest_range
    from churnops.simulate import simulate_days

    # dbt's per-node log would bury the progress lines (errors are still printed).
    os.environ.setdefault("DBT_QUIET", "true")
    settings = _bench_settings(state)
    plan = _train_plan(state)
    root = Path(state)
    root.mkdir(parents=True, exist_ok=True)
    progress = _read_progress(root / TRAIN_PROGRESS_FILE)
    customers = progress.setdefault("customers", BENCH_CUSTOMERS)
    if customers != BENCH_CUSTOMERS:
        raise SystemExit(
            f"{root} holds a set-up for {customers:,} customers, not {BENCH_CUSTOMERS:,}: "
            f"point {TRAIN_STATE_ENV} at another folder (or delete this one)"
        )
    fingerprint = _data_fingerprint(settings)
    if progress.get("loaded_through") and progress.get("code_fingerprint") != fingerprint:
        raise SystemExit(
            f"{root} was set up by another version of the simulator or the dbt models: its "
            f"rows are not the ones this code makes. Delete it or point {TRAIN_STATE_ENV} "
            "at another folder"
        )
    progress["code_fingerprint"] = fingerprint
    seconds = progress.setdefault("seconds", {"simulate": 0.0, "ingest": 0.0, "features": 0.0})
    began = time.perf_counter()

    feed_start, feed_end = plan["feed_start"], plan["feed_end"]
    total_days = (feed_end - feed_start).days + 1
    done = progress.get("loaded_through")
    day = dt.date.fromisoformat(done) + dt.timedelta(days=1) if done else feed_start
    builds = plan["builds"]
    built = set(progress.get("built", []))
    print(
        f"  set-up in {root}: {total_days} days of drops {feed_start}..{feed_end} at "
        f"{BENCH_CUSTOMERS:,} customers (at 500k about 1 s a day to simulate and 1-2 s to "
        f"load), then {len(builds)} as-of dates built one at a time (about 15-25 s each); "
        f"{(day - feed_start).days} days and {len(built)} dates already done",
        flush=True,
    )
    resumed = day > feed_start or bool(built)
    while day <= feed_end:
        end = min(day + dt.timedelta(days=TRAIN_SETUP_STEP_DAYS - 1), feed_end)
        t0 = time.perf_counter()
        simulate_days(settings.simulation, day, end, shared_files_for(settings).landing_dir)
        t1 = time.perf_counter()
        ingest_range(_raw(settings), shared_files_for(settings), day, end)
        t2 = time.perf_counter()
        seconds["simulate"] += t1 - t0
        seconds["ingest"] += t2 - t1
        progress["loaded_through"] = end.isoformat()
        _write_progress(root / TRAIN_PROGRESS_FILE, progress)
        left = (feed_end - end).days
        rate = (t2 - t0) / ((end - day).days + 1)
        print(
            f"  drops {day}..{end}: simulated {t1 - t0:.0f} s, loaded {t2 - t1:.0f} s; "
            f"{left} days left (~{left * rate / 60:.0f} min)",
            flush=True,
        )
        day = end + dt.timedelta(days=1)

    for i, as_of in enumerate(builds, start=1):
        if as_of.isoformat() in built:
            continue
        # One date per dbt build: a range would build every day in it, 30 times the work.
        run = build_features(settings, as_of, as_of)
        seconds["features"] += run.seconds
        built.add(as_of.isoformat())
        progress["built"] = sorted(built)
        _write_progress(root / TRAIN_PROGRESS_FILE, progress)
        print(f"  features {as_of} ({i}/{len(builds)}): {run.seconds:.0f} s", flush=True)

    return {
        "seconds": time.perf_counter() - began,
        "days": total_days,
        "as_of_builds": len(builds),
        "resumed": resumed,
        # Every stage's time over all the runs that built this state (resumed or not).
        **{f"{stage}_s": value for stage, value in seconds.items()},
    }


def _bench_train_settings(state: str, mlflow_dir: str, dsn: str | None = None):
    """The bench state's warehouse, and a registry of its own: the retrain starts empty."""
    return _bench_settings(state, dsn, mlflow_dir)


def train_steps(state: str, mlflow_dir: str) -> dict:
    """Timed: training frame -> split -> LightGBM -> test-window metrics (no MLflow)."""
    from churnops.evaluate import evaluate_model
    from churnops.train.frame import load_split
    from churnops.train.model import train_model

    settings = _bench_train_settings(state, mlflow_dir)
    params = _train_params(settings)
    began = time.perf_counter()
    split = load_split(_features(settings), params=params)
    snapshots = split.windows.snapshots
    loaded = time.perf_counter()
    trained = train_model(split, params)
    trained_at = time.perf_counter()
    metrics = evaluate_model(trained, split)
    evaluated = time.perf_counter()
    counts = split.counts()
    return {
        "seconds": evaluated - began,
        "load_s": loaded - began,
        "train_s": trained.train_seconds,
        "evaluate_s": evaluated - trained_at,
        "snapshots": snapshots,
        **{f"{part}_rows": rows for part, (rows, _) in counts.items()},
        **{f"{part}_churners": churners for part, (_, churners) in counts.items()},
        "best_iteration": trained.best_iteration,
        "test_auc": f"{metrics.auc:.4f}",
        "train_auc": f"{metrics.train_auc:.4f}",
        "auc_gap": f"{metrics.auc_gap:.4f}",
        "baseline_auc": f"{metrics.baseline_auc:.4f}",
        "test_window": f"{split.windows.test_start}..{split.windows.test_end}",
    }


def retrain_end_to_end(state: str, mlflow_dir: str) -> dict:
    """Timed: churnops.retrain.retrain, MLflow logging and registration included."""
    from churnops.retrain import retrain

    settings = _bench_train_settings(state, mlflow_dir)
    outcome = retrain(settings, _features(settings), actor="bench", params=_train_params(settings))
    return {
        "seconds": outcome.seconds,
        "train_s": outcome.train_seconds,
        "version": outcome.version,
        "action": outcome.action,
        "test_auc": f"{outcome.challenger_metrics.auc:.4f}",
    }


def bench_train(tmp: Path) -> list[tuple[str, dict]]:
    state = os.environ.get(TRAIN_STATE_ENV) or str(tmp / "train")
    setup = measure(prepare_training_history, state)
    steps = measure(train_steps, state, str(tmp / "mlflow-steps"))
    end_to_end = measure(retrain_end_to_end, state, str(tmp / "mlflow-retrain"))
    n = f"{BENCH_CUSTOMERS:,} customers, {TRAIN_SNAPSHOTS} monthly snapshots"
    return [
        (f"(set-up, untimed) {setup['days']} days of drops + features, {n}", setup),
        (f"train: load+split, LightGBM, evaluate; {n} (goal < 120 s)", steps),
        ("retrain end to end (+ MLflow log, register, decide, aliases)", end_to_end),
    ]


# ----------------------------------------------------------------------------- dags
def parse_dag_file(path: str, airflow_home: str) -> dict:
    """What the dag-processor pays: the first parse in a process (with Airflow's one-off
    plugin discovery) and a further parse of the same file."""
    os.environ["AIRFLOW_HOME"] = airflow_home  # read at import: never the user's ~/airflow
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.dag_processing.dagbag import DagBag

    began = time.perf_counter()
    bag = DagBag(path)
    cold = time.perf_counter() - began
    began = time.perf_counter()
    DagBag(path)
    warm_ms = (time.perf_counter() - began) * 1000
    return {"seconds": cold, "warm_ms": warm_ms, "dags": len(bag.dag_ids)}


def bench_dags(tmp: Path) -> list[tuple[str, dict]]:
    dags_dir = Path(__file__).resolve().parents[1] / "dags"
    return [
        (
            f"parse {path.name} (cold; warm_ms = a further parse)",
            measure(parse_dag_file, str(path), str(tmp / "airflow")),
        )
        for path in sorted(dags_dir.glob("*.py"))
    ]


# ----------------------------------------------------------------------------- score
def score_champion(state: str, mlflow_dir: str) -> dict:
    """Untimed: a champion for the scoring bench, trained on the training bench's warehouse."""
    from churnops.registry import champion_version
    from churnops.retrain import retrain

    settings = _bench_train_settings(state, mlflow_dir)
    if champion_version(settings) is None:
        retrain(settings, _features(settings), actor="bench", params=_train_params(settings))
    return {"version": champion_version(settings)}


def _latest_snapshot(settings) -> dt.date:
    from churnops.features.store import FEATURES_TABLE

    return _features(settings).warehouse.tuples(f"SELECT max(as_of_date) FROM {FEATURES_TABLE}")[0][
        0
    ]


def score_night_stage(
    state: str, mlflow_dir: str, first_night: bool, dsn: str | None = None
) -> dict:
    """Timed: churnops.score.score_day, the nightly score group's whole work (plan, one
    shard, publish) in one process, on the latest night.

    ``first_night``: the champion's compiled library and this machine's copy of the version
    are removed first, so the night pays the registry download and the one-off
    compilation (in its plan); otherwise both come from the caches, as on every later night.
    """
    import shutil

    from churnops.score import score_day
    from churnops.stores import stores_for

    settings = _bench_train_settings(state, mlflow_dir, dsn)
    if first_night:
        shutil.rmtree(settings.paths.compiled_models_dir, ignore_errors=True)
        shutil.rmtree(settings.paths.registered_models_dir, ignore_errors=True)
    stores = stores_for(settings)
    result = score_day(
        settings,
        stores.features,
        stores.scoring,
        _latest_snapshot(settings),
        say=lambda _line: None,
    )
    stages = result.seconds
    return {
        "seconds": stages["total"],
        # Reading the features, predicting and writing the night (staged, then published);
        # the plan (aliases, models), loading and the reason codes are shown apart.
        "stage_s (read+predict+write)": sum(
            stages[name] for name in ("read_features", "predict", "stage", "publish")
        ),
        **{f"{name}_s": value for name, value in stages.items() if name != "total"},
        "engine": result.engine,
        "rows": result.rows_scored,
        "reason_rows": result.reason_rows,
    }


def score_engines_vs_pyfunc(state: str, mlflow_dir: str) -> dict:
    """Timed: the same night's rows through mlflow.pyfunc.load_model(...).predict(df), the
    native booster on one matrix and the compiled trees; rows/s of each and the largest
    difference from pyfunc.

    The pyfunc flavour returns the booster's own probability; the served score is that
    probability recalibrated (Platt), so all are compared as served scores: the pyfunc
    output goes through logit and the same calibration.
    """
    import mlflow
    import numpy as np

    from churnops.registry import load_champion
    from churnops.score.engine import compiled_engine, find_compiler, native_engine
    from churnops.score.fastpath import calibrate, feature_matrix
    from churnops.score.nightly import read_night_features
    from churnops.score.treeshap import contributions, lightgbm_contributions
    from churnops.train.model import prepare_features

    settings = _bench_train_settings(state, mlflow_dir)
    champion = load_champion(settings)
    table = read_night_features(_features(settings), _latest_snapshot(settings))
    rows = table.num_rows
    threads = settings.scoring.predict_threads

    pyfunc = mlflow.pyfunc.load_model(f"models:/{champion.name}/{champion.version}")
    began = time.perf_counter()
    frame = prepare_features(table.to_pandas(), champion.features)
    booster_probability = np.asarray(pyfunc.predict(frame), dtype=np.float64)
    pyfunc_s = time.perf_counter() - began
    pyfunc_scores = calibrate(
        champion.model, np.log(booster_probability) - np.log1p(-booster_probability)
    )

    engines = {"native": native_engine(champion, threads, "")}
    compiler = find_compiler()
    if compiler:
        engines["compiled"] = compiled_engine(
            champion, settings.paths.compiled_models_dir, compiler, threads
        )
    figures: dict[str, object] = {"rows": rows, "trees": champion.model.booster.num_trees()}
    figures |= {"pyfunc_s": pyfunc_s, "pyfunc_rows_per_s": int(rows / pyfunc_s)}
    for name, engine in engines.items():
        began = time.perf_counter()
        matrix = feature_matrix(table, champion.features)
        scores = calibrate(champion.model, engine.raw_scores(matrix))
        seconds = time.perf_counter() - began
        figures |= {
            f"{name}_s": seconds,
            f"{name}_rows_per_s": int(rows / seconds),
            f"{name}_vs_pyfunc": f"{pyfunc_s / seconds:.1f}x",
            f"{name}_max_abs_diff": f"{float(np.max(np.abs(scores - pyfunc_scores))):.2e}",
        }
    figures["seconds"] = figures.get("compiled_s", figures["native_s"])

    # The reason codes' SHAP values for the high band: LightGBM's TreeSHAP against ours
    # (the first call of ours in a process loads numba's compiled kernels: shown apart).
    high = matrix[scores >= dict(settings.scoring.risk_bands)[settings.scoring.reason_band]]
    figures["reason_rows"] = len(high)
    began = time.perf_counter()
    expected = lightgbm_contributions(champion.model.booster, high, threads)
    figures["reasons_s (LightGBM pred_contrib)"] = time.perf_counter() - began
    for attempt in ("first", "warm"):
        began = time.perf_counter()
        fast = contributions(champion.model.booster, high, threads)
        figures[f"reasons_s (churnops treeshap, {attempt} call)"] = time.perf_counter() - began
    figures["treeshap_max_abs_diff"] = f"{float(np.max(np.abs(fast - expected))):.1e}"
    figures["treeshap_vs_pred_contrib"] = (
        f"{figures['reasons_s (LightGBM pred_contrib)'] / figures['reasons_s (churnops treeshap, warm call)']:.1f}x"
    )
    return figures


def bench_score(tmp: Path) -> list[tuple[str, dict]]:
    state = os.environ.get(TRAIN_STATE_ENV) or str(tmp / "train")
    setup = measure(prepare_training_history, state)
    mlflow_dir = str(tmp / "mlflow-score")
    champion = measure(score_champion, state, mlflow_dir)
    first = measure(score_night_stage, state, mlflow_dir, True)
    later = measure(score_night_stage, state, mlflow_dir, False)
    compare = measure(score_engines_vs_pyfunc, state, mlflow_dir)
    n = f"{later['rows']:,} customers"
    return [
        (f"(set-up, untimed) the training bench's warehouse, {BENCH_CUSTOMERS:,} customers", setup),
        (f"(set-up, untimed) champion v{champion['version']} trained on it", champion),
        (f"score the champion's first night, {n} (compiles its trees once)", first),
        (
            f"score a later night, {n}: plan, load, read, predict, reasons, stage, publish "
            "(goal: all <= 8 s)",
            later,
        ),
        (f"pyfunc.predict(df) vs native booster vs compiled trees, {n}", compare),
    ]


# ----------------------------------------------------------------------------- drift
DRIFT_SCENARIOS = ("baseline", "acquisition_campaign", "price_increase")
DRIFT_STATE_ENV = "CHURNOPS_BENCH_DRIFT_STATE"
DRIFT_NIGHT_AFTER_DAYS = 30  # the night scored is this many days into the scenario
DRIFT_PROGRESS_FILE = "bench-drift-progress.json"


def _drift_dates(settings) -> tuple[dt.date, dt.date, dt.date]:
    """(reference as-of date, scenario start, night).

    The reference is the first as-of date whose 90-day feature windows are all in the feed;
    the scenarios start the day after it, and the night is 30 days in: by then the
    acquisition campaign has brought in about 12 % of the base.
    """
    from churnops.features import WINDOW_DAYS

    reference = settings.simulation.history_start + dt.timedelta(days=WINDOW_DAYS - 1)
    start = reference + dt.timedelta(days=1)
    return reference, start, reference + dt.timedelta(days=DRIFT_NIGHT_AFTER_DAYS)


def _drift_settings(state: str, scenario: str = "baseline"):
    from churnops.settings import load_settings

    probe = _bench_settings(state)
    _, start, _ = _drift_dates(probe)
    return load_settings(
        {
            "CHURNOPS_STATE_DIR": state,
            "CHURNOPS_SIM_CUSTOMERS": str(BENCH_CUSTOMERS),
            "CHURNOPS_SIM_SCENARIO": scenario,
            "CHURNOPS_SIM_SCENARIO_START": start.isoformat(),
        }
    )


def _stand_in_score(frame):
    """The bench's churn_probability: no model is trained here (labels need 90 more days),
    so a fixed logistic function of features the simulator ties to churn stands in. Fixed
    coefficients, never fitted to the frame, so the score moves when its inputs do."""
    import numpy as np

    logit = (
        -3.0
        + 0.03 * frame["days_since_last_login"]
        + 0.9 * frame["cancellation_tickets_90d"]
        + 0.5 * frame["late_payments_90d"]
        + 0.02 * (frame["avg_invoice_amount_90d_eur"] - 40.0)
        + 0.7 * frame["is_new_customer"]
        - 0.0004 * frame["tenure_days"]
    )
    return 1.0 / (1.0 + np.exp(-logit.to_numpy(dtype="float64")))


def _features_of(settings, as_of: dt.date):
    from churnops.train.frame import CATEGORICAL_FEATURES

    # The night's rows as the old DuckDB .df() gave them: dates as datetime64.
    frame = _features(settings).night(as_of).to_pandas(date_as_object=False)
    for column in CATEGORICAL_FEATURES:
        frame[column] = frame[column].astype("category")
    frame["churn_probability"] = _stand_in_score(frame)
    return frame


def prepare_drift_frames(state: str) -> dict:
    """Untimed set-up: the reference sample and each scenario's night, from real features.

    Drops before a scenario's start are the baseline's in every scenario, so the 90 days up
    to the reference date are simulated and loaded once; then, per scenario, the 30 days
    from its start are simulated again under that scenario and loaded over the previous
    scenario's (a load replaces its day), and the night's features are built. Resumable:
    the progress file records each finished step.
    """
    from churnops.features import build_features
    from churnops.ingest import ingest_range
    from churnops.simulate import simulate_days

    os.environ.setdefault("DBT_QUIET", "true")
    root = Path(state)
    root.mkdir(parents=True, exist_ok=True)
    progress = _read_progress(root / DRIFT_PROGRESS_FILE)
    if progress.setdefault("customers", BENCH_CUSTOMERS) != BENCH_CUSTOMERS:
        raise SystemExit(
            f"{root} holds a drift set-up for {progress['customers']:,} customers, not "
            f"{BENCH_CUSTOMERS:,}: point {DRIFT_STATE_ENV} at another folder"
        )
    settings = _drift_settings(state)
    reference_day, start, night = _drift_dates(settings)
    began = time.perf_counter()
    resumed = "reference" in progress
    if "reference" not in progress:
        first = settings.simulation.history_start
        simulate_days(
            settings.simulation, first, reference_day, shared_files_for(settings).landing_dir
        )
        ingest_range(_raw(settings), shared_files_for(settings), first, reference_day)
        build_features(settings, reference_day, reference_day)
        frame = _features_of(settings, reference_day)
        rows = settings.train.reference_sample_rows  # what log_training_run keeps
        sample = frame if len(frame) <= rows else frame.sample(n=rows, random_state=42)
        sample.to_parquet(root / "reference.parquet", index=False)
        progress["reference"] = {"as_of": reference_day.isoformat(), "rows": len(sample)}
        _write_progress(root / DRIFT_PROGRESS_FILE, progress)
        print(f"  reference {reference_day}: {len(sample):,} of {len(frame):,} rows", flush=True)
    for scenario in DRIFT_SCENARIOS:
        if scenario in progress:
            continue
        scenario_settings = _drift_settings(state, scenario)
        simulate_days(
            scenario_settings.simulation, start, night, shared_files_for(settings).landing_dir
        )
        ingest_range(_raw(scenario_settings), shared_files_for(scenario_settings), start, night)
        build_features(scenario_settings, night, night)
        frame = _features_of(scenario_settings, night)
        frame.to_parquet(root / f"current_{scenario}.parquet", index=False)
        progress[scenario] = {"as_of": night.isoformat(), "rows": len(frame)}
        _write_progress(root / DRIFT_PROGRESS_FILE, progress)
        print(f"  {scenario} night {night}: {len(frame):,} rows", flush=True)
    return {
        "seconds": time.perf_counter() - began,
        "reference_as_of": reference_day.isoformat(),
        "scenario_start": start.isoformat(),
        "night": night.isoformat(),
        "resumed": resumed,
    }


def _drift_frames(state: str, scenario: str):
    import pandas as pd

    root = Path(state)
    return (
        pd.read_parquet(root / "reference.parquet"),
        pd.read_parquet(root / f"current_{scenario}.parquet"),
    )


def drift_churnops(state: str, scenario: str) -> dict:
    """Timed: churnops.monitor.drift.drift_report (verdicts on all rows, Evidently's page on
    the DriftPolicy.sample_rows display sample, both files written)."""
    import evidently.presets  # noqa: F401  (imports paid before the clock, as for Evidently's)

    from churnops.monitor.drift import compute_drift, drift_report
    from churnops.train.frame import CATEGORICAL_FEATURES

    settings = _drift_settings(state, scenario)
    reference, current = _drift_frames(state, scenario)
    night = dt.date.fromisoformat(str(current["as_of_date"].iloc[0])[:10])
    result = drift_report(settings, night, "bench", reference, current)
    features = [v.feature for v in result.input_features]
    categorical = [f for f in features if f in CATEGORICAL_FEATURES]
    began = time.perf_counter()
    compute_drift(reference, current, features, categorical, settings.drift)
    verdicts_s = time.perf_counter() - began
    assert result.html_path is not None
    return {
        "seconds": result.seconds,
        "verdicts_s": verdicts_s,
        "report_s": result.seconds - verdicts_s,
        "html_mb": result.html_path.stat().st_size / 1e6,
        "rows": f"{len(reference):,} vs {len(current):,}",
        "display_rows": settings.drift.sample_rows,
        "verdicts": {v.feature: v.drifted for v in result.features},
    }


def drift_evidently_default(state: str, scenario: str) -> dict:
    """Timed: Evidently's DataDriftPreset with its default methods on the full frames, HTML
    and JSON saved. Column types are given (as churnops types them), so both sides compare
    the same columns the same way; Evidently's own inference would call 6-10-valued integer
    counts categorical."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from churnops.train.frame import CATEGORICAL_FEATURES, NON_FEATURE_COLUMNS

    reference, current = _drift_frames(state, scenario)
    columns = [c for c in reference.columns if c not in NON_FEATURE_COLUMNS]
    definition = DataDefinition(
        numerical_columns=[c for c in columns if c not in CATEGORICAL_FEATURES],
        categorical_columns=[c for c in columns if c in CATEGORICAL_FEATURES],
    )
    out = Path(state) / "evidently" / scenario
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(current.loc[:, columns], data_definition=definition),
        Dataset.from_pandas(reference.loc[:, columns], data_definition=definition),
    )
    ran = time.perf_counter()
    snapshot.save_html(str(out / "report.html"))
    snapshot.save_json(str(out / "report.json"))
    seconds = time.perf_counter() - began
    data = snapshot.dict()
    verdicts = {
        t["metric_config"]["params"]["column"]: t["status"] == "FAIL"
        for t in data["tests"]
        if "column" in t["metric_config"]["params"]
    }
    return {
        "seconds": seconds,
        "run_s": ran - began,
        "html_mb": (out / "report.html").stat().st_size / 1e6,
        "rows": f"{len(reference):,} vs {len(current):,}",
        "verdicts": verdicts,
    }


def bench_drift(tmp: Path) -> list[tuple[str, dict]]:
    state = os.environ.get(DRIFT_STATE_ENV) or str(tmp / "drift")
    setup = measure(prepare_drift_frames, state)
    rows: list[tuple[str, dict]] = [
        (
            f"(set-up, untimed) reference {setup['reference_as_of']}, 3 scenarios from "
            f"{setup['scenario_start']}, night {setup['night']}; {BENCH_CUSTOMERS:,} customers",
            setup,
        )
    ]
    for scenario in DRIFT_SCENARIOS:
        ours = measure(drift_churnops, state, scenario)
        theirs = measure(drift_evidently_default, state, scenario)
        ours_verdicts, their_verdicts = ours.pop("verdicts"), theirs.pop("verdicts")
        differ = sorted(c for c in ours_verdicts if ours_verdicts[c] != their_verdicts.get(c))
        prediction = "churn_probability"
        rows += [
            (f"drift {scenario}: churnops drift_report (goal >= 8x faster)", ours),
            (f"drift {scenario}: Evidently DataDriftPreset default, full frames", theirs),
            (
                f"drift {scenario}: verdicts (seconds = churnops)",
                {
                    "seconds": ours["seconds"],
                    "peak_rss_mb": ours["peak_rss_mb"],
                    "speed_up": f"{theirs['seconds'] / ours['seconds']:.1f}x",
                    "drifted_churnops": _drifted(ours_verdicts, prediction),
                    "drifted_evidently": _drifted(their_verdicts, prediction),
                    "prediction_drifted": f"{ours_verdicts[prediction]}/"
                    f"{their_verdicts.get(prediction)}",
                    "agree": f"{len(ours_verdicts) - len(differ)}/{len(ours_verdicts)}",
                    "disagreements": ",".join(differ) or "none",
                },
            ),
        ]
    return rows


def _drifted(verdicts: dict[str, bool], prediction: str) -> str:
    """'n of m: names' over the features (the prediction apart)."""
    features = {c: d for c, d in verdicts.items() if c != prediction}
    names = sorted(c for c, d in features.items() if d)
    return f"{len(names)} of {len(features)}" + (f" ({','.join(names)})" if names else "")


# ----------------------------------------------------------------------------- engines
NIGHTLY_STATE_ENV = "CHURNOPS_BENCH_NIGHTLY_STATE"
POSTGRES_ADMIN_DSN_ENV = "CHURNOPS_BENCH_POSTGRES"
# The targets.
ENGINE_RATIO_TARGET = 2.0  # PostgreSQL within 2x of DuckDB, stage by stage
TRAIN_FRAME_TARGET_S = 8.0  # the training frame on DuckDB
USAGE_WRITE_TARGET_S = 5.0  # one night's usage_daily into PostgreSQL
COPY_BATCH_DAYS = 5
ENGINE_STAGES_ENV = "CHURNOPS_BENCH_ENGINE_STAGES"
ENGINE_STAGES = (
    "ingest",
    "dbt",
    "usage",
    "score",
    "frame",
)  # raw partitions copied per batch (500k customers: ~2.5M usage rows)


def _postgres_dsn(database: str) -> str:
    """``CHURNOPS_BENCH_POSTGRES`` (a server URL, default this machine's) with ``database``."""
    from sqlalchemy.engine import make_url

    server = os.environ.get(POSTGRES_ADMIN_DSN_ENV, "postgresql://postgres@127.0.0.1:5432/postgres")
    return make_url(server).set(database=database).render_as_string(hide_password=False)


def _admin(sql: str) -> None:
    """One statement on the server's maintenance database (CREATE / DROP DATABASE)."""
    import sqlalchemy as sa

    engine = sa.create_engine(
        _postgres_dsn("postgres").replace("postgresql://", "postgresql+psycopg2://", 1),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(sql))
    finally:
        engine.dispose()


# The daily tables a night's features read only within the 90-day window (its last invoice
# and that invoice's payments included: invoices are monthly).
WINDOWED_TABLES = ("usage_daily", "invoices", "payments", "support_tickets")


def copy_to_postgres(
    state: str, dsn: str, raw_before: str | None, marts: bool, raw_from: str | None = None
) -> dict:
    """Untimed set-up: the tables a stage reads, copied from the DuckDB state to PostgreSQL.

    Through the warehouse layer: ``Warehouse.arrow`` on DuckDB, ``Session.insert`` (binary
    COPY) on PostgreSQL, a few partitions per batch so memory stays bounded. Raw tables
    get their DDL from ``RawStore.ensure``; with ``raw_before`` every raw table's drops
    before that day are copied, else only ``raw._loaded_drops`` (all of it). With
    ``raw_from`` the daily tables (``WINDOWED_TABLES``) start on that day; ``customers``
    and ``churn_events`` are always whole: who the customers are and who has left is
    known only from every day since the feed began. With
    ``marts``, dbt's two marts are created from their Arrow schema (``adbc_ingest``,
    mode "create") and copied one as-of date at a time. Then ANALYZE, as autovacuum would.
    """
    from churnops.contracts import LANDING_TABLES
    from churnops.features.store import FEATURES_TABLE, LABELS_TABLE
    from churnops.ingest.store import LOADED_DROPS, LOADED_DROPS_TABLE, raw_table

    source = _raw(_bench_settings(state)).warehouse
    target_raw = _raw(_bench_settings(state, dsn))
    target = target_raw.warehouse
    target_raw.ensure()
    copied: dict[str, int] = {}

    def copy_rows(sql: str, params: list, table) -> None:
        data = source.arrow(sql, params)
        if data.num_rows:
            with target.transaction() as session:
                session.insert(table, data)
        name = f"{table.schema}.{table.name}"
        copied[name] = copied.get(name, 0) + data.num_rows

    if raw_before is None:
        copy_rows(f"SELECT * FROM {LOADED_DROPS_TABLE}", [], LOADED_DROPS)
    else:
        night = dt.date.fromisoformat(raw_before)
        copy_rows(f"SELECT * FROM {LOADED_DROPS_TABLE} WHERE drop_date < ?", [night], LOADED_DROPS)
        for name in LANDING_TABLES:
            table = raw_table(name)
            days = [
                d
                for (d,) in source.tuples(
                    f"SELECT DISTINCT _drop_date FROM raw.{name} "
                    "WHERE _drop_date < ? AND _drop_date >= ? ORDER BY 1",
                    [
                        night,
                        dt.date.fromisoformat(raw_from)
                        if raw_from and name in WINDOWED_TABLES
                        else dt.date.min,
                    ],
                )
            ]
            for i in range(0, len(days), COPY_BATCH_DAYS):
                batch = days[i : i + COPY_BATCH_DAYS]
                copy_rows(
                    f"SELECT * FROM raw.{name} WHERE _drop_date BETWEEN ? AND ?",
                    [batch[0], batch[-1]],
                    table,
                )
    if marts:
        for mart in (FEATURES_TABLE, LABELS_TABLE):
            schema, name = mart.split(".")
            dates = [d for (d,) in source.tuples(f"SELECT DISTINCT as_of_date FROM {mart}")]
            with target.transaction() as session:
                session.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            for i, day in enumerate(sorted(dates)):
                data = source.arrow(f"SELECT * FROM {mart} WHERE as_of_date = ?", [day])
                with target.transaction() as session:
                    # dbt owns the marts' DDL: no Table object to ensure, so the first batch
                    # creates the table from its Arrow schema, the others append.
                    session.cursor.adbc_ingest(  # type: ignore[attr-defined]
                        name, data, mode="create" if i == 0 else "append", db_schema_name=schema
                    )
                copied[mart] = copied.get(mart, 0) + data.num_rows
            with target.transaction() as session:
                # The index dbt-postgres creates with the mart (macros/cross_db.sql:
                # postgres__mart_indexes), so the stages read the copy as they would dbt's.
                session.execute(
                    f"CREATE UNIQUE INDEX ON {mart} USING btree (as_of_date, customer_id)"
                )
    with target.session() as session:
        session.execute("ANALYZE")
    return {"rows": sum(copied.values()), **{f"{k}_rows": v for k, v in copied.items()}}


def usage_partition_write(state: str, night: str, dsn: str | None = None) -> dict:
    """Timed: ``RawStore.replace_partition`` of the night's usage_daily (over the night's
    rows the ingest loaded: delete, COPY / insert, ``_loaded_drops``, one transaction).
    The rows are read from the DuckDB state first, outside the clock."""
    from churnops.contracts import contract_for

    day = dt.date.fromisoformat(night)
    contract = contract_for("usage_daily")
    rows = _raw(_bench_settings(state)).partition("usage_daily", day)
    rows = rows.select(list(contract.column_names))
    raw = _raw(_bench_settings(state, dsn))
    raw.ensure([contract])
    raw.warehouse.check()  # the first connection (and driver import) is not the write's
    began = time.perf_counter()
    written = raw.replace_partition(contract, day, rows, ["bench"])
    return {"seconds": time.perf_counter() - began, "rows": written}


def training_frame_load(state: str, dsn: str | None = None, as_training: bool = True) -> dict:
    """Timed: the training frame with the train group's params (12 monthly snapshots).

    ``as_training``: what ``retrain`` reads (``load_split``: the split planned on the
    labels, then only the snapshots it uses loaded, and split); else every snapshot
    (``load_training_frame`` without windows).
    """
    from churnops.train.frame import load_split, load_training_frame

    settings = _bench_settings(state, dsn)
    features = _features(settings)
    features.warehouse.check()
    params = _train_params(settings)
    began = time.perf_counter()
    if as_training:
        split = load_split(features, params=params)
        seconds = time.perf_counter() - began
        rows = sum(rows for rows, _ in split.counts().values())
        return {
            "seconds": seconds,
            "rows": rows,
            "columns": split.train.shape[1],
            "snapshots_loaded": sum(
                part["as_of_date"].nunique() for part in (split.train, split.validation, split.test)
            ),
            "snapshots": split.windows.snapshots,
        }
    frame = load_training_frame(features, params=params)
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "rows": len(frame),
        "columns": frame.shape[1],
        "snapshots": frame["as_of_date"].nunique(),
    }


def _verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def _side_by_side(
    stage: str,
    duck: dict,
    pg: dict,
    pg_target_s: float | None = None,
    parts: tuple[str, ...] = (),
) -> list[tuple[str, dict]]:
    """The two engines' rows and a third: PG/DuckDB on ``seconds`` (the target) and on
    each of ``parts`` (shown, not judged)."""
    ratio = pg["seconds"] / duck["seconds"]
    summary: dict[str, object] = {
        "seconds": pg["seconds"],
        "peak_rss_mb": pg["peak_rss_mb"],
        "duckdb_s": duck["seconds"],
        "postgres_s": pg["seconds"],
        "duckdb_peak_mb": round(duck["peak_rss_mb"]),
        "pg/duckdb": f"{ratio:.2f}x",
        f"target PG <= {ENGINE_RATIO_TARGET:g}x": _verdict(ratio <= ENGINE_RATIO_TARGET),
    }
    for part in parts:
        summary[f"{part} pg/duckdb"] = (
            f"{pg[part]:.2f}/{duck[part]:.2f} = {pg[part] / duck[part]:.2f}x"
        )
    if pg_target_s is not None:
        summary[f"target PG <= {pg_target_s:g} s"] = _verdict(pg["seconds"] <= pg_target_s)
    return [
        (f"{stage}: DuckDB", duck),
        (f"{stage}: PostgreSQL", pg),
        (f"{stage}: PG/DuckDB (seconds = PG)", summary),
    ]


def bench_engines(tmp: Path) -> Iterator[tuple[str, dict]]:
    """DuckDB and PostgreSQL side by side on the same rows.

    The state is built once on DuckDB by the nightly and training set-ups (kept in
    ``CHURNOPS_BENCH_NIGHTLY_STATE`` / ``CHURNOPS_BENCH_TRAIN_STATE`` when set), then the
    tables each stage reads are copied into two fresh PostgreSQL databases (dropped at the
    end); only the stages are timed, each in its own child process. A generator: each
    figure is printed as soon as it is measured. ``CHURNOPS_BENCH_ENGINE_STAGES`` (comma
    separated, default all of ``ENGINE_STAGES``) picks stages; only their set-ups run.
    """
    nightly_state = os.environ.get(NIGHTLY_STATE_ENV) or str(tmp / "nightly")
    train_state = os.environ.get(TRAIN_STATE_ENV) or str(tmp / "train")
    mlflow_dir = str(tmp / "mlflow-engines")
    stages = [s for s in os.environ.get(ENGINE_STAGES_ENV, ",".join(ENGINE_STAGES)).split(",") if s]
    unknown = sorted(set(stages) - set(ENGINE_STAGES))
    if unknown:
        raise SystemExit(f"{ENGINE_STAGES_ENV}: unknown stage(s) {unknown}; known: {ENGINE_STAGES}")
    nightly = bool({"ingest", "dbt", "usage"} & set(stages))
    training = bool({"score", "frame"} & set(stages))
    n = f"{BENCH_CUSTOMERS:,} customers"
    suffix = f"{os.getpid()}_{int(time.time())}"
    databases: list[str] = []
    try:
        if nightly:
            nightly_setup = measure(prepare_history, nightly_state, NIGHTLY_HISTORY_DAYS)
            night = nightly_setup["night"]
            databases.append(f"churnops_bench_nightly_{suffix}")
            _admin(f"CREATE DATABASE {databases[-1]}")
            nightly_dsn = _postgres_dsn(databases[-1])
            copy_nightly = measure(copy_to_postgres, nightly_state, nightly_dsn, night, False)
            yield from [
                (
                    f"(set-up, untimed) DuckDB: {NIGHTLY_HISTORY_DAYS} days loaded, night {night}",
                    nightly_setup,
                ),
                (f"(set-up, untimed) copy to PostgreSQL: raw before {night}", copy_nightly),
            ]
        if training:
            train_setup = measure(prepare_training_history, train_state)
            databases.append(f"churnops_bench_train_{suffix}")
            _admin(f"CREATE DATABASE {databases[-1]}")
            train_dsn = _postgres_dsn(databases[-1])
            copy_train = measure(copy_to_postgres, train_state, train_dsn, None, True)
            yield from [
                (f"(set-up, untimed) DuckDB: the training bench's state, {n}", train_setup),
                ("(set-up, untimed) copy to PostgreSQL: marts + raw._loaded_drops", copy_train),
            ]
        if "ingest" in stages:
            yield from _side_by_side(
                f"ingest+validate night {night}",
                measure(nightly_ingest, nightly_state, night),
                measure(nightly_ingest, nightly_state, night, nightly_dsn),
            )
        if "dbt" in stages:
            if "ingest" not in stages:  # the night's drops must be loaded before its build
                measure(nightly_ingest, nightly_state, night)
                measure(nightly_ingest, nightly_state, night, nightly_dsn)
            yield from _side_by_side(
                f"dbt build night {night}",
                measure(nightly_features, nightly_state, night),
                measure(nightly_features, nightly_state, night, nightly_dsn),
            )
        if "usage" in stages:
            duck = measure(usage_partition_write, nightly_state, night)
            pg = measure(usage_partition_write, nightly_state, night, nightly_dsn)
            yield from _side_by_side(
                f"usage_daily partition {night} ({pg['rows']:,} rows), RawStore.replace_partition",
                duck,
                pg,
                pg_target_s=USAGE_WRITE_TARGET_S,
            )
        if "frame" in stages:
            for as_training, what in (
                (False, f"load_training_frame, all {TRAIN_SNAPSHOTS} monthly snapshots"),
                (True, "load_split, the snapshots training uses (as retrain loads)"),
            ):
                duck = measure(training_frame_load, train_state, None, as_training)
                pg = measure(training_frame_load, train_state, train_dsn, as_training)
                yield from _side_by_side(
                    f"{what} ({duck['rows']:,} rows)",
                    duck
                    | {
                        f"target <= {TRAIN_FRAME_TARGET_S:g} s": _verdict(
                            duck["seconds"] <= TRAIN_FRAME_TARGET_S
                        )
                    },
                    pg,
                )
        if "score" in stages:
            champion = measure(score_champion, train_state, mlflow_dir)
            yield (f"(set-up, untimed) champion v{champion['version']}", champion)
            measure(score_night_stage, train_state, mlflow_dir, False)  # untimed: compiles once
            yield from _side_by_side(
                f"score_day, latest night, {n}",
                measure(score_night_stage, train_state, mlflow_dir, False),
                measure(score_night_stage, train_state, mlflow_dir, False, train_dsn),
                parts=("stage_s (read+predict+write)", "read_features_s", "stage_s", "publish_s"),
            )
    finally:
        for database in databases:
            _admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


# ----------------------------------------------------------------------------- celery
CELERY_SHARDS = (1, 2, 4)
CELERY_BUDGET_S = 2 * 3600


def _stage_seconds(task_instances: list[dict], prefix: str) -> float:
    """Wall time of a group of tasks: first start to last end."""
    mine = [ti for ti in task_instances if ti["task_id"].startswith(prefix) and ti["end_date"]]
    if not mine:
        return 0.0
    start = min(dt.datetime.fromisoformat(ti["start_date"]) for ti in mine)
    end = max(dt.datetime.fromisoformat(ti["end_date"]) for ti in mine)
    return (end - start).total_seconds()


def _task_seconds(ti: dict) -> float:
    start, end = ti.get("start_date"), ti.get("end_date")
    if not (start and end):
        return 0.0
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def _night_figures(stack, run: dict, shards: int) -> dict:
    """One run's wall times: the DAG run, each stage, each shard, and where they ran."""
    tis = stack.task_instances("churn_nightly", run["dag_run_id"])
    shard_tis = sorted(
        (ti for ti in tis if ti["task_id"] == "score.shard"), key=lambda ti: ti["map_index"]
    )
    by_id = {ti["task_id"]: ti for ti in tis if ti["task_id"] != "score.shard"}
    published = stack.api(
        f"dags/churn_nightly/dagRuns/{run['dag_run_id']}/taskInstances/score.publish/"
        "xcomEntries/return_value"
    )["value"]
    if isinstance(published, str):
        published = json.loads(published)
    inside = published.get("seconds", {})
    hosts = sorted({str(ti["hostname"]).split("@")[0] for ti in shard_tis})
    return {
        "seconds": (
            dt.datetime.fromisoformat(run["end_date"])
            - dt.datetime.fromisoformat(run["start_date"])
        ).total_seconds(),
        "state": run["state"],
        "tasks": len(tis),
        "ingest_s": _stage_seconds(tis, "ingest."),
        "features_s": _stage_seconds(tis, "features."),
        "score_s": _stage_seconds(tis, "score."),
        "plan_task_s": _task_seconds(by_id["score.plan"]),
        "shard_tasks_s": "/".join(f"{_task_seconds(ti):.1f}" for ti in shard_tis),
        "publish_task_s": _task_seconds(by_id["score.publish"]),
        "monitor_s": _stage_seconds(tis, "monitor."),
        "shards": shards,
        "shard_workers": ",".join(hosts),
        "rows": published.get("rows_scored"),
        # Inside the score group's task processes (summed over shards): what the work took
        # without Airflow's process start, DAG parse and XCom round trips.
        **{f"in-task {k}_s": v for k, v in inside.items()},
    }


def bench_celery(tmp: Path) -> Iterator[tuple[str, dict]]:
    """``churn_nightly`` through the prod profile's real stack at full size, with 1, 2 and
    4 scoring shards: PostgreSQL (metadata, warehouse, MLflow backend), Redis, an MLflow
    server, scheduler, dag-processor, api-server, triggerer and two Celery workers of 2
    slots each (``tests/prod_stack.py``, as the integration test starts them).

    Set-up (untimed): the training bench's state (``CHURNOPS_BENCH_TRAIN_STATE``), its last
    90 days of raw drops and both marts copied into the stack's PostgreSQL warehouse, a
    champion trained there by ``churnops train`` into the MLflow server, and the next
    night's drops simulated. Timed: the same night run three times (``as_of_date`` in the
    trigger form), each with its ``scoring_shards``; the default dbt mode (watcher). The
    figures come from Airflow's task instances (start and end of each task) and from the
    publish task's result (the work inside the score tasks).
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.prod_stack import ProdStack

    train_state = os.environ.get(TRAIN_STATE_ENV) or str(tmp / "train")
    setup = measure(prepare_training_history, train_state)
    yield (f"(set-up, untimed) the training bench's state, {BENCH_CUSTOMERS:,} customers", setup)
    plan = _train_plan(train_state)
    night = plan["feed_end"] + dt.timedelta(days=1)
    window_start = night - dt.timedelta(days=90)
    params = _train_params(_bench_settings(train_state))
    env = {
        "CHURNOPS_SIM_CUSTOMERS": str(BENCH_CUSTOMERS),
        "CHURNOPS_SNAPSHOT_EVERY_DAYS": str(params.snapshot_every_days),
        "CHURNOPS_TRAIN_MONTHS": str(params.train_months),
        "CHURNOPS_VALIDATION_MONTHS": str(params.validation_months),
        "CHURNOPS_TEST_MONTHS": str(params.test_months),
        "CHURNOPS_RETRY_DELAY_MINUTES": "0",
    }
    prepared: dict[str, dict] = {}

    def prepare(stack: ProdStack) -> None:
        dsn = stack.user_env["CHURNOPS_POSTGRES_DSN"]
        with stack.phase("copy the state to PostgreSQL"):
            prepared["copy"] = measure(
                copy_to_postgres,
                train_state,
                dsn,
                night.isoformat(),
                True,
                window_start.isoformat(),
            )
        with stack.phase("churnops train (the champion, into the MLflow server)"):
            stack.churnops("train", "--reason", "bench champion", timeout=3600)
        with stack.phase("churnops simulate (the night's drops)"):
            stack.churnops("simulate", "--start", night.isoformat(), "--end", night.isoformat())

    runs: list[tuple[int, dict]] = []
    with ProdStack(
        tmp / "celery",
        env=env,
        budget_seconds=CELERY_BUDGET_S,
        say=lambda line: print(f"  {line}", flush=True),
        before_airflow=prepare,
    ) as stack:
        stack.unpause("churn_nightly")
        # Each run's drift may ask for a retrain: it would share the cores with the next run.
        stack.api("dags/churn_retrain", {"is_paused": True}, "PATCH")
        for position, shards in enumerate(CELERY_SHARDS):
            run_id = f"bench_{shards}_shards"
            logical = dt.datetime.combine(night, dt.time(2, 30), tzinfo=dt.UTC)
            stack.trigger(
                "churn_nightly",
                run_id,
                logical + dt.timedelta(hours=position),
                {"as_of_date": night.isoformat(), "scoring_shards": shards},
            )
            run = stack.wait_for_run("churn_nightly", run_id, 3600)
            runs.append((shards, _night_figures(stack, run, shards)))
    yield (
        f"(set-up, untimed) copy to the stack's PostgreSQL (raw from {window_start})",
        prepared["copy"],
    )
    yield (
        "(set-up, untimed) the stack's phases",
        {
            "seconds": sum(stack.timings.values()),
            "peak_rss_mb": 0.0,
            **{f"{k}_s": v for k, v in stack.timings.items()},
        },
    )
    for shards, figures in runs:
        figures["peak_rss_mb"] = 0.0  # many processes: no single peak
        yield (
            f"churn_nightly via Celery, night {night}, {BENCH_CUSTOMERS:,} customers, "
            f"{shards} shard{'s' if shards > 1 else ''} on 2 workers",
            figures,
        )


GROUPS: dict[str, Callable[[Path], Iterable[tuple[str, dict]]]] = {
    "simulate": bench_simulate,
    "nightly": bench_nightly,
    "dags": bench_dags,
    "train": bench_train,
    "score": bench_score,
    "drift": bench_drift,
    "engines": bench_engines,
    "celery": bench_celery,
}


def _figure(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def main(selected: list[str]) -> int:
    names = selected or list(GROUPS)
    unknown = [n for n in names if n not in GROUPS]
    if unknown:
        print(f"unknown benchmark group(s) {unknown}; known: {list(GROUPS)}", file=sys.stderr)
        return 2
    print(f"churnops benchmarks on {os.cpu_count()} cores ({', '.join(names)})")
    with tempfile.TemporaryDirectory(prefix="churnops-bench-") as tmp:
        for name in names:
            print(f"\n== {name}", flush=True)
            for label, figures in GROUPS[name](Path(tmp)):
                extra = "  ".join(
                    f"{k}={_figure(v)}"
                    for k, v in figures.items()
                    if k not in {"seconds", "peak_rss_mb"}
                )
                print(
                    f"{label:<72} {figures['seconds']:8.2f} s  peak {figures['peak_rss_mb']:7.0f} MB  {extra}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
