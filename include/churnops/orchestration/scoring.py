"""Task body of the nightly scoring: Airflow's side of ``churnops.score``."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowSkipException

from churnops.orchestration.defaults import run_day
from churnops.settings import load_settings

log = logging.getLogger(__name__)


def score_night() -> dict[str, Any]:
    """Score the run's day. Without a champion the task is skipped, not failed: the run
    stays green, the monitoring after it is skipped too, earlier predictions stay."""
    from churnops.score import score_day
    from churnops.stores import stores_for

    context = get_current_context()
    settings = load_settings()
    stores = stores_for(settings)
    result = score_day(
        settings,
        stores.features,
        stores.scoring,
        run_day(context),
        run_id=context["dag_run"].run_id,
        say=log.info,
    )
    if result.state == "skipped":
        raise AirflowSkipException(result.message)
    return result.as_dict()
