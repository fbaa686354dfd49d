"""From validated tables to the model matrix: the DataFrame path and the scikit-learn transformer.

The columns, ``build_matrix`` and the one-record ``record_row`` live in ``features.rows`` (no
pandas, no scikit-learn) so the scoring service can use them without loading either; they are
re-exported here for the training side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from features.catalog import (
    COUNSELLOR_PREFIX,
    COUNSELLORS,
    SCORING_BY_NAME,
)
from features.rows import (  # noqa: F401 - re-exported
    COLUMN_DRIVERS,
    COLUMNS,
    FEATURE_NAMES,
    INPUT_FIELDS,
    MISSING_BLOCKS,
    MONOTONE,
    Column,
    build_matrix,
    record_row,
    to_float,
)


def _column(s: pd.Series) -> np.ndarray:
    """Plain numpy from any pandas dtype: floats with NaN, or objects with None for a gap."""
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype=float, na_value=np.nan)
    return s.astype(object).where(s.notna(), None).to_numpy()


class FeatureBuilder(TransformerMixin, BaseEstimator):
    """Scoring records (DataFrame or dict) -> float matrix with ``FEATURE_NAMES`` columns.

    Stateless by design: nothing is learnt from data, so it cannot leak across folds.
    Scale scores must already be scored from items (features.scoring) before this step.
    """

    def fit(self, X: pd.DataFrame, y: Any = None) -> FeatureBuilder:
        self.feature_names_in_ = np.asarray(
            [c for c in INPUT_FIELDS if c in X.columns], dtype=object
        )
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        return build_matrix({c: _column(X[c]) for c in INPUT_FIELDS if c in X.columns}, len(X))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(FEATURE_NAMES, dtype=object)

    @staticmethod
    def transform_record(record: Mapping[str, Any]) -> np.ndarray:
        return record_row(record)


def scoring_frame(intake: pd.DataFrame, counsellors: pd.DataFrame | None) -> pd.DataFrame:
    """Intake joined with the assigned counsellor's attributes, as the flat scoring record.

    An unknown or unmatched counsellor leaves the counsellor_* fields empty: a normal case at
    admission, not an error (referential integrity is validation's job).
    """
    frame = intake.copy()
    names = [f.name for f in COUNSELLORS if f.name not in ("counsellor_id", "service_id")]
    if counsellors is None or "counsellor_id" not in frame.columns:
        for name in names:
            frame[COUNSELLOR_PREFIX + name] = np.nan
        return frame
    attrs = counsellors.set_index("counsellor_id")[[n for n in names if n in counsellors.columns]]
    attrs = attrs[~attrs.index.duplicated()]
    joined = attrs.reindex(
        frame["counsellor_id"].astype(object).where(frame["counsellor_id"].notna(), None)
    )
    for name in names:
        frame[COUNSELLOR_PREFIX + name] = joined[name].to_numpy() if name in joined else np.nan
    return frame


def typed_records(frame: pd.DataFrame) -> pd.DataFrame:
    """Scoring-record columns in their catalog types, after validation has passed.

    Tables are read as text so that validation can name every bad value; once they are valid,
    numbers become floats (integers too, since a gap makes a column float anyway), booleans
    True/False with NaN for a gap, and codes, ids and dates stay as they are. A table typed by
    pandas itself (``pd.read_csv``: int64, float64 with NaN, bool, "true"/"false") gets the same
    floats and booleans as its text, so every path scores alike.
    """
    out = frame.copy()
    for name in out.columns:
        f = SCORING_BY_NAME.get(name)
        if f is None:
            continue
        if f.kind in ("integer", "number"):
            out[name] = pd.to_numeric(out[name], errors="coerce").astype(float)
        elif f.kind == "boolean":
            vals = to_float(out[name].to_numpy())
            out[name] = pd.Series(
                np.where(np.isnan(vals), None, vals == 1.0), index=out.index, dtype=object
            ).where(~np.isnan(vals), np.nan)
    return out
