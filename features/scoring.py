"""Questionnaire scoring from item responses: TCU scales, GHQ-12, Brief COPE composites, the
Relationship Questionnaire and the WAI-S outcome form.

Why this module exists: the data contract ("intake.csv", last paragraph) lets a record carry an
instrument's item responses instead of its scale score, so the project must score items with the
publisher's key, prorate within a stated limit, say which items it used, and refuse a record whose
given score contradicts its own items. The keys themselves are facts kept in features/instruments.py
(sources there: IBR TCU CEST/MOTForm scoring guides; Goldberg & Williams 1988 for the GHQ-12;
Carver 1997 for the Brief COPE; Bartholomew & Horowitz 1991 for the RQ; Tracey & Kokotovic 1989
for the WAI-S); nothing here hard-codes an item number.

Two entry points share one core (the per-scale key table ``_SPECS``, the value parser
``_to_float``, the item check ``_item_problem`` and the combination rule ``_finish``):
``score_intake`` is vectorised for whole tables (training, batch scoring) and ``score_record`` is
plain Python for one API record, where pandas' per-call overhead would dominate. Because every
score is an exact integer sum divided the same way in both paths, the two give bit-identical
results; tests/code/test_scoring.py checks that.

Rules chosen here (the contract leaves them open):
- A scale is scored from items when the record carries at least one of its items, none of them
  invalid, and at most ``MAX_MISSING_FRACTION`` of them are missing (so 1 of 5-9 items, 2 of 12).
  Sums are prorated as mean x number of items. Too many missing: the scale is missing, unless the
  record also gave the scale score, which is then kept (it cannot be checked, and is not wrong).
- A record that carries none of a scale's items keeps the scale field exactly as given.
- A given score disagreeing with the item score by more than ``TOLERANCE`` (0.5 on TCU x10 and GHQ
  sum scores, 0.05 on COPE item means: room for a score rounded to an integer or one decimal) is a
  blocking FieldError on the scale field, and the given score is left in place. When they agree,
  the item score (unrounded) replaces the given one.
- An item that is not a number, not a whole response, or outside the item range is a FieldError on
  the item field; that scale is then not scored from items for that record (one error per problem,
  not a cascade of conflicts).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Real
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from features.errors import DataError, FieldError
from features.instruments import (
    MAX_MISSING_FRACTION,
    RQ_PROTOTYPES,
    SCALES,
    WAI_MAX_MISSING,
    WAI_S,
    Scale,
)

# Largest difference between a given scale score and the item score that still counts as the same
# score (a rounded copy). Keyed by Scale.combine.
TOLERANCE: dict[str, float] = {"mean_x10": 0.5, "sum": 0.5, "mean": 0.05}
_EPS = 1e-9  # so that a difference of exactly the tolerance is accepted despite float noise

# Key under which score_record reports the items it used: {scale field: [item codes]}.
ITEMS_USED = "items_used"

ATTACHMENT_STYLES = ("secure", "fearful", "preoccupied", "dismissing")  # order of RQ_PROTOTYPES
UNDETERMINED = "undetermined"


@dataclass(frozen=True)
class _Spec:
    """A Scale flattened for fast scoring (computed once at import)."""

    scale: Scale
    codes: tuple[str, ...]
    reflected: tuple[bool, ...]
    max_missing: int
    tolerance: float


def _max_missing(n_items: int) -> int:
    # floor(0.2 * n) with a guard against 0.2 * 10 = 1.9999999 style float error.
    return int(math.floor(MAX_MISSING_FRACTION * n_items + 1e-9))


_SPECS: tuple[_Spec, ...] = tuple(
    _Spec(
        scale=s,
        codes=tuple(s.item_codes()),
        reflected=tuple(i in s.reflected for i in s.items),
        max_missing=_max_missing(len(s.items)),
        tolerance=TOLERANCE[s.combine],
    )
    for s in SCALES
)


# --------------------------------------------------------------------------------------------
# The shared core
# --------------------------------------------------------------------------------------------


def _to_float(v: Any) -> float | None:
    """One parser for both paths: NaN for missing, None for a value that is not a number.

    Numeric strings are accepted because CSV and form input arrive as text; booleans are not
    numbers here even though Python treats them as ints.
    """
    t = type(v)
    if t is float or t is int:
        return float(v)
    if v is None:
        return math.nan
    if t is bool or isinstance(v, np.bool_):
        return None
    if isinstance(v, str):
        s = v.strip()
        if not s:
            return math.nan
        try:
            return float(s)
        except ValueError:
            return None
    if isinstance(v, Real):
        return float(v)
    pd = sys.modules.get("pandas")  # not imported on the service's path: then no NA exists
    if pd is not None and (v is pd.NA or v is pd.NaT):
        return math.nan
    return None


def _checked_items(col, low: float, high: float):
    """One item column's values and where they cannot be used: (values, not a number, answered,
    problem), a problem being not a number, outside low-high or not a whole number."""
    vals, bad = _column_values(col)
    notmissing = ~np.isnan(vals)
    with np.errstate(invalid="ignore"):
        problem = bad | (notmissing & ((vals < low) | (vals > high) | (vals != np.floor(vals))))
    return vals, bad, notmissing, problem


def _item_errors(table: str, col, vals, bad, problem, low: float, high: float, ids):
    """(row, FieldError) for every row of ``problem``, naming the column and the admission."""
    if not problem.any():
        return
    raw = col.to_numpy(dtype=object)
    for i in np.flatnonzero(problem):
        reason = "not a number" if bad[i] else _item_problem(vals[i], low, high)
        yield int(i), FieldError(table, col.name, reason, _plain(raw[i]), _admission_id(ids[i]))


def _item_problem(x: float, low: int, high: int) -> str | None:
    """Reason an item value (already a non-missing float) is not a valid response, or None."""
    if not low <= x <= high:
        return f"item response outside {low}-{high}"
    if x != math.floor(x):
        return "item response is not a whole number"
    return None


def _finish(total: Any, answered: Any, n_items: int, combine: str) -> Any:
    """Combine keyed item sums into the scale score; works on floats and numpy arrays alike.

    The operation order is fixed so that the scalar and vector paths round identically.
    """
    mean = total / answered
    if combine == "mean_x10":
        return mean * 10.0
    if combine == "sum":
        return mean * n_items  # prorated: equals the plain sum when nothing is missing
    if combine == "mean":
        return mean
    raise ValueError(f"unknown combine rule {combine!r}")


def _plain(v: Any) -> Any:
    """numpy scalar -> Python scalar, so errors compare and serialise the same from both paths."""
    return v.item() if isinstance(v, np.generic) else v


def _admission_id(v: Any) -> str | None:
    pd = sys.modules.get("pandas")
    if v is None or (isinstance(v, float) and math.isnan(v)) or (pd is not None and v is pd.NA):
        return None
    return str(v)


def _conflict_reason(given: float, computed: float, answered: int, spec: _Spec) -> str:
    n = len(spec.codes)
    return (
        f"given scale score disagrees with the score from its items ({computed:.4g} from "
        f"{answered} of {n} items; tolerance {spec.tolerance:g})"
    )


_NOT_A_NUMBER_SCORE = "given scale score is not a number (and the record carries the scale's items)"


def format_items_used(used: Mapping[str, list[str]]) -> str:
    """Render {scale: [items]} as "scale:item,item;scale:item" (empty string if nothing)."""
    return ";".join(f"{k}:{','.join(v)}" for k, v in used.items())


def parse_items_used(text: str | None) -> dict[str, list[str]]:
    """Inverse of format_items_used, for reading the ``items_used`` column back."""
    if not text or (isinstance(text, float) and math.isnan(text)):
        return {}
    out: dict[str, list[str]] = {}
    for part in str(text).split(";"):
        scale, _, codes = part.partition(":")
        out[scale] = codes.split(",") if codes else []
    return out


# --------------------------------------------------------------------------------------------
# One record (API path; no pandas)
# --------------------------------------------------------------------------------------------


def score_record(record: Mapping[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    """Score one flat scoring record; returns (record with scale fields filled, errors).

    The returned dict is a copy of the record with every scale scored from items set (missing =
    None), plus ``items_used``: {scale field: [item codes used]} for the scales scored from items.
    Callers that pass the dict on to a strict schema should pop ``items_used`` first.
    """

    out = dict(record)
    errors: list[FieldError] = []
    used: dict[str, list[str]] = {}
    get = record.get
    aid = _admission_id(get("admission_id"))
    for spec in _SPECS:
        sc = spec.scale
        low, high, flip = sc.low, sc.high, sc.low + sc.high
        total = 0.0
        answered = 0
        carried = False
        invalid = False
        codes_used: list[str] = []
        for code, refl in zip(spec.codes, spec.reflected, strict=True):
            raw = get(code)
            if raw is None:
                continue
            t = type(raw)
            x = float(raw) if (t is int or t is float) else _to_float(raw)
            if x is None:
                carried = invalid = True
                errors.append(FieldError("intake", code, "not a number", raw, aid))
                continue
            if x != x:  # NaN: missing
                continue
            carried = True
            if not (low <= x <= high and x == int(x)):  # fast check; reason from the shared core
                invalid = True
                errors.append(FieldError("intake", code, _item_problem(x, low, high), raw, aid))
                continue
            total += (flip - x) if refl else x
            answered += 1
            codes_used.append(code)
        if not carried or invalid:
            continue
        given_raw = record.get(sc.field)
        given = _to_float(given_raw)
        if given is None:
            errors.append(FieldError("intake", sc.field, _NOT_A_NUMBER_SCORE, given_raw, aid))
            continue
        has_given = given == given
        if len(spec.codes) - answered > spec.max_missing:
            if not has_given:
                out[sc.field] = None
            continue
        computed = _finish(total, float(answered), len(spec.codes), sc.combine)
        if has_given and abs(given - computed) > spec.tolerance + _EPS:
            reason = _conflict_reason(given, computed, answered, spec)
            errors.append(FieldError("intake", sc.field, reason, given_raw, aid))
            continue
        out[sc.field] = computed
        used[sc.field] = codes_used
    out[ITEMS_USED] = used
    return out, errors


# --------------------------------------------------------------------------------------------
# A whole table (vectorised)
# --------------------------------------------------------------------------------------------


@dataclass
class ScoringResult:
    """What score_intake returns.

    frame: a copy of the input with scale fields scored from items (missing = NaN). A scale
        column whose item columns are present becomes float (text scores parsed); if it holds
        unparseable text it stays object, values as given, for the validator to report.
    errors: FieldErrors in row order, then scale order, then item order (same order as
        score_record gives for each row).
    items_used: str Series aligned with frame; "scale:item,item;scale:..." for the scales scored
        from items in that row, "" where none (parse_items_used reads it back).
    """

    frame: pd.DataFrame
    errors: list[FieldError] = field(default_factory=list)
    items_used: pd.Series | None = None

    def items_used_at(self, position: int) -> dict[str, list[str]]:
        """items_used of one row (by position) as the mapping score_record returns."""
        assert self.items_used is not None
        return parse_items_used(self.items_used.iloc[position])


def _column_values(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(floats with NaN for missing, mask of values that are not numbers) for one column."""
    import pandas as pd

    dtype = col.dtype
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return col.to_numpy(dtype=float, na_value=np.nan), np.zeros(len(col), dtype=bool)
    # Text columns (how validation/io.py loads CSVs) hold few distinct values: parse each once
    # with the same parser score_record uses, so both paths read text identically.
    try:
        codes, uniques = pd.factorize(col, use_na_sentinel=True)
        values = list(uniques)
    except TypeError:  # unhashable values: parse one by one
        codes, values = np.arange(len(col)), list(col.to_numpy(dtype=object))
    parsed = [_to_float(v) for v in values]
    lookup_bad = np.array([p is None for p in parsed] + [False], dtype=bool)
    lookup_val = np.array([math.nan if p is None else p for p in parsed] + [math.nan], dtype=float)
    return lookup_val[codes], lookup_bad[codes]  # code -1 (missing) hits the appended slot


def score_intake(df: pd.DataFrame) -> ScoringResult:
    """Score every scale whose items the table carries, for all rows at once.

    Item columns a table does not have count as missing items (a table may carry items for some
    scales only); a scale none of whose item columns is present is left untouched.
    """

    out = df.copy()
    n = len(df)
    ids = (
        df["admission_id"].to_numpy(dtype=object)
        if "admission_id" in df.columns
        else np.full(n, None, dtype=object)
    )
    keyed_errors: list[tuple[int, int, int, FieldError]] = []
    used_patterns: list[np.ndarray] = []
    used_specs: list[_Spec] = []

    for s_idx, spec in enumerate(_SPECS):
        sc = spec.scale
        present = [c for c in spec.codes if c in df.columns]
        if not present:
            continue
        n_items = len(spec.codes)
        low, high, flip = sc.low, sc.high, sc.low + sc.high
        keyed = np.full((n, n_items), np.nan)
        carried = np.zeros(n, dtype=bool)
        invalid = np.zeros(n, dtype=bool)
        for j, (code, refl) in enumerate(zip(spec.codes, spec.reflected, strict=True)):
            if code not in df.columns:
                continue
            col = df[code]
            vals, bad, notmissing, problem = _checked_items(col, low, high)
            for i, err in _item_errors("intake", col, vals, bad, problem, low, high, ids):
                keyed_errors.append((i, s_idx, j, err))
            carried |= notmissing | bad
            invalid |= problem
            good = notmissing & ~problem
            keyed[:, j] = np.where(good, (flip - vals) if refl else vals, np.nan)

        answered_mask = ~np.isnan(keyed)
        answered = answered_mask.sum(axis=1)
        total = np.where(answered_mask, keyed, 0.0).sum(axis=1)
        active = carried & ~invalid

        if sc.field in df.columns:
            given_col = df[sc.field]
            given, given_bad = _column_values(given_col)
            numeric_given = not given_bad.any()
            given_raw = given_col.to_numpy(dtype=object)
        else:
            given_col = given_raw = None
            given = np.full(n, np.nan)
            given_bad = np.zeros(n, dtype=bool)
            numeric_given = True

        for i in np.flatnonzero(active & given_bad):
            err = FieldError(
                "intake",
                sc.field,
                _NOT_A_NUMBER_SCORE,
                _plain(given_raw[i]),
                _admission_id(ids[i]),
            )
            keyed_errors.append((int(i), s_idx, n_items, err))
        active &= ~given_bad

        enough = (n_items - answered) <= spec.max_missing
        with np.errstate(invalid="ignore", divide="ignore"):
            computed = _finish(total, answered.astype(float), n_items, sc.combine)
        has_given = ~np.isnan(given)
        scorable = active & enough
        conflict = scorable & has_given & (np.abs(given - computed) > spec.tolerance + _EPS)
        for i in np.flatnonzero(conflict):
            reason = _conflict_reason(given[i], computed[i], int(answered[i]), spec)
            err = FieldError(
                "intake", sc.field, reason, _plain(given_raw[i]), _admission_id(ids[i])
            )
            keyed_errors.append((int(i), s_idx, n_items, err))
        fill = scorable & ~conflict
        blank = active & ~enough & ~has_given  # too few items and no score given: missing

        if numeric_given:
            result = given.copy()
            result[fill] = computed[fill]
            result[blank] = np.nan
        else:  # keep unparseable given scores as they were, for the validator to report
            result = given_raw.copy()
            result[fill] = computed[fill]
            result[blank] = np.nan
        out[sc.field] = result

        # Which items were used, as a bit pattern per row (0 = not scored from items).
        bits = (answered_mask & fill[:, None]).astype(np.int64) << np.arange(n_items)
        used_patterns.append(bits.sum(axis=1))
        used_specs.append(spec)

    keyed_errors.sort(key=lambda t: (t[0], t[1], t[2]))
    items_used = _items_used_series(used_patterns, used_specs, df.index)
    return ScoringResult(out, [e for *_, e in keyed_errors], items_used)


def _items_used_series(
    patterns: list[np.ndarray], specs: list[_Spec], index: pd.Index
) -> pd.Series:
    """Render items_used once per distinct combination of patterns (real tables have few)."""
    import pandas as pd

    n = len(index)
    if not patterns or n == 0:
        return pd.Series(pd.array([""] * n, dtype="str"), index=index, name=ITEMS_USED)
    # Fold the per-scale patterns into one compact combination id per row.
    key = np.zeros(n, dtype=np.int64)
    for pattern in patterns:
        uniq, inv = np.unique(pattern, return_inverse=True)
        key = key * len(uniq) + inv.reshape(-1)
        _, key = np.unique(key, return_inverse=True)
        key = key.reshape(-1)
    first = np.unique(key, return_index=True)[1]
    parts: list[list[str]] = []  # per scale: rendered text of each row in `first`
    for spec, pattern in zip(specs, patterns, strict=True):
        cache: dict[int, str] = {0: ""}
        rendered = []
        for p in pattern[first].tolist():
            if p not in cache:
                codes = [c for k, c in enumerate(spec.codes) if (p >> k) & 1]
                cache[p] = format_items_used({spec.scale.field: codes})
            rendered.append(cache[p])
        parts.append(rendered)
    texts = [";".join(filter(None, combo)) for combo in zip(*parts, strict=True)]
    values = pd.array(texts, dtype="str").take(key)
    return pd.Series(values, index=index, name=ITEMS_USED)


# --------------------------------------------------------------------------------------------
# Relationship Questionnaire (Bartholomew & Horowitz 1991)
# --------------------------------------------------------------------------------------------


def _rq_values(*ratings: Any) -> list[float] | None:
    vals = [_to_float(r) for r in ratings]
    if any(v is None or v != v for v in vals):
        return None
    return vals  # type: ignore[return-value]


def attachment_style(secure: Any, fearful: Any, preoccupied: Any, dismissing: Any) -> str | None:
    """The prototype rated highest; None if any rating is missing.

    Tie rule: when two or more prototypes share the highest rating the style is "undetermined".
    Why not a fixed order: any order would bias the style distribution towards whichever prototype
    comes first, and the RQ gives no basis for ranking them (Bartholomew & Horowitz 1991 assign a
    category only from a single highest rating).
    """
    vals = _rq_values(secure, fearful, preoccupied, dismissing)
    if vals is None:
        return None
    top = max(vals)
    winners = [s for s, v in zip(ATTACHMENT_STYLES, vals, strict=True) if v == top]
    return winners[0] if len(winners) == 1 else UNDETERMINED


def model_of_self(secure: Any, fearful: Any, preoccupied: Any, dismissing: Any) -> float:
    """(secure + dismissing) - (preoccupied + fearful); NaN if any rating is missing."""
    return _rq_contrast((secure, fearful, preoccupied, dismissing), plus=(0, 3), minus=(2, 1))


def model_of_others(secure: Any, fearful: Any, preoccupied: Any, dismissing: Any) -> float:
    """(secure + preoccupied) - (dismissing + fearful); NaN if any rating is missing."""
    return _rq_contrast((secure, fearful, preoccupied, dismissing), plus=(0, 2), minus=(3, 1))


def _rq_contrast(ratings: tuple, plus: tuple[int, int], minus: tuple[int, int]) -> float:
    """(rating plus[0] + rating plus[1]) - (rating minus[0] + rating minus[1]), ratings in the
    order secure, fearful, preoccupied, dismissing; NaN if any is missing."""
    vals = _rq_values(*ratings)
    if vals is None:
        return math.nan
    return (vals[plus[0]] + vals[plus[1]]) - (vals[minus[0]] + vals[minus[1]])


def score_attachment(df: pd.DataFrame) -> pd.DataFrame:
    """Vectorised RQ: columns attach_style (str), model_of_self, model_of_others (float).

    Same rules as the scalar functions; a missing prototype column counts as missing for every row.
    """
    import pandas as pd

    n = len(df)
    cols = []
    for name in RQ_PROTOTYPES:
        if name in df.columns:
            cols.append(pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float))
        else:
            cols.append(np.full(n, np.nan))
    m = np.column_stack(cols) if n else np.empty((0, 4))
    complete = ~np.isnan(m).any(axis=1)
    s, f, p, d = (m[:, k] for k in range(4))
    self_model = np.where(complete, (s + d) - (p + f), np.nan)
    others_model = np.where(complete, (s + p) - (d + f), np.nan)
    style = np.full(n, None, dtype=object)
    if complete.any():
        mc = m[complete]
        is_top = mc == mc.max(axis=1, keepdims=True)
        unique_top = is_top.sum(axis=1) == 1
        names = np.array(ATTACHMENT_STYLES, dtype=object)[is_top.argmax(axis=1)]
        style[complete] = np.where(unique_top, names, UNDETERMINED)
    return pd.DataFrame(
        {
            "attach_style": pd.Series(style, index=df.index, dtype="str"),
            "model_of_self": self_model,
            "model_of_others": others_model,
        },
        index=df.index,
    )


# --------------------------------------------------------------------------------------------
# WAI-S (Tracey & Kokotovic 1989): the outcome form
# --------------------------------------------------------------------------------------------


def score_wai(alliance_df: pd.DataFrame) -> pd.Series:
    """WAI-S item mean per rating row, after reverse-scoring WAI_S.reflected items as 8 - x.

    A rating with more than WAI_MAX_MISSING missing items is void (NaN), per the data contract;
    item columns absent from the table count as missing. Item values that are not whole numbers
    within 1-7 raise DataError (the label must never be built from impossible responses).
    """
    import pandas as pd

    n = len(alliance_df)
    codes = WAI_S.item_codes()
    flip = WAI_S.low + WAI_S.high
    ids = (
        alliance_df["admission_id"].to_numpy(dtype=object)
        if "admission_id" in alliance_df.columns
        else np.full(n, None, dtype=object)
    )
    keyed = np.full((n, len(codes)), np.nan)
    errors: list[FieldError] = []
    for j, (item, code) in enumerate(zip(WAI_S.items, codes, strict=True)):
        if code not in alliance_df.columns:
            continue
        col = alliance_df[code]
        vals, bad, _, problem = _checked_items(col, WAI_S.low, WAI_S.high)
        problem[np.flatnonzero(problem)[100:]] = False  # the first 100 are enough to report
        low, high = WAI_S.low, WAI_S.high
        errors += [e for _, e in _item_errors("alliance", col, vals, bad, problem, low, high, ids)]
        keyed[:, j] = (flip - vals) if item in WAI_S.reflected else vals
    if errors:
        raise DataError(errors)
    answered = (~np.isnan(keyed)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(np.isnan(keyed), 0.0, keyed).sum(axis=1) / answered
    void = (len(codes) - answered) > WAI_MAX_MISSING
    return pd.Series(np.where(void, np.nan, mean), index=alliance_df.index, name=WAI_S.field)
