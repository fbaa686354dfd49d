"""The outcome label, built exactly as the data contract defines it ("The label").

Why one builder: the label definition (rater, threshold, minimum valid weeks) is configuration that
is logged with every model (LabelConfig in features/settings.py), so training, validation reports
and the synthetic generator's checks must all derive the label here and nowhere else.

Definition (data contract; WAI-S key from features/instruments.py, Tracey & Kokotovic 1989):
- Each rating row (admission, week, rater) is scored by ``features.scoring.score_wai``: the WAI-S
  item mean after reverse-scoring items 4 and 10; a rating with more than 2 missing items is void.
- A rater's score for an admission is the mean of that rater's valid (non-void) ratings of weeks
  1-3; the rater qualifies when they have at least ``cfg.min_valid_weeks`` valid weeks.
- rater = "client" or "counsellor": labelled iff that rater qualifies; low iff score < threshold.
- rater = "either": labelled iff at least one rater qualifies; low iff ANY qualifying rater's score
  is below the threshold. The reported score is the lower of the qualifying raters' scores, so
  ``low_alliance == score < threshold`` holds in every mode. Why "either" means "any": the purpose
  is to flag clients at risk of a weak alliance, and a weak alliance seen from either side of the
  relationship is a rupture worth preventing.

Early leavers (the contract counts them separately; they are early dropouts, never low alliance):
an admission with no valid rating at all (from either rater) that
- when ``episodes`` and ``intake`` (for admission_date) are given and the admission has an
  episodes row: was discharged with a reason other than "ongoing"/"completed" on a date at most
  7 days after admission (i.e. before the first weekly rating was due);
- otherwise (no episodes table, no intake dates, or no episodes row for it): has no rating rows at
  all. Why this fallback: without a discharge record, an admission that never produced a single
  rating form is best explained by not having stayed long enough to be rated.
An admission with an episodes row that does not meet the 7-day rule (e.g. "ongoing") but has no
valid rating is simply unlabelled.

Counts (``LabelResult.counts``), a partition of admissions: ``labelled`` + ``unlabelled`` +
``early_leavers`` = ``admissions``. ``unlabelled`` splits into ``unlabelled_no_valid_rating`` (no
valid rating from the label's rater(s)) and ``unlabelled_too_few_weeks`` (some, but fewer than
min_valid_weeks). ``ratings`` and ``void_ratings`` count week 1-3 rating rows of the rater(s) the
label uses; ``ratings_ignored`` counts rows outside weeks 1-3 or with an unknown rater code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.errors import DataError, FieldError
from features.instruments import WAI_MAX_MISSING, WAI_S
from features.scoring import score_wai
from features.settings import LabelConfig

RATERS = ("client", "counsellor")
WEEKS = (1, 2, 3)
EARLY_LEAVER_DAYS = 7
NOT_EARLY_REASONS = frozenset({"ongoing", "completed"})
LABEL = "low_alliance"


THRESHOLD_EPS = 1e-9


def is_low(score, cfg: LabelConfig):
    """The cut: a rater's score (mean of valid weekly WAI-S item means) below the threshold.

    Item means like 60/12 sit exactly on common thresholds; averaging weeks in floating point can
    land a hair below. The tolerance keeps an exact 5.0 "not low".
    """
    return score < cfg.threshold - THRESHOLD_EPS


def weekly_label(weekly: np.ndarray, cfg: LabelConfig) -> tuple[np.ndarray, np.ndarray]:
    """(labelled, low) for one rater from a matrix of weekly scores (rows = admissions, columns =
    weeks 1-3, NaN = no valid rating that week): the same rule as ``build_labels``, on arrays.

    Why an array form: the simulator's ground truth applies the label to hundreds of simulated
    follow-ups per admission (simulator/generator.py), where building rating tables would cost
    minutes; tests/data/test_synthetic.py checks that both forms agree on a generated cohort.
    """
    valid = ~np.isnan(weekly)
    n_valid = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, weekly, 0.0).sum(axis=1) / n_valid
    labelled = n_valid >= cfg.min_valid_weeks
    return labelled, labelled & is_low(mean, cfg)


@dataclass
class LabelResult:
    """The label and everything a report or a model's metadata needs about it.

    labels: int 0/1 Series named "low_alliance", indexed by admission_id, labelled admissions only.
    score: float Series on the same index (WAI-S item-mean score the label was cut from).
    counts: see the module docstring.
    definition: the label's configuration and fixed rules, for logging with models.
    per_rater: one row per admission (all admissions), columns "<rater>_score" (mean over valid
        weeks, NaN if none) and "<rater>_valid_weeks" for client and counsellor.
    early_leavers: admission_ids counted as early leavers.
    """

    labels: pd.Series
    score: pd.Series
    counts: dict[str, int]
    definition: dict[str, Any]
    per_rater: pd.DataFrame = field(repr=False)
    early_leavers: pd.Index = field(repr=False)


def label_definition(cfg: LabelConfig, weeks: tuple[int, ...] = WEEKS) -> dict[str, Any]:
    """The label definition as logged with models (config plus the fixed contract rules)."""
    return {
        "rater": cfg.rater,
        "threshold": float(cfg.threshold),
        "min_valid_weeks": int(cfg.min_valid_weeks),
        "weeks": list(weeks),
        "instrument": WAI_S.instrument,
        "reverse_scored_items": list(WAI_S.reflected),
        "void_if_missing_items_above": WAI_MAX_MISSING,
        "early_leaver_days": EARLY_LEAVER_DAYS,
    }


def _require(df: pd.DataFrame, table: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError([FieldError(table, c, "column missing") for c in missing])


def in_index(values: pd.Series | pd.Index, index: pd.Index) -> np.ndarray:
    """``values.isin(index)`` for an index without duplicates, by hash lookup.

    Why: pandas 3's ``isin`` on arrow-backed strings is slow with large value sets: at 300,000
    admissions, ``universe.isin(alliance ids)`` (1.45 million rows) took 24.7 s and
    ``alliance ids.isin(universe)`` 3.8 s; ``get_indexer`` gives the same answer in 1.0 s
    (docs/benchmarks.md)."""
    return index.get_indexer(values) >= 0


def _unique_ids(*series: pd.Series) -> pd.Index:
    ids = pd.concat([s.astype("str") for s in series], ignore_index=True)
    return pd.Index(ids.drop_duplicates(), name="admission_id", dtype="str")


def _early_by_episode(
    universe: pd.Index, intake: pd.DataFrame | None, episodes: pd.DataFrame | None
) -> tuple[pd.Series, pd.Series]:
    """(has a usable episodes row, left within EARLY_LEAVER_DAYS) per admission."""
    known = pd.Series(False, index=universe)
    early = pd.Series(False, index=universe)
    if episodes is None or intake is None or "admission_date" not in intake.columns:
        return known, early
    _require(episodes, "episodes", ("admission_id", "discharge_reason"))
    ep = episodes.assign(admission_id=episodes["admission_id"].astype("str"))
    ep = ep.drop_duplicates("admission_id").set_index("admission_id")
    adm = pd.to_datetime(
        intake.assign(admission_id=intake["admission_id"].astype("str"))
        .drop_duplicates("admission_id")
        .set_index("admission_id")["admission_date"],
        errors="coerce",
    ).reindex(universe)
    reason = ep["discharge_reason"].reindex(universe)
    if "discharge_date" in ep.columns:
        dis = pd.to_datetime(ep["discharge_date"], errors="coerce").reindex(universe)
    else:
        dis = pd.Series(pd.NaT, index=universe)
    known = reason.notna()
    days = (dis - adm).dt.days
    left = known & ~reason.isin(NOT_EARLY_REASONS) & days.notna() & (days <= EARLY_LEAVER_DAYS)
    return known.astype(bool), left.astype(bool)


def build_labels(
    alliance: pd.DataFrame,
    cfg: LabelConfig,
    intake: pd.DataFrame | None = None,
    episodes: pd.DataFrame | None = None,
    weeks: tuple[int, ...] = WEEKS,
) -> LabelResult:
    """Build ``low_alliance`` per admission from WAI-S ratings (rules in the module docstring).

    Admissions are those of ``intake`` when given (alliance rows for unknown admissions raise
    DataError), else those appearing in ``alliance`` or ``episodes``. Duplicate ratings of one
    (admission_id, week, rater) raise DataError: the contract allows one.

    ``weeks`` (a subset of 1-3, default all three) restricts the ratings the score is the mean of,
    e.g. (2, 3) for "low alliance in the weeks still to come" after week 1 (issue 19). Early
    leavers are still decided on all weeks 1-3, so the partition of admissions keeps its meaning;
    an admission rated only outside ``weeks`` is unlabelled, not an early leaver.
    """
    if not weeks or not set(weeks) <= set(WEEKS):
        raise ValueError(f"weeks must be a non-empty subset of {WEEKS}, got {weeks!r}")
    _require(alliance, "alliance", ("admission_id", "week", "rater"))
    a = alliance.assign(admission_id=alliance["admission_id"].astype("str"))
    week = pd.to_numeric(a["week"], errors="coerce")
    rater = a["rater"].astype("str")
    keep = week.isin(WEEKS) & rater.isin(RATERS)
    ignored = int((~keep).sum())
    a = a.loc[keep].assign(week=week[keep].astype(int), rater=rater[keep])

    dup = a.duplicated(["admission_id", "week", "rater"], keep="first")
    if dup.any():
        rows = a.loc[dup].head(100)
        raise DataError(
            [
                FieldError(
                    "alliance",
                    "week",
                    f"second {r} rating of the same week (one rating per admission, week, rater)",
                    int(w),
                    aid,
                )
                for aid, w, r in zip(rows["admission_id"], rows["week"], rows["rater"], strict=True)
            ]
        )

    if intake is not None:
        _require(intake, "intake", ("admission_id",))
        universe = _unique_ids(intake["admission_id"])
        unknown = pd.Series(~in_index(a["admission_id"], universe), index=a.index)
        if unknown.any():
            bad = a.loc[unknown, "admission_id"].drop_duplicates().head(100)
            raise DataError(
                [FieldError("alliance", "admission_id", "not in intake", v, v) for v in bad]
            )
    else:
        parts = [a["admission_id"]]
        if episodes is not None and "admission_id" in episodes.columns:
            parts.append(episodes["admission_id"])
        universe = _unique_ids(*parts)

    a = a.assign(wai=score_wai(a))
    any_valid_ids = pd.Index(a.loc[a["wai"].notna(), "admission_id"].unique(), dtype="str")
    rated = pd.Index(a["admission_id"].unique(), dtype="str")
    if tuple(weeks) != WEEKS:
        a = a.loc[a["week"].isin(weeks)]
    valid = a[a["wai"].notna()]
    stats = valid.groupby(["admission_id", "rater"])["wai"].agg(["mean", "count"])
    per_rater = pd.DataFrame(index=universe)
    for r in RATERS:
        sub = stats.xs(r, level="rater") if r in stats.index.get_level_values("rater") else None
        if sub is None:
            per_rater[f"{r}_score"] = np.nan
            per_rater[f"{r}_valid_weeks"] = 0
        else:
            per_rater[f"{r}_score"] = sub["mean"].reindex(universe).astype(float)
            per_rater[f"{r}_valid_weeks"] = sub["count"].reindex(universe).fillna(0).astype(int)

    used = RATERS if cfg.rater == "either" else (cfg.rater,)
    qualifying = np.column_stack(
        [
            np.where(
                per_rater[f"{r}_valid_weeks"].to_numpy() >= cfg.min_valid_weeks,
                per_rater[f"{r}_score"].to_numpy(dtype=float),
                np.nan,
            )
            for r in used
        ]
    )
    with np.errstate(invalid="ignore"):
        score_all = np.fmin.reduce(qualifying, axis=1)
    score_all = pd.Series(score_all, index=universe, dtype=float)
    labelled = score_all.notna()

    any_valid = pd.Series(in_index(universe, any_valid_ids), index=universe)
    rated_at_all = pd.Series(in_index(universe, rated), index=universe)
    ep_known, ep_early = _early_by_episode(universe, intake, episodes)
    early = ~any_valid & ((ep_known & ep_early) | (~ep_known & ~rated_at_all))
    early &= ~labelled  # cannot happen (no valid rating), kept as the stated invariant

    used_weeks = sum(per_rater[f"{r}_valid_weeks"] for r in used)
    unlabelled = ~labelled & ~early
    score = score_all[labelled].rename("score")
    labels = is_low(score, cfg).astype(int).rename(LABEL)

    used_rows = a["rater"].isin(used)
    counts = {
        "admissions": len(universe),
        "labelled": int(labelled.sum()),
        "low": int(labels.sum()),
        "not_low": int(len(labels) - labels.sum()),
        "unlabelled": int(unlabelled.sum()),
        "unlabelled_no_valid_rating": int((unlabelled & (used_weeks == 0)).sum()),
        "unlabelled_too_few_weeks": int((unlabelled & (used_weeks > 0)).sum()),
        "early_leavers": int(early.sum()),
        "ratings": int(used_rows.sum()),
        "void_ratings": int((used_rows & a["wai"].isna()).sum()),
        "ratings_ignored": ignored,
    }
    return LabelResult(
        labels=labels,
        score=score,
        counts=counts,
        definition=label_definition(cfg, tuple(weeks)),
        per_rater=per_rater,
        early_leavers=universe[early.to_numpy()],
    )
