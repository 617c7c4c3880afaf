"""What the service scores with: the champion (and a challenger for the canary share),
loaded the way the nightly loads them, and the scoring of feature rows read from the
online store with the batch's own functions, so a customer's online score is the score the
night's batch gave them.

- Trees: ``churnops.score.engine.engine_for`` (the compiled library of the batch's fast
  path, or LightGBM's booster), calibration: ``churnops.score.fastpath.calibrate``.
- Canary: ``churnops.score.policy.canary_mask`` with the share from
  ``churnops.score.nightly.serving_canary_share`` and the same salt.
- Bands, contacts, reasons: ``assign_risk_bands``, ``threshold_contacts``, ``top_reasons``
  (``churnops.score.policy``); reasons from the batch's exact TreeSHAP.

A version whose contact rule is ``capacity`` flags the night's top N, which only the whole
night decides (at publish): online its ``contact`` is null (``contact_rule`` says why).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from churnops.settings import Settings

if TYPE_CHECKING:
    import numpy as np

    from churnops.registry.champion import LoadedModel
    from churnops.score.engine import Engine

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"


class NoServingModel(RuntimeError):
    """No champion in the registry: the service has nothing to score with."""


@dataclass
class ServingModel:
    loaded: LoadedModel
    engine: Engine
    contact_rule: str  # threshold | capacity | none

    @property
    def version(self) -> str:
        return self.loaded.version

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        from churnops.score.fastpath import calibrate

        return calibrate(self.loaded.model, self.engine.raw_scores(matrix))

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        from churnops.score.treeshap import (
            forest_contributions,
            forest_of,
            lightgbm_contributions,
        )

        try:
            # The batch's exact TreeSHAP, on numba's thread count as the service set it.
            return forest_contributions(forest_of(self.loaded.model.booster), matrix, None)
        except Exception as error:  # noqa: BLE001 - the batch falls back the same way
            log.warning("fast TreeSHAP failed (%s): LightGBM's pred_contrib", error)
            return lightgbm_contributions(self.loaded.model.booster, matrix, 1)

    @property
    def threshold(self) -> float:
        if self.contact_rule != "threshold" or self.loaded.threshold is None:
            return float("nan")
        return self.loaded.threshold


@dataclass
class ServingMix:
    """The models and the canary share one request is scored with (replaced whole)."""

    name: str
    champion: ServingModel
    challenger: ServingModel | None
    canary_share: float
    canary_salt: str
    loaded_at: float = field(default_factory=time.time)
    # (night's feature names, model version) -> column positions in the stored row
    _columns: dict[tuple[tuple[str, ...], str], Any] = field(default_factory=dict)

    @property
    def versions(self) -> tuple[str, str | None]:
        return self.champion.version, self.challenger.version if self.challenger else None

    def columns(self, night_features: tuple[str, ...], model: ServingModel) -> Any:
        import numpy as np

        key = (night_features, model.version)
        if key not in self._columns:
            position = {name: i for i, name in enumerate(night_features)}
            missing = [f for f in model.loaded.features if f not in position]
            if missing:
                raise KeyError(
                    f"the online night lacks features of v{model.version}: {', '.join(missing)}"
                )
            self._columns[key] = np.array([position[f] for f in model.loaded.features])
        return self._columns[key]


def _contact_rule(model: LoadedModel) -> str:
    if model.contact_capacity is not None:
        return "capacity"
    return "threshold" if model.threshold is not None else "none"


def canary_share(settings: Settings, challenger_version: str | None) -> float:
    """The service's one lookup of the canary share: the nightly plan's own function (the
    challenger's rollout phase's share), so online and batch serve the challenger to the
    same customers."""
    from churnops.score.nightly import serving_canary_share
    from churnops.warehouse import warehouse_for

    return serving_canary_share(
        settings,
        challenger_version=challenger_version,
        warehouse=warehouse_for(settings, read_only=True),
    )


def load_mix(settings: Settings, aliases: dict[str, str] | None = None) -> ServingMix:
    """The registry's champion and challenger as the nightly plan would take them."""
    from churnops.registry import current_aliases, load_version
    from churnops.registry.champion import version_run_id
    from churnops.score.engine import engine_for
    from churnops.storage import shared_files_for

    aliases = current_aliases(settings) if aliases is None else aliases
    if CHAMPION not in aliases:
        raise NoServingModel(
            f"no champion for {settings.mlflow.registered_model_name!r} yet: train one first"
        )
    # One request is one row: the compiled library's own threads would only cost.
    policy = dataclasses.replace(settings.scoring, predict_threads=1)
    shared = shared_files_for(settings)

    def ready(version: str) -> ServingModel:
        loaded = load_version(settings, version, version_run_id(settings, version))
        engine = engine_for(loaded, policy, settings.paths.compiled_models_dir, shared)
        return ServingModel(loaded, engine, _contact_rule(loaded))

    champion = ready(aliases[CHAMPION])
    challenger_version = aliases.get(CHALLENGER)
    challenger = (
        ready(challenger_version)
        if challenger_version and challenger_version != champion.version
        else None
    )
    return ServingMix(
        settings.mlflow.registered_model_name,
        champion,
        challenger,
        canary_share(settings, challenger.version if challenger else None),
        settings.scoring.canary_salt,
    )


def score_rows(
    settings: Settings,
    mix: ServingMix,
    customer_ids: Sequence[int],
    rows: np.ndarray,
    night_features: tuple[str, ...],
) -> list[dict[str, Any]]:
    """Score the customers' stored rows (night order of ``night_features``)."""
    import numpy as np

    from churnops.score.policy import (
        assign_risk_bands,
        canary_mask,
        threshold_contacts,
        top_reasons,
    )

    policy = settings.scoring
    ids = np.asarray(customer_ids, dtype=np.int64)
    in_canary = (
        canary_mask(ids, mix.canary_share, mix.canary_salt)
        if mix.challenger is not None
        else np.zeros(len(ids), dtype=bool)
    )
    probabilities = np.empty(len(ids), dtype=np.float64)
    thresholds = np.empty(len(ids), dtype=np.float64)
    reasons: list[list[str]] = [[] for _ in range(len(ids))]
    served_by = np.where(in_canary, CHALLENGER, CHAMPION)
    for model, selected in ((mix.champion, ~in_canary), (mix.challenger, in_canary)):
        index = np.flatnonzero(selected)
        if model is None or len(index) == 0:
            continue
        matrix = np.ascontiguousarray(rows[np.ix_(index, mix.columns(night_features, model))])
        probabilities[index] = model.probabilities(matrix)
        thresholds[index] = model.threshold
        if policy.reason_count:
            for row, names in zip(
                index,
                top_reasons(
                    model.contributions(matrix), model.loaded.features, policy.reason_count
                ),
                strict=True,
            ):
                reasons[row] = names
    bands = assign_risk_bands(probabilities, policy.risk_bands)
    contacts = threshold_contacts(probabilities, thresholds).to_pylist()
    out = []
    for i, customer_id in enumerate(ids.tolist()):
        model = mix.challenger if in_canary[i] and mix.challenger else mix.champion
        out.append(
            {
                "customer_id": customer_id,
                "churn_probability": float(probabilities[i]),
                "risk_band": str(bands[i]),
                "contact": contacts[i],
                "contact_rule": model.contact_rule,
                "model_name": mix.name,
                "model_version": model.version,
                "served_by": str(served_by[i]),
                "reasons": reasons[i],
            }
        )
    return out
