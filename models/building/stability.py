"""How far the risk moves when one scale score moves by less than its measurement error, and
whether that is within bound (the one place the rule lives).

Why: a questionnaire score is a noisy reading (domain brief: a TCU scale's standard error of
measurement is about 2.7-3.1 points). A risk that jumps several percentage points for one point
on a scale is reading noise, and flips a client between bands on a rounding (issue 10 item 4).

The rule (issue 17 item 5), per scale, for a step of ``MEASUREMENT_STEP`` up or down:
- a questionnaire scale (TCU, GHQ-12, Brief COPE): the risk moves by at most ``GOAL_P99_POINTS``
  (2) percentage points for 99% of clients and ``GOAL_MAX_POINTS`` (4) for any client;
- a single-item 1-7 rating (the Relationship Questionnaire's attachment ratings): one point is
  about 0.6 SD, and the literature-sized truth itself moves the risk by up to 3.9 points for it, so
  the bound is ``TRUTH_FACTOR`` (1.25) x the truth's own move for the same step, 99th percentile
  and maximum over clients (``TRUTH_MOVE``, from ``bench.stability --truth``), not 2 points.

``bounds()`` gives each scale's bound and ``risk_steps`` measures a model and marks each scale
PASS or FAIL against it. One definition used by ``bench/stability.py``, the evaluation
(``models.building.evaluation``), the model card and the behavioural tests
(``tests/model/test_model_behaviour.py``).
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
# Single-item ratings: bounded by the truth's own move, not by the questionnaire goal.
RATING_INSTRUMENT = "Relationship Questionnaire"
GOAL_P99_POINTS = 2.0
GOAL_MAX_POINTS = 4.0
TRUTH_FACTOR = 1.25
# The SYNTHETIC generator's true risk change (percentage points) for one step on each 1-7 rating,
# (99th percentile, maximum) over clients: the true log-odds of a low alliance
# (p_low_alliance_client_no_ids) of 6,000 admissions of the default world (effects sized from the
# literature, simulator/effects.py), seed 7, projected by least squares on the 13 scale scores,
# and each client's own true risk moved by that slope for one step up or down within 1-7.
# Command and figures: `bench.stability --truth --n 6000`, docs/benchmarks.md.
TRUTH_MOVE: dict[str, tuple[float, float]] = {
    "attach_secure": (3.94, 3.94),
    "attach_fearful": (1.98, 1.98),
    "attach_preoccupied": (0.08, 0.08),
    "attach_dismissing": (1.95, 1.95),
}


def scale_steps() -> dict[str, tuple[float, float, float]]:
    """Scale field -> (step, minimum, maximum), for every scale score a record can carry."""
    return {
        f.name: (MEASUREMENT_STEP[f.instrument], float(f.minimum), float(f.maximum))
        for f in PREDICTORS
        if f.instrument in MEASUREMENT_STEP and not f.is_item
    }


def ratings() -> tuple[str, ...]:
    """The single-item 1-7 ratings (held to the truth-relative bound)."""
    return tuple(f.name for f in PREDICTORS if f.instrument == RATING_INSTRUMENT and not f.is_item)


def bounds(
    truth: dict[str, tuple[float, float]] | None = None,
) -> dict[str, tuple[float, float, str]]:
    """Scale field -> (p99 bound, max bound, which rule), in percentage points. ``truth``
    replaces ``TRUTH_MOVE`` (e.g. another world's truth); a rating without a truth figure is
    an error, not silently held to 2 points."""
    truth = TRUTH_MOVE if truth is None else truth
    rated = set(ratings())
    out: dict[str, tuple[float, float, str]] = {}
    for name in scale_steps():
        if name in rated:
            # 1.25x the truth's own move where the truth moves more than the questionnaire
            # bound allows, never tighter than that bound: a rating the truth gives almost no
            # weight (attach_preoccupied moves the true risk 0.08 points) would otherwise be held
            # to 0.1 points, which only a model ignoring it can meet.
            p99, mx = truth[name]
            out[name] = (
                round(max(TRUTH_FACTOR * p99, GOAL_P99_POINTS), 3),
                round(max(TRUTH_FACTOR * mx, GOAL_MAX_POINTS), 3),
                f"{TRUTH_FACTOR:g}x truth, at least the questionnaire bound",
            )
        else:
            out[name] = (GOAL_P99_POINTS, GOAL_MAX_POINTS, "questionnaire")
    return out


def risk_steps(
    model: ScoringModel,
    records: pd.DataFrame,
    truth: dict[str, tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Per scale: the 99th percentile and the maximum, over the records that carry that scale, of
    the larger risk change (percentage points) of one step up or one step down (kept within the
    scale's range), the scale's bound (``bounds``) and PASS or FAIL. ``records`` are scored
    records (scale scores, not items), e.g. a training or test cohort; the model rows are rebuilt
    from them, so derived columns (attachment style, model of self and others) follow the changed
    score.
    """
    fb = FeatureBuilder().fit(records)
    p0 = model.proba(fb.transform(records))
    limits = bounds(truth)
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
        b99, bmax, rule = limits[name]
        ok = bool(p99 <= b99 and mx <= bmax)
        rows.append(
            {
                "scale": name,
                "step": step,
                "n": int(have.sum()),
                "p99_points": round(p99, 3),
                "max_points": round(mx, 3),
                "p99_bound": b99,
                "max_bound": bmax,
                "bound": rule,
                "verdict": "PASS" if ok else "FAIL",
                "meets_goal": ok,
            }
        )
    return pd.DataFrame(rows)
