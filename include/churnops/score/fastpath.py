"""The fast scoring path: the night's features straight from DuckDB as Arrow, one float64
matrix, the trees on it (compiled or LightGBM's booster, ``churnops.score.engine``),
calibration in NumPy.

It must give exactly the scores of the model's own input preparation
(``churnops.train.model.prepare_features``, which the MLflow pyfunc flavour also sees):
same column order, numerics as float64, categoricals as their code in the landing
contract's list and NaN outside it. ``tests/unit/score`` checks the two agree bit for bit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from churnops.train.frame import CATEGORICAL_FEATURES

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from churnops.train.model import ChurnModel


def feature_matrix(table: pa.Table, features: list[str]) -> np.ndarray:
    """A (rows, features) float64 matrix in the model's feature order (C-contiguous)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = [f for f in features if f not in table.column_names]
    if missing:
        raise KeyError(f"the feature table lacks model features: {', '.join(missing)}")
    matrix = np.empty((table.num_rows, len(features)), dtype=np.float64)
    for position, name in enumerate(features):
        column = table.column(name)
        if name in CATEGORICAL_FEATURES:
            categories = pa.array(CATEGORICAL_FEATURES[name], pa.string())
            codes = pc.index_in(column.cast(pa.string()), value_set=categories)
            matrix[:, position] = codes.to_numpy(zero_copy_only=False).astype(np.float64)
        else:
            matrix[:, position] = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return matrix


def calibrate(model: ChurnModel, raw: np.ndarray) -> np.ndarray:
    """The model's Platt scaling, exactly as ``ChurnModel.predict`` applies it."""
    import numpy as np

    logit = model.calibration_slope * raw + model.calibration_intercept
    return 1.0 / (1.0 + np.exp(-logit))
