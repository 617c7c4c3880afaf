"""Task bodies of the ingest stage: Airflow's side of ``churnops.ingest``."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import PokeReturnValue, get_current_context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from churnops.contracts import LANDING_TABLES
from churnops.orchestration import lineage
from churnops.orchestration.defaults import run_day
from churnops.orchestration.feed import unreachable_night
from churnops.orchestration.outages import reports_outages
from churnops.settings import load_settings

log = logging.getLogger(__name__)


@reports_outages
def drops_arrived() -> PokeReturnValue:
    """The first task of a night: a worker that cannot see the shared files fails here."""
    from churnops.landing import missing_drops
    from churnops.storage import shared_files_for

    settings = load_settings()
    day = run_day(get_current_context())
    files = shared_files_for(settings).check()
    missing = missing_drops(files.landing_dir, list(LANDING_TABLES), day)
    if missing and (unreachable := unreachable_night(day)):
        raise AirflowSkipException(unreachable)  # the demo feed cannot bring them: no wait
    if missing:
        log.info("dt=%s: waiting for the drops of %s under %s", day, ", ".join(missing), files.url)
    else:
        lineage.report(inputs=lineage.drops(files, day))
    return PokeReturnValue(is_done=not missing)


@reports_outages
def validate_and_load_day() -> dict[str, Any]:
    """Ingest every table for the run's day. Rejections fail the task without retries:
    the drop sits in quarantine and a retry would only repeat the verdict."""
    from churnops.ingest import DropRejected, ingest_day
    from churnops.storage import shared_files_for
    from churnops.stores import stores_for

    settings = load_settings()
    day = run_day(get_current_context())
    files = shared_files_for(settings).check()
    lineage.report(inputs=lineage.drops(files, day))
    try:
        result = ingest_day(stores_for(settings).raw, files, day)
    except DropRejected as rejected:
        lineage.report(outputs=lineage.raw_tables(settings, rejected.loaded))
        log.error("%s", rejected)
        raise AirflowFailException(str(rejected)) from rejected
    lineage.report(outputs=lineage.raw_tables(settings, result.loaded))
    for name, table in result.loaded.items():
        log.info("%s dt=%s: loaded %d rows", name, day, table.rows_loaded)
    return {"day": day.isoformat(), "rows_loaded": result.rows_loaded}


@reports_outages
def window_loaded() -> str:
    """Fail (and retry later) while days of the run's 90-day feature window are missing."""
    from churnops.features import require_window_loaded
    from churnops.stores import stores_for

    settings = load_settings()
    day = run_day(get_current_context())
    lineage.report(inputs=lineage.raw_tables(settings))
    require_window_loaded(stores_for(settings).raw, settings.orchestration.nightly_start, day)
    return day.isoformat()
