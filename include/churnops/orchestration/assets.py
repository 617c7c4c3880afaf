"""Every Airflow Asset of churnops, defined once."""

from __future__ import annotations

from airflow.sdk import Asset

# The nightly monitoring decided the model needs retraining; extra carries the reasons.
RETRAIN_REQUESTED = Asset(name="retrain_requested", uri="churnops://model/churn/retrain_requested")
# A new champion was promoted; extra carries the version and the decision.
MODEL_PROMOTED = Asset(name="model_promoted", uri="churnops://model/churn/model_promoted")
# A night's scores were published (extra: as_of_date); the rollout evaluates the night.
SCORES_PUBLISHED = Asset(name="scores_published", uri="churnops://scoring/churn/scores_published")
