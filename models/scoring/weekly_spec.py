"""The weekly models' stored spec (``ScoringModel.weekly``) read back from model.json: its lists
as numpy arrays. A leaf of ``models.scoring``: the scorer reads a saved model through it and
``models.scoring.weekly`` scores with what it returns, so the scorer never imports the weekly
module that imports the scorer (no import circle)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def spec_from_json(meta: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """model.json's ``weekly`` entry with its lists as arrays (``ScoringModel.load``)."""
    if not meta:
        return None
    out = dict(meta)
    out["typical"] = np.asarray(meta["typical"], dtype=float)
    models = {}
    for k, by_target in meta["models"].items():
        models[str(k)] = {
            t: None
            if m is None
            else {
                **m,
                "gamma": np.asarray(m["gamma"], dtype=float),
                "delta": np.asarray(m["delta"], dtype=float),
                # draws of the parameters (the updated risks' intervals); absent in a model
                # fitted before them, which then states no updated interval
                "draws": draws_from_json(m.get("draws")),
            }
            for t, m in by_target.items()
        }
    out["models"] = models
    band = dict(meta["band"])
    band["edges"] = np.asarray(band["edges"], dtype=float)
    band["lower"] = {r: np.asarray(v, dtype=float) for r, v in band["lower"].items()}
    out["band"] = band
    # a threshold the training data could not estimate (fewer than two week-1 ratings) is NaN:
    # no rupture or discrepancy is then flagged
    nan = float("nan")
    out["rupture"] = {
        **meta["rupture"],
        "threshold": {
            r: nan if v is None else float(v) for r, v in meta["rupture"]["threshold"].items()
        },
    }
    v = meta["discrepancy"]["threshold"]
    out["discrepancy"] = {**meta["discrepancy"], "threshold": nan if v is None else float(v)}
    return out


def draws_from_json(d: Mapping[str, Any] | None) -> dict[str, np.ndarray] | None:
    """A stacked model's stored draws as arrays: alpha, beta (B), gamma, delta (B x 2K)."""
    if not d:
        return None
    return {k: np.asarray(d[k], dtype=float) for k in ("alpha", "beta", "gamma", "delta")}
