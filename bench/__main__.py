"""``python -m bench [group ...]``: the groups, in the order ``make bench`` runs them."""

from __future__ import annotations

import sys

from bench.celery import bench_celery
from bench.dags import bench_dags
from bench.drift import bench_drift
from bench.engines import bench_engines
from bench.gate import bench_gate
from bench.harness import Group, run_groups
from bench.nightly import bench_nightly
from bench.score import bench_score
from bench.serve import bench_serve
from bench.simulate import bench_simulate
from bench.train import bench_train

GROUPS: dict[str, Group] = {
    "simulate": bench_simulate,
    "nightly": bench_nightly,
    "gate": bench_gate,
    "dags": bench_dags,
    "train": bench_train,
    "score": bench_score,
    "drift": bench_drift,
    "engines": bench_engines,
    "serve": bench_serve,
    "celery": bench_celery,
}

if __name__ == "__main__":
    sys.exit(run_groups(GROUPS, sys.argv[1:]))
