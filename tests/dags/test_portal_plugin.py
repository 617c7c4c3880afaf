"""The drift-report portal: discovered by Airflow, signed-in users only, pages from the warehouse.

Integration tests serve the whole Airflow API server in-process (``create_app()``) with the
project's plugins folder, and sign in through the simple auth manager's ``POST /auth/token``.
Unit tests render the pages from in-memory data. The same pages in a real browser, and
traversal attempts over HTTP against a running ``airflow standalone``: tests/browser.
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

from churnops.portal import app, queries, views
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
        DRIFT_POPULATION,
        DRIFT_SUMMARY,
        FEATURE_DRIFT,
        FEATURE_HISTOGRAMS,
        PERFORMANCE_ESTIMATES,
        RETRAIN_FOLLOW_UPS,
        RETRAIN_REQUESTS,
    )
    from churnops.registry.audit import AliasMove, record_alias_moves
    from churnops.score.store import PREDICTIONS
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

    def estimate(day: dt.date, auc: float, realized: float | None) -> dict:
        return {
            "as_of_date": day,
            "model_version": "3",
            "rows": 4000,
            "flagged": 500,
            "threshold": 0.2,
            "estimated_auc": auc,
            "estimated_auc_lower": auc - 0.02,
            "estimated_auc_upper": auc + 0.02,
            "mean_probability": 0.09,
            "base_rate": 0.08,
            "estimated_at": now(),
            "realized_rows": 4000 if realized else None,
            "realized_churners": 400 if realized else None,
            "realized_auc": realized,
            "realized_at": now() if realized else None,
        }

    def prediction(day: dt.date, customer: int, score: float, band: str) -> dict:
        return {
            "as_of_date": day,
            "customer_id": customer,
            "churn_probability": score,
            "risk_band": band,
            "model_name": "churn",
            "model_version": "3",
            "served_by": "champion",
            "contact": score > 0.5,
            "reason_codes": None,
            "scored_at": now(),
        }

    rows = {
        FEATURE_HISTOGRAMS: [
            {
                "as_of_date": NIGHT,
                "model_version": "3",
                "feature": "tenure_days",
                "bins": ["[0, 100)", "[100, 200)", "[200, 300)"],
                "reference_share": [0.2, 0.3, 0.5],
                "current_share": [0.6, 0.3, 0.1],
                "computed_at": now(),
            }
        ],
        PERFORMANCE_ESTIMATES: [
            estimate(dt.date(2024, 11, 1), 0.82, 0.83),
            estimate(EARLIER, 0.79, None),
            estimate(NIGHT, 0.77, None),
        ],
        PREDICTIONS: [
            prediction(EARLIER, 1, 0.1, "low"),
            prediction(EARLIER, 2, 0.7, "high"),
            prediction(NIGHT, 1, 0.2, "low"),
            prediction(NIGHT, 2, 0.8, "high"),
            prediction(NIGHT, 3, 0.4, "medium"),
        ],
        DRIFT_POPULATION: [
            {
                "as_of_date": NIGHT,
                "model_version": "3",
                "features": drifted,
                "customers": 321,
                "base": 4000,
                "labelled": 0,
                "labelled_by_chance": 12,
                "labels_since": dt.date(2024, 12, 1),
                "computed_at": now(),
            }
        ],
        RETRAIN_FOLLOW_UPS: [
            {
                "due_on": dt.date(2025, 5, 31),
                "requested_on": NIGHT,
                "reason": "the campaign's customers have no matured label yet",
                "scheduled_at": now(),
            }
        ],
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
    stores_for(settings).scoring.ensure()
    with monitoring.warehouse.transaction() as session:
        for table, table_rows in rows.items():
            session.insert(table, pa.Table.from_pylist(table_rows))
    record_alias_moves(
        settings,
        [AliasMove("churn", "champion", "2", "3", "promote", "better by 0.03 AUC", "pytest")],
    )
    _record_decision(settings)
    report = queries.PortalReader(settings).report_path(NIGHT, "3")
    report.parent.mkdir(parents=True)
    report.write_text(REPORT_HTML)
    (settings.paths.state_dir / "secret.html").write_text(SECRET)
    (settings.paths.reports_dir / "secret.html").write_text(SECRET)
    return settings


def _record_decision(settings: Settings) -> None:
    import json

    from churnops.registry.audit import DECISIONS, OpsStore
    from churnops.warehouse import utc_now, warehouse_for

    metrics = {"auc": 0.80, "recall": 0.6, "precision": 0.3, "f1": 0.4, "threshold_rule": "max_f1"}
    OpsStore(warehouse_for(settings)).append(
        DECISIONS,
        [
            {
                "decided_at": utc_now(),
                "model_name": settings.mlflow.registered_model_name,
                "challenger_version": "4",
                "champion_version": "3",
                "action": "keep",
                "reasons": json.dumps(["challenger AUC 0.8050 vs champion 0.8000: +0.0050"]),
                "challenger_metrics": json.dumps({**metrics, "auc": 0.805}),
                "champion_metrics": json.dumps(metrics),
                "actor": "churn_retrain",
                "run_id": None,
            }
        ],
    )


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
    heavy = ["fastapi", "airflow.api_fastapi.app", "duckdb", "plotly", "churnops.portal"]
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
    "path",
    [
        "/churnops/",
        "/churnops/night/2025-03-02",
        "/churnops/report/2025-03-02/3",
        "/churnops/feature/tenure_days",
        "/churnops/?format=csv&table=nights",
        "/churnops/static/portal.js",
    ],
)
def test_anonymous_requests_are_refused(client, populated, path: str) -> None:
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
    assert views.EMPTY_MESSAGE in response.text
    assert not (state_dir / "warehouse.duckdb").exists()  # reading created nothing


@pytest.mark.integration
def test_the_session_cookie_also_signs_in(client, token, state_dir) -> None:
    client.cookies.set("_token", token)
    try:
        response = client.get("/churnops/")
    finally:
        client.cookies.clear()
    assert response.status_code == 200
    assert views.EMPTY_MESSAGE in response.text


def _figures(page: str) -> dict[str, dict]:
    """The figures a page carries, by chart id."""
    import json

    blocks = re.findall(
        r'<script type="application/json" class="figure" data-target="chart-([a-z0-9-]+)">(.*?)</script>',
        page,
        re.S,
    )
    return {name: json.loads(body) for name, body in blocks}


@pytest.mark.integration
def test_index_lists_the_nights_with_their_trend(client, auth, populated) -> None:
    response = client.get("/churnops/", headers=auth)
    assert response.status_code == 200, response.text
    page = response.text
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-eval" not in csp
    assert "default-src 'none'" in csp
    # Newest night first, with its counts and links.
    assert page.index('href="/churnops/night/2025-03-02"') < page.index(
        'href="/churnops/night/2025-03-01"'
    )
    assert 'href="/churnops/night/2025-03-02#report-v3"' in page
    assert "no report file" in page  # 2025-03-01 has none
    assert '<script src="/churnops/static/plotly.min.js"' in page
    assert "<script>" not in page  # no inline script
    trend = _figures(page)["nights"]["data"][0]
    assert trend["x"] == ["2025-03-01", "2025-03-02"] and trend["y"] == [1, 4]
    assert trend["customdata"] == ["night/2025-03-01", "night/2025-03-02"]
    assert "https://" not in page and "http://" not in page


@pytest.mark.integration
def test_the_nights_filters_and_their_csv(client, auth, populated) -> None:
    drifted = client.get("/churnops/?drifted=1&from=2025-03-02", headers=auth).text
    assert 'href="/churnops/night/2025-03-02"' in drifted
    assert 'href="/churnops/night/2025-03-01"' not in drifted
    none = client.get("/churnops/?version=9", headers=auth).text
    assert "Nothing yet." in none
    bad = client.get("/churnops/?from=yesterday", headers=auth)
    assert bad.status_code == 400 and "is not a date" in bad.text
    response = client.get("/churnops/?from=2025-03-02&format=csv&table=nights", headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    lines = response.text.splitlines()
    assert lines[0].startswith("as_of_date,model_version,features_drifted")
    assert len(lines) == 2 and lines[1].startswith("2025-03-02,3,4,45,")
    assert "tenure_days; plan_type; monthly_revenue; logins_30d" in lines[1]
    assert client.get("/churnops/?format=csv&table=nope", headers=auth).status_code == 404


@pytest.mark.integration
def test_the_heatmap_scores_each_feature_against_its_threshold(client, auth, populated) -> None:
    response = client.get("/churnops/heatmap", headers=auth)
    assert response.status_code == 200, response.text
    [trace] = _figures(response.text)["heatmap"]["data"]
    assert trace["x"] == ["2025-03-02"]
    cells = dict(zip(trace["y"], (row[0] for row in trace["z"]), strict=True))
    assert cells["tenure_days"] == pytest.approx(2.3)  # wasserstein 0.23 over 0.1
    assert cells["support_tickets_30d"] == pytest.approx(0.025)  # p 0.4, threshold 0.01
    assert trace["y"][:3] != ["support_tickets_30d"]  # the drifted ones come first


@pytest.mark.integration
def test_the_feature_page_draws_its_trend_and_histograms(client, auth, populated) -> None:
    response = client.get("/churnops/feature/tenure_days", headers=auth)
    assert response.status_code == 200, response.text
    figures = _figures(response.text)
    score = figures["score"]
    assert score["data"][0]["y"] == [0.23]
    assert score["layout"]["shapes"][0]["y0"] == 0.1  # the threshold line
    reference, current = figures["histogram"]["data"]
    assert reference["y"] == [0.2, 0.3, 0.5] and current["y"] == [0.6, 0.3, 0.1]
    assert 'option value="plan_type"' in response.text  # the feature picker
    csv = client.get(
        "/churnops/feature/tenure_days?format=csv&table=histogram", headers=auth
    ).text.splitlines()
    assert csv == [
        "model_version,bin,reference_share,current_share",
        '3,"[0, 100)",0.2,0.6',
        '3,"[100, 200)",0.3,0.3',
        '3,"[200, 300)",0.5,0.1',
    ]
    assert client.get("/churnops/feature/nope", headers=auth).status_code == 404
    assert client.get("/churnops/feature/a.b", headers=auth).status_code == 400


@pytest.mark.integration
def test_performance_scores_and_retraining_pages(client, auth, populated) -> None:
    performance = client.get("/churnops/performance", headers=auth)
    assert performance.status_code == 200, performance.text
    figures = _figures(performance.text)
    traces = {t.get("name"): t for t in figures["performance"]["data"]}
    assert traces["realized AUC (matured cohort)"]["y"] == [0.83, 0.80, 0.76]
    assert traces["estimated AUC (CBPE)"]["y"] == [0.82, 0.79, 0.77]
    assert figures["performance"]["layout"]["shapes"][0]["y0"] == 0.78
    rates = {t["name"]: t["y"] for t in figures["rates"]["data"]}
    assert rates["realized (matured labels)"] == [0.1, None, None]

    scores = client.get("/churnops/scores", headers=auth)
    bands = {t["name"]: t["y"] for t in _figures(scores.text)["bands"]["data"]}
    assert bands["high"] == [0.5, pytest.approx(1 / 3)]
    mean = _figures(scores.text)["mean"]["data"][0]["y"]
    assert mean == [pytest.approx(0.4), pytest.approx(1.4 / 3)]

    retraining = client.get("/churnops/retraining", headers=auth)
    assert retraining.status_code == 200, retraining.text
    page = retraining.text
    for text in (
        "drift on 4 features (at least 3)",  # why the request fired
        "the campaign&#39;s customers have no matured label yet",  # its follow-up
        "2025-05-31",
        "321",  # the drifted population
        "challenger AUC 0.8050 vs champion 0.8000",  # the decision's reasons
        "better by 0.03 AUC",  # the alias history
    ):
        assert text in page, text
    csv = client.get("/churnops/retraining?format=csv&table=decisions", headers=auth).text
    header, row = csv.splitlines()
    assert "champion_auc,challenger_auc" in header
    assert ",0.8,0.805," in row


@pytest.mark.integration
def test_the_rollout_page_shows_the_phase_its_share_and_every_event(
    client, auth, populated
) -> None:
    from churnops.rollout import RolloutState
    from churnops.rollout.store import RolloutStore
    from churnops.stores import stores_for

    empty = client.get("/churnops/rollout", headers=auth)
    assert empty.status_code == 200 and "No rollout yet" in empty.text

    settings = populated
    store = RolloutStore(stores_for(settings).warehouse)
    shadow = RolloutState("r1", "churn", "4", "3", "shadow", "running", NIGHT)
    canary = RolloutState("r1", "churn", "4", "3", "canary", "running", NIGHT, 1, NIGHT)
    gate = {
        "name": "scores",
        "status": "pass",
        "reasons": ["PSI 0.031 <= 0.25"],
        "numbers": {"psi": 0.031234, "rank_correlation": 0.97},
    }
    store.record(shadow, EARLIER, "start", ["the retrain let v4 in"], "retrain")
    store.record(
        canary, NIGHT, "advance", ["shadow done: every gate passed"], "churn_rollout", [gate]
    )

    page = client.get("/churnops/rollout", headers=auth)
    assert page.status_code == 200, page.text
    assert "v4 against champion v3: canary, running" in page.text
    assert "Serving <strong>5.0%</strong>" in page.text  # the canary phase's default share
    assert "psi = 0.03123" in page.text and "shadow done: every gate passed" in page.text
    shares = _figures(page.text)["share"]["data"][0]
    assert shares["name"] == "r1" and shares["y"] == [0.0, 0.05]
    csv = client.get("/churnops/rollout?format=csv&table=rollout_events", headers=auth).text
    header, newest, oldest = csv.strip().splitlines()
    assert header.startswith("as_of_date,rollout_id,challenger_version")
    assert newest.startswith("2025-03-02,r1,4,3,canary,running,0.05,1,advance")
    assert oldest.startswith("2025-03-01,r1,4,3,shadow,running,0.0,0,start")


@pytest.mark.integration
def test_night_page_lists_every_feature(client, auth, populated) -> None:
    response = client.get("/churnops/night/2025-03-02", headers=auth)
    assert response.status_code == 200, response.text
    page = response.text
    for text in ("tenure_days", "jensenshannon", "support_tickets_30d", "churn_probability", "0.4"):
        assert text in page
    assert "3 of 3 features drifted" not in page and "2 of 3 features drifted" in page
    # The report inside the page, sandboxed.
    assert '<iframe class="report"' in page and 'src="/churnops/report/2025-03-02/3"' in page
    assert 'sandbox="allow-scripts allow-popups allow-downloads"' in page
    assert 'href="/churnops/feature/tenure_days?night=2025-03-02"' in page


def _lineage_event(settings: Settings, task: str, inputs: list, outputs: list) -> dict:
    """One COMPLETE event of the night's run, shaped as Airflow's OpenLineage provider
    writes it (tests/e2e/test_nightly_dag.py checks the real ones)."""
    return {
        "eventType": "COMPLETE",
        "eventTime": f"{NIGHT}T03:00:00+00:00",
        "job": {"name": f"churn_nightly.{task}", "facets": {"jobType": {"jobType": "TASK"}}},
        "run": {
            "facets": {
                "airflow": {
                    "dagRun": {
                        "dag_id": "churn_nightly",
                        "run_id": "scheduled__2025-03-02",
                        "logical_date": f"{NIGHT}T02:30:00+00:00",
                        "conf": {},
                    }
                }
            }
        },
        "inputs": [{"namespace": d.namespace, "name": d.name} for d in inputs],
        "outputs": [{"namespace": d.namespace, "name": d.name} for d in outputs],
    }


@pytest.mark.integration
def test_night_page_shows_the_lineage_of_its_predictions(client, auth, populated) -> None:
    from churnops.lineage import events_file, location_dataset, model_dataset, table_dataset

    settings = populated
    before = client.get("/churnops/night/2025-03-02", headers=auth)
    assert "No lineage events for this night" in before.text
    drop = location_dataset(settings.paths.state_dir / "data/landing/customers/dt=2025-03-02")
    raw, marts = (
        table_dataset(settings, "raw.customers"),
        table_dataset(settings, "marts.fct_customer_features"),
    )
    events = [
        _lineage_event(settings, "ingest.validate_and_load", [drop], [raw]),
        _lineage_event(settings, "features.dbt_build", [raw], [marts]),
        _lineage_event(
            settings,
            "score.publish",
            [model_dataset(settings, 3), marts],
            [table_dataset(settings, "scoring.predictions")],
        ),
    ]
    path = events_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(event) + "\n" for event in events))

    page = client.get("/churnops/night/2025-03-02", headers=auth)
    assert page.status_code == 200, page.text
    assert "Airflow run <code>scheduled__2025-03-02</code>: 1 landing drops" in page.text
    assert "a dbt build of\n1 models, scored by\nv3 (OpenLineage events" in page.text
    csv = client.get("/churnops/night/2025-03-02?format=csv&table=lineage", headers=auth)
    assert csv.status_code == 200, csv.text
    rows = csv.text.strip().splitlines()
    assert rows[0] == "step,what"  # CSV headers are the column names
    assert rows[1:] == [
        f"landing drop,{drop.uri}",
        "raw table,raw.customers",
        "feature build (dbt),marts.fct_customer_features",
        "model version,3",
        "predictions,scoring.predictions",
    ]


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
        assert views.BUSY_MESSAGE in response.text
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


# ----------------------------------------------------------------------------- unit


@pytest.mark.unit
@pytest.mark.parametrize(
    "raw", ["", "2025-3-2", "2025-02-30", "../2025-03-02", "2025-03-02/..", "２０２５-03-02"]
)
def test_parse_day_rejects_anything_but_a_date(raw: str) -> None:
    with pytest.raises(ValueError):
        queries.parse_day(raw)


@pytest.mark.unit
@pytest.mark.parametrize("raw", ["", "..", "v3", "-3", "3/..", "3.0", "1" * 10, "３"])
def test_parse_version_rejects_anything_but_digits(raw: str) -> None:
    with pytest.raises(ValueError):
        queries.parse_version(raw)


@pytest.mark.unit
@pytest.mark.parametrize("raw", ["", "..", "a/b", "a.b", "%2e", "1abc", "x" * 81, "tenure days"])
def test_parse_feature_rejects_anything_but_a_column_name(raw: str) -> None:
    with pytest.raises(ValueError):
        queries.parse_feature(raw)


@pytest.mark.unit
def test_the_score_ratio_puts_every_method_on_one_scale() -> None:
    # A distance over its threshold; a p-value method: the threshold over the p-value.
    assert queries.score_ratio(0.2, None, 0.1) == pytest.approx(2.0)
    assert queries.score_ratio(0.05, None, 0.1) == pytest.approx(0.5)
    assert queries.score_ratio(0.3, 0.001, 0.01) == pytest.approx(10.0)
    assert queries.score_ratio(0.3, 0.02, 0.01) == pytest.approx(0.5)
    assert queries.score_ratio(0.3, 0.0, 0.01) == queries.RATIO_CAP
    assert queries.score_ratio(None, None, 0.1) is None


@pytest.mark.unit
def test_filters_parse_and_round_trip() -> None:
    f = queries.parse_filters(
        {"from": "2025-03-01", "to": "2025-03-02", "version": "03", "drifted": "1"}
    )
    assert (f.since, f.until, f.model_version, f.drifted_only) == (EARLIER, NIGHT, "3", True)
    assert queries.parse_filters(f.query()) == f
    with pytest.raises(ValueError, match="starts"):
        queries.parse_filters({"from": "2025-03-02", "to": "2025-03-01"})


@pytest.mark.unit
def test_csv_holds_the_table_rows_with_lists_joined() -> None:
    table = views.Table(
        "t",
        "T",
        (views.Column("as_of_date", "Night"), views.Column("features", "F", "list")),
        [{"as_of_date": NIGHT, "features": ["a", "b,c"]}, {"as_of_date": EARLIER, "features": []}],
    )
    assert app.csv_text(table) == 'as_of_date,features\n2025-03-02,"a; b,c"\n2025-03-01,\n'


@pytest.mark.unit
def test_values_from_the_warehouse_are_escaped_in_pages_and_figures() -> None:
    evil = "</script><script>alert(1)</script>"
    page = views.Page(
        200,
        "nights.html",
        {
            "title": "t",
            "empty": False,
            "empty_message": "",
            "matched": 1,
            "filters": queries.NightFilters(),
            "versions": ['3"><b>x'],
            "charts": {"nights": {"data": [{"x": [evil]}], "layout": {}}},
            "evaluations": 1,
            "fired": 0,
        },
        {
            "nights": views.Table(
                "nights",
                "Nights",
                views.NIGHT_COLUMNS,
                [
                    {
                        "as_of_date": NIGHT,
                        "model_version": "3",
                        "drifted_features": [evil],
                        "report": False,
                    }
                ],
            )
        },
    )
    html = app.render(page, "/churnops", "", {})
    assert evil not in html and "<b>x" not in html
    assert "&lt;/script&gt;" in html  # in the table
    assert "\\u003c/script\\u003e" in html  # in the figure's JSON block
    assert "<script>" not in html


@pytest.mark.unit
def test_static_files_are_a_fixed_table_of_existing_files() -> None:
    files = app.static_files()
    assert set(files) == {"plotly.min.js", "portal.js", "portal.css"}
    for path, _ in files.values():
        assert path.is_file()
    assert "plotly.js v" in files["plotly.min.js"][0].read_text()[:200]


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
    assert views.BUSY_MESSAGE not in during.text
    # The night as it was (monthly_revenue drifted on that night only), not half of the new.
    assert "monthly_revenue" in during.text and "days_since_last_ticket" not in during.text
    assert after.status_code == 200
    assert "days_since_last_ticket" in after.text and "monthly_revenue" not in after.text


@pytest.mark.unit
def test_report_page_refuses_bad_addresses_and_serves_files(tmp_path: Path) -> None:
    settings = load_settings({"CHURNOPS_STATE_DIR": str(tmp_path)})
    reader = queries.PortalReader(settings)
    assert views.report_page(reader, "..", "3").status == 400
    assert views.report_page(reader, "2025-03-02", "../3").status == 400
    missing = views.report_page(reader, "2025-03-02", "3")
    assert missing.status == 404 and missing.file is None
    path = reader.report_path(NIGHT, "3")
    path.parent.mkdir(parents=True)
    path.write_text(REPORT_HTML)
    served = views.report_page(reader, "2025-03-02", "03")
    assert served.status == 200 and served.file == path


@pytest.mark.integration
def test_on_postgres_every_page_answers_from_the_same_stores(
    client, auth, on_postgres: str, populated: Settings
) -> None:
    assert populated.warehouse.kind == "postgres"
    for path in (
        "/churnops/?drifted=1&version=3",
        "/churnops/heatmap",
        "/churnops/night/2025-03-02",
        "/churnops/feature/tenure_days",
        "/churnops/performance",
        "/churnops/scores",
        "/churnops/retraining",
    ):
        response = client.get(path, headers=auth)
        assert response.status_code == 200, (path, response.text[-500:])
    histogram = _figures(client.get("/churnops/feature/tenure_days", headers=auth).text)
    assert histogram["histogram"]["data"][1]["y"] == [0.6, 0.3, 0.1]
    bands = _figures(client.get("/churnops/scores", headers=auth).text)["bands"]["data"]
    assert {t["name"]: t["y"] for t in bands}["high"] == [0.5, pytest.approx(1 / 3)]


@pytest.mark.unit
def test_a_short_span_gets_one_tick_a_night_and_a_long_one_plotlys_own() -> None:
    from churnops.portal import charts

    short = charts.mean_score([(EARLIER, 0.1), (NIGHT, 0.2)])
    assert short["layout"]["xaxis"]["dtick"] == charts.DAY_MS
    year = [(EARLIER - dt.timedelta(days=i), 0.1) for i in range(365)]
    assert "dtick" not in charts.mean_score(year)["layout"]["xaxis"]
