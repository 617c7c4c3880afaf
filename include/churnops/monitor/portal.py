"""The drift-report portal's pages: monitoring data read from the warehouse, rendered as HTML.

The Airflow plugin (``plugins/churnops_portal.py``) only routes requests here; everything an
analyst sees is built by the pure functions of this module, so it is tested without Airflow.
Pages are plain HTML with inline CSS and inline SVG charts: nothing is fetched from the
network when they are shown.

The portal runs inside the Airflow API server and must never hold up the pipeline: it opens
the DuckDB warehouse read-only, for the few milliseconds a page's queries take, and when a
nightly task holds the file (DuckDB admits one writing process and no reader beside it) it
answers "busy, reload in a minute" instead of failing.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from churnops.monitor.performance import CohortPerformance
from churnops.monitor.store import (
    COHORT_COLUMNS,
    COHORT_PERFORMANCE_TABLE,
    DRIFT_SUMMARY_TABLE,
    FEATURE_DRIFT_TABLE,
    RETRAIN_REQUESTS_TABLE,
    MonitoringStore,
)
from churnops.settings import Settings
from churnops.warehouse import WarehouseBusy, warehouse_for

if TYPE_CHECKING:
    from churnops.storage import Location

TITLE = "Drift reports"
EMPTY_MESSAGE = "No drift reports yet: run the nightly DAG (churn_nightly)."
BUSY_MESSAGE = "The warehouse is busy (a nightly task is writing); reload in a minute."
NIGHTS_SHOWN = 120  # rows of the nights table; the trend charts show up to TREND_POINTS
TREND_POINTS = 730
REQUESTS_SHOWN = 30

# Our pages load nothing from anywhere (inline CSS and SVG only), and may only be framed by
# the Airflow UI itself.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
}
# Evidently's report runs its own inline scripts: let it, but in a sandbox (an opaque
# origin), so a report can never act with the analyst's Airflow session.
REPORT_HEADERS = {
    "Content-Security-Policy": "sandbox allow-scripts allow-popups allow-downloads",
    "X-Content-Type-Options": "nosniff",
}

_DAY_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_VERSION_PATTERN = re.compile(r"[0-9]{1,9}")


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Night:
    """One row of ``monitoring.drift_summary``: a night's drift verdict for one model version."""

    as_of_date: dt.date
    model_version: str
    features_total: int
    features_drifted: int
    share_drifted: float
    drifted_features: tuple[str, ...]
    prediction_drifted: bool
    dataset_drifted: bool
    report_available: bool = False


@dataclass(frozen=True)
class RetrainRequest:
    """One evaluation of the retraining policy (``monitoring.retrain_requests``)."""

    as_of_date: dt.date
    champion_version: str | None
    fired: bool
    triggered: bool
    reasons: tuple[str, ...]
    held_by_cooldown: bool


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's (or the prediction's) drift test on one night."""

    model_version: str
    feature: str
    kind: str
    method: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class IndexData:
    """Everything the index page shows."""

    nights: list[Night]  # newest first
    cohorts: list[CohortPerformance]  # oldest first
    requests: list[RetrainRequest]  # newest first
    min_cohort_auc: float
    max_drifted_features: int
    cooldown_days: int
    evaluations: int = 0  # how many nights the policy was evaluated
    fired: int = 0  # how many of them requested a retrain


@dataclass(frozen=True)
class Page:
    """What to answer: an HTML page, or a file served as it is."""

    status: int
    html: str = ""
    file: Path | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: dict(PAGE_HEADERS))


def parse_day(raw: str) -> dt.date:
    """``YYYY-MM-DD`` and nothing else (no path separators, no dots)."""
    if not _DAY_PATTERN.fullmatch(raw):
        raise ValueError(f"{raw!r} is not a date (YYYY-MM-DD)")
    return dt.date.fromisoformat(raw)


def parse_version(raw: str) -> str:
    """A registered model version: digits only."""
    if not _VERSION_PATTERN.fullmatch(raw):
        raise ValueError(f"{raw!r} is not a model version (digits)")
    return str(int(raw))


def _reports_root(settings: Settings) -> Location:
    from churnops.storage import shared_files_for

    return shared_files_for(settings).reports_dir / "drift"


def report_path(settings: Settings, day: dt.date, version: str) -> Location:
    """Where the nightly monitor saves the Evidently HTML report of ``day`` and ``version``
    (on the shared files: a local path, or an object-store URL)."""
    return _reports_root(settings) / day.isoformat() / f"v{version}" / "report.html"


def _report_exists(settings: Settings, day: dt.date, version: str) -> bool:
    try:
        return report_path(settings, day, version).is_file()
    except Exception:  # noqa: BLE001 - an unreachable store: the night page still shows
        return False


def _monitoring(settings: Settings) -> MonitoringStore:
    """Read-only: the portal never creates a table (nor, on DuckDB, the file).

    The store on the process's warehouse resource, as ``stores_for(settings,
    read_only=True).monitoring`` holds it: built here, not through churnops.stores, which
    imports this package for MonitoringStore.
    """
    return MonitoringStore(warehouse_for(settings, read_only=True))


def _version_order(column: str) -> str:
    # Versions are digit strings: the longer is the newer, then by digits (numeric order
    # in SQL both engines speak).
    return f"length({column}) DESC, {column} DESC"


def load_index(settings: Settings) -> IndexData:
    """The nights, cohorts and retraining requests, in one short read-only visit."""
    monitoring = _monitoring(settings)
    night_rows = monitoring.rows(
        "SELECT as_of_date, model_version, features_total, features_drifted, share_drifted,"
        " drifted_features, prediction_drifted, dataset_drifted"
        f" FROM {DRIFT_SUMMARY_TABLE}"
        f" ORDER BY as_of_date DESC, {_version_order('model_version')} LIMIT ?",
        [TREND_POINTS],
    )
    cohort_rows = monitoring.rows(
        f"SELECT {', '.join(COHORT_COLUMNS)} FROM {COHORT_PERFORMANCE_TABLE}"
        " ORDER BY as_of_date DESC LIMIT ?",
        [TREND_POINTS],
    )
    request_rows = monitoring.rows(
        "SELECT as_of_date, champion_version, fired, triggered, reasons, held_by_cooldown"
        f" FROM {RETRAIN_REQUESTS_TABLE} WHERE triggered OR fired"
        " ORDER BY as_of_date DESC LIMIT ?",
        [REQUESTS_SHOWN],
    )
    counts = monitoring.rows(
        "SELECT count(*) AS evaluations, count(*) FILTER (WHERE fired) AS fired"
        f" FROM {RETRAIN_REQUESTS_TABLE}",
    )
    nights = []
    for position, row in enumerate(night_rows):
        version = str(row["model_version"])
        # Only the listed rows link their report: spare a stat per charted night.
        available = (
            position < NIGHTS_SHOWN
            and bool(_VERSION_PATTERN.fullmatch(version))
            and report_path(settings, row["as_of_date"], version).is_file()
        )
        nights.append(
            Night(
                as_of_date=row["as_of_date"],
                model_version=version,
                features_total=int(row["features_total"]),
                features_drifted=int(row["features_drifted"]),
                share_drifted=float(row["share_drifted"]),
                drifted_features=tuple(row["drifted_features"] or ()),
                prediction_drifted=bool(row["prediction_drifted"]),
                dataset_drifted=bool(row["dataset_drifted"]),
                report_available=available,
            )
        )
    cohorts = [CohortPerformance(**row) for row in reversed(cohort_rows)]
    requests = [
        RetrainRequest(
            as_of_date=row["as_of_date"],
            champion_version=row["champion_version"],
            fired=bool(row["fired"]),
            triggered=bool(row["triggered"]),
            reasons=tuple(row["reasons"] or ()),
            held_by_cooldown=bool(row["held_by_cooldown"]),
        )
        for row in request_rows
    ]
    totals = counts[0] if counts else {"evaluations": 0, "fired": 0}
    policy = settings.retraining
    return IndexData(
        nights=nights,
        cohorts=cohorts,
        requests=requests,
        min_cohort_auc=policy.min_cohort_auc,
        max_drifted_features=policy.max_drifted_features,
        cooldown_days=policy.cooldown_days,
        evaluations=int(totals["evaluations"]),
        fired=int(totals["fired"]),
    )


def load_night(settings: Settings, day: dt.date) -> list[FeatureDrift]:
    """Every feature's drift test of ``day``: drifted first, then by name."""
    rows = _monitoring(settings).rows(
        "SELECT model_version, feature, kind, method, statistic, p_value, threshold, drifted"
        f" FROM {FEATURE_DRIFT_TABLE} WHERE as_of_date = ?"
        f" ORDER BY {_version_order('model_version')}, drifted DESC,"
        " kind = 'prediction' DESC, feature",
        [day],
    )
    return [
        FeatureDrift(
            model_version=str(row["model_version"]),
            feature=str(row["feature"]),
            kind=str(row["kind"]),
            method=str(row["method"]),
            statistic=row["statistic"],
            p_value=row["p_value"],
            threshold=float(row["threshold"]),
            drifted=bool(row["drifted"]),
        )
        for row in rows
    ]


# --------------------------------------------------------------------------- pages


def index_page(settings: Settings, base: str = "") -> Page:
    """The index: nights, cohort AUC trend, retraining requests (or the empty state)."""
    try:
        data = load_index(settings)
    except WarehouseBusy:
        return busy_page(base)
    return Page(200, render_index(data, base))


def night_page(settings: Settings, raw_day: str, base: str = "") -> Page:
    """One night's per-feature drift table."""
    try:
        day = parse_day(raw_day)
    except ValueError as error:
        return error_page(400, "Not a date", str(error), base)
    try:
        rows = load_night(settings, day)
    except WarehouseBusy:
        return busy_page(base)
    if not rows:
        return error_page(404, "No drift results", f"No drift results for {day}.", base)
    versions = {row.model_version for row in rows}
    reports = {v for v in versions if _VERSION_PATTERN.fullmatch(v)}
    reports = {v for v in reports if _report_exists(settings, day, v)}
    return Page(200, render_night(day, rows, base, reports_available=reports))


def report_page(settings: Settings, raw_day: str, raw_version: str, base: str = "") -> Page:
    """The saved Evidently HTML report, served as it is."""
    try:
        day = parse_day(raw_day)
        version = parse_version(raw_version)
    except ValueError as error:
        return error_page(400, "Bad report address", str(error), base)
    path = report_path(settings, day, version)
    reports_root = _reports_root(settings)
    # Belt and braces: the patterns above already exclude separators and dots.
    if (
        isinstance(path, Path)
        and isinstance(reports_root, Path)
        and not path.resolve().is_relative_to(reports_root.resolve())
    ):
        return error_page(400, "Bad report address", "the report path leaves the reports dir", base)
    from churnops.storage import SharedPathUnavailable, shared_files_for

    try:
        found = path.is_file()
        if not found and not isinstance(path, Path):
            # fsspec answers "no such file" when the store does not answer at all: ask it.
            shared_files_for(settings).check(again=True)
        # A local report is served from its file; one on an object store is read here.
        content = path.read_text() if found and not isinstance(path, Path) else None
    except SharedPathUnavailable as error:
        return error_page(503, "Reports unavailable", str(error), base)
    except Exception as error:  # noqa: BLE001 - every store raises its own types
        return error_page(
            503,
            "Reports unavailable",
            f"The drift reports' storage ({_safe_location(path)}) cannot be read from the "
            f"Airflow API server: {type(error).__name__}. Check CHURNOPS_DATA_URL and this "
            "server's access to it.",
            base,
        )
    if not found:
        return error_page(
            404,
            "Report not found",
            f"No drift report for {day} and model version {version}: the nightly DAG has not "
            "produced it, or it was deleted.",
            base,
        )
    if content is not None:
        return Page(200, html=content, headers=dict(REPORT_HEADERS))
    assert isinstance(path, Path)
    return Page(200, file=path, headers=dict(REPORT_HEADERS))


def _safe_location(path: Location) -> str:
    from churnops.storage import safe_url

    return safe_url(str(path))


def busy_page(base: str = "") -> Page:
    page = error_page(503, "Warehouse busy", BUSY_MESSAGE, base)
    return Page(503, page.html, headers={**PAGE_HEADERS, "Retry-After": "60"})


def error_page(status: int, title: str, message: str, base: str = "") -> Page:
    body = f'<p class="notice">{_e(message)}</p><p><a href="{_e(base)}/">All nights</a></p>'
    return Page(status, _layout(title, body))


# --------------------------------------------------------------------------- rendering


def render_index(data: IndexData, base: str = "") -> str:
    """The index page's HTML."""
    if not data.nights and not data.cohorts and not data.evaluations:
        return _layout(TITLE, f'<p class="notice empty">{_e(EMPTY_MESSAGE)}</p>')
    sections = [
        _nights_section(data, base),
        _cohorts_section(data),
        _requests_section(data),
    ]
    return _layout(TITLE, "\n".join(sections))


def _nights_section(data: IndexData, base: str) -> str:
    if not data.nights:
        return f'<h2>Nights</h2><p class="notice empty">{_e(EMPTY_MESSAGE)}</p>'
    trend = [(n.as_of_date, float(n.features_drifted)) for n in reversed(data.nights)]
    # Scaled to what happens (a few features), not to all 45: the threshold stays readable.
    most = max([n.features_drifted for n in data.nights] + [data.max_drifted_features])
    chart = line_chart_svg(
        trend,
        threshold=float(data.max_drifted_features),
        threshold_label=f"retrain at {data.max_drifted_features} drifted features",
        y_label="features drifted",
        y_range=(0.0, float(math.ceil(most * 1.2 + 1))),
        value_format="{:.0f}",
        alarm_when_above=True,
    )
    rows = []
    for night in data.nights[:NIGHTS_SHOWN]:
        day = night.as_of_date.isoformat()
        report = (
            f'<a href="{_e(base)}/report/{day}/{_e(night.model_version)}">report</a>'
            if night.report_available
            else '<span class="muted">no report file</span>'
        )
        drifted = ", ".join(night.drifted_features)
        rows.append(
            "<tr>"
            f'<td><a href="{_e(base)}/night/{day}">{day}</a></td>'
            f"<td>v{_e(night.model_version)}</td>"
            f'<td class="num" title="{_e(drifted)}">'
            f"{night.features_drifted} / {night.features_total}</td>"
            f'<td class="num">{night.share_drifted:.0%}</td>'
            f"<td>{_yes_no(night.prediction_drifted)}</td>"
            f"<td>{_yes_no(night.dataset_drifted)}</td>"
            f"<td>{report}</td>"
            "</tr>"
        )
    more = ""
    if len(data.nights) > NIGHTS_SHOWN:
        more = f'<p class="muted">The {NIGHTS_SHOWN} latest rows are listed.</p>'
    return (
        "<h2>Feature drift per night</h2>"
        f"{chart}"
        "<table><thead><tr><th>Night</th><th>Model</th><th>Features drifted</th>"
        "<th>Share</th><th>Prediction drifted</th><th>Dataset drifted</th>"
        "<th>Evidently</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{more}"
    )


def _cohorts_section(data: IndexData) -> str:
    header = "<h2>Performance of matured cohorts</h2>"
    if not data.cohorts:
        return header + (
            '<p class="notice">No matured cohort yet: a scoring night is measured once its '
            "90-day label window has closed.</p>"
        )
    chart = line_chart_svg(
        [(c.as_of_date, c.auc) for c in data.cohorts],
        threshold=data.min_cohort_auc,
        threshold_label=f"retrain below AUC {data.min_cohort_auc:g}",
        y_label="AUC",
        value_format="{:.3f}",
    )
    rows = "".join(
        "<tr>"
        f"<td>{c.as_of_date.isoformat()}</td><td>{_e(c.model_versions)}</td>"
        f'<td class="num">{c.rows:,}</td><td class="num">{c.churners:,}</td>'
        f'<td class="num{" bad" if c.auc is not None and c.auc < data.min_cohort_auc else ""}">'
        f"{_num(c.auc, '{:.3f}')}</td>"
        f'<td class="num">{_num(c.recall, "{:.3f}")}</td>'
        f'<td class="num">{_num(c.precision, "{:.3f}")}</td>'
        "</tr>"
        for c in reversed(data.cohorts[-NIGHTS_SHOWN:])
    )
    return (
        f"{header}{chart}"
        "<table><thead><tr><th>Cohort (scoring night)</th><th>Served by</th><th>Rows</th>"
        "<th>Churners</th><th>AUC</th><th>Recall</th><th>Precision</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _requests_section(data: IndexData) -> str:
    header = (
        "<h2>Retraining requests</h2>"
        f'<p class="muted">The policy was evaluated on {data.evaluations} night(s) and asked for '
        f"a retrain {data.fired} time(s); after a request it waits {data.cooldown_days} days "
        "(cooldown).</p>"
    )
    if not data.requests:
        return header + '<p class="notice">No trigger has held yet.</p>'
    rows = "".join(
        "<tr>"
        f"<td>{r.as_of_date.isoformat()}</td>"
        f"<td>{_e('v' + r.champion_version) if r.champion_version else '-'}</td>"
        f"<td>{_yes_no(r.fired)}</td>"
        f"<td>{'held by cooldown' if r.held_by_cooldown else '-'}</td>"
        f"<td>{'<br>'.join(_e(reason) for reason in r.reasons) or '-'}</td>"
        "</tr>"
        for r in data.requests
    )
    return (
        f"{header}<table><thead><tr><th>Night</th><th>Champion</th><th>Retrain requested</th>"
        f"<th>Cooldown</th><th>Reasons</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def render_night(
    day: dt.date,
    rows: Sequence[FeatureDrift],
    base: str = "",
    reports_available: set[str] | frozenset[str] = frozenset(),
) -> str:
    """One night's per-feature drift tables, one per model version."""
    parts = [f'<p><a href="{_e(base)}/">&larr; All nights</a></p>']
    versions = list(dict.fromkeys(row.model_version for row in rows))
    for version in versions:
        mine = [row for row in rows if row.model_version == version]
        drifted = sum(row.drifted for row in mine if row.kind != "prediction")
        features = sum(row.kind != "prediction" for row in mine)
        report = (
            f' &middot; <a href="{_e(base)}/report/{day.isoformat()}/{_e(version)}">'
            "Evidently report</a>"
            if version in reports_available
            else ""
        )
        body = "".join(
            f'<tr class="{"drifted" if row.drifted else ""}">'
            f"<td>{_e(row.feature)}</td><td>{_e(row.kind)}</td><td>{_e(row.method)}</td>"
            f'<td class="num">{_num(row.statistic, "{:.4g}")}</td>'
            f'<td class="num">{_num(row.p_value, "{:.3g}")}</td>'
            f'<td class="num">{_num(row.threshold, "{:g}")}</td>'
            f"<td>{_yes_no(row.drifted)}</td>"
            "</tr>"
            for row in mine
        )
        parts.append(
            f"<h2>Model v{_e(version)}: {drifted} of {features} features drifted{report}</h2>"
            "<table><thead><tr><th>Feature</th><th>Kind</th><th>Method</th><th>Statistic</th>"
            "<th>p-value</th><th>Threshold</th><th>Drifted</th></tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )
    return _layout(f"Drift on {day.isoformat()}", "".join(parts))


def line_chart_svg(
    points: Sequence[tuple[dt.date, float | None]],
    *,
    threshold: float | None,
    threshold_label: str,
    y_label: str,
    y_range: tuple[float, float] | None = None,
    value_format: str = "{:.3f}",
    alarm_when_above: bool = False,
    width: int = 760,
    height: int = 220,
) -> str:
    """An inline SVG line chart over dates with a dashed threshold line.

    Points on the wrong side of the threshold (below it, or above it with
    ``alarm_when_above``) are drawn red; ``None`` values leave a gap.
    """
    known = [(day, value) for day, value in points if value is not None and math.isfinite(value)]
    if not known:
        return '<p class="muted">Nothing to chart yet.</p>'
    values = [value for _, value in known] + ([threshold] if threshold is not None else [])
    low, high = y_range if y_range is not None else (min(values), max(values))
    if y_range is None:
        pad = max((high - low) * 0.1, 0.01)
        low, high = low - pad, high + pad
    if high <= low:
        high = low + 1.0
    left, right, top, bottom = 48, 12, 12, 28
    days = [day for day, _ in points]
    first, last = min(days), max(days)
    span = max((last - first).days, 1)

    def x(day: dt.date) -> float:
        if first == last:
            return left + (width - left - right) / 2
        return left + (width - left - right) * (day - first).days / span

    def y(value: float) -> float:
        clipped = min(max(value, low), high)
        return top + (height - top - bottom) * (high - clipped) / (high - low)

    segments: list[list[str]] = [[]]
    for day, value in points:
        if value is None or not math.isfinite(value):
            segments.append([])
            continue
        segments[-1].append(f"{x(day):.1f},{y(value):.1f}")
    lines = "".join(
        f'<polyline class="series" points="{" ".join(seg)}"/>' for seg in segments if len(seg) > 1
    )
    dots = []
    for day, value in known:
        alarm = threshold is not None and (
            value >= threshold if alarm_when_above else value < threshold
        )
        dots.append(
            f'<circle class="{"alarm" if alarm else "dot"}" cx="{x(day):.1f}" cy="{y(value):.1f}"'
            f' r="3"><title>{day.isoformat()}: {_e(value_format.format(value))}</title></circle>'
        )
    threshold_svg = ""
    if threshold is not None:
        ty = y(threshold)
        threshold_svg = (
            f'<line class="threshold" x1="{left}" x2="{width - right}" y1="{ty:.1f}"'
            f' y2="{ty:.1f}"/>'
            f'<text class="threshold-label" x="{width - right}" y="{ty - 4:.1f}"'
            f' text-anchor="end">{_e(threshold_label)}</text>'
        )
    axis = (
        f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{height - bottom}"/>'
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{height - bottom}"'
        f' y2="{height - bottom}"/>'
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">'
        f"{_e(value_format.format(high))}</text>"
        f'<text x="{left - 4}" y="{height - bottom}" text-anchor="end">'
        f"{_e(value_format.format(low))}</text>"
        f'<text x="{left}" y="{height - 8}">{first.isoformat()}</text>'
        f'<text x="{width - right}" y="{height - 8}" text-anchor="end">{last.isoformat()}</text>'
    )
    return (
        f'<svg class="chart" role="img" aria-label="{_e(y_label)} per night" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{_e(y_label)} per night</title>'
        f"{axis}{threshold_svg}{lines}{''.join(dots)}</svg>"
    )


_CSS = """
:root { color-scheme: light dark; --fg: #1a202c; --muted: #667085; --line: #d0d5dd;
  --bad: #c53030; --ok: #2f855a; --accent: #2b6cb0; --bg-alt: #f7f9fb; }
@media (prefers-color-scheme: dark) { :root { --fg: #e2e8f0; --muted: #a0aec0;
  --line: #4a5568; --bg-alt: #1f2630; --accent: #63b3ed; } }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  margin: 16px 24px; }
h1 { font-size: 20px; margin: 0 0 12px; } h2 { font-size: 16px; margin: 28px 0 8px; }
a { color: var(--accent); }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; }
th { background: var(--bg-alt); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.yes, .bad { color: var(--bad); font-weight: 600; } .no { color: var(--ok); }
tr.drifted td { background: rgba(197, 48, 48, 0.08); }
.muted { color: var(--muted); }
.notice { padding: 10px 14px; border-left: 4px solid var(--accent); background: var(--bg-alt); }
svg.chart { max-width: 100%; height: auto; display: block; }
svg.chart text { font-size: 11px; fill: var(--muted); }
svg.chart .axis { stroke: var(--line); }
svg.chart .series { fill: none; stroke: var(--accent); stroke-width: 1.5; }
svg.chart .dot { fill: var(--accent); } svg.chart .alarm { fill: var(--bad); }
svg.chart .threshold { stroke: var(--bad); stroke-dasharray: 6 4; }
svg.chart .threshold-label { fill: var(--bad); }
"""


def _layout(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} · churnops</title><style>{_CSS}</style></head>"
        f"<body><h1>{_e(title)}</h1>{body}</body></html>"
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _yes_no(flag: bool) -> str:
    return '<span class="yes">yes</span>' if flag else '<span class="no">no</span>'


def _num(value: float | None, fmt: str) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return _e(fmt.format(value))
