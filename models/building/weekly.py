"""Fit and validate the weekly early-warning models (issue 19, items 2 and 3).

What is fitted (the scoring side and the maths: ``models.scoring.weekly``): for each week K in
(1, 2) and each target, (a) ``label``: the label itself (low alliance over weeks 1-3, this run's
definition) and (b) ``remaining``: low alliance in weeks K+1..3 (``build_labels(..., weeks=)``),
a stacked logistic model on the admission model's calibrated log-odds m and the item means of
both raters in weeks 1..K with missing indicators.

- Inputs for the training rows: the champion's OUT-OF-FOLD log-odds (``TrainResult.eval_P``,
  averaged over repeats in log-odds), so the stack does not learn the admission model's in-sample
  optimism. Under the held-out protocol (n >= train.holdout_from) those exist for the held-out
  clients only (4,000+), and the champion there is the model fitted without them, so the stack is
  fitted and validated on them.
- Rows: clients with at least one valid rating (either rater) in weeks 1..K: the update applies
  to them, the others keep their admission score. Target (b) also needs the client to be
  labelled on weeks K+1..3.
- Penalty: ridge on the standardised rating columns and the indicators, and on beta - 1 (the
  admission log-odds are calibrated, so the prior is "use them as they are"); beta >= 0 and every
  gamma <= 0 (a lower rating never lowers the risk) are bounds of the fit
  (``models.building.estimators.fit_penalised``). lam is tuned over ``LAMS`` by grouped 5-fold
  inner CV log loss, like the ridge's C (on at most ``TUNE_MAX_ROWS`` rows, like the candidates).
- Uncertainty (the updated risks' 95% intervals): with the final fit of every week and target,
  B draws of (alpha, beta, gamma, delta) from its Laplace approximation at the tuned lam
  (penalised Hessian X'WX + lam I on the fit's design, draws projected onto beta >= 0 and
  gamma <= 0), B = the admission model's number of refits (none when it has none). lam is held
  fixed (re-tuning per draw would cost the inner CV again), and the draws are conditional on the
  out-of-fold admission log-odds the stack was fitted on; the admission model's own uncertainty
  enters at scoring, where draw b meets the admission refit b (``models.scoring.weekly``).
- Validation: out-of-fold predictions of the whole procedure (tuning included) on the same
  grouped folds as the admission model's first repeat (``cv_splits``), AUROC / calibration slope
  / log loss with cluster-bootstrap CIs (``metrics.bootstrap_ci``), beside the admission risk on
  the same rows and outcome. The signal's sensitivity and false-alarm rate for (b)'s outcome use
  bands computed on the training folds only.
- Markers: expected-response bands (quantile ``BAND_QUANTILE`` of week-w ratings per bin of the
  admission log-odds), the reliable-change thresholds per rater and the discrepancy threshold
  (``features.instruments``; SD = the SD of the week-1 item means of that rater in these data).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from features.instruments import WAI_S_ALPHA, reliable_change, reliable_difference
from features.labels import RATERS, WEEKS, build_labels
from features.weekly import rating_tensor
from models.building import metrics as M
from models.building.estimators import fit_penalised, tuning_rows
from models.building.uncertainty import laplace_draws
from models.scoring.scorer import logit, sigmoid
from models.scoring.weekly import (
    MODEL_WEEKS,
    TARGETS,
    columns,
    rating_features,
    stacked_log_odds,
)
from models.scoring.weekly_spec import spec_from_json

LAMS = (0.1, 1.0, 3.0, 10.0, 30.0, 100.0)
INNER_SPLITS = 5
BAND_QUANTILE = 0.10  # the expected band's lower edge: the 10th percentile (OQ-style)
BAND_MAX_BINS = 5  # bins of admission risk (equal-frequency)
BAND_MIN_PER_BIN = 150  # rated clients per bin, so the 10th percentile rests on 15+ of them
MIN_CLASS = 20  # a target with fewer clients with (or without) the outcome is not fitted
REPORTED = ("auroc", "cal_slope", "cal_intercept", "log_loss", "brier", "prevalence", "n")


@dataclass
class WeeklyResult:
    """What ``fit_weekly`` found: the scorer's ``weekly`` dict (also set on the model) and the
    figures, per week K: ``figures[K][target]`` and ``figures[K]["admission_<target>"]`` ({metric:
    (point, lo, hi)}), ``figures[K]["signal"]`` (sensitivity, false_alarm_rate, ...),
    ``figures[K]["log_loss_difference"]`` ((a) - admission on the label, with its CI)."""

    spec: dict[str, Any]
    figures: dict[int, dict[str, Any]] = field(default_factory=dict)
    oof: pd.DataFrame | None = None  # admission_id, week, target, y, p, p_admission, signal
    seconds: float = 0.0


# --------------------------------------------------------------------------------------------
# One stacked model


def _design(m: np.ndarray, R: np.ndarray, week: int, typical: np.ndarray, sd: np.ndarray):
    D, miss = rating_features(R, week, typical)
    return np.column_stack([m, D / sd, miss])


def _fit(m, R, y, week, typical, sd, lam, draws: int = 0, seed: int = 0) -> dict[str, Any]:
    """One penalised fit; returns the stored form (gamma per rating point). ``draws`` > 0 adds
    ``draws``: that many draws of (alpha, beta, gamma, delta) from the fit's Laplace (normal)
    approximation at this lam, N(theta, (X'WX + lam I)^-1) with the intercept unpenalised, on the
    fit's own design, projected onto the bounds (``models.building.uncertainty.laplace_draws``,
    the admission model's posterior step)."""
    B = _design(m, R, week, typical, sd)
    q = 2 * week
    mu = np.zeros(B.shape[1])
    mu[0] = 1.0  # beta shrinks towards 1 (the admission log-odds as they are)
    bounds = [(None, None), (0.0, None)] + [(None, 0.0)] * q + [(None, None)] * q
    theta = fit_penalised(B, y.astype(float), np.eye(B.shape[1]), lam, bounds, mu=mu)
    # fit_penalised works on ratings centred at the typical ones t; the stored form's intercept
    # is for raw ratings (intake part = alpha + beta m + gamma . t = theta_0 + beta m).
    t = np.array([typical[w - 1, RATERS.index(r)] for w, r in columns(week)])
    gamma = theta[2 : 2 + q] / sd
    out = {
        "alpha": float(theta[0] - gamma @ t),
        "beta": float(theta[1]),
        "gamma": gamma,
        "delta": theta[2 + q :],
        "lam": float(lam),
    }
    if draws:
        penalty = lam * np.eye(B.shape[1])
        thetas = laplace_draws(B, theta, penalty, bounds, draws, seed)
        a, b, g, d = _stored(thetas, sd, t)
        out["draws"] = {"alpha": a, "beta": b, "gamma": g, "delta": d}
    return out


def _stored(thetas: np.ndarray, sd: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    """Draws of fit_penalised's theta (B rows: intercept, beta, standardised gamma, delta) ->
    the stored form's alpha, beta (B), gamma, delta (B x q), as ``_fit`` stores the fit."""
    q = len(sd)
    gamma = thetas[:, 2 : 2 + q] / sd
    return thetas[:, 0] - gamma @ t, thetas[:, 1].copy(), gamma, thetas[:, 2 + q :].copy()


def _tuned_fit(
    m, R, y, groups, week, typical, sd, seed, draws: int = 0, draw_seed: int = 0
) -> dict[str, Any]:
    """lam by grouped inner CV log loss, then the fit on all the rows given (with ``draws``
    draws of its parameters, ``_fit``)."""
    k = min(INNER_SPLITS, len(set(groups)))
    losses = np.zeros(len(LAMS))
    if k >= 2 and min(y.sum(), len(y) - y.sum()) >= k:
        # tuned on at most TUNE_MAX_ROWS rows, like the admission candidates (the holdout
        # protocol's 55,000 evaluation clients at n = 300,000 would otherwise cost minutes)
        t = tuning_rows(y, seed)
        mt, Rt, yt, gt = m[t], R[t], y[t], groups[t]
        inner = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        for tr, va in inner.split(np.zeros(len(yt)), yt, gt):
            for i, lam in enumerate(LAMS):
                f = _fit(mt[tr], Rt[tr], yt[tr], week, typical, sd, lam)
                p = sigmoid(stacked_log_odds(mt[va], Rt[va], week, f, typical))
                losses[i] += M.row_log_loss(yt[va], p).sum()
        lam = LAMS[int(np.argmin(losses))]
    else:
        lam = LAMS[len(LAMS) // 2]
    return _fit(m, R, y, week, typical, sd, lam, draws, draw_seed)


# --------------------------------------------------------------------------------------------
# Bands


def _bands(m: np.ndarray, R: np.ndarray, bins: int | None = None) -> dict[str, Any]:
    """Equal-frequency bins of the admission log-odds and, per rater and week, the
    BAND_QUANTILE quantile of the valid ratings in each bin (NaN with fewer than 10 ratings)."""
    if bins is None:
        bins = int(np.clip(np.sum(~np.isnan(R[:, 0, 0])) // BAND_MIN_PER_BIN, 1, BAND_MAX_BINS))
    edges = np.quantile(m, np.linspace(0, 1, bins + 1)[1:-1]) if bins > 1 else np.empty(0)
    b = np.searchsorted(edges, m, side="right")
    lower = {}
    for j, r in enumerate(RATERS):
        table = np.full((len(WEEKS), bins), np.nan)
        for w in range(len(WEEKS)):
            for k in range(bins):
                v = R[(b == k), w, j]
                v = v[~np.isnan(v)]
                if len(v) >= 10:
                    table[w, k] = np.quantile(v, BAND_QUANTILE)
        lower[r] = table
    return {"quantile": BAND_QUANTILE, "edges": edges, "lower": lower}


def _signal(band: dict, m: np.ndarray, R: np.ndarray, week: int, use: list[int]) -> np.ndarray:
    """bool [n]: the week's rating of a rater in ``use`` below its band (False when not rated)."""
    b = np.searchsorted(band["edges"], m, side="right")
    out = np.zeros(len(m), dtype=bool)
    for j in use:
        lo = band["lower"][RATERS[j]][week - 1][b]
        with np.errstate(invalid="ignore"):
            out |= R[:, week - 1, j] < lo
    return out


# --------------------------------------------------------------------------------------------
# The whole step


def _json(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _json(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_json(v) for v in o]
    if isinstance(o, np.ndarray):
        return _json(o.tolist())
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o


def fit_weekly(
    settings,
    result,
    frame: pd.DataFrame,
    alliance: pd.DataFrame,
    intake: pd.DataFrame | None = None,
    episodes: pd.DataFrame | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> WeeklyResult:
    """Fit the weekly models on a ``TrainResult`` and set ``result.model.weekly``.

    ``frame``: the scored training frame (rows aligned with the admission model's X and y, with
    admission_id, counsellor_id and service_id); ``alliance``: the contract's alliance table (and
    intake, episodes as given to ``build_labels``).
    """
    from threadpoolctl import threadpool_limits

    from models.building.training import cv_splits, split_groups

    t0 = time.perf_counter()
    cfg, label_cfg = settings.train, settings.label
    ev = np.asarray(result.eval_rows)
    ids = frame["admission_id"].astype(str).to_numpy()[ev]
    groups = split_groups(frame.iloc[ev], cfg.group_by)
    P = np.atleast_2d(result.eval_P)
    m = logit(P).mean(axis=0)  # out-of-fold calibrated log-odds of the admission model
    y_label = result.test_frame["y"].to_numpy().astype(int)
    R = rating_tensor(alliance, ids)
    typical = np.nanmedian(R, axis=0)  # 3 x 2
    typical = np.where(np.isnan(typical), np.nanmedian(R), typical)
    sd_all = np.nanstd(R.reshape(len(R), -1), axis=0).reshape(len(WEEKS), len(RATERS))
    sd = np.where(np.isfinite(sd_all) & (sd_all > 0), sd_all, 1.0)
    sd1 = {r: float(np.nanstd(R[:, 0, j], ddof=1)) for j, r in enumerate(RATERS)}
    use_raters = list(RATERS) if label_cfg.rater == "either" else [label_cfg.rater]
    use = [RATERS.index(r) for r in use_raters]

    remaining = {}
    for week in MODEL_WEEKS:
        later = tuple(range(week + 1, len(WEEKS) + 1))
        lab = build_labels(alliance, label_cfg, intake, episodes, weeks=later).labels
        remaining[week] = lab.reindex(pd.Index(ids)).to_numpy(dtype=float)

    # Draws of every stacked model's parameters, paired at scoring with the admission model's
    # refits (draw b with refit b): as many as it has; none when it states no interval (LightGBM).
    unc = result.model.uncertainty
    n_draws = int(unc["B"]) if unc else 0

    with threadpool_limits(1, user_api="blas"):
        models: dict[str, dict[str, Any]] = {}
        figures: dict[int, dict[str, Any]] = {}
        oof_rows = []
        splits = cv_splits(y_label, groups, min(cfg.n_splits, len(set(groups))), 1, cfg.seed)[0]
        for week in MODEL_WEEKS:
            sdk = np.array([sd[w - 1, RATERS.index(r)] for w, r in columns(week)])
            rated = ~np.isnan(R[:, :week, :]).all(axis=(1, 2))
            models[str(week)], figures[week] = {}, {}
            for target in TARGETS:
                yy = y_label.astype(float) if target == "label" else remaining[week]
                rows = np.flatnonzero(rated & ~np.isnan(yy))
                yt = yy[rows].astype(int)
                if min(yt.sum(), len(yt) - yt.sum()) < MIN_CLASS:
                    log(f"weekly: week {week} {target}: too few clients with/without it; skipped")
                    models[str(week)][target] = None
                    continue
                fit = _tuned_fit(
                    m[rows],
                    R[rows],
                    yt,
                    groups[rows],
                    week,
                    typical,
                    sdk,
                    cfg.seed,
                    draws=n_draws,
                    draw_seed=cfg.seed + 10 * week + TARGETS.index(target),
                )
                models[str(week)][target] = fit
                # out-of-fold: the same procedure (tuning included) inside each outer fold
                p_oof = np.full(len(ev), np.nan)
                inrows = np.zeros(len(ev), dtype=bool)
                inrows[rows] = True
                for tr, va in splits:
                    tr, va = tr[inrows[tr]], va[inrows[va]]
                    if len(va) == 0:
                        continue
                    f = _tuned_fit(
                        m[tr], R[tr], yy[tr].astype(int), groups[tr], week, typical, sdk, cfg.seed
                    )
                    p_oof[va] = sigmoid(stacked_log_odds(m[va], R[va], week, f, typical))
                p, p_adm, g = p_oof[rows], sigmoid(m[rows]), groups[rows]
                figures[week][target] = _ci(yt, p, g, cfg)
                figures[week][f"admission_{target}"] = _ci(yt, p_adm, g, cfg)
                if target == "label":
                    figures[week]["log_loss_difference"] = M.paired_difference_ci(
                        M.row_log_loss(yt, p), M.row_log_loss(yt, p_adm), g, 1000, cfg.seed
                    )
                sig = np.zeros(len(rows), dtype=bool)
                if target == "remaining":
                    for tr, va in splits:
                        band = _bands(m[tr], R[tr])
                        sel = np.isin(rows, va)
                        sig[sel] = _signal(band, m[rows[sel]], R[rows[sel]], week, use)
                    has = ~np.isnan(R[rows][:, week - 1, use]).all(axis=1)
                    figures[week]["signal"] = _signal_figures(yt[has], sig[has])
                oof_rows.append(
                    pd.DataFrame(
                        {
                            "admission_id": ids[rows],
                            "week": week,
                            "target": target,
                            "y": yt,
                            "p": p,
                            "p_admission": p_adm,
                            "signal": sig,
                        }
                    )
                )
                f = figures[week][target]
                a = figures[week][f"admission_{target}"]
                log(
                    f"weekly: week {week} {target}: out-of-fold AUROC {f['auroc'][0]:.3f} "
                    f"(admission {a['auroc'][0]:.3f}), slope {f['cal_slope'][0]:.2f}, log loss "
                    f"{f['log_loss'][0]:.4f} (admission {a['log_loss'][0]:.4f}), lam {fit['lam']}"
                )

    band = _bands(m, R)
    spec = {
        "version": 1,
        "label": {
            "rater": label_cfg.rater,
            "threshold": float(label_cfg.threshold),
            "min_valid_weeks": int(label_cfg.min_valid_weeks),
        },
        "raters": list(RATERS),
        "typical": typical,
        "models": models,
        "band": {**band, "raters": use_raters, "bins": len(band["edges"]) + 1},
        "rupture": {
            "alpha": WAI_S_ALPHA,
            "sd_week1": sd1,
            "threshold": {r: reliable_change(sd1[r]) for r in RATERS},
        },
        "discrepancy": {"threshold": reliable_difference(sd1["client"], sd1["counsellor"])},
        "draws": {
            "B": n_draws,
            "method": "Laplace (normal) approximation of each stacked fit at its tuned lam, "
            "projected onto the bounds; draw b is paired with the admission model's refit b",
        }
        if n_draws
        else None,
        "fitted_on": {
            "rows": int(len(ev)),
            "inputs": "admission model's out-of-fold calibrated log-odds",
            "protocol": result.protocol.name if result.protocol else None,
        },
    }
    spec = spec_from_json(_json(spec))
    result.model.weekly = spec
    seconds = time.perf_counter() - t0
    log(f"weekly models fitted in {seconds:.1f} s")
    return WeeklyResult(
        spec=spec,
        figures=figures,
        oof=pd.concat(oof_rows, ignore_index=True) if oof_rows else None,
        seconds=seconds,
    )


def _ci(y, p, groups, cfg) -> dict[str, tuple[float, float, float]]:
    ci = M.bootstrap_ci(y, p, n_boot=cfg.n_bootstrap, seed=cfg.seed, groups=groups)
    return {k: ci[k] for k in REPORTED}


def _signal_figures(y: np.ndarray, flag: np.ndarray) -> dict[str, float]:
    pos, neg = y == 1, y == 0
    return {
        "n": float(len(y)),
        "outcome_rate": float(y.mean()) if len(y) else float("nan"),
        "flag_rate": float(flag.mean()) if len(y) else float("nan"),
        "sensitivity": float(flag[pos].mean()) if pos.any() else float("nan"),
        "false_alarm_rate": float(flag[neg].mean()) if neg.any() else float("nan"),
        "ppv": float(y[flag].mean()) if flag.any() else float("nan"),
    }
