"""Candidates, model selection and the reported performance: the model-building core, free of
MLflow so that it can be tested and benchmarked on its own.

Validation design (TRIPOD+AI, domain brief): clients are nested in counsellors, so every split is
grouped — by counsellor (a client whose counsellor is unknown at admission is grouped with the
other unknowns of the same service) or by service — and every CI is a cluster bootstrap over the
same groups. Two protocols, chosen by the number of labelled admissions n (``choose_protocol``):

- ``cv`` (n below ``train.holdout_from``, 20,000 by default): repeated grouped, stratified K-fold
  on ALL labelled admissions. Every candidate gets out-of-fold (OOF) predictions for every client
  in every repeat; the candidates are compared on them, the reported figures are the champion's
  OOF figures, and the final model is refit on all admissions. At n = 190 a 20% held-out split
  would keep 38 clients (about 10 events) for the figures and take them from the fit; the OOF
  figures use all 190. Repeats: ``auto_repeats`` (5 at n = 190, 2 at 400, 1 from 700 on).
- ``holdout`` (n at or above ``holdout_from``): one grouped held-out split (20% by default,
  4,000+ clients) gives the figures; the candidates are fitted once on the rest. There, the split
  is already precise (AUROC to about +-0.01) and K-fold CV would cost K more fits on large data.

Selection: lowest mean log loss, with the one-standard-error rule — the simplest candidate (order
of ``CANDIDATES``) whose log loss is within one cluster-bootstrap SE of the paired difference to
the best one wins. Each candidate is tuned and calibrated inside every training fold
(``models.building.candidates.fit_candidate``), so the OOF predictions are nested and leak nothing.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.model_selection import StratifiedGroupKFold
from threadpoolctl import threadpool_limits

from features.catalog import DRIVER_GROUPS
from features.settings import Settings, TrainConfig
from models.building import metrics as M
from models.building.candidates import fit_candidate
from models.building.estimators import TUNE_MAX_ROWS, auto_repeats
from models.scoring.explain import global_importance
from models.scoring.reference import reference_cohort
from models.scoring.scorer import ScoringModel

# Simplest first: the one-SE rule favours the earlier one. "ridge" is the baseline (issue 10);
# "logistic" is the older linear candidate, kept selectable.
CANDIDATES = ("updated", "ridge", "anchored", "logistic", "spline", "lightgbm")


@functools.lru_cache(maxsize=8)
def _prior_vector(spec: str) -> np.ndarray | None:
    from models.building.priors import load

    prior = load(spec)
    return None if prior is None else prior.vector()


@functools.lru_cache(maxsize=2)
def update_base(folder: str | None) -> ScoringModel | None:
    """The existing model ``train.update_from`` names, read once: a scorer folder, which
    ``pipelines.train`` made from the user's registry URI or model folder
    (``models.lifecycle.base_model.load_base``)."""
    if not folder:
        return None
    return ScoringModel.load(folder)


def fit_kind(
    kind: str, X: np.ndarray, y: np.ndarray, groups: np.ndarray, cfg: TrainConfig, seed: int
) -> ScoringModel:
    """``kind`` fitted on these rows with the run's settings: the tuning budget, the prior of the
    anchored candidate (``train.prior``) and the model the updated candidate adapts
    (``train.update_from``)."""
    return fit_candidate(
        kind,
        X,
        y,
        groups,
        cfg.tune_iterations,
        seed,
        prior=prior_vector(cfg.prior),
        base=update_base(cfg.update_from),
    )


def prior_vector(spec: str) -> np.ndarray | None:
    """The ``anchored`` candidate's prior per model column (``train.prior``), read once."""
    v = _prior_vector(str(spec))
    return None if v is None else v.copy()


SUBGROUP_COLUMNS = ("sex", "age_band", "ethnicity", "service_id", "primary_substance")
# Learning curve: the champion's kind evaluated on these fractions of the data (1.0 is the main
# evaluation). A point needs 100 clients and 20 in the smaller class, or it is left out.
CURVE_FRACTIONS = (0.25, 0.5, 0.75)
# Above the holdout switch the curve looks further down (1%, 5%, 25% of 240,000 training rows at
# n = 300,000): that is where a large curve still bends, and the three fits together cost about
# a third of the champion's own fit instead of one and a half of it.
CURVE_FRACTIONS_LARGE = (0.01, 0.05, 0.25)
CURVE_MIN_ROWS, CURVE_MIN_CLASS = 100, 20
# Leave-one-service-out fits are capped at this many training rows (a random sample of them):
# transport is a property of the population, and 20,000 rows estimate it as well as 250,000.
LOSO_MAX_TRAIN = 20_000
# Under the holdout protocol (n >= train.holdout_from) the leave-one-service-out fits reuse the
# champion's tuned hyper-parameters instead of tuning again for every service left out; see
# ``refit_with_params`` for why and what it saves.
LOSO_MIN_CLASS = 5  # a service with fewer clients with (or without) the outcome is not scored
# Global importance and dependence plots: mean |SHAP| over at most this many evaluation rows
# (the standard error of a mean |SHAP| over 20,000 rows is well under 1% of it).
EXPLAIN_ROWS = 20_000
SE_BOOT = 1000  # cluster-bootstrap replicates for the one-SE rule and the paired differences


@dataclass
class Protocol:
    name: str  # "cv" or "holdout"
    n_splits: int
    n_repeats: int
    why: str


@dataclass
class TrainResult:
    champion: str
    model: ScoringModel
    reason: str
    cv: pd.DataFrame  # one row per candidate, repeat, fold (holdout: one row per candidate)
    cv_summary: pd.DataFrame  # one row per candidate
    test_metrics: dict[str, tuple[float, float, float]]  # the reported figures (OOF or held-out)
    oracle_metrics: dict[str, tuple[float, float, float]] | None
    test_frame: pd.DataFrame  # evaluation rows: admission_id, group, y, p (and p_oracle)
    subgroups: pd.DataFrame
    bands: pd.DataFrame
    decision: pd.DataFrame
    importance_features: dict[str, float]
    importance_groups: dict[str, float]
    driver_rank_spearman: float | None
    timings: dict[str, float] = field(default_factory=dict)
    X_test: np.ndarray | None = None  # rows behind the importance and dependence plots
    protocol: Protocol | None = None
    eval_rows: np.ndarray | None = None  # positions (in the training frame) of the evaluation rows
    eval_P: np.ndarray | None = None  # champion predictions there: repeats x rows
    null_log_loss: float = float("nan")  # intercept-only model (the prevalence) on those rows
    learning_curve: pd.DataFrame | None = None
    transport: pd.DataFrame | None = None  # leave-one-service-out, one row per service
    sample_size: dict | None = None  # models.building.sample_size.SampleSize.to_dict()
    uncertainty: dict | None = None  # how the per-client intervals were made (method, B)
    weekly: Any = None  # models.building.weekly.WeeklyResult (issue 19), set by pipelines.train


def split_groups(frame: pd.DataFrame, group_by: str) -> np.ndarray:
    if group_by == "service":
        return frame["service_id"].astype(str).to_numpy()
    cid = frame["counsellor_id"].astype(object)
    unknown = "unknown@" + frame["service_id"].astype(str)
    return np.where(cid.notna() & (cid.astype(str) != ""), cid.astype(str), unknown).astype(str)


def holdout_split(
    y: np.ndarray, groups: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    n_splits = max(2, round(1 / test_fraction))
    sgkf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train_idx, test_idx = next(sgkf.split(np.zeros(len(y)), y, groups))
    return train_idx, test_idx


def choose_protocol(n: int, n_groups: int, cfg: TrainConfig) -> Protocol:
    if n >= cfg.holdout_from:
        return Protocol(
            "holdout",
            1,
            1,
            f"n = {n:,} >= {cfg.holdout_from:,}: a grouped held-out split of "
            f"{cfg.test_fraction:.0%} is precise at this size, and K-fold CV would cost K more fits",
        )
    k = min(cfg.n_splits, n_groups)
    r = cfg.n_repeats or auto_repeats(n)
    return Protocol(
        "cv",
        k,
        r,
        f"n = {n:,} < {cfg.holdout_from:,}: {r} x {k}-fold grouped CV on all labelled admissions "
        "(a held-out split would waste data and give imprecise figures at this size)",
    )


def cv_splits(
    y: np.ndarray, groups: np.ndarray, n_splits: int, n_repeats: int, seed: int
) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Grouped, stratified folds for each repeat (seed + repeat), shared by every candidate so
    that their out-of-fold predictions can be compared row by row."""
    out = []
    for rep in range(n_repeats):
        sgkf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed + rep)
        out.append(list(sgkf.split(np.zeros(len(y)), y, groups)))
    return out


def oof_predictions(
    kind: str,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    splits: list[list[tuple[np.ndarray, np.ndarray]]],
    cfg: TrainConfig,
    log: Callable[[str], None] = lambda s: None,
) -> tuple[np.ndarray, list[dict]]:
    """Out-of-fold probabilities (repeats x rows) of one candidate, and per-fold metrics."""
    P = np.full((len(splits), len(y)), np.nan)
    rows = []
    for rep, folds in enumerate(splits):
        for k, (tr, va) in enumerate(folds):
            m = fit_kind(kind, X[tr], y[tr], groups[tr], cfg, cfg.seed + rep)
            P[rep, va] = m.proba(X[va])
            pm = M.point_metrics(y[va], P[rep, va])
            rows.append(
                {"candidate": kind, "repeat": rep, "fold": k, "n": len(va)}
                | {m2: pm[m2] for m2 in ("log_loss", "auroc", "brier", "cal_slope")}
            )
        ll = M.row_log_loss(y, P[rep]).mean()
        log(
            f"{kind} repeat {rep + 1}/{len(splits)} ({len(folds)} folds): out-of-fold log loss {ll:.4f}"
        )
    return P, rows


def choose_champion(
    losses: dict[str, np.ndarray], groups: np.ndarray, seed: int = 0
) -> tuple[str, str, pd.DataFrame]:
    """One-standard-error rule on per-row log losses of the candidates (same rows for all).

    The best candidate has the lowest mean log loss; the champion is the first candidate (simplest
    first, in the order given) whose paired difference to the best is at most one SE, the SE being
    the standard deviation of the cluster-bootstrap means of that difference. Returns (champion,
    reason, table with candidate, log_loss, diff_vs_best, se)."""
    names = list(losses)
    means = {k: float(np.mean(v)) for k, v in losses.items()}
    best = min(names, key=lambda k: means[k])
    table = []
    for k in names:
        d = losses[k] - losses[best]
        se = 0.0 if k == best else float(M.cluster_means(d, groups, SE_BOOT, seed).std(ddof=1))
        table.append(
            {"candidate": k, "log_loss": means[k], "diff_vs_best": means[k] - means[best], "se": se}
        )
    table = pd.DataFrame(table)
    if len(names) == 1:
        return names[0], f"{names[0]} is the only candidate configured", table
    for row in table.itertuples():
        if row.diff_vs_best <= row.se:
            if row.candidate == best and best == names[0]:
                reason = f"{best} has the lowest log loss ({means[best]:.4f}) and is the simplest"
            elif row.candidate == best:
                reason = (
                    f"{best} has the lowest log loss ({means[best]:.4f}); no simpler candidate "
                    "is within one SE of it"
                )
            else:
                reason = (
                    f"one-SE rule: {row.candidate} log loss {row.log_loss:.4f} is within one SE "
                    f"({row.se:.4f}) of the best, {best} ({means[best]:.4f}), and simpler"
                )
            return row.candidate, reason, table
    raise AssertionError("the best candidate is always within one SE of itself")


def _summary(P_by: dict[str, np.ndarray], y: np.ndarray, table: pd.DataFrame) -> pd.DataFrame:
    """Mean over repeats of each candidate's OOF (or held-out) AUROC, Brier and slope."""
    rows = []
    for k, P in P_by.items():
        pm = [M.point_metrics(y, P[r]) for r in range(P.shape[0])]
        rows.append(
            {
                "candidate": k,
                "auroc": float(np.nanmean([m["auroc"] for m in pm])),
                "brier": float(np.nanmean([m["brier"] for m in pm])),
                "cal_slope": float(np.nanmean([m["cal_slope"] for m in pm])),
            }
        )
    return table.merge(pd.DataFrame(rows), on="candidate")


def _enough(y: np.ndarray, min_rows: int, min_class: int) -> bool:
    events = int(y.sum())
    return len(y) >= min_rows and min(events, len(y) - events) >= min_class


def learning_curve(
    kind: str,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    protocol: Protocol,
    cfg: TrainConfig,
    full: tuple[float, float],
    test: np.ndarray | None = None,
    params: dict | None = None,
) -> pd.DataFrame:
    """Log loss and AUROC of the champion's kind at fractions of this data (1.0 = the main figures).

    CV protocol: a random sample of the admissions, then one repeat of the same grouped K-fold CV.
    Holdout protocol: a sample of the training split, scored on the same held-out split; with
    ``params`` (the champion's tuned hyper-parameters) a sample of at least ``TUNE_MAX_ROWS`` rows
    is fitted with them (``refit_with_params``: it would tune on a sample of that same size
    again), a smaller one is tuned on its own rows."""
    rng = np.random.default_rng(cfg.seed)
    train = np.setdiff1d(np.arange(len(y)), test) if test is not None else np.arange(len(y))
    rows = []
    for f in CURVE_FRACTIONS if test is None else CURVE_FRACTIONS_LARGE:
        sub = np.sort(rng.choice(train, size=int(round(f * len(train))), replace=False))
        if not _enough(y[sub], CURVE_MIN_ROWS, CURVE_MIN_CLASS):
            continue
        if test is None:
            k = min(protocol.n_splits, len(set(groups[sub])))
            splits = cv_splits(y[sub], groups[sub], k, 1, cfg.seed)
            P, _ = oof_predictions(kind, X[sub], y[sub], groups[sub], splits, cfg)
            yy, p = y[sub], P[0]
        else:
            m = (
                refit_with_params(
                    kind, X[sub], y[sub], groups[sub], params, cfg.seed, prior_vector(cfg.prior)
                )
                if params is not None and len(sub) >= TUNE_MAX_ROWS
                else fit_kind(kind, X[sub], y[sub], groups[sub], cfg, cfg.seed)
            )
            yy, p = y[test], m.proba(X[test])
        pm = M.point_metrics(yy, p)
        rows.append(
            {"fraction": f, "n": len(sub), "log_loss": pm["log_loss"], "auroc": pm["auroc"]}
        )
    rows.append({"fraction": 1.0, "n": len(train), "log_loss": full[0], "auroc": full[1]})
    return pd.DataFrame(rows)


def refit_with_params(
    kind: str,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    params: dict,
    seed: int,
    prior: np.ndarray | None = None,
) -> ScoringModel:
    """``kind`` fitted on these rows with hyper-parameters already tuned (``params``, as in a
    fitted model's ``params``): no tuning grid. The kinds Platt-calibrated by
    ``models.building.candidates.fit_candidate`` are calibrated the same way (inner grouped folds on at most
    ``TUNE_MAX_ROWS`` rows, one configuration).

    Used above ``train.holdout_from`` (the holdout protocol) for the leave-one-service-out fits
    and for the learning-curve points with at least ``TUNE_MAX_ROWS`` rows. Why it is sound
    there: the hyper-parameters are one penalty (ridge: C; spline: lam and rho, 1 of 18) tuned on
    a sample of ``TUNE_MAX_ROWS`` (8,000) training rows, the same sample size every one of these
    fits would tune on again, and the left-out service is about a sixth of that sample
    (``bench/loso_params.py`` compares both ways per service, docs/benchmarks.md). Why it is
    needed: a tuned fit is the whole grid on inner folds (spline: 54 fits) before the fit
    itself, and the six services and three curve points would cost nine of them; at n = 300,000
    on the loaded 2-core machine the tuned curve took 70 s (docs/benchmarks.md). Below
    ``holdout_from`` every fit is tuned on its own rows (nested), as before.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    from models.building.estimators import (
        CALIBRATED,
        INNER_SPLITS,
        oof_margins,
        platt,
        raw_model,
        tuning_rows,
    )

    config = {k: v for k, v in params.items() if k != "inner_cv_log_loss"}
    with threadpool_limits(1, user_api="blas"):
        model = raw_model(kind, X, y, config, seed, prior=prior)
        if kind in CALIBRATED:
            rows = tuning_rows(y, seed)
            inner = StratifiedGroupKFold(n_splits=INNER_SPLITS, shuffle=True, random_state=seed)
            folds = list(inner.split(X[rows], y[rows], groups[rows]))
            oof = oof_margins(kind, [config], X[rows], y[rows], folds, seed)[0]
            model.platt_a, model.platt_b = platt(oof, y[rows])
    model.params = dict(config)
    return model


def leave_one_service_out(
    kind: str,
    frame: pd.DataFrame,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    cfg: TrainConfig,
    params: dict | None = None,
) -> pd.DataFrame:
    """Internal-external validation (TRIPOD+AI): fit on every service but one, score that one.

    Says how the model transports to a service it has never seen. Services with fewer than
    ``LOSO_MIN_CLASS`` clients with (or without) the outcome are listed, not scored. With
    ``params`` (the holdout protocol) each fit reuses those tuned hyper-parameters
    (``refit_with_params``); without, each is tuned on its own training services."""
    services = frame["service_id"].astype(str).to_numpy()
    rng = np.random.default_rng(cfg.seed)
    rows = []
    for s in sorted(set(services)):
        te = np.flatnonzero(services == s)
        tr = np.flatnonzero(services != s)
        row: dict[str, Any] = {"service": s, "n": len(te), "events": int(y[te].sum())}
        if not _enough(y[te], 2 * LOSO_MIN_CLASS, LOSO_MIN_CLASS) or not _enough(
            y[tr], CURVE_MIN_ROWS, CURVE_MIN_CLASS
        ):
            rows.append(row | {"note": "too few clients with or without the outcome"})
            continue
        if len(tr) > LOSO_MAX_TRAIN:
            tr = np.sort(rng.choice(tr, size=LOSO_MAX_TRAIN, replace=False))
        m = (
            refit_with_params(kind, X[tr], y[tr], groups[tr], params, cfg.seed)
            if params is not None
            else fit_kind(kind, X[tr], y[tr], groups[tr], cfg, cfg.seed)
        )
        ci = M.bootstrap_ci(
            y[te],
            m.proba(X[te]),
            n_boot=min(cfg.n_bootstrap, 200),
            seed=cfg.seed,
            groups=groups[te],
        )
        rows.append(
            row
            | {
                "auroc": ci["auroc"][0],
                "auroc_lo": ci["auroc"][1],
                "auroc_hi": ci["auroc"][2],
                "log_loss": ci["log_loss"][0],
                "cal_intercept": ci["cal_intercept"][0],
                "cal_slope": ci["cal_slope"][0],
                "note": f"trained on {len(tr):,} admissions of the other services",
            }
        )
    return pd.DataFrame(rows)


def train_models(
    settings: Settings,
    frame: pd.DataFrame,
    X: np.ndarray,
    y: np.ndarray,
    oracle: np.ndarray | None = None,
    true_ranking: list[str] | None = None,
    log: Callable[[str], None] = lambda s: None,
    extras: bool = True,
) -> TrainResult:
    """Select, evaluate, refit and explain. ``extras=False`` skips the learning curve and the
    leave-one-service-out fits (tests of the selection and the gate do not need them).

    BLAS runs single-threaded here: the matrices are narrow (about 60 columns), and on a shared
    2-core machine a second OpenBLAS thread made a 150-row logistic tuning 15x slower (5.6 s vs
    0.36 s at load 13)."""
    with threadpool_limits(1, user_api="blas"):
        return _train_models(settings, frame, X, y, oracle, true_ranking, log, extras)


def _train_models(settings, frame, X, y, oracle, true_ranking, log, extras) -> TrainResult:
    cfg = settings.train
    timings: dict[str, float] = {}
    groups = split_groups(frame, cfg.group_by)
    protocol = choose_protocol(len(y), len(set(groups)), cfg)
    log(f"evaluation protocol: {protocol.why}")
    kinds = [c for c in CANDIDATES if c in cfg.candidates]
    prior = prior_vector(cfg.prior)

    t = time.perf_counter()
    P_by: dict[str, np.ndarray] = {}
    fitted: dict[str, ScoringModel] = {}
    rows: list[dict] = []
    if protocol.name == "cv":
        ev = np.arange(len(y))
        splits = cv_splits(y, groups, protocol.n_splits, protocol.n_repeats, cfg.seed)
        for kind in kinds:
            P_by[kind], r = oof_predictions(kind, X, y, groups, splits, cfg, log)
            rows += r
    else:
        tr, ev = holdout_split(y, groups, cfg.test_fraction, cfg.seed)
        log(
            f"held-out split: {len(ev):,} clients in {len(set(groups[ev]))} groups; training {len(tr):,}"
        )
        for kind in kinds:
            fitted[kind] = fit_kind(kind, X[tr], y[tr], groups[tr], cfg, cfg.seed)
            P_by[kind] = fitted[kind].proba(X[ev])[None, :]
            pm = M.point_metrics(y[ev], P_by[kind][0])
            rows.append(
                {"candidate": kind, "repeat": 0, "fold": 0, "n": len(ev)}
                | {m2: pm[m2] for m2 in ("log_loss", "auroc", "brier", "cal_slope")}
            )
            log(f"{kind}: held-out log loss {pm['log_loss']:.4f}, AUROC {pm['auroc']:.3f}")
    y_ev, g_ev = y[ev], groups[ev]
    losses = {k: M.row_log_loss(y_ev, P) for k, P in P_by.items()}
    champion, reason, table = choose_champion(losses, g_ev, cfg.seed)
    summary = _summary(P_by, y_ev, table)
    timings["cross_validation_s" if protocol.name == "cv" else "candidates_s"] = (
        time.perf_counter() - t
    )
    log(f"champion candidate: {champion} — {reason}")

    t = time.perf_counter()
    if protocol.name == "cv":
        model = fit_kind(champion, X, y, groups, cfg, cfg.seed)
        model.reference = reference_cohort(
            frame, settings.bands.model_dump(), settings.label.model_dump()
        )
    else:
        model = fitted[champion]
        model.reference = reference_cohort(
            frame.iloc[tr], settings.bands.model_dump(), settings.label.model_dump()
        )
    timings["final_fit_s"] = time.perf_counter() - t

    t = time.perf_counter()
    from models.building.uncertainty import attach_uncertainty

    fit_rows = np.arange(len(y)) if protocol.name == "cv" else tr
    uncertainty = attach_uncertainty(
        model,
        X[fit_rows],
        y[fit_rows],
        groups[fit_rows],
        cfg.seed,
        normal_from=cfg.holdout_from,
        prior=prior,
    )
    if uncertainty is not None:
        log(f"uncertainty: {uncertainty['method']}, B = {uncertainty['B']}")
    timings["uncertainty_s"] = time.perf_counter() - t

    t = time.perf_counter()
    P = P_by[champion]
    test_metrics = M.repeated_bootstrap_ci(
        y_ev, P, n_boot=cfg.n_bootstrap, seed=cfg.seed, groups=g_ev
    )
    p = P.mean(axis=0)  # one probability per client for plots and tables (mean over repeats)
    prevalence = float(y_ev.mean())
    null_ll = float(M.row_log_loss(y_ev, np.full(len(y_ev), prevalence)).mean())
    test_frame = pd.DataFrame(
        {"admission_id": frame["admission_id"].to_numpy()[ev], "group": g_ev, "y": y_ev, "p": p}
    )
    oracle_metrics = None
    if oracle is not None:
        test_frame["p_oracle"] = oracle[ev]
        oracle_metrics = M.bootstrap_ci(
            y_ev, oracle[ev], n_boot=cfg.n_bootstrap, seed=cfg.seed, groups=g_ev
        )
    sub = frame.iloc[ev].copy()
    sub["age_band"] = pd.cut(
        pd.to_numeric(sub["age"], errors="coerce"),
        [15, 25, 35, 45, 55, 91],
        right=False,
        labels=["16-24", "25-34", "35-44", "45-54", "55+"],
    ).astype(str)
    subgroups = M.subgroup_metrics(y_ev, p, sub.reset_index(drop=True), list(SUBGROUP_COLUMNS))
    bands = M.band_table(y_ev, p, settings.bands)
    decision = M.decision_curve(y_ev, p)
    timings["evaluation_s"] = time.perf_counter() - t

    t = time.perf_counter()
    full = (test_metrics["log_loss"][0], test_metrics["auroc"][0])
    curve = (
        learning_curve(
            champion,
            X,
            y,
            groups,
            protocol,
            cfg,
            full,
            test=None if protocol.name == "cv" else ev,
            params=model.params if protocol.name == "holdout" and champion != "updated" else None,
        )
        if extras
        else pd.DataFrame([{"fraction": 1.0, "n": len(y), "log_loss": full[0], "auroc": full[1]}])
    )
    timings["learning_curve_s"] = time.perf_counter() - t
    t = time.perf_counter()
    loso = (
        leave_one_service_out(
            champion,
            frame,
            X,
            y,
            groups,
            cfg,
            params=model.params if protocol.name == "holdout" and champion != "updated" else None,
        )
        if extras
        else None
    )
    timings["transport_s"] = time.perf_counter() - t

    t = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    shown = ev if len(ev) <= EXPLAIN_ROWS else np.sort(rng.choice(ev, EXPLAIN_ROWS, replace=False))
    imp_f, imp_g = global_importance(model, X[shown])
    rho = None
    if true_ranking:
        model_rank = sorted(DRIVER_GROUPS, key=lambda g: -imp_g[g])
        rho = float(
            spearmanr(
                [true_ranking.index(g) for g in DRIVER_GROUPS],
                [model_rank.index(g) for g in DRIVER_GROUPS],
            ).statistic
        )
    timings["explanation_s"] = time.perf_counter() - t
    return TrainResult(
        champion=champion,
        model=model,
        reason=reason,
        cv=pd.DataFrame(rows),
        cv_summary=summary,
        test_metrics=test_metrics,
        oracle_metrics=oracle_metrics,
        test_frame=test_frame,
        subgroups=subgroups,
        bands=bands,
        decision=decision,
        importance_features=imp_f,
        importance_groups=imp_g,
        driver_rank_spearman=rho,
        timings=timings,
        X_test=X[shown],
        protocol=protocol,
        eval_rows=ev,
        eval_P=P,
        null_log_loss=null_ll,
        learning_curve=curve,
        transport=loso,
        uncertainty=uncertainty,
    )
