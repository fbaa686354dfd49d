"""Update an existing model on new data instead of fitting a new one (issue 17, item 3).

A service with a few hundred labelled clients can adopt another service's or a network's model
and adapt it. Four candidates, from the least to the most that is re-estimated (Steyerberg et
al. 2004, Stat Med 23:2567; Vergouwe et al. 2017, Stat Med 36:4529), with m the existing model's
calibrated log-odds (``base.platt_a * base.margin(X) + base.platt_b``):

1. "as-is": the existing model unchanged;
2. "recalibration in the large": logit p = alpha + m (alpha fitted with m as an offset);
3. "logistic recalibration": logit p = alpha + beta m;
4. "revision": logit p = alpha + beta m + Z gamma. Z are the ridge's columns (``RAW_COLUMNS``:
   the raw contract fields, numbers and booleans standardised on the new data, one-hots 0/1,
   missing values imputed with the existing model's medians so that the revised model keeps one
   imputation), gamma shrunk towards 0, that is towards the recalibrated existing model, by a
   ridge penalty whose C is tuned over ``RIDGE_GRID`` by inner grouped CV log loss exactly like
   the ridge's (``RIDGE_INNER_SPLITS`` folds x ``auto_repeats(n)`` repeats, grouped by counsellor).
   alpha and beta are not penalised.

The method is chosen by **closed testing** (Vergouwe 2017): likelihood-ratio test of the revision
against as-is at level ``alpha``; not significant -> as-is. Otherwise revision against
recalibration in the large; not significant -> that. Otherwise revision against logistic
recalibration; not significant -> that; else revision. Every test compares the same "full"
model with a nested smaller one, so the family-wise error of the sequence stays at ``alpha``.
df = the number of extra parameters, counted as the rank gained (a code's one-hots that sum to 1
with the intercept, or a category absent from the new data, add nothing).

The revision **in the tests** is fitted *lightly penalised* (``TEST_PENALTY``: 1/2 x 0.5 x
||gamma||^2 on the standardised columns, alpha and beta free), not by plain maximum likelihood,
and its LR statistic is 2 x (unpenalised log-likelihood at that fit - the smaller model's
maximised log-likelihood). Why: with 63 columns (42 of them one-hots, some with a handful of
clients) on 190-1,100 rows, plain ML often does not exist (a category with no event: separation,
gamma -> -inf) and where it does the LR statistic of so many parameters on so few events is
inflated beyond its chi-square reference. The light penalty keeps every fit finite and can only
lower the statistic (the likelihood at a penalised fit is at most the maximum), so the test stays
on the conservative side; on standardised numeric columns it moves a coefficient by about 0.5 /
(n p(1-p)), under 1% at n = 400. The *returned* revision is the CV-tuned one.

A LightGBM base has no columns a revision could be added to in closed form: there the candidates
are 1-3 and the closed test's full model is the logistic recalibration (said in ``why``).

The returned model scores with the existing numpy scorer unchanged (kind "updated", the base's kind
in ``params["base_kind"]``):
- as-is and the recalibrations keep the base's tables and change only Platt's a and b
  (a' = beta a, b' = alpha + beta b);
- a revision of a linear base is a linear model, of an additive (spline) base an additive model,
  whose tables are beta a (base terms) + gamma (a straight line per column: the scorer adds an
  additive column's coefficient to its shape function), Platt a' = 1, b' = 0. Contributions stay
  exact (they are the terms of those tables).

Each client's uncertainty (``models.building.uncertainty.attach_uncertainty`` calls
``attach_update_uncertainty`` for kind "updated"): the update is repeated on cluster-bootstrap
samples of the new data (counsellors), each replicate paired with one of the base's own refits
when the base carries them (so the interval holds both the base's and the update's uncertainty),
with the revision's penalty held fixed; the normal approximation of the same fit from
``normal_from`` rows on. As-is keeps the base's refits. It needs the base, which the updated
model keeps in memory only (not saved): call it on the model ``update_model`` returned.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import chi2
from sklearn.model_selection import StratifiedGroupKFold

from models.building.estimators import (
    RAW_COLUMNS,
    RIDGE_GRID,
    RIDGE_INNER_SPLITS,
    auto_repeats,
    column_scale,
    tuning_rows,
)
from models.building.newton import log_likelihood, penalised_logistic
from models.building.uncertainty import (
    REFIT_UPDATE,
    UPDATE_STATE_LOST,
    Problem,
    newton_refit,
    normal_draws,
)
from models.scoring.scorer import ScoringModel, sigmoid

AS_IS = "as-is"
RITL = "recalibration in the large"
LOGISTIC = "logistic recalibration"
REVISION = "revision"
METHODS = (AS_IS, RITL, LOGISTIC, REVISION)
# The revision's ridge penalty in the closed test (see the module docstring): lam = 0.5.
TEST_PENALTY = 0.5


@dataclass
class UpdateResult:
    """The updated model, the method closed testing chose, the tests it ran (compared methods,
    LR statistic, df, p-value, whether significant at ``alpha``) and one line saying why."""

    model: ScoringModel
    method: str
    tests: list[dict[str, Any]]
    why: str
    # Per candidate fitted: its log-likelihood on the new data and its fitted update parameters.
    fits: dict[str, dict[str, Any]] = field(default_factory=dict)


def base_log_odds(base: ScoringModel, X: np.ndarray) -> np.ndarray:
    """m: the base's calibrated log-odds."""
    return base.platt_a * base.margin(X) + base.platt_b


def raw_weights(model: ScoringModel) -> tuple[np.ndarray, float]:
    """(w, c) with margin = c + raw_basis(X) @ w: a linear or additive model's raw log-odds as
    weights on ``ScoringModel.raw_basis`` (the form the uncertainty refits are kept in)."""
    if model.linear is not None:
        lin = model.linear
        return lin["coef"] / lin["scale"], model._intercept()
    add = model.additive
    parts = [np.asarray(add["coef"], dtype=float)]
    c = float(add["intercept"])
    for k, v in zip(add["knots"], add["values"], strict=True):
        dk = np.diff(k)
        parts.append(np.divide(np.diff(v), dk, out=np.zeros(len(dk)), where=dk > 0))
        c += float(v[0])
    return np.concatenate(parts), c


def _imputed(base: ScoringModel, X: np.ndarray) -> np.ndarray:
    table = base.linear if base.linear is not None else base.additive
    return np.where(np.isnan(X), table["median"], X)


def _z_scaling(Xi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and divisor of the revision's columns (``RAW_COLUMNS``), the ridge's scaling."""
    return Xi.mean(axis=0)[RAW_COLUMNS], column_scale(Xi)[RAW_COLUMNS]


# ---------------------------------------------------------------- fits
def _glm(
    D: np.ndarray,
    y: np.ndarray,
    offset: np.ndarray,
    pen: np.ndarray,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """Penalised logistic regression: offset + D theta, penalty 1/2 sum(pen theta^2)."""
    return penalised_logistic(D, y, offset=offset, pen=pen, start=start)


def _rank(D: np.ndarray) -> int:
    return int(np.linalg.matrix_rank(D))


def _revision_cv(
    m: np.ndarray,
    Xi: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    seed: int,
    start: np.ndarray,
) -> tuple[float, float]:
    """C of the revision's ridge by inner grouped CV log loss over ``RIDGE_GRID`` (the ridge's
    folds and repeats; Z scaled on each training fold; C ascending, warm-started)."""
    rows = tuning_rows(y, seed)
    mt, Xt, yt, gt = m[rows], Xi[rows], y[rows], groups[rows]
    repeats = auto_repeats(len(yt))
    losses = np.zeros(len(RIDGE_GRID))
    for rep in range(repeats):
        inner = StratifiedGroupKFold(
            n_splits=RIDGE_INNER_SPLITS, shuffle=True, random_state=seed + rep
        )
        for tr, va in inner.split(Xt, yt, gt):
            mu, sd = _z_scaling(Xt[tr])
            Ztr = (Xt[tr][:, RAW_COLUMNS] - mu) / sd
            Zva = (Xt[va][:, RAW_COLUMNS] - mu) / sd
            Dtr = np.hstack([np.ones((len(tr), 1)), mt[tr, None], Ztr])
            Dva = np.hstack([np.ones((len(va), 1)), mt[va, None], Zva])
            theta = np.concatenate([start, np.zeros(Ztr.shape[1])])
            for i, C in enumerate(RIDGE_GRID):
                pen = np.concatenate([[0.0, 0.0], np.full(Ztr.shape[1], 1.0 / C)])
                theta = _glm(Dtr, yt[tr], np.zeros(len(tr)), pen, theta)
                losses[i] -= log_likelihood(yt[va], Dva @ theta) / len(yt) / repeats
    best = int(np.argmin(losses))
    return float(RIDGE_GRID[best]), float(losses[best])


# ---------------------------------------------------------------- the update
def update_model(
    base: ScoringModel,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    seed: int,
    alpha: float = 0.05,
    base_name: str | None = None,
) -> UpdateResult:
    """Update ``base`` on the new rows (X, y, counsellor ``groups``): the four candidates, the
    closed test at level ``alpha``, the chosen one as a ScoringModel of kind "updated" (see the
    module docstring). ``seed`` sets the inner folds of the revision's penalty."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _update(base, X, y, groups, seed, alpha, base_name)


def cluster_dispersion(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> float:
    """How much more the residuals vary between clusters (counsellors) than independent clients
    would: sum over clusters of (sum of y - p)^2 over the sum of p(1 - p), at least 1. The
    likelihood-ratio statistics of the closed test are divided by it (quasi-likelihood, McCullagh
    & Nelder 1989, 4.5). Why: clients of one counsellor share that counsellor's effect, so the
    plain statistic ran above its chi-square reference (about 64 on 59 df where the smaller model
    was true), and the revision won on data from the base model's own population (p = 0.016 on
    539 SYNTHETIC clients of the same world)."""
    r = np.asarray(y, dtype=float) - p
    v = p * (1 - p)
    _, idx = np.unique(np.asarray(groups), return_inverse=True)
    num = np.sum(np.bincount(idx, weights=r) ** 2)
    den = np.sum(v)
    return float(max(1.0, num / den)) if den > 0 else 1.0


def _update(base, X, y, groups, seed, alpha, base_name) -> UpdateResult:
    y = np.asarray(y, dtype=float)
    n = len(y)
    if n == 0 or y.min() == y.max():
        raise ValueError("updating a model needs new rows with both outcomes")
    m = base_log_odds(base, X)
    one = np.ones((n, 1))
    zero = np.zeros(n)
    revisable = base.booster is None

    fits: dict[str, dict[str, Any]] = {AS_IS: {"loglik": log_likelihood(y, m)}}
    (a1,) = _glm(one, y, m, np.zeros(1))
    fits[RITL] = {"loglik": log_likelihood(y, a1 + m), "alpha": float(a1), "beta": 1.0}
    D2 = np.hstack([one, m[:, None]])
    a2, b2 = _glm(D2, y, zero, np.zeros(2), np.array([a1, 1.0]))
    fits[LOGISTIC] = {
        "loglik": log_likelihood(y, a2 + b2 * m),
        "alpha": float(a2),
        "beta": float(b2),
    }
    rank = {AS_IS: 0, RITL: 1, LOGISTIC: _rank(D2)}

    if revisable:
        Xi = _imputed(base, X)
        mu, sd = _z_scaling(Xi)
        Z = (Xi[:, RAW_COLUMNS] - mu) / sd
        D = np.hstack([D2, Z])
        pen = np.concatenate([[0.0, 0.0], np.full(Z.shape[1], TEST_PENALTY)])
        theta = _glm(D, y, zero, pen, np.concatenate([[a2, b2], np.zeros(Z.shape[1])]))
        rank[REVISION] = _rank(D)
        fits[REVISION] = {"loglik": log_likelihood(y, D @ theta), "penalty": TEST_PENALTY}
        full = REVISION
    else:
        full = LOGISTIC

    eta_full = D @ theta if revisable else a2 + b2 * m
    dispersion = cluster_dispersion(y, sigmoid(eta_full), groups)
    tests: list[dict[str, Any]] = []
    method = full
    for smaller in (AS_IS, RITL, LOGISTIC):
        if smaller == full:
            break
        lr = max(0.0, 2.0 * (fits[full]["loglik"] - fits[smaller]["loglik"])) / dispersion
        df = rank[full] - rank[smaller]
        p = float(chi2.sf(lr, df)) if df > 0 else 1.0
        tests.append(
            {
                "compared": f"{full} vs {smaller}",
                "lr": round(lr, 4),
                "df": int(df),
                "p": p,
                "dispersion": round(dispersion, 3),
                "significant": bool(p < alpha),
            }
        )
        if p >= alpha:
            method = smaller
            break

    described = base_name or str(base.params.get("loaded_from") or f"a {base.kind} model")
    state = _UpdateState(base=base, method=method)
    if method == AS_IS:
        model = _recalibrated(base, 0.0, 1.0)
    elif method == RITL:
        model = _recalibrated(base, fits[RITL]["alpha"], 1.0)
        state.alpha = fits[RITL]["alpha"]
    elif method == LOGISTIC:
        model = _recalibrated(base, fits[LOGISTIC]["alpha"], fits[LOGISTIC]["beta"])
        state.alpha, state.beta = fits[LOGISTIC]["alpha"], fits[LOGISTIC]["beta"]
    else:
        C, cv_loss = _revision_cv(m, Xi, y, groups, seed, np.array([a2, b2]))
        pen = np.concatenate([[0.0, 0.0], np.full(Z.shape[1], 1.0 / C)])
        theta = _glm(D, y, zero, pen, theta)
        fits[REVISION].update(
            C=C,
            inner_cv_log_loss=round(cv_loss, 6),
            alpha=float(theta[0]),
            beta=float(theta[1]),
            loglik_tuned=log_likelihood(y, D @ theta),
            gamma=theta[2:],
            z_mean=mu,
            z_scale=sd,
        )
        model = revised(base, theta[0], theta[1], theta[2:], mu, sd)
        state.alpha, state.beta, state.gamma = float(theta[0]), float(theta[1]), theta[2:]
        state.lam, state.z_mean, state.z_scale = 1.0 / C, mu, sd

    why = _why(method, tests, alpha, revisable, n)
    model.kind = "updated"
    model.params = {
        "base_kind": base.kind,
        "base": described,
        "base_params": json.dumps(_short(base.params), default=str),
        "update_method": method,
        "update_alpha": round(state.alpha, 6),
        "update_beta": round(state.beta, 6),
        "update_tests": json.dumps(tests),
        "update_why": why,
        "update_n": n,
    }
    if method == REVISION:
        model.params.update(
            C=fits[REVISION]["C"], inner_cv_log_loss=fits[REVISION]["inner_cv_log_loss"]
        )
    model.__dict__["_update_state"] = state
    # how attach_uncertainty repeats this update on bootstrap samples (it reads this entry, so
    # the uncertainty module needs no import of this one, which imports it): the function, not
    # bound to this object, so a copy of the model refits itself
    model.__dict__[REFIT_UPDATE] = attach_update_uncertainty
    return UpdateResult(model=model, method=method, tests=tests, why=why, fits=fits)


def _short(params: dict[str, Any]) -> dict[str, Any]:
    """The base's own hyper-parameters, without a previous update's long entries."""
    return {k: v for k, v in params.items() if not k.startswith(("update_", "base_"))}


def _why(method: str, tests: list[dict], alpha: float, revisable: bool, n: int) -> str:
    said = "; ".join(
        f"{t['compared']}: LR {t['lr']:.2f} on {t['df']} df, p = {t['p']:.3g}" for t in tests
    )
    lead = {
        AS_IS: "the new data do not contradict the existing model",
        RITL: "the existing model ranks well but its overall risk is off",
        LOGISTIC: "the existing model's risks need a new intercept and slope",
        REVISION: "the predictors' effects differ on the new data",
    }[method]
    tail = "" if revisable else " (a LightGBM model can only be recalibrated: no revision tried)"
    return f"{method}: {lead} (closed test at level {alpha} on {n} clients; {said}){tail}"


def _recalibrated(base: ScoringModel, a: float, b: float) -> ScoringModel:
    """The base's tables with calibrated log-odds alpha + beta m: Platt a' = beta a,
    b' = alpha + beta b."""
    return dataclasses.replace(
        base,
        params=dict(base.params),
        platt_a=float(b * base.platt_a),
        platt_b=float(a + b * base.platt_b),
        reference=copy.deepcopy(base.reference),
        uncertainty=None,
    )


def revised(
    base: ScoringModel,
    a: float,
    b: float,
    gamma: np.ndarray,
    z_mean: np.ndarray,
    z_scale: np.ndarray,
) -> ScoringModel:
    """The base's tables turned into logit p = a + b m + Z gamma (Z: the ``RAW_COLUMNS`` of the
    base-imputed record, (x - z_mean) / z_scale), exactly, as tables of the same representation
    with Platt a' = 1, b' = 0."""
    a0, b0 = base.platt_a, base.platt_b
    g = np.zeros(len(RAW_COLUMNS))
    g[RAW_COLUMNS] = gamma / z_scale
    shift = float(np.sum(gamma * z_mean / z_scale))
    if base.linear is not None:
        lin = base.linear
        coef = b * a0 * lin["coef"] + g * lin["scale"]
        intercept = a + b * (a0 * float(lin["intercept"]) + b0) - shift
        intercept += float(np.sum(g * lin["mean"]))
        tables = {**lin, "coef": coef, "intercept": np.array(intercept)}
        linear, additive = tables, None
    else:
        add = base.additive
        additive = {
            **add,
            "coef": b * a0 * np.asarray(add["coef"]) + g,
            "intercept": float(a + b * (a0 * float(add["intercept"]) + b0) - shift),
            "spline_cols": list(add["spline_cols"]),
            "knots": list(add["knots"]),
            "values": [b * a0 * np.asarray(v) for v in add["values"]],
        }
        linear = None
    return dataclasses.replace(
        base,
        params=dict(base.params),
        platt_a=1.0,
        platt_b=0.0,
        linear=linear,
        additive=additive,
        booster=None,
        reference=copy.deepcopy(base.reference),
        uncertainty=None,
    )


# ---------------------------------------------------------------- uncertainty
@dataclass
class _UpdateState:
    """What refitting the update needs; kept on the updated model in memory (not saved)."""

    base: ScoringModel
    method: str
    alpha: float = 0.0
    beta: float = 1.0
    gamma: np.ndarray | None = None
    lam: float = 0.0
    z_mean: np.ndarray | None = None
    z_scale: np.ndarray | None = None


def attach_update_uncertainty(
    model: ScoringModel,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    seed: int,
    normal_from: int,
    B: int,
) -> dict[str, Any] | None:
    """Refits of an updated model (kind "updated", fitted by ``update_model`` on exactly X, y)
    stored on it as weights on its ``raw_basis``, like every other kind's: see the module
    docstring. None for a LightGBM base (no interval), or as-is on a base without refits."""
    state: _UpdateState | None = model.__dict__.get("_update_state")
    if state is None:
        raise ValueError(UPDATE_STATE_LOST)
    base = state.base
    if base.booster is not None:
        model.uncertainty = None
        return None
    if state.method == AS_IS:
        model.uncertainty = copy.deepcopy(base.uncertainty)
        if base.uncertainty is None:
            return None
        return {
            "method": f"{base.uncertainty['method']} of the base model (used as-is)",
            "B": int(base.uncertainty["B"]),
        }

    y = np.asarray(y, dtype=float)
    n = len(y)
    a0, b0 = base.platt_a, base.platt_b
    if base.uncertainty is not None:
        W0, c0 = base.uncertainty["W"], base.uncertainty["c"]
    else:
        w, c = raw_weights(base)
        W0, c0 = w[None, :], np.array([c])
    M0 = a0 * (base.raw_basis(X) @ W0.T + c0) + b0  # n x B0: each base refit's log-odds
    m = base_log_odds(base, X)

    one = np.ones((n, 1))
    if state.method == REVISION:
        Xi = _imputed(base, X)
        Z = (Xi[:, RAW_COLUMNS] - state.z_mean) / state.z_scale
        basis = np.hstack([m[:, None], Z])
        Q = np.eye(basis.shape[1])
        Q[0, 0] = 0.0
        theta = np.concatenate([[state.alpha, state.beta], state.gamma])
        lam = state.lam
    elif state.method == LOGISTIC:
        basis, Q, theta, lam = (
            m[:, None],
            np.zeros((1, 1)),
            np.array([state.alpha, state.beta]),
            0.0,
        )
    else:  # recalibration in the large: alpha only, m an offset
        basis, Q, theta, lam = np.zeros((n, 0)), np.zeros((0, 0)), np.array([state.alpha]), 0.0
    pb = Problem(
        Z=basis,
        Q=Q,
        lam=lam,
        mu=None,
        bounds=[(None, None)] * len(theta),
        theta=theta,
        shift=np.zeros(0),
        div=np.zeros(0),
        index=np.zeros(0, dtype=int),
        n_raw=0,
    )
    # RITL's design has no column for m: it enters as an offset, handled by shifting y's fit.
    offset_only = state.method == RITL

    if n < normal_from:
        how = "cluster bootstrap of the update"
        rng = np.random.default_rng(seed)
        members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
        thetas, which = [], []
        while len(thetas) < B:
            pick = rng.integers(len(members), size=len(members))
            rows = np.concatenate([members[i] for i in pick])
            yb = y[rows]
            if yb.min() == yb.max():
                continue
            j = len(thetas) % M0.shape[1]
            mb = M0[rows, j]
            if offset_only:
                thetas.append(_glm(one[rows], yb, mb, np.zeros(1), theta))
            else:
                Zb = np.hstack([mb[:, None], basis[rows, 1:]])
                thetas.append(newton_refit(pb, Zb, yb))
            which.append(j)
        thetas = np.array(thetas)
    else:
        how = "normal approximation of the update"
        if offset_only:
            p = sigmoid(theta[0] + m)
            thetas = theta + np.random.default_rng(seed).standard_normal((B, 1)) / np.sqrt(
                np.sum(p * (1 - p))
            )
        else:
            thetas = normal_draws(pb, B, seed)
        which = [b % M0.shape[1] for b in range(B)]

    which = np.asarray(which)
    al = thetas[:, 0]
    be = np.ones(len(thetas)) if offset_only else thetas[:, 1]
    W = (be * a0)[:, None] * W0[which]
    c = al + be * (a0 * c0[which] + b0)
    if state.method == REVISION:
        gam = thetas[:, 2:] / state.z_scale
        W[:, np.flatnonzero(RAW_COLUMNS)] += gam
        c -= gam @ state.z_mean
    else:  # stored in the model's raw margin units: calibrated = platt_a * margin + platt_b
        if abs(model.platt_a) < 1e-8:
            model.uncertainty = None
            return None
        W /= model.platt_a
        c = (c - model.platt_b) / model.platt_a
    if base.uncertainty is not None:
        how += f", each replicate paired with one of the base model's {W0.shape[0]} refits"
    model.uncertainty = {"method": how, "B": int(B), "W": W, "c": c}
    return {"method": how, "B": int(B)}
