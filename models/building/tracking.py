"""Everything a training run logs to MLflow: parameters, metrics, the dataset, plots, the model
card and the pyfunc model. Called inside an active run by ``pipelines.train``.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import mlflow
import numpy as np
import pandas as pd

from features.catalog import PREDICTORS, SCORING_BY_NAME
from models import artifact as A
from models.building import card, plots
from models.building import metrics as M

# The "models from code" file MLflow logs as the model: found by its module name, not executed.
PYFUNC_MODEL_FILE = importlib.util.find_spec("models.scoring.pyfunc_model").origin


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v if not isinstance(v, Path) else str(v)
    return out


def _metrics_to_log(result) -> dict[str, float]:
    out: dict[str, float] = {}
    out.update(A.test_metrics(result.test_metrics))
    if result.oracle_metrics:
        for k, (pt, _, _) in result.oracle_metrics.items():
            out[f"oracle_{k}"] = pt
            out[f"gap_{k}"] = result.test_metrics[k][0] - pt
    for _, r in result.cv_summary.iterrows():
        for k in ("log_loss", "diff_vs_best", "se", "auroc", "brier", "cal_slope"):
            out[f"cv_{r['candidate']}_{k}"] = float(r[k])
    out["null_log_loss"] = result.null_log_loss
    for r in result.learning_curve.itertuples():
        out[f"curve_{r.fraction:.2f}_log_loss"] = r.log_loss
        out[f"curve_{r.fraction:.2f}_auroc"] = r.auroc
    for g, v in result.importance_groups.items():
        out[f"mean_abs_shap_{g}"] = v
    if result.driver_rank_spearman is not None:
        out[A.DRIVER_RANK_SPEARMAN] = result.driver_rank_spearman
    for k, v in result.timings.items():
        out[f"time_{k}"] = v
    weekly = getattr(result, "weekly", None)
    if weekly is not None:
        out.update(weekly_metrics(weekly))
        out["time_weekly_s"] = weekly.seconds
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


def weekly_metrics(weekly) -> dict[str, float]:
    """The weekly early warning's figures as run metrics (keys: ``models.artifact.weekly_metric``)."""
    out: dict[str, float] = {}
    for week, figs in weekly.figures.items():
        for target in A.WEEKLY_TARGETS:
            for what in (target, f"admission_{target}"):
                for name in A.WEEKLY_FIGURES:
                    if what in figs and name in figs[what]:
                        for bound, v in zip(A.CI_BOUNDS, figs[what][name], strict=True):
                            out[A.weekly_metric(week, what, name, bound)] = v
        diff = figs.get("log_loss_difference")
        if diff is not None:
            for bound, v in zip(A.CI_BOUNDS, diff, strict=True):
                out[A.weekly_metric(week, A.WEEKLY_LOG_LOSS_DIFFERENCE, "", bound)] = v
        for name in A.WEEKLY_SIGNAL:
            if name in figs.get("signal", {}):
                out[A.weekly_metric(week, "signal", name)] = figs["signal"][name]
    return out


def weekly_card(weekly) -> dict[str, Any] | None:
    """The model card's "Weekly early warning" content: per week one row of headline figures."""
    if weekly is None:
        return None
    rows = []
    for week, figs in weekly.figures.items():
        rem, adm_rem = figs.get("remaining"), figs.get("admission_remaining")
        lab, adm_lab = figs.get("label"), figs.get("admission_label")
        sig = figs.get("signal", {})
        rows.append(
            {
                "after_week": week,
                "remaining_weeks": f"{week + 1}-3" if week < 2 else "3",
                "clients (b)": int(rem["n"][0]) if rem else 0,
                "AUROC (b) [95% CI]": _ci_text(rem, "auroc", 3),
                "AUROC admission risk, same outcome": _ci_text(adm_rem, "auroc", 3),
                "calibration slope (b)": _ci_text(rem, "cal_slope", 2),
                "log loss (a), the label": _ci_text(lab, "log_loss", 4),
                "log loss admission risk, the label": _ci_text(adm_lab, "log_loss", 4),
                "signal sensitivity": _pct(sig.get("sensitivity")),
                "signal false-alarm rate": _pct(sig.get("false_alarm_rate")),
                "signal PPV": _pct(sig.get("ppv")),
            }
        )
    spec = weekly.spec
    return {
        "table": pd.DataFrame(rows),
        "band_quantile": spec["band"]["quantile"],
        "band_bins": spec["band"]["bins"],
        "band_raters": spec["band"]["raters"],
        "rupture_threshold": spec["rupture"]["threshold"],
        "discrepancy_threshold": spec["discrepancy"]["threshold"],
        "coefficients": pd.DataFrame(
            [
                {
                    "after_week": k,
                    "target": t,
                    "beta (admission log-odds)": round(f["beta"], 3),
                    **{
                        f"gamma {r} w{w}": round(float(g), 3)
                        for (w, r), g in zip(_columns(int(k)), f["gamma"], strict=True)
                    },
                    "lam": f["lam"],
                }
                for k, by in spec["models"].items()
                for t, f in by.items()
                if f is not None
            ]
        ),
    }


def _columns(week: int):
    from models.scoring.weekly import columns

    return columns(week)


def _ci_text(figs: dict | None, name: str, digits: int) -> str:
    if not figs or name not in figs:
        return "not fitted"
    pt, lo, hi = figs[name]
    return f"{pt:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _pct(v: float | None) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{100 * v:.1f}%"


def _input_example(scored: pd.DataFrame, result) -> pd.DataFrame:
    ids = result.test_frame["admission_id"].head(3)
    rows = scored.set_index(scored["admission_id"].astype(str)).loc[ids].reset_index(drop=True)
    return rows[[c for c in rows.columns if c in SCORING_BY_NAME]]


def _plots(result, out: Path, synthetic: bool) -> dict[str, Path]:
    tf = result.test_frame
    y, p = tf["y"].to_numpy(), tf["p"].to_numpy()
    oracle = tf["p_oracle"].to_numpy() if "p_oracle" in tf else None
    imgs = {
        "Calibration": plots.calibration_plot(
            y, p, out / "calibration.png", oracle_p=oracle, synthetic=synthetic
        ),
        "ROC curve": plots.roc_plot(y, p, out / "roc.png", oracle_p=oracle, synthetic=synthetic),
        "Precision-recall curve": plots.pr_plot(
            y, p, out / "pr.png", oracle_p=oracle, synthetic=synthetic
        ),
        "Decision curve": plots.decision_curve_plot(
            result.decision,
            out / "decision_curve.png",
            oracle_curve=M.decision_curve(y, oracle) if oracle is not None else None,
            synthetic=synthetic,
        ),
        "Mean |SHAP| by feature": plots.importance_bar_plot(
            result.importance_features, out / "shap_features.png", synthetic=synthetic
        ),
        "Mean |SHAP| by driver group": (
            "Explanations",
            plots.importance_bar_plot(
                result.importance_groups,
                out / "shap_groups.png",
                synthetic=synthetic,
                title="Mean |SHAP| by driver group",
            ),
        ),
    }
    from models.building.uncertainty import refit_risks

    P_boot = refit_risks(result.model, result.X_test)
    if P_boot.shape[1]:
        keep = np.random.default_rng(0).permutation(len(P_boot))[:300]
        imgs["Instability of individual risks"] = (
            "Sample size and uncertainty",
            plots.instability_plot(
                result.model.proba(result.X_test)[keep],
                P_boot[keep],
                out / "instability.png",
                synthetic=synthetic,
            ),
        )
    # Dependence plots for the three most important scale scores.
    contrib = result.model.contributions(result.X_test)
    names = list(result.model.feature_names)
    scales = [f.name for f in PREDICTORS if f.modifiable]
    for feat in sorted(scales, key=lambda s: -result.importance_features.get(s, 0))[:3]:
        j = names.index(feat)
        imgs[f"Dependence: {feat}"] = (
            "Explanations",
            plots.dependence_plot(
                result.X_test[:, j],
                contrib[:, j],
                out / f"dependence_{feat}.png",
                feature=feat,
                synthetic=synthetic,
            ),
        )
    return imgs


def _fairness_plots(evaluation, out: Path) -> dict:
    """One plot per fairness measure of the evaluation's table, as the card's images."""
    from models.building import fairness as F

    note = "SYNTHETIC DATA, held-out test:" if evaluation.synthetic else "held-out test:"
    paths = F.save_plots(evaluation.fairness, out, note)
    return {f"Fairness: {F.MEASURES[m][0]}": (F.CARD_SECTION, path) for m, path in paths.items()}


def _validation_text(settings, result) -> list[str]:
    cfg, proto = settings.train, result.protocol
    if proto.name == "cv":
        lines = [
            f"Protocol: repeated grouped cross-validation on all {len(result.test_frame):,} labelled "
            f"admissions ({proto.n_repeats} x {proto.n_splits}-fold, grouped by {cfg.group_by}, "
            "stratified by the label); no held-out split. Why: " + proto.why + ".",
            "The figures are out-of-fold: every admission is scored by models that never saw it "
            "(each metric averaged over the repeats); the final model is refit on all admissions.",
        ]
    else:
        lines = [
            f"Protocol: grouped held-out split ({cfg.test_fraction:.0%} of {cfg.group_by} groups, "
            f"{len(result.test_frame):,} clients, stratified by the label). Why: {proto.why}.",
            "The candidates are fitted on the rest and compared on the held-out clients; the figures "
            "are the champion's on those clients.",
        ]
    return lines + [
        "Tuning and Platt calibration inside each training fold (nested), so no figure saw its rows.",
        f"Champion: {result.champion}. Selection by log loss with the one-standard-error rule in "
        f"favour of the simpler candidate: {result.reason}.",
        f"95% CIs: cluster bootstrap over {cfg.group_by} groups ({cfg.n_bootstrap} resamples).",
        "Learning curve: the champion's kind at fractions of this data, same protocol. "
        "Transport: leave-one-service-out (internal-external) validation, per service.",
    ]


def _card_info(
    settings, result, labels, tables, synthetic: bool, digest: str, images: dict
) -> dict[str, Any]:
    intake = tables["intake"]
    dates = pd.to_datetime(intake["admission_date"], errors="coerce")
    oracle = {k: v[0] for k, v in result.oracle_metrics.items()} if result.oracle_metrics else None
    return {
        "model_name": settings.train.registered_model,
        "trained_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        "synthetic": synthetic,
        "data": {
            "source": str(settings.data_dir)
            + (" (SYNTHETIC cohort from pipelines.simulate)" if synthetic else ""),
            "n_admissions": int(len(intake)),
            "n_labelled": int(len(labels.labels)),
            "date_range": (str(dates.min().date()), str(dates.max().date())),
            "digest": digest,
        },
        "label_counts": dict(labels.counts),
        "label": {**labels.definition, "prevalence": round(float(labels.labels.mean()), 4)},
        "predictors": [(f.name, f.driver, f.modifiable, f.direction) for f in PREDICTORS],
        "predictors_note": "All predictors are known at admission (intake assessment and the assigned counsellor's attributes). Scale scores may be given directly or as item responses scored with the publishers' keys.",
        "missing": "Questionnaire blocks missing at admission are kept as missing: the ridge and spline models impute the training median (the ridge baseline uses no indicators); LightGBM routes them natively. Indicator columns mark a missing questionnaire block and an unknown counsellor, because declining a questionnaire is itself informative. Explanations list drivers that could not be assessed.",
        "validation": _validation_text(settings, result),
        "metrics": result.test_metrics,
        "oracle": oracle,
        "candidates": result.cv_summary.round(4),
        "protocol": result.protocol.name,
        "learning_curve": result.learning_curve.round(4),
        "transport": None if result.transport is None else result.transport.round(3),
        "decision_curve": result.decision.iloc[::5].round(4),
        "subgroups": result.subgroups,
        "bands": result.bands,
        "band_config": settings.bands.model_dump(),
        "bands_note": "The intake page shows the risk, its band, the drivers (raises / lowers risk, in probability points), actions for modifiable drivers that raise risk, and what-ifs.",
        "sample_size": result.sample_size,
        "uncertainty": _uncertainty_info(settings, result),
        "weekly": weekly_card(getattr(result, "weekly", None)),
        "explanations": result.importance_groups,
        "explanation_method": "Exact Shapley values against the typical client (training medians and modes), in calibrated log-odds: for the additive models (ridge, spline) each column's term minus its term at the typical value; for LightGBM interventional TreeSHAP with the typical client as the only reference row, multiplied by the Platt slope. Summed within driver groups; the drivers add up to the record's risk minus the typical client's risk.",
        "driver_rank_spearman": result.driver_rank_spearman,
        "images": images,
        "limitations": [
            "Directions of effects come from one UK cohort of 187 residential clients (Meier et al. 2005); no published coefficients exist.",
            "There is no published clinical cut-off for a low WAI-S; the threshold is a configurable choice.",
            "Decision support, not a diagnosis: the score must not be used to refuse, delay or ration treatment.",
            *(
                [
                    "Trained and evaluated on SYNTHETIC data: the figures show that the pipeline works, not how a real service's clients behave."
                ]
                if synthetic
                else []
            ),
        ],
    }


def _uncertainty_info(settings, result) -> dict[str, Any] | None:
    from models.building.uncertainty import instability

    summary = instability(result.model, result.X_test) if result.X_test is not None else None
    out: dict[str, Any] = {
        "method": (result.uncertainty or {}).get("method"),
        "B": (result.uncertainty or {}).get("B"),
        "prior": settings.train.prior,
        "prior_weight": result.model.params.get("t"),
        "update_method": result.model.params.get("update_method"),
        "update_why": result.model.params.get("update_why"),
        "updated_from": result.model.params.get("base"),
    }
    if summary:
        out |= {k: round(v, 4) for k, v in summary.items()}
    return out


def schema_rows(df: pd.DataFrame) -> np.ndarray:
    """Positions of a few rows that between them hold every kind of value of every column: the
    first row, the first gap of each column, and the first row of each distinct value of each
    object column (of each Python type, when an object column has more than 1,000 distinct
    values). MLflow infers a schema from a column's dtype, whether it has gaps and, for an object
    column, the types of its values, so these rows give the schema of the whole frame."""
    keep = [np.zeros(min(len(df), 1), dtype=np.int64)]
    for c in df.columns:
        col = df[c].reset_index(drop=True)
        gaps = np.flatnonzero(col.isna().to_numpy())
        keep.append(gaps[:1])
        if col.dtype == object:
            firsts = col.drop_duplicates()
            if len(firsts) > 1000:
                firsts = col.map(type).drop_duplicates()
            keep.append(firsts.index.to_numpy())
    return np.unique(np.concatenate(keep))


def _set_schema(ds, df: pd.DataFrame) -> None:
    """Give the logged dataset its schema, inferred from ``schema_rows`` instead of every row.

    MLflow infers the schema of a pandas dataset value by value for object columns (the boolean
    fields, True/False with gaps): 10.2 s of the 40.4 s of logging at n = 50,000 (cProfile), and
    linear in rows. Same schema (``tests/test_training.py``); if MLflow's inner function moves,
    MLflow infers it itself as before."""
    try:
        from mlflow.types.utils import _infer_schema

        ds.__dict__["schema"] = _infer_schema(df.iloc[schema_rows(df)])
    except Exception:  # noqa: BLE001 - an optimisation only; MLflow's own inference still runs
        ds.__dict__.pop("schema", None)


def log_model_card(info: dict[str, Any], version: str | None = None) -> None:
    """Render the model card and log it (model_card/model_card.{md,html}) to the active run.
    ``log_run`` logs it before registration ("not yet registered"); ``pipelines.train`` logs it
    again with the registry version once the version exists, replacing the first."""
    with tempfile.TemporaryDirectory() as tmp:
        md, html = card.render_model_card({**info, "version": version})
        for name, text in zip(A.MODEL_CARD_FILES, (md, html), strict=True):
            (Path(tmp) / name).write_text(text)
            mlflow.log_artifact(str(Path(tmp) / name), A.MODEL_CARD_DIR)


# What MLflow's own inference found for this pyfunc (it loads the model in a subprocess to see what
# it imports: about 5 s per training run, measured on this machine): the package and its
# numerical stack. LightGBM only when the model is a booster.
PYFUNC_REQUIREMENTS = ("alliance-risk", "numpy", "pandas", "pyarrow", "scikit-learn", "scipy")


def pip_requirements(kind: str) -> list[str]:
    """The registered pyfunc's requirements, pinned to the versions of this environment."""
    from importlib.metadata import PackageNotFoundError, version

    names = PYFUNC_REQUIREMENTS + (("lightgbm",) if kind == "lightgbm" else ())
    out = []
    for name in names:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:  # not installed here: the model cannot need it
            continue
    return out


class LoggedRun(NamedTuple):
    """What ``log_run`` logged: the model's URI, the test metrics (points) and what the model card
    was rendered from (images read into memory), so that the card can be logged again with its
    registry version (``log_model_card``)."""

    model_uri: str
    metrics: dict[str, float]
    card: dict[str, Any]


def log_run(
    settings,
    result,
    evaluation,
    labels,
    tables,
    data_dir: Path,
    scored: pd.DataFrame,
) -> LoggedRun:
    """Log the run, its evaluation (``models.building.evaluation.evaluate``: computed before, only
    logged here) and the pyfunc model; returns what was logged (``LoggedRun``)."""
    from models.scoring.signature import model_metadata, model_signature

    synthetic = evaluation.synthetic

    mlflow.log_params(
        {k: str(v)[:500] for k, v in _flatten(settings.model_dump(exclude={"serving"})).items()}
    )
    mlflow.log_params({f"{A.LABEL_PARAM_PREFIX}{k}": str(v) for k, v in labels.definition.items()})
    mlflow.log_params(
        {
            "champion_candidate": result.champion,
            **{f"model.{k}": str(v) for k, v in result.model.params.items()},
        }
    )
    mlflow.log_metrics({f"{A.LABEL_COUNT_PREFIX}{k}": float(v) for k, v in labels.counts.items()})
    mlflow.log_metrics(_metrics_to_log(result))
    mlflow.set_tag(A.SYNTHETIC_TAG, str(synthetic).lower())
    mlflow.set_tag(A.PROTOCOL_TAG, result.protocol.name)

    logged = scored.assign(
        low_alliance=labels.labels.reindex(scored["admission_id"].astype(str)).to_numpy()
    )
    ds = mlflow.data.from_pandas(
        logged,
        source=str(Path(data_dir).resolve()),
        name=Path(data_dir).name + (" (synthetic)" if synthetic else ""),
        targets="low_alliance",
    )
    _set_schema(ds, logged)
    mlflow.log_input(ds, context="training")
    del logged

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        images = _plots(result, out, synthetic)
        images.update(_fairness_plots(evaluation, out / "fairness"))
        for v in images.values():
            mlflow.log_artifact(str(v[1] if isinstance(v, tuple) else v), A.PLOTS_DIR)
        info = _card_info(settings, result, labels, tables, synthetic, ds.digest, images)
        info["stability"] = evaluation.stability
        info["fairness"] = evaluation.fairness
        info["fairness_gaps"] = evaluation.fairness_gaps
        info = card.embed_images(info)
        log_model_card(info)
        result.cv.to_csv(out / "cv_folds.csv", index=False)
        result.subgroups.to_csv(out / "subgroups.csv", index=False)
        result.bands.to_csv(out / A.BANDS_CSV, index=False)
        result.decision.to_csv(out / "decision_curve.csv", index=False)
        # The evaluation risks and labels (out-of-fold under CV), no ids: the monitor's calibration plot of both periods.
        result.test_frame[["y", "p"]].to_csv(out / A.HOLDOUT_CSV, index=False)
        info["fairness"].to_csv(out / A.FAIRNESS_CSV, index=False)
        result.learning_curve.to_csv(out / "learning_curve.csv", index=False)
        if info.get("weekly") is not None:
            info["weekly"]["table"].to_csv(out / A.WEEKLY_CSV, index=False)
        if result.transport is not None:
            result.transport.to_csv(out / "leave_one_service_out.csv", index=False)
        pd.DataFrame(
            {
                "feature": list(result.importance_features),
                "mean_abs_shap": list(result.importance_features.values()),
            }
        ).to_csv(out / "importance.csv", index=False)
        for f in A.EVALUATION_FILES:
            if (out / f).exists():
                mlflow.log_artifact(str(out / f), A.EVALUATION_DIR)

        scorer_dir = result.model.save(out / A.SCORER)
        logged = mlflow.pyfunc.log_model(
            name=A.MODEL_NAME_IN_RUN,
            python_model=PYFUNC_MODEL_FILE,
            artifacts={A.SCORER: str(scorer_dir)},
            signature=model_signature(),
            input_example=_input_example(scored, result),
            metadata=model_metadata(),
            pip_requirements=pip_requirements(result.model.kind),
        )
    metrics = {k: v[0] for k, v in result.test_metrics.items()}
    return LoggedRun(logged.model_uri, metrics, info)
