"""The model artifact's contract: the names under which a training run stores what it learned and
measured, and under which every other room reads it back.

Training (``models.building.tracking``) writes these keys; finding and loading a model
(``models.lifecycle.resolve``), the Bento export, serving, batch scoring and monitoring read them.
A name changed here changes for all of them. Standard library only: the served path imports it.
"""

from __future__ import annotations

# ----------------------------------------------------------------------- MLflow run metrics
# The champion's evaluation figures (out-of-fold under CV, held-out above the switch) are logged
# as test_<metric> with the 95% cluster-bootstrap CI bounds as test_<metric>_lo / _hi.
TEST_PREFIX = "test_"
CI_BOUNDS = ("", "_lo", "_hi")  # point, lower and upper bound
# The figures shown as the model's headline (/model, the page, the Bento's metadata).
HEADLINE = ("auroc", "auprc", "log_loss", "brier", "cal_slope", "cal_intercept", "ece")
# The figures the outcome monitor compares the live period with.
OUTCOME_FIGURES = ("oe_ratio", "cal_slope", "auroc", "brier", "cal_intercept", "prevalence")
LABEL_COUNT_PREFIX = "label_"  # label_<count>: how many admissions each label outcome had
LABEL_COUNTS = ("label_labelled", "label_positive")  # the counts carried with the model
DRIVER_RANK_SPEARMAN = "driver_rank_spearman"  # SYNTHETIC data: agreement with the true ranking


def test_metric(name: str, bound: str = "") -> str:
    """The run-metric key of an evaluation figure: ``test_auroc``, ``test_auroc_lo``, ..."""
    if bound not in CI_BOUNDS:
        raise ValueError(f"bound must be one of {CI_BOUNDS}, not {bound!r}")
    return f"{TEST_PREFIX}{name}{bound}"


def ci_columns(figures: dict, prefix: str = "") -> dict[str, float]:
    """{name: (point, lo, hi)} -> {``<prefix><name>``, ``..._lo``, ``..._hi``: value}, in order:
    the one way a figure with its CI becomes flat keys (run metrics, report columns)."""
    out: dict[str, float] = {}
    for name, values in figures.items():
        for bound, v in zip(CI_BOUNDS, values, strict=True):
            out[f"{prefix}{name}{bound}"] = v
    return out


def test_metrics(figures: dict) -> dict[str, float]:
    """{name: (point, lo, hi)} -> the run metrics ``test_<name>``, ``_lo``, ``_hi``."""
    return ci_columns(figures, TEST_PREFIX)


def read_test_metric(run_metrics: dict, name: str) -> tuple[float, float, float] | None:
    """(point, lo, hi) of ``name`` from a run's metrics (NaN for a missing bound), or None."""
    if test_metric(name) not in run_metrics:
        return None
    nan = float("nan")
    return tuple(run_metrics.get(test_metric(name, b), nan) for b in CI_BOUNDS)  # type: ignore[return-value]


# The weekly early warning (issue 19; models.building.weekly): per week K (1, 2) the
# out-of-fold figures of the stacked models, "label" (a: the label itself) and "remaining" (b: low
# alliance in weeks K+1..3), and of the admission risk on the same clients and outcome
# ("admission_label", "admission_remaining"), each with its CI bounds; the log-loss difference
# (a) - admission on the label ("label_vs_admission_log_loss_difference", with bounds); and the
# not-on-track signal's figures for (b)'s outcome ("signal_<figure>", no bounds).
# Keys: weekly_w1_remaining_auroc, weekly_w1_remaining_auroc_lo, weekly_w1_signal_sensitivity...
WEEKLY_PREFIX = "weekly_"
WEEKLY_TARGETS = ("label", "remaining")
WEEKLY_FIGURES = ("auroc", "cal_slope", "log_loss", "brier", "cal_intercept")
WEEKLY_SIGNAL = ("sensitivity", "false_alarm_rate", "ppv", "flag_rate", "outcome_rate", "n")
WEEKLY_LOG_LOSS_DIFFERENCE = "label_vs_admission_log_loss_difference"
WEEKLY_ACTIONS = "weekly_actions.csv"  # the markers' actions and sources (models/scoring)


def weekly_metric(week: int, what: str, name: str, bound: str = "") -> str:
    """The run-metric key of a weekly figure: ``weekly_w<K>_<what>_<name><bound>``; ``what`` is a
    target, ``admission_<target>``, ``signal`` or ``WEEKLY_LOG_LOSS_DIFFERENCE`` (name "")."""
    if bound not in CI_BOUNDS:
        raise ValueError(f"bound must be one of {CI_BOUNDS}, not {bound!r}")
    return f"{WEEKLY_PREFIX}w{int(week)}_{what}" + (f"_{name}" if name else "") + bound


# ------------------------------------------------------------------------ MLflow run tags/params
SYNTHETIC_TAG = "synthetic_data"  # "true" when the training data were the simulator's
PROTOCOL_TAG = "evaluation_protocol"  # "cv" or "holdout"
LABEL_PARAM_PREFIX = "label_definition."  # one parameter per label-definition key

# ------------------------------------------------------------------------------ run artifacts
EVALUATION_DIR = "evaluation"  # the evaluation tables (CSV)
BANDS_CSV = "bands.csv"  # observed rate per band
HOLDOUT_CSV = "holdout.csv"  # the evaluation risks and labels (y, p), no ids
FAIRNESS_CSV = "fairness.csv"
WEEKLY_CSV = "weekly.csv"  # the weekly early warning's headline figures per week (issue 19)
EVALUATION_FILES = (
    "cv_folds.csv",
    "subgroups.csv",
    BANDS_CSV,
    "decision_curve.csv",
    "importance.csv",
    HOLDOUT_CSV,
    FAIRNESS_CSV,
    "learning_curve.csv",
    "leave_one_service_out.csv",
    WEEKLY_CSV,
)
BANDS_ARTIFACT = f"{EVALUATION_DIR}/{BANDS_CSV}"
HOLDOUT_ARTIFACT = f"{EVALUATION_DIR}/{HOLDOUT_CSV}"
PLOTS_DIR = "plots"
VALIDATION_DIR = "validation"
MODEL_CARD_DIR = "model_card"
MODEL_CARD_FILES = ("model_card.md", "model_card.html")

# --------------------------------------------------------------------- the logged pyfunc model
MODEL_NAME_IN_RUN = "model"  # mlflow.pyfunc.log_model(name=...)
SCORER = "scorer"  # the scorer folder: the pyfunc's artifact key and the Bento model's folder
SCORER_FILE = "model.json"  # the scorer's numbers (plus booster.txt for LightGBM)

# -------------------------------------------------- keys of the scorer's reference (model.json)
LABEL_KEY = "label"  # the label definition the model was trained for
LABEL_DEFINITION = ("rater", "threshold", "min_valid_weeks")  # what rebuilds its LabelConfig
BANDS_KEY = "bands"  # the band thresholds (BandConfig) the model was trained with
SYNTHETIC_KEY = SYNTHETIC_TAG  # True when trained on SYNTHETIC data
