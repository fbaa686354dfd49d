"""The two candidate models, each tuned and calibrated on inner folds only.

``fit_candidate`` is called once per outer fold (and once on the whole training split), and
everything it learns — hyperparameters, imputation values, scaling, Platt calibration — comes from
the rows it is given: that is what keeps the cross-validation nested and free of leakage.

- Logistic regression: median imputation (with the feature builder's missing-block indicators),
  standardisation, L2 penalty; C chosen by inner grouped CV.
- LightGBM: monotone constraints from the catalog's expected directions, shallow trees and strong
  regularisation for small data, a few random configurations tried by inner grouped CV. Compact
  trees also keep TreeSHAP cheap at serving time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold

from features.build import MONOTONE
from models.scorer import ScoringModel, sigmoid

LOGISTIC_GRID: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
LGBM_SPACE: dict[str, tuple] = {
    "num_leaves": (4, 7, 11, 15),
    "max_depth": (2, 3, 4),
    "min_data_in_leaf": (20, 40, 80),
    "num_boost_round": (100, 200, 300),
    "learning_rate": (0.03, 0.05),
    "lambda_l2": (0.0, 1.0, 5.0),
    "feature_fraction": (0.7, 1.0),
}
INNER_SPLITS = 3


def _fit_linear(X: np.ndarray, y: np.ndarray, C: float) -> dict[str, np.ndarray]:
    median = np.nanmedian(np.where(np.isnan(X).all(axis=0), 0.0, X), axis=0)
    median = np.where(np.isnan(median), 0.0, median)
    Xi = np.where(np.isnan(X), median, X)
    mean = Xi.mean(axis=0)
    scale = Xi.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    lr = LogisticRegression(C=C, max_iter=2000)
    lr.fit((Xi - mean) / scale, y)
    return {
        "median": median,
        "mean": mean,
        "scale": scale,
        "coef": lr.coef_[0],
        "intercept": np.array(lr.intercept_[0]),
    }


# Binning is shared by every configuration tried on the same rows, so datasets are built once.
# 63 bins are plenty for scale scores and counts, and binning is most of a small fit's cost.
DATASET_PARAMS = {"max_bin": 63, "feature_pre_filter": False, "verbose": -1}


def _dataset(X: np.ndarray, y: np.ndarray):
    import lightgbm as lgb

    return lgb.Dataset(X, label=y, params=DATASET_PARAMS, free_raw_data=False).construct()


def _fit_booster(data, params: dict[str, Any], seed: int):
    import lightgbm as lgb

    p = {k: v for k, v in params.items() if k != "num_boost_round"}
    p.update(
        DATASET_PARAMS,
        objective="binary",
        monotone_constraints=list(MONOTONE),
        monotone_constraints_method="intermediate",
        # One thread below 20,000 rows: on a shared 2-core machine a second OpenMP thread made a
        # 150-row fit 10x slower (0.28 s -> 3.3 s, load 13), and tiny fits cannot use it anyway.
        num_threads=1 if data.num_data() < 20_000 else 2,
        seed=seed,
        deterministic=True,
        force_col_wise=True,
    )
    return lgb.train(p, data, num_boost_round=params["num_boost_round"])


def _raw_model(
    kind: str, X: np.ndarray, y: np.ndarray, params: dict[str, Any], seed: int, data=None
) -> ScoringModel:
    if kind == "logistic":
        return ScoringModel(kind, dict(params), linear=_fit_linear(X, y, params["C"]))
    return ScoringModel(
        kind,
        dict(params),
        booster=_fit_booster(data if data is not None else _dataset(X, y), params, seed),
    )


def candidate_configs(kind: str, n: int, seed: int) -> list[dict[str, Any]]:
    if kind == "logistic":
        return [{"C": c} for c in LOGISTIC_GRID]
    rng = np.random.default_rng(seed)
    configs, seen = [], set()
    while len(configs) < n and len(seen) < 1000:
        cfg = {k: v[rng.integers(len(v))] for k, v in LGBM_SPACE.items()}
        cfg = {k: (v.item() if hasattr(v, "item") else v) for k, v in cfg.items()}
        key = tuple(sorted(cfg.items()))
        if key not in seen:
            seen.add(key)
            configs.append(cfg)
    return configs


def platt(margin: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Logistic regression of the label on the raw log-odds (nearly unpenalised)."""
    lr = LogisticRegression(C=1e4, max_iter=1000)
    lr.fit(margin.reshape(-1, 1), y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def fit_candidate(
    kind: str, X: np.ndarray, y: np.ndarray, groups: np.ndarray, n_configs: int, seed: int
) -> ScoringModel:
    """Tune on inner grouped folds, calibrate on the winner's out-of-fold margins, refit on all rows."""
    configs = candidate_configs(kind, n_configs, seed)
    inner = StratifiedGroupKFold(n_splits=INNER_SPLITS, shuffle=True, random_state=seed)
    folds = list(inner.split(X, y, groups))
    data = [_dataset(X[tr], y[tr]) if kind == "lightgbm" else None for tr, _ in folds]
    best: tuple[float, dict, np.ndarray] | None = None
    for cfg in configs:
        oof = np.empty(len(y))
        for (tr, va), ds in zip(folds, data, strict=True):
            oof[va] = _raw_model(kind, X[tr], y[tr], cfg, seed, ds).margin(X[va])
        a, b = platt(oof, y)
        loss = _log_loss(y, sigmoid(a * oof + b))
        if best is None or loss < best[0] - 1e-12:
            best = (loss, cfg, oof)
    _, cfg, oof = best
    model = _raw_model(kind, X, y, cfg, seed)
    model.platt_a, model.platt_b = platt(oof, y)
    model.params = {**cfg, "inner_cv_log_loss": round(best[0], 6)}
    return model
