"""The portal's FastAPI app: the pages of :mod:`churnops.portal.views` rendered from the
package's Jinja2 templates, their tables as CSV, the Evidently reports, and the static
files (the page script, its style, plotly.js).

No Airflow import here: ``plugins/churnops_portal.py`` builds the app with Airflow's
sign-in dependency (``dependencies``) and mounts it in the API server. Nothing is read from
the file system by a name taken from the request: static files come from a fixed table,
reports from a path built from a parsed date and version.
"""

# No `from __future__ import annotations`: FastAPI reads the route functions' annotations,
# which name classes imported inside create_app().
import csv
import datetime as dt
import functools
import io
import math
import urllib.parse
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from churnops.portal import views
from churnops.settings import Settings, load_settings

TEMPLATES = resources.files("churnops.portal") / "templates"
STATIC = resources.files("churnops.portal") / "static"
NAV = (
    ("", "Nights"),
    ("heatmap", "Heatmap"),
    ("performance", "Performance"),
    ("scores", "Scores"),
    ("retraining", "Retraining"),
    ("rollout", "Rollout"),
)
STATIC_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=3600"}


def static_files() -> dict[str, tuple[Path, str]]:
    """The files under ``/static``: name -> (path, media type). A fixed table."""
    import plotly

    return {
        "plotly.min.js": (
            Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
            "text/javascript",
        ),
        "portal.js": (Path(str(STATIC / "portal.js")), "text/javascript"),
        "portal.css": (Path(str(STATIC / "portal.css")), "text/css"),
    }


@functools.cache
def templates() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = format_cell
    # Figures go into <script type="application/json"> blocks through |tojson (which
    # escapes <, >, & and '); a date or a Decimal a driver returns becomes its text.
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "default": str}
    env.globals["nav"] = NAV
    return env


def format_cell(value: Any, kind: str = "text") -> str:
    """A table cell's text (links and flags are the template's)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if kind == "int" and isinstance(value, int | float):
        return f"{int(value):,}"
    if kind == "num" and isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if kind == "num" and isinstance(value, float):
        return f"{value:.4g}"
    if kind == "pct" and isinstance(value, int | float):
        return f"{value:.1%}"
    if kind == "bool":
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def csv_text(table: views.Table) -> str:
    """The table's rows as CSV: one column per table column, lists joined by "; "."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.name for c in table.columns])
    for row in table.rows:
        cells = []
        for column in table.columns:
            value = row.get(column.name)
            if isinstance(value, list | tuple):
                value = "; ".join(str(v) for v in value)
            elif isinstance(value, dt.date | dt.datetime):
                value = value.isoformat()
            elif value is None:
                value = ""
            cells.append(value)
        writer.writerow(cells)
    return out.getvalue()


def render(page: views.Page, base: str, here: str, params: Mapping[str, str]) -> str:
    def csv_url(key: str) -> str:
        query = urllib.parse.urlencode({**params, "format": "csv", "table": key})
        return f"{base}/{here}?{query}"

    context = {
        "title": views.TITLE,
        "charts": {},
        **page.context,
        "base": base,
        "here": here,
        "tables": page.tables,
        "csv_url": csv_url,
    }
    return str(templates().get_template(page.template).render(**context))


def create_app(dependencies: Sequence[Any] = (), settings: Settings | None = None) -> Any:
    """The portal app; ``dependencies`` run before every route (the plugin passes Airflow's
    ``requires_authenticated()``). Settings are read per request unless given."""
    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, HTMLResponse, Response

    from churnops.warehouse import WarehouseBusy

    app = FastAPI(
        title="churnops drift reports",
        dependencies=list(dependencies),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    files = static_files()

    def base_of(request: Request) -> str:
        """The app's path as the browser sees it: the mount, below any ``[api] base_url``."""
        return str(request.scope.get("root_path", "")).rstrip("/")

    def reader() -> views.PortalReader:
        return views.PortalReader(settings or load_settings())

    def respond(request: Request, here: str, build: Any, *args: Any) -> Response:
        params = {k: v for k, v in request.query_params.items() if k not in {"format", "table"}}
        try:
            page = build(reader(), *args)
        except WarehouseBusy:
            page = views.busy()
        base = base_of(request)
        if request.query_params.get("format") == "csv" and page.status == 200:
            table = page.tables.get(request.query_params.get("table", ""))
            if table is None:
                page = views.message(404, "No such table", "This page has no table of that name.")
            else:
                name = f"{here.replace('/', '-') or 'nights'}-{table.key}.csv"
                return Response(
                    csv_text(table),
                    media_type="text/csv; charset=utf-8",
                    headers={
                        **views.CSV_HEADERS,
                        "Content-Disposition": f'attachment; filename="{name}"',
                    },
                )
        if page.file is not None:
            return FileResponse(page.file, media_type="text/html", headers=dict(page.headers))
        if page.html is not None:
            return HTMLResponse(page.html, status_code=page.status, headers=dict(page.headers))
        return HTMLResponse(
            render(page, base, here, params), status_code=page.status, headers=dict(page.headers)
        )

    @app.get("/", response_class=HTMLResponse)
    def nights(request: Request) -> Response:
        """Every night's drift verdict (filters: from, to, version, drifted)."""
        return respond(request, "", views.nights_page, dict(request.query_params))

    @app.get("/heatmap", response_class=HTMLResponse)
    def heatmap(request: Request) -> Response:
        """Drift score over threshold by feature and night."""
        return respond(request, "heatmap", views.heatmap_page, dict(request.query_params))

    @app.get("/night/{day}", response_class=HTMLResponse)
    def night(request: Request, day: str) -> Response:
        """One night's per-feature drift tests and its Evidently report."""
        return respond(request, f"night/{day}", views.night_page, day)

    @app.get("/feature/{name}", response_class=HTMLResponse)
    def feature(request: Request, name: str) -> Response:
        """A feature's drift over time and its histograms."""
        return respond(
            request, f"feature/{name}", views.feature_page, name, dict(request.query_params)
        )

    @app.get("/performance", response_class=HTMLResponse)
    def performance(request: Request) -> Response:
        return respond(request, "performance", views.performance_page)

    @app.get("/scores", response_class=HTMLResponse)
    def scores(request: Request) -> Response:
        return respond(request, "scores", views.scores_page)

    @app.get("/retraining", response_class=HTMLResponse)
    def retraining(request: Request) -> Response:
        return respond(request, "retraining", views.retraining_page)

    @app.get("/rollout", response_class=HTMLResponse)
    def rollout(request: Request) -> Response:
        return respond(request, "rollout", views.rollout_page)

    @app.get("/report/{day}/{version}", response_class=HTMLResponse)
    def report(request: Request, day: str, version: str) -> Response:
        """The Evidently HTML report of one night and model version, as the nightly saved it."""
        return respond(request, f"report/{day}/{version}", views.report_page, day, version)

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in files:
            return Response("not found", status_code=404, media_type="text/plain")
        path, media_type = files[name]
        return FileResponse(path, media_type=media_type, headers=STATIC_HEADERS)

    return app
