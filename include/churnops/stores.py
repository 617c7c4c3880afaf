"""The stores of the warehouse, one per schema, on one warehouse resource.

``stores_for(settings)`` is what an entry point (a CLI command, an Airflow task, the
portal) builds once and hands on: each store owns its tables, their DDL and their queries
(``raw``: landing drops; ``features``: the dbt marts, read only, and the training
snapshots' columnar copies in the shared files; ``scoring``: predictions;
``monitoring``: drift, cohorts, retraining requests; ``ops``: the registry audit log).
"""

from __future__ import annotations

from churnops.features.copies import SnapshotCopies
from churnops.features.store import FeatureStore
from churnops.ingest.store import RawStore
from churnops.monitor.store import MonitoringStore
from churnops.registry.audit import OpsStore
from churnops.score.store import ScoringStore
from churnops.settings import Settings
from churnops.warehouse import Warehouse, warehouse_for


class Stores:
    def __init__(self, warehouse: Warehouse, snapshot_copies: SnapshotCopies | None = None) -> None:
        self.warehouse = warehouse
        self.raw = RawStore(warehouse)
        self.features = FeatureStore(warehouse, snapshot_copies)
        self.scoring = ScoringStore(warehouse)
        self.monitoring = MonitoringStore(warehouse)
        self.ops = OpsStore(warehouse)


def stores_for(settings: Settings, read_only: bool = False) -> Stores:
    """The stores on the process's warehouse resource for ``settings``."""
    from churnops.storage import shared_files_for

    return Stores(
        warehouse_for(settings, read_only=read_only),
        SnapshotCopies(shared_files_for(settings).training_dir),
    )
