"""Carrying the rollout out (``churnops.rollout`` decides): read a night's evidence from
the warehouse and the registry (:mod:`churnops.deployment.evidence`), step the machine,
move the aliases and record it (:mod:`churnops.deployment.ops`). Its own package because
it reads what scoring and monitoring write, while scoring only reads the rollout's share.
"""
