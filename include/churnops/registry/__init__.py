"""The MLflow side: tracking runs, registered versions, champion/challenger aliases, audit.

Importing this package is cheap; mlflow loads on first use.
"""

from churnops.registry.aliases import (
    ALIASES,
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    NoRollbackTarget,
    RegistryError,
    StaleDecision,
    UnknownVersion,
    current_aliases,
    promote,
    registry_lock,
    rollback,
    set_challenger,
)
from churnops.registry.audit import (
    AliasMove,
    DecisionRecord,
    read_audit_log,
    read_decisions,
    record_decision,
)
from churnops.registry.champion import (
    LoadedModel,
    NoChampion,
    champion_metrics,
    champion_version,
    load_champion,
    load_version,
    newest_version_created_at,
    version_metrics,
)
from churnops.registry.runs import RegisteredVersion, log_training_run
from churnops.registry.tracking import (
    RegistryUnavailable,
    ensure_experiment,
    mlflow_client,
    registry_outages,
    require_tracking_server,
    tracking_uri,
)

__all__ = [
    "ALIASES",
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS_CHAMPION",
    "AliasMove",
    "DecisionRecord",
    "LoadedModel",
    "NoChampion",
    "NoRollbackTarget",
    "RegisteredVersion",
    "RegistryError",
    "RegistryUnavailable",
    "StaleDecision",
    "UnknownVersion",
    "champion_metrics",
    "champion_version",
    "current_aliases",
    "ensure_experiment",
    "load_champion",
    "load_version",
    "newest_version_created_at",
    "log_training_run",
    "mlflow_client",
    "promote",
    "read_audit_log",
    "read_decisions",
    "record_decision",
    "registry_lock",
    "registry_outages",
    "require_tracking_server",
    "rollback",
    "set_challenger",
    "tracking_uri",
    "version_metrics",
]
