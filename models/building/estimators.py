"""The candidate models, each tuned (and, where it needs it, calibrated) on inner folds only.

``fit_candidate`` (``models.building.candidates``) is called once per outer fold and once on all the rows used for the final
model; everything it learns (hyperparameters, imputation values, scaling, knots, Platt
calibration) comes from the rows it is given: that is what keeps cross-validation nested.

Each kind is a scikit-learn classifier (``Candidate`` and its subclasses, by name in
``models.building.candidates.CANDIDATE_ESTIMATORS``) whose ``fit`` does the tuning, calibration
and final fit and leaves the numpy ``ScoringModel`` in ``scoring_model_``;
``models.building.candidates.fit_candidate`` builds one by name and returns that model.

- ``ridge`` (the baseline every other candidate is compared to, issue 10): median imputation,
  standardisation of numbers and booleans (one-hot columns stay 0/1, see ``ONEHOT``) and the
  columns of the raw contract fields only (no derived or missing-block columns), L2 logistic
  regression (Newton along the C path, ``_LinearPath``) with C tuned over ``RIDGE_GRID`` (25
  values over the baseline's range, 1e-4 .. 1e2) by inner grouped ``RIDGE_INNER_SPLITS``-fold CV log loss, repeated ``auto_repeats(n)`` times. Not
  recalibrated: a penalty tuned on log loss already trades fit for calibration.
- ``spline``: an additive model (a GAM). Every numeric column with at least 8 distinct training
  values gets a piecewise-linear shape function with knots at up to 7 quantiles (6 segments); the
  other columns are linear. Fitted by penalised logistic regression: a ridge penalty on the
  per-SD slopes plus ``rho`` times the squared change of slope between neighbouring segments
  (pulls each shape towards a straight line), with the catalog's expected direction enforced as
  bounds on the slopes (``features.build.MONOTONE``): more readiness can never raise the risk.
  ``lam`` and ``rho`` are tuned by inner grouped CV log loss. The fitted model is exactly a table
  of numbers (knots, values, coefficients), see ``models.scoring.scorer``.
- ``lightgbm``: monotone, shallow, strongly regularised boosted trees (``path_smooth``, at least
  40 clients per leaf) with Platt calibration. Not a default candidate: its risk is still a step
  function (one scale point moved it by up to 20 percentage points, p99 up to 13, n = 2,000,
  ``bench/stability.py``), and it was no more accurate than the ridge on any world tried
  (``bench/candidate_worlds.py``); ``linear_tree`` would smooth it but LightGBM computes no SHAP values
  for linear trees, so exact contributions would be lost. Selectable with ``train.candidates``.
- ``logistic``: the previous linear candidate (all columns, Platt-calibrated); kept so that old
  artifacts and configurations still work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from features.build import COLUMNS, MONOTONE
from features.catalog import PREDICTORS
from features.rows import FEATURE_NAMES
from models.building.newton import bound_arrays, bounded_penalised_logistic
from models.scoring.scorer import ScoringModel, sigmoid

LOGISTIC_GRID: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
# The ridge's C: 25 values over 1e-4 .. 1e2 (a factor 1.78 apart). The earlier 10 values over
# 1e-4 .. 1e4 were a factor 7.7 apart, too coarse where it matters (C 0.01 - 0.1 at n = 190-1,100):
# on 3 worlds x 3 sizes x 3 seeds the tuned ridge then trailed the baseline's 13-value grid by up
# to 0.0032 AUROC and 0.5% Brier (bench/ridge_vs_baseline.py). Above C = 100 the penalty no
# longer matters on standardised columns.
RIDGE_GRID: tuple[float, ...] = tuple(float(c) for c in np.logspace(-4, 2, 25))
# Ridge fits are cheap (milliseconds at n = 190), so its C is chosen on repeated inner folds: one
# 3-fold split at n = 190 picked C by the luck of which counsellors shared a fold (one run chose a
# penalty so strong that the test slope was 3.2). 5 folds x auto_repeats(n) repeats (1 to 5).
RIDGE_INNER_SPLITS = 5
# The anchored candidate (a ridge centred on t x the published prior, models/building/priors.py):
# every second C of the ridge's grid (13 values, a factor 3.2 apart) times 4 weights of the prior.
# t = 0 is the plain ridge, so a prior the data contradict is tuned away by the same nested CV.
ANCHORED_GRID: tuple[float, ...] = RIDGE_GRID[::2]
ANCHORED_WEIGHTS: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5)
# Penalty strength (1/C on the sum of log losses) and smoothness multiplier for the spline GAM.
SPLINE_LAMBDAS: tuple[float, ...] = tuple(float(v) for v in np.logspace(-1, 3, 9))
SPLINE_RHOS: tuple[float, ...] = (3.0, 30.0)
SPLINE_SEGMENTS = 6
# Fewer distinct values than this -> a linear term. 8 keeps the 1-7 attachment ratings linear: a
# shape with a knot at every rating point reads noise (one point is 0.6 SD on these ratings).
SPLINE_MIN_DISTINCT = 8
LGBM_SPACE: dict[str, tuple] = {
    "num_leaves": (4, 7, 11, 15),
    "max_depth": (2, 3, 4),
    "min_data_in_leaf": (40, 80, 160),
    "num_boost_round": (100, 200, 300),
    "learning_rate": (0.03, 0.05),
    "lambda_l2": (1.0, 5.0, 20.0),
    "feature_fraction": (0.7, 1.0),
    "path_smooth": (10.0, 50.0),
}
INNER_SPLITS = 3
# Hyperparameters are tuned on at most this many rows (a random subset); the final fit always uses
# every row. One tuned spline fit on 18,455 rows took 215 s with 20,000 here (a loaded machine):
# the inner grid is 54 fits, and the penalty, on the sum of log losses, carries over to more rows.
TUNE_MAX_ROWS = 8_000
# Kinds whose raw margin is Platt-recalibrated on inner out-of-fold margins.
CALIBRATED = frozenset({"logistic", "lightgbm"})

_PREDICTOR_NAMES = {f.name for f in PREDICTORS}
# Columns of the raw contract fields: a number/boolean field itself or one of a code's one-hots.
RAW_COLUMNS: np.ndarray = np.array(
    [
        len(c.sources) == 1
        and c.sources[0] in _PREDICTOR_NAMES
        and (c.name == c.sources[0] or c.name.startswith(c.sources[0] + "="))
        for c in COLUMNS
    ]
)


# One-hot columns of coded fields keep their 0/1 scale: the penalty then treats every category
# alike. Standardising them (dividing by sqrt(p(1-p))) weakens the penalty on a rare category by
# 1/(p(1-p)) (about 10x at 10%, 50x at 2%), so at small n the ridge fitted noise in rare codes:
# on the default world at n = 190 (4 seeds, 5,000-admission test cohort) the tuned ridge reached
# AUROC 0.691 / Brier 0.172 / slope 1.75 with standardised one-hots against 0.722 / 0.163 / 0.98
# without, and the ten-line scikit-learn baseline of issue 10 (which scales numbers only) 0.720 /
# 0.164 (bench/ridge_vs_baseline.py; docs/benchmarks.md "Why the ridge lost to the baseline").
ONEHOT: np.ndarray = np.array(["=" in c.name for c in COLUMNS])


def column_scale(Xi: np.ndarray) -> np.ndarray:
    """Per-column divisor: the SD for numbers and booleans, 1 for one-hot columns."""
    sd = Xi.std(axis=0)
    return np.where(ONEHOT[: Xi.shape[1]] | (sd <= 1e-12), 1.0, sd)


def auto_repeats(n: int) -> int:
    """Repeats of K-fold CV for n labelled admissions: round(1,000 / n), between 1 and 5. Used by
    the outer CV (``models.building.training``) and the ridge's inner CV.

    Why: which clients share a fold moves a CV estimate by about as much as its bootstrap SE at
    n = 190 and hardly at all by n = 1,000, while every repeat costs K more tuned fits. Gives 5 at
    n = 190, 2 at 400, 1 from 700 on."""
    return int(min(5, max(1, round(1000 / max(n, 1)))))


# ---------------------------------------------------------------- linear (ridge, logistic)
def _impute_values(X: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        allnan = np.isnan(X).all(axis=0)
        median = np.nanmedian(np.where(allnan, 0.0, X), axis=0)
    return np.where(np.isnan(median), 0.0, median)


def _fit_linear(
    X: np.ndarray, y: np.ndarray, C: float, mask: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """L2 logistic regression after median imputation and scaling; columns outside ``mask`` get
    a zero coefficient (they are not part of the model). The objective of scikit-learn's
    ``LogisticRegression(C=C)`` (sum of log losses + ||beta||^2 / 2C, intercept free), solved by
    Newton to machine precision (``_LinearPath``)."""
    path = _LinearPath(X, y, None, mask)
    return path.tables(path.theta({"C": C}))


# ---------------------------------------------------------------- anchored (prior-centred ridge)
def _linear_design(X: np.ndarray) -> dict[str, np.ndarray]:
    """The ridge's preprocessing: median imputation, per-column scale (one-hots 0/1)."""
    median = _impute_values(X)
    Xi = np.where(np.isnan(X), median, X)
    return {"median": median, "mean": Xi.mean(axis=0), "scale": column_scale(Xi), "Xi": Xi}


class _LinearPath:
    """Fits of a penalised linear logistic model on one set of rows for every (C, t), each
    warm-started from the previous fit of the same t (configurations come C ascending).

    The ridge's design (median imputation, numbers standardised, one-hots 0/1) on the columns of
    ``mask`` (``RAW_COLUMNS`` for ridge and anchored, every column for the older logistic), with
    the penalty centred on t x the prior: sum of log losses + (1 / 2C) ||beta - t * prior||^2.
    Without a prior (or t = 0) this is the plain ridge, scikit-learn's ``LogisticRegression(C)``
    objective; t = 1 takes the published effects at face value (the anchored candidate).

    Why Newton and not scikit-learn's L-BFGS: the ridge's 25-value grid, refitted from scratch on
    every inner fold, was 10,646 L-BFGS fits and 107 of the 139 s of a profiled training at
    n = 373 (cProfile, 3 x 3-fold CV, ridge only); warm-started Newton reaches the same optimum
    (strictly convex) in a few steps per grid point."""

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        prior: np.ndarray | None,
        mask: np.ndarray | None = None,
    ):
        d = _linear_design(X)
        self.d = d
        self.mask = RAW_COLUMNS if mask is None else mask
        self.Z = ((d["Xi"] - d["mean"]) / d["scale"])[:, self.mask]
        self.y = y
        self.prior = (np.zeros(X.shape[1]) if prior is None else prior)[self.mask]
        self.Q = np.eye(self.Z.shape[1])
        self.bounds = [(None, None)] * (self.Z.shape[1] + 1)
        self._last: dict[float, np.ndarray] = {}

    def theta(self, cfg: dict[str, Any]) -> np.ndarray:
        t = float(cfg.get("t", 0.0))
        start = self._last.get(t)
        theta = newton_ridge(self.Z, self.y, 1.0 / cfg["C"], t * self.prior, start)
        self._last[t] = theta
        return theta

    def fit(self, cfg: dict[str, Any], kind: str = "anchored") -> ScoringModel:
        return ScoringModel(kind, dict(cfg), linear=self.tables(self.theta(cfg)))

    def tables(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        coef = np.zeros(len(self.d["median"]))
        coef[self.mask] = theta[1:]
        return {
            "median": self.d["median"],
            "mean": self.d["mean"],
            "scale": self.d["scale"],
            "coef": coef,
            "intercept": np.array(theta[0]),
        }


def newton_ridge(
    Z: np.ndarray,
    y: np.ndarray,
    lam: float,
    mu: np.ndarray,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """Sum of log losses + lam/2 ||beta - mu||^2 with a free intercept (theta = intercept, then
    beta), by ``models.building.newton.penalised_logistic``. Cold start: the intercept at the
    prevalence's log-odds and beta at mu."""
    from models.building.newton import penalised_logistic

    n, q = Z.shape
    if start is None:
        prev = np.clip(y.mean(), 1e-3, 1 - 1e-3)
        start = np.concatenate([[np.log(prev / (1 - prev))], mu])
    pen = np.concatenate([[0.0], np.full(q, lam)])
    centre = np.concatenate([[0.0], mu])
    return penalised_logistic(
        np.hstack([np.ones((n, 1)), Z]), y, pen=pen, start=start, centre=centre
    )


def _fit_anchored(
    X: np.ndarray, y: np.ndarray, params: dict[str, Any], prior: np.ndarray | None
) -> dict[str, np.ndarray]:
    path = _LinearPath(X, y, prior)
    return path.tables(path.theta(params))


# ---------------------------------------------------------------- spline GAM
# Columns left out of the GAM because they are step functions of scale scores: the attachment
# style is the highest of four 1-7 ratings, so one point on one rating can flip it (the smooth
# model of self / of others columns carry the same information).
_STEP_COLUMNS = frozenset(j for j, c in enumerate(COLUMNS) if c.name.startswith("attach_style="))


class Design:
    """The GAM's basis on given rows: standardised linear columns and per-SD ramp functions."""

    def __init__(self, X: np.ndarray):
        self.median = _impute_values(X)
        Xi = np.where(np.isnan(X), self.median, X)
        self.mean = Xi.mean(axis=0)
        self.sd = column_scale(Xi)
        self.spline_cols: list[int] = []
        self.knots: list[np.ndarray] = []
        for j in range(X.shape[1]):
            if "=" in COLUMNS[j].name:
                continue
            v = X[~np.isnan(X[:, j]), j]
            if len(np.unique(v)) < SPLINE_MIN_DISTINCT:
                continue
            k = np.unique(np.quantile(v, np.linspace(0, 1, SPLINE_SEGMENTS + 1)))
            if len(k) >= 3:
                self.spline_cols.append(j)
                self.knots.append(k)
        self.linear_cols = np.array(
            [j for j in range(X.shape[1]) if j not in set(self.spline_cols)], dtype=int
        )
        self.n_segments = [len(k) - 1 for k in self.knots]

    def matrix(self, X: np.ndarray) -> np.ndarray:
        Xi = np.where(np.isnan(X), self.median, X)
        parts = [
            (Xi[:, self.linear_cols] - self.mean[self.linear_cols]) / self.sd[self.linear_cols]
        ]
        for j, k in zip(self.spline_cols, self.knots, strict=True):
            x = Xi[:, j][:, None]
            parts.append(np.clip(x - k[:-1], 0.0, np.diff(k)) / self.sd[j])
        return np.hstack(parts)

    def penalty(self, rho: float) -> np.ndarray:
        """Q of the quadratic penalty theta' Q theta (intercept excluded, it is not in theta)."""
        sizes = [len(self.linear_cols), *self.n_segments]
        Q = np.zeros((sum(sizes), sum(sizes)))
        Q[: sizes[0], : sizes[0]] = np.eye(sizes[0])
        o = sizes[0]
        for K in self.n_segments:
            block = np.eye(K) / K
            D = np.diff(np.eye(K), axis=0)
            Q[o : o + K, o : o + K] = block + rho * D.T @ D
            o += K
        return Q

    def bounds(self) -> list[tuple[float | None, float | None]]:
        def b(j: int) -> tuple[float | None, float | None]:
            if j in _STEP_COLUMNS:
                return (0.0, 0.0)
            return {1: (0.0, None), -1: (None, 0.0)}.get(MONOTONE[j], (None, None))

        out = [(None, None)]  # intercept
        out += [b(j) for j in self.linear_cols]
        for j, K in zip(self.spline_cols, self.n_segments, strict=True):
            out += [b(j)] * K
        return out


def fit_penalised(
    B: np.ndarray,
    y: np.ndarray,
    Q: np.ndarray,
    lam: float,
    bounds: list,
    start: np.ndarray | None = None,
    mu: np.ndarray | None = None,
) -> np.ndarray:
    """Bound-constrained penalised logistic regression: sum of log losses
    + lam/2 (theta - mu)'Q(theta - mu). ``mu`` (default 0, the intercept excluded) is where the
    penalty pulls the coefficients: zero for a ridge, a published effect for ``anchored``. Solved
    by projected Newton (``models.building.newton.bounded_penalised_logistic``)."""
    n, p = B.shape
    B1 = np.hstack([np.ones((n, 1)), B])
    Qf = np.zeros((p + 1, p + 1))
    Qf[1:, 1:] = lam * Q
    centre = np.zeros(p + 1)
    if mu is not None:
        centre[1:] = mu

    def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = B1 @ theta
        loss = float(np.sum(np.logaddexp(0.0, eta) - y * eta))
        Qt = Qf @ (theta - centre)
        return loss + 0.5 * float((theta - centre) @ Qt), B1.T @ (sigmoid(eta) - y) + Qt

    if start is None:
        prev = np.clip(y.mean(), 1e-3, 1 - 1e-3)
        start = np.zeros(p + 1)
        start[0] = np.log(prev / (1 - prev))
    lo, hi = bound_arrays(bounds)
    theta, converged = bounded_penalised_logistic(B1, y, Qf, centre, lo, hi, start)
    if converged:
        return theta
    # Newton stalled (not seen in the suite or the benchmarks): finish with L-BFGS-B from there
    res = minimize(
        f,
        theta,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 1000, "ftol": 1e-9, "gtol": 1e-5},
    )
    return res.x


def _spline_tables(design: Design, theta: np.ndarray) -> dict[str, Any]:
    """Fitted coefficients -> the scorer's additive tables (exactly the same function)."""
    lin = design.linear_cols
    n_lin = len(lin)
    coef = np.zeros(len(design.median))
    coef[lin] = theta[1 : 1 + n_lin] / design.sd[lin]
    intercept = float(theta[0] - np.sum(coef[lin] * design.mean[lin]))
    values, o = [], 1 + n_lin
    for j, k in zip(design.spline_cols, design.knots, strict=True):
        s = theta[o : o + len(k) - 1]
        o += len(k) - 1
        values.append(np.concatenate([[0.0], np.cumsum(s * np.diff(k) / design.sd[j])]))
    return {
        "median": design.median,
        "coef": coef,
        "intercept": intercept,
        "spline_cols": list(design.spline_cols),
        "knots": list(design.knots),
        "values": values,
    }


class SplinePath:
    """Fits of one set of rows for every (rho, lam) of the grid, warm-started down the lam path."""

    def __init__(self, X: np.ndarray, y: np.ndarray):
        self.design = Design(X)
        self.B = self.design.matrix(X)
        self.y = y
        self.bounds = self.design.bounds()
        self._last: dict[float, tuple[float, np.ndarray]] = {}

    def fit(self, lam: float, rho: float) -> ScoringModel:
        prev = self._last.get(rho)
        start = prev[1] if prev is not None else None
        theta = fit_penalised(self.B, self.y, self.design.penalty(rho), lam, self.bounds, start)
        self._last[rho] = (lam, theta)
        return ScoringModel(
            "spline", {"lam": lam, "rho": rho}, additive=_spline_tables(self.design, theta)
        )


# ---------------------------------------------------------------- LightGBM
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


# ---------------------------------------------------------------- tuning
def raw_model(
    kind: str,
    X: np.ndarray,
    y: np.ndarray,
    params: dict[str, Any],
    seed: int,
    data=None,
    prior: np.ndarray | None = None,
) -> ScoringModel:
    if kind == "logistic":
        return ScoringModel(kind, dict(params), linear=_fit_linear(X, y, params["C"]))
    if kind == "ridge":
        return ScoringModel(kind, dict(params), linear=_fit_linear(X, y, params["C"], RAW_COLUMNS))
    if kind == "spline":
        return SplinePath(X, y).fit(params["lam"], params["rho"])
    if kind == "anchored":
        return ScoringModel(kind, dict(params), linear=_fit_anchored(X, y, params, prior))
    if kind == "lightgbm":
        return ScoringModel(
            kind,
            dict(params),
            booster=_fit_booster(data if data is not None else _dataset(X, y), params, seed),
        )
    raise ValueError(f"unknown candidate kind {kind!r}")


def candidate_configs(kind: str, n: int, seed: int) -> list[dict[str, Any]]:
    if kind == "logistic":
        return [{"C": c} for c in LOGISTIC_GRID]
    if kind == "ridge":
        return [{"C": c} for c in RIDGE_GRID]
    if kind == "anchored":  # C ascending within each weight: each fit warm-starts the next
        return [{"C": c, "t": t} for t in ANCHORED_WEIGHTS for c in ANCHORED_GRID]
    if kind == "spline":  # lam descending within each rho: each fit warm-starts the next
        return [{"lam": lam, "rho": r} for r in SPLINE_RHOS for lam in SPLINE_LAMBDAS[::-1]]
    return sample_configs(LGBM_SPACE, n, seed)


def sample_configs(space: dict[str, tuple], n: int, seed: int) -> list[dict[str, Any]]:
    """Up to ``n`` distinct random configurations of a LightGBM search space."""
    rng = np.random.default_rng(seed)
    configs, seen = [], set()
    while len(configs) < n and len(seen) < 1000:
        cfg = {k: v[rng.integers(len(v))] for k, v in space.items()}
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
    from models.building.metrics import row_log_loss

    return float(row_log_loss(y, p).mean())


def tuning_rows(y: np.ndarray, seed: int) -> np.ndarray:
    if len(y) <= TUNE_MAX_ROWS:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(len(y), TUNE_MAX_ROWS, replace=False))


def oof_margins(
    kind: str, configs: list[dict], X, y, folds, seed: int, prior: np.ndarray | None = None
) -> list[np.ndarray]:
    out = [np.empty(len(y)) for _ in configs]
    for tr, va in folds:
        if kind in ("anchored", "ridge", "logistic"):
            mask = np.ones(X.shape[1], dtype=bool) if kind == "logistic" else None
            path = _LinearPath(X[tr], y[tr], prior if kind == "anchored" else None, mask)
            for i, cfg in enumerate(configs):
                out[i][va] = path.fit(cfg, kind).margin(X[va])
            continue
        if kind == "spline":
            path = SplinePath(X[tr], y[tr])
            for i, cfg in enumerate(configs):
                out[i][va] = path.fit(cfg["lam"], cfg["rho"]).margin(X[va])
            continue
        ds = _dataset(X[tr], y[tr]) if kind == "lightgbm" else None
        for i, cfg in enumerate(configs):
            out[i][va] = raw_model(kind, X[tr], y[tr], cfg, seed, ds).margin(X[va])
    return out


def tune_and_fit(
    kind: str,
    configs: list[dict[str, Any]],
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None,
    seed: int,
    inner_splits: int,
    repeated: bool,
    prior: np.ndarray | None = None,
) -> ScoringModel:
    """Tune on inner folds (log loss of the out-of-fold predictions), calibrate the kinds in
    ``CALIBRATED`` on the winner's out-of-fold margins, refit on all rows.

    Inner folds are grouped (``StratifiedGroupKFold``) when ``groups`` is given, plain stratified
    (``StratifiedKFold``) when it is None; ``repeated``: ``auto_repeats`` repeats (seed + repeat)
    instead of one. Ties go to the earlier configuration."""
    rows = tuning_rows(y, seed)
    Xt, yt = X[rows], y[rows]
    gt = None if groups is None else groups[rows]
    repeats = auto_repeats(len(yt)) if repeated else 1
    losses = np.zeros(len(configs))
    first: list[np.ndarray] = []
    for rep in range(repeats):
        if gt is None:
            inner = StratifiedKFold(n_splits=inner_splits, shuffle=True, random_state=seed + rep)
        else:
            inner = StratifiedGroupKFold(
                n_splits=inner_splits, shuffle=True, random_state=seed + rep
            )
        folds = list(inner.split(Xt, yt, gt))
        for i, oof in enumerate(oof_margins(kind, configs, Xt, yt, folds, seed, prior)):
            if kind in CALIBRATED:
                a, b = platt(oof, yt)
                losses[i] += _log_loss(yt, sigmoid(a * oof + b)) / repeats
            else:
                losses[i] += _log_loss(yt, sigmoid(oof)) / repeats
            if rep == 0:
                first.append(oof)
    best: tuple[float, dict, np.ndarray] | None = None
    for cfg, loss, oof in zip(configs, losses, first, strict=True):
        if best is None or loss < best[0] - 1e-12:
            best = (float(loss), cfg, oof)
    loss, cfg, oof = best
    model = raw_model(kind, X, y, cfg, seed, prior=prior)
    if kind in CALIBRATED:
        model.platt_a, model.platt_b = platt(oof, yt)
    model.params = {**cfg, "inner_cv_log_loss": round(loss, 6)}
    return model


# ---------------------------------------------------------------- scikit-learn estimators
class Candidate(ClassifierMixin, BaseEstimator):
    """A candidate kind as a scikit-learn classifier on the model matrix (``features.build``).

    ``fit(X, y, groups=None)`` tunes the kind's grid on inner folds of the rows given (nested
    inside whatever split the caller made), Platt-calibrates the kinds that need it and refits on
    every row: exactly what training does with each candidate. ``X`` is the model matrix: its
    ``len(features.build.COLUMNS)`` columns in that order (the kinds read the catalog's column
    roles: one-hots, raw contract fields, monotone directions), NaN for a missing value; a
    DataFrame must carry those column names. ``y``: two classes, the second (``classes_[1]``)
    being the low alliance whose probability is modelled.

    ``groups``: the counsellor (or service) of every row. The inner folds are then grouped, as in
    training. Without it (for example inside ``cross_val_score`` when the groups are not routed)
    the inner folds fall back to plain stratified K-fold, which lets clients of one counsellor sit
    on both sides of an inner split. To route them: ``sklearn.set_config(
    enable_metadata_routing=True)`` and ``est.set_fit_request(groups=True)``, then
    ``cross_val_score(est, X, y, cv=StratifiedGroupKFold(5), params={"groups": groups})``.

    After fitting: ``scoring_model_``, the ``models.scoring.scorer.ScoringModel`` serving scores
    with (the same tables and numbers); ``best_params_`` and ``inner_cv_log_loss_``;
    ``classes_``, ``n_features_in_`` (and ``feature_names_in_`` for a DataFrame).
    ``predict_proba`` and ``decision_function`` (calibrated log-odds) score through
    ``scoring_model_``. ``random_state`` seeds the row sample tuning uses above
    ``TUNE_MAX_ROWS``, the inner folds (random_state + repeat) and LightGBM."""

    kind: ClassVar[str]
    _inner_splits: ClassVar[int] = INNER_SPLITS
    _repeated: ClassVar[bool] = False

    def _configs(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _prior(self) -> np.ndarray | None:
        return None

    def fit(self, X, y, groups=None) -> Candidate:
        from sklearn.utils.multiclass import check_classification_targets
        from sklearn.utils.validation import validate_data
        from threadpoolctl import threadpool_limits

        # C order, as training's matrices are: a column mean or a matrix product over a
        # Fortran-ordered copy (what np.asarray gives for a DataFrame) sums in another order and
        # moves the fitted numbers in their last bits.
        X, y = validate_data(self, X, y, dtype=np.float64, order="C", ensure_all_finite="allow-nan")
        check_classification_targets(y)
        self.classes_, y01 = np.unique(y, return_inverse=True)
        if len(self.classes_) > 2:
            raise ValueError(
                f"Only binary classification is supported. {type(self).__name__} got "
                f"{len(self.classes_)} classes: {self.classes_.tolist()}"
            )
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs two classes in y, got 1 class")
        _check_model_matrix(self, X)
        if groups is not None:
            groups = np.asarray(groups)
            if len(groups) != len(y):
                raise ValueError(f"groups has {len(groups)} values for {len(y)} rows")
        # BLAS is held to one thread: these fits multiply small matrices thousands of times, and
        # on this 2-core machine under load a multi-threaded BLAS made the spline fits 10-30x
        # slower (134 s against about 6 s for one tuned spline fit at n = 1,500, measured).
        with threadpool_limits(limits=1, user_api="blas"):
            model = self._fit_model(X, y01, groups)
        self.scoring_model_ = model
        self.best_params_ = {k: v for k, v in model.params.items() if k != "inner_cv_log_loss"}
        self.inner_cv_log_loss_ = model.params.get("inner_cv_log_loss")
        return self

    def _fit_model(self, X: np.ndarray, y01: np.ndarray, groups) -> ScoringModel:
        """The kind's own fit on validated rows (y as 0/1)."""
        return tune_and_fit(
            self.kind,
            self._configs(),
            X,
            y01,
            groups,
            int(self.random_state),
            self._inner_splits,
            self._repeated,
            self._prior(),
        )

    def _matrix(self, X) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted, validate_data

        check_is_fitted(self)
        return validate_data(
            self, X, reset=False, dtype=np.float64, order="C", ensure_all_finite="allow-nan"
        )

    def decision_function(self, X) -> np.ndarray:
        """Calibrated log-odds of ``classes_[1]`` (Platt a x raw log-odds + b)."""
        X = self._matrix(X)
        m = self.scoring_model_
        return m.platt_a * m.margin(X) + m.platt_b

    def predict_proba(self, X) -> np.ndarray:
        X = self._matrix(X)
        p = self.scoring_model_.proba(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        """``classes_[1]`` where its probability is above 0.5."""
        d = self.decision_function(X)
        return self.classes_[(d > 0).astype(int)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.classifier_tags.multi_class = False
        return tags


def _check_model_matrix(est: Candidate, X: np.ndarray) -> None:
    if X.shape[1] != len(COLUMNS):
        raise ValueError(
            f"{type(est).__name__} fits the model matrix of features.build.COLUMNS, "
            f"n_features = {len(COLUMNS)} in that order; got n_features = {X.shape[1]}"
        )
    names = getattr(est, "feature_names_in_", None)
    if names is not None and tuple(names) != FEATURE_NAMES:
        wrong = [f"{a}!={b}" for a, b in zip(names, FEATURE_NAMES, strict=True) if a != b]
        raise ValueError(
            f"{type(est).__name__}: the columns are not the model matrix's, in its order "
            f"({', '.join(wrong[:3])}{', ...' if len(wrong) > 3 else ''})"
        )


class RidgeCandidate(Candidate):
    """The baseline: L2 logistic regression on the raw contract fields' columns, C tuned over
    ``Cs`` by repeated (``auto_repeats``) inner ``RIDGE_INNER_SPLITS``-fold CV; not
    recalibrated."""

    kind = "ridge"
    _inner_splits = RIDGE_INNER_SPLITS
    _repeated = True

    def __init__(self, Cs: tuple[float, ...] = RIDGE_GRID, random_state: int = 0):
        self.Cs = Cs
        self.random_state = random_state

    def _configs(self) -> list[dict[str, Any]]:
        return [{"C": float(c)} for c in self.Cs]


class AnchoredCandidate(Candidate):
    """The ridge's design with the penalty centred on t x ``prior`` (C over ``Cs``, ascending,
    t over ``weights``, tuned like the ridge). ``prior``: a vector over the model matrix's
    columns, or a spec for ``models.building.priors.load`` ("literature", "none", a TOML file);
    None or "none" is the plain ridge."""

    kind = "anchored"
    _inner_splits = RIDGE_INNER_SPLITS
    _repeated = True

    def __init__(
        self,
        Cs: tuple[float, ...] = ANCHORED_GRID,
        weights: tuple[float, ...] = ANCHORED_WEIGHTS,
        prior: Any = "literature",
        random_state: int = 0,
    ):
        self.Cs = Cs
        self.weights = weights
        self.prior = prior
        self.random_state = random_state

    def _configs(self) -> list[dict[str, Any]]:
        # C ascending within each weight: each fit warm-starts the next
        return [{"C": float(c), "t": float(t)} for t in self.weights for c in sorted(self.Cs)]

    def _prior(self) -> np.ndarray | None:
        if self.prior is None or isinstance(self.prior, str | Path):
            from models.building.priors import load

            loaded = load(self.prior)
            return None if loaded is None else loaded.vector()
        return np.asarray(self.prior, dtype=float)


class SplineCandidate(Candidate):
    """The monotone GAM: lam over ``lambdas`` (fitted descending) and rho over ``rhos``, tuned
    by inner ``INNER_SPLITS``-fold CV; not recalibrated."""

    kind = "spline"

    def __init__(
        self,
        lambdas: tuple[float, ...] = SPLINE_LAMBDAS,
        rhos: tuple[float, ...] = SPLINE_RHOS,
        random_state: int = 0,
    ):
        self.lambdas = lambdas
        self.rhos = rhos
        self.random_state = random_state

    def _configs(self) -> list[dict[str, Any]]:
        # lam descending within each rho: each fit warm-starts the next
        lams = sorted(self.lambdas, reverse=True)
        return [{"lam": float(lam), "rho": float(r)} for r in self.rhos for lam in lams]


class LightGBMCandidate(Candidate):
    """Monotone shallow boosted trees: ``n_configs`` random configurations of ``space`` (None:
    ``LGBM_SPACE``; else (name, values) pairs), Platt-calibrated on the inner out-of-fold
    log-odds."""

    kind = "lightgbm"

    def __init__(self, n_configs: int = 6, space: tuple | None = None, random_state: int = 0):
        self.n_configs = n_configs
        self.space = space
        self.random_state = random_state

    def _configs(self) -> list[dict[str, Any]]:
        space = LGBM_SPACE if self.space is None else dict(self.space)
        return sample_configs(space, int(self.n_configs), int(self.random_state))


class LogisticCandidate(Candidate):
    """The older all-column L2 logistic regression, C over ``Cs``, Platt-calibrated."""

    kind = "logistic"

    def __init__(self, Cs: tuple[float, ...] = LOGISTIC_GRID, random_state: int = 0):
        self.Cs = Cs
        self.random_state = random_state

    def _configs(self) -> list[dict[str, Any]]:
        return [{"C": float(c)} for c in self.Cs]
