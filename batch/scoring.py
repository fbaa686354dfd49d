"""Chunked batch scoring with explanations (the Python API behind ``python -m pipelines.score``).

Why chunks: a batch may be larger than memory, so the input is read in chunks (CSV through pandas'
``chunksize``, Parquet through ``pyarrow.ParquetFile.iter_batches``), each chunk is validated,
scored and explained, and its rows are appended to the output at once. Only the counsellors table
(for a data folder), the model and the set of admission_ids already scored (to refuse duplicates)
stay in memory.

Row validation (``validation.rows.RowValidator``, shared with the logged pyfunc) reuses the
one-record rules of ``validation.record`` (the pydantic model the API uses), in two steps so that
big files stay fast:

1. A column-wise screen: each distinct value of each column is checked once with the *same*
   pydantic field validator the record model uses (``validation.record.annotation``), plus the
   record's cross-field rule (``age_first_use`` not above ``age``) and required-field presence.
   Most columns hold few distinct values, so this costs far less than one model call per row.
2. Only rows the screen flags go through ``validation.record.check_record``, whose errors (field,
   readable reason, value) are what the rejects file shows: the same words the API returns.

A row that fails never stops the others. Rows whose questionnaire items contradict their own scale
score (features.scoring) and repeated admission_ids are rejected too.

Scores come from the registered model's own ``ScoringModel`` (the ``artifacts/scorer`` folder of
the logged pyfunc), through ``models.scoring.predict.frame_to_matrix`` and ``ScoringModel.contributions``:
the path the pyfunc itself takes (``models.scoring.predict.score_frame``), without its per-call overhead.

Explanations come from the project's one explanation path (``models.scoring.explain``), as in the API:
every driver group's contribution in **probability points on the 0-1 risk scale** (0.05 = five
percentage points), measured from the typical client, so that ``points_<group>`` over all groups
add up to risk - typical_risk, assessed or not; ``not_assessed`` names the groups none of whose
fields was on the record; ``driver_1..k`` repeat the k largest for a quick read.

Weekly early warning (issue 19, ``as_of_week=K``, ``--as-of-week K``): a data folder's alliance
table is read once, in chunks, into one row of WAI-S item means per admission (weeks 1-3 x client,
counsellor: ``features.weekly.rating_tensor``, scored as the label scores them); each chunk is then
updated with the ratings of weeks <= K through ``models.scoring.weekly.update_matrix``, the code the
API runs. The output then has the API's weekly columns (``weekly_output_columns``): ``risk`` is the
updated risk (``band`` its band) beside ``risk_at_admission`` and ``band_at_admission``;
``risk_low``/``risk_high`` the updated risk's 95% uncertainty interval, ``risk_low_at_admission``/
``risk_high_at_admission`` the admission model's (around ``risk_at_admission``) and
``risk_remaining_low``/``risk_remaining_high`` that of ``risk_remaining`` (a row without a rating:
the admission interval; NaN where none is stated); the drivers and ``points_<group>`` are the updated ones with the
``ratings`` group, adding up to risk - typical_risk (the typical client rated typically).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.build import scoring_frame, typed_records
from features.catalog import (
    COUNSELLOR_PREFIX,
    DRIVER_GROUPS,
    SCORING_BY_NAME,
    TABLES,
)
from models.lifecycle.resolve import LoadedModel
from validation.rows import RowValidator

REJECT_COLUMNS = ["row", "admission_id", "table", "field", "value", "reason"]
SUFFIXES = (".csv", ".parquet")


class InputError(Exception):
    """The input is missing, unreadable or lacks required columns (CLI exit 2)."""


class NoWeeklyModels(Exception):
    """``as_of_week`` with a model trained before issue 19 (CLI exit 3, a model problem)."""


# --------------------------------------------------------------------------------------------
# Reading


@dataclass
class Source:
    """A flat scoring-record file, or a data folder (intake + optional counsellors)."""

    path: Path
    kind: str  # "file" or "dir"
    data_file: Path  # the file read in chunks (the intake table for a folder)
    columns: list[str]
    total_rows: int | None  # Parquet knows; CSV does not (progress then counts bytes)
    counsellors: pd.DataFrame | None = None

    @property
    def fmt(self) -> str:
        return self.data_file.suffix


def open_source(path: str | Path) -> Source:
    """Inspect the input (without reading it all). Raises InputError."""
    from validation.io import TableLoadError, read_table, table_path

    path = Path(path)
    if not path.exists():
        raise InputError(f"input {path} does not exist")
    counsellors = None
    if path.is_dir():
        try:
            data_file = table_path(path, "intake")
            cpath = table_path(path, "counsellors")
            if data_file is None:
                raise InputError(f"{path} holds no intake table (intake.csv or intake.parquet)")
            if cpath is not None:
                counsellors = read_table(cpath, "counsellors")
        except TableLoadError as exc:
            raise InputError(str(exc)) from exc
        kind = "dir"
    else:
        if path.suffix not in SUFFIXES:
            raise InputError(f"input {path}: expected a .csv or .parquet file, or a data folder")
        data_file, kind = path, "file"
    try:
        if data_file.suffix == ".parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(data_file)
            columns, total = list(pf.schema_arrow.names), pf.metadata.num_rows
        else:
            head = pd.read_csv(data_file, nrows=0, encoding="utf-8-sig", dtype="str")
            columns, total = [str(c) for c in head.columns], None
    except Exception as exc:  # pyarrow and pandas raise several error types for a bad file
        raise InputError(f"cannot read {data_file}: {exc}") from exc
    return Source(path, kind, data_file, columns, total, counsellors)


def _id_text(df: pd.DataFrame) -> pd.DataFrame:
    """Parquet ids as text, as validation.io.read_table does (leading zeros, no 12.0)."""
    from validation.rules import text_form

    for f in TABLES["intake"]:
        if f.pattern and f.name in df.columns and not pd.api.types.is_string_dtype(df[f.name]):
            df[f.name] = pd.Series([text_form(v) for v in df[f.name]], index=df.index, dtype="str")
    return df


def iter_chunks(
    source: Source, chunk_size: int, columns: list[str] | None = None
) -> Iterator[tuple[pd.DataFrame, int]]:
    """(chunk, bytes or rows read so far) for the data file, ``columns`` only when given."""
    try:
        if source.fmt == ".parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(source.data_file)
            done = 0
            for batch in pf.iter_batches(batch_size=chunk_size, columns=columns):
                df = _id_text(batch.to_pandas())
                done += len(df)
                yield df, done
        else:
            with open(source.data_file, "rb") as fh:
                reader = pd.read_csv(
                    fh,
                    dtype="str",
                    keep_default_na=False,
                    na_values=[""],
                    encoding="utf-8-sig",
                    chunksize=chunk_size,
                    usecols=columns,
                )
                for df in reader:
                    yield df, fh.tell()
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read {source.data_file}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Row validation


@dataclass
class Columns:
    """What the header says: the contract columns to read, and the ones ignored."""

    used: list[str]
    unknown: list[str]


def check_columns(source: Source) -> Columns:
    """Contract columns present, unknown ones (ignored, reported), or InputError when a required
    column is missing (every row would fail the same way: a header problem, not a row problem)."""
    known = {f.name for f in TABLES["intake"]} if source.kind == "dir" else set(SCORING_BY_NAME)
    used = [c for c in source.columns if c in known]
    unknown = [c for c in source.columns if c not in known]
    required = [f.name for f in TABLES["intake"] if f.required]
    missing = [c for c in required if c not in used]
    if missing:
        raise InputError(
            f"{source.data_file}: required column(s) missing: {', '.join(missing)} "
            "(data contract v1, intake fields)"
        )
    return Columns(used, unknown)


# --------------------------------------------------------------------------------------------
# Scoring and explaining


def top_drivers_frame(
    points: np.ndarray, top_n: int, groups: tuple[str, ...] = DRIVER_GROUPS
) -> pd.DataFrame:
    """driver_k, driver_k_points, driver_k_effect for k = 1..top_n (blank when fewer): the
    groups with the largest |points|, assessed or not (``not_assessed`` says which were not),
    leaving out those that read 0.0 at the page's precision (``models.scoring.explain.MIN_POINTS``)."""
    from models.scoring.explain import MIN_POINTS

    n = len(points)
    key = np.where(np.abs(points) >= MIN_POINTS, np.abs(points), -1.0)
    order = np.argsort(-key, axis=1, kind="stable")[:, :top_n]
    names = np.array(groups, dtype=object)
    cols: dict[str, Any] = {}
    rows = np.arange(n)
    for k in range(top_n):
        idx = order[:, k] if k < order.shape[1] else np.zeros(n, dtype=int)
        keep = key[rows, idx] >= 0 if k < order.shape[1] else np.zeros(n, dtype=bool)
        pts = points[rows, idx]
        cols[f"driver_{k + 1}"] = pd.array(np.where(keep, names[idx], None), dtype="str")
        cols[f"driver_{k + 1}_points"] = np.where(keep, pts, np.nan)
        cols[f"driver_{k + 1}_effect"] = pd.array(
            np.where(keep, np.where(pts > 0, "raises", "lowers"), None), dtype="str"
        )
    return pd.DataFrame(cols)


def not_assessed_column(assessed: np.ndarray) -> pd.array:
    """The groups none of whose fields was on the record, '; '-separated ('' when none)."""
    names = np.array(DRIVER_GROUPS, dtype=object)
    return pd.array(["; ".join(names[~row]) for row in assessed], dtype="str")


def output_columns(top_n: int) -> list[str]:
    cols = [
        "admission_id",
        "risk",
        "risk_low",
        "risk_high",
        "band",
        "model_version",
        "typical_risk",
    ]
    for k in range(1, top_n + 1):
        cols += [f"driver_{k}", f"driver_{k}_points", f"driver_{k}_effect"]
    return cols + [f"points_{g}" for g in DRIVER_GROUPS] + ["not_assessed"]


# The weekly columns (issue 19), as the API answers them.
WEEKLY_COLUMNS = (
    "as_of_week",
    "risk_at_admission",
    "risk_low_at_admission",
    "risk_high_at_admission",
    "band_at_admission",
    "typical_risk_at_admission",
    "risk_remaining",
    "risk_remaining_low",
    "risk_remaining_high",
    "signal",
    "rupture",
    "rupture_weeks",
    "discrepancy",
    "discrepancy_flag",
)


def weekly_output_columns(top_n: int) -> list[str]:
    """The output columns with ``--as-of-week``: the admission columns, the weekly ones after
    ``risk``, and ``points_ratings`` with the other groups."""
    from models.scoring.weekly import GROUPS

    cols = ["admission_id", "as_of_week", "risk", "risk_at_admission", "risk_low", "risk_high"]
    cols += ["risk_low_at_admission", "risk_high_at_admission", "band", "band_at_admission"]
    cols += ["risk_remaining", "risk_remaining_low", "risk_remaining_high"]
    cols += ["signal", "rupture", "rupture_weeks"]
    cols += ["discrepancy", "discrepancy_flag", "model_version", "typical_risk"]
    cols += ["typical_risk_at_admission"]
    for k in range(1, top_n + 1):
        cols += [f"driver_{k}", f"driver_{k}_points", f"driver_{k}_effect"]
    return cols + [f"points_{g}" for g in GROUPS] + ["not_assessed"]


def weekly_frame(lm: LoadedModel, admission_ids: np.ndarray, ex, s, top_n: int = 3) -> pd.DataFrame:
    """The ``--as-of-week`` output rows from an admission ``Explanation`` and its
    ``models.scoring.weekly.WeeklyScores``."""
    from models.scoring.weekly import GROUPS, WEEKS

    n = len(s.risk)
    K = np.asarray(s.as_of_week, dtype=int)
    weeks = np.array(WEEKS)
    rupture_any = s.rupture.any(axis=2)  # n x 3
    rupture_weeks = ["; ".join(str(w) for w in weeks[row]) for row in rupture_any]
    # the discrepancy of the latest week (<= as_of_week) rated by both, as the API shows it
    both = ~np.isnan(s.discrepancy)
    last = np.where(both.any(axis=1), len(WEEKS) - 1 - np.argmax(both[:, ::-1], axis=1), -1)
    rows = np.arange(n)
    disc = np.where(last >= 0, s.discrepancy[rows, np.maximum(last, 0)], np.nan)
    disc_flag = np.where(last >= 0, s.discrepancy_flag[rows, np.maximum(last, 0)], False)
    out = pd.DataFrame(
        {
            "admission_id": pd.array(np.asarray(admission_ids).astype(str), dtype="str"),
            "as_of_week": K,
            "risk": s.risk,
            "risk_at_admission": s.risk_at_admission,
            "risk_low": s.risk_low,
            "risk_high": s.risk_high,
            "risk_low_at_admission": ex.risk_low,
            "risk_high_at_admission": ex.risk_high,
            "band": pd.array(lm.bands.bands(s.risk), dtype="str"),
            "band_at_admission": pd.array(lm.bands.bands(s.risk_at_admission), dtype="str"),
            "risk_remaining": s.risk_remaining,
            "risk_remaining_low": s.risk_remaining_low,
            "risk_remaining_high": s.risk_remaining_high,
            "signal": s.signal.astype(bool),
            "rupture": rupture_any.any(axis=1),
            "rupture_weeks": pd.array(rupture_weeks, dtype="str"),
            "discrepancy": disc,
            "discrepancy_flag": disc_flag.astype(bool),
            "model_version": pd.array([lm.version] * n, dtype="str"),
            "typical_risk": s.typical_risk,
            "typical_risk_at_admission": ex.typical_risk,
        }
    )
    points = pd.DataFrame(s.points, columns=[f"points_{g}" for g in GROUPS])
    drivers = top_drivers_frame(s.points, top_n, GROUPS)
    out = pd.concat([out, drivers, points], axis=1)
    out["not_assessed"] = not_assessed_column(ex.assessed)
    return out[weekly_output_columns(top_n)]


def weekly_output_schema(top_n: int):
    import pyarrow as pa

    text = {"admission_id", "band", "band_at_admission", "rupture_weeks", "model_version"}
    text |= {f"driver_{k}" for k in range(1, top_n + 1)}
    text |= {f"driver_{k}_effect" for k in range(1, top_n + 1)} | {"not_assessed"}
    flags = {"signal", "rupture", "discrepancy_flag"}
    fields = []
    for c in weekly_output_columns(top_n):
        if c in text:
            fields.append(pa.field(c, pa.string()))
        elif c in flags:
            fields.append(pa.field(c, pa.bool_()))
        elif c == "as_of_week":
            fields.append(pa.field(c, pa.int64()))
        else:
            fields.append(pa.field(c, pa.float64()))
    return pa.schema(fields)


def read_ratings(folder: Path, chunk_size: int = 100_000) -> tuple[pd.Index, np.ndarray]:
    """(admission ids, their n x 3 x 2 WAI-S item means) from a data folder's alliance table,
    read in chunks (a few floats per admission stay in memory). Raises InputError when there is
    no alliance table or its items break the contract (out of 1-7, not whole numbers)."""
    from features.errors import DataError
    from features.weekly import rating_tensor
    from validation.io import TableLoadError, table_path

    try:
        path = table_path(folder, "alliance")
    except TableLoadError as exc:
        raise InputError(str(exc)) from exc
    if path is None:
        raise InputError(
            f"{folder} holds no alliance table (alliance.csv or alliance.parquet): --as-of-week "
            "needs the weekly WAI-S ratings"
        )
    src = Source(folder, "dir", path, [], None)
    try:
        cols = (
            list(pd.read_csv(path, nrows=0, dtype="str").columns) if path.suffix == ".csv" else None
        )
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    if cols is not None:
        for need in ("admission_id", "week", "rater"):
            if need not in cols:
                raise InputError(f"{path}: required column {need} missing (alliance table)")
    parts: list[pd.DataFrame] = []
    for chunk, _ in iter_chunks(src, chunk_size):
        ids = pd.Index(chunk["admission_id"].astype(str).unique())
        try:
            R = rating_tensor(chunk, ids)
        except DataError as exc:
            raise InputError(f"the alliance table {path}: {exc}") from exc
        parts.append(pd.DataFrame(R.reshape(len(ids), -1), index=ids))
    if not parts:
        return pd.Index([], dtype=str), np.empty((0, 3, 2))
    table = pd.concat(parts)
    if not table.index.is_unique:  # an admission's ratings spread over chunks
        table = table.groupby(level=0, sort=False).first()  # first non-missing per column
    return table.index, table.to_numpy(dtype=float).reshape(len(table), 3, 2)


class Ratings:
    """The weekly ratings of a batch, looked up per chunk (``read_ratings``)."""

    def __init__(self, ids: pd.Index, R: np.ndarray, as_of_week: int):
        self.ids, self.R, self.as_of_week = ids, R, as_of_week

    def lookup(self, admission_ids: np.ndarray) -> np.ndarray:
        pos = self.ids.get_indexer(pd.Index(np.asarray(admission_ids).astype(str)))
        out = np.full((len(pos), 3, 2), np.nan)
        ok = pos >= 0
        out[ok] = self.R[pos[ok]]
        return out


def explanation_frame(
    lm: LoadedModel, admission_ids: np.ndarray, ex, risk: np.ndarray | None = None, top_n: int = 3
) -> pd.DataFrame:
    """The output rows from a ``models.scoring.explain.Explanation`` (both engines end here). ``risk``:
    the model's own risk when it came from elsewhere (the Spark UDF); else the explanation's."""
    risk = ex.risk if risk is None else risk
    band = lm.bands.bands(risk)
    out = pd.DataFrame(
        {
            "admission_id": pd.array(np.asarray(admission_ids).astype(str), dtype="str"),
            "risk": risk,
            "risk_low": ex.risk_low,
            "risk_high": ex.risk_high,
            "band": pd.array(band, dtype="str"),
            "model_version": pd.array([lm.version] * len(risk), dtype="str"),
            "typical_risk": ex.typical_risk,
        }
    )
    points = pd.DataFrame(ex.points, columns=[f"points_{g}" for g in DRIVER_GROUPS])
    drivers = top_drivers_frame(ex.points, top_n)
    out = pd.concat([out, drivers, points], axis=1)
    out["not_assessed"] = not_assessed_column(ex.assessed)
    return out[output_columns(top_n)]


# --------------------------------------------------------------------------------------------
# Writers


class TableWriter:
    """Appends DataFrames to one CSV or Parquet file (by suffix); the file exists from open."""

    def __init__(self, path: Path, columns: list[str], schema=None):
        self.path = Path(path)
        self.columns = columns
        self.parquet = self.path.suffix == ".parquet"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(self.path.name + ".partial")
        self._writer = None
        self._schema = schema
        self._header = True
        if not self.parquet:
            self.tmp.write_text(",".join(columns) + "\n", encoding="utf-8")
            self._header = False

    def write(self, df: pd.DataFrame) -> None:
        if df.empty:
            return
        df = df[self.columns]
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(df, schema=self._schema, preserve_index=False)
            if self._writer is None:
                self._schema = table.schema
                self._writer = pq.ParquetWriter(self.tmp, self._schema)
            self._writer.write_table(table)
        else:
            df.to_csv(self.tmp, mode="a", header=False, index=False, lineterminator="\n")

    def close(self) -> None:
        if self.parquet:
            if self._writer is None:  # nothing written: an empty file with the columns
                import pyarrow as pa

                empty = pd.DataFrame({c: pd.Series([], dtype="str") for c in self.columns})
                pa_table = pa.Table.from_pandas(empty, schema=self._schema, preserve_index=False)
                import pyarrow.parquet as pq

                pq.write_table(pa_table, self.tmp)
            else:
                self._writer.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.tmp.unlink(missing_ok=True)


def output_schema(top_n: int):
    import pyarrow as pa

    fields = [
        pa.field("admission_id", pa.string()),
        pa.field("risk", pa.float64()),
        pa.field("risk_low", pa.float64()),
        pa.field("risk_high", pa.float64()),
        pa.field("band", pa.string()),
        pa.field("model_version", pa.string()),
    ]
    fields.append(pa.field("typical_risk", pa.float64()))
    for k in range(1, top_n + 1):
        fields += [
            pa.field(f"driver_{k}", pa.string()),
            pa.field(f"driver_{k}_points", pa.float64()),
            pa.field(f"driver_{k}_effect", pa.string()),
        ]
    fields += [pa.field(f"points_{g}", pa.float64()) for g in DRIVER_GROUPS]
    fields.append(pa.field("not_assessed", pa.string()))
    return pa.schema(fields)


def default_rejects_path(output: Path) -> Path:
    return output.with_name(output.name + ".rejects.csv")


# --------------------------------------------------------------------------------------------
# The run


@dataclass
class BatchSummary:
    rows: int = 0
    scored: int = 0
    rejected_rows: int = 0
    reject_records: int = 0
    unknown_columns: list[str] = field(default_factory=list)
    output: Path | None = None
    rejects: Path | None = None
    model_version: str = ""
    seconds: float = 0.0
    rejected_by_field: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dict(vars(self))
        d["output"] = str(self.output) if self.output else None
        d["rejects"] = str(self.rejects) if self.rejects else None
        return d


def reject_record(row: int | None, aid: Any, err, source_kind: str = "file") -> dict[str, Any]:
    """One line of the rejects file from a FieldError. For a data folder, a counsellor_* field
    came from counsellors.csv through the join and is reported there."""
    table, fname = err.table, err.field
    if source_kind == "dir" and fname.startswith(COUNSELLOR_PREFIX):
        table, fname = "counsellors", fname.removeprefix(COUNSELLOR_PREFIX)
    return {
        "row": row,
        "admission_id": aid if isinstance(aid, str) and aid else None,
        "table": table,
        "field": fname,
        "value": None if err.value is None else str(err.value),
        "reason": err.reason,
    }


class ChunkScorer:
    """Validate, score and explain one chunk of scoring records; keeps the duplicate-id state."""

    def __init__(
        self,
        lm: LoadedModel,
        top_n: int = 3,
        source_kind: str = "file",
        ratings: Ratings | None = None,
    ):
        self.lm = lm
        self.top_n = top_n
        self.source_kind = source_kind
        self.ratings = ratings  # set: the weekly update as of ratings.as_of_week (issue 19)
        self.columns = weekly_output_columns(top_n) if ratings else output_columns(top_n)
        self.validator = RowValidator()
        self.seen: dict[str, int] = {}  # admission_id -> row it was scored at

    def _reject(self, row: int | None, aid: Any, err) -> dict[str, Any]:
        return reject_record(row, aid, err, self.source_kind)

    def run(self, frame: pd.DataFrame, first_row: int) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
        """(scored output rows, reject records). ``first_row``: 1-based number of frame's first
        data row in the input (CSV line = row + 1)."""
        from features.errors import FieldError
        from models.scoring.explain import explain_matrix
        from models.scoring.predict import frame_to_matrix

        frame = frame.reset_index(drop=True)
        n = len(frame)
        rows = first_row + np.arange(n)
        ids = frame["admission_id"].to_numpy(dtype=object)
        rejects: list[dict[str, Any]] = []
        bad = np.zeros(n, dtype=bool)

        flagged = np.flatnonzero(self.validator.screen(frame))
        for i, errs in self.validator.errors(frame, flagged).items():
            bad[i] = True
            rejects += [self._reject(int(rows[i]), ids[i], e) for e in errs]

        for i in np.flatnonzero(~bad):  # repeated admission_ids (earlier chunk or this one)
            aid = ids[i]
            first = self.seen.get(aid)
            if first is not None:
                bad[i] = True
                err = FieldError(
                    "intake", "admission_id", f"duplicate admission_id (first at row {first})", aid
                )
                rejects.append(self._reject(int(rows[i]), aid, err))
            else:
                self.seen[aid] = int(rows[i])

        good = np.flatnonzero(~bad)
        if len(good) == 0:
            return pd.DataFrame(columns=self.columns), rejects
        valid = typed_records(frame.iloc[good].reset_index(drop=True))
        X, scored, item_errors = frame_to_matrix(valid)
        if item_errors:  # items that contradict a given scale score: refuse those rows
            pos = {aid: k for k, aid in enumerate(valid["admission_id"].to_numpy(dtype=object))}
            drop = np.zeros(len(valid), dtype=bool)
            for e in item_errors:
                k = pos.get(e.admission_id)
                if k is None:
                    continue
                drop[k] = True
                i = good[k]
                rejects.append(self._reject(int(rows[i]), ids[i], e))
                self.seen.pop(ids[i], None)
            keep = np.flatnonzero(~drop)
            X, scored, good = X[keep], scored.iloc[keep].reset_index(drop=True), good[keep]
        ex = explain_matrix(self.lm.model, X)
        if self.ratings is None:
            out = explanation_frame(self.lm, ids[good], ex, None, self.top_n)
        else:
            from models.scoring.weekly import update_matrix

            R = self.ratings.lookup(ids[good])
            s = update_matrix(self.lm.model, X, R, self.ratings.as_of_week, ex)
            out = weekly_frame(self.lm, ids[good], ex, s, self.top_n)
        rejects.sort(key=lambda r: r["row"])
        return out, rejects


def score_file(
    input_path: str | Path,
    output: str | Path,
    lm: LoadedModel,
    rejects: str | Path | None = None,
    chunk_size: int = 10_000,
    top_n: int = 3,
    progress: Callable[[int, int | None, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
    as_of_week: int | None = None,
) -> BatchSummary:
    """Score a flat scoring-record file or a data folder, chunk by chunk.

    ``as_of_week`` (1-3, issue 19): update each admission with its weekly ratings of weeks <= K
    from the folder's alliance table (``weekly_output_columns``); needs a data folder and a model
    with weekly models (InputError / ValueError otherwise).

    progress(done, total, rows): done/total in rows (Parquet) or bytes (CSV).
    Raises InputError for a missing, unreadable or header-broken input; the output is then not
    created (it is written to ``<output>.partial`` and renamed at the end).
    """
    import time

    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    t0 = time.perf_counter()
    source = open_source(input_path)
    cols = check_columns(source)
    ratings = None
    if as_of_week is not None:
        from models.scoring.weekly import WEEKS

        if as_of_week not in WEEKS:
            raise InputError(f"as of week must be 1, 2 or 3, not {as_of_week}")
        if lm.model.weekly is None:
            raise NoWeeklyModels(
                f"model version {lm.version} has no weekly models (trained before issue 19): "
                "retrain it (python -m pipelines.train) to score as of a week"
            )
        if source.kind != "dir":
            raise InputError(
                f"{source.path} is a file: --as-of-week needs a data folder holding the intake "
                "and alliance tables"
            )
        ids, R = read_ratings(source.path)
        ratings = Ratings(ids, R, as_of_week)
    if cols.unknown and warn:
        warn(
            f"{len(cols.unknown)} column(s) not in the data contract are ignored: "
            + ", ".join(cols.unknown[:10])
            + (" ..." if len(cols.unknown) > 10 else "")
        )
    output = Path(output)
    rejects_path = Path(rejects) if rejects else default_rejects_path(output)
    total = source.total_rows if source.fmt == ".parquet" else source.data_file.stat().st_size
    summary = BatchSummary(
        unknown_columns=cols.unknown, output=output, rejects=rejects_path, model_version=lm.version
    )
    scorer = ChunkScorer(lm, top_n, source.kind, ratings)
    schema = weekly_output_schema(top_n) if ratings else output_schema(top_n)
    out_w = TableWriter(output, scorer.columns, schema=schema)
    rej_w = TableWriter(rejects_path, REJECT_COLUMNS)
    rejected_rows: set[int] = set()
    try:
        for chunk, done in iter_chunks(source, chunk_size, cols.used):
            if source.kind == "dir":
                chunk = scoring_frame(chunk, source.counsellors)
            scored, rej = scorer.run(chunk, summary.rows + 1)
            summary.rows += len(chunk)
            summary.scored += len(scored)
            out_w.write(scored)
            if rej:
                rej_w.write(pd.DataFrame(rej, columns=REJECT_COLUMNS))
                for r in rej:
                    rejected_rows.add(r["row"])
                    key = f"{r['table']}.{r['field']}"
                    summary.rejected_by_field[key] = summary.rejected_by_field.get(key, 0) + 1
                summary.reject_records += len(rej)
            if progress:
                progress(done, total, summary.rows)
    except BaseException:
        out_w.abort()
        rej_w.abort()
        raise
    out_w.close()
    rej_w.close()
    summary.rejected_rows = len(rejected_rows)
    summary.seconds = time.perf_counter() - t0
    return summary
