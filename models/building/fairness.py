"""Fairness at the band thresholds: what the flags do to each subgroup, where decisions are made.

Why a separate table from ``metrics.subgroup_metrics`` (AUROC, Brier, calibration per group): a
service acts on the band, not on the probability. So per subgroup level (sex, ethnicity, age band,
primary substance, service, referral source) this module reports, each with a 95% CI:

- flag rate: share of clients flagged moderate-or-higher (p >= moderate_from) and high
  (p >= high_from), the same ``p >= lower`` rule as ``metrics.band_table``;
- sensitivity at each threshold: of the clients who went on to a low alliance, the share flagged;
- PPV at each threshold: of the clients flagged, the share who went on to a low alliance;
- O/E: low alliances observed / expected (sum of p), calibration-in-the-large per group.

CIs: proportions by the Wilson score interval (right at the small counts subgroups have, where
the Wald interval can leave [0, 1]); O/E by the exact Poisson interval of the observed count divided
by the expected count (Ulm 1990, the usual interval for a standardised ratio; defined at 0 events).

Small cells (seismometer's ``censor_min_count`` idea, kept here rather than in a library): a level
with fewer than ``min_count`` (10) clients is suppressed whole (its n is shown, nothing else); a
measure whose own denominator (clients, clients with the outcome, clients flagged) is below 10 is
suppressed on its own. Small cells re-identify clients and their figures are noise.

Largest gap per subgroup and measure: highest minus lowest unsuppressed level, with the MOVER
interval for a difference of two independent estimates (Zou & Donner 2008; Newcombe's method 10
for proportions). The pair is chosen after looking, so the gap is biased away from 0 when levels do
not differ: read a CI that includes 0 as "no evidence of a gap", not as "no gap".

fairlearn's MetricFrame computes per-group point values, but neither these intervals nor the
suppression rule; the arithmetic here is a few lines, so no extra dependency is taken on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2, norm

from features.settings import BAND_NAMES

MIN_COUNT = 10
Z95 = float(norm.ppf(0.975))
AGE_EDGES = [15, 25, 35, 45, 55, 91]
AGE_LABELS = ["16-24", "25-34", "35-44", "45-54", "55+"]
# Subgroup columns as they are named in the scoring record (age_band is derived from age).
SUBGROUPS: dict[str, str] = {
    "sex": "sex",
    "ethnicity": "ethnicity",
    "age_band": "age band",
    "primary_substance": "primary substance",
    "service_id": "service",
    "referral_source": "referral source",
}
# measure -> (plain words, denominator)
MEASURES: dict[str, tuple[str, str]] = {
    "flag_rate_moderate": ("share flagged moderate or high", "clients"),
    "flag_rate_high": ("share flagged high", "clients"),
    "sensitivity_moderate": (
        "of clients with a low alliance, share flagged moderate or high",
        "clients with a low alliance",
    ),
    "sensitivity_high": (
        "of clients with a low alliance, share flagged high",
        "clients with a low alliance",
    ),
    "ppv_moderate": (
        "of clients flagged moderate or high, share with a low alliance",
        "clients flagged moderate or high",
    ),
    "ppv_high": ("of clients flagged high, share with a low alliance", "clients flagged high"),
    "oe_ratio": ("low alliances observed / expected by the model", "clients"),
}
# Column headings of the readable table (the plots and gap table use MEASURES' longer words).
SHORT: dict[str, str] = {
    "flag_rate_moderate": "flagged moderate or high",
    "flag_rate_high": "flagged high",
    "sensitivity_moderate": "sensitivity at moderate",
    "sensitivity_high": "sensitivity at high",
    "ppv_moderate": "PPV at moderate",
    "ppv_high": "PPV at high",
    "oe_ratio": "observed / expected",
}
CARD_SECTION = "Fairness at the band thresholds"
CARD_NOTE = (
    "Per subgroup level on the held-out test: share flagged moderate-or-higher and high, "
    "sensitivity and PPV at each threshold, and low alliances observed / expected, each as "
    "value (95% CI: Wilson for shares, exact Poisson for observed / expected). A level with fewer "
    f"than {MIN_COUNT} clients, or a measure whose own denominator is below {MIN_COUNT}, is "
    "suppressed (shown as 'suppressed')."
)
COLUMNS = [
    "subgroup",
    "level",
    "n",
    "measure",
    "value",
    "lo",
    "hi",
    "numerator",
    "denominator",
    "suppressed",
]


def age_band(age: pd.Series) -> pd.Series:
    """16-24, 25-34, 35-44, 45-54, 55+ (the training card's bands); missing stays missing."""
    cut = pd.cut(
        pd.to_numeric(age, errors="coerce"), AGE_EDGES, right=False, labels=AGE_LABELS
    ).astype(object)
    return cut.where(cut.notna(), None)


def subgroup_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The subgroup columns of a scoring-record frame (age banded), as text; absent -> missing."""
    out = pd.DataFrame(index=frame.index)
    for col in SUBGROUPS:
        if col == "age_band":
            src = age_band(frame["age"]) if "age" in frame else pd.Series(None, index=frame.index)
        else:
            src = frame[col] if col in frame else pd.Series(None, index=frame.index)
        out[col] = src.astype("string").fillna("missing").astype(object)
    return out


def wilson(k: float, n: float, z: float = Z95) -> tuple[float, float, float]:
    """(k/n, lo, hi): Wilson score interval; NaN for n = 0."""
    if n <= 0:
        return (float("nan"),) * 3
    phat = k / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return float(phat), float(max(0.0, centre - half)), float(min(1.0, centre + half))


def oe_interval(
    observed: float, expected: float, alpha: float = 0.05
) -> tuple[float, float, float]:
    """(O/E, lo, hi): exact Poisson bounds of O (chi-square form) divided by E."""
    if expected <= 0:
        return (float("nan"),) * 3
    lo = 0.0 if observed == 0 else chi2.ppf(alpha / 2, 2 * observed) / 2
    hi = chi2.ppf(1 - alpha / 2, 2 * observed + 2) / 2
    return float(observed / expected), float(lo / expected), float(hi / expected)


def _level_rows(
    sub: str, level: str, y: np.ndarray, p: np.ndarray, cuts: Mapping[str, float], min_count: int
) -> list[dict[str, Any]]:
    n = int(y.size)
    events = int(y.sum())
    counts: dict[str, tuple[float, float]] = {}
    for name, t in cuts.items():
        flag = p >= t
        k = int(flag.sum())
        tp = int((flag & (y == 1)).sum())
        counts[f"flag_rate_{name}"] = (k, n)
        counts[f"sensitivity_{name}"] = (tp, events)
        counts[f"ppv_{name}"] = (tp, k)
    rows = []
    for measure in MEASURES:
        if measure == "oe_ratio":
            num, den = events, n
            value, lo, hi = oe_interval(events, float(p.sum()))
        else:
            num, den = counts[measure]
            value, lo, hi = wilson(num, den)
        suppressed = n < min_count or den < min_count
        row = {
            "subgroup": sub,
            "level": level,
            "n": n,
            "measure": measure,
            "value": value,
            "lo": lo,
            "hi": hi,
            "numerator": num,
            "denominator": den,
            "suppressed": suppressed,
        }
        if suppressed:
            row.update(value=np.nan, lo=np.nan, hi=np.nan, numerator=np.nan)
            if n < min_count:
                row["denominator"] = np.nan
        rows.append(row)
    return rows


def fairness_table(
    y: Sequence[float] | np.ndarray,
    p: Sequence[float] | np.ndarray,
    frame: pd.DataFrame,
    moderate_from: float,
    high_from: float,
    min_count: int = MIN_COUNT,
) -> pd.DataFrame:
    """One row per (subgroup, level, measure); ``frame`` is aligned with y and p by position and
    holds the scoring-record columns (or already the subgroup columns). Columns: see COLUMNS.
    Levels sorted as text with "missing" last; suppressed rows keep n (and the denominator when
    only the measure is suppressed) and carry NaN elsewhere."""
    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    if len(frame) != y.size or p.size != y.size:
        raise ValueError(f"frame has {len(frame)} rows, y {y.size}, p {p.size}")
    groups = subgroup_frame(frame.reset_index(drop=True))
    cuts = dict(zip(BAND_NAMES[1:], (float(moderate_from), float(high_from)), strict=True))
    rows: list[dict[str, Any]] = []
    for sub in SUBGROUPS:
        labels = groups[sub].to_numpy(dtype=object)
        levels = sorted(set(labels) - {"missing"}) + (["missing"] if "missing" in labels else [])
        for level in levels:
            mask = labels == level
            rows += _level_rows(sub, level, y[mask], p[mask], cuts, min_count)
    return pd.DataFrame(rows, columns=COLUMNS)


def largest_gaps(table: pd.DataFrame) -> pd.DataFrame:
    """Per (subgroup, measure): highest minus lowest unsuppressed level, MOVER 95% CI.

    Columns: subgroup, measure, highest, lowest, gap, lo, hi (NaN gap with < 2 levels)."""
    rows = []
    for (sub, measure), g in table.groupby(["subgroup", "measure"], sort=False):
        ok = g[~g["suppressed"] & g["value"].notna()]
        row: dict[str, Any] = {"subgroup": sub, "measure": measure}
        if len(ok) < 2:
            rows.append(row | {"highest": None, "lowest": None, "gap": np.nan})
            continue
        a = ok.loc[ok["value"].idxmax()]
        b = ok.loc[ok["value"].idxmin()]
        d = float(a["value"] - b["value"])
        lo = d - np.sqrt((a["value"] - a["lo"]) ** 2 + (b["hi"] - b["value"]) ** 2)
        hi = d + np.sqrt((a["hi"] - a["value"]) ** 2 + (b["value"] - b["lo"]) ** 2)
        rows.append(
            row
            | {
                "highest": a["level"],
                "lowest": b["level"],
                "gap": d,
                "lo": float(lo),
                "hi": float(hi),
            }
        )
    return pd.DataFrame(
        rows, columns=["subgroup", "measure", "highest", "lowest", "gap", "lo", "hi"]
    )


def _ci_text(v: float, lo: float, hi: float, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "suppressed"
    return f"{v:.{nd}f} ({lo:.{nd}f} to {hi:.{nd}f})"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """A readable wide table: one row per subgroup level, "value (lo to hi)" per measure."""
    rows = []
    for (sub, level), g in table.groupby(["subgroup", "level"], sort=False):
        row = {"subgroup": SUBGROUPS.get(sub, sub), "level": level, "clients": int(g["n"].iloc[0])}
        for _, r in g.iterrows():
            row[SHORT[r["measure"]]] = _ci_text(r["value"], r["lo"], r["hi"])
        rows.append(row)
    return pd.DataFrame(rows)


def display_gaps(gaps: pd.DataFrame) -> pd.DataFrame:
    """Readable gaps: subgroup, measure, highest level, lowest level, gap (95% CI)."""
    return pd.DataFrame(
        {
            "subgroup": [SUBGROUPS.get(s, s) for s in gaps["subgroup"]],
            "measure": [MEASURES[m][0] for m in gaps["measure"]],
            "highest": gaps["highest"].fillna("-"),
            "lowest": gaps["lowest"].fillna("-"),
            "largest gap (95% CI)": [
                "fewer than two levels to compare"
                if np.isnan(r.gap)
                else _ci_text(r.gap, r.lo, r.hi)
                for r in gaps.itertuples()
            ],
        }
    )


def plot_measure(table: pd.DataFrame, measure: str, title_note: str = ""):
    """One forest plot for one measure: every unsuppressed level with its 95% CI. Save it with
    ``bbox_inches="tight"`` (``save_plots``, ``reporting.figure_uri``): the labels sit outside
    the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = table[(table["measure"] == measure) & ~table["suppressed"]]
    labels = [
        f"{SUBGROUPS.get(s, s)}: {lv}" for s, lv in zip(g["subgroup"], g["level"], strict=True)
    ]
    fig, ax = plt.subplots(figsize=(6.5, 0.24 * max(len(g), 4) + 1.2))
    yy = np.arange(len(g))[::-1]
    if len(g):
        v = g["value"].to_numpy(dtype=float)
        lo, hi = g["lo"].to_numpy(dtype=float), g["hi"].to_numpy(dtype=float)
        err = np.maximum(np.vstack([v - lo, hi - v]), 0.0)  # rounding at 0 or 1
        ax.errorbar(v, yy, xerr=err, fmt="o", ms=3, color="#1f4e79", ecolor="#7a9cc6", lw=1)
        ax.set_yticks(yy, labels, fontsize=7)
    if measure == "oe_ratio":
        ax.axvline(1.0, color="k", ls="--", lw=1)
    words = MEASURES[measure][0]
    ax.set_xlabel(words + " (95% CI)", fontsize=8)
    ax.set_title((title_note + " " if title_note else "") + words, fontsize=9)
    # No tight_layout here: every caller saves with bbox_inches="tight", which already fits the
    # long level labels (a second layout pass cost 0.05 s a figure, 14 figures a training).
    return fig


def save_plots(table: pd.DataFrame, out_dir: str | Path, title_note: str = "") -> dict[str, Path]:
    """One PNG per measure in ``out_dir``: {measure: path}."""
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for measure in MEASURES:
        fig = plot_measure(table, measure, title_note)
        path = out / f"fairness_{measure}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        paths[measure] = path
    return paths
