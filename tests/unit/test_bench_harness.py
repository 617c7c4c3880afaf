"""The benchmark package's shape: its group names, its printed rows, and every
environment variable read in ``bench/harness.py`` alone (so the settings declaration can
take them over in one place)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def environment_reads(path: Path) -> list[str]:
    """``file:line`` of every read of the environment in ``path``: ``os.environ.get``,
    ``os.environ[...]`` as a value, ``os.getenv``; a write (``os.environ[k] = v``,
    ``setdefault``) is not a read of a setting."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        text = ast.unparse(node)
        read = (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and (
                (node.func.attr == "get" and ast.unparse(node.func.value) == "os.environ")
                or ast.unparse(node.func) == "os.getenv"
            )
        ) or (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and ast.unparse(node.value) == "os.environ"
        )
        if read:
            found.append(f"{path.name}:{node.lineno} {text}")
    return found


def test_only_the_harness_reads_the_environment() -> None:
    modules = sorted(BENCH_DIR.glob("*.py"))
    assert len(modules) > 5, "bench/ modules not found"
    outside = [r for p in modules if p.name != "harness.py" for r in environment_reads(p)]
    assert outside == [], "environment read outside bench/harness.py:\n" + "\n".join(outside)
    # The harness itself reads the bench's settings through churnops' declaration
    # (tests/unit/test_settings_declared.py checks bench/ for CHURNOPS_* reads).
    harness = (BENCH_DIR / "harness.py").read_text()
    assert "load_settings().bench" in harness and environment_reads(BENCH_DIR / "harness.py") == []


def test_environment_reads_are_found(tmp_path: Path) -> None:
    """The check above can fail: each form of read is seen, writes are not."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n"
        "a = os.environ.get('A')\n"
        "b = os.environ['B']\n"
        "c = os.getenv('C', '1')\n"
        "os.environ['D'] = 'x'\n"
        "os.environ.setdefault('E', 'y')\n"
    )
    assert [r.split()[0] for r in environment_reads(sample)] == [
        "sample.py:2",
        "sample.py:3",
        "sample.py:4",
    ]


def test_the_groups_keep_their_names() -> None:
    from bench.__main__ import GROUPS

    assert list(GROUPS) == [
        "simulate",
        "nightly",
        "gate",
        "dags",
        "train",
        "score",
        "drift",
        "engines",
        "serve",
        "celery",
    ]


def test_an_unknown_group_is_refused_with_the_known_ones(capsys) -> None:
    from bench.__main__ import GROUPS
    from bench.harness import run_groups

    assert run_groups(GROUPS, ["simulate", "nope"]) == 2
    assert "unknown benchmark group(s) ['nope']; known: ['simulate'," in capsys.readouterr().err


def test_a_row_prints_label_seconds_peak_then_the_other_figures() -> None:
    from bench.harness import figure_line

    line = figure_line(
        "score a later night",
        {"seconds": 7.254, "peak_rss_mb": 812.4, "rows": 500_000, "load_s": 0.25, "engine": "c"},
    )
    assert line == (
        f"{'score a later night':<72}     7.25 s  peak     812 MB  "
        "rows=500,000  load_s=0.2  engine=c"
    )


def _refuses() -> dict:
    raise SystemExit("/kept/state holds 100,000 customers, not 500,000: point X elsewhere")


def _refusing_group(tmp: Path):
    from bench.harness import measure

    yield "never printed", measure(_refuses)


def test_a_step_that_refuses_stops_its_group_in_one_line(capsys) -> None:
    """A kept state that does not fit (``SystemExit`` with a message in the measured child)
    ends the run with that message on one line and exit code 1, not a traceback."""
    from bench.harness import run_groups

    assert run_groups({"refusing": _refusing_group}, []) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "bench refusing stopped: _refuses: /kept/state holds 100,000 customers, not 500,000: "
        "point X elsewhere"
    )
    assert not any("Traceback" in line for line in err)
