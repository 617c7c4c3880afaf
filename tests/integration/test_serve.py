"""The real-time service against the real thing: a trained champion and a challenger on a
canary share, the night scored by the batch and materialized into Redis, and
``churnops serve`` (uvicorn) in subprocesses on free ports: one on the store, one on a
closed port (the store down).

Parity: every customer of the night gets, online, the batch's probability (within 1e-12),
band, contact flag, serving model and reasons. Failures: no or wrong key, unknown
customer, bad payload, rate limit, store down (stale batch answers, then the breaker),
keys created and revoked by the CLI, the champion moved while requests keep coming, and
schemathesis fuzzing from the service's own OpenAPI: 4xx with a body, never a 5xx."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from churnops.serve.schemas import BatchAnswer, Score
from churnops.settings import Settings
from tests.helpers import canary_rollout
from tests.trained_state import TRAINED_ENV, trained_state

pytestmark = pytest.mark.integration

KEY = f"test-key-{uuid.uuid4().hex}"
RATE_LIMIT = 50


@dataclass
class Night:
    settings: Settings
    env: dict[str, str]
    night: dt.date
    batch: dict[int, dict[str, Any]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Night]:
    from churnops.online import OnlineStore
    from churnops.online.materialize import materialize_night
    from churnops.registry.tracking import mlflow_client
    from churnops.retrain import retrain
    from churnops.score import score_day
    from churnops.stores import stores_for
    from churnops.warehouse import warehouse_for
    from churnops.warehouse.duckdb_warehouse import release_dbt_handles

    state = tmp_path_factory.mktemp("serve")
    env = {
        "CHURNOPS_ONLINE_STORE_PREFIX": f"churnops-serve-test-{uuid.uuid4().hex[:12]}",
        "CHURNOPS_CANARY_SHARE": "0.3",
    }
    settings = trained_state(state, **env)
    outcome = retrain(
        settings,
        stores_for(settings).features,
        actor="pytest",
        reason="challenger",
        require_approval=True,
    )
    assert outcome.action in {"keep", "await_approval"}
    client = mlflow_client(settings)
    client.set_registered_model_alias(settings.mlflow.registered_model_name, "challenger", "2")
    # The challenger serves its canary share inside a rollout's canary phase (the one
    # share the batch and the service read, churnops.rollout).
    with canary_rollout(settings, "2", 0.3):
        stores = stores_for(settings)
        day = settings.simulation.history_end
        result = score_day(settings, stores.features, stores.scoring, day)
        assert result.canary_rows > 0, result.message
        batch = {int(r["customer_id"]): r for r in stores.scoring.night(day).to_pylist()}
        online = OnlineStore(settings.online)
        materialized = materialize_night(stores.features, online, day)
        assert materialized.state == "switched" and materialized.rows == len(batch)
        # The services read the warehouse (the stale answers): DuckDB admits them only once
        # this process holds no handle on the file.
        warehouse_for(settings).dispose()
        release_dbt_handles()
        try:
            yield Night(
                settings, {"CHURNOPS_STATE_DIR": str(state), **TRAINED_ENV, **env}, day, batch
            )
        finally:
            online.drop_all()


class Server:
    def __init__(self, env: dict[str, str], log: Path, key: str | None = KEY) -> None:
        """``churnops serve`` on a free port; with ``key`` None, none is configured (the
        local profile then makes a development key and prints it)."""
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {k: v for k, v in os.environ.items() if not k.startswith("CHURNOPS_")}
        full.update(env)
        full.pop("CHURNOPS_SERVE_API_KEY", None)
        if key is not None:
            full["CHURNOPS_SERVE_API_KEY"] = key
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "churnops.cli", "serve", "--port", str(self.port)],
            env=full,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def wait(self, path: str) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if self.client.get(path).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{path} never answered 200:\n{self.log.read_text()}")

    def post(self, path: str, body: Any, key: str | None = KEY) -> httpx.Response:
        headers = {"X-API-Key": key} if key else {}
        return self.client.post(path, json=body, headers=headers)

    def metric(self, line_start: str) -> float:
        for line in self.client.get("/metrics").text.splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def server(night: Night, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        **night.env,
        "CHURNOPS_SERVE_RATE_LIMIT": str(RATE_LIMIT),
        "CHURNOPS_SERVE_MODEL_POLL_SECONDS": "1",
        "CHURNOPS_SERVE_SAMPLE_SHARE": "1",
    }
    served = Server(env, tmp_path_factory.mktemp("logs") / "serve.log")
    served.wait("/readyz")
    yield served
    served.stop()
    assert KEY not in served.log.read_text()


@pytest.fixture  # stopped after its test: it holds the DuckDB file (read only) meanwhile
def store_down(night: Night, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        **night.env,
        "CHURNOPS_ONLINE_STORE_URL": f"redis://127.0.0.1:{_free_port()}/0",
        "CHURNOPS_SERVE_BREAKER_MIN_CALLS": "5",
    }
    down = Server(env, tmp_path_factory.mktemp("logs") / "serve-down.log")
    down.wait("/healthz")
    yield down
    down.stop()


def test_every_customer_scores_online_as_in_the_batch(night: Night, server: Server) -> None:
    ids = sorted(night.batch)
    online: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), 1000):
        answer = server.post("/v1/score:batch", {"customer_ids": ids[start : start + 1000]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["not_found"] == []
        BatchAnswer.model_validate(answer.json())
        online.update({s["customer_id"]: s for s in answer.json()["scores"]})
    assert set(online) == set(ids)
    worst = max(
        abs(online[i]["churn_probability"] - night.batch[i]["churn_probability"]) for i in ids
    )
    assert worst <= 1e-12
    for i in ids:
        got, want = online[i], night.batch[i]
        assert (got["risk_band"], got["contact"], got["served_by"], got["model_version"]) == (
            want["risk_band"],
            want["contact"],
            want["served_by"],
            want["model_version"],
        ), i
        if want["reason_codes"] is not None:  # the batch gives the top band its reasons
            assert got["reasons"] == want["reason_codes"], i
        assert got["feature_as_of_date"] == night.night.isoformat() and got["stale"] is False
    served_by = {s["served_by"] for s in online.values()}
    assert served_by == {"champion", "challenger"}  # the canary is served online too


def test_one_customer_answer(night: Night, server: Server) -> None:
    customer = min(night.batch)
    answer = server.post("/v1/score", {"customer_id": customer})
    assert answer.status_code == 200
    body = answer.json()
    assert Score.model_validate(body).model_dump() == body  # exactly the documented fields
    assert body["churn_probability"] == night.batch[customer]["churn_probability"]
    assert body["model_name"] == night.settings.mlflow.registered_model_name
    assert len(body["reasons"]) <= night.settings.scoring.reason_count


def test_credentials(server: Server) -> None:
    before = server.metric('churnops_serve_errors_total{kind="unauthorized"}')
    for key in (None, "wrong", "cok_abcd_wrong"):
        answer = server.post("/v1/score", {"customer_id": 1}, key=key)
        assert answer.status_code == 401
        assert answer.json()["error"] == "unauthorized"
    assert server.post("/v1/score:batch", {"customer_ids": [1]}, key=None).status_code == 401
    assert server.metric('churnops_serve_errors_total{kind="unauthorized"}') == before + 4
    assert server.client.get("/healthz").status_code == 200  # open
    metrics = server.client.get("/metrics").text
    assert 'churnops_serve_model_info{canary_share="0.3",challenger_version="2"' in metrics
    assert "churnops_serve_request_seconds_bucket" in metrics


def test_unknown_customer_and_bad_payloads(server: Server) -> None:
    unknown = server.post("/v1/score", {"customer_id": 987_654_321})
    assert unknown.status_code == 404
    assert "987654321" in unknown.json()["detail"]
    for body in (
        {},
        {"customer_id": "abc"},
        {"customer_id": -1},
        [1, 2],
        {"customer_ids": list(range(1001))},
    ):
        path = "/v1/score:batch" if "customer_ids" in body else "/v1/score"
        answer = server.post(path, body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"] == "bad_payload" and answer.json()["detail"]
    raw = server.client.post(
        "/v1/score",
        content=b"{not json",
        headers={"X-API-Key": KEY, "content-type": "application/json"},
    )
    assert raw.status_code == 422


def test_rate_limit_per_customer(night: Night, server: Server) -> None:
    customer = max(night.batch)
    statuses = [
        server.post("/v1/score", {"customer_id": customer}).status_code
        for _ in range(RATE_LIMIT + 5)
    ]
    limited = [s for s in statuses if s == 429]
    # The window is the clock's minute: a request or two may fall into the next one.
    assert len(limited) >= 3 and set(statuses) <= {200, 429}, statuses
    answer = server.post("/v1/score", {"customer_id": customer})
    if answer.status_code == 429:
        assert int(answer.headers["Retry-After"]) <= 60 and answer.json()["error"] == "rate_limited"
    # another customer is not limited
    assert server.post("/v1/score", {"customer_id": min(night.batch)}).status_code == 200


def test_store_down_answers_stale_batch_scores_then_opens_the_breaker(
    night: Night, store_down: Server
) -> None:
    assert store_down.client.get("/readyz").status_code == 503
    customer = sorted(night.batch)[10]
    first = store_down.post("/v1/score", {"customer_id": customer})
    assert first.status_code == 200, first.text
    body = first.json()
    assert Score.model_validate(body).model_dump() == body
    assert body["stale"] is True and "unavailable" in body["stale_reason"]
    assert body["churn_probability"] == night.batch[customer]["churn_probability"]
    assert body["feature_as_of_date"] == night.night.isoformat()
    assert "127.0.0.1" in body["stale_reason"]
    for _ in range(6):
        store_down.post("/v1/score", {"customer_id": customer})
    later = store_down.post("/v1/score", {"customer_id": customer}).json()
    assert "breaker open" in later["stale_reason"], later
    assert store_down.metric('churnops_serve_breaker_open{dependency="online_store"}') == 1
    unknown = store_down.post("/v1/score", {"customer_id": 987_654_321})
    assert unknown.status_code == 404


def test_a_request_over_its_time_limit_is_504(night: Night) -> None:
    """In-process (the app on a test client): a time limit no request can meet."""
    from fastapi.testclient import TestClient

    from churnops.serve.app import create_app
    from churnops.settings import load_settings

    settings = load_settings(
        {**night.env, "CHURNOPS_SERVE_TIMEOUT_SECONDS": "0.000001", "CHURNOPS_SERVE_API_KEY": KEY}
    )
    with TestClient(create_app(settings)) as client:
        answer = client.post(
            "/v1/score", json={"customer_id": min(night.batch)}, headers={"X-API-Key": KEY}
        )
        metrics = client.get("/metrics").text
    assert answer.status_code == 504, answer.text
    assert answer.json() == {"error": "timeout", "detail": "no answer within 1e-06 s"}
    assert 'churnops_serve_errors_total{kind="timeout"} 1.0' in metrics


def test_keys_created_and_revoked_by_the_cli(night: Night, server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNOPS_")} | night.env

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "churnops.cli", "serve-keys", *args],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    key = cli("create", "--label", "pytest").splitlines()[-1]
    key_id = key.split("_")[1]
    keys_file = Path(night.env["CHURNOPS_STATE_DIR"]) / "serve" / "api_keys.json"
    assert key not in keys_file.read_text() and key.split("_", 2)[2] not in keys_file.read_text()
    assert server.post("/v1/score", {"customer_id": min(night.batch)}, key=key).status_code == 200
    assert f"{key_id}" in cli("list")
    cli("revoke", key_id)
    assert "revoked" in cli("list")
    assert server.post("/v1/score", {"customer_id": min(night.batch)}, key=key).status_code == 401


def test_fuzzed_requests_get_4xx_with_a_body_never_5xx(server: Server) -> None:
    """Schemathesis from the service's own OpenAPI: valid and invalid cases of every
    operation (a bounded number each), with and without the key."""
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation.modes import GenerationMode

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/score", "/v1/score:batch", "/readyz"}
    calls: list[int] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis_settings(
                max_examples=25,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
            )
            def check(case: Any) -> None:
                for key in (KEY, None):
                    response = case.call(
                        base_url=server.url, headers={"X-API-Key": key} if key else {}
                    )
                    calls.append(response.status_code)
                    assert response.status_code < 500, (case.method, case.path, response.text)
                    if response.status_code >= 400:
                        assert json.loads(response.text)["detail"], response.text

            try:
                check()
            except Unsatisfiable:
                # No input to break (GET /healthz): nothing negative to send.
                assert mode == GenerationMode.NEGATIVE and not operation.body, operation.path
    assert len(calls) > 100 and any(400 <= c < 500 for c in calls) and 200 in calls


def test_sampled_answers_reach_the_monitoring_store(night: Night, server: Server) -> None:
    """The service buffered every answer (sample share 1) in Redis; the nightly's move
    puts them in monitoring.online_requests, and the drift report's online section finds
    them on the night's features, equal to the batch's scores, none stale."""
    from churnops.monitor.nightly import monitor_night
    from churnops.monitor.store import online_traffic
    from churnops.online.samples import move_buffered_samples
    from churnops.serve.app import SAMPLED_ANSWERS_PER_BATCH
    from churnops.stores import stores_for
    from churnops.warehouse import warehouse_for

    # Answers of its own (the module's other tests add theirs): every one is sampled.
    ids = sorted(night.batch)[:40]
    assert server.post("/v1/score:batch", {"customer_ids": ids}).status_code == 200
    monitoring = stores_for(night.settings).monitoring
    said: list[str] = []
    try:
        # What the nightly's drift task does first.
        moved = move_buffered_samples(night.settings.online, monitoring, say=said.append)
        assert moved is not None and moved >= SAMPLED_ANSWERS_PER_BATCH
        assert said == [f"{moved} sampled online answers moved to monitoring.online_requests"]
        assert move_buffered_samples(night.settings.online, monitoring, said.append) == 0
        traffic = online_traffic(monitoring, night.night)
        # The night's drift report (the nightly's monitor task) has a section of its own.
        result = monitor_night(night.settings, monitoring, night.night)
    finally:
        warehouse_for(night.settings).dispose()
    assert traffic is not None
    assert traffic["night"] == night.night and traffic["answers"] == moved
    assert traffic["stale"] == 0 and traffic["max_difference"] <= 1e-12
    assert traffic["canary"] > 0
    assert result.online == traffic
    assert isinstance(result.drift.html_path, Path)
    page = result.drift.html_path.read_text()
    section = page[page.index('<div id="churnops-online"') :][:800]
    assert f"{moved:,} sampled answers of the real-time service" in section
    assert f"features of {night.night}" in section and ", 0 stale," in section
    assert (
        page.index("<body")
        < page.index('id="churnops-estimate"')
        < page.index('id="churnops-online"')
    )


def test_the_champion_moves_without_a_dropped_request(night: Night, server: Server) -> None:
    from churnops.registry.tracking import mlflow_client

    client = mlflow_client(night.settings)
    name = night.settings.mlflow.registered_model_name
    client.set_registered_model_alias(name, "champion", "2")
    client.delete_registered_model_alias(name, "challenger")
    customers = sorted(night.batch)[:40]
    statuses, versions = [], set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for customer in customers:
            answer = server.post("/v1/score", {"customer_id": customer})
            statuses.append(answer.status_code)
            versions.add(answer.json().get("model_version"))
        if server.client.get("/readyz").json().get("champion_version") == "2" and "2" in versions:
            break
    assert set(statuses) == {200}
    ready = server.client.get("/readyz").json()
    assert ready["champion_version"] == "2" and ready["challenger_version"] is None
    answer = server.post("/v1/score", {"customer_id": customers[0]}).json()
    assert answer["model_version"] == "2" and answer["served_by"] == "champion"


def test_without_a_configured_key_the_local_profile_prints_a_development_key(
    night: Night, tmp_path: Path
) -> None:
    """What a person gets from `make serve` after `make run`: a key for this run, printed
    with a curl line, that scores a customer of the night; the docs page answers."""
    served = Server(night.env, tmp_path / "serve.log", key=None)
    try:
        served.wait("/readyz")
        printed = served.log.read_text()
        [key] = [
            line.split(": ", 1)[1].strip()
            for line in printed.splitlines()
            if line.startswith("development API key (this run only): ")
        ]
        assert key.startswith("dev_") and f"-H 'X-API-Key: {key}'" in printed
        customer = min(night.batch)
        answer = served.post("/v1/score", {"customer_id": customer}, key=key)
        assert answer.status_code == 200, answer.text
        assert (
            abs(answer.json()["churn_probability"] - night.batch[customer]["churn_probability"])
            <= 1e-12
        )
        assert served.post("/v1/score", {"customer_id": customer}, key=KEY).status_code == 401
        assert served.client.get("/docs").status_code == 200
    finally:
        served.stop()


def test_with_the_online_store_down_the_samples_wait_and_the_report_goes_on(night: Night) -> None:
    import dataclasses

    from churnops.online.samples import move_buffered_samples
    from churnops.stores import stores_for

    port = _free_port()
    down = dataclasses.replace(night.settings.online, url=f"redis://127.0.0.1:{port}/0")
    said: list[str] = []
    monitoring = stores_for(night.settings).monitoring
    assert move_buffered_samples(down, monitoring, say=said.append) is None
    [line] = said
    assert f"online store redis://127.0.0.1:{port}" in line and "ConnectionError" in line, line
    assert line.endswith("the sampled online answers stay buffered for the next night")
    # No online store configured: nothing to move, nothing said.
    unset = dataclasses.replace(night.settings.online, url="")
    assert move_buffered_samples(unset, monitoring, say=said.append) is None and len(said) == 1
