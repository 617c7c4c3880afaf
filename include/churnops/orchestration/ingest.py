"""Task bodies of the ingest stage: Airflow's side of ``churnops.ingest``."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import PokeReturnValue, get_current_context
from airflow.sdk.exceptions import AirflowFailException

from churnops.contracts import LANDING_TABLES
from churnops.orchestration.defaults import run_day
from churnops.settings import load_settings

log = logging.getLogger(__name__)


def drops_arrived() -> PokeReturnValue:
    from churnops.landing import missing_drops

    settings = load_settings()
    day = run_day(get_current_context())
    missing = missing_drops(settings.paths.landing_dir, list(LANDING_TABLES), day)
    if missing:
        log.info("dt=%s: waiting for the drops of %s", day, ", ".join(missing))
    return PokeReturnValue(is_done=not missing)


def validate_and_load_day() -> dict[str, Any]:
    """Ingest every table for the run's day. Rejections fail the task without retries:
    the drop sits in quarantine and a retry would only repeat the verdict."""
    from churnops.ingest import DropRejected, ingest_day
    from churnops.stores import stores_for

    settings = load_settings()
    day = run_day(get_current_context())
    try:
        result = ingest_day(stores_for(settings).raw, settings.paths, day)
    except DropRejected as rejected:
        log.error("%s", rejected)
        raise AirflowFailException(str(rejected)) from rejected
    for name, table in result.loaded.items():
        log.info("%s dt=%s: loaded %d rows", name, day, table.rows_loaded)
    return {"day": day.isoformat(), "rows_loaded": result.rows_loaded}


def window_loaded() -> str:
    """Fail (and retry later) while days of the run's 90-day feature window are missing."""
    from churnops.features import require_window_loaded
    from churnops.stores import stores_for

    settings = load_settings()
    day = run_day(get_current_context())
    require_window_loaded(stores_for(settings).raw, settings.orchestration.nightly_start, day)
    return day.isoformat()
