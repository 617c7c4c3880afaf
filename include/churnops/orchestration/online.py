"""Task body of the nightly's online features: Airflow's side of ``churnops.online``.

The night's features go to the online store beside the scoring (both after the features):
a Redis outage fails this task, in one line naming the host, retried as any outage, and
never holds up the batch; the service keeps serving the previous night meanwhile. (The
service's sampled answers are moved by the drift task, right before it reports them:
``churnops.online.samples.move_buffered_samples``.) With ``CHURNOPS_ONLINE_STORE_URL``
set empty the task is skipped (no online store).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowException, AirflowSkipException

from churnops.orchestration.defaults import run_day
from churnops.orchestration.outages import reports_outages
from churnops.settings import load_settings

log = logging.getLogger(__name__)


@reports_outages
def materialize_online_task() -> dict[str, Any]:
    """Write the night's features to the online store and switch to them."""
    from churnops.online import OnlineStore, OnlineStoreError
    from churnops.online.materialize import materialize_night
    from churnops.stores import stores_for

    settings = load_settings()
    if not settings.online.url:
        raise AirflowSkipException("CHURNOPS_ONLINE_STORE_URL is empty: no online store")
    night = run_day(get_current_context())
    try:
        store = OnlineStore(settings.online)
        stores = stores_for(settings)
        result = materialize_night(stores.features, store, night, say=log.info)
    except OnlineStoreError as error:
        log.error("%s", error)
        raise AirflowException(str(error)) from None
    return result.as_dict()
