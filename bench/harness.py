"""What every benchmark group shares: the bench's settings from the environment, a
measurement in a child process of its own, the bench state's settings and stores, the
progress records of the resumable set-ups, and the printed table.

Every environment variable the bench reads is read here, in the block below, and nowhere
else in ``bench/``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue as queue_module
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from churnops.settings import load_settings

if TYPE_CHECKING:
    from churnops.features.store import FeatureStore
    from churnops.ingest.store import RawStore
    from churnops.settings import Settings

PROJECT_DIR = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------- environment
os.environ.setdefault("DO_NOT_TRACK", "true")
# The bench's own settings (CHURNOPS_BENCH_*), declared with every other churnops setting.
_BENCH = load_settings().bench
# The size: customers simulated (and rows of the gate's drop).
BENCH_CUSTOMERS = _BENCH.customers
# Days of history before the nightly group's night.
NIGHTLY_HISTORY_DAYS = _BENCH.history_days
# Folders that keep a long set-up between runs (else it goes to the run's temporary
# folder), by the variable that names them (the messages say which to change).
NIGHTLY_STATE_ENV = "CHURNOPS_BENCH_NIGHTLY_STATE"
TRAIN_STATE_ENV = "CHURNOPS_BENCH_TRAIN_STATE"
DRIFT_STATE_ENV = "CHURNOPS_BENCH_DRIFT_STATE"
_KEPT_STATES = {
    NIGHTLY_STATE_ENV: _BENCH.nightly_state,
    TRAIN_STATE_ENV: _BENCH.train_state,
    DRIFT_STATE_ENV: _BENCH.drift_state,
}


def kept_state(env: str, default: Path) -> str:
    """The folder the setting ``env`` names (a set-up kept between runs), else ``default``."""
    return str(_KEPT_STATES[env] or default)


def postgres_server() -> str:
    """``CHURNOPS_BENCH_POSTGRES``: the server the engines group creates databases on."""
    return _BENCH.postgres


def selected_engine_stages(known: tuple[str, ...]) -> list[str]:
    """``CHURNOPS_BENCH_ENGINE_STAGES`` (checked against ``known`` when it is loaded)."""
    return [stage for stage in _BENCH.engine_stages if stage in known]


def quiet_dbt() -> None:
    """dbt's per-node log would bury the set-ups' progress lines (errors still print)."""
    os.environ.setdefault("DBT_QUIET", "true")


# ----------------------------------------------------------------------------- measuring
_REFUSED = "refused"  # the key of a child's refusal in place of its figures


class MeasureFailed(RuntimeError):
    """A measured step refused to run (``SystemExit`` with a message: a kept state that does
    not fit, a missing server); the message says what to change."""


def _child(fn: Callable[..., dict], args: tuple, queue: mp.Queue) -> None:
    began = time.perf_counter()
    try:
        figures = fn(*args)
    except SystemExit as refused:
        if not isinstance(refused.code, str):
            raise
        queue.put({_REFUSED: refused.code})  # one line for the parent, no traceback
        sys.exit(1)
    figures.setdefault("seconds", time.perf_counter() - began)
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(figures)


def measure(fn: Callable[..., dict], *args: object) -> dict:
    """``fn(*args)``'s figures, run in a fresh child process so its peak memory (max RSS)
    is its own; ``seconds`` is the child's wall time unless ``fn`` gives its own."""
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    while True:  # a child that dies (an exception, killed) sends nothing: do not wait forever
        try:
            figures = queue.get(timeout=5)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                try:
                    figures = queue.get(timeout=1)
                    break
                except queue_module.Empty:
                    raise RuntimeError(
                        f"{getattr(fn, '__name__', fn)} failed in its child process "
                        f"(exit code {proc.exitcode}): see its traceback above"
                    ) from None
    proc.join()
    if _REFUSED in figures:
        raise MeasureFailed(f"{getattr(fn, '__name__', fn)}: {figures[_REFUSED]}")
    return figures


# ----------------------------------------------------------------------------- bench state
def bench_settings(state: str, dsn: str | None = None, mlflow_dir: str | None = None) -> Settings:
    """The bench state's settings: its DuckDB file, or with ``dsn`` a PostgreSQL warehouse
    (the state dir's landing drops, reports and compiled models are the same either way);
    with ``mlflow_dir`` a registry of its own."""
    from churnops.settings import load_settings

    env = {"CHURNOPS_STATE_DIR": state, "CHURNOPS_SIM_CUSTOMERS": str(BENCH_CUSTOMERS)}
    if dsn is not None:
        env |= {"CHURNOPS_WAREHOUSE": "postgres", "CHURNOPS_POSTGRES_DSN": dsn}
    if mlflow_dir is not None:
        mlflow = Path(mlflow_dir)
        env |= {
            "CHURNOPS_MLFLOW_TRACKING_URI": f"sqlite:///{mlflow / 'mlflow.db'}",
            "CHURNOPS_MLFLOW_ARTIFACT_LOCATION": (mlflow / "artifacts").as_uri(),
        }
    return load_settings(env)


def raw_store(settings: Settings) -> RawStore:
    from churnops.stores import stores_for

    return stores_for(settings).raw


def feature_store(settings: Settings) -> FeatureStore:
    from churnops.stores import stores_for

    return stores_for(settings).features


def read_progress(path: Path) -> dict:
    """A resumable set-up's record of what it has done (empty on a first run)."""
    return json.loads(path.read_text()) if path.exists() else {}


def write_progress(path: Path, progress: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(progress, indent=2))
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- printing
Group = Callable[[Path], Iterable[tuple[str, dict]]]


def _figure(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def figure_line(label: str, figures: dict) -> str:
    """One printed row: the label, seconds, peak memory, then every other figure."""
    extra = "  ".join(
        f"{k}={_figure(v)}" for k, v in figures.items() if k not in {"seconds", "peak_rss_mb"}
    )
    return (
        f"{label:<72} {figures['seconds']:8.2f} s  peak {figures['peak_rss_mb']:7.0f} MB  {extra}"
    )


def run_groups(groups: Mapping[str, Group], selected: list[str]) -> int:
    """Run the ``selected`` groups (all when none) in order, in one temporary folder that
    is deleted afterwards, printing each figure as soon as it is measured."""
    names = selected or list(groups)
    unknown = [n for n in names if n not in groups]
    if unknown:
        print(f"unknown benchmark group(s) {unknown}; known: {list(groups)}", file=sys.stderr)
        return 2
    print(f"churnops benchmarks on {os.cpu_count()} cores ({', '.join(names)})")
    with tempfile.TemporaryDirectory(prefix="churnops-bench-") as tmp:
        for name in names:
            print(f"\n== {name}", flush=True)
            try:
                for label, figures in groups[name](Path(tmp)):
                    print(figure_line(label, figures), flush=True)
            except MeasureFailed as refused:
                print(f"bench {name} stopped: {refused}", file=sys.stderr)
                return 1
    return 0
