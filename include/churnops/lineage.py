"""A night's lineage, read from the OpenLineage events Airflow wrote.

Every Airflow task of the project reports what it read and wrote as OpenLineage
datasets (``churnops.orchestration.lineage``; Cosmos reports the dbt models itself), and
Airflow's OpenLineage provider writes one START and one COMPLETE (or FAIL) event per task
try to a JSON-lines file under the state dir (``CHURNOPS_LINEAGE=file``, the default).

This module names those datasets (one rule per kind, used by the writer and the reader
alike) and reads the file back: :func:`night_lineage` answers, for one night, which
landing drops, which feature build and which model version produced its predictions. It
imports nothing of Airflow: the portal calls it inside the API server, the CLI anywhere.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from churnops.settings import Settings

NIGHTLY_DAG_ID = "churn_nightly"
# The OpenLineage namespace of the model registry's versions (names: ``models:/NAME/V``,
# MLflow's own model URI).
MODEL_NAMESPACE = "mlflow"
MODEL_URI_PREFIX = "models:/"
# dbt's schemas: what a feature build writes.
FEATURE_SCHEMAS = ("staging", "intermediate", "marts")
# The task groups whose datasets answer the questions.
INGEST_GROUP, FEATURES_GROUP, SCORE_GROUP = "ingest.", "features.", "score."
PUBLISH_TASK = "score.publish"


@dataclass(frozen=True, order=True)
class Dataset:
    """An OpenLineage dataset: a namespace (where) and a name (what, inside it)."""

    namespace: str
    name: str

    @property
    def uri(self) -> str:
        """``namespace`` and ``name`` as one string, for display."""
        if self.namespace == "file":
            return f"file://{self.name}"
        if self.namespace == MODEL_NAMESPACE:
            return self.name
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_event(cls, item: dict[str, Any]) -> Dataset:
        return cls(str(item.get("namespace", "")), str(item.get("name", "")))


# ----------------------------------------------------------------------------- naming
def location_dataset(location: object) -> Dataset:
    """A file or folder of the shared files (a local ``Path`` or an object-store URL):
    OpenLineage's naming, ``file`` + the absolute path, or ``s3://bucket`` + the key."""
    text = str(location)
    parts = urlsplit(text)
    if not parts.scheme or parts.scheme == "file":
        return Dataset("file", str(Path(parts.path if parts.scheme else text).absolute()))
    return Dataset(f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/"))


def warehouse_namespace(settings: Settings) -> tuple[str, str]:
    """The warehouse's OpenLineage namespace and database name, as the dbt integration
    names them (so the tables the ingest writes are the ones dbt reads): ``duckdb://PATH``
    and the file's stem; ``postgres://HOST:PORT`` and the database."""
    warehouse = settings.warehouse
    if warehouse.kind == "duckdb":
        return f"duckdb://{warehouse.duckdb_path}", Path(warehouse.duckdb_path).stem
    from churnops.warehouse.postgres_warehouse import parse_dsn

    url = parse_dsn(warehouse.postgres_dsn)  # the parts dbt reads too (no connection)
    return f"postgres://{url.host or '127.0.0.1'}:{url.port or 5432}", url.database or ""


def table_dataset(settings: Settings, relation: str) -> Dataset:
    """A warehouse table, ``relation`` being ``schema.table`` (e.g. ``raw.customers``)."""
    namespace, database = warehouse_namespace(settings)
    return Dataset(namespace, f"{database}.{relation}")


def model_dataset(settings: Settings, version: str | int) -> Dataset:
    """A registered model version: ``models:/churn/3``."""
    return Dataset(
        MODEL_NAMESPACE, f"{MODEL_URI_PREFIX}{settings.mlflow.registered_model_name}/{version}"
    )


def model_version(dataset: Dataset) -> str | None:
    """The version of a :func:`model_dataset`, else None."""
    if dataset.namespace != MODEL_NAMESPACE or not dataset.name.startswith(MODEL_URI_PREFIX):
        return None
    return dataset.name.rsplit("/", 1)[-1]


def schema_of(dataset: Dataset) -> str:
    """``raw`` for ``warehouse.raw.customers`` (the part before the table)."""
    parts = dataset.name.split(".")
    return parts[-2] if len(parts) >= 2 else ""


# ----------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class TaskLineage:
    """One task try's COMPLETE (or FAIL) event: what it read and wrote."""

    task_id: str
    state: str  # COMPLETE, FAIL, ...
    event_time: str
    inputs: tuple[Dataset, ...]
    outputs: tuple[Dataset, ...]
    run_facets: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class FeatureBuild:
    """The dbt build that made the night's features."""

    tasks: tuple[str, ...]  # the Airflow task(s) that ran dbt
    models: tuple[str, ...]  # what it wrote, ``schema.table``
    sources: tuple[str, ...]  # what it read from the raw schema
    dbt_invocation_id: str | None  # dbt's own id of the run, when Cosmos reported it


@dataclass(frozen=True)
class NightLineage:
    """Where one night's predictions come from.

    ``drops``: the landing drops its ingest read (one per landing table), as URIs;
    ``raw_tables``: the warehouse tables they were loaded into; ``feature_build``: the dbt
    build of the night's features; ``model_versions``: the registered versions that scored
    it (the champion first, then a challenger scoring in shadow); ``predictions``: the
    tables its scores were published to (empty when the night was not scored: no champion
    yet, or the run stopped earlier). ``run_id`` is the Airflow run the answer comes from,
    the latest one of the night that published predictions (else the latest one);
    ``tasks`` every task event of that run, in order.
    """

    night: dt.date
    run_id: str
    drops: tuple[str, ...]
    raw_tables: tuple[str, ...]
    feature_build: FeatureBuild | None
    model_versions: tuple[str, ...]
    predictions: tuple[str, ...]
    tasks: tuple[TaskLineage, ...] = field(repr=False)

    @property
    def scored(self) -> bool:
        return bool(self.predictions)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for a page or JSON (dates as ISO strings, datasets as URIs)."""
        build = asdict(self.feature_build) if self.feature_build else None
        return {
            "night": self.night.isoformat(),
            "run_id": self.run_id,
            "drops": list(self.drops),
            "raw_tables": list(self.raw_tables),
            "feature_build": build,
            "model_versions": list(self.model_versions),
            "predictions": list(self.predictions),
            "tasks": [
                {
                    "task_id": t.task_id,
                    "state": t.state,
                    "event_time": t.event_time,
                    "inputs": [d.uri for d in t.inputs],
                    "outputs": [d.uri for d in t.outputs],
                }
                for t in self.tasks
            ],
        }


def events_file(settings: Settings) -> Path:
    """Where the file transport writes (``CHURNOPS_LINEAGE=file``)."""
    return settings.paths.lineage_events_file


def read_events(path: Path, containing: str = "") -> Iterator[dict[str, Any]]:
    """The events of a JSON-lines file, in the order they were written; only the lines
    that contain ``containing`` are parsed (a cheap filter on a file that grows every
    night). A line another process is still writing is skipped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if containing and containing not in line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                yield event


def event_night(event: dict[str, Any]) -> dt.date | None:
    """The night a nightly event belongs to, by the rule the tasks use
    (``churnops.orchestration.defaults.run_day``): the trigger form's ``as_of_date``, else
    the run's logical date (UTC)."""
    dag_run = ((event.get("run") or {}).get("facets") or {}).get("airflow", {}).get("dagRun") or {}
    conf = dag_run.get("conf") or {}
    try:
        if conf.get("as_of_date"):
            return dt.date.fromisoformat(str(conf["as_of_date"])[:10])
        logical = dag_run.get("logical_date")
        if not logical:
            return None
        return dt.datetime.fromisoformat(str(logical)).astimezone(dt.UTC).date()
    except ValueError:
        return None


def _task_event(event: dict[str, Any]) -> tuple[str, str, TaskLineage] | None:
    """(dag id, run id, the task's lineage) of a task's closing event, else None."""
    job = event.get("job") or {}
    facets = (event.get("run") or {}).get("facets") or {}
    job_type = ((job.get("facets") or {}).get("jobType") or {}).get("jobType")
    airflow = facets.get("airflow") or {}
    dag_run = airflow.get("dagRun") or {}
    if job_type != "TASK" or not dag_run.get("run_id"):
        return None
    dag_id = str(dag_run.get("dag_id", ""))
    name = str(job.get("name", ""))
    task_id = name[len(dag_id) + 1 :] if name.startswith(f"{dag_id}.") else name
    task = TaskLineage(
        task_id=task_id,
        state=str(event.get("eventType", "")),
        event_time=str(event.get("eventTime", "")),
        inputs=tuple(Dataset.from_event(d) for d in event.get("inputs") or []),
        outputs=tuple(Dataset.from_event(d) for d in event.get("outputs") or []),
        run_facets=facets,
    )
    return dag_id, str(dag_run["run_id"]), task


def night_task_events(
    settings: Settings, night: dt.date, dag_id: str = NIGHTLY_DAG_ID
) -> dict[str, list[TaskLineage]]:
    """Every task event (START, COMPLETE, FAIL...) of the runs of ``dag_id`` that
    processed ``night``, by run id, in the order they were written."""
    runs: dict[str, list[TaskLineage]] = {}
    for event in read_events(events_file(settings), containing=night.isoformat()):
        found = _task_event(event)
        if found is None or found[0] != dag_id or event_night(event) != night:
            continue
        runs.setdefault(found[1], []).append(found[2])
    return runs


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _feature_build(tasks: list[TaskLineage]) -> FeatureBuild | None:
    built = [
        t
        for t in tasks
        if t.task_id.startswith(FEATURES_GROUP)
        and any(schema_of(d) in FEATURE_SCHEMAS for d in t.outputs)
    ]
    if not built:
        return None
    invocation = next(
        (
            str(t.run_facets["dbt_run"]["invocation_id"])
            for t in built
            if isinstance(t.run_facets.get("dbt_run"), dict)
            and t.run_facets["dbt_run"].get("invocation_id")
        ),
        None,
    )
    return FeatureBuild(
        tasks=_unique(t.task_id for t in built),
        models=_unique(
            ".".join(d.name.split(".")[-2:])
            for t in built
            for d in t.outputs
            if schema_of(d) in FEATURE_SCHEMAS
        ),
        sources=_unique(
            ".".join(d.name.split(".")[-2:])
            for t in built
            for d in t.inputs
            if schema_of(d) == "raw"
        ),
        dbt_invocation_id=invocation,
    )


def night_lineage(settings: Settings, night: dt.date) -> NightLineage | None:
    """Which drops, which feature build and which model version produced the predictions
    of ``night`` (the business day a ``churn_nightly`` run processed), from the
    OpenLineage events file (:func:`events_file`).

    Of the night's runs (a rerun, a backfill, a cleared night make more than one), the
    latest one that published predictions answers, else the latest one. Only the closing
    event (COMPLETE or FAIL) of each task try counts. None when no event of the night is
    in the file: the night never ran through Airflow with lineage on
    (``CHURNOPS_LINEAGE=off``, or events sent elsewhere through Airflow's own
    ``[openlineage]`` settings).
    """
    runs = night_task_events(settings, night)
    if not runs:
        return None

    def closing(tasks: list[TaskLineage]) -> list[TaskLineage]:
        return [t for t in tasks if t.state in ("COMPLETE", "FAIL", "ABORT")]

    def published(tasks: list[TaskLineage]) -> bool:
        return any(t.task_id == PUBLISH_TASK and t.state == "COMPLETE" for t in tasks)

    def last_time(item: tuple[str, list[TaskLineage]]) -> tuple[bool, str]:
        return published(item[1]), max(t.event_time for t in item[1])

    run_id, events = max(runs.items(), key=last_time)
    tasks = closing(events)
    ingest = [t for t in tasks if t.task_id.startswith(INGEST_GROUP)]
    scoring = [t for t in tasks if t.task_id.startswith(SCORE_GROUP)]
    publish = [t for t in scoring if t.task_id == PUBLISH_TASK and t.state == "COMPLETE"]
    return NightLineage(
        night=night,
        run_id=run_id,
        drops=_unique(
            d.uri
            for t in ingest
            for d in t.inputs
            if d.namespace != warehouse_namespace(settings)[0]
        ),
        raw_tables=_unique(
            ".".join(d.name.split(".")[-2:])
            for t in ingest
            for d in t.outputs
            if schema_of(d) == "raw"
        ),
        feature_build=_feature_build(tasks),
        model_versions=_unique(
            v for t in (publish or scoring) for d in t.inputs if (v := model_version(d))
        ),
        predictions=_unique(".".join(d.name.split(".")[-2:]) for t in publish for d in t.outputs),
        tasks=tuple(events),
    )
