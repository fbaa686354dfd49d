"""Performance measures for a binary risk model, as TRIPOD+AI asks for them.

Why hand-written rather than sklearn calls: ``bootstrap_ci`` evaluates every measure a few hundred
times, and sklearn's input validation dominates at that scale. The core here works on plain float
arrays (y in {0, 1}, p in (0, 1)); the tests pin the results to sklearn's where both exist.

Conventions shared by every function:
- ``y`` is the observed label (1 = low early alliance), ``p`` the predicted probability.
- Probabilities are clipped to [1e-6, 1 - 1e-6] before any logit or log (log loss, calibration
  fits), so a hard 0 or 1 gets a large but finite penalty instead of an infinite one. Ranking
  measures, Brier and ECE use p as given, so they agree exactly with sklearn.
- A measure that is undefined on the data (AUROC with one class, a calibration fit that does not
  converge) is NaN rather than an exception, so a report can still be produced.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from scipy.stats import rankdata

if TYPE_CHECKING:
    from features.settings import BandConfig

EPS = 1e-6
ECE_BINS = 10
# Thresholds a clinician might plausibly act at: 5% to 60% risk in steps of 1 point.
DEFAULT_THRESHOLDS = np.round(np.arange(0.05, 0.6001, 0.01), 2)
METRIC_NAMES: tuple[str, ...] = (
    "auroc",
    "auprc",
    "brier",
    "log_loss",
    "cal_intercept",
    "cal_slope",
    "ece",
    "oe_ratio",
    "prevalence",
    "n",
)


def _as_arrays(y: Sequence[float] | np.ndarray, p: Sequence[float] | np.ndarray):
    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y and p differ in length: {y.size} vs {p.size}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y must contain only 0 and 1")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p must be probabilities in [0, 1] without NaN")
    return y, p


def _logit(p: np.ndarray) -> np.ndarray:
    return logit(np.clip(p, EPS, 1 - EPS))


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    """Mann-Whitney form: ties count one half, exactly as sklearn's trapezoidal ROC area."""
    n1 = y.sum()
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _auprc(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision (step-wise, no interpolation), sklearn's definition: the area under the PR
    curve by the trapezoid overstates it for rare outcomes."""
    n1 = y.sum()
    if n1 == 0:
        return float("nan")
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    cut = np.r_[np.flatnonzero(np.diff(ps)), ps.size - 1]  # last row of each tied block
    tps = np.cumsum(ys)[cut]
    precision = tps / (cut + 1)
    recall = tps / n1
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def _cal_slope(y: np.ndarray, lp: np.ndarray, max_iter: int = 50) -> float:
    """Slope of an unpenalised logistic regression of y on logit(p) (2-parameter Newton).

    Slope < 1 means predictions are too extreme (overfitting), > 1 too timid."""
    x = np.column_stack([np.ones_like(lp), lp])
    beta = np.array([0.0, 1.0])
    for _ in range(max_iter):
        mu = expit(x @ beta)
        w = mu * (1 - mu)
        hess = (x * w[:, None]).T @ x
        try:
            step = np.linalg.solve(hess, x.T @ (y - mu))
        except np.linalg.LinAlgError:
            return float("nan")
        beta = beta + step
        if not np.isfinite(beta).all() or np.abs(beta).max() > 1e6:
            return float("nan")  # separation: the slope is unbounded
        if np.abs(step).max() < 1e-10:
            return float(beta[1])
    return float("nan")


def _cal_intercept(y: np.ndarray, lp: np.ndarray, max_iter: int = 50) -> float:
    """Calibration-in-the-large: intercept a in logit P(y=1) = a + logit(p), slope fixed at 1.

    Answers "are predictions too high or too low on average?" apart from their spread; a > 0 means
    the model under-predicts. One-parameter Newton on the offset model."""
    if y.sum() in (0, y.size):
        return float("nan")
    a = 0.0
    for _ in range(max_iter):
        mu = expit(lp + a)
        step = (y - mu).sum() / (mu * (1 - mu)).sum()
        a += step
        if not np.isfinite(a):
            return float("nan")
        if abs(step) < 1e-10:
            return float(a)
    return float("nan")


def _ece(y: np.ndarray, p: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error over equal-frequency bins.

    Binning: rows sorted by p and cut into ``n_bins`` groups of (near) equal size (sizes differ by at
    most one; tied p may straddle a cut). ECE = sum over bins of (bin size / n) x |mean y - mean p|.
    Equal-frequency rather than equal-width because risks pile up at the low end, which would leave
    the upper equal-width bins nearly empty and noisy."""
    n = y.size
    if n == 0:
        return float("nan")
    k = min(n_bins, n)
    order = np.argsort(p, kind="stable")
    bin_id = (np.arange(n) * k) // n
    sum_y = np.bincount(bin_id, weights=y[order], minlength=k)
    sum_p = np.bincount(bin_id, weights=p[order], minlength=k)
    return float(np.abs(sum_y - sum_p).sum() / n)


def _oe_ratio(y: np.ndarray, p: np.ndarray) -> float:
    """Observed / expected events: sum(y) / sum(p), calibration-in-the-large as a ratio.

    1.0 = as many low alliances as the model expected; 1.25 = a quarter more than expected (the
    model under-predicts). A ratio is what a service reads directly ("25% more than predicted"),
    where ``cal_intercept`` needs a log-odds reading."""
    expected = float(p.sum())
    return float(y.sum() / expected) if expected > 0 else float("nan")


def _metrics(y: np.ndarray, p: np.ndarray, lp: np.ndarray) -> dict[str, float]:
    """All point metrics on already-validated arrays (lp = logit of the clipped p)."""
    return {
        "auroc": _auroc(y, p),
        "auprc": _auprc(y, p),
        "brier": float(np.mean((p - y) ** 2)),
        "log_loss": float(row_log_loss(y, p).mean()),
        "cal_intercept": _cal_intercept(y, lp),
        "cal_slope": _cal_slope(y, lp),
        "ece": _ece(y, p),
        "oe_ratio": _oe_ratio(y, p),
        "prevalence": float(y.mean()) if y.size else float("nan"),
        "n": float(y.size),
    }


def point_metrics(
    y: Sequence[float] | np.ndarray, p: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """Discrimination, calibration and overall accuracy in one dict.

    Keys: auroc, auprc (average precision), brier, log_loss, cal_intercept (calibration-in-the-large,
    slope fixed at 1), cal_slope, ece (10 equal-frequency bins), oe_ratio (observed / expected
    events), prevalence, n. All floats."""
    y, p = _as_arrays(y, p)
    return _metrics(y, p, _logit(p))


def _cluster_sampler(groups: np.ndarray, rng: np.random.Generator):
    """Returns a function drawing row indices for one cluster bootstrap resample.

    Clients of one counsellor share that counsellor's effect, so rows are not independent; resampling
    whole counsellors keeps that correlation inside each resample and gives honest (wider) CIs."""
    codes = pd.factorize(pd.Series(groups).astype("string").fillna("<missing>"))[0]
    rows = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    n_groups = counts.size

    def draw() -> np.ndarray:
        sel = rng.integers(0, n_groups, n_groups)
        lengths = counts[sel]
        ends = np.cumsum(lengths)
        offsets = np.repeat(starts[sel] - (ends - lengths), lengths) + np.arange(ends[-1])
        return rows[offsets]

    return draw


def _multiplicities(
    n: int, groups: np.ndarray | None, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """How many times each row is drawn in each of ``n_boot`` resamples (n_boot x n, int32).

    The draws are exactly those of ``_cluster_sampler`` (or of ``rng.integers(0, n, n)`` without
    groups), in the same order from the same generator, so a resample holds the same rows as the
    row-index form would; only how the measures are computed on it changes (``_weighted_metrics``)."""
    if groups is None:
        return np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)])
    codes = pd.factorize(pd.Series(groups).astype("string").fillna("<missing>"))[0]
    n_groups = int(codes.max()) + 1 if codes.size else 0
    picks = np.stack(
        [
            np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
            for _ in range(n_boot)
        ]
    )
    return picks[:, codes].astype(np.int32)


def _newton_offset(W: np.ndarray, Wy: np.ndarray, lp: np.ndarray, max_iter: int = 50) -> np.ndarray:
    """``_cal_intercept`` for every row of W (weights, resamples x rows) at once."""
    out = np.full(W.shape[0], np.nan)
    a = np.zeros(W.shape[0])
    active = np.arange(W.shape[0])
    sum_y = Wy.sum(axis=1)
    for _ in range(max_iter):
        if not active.size:
            break
        w = W[active]
        mu = expit(lp[None, :] + a[active, None])
        step = (sum_y[active] - (w * mu).sum(axis=1)) / (w * (mu * (1 - mu))).sum(axis=1)
        a[active] += step
        bad = ~np.isfinite(a[active])
        done = ~bad & (np.abs(step) < 1e-10)
        out[active[done]] = a[active[done]]
        active = active[~(bad | done)]
    return out


def _newton_slope(W: np.ndarray, Wy: np.ndarray, lp: np.ndarray, max_iter: int = 50) -> np.ndarray:
    """``_cal_slope`` (2-parameter Newton from (0, 1)) for every row of W at once."""
    B = W.shape[0]
    out = np.full(B, np.nan)
    beta = np.tile([0.0, 1.0], (B, 1))
    active = np.arange(B)
    for _ in range(max_iter):
        if not active.size:
            break
        w, wy, b = W[active], Wy[active], beta[active]
        mu = expit(b[:, :1] + b[:, 1:] * lp[None, :])
        r = wy - w * mu
        g0, g1 = r.sum(axis=1), r @ lp
        h = w * (mu * (1 - mu))
        h00, h01, h11 = h.sum(axis=1), h @ lp, h @ (lp * lp)
        det = h00 * h11 - h01 * h01
        with np.errstate(all="ignore"):
            s0 = (h11 * g0 - h01 * g1) / det
            s1 = (h00 * g1 - h01 * g0) / det
        b = b + np.column_stack([s0, s1])
        beta[active] = b
        bad = (det == 0) | ~np.isfinite(b).all(axis=1) | (np.abs(b).max(axis=1) > 1e6)
        done = ~bad & (np.maximum(np.abs(s0), np.abs(s1)) < 1e-10)
        out[active[done]] = b[done, 1]
        active = active[~(bad | done)]
    return out


def _weighted_metrics(
    ys: np.ndarray, ps: np.ndarray, lps: np.ndarray, starts: np.ndarray, W: np.ndarray
) -> np.ndarray:
    """Every measure of ``_metrics`` (same order) on resamples given as row weights.

    ys, ps, lps: labels, probabilities and their logits sorted by p (ascending, stable); starts:
    the first position of each run of tied p; W: resamples x rows, how many times each (sorted)
    row is in the resample. Same definitions as the single-sample functions: AUROC by the
    Mann-Whitney sum with ties counted one half, average precision over tied blocks, ECE over
    equal-frequency bins of the resample's rows sorted by p (tied rows of different clients in
    the order of the data, where the row form kept the resample's order; only ECE can differ,
    and only when such a tie straddles a bin edge)."""
    W = W.astype(float)
    Wy = W * ys
    N = W.sum(axis=1)
    E = Wy.sum(axis=1)
    pc = np.clip(ps, EPS, 1 - EPS)
    ll_row = -(ys * np.log(pc) + (1 - ys) * np.log1p(-pc))
    b1 = np.add.reduceat(Wy, starts, axis=1)
    b0 = np.add.reduceat(W, starts, axis=1) - b1
    with np.errstate(all="ignore"):
        auroc = (b1 * (np.cumsum(b0, axis=1) - 0.5 * b0)).sum(axis=1) / (E * (N - E))
        tp = np.cumsum(b1[:, ::-1], axis=1)
        seen = np.cumsum((b0 + b1)[:, ::-1], axis=1)
        auprc = (b1[:, ::-1] / E[:, None] * np.where(seen > 0, tp / seen, 0.0)).sum(axis=1)
        expected = W @ ps
        oe = np.where(expected > 0, E / expected, np.nan)
    # ECE: bin b of a resample of N rows holds sorted positions [ceil(bN/k), ceil((b+1)N/k)).
    cw, cy, cp = np.cumsum(W, axis=1), np.cumsum(Wy, axis=1), np.cumsum(W * ps, axis=1)
    ece = np.empty(W.shape[0])
    for r in range(W.shape[0]):
        n = int(round(N[r]))
        k = min(ECE_BINS, n)
        x = -(-np.arange(k + 1) * n // k).astype(float)
        i = np.searchsorted(cw[r], x, side="right")
        j = np.minimum(i, len(ys) - 1)
        before = np.where(i > 0, cw[r][np.maximum(i - 1, 0)], 0.0)
        part = np.where(i < len(ys), x - before, 0.0)
        gy = np.where(i > 0, cy[r][np.maximum(i - 1, 0)], 0.0) + ys[j] * part
        gp = np.where(i > 0, cp[r][np.maximum(i - 1, 0)], 0.0) + ps[j] * part
        ece[r] = np.abs(np.diff(gy) - np.diff(gp)).sum() / n
    cols = {
        "auroc": auroc,
        "auprc": auprc,
        "brier": (W @ (ps - ys) ** 2) / N,
        "log_loss": (W @ ll_row) / N,
        "cal_intercept": _newton_offset(W, Wy, lps),
        "cal_slope": _newton_slope(W, Wy, lps),
        "ece": ece,
        "oe_ratio": oe,
        "prevalence": E / N,
        "n": N,
    }
    return np.column_stack([cols[k] for k in METRIC_NAMES])


# Resamples evaluated together by ``bootstrap_ci``: about 250,000 row weights per batch (2 MB per
# array), so a batch's temporaries stay in cache; 2,000,000 was no faster (55,000 rows, loaded).
BOOT_BATCH_CELLS = 250_000


def bootstrap_ci(
    y: Sequence[float] | np.ndarray,
    p: Sequence[float] | np.ndarray,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
    groups: Sequence | np.ndarray | None = None,
) -> dict[str, tuple[float, float, float]]:
    """Percentile bootstrap CI of every point metric: {name: (point, lo, hi)}.

    The point is the full-sample value, not the bootstrap mean. With ``groups`` (e.g. counsellor id
    per row) whole clusters are resampled, because clustered rows would otherwise make the CI too
    narrow. Resamples with a single class are skipped (AUROC and the calibration fits are undefined
    there); a warning is raised when more than half are skipped. A metric that is NaN in every kept
    resample gets NaN bounds. ECE is biased upward in resamples (noise always adds |error|), so its
    percentile interval can sit above the point estimate; read it as a spread, not a test.

    Vectorised (issue 10 item 8): a resample is a vector of row multiplicities (the same draws as
    the row-index form) and each batch of resamples is scored with matrix operations on the rows
    sorted once (``_weighted_metrics``), instead of re-sorting and re-fitting each resample's
    copy of the rows. 200 clustered resamples of 55,000 rows: 5.1-6.3 CPU s the old way, 3.1-3.5
    the vectorised one (same resamples; measured on the loaded 2-core machine, docs/benchmarks.md)."""
    y, p = _as_arrays(y, p)
    lp = _logit(p)
    point = _metrics(y, p, lp)
    rng = np.random.default_rng(seed)
    n = y.size
    if groups is not None:
        groups = np.asarray(groups, dtype=object).ravel()
        if groups.size != n:
            raise ValueError(f"groups has {groups.size} rows, y has {n}")
    mult = _multiplicities(n, groups, n_boot, rng)
    events = mult @ y
    keep = (events > 0) & (events < mult.sum(axis=1))
    mult = mult[keep]
    if len(mult) < n_boot / 2:
        warnings.warn(
            f"bootstrap kept only {len(mult)} of {n_boot} resamples (others had one class)",
            stacklevel=2,
        )
    order = np.argsort(p, kind="stable")
    ys, ps, lps = y[order], p[order], lp[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ps)) + 1] if n else np.zeros(0, dtype=int)
    step = max(1, BOOT_BATCH_CELLS // max(n, 1))
    parts = [
        _weighted_metrics(ys, ps, lps, starts, mult[i : i + step][:, order])
        for i in range(0, len(mult), step)
    ]
    boot = np.vstack(parts) if parts else np.empty((0, len(point)))
    out: dict[str, tuple[float, float, float]] = {}
    for j, name in enumerate(point):
        col = boot[:, j]
        col = col[np.isfinite(col)]
        if col.size == 0:
            lo = hi = float("nan")
        else:
            lo, hi = (float(v) for v in np.quantile(col, [alpha / 2, 1 - alpha / 2]))
        out[name] = (point[name], lo, hi)
    return out


def cluster_means(
    values: np.ndarray, groups: Sequence | np.ndarray, n_boot: int, seed: int
) -> np.ndarray:
    """Cluster-bootstrap replicates of the mean of ``values`` (one value per row): ``n_boot`` means.

    Whole groups are resampled, as in ``bootstrap_ci``; per-group sums make each replicate one
    multinomial draw over groups, so 1,000 replicates over 300,000 rows cost milliseconds."""
    values = np.asarray(values, dtype=float).ravel()
    codes = pd.factorize(
        pd.Series(np.asarray(groups, dtype=object)).astype("string").fillna("<missing>")
    )[0]
    sums = np.bincount(codes, weights=values)
    counts = np.bincount(codes).astype(float)
    rng = np.random.default_rng(seed)
    picks = rng.multinomial(counts.size, np.full(counts.size, 1 / counts.size), size=n_boot)
    return (picks @ sums) / (picks @ counts)


def row_log_loss(y: Sequence[float] | np.ndarray, p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per-row log loss (p clipped to [1e-6, 1 - 1e-6]); its mean is ``point_metrics``' log_loss.

    ``p`` may be 2-D (repeats x rows, out-of-fold predictions of repeated CV): the row's loss is then
    averaged over repeats, so its mean equals the mean over repeats of each repeat's log loss."""
    y = np.asarray(y, dtype=float).ravel()
    pc = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    loss = -(y * np.log(pc) + (1 - y) * np.log1p(-pc))
    return loss.mean(axis=0) if loss.ndim == 2 else loss


def paired_difference_ci(
    loss_a: np.ndarray,
    loss_b: np.ndarray,
    groups: Sequence | np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """Mean of loss_a - loss_b on the same rows with its cluster-bootstrap percentile CI.

    Paired: both models are scored on the same admissions, so the spread that the rows share
    (hard clients are hard for both) cancels and the CI is far narrower than the two separate
    ones; at n = 190 a difference of 0.01 in log loss can be told apart only this way."""
    d = np.asarray(loss_a, dtype=float) - np.asarray(loss_b, dtype=float)
    reps = cluster_means(d, groups, n_boot, seed)
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return float(d.mean()), float(lo), float(hi)


def repeated_bootstrap_ci(
    y: Sequence[float] | np.ndarray,
    P: np.ndarray,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
    groups: Sequence | np.ndarray | None = None,
) -> dict[str, tuple[float, float, float]]:
    """``bootstrap_ci`` for repeated cross-validation: P holds one out-of-fold prediction per repeat
    (repeats x rows). Each metric is the mean over repeats of that repeat's value, both for the point
    and within every resample (the same resampled groups for all repeats), so the CI reflects the
    clients' sampling rather than the luck of one fold assignment."""
    P = np.atleast_2d(np.asarray(P, dtype=float))
    if P.shape[0] == 1:
        return bootstrap_ci(y, P[0], n_boot=n_boot, seed=seed, alpha=alpha, groups=groups)
    y, _ = _as_arrays(y, P[0])
    for row in P[1:]:
        _as_arrays(y, row)
    LP = _logit(P)
    names = list(_metrics(y, P[0], LP[0]))

    def mean_metrics(idx: np.ndarray | None) -> np.ndarray:
        sel = slice(None) if idx is None else idx
        vals = np.array(
            [list(_metrics(y[sel], P[r][sel], LP[r][sel]).values()) for r in range(P.shape[0])]
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(vals, axis=0)

    point = mean_metrics(None)
    rng = np.random.default_rng(seed)
    draw = (
        _cluster_sampler(np.asarray(groups, dtype=object).ravel(), rng)
        if groups is not None
        else (lambda: rng.integers(0, y.size, y.size))
    )
    samples = []
    for _ in range(n_boot):
        idx = draw()
        events = y[idx].sum()
        if events == 0 or events == idx.size:
            continue
        samples.append(mean_metrics(idx))
    boot = np.array(samples, dtype=float).reshape(-1, len(names))
    out: dict[str, tuple[float, float, float]] = {}
    for j, name in enumerate(names):
        col = boot[:, j][np.isfinite(boot[:, j])]
        lo, hi = (
            (float("nan"), float("nan"))
            if col.size == 0
            else (float(v) for v in np.quantile(col, [alpha / 2, 1 - alpha / 2]))
        )
        out[name] = (float(point[j]), lo, hi)
    return out


def decision_curve(
    y: Sequence[float] | np.ndarray,
    p: Sequence[float] | np.ndarray,
    thresholds: Sequence[float] | np.ndarray = DEFAULT_THRESHOLDS,
) -> pd.DataFrame:
    """Net benefit (Vickers & Elkin 2006) of acting on p >= t, against acting on everyone or no one.

    NB = TP/n - FP/n x t/(1 - t): the threshold t encodes how many false alarms a clinician accepts
    per true case. Columns: threshold, net_benefit_model, net_benefit_all, net_benefit_none (= 0)."""
    y, p = _as_arrays(y, p)
    t = np.asarray(thresholds, dtype=float).ravel()
    if ((t <= 0) | (t >= 1)).any():
        raise ValueError("thresholds must lie strictly between 0 and 1")
    n = y.size
    odds = t / (1 - t)
    flagged = p[None, :] >= t[:, None]
    tp = (flagged & (y[None, :] == 1)).sum(axis=1)
    fp = flagged.sum(axis=1) - tp
    prev = y.mean()
    return pd.DataFrame(
        {
            "threshold": t,
            "net_benefit_model": tp / n - fp / n * odds,
            "net_benefit_all": prev - (1 - prev) * odds,
            "net_benefit_none": np.zeros_like(t),
        }
    )


SUBGROUP_METRICS = (
    "events",
    "prevalence",
    "auroc",
    "brier",
    "mean_predicted",
    "observed_rate",
    "cal_intercept",
)


def _level_labels(values: pd.Series) -> pd.Series:
    """Levels as strings, with missing values as their own visible level "missing"."""
    return values.astype("string").fillna("missing")


def subgroup_metrics(
    y: Sequence[float] | np.ndarray,
    p: Sequence[float] | np.ndarray,
    frame: pd.DataFrame,
    columns: list[str],
    min_count: int = 10,
) -> pd.DataFrame:
    """Performance per level of each column (fairness check), with small-cell suppression.

    ``frame`` is aligned with y and p by position. Suppression rule (as Epic seismometer's
    ``censor_min_count``): a level is suppressed when n < ``min_count`` or when it has fewer than
    ``min_count // 2`` clients with, or without, the outcome. Small cells both re-identify clients
    and give meaningless AUROC/calibration. A suppressed row keeps its n (numeric) but all other
    measures, including the event count, are NaN and ``suppressed`` is True.

    Columns: column, level, n, events, prevalence, auroc, brier, mean_predicted, observed_rate,
    cal_intercept, suppressed. Levels sorted as strings, "missing" last."""
    y, p = _as_arrays(y, p)
    if len(frame) != y.size:
        raise ValueError(f"frame has {len(frame)} rows, y has {y.size}")
    lp = _logit(p)
    min_class = min_count // 2
    rows = []
    for col in columns:
        labels = _level_labels(frame[col].reset_index(drop=True)).to_numpy(dtype=object)
        levels = sorted(set(labels) - {"missing"}) + (["missing"] if "missing" in labels else [])
        for level in levels:
            mask = labels == level
            yl, pl = y[mask], p[mask]
            n, events = int(mask.sum()), int(yl.sum())
            suppressed = n < min_count or min(events, n - events) < min_class
            row = {"column": col, "level": level, "n": n, "suppressed": suppressed}
            if suppressed:
                row |= dict.fromkeys(SUBGROUP_METRICS, float("nan"))
            else:
                row |= {
                    "events": float(events),
                    "prevalence": events / n,
                    "auroc": _auroc(yl, pl),
                    "brier": float(np.mean((pl - yl) ** 2)),
                    "mean_predicted": float(pl.mean()),
                    "observed_rate": events / n,
                    "cal_intercept": _cal_intercept(yl, lp[mask]),
                }
            rows.append(row)
    order = ["column", "level", "n", *SUBGROUP_METRICS, "suppressed"]
    return pd.DataFrame(rows, columns=order)


def _flag_stats(y: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    """Confusion-matrix rates for a yes/no flag; NaN where a denominator is empty."""

    def ratio(a: float, b: float) -> float:
        return a / b if b else float("nan")

    tp = float((flagged & (y == 1)).sum())
    fp = float((flagged & (y == 0)).sum())
    fn = float((~flagged & (y == 1)).sum())
    tn = float((~flagged & (y == 0)).sum())
    return {
        "fraction_flagged": ratio(tp + fp, y.size),
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
    }


def band_table(
    y: Sequence[float] | np.ndarray, p: Sequence[float] | np.ndarray, bands: BandConfig
) -> pd.DataFrame:
    """What the risk bands mean in practice: one row per band (low, moderate, high).

    Band columns: band, lower, upper, n, fraction, events, observed_rate, mean_predicted (clients
    whose p falls in [lower, upper)). Flag columns answer "what if everyone in this band or above is
    flagged?", i.e. p >= lower; for moderate and high that is each band boundary (moderate_from,
    high_from): flag_threshold, fraction_flagged, ppv, npv, sensitivity, specificity. The low row's
    flag is everyone (threshold 0), a reference point: PPV = prevalence, NPV undefined."""
    y, p = _as_arrays(y, p)
    level = bands.level(p)
    rows = []
    for k, (name, lower, upper) in enumerate(bands.edges()):
        in_band = (level == k) & (p >= lower)  # the band rule; NaN risks fall in no band
        n = int(in_band.sum())
        rows.append(
            {
                "band": name,
                "lower": lower,
                "upper": upper,
                "n": n,
                "fraction": n / y.size,
                "events": int(y[in_band].sum()),
                "observed_rate": float(y[in_band].mean()) if n else float("nan"),
                "mean_predicted": float(p[in_band].mean()) if n else float("nan"),
                "flag_threshold": lower,
                **_flag_stats(y, p >= lower),
            }
        )
    return pd.DataFrame(rows)


def _point(value: float | tuple[float, ...]) -> float:
    return float(value[0] if isinstance(value, tuple | list) else value)


def compare_to_oracle(
    model_metrics: dict[str, float | tuple[float, ...]],
    oracle_metrics: dict[str, float | tuple[float, ...]],
) -> dict[str, float]:
    """Gap model - oracle per shared metric (the oracle scores the simulator's true risk).

    On synthetic data the oracle is the best any model can do, so the gap says how much signal the
    model leaves on the table. Values may be floats or (point, lo, hi) tuples; points are compared.
    Sign: negative AUROC gap = model worse; positive Brier/log-loss gap = model worse."""
    return {
        name: _point(model_metrics[name]) - _point(oracle_metrics[name])
        for name in model_metrics
        if name in oracle_metrics and name != "n"
    }
