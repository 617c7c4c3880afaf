"""``train``: the retrain at full size, a year of monthly as-of snapshots (12 snapshots 30
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
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path

from bench.harness import (
    BENCH_CUSTOMERS,
    TRAIN_STATE_ENV,
    bench_settings,
    feature_store,
    kept_state,
    measure,
    quiet_dbt,
    raw_store,
    read_progress,
    write_progress,
)
from churnops.storage import shared_files_for

TRAIN_SNAPSHOTS = 12  # a year of monthly as-of snapshots, as the seed trains on
TRAIN_SNAPSHOT_EVERY_DAYS = 30

# Days simulated then loaded per step of the set-up: a step is the unit of resumption.
TRAIN_SETUP_STEP_DAYS = 60
TRAIN_PROGRESS_FILE = "bench-train-progress.json"


def train_plan(state: str) -> dict:
    """The set-up's dates: raw days to load, as-of dates to build, the 12 snapshots.

    The first snapshot is the first day whose 90-day feature window is all in the feed.
    dbt building as-of date D writes fct_customer_features for D and fct_churn_labels for
    D - 90 (the label window that closes on D), so each snapshot S needs a build of S and,
    later, of S + 90; S + 90 is itself a snapshot for all but the last three, so building
    every 30 days from the first snapshot to the last + 90, oldest first, is enough.
    """
    from churnops.features import WINDOW_DAYS

    settings = bench_settings(state)
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


def train_params(settings):
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


def prepare_training_history(state: str) -> dict:
    """Untimed set-up: raw drops simulated and loaded, features and labels for 12 snapshots.

    Resumable: after each step (a block of days simulated and loaded, one as-of date built)
    the state dir's progress file records it, and a rerun skips what is recorded.
    """
    from churnops.features import build_features
    from churnops.ingest import ingest_range
    from churnops.simulate import simulate_days

    quiet_dbt()
    settings = bench_settings(state)
    plan = train_plan(state)
    root = Path(state)
    root.mkdir(parents=True, exist_ok=True)
    progress = read_progress(root / TRAIN_PROGRESS_FILE)
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
        ingest_range(raw_store(settings), shared_files_for(settings), day, end)
        t2 = time.perf_counter()
        seconds["simulate"] += t1 - t0
        seconds["ingest"] += t2 - t1
        progress["loaded_through"] = end.isoformat()
        write_progress(root / TRAIN_PROGRESS_FILE, progress)
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
        write_progress(root / TRAIN_PROGRESS_FILE, progress)
        print(f"  features {as_of} ({i}/{len(builds)}): {run.seconds:.0f} s", flush=True)

    return {
        "seconds": time.perf_counter() - began,
        "days": total_days,
        "as_of_builds": len(builds),
        "resumed": resumed,
        # Every stage's time over all the runs that built this state (resumed or not).
        **{f"{stage}_s": value for stage, value in seconds.items()},
    }


def bench_train_settings(state: str, mlflow_dir: str, dsn: str | None = None):
    """The bench state's warehouse, and a registry of its own: the retrain starts empty."""
    return bench_settings(state, dsn, mlflow_dir)


def train_steps(state: str, mlflow_dir: str) -> dict:
    """Timed: training frame -> split -> LightGBM -> test-window metrics (no MLflow)."""
    from churnops.evaluate import evaluate_model
    from churnops.train.frame import load_split
    from churnops.train.model import train_model

    settings = bench_train_settings(state, mlflow_dir)
    params = train_params(settings)
    began = time.perf_counter()
    split = load_split(feature_store(settings), params=params)
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

    settings = bench_train_settings(state, mlflow_dir)
    outcome = retrain(
        settings, feature_store(settings), actor="bench", params=train_params(settings)
    )
    return {
        "seconds": outcome.seconds,
        "train_s": outcome.train_seconds,
        "version": outcome.version,
        "action": outcome.action,
        "test_auc": f"{outcome.challenger_metrics.auc:.4f}",
    }


def bench_train(tmp: Path) -> list[tuple[str, dict]]:
    state = kept_state(TRAIN_STATE_ENV, tmp / "train")
    setup = measure(prepare_training_history, state)
    steps = measure(train_steps, state, str(tmp / "mlflow-steps"))
    end_to_end = measure(retrain_end_to_end, state, str(tmp / "mlflow-retrain"))
    n = f"{BENCH_CUSTOMERS:,} customers, {TRAIN_SNAPSHOTS} monthly snapshots"
    return [
        (f"(set-up, untimed) {setup['days']} days of drops + features, {n}", setup),
        (f"train: load+split, LightGBM, evaluate; {n} (goal < 120 s)", steps),
        ("retrain end to end (+ MLflow log, register, decide, aliases)", end_to_end),
    ]
