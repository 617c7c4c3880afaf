"""How a registered version's trees are evaluated at night: compiled or native.

LightGBM's own predict walks every tree node by node through generic data structures.
treelite + tl2cgen turn the same trees into C code (one ``if``/``else`` per split) and a
shared library: at 500,000 customers and 169 trees, 1.3-1.5 s instead of LightGBM's
2.3-3.8 s here, with bit-identical raw scores (``make bench BENCH=score``).

- Each version is compiled once, on the first night that needs it (2-4 s), into
  ``Paths.compiled_models_dir``; later nights and processes load the library. The file
  name carries the model's content hash, so a library never serves another model.
- With the shared files (``shared=``, ``churnops.storage.SharedFiles``), workers on several
  machines compile a version once between them: the library is shared under
  ``<CHURNOPS_DATA_URL>/models/compiled/``. On a local (or mounted) base it is compiled into
  and loaded from that folder itself (no copies; unset, that is the state dir's
  ``models/compiled``, as before). On an object store the ``.so`` must be on local disk to
  be loaded: ``directory`` is this worker's cache, filled from the shared copy when there
  is one, and a library compiled here is put there for the others. The shared copy is an
  optimisation: a failed download compiles, a failed upload is logged, and neither fails
  scoring.
- Before a compiled library scores a night it must reproduce LightGBM's raw scores on a
  sample of that night's rows (missing values and unknown categories included) to 1e-9;
  otherwise the night is scored natively and the log says why. A night is never scored
  by something that disagrees with the registered model.
- ``ScoringPolicy.engine``: ``compiled``, ``native``, or ``auto`` (compiled where a C
  compiler is installed: the toolchain is needed once per version, not per night).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from churnops.errors import one_line
from churnops.settings import ScoringPolicy

if TYPE_CHECKING:
    import numpy as np

    from churnops.registry.champion import LoadedModel
    from churnops.storage import SharedFiles

log = logging.getLogger(__name__)

# Rows of the night on which a compiled library must match LightGBM before it scores.
VERIFY_ROWS = 2_000
MAX_ABS_DIFF = 1e-9
COMPILERS = ("gcc", "clang", "cc")


class CompilationUnavailable(RuntimeError):
    """The policy asks for compiled scoring, but it cannot be had here."""


@dataclass
class Engine:
    """Raw scores (log-odds) of one version, and how they are computed."""

    name: str  # compiled | native
    raw_scores: Callable[[np.ndarray], np.ndarray]
    detail: str  # for the log: the library, or why the booster is used
    compile_seconds: float = 0.0


def find_compiler() -> str | None:
    """The C compiler tl2cgen will call (``$CC`` first), or None."""
    for candidate in (os.environ.get("CC"), *COMPILERS):
        if candidate and shutil.which(candidate):
            return candidate
    return None


def native_engine(model: LoadedModel, threads: int, why: str) -> Engine:
    import numpy as np

    booster = model.model.booster

    def raw_scores(matrix: np.ndarray) -> np.ndarray:
        return np.asarray(booster.predict(matrix, raw_score=True, num_threads=threads))

    return Engine("native", raw_scores, why)


def library_path(model: LoadedModel, directory: Path) -> Path:
    """Where ``model``'s compiled library lives: named by version and content hash."""
    import tl2cgen
    import treelite

    text = model.model.booster.model_to_string()
    digest = hashlib.sha256(
        f"{text}\0treelite {treelite.__version__}\0tl2cgen {tl2cgen.__version__}".encode()
    ).hexdigest()[:16]
    return directory / f"{model.name}-v{model.version}-{digest}.so"


def compile_library(model: LoadedModel, directory: Path, compiler: str, threads: int) -> Path:
    """Compile ``model`` unless its library exists; return the library's path.

    Written to a temporary name and renamed, so two processes compiling at once (the
    champion's first night in two DAG runs) both end with a whole library.
    """
    import tl2cgen
    import treelite

    path = library_path(model, directory)
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    trees = treelite.frontend.from_lightgbm(model.model.booster)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".compile-") as tmp:
        built = Path(tmp) / path.name
        # Split the trees over several C files so the compiler's threads share the work.
        tl2cgen.export_lib(
            trees,
            toolchain=compiler,
            libpath=built,
            params={"parallel_comp": max(threads, 2) * 4},
            nthread=threads,
        )
        os.replace(built, path)
    return path


def library_dir(directory: Path, shared: SharedFiles | None) -> Path:
    """The local folder libraries are compiled into and loaded from: the shared folder
    itself when the shared files are local (or mounted), else ``directory`` (the cache).
    A shared mount this worker does not have is never created: the cache is used."""
    from churnops.storage import SharedPathUnavailable

    if shared is None or not isinstance(shared.models_dir, Path):
        return directory
    try:
        shared.check()
    except SharedPathUnavailable as error:
        log.warning("%s; compiled libraries stay in this worker's cache %s", error, directory)
        return directory
    return shared.models_dir


def fetch_shared_library(path: Path, shared: SharedFiles) -> bool:
    """Fill the cache entry ``path`` from the shared copy; False when there is none or it
    cannot be had (then the version is compiled here)."""
    from churnops.storage import fetch_file

    try:
        return fetch_file(shared.models_dir / path.name, path)
    except Exception as error:  # noqa: BLE001 - any store error: compile instead
        log.warning(
            "compiled library %s could not be fetched from %s (%s); compiling it here",
            path.name,
            shared.url,
            one_line(error, 200, with_type=True),
        )
        return False


def share_library(path: Path, shared: SharedFiles) -> bool:
    """Put a library compiled here where the other workers find it; never raises."""
    from churnops.storage import put_file

    try:
        put_file(path, shared.models_dir / path.name)
    except Exception as error:  # noqa: BLE001 - the night is scored all the same
        log.warning(
            "compiled library %s could not be shared under %s (%s); other workers will "
            "compile it themselves",
            path.name,
            shared.url,
            one_line(error, 200, with_type=True),
        )
        return False
    return True


def compiled_engine(
    model: LoadedModel,
    directory: Path,
    compiler: str,
    threads: int,
    shared: SharedFiles | None = None,
) -> Engine:
    """The compiled engine of ``model``; ``compile_seconds`` is 0 when the library was
    cached here or fetched from the ``shared`` files (see the module's docstring)."""
    import numpy as np
    import tl2cgen

    began = time.perf_counter()
    directory = library_dir(directory, shared)
    # An object store: the shared copy is not on local disk, the cache is.
    remote = shared if shared is not None and not isinstance(shared.models_dir, Path) else None
    origin = "cached"
    if not library_path(model, directory).exists():
        fetched = remote is not None and fetch_shared_library(
            library_path(model, directory), remote
        )
        origin = "shared" if fetched else "compiled"
    path = compile_library(model, directory, compiler, threads)
    seconds = time.perf_counter() - began if origin == "compiled" else 0.0
    if origin == "compiled" and remote is not None:
        share_library(path, remote)
    predictor = tl2cgen.Predictor(path, nthread=threads)

    def raw_scores(matrix: np.ndarray) -> np.ndarray:
        scores = predictor.predict(tl2cgen.DMatrix(matrix, dtype="float64"), pred_margin=True)
        return np.asarray(scores, dtype=np.float64).reshape(-1)

    source = f"shared ({remote.url})" if origin == "shared" and remote else origin
    detail = f"{source} library {path.name}"
    return Engine("compiled", raw_scores, detail, seconds)


def verified(engine: Engine, model: LoadedModel, matrix: np.ndarray, threads: int) -> Engine:
    """``engine`` if it reproduces LightGBM's raw scores on a sample of ``matrix``; the
    native engine (with the reason) otherwise."""
    import numpy as np

    if engine.name == "native" or len(matrix) == 0:
        return engine
    # Evenly spread rows, so the sample holds whatever the night holds (NaN, new codes).
    rows = matrix[np.linspace(0, len(matrix) - 1, min(VERIFY_ROWS, len(matrix))).astype(int)]
    expected = native_engine(model, threads, "").raw_scores(rows)
    difference = float(np.max(np.abs(engine.raw_scores(rows) - expected)))
    if difference <= MAX_ABS_DIFF:
        return engine
    log.warning(
        "%s v%s: the compiled library differs from LightGBM by %.3g on %d rows; scoring natively",
        model.name,
        model.version,
        difference,
        len(rows),
    )
    return native_engine(
        model, threads, f"compiled library differed by {difference:.3g}: LightGBM booster"
    )


def engine_for(
    model: LoadedModel,
    policy: ScoringPolicy,
    directory: Path,
    shared: SharedFiles | None = None,
) -> Engine:
    """The engine the policy asks for, for ``model`` (compiling it on first use).

    ``directory``: this worker's library cache (``Paths.compiled_models_dir``); ``shared``:
    the shared files, through which workers compile each version once between them."""
    threads = policy.predict_threads
    if policy.engine == "native":
        return native_engine(model, threads, "LightGBM booster (CHURNOPS_SCORING_ENGINE=native)")
    compiler = find_compiler()
    if compiler is None:
        if policy.engine == "compiled":
            raise CompilationUnavailable(
                "CHURNOPS_SCORING_ENGINE=compiled needs a C compiler (gcc or clang, or $CC) "
                "to build each model version once; install one or use 'auto' or 'native'"
            )
        return native_engine(model, threads, "LightGBM booster (no C compiler found)")
    return compiled_engine(model, directory, compiler, threads, shared)
