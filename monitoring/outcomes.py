"""Performance on outcomes: is the champion still right about the clients a service sees now?

WAI-S ratings arrive within three weeks of admission. When a monitored batch carries them (the
contract's ``alliance`` table), ``pipelines.monitor`` calls ``check_outcomes``, which

1. labels the batch with the champion's own label definition (rater, threshold, minimum valid
   weeks: ``ScoringModel.reference["label"]``, saved with the model at training, the same values the
   run logs as ``label_definition.*``), through ``features.labels.build_labels``, the one builder;
2. takes the champion's score of each labelled admission: scored here from the batch's intake, or
   read from the service's audit store and joined by the keyed hash the audit already keeps
   (HMAC-SHA256 of admission_id with the installation key, which is read on this machine and
   never written anywhere else);
3. reports observed/expected events (O/E) with its CI (the wider of the bootstrap's and the exact
   Poisson interval: the bootstrap of a ratio is too narrow with few events), calibration slope, AUROC and Brier, each
   with a 95% cluster-bootstrap CI (``models.building.metrics.bootstrap_ci``, counsellors as clusters), next
   to the training run's held-out figures; the observed rate per band; a calibration plot of the
   training hold-out and the current batch; the fairness table at the band thresholds
   (``models.building.fairness``), one plot per measure.

Alarms (the monitor exits 1; the alarm text starts with its kind):
- calibration: the O/E 95% CI excludes 1 AND O/E is outside [0.8, 1.25]. Both, because with
  thousands of clients a 5% miscalibration is "significant" yet not worth acting on, and with a
  few dozen a 40% one is noise.
- discrimination: current AUROC below the lower bound of the training run's 95% CI.

The weekly early warning (issue 19; ``check_weekly``), when the champion has weekly models and the
batch's alliance table holds weekly ratings: for each week K in (1, 2), on the clients with a
valid rating in weeks <= K (the clients the update applies to), the updated risk of the label and
``risk_remaining`` (a low alliance in weeks K+1..3, built by ``build_labels(..., weeks=)``) from the
admission risk (scored, or read from the audit) and the ratings of weeks <= K through the served
function (``models.scoring.weekly.stacked_log_odds``): O/E, AUROC, calibration slope and Brier with
the same CIs, the admission risk's AUROC on the same clients and outcome, and the training run's
out-of-fold figures (``weekly_w<K>_*``); the not-on-track signal's sensitivity, false-alarm rate,
PPV and flag rate for ``risk_remaining``'s outcome (clients rated in week K), beside training's.
Alarm ("weekly calibration"): ``risk_remaining``'s O/E by the calibration rule above.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models import artifact as A
from reporting import figure_uri

OE_LOW, OE_HIGH = 0.8, 1.25
N_BOOT = 200
MIN_LABELLED = 30
HEADLINE = ("oe_ratio", "cal_slope", "auroc", "brier")
WORDS = {
    "oe_ratio": "low alliances observed / expected",
    "cal_slope": "calibration slope",
    "auroc": "AUROC (discrimination)",
    "brier": "Brier score",
    "cal_intercept": "calibration intercept",
    "prevalence": "share with a low alliance",
}


class OutcomeInputError(Exception):
    """The outcome data cannot be read or joined (the monitor exits 2)."""


@dataclass
class OutcomeResult:
    source: str
    label_definition: dict[str, Any]
    label_counts: dict[str, int]
    n: int
    current: dict[str, tuple[float, float, float]]
    training: dict[str, tuple[float, float, float]]
    bands: pd.DataFrame
    training_bands: pd.DataFrame | None
    fairness: pd.DataFrame
    gaps: pd.DataFrame
    alarms: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plots: dict[str, str] = field(default_factory=dict)  # title -> data URI
    synthetic: bool = False  # the batch is the simulator's (ground_truth.json beside it)
    weekly: pd.DataFrame | None = None  # per week and target (issue 19; check_weekly)
    signal: pd.DataFrame | None = None  # the not-on-track signal per week

    def evaluate(self) -> None:
        oe, lo, hi = self.current["oe_ratio"]
        if (lo > 1 or hi < 1) and not (OE_LOW <= oe <= OE_HIGH):
            way = "more" if oe > 1 else "fewer"
            self.alarms.append(
                f"calibration: {oe:.2f} times the low alliances the model expected "
                f"(95% CI {lo:.2f} to {hi:.2f}; {way} than predicted, outside {OE_LOW}-{OE_HIGH})"
            )
        auc = self.current["auroc"][0]
        t = self.training.get("auroc")
        if t is not None and np.isfinite(auc) and np.isfinite(t[1]) and auc < t[1]:
            self.alarms.append(
                f"discrimination: AUROC {auc:.3f} is below the training 95% CI "
                f"({t[1]:.3f} to {t[2]:.3f}, point {t[0]:.3f})"
            )

    def summary_line(self) -> str:
        t = self.training
        line = (
            f"outcomes: {self.n} labelled clients; observed / expected {_ci(self.current['oe_ratio'])}"
            f"; AUROC {_ci(self.current['auroc'])} (training {_ci(t.get('auroc'))})"
            f"; calibration slope {_ci(self.current['cal_slope'])}"
        )
        if self.signal is not None and len(self.signal):
            parts = []
            for r in self.signal.itertuples():
                rem = self.weekly[
                    (self.weekly["week"] == r.week) & (self.weekly["target"] == "remaining")
                ]
                oe = f", risk_remaining O/E {rem['oe_ratio'].iloc[0]:.2f}" if len(rem) else ""
                parts.append(
                    f"week {r.week}: signal sensitivity {r.sensitivity:.2f}, false alarms "
                    f"{r.false_alarm_rate:.2f}{oe}"
                )
            line += "\nweekly early warning: " + "; ".join(parts)
        return line

    def to_dict(self) -> dict[str, Any]:
        def trip(d):
            return {k: {"value": v[0], "lo": v[1], "hi": v[2]} for k, v in d.items()}

        return {
            "synthetic": self.synthetic,
            "source": self.source,
            "label_definition": self.label_definition,
            "label_counts": self.label_counts,
            "labelled_and_scored": self.n,
            "current": trip(self.current),
            "training": trip(self.training),
            "bands": self.bands.to_dict(orient="records"),
            "training_bands": None
            if self.training_bands is None
            else self.training_bands.to_dict(orient="records"),
            "fairness": self.fairness.to_dict(orient="records"),
            "fairness_gaps": self.gaps.to_dict(orient="records"),
            "alarms": self.alarms,
            "notes": self.notes,
            "weekly": None if self.weekly is None else self.weekly.to_dict(orient="records"),
            "signal": None if self.signal is None else self.signal.to_dict(orient="records"),
        }

    def metrics(self) -> dict[str, float]:
        """Flat numeric figures for MLflow (monitoring.history)."""
        out: dict[str, float] = {"outcome_labelled_clients": float(self.n)}
        out.update(A.ci_columns(self.current, "outcome_"))
        for r in self.bands.itertuples():
            out[f"outcome_observed_rate_{r.band}"] = r.observed_rate
        for r in self.gaps.itertuples():
            out[f"fairness_gap_{r.subgroup}_{r.measure}"] = r.gap
        if self.weekly is not None:
            for r in self.weekly.to_dict(orient="records"):
                for k in WEEKLY_REPORTED:
                    out[f"outcome_weekly_w{r['week']}_{r['target']}_{k}"] = r[k]
        if self.signal is not None:
            for r in self.signal.to_dict(orient="records"):
                for k in SIGNAL_REPORTED:
                    out[f"outcome_weekly_w{r['week']}_signal_{k}"] = r[k]
        return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


# --------------------------------------------------------------------------------------------
# Inputs


def label_config(lm):
    """The champion's label definition as a LabelConfig (saved in the scorer at training)."""
    from features.settings import LabelConfig

    saved = (lm.model.reference or {}).get(A.LABEL_KEY)
    if not saved:
        raise OutcomeInputError(
            f"model version {lm.version} carries no label definition: retrain it to monitor outcomes"
        )
    return LabelConfig(**{k: saved[k] for k in A.LABEL_DEFINITION})


def read_outcome_tables(folder: Path) -> dict[str, pd.DataFrame]:
    """intake (required), counsellors, alliance (required), episodes of a data folder."""
    from validation.io import TableLoadError, read_table, table_path

    try:
        tables = {}
        for name in ("intake", "counsellors", "alliance", "episodes"):
            path = table_path(folder, name)
            if path is not None:
                tables[name] = read_table(path, name)
    except TableLoadError as exc:
        raise OutcomeInputError(str(exc)) from exc
    for need in ("intake", "alliance"):
        if need not in tables:
            raise OutcomeInputError(f"{folder} holds no {need} table: outcomes need both")
    return tables


def has_outcomes(folder: Path | None) -> bool:
    from validation.io import TableLoadError, table_path

    if folder is None or not folder.is_dir():
        return False
    try:
        return table_path(folder, "alliance") is not None
    except TableLoadError:
        return True  # two alliance files: let read_outcome_tables name the problem


def score_frame(frame: pd.DataFrame, lm) -> pd.DataFrame:
    """admission_id, risk, band of every record that passes the record rules (batch.scoring)."""
    from batch.scoring import ChunkScorer

    scorer = ChunkScorer(lm, top_n=0)
    parts = []
    for start in range(0, len(frame), 20_000):
        out, _ = scorer.run(frame.iloc[start : start + 20_000], start + 1)
        parts.append(out[["admission_id", "risk", "band"]])
    if not parts:
        return pd.DataFrame(columns=["admission_id", "risk", "band"])
    return pd.concat(parts, ignore_index=True)


def audit_key(audit_db: Path, configured: str | None) -> bytes:
    """The audit's HMAC key: the configured one, else the installation key beside the store.
    Read only: a missing key file is an error here, never a new key."""
    if configured:
        return configured.encode("utf-8")
    key_file = audit_db.with_name(audit_db.name + ".key")
    try:
        key = key_file.read_text().strip()
    except OSError as exc:
        raise OutcomeInputError(
            f"the audit key {key_file} cannot be read ({type(exc).__name__}): outcomes cannot be "
            "joined to the audit's scores without the key that hashed the ids"
        ) from exc
    return key.encode("utf-8")


def audit_scores(audit_db: Path, key: bytes, ids: pd.Series, version: str) -> pd.DataFrame:
    """admission_id, risk, band from the audit store for these ids (the model version's latest
    score of each), joined through the keyed hash."""
    from serving.audit import AuditLog, AuditReadError, hash_id

    by_hash = {hash_id(key, str(a)): str(a) for a in ids}
    try:
        rows = AuditLog.read_scores(audit_db, version)
    except (OSError, AuditReadError) as exc:
        raise OutcomeInputError(f"cannot read the scores table of {audit_db}: {exc}") from exc
    found: dict[str, tuple[float, str]] = {}
    for h, prob, band in rows:  # in insertion order: a later score of an admission wins
        if h in by_hash:
            found[by_hash[h]] = (float(prob), band)
    return pd.DataFrame(
        {
            "admission_id": list(found),
            "risk": [v[0] for v in found.values()],
            "band": [v[1] for v in found.values()],
        }
    )


def training_figures(tracking_uri: str, name: str, version: str):
    """(held-out metrics {name: (point, lo, hi)}, band table or None, (y, p) or None) of the
    training run that produced this model version."""
    import tempfile

    import mlflow

    from models.lifecycle.resolve import resolve
    from models.lifecycle.store import get_client

    mv = resolve(tracking_uri, name, version)
    client = get_client(tracking_uri)
    metrics: dict[str, tuple[float, float, float]] = {}
    bands = holdout = None
    if not mv.run_id:
        return metrics, bands, holdout
    m = client.get_run(mv.run_id).data.metrics
    for k in A.OUTCOME_FIGURES:
        if (figure := A.read_test_metric(m, k)) is not None:
            metrics[k] = figure
    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        for art, what in ((A.BANDS_ARTIFACT, "bands"), (A.HOLDOUT_ARTIFACT, "holdout")):
            try:
                path = mlflow.artifacts.download_artifacts(
                    run_id=mv.run_id, artifact_path=art, dst_path=tmp
                )
            except Exception:  # noqa: BLE001 - an older run without the file: shown as absent
                continue
            df = pd.read_csv(path)
            if what == "bands":
                bands = df
            else:
                holdout = (df["y"].to_numpy(dtype=float), df["p"].to_numpy(dtype=float))
    return metrics, bands, holdout


# --------------------------------------------------------------------------------------------
# The check


def _groups(frame: pd.DataFrame) -> np.ndarray | None:
    """Counsellor per row for the cluster bootstrap; an unknown counsellor is a cluster alone."""
    if "counsellor_id" not in frame:
        return None
    c = frame["counsellor_id"].astype("string")
    alone = pd.Series([f"(unassigned {i})" for i in range(len(c))], index=c.index, dtype="string")
    return c.where(c.notna() & (c != ""), alone).to_numpy(dtype=object)


def evaluate_outcomes(
    y: np.ndarray,
    p: np.ndarray,
    frame: pd.DataFrame,
    lm,
    training: dict,
    training_bands: pd.DataFrame | None,
    holdout: tuple[np.ndarray, np.ndarray] | None,
    source: str,
    label_definition: dict,
    label_counts: dict,
    n_boot: int = N_BOOT,
    synthetic: bool = False,
) -> OutcomeResult:
    """Metrics, bands, fairness, alarms and plots for labelled, scored clients (aligned arrays)."""
    from models.building import fairness as F
    from models.building import metrics as M

    ci = M.bootstrap_ci(y, p, n_boot=n_boot, seed=0, groups=_groups(frame))
    current = {k: ci[k] for k in (*HEADLINE, "cal_intercept", "prevalence")}
    # O/E: the wider of the counsellor bootstrap and the exact Poisson interval (fairness's):
    # with few events the bootstrap of a ratio comes out too narrow (40 clients, O/E 1.32:
    # bootstrap 1.10-1.67, exact 0.81-2.1), and a small service must not alarm on noise.
    oe, blo, bhi = current["oe_ratio"]
    _, plo, phi = F.oe_interval(float(y.sum()), float(p.sum()))
    current["oe_ratio"] = (oe, min(blo, plo), max(bhi, phi))
    bands = M.band_table(y, p, lm.bands)
    fair = F.fairness_table(y, p, frame, lm.bands.moderate_from, lm.bands.high_from)
    res = OutcomeResult(
        source=source,
        label_definition=label_definition,
        label_counts=label_counts,
        n=int(y.size),
        current=current,
        training=training,
        bands=bands,
        training_bands=training_bands,
        fairness=fair,
        gaps=F.largest_gaps(fair),
        synthetic=synthetic,
    )
    if not training:
        res.notes.append("the training run's figures could not be read: no comparison")
    res.evaluate()
    tag = "SYNTHETIC DATA, " if synthetic else ""
    res.plots["Calibration: training hold-out and current batch"] = calibration_plot(
        holdout, (y, p), tag
    )
    for measure in F.MEASURES:
        res.plots[f"Fairness: {F.MEASURES[measure][0]}"] = figure_uri(
            F.plot_measure(fair, measure, f"{tag}current batch:")
        )
    return res


def check_outcomes(
    lm,
    settings,
    folder: Path,
    audit_db: Path | None = None,
    n_boot: int = N_BOOT,
) -> OutcomeResult:
    """Label ``folder``'s batch with the champion's definition and evaluate the champion on it.
    Scores come from the audit store when ``audit_db`` is given, else from scoring the intake."""
    from features.build import scoring_frame
    from features.catalog import SCORING_BY_NAME
    from features.errors import DataError
    from features.labels import build_labels

    tables = read_outcome_tables(folder)
    cfg = label_config(lm)
    try:
        labels = build_labels(tables["alliance"], cfg, tables["intake"], tables.get("episodes"))
    except DataError as exc:
        raise OutcomeInputError(f"the alliance table of {folder}: {exc}") from exc
    frame = scoring_frame(tables["intake"], tables.get("counsellors"))
    frame = frame[[c for c in frame.columns if c in SCORING_BY_NAME]]
    frame = frame.assign(admission_id=frame["admission_id"].astype(str))
    frame = frame[frame["admission_id"].isin(labels.labels.index)].drop_duplicates("admission_id")
    if audit_db is not None:
        key = audit_key(audit_db, settings.serving.audit_hash_key)
        scores = audit_scores(audit_db, key, frame["admission_id"], lm.version)
        source = (
            f"scores from the audit store {audit_db} (model version {lm.version}), joined to "
            f"the outcomes in {folder} by the audit's keyed hash"
        )
    else:
        scores = score_frame(frame, lm)
        source = f"outcomes and intake in {folder}, scored with model version {lm.version}"
    joined = frame.merge(scores, on="admission_id", how="inner")
    y = labels.labels.reindex(joined["admission_id"]).to_numpy(dtype=float)
    p = joined["risk"].to_numpy(dtype=float)
    if y.size < MIN_LABELLED or y.sum() in (0, y.size):
        raise OutcomeInputError(
            f"only {y.size} labelled and scored client(s) in {folder} "
            f"({int(y.sum())} with a low alliance): at least {MIN_LABELLED} with both outcomes "
            "are needed"
        )
    training, training_bands, holdout = training_figures(settings.tracking_uri, lm.name, lm.version)
    res = evaluate_outcomes(
        y,
        p,
        joined,
        lm,
        training,
        training_bands,
        holdout,
        source,
        labels.definition,
        labels.counts,
        n_boot,
        synthetic=is_synthetic(folder),
    )
    weekly = check_weekly(
        lm,
        cfg,
        tables,
        joined["admission_id"].to_numpy(dtype=str),
        p,
        y,
        _groups(joined),
        training_weekly_figures(settings.tracking_uri, lm.name, lm.version)
        if lm.model.weekly is not None
        else {},
        n_boot,
    )
    if weekly is not None:
        res.weekly, res.signal, weekly_alarms = weekly
        res.alarms += weekly_alarms
    elif lm.model.weekly is None:
        res.notes.append(
            f"model version {lm.version} has no weekly models: the weekly early warning is not "
            "monitored"
        )
    missing = len(frame) - len(joined)
    if missing:
        res.notes.append(
            f"{missing} labelled client(s) had no score ({'not in the audit store' if audit_db else 'failed the record rules'})"
        )
    return res


# --------------------------------------------------------------------------------------------
# The weekly early warning (issue 19)

WEEKLY_REPORTED = ("n", "events", "oe_ratio", "auroc", "cal_slope", "brier", "admission_auroc")
SIGNAL_REPORTED = ("n", "sensitivity", "false_alarm_rate", "ppv", "flag_rate")


def training_weekly_figures(tracking_uri: str, name: str, version: str) -> dict[str, float]:
    """The training run's weekly metrics (``weekly_w<K>_...`` keys, models/artifact.py), or {}."""
    from models.lifecycle.resolve import resolve
    from models.lifecycle.store import get_client

    try:
        mv = resolve(tracking_uri, name, version)
        if not mv.run_id:
            return {}
        m = get_client(tracking_uri).get_run(mv.run_id).data.metrics
    except Exception:  # noqa: BLE001 - shown as absent, as training_figures does
        return {}
    return {k: float(v) for k, v in m.items() if k.startswith(A.WEEKLY_PREFIX)}


def check_weekly(
    lm,
    cfg,
    tables: dict[str, pd.DataFrame],
    ids: np.ndarray,
    p: np.ndarray,
    y_label: np.ndarray,
    groups: np.ndarray | None,
    training: dict[str, float],
    n_boot: int = N_BOOT,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]] | None:
    """(per week and target figures, the signal per week, alarms), or None when the model has no
    weekly models or the batch no rating. ``ids``, ``p`` (admission risk), ``y_label`` aligned."""
    from features.labels import build_labels
    from features.weekly import rating_tensor
    from models.building import fairness as F
    from models.building import metrics as M
    from models.scoring.scorer import logit, sigmoid
    from models.scoring.weekly import MODEL_WEEKS, RATERS, WEEKS, band_lower, stacked_log_odds

    spec = lm.model.weekly
    if spec is None:
        return None
    R = rating_tensor(tables["alliance"], pd.Series(ids))
    if np.isnan(R).all():
        return None
    m = logit(np.asarray(p, dtype=float), eps=1e-12)
    use = [RATERS.index(r) for r in spec["band"]["raters"]]
    rows, sig_rows, alarms = [], [], []
    for K in MODEL_WEEKS:
        rated = ~np.isnan(R[:, :K, :]).all(axis=(1, 2))
        later = tuple(range(K + 1, len(WEEKS) + 1))
        rem = build_labels(
            tables["alliance"], cfg, tables["intake"], tables.get("episodes"), weeks=later
        ).labels
        y_rem = rem.reindex(pd.Index(ids).astype(str)).to_numpy(dtype=float)
        for target, y_all in (("label", np.asarray(y_label, dtype=float)), ("remaining", y_rem)):
            fit = spec["models"][str(K)][target]
            keep = rated & ~np.isnan(y_all)
            y = y_all[keep].astype(int)
            if fit is None or keep.sum() < MIN_LABELLED or y.sum() in (0, len(y)):
                continue
            q = sigmoid(stacked_log_odds(m[keep], R[keep], K, fit, spec["typical"]))
            g = None if groups is None else groups[keep]
            ci = M.bootstrap_ci(y, q, n_boot=n_boot, seed=0, groups=g)
            oe, blo, bhi = ci["oe_ratio"]
            _, plo, phi = F.oe_interval(float(y.sum()), float(q.sum()))
            oe_ci = (oe, min(blo, plo), max(bhi, phi))
            adm = M.point_metrics(y, sigmoid(m[keep]))
            nan = float("nan")
            rows.append(
                {
                    "week": K,
                    "target": target,
                    "n": int(len(y)),
                    "events": int(y.sum()),
                    **A.ci_columns(
                        {"oe_ratio": oe_ci, "auroc": ci["auroc"], "cal_slope": ci["cal_slope"]}
                    ),
                    "brier": ci["brier"][0],
                    "admission_auroc": adm["auroc"],
                    "training_auroc": training.get(A.weekly_metric(K, target, "auroc"), nan),
                    "training_cal_slope": training.get(
                        A.weekly_metric(K, target, "cal_slope"), nan
                    ),
                }
            )
            if target == "remaining" and (oe_ci[1] > 1 or oe_ci[2] < 1):
                if not OE_LOW <= oe_ci[0] <= OE_HIGH:
                    alarms.append(
                        f"weekly calibration: after week {K}, {oe_ci[0]:.2f} times the low "
                        f"alliances in weeks {later[0]}-{later[-1]} that risk_remaining expected "
                        f"(95% CI {oe_ci[1]:.2f} to {oe_ci[2]:.2f}, outside {OE_LOW}-{OE_HIGH})"
                    )
        # the signal, for risk_remaining's outcome, on clients rated in week K by the label's raters
        has = ~np.isnan(R[:, K - 1, use]).all(axis=1) & ~np.isnan(y_rem)
        if has.sum() >= MIN_LABELLED:
            lower = band_lower(spec, m[has], K)[:, use]
            with np.errstate(invalid="ignore"):
                flag = (R[has, K - 1][:, use] < lower).any(axis=1)
            y = y_rem[has].astype(int)
            pos, neg = y == 1, y == 0
            nan = float("nan")
            sig_rows.append(
                {
                    "week": K,
                    "n": int(len(y)),
                    "outcome_rate": float(y.mean()),
                    "flag_rate": float(flag.mean()),
                    "sensitivity": float(flag[pos].mean()) if pos.any() else float("nan"),
                    "false_alarm_rate": float(flag[neg].mean()) if neg.any() else float("nan"),
                    "ppv": float(y[flag].mean()) if flag.any() else float("nan"),
                    "training_sensitivity": training.get(
                        A.weekly_metric(K, "signal", "sensitivity"), nan
                    ),
                    "training_false_alarm_rate": training.get(
                        A.weekly_metric(K, "signal", "false_alarm_rate"), nan
                    ),
                }
            )
    if not rows and not sig_rows:
        return None
    return pd.DataFrame(rows), pd.DataFrame(sig_rows), alarms


# --------------------------------------------------------------------------------------------
# Plots and HTML


def is_synthetic(folder: Path) -> bool:
    """The simulator writes ground_truth.json (with "SYNTHETIC": true) beside its tables."""
    import json

    try:
        return bool(json.loads((folder / "ground_truth.json").read_text()).get("SYNTHETIC"))
    except (OSError, ValueError, AttributeError):
        return False


def calibration_plot(holdout, current, tag: str = "") -> str:
    """Observed rate vs mean predicted risk per tenth of clients, both periods, Wilson 95% bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.building.plots import draw_calibration

    fig, ax = plt.subplots(figsize=(5.5, 5))
    periods = (
        ("training hold-out", holdout, "tab:gray", "s"),
        ("current batch", current, "tab:blue", "o"),
    )
    series = [(n, d[0], d[1], c, m, True) for n, d, c, m in periods if d is not None]
    draw_calibration(ax, series, 10)
    ax.set_title(
        f"{tag}calibration, by tenth of predicted risk"
        if tag
        else "Calibration, by tenth of predicted risk"
    )
    ax.legend(loc="upper left")
    return figure_uri(fig)


def _ci(t) -> str:
    if t is None or not np.isfinite(t[0]):
        return "not available"
    return f"{t[0]:.3f} ({t[1]:.3f} to {t[2]:.3f})"


def _count_words(r: OutcomeResult) -> str:
    c = r.label_counts
    return (
        f"Of {c.get('admissions', 0)} admissions, {c.get('labelled', 0)} have a label "
        f"({c.get('low', 0)} with a low alliance), {c.get('early_leavers', 0)} left before the "
        f"first rating and {c.get('unlabelled', 0)} have no usable rating; {r.n} labelled "
        "client(s) have a score."
    )


def section_context(r: OutcomeResult) -> dict[str, Any]:
    """What reporting/templates/monitoring_outcomes.html.j2 shows: the report's "Performance on
    outcomes" and "Fairness at the band thresholds" sections."""
    from models.building import fairness as F

    d = r.label_definition
    metrics = pd.DataFrame(
        [
            (WORDS[k], _ci(r.training.get(k)), _ci(r.current.get(k)))
            for k in (*HEADLINE, "cal_intercept", "prevalence")
        ],
        columns=["measure", "training hold-out (95% CI)", "current batch (95% CI)"],
    )
    band = r.bands[["band", "n", "events", "observed_rate", "mean_predicted"]].rename(
        columns={
            "n": "clients",
            "events": "low alliances",
            "observed_rate": "observed rate",
            "mean_predicted": "mean predicted risk",
        }
    )
    if r.training_bands is not None and "observed_rate" in r.training_bands:
        band["observed rate at training"] = (
            r.training_bands.set_index("band")["observed_rate"].reindex(band["band"]).to_numpy()
        )
    return {
        "synthetic": r.synthetic,
        "source": r.source,
        "rater": d.get("rater"),
        "threshold": d.get("threshold"),
        "min_valid_weeks": d.get("min_valid_weeks"),
        "counts": _count_words(r),
        "alarms": r.alarms,
        "notes": r.notes,
        "metrics": metrics,
        "oe_low": OE_LOW,
        "oe_high": OE_HIGH,
        "n_boot": N_BOOT,
        "bands": band,
        "calibration_plots": [(t, u) for t, u in r.plots.items() if t.startswith("Calibration")],
        "min_count": F.MIN_COUNT,
        "fairness": F.display_table(r.fairness),
        "gaps": F.display_gaps(r.gaps),
        "fairness_plots": [(t, u) for t, u in r.plots.items() if t.startswith("Fairness")],
        "weekly": _weekly_table(r),
        "signal": _signal_table(r),
    }


def _weekly_table(r: OutcomeResult) -> pd.DataFrame | None:
    if r.weekly is None or r.weekly.empty:
        return None
    w = r.weekly
    words = {"label": "risk (label, weeks 1-3)", "remaining": "risk_remaining (weeks to come)"}
    return pd.DataFrame(
        {
            "after week": w["week"],
            "updated risk": w["target"].map(words),
            "clients": w["n"],
            "low alliances": w["events"],
            "observed / expected (95% CI)": [
                _ci((a, b, c))
                for a, b, c in zip(w["oe_ratio"], w["oe_ratio_lo"], w["oe_ratio_hi"], strict=True)
            ],
            "AUROC (95% CI)": [
                _ci((a, b, c))
                for a, b, c in zip(w["auroc"], w["auroc_lo"], w["auroc_hi"], strict=True)
            ],
            "admission risk AUROC": w["admission_auroc"].round(3),
            "training AUROC": w["training_auroc"].round(3),
            "calibration slope (95% CI)": [
                _ci((a, b, c))
                for a, b, c in zip(
                    w["cal_slope"], w["cal_slope_lo"], w["cal_slope_hi"], strict=True
                )
            ],
        }
    )


def _signal_table(r: OutcomeResult) -> pd.DataFrame | None:
    if r.signal is None or r.signal.empty:
        return None
    s = r.signal
    return pd.DataFrame(
        {
            "week": s["week"],
            "clients rated": s["n"],
            "low alliance later": s["outcome_rate"].round(3),
            "flagged": s["flag_rate"].round(3),
            "sensitivity": s["sensitivity"].round(3),
            "false-alarm rate": s["false_alarm_rate"].round(3),
            "PPV": s["ppv"].round(3),
            "training sensitivity": s["training_sensitivity"].round(3),
            "training false-alarm rate": s["training_false_alarm_rate"].round(3),
        }
    )
