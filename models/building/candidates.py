"""The candidates by name: ``CANDIDATE_ESTIMATORS`` (the one place a name in
``train.candidates`` becomes its estimator), ``make_candidate`` / ``fit_candidate`` (what training
calls), and ``UpdatedCandidate``, an existing model adapted by ``models.building.update``.

Apart from ``models.building.estimators`` (the kinds fitted from scratch) because the updated
candidate needs the update, and the update needs the estimators' design and grids: here both are
imported, and neither of them imports the other's importer (no import circle)."""

from __future__ import annotations

import numpy as np

from models.building.estimators import (
    AnchoredCandidate,
    Candidate,
    LightGBMCandidate,
    LogisticCandidate,
    RidgeCandidate,
    SplineCandidate,
)
from models.building.update import update_model
from models.scoring.scorer import ScoringModel


class UpdatedCandidate(Candidate):
    """An existing model (``base``, a ScoringModel) adapted to the rows it is fitted on: as-is,
    recalibration in the large, logistic recalibration or revision, chosen by closed testing
    (``models.building.update.update_model``). The same input checks, ``fit`` /
    ``predict_proba`` / ``scoring_model_`` as the other candidates; ``update_`` holds the test
    results. Without groups, every row is its own group in the dispersion of the closed test."""

    kind = "updated"

    def __init__(self, base=None, alpha: float = 0.05, random_state: int = 0):
        self.base = base
        self.alpha = alpha
        self.random_state = random_state

    def _fit_model(self, X: np.ndarray, y01: np.ndarray, groups) -> ScoringModel:
        if self.base is None:
            raise ValueError("UpdatedCandidate needs a base model to update (--update-from)")
        groups = np.arange(len(y01)) if groups is None else groups
        self.update_ = update_model(
            self.base, X, y01.astype(float), groups, int(self.random_state), self.alpha
        )
        return self.update_.model


# The one place a candidate's name (``train.candidates``) becomes its estimator.
CANDIDATE_ESTIMATORS: dict[str, type] = {
    "updated": UpdatedCandidate,
    "ridge": RidgeCandidate,
    "anchored": AnchoredCandidate,
    "spline": SplineCandidate,
    "lightgbm": LightGBMCandidate,
    "logistic": LogisticCandidate,
}


def make_candidate(
    kind: str,
    n_configs: int = 6,
    seed: int = 0,
    prior: np.ndarray | None = None,
    base: ScoringModel | None = None,
):
    """The estimator of ``kind`` with training's settings: ``n_configs`` (LightGBM), ``seed``
    (``random_state``), ``prior`` (anchored; None is the plain ridge), ``base`` (updated)."""
    try:
        cls = CANDIDATE_ESTIMATORS[kind]
    except KeyError:
        raise ValueError(f"unknown candidate kind {kind!r}") from None
    given = {"n_configs": n_configs, "random_state": seed, "prior": prior, "base": base}
    names = cls._get_param_names()
    return cls(**{k: v for k, v in given.items() if k in names})


def fit_candidate(
    kind: str,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    n_configs: int,
    seed: int,
    prior: np.ndarray | None = None,
    base: ScoringModel | None = None,
) -> ScoringModel:
    """``kind``'s estimator (``CANDIDATE_ESTIMATORS``) fitted on these rows with inner folds
    grouped by ``groups``: its ``scoring_model_``. Called once per outer fold and once on all
    the rows used for the final model."""
    return make_candidate(kind, n_configs, seed, prior, base).fit(X, y, groups).scoring_model_
