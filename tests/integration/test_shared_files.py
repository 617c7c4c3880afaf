"""The shared files on a real S3-compatible server (moto's, on a loopback port): a day's
drops ingested from it (a good day and a bad drop, quarantined there), a drift report
written to it and served by the portal, a compiled model library shared between two
workers' caches through it; and a base this worker cannot see failing in one line."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from churnops.contracts import LANDING_TABLES
from churnops.registry.champion import LoadedModel
from churnops.settings import Settings, SimulationSettings, load_settings
from churnops.storage import SharedFiles, SharedPathUnavailable, shared_files_for
from tests.conftest import SMALL_START
from tests.helpers import cli_one_line_error

pytestmark = pytest.mark.integration

BUCKET = "churnops-shared"
SECRET = "s3cr3t-not-in-any-message"
GOOD_DAY = SMALL_START
BAD_DAY = SMALL_START + dt.timedelta(days=1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _clear_caches() -> None:
    import s3fs

    from churnops import storage

    s3fs.S3FileSystem.clear_instance_cache()
    storage._shared.cache_clear()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """AWS_* variables for the loopback server (what a worker's environment would carry)."""
    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "churnops-test",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _clear_caches()
    yield env
    _clear_caches()


@pytest.fixture
def bucket(s3_env: dict[str, str]) -> Iterator[str]:
    """An empty bucket for one test (what a reader sees there is read with boto3, not
    through churnops)."""
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    yield BUCKET
    listed = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    for item in listed:
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def _keys(prefix: str) -> set[str]:
    import boto3

    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return {item["Key"].removeprefix(prefix) for item in listed.get("Contents", [])}


def _object(key: str) -> bytes:
    import boto3

    return bytes(boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())


def _settings(tmp_path: Path, data_url: str, **extra: str) -> Settings:
    return load_settings(
        {"CHURNOPS_STATE_DIR": str(tmp_path / "state"), "CHURNOPS_DATA_URL": data_url, **extra}
    )


# ------------------------------------------------------------------ ingest
def test_a_day_is_ingested_from_s3_and_a_bad_drop_is_quarantined_there(
    tmp_path: Path, bucket: str, small_sim: SimulationSettings
) -> None:
    from churnops.ingest import DropRejected, ingest_day
    from churnops.simulate import Corruption, simulate_days
    from churnops.stores import stores_for

    settings = _settings(tmp_path, f"s3://{bucket}/prod")
    files = shared_files_for(settings).check()
    simulate_days(small_sim, GOOD_DAY, GOOD_DAY, files.landing_dir)
    simulate_days(
        small_sim,
        BAD_DAY,
        BAD_DAY,
        files.landing_dir,
        [Corruption(BAD_DAY, "out_of_range", "usage_daily")],
    )
    assert _keys("prod/landing/usage_daily/") == {
        f"dt={GOOD_DAY}/part-0.parquet",
        f"dt={BAD_DAY}/part-0.parquet",
    }
    raw = stores_for(settings).raw

    loaded = ingest_day(raw, files, GOOD_DAY)
    assert set(loaded.loaded) == set(LANDING_TABLES)
    assert loaded.rows_loaded["usage_daily"] > 1_000
    assert raw.row_count("usage_daily", GOOD_DAY) == loaded.rows_loaded["usage_daily"]
    verdict = json.loads(
        _object(f"prod/validation/usage_daily/dt={GOOD_DAY}/validation_result.json")
    )
    assert verdict["passed"] is True
    assert verdict["landing_folder"] == f"s3://{bucket}/prod/landing/usage_daily/dt={GOOD_DAY}"

    with pytest.raises(DropRejected, match="usage_daily") as rejected:
        ingest_day(raw, files, BAD_DAY)
    assert "part-0.parquet column 'calls' expect_column_values_to_be_between" in str(rejected.value)
    assert set(rejected.value.loaded) == set(LANDING_TABLES) - {"usage_daily"}
    assert raw.row_count("usage_daily", BAD_DAY) is None  # nothing of it loaded
    # The drop moved whole, with its report and Data Docs; landing holds nothing of it.
    quarantined = _keys(f"prod/quarantine/usage_daily/dt={BAD_DAY}/")
    assert {"part-0.parquet", "validation_result.json", "data_docs/index.html"} <= quarantined
    assert not _keys(f"prod/landing/usage_daily/dt={BAD_DAY}/")
    report = json.loads(_object(f"prod/quarantine/usage_daily/dt={BAD_DAY}/validation_result.json"))
    assert report["passed"] is False and report["failures"][0]["column"] == "calls"

    # A retry repeats the verdict from quarantine; nothing was written on local disk.
    with pytest.raises(DropRejected, match="is in quarantine"):
        ingest_day(raw, files, BAD_DAY, ["usage_daily"])
    assert not (settings.paths.state_dir / "data").exists()


def test_a_landing_folder_left_half_moved_on_s3_is_refused_not_validated(
    tmp_path: Path, bucket: str
) -> None:
    from churnops.ingest import DropRejected, ingest_drop
    from churnops.ingest.quarantine import MOVING_MARKER
    from churnops.stores import stores_for
    from tests.landing_drops import valid_table, write_drop

    settings = _settings(tmp_path, f"s3://{bucket}/prod")
    files = shared_files_for(settings).check()
    # A drop whose move to quarantine stopped after the marker: the rest passes validation.
    write_drop(files.landing_dir, "churn_events", GOOD_DAY, valid_table("churn_events", GOOD_DAY))
    folder = files.landing_dir / "churn_events" / f"dt={GOOD_DAY}"
    (folder / MOVING_MARKER).write_bytes(b"quarantine/churn_events")
    raw = stores_for(settings).raw
    with pytest.raises(DropRejected, match="stopped half-way"):
        ingest_drop(raw, files, "churn_events", GOOD_DAY)
    assert raw.row_count("churn_events", GOOD_DAY) is None


# ------------------------------------------------------------------ reports
def test_a_drift_report_is_written_to_s3_and_served_by_the_portal(
    tmp_path: Path, bucket: str
) -> None:
    from churnops.monitor.drift import drift_report
    from churnops.portal import views
    from churnops.portal.queries import PortalReader
    from tests.integration.test_drift_report import NIGHT, VERSION, _frames

    settings = _settings(tmp_path, f"s3://{bucket}/prod", CHURNOPS_DRIFT_SAMPLE_ROWS="1500")
    reference, current = _frames()
    result = drift_report(settings, NIGHT, VERSION, reference, current)
    folder = f"prod/reports/drift/{NIGHT}/v{VERSION}/"
    assert _keys(folder) == {"report.html", "report.json"}
    assert str(result.html_path) == f"s3://{bucket}/{folder}report.html"
    stored = json.loads(_object(folder + "report.json"))
    drifted = {v.feature for v in result.features if v.drifted}
    assert "logins_30d" in drifted and json.dumps(stored).count("logins_30d") > 0

    reader = PortalReader(settings)
    page = views.report_page(reader, NIGHT.isoformat(), VERSION)
    assert page.status == 200 and page.file is None
    assert page.html == _object(folder + "report.html").decode()
    assert page.headers == views.REPORT_HEADERS  # served sandboxed, as a local file is
    missing = views.report_page(reader, NIGHT.isoformat(), "99")
    assert missing.status == 404
    assert not (settings.paths.state_dir / "data").exists()


def test_the_portal_answers_503_in_one_line_when_the_store_is_unreachable(
    tmp_path: Path, s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from churnops.portal import views
    from churnops.portal.queries import PortalReader

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")
    _clear_caches()
    settings = _settings(tmp_path, f"s3://{BUCKET}/prod")
    page = views.report_page(PortalReader(settings), "2025-09-01", "3")
    assert page.status == 503  # not "404 no such report": the store did not answer
    text = page.context["message"]
    assert f"the shared data path s3://{BUCKET}/prod is not reachable" in text
    assert "Could not connect" in text and SECRET not in text


# ------------------------------------------------------------------ compiled models
@pytest.fixture(scope="module")
def model() -> LoadedModel:
    from churnops.score.engine import find_compiler
    from tests.integration.test_scoring_engine import _loaded

    if find_compiler() is None:
        pytest.skip("no C compiler")
    return _loaded("1", seed=3)


def test_a_compiled_library_is_built_once_and_shared_between_workers(
    tmp_path: Path, bucket: str, model: LoadedModel, caplog: pytest.LogCaptureFixture
) -> None:
    import numpy as np

    from churnops.score.engine import compiled_engine, find_compiler, library_path

    compiler = find_compiler()
    assert compiler is not None
    files = SharedFiles(f"s3://{bucket}/prod", create=False).check()
    first_cache, second_cache = tmp_path / "worker-a", tmp_path / "worker-b"

    built = compiled_engine(model, first_cache, compiler, 2, files)
    assert built.compile_seconds > 0 and built.detail.startswith("compiled")
    name = library_path(model, first_cache).name
    assert _keys("prod/models/compiled/") == {name}
    assert _object(f"prod/models/compiled/{name}") == (first_cache / name).read_bytes()

    # The other worker fetches it: no compiler run, the same scores.
    fetched = compiled_engine(model, second_cache, compiler, 2, files)
    assert fetched.compile_seconds == 0.0 and fetched.detail.startswith("shared")
    assert (second_cache / name).read_bytes() == (first_cache / name).read_bytes()
    rows = np.random.default_rng(1).normal(size=(50, len(model.features)))
    assert np.array_equal(built.raw_scores(rows), fetched.raw_scores(rows))

    # A store that refuses the upload (its bucket is gone) does not fail scoring.
    gone = SharedFiles(f"s3://{bucket}-gone/prod", create=False)
    with caplog.at_level("WARNING", logger="churnops.score.engine"):
        alone = compiled_engine(model, tmp_path / "worker-c", compiler, 2, gone)
    assert alone.compile_seconds > 0
    assert np.array_equal(alone.raw_scores(rows), built.raw_scores(rows))
    assert any("could not be shared" in r.getMessage() for r in caplog.records)


def test_a_local_base_compiles_in_place_with_no_copy(tmp_path: Path, model: LoadedModel) -> None:
    from churnops.score.engine import compiled_engine, find_compiler, library_path

    compiler = find_compiler()
    assert compiler is not None
    default = load_settings({"CHURNOPS_STATE_DIR": str(tmp_path / "state")})
    files = shared_files_for(default)
    # Unset CHURNOPS_DATA_URL: the shared folder is the state dir's cache, as before.
    assert files.models_dir == default.paths.compiled_models_dir
    mounted = tmp_path / "mnt"
    mounted.mkdir()
    shared = SharedFiles(f"file://{mounted}", create=False).check()
    engine = compiled_engine(model, tmp_path / "cache", compiler, 2, shared)
    assert engine.compile_seconds > 0
    assert (mounted / "models" / "compiled" / library_path(model, mounted).name).is_file()
    assert not (tmp_path / "cache").exists()
    # A worker without the mount scores from its own cache and creates no mount point.
    unmounted = SharedFiles(f"file://{tmp_path}/not-mounted", create=False)
    alone = compiled_engine(model, tmp_path / "cache", compiler, 2, unmounted)
    assert alone.compile_seconds > 0
    assert (tmp_path / "cache" / library_path(model, mounted).name).is_file()
    assert not (tmp_path / "not-mounted").exists()


# ------------------------------------------------------------------ a base it cannot see
def _no_credentials(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    return f"s3://{BUCKET}/prod"


def _endpoint_down(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")
    return f"s3://{BUCKET}/prod"


UNREACHABLE = {
    "unknown_bucket": (lambda env, mp, tmp: "s3://churnops-no-such-bucket/prod", "does not exist"),
    "no_credentials": (_no_credentials, "Unable to locate credentials"),
    "endpoint_down": (_endpoint_down, "Could not connect"),
    "missing_mount": (lambda env, mp, tmp: f"file://{tmp}/not-mounted", "no such directory"),
}


@pytest.mark.parametrize("case", sorted(UNREACHABLE))
def test_a_base_this_worker_cannot_see_is_one_line_naming_it(
    case: str,
    tmp_path: Path,
    bucket: str,
    s3_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_url, expected = UNREACHABLE[case]
    url = make_url(s3_env, monkeypatch, tmp_path)
    _clear_caches()
    settings = _settings(tmp_path, url)
    with pytest.raises(SharedPathUnavailable) as caught:
        shared_files_for(settings).check()
    message = str(caught.value)
    assert "\n" not in message and url in message and "CHURNOPS_DATA_URL" in message
    assert expected in message, message
    assert SECRET not in message
    assert not (tmp_path / "not-mounted").exists()  # a missing mount is never created


def test_the_cli_says_it_in_one_line_without_a_traceback(tmp_path: Path) -> None:
    line = cli_one_line_error(
        ["simulate", "--start", "2025-01-01"],
        {
            "CHURNOPS_STATE_DIR": str(tmp_path / "state"),
            "CHURNOPS_DATA_URL": f"{tmp_path}/not-mounted",
        },
    )
    assert line.startswith("churnops simulate: the shared data path")
    assert f"{tmp_path}/not-mounted" in line
