"""The portal's pages: one function per page, returning what to answer as plain data.

A :class:`Page` names its template and context, or a report file to serve as it is. Its
:class:`Table` objects are what the page lists; each is also a CSV download (the page's
address with ``?format=csv&table=<key>``), so the CSV holds exactly the rows shown.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from churnops.lineage import NightLineage
from churnops.portal import charts
from churnops.portal.queries import (
    NightFilters,
    PortalReader,
    parse_day,
    parse_feature,
    parse_filters,
    parse_version,
)
from churnops.settings import Settings

TITLE = "Drift reports"
EMPTY_MESSAGE = "No drift reports yet: run the nightly DAG (churn_nightly)."
BUSY_MESSAGE = "The warehouse is busy (a nightly task is writing); reload in a minute."
NIGHTS_SHOWN = 120  # rows of the nights table; the chart shows every night of the filter
HEATMAP_NIGHTS = 60
PREDICTION = "prediction"

# The app's own script and style, and plotly's (same origin); data only as JSON blocks.
# Plotly inserts a stylesheet of its own: style-src needs 'unsafe-inline' (no script does).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-src 'self'; frame-ancestors 'self'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# Evidently's report runs its own inline scripts: let it, but in a sandbox (an opaque
# origin), so a report can never act with the analyst's Airflow session.
REPORT_HEADERS = {
    "Content-Security-Policy": (
        "sandbox allow-scripts allow-popups allow-downloads; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
}
CSV_HEADERS = {"X-Content-Type-Options": "nosniff"}


@dataclass(frozen=True)
class Column:
    """A table column: ``name`` (the CSV header and the row key), what it shows and how
    (``kind``: text, int, num, pct, bool, list, night, feature, version)."""

    name: str
    title: str
    kind: str = "text"


@dataclass(frozen=True)
class Table:
    key: str
    title: str
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]]
    note: str = ""


@dataclass(frozen=True)
class Page:
    """What to answer: a page from its template, a report (a file, or its HTML)."""

    status: int
    template: str = "message.html"
    context: Mapping[str, Any] = field(default_factory=dict)
    tables: Mapping[str, Table] = field(default_factory=dict)
    file: Path | None = None
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: dict(PAGE_HEADERS))


def _page(template: str, tables: Sequence[Table] = (), **context: Any) -> Page:
    return Page(200, template, context, {t.key: t for t in tables})


def message(status: int, title: str, text: str) -> Page:
    return Page(status, "message.html", {"title": title, "message": text})


def busy() -> Page:
    page = message(503, "Warehouse busy", BUSY_MESSAGE)
    return Page(503, page.template, page.context, headers={**PAGE_HEADERS, "Retry-After": "60"})


def _bad(error: ValueError, title: str = "Bad address") -> Page:
    return message(400, title, str(error))


# ----------------------------------------------------------------------------- nights
NIGHT_COLUMNS = (
    Column("as_of_date", "Night", "night"),
    Column("model_version", "Model", "version"),
    Column("features_drifted", "Features drifted", "int"),
    Column("features_total", "Features", "int"),
    Column("share_drifted", "Share", "pct"),
    Column("prediction_drifted", "Prediction drifted", "bool"),
    Column("dataset_drifted", "Dataset drifted", "bool"),
    Column("drifted_features", "Drifted features", "list"),
    Column("report", "Evidently", "report"),
)


def nights_page(reader: PortalReader, params: Mapping[str, str]) -> Page:
    """Every night's drift verdict, filtered; the drifted-features trend (the index)."""
    try:
        filters = parse_filters(dict(params))
    except ValueError as error:
        return _bad(error, "Bad filter")
    nights = reader.nights(filters)
    policy = reader.settings.retraining
    shown = nights[:NIGHTS_SHOWN]
    for night in shown:
        night["report"] = reader.report_exists(night["as_of_date"], night["model_version"])
    trend = [
        (n["as_of_date"], int(n["features_drifted"]), f"night/{n['as_of_date'].isoformat()}")
        for n in reversed(nights)
    ]
    evaluations, fired = reader.evaluations()
    anything = bool(nights) or filters != NightFilters() or evaluations or reader.cohorts()
    return _page(
        "nights.html",
        [
            Table(
                "nights",
                "Nights",
                NIGHT_COLUMNS,
                shown,
                note=f"The {NIGHTS_SHOWN} latest of {len(nights)} are listed."
                if len(nights) > NIGHTS_SHOWN
                else "",
            )
        ],
        title=TITLE,
        empty=not anything,
        empty_message=EMPTY_MESSAGE,
        matched=len(nights),
        filters=filters,
        versions=reader.versions(),
        charts={"nights": charts.drifted_per_night(trend, policy.max_drifted_features)}
        if nights
        else {},
        evaluations=evaluations,
        fired=fired,
    )


def heatmap_page(reader: PortalReader, params: Mapping[str, str]) -> Page:
    """Drift score over threshold by feature and night (the newest ``HEATMAP_NIGHTS``)."""
    try:
        filters = parse_filters(dict(params))
    except ValueError as error:
        return _bad(error, "Bad filter")
    nights = reader.nights(filters, limit=HEATMAP_NIGHTS)
    wanted = {n["as_of_date"] for n in nights}
    rows = []
    if wanted:
        window = NightFilters(min(wanted), max(wanted), filters.model_version)
        rows = [r for r in reader.feature_drift(window) if r["as_of_date"] in wanted]
    days = sorted({r["as_of_date"] for r in rows})
    cells: dict[tuple[str, dt.date], float] = {}
    drifted_nights: dict[str, int] = defaultdict(int)
    for r in rows:
        key = (r["feature"], r["as_of_date"])
        ratio = r["ratio"] if r["ratio"] is not None else 0.0
        cells[key] = max(cells.get(key, 0.0), ratio)
        drifted_nights[r["feature"]] += bool(r["drifted"])
    # Most often drifted first, then the strongest drift, then by name.
    features = sorted(
        {f for f, _ in cells},
        key=lambda f: (-drifted_nights[f], -max(cells[(f, d)] for d in days if (f, d) in cells), f),
    )
    z = [[cells.get((f, d)) for d in days] for f in features]
    links = [[f"feature/{f}?night={d.isoformat()}" for d in days] for f in features]
    return _page(
        "heatmap.html",
        [
            Table(
                "drift_scores",
                "Drift scores",
                (
                    Column("as_of_date", "Night", "night"),
                    Column("model_version", "Model", "version"),
                    Column("feature", "Feature", "feature"),
                    Column("method", "Method"),
                    Column("statistic", "Statistic", "num"),
                    Column("p_value", "p-value", "num"),
                    Column("threshold", "Threshold", "num"),
                    Column("ratio", "Score / threshold", "num"),
                    Column("drifted", "Drifted", "bool"),
                ),
                rows[::-1],
            )
        ],
        title="Drift by feature and night",
        filters=filters,
        versions=reader.versions(),
        charts={"heatmap": charts.drift_heatmap(days, features, z, links)} if days else {},
    )


# ----------------------------------------------------------------------------- a night
NIGHT_FEATURE_COLUMNS = (
    Column("feature", "Feature", "feature"),
    Column("kind", "Kind"),
    Column("method", "Method"),
    Column("statistic", "Statistic", "num"),
    Column("p_value", "p-value", "num"),
    Column("threshold", "Threshold", "num"),
    Column("ratio", "Score / threshold", "num"),
    Column("drifted", "Drifted", "bool"),
)


def night_page(reader: PortalReader, raw_day: str) -> Page:
    """One night: each model version's per-feature verdicts, and its Evidently report."""
    try:
        day = parse_day(raw_day)
    except ValueError as error:
        return _bad(error, "Not a date")
    rows = [{**row, "as_of_date": day} for row in reader.night(day)]
    if not rows:
        return message(404, "No drift results", f"No drift results for {day}.")
    versions = list(dict.fromkeys(r["model_version"] for r in rows))
    sections, tables, figures = [], [], {}
    for version in versions:
        mine = [r for r in rows if r["model_version"] == version]
        inputs = [r for r in mine if r["kind"] != PREDICTION]
        key = f"features_v{version}"
        tables.append(Table(key, f"Model v{version}", NIGHT_FEATURE_COLUMNS, mine))
        ranked = sorted(mine, key=lambda r: -(r["ratio"] or 0.0))
        figures[f"night-v{version}"] = charts.night_scores(
            [r["feature"] for r in ranked],
            [r["ratio"] or 0.0 for r in ranked],
            [f"feature/{r['feature']}?night={day.isoformat()}" for r in ranked],
        )
        sections.append(
            {
                "version": version,
                "table": key,
                "chart": f"night-v{version}",
                "drifted": sum(bool(r["drifted"]) for r in inputs),
                "features": len(inputs),
                "report": reader.report_exists(day, version),
            }
        )
    lineage = reader.lineage(day)
    if lineage is not None:
        tables.append(Table("lineage", "Lineage", LINEAGE_COLUMNS, lineage_rows(lineage)))
    return _page(
        "night.html",
        tables,
        title=f"Drift on {day.isoformat()}",
        day=day,
        sections=sections,
        charts=figures,
        lineage=lineage,
    )


LINEAGE_COLUMNS = (
    Column("step", "Step"),
    Column("what", "What"),
)


def lineage_rows(lineage: NightLineage) -> list[dict[str, Any]]:
    """The night's lineage as the rows of one table, in the order the data flowed: the
    drops, the raw tables they were loaded into, the feature build, the model versions
    that scored and the predictions they wrote."""
    build = lineage.feature_build
    steps: list[tuple[str, Sequence[str]]] = [
        ("landing drop", lineage.drops),
        ("raw table", lineage.raw_tables),
        ("feature build (dbt)", build.models if build else ()),
        ("dbt invocation", [build.dbt_invocation_id] if build and build.dbt_invocation_id else ()),
        ("model version", lineage.model_versions),
        ("predictions", lineage.predictions),
    ]
    return [{"step": step, "what": item} for step, items in steps for item in items]


# ----------------------------------------------------------------------------- a feature
def feature_page(reader: PortalReader, raw_feature: str, params: Mapping[str, str]) -> Page:
    """A feature's drift score over the nights against its threshold, and its reference
    and current histograms of one night (``?night=``, the latest by default)."""
    try:
        feature = parse_feature(raw_feature)
        night = parse_day(params["night"]) if params.get("night") else None
        version = parse_version(params["version"]) if params.get("version") else None
    except ValueError as error:
        return _bad(error)
    history = reader.feature_drift(NightFilters(model_version=version), feature=feature)
    if not history:
        return message(404, "No such feature", f"No drift results for feature {feature!r}.")
    night = night or history[-1]["as_of_date"]
    kinds = {r["method"] for r in history}
    p_values = all(r["p_value"] is not None for r in history)
    score_name = "p-value" if p_values else "distance" if len(kinds) == 1 else "score"
    thresholds = {float(r["threshold"]) for r in history}
    figures = {
        "score": charts.feature_score_over_time(
            [
                (r["as_of_date"], r["score"], bool(r["drifted"]), f"night/{r['as_of_date']}")
                for r in history
                if r["score"] is not None
            ],
            thresholds.pop() if len(thresholds) == 1 else None,
            f"{score_name} ({', '.join(sorted(kinds))})",
        )
    }
    histogram_rows = []
    for h in reader.histograms(night, feature):
        if version and str(h["model_version"]) != version:
            continue
        figures.setdefault(
            "histogram",
            charts.histogram(h["bins"], h["reference_share"], h["current_share"]),
        )
        histogram_rows = [
            {
                "model_version": str(h["model_version"]),
                "bin": b,
                "reference_share": r,
                "current_share": c,
            }
            for b, r, c in zip(h["bins"], h["reference_share"], h["current_share"], strict=True)
        ]
        break
    return _page(
        "feature.html",
        [
            Table(
                "history",
                "Every night",
                (
                    Column("as_of_date", "Night", "night"),
                    Column("model_version", "Model", "version"),
                    Column("method", "Method"),
                    Column("statistic", "Statistic", "num"),
                    Column("p_value", "p-value", "num"),
                    Column("threshold", "Threshold", "num"),
                    Column("drifted", "Drifted", "bool"),
                ),
                history[::-1],
            ),
            Table(
                "histogram",
                f"Distribution on {night.isoformat()}",
                (
                    Column("model_version", "Model", "version"),
                    Column("bin", "Bin"),
                    Column("reference_share", "Reference", "pct"),
                    Column("current_share", "Night", "pct"),
                ),
                histogram_rows,
            ),
        ],
        title=f"Feature {feature}",
        feature=feature,
        features=reader.features(),
        night=night,
        nights=sorted({r["as_of_date"] for r in history}, reverse=True),
        charts=figures,
    )


# ----------------------------------------------------------------------------- performance
def performance_page(reader: PortalReader) -> Page:
    """Realized cohort AUC against the floor; each night's estimated AUC with its band;
    the predicted churn rate against the realized one (prior drift)."""
    floor = reader.settings.retraining.min_cohort_auc
    cohorts = reader.cohorts()
    estimates = reader.estimates()
    figures = {}
    if cohorts or estimates:
        figures["performance"] = charts.performance(
            [(c["as_of_date"], c["auc"]) for c in cohorts],
            [
                {
                    "night": e["as_of_date"],
                    "auc": e["estimated_auc"],
                    "lower": e["estimated_auc_lower"],
                    "upper": e["estimated_auc_upper"],
                }
                for e in estimates
            ],
            floor,
        )
    if estimates:
        figures["rates"] = charts.churn_rates(
            [
                {
                    "night": e["as_of_date"],
                    "predicted": e["mean_probability"],
                    "realized": e["realized_rate"],
                    "base_rate": e["base_rate"],
                }
                for e in estimates
            ]
        )
    return _page(
        "performance.html",
        [
            Table(
                "cohorts",
                "Matured cohorts (realized)",
                (
                    Column("as_of_date", "Cohort (scoring night)", "night"),
                    Column("model_versions", "Served by"),
                    Column("rows", "Rows", "int"),
                    Column("churners", "Churners", "int"),
                    Column("auc", "AUC", "num"),
                    Column("recall", "Recall", "num"),
                    Column("precision", "Precision", "num"),
                    Column("f1", "F1", "num"),
                ),
                cohorts[::-1],
            ),
            Table(
                "estimates",
                "Estimated every night (CBPE), realized once matured",
                (
                    Column("as_of_date", "Night", "night"),
                    Column("model_version", "Model", "version"),
                    Column("estimated_auc", "Estimated AUC", "num"),
                    Column("estimated_auc_lower", "Band low", "num"),
                    Column("estimated_auc_upper", "Band high", "num"),
                    Column("realized_auc", "Realized AUC", "num"),
                    Column("mean_probability", "Predicted churn rate", "pct"),
                    Column("realized_rate", "Realized churn rate", "pct"),
                    Column("base_rate", "Trained base rate", "pct"),
                    Column("prior_drift", "Prior drift", "list"),
                ),
                estimates[::-1],
            ),
        ],
        title="Performance",
        floor=floor,
        charts=figures,
    )


# ----------------------------------------------------------------------------- rollout
ROLLOUT_EVENT_COLUMNS = (
    Column("as_of_date", "Night", "night"),
    Column("rollout_id", "Rollout"),
    Column("challenger_version", "Challenger", "version"),
    Column("champion_version", "Champion", "version"),
    Column("phase", "Phase"),
    Column("status", "Status"),
    Column("share", "Share served", "pct"),
    Column("nights_in_phase", "Nights in phase", "int"),
    Column("action", "Action"),
    Column("reasons", "Reasons", "list"),
    Column("actor", "By"),
)
GATE_COLUMNS = (
    Column("name", "Gate"),
    Column("status", "Verdict"),
    Column("reasons", "Reasons", "list"),
    Column("numbers", "Numbers", "list"),
)


def rollout_page(reader: PortalReader) -> Page:
    """The phased rollout: where the newest one stands, the share the challenger served
    night by night, the newest gates with their numbers, and every event with its reasons."""
    from churnops.rollout import RolloutState, serving_share

    current, events = reader.rollout()
    policy = reader.settings.rollout
    for event in events:
        state = RolloutState(**{k: event[k] for k in RolloutState.__dataclass_fields__})
        event["share"] = serving_share(policy, state, state.challenger_version)
    gates = [
        {**gate, "numbers": [f"{k} = {_number(v)}" for k, v in gate["numbers"].items()]}
        for gate in (current or {}).get("gates") or []
    ]
    figures = {}
    if events:
        figures["share"] = charts.rollout_share(
            [(e["as_of_date"], e["rollout_id"], float(e["share"])) for e in events]
        )
    return _page(
        "rollout.html",
        [
            Table("gates", "The newest gates", GATE_COLUMNS, gates),
            Table("rollout_events", "Every rollout event", ROLLOUT_EVENT_COLUMNS, events[::-1]),
        ],
        title="Rollout",
        current=current,
        charts=figures,
    )


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# ----------------------------------------------------------------------------- scores
def scores_page(reader: PortalReader) -> Page:
    """The risk-band mix and the mean served score per night."""
    mix = reader.band_mix()
    trend = reader.score_trend()
    totals: dict[dt.date, int] = defaultdict(int)
    for row in mix:
        totals[row["as_of_date"]] += int(row["customers"])
    nights = sorted(totals)
    bands = sorted({str(r["risk_band"]) for r in mix})
    share = {
        (r["as_of_date"], str(r["risk_band"])): int(r["customers"]) / totals[r["as_of_date"]]
        for r in mix
    }
    for row in mix:
        row["share"] = share[(row["as_of_date"], str(row["risk_band"]))]
    figures = {}
    if nights:
        figures["bands"] = charts.band_mix(
            nights,
            {band: [share.get((n, band), 0.0) for n in nights] for band in bands},
            [name for name, _ in reader.settings.scoring.risk_bands],
        )
    if trend:
        figures["mean"] = charts.mean_score(
            [(r["as_of_date"], float(r["mean_probability"])) for r in trend]
        )
    return _page(
        "scores.html",
        [
            Table(
                "band_mix",
                "Risk bands per night",
                (
                    Column("as_of_date", "Night", "night"),
                    Column("risk_band", "Risk band"),
                    Column("customers", "Customers", "int"),
                    Column("share", "Share", "pct"),
                ),
                mix[::-1],
            ),
            Table(
                "score_trend",
                "Scores per night",
                (
                    Column("as_of_date", "Night", "night"),
                    Column("customers", "Customers scored", "int"),
                    Column("mean_probability", "Mean score", "pct"),
                    Column("contacted", "Contacted", "int"),
                    Column("canary", "Canary rows", "int"),
                ),
                trend[::-1],
            ),
        ],
        title="Scores",
        charts=figures,
    )


# ----------------------------------------------------------------------------- retraining
def retraining_page(reader: PortalReader) -> Page:
    """Why each request fired (reasons, follow-ups, the drifted population's labels), each
    champion/challenger decision with both models' metrics, and the alias history."""
    evaluations, fired = reader.evaluations()
    decisions = reader.decisions()
    decision_rows = [
        {
            **{
                k: d[k]
                for k in (
                    "decided_at",
                    "challenger_version",
                    "champion_version",
                    "action",
                    "reasons",
                    "actor",
                )
            },
            **{f"challenger_{m['metric']}": m["challenger"] for m in d["metrics"]},
            **{f"champion_{m['metric']}": m["champion"] for m in d["metrics"]},
        }
        for d in decisions
    ]
    metric_names = list(dict.fromkeys(m["metric"] for d in decisions for m in d["metrics"]))
    return _page(
        "retraining.html",
        [
            Table(
                "requests",
                "Retraining requests",
                (
                    Column("as_of_date", "Night", "night"),
                    Column("champion_version", "Champion", "version"),
                    Column("fired", "Retrain requested", "bool"),
                    Column("held_by_cooldown", "Held by cooldown", "bool"),
                    Column("reasons", "Reasons", "list"),
                ),
                reader.requests(),
            ),
            Table(
                "populations",
                "Drifted populations (who drifted, and how many matured labels they have)",
                (
                    Column("as_of_date", "Night", "night"),
                    Column("model_version", "Model", "version"),
                    Column("features", "Drifted features", "list"),
                    Column("customers", "Customers drifted", "int"),
                    Column("base", "Of", "int"),
                    Column("labelled", "With a matured label", "int"),
                    Column("labelled_by_chance", "By chance", "int"),
                    Column("labels_since", "Labels since"),
                ),
                reader.populations(),
            ),
            Table(
                "follow_ups",
                "Follow-up retrains (when the drifted population's labels mature)",
                (
                    Column("due_on", "Due on"),
                    Column("requested_on", "Requested on", "night"),
                    Column("reason", "Reason"),
                ),
                reader.follow_ups(),
            ),
            Table(
                "decisions",
                "Champion / challenger decisions",
                (
                    Column("decided_at", "Decided at"),
                    Column("challenger_version", "Challenger", "version"),
                    Column("champion_version", "Champion", "version"),
                    Column("action", "Decision"),
                    Column("reasons", "Reasons", "list"),
                    Column("actor", "By"),
                    *(
                        Column(f"{side}_{name}", f"{side} {name}", "num")
                        for name in metric_names
                        for side in ("champion", "challenger")
                    ),
                ),
                decision_rows,
            ),
            Table(
                "aliases",
                "Alias history",
                (
                    Column("event_at", "When"),
                    Column("alias", "Alias"),
                    Column("from_version", "From", "version"),
                    Column("to_version", "To", "version"),
                    Column("action", "Action"),
                    Column("reason", "Reason"),
                    Column("actor", "By"),
                ),
                reader.alias_history(),
            ),
        ],
        title="Retraining",
        decisions=decisions,
        evaluations=evaluations,
        fired=fired,
        cooldown_days=reader.settings.retraining.cooldown_days,
    )


# ----------------------------------------------------------------------------- reports
def report_page(reader: PortalReader, raw_day: str, raw_version: str) -> Page:
    """The saved Evidently HTML report, served as it is (sandboxed)."""
    from churnops.storage import SharedPathUnavailable, safe_url, shared_files_for

    try:
        day = parse_day(raw_day)
        version = parse_version(raw_version)
    except ValueError as error:
        return _bad(error, "Bad report address")
    path = reader.report_path(day, version)
    root = reader.reports_root()
    # Belt and braces: the patterns above already exclude separators and dots.
    if (
        isinstance(path, Path)
        and isinstance(root, Path)
        and not path.resolve().is_relative_to(root.resolve())
    ):
        return message(400, "Bad report address", "the report path leaves the reports dir")
    try:
        found = path.is_file()
        if not found and not isinstance(path, Path):
            # fsspec answers "no such file" when the store does not answer at all: ask it.
            shared_files_for(reader.settings).check(again=True)
        # A local report is served from its file; one on an object store is read here.
        content = path.read_text() if found and not isinstance(path, Path) else None
    except SharedPathUnavailable as error:
        return message(503, "Reports unavailable", str(error))
    except Exception as error:  # noqa: BLE001 - every store raises its own types
        return message(
            503,
            "Reports unavailable",
            f"The drift reports' storage ({safe_url(str(path))}) cannot be read from the "
            f"Airflow API server: {type(error).__name__}. Check CHURNOPS_DATA_URL and this "
            "server's access to it.",
        )
    if not found:
        return message(
            404,
            "Report not found",
            f"No drift report for {day} and model version {version}: the nightly DAG has not "
            "produced it, or it was deleted.",
        )
    if content is not None:
        return Page(200, html=content, headers=dict(REPORT_HEADERS))
    assert isinstance(path, Path)
    return Page(200, file=path, headers=dict(REPORT_HEADERS))


PAGES: dict[str, Callable[..., Page]] = {
    "nights": nights_page,
    "heatmap": heatmap_page,
    "night": night_page,
    "feature": feature_page,
    "performance": performance_page,
    "scores": scores_page,
    "retraining": retraining_page,
    "rollout": rollout_page,
}


def reader_for(settings: Settings) -> PortalReader:
    return PortalReader(settings)
