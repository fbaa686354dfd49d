"""Drift monitoring: how far a current batch of admissions is from the reference cohort.

Used by ``python -m pipelines.monitor``. Three views, each with a threshold (the settings' ``monitor``
section, features.settings.MonitorConfig):

- Feature drift: the Population Stability Index of every predictor, on the scored record (scales
  filled from items). Numeric predictors: bins at the reference's quantiles (deciles by default;
  tied edges merged), open-ended at both ends. Categorical predictors (codes, booleans): one bin
  per code. Missing values are a bin of their own in both, so a questionnaire that stops being
  filled in shows as drift.
- Data contract: the table suites (validation.report.validate_tables) run on the current batch;
  blocking issues are listed.
- Score drift: both batches scored with the champion (batch.scoring, same row validation): the
  difference in mean risk, the PSI of risk (reference deciles) and the PSI of the band mix.
  The current scores may instead come from the service's audit store (SQLite), when no current
  intake is at hand: feature drift and the contract check are then skipped, with a note.

PSI = sum over bins of (cur - ref) * ln(cur / ref), proportions floored at ``EPS`` so that an
empty bin does not give infinity. Common reading: < 0.1 stable, 0.1-0.2 moderate, > 0.2 shift.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.catalog import PREDICTORS
from features.settings import BAND_NAMES, MonitorConfig  # the [monitor] settings section
from reporting import figure_uri

EPS = 1e-4
MISSING = "(missing)"


# --------------------------------------------------------------------------------------------
# PSI


def psi_from_counts(ref: np.ndarray, cur: np.ndarray, eps: float = EPS) -> float:
    """PSI of two histograms over the same bins (counts or proportions)."""
    ref = np.asarray(ref, dtype=float)
    cur = np.asarray(cur, dtype=float)
    if ref.sum() <= 0 or cur.sum() <= 0:
        return float("nan")
    r = np.maximum(ref / ref.sum(), eps)
    c = np.maximum(cur / cur.sum(), eps)
    return float(np.sum((c - r) * np.log(c / r)))


def quantile_edges(ref: np.ndarray, bins: int = 10) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (missing values ignored; ties merged)."""
    x = np.asarray(ref, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return np.array([])
    qs = np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(qs)


def numeric_histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin (-inf, e1], (e1, e2], ..., (ek, inf), then a last bin for missing."""
    x = np.asarray(values, dtype=float)
    miss = np.isnan(x)
    idx = np.searchsorted(edges, x[~miss], side="left")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(float)
    return np.append(counts, miss.sum())


def psi_numeric(ref: np.ndarray, cur: np.ndarray, bins: int = 10) -> float:
    edges = quantile_edges(ref, bins)
    return psi_from_counts(numeric_histogram(ref, edges), numeric_histogram(cur, edges))


def categorical_counts(
    ref: pd.Series, cur: pd.Series, codes: tuple[str, ...] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(categories, ref counts, cur counts): every code (or seen value) plus a missing bin."""

    def norm(s: pd.Series) -> pd.Series:
        s = s.astype(object)
        return s.where(s.notna() & (s != ""), MISSING).map(str)

    r, c = norm(ref), norm(cur)
    cats = list(codes or ())
    for v in list(pd.unique(r)) + list(pd.unique(c)):
        if v not in cats and v != MISSING:
            cats.append(v)
    cats.append(MISSING)
    rc = r.value_counts().reindex(cats, fill_value=0).to_numpy(dtype=float)
    cc = c.value_counts().reindex(cats, fill_value=0).to_numpy(dtype=float)
    return cats, rc, cc


def psi_categorical(ref: pd.Series, cur: pd.Series, codes: tuple[str, ...] | None = None) -> float:
    _, rc, cc = categorical_counts(ref, cur, codes)
    return psi_from_counts(rc, cc)


# --------------------------------------------------------------------------------------------
# Feature drift


def _bool_text(s: pd.Series) -> pd.Series:
    def one(v):
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return None
        t = str(v).strip().lower()
        return {"1": "true", "1.0": "true", "0": "false", "0.0": "false"}.get(t, t)

    return pd.Series([one(v) for v in s.astype(object)], index=s.index, dtype=object)


def feature_drift(ref: pd.DataFrame, cur: pd.DataFrame, bins: int = 10) -> list[dict[str, Any]]:
    """PSI per predictor (scored frames: scale fields filled from items), largest first."""
    rows = []
    for f in PREDICTORS:
        r = ref[f.name] if f.name in ref else pd.Series([None] * len(ref), dtype=object)
        c = cur[f.name] if f.name in cur else pd.Series([None] * len(cur), dtype=object)
        if f.kind in ("integer", "number"):
            rv = pd.to_numeric(r, errors="coerce").to_numpy(dtype=float)
            cv = pd.to_numeric(c, errors="coerce").to_numpy(dtype=float)
            psi = psi_numeric(rv, cv, bins)
            detail = {
                "ref_mean": _num(np.nanmean(rv)) if (~np.isnan(rv)).any() else None,
                "cur_mean": _num(np.nanmean(cv)) if (~np.isnan(cv)).any() else None,
            }
            kind = "numeric"
        else:
            if f.kind == "boolean":
                r, c, codes = _bool_text(r), _bool_text(c), ("true", "false")
            else:
                codes = f.codes
            psi = psi_categorical(r, c, codes)
            detail = {}
            kind = "categorical"
        rmiss = (
            float(pd.isna(pd.to_numeric(r, errors="coerce")).mean())
            if kind == "numeric"
            else (float((r.isna() | (r.astype(object) == "")).mean()))
        )
        cmiss = (
            float(pd.isna(pd.to_numeric(c, errors="coerce")).mean())
            if kind == "numeric"
            else (float((c.isna() | (c.astype(object) == "")).mean()))
        )
        rows.append(
            {
                "feature": f.name,
                "driver": f.driver,
                "kind": kind,
                "psi": _num(psi),
                "ref_missing": round(rmiss, 4),
                "cur_missing": round(cmiss, 4),
                **detail,
            }
        )
    rows.sort(key=lambda d: -(d["psi"] if d["psi"] is not None else -1))
    return rows


def _num(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else round(x, 6)


# --------------------------------------------------------------------------------------------
# Scores


@dataclass
class Scores:
    risk: np.ndarray
    band: np.ndarray
    source: str
    rejected: int = 0


def score_batch(frame: pd.DataFrame, lm, chunk_size: int = 20_000) -> tuple[Scores, pd.DataFrame]:
    """Validate and score flat records in memory (batch.scoring); (scores, scored frame)."""
    from batch.scoring import ChunkScorer
    from features.build import typed_records
    from models.scoring.predict import frame_to_matrix

    scorer = ChunkScorer(lm, top_n=0)
    risks, bands, rejected, kept = [], [], set(), []
    for start in range(0, max(len(frame), 1), chunk_size):
        chunk = frame.iloc[start : start + chunk_size]
        if chunk.empty:
            break
        out, rej = scorer.run(chunk, start + 1)
        risks.append(out["risk"].to_numpy(dtype=float))
        bands.append(out["band"].to_numpy(dtype=object))
        rejected |= {r["row"] for r in rej}
        kept.append(chunk[chunk["admission_id"].isin(set(out["admission_id"]))])
    ok = pd.concat(kept) if kept else frame.iloc[:0]
    _, scored, _ = frame_to_matrix(typed_records(ok))
    risk = np.concatenate(risks) if risks else np.array([])
    band = np.concatenate(bands) if bands else np.array([], dtype=object)
    return Scores(risk, band, "scored with the model", len(rejected)), scored


def read_audit(path: str | Path, model_version: str | None = None) -> Scores:
    """Scores from the service's audit store (written by ``serving.audit.AuditLog``, read with
    its ``read_scores``). With ``model_version``, only that version's rows are used."""
    from serving.audit import AuditLog

    rows = AuditLog.read_scores(path, model_version)
    what = f"audit store {Path(path)} (table scores"
    if model_version:
        what += f", model version {model_version}"
    risk = np.array([r[1] for r in rows], dtype=float)
    band = np.array([r[2] for r in rows], dtype=object)
    return Scores(risk, band, what + ")")


def score_shift(ref: Scores, cur: Scores, bands, bins: int = 10) -> dict[str, Any]:
    edges = quantile_edges(ref.risk, bins)
    cur_band = np.array(
        [
            b if isinstance(b, str) and b else bands.band(p)
            for b, p in zip(cur.band, cur.risk, strict=True)
        ],
        dtype=object,
    )
    names = list(BAND_NAMES)
    rb = np.array([(ref.band == b).sum() for b in names], dtype=float)
    cb = np.array([(cur_band == b).sum() for b in names], dtype=float)
    return {
        "ref_rows": int(len(ref.risk)),
        "cur_rows": int(len(cur.risk)),
        "ref_mean_risk": _num(np.mean(ref.risk)) if len(ref.risk) else None,
        "cur_mean_risk": _num(np.mean(cur.risk)) if len(cur.risk) else None,
        "mean_risk_diff": _num(np.mean(cur.risk) - np.mean(ref.risk))
        if len(ref.risk) and len(cur.risk)
        else None,
        "risk_psi": _num(
            psi_from_counts(numeric_histogram(ref.risk, edges), numeric_histogram(cur.risk, edges))
        ),
        "band_psi": _num(psi_from_counts(rb, cb)),
        "ref_band_mix": {b: _num(v / max(rb.sum(), 1)) for b, v in zip(names, rb, strict=True)},
        "cur_band_mix": {b: _num(v / max(cb.sum(), 1)) for b, v in zip(names, cb, strict=True)},
        "cur_source": cur.source,
    }


# --------------------------------------------------------------------------------------------
# The whole check


@dataclass
class MonitorResult:
    config: MonitorConfig
    model_version: str
    reference: str
    current: str
    features: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] | None = None
    alarms: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plots: dict[str, str] = field(default_factory=dict)  # name -> data URI
    outcomes: Any = None  # monitoring.outcomes.OutcomeResult when the batch carries outcomes
    _ref_risk: np.ndarray | None = None
    _cur_risk: np.ndarray | None = None

    @property
    def drifting(self) -> list[dict[str, Any]]:
        t = self.config.psi_threshold
        return [f for f in self.features if f["psi"] is not None and f["psi"] > t]

    def evaluate(self) -> None:
        cfg = self.config
        for f in self.drifting:
            self.alarms.append(f"feature {f['feature']}: PSI {f['psi']:.3f} > {cfg.psi_threshold}")
        s = self.scores
        if (
            s.get("mean_risk_diff") is not None
            and abs(s["mean_risk_diff"]) > cfg.score_shift_threshold
        ):
            self.alarms.append(
                f"mean risk moved by {s['mean_risk_diff']:+.3f} "
                f"(> {cfg.score_shift_threshold}; {s['ref_mean_risk']:.3f} -> {s['cur_mean_risk']:.3f})"
            )
        if s.get("risk_psi") is not None and s["risk_psi"] > cfg.psi_threshold:
            self.alarms.append(f"risk distribution: PSI {s['risk_psi']:.3f} > {cfg.psi_threshold}")
        if s.get("band_psi") is not None and s["band_psi"] > cfg.psi_threshold:
            self.alarms.append(f"band mix: PSI {s['band_psi']:.3f} > {cfg.psi_threshold}")
        v = self.validation
        if v and v.get("blocking") and cfg.fail_on_blocking:
            self.alarms.append(
                f"current batch fails the data contract ({v['blocking_errors']} blocking problem(s))"
            )

    def add_outcomes(self, outcomes) -> None:
        """Performance on outcomes (monitoring.outcomes): its alarms count as this run's alarms."""
        self.outcomes = outcomes
        self.alarms += outcomes.alarms

    @property
    def exit_code(self) -> int:
        return 1 if self.alarms else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "drift" if self.alarms else "ok",
            "exit_code": self.exit_code,
            "model_version": self.model_version,
            "reference": self.reference,
            "current": self.current,
            "thresholds": self.config.model_dump(),
            "alarms": self.alarms,
            "notes": self.notes,
            "drifting_features": [f["feature"] for f in self.drifting],
            "scores": self.scores,
            "validation": self.validation,
            "features": self.features,
            "outcomes": None if self.outcomes is None else self.outcomes.to_dict(),
        }

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        j = out / "monitoring.json"
        j.write_text(json.dumps(self.to_dict(), indent=1, default=str) + "\n")
        h = out / "monitoring_report.html"
        h.write_text(render_html(self), encoding="utf-8")
        return h, j


def validation_summary(report) -> dict[str, Any]:
    return {
        "blocking": report.blocking,
        "errors": len(report.errors),
        "blocking_errors": len(report.blocking_errors),
        "summary": [
            {k: g[k] for k in ("table", "field", "rule", "count", "reason", "blocking")}
            | {"example_ids": list(map(str, g["example_ids"]))}
            for g in report.summary_rows()
        ][:50],
    }


# --------------------------------------------------------------------------------------------
# Plots (PNG as data URIs: the report loads nothing from anywhere)


def make_plots(result: MonitorResult, ref_risk: np.ndarray, cur_risk: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(ref_risk) and len(cur_risk):
        fig, ax = plt.subplots(figsize=(6, 3))
        b = np.linspace(0, 1, 41)
        ax.hist(ref_risk, bins=b, density=True, alpha=0.5, label="reference")
        ax.hist(cur_risk, bins=b, density=True, alpha=0.5, label="current")
        ax.set_xlabel("risk of a low early alliance")
        ax.set_ylabel("density")
        ax.legend()
        result.plots["risk"] = figure_uri(fig)
    s = result.scores
    if s.get("ref_band_mix"):
        fig, ax = plt.subplots(figsize=(5, 3))
        names = list(s["ref_band_mix"])
        x = np.arange(len(names))
        ax.bar(x - 0.2, [s["ref_band_mix"][n] or 0 for n in names], 0.4, label="reference")
        ax.bar(x + 0.2, [s["cur_band_mix"][n] or 0 for n in names], 0.4, label="current")
        ax.set_xticks(x, names)
        ax.set_ylabel("share of admissions")
        ax.legend()
        result.plots["bands"] = figure_uri(fig)
    top = [f for f in result.features if f["psi"] is not None][:15]
    if top:
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(top) + 1))
        t = result.config.psi_threshold
        ax.barh(
            [f["feature"] for f in top][::-1],
            [f["psi"] for f in top][::-1],
            color=["#a40000" if f["psi"] > t else "#4a7ab0" for f in top][::-1],
        )
        ax.axvline(t, color="k", ls="--", lw=1)
        ax.set_xlabel("PSI (dashed: threshold)")
        result.plots["features"] = figure_uri(fig)


# --------------------------------------------------------------------------------------------
# HTML

SCORE_WORDS = {
    "ref_rows": "admissions scored in the reference",
    "cur_rows": "admissions scored in the current batch",
    "ref_mean_risk": "mean risk, reference",
    "cur_mean_risk": "mean risk, current batch",
    "mean_risk_diff": "change in mean risk (current - reference)",
    "risk_psi": "shift of the risk distribution (PSI)",
    "band_psi": "shift of the band mix (PSI)",
    "cur_source": "current scores come from",
}
THRESHOLD_WORDS = {
    "psi_threshold": "alarm when a PSI (feature, risk or band mix) exceeds",
    "score_shift_threshold": "alarm when the mean risk moves by more than",
    "bins": "bins for numbers and risk (reference quantiles)",
    "fail_on_blocking": "a blocking data-contract problem is an alarm",
    "min_rows": "fewest current admissions for drift to be computed",
}


def render_html(r: MonitorResult) -> str:
    """The report from reporting/templates/monitoring_report.html.j2, in plain words."""
    from reporting import render

    s = r.scores
    scores = [
        (
            SCORE_WORDS.get(k, k.replace("_", " ")),
            v,
        )
        for k, v in s.items()
        if not isinstance(v, dict)
    ]
    band_mix = None
    if s.get("ref_band_mix"):
        band_mix = pd.DataFrame(
            [(b, s["ref_band_mix"][b], s["cur_band_mix"][b]) for b in s["ref_band_mix"]],
            columns=["band", "share, reference", "share, current batch"],
        )
    features = pd.DataFrame(
        [
            (
                f["feature"],
                f["driver"],
                f["kind"],
                f["psi"],
                f.get("ref_mean"),
                f.get("cur_mean"),
                f["ref_missing"],
                f["cur_missing"],
            )
            for f in r.features
        ],
        columns=[
            "feature",
            "driver",
            "kind",
            "PSI",
            "mean, reference",
            "mean, current",
            "share missing, reference",
            "share missing, current",
        ],
    )
    t = r.config.psi_threshold
    v = r.validation
    validation_rows = None
    if v is not None:
        validation_rows = pd.DataFrame(
            [
                (
                    g["table"],
                    g["field"],
                    g["rule"],
                    g["count"],
                    g["reason"],
                    ", ".join(g["example_ids"]),
                    "yes" if g["blocking"] else "no",
                )
                for g in v["summary"]
            ],
            columns=["table", "field", "rule", "rows failing", "reason", "example ids", "blocking"],
        )
    outcomes = None
    if r.outcomes is not None:
        from monitoring.outcomes import section_context

        outcomes = section_context(r.outcomes)
    return render(
        "monitoring_report.html.j2",
        title=f"Drift monitoring: alliance-risk model version {r.model_version}",
        reference=r.reference,
        current=r.current,
        alarms=r.alarms,
        notes=r.notes,
        outcomes=outcomes,
        plots=r.plots,
        scores=scores,
        band_mix=band_mix,
        features=features,
        feature_classes=["bad" if (f["psi"] or 0) > t else "" for f in r.features],
        validation=v,
        validation_rows=validation_rows,
        validation_classes=["bad" if g["blocking"] else "" for g in (v or {}).get("summary", [])],
        thresholds=[(THRESHOLD_WORDS.get(k, k), val) for k, val in r.config.model_dump().items()],
        eps=EPS,
    )
