"""Drift monitoring: a current batch of admissions (or the service's scores) against a reference.

    python -m pipelines.monitor --reference DIR (--current DIR | --audit-db FILE)
                                [--outcomes DIR] [--out reports/monitoring] [--psi-threshold 0.2]
                                [--score-shift-threshold 0.1] [--model-version N]

--reference / --current: data folders with an intake table (and counsellors; an alliance table in
--current adds performance on outcomes, see below). Checks: PSI per predictor (numeric: reference quantile bins; categorical: codes; missing
is a bin of its own), the data-contract suites on the current batch, and the shift of the
champion's scores (mean risk difference, PSI of risk, PSI of the band mix). With --audit-db (the
service's SQLite audit store: serving/audit.py's table scores, or a table audit, with
probability and band; rows of the monitored model version only) the current scores come from
there and feature drift is skipped.

With outcomes (--current holding the contract's alliance table, or --outcomes DIR): performance
on outcomes and fairness at the band thresholds (monitoring/outcomes.py); an alarm names
calibration or discrimination. Every run is logged to MLflow (experiment
alliance-risk-monitoring: metrics, alarms, the report; monitoring/history.py).

Writes <out>/monitoring_report.html (self-contained: inline CSS, plots as data URIs, nothing loaded
from outside) and <out>/monitoring.json. Exit codes: 0 no threshold crossed, 1 drift (or a
blocking contract problem in the current batch), 2 input missing or unreadable, 3 no champion.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

EXIT_OK, EXIT_DRIFT, EXIT_INPUT, EXIT_MODEL = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.monitor",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--reference", required=True, type=Path, help="reference data folder")
    cur = p.add_mutually_exclusive_group(required=True)
    cur.add_argument("--current", type=Path, help="current data folder (intake, counsellors)")
    cur.add_argument("--audit-db", type=Path, help="the service's SQLite audit store")
    p.add_argument(
        "--out", type=Path, default=Path("reports/monitoring"), help="report folder (%(default)s)"
    )
    p.add_argument("--psi-threshold", type=float, default=None, help="PSI alarm (default 0.2)")
    p.add_argument(
        "--score-shift-threshold",
        type=float,
        default=None,
        help="alarm on |mean risk difference| above this (default 0.1)",
    )
    p.add_argument(
        "--outcomes",
        type=Path,
        help="folder with the batch's alliance ratings and intake (default: --current when it "
        "holds an alliance table); with --audit-db the scores come from the audit store",
    )
    p.add_argument("--model-version", help="registered model version (default: the champion)")
    p.add_argument("--config", type=Path, help="TOML settings file (tracking store, model name)")
    p.add_argument("--json", action="store_true", help="print the JSON summary")
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
    from rich.console import Console

    console = Console() if sys.stdout.isatty() else Console(width=160)

    def fail(msg: str, code: int) -> int:
        console.print(f"error: {msg}", style="bold red", markup=False, highlight=False)
        return code

    from pydantic import ValidationError

    from batch.scoring import ModelNotFound, load_model
    from features.settings import load_settings
    from monitoring.drift import (
        MonitorConfig,
        MonitorResult,
        feature_drift,
        make_plots,
        read_audit,
        score_batch,
        score_shift,
        validation_summary,
    )
    from validation.io import TableLoadError

    try:
        overrides = {
            k: v
            for k, v in {
                "psi_threshold": args.psi_threshold,
                "score_shift_threshold": args.score_shift_threshold,
            }.items()
            if v is not None
        }
        cfg = MonitorConfig(**overrides)
        settings = load_settings(args.config)
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        return fail(f"configuration: {exc}", EXIT_INPUT)
    try:
        ref_frame, _ = read_folder(args.reference)
        if args.current is not None:
            cur_frame, cur_tables = read_folder(args.current)
        elif not args.audit_db.is_file():
            raise FileNotFoundError(f"audit store {args.audit_db} does not exist")
    except (TableLoadError, FileNotFoundError, ValueError, OSError) as exc:
        return fail(str(exc), EXIT_INPUT)

    try:
        lm = load_model(settings.tracking_uri, settings.train.registered_model, args.model_version)
    except ModelNotFound as exc:
        return fail(str(exc), EXIT_MODEL)
    if args.audit_db is not None:
        try:
            cur_scores = read_audit(args.audit_db, lm.version)
        except (ValueError, OSError, sqlite3.Error) as exc:
            return fail(f"cannot read {args.audit_db}: {exc}", EXIT_INPUT)

    result = MonitorResult(
        cfg,
        lm.version,
        str(args.reference),
        str(args.current if args.current is not None else args.audit_db),
    )
    ref_scores, ref_scored = score_batch(ref_frame, lm)
    if ref_scores.rejected:
        result.notes.append(f"{ref_scores.rejected} reference row(s) failed the record rules")
    if args.current is not None:
        from validation.report import validate_tables

        report = validate_tables(cur_tables, settings.validation)
        result.validation = validation_summary(report)
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
    else:
        result.notes.append(
            f"current scores from {cur_scores.source}: feature drift and the data-contract "
            "check are skipped (the audit store holds no intake fields)"
        )
        if len(cur_scores.risk) == 0:
            return fail(f"{args.audit_db} holds no scores", EXIT_INPUT)
    result.scores = score_shift(ref_scores, cur_scores, lm.bands, cfg.bins)
    result.evaluate()
    from monitoring.outcomes import OutcomeInputError, check_outcomes, has_outcomes

    outcome_dir = args.outcomes or (args.current if has_outcomes(args.current) else None)
    if outcome_dir is not None:
        try:
            result.add_outcomes(check_outcomes(lm, settings, outcome_dir, args.audit_db))
        except (OutcomeInputError, OSError, ValueError) as exc:
            return fail(f"outcomes: {exc}", EXIT_INPUT)
    make_plots(result, ref_scores.risk, cur_scores.risk)
    html_path, json_path = result.write(args.out)
    from monitoring.history import log_monitor_run

    logged = log_monitor_run(settings.tracking_uri, result, html_path, json_path)

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
