"""The MLOps status report (``churnops status``): who is champion, since when, why.

Reads only: the MLflow registry (aliases and versions) and the warehouse's audit,
decision, scoring and monitoring tables. Works on an empty installation (everything
"none yet").
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from churnops.settings import LABEL_HORIZON_DAYS, Settings

if TYPE_CHECKING:
    from churnops.estimation import PriorDrift
    from churnops.monitor.store import MonitoringStore


def collect_status(settings: Settings) -> dict[str, Any]:
    """Everything the report shows, as plain data (``--json`` prints exactly this)."""
    report: dict[str, Any] = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model_name": settings.mlflow.registered_model_name,
        # The policy's limits in force, so the report paints against them.
        "auc_floor": settings.retraining.min_cohort_auc,
        "drifted_features_limit": settings.retraining.max_drifted_features,
        "aliases": {},
        "champion": None,
        "recent_decisions": [],
        "audit_log": [],
        "last_nightly_run": None,
        "drift": None,
        "latest_cohort": None,
        "latest_estimate": None,
        "estimated_vs_realized": [],
        "triggers": [],
        "follow_ups": [],
    }
    from churnops.registry import current_aliases, read_audit_log, read_decisions
    from churnops.stores import stores_for

    stores = stores_for(settings, read_only=True)
    aliases = current_aliases(settings) if settings.paths.mlflow_dir.exists() else {}
    report["aliases"] = aliases
    audit = read_audit_log(settings, ops=stores.ops)
    decisions = read_decisions(settings, ops=stores.ops)
    champion = aliases.get("champion")
    if champion:
        since = next(
            (
                m.event_at
                for m in reversed(audit)
                if m.alias == "champion" and m.to_version == champion
            ),
            None,
        )
        trained = next((d for d in decisions if d.challenger_version == champion), None)
        report["champion"] = {
            "version": champion,
            "since": since,
            "test_auc_at_training": (trained.challenger_metrics or {}).get("auc")
            if trained
            else None,
        }
    report["recent_decisions"] = [
        {
            "at": d.decided_at,
            "challenger": d.challenger_version,
            "champion": d.champion_version,
            "action": d.action,
            "reasons": d.reasons,
        }
        for d in decisions[:5]  # newest first
    ]
    report["audit_log"] = [
        {
            "at": m.event_at,
            "alias": m.alias,
            "from": m.from_version,
            "to": m.to_version,
            "action": m.action,
            "reason": m.reason,
            "actor": m.actor,
        }
        for m in audit[:10]  # newest first
    ]
    report.update(_monitoring(stores.monitoring))
    report["rollout"] = _rollout(settings, stores.warehouse)
    if report["champion"] and report["latest_cohort"]:
        report["champion"]["auc_latest_matured_cohort"] = report["latest_cohort"]["auc"]
    return report


def _rollout(settings: Settings, warehouse: Any) -> dict[str, Any] | None:
    from churnops.deployment.ops import rollout_status
    from churnops.rollout.store import RolloutStore

    return rollout_status(settings, RolloutStore(warehouse))


def _monitoring(monitoring: MonitoringStore) -> dict[str, Any]:
    """The last scoring run, the latest drift verdict, cohort and retraining evaluations."""
    from churnops.monitor.store import (
        COHORT_PERFORMANCE_TABLE,
        DRIFT_SUMMARY_TABLE,
        RETRAIN_REQUESTS_TABLE,
    )
    from churnops.score.store import SCORING_RUNS_TABLE

    last_run = monitoring.rows(
        f"select as_of_date, state, rows_scored, canary_rows, shadow_rows, champion_version, "
        f"challenger_version, seconds, finished_at, message from {SCORING_RUNS_TABLE} "
        "order by finished_at desc limit 1",
    )
    drift = monitoring.rows(
        f"select as_of_date, model_version, features_total, features_drifted, share_drifted, "
        f"drifted_features, prediction_drifted, html_path from {DRIFT_SUMMARY_TABLE} "
        "order by as_of_date desc, computed_at desc limit 1",
    )
    cohort = monitoring.rows(
        f"select as_of_date, model_versions, rows, churners, auc, recall, precision, f1 "
        f"from {COHORT_PERFORMANCE_TABLE} order by as_of_date desc limit 1",
    )
    estimates = monitoring.estimates()
    follow_ups = monitoring.follow_ups()
    triggers = monitoring.rows(
        f"select as_of_date, fired, held_by_cooldown, reasons, champion_version "
        f"from {RETRAIN_REQUESTS_TABLE} where triggered order by as_of_date desc limit 5",
    )
    return {
        "last_nightly_run": last_run[0] if last_run else None,
        "drift": drift[0] if drift else None,
        "latest_cohort": cohort[0] if cohort else None,
        "latest_estimate": estimates[-1] if estimates else None,
        # Every matured night: the estimate made that night beside what its labels say.
        "estimated_vs_realized": [
            {
                "as_of_date": e["as_of_date"],
                "model_version": e["model_version"],
                "estimated_auc": e["estimated_auc"],
                "estimated_auc_lower": e["estimated_auc_lower"],
                "estimated_auc_upper": e["estimated_auc_upper"],
                "realized_auc": e["realized_auc"],
                "within_band": _within(e),
                "predicted_churn_rate": e["mean_probability"],
                "realized_churn_rate": e["realized_churners"] / e["realized_rows"]
                if e["realized_rows"]
                else None,
                "prior_drift": list(_prior_drift(e).findings),
            }
            for e in estimates
            if e["realized_at"] is not None
        ],
        "triggers": triggers,
        "follow_ups": follow_ups,
    }


def _prior_drift(estimate: dict[str, Any]) -> PriorDrift:
    from churnops.estimation import prior_drift

    churners, rows = estimate["realized_churners"], estimate["realized_rows"]
    return prior_drift(
        estimate["mean_probability"],
        estimate["base_rate"],
        estimate["rows"],
        realized_rate=churners / rows if rows else None,
        realized_rows=rows,
    )


def _within(estimate: dict[str, Any]) -> bool | None:
    lower, upper, realized = (
        estimate["estimated_auc_lower"],
        estimate["estimated_auc_upper"],
        estimate["realized_auc"],
    )
    if lower is None or upper is None or realized is None:
        return None
    return bool(lower <= realized <= upper)


def _render_rollout(rollout: dict[str, Any] | None, paint: Any) -> list[str]:
    if not rollout:
        return ["Rollout          : none"]
    ok = {"rolled_back": False, "awaiting_approval": None}.get(rollout["status"], True)
    lines = [
        f"Rollout          : v{rollout['challenger_version']} vs champion "
        f"v{rollout['champion_version'] or '-'}: "
        + paint(f"{rollout['phase']} ({rollout['status']})", ok)
        + f", challenger serves {rollout['share']:.0%}, night {rollout['nights_in_phase']}"
        f" of {rollout['phase_nights']} in the phase",
        f"                   next: {rollout['next']}; gate to watch: {rollout['next_gate']}",
    ]
    for gate in rollout["gates"]:
        reasons = "; ".join(gate["reasons"])
        if len(reasons) > 150:
            reasons = reasons[:147] + "..."
        verdict = {"pass": True, "fail": False}.get(gate["status"])
        lines.append(
            f"                   {gate['name']}: "
            + paint(gate["status"], verdict)
            + f" ({reasons})"
        )
    return lines


def render_status(report: dict[str, Any], color: bool = False) -> str:
    def bold(text: str) -> str:
        return f"\033[1m{text}\033[0m" if color else text

    def paint(text: str, ok: bool | None) -> str:
        """Green for fine, red for needs attention, plain when unknown or no colours."""
        if not color or ok is None:
            return text
        return f"\033[{32 if ok else 31}m{text}\033[0m"

    lines = [bold(f"MODEL STATUS: {report['model_name']}"), "=" * 60]
    champion = report["champion"]
    if champion:
        auc = champion["test_auc_at_training"]
        lines.append(
            f"Production model : v{champion['version']} (champion since {champion['since'] or '?'})"
        )
        lines.append(f"AUC at training  : {auc:.3f}" if auc is not None else "AUC at training  : ?")
        cohort = report["latest_cohort"]
        if cohort and cohort["auc"] is not None:
            lines.append(
                "AUC latest cohort: "
                + paint(f"{cohort['auc']:.3f}", cohort["auc"] >= report["auc_floor"])
                + f" (scored {cohort['as_of_date']}, labels matured; {cohort['rows']:,} "
                f"customers, {cohort['churners']:,} churned)"
            )
        else:
            lines.append(
                f"AUC latest cohort: no matured cohort yet (labels take {LABEL_HORIZON_DAYS} days)"
            )
        estimate = report["latest_estimate"]
        if estimate and estimate["estimated_auc"] is not None:
            lines.append(
                "AUC estimated    : "
                + paint(
                    f"{estimate['estimated_auc']:.3f}",
                    estimate["estimated_auc"] >= report["auc_floor"],
                )
                + f" [{estimate['estimated_auc_lower']:.3f}, "
                f"{estimate['estimated_auc_upper']:.3f}] (night {estimate['as_of_date']}, "
                f"v{estimate['model_version']}, from its scores alone; predicted churn rate "
                f"{estimate['mean_probability']:.1%} against {estimate['base_rate']:.1%} "
                "at training)"
            )
    else:
        lines.append("Production model : none yet (train one: churnops train)")
    drift = report["drift"]
    if drift:
        drifted = drift["features_drifted"]
        lines.append(
            "Drift state      : "
            + paint(
                f"{drifted} of {drift['features_total']} features drifted",
                drifted < report["drifted_features_limit"],
            )
            + f" on {drift['as_of_date']} (v{drift['model_version']}"
            + (", prediction drifted)" if drift["prediction_drifted"] else ")")
        )
        if drift["drifted_features"]:
            lines.append(
                "                   "
                + ", ".join(drift["drifted_features"][:8])
                + (" ..." if len(drift["drifted_features"]) > 8 else "")
            )
    else:
        lines.append("Drift state      : no drift report yet")
    run = report["last_nightly_run"]
    if run:
        lines.append(
            f"Last nightly run : {run['as_of_date']}, "
            + paint(run["state"], run["state"] == "scored")
            + f", {run['rows_scored']:,} scored in {run['seconds']:.1f} s "
            f"(finished {run['finished_at']:%Y-%m-%d %H:%M} UTC)"
        )
    else:
        lines.append("Last nightly run : none yet")
    triggers = report["triggers"]
    if triggers:
        for i, t in enumerate(triggers[:3]):  # newest first
            label = "Triggers fired   : " if i == 0 else " " * 19
            state = "retrain requested" if t["fired"] else "held by the cooldown"
            reasons = "; ".join(r for r in t["reasons"] if "cooldown" not in r)
            if len(reasons) > 160:
                reasons = reasons[:157] + "..."
            lines.append(f"{label}{t['as_of_date']} " + paint(state, not t["fired"]))
            lines.append(f"                     {reasons}")
    else:
        lines.append("Triggers fired   : none")
    for i, f in enumerate(report["follow_ups"][-3:]):
        label = "Follow-up retrain: " if i == 0 else " " * 19
        lines.append(f"{label}{f['due_on']} (scheduled by the drift of {f['requested_on']})")
    decisions = report["recent_decisions"]
    if decisions:
        d = decisions[0]
        lines.append(
            f"Action taken     : {d['action']} (v{d['challenger']} vs v{d['champion'] or '-'}, "
            f"{d['at']:%Y-%m-%d %H:%M})"
        )
    lines.extend(_render_rollout(report.get("rollout"), paint))
    aliases = report["aliases"]
    lines.append(
        "Aliases          : "
        + (", ".join(f"{k}=v{v}" for k, v in sorted(aliases.items())) or "none")
    )
    matured = report["estimated_vs_realized"]
    if matured:
        lines.append("")
        lines.append(bold("Estimated against realized AUC (matured nights)"))
        for e in matured[-10:]:
            realized = "n/a" if e["realized_auc"] is None else f"{e['realized_auc']:.3f}"
            band = (
                ""
                if e["estimated_auc_lower"] is None
                else f" [{e['estimated_auc_lower']:.3f}, {e['estimated_auc_upper']:.3f}]"
            )
            verdict = {True: "in the band", False: "OUTSIDE the band", None: ""}[e["within_band"]]
            lines.append(
                f"  {e['as_of_date']}  v{e['model_version']}: estimated "
                f"{e['estimated_auc']:.3f}{band}, realized {realized} "
                + paint(verdict, e["within_band"])
            )
            lines.extend(f"      {finding}" for finding in e["prior_drift"])
        if len(matured) > 10:
            lines.append(f"  ... {len(matured) - 10} earlier nights in `churnops status --json`")
    lines.append("")
    lines.append(bold("Recent decisions"))
    for d in report["recent_decisions"] or [{"none": True}]:
        if d.get("none"):
            lines.append("  none yet")
            continue
        lines.append(f"  {d['at']}  v{d['challenger']} vs v{d['champion'] or '-'}: {d['action']}")
        lines.extend(f"      {reason}" for reason in d["reasons"])
    lines.append("")
    lines.append(bold("Alias moves (audit log)"))
    for m in report["audit_log"] or [{"none": True}]:
        if m.get("none"):
            lines.append("  none yet")
            continue
        lines.append(
            f"  {m['at']}  {m['alias']}: v{m['from'] or '-'} -> v{m['to'] or '-'} "
            f"({m['action']} by {m['actor']}: {m['reason']})"
        )
    return "\n".join(lines)
