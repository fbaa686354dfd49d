"""Each client's uncertainty: B refits of the champion, kept as arrays the scorer applies in numpy.

Riley & Collins (2023, Biometrical Journal 65:2200302) judge a model's stability by refitting it
on bootstrap samples and looking at the spread of each individual's prediction. This module does
that for the champion and stores the refits as weights on the scorer's ``raw_basis`` (``W``,
B x q, and intercepts ``c``), so that serving computes B risks per record with one matrix product
(``models.scoring.scorer.ScoringModel.interval``) and no refit, pandas or scikit-learn.

What is resampled, and what is not (said in the card):
- n below ``train.holdout_from`` (20,000): **cluster bootstrap + posterior**. B = ``BOOT_B``
  (200) refits on cluster-bootstrap samples over the same groups as the cross-validation
  (counsellors), the tuned penalty and preprocessing held fixed, each refit then moved by one draw
  from the Laplace posterior of the penalised fit, N(0, H^-1) with H the penalised Hessian. Why
  both: the bootstrap alone measures how much the fit moves with the data, but a penalised fit is
  biased towards its centre (zero, or the prior), and its refits share that bias; on a
  5,000-client test cohort whose true risk is known it covered the truth for only 49-67% of
  clients at n = 190-500. Reading the penalty as a prior (empirical Bayes) adds the shrinkage's
  own uncertainty: the posterior alone covered 61-87%, both together 71-92%
  (``python -m experiments.interval_coverage``, docs/benchmarks.md). Re-tuning the penalty in
  every replicate (the whole process) would repeat the nested CV's 650-1,300 fits 200 times,
  minutes at n = 190 against the 60 s budget of issue 17.
- n from ``train.holdout_from`` on: the posterior alone (B draws from N(theta, H^-1)): with
  tens of thousands of clients the bootstrap's spread and the posterior's agree, and 200 refits on
  300,000 rows would cost minutes. Draws are clipped to the model's bounds (the monotone
  directions).
- LightGBM: no interval (refitting boosted trees 200 times, and storing them, is not what a
  numpy-only service can apply cheaply); the API then answers ``risk_interval: null``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.building.estimators import RAW_COLUMNS, Design, fit_penalised
from models.building.newton import bound_arrays
from models.scoring.scorer import ScoringModel, refit_margins

BOOT_B = 200
NEWTON_STEPS = 4


@dataclass
class Problem:
    """A penalised logistic fit in a standardised basis, and the map back to raw weights."""

    Z: np.ndarray  # n x q standardised basis (no intercept column)
    Q: np.ndarray  # q x q penalty
    lam: float
    mu: np.ndarray | None  # where the penalty pulls theta[1:]
    bounds: list
    theta: np.ndarray  # the fit on all rows: intercept, then q coefficients
    shift: np.ndarray  # raw basis column -> standardised: (u - shift) / div
    div: np.ndarray
    index: np.ndarray  # which raw-basis column each standardised column comes from
    n_raw: int  # length of the raw basis

    @property
    def lo(self) -> np.ndarray:
        return bound_arrays(self.bounds)[0]

    @property
    def hi(self) -> np.ndarray:
        return bound_arrays(self.bounds)[1]

    def to_raw(self, thetas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = np.zeros((len(thetas), self.n_raw))
        w[:, self.index] = thetas[:, 1:] / self.div
        c = thetas[:, 0] - (thetas[:, 1:] * self.shift / self.div).sum(axis=1)
        return w, c


def linear_problem(model: ScoringModel, X: np.ndarray, y: np.ndarray, prior) -> Problem:
    lin = model.linear
    mask = np.ones(X.shape[1], dtype=bool) if model.kind == "logistic" else RAW_COLUMNS.copy()
    Xi = np.where(np.isnan(X), lin["median"], X)
    Z = ((Xi - lin["mean"]) / lin["scale"])[:, mask]
    mu = None
    if model.kind == "anchored" and prior is not None:
        mu = model.params["t"] * prior[mask]
    theta = np.concatenate([[float(lin["intercept"])], lin["coef"][mask]])
    q = int(mask.sum())
    return Problem(
        Z=Z,
        Q=np.eye(q),
        lam=1.0 / float(model.params["C"]),
        mu=mu,
        bounds=[(None, None)] * (q + 1),
        theta=theta,
        shift=lin["mean"][mask],
        div=lin["scale"][mask],
        index=np.flatnonzero(mask),
        n_raw=X.shape[1],
    )


def spline_problem(model: ScoringModel, X: np.ndarray, y: np.ndarray) -> Problem:
    design = Design(X)
    Z = design.matrix(X)
    Q = design.penalty(model.params["rho"])
    lam = float(model.params["lam"])
    bounds = design.bounds()
    theta = fit_penalised(Z, y, Q, lam, bounds)
    p = X.shape[1]
    lin = design.linear_cols
    shift = [design.mean[lin]]
    div = [design.sd[lin]]
    index = [lin]
    o = p
    for j, K in zip(design.spline_cols, design.n_segments, strict=True):
        shift.append(np.zeros(K))
        div.append(np.full(K, design.sd[j]))
        index.append(np.arange(o, o + K))
        o += K
    return Problem(
        Z=Z,
        Q=Q,
        lam=lam,
        mu=None,
        bounds=bounds,
        theta=theta,
        shift=np.concatenate(shift),
        div=np.concatenate(div),
        index=np.concatenate(index),
        n_raw=o,
    )


def bootstrap(pb: Problem, y: np.ndarray, groups: np.ndarray, B: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    members = {g: np.flatnonzero(groups == g) for g in np.unique(groups)}
    keys = list(members)
    out = []
    while len(out) < B:
        pick = rng.integers(len(keys), size=len(keys))
        rows = np.concatenate([members[keys[i]] for i in pick])
        yb = y[rows]
        if yb.min() == yb.max():  # a replicate without both outcomes cannot be fitted
            continue
        out.append(newton_refit(pb, pb.Z[rows], yb))
    return np.array(out)


def newton_refit(pb: Problem, Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The replicate's penalised fit by ``NEWTON_STEPS`` projected Newton steps from the
    full-data fit. A replicate's optimum is close to the full-data one, so four steps land on it:
    against full L-BFGS-B refits of the spline at n = 190, risks agreed to 0.0005 at most (two
    steps: 0.003; steps that ignored the bounds: 0.07), in 1.5 s for B = 200 with BLAS on one
    thread. B = 200 full L-BFGS-B refits took 107 s, measured on the loaded machine before BLAS
    was held to one thread, so that figure overstates what refits cost; both measured with a
    throw-away script on a SYNTHETIC cohort of 190 admissions (seed 3)."""
    n, q = Z.shape
    Z1 = np.hstack([np.ones((n, 1)), Z])
    P = np.zeros((q + 1, q + 1))
    P[1:, 1:] = pb.lam * pb.Q
    centre = np.zeros(q + 1)
    if pb.mu is not None:
        centre[1:] = pb.mu
    theta = pb.theta.copy()
    lo, hi = pb.lo, pb.hi
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(Z1 @ theta, -500, 500)))
        grad = Z1.T @ (p - y) + P @ (theta - centre)
        # Projected Newton (Bertsekas 1982): a coefficient at its bound whose gradient pushes it
        # further out stays there; the others take a Newton step, clipped to the bounds.
        held = (np.isclose(theta, lo) & (grad > 0)) | (np.isclose(theta, hi) & (grad < 0))
        free = ~held
        Zf = Z1[:, free]
        H = (Zf * (p * (1 - p))[:, None]).T @ Zf + P[np.ix_(free, free)]
        theta[free] -= np.linalg.solve(H + 1e-9 * np.eye(int(free.sum())), grad[free])
        theta = np.clip(theta, lo, hi)
    return theta


def laplace_draws(
    Z: np.ndarray,
    theta: np.ndarray,
    penalty: np.ndarray,
    bounds: list,
    B: int,
    seed: int,
) -> np.ndarray:
    """B draws from N(theta, H^-1), H the Hessian of the penalised log loss at ``theta`` (Z
    without its intercept column, theta = intercept then coefficients, ``penalty`` the
    coefficients' penalty matrix, the intercept unpenalised), clipped to ``bounds``."""
    n, q = Z.shape
    Z1 = np.hstack([np.ones((n, 1)), Z])
    eta = Z1 @ theta
    p = 1.0 / (1.0 + np.exp(-eta))
    H = (Z1 * (p * (1 - p))[:, None]).T @ Z1
    H[1:, 1:] += penalty
    L = np.linalg.cholesky(np.linalg.inv(H + 1e-9 * np.eye(q + 1)))
    draws = theta + np.random.default_rng(seed).standard_normal((B, q + 1)) @ L.T
    lo, hi = bound_arrays(bounds)
    return np.clip(draws, lo, hi)


def normal_draws(pb: Problem, B: int, seed: int) -> np.ndarray:
    return laplace_draws(pb.Z, pb.theta, pb.lam * pb.Q, pb.bounds, B, seed)


# An updated model's refits repeat the update itself on bootstrap samples; ``update_model``
# leaves that procedure (a function of the model and the rows) on the model it returns, under
# this key (in memory only: not saved), so this module needs no import of
# ``models.building.update``, which imports this one.
REFIT_UPDATE = "refit_update"
UPDATE_STATE_LOST = (
    "an updated model's refits need the model it was updated from, which is kept in memory "
    "only: attach the uncertainty to the model update_model returned, before saving it"
)


def attach_uncertainty(
    model: ScoringModel,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    seed: int,
    normal_from: int = 20_000,
    B: int = BOOT_B,
    prior: np.ndarray | None = None,
) -> dict[str, Any] | None:
    """Compute the refits of ``model`` (fitted on exactly X, y) and store them on it. Returns the
    summary the card shows (method, B), or None for a kind without intervals.

    Kind "updated" (``models.building.update``): the update (recalibration or revision) is
    repeated on the same cluster-bootstrap samples of the new rows, each paired with one of the
    base model's refits; as-is keeps the base's refits (``attach_update_uncertainty``)."""
    if model.kind == "updated":
        refit = model.__dict__.get(REFIT_UPDATE)
        if refit is None:
            raise ValueError(UPDATE_STATE_LOST)
        return refit(model, X, y, groups, seed, normal_from, B)
    if model.kind in ("ridge", "logistic", "anchored"):
        pb = linear_problem(model, X, y, prior)
    elif model.kind == "spline":
        pb = spline_problem(model, X, y)
    else:
        model.uncertainty = None
        return None
    if len(y) < normal_from:
        method = "cluster bootstrap + posterior"
        thetas = bootstrap(pb, y, groups, B, seed) + (normal_draws(pb, B, seed) - pb.theta)
    else:
        method = "normal approximation"
        thetas = normal_draws(pb, B, seed)
    W, c = pb.to_raw(thetas)
    model.uncertainty = {"method": method, "B": int(B), "W": W, "c": c}
    return {"method": method, "B": int(B)}


def refit_risks(model: ScoringModel, X: np.ndarray) -> np.ndarray:
    """Every client's risk under every stored refit (clients x B); empty without refits."""
    unc = model.uncertainty
    if unc is None:
        return np.empty((len(X), 0))
    m = refit_margins(model.raw_basis(X), unc)
    return 1.0 / (1.0 + np.exp(-(model.platt_a * m + model.platt_b)))


def instability(model: ScoringModel, X: np.ndarray) -> dict[str, float] | None:
    """Riley & Collins (2023)'s summaries on rows X: the mean absolute prediction error of
    individuals (mean over clients and refits of |refit risk - final risk|), its 95th
    percentile over clients, and the median width of the 95% interval."""
    P = refit_risks(model, X)
    if P.shape[1] == 0:
        return None
    p = model.proba(X)
    per_client = np.abs(P - p[:, None]).mean(axis=1)
    lo, hi = model.interval(X, p)
    return {
        "mape": float(per_client.mean()),
        "mape_p95": float(np.quantile(per_client, 0.95)),
        "median_width": float(np.median(hi - lo)),
    }
