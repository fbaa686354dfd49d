"""Explanations an intake worker can act on, for n records at once (one record is n = 1).

The one explanation path of the project: the service (``explain_row``), pandas and Spark batch
scoring (``explain_matrix`` / ``explain_contributions``) and the logged pyfunc's ``contrib_*``
columns (``models.scoring.predict.score_frame``) all take their numbers from here.

Definition (issue 11). ``ScoringModel.contributions(X)`` gives per-feature contributions in
calibrated log-odds whose last column is the calibrated log-odds of the model's *typical client*
(the reference row stored with the model: medians and modes of the training data), and every row
adds up exactly to the record's calibrated log-odds. A driver group's contribution is the sum of
its columns (Shapley values are additive over features). So, for every record, the groups add up
to logit(risk) - logit(typical risk), assessed or not: every group is reported, a group none of
whose fields was given is labelled "not assessed" with the fields to complete.

Display in probability points: a group's points = its log-odds contribution x (p - p0) / (L - L0),
where L, p are the record's calibrated log-odds and probability and L0, p0 the typical client's.
The factor is the slope of the secant of the logistic curve between the two, positive always, so
signs and ranks are kept and the points of all groups add up exactly to p - p0 (to 1e-15). When
|L - L0| <= 1e-9 the tangent slope p0 (1 - p0) is used (the sum is then off by at most 1e-18).

What-ifs: for a modifiable driver that raises the risk, the risk with that driver's model columns
set to the typical client's (one model call for all drivers of a record). It is shown only when it
is lower than the risk at the page's precision (0.1 percentage points); otherwise it is omitted
and the reason is given (in a model with interactions the two can differ).
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from features.catalog import DRIVER_GROUPS, MODIFIABLE_GROUPS, PREDICTORS, fields_of_driver
from features.rows import COLUMNS
from features.settings import BAND_NAMES, BandConfig
from models.scoring.reference import typical_row
from models.scoring.scorer import UNCERTAINTY_LEVEL, ScoringModel, interval_of_draws, sigmoid

HERE = Path(__file__).parent
# The page shows risk and points to 0.1 percentage points: anything below half of that reads 0.0.
DISPLAY_STEP = 0.001
MIN_POINTS = DISPLAY_STEP / 2
GROUP_COLUMNS: dict[str, np.ndarray] = {
    g: np.array([j for j, c in enumerate(COLUMNS) if c.driver == g], dtype=int)
    for g in DRIVER_GROUPS
}


# --------------------------------------------------------------------------------------------
# Suggested actions (sources a clinician can look up)


@cache
def actions() -> dict[str, list[dict[str, str]]]:
    """Suggested actions per modifiable driver, with their sources (models/scoring/actions.csv, from the
    domain brief's table of modifiable drivers and its references)."""
    out: dict[str, list[dict[str, str]]] = {}
    with (HERE / "actions.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["driver"] not in MODIFIABLE_GROUPS:
                raise ValueError(
                    f"actions.csv names {row['driver']!r}, which is not a modifiable driver"
                )
            out.setdefault(row["driver"], []).append(
                {"action": row["action"], "evidence": row["evidence"], "source": row["source"]}
            )
    return out


@cache
def monitoring_actions() -> dict[str, dict[str, str]]:
    with (HERE / "monitoring_actions.csv").open(newline="") as fh:
        return {
            r["band"]: {"action": r["action"], "evidence": r["evidence"], "source": r["source"]}
            for r in csv.DictReader(fh)
        }


# --------------------------------------------------------------------------------------------
# The vectorised core


@dataclass(frozen=True)
class Explanation:
    """Explanations of n records; group arrays are n x len(DRIVER_GROUPS), in that order."""

    risk: np.ndarray  # calibrated probability of a low early alliance
    typical_risk: np.ndarray  # the typical client's risk (the base every group is measured from)
    log_odds: np.ndarray  # group contributions, calibrated log-odds
    points: np.ndarray  # group contributions, probability points; rows add up to risk - typical
    assessed: np.ndarray  # bool: at least one of the group's fields was given
    # The 95% uncertainty interval of the risk (ScoringModel.interval); NaN where the model
    # states none (LightGBM).
    risk_low: np.ndarray | None = None
    risk_high: np.ndarray | None = None
    # The calibrated log-odds under each of the model's B refits (n x B) the interval came from,
    # kept for the weekly update, which pairs refit b with its own draw b (models.scoring.weekly);
    # None without refits or when the contributions came from elsewhere (explain_contributions).
    refit_log_odds: np.ndarray | None = None

    def __post_init__(self) -> None:
        nan = np.full(len(self.risk), np.nan)
        if self.risk_low is None:
            object.__setattr__(self, "risk_low", nan)
        if self.risk_high is None:
            object.__setattr__(self, "risk_high", nan.copy())


def to_points(log_odds: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, ...]:
    """(risk, typical risk, points) from group log-odds [n x groups] and the base log-odds [n]."""
    G = np.atleast_2d(np.asarray(log_odds, dtype=float))
    base = np.broadcast_to(np.asarray(base, dtype=float), (len(G),))
    total = G.sum(axis=1)
    p0, p = sigmoid(base), sigmoid(base + total)
    small = np.abs(total) <= 1e-9
    slope = np.where(small, p0 * (1 - p0), (p - p0) / np.where(small, 1.0, total))
    return p, p0, G * slope[:, None]


def _field_columns() -> dict[str, np.ndarray]:
    """For each predictor field, the model columns that hold its own value (one-hots for codes)."""
    out = {}
    for f in PREDICTORS:
        if f.kind == "code":
            idx = [j for j, c in enumerate(COLUMNS) if c.name.startswith(f.name + "=")]
        else:
            idx = [j for j, c in enumerate(COLUMNS) if c.name == f.name]
        out[f.name] = np.array(idx, dtype=int)
    return out


FIELD_COLUMNS = _field_columns()


def given_fields(X: np.ndarray) -> dict[str, np.ndarray]:
    """field -> bool [n]: was the field given? Read from the model rows, so every path (record,
    table, Spark partition) uses one definition: a number is given when not NaN, a code when one
    of its one-hot columns is set (an unrecorded code is all zeros)."""
    out = {}
    for f in PREDICTORS:
        cols = X[:, FIELD_COLUMNS[f.name]]
        out[f.name] = (cols == 1).any(axis=1) if f.kind == "code" else ~np.isnan(cols[:, 0])
    return out


def assessed_matrix(X: np.ndarray) -> np.ndarray:
    """[n x groups]: True where at least one of the group's fields was given."""
    given = given_fields(X)
    out = np.zeros((len(X), len(DRIVER_GROUPS)), dtype=bool)
    for j, g in enumerate(DRIVER_GROUPS):
        for f in fields_of_driver(g):
            out[:, j] |= given[f.name]
    return out


def group_log_odds(model: ScoringModel, contrib: np.ndarray) -> np.ndarray:
    groups = model.group_contributions(contrib)
    return np.column_stack([groups[g] for g in DRIVER_GROUPS])


def explain_contributions(
    log_odds: np.ndarray,
    base: np.ndarray | float,
    assessed: np.ndarray,
    interval: tuple[np.ndarray, np.ndarray] | None = None,
) -> Explanation:
    """From group contributions already computed (the Spark engine gets them from the pyfunc)."""
    risk, typical, points = to_points(log_odds, base)
    low, high = interval if interval is not None else (None, None)
    return Explanation(risk, typical, np.atleast_2d(log_odds), points, assessed, low, high)


def explain_matrix(model: ScoringModel, X: np.ndarray) -> Explanation:
    """Risk, its 95% uncertainty interval, typical risk and every group's contribution for the
    model rows X (n x p)."""
    contrib = model.contributions(X)
    ex = explain_contributions(group_log_odds(model, contrib), contrib[:, -1], assessed_matrix(X))
    M = model.refit_log_odds(X)
    if M is not None:  # ScoringModel.interval's steps, keeping the refits' log-odds
        low, high = interval_of_draws(sigmoid(M), ex.risk)
        ex = dataclasses.replace(ex, risk_low=low, risk_high=high, refit_log_odds=M)
    return ex


def interval_view(low: float, high: float, band_of=None) -> dict[str, Any] | None:
    """The API's view of a 95% uncertainty interval (``risk_interval`` and the others): its ends
    and level, and, given the band rule ``band_of``, whether the risk's band is certain (both
    ends in the same band) or which bands it could be (``risk_remaining``, another outcome, has
    no bands). None without an interval."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    view = {"low": round(float(low), 4), "high": round(float(high), 4), "level": UNCERTAINTY_LEVEL}
    if band_of is not None:
        ends = [band_of(float(low)), band_of(float(high))]
        order = list(BAND_NAMES)
        possible = order[order.index(ends[0]) : order.index(ends[1]) + 1]
        view |= {"band_certain": len(possible) == 1, "bands_possible": possible}
    return view


def typical_log_odds(model: ScoringModel) -> float:
    """The base every contribution is measured from: the last column of ``contributions``, the
    same for every record (the typical client's calibrated log-odds)."""
    return float(model.contributions(typical_row(model.reference))[0, -1])


def what_ifs(model: ScoringModel, row: np.ndarray, groups: list[str]) -> np.ndarray:
    """Risk of the record (row, 1 x p) with each group's columns at the typical client's, one
    model call for all groups (per-call overhead dominates for a tree ensemble)."""
    if not groups:
        return np.empty(0)
    typ = typical_row(model.reference)[0]  # the row stored with the model
    rows = np.repeat(row, len(groups), axis=0)
    for k, g in enumerate(groups):
        idx = GROUP_COLUMNS[g]
        rows[k, idx] = typ[idx]
    return model.proba(rows)


# --------------------------------------------------------------------------------------------
# One record, as the page and the API show it


def _missing(v: Any) -> bool:
    return v is None or v == "" or (isinstance(v, float) and np.isnan(v))


def _typed(f, v: Any) -> Any:
    """A reference value as the field's own type (booleans were stored as "True"/"False")."""
    if v is None:
        return None
    if f.kind == "boolean":
        return str(v).strip().lower() in ("true", "1", "1.0", "yes")
    return v


def shown(f, v: Any) -> str:
    """A value as a person reads it: booleans yes/no, codes with spaces, numbers to 1 decimal."""
    if v is None:
        return "not given"
    if f.kind == "boolean" or isinstance(v, bool):
        return "yes" if _typed(f, v) else "no"
    if isinstance(v, (int, float)):
        return str(int(v)) if float(v).is_integer() else f"{v:.1f}"
    return str(v).replace("_", " ")


def suggestion(group: str, missing: list[str]) -> str | None:
    """What to do about the fields of a group that were not given."""
    if not missing:
        return None
    fields = [f for f in fields_of_driver(group) if f.name in missing]
    instruments = list(dict.fromkeys(f.instrument for f in fields if f.instrument))
    if instruments:
        what = " and ".join(instruments)
        return f"Complete the {what} questionnaire{'s' if len(instruments) > 1 else ''} ({', '.join(missing)}) to assess this driver."
    return f"Record {', '.join(missing)} to assess this driver."


def _rounded_lower(a: float, b: float) -> bool:
    """a < b as the page shows them (percent to one decimal)."""
    return round(100 * a, 1) < round(100 * b, 1)


def _bands(model: ScoringModel) -> BandConfig:
    """The model's own band rule, built once per set of cut-offs (this runs for every served
    record; a pydantic model per request is work the hot path need not do)."""
    given = model.reference.get("bands") or {}
    key = tuple(sorted(given.items()))
    cached = model.__dict__.get("_bands")
    if cached is None or cached[0] != key:
        cached = (key, BandConfig(**given))
        model.__dict__["_bands"] = cached
    return cached[1]


def explain_row(
    model: ScoringModel,
    record: Mapping[str, Any],
    row: np.ndarray,
    band: str | None = None,
    explanation: Explanation | None = None,
) -> dict[str, Any]:
    """Everything the intake page and the API show about one scored record.

    ``record`` is the scored record (scales filled from items); ``row`` its model row (1 x p).
    Every driver group is listed once, largest |points| first. ``explanation``:
    ``explain_matrix(model, row)`` when the caller already has it (the weekly update reuses it).
    """
    ex = explanation if explanation is not None else explain_matrix(model, row)
    risk, typical_risk = float(ex.risk[0]), float(ex.typical_risk[0])
    risk_interval = interval_view(float(ex.risk_low[0]), float(ex.risk_high[0]), _bands(model).band)
    reference = model.reference.get("typical", {})
    drivers, asked = [], []
    for j, g in enumerate(DRIVER_GROUPS):
        pts, lo = float(ex.points[0, j]), float(ex.log_odds[0, j])
        fields = fields_of_driver(g)
        missing = [f.name for f in fields if _missing(record.get(f.name))]
        assessed = bool(ex.assessed[0, j])
        status = "not assessed" if not assessed else "partly assessed" if missing else "assessed"
        effect = "raises" if pts >= MIN_POINTS else "lowers" if pts <= -MIN_POINTS else "none"
        modifiable = g in MODIFIABLE_GROUPS
        act = modifiable and effect == "raises" and assessed
        d: dict[str, Any] = {
            "driver": g,
            "status": status,
            "assessed": assessed,
            "effect": effect,
            "points": round(pts, 4),
            "log_odds": round(lo, 4),
            "modifiable": modifiable,
            "values": [
                {
                    "field": f.name,
                    "value": record.get(f.name),
                    "typical": _typed(f, reference.get(f.name)),
                    "shown": shown(f, record.get(f.name)),
                    "typical_shown": shown(f, _typed(f, reference.get(f.name))),
                }
                for f in fields
                if not _missing(record.get(f.name))
            ],
            "missing_fields": missing,
            "suggestion": suggestion(g, missing),
            "actions": actions().get(g, []) if act else [],
            "what_if": None,
            "what_if_omitted": None,
        }
        if modifiable and effect == "raises":
            if assessed:
                asked.append(d)
            else:
                d["what_if_omitted"] = (
                    "not assessed: complete the questionnaire before weighing a change"
                )
        drivers.append(d)
    for d, p in zip(asked, what_ifs(model, row, [d["driver"] for d in asked]), strict=True):
        p = float(p)
        if _rounded_lower(p, risk):
            d["what_if"] = {
                "risk": round(p, 4),
                "instead_of": round(risk, 4),
                "setting": "this driver's answers at the typical client's values",
            }
        else:
            d["what_if_omitted"] = (
                f"with this driver at the typical client's values the risk would be "
                f"{100 * p:.1f}%, not lower than {100 * risk:.1f}% at the precision shown "
                "(the driver acts together with others in this model)"
            )
    not_assessed = [d["driver"] for d in drivers if not d["assessed"]]  # catalog order
    drivers.sort(key=lambda d: -abs(d["points"]))
    return {
        "risk": risk,
        "risk_interval": risk_interval,
        "typical_risk": typical_risk,
        "drivers": drivers,
        "not_assessed": not_assessed,
        "monitoring": monitoring_actions().get(band) if band else None,
    }


def global_importance(
    model: ScoringModel, X: np.ndarray
) -> tuple[dict[str, float], dict[str, float]]:
    """Mean |contribution| per feature and per driver group (calibrated log-odds) over rows X."""
    contrib = model.contributions(X)
    per_feature = dict(
        zip(model.feature_names, np.abs(contrib[:, :-1]).mean(axis=0).tolist(), strict=True)
    )
    per_group = {g: float(np.abs(v).mean()) for g, v in model.group_contributions(contrib).items()}
    return per_feature, per_group
