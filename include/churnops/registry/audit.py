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
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from churnops.settings import Settings
from churnops.warehouse import transaction, utc_now

if TYPE_CHECKING:
    import duckdb

    from churnops.evaluate import Decision, ModelMetrics

OPS_SCHEMA = "ops"
AUDIT_TABLE = f"{OPS_SCHEMA}.model_audit_log"
DECISIONS_TABLE = f"{OPS_SCHEMA}.model_decisions"

_DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {OPS_SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {AUDIT_TABLE} (
        event_at TIMESTAMP NOT NULL,
        model_name VARCHAR NOT NULL,
        alias VARCHAR NOT NULL,
        from_version VARCHAR,
        to_version VARCHAR,
        action VARCHAR NOT NULL,
        reason VARCHAR,
        actor VARCHAR,
        run_id VARCHAR
    )""",
    f"""CREATE TABLE IF NOT EXISTS {DECISIONS_TABLE} (
        decided_at TIMESTAMP NOT NULL,
        model_name VARCHAR NOT NULL,
        challenger_version VARCHAR NOT NULL,
        champion_version VARCHAR,
        action VARCHAR NOT NULL,
        reasons VARCHAR NOT NULL,
        challenger_metrics VARCHAR NOT NULL,
        champion_metrics VARCHAR,
        actor VARCHAR,
        run_id VARCHAR
    )""",
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


def _connect(settings: Settings) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    from churnops.warehouse import connect

    if settings.warehouse.kind != "duckdb":
        raise NotImplementedError(
            f"the audit log is written to the DuckDB warehouse; warehouse kind "
            f"{settings.warehouse.kind!r} is not supported yet"
        )
    # Read-write: see churnops.features.missing_window_days on in-process dbt handles.
    return connect(settings.warehouse.duckdb_path)


def ensure_ops_schema(con: duckdb.DuckDBPyConnection) -> None:
    for statement in _DDL:
        con.execute(statement)


def record_alias_moves(settings: Settings, moves: list[AliasMove]) -> None:
    """Append alias moves to ``ops.model_audit_log`` (one transaction)."""
    if not moves:
        return
    with _connect(settings) as con:
        ensure_ops_schema(con)
        with transaction(con):
            con.executemany(
                f"INSERT INTO {AUDIT_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    [
                        m.event_at,
                        m.model_name,
                        m.alias,
                        m.from_version,
                        m.to_version,
                        m.action,
                        m.reason,
                        m.actor,
                        m.run_id,
                    ]
                    for m in moves
                ],
            )


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
    row = [
        utc_now(),
        settings.mlflow.registered_model_name,
        challenger_version,
        champion_version,
        decision.action,
        json.dumps(decision.reasons),
        json.dumps(challenger_metrics.to_dict()),
        json.dumps(champion_metrics.to_dict()) if champion_metrics else None,
        actor,
        run_id,
    ]
    with _connect(settings) as con:
        ensure_ops_schema(con)
        con.execute(f"INSERT INTO {DECISIONS_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)


def read_audit_log(settings: Settings, limit: int | None = None) -> list[AliasMove]:
    """Alias moves of the settings' registered model, newest first."""
    with _connect(settings) as con:
        ensure_ops_schema(con)
        rows = con.execute(
            "SELECT model_name, alias, from_version, to_version, action, reason, actor, run_id, "
            f"event_at FROM {AUDIT_TABLE} WHERE model_name = ? "
            "ORDER BY event_at DESC, rowid DESC" + (" LIMIT ?" if limit else ""),
            [settings.mlflow.registered_model_name, *([limit] if limit else [])],
        ).fetchall()
    return [AliasMove(*row) for row in rows]


def read_decisions(settings: Settings, limit: int | None = None) -> list[DecisionRecord]:
    """Champion/challenger decisions of the settings' registered model, newest first."""
    with _connect(settings) as con:
        ensure_ops_schema(con)
        rows = con.execute(
            "SELECT decided_at, model_name, challenger_version, champion_version, action, "
            "reasons, challenger_metrics, champion_metrics, actor, run_id "
            f"FROM {DECISIONS_TABLE} WHERE model_name = ? "
            "ORDER BY decided_at DESC, rowid DESC" + (" LIMIT ?" if limit else ""),
            [settings.mlflow.registered_model_name, *([limit] if limit else [])],
        ).fetchall()
    return [
        DecisionRecord(
            decided_at=row[0],
            model_name=row[1],
            challenger_version=row[2],
            champion_version=row[3],
            action=row[4],
            reasons=json.loads(row[5]),
            challenger_metrics=json.loads(row[6]),
            champion_metrics=json.loads(row[7]) if row[7] else None,
            actor=row[8],
            run_id=row[9],
        )
        for row in rows
    ]
