"""Batch scoring: risk, band and top drivers for every admission in a file or a data folder.

    python -m pipelines.score --input FILE|DIR --output FILE [--model-version N]
                              [--rejects FILE] [--chunk-size 10000] [--top-drivers 3]
                              [--engine pandas|spark] [--master local[*]] [--config FILE]
                              [--as-of-week K]

Input: a flat scoring-record file (.csv or .parquet: intake fields, optional counsellor_sex /
counsellor_ex_user / counsellor_years_experience, optional questionnaire items), or a data folder
holding intake (and counsellors) tables, which are joined as in training.

Output (.csv, or .parquet by suffix), one row per scored admission: admission_id, risk (calibrated
probability of a low early alliance), band, model_version, typical_risk (the typical client's
risk, the base of every contribution), for k = 1..N driver_k (driver group), driver_k_points (its
signed contribution in PROBABILITY POINTS on the 0-1 risk scale: 0.05 = five percentage points)
and driver_k_effect (raises/lowers the risk) for the N largest (below 0.05 points not listed),
points_<group> for every driver group (assessed or not: they add up to risk - typical_risk), and
not_assessed (the groups none of whose fields was on the record, "; "-separated).

With --as-of-week K (1, 2 or 3; a data folder holding an alliance table; the pandas engine): the
early-warning update of issue 19. Each admission's WAI-S ratings of weeks <= K in the folder's
alliance table (client and counsellor, scored as the label scores them) update its admission risk
through the model's weekly models, as POST /score does with "ratings". Output columns then:
admission_id, as_of_week (the latest week <= K with a valid rating; 0 = none, and the row is the
admission score exactly), risk (the UPDATED risk of a low alliance over weeks 1-3), risk_at_admission,
risk_low / risk_high (the 95% uncertainty interval of the UPDATED risk: the admission model's refits
combined with draws of the weekly model's parameters; with no rating the admission interval),
risk_low_at_admission / risk_high_at_admission (the ADMISSION model's interval, around
risk_at_admission), band (of the updated risk), band_at_admission, risk_remaining (risk of a low
alliance in the weeks still to come, as_of_week+1..3; empty as of week 3) and its interval
risk_remaining_low / risk_remaining_high (intervals empty where the model states none: LightGBM, or a
model trained before the weekly intervals), signal (not on track: the
week's rating below the expected band for this admission risk), rupture (a reliable week-to-week
drop) and rupture_weeks, discrepancy (client - counsellor item mean in the latest week both rated)
and discrepancy_flag, model_version, typical_risk (the typical client rated typically: the base of
the drivers), typical_risk_at_admission, driver_k..., points_<group> for every driver group plus
points_ratings (adding up to risk - typical_risk), not_assessed. Without --as-of-week the output is
the admission scoring above, unchanged.

Rejected rows (a rule of data contract v1 broken, items contradicting a scale score, a repeated
admission_id) go to the rejects file (default <output>.rejects.csv) with row (1-based data row;
CSV line = row + 1), admission_id, table, field, value and reason; all other rows are scored.

The model is the registry's champion of alliance-risk (or --model-version), from the tracking
store in MLFLOW_TRACKING_URI (default sqlite:///mlruns/mlflow.db).

Exit codes: 0 done (even with rejected rows), 2 input missing/unreadable or a required column
absent (with --as-of-week: no alliance table, or ratings breaking the contract), 3 no champion /
no such model version / a model without weekly models for --as-of-week, 4 the spark engine is not
installed.
"""

from __future__ import annotations

import argparse
import os
import sys

from pipelines import cli

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

EXIT_OK, EXIT_INPUT, EXIT_MODEL, EXIT_ENGINE = 0, 2, 3, 4
SPARK_HINT = (
    "the spark engine needs PySpark, an optional extra: pip install -e '.[spark]' "
    "(or pip install 'pyspark>=3.5'); it also needs Java 17+"
)


def _parser() -> argparse.ArgumentParser:
    p = cli.parser("score", __doc__)
    cli.add_input(
        p, "scoring-record file (.csv/.parquet) or data folder", required=True, metavar="FILE|DIR"
    )
    cli.add_output(p, "output file (.csv or .parquet)", required=True, metavar="FILE")
    p.add_argument(
        "--model-version", help="registered model version to use (default: the champion alias)"
    )
    p.add_argument(
        "--rejects",
        type=cli.path_arg,
        metavar="FILE",
        help="rejects file (default: <output>.rejects.csv), always CSV",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=10_000,
        help="rows read, validated and scored at a time (default %(default)s)",
    )
    p.add_argument(
        "--top-drivers",
        type=int,
        default=3,
        help="drivers listed per admission (default %(default)s; 0 for none)",
    )
    p.add_argument(
        "--engine",
        choices=["pandas", "spark"],
        default="pandas",
        help="pandas: chunked, in this process (default); spark: mlflow.pyfunc.spark_udf",
    )
    p.add_argument(
        "--master", default="local[*]", help="Spark master for --engine spark (default %(default)s)"
    )
    p.add_argument(
        "--as-of-week",
        type=int,
        choices=[1, 2, 3],
        metavar="K",
        help="update each admission with its weekly WAI-S ratings of weeks <= K (1-3) from the "
        "data folder's alliance table (issue 19 early warning; adds as_of_week, "
        "risk_at_admission, risk_remaining, signal, rupture, discrepancy, points_ratings and "
        "the admission and remaining risks' intervals; risk, risk_low and risk_high are then "
        "the updated risk and its interval). Default: admission scores only",
    )
    cli.add_quiet(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = cli.console(stderr=True)

    def fail(msg: str, code: int) -> int:
        console.print(f"error: {msg}", style="bold red", markup=False, highlight=False)
        return code

    if args.chunk_size < 1:
        return fail("--chunk-size must be at least 1", EXIT_INPUT)
    if args.top_drivers < 0:
        return fail("--top-drivers must be 0 or more", EXIT_INPUT)
    if not args.input.exists():
        return fail(f"input {args.input} does not exist", EXIT_INPUT)
    if args.as_of_week is not None and args.engine != "pandas":
        return fail("--as-of-week runs on the pandas engine only", EXIT_INPUT)
    if args.as_of_week is not None and not args.input.is_dir():
        return fail(
            f"--as-of-week needs a data folder holding the intake and alliance tables, "
            f"not the file {args.input}",
            EXIT_INPUT,
        )
    if args.engine == "spark":
        try:
            import pyspark  # noqa: F401
        except ImportError:
            return fail(SPARK_HINT, EXIT_ENGINE)

    settings, code = cli.settings_or_exit(console, args.config, EXIT_INPUT)
    if settings is None:
        return code
    from batch.scoring import InputError, NoWeeklyModels
    from models.lifecycle.resolve import ModelNotFound, load

    name = settings.train.registered_model
    try:
        lm = load(settings.tracking_uri, name, args.model_version)
    except ModelNotFound as exc:
        return fail(str(exc), EXIT_MODEL)
    console.print(f"model: {name} version {lm.version} ({lm.model.kind})", highlight=False)

    try:
        if args.engine == "spark":
            from batch.spark import score_spark

            summary = score_spark(
                args.input,
                args.output,
                lm,
                rejects=args.rejects,
                top_n=args.top_drivers,
                master=args.master,
                tracking_uri=settings.tracking_uri,
                warn=lambda m: console.print(f"warning: {m}", style="yellow", markup=False),
            )
        else:
            summary = _run_pandas(args, lm, console)
    except InputError as exc:
        return fail(str(exc), EXIT_INPUT)
    except NoWeeklyModels as exc:
        return fail(str(exc), EXIT_MODEL)

    console.print(
        f"scored {summary.scored} of {summary.rows} row(s) in {summary.seconds:.1f} s "
        f"with model version {summary.model_version} -> {summary.output}",
        highlight=False,
    )
    if summary.rejected_rows:
        top = sorted(summary.rejected_by_field.items(), key=lambda kv: -kv[1])[:5]
        console.print(
            f"rejected {summary.rejected_rows} row(s) ({summary.reject_records} problem(s); "
            f"most: {', '.join(f'{k} {v}' for k, v in top)}) -> {summary.rejects}",
            style="yellow",
            highlight=False,
        )
    else:
        console.print(f"no row rejected (empty rejects file {summary.rejects})", highlight=False)
    return EXIT_OK


def _run_pandas(args, lm, console):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from batch.scoring import score_file

    with Progress(
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]} rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=args.quiet,
        transient=False,
    ) as progress:
        task = progress.add_task("score", total=None, rows=0)

        def tick(done: int, total: int | None, rows: int) -> None:
            progress.update(task, completed=done, total=total, rows=rows)

        return score_file(
            args.input,
            args.output,
            lm,
            rejects=args.rejects,
            chunk_size=args.chunk_size,
            top_n=args.top_drivers,
            progress=tick,
            warn=lambda m: progress.console.print(f"warning: {m}", style="yellow", markup=False),
            as_of_week=args.as_of_week,
        )


if __name__ == "__main__":
    sys.exit(main())
