"""Leave-one-service-out with each fit tuned again vs with the champion's tuned hyper-parameters.

    .venv/bin/python -m experiments.loso_params DATA_DIR [--kinds ridge spline]

On a cohort at or above ``train.holdout_from``: the candidate of each kind is tuned and fitted on
the grouped training split (as the pipeline does), then ``models.building.training.leave_one_service_out``
runs twice, once tuning every service's fit (``params=None``, the small-n behaviour) and once with
the candidate's tuned hyper-parameters (``params=model.params``, the holdout protocol's). Prints,
per service, the AUROC, log loss and calibration slope of both and their differences, and the wall
time of each. Asserts nothing. SYNTHETIC data.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("data", type=Path)
    ap.add_argument("--kinds", nargs="+", default=["ridge", "spline"])
    args = ap.parse_args()

    import numpy as np

    from features.build import scoring_frame, typed_records
    from features.labels import build_labels
    from features.settings import load_settings
    from models.building.candidates import fit_candidate
    from models.building.training import holdout_split, leave_one_service_out, split_groups
    from models.scoring.predict import frame_to_matrix
    from validation.io import load_tables

    settings = load_settings()
    cfg = settings.train
    tables = load_tables(args.data)
    labels = build_labels(
        tables["alliance"], settings.label, tables["intake"], tables.get("episodes")
    )
    frame = typed_records(scoring_frame(tables["intake"], tables.get("counsellors")))
    frame = frame[frame["admission_id"].astype(str).isin(labels.labels.index)].reset_index(
        drop=True
    )
    y = labels.labels.reindex(frame["admission_id"].astype(str)).to_numpy().astype(int)
    X, _, _ = frame_to_matrix(frame)
    groups = split_groups(frame, cfg.group_by)
    tr, _ = holdout_split(y, groups, cfg.test_fraction, cfg.seed)
    print(f"{len(y):,} labelled admissions; training split {len(tr):,}", flush=True)
    for kind in args.kinds:
        model = fit_candidate(kind, X[tr], y[tr], groups[tr], cfg.tune_iterations, cfg.seed)
        print(f"{kind}: tuned on the training split: {model.params}", flush=True)
        t = time.perf_counter()
        tuned = leave_one_service_out(kind, frame, X, y, groups, cfg)
        t_tuned = time.perf_counter() - t
        t = time.perf_counter()
        fixed = leave_one_service_out(kind, frame, X, y, groups, cfg, params=model.params)
        t_fixed = time.perf_counter() - t
        print(f"{kind}: tuned per service {t_tuned:.1f} s; champion's parameters {t_fixed:.1f} s")
        print(
            "| service | n | AUROC tuned / fixed | log loss tuned / fixed | slope tuned / fixed |"
        )
        print("|---|---|---|---|---|")
        for a, b in zip(tuned.itertuples(), fixed.itertuples(), strict=True):
            if not hasattr(a, "auroc") or np.isnan(getattr(a, "auroc", np.nan)):
                print(f"| {a.service} | {a.n:,} | not scored | | |")
                continue
            print(
                f"| {a.service} | {a.n:,} | {a.auroc:.4f} / {b.auroc:.4f} ({b.auroc - a.auroc:+.4f}) "
                f"| {a.log_loss:.4f} / {b.log_loss:.4f} ({b.log_loss - a.log_loss:+.4f}) "
                f"| {a.cal_slope:.3f} / {b.cal_slope:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
