"""The rollouts in the warehouse: ``ops.rollout_history``, one row per event of a rollout
(started, a night evaluated, approved, rejected, rolled back, promoted, archived), each
with the state after it, the action, its reasons and the evidence (the gates' numbers) as
JSON. Append-only: the state of a rollout is its newest row, its history all of them
(``churnops status``, the audit). Works on every warehouse (DuckDB, PostgreSQL) through
the warehouse resource.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from churnops.registry.audit import OPS_SCHEMA
from churnops.rollout.machine import RolloutState, serving_share
from churnops.settings import RolloutSettings
from churnops.warehouse import MissingTable, Warehouse, utc_now

_metadata = sa.MetaData(schema=OPS_SCHEMA)
ROLLOUT_HISTORY = sa.Table(
    "rollout_history",
    _metadata,
    sa.Column("model_name", sa.String, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),  # order of events of the model's rollouts
    sa.Column("rollout_id", sa.String, nullable=False),
    sa.Column("as_of_date", sa.Date, nullable=False),  # the night the event is about
    sa.Column("challenger_version", sa.String, nullable=False),
    sa.Column("champion_version", sa.String),
    sa.Column("phase", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("phase_started_on", sa.Date, nullable=False),
    sa.Column("nights_in_phase", sa.Integer, nullable=False),
    sa.Column("last_night", sa.Date),
    sa.Column("pending_phase", sa.String),
    sa.Column("full_on", sa.Date),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("reasons", sa.String, nullable=False),  # JSON list
    sa.Column("evidence", sa.String),  # JSON: the gates' results
    sa.Column("actor", sa.String),
    sa.Column("event_at", sa.DateTime, nullable=False),
)
ROLLOUT_HISTORY_TABLE = f"{OPS_SCHEMA}.rollout_history"
_STATE_FIELDS = (
    "rollout_id",
    "model_name",
    "challenger_version",
    "champion_version",
    "phase",
    "status",
    "phase_started_on",
    "nights_in_phase",
    "last_night",
    "pending_phase",
    "full_on",
)


def _state(row: dict[str, Any]) -> RolloutState:
    return RolloutState(**{key: row[key] for key in _STATE_FIELDS})


class RolloutStore:
    """The rollout history table (schema ``ops``)."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def ensure(self) -> None:
        self.warehouse.ensure(ROLLOUT_HISTORY)

    def record(
        self,
        state: RolloutState,
        as_of_date: dt.date,
        action: str,
        reasons: list[str],
        actor: str,
        evidence: list[dict[str, Any]] | None = None,
    ) -> None:
        """Append one event with the state after it (one transaction)."""
        import pyarrow as pa

        self.ensure()
        with self.warehouse.transaction() as session:
            seq = session.tuples(
                f"SELECT COALESCE(MAX(seq), 0) FROM {ROLLOUT_HISTORY_TABLE} WHERE model_name = ?",
                [state.model_name],
            )[0][0]
            row = {
                **{key: getattr(state, key) for key in _STATE_FIELDS},
                "seq": int(seq) + 1,
                "as_of_date": as_of_date,
                "action": action,
                "reasons": json.dumps(reasons),
                "evidence": json.dumps(evidence, default=str) if evidence is not None else None,
                "actor": actor,
                "event_at": utc_now(),
            }
            session.insert(ROLLOUT_HISTORY, pa.Table.from_pylist([row]))

    def _rows(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        try:
            return self.warehouse.rows(sql, params)
        except MissingTable:
            return []

    def current(self, model_name: str) -> RolloutState | None:
        """The newest rollout of the model as it stands (None: there never was one)."""
        rows = self._rows(
            f"SELECT * FROM {ROLLOUT_HISTORY_TABLE} WHERE model_name = ? ORDER BY seq DESC LIMIT 1",
            [model_name],
        )
        return _state(rows[0]) if rows else None

    def share_of(
        self, policy: RolloutSettings, model_name: str, challenger_version: str | None
    ) -> float:
        """The share of customers ``challenger_version`` serves tonight:
        :func:`churnops.rollout.serving_share` of the model's newest rollout state."""
        if challenger_version is None:
            return 0.0
        return serving_share(policy, self.current(model_name), challenger_version)

    def history(self, model_name: str, rollout_id: str | None = None) -> list[dict[str, Any]]:
        """Events, oldest first (of one rollout, or of all the model's), reasons and
        evidence decoded."""
        where, params = "model_name = ?", [model_name]
        if rollout_id:
            where, params = where + " AND rollout_id = ?", [*params, rollout_id]
        rows = self._rows(
            f"SELECT * FROM {ROLLOUT_HISTORY_TABLE} WHERE {where} ORDER BY seq", params
        )
        for row in rows:
            row["reasons"] = json.loads(row["reasons"])
            row["evidence"] = json.loads(row["evidence"]) if row["evidence"] else None
        return rows

    def started_on(self, model_name: str, rollout_id: str) -> dt.date | None:
        rows = self._rows(
            f"SELECT MIN(as_of_date) AS d FROM {ROLLOUT_HISTORY_TABLE} "
            "WHERE model_name = ? AND rollout_id = ?",
            [model_name, rollout_id],
        )
        return rows[0]["d"] if rows else None
