"""dbt inside Airflow through astronomer-cosmos: the feature models as a task group.

The DAG is rendered from the dbt manifest (``dbt parse`` writes it during set-up), so
parsing the DAG folder never runs dbt. Each model is one task that runs ``dbt build``
for that model (the model, then its data tests), so the UI shows the model graph and a
failing test stops exactly the models downstream of it.

Cosmos' WATCHER mode (one dbt run mirrored onto per-model sensors) was tried and
rejected: its deferrable consumer sensors can run before the producer, which deadlocks
``dag.test()``, the way this project's DAGs are tested.
"""

from __future__ import annotations

from typing import Any

from churnops.features import dbt_env
from churnops.orchestration.defaults import RUN_DAY_TEMPLATE
from churnops.settings import Settings

PROFILE_NAME = "churnops"


class ManifestMissing(RuntimeError):
    """The dbt manifest the DAG is rendered from has not been built yet."""


def features_task_group(settings: Settings, group_id: str = "features", **kwargs: Any) -> Any:
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
    return DbtTaskGroup(
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
            test_behavior=TestBehavior.BUILD,
            emit_datasets=False,
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.LOCAL, invocation_mode=InvocationMode.DBT_RUNNER
        ),
        operator_args={
            "vars": {"as_of_start": day, "as_of_end": day},
            "env": dbt_env(settings),
            "append_env": True,
            "pool": settings.orchestration.warehouse_pool,
        },
        **kwargs,
    )
