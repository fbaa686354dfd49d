"""A trained, calibrated model reduced to what scoring and explaining need, in plain numpy.

Why not a pickled sklearn pipeline: the service scores one record at a time, and a pipeline with a
one-row DataFrame costs milliseconds where numpy costs microseconds (stack notes). Storing numbers
(JSON) and LightGBM's own text format also means loading a model never unpickles code.

Three representations, all plain numbers:
- ``linear`` (kinds "ridge" and the older "logistic"): median, mean, scale, coef, intercept;
- ``additive`` (kind "spline"): per column either a coefficient or a piecewise-linear shape
  function (knots and values, evaluated with ``np.interp``, flat outside the knots), plus an
  intercept and the medians that stand in for a missing value;
- ``booster`` (kind "lightgbm"): LightGBM's own text format.

Calibration is Platt scaling on the model's raw log-odds: calibrated log-odds = a * margin + b
(a = 1, b = 0 for the kinds tuned directly on log loss). Because that map is linear in log-odds,
contributions of the raw model, multiplied by a, are exact additive contributions to the
*calibrated* log-odds. That is why Platt ("sigmoid") is used rather than isotonic: isotonic would
break additivity and could flatten the ranking in small data.

Contributions are measured against the typical client (``models.scoring.reference``): column j gets the
exact Shapley value of the game "switch the record's values in for the typical client's", and the
last column is the typical client's calibrated log-odds, so every row adds up to the record's
calibrated log-odds. For additive models this is f_j(x_j) - f_j(typical_j). For LightGBM it is
interventional TreeSHAP with that single reference row (exact Shapley values of that game).
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
from models.scoring.reference import typical_row
from models.scoring.weekly_spec import spec_from_json

DRIVER_INDEX = {
    g: np.array([i for i, d in enumerate(COLUMN_DRIVERS) if d == g], dtype=int)
    for g in DRIVER_GROUPS
}


# The level of every stated interval: "95% uncertainty" on the page, ``risk_interval.level`` in
# the API.
UNCERTAINTY_LEVEL = 0.95


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -500.0, 500.0)))  # no overflow warning; same values


def logit(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    p = np.clip(p, eps, 1 - eps)
    return np.log(p / (1 - p))


@dataclass
class ScoringModel:
    # "ridge", "anchored", "spline", "lightgbm", the older "logistic", or "updated" (an existing
    # model recalibrated or revised on new data, models.building.update; the representation
    # says how it scores, ``params["base_kind"]`` what it was)
    kind: str
    params: dict[str, Any]
    platt_a: float = 1.0
    platt_b: float = 0.0
    linear: dict[str, np.ndarray] | None = None  # median, mean, scale, coef, intercept
    additive: dict[str, Any] | None = None  # median, coef, intercept, spline_cols, knots, values
    booster: Any = None  # lightgbm.Booster
    reference: dict[str, Any] = field(default_factory=dict)
    feature_names: tuple[str, ...] = FEATURE_NAMES
    # Per-client uncertainty (models.building.uncertainty): B refits of the model's coefficients
    # as weights on ``raw_basis`` (``W``: B x q, ``c``: B intercepts, raw log-odds), the method
    # ("bootstrap" or "normal") and B. None for LightGBM (no interval is stated).
    uncertainty: dict[str, Any] | None = None
    # The weekly early-warning models, expected-response bands and marker thresholds (issue 19;
    # fitted by models.building.weekly, scored by models.scoring.weekly). Plain numbers, saved in
    # model.json (so covered by its checksum); None for a model trained before them.
    weekly: dict[str, Any] | None = None

    # ---- scoring -------------------------------------------------------------------------
    def _standardised(self, X: np.ndarray) -> np.ndarray:
        lin = self.linear
        Xi = np.where(np.isnan(X), lin["median"], X)
        return (Xi - lin["mean"]) / lin["scale"]

    def _terms(self, X: np.ndarray) -> np.ndarray:
        """Additive kinds: the raw log-odds term of every column (n x p), intercept excluded."""
        if self.linear is not None:
            lin = self.linear
            Xi = np.where(np.isnan(X), lin["median"], X)
            return Xi * (lin["coef"] / lin["scale"])
        add = self.additive
        Xi = np.where(np.isnan(X), add["median"], X)
        out = Xi * add["coef"]
        # A shape function adds to the column's linear term: 0 for a fitted spline, a straight
        # line for a revised one (models.building.update), exact outside the knots too.
        for j, k, v in zip(add["spline_cols"], add["knots"], add["values"], strict=True):
            out[:, j] += np.interp(Xi[:, j], k, v)
        return out

    def _intercept(self) -> float:
        if self.linear is not None:
            lin = self.linear
            return float(lin["intercept"]) - float(np.sum(lin["coef"] * lin["mean"] / lin["scale"]))
        return float(self.additive["intercept"])

    def margin(self, X: np.ndarray) -> np.ndarray:
        """Raw (uncalibrated) log-odds of a low alliance."""
        if self.linear is not None:
            return self._standardised(X) @ self.linear["coef"] + float(self.linear["intercept"])
        if self.additive is not None:
            return self._terms(X).sum(axis=1) + self._intercept()
        return self.booster.predict(X, raw_score=True, num_threads=1)

    def proba(self, X: np.ndarray) -> np.ndarray:
        return sigmoid(self.platt_a * self.margin(X) + self.platt_b)

    # ---- uncertainty -----------------------------------------------------------------------
    def raw_basis(self, X: np.ndarray) -> np.ndarray:
        """The columns an additive model's raw log-odds is linear in: the imputed record, then
        for every spline column its ramps ``clip(x - k_i, 0, k_{i+1} - k_i)`` (flat outside the
        knots, like ``np.interp``). margin = c + raw_basis(X) @ w for the fitted model and for
        every refit kept in ``uncertainty``."""
        if self.linear is not None:
            return np.where(np.isnan(X), self.linear["median"], X)
        add = self.additive
        Xi = np.where(np.isnan(X), add["median"], X)
        parts = [Xi]
        for j, k in zip(add["spline_cols"], add["knots"], strict=True):
            parts.append(np.clip(Xi[:, j][:, None] - k[:-1], 0.0, np.diff(k)))
        return np.hstack(parts)

    def interval(
        self, X: np.ndarray, risk: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The 95% uncertainty interval of every row's risk (``UNCERTAINTY_LEVEL``): the 2.5th
        and 97.5th percentiles of the calibrated risk over the B refits, widened to contain the
        model's own risk (``interval_of_draws``, the rule every stated interval follows). None
        when the model carries no refits (LightGBM)."""
        M = self.refit_log_odds(X)
        if M is None:
            return None
        if risk is None:
            risk = self.proba(X)
        return interval_of_draws(sigmoid(M), risk)

    def refit_log_odds(self, X: np.ndarray) -> np.ndarray | None:
        """Every row's calibrated log-odds under every stored refit (n x B), None without
        refits. The weekly update (``models.scoring.weekly``) pairs column b with its own draw b."""
        unc = self.uncertainty
        if unc is None:
            return None
        return self.platt_a * refit_margins(self.raw_basis(X), unc) + self.platt_b

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Exact Shapley values against the typical client, in calibrated log-odds: one column
        per feature, then the typical client's calibrated log-odds; each row sums to the record's
        calibrated log-odds (a * margin + b)."""
        ref = typical_row(self.reference)
        if self.booster is None:
            key, ref_terms = self.__dict__.get("_ref_terms", (None, None))
            if key != ref.tobytes():  # the typical client's terms, once per reference row
                ref_terms = self._terms(ref)
                self.__dict__["_ref_terms"] = (ref.tobytes(), ref_terms)
            raw = self._terms(X) - ref_terms
            base = float(ref_terms.sum()) + self._intercept()
        else:
            raw, base = self._tree_contributions(X, ref)
        out = np.empty((len(X), raw.shape[1] + 1))
        out[:, :-1] = raw * self.platt_a
        out[:, -1] = self.platt_a * base + self.platt_b
        return out

    def _tree_contributions(self, X: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, float]:
        """Interventional TreeSHAP with the typical row as the only background row: exact
        baseline-Shapley values of the raw margin (cost measured in bench/explain_speed.py)."""
        key, explainer = self.__dict__.get("_explainer", (None, None))
        if key != ref.tobytes():  # built once per reference row (about 0.2 s)
            import shap

            explainer = shap.TreeExplainer(
                self.booster, data=ref, feature_perturbation="interventional"
            )
            self.__dict__["_explainer"] = (ref.tobytes(), explainer)
        phi = np.asarray(explainer.shap_values(X, check_additivity=False), dtype=float)
        phi = phi.reshape(len(X), -1)
        base = float(self.margin(ref)[0])
        # shap accumulates in single precision (residuals up to ~1e-7 log-odds seen): the residual
        # is shared out in proportion to |phi| so that rows add up to LightGBM's own margin.
        resid = self.margin(X) - base - phi.sum(axis=1)
        w = np.abs(phi)
        tot = w.sum(axis=1, keepdims=True)
        phi += np.where(tot > 0, w / np.where(tot > 0, tot, 1.0), 0.0) * resid[:, None]
        return phi, base

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
            "additive": self.additive,
            "uncertainty": self.uncertainty,
            "weekly": self.weekly,
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
        if meta["kind"] == "lightgbm" or "booster.txt" in json.loads((d / CHECKSUMS).read_text()):
            # also a recalibrated LightGBM model (kind "updated", models.building.update)
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
            additive=_additive(meta.get("additive")),
            booster=booster,
            reference=meta["reference"],
            uncertainty=_uncertainty(meta.get("uncertainty")),
            weekly=_weekly(meta.get("weekly")),
        )


def interval_of_draws(P: np.ndarray, risk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one rule of every stated interval: the 2.5th and 97.5th percentiles
    (``UNCERTAINTY_LEVEL``) of each row's risks under the B draws (P, n x B), widened to contain
    the row's own risk where a percentile falls on the other side of it (a shrunk model's risk
    can sit at the edge of its refits). Used by ``ScoringModel.interval`` (the admission risk) and
    ``models.scoring.weekly`` (the updated risks)."""
    tail = (1.0 - UNCERTAINTY_LEVEL) / 2.0
    lo, hi = np.quantile(P, [tail, 1.0 - tail], axis=1)
    return np.minimum(lo, risk), np.maximum(hi, risk)


def _additive(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    if not meta:
        return None
    return {
        "median": np.asarray(meta["median"], dtype=float),
        "coef": np.asarray(meta["coef"], dtype=float),
        "intercept": float(meta["intercept"]),
        "spline_cols": [int(j) for j in meta["spline_cols"]],
        "knots": [np.asarray(k, dtype=float) for k in meta["knots"]],
        "values": [np.asarray(v, dtype=float) for v in meta["values"]],
    }


def refit_margins(basis: np.ndarray, unc: dict[str, Any]) -> np.ndarray:
    """Every row's raw log-odds under every refit (n x B). ``einsum`` without BLAS: each row's
    figures are summed the same way whatever else is in the batch, so a table scored in chunks of
    37 rows writes the same bytes as in one chunk (a BLAS matrix product changed the last digit
    with the batch's shape)."""
    return np.einsum("ij,bj->ib", basis, unc["W"], optimize=False) + unc["c"]


def _uncertainty(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    if not meta:
        return None
    return {
        **meta,
        "W": np.asarray(meta["W"], dtype=float),
        "c": np.asarray(meta["c"], dtype=float),
    }


def _weekly(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    return spec_from_json(meta)


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
