"""Task bodies of ``churn_rollout``: Airflow's side of ``churnops.rollout``."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import get_current_context

from churnops.settings import Settings, load_settings

log = logging.getLogger(__name__)

# Where the approver finds the drift reports (the portal's page in the Airflow UI).
DRIFT_PAGE = "/plugin/churnops-drift-reports"


def _nights(context: Mapping[str, Any], settings: Settings) -> list[dt.date]:
    """The nights to evaluate, oldest first: the form's as_of_date, else every night the
    triggering ``scores_published`` events name (several when events queued up while an
    approval waited), else the newest scored night."""
    params = context.get("params") or {}
    if params.get("as_of_date"):
        return [dt.date.fromisoformat(str(params["as_of_date"]))]
    nights = {
        dt.date.fromisoformat(str((event.extra or {})["as_of_date"]))
        for events in (context.get("triggering_asset_events") or {}).values()
        for event in events
        if (event.extra or {}).get("as_of_date")
    }
    if nights:
        return sorted(nights)
    from churnops.warehouse import MissingTable, warehouse_for

    try:
        rows = warehouse_for(settings).rows(
            "SELECT MAX(as_of_date) AS night FROM scoring.scoring_runs WHERE state = 'scored'"
        )
    except MissingTable:
        return []
    return [rows[0]["night"]] if rows and rows[0]["night"] else []


ANSWER_KEY = "answer"


class RolloutApproval(ApprovalOperator):
    """Airflow's ``ApprovalOperator`` that also keeps the answer in XCom (key
    ``answer``) on Reject: the operator skips its downstream tasks by raising before it
    returns, so its return value (the answer) exists on Approve only."""

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" not in event:
            responded_at = event.get("responded_at")
            context["ti"].xcom_push(
                key=ANSWER_KEY,
                value={
                    "chosen_options": list(event.get("chosen_options") or []),
                    "params_input": dict(event.get("params_input") or {}),
                    "responded_at": responded_at.isoformat()
                    if isinstance(responded_at, dt.datetime)
                    else responded_at,
                    "responded_by_user": event.get("responded_by_user"),
                    "timedout": bool(event.get("timedout")),
                },
            )
        return super().execute_complete(context, event)


def evaluate() -> dict[str, Any]:
    """Evaluate the night's gates and step the rollout; the approval body when one waits."""
    from churnops.deployment.ops import approval_body, evaluate_night
    from churnops.orchestration.model import actor

    context = get_current_context()
    settings = load_settings()
    nights = _nights(context, settings)
    if not nights:
        log.info("no scored night yet: nothing to evaluate")
        return {"action": "none", "awaiting_approval": False}
    for night in nights:
        outcome = evaluate_night(settings, night, actor())
        if outcome is None:
            log.info("no rollout in progress on %s", night)
            return {"action": "none", "awaiting_approval": False, "night": night.isoformat()}
        if outcome.state.status in ("awaiting_approval", "rolled_back", "finished"):
            break  # an approval waits, or the rollout ended: later nights wait their turn
    assert outcome is not None
    result = outcome.as_dict(settings)
    log.info(
        "rollout of v%s on %s: %s -> %s (%s), challenger share %.0f%%: %s",
        result["challenger_version"],
        night,
        result["phase_before"],
        result["phase"],
        result["status"],
        100 * result["share"],
        "; ".join(result["reasons"]),
    )
    for gate in result["gates"]:
        log.info("gate %s: %s: %s", gate["name"], gate["status"], "; ".join(gate["reasons"]))
    if result["awaiting_approval"]:
        result["approval_body"] = approval_body(settings, result, DRIFT_PAGE)
    return result


def needs_approval(outcome: Mapping[str, Any]) -> bool:
    return bool(outcome.get("awaiting_approval"))


def apply_answer(outcome: Mapping[str, Any]) -> dict[str, Any]:
    """Carry the approver's answer out: Approve enters the next phase; Reject, or no answer
    (the timeout's default is Reject), rolls back. Who, when and why go to the audit."""
    from churnops.deployment.ops import evaluate_night
    from churnops.orchestration.model import actor
    from churnops.rollout import Approval

    settings = load_settings()
    # Read, not passed: a Reject skips the approval's direct downstream tasks.
    answer = get_current_context()["ti"].xcom_pull(task_ids="approval", key=ANSWER_KEY) or {}
    chosen = list(answer.get("chosen_options") or [])
    user = answer.get("responded_by_user") or None
    at = answer.get("responded_at")
    if isinstance(at, str):
        at = dt.datetime.fromisoformat(at)
    reason = str(((answer.get("params_input") or {}).get("reason")) or "")
    approval = Approval(
        approved=chosen == ["Approve"],
        by=(user or {}).get("name") or (user or {}).get("id") if user else None,
        at=at,
        reason=reason,
        timed_out=bool(answer.get("timedout")) or user is None,
    )
    night = dt.date.fromisoformat(str(outcome["night"]))
    result = evaluate_night(settings, night, actor(), approval=approval)
    if result is None:
        raise RuntimeError("the rollout ended while the approval waited: nothing to apply")
    data = result.as_dict(settings)
    log.info("approval %s: rollout %s -> %s", approval.describe(), data["phase"], data["status"])
    return data
