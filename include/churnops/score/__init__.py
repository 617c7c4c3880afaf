"""Nightly batch scoring: the champion scores every active customer, a challenger (if any)
scores them in the shadow, and a stable canary share may be served the challenger."""

from churnops.score.nightly import ScoringResult, score_day

__all__ = ["ScoringResult", "score_day"]
