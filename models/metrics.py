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
    percentile interval can sit above the point estimate; read it as a spread, not a test."""
    y, p = _as_arrays(y, p)
    lp = _logit(p)
    point = _metrics(y, p, lp)
    rng = np.random.default_rng(seed)
    n = y.size
    if groups is not None:
        groups = np.asarray(groups, dtype=object).ravel()
        if groups.size != n:
            raise ValueError(f"groups has {groups.size} rows, y has {n}")
        draw = _cluster_sampler(groups, rng)
    else:

        def draw() -> np.ndarray:
            return rng.integers(0, n, n)

    samples = []
    for _ in range(n_boot):
        idx = draw()
        yb = y[idx]
        events = yb.sum()
        if events == 0 or events == yb.size:
            continue
        samples.append([v for v in _metrics(yb, p[idx], lp[idx]).values()])
    if len(samples) < n_boot / 2:
        warnings.warn(
            f"bootstrap kept only {len(samples)} of {n_boot} resamples (others had one class)",
            stacklevel=2,
        )
    boot = np.array(samples, dtype=float).reshape(-1, len(point))
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
    edges = [("low", 0.0, bands.moderate_from), ("moderate", bands.moderate_from, bands.high_from)]
    edges.append(("high", bands.high_from, 1.0))
    rows = []
    for name, lower, upper in edges:
        in_band = (p >= lower) & ((p < upper) | (name == "high"))
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
