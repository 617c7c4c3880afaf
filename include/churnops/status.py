"""The MLOps status report (``churnops status``): who is champion, since when, why.

Reads only: the MLflow registry (aliases and versions) and the warehouse's audit and
decision tables. Works on an empty installation (everything "none yet").
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from churnops.settings import Settings


def collect_status(settings: Settings) -> dict[str, Any]:
    """Everything the report shows, as plain data (``--json`` prints exactly this)."""
    report: dict[str, Any] = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model_name": settings.mlflow.registered_model_name,
        "aliases": {},
        "champion": None,
        "recent_decisions": [],
        "audit_log": [],
    }
    if not settings.warehouse.duckdb_path.exists() and not settings.paths.mlflow_dir.exists():
        return report
    from churnops.registry import current_aliases, read_audit_log, read_decisions

    aliases = current_aliases(settings) if settings.paths.mlflow_dir.exists() else {}
    report["aliases"] = aliases
    audit = read_audit_log(settings) if settings.warehouse.duckdb_path.exists() else []
    decisions = read_decisions(settings) if settings.warehouse.duckdb_path.exists() else []
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
    return report


def render_status(report: dict[str, Any], color: bool = False) -> str:
    def bold(text: str) -> str:
        return f"\033[1m{text}\033[0m" if color else text

    lines = [bold(f"MODEL STATUS: {report['model_name']}"), "=" * 60]
    champion = report["champion"]
    if champion:
        auc = champion["test_auc_at_training"]
        lines.append(
            f"Production model : v{champion['version']} (champion since {champion['since'] or '?'})"
        )
        lines.append(f"AUC at training  : {auc:.3f}" if auc is not None else "AUC at training  : ?")
    else:
        lines.append("Production model : none yet (train one: churnops train)")
    aliases = report["aliases"]
    lines.append(
        "Aliases          : "
        + (", ".join(f"{k}=v{v}" for k, v in sorted(aliases.items())) or "none")
    )
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
