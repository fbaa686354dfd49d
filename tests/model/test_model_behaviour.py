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
from models.building.candidates import fit_candidate
from models.building.stability import (
    GOAL_MAX_POINTS,
    GOAL_P99_POINTS,
    TRUTH_FACTOR,
    TRUTH_MOVE,
    bounds,
    ratings,
    risk_steps,
)
from models.building.training import split_groups
from models.scoring.predict import frame_to_matrix
from simulator.generator import generate

# One worker builds the two worlds' fitted ridge and spline once: session fixtures are built per
# worker, and with this file's tests split across two workers they were built twice.
pytestmark = pytest.mark.xdist_group("behaviour")


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
    """Every questionnaire scale within its bound (models.building.stability.bounds): 2 points
    for 99% of clients, 4 for any."""
    scored, _, _, _ = world
    steps = risk_steps(models[kind], scored)
    assert len(steps) == 13
    questionnaires = steps[~steps.scale.isin(ratings())]
    assert (questionnaires.bound == "questionnaire").all()
    assert (questionnaires.verdict == "PASS").all(), questionnaires.to_string()


@pytest.mark.xfail(
    reason="issue 17 item 5: the 1-7 ratings' bound is 1.25x the truth's own move, and the "
    "candidates fitted on 700 / 1,500 clients exceed it on attach_dismissing (2.9-3.9 points "
    "against 2.44) in 3 of the 4 fits (2026-12-06; attach_preoccupied, whose truth is flat, is "
    "now held to the questionnaire bound instead of 0.10); open, not a regression",
    strict=False,
)
@pytest.mark.parametrize("kind", ["ridge", "spline"])
def test_a_rating_step_moves_the_risk_by_at_most_the_truths_own_move(models, world, kind):
    """Every 1-7 rating within 1.25x the literature-sized truth's own move for one point."""
    scored, _, _, _ = world
    steps = risk_steps(models[kind], scored)
    rated = steps[steps.scale.isin(ratings())]
    assert (
        len(rated) == 4 and (rated.bound == "1.25x truth, at least the questionnaire bound").all()
    )
    assert (rated.verdict == "PASS").all(), rated.to_string()


def test_risk_steps_measures_a_known_linear_effect():
    """risk_steps against a hand-computed answer: a model whose log-odds rise 0.2 per point of
    psych_distress only, at a base of 0 log-odds at distress 10."""
    m = _linear({"psych_distress": 0.2}, {"psych_distress": 10.0})
    recs = pd.DataFrame({"psych_distress": [10.0, 0.0, 36.0, None]})
    out = risk_steps(m, recs).set_index("scale")
    # at 10: p = 0.5; one point either way gives sigmoid(0.2) - 0.5 = 0.04983 -> 4.983 points
    assert out.loc["psych_distress", "max_points"] == pytest.approx(4.983, abs=1e-3)
    assert out.loc["psych_distress", "n"] == 3
    assert not out.loc["psych_distress", "meets_goal"]
    assert out.loc["psych_distress", "verdict"] == "FAIL"
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


def _linear(per_point: dict[str, float], at: dict[str, float]):
    """A ridge-shaped scorer whose log-odds are 0 at ``at`` and rise ``per_point`` per point."""
    from features.build import FEATURE_NAMES
    from models.scoring.scorer import ScoringModel

    n = len(FEATURE_NAMES)
    coef = np.zeros(n)
    for name, b in per_point.items():
        coef[FEATURE_NAMES.index(name)] = b
    return ScoringModel(
        "ridge",
        {},
        linear={
            "median": np.zeros(n),
            "mean": np.zeros(n),
            "scale": np.ones(n),
            "coef": coef,
            "intercept": np.array(-sum(b * at[k] for k, b in per_point.items())),
        },
    )


def test_the_bound_is_two_points_on_a_scale_and_the_truth_on_a_rating():
    b = bounds()
    assert set(ratings()) == {
        "attach_secure",
        "attach_fearful",
        "attach_preoccupied",
        "attach_dismissing",
    }
    for name, (b99, bmax, rule) in b.items():
        if name in ratings():
            assert (b99, bmax) == pytest.approx(
                (
                    max(TRUTH_FACTOR * TRUTH_MOVE[name][0], GOAL_P99_POINTS),
                    max(TRUTH_FACTOR * TRUTH_MOVE[name][1], GOAL_MAX_POINTS),
                ),
                abs=1e-3,
            )
            assert rule == "1.25x truth, at least the questionnaire bound"
        else:
            assert (b99, bmax, rule) == (GOAL_P99_POINTS, GOAL_MAX_POINTS, "questionnaire")


@pytest.mark.parametrize(
    "secure_per_point,secure_verdict",
    # sigmoid(0.18) - 0.5 = 4.49 points: over 2, within 1.25 x the truth's 3.94 (4.93) -> PASS;
    # sigmoid(0.22) - 0.5 = 5.48 points: over 4.93 -> FAIL
    [(0.18, "PASS"), (0.22, "FAIL")],
)
def test_the_evaluation_applies_the_truth_bound_to_ratings_and_two_points_to_scales(
    secure_per_point, secure_verdict
):
    """The evaluation's stability figures (what the model card shows), on a model with known
    moves: a rating may exceed 2 points up to 1.25x the truth's own move, a rating whose truth is
    flat (preoccupied, 0.08) is held to the questionnaire bound (2.5 points fail), and a
    questionnaire scale may not exceed 2."""
    from types import SimpleNamespace

    from models.building.evaluation import stability_figures

    at = {
        "attach_secure": 4.0,
        "attach_preoccupied": 4.0,
        "attach_fearful": 4.0,
        "psych_distress": 10.0,
        "social_support": 30.0,
    }
    m = _linear(
        {
            "attach_secure": secure_per_point,
            # 2.50 points: 1.25 x the flat truth (0.10) is below the questionnaire bound, so the
            # bound is 2 -> FAIL
            "attach_preoccupied": 0.1,
            "attach_fearful": 0.06,  # 1.50 points, bound 1.25 x 1.98 = 2.48 -> PASS
            "psych_distress": 0.1,  # 2.50 points, bound 2 -> FAIL
            "social_support": 0.06,  # 1.50 points, bound 2 -> PASS
        },
        at,
    )
    recs = pd.DataFrame({k: [v] * 5 for k, v in at.items()})
    out = stability_figures(SimpleNamespace(model=m), recs).set_index("scale")
    assert out.loc["attach_secure", "max_points"] == pytest.approx(
        100 * (1 / (1 + np.exp(-secure_per_point)) - 0.5), abs=1e-3
    )
    assert out.loc["attach_secure", "max_points"] > GOAL_P99_POINTS
    assert out.loc["attach_secure", "verdict"] == secure_verdict
    assert out.loc["attach_preoccupied", "verdict"] == "FAIL"
    assert out.loc["attach_fearful", "verdict"] == "PASS"
    assert out.loc["psych_distress", "verdict"] == "FAIL"
    assert out.loc["social_support", "verdict"] == "PASS"
    assert out.loc["attach_secure", "p99_bound"] == pytest.approx(TRUTH_FACTOR * 3.94, abs=1e-3)
    assert out.loc["psych_distress", "p99_bound"] == GOAL_P99_POINTS


def test_the_recorded_truth_is_the_generators():
    """TRUTH_MOVE is what `bench.stability --truth --n 6000` (seed 7, default world) measures:
    a change to the simulator's effects must be carried into the bound."""
    from bench.stability import truth_moves

    table, _ = truth_moves(6000, 7)
    table = table.set_index("scale")
    for name, (p99, mx) in TRUTH_MOVE.items():
        assert table.loc[name, "p99_points"] == pytest.approx(p99, abs=0.01)
        assert table.loc[name, "max_points"] == pytest.approx(mx, abs=0.01)


def test_model_card_says_which_scales_pass_their_bound():
    from models.building.card import render_model_card

    table = pd.DataFrame(
        [
            {
                "scale": "social_support",
                "step": 1.0,
                "n": 10,
                "p99_points": 0.5,
                "max_points": 0.7,
                "p99_bound": 2.0,
                "max_bound": 4.0,
                "bound": "questionnaire",
                "verdict": "PASS",
                "meets_goal": True,
            },
            {
                "scale": "attach_preoccupied",
                "step": 1.0,
                "n": 10,
                "p99_points": 0.5,
                "max_points": 0.7,
                "p99_bound": 0.1,
                "max_bound": 0.1,
                "bound": "1.25x truth",
                "verdict": "FAIL",
                "meets_goal": False,
            },
        ]
    )
    md, _ = render_model_card({"stability": table})
    section = md.split("## Explanations", 1)[1].split("\n## ", 1)[0]
    assert "1 of 2 scales PASS; FAIL: attach_preoccupied." in section
    assert (
        "| attach_preoccupied | 1 | 10 | 0.500 | 0.700 | 0.100 | 0.100 | 1.25x truth | FAIL |"
        in (section)
    )
