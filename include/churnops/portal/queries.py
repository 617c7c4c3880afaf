"""What the portal's pages show, read through the warehouse's stores, as plain data.

Every read goes through the stores' own queries (``MonitoringStore``, ``ScoringStore``,
``OpsStore`` on the process's read-only warehouse resource): this module only shapes
their rows. The portal runs inside the Airflow API server and must never hold up the
pipeline: on DuckDB the read-only resource opens the file for the few milliseconds a
page's queries take, and a nightly task holding it raises ``WarehouseBusy`` (the page
says "busy, reload in a minute").
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from churnops.lineage import NightLineage
from churnops.settings import Settings

if TYPE_CHECKING:
    from churnops.storage import Location
    from churnops.stores import Stores

DAY_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
VERSION_PATTERN = re.compile(r"[0-9]{1,9}")
FEATURE_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,79}")
RATIO_CAP = 10.0  # a p-value of 0 would make the score ratio infinite


def parse_day(raw: str) -> dt.date:
    """``YYYY-MM-DD`` and nothing else (no path separators, no dots)."""
    if not DAY_PATTERN.fullmatch(raw):
        raise ValueError(f"{raw!r} is not a date (YYYY-MM-DD)")
    return dt.date.fromisoformat(raw)


def parse_version(raw: str) -> str:
    """A registered model version: digits only."""
    if not VERSION_PATTERN.fullmatch(raw):
        raise ValueError(f"{raw!r} is not a model version (digits)")
    return str(int(raw))


def parse_feature(raw: str) -> str:
    """A feature's column name: letters, digits and underscores."""
    if not FEATURE_PATTERN.fullmatch(raw):
        raise ValueError(f"{raw!r} is not a feature name")
    return raw


def score_ratio(statistic: float | None, p_value: float | None, threshold: float) -> float | None:
    """How far a feature is from its threshold, the same way for every method: 1 is the
    threshold, above 1 drifted. A distance over its threshold; for a p-value method the
    threshold over the p-value (a smaller p-value is more drift). Capped at ``RATIO_CAP``."""
    if p_value is not None:
        if not math.isfinite(p_value) or threshold <= 0:
            return None
        return min(threshold / p_value, RATIO_CAP) if p_value > 0 else RATIO_CAP
    if statistic is None or not math.isfinite(statistic) or threshold <= 0:
        return None
    return min(statistic / threshold, RATIO_CAP)


@dataclass(frozen=True)
class NightFilters:
    """The nights page's filters (and the heatmap's)."""

    since: dt.date | None = None
    until: dt.date | None = None
    model_version: str | None = None
    drifted_only: bool = False

    def query(self) -> dict[str, str]:
        """The filters as query parameters (for links and CSV downloads)."""
        params = {}
        if self.since:
            params["from"] = self.since.isoformat()
        if self.until:
            params["to"] = self.until.isoformat()
        if self.model_version:
            params["version"] = self.model_version
        if self.drifted_only:
            params["drifted"] = "1"
        return params


def parse_filters(params: dict[str, str]) -> NightFilters:
    """Filters from the query string; ValueError naming the bad one."""
    since = parse_day(params["from"]) if params.get("from") else None
    until = parse_day(params["to"]) if params.get("to") else None
    version = parse_version(params["version"]) if params.get("version") else None
    if since and until and since > until:
        raise ValueError(f"the range starts ({since}) after it ends ({until})")
    drifted = params.get("drifted", "") in {"1", "on", "true", "yes"}
    return NightFilters(since, until, version, drifted)


class PortalReader:
    """The stores of the settings' warehouse, read-only, and the reports' location."""

    def __init__(self, settings: Settings, stores: Stores | None = None) -> None:
        from churnops.stores import stores_for

        self.settings = settings
        self.stores = stores or stores_for(settings, read_only=True)

    # ----------------------------------------------------------------- reports
    def reports_root(self) -> Location:
        from churnops.storage import shared_files_for

        return shared_files_for(self.settings).reports_dir / "drift"

    def report_path(self, day: dt.date, version: str) -> Location:
        """Where the nightly monitor saves the Evidently HTML report of ``day`` and
        ``version`` (on the shared files: a local path, or an object-store URL)."""
        from churnops.monitor.drift import report_paths

        return report_paths(self.settings, day, version)[0]

    def report_exists(self, day: dt.date, version: str) -> bool:
        if not VERSION_PATTERN.fullmatch(version):
            return False
        try:
            return self.report_path(day, version).is_file()
        except Exception:  # noqa: BLE001 - an unreachable store: the page still shows
            return False

    # ----------------------------------------------------------------- rollout
    def rollout(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The newest rollout as ``churnops status`` shows it (None: never one), and the
        events of every rollout of the model, oldest first (``ops.rollout_history``)."""
        from churnops.deployment.ops import rollout_status
        from churnops.rollout.store import RolloutStore

        store = RolloutStore(self.stores.warehouse)
        return (
            rollout_status(self.settings, store),
            store.history(self.settings.mlflow.registered_model_name),
        )

    # ----------------------------------------------------------------- lineage
    def lineage(self, day: dt.date) -> NightLineage | None:
        """Which drops, feature build and model version produced the night's predictions,
        from the OpenLineage events Airflow wrote (None: no events for the night)."""
        from churnops.lineage import night_lineage

        return night_lineage(self.settings, day)

    # ----------------------------------------------------------------- drift
    def nights(self, filters: NightFilters, limit: int = 730) -> list[dict[str, Any]]:
        """Drift summaries, newest first."""
        return [
            {**row, "model_version": str(row["model_version"])}
            for row in self.stores.monitoring.drift_nights(
                filters.since, filters.until, filters.model_version, filters.drifted_only, limit
            )
        ]

    def versions(self) -> list[str]:
        return self.stores.monitoring.drift_versions()

    def feature_drift(
        self, filters: NightFilters | None = None, feature: str | None = None
    ) -> list[dict[str, Any]]:
        """Feature verdicts, oldest night first, each with its ``ratio`` (score over
        threshold) and ``score`` (the p-value, or the distance)."""
        f = filters or NightFilters()
        rows = self.stores.monitoring.feature_drift_rows(f.since, f.until, f.model_version, feature)
        return [_with_scores(row) for row in rows]

    def night(self, day: dt.date) -> list[dict[str, Any]]:
        return [_with_scores(row) for row in self.stores.monitoring.night_drift(day)]

    def features(self) -> list[str]:
        return self.stores.monitoring.feature_names()

    def histograms(self, day: dt.date, feature: str) -> list[dict[str, Any]]:
        return self.stores.monitoring.histograms(day, feature)

    # ----------------------------------------------------------------- performance
    def cohorts(self) -> list[dict[str, Any]]:
        return self.stores.monitoring.cohorts()

    def estimates(self) -> list[dict[str, Any]]:
        """Every night's estimate, oldest first, with its realized churn rate and the
        prior-drift findings (which of the two rates moved)."""
        from churnops.estimation import prior_drift

        rows = []
        for row in self.stores.monitoring.estimates():
            realized_rows = row["realized_rows"]
            realized_rate = row["realized_churners"] / realized_rows if realized_rows else None
            findings = prior_drift(
                row["mean_probability"],
                row["base_rate"],
                row["rows"],
                realized_rate=realized_rate,
                realized_rows=realized_rows,
            ).findings
            rows.append({**row, "realized_rate": realized_rate, "prior_drift": list(findings)})
        return rows

    # ----------------------------------------------------------------- scores
    def band_mix(self) -> list[dict[str, Any]]:
        return self.stores.scoring.band_mix()

    def score_trend(self) -> list[dict[str, Any]]:
        return self.stores.scoring.score_trend()

    # ----------------------------------------------------------------- retraining
    def requests(self) -> list[dict[str, Any]]:
        return self.stores.monitoring.retrain_requests()

    def evaluations(self) -> tuple[int, int]:
        return self.stores.monitoring.retrain_evaluations()

    def follow_ups(self) -> list[dict[str, Any]]:
        return self.stores.monitoring.follow_ups()[::-1]

    def populations(self) -> list[dict[str, Any]]:
        return self.stores.monitoring.drift_populations()

    def decisions(self) -> list[dict[str, Any]]:
        """Champion/challenger decisions, newest first, with both models' metrics side by
        side (``metrics``: name, champion, challenger, difference)."""
        from churnops.registry.audit import read_decisions

        decisions = []
        for record in read_decisions(self.settings, ops=self.stores.ops):
            champion = record.champion_metrics or {}
            challenger = record.challenger_metrics
            metrics = []
            for name in DECISION_METRICS:
                if name not in challenger and name not in champion:
                    continue
                a: Any = champion.get(name)
                b: Any = challenger.get(name)
                diff = b - a if _is_number(a) and _is_number(b) else None
                metrics.append({"metric": name, "champion": a, "challenger": b, "difference": diff})
            decisions.append({**vars(record), "metrics": metrics})
        return decisions

    def alias_history(self) -> list[dict[str, Any]]:
        from churnops.registry.audit import read_audit_log

        return [vars(move) for move in read_audit_log(self.settings, ops=self.stores.ops)]


# What a decision compares, in this order (ModelMetrics' names).
DECISION_METRICS = (
    "auc",
    "recall",
    "precision",
    "f1",
    "brier",
    "threshold",
    "threshold_rule",
    "validation_auc",
    "train_auc",
    "test_rows",
    "test_positives",
    "test_start",
    "test_end",
)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _with_scores(row: dict[str, Any]) -> dict[str, Any]:
    statistic, p_value, threshold = row["statistic"], row["p_value"], float(row["threshold"])
    return {
        **row,
        "model_version": str(row["model_version"]),
        "score": p_value if p_value is not None else statistic,
        "ratio": score_ratio(statistic, p_value, threshold),
    }
