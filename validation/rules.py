"""The value rules shared by the table path (Great Expectations) and the record path (pydantic).

Why one module: a value in intake.csv and the same value in a scoring record must be judged alike.
Both paths turn a value into its *text form* (what it looks like in a CSV cell) and test that text
with the same regular expressions and the same date format; ranges and codes come from the catalog.
Pure Python (no pandas, no GX): the record path imports it and must stay fast.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from features.catalog import EARLIEST_DATE, Field

# Text forms accepted per kind. Integers may carry a zero fraction ("3.0"): pandas writes an integer
# column holding missing values as floats, and such an export must not be rejected.
INT_PATTERN = r"^[+-]?[0-9]+(?:\.0*)?$"
NUMBER_PATTERN = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
BOOL_PATTERN = r"^(?:true|false|True|False|TRUE|FALSE|1|0)$"
DATE_FORMAT = "%Y-%m-%d"  # ISO 8601 calendar date; checked with strptime on both paths
TRUE_TEXT = frozenset({"true", "1"})

INT_RE = re.compile(INT_PATTERN)
NUMBER_RE = re.compile(NUMBER_PATTERN)
BOOL_RE = re.compile(BOOL_PATTERN)
TYPE_PATTERNS: dict[str, str] = {
    "integer": INT_PATTERN,
    "number": NUMBER_PATTERN,
    "boolean": BOOL_PATTERN,
}
TYPE_WORDS: dict[str, str] = {
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "date": "an ISO date YYYY-MM-DD",
    "string": "text",
    "code": "a code",
}

EARLIEST = dt.date.fromisoformat(EARLIEST_DATE)

# Cross-field rules "field <= other" (data contract: age_first_use ... and <= age). The catalog only
# states this in prose; see the report to the lead about encoding it there.
NOT_ABOVE: dict[str, str] = {"age_first_use": "age"}


def latest_date() -> dt.date:
    """Dates may not lie in the future (evaluated per call, so a long-running service stays right)."""
    return dt.date.today()


def text_form(value: Any) -> str | None:
    """What a value looks like as a CSV cell; None for missing (None, NaN, NaT, empty string)."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy scalars
        try:
            value = value.item()
        except (ValueError, TypeError):
            pass
    if isinstance(value, str):
        return value if value != "" else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return repr(value)
    if isinstance(value, dt.datetime):  # also pandas Timestamp
        if value != value:  # NaT
            return None
        if value.time() == dt.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if value != value:  # pd.NA-like / NaT
        return None
    try:
        import pandas as pd  # only reached for exotic values (pd.NA); pandas already loaded then

        if value is pd.NA:
            return None
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def parse_date(text: str) -> dt.date | None:
    """A calendar date in DATE_FORMAT (as strptime, which GX's strftime rule uses), else None."""
    try:
        if len(text) == 10 and text[4] == "-" and text[7] == "-" and text[:4].isdigit():
            return dt.date.fromisoformat(text)  # fast path, same result as strptime here
        return dt.datetime.strptime(text, DATE_FORMAT).date()
    except ValueError:
        return None


def range_words(f: Field) -> str:
    """Human-readable allowed values of a field, as in the contract."""
    if f.codes:
        return "one of " + ", ".join(f.codes)
    if f.kind == "date":
        return f"ISO date, {EARLIEST_DATE} .. today"
    if f.minimum is not None and f.maximum is not None:
        return f"{TYPE_WORDS[f.kind]} in {_num(f.minimum)}..{_num(f.maximum)}"
    if f.pattern:
        return "1-64 characters of A-Z a-z 0-9 _ -"
    return TYPE_WORDS[f.kind]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
