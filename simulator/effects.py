"""Every number the synthetic cohort generator uses, in one readable table, each with its source.

Why one table: the generator (simulator/generator.py) is only as credible as its assumptions, and a
reviewer should be able to read all of them, with where each comes from, without reading code.
Sources refer to the domain brief (shared/docs/domain.md). The brief gives *directions* for most
effects and very few magnitudes; where a value is marked "magnitude assumed" the sign is the
literature's and the size was chosen so that effects stay modest (a well-specified model reaches an
AUROC of roughly 0.70-0.80 for the default label, whose prevalence is roughly 20-30%).

Units. Alliance effects are on the latent WAI-S *item-mean* scale (1-7 points) per standard
deviation of the predictor (per SD of its population distribution below), unless the key says
otherwise. Retention effects are log-odds.

Keys are field names from features/catalog.py wherever the entry belongs to one field, so the
generator can check every key against the catalog.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Effect:
    value: Any
    source: str


# Source strings, reused so that the table stays readable.
MEIER05 = "Meier et al. 2005 (direction); magnitude assumed"
DIENER = "Diener & Monroe 2011 r=.17 (direction, order of magnitude); larger for client-rated"
JOHNS = "Johns et al. 2019 therapist ICC 5% (0.2-29%); Crits-Christoph et al. 2009; brief: ICC 0.05-0.10"
ILGEN = "Ilgen et al. 2006 motivation interaction (form and magnitude assumed)"
MEIER06 = "Meier et al. 2006 dropout (direction); magnitude assumed"
DONMALL = "Meier & Donmall client-counsellor r 0.07-0.42 (target r ~0.3)"
CEILING = "WAI ceiling: over half the answers at 7 in one sample (domain brief)"
JOE = "Joe, Simpson & Broome 1998: readiness the strongest intake predictor; magnitude assumed"
REVIEW = "Meier, Barrowclough & Donmall 2005 review: demographics do not predict the alliance"
NDTMS = "NDTMS 2018-19: opiates 52% of adults in treatment"
MBEST = "Meier & Best 2006: completion (stay > 90 days) mean 48%, range 3-92%"
BRIEF_DISTRESS = "catalog/brief: distress a modifiable driver, more distress -> weaker alliance; magnitude assumed"
ASSUMED = "assumed (plausible UK treatment population; not from the brief)"
NORMS = "assumed scale norms for treatment samples (not from the brief)"
DESIGN = "design choice of the generator (not from the literature)"

_E: dict[str, Effect] = {}


def _add(section: str, entries: dict[str, tuple[Any, str]]) -> None:
    for key, (value, source) in entries.items():
        _E[f"{section}.{key}"] = Effect(value, source)


# ---------------------------------------------------------------- population (intake fields)
_add(
    "population",
    {
        # Code weights; the generator checks that every catalog code has a weight.
        "primary_substance": (
            {
                "opiates": 0.50,
                "crack": 0.08,
                "cocaine": 0.08,
                "alcohol": 0.18,
                "cannabis": 0.08,
                "amphetamines": 0.03,
                "benzodiazepines": 0.02,
                "other": 0.03,
            },
            NDTMS,
        ),
        "sex": ({"male": 0.68, "female": 0.31, "other": 0.005, "not_stated": 0.005}, ASSUMED),
        "ethnicity": (
            {
                "white": 0.82,
                "mixed": 0.03,
                "asian": 0.03,
                "black": 0.04,
                "other": 0.02,
                "not_stated": 0.06,
            },
            ASSUMED,
        ),
        "education": (
            {"none": 0.35, "gcse": 0.35, "a_level": 0.15, "degree": 0.07, "not_stated": 0.08},
            ASSUMED,
        ),
        "employment": (
            {"employed": 0.18, "unemployed": 0.45, "unable_to_work": 0.27, "other": 0.10},
            ASSUMED,
        ),
        "housing": ({"no_problem": 0.70, "housing_problem": 0.18, "urgent_problem": 0.12}, ASSUMED),
        "referral_source": (
            {
                "self": 0.55,
                "criminal_justice": 0.15,
                "health": 0.18,
                "social_care": 0.05,
                "other": 0.07,
            },
            ASSUMED,
        ),
        # Age by primary substance: (mean, sd), clipped to 18-80.
        "age_by_substance": (
            {
                "opiates": (40, 8),
                "crack": (36, 8),
                "cocaine": (31, 8),
                "alcohol": (46, 10),
                "cannabis": (27, 8),
                "amphetamines": (34, 9),
                "benzodiazepines": (38, 10),
                "other": (33, 10),
            },
            ASSUMED,
        ),
        "age_clip": ((18, 80), ASSUMED),
        # Age at first use of the primary substance: (mean, sd), clipped to 10..age.
        "age_first_use_by_substance": (
            {
                "opiates": (21, 5),
                "crack": (23, 6),
                "cocaine": (19, 4),
                "alcohol": (15, 3),
                "cannabis": (14, 3),
                "amphetamines": (18, 4),
                "benzodiazepines": (22, 7),
                "other": (18, 5),
            },
            ASSUMED,
        ),
        # Injecting status weights (never, previously, currently) for opiates, crack, and the rest.
        "injecting_opiates": ({"never": 0.45, "previously": 0.30, "currently": 0.25}, ASSUMED),
        "injecting_crack": ({"never": 0.75, "previously": 0.15, "currently": 0.10}, ASSUMED),
        "injecting_other": ({"never": 0.92, "previously": 0.07, "currently": 0.01}, ASSUMED),
        # Days of use in the last 28: P(any use) and mean days among users, by primary substance.
        "crack_any": ({"crack": 0.95, "opiates": 0.45, "cocaine": 0.15, "default": 0.04}, ASSUMED),
        "crack_days_mean": ({"crack": 15.0, "opiates": 9.0, "default": 4.0}, ASSUMED),
        "opiate_any": (
            {"opiates": 0.92, "crack": 0.35, "benzodiazepines": 0.15, "default": 0.03},
            ASSUMED,
        ),
        "opiate_days_mean": ({"opiates": 18.0, "default": 5.0}, ASSUMED),
        # Previous treatments: negative binomial, mean exp(a + b*(age-38)/10), dispersion k.
        "previous_treatments_log_mean": (0.6, ASSUMED),
        "previous_treatments_age_slope": (0.25, ASSUMED),
        "previous_treatments_opiates_shift": (0.4, ASSUMED),
        "previous_treatments_dispersion": (1.5, ASSUMED),
        "legal_pressure_if_criminal_justice": (0.75, ASSUMED),
        "legal_pressure_otherwise": (0.07, ASSUMED),
        "admission_dates": (
            ("2018-01-01", "2025-12-31"),
            "issue: admission dates 2018-2025, never in the future",
        ),
        "data_cut": ("2026-01-31", DESIGN + ": episodes still open on this date are 'ongoing'"),
    },
)

# ---------------------------------------------------------------- services and counsellors
_add(
    "counsellors",
    {
        "service_size_dirichlet": (5.0, DESIGN + ": services of unequal size"),
        "caseload_gamma_shape": (4.0, DESIGN + ": counsellors' caseloads vary"),
        "sex": ({"male": 0.40, "female": 0.58, "other": 0.01, "not_stated": 0.01}, ASSUMED),
        "ex_user": (0.30, ASSUMED + "; UK services employ many workers in recovery"),
        "years_experience_gamma": (
            (2.0, 4.0),
            ASSUMED + ": gamma(shape, scale), mean 8 years, clipped 0-40",
        ),
        "p_unknown_at_admission": (0.15, "issue: counsellor_id unknown at admission for ~15%"),
    },
)

# ---------------------------------------------------------------- latent client traits -> scale scores
# (mean, sd) of each score in its own units; the SD is that of the true score before item noise.
_add(
    "traits",
    {
        "mot_problem_recognition": ((38.0, 8.0), NORMS),
        "mot_desire_for_help": ((39.0, 7.0), NORMS),
        "mot_treatment_readiness": ((38.0, 7.0), NORMS),
        "mot_external_pressure": ((26.0, 8.0), NORMS),
        "self_efficacy": ((36.0, 6.0), NORMS),
        "social_support": ((33.0, 7.0), NORMS),
        "psych_distress": ((19.0, 7.0), NORMS + "; GHQ-12 Likert in treatment samples"),
        "coping_adaptive": ((2.6, 0.5), NORMS),
        "coping_avoidant": ((2.3, 0.5), NORMS),
        "attach_secure": ((3.6, 1.7), NORMS),
        "attach_fearful": ((4.0, 1.8), NORMS),
        "attach_preoccupied": ((3.2, 1.6), NORMS),
        "attach_dismissing": ((4.0, 1.7), NORMS),
        # Item response noise (SD, item units) around the client's true item level; item offsets
        # spread evenly over +-item_offset_range so some items are "easier" than others.
        "item_noise_sd": (0.6, DESIGN),
        "item_offset_range": (0.25, DESIGN),
        "rq_noise_sd": (0.0, DESIGN + ": RQ prototypes are single ratings, rounding only"),
    },
)

# Correlations of the latent traits (pairs not listed: 0). Signs follow the constructs' usual
# relations (distress with avoidant coping and fearful attachment, readiness with desire for help...).
_add(
    "trait_correlations",
    {
        "pairs": (
            {
                ("mot_problem_recognition", "mot_desire_for_help"): 0.60,
                ("mot_problem_recognition", "mot_treatment_readiness"): 0.45,
                ("mot_desire_for_help", "mot_treatment_readiness"): 0.55,
                ("mot_problem_recognition", "mot_external_pressure"): 0.15,
                ("mot_desire_for_help", "mot_external_pressure"): 0.10,
                ("mot_treatment_readiness", "mot_external_pressure"): -0.05,
                ("self_efficacy", "mot_treatment_readiness"): 0.30,
                ("self_efficacy", "mot_desire_for_help"): 0.15,
                ("self_efficacy", "social_support"): 0.30,
                ("self_efficacy", "psych_distress"): -0.40,
                ("self_efficacy", "coping_adaptive"): 0.40,
                ("self_efficacy", "coping_avoidant"): -0.25,
                ("social_support", "psych_distress"): -0.30,
                ("social_support", "coping_adaptive"): 0.30,
                ("social_support", "coping_avoidant"): -0.15,
                ("social_support", "attach_secure"): 0.30,
                ("social_support", "attach_fearful"): -0.25,
                ("psych_distress", "mot_problem_recognition"): 0.25,
                ("psych_distress", "mot_desire_for_help"): 0.15,
                ("psych_distress", "coping_adaptive"): -0.15,
                ("psych_distress", "coping_avoidant"): 0.45,
                ("psych_distress", "attach_fearful"): 0.30,
                ("psych_distress", "attach_preoccupied"): 0.25,
                ("psych_distress", "attach_secure"): -0.25,
                ("coping_adaptive", "coping_avoidant"): 0.10,
                ("coping_adaptive", "mot_treatment_readiness"): 0.20,
                ("coping_adaptive", "attach_secure"): 0.15,
                ("coping_avoidant", "attach_fearful"): 0.20,
                ("coping_avoidant", "attach_preoccupied"): 0.15,
                ("attach_secure", "attach_fearful"): -0.40,
                ("attach_secure", "attach_preoccupied"): -0.15,
                ("attach_secure", "attach_dismissing"): -0.10,
                ("attach_fearful", "attach_preoccupied"): 0.30,
                ("attach_fearful", "attach_dismissing"): 0.20,
                ("attach_preoccupied", "attach_dismissing"): -0.15,
            },
            ASSUMED,
        ),
    },
)

# Mean shifts of latent traits (in trait SDs) by observed intake fields that are always recorded.
_add(
    "trait_shifts",
    {
        "criminal_justice": (
            {
                "mot_external_pressure": 0.9,
                "mot_treatment_readiness": -0.3,
                "mot_desire_for_help": -0.2,
            },
            ASSUMED + " (coerced referral: more pressure, less readiness)",
        ),
        "legal_pressure": (
            {"mot_external_pressure": 0.5, "mot_treatment_readiness": -0.1},
            ASSUMED,
        ),
        "female": (
            {"psych_distress": 0.25, "social_support": 0.15, "attach_preoccupied": 0.10},
            ASSUMED,
        ),
        "crack": ({"psych_distress": 0.15, "coping_avoidant": 0.15}, ASSUMED),
        "per_decade_of_age": (
            {"mot_treatment_readiness": 0.08, "mot_desire_for_help": 0.05, "social_support": -0.05},
            ASSUMED,
        ),
    },
)

# ---------------------------------------------------------------- client-rated alliance
# Linear predictor on the latent WAI-S item-mean scale, per SD of the field (traits: the SDs above;
# crack_days_28 per 10 days; previous_treatments per unit of log1p; age per 10 years; counsellor
# years_experience per 5 years; booleans and codes per indicator).
_add(
    "alliance_client",
    {
        "intercept": (
            6.6,
            CEILING
            + "; tuned with the residuals: ~35% of answers at 7 and ~25% of clients below 5.0",
        ),
        "mot_treatment_readiness": (0.22, JOE),
        "mot_desire_for_help": (0.10, MEIER05),
        "mot_problem_recognition": (0.06, MEIER05),
        "mot_external_pressure": (0.0, "brief gives no direction (catalog: none)"),
        "self_efficacy": (0.12, MEIER05 + " (better coping)"),
        "coping_adaptive": (0.12, MEIER05 + " (better coping)"),
        "coping_avoidant": (-0.14, MEIER05 + " (avoidant coping worse)"),
        "social_support": (0.17, MEIER05),
        "psych_distress": (-0.16, BRIEF_DISTRESS),
        "attach_secure": (0.14, DIENER + "; " + MEIER05),
        "attach_fearful": (-0.08, MEIER05 + " (insecure attachment worse)"),
        "attach_dismissing": (-0.07, MEIER05 + " (insecure attachment worse)"),
        "attach_preoccupied": (0.0, "brief gives no direction (catalog: none)"),
        "crack_days_28": (-0.05, ASSUMED + " (crack use: poorer engagement)"),
        "previous_treatments": (
            0.04,
            "review: good previous treatment experience helps, modestly; magnitude assumed",
        ),
        "legal_pressure": (-0.08, ASSUMED + " (coerced attendance)"),
        "age": (0.02, REVIEW + ": near zero"),
        "counsellor_ex_user": (0.18, MEIER05 + " (clients rate ex-user counsellors higher)"),
        "counsellor_male": (0.10, MEIER05 + " (clients rate male counsellors higher)"),
        "counsellor_years_experience": (
            0.08,
            MEIER05 + " (clients rate experienced counsellors higher)",
        ),
        # Ilgen: the motivation effect is steeper below average readiness ("alliance matters most for
        # low-motivation clients"): extra slope on min(z_readiness, 0) ...
        "readiness_low_extra_slope": (0.14, ILGEN),
        # ... and an ex-user counsellor helps low-readiness clients most: extra ex-user effect per SD
        # *below* average readiness (term: ex_user * -z_readiness).
        "ex_user_x_low_readiness": (0.08, ILGEN),
    },
)

# ---------------------------------------------------------------- counsellor-rated alliance
_add(
    "alliance_counsellor",
    {
        "intercept": (5.9, ASSUMED + " (counsellors rate a little lower than clients)"),
        "mot_treatment_readiness": (0.18, JOE),
        "mot_desire_for_help": (0.08, MEIER05),
        "social_support": (0.06, MEIER05),
        "psych_distress": (-0.08, BRIEF_DISTRESS),
        "coping_avoidant": (-0.06, MEIER05),
        "attach_secure": (0.06, DIENER + " (smaller for counsellor-rated)"),
        "crack_days_28": (-0.06, ASSUMED),
        "counsellor_years_experience": (
            -0.14,
            MEIER05 + " (experienced counsellors rate their alliances lower)",
        ),
    },
)

# ---------------------------------------------------------------- variance components and the WAI form
_add(
    "variance",
    {
        # Client-rated alliance (latent item-mean units). Total client-level variance ~1.05.
        "counsellor_sd_client": (0.37, JOHNS + ": ICC ~0.07 of the client-level latent variance"),
        "service_sd_client": (0.13, JOHNS + ": a smaller service effect (~1.5%)"),
        "client_sd_client": (0.70, DESIGN + ": client residual, normal part"),
        # A minority of hard-to-engage clients gives the left tail the ceiling hides on the right.
        "hard_to_engage_p": (0.25, DESIGN + "; " + CEILING),
        "hard_to_engage_shift": (-2.0, DESIGN),
        # ... more likely for clients whose drivers already point to a weak alliance (log-odds per
        # latent point of the client linear predictor), so the tail is partly predictable.
        "hard_to_engage_lp_slope": (-0.8, DESIGN),
        "week_sd": (0.30, DESIGN + ": week-to-week fluctuation"),
        "week_trend_client": (0.06, DESIGN + ": alliance grows a little over weeks 1-3"),
        # Counsellor-rated alliance.
        "counsellor_sd_counsellor": (0.35, JOHNS + " (rater leniency: a larger counsellor share)"),
        "service_sd_counsellor": (0.10, JOHNS),
        "client_sd_counsellor": (0.65, DESIGN),
        "week_trend_counsellor": (0.04, DESIGN),
        # Correlation of the two raters' client-level residuals, and of a counsellor's two intercepts.
        "rater_residual_correlation": (0.30, DONMALL),
        "counsellor_intercepts_correlation": (0.20, DONMALL),
    },
)
_add(
    "wai",
    {
        "item_noise_sd": (0.5, CEILING + "; item answers round the weekly level and pile up at 7"),
        # Keyed-direction offsets; the two negatively worded items (4, 10) are answered less extremely.
        "item_offsets": (
            (0.10, 0.05, 0.0, -0.35, 0.10, -0.05, 0.05, 0.0, -0.05, -0.35, 0.10, 0.05),
            DESIGN,
        ),
        "p_item_missing": (
            0.015,
            "issue: single items missing; a rating with > 2 missing items is void",
        ),
        "p_rating_missing_client": (0.08, DESIGN + ": a weekly client form not returned"),
        "p_rating_missing_counsellor": (0.05, DESIGN),
    },
)

# ---------------------------------------------------------------- weekly dynamics of the ratings
# Used only when "weekly.dynamic" is true (the "realistic" and "volatile" presets of
# simulator/weekly.py). The default table keeps it false: the "steady" preset, the generator as it
# was (one client-level alliance per rater, "variance.week_sd" noise, a common trend), bytes
# unchanged. Units: latent WAI-S item-mean points per session (= per week here).
CRITS = (
    "Crits-Christoph et al. 2011 J Consult Clin Psychol 79:267: a single session's patient-level "
    "generalizability coefficient .77 ('marginally acceptable'), >= .80 needs 2 sessions, > .90 "
    "needs 4; so one week's rating has reliability ~.67-.80 as a measure of the client's level"
)
EUBANKS = "Eubanks, Muran & Safran 2018 Psychotherapy 55:508"
_add(
    "weekly",
    {
        "dynamic": (False, DESIGN + ": false = steady preset (the generator before issue 19)"),
        # Session-to-session noise of the latent weekly level, per rater. With the per-client
        # slope, ruptures and the item noise below it puts the week-to-week correlation of one
        # client's item means near .75 (tests/data/test_synthetic.py measures it).
        "session_sd_client": (0.65, CRITS + "; SD tuned to that reliability (assumed)"),
        "session_sd_counsellor": (0.30, CRITS + " (for patients); counsellor value assumed"),
        "session_rater_correlation": (
            0.15,
            DONMALL + "; a shared session component, assumed small",
        ),
        # A per-client linear trend: mean "variance.week_trend_*" (alliance grows a little over
        # early sessions), plus a client's own slope. Independent slopes of the two raters make
        # their ratings drift apart over the weeks (Meier & Donmall).
        "slope_sd_client": (0.25, "assumed: clients' early alliance trajectories differ"),
        "slope_sd_counsellor": (0.20, "assumed; independent of the client's: raters drift apart"),
        # Ruptures: per attended session, the same event for both raters; the deficit falls on the
        # session it happens in, and is carried into the next ones until repaired.
        "rupture_p": (
            0.20,
            EUBANKS + ": clients report tensions or ruptures in 19-42% of sessions; low end taken, "
            "since many minor tensions do not move a whole-session WAI-S (assumed)",
        ),
        "rupture_drop_client": (1.0, "assumed: a rupture session rated 1 item-mean point lower"),
        "rupture_drop_counsellor": (
            0.6,
            "assumed: counsellors register ruptures less than clients (smaller drop)",
        ),
        # Each later session a carried deficit is fully repaired with probability repair_p, else
        # partial_repair of it is made good (partial repair).
        "repair_p": (0.55, "assumed: most ruptures are repaired within a session or two"),
        "partial_repair": (0.5, "assumed: an unrepaired rupture keeps half its deficit a week"),
        # A repaired rupture leaves the relationship a little better than before it, and goes with
        # better outcomes (repair-outcome r = .29 in the meta-analysis; repaired ruptures also
        # went with less premature termination).
        "repair_bonus": (0.15, EUBANKS + " (direction); size assumed"),
        "repair_completion_logodds": (0.25, EUBANKS + " (direction); size assumed"),
    },
)

# ---------------------------------------------------------------- retention (early leaving, dropout, completion)
_add(
    "retention",
    {
        # Leaving before week 1 (no ratings, discharged within 7 days, dropped_out).
        "early_intercept": (-2.85, DESIGN + ": ~8% leave before week 1"),
        "early_counsellor_alliance": (
            -0.45,
            MEIER06
            + " (weak counsellor-side alliance -> earlier dropout), per latent item-mean point",
        ),
        "early_crack_any": (0.45, MEIER06 + " (pre-treatment crack use -> shorter retention)"),
        "early_readiness": (-0.30, JOE),
        "early_age_per_decade": (-0.15, MEIER06 + " (older age -> completion)"),
        # Leaving after week 1 or week 2 (hazard per week, logit).
        "weekly_intercept": (-3.0, DESIGN + ": ~5% per week"),
        "weekly_counsellor_alliance": (
            -0.55,
            MEIER06 + ", per latent point of the counsellor-rated weekly alliance",
        ),
        "weekly_alliance_low_motivation_amplifier": (
            0.5,
            ILGEN + ": alliance effect x (1 + a*max(-z_readiness, 0))",
        ),
        "weekly_crack_any": (0.35, MEIER06),
        "weekly_counsellor_experience": (
            -0.10,
            MEIER06 + " (experienced counsellors retain longer), per 5 years",
        ),
        # Completion = stay beyond 90 days, among those still in treatment after week 3.
        "completion_intercept": (0.55, MBEST + ": overall completion ~45-50%"),
        "completion_counsellor_alliance": (
            0.45,
            MEIER06 + ", per latent point of the weeks 1-3 mean counsellor-rated alliance",
        ),
        "completion_client_alliance": (
            0.0,
            MEIER06 + ": the client-rated alliance did not predict dropout",
        ),
        "completion_crack_any": (-0.50, MEIER06),
        "completion_age_per_decade": (0.20, MEIER06),
        "completion_education": (
            {"none": 0.0, "gcse": 0.15, "a_level": 0.30, "degree": 0.45, "not_stated": 0.0},
            MEIER06 + " (more education -> completion)",
        ),
        "completion_readiness": (0.20, MEIER06 + " (confidence in treatment -> completion)"),
        "completion_secure": (-0.10, MEIER06 + " (secure attachment went with shorter retention)"),
        "completion_coping_adaptive": (
            -0.10,
            MEIER06 + " (better coping went with shorter retention)",
        ),
        "completion_counsellor_experience": (0.15, MEIER06 + ", per 5 years"),
        "noncompleter_reasons": (
            {"dropped_out": 0.80, "transferred": 0.12, "other": 0.08},
            ASSUMED,
        ),
        "weekly_leaver_reasons": (
            {"dropped_out": 0.90, "transferred": 0.05, "other": 0.05},
            ASSUMED,
        ),
        "completer_extra_days_mean": (60.0, ASSUMED + ": completers leave some weeks after day 90"),
    },
)

# ---------------------------------------------------------------- missingness in the records
_add(
    "missing",
    {
        # Whole questionnaires (forms) missing at intake; more often after criminal-justice referral
        # (missing at random given recorded fields, so the ground truth can condition on them).
        "forms": (
            {
                "tcu_motform": (
                    "mot_problem_recognition",
                    "mot_desire_for_help",
                    "mot_treatment_readiness",
                    "mot_external_pressure",
                ),
                "tcu_cest": ("self_efficacy", "social_support"),
                "ghq12": ("psych_distress",),
                "brief_cope": ("coping_adaptive", "coping_avoidant"),
                "rq": (
                    "attach_secure",
                    "attach_fearful",
                    "attach_preoccupied",
                    "attach_dismissing",
                ),
            },
            "brief: TCU MOTForm and CEST, GHQ-12, Brief COPE, Relationship Questionnaire",
        ),
        "p_form_missing": (0.04, "issue: whole questionnaires missing ~5-10%"),
        "form_missing_criminal_justice_factor": (1.75, DESIGN + " (MAR on a recorded field)"),
        "p_item_level_client": (
            0.15,
            "issue: ~15% of clients carry item responses instead of scale scores",
        ),
        "p_intake_item_missing": (0.03, "issue: single items missing in item-level clients"),
        # Optional fields left blank. referral_source and legal_pressure are always recorded because
        # they shift the latent traits (a blank would need a posterior over them in the ground truth).
        "fields": (
            {
                "ethnicity": 0.03,
                "education": 0.04,
                "employment": 0.03,
                "housing": 0.03,
                "crack_days_28": 0.05,
                "opiate_days_28": 0.05,
                "injecting": 0.04,
                "age_first_use": 0.06,
                "previous_treatments": 0.05,
            },
            ASSUMED,
        ),
    },
)

# ---------------------------------------------------------------- ground truth
_add(
    "ground_truth",
    {
        "mc_draws": (
            200,
            DESIGN
            + ": Monte-Carlo draws per client (MC SE ~0.025 per client, far less on averages)",
        ),
    },
)

EFFECTS: dict[str, Effect] = dict(_E)

# The table in force. A world (simulator/worlds.py) replaces some entries and may add "structure.*"
# terms for the duration of one `generate` call; the default world is EFFECTS itself. A ContextVar,
# not a module global, so two cohorts of different worlds can be generated in one process (threads
# that work for a `generate` call are given a copy of its context).
_ACTIVE: ContextVar[dict[str, Effect]] = ContextVar("simulator_effects", default=EFFECTS)


@contextmanager
def using(table: dict[str, Effect]) -> Iterator[None]:
    """Make `table` the effect table in force inside the block."""
    token = _ACTIVE.set(table)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active() -> dict[str, Effect]:
    return _ACTIVE.get()


def value(key: str) -> Any:
    """The value of one entry, e.g. ``value("alliance_client.social_support")``."""
    return _ACTIVE.get()[key].value


def get(key: str, default: Any = None) -> Any:
    """The value of an entry that only some worlds have (``structure.*``), else `default`."""
    e = _ACTIVE.get().get(key)
    return default if e is None else e.value


def section(name: str) -> dict[str, Effect]:
    """All entries of one section, keyed without the section prefix."""
    prefix = name + "."
    return {k[len(prefix) :]: e for k, e in _ACTIVE.get().items() if k.startswith(prefix)}


def as_markdown() -> str:
    """The table in force as Markdown (written next to every synthetic cohort)."""
    lines = ["| key | value | source |", "|---|---|---|"]
    for key, e in _ACTIVE.get().items():
        v = e.value
        if isinstance(v, dict) and v and isinstance(next(iter(v)), tuple):
            v = f"{len(v)} pairs (see simulator/effects.py)"
        lines.append(f"| {key} | {v} | {e.source} |")
    return "\n".join(lines)


def as_json() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, e in _ACTIVE.get().items():
        v = e.value
        if isinstance(v, dict) and v and isinstance(next(iter(v)), tuple):
            v = {" ~ ".join(k): x for k, x in v.items()}
        out[key] = {"value": v, "source": e.source}
    return out
