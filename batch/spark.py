"""Batch scoring on Spark: the registered model through ``mlflow.pyfunc.spark_udf``.

PySpark is an optional extra (``pip install -e '.[spark]'``); nothing here is imported unless
``python -m pipelines.score --engine spark`` is asked for.

Steps (the same rules as batch.scoring, so both engines agree):
1. Spark reads the input (CSV as text, as validation.io does; Parquet as typed); a data folder's
   intake is joined with its counsellors (left join, counsellor_* names, as
   features.build.scoring_frame).
2. ``mapInPandas`` runs batch.scoring's row validation on each partition (column-wise screen, then
   validation.record.check_record on flagged rows; items contradicting a scale score) and returns
   the typed record, its errors (JSON) and which driver groups are assessable.
3. Repeated admission_ids: the first occurrence in input order is kept, later ones rejected.
4. Valid rows go through ``mlflow.pyfunc.spark_udf(spark, models:/alliance-risk/<version>)``; the
   UDF returns a struct (admission_id, risk, band, contrib_<group>) from which risk, band and the
   group contributions are taken. Points are computed from those contributions by the one
   explanation path (models.scoring.explain), from the model's typical-client log-odds, as in pandas.
5. Output rows come back to the driver in input order and are written with the pandas engine's
   writer, so both engines produce the same file. Row numbers are not known under Spark (the
   rejects file's ``row`` column is blank); admission_id identifies the row.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from batch.scoring import (
    REJECT_COLUMNS,
    BatchSummary,
    RowValidator,
    TableWriter,
    check_columns,
    default_rejects_path,
    explanation_frame,
    open_source,
    output_columns,
    output_schema,
    reject_record,
)
from features.catalog import COUNSELLOR_PREFIX, COUNSELLORS, DRIVER_GROUPS, SCORING_BY_NAME
from models.lifecycle.resolve import LoadedModel

_SPARK_TYPES = {
    "string": "string",
    "date": "string",
    "code": "string",
    "integer": "double",
    "number": "double",
    "boolean": "boolean",
}
ORDER = "__order__"
ERRORS = "__errors__"
ASSESS = "__assessable__"


def _validate_partition(columns: list[str], kind: str):
    """The mapInPandas function: validation and typing of each partition."""

    def run(batches):
        from features.build import typed_records
        from models.scoring.explain import assessed_matrix
        from models.scoring.predict import frame_to_matrix
        from validation.rules import text_form

        validator = RowValidator()
        for pdf in batches:
            order = pdf[ORDER].to_numpy()
            frame = pdf[columns].reset_index(drop=True)
            n = len(frame)
            errors: list[list[dict]] = [[] for _ in range(n)]
            flagged = np.flatnonzero(validator.screen(frame))
            ids = frame["admission_id"].to_numpy(dtype=object)
            for i, errs in validator.errors(frame, flagged).items():
                errors[i] = [reject_record(None, ids[i], e, kind) for e in errs]
            typed = typed_records(frame)
            ok = np.array([not e for e in errors], dtype=bool)
            assess = np.zeros(n, dtype="int64")
            if ok.any():
                good = np.flatnonzero(ok)
                sub = typed.iloc[good].reset_index(drop=True)
                X, _, item_errors = frame_to_matrix(sub)
                pos = {aid: good[k] for k, aid in enumerate(sub["admission_id"].to_numpy(object))}
                for e in item_errors:
                    i = pos.get(e.admission_id)
                    if i is not None:
                        errors[i].append(reject_record(None, ids[i], e, kind))
                bits = assessed_matrix(X).astype("int64") << np.arange(len(DRIVER_GROUPS))
                assess[good] = bits.sum(axis=1)
            out: dict = {}
            for c in columns:
                typ = _SPARK_TYPES[SCORING_BY_NAME[c].kind]
                col = typed[c]
                if typ == "double":
                    out[c] = pd.to_numeric(col, errors="coerce").astype("float64")
                elif typ == "boolean":
                    out[c] = col.astype("boolean")
                elif pd.api.types.is_string_dtype(col):
                    out[c] = col.astype(object).where(col.notna(), None)
                else:
                    out[c] = pd.Series([text_form(v) for v in col], dtype=object)
            out[ORDER] = order
            out[ERRORS] = [json.dumps(e) if e else None for e in errors]
            out[ASSESS] = assess
            out = pd.DataFrame(out)
            yield out

    return run


def _session(master: str):
    from pyspark.sql import SparkSession

    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")  # the same, in the workers
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(master)
        .appName("alliance-risk-score")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _read(spark, source, used: list[str]):
    from pyspark.sql import functions as F

    path = str(source.data_file)
    if source.fmt == ".parquet":
        df = spark.read.parquet(path)
    else:
        df = spark.read.option("header", True).option("encoding", "UTF-8").csv(path)
    df = df.select(*used).withColumn(ORDER, F.monotonically_increasing_id())
    if source.kind == "dir":
        names = [f.name for f in COUNSELLORS if f.name not in ("counsellor_id", "service_id")]
        if source.counsellors is not None and "counsellor_id" in source.counsellors.columns:
            c = source.counsellors
            c = c[~c["counsellor_id"].duplicated()]
            keep = ["counsellor_id", *[n for n in names if n in c.columns]]
            cdf = spark.createDataFrame(c[keep].astype(object).where(c[keep].notna(), None))
            for n in keep[1:]:
                cdf = cdf.withColumnRenamed(n, COUNSELLOR_PREFIX + n)
            df = df.join(F.broadcast(cdf), on="counsellor_id", how="left")
        for n in names:
            if COUNSELLOR_PREFIX + n not in df.columns:
                df = df.withColumn(COUNSELLOR_PREFIX + n, F.lit(None).cast("string"))
    for c in df.columns:  # CSV text and joined counsellor fields as text, like the pandas engine
        if c != ORDER and source.fmt != ".parquet":
            df = df.withColumn(c, F.col(c).cast("string"))
    return df


def score_spark(
    input_path: str | Path,
    output: str | Path,
    lm: LoadedModel,
    rejects: str | Path | None = None,
    top_n: int = 3,
    master: str = "local[*]",
    tracking_uri: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> BatchSummary:
    import mlflow

    t0 = time.perf_counter()
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri  # for the UDF's workers
    source = open_source(input_path)
    cols = check_columns(source)
    if cols.unknown and warn:
        warn(f"{len(cols.unknown)} column(s) not in the data contract are ignored")
    output = Path(output)
    rejects_path = Path(rejects) if rejects else default_rejects_path(output)
    spark = _session(master)
    try:
        return _score(spark, source, cols, output, rejects_path, lm, top_n, t0)
    finally:
        spark.stop()


def _score(spark, source, cols, output, rejects_path, lm, top_n, t0) -> BatchSummary:
    import mlflow
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, DoubleType, LongType, StringType, StructField
    from pyspark.sql.types import StructType as ST

    df = _read(spark, source, cols.used)
    columns = [c for c in df.columns if c in SCORING_BY_NAME]
    types = {"double": DoubleType(), "boolean": BooleanType(), "string": StringType()}
    schema = ST(
        [StructField(c, types[_SPARK_TYPES[SCORING_BY_NAME[c].kind]], True) for c in columns]
        + [
            StructField(ORDER, LongType(), False),
            StructField(ERRORS, StringType(), True),
            StructField(ASSESS, LongType(), False),
        ]
    )
    checked = df.mapInPandas(_validate_partition(columns, source.kind), schema=schema).cache()
    rank = F.row_number().over(Window.partitionBy("admission_id").orderBy(ORDER))
    checked = checked.withColumn("__rank__", F.when(F.col(ERRORS).isNull(), rank))
    total_rows = checked.count()

    summary = BatchSummary(
        unknown_columns=cols.unknown, output=output, rejects=rejects_path, model_version=lm.version
    )
    summary.rows = total_rows
    bad = (
        checked.filter(F.col(ERRORS).isNotNull() | (F.col("__rank__") > 1))
        .select("admission_id", ERRORS, ORDER)
        .orderBy(ORDER)
        .toPandas()
    )
    rej_rows = []
    for aid, errs in zip(bad["admission_id"], bad[ERRORS], strict=True):
        if not isinstance(errs, str):
            reason = "duplicate admission_id (an earlier row has it)"
            rej_rows.append(
                {
                    "row": None,
                    "admission_id": aid,
                    "table": "intake",
                    "field": "admission_id",
                    "value": aid,
                    "reason": reason,
                }
            )
        else:
            rej_rows += json.loads(errs)
    rej_w = TableWriter(rejects_path, REJECT_COLUMNS)
    rej_w.write(pd.DataFrame(rej_rows, columns=REJECT_COLUMNS))
    rej_w.close()
    summary.rejected_rows = len(bad)
    summary.reject_records = len(rej_rows)
    for r in rej_rows:
        key = f"{r['table']}.{r['field']}"
        summary.rejected_by_field[key] = summary.rejected_by_field.get(key, 0) + 1

    valid = checked.filter(F.col(ERRORS).isNull() & (F.col("__rank__") == 1))
    result_type = ", ".join(
        ["admission_id string", "risk double", "risk_low double", "risk_high double", "band string"]
        + [f"contrib_{g} double" for g in DRIVER_GROUPS]
    )
    udf = mlflow.pyfunc.spark_udf(spark, lm.uri, result_type=result_type, env_manager="local")
    pred = valid.withColumn("__p__", udf(F.struct(*[F.col(c) for c in columns])))
    picked = pred.select(
        F.col("__p__.admission_id").alias("admission_id"),
        F.col("__p__.risk").alias("risk"),
        F.col("__p__.risk_low").alias("risk_low"),
        F.col("__p__.risk_high").alias("risk_high"),
        F.col("__p__.band").alias("band"),
        *[F.col(f"__p__.contrib_{g}").alias(f"contrib_{g}") for g in DRIVER_GROUPS],
        F.col(ASSESS),
        F.col(ORDER),
    ).orderBy(ORDER)

    out_w = TableWriter(output, output_columns(top_n), schema=output_schema(top_n))
    try:
        buf: list = []
        for row in picked.toLocalIterator(prefetchPartitions=True):
            buf.append(row)
            if len(buf) >= 10_000:
                out_w.write(_finish(buf, lm, top_n))
                summary.scored += len(buf)
                buf = []
        if buf:
            out_w.write(_finish(buf, lm, top_n))
            summary.scored += len(buf)
    except BaseException:
        out_w.abort()
        raise
    out_w.close()
    checked.unpersist()
    summary.seconds = time.perf_counter() - t0
    return summary


def _finish(rows: list, lm: LoadedModel, top_n: int) -> pd.DataFrame:
    """Spark rows (risk, band, contrib_*) -> the pandas engine's output columns, through the one
    explanation path: the pyfunc's group contributions plus the model's typical-client log-odds
    (the base, the same for every record)."""
    from models.scoring.explain import explain_contributions, typical_log_odds

    pdf = pd.DataFrame([r.asDict() for r in rows])
    G = pdf[[f"contrib_{g}" for g in DRIVER_GROUPS]].to_numpy(dtype=float)
    mask = pdf[ASSESS].to_numpy(dtype="int64")
    assess = ((mask[:, None] >> np.arange(len(DRIVER_GROUPS))) & 1).astype(bool)
    interval = (
        pdf["risk_low"].to_numpy(dtype=float),
        pdf["risk_high"].to_numpy(dtype=float),
    )
    ex = explain_contributions(G, typical_log_odds(lm.model), assess, interval)
    risk = pdf["risk"].to_numpy(dtype=float)
    return explanation_frame(lm, pdf["admission_id"].to_numpy(dtype=object), ex, risk, top_n)
