"""The training frame (features joined with matured labels) and its time-based split.

Rows are (as_of_date, customer_id) pairs: the customer's features as of that day and
whether they churned in the 90 days after it. Only as-of dates whose label window has
closed are in ``marts.fct_churn_labels``, so every row's label is final.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from churnops.contracts import ACQUISITION_CHANNELS, PAYMENT_METHODS, PLAN_TYPES, REGIONS
from churnops.features.store import FEATURES_TABLE, LABEL_COLUMN, LABELS_TABLE, FeatureStore
from churnops.settings import TrainParams
from churnops.warehouse import MissingTable

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

KEY_COLUMNS = ("as_of_date", "customer_id")
# Categorical features and their fixed category lists: the codes LightGBM sees depend on
# the list, so training and scoring must use the very same one (the landing contract's).
CATEGORICAL_FEATURES: dict[str, tuple[str, ...]] = {
    "plan_type": PLAN_TYPES,
    "payment_method": PAYMENT_METHODS,
    "region": REGIONS,
    "acquisition_channel": ACQUISITION_CHANNELS,
}
# Columns of the feature table that are never features.
NON_FEATURE_COLUMNS = frozenset(KEY_COLUMNS) | {LABEL_COLUMN}

DAYS_PER_MONTH = 365.25 / 12


def _months(first: dt.date, last: dt.date) -> float:
    return ((last - first).days + 1) / DAYS_PER_MONTH


class InsufficientHistory(RuntimeError):
    """Too few matured as-of dates or churners to train and evaluate a model honestly."""


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """Every column of the feature table except the keys and the label, in table order."""
    return [c for c in frame.columns if c not in NON_FEATURE_COLUMNS]


def _snapshot_rows(
    features: FeatureStore,
    as_of_start: dt.date | None,
    as_of_end: dt.date | None,
    params: TrainParams,
) -> dict[dt.date, tuple[int, int]]:
    """The training snapshots' as-of dates with their labelled rows and churners, or :class:`InsufficientHistory`
    saying why there are none."""
    from churnops.features import WINDOW_DAYS

    try:
        rows = features.labelled_snapshot_rows(
            as_of_start,
            as_of_end,
            params.snapshot_every_days,
            # The first as-of date whose feature window is whole (TrainParams.full_windows_only).
            first_whole_window_after=WINDOW_DAYS - 1 if params.full_windows_only else None,
        )
    except MissingTable as missing:
        raise InsufficientHistory(
            f"the warehouse has no {FEATURES_TABLE} / {LABELS_TABLE} yet: build the "
            f"features first (`churnops bootstrap`) ({missing})"
        ) from missing
    if not rows:
        window = f"{as_of_start or 'the start'}..{as_of_end or 'the end'}"
        raise InsufficientHistory(
            f"no matured labels for as-of dates {window}: labels mature "
            f"{params.label_horizon_days} days after their as-of date"
            + (
                f", and only as-of dates at least {WINDOW_DAYS - 1} days after the feed's "
                "first loaded day count (their feature windows are whole)"
                if params.full_windows_only
                else ""
            )
        )
    return rows


def plan_split(
    features: FeatureStore,
    as_of_start: dt.date | None = None,
    as_of_end: dt.date | None = None,
    *,
    params: TrainParams,
) -> SplitWindows:
    """The split's windows from the labels alone (no feature row read), checked like
    :func:`time_split` checks a loaded frame: :class:`InsufficientHistory` when a part
    would have too few churners. A quick check before loading millions of rows."""
    sizes = _snapshot_rows(features, as_of_start, as_of_end, params)
    windows = split_windows({day: rows for day, (rows, _) in sizes.items()}, params)
    parts: dict[str, list[tuple[int, int]]] = {"train": [], "validation": [], "test": []}
    for day, size in sizes.items():
        part = windows.part_of(day)
        if part is not None:
            parts[part].append(size)
    _require_enough_churners(
        windows,
        params,
        {
            name: (sum(r for r, _ in sizes_), sum(c for _, c in sizes_), len(sizes_))
            for name, sizes_ in parts.items()
        },
    )
    return windows


def load_training_frame(
    features: FeatureStore,
    as_of_start: dt.date | None = None,
    as_of_end: dt.date | None = None,
    *,
    params: TrainParams,
    windows: SplitWindows | None = None,
) -> pd.DataFrame:
    """Features joined with matured labels, one snapshot every ``snapshot_every_days`` days.

    Snapshots are counted back from the latest matured as-of date in [as_of_start,
    as_of_end], so the newest labelled day is always in (the test window's end). Ordered
    by as_of_date, customer_id. With ``windows`` (:func:`plan_split`), only the snapshots
    the split uses are read: not those before the train window, nor those in the gap
    before validation whose label window reaches into it (3 of 12 monthly snapshots).
    """
    rows = _snapshot_rows(features, as_of_start, as_of_end, params)
    dates = [day for day in rows if windows is None or windows.part_of(day) is not None]
    if not dates:
        raise InsufficientHistory(
            f"none of the {len(rows)} snapshot as-of dates {min(rows)}..{max(rows)} falls "
            f"in the split's windows ({windows.describe() if windows else ''})"
        )
    table = features.labelled_snapshots(dates)
    frame = _to_frame(table)
    del table
    log.info(  # the dates as planned: min/max over 6M date objects took 0.4 s at 500k
        "training frame: %d rows, %d as-of dates %s..%s, %d churners",
        len(frame),
        len(dates),
        min(dates),
        max(dates),
        int(frame[LABEL_COLUMN].sum()),
    )
    return frame


def load_split(
    features: FeatureStore,
    as_of_start: dt.date | None = None,
    as_of_end: dt.date | None = None,
    *,
    params: TrainParams,
) -> FrameSplit:
    """What training reads: the split planned on the snapshot dates, then only its rows
    loaded and split (:func:`plan_split`, :func:`load_training_frame`, :func:`time_split`)."""
    windows = plan_split(features, as_of_start, as_of_end, params=params)
    frame = load_training_frame(features, as_of_start, as_of_end, params=params, windows=windows)
    return time_split(frame, params, windows)


def copy_retention_days(params: TrainParams) -> int:
    """How far back from the newest matured as-of date the snapshots' columnar copies are
    kept: every snapshot a training with the default range reads (train, validation and
    test windows: ``total_months``), plus one snapshot step. An older date a training asks
    for is read from the warehouse (and copied again)."""
    import math

    return math.ceil(params.total_months * DAYS_PER_MONTH) + params.snapshot_every_days


def snapshot_dates_to_copy(matured: dt.date, params: TrainParams) -> list[dt.date]:
    """The as-of dates whose copies a training started on the night ``matured``'s label
    matured may read (pure): its snapshots are counted back from ``matured`` every
    ``snapshot_every_days`` days, within :func:`copy_retention_days`. A superset of what
    :func:`load_split` loads (it also drops the dates before the train window and in the
    gap before validation), found without reading the labels: planning the split reads
    every labelled row of the window, which the nightly need not do. Newest first."""
    every = dt.timedelta(days=params.snapshot_every_days)
    count = copy_retention_days(params) // params.snapshot_every_days + 1
    return [matured - k * every for k in range(count)]


def keep_training_copies(
    features: FeatureStore, night: dt.date, params: TrainParams
) -> dict[str, object]:
    """The nightly's part: columnar copies of every snapshot a training started tonight
    may read (:func:`snapshot_dates_to_copy` from the as-of date whose label matured on
    ``night``, ``night`` - the label horizon; those that have labels), so it reads none
    from the warehouse; and the copies older than :func:`copy_retention_days` removed.

    In steady state one date is new each night (tonight's matured one: the others were
    the matured date of an earlier night). After a bootstrap or a reprocessed range a night
    writes the missing ones of its dates (about 80 at the default weekly step), and since
    the dates move on by a day each night, every date of the window has a copy within
    ``snapshot_every_days`` nights.
    """
    matured = night - dt.timedelta(days=params.label_horizon_days)
    keep_from = matured - dt.timedelta(days=copy_retention_days(params))
    done = features.keep_snapshot_copies(snapshot_dates_to_copy(matured, params), keep_from)
    log.info("training copies for night %s (label of %s matured): %s", night, matured, done)
    return {"night": night.isoformat(), "matured_as_of_date": matured.isoformat(), **done}


def _to_frame(table: pa.Table) -> pd.DataFrame:
    """The training frame from the warehouse's Arrow rows, converted once, column by column.

    ``as_of_date`` as ``datetime.date`` objects (windows are compared with dates
    throughout), made once per distinct day (a dozen) and repeated by index, not once per
    row; the categorical features dictionary-encoded by Arrow's own conversion
    (``strings_to_categorical``, in its threads: 0.6 s less at 500,000 x 12 than encoding
    them one by one first), so pandas gets codes rather than a string object per row
    (categories sorted, as ``astype("category")`` gives them: ``train.model`` re-codes
    against the fixed lists anyway); the label as int8; every other column as Arrow's
    ``to_pandas`` gives it (dates as datetime64), Arrow's buffers released as they are
    converted. Blocks stay consolidated (not ``split_blocks``): at 6M rows a split frame
    made each of time_split's ``.loc`` about 4x slower.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    names = table.column_names
    # strings_to_categorical encodes every string column: they must all be categorical
    # features, or a new text column would silently turn into categories.
    strings = [
        field.name
        for field in table.schema
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
    ]
    unexpected = [name for name in strings if name not in CATEGORICAL_FEATURES]
    if unexpected:
        raise TypeError(
            f"the training frame has text columns that are not categorical features: "
            f"{unexpected}; add them to CATEGORICAL_FEATURES or give them a number type"
        )
    days = pc.dictionary_encode(table.column("as_of_date").combine_chunks())
    as_of = np.asarray(days.dictionary.to_pylist(), dtype=object)[days.indices.to_numpy()]
    categorical = [c for c in CATEGORICAL_FEATURES if c in names]
    position = names.index("as_of_date")
    table = table.remove_column(position)
    frame = table.to_pandas(date_as_object=False, self_destruct=True, strings_to_categorical=True)
    del table
    frame.insert(position, "as_of_date", as_of)
    frame[LABEL_COLUMN] = frame[LABEL_COLUMN].astype("int8")
    for column in categorical:
        values = frame[column].cat
        frame[column] = values.reorder_categories(sorted(values.categories))
    return frame


@dataclass(frozen=True)
class SplitWindows:
    """The as-of windows of a split (inclusive). ``scale`` < 1 when history was short."""

    history_start: dt.date  # the first and last labelled snapshot dates there were
    history_end: dt.date
    snapshots: int
    train_start: dt.date
    train_end: dt.date  # the last as-of date whose label window closes before validation
    validation_start: dt.date
    validation_end: dt.date
    test_start: dt.date
    test_end: dt.date
    scale: float
    train_months: float
    validation_months: float
    test_months: float
    gap_rows_dropped: int

    def part_of(self, as_of_date: dt.date) -> str | None:
        """ "train", "validation" or "test" for an as-of date the split keeps, else None
        (before the train window, or in the gap before validation)."""
        if self.train_start <= as_of_date <= self.train_end:
            return "train"
        if self.validation_start <= as_of_date <= self.validation_end:
            return "validation"
        if self.test_start <= as_of_date <= self.test_end:
            return "test"
        return None

    def describe(self) -> str:
        shrunk = "" if self.scale >= 1 else f" (history short: windows at {self.scale:.0%})"
        return (
            f"train {self.train_start}..{self.train_end}, validation {self.validation_start}.."
            f"{self.validation_end}, test {self.test_start}..{self.test_end}{shrunk}; "
            f"{self.gap_rows_dropped:,} train rows dropped whose label window reaches into "
            "validation"
        )


@dataclass(frozen=True)
class FrameSplit:
    """Train / validation / test rows of a training frame, split by as_of_date."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    windows: SplitWindows
    params: TrainParams

    @property
    def features(self) -> list[str]:
        return feature_columns(self.train)

    def counts(self) -> dict[str, tuple[int, int]]:
        """Per part: (rows, churners)."""
        return {
            name: (len(part), int(part[LABEL_COLUMN].sum()))
            for name, part in (
                ("train", self.train),
                ("validation", self.validation),
                ("test", self.test),
            )
        }


def split_windows(snapshot_rows: Mapping[dt.date, int], params: TrainParams) -> SplitWindows:
    """The split's windows from the snapshot as-of dates and their row counts (pure).

    Train, then validation, then test = the latest as-of dates. Windows follow ``params``
    (12/3/3 months by default). With less history they shrink at the same ratio, down to
    ``min_history_months`` in total; below that :class:`InsufficientHistory` says what is
    there and what is needed.
    """
    dates = sorted(snapshot_rows)
    first, last = dates[0], dates[-1]
    span_days = (last - first).days + 1
    wanted_days = params.total_months * DAYS_PER_MONTH
    minimum_days = params.min_history_months * DAYS_PER_MONTH
    if span_days < minimum_days:
        raise InsufficientHistory(
            f"{len(dates)} snapshot as-of dates over {span_days} days "
            f"({span_days / DAYS_PER_MONTH:.1f} months, {first}..{last}) of matured labels; "
            f"training needs at least {params.min_history_months:g} months "
            f"({minimum_days:.0f} days; {params.total_months:g} for full-size windows). "
            f"Labels mature {params.label_horizon_days} days after their as-of date."
        )
    scale = min(1.0, span_days / wanted_days)
    test_days = max(1, round(params.test_months * scale * DAYS_PER_MONTH))
    validation_days = max(1, round(params.validation_months * scale * DAYS_PER_MONTH))
    train_days = max(1, round(params.train_months * scale * DAYS_PER_MONTH))

    test_start = last - dt.timedelta(days=test_days - 1)
    validation_start = test_start - dt.timedelta(days=validation_days)
    validation_end = test_start - dt.timedelta(days=1)
    train_start = max(first, validation_start - dt.timedelta(days=train_days))
    # The gap: a train row's label looks 90 days ahead of its as-of date. Rows whose label
    # window reaches past the start of validation would carry churn that happens inside
    # the validation period into training (leakage, and an optimistic early stopping), so
    # they are dropped: keep as_of_date + horizon <= validation_start.
    train_cutoff = validation_start - dt.timedelta(days=params.label_horizon_days)
    gap_rows = sum(
        rows
        for day, rows in snapshot_rows.items()
        if train_start <= day < validation_start and day > train_cutoff
    )
    return SplitWindows(
        history_start=first,
        history_end=last,
        snapshots=len(dates),
        train_start=train_start,
        train_end=min(train_cutoff, validation_start - dt.timedelta(days=1)),
        validation_start=validation_start,
        validation_end=validation_end,
        test_start=test_start,
        test_end=last,
        scale=scale,
        train_months=params.train_months * scale,
        validation_months=params.validation_months * scale,
        test_months=params.test_months * scale,
        gap_rows_dropped=gap_rows,
    )


def time_split(
    frame: pd.DataFrame, params: TrainParams, windows: SplitWindows | None = None
) -> FrameSplit:
    """Split by as_of_date into the windows of :func:`split_windows`: planned on ``frame``'s
    own dates, or given (``windows``, when the frame was loaded for them: :func:`load_split`).

    With too few churners in any part, :class:`InsufficientHistory` says what is there and
    what is needed.
    """
    if windows is None:
        rows_per_date = frame["as_of_date"].value_counts()
        windows = split_windows(
            dict(zip(rows_per_date.index.tolist(), rows_per_date.tolist(), strict=True)), params
        )
    as_of = frame["as_of_date"]
    train = _rows_where(frame, (as_of >= windows.train_start) & (as_of <= windows.train_end))
    validation = _rows_where(
        frame, (as_of >= windows.validation_start) & (as_of <= windows.validation_end)
    )
    test = _rows_where(frame, as_of >= windows.test_start)

    _require_enough_churners(
        windows,
        params,
        {
            name: (len(part), int(part[LABEL_COLUMN].sum()), part["as_of_date"].nunique())
            for name, part in (("train", train), ("validation", validation), ("test", test))
        },
    )
    log.info("split: %s", windows.describe())
    return FrameSplit(train, validation, test, windows, params)


def _rows_where(frame: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
    """The rows of ``frame`` where ``mask`` holds, with a fresh 0..n-1 index.

    A frame ordered by as_of_date (what :func:`load_training_frame` gives) keeps each
    part's rows in one run: the part is then a slice sharing the frame's memory, not a
    copy (a copy of the 4.5M rows of a 500,000-customer split is about a gigabyte, and
    time_split made three). Any other frame gets a copy of the rows.
    """
    import numpy as np
    import pandas as pd

    rows = np.flatnonzero(mask.to_numpy())
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        part = frame.iloc[rows[0] : rows[-1] + 1].copy(deep=False)
    else:
        part = frame.iloc[rows].copy(deep=False)
    part.index = pd.RangeIndex(len(part))
    return part


def _require_enough_churners(
    windows: SplitWindows, params: TrainParams, parts: Mapping[str, tuple[int, int, int]]
) -> None:
    """:class:`InsufficientHistory` when a part (rows, churners, as-of dates) has fewer
    churners than ``params`` needs, or no non-churner."""
    needs = {
        "train": params.min_train_positives,
        "validation": params.min_eval_positives,
        "test": params.min_eval_positives,
    }
    problems = [
        f"{name}: {rows:,} rows on {dates} as-of dates with {churners:,} churners "
        f"(needs at least {needs[name]:,} churners and some non-churners)"
        for name, (rows, churners, dates) in parts.items()
        if churners < needs[name] or rows - churners == 0
    ]
    if problems:
        raise InsufficientHistory(
            f"history {windows.history_start}..{windows.history_end} "
            f"({_months(windows.history_start, windows.history_end):.1f} months, "
            f"{windows.snapshots} snapshot as-of dates) split as {windows.describe()} "
            "leaves too few labelled churners: " + "; ".join(problems)
        )
