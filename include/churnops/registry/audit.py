"""The model audit trail in the warehouse: every alias move and every promotion decision.

``ops.model_audit_log``: one row per alias move (champion, challenger, previous_champion
set or removed), with who, why and from which run. ``ops.model_decisions``: one row per
champion/challenger decision with its reasons and both models' metrics (JSON). Both are
append-only; MLflow holds the same facts as version tags, the warehouse makes them
queryable next to the predictions (``churnops status``).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from churnops.settings import Settings
from churnops.warehouse import MissingTable, Warehouse, utc_now, warehouse_for

if TYPE_CHECKING:
    from churnops.evaluate import Decision, ModelMetrics

OPS_SCHEMA = "ops"
AUDIT_TABLE = f"{OPS_SCHEMA}.model_audit_log"
DECISIONS_TABLE = f"{OPS_SCHEMA}.model_decisions"

_metadata = sa.MetaData(schema=OPS_SCHEMA)
AUDIT_LOG = sa.Table(
    "model_audit_log",
    _metadata,
    sa.Column("event_at", sa.DateTime, nullable=False),
    sa.Column("model_name", sa.String, nullable=False),
    sa.Column("alias", sa.String, nullable=False),
    sa.Column("from_version", sa.String),
    sa.Column("to_version", sa.String),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("reason", sa.String),
    sa.Column("actor", sa.String),
    sa.Column("run_id", sa.String),
    # Order of the move within its batch: moves of one batch can share a timestamp, and
    # "newest first" must still list them in reverse order of making.
    sa.Column("position", sa.Integer, nullable=False),
)
DECISIONS = sa.Table(
    "model_decisions",
    _metadata,
    sa.Column("decided_at", sa.DateTime, nullable=False),
    sa.Column("model_name", sa.String, nullable=False),
    sa.Column("challenger_version", sa.String, nullable=False),
    sa.Column("champion_version", sa.String),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("reasons", sa.String, nullable=False),  # JSON list
    sa.Column("challenger_metrics", sa.String, nullable=False),  # JSON
    sa.Column("champion_metrics", sa.String),  # JSON
    sa.Column("actor", sa.String),
    sa.Column("run_id", sa.String),
)


@dataclass(frozen=True)
class AliasMove:
    """An alias set (``to_version``) or removed (``to_version`` None) on a registered model.

    ``action`` says what the move was part of: promote, rollback, challenger, approve...
    """

    model_name: str
    alias: str
    from_version: str | None
    to_version: str | None
    action: str
    reason: str
    actor: str
    run_id: str | None = None
    event_at: dt.datetime = field(default_factory=utc_now)

    def describe(self) -> str:
        before = f"v{self.from_version}" if self.from_version else "nobody"
        after = f"v{self.to_version}" if self.to_version else "nobody"
        return f"{self.alias}: {before} -> {after} ({self.action} by {self.actor}: {self.reason})"

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class DecisionRecord:
    """A champion/challenger decision as stored."""

    decided_at: dt.datetime
    model_name: str
    challenger_version: str
    champion_version: str | None
    action: str
    reasons: list[str]
    challenger_metrics: dict[str, Any]
    champion_metrics: dict[str, Any] | None
    actor: str | None
    run_id: str | None


class OpsStore:
    """The append-only audit tables of schema ``ops``."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def ensure(self) -> None:
        self.warehouse.ensure(AUDIT_LOG, DECISIONS)

    def append(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        if not rows:
            return
        self.ensure()
        with self.warehouse.transaction() as session:
            session.insert(table, pa.Table.from_pylist(rows))

    def newest(
        self, table: sa.Table, order: str, model_name: str, limit: int | None
    ) -> list[dict[str, Any]]:
        try:
            return self.warehouse.rows(
                f"SELECT * FROM {OPS_SCHEMA}.{table.name} WHERE model_name = ? "
                f"ORDER BY {order}" + (" LIMIT ?" if limit else ""),
                [model_name, *([limit] if limit else [])],
            )
        except MissingTable:
            return []


def _ops(settings: Settings, ops: OpsStore | None = None) -> OpsStore:
    # The process's warehouse resource, as ``stores_for(settings).ops`` holds it: built
    # here, not through churnops.stores, which imports this module for OpsStore.
    return ops or OpsStore(warehouse_for(settings))


def record_alias_moves(settings: Settings, moves: list[AliasMove]) -> None:
    """Append alias moves to ``ops.model_audit_log`` (one transaction)."""
    _ops(settings).append(AUDIT_LOG, [{**vars(m), "position": i} for i, m in enumerate(moves)])


def record_decision(
    settings: Settings,
    decision: Decision,
    *,
    challenger_version: str,
    champion_version: str | None,
    challenger_metrics: ModelMetrics,
    champion_metrics: ModelMetrics | None,
    actor: str,
    run_id: str | None = None,
) -> None:
    """Append one champion/challenger decision to ``ops.model_decisions``."""
    row = {
        "decided_at": utc_now(),
        "model_name": settings.mlflow.registered_model_name,
        "challenger_version": challenger_version,
        "champion_version": champion_version,
        "action": decision.action,
        "reasons": json.dumps(decision.reasons),
        "challenger_metrics": json.dumps(challenger_metrics.to_dict()),
        "champion_metrics": json.dumps(champion_metrics.to_dict()) if champion_metrics else None,
        "actor": actor,
        "run_id": run_id,
    }
    _ops(settings).append(DECISIONS, [row])


def read_audit_log(
    settings: Settings, limit: int | None = None, ops: OpsStore | None = None
) -> list[AliasMove]:
    """Alias moves of the settings' registered model, newest first."""
    rows = _ops(settings, ops).newest(
        AUDIT_LOG, "event_at DESC, position DESC", settings.mlflow.registered_model_name, limit
    )
    return [AliasMove(**{k: v for k, v in row.items() if k != "position"}) for row in rows]


def read_decisions(
    settings: Settings, limit: int | None = None, ops: OpsStore | None = None
) -> list[DecisionRecord]:
    """Champion/challenger decisions of the settings' registered model, newest first."""
    rows = _ops(settings, ops).newest(
        DECISIONS, "decided_at DESC", settings.mlflow.registered_model_name, limit
    )
    return [
        DecisionRecord(
            **{
                **row,
                "reasons": json.loads(row["reasons"]),
                "challenger_metrics": json.loads(row["challenger_metrics"]),
                "champion_metrics": json.loads(row["champion_metrics"])
                if row["champion_metrics"]
                else None,
            }
        )
        for row in rows
    ]
