"""Exact TreeSHAP for LightGBM boosters, several times faster than ``pred_contrib``.

The reason codes of a night are the SHAP values of the raw score. LightGBM computes them
with the path-dependent TreeSHAP of Lundberg et al. (``Tree::TreeSHAP``), which walks
every path of every tree for every row: O(leaves x depth^2) per tree and row. Here the
same values come from the "Fast TreeSHAP v2" idea (Yang 2021): for a leaf with value v
and unique path features P (d = |P|), with z_j the product of the cover fractions
``child_count / parent_count`` of the path's splits on j and o_j(x) = 1 if x follows
every split on j along the path (else 0), the leaf adds to feature k in P

    phi_k = v (o_k - z_k) * prod_{j in P-{k}, o_j=0} z_j * sum_{s=0}^{|A|} w(s, d) e_{|A|-s}(z_A)

with A = {j in P-{k}: o_j = 1}, w(s, d) = s!(d-s-1)!/d! and e_m the elementary symmetric
polynomial of degree m. Everything but the row's agreement mask M = {j: o_j = 1} is fixed
per leaf. With U[A] = v * sum_s w(s, d) e_{|A|-s}(z_A) and Z[A] = prod_{j not in A} z_j,

    phi_k = (1 - z_k) Z[M] U[M - {k}]   if o_k = 1,        phi_k = -Z[M] U[M]   otherwise,

so once per model version each leaf gets a table of these d values for each of the 2^d
masks (one cache line for d <= 8), and a row costs one decision per split and one table
record per leaf. Two sibling leaves share one table: they have the same path features and
their masks follow from their parent's and the row's direction there (``units_kernel``).

What is mirrored from LightGBM 4.7 (``src/io/tree.cpp``, ``include/LightGBM/tree.h``,
``Predictor`` and ``c_api.cpp``), and checked against ``pred_contrib`` in
``tests/unit/score/test_treeshap.py``:

- Covers are data counts (``internal_count`` / ``leaf_count``), not hessian sums.
- A dense row keeps only values with |x| > kZeroThreshold (the float 1e-35f, as a double
  1.0000000180025095e-35) or NaN; the others are 0.0, and "zero" below means that.
- Numerical split: NaN becomes 0.0 unless the missing type is NaN; a NaN (missing type
  NaN) or a zero (missing type Zero) takes the default direction; otherwise
  ``x <= threshold`` goes left.
- Categorical split: a code is ``static_cast<int>(x)`` (truncation toward zero, so -0.5 is
  category 0); NaN, codes outside int range and negative codes go right; a code goes left
  when it is in the split's category bitset (unseen codes are not: right).
- The trees are those ``Booster.predict`` uses by default: ``best_iteration`` if set.

Not supported (``UnsupportedModel``; :func:`verified_contributions` then uses LightGBM):
multiclass models, random forests (``average_output``), linear trees, and leaves with more
than ``MAX_PATH_FEATURES`` distinct path features or forests whose tables would exceed
``MAX_TABLE_BYTES``. The bias column (expected value) is not computed.

The tables are cached per booster object (and its ``best_iteration``); the numba kernels
are compiled once per machine and cached on disk. numba writes that cache under
``$NUMBA_CACHE_DIR`` when it is set; otherwise this module sets it, before numba is
imported, to ``<state dir>/cache/numba`` (``Paths.jit_cache_dir``) or, if that cannot be
written, a per-user folder in the temp dir. numba itself is imported on the first call,
never when ``churnops.score`` is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import lightgbm as lgb
    import numpy as np

log = logging.getLogger(__name__)

# Rows of the night on which the fast values must match LightGBM's before they are used.
VERIFY_ROWS = 200
MAX_ABS_DIFF = 1e-9
# Bounds on the tables: 2^d records of d values (padded to a power of two) for a leaf with
# d distinct path features. The production-sized model (169 trees of 31 leaves, depth 8)
# keeps 15 MiB, and needs 21 MiB more while they are computed.
MAX_PATH_FEATURES = 20
MAX_TABLE_BYTES = 256 * 2**20
# Rows per parallel task: a tree's tables stay in cache while a block's rows use them.
BLOCK_ROWS = 2048

FAST = "treeshap"
NATIVE = "lightgbm"


class UnsupportedModel(ValueError):
    """The booster has something this TreeSHAP does not implement."""


@dataclass(frozen=True)
class Forest:
    """A booster's trees, flattened for the kernels, and the leaves' tables.

    Per tree t: internal nodes ``node_start[t]:node_start[t+1]`` (tree-local index i is
    ``node_start[t] + i``; a parent's index is below its children's, as LightGBM numbers
    them), leaves ``leaf_start[t]:leaf_start[t+1]``. ``left``/``right`` are slots: a
    tree's nodes are its slots 0..nodes-1, its leaves the next ones. ``bit`` is the
    position of the node's feature among the unique features of the path down to it,
    ``first`` whether the node is the path's first split on it. Per leaf: its path
    features and z in ``path_start[l]:path_start[l+1]`` (bit i of an agreement mask is the
    i-th).

    The kernel walks units, ``unit_start[t]:unit_start[t+1]`` per tree: two sibling leaves
    (a node whose children are both leaves) or one leaf. Unit u: its (first) leaf
    ``unit_leaf[u]`` (whose path features it adds to), the slots of its two leaves (the
    same twice for one leaf), and its table at ``table_start[u]``: records of
    ``table_stride[u]`` values (d of them used), the record of a row being
    ``M_a + (bit unit_bit[u] of M_b if unit_hi[u]) * 2^d`` with M_a and M_b the row's
    agreement masks at the two leaves.
    """

    num_features: int
    trees: int
    node_start: np.ndarray
    leaf_start: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    categorical: np.ndarray
    missing: np.ndarray
    default_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    bit: np.ndarray
    first: np.ndarray
    cat_start: np.ndarray
    cat_len: np.ndarray
    cat_words: np.ndarray
    leaf_value: np.ndarray
    path_start: np.ndarray
    path_feature: np.ndarray
    path_zero: np.ndarray
    unit_start: np.ndarray
    unit_leaf: np.ndarray
    unit_slot_a: np.ndarray
    unit_slot_b: np.ndarray
    unit_bit: np.ndarray
    unit_hi: np.ndarray
    table_start: np.ndarray
    table_stride: np.ndarray
    table: np.ndarray
    max_slots: int
    parse_seconds: float
    table_seconds: float

    @property
    def table_bytes(self) -> int:
        return int(self.table.nbytes)


# ----------------------------------------------------------------------------- parsing


class _TableLayout:
    """Where tables go in one float64 array: per table, ``records`` records of a power of
    two of entries (>= ``width``), each aligned to itself up to a 64-byte cache line so a
    record (up to 8 values) is one line."""

    def __init__(self) -> None:
        self.start: list[int] = []
        self.stride: list[int] = []
        self.end = 0

    def add(self, width: int, records: int) -> None:
        stride = 1 << (width - 1).bit_length() if width else 0
        align = min(stride, 8) or 1
        start = -(-self.end // align) * align
        self.start.append(start)
        self.stride.append(stride)
        self.end = start + stride * records

    def allocate(self) -> np.ndarray:
        """The zeroed array, its start on a 64-byte boundary (NumPy only promises 16)."""
        import numpy as np

        storage = np.zeros(self.end + 8, dtype=np.float64)
        skip = (-storage.ctypes.data % 64) // 8
        return storage[skip : skip + self.end]


def _header_and_trees(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The model text's header fields and one dict of fields per tree."""
    end = text.find("end of trees")
    body = text if end < 0 else text[:end]
    blocks = body.split("\nTree=")
    header: dict[str, str] = {}
    for line in blocks[0].splitlines():
        key, _, value = line.partition("=")
        header[key.strip()] = value.strip()
    trees = []
    for block in blocks[1:]:
        fields: dict[str, str] = {}
        for line in block.splitlines()[1:]:
            key, sep, value = line.partition("=")
            if sep:
                fields[key.strip()] = value.strip()
        trees.append(fields)
    return header, trees


def parse_forest(text: str) -> Forest:
    """The forest of a ``Booster.model_to_string()`` text, with its tables computed."""
    import numpy as np

    began = time.perf_counter()
    header, trees = _header_and_trees(text)
    if header.get("num_class", "1") != "1" or header.get("num_tree_per_iteration", "1") != "1":
        raise UnsupportedModel("multiclass models are not supported")
    if "average_output" in header:
        raise UnsupportedModel("random forest models (average_output) are not supported")
    num_features = int(header["max_feature_idx"]) + 1

    def ints(fields: dict[str, str], key: str, count: int) -> list[int]:
        if count == 0:
            return []
        if key not in fields:
            raise UnsupportedModel(f"the model text lacks {key}")
        values = [int(v) for v in fields[key].split()]
        if len(values) != count:
            raise UnsupportedModel(f"{key} has {len(values)} values, expected {count}")
        return values

    def floats(fields: dict[str, str], key: str, count: int) -> list[float]:
        if key not in fields:
            raise UnsupportedModel(f"the model text lacks {key}")
        values = [float(v) for v in fields[key].split()]
        if len(values) != count:
            raise UnsupportedModel(f"{key} has {len(values)} values, expected {count}")
        return values

    node_start, leaf_start, cat_offset = [0], [0], 0
    feature: list[int] = []
    threshold: list[float] = []
    categorical: list[int] = []
    missing: list[int] = []
    default_left: list[int] = []
    left: list[int] = []
    right: list[int] = []
    bit: list[int] = []
    first: list[int] = []
    cat_start: list[int] = []
    cat_len: list[int] = []
    cat_words: list[int] = []
    leaf_value: list[float] = []
    path_start = [0]
    path_feature: list[int] = []
    path_zero: list[float] = []
    leaf_table = _TableLayout()
    unit_start = [0]
    unit_leaf: list[int] = []
    unit_pair: list[int] = []
    unit_slot_a: list[int] = []
    unit_slot_b: list[int] = []
    unit_bit: list[int] = []
    unit_hi: list[int] = []
    table = _TableLayout()
    for index, fields in enumerate(trees):
        if fields.get("is_linear", "0") != "0":
            raise UnsupportedModel(f"tree {index} is a linear tree")
        num_leaves = int(fields["num_leaves"])
        nodes = num_leaves - 1
        values = floats(fields, "leaf_value", num_leaves)
        tree_feature = ints(fields, "split_feature", nodes)
        tree_threshold = floats(fields, "threshold", nodes) if nodes else []
        decision = ints(fields, "decision_type", nodes)
        tree_left = ints(fields, "left_child", nodes)
        tree_right = ints(fields, "right_child", nodes)
        internal_count = ints(fields, "internal_count", nodes)
        leaf_count = ints(fields, "leaf_count", num_leaves) if nodes else [0]
        num_cat = int(fields.get("num_cat", "0"))
        boundaries = ints(fields, "cat_boundaries", num_cat + 1) if num_cat else [0]
        thresholds = [int(v) for v in fields.get("cat_threshold", "").split()]
        if len(thresholds) != boundaries[-1]:
            raise UnsupportedModel(f"tree {index}: cat_threshold does not match cat_boundaries")
        if any(f < 0 or f >= num_features for f in tree_feature):
            raise UnsupportedModel(f"tree {index} splits on a feature outside the model")
        if any(c <= 0 for c in internal_count):
            raise UnsupportedModel(f"tree {index} has a node with no training rows")

        # Per node: where its feature sits on the path, and each leaf's unique path.
        node_bit = [0] * nodes
        node_first = [0] * nodes
        paths: list[tuple[list[int], list[float]]] = [([], [])] * num_leaves
        stack: list[tuple[int, list[int], list[float]]] = [(0, [], [])] if nodes else []
        while stack:
            node, features, zeros = stack.pop()
            split = tree_feature[node]
            is_first = split not in features
            position = len(features) if is_first else features.index(split)
            node_bit[node], node_first[node] = position, int(is_first)
            for child in (tree_left[node], tree_right[node]):
                count = internal_count[child] if child >= 0 else leaf_count[~child]
                fraction = count / internal_count[node]
                if is_first:
                    child_features, child_zeros = [*features, split], [*zeros, fraction]
                else:
                    child_features, child_zeros = features, zeros.copy()
                    child_zeros[position] *= fraction
                if child >= 0:
                    stack.append((child, child_features, child_zeros))
                else:
                    paths[~child] = (child_features, child_zeros)
        for features, zeros in paths:
            if len(features) > MAX_PATH_FEATURES:
                raise UnsupportedModel(
                    f"tree {index} has a leaf with {len(features)} distinct path features "
                    f"(at most {MAX_PATH_FEATURES} are supported)"
                )
            path_feature.extend(features)
            path_zero.extend(zeros)
            path_start.append(len(path_feature))
            leaf_table.add(len(features), 1 << len(features))

        # The units the kernel walks: sibling leaves as one (the row's masks at the two
        # follow from their parent's mask and the row's direction there), other leaves
        # alone. A pair's records: index M_a, plus 2^d when the parent splits again on a
        # feature the row already follows and the row goes right there (see tables_kernel).
        paired = [False] * num_leaves
        units = []
        for node in range(nodes):
            a, b = tree_left[node], tree_right[node]
            if a < 0 and b < 0:
                paired[~a] = paired[~b] = True
                units.append((~a, ~b, node_bit[node], 1 - node_first[node]))
        units += [(leaf, -1, 0, 0) for leaf in range(num_leaves) if not paired[leaf]]
        for a, b, position, again in sorted(units):
            depth = len(paths[a][0])
            unit_leaf.append(leaf_start[-1] + a)
            unit_pair.append(-1 if b < 0 else leaf_start[-1] + b)
            unit_slot_a.append(nodes + a)
            unit_slot_b.append(nodes + (a if b < 0 else b))
            unit_bit.append(position)
            unit_hi.append(again)
            table.add(depth, 1 << (depth + again))
        unit_start.append(len(unit_leaf))
        if (table.end + leaf_table.end) * 8 > MAX_TABLE_BYTES:
            raise UnsupportedModel(
                f"the TreeSHAP tables would exceed {MAX_TABLE_BYTES >> 20} MiB (deep trees)"
            )

        for node in range(nodes):
            kind = decision[node]
            is_categorical = kind & 1
            categorical.append(is_categorical)
            default_left.append((kind >> 1) & 1)
            missing.append((kind >> 2) & 3)
            if is_categorical:
                which = int(tree_threshold[node])
                cat_start.append(cat_offset + boundaries[which])
                cat_len.append(boundaries[which + 1] - boundaries[which])
                threshold.append(0.0)
            else:
                cat_start.append(0)
                cat_len.append(0)
                threshold.append(tree_threshold[node])
        cat_words.extend(thresholds)
        cat_offset += len(thresholds)
        feature.extend(tree_feature)
        # Children as slots: a tree's nodes, then its leaves.
        left.extend(c if c >= 0 else nodes + ~c for c in tree_left)
        right.extend(c if c >= 0 else nodes + ~c for c in tree_right)
        bit.extend(node_bit)
        first.extend(node_first)
        leaf_value.extend(values)
        node_start.append(len(feature))
        leaf_start.append(len(leaf_value))
    parsed = time.perf_counter()

    def array(values: list, dtype: type) -> np.ndarray:
        return np.asarray(values, dtype=dtype)

    forest = Forest(
        num_features=num_features,
        trees=len(trees),
        node_start=array(node_start, np.int64),
        leaf_start=array(leaf_start, np.int64),
        feature=array(feature, np.int64),
        threshold=array(threshold, np.float64),
        categorical=array(categorical, np.int64),
        missing=array(missing, np.int64),
        default_left=array(default_left, np.int64),
        left=array(left, np.int64),
        right=array(right, np.int64),
        bit=array(bit, np.int64),
        first=array(first, np.int64),
        cat_start=array(cat_start, np.int64),
        cat_len=array(cat_len, np.int64),
        cat_words=array(cat_words, np.uint32),
        leaf_value=array(leaf_value, np.float64),
        path_start=array(path_start, np.int64),
        path_feature=array(path_feature, np.int64),
        path_zero=array(path_zero, np.float64),
        unit_start=array(unit_start, np.int64),
        unit_leaf=array(unit_leaf, np.int64),
        unit_slot_a=array(unit_slot_a, np.int64),
        unit_slot_b=array(unit_slot_b, np.int64),
        unit_bit=array(unit_bit, np.int64),
        unit_hi=array(unit_hi, np.int64),
        table_start=array(table.start, np.int64),
        table_stride=array(table.stride, np.int64),
        table=table.allocate(),
        max_slots=int((np.diff(node_start) + np.diff(leaf_start)).max(initial=0)),
        parse_seconds=parsed - began,
        table_seconds=0.0,
    )
    mark = time.perf_counter()
    kernels = _kernels()
    leaves = leaf_table.allocate()
    leaf_table_start = array(leaf_table.start, np.int64)
    leaf_table_stride = array(leaf_table.stride, np.int64)
    kernels.tables_kernel(
        forest.path_start,
        forest.path_zero,
        forest.leaf_value,
        leaf_table_start,
        leaf_table_stride,
        leaves,
    )
    kernels.units_kernel(
        forest.path_start,
        leaf_table_start,
        leaf_table_stride,
        leaves,
        forest.unit_leaf,
        array(unit_pair, np.int64),
        forest.unit_bit,
        forest.unit_hi,
        forest.table_start,
        forest.table_stride,
        forest.table,
    )
    object.__setattr__(forest, "table_seconds", time.perf_counter() - mark)
    return forest


# ------------------------------------------------------------------------------- numba


def _jit_cache_dir() -> Path | None:
    """A writable folder for numba's cache: the state dir's, else a per-user temp one."""
    candidates = []
    try:
        from churnops.settings import load_settings

        candidates.append(load_settings().paths.jit_cache_dir)
    except Exception as error:  # a settings error must not cost the reason codes
        log.debug("no state dir for numba's cache: %s", error)
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    candidates.append(Path(tempfile.gettempdir()) / f"churnops-numba-{uid}")
    for candidate in candidates:
        try:
            candidate.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=candidate):
                pass
            return candidate
        except OSError:
            continue
    return None


def _kernels() -> ModuleType:
    """The numba kernels, importing numba (with its cache dir set up) on first use."""
    module = sys.modules.get("churnops.score._treeshap_numba")
    if module is not None:
        return module
    if not os.environ.get("NUMBA_CACHE_DIR"):
        directory = _jit_cache_dir()
        if directory is not None:
            os.environ["NUMBA_CACHE_DIR"] = str(directory)
            numba = sys.modules.get("numba")
            if numba is not None:  # imported elsewhere before: its config read the env then
                numba.config.CACHE_DIR = str(directory)
    from churnops.score import _treeshap_numba

    return _treeshap_numba


@contextmanager
def _numba_threads(threads: int) -> Iterator[None]:
    """numba's parallel loops on ``threads`` threads (LightGBM's <= 0: all), restored after."""
    import numba

    before = numba.get_num_threads()
    available = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    numba.set_num_threads(available if threads <= 0 else min(threads, available))
    try:
        yield
    finally:
        numba.set_num_threads(before)


# ------------------------------------------------------------------------------ public

_FORESTS: weakref.WeakKeyDictionary[lgb.Booster, tuple[int, Forest]] = weakref.WeakKeyDictionary()


def forest_of(booster: lgb.Booster) -> Forest:
    """The booster's flattened trees and tables, built on first use and kept with it."""
    iteration = int(booster.best_iteration or 0)
    cached = _FORESTS.get(booster)
    if cached is not None and cached[0] == iteration:
        return cached[1]
    forest = parse_forest(booster.model_to_string())  # best_iteration's trees, as predict
    _FORESTS[booster] = (iteration, forest)
    log.info(
        "TreeSHAP tables: %d trees, %d leaves, %.1f MiB in %.3fs (parse %.3fs)",
        forest.trees,
        len(forest.leaf_value),
        forest.table_bytes / 2**20,
        forest.parse_seconds + forest.table_seconds,
        forest.parse_seconds,
    )
    return forest


def forest_contributions(forest: Forest, matrix: np.ndarray, threads: int | None) -> np.ndarray:
    """SHAP values of ``matrix``'s rows under ``forest`` (rows x features, no bias).
    ``threads=None``: on the calling thread's numba thread count as it is (the real-time
    service sets it once: setting and restoring it costs more than one row's values)."""
    import numpy as np

    x = np.ascontiguousarray(matrix, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != forest.num_features:
        raise ValueError(
            f"the matrix has shape {x.shape}; the model expects {forest.num_features} features"
        )
    out = np.zeros(x.shape, dtype=np.float64)
    kernels = _kernels()
    with _numba_threads(threads) if threads is not None else contextlib.nullcontext():
        kernels.contributions_kernel(
            x,
            out,
            forest.node_start,
            forest.leaf_start,
            forest.feature,
            forest.threshold,
            forest.categorical,
            forest.missing,
            forest.default_left,
            forest.left,
            forest.right,
            forest.bit,
            forest.first,
            forest.cat_start,
            forest.cat_len,
            forest.cat_words,
            forest.path_start,
            forest.path_feature,
            forest.unit_start,
            forest.unit_leaf,
            forest.unit_slot_a,
            forest.unit_slot_b,
            forest.unit_bit,
            forest.unit_hi,
            forest.table_start,
            forest.table_stride,
            forest.table,
            forest.max_slots,
            BLOCK_ROWS,
        )
    return out


def contributions(booster: lgb.Booster, matrix: np.ndarray, threads: int) -> np.ndarray:
    """Per-row SHAP values of the raw score, without the bias column: the values of
    ``booster.predict(matrix, pred_contrib=True)[:, :-1]`` (to float rounding)."""
    return forest_contributions(forest_of(booster), matrix, threads)


def lightgbm_contributions(booster: lgb.Booster, matrix: np.ndarray, threads: int) -> np.ndarray:
    """LightGBM's own TreeSHAP (``pred_contrib``), without the bias column."""
    import numpy as np

    values = np.asarray(booster.predict(matrix, pred_contrib=True, num_threads=threads))
    return values[:, :-1]


def verified_contributions(
    booster: lgb.Booster, matrix: np.ndarray, threads: int
) -> tuple[np.ndarray, str]:
    """The SHAP values of ``matrix`` (rows x features) and the method that produced them.

    The fast TreeSHAP's, ``"treeshap"``, if they match LightGBM's ``pred_contrib`` to
    ``MAX_ABS_DIFF`` on up to ``VERIFY_ROWS`` evenly spread rows of ``matrix``; otherwise,
    or when the fast path cannot run (an unsupported model, numba failing), LightGBM's
    values for every row and ``"lightgbm: <why>"``, with the reason logged as a warning.
    Every fast value must also be finite (LightGBM's always are), not only the sample's.
    """
    import numpy as np

    try:
        values = contributions(booster, matrix, threads)
    except Exception as error:  # whatever fails, the night gets LightGBM's values
        return _native(booster, matrix, threads, f"fast TreeSHAP unavailable: {error}")
    if len(values) == 0:
        return values, FAST
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).any(axis=1).sum())
        return _native(
            booster, matrix, threads, f"fast TreeSHAP gave non-finite values on {bad} rows"
        )
    rows = np.unique(np.linspace(0, len(values) - 1, min(VERIFY_ROWS, len(values))).astype(int))
    expected = lightgbm_contributions(booster, matrix[rows], threads)
    difference = float(np.max(np.abs(values[rows] - expected), initial=0.0))
    if difference <= MAX_ABS_DIFF:  # False for NaN
        return values, FAST
    return _native(
        booster,
        matrix,
        threads,
        f"fast TreeSHAP differed from LightGBM by {difference:.3g} on {len(rows)} rows",
    )


def _native(
    booster: lgb.Booster, matrix: np.ndarray, threads: int, why: str
) -> tuple[np.ndarray, str]:
    log.warning("reason codes: %s; using LightGBM's pred_contrib", why)
    return lightgbm_contributions(booster, matrix, threads), f"{NATIVE}: {why}"
