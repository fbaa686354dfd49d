"""Validate a dataset folder against data contract v1.

    python -m pipelines.validate DATA_DIR [--report-dir reports/validation] [--json]

Prints one line per failed rule (table, field, rule, failing count, example admission_ids and
values, blocking), writes reports/validation/validation_report.html (self-contained, the primary
report) and GX Data Docs under reports/validation/gx/. Exit codes: 0 no blocking problem,
1 a blocking problem, 2 a missing or unreadable folder or table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

EXIT_OK, EXIT_BLOCKING, EXIT_MISSING = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.validate",
        description="Validate intake/counsellors/alliance(/episodes) tables against the contract.",
    )
    p.add_argument("data_dir", type=Path, help="folder holding intake.csv etc. (or .parquet)")
    p.add_argument(
        "--report-dir",
        type=Path,
        default=Path("reports/validation"),
        help="where to write validation_report.html and GX Data Docs (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--config", type=Path, default=None, help="TOML settings file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from rich.console import Console

    from features.settings import load_settings
    from validation.io import TableLoadError
    from validation.report import print_summary, validate_dir

    console = Console(width=160) if not sys.stdout.isatty() else Console()
    try:
        cfg = load_settings(args.config).validation
        report = validate_dir(args.data_dir, cfg, report_dir=args.report_dir)
    except (TableLoadError, FileNotFoundError) as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "exit_code": EXIT_MISSING}))
        else:
            console.print(f"error: {exc}", style="bold red", markup=False, highlight=False)
        return EXIT_MISSING
    if args.json:
        print(json.dumps(report.to_dict(), default=str, indent=1))
    else:
        print_summary(report, console)
    return EXIT_BLOCKING if report.blocking else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
