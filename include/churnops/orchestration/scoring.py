"""Task bodies of the nightly scoring: Airflow's side of ``churnops.score``.

``plan`` returns one assignment per shard (the plan and the shard's index); the DAG maps
``shard`` over them (dynamic task mapping: any worker may run any shard), and ``publish``
receives every shard's result. The plan travels as plain data through XCom, so a retried
shard scores with exactly the versions its night was planned with.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowSkipException

from churnops.orchestration.defaults import run_day
from churnops.orchestration.outages import reports_outages
from churnops.settings import load_settings

log = logging.getLogger(__name__)

# The DAG param (trigger form) that overrides CHURNOPS_SCORING_SHARDS for one run.
SHARDS_PARAM = "scoring_shards"
# Names each mapped shard task in the UI ("shard 2/4"), set by the task itself.
SHARD_LABEL = "shard_label"
MAP_INDEX_TEMPLATE = "{{ " + SHARD_LABEL + " }}"


@reports_outages
def plan_scoring() -> list[dict[str, Any]]:
    """Fix the night's versions and shards. Without a champion the task is skipped, not
    failed: the run stays green, everything after it is skipped, earlier predictions stay."""
    from churnops.features.store import FEATURES_TABLE
    from churnops.lineage import table_dataset
    from churnops.orchestration import lineage
    from churnops.score.nightly import plan_night, skip_night
    from churnops.stores import stores_for

    context = get_current_context()
    settings = load_settings()
    scoring = stores_for(settings).scoring
    shards = (context.get("params") or {}).get(SHARDS_PARAM)
    plan = plan_night(
        settings, scoring, run_day(context), shards=int(shards) if shards else None, say=log.info
    )
    lineage.report(
        inputs=[
            *lineage.models(settings, [plan.champion_version, plan.challenger_version]),
            table_dataset(settings, FEATURES_TABLE),
        ]
    )
    if plan.champion_version is None:
        result = skip_night(settings, scoring, plan, run_id=context["dag_run"].run_id, say=log.info)
        raise AirflowSkipException(result.message)
    return [{"plan": plan.as_dict(), "shard": shard.index} for shard in plan.shards]


@reports_outages
def score_one_shard(assignment: Mapping[str, Any]) -> dict[str, Any]:
    """Score and stage one shard of the planned night."""
    from churnops.features.store import FEATURES_TABLE
    from churnops.lineage import table_dataset
    from churnops.orchestration import lineage
    from churnops.score.nightly import ScoringPlan, score_shard
    from churnops.score.store import NIGHT_SHARDS_TABLE
    from churnops.sharding import ShardSpec
    from churnops.stores import stores_for

    plan = ScoringPlan.from_dict(assignment["plan"])
    shard = int(assignment["shard"])
    get_current_context()[SHARD_LABEL] = ShardSpec(shard, plan.shard_count).label  # type: ignore[literal-required]
    settings = load_settings()
    stores = stores_for(settings)
    result = score_shard(settings, stores.features, stores.scoring, plan, shard, say=log.info)
    lineage.report(
        inputs=[
            *lineage.models(settings, [plan.champion_version, plan.challenger_version]),
            table_dataset(settings, FEATURES_TABLE),
        ],
        outputs=[table_dataset(settings, NIGHT_SHARDS_TABLE)],
    )
    return result.as_dict()


@reports_outages
def publish_scores(
    assignments: Sequence[Mapping[str, Any]], shard_results: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Publish the night once every shard is staged (one transaction)."""
    from churnops.lineage import table_dataset
    from churnops.orchestration import lineage
    from churnops.score.nightly import ScoringPlan, ShardResult, publish_night
    from churnops.score.store import (
        NIGHT_SHARDS_TABLE,
        PREDICTIONS_TABLE,
        SCORING_RUNS_TABLE,
        SHADOW_PREDICTIONS_TABLE,
    )
    from churnops.stores import stores_for

    context = get_current_context()
    plan = ScoringPlan.from_dict(assignments[0]["plan"])
    settings = load_settings()
    stores = stores_for(settings)
    result = publish_night(
        settings,
        stores.features,
        stores.scoring,
        plan,
        [ShardResult.from_dict(r) for r in shard_results],
        run_id=context["dag_run"].run_id,
        say=log.info,
    )
    published = [PREDICTIONS_TABLE, SCORING_RUNS_TABLE]
    if plan.challenger_version is not None:
        published.insert(1, SHADOW_PREDICTIONS_TABLE)
    lineage.report(
        inputs=[
            *lineage.models(settings, [plan.champion_version, plan.challenger_version]),
            table_dataset(settings, NIGHT_SHARDS_TABLE),
        ],
        outputs=[table_dataset(settings, table) for table in published],
    )

    # The rollout DAG evaluates the night once it is published (churn_rollout).
    from churnops.orchestration.assets import SCORES_PUBLISHED

    context["outlet_events"][SCORES_PUBLISHED].extra = {"as_of_date": plan.as_of_date.isoformat()}
    return result.as_dict()
