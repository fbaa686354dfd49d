"""Behavioural tests of the explanations an intake worker sees (issue: drivers, actions, what-ifs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import FEATURE_NAMES, FeatureBuilder, scoring_frame, typed_records
from features.catalog import MODIFIABLE_GROUPS, fields_of_driver
from features.labels import build_labels
from features.settings import LabelConfig
from models.estimators import fit_candidate
from models.explain import actions, explain_row, to_points
from models.predict import frame_to_matrix
from models.scorer import sigmoid
from models.training import reference_cohort, split_groups
from simulator.generator import generate

MOTIVATION = [f.name for f in fields_of_driver("motivation")]


@pytest.fixture(scope="module")
def cohort():
    c = generate(1500, seed=3)
    labels = build_labels(c.alliance, LabelConfig(), c.intake, c.episodes)
    frame = typed_records(scoring_frame(c.intake, c.counsellors))
    frame = frame[frame["admission_id"].isin(labels.labels.index)].reset_index(drop=True)
    X, scored, errors = frame_to_matrix(frame)
    assert not errors
    y = labels.labels.reindex(frame["admission_id"]).to_numpy().astype(int)
    return scored, X, y, split_groups(scored, "counsellor")


@pytest.fixture(scope="module", params=["logistic", "lightgbm"])
def model(request, cohort):
    scored, X, y, groups = cohort
    m = fit_candidate(request.param, X, y, groups, n_configs=2, seed=1)
    m.reference = reference_cohort(scored, {"moderate_from": 0.2, "high_from": 0.4}, {})
    return m


def _record(scored, i: int) -> dict:
    row = scored.iloc[i].to_dict()
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}


def test_group_contributions_sum_to_model_output(model, cohort):
    _, X, _, _ = cohort
    contrib = model.contributions(X[:300])
    groups = model.group_contributions(contrib)
    total = sum(groups.values()) + contrib[:, -1]
    np.testing.assert_allclose(sigmoid(total), model.proba(X[:300]), atol=1e-9)


def test_points_add_up_to_prediction_minus_base(model, cohort):
    scored, X, _, _ = cohort
    for i in range(20):
        out = explain_row(model, _record(scored, i), X[i : i + 1])
        contrib = model.contributions(X[i : i + 1])
        groups = {g: float(v[0]) for g, v in model.group_contributions(contrib).items()}
        all_points = to_points(groups, float(contrib[0, -1]))
        assert sum(all_points.values()) == pytest.approx(out["risk"] - out["base_risk"], abs=1e-9)
        assert out["risk"] == pytest.approx(float(model.proba(X[i : i + 1])[0]), abs=1e-9)


def test_high_motivation_lowers_risk(model, cohort):
    scored, _, _, _ = cohort
    rec = _record(scored, 0)
    for name in MOTIVATION:
        rec[name] = 48.0
    rec["mot_external_pressure"] = None  # no expected direction: keep it out of the comparison
    out = explain_row(model, rec, FeatureBuilder.transform_record(rec))
    mot = next(d for d in out["drivers"] if d["driver"] == "motivation")
    assert mot["effect"] == "lowers" and mot["points"] < 0


def test_actions_only_on_modifiable_drivers_that_raise_risk(model, cohort):
    scored, X, _, _ = cohort
    seen_actions = 0
    for i in range(200):
        out = explain_row(model, _record(scored, i), X[i : i + 1], band="high")
        for d in out["drivers"]:
            if d["actions"]:
                seen_actions += 1
                assert (
                    d["modifiable"] and d["driver"] in MODIFIABLE_GROUPS and d["effect"] == "raises"
                )
            if not d["modifiable"]:
                assert d["actions"] == [] and d["what_if"] is None
    assert seen_actions > 0, "no record in 200 had a risk-raising modifiable driver"
    assert set(actions()) <= MODIFIABLE_GROUPS


def test_what_if_at_median_does_not_raise_risk_under_monotone_model(cohort):
    scored, X, y, groups = cohort
    m = fit_candidate("lightgbm", X, y, groups, n_configs=2, seed=1)
    m.reference = reference_cohort(scored, {"moderate_from": 0.2, "high_from": 0.4}, {})
    med = m.reference["median"]
    checked = 0
    for i in range(400):
        rec = _record(scored, i)
        out = explain_row(m, rec, X[i : i + 1])
        for d in out["drivers"]:
            fields = fields_of_driver(d["driver"])
            if d["what_if"] is None or any(f.direction == "none" for f in fields):
                continue
            # Every scale on its risky side of the median: moving to the median can only help.
            risky = all(
                rec.get(f.name) is not None
                and (
                    (rec[f.name] <= med[f.name])
                    if f.direction == "+"
                    else (rec[f.name] >= med[f.name])
                )
                for f in fields
            )
            if risky:
                assert d["what_if"]["risk"] <= out["risk"] + 1e-12
                checked += 1
    assert checked > 0


def test_moving_a_driver_to_the_median_in_its_helpful_direction_never_raises_risk(cohort):
    """The strict form: every scale of the driver moves toward lower risk, so risk cannot rise."""
    scored, X, y, groups = cohort
    m = fit_candidate("lightgbm", X, y, groups, n_configs=2, seed=1)
    med = reference_cohort(scored, {"moderate_from": 0.2, "high_from": 0.4}, {})["median"]
    j = FEATURE_NAMES.index("mot_treatment_readiness")
    low = X[:200].copy()
    low[:, j] = 15.0
    moved = low.copy()
    moved[:, j] = med["mot_treatment_readiness"]
    assert np.all(m.proba(moved) <= m.proba(low) + 1e-12)


def test_logistic_explanation_is_coefficient_times_difference_from_typical(cohort):
    scored, X, y, groups = cohort
    m = fit_candidate("logistic", X, y, groups, n_configs=1, seed=1)
    m.reference = reference_cohort(scored, {"moderate_from": 0.2, "high_from": 0.4}, {})
    lin = m.linear
    Xi = np.where(np.isnan(X[:50]), lin["median"], X[:50])
    t = np.asarray(m.reference["row"], dtype=float)
    ti = np.where(np.isnan(t), lin["median"], t)
    expected = m.platt_a * (lin["coef"] / lin["scale"]) * (Xi - ti)
    np.testing.assert_allclose(m.contributions(X[:50])[:, :-1], expected, atol=1e-10)


def test_missing_questionnaires_are_reported_not_explained(model, cohort):
    scored, _, _, _ = cohort
    rec = _record(scored, 1)
    for group in ("social_support", "distress"):
        for f in fields_of_driver(group):
            rec[f.name] = None
    out = explain_row(model, rec, FeatureBuilder.transform_record(rec))
    assert {"social_support", "distress"} <= set(out["not_assessed"])
    assert not {d["driver"] for d in out["drivers"]} & {"social_support", "distress"}


def test_single_record_row_equals_table_row(cohort):
    """The service's pure-Python row and the table path must build identical model rows."""
    scored, X, _, _ = cohort
    for i in range(len(scored)):
        row = FeatureBuilder.transform_record(_record(scored, i))
        np.testing.assert_array_equal(row[0], X[i])
    odd = {"primary_substance": "crack", "legal_pressure": "true", "age": "40", "sex": ""}
    np.testing.assert_array_equal(
        FeatureBuilder.transform_record(odd)[0],
        FeatureBuilder().fit(pd.DataFrame([odd])).transform(pd.DataFrame([odd]))[0],
    )
