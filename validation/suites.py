"""Great Expectations suites for the four tables, built in code from the field catalog.

Why a long frame: GX 1.24 costs about 35 ms per *expectation* (graph building and configuration
serialisation), so one expectation per field and rule (~290 for intake, ≈ 12 s) was far too slow.
Each table is therefore validated over a *cell frame*, with a column per rule holding the cell's
value where that rule applies and nothing elsewhere (map expectations skip missing values). About
a dozen expectations per table then check every field, and each failure still comes back with its
field, row id, row number and value.

Two kinds of cells (national scale, issue 10 item 8; docs/design.md): *value cells*, one per
distinct (field, text) of the table, for every rule that depends on the text alone (a failure is
then reported on every row holding that text), and *row cells*, one per row for each rule that
compares rows or fields (unique, one rating per key, not above, not before admission). One GX run
over the value cells, one per chunk of ``CHUNK_ROWS`` rows over the row cells.

Cell-frame columns (all derived from the catalog):

- ``__row_id__`` (admission_id; counsellor_id for counsellors), ``__row__`` (0-based data row; CSV
  line = row + 2), ``__cell__``, ``field``, ``text`` (the value's text form, validation.rules).
- ``required_value``: the text of required fields (``(optional)`` for the others): not null.
- ``id_text`` / ``integer_text`` / ``number_text`` / ``boolean_text`` / ``date_text``: the text of
  fields of that kind; regex (or strftime) checks, so "abc" in an integer column is a named failure.
- ``code_cell``: ``field=value`` for coded fields, in the set of every allowed ``field=code``.
- ``num_value`` with ``num_min`` / ``num_max``: the parsed number and its field's range (missing
  where the text did not parse: the type rule already reported it). ``date_value``: parsed date.
- ``ref_intake`` / ``ref_counsellors`` with ``found_in_*``: references (value cells).
- Row cells: ``unique_key``; ``row_num_value`` with ``not_above_value``; ``row_date_value`` with
  ``not_before_value``; ``key_*`` (one rating per admission_id, week, rater).

Column presence (required columns, unknown or misspelt columns) is checked in Python on the
table's header: it is a property of the header, not of cells.
"""

from __future__ import annotations

import difflib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.catalog import TABLES, Field
from features.errors import FieldError
from validation.rules import (
    DATE_FORMAT,
    EARLIEST,
    NOT_ABOVE,
    TYPE_PATTERNS,
    TYPE_WORDS,
    latest_date,
    range_words,
    text_form,
)

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

# Great Expectations imports PySpark when the spark extra is installed; PySpark then warns about
# pandas 3 although GX uses only pandas here. Keep that noise out of validation and training output.
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)

ROW_ID = {"intake": "admission_id", "counsellors": "counsellor_id"}  # default: admission_id
# Parent of each id field that must exist in another table (data contract: "must exist in ...").
REFERENCES: dict[tuple[str, str], tuple[str, str]] = {
    ("alliance", "admission_id"): ("intake", "admission_id"),
    ("episodes", "admission_id"): ("intake", "admission_id"),
    ("intake", "counsellor_id"): ("counsellors", "counsellor_id"),
}
# Rows that must be unique on a combination of fields, reported on the last field of the key.
COMPOUND_KEYS: dict[str, tuple[str, ...]] = {"alliance": ("admission_id", "week", "rater")}
# Dates that may not precede the intake admission_date of the same admission.
NOT_BEFORE_ADMISSION: dict[str, tuple[str, ...]] = {"episodes": ("discharge_date",)}

INDEX_COLUMNS = ["__row_id__", "__row__", "__cell__", "field"]
RESULT_FORMAT = {"result_format": "COMPLETE", "unexpected_index_column_names": INDEX_COLUMNS}
OPTIONAL_MARK = "(optional)"
TYPO_CUTOFF = 0.85  # an unknown column this close to a missing contract field is a misspelling
KINDS_WITH_TEXT = ("integer", "number", "boolean")


def row_id_name(table: str) -> str:
    return ROW_ID.get(table, "admission_id")


@dataclass
class Issue:
    """One FieldError plus what the report needs to group it (rule) and find the row."""

    error: FieldError
    rule: str
    row_id: str | None = None
    row: int | None = None


@dataclass
class TableResult:
    table: str
    rows: int
    expectations: int = 0
    failed_expectations: int = 0
    issues: list[Issue] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Text forms and parsing (vectorised; same rules as validation.rules / validation.record)


def text_series(col: pd.Series) -> pd.Series:
    """The text form of a column (object dtype, None for missing)."""
    if pd.api.types.is_string_dtype(col):
        out = col.astype(object)
        return out.where(out.notna() & (out != ""), None)
    return pd.Series([text_form(v) for v in col], index=col.index, dtype=object)


def _parse_numbers(text: pd.Series, kind: str) -> pd.Series:
    s = text.astype("str")
    ok = s.str.fullmatch(TYPE_PATTERNS[kind]).fillna(False).astype(bool)
    return pd.to_numeric(s.where(ok), errors="coerce").astype("float64")


def _parse_dates(text: pd.Series) -> pd.Series:
    return pd.to_datetime(text, format=DATE_FORMAT, errors="coerce").astype("datetime64[us]")


# --------------------------------------------------------------------------------------------
# Column presence


def column_issues(table: str, columns) -> list[Issue]:
    fields = TABLES[table]
    known = {f.name for f in fields}
    present = set(map(str, columns))
    missing = [f.name for f in fields if f.name not in present]
    issues = [
        Issue(FieldError(table, f.name, "required column is missing", None, None, True), "column")
        for f in fields
        if f.required and f.name not in present
    ]
    for col in map(str, columns):
        if col in known:
            continue
        close = difflib.get_close_matches(col, missing, n=1, cutoff=TYPO_CUTOFF)
        if close:
            reason = f"unknown column; looks like a misspelling of {close[0]!r}"
            issues.append(Issue(FieldError(table, col, reason, None, None, True), "column"))
        else:
            reason = "column is not in the data contract; it is ignored"
            issues.append(Issue(FieldError(table, col, reason, None, None, False), "column"))
    return issues


# --------------------------------------------------------------------------------------------
# Cell frames
#
# Two kinds of cells, so that the work grows with the number of *distinct* values rather than
# with rows x fields (issue 10 item 8, national scale):
#
# - value cells: one per distinct (field, text) of a table. Every rule whose verdict depends only
#   on the cell's own text (required, id pattern, type, code, range, date format and range, and
#   the references, which look the text up in another table) is checked once per distinct text;
#   a failure is then reported on every row holding that text (``Values.rows``). At 50,000
#   admissions a 10,000-row chunk of intake had 402,884 cells but 13,798 distinct (field, text)
#   pairs (10,000 of them the admission ids), the alliance chunk 144,347 and 1,954.
# - row cells: one per row for the rules that compare rows or fields (unique, one rating per
#   admission, week and rater, not above another field, not before the admission date), with only
#   the columns of those rules filled; a few cells per row instead of about 40.


@dataclass
class Context:
    """What one table's rules need from the other tables."""

    ids: dict[str, list[str]] = field(default_factory=dict)  # table -> its row ids
    id_sets: dict[str, frozenset[str]] = field(default_factory=dict)
    admission_dates: pd.Series | None = None  # intake admission_date by admission_id


def build_context(tables: dict[str, pd.DataFrame]) -> Context:
    ctx = Context()
    for table, df in tables.items():
        rid = row_id_name(table)
        if table in ("intake", "counsellors") and rid in df.columns:
            ctx.id_sets[table] = frozenset(text_series(df[rid]).dropna())
            ctx.ids[table] = sorted(ctx.id_sets[table])
    intake = tables.get("intake")
    if intake is not None and {"admission_id", "admission_date"} <= set(intake.columns):
        dates = _parse_dates(text_series(intake["admission_date"]))
        dates.index = text_series(intake["admission_id"]).to_numpy()
        ctx.admission_dates = dates[~dates.index.duplicated() & dates.index.notna()]
    return ctx


def _distinct_texts(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, texts): per row the index of its text form in ``texts`` (-1: missing), and the
    distinct texts (object). Text columns are factorised as they are (an arrow-backed column is
    never turned into 300,000 Python strings); an empty string counts as missing."""
    if not pd.api.types.is_string_dtype(col):
        col = text_series(col)
    codes, uniques = pd.factorize(col.reset_index(drop=True), use_na_sentinel=True)
    texts = np.asarray(uniques, dtype=object)
    blank = np.flatnonzero(texts == "")
    if blank.size:
        b = int(blank[0])
        codes = np.where(codes == b, -1, np.where(codes > b, codes - 1, codes))
        texts = np.delete(texts, b)
    return np.asarray(codes, dtype=np.int64), texts


def _frame(table: str, parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """Parts (dicts of equal-length arrays) -> one frame with every column of the table's suite."""
    sizes = [len(p["__row__"]) for p in parts]
    data = {}
    for col in _cell_columns(table):
        if col in ("num_value", "num_min", "num_max", "not_above_value", "row_num_value"):
            fill = lambda k: np.full(k, np.nan)  # noqa: E731
        elif col in ("date_value", "not_before_value", "row_date_value"):
            fill = lambda k: np.full(k, np.datetime64("NaT"), dtype="datetime64[us]")  # noqa: E731
        elif col == "__row__":
            fill = lambda k: np.zeros(k, dtype="int64")  # noqa: E731
        elif col == "required_value":
            fill = lambda k: np.full(k, OPTIONAL_MARK, dtype=object)  # noqa: E731
        else:
            fill = lambda k: np.full(k, None, dtype=object)  # noqa: E731
        chunks = [p[col] if col in p else fill(k) for p, k in zip(parts, sizes, strict=True)]
        data[col] = np.concatenate(chunks) if chunks else fill(0)
        if data[col].dtype.kind == "M":
            data[col] = data[col].astype("datetime64[us]")
    # Plain object columns: pandas 3 would infer its arrow-backed str dtype, and GX filters the
    # frame once per metric; arrow "take" made that about 3x slower.
    cells = pd.DataFrame(
        {
            k: pd.Series(v, dtype=object) if v.dtype == object else pd.Series(v)
            for k, v in data.items()
        }
    )
    cells["__cell__"] = np.arange(len(cells), dtype="int64")
    return cells


@dataclass
class Values:
    """The value cells of a table and the way back from a value cell to its rows."""

    cells: pd.DataFrame
    codes: dict[str, np.ndarray]  # field -> per-row index of the row's distinct text (-1 missing)
    offsets: dict[str, int]  # field -> __cell__ of its first distinct text
    missing_cell: dict[str, int]  # required field -> __cell__ of its missing-value cell
    row_ids: np.ndarray  # per row (object; None when the table has no row-id column)

    def rows(self, fname: str, cell: int) -> np.ndarray:
        """Row positions holding the text of value cell ``cell`` of field ``fname``."""
        if self.missing_cell.get(fname) == cell:
            return np.flatnonzero(self.codes[fname] < 0)
        return np.flatnonzero(self.codes[fname] == cell - self.offsets[fname])


def _row_ids(table: str, df: pd.DataFrame) -> np.ndarray:
    rid_col = row_id_name(table)
    if rid_col not in df.columns:
        return np.full(len(df), None, dtype=object)
    return text_series(df[rid_col].reset_index(drop=True)).to_numpy(dtype=object)


def value_cells(table: str, df: pd.DataFrame, ctx: Context) -> Values:
    """One cell per distinct (field, text) of ``df``, with the value rules' columns."""
    n = len(df)
    row_ids = _row_ids(table, df)
    parts, codes_by, offsets, missing_cell = [], {}, {}, {}
    start = 0
    for f in TABLES[table]:
        if f.name not in df.columns:
            continue
        codes, texts = _distinct_texts(df[f.name])
        first = np.full(len(texts), n, dtype=np.int64)
        present = codes >= 0
        np.minimum.at(first, codes[present], np.flatnonzero(present))
        if f.required and (~present).any():  # the missing value is a cell of its own
            missing_cell[f.name] = start + len(texts)
            texts = np.append(texts, None)
            first = np.append(first, int(np.flatnonzero(~present)[0]))
        k = len(texts)
        codes_by[f.name], offsets[f.name] = codes, start
        part: dict[str, Any] = {
            "__row_id__": row_ids[first] if n else np.full(k, None, dtype=object),
            "__row__": first,
            "field": np.full(k, f.name, dtype=object),
            "text": texts,
            "required_value": texts if f.required else np.full(k, OPTIONAL_MARK, dtype=object),
        }
        if f.pattern:
            part["id_text"] = texts
        if f.kind in KINDS_WITH_TEXT:
            part[f"{f.kind}_text"] = texts
        if f.codes:
            part["code_cell"] = np.array(
                [None if t is None else f"{f.name}={t}" for t in texts], dtype=object
            )
        if f.kind in ("integer", "number"):
            part["num_value"] = _parse_numbers(pd.Series(texts), f.kind).to_numpy()
            if f.minimum is not None:
                part["num_min"] = np.full(k, float(f.minimum))
            if f.maximum is not None:
                part["num_max"] = np.full(k, float(f.maximum))
        if f.kind == "date":
            part["date_text"] = texts
            part["date_value"] = _parse_dates(pd.Series(texts)).to_numpy()
        ref = REFERENCES.get((table, f.name))
        if ref and ref[0] in ctx.ids:
            parent_ids = ctx.id_sets[ref[0]]
            part[f"ref_{ref[0]}"] = texts
            part[f"found_in_{ref[0]}"] = np.array(
                [t if t in parent_ids else None for t in texts], dtype=object
            )
        parts.append(part)
        start += k
    return Values(_frame(table, parts), codes_by, offsets, missing_cell, row_ids)


def row_cells(
    table: str, df: pd.DataFrame, ctx: Context, row_numbers: np.ndarray | None = None
) -> pd.DataFrame:
    """One cell per row of ``df`` for each rule that compares rows or fields. ``row_numbers``:
    the rows' positions in the whole table when df is a chunk of it (default 0..n-1)."""
    df = df.reset_index(drop=True)
    n = len(df)
    rows = np.arange(n, dtype="int64") if row_numbers is None else np.asarray(row_numbers, "int64")
    row_ids = _row_ids(table, df)
    by_name = {f.name: f for f in TABLES[table] if f.name in df.columns}
    texts = {}

    def text(name: str) -> np.ndarray:
        if name not in texts:
            texts[name] = text_series(df[name]).to_numpy(dtype=object)
        return texts[name]

    def number(name: str) -> np.ndarray:
        return _parse_numbers(pd.Series(text(name)), by_name[name].kind).to_numpy()

    parts = []
    for f in by_name.values():
        part: dict[str, Any] = {}
        if f.unique:
            part["unique_key"] = text(f.name)
        other = NOT_ABOVE.get(f.name)
        if other in by_name and by_name[other].kind in ("integer", "number"):
            part["row_num_value"] = number(f.name)
            part["not_above_value"] = number(other)
        if f.name in NOT_BEFORE_ADMISSION.get(table, ()) and ctx.admission_dates is not None:
            part["row_date_value"] = _parse_dates(pd.Series(text(f.name))).to_numpy()
            mapped = pd.Series(row_ids).map(ctx.admission_dates)
            part["not_before_value"] = mapped.astype("datetime64[us]").to_numpy()
        key = COMPOUND_KEYS.get(table)
        if key and f.name == key[-1] and all(k in by_name for k in key):
            for k in key:
                is_num = by_name[k].kind in ("integer", "number")
                part[f"key_{k}"] = number(k) if is_num else text(k)
        if not part:
            continue
        t = text(f.name)
        part |= {
            "__row_id__": row_ids,
            "__row__": rows,
            "field": np.full(n, f.name, dtype=object),
            "text": t,
        }
        keep = np.ones(n, dtype=bool) if f.required else pd.notna(t)  # empty optional: no rule
        parts.append({k: v[keep] for k, v in part.items()})
    if not parts:
        return _frame(table, [])
    return _frame(table, parts)


def _cell_columns(table: str) -> list[str]:
    cols = ["__row_id__", "__row__", "field", "text", "required_value", "id_text"]
    cols += [f"{k}_text" for k in KINDS_WITH_TEXT] + ["date_text", "date_value"]
    cols += ["code_cell", "num_value", "num_min", "num_max", "unique_key"]
    cols += ["row_num_value", "not_above_value"]
    for (t, _), (p, _) in REFERENCES.items():
        if t == table:
            cols += [f"ref_{p}", f"found_in_{p}"]
    if table in NOT_BEFORE_ADMISSION:
        cols += ["row_date_value", "not_before_value"]
    cols += [f"key_{k}" for k in COMPOUND_KEYS.get(table, ())]
    return cols


# --------------------------------------------------------------------------------------------
# Suites


def _meta(rule: str, column: str, **extra) -> dict:
    return {"rule": rule, "column": column, "blocking": True, **extra}


def _at_least(gxe, a: str, b: str, rule: str):
    """Column ``a`` >= column ``b`` wherever both are present."""
    return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A=a,
        column_B=b,
        or_equal=True,
        ignore_row_if="either_value_is_missing",
        meta=_meta(rule, "text"),
    )


def build_expectations(table: str, ctx: Context) -> list:
    """The expectations of one table: every rule, for every field, from the catalog."""
    import great_expectations.expectations as gxe

    fields = TABLES[table]
    out: list = [
        gxe.ExpectColumnValuesToNotBeNull(column="required_value", meta=_meta("required", "text"))
    ]
    patterns = {f.pattern for f in fields if f.pattern}
    for pattern in sorted(patterns):  # one id pattern in contract v1
        out.append(
            gxe.ExpectColumnValuesToMatchRegex(
                column="id_text", regex=pattern, meta=_meta("pattern", "id_text")
            )
        )
    for kind in KINDS_WITH_TEXT:
        if any(f.kind == kind for f in fields):
            out.append(
                gxe.ExpectColumnValuesToMatchRegex(
                    column=f"{kind}_text", regex=TYPE_PATTERNS[kind], meta=_meta("type", "text")
                )
            )
    if any(f.codes for f in fields):
        allowed = [f"{f.name}={c}" for f in fields if f.codes for c in f.codes]
        out.append(
            gxe.ExpectColumnValuesToBeInSet(
                column="code_cell", value_set=allowed, meta=_meta("code", "text")
            )
        )
    if any(f.minimum is not None for f in fields):
        out.append(_at_least(gxe, "num_value", "num_min", "range"))
    if any(f.maximum is not None for f in fields):
        out.append(_at_least(gxe, "num_max", "num_value", "range"))
    if any(f.kind == "date" for f in fields):
        out.append(
            gxe.ExpectColumnValuesToMatchStrftimeFormat(
                column="date_text", strftime_format=DATE_FORMAT, meta=_meta("type", "text")
            )
        )
        out.append(
            gxe.ExpectColumnValuesToBeBetween(
                column="date_value",
                min_value=pd.Timestamp(EARLIEST),
                max_value=pd.Timestamp(latest_date()),
                mostly=1.0,
                meta=_meta("date_range", "text"),
            )
        )
    if any(f.unique for f in fields):
        out.append(
            gxe.ExpectColumnValuesToBeUnique(column="unique_key", meta=_meta("unique", "text"))
        )
    for (t, _), (parent, _) in REFERENCES.items():
        if t == table and parent in ctx.ids:
            # Equality with the joined parent id rather than ExpectColumnValuesToBeInSet with
            # the id set: GX re-serialises an expectation's kwargs hundreds of times per run, and
            # a 5,000-id value_set alone cost ~6 s.
            out.append(
                gxe.ExpectColumnPairValuesToBeEqual(
                    column_A=f"ref_{parent}",
                    column_B=f"found_in_{parent}",
                    ignore_row_if="both_values_are_missing",
                    meta=_meta(f"in_{parent}", "text", parent=parent),
                )
            )
    if any(f.name in NOT_ABOVE for f in fields):
        out.append(_at_least(gxe, "not_above_value", "row_num_value", "not_above"))
    if table in NOT_BEFORE_ADMISSION and ctx.admission_dates is not None:
        out.append(_at_least(gxe, "row_date_value", "not_before_value", "not_before_admission"))
    if table in COMPOUND_KEYS:
        key = COMPOUND_KEYS[table]
        out.append(
            gxe.ExpectCompoundColumnsToBeUnique(
                column_list=[f"key_{k}" for k in key],
                ignore_row_if="any_value_is_missing",
                meta=_meta("one_per_key", "text", key=list(key)),
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Results -> FieldErrors


def _fmt(v: Any) -> str:
    if isinstance(v, pd.Timestamp):
        return v.date().isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _reason(f: Field, rule: str, meta: dict, cells: pd.DataFrame, cell: int) -> str:
    if rule == "required":
        return "required value is missing"
    if rule == "pattern":
        return "not a valid id (" + range_words(f) + ")"
    if rule == "code":
        return "not an allowed code (" + range_words(f) + ")"
    if rule == "type":
        return f"wrong type: expected {TYPE_WORDS[f.kind]}"
    if rule in ("range", "date_range"):
        return "out of range (" + range_words(f) + ")"
    if rule == "unique":
        return f"duplicate {f.name}; must be unique"
    if rule.startswith("in_"):
        return f"{f.name} not found in {meta['parent']}"
    if rule == "not_above":
        other = NOT_ABOVE[f.name]
        return f"must not be above {other} ({_fmt(cells.at[cell, 'not_above_value'])})"
    if rule == "not_before_admission":
        return f"before the admission_date in intake ({_fmt(cells.at[cell, 'not_before_value'])})"
    if rule == "one_per_key":
        return "more than one row for the same (" + ", ".join(meta["key"]) + ")"
    return rule


def issues_from_result(
    table: str, cells: pd.DataFrame, res, values: Values | None = None, texts=None
) -> tuple[list[Issue], int]:
    """FieldErrors of one GX run. ``values``: the run was over value cells, and a failing cell is
    reported on every row holding its text. ``texts(field, rows)``: the texts of a field at whole-
    table row positions (the one-rating-per-key rule names the whole key)."""
    by_name = {f.name: f for f in TABLES[table]}
    rid_name = row_id_name(table)
    issues: list[Issue] = []
    failed = 0
    text = cells["text"].to_numpy()
    for r in res.results:
        if r.success:
            continue
        failed += 1
        meta = r.expectation_config.meta or {}
        rule = meta.get("rule", r.expectation_config.type)
        exc = r.exception_info or {}
        if exc.get("raised_exception"):
            reason = f"check {rule} could not run: {exc.get('exception_message')}"
            issues.append(Issue(FieldError(table, "*", reason, None, None, True), rule))
            continue
        for entry in (r.result or {}).get("unexpected_index_list") or []:
            cell, row = int(entry["__cell__"]), int(entry["__row__"])
            fname = str(entry["field"])
            f = by_name[fname]
            value = text[cell]
            value = None if value is None or value != value else value
            reason = _reason(f, rule, meta, cells, cell)
            if values is not None:
                rows = values.rows(fname, cell)
                rids = values.row_ids[rows]
            else:
                rows = np.array([row])
                rids = np.array([entry.get("__row_id__")], dtype=object)
            if rule == "one_per_key" and texts is not None:
                value = ", ".join(f"{k}={texts(k, rows)[0]}" for k in meta["key"])
            for row, rid in zip(rows.tolist(), rids, strict=True):
                rid = None if rid is None or rid != rid else str(rid)
                admission_id = rid if rid_name == "admission_id" else None
                why = reason + f" [row {row}]"
                if admission_id is None and rid is not None:
                    why += f" [{rid_name}={rid}]"
                err = FieldError(table, fname, why, value, admission_id, True)
                issues.append(Issue(err, rule, rid, row))
    issues.sort(key=lambda i: (i.row if i.row is not None else -1, i.error.field))
    return issues, failed


# --------------------------------------------------------------------------------------------
# Running


def _gx_context(docs_dir: Path | None):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    if docs_dir is not None:
        ctx.add_data_docs_site(
            "local",
            {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    # GX's filesystem store refuses a relative base_directory (ValueError).
                    "base_directory": str(Path(docs_dir).resolve()),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return ctx


# Data rows per GX run of the row cells (value cells: one run per table). A row has at most a
# few row cells (intake: its admission_id and age_first_use; alliance: one rating key), so
# 200,000 rows make a frame of at most about 400,000 cells. Each chunk holds whole row-id groups
# (``_chunks``), so the uniqueness rules still see every duplicate.
CHUNK_ROWS = 200_000


def _chunks(table: str, df: pd.DataFrame) -> list[np.ndarray]:
    """Row positions of each chunk: rows partitioned by a hash of their row id, so that rows sharing
    an id (what the unique and one-per-key rules look for; every key includes the row id) always
    land in the same chunk."""
    n = len(df)
    k = -(-n // CHUNK_ROWS)
    if k <= 1:
        return [np.arange(n)]
    rid = row_id_name(table)
    key = text_series(df[rid]) if rid in df.columns else pd.Series(np.arange(n), dtype=object)
    key = key.fillna("<missing>").astype(str).reset_index(drop=True)
    h = pd.util.hash_pandas_object(key, index=False).to_numpy() % np.uint64(k)
    return [idx for i in range(k) if len(idx := np.flatnonzero(h == i))]


def run_suites(tables: dict[str, pd.DataFrame], docs_dir: Path | None = None) -> list[TableResult]:
    """Validate every table given: one GX run over its value cells and one per chunk of its row
    cells (module docstring); optionally build Data Docs in docs_dir."""
    import great_expectations as gx

    gctx = _gx_context(docs_dir)
    source = gctx.data_sources.add_pandas("contract")
    ctx = build_context(tables)
    results: list[TableResult] = []
    for table in TABLES:
        if table not in tables:
            continue
        df = tables[table].reset_index(drop=True)
        exps = build_expectations(table, ctx)
        suite = gctx.suites.add(gx.ExpectationSuite(name=table, expectations=exps))
        batch_def = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe(table)
        vd = gctx.validation_definitions.add(
            gx.ValidationDefinition(name=table, data=batch_def, suite=suite)
        )

        def texts(name: str, rows: np.ndarray, df=df) -> list:
            return text_series(df[name].iloc[rows]).tolist()

        issues: list[Issue] = []
        failed_exps: set[int] = set()
        values = value_cells(table, df, ctx)
        res = vd.run(batch_parameters={"dataframe": values.cells}, result_format=RESULT_FORMAT)
        issues += issues_from_result(table, values.cells, res, values=values)[0]
        failed_exps |= {i for i, r in enumerate(res.results) if not r.success}
        del values, res
        for idx in _chunks(table, df):
            chunk = df if len(idx) == len(df) else df.iloc[idx]
            cells = row_cells(table, chunk, ctx, idx)
            if not len(cells):
                continue
            res = vd.run(batch_parameters={"dataframe": cells}, result_format=RESULT_FORMAT)
            issues += issues_from_result(table, cells, res, texts=texts)[0]
            failed_exps |= {i for i, r in enumerate(res.results) if not r.success}
            del cells, res
        issues.sort(key=lambda i: (i.row if i.row is not None else -1, i.error.field))
        col_issues = column_issues(table, df.columns)
        failed = len(failed_exps) + any(i.error.blocking for i in col_issues)
        results.append(TableResult(table, len(df), len(exps), failed, col_issues + issues))
    if docs_dir is not None:
        gctx.build_data_docs(site_names=["local"])
    return results


# --------------------------------------------------------------------------------------------
# Training-set sanity


def training_sanity(labels: pd.Series, cfg=None) -> list[FieldError]:
    """Enough labelled clients, both classes present, each at least cfg.min_class_count.

    labels: the 0/1 low_alliance Series indexed by admission_id (features.labels.build_labels);
    missing entries are unlabelled clients and are not counted.
    """
    from features.settings import ValidationConfig

    cfg = cfg or ValidationConfig()
    errors: list[FieldError] = []
    s = pd.Series(labels).dropna()
    bad = s[~s.isin([0, 1])]
    for aid, v in bad.items():
        errors.append(
            FieldError("alliance", "low_alliance", "label is not 0 or 1", _py(v), str(aid))
        )
    s = s[s.isin([0, 1])]
    n = int(len(s))
    if n < cfg.min_labelled:
        errors.append(
            FieldError(
                "alliance",
                "low_alliance",
                f"only {n} labelled clients; training needs at least {cfg.min_labelled}",
                n,
            )
        )
    for cls in (0, 1):
        k = int((s == cls).sum())
        if k < cfg.min_class_count:
            what = "absent" if k == 0 else f"only {k} clients"
            errors.append(
                FieldError(
                    "alliance",
                    "low_alliance",
                    f"class {cls} {what}; training needs at least {cfg.min_class_count}",
                    k,
                )
            )
    return errors


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
