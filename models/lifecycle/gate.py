"""The promotion gate and its evidence: what a new version must show before it may become the
champion. ``gate_evidence`` gathers the candidate's figures and, when a champion sits, the paired
log-loss difference to it on the same admissions; ``gate`` reads them against their CIs and says
promote or refuse, with the reason. ``models.lifecycle.registry`` then moves the alias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.settings import TrainConfig

Interval = tuple[float, float, float]  # (point, lo, hi): a 95% cluster-bootstrap CI


@dataclass
class GateDecision:
    promote: bool
    reason: str


@dataclass
class GateEvidence:
    """What the gate weighs, each figure with its CI, all on the same evaluation rows.

    metrics: the candidate's (point, lo, hi) for at least auroc, cal_slope and log_loss (its
    out-of-fold or held-out figures); null_log_loss: the intercept-only model (the prevalence) on the
    same rows; vs_champion: candidate minus champion log loss, paired on the same rows (None when
    there is no champion); n_compared: how many rows that comparison used."""

    metrics: dict[str, Interval]
    null_log_loss: float
    vs_champion: Interval | None = None
    n_compared: int = 0


def _ci(name: str, v: Interval, digits: int = 3) -> str:
    return f"{name} {v[0]:.{digits}f} [95% CI {v[1]:.{digits}f} to {v[2]:.{digits}f}]"


def gate(ev: GateEvidence, cfg: TrainConfig) -> GateDecision:
    """Promote only what is better than chance, plausibly calibrated and not worse than the champion.

    Read against CIs, not points, so that the verdict does not flip with the luck of a couple of
    hundred clients (issue 10: a point slope of 1.45 on 38 held-out clients refused a good model).
    In order, refuse when:
    1. the AUROC CI includes 0.5 (lo <= 0.5: not shown to beat chance) or the AUROC is NaN;
    2. the log loss is not below the intercept-only model's (point: the model adds nothing to the
       prevalence);
    3. the AUROC CI lies wholly below ``min_auroc`` (hi < min_auroc);
    4. the calibration-slope CI lies wholly outside ``slope_range`` (hi < low end or lo > high end;
       touching the range counts as inside);
    5. the paired log-loss difference to the champion has its whole CI above ``log_loss_margin``
       (lo > margin: worse beyond the margin with 95% confidence).
    Otherwise promote. A champion's predictions on admissions it was trained on are optimistic, so
    on retraining with overlapping data rule 5 leans towards keeping the champion (the safe side)."""
    m = ev.metrics
    auroc, slope, ll = m["auroc"], m["cal_slope"], m["log_loss"]
    if not np.isfinite(auroc).all() or auroc[1] <= 0.5:
        return GateDecision(False, f"{_ci('AUROC', auroc)} includes 0.5: no better than chance")
    if not ll[0] < ev.null_log_loss:
        return GateDecision(
            False,
            f"{_ci('log loss', ll, 4)} is not below the intercept-only model's "
            f"{ev.null_log_loss:.4f}: no better than the prevalence alone",
        )
    if auroc[2] < cfg.min_auroc:
        return GateDecision(
            False, f"{_ci('AUROC', auroc)} lies wholly below the floor {cfg.min_auroc:.3f}"
        )
    lo, hi = cfg.slope_range
    if not np.isfinite(slope).all():
        return GateDecision(False, f"{_ci('calibration slope', slope, 2)} could not be estimated")
    if slope[2] < lo or slope[1] > hi:
        side = "below" if slope[2] < lo else "above"
        return GateDecision(
            False,
            f"{_ci('calibration slope', slope, 2)} lies wholly {side} the acceptable [{lo}, {hi}]",
        )
    floors = f"{_ci('AUROC', auroc)}, {_ci('calibration slope', slope, 2)}"
    if ev.vs_champion is None:
        return GateDecision(True, f"no champion yet; {floors}")
    d = ev.vs_champion
    diff = _ci("log loss difference (candidate - champion)", d, 4)
    where = f"paired on {ev.n_compared:,} admissions"
    if d[1] > cfg.log_loss_margin:
        return GateDecision(
            False,
            f"worse than the champion: {diff} {where}, whole CI above the margin {cfg.log_loss_margin}",
        )
    return GateDecision(
        True,
        f"not worse than the champion: {diff} {where} (margin {cfg.log_loss_margin}); {floors}",
    )


def gate_evidence(client, name: str, scored, result, cfg: TrainConfig) -> GateEvidence:
    """The candidate's figures and, when a champion sits, the paired log-loss difference to it on
    the same admissions (the candidate's out-of-fold or held-out predictions vs the champion's)."""
    import mlflow

    from models.building import metrics as M
    from models.lifecycle.resolve import find_version, load
    from models.scoring.predict import score_table

    evidence = GateEvidence(result.test_metrics, result.null_log_loss)
    champion = find_version(client, name)  # the champion alias by default
    if champion is None:
        return evidence
    lm = load(mlflow.get_tracking_uri(), name, champion.version)
    rows = scored.iloc[result.eval_rows].reset_index(drop=True)
    p_champion = score_table(lm.model, lm.bands, rows)["risk"].to_numpy()  # as its pyfunc does
    y = result.test_frame["y"].to_numpy()
    evidence.vs_champion = M.paired_difference_ci(
        M.row_log_loss(y, result.eval_P),
        M.row_log_loss(y, p_champion),
        result.test_frame["group"].to_numpy(),
        n_boot=max(cfg.n_bootstrap, 1000),
        seed=cfg.seed,
    )
    evidence.n_compared = len(y)
    return evidence
