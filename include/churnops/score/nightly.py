"""Score one night: every active customer as of D, served by the champion (or, for a stable
canary share, the challenger), the challenger in the shadow, reason codes for the top band.

A night is scored in three steps, so that its work can spread over several workers:

1. :func:`plan_night` fixes what the night is scored with: the champion's and the
   challenger's versions (and their runs), the challenger's share (its rollout's phase:
   ``churnops.rollout.serving_share``; 0 outside a rollout) and the number of
   customer-hash shards (``churnops.sharding``). It loads each version once (keeping a
   copy on this machine's disk) and compiles its trees if no library exists yet, and it
   clears what an earlier attempt staged for the night. Without a champion the night is
   skipped (recorded, earlier predictions untouched): a pipeline that has not trained yet
   is not broken.
2. :func:`score_shard`, once per shard and in any order or place: reads only its
   customers' feature rows, scores them with the planned versions (loaded from the disk
   copy, no registry round trip), adds reason codes and stages them in one transaction.
   A retried shard replaces its own slice.
3. :func:`publish_night` checks that the staged shards make the whole night and replaces
   the night's predictions with them in one transaction (``ScoringStore.publish_night``).

Each prediction's ``contact`` flag follows the operating point of the model that served
it (its version's tags): score >= its threshold, set per shard, or, for the ``capacity``
rule, the night's top N by its score, set at publish over the whole night (the plan
carries each model's N), so that any number of shards flags the same customers.

:func:`score_day` runs the three in one process (the CLI, the bench, the tests); the
nightly DAG runs each as its own task, the shards as mapped tasks. Every step computes
per customer only, so N shards give the same rows as one.

Prediction runs on one float64 matrix (``churnops.score.fastpath``) through the version's
compiled trees, or LightGBM's booster (``churnops.score.engine``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from churnops.features.store import FEATURES_TABLE, FeatureStore
from churnops.settings import Settings
from churnops.sharding import ShardSpec, all_shards
from churnops.warehouse import utc_now

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from churnops.registry.champion import LoadedModel
    from churnops.score.engine import Engine
    from churnops.score.store import ScoringStore
    from churnops.warehouse import Warehouse

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
Say = Callable[[str], object]


class NoFeaturesForNight(RuntimeError):
    """The feature table has no rows for the night: the features step has not built it."""


@dataclass(frozen=True)
class ScoringPlan:
    """What a night is scored with, fixed before any shard runs (and handed to every shard
    as plain data: an Airflow XCom)."""

    as_of_date: dt.date
    plan_id: str
    shard_count: int
    champion_version: str | None  # None: no champion, the night is skipped
    champion_run_id: str | None = None
    challenger_version: str | None = None
    challenger_run_id: str | None = None
    canary_share: float = 0.0
    canary_salt: str = ""
    # N of a version whose threshold rule is ``capacity`` (its contacts are the night's top
    # N, chosen at publish); None: it flags by its threshold.
    champion_contact_capacity: int | None = None
    challenger_contact_capacity: int | None = None
    planned_at: dt.datetime = field(default_factory=utc_now)
    seconds: float = 0.0  # resolving aliases, loading and compiling the versions

    @property
    def shards(self) -> list[ShardSpec]:
        return all_shards(self.shard_count)

    @property
    def contact_capacity(self) -> dict[str, int]:
        """The serving models whose contacts are their top N, by ``served_by``."""
        capacities = {
            CHAMPION: self.champion_contact_capacity,
            CHALLENGER: self.challenger_contact_capacity if self.canary_share else None,
        }
        return {served_by: n for served_by, n in capacities.items() if n is not None}

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["as_of_date"] = self.as_of_date.isoformat()
        data["planned_at"] = self.planned_at.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoringPlan:
        values = dict(data)
        values["as_of_date"] = dt.date.fromisoformat(str(values["as_of_date"]))
        values["planned_at"] = dt.datetime.fromisoformat(str(values["planned_at"]))
        return cls(**values)


@dataclass
class ShardResult:
    """What one shard scored and staged (what its Airflow task returns, via as_dict)."""

    plan_id: str
    shard: int
    shard_count: int
    rows: int
    engine: str  # compiled | native: how the champion's trees were evaluated
    seconds: dict[str, float] = field(default_factory=dict)
    # How the reason codes were computed: treeshap, or "lightgbm: <why>" (the fallback).
    reason_methods: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShardResult:
        return cls(**dict(data))


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
    contact_rows: int = 0  # customers flagged for the retention team tonight
    engine: str = ""  # compiled | native: how the champion's trees were evaluated
    shards: int = 1
    reason_methods: list[str] = field(default_factory=list)  # treeshap | lightgbm: <why>
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
            "contact_rows": self.contact_rows,
            "engine": self.engine,
            "shards": self.shards,
            "reason_methods": self.reason_methods,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def read_night_features(
    features: FeatureStore, as_of_date: dt.date, shard: ShardSpec | None = None
) -> pa.Table:
    """The night's feature rows (one per active customer; only ``shard``'s customers when
    given) as Arrow, ordered by customer."""
    table = features.night(as_of_date, shard)
    if table.num_rows == 0 and (shard is None or features.night_rows(as_of_date) == 0):
        raise NoFeaturesForNight(
            f"{FEATURES_TABLE} has no rows for {as_of_date}: build the night's features first "
            "(the nightly DAG's features group, or `churnops bootstrap`)"
        )
    return table


# ----------------------------------------------------------------------------- 1. plan
def plan_night(
    settings: Settings,
    scoring: ScoringStore,
    as_of_date: dt.date,
    *,
    shards: int | None = None,
    say: Say = log.info,
) -> ScoringPlan:
    """Fix the night's versions, canary share and shard count (``shards``, else
    ``ScoringPolicy.shards``); make each version ready to score (a disk copy and its
    compiled library); forget whatever an earlier attempt staged for the night."""
    from churnops.registry import current_aliases, load_version
    from churnops.registry.champion import version_run_id
    from churnops.registry.tracking import registry_outages, require_tracking_server

    began = time.perf_counter()
    policy = settings.scoring
    shard_count = policy.shards if shards is None else shards
    if shard_count < 1:
        raise ValueError(f"a night is scored in at least one shard, not {shard_count}")
    # A tracking server that does not answer fails here, in one line, before anything is
    # touched: earlier predictions stay, and the task's retry tries again.
    require_tracking_server(settings)
    plan_id = uuid.uuid4().hex[:16]

    def ready(version: str) -> LoadedModel:
        # From this machine's copy when it has one: the registry is asked for the run only.
        return load_version(settings, version, version_run_id(settings, version))

    with registry_outages(settings):
        aliases = current_aliases(settings)
        if CHAMPION not in aliases:
            return ScoringPlan(as_of_date, plan_id, shard_count, None)
        champion = ready(aliases[CHAMPION])
        challenger_version = aliases.get(CHALLENGER)
        challenger = (
            ready(challenger_version)
            if challenger_version and challenger_version != champion.version
            else None
        )
    for model in (champion, challenger):
        if model is not None:
            _engine(settings, model)  # compiled once per version, here, not in every shard
    scoring.discard_staged(as_of_date)
    # The challenger's share comes from its rollout (churnops.rollout.serving_share): 0
    # outside one (shadow only), the phase's share inside.
    share = serving_canary_share(
        settings,
        challenger_version=challenger.version if challenger else None,
        warehouse=scoring.warehouse,
    )
    plan = ScoringPlan(
        as_of_date,
        plan_id,
        shard_count,
        champion.version,
        champion.run_id,
        challenger.version if challenger else None,
        challenger.run_id if challenger else None,
        # A canary needs a challenger: without one every customer gets the champion.
        canary_share=share,
        canary_salt=policy.canary_salt,
        champion_contact_capacity=champion.contact_capacity,
        challenger_contact_capacity=challenger.contact_capacity if challenger else None,
        seconds=time.perf_counter() - began,
    )
    say(
        f"scoring plan for {as_of_date}: {settings.mlflow.registered_model_name} "
        f"v{plan.champion_version} (champion)"
        + (f", v{plan.challenger_version} (challenger)" if plan.challenger_version else "")
        + f", {shard_count} shard{'s' if shard_count != 1 else ''}; serves "
        + (
            f"v{plan.champion_version} to {1 - plan.canary_share:.0%} and challenger "
            f"v{plan.challenger_version} to {plan.canary_share:.0%} of customers (rollout)"
            if plan.canary_share
            else f"v{plan.champion_version} to every customer"
        )
        + f"; plan {plan_id}"
    )
    return plan


def serving_canary_share(
    settings: Settings, *, challenger_version: str | None, warehouse: Warehouse | None = None
) -> float:
    """The share of customers served ``challenger_version``: the one lookup the nightly
    plan and the real-time service (``churnops.serve``) both make, so both serve the same
    customers. It is the challenger's rollout phase's share
    (:func:`churnops.rollout.serving_share` of the newest ``ops.rollout_history`` state):
    0 without a challenger or outside a rollout (shadow only)."""
    from churnops.rollout.store import RolloutStore
    from churnops.warehouse import warehouse_for

    if challenger_version is None:
        return 0.0
    return RolloutStore(warehouse or warehouse_for(settings)).share_of(
        settings.rollout, settings.mlflow.registered_model_name, challenger_version
    )


def _engine(settings: Settings, model: LoadedModel) -> Engine:
    """The version's engine; its compiled library is shared through ``CHURNOPS_DATA_URL``,
    so shards on other machines fetch what the plan compiled instead of compiling again."""
    from churnops.score.engine import engine_for
    from churnops.storage import shared_files_for

    return engine_for(
        model, settings.scoring, settings.paths.compiled_models_dir, shared_files_for(settings)
    )


def skip_night(
    settings: Settings,
    scoring: ScoringStore,
    plan: ScoringPlan,
    *,
    run_id: str | None = None,
    say: Say = log.info,
) -> ScoringResult:
    """Record that the night was not scored (no champion); earlier predictions stay."""
    result = ScoringResult(
        plan.as_of_date,
        "skipped",
        f"no champion model yet for {settings.mlflow.registered_model_name!r}: nothing "
        f"scored for {plan.as_of_date}; earlier predictions are kept. Train one with the "
        "churn_retrain DAG or `churnops train`.",
        shards=plan.shard_count,
    )
    say(result.message)
    _record_run(scoring, result, run_id, plan.planned_at)
    return result


# ----------------------------------------------------------------------------- 2. shards
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


def score_shard(
    settings: Settings,
    features: FeatureStore,
    scoring: ScoringStore,
    plan: ScoringPlan,
    shard: int,
    *,
    say: Say = log.info,
) -> ShardResult:
    """Score shard ``shard`` of ``plan`` and stage it (one transaction)."""
    import numpy as np
    import pyarrow as pa

    from churnops.registry import load_version
    from churnops.score.policy import (
        assign_risk_bands,
        canary_mask,
        threshold_contacts,
        top_reasons,
    )
    from churnops.score.treeshap import verified_contributions

    if plan.champion_version is None:
        raise ValueError(f"plan {plan.plan_id} has no champion: there is nothing to score")
    spec = ShardSpec(shard, plan.shard_count)
    policy = settings.scoring
    threads = policy.predict_threads
    seconds: dict[str, float] = {}

    mark = time.perf_counter()
    champion = load_version(settings, plan.champion_version, plan.champion_run_id)
    challenger = (
        load_version(settings, plan.challenger_version, plan.challenger_run_id)
        if plan.challenger_version
        else None
    )
    engines = {m.version: _engine(settings, m) for m in (champion, challenger) if m}
    seconds["load_models"] = time.perf_counter() - mark

    mark = time.perf_counter()
    table = read_night_features(features, plan.as_of_date, spec)
    customer_ids = table.column("customer_id").to_numpy()
    seconds["read_features"] = time.perf_counter() - mark
    if len(customer_ids) == 0:  # more shards than a tiny night has customers
        say(f"{spec.label} of {plan.as_of_date}: no customer hashes to this shard")
        return ShardResult(plan.plan_id, shard, plan.shard_count, 0, "", seconds)

    mark = time.perf_counter()
    served = _score(champion, engines[champion.version], table, threads)
    shadow = _score(challenger, engines[challenger.version], table, threads) if challenger else None
    seconds["predict"] = time.perf_counter() - mark

    # The canary: a stable share of customers is served the challenger's score.
    in_canary = canary_mask(customer_ids, plan.canary_share if shadow else 0.0, plan.canary_salt)
    probabilities = served.probabilities
    if shadow is not None and in_canary.any():
        probabilities = np.where(in_canary, shadow.probabilities, served.probabilities)
    bands = assign_risk_bands(probabilities, policy.risk_bands)

    # Contacts of the threshold rules; a capacity rule's are left null for the publish.
    contacts = threshold_contacts(
        probabilities,
        np.where(in_canary, _contact_threshold(challenger), _contact_threshold(champion)),
    )

    # Reason codes: SHAP of the model that served each customer in the reason band, by the
    # exact fast TreeSHAP (checked against LightGBM's on a sample, which it replaces on any
    # difference: churnops.score.treeshap).
    mark = time.perf_counter()
    methods: set[str] = set()
    reasons: list[list[str] | None] = [None] * len(probabilities)
    in_reason_band = bands == policy.reason_band
    for scored, rows in (
        (served, in_reason_band & ~in_canary),
        (shadow, in_reason_band & in_canary),
    ):
        index = np.flatnonzero(rows)
        if scored is None or len(index) == 0 or policy.reason_count == 0:
            continue
        values, method = verified_contributions(
            scored.model.model.booster, scored.matrix[index], threads
        )
        methods.add(method)
        for row, names in zip(
            index, top_reasons(values, scored.model.features, policy.reason_count), strict=True
        ):
            reasons[row] = names
    seconds["reason_codes"] = time.perf_counter() - mark

    mark = time.perf_counter()
    rows = len(customer_ids)

    def repeated(value: object, kind: pa.DataType) -> pa.Array:
        return pa.array(np.full(rows, value), kind)

    scores = {
        "as_of_date": repeated(plan.as_of_date, pa.date32()),
        "customer_id": pa.array(customer_ids, pa.int64()),
        "churn_probability": pa.array(probabilities, pa.float64()),
        "risk_band": pa.array(bands, pa.string()),
        "model_name": repeated(champion.name, pa.string()),
        "model_version": pa.array(
            np.where(in_canary, challenger.version if challenger else "", champion.version),
            pa.string(),
        ),
        "served_by": pa.array(np.where(in_canary, CHALLENGER, CHAMPION), pa.string()),
        "contact": contacts,
        "reason_codes": pa.array(reasons, pa.list_(pa.string())),
        "scored_at": repeated(utc_now(), pa.timestamp("us")),
    }
    if shadow is not None:
        scores["shadow_probability"] = pa.array(shadow.probabilities, pa.float64())
        scores["shadow_risk_band"] = pa.array(
            assign_risk_bands(shadow.probabilities, policy.risk_bands), pa.string()
        )
        scores["shadow_model_version"] = repeated(shadow.model.version, pa.string())
    scoring.stage_shard(plan.as_of_date, plan.plan_id, shard, pa.table(scores))
    seconds["stage"] = time.perf_counter() - mark

    result = ShardResult(
        plan.plan_id, shard, plan.shard_count, rows, served.engine, seconds, sorted(methods)
    )
    say(
        f"{spec.label} of {plan.as_of_date}: {rows:,} customers scored and staged in "
        f"{sum(seconds.values()):.1f} s ({_timings(seconds)})"
    )
    return result


def _contact_threshold(model: LoadedModel | None) -> float:
    """The threshold a version flags its customers by; NaN when it does not (its rule is
    ``capacity``, decided at publish, or it has no operating point, or it serves no one)."""
    if model is None or model.threshold is None or model.contact_capacity is not None:
        return float("nan")
    return model.threshold


# ----------------------------------------------------------------------------- 3. publish
def publish_night(
    settings: Settings,
    features: FeatureStore,
    scoring: ScoringStore,
    plan: ScoringPlan,
    shard_results: Sequence[ShardResult],
    *,
    run_id: str | None = None,
    say: Say = log.info,
) -> ScoringResult:
    """Publish the plan's staged shards as the night (one transaction), after checking
    they make the whole night; record the run."""
    from churnops.score.store import IncompleteNight

    mark = time.perf_counter()
    scored = {r.shard: r.rows for r in shard_results if r.plan_id == plan.plan_id}
    missing = [s.label for s in plan.shards if s.index not in scored]
    if missing:
        raise IncompleteNight(
            f"scores for {plan.as_of_date}: {', '.join(missing)} of plan {plan.plan_id} "
            "did not report; nothing published, the previous predictions stay"
        )
    published = scoring.publish_night(
        plan.as_of_date,
        plan.plan_id,
        scored,
        features.night_rows(plan.as_of_date),
        plan.contact_capacity,
    )
    seconds: dict[str, float] = {"plan": plan.seconds}
    for shard in shard_results:
        for step, value in shard.seconds.items():
            seconds[step] = seconds.get(step, 0.0) + value
    seconds["publish"] = time.perf_counter() - mark
    seconds["total"] = sum(seconds.values())
    engines = sorted({shard.engine for shard in shard_results if shard.rows})
    result = ScoringResult(
        plan.as_of_date,
        "scored",
        "",
        rows_scored=published["rows"],
        canary_rows=published["canary_rows"],
        shadow_rows=published["shadow_rows"],
        champion_version=plan.champion_version,
        challenger_version=plan.challenger_version,
        canary_share=plan.canary_share,
        band_counts=published["band_counts"],
        reason_rows=published["reason_rows"],
        contact_rows=published["contact_rows"],
        engine="+".join(engines),
        shards=plan.shard_count,
        reason_methods=sorted({m for shard in shard_results for m in shard.reason_methods}),
        seconds=seconds,
    )
    result.message = _describe(result, settings.mlflow.registered_model_name)
    say(result.message)
    _record_run(scoring, result, run_id, plan.planned_at)
    return result


def score_day(
    settings: Settings,
    features: FeatureStore,
    scoring: ScoringStore,
    as_of_date: dt.date,
    *,
    shards: int | None = None,
    run_id: str | None = None,
    say: Say = log.info,
) -> ScoringResult:
    """Score night ``as_of_date`` from its rows in ``features`` and replace its partition of
    the prediction tables in ``scoring``: plan, every shard, publish, in this process (the
    run, scored or skipped, is recorded there)."""
    plan = plan_night(settings, scoring, as_of_date, shards=shards, say=say)
    if plan.champion_version is None:
        return skip_night(settings, scoring, plan, run_id=run_id, say=say)
    results = [
        score_shard(settings, features, scoring, plan, shard.index, say=say)
        for shard in plan.shards
    ]
    return publish_night(settings, features, scoring, plan, results, run_id=run_id, say=say)


def _timings(seconds: Mapping[str, float]) -> str:
    return ", ".join(f"{step} {value:.2f} s" for step, value in seconds.items())


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
    shards = f" in {result.shards} shards" if result.shards > 1 else ""
    return (
        f"scored {result.rows_scored:,} active customers for {result.as_of_date}{shards} with "
        f"{name} v{result.champion_version} (champion, {result.engine} trees){canary}{shadow}; "
        f"risk bands: {bands}; "
        f"{result.contact_rows:,} to contact; "
        f"reason codes for {result.reason_rows:,}"
        f"{' (' + '; '.join(result.reason_methods) + ')' if result.reason_methods else ''}; "
        f"{result.seconds.get('total', 0):.1f} s "
        f"({_timings({k: v for k, v in result.seconds.items() if k != 'total'})})"
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
