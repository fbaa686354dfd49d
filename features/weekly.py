"""The weekly WAI-S ratings of an alliance table as an array (issue 19): what the weekly models
are fitted on (models/building/weekly.py) and what batch scoring passes to
``models.scoring.weekly.update_matrix``. Scored exactly as the label scores them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.labels import RATERS, WEEKS
from features.scoring import score_wai


def rating_tensor(alliance: pd.DataFrame, ids: pd.Series | np.ndarray) -> np.ndarray:
    """n x 3 x 2 WAI-S item means (weeks 1-3 x client, counsellor; NaN = not rated or void) for
    the admissions ``ids``, scored as the label scores them (``features.scoring.score_wai``)."""
    a = alliance.assign(admission_id=alliance["admission_id"].astype("str"))
    week = pd.to_numeric(a["week"], errors="coerce")
    rater = a["rater"].astype("str")
    keep = week.isin(WEEKS) & rater.isin(RATERS)
    a = a.loc[keep].assign(week=week[keep].astype(int), rater=rater[keep])
    a = a.assign(wai=score_wai(a))
    idx = pd.Index(pd.Series(ids).astype(str))
    out = np.full((len(idx), len(WEEKS), len(RATERS)), np.nan)
    pos = idx.get_indexer(a["admission_id"])
    ok = pos >= 0
    out[pos[ok], a["week"].to_numpy()[ok] - 1, pd.Index(RATERS).get_indexer(a["rater"][ok])] = a[
        "wai"
    ].to_numpy(dtype=float)[ok]
    return out
