"""Figures for the model card and the training run.

Why each function takes arrays and a path and returns the path: the training pipeline logs the
files as run artifacts and the card embeds them, so no caller needs matplotlib state. The Agg
backend is forced so plotting works on a headless server; every figure is closed after saving so a
long training run does not accumulate open figures. When ``synthetic`` is True the title says
"SYNTHETIC DATA", so a figure copied out of context cannot pass for real-world performance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

DPI = 110
ArrayLike = Sequence[float] | np.ndarray


def _title(text: str, synthetic: bool) -> str:
    return f"{text} (SYNTHETIC DATA)" if synthetic else text


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _binned(y: np.ndarray, p: np.ndarray, n_bins: int) -> pd.DataFrame:
    """Equal-frequency bins (same binning as metrics.ece) with Wilson 95% intervals.

    Wilson rather than normal-approximation intervals because bin rates near 0 would otherwise get
    bars below zero."""
    order = np.argsort(p, kind="stable")
    k = max(1, min(n_bins, y.size))
    bin_id = (np.arange(y.size) * k) // y.size
    frame = pd.DataFrame({"bin": bin_id, "y": y[order], "p": p[order]})
    agg = frame.groupby("bin").agg(n=("y", "size"), obs=("y", "mean"), pred=("p", "mean"))
    z = 1.96
    denom = 1 + z**2 / agg["n"]
    centre = (agg["obs"] + z**2 / (2 * agg["n"])) / denom
    half = (
        z * np.sqrt(agg["obs"] * (1 - agg["obs"]) / agg["n"] + z**2 / (4 * agg["n"] ** 2)) / denom
    )
    agg["lo"], agg["hi"] = centre - half, centre + half
    return agg


def calibration_plot(
    y: ArrayLike,
    p: ArrayLike,
    path: str | Path,
    *,
    oracle_p: ArrayLike | None = None,
    n_bins: int = 10,
    synthetic: bool = False,
    title: str = "Calibration",
) -> Path:
    """Observed vs mean predicted risk per equal-frequency bin, with 95% CI bars and the ideal line;
    ``oracle_p`` (true simulated risk) shows what perfect calibration looks like on the same data."""
    y = np.asarray(y, dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    series = [("model", y, p, "tab:blue", "o", True)]
    if oracle_p is not None:  # open oracle markers keep the model visible
        series.append(("oracle (true risk)", y, oracle_p, "tab:gray", "s", False))
    draw_calibration(ax, series, n_bins)
    ax.set_title(_title(title, synthetic))
    ax.legend(loc="upper left")
    return _save(fig, path)


def draw_calibration(ax, series, n_bins: int = 10) -> None:
    """Observed rate vs mean predicted risk per equal-frequency bin, Wilson 95% bars, and the
    ideal line, on ``ax``. ``series``: (label, y, p, colour, marker, filled) per curve."""
    top = 0.0
    for label, y, p, colour, marker, filled in series:
        b = _binned(np.asarray(y, dtype=float), np.asarray(p, dtype=float), n_bins)
        ax.errorbar(
            b["pred"],
            b["obs"],
            # clipped: Wilson bounds can sit a rounding error inside an observed 0 or 1
            yerr=np.clip(np.vstack([b["obs"] - b["lo"], b["hi"] - b["obs"]]), 0.0, None),
            fmt=marker,
            color=colour,
            mfc=colour if filled else "none",
            label=label,
            capsize=3,
        )
        top = max(top, b["hi"].max(), b["pred"].max())
    top = min(1.0, top * 1.1 + 0.02)
    ax.plot([0, top], [0, top], "k--", lw=1, label="ideal")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="mean predicted risk", ylabel="observed rate")


def curve_plot(
    kind: str,
    y: ArrayLike,
    p: ArrayLike,
    path: str | Path,
    *,
    oracle_p: ArrayLike | None = None,
    synthetic: bool = False,
    title: str | None = None,
) -> Path:
    """The ROC (``kind`` "roc", chance diagonal for reference) or precision-recall curve ("pr";
    the prevalence line is what a random ranking achieves) of the model, and of the oracle."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for label, probs, colour in _series(p, oracle_p):
        if kind == "roc":
            fpr, tpr, _ = roc_curve(y, probs)
            ax.plot(fpr, tpr, color=colour, label=label)
        else:
            precision, recall, _ = precision_recall_curve(y, probs)
            ax.step(recall, precision, where="post", color=colour, label=label)
    if kind == "roc":
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="chance")
        ax.set(xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1))
    else:
        ax.axhline(float(np.mean(y)), color="k", ls="--", lw=1, label="prevalence")
        ax.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", xlim=(0, 1), ylim=(0, 1.02))
    default = "ROC curve" if kind == "roc" else "Precision-recall curve"
    ax.set_title(_title(title or default, synthetic))
    ax.legend(loc="lower right" if kind == "roc" else "upper right")
    return _save(fig, path)


def roc_plot(*args, **kwargs) -> Path:
    """``curve_plot("roc", y, p, path, ...)``."""
    return curve_plot("roc", *args, **kwargs)


def pr_plot(*args, **kwargs) -> Path:
    """``curve_plot("pr", y, p, path, ...)``."""
    return curve_plot("pr", *args, **kwargs)


def _series(p: ArrayLike, oracle_p: ArrayLike | None) -> list[tuple[str, np.ndarray, str]]:
    out = [("model", np.asarray(p, dtype=float), "tab:blue")]
    if oracle_p is not None:
        out.append(("oracle (true risk)", np.asarray(oracle_p, dtype=float), "tab:gray"))
    return out


def decision_curve_plot(
    curve: pd.DataFrame,
    path: str | Path,
    *,
    oracle_curve: pd.DataFrame | None = None,
    synthetic: bool = False,
    title: str = "Decision curve",
) -> Path:
    """Net benefit vs threshold from ``metrics.decision_curve`` frames. The y axis is cut just below
    zero because the treat-all line plunges at high thresholds and would squash the model's curve."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(curve["threshold"], curve["net_benefit_model"], color="tab:blue", label="model")
    if oracle_curve is not None:
        ax.plot(
            oracle_curve["threshold"],
            oracle_curve["net_benefit_model"],
            color="tab:gray",
            label="oracle (true risk)",
        )
    ax.plot(curve["threshold"], curve["net_benefit_all"], color="tab:orange", label="flag all")
    ax.plot(curve["threshold"], curve["net_benefit_none"], color="k", lw=1, label="flag none")
    top = float(np.nanmax(curve[["net_benefit_model", "net_benefit_all"]].to_numpy()))
    ax.set(ylim=(-0.05, max(top * 1.1, 0.05)), xlabel="threshold probability", ylabel="net benefit")
    ax.set_title(_title(title, synthetic))
    ax.legend(loc="upper right")
    return _save(fig, path)


def importance_bar_plot(
    values: Mapping[str, float],
    path: str | Path,
    *,
    top: int = 20,
    synthetic: bool = False,
    title: str = "Mean |SHAP| by feature",
    xlabel: str = "mean |SHAP value| (log-odds)",
) -> Path:
    """Horizontal bars, largest on top; used for features (top 20) and for driver groups."""
    items = sorted(values.items(), key=lambda kv: kv[1], reverse=True)[:top]
    names = [k for k, _ in items][::-1]
    heights = [v for _, v in items][::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(items) + 1.5))
    ax.barh(names, heights, color="tab:blue")
    ax.set_xlabel(xlabel)
    ax.set_title(_title(title, synthetic))
    return _save(fig, path)


def dependence_plot(
    x: ArrayLike,
    contribution: ArrayLike,
    path: str | Path,
    *,
    feature: str,
    synthetic: bool = False,
) -> Path:
    """Feature value vs its SHAP contribution: shows the direction and shape of a driver's effect.
    Missing x values are dropped (they have no position on the axis)."""
    x = pd.to_numeric(pd.Series(np.asarray(x)), errors="coerce").to_numpy(dtype=float)
    c = np.asarray(contribution, dtype=float)
    keep = np.isfinite(x) & np.isfinite(c)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.scatter(x[keep], c[keep], s=8, alpha=0.5, color="tab:blue")
    ax.axhline(0, color="k", lw=1)
    ax.set(xlabel=feature, ylabel=f"SHAP value of {feature} (log-odds)")
    ax.set_title(_title(f"Dependence: {feature}", synthetic))
    return _save(fig, path)


def instability_plot(
    p: ArrayLike, P_boot: ArrayLike, path: str | Path, *, synthetic: bool = False
) -> Path:
    """Riley & Collins (2023)'s instability plot: each client's risk from the final model (x)
    against the same client's risk from every bootstrap refit (y); the spread around the
    diagonal is how much a client's risk depends on which clients happened to be in the data."""
    p = np.asarray(p, dtype=float)
    P = np.asarray(P_boot, dtype=float)  # clients x B
    fig, ax = plt.subplots(figsize=(5.5, 5.0))
    xs = np.repeat(p, P.shape[1])
    ax.scatter(xs, P.ravel(), s=2, alpha=0.08, color="tab:blue", rasterized=True)
    lo, hi = np.quantile(P, [0.025, 0.975], axis=1)
    order = np.argsort(p)
    ax.plot(p[order], lo[order], color="tab:red", lw=1, label="95% uncertainty interval")
    ax.plot(p[order], hi[order], color="tab:red", lw=1)
    ax.plot([0, 1], [0, 1], color="k", lw=1)
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="risk from the final model",
        ylabel="risk from each bootstrap refit",
    )
    ax.legend(loc="upper left")
    ax.set_title(_title("Instability of individual risks", synthetic))
    return _save(fig, path)
