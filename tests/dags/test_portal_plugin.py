"""The drift-report portal: discovered by Airflow, signed-in users only, pages from the warehouse.

Integration tests serve the whole Airflow API server in-process (``create_app()``) with the
project's plugins folder, and sign in through the simple auth manager's ``POST /auth/token``.
Unit tests render the pages from in-memory data.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from churnops.monitor import portal
from churnops.settings import Settings, load_settings
from tests.conftest import PROJECT_DIR

ANALYST, PASSWORD = "analyst", "analyst-pass-1"
NIGHT, EARLIER = dt.date(2025, 3, 2), dt.date(2025, 3, 1)
REPORT_HTML = "<html><body><h1>fake evidently report</h1></body></html>"
SECRET = "TOP-SECRET-NOT-A-REPORT"


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def client(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The whole API server in-process, with one viewer account in the simple auth manager."""
    from fastapi.testclient import TestClient

    passwords = tmp_path_factory.mktemp("auth") / "passwords.json"
    passwords.write_text(json.dumps({ANALYST: PASSWORD}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(
            "AIRFLOW__CORE__AUTH_MANAGER",
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        )
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", f"{ANALYST}:viewer")
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
        # Token validation refuses to run on a generated secret (signing would invent one).
        mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "churnops-test-" + "x" * 64)
        from airflow.api_fastapi.app import create_app

        with TestClient(create_app()) as test_client:
            yield test_client


@pytest.fixture(scope="module")
def token(client) -> str:
    response = client.post("/auth/token", json={"username": ANALYST, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh churnops state dir: no warehouse, no reports."""
    monkeypatch.setenv("CHURNOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("CHURNOPS_DUCKDB_PATH", raising=False)
    return tmp_path / "state"


@pytest.fixture
def populated(state_dir: Path) -> Settings:
    """Two nights of monitoring results, three matured cohorts, one fired retrain request,
    the report file of the latest night, and a file outside the reports dir."""
    import pyarrow as pa

    from churnops.monitor.store import (
        COHORT_PERFORMANCE,
        DRIFT_SUMMARY,
        FEATURE_DRIFT,
        RETRAIN_REQUESTS,
    )
    from churnops.stores import stores_for
    from churnops.warehouse import utc_now as now

    settings = load_settings()
    monitoring = stores_for(settings).monitoring
    monitoring.ensure()
    drifted = ["tenure_days", "plan_type", "monthly_revenue", "logins_30d"]

    def summary(day: dt.date, count: int, features: list[str], prediction: bool) -> dict:
        return {
            "as_of_date": day,
            "model_version": "3",
            "features_total": 45,
            "features_drifted": count,
            "share_drifted": count / 45,
            "drifted_features": features,
            "prediction_drifted": prediction,
            "dataset_drifted": False,
            "html_path": None,
            "json_path": None,
            "seconds": 1.5,
            "computed_at": now(),
        }

    def feature(
        name: str,
        kind: str,
        method: str,
        statistic: float,
        p_value: float | None,
        threshold: float,
        drifted: bool,
    ) -> dict:
        return {
            "as_of_date": NIGHT,
            "model_version": "3",
            "feature": name,
            "kind": kind,
            "method": method,
            "statistic": statistic,
            "p_value": p_value,
            "threshold": threshold,
            "drifted": drifted,
            "reference_rows": 5000,
            "current_rows": 4000,
            "computed_at": now(),
        }

    def cohort(day: dt.date, auc: float) -> dict:
        return {
            "as_of_date": day,
            "model_versions": "3",
            "rows": 20000,
            "churners": 1600,
            "auc": auc,
            "recall": 0.7,
            "precision": 0.3,
            "f1": 0.42,
            "threshold": 0.2,
            "computed_at": now(),
        }

    rows = {
        DRIFT_SUMMARY: [
            summary(NIGHT, 4, drifted, True),
            summary(EARLIER, 1, drifted[:1], False),
        ],
        FEATURE_DRIFT: [
            feature("tenure_days", "numerical", "wasserstein", 0.23, None, 0.1, True),
            feature("plan_type", "categorical", "jensenshannon", 0.12, None, 0.1, True),
            feature("support_tickets_30d", "numerical", "ks", 0.01, 0.4, 0.01, False),
            feature("churn_probability", "prediction", "wasserstein", 0.15, None, 0.1, True),
        ],
        COHORT_PERFORMANCE: [
            cohort(dt.date(2024, 11, 1), 0.83),
            cohort(dt.date(2024, 11, 15), 0.80),
            cohort(dt.date(2024, 12, 1), 0.76),
        ],
        RETRAIN_REQUESTS: [
            {
                "as_of_date": NIGHT,
                "champion_version": "3",
                "fired": True,
                "triggered": True,
                "reasons": ["drift on 4 features (at least 3)"],
                "held_by_cooldown": False,
                "evaluated_at": now(),
                "run_id": "manual",
            }
        ],
    }
    with monitoring.warehouse.transaction() as session:
        for table, table_rows in rows.items():
            session.insert(table, pa.Table.from_pylist(table_rows))
    report = portal.report_path(settings, NIGHT, "3")
    report.parent.mkdir(parents=True)
    report.write_text(REPORT_HTML)
    (settings.paths.state_dir / "secret.html").write_text(SECRET)
    (settings.paths.reports_dir / "secret.html").write_text(SECRET)
    return settings


# ----------------------------------------------------------------------------- plugin


@pytest.mark.integration
def test_the_plugin_is_discovered_from_the_plugins_folder() -> None:
    from airflow import plugins_manager

    info = {p["name"]: p for p in plugins_manager.get_plugin_info()}
    assert plugins_manager.get_import_errors() == {}
    plugin = info["churnops_portal"]
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/churnops"]
    [view] = plugin["external_views"]
    assert view["name"] == "Drift reports"
    assert view["destination"] == "nav"
    assert view["url_route"] == "churnops-drift-reports"
    assert not view["href"].startswith("/")  # relative to the UI's base href


@pytest.mark.integration
def test_loading_the_plugin_imports_nothing_heavy(tmp_path: Path) -> None:
    """Every task process loads the plugins folder: the app is built on its first request."""
    heavy = ["fastapi", "airflow.api_fastapi.app", "duckdb", "churnops.monitor.portal"]
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(PROJECT_DIR / "plugins" / "churnops_portal.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.integration
def test_the_ui_lists_the_nav_entry(client, auth) -> None:
    response = client.get("/api/v2/plugins", headers=auth)
    assert response.status_code == 200, response.text
    views = [v for p in response.json()["plugins"] for v in p["external_views"]]
    assert {"name": "Drift reports", "url_route": "churnops-drift-reports"}.items() <= next(
        v for v in views if v["name"] == "Drift reports"
    ).items()


@pytest.mark.integration
@pytest.mark.parametrize(
    "path", ["/churnops/", "/churnops/night/2025-03-02", "/churnops/report/2025-03-02/3"]
)
def test_anonymous_requests_are_refused(client, state_dir, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert SECRET not in response.text


@pytest.mark.integration
def test_a_bad_token_is_refused(client, state_dir) -> None:
    response = client.get("/churnops/", headers={"Authorization": "Bearer not-a-jwt"})
    assert response.status_code in (401, 403)


@pytest.mark.integration
def test_empty_state_without_a_warehouse(client, auth, state_dir) -> None:
    response = client.get("/churnops/", headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert portal.EMPTY_MESSAGE in response.text
    assert not (state_dir / "warehouse.duckdb").exists()  # reading created nothing


@pytest.mark.integration
def test_the_session_cookie_also_signs_in(client, token, state_dir) -> None:
    client.cookies.set("_token", token)
    try:
        response = client.get("/churnops/")
    finally:
        client.cookies.clear()
    assert response.status_code == 200
    assert portal.EMPTY_MESSAGE in response.text


@pytest.mark.integration
def test_index_lists_nights_trend_and_requests(client, auth, populated) -> None:
    response = client.get("/churnops/", headers=auth)
    assert response.status_code == 200, response.text
    page = response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]
    # Newest night first, with its counts and links.
    assert page.index('href="/churnops/night/2025-03-02"') < page.index(
        'href="/churnops/night/2025-03-01"'
    )
    assert "4 / 45" in page and "1 / 45" in page
    assert 'href="/churnops/report/2025-03-02/3"' in page
    assert 'href="/churnops/night/2025-03-02"' in page
    assert 'href="/churnops/report/2025-03-01/3"' not in page  # no file for that night
    # The cohort trend with its threshold, and the fired request's reason.
    assert 'class="threshold"' in page and "retrain below AUC 0.78" in page
    assert page.count('class="alarm"') >= 2  # AUC 0.76 below 0.78; 4 drifted features >= 3
    assert "drift on 4 features (at least 3)" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page


@pytest.mark.integration
def test_night_page_lists_every_feature(client, auth, populated) -> None:
    response = client.get("/churnops/night/2025-03-02", headers=auth)
    assert response.status_code == 200, response.text
    page = response.text
    for text in ("tenure_days", "jensenshannon", "support_tickets_30d", "churn_probability", "0.4"):
        assert text in page
    assert "3 of 3 features drifted" not in page and "2 of 3 features drifted" in page
    assert 'href="/churnops/report/2025-03-02/3"' in page


@pytest.mark.integration
def test_night_page_404_for_a_night_without_results(client, auth, populated) -> None:
    response = client.get("/churnops/night/2024-01-01", headers=auth)
    assert response.status_code == 404
    assert "No drift results for 2024-01-01" in response.text


@pytest.mark.integration
def test_report_is_served_as_saved(client, auth, populated) -> None:
    response = client.get("/churnops/report/2025-03-02/3", headers=auth)
    assert response.status_code == 200
    assert response.text == REPORT_HTML
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"].startswith("sandbox")


@pytest.mark.integration
def test_missing_report_is_a_clear_404(client, auth, populated) -> None:
    response = client.get("/churnops/report/2025-03-01/3", headers=auth)
    assert response.status_code == 404
    assert "No drift report for 2025-03-01 and model version 3" in response.text


@pytest.mark.integration
@pytest.mark.parametrize(
    "path",
    [
        "/churnops/report/2025-03-02/3%2F..%2F..%2F..%2F..%2Fsecret.html",
        "/churnops/report/..%2F..%2Fsecret.html/3",
        "/churnops/report/2025-03-02/..",
        "/churnops/report/../secret.html/3",
        "/churnops/report/2025-03-02%2F..%2F../3",
        "/churnops/report/2025-3-2/3",
        "/churnops/report/2025-03-02/v3",
        "/churnops/report/2025-03-02/-3",
        "/churnops/night/..%2F..%2Fsecret.html",
    ],
)
def test_path_traversal_is_refused(client, auth, populated, path: str) -> None:
    response = client.get(path, headers=auth)
    assert SECRET not in response.text
    assert response.status_code in (400, 404)


@pytest.mark.integration
def test_a_locked_warehouse_shows_the_busy_page(client, auth, populated) -> None:
    """A nightly task holds the DuckDB file for writing (in another process)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('locked', flush=True);"
            " sys.stdin.read()",
            str(populated.warehouse.duckdb_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        index = client.get("/churnops/", headers=auth)
        night = client.get("/churnops/night/2025-03-02", headers=auth)
        report = client.get("/churnops/report/2025-03-02/3", headers=auth)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    for response in (index, night):
        assert response.status_code == 503
        assert portal.BUSY_MESSAGE in response.text
        assert response.headers["retry-after"] == "60"
        assert "Conflicting lock" not in response.text  # no raw DuckDB error, no PID
    assert report.status_code == 200  # report files do not need the warehouse
    # Once the writer is gone, the page is back.
    assert client.get("/churnops/", headers=auth).status_code == 200


@pytest.mark.integration
def test_the_portal_never_holds_the_warehouse_between_requests(client, auth, populated) -> None:
    assert client.get("/churnops/", headers=auth).status_code == 200
    import duckdb

    con = duckdb.connect(str(populated.warehouse.duckdb_path))  # read-write: no lock left behind
    con.close()


# ----------------------------------------------------------------------------- rendering


def _night(**overrides: object) -> portal.Night:
    values: dict[str, object] = {
        "as_of_date": NIGHT,
        "model_version": "3",
        "features_total": 45,
        "features_drifted": 2,
        "share_drifted": 2 / 45,
        "drifted_features": ("a", "b"),
        "prediction_drifted": False,
        "dataset_drifted": False,
        "report_available": True,
    }
    values.update(overrides)
    return portal.Night(**values)  # type: ignore[arg-type]


def _index(**overrides: object) -> portal.IndexData:
    values: dict[str, object] = {
        "nights": [_night()],
        "cohorts": [],
        "requests": [],
        "min_cohort_auc": 0.78,
        "max_drifted_features": 3,
        "cooldown_days": 14,
        "evaluations": 1,
        "fired": 0,
    }
    values.update(overrides)
    return portal.IndexData(**values)  # type: ignore[arg-type]


@pytest.mark.unit
def test_trend_chart_draws_the_threshold_line_where_it_belongs() -> None:
    points = [
        (dt.date(2025, 1, 1), 0.82),
        (dt.date(2025, 1, 8), 0.77),
        (dt.date(2025, 1, 15), 0.80),
    ]
    svg = portal.line_chart_svg(
        points,
        threshold=0.78,
        threshold_label="retrain below AUC 0.78",
        y_label="AUC",
        y_range=(0.0, 1.0),
        height=228,  # plot area 12..200: y = 12 + 188 * (1 - value)
    )
    line = re.search(r'<line class="threshold"[^>]*y1="([\d.]+)"', svg)
    assert line is not None
    assert float(line.group(1)) == pytest.approx(12 + 188 * (1 - 0.78), abs=0.1)
    assert "retrain below AUC 0.78" in svg
    assert svg.count('class="alarm"') == 1  # only 0.77 is below the line
    assert svg.count('class="dot"') == 2
    assert "2025-01-08: 0.770" in svg  # tooltip


@pytest.mark.unit
def test_trend_chart_leaves_gaps_and_handles_one_point() -> None:
    gap = portal.line_chart_svg(
        [
            (dt.date(2025, 1, d), v)
            for d, v in [(1, 0.8), (2, 0.81), (3, None), (4, 0.79), (5, 0.8)]
        ],
        threshold=0.78,
        threshold_label="t",
        y_label="AUC",
    )
    assert gap.count("<polyline") == 2
    single = portal.line_chart_svg(
        [(NIGHT, 0.8)], threshold=0.78, threshold_label="t", y_label="AUC"
    )
    assert single.count("<circle") == 1 and 'class="threshold"' in single
    assert "Nothing to chart" in portal.line_chart_svg(
        [(NIGHT, None)], threshold=0.78, threshold_label="t", y_label="AUC"
    )


@pytest.mark.unit
def test_values_from_the_warehouse_are_escaped() -> None:
    evil = "<script>alert(1)</script>"
    page = portal.render_index(
        _index(
            nights=[_night(model_version='3"><b>x', drifted_features=(evil,))],
            requests=[
                portal.RetrainRequest(
                    as_of_date=NIGHT,
                    champion_version="3",
                    fired=True,
                    triggered=True,
                    reasons=(f"drift on {evil}",),
                    held_by_cooldown=False,
                )
            ],
            evaluations=1,
            fired=1,
        )
    )
    assert evil not in page and "<b>x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    night = portal.render_night(
        NIGHT,
        [portal.FeatureDrift("3", evil, "numerical", "ks", 0.2, 0.001, 0.01, True)],
    )
    assert evil not in night and "&lt;script&gt;" in night


@pytest.mark.unit
def test_empty_index_says_what_to_do() -> None:
    page = portal.render_index(_index(nights=[], evaluations=0))
    assert portal.EMPTY_MESSAGE in page
    assert "<table" not in page


@pytest.mark.unit
def test_links_follow_the_mount_path() -> None:
    page = portal.render_index(_index(), base="/airflow/churnops")
    assert 'href="/airflow/churnops/report/2025-03-02/3"' in page
    assert 'href="/airflow/churnops/night/2025-03-02"' in page
    no_file = portal.render_index(_index(nights=[_night(report_available=False)]))
    assert "/report/" not in no_file and "no report file" in no_file


@pytest.mark.unit
@pytest.mark.parametrize(
    "raw", ["", "2025-3-2", "2025-02-30", "../2025-03-02", "2025-03-02/..", "２０２５-03-02"]
)
def test_parse_day_rejects_anything_but_a_date(raw: str) -> None:
    with pytest.raises(ValueError):
        portal.parse_day(raw)


@pytest.mark.unit
@pytest.mark.parametrize("raw", ["", "..", "v3", "-3", "3/..", "3.0", "1" * 10, "３"])
def test_parse_version_rejects_anything_but_digits(raw: str) -> None:
    with pytest.raises(ValueError):
        portal.parse_version(raw)


@pytest.mark.unit
def test_report_page_refuses_bad_addresses_and_serves_files(tmp_path: Path) -> None:
    settings = load_settings({"CHURNOPS_STATE_DIR": str(tmp_path)})
    assert portal.report_page(settings, "..", "3").status == 400
    assert portal.report_page(settings, "2025-03-02", "../3").status == 400
    missing = portal.report_page(settings, "2025-03-02", "3")
    assert missing.status == 404 and missing.file is None
    path = portal.report_path(settings, NIGHT, "3")
    path.parent.mkdir(parents=True)
    path.write_text(REPORT_HTML)
    served = portal.report_page(settings, "2025-03-02", "03")
    assert served.status == 200 and served.file == path


@pytest.fixture
def on_postgres(state_dir: Path, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The portal's settings name a fresh PostgreSQL warehouse (request before `populated`)."""
    monkeypatch.setenv("CHURNOPS_WAREHOUSE", "postgres")
    monkeypatch.setenv("CHURNOPS_POSTGRES_DSN", postgres_dsn)
    return postgres_dsn


@pytest.mark.integration
def test_on_postgres_a_night_being_replaced_never_makes_the_portal_busy(
    client, auth, on_postgres: str, populated: Settings
) -> None:
    """A nightly writer in the middle of replacing a night: the portal answers at once with
    the night as it was, and with the new night once the writer commits."""
    import pyarrow as pa

    from churnops.monitor.store import DRIFT_SUMMARY
    from churnops.warehouse import utc_now
    from churnops.warehouse.postgres_warehouse import PostgresWarehouse

    assert populated.warehouse.kind == "postgres"
    writer = PostgresWarehouse(on_postgres)
    replacement = {
        "as_of_date": NIGHT,
        "model_version": "3",
        "features_total": 45,
        "features_drifted": 1,
        "share_drifted": 1 / 45,
        "drifted_features": ["days_since_last_ticket"],
        "prediction_drifted": False,
        "dataset_drifted": False,
        "html_path": None,
        "json_path": None,
        "seconds": 1.0,
        "computed_at": utc_now(),
    }
    try:
        with writer.transaction() as session:
            session.replace(
                DRIFT_SUMMARY,
                {"as_of_date": NIGHT, "model_version": "3"},
                pa.Table.from_pylist([replacement]),
            )
            during = client.get("/churnops/", headers=auth)
        after = client.get("/churnops/", headers=auth)
    finally:
        writer.dispose()
    assert during.status_code == 200, during.text
    assert portal.BUSY_MESSAGE not in during.text
    # The night as it was (monthly_revenue drifted on that night only), not half of the new.
    assert "monthly_revenue" in during.text and "days_since_last_ticket" not in during.text
    assert after.status_code == 200
    assert "days_since_last_ticket" in after.text and "monthly_revenue" not in after.text
