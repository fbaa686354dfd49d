"""The model matrix's columns and the two ways a row is made (arrays, or one record).

Why one numeric matrix with fixed columns: the contract fixes every code, so one-hot columns need
no fitting and the same code turns a 50,000-row table and one API record into identical rows.
Why its own module: it imports neither pandas nor scikit-learn, so the scoring service (which
needs only ``record_row``) starts faster and holds about 150 MB less per process. The table path
(DataFrames, the scikit-learn transformer) is in ``features.build``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from features.catalog import (
    PREDICTORS,
    Field,
)
from features.instruments import RQ_PROTOTYPES

# Questionnaire blocks whose absence is informative (a client who declines a questionnaire differs
# from one who completes it), each with the fields that make it up and the driver it belongs to.
MISSING_BLOCKS: dict[str, tuple[tuple[str, ...], str]] = {
    "motivation": (
        (
            "mot_problem_recognition",
            "mot_desire_for_help",
            "mot_treatment_readiness",
            "mot_external_pressure",
        ),
        "motivation",
    ),
    "self_efficacy": (("self_efficacy",), "coping"),
    "social_support": (("social_support",), "social_support"),
    "distress": (("psych_distress",), "distress"),
    "coping": (("coping_adaptive", "coping_avoidant"), "coping"),
    "attachment": (RQ_PROTOTYPES, "attachment"),
}


@dataclass(frozen=True)
class Column:
    """One model-matrix column: its name, where it comes from, and how it may be constrained."""

    name: str
    sources: tuple[str, ...]
    driver: str
    monotone: int  # +1 raises risk as it grows, -1 lowers it, 0 unconstrained


def _monotone(f: Field) -> int:
    # Expected direction is on the alliance; the model predicts the risk of a LOW alliance.
    return {"+": -1, "-": 1, "none": 0}[f.direction]


def _columns() -> tuple[Column, ...]:
    cols: list[Column] = []
    for f in PREDICTORS:
        if f.kind == "code":
            cols += [Column(f"{f.name}={c}", (f.name,), f.driver, 0) for c in f.codes]
        else:
            cols.append(
                Column(
                    f.name,
                    (f.name,),
                    f.driver,
                    _monotone(f) if f.kind == "number" or f.instrument else 0,
                )
            )
    cols += [
        Column("years_using", ("age", "age_first_use"), "substance_use", 0),
        Column("any_crack", ("primary_substance", "crack_days_28"), "substance_use", 0),
        Column("attach_model_self", RQ_PROTOTYPES, "attachment", 0),
        Column("attach_model_others", RQ_PROTOTYPES, "attachment", 0),
        *(
            Column(f"attach_style={s}", RQ_PROTOTYPES, "attachment", 0)
            for s in ("secure", "fearful", "preoccupied", "dismissing")
        ),
        Column("counsellor_known", ("counsellor_id",), "counsellor", 0),
    ]
    cols += [Column(f"missing_{b}", fields, drv, 0) for b, (fields, drv) in MISSING_BLOCKS.items()]
    return tuple(cols)


COLUMNS: tuple[Column, ...] = _columns()
FEATURE_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
COLUMN_DRIVERS: tuple[str, ...] = tuple(c.driver for c in COLUMNS)
MONOTONE: tuple[int, ...] = tuple(c.monotone for c in COLUMNS)
INPUT_FIELDS: tuple[str, ...] = tuple(
    dict.fromkeys(["counsellor_id", *(s for c in COLUMNS for s in c.sources)])
)

_BOOL_WORDS = {"true": 1.0, "false": 0.0}


def _is_pd_na(v: Any) -> bool:
    """pandas' NA without importing pandas: if pandas is not loaded, no value can be its NA."""
    pd = sys.modules.get("pandas")
    return pd is not None and v is pd.NA


def to_float(values: np.ndarray) -> np.ndarray:
    """Numbers, booleans and their CSV spellings ("true"/"false") as floats; anything else NaN."""
    if values.dtype.kind in "fiub":
        return values.astype(float)
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if isinstance(v, (bool, np.bool_, int, float, np.number)):
            out[i] = float(v)
        elif isinstance(v, str):
            s = v.strip().lower()
            if s in _BOOL_WORDS:
                out[i] = _BOOL_WORDS[s]
            elif s:
                try:
                    out[i] = float(s)
                except ValueError:
                    pass
    return out


def _present(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return ~np.isnan(values)
    pd = sys.modules.get("pandas")
    if pd is not None:  # the table path: pandas' vectorised missing check (None, NaN, NA)
        missing = np.asarray(pd.isna(values), dtype=bool)
        empty = np.zeros(len(values), dtype=bool)
        np.equal(values, "", out=empty, where=~missing)  # never compares NA (ambiguous truth)
        return ~(missing | empty)
    return np.array([_given(v) for v in values], dtype=bool)  # the record path's predicate


def build_matrix(cols: Mapping[str, Any], n: int) -> np.ndarray:
    """The one place a model row is made; ``cols`` maps field name -> 1-d array of length n."""

    def get(name: str) -> np.ndarray:
        v = cols.get(name)
        if v is None:
            return np.full(n, np.nan)
        return np.asarray(v)

    num: dict[str, np.ndarray] = {}
    out = np.empty((n, len(COLUMNS)))
    j = 0
    for f in PREDICTORS:
        raw = get(f.name)
        if f.kind == "code":
            s = raw.astype(object)
            present = _present(s)
            # An unrecorded code is all zeros: "none of these", never imputed into a category.
            for c in f.codes:
                out[:, j] = ((s == c) & present).astype(float)
                j += 1
        else:
            num[f.name] = to_float(raw)
            out[:, j] = num[f.name]
            j += 1
    age, afu = num["age"], num["age_first_use"]
    out[:, j] = age - afu
    j += 1
    ps = get("primary_substance").astype(object)
    crack_days = num["crack_days_28"]
    any_crack = np.where(
        ps == "crack", 1.0, np.where(np.isnan(crack_days), np.nan, (crack_days > 0).astype(float))
    )
    out[:, j] = any_crack
    j += 1
    sec, fea, pre, dis = (num[k] for k in RQ_PROTOTYPES)
    out[:, j] = (sec + dis) - (pre + fea)
    out[:, j + 1] = (sec + pre) - (dis + fea)
    j += 2
    stack = np.vstack([sec, fea, pre, dis]).T
    complete = ~np.isnan(stack).any(axis=1)
    top = np.argmax(np.where(np.isnan(stack), -np.inf, stack), axis=1)
    for k in range(4):
        out[:, j] = np.where(complete, (top == k).astype(float), np.nan)
        j += 1
    out[:, j] = _present(get("counsellor_id").astype(object)).astype(float)
    j += 1
    for fields, _ in MISSING_BLOCKS.values():
        out[:, j] = np.all([np.isnan(num[f]) for f in fields], axis=0).astype(float)
        j += 1
    assert j == len(COLUMNS)
    return out


def _scalar(v: Any) -> float:
    """One value as ``to_float`` reads it."""
    if isinstance(v, (bool, np.bool_, int, float, np.number)):
        return float(v)
    if isinstance(v, str):
        t = v.strip().lower()
        if t in _BOOL_WORDS:
            return _BOOL_WORDS[t]
        try:
            return float(t) if t else _NAN
        except ValueError:
            return _NAN
    return _NAN


def _given(v: Any) -> bool:
    return not (v is None or _is_pd_na(v) or v == "" or (isinstance(v, float) and v != v))


_NAN = float("nan")
_ATTACH_STYLES = 4


def record_row(record: Mapping[str, Any]) -> np.ndarray:
    """The same row as ``build_matrix`` for one record, in plain Python.

    Why a second spelling: numpy's per-call overhead over ~80 small columns made one record cost
    over a millisecond, and the service builds a row per score and per what-if. A test holds the
    two paths equal on thousands of records.
    """
    out: list[float] = []
    num: dict[str, float] = {}
    for f in PREDICTORS:
        v = record.get(f.name)
        if f.kind == "code":
            given = _given(v)
            out.extend(1.0 if (given and v == c) else 0.0 for c in f.codes)
        else:
            x = num[f.name] = _scalar(v)
            out.append(x)
    out.append(num["age"] - num["age_first_use"])
    crack_days = num["crack_days_28"]
    if record.get("primary_substance") == "crack":
        out.append(1.0)
    else:
        out.append(_NAN if crack_days != crack_days else float(crack_days > 0))
    sec, fea, pre, dis = (num[k] for k in RQ_PROTOTYPES)
    out += [(sec + dis) - (pre + fea), (sec + pre) - (dis + fea)]
    protos = [sec, fea, pre, dis]
    if any(x != x for x in protos):
        out += [_NAN] * _ATTACH_STYLES
    else:
        top = protos.index(max(protos))
        out += [1.0 if k == top else 0.0 for k in range(_ATTACH_STYLES)]
    out.append(1.0 if _given(record.get("counsellor_id")) else 0.0)
    for fields, _ in MISSING_BLOCKS.values():
        out.append(1.0 if all(num[f] != num[f] for f in fields) else 0.0)
    return np.array([out])
