"""The churnops drift-report portal: an Airflow 3 plugin (FastAPI app + UI nav entry).

Analysts open "Drift reports" in the Airflow UI's navigation; the UI frames this app's
index page. Only signed-in Airflow users get an answer (any role, the viewer's included):
Airflow mounts plugin apps without authentication, so the app carries Airflow's own
``requires_authenticated()`` dependency (the UI's ``_token`` cookie, or
``Authorization: Bearer <token from POST /auth/token>``). Wiring only: the pages, their
templates and charts are ``churnops.portal``.

Every Airflow process loads the plugins folder, each task process included (for macros).
Importing FastAPI and Airflow's API security module costs about 2 s there, so the app is
built on its first request, inside the API server, and this module imports nothing heavy.
"""

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/churnops"


def build_app() -> Any:
    """The portal's FastAPI app, for signed-in users only."""
    from airflow.api_fastapi.core_api.security import requires_authenticated
    from fastapi import Depends

    from churnops.portal.app import create_app

    return create_app(dependencies=[Depends(requires_authenticated())])


class PortalApp:
    """An ASGI app that builds the real one (``build_app()``) on its first request."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:  # no await in between: one build per process
            self._app = build_app()
        await self._app(scope, receive, send)


class ChurnopsPortalPlugin(AirflowPlugin):
    """Mounts the portal under ``/churnops`` and adds its "Drift reports" nav entry."""

    name = "churnops_portal"
    fastapi_apps = [
        {"app": PortalApp(), "url_prefix": URL_PREFIX, "name": "churnops drift reports"}
    ]
    external_views = [
        {
            "name": "Drift reports",
            # Relative: the UI resolves it against its <base href>, so the frame still finds
            # the app when Airflow is served below a path ([api] base_url).
            "href": URL_PREFIX.lstrip("/") + "/",
            "destination": "nav",
            "category": "browse",
            "url_route": "churnops-drift-reports",
        }
    ]
