"""One penalised logistic regression by damped Newton, for the small designs fitted many times.

    minimise  sum of log losses of (offset + D theta)  +  1/2 sum(pen * (theta - centre)^2)

``D`` carries its own intercept column where one is wanted (its ``pen`` entry 0). Used by the
anchored candidate (``models.building.estimators.newton_ridge``: a ridge centred on t x a
published prior) and by model updating (``models.building.update``: recalibration with the old
model's log-odds as offset, and the revision). Why Newton and not L-BFGS-B: the objective is
smooth and strictly convex with 2-65 columns, so a handful of Newton steps reach machine precision
(3-6 when warm-started along a penalty path) where L-BFGS-B took dozens of iterations: the anchored
grid at n = 190 went from 8.6 s to 1.5 s per tuned fit.
"""

from __future__ import annotations

import numpy as np

from models.scoring.scorer import sigmoid


def log_likelihood(y: np.ndarray, eta: np.ndarray) -> float:
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def penalised_logistic(
    D: np.ndarray,
    y: np.ndarray,
    offset: np.ndarray | None = None,
    pen: np.ndarray | None = None,
    start: np.ndarray | None = None,
    centre: np.ndarray | None = None,
    max_iter: int = 100,
) -> np.ndarray:
    """theta minimising the objective above, from ``start`` (default zeros), with step halving."""
    n, k = D.shape
    offset = np.zeros(n) if offset is None else offset
    pen = np.zeros(k) if pen is None else np.asarray(pen, dtype=float)
    centre = np.zeros(k) if centre is None else np.asarray(centre, dtype=float)
    theta = np.zeros(k) if start is None else np.asarray(start, dtype=float).copy()

    ridge = np.diag(pen) + 1e-10 * np.eye(k)

    def objective(t: np.ndarray) -> tuple[float, np.ndarray]:
        """The objective at t, and the linear predictor it was computed from (reused by the
        next Newton step: the accepted candidate's eta is the step's eta)."""
        d = t - centre
        eta = offset + D @ t
        return -log_likelihood(y, eta) + 0.5 * float(np.sum(pen * d * d)), eta

    f, eta = objective(theta)
    for _ in range(max_iter):
        p = sigmoid(eta)
        w = p * (1.0 - p)
        grad = D.T @ (p - y) + pen * (theta - centre)
        H = (D.T * w) @ D + ridge
        step = np.linalg.solve(H, grad)
        t = 1.0
        while True:
            cand = theta - t * step
            fc, eta_c = objective(cand)
            if fc <= f + 1e-12 or t < 1e-10:
                break
            t /= 2.0
        done = abs(f - fc) < 1e-12 * max(1.0, abs(f)) or np.max(np.abs(t * step)) < 1e-10
        theta, f, eta = cand, min(f, fc), eta_c
        if done:
            break
    return theta
