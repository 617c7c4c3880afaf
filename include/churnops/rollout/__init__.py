"""The phased rollout of a challenger in batch scoring: shadow -> canary -> ramp -> full.

- :mod:`churnops.rollout.machine`: the pure state machine (state + evidence -> transition)
  and :func:`serving_share`, the one function that says which share of customers the
  challenger serves (the nightly scoring plan and the real-time service call it);
- :mod:`churnops.rollout.gates`: the gates, pure functions of a night's numbers;
- :mod:`churnops.deployment.evidence`: reads those numbers from the warehouse and registry;
- :mod:`churnops.rollout.store`: ``ops.rollout_history``;
- :mod:`churnops.deployment.ops`: carries transitions out (aliases, tags, audit).
"""

from churnops.rollout.machine import (
    Approval,
    Evidence,
    GateResult,
    RolloutState,
    Transition,
    needs_approval,
    phases,
    serving_share,
    step,
)

__all__ = [
    "Approval",
    "Evidence",
    "GateResult",
    "RolloutState",
    "Transition",
    "needs_approval",
    "phases",
    "serving_share",
    "step",
]
