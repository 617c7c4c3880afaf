"""The churnops drift-report portal: an Airflow 3 plugin (FastAPI app + UI nav entry).

Analysts open "Drift reports" in the Airflow UI's navigation; the UI frames this app's
index page. Only signed-in Airflow users get an answer: Airflow mounts plugin apps without
authentication, so the app carries Airflow's own ``requires_authenticated()`` dependency
(the UI's ``_token`` cookie, or ``Authorization: Bearer <token from POST /auth/token>``).
Wiring only: every page is built by ``churnops.monitor.portal``.

Every Airflow process loads the plugins folder, each task process included (for macros).
Importing FastAPI and Airflow's API security module costs about 2 s there, so the app is
built on its first request, inside the API server, and this module imports nothing heavy.
"""

# No `from __future__ import annotations`: FastAPI reads the route functions' annotations,
# which name classes imported inside build_app().
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/churnops"


def build_app() -> Any:
    """The portal's FastAPI app: three read-only pages, for signed-in users only."""
    from airflow.api_fastapi.core_api.security import requires_authenticated
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import FileResponse, HTMLResponse, Response

    from churnops.monitor import portal
    from churnops.settings import load_settings

    app = FastAPI(
        title="churnops drift reports",
        dependencies=[Depends(requires_authenticated())],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    def base(request: Request) -> str:
        """The app's path as the browser sees it: the mount, below any ``[api] base_url``."""
        return str(request.scope.get("root_path", "")).rstrip("/")

    def respond(page: portal.Page) -> Response:
        if page.file is not None:
            return FileResponse(page.file, media_type="text/html", headers=dict(page.headers))
        return HTMLResponse(page.html, status_code=page.status, headers=dict(page.headers))

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> Response:
        """Every night's drift verdict, the matured cohorts' AUC trend, retraining requests."""
        return respond(portal.index_page(load_settings(), base(request)))

    @app.get("/night/{day}", response_class=HTMLResponse)
    def night(request: Request, day: str) -> Response:
        """One night's per-feature drift tests."""
        return respond(portal.night_page(load_settings(), day, base(request)))

    @app.get("/report/{day}/{version}", response_class=HTMLResponse)
    def report(request: Request, day: str, version: str) -> Response:
        """The Evidently HTML report of one night and model version, as the nightly saved it."""
        return respond(portal.report_page(load_settings(), day, version, base(request)))

    return app


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
