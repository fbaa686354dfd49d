"""The evaluation step: what is measured about the champion candidate beyond its CV figures, as a
result that ``models.building.tracking.log_run`` only logs.

``evaluate`` computes fairness at the band thresholds on the evaluated admissions (held-out, or
out-of-fold under CV), with the largest gaps, and the smooth-risk figures of the final model, and
marks the model's reference with whether it was trained on SYNTHETIC data (the flag travels with
the scorer, so every place that serves it can say so). Nothing here talks to MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from models import artifact as A

Interval = tuple[float, float, float]  # (point, lo, hi): a 95% cluster-bootstrap CI


@dataclass
class Evaluation:
    """The evaluation of one training run's champion candidate.

    metrics: the candidate's figures with CIs (``TrainingResult.test_metrics``); fairness: one row
    per subgroup and measure (``models.building.fairness.fairness_table``); fairness_gaps: the
    largest gaps (``largest_gaps``); stability: smooth-risk figures with
    bound and verdict per scale (``stability.risk_steps``);
    synthetic: whether the data were the simulator's."""

    metrics: dict[str, Interval]
    fairness: pd.DataFrame
    fairness_gaps: Any
    stability: pd.DataFrame
    synthetic: bool


def stability_figures(result, scored: pd.DataFrame) -> pd.DataFrame:
    """Smooth-risk figures of the registered model on (up to 3,000 of) the scored records, each
    scale marked PASS or FAIL against its bound (``models.building.stability.bounds``: 2 / 4
    points on a questionnaire scale, 1.25x the truth's own move on a 1-7 rating)."""
    from models.building.stability import risk_steps

    recs = scored.sample(min(len(scored), 3000), random_state=0) if len(scored) else scored
    return risk_steps(result.model, recs.reset_index(drop=True))


def fairness_figures(settings, result, scored: pd.DataFrame) -> pd.DataFrame:
    """Flag rate, sensitivity, PPV and O/E per subgroup at the band thresholds, on the evaluated
    admissions (models.building.fairness)."""
    from models.building import fairness as F

    tf = result.test_frame
    rows = scored.set_index(scored["admission_id"].astype(str)).loc[tf["admission_id"]]
    return F.fairness_table(
        tf["y"].to_numpy(),
        tf["p"].to_numpy(),
        rows.reset_index(drop=True),
        settings.bands.moderate_from,
        settings.bands.high_from,
    )


def evaluate(settings, result, scored: pd.DataFrame, synthetic: bool) -> Evaluation:
    """Fairness and stability of ``result``'s champion on ``scored`` (the typed scoring records
    of the labelled admissions); sets the synthetic flag in the model's reference."""
    from models.building import fairness as F

    result.model.reference[A.SYNTHETIC_KEY] = bool(synthetic)
    table = fairness_figures(settings, result, scored)
    return Evaluation(
        metrics=result.test_metrics,
        fairness=table,
        fairness_gaps=F.largest_gaps(table),
        stability=stability_figures(result, scored),
        synthetic=bool(synthetic),
    )
