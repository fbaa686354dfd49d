"""Scoring keys of the intake questionnaires and the outcome form (item codes only, never wording).

Why a table and not code: the keys are facts from the publishers' scoring guides, and the field
catalog, the scorer, the generator and the intake page all read them from here. Item numbers are
positions within each scale (``tcu_ss_06`` is the sixth Social Support item of the form as
administered), so a service whose form numbers items globally maps them once, at export.

Sources
- TCU scales: Texas Christian University, Institute of Behavioral Research, *TCU CEST and MOTForm
  scoring guides* (ibr.tcu.edu): responses 1-5 (strongly disagree .. strongly agree), reflected
  items scored 6 - x, scale score = item mean x 10 (range 10-50). Social Support: 9 items, one
  reflected (its 6th item), as printed in the CEST Social Support scoring instructions. The item
  counts and reflected positions of the other scales are those of the IBR guides as transcribed
  here; check them against the version of the form a service administers.
- GHQ-12: Goldberg & Williams (1988), *A user's guide to the GHQ*; Likert scoring 0-1-2-3 per item
  (response options already ordered from healthy to unwell), total 0-36.
- Brief COPE: Carver (1997), Int J Behav Med 4:92-100; 28 items, 14 two-item subscales, 1-4.
  Composites (adaptive, avoidant) as in the domain brief; composite score = mean of its items.
- Relationship Questionnaire: Bartholomew & Horowitz (1991), JPSP 61:226-244; four prototype
  ratings 1-7, style = highest rating, model of self and model of others as in the domain brief.
- WAI-S: Tracey & Kokotovic (1989), Psychol Assess 1:207-210; 12 items, 1-7; items 4 and 10 of the
  client form are negatively worded and reverse-scored (8 - x). The domain brief marks this
  *unverified*; it matches the two items that load apart in later factor analyses of the client
  form (e.g. the Japanese WAI-SC study, which dropped items 4 and 10). The same key is applied to the
  counsellor form, whose items mirror the client form's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    """One scored scale: which items, how they are keyed, and how they combine."""

    field: str  # the intake field the score lands in
    instrument: str
    prefix: str  # item codes are f"{prefix}_{nn:02d}"
    items: tuple[int, ...]  # item numbers that belong to the scale
    reflected: tuple[int, ...]  # item numbers scored (low + high) - x
    low: int  # lowest item response
    high: int  # highest item response
    combine: str  # "mean_x10" (TCU), "sum" (GHQ), "mean" (COPE composites, WAI)
    source: str

    def item_codes(self) -> list[str]:
        return [f"{self.prefix}_{i:02d}" for i in self.items]

    @property
    def score_range(self) -> tuple[float, float]:
        n = len(self.items)
        if self.combine == "mean_x10":
            return self.low * 10.0, self.high * 10.0
        if self.combine == "sum":
            return float(self.low * n), float(self.high * n)
        return float(self.low), float(self.high)


_TCU = "IBR TCU CEST/MOTForm scoring guide"


def _tcu(field: str, code: str, n: int, reflected: tuple[int, ...] = ()) -> Scale:
    return Scale(
        field, "TCU", f"tcu_{code}", tuple(range(1, n + 1)), reflected, 1, 5, "mean_x10", _TCU
    )


# Brief COPE subscales (Carver 1997): item numbers of each two-item subscale.
COPE_SUBSCALES: dict[str, tuple[int, int]] = {
    "self_distraction": (1, 19),
    "active_coping": (2, 7),
    "denial": (3, 8),
    "substance_use": (4, 11),
    "emotional_support": (5, 15),
    "behavioural_disengagement": (6, 16),
    "venting": (9, 21),
    "instrumental_support": (10, 23),
    "positive_reframing": (12, 17),
    "self_blame": (13, 26),
    "planning": (14, 25),
    "humour": (18, 28),
    "acceptance": (20, 24),
    "religion": (22, 27),
}
COPE_ADAPTIVE = (
    "active_coping",
    "planning",
    "positive_reframing",
    "acceptance",
    "emotional_support",
    "instrumental_support",
)
COPE_AVOIDANT = (
    "self_distraction",
    "denial",
    "substance_use",
    "behavioural_disengagement",
    "venting",
    "self_blame",
)


# Humour (18, 28) and religion (22, 27) belong to neither composite: recognised, never scored.
COPE_UNSCORED: tuple[int, ...] = tuple(
    sorted(COPE_SUBSCALES["humour"] + COPE_SUBSCALES["religion"])
)


def _cope(field: str, subscales: tuple[str, ...]) -> Scale:
    items = tuple(sorted(i for s in subscales for i in COPE_SUBSCALES[s]))
    return Scale(field, "Brief COPE", "cope", items, (), 1, 4, "mean", "Carver 1997")


SCALES: tuple[Scale, ...] = (
    _tcu("mot_problem_recognition", "pr", 9),
    _tcu("mot_desire_for_help", "dh", 6),
    _tcu("mot_treatment_readiness", "tr", 8, reflected=(2, 3, 6)),
    _tcu("mot_external_pressure", "pt", 8),
    _tcu("self_efficacy", "se", 5),
    _tcu("social_support", "ss", 9, reflected=(6,)),
    Scale(
        "psych_distress",
        "GHQ-12",
        "ghq",
        tuple(range(1, 13)),
        (),
        0,
        3,
        "sum",
        "Goldberg & Williams 1988",
    ),
    _cope("coping_adaptive", COPE_ADAPTIVE),
    _cope("coping_avoidant", COPE_AVOIDANT),
)
SCALES_BY_FIELD: dict[str, Scale] = {s.field: s for s in SCALES}

# The outcome form. Scored per rating as the item mean after reverse-scoring.
WAI_S = Scale(
    "wai_mean",
    "WAI-S",
    "wai",
    tuple(range(1, 13)),
    (4, 10),
    1,
    7,
    "mean",
    "Tracey & Kokotovic 1989",
)
WAI_MAX_MISSING = 2  # data contract: a rating with more than 2 missing items is void

# Measurement error of one WAI-S rating (issue 19: rupture marker and client-counsellor
# discrepancy; bench/weekly_signal.py). Reliable change (Jacobson & Truax 1991): a change counts
# when it exceeds RCI_Z * sqrt(2) * SEM, SEM = SD * sqrt(1 - alpha), with alpha = 0.90 for the
# WAI-S total (*unverified*: WAI-S alphas are reported around .90 and above, e.g. Busseri & Tyler
# 2003, Psychol Assess 15:193; .90 taken as a conservative value). docs/domain.md, "Week-to-week
# alliance". The one definition: every user calls these.
WAI_S_ALPHA = 0.90
RCI_Z = 1.96


def wai_sem(sd: float, alpha: float = WAI_S_ALPHA) -> float:
    """Standard error of measurement of one WAI-S item-mean rating whose SD across clients is sd."""
    return float(sd) * (1.0 - alpha) ** 0.5


def reliable_change(sd: float, alpha: float = WAI_S_ALPHA) -> float:
    """The smallest change between two ratings of one rater larger than the measurement error
    (Jacobson & Truax 1991): RCI_Z * sqrt(2) * SEM."""
    return RCI_Z * 2.0**0.5 * wai_sem(sd, alpha)


def reliable_difference(sd_a: float, sd_b: float, alpha: float = WAI_S_ALPHA) -> float:
    """The smallest difference between two raters' ratings of one session larger than the two
    ratings' measurement error: RCI_Z * sqrt(SEM_a^2 + SEM_b^2) (the same criterion for two
    independent errors of different size)."""
    return RCI_Z * (wai_sem(sd_a, alpha) ** 2 + wai_sem(sd_b, alpha) ** 2) ** 0.5


# Relationship Questionnaire (single-item prototype ratings; no items to score).
RQ_PROTOTYPES = ("attach_secure", "attach_fearful", "attach_preoccupied", "attach_dismissing")

# Prorating rule from the contract: at most this fraction of a scale's items may be missing,
# i.e. floor(0.2 x n) items (1 of 5-9 items, 2 of the GHQ-12 and of each 12-item COPE composite).
MAX_MISSING_FRACTION = 0.20


def item_fields() -> list[tuple[Scale, str]]:
    """Every (scale, item code) pair an intake record may carry instead of a scale score.

    The two COPE composites split the scored items between them, so each code has one scale.
    """
    seen: set[str] = set()
    out: list[tuple[Scale, str]] = []
    for scale in SCALES:
        for code in scale.item_codes():
            if code not in seen:
                seen.add(code)
                out.append((scale, code))
    return out
