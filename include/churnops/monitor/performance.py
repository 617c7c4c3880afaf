"""How the served scores did, once their labels have matured.

A scoring night D is a cohort: the customers scored that night and the scores they were
actually served (champion, or challenger for the canary). Its labels (churned within 90
days) mature on D + 90, when the nightly builds ``fct_churn_labels`` for D. Each night
computes every matured cohort that has no row yet, and recomputes the cohort that matured
tonight, so backfills and reruns converge on the same table.

Recall, precision and F1 use each row's serving model's operating threshold (the one
chosen on its validation window when it was trained, a tag on the registered version).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from churnops.monitor.store import COHORT_COLUMNS, COHORT_PERFORMANCE_TABLE, MonitoringStore
from churnops.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
from churnops.warehouse import utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CohortPerformance:
    as_of_date: dt.date
    model_versions: str
    rows: int
    churners: int
    auc: float | None
    recall: float | None
    precision: float | None
    f1: float | None
    threshold: float

    def describe(self) -> str:
        auc = "n/a (one class only)" if self.auc is None else f"{self.auc:.3f}"
        return (
            f"cohort {self.as_of_date} (served by v{self.model_versions}): AUC {auc}, "
            f"recall {self.recall or 0:.3f}, precision {self.precision or 0:.3f} on "
            f"{self.rows:,} customers, {self.churners:,} churned"
        )


def _thresholds(settings: Settings, versions: set[str]) -> dict[str, float]:
    from churnops.registry.champion import TAG_THRESHOLD
    from churnops.registry.tracking import mlflow_client

    client = mlflow_client(settings)
    name = settings.mlflow.registered_model_name
    found = {}
    for version in versions:
        tags = client.get_model_version(name, version).tags
        # A version registered without one: 0.5 on the calibrated probability.
        found[version] = float(tags.get(TAG_THRESHOLD, 0.5))
    return found


def update_cohort_performance(
    settings: Settings, monitoring: MonitoringStore, as_of_date: dt.date
) -> list[CohortPerformance]:
    """Compute the cohorts matured by night ``as_of_date`` that need it; persist them."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    horizon = settings.train.label_horizon_days
    matured_by = as_of_date - dt.timedelta(days=horizon)
    frame = monitoring.cohorts_to_compute(matured_by)
    if frame.empty:
        return []
    thresholds = _thresholds(settings, set(frame["model_version"]))
    frame["threshold"] = frame["model_version"].map(thresholds)
    frame["flagged"] = frame["churn_probability"] >= frame["threshold"]
    results = []
    for as_of, cohort in frame.groupby("as_of_date", sort=True):
        labels = cohort["churned"].astype(int).to_numpy()
        both_classes = len(np.unique(labels)) == 2
        flagged = cohort["flagged"].to_numpy()
        results.append(
            CohortPerformance(
                as_of_date=pd.Timestamp(str(as_of)).date(),
                model_versions=",".join(sorted(cohort["model_version"].unique(), key=int)),
                rows=len(cohort),
                churners=int(labels.sum()),
                auc=float(roc_auc_score(labels, cohort["churn_probability"]))
                if both_classes
                else None,
                recall=float(recall_score(labels, flagged, zero_division=0)),
                precision=float(precision_score(labels, flagged, zero_division=0)),
                f1=float(f1_score(labels, flagged, zero_division=0)),
                # One threshold per cohort for the chart: the one most rows were served at.
                threshold=float(cohort["threshold"].mode().iloc[0]),
            )
        )
    if results:
        import pyarrow as pa

        computed_at = utc_now()
        monitoring.replace_cohorts(
            pa.Table.from_pylist([{**vars(r), "computed_at": computed_at} for r in results])
        )
        monitoring.record_realized(_realized_by_version(frame, computed_at))
    for r in results:
        log.info("%s", r.describe())
    return results


def _realized_by_version(frame: pd.DataFrame, realized_at: dt.datetime) -> list[dict]:
    """Per night and serving version: the realized measures of the rows that version
    served, to sit beside the estimate made for them that night."""
    import pandas as pd

    from churnops.estimation import realized_performance

    rows = []
    for (as_of, version), served in frame.groupby(["as_of_date", "model_version"], sort=True):
        realized = realized_performance(
            served["churn_probability"].to_numpy(),
            served["churned"].astype(int).to_numpy(),
            float(served["threshold"].iloc[0]),
        )
        rows.append(
            {
                "as_of_date": pd.Timestamp(str(as_of)).date(),
                "model_version": str(version),
                "realized_rows": realized.rows,
                "realized_churners": realized.churners,
                "realized_auc": realized.auc,
                "realized_precision": realized.precision,
                "realized_recall": realized.recall,
                "realized_f1": realized.f1,
                "realized_at": realized_at,
            }
        )
    return rows


def latest_cohort(monitoring: MonitoringStore, on_or_before: dt.date) -> CohortPerformance | None:
    """The newest matured cohort at or before ``on_or_before`` (None before any matured)."""
    rows = monitoring.rows(
        f"select {', '.join(COHORT_COLUMNS)} from {COHORT_PERFORMANCE_TABLE} "
        "where as_of_date <= ? order by as_of_date desc limit 1",
        [on_or_before],
    )
    return CohortPerformance(**rows[0]) if rows else None
