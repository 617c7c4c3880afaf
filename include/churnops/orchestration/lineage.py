"""Airflow's side of ``churnops.lineage``: each task reports what it read and wrote.

Airflow's OpenLineage provider emits a START and a COMPLETE (or FAIL) event for every
task try; what goes into an event's inputs and outputs comes from the operator's
extractor. Cosmos' dbt operators have their own (the models of the build, from dbt's
artifacts). A TaskFlow task (``@task``, ``@task.sensor``) only knows its datasets once it
has run them: which drops of which day, which model version the plan chose. So a task
body calls :func:`report` with them, and :class:`TaskLineageExtractor` (registered for
the TaskFlow operators through ``[openlineage] extractors``, see
``churnops.orchestration.environment.openlineage_env``) hands them to the provider when
the task closes.

Why not Airflow's hook lineage collector? It is one collector per process, never
emptied, and it only turns ``file`` and ``postgres`` URIs into OpenLineage datasets (no
DuckDB tables, no model versions). In ``dag.test()`` every task runs in one process and
each would carry the datasets of the tasks before it. What is reported here is kept per
task try.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from airflow.providers.openlineage.extractors.base import BaseExtractor, OperatorLineage

from churnops.contracts import LANDING_TABLES
from churnops.lineage import (
    Dataset,
    location_dataset,
    model_dataset,
    table_dataset,
)

if TYPE_CHECKING:
    from churnops.settings import Settings

# What each task try reported: (dag id, run id, task id, map index, try) -> datasets.
_REPORTED: dict[tuple[str, str, str, int, int], tuple[list[Dataset], list[Dataset]]] = {}


def _key(ti: Any) -> tuple[str, str, str, int, int]:
    return (
        str(ti.dag_id),
        str(ti.run_id),
        str(ti.task_id),
        int(getattr(ti, "map_index", -1) if getattr(ti, "map_index", None) is not None else -1),
        int(getattr(ti, "try_number", 0) or 0),
    )


def report(inputs: Iterable[Dataset] = (), outputs: Iterable[Dataset] = ()) -> None:
    """Add datasets the running task read (``inputs``) and wrote (``outputs``) to its
    OpenLineage COMPLETE (or FAIL) event. Call it from inside a task, as soon as they are
    known (before a failure is raised, so that a failed try says what it touched)."""
    from airflow.sdk import get_current_context

    read, written = _REPORTED.setdefault(_key(get_current_context()["ti"]), ([], []))
    read.extend(d for d in inputs if d not in read)
    written.extend(d for d in outputs if d not in written)


def openlineage_datasets(datasets: Iterable[Dataset]) -> list[Any]:
    """The provider's OpenLineage datasets of ``datasets``."""
    from airflow.providers.common.compat.openlineage.facet import Dataset as OpenLineageDataset

    return [OpenLineageDataset(namespace=d.namespace, name=d.name) for d in datasets]


class TaskLineageExtractor(BaseExtractor):
    """The datasets a TaskFlow task :func:`report`-ed, for its closing event."""

    @classmethod
    def get_operator_classnames(cls) -> list[str]:
        return [
            "_PythonDecoratedOperator",
            "DecoratedSensorOperator",
            "_BranchPythonDecoratedOperator",
            "_ShortCircuitDecoratedOperator",
        ]

    def _execute_extraction(self) -> OperatorLineage | None:
        return OperatorLineage()  # START: nothing has been read yet

    def extract_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        read, written = _REPORTED.pop(_key(task_instance), ([], []))
        return OperatorLineage(
            inputs=openlineage_datasets(read), outputs=openlineage_datasets(written)
        )

    def extract_on_failure(self, task_instance: Any) -> OperatorLineage | None:
        return self.extract_on_complete(task_instance)


# ------------------------------------------------------------ the nightly's datasets
def drops(files: Any, day: dt.date, tables: Iterable[str] = LANDING_TABLES) -> list[Dataset]:
    """The landing drops of ``day`` (their folders), one per table."""
    from churnops.landing import drop_dir

    return [location_dataset(drop_dir(files.landing_dir, table, day)) for table in tables]


def raw_tables(settings: Settings, tables: Iterable[str] = LANDING_TABLES) -> list[Dataset]:
    return [table_dataset(settings, f"raw.{table}") for table in tables]


def models(settings: Settings, versions: Iterable[str | int | None]) -> list[Dataset]:
    """The registered model versions among ``versions`` (None: no such model)."""
    return [model_dataset(settings, v) for v in versions if v is not None]


def dbt_models(settings: Settings, unique_ids: Iterable[str]) -> list[Dataset]:
    """The relations (``schema.table``) of dbt models, from the project's manifest."""
    import json

    nodes = json.loads(settings.paths.dbt_manifest_path.read_text())["nodes"]
    found = []
    for unique_id in unique_ids:
        node = nodes.get(unique_id) or {}
        if node.get("resource_type") == "model":
            relation = f"{node['schema']}.{node.get('alias') or node['name']}"
            found.append(table_dataset(settings, relation))
    return found
