"""What a dataset can support: the minimum sample size of Riley et al. (2020, BMJ 368:m441) for
developing a binary-outcome prediction model, and what this n supports.

The three criteria (the formulas of the ``pmsampsize`` packages):
1. expected uniform shrinkage S >= 0.9:  n = P / ((S - 1) ln(1 - R2_CS / S));
2. optimism in Nagelkerke's R^2 <= 0.05: S2 = R2_CS / (R2_CS + 0.05 max R2_CS), n as in 1 with S2,
   where max R2_CS = 1 - (phi^phi (1 - phi)^(1 - phi))^2;
3. the overall risk within +-0.05:       n = (1.96 / 0.05)^2 phi (1 - phi).
P is the number of candidate parameters, phi the prevalence, R2_CS the anticipated Cox-Snell R^2.

Beside them, what individuals' risks can be expected to look like: the mean absolute prediction
error (MAPE) of an unpenalised logistic model, from van Smeden et al.'s simulations (2019, Stat
Methods Med Res 28:2455; Riley et al. 2020's criterion for precise individual risks, which
``pmsampsize`` leaves out): ln(MAPE) = -0.508 + 0.259 ln(phi) + 0.504 ln(P) - 0.544 ln(n), phi
the rarer outcome's share; the n for a MAPE of 0.05 follows. It was fitted for P <= 30, so above
that it is an extrapolation (said with it). It is shown, not used to decide: a shrunken or
evidence-anchored model can do better than it, a model with a wrong prior worse. With this
product's 63 parameters at prevalence 0.21 it puts n = 190 at about 19 points and asks for about
2,150 clients for 5 points (by hand: exp((-0.508 + 0.259 ln 0.213 + 0.504 ln 63 + 2.996) / 0.544)).
The worked example of the paper (R2_CS 0.288, 24 parameters, prevalence 0.174) needs 623, 662 and
221: n = 662 (tests/code/test_sample_size.py computes it by hand).

Where the anticipated R2_CS comes from is said with it: the existing champion's cross-validated
log loss on its own data (R2_CS = 1 - exp(-2 (LL_null - LL_model)) per client), else the
literature prior's effects (``models.building.priors.Prior.anticipated_r2_cs``), else Riley's
conservative default of a Nagelkerke R^2 of 0.15.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

SHRINKAGE = 0.9
OPTIMISM = 0.05
MARGIN = 0.05
DEFAULT_NAGELKERKE = 0.15
MAPE_TARGET = 0.05
MAPE_FITTED_UP_TO = 30  # parameters: the range of van Smeden et al.'s simulations


def max_r2_cs(prevalence: float) -> float:
    phi = prevalence
    return 1.0 - math.exp(2.0 * (phi * math.log(phi) + (1 - phi) * math.log(1 - phi)))


def r2_cs_from_log_loss(model_log_loss: float, prevalence: float) -> float:
    """Cox-Snell R^2 of a model whose mean log loss is ``model_log_loss`` at this prevalence."""
    phi = prevalence
    null = -(phi * math.log(phi) + (1 - phi) * math.log(1 - phi))
    return max(0.0, 1.0 - math.exp(-2.0 * (null - model_log_loss)))


def _n_for_shrinkage(parameters: int, r2: float, s: float) -> float:
    return parameters / ((s - 1.0) * math.log(1.0 - r2 / s))


def expected_shrinkage(n: int, parameters: int, r2: float) -> float:
    """The S at which criterion 1's n equals this n (solved by bisection): the shrinkage a model
    with this many parameters can expect at this size (Riley et al. 2020, equation 2 inverted)."""
    lo, hi = r2 + 1e-9, 1.0 - 1e-12
    for _ in range(200):
        mid = (lo + hi) / 2
        if _n_for_shrinkage(parameters, r2, mid) > n:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def expected_mape(n: int, parameters: int, prevalence: float) -> float:
    """van Smeden et al. (2019)'s mean absolute prediction error at this n (see above)."""
    phi = min(prevalence, 1.0 - prevalence)
    return math.exp(
        -0.508 + 0.259 * math.log(phi) + 0.504 * math.log(parameters) - 0.544 * math.log(n)
    )


def n_for_mape(parameters: int, prevalence: float, mape: float = MAPE_TARGET) -> int:
    phi = min(prevalence, 1.0 - prevalence)
    ln_n = (-0.508 + 0.259 * math.log(phi) + 0.504 * math.log(parameters) - math.log(mape)) / 0.544
    return math.ceil(math.exp(ln_n))


@dataclass(frozen=True)
class SampleSize:
    n: int  # labelled clients in this dataset
    prevalence: float
    parameters: int
    r2_cs: float
    r2_source: str
    n_shrinkage: int
    n_optimism: int
    n_overall_risk: int
    minimum_n: int
    expected_shrinkage: float  # at this n, with this many parameters
    max_parameters: int  # the most parameters criterion 1 allows at this n
    expected_mape: float  # van Smeden et al. 2019, unpenalised, at this n
    n_mape: int  # the n for a MAPE of MAPE_TARGET

    @property
    def mape_extrapolated(self) -> bool:
        return self.parameters > MAPE_FITTED_UP_TO

    @property
    def enough(self) -> bool:
        return self.n >= self.minimum_n

    def summary(self) -> str:
        verdict = (
            "enough for a new model"
            if self.enough
            else "below it: a new full model is not the default (updating an existing model or "
            "shrinking towards published evidence is)"
        )
        return (
            f"sample size (Riley et al. 2020): a new model with {self.parameters} parameters at "
            f"prevalence {self.prevalence:.3f} and anticipated Cox-Snell R2 {self.r2_cs:.3f} "
            f"({self.r2_source}) needs n >= {self.minimum_n:,} (shrinkage {self.n_shrinkage:,}, "
            f"optimism {self.n_optimism:,}, overall risk {self.n_overall_risk:,}); this dataset has "
            f"{self.n:,}: {verdict}. At this n the expected shrinkage is "
            f"{self.expected_shrinkage:.2f}, and at most {self.max_parameters} parameters keep it "
            f">= {SHRINKAGE}. Individuals' risks from an unpenalised model of this size would be "
            f"off by about {100 * self.expected_mape:.0f} points on average (van Smeden et al. "
            f"2019{', extrapolated above 30 parameters' if self.mape_extrapolated else ''}); "
            f"{100 * MAPE_TARGET:.0f} points needs n >= {self.n_mape:,}."
        )

    def to_dict(self) -> dict:
        return asdict(self) | {"enough": self.enough, "mape_extrapolated": self.mape_extrapolated}


def criteria(
    n: int, parameters: int, prevalence: float, r2_cs: float, r2_source: str
) -> SampleSize:
    if not 0.0 < prevalence < 1.0:
        raise ValueError(f"prevalence must be strictly between 0 and 1, got {prevalence}")
    top = max_r2_cs(prevalence)
    if not 0.0 < r2_cs < min(SHRINKAGE, top):
        raise ValueError(
            f"anticipated Cox-Snell R2 {r2_cs:.4f} must be above 0 and below {min(SHRINKAGE, top):.4f}"
        )
    n1 = math.ceil(_n_for_shrinkage(parameters, r2_cs, SHRINKAGE))
    s2 = r2_cs / (r2_cs + OPTIMISM * top)
    n2 = math.ceil(_n_for_shrinkage(parameters, r2_cs, s2))
    n3 = math.ceil((1.96 / MARGIN) ** 2 * prevalence * (1 - prevalence))
    max_p = int(math.floor(n * (SHRINKAGE - 1.0) * math.log(1.0 - r2_cs / SHRINKAGE)))
    return SampleSize(
        n=int(n),
        prevalence=float(prevalence),
        parameters=int(parameters),
        r2_cs=float(r2_cs),
        r2_source=r2_source,
        n_shrinkage=n1,
        n_optimism=n2,
        n_overall_risk=n3,
        minimum_n=max(n1, n2, n3),
        expected_shrinkage=expected_shrinkage(n, parameters, r2_cs),
        max_parameters=max(0, max_p),
        expected_mape=expected_mape(n, parameters, prevalence),
        n_mape=n_for_mape(parameters, prevalence),
    )


def default_r2_cs(prevalence: float) -> float:
    """Riley et al.'s conservative fallback: Nagelkerke R^2 0.15, i.e. 15% of the maximum."""
    return DEFAULT_NAGELKERKE * max_r2_cs(prevalence)
