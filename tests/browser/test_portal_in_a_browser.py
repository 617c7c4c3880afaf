"""The drift-report portal in a real browser, inside a real Airflow.

One ``airflow standalone`` for the module (free port, its own state dir; DAGs paused,
no DAG folder to parse: the portal is what is under test) serves a short simulated
history: the small trained champion of tests/trained_state.py, then a few nights scored
and monitored in-process (real Evidently reports, real drift tables). Debian's chromium,
driven by Playwright (never ``playwright install``), signs in as a viewer, opens "Drift
reports" from the Airflow navigation and goes through the pages. Every step's screenshot
is saved under ``test-artifacts/browser/<run>/`` in the project (the path is printed).

The same server is asked over plain HTTP for files outside the reports directory, with
every encoding of ``..`` a client can send: it must answer 400/404 and never the file.
"""

from __future__ import annotations

import csv
import datetime as dt
import http.client
import io
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import expect

from churnops.settings import Settings
from tests.conftest import PROJECT_DIR
from tests.trained_state import TRAINED_ENV, trained_state

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWER, VIEWER_PASSWORD = "ana", "ana-viewer-pass-1"
NIGHTS = 3
SECRET = "TOP-SECRET-NOT-A-REPORT"
ARTIFACTS = PROJECT_DIR / "test-artifacts" / "browser"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Portal:
    settings: Settings
    base_url: str
    nights: list[dt.date]
    token: str
    shots: Path
    console: list[str] = field(default_factory=list)


def _monitor_nights(settings: Settings) -> list[dt.date]:
    """Score and monitor the history's last nights in-process, as the nightly does."""
    from churnops.monitor.nightly import monitor_night
    from churnops.score import score_day
    from churnops.stores import stores_for
    from churnops.triggers.signals import evaluate_retraining

    stores = stores_for(settings)
    end = settings.simulation.history_end
    nights = [end - dt.timedelta(days=NIGHTS - 1 - i) for i in range(NIGHTS)]
    for night in nights:
        score_day(settings, stores.features, stores.scoring, night, say=lambda _line: None)
        monitor_night(settings, stores.monitoring, night)
        evaluate_retraining(settings, stores.monitoring, night)
    stores.warehouse.dispose()
    return nights


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    from churnops.orchestration.environment import passwords_file
    from churnops.orchestration.local_airflow import LocalAirflow, stop_process_tree
    from churnops.settings import load_settings

    assert CHROMIUM.exists(), (
        "no /usr/bin/chromium: `make test` installs it (apt-get install -y chromium)"
    )
    state = tmp_path_factory.mktemp("portal-browser")
    settings = load_settings({"CHURNOPS_STATE_DIR": str(state), **TRAINED_ENV})
    environ = {**os.environ, **TRAINED_ENV, "CHURNOPS_STATE_DIR": str(state)}
    airflow = LocalAirflow(settings, port=free_port(), environ=environ)
    empty_dags = tmp_path_factory.mktemp("no-dags")
    airflow.env |= {
        "AIRFLOW__CORE__DAGS_FOLDER": str(empty_dags),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"admin:admin,{VIEWER}:viewer",
        "AIRFLOW__API__WORKERS": "1",
    }
    passwords = passwords_file(settings)
    passwords.parent.mkdir(parents=True, exist_ok=True)
    passwords.write_text(json.dumps({"admin": "admin-pass-1", VIEWER: VIEWER_PASSWORD}))
    airflow.prepare()
    proc = airflow.start_standalone(settings.paths.airflow_home / "standalone.log")
    try:
        # The history is built while Airflow boots.
        began = time.perf_counter()
        trained_state(state)
        trained = time.perf_counter()
        nights = _monitor_nights(settings)
        monitored = time.perf_counter()
        # Files a traversal would be after: beside the reports, and above them.
        (settings.paths.state_dir / "secret.html").write_text(SECRET)
        (settings.paths.reports_dir / "secret.html").write_text(SECRET)
        (settings.paths.reports_dir / "drift" / "secret.html").write_text(SECRET)
        airflow.wait_until(airflow.healthy, 180, "Airflow to report healthy")
        print(
            f"\nportal set-up: trained {trained - began:.0f} s, {NIGHTS} nights monitored "
            f"{monitored - trained:.0f} s, Airflow healthy {time.perf_counter() - monitored:.0f} s later"
        )
        login = {"username": VIEWER, "password": VIEWER_PASSWORD}
        token = str(airflow._request("/auth/token", login)["access_token"])
        shots = ARTIFACTS / time.strftime("%Y%m%d-%H%M%S")
        shots.mkdir(parents=True, exist_ok=True)
        print(f"\nbrowser screenshots: {shots}")
        yield Portal(settings, airflow.base_url, nights, token, shots)
    finally:
        stop_process_tree(proc, grace=10)


@pytest.fixture(scope="module")
def browser(portal: Portal) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _watch(page, portal: Portal) -> None:
    """Every console message of the page and its frames, and every CSP violation."""
    page.on("console", lambda m: portal.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: portal.console.append(f"pageerror: {e}"))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error("
        "'CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI))"
    )


def _shot(page, portal: Portal, name: str) -> Path:
    path = portal.shots / f"{len(list(portal.shots.iterdir())) + 1:02d}-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _warehouse_rows(settings: Settings, sql: str, params: list | None = None) -> list[dict]:
    from churnops.warehouse import build_warehouse

    warehouse = build_warehouse(settings.warehouse, read_only=True)
    try:
        return warehouse.rows(sql, params or [])
    finally:
        warehouse.dispose()


def test_an_analyst_reviews_drift_in_the_airflow_ui(portal: Portal, browser) -> None:
    settings = portal.settings
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    _watch(page, portal)

    # Sign in (the simple auth manager's form), as a viewer.
    page.goto(portal.base_url + "/")
    page.wait_for_selector("input[name=username]")
    _shot(page, portal, "sign-in")
    page.fill("input[name=username]", VIEWER)
    page.fill("input[name=password]", VIEWER_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/auth/" not in url)

    # "Drift reports" from the navigation (Browse menu): the UI frames the portal.
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="Drift reports").click()
    page.wait_for_url("**/plugin/churnops-drift-reports")
    frame = page.frame_locator("iframe").first
    nights_table = frame.locator("table[data-table=nights] tbody tr")
    nights_table.first.wait_for()
    assert nights_table.count() == NIGHTS
    chart_points = frame.locator("#chart-nights .scatterlayer .point")
    chart_points.first.wait_for()
    assert chart_points.count() == NIGHTS  # one point per night
    _shot(page, portal, "nights")

    # Filter: from the third night on, then drifted nights only.
    frame.locator("input[name=from]").fill(portal.nights[1].isoformat())
    frame.get_by_role("button", name="Filter").click()
    expect(nights_table).to_have_count(2)
    expect(frame.locator("#chart-nights .scatterlayer .point")).to_have_count(2)
    _shot(page, portal, "nights-filtered")
    drifted = _warehouse_rows(
        settings,
        "select count(*) as n from monitoring.drift_summary where as_of_date >= ? "
        "and (features_drifted > 0 or prediction_drifted)",
        [portal.nights[1]],
    )[0]["n"]
    frame.locator("input[name=drifted]").check()
    frame.get_by_role("button", name="Filter").click()
    expect(frame.locator("#matched")).to_have_text(f"{drifted} night(s) match (drifted only).")
    expect(frame.locator("table[data-table=nights] tbody tr")).to_have_count(drifted)
    _shot(page, portal, "nights-drifted-only")

    # A night: its per-feature bars (one per feature and the prediction) and its report.
    night = portal.nights[-1]
    frame.locator("nav.tabs a", has_text="Nights").click()
    # Clicking the night's point on the trend opens it (the newest is the last point).
    expect(frame.locator("#chart-nights .scatterlayer .point")).to_have_count(NIGHTS)
    frame.locator("#chart-nights .scatterlayer .point").last.click(force=True)
    expect(frame.locator("h1")).to_have_text(f"Drift on {night}")
    tested = _warehouse_rows(
        settings,
        "select count(*) as n from monitoring.feature_drift where as_of_date = ?",
        [night],
    )[0]["n"]
    assert tested > 40
    expect(frame.locator("#chart-night-v1 .barlayer .point")).to_have_count(tested)
    assert frame.locator("table[data-table=features_v1] tbody tr").count() == tested
    report = frame.frame_locator("iframe.report")
    report.locator("body").wait_for()
    report.get_by_text("churn_probability").first.wait_for()
    frame.locator("iframe.report").scroll_into_view_if_needed()
    _shot(page, portal, "night-with-evidently-report")

    # A feature: its drift score on every night, reference against current histograms.
    frame.locator("table[data-table=features_v1] a", has_text="tenure_days").first.click()
    expect(frame.locator("#chart-score .scatterlayer .point")).to_have_count(NIGHTS)
    histogram = _warehouse_rows(
        settings,
        "select bins from monitoring.feature_histograms where as_of_date = ? and feature = ?",
        [night, "tenure_days"],
    )[0]["bins"]
    # Reference and current per bin.
    expect(frame.locator("#chart-histogram .barlayer .point")).to_have_count(2 * len(histogram))
    # Hover shows the values.
    frame.locator("#chart-score .scatterlayer .point").last.hover(force=True)
    frame.locator(".hoverlayer .hovertext").first.wait_for()
    _shot(page, portal, "feature-tenure_days")

    # The feature picker opens another feature.
    frame.locator("select.navigate").select_option("churn_probability")
    expect(frame.locator("h1")).to_have_text("Feature churn_probability")
    expect(frame.locator("#chart-score .scatterlayer .point")).to_have_count(NIGHTS)
    frame.locator("select.navigate").select_option("tenure_days")
    expect(frame.locator("h1")).to_have_text("Feature tenure_days")

    # The CSV of the feature's nights: the rows the page lists.
    with page.expect_download() as download:
        frame.locator("#table-history a.csv").click()
    text = Path(download.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["as_of_date"] for r in rows] == [n.isoformat() for n in reversed(portal.nights)]
    assert all(r["method"] and float(r["threshold"]) > 0 for r in rows)
    (portal.shots / "feature-tenure_days-history.csv").write_text(text)

    # The other pages draw (heatmap: every monitored night; scores: one point a night).
    frame.locator("nav.tabs a", has_text="Heatmap").click()
    expect(frame.locator("#chart-heatmap .hm image")).to_have_count(1)
    _shot(page, portal, "heatmap")
    frame.locator("nav.tabs a", has_text="Performance").click()
    estimated = frame.locator("#chart-performance .scatterlayer .trace").nth(1).locator(".point")
    expect(estimated).to_have_count(NIGHTS)  # the estimated AUC of every night
    _shot(page, portal, "performance")
    frame.locator("nav.tabs a", has_text="Scores").click()
    expect(frame.locator("#chart-mean .scatterlayer .point")).to_have_count(NIGHTS)
    _shot(page, portal, "scores")
    frame.locator("nav.tabs a", has_text="Retraining").click()
    frame.get_by_text("Alias history").wait_for()
    _shot(page, portal, "retraining")
    context.close()

    violations = [m for m in portal.console if "Content Security Policy" in m or "CSP" in m]
    assert violations == [], violations


def test_an_anonymous_browser_reaches_no_report(portal: Portal, browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    night = portal.nights[-1].isoformat()
    for path in ("/churnops/", f"/churnops/night/{night}", f"/churnops/report/{night}/1"):
        response = page.goto(portal.base_url + path)
        assert response is not None and response.status == 401, path
        assert "churn_probability" not in page.content()
    _shot(page, portal, "anonymous-report-refused")
    # Through the UI, the portal's nav route sends an anonymous visitor to sign in.
    page.goto(portal.base_url + "/plugin/churnops-drift-reports")
    page.wait_for_selector("input[name=username]")
    _shot(page, portal, "anonymous-sent-to-sign-in")
    context.close()


TRAVERSALS = [
    "/churnops/report/..%2F..%2Fsecret.html/1",
    "/churnops/report/%2e%2e/secret.html",
    "/churnops/report/%2e%2e%2f%2e%2e%2fsecret.html/1",
    "/churnops/report/2025-01-01/1%2F..%2F..%2F..%2Fsecret.html",
    "/churnops/report/%252e%252e%252fsecret.html/1",
    "/churnops/report/2025-01-01/%252e%252e%252f%252e%252e%252fsecret.html",
    "/churnops/report/..%5c..%5csecret.html/1",
    "/churnops/report/%c0%ae%c0%ae/secret.html",
    "/churnops/night/..%2F..%2Fsecret.html",
    "/churnops/feature/..%2Fsecret.html",
    "/churnops/static/..%2F..%2F..%2Fsecret.html",
    "/churnops/static/%2e%2e%2fportal.py",
    "/churnops/report/2025-01-01/1/../../../../secret.html",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_is_refused_by_the_running_server(portal: Portal, path: str) -> None:
    """Raw request lines (http.client sends the path as given: no client normalization),
    signed in, so a refusal is the app's and not the sign-in's."""
    host, port = portal.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.putheader("Authorization", f"Bearer {portal.token}")
        connection.endheaders()
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
    finally:
        connection.close()
    assert SECRET not in body
    assert response.status in (400, 404), (response.status, body[:300])


def test_the_running_server_serves_a_report_to_the_viewer(portal: Portal) -> None:
    """The control for the traversal tests: the same client, a real report, 200."""
    host, port = portal.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(
            "GET",
            f"/churnops/report/{portal.nights[-1].isoformat()}/1",
            headers={"Authorization": f"Bearer {portal.token}"},
        )
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
    finally:
        connection.close()
    assert response.status == 200
    assert response.getheader("Content-Security-Policy", "").startswith("sandbox")
    assert "<html" in body.lower() and "churn_probability" in body
