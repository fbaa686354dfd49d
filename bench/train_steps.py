"""Where the time and memory of training's data steps go, one step after another in one process.

    .venv/bin/python -m bench.train_steps DATA_DIR [--no-validation]

Steps: imports, load_tables, validate_tables (Great Expectations, in chunks of
``validation.suites.CHUNK_ROWS`` rows), build_labels, scoring_frame + typed_records,
frame_to_matrix. Prints wall time, resident memory after the step and peak memory so far. The
model-fitting steps are timed by the pipeline itself (MLflow metrics time_* and step_*, printed by
bench/train_scaling.py). Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("data", type=Path)
    ap.add_argument("--no-validation", action="store_true")
    args = ap.parse_args()
    t = time.perf_counter()

    def mark(step: str) -> None:
        nonlocal t
        print(
            f"{step}: {time.perf_counter() - t:.1f} s, resident {_rss_mb():.0f} MB, "
            f"peak so far {_peak_mb():.0f} MB",
            flush=True,
        )
        t = time.perf_counter()

    from features.build import scoring_frame, typed_records
    from features.labels import build_labels
    from features.settings import load_settings
    from models.scoring.predict import frame_to_matrix
    from validation.io import load_tables
    from validation.report import validate_tables

    mark("imports")
    settings = load_settings()
    tables = load_tables(args.data)
    mark(f"load_tables ({len(tables['intake']):,} admissions)")
    if not args.no_validation:
        report = validate_tables(tables, settings.validation)
        mark(f"validate_tables ({len(report.errors)} problems)")
    labels = build_labels(
        tables["alliance"], settings.label, tables["intake"], tables.get("episodes")
    )
    mark("build_labels")
    frame = typed_records(scoring_frame(tables["intake"], tables.get("counsellors")))
    mark("scoring_frame + typed_records")
    frame = frame[frame["admission_id"].astype(str).isin(labels.labels.index)]
    frame_to_matrix(frame.reset_index(drop=True))
    mark("frame_to_matrix")


if __name__ == "__main__":
    main()
