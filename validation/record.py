"""The flat scoring record as a pydantic v2 model, generated from the catalog (no GX, no pandas).

Same rules as the table suites (validation.rules): a value is judged by its text form, so "3",
3 and 3.0 are the same integer in a CSV cell and in a record, "abc" and 3.5 are not; an empty
string is a missing value; booleans are true/false (or 1/0); dates are ISO YYYY-MM-DD between
2000-01-01 and today. Codes are exact (Literal), ranges are the catalog's ge/le, unknown fields are
rejected (extra="forbid"), and age_first_use may not be above age.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic import Field as PField
from pydantic_core import PydanticCustomError

from features.catalog import SCORING_RECORD, Field
from features.errors import FieldError
from validation.rules import (
    BOOL_RE,
    EARLIEST,
    INT_RE,
    NOT_ABOVE,
    NUMBER_RE,
    TRUE_TEXT,
    TYPE_WORDS,
    latest_date,
    parse_date,
    range_words,
    text_form,
)

TABLE = "intake"


def _wrong(kind: str, value: Any) -> PydanticCustomError:
    return PydanticCustomError(
        "wrong_type", "wrong type: expected {expected}", {"expected": TYPE_WORDS[kind]}
    )


def _to_int(v: Any) -> Any:
    if type(v) is int:  # fast path; bool is not int here (type(True) is bool)
        return v
    t = text_form(v)
    if t is None:
        return None
    if isinstance(v, bool) or not INT_RE.match(t):
        raise _wrong("integer", v)
    return int(float(t)) if "." in t else int(t)


def _to_number(v: Any) -> Any:
    if type(v) is float and math.isfinite(v):  # fast path
        return v
    if type(v) is int:
        return float(v)
    t = text_form(v)
    if t is None:
        return None
    if isinstance(v, bool) or not NUMBER_RE.match(t):
        raise _wrong("number", v)
    return float(t)


def _to_bool(v: Any) -> Any:
    if type(v) is bool:
        return v
    t = text_form(v)
    if t is None:
        return None
    if not BOOL_RE.match(t):
        raise _wrong("boolean", v)
    return t.lower() in TRUE_TEXT


def _to_date(v: Any) -> Any:
    t = text_form(v)
    if t is None:
        return None
    d = parse_date(t)
    if d is None:
        raise _wrong("date", v)
    return d


def _to_text(v: Any) -> Any:
    if type(v) is str:  # fast path
        return v or None
    return text_form(v)


def _date_in_range(d: dt.date | None) -> dt.date | None:
    if d is not None and not (EARLIEST <= d <= latest_date()):
        raise PydanticCustomError("out_of_range", "out of range (ISO date, 2000-01-01 .. today)")
    return d


def _description(f: Field) -> str:
    parts = [f.description, f"Allowed: {range_words(f)}."]
    if f.unit:
        parts.append(f"Unit: {f.unit}.")
    if f.instrument:
        parts.append(f"Instrument: {f.instrument}.")
    if f.name in NOT_ABOVE:
        parts.append(f"Must not be above {NOT_ABOVE[f.name]}.")
    parts.append("Required." if f.required else "Optional.")
    return " ".join(parts)


def annotation(f: Field) -> Any:
    if f.codes:
        base: Any = Literal[f.codes]  # type: ignore[valid-type]
        before = _to_text
    elif f.kind == "integer":
        base, before = Annotated[int, PField(ge=f.minimum, le=f.maximum, strict=True)], _to_int
    elif f.kind == "number":
        base = Annotated[float, PField(ge=f.minimum, le=f.maximum, allow_inf_nan=False)]
        before = _to_number
    elif f.kind == "boolean":
        base, before = bool, _to_bool
    elif f.kind == "date":
        base, before = Annotated[dt.date, AfterValidator(_date_in_range)], _to_date
    else:
        base = Annotated[str, StringConstraints(pattern=f.pattern)] if f.pattern else str
        before = _to_text
    typ = base if f.required else base | None
    return Annotated[typ, BeforeValidator(before)]


class _RecordBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    @model_validator(mode="after")
    def _cross_field(self):
        for name, other in NOT_ABOVE.items():
            a, b = getattr(self, name, None), getattr(self, other, None)
            if a is not None and b is not None and a > b:
                raise PydanticCustomError(
                    "not_above",
                    "{field}: must not be above {other} ({other_value})",
                    {"field": name, "other": other, "other_value": b, "value": a},
                )
        return self


def _field_spec(f: Field) -> tuple[Any, Any]:
    default = ... if f.required else None
    return (annotation(f), PField(default, description=_description(f), title=f.name))


ValidatedRecord: type[BaseModel] = create_model(
    "ValidatedRecord",
    __base__=_RecordBase,
    __doc__="One flat scoring record (data contract v1): intake fields, the assigned counsellor's "
    "attributes (counsellor_*), and questionnaire item responses.",
    **{f.name: _field_spec(f) for f in SCORING_RECORD},
)
FIELDS: dict[str, Field] = {f.name: f for f in SCORING_RECORD}


def _reason(err: dict) -> tuple[str, str]:
    """(field, readable reason) for one pydantic error."""
    loc = err.get("loc") or ()
    typ = err.get("type", "")
    ctx = err.get("ctx") or {}
    if not loc:
        name = str(ctx.get("field", "*"))
        if typ == "not_above":
            return name, f"must not be above {ctx['other']} ({ctx['other_value']})"
        return name, err.get("msg", "invalid record")
    name = str(loc[0])
    f = FIELDS.get(name)
    if typ == "extra_forbidden":
        return name, "unknown field (not in the data contract)"
    if typ == "missing":
        return name, "required field is missing"
    if f is None:
        return name, err.get("msg", "invalid")
    if typ in ("literal_error",):
        return name, "not an allowed code (" + range_words(f) + ")"
    if typ in ("greater_than_equal", "less_than_equal", "out_of_range", "finite_number"):
        return name, "out of range (" + range_words(f) + ")"
    if typ == "string_pattern_mismatch":
        return name, "not a valid id (" + range_words(f) + ")"
    if typ == "wrong_type" or typ.endswith("_type") or typ.endswith("_parsing"):
        if err.get("input") is None and f.required:
            return name, "required value is missing"
        return name, f"wrong type: expected {TYPE_WORDS[f.kind]}"
    return name, err.get("msg", "invalid")


def check_record(record: dict) -> tuple[BaseModel | None, list[FieldError]]:
    """Validate one scoring record. Returns (ValidatedRecord, []) or (None, [FieldError, ...])."""
    try:
        return ValidatedRecord.model_validate(record), []
    except ValidationError as exc:
        aid = record.get("admission_id") if isinstance(record, dict) else None
        aid = aid if isinstance(aid, str) else None
        errors = []
        for e in exc.errors(include_url=False):
            name, reason = _reason(e)
            value = record.get(name) if isinstance(record, dict) else None
            errors.append(FieldError(TABLE, name, reason, value, aid, True))
        return None, errors


def record_json_schema() -> dict:
    """The record's JSON schema (what an OpenAPI page shows): every field, range and code."""
    return ValidatedRecord.model_json_schema()
