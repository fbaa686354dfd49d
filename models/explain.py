"""Explanations an intake worker can act on: drivers, actions and what-ifs for one record.

SHAP values come from ``ScoringModel.contributions`` (exact: native TreeSHAP for LightGBM, linear
SHAP for logistic regression) in calibrated log-odds, and are summed within the catalog's driver
groups (SHAP is additive, so a group's value is the sum of its columns').

Display in probability points: a group's points = its log-odds contribution x (p - p0) / (L - L0),
where L and p are the record's calibrated log-odds and probability and L0, p0 the model's base
value. The factor is the slope of the secant of the logistic curve between base and prediction,
positive always, so signs and ranks are kept and the points add up exactly to p - p0. When
L = L0 the tangent slope p0(1 - p0) is used.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from features.catalog import DRIVER_GROUPS, MODIFIABLE_GROUPS, fields_of_driver
from features.rows import record_row
from models.scorer import ScoringModel, sigmoid

HERE = Path(__file__).parent
MIN_POINTS = 0.0005  # groups smaller than 0.05 percentage points are not worth a line


@cache
def actions() -> dict[str, list[dict[str, str]]]:
    """Suggested actions per modifiable driver, from the domain brief's table (models/actions.csv)."""
    out: dict[str, list[dict[str, str]]] = {}
    with (HERE / "actions.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["driver"] not in MODIFIABLE_GROUPS:
                raise ValueError(
                    f"actions.csv names {row['driver']!r}, which is not a modifiable driver"
                )
            out.setdefault(row["driver"], []).append(
                {"action": row["action"], "evidence": row["evidence"]}
            )
    return out


@cache
def monitoring_actions() -> dict[str, dict[str, str]]:
    with (HERE / "monitoring_actions.csv").open(newline="") as fh:
        return {
            r["band"]: {"action": r["action"], "evidence": r["evidence"]}
            for r in csv.DictReader(fh)
        }


def to_points(groups: Mapping[str, float], bias: float) -> dict[str, float]:
    """Convert group log-odds contributions to probability points summing to p - p0."""
    total = float(sum(groups.values()))
    p0 = float(sigmoid(np.array(bias)))
    p = float(sigmoid(np.array(bias + total)))
    slope = (p - p0) / total if abs(total) > 1e-9 else p0 * (1 - p0)
    return {g: float(v) * slope for g, v in groups.items()}


def _missing(v: Any) -> bool:
    return v is None or v == "" or (isinstance(v, float) and np.isnan(v))


def assessable(record: Mapping[str, Any], group: str) -> bool:
    """A driver is assessable when at least one of its fields was given."""
    return any(not _missing(record.get(f.name)) for f in fields_of_driver(group))


def _at_median(model: ScoringModel, record: Mapping[str, Any], group: str) -> np.ndarray:
    medians = model.reference.get("median", {})
    changed = dict(record)
    for f in fields_of_driver(group):
        if f.name in medians:
            changed[f.name] = medians[f.name]
    return record_row(changed)


def what_ifs(model: ScoringModel, record: Mapping[str, Any], groups: list[str]) -> list[float]:
    """Risk if each driver's scales were at the reference cohort's median (items replaced too).
    One model call for all drivers: per-call overhead dominates for a tree ensemble."""
    if not groups:
        return []
    rows = np.vstack([_at_median(model, record, g) for g in groups])
    return [float(p) for p in model.proba(rows)]


def explain_row(
    model: ScoringModel, record: Mapping[str, Any], row: np.ndarray, band: str | None = None
) -> dict[str, Any]:
    """Everything the intake page and the API show about one scored record.

    ``record`` is the scored record (scales filled from items); ``row`` its model row (1 x p).
    """
    contrib = model.contributions(row)[0]
    bias = float(contrib[-1])
    groups = {g: float(v[0]) for g, v in model.group_contributions(contrib[None, :]).items()}
    points = to_points(groups, bias)
    risk = float(sigmoid(np.array(bias + sum(groups.values()))))
    typical = model.reference.get("typical", {})
    drivers, not_assessed, asked = [], [], []
    for g in DRIVER_GROUPS:
        if not assessable(record, g):
            not_assessed.append(g)
            continue
        if abs(points[g]) < MIN_POINTS:
            continue
        raises = points[g] > 0
        modifiable = g in MODIFIABLE_GROUPS
        d: dict[str, Any] = {
            "driver": g,
            "effect": "raises" if raises else "lowers",
            "points": round(points[g], 4),
            "log_odds": round(groups[g], 4),
            "modifiable": modifiable,
            "values": [
                {"field": f.name, "value": record.get(f.name), "typical": typical.get(f.name)}
                for f in fields_of_driver(g)
                if not _missing(record.get(f.name))
            ],
            "actions": actions().get(g, []) if (modifiable and raises) else [],
            "what_if": None,
        }
        drivers.append(d)
        if modifiable and raises:
            asked.append(d)
    for d, p in zip(asked, what_ifs(model, record, [d["driver"] for d in asked]), strict=True):
        d["what_if"] = {
            "risk": round(p, 4),
            "instead_of": round(risk, 4),
            "setting": "driver's scales at the reference cohort's median",
        }
    drivers.sort(key=lambda d: -abs(d["points"]))
    return {
        "risk": risk,
        "base_risk": float(sigmoid(np.array(bias))),
        "drivers": drivers,
        "not_assessed": not_assessed,
        "monitoring": monitoring_actions().get(band) if band else None,
    }


def global_importance(
    model: ScoringModel, X: np.ndarray
) -> tuple[dict[str, float], dict[str, float]]:
    """Mean |SHAP| per feature and per driver group (calibrated log-odds) over rows X."""
    contrib = model.contributions(X)
    per_feature = dict(
        zip(model.feature_names, np.abs(contrib[:, :-1]).mean(axis=0).tolist(), strict=True)
    )
    per_group = {g: float(np.abs(v).mean()) for g, v in model.group_contributions(contrib).items()}
    return per_feature, per_group
