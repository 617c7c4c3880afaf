"""``drift``: churnops' drift report against Evidently's default preset on the same
frames, for three simulated scenarios (baseline, an acquisition campaign, a price
increase); the set-up is kept in ``CHURNOPS_BENCH_DRIFT_STATE`` when that is set.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from bench.harness import (
    BENCH_CUSTOMERS,
    DRIFT_STATE_ENV,
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

DRIFT_SCENARIOS = ("baseline", "acquisition_campaign", "price_increase")

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

    probe = bench_settings(state)
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
    frame = feature_store(settings).night(as_of).to_pandas(date_as_object=False)
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

    quiet_dbt()
    root = Path(state)
    root.mkdir(parents=True, exist_ok=True)
    progress = read_progress(root / DRIFT_PROGRESS_FILE)
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
        ingest_range(raw_store(settings), shared_files_for(settings), first, reference_day)
        build_features(settings, reference_day, reference_day)
        frame = _features_of(settings, reference_day)
        rows = settings.train.reference_sample_rows  # what log_training_run keeps
        sample = frame if len(frame) <= rows else frame.sample(n=rows, random_state=42)
        sample.to_parquet(root / "reference.parquet", index=False)
        progress["reference"] = {"as_of": reference_day.isoformat(), "rows": len(sample)}
        write_progress(root / DRIFT_PROGRESS_FILE, progress)
        print(f"  reference {reference_day}: {len(sample):,} of {len(frame):,} rows", flush=True)
    for scenario in DRIFT_SCENARIOS:
        if scenario in progress:
            continue
        scenario_settings = _drift_settings(state, scenario)
        simulate_days(
            scenario_settings.simulation, start, night, shared_files_for(settings).landing_dir
        )
        ingest_range(
            raw_store(scenario_settings), shared_files_for(scenario_settings), start, night
        )
        build_features(scenario_settings, night, night)
        frame = _features_of(scenario_settings, night)
        frame.to_parquet(root / f"current_{scenario}.parquet", index=False)
        progress[scenario] = {"as_of": night.isoformat(), "rows": len(frame)}
        write_progress(root / DRIFT_PROGRESS_FILE, progress)
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
    state = kept_state(DRIFT_STATE_ENV, tmp / "drift")
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
