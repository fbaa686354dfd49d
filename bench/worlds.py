"""Quick label-level world variants for judging candidates beyond the one generator (issue 10).

Each variant takes the SYNTHETIC generator's true probability of a low alliance for a record (the
``p_low_alliance_client_no_ids`` ground truth: the best any model that never sees counsellor ids
can do) and transforms its log-odds with a structure the generator lacks. Labels are then drawn
from the new probability, so the truth of every client is known exactly. These are assumptions
made for a stress test, not findings: the amounts are chosen so that each added structure moves
risks by roughly as much as one of the generator's stronger drivers.

- ``simulator``: unchanged.
- ``hinge``: distress matters only above a level: +0.15 log-odds per GHQ-12 point above 18.
- ``interaction``: motivation x legal pressure: under legal pressure, each TCU point of treatment
  readiness below 30 adds 0.06 log-odds (and each point above subtracts it).
- ``nonlinear_age``: a U in age: +0.7 x ((age - 38) / 12)^2, centred.
- ``weak``: every effect 0.6 times as large (log-odds shrunk towards their mean).
- ``strong``: every effect 1.5 times as large.

A value that is missing on the record adds nothing. Used by ``bench/candidate_worlds.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd


def _num(records: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(records[name], errors="coerce").to_numpy(dtype=float)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _hinge(r: pd.DataFrame, z: np.ndarray) -> np.ndarray:
    return z + np.nan_to_num(0.15 * np.maximum(0.0, _num(r, "psych_distress") - 18.0))


def _interaction(r: pd.DataFrame, z: np.ndarray) -> np.ndarray:
    legal = r["legal_pressure"].astype(str).str.lower().isin(["true", "1", "1.0"]).to_numpy()
    ready = _num(r, "mot_treatment_readiness")
    return z + np.nan_to_num(-0.06 * (ready - 30.0)) * legal


def _age(r: pd.DataFrame, z: np.ndarray) -> np.ndarray:
    u = 0.7 * ((_num(r, "age") - 38.0) / 12.0) ** 2
    return z + np.nan_to_num(u - np.nanmean(u))


def _scaled(k: float) -> Callable[[pd.DataFrame, np.ndarray], np.ndarray]:
    return lambda r, z: z.mean() + k * (z - z.mean())


WORLDS: dict[str, Callable[[pd.DataFrame, np.ndarray], np.ndarray]] = {
    "simulator": lambda r, z: z,
    "hinge": _hinge,
    "interaction": _interaction,
    "nonlinear_age": _age,
    "weak": _scaled(0.6),
    "strong": _scaled(1.5),
}


def true_probability(world: str, records: pd.DataFrame, p_base: np.ndarray) -> np.ndarray:
    """The world's true probability of a low alliance for each record."""
    z = WORLDS[world](records.reset_index(drop=True), _logit(np.asarray(p_base, dtype=float)))
    return 1.0 / (1.0 + np.exp(-z))
