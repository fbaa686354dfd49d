"""Contributions against the typical client (issue 11 item 1): exact, additive, stored with the model.

Expected values are computed from the model's own margin on hand-built rows (the definition of a
Shapley value of the game "switch the record's values in for the typical client's"), never from
``contributions`` itself.
"""

from __future__ import annotations

from itertools import combinations
from math import factorial

import numpy as np
import pandas as pd
import pytest

from features.build import FEATURE_NAMES, FeatureBuilder
from features.catalog import PREDICTORS, fields_of_driver
from harness.cohort import labelled_matrix
from models.building.candidates import fit_candidate
from models.scoring.reference import reference_cohort, typical_row
from models.scoring.scorer import ScoringModel

BANDS = {"moderate_from": 0.2, "high_from": 0.4}


@pytest.fixture(scope="session")
def cohort():
    return labelled_matrix(900, seed=5, ground_truth=False)


@pytest.fixture(scope="session", params=["ridge", "spline", "lightgbm"])
def model(request, cohort):
    scored, X, y, groups = cohort
    m = fit_candidate(request.param, X, y, groups, n_configs=1, seed=1)
    m.reference = reference_cohort(scored, BANDS, {})
    return m


def _calibrated(m: ScoringModel, X: np.ndarray) -> np.ndarray:
    return m.platt_a * m.margin(X) + m.platt_b


def test_rows_add_up_to_the_records_calibrated_log_odds(model, cohort):
    _, X, _, _ = cohort
    c = model.contributions(X[:200])
    np.testing.assert_allclose(c.sum(axis=1), _calibrated(model, X[:200]), atol=1e-9)


def test_last_column_is_the_typical_clients_log_odds_and_typical_has_no_drivers(model):
    t = typical_row(model.reference)
    c = model.contributions(np.vstack([t, t]))
    np.testing.assert_allclose(c[:, :-1], 0.0, atol=1e-12)
    np.testing.assert_allclose(c[:, -1], _calibrated(model, t)[0], atol=1e-12)


def test_each_contribution_is_the_exact_shapley_value_against_typical(model, cohort):
    """Game on 4 columns: the record's values for a coalition, the typical client's elsewhere.
    Shapley values by enumerating all 16 coalitions through the model's margin."""
    _, X, _, _ = cohort
    t = typical_row(model.reference)[0]
    names = list(FEATURE_NAMES)
    players = [names.index(f) for f in ("mot_treatment_readiness", "social_support", "age")]
    players.append(names.index("psych_distress"))
    rng = np.random.default_rng(0)
    for i in rng.choice(len(X), 5, replace=False):
        x = t.copy()
        x[players] = np.where(np.isnan(X[i, players]), t[players], X[i, players])
        x[players[0]] = t[players[0]] + 9.0  # surely different from typical

        def v(coalition: tuple[int, ...], x: np.ndarray = x) -> float:
            row = t.copy()
            row[list(coalition)] = x[list(coalition)]
            return float(_calibrated(model, row[None, :])[0])

        n = len(players)
        for p in players:
            others = [q for q in players if q != p]
            phi = sum(
                factorial(k) * factorial(n - k - 1) / factorial(n) * (v((*S, p)) - v(S))
                for k in range(n)
                for S in combinations(others, k)
            )
            got = model.contributions(x[None, :])[0]
            assert got[p] == pytest.approx(phi, abs=1e-7)
        rest = [j for j in range(len(t)) if j not in players]
        np.testing.assert_allclose(got[rest], 0.0, atol=1e-7)


def test_typical_client_is_medians_and_modes_of_the_training_records(cohort):
    scored, _, _, _ = cohort
    ref = reference_cohort(scored, BANDS, {})
    for f in PREDICTORS:
        if f.name not in scored.columns:
            continue
        col = scored[f.name]
        if f.kind in ("code", "boolean"):
            counts = col.dropna().astype(str).value_counts()
            assert counts[ref["typical"][f.name]] == counts.max()
        elif col.notna().any():
            assert ref["typical"][f.name] == pytest.approx(float(np.nanmedian(col.astype(float))))
    # The stored row is the typical record's model row, with every questionnaire present.
    row = np.asarray(ref["row"], dtype=float)
    assert row[FEATURE_NAMES.index("age")] == pytest.approx(float(scored["age"].median()))
    assert all(
        row[FEATURE_NAMES.index(c)] == 0.0 for c in FEATURE_NAMES if c.startswith("missing_")
    )


def test_reference_is_stored_and_old_artifacts_without_a_row_agree(model, cohort, tmp_path):
    _, X, _, _ = cohort
    loaded = ScoringModel.load(model.save(tmp_path / model.kind))
    np.testing.assert_allclose(
        loaded.contributions(X[:50]), model.contributions(X[:50]), atol=1e-12
    )
    legacy = ScoringModel.load(tmp_path / model.kind)
    legacy.reference = {k: v for k, v in model.reference.items() if k != "row"}
    np.testing.assert_allclose(
        legacy.contributions(X[:50]), model.contributions(X[:50]), atol=1e-12
    )


def test_a_favourable_group_never_raises_the_risk_of_the_monotone_spline(cohort):
    """Issue 11: a group whose values are all at or on the favourable side of typical never
    raises the risk of a monotone model. Random records, each directional scale moved to a random
    point on its favourable side, the undirected ones left at typical."""
    scored, X, y, groups = cohort
    m = fit_candidate("spline", X, y, groups, n_configs=1, seed=1)
    m.reference = reference_cohort(scored, BANDS, {})
    typical = m.reference["typical"]
    rng = np.random.default_rng(3)
    base = scored.sample(200, random_state=3).reset_index(drop=True)
    for group in ("motivation", "coping", "social_support", "distress"):
        recs = base.copy()
        for f in fields_of_driver(group):
            if f.direction == "none":
                recs[f.name] = typical[f.name]
                continue
            room = (
                (f.maximum - typical[f.name])
                if f.direction == "+"
                else (typical[f.name] - f.minimum)
            )
            sign = 1.0 if f.direction == "+" else -1.0
            recs[f.name] = typical[f.name] + sign * rng.uniform(0, 1, len(recs)) * room
        contrib = m.contributions(FeatureBuilder().fit(recs).transform(recs))
        g = m.group_contributions(contrib)[group]
        assert np.all(g <= 1e-12), f"{group}: a favourable value raised the risk"


def test_unknown_reference_is_a_clear_error(cohort):
    _, X, y, groups = cohort
    m = fit_candidate("ridge", X[:300], y[:300], groups[:300], n_configs=1, seed=1)
    with pytest.raises(ValueError, match="typical"):
        m.contributions(X[:2])


def test_typical_row_comes_from_the_typical_record():
    frame = pd.DataFrame(
        {
            "age": [20.0, 30.0, 60.0],
            "sex": ["male", "female", "female"],
            "counsellor_id": ["a", None, "b"],
        }
    )
    ref = reference_cohort(frame, BANDS, {})
    row = np.asarray(ref["row"], dtype=float)
    assert row[FEATURE_NAMES.index("age")] == 30.0
    assert row[FEATURE_NAMES.index("sex=female")] == 1.0
    assert row[FEATURE_NAMES.index("sex=male")] == 0.0
    assert row[FEATURE_NAMES.index("counsellor_known")] == 1.0
