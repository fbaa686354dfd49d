"""A trained, calibrated model reduced to what scoring and explaining need, in plain numpy.

Why not a pickled sklearn pipeline: the service scores one record at a time, and a pipeline with a
one-row DataFrame costs milliseconds where numpy costs microseconds (stack notes). Storing numbers
(JSON) and LightGBM's own text format also means loading a model never unpickles code.

Calibration is Platt scaling on the model's raw log-odds: calibrated log-odds = a * margin + b.
Because that map is linear in log-odds, the SHAP contributions of the raw model, multiplied by a,
are exact additive contributions to the *calibrated* log-odds (the bias becomes a * bias + b).
That is why Platt ("sigmoid") is used rather than isotonic: isotonic would break additivity and
could flatten the ranking in small data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from features.catalog import DRIVER_GROUPS
from features.rows import COLUMN_DRIVERS, FEATURE_NAMES

DRIVER_INDEX = {
    g: np.array([i for i, d in enumerate(COLUMN_DRIVERS) if d == g], dtype=int)
    for g in DRIVER_GROUPS
}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def logit(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    p = np.clip(p, eps, 1 - eps)
    return np.log(p / (1 - p))


@dataclass
class ScoringModel:
    kind: str  # "logistic" or "lightgbm"
    params: dict[str, Any]
    platt_a: float = 1.0
    platt_b: float = 0.0
    linear: dict[str, np.ndarray] | None = None  # median, mean, scale, coef, intercept
    booster: Any = None  # lightgbm.Booster
    reference: dict[str, Any] = field(default_factory=dict)
    feature_names: tuple[str, ...] = FEATURE_NAMES

    # ---- scoring -------------------------------------------------------------------------
    def _standardised(self, X: np.ndarray) -> np.ndarray:
        lin = self.linear
        Xi = np.where(np.isnan(X), lin["median"], X)
        return (Xi - lin["mean"]) / lin["scale"]

    def margin(self, X: np.ndarray) -> np.ndarray:
        """Raw (uncalibrated) log-odds of a low alliance."""
        if self.kind == "logistic":
            return self._standardised(X) @ self.linear["coef"] + float(self.linear["intercept"])
        return self.booster.predict(X, raw_score=True, num_threads=1)

    def proba(self, X: np.ndarray) -> np.ndarray:
        return sigmoid(self.platt_a * self.margin(X) + self.platt_b)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Exact SHAP values in calibrated log-odds, one column per feature plus the bias last.

        Logistic regression: coef * standardised value, i.e. beta_raw * (x - training mean) after
        median imputation (exact linear SHAP under feature independence). LightGBM: the booster's
        native TreeSHAP (``pred_contrib``), identical to ``shap.TreeExplainer`` and cheaper.
        """
        if self.kind == "logistic":
            phi = self._standardised(X) * self.linear["coef"]
            raw = np.column_stack([phi, np.full(len(X), float(self.linear["intercept"]))])
        else:
            raw = np.asarray(self.booster.predict(X, pred_contrib=True, num_threads=1))
        out = raw * self.platt_a
        out[:, -1] += self.platt_b
        return out

    def group_contributions(self, contrib: np.ndarray) -> dict[str, np.ndarray]:
        return {g: contrib[:, idx].sum(axis=1) for g, idx in DRIVER_INDEX.items()}

    # ---- persistence ---------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {
            "kind": self.kind,
            "params": self.params,
            "platt_a": self.platt_a,
            "platt_b": self.platt_b,
            "feature_names": list(self.feature_names),
            "reference": self.reference,
            "linear": {k: np.asarray(v).tolist() for k, v in (self.linear or {}).items()} or None,
        }
        (d / "model.json").write_text(json.dumps(meta, indent=1, default=_jsonable))
        if self.booster is not None:
            self.booster.save_model(str(d / "booster.txt"))
        files = [f for f in ("model.json", "booster.txt") if (d / f).is_file()]
        (d / CHECKSUMS).write_text(json.dumps({f: _sha256(d / f) for f in files}, indent=1))
        return d

    @classmethod
    def load(cls, directory: str | Path, lean: bool = False) -> ScoringModel:
        """``lean``: import LightGBM without its optional integrations (see ``_lightgbm``);
        only for a process that never uses LightGBM's pandas or scikit-learn API (the service)."""
        d = Path(directory)
        _verify_checksums(d)
        try:
            meta = json.loads((d / "model.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"model artifact at {d} is missing or corrupt: {exc}") from exc
        if tuple(meta["feature_names"]) != FEATURE_NAMES:
            raise ValueError("model artifact was built for a different feature set; retrain it")
        booster = None
        if meta["kind"] == "lightgbm":
            lgb = _lightgbm(lean)
            try:
                booster = lgb.Booster(model_file=str(d / "booster.txt"))
            except Exception as exc:  # LightGBM raises its own error type for a bad file
                raise ValueError(f"LightGBM booster at {d} is missing or corrupt: {exc}") from exc
        linear = (
            {k: np.asarray(v, dtype=float) for k, v in meta["linear"].items()}
            if meta["linear"]
            else None
        )
        return cls(
            kind=meta["kind"],
            params=meta["params"],
            platt_a=meta["platt_a"],
            platt_b=meta["platt_b"],
            linear=linear,
            booster=booster,
            reference=meta["reference"],
        )


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot serialise {type(o).__name__}")


CHECKSUMS = "checksums.json"
# Optional integrations LightGBM imports when they are installed; a Booster scoring numpy rows
# needs none of them.
_LIGHTGBM_OPTIONAL = ("pandas", "sklearn", "pyarrow", "dask", "datatable", "cffi", "graphviz")


def _lightgbm(lean: bool = False):
    """With ``lean``, import LightGBM without its optional pandas / scikit-learn / pyarrow integrations when
    this process has not loaded them (the scoring service): about 130 MB less per worker.

    Entries set to None in sys.modules make those imports fail inside LightGBM's compat module
    only; they are removed at once, so a later ``import pandas`` works (but this process's
    LightGBM then keeps treating pandas input as unavailable, which the service never passes).
    """
    import sys

    if "lightgbm" in sys.modules or not lean:
        import lightgbm

        return lightgbm
    blocked = [m for m in _LIGHTGBM_OPTIONAL if m not in sys.modules]
    for m in blocked:
        sys.modules[m] = None  # type: ignore[assignment]
    try:
        import lightgbm
    finally:
        for m in blocked:
            if sys.modules.get(m) is None:
                del sys.modules[m]
    return lightgbm


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verify_checksums(d: Path) -> None:
    """Refuse an artifact whose files changed since training: a flipped byte in a coefficient or
    a tree threshold would otherwise load and score silently wrong."""
    try:
        expected = json.loads((d / CHECKSUMS).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"model artifact at {d} has no readable {CHECKSUMS}, so its integrity cannot be "
            "checked; retrain it"
        ) from exc
    if "model.json" not in expected:
        raise ValueError(f"model artifact at {d}: {CHECKSUMS} does not cover model.json; retrain")
    for name, digest in expected.items():
        f = d / name
        if not f.is_file():
            raise ValueError(f"model artifact at {d} is missing {name}")
        if _sha256(f) != digest:
            raise ValueError(
                f"model artifact file {name} at {d} does not match its recorded SHA-256 "
                "(corrupted or edited after training); refusing to load it"
            )
