"""Candidates, clustered cross-validation, held-out evaluation: the model-building core, free of
MLflow so that it can be tested and benchmarked on its own.

Validation design (TRIPOD+AI, domain brief): clients are nested in counsellors, so every split is
grouped — by counsellor (a client whose counsellor is unknown at admission is grouped with the
other unknowns of the same service) or by service. A held-out test split by group gives the final
figures; repeated grouped, stratified K-fold on the rest compares the candidates, and each
candidate is tuned and calibrated inside every training fold (``models.estimators``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.model_selection import StratifiedGroupKFold

from features.catalog import DRIVER_GROUPS
from features.settings import Settings
from models import metrics as M
from models.estimators import fit_candidate
from models.explain import global_importance
from models.reference import reference_cohort  # noqa: F401 - re-exported (tests, benches)
from models.scorer import ScoringModel

# Simplest first: ties go to the earlier one. "ridge" is the baseline (issue 10); "logistic" is
# the older linear candidate, kept selectable.
CANDIDATES = ("ridge", "logistic", "spline", "lightgbm")
SUBGROUP_COLUMNS = ("sex", "age_band", "ethnicity", "service_id", "primary_substance")


@dataclass
class TrainResult:
    champion: str
    model: ScoringModel
    reason: str
    cv: pd.DataFrame  # one row per candidate, fold
    cv_summary: pd.DataFrame
    test_metrics: dict[str, tuple[float, float, float]]
    oracle_metrics: dict[str, tuple[float, float, float]] | None
    test_frame: pd.DataFrame  # admission_id, group, y, p (and p_oracle)
    subgroups: pd.DataFrame
    bands: pd.DataFrame
    decision: pd.DataFrame
    importance_features: dict[str, float]
    importance_groups: dict[str, float]
    driver_rank_spearman: float | None
    timings: dict[str, float] = field(default_factory=dict)
    X_test: np.ndarray | None = None


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


def _fold_scores(kind: str, X, y, groups, train_cfg, log: Callable[[str], None]) -> list[dict]:
    rows = []
    for rep in range(train_cfg.n_repeats):
        seed = train_cfg.seed + rep
        sgkf = StratifiedGroupKFold(n_splits=train_cfg.n_splits, shuffle=True, random_state=seed)
        for k, (tr, va) in enumerate(sgkf.split(X, y, groups)):
            m = fit_candidate(kind, X[tr], y[tr], groups[tr], train_cfg.tune_iterations, seed)
            p = m.proba(X[va])
            pm = M.point_metrics(y[va], p)
            rows.append(
                {
                    "candidate": kind,
                    "repeat": rep,
                    "fold": k,
                    "n": len(va),
                    **{k2: pm[k2] for k2 in ("log_loss", "auroc", "brier", "cal_slope")},
                }
            )
            log(
                f"{kind} repeat {rep + 1} fold {k + 1}/{train_cfg.n_splits}: log loss {pm['log_loss']:.4f}, AUROC {pm['auroc']:.3f}"
            )
    return rows


def choose_champion(cv: pd.DataFrame, margin: float) -> tuple[str, str, pd.DataFrame]:
    """Lowest mean CV log loss; within noise (paired SE of the fold differences, or the configured
    margin, whichever is larger) the simpler candidate wins."""
    summary = (
        cv.groupby("candidate", sort=False)
        .agg(
            log_loss=("log_loss", "mean"),
            log_loss_sd=("log_loss", "std"),
            auroc=("auroc", "mean"),
            brier=("brier", "mean"),
            cal_slope=("cal_slope", "mean"),
        )
        .reset_index()
    )
    present = [c for c in CANDIDATES if c in set(cv.candidate)]
    if len(present) == 1:
        return present[0], f"{present[0]} is the only candidate configured", summary
    simple, complex_ = present
    a = cv[cv.candidate == simple].log_loss.to_numpy()
    b = cv[cv.candidate == complex_].log_loss.to_numpy()
    diff = a - b  # > 0: the complex model is better
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    noise = max(margin, 2 * se)
    if diff.mean() > noise:
        return (
            complex_,
            f"{complex_} has lower CV log loss by {diff.mean():.4f} (> noise {noise:.4f})",
            summary,
        )
    if diff.mean() < -noise:
        return (
            simple,
            f"{simple} has lower CV log loss by {-diff.mean():.4f} (> noise {noise:.4f})",
            summary,
        )
    return (
        simple,
        f"CV log loss within noise ({diff.mean():+.4f}, noise {noise:.4f}): the simpler {simple} is preferred",
        summary,
    )


def train_models(
    settings: Settings,
    frame: pd.DataFrame,
    X: np.ndarray,
    y: np.ndarray,
    oracle: np.ndarray | None = None,
    true_ranking: list[str] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> TrainResult:
    cfg = settings.train
    timings: dict[str, float] = {}
    groups = split_groups(frame, cfg.group_by)
    tr, te = holdout_split(y, groups, cfg.test_fraction, cfg.seed)
    log(
        f"held-out test: {len(te)} clients in {len(set(groups[te]))} {cfg.group_by} groups; training: {len(tr)}"
    )

    t = time.perf_counter()
    rows = []
    for kind in (c for c in CANDIDATES if c in cfg.candidates):
        rows += _fold_scores(kind, X[tr], y[tr], groups[tr], cfg, log)
    cv = pd.DataFrame(rows)
    champion, reason, summary = choose_champion(cv, cfg.log_loss_margin)
    timings["cross_validation_s"] = time.perf_counter() - t
    log(f"champion candidate: {champion} — {reason}")

    t = time.perf_counter()
    model = fit_candidate(champion, X[tr], y[tr], groups[tr], cfg.tune_iterations, cfg.seed)
    model.reference = reference_cohort(
        frame.iloc[tr], settings.bands.model_dump(), settings.label.model_dump()
    )
    timings["final_fit_s"] = time.perf_counter() - t

    t = time.perf_counter()
    p = model.proba(X[te])
    test_metrics = M.bootstrap_ci(
        y[te], p, n_boot=cfg.n_bootstrap, seed=cfg.seed, groups=groups[te]
    )
    test_frame = pd.DataFrame(
        {
            "admission_id": frame["admission_id"].to_numpy()[te],
            "group": groups[te],
            "y": y[te],
            "p": p,
        }
    )
    oracle_metrics = None
    if oracle is not None:
        test_frame["p_oracle"] = oracle[te]
        oracle_metrics = M.bootstrap_ci(
            y[te], oracle[te], n_boot=cfg.n_bootstrap, seed=cfg.seed, groups=groups[te]
        )
    sub = frame.iloc[te].copy()
    sub["age_band"] = pd.cut(
        pd.to_numeric(sub["age"], errors="coerce"),
        [15, 25, 35, 45, 55, 91],
        right=False,
        labels=["16-24", "25-34", "35-44", "45-54", "55+"],
    ).astype(str)
    subgroups = M.subgroup_metrics(y[te], p, sub.reset_index(drop=True), list(SUBGROUP_COLUMNS))
    bands = M.band_table(y[te], p, settings.bands)
    decision = M.decision_curve(y[te], p)
    timings["evaluation_s"] = time.perf_counter() - t

    t = time.perf_counter()
    imp_f, imp_g = global_importance(model, X[te])
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
        champion,
        model,
        reason,
        cv,
        summary,
        test_metrics,
        oracle_metrics,
        test_frame,
        subgroups,
        bands,
        decision,
        imp_f,
        imp_g,
        rho,
        timings,
        X[te],
    )
