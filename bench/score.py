"""``score``: the nightly scoring stage on the training bench's state (its first night,
which compiles the champion's trees, and a later one), and the fast path against
``mlflow.pyfunc``: rows/s, and the largest difference in the served scores."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from bench.harness import (
    BENCH_CUSTOMERS,
    TRAIN_STATE_ENV,
    feature_store,
    kept_state,
    measure,
)
from bench.train import bench_train_settings, prepare_training_history, train_params


def score_champion(state: str, mlflow_dir: str) -> dict:
    """Untimed: a champion for the scoring bench, trained on the training bench's warehouse."""
    from churnops.registry import champion_version
    from churnops.retrain import retrain

    settings = bench_train_settings(state, mlflow_dir)
    if champion_version(settings) is None:
        retrain(settings, feature_store(settings), actor="bench", params=train_params(settings))
    return {"version": champion_version(settings)}


def latest_snapshot(settings) -> dt.date:
    from churnops.features.store import FEATURES_TABLE

    return feature_store(settings).warehouse.tuples(
        f"SELECT max(as_of_date) FROM {FEATURES_TABLE}"
    )[0][0]


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

    settings = bench_train_settings(state, mlflow_dir, dsn)
    if first_night:
        shutil.rmtree(settings.paths.compiled_models_dir, ignore_errors=True)
        shutil.rmtree(settings.paths.registered_models_dir, ignore_errors=True)
    stores = stores_for(settings)
    result = score_day(
        settings,
        stores.features,
        stores.scoring,
        latest_snapshot(settings),
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


def estimate_night_stage(state: str, mlflow_dir: str) -> dict:
    """Timed: the night's estimated performance (CBPE) as the nightly monitor makes it, on
    the night scored above: the served scores read, the estimate, its row stored. The
    reference is downloaded once per version (untimed here, as on every later night)."""
    from churnops.estimation import estimate_performance
    from churnops.monitor.nightly import estimate_night, served_night
    from churnops.monitor.reference import load_performance_reference
    from churnops.stores import stores_for

    settings = bench_train_settings(state, mlflow_dir)
    monitoring = stores_for(settings).monitoring
    night = latest_snapshot(settings)
    began = time.perf_counter()
    version, current = served_night(monitoring, night)
    read = time.perf_counter() - began
    reference = load_performance_reference(settings, version)
    scores = current["churn_probability"].to_numpy()
    began = time.perf_counter()
    estimate = estimate_performance(reference, scores)
    alone = time.perf_counter() - began
    began = time.perf_counter()
    estimate_night(settings, monitoring, night, version, current)
    stored = time.perf_counter() - began
    return {
        "seconds": alone,
        "estimate+store_s": stored,
        "read_served_night_s (shared with the drift report)": read,
        "rows": estimate.rows,
        "estimated_auc": f"{estimate.auc.value or 0.0:.4f}",
        "band": f"[{estimate.auc.lower:.4f}, {estimate.auc.upper:.4f}]",
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

    settings = bench_train_settings(state, mlflow_dir)
    champion = load_champion(settings)
    table = read_night_features(feature_store(settings), latest_snapshot(settings))
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
    state = kept_state(TRAIN_STATE_ENV, tmp / "train")
    setup = measure(prepare_training_history, state)
    mlflow_dir = str(tmp / "mlflow-score")
    champion = measure(score_champion, state, mlflow_dir)
    first = measure(score_night_stage, state, mlflow_dir, True)
    later = measure(score_night_stage, state, mlflow_dir, False)
    estimate = measure(estimate_night_stage, state, mlflow_dir)
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
        (f"estimated performance (CBPE) of that night, {n} (goal: <= 1 s)", estimate),
        (f"pyfunc.predict(df) vs native booster vs compiled trees, {n}", compare),
    ]
