"""A small simulated history with a trained champion: the shared start of the scoring,
monitoring and status tests (about 45 s: 2,000 customers over 420 days)."""

from __future__ import annotations

from pathlib import Path

from churnops.settings import Settings, load_settings

TRAINED_ENV = {
    "CHURNOPS_SIM_CUSTOMERS": "2000",
    "CHURNOPS_SIM_DAYS": "420",
    # The tests on this state place a second version's challenger alias (and its canary)
    # by hand: a retrain that wins must not start a rollout of its own beside them.
    "CHURNOPS_ROLLOUT_ENABLED": "false",
}


def trained_state(state: Path, **env: str) -> Settings:
    """Bootstrap the history into ``state`` and train the first champion (v1)."""
    from churnops.pipeline import bootstrap_history
    from churnops.retrain import retrain
    from churnops.stores import stores_for

    settings = load_settings({"CHURNOPS_STATE_DIR": str(state), **TRAINED_ENV, **env})
    bootstrap_history(settings, say=lambda _line: None)
    outcome = retrain(
        settings, stores_for(settings).features, actor="pytest", reason="first champion"
    )
    assert outcome.action == "promote", outcome.summary
    return settings
