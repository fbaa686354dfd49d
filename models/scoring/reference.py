"""The typical client: the one reference every explanation is measured against.

Why one definition: the page says "typical 33.2" beside a value, the what-ifs move a driver "to
typical", and the attributions are Shapley values against a reference. If these were three
different things (the page's medians, the what-if medians and SHAP's training average) a value
better than typical could raise the risk (issue 11). Here the typical client is the record made of
the training data's medians (numbers and scale scores) and modes (codes and booleans), with every
questionnaire completed and, when most training clients had one, a known counsellor; its model row
is ``record_row`` of that record, stored with the model (``reference["row"]``), so the served
model never recomputes it from data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from features.catalog import PREDICTORS
from features.rows import record_row
from models import artifact as A

if TYPE_CHECKING:  # pandas is for training only: the served path must not load it
    import pandas as pd

# A placeholder counsellor id that only marks "counsellor known" in the typical row; it is never
# shown or logged and matches no real counsellor (the model never sees counsellor ids).
_KNOWN_COUNSELLOR = "typical"


def typical_values(frame: pd.DataFrame) -> dict[str, Any]:
    """Median of every number and scale score, most common code or boolean ("True"/"False")."""
    typical: dict[str, Any] = {}
    for f in PREDICTORS:
        if f.name not in frame.columns:
            continue
        col = frame[f.name]
        if f.kind in ("code", "boolean"):
            mode = col.dropna().astype(str).mode()
            typical[f.name] = mode.iloc[0] if len(mode) else None
        else:
            import pandas as pd

            vals = pd.to_numeric(col, errors="coerce")
            if vals.notna().any():
                typical[f.name] = float(vals.median())
    return typical


def typical_record(typical: Mapping[str, Any], counsellor_known: bool = True) -> dict[str, Any]:
    """The typical client as a scoring record (what ``record_row`` takes)."""
    rec = dict(typical)
    if counsellor_known:
        rec["counsellor_id"] = _KNOWN_COUNSELLOR
    return rec


def typical_row(reference: Mapping[str, Any]) -> np.ndarray:
    """The stored typical model row (1 x p); rebuilt from the typical values for artifacts saved
    before the row was stored."""
    row = reference.get("row")
    if row is not None:
        return np.asarray(row, dtype=float).reshape(1, -1)
    if "typical" not in reference:
        raise ValueError(
            "the model has no typical-client reference (reference['typical']); contributions are "
            "measured against it: set model.reference = models.scoring.reference.reference_cohort(...)"
        )
    return record_row(
        typical_record(reference["typical"], bool(reference.get("counsellor_known", True)))
    )


def reference_cohort(frame: pd.DataFrame, bands: dict, label: dict) -> dict[str, Any]:
    """Everything stored with a model about its training cohort: typical values, the typical
    client's model row, scale medians for what-ifs, the band cut-offs and the label definition."""
    typical = typical_values(frame)
    medians = {
        f.name: typical[f.name]
        for f in PREDICTORS
        if f.modifiable and f.kind not in ("code", "boolean") and f.name in typical
    }
    known = True
    if "counsellor_id" in frame.columns:
        cid = frame["counsellor_id"].astype(object)
        known = bool((cid.notna() & (cid.astype(str) != "")).mean() >= 0.5)
    row = record_row(typical_record(typical, known))[0]
    return {
        "typical": typical,
        "median": medians,
        "counsellor_known": known,
        "row": [None if np.isnan(v) else float(v) for v in row],
        A.BANDS_KEY: bands,
        A.LABEL_KEY: label,
    }
