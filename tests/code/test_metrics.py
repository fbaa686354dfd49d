"""Metrics against sklearn and against hand-computed examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from features.settings import BandConfig
from models.building.metrics import (
    METRIC_NAMES,
    band_table,
    bootstrap_ci,
    compare_to_oracle,
    decision_curve,
    point_metrics,
    subgroup_metrics,
)


@pytest.fixture
def random_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    p = rng.uniform(0.02, 0.9, 800)
    p[:100] = np.round(p[:100], 1).clip(0.1)  # ties
    y = rng.binomial(1, p)
    return y, p


def test_point_metrics_match_sklearn(random_data):
    y, p = random_data
    m = point_metrics(y, p)
    assert set(m) == set(METRIC_NAMES)
    assert m["auroc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert m["auprc"] == pytest.approx(skm.average_precision_score(y, p), abs=1e-12)
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p), abs=1e-12)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p), abs=1e-12)
    assert m["prevalence"] == pytest.approx(y.mean())
    assert m["n"] == len(y)


def test_calibration_fits_match_sklearn_logistic_regression(random_data):
    y, p = random_data
    fit = LogisticRegression(C=np.inf, tol=1e-10).fit(logit(np.clip(p, 1e-6, 1 - 1e-6))[:, None], y)
    assert point_metrics(y, p)["cal_slope"] == pytest.approx(fit.coef_[0, 0], abs=1e-4)


def test_perfectly_calibrated_predictions():
    rng = np.random.default_rng(0)
    p = expit(rng.normal(-1, 1.2, 20000))
    y = rng.binomial(1, p)
    m = point_metrics(y, p)
    assert m["cal_slope"] == pytest.approx(1.0, abs=0.1)
    assert m["cal_intercept"] == pytest.approx(0.0, abs=0.1)
    assert m["ece"] < 0.02


def test_overconfident_predictions_have_slope_half():
    rng = np.random.default_rng(1)
    true = expit(rng.normal(-1, 1.2, 20000))
    y = rng.binomial(1, true)
    m = point_metrics(y, expit(2 * logit(true)))
    assert m["cal_slope"] == pytest.approx(0.5, abs=0.05)


def test_calibration_in_the_large_detects_underprediction():
    rng = np.random.default_rng(2)
    true = expit(rng.normal(-1, 1, 20000))
    y = rng.binomial(1, true)
    m = point_metrics(y, expit(logit(true) - 0.5))
    assert m["cal_intercept"] == pytest.approx(0.5, abs=0.1)
    assert m["cal_slope"] == pytest.approx(1.0, abs=0.1)


def test_ece_hand_example():
    # 10 rows -> 10 bins of one row each: ECE = mean |y - p|.
    p = np.linspace(0.05, 0.95, 10)
    y = np.array([0, 0, 1, 0, 0, 1, 1, 0, 1, 1])
    assert point_metrics(y, p)["ece"] == pytest.approx(np.mean(np.abs(y - p)))


def test_log_loss_clips_hard_probabilities():
    m = point_metrics([0, 1], [1.0, 0.0])
    assert np.isfinite(m["log_loss"])
    assert m["log_loss"] == pytest.approx(-np.log(1e-6), rel=1e-6)


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        point_metrics([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError):
        point_metrics([0, 1], [0.1])


def test_bootstrap_ci_contains_point(random_data):
    y, p = random_data
    ci = bootstrap_ci(y, p, n_boot=100, seed=1)
    assert set(ci) == set(METRIC_NAMES)
    for name in ("auroc", "auprc", "brier", "log_loss", "cal_slope", "cal_intercept"):
        point, lo, hi = ci[name]
        assert lo < hi, name
        assert lo <= point <= hi, name
    assert ci["ece"][1] < ci["ece"][2]  # ECE is biased upward in resamples: no containment check
    assert ci["auroc"][0] == point_metrics(y, p)["auroc"]


def test_bootstrap_is_reproducible(random_data):
    y, p = random_data
    assert bootstrap_ci(y, p, n_boot=30, seed=5) == bootstrap_ci(y, p, n_boot=30, seed=5)


def test_clustered_bootstrap_is_wider_with_cluster_effects():
    rng = np.random.default_rng(4)
    n_groups, per = 30, 40
    groups = np.repeat(np.arange(n_groups), per)
    effect = rng.normal(0, 1.0, n_groups)[groups]
    p = expit(rng.normal(-1, 0.8, groups.size))
    y = rng.binomial(1, expit(logit(p) + effect))  # shared counsellor effect the model misses
    rows = bootstrap_ci(y, p, n_boot=200, seed=0)
    clustered = bootstrap_ci(y, p, n_boot=200, seed=0, groups=groups.astype(str))
    width = lambda ci: ci["cal_intercept"][2] - ci["cal_intercept"][1]  # noqa: E731
    assert clustered["auroc"][0] == rows["auroc"][0]
    assert width(clustered) > 1.5 * width(rows)


def test_clustered_bootstrap_accepts_missing_group_ids(random_data):
    y, p = random_data
    groups = np.array([f"c{i % 12}" if i % 50 else None for i in range(len(y))], dtype=object)
    ci = bootstrap_ci(y, p, n_boot=50, groups=groups)
    assert ci["auroc"][1] < ci["auroc"][2]


def test_bootstrap_skips_single_class_resamples():
    # One event: about a third of resamples have none and must be skipped, not crash or give NaN.
    y = np.r_[1, np.zeros(30)]
    p = np.linspace(0.1, 0.5, 31)
    ci = bootstrap_ci(y, p, n_boot=40, seed=0)
    assert ci["auroc"][0] == point_metrics(y, p)["auroc"]
    assert np.isfinite(ci["auroc"][1]) and np.isfinite(ci["auroc"][2])


def test_bootstrap_warns_when_most_resamples_are_single_class():
    y = np.r_[1, np.zeros(30)]
    groups = np.r_[0, np.ones(30)]  # two clusters: half the resamples hold no event
    with pytest.warns(UserWarning, match="kept only"):
        bootstrap_ci(y, np.full(31, 0.2), n_boot=60, seed=1, groups=groups)


def test_decision_curve_hand_example():
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.5, 0.3, 0.3, 0.2, 0.1, 0.1, 0.1, 0.05])
    dc = decision_curve(y, p, thresholds=[0.25, 0.5])
    assert list(dc.columns) == [
        "threshold",
        "net_benefit_model",
        "net_benefit_all",
        "net_benefit_none",
    ]
    # t = 0.25: flagged p >= .25 -> 5 rows, TP = 3, FP = 2; odds = 1/3.
    assert dc.loc[0, "net_benefit_model"] == pytest.approx(3 / 10 - 2 / 10 / 3)
    # t = 0.5: flagged 3 rows, TP = 2, FP = 1; odds = 1.
    assert dc.loc[1, "net_benefit_model"] == pytest.approx(2 / 10 - 1 / 10)
    assert dc.loc[1, "net_benefit_all"] == pytest.approx(0.3 - 0.7)
    assert dc.loc[0, "net_benefit_all"] == pytest.approx(0.3 - 0.7 / 3)
    assert (dc["net_benefit_none"] == 0).all()


def test_decision_curve_default_thresholds(random_data):
    y, p = random_data
    dc = decision_curve(y, p)
    assert dc["threshold"].iloc[0] == pytest.approx(0.05)
    assert dc["threshold"].iloc[-1] == pytest.approx(0.60)
    assert len(dc) == 56


def test_subgroup_metrics_suppresses_small_levels():
    rng = np.random.default_rng(6)
    n = 400
    p = rng.uniform(0.1, 0.7, n)
    y = rng.binomial(1, p)
    sex = np.where(np.arange(n) % 2 == 0, "female", "male").astype(object)
    sex[:6] = "other"  # small cell
    sex[6:40] = None  # missing values form their own level
    frame = pd.DataFrame({"sex": sex, "service": rng.choice(["A", "B"], n)})
    out = subgroup_metrics(y, p, frame, ["sex", "service"], min_count=10)
    want = "column level n events prevalence auroc brier mean_predicted observed_rate cal_intercept"
    assert list(out.columns) == [*want.split(), "suppressed"]
    sex_rows = out[out["column"] == "sex"].set_index("level")
    assert list(sex_rows.index) == ["female", "male", "other", "missing"]
    other = sex_rows.loc["other"]
    assert other["n"] == 6 and bool(other["suppressed"])
    assert np.isnan(other["auroc"]) and np.isnan(other["events"])
    female = sex_rows.loc["female"]
    assert not female["suppressed"]
    mask = sex == "female"
    assert female["auroc"] == pytest.approx(skm.roc_auc_score(y[mask], p[mask]))
    assert female["observed_rate"] == pytest.approx(y[mask].mean())
    assert female["mean_predicted"] == pytest.approx(p[mask].mean())
    assert sex_rows.loc["missing", "n"] == 34
    assert out.loc[out["column"] == "service", "n"].sum() == n


def test_subgroup_suppresses_level_with_too_few_events():
    y = np.r_[np.ones(2), np.zeros(48), np.ones(25), np.zeros(25)]
    p = np.full(100, 0.3)
    frame = pd.DataFrame({"g": ["a"] * 50 + ["b"] * 50})
    out = subgroup_metrics(y, p, frame, ["g"], min_count=10).set_index("level")
    assert bool(out.loc["a", "suppressed"]) and out.loc["a", "n"] == 50
    assert not bool(out.loc["b", "suppressed"])


def test_band_table_hand_example():
    bands = BandConfig(moderate_from=0.2, high_from=0.4)
    p = np.array([0.05, 0.1, 0.15, 0.25, 0.3, 0.35, 0.45, 0.5, 0.6, 0.7])
    y = np.array([0, 0, 1, 0, 1, 0, 1, 1, 0, 1])
    bt = band_table(y, p, bands).set_index("band")
    assert list(bt.index) == ["low", "moderate", "high"]
    assert list(bt["n"]) == [3, 3, 4]
    assert bt.loc["high", "observed_rate"] == pytest.approx(0.75)
    assert bt.loc["low", "fraction"] == pytest.approx(0.3)
    # Flag p >= 0.4: TP 3, FP 1, FN 2, TN 4.
    high = bt.loc["high"]
    assert high["flag_threshold"] == 0.4
    assert high["fraction_flagged"] == pytest.approx(0.4)
    assert high["ppv"] == pytest.approx(3 / 4)
    assert high["npv"] == pytest.approx(4 / 6)
    assert high["sensitivity"] == pytest.approx(3 / 5)
    assert high["specificity"] == pytest.approx(4 / 5)
    # Flag p >= 0.2: TP 4, FP 3, FN 1, TN 2.
    mod = bt.loc["moderate"]
    assert mod["ppv"] == pytest.approx(4 / 7)
    assert mod["npv"] == pytest.approx(2 / 3)
    assert mod["sensitivity"] == pytest.approx(4 / 5)
    assert mod["specificity"] == pytest.approx(2 / 5)
    assert bt.loc["low", "ppv"] == pytest.approx(0.5)
    assert np.isnan(bt.loc["low", "npv"])


def test_band_boundary_belongs_to_upper_band():
    bt = band_table([0, 1], [0.2, 0.4], BandConfig(moderate_from=0.2, high_from=0.4))
    assert list(bt["n"]) == [0, 1, 1]


def test_compare_to_oracle():
    gaps = compare_to_oracle(
        {"auroc": (0.70, 0.65, 0.75), "brier": 0.20, "n": 100.0, "ece": 0.1},
        {"auroc": 0.75, "brier": 0.18, "n": 100.0},
    )
    assert gaps == {"auroc": pytest.approx(-0.05), "brier": pytest.approx(0.02)}


def test_vectorised_bootstrap_matches_the_row_form():
    """bootstrap_ci scores each resample from row multiplicities (issue 10 item 8); the resamples
    and every measure are those of drawing the rows and scoring them one resample at a time."""
    from models.building.metrics import _cluster_sampler, _logit, _metrics

    rng = np.random.default_rng(3)
    n = 400
    lp = rng.normal(-1.2, 1.0, n)
    p = 1 / (1 + np.exp(-lp))
    y = (rng.random(n) < p).astype(float)
    groups = (np.arange(n) % 23).astype(str)
    for g in (groups, None):
        draw_rng = np.random.default_rng(11)
        draw = (
            _cluster_sampler(np.asarray(g, dtype=object), draw_rng)
            if g is not None
            else (lambda r=draw_rng: r.integers(0, n, n))
        )
        rows = []
        for _ in range(60):
            idx = draw()
            rows.append(list(_metrics(y[idx], p[idx], _logit(p[idx])).values()))
        boot = np.array(rows)
        ci = bootstrap_ci(y, p, n_boot=60, seed=11, groups=g)
        for j, name in enumerate(ci):
            lo, hi = np.quantile(boot[:, j][np.isfinite(boot[:, j])], [0.025, 0.975])
            assert ci[name][1] == pytest.approx(lo, abs=1e-9), name
            assert ci[name][2] == pytest.approx(hi, abs=1e-9), name
