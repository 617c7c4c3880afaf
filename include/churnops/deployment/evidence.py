"""The evidence of one night, read from the warehouse and the registry for the gates
(``churnops.rollout.gates``): the I/O side of the rollout's decisions."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from churnops.features.store import LABELS_TABLE
from churnops.rollout import gates
from churnops.rollout.machine import GateResult, RolloutState
from churnops.score.store import PREDICTIONS_TABLE, SCORING_RUNS_TABLE, SHADOW_PREDICTIONS_TABLE
from churnops.settings import LABEL_COLUMN, Settings
from churnops.warehouse import MissingTable, Warehouse

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)
BASELINE_NIGHTS = 7


def _rows(warehouse: Warehouse, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    try:
        return warehouse.rows(sql, params)
    except MissingTable:
        return []


def paired_scores(
    warehouse: Warehouse, night: dt.date, challenger: str
) -> tuple[np.ndarray, np.ndarray]:
    """The night's customers served by the champion, with the challenger's shadow score of
    each: (champion scores, challenger scores), one customer per position."""
    import numpy as np

    rows = _rows(
        warehouse,
        f"SELECT p.churn_probability AS champion, s.churn_probability AS challenger "
        f"FROM {PREDICTIONS_TABLE} AS p JOIN {SHADOW_PREDICTIONS_TABLE} AS s "
        "ON s.as_of_date = p.as_of_date AND s.customer_id = p.customer_id "
        "WHERE p.as_of_date = ? AND p.served_by = 'champion' AND s.model_version = ? "
        "ORDER BY p.customer_id",
        [night, challenger],
    )
    return (
        np.array([r["champion"] for r in rows], dtype=np.float64),
        np.array([r["challenger"] for r in rows], dtype=np.float64),
    )


def scoring_run(warehouse: Warehouse, night: dt.date) -> dict[str, Any] | None:
    rows = _rows(
        warehouse,
        f"SELECT * FROM {SCORING_RUNS_TABLE} WHERE as_of_date = ? "
        "ORDER BY finished_at DESC LIMIT 1",
        [night],
    )
    return rows[0] if rows else None


def baseline_seconds(warehouse: Warehouse, before: dt.date) -> list[float]:
    """Seconds of the newest champion-only scored nights (no shadow: no rollout, no
    challenger) before ``before``."""
    rows = _rows(
        warehouse,
        f"SELECT seconds FROM {SCORING_RUNS_TABLE} WHERE state = 'scored' AND shadow_rows = 0 "
        "AND as_of_date < ? ORDER BY as_of_date DESC LIMIT ?",
        [before, BASELINE_NIGHTS],
    )
    return [float(r["seconds"]) for r in rows]


def ab_arms(warehouse: Warehouse, challenger: str) -> tuple[gates.Arm, gates.Arm, int]:
    """Canary (served ``challenger``) and control (served the champion) on the nights both
    arms were served and whose labels have matured: (canary, control, nights)."""
    rows = _rows(
        warehouse,
        f"""
        WITH nights AS (
            SELECT as_of_date FROM {PREDICTIONS_TABLE}
            WHERE served_by = 'challenger' AND model_version = ?
            GROUP BY as_of_date
        ), arms AS (
            SELECT p.served_by, p.contact, l.{LABEL_COLUMN} AS churned, p.as_of_date
            FROM {PREDICTIONS_TABLE} AS p
            JOIN nights AS n ON n.as_of_date = p.as_of_date
            JOIN {LABELS_TABLE} AS l
              ON l.as_of_date = p.as_of_date AND l.customer_id = p.customer_id
        )
        SELECT served_by,
               COUNT(*) AS customers,
               SUM(CASE WHEN contact THEN 1 ELSE 0 END) AS contacts,
               SUM(CASE WHEN contact AND churned = 1 THEN 1 ELSE 0 END) AS caught,
               SUM(CASE WHEN churned = 1 THEN 1 ELSE 0 END) AS churners,
               COUNT(DISTINCT as_of_date) AS nights
        FROM arms GROUP BY served_by
        """,
        [challenger],
    )
    by_arm = {r["served_by"]: r for r in rows}

    def arm(name: str) -> gates.Arm:
        r = by_arm.get(name) or {}
        return gates.Arm(
            *(int(r.get(k) or 0) for k in ("customers", "contacts", "caught", "churners"))
        )

    nights = min((int(r["nights"]) for r in rows), default=0) if len(rows) == 2 else 0
    return arm("challenger"), arm("champion"), nights


def estimates(
    settings: Settings, champion: str | None, challenger: str, paired: tuple[Any, Any]
) -> tuple[float | None, float | None, float | None]:
    """(challenger's estimated AUC, its reference's AUC, champion's estimated AUC) on
    the same customers, each by CBPE against its own reference."""
    from churnops.estimation import estimate_performance
    from churnops.monitor.reference import ReferenceMissing, load_performance_reference

    found: dict[str, tuple[float | None, float]] = {}
    for version, scores in ((champion, paired[0]), (challenger, paired[1])):
        if version is None or len(scores) == 0:
            continue
        try:
            reference = load_performance_reference(settings, version)
        except ReferenceMissing as exc:
            log.warning("no estimated AUC for v%s: %s", version, exc)
            continue
        found[version] = (estimate_performance(reference, scores).auc.value, reference.auc)
    mine = found.get(challenger, (None, None))
    theirs = found.get(champion or "", (None, None))
    return mine[0], mine[1], theirs[0]


def night_gates(
    settings: Settings, warehouse: Warehouse, state: RolloutState, night: dt.date
) -> tuple[GateResult, ...]:
    """Every gate on ``night`` for the rollout ``state``. At full the challenger serves
    everyone and has no shadow: only the scoring run and the (late) A/B readout apply."""
    policy = settings.rollout
    results = [
        gates.scoring_gate(
            scoring_run(warehouse, night), baseline_seconds(warehouse, night), policy
        )
    ]
    if state.status != "full":
        # The scoring gate's "every customer" needs a shadow: at full there is none.
        paired = paired_scores(warehouse, night, state.challenger_version)
        results.append(gates.score_gate(paired[0], paired[1], policy))
        results.append(
            gates.estimate_gate(
                *estimates(settings, state.champion_version, state.challenger_version, paired),
                policy,
            )
        )
    else:
        run = results[0]
        if run.status == "fail" and run.numbers.get("state") == "scored":
            # No shadow at full: missing shadow rows are expected, not a failure.
            results[0] = GateResult(
                run.name, "pass", [f"scored {run.numbers['rows_scored']:,} customers"], run.numbers
            )
    canary, control, nights = ab_arms(warehouse, state.challenger_version)
    results.append(gates.ab_gate(canary, control, nights, policy))
    return tuple(results)
