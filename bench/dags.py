"""``dags``: what the dag-processor pays to parse each DAG file, cold and warm."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.harness import PROJECT_DIR, measure


def parse_dag_file(path: str, airflow_home: str) -> dict:
    """What the dag-processor pays: the first parse in a process (with Airflow's one-off
    plugin discovery) and a further parse of the same file."""
    os.environ["AIRFLOW_HOME"] = airflow_home  # read at import: never the user's ~/airflow
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.dag_processing.dagbag import DagBag

    began = time.perf_counter()
    bag = DagBag(path)
    cold = time.perf_counter() - began
    began = time.perf_counter()
    DagBag(path)
    warm_ms = (time.perf_counter() - began) * 1000
    return {"seconds": cold, "warm_ms": warm_ms, "dags": len(bag.dag_ids)}


def bench_dags(tmp: Path) -> list[tuple[str, dict]]:
    dags_dir = PROJECT_DIR / "dags"
    return [
        (
            f"parse {path.name} (cold; warm_ms = a further parse)",
            measure(parse_dag_file, str(path), str(tmp / "airflow")),
        )
        for path in sorted(dags_dir.glob("*.py"))
    ]
