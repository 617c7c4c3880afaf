"""Drift of one night's features and scores against the champion's training sample.

Evidently's ``DataDriftPreset`` on the full frames (50,000 reference rows, 500,000 tonight,
46 features and the score) takes 32-41 s here (``make bench BENCH=drift``) and writes a
7 MB page: it works through every column three times (the drifted-columns count, one
``ValueDrift`` per column, the page's drift table), each time with correlations,
histograms and a time-index plot over all rows, then builds plotly figures per column.
So the work is split:

- **Verdicts** (:func:`compute_drift`) are computed here, on all rows, with Evidently
  0.7.23's own formulas (``evidently.legacy.calculations.stattests``: the same binning,
  norms and comparisons; the unit tests hold them to 1e-6 of Evidently's numbers) on
  sorted numpy arrays: about 0.6 s for the 47 columns at 500,000 rows. Sampling the
  night's frame would save little and would move a feature that sits near its threshold
  across it from one night to the next.
- **The report** (:func:`write_evidently_report`) is drawn by Evidently on a fixed-seed
  sample of ``DriftPolicy.sample_rows`` rows of each frame (20,000 by default; the page
  only shows distributions) and handed the verdicts: every column's method is a
  registered stand-in that returns the all-rows score and flag, so the page, the JSON
  and the warehouse tables agree on every feature. One ``ValueDrift`` per column, not
  the preset: measured on the 500,000-row nights, the preset's page took 8-9 s on a
  50,000-row sample and still 5-6 s on 5,000 rows (per-column plotly figures, drawn
  twice), the ``ValueDrift`` metrics alone 3-4 s.

Methods (``DriftPolicy.method_for``; distances drift at score >= threshold, ``ks`` at
p <= threshold and ``chisquare`` at p < threshold, exactly as Evidently compares them):

- ``wasserstein``: Wasserstein-1 distance / max(std of reference, 0.001). As in
  Evidently's default choice, a numeric feature with at most 5 distinct values (reference
  and current together: flags, small counts) is compared by Jensen-Shannon instead,
  unless ``DriftPolicy.feature_methods`` names its method explicitly.
- ``jensenshannon``, ``psi``: on category shares, or for a numeric feature with more than
  20 distinct reference values on Sturges bins over both frames together (30 would be
  the nominal count; Evidently's ``get_binned_data`` uses ``"sturges"``). PSI fills empty
  bins as Evidently does.
- ``ks``: two-sample Kolmogorov-Smirnov (scipy); ``chisquare``: current counts against the
  reference shares (scipy).

Missing values (and +/-inf) are dropped per column before anything is computed, as
Evidently does; a column left empty on either side is an error, as in Evidently.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Collection, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from churnops.monitor.store import PREDICTION_FEATURE, MonitoringStore
from churnops.settings import DriftPolicy, Settings
from churnops.storage import writing
from churnops.train.frame import CATEGORICAL_FEATURES, NON_FEATURE_COLUMNS
from churnops.warehouse import utc_now

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from churnops.storage import Location, SharedFiles

log = logging.getLogger(__name__)

NUMERICAL = "numerical"
CATEGORICAL = "categorical"
PREDICTION = "prediction"

_NUMERIC_ONLY = frozenset({"wasserstein", "ks"})
_CATEGORICAL_ONLY = frozenset({"chisquare"})
# Evidently's default method choice (reference > 1,000 rows) sends numeric columns with this
# many distinct values or fewer to Jensen-Shannon: a distance normed by the std of a 0/1
# flag turns a one-point move of a rare flag into "drift".
LOW_CARDINALITY_VALUES = 5
# get_binned_data bins a numeric column with more distinct reference values than this;
# fewer are compared value by value, like categories.
BINNED_ABOVE_VALUES = 20
WASSERSTEIN_MIN_NORM = 0.001  # Evidently's floor for the std of a constant reference
_INTEGER_GRID_MAX = 1_000_000  # widest integer range counted on a grid (8 MB per CDF)

# Evidently's names of the methods, for the report's stand-in methods.
_EVIDENTLY_NAMES = {
    "wasserstein": "Wasserstein distance (normed)",
    "jensenshannon": "Jensen-Shannon distance",
    "psi": "PSI",
    "ks": "K-S p_value",
    "chisquare": "chi-square p_value",
}


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's (or the prediction's) verdict for one night."""

    feature: str
    kind: str  # numerical | categorical | prediction
    method: str  # the method actually used (see the module doc on low-cardinality numerics)
    statistic: float  # the distance, or the test statistic (KS D, chi-square)
    p_value: float | None  # p-value methods only
    threshold: float
    drifted: bool

    @property
    def score(self) -> float:
        """What the threshold is compared with: the p-value or the distance."""
        if self.p_value is not None:
            return self.p_value
        return self.statistic


@dataclass(frozen=True)
class Histogram:
    """One column's reference and current distributions on the same bins, as shares."""

    feature: str
    bins: tuple[str, ...]
    reference_share: tuple[float, ...]
    current_share: tuple[float, ...]


@dataclass(frozen=True)
class DriftResult:
    """A night's drift verdicts for one model version, and where its report is."""

    as_of_date: dt.date
    model_version: str
    features: list[FeatureDrift]  # the prediction included, kind "prediction"
    reference_rows: int
    current_rows: int
    html_path: Location | None  # on the shared files (a local Path, or an object-store URL)
    json_path: Location | None
    seconds: float
    drift_share: float = 0.5  # DriftPolicy.drift_share when the verdicts were made
    # Each column's reference and current distribution on shared bins (feature_histograms).
    histograms: tuple[Histogram, ...] = ()

    @property
    def input_features(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.kind != PREDICTION]

    @property
    def drifted_features(self) -> list[str]:
        """Names of the drifted features, the prediction excluded."""
        return [f.feature for f in self.input_features if f.drifted]

    @property
    def share_drifted(self) -> float:
        inputs = self.input_features
        return len(self.drifted_features) / len(inputs) if inputs else 0.0

    @property
    def prediction_drifted(self) -> bool:
        return any(f.drifted for f in self.features if f.kind == PREDICTION)

    @property
    def dataset_drifted(self) -> bool:
        return bool(self.input_features) and self.share_drifted >= self.drift_share


# ----------------------------------------------------------------------------- verdicts
def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    categorical: Collection[str],
    policy: DriftPolicy,
    *,
    prediction: str | None = PREDICTION_FEATURE,
) -> list[FeatureDrift]:
    """Each feature's verdict (then the prediction's, unless ``prediction`` is None).

    ``features`` are compared in order; those in ``categorical`` by category shares, the
    rest as numbers. All rows of both frames are used (see the module doc).
    """
    columns = list(features) + ([prediction] if prediction is not None else [])
    missing = sorted(
        {c for c in columns if c not in reference.columns}
        | {c for c in columns if c not in current.columns}
    )
    if missing:
        raise KeyError(f"drift needs these columns in both frames: {', '.join(missing)}")
    overridden = {name for name, _, _ in policy.feature_methods}
    verdicts = []
    for column in columns:
        is_categorical = column in categorical and column != prediction
        kind = PREDICTION if column == prediction else CATEGORICAL if is_categorical else NUMERICAL
        method, threshold = policy.method_for(column, is_categorical)
        if is_categorical and method in _NUMERIC_ONLY:
            raise ValueError(f"{method} compares numbers; {column!r} is categorical")
        if not is_categorical and method in _CATEGORICAL_ONLY:
            raise ValueError(f"{method} compares categories; {column!r} is numerical")
        if is_categorical:
            verdict = _categorical_drift(reference[column], current[column], method, threshold)
        else:
            verdict = _numerical_drift(
                reference[column],
                current[column],
                method,
                threshold,
                follow_low_cardinality=column not in overridden,
            )
        statistic, p_value, drifted, used = verdict
        verdicts.append(FeatureDrift(column, kind, used, statistic, p_value, threshold, drifted))
    return verdicts


def _finite(series: pd.Series, side: str) -> np.ndarray:
    import numpy as np

    values = series.to_numpy(dtype="float64", na_value=np.nan)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError(f"{series.name!r} has no values in the {side} frame")
    return values


def _category_counts(series: pd.Series, side: str) -> dict[Any, int]:
    counts = series.value_counts(dropna=True)
    # Categorical columns list unused categories with 0: only values that occur are keys.
    present = {key: int(n) for key, n in counts.items() if n > 0}
    if not present:
        raise ValueError(f"{series.name!r} has no values in the {side} frame")
    return present


def _numerical_drift(
    reference: pd.Series,
    current: pd.Series,
    method: str,
    threshold: float,
    *,
    follow_low_cardinality: bool,
) -> tuple[float, float | None, bool, str]:
    import numpy as np

    ref = np.sort(_finite(reference, "reference"))
    cur = np.sort(_finite(current, "current"))
    ref_distinct = _distinct_sorted(ref)
    if (
        follow_low_cardinality
        and method == "wasserstein"
        and ref_distinct <= LOW_CARDINALITY_VALUES
        and _distinct_sorted(np.union1d(ref, cur)) <= LOW_CARDINALITY_VALUES
    ):
        method = "jensenshannon"
    if method == "wasserstein":
        norm = max(float(np.std(ref)), WASSERSTEIN_MIN_NORM)
        integers = reference.dtype.kind in "iub" and current.dtype.kind in "iub"
        distance = _wasserstein_sorted(ref, cur, integers=integers) / norm
        return distance, None, distance >= threshold, method
    if method == "ks":
        from scipy import stats

        ks = stats.ks_2samp(ref, cur)
        p = float(ks.pvalue)
        return float(ks.statistic), p, p <= threshold, method
    # jensenshannon / psi
    if ref_distinct > BINNED_ABOVE_VALUES:
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        ref_shares = np.histogram(ref, edges)[0] / ref.size
        cur_shares = np.histogram(cur, edges)[0] / cur.size
    else:
        keys = np.union1d(ref, cur)  # sorted: searchsorted counts each value's run
        ref_shares = _value_counts_sorted(ref, keys) / ref.size
        cur_shares = _value_counts_sorted(cur, keys) / cur.size
    value = _share_distance(ref_shares, cur_shares, method)
    return value, None, value >= threshold, method


def _categorical_drift(
    reference: pd.Series, current: pd.Series, method: str, threshold: float
) -> tuple[float, float | None, bool, str]:
    import numpy as np

    ref_counts = _category_counts(reference, "reference")
    cur_counts = _category_counts(current, "current")
    keys = sorted(ref_counts.keys() | cur_counts.keys(), key=str)
    ref = np.array([ref_counts.get(k, 0) for k in keys], dtype="float64")
    cur = np.array([cur_counts.get(k, 0) for k in keys], dtype="float64")
    if method == "chisquare":
        from scipy import stats

        expected = ref * (cur.sum() / ref.sum())
        chi = stats.chisquare(cur, expected)
        p = float(chi.pvalue)
        return float(chi.statistic), p, p < threshold, method
    value = _share_distance(ref / ref.sum(), cur / cur.sum(), method)
    return value, None, value >= threshold, method


def _share_distance(ref: np.ndarray, cur: np.ndarray, method: str) -> float:
    import numpy as np

    if method == "jensenshannon":
        from scipy.spatial import distance

        return float(distance.jensenshannon(ref, cur))
    if method == "psi":
        ref, cur = _fill_zeroes(ref), _fill_zeroes(cur)
        return float(np.sum((ref - cur) * np.log(ref / cur)))
    raise ValueError(f"unknown share distance {method!r}")


def _fill_zeroes(shares: np.ndarray) -> np.ndarray:
    """Evidently's PSI fill for empty bins: a millionth of the smallest share when that is
    at most 0.0001, else 0.0001."""

    smallest = float(shares[shares > 0].min())
    filled = shares.copy()
    filled[filled == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return filled


def _distinct_sorted(values: np.ndarray) -> int:
    import numpy as np

    return int(np.count_nonzero(np.diff(values))) + 1 if values.size else 0


def _value_counts_sorted(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    import numpy as np

    right = np.searchsorted(values, keys, side="right")
    left = np.searchsorted(values, keys, side="left")
    return (right - left).astype("float64")


def _wasserstein_sorted(u: np.ndarray, v: np.ndarray, *, integers: bool = False) -> float:
    """scipy.stats.wasserstein_distance(u, v) for sorted u and v: the integral of
    |F_u - F_v|, the two empirical CDFs.

    scipy argsorts both samples and merge-sorts them together, then binary-searches every
    merged point in each (about 0.1 s a column at 550,000 values). Integer columns (counts,
    days, flags: most features) need no search: F steps only at integers, so counting each
    integer (bincount) gives both CDFs on the whole grid, and the integral is a sum over
    unit steps. Other columns: scipy's sum over the merged points, on the sorted arrays.
    """
    import numpy as np

    low, high = min(u[0], v[0]), max(u[-1], v[-1])
    if integers and high - low <= _INTEGER_GRID_MAX:
        size = int(high - low) + 1
        u_cdf = np.cumsum(np.bincount((u - low).astype(np.int64), minlength=size)) / u.size
        v_cdf = np.cumsum(np.bincount((v - low).astype(np.int64), minlength=size)) / v.size
        return float(np.sum(np.abs(u_cdf[:-1] - v_cdf[:-1])))
    merged = np.sort(np.concatenate([u, v]))
    deltas = np.diff(merged)
    # Ties add nothing (zero width): search each distinct value once (money amounts and
    # ratios repeat a lot).
    steps = deltas > 0
    deltas = deltas[steps]
    points = merged[:-1][steps]
    u_cdf = np.searchsorted(u, points, side="right") / u.size
    v_cdf = np.searchsorted(v, points, side="right") / v.size
    return float(np.sum(np.multiply(np.abs(u_cdf - v_cdf), deltas)))


# ----------------------------------------------------------------------------- report
# The verdicts of the report being drawn, by column: the stand-in methods return them.
_VERDICTS: ContextVar[dict[str, FeatureDrift]] = ContextVar("churnops_drift_verdicts")
_STAND_IN_PREFIX = "churnops_"


def _stand_in_method(reference: pd.Series, current: pd.Series, *_: object) -> tuple[float, bool]:
    verdict = _VERDICTS.get()[str(reference.name)]
    return verdict.score, verdict.drifted


def _register_stand_ins() -> None:
    """One Evidently method per churnops method, each answering with the all-rows verdict.

    Registering by name is how a method reaches ``ValueDrift`` (its ``method`` is a
    registered name) and the preset's legacy drift table alike.
    """
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    for method, name in _EVIDENTLY_NAMES.items():
        register_stattest(
            StatTest(
                name=_STAND_IN_PREFIX + method,
                display_name=f"{name} (churnops, all rows)",
                allowed_feature_types=[ColumnType.Numerical, ColumnType.Categorical],
                default_threshold=0.1,
            ),
            _stand_in_method,
        )


@contextlib.contextmanager
def _verdicts_for_report(verdicts: list[FeatureDrift]) -> Iterator[None]:
    token = _VERDICTS.set({v.feature: v for v in verdicts})
    try:
        yield
    finally:
        _VERDICTS.reset(token)


def report_paths(
    settings: Settings,
    as_of_date: dt.date,
    model_version: str,
    files: SharedFiles | None = None,
) -> tuple[Location, Location]:
    """The night's report files under the shared files' ``reports/drift/<day>/v<version>/``."""
    from churnops.storage import shared_files_for

    reports = (files or shared_files_for(settings)).reports_dir
    folder = reports / "drift" / as_of_date.isoformat() / f"v{model_version}"
    return folder / "report.html", folder / "report.json"


def display_sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """At most ``rows`` rows (all when ``rows`` is 0), the same ones for the same frame and seed."""
    if rows <= 0 or len(frame) <= rows:
        return frame
    return frame.sample(n=rows, random_state=seed)


def write_evidently_report(
    verdicts: list[FeatureDrift],
    reference: pd.DataFrame,
    current: pd.DataFrame,
    html_path: Location,
    json_path: Location,
    *,
    metadata: dict[str, str] | None = None,
    notes: Sequence[ReportNote] = (),
) -> None:
    """Evidently's drift page and JSON for ``verdicts``, drawn on the given frames.

    ``notes``: sections shown above Evidently's widgets (the night's estimated performance,
    its online traffic), also kept in the snapshot's metadata.

    One ``ValueDrift`` per feature and for the prediction, each with its test (FAIL =
    drifted): the frames give the distributions, the verdicts the scores and the flags.
    ``DataDriftPreset`` draws the same columns twice more (its drifted-columns count and
    its table), 2-3 times the time even on a 5,000-row sample: see ``make bench BENCH=drift``.
    Both files appear whole or not at all (temp file + rename).
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    _register_stand_ins()
    columns = [v.feature for v in verdicts]
    definition = DataDefinition(
        numerical_columns=[v.feature for v in verdicts if v.kind != CATEGORICAL],
        categorical_columns=[v.feature for v in verdicts if v.kind == CATEGORICAL],
        text_columns=[],
        datetime_columns=[],
        unknown_columns=[],
        list_columns=[],
    )
    metrics: list[Any] = [
        ValueDrift(column=v.feature, method=_STAND_IN_PREFIX + v.method, threshold=v.threshold)
        for v in verdicts
    ]
    metadata = {**(metadata or {}), **{note.key: note.text for note in notes}}
    report = Report(metrics, include_tests=True, metadata=metadata)
    with _verdicts_for_report(verdicts):
        snapshot = report.run(
            Dataset.from_pandas(current.loc[:, columns], data_definition=definition),
            Dataset.from_pandas(reference.loc[:, columns], data_definition=definition),
        )
    # Snapshot.save_html/save_json write only when given a str (a Path is silently ignored).
    # Written to a local file, then renamed into place or put as one object.
    with writing(html_path) as tmp:
        snapshot.save_html(str(tmp))
        if notes:
            _insert_notes(tmp, notes)
    with writing(json_path) as tmp:
        snapshot.save_json(str(tmp))


@dataclass(frozen=True)
class ReportNote:
    """A section of churnops' own atop Evidently's page: ``key`` names it (the block's
    ``id`` is ``churnops-<key>``, and the snapshot's metadata keeps the text under it)."""

    key: str
    title: str
    text: str


def _insert_notes(html_file: Path, notes: Sequence[ReportNote]) -> None:
    """Put the notes at the top of Evidently's page (its own template has no slot for
    text): plain blocks right after ``<body>``."""
    import html

    page = html_file.read_text(encoding="utf-8")
    blocks = "".join(
        f'<div id="churnops-{html.escape(note.key)}" style="font-family:sans-serif;'
        'padding:12px 24px;background:#f3f6fa;border-bottom:1px solid #d0d7de">'
        f"<strong>{html.escape(note.title)}</strong> {html.escape(note.text)}</div>"
        for note in notes
    )
    body = page.find("<body")
    opened = page.find(">", body) + 1 if body >= 0 else 0
    page = page[:opened] + blocks + page[opened:]
    html_file.write_text(page, encoding="utf-8")


def drift_report(
    settings: Settings,
    as_of_date: dt.date,
    model_version: str | int,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    files: SharedFiles | None = None,
    *,
    notes: Sequence[ReportNote] = (),
) -> DriftResult:
    """Verdicts for every feature of ``reference`` and the prediction, and the report files
    (written under ``files``, the shared files: the process's own unless given).

    ``reference`` is the version's training sample (``churnops.monitor.reference``): its
    columns besides keys, label and prediction are the model's features. ``current`` is the
    night's scored frame, with the same features and the prediction.
    """
    began = time.perf_counter()
    policy = settings.drift
    version = str(model_version)
    features = [
        c for c in reference.columns if c not in NON_FEATURE_COLUMNS and c != PREDICTION_FEATURE
    ]
    categorical = [c for c in features if c in CATEGORICAL_FEATURES]
    verdicts = compute_drift(reference, current, features, categorical, policy)
    histograms = feature_histograms(reference, current, verdicts)
    computed = time.perf_counter() - began
    html_path, json_path = report_paths(settings, as_of_date, version, files)
    reference_shown = display_sample(reference, policy.sample_rows, policy.seed)
    current_shown = display_sample(current, policy.sample_rows, policy.seed)
    write_evidently_report(
        verdicts,
        reference_shown,
        current_shown,
        html_path,
        json_path,
        metadata={
            "as_of_date": as_of_date.isoformat(),
            "model_version": version,
            "verdicts": f"all rows: {len(reference):,} reference, {len(current):,} current",
            "display": f"fixed-seed sample: {len(reference_shown):,} reference, "
            f"{len(current_shown):,} current (seed {policy.seed})",
        },
        notes=notes,
    )
    seconds = time.perf_counter() - began
    result = DriftResult(
        as_of_date=as_of_date,
        model_version=version,
        features=verdicts,
        reference_rows=len(reference),
        current_rows=len(current),
        html_path=html_path,
        json_path=json_path,
        seconds=seconds,
        drift_share=policy.drift_share,
        histograms=histograms,
    )
    log.info(
        "drift %s v%s: %d of %d features drifted%s; verdicts %.1f s, report %.1f s",
        as_of_date,
        version,
        len(result.drifted_features),
        len(result.input_features),
        ", prediction drifted" if result.prediction_drifted else "",
        computed,
        seconds - computed,
    )
    return result


# ----------------------------------------------------------------------------- histograms
HISTOGRAM_BINS = 20
HISTOGRAM_CATEGORIES = 30  # the most common categories; the rest fold into "other"
_HISTOGRAM_TAIL = 0.005  # numeric bins span the 0.5-99.5 percentiles; the tails join the ends


def feature_histograms(
    reference: pd.DataFrame, current: pd.DataFrame, verdicts: Sequence[FeatureDrift]
) -> tuple[Histogram, ...]:
    """Each verdict's column as reference and current shares on the same bins: categories
    (the most common ones) for a categorical column, each value for a numeric one with at
    most ``HISTOGRAM_BINS`` distinct values, else equal-width bins over both frames'
    0.5-99.5 percentiles (values beyond fall in the end bins). Missing values are left out,
    as the verdicts leave them out."""
    import numpy as np

    histograms = []
    for verdict in verdicts:
        column = verdict.feature
        if verdict.kind == CATEGORICAL:
            ref_counts = _category_counts(reference[column], "reference")
            cur_counts = _category_counts(current[column], "current")
            ranked = sorted(
                set(ref_counts) | set(cur_counts),
                key=lambda key: (-(ref_counts.get(key, 0) + cur_counts.get(key, 0)), str(key)),
            )
            kept, rest = ranked[:HISTOGRAM_CATEGORIES], ranked[HISTOGRAM_CATEGORIES:]
            labels = [str(key) for key in kept] + (["other"] if rest else [])
            ref = [ref_counts.get(k, 0) for k in kept] + (
                [sum(ref_counts.get(k, 0) for k in rest)] if rest else []
            )
            cur = [cur_counts.get(k, 0) for k in kept] + (
                [sum(cur_counts.get(k, 0) for k in rest)] if rest else []
            )
            ref_share = np.asarray(ref, dtype="float64") / max(sum(ref), 1)
            cur_share = np.asarray(cur, dtype="float64") / max(sum(cur), 1)
        else:
            ref_values = _finite(reference[column], "reference")
            cur_values = _finite(current[column], "current")
            # A sort of the night's rows only when the (smaller) reference has few values.
            values = np.unique(ref_values)
            if values.size <= HISTOGRAM_BINS:
                values = np.union1d(values, np.unique(cur_values))
            if values.size <= HISTOGRAM_BINS:
                labels = [f"{value:g}" for value in values]
                ref_share = _value_counts_sorted(np.sort(ref_values), values) / ref_values.size
                cur_share = _value_counts_sorted(np.sort(cur_values), values) / cur_values.size
            else:
                tails = [_HISTOGRAM_TAIL, 1 - _HISTOGRAM_TAIL]
                # The range only needs the tails roughly: every k-th row of a big frame.
                (ref_low, ref_high), (cur_low, cur_high) = (
                    np.quantile(_thinned(ref_values), tails),
                    np.quantile(_thinned(cur_values), tails),
                )
                low, high = float(min(ref_low, cur_low)), float(max(ref_high, cur_high))
                if high <= low:
                    high = low + 1.0
                edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
                labels = [f"[{a:.4g}, {b:.4g})" for a, b in zip(edges[:-1], edges[1:], strict=True)]
                ref_share = _binned_shares(ref_values, edges)
                cur_share = _binned_shares(cur_values, edges)
        histograms.append(
            Histogram(
                column,
                tuple(labels),
                tuple(float(x) for x in ref_share),
                tuple(float(x) for x in cur_share),
            )
        )
    return tuple(histograms)


def _thinned(values: np.ndarray, most: int = 20_000) -> np.ndarray:
    return values[:: max(1, values.size // most)]


def _binned_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    import numpy as np

    # Equal widths: each value's bin by arithmetic, values beyond the ends in the end bins.
    bins = len(edges) - 1
    low, high = float(edges[0]), float(edges[-1])
    index = ((values - low) * (bins / (high - low))).astype(np.int64)
    counts = np.bincount(np.clip(index, 0, bins - 1), minlength=bins)
    return counts / values.size


# ----------------------------------------------------------------------------- warehouse
def persist_drift(monitoring: MonitoringStore, result: DriftResult) -> None:
    """Replace the night's and version's rows of the drift tables, in one transaction."""
    import pyarrow as pa

    computed_at = utc_now()
    features = pa.Table.from_pylist(
        [
            {
                "as_of_date": result.as_of_date,
                "model_version": result.model_version,
                "feature": f.feature,
                "kind": f.kind,
                "method": f.method,
                "statistic": f.statistic,
                "p_value": f.p_value,
                "threshold": f.threshold,
                "drifted": f.drifted,
                "reference_rows": result.reference_rows,
                "current_rows": result.current_rows,
                "computed_at": computed_at,
            }
            for f in result.features
        ]
    )
    summary = pa.Table.from_pylist(
        [
            {
                "as_of_date": result.as_of_date,
                "model_version": result.model_version,
                "features_total": len(result.input_features),
                "features_drifted": len(result.drifted_features),
                "share_drifted": result.share_drifted,
                "drifted_features": list(result.drifted_features),
                "prediction_drifted": result.prediction_drifted,
                "dataset_drifted": result.dataset_drifted,
                "html_path": str(result.html_path) if result.html_path else None,
                "json_path": str(result.json_path) if result.json_path else None,
                "seconds": result.seconds,
                "computed_at": computed_at,
            }
        ]
    )
    histograms = pa.Table.from_pylist(
        [
            {
                "as_of_date": result.as_of_date,
                "model_version": result.model_version,
                "feature": h.feature,
                "bins": list(h.bins),
                "reference_share": list(h.reference_share),
                "current_share": list(h.current_share),
                "computed_at": computed_at,
            }
            for h in result.histograms
        ]
    )
    monitoring.replace_drift(
        result.as_of_date,
        result.model_version,
        features,
        summary,
        histograms if result.histograms else None,
    )
