"""The portal's charts as plotly figures: plain ``{"data": [...], "layout": {...}}`` dicts.

The page passes each figure to plotly.js as JSON (a ``<script type="application/json">``
block); ``static/portal.js`` draws it. A point whose ``customdata`` is a path of this app
opens that page when clicked (a night, a feature). Dates are ISO strings, so the JSON
needs no encoder.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

Figure = dict[str, Any]

BAD = "#c53030"
ACCENT = "#2b6cb0"
MUTED = "#718096"
CURRENT = "#dd6b20"
# Risk bands by rank, the riskiest first (their names and floors are settings:
# CHURNOPS_RISK_BANDS); bands past the palette are muted.
BAND_PALETTE = ("#c53030", "#dd6b20", "#2f855a")


DAY_MS = 86_400_000
FEW_NIGHTS_DAYS = 14  # below this span, one tick a night (else plotly ticks the hours)


def _fit_days(layout: dict[str, Any], days: Sequence[str]) -> dict[str, Any]:
    """One tick per night on a short span; plotly's own choice on a long one."""
    if days:
        first, last = dt.date.fromisoformat(min(days)), dt.date.fromisoformat(max(days))
        if (last - first).days < FEW_NIGHTS_DAYS:
            layout["xaxis"] = {**layout["xaxis"], "dtick": DAY_MS}
    return layout


def _layout(y_title: str, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "height": 300,
        "margin": {"l": 56, "r": 16, "t": 28, "b": 40},
        "hovermode": "closest",
        "xaxis": {"type": "date", "title": {"text": "night"}, "tickformat": "%Y-%m-%d"},
        "yaxis": {"title": {"text": y_title}, "zeroline": False},
        "legend": {"orientation": "h", "y": 1.12},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
    }
    layout.update(extra)
    return layout


def _threshold(value: float, label: str) -> dict[str, Any]:
    """A dashed horizontal line across the plot with its label."""
    return {
        "shapes": [
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": value,
                "y1": value,
                "line": {"color": BAD, "dash": "dash", "width": 1.5},
            }
        ],
        "annotations": [
            {
                "xref": "paper",
                "x": 1,
                "y": value,
                "xanchor": "right",
                "yanchor": "bottom",
                "text": label,
                "showarrow": False,
                "font": {"color": BAD, "size": 11},
            }
        ],
    }


def _day(value: dt.date) -> str:
    return value.isoformat()


def drifted_per_night(nights: Sequence[tuple[dt.date, int, str]], threshold: int) -> Figure:
    """Features drifted per night (``(night, count, link)``, oldest first) against the
    retraining trigger's count; red where the count reaches it."""
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "features drifted",
                "x": [_day(day) for day, _, _ in nights],
                "y": [count for _, count, _ in nights],
                "customdata": [link for _, _, link in nights],
                "marker": {
                    "size": 8,
                    "color": [BAD if count >= threshold else ACCENT for _, count, _ in nights],
                },
                "line": {"color": ACCENT},
                "hovertemplate": "%{x|%Y-%m-%d}: %{y} features drifted<extra></extra>",
            }
        ],
        "layout": _fit_days(
            _layout(
                "features drifted",
                **_threshold(threshold, f"retrain at {threshold} drifted features"),
                yaxis={"title": {"text": "features drifted"}, "rangemode": "tozero"},
            ),
            [_day(day) for day, _, _ in nights],
        ),
    }


def drift_heatmap(
    nights: Sequence[dt.date],
    features: Sequence[str],
    ratios: Sequence[Sequence[float | None]],
    links: Sequence[Sequence[str | None]],
) -> Figure:
    """Drift score over threshold, feature (rows) by night (columns): 1 is the threshold."""
    return {
        "data": [
            {
                "type": "heatmap",
                "x": [_day(day) for day in nights],
                "y": list(features),
                "z": [list(row) for row in ratios],
                "customdata": [list(row) for row in links],
                "zmin": 0,
                "zmax": 2,
                "colorscale": [[0, "#f7fafc"], [0.5, "#fbd38d"], [0.5001, "#fc8181"], [1, BAD]],
                "colorbar": {"title": {"text": "score / threshold"}},
                "hovertemplate": "%{y} on %{x}: %{z:.2f} x threshold<extra></extra>",
                "xgap": 1,
                "ygap": 1,
            }
        ],
        "layout": {
            **_layout("feature"),
            "height": max(320, 18 * len(features) + 120),
            "margin": {"l": 190, "r": 16, "t": 20, "b": 60},
            "xaxis": {"type": "category", "title": {"text": "night"}},
            "yaxis": {"automargin": True, "autorange": "reversed"},
        },
    }


def night_scores(features: Sequence[str], ratios: Sequence[float], links: Sequence[str]) -> Figure:
    """One night's drift score over threshold per feature (bars); 1 is the threshold."""
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "name": "score / threshold",
                "x": list(ratios),
                "y": list(features),
                "customdata": list(links),
                "marker": {"color": [BAD if r >= 1 else ACCENT for r in ratios]},
                "hovertemplate": "%{y}: %{x:.2f} x threshold<extra></extra>",
            }
        ],
        "layout": {
            **_layout("feature", **_vertical_threshold(1.0)),
            "height": max(300, 16 * len(features) + 80),
            "margin": {"l": 190, "r": 16, "t": 20, "b": 40},
            "xaxis": {"title": {"text": "drift score / threshold"}, "rangemode": "tozero"},
            "yaxis": {"automargin": True, "autorange": "reversed", "type": "category"},
        },
    }


def _vertical_threshold(value: float) -> dict[str, Any]:
    return {
        "shapes": [
            {
                "type": "line",
                "yref": "paper",
                "y0": 0,
                "y1": 1,
                "x0": value,
                "x1": value,
                "line": {"color": BAD, "dash": "dash", "width": 1.5},
            }
        ]
    }


def feature_score_over_time(
    points: Sequence[tuple[dt.date, float, bool, str]],
    threshold: float | None,
    score_name: str,
) -> Figure:
    """A feature's drift score per night (``(night, score, drifted, link)``) against its
    threshold; drifted nights red."""
    layout = _layout(score_name, yaxis={"title": {"text": score_name}, "rangemode": "tozero"})
    if threshold is not None:
        layout.update(_threshold(threshold, f"threshold {threshold:g}"))
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": score_name,
                "x": [_day(day) for day, _, _, _ in points],
                "y": [score for _, score, _, _ in points],
                "customdata": [link for _, _, _, link in points],
                "marker": {
                    "size": 8,
                    "color": [BAD if drifted else ACCENT for _, _, drifted, _ in points],
                },
                "line": {"color": ACCENT},
                "hovertemplate": "%{x|%Y-%m-%d}: %{y:.4g}<extra></extra>",
            }
        ],
        "layout": _fit_days(layout, [_day(day) for day, _, _, _ in points]),
    }


def histogram(bins: Sequence[str], reference: Sequence[float], current: Sequence[float]) -> Figure:
    """Reference (the champion's training sample) against the night, share per bin."""
    return {
        "data": [
            {
                "type": "bar",
                "name": "reference (training)",
                "x": list(bins),
                "y": list(reference),
                "marker": {"color": MUTED},
                "hovertemplate": "%{x}: %{y:.1%} of the reference<extra></extra>",
            },
            {
                "type": "bar",
                "name": "current (the night)",
                "x": list(bins),
                "y": list(current),
                "marker": {"color": CURRENT},
                "hovertemplate": "%{x}: %{y:.1%} of the night<extra></extra>",
            },
        ],
        "layout": {
            **_layout("share of rows"),
            "barmode": "group",
            "xaxis": {"type": "category", "title": {"text": "bin"}},
            "yaxis": {"title": {"text": "share of rows"}, "tickformat": ".0%"},
        },
    }


def performance(
    cohorts: Sequence[tuple[dt.date, float | None]],
    estimates: Sequence[dict[str, Any]],
    floor: float,
) -> Figure:
    """Realized cohort AUC, and each night's estimated AUC with its band, against the floor."""
    data: list[dict[str, Any]] = []
    banded = [e for e in estimates if e["lower"] is not None and e["upper"] is not None]
    if banded:
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "estimated band",
                "x": [_day(e["night"]) for e in banded] + [_day(e["night"]) for e in banded[::-1]],
                "y": [e["upper"] for e in banded] + [e["lower"] for e in banded[::-1]],
                "fill": "toself",
                "fillcolor": "rgba(43,108,176,0.15)",
                "line": {"width": 0},
                "hoverinfo": "skip",
            }
        )
    data.append(
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "estimated AUC (CBPE)",
            "x": [_day(e["night"]) for e in estimates],
            "y": [e["auc"] for e in estimates],
            "line": {"color": ACCENT},
            "hovertemplate": "%{x|%Y-%m-%d}: estimated %{y:.3f}<extra></extra>",
        }
    )
    data.append(
        {
            "type": "scatter",
            "mode": "markers",
            "name": "realized AUC (matured cohort)",
            "x": [_day(day) for day, _ in cohorts],
            "y": [auc for _, auc in cohorts],
            "marker": {"color": "#2d3748", "size": 8, "symbol": "diamond"},
            "hovertemplate": "%{x|%Y-%m-%d}: realized %{y:.3f}<extra></extra>",
        }
    )
    days = [_day(e["night"]) for e in estimates] + [_day(day) for day, _ in cohorts]
    return {
        "data": data,
        "layout": _fit_days(
            _layout("AUC", **_threshold(floor, f"retrain below AUC {floor:g}")), days
        ),
    }


def churn_rates(rows: Sequence[dict[str, Any]]) -> Figure:
    """Predicted churn rate per night, the trained base rate, and the realized rate of
    the nights whose labels matured (prior drift: which one moved)."""
    days = [_day(r["night"]) for r in rows]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "predicted (mean score)",
                "x": days,
                "y": [r["predicted"] for r in rows],
                "line": {"color": ACCENT},
                "hovertemplate": "%{x|%Y-%m-%d}: predicted %{y:.2%}<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "markers",
                "name": "realized (matured labels)",
                "x": days,
                "y": [r["realized"] for r in rows],
                "marker": {"color": BAD, "size": 8},
                "hovertemplate": "%{x|%Y-%m-%d}: realized %{y:.2%}<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": "trained base rate",
                "x": days,
                "y": [r["base_rate"] for r in rows],
                "line": {"color": MUTED, "dash": "dot"},
                "hovertemplate": "%{x|%Y-%m-%d}: base rate %{y:.2%}<extra></extra>",
            },
        ],
        "layout": _fit_days(
            _layout("churn rate", yaxis={"title": {"text": "churn rate"}, "tickformat": ".2%"}),
            days,
        ),
    }


def band_mix(
    nights: Sequence[dt.date], shares: dict[str, Sequence[float]], ranked: Sequence[str]
) -> Figure:
    """Share of each risk band per night, stacked; ``ranked``: the policy's band names,
    riskiest first (a band no longer in the policy comes last, muted)."""
    order = sorted(shares, key=lambda band: (ranked.index(band) if band in ranked else 99, band))

    def colour(band: str) -> str:
        rank = ranked.index(band) if band in ranked else len(BAND_PALETTE)
        return BAND_PALETTE[rank] if rank < len(BAND_PALETTE) else MUTED

    return {
        "data": [
            {
                "type": "bar",
                "name": band,
                "x": [_day(day) for day in nights],
                "y": list(shares[band]),
                "marker": {"color": colour(band)},
                "hovertemplate": f"%{{x|%Y-%m-%d}}: %{{y:.1%}} {band}<extra></extra>",
            }
            for band in order
        ],
        "layout": _fit_days(
            {
                **_layout("share of customers"),
                "barmode": "stack",
                "yaxis": {"title": {"text": "share of customers"}, "tickformat": ".0%"},
            },
            [_day(day) for day in nights],
        ),
    }


def mean_score(points: Sequence[tuple[dt.date, float]]) -> Figure:
    """The mean served churn probability per night."""
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "mean score",
                "x": [_day(day) for day, _ in points],
                "y": [value for _, value in points],
                "line": {"color": ACCENT},
                "hovertemplate": "%{x|%Y-%m-%d}: %{y:.2%}<extra></extra>",
            }
        ],
        "layout": _fit_days(
            _layout(
                "mean churn probability",
                yaxis={"title": {"text": "mean churn probability"}, "tickformat": ".2%"},
            ),
            [_day(day) for day, _ in points],
        ),
    }


def rollout_share(points: Sequence[tuple[dt.date, str, float]]) -> Figure:
    """The share of customers each rollout's challenger served, night by night (a step
    line per rollout: shadow 0, canary, the ramp, full)."""
    rollouts = list(dict.fromkeys(rollout for _, rollout, _ in points))
    days = [_day(day) for day, _, _ in points]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "line": {"shape": "hv"},
                "name": rollout,
                "x": [_day(day) for day, r, _ in points if r == rollout],
                "y": [share for _, r, share in points if r == rollout],
                "hovertemplate": "%{x|%Y-%m-%d}: %{y:.0%} served the challenger<extra></extra>",
            }
            for rollout in rollouts
        ],
        "layout": _fit_days(
            _layout(
                "challenger's share",
                yaxis={"title": {"text": "share served"}, "tickformat": ".0%", "range": [0, 1.05]},
            ),
            days,
        ),
    }
