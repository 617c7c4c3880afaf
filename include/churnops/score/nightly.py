"""Score one night: every active customer as of D, served by the champion (or, for a stable
canary share, the challenger), the challenger in the shadow, reason codes for the top band.

Model loading happens once per run; prediction runs on one float64 matrix
(``churnops.score.fastpath``) through the version's compiled trees, or LightGBM's booster
(``churnops.score.engine``). Without a champion the night is skipped (recorded,
earlier predictions untouched): a pipeline that has not trained yet is not broken.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from churnops.features.store import FEATURES_TABLE, FeatureStore
from churnops.settings import Settings
from churnops.warehouse import utc_now

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from churnops.registry.champion import LoadedModel
    from churnops.score.engine import Engine
    from churnops.score.store import ScoringStore

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"


class NoFeaturesForNight(RuntimeError):
    """The feature table has no rows for the night: the features step has not built it."""


@dataclass
class ScoringResult:
    """What one night's scoring did (also what the Airflow task returns, via as_dict)."""

    as_of_date: dt.date
    state: str  # scored | skipped
    message: str
    rows_scored: int = 0
    canary_rows: int = 0
    shadow_rows: int = 0
    champion_version: str | None = None
    challenger_version: str | None = None
    canary_share: float = 0.0
    band_counts: dict[str, int] = field(default_factory=dict)
    reason_rows: int = 0
    engine: str = ""  # compiled | native: how the champion's trees were evaluated
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "as_of_date": self.as_of_date.isoformat(),
            "state": self.state,
            "message": self.message,
            "rows_scored": self.rows_scored,
            "canary_rows": self.canary_rows,
            "shadow_rows": self.shadow_rows,
            "champion_version": self.champion_version,
            "challenger_version": self.challenger_version,
            "band_counts": self.band_counts,
            "engine": self.engine,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def read_night_features(features: FeatureStore, as_of_date: dt.date) -> pa.Table:
    """The night's feature rows (one per active customer) as Arrow, ordered by customer."""
    table = features.night(as_of_date)
    if table.num_rows == 0:
        raise NoFeaturesForNight(
            f"{FEATURES_TABLE} has no rows for {as_of_date}: build the night's features first "
            "(the nightly DAG's features group, or `churnops bootstrap`)"
        )
    return table


@dataclass
class _Scored:
    model: LoadedModel
    matrix: np.ndarray
    probabilities: np.ndarray
    engine: str


def _score(model: LoadedModel, engine: Engine, table: pa.Table, threads: int) -> _Scored:
    from churnops.score.engine import verified
    from churnops.score.fastpath import calibrate, feature_matrix

    matrix = feature_matrix(table, model.features)
    engine = verified(engine, model, matrix, threads)
    log.info("%s v%s scores with the %s", model.name, model.version, engine.detail)
    probabilities = calibrate(model.model, engine.raw_scores(matrix))
    return _Scored(model, matrix, probabilities, engine.name)


def score_day(
    settings: Settings,
    features: FeatureStore,
    scoring: ScoringStore,
    as_of_date: dt.date,
    *,
    run_id: str | None = None,
    say: Callable[[str], object] = log.info,
) -> ScoringResult:
    """Score night ``as_of_date`` from its rows in ``features`` and replace its partition of
    the prediction tables in ``scoring`` (the run, scored or skipped, is recorded there)."""
    import numpy as np
    import pyarrow as pa

    from churnops.registry import current_aliases, load_version
    from churnops.score.engine import engine_for
    from churnops.score.fastpath import contributions
    from churnops.score.policy import assign_risk_bands, canary_mask, top_reasons

    policy = settings.scoring
    started_at = utc_now()
    began = time.perf_counter()
    seconds: dict[str, float] = {}

    aliases = current_aliases(settings)
    if CHAMPION not in aliases:
        result = ScoringResult(
            as_of_date,
            "skipped",
            f"no champion model yet for {settings.mlflow.registered_model_name!r}: nothing "
            f"scored for {as_of_date}; earlier predictions are kept. Train one with the "
            "churn_retrain DAG or `churnops train`.",
        )
        say(result.message)
        _record_run(scoring, result, run_id, started_at)
        return result
    champion = load_version(settings, aliases[CHAMPION])
    challenger_version = aliases.get(CHALLENGER)
    challenger = (
        load_version(settings, challenger_version)
        if challenger_version and challenger_version != champion.version
        else None
    )
    # Compiled once per version (the first night it serves), then loaded from the cache.
    compiled_dir = settings.paths.compiled_models_dir
    engines = {m.version: engine_for(m, policy, compiled_dir) for m in (champion, challenger) if m}
    compile_seconds = sum(e.compile_seconds for e in engines.values())
    if compile_seconds:
        seconds["compile"] = compile_seconds
    seconds["load_models"] = time.perf_counter() - began

    mark = time.perf_counter()
    table = read_night_features(features, as_of_date)
    customer_ids = table.column("customer_id").to_numpy()
    seconds["read_features"] = time.perf_counter() - mark

    mark = time.perf_counter()
    threads = policy.predict_threads
    served = _score(champion, engines[champion.version], table, threads)
    shadow = _score(challenger, engines[challenger.version], table, threads) if challenger else None
    seconds["predict"] = time.perf_counter() - mark

    # The canary: a stable share of customers is served the challenger's score.
    share = policy.canary_share if shadow else 0.0
    in_canary = canary_mask(customer_ids, share, policy.canary_salt)
    probabilities = served.probabilities
    if shadow is not None and in_canary.any():
        probabilities = np.where(in_canary, shadow.probabilities, served.probabilities)
    bands = assign_risk_bands(probabilities, policy.risk_bands)

    # Reason codes: SHAP of the model that served each customer in the reason band.
    mark = time.perf_counter()
    reasons: list[list[str] | None] = [None] * len(probabilities)
    in_reason_band = bands == policy.reason_band
    for scored, rows in (
        (served, in_reason_band & ~in_canary),
        (shadow, in_reason_band & in_canary),
    ):
        index = np.flatnonzero(rows)
        if scored is None or len(index) == 0 or policy.reason_count == 0:
            continue
        values = contributions(scored.model.model, scored.matrix[index], threads)
        for row, names in zip(
            index, top_reasons(values, scored.model.features, policy.reason_count), strict=True
        ):
            reasons[row] = names
    seconds["reason_codes"] = time.perf_counter() - mark

    mark = time.perf_counter()
    scored_at = utc_now()
    name = champion.name
    versions = np.where(in_canary, challenger.version if challenger else "", champion.version)
    predictions = pa.table(
        {
            "as_of_date": pa.array(np.full(len(customer_ids), as_of_date), pa.date32()),
            "customer_id": pa.array(customer_ids, pa.int64()),
            "churn_probability": pa.array(probabilities, pa.float64()),
            "risk_band": pa.array(bands, pa.string()),
            "model_name": pa.array(np.full(len(customer_ids), name), pa.string()),
            "model_version": pa.array(versions, pa.string()),
            "served_by": pa.array(np.where(in_canary, CHALLENGER, CHAMPION), pa.string()),
            "reason_codes": pa.array(reasons, pa.list_(pa.string())),
            "scored_at": pa.array(np.full(len(customer_ids), scored_at), pa.timestamp("us")),
        }
    )
    shadow_table = None
    if shadow is not None:
        shadow_table = pa.table(
            {
                "as_of_date": predictions.column("as_of_date"),
                "customer_id": predictions.column("customer_id"),
                "churn_probability": pa.array(shadow.probabilities, pa.float64()),
                "risk_band": pa.array(
                    assign_risk_bands(shadow.probabilities, policy.risk_bands), pa.string()
                ),
                "model_name": predictions.column("model_name"),
                "model_version": pa.array(
                    np.full(len(customer_ids), shadow.model.version), pa.string()
                ),
                "scored_at": predictions.column("scored_at"),
            }
        )
    scoring.replace_night(as_of_date, predictions, shadow_table)
    seconds["write"] = time.perf_counter() - mark
    seconds["total"] = time.perf_counter() - began

    band_names, counts = np.unique(bands, return_counts=True)
    result = ScoringResult(
        as_of_date,
        "scored",
        "",
        rows_scored=len(customer_ids),
        canary_rows=int(in_canary.sum()),
        shadow_rows=0 if shadow_table is None else shadow_table.num_rows,
        champion_version=champion.version,
        challenger_version=challenger.version if challenger else None,
        canary_share=share,
        band_counts={str(n): int(c) for n, c in zip(band_names, counts, strict=True)},
        reason_rows=int(in_reason_band.sum()),
        engine=served.engine,
        seconds=seconds,
    )
    result.message = _describe(result, name)
    say(result.message)
    _record_run(scoring, result, run_id, started_at)
    return result


def _describe(result: ScoringResult, name: str) -> str:
    bands = ", ".join(f"{band} {count:,}" for band, count in result.band_counts.items())
    canary = (
        f"; canary: {result.canary_rows:,} customers ({result.canary_share:.0%}) served "
        f"challenger v{result.challenger_version}"
        if result.canary_rows
        else ""
    )
    shadow = (
        f"; shadow: challenger v{result.challenger_version} scored {result.shadow_rows:,}"
        if result.shadow_rows
        else "; no challenger, no shadow scores"
    )
    return (
        f"scored {result.rows_scored:,} active customers for {result.as_of_date} with "
        f"{name} v{result.champion_version} (champion, {result.engine} trees){canary}{shadow}; "
        f"risk bands: {bands}; "
        f"reason codes for {result.reason_rows:,}; {result.seconds.get('total', 0):.1f} s"
    )


def _record_run(
    scoring: ScoringStore, result: ScoringResult, run_id: str | None, started_at: dt.datetime
) -> None:
    scoring.record_run(
        {
            "as_of_date": result.as_of_date,
            "state": result.state,
            "rows_scored": result.rows_scored,
            "canary_rows": result.canary_rows,
            "shadow_rows": result.shadow_rows,
            "champion_version": result.champion_version,
            "challenger_version": result.challenger_version,
            "canary_share": result.canary_share,
            "seconds": result.seconds.get("total", 0.0),
            "message": result.message,
            "run_id": run_id,
            "started_at": started_at,
            "finished_at": utc_now(),
        }
    )
