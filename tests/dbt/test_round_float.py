"""round_float gives the same double on DuckDB and PostgreSQL, to the bit.

The macro (dbt_project/macros/cross_db.sql) is rendered by dbt for each engine and run on
a real DuckDB and a real PostgreSQL over the values where the two could part: 2-, 4- and
10-place ties and their neighbouring doubles, from 1e-6 up to the 1e8 the decimal(18, 10)
holds, negative as well, and sums that miss a tie by a bit. The control is PostgreSQL's own
float8 -> numeric cast, which keeps 15 significant digits: it must disagree with DuckDB on
some of these values, or they would not test anything.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tests.conftest import fresh_postgres_database

pytestmark = pytest.mark.integration

SEED = 20261207


def _hard_values() -> np.ndarray:
    """Ties of the 2-, 4- and 10-place roundings and the doubles either side of them, at
    every magnitude a feature takes, both signs; plus plain values and sums of tenths."""
    rng = np.random.default_rng(SEED)
    parts = []
    for magnitude in (1e-6, 1e-4, 1e-2, 1.0, 1e2, 1e4, 1e5, 1e6, 1e7, 9.9e7):
        for places in (2, 4, 10):
            scale = 10.0**places
            ties = (np.floor(rng.uniform(0.1, 1.0, 2_000) * magnitude * scale) + 0.5) / scale
            below = np.nextafter(ties, -np.inf)
            above = np.nextafter(ties, np.inf)
            parts += [ties, below, above, np.nextafter(below, -np.inf), np.nextafter(above, np.inf)]
        parts.append(rng.uniform(0, magnitude, 2_000))
    parts.append(np.cumsum(np.full(20_000, 0.1)))  # 0.1 + 0.1 + ... misses ties by bits
    parts.append(np.array([0.0, 9321136.724349998, 1770342.4149499983, 0.00004, 0.00005]))
    values = np.concatenate(parts)
    values = values[np.abs(values) < 99_999_999.99]
    return np.concatenate([values, -values])


def _rendered(warehouse: str, dsn: str | None, work_dir: Path, places: int) -> str:
    """``round_float(x, places)`` over table ``vals`` as dbt renders it for that engine."""
    from dbt.cli.main import dbtRunner

    from churnops.features import _environment, dbt_env
    from churnops.settings import load_settings

    env = {"CHURNOPS_STATE_DIR": str(work_dir / warehouse)}
    if dsn is not None:
        env |= {"CHURNOPS_WAREHOUSE": "postgres", "CHURNOPS_POSTGRES_DSN": dsn}
    settings = load_settings(env)
    project = str(settings.paths.dbt_project_dir)
    with _environment(dbt_env(settings)):
        result = dbtRunner().invoke(
            [
                "compile",
                "--project-dir",
                project,
                "--profiles-dir",
                project,
                "--target",
                settings.warehouse.dbt_target,
                "--target-path",
                str(work_dir / warehouse / "target"),
                "--log-path",
                str(work_dir / warehouse / "logs"),
                "--quiet",
                "--inline",
                f"select id, {{{{ round_float('x', {places}) }}}} as rounded from vals order by id",
            ]
        )
    assert result.success, result.exception
    return result.result.results[0].node.compiled_code


@pytest.fixture(scope="module")
def postgres_values() -> Iterator[tuple[str, np.ndarray]]:
    """A fresh database holding the values as ``vals (id, x float8)``, copied as text
    (PostgreSQL and Python both print the shortest text that reads back as the same double)."""
    import psycopg2

    values = _hard_values()
    with fresh_postgres_database("churnops_round_float") as dsn:
        connection = psycopg2.connect(dsn)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute("create table vals (id integer, x double precision)")
                rows = "".join(f"{i}\t{value!r}\n" for i, value in enumerate(values.tolist()))
                cursor.copy_expert("copy vals from stdin", io.StringIO(rows))
        finally:
            connection.close()
        yield dsn, values


def _on_postgres(dsn: str, sql: str) -> np.ndarray:
    import psycopg2

    connection = psycopg2.connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return np.array([row[1] for row in cursor.fetchall()], dtype=np.float64)
    finally:
        connection.close()


def _on_duckdb(values: np.ndarray, sql: str) -> np.ndarray:
    import duckdb

    connection = duckdb.connect()
    try:
        vals = pa.table({"id": np.arange(len(values), dtype=np.int32), "x": values})  # noqa: F841
        return connection.sql(sql).to_arrow_table().column("rounded").to_numpy()
    finally:
        connection.close()


def _bits(values: np.ndarray) -> np.ndarray:
    """The doubles' bit patterns: equal bits, not just ==, so a -0.0 for 0.0 would fail."""
    return values.view(np.int64)


@pytest.mark.parametrize("places", [4, 2])
def test_round_float_gives_the_same_double_on_both_engines(
    postgres_values: tuple[str, np.ndarray], tmp_path: Path, places: int
) -> None:
    dsn, values = postgres_values
    on_duckdb = _on_duckdb(values, _rendered("duckdb", None, tmp_path, places))
    on_postgres = _on_postgres(dsn, _rendered("postgres", dsn, tmp_path, places))

    differ = np.flatnonzero(_bits(on_duckdb) != _bits(on_postgres))
    assert differ.size == 0, [
        (values[i], on_duckdb[i], on_postgres[i]) for i in differ[:10].tolist()
    ]
    # Rounded to the places: within half a unit of the last place of the value (plus the
    # 10-place step first taken, plus the doubles' own spacing at that magnitude).
    slack = 0.5 * 10.0**-places + 1e-10 + 4 * np.spacing(np.abs(values))
    assert np.all(np.abs(on_duckdb - values) <= slack)

    # The control: PostgreSQL's own cast parts from DuckDB on these values.
    naive = _on_postgres(
        dsn,
        f"select id, cast(round(cast(x as numeric), {places}) as double precision) "
        "from vals order by id",
    )
    assert np.count_nonzero(_bits(naive) != _bits(on_duckdb)) > 0


def test_round_float_refuses_a_value_outside_decimal_18_10_on_postgres(
    postgres_values: tuple[str, np.ndarray], tmp_path: Path
) -> None:
    """decimal(18, 10) fails DuckDB's build at 1e8; PostgreSQL must fail it too, naming
    the value, instead of writing a number DuckDB would have refused."""
    import psycopg2

    dsn, _ = postgres_values
    sql = _rendered("postgres", dsn, tmp_path, 4).replace(
        "from vals", "from (values (1, 123456789.5::float8)) as vals (id, x)"
    )
    with pytest.raises(psycopg2.Error, match=r"round_float: 123456789\.5 is outside"):
        _on_postgres(dsn, sql)
    duckdb_sql = _rendered("duckdb", None, tmp_path, 4)
    import duckdb

    with pytest.raises(duckdb.Error):
        _on_duckdb(np.array([123456789.5]), duckdb_sql)
