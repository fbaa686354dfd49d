"""A prior of effects per predictor from published evidence, for the ``anchored`` candidate.

``--prior literature`` (the default) reads ``models/priors/literature-v1.toml``: for each
predictor its published correlation r with the early alliance, whether the size is published or
only the direction (then a "modest" r of 0.10-0.15 is assumed), and the source. ``--prior none``
gives no prior (the anchored candidate is then a plain ridge); ``--prior FILE`` reads a TOML file
of the same shape (a service's own network estimates, or a deliberately wrong prior in tests).

Why correlations: published studies of the alliance report r (Diener & Monroe 2011: secure
attachment r = .17), never the coefficients of a risk model, and Debray et al. 2012 (BMC Med Res
Methodol 12:121) show how to carry such univariable evidence into a multivariable model. One
conversion turns r into the log-odds of a LOW alliance per SD of the predictor: for a latent
alliance that is bivariate normal with the predictor and cut at the label's threshold, the probit
slope per SD is r / sqrt(1 - r^2), and a logistic slope is about 1.7 times a probit one, so

    log-odds per SD = -1.7 r / sqrt(1 - r^2)       (r = .17 -> -0.29; r = .10 -> -0.17)

(negative: a better alliance is a lower risk of a low one). Univariable effects overstate
multivariable ones when predictors correlate, which is why the candidate scales the whole prior by
a weight t that nested grouped CV tunes (t = 0 is the plain ridge): a wrong prior loses weight.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features.build import COLUMNS

PRIORS_DIR = Path(__file__).resolve().parent.parent / "priors"
LITERATURE = PRIORS_DIR / "literature-v1.toml"
PROBIT_TO_LOGIT = 1.7
_COLUMN_INDEX = {c.name: j for j, c in enumerate(COLUMNS)}


class PriorError(ValueError):
    """A prior file that cannot be used, with the reason and the file."""


@dataclass(frozen=True)
class Prior:
    version: str
    r: dict[str, float]  # predictor -> correlation with the alliance
    sources: dict[str, str]
    sizes: dict[str, str]  # "published" or "assumed"
    path: str

    def log_odds_per_sd(self) -> dict[str, float]:
        return {k: r_to_log_odds_per_sd(v) for k, v in self.r.items()}

    def vector(self) -> np.ndarray:
        """One value per model column (``features.build.COLUMNS``), in log-odds of a low
        alliance per SD of the column; 0 where the prior says nothing."""
        out = np.zeros(len(COLUMNS))
        for name, b in self.log_odds_per_sd().items():
            out[_COLUMN_INDEX[name]] = b
        return out

    def anticipated_r2_cs(self, prevalence: float, n_draws: int = 200_000, seed: int = 0) -> float:
        """The Cox-Snell R^2 a model with exactly these effects would have at this prevalence,
        treating the predictors as independent standard normals (Riley et al. 2020 need an
        anticipated R^2; with correlated predictors the true figure is lower). Computed by
        simulation: the expected likelihood-ratio per client of the prior's linear predictor
        against the intercept-only model, R^2_CS = 1 - exp(-LR / n)."""
        b = np.array(list(self.log_odds_per_sd().values()))
        sd = float(np.sqrt(np.sum(b**2)))
        if sd == 0.0:
            return 0.0
        rng = np.random.default_rng(seed)
        z = rng.standard_normal(n_draws) * sd
        # intercept so that the mean risk is the prevalence
        lo, hi = -20.0, 20.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if np.mean(1 / (1 + np.exp(-(mid + z)))) < prevalence:
                lo = mid
            else:
                hi = mid
        p = 1 / (1 + np.exp(-((lo + hi) / 2 + z)))
        ll_model = np.mean(p * np.log(p) + (1 - p) * np.log(1 - p))
        ll_null = prevalence * np.log(prevalence) + (1 - prevalence) * np.log(1 - prevalence)
        return float(1 - np.exp(-2 * (ll_model - ll_null)))


def r_to_log_odds_per_sd(r: float) -> float:
    return float(-PROBIT_TO_LOGIT * r / np.sqrt(1.0 - r * r))


def load(spec: str | Path | None) -> Prior | None:
    """``"literature"`` -> the shipped prior; ``"none"`` or None -> no prior; else a TOML path."""
    if spec is None or str(spec) == "none":
        return None
    path = LITERATURE if str(spec) == "literature" else Path(spec)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise PriorError(
            f"prior file {path} not found (use --prior literature, none or a TOML file)"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise PriorError(f"prior file {path} is not valid TOML: {exc}") from exc
    effects = data.get("effects")
    if not isinstance(effects, dict) or not effects:
        raise PriorError(f"prior file {path}: needs an [effects.<predictor>] table per predictor")
    r, sources, sizes = {}, {}, {}
    for name, entry in effects.items():
        if name not in _COLUMN_INDEX or "=" in name:
            raise PriorError(
                f"prior file {path}: effects.{name} is not a numeric predictor of the model "
                "(use a contract field name such as mot_treatment_readiness)"
            )
        value = entry.get("r") if isinstance(entry, dict) else None
        if not isinstance(value, int | float) or not -0.95 <= value <= 0.95:
            raise PriorError(
                f"prior file {path}: effects.{name}.r must be a correlation between -0.95 and "
                f"0.95, got {value!r}"
            )
        if not entry.get("source"):
            raise PriorError(f"prior file {path}: effects.{name} needs a source")
        r[name] = float(value)
        sources[name] = str(entry["source"])
        sizes[name] = str(entry.get("size", "published"))
    return Prior(
        version=str(data.get("version", path.stem)),
        r=r,
        sources=sources,
        sizes=sizes,
        path=str(path),
    )
