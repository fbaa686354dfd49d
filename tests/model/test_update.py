"""Updating an existing model on new data (models.building.update, issue 17 item 3): closed
testing picks "as-is" on data from the same population and a recalibration on a shifted one;
the updated model scores with the numpy scorer unchanged, exactly as its formula says, survives
save/load, carries intervals; ``load_base`` finds a scorer or says clearly why not.

Real fits on the SYNTHETIC generator: the base is the tuned ridge on one cohort (seed 1), the new
data another cohort of the same generator (seed 3, about 740 labelled clients).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from features.build import COLUMNS
from harness.cohort import labelled_matrix
from models.building.candidates import fit_candidate
from models.building.estimators import RAW_COLUMNS, SplinePath, raw_model
from models.building.tracking import PYFUNC_MODEL_FILE
from models.building.uncertainty import attach_uncertainty
from models.building.update import (
    AS_IS,
    LOGISTIC,
    REVISION,
    RITL,
    base_log_odds,
    raw_weights,
    revised,
    update_model,
)
from models.lifecycle.base_model import BaseNotFound, load_base
from models.scoring.reference import reference_cohort
from models.scoring.scorer import ScoringModel, sigmoid

# One worker builds the base model (a tuned ridge on 3,000 clients with its 200 refits, about 7 s)
# once: session fixtures are built per worker, and with this file's tests split across two workers
# they were built twice.
pytestmark = pytest.mark.xdist_group("update")

BANDS = {"moderate_from": 0.2, "high_from": 0.4}


@pytest.fixture(scope="session")
def base_cohort():
    scored, X, y, groups = labelled_matrix(3000, seed=1)
    return X, y, groups, scored


@pytest.fixture(scope="session")
def base(base_cohort) -> ScoringModel:
    X, y, groups, scored = base_cohort
    model = fit_candidate("ridge", X, y, groups, 20, 1)
    model.reference = reference_cohort(scored, BANDS, {})
    attach_uncertainty(model, X, y, groups, seed=1)
    return model


@pytest.fixture(scope="session")
def new_cohort():
    _, X, y, groups = labelled_matrix(800, seed=3)
    return X, y, groups


def _shifted(base, X, shift=1.0, slope=1.0, seed=0):
    """Labels of a population where the base's log-odds are off by ``shift`` (and ``slope``)."""
    m = base_log_odds(base, X)
    return np.random.default_rng(seed).binomial(1, sigmoid(shift + slope * m))


def test_same_population_keeps_the_model_as_is(base, new_cohort):
    X, y, groups = new_cohort
    assert 400 <= len(y) <= 800
    r = update_model(base, X, y, groups, seed=3)
    assert r.method == AS_IS, r.why
    assert len(r.tests) == 1 and r.tests[0]["compared"] == f"{REVISION} vs {AS_IS}"
    assert not r.tests[0]["significant"] and r.tests[0]["df"] > 40
    assert r.model.kind == "updated" and r.model.params["base_kind"] == "ridge"
    assert r.model.params["update_method"] == AS_IS
    assert json.loads(r.model.params["update_tests"]) == r.tests
    np.testing.assert_array_equal(r.model.proba(X), base.proba(X))
    assert r.why.startswith("as-is:") and "p = " in r.why


def test_shifted_population_is_recalibrated_in_the_large(base, new_cohort):
    X, _, groups = new_cohort
    y = _shifted(base, X, shift=1.0)
    r = update_model(base, X, y, groups, seed=3)
    assert r.method == RITL, r.why
    assert [t["significant"] for t in r.tests] == [True, False]
    a = r.fits[RITL]["alpha"]
    assert 0.7 < a < 1.3
    np.testing.assert_allclose(r.model.proba(X), sigmoid(a + base_log_odds(base, X)), atol=1e-12)
    assert r.model.platt_a == base.platt_a and r.model.linear is base.linear  # tables kept


def test_a_too_extreme_model_gets_a_new_slope(base, new_cohort):
    X, _, groups = new_cohort
    y = _shifted(base, X, shift=-0.6, slope=0.5, seed=100)
    r = update_model(base, X, y, groups, seed=3)
    assert r.method == LOGISTIC, r.why
    assert [t["significant"] for t in r.tests] == [True, True, False]
    fit = r.fits[LOGISTIC]
    assert 0.25 < fit["beta"] < 0.7
    assert r.model.platt_a == pytest.approx(fit["beta"] * base.platt_a)
    assert r.model.platt_b == pytest.approx(fit["alpha"] + fit["beta"] * base.platt_b)


@pytest.fixture(scope="session")
def revision(base, new_cohort):
    """New data where one predictor (age) matters more than the base says: a revision."""
    X, _, groups = new_cohort
    j = [c.name for c in COLUMNS].index("age")
    z = (X[:, j] - X[:, j].mean()) / X[:, j].std()
    m = base_log_odds(base, X)
    y = np.random.default_rng(101).binomial(1, sigmoid(m + 1.0 * z))
    return update_model(base, X, y, groups, seed=3), y


def test_revision_is_exactly_its_formula(base, new_cohort, revision):
    X, _, _ = new_cohort
    r, _ = revision
    assert r.method == REVISION, r.why
    assert all(t["significant"] for t in r.tests) and len(r.tests) == 3
    assert r.model.linear is not None and (r.model.platt_a, r.model.platt_b) == (1.0, 0.0)
    fit = r.fits[REVISION]
    Xi = np.where(np.isnan(X), base.linear["median"], X)
    Z = (Xi[:, RAW_COLUMNS] - fit["z_mean"]) / fit["z_scale"]
    expected = sigmoid(fit["alpha"] + fit["beta"] * base_log_odds(base, X) + Z @ fit["gamma"])
    np.testing.assert_allclose(r.model.proba(X), expected, rtol=0, atol=1e-10)
    # gamma is shrunk: its C comes from the inner CV grid, and age got the largest effect
    age = int(np.flatnonzero(RAW_COLUMNS)[np.argmax(np.abs(fit["gamma"]))])
    assert COLUMNS[age].name == "age" and fit["C"] < 100
    assert r.model.params["C"] == fit["C"]
    # contributions stay exact: every row adds up to the calibrated log-odds
    c = r.model.contributions(X[:50])
    np.testing.assert_allclose(
        c.sum(axis=1), np.log(expected[:50] / (1 - expected[:50])), atol=1e-9
    )


def test_revision_of_an_additive_model_is_exact(base_cohort, new_cohort):
    Xb, yb, _, scored = base_cohort
    spline = SplinePath(Xb, yb).fit(10.0, 3.0)
    spline.reference = reference_cohort(scored, BANDS, {})
    spline.platt_a, spline.platt_b = 0.9, -0.2  # a calibrated base, to see a and b carried
    X, _, _ = new_cohort
    rng = np.random.default_rng(5)
    a, b, gamma = 0.3, 0.8, rng.normal(0, 0.3, int(RAW_COLUMNS.sum()))
    mu, sd = rng.normal(0, 1, len(gamma)), rng.uniform(0.5, 2.0, len(gamma))
    model = revised(spline, a, b, gamma, mu, sd)
    Xi = np.where(np.isnan(X), spline.additive["median"], X)
    eta = a + b * base_log_odds(spline, X) + ((Xi[:, RAW_COLUMNS] - mu) / sd) @ gamma
    np.testing.assert_allclose(model.proba(X), sigmoid(eta), rtol=0, atol=1e-10)
    # outside the knots too: the straight line added to a spline column is not flattened
    far = X[:5].copy()
    j = spline.additive["spline_cols"][0]
    far[:, j] = spline.additive["knots"][0][-1] + 10.0
    fi = np.where(np.isnan(far), spline.additive["median"], far)
    eta_far = a + b * base_log_odds(spline, far) + ((fi[:, RAW_COLUMNS] - mu) / sd) @ gamma
    np.testing.assert_allclose(model.margin(far), eta_far, rtol=0, atol=1e-10)
    # the raw basis still spans it (the form the intervals are kept in), and contributions add up
    for m in (spline, model):
        w, c = raw_weights(m)
        np.testing.assert_allclose(m.raw_basis(X) @ w + c, m.margin(X), rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.contributions(X[:20]).sum(axis=1), eta[:20], atol=1e-9)


def test_save_and_load_score_the_same(tmp_path, base, new_cohort, revision):
    X, _, groups = new_cohort
    r, _ = revision
    ritl = update_model(base, X, _shifted(base, X), groups, seed=3).model
    for name, model in (("revision", r.model), ("ritl", ritl)):
        loaded = ScoringModel.load(model.save(tmp_path / name))
        assert loaded.kind == "updated" and loaded.params == model.params
        np.testing.assert_array_equal(loaded.proba(X), model.proba(X))
        np.testing.assert_allclose(loaded.contributions(X[:20]), model.contributions(X[:20]))


def test_updated_models_carry_intervals(tmp_path, base, new_cohort, revision):
    X, y, groups = new_cohort
    r, y_rev = revision
    ys = _shifted(base, X)
    cases = [
        (update_model(base, X, y, groups, seed=3), y),
        (update_model(base, X, ys, groups, seed=3), ys),
        (r, y_rev),
    ]
    for result, labels in cases:
        model = result.model
        summary = attach_uncertainty(model, X, labels, groups, seed=3, B=60)
        assert summary is not None and summary["B"] == (60 if result.method != AS_IS else 200)
        risk = model.proba(X)
        lo, hi = model.interval(X, risk)
        assert np.all(lo <= risk) and np.all(risk <= hi)
        width = hi - lo
        assert 0.0 < np.median(width) < 0.4, (result.method, np.median(width))
        # the refits are centred on the model: their median risk is near the model's
        m = model.raw_basis(X) @ model.uncertainty["W"].T + model.uncertainty["c"]
        med = np.median(sigmoid(model.platt_a * m + model.platt_b), axis=1)
        assert np.median(np.abs(med - risk)) < 0.03, result.method
        loaded = ScoringModel.load(model.save(tmp_path / result.method.replace(" ", "_")))
        np.testing.assert_allclose(loaded.interval(X, risk)[0], lo)
    # the normal approximation (large n) takes the same path through the refits
    model = cases[1][0].model
    summary = attach_uncertainty(model, X, ys, groups, seed=3, B=60, normal_from=100)
    assert summary["method"].startswith("normal approximation")
    lo, hi = model.interval(X)
    assert np.all(lo < hi)
    with pytest.raises(ValueError, match="kept in memory only"):
        attach_uncertainty(loaded, X, y_rev, groups, seed=3)


def test_lightgbm_base_is_only_recalibrated(tmp_path, base_cohort, new_cohort):
    Xb, yb, _, scored = base_cohort
    params = {
        "num_leaves": 7,
        "max_depth": 3,
        "min_data_in_leaf": 40,
        "num_boost_round": 100,
        "learning_rate": 0.05,
        "lambda_l2": 5.0,
        "feature_fraction": 1.0,
        "path_smooth": 10.0,
    }
    booster = raw_model("lightgbm", Xb, yb, params, seed=1)
    booster.reference = reference_cohort(scored, BANDS, {})
    X, _, groups = new_cohort
    y = _shifted(booster, X, shift=1.0)
    r = update_model(booster, X, y, groups, seed=3)
    assert r.method in (RITL, LOGISTIC), r.why
    assert "LightGBM" in r.why and REVISION not in r.fits
    assert r.tests[0]["compared"] == f"{LOGISTIC} vs {AS_IS}"
    assert attach_uncertainty(r.model, X, y, groups, seed=3) is None
    loaded = ScoringModel.load(r.model.save(tmp_path / "lgbm"))
    assert loaded.booster is not None and loaded.params["base_kind"] == "lightgbm"
    np.testing.assert_allclose(loaded.proba(X), r.model.proba(X), atol=1e-12)
    contrib = loaded.contributions(X[:10])
    np.testing.assert_allclose(
        contrib.sum(axis=1), np.log(loaded.proba(X[:10]) / (1 - loaded.proba(X[:10]))), atol=1e-6
    )


# ---------------------------------------------------------------- load_base
def test_load_base_from_a_scorer_or_exported_folder(tmp_path, base, new_cohort):
    X, _, _ = new_cohort
    scorer = base.save(tmp_path / "scorer")
    exported = base.save(tmp_path / "export" / "artifacts" / "scorer")
    (tmp_path / "export" / "MLmodel").write_text("flavors: {}\n")
    for spec, folder in ((str(scorer), scorer), (str(tmp_path / "export"), exported)):
        loaded = load_base(spec)
        np.testing.assert_array_equal(loaded.proba(X), base.proba(X))
        assert loaded.params["loaded_from"] == spec
        assert folder.is_dir()
    r = update_model(load_base(str(scorer)), X, *new_cohort[1:], seed=3)
    assert r.model.params["base"] == str(scorer)


def test_load_base_says_what_is_wrong(tmp_path, base):
    missing = tmp_path / "nowhere"
    with pytest.raises(BaseNotFound, match=f"{missing}: no such folder"):
        load_base(str(missing))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BaseNotFound, match="holds no scorer"):
        load_base(str(tmp_path / "empty"))
    scorer = base.save(tmp_path / "scorer")
    (scorer / "model.json").write_text((scorer / "model.json").read_text().replace("1", "2", 1))
    with pytest.raises(BaseNotFound, match=f"{scorer}.*SHA-256"):
        load_base(str(scorer))
    with pytest.raises(BaseNotFound, match="models:/NAME@ALIAS or models:/NAME/VERSION"):
        load_base("models:/alliance-risk")
    with pytest.raises(BaseNotFound, match="models:/alliance-risk@champion.*no tracking store"):
        load_base("models:/alliance-risk@champion", f"sqlite:///{tmp_path / 'none.db'}")


def test_load_base_from_a_registry(tmp_path, base, new_cohort):
    import mlflow

    from models.lifecycle.store import ensure_experiment, get_client

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = get_client(uri)
    ensure_experiment(uri, "update-test")
    mlflow.set_experiment("update-test")
    scorer = base.save(tmp_path / "scorer")

    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=PYFUNC_MODEL_FILE,
            artifacts={"scorer": str(scorer)},
            pip_requirements=["numpy"],
            registered_model_name="network-model",
        )
    client.set_registered_model_alias("network-model", "champion", info.registered_model_version)
    X, _, _ = new_cohort
    for spec in ("models:/network-model@champion", "models:/network-model/1"):
        loaded = load_base(spec, uri)
        np.testing.assert_array_equal(loaded.proba(X), base.proba(X))
        assert loaded.params["loaded_from"] == f"{spec} (version 1)"
    with pytest.raises(BaseNotFound, match="models:/network-model/7.*no version 7"):
        load_base("models:/network-model/7", uri)
