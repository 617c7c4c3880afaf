"""dbt inside Airflow through astronomer-cosmos: the feature models as a task group.

The DAG is rendered from the dbt manifest (``dbt parse`` writes it during set-up), so
parsing the DAG folder never runs dbt. ``OrchestrationSettings.dbt_execution`` picks how
the night runs dbt (measured on this 2-core machine, see the issue notes):

- ``watcher`` (default): Cosmos' WATCHER mode. One producer task runs ``dbt build`` once;
  every model has its own task in the graph that turns green or red with that model.
  One dbt start-up per night (~15 s at the demo size). On every try (a retry, a cleared
  night, ``backfill --reprocess-behavior completed``) the producer is the only task that
  runs dbt, in the warehouse pool, and the per-model tasks only mirror it
  (``churnops.orchestration.watcher`` says why Cosmos' own retry path cannot be used).
- ``per_model``: Cosmos LOCAL mode, one ``dbt build --select <model>`` per task. Each task
  pays dbt's start-up and a full re-parse (the as-of vars change every night): 12-18 s
  per model, about 3.5 minutes per night for 14 models here.
- ``build``: one plain task running ``dbt build``. No model graph, but the only shape
  ``dag.test()`` can run: it executes tasks one by one, so a watcher sensor that happens to
  run before its producer waits forever.
"""

from __future__ import annotations

import contextlib
from typing import Any

from churnops.features import dbt_env
from churnops.orchestration.defaults import RUN_DAY_TEMPLATE
from churnops.settings import Settings

PROFILE_NAME = "churnops"
# How often a watcher task looks for its model's result (Cosmos' default is 10 s).
WATCHER_POKE_SECONDS = 3


class ManifestMissing(RuntimeError):
    """The dbt manifest the DAG is rendered from has not been built yet."""


def features_task_group(settings: Settings, group_id: str = "features", **kwargs: Any) -> Any:
    """The features stage for the run's day, in the configured execution mode."""
    mode = settings.orchestration.dbt_execution
    if mode == "build":
        return _single_build_group(settings, group_id)
    return _cosmos_group(settings, group_id, watcher=mode == "watcher", **kwargs)


def _single_build_group(settings: Settings, group_id: str) -> Any:
    from airflow.sdk import TaskGroup, task

    @task(task_id="dbt_build", pool=settings.orchestration.warehouse_pool)
    def dbt_build() -> dict[str, Any]:
        """`dbt build` (models + data tests) for the run's day."""
        from airflow.sdk import get_current_context

        from churnops.features import build_features
        from churnops.orchestration import lineage
        from churnops.orchestration.defaults import run_day
        from churnops.settings import load_settings

        settings = load_settings()
        day = run_day(get_current_context())
        run = build_features(settings, day, day)
        lineage.report(
            inputs=lineage.raw_tables(settings),
            outputs=lineage.dbt_models(settings, run.nodes),
        )
        return {"day": day.isoformat(), "seconds": round(run.seconds, 1), "nodes": len(run.nodes)}

    with TaskGroup(group_id, tooltip="dbt build: staging -> intermediate -> marts") as group:
        dbt_build()
    return group


def _cosmos_group(settings: Settings, group_id: str, watcher: bool, **kwargs: Any) -> Any:
    """A Cosmos DbtTaskGroup building every dbt model and test for the run's day."""
    import cosmos  # noqa: F401  (cosmos must be imported before cosmos.constants)
    from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

    paths = settings.paths
    if not paths.dbt_manifest_path.exists():
        raise ManifestMissing(
            f"dbt manifest not found at {paths.dbt_manifest_path}: run `make setup` "
            "(it runs `dbt parse`) before Airflow parses the DAGs"
        )
    day = RUN_DAY_TEMPLATE
    operators: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if watcher:
        from churnops.orchestration.watcher import watcher_operators

        # Cosmos instantiates our watcher classes: a producer that builds on every try and
        # per-model tasks that never run dbt (see churnops.orchestration.watcher).
        operators = watcher_operators()
    with operators:
        group = DbtTaskGroup(
            group_id=group_id,
            project_config=ProjectConfig(
                dbt_project_path=paths.dbt_project_dir,
                manifest_path=paths.dbt_manifest_path,
                install_dbt_deps=False,  # the project uses no dbt packages
            ),
            profile_config=ProfileConfig(
                profile_name=PROFILE_NAME,
                target_name=settings.warehouse.dbt_target,
                profiles_yml_filepath=paths.dbt_project_dir / "profiles.yml",
            ),
            render_config=RenderConfig(
                load_method=LoadMode.DBT_MANIFEST,
                # Watcher mirrors tests onto per-model test tasks; LOCAL builds model+tests
                # per task.
                test_behavior=TestBehavior.AFTER_EACH if watcher else TestBehavior.BUILD,
                emit_datasets=False,
            ),
            execution_config=ExecutionConfig(
                execution_mode=ExecutionMode.WATCHER if watcher else ExecutionMode.LOCAL,
                invocation_mode=InvocationMode.DBT_RUNNER,
            ),
            operator_args={
                "vars": {"as_of_start": day, "as_of_end": day},
                # Same flags as churnops.features.build_features: unit tests run in CI only.
                "dbt_cmd_flags": ["--exclude", "test_type:unit"],
                "env": dbt_env(settings),
                "append_env": True,
                # Every task that runs dbt takes the warehouse slot, on every try.
                "pool": settings.orchestration.warehouse_pool,
            },
            **kwargs,
        )
    if watcher:
        _mirrors_leave_the_pool(group, settings.orchestration.warehouse_pool)
    return group


def _mirrors_leave_the_pool(group: Any, warehouse_pool: str) -> None:
    """The per-model watcher tasks never run dbt (MirrorOnly): they leave the one-slot
    warehouse pool to the producer. Anything else that Cosmos renders and that could run
    dbt keeps the pool; a watcher class we did not replace fails the parse."""
    from airflow.providers.standard.operators.empty import EmptyOperator
    from cosmos.operators._watcher.base import BaseConsumerSensor

    from churnops.orchestration.watcher import MirrorOnly

    for task in group.iter_tasks():
        if isinstance(task, MirrorOnly):
            _mirror(task)
        elif isinstance(task, BaseConsumerSensor):
            raise TypeError(
                f"{task.task_id}: Cosmos rendered {type(task).__name__}, whose retry runs dbt "
                "outside the warehouse pool: add it to churnops.orchestration.watcher"
            )
        elif not isinstance(task, EmptyOperator) and task.pool != warehouse_pool:
            raise ValueError(f"{task.task_id} can run dbt but is not in {warehouse_pool}")


def _mirror(task: Any) -> None:
    """A per-model watcher task: outside the warehouse pool, poking every few seconds."""
    task.pool = "default_pool"
    # They wait in the worker (poke) instead of deferring to the triggerer: a trigger
    # that fires within a second of the deferral (the model was already built) races the
    # executor's report of the deferring process, and Airflow 3.3 then fails the try
    # ("finished with state success, but the task instance's state attribute is queued",
    # apache/airflow#71580); its retry cost a night 9 minutes here. A poke holds a slot
    # for about a minute, and gives it back while the producer cannot run.
    task.deferrable = False
    task.poke_interval = WATCHER_POKE_SECONDS
