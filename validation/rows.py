"""The one-record rules of validation.record applied to a whole table, fast.

Why a separate step: checking every row with the pydantic record model costs about one model call
per row; most columns hold few distinct values, so each distinct value of each column is checked
once with the *same* pydantic field validator the record model uses
(``validation.record.annotation``), plus the record's cross-field rule (``age_first_use`` not
above ``age``) and required-field presence. Only rows this screen flags go through
``validation.record.check_record``, whose errors (field, readable reason, value) are the words the
API returns. Used by batch scoring (both engines) and the logged MLflow pyfunc.

Values may come typed any way pandas reads a contract table (text, int64, float64 with NaN, bool,
object): the validators judge a value by its text form (validation.rules.text_form).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


class RowValidator:
    """The record rules of validation.record, applied column-wise (see the module docstring)."""

    CACHE_LIMIT = 200_000  # distinct values remembered per field across chunks

    def __init__(self) -> None:
        from pydantic import TypeAdapter

        from validation.record import FIELDS, annotation
        from validation.rules import NOT_ABOVE

        self._adapters = {n: TypeAdapter(annotation(f)) for n, f in FIELDS.items()}
        self._required = {n for n, f in FIELDS.items() if f.required}
        self._not_above = NOT_ABOVE
        self._cache: dict[str, dict[Any, bool]] = {}

    def _value_ok(self, name: str, value: Any) -> bool:
        from pydantic import ValidationError

        try:
            self._adapters[name].validate_python(value)
            return True
        except ValidationError:
            return False

    def screen(self, frame: pd.DataFrame) -> np.ndarray:
        """True for rows that may break a rule (every row that does is flagged)."""
        n = len(frame)
        flagged = np.zeros(n, dtype=bool)
        for name in frame.columns:
            if name not in self._adapters:
                continue
            col = frame[name]
            try:
                codes, uniques = pd.factorize(col, use_na_sentinel=True)
            except TypeError:  # unhashable values: check each
                flagged |= np.array([not self._value_ok(name, v) for v in col], dtype=bool)
                continue
            cache = self._cache.setdefault(name, {})
            if len(cache) > self.CACHE_LIMIT:
                cache.clear()
            ok = np.empty(len(uniques) + 1, dtype=bool)
            for k, v in enumerate(uniques):
                key = (type(v), v)
                hit = cache.get(key)
                if hit is None:
                    hit = cache[key] = self._value_ok(name, v)
                ok[k] = hit
            ok[-1] = name not in self._required  # code -1: a missing value
            flagged |= ~ok[codes]
        for name in self._required:
            if name not in frame.columns:
                flagged[:] = True
        for name, other in self._not_above.items():
            if name in frame.columns and other in frame.columns:
                a = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
                b = pd.to_numeric(frame[other], errors="coerce").to_numpy(dtype=float)
                with np.errstate(invalid="ignore"):
                    flagged |= a > b
        return flagged

    def errors(self, frame: pd.DataFrame, positions: np.ndarray) -> dict[int, list]:
        """check_record's FieldErrors for the rows at ``positions`` (only failing rows kept)."""
        from validation.record import check_record

        cols = [c for c in frame.columns if c in self._adapters]
        values = {c: frame[c].to_numpy(dtype=object) for c in cols}
        out: dict[int, list] = {}
        for i in positions.tolist():
            record = {}
            for c in cols:
                v = values[c][i]
                if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
                    continue
                record[c] = v
            _, errs = check_record(record)
            if errs:
                out[i] = errs
        return out
