"""Drift monitoring: a current batch of admissions (or the service's scores) against a reference.

    python -m pipelines.monitor --reference DIR (--input DIR | --audit-db FILE) [--outcomes DIR]
                                [--output reports/monitoring] [--psi-threshold 0.2]
                                [--score-shift-threshold 0.1] [--model-version N] [--config FILE]

--reference / --input (alias --current): data folders with an intake table (and counsellors; an
alliance table in --input adds performance on outcomes, see below). Checks: PSI per predictor (numeric: reference quantile bins; categorical:
codes; missing is a bin of its own), the data-contract suites on the current batch, and the shift
of the champion's scores (mean risk difference, PSI of risk, PSI of the band mix). With --audit-db
(the service's SQLite audit store: serving/audit.py's table scores, or a table audit, with
probability and band; rows of the monitored model version only) the current scores come from
there and feature drift is skipped.

With outcomes (--input holding the contract's alliance table, or --outcomes DIR): performance on
outcomes and fairness at the band thresholds (monitoring/outcomes.py); an alarm names calibration
or discrimination. Every run is logged to MLflow (experiment alliance-risk-monitoring: metrics,
alarms, the report; monitoring/history.py).

Writes <output>/monitoring_report.html (self-contained: inline CSS, plots as data URIs, nothing
loaded from outside) and <output>/monitoring.json (--output, alias --out; default
reports/monitoring under the working folder). Thresholds come from the settings' [monitor]
section (TOML, or ALLIANCE_RISK_MONITOR__PSI_THRESHOLD and the like); the flags override both.
Exit codes: 0 no threshold crossed, 1 drift (or a blocking contract problem in the current
batch), 2 input missing or unreadable, or a bad configuration, 3 no champion.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pipelines import cli

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

EXIT_OK, EXIT_DRIFT, EXIT_INPUT, EXIT_MODEL = 0, 1, 2, 3
DEFAULT_OUTPUT = "reports/monitoring"


def _parser() -> argparse.ArgumentParser:
    p = cli.parser("monitor", __doc__)
    p.add_argument(
        "--reference", required=True, type=cli.path_arg, metavar="DIR", help="reference data folder"
    )
    cur = p.add_mutually_exclusive_group(required=True)
    cur.add_argument(
        "--input",
        "--current",
        dest="input",
        type=cli.path_arg,
        metavar="DIR",
        help="current data folder (intake, counsellors)",
    )
    cur.add_argument(
        "--audit-db", type=cli.path_arg, metavar="FILE", help="the service's SQLite audit store"
    )
    cli.add_output(
        p,
        f"report folder (default: {DEFAULT_OUTPUT} under the working folder)",
        aliases=("--out",),
        metavar="DIR",
    )
    p.add_argument(
        "--psi-threshold",
        type=float,
        default=None,
        help="PSI alarm (default monitor.psi_threshold, 0.2)",
    )
    p.add_argument(
        "--score-shift-threshold",
        type=float,
        default=None,
        help="alarm on |mean risk difference| above this (default monitor.score_shift_threshold, 0.1)",
    )
    p.add_argument(
        "--outcomes",
        type=Path,
        help="folder with the batch's alliance ratings and intake (default: --input when it "
        "holds an alliance table); with --audit-db the scores come from the audit store",
    )
    p.add_argument("--model-version", help="registered model version (default: the champion)")
    p.add_argument("--json", action="store_true", help="print the JSON summary")
    cli.add_quiet(p)
    return p


def read_folder(path: Path):
    """(scoring frame, tables for validation) of a folder with intake (+ counsellors)."""
    from features.build import scoring_frame
    from validation.io import TableLoadError, read_table, table_path

    if not path.is_dir():
        raise TableLoadError(f"data folder {path} does not exist")
    ipath = table_path(path, "intake")
    if ipath is None:
        raise TableLoadError(f"{path} holds no intake table (intake.csv or intake.parquet)")
    tables = {"intake": read_table(ipath, "intake")}
    cpath = table_path(path, "counsellors")
    if cpath is not None:
        tables["counsellors"] = read_table(cpath, "counsellors")
    frame = scoring_frame(tables["intake"], tables.get("counsellors"))
    from features.catalog import SCORING_BY_NAME

    frame = frame[[c for c in frame.columns if c in SCORING_BY_NAME]]
    return frame, tables


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = cli.console()
    err = cli.console(stderr=True)

    def fail(msg: str, code: int) -> int:
        console.print(f"error: {msg}", style="bold red", markup=False, highlight=False)
        return code

    settings, code = cli.settings_or_exit(
        console,
        args.config,
        EXIT_INPUT,
        monitor__psi_threshold=args.psi_threshold,
        monitor__score_shift_threshold=args.score_shift_threshold,
    )
    if settings is None:
        return code
    cfg = settings.monitor
    output = args.output or cli.resolve(DEFAULT_OUTPUT)

    from models.lifecycle.resolve import ModelNotFound, load
    from monitoring.drift import (
        MonitorResult,
        feature_drift,
        make_plots,
        read_audit,
        score_batch,
        score_shift,
        validation_summary,
    )
    from validation.io import TableLoadError

    with cli.steps(err, quiet=args.quiet or args.json) as s:
        t = s.start("reading the reference and current batches")
        try:
            ref_frame, _ = read_folder(args.reference)
            if args.input is not None:
                cur_frame, cur_tables = read_folder(args.input)
            elif not args.audit_db.is_file():
                raise FileNotFoundError(f"audit store {args.audit_db} does not exist")
        except (TableLoadError, FileNotFoundError, ValueError, OSError) as exc:
            s.stop()
            return fail(str(exc), EXIT_INPUT)
        s.done(t, f"read the reference ({len(ref_frame)} rows) and the current batch")

        t = s.start("loading the model from the registry")
        try:
            lm = load(settings.tracking_uri, settings.train.registered_model, args.model_version)
        except ModelNotFound as exc:
            s.stop()
            return fail(str(exc), EXIT_MODEL)
        if args.audit_db is not None:
            try:
                cur_scores = read_audit(args.audit_db, lm.version)
            except (ValueError, OSError) as exc:  # AuditReadError is a ValueError
                s.stop()
                return fail(f"cannot read {args.audit_db}: {exc}", EXIT_INPUT)
        s.done(t, f"model version {lm.version}")

        result = MonitorResult(
            cfg,
            lm.version,
            str(args.reference),
            str(args.input if args.input is not None else args.audit_db),
        )
        t = s.start("scoring the reference")
        ref_scores, ref_scored = score_batch(ref_frame, lm)
        if ref_scores.rejected:
            result.notes.append(f"{ref_scores.rejected} reference row(s) failed the record rules")
        s.done(t, f"scored the reference ({len(ref_scored)} rows)")
        if args.input is not None:
            from validation.report import validate_tables

            t = s.start("checking the current batch against the contract (Great Expectations)")
            report = validate_tables(cur_tables, settings.validation)
            result.validation = validation_summary(report)
            s.done(t, f"contract check: {len(report.errors)} problem(s)")
            t = s.start("scoring the current batch and computing feature drift")
            cur_scores, cur_scored = score_batch(cur_frame, lm)
            if cur_scores.rejected:
                result.notes.append(
                    f"{cur_scores.rejected} current row(s) failed the record rules and were not scored"
                )
            if len(cur_scored) < cfg.min_rows:
                result.notes.append(
                    f"only {len(cur_scored)} current row(s) (< {cfg.min_rows}): PSI is unreliable"
                )
            result.features = feature_drift(ref_scored, cur_scored, cfg.bins)
            s.done(t, f"scored the current batch ({len(cur_scored)} rows); feature drift")
        else:
            result.notes.append(
                f"current scores from {cur_scores.source}: feature drift and the data-contract "
                "check are skipped (the audit store holds no intake fields)"
            )
            if len(cur_scores.risk) == 0:
                s.stop()
                return fail(f"{args.audit_db} holds no scores", EXIT_INPUT)
        t = s.start(f"writing the report to {output}")
        result.scores = score_shift(ref_scores, cur_scores, lm.bands, cfg.bins)
        result.evaluate()
        from monitoring.outcomes import OutcomeInputError, check_outcomes, has_outcomes

        outcome_dir = args.outcomes or (args.input if has_outcomes(args.input) else None)
        if outcome_dir is not None:
            try:
                result.add_outcomes(check_outcomes(lm, settings, outcome_dir, args.audit_db))
            except (OutcomeInputError, OSError, ValueError) as exc:
                s.stop()
                return fail(f"outcomes: {exc}", EXIT_INPUT)
        make_plots(result, ref_scores.risk, cur_scores.risk)
        html_path, json_path = result.write(output)
        s.done(t, f"report written to {output}")
        t = s.start("logging the run to MLflow")
        from monitoring.history import log_monitor_run

        logged = log_monitor_run(settings.tracking_uri, result, html_path, json_path)
        s.done(t, "logged to MLflow")

    if args.json:
        print(json.dumps(result.to_dict(), indent=1, default=str))
    else:
        s = result.scores
        console.print(
            f"model version {lm.version}; reference {s['ref_rows']} rows, current "
            f"{s['cur_rows']} rows; mean risk {s['ref_mean_risk']:.3f} -> {s['cur_mean_risk']:.3f}"
            f"; risk PSI {s['risk_psi']:.3f}; band-mix PSI {s['band_psi']:.3f}",
            highlight=False,
        )
        for f in result.features[:5]:
            console.print(f"  {f['feature']}: PSI {f['psi']}", highlight=False)
        if result.outcomes is not None:
            console.print(result.outcomes.summary_line(), highlight=False)
        for n in result.notes:
            console.print(f"note: {n}", style="yellow", highlight=False)
        for a in result.alarms:
            console.print(f"ALARM: {a}", style="bold red", highlight=False)
        console.print(
            "DRIFT" if result.alarms else "OK: no threshold crossed",
            style="bold red" if result.alarms else "bold green",
        )
        console.print(f"report: {html_path}  summary: {json_path}", highlight=False)
        console.print(logged, highlight=False)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
