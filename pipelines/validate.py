"""Validate a dataset folder against data contract v1.

    python -m pipelines.validate DATA_DIR [--output reports/validation] [--json] [--config FILE]

DATA_DIR (or --input DATA_DIR) holds intake, counsellors, alliance (and episodes) as .csv or
.parquet. Prints one line per failed rule (table, field, rule, failing count, example
admission_ids and values, blocking), writes OUTPUT/validation_report.html (self-contained, the
primary report) and GX Data Docs under OUTPUT/gx/. Relative paths are taken from the working
folder. Exit codes: 0 no blocking problem, 1 a blocking problem, 2 a missing or unreadable folder
or table, or a bad configuration.
"""

from __future__ import annotations

import json
import os
import sys

from pipelines import cli

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

EXIT_OK, EXIT_BLOCKING, EXIT_MISSING = 0, 1, 2
DEFAULT_OUTPUT = "reports/validation"


def _parser():
    p = cli.parser("validate", __doc__)
    p.add_argument(
        "data_dir",
        nargs="?",
        type=cli.path_arg,
        metavar="DATA_DIR",
        help="folder holding intake.csv etc. (or .parquet); same as --input",
    )
    cli.add_input(p, "folder holding the tables (instead of DATA_DIR)", metavar="DIR")
    cli.add_output(
        p,
        "where to write validation_report.html and GX Data Docs "
        f"(default: {DEFAULT_OUTPUT} under the working folder)",
        aliases=("--report-dir",),
        metavar="DIR",
    )
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    cli.add_quiet(p)
    return p


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if (args.data_dir is None) == (args.input is None):
        p.error("give the data folder once: DATA_DIR or --input DIR")
    data_dir = args.data_dir or args.input
    report_dir = args.output or cli.resolve(DEFAULT_OUTPUT)

    out = cli.console()
    err = cli.console(stderr=True)
    settings, code = cli.settings_or_exit(out, args.config, EXIT_MISSING)
    if settings is None:
        return code

    from validation.io import TableLoadError, load_tables
    from validation.report import GX_DOCS_DIR, REPORT_FILE, print_summary, validate_tables

    try:
        with cli.steps(err, quiet=args.quiet or args.json) as s:
            t = s.start(f"reading tables in {data_dir}")
            tables = load_tables(data_dir)
            rows = ", ".join(f"{k} {len(v)}" for k, v in tables.items())
            s.done(t, f"read {rows} rows")
            t = s.start("checking the contract (Great Expectations)")
            report = validate_tables(tables, settings.validation, docs_dir=report_dir / GX_DOCS_DIR)
            s.done(t, f"checked: {len(report.errors)} problem(s)")
            t = s.start(f"writing the report to {report_dir}")
            report.write(report_dir)
            s.done(t, f"report: {report_dir / REPORT_FILE}")
    except (TableLoadError, FileNotFoundError) as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "exit_code": EXIT_MISSING}))
        else:
            out.print(f"error: {exc}", style="bold red", markup=False, highlight=False)
        return EXIT_MISSING
    if args.json:
        print(json.dumps(report.to_dict(), default=str, indent=1))
    else:
        print_summary(report, out)
    return EXIT_BLOCKING if report.blocking else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
