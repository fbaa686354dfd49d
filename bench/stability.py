"""Smooth risk (issue 10 item 4): how far one step within measurement error moves the risk.

    .venv/bin/python -m bench.stability [--n 2000] [--seed 7] [--kinds ridge spline lightgbm]
    .venv/bin/python -m bench.stability --model-uri models:/alliance-risk@champion [--n 2000]
    .venv/bin/python -m bench.stability --truth [--n 6000]

Without ``--model-uri``: generates a SYNTHETIC cohort of ``--n`` admissions, fits each candidate
kind in-process (``models.building.estimators.fit_candidate``, as training does) on the labelled clients
and measures it on an independent SYNTHETIC cohort of the same size (another seed). With
``--model-uri``: loads that registered model's scorer (the tracking store is
``MLFLOW_TRACKING_URI`` or the project default) and measures it on the SYNTHETIC cohort.

For each scale score (``models.building.stability.MEASUREMENT_STEP``: 1 point on a TCU scale or the
GHQ-12, 0.1 on a Brief COPE mean, 1 on a 1-7 attachment rating) prints the 99th percentile and
the maximum over clients of the risk change, in percentage points; the goal is at most 2 for 99%
of clients and 4 for any. Asserts nothing.

``--truth``: what the generator's own truth implies instead. The true log-odds of a low alliance
(``p_low_alliance_client_no_ids``) of ``--n`` SYNTHETIC admissions with every scale recorded are
regressed (least squares) on the 13 scale scores; printed per scale: the slope per step and the
risk change it gives at the 99th percentile of p(1 - p).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def records(n: int, seed: int, world: str = "default"):
    from features.build import scoring_frame, typed_records
    from features.labels import build_labels
    from features.settings import LabelConfig
    from models.building.training import split_groups
    from models.scoring.predict import frame_to_matrix
    from simulator.generator import generate

    c = generate(n, seed=seed, world=world, ground_truth=False)
    labels = build_labels(c.alliance, LabelConfig(), c.intake, c.episodes)
    frame = typed_records(scoring_frame(c.intake, c.counsellors))
    X, scored, _ = frame_to_matrix(frame)
    lab = labels.labels.reindex(frame["admission_id"])
    keep = lab.notna().to_numpy()
    return X, scored, split_groups(scored, "counsellor"), lab.to_numpy(), keep


def load_scorer(uri: str):
    import mlflow

    from features.settings import load_settings
    from models.scoring.scorer import ScoringModel

    mlflow.set_tracking_uri(load_settings().tracking_uri)
    dst = Path(tempfile.mkdtemp(prefix="stability-"))
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
    return ScoringModel.load(local / "artifacts" / "scorer")


def truth(n: int, seed: int, world: str = "default") -> None:
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    from features.build import scoring_frame, typed_records
    from models.building.stability import scale_steps
    from simulator.generator import generate

    c = generate(n, seed=seed, world=world)
    frame = typed_records(scoring_frame(c.intake, c.counsellors))
    p = c.ground_truth.set_index("admission_id")["p_low_alliance_client_no_ids"]
    p = np.clip(p.reindex(frame["admission_id"]).to_numpy(), 1e-4, 1 - 1e-4)
    steps = scale_steps()
    A = frame[list(steps)].apply(pd.to_numeric, errors="coerce")
    ok = A.notna().all(axis=1).to_numpy()
    fit = LinearRegression().fit(A[ok], np.log(p[ok] / (1 - p[ok])))
    q = float(np.percentile(p[ok] * (1 - p[ok]), 99))
    print(
        f"SYNTHETIC truth, world {world}: {int(ok.sum())} of {n} admissions with every scale "
        f"(seed {seed})\n"
    )
    print("| scale | step | true log-odds per step | risk points per step at p99 of p(1-p) |")
    print("|---|---|---|---|")
    for (name, (step, _, _)), b in zip(steps.items(), fit.coef_, strict=True):
        print(f"| {name} | {step:g} | {b * step:+.4f} | {100 * abs(b * step) * q:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--kinds", nargs="+", default=["ridge", "spline"])
    ap.add_argument("--model-uri", help="a registered model, e.g. models:/alliance-risk@champion")
    ap.add_argument("--truth", action="store_true", help="the generator's true slopes instead")
    ap.add_argument(
        "--world",
        default="default",
        help="SYNTHETIC world (simulator/worlds.py; default %(default)s)",
    )
    args = ap.parse_args()
    if args.truth:
        truth(args.n, args.seed, args.world)
        return

    from models.building.estimators import fit_candidate
    from models.building.stability import GOAL_MAX_POINTS, GOAL_P99_POINTS, risk_steps
    from models.scoring.reference import reference_cohort

    _, test, _, _, _ = records(args.n, args.seed + 1000, args.world)
    if args.model_uri:
        models = {args.model_uri: load_scorer(args.model_uri)}
    else:
        X, scored, groups, y, keep = records(args.n, args.seed, args.world)
        models = {}
        for kind in args.kinds:
            m = fit_candidate(kind, X[keep], y[keep].astype(int), groups[keep], 6, args.seed)
            m.reference = reference_cohort(scored[keep], {}, {})
            models[kind] = m
    print(
        f"SYNTHETIC cohort of {args.n} admissions (seed {args.seed + 1000}); goal: p99 <= "
        f"{GOAL_P99_POINTS:g} and max <= {GOAL_MAX_POINTS:g} percentage points\n"
    )
    tables = {name: risk_steps(m, test) for name, m in models.items()}
    names = list(tables)
    print("| scale | step | " + " | ".join(f"{k} p99 / max (points)" for k in names) + " |")
    print("|---|---|" + "---|" * len(names))
    first = tables[names[0]]
    for i, r in first.iterrows():
        cells = []
        for k in names:
            t = tables[k].iloc[i]
            mark = "" if t.meets_goal else " (over)"
            cells.append(f"{t.p99_points:.2f} / {t.max_points:.2f}{mark}")
        print(f"| {r.scale} | {r.step:g} | " + " | ".join(cells) + " |")
    for k in names:
        t = tables[k]
        print(
            f"\n{k}: worst p99 {t.p99_points.max():.2f}, worst max {t.max_points.max():.2f}; "
            f"{int(t.meets_goal.sum())}/{len(t)} scales meet the goal"
            + ("" if np.all(t.meets_goal) else f" (over: {', '.join(t.scale[~t.meets_goal])})")
        )


if __name__ == "__main__":
    main()
