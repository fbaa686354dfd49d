"""The field catalog: data contract v1 (shared/docs/data-contract.md), encoded once.

Validation suites, the one-record checker, the HTTP schema, the intake page and the synthetic
generator all read this module; none of them lists fields of its own. A field's *driver group*,
*modifiable* flag and *expected direction* come from the domain brief (shared/docs/domain.md,
"Directions found" and "Modifiable drivers") and feed the model's monotone constraints and the
explanation's grouping.

Expected direction is the sign of the field's association with the **alliance** (not with the
risk of a low alliance): "+" means more of it goes with a better alliance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from features.instruments import COPE_UNSCORED, SCALES_BY_FIELD, WAI_S, item_fields

Table = Literal["intake", "counsellors", "alliance", "episodes"]
Kind = Literal["string", "date", "integer", "number", "code", "boolean"]
Direction = Literal["+", "-", "none"]

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ID_RE = re.compile(ID_PATTERN)
EARLIEST_DATE = "2000-01-01"

DRIVER_GROUPS: tuple[str, ...] = (
    "motivation",
    "coping",
    "social_support",
    "distress",
    "attachment",
    "substance_use",
    "history",
    "demographics",
    "counsellor",
)
# Groups an intake worker can act on (domain brief, "Modifiable drivers and what to suggest").
MODIFIABLE_GROUPS: frozenset[str] = frozenset(
    {"motivation", "coping", "social_support", "distress"}
)

# Page sections, in display order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("client", "About the client"),
    ("substance", "Substance use"),
    ("motivation", "Motivation"),
    ("coping", "Coping"),
    ("support", "Support"),
    ("distress", "Distress"),
    ("attachment", "Attachment"),
    ("counsellor", "Counsellor"),
)


@dataclass(frozen=True)
class Field:
    """One field of one table, with everything any consumer needs to know about it."""

    name: str
    table: Table
    kind: Kind
    required: bool
    description: str
    codes: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    instrument: str | None = None
    unit: str | None = None
    driver: str | None = None  # driver group for predictors; None for ids, dates and outcomes
    modifiable: bool = False
    direction: Direction = "none"
    section: str | None = None  # intake page section; None = not on the form
    is_item: bool = False  # an item response that may stand in for a scale score
    scale: str | None = None  # for items: the scale field they score into
    unique: bool = False
    pattern: str | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def predictor(self) -> bool:
        return self.driver is not None


def _id(
    name: str, table: Table, description: str, required: bool = True, unique: bool = False
) -> Field:
    return Field(name, table, "string", required, description, unique=unique, pattern=ID_PATTERN)


def _code(
    name: str,
    codes: tuple[str, ...],
    required: bool,
    description: str,
    driver: str | None,
    section: str | None,
    **kw,
) -> Field:
    return Field(
        name,
        "intake",
        "code",
        required,
        description,
        codes=codes,
        driver=driver,
        section=section,
        **kw,
    )


def _scale(
    name: str,
    description: str,
    driver: str,
    direction: Direction,
    section: str,
    kind: Kind = "number",
) -> Field:
    if name in SCALES_BY_FIELD:
        sc = SCALES_BY_FIELD[name]
        lo, hi = sc.score_range
        instrument = sc.instrument
        unit = {
            "mean_x10": "scale score (item mean x 10)",
            "sum": "sum score",
            "mean": "item mean",
        }[sc.combine]
    else:  # Relationship Questionnaire prototypes: single 1-7 ratings
        lo, hi, instrument, unit = 1, 7, "Relationship Questionnaire", "rating"
    return Field(
        name,
        "intake",
        kind,
        False,
        description,
        minimum=lo,
        maximum=hi,
        instrument=instrument,
        unit=unit,
        driver=driver,
        modifiable=driver in MODIFIABLE_GROUPS,
        direction=direction,
        section=section,
    )


SEX = ("male", "female", "other", "not_stated")

INTAKE: tuple[Field, ...] = (
    _id("admission_id", "intake", "Admission identifier, unique per admission.", unique=True),
    _id("service_id", "intake", "Treatment service identifier."),
    _id("counsellor_id", "intake", "Assigned keyworker, if known at admission.", required=False),
    Field("admission_date", "intake", "date", True, "Date of admission (ISO 8601).", unit="date"),
    Field(
        "age",
        "intake",
        "integer",
        True,
        "Age in years at admission.",
        minimum=16,
        maximum=90,
        unit="years",
        driver="demographics",
        section="client",
    ),
    _code("sex", SEX, True, "Client's sex.", "demographics", "client"),
    _code(
        "ethnicity",
        ("white", "mixed", "asian", "black", "other", "not_stated"),
        False,
        "Ethnic group (NDTMS).",
        "demographics",
        "client",
    ),
    _code(
        "education",
        ("none", "gcse", "a_level", "degree", "not_stated"),
        False,
        "Highest qualification.",
        "demographics",
        "client",
    ),
    _code(
        "employment",
        ("employed", "unemployed", "unable_to_work", "other"),
        False,
        "Employment status.",
        "demographics",
        "client",
    ),
    _code(
        "housing",
        ("no_problem", "housing_problem", "urgent_problem"),
        False,
        "Accommodation need (NDTMS).",
        "demographics",
        "client",
    ),
    _code(
        "primary_substance",
        (
            "opiates",
            "crack",
            "cocaine",
            "alcohol",
            "cannabis",
            "amphetamines",
            "benzodiazepines",
            "other",
        ),
        True,
        "Primary problem substance.",
        "substance_use",
        "substance",
    ),
    *(
        Field(
            f"{drug}_days_28",
            "intake",
            "integer",
            False,
            f"Days {what} used in the last 28 (TOP).",
            minimum=0,
            maximum=28,
            unit="days",
            instrument="TOP",
            driver="substance_use",
            section="substance",
        )
        for drug, what in (("crack", "crack"), ("opiate", "opiates"))
    ),
    _code(
        "injecting",
        ("never", "previously", "currently"),
        False,
        "Injecting status.",
        "substance_use",
        "substance",
    ),
    Field(
        "age_first_use",
        "intake",
        "integer",
        False,
        "Age at first use of the primary substance; not above age.",
        minimum=5,
        maximum=90,
        unit="years",
        driver="substance_use",
        section="substance",
    ),
    Field(
        "previous_treatments",
        "intake",
        "integer",
        False,
        "Number of previous treatment episodes.",
        minimum=0,
        maximum=50,
        unit="episodes",
        driver="history",
        section="substance",
    ),
    _code(
        "referral_source",
        ("self", "criminal_justice", "health", "social_care", "other"),
        False,
        "Who referred the client.",
        "history",
        "client",
    ),
    Field(
        "legal_pressure",
        "intake",
        "boolean",
        False,
        "Under legal pressure to attend treatment.",
        driver="history",
        section="client",
    ),
    _scale("mot_problem_recognition", "TCU Problem Recognition.", "motivation", "+", "motivation"),
    _scale("mot_desire_for_help", "TCU Desire for Help.", "motivation", "+", "motivation"),
    _scale("mot_treatment_readiness", "TCU Treatment Readiness.", "motivation", "+", "motivation"),
    # External pressure: the brief gives no direction for the alliance; it is left unconstrained.
    _scale(
        "mot_external_pressure", "TCU Pressures for Treatment.", "motivation", "none", "motivation"
    ),
    _scale("self_efficacy", "TCU CEST Self-Efficacy.", "coping", "+", "coping"),
    _scale("social_support", "TCU CEST Social Support.", "social_support", "+", "support"),
    # Distress: the brief lists psychological wellbeing in the intake battery and distress as a
    # modifiable driver; more distress is taken to go with a weaker alliance.
    _scale("psych_distress", "GHQ-12 total, Likert 0-3 scoring.", "distress", "-", "distress"),
    _scale(
        "coping_adaptive", "Brief COPE adaptive composite (item mean).", "coping", "+", "coping"
    ),
    _scale(
        "coping_avoidant", "Brief COPE avoidant composite (item mean).", "coping", "-", "coping"
    ),
    _scale(
        "attach_secure",
        "Relationship Questionnaire: secure prototype.",
        "attachment",
        "+",
        "attachment",
        kind="integer",
    ),
    _scale(
        "attach_fearful",
        "Relationship Questionnaire: fearful prototype.",
        "attachment",
        "-",
        "attachment",
        kind="integer",
    ),
    _scale(
        "attach_preoccupied",
        "Relationship Questionnaire: preoccupied prototype.",
        "attachment",
        "none",
        "attachment",
        kind="integer",
    ),
    _scale(
        "attach_dismissing",
        "Relationship Questionnaire: dismissing prototype.",
        "attachment",
        "-",
        "attachment",
        kind="integer",
    ),
)

COUNSELLORS: tuple[Field, ...] = (
    _id("counsellor_id", "counsellors", "Counsellor identifier.", unique=True),
    _id("service_id", "counsellors", "Service the counsellor works in."),
    Field("sex", "counsellors", "code", False, "Counsellor's sex.", codes=SEX),
    Field("ex_user", "counsellors", "boolean", False, "In recovery from drug use themselves."),
    Field(
        "years_experience",
        "counsellors",
        "number",
        False,
        "Years of professional experience.",
        minimum=0,
        maximum=50,
        unit="years",
    ),
)

# Counsellor attributes as they appear in the scoring record. Directions depend on the rater
# (Meier 2005: clients rate experienced, ex-user and male counsellors higher; experienced counsellors
# rate their own alliances lower), so they carry no single expected direction.
COUNSELLOR_PREFIX = "counsellor_"
SCORING_COUNSELLOR: tuple[Field, ...] = tuple(
    Field(
        COUNSELLOR_PREFIX + f.name,
        "intake",
        f.kind,
        False,
        "Assigned counsellor: " + f.description[0].lower() + f.description[1:],
        codes=f.codes,
        minimum=f.minimum,
        maximum=f.maximum,
        unit=f.unit,
        driver="counsellor",
        section="counsellor",
    )
    for f in COUNSELLORS
    if f.name not in ("counsellor_id", "service_id")
)

ALLIANCE: tuple[Field, ...] = (
    _id("admission_id", "alliance", "Admission rated; must exist in intake."),
    Field(
        "week",
        "alliance",
        "integer",
        True,
        "Week of treatment rated.",
        minimum=1,
        maximum=3,
        unit="week",
    ),
    Field(
        "rater",
        "alliance",
        "code",
        True,
        "Who completed the WAI-S.",
        codes=("client", "counsellor"),
    ),
    *(
        Field(
            code,
            "alliance",
            "integer",
            False,
            f"WAI-S item {i}{' (reverse-scored)' if i in WAI_S.reflected else ''}.",
            minimum=1,
            maximum=7,
            instrument="WAI-S",
            is_item=True,
        )
        for i, code in zip(WAI_S.items, WAI_S.item_codes(), strict=True)
    ),
)

EPISODES: tuple[Field, ...] = (
    _id("admission_id", "episodes", "Admission; must exist in intake.", unique=True),
    Field(
        "discharge_date",
        "episodes",
        "date",
        False,
        "Date of discharge; empty if still in treatment.",
        unit="date",
    ),
    Field(
        "discharge_reason",
        "episodes",
        "code",
        True,
        "How the stay ended.",
        codes=("completed", "dropped_out", "transferred", "other", "ongoing"),
    ),
)


def _item_field(scale, code: str) -> Field:
    parent = next(f for f in INTAKE if f.name == scale.field)
    return Field(
        code,
        "intake",
        "integer",
        False,
        f"{scale.instrument} item {code[-2:]} ({'reflected' if int(code[-2:]) in scale.reflected else 'keyed'}), scored into {scale.field}.",
        minimum=scale.low,
        maximum=scale.high,
        instrument=scale.instrument,
        unit="item response",
        section=parent.section,
        is_item=True,
        scale=scale.field,
    )


# Item responses an intake record may carry instead of a scale score. COPE items that feed both
# composites do not exist (the composites split the 28 items), so each code has one parent scale.
ITEMS: tuple[Field, ...] = tuple(_item_field(s, c) for s, c in item_fields()) + tuple(
    Field(
        f"cope_{i:02d}",
        "intake",
        "integer",
        False,
        f"Brief COPE item {i:02d} (humour or religion): accepted, not part of either composite.",
        minimum=1,
        maximum=4,
        instrument="Brief COPE",
        unit="item response",
        section=None,
        is_item=True,
    )
    for i in COPE_UNSCORED
)

TABLES: dict[str, tuple[Field, ...]] = {
    "intake": INTAKE + ITEMS,
    "counsellors": COUNSELLORS,
    "alliance": ALLIANCE,
    "episodes": EPISODES,
}
REQUIRED_TABLES = ("intake", "counsellors", "alliance")  # episodes.csv is optional

# The flat scoring record: intake fields (scales or items) plus the counsellor's attributes.
SCORING_RECORD: tuple[Field, ...] = INTAKE + SCORING_COUNSELLOR + ITEMS
SCORING_BY_NAME: dict[str, Field] = {f.name: f for f in SCORING_RECORD}

# Predictors as they reach the model (scale scores, not items; ids and dates are not predictors).
PREDICTORS: tuple[Field, ...] = tuple(f for f in INTAKE + SCORING_COUNSELLOR if f.predictor)
SCALE_FIELDS: tuple[str, ...] = tuple(
    f.name for f in INTAKE if f.instrument in ("TCU", "GHQ-12", "Brief COPE")
)


def field_in(table: str, name: str) -> Field:
    for f in TABLES[table]:
        if f.name == name:
            return f
    raise KeyError(f"{table}.{name} is not in the data contract")


def driver_of(name: str) -> str | None:
    f = SCORING_BY_NAME.get(name)
    return f.driver if f else None


def fields_of_driver(group: str) -> tuple[Field, ...]:
    return tuple(f for f in PREDICTORS if f.driver == group)
