"""Records in, scores out: the one path shared by training evaluation, batch scoring, the logged
MLflow model and the service, so they cannot disagree.

``score_table`` is the logged pyfunc's entry: it takes a contract table however pandas typed it
(``pd.read_csv``: whole numbers int64, gaps as float64 NaN, booleans as bool or object, text
"true"/"false"; ``pd.read_parquet``: the file's own types), checks it with the API's record rules
and raises ``DataError`` naming table, field, value and admission_id for a record that breaks the
contract; valid tables are typed with ``typed_records`` and scored by ``score_frame``, so the
answer is the float path's to the last bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.build import FeatureBuilder, typed_records
from features.catalog import DRIVER_GROUPS, SCORING_BY_NAME, SCORING_RECORD
from features.errors import DataError, FieldError
from features.scoring import score_intake
from features.settings import BandConfig
from models.scoring.scorer import ScoringModel

OUTPUT_COLUMNS = [
    "admission_id",
    "risk",
    "risk_low",  # the 95% uncertainty interval (ScoringModel.interval); NaN for LightGBM
    "risk_high",
    "band",
    *(f"contrib_{g}" for g in DRIVER_GROUPS),
]


def frame_to_matrix(frame: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame, list[FieldError]]:
    """Score questionnaire items, then build the model matrix for a whole table of records."""
    scored = score_intake(frame)
    return FeatureBuilder().fit(scored.frame).transform(scored.frame), scored.frame, scored.errors


def score_frame(model: ScoringModel, bands: BandConfig, frame: pd.DataFrame) -> pd.DataFrame:
    """Risk, band and every driver group's contribution (calibrated log-odds, measured from the
    typical client as in ``models.scoring.explain``) for every record.

    Rows whose items conflict with their scale scores are scored as given but reported by
    ``frame_to_matrix``; callers that must refuse them (batch scoring, the API) check first.
    """
    X, _, _ = frame_to_matrix(frame)
    ids = (
        frame["admission_id"].astype(str).to_numpy()
        if "admission_id" in frame
        else np.arange(len(frame)).astype(str)
    )
    return _scores(model, bands, X, ids)


def _scores(model: ScoringModel, bands: BandConfig, X: np.ndarray, ids: np.ndarray) -> pd.DataFrame:
    from models.scoring.explain import explain_matrix

    ex = explain_matrix(model, X)
    risk = ex.risk
    out = pd.DataFrame(
        {
            "admission_id": ids,
            "risk": risk,
            "risk_low": ex.risk_low,
            "risk_high": ex.risk_high,
            "band": bands.bands(risk),
        }
    )
    for j, g in enumerate(DRIVER_GROUPS):
        out[f"contrib_{g}"] = ex.log_odds[:, j]
    return out[OUTPUT_COLUMNS]


def check_table(frame: pd.DataFrame) -> list[FieldError]:
    """Every contract problem of a table of scoring records (empty when it may be scored).

    A required column absent from the table is one error for the column, not one per row.
    """
    from validation.rows import RowValidator

    missing = [f.name for f in SCORING_RECORD if f.required and f.name not in frame.columns]
    if missing:
        return [FieldError("intake", name, "required column is missing") for name in missing]
    frame = frame.reset_index(drop=True)
    validator = RowValidator()
    flagged = np.flatnonzero(validator.screen(frame))
    errors = validator.errors(frame, flagged)
    return [e for i in sorted(errors) for e in errors[i]]


def score_table(model: ScoringModel, bands: BandConfig, frame: pd.DataFrame) -> pd.DataFrame:
    """Validate, type and score a table of scoring records as pandas read it (module docstring).

    Columns outside the scoring record are ignored. Raises DataError listing every problem.
    """
    frame = pd.DataFrame(frame)
    frame = frame[[c for c in frame.columns if c in SCORING_BY_NAME]].reset_index(drop=True)
    errors = check_table(frame)
    if errors:
        raise DataError(errors)
    typed = typed_records(frame)
    X, _, item_errors = frame_to_matrix(typed)
    if item_errors:  # items that contradict the scale score given beside them
        raise DataError(item_errors)
    return _scores(model, bands, X, typed["admission_id"].astype(str).to_numpy())
