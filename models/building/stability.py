"""How far the risk moves when one scale score moves by less than its measurement error.

Why: a questionnaire score is a noisy reading (domain brief: a TCU scale's standard error of
measurement is about 2.7-3.1 points). A risk that jumps several percentage points for one point
on a scale is reading noise, and flips a client between bands on a rounding (issue 10 item 4).
The goal: a step of ``MEASUREMENT_STEP`` on any one scale moves the risk by at most 2 percentage
points for 99% of clients and by at most 4 for any client.

One definition used by ``bench/stability.py``, the model card (``models.building.tracking``) and the
behavioural tests (``tests/model/test_model_behaviour.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.build import FeatureBuilder
from features.catalog import PREDICTORS
from models.scoring.scorer import ScoringModel

# Smallest change within measurement error, per instrument (domain brief, "Measurement error"):
# 1 point on a TCU 10-50 scale or the GHQ-12 Likert total, 0.1 on a Brief COPE item mean,
# 1 on a 1-7 Relationship Questionnaire rating.
MEASUREMENT_STEP: dict[str, float] = {
    "TCU": 1.0,
    "GHQ-12": 1.0,
    "Brief COPE": 0.1,
    "Relationship Questionnaire": 1.0,
}
GOAL_P99_POINTS = 2.0
GOAL_MAX_POINTS = 4.0


def scale_steps() -> dict[str, tuple[float, float, float]]:
    """Scale field -> (step, minimum, maximum), for every scale score a record can carry."""
    return {
        f.name: (MEASUREMENT_STEP[f.instrument], float(f.minimum), float(f.maximum))
        for f in PREDICTORS
        if f.instrument in MEASUREMENT_STEP and not f.is_item
    }


def risk_steps(model: ScoringModel, records: pd.DataFrame) -> pd.DataFrame:
    """Per scale: the 99th percentile and the maximum, over the records that carry that scale, of
    the larger risk change (percentage points) of one step up or one step down (kept within the
    scale's range). ``records`` are scored records (scale scores, not items), e.g. a training or
    test cohort; the model rows are rebuilt from them, so derived columns (attachment style,
    model of self and others) follow the changed score.
    """
    fb = FeatureBuilder().fit(records)
    p0 = model.proba(fb.transform(records))
    rows = []
    for name, (step, lo, hi) in scale_steps().items():
        if name not in records.columns:
            continue
        x = pd.to_numeric(records[name], errors="coerce").to_numpy(dtype=float)
        have = ~np.isnan(x)
        if not have.any():
            continue
        change = np.zeros(len(x))
        for sign in (1.0, -1.0):
            moved = records.assign(**{name: np.clip(x + sign * step, lo, hi)})
            change = np.maximum(change, np.abs(model.proba(fb.transform(moved)) - p0))
        pts = 100.0 * change[have]
        p99, mx = float(np.percentile(pts, 99)), float(pts.max())
        rows.append(
            {
                "scale": name,
                "step": step,
                "n": int(have.sum()),
                "p99_points": round(p99, 3),
                "max_points": round(mx, 3),
                "meets_goal": bool(p99 <= GOAL_P99_POINTS and mx <= GOAL_MAX_POINTS),
            }
        )
    return pd.DataFrame(rows)
