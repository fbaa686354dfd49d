"""Worlds: structural variants of the SYNTHETIC population, each a small set of changes to the
effect table (simulator/effects.py), with its source or marked as an assumption.

Why: the models were designed on one data-generating structure (the default world). A model that
only ever meets that structure can look good for the wrong reasons, so the tests and the learning
curves (bench/learning_curve.py) also run on populations a real service might have and the default
generator lacks: interactions, thresholds (hinges), a non-linear age effect, stronger or weaker
counsellor clustering, larger or smaller effects, and sparser records (issue 10, item 5).

What a world may change. Alliance effects, variance components, retention, WAI-S and missingness
entries, and it may add ``structure.*`` terms that the generator's linear predictor applies (see
`STRUCTURE`). It may not change the latent trait distributions or their correlations
("traits.*", "trait_correlations.*", "trait_shifts.*", "population.*", "counsellors.*" other than
the unknown-counsellor share): those define the population the questionnaires measure, and keeping
them fixed means one seed gives the same clients, services and counsellors in every world, so two
worlds differ only by what the world says (the tests rely on that).

Every change keeps the catalog's expected directions (features/catalog.py) for every client or
nearly every client, so monotone constraints a model takes from the catalog stay right: the hinge
world flattens effects on one side of a level, the interaction world's buffering term reverses the
distress effect only for clients more than 2 SD above average support (about 2%). The exception is
on purpose: the wrong-prior worlds (``prior_absent``, ``prior_halved``, ``prior_reversed``, flagged
``wrong_prior``) make the effect of the main modifiable predictors that a published prior would
state (treatment readiness, social support, adaptive coping, secure attachment) absent, half as
large, or reversed, so a model that starts from published effects (issue 17) can be seen to let
the data overrule them; ``prior_reversed`` breaks the catalog's directions for those four.

Two more things live here so that there is one definition of a world:
- cohort designs (`DESIGNS`): how many services and counsellors a cohort has, e.g.
  ``few_counsellors`` (4 services of 5-9 counsellors). A design is not a world: it changes the
  population drawn (so one seed no longer gives the same clients), and is passed to
  ``simulator.generator.generate`` as ``n_services`` and ``counsellors_per_service``
  (`cohort_spec` reads a benchmark's ``design+world`` name);
- label-level versions of some worlds (`World.label_level`, `label_level_probability`): the same
  idea applied to the default world's true log-odds of a record, for in-process comparisons that
  draw labels from a probability instead of generating a cohort per world
  (experiments/candidate_worlds.py). Their amounts are their own (a log-odds scale, chosen so each
  structure moves risks by about as much as one of the stronger drivers), not the generator's.

Missingness stays "at random given recorded fields" in every world (the ground truth conditions on
the record and would be wrong under informative missingness); a missing-not-at-random world is not
built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from simulator import effects as fx
from simulator.effects import EFFECTS, Effect

# Structural terms a world may add. Each is applied in simulator/generator.py::_linear_predictors,
# on the client-rated alliance (latent WAI-S item-mean points), with z = (score - mean) / SD.
STRUCTURE: dict[str, str] = {
    "structure.readiness_x_legal_pressure": "coef * legal_pressure * z(mot_treatment_readiness)",
    "structure.support_x_distress": "coef * z(social_support) * z(psych_distress)",
    "structure.distress_hinge": "slope * max(z(psych_distress) - at_z, 0)",
    "structure.support_floor": "slope * min(z(social_support) - at_z, 0)",
    "structure.age_quadratic": "per_decade2 * ((age - centre) / 10)^2",
}

_FIXED_PREFIXES = ("traits.", "trait_correlations.", "trait_shifts.", "population.")
_FIXED_KEYS = (
    "counsellors.service_size_dirichlet",
    "counsellors.caseload_gamma_shape",
    "counsellors.sex",
    "counsellors.ex_user",
    "counsellors.years_experience_gamma",
)

COHEN_WILLS = "Cohen & Wills 1985 stress-buffering hypothesis (form); magnitude assumed"
ASSUMED = "assumed (a structure a real service might have; not from the brief)"
CASENESS = (
    "assumed, after GHQ-12 'caseness' (brief: GHQ scoring >= 4): distress that matters only "
    "above a level; hinge at z = +0.5 (GHQ-12 Likert 22.5), slope assumed"
)
JOHNS = "Johns et al. 2019: therapist share of outcome variance 0.2%-29% (brief)"


@dataclass(frozen=True)
class World:
    name: str
    summary: str
    changes: dict[str, Effect] = field(default_factory=dict)
    # Adds structure a main-effects linear model cannot represent. The default world's own kink in
    # readiness costs such a model almost nothing (AUROC 0.7638 vs the oracle's 0.7644 at
    # n = 20,000, experiments/linear_gap.py), so it counts as linear; the learning-curve goal "beats the
    # baseline at n >= 4,000" applies to the worlds flagged here.
    nonlinear: bool = False
    # The effects a published prior would state are wrong here (absent, halved or reversed):
    # bench/learning_curve.py holds such worlds to "never more than 0.005 AUROC below the baseline".
    wrong_prior: bool = False
    # The same idea on the default world's true log-odds (records, log-odds) -> log-odds; see the
    # module docstring. None: no label-level version.
    label_level: Callable[[pd.DataFrame, np.ndarray], np.ndarray] | None = field(
        default=None, compare=False, repr=False
    )

    def effects(self) -> dict[str, Effect]:
        """The effect table of this world (the default world: simulator/effects.py unchanged)."""
        if not self.changes:
            return EFFECTS
        return {**EFFECTS, **self.changes}

    def describe(self) -> dict[str, Any]:
        """What is recorded with every cohort of this world (ground_truth.json, README.md)."""
        return {
            "name": self.name,
            "summary": self.summary,
            "nonlinear": self.nonlinear,
            "wrong_prior": self.wrong_prior,
            "changes": {
                k: {
                    "value": e.value,
                    "default": EFFECTS[k].value if k in EFFECTS else None,
                    "source": e.source,
                }
                for k, e in self.changes.items()
            },
        }


def _scaled(factor: float, source: str) -> dict[str, Effect]:
    """Every slope of the client-rated alliance (intercept excluded) times `factor`."""
    return {
        f"alliance_client.{k}": Effect(round(e.value * factor, 6), source)
        for k, e in fx.section("alliance_client").items()
        if k != "intercept" and e.value != 0.0
    }


def _c(key: str, value: Any, source: str) -> dict[str, Effect]:
    return {key: Effect(value, source)}


_INTERACTIONS = {
    # Under legal pressure each SD of readiness adds 0.25 points more: a coerced client who is
    # not ready engages poorly, one who is ready engages like anyone else.
    **_c(
        "structure.readiness_x_legal_pressure",
        0.25,
        ASSUMED + "; form follows Ilgen et al. 2006 (a motivation interaction)",
    ),
    # Support buffers distress: the distress slope is -0.16 + 0.08 * z(support).
    **_c("structure.support_x_distress", 0.08, COHEN_WILLS),
}
_HINGES = {
    # Distress matters only above z = +0.5 (SD of the contribution ~0.19, vs 0.16 linear).
    **_c("alliance_client.psych_distress", 0.0, CASENESS + " (linear term moved into the hinge)"),
    **_c("structure.distress_hinge", {"at_z": 0.5, "slope": -0.45}, CASENESS),
    # Support matters only when it is lacking: flat above z = -0.5 (TCU 29.5).
    **_c(
        "alliance_client.social_support", 0.0, ASSUMED + " (linear term moved into the floor term)"
    ),
    **_c(
        "structure.support_floor",
        {"at_z": -0.5, "slope": 0.45},
        ASSUMED + ": support matters only when it is lacking (below TCU 29.5)",
    ),
}
_AGE = {
    # An inverted U: clients near 40 engage best, the youngest and oldest less well (18 or 62:
    # -0.48 points). The review in the brief finds no demographic effect; this world departs
    # from it on purpose, to see whether a model finds a shape the catalog does not expect.
    **_c(
        "structure.age_quadratic",
        {"centre": 40.0, "per_decade2": -0.10},
        ASSUMED + "; departs from Meier, Barrowclough & Donmall 2005 (no demographic effect)",
    ),
}

# The main modifiable predictors a published prior states (issue 17): their client-rated alliance
# terms. Readiness also acts through its steeper slope below average and the ex-user counsellor x
# low-readiness term (Ilgen); both are scaled with it, so its whole effect is absent, halved or
# reversed. The counsellor-rated alliance and retention keep their defaults (they decide who is
# labelled, not the client-rated label).
PRIOR_PREDICTORS = (
    "mot_treatment_readiness",
    "social_support",
    "coping_adaptive",
    "attach_secure",
)
_PRIOR_KEYS = (
    *(f"alliance_client.{k}" for k in PRIOR_PREDICTORS),
    "alliance_client.readiness_low_extra_slope",
    "alliance_client.ex_user_x_low_readiness",
)
WRONG_PRIOR = (
    "assumed: a published effect that does not hold in this service (issue 17, a prior that "
    "must be down-weighted by the data)"
)


def _prior_wrong(factor: float, how: str) -> dict[str, Effect]:
    return {
        k: Effect(round(EFFECTS[k].value * factor, 6), f"{WRONG_PRIOR}; {how} (default x {factor})")
        for k in _PRIOR_KEYS
    }


# ---- label-level versions (log-odds of a low alliance; see the module docstring) ----------------
def _num(records: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(records[name], errors="coerce").to_numpy(dtype=float)


def _ll_hinges(r: pd.DataFrame, z: np.ndarray) -> np.ndarray:
    # distress matters only above a level: +0.15 log-odds per GHQ-12 point above 18
    return z + np.nan_to_num(0.15 * np.maximum(0.0, _num(r, "psych_distress") - 18.0))


def _ll_interactions(r: pd.DataFrame, z: np.ndarray) -> np.ndarray:
    # under legal pressure each TCU point of readiness below 30 adds 0.06 log-odds (above: less)
    legal = r["legal_pressure"].astype(str).str.lower().isin(["true", "1", "1.0"]).to_numpy()
    return z + np.nan_to_num(-0.06 * (_num(r, "mot_treatment_readiness") - 30.0)) * legal


def _ll_age_u(r: pd.DataFrame, z: np.ndarray) -> np.ndarray:
    # a U in age: +0.7 x ((age - 38) / 12)^2, centred
    u = 0.7 * ((_num(r, "age") - 38.0) / 12.0) ** 2
    return z + np.nan_to_num(u - np.nanmean(u))


def _ll_scaled(k: float) -> Callable[[pd.DataFrame, np.ndarray], np.ndarray]:
    # every effect k times as large: log-odds moved away from (or towards) their mean
    return lambda r, z: z.mean() + k * (z - z.mean())


WORLDS: dict[str, World] = {
    w.name: w
    for w in (
        World(
            "default",
            "the generator as designed: linear drivers on the latent WAI-S scale, a steeper "
            "readiness slope below average (Ilgen), ex-user counsellor x low readiness, "
            "counsellor ICC ~0.07",
            label_level=lambda r, z: z,
        ),
        World(
            "interactions",
            "default plus readiness x legal pressure (0.25 per SD under pressure) and social "
            "support buffering distress (0.08 per SD x SD)",
            _INTERACTIONS,
            nonlinear=True,
            label_level=_ll_interactions,
        ),
        World(
            "hinges",
            "distress matters only above GHQ-12 22.5 (z +0.5) and social support only below TCU "
            "29.5 (z -0.5); both flat on the other side",
            _HINGES,
            nonlinear=True,
            label_level=_ll_hinges,
        ),
        World(
            "age_u",
            "default plus an inverted-U age effect peaking at 40 (-0.10 per decade squared)",
            _AGE,
            nonlinear=True,
            label_level=_ll_age_u,
        ),
        World(
            "nonlinear",
            "interactions, hinges and the inverted-U age effect together",
            {**_INTERACTIONS, **_HINGES, **_AGE},
            nonlinear=True,
        ),
        World(
            "clustered",
            "strong counsellor clustering: counsellor SD 0.80 (ICC of client-rated means "
            "~0.18, default ~0.05-0.07), service SD 0.25",
            {
                **_c("variance.counsellor_sd_client", 0.80, JOHNS + ": near the upper end"),
                **_c("variance.counsellor_sd_counsellor", 0.70, JOHNS + ": near the upper end"),
                **_c("variance.service_sd_client", 0.25, JOHNS + "; service effect assumed"),
                **_c("variance.service_sd_counsellor", 0.20, JOHNS + "; service effect assumed"),
            },
        ),
        World(
            "unclustered",
            "almost no counsellor clustering: counsellor SD 0.07 (ICC of client-rated means "
            "~0.01), service SD 0.03",
            {
                **_c("variance.counsellor_sd_client", 0.07, JOHNS + ": near the lower end"),
                **_c("variance.counsellor_sd_counsellor", 0.07, JOHNS + ": near the lower end"),
                **_c("variance.service_sd_client", 0.03, JOHNS + "; service effect assumed"),
                **_c("variance.service_sd_counsellor", 0.03, JOHNS + "; service effect assumed"),
            },
        ),
        World(
            "strong_effects",
            "every client-rated alliance slope 1.6 times the default",
            _scaled(1.6, ASSUMED + ": the brief gives directions only; 1.6 x the default"),
            label_level=_ll_scaled(1.5),
        ),
        World(
            "weak_effects",
            "every client-rated alliance slope half the default",
            _scaled(0.5, ASSUMED + ": the brief gives directions only; 0.5 x the default"),
            label_level=_ll_scaled(0.6),
        ),
        World(
            "prior_absent",
            "treatment readiness, social support, adaptive coping and secure attachment have no "
            "effect on the client-rated alliance (a published prior would be wrong)",
            _prior_wrong(0.0, "effect absent"),
            wrong_prior=True,
        ),
        World(
            "prior_halved",
            "treatment readiness, social support, adaptive coping and secure attachment act half "
            "as strongly as the default (a published prior would overstate them)",
            _prior_wrong(0.5, "effect halved"),
            wrong_prior=True,
        ),
        World(
            "prior_reversed",
            "treatment readiness, social support, adaptive coping and secure attachment act in the "
            "opposite direction (a published prior, and the catalog's directions, would be wrong)",
            _prior_wrong(-1.0, "effect reversed"),
            wrong_prior=True,
        ),
        World(
            "sparse_records",
            "poorer record keeping (all missing at random given recorded fields): forms missing "
            "15% (x2.5 after criminal-justice referral), optional fields blank 3x as often, "
            "counsellor unknown 40%, items instead of scores 35%, weekly client forms not "
            "returned 20%",
            {
                **_c("missing.p_form_missing", 0.15, ASSUMED + " (default 0.04)"),
                **_c("missing.form_missing_criminal_justice_factor", 2.5, ASSUMED),
                **_c(
                    "missing.fields",
                    {k: round(3 * p, 4) for k, p in fx.value("missing.fields").items()},
                    ASSUMED + " (3 x the default blanks)",
                ),
                **_c("counsellors.p_unknown_at_admission", 0.40, ASSUMED + " (default 0.15)"),
                **_c("missing.p_item_level_client", 0.35, ASSUMED + " (default 0.15)"),
                **_c("wai.p_rating_missing_client", 0.20, ASSUMED + " (default 0.08)"),
            },
        ),
    )
}
DEFAULT = "default"


def _check(world: World) -> None:
    for key in world.changes:
        if key.startswith("structure."):
            if key not in STRUCTURE:
                raise ValueError(f"world {world.name}: unknown structural term {key}")
        elif key not in EFFECTS:
            raise ValueError(f"world {world.name}: {key} is not in simulator/effects.py")
        if key.startswith(_FIXED_PREFIXES) or key in _FIXED_KEYS:
            raise ValueError(f"world {world.name}: {key} defines the population and is fixed")


for _w in WORLDS.values():
    _check(_w)


def get(name: str) -> World:
    """The world called `name`; a clear error naming the known worlds otherwise."""
    try:
        return WORLDS[name]
    except KeyError:
        raise ValueError(f"unknown world {name!r}; known worlds: {', '.join(WORLDS)}") from None


def listing() -> str:
    """One line per world (``python -m pipelines.simulate --list-worlds``)."""
    width = max(len(n) for n in WORLDS)
    return "\n".join(
        f"{w.name:<{width}}  {'non-linear' if w.nonlinear else 'linear    '}  {w.summary}"
        for w in WORLDS.values()
    )


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def label_level_probability(world: str, records: pd.DataFrame, p_base: np.ndarray) -> np.ndarray:
    """The label-level version of `world`: the default world's true probability of a low alliance
    for each record (``p_low_alliance_client_no_ids``, `p_base`) with its log-odds transformed by
    the world's structure. A value missing on the record adds nothing."""
    w = get(world)
    if w.label_level is None:
        have = ", ".join(n for n, x in WORLDS.items() if x.label_level is not None)
        raise ValueError(f"world {world!r} has no label-level version; worlds that do: {have}")
    z = w.label_level(records.reset_index(drop=True), _logit(np.asarray(p_base, dtype=float)))
    return 1.0 / (1.0 + np.exp(-z))


# ---- cohort designs -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Design:
    """How many services and counsellors a cohort has (``generate``'s ``n_services`` and
    ``counsellors_per_service``: one count for every service, or one per service)."""

    name: str
    summary: str
    n_services: int
    counsellors_per_service: int | tuple[int, ...]

    def generate_args(self) -> dict[str, Any]:
        return {
            "n_services": self.n_services,
            "counsellors_per_service": self.counsellors_per_service,
        }


DESIGNS: dict[str, Design] = {
    d.name: d
    for d in (
        Design("standard", "the generator's default: 6 services x 12 counsellors", 6, 12),
        Design(
            "few_counsellors",
            "a small provider: 4 services of 5, 6, 8 and 9 counsellors (issue 17: services with "
            "190-1,100 labelled clients)",
            4,
            (5, 6, 8, 9),
        ),
    )
}


def cohort_spec(name: str) -> tuple[World, Design]:
    """A benchmark's cohort name: a world (``hinges``), a design (``few_counsellors``, in the
    default world) or both joined by ``+`` (``few_counsellors+prior_reversed``)."""
    world, design = None, None
    for part in (p.strip() for p in name.split("+")):
        if part in DESIGNS and design is None:
            design = DESIGNS[part]
        elif part in WORLDS and world is None:
            world = WORLDS[part]
        else:
            raise ValueError(
                f"cohort {name!r}: {part!r} is not a world or design, or repeats one; worlds: "
                f"{', '.join(WORLDS)}; designs: {', '.join(DESIGNS)}"
            )
    return world or WORLDS[DEFAULT], design or DESIGNS["standard"]
