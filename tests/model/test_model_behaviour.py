"""Behavioural tests of the candidate models on two SYNTHETIC worlds and sizes (issue 10):
direction (more readiness or support never raises the risk), invariance (admission_id and
service / counsellor labels do not change the score) and smoothness (a step within measurement
error moves the risk by little).

World A: the generator as it is, 700 admissions. World B: 1,500 admissions whose labels are redrawn
from the generator's true probability with a distress hinge (+0.06 log-odds per GHQ-12 point above
18) and a readiness x legal-pressure interaction (0.03 log-odds per TCU point away from 30 under
legal pressure) added to its log-odds: structures the generator lacks, at half the strength of
the label-level worlds of simulator/worlds.py (``label_level_probability``) so that the world's
own truth stays within the smoothness goal (a true effect of 0.15 log-odds per point is itself a
3.7-point risk change).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import FeatureBuilder, scoring_frame, typed_records
from features.labels import build_labels
from features.settings import LabelConfig
from models.building.estimators import fit_candidate
from models.building.stability import GOAL_MAX_POINTS, GOAL_P99_POINTS, risk_steps
from models.building.training import split_groups
from models.scoring.predict import frame_to_matrix
from simulator.generator import generate

# The 1-7 attachment ratings: one point is about 0.6 SD, and the generator's own truth moves the
# risk by 3.9 points per point of attach_secure at the 99th percentile of p(1 - p) (least-squares
# projection of the true log-odds on the scales, n = 6,000: `bench/stability.py --truth`). A model
# that met 2 points there would understate a true effect, so these are held to 5 points.
ATTACHMENT_P99_POINTS = 5.0


def _world(name: str):
    if name == "generator":
        c = generate(700, seed=21, ground_truth=False)
        labels = build_labels(c.alliance, LabelConfig(), c.intake, c.episodes).labels
        frame = typed_records(scoring_frame(c.intake, c.counsellors))
        frame = frame[frame["admission_id"].isin(labels.index)].reset_index(drop=True)
        y = labels.reindex(frame["admission_id"]).to_numpy().astype(int)
    else:
        c = generate(1500, seed=22)
        frame = typed_records(scoring_frame(c.intake, c.counsellors))
        p = c.ground_truth.set_index("admission_id")["p_low_alliance_client_no_ids"]
        z = np.log(np.clip(p, 1e-4, 1 - 1e-4) / (1 - np.clip(p, 1e-4, 1 - 1e-4)))
        z = z.reindex(frame["admission_id"]).to_numpy()
        distress = pd.to_numeric(frame["psych_distress"], errors="coerce").to_numpy()
        ready = pd.to_numeric(frame["mot_treatment_readiness"], errors="coerce").to_numpy()
        legal = frame["legal_pressure"].astype(str).str.lower().eq("true").to_numpy()
        z = z + np.nan_to_num(0.06 * np.maximum(0, distress - 18))
        z = z + legal * np.nan_to_num(-0.03 * (ready - 30))
        y = (np.random.default_rng(22).random(len(z)) < 1 / (1 + np.exp(-z))).astype(int)
    X, scored, errors = frame_to_matrix(frame)
    assert not errors
    return scored, X, y, split_groups(scored, "counsellor")


@pytest.fixture(scope="session", params=["generator", "hinge_interaction"])
def world(request):
    return _world(request.param)


@pytest.fixture(scope="session")
def models(world):
    scored, X, y, groups = world
    return {k: fit_candidate(k, X, y, groups, n_configs=1, seed=3) for k in ("ridge", "spline")}


def _proba(model, recs: pd.DataFrame) -> np.ndarray:
    return model.proba(FeatureBuilder().fit(recs).transform(recs))


@pytest.mark.parametrize(
    "field,step,lower_risk",
    [
        ("mot_treatment_readiness", 5.0, True),
        ("social_support", 5.0, True),
        ("coping_adaptive", 0.5, True),
        ("psych_distress", 4.0, False),
    ],
)
def test_more_readiness_or_support_never_raises_the_spline_risk(
    models, world, field, step, lower_risk
):
    scored, _, _, _ = world
    m = models["spline"]
    recs = scored[scored[field].notna()].reset_index(drop=True)
    hi = {"psych_distress": 36.0, "coping_adaptive": 4.0}.get(field, 50.0)
    more = recs.assign(**{field: np.minimum(recs[field].astype(float) + step, hi)})
    before, after = _proba(m, recs), _proba(m, more)
    if lower_risk:
        assert np.all(after <= before + 1e-12)
    else:
        assert np.all(after >= before - 1e-12)
    # and the direction is used, not only allowed: the risk does move for most clients
    assert np.mean(np.abs(after - before) > 1e-6) > 0.5


@pytest.mark.parametrize("kind", ["ridge", "spline"])
def test_identifiers_and_service_labels_do_not_change_the_score(models, world, kind):
    scored, _, _, _ = world
    m = models[kind]
    recs = scored.head(300).reset_index(drop=True)
    renamed = recs.copy()
    renamed["admission_id"] = [f"other-{i}" for i in range(len(recs))][::-1]
    services = {
        s: f"svc_{i}" for i, s in enumerate(sorted(recs["service_id"].astype(str).unique()))
    }
    renamed["service_id"] = recs["service_id"].astype(str).map(services)
    known = recs["counsellor_id"].notna()
    renamed.loc[known, "counsellor_id"] = "c_" + recs.loc[known, "counsellor_id"].astype(str)
    np.testing.assert_array_equal(_proba(m, renamed), _proba(m, recs))


@pytest.mark.parametrize("kind", ["ridge", "spline"])
def test_a_step_within_measurement_error_moves_the_risk_by_little(models, world, kind):
    scored, _, _, _ = world
    steps = risk_steps(models[kind], scored)
    assert len(steps) == 13
    attach = steps.scale.str.startswith("attach_")
    questionnaires = steps[~attach]
    assert (questionnaires.p99_points <= GOAL_P99_POINTS).all(), questionnaires.to_string()
    assert (questionnaires.max_points <= GOAL_MAX_POINTS).all(), questionnaires.to_string()
    assert (steps[attach].p99_points <= ATTACHMENT_P99_POINTS).all(), steps.to_string()


def test_risk_steps_measures_a_known_linear_effect():
    """risk_steps against a hand-computed answer: a model whose log-odds rise 0.2 per point of
    psych_distress only, at a base of 0 log-odds at distress 10."""
    from features.build import FEATURE_NAMES
    from models.scoring.scorer import ScoringModel

    n = len(FEATURE_NAMES)
    coef = np.zeros(n)
    j = FEATURE_NAMES.index("psych_distress")
    coef[j] = 0.2
    m = ScoringModel(
        "ridge",
        {},
        linear={
            "median": np.zeros(n),
            "mean": np.zeros(n),
            "scale": np.ones(n),
            "coef": coef,
            "intercept": np.array(-2.0),
        },
    )
    recs = pd.DataFrame({"psych_distress": [10.0, 0.0, 36.0, None]})
    out = risk_steps(m, recs).set_index("scale")
    # at 10: p = 0.5; one point either way gives sigmoid(0.2) - 0.5 = 0.04983 -> 4.983 points
    assert out.loc["psych_distress", "max_points"] == pytest.approx(4.983, abs=1e-3)
    assert out.loc["psych_distress", "n"] == 3
    assert not out.loc["psych_distress", "meets_goal"]
    assert list(out.index) == ["psych_distress"]  # scales absent from the records are not rows


def test_model_card_shows_the_smooth_risk_table_in_explanations():
    from models.building.card import render_model_card

    table = pd.DataFrame(
        [{"scale": "social_support", "step": 1.0, "n": 10, "p99_points": 0.5, "max_points": 0.7}]
    )
    md, html = render_model_card({"stability": table})
    section = md.split("## Explanations", 1)[1].split("\n## ", 1)[0]
    assert "Smooth risk" in section and "| social_support | 1 | 10 | 0.500 | 0.700 |" in section
    assert "social_support" in html.split("Explanations", 1)[1]
