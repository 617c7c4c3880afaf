"""CHURNOPS_DATA_URL and the shared files' layout: the default is today's local layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnops.settings import SettingsError, load_settings
from churnops.storage import (
    SharedFiles,
    SharedPathUnavailable,
    glob,
    read_parquet,
    safe_url,
    shared_files_for,
    write_parquet,
    write_text,
    writing,
)

pytestmark = pytest.mark.unit


def test_unset_the_shared_files_are_the_state_dirs_folders_as_before(tmp_path: Path) -> None:
    settings = load_settings({"CHURNOPS_STATE_DIR": str(tmp_path)})
    files = shared_files_for(settings)
    paths = settings.paths
    assert not settings.storage.configured and files.is_local
    assert files.landing_dir == paths.landing_dir == tmp_path / "data" / "landing"
    assert files.quarantine_dir == paths.quarantine_dir
    assert files.validation_dir == paths.validation_dir
    assert files.reports_dir == paths.reports_dir
    assert files.models_dir == paths.compiled_models_dir
    assert all(isinstance(p, Path) for p in (files.landing_dir, files.models_dir))
    files.check()  # the default base is created on first use
    assert (tmp_path / "data").is_dir()


def test_a_data_url_moves_every_area_and_the_models_with_it(tmp_path: Path) -> None:
    settings = load_settings(
        {"CHURNOPS_STATE_DIR": str(tmp_path), "CHURNOPS_DATA_URL": "s3://bucket/churnops/"}
    )
    assert settings.storage.configured
    assert settings.storage.data_url == "s3://bucket/churnops"
    files = SharedFiles(settings.storage.data_url, settings.storage.models_url)
    assert not files.is_local
    assert str(files.landing_dir) == "s3://bucket/churnops/landing"
    assert str(files.models_dir) == "s3://bucket/churnops/models/compiled"
    mounted = load_settings({"CHURNOPS_DATA_URL": f"file://{tmp_path}/mnt"})
    assert shared_files_for(mounted).landing_dir == tmp_path / "mnt" / "landing"


def test_a_relative_data_url_is_refused() -> None:
    with pytest.raises(SettingsError, match="CHURNOPS_DATA_URL='data'"):
        load_settings({"CHURNOPS_DATA_URL": "data"})


def test_urls_shown_carry_no_credentials() -> None:
    assert safe_url("s3://bucket/prefix") == "s3://bucket/prefix"
    assert safe_url("https://user:pw@host:9000/p?token=t") == "https://host:9000/p"
    assert safe_url("/mnt/churnops") == "/mnt/churnops"


def test_a_configured_local_base_is_never_created(tmp_path: Path) -> None:
    files = SharedFiles(str(tmp_path / "mnt"), create=False)
    with pytest.raises(SharedPathUnavailable, match="no such directory"):
        files.check()
    assert not (tmp_path / "mnt").exists()


def test_local_writes_are_whole_and_leave_nothing_on_failure(tmp_path: Path) -> None:
    import pyarrow as pa

    target = tmp_path / "a" / "b.json"
    write_text(target, "one")
    with pytest.raises(RuntimeError), writing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "one"
    assert [p.name for p in glob(target.parent, "*")] == ["b.json"]  # no temp left
    table = pa.table({"x": [1, 2, 3]})
    write_parquet(table, tmp_path / "t.parquet")
    assert read_parquet(tmp_path / "t.parquet").equals(table)
