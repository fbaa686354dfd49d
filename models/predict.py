"""Records in, scores out: the one path shared by training evaluation, batch scoring, the logged
MLflow model and the service, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from features.build import FeatureBuilder
from features.catalog import DRIVER_GROUPS
from features.errors import FieldError
from features.scoring import score_intake, score_record
from features.settings import BandConfig
from models.scorer import ScoringModel

OUTPUT_COLUMNS = ["admission_id", "risk", "band", *(f"contrib_{g}" for g in DRIVER_GROUPS)]


def frame_to_matrix(frame: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame, list[FieldError]]:
    """Score questionnaire items, then build the model matrix for a whole table of records."""
    scored = score_intake(frame)
    return FeatureBuilder().fit(scored.frame).transform(scored.frame), scored.frame, scored.errors


def record_to_row(record: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, Any], list[FieldError]]:
    """The single-record hot path: no pandas."""
    scored, errors = score_record(record)
    return FeatureBuilder.transform_record(scored), scored, errors


def score_frame(model: ScoringModel, bands: BandConfig, frame: pd.DataFrame) -> pd.DataFrame:
    """Risk, band and every driver group's contribution (calibrated log-odds, measured from the
    typical client as in ``models.explain``) for every record.

    Rows whose items conflict with their scale scores are scored as given but reported by
    ``frame_to_matrix``; callers that must refuse them (batch scoring, the API) check first.
    """
    from models.explain import explain_matrix

    X, _, _ = frame_to_matrix(frame)
    ex = explain_matrix(model, X)
    risk = ex.risk
    out = pd.DataFrame(
        {
            "admission_id": frame["admission_id"].astype(str).to_numpy()
            if "admission_id" in frame
            else np.arange(len(frame)).astype(str),
            "risk": risk,
            "band": [bands.band(p) for p in risk],
        }
    )
    for j, g in enumerate(DRIVER_GROUPS):
        out[f"contrib_{g}"] = ex.log_odds[:, j]
    return out[OUTPUT_COLUMNS]
