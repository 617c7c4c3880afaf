"""The numba kernels of ``churnops.score.treeshap`` (imported only when reasons are computed).

Import this module through ``churnops.score.treeshap._kernels()``, which points numba's
on-disk cache at a writable folder first. Every kernel is ``cache=True``: the first process
on a machine compiles them (a few seconds), later ones load the machine code.

The arrays are the flattened forest of ``treeshap.Forest``; see there for their meaning.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# LightGBM's kZeroThreshold, the float 1e-35f (compared as a double): |x| <= this is zero.
_K_ZERO = float(np.float32(1e-35))
# Category codes that do not fit a C int: x86's cast gives INT_MIN, so they go right.
_INT_HI = 2147483648.0
_INT_LO = -2147483649.0


@njit(cache=True, inline="always")
def _goes_left_categorical(value: float, words: np.ndarray, start: int, length: int) -> int:
    """1 if LightGBM's ``CategoricalDecision`` sends ``value`` left: its code (a C int
    cast, truncating toward zero) is in the split's category bitset ``words[start:start +
    length]``. NaN, codes outside int range (x86 casts them to INT_MIN), negative codes and
    codes past the bitset go right."""
    if np.isnan(value) or value >= _INT_HI or value <= _INT_LO:
        return 0
    code = int(value)
    if code < 0:
        return 0
    word = code >> 5
    if word >= length:
        return 0
    return 1 if (words[start + word] >> np.uint32(code & 31)) & np.uint32(1) else 0


@njit(cache=True, inline="always")
def _goes_left_numerical(value: float, threshold: float, missing: int, default_left: int) -> int:
    """1 if LightGBM's ``NumericalDecision`` sends ``value`` left, without branches.

    The dense-row reader has already made |x| <= kZeroThreshold exactly 0.0. NaN is 0.0
    unless the missing type is NaN (2); a NaN (type NaN) or a 0.0 (type Zero, 1) takes the
    default direction; otherwise ``x <= threshold`` goes left.
    """
    missing_value = np.isnan(value)
    number = 0.0 if missing_value else value
    by_default = (missing == 1 and number == 0.0) or (missing == 2 and missing_value)
    return default_left if by_default else (1 if number <= threshold else 0)


@njit(cache=True)
def _block(
    x: np.ndarray,
    out: np.ndarray,
    first_row: int,
    last_row: int,
    mask: np.ndarray,
    node_start: np.ndarray,
    leaf_start: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    categorical: np.ndarray,
    missing: np.ndarray,
    default_left: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    bit: np.ndarray,
    first: np.ndarray,
    cat_start: np.ndarray,
    cat_len: np.ndarray,
    cat_words: np.ndarray,
    path_start: np.ndarray,
    path_feature: np.ndarray,
    unit_start: np.ndarray,
    unit_leaf: np.ndarray,
    unit_slot_a: np.ndarray,
    unit_slot_b: np.ndarray,
    unit_bit: np.ndarray,
    unit_hi: np.ndarray,
    table_start: np.ndarray,
    table_stride: np.ndarray,
    table: np.ndarray,
) -> None:
    """Add the SHAP values of rows ``first_row:last_row`` to ``out``, tree by tree, so a
    tree's tables stay in cache while the block's rows use them. ``mask`` is scratch: per
    slot of a tree (its nodes, then its leaves), the row's agreement mask there: bit i set
    when the row follows every split so far on the path's i-th feature.

    (A serial function called from the parallel loop: numba optimises it better than the
    same loops written inside ``prange``, about 20 % faster here.)
    """
    trees = node_start.shape[0] - 1
    for t in range(trees):
        n0 = node_start[t]
        nodes = node_start[t + 1] - n0
        if nodes == 0:
            continue  # a single leaf: no feature contributes
        u0 = unit_start[t]
        units = unit_start[t + 1] - u0
        for r in range(first_row, last_row):
            for i in range(nodes):  # parents precede children
                g = n0 + i
                value = x[r, feature[g]]
                # The dense-row reader keeps only |x| > kZeroThreshold (or NaN).
                value = 0.0 if -_K_ZERO <= value <= _K_ZERO else value
                if categorical[g]:
                    go = _goes_left_categorical(value, cat_words, cat_start[g], cat_len[g])
                else:
                    go = _goes_left_numerical(value, threshold[g], missing[g], default_left[g])
                m = mask[i]
                one = np.int64(1) << bit[g]
                joined = m | (one * first[g])  # the row follows the split
                cleared = m & ~one  # it does not
                mask[left[g]] = joined if go else cleared
                mask[right[g]] = cleared if go else joined
            row = out[r]
            for j in range(units):
                u = u0 + j
                leaf = unit_leaf[u]
                p0 = path_start[leaf]
                depth = path_start[leaf + 1] - p0
                record = mask[unit_slot_a[u]]
                record += ((mask[unit_slot_b[u]] >> unit_bit[u]) & unit_hi[u]) << depth
                at = table_start[u] + record * table_stride[u]
                for i in range(depth):
                    row[path_feature[p0 + i]] += table[at + i]


@njit(parallel=True, cache=True)
def contributions_kernel(
    x: np.ndarray,
    out: np.ndarray,
    node_start: np.ndarray,
    leaf_start: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    categorical: np.ndarray,
    missing: np.ndarray,
    default_left: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    bit: np.ndarray,
    first: np.ndarray,
    cat_start: np.ndarray,
    cat_len: np.ndarray,
    cat_words: np.ndarray,
    path_start: np.ndarray,
    path_feature: np.ndarray,
    unit_start: np.ndarray,
    unit_leaf: np.ndarray,
    unit_slot_a: np.ndarray,
    unit_slot_b: np.ndarray,
    unit_bit: np.ndarray,
    unit_hi: np.ndarray,
    table_start: np.ndarray,
    table_stride: np.ndarray,
    table: np.ndarray,
    max_slots: int,
    block: int,
) -> None:
    """Add every tree's SHAP values of every row of ``x`` to ``out`` (rows x features),
    in blocks of ``block`` rows, one parallel task each."""
    rows = x.shape[0]
    blocks = (rows + block - 1) // block
    for b in prange(blocks):
        first_row = b * block
        _block(
            x,
            out,
            first_row,
            min(rows, first_row + block),
            np.zeros(max_slots, dtype=np.int64),
            node_start,
            leaf_start,
            feature,
            threshold,
            categorical,
            missing,
            default_left,
            left,
            right,
            bit,
            first,
            cat_start,
            cat_len,
            cat_words,
            path_start,
            path_feature,
            unit_start,
            unit_leaf,
            unit_slot_a,
            unit_slot_b,
            unit_bit,
            unit_hi,
            table_start,
            table_stride,
            table,
        )


@njit(parallel=True, cache=True)
def tables_kernel(
    path_start: np.ndarray,
    path_zero: np.ndarray,
    leaf_value: np.ndarray,
    table_start: np.ndarray,
    table_stride: np.ndarray,
    table: np.ndarray,
) -> None:
    """Fill each leaf's table: for every agreement mask M over its d path features (bit i:
    the row follows every split on the i-th), the leaf's d SHAP values, at
    ``table[table_start[leaf] + M * table_stride[leaf] + i]``. With

    - Z[A] = prod over j not in A of z_j,
    - U[A] = v * sum_{s=0}^{|A|} s!(d-s-1)!/d! * e_{|A|-s}(z_A), e_m the elementary
      symmetric polynomial of degree m of the z of A,

    the i-th value is (1 - z_i) Z[M] U[M - {i}] if i is in M, else -Z[M] U[M].
    """
    leaves = leaf_value.shape[0]
    for leaf in prange(leaves):
        p0 = path_start[leaf]
        d = path_start[leaf + 1] - p0
        if d == 0:
            continue
        size = np.int64(1) << d
        t0 = table_start[leaf]
        # w[s] = s!(d-s-1)!/d! = 1 / (d * C(d-1, s))
        w = np.empty(d, dtype=np.float64)
        binomial = 1.0
        for s in range(d):
            w[s] = 1.0 / (d * binomial)
            binomial = binomial * (d - 1 - s) / (s + 1)
        elementary = np.zeros((size, d + 1), dtype=np.float64)
        product = np.empty(size, dtype=np.float64)  # prod of z over the mask's members
        count = np.zeros(size, dtype=np.int64)
        elementary[0, 0] = 1.0
        product[0] = 1.0
        for mask in range(1, size):
            low = 0
            while not (mask >> low) & 1:
                low += 1
            rest = mask ^ (np.int64(1) << low)
            z = path_zero[p0 + low]
            count[mask] = count[rest] + 1
            product[mask] = product[rest] * z
            elementary[mask, 0] = 1.0
            for m in range(1, count[mask] + 1):
                elementary[mask, m] = elementary[rest, m] + z * elementary[rest, m - 1]
        full = size - 1
        value = leaf_value[leaf]
        u = np.empty(size, dtype=np.float64)
        for mask in range(size):
            a = count[mask]
            total = 0.0
            for s in range(a + 1):
                total += w[s] * elementary[mask, a - s]
            u[mask] = value * total
        for mask in range(size):
            z_mask = product[full ^ mask]
            at = t0 + mask * table_stride[leaf]
            for i in range(d):
                one = np.int64(1) << i
                if mask & one:
                    table[at + i] = (1.0 - path_zero[p0 + i]) * z_mask * u[mask ^ one]
                else:
                    table[at + i] = -z_mask * u[mask]


@njit(parallel=True, cache=True)
def units_kernel(
    path_start: np.ndarray,
    leaf_table_start: np.ndarray,
    leaf_table_stride: np.ndarray,
    leaf_table: np.ndarray,
    unit_leaf: np.ndarray,
    unit_pair: np.ndarray,
    unit_bit: np.ndarray,
    unit_hi: np.ndarray,
    table_start: np.ndarray,
    table_stride: np.ndarray,
    table: np.ndarray,
) -> None:
    """Fill each unit's table from its leaves' tables (``tables_kernel``).

    One leaf (``unit_pair`` -1): its records. Sibling leaves a and b under a split on the
    path's p-th feature: a row's masks there, M_a and M_b, differ at most in bit p. If the
    split is the path's first on p, M_b = M_a ^ 2^p, so record M_a is T_a[M_a] + T_b[M_b].
    If it splits again on p (``unit_hi``), a row that already failed p has M_a = M_b with
    bit p clear; otherwise the one it does not follow has bit p clear: record M_a + h 2^d
    (h = bit p of M_b) is T_a[M_a] + T_b[M_b] with M_b = M_a | 2^p if h else M_a & ~2^p.
    """
    units = unit_leaf.shape[0]
    for u in prange(units):
        a = unit_leaf[u]
        b = unit_pair[u]
        d = path_start[a + 1] - path_start[a]
        if d == 0:
            continue
        full = (np.int64(1) << d) - 1
        one = np.int64(1) << unit_bit[u]
        again = unit_hi[u]
        for record in range((full + 1) << again):
            m_a = record & full
            at = table_start[u] + record * table_stride[u]
            at_a = leaf_table_start[a] + m_a * leaf_table_stride[a]
            if b < 0:
                for i in range(d):
                    table[at + i] = leaf_table[at_a + i]
                continue
            # The right leaf's mask: see the docstring.
            m_b = (m_a | one if record >> d else m_a & ~one) if again else m_a ^ one
            at_b = leaf_table_start[b] + m_b * leaf_table_stride[b]
            for i in range(d):
                table[at + i] = leaf_table[at_a + i] + leaf_table[at_b + i]
