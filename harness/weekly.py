"""The weekly warning scored as of week 1 on an independent SYNTHETIC cohort: what the weekly
tests and ``bench/weekly_warning.py`` both judge."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class WeekOne:
    scores: object  # models.scoring.weekly.WeeklyScores
    R: np.ndarray  # n x 3 weeks x 2 raters, item means (NaN = not rated)
    remaining: pd.Series  # low alliance over weeks 2-3 (NaN: not labelled)
    label: pd.Series  # the label (weeks 1-3)
    ok_remaining: np.ndarray  # rated in week 1 and labelled for weeks 2-3
    ok_label: np.ndarray  # rated in week 1 and labelled


def week_one(model, cohort) -> WeekOne:
    """Score every admission of ``cohort`` (simulator.generator.Cohort) with its week-1 ratings,
    and label it with the model's own label definition."""
    from features.build import scoring_frame, typed_records
    from features.labels import build_labels
    from features.settings import LabelConfig
    from features.weekly import rating_tensor
    from models.scoring.predict import frame_to_matrix
    from models.scoring.weekly import update_matrix

    frame = typed_records(scoring_frame(cohort.intake, cohort.counsellors))
    X, _, errors = frame_to_matrix(frame)
    assert not errors
    ids = frame["admission_id"].astype(str)
    R = rating_tensor(cohort.alliance, ids)
    s = update_matrix(model, X, R, 1)
    cfg = LabelConfig(
        **{k: model.reference["label"][k] for k in ("rater", "threshold", "min_valid_weeks")}
    )
    c = cohort
    rem = build_labels(c.alliance, cfg, c.intake, c.episodes, weeks=(2, 3)).labels.reindex(ids)
    lab = build_labels(c.alliance, cfg, c.intake, c.episodes).labels.reindex(ids)
    return WeekOne(
        scores=s,
        R=R,
        remaining=rem,
        label=lab,
        ok_remaining=(s.as_of_week == 1) & rem.notna().to_numpy(),
        ok_label=(s.as_of_week == 1) & lab.notna().to_numpy(),
    )
