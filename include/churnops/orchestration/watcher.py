"""Cosmos' watcher mode with one dbt writer on every try: first run, retry, clear, rerun.

What astronomer-cosmos 1.15.1 does on a later try (read in ``cosmos/operators/watcher.py``
and ``cosmos/operators/_watcher/base.py``):

- ``DbtProducerWatcherOperator.execute``: on ``try_number > 1`` it restores the previous
  try's XComs from a Variable and raises ``AirflowSkipException``: ``dbt build`` never
  runs a second time.
- ``BaseConsumerSensor.poke`` (every per-model task): on ``try_number > 1``, as soon as the
  producer is in a terminal state, it calls ``_fallback_to_non_watcher_run``: the task runs
  ``dbt run --select <model>`` itself (the per-model test tasks ``dbt test --select``); the
  same fallback runs on a first try when the producer was skipped, or failed before it
  reported the model.

Clearing a finished night (or ``airflow backfill create --reprocess-behavior completed``,
which clears it) puts every task on try 2: the producer skips, and each per-model task,
placed outside the warehouse pool because it was only meant to mirror, starts its own
dbt. On DuckDB (one writing process per file) five of them fail at once on
``Could not set lock on file .../warehouse.duckdb``.

The design here keeps dbt in one task on every try:

- :class:`RebuildingProducerWatcher` runs the whole ``dbt build`` on every try, in the
  warehouse pool. The models replace the night's partitions (``delete+insert`` on
  ``as_of_date``, the rest are views or rebuilt tables), so a second build leaves the rows
  as the first one did.
- The per-model tasks (:class:`MirrorOnly`) never run dbt: their fallback raises. They
  mirror the producer's results, outside the warehouse pool, and never hold a worker slot
  while the producer cannot run: while it waits out a retry delay (or has not been
  scheduled) they give the slot back (a reschedule) instead of poking. On a later try they
  mirror only a *finished* producer: its previous try's XComs stay readable for a moment
  after its next try starts, and a retry must not mirror those.

Why not let the per-model fallback run dbt inside the pool instead? A task has one pool
on every try, so the per-model tasks would sit in the one-slot pool on their first try
too, poking for the producer while holding the slot the producer needs: a deadlock. (And
a rerun would pay one dbt start-up and re-parse per model, 12-18 s each here, against one
build.) To rebuild one model, clear the producer (``features.dbt_producer_watcher``): the
per-model tasks show the new build's result once they are cleared as well.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

import cosmos  # noqa: F401  (cosmos must be imported before its submodules)
from airflow.sdk.exceptions import AirflowException, AirflowRescheduleException
from cosmos.airflow.compatibility import AirflowSkipException
from cosmos.dataset import get_dataset_namespace
from cosmos.operators._watcher.state import (
    PRODUCER_TERMINAL_STATES,
    _log_dbt_event,
    get_dbt_event_xcom_key,
    get_xcom_val,
    is_dbt_node_status_skipped,
    is_dbt_node_status_success,
    safe_xcom_push,
)
from cosmos.operators.watcher import (
    DbtProducerWatcherOperator,
    DbtRunWatcherOperator,
    DbtSeedWatcherOperator,
    DbtSnapshotWatcherOperator,
    DbtSourceWatcherOperator,
    DbtTestWatcherOperator,
)

log = logging.getLogger(__name__)

# Producer states in which it holds, or is next in line for, the slots it needs: it
# outranks every per-model task (priority weight 20 against 2), so waiting is bounded.
PRODUCER_ACTIVE = frozenset({"scheduled", "queued", "running"})
PRODUCER_FINISHED = frozenset(str(state.value) for state in PRODUCER_TERMINAL_STATES)
# How long a per-model task gives its worker slot back while the producer cannot run
# (retry delay, not scheduled yet): each look costs a task start-up.
RELEASE_SECONDS = 30


class RebuildingProducerWatcher(DbtProducerWatcherOperator):
    """Cosmos' watcher producer that runs ``dbt build`` on every try (Cosmos skips a try
    after the first one, leaving the per-model tasks to run dbt themselves).

    Cosmos' first-try path, minus what only served its skip-on-retry design: no XCom
    backup to a Variable (a later try rebuilds instead of restoring) and no producer flags
    for the per-model fallback (which never runs here).
    """

    def execute(self, context: Any, **kwargs: Any) -> Any:
        ti = context["ti"]
        if ti.try_number > 1:
            log.info("try %s: running dbt build again for the night", ti.try_number)
        self._dataset_namespace = (
            get_dataset_namespace(self.profile_config) if self._should_generate_model_uris else None
        )
        self._model_outlet_uris.clear()
        self._upstream_failure_skipped_ids.clear()
        if self._check_source_freshness:
            self._apply_source_freshness(context)
        try:
            # DbtLocalBaseOperator.execute: the build, whose events push each node's status.
            return super(DbtProducerWatcherOperator, self).execute(context=context, **kwargs)
        finally:
            safe_xcom_push(task_instance=ti, key="task_status", value="completed")


class MirrorOnly:
    """A per-model watcher task that only mirrors the producer's build: it never runs dbt.

    Mixed in before a Cosmos consumer class (``BaseConsumerSensor`` subclasses).
    """

    # Provided by the Cosmos consumer sensor this is mixed into.
    model_unique_id: str
    producer_task_id: str
    is_test_sensor: bool
    _resource_label: str

    def _fallback_to_non_watcher_run(self, try_number: int, context: Any) -> bool:
        raise AirflowException(
            f"{self._resource_label} '{self.model_unique_id}' is only mirrored from "
            f"'{self.producer_task_id}': a per-model task never runs dbt (the warehouse takes "
            "one writer). Clear the producer to build the night again."
        )

    def build_and_run_cmd(self, *args: Any, **kwargs: Any) -> Any:
        return self._fallback_to_non_watcher_run(0, kwargs.get("context"))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The model this task stands for, as its input: it reads the model's result in
        the producer's build (the producer's own event has the build's inputs and
        outputs). Cosmos' version reports nothing for a task that never ran dbt."""
        from airflow.providers.openlineage.extractors.base import OperatorLineage

        from churnops.orchestration.lineage import dbt_models, openlineage_datasets
        from churnops.settings import load_settings

        model = dbt_models(load_settings(), [self.model_unique_id])
        return OperatorLineage(inputs=openlineage_datasets(model))

    def poke(self, context: Any) -> bool:
        ti = context["ti"]
        label = f"{self._resource_label.lower()} '{self.model_unique_id}'"
        state = self._get_producer_task_status(context)  # type: ignore[attr-defined]
        producer = str(state).lower() if state is not None else "none"
        finished = producer in PRODUCER_FINISHED
        if not finished and producer not in PRODUCER_ACTIVE:
            # Waiting out a retry delay, cleared and not scheduled yet...: holding a worker
            # slot now could leave the producer none to start in.
            log.info(
                "producer '%s' is %s: freeing this slot for %ss",
                self.producer_task_id,
                producer,
                RELEASE_SECONDS,
            )
            raise AirflowRescheduleException(
                dt.datetime.now(dt.UTC) + dt.timedelta(seconds=RELEASE_SECONDS)
            )
        if ti.try_number > 1 and not finished:
            log.info(
                "try %s mirrors a finished build: producer '%s' is %s",
                ti.try_number,
                self.producer_task_id,
                producer,
            )
            return False
        status = self._get_node_status(ti, context)  # type: ignore[attr-defined]
        if status is None:
            if not finished:
                return False
            if producer == "success":
                log.info("the build finished without running %s (ephemeral or empty)", label)
                return True
            if producer == "skipped":
                raise AirflowSkipException(f"producer '{self.producer_task_id}' was skipped")
            raise AirflowException(
                f"producer '{self.producer_task_id}' is {producer} and never reported {label}: "
                "its retry, or a clear of the producer, builds it again"
            )
        self._cache_compiled_sql(ti, context)  # type: ignore[attr-defined]
        _log_dbt_event(
            get_xcom_val(ti, self.producer_task_id, get_dbt_event_xcom_key(self.model_unique_id))
        )
        if is_dbt_node_status_skipped(status):
            raise AirflowSkipException(f"{label} was skipped by the dbt build")
        if is_dbt_node_status_success(status):
            return True
        raise AirflowException(
            f"{label} finished with status '{status}' in the build of '{self.producer_task_id}' "
            "(its log has the details)"
        )


class MirrorRunWatcher(MirrorOnly, DbtRunWatcherOperator):
    """A model's task: green or red with the model in the producer's build."""


class MirrorTestWatcher(MirrorOnly, DbtTestWatcherOperator):
    """A model's tests: green when every test of the model passed in the producer's build."""


class MirrorSeedWatcher(MirrorOnly, DbtSeedWatcherOperator):
    pass


class MirrorSnapshotWatcher(MirrorOnly, DbtSnapshotWatcherOperator):
    pass


class MirrorSourceWatcher(MirrorOnly, DbtSourceWatcherOperator):
    pass


# The names Cosmos resolves its watcher operators by ("cosmos.operators.watcher.<name>").
REPLACEMENTS: dict[str, type] = {
    "DbtProducerWatcherOperator": RebuildingProducerWatcher,
    "DbtRunWatcherOperator": MirrorRunWatcher,
    "DbtTestWatcherOperator": MirrorTestWatcher,
    "DbtSeedWatcherOperator": MirrorSeedWatcher,
    "DbtSnapshotWatcherOperator": MirrorSnapshotWatcher,
    "DbtSourceWatcherOperator": MirrorSourceWatcher,
}


@contextlib.contextmanager
def watcher_operators() -> Iterator[None]:
    """While a DbtTaskGroup is built, Cosmos instantiates these classes for its watcher
    tasks (it loads each operator class by name from ``cosmos.operators.watcher``)."""
    import cosmos.operators.watcher as module

    original = {name: getattr(module, name) for name in REPLACEMENTS}
    try:
        for name, replacement in REPLACEMENTS.items():
            setattr(module, name, replacement)
        yield
    finally:
        for name, cls in original.items():
            setattr(module, name, cls)
